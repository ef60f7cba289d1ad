"""Stage 5: log the customer-value model as an MLflow model, register it, and score the champion on the
same holdout.

Logged as "models from code", like the segmenter: a two-line code file that imports only ``salespulse`` and
the folder ``CustomerValueModel.save`` writes (its seven parameters, as JSON) as the ``customer_value``
artifact. Loading it needs NumPy and SciPy, never PyMC-Marketing or ``training``.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType

from salespulse.features.customers import SUMMARY_NAMES
from salespulse.modeling.customer_value import (
    CUSTOMER_VALUE_ARTIFACT,
    DEFAULT_HORIZON_DAYS,
    DEFAULT_LIFETIME_MONTHS,
    PREDICTION_NAMES,
    CustomerValueModel,
    CustomerValuePredictor,
)
from training.holdout import CalibrationSplit, rank_correlation
from training.tracking import log_model_from_code

INPUT_EXAMPLE_ROWS = 5
# Inputs typed Any, as the segmenter's and for the same reason: MLflow refuses int64 for a double column,
# and counts and day spans come as whole numbers. The model casts each column and names a bad one.
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(AnyType(), name) for name in SUMMARY_NAMES]),
    outputs=Schema([ColSpec("double", name) for name in PREDICTION_NAMES]),
    params=ParamSchema(
        [
            ParamSpec("horizon_days", "double", float(DEFAULT_HORIZON_DAYS)),
            ParamSpec("lifetime_months", "long", DEFAULT_LIFETIME_MONTHS),
            ParamSpec("monthly_discount_rate", "double", 0.0),
        ]
    ),
)


def log_customer_value(model: CustomerValueModel, summary: pd.DataFrame, model_name: str) -> ModelInfo:
    """Log ``model`` to the active run (signature, input example) and register it as ``model_name``."""
    return log_model_from_code(
        model_class=CustomerValuePredictor,
        artifact_name=CUSTOMER_VALUE_ARTIFACT,
        save_artifact=model.save,
        registered_model_name=model_name,
        signature=SIGNATURE,
        input_example=summary.head(INPUT_EXAMPLE_ROWS).reset_index(drop=True),
        requirements=("scipy",),
    )


def champion_holdout_spearman(champion: ModelVersion, split: CalibrationSplit) -> float:
    """The champion's holdout rank correlation on the challenger's split, through its own logged model:
    what the challenger's registered model scores as ``served_holdout_spearman``."""
    model = mlflow.pyfunc.load_model(f"models:/{champion.name}/{champion.version}")
    predicted = model.predict(
        split.summary.reset_index(drop=True), params={"horizon_days": float(split.holdout_days)}
    )
    return rank_correlation(predicted["expected_spend"].to_numpy(), split.holdout_spend.to_numpy())
