"""Customer-value training: a BG/NBD + Gamma-Gamma model fitted with PyMC-Marketing, validated on a
calibration / holdout split against the heuristic lifetime value and the segment means, MLflow run and gate.

Stages, one module each: ``data`` (purchase summaries and the calibration / holdout split from the
warehouse), ``train`` (the PyMC-Marketing fits), ``evaluate`` (holdout rank correlations), ``plots``,
``register`` (model logging and the champion's score) and ``pipeline`` (the tracked run).
"""
