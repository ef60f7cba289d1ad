"""Training pipeline of the sales forecaster, one module per stage: data -> train -> evaluate -> plots ->
pipeline (MLflow run, registration, champion/challenger gate)."""
