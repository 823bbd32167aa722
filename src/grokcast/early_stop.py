"""The early-stopping study: how much compute the forecaster saves, and at what cost in grokkers.

On a held-out sweep (runs the forecaster never saw), every policy below decides, from the
log alone, at which step each run would have been stopped; a run not stopped trains its
full ``n_steps``. Per policy and parameter the study reports

* ``saved``: the fraction of all training steps not trained, ``1 - sum(used) / sum(n_steps)``,
  where a run stopped at step r used r steps (r optimizer updates; one not stopped, its
  ``n_steps``);
* ``recall``: the fraction of grokking runs kept, where a grokking run (one whose val_acc
  reaches ``label_threshold`` at some logged step) counts as kept unless it was stopped at
  or before the first logged step at which it did (a run that grokked at a step below its
  stop was seen to grok);
* ``n_wrongly_stopped``: the grokking runs not kept.

Policies, all deciding at the forecaster's window W (see "at W" below) or at later rungs:

``forecaster``
    stop at W when P(grok) from steps [0, W) is below ``threshold`` (one row per threshold).
``percentile_val_loss``, ``percentile_val_acc``
    stop at W the k runs with the worst val loss (highest) / val acc (lowest) at W, for every
    k = 0..n_runs (Optuna's PercentilePruner at one step; ties by run_id, the earlier stopped
    first, where a percentile would stop or keep tied runs together: val acc takes few values,
    and on the paper's held-out sweep the tie order moves some rows' recall by 1/8, not the
    same-budget row's). Stopping as many runs at W as the forecaster does costs exactly its
    budget: the same-budget comparison.
``median_val_loss``, ``median_val_acc``
    the median stopping rule at W: stop a run whose metric is worse than the median at W of
    the runs where it is finite (a NaN is worse than any value).
``asha_val_loss``, ``asha_val_acc``
    successive halving at rungs W, fW, f²W, ... below n_steps (f = ``rung_factor``): at each
    rung keep the best ``ceil(keep_fraction * n_alive)`` of the runs still alive, for a grid of
    keep fractions (1/f is the textbook ASHA; with every run started at once, ASHA's
    promotions are synchronous successive halving).

"At W" is where the live stop rule (:func:`forecast_hook`) acts: it decides on the row of
step d, the last of the steps the forecaster's features read (its training sweep's logged
steps below W), and ``train_ensemble`` calls it after step d's update, so a run it stops has
trained d + 1 steps. The forecaster, percentile and median rules all read the rows through d
(the baselines' metric "at W" is its value at d, as ``grokcast evaluate``'s end-of-window
baselines read it) and a run they stop is charged d + 1 steps (:meth:`HeldOut.stop_step`). On
a schedule logging step W - 1 that is W: at W = 200 on the paper's, d = 199. Where W falls
between logged steps it is less (W = 350 or 400 on the paper's: d = 300, 301 steps charged),
and on a held-out sweep logged more densely than the forecaster's training sweep the rows
between d and W are never read.

Successive halving keeps its own rungs: stopping a run at rung r, it has read its rows
below r (a metric "at r" is its value at the last logged step below r) and is charged r
steps, whether or not r - 1 is logged: the rule's own convention, ASHA being none of
grokcast's live rules (on the paper's schedule its rung 400 reads step 300 and costs 400).
A NaN metric ranks worst.

Pure computation (:func:`simulate`, :func:`summarize`, :func:`format_markdown`) is separate
from I/O (:func:`write_study`, :func:`run_study`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import grokcast
from grokcast.features import feature_table, show_steps
from grokcast.signals import first_step_reaching
from grokcast.stats import format_percent
from grokcast.store import atomic_write_bytes
from grokcast.train import LogHook
from grokcast.validation import (
    check_int,
    check_list,
    check_number,
    check_path,
    plain_number,
    same_threshold,
)

POLICIES = ("forecaster", "percentile_val_loss", "percentile_val_acc", "median_val_loss",
            "median_val_acc", "asha_val_loss", "asha_val_acc")
PARAM_NAMES = {"forecaster": "threshold", "percentile": "fraction_stopped",
               "median": "fraction_stopped", "asha": "keep_fraction"}
DEFAULT_KEEP_FRACTIONS = tuple(round(k, 2) for k in np.arange(0.02, 1.0, 0.02))
DEFAULT_RUNG_FACTOR = 2.0  # rungs W, 2W, 4W, ...: halving's (ASHA with eta = 2) spacing
MIN_RECALL = 0.9  # the summary's operating point: keep at least 90% of grokking runs
# How the summary's τ was chosen: on the held-out forecasts of the forecaster's own training
# runs (run_study's default), fixed in advance, or on the simulated runs' outcomes (optimistic).
TAU_CHOICES = ("chosen on training runs", "fixed", "chosen on outcomes")
COLUMNS = ("policy", "signal", "param_name", "param", "window", "label_threshold", "n_runs",
           "n_grok", "n_excluded", "n_stopped", "n_wrongly_stopped", "steps_used",
           "steps_total", "saved", "recall")
_HIGHER_IS_BETTER = {"val_loss": False, "val_acc": True}


def training_threshold(train_heldout: Sequence[tuple[float, int]], min_recall: float) -> float:
    """A τ chosen before the study's runs are seen: the largest that keeps ``min_recall`` of the
    training runs' grokkers, judged by their held-out P(grok) (``ForecasterMetadata.
    train_heldout``: each from a model fit without the run).

    Stopping where P < τ keeps the grokkers with P >= τ. τ sits midway between the last
    grokker kept and the training run just below it (as a decision tree places a split), not
    on a training run's P: the held-out predictions are those of the CV's models, not of the
    final one, so a τ on the boundary would keep or lose a new run by the smallest margin.
    Every training grokker counts, also one that grokked before W, which the study's recall
    would not count as lost: τ errs towards keeping.
    """
    min_recall = check_number("min_recall", min_recall, 0, 1, closed="both")
    train_heldout = list(train_heldout)  # read twice below: a generator would be spent
    grokkers = sorted((p for p, y in train_heldout if y == 1), reverse=True)
    if not grokkers:
        raise ValueError("train_heldout holds no grokking run: no threshold can keep one")
    k = math.ceil(min_recall * len(grokkers) - 1e-9)  # grokkers to keep
    if k == 0:
        return 1.0
    last = grokkers[k - 1]
    below = [p for p, _ in train_heldout if p < last]
    return float((last + max(below, default=0.0)) / 2)


@dataclass(frozen=True)
class HeldOut:
    """The held-out runs as arrays: everything a policy or the scoring needs.

    Attributes
    ----------
    run_ids : ndarray of shape (R,)
    n_steps : ndarray of shape (R,)
        Steps each run trains when not stopped.
    grok_step : ndarray of shape (R,)
        First logged step with val_acc >= the label threshold; -1 for runs that never do.
    steps : ndarray of shape (S,)
        Logged steps, shared by all runs.
    val_loss, val_acc : ndarray of shape (R, S)
    p_grok : ndarray of shape (R,)
        The forecaster's P(grok) from steps [0, W). :func:`held_out` refuses non-finite
        features; a HeldOut built by hand may hold NaN, which the forecaster policy stops.
    n_excluded : int
        Runs of the sweep left out (diverged or stopped early: no known outcome).
    decide_step : int, optional
        The step whose row the live stop rule decides on: the last of the steps the
        forecaster's features read (:func:`held_out` sets it). Default: the last of ``steps``
        below W, where a forecaster fit on this schedule decides.
    """

    run_ids: np.ndarray
    n_steps: np.ndarray
    grok_step: np.ndarray
    steps: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    p_grok: np.ndarray
    n_excluded: int
    decide_step: int | None = None

    @property
    def grok(self) -> np.ndarray:
        return self.grok_step >= 0

    def metric_at(self, signal: str, step: int) -> np.ndarray:
        """``signal`` at the last logged step below ``step``, what a policy stopping there
        has read -> (R,)."""
        j = int(np.searchsorted(self.steps, step, side="left")) - 1
        if j < 0:
            raise ValueError(f"no logged step below {step}")
        return getattr(self, signal)[:, j]

    def decision_step(self, window: int) -> int:
        """The step d whose row the policies deciding at W read, as the live stop rule does."""
        if self.decide_step is None:
            below = self.steps[self.steps < window]
            if below.size == 0:
                raise ValueError(f"no logged step below W={window}")
            return int(below[-1])
        if self.decide_step >= window or self.decide_step not in self.steps:
            raise ValueError(f"decide_step={self.decide_step!r} is not allowed with W={window}: "
                             f"expected a logged step below W (logged: {show_steps(self.steps)})")
        return int(self.decide_step)

    def stop_step(self, window: int) -> int:
        """Steps trained by a run stopped at W: d + 1, the trainer calling the live rule's hook
        after step d's update (:func:`grokcast.train.train_ensemble`)."""
        return self.decision_step(window) + 1


# ----------------------------------------------------------------------------- policies

def _badness(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Larger is worse; NaN is worst of all."""
    bad = -values if higher_is_better else values.astype(float)
    return np.where(np.isnan(bad), np.inf, bad)


def forecaster_stops(p: np.ndarray, threshold: float, stop_step: int,
                     n_steps: np.ndarray) -> np.ndarray:
    """Steps each run trains: ``stop_step`` (:meth:`HeldOut.stop_step`, W where W - 1 is
    logged) where P(grok) < threshold (or NaN), else its n_steps -> (R,).

    Examples
    --------
    >>> forecaster_stops(np.array([0.1, 0.7, np.nan]), 0.5, 200, np.full(3, 10_000)).tolist()
    [200, 10000, 200]
    """
    stop = np.isnan(p) | (p < threshold)
    return np.where(stop, stop_step, n_steps)


def percentile_stops(values: np.ndarray, n_stop: int, stop_step: int, n_steps: np.ndarray, *,
                     higher_is_better: bool) -> np.ndarray:
    """Stop at ``stop_step`` the ``n_stop`` runs with the worst metric at W (ties: earlier run
    first) -> (R,).

    Examples
    --------
    >>> val_loss = np.array([2.0, 3.5, 3.0])
    >>> percentile_stops(val_loss, 2, 200, np.full(3, 10_000), higher_is_better=False).tolist()
    [10000, 200, 200]
    """
    order = np.argsort(-_badness(values, higher_is_better), kind="stable")  # worst first
    stop = np.zeros(len(values), dtype=bool)
    stop[order[:n_stop]] = True
    return np.where(stop, stop_step, n_steps)


def median_stops(values: np.ndarray, stop_step: int, n_steps: np.ndarray, *,
                 higher_is_better: bool) -> np.ndarray:
    """Stop at ``stop_step`` the runs whose metric is worse than the median at W of the runs
    where it is finite (a NaN counts as worse) -> (R,)."""
    bad = _badness(values, higher_is_better)
    finite = bad[np.isfinite(bad)]
    median = np.median(finite) if finite.size else np.inf
    return np.where(bad > median, stop_step, n_steps)


def rungs(window: int, n_steps: int, factor: float) -> list[int]:
    """Rung steps W, fW, f²W, ... strictly below ``n_steps`` (rounded, distinct).

    Examples
    --------
    >>> rungs(200, 10_000, 2.0)
    [200, 400, 800, 1600, 3200, 6400]
    """
    if factor <= 1:
        raise ValueError(f"rung_factor={factor!r} is not allowed: expected a number > 1")
    # More factors than steps would repeat rounded rungs (and, near 1, loop for hours).
    least = (n_steps / window) ** (1 / n_steps) if n_steps > window else 1.0
    if factor < least:
        raise ValueError(f"rung_factor={factor!r} is not allowed: from W={window} it would take more "
                         f"than {n_steps} rungs to reach step {n_steps}; expected a number >= "
                         f"{math.ceil(least * 1e6) / 1e6}")
    out: list[int] = []
    r = float(window)
    while round(r) < n_steps:
        if not out or round(r) > out[-1]:
            out.append(round(r))
        r *= factor
    return out


def halving_stops(data: HeldOut, signal: str, keep_fraction: float, rung_steps: Sequence[int],
                  ) -> np.ndarray:
    """Successive halving: at each rung keep the best ceil(keep_fraction * alive) -> (R,).

    Ties keep the earlier run (a stable sort, best first), as the percentile rule's stop the
    earlier run first: each rule's own order; neither is a property of the runs."""
    stop_at = data.n_steps.copy()
    alive = np.ones(len(stop_at), dtype=bool)
    for r in rung_steps:
        idx = np.flatnonzero(alive & (data.n_steps > r))
        if idx.size == 0:
            break
        bad = _badness(data.metric_at(signal, r)[idx], _HIGHER_IS_BETTER[signal])
        n_keep = math.ceil(keep_fraction * idx.size - 1e-9)  # 1e-9: 0.14 * 50 is 7.000000000000001, 7 not 8
        cut = idx[np.argsort(bad, kind="stable")[n_keep:]]
        stop_at[cut] = r
        alive[cut] = False
    return stop_at


def score(stop_at: np.ndarray, data: HeldOut) -> dict[str, Any]:
    """Compute saved and grokking runs kept, for runs stopped at ``stop_at`` (R,)."""
    used = np.minimum(stop_at, data.n_steps)
    stopped = stop_at < data.n_steps
    kept = data.grok & (~stopped | (data.grok_step < stop_at))  # seen: the rows below stop_at
    n_grok = int(data.grok.sum())
    return {
        "n_stopped": int(stopped.sum()),
        "n_wrongly_stopped": int(n_grok - kept.sum()),
        "steps_used": int(used.sum()), "steps_total": int(data.n_steps.sum()),
        "saved": float(1 - used.sum() / data.n_steps.sum()),
        "recall": float(kept.sum() / n_grok),
    }


# ----------------------------------------------------------------------------- simulation

def held_out(runs_df: pd.DataFrame, log_df: pd.DataFrame, forecaster: Any, *, window: int,
             label_threshold: float = 0.9) -> HeldOut:
    """Lay out a held-out sweep for :func:`simulate`; P(grok) from the forecaster.

    Runs whose ``status`` is not ``finished`` (diverged, or stopped early by a hook) have no
    known outcome and are left out (counted in ``n_excluded``).
    """
    _check_table("runs table", runs_df, ("run_id", "n_steps", "status"), ("run_id",))
    _check_table("log", log_df, ("run_id", "step", "val_loss", "val_acc"), ("run_id", "step"))
    finished = runs_df[runs_df["status"] == "finished"].sort_values("run_id", ignore_index=True)
    if len(finished) < 2:
        raise ValueError(f"the sweep holds {len(finished)} finished run(s); the study needs at "
                         "least 2")
    run_ids = finished["run_id"].astype(str).to_numpy()
    log = log_df[log_df["run_id"].isin(set(run_ids))]
    n_steps = finished["n_steps"].to_numpy(dtype=np.int64)
    if window >= n_steps.min():
        raise ValueError(f"window={window} is not allowed: runs train {int(n_steps.min())} steps, "
                         "so stopping at W would save nothing")
    wide = {s: log.pivot(index="run_id", columns="step", values=s).reindex(run_ids)
            for s in ("val_loss", "val_acc")}
    steps = wide["val_acc"].columns.to_numpy(dtype=np.int64)
    val_acc = wide["val_acc"].to_numpy(dtype=float)
    if np.isnan(val_acc).all(axis=1).any():
        raise ValueError(f"run {run_ids[np.isnan(val_acc).all(axis=1)][0]!r} has no log rows")
    # The policies compare runs at shared steps (a logged row always has its val_acc): a run
    # without a row that others log would be read as NaN there, ranked worst, and stopped for a
    # gap in its log.
    gap = np.isnan(val_acc) & (steps <= n_steps[:, None])
    if gap.any():
        r, j = np.argwhere(gap)[0]
        raise ValueError(f"run {run_ids[r]!r} has no val_acc at step {steps[j]}, which other runs "
                         "log: the policies compare runs at the same logged steps; expected runs "
                         "logged on one schedule (one sweep's), each row with its val_acc")
    grok_step = first_step_reaching(steps, val_acc, label_threshold)  # NaN (after a stop): never
    if not (grok_step >= 0).any():
        from grokcast.tool import too_short_hint

        # The forecaster's own step budget, as `evaluate` passes it: a sweep as long is not
        # told to train as long.
        label_steps = getattr(getattr(forecaster, "metadata_", None), "label_steps", None)
        raise ValueError(f"no finished run reaches val_acc >= {label_threshold:g}: the fraction "
                         "of grokking runs kept is undefined; "
                         + too_short_hint(float(np.nanmax(val_acc)), int(n_steps.max()),
                                          label_steps))

    from grokcast.analysis import feature_matrix
    from grokcast.tool import checked_window, model_inputs

    # The features are read at the steps the forecaster's training runs logged, no others. A
    # finished run with a non-finite value there has a suspect log: refused, as by `evaluate`,
    # rather than scored NaN and counted as stopped (a wrong stop of a grokker).
    table = feature_matrix(checked_window(forecaster, log, window), run_ids, window)
    p = forecaster.predict_proba(model_inputs(forecaster, table))[:, 1]
    # The live rule decides on the last step the features read (forecast_hook), which on a
    # sweep logged more densely than the forecaster's is below this sweep's last step under W.
    meta = getattr(forecaster, "metadata_", None)
    decide = None if meta is None else meta.last_read_step()
    return HeldOut(run_ids=run_ids, n_steps=n_steps, grok_step=grok_step.astype(np.int64),
                   steps=steps, val_loss=wide["val_loss"].to_numpy(dtype=float), val_acc=val_acc,
                   p_grok=p, n_excluded=int(len(runs_df) - len(finished)), decide_step=decide)


def _check_table(what: str, df: pd.DataFrame, columns: Sequence[str], key: Sequence[str]) -> None:
    """Refuse a table that lacks a column or holds a key twice (a run counted twice)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"the {what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"the {what} lacks column(s) {missing}")
    twice = df[df.duplicated(list(key), keep=False)]
    if not twice.empty:
        first = ", ".join(f"{k}={twice.iloc[0][k]!r}" for k in key)
        raise ValueError(f"the {what} holds {len(twice)} rows with a repeated "
                         f"{' and '.join(key)} (e.g. {first}): expected one per "
                         f"{' and '.join(key)}")


def simulate(runs_df: pd.DataFrame, log_df: pd.DataFrame, forecaster: Any, *, window: int,
             thresholds: Sequence[float] | None = None,
             keep_fractions: Sequence[float] = DEFAULT_KEEP_FRACTIONS,
             rung_factor: float = DEFAULT_RUNG_FACTOR, label_threshold: float = 0.9,
             also: Sequence[float] = ()) -> pd.DataFrame:
    """Simulate every stopping policy on a held-out sweep.

    Parameters
    ----------
    runs_df, log_df : DataFrame
        The held-out sweep's runs table and log (``SweepStore.runs()``, ``SweepStore.log()``).
    forecaster : GrokForecaster
        Fitted on named features, at window ``window``.
    window : int
        W: the forecaster, percentile and median rules stop at W; it is ASHA's first rung.
    thresholds : sequence of float, optional
        P(grok) thresholds of the forecaster policy (a run is stopped when P < threshold).
        Default: every achievable operating point, i.e. each distinct held-out P(grok) and
        one just above the largest.
    also : sequence of float, optional
        Thresholds simulated besides ``thresholds`` (a τ fixed in advance, :func:`summarize`).
    keep_fractions : sequence of float in (0, 1]
        Successive halving's fraction kept per rung.
    rung_factor : float, default=2.0
        Successive halving's rung spacing.
    label_threshold : float, default=0.9
        A run groks when its val_acc reaches this.

    Returns
    -------
    DataFrame
        One row per (policy, parameter), columns :data:`COLUMNS`, policies in
        :data:`POLICIES` order, parameters increasing.
    """
    from grokcast.forecast import GrokForecaster, fitted_window

    if isinstance(forecaster, str | os.PathLike):  # as run_study and stop_rule take it
        forecaster = GrokForecaster.load(forecaster)
    window = check_int("window", window, 2)
    rung_factor = check_number("rung_factor", rung_factor, 1, math.inf)
    label_threshold = check_number("label_threshold", label_threshold, 0, 1, closed="hi")
    fitted = fitted_window(forecaster)
    if fitted is not None and fitted != window:
        raise ValueError(f"window={window} is not allowed: the forecaster was fit on "
                         f"window={fitted}")
    # Read once, as lists: a generator would be spent by its check, and an array has no truth
    # value for `if also`.
    if thresholds is not None:
        thresholds = _check_grid("thresholds", thresholds, lo_open=False)
    keep_fractions = _check_grid("keep_fractions", keep_fractions, lo_open=True)
    also = [] if also is None else check_list("also", also)
    data = held_out(runs_df, log_df, forecaster, window=window, label_threshold=label_threshold)
    if thresholds is None:  # not a fixed grid: a strongly regularised forecaster puts all its
        # probabilities within a hair of 0.5, where a grid of 0.01 steps would see nothing
        p = np.unique(data.p_grok[np.isfinite(data.p_grok)])
        thresholds = [*p.tolist(), float(np.nextafter(p.max(), np.inf))] if p.size else [0.5]
    if also:
        thresholds = sorted({*map(float, thresholds), *_check_grid("also", also, lo_open=False)})
    return simulate_held_out(data, window=window, thresholds=thresholds,
                             keep_fractions=keep_fractions, rung_factor=rung_factor,
                             label_threshold=label_threshold)


def simulate_held_out(data: HeldOut, *, window: int, thresholds: Sequence[float],
                      keep_fractions: Sequence[float], rung_factor: float,
                      label_threshold: float) -> pd.DataFrame:
    """:func:`simulate` on an already laid-out :class:`HeldOut`."""
    n_runs = len(data.run_ids)
    rows: list[dict[str, Any]] = []

    def add(policy: str, signal: str, param: float, stop_at: np.ndarray) -> None:
        rows.append({"policy": policy, "signal": signal,
                     "param_name": PARAM_NAMES[policy.split("_")[0]], "param": float(param),
                     **score(stop_at, data)})

    # Where the live rule stops (the module docstring, "at W"): the baselines read the same
    # row and cost the same, so stopping as many runs costs exactly the forecaster's budget.
    stop_step = data.stop_step(window)
    for t in sorted(thresholds):
        add("forecaster", "p_grok", t, forecaster_stops(data.p_grok, t, stop_step, data.n_steps))
    for signal in ("val_loss", "val_acc"):
        at_w = data.metric_at(signal, stop_step)  # the row of step stop_step - 1 = d
        for k in range(n_runs + 1):
            add(f"percentile_{signal}", signal, k / n_runs,
                percentile_stops(at_w, k, stop_step, data.n_steps,
                                 higher_is_better=_HIGHER_IS_BETTER[signal]))
    for signal in ("val_loss", "val_acc"):
        stop = median_stops(data.metric_at(signal, stop_step), stop_step, data.n_steps,
                            higher_is_better=_HIGHER_IS_BETTER[signal])
        rows.append({"policy": f"median_{signal}", "signal": signal,
                     "param_name": "fraction_stopped",
                     "param": float(np.mean(stop < data.n_steps)), **score(stop, data)})
    rung_steps = rungs(window, int(data.n_steps.max()), rung_factor)
    for signal in ("val_loss", "val_acc"):
        for kf in sorted(keep_fractions):
            add(f"asha_{signal}", signal, kf, halving_stops(data, signal, kf, rung_steps))
    df = pd.DataFrame(rows)
    df.insert(4, "window", int(window))
    df.insert(5, "label_threshold", float(label_threshold))
    df.insert(6, "n_runs", n_runs)
    df.insert(7, "n_grok", int(data.grok.sum()))
    df.insert(8, "n_excluded", int(data.n_excluded))
    order = {p: i for i, p in enumerate(POLICIES)}
    df = df.sort_values(["policy", "param"], kind="stable", ignore_index=True,
                        key=lambda c: c.map(order) if c.name == "policy" else c)
    return df[list(COLUMNS)]


def _check_grid(name: str, values: Sequence[float], *, lo_open: bool) -> list[float]:
    """``values`` as a list of floats, refused unless non-empty and within [0, 1] (``lo_open``:
    (0, 1]); a float32 value is the decimal it prints as, as :func:`check_number` takes it."""
    values = check_list(name, values)
    try:
        # float() of np.float32(0.4) is 0.4000000059604645: a keep fraction that keeps
        # ceil(0.4 * 10) = 5 runs, not 4, and a row that summarize(threshold=0.4) cannot find.
        arr = np.asarray([plain_number(v) for v in values], dtype=float)
    except (TypeError, ValueError, OverflowError):
        arr = np.array([np.nan])  # refused below, naming the list
    lo_ok = (arr > 0) if lo_open else (arr >= 0)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr) & lo_ok & (arr <= 1)):
        interval = "(0, 1]" if lo_open else "[0, 1]"
        raise ValueError(f"{name}={list(values)!r} is not allowed: expected a non-empty list of "
                         f"numbers in {interval}")
    return arr.tolist()


# ----------------------------------------------------------------------------- summary

def _entry(row: pd.Series) -> dict[str, Any]:
    return {"param_name": row["param_name"], "param": float(row["param"]),
            "saved": float(row["saved"]), "recall": float(row["recall"]),
            "n_stopped": int(row["n_stopped"]), "n_wrongly_stopped": int(row["n_wrongly_stopped"])}


def summarize(df: pd.DataFrame, *, min_recall: float = MIN_RECALL,
              threshold: float | None = None, tau: str | None = None) -> dict[str, Any]:
    """The study's headline: the forecaster's best saving that keeps ``min_recall`` of grokkers,
    or, with ``threshold``, the forecaster at that τ, chosen as ``tau`` says (default "fixed":
    in advance; :func:`run_study` passes "chosen on training runs", see
    :func:`training_threshold`).

    The forecaster's operating point is the row with the most compute saved among those with
    ``recall >= min_recall``; of equal savings, the smallest threshold, a given ``threshold``
    last (added to the grid, it would otherwise stand for the grid's τ of its interval). That
    choice reads the
    runs' outcomes, so its saving is optimistic for a τ set before seeing them; ``threshold``
    (simulated: :func:`simulate`'s ``also``) reports that τ instead, whatever it keeps.
    ``tau`` in the result says which (:data:`TAU_CHOICES`), and ``on_outcomes`` holds the row
    chosen on the outcomes in either case, for comparison. The baselines are
    given at the same budget: the percentile rules stopping as many runs at W (exactly the
    same compute), and successive halving at the keep fraction whose saving is closest
    (``saved`` tells how close). The median rules have one budget each and are given as is.

    Returns
    -------
    dict
        ``window``, ``label_threshold``, ``min_recall``, ``n_runs``, ``n_grok``,
        ``n_excluded``, ``tau``, ``forecaster`` (None only when τ is chosen on the outcomes
        and no threshold keeps ``min_recall``), ``on_outcomes`` (None when no threshold keeps
        ``min_recall``),
        ``same_budget`` (``percentile_val_loss``, ``percentile_val_acc``, ``asha_val_loss``,
        ``asha_val_acc``; None where ``forecaster`` is) and ``median`` (``median_val_loss``,
        ``median_val_acc``). Each entry has ``param_name``, ``param``, ``saved``, ``recall``,
        ``n_stopped`` and ``n_wrongly_stopped``.
    """
    min_recall = check_number("min_recall", min_recall, 0, 1, closed="both")
    tau = tau or ("chosen on outcomes" if threshold is None else "fixed")
    if tau not in TAU_CHOICES or (tau == "chosen on outcomes") != (threshold is None):
        raise ValueError(f"tau={tau!r} is not allowed: expected one of {TAU_CHOICES[:2]} with a "
                         "threshold, or 'chosen on outcomes' without one")
    missing = [c for c in COLUMNS if c not in getattr(df, "columns", ())]
    if missing or df.empty:
        raise ValueError("summarize needs simulate's table (one row per policy and parameter): "
                         + (f"this one lacks column(s) {missing}" if missing else "this one is empty"))
    first = df.iloc[0]
    out: dict[str, Any] = {
        "window": int(first["window"]), "label_threshold": float(first["label_threshold"]),
        "min_recall": float(min_recall), "n_runs": int(first["n_runs"]),
        "n_grok": int(first["n_grok"]), "n_excluded": int(first["n_excluded"]),
        "forecaster": None, "same_budget": None,
        "median": {p: _entry(df[df["policy"] == p].iloc[0])
                   for p in ("median_val_loss", "median_val_acc")},
        "tau": tau, "on_outcomes": None,
    }
    # As simulate stores it: np.float32(0.2) is the row of 0.2, not of 0.20000000298.
    param = None if threshold is None else float(plain_number(threshold))
    on_outcomes = _chosen_on_outcomes(df, min_recall, param)
    out["on_outcomes"] = None if on_outcomes is None else _entry(on_outcomes)
    if param is not None:
        given = df[(df["policy"] == "forecaster") & (df["param"] == param)]
        if given.empty:
            raise ValueError(f"threshold={threshold!r} is not allowed: it is not among the "
                             "simulated thresholds (pass it to simulate's also=)")
        best = given.iloc[0]
    elif on_outcomes is None:
        return out
    else:
        best = on_outcomes
    out["forecaster"] = _entry(best)
    out["same_budget"] = _same_budget(df, best)
    return out


def _chosen_on_outcomes(df: pd.DataFrame, min_recall: float,
                        threshold: float | None) -> pd.Series | None:
    """The forecaster row with the most saved among those keeping ``min_recall`` (None where
    none does); of equal savings the smallest τ, a given ``threshold`` last."""
    fc = df[(df["policy"] == "forecaster") & (df["recall"] >= min_recall - 1e-12)]
    # Of equal savings, a τ of the simulated grid before the given one: the given τ (added to
    # the grid by simulate's also=) stops the same runs as the grid's τ of its interval, and
    # would otherwise be named the τ chosen on the outcomes whenever it is the smaller.
    is_given = fc["param"] == (np.nan if threshold is None else float(threshold))
    return None if fc.empty else fc.assign(_given=is_given).sort_values(
        ["saved", "_given", "param"], ascending=[False, True, True], kind="stable").iloc[0]


def _same_budget(df: pd.DataFrame, best: pd.Series) -> dict[str, Any]:
    """The baselines at the forecaster row ``best``'s budget: the percentile rules stopping as
    many runs at W, and successive halving at the keep fraction whose saving is closest."""
    same: dict[str, Any] = {}
    for signal in ("val_loss", "val_acc"):
        same[f"percentile_{signal}"] = _entry(_percentile_row(df, signal, best["n_stopped"]))
    for signal in ("val_loss", "val_acc"):
        asha = df[df["policy"] == f"asha_{signal}"]
        gap = (asha["saved"] - best["saved"]).abs().to_numpy()
        same[f"asha_{signal}"] = _entry(asha.iloc[int(np.argmin(gap))])  # first of ties
    return same


def _percentile_row(df: pd.DataFrame, signal: str, n_stopped: int) -> pd.Series:
    """The percentile rule on ``signal`` that stops ``n_stopped`` runs at W: the same compute
    as a forecaster row that does."""
    return df[(df["policy"] == f"percentile_{signal}") & (df["n_stopped"] == n_stopped)].iloc[0]


POLICY_LABELS = {
    "forecaster": "forecaster: stop at W if P(grok) < τ",
    "percentile_val_loss": "stop the k worst by val loss at W",
    "percentile_val_acc": "stop the k worst by val acc at W",
    "median_val_loss": "median rule at W, val loss",
    "median_val_acc": "median rule at W, val acc",
    "asha_val_loss": "successive halving (ASHA-style), val loss",
    "asha_val_acc": "successive halving (ASHA-style), val acc",
}


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines of :func:`summarize`'s result."""
    s = summary
    left_out = f", {s['n_excluded']} left out" if s["n_excluded"] else ""
    lines = [f"held-out runs: {s['n_runs']} ({s['n_grok']} grok at val_acc >= "
             f"{s['label_threshold']:g}){left_out}; stopping at W={s['window']}"]
    fc = s["forecaster"]
    if fc is None:
        lines.append(f"no forecaster threshold keeps {format_percent(s['min_recall'])} of grokking runs")
    else:
        short = (f", fewer than the {format_percent(s['min_recall'])} it was chosen to keep"
                 if s.get("tau") == "chosen on training runs" and fc["recall"] < s["min_recall"]
                 else "")
        lines.append(f"forecaster, τ = {fc['param']:g} ({_tau_how(s)}): saves {fc['saved']:.1%} "
                     f"of steps, keeps {fc['recall']:.1%} of grokking runs "
                     f"({fc['n_wrongly_stopped']} wrongly stopped{short})")
        for key, e in s["same_budget"].items():
            lines.append(f"  {POLICY_LABELS[key]} ({e['param_name']} {e['param']:.2f}): saves "
                         f"{e['saved']:.1%}, keeps {e['recall']:.1%}")
    for key, e in s["median"].items():
        lines.append(f"{POLICY_LABELS[key]}: saves {e['saved']:.1%}, keeps {e['recall']:.1%}")
    best = _beside(s)
    if best is not None:
        lines.append(f"for comparison, τ = {best['param']:g} chosen on these runs' outcomes (the "
                     f"most saved keeping >= {format_percent(s['min_recall'])} of grokking runs, an "
                     f"optimistic operating point): saves {best['saved']:.1%}, keeps {best['recall']:.1%}")
    lines += [f"note: {note}" for note in s.get("notes", [])]
    return "\n".join(lines)


def _beside(s: dict[str, Any]) -> dict[str, Any] | None:
    """The row of the τ chosen on the outcomes where the summary's τ was chosen otherwise (it
    is shown beside it, for comparison); None where it is the summary's, or there is none."""
    return None if s.get("tau") == "chosen on outcomes" else s.get("on_outcomes")


def _tau_how(s: dict[str, Any]) -> str:
    """How the summary's τ was chosen, in words (τ picked with these runs' outcomes is
    optimistic: said where the number is read)."""
    if s.get("tau") == "fixed":
        return "fixed in advance"
    if s.get("tau") == "chosen on training runs":
        return (f"chosen before these runs were seen, to keep >= {format_percent(s['min_recall'])} of the "
                "training runs' grokkers by their held-out P(grok)")
    return (f"chosen on these runs' outcomes as the most saved keeping >= {format_percent(s['min_recall'])} "
            "of grokking runs: an optimistic operating point")


# Thresholds and keep fractions shown in the Markdown tables (the JSON holds every row).
TABLE_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TABLE_KEEP_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


def format_markdown(df: pd.DataFrame, summary: dict[str, Any]) -> str:
    """The study as Markdown: forecaster vs percentile rules at equal budgets, then the others."""
    s = summary
    lines = [
        f"# Early stopping at W = {s['window']} on a held-out sweep",
        "",
        _markdown_intro(s),
        *[f"\nNote: {note}." for note in s.get("notes", [])],
        "",
        "## Same budget: stop the same number of runs at W",
        "",
        "Rows: the forecaster thresholds that stop the same runs as τ = "
        + ", ".join(f"{t:g}" for t in TABLE_THRESHOLDS)
        + " (the smallest tried at or above each), the summary's, and the one chosen on the "
          "outcomes.",
        "",
        "| τ | stopped at W | saved | kept: forecaster | kept: worst val loss "
        "| kept: worst val acc | wrongly stopped: forecaster |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in _shown_forecaster_rows(df, s).iterrows():
        same = {sig: _percentile_row(df, sig, row["n_stopped"]) for sig in ("val_loss", "val_acc")}
        mark = " **(summary)**" if (s["forecaster"] is not None
                                    and row["param"] == s["forecaster"]["param"]) else ""
        if _beside(s) is not None and row["param"] == s["on_outcomes"]["param"]:
            mark += " *(on outcomes)*"
        lines.append(f"| {row['param']:g}{mark} | {row['n_stopped']} | {_pct(row['saved'])} | "
                     f"{_pct(row['recall'])} | {_pct(same['val_loss']['recall'])} | "
                     f"{_pct(same['val_acc']['recall'])} | {row['n_wrongly_stopped']} |")
    lines += ["", "## Other rules", "",
              "| rule | parameter | saved | kept | wrongly stopped |", "|---|---|---|---|---|"]
    others = df[df["policy"].str.startswith(("median", "asha"))]
    for _, row in others.iterrows():
        if row["policy"].startswith("asha") and round(row["param"], 6) not in TABLE_KEEP_FRACTIONS:
            continue
        lines.append(f"| {POLICY_LABELS[row['policy']]} | {row['param_name']} {row['param']:.2f} | "
                     f"{_pct(row['saved'])} | {_pct(row['recall'])} | {row['n_wrongly_stopped']} |")
    return "\n".join(lines) + "\n"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _markdown_intro(s: dict[str, Any]) -> str:
    """The Markdown's first paragraph: the runs, what saved and kept mean, and how the
    summary's τ was chosen."""
    return (
        f"{s['n_runs']} runs, {s['n_grok']} of them grok (val_acc >= {s['label_threshold']:g})"
        + (f"; {s['n_excluded']} diverged or early-stopped run(s) left out (no known outcome)"
           if s["n_excluded"] else "")
        + ". Saved: fraction of all training steps not trained. Kept: fraction of grokking runs "
          "not stopped at or before the first logged step they grokked at. "
        # Without a forecaster row (τ chosen on the outcomes, none keeping min_recall) no τ
        # was chosen: format_summary says so, and so does the table's text.
        + (f"The summary's τ was {_tau_how(s)}" if s["forecaster"] is not None else
           f"No τ tried keeps >= {format_percent(s['min_recall'])} of grokking runs, so the summary has "
           "no τ")
        + ("" if _beside(s) is None else
           "; the τ marked *(on outcomes)* is the most saved keeping >= "
           f"{format_percent(s['min_recall'])} of these runs' grokkers, chosen with their outcomes: an "
           "optimistic operating point")
        + ". early_stop.json lists every τ.")


def _shown_forecaster_rows(df: pd.DataFrame, s: dict[str, Any]) -> pd.DataFrame:
    """The forecaster rows the Markdown shows: those of :data:`TABLE_THRESHOLDS`, the
    summary's and the one chosen on the outcomes."""
    fc = df[df["policy"] == "forecaster"]
    # The default thresholds are the held-out P(grok) values, which never equal the display
    # values: τ = t stops the runs with P < t, as the smallest threshold at or above t does.
    params = np.sort(fc["param"].unique())
    shown = {params[i] for i in np.searchsorted(params, TABLE_THRESHOLDS) if i < len(params)}
    for key in ("forecaster", "on_outcomes"):
        if s.get(key) is not None:
            shown.add(s[key]["param"])
    return fc[fc["param"].isin(shown)]


# ----------------------------------------------------------------------------- I/O

def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_study(df: pd.DataFrame, out_dir: str | os.PathLike, *,
                summary: dict[str, Any] | None = None,
                min_recall: float = MIN_RECALL,
                provenance: dict[str, Any] | None = None) -> list[Path]:
    """Write the study: ``early_stop.json`` (summary, every row, and what produced them),
    ``early_stop.md``, and the figure ``early_stop.png`` / ``early_stop.pdf`` (compute saved vs
    grokking runs kept). ``provenance`` joins the grokcast version in the JSON's
    ``provenance`` (:func:`run_study` gives the forecaster file's SHA-256 and both sweeps'
    hashes).

    Returns
    -------
    list of Path
        The four written files, in that order.
    """
    from grokcast.figures import fig_early_stop, save_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summary if summary is not None else summarize(df, min_recall=min_recall)
    paths = [out / "early_stop.json", out / "early_stop.md"]
    doc = {"summary": summary, "rows": df.to_dict(orient="records"),
           "provenance": {"grokcast_version": grokcast.__version__, **(provenance or {})}}
    # Atomic like the analysis' results: an interrupted write never leaves half a file.
    atomic_write_bytes(paths[0], (json.dumps(_json_safe(doc), indent=2, allow_nan=False) + "\n").encode())
    atomic_write_bytes(paths[1], format_markdown(df, summary).encode())
    labels = {policy: POLICY_LABELS[policy] for policy in POLICIES}
    paths += save_figure(lambda: fig_early_stop(df, summary, labels), out, "early_stop")
    return paths


def run_study(forecaster_path: str | os.PathLike, heldout_sweep_dir: str | os.PathLike,
              out_dir: str | os.PathLike, *, thresholds: Sequence[float] | None = None,
              keep_fractions: Sequence[float] = DEFAULT_KEEP_FRACTIONS,
              rung_factor: float = DEFAULT_RUNG_FACTOR, label_threshold: float | None = None,
              min_recall: float = MIN_RECALL, allow_same_sweep: bool = False,
              partial: bool = False, threshold: float | None = None) -> dict[str, Any]:
    """Run the study for a saved forecaster on a held-out sweep and write its files.

    Parameters
    ----------
    forecaster_path : path
        A file written by ``grokcast fit``; its window is W.
    heldout_sweep_dir : path
        A sweep directory of runs the forecaster was not fit on (e.g. unseen seeds).
    out_dir : path
        Where :func:`write_study` writes.
    thresholds, keep_fractions, rung_factor
        The policies' settings, as in :func:`simulate`.
    label_threshold : float, optional
        Default: the threshold the forecaster's labels used. One within
        :data:`grokcast.validation.THRESHOLD_REL_TOL` of it (0.9 read back from float32) is
        taken as it.
    min_recall : float
        The share of grokkers the summary's τ must keep: by default τ is chosen on the
        forecaster file's held-out P(grok) of its training runs (:func:`training_threshold`),
        before the held-out runs are seen; for a file without them (or another
        ``label_threshold``), on the held-out runs' outcomes (:func:`summarize`), an optimistic
        choice that the summary's ``notes`` and ``tau`` name. The summary's ``on_outcomes`` is
        that optimistic τ in either case, for comparison.
    allow_same_sweep : bool, default=False
        Allow the sweep the forecaster was fit on (its hash is in the file), or a sweep holding
        any of its training runs (:func:`grokcast.tool.runs_in_training`); the numbers are then
        partly or wholly in-sample, not held out.
    partial : bool, default=False
        Allow an unfinished sweep (:meth:`grokcast.store.SweepStore.check_finished`).
    threshold : float, optional
        A P(grok) threshold τ fixed in advance: the summary reports it instead of the τ
        chosen by ``min_recall``.

    Returns
    -------
    dict
        :func:`summarize`'s result plus ``notes`` (a held-out sweep trained for another
        number of steps than the forecaster's training runs, whose labels then mean something
        else; a τ chosen on the outcomes for want of the training runs' held-out P(grok)) and
        ``paths`` (the written files, as strings).
    """
    from grokcast.analysis import sweep_hash
    from grokcast.tool import open_scored_sweep

    # The numbers first: the sweep's checks read its whole log.
    min_recall = check_number("min_recall", min_recall, 0, 1, closed="both")
    if threshold is not None:
        threshold = check_number("threshold", threshold, 0, 1, closed="both")
    if label_threshold is not None:
        label_threshold = check_number("label_threshold", label_threshold, 0, 1, closed="hi")
    check_path("forecaster_path", forecaster_path, "a forecaster file (grokcast fit --out)")
    check_path("heldout_sweep_dir", heldout_sweep_dir, "a sweep directory (grokcast sweep --out)")
    check_path("out_dir", out_dir, "the directory for the study's table and figure")
    model, config, runs, log = open_scored_sweep(forecaster_path, heldout_sweep_dir,
                                                 partial=partial)
    meta = model.metadata_
    heldout_hash = sweep_hash(runs, log)  # one pass over the log: the check and the record
    if not allow_same_sweep:
        _check_held_out(meta, heldout_hash, runs, log, str(heldout_sweep_dir))
    # The file's own threshold where the given one is it up to float32 rounding: compared
    # exactly, 0.9 read back from a float32 column (0.8999999762) chose τ on the outcomes.
    label: float = meta.threshold
    if label_threshold is not None and not same_threshold(label_threshold, meta.threshold):
        label = label_threshold
    threshold, tau, why = _choose_tau(meta, label, min_recall, threshold)
    notes = [meta.horizon_note(config.n_steps, "the held-out sweep's runs"), why]
    df = simulate(runs, log, model, window=meta.window, thresholds=thresholds,
                  keep_fractions=keep_fractions, rung_factor=rung_factor, label_threshold=label,
                  also=() if threshold is None else (threshold,))
    summary = summarize(df, min_recall=min_recall, threshold=threshold, tau=tau)
    summary["notes"] = [note for note in notes if note]
    provenance = {"forecaster": str(forecaster_path), "forecaster_sha256": file_sha256(forecaster_path),
                  "train_sweep_hash": meta.sweep_hash, "label_steps": meta.label_steps,
                  "heldout_sweep": str(heldout_sweep_dir), "heldout_sweep_hash": heldout_hash,
                  "heldout_n_steps": config.n_steps}
    paths = write_study(df, out_dir, summary=summary, provenance=provenance)
    return {**summary, "paths": [str(p) for p in paths]}


def _choose_tau(meta: Any, label: float, min_recall: float, threshold: float | None,
                ) -> tuple[float | None, str | None, str | None]:
    """The summary's τ for :func:`summarize` (None: chosen there, on the outcomes), how it was
    chosen (``tau``) and, where it falls back to the outcomes, why."""
    if threshold is not None:
        return check_number("threshold", threshold, 0, 1, closed="both"), "fixed", None
    if meta.train_heldout is None:
        return None, None, ("the forecaster file records no held-out P(grok) of its training runs "
                            "(train_heldout: an older file, or one saved without it), so τ was "
                            "chosen on these runs' outcomes; grokcast fit records them")
    if not same_threshold(label, meta.threshold):
        # repr, not :g, whose six digits can print two thresholds as one
        return None, None, (f"τ was chosen on these runs' outcomes: the training runs' held-out "
                            f"P(grok) are labelled at {float(meta.threshold)!r}, not at "
                            f"label_threshold={float(label)!r}")
    return training_threshold(meta.train_heldout, min_recall), "chosen on training runs", None


def _check_held_out(meta: Any, heldout_hash: str, runs: pd.DataFrame, log: pd.DataFrame,
                    where: str) -> None:
    """Refuse a sweep (its ``sweep_hash``: ``heldout_hash``) that is, or holds runs of, the one
    the forecaster was fit on."""
    from grokcast.tool import runs_in_training

    if heldout_hash == meta.sweep_hash:
        raise ValueError(f"{where!r} is the sweep the forecaster was fit on: the study needs "
                         "held-out runs (a sweep with other seeds)")
    seen = runs_in_training(meta, log) or []
    if seen:
        shown = ", ".join(seen[:3]) + (", ..." if len(seen) > 3 else "")
        raise ValueError(f"{len(seen)} of the {runs['run_id'].nunique()} runs of {where!r} are "
                         f"among the forecaster's training runs (the same log over steps "
                         f"0..{meta.window - 1}: {shown}): the study needs held-out runs (a "
                         "sweep with other seeds, or a forecaster fit without these runs)")


# ----------------------------------------------------------------------------- live stopping


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class StopRule:
    """Stop a live run when a saved forecaster gives it P(grok) below ``below`` from its first
    W steps: at the last logged step below W that the forecaster reads (W - 1 on a dense
    schedule), once that row's update columns are known.

    A :class:`grokcast.sweep.Stopper`: ``run_sweep(..., stop=rule)`` applies it to every chunk.
    """

    model: str  # path of a forecaster file (``grokcast fit``)
    below: float
    # The file's SHA-256 when the rule was made: every chunk checks the file still holds it.
    model_sha256: str

    def __post_init__(self) -> None:
        if (isinstance(self.below, bool) or not isinstance(self.below, (int, float, np.number))
                or not 0.0 <= self.below <= 1.0):
            raise ValueError(f"stop threshold {self.below!r} is not allowed: expected a "
                             "probability in [0, 1]")

    @classmethod
    def from_file(cls, model: str | os.PathLike, below: float) -> StopRule:
        """The rule for the forecaster file ``model`` as it is now."""
        if not Path(model).is_file():
            raise FileNotFoundError(f"forecaster file {str(model)!r} does not exist (grokcast fit "
                                    "writes one)")
        return cls(str(model), below, file_sha256(model))

    def hook(self, chunk: Sequence[Any]) -> LogHook:
        return forecast_hook(self, chunk)

    def check(self, config: Any) -> None:
        """Raise, before any run of the sweep ``config`` trains, what a chunk would: the file
        must be a forecaster of the sweep's task whose window fits the runs and whose steps
        the schedule logs."""
        from grokcast.config import SweepConfig
        from grokcast.forecast import GrokForecaster

        if not isinstance(config, SweepConfig):
            raise TypeError(f"config must be the sweep's SweepConfig, got {type(config).__name__}")
        GrokForecaster.load(self.model).metadata_.check_task(config.task(), "this sweep")
        forecast_hook(self, config.runs()[:1])  # builds the hook once

    def record(self) -> dict[str, Any]:
        """The forecaster file by content (``model`` is only where it was: a moved copy
        resumes the sweep)."""
        return {"model": str(self.model), "model_sha256": self.model_sha256,
                "below": float(self.below)}


def stop_rule(model: str | os.PathLike, below: float, config: Any) -> StopRule:
    """A :class:`StopRule` for a sweep of ``config``, checked before any run trains: the file
    must be a forecaster whose window fits the runs and whose steps the schedule logs."""
    from grokcast.forecast import GrokForecaster

    GrokForecaster.load(model)  # first: it names a file that is missing or not a forecaster
    rule = StopRule.from_file(model, below)
    rule.check(config)
    return rule


def forecast_hook(rule: StopRule, runs: Sequence[Any]) -> LogHook:
    """An ``on_log`` hook for :func:`grokcast.train.train_ensemble` that applies ``rule``.

    It keeps the rows of the steps the forecaster's features were computed on (its
    ``metadata_.required_steps()``, all below W) and, at the last of them (when that row's
    update columns are known), computes the 28 features of every run, as the forecaster's
    own sweep did, and stops those it scores below the threshold. Runs whose features are
    not finite (diverged) are stopped too.
    """
    from grokcast.signals import SIGNAL_NAMES

    model, needed = _stop_model(rule, runs)
    decide_at, run_ids, rows = max(needed), [r.run_id for r in runs], []
    seen: list[int] = []

    def hook(step: int, values: np.ndarray) -> np.ndarray | None:
        # train_ensemble calls it so; a caller of its own gets an error, not a P(grok) of
        # steps skipped, repeated or out of order.
        values = np.asarray(values)
        if values.shape != (len(run_ids), len(SIGNAL_NAMES)):
            raise ValueError(f"the hook got values of shape {values.shape} at step {step}: "
                             f"expected ({len(run_ids)}, {len(SIGNAL_NAMES)}), a row of "
                             "SIGNAL_NAMES per run, as train_ensemble's on_log passes them")
        if step in needed:
            if seen and step <= seen[-1]:
                raise ValueError(f"the hook got step {step} after step {seen[-1]}: expected the "
                                 "logged steps once each, in increasing order")
            seen.append(step)
            rows.append(pd.DataFrame(values, columns=list(SIGNAL_NAMES)).assign(
                run_id=run_ids, step=step))
        if step != decide_at:
            return None
        if len(seen) != len(needed):
            missing = sorted(needed - set(seen))
            raise ValueError(f"the hook decides at step {decide_at} but never got step(s) "
                             f"{show_steps(missing)} that the forecaster's features read")
        # The log holds the required steps only, the last at decide_at, so the window
        # decide_at + 1 reads exactly them (no feature reads W itself): the log need not
        # reach W - 1 where W falls between logged steps (sparse logging).
        p = _p_grok(model, pd.concat(rows, ignore_index=True), run_ids, decide_at + 1)
        # A diverged run is stopped whatever the threshold, even below = 0: it cannot grok.
        return np.isnan(p) | (p < rule.below)

    return hook


def _stop_model(rule: StopRule, runs: Sequence[Any]) -> tuple[Any, set[int]]:
    """The rule's forecaster, checked against the ensemble's ``runs`` (the file unchanged, the
    task the same, the window within the runs, its steps logged), and the steps its features
    read (all below W)."""
    from grokcast.forecast import GrokForecaster

    if not runs:
        raise ValueError("forecast_hook needs the runs of the ensemble it will see, got none")
    if file_sha256(rule.model) != rule.model_sha256:
        raise ValueError(f"the forecaster file {rule.model} changed during the sweep (its "
                         f"SHA-256 was {rule.model_sha256[:12]}): the runs stored so far were "
                         "stopped by the old one; restore it, or train into a new --out")
    model = GrokForecaster.load(rule.model)
    # run_sweep checks the sweep's task first (StopRule.check); a hook given to
    # train_ensemble directly is checked here.
    model.metadata_.check_task(runs[0].task(), "this ensemble")
    window = model.metadata_.window
    logged = [s for s in runs[0].log.steps(runs[0].n_steps) if s < window]
    if window > runs[0].n_steps or not logged:
        raise ValueError(f"the forecaster's window W={window} does not fit runs of "
                         f"{runs[0].n_steps} steps")
    # The features are computed on the steps the forecaster's training runs logged, no more,
    # so the decision falls on the last of them (the trainer's rows do not depend on which
    # other steps it logs).
    needed = set(model.metadata_.required_steps())
    missing = model.metadata_.missing_steps(logged)
    if missing:
        raise ValueError(f"the sweep's log schedule skips step(s) {show_steps(missing)} below "
                         f"W={window} that the stop model's features were computed on: log with "
                         f"the schedule of the sweep it was fit on{model.metadata_.steps_hint()}")
    return model, needed


def _p_grok(model: Any, log: pd.DataFrame, run_ids: list[str], window: int) -> np.ndarray:
    """P(grok) of each run from its log below ``window``; NaN for a run with nothing finite to
    read: a diverged one (its loss or update norm not finite, which the feature table would
    read as a log ending early) or one with a non-finite feature the model reads."""
    from grokcast.tool import model_inputs

    diverged = ~np.isfinite(log[["train_loss", "update_norm"]]).all(axis=1)
    live = ~diverged.groupby(log["run_id"]).any().reindex(run_ids).to_numpy()
    p = np.full(len(run_ids), np.nan)
    if not live.any():
        return p
    kept = [r for r, keep in zip(run_ids, live) if keep]
    features = model_inputs(model, feature_table(log[log["run_id"].isin(kept)], window).loc[kept])
    finite = np.isfinite(features.to_numpy()).all(axis=1)  # the features the model reads
    if finite.any():
        p[np.flatnonzero(live)[finite]] = model.predict_proba(features[finite])[:, 1]
    return p
