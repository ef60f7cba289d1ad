"""Features that training and serving both compute, defined once."""
