"""Forecasts planners can trust: retail events, planning frequencies, sparse exports, the gate's baselines.

Small generated warehouses, trained for real into a local MLflow store (the ``mlflow_store`` fixture).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.features.calendar import (
    EventEffects,
    RetailCalendar,
    read_company_calendar,
    thanksgiving,
    us_holidays,
)
from salespulse.features.series import MAX_HORIZON, RecentHistory, load_series
from salespulse.modeling.forecaster import Forecaster
from salespulse.modeling.registry import registered_model_name
from salespulse.warehouse.store import connect
from training.forecaster.pipeline import ForecasterResult, run

# Two Black Fridays in the history, the next one 17 days after the last sale.
BEFORE_BLACK_FRIDAY = date(2026, 11, 10)
EVENTS_SAMPLE = GeneratorConfig(
    seed=7, customers=2_000, rows=120_000, products=60, days=760, end_date=BEFORE_BLACK_FRIDAY
)
# A small real-looking export: 10k lines over ~1,800 products (most sell a handful of times).
SPARSE_SAMPLE = GeneratorConfig(
    seed=13, customers=3_000, rows=10_000, products=1_800, days=730, end_date=date(2026, 6, 30)
)


@pytest.fixture(scope="module")
def events_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "warehouse.duckdb"
    generate_warehouse(EVENTS_SAMPLE, path)
    return path


@pytest.fixture(scope="module")
def trained_total(mlflow_store: Path, events_warehouse: Path) -> ForecasterResult:
    return run(level="total", progress=False, warehouse=events_warehouse)


def champion_of(level: str) -> Forecaster:
    name = registered_model_name(level, "D")
    return mlflow.pyfunc.load_model(f"models:/{name}@champion").unwrap_python_model().forecaster


def history_of(warehouse: Path, forecaster: Forecaster, ids: list[str]) -> pd.DataFrame:
    with connect(warehouse, read_only=True) as con:
        return RecentHistory(forecaster.history_periods).panel(con, forecaster.level, ids).to_frame()


def test_event_lifts_are_learnt_from_history():
    days = pd.date_range("2023-01-01", "2025-12-31", freq="D")
    black_fridays = [pd.Timestamp(thanksgiving(y) + timedelta(days=1)) for y in (2023, 2024, 2025)]
    y = np.full((2, len(days)), 100.0)
    y[:, days.isin(black_fridays)] = 250.0
    y[:, days.isin(us_holidays((2023, 2024, 2025)))] = 0.0  # closed on public holidays
    effects = EventEffects.estimate(y, days, RetailCalendar())
    assert effects.lifts["black_friday+0"] == pytest.approx(2.5)
    assert effects.lifts["holiday"] == pytest.approx(0.0)
    assert effects.lifts["black_friday+3"] == pytest.approx(1.0)  # Cyber Monday sold as usual here
    future = pd.date_range("2026-11-20", "2026-11-30", freq="D")
    factor = pd.Series(effects.multiplier(future), index=future)
    assert factor["2026-11-27"] == pytest.approx(2.5) and factor["2026-11-26"] == 0.0  # BF; Thanksgiving


def test_the_company_calendar_file_adds_events_with_lead_and_lag_days(tmp_path: Path):
    file = tmp_path / "events.csv"
    file.write_text("name,start,end,lead_days,lag_days\nspring_sale,2026-03-16,2026-03-17,1,2\n")
    calendar = RetailCalendar(read_company_calendar(file))
    masks = calendar.label_masks(pd.date_range("2026-03-14", "2026-03-21", freq="D"))
    labelled = {label: list(np.flatnonzero(mask)) for label, mask in masks.items()}
    assert labelled == {
        "spring_sale-1": [1],
        "spring_sale": [2, 3],
        "spring_sale+1": [4],
        "spring_sale+2": [5],
    }
    default = Path(__file__).resolve().parents[1] / "data" / "calendar" / "company_events.csv"
    assert read_company_calendar(default)  # the example the pipeline reads by default parses


@pytest.mark.slow
def test_next_black_friday_is_forecast_well_above_the_friday_before(
    trained_total: ForecasterResult, events_warehouse: Path
):
    forecaster = champion_of("total")
    forecast = forecaster.forecast(history_of(events_warehouse, forecaster, ["total"]), 28, levels=(80,))
    by_day = forecast.set_index("ds")
    black_friday = pd.Timestamp(thanksgiving(2026) + timedelta(days=1))
    friday_before = black_friday - pd.Timedelta(days=7)
    assert by_day.loc[black_friday, "forecast"] >= 1.5 * by_day.loc[friday_before, "forecast"]
    assert by_day.loc[black_friday - pd.Timedelta(days=1), "forecast"] == 0.0  # Thanksgiving: closed
    cyber_monday = black_friday + pd.Timedelta(days=3)
    assert (
        by_day.loc[cyber_monday, "forecast"]
        > 1.3 * by_day.loc[cyber_monday - pd.Timedelta(days=7), "forecast"]
    )


@pytest.mark.slow
def test_weeks_and_months_add_up_the_days(trained_total: ForecasterResult, events_warehouse: Path):
    forecaster = champion_of("total")
    history = history_of(events_warehouse, forecaster, ["total"])
    daily = forecaster.forecast(history, 60, levels=())
    weekly = forecaster.forecast(history, 4, levels=(80, 95), freq="W")
    monthly = forecaster.forecast(history, 2, levels=(80,), freq="M")
    assert list(weekly["ds"].dt.dayofweek) == [0] * 4 and list(monthly["ds"].dt.day) == [1, 1]
    # The week under way (Monday 9 to Sunday 15 November) counts the sales of the 9th and 10th.
    sold = history.loc[history["ds"] >= weekly["ds"].iloc[0], "y"].sum()
    first_week = daily[daily["ds"] < weekly["ds"].iloc[1]]["forecast"].sum()
    assert weekly["forecast"].iloc[0] == pytest.approx(sold + first_week)
    second_week = daily[
        daily["ds"].between(weekly["ds"].iloc[1], weekly["ds"].iloc[2] - pd.Timedelta(days=1))
    ]
    assert weekly["forecast"].iloc[1] == pytest.approx(second_week["forecast"].sum())
    december = daily[daily["ds"].dt.month == 12]["forecast"]
    assert len(december) < 31 or monthly["forecast"].iloc[1] == pytest.approx(december.sum())
    ordered = weekly[["lo-95", "lo-80", "forecast", "hi-80", "hi-95"]].to_numpy()
    assert (np.diff(ordered, axis=1) >= 0).all()
    with pytest.raises(ValueError, match="horizon"):
        forecaster.forecast(history, MAX_HORIZON["M"] + 1, freq="M")


@pytest.mark.slow
def test_the_champion_never_loses_to_a_baseline(trained_total: ForecasterResult):
    m = trained_total.metrics
    for freq in ("D", "W", "M"):  # what `train status` checks, per served frequency
        assert m[f"wape_{freq}"] <= min(m[f"wape_{freq}_seasonal_naive"], m[f"wape_{freq}_autoets"]), freq
        assert abs(m[f"bias_{freq}"]) <= 0.05, (freq, trained_total.describe())
        assert 0.75 <= m[f"coverage_80_{freq}"] <= 0.85, (freq, trained_total.describe())
    assert trained_total.decision.promoted and trained_total.decision.beats_baselines
    assert (
        trained_total.method
        == mlflow.pyfunc.load_model(f"models:/{trained_total.model_name}@champion")
        .unwrap_python_model()
        .forecaster.method
    )


@pytest.mark.slow
def test_a_sparse_export_never_forecasts_zero_for_a_steady_seller(mlflow_store: Path, tmp_path: Path):
    warehouse = tmp_path / "sparse.duckdb"
    generate_warehouse(SPARSE_SAMPLE, warehouse)
    with connect(warehouse, read_only=True) as con:
        weekly = load_series(con, "product", "W", with_discount=False)
    last8 = weekly[weekly["ds"] > weekly["ds"].max() - pd.Timedelta(weeks=8)]
    steady = last8[last8["y"] > 0].groupby("unique_id").size()
    steady = list(steady[steady == 8].index)
    assert steady, "the sample has products that sold in each of the last 8 weeks"
    for level in ("product", "product_region"):
        result = run(level=level, progress=False, warehouse=warehouse)
        assert result.decision.promoted, result.describe()
        forecaster = champion_of(level)
        with connect(warehouse, read_only=True) as con:
            ids = load_series(
                con, level, "D", start=SPARSE_SAMPLE.end_date - timedelta(days=56), with_discount=False
            )
        series = [i for i in ids["unique_id"].unique() if i.split("|")[0] in steady]
        forecast = forecaster.forecast(history_of(warehouse, forecaster, series), 28)
        totals = forecast.groupby("unique_id")["forecast"].sum()
        assert (totals.groupby(lambda i: i.split("|")[0]).sum() > 0).all(), level
        assert (forecast["hi-80"] > 0).groupby(forecast["unique_id"]).any().all(), level
