"""Connections to hyperparameter tuners: what a trial reports and how P(grok) is read from it.

A tuner stops a trial at step W when the forecaster's P(grok) from the trial's first W steps
is below a threshold. The trial reports the 28 window features (:mod:`grokcast.features`) of
its own log once the window is complete; the tuner side applies the forecaster. The features
are small (28 floats) and storage-agnostic, where the raw log of W = 200 steps is ~40 kB.

* :mod:`grokcast.integrations.optuna`: ``GrokPruner`` (an Optuna pruner) and ``TrialReporter``;
  needs ``pip install 'grokcast[optuna]'``.
* :mod:`grokcast.integrations.ray`: ``GrokStopper`` (a Ray Tune stopper) and ``run_sweep_ray``
  (a sweep executor on Ray); needs ``pip install 'grokcast[ray]'``.

This module itself needs neither tuner. It holds what both share: the features of one run's
log (:func:`window_features`), a :class:`FeatureRecorder` that computes them from a plain
PyTorch loop through :class:`~grokcast.monitor.GrokMonitor`, and the forecaster side
(:func:`resolve_forecaster`, :func:`p_grok`).

A trial whose window features are not finite (a run that diverged inside the window) gets
P(grok) = NaN, and the pruner and the stopper stop it: it cannot be forecast, and a diverged
run does not grok.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

from grokcast.config import LogConfig
from grokcast.features import FEATURE_NAMES
from grokcast.monitor import GrokMonitor
from grokcast.validation import check_int, check_number

__all__ = ["FeatureRecorder", "decode_features", "encode_features", "p_grok",
           "resolve_forecaster", "should_stop", "window_features"]


def window_features(log_df: pd.DataFrame, window: int, forecaster: Any = None, *,
                    last_row: int | None = None) -> dict[str, float]:
    """The 28 window features of one run, from its log.

    Pass the ``forecaster`` the features are for (a fitted one or its JSON file): the log is
    then cut to the steps below W its training runs logged, and refused if it lacks one.
    Features such as slopes and standard deviations depend on which steps the window holds,
    so a log on another schedule (denser, or thinned) would otherwise give another P(grok)
    without a word.

    Parameters
    ----------
    log_df : DataFrame
        One run's log with a sweep log's columns (``run_id``, ``step``, then
        :data:`~grokcast.signals.SIGNAL_NAMES`), starting at step 0 and reaching step W - 1
        with its update known, i.e. step W observed (rows at and past W are ignored), or
        ``last_row`` where given.
    window : int
        W >= 2.
    last_row : int, optional
        For a log whose schedule is known, e.g. ``GrokMonitor.log`` once
        ``GrokMonitor.ready``, with ``GrokMonitor.last_read_step``: the last step below W the
        features read (see :func:`grokcast.tool.window_features`). The log need then reach
        only it, with its update known, not W - 1.

    Returns
    -------
    dict of str to float
        :data:`~grokcast.features.FEATURE_NAMES` in registry order. Values may be NaN when
        the run diverged inside the window.

    Raises
    ------
    ValueError
        A column is missing, the log holds several runs, does not start at step 0, or does
        not cover the window.
    """
    from grokcast.tool import window_features as tool_window_features

    if not isinstance(log_df, pd.DataFrame):
        raise TypeError(f"log_df must be a pandas DataFrame (one run's log, e.g. GrokMonitor.log), "
                        f"got {type(log_df).__name__}")
    if "run_id" in log_df.columns:
        run_ids = pd.unique(log_df["run_id"])
        if len(run_ids) > 1:
            raise ValueError(f"expected the log of one run, got {len(run_ids)} runs "
                             f"({list(run_ids[:3])}{', ...' if len(run_ids) > 3 else ''})")
    if forecaster is not None:
        forecaster, window = resolve_forecaster(forecaster, window)
    # The checks of `grokcast forecast` (columns, steps, values no run can log: an accuracy
    # in percent, a negative loss, a NaN accuracy, which the features would read as a step
    # not logged), but NaN and inf losses pass: a diverging trial's features are NaN, and
    # its tuner stops it.
    table = tool_window_features(forecaster, log_df, window, finite=False, last_row=last_row)
    # One row read off the numpy values: pandas deep-copies a frame's attrs (its window_steps,
    # W ints) on every column or row it hands out, ~40 ms a call at W = 10,000 read per column.
    row = table.to_numpy(dtype=float)[0]
    return dict(zip(map(str, table.columns), map(float, row), strict=True))


def encode_features(features: Mapping[str, float], window: int) -> dict[str, Any]:
    """The JSON-safe report of a trial: ``{"window": W, "features": {name: value or None}}``.

    Non-finite values become ``None`` (strict JSON has no NaN; Optuna's database storages
    and Ray's result files both serialise reports as JSON).
    """
    window = check_int("window", window, 2)  # 200.7 is not a window (int() made it 200)
    _check_mapping(features)
    _check_numbers(features, features)
    return {"window": window,
            "features": {str(k): (float(v) if math.isfinite(v) else None)
                         for k, v in features.items()}}


def _check_numbers(features: Mapping[str, Any], names: Iterable[str]) -> None:
    """Refuse, by name, the first of ``names`` whose value in ``features`` is not a number."""
    bad = next((s for s in names if not _is_real(features[s])), None)
    if bad is not None:
        raise TypeError(f"feature {bad!r}={features[bad]!r} is not allowed: expected a number "
                        "(NaN where it is not computable)")


def _check_mapping(features: Any) -> None:
    if not isinstance(features, Mapping):
        raise TypeError(f"features must be a mapping of feature name to value (window_features' "
                        f"result), got {type(features).__name__}")


def decode_features(report: Any) -> tuple[int, dict[str, float]]:
    """Inverse of :func:`encode_features`: ``(window, features)``, ``None`` read as NaN."""
    if (not isinstance(report, Mapping) or "window" not in report
            or not isinstance(report.get("features"), Mapping)):
        raise ValueError(f"a grokcast report is {{'window': W, 'features': {{name: value}}}}, "
                         f"got {report!r:.200}")
    window = report["window"]  # numpy numbers too: a hand-built or flattened result holds them
    if not _is_real(window) or not float(window).is_integer():
        raise ValueError(f"a grokcast report's window is a whole number of steps, got {window!r}")
    bad = next(((k, v) for k, v in report["features"].items() if v is not None and not _is_real(v)),
               None)
    if bad is not None:
        raise ValueError(f"a grokcast report's feature {bad[0]!r} is {bad[1]!r}: expected a number "
                         "or None")
    feats = {str(k): (math.nan if v is None else float(v)) for k, v in report["features"].items()}
    return int(window), feats


def _is_real(value: Any) -> bool:
    """A real number, numpy's included; a bool is not one (True is no feature value)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def resolve_forecaster(forecaster: Any, window: int | None) -> tuple[Any, int]:
    """A fitted forecaster and the window it applies to.

    Parameters
    ----------
    forecaster : GrokForecaster or path
        A fitted forecaster, or the JSON file written by ``grokcast fit``.
    window : int or None
        W. Default: the window recorded in the forecaster file; required for a forecaster
        that was not loaded from a file. Must equal the recorded one when both are known.
    """
    from sklearn.base import BaseEstimator
    from sklearn.utils.validation import check_is_fitted

    from grokcast.forecast import as_forecaster, check_window, fitted_window

    forecaster = as_forecaster(forecaster)
    # Refused now, not at step W of the first trial; a model of another library (anything
    # with predict_proba passes as_forecaster) is taken at its word.
    if isinstance(forecaster, BaseEstimator):
        check_is_fitted(forecaster)
    if window is None:
        fitted = fitted_window(forecaster)
        if fitted is None:
            raise ValueError("window=None is not allowed for a forecaster without a recorded "
                             "window: pass window=W, the window it was fit on")
        return forecaster, fitted
    return forecaster, check_window(window, forecaster, minimum=2)


def check_threshold(threshold: Any) -> float:
    """A probability threshold in [0, 1]."""
    return check_number("threshold", threshold, 0, 1, closed="both")


def p_grok(forecaster: Any, features: Mapping[str, float]) -> float:
    """P(grok) of one run from its window features; NaN if a feature it uses is not finite.

    Parameters
    ----------
    forecaster : GrokForecaster or path
        Fitted (or the file ``grokcast fit`` wrote, loaded on every call); its
        ``feature_names_in_`` (or, without names, all 28 features in registry order) must be
        among ``features``.
    features : mapping of str to float

    Returns
    -------
    float
    """
    from grokcast.forecast import as_forecaster

    forecaster = as_forecaster(forecaster)  # a path is loaded (on every call: load it once)
    _check_mapping(features)
    names = getattr(forecaster, "feature_names_in_", None)
    names = [str(s) for s in names] if names is not None else list(FEATURE_NAMES)
    missing = [s for s in names if s not in features]
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise ValueError(f"the reported features lack {missing[:5]}{more} that the forecaster "
                         "uses: report all of grokcast.features.FEATURE_NAMES")
    _check_numbers(features, names)
    row = np.array([[features[s] for s in names]], dtype=float)  # (1, n_features)
    if not np.isfinite(row).all():
        return math.nan
    X = pd.DataFrame(row, columns=names) if hasattr(forecaster, "feature_names_in_") else row
    return float(forecaster.predict_proba(X)[0, 1])


def should_stop(p: float, threshold: float) -> bool:
    """The stopping rule: P(grok) below the threshold, or not computable (NaN)."""
    return math.isnan(p) or p < threshold


class FeatureRecorder:
    """A :class:`~grokcast.monitor.GrokMonitor` that hands over the window features once.

    For a plain PyTorch loop: call :meth:`observe` exactly as ``GrokMonitor.observe`` (every
    step from 0, after ``loss.backward()`` and before ``optimizer.step()``). It returns the 28
    window features on the one call that completes the window and ``None`` on every other.
    The window is complete at ``GrokMonitor.forecast_step``, d + 1, d being the last step
    below W the features read (row d's update columns need theta_{d+1}): W where they read
    step W - 1, 301 at W = 350 or 400 on the paper's schedule, the step where
    ``grokcast sweep --stop-model`` decides.

    Parameters
    ----------
    embedding, unembedding : Tensor
        As for :class:`~grokcast.monitor.GrokMonitor`.
    window : int, optional
        W; default: the forecaster's, else 200.
    forecaster : GrokForecaster or path, optional
        For W, for ``self.monitor.forecast()``, and for the steps its features were computed
        on: the schedule must log them (checked when the recorder is made) and the features
        are computed on them alone. Give the recorder the forecaster the pruner or stopper
        uses; without one, the features come from every logged step below W. Any model
        the pruner takes will do (a scikit-learn pipeline too); ``self.monitor.forecast()``
        explains its P(grok), and so needs a GrokForecaster.
    log_schedule : LogConfig, default=LogConfig()
        Use the schedule of the sweep the forecaster was fit on.
    run_id : str, default="monitor"
    """

    def __init__(self, embedding: Tensor, unembedding: Tensor, *, window: int | None = None,
                 forecaster: Any = None, log_schedule: LogConfig = LogConfig(),
                 run_id: str = "monitor") -> None:
        # explain=False: a tuner's pruner takes any model that gives P(grok) (a scikit-learn
        # pipeline too), and the recorder only computes the features it reads.
        self.monitor = GrokMonitor(embedding, unembedding, window=window, forecaster=forecaster,
                                   log_schedule=log_schedule, run_id=run_id, explain=False)
        self.features: dict[str, float] | None = None

    @property
    def window(self) -> int:
        return self.monitor.window

    def wants(self, step: int) -> bool:
        """Whether ``step`` is logged, so :meth:`observe` needs the fit statistics."""
        return self.monitor.wants(step)

    def observe(self, step: int, model: Any, **metrics: float) -> dict[str, float] | None:
        """Record a step; return the window features on the call that completes the window."""
        self.monitor.observe(step, model, **metrics)
        if self.features is not None:
            return None
        if not self.monitor.ready:  # step d + 1 observed: row d's update is known
            return None
        self.features = window_features(self.monitor.log, self.window, self.monitor.forecaster,
                                        last_row=self.monitor.last_read_step)
        return self.features
