"""The forecaster's training pipeline as one MLflow run: data -> candidates' backtest -> champion method ->
final fit -> log, register and gate.

    result = run(level="product_region", freq="D")   # what `salespulse train forecaster` calls
    print(result.describe())

Every candidate (LightGBM, seasonal naive, AutoETS, TSB and ADIDA on intermittent daily series, and the
LightGBM + AutoETS combination) is backtested on the same windows; the one with the lowest WAPE at the
model's frequency becomes the registered model's method, with its intervals calibrated on its own backtest
errors. The run logs every method's scores per frequency (``wape_D_autoets``, ``bias_W_lightgbm``, ...), the
champion's (``wape_D``, ``coverage_80_W``, ...), the learnt event lifts, the backtest table
(``backtest/metrics.csv`` and ``.json``), the figures (``plots/``) and the model, registered under
:func:`~salespulse.modeling.registry.registered_model_name`. The new version becomes champion only if its
backtest WAPE beats the current champion's and both baselines' on the same windows
(:func:`training.tracking.gate_and_promote`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import mlflow
import pandas as pd
from rich.console import Console

from salespulse.features.calendar import lift_table
from salespulse.features.series import DEFAULT_FREQ, DEFAULT_LEVEL, Panel, check_freq, series_level
from salespulse.modeling.forecaster import Forecaster
from salespulse.modeling.registry import default_horizon, registered_model_name
from training.forecaster import data, evaluate, plots, register, train
from training.forecaster.train import TrainConfig
from training.tracking import GateDecision, configure_mlflow, gate_and_promote

GATE_METRIC = "wape"
N_WINDOWS = 3
MAX_WINDOWS = 12
MIN_SCORED_PERIODS = 24
"""A level of few series gets more windows (up to MAX_WINDOWS, as its history allows): the total has one
28-day sum per window, and three sums can't calibrate or check a monthly 80% interval."""


def backtest_windows(panel: Panel, horizon: int) -> int:
    """N_WINDOWS, or more for a level of few series: at least MIN_SCORED_PERIODS horizon-long sums in all."""
    wanted = min(MAX_WINDOWS, max(N_WINDOWS, -(-MIN_SCORED_PERIODS // max(len(panel.ids), 1))))
    room = (len(panel.dates) - 1 - evaluate.MIN_HISTORY[panel.freq]) // horizon
    return max(min(wanted, room), N_WINDOWS)


@dataclass(frozen=True)
class ForecasterResult:
    level: str
    freq: str
    horizon: int
    series: int
    run_id: str
    model_name: str
    version: str
    method: str
    decision: GateDecision
    table: pd.DataFrame = field(repr=False)
    metrics: dict[str, float] = field(repr=False)
    timings: dict[str, float] = field(repr=False)
    champion_windows: pd.DataFrame | None = field(default=None, repr=False)
    """The champion method's daily backtest forecasts: unique_id, cutoff, ds, y, f (for reconciliation)."""

    @property
    def wape(self) -> float:
        return self.metrics["wape_model"]

    def describe(self) -> str:
        """A multi-line summary: every method's backtest per frequency, the champion and the gate."""
        overall = evaluate.overall(self.table)
        windows = sorted(self.table.loc[self.table["window"] != "all", "window"].unique())
        lines = [
            f"Sales forecaster {self.level} x {self.freq}, horizon {self.horizon}: backtest of "
            f"{len(windows)} windows (cutoffs {', '.join(windows)}) over {self.series:,} series",
            f"  {'freq':<5}{'method':<18}{'WAPE':>8}{'MASE':>8}{'bias':>9}{'cov 80%':>9}{'cov 95%':>9}",
        ]
        for (served, method), row in overall.iterrows():
            mark = " *" if method == self.method else ""
            mase = "-" if pd.isna(row["mase"]) else f"{row['mase']:.3f}"
            lines.append(
                f"  {served:<5}{method + mark:<18}{row['wape']:>8.3f}{mase:>8}{row['bias']:>+9.1%}"
                f"{row['coverage_80']:>9.1%}{row['coverage_95']:>9.1%}"
            )
        lines += [
            f"  (* the champion method, {self.method}: its forecast is the expected revenue, the figure that "
            "adds up; lightgbm_median is scored for information)",
            f"Gate: {self.decision.describe()}",
            f"MLflow run {self.run_id}; model {self.model_name} v{self.version}; "
            + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()),
        ]
        return "\n".join(lines)


def run(
    level: str = DEFAULT_LEVEL,
    freq: str = DEFAULT_FREQ,
    horizon: int | None = None,
    progress: bool = True,
    warehouse: Path | str | None = None,
    config: TrainConfig | None = None,
    calendar_file: Path | str | None = None,
    boosters: train.BoosterTrainer | None = None,
) -> ForecasterResult:
    """Train, backtest, log, register and gate a forecaster of ``level`` x ``freq``; with ``progress``,
    report each stage on stderr as it ends (the summary is ``result.describe()``). ``boosters`` fits the
    LightGBM boosters elsewhere (a Dask cluster: :mod:`training.forecaster.distributed`); the default is
    this process."""
    series_level(level)
    freq = check_freq(freq)
    horizon = horizon or default_horizon(freq)
    config = config or TrainConfig()
    model_name = registered_model_name(level, freq)
    stages = _Stages(Console(stderr=True) if progress else None)
    calendar = data.load_calendar(calendar_file)
    configure_mlflow()
    with mlflow.start_run(run_name=f"forecaster-{level}-{freq}") as active:
        mlflow.set_tag("model", model_name)
        with stages("Reading the series from the warehouse", "load"):
            panel, categories = data.load_inputs(level, freq, warehouse)
        n_windows = backtest_windows(panel, horizon)
        backtest = evaluate.plan_backtest(panel, horizon, n_windows)
        mlflow.log_params(_params(level, freq, horizon, config, panel, backtest))
        mlflow.log_params(boosters.run_params() if boosters else {"trainer": "local"})
        mlflow.set_tags(boosters.run_tags() if boosters else {"trainer": "local"})
        with stages(
            f"Fitting LightGBM for the backtest (history to {backtest.first_cutoff:%Y-%m-%d})", "fit_backtest"
        ):
            challenger = train.fit(
                panel.until(backtest.first_cutoff), level, horizon, config, calendar, boosters=boosters
            )
        with stages(f"Forecasting {n_windows} backtest windows with LightGBM", "backtest"):
            model_windows = evaluate.forecast_windows(challenger, panel, backtest)
        intermittent = evaluate.is_intermittent(panel, backtest)
        with stages("Backtesting the statistical candidates on the same windows", "baselines"):
            statistical = evaluate.statistical_windows(
                panel, backtest, challenger, intermittent, n_jobs=config.threads
            )
            windows = evaluate.candidate_windows(model_windows, statistical)
            table = evaluate.metrics_table(windows, evaluate.mase_scales(panel, backtest), freq)
            method = evaluate.choose(table, freq)
            metrics = evaluate.headline(table, method, freq)
        with stages(f"Fitting the champion method ({method}) on all the history", "fit_final"):
            final = train.fit(panel, level, horizon, config, calendar, categories, boosters)
            final = replace(final, method=method, calibrations=evaluate.calibrations(windows, method, freq))
            # A statistical champion keeps the boosters: they price a planned promotion (what-if), which a
            # statistical model, blind to prices, can't.
        with stages("Logging metrics, backtest table and plots", "log"):
            mlflow.log_metrics(metrics)
            mlflow.log_param("method", method)
            _log_table(table)
            if final.events is not None:
                mlflow.log_text(lift_table(final.events).to_csv(index=False), "events/lifts.csv")
            _log_plots(windows, panel, final, table, method)
        with stages(f"Logging and registering the model as {model_name}", "register"):
            info = register.log_forecaster(final, panel, model_name)
        with stages("Champion/challenger gate on the same backtest", "gate"):
            decision = gate_and_promote(
                model_name,
                str(info.registered_model_version),
                GATE_METRIC,
                metrics["wape_model"],
                lambda champion: register.champion_wape(champion, panel, backtest, windows),
                higher_is_better=False,
                baselines={b: metrics[f"wape_{freq}_{b}"] for b in evaluate.BASELINES},
            )
        stages.timings["total"] = sum(stages.timings.values())
        mlflow.log_metrics({f"time_{k}_s": v for k, v in stages.timings.items()})
    return ForecasterResult(
        level=level,
        freq=freq,
        horizon=horizon,
        series=len(backtest.series),
        run_id=active.info.run_id,
        model_name=model_name,
        version=str(info.registered_model_version),
        method=method,
        decision=decision,
        table=table,
        metrics=metrics,
        timings=dict(stages.timings),
        champion_windows=windows[["unique_id", "cutoff", "ds", "y", method]].rename(columns={method: "f"}),
    )


def _params(
    level: str, freq: str, horizon: int, config: TrainConfig, panel: Panel, backtest: evaluate.Backtest
) -> dict[str, object]:
    return {
        "level": level,
        "freq": freq,
        "horizon": horizon,
        "series": len(panel.ids),
        "backtest_windows": len(backtest.cutoffs),
        "backtest_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in backtest.cutoffs),
        "backtest_series": len(backtest.series),
        "ets_history": evaluate.ETS_HISTORY[freq],
        **config.as_params(),
    }


def _log_table(table: pd.DataFrame) -> None:
    mlflow.log_table(table, artifact_file="backtest/metrics.json")
    mlflow.log_text(table.to_csv(index=False, float_format="%.6f"), "backtest/metrics.csv")


def _log_plots(
    windows: pd.DataFrame, panel: Panel, forecaster: Forecaster, table: pd.DataFrame, method: str
) -> None:
    scored = evaluate.with_cross_conformal_intervals(
        evaluate.method_frame(windows, method, panel.freq), evaluate.SCALE_WINDOW[panel.freq]
    ).merge(windows[["unique_id", "cutoff", "step", "ds"]], on=["unique_id", "cutoff", "step"])
    samples = evaluate.sample_series(scored)
    mlflow.log_figure(plots.forecast_vs_actual(scored, panel, samples), "plots/forecast_vs_actual.png")
    mlflow.log_figure(plots.feature_importance(forecaster), "plots/feature_importance.png")
    mlflow.log_figure(plots.backtest_metrics(table), "plots/backtest_metrics.png")


class _Stages:
    """Times the pipeline's stages and, given a console, reports each as it ends."""

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, description: str, key: str) -> Iterator[None]:
        started = time.perf_counter()
        if self.console is None:
            yield
        else:
            with self.console.status(description):
                yield
        self.timings[key] = time.perf_counter() - started
        if self.console is not None:
            self.console.print(f"[green]✓[/] {description} [dim]({self.timings[key]:.1f} s)[/]")
