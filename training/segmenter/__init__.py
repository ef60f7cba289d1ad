"""Customer segmentation training: KMeans over customer features, chosen and named by holdout value, MLflow
run and gate.

Stages, one module each: ``data`` (features and the calibration / holdout split from the warehouse),
``train`` (features and k by holdout value separation and silhouette, bootstrap stability), ``naming``
(business names by profile, in value order), ``profile`` (segment profile table), ``plots``, ``register``
(model logging and the champion's segments) and ``pipeline`` (the tracked run).
"""
