"""Stage 2: fit the BG/NBD and Gamma-Gamma models with PyMC-Marketing and keep their seven parameters.

Method. A MAP fit (``fit(method="map")``: scipy's L-BFGS on the model's log density) with flat priors
(``HalfFlat`` on r, alpha, a, b, p, q, v), so the MAP is the maximum-likelihood estimate. PyMC-Marketing's
default BG/NBD priors are written for a time unit of weeks or months (alpha ~ Weibull(2, 10)); in days they
would pull alpha, the scale of the purchase rates, towards 10 days whatever the data says. With tens of
thousands of customers the likelihood is sharp, so a full posterior (NUTS) would add minutes for intervals
no endpoint uses. The fitted numbers are all the served model keeps (``CustomerValueParameters``).

Gamma-Gamma is fitted on the customers with a repeat purchase and a positive mean repeat spend (the model
describes repeat spend; it is undefined for a customer without one).

pytensor. PyMC compiles the model's log density to C with the machine's C++ compiler and caches the modules
in its compile directory (``~/.pytensor`` by default). :func:`configure_pytensor` keeps that default when it
is usable and otherwise picks what works: a per-user folder under the temporary directory when the home
folder is not writable, and pytensor's pure-Python mode (no compilation, fits several times slower) when
there is no C++ compiler. ``PYTENSOR_FLAGS``, when set, always wins. Measured on 2 cores shared with other
work (load 5-8): importing PyMC-Marketing 4-8 s; with a warm compile cache both fits take 1 s on the tests'
sample (2,200 customers) and 11 s on the default sample (18k customers); the first fit on a machine
compiles first (~30-60 s). Serving never imports any of this.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from salespulse.modeling.customer_value import (
    BgNbdParameters,
    CustomerValueParameters,
    GammaGammaParameters,
)

FIT_METHOD = "map"


@dataclass(frozen=True)
class FittedCustomerValue:
    parameters: CustomerValueParameters
    customers: int
    repeat_customers: int  # the customers the Gamma-Gamma model was fitted on
    seconds_purchases: float
    seconds_spend: float


def configure_pytensor() -> None:
    """Make pytensor work on this machine before it is imported (see the module docstring)."""
    if "PYTENSOR_FLAGS" in os.environ:
        return
    flags = []
    if not os.access(Path.home(), os.W_OK):
        flags.append(f"base_compiledir={Path(tempfile.gettempdir()) / f'pytensor-{os.getuid()}'}")
    if shutil.which("g++") is None:
        flags.append("cxx=")
    if flags:
        os.environ["PYTENSOR_FLAGS"] = ",".join(flags)


def fit_customer_value(summary: pd.DataFrame) -> FittedCustomerValue:
    """Fit both models on ``summary`` (SUMMARY_NAMES columns, one row per customer, indexed by id)."""
    data = summary.rename_axis("customer_id").reset_index()
    started = time.perf_counter()
    purchases = fit_purchases(data)
    fitted_purchases = time.perf_counter()
    repeaters = data[(data["frequency"] > 0) & (data["monetary_value"] > 0)]
    spend = fit_spend(repeaters)
    return FittedCustomerValue(
        parameters=CustomerValueParameters(purchases, spend),
        customers=len(data),
        repeat_customers=len(repeaters),
        seconds_purchases=fitted_purchases - started,
        seconds_spend=time.perf_counter() - fitted_purchases,
    )


def fit_purchases(data: pd.DataFrame) -> BgNbdParameters:
    """BG/NBD by maximum likelihood, through PyMC-Marketing's ``BetaGeoModel``."""
    return BgNbdParameters(**_point_estimates(fit_purchase_model(data), ("r", "alpha", "a", "b")))


def fit_spend(data: pd.DataFrame) -> GammaGammaParameters:
    """Gamma-Gamma by maximum likelihood, through PyMC-Marketing's ``GammaGammaModel``."""
    return GammaGammaParameters(**_point_estimates(fit_spend_model(data), ("p", "q", "v")))


def fit_purchase_model(data: pd.DataFrame) -> Any:
    """The fitted ``BetaGeoModel`` of ``data`` (customer_id, frequency, recency, T columns)."""
    clv, prior = _library()
    model = clv.BetaGeoModel(
        data[["customer_id", "frequency", "recency", "T"]],
        model_config={name: prior("HalfFlat") for name in ("r", "alpha", "a", "b")},
    )
    _quietly(model.fit, method=FIT_METHOD, progressbar=False)
    return model


def fit_spend_model(data: pd.DataFrame) -> Any:
    """The fitted ``GammaGammaModel`` of ``data`` (customer_id, frequency, monetary_value columns; every
    customer with a repeat purchase of positive value). Its default priors are flat already; they are set
    here so that a change of the library's defaults cannot change the fit silently."""
    clv, prior = _library()
    model = clv.GammaGammaModel(
        data[["customer_id", "frequency", "monetary_value"]],
        model_config={name: prior("HalfFlat") for name in ("p", "q", "v")},
    )
    _quietly(model.fit, method=FIT_METHOD, progressbar=False)
    return model


def _library() -> tuple[Any, Any]:
    """PyMC-Marketing's CLV module and its Prior class, imported on first use (4-8 s, pytensor set up)."""
    configure_pytensor()
    from pymc_extras.prior import Prior
    from pymc_marketing import clv

    return clv, Prior


def _point_estimates(model: Any, names: tuple[str, ...]) -> dict[str, float]:
    # A MAP fit is stored as a posterior of one chain and one draw.
    return {name: float(model.fit_result[name].values.squeeze()) for name in names}


def _quietly(fit: Callable[..., Any], **kwargs: Any) -> None:
    """Run a fit without PyMC's progress logging and the library's warnings about experimental features,
    which say nothing about this data."""
    pymc_log = logging.getLogger("pymc")
    level = pymc_log.level
    pymc_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            fit(**kwargs)
    finally:
        pymc_log.setLevel(level)
