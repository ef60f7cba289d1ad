"""Stage 4: log the segmenter as an MLflow model, register it, and score the champion on the same data.

The model is logged as "models from code" (MLflow 3's recommended form, no pickled Python object): a
two-line code file that imports only ``salespulse``, and the folder ``Segmentation.save`` writes as its
``segmentation`` artifact. Loading it runs that file and ``CustomerSegmenter.load_context``; nothing from
``training`` is involved.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

from salespulse.features.customers import FEATURE_NAMES
from salespulse.modeling.segmenter import SEGMENTATION_ARTIFACT, CustomerSegmenter, Segmentation
from training.tracking import log_model_from_code

INPUT_EXAMPLE_ROWS = 5
# Declared rather than inferred from the example: the contract is the feature list. The columns are typed
# Any because MLflow's schema check refuses int64 for a double column ("Can not safely convert int64 to
# float64") and float64 for a long one, while callers naturally send whole numbers for counts and day spans
# and often for money, mixed with fractions. The model itself casts every column to float64 and refuses a
# value that is not a number, naming the column (CustomerSegmenter.predict).
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(AnyType(), name) for name in FEATURE_NAMES]),
    outputs=Schema(
        [
            ColSpec("long", "segment_id"),
            ColSpec("string", "segment"),
            ColSpec("string", "action"),
            ColSpec("double", "distance"),
        ]
    ),
)


def log_segmenter(segmentation: Segmentation, features: pd.DataFrame, model_name: str) -> ModelInfo:
    """Log ``segmentation`` to the active run (signature, input example) and register it as ``model_name``."""
    return log_model_from_code(
        model_class=CustomerSegmenter,
        artifact_name=SEGMENTATION_ARTIFACT,
        save_artifact=segmentation.save,
        registered_model_name=model_name,
        signature=SIGNATURE,
        input_example=features.head(INPUT_EXAMPLE_ROWS).reset_index(drop=True),
        requirements=("scikit-learn", "joblib"),
    )


def champion_segment_ids(champion: ModelVersion, *frames: pd.DataFrame) -> list[np.ndarray]:
    """The champion's segment id of every row of each of ``frames`` (feature tables), through its own
    logged model, loaded once: what the gate scores it by, on the challenger's customers."""
    model = mlflow.pyfunc.load_model(f"models:/{champion.name}/{champion.version}")
    return [model.predict(frame.reset_index(drop=True))["segment_id"].to_numpy() for frame in frames]
