"""Fit the forecaster's boosters on a Dask cluster (``salespulse train forecaster --dask tcp://host:8786``).

Only the boosters' fit moves; everything around it is the single-process pipeline's
(:func:`training.forecaster.pipeline.run` with ``boosters=DaskBoosters(client)``):

- **client** (the machine running the command): reads the warehouse, learns the retail-event lifts (pooled
  over all series, a few array passes), splits the prepared panel into one partition of whole series per
  worker and scatters each to its worker; afterwards the backtest, the statistical candidates, the MLflow
  log, the registration and the champion/baseline gate, exactly as without Dask.
- **workers**: each partition's training rows, computed by :func:`training.forecaster.train.training_rows`
  (the same lag, window and calendar features as a single-process fit: every feature of a row reads only
  its own series, so splitting by series changes nothing), held as one ``dask.dataframe`` partitioned by
  series; then LightGBM's data-parallel training (``lightgbm.dask.DaskLGBMRegressor``) over the partitions
  where they lie, one booster after the other (each takes every worker).

The fitted boosters come back as plain ``lgb.Booster`` objects (``to_local()``), with the cluster's
network settings in their saved parameters put back to a single process's: the registered artifact is the
one a single-process fit writes, and loading or serving it needs no Dask.

Distributed LightGBM is not bit-identical to one process: each worker finds the bins of its share of the
features from its own rows, and bags its own rows. Nor is it quite reproducible: lightgbm.dask ranks the
workers in the order of a set, and the worker ranked first bins other features. The backtest WAPE moves
by less than a change of seed does: within 1% of a single-process fit's (tests/test_dask_training.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dask.config
import dask.dataframe as dd
import lightgbm as lgb
import numpy as np
import pandas as pd
from dask.utils import parse_timedelta
from distributed import Client, Future
from distributed.comm.addressing import parse_address, parse_host_port
from distributed.comm.registry import get_backend
from lightgbm.dask import DaskLGBMRegressor

from salespulse.errors import Unavailable
from salespulse.features.series import Panel, SeriesFeatures
from training.forecaster.train import OBJECTIVES, TrainConfig, training_rows

TARGET = "__target__"
WEIGHT = "__weight__"

# LightGBM's own parameter names (TrainConfig.booster_params) to the scikit-learn estimator's: passing the
# native names beside the estimator's defaults would leave two aliases of one parameter.
_ESTIMATOR_NAMES = {
    "min_data_in_leaf": "min_child_samples",
    "feature_fraction": "colsample_bytree",
    "bagging_fraction": "subsample",
    "bagging_freq": "subsample_freq",
    "seed": "random_state",
}
# The cluster's network settings in a booster's saved parameters, and LightGBM's single-process defaults
# that replace them: the registered booster text reads as a single-process fit's.
_SINGLE_PROCESS = {
    "tree_learner": "serial",
    "num_machines": "1",
    "local_listen_port": "12400",
    "time_out": "120",
    "machines": "",
}


class DaskUnreachable(Unavailable):
    """No Dask cluster to train on at the address given: malformed, silent in time, or without a worker."""


def connect_timeout() -> float:
    """Seconds to wait for the scheduler and a worker: Dask's own ``distributed.comm.timeouts.connect``
    (30 s unless set, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s``)."""
    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="seconds"))


def connect(address: str, timeout: float | None = None) -> Client:
    """A client of the scheduler at ``address`` with at least one worker; DaskUnreachable (one line) when the
    scheduler does not answer or has no worker within ``timeout`` seconds."""
    timeout = connect_timeout() if timeout is None else timeout
    try:
        scheme, location = parse_address(address)  # a malformed address fails now, not after the timeout
        get_backend(scheme)
        if scheme != "inproc":  # the others are host:port
            parse_host_port(location)
    except ValueError as error:
        raise DaskUnreachable(f"{address!r} is not a Dask scheduler address ({error})") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        # A refused, silent or unknown address is retried until the timeout; anything else says what it is.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        detail = "" if reason.startswith("Timed out") else f" ({reason})"
        raise DaskUnreachable(
            f"no Dask scheduler answered at {address} within {timeout:g} s{detail}"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        raise DaskUnreachable(
            f"the Dask scheduler at {address} has no worker (waited {timeout:g} s); start one with "
            f"'dask worker {address}'"
        ) from None
    return client


@contextmanager
def dask_boosters(address: str) -> Iterator[DaskBoosters]:
    """A :class:`DaskBoosters` on the cluster at ``address`` for the pipeline's ``boosters``; the client is
    closed afterwards."""
    client = connect(address)
    try:
        yield DaskBoosters(client)
    finally:
        client.close()


@dataclass
class DaskBoosters:
    """Fits the boosters of OBJECTIVES on the workers of ``client`` (a
    :class:`~training.forecaster.train.BoosterTrainer`)."""

    client: Client
    placement: dict[str, int] = field(default_factory=dict)
    """Worker address -> series of its partition, in the last fit."""

    def workers(self) -> list[str]:
        return sorted(self.client.nthreads())

    def run_params(self) -> dict[str, object]:
        """What the MLflow run logs about where it trained."""
        return {"trainer": "dask", "dask_workers": len(self.workers())}

    def run_tags(self) -> dict[str, str]:
        return {"trainer": "dask", "dask.scheduler": str(self.client.scheduler.address)}

    def __call__(self, panel: Panel, features: SeriesFeatures, config: TrainConfig) -> dict[str, lgb.Booster]:
        periods = config.periods(panel)  # of the whole panel: a partition has fewer series
        rows = self.training_frame(panel, features, periods)
        count = int(self.client.compute(rows.map_partitions(len).sum()).result())
        return {o: self._fit(rows, features, config, o, count) for o in OBJECTIVES}

    def training_frame(self, panel: Panel, features: SeriesFeatures, periods: int) -> dd.DataFrame:
        """The training rows as a dask DataFrame with one partition of whole series per worker, each
        computed on its worker from the series scattered to it (feature columns, TARGET, WEIGHT)."""
        workers = self.workers()
        groups = series_partitions(panel, periods, len(workers))
        parts: list[Future] = []
        self.placement = {}
        for worker, members in zip(workers, groups, strict=False):
            part = self.client.scatter(panel.select(panel.ids[members]), workers=[worker])
            parts.append(self.client.submit(partition_rows, part, features, periods, workers=[worker]))
            self.placement[worker] = len(members)
        return dd.from_delayed(parts, meta=_meta(features), verify_meta=False)

    def _fit(
        self, rows: dd.DataFrame, features: SeriesFeatures, config: TrainConfig, objective: str, count: int
    ) -> lgb.Booster:
        model = DaskLGBMRegressor(client=self.client, **estimator_params(config, objective, count))
        with self.client.as_current(), warnings.catch_warnings():  # it waits with the current client
            # lightgbm.dask always replaces the estimator's n_jobs by each worker's threads, and says so.
            warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored", UserWarning)
            model.fit(
                rows[features.names],
                rows[TARGET],
                sample_weight=rows[WEIGHT],
                feature_name=features.names,
                categorical_feature=features.categorical,
            )
        return local_booster(model.to_local().booster_)


def series_partitions(panel: Panel, periods: int, n: int) -> list[np.ndarray]:
    """Row indices of ``panel``'s series in ``n`` contiguous groups (fewer if there are fewer series) of
    about as many training rows each: a young series has fewer rows, and the slowest worker sets the pace."""
    window = panel.y[:, max(len(panel.dates) - periods, 1) :]
    load = np.maximum((~np.isnan(window)).sum(axis=1), 1).cumsum()
    bounds = np.searchsorted(load, load[-1] * np.arange(1, n) / n, side="right")
    return [g for g in np.split(np.arange(len(panel.ids)), bounds) if len(g)]


def partition_rows(panel: Panel, features: SeriesFeatures, periods: int) -> pd.DataFrame:
    """One partition's training rows (runs on a worker): :func:`training_rows` as a frame."""
    x, y, weight = training_rows(panel, features, periods)
    frame = pd.DataFrame(x, columns=features.names)
    frame[TARGET] = y
    frame[WEIGHT] = weight
    return frame


def estimator_params(config: TrainConfig, objective: str, rows: int) -> dict[str, object]:
    """The single-process booster parameters for the Dask estimator. Threads are the workers' own (Dask
    gives LightGBM each worker's ``nthreads``)."""
    native = config.booster_params(objective, rows)
    params = {_ESTIMATOR_NAMES.get(k, k): v for k, v in native.items() if k != "num_threads"}
    return {**params, "n_estimators": config.num_boost_round, "tree_learner": "data"}


def local_booster(booster: lgb.Booster) -> lgb.Booster:
    """``booster`` with the cluster's network settings in its saved parameters put back to a single
    process's (the same trees): loading or refitting it never looks for the cluster."""

    def single_process(line: str) -> str:
        name = line[1:].partition(":")[0]
        return (
            f"[{name}: {_SINGLE_PROCESS[name]}]\n"
            if line.startswith("[") and name in _SINGLE_PROCESS
            else line
        )

    lines = booster.model_to_string().splitlines(keepends=True)
    return lgb.Booster(model_str="".join(single_process(line) for line in lines))


def _meta(features: SeriesFeatures) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in (*features.names, TARGET, WEIGHT)})
