"""The sales warehouse: schema declarations and DuckDB access."""
