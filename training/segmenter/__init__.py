"""Customer segmentation training: KMeans over RFM features, business names, MLflow run and gate.

Stages, one module each: ``data`` (features from the warehouse), ``train`` (k by silhouette, bootstrap
stability), ``naming`` (business names by profile), ``profile`` (segment profile table), ``plots``,
``register`` (model logging and the champion's score) and ``pipeline`` (the tracked run).
"""
