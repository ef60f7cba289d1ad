"""Getting sales data into the warehouse: the sample-data generator and the import of a company's exports."""
