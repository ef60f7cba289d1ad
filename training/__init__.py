"""Training pipelines: one module per stage, each run tracked in MLflow.

Reads the warehouse through ``salespulse``; never imported by ``service``.
"""
