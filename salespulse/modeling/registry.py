"""Which registered models the service serves: one daily forecaster per planning level, and the segmenter."""

from __future__ import annotations

from salespulse.config import get_settings
from salespulse.features.series import LEVELS
from salespulse.modeling.forecaster import registered_model_name

SERVED_FORECAST_FREQ = "D"


def forecaster_model_names() -> dict[str, str]:
    """Registered model name of the served forecaster of each level."""
    return {level: registered_model_name(level, SERVED_FORECAST_FREQ) for level in LEVELS}


def served_model_names() -> list[str]:
    return [*forecaster_model_names().values(), get_settings().segmenter_model_name]
