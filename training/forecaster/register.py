"""Stage 5: log the forecaster as an MLflow model, register it, and score the champion on the same backtest.

The model is logged as "models from code" (MLflow 3's recommended form, no pickled Python object): a
two-line code file that imports only ``salespulse``, and the folder ``Forecaster.save`` writes as its
``forecaster`` artifact. Loading it runs that file and ``SalesForecaster.load_context``; nothing from
``training`` is involved.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models.model import ModelInfo

from salespulse.features.series import Panel
from salespulse.modeling.forecaster import (
    AUTOETS,
    COMBINATION,
    FORECASTER_ARTIFACT,
    LIGHTGBM,
    Forecaster,
    SalesForecaster,
    model_signature,
)
from training.forecaster.evaluate import Backtest, forecast_windows, wape_of
from training.tracking import log_model_from_code

EXAMPLE_SERIES = 2


def log_forecaster(forecaster: Forecaster, panel: Panel, model_name: str) -> ModelInfo:
    """Log ``forecaster`` to the active run (signature, input example) and register it as ``model_name``."""
    return log_model_from_code(
        model_class=SalesForecaster,
        artifact_name=FORECASTER_ARTIFACT,
        save_artifact=forecaster.save,
        registered_model_name=model_name,
        signature=model_signature(forecaster.horizon),
        input_example=input_example(forecaster, panel),
        requirements=("lightgbm", "statsforecast", "holidays"),
    )


def input_example(forecaster: Forecaster, panel: Panel) -> pd.DataFrame:
    """The history form of the input (no warehouse needed): the recent history of a couple of series."""
    recent = panel.tail(forecaster.history_periods).to_frame()
    busiest = recent.groupby("unique_id")["y"].sum().nlargest(EXAMPLE_SERIES).index
    example = recent[recent["unique_id"].isin(busiest)].drop(columns="discount")
    return example.astype({c: str for c in panel.statics.columns}).reset_index(drop=True)


def champion_wape(champion: ModelVersion, panel: Panel, backtest: Backtest, windows: pd.DataFrame) -> float:
    """WAPE of the registered champion's forecast on the challenger's backtest (same cutoffs, series and
    histories); ``windows`` are the candidates' backtest forecasts of this run.

    The champion is loaded from the registry like the service loads it. Its boosters forecast each window
    from the history up to its cutoff; a statistical method keeps no fitted state, so its forecasts are this
    run's. A champion trained on data after a cutoff has seen that window: its score is then optimistic, so
    a challenger must beat a champion that had a head start (the gate errs towards keeping the model in
    service).
    """
    model = mlflow.pyfunc.load_model(f"models:/{champion.name}/{champion.version}")
    forecaster = model.unwrap_python_model().forecaster
    if not forecaster.uses_boosters:
        return wape_of(windows, forecaster.method)
    own = forecast_windows(forecaster, panel, backtest)
    if forecaster.method == COMBINATION:
        statistical = own[["unique_id", "cutoff", "ds"]].merge(windows, on=["unique_id", "cutoff", "ds"])
        own[LIGHTGBM] = (own[LIGHTGBM] + statistical[AUTOETS].to_numpy()) / 2
    return wape_of(own, LIGHTGBM)
