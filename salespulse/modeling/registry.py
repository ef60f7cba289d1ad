"""Which registered models the service serves: one daily forecaster per planning level, the segmenter and
the customer-value model.

:func:`slot_specs` is the one declaration: the service builds its model slots (and the Bento's packed
models) from it, and ``train status`` / ``serve build`` list the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from salespulse.config import SQLITE_PREFIX, get_settings
from salespulse.errors import Unavailable
from salespulse.features.series import DEFAULT_FREQ, DEFAULT_LEVEL, LEVELS, check_freq, series_level

# The daily model of a level serves its daily, weekly and monthly forecasts (sums of its daily forecasts).
SERVED_FORECAST_FREQ = "D"


def registered_model_name(level: str = DEFAULT_LEVEL, freq: str = DEFAULT_FREQ) -> str:
    """``sales-forecaster`` for product x region daily (the default), else e.g. ``sales-forecaster-region-w``.

    Each level and frequency has its own registry entry, so its champion is only ever challenged on its own
    backtest and the service's default model is never replaced by a model of another level.
    """
    base = get_settings().forecaster_model_name
    if (level, freq) == (DEFAULT_LEVEL, DEFAULT_FREQ):
        return base
    return f"{base}-{series_level(level).name}-{check_freq(freq)}".lower()


def default_horizon(freq: str) -> int:
    settings = get_settings()
    return settings.forecast_horizon_weeks if check_freq(freq) == "W" else settings.forecast_horizon_days


def forecaster_model_names() -> dict[str, str]:
    """Registered model name of the served forecaster of each level."""
    return {level: registered_model_name(level, SERVED_FORECAST_FREQ) for level in LEVELS}


@dataclass(frozen=True)
class SlotSpec:
    """One model the service serves: its slot key, registered name and the service class attribute that
    declares it for `bentoml build` (which packs declared models into the Bento)."""

    key: str
    model_name: str

    @property
    def attribute(self) -> str:
        return f"model_{self.key}"


def slot_specs() -> list[SlotSpec]:
    """The one declaration of the service's models: a daily forecaster per planning level, the segmenter and
    the customer-value model."""
    settings = get_settings()
    forecasters = [SlotSpec(f"forecaster_{level}", name) for level, name in forecaster_model_names().items()]
    return [
        *forecasters,
        SlotSpec("segmenter", settings.segmenter_model_name),
        SlotSpec("customer_value", settings.customer_value_model_name),
    ]


def served_model_names() -> list[str]:
    return [spec.model_name for spec in slot_specs()]


class RegistryUnavailable(Unavailable):
    """The MLflow registry can't be asked: no local store yet, or the server does not answer."""


def check_registry(uri: str, *, must_exist: bool = True) -> None:
    """Raise RegistryUnavailable, in one line, unless the registry at ``uri`` can be asked now: a local
    store must exist (asking would create an empty one) unless ``must_exist`` is false, and a server must
    answer its health check within seconds (MLflow's own client would retry for minutes)."""
    if uri.startswith(SQLITE_PREFIX):
        store = Path(uri.removeprefix(SQLITE_PREFIX))
        if must_exist and not store.exists():
            raise RegistryUnavailable(
                f"no MLflow store at {store}: train the models first (salespulse train all)"
            )
        return
    if uri.startswith(("http://", "https://")):
        try:
            httpx.get(f"{uri.rstrip('/')}/health", timeout=5, trust_env=False).raise_for_status()
        except httpx.HTTPError as error:
            raise RegistryUnavailable(f"the MLflow server at {uri} does not answer: {error}") from None
