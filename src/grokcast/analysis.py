"""The paper's analysis of a sweep: labels, features, AUROCs with CIs, paired tests, tables.

:func:`analyze` is pure: it takes the runs and log tables and returns the content of
``analysis.json`` (schema: ``docs/analysis-schema.md``). :func:`write_results` writes that and
the tables; :func:`analyze_sweep` reads a sweep directory and does both.

Method (paper §5-6), per label threshold and window W:

* label ``y = max_val_acc >= threshold``; diverged runs and runs stopped early are left out
  (and counted);
* univariate AUROC of each of the 28 features (raw value as the score) and its folded value;
* ``multi``: held-out probabilities of the 28-feature logistic regression
  (:func:`grokcast.logistic.loo_predictions`, or 10-fold above :data:`LOO_MAX_RUNS` runs);
* baselines ``val_loss`` (score = -end_val_loss) and ``val_acc`` (score = end_val_acc), not
  folded;
* percentile bootstrap CIs over runs and paired-bootstrap differences multi - baseline, all on
  the *same* resamples (the held-out predictions are resampled, not refitted);
* ``multi_cell_out``: the paper's model again, leaving out a whole grid cell (every seed of
  one train fraction and weight decay) at a time, so that no run is predicted by a model that
  saw its seed-siblings (with ``orders``, also in each run order);
* optionally (``orders``), ``multi``'s AUROC again with the runs given in random orders: the
  model's internal CV is not shuffled, so its folds, its C and its predictions depend on the
  order of the runs, which the reference does not state.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import grokcast
import grokcast.features as features_module
from grokcast.config import SweepConfig
from grokcast.features import feature_table, run_id_values
from grokcast.forecast import WINDOW_DIGEST_HEX
from grokcast.logistic import (
    TooFewRunsError,
    group_predictions,
    kfold_predictions,
    loo_predictions,
)
from grokcast.signals import reaches
from grokcast.stats import (
    MAX_RESAMPLES,
    auroc,
    bootstrap_ci,
    folded_auroc,
    format_p,
    format_percent,
    paired_bootstrap,
    strength_key,
)
from grokcast.validation import (
    check_bool,
    check_int,
    check_list,
    check_number,
    check_path,
    plain_number,
    same_threshold,
)

# Leave-one-out refits the model n times; above 200 runs 10-fold CV costs n/10 times less, and
# with 180+ training runs per fold its pessimism relative to LOO (training on 90% instead of
# n - 1 runs) is negligible next to the bootstrap CI.
LOO_MAX_RUNS = 200
KFOLD_SPLITS = 10
# Each run order repeats the held-out predictions of every cell (~0.3 s per cell at 48 runs):
# 10,000 orders is already hours; more is a typo, refused before any fitting.
MAX_ORDERS = 10_000
# Leaving out one grid cell at a time solves a problem of (cells, runs, 29) floats per array;
# above this many cells x runs (~46 MB an array) multi_cell_out is skipped, as LOO stops at
# LOO_MAX_RUNS runs.
MAX_CELL_OUT_SIZE = 200_000
DEFAULT_WINDOWS = (100, 200, 300, 500)  # the reference's early windows W
PRIMARY_WINDOW = 200  # the paper's headline window (reference §5): Table 3, figures 1, 3 and 5


def primary_window(windows: Sequence[int | str]) -> int:
    """W = 200, the paper's headline window, if analysed, else the middle analysed window.

    The one rule for Table 3 (here and in the paper) and the figures.
    """
    ws = sorted(int(w) for w in windows)
    return PRIMARY_WINDOW if PRIMARY_WINDOW in ws else ws[(len(ws) - 1) // 2]
CURVE_COLUMNS = ("train_acc", "val_acc", "train_loss", "val_loss")
FIT_ACC = 0.99  # train accuracy that counts as fitting the train set, for the dynamics summary
HYPERPARAMETER_AXES = ("train_frac", "weight_decay")  # the grid's axes, known before training
_BOOKKEEPING = ("chunk", "chunk_seconds")  # how a sweep was run, not what it produced

PredictFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
_HeldOutFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]  # (X, y, rng)


@dataclass(frozen=True)
class _Hyper:
    """What the baselines known before training need (:func:`_hyperparameter_baselines`)."""
    ranks: np.ndarray  # (n_runs, k): each run's rank on each axis
    axes: list[str]  # the k grid axes that vary
    fit: bool  # also fit the paper's model on them: not beside a custom predictor


class AnalysisResult(dict):
    """The ``analysis.json`` content (a plain JSON-able dict) plus two tables for the files.

    Attributes
    ----------
    features : DataFrame or None
        ``run_id``, ``window`` and the 28 features (written as ``features.parquet``).
    curves : DataFrame or None
        ``run_id``, ``step``, ``train_acc``, ``val_acc``, ``train_loss``, ``val_loss`` of the
        analysed runs at every logged step (written as ``curves.parquet``, for figures).
    """

    def __init__(self, content: dict[str, Any], features: pd.DataFrame | None = None,
                 curves: pd.DataFrame | None = None) -> None:
        super().__init__(content)
        self.features = features
        self.curves = curves


# ----------------------------------------------------------------------------- helpers

def _key(threshold: float) -> str:
    """JSON key of a threshold: ``format(threshold, ".12g")``, e.g. "0.9", "0.99" (not "g":
    its six digits would label 0.9999999 as "1")."""
    return format(threshold, ".12g")


def result_key(result: dict[str, Any], threshold: float | str) -> str:
    """The key of ``result["thresholds"]`` for ``threshold``: a key as given (``"0.9"``), or a
    number that is an analysed threshold up to float32 rounding
    (:func:`grokcast.validation.same_threshold`): ``np.float32(0.9)``, whose 12 digits
    (``_key``) are 0.899999976158, is "0.9"."""
    keys = list(result["thresholds"])
    if isinstance(threshold, str):
        if threshold in keys:
            return threshold
    elif isinstance(threshold, (int, float, np.integer, np.floating)) and not isinstance(threshold, bool):
        if (exact := _key(plain_number(threshold))) in keys:
            return exact
        close = [k for k in keys if same_threshold(float(k), threshold)]
        if len(close) == 1:
            return close[0]
    raise ValueError(f"threshold={threshold!r} is not allowed: expected one of the analysed "
                     f"thresholds {[float(k) for k in keys]} (or its key, e.g. {keys[0]!r})")


def _float(x: Any) -> float | None:
    """A plain JSON float; NaN and infinities become None (null)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _rng(seed: int, threshold: float, window: int, stream: int) -> np.random.Generator:
    """A generator for one (threshold, window) cell, independent of which other cells are run.

    Keyed by values rather than positions, so adding a window or threshold leaves the numbers
    of the others unchanged. ``stream`` 0 is the bootstrap, 1 the k-fold shuffle, 2 the
    bootstrap of :func:`feature_difference`.
    """
    key = (round(threshold * 1_000_000), window, stream)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def run_orders(n_runs: int, n_orders: int, seed: int) -> np.ndarray:
    """``n_orders`` random permutations of ``range(n_runs)``, shape (n_orders, n_runs).

    Drawn from ``seed`` alone (its own stream, apart from every cell's), so every threshold
    and window sees the same orders and a window's AUROC can be compared across windows
    order by order.
    """
    check_int("n_runs", n_runs, 0)
    check_int("n_orders", n_orders, 0, MAX_ORDERS)
    check_int("seed", seed, 0)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    return np.array([rng.permutation(n_runs) for _ in range(n_orders)], dtype=np.int64
                    ).reshape(n_orders, n_runs)


# A held-out predictor's rng: a generator, or None for one that draws nothing.
_Rng = TypeVar("_Rng", np.random.Generator, None)


def _in_order(predict: Callable[[np.ndarray, np.ndarray, _Rng], np.ndarray], X: np.ndarray,
              y: np.ndarray, order: np.ndarray, rng: _Rng) -> np.ndarray:
    """Held-out probabilities with the runs given to ``predict`` in ``order``, returned in the
    runs' own order."""
    proba = np.empty(len(y))
    proba[order] = predict(X[order], y[order], rng)
    return proba


def _canonical_f8(arr: np.ndarray) -> np.ndarray:
    """Little-endian float64 with one NaN bit pattern: equal values give equal bytes."""
    return np.where(np.isnan(arr), np.nan, arr).astype("<f8")


def _column_bytes(values: pd.Series) -> bytes:
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return _canonical_f8(values.to_numpy(dtype=float)).tobytes()
    return "\x1f".join("" if pd.isna(v) else str(v) for v in values).encode()


def sweep_hash(runs_df: pd.DataFrame, log_df: pd.DataFrame) -> str:
    """SHA-256 of a sweep's data, independent of row order and of how it was chunked.

    Hashes the runs table sorted by ``run_id`` (without the bookkeeping columns ``chunk`` and
    ``chunk_seconds``) and the log sorted by (``run_id``, ``step``), columns in name order;
    numbers as little-endian float64 with one NaN bit pattern, text as UTF-8. The exact byte
    stream (table and column separators, the log's run ids as codes) is this function's:
    ``docs/analysis-schema.md`` spells it out.

    Returns
    -------
    str
        64 hex digits.
    """
    h = hashlib.sha256()
    # By the run ids' values: a Categorical column would sort by its categories' order, and
    # the same data would hash differently.
    runs = runs_df.assign(run_id=run_id_values(runs_df["run_id"]))
    runs = runs.sort_values("run_id", kind="stable", ignore_index=True)
    log = log_df.assign(run_id=run_id_values(log_df["run_id"]))
    log = log.sort_values(["run_id", "step"], kind="stable", ignore_index=True)
    for label, table in (("runs", runs), ("log", log)):
        h.update(f"[{label} {len(table)}]".encode())
        for col in sorted(c for c in table.columns if c not in _BOOKKEEPING):
            h.update(f"\x1e{col}\x1e".encode())
            if col == "run_id" and label == "log":  # codes + names: fast for millions of rows
                codes, names = pd.factorize(table[col], sort=True)
                h.update(codes.astype("<i8").tobytes())
                h.update("\x1f".join(map(str, names)).encode())
            else:
                h.update(_column_bytes(table[col]))
    return h.hexdigest()


# The signals a window digest hashes: the log's columns when the digest was defined, fixed
# so that a signal added to SIGNAL_NAMES later does not change every run's digest (a
# forecaster file fit before it would no longer recognise its training runs, silently).
DIGEST_SIGNALS = (
    "train_loss", "val_loss", "train_acc", "val_acc",
    "param_norm", "grad_norm", "erank_we", "erank_wu", "train_margin",
    "update_norm", "update_cos",
)


def window_digests(log_df: pd.DataFrame, window: int) -> dict[str, str]:
    """Each run's fingerprint of what a forecaster reads from it: SHA-256 (its first
    :data:`WINDOW_DIGEST_HEX` hex digits) of the run's log rows with ``step < window``, sorted
    by step, the step and the signals (:data:`DIGEST_SIGNALS`, in that order: the
    :data:`~grokcast.signals.SIGNAL_NAMES` of this file format, not those added since) as
    little-endian float64 with one NaN bit pattern; not its run id.

    Two runs share it when their early logs are bitwise equal, which for grokcast's
    deterministic training means the same run: a forecaster file keeps its training runs'
    digests so that a run it was fit on is recognised in another sweep (``evaluate``,
    ``early-stop-study``), however that sweep names or groups it.

    Returns
    -------
    dict
        run_id -> digest, for every run with a row below ``window``.
    """
    cols = ["step", *DIGEST_SIGNALS]
    rows = log_df.loc[log_df["step"] < window, ["run_id", *cols]]
    rows = rows.sort_values(["run_id", "step"], kind="stable", ignore_index=True)
    values = _canonical_f8(rows[cols].to_numpy(dtype=float))
    ids = rows["run_id"].astype(str).to_numpy()
    starts = [0, *np.flatnonzero(ids[1:] != ids[:-1]) + 1] if len(ids) else []
    ends = [*starts[1:], len(ids)]
    return {str(ids[a]): hashlib.sha256(values[a:b].tobytes()).hexdigest()[:WINDOW_DIGEST_HEX]
            for a, b in zip(starts, ends)}


def _check_args(windows: Sequence[int], thresholds: Sequence[float], n_resamples: int,
                level: float, seed: int) -> tuple[list[int], list[float]]:
    windows = check_list("windows", windows)
    if not windows or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 2
                          for w in windows) or len(set(windows)) != len(windows):
        raise ValueError(f"windows={windows!r} is not allowed: expected distinct integers >= 2")
    given = check_list("thresholds", thresholds)
    try:
        thresholds = [check_number("threshold", t, 0, 1, closed="hi") for t in given]
    except ValueError as err:
        raise ValueError(f"thresholds={given!r} is not allowed: {err}") from None
    if not thresholds or len({_key(t) for t in thresholds}) != len(thresholds):
        raise ValueError(f"thresholds={given!r} is not allowed: expected distinct numbers in (0, 1]")
    check_int("n_resamples", n_resamples, 1, MAX_RESAMPLES)
    check_number("level", level, 0, 1)
    check_int("seed", seed, 0)
    return [int(w) for w in windows], thresholds


def _n_splits(y: np.ndarray) -> int:
    """Outer folds for k-fold CV: stratified folds need as many members of each class as folds."""
    n_minority = int(min(y.sum(), len(y) - y.sum()))
    return max(2, min(KFOLD_SPLITS, n_minority))


def _default_predict(n_runs: int) -> tuple[str, _HeldOutFn]:
    """The paper's held-out predictor: LOO up to LOO_MAX_RUNS runs, stratified k-fold above."""
    if n_runs <= LOO_MAX_RUNS:
        return "loo", lambda X, y, rng: loo_predictions(X, y)
    return f"{KFOLD_SPLITS}-fold", \
        lambda X, y, rng: kfold_predictions(X, y, n_splits=_n_splits(y), rng=rng)


# The ``cv`` of an analysis made with a custom ``predict_fn``: this prefix and its name.
CUSTOM_CV = "custom:"


def custom_predictor(cv: str | None) -> str | None:
    """The name of the custom predictor an analysis's ``cv`` records; None for the paper's."""
    return cv[len(CUSTOM_CV):] if cv and cv.startswith(CUSTOM_CV) else None


def _cv_label(cv: str, y: np.ndarray) -> str:
    """The CV actually used for one label vector (k-fold shrinks with a rare class)."""
    return f"{_n_splits(y)}-fold" if cv.endswith("-fold") else cv


def _ci(res: Any) -> dict[str, Any]:
    return {"auroc": _float(res.estimate), "ci": [_float(res.lo), _float(res.hi)]}


def _paired(res: Any, n_resamples: int) -> dict[str, Any]:
    # The p-value's denominator travels with it: p = 0 means p < 1/n_resamples, no less.
    return {"diff": _float(res.diff), "ci": [_float(res.lo), _float(res.hi)],
            "p_one_sided": _float(res.p_one_sided), "ties": _float(res.ties),
            "n_resamples": int(n_resamples)}


# ----------------------------------------------------------------------------- analysis

def _cell(X: np.ndarray, names: Sequence[str], y: np.ndarray, predict: _HeldOutFn, *, seed: int,
          threshold: float, window: int, n_resamples: int, level: float, orders: np.ndarray,
          grid_cells: np.ndarray | None, hyper: _Hyper | None) -> dict[str, Any]:
    """Model, baselines, paired tests and univariate AUROCs of one (threshold, window) cell.

    X has shape (n_runs, n_features), its columns the features ``names`` (the baselines and
    univariate AUROCs are read by name, not position); y shape (n_runs,) holding both classes. Where
    the sweep is too small for the model's internal CV (a handful of runs), the baselines and
    univariate AUROCs are still computed; ``multi``, the paired tests and ``loo_proba`` are
    None and ``multi_note`` says why. ``orders`` (n_orders, n_runs): permutations of the runs
    for ``multi_by_order``, the model's AUROC with the runs given in each order.
    ``grid_cells`` (n_runs,): each run's grid cell for ``multi_cell_out``; None for a custom
    predictor, whose way of holding runs out grokcast does not know. ``hyper``: the grid axes
    that vary and the runs' ranks on them (:func:`hyperparameter_matrix`), or None.
    """
    def rng(stream: int) -> np.random.Generator:  # the cell's generator of a stream (_rng)
        return _rng(seed, threshold, window, stream)

    cell: dict[str, Any] = {}
    try:
        proba = _held_out_proba(predict, X, y, rng(1), threshold=threshold, window=window)
    except TooFewRunsError as err:
        proba = None
        cell["multi_note"] = f"too few runs for the {len(names)}-feature model ({err})"
    scores = {"multi": proba,
              "val_loss": -X[:, list(names).index("end_val_loss")],  # lower loss -> grokking
              "val_acc": X[:, list(names).index("end_val_acc")]}
    boot: dict[str, Any] = dict(n_resamples=n_resamples, level=level)
    # A fresh generator with the same key for every call: all CIs and paired tests of the
    # cell see the same resamples.
    for name, score in scores.items():
        cell[name] = None if score is None else _ci(bootstrap_ci(y, score, rng=rng(0), **boot))
    for name in ("val_loss", "val_acc"):
        cell[f"diff_{name}"] = None if proba is None else _paired(paired_bootstrap(
            y, proba, scores[name], rng=rng(0), **boot), n_resamples)
    cell["loo_proba"] = None if proba is None else [_float(p) for p in proba]
    if hyper is not None and proba is not None:
        cell |= _hyperparameter_baselines(hyper, y, proba, predict, boot, rng)
    if grid_cells is not None and proba is not None:
        out = _cell_out_proba(X, y, grid_cells, np.arange(len(y)))
        cell["multi_cell_out"] = None if out is None else _ci(bootstrap_ci(
            y, out, rng=rng(0), **boot))
    if len(orders):
        cell |= _by_order(X, y, predict, orders, rng, fitted=proba is not None,
                          grid_cells=grid_cells)
    uni = np.asarray(auroc(y, X.T))  # already an array: a 2-D score gets one AUROC per row
    cell["univariate"] = {f: {"auroc": _float(a), "folded": _float(folded_auroc(a))}
                          for f, a in zip(names, uni, strict=True)}
    return cell


def _held_out_proba(predict: _HeldOutFn, X: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                    *, threshold: float, window: int) -> np.ndarray:
    """``predict``'s held-out P(grok) of the runs (n_runs,), refused unless one finite number
    per run (a custom predictor's mistake would otherwise surface as a wrong AUROC)."""
    proba = np.asarray(predict(X, y, rng), dtype=float)
    if proba.shape != y.shape:
        raise ValueError(f"the predictor returned shape {proba.shape} for {len(y)} runs")
    if not np.isfinite(proba).all():
        bad = np.flatnonzero(~np.isfinite(proba))
        raise ValueError(f"the predictor returned non-finite probabilities for runs at rows "
                         f"{bad[:10].tolist()} (threshold {threshold}, W = {window}): "
                         "P(grok) must be a finite number per run")
    return proba


def _by_order(X: np.ndarray, y: np.ndarray, predict: _HeldOutFn, orders: np.ndarray,
              rng: Callable[[int], np.random.Generator], *, fitted: bool,
              grid_cells: np.ndarray | None) -> dict[str, Any]:
    """``multi_by_order`` (None where multi could not be ``fitted``) and, with ``grid_cells``,
    ``multi_cell_out_by_order``: the AUROCs with the runs given in each of ``orders``."""
    # The k-fold shuffle keeps multi's seed, but its folds are drawn by position within
    # each class, so under another order they group other runs: for k-fold the order
    # moves the outer folds as well as the inner ones.
    out: dict[str, Any] = {"multi_by_order": None if not fitted else [
        _float(auroc(y, _in_order(predict, X, y, o, rng(1)))) for o in orders]}
    if grid_cells is not None and fitted:
        # Its inner CV depends on the order just as multi's does.
        by_order = [_cell_out_proba(X, y, grid_cells, o) for o in orders]
        out["multi_cell_out_by_order"] = [None if p is None else _float(auroc(y, p))
                                          for p in by_order]
    return out


def _hyperparameter_baselines(hyper: _Hyper, y: np.ndarray, proba: np.ndarray,
                              predict: _HeldOutFn, boot: dict[str, Any],
                              rng: Callable[[int], np.random.Generator]) -> dict[str, Any]:
    """The baselines known before training, each with multi's paired difference from it, all
    on the cell's resamples: ``axis_scores``, each varying grid axis as a score (a larger value
    scores higher), and, where ``hyper.fit``, ``hyperparams``, the paper's model fitted and held
    out as multi is (k-fold: the same folds, from the same generator key) on the axes' ranks.
    The fitted one is what the forecaster's procedure makes of the hyperparameters; on a small
    sweep it can rank the runs worse than one axis does unfitted."""
    def versus(score: np.ndarray) -> dict[str, Any]:
        return {**_ci(bootstrap_ci(y, score, rng=rng(0), **boot)),
                "diff": _paired(paired_bootstrap(y, proba, score, rng=rng(0), **boot),
                                boot["n_resamples"])}

    out: dict[str, Any] = {"axis_scores": {a: versus(hyper.ranks[:, j])
                                           for j, a in enumerate(hyper.axes)}}
    if hyper.fit:
        # Multi was fitted on these labels and folds, so this fit has runs enough too.
        hp = np.asarray(predict(hyper.ranks, y, rng(1)), dtype=float)
        model = versus(hp)
        out |= {"hyperparams": {"auroc": model["auroc"], "ci": model["ci"],
                                "proba": [_float(x) for x in hp]},
                "diff_hyperparams": model["diff"]}
    return out


def hyperparameter_matrix(runs: pd.DataFrame) -> tuple[np.ndarray, list[str]] | None:
    """The hyperparameter baselines' inputs: for each grid axis that varies over the runs
    (``train_frac``, ``weight_decay``), each run's rank among the runs' distinct values of it,
    and the axes' names.

    Ranks, not values: the paper grid's weight decays are spaced by factors of about 3, and a
    grid may hold λ = 0, so neither λ nor log λ suits every grid; the rank is linear in log λ
    on a geometric grid and in λ on an even one. None where no axis varies.
    """
    axes = [a for a in HYPERPARAMETER_AXES if runs[a].nunique() > 1]
    if not axes:
        return None
    ranks = [pd.factorize(runs[a].astype(float), sort=True)[0] for a in axes]
    return np.column_stack(ranks).astype(float), axes


def _cell_out_proba(X: np.ndarray, y: np.ndarray, grid_cells: np.ndarray,
                    order: np.ndarray) -> np.ndarray | None:
    """Held-out probabilities of the paper's model leaving out one grid cell at a time, the
    runs given to it in ``order``, returned in their own order; None where a training part is
    too small for its internal CV."""
    def leave_cells_out(X_o: np.ndarray, y_o: np.ndarray, _: Any) -> np.ndarray:
        return group_predictions(X_o, y_o, grid_cells[order])

    try:
        return _in_order(leave_cells_out, X, y, order, None)
    except TooFewRunsError:
        return None


def analyze(runs_df: pd.DataFrame, log_df: pd.DataFrame, config: Any, *,
            windows: Sequence[int] = DEFAULT_WINDOWS,
            thresholds: Sequence[float] = (0.9, 0.99), n_resamples: int = 2000,
            level: float = 0.95, seed: int = 0, predict_fn: PredictFn | None = None,
            orders: int = 0, sweep_dir: str | os.PathLike | None = None,
            progress: bool = False) -> AnalysisResult:
    """Forecasting analysis of one sweep (the content of ``analysis.json``).

    Parameters
    ----------
    runs_df : DataFrame
        One row per run (``SweepStore.runs()``): at least ``run_id``, ``status``,
        ``max_val_acc``, ``train_frac``, ``weight_decay``, ``seed``; ``chunk`` and
        ``chunk_seconds`` give the training time.
    log_df : DataFrame
        Long-format log (``SweepStore.log()``).
    config : SweepConfig or None
        Recorded in the result (``to_dict()``), with its ``name``.
    windows : sequence of int, default=(100, 200, 300, 500)
        Window ends W; features use the log rows with step < W.
    thresholds : sequence of float, default=(0.9, 0.99)
        Label thresholds on ``max_val_acc``; the first is the primary one (Table 1), the second
        the robustness check (Table 2).
    n_resamples : int, default=2000
        Bootstrap resamples of the runs, shared by every CI and paired test of a
        (threshold, window) cell.
    level : float, default=0.95
        CI coverage.
    seed : int, default=0
        Root of all randomness; each (threshold, window) cell draws from its own generator
        keyed by (seed, threshold, window), so cells do not depend on which others are run.
    predict_fn : callable, optional
        ``predict_fn(X, y) -> proba`` with X of shape (n_runs, 28), y of shape (n_runs,) 0/1,
        returning held-out P(y = 1) of shape (n_runs,). Default: the paper's model,
        :func:`grokcast.logistic.loo_predictions` up to :data:`LOO_MAX_RUNS` runs and
        stratified 10-fold :func:`grokcast.logistic.kfold_predictions` above.
    orders : int, default=0
        Also compute the model's AUROC with the runs given in this many random orders
        (:func:`run_orders`, from ``seed``): ``multi_by_order`` in every cell. The model's
        internal CV takes its folds from the order of the runs (``run_id`` order otherwise),
        so this shows how much ``multi`` owes to that order (with k-fold above
        :data:`LOO_MAX_RUNS` runs, the outer folds move with the order too). Each order
        repeats the held-out predictions of every cell (and the leave-one-cell-out ones):
        about 0.3 s per cell at 48 runs on one CPU core, and as long as ``multi`` itself at
        thousands of runs.
    sweep_dir : str or Path, optional
        Recorded as ``sweep.dir``.
    progress : bool, default=False
        A progress bar on stderr, one step per (threshold, window) cell.

    Returns
    -------
    AnalysisResult
        A dict following ``docs/analysis-schema.md``, JSON-able as is (NaN already null),
        carrying the feature and curve tables for :func:`write_results`.

    Raises
    ------
    ValueError
        On bad arguments, missing columns, runs without a log, a window beyond the logged steps,
        or non-finite features of a run that did not diverge.
    """
    t0 = time.perf_counter()
    if config is not None and not isinstance(config, SweepConfig):
        raise TypeError(f"config must be the sweep's SweepConfig (SweepStore.read_config()) or None, "
                        f"got {type(config).__name__}")
    windows, thresholds = _check_args(windows, thresholds, n_resamples, level, seed)
    check_int("orders", orders, 0, MAX_ORDERS)
    check_bool("progress", progress)
    all_runs, runs, log, (n_diverged, n_stopped) = _runs_and_log(runs_df, log_df)
    run_ids = runs["run_id"].astype(str).to_numpy()
    tables = {w: feature_matrix(log, run_ids, w) for w in windows}  # rows in `runs` order
    # Everything below reads the features by the names feature_table gave its columns, and
    # describes them from the registry as it is now, not as this module imported it.
    names = list(tables[windows[0]].columns)
    registry = {f.name: f for f in features_module.FEATURES}
    logged = log[log["val_acc"].notna()]
    max_acc = {w: _float(logged.loc[logged["step"] < w, "val_acc"].max()) for w in windows}
    run_entries = _run_entries(runs, logged, run_ids, thresholds)

    cv, predict = _predictor(predict_fn, len(runs))
    permutations = run_orders(len(runs), orders, seed)
    grid_cells = _cell_out_groups(runs, custom=predict_fn is not None)
    ranked = hyperparameter_matrix(runs)
    # A custom predictor is fitted on the 28 features; whether it could take others is unknown.
    hyper = None if ranked is None else _Hyper(*ranked, fit=predict_fn is None)
    # One step per (threshold, W) cell, on stderr: with many resamples or run orders a cell
    # takes seconds, and the command was silent for a minute (found in review).
    with tqdm(total=len(thresholds) * len(windows), unit="cell", desc="analysis",
              disable=not progress, leave=False) as bar:
        by_threshold = {
            _key(th): _threshold_entry(reaches(runs["max_val_acc"], th).astype(int), tables,
                                       max_acc, predict, cv, threshold=th, seed=seed,
                                       n_resamples=n_resamples, level=level,
                                       orders=permutations, grid_cells=grid_cells, hyper=hyper,
                                       done=bar.update)
            for th in thresholds}

    content = {
        "grokcast_version": grokcast.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "sweep": _sweep_entry(runs_df, log_df, all_runs, config, sweep_dir,
                              n_diverged=n_diverged, n_stopped=n_stopped),
        "settings": {"windows": windows, "thresholds": thresholds, "n_resamples": int(n_resamples),
                     "level": float(level), "seed": int(seed), "cv": cv, "orders": int(orders),
                     "hyperparam_axes": [] if hyper is None else hyper.axes},
        "features": [{"name": f.name, "group": f.group, "description": f.description}
                     for f in (registry[n] for n in names)],
        "runs": run_entries,
        "thresholds": by_threshold,
    }
    features = pd.concat([t.reset_index().assign(window=w) for w, t in tables.items()],
                         ignore_index=True)[["run_id", "window", *names]]
    curves = logged[["run_id", "step", *CURVE_COLUMNS]].sort_values(
        ["run_id", "step"], ignore_index=True)
    content["timing"] = {"analysis_seconds": time.perf_counter() - t0}
    return AnalysisResult(content, features=features, curves=curves)


def _predictor(predict_fn: PredictFn | None, n_runs: int) -> tuple[str, _HeldOutFn]:
    """The ``cv`` the analysis records and the held-out predictor it calls: the paper's
    (:func:`_default_predict`), or ``predict_fn``, which draws nothing, named ``custom:NAME``."""
    if predict_fn is None:
        return _default_predict(n_runs)
    name = getattr(predict_fn, "__name__", type(predict_fn).__name__)
    return f"{CUSTOM_CV}{name}", lambda X, y, rng: predict_fn(X, y)


def _cell_out_groups(runs: pd.DataFrame, *, custom: bool) -> np.ndarray | None:
    """Each run's grid cell (f, λ) as an integer, for ``multi_cell_out``; None where it is not
    computed.

    Leaving out a cell is leave-one-out where each cell holds one run, and impossible with
    one cell: computed only between those, within MAX_CELL_OUT_SIZE, for the paper's model
    (not beside a ``custom`` predictor, whose way of holding runs out grokcast does not know).
    """
    grid_cells = pd.factorize(pd.MultiIndex.from_arrays(
        [runs[a].astype(float) for a in HYPERPARAMETER_AXES]))[0]
    n_cells = int(grid_cells.max()) + 1 if len(grid_cells) else 0
    if custom or not 2 <= n_cells < len(runs) or n_cells * len(runs) > MAX_CELL_OUT_SIZE:
        return None
    return grid_cells


def _run_entries(runs: pd.DataFrame, logged: pd.DataFrame, run_ids: Sequence[str],
                 thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """``analysis.json``'s ``runs``: each analysed run's settings, outcome, and the first
    logged steps at which it fits the train set and reaches each threshold."""
    fit_step = first_logged_step(logged, "train_acc", FIT_ACC, run_ids)
    hit_steps = {th: first_logged_step(logged, "val_acc", th, run_ids) for th in thresholds}
    return [{"run_id": str(r.run_id), "train_frac": float(r.train_frac),
             "weight_decay": float(r.weight_decay), "seed": int(r.seed),
             "max_val_acc": _float(r.max_val_acc),
             f"step_train_acc_{FIT_ACC:g}": fit_step[str(r.run_id)],
             "step_val_acc": {_key(th): hit_steps[th][str(r.run_id)] for th in thresholds}}
            for r in runs.itertuples(index=False)]


def _sweep_entry(runs_df: pd.DataFrame, log_df: pd.DataFrame, all_runs: pd.DataFrame,
                 config: SweepConfig | None, sweep_dir: str | os.PathLike | None, *,
                 n_diverged: int, n_stopped: int) -> dict[str, Any]:
    """``analysis.json``'s ``sweep``: where it is, its hash and config, its runs and the
    training time its chunks recorded (None without them)."""
    train_seconds = None
    if {"chunk", "chunk_seconds"} <= set(all_runs.columns):
        train_seconds = _float(all_runs.groupby("chunk")["chunk_seconds"].first().sum())
    return {
        "dir": None if sweep_dir is None else str(sweep_dir),
        "hash": sweep_hash(runs_df, log_df),
        "name": getattr(config, "name", None),
        "config": config.to_dict() if config is not None else None,
        "n_runs": len(all_runs), "n_diverged": n_diverged, "n_stopped": n_stopped,
        "train_seconds": train_seconds,
    }


def feature_difference(analysis: dict[str, Any], features: pd.DataFrame, threshold: float | str,
                       window: int, a: str, b: str) -> dict[str, Any]:
    """Folded AUROC of feature ``a`` minus that of ``b`` at one (threshold, window) cell, by a
    paired bootstrap over runs: ``{"diff", "ci", "p_one_sided", "n_resamples"}`` as the cells'
    differences.

    Each feature is oriented by its full-data AUROC (negated where it is below 0.5), so the
    difference on the full data is that of the folded AUROCs. Seeded like the cell's own
    bootstrap (same analysis seed, its own stream), so it is reproducible from ``analysis.json``
    and ``features.parquet`` alone.

    Parameters
    ----------
    analysis : the dict of ``analysis.json``
    features : the table of ``features.parquet`` (``run_id``, ``window``, one column per feature)
    threshold : a key of ``analysis["thresholds"]``, e.g. ``"0.9"``, or the threshold
        (:func:`result_key`)
    window : an analysed window W (an int, or its key, e.g. ``"200"``)
    a, b : feature names (:data:`grokcast.features.FEATURE_NAMES`)
    """
    key = result_key(analysis, threshold)
    entry = analysis["thresholds"][key]
    if str(window) not in entry["windows"]:
        raise ValueError(f"window={window!r} is not allowed: expected one of the analysed windows "
                         f"{[int(w) for w in entry['windows']]}")
    window = int(window)  # analysis.json's keys are text
    if entry.get("single_class"):
        raise ValueError(f"threshold={threshold!r} has a single label class: no AUROC to compare")
    run_ids = [r["run_id"] for r in analysis["runs"]]
    at_w = features[features["window"] == window].set_index("run_id").reindex(run_ids)
    y = np.asarray(entry["labels"], dtype=bool)
    scores = []
    for name in (a, b):
        x = at_w[name].to_numpy(dtype=float)
        if not np.isfinite(x).all():
            raise ValueError(f"feature {name!r} at W = {window} is not finite for every run")
        scores.append(x if auroc(y, x) >= 0.5 else -x)
    s = analysis["settings"]
    n = int(s["n_resamples"])
    return _paired(paired_bootstrap(y, *scores, rng=_rng(int(s["seed"]), float(key), window, 2),
                                    n_resamples=n, level=float(s["level"])), n)


def _runs_and_log(runs_df: pd.DataFrame, log_df: pd.DataFrame,
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, tuple[int, int]]:
    """All runs sorted by id, those with a known outcome, their log, and how many diverged and
    were stopped early; refuses a runs table or log that cannot be analysed."""
    needed = ("run_id", "status", "max_val_acc", "train_frac", "weight_decay", "seed")
    missing = [c for c in needed if c not in runs_df.columns]
    if missing:
        raise ValueError(f"the runs table lacks column(s) {missing}")
    if "run_id" not in log_df.columns:
        raise ValueError("the log lacks column 'run_id'")
    # A store's ids are strings; ids given as numbers are matched as their text in both tables.
    runs_df, log_df = (df if pd.api.types.is_string_dtype(df["run_id"])
                       else df.assign(run_id=df["run_id"].astype(str)) for df in (runs_df, log_df))
    if runs_df["run_id"].duplicated().any():
        dup = runs_df.loc[runs_df["run_id"].duplicated(), "run_id"].iloc[0]
        raise ValueError(f"the runs table lists run {dup!r} more than once")
    all_runs = runs_df.sort_values("run_id", kind="stable", ignore_index=True)
    runs, n_diverged, n_stopped = runs_with_outcome(all_runs)
    run_ids = set(runs["run_id"])
    log = log_df[log_df["run_id"].isin(run_ids)]
    absent = sorted(run_ids - set(log["run_id"].unique()))
    if absent:
        more = f" (and {len(absent) - 1} other run(s))" if len(absent) > 1 else ""
        raise ValueError(f"run {absent[0]!r}{more} has no log rows")
    return all_runs, runs, log, (n_diverged, n_stopped)


def feature_matrix(log: pd.DataFrame, run_ids: Sequence[str], window: int) -> pd.DataFrame:
    """The 28 features at ``window`` of ``run_ids``, in that order; refused if any is not finite
    (a run with a known outcome whose log holds NaN or inf is suspect, not diverged)."""
    table = feature_table(log, window).reindex(run_ids)
    bad = ~np.isfinite(table.to_numpy())
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"feature {table.columns[c]!r} of run {run_ids[r]!r} at W={window} is "
            f"{table.iat[r, c]} ({int(bad.sum())} non-finite value(s) in all); the run is "
            "not marked diverged, so its log is suspect")
    return table


def _threshold_entry(y: np.ndarray, tables: dict[int, pd.DataFrame], max_acc: dict[int, Any],
                     predict: _HeldOutFn, cv: str, *, threshold: float, seed: int,
                     n_resamples: int, level: float, orders: np.ndarray,
                     grid_cells: np.ndarray | None, hyper: _Hyper | None,
                     done: Callable[[], Any] = lambda: None) -> dict[str, Any]:
    """One threshold of ``analysis.json``: its labels ``y`` and a cell per window (``done()``
    after each: the progress bar)."""
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    single = n_pos == 0 or n_neg == 0
    if single:
        every = "the one run has" if len(y) == 1 else f"all {len(y)} runs have"
        message = (f"{every} max_val_acc {'>=' if n_pos else '<'} {threshold:g}: "
                   "with a single label class AUROC is undefined, so the predictor, "
                   "baselines and univariate AUROCs are skipped at this threshold")
    else:
        message = f"{n_pos} of {len(y)} runs reach{'es' if n_pos == 1 else ''} max_val_acc >= {threshold:g}"
    cells: dict[str, Any] = {}
    for w, table in tables.items():
        cell: dict[str, Any] = {"max_val_acc_in_window": max_acc[w]}
        if not single:
            cell |= _cell(table.to_numpy(), list(table.columns), y, predict, seed=seed,
                          threshold=threshold, window=w, n_resamples=n_resamples, level=level,
                          orders=orders, grid_cells=grid_cells, hyper=hyper)
        cells[str(w)] = cell
        done()
    return {"n_pos": n_pos, "n_neg": n_neg, "single_class": single, "message": message,
            "cv": None if single else _cv_label(cv, y), "labels": y.tolist(), "windows": cells}


def first_logged_step(log: pd.DataFrame, column: str, threshold: float,
                      run_ids: Sequence[str]) -> dict[str, int]:
    """Each run's first logged step whose ``column`` reaches ``threshold``; -1 if none does."""
    hit = log[reaches(log[column], threshold)]
    first = hit.groupby("run_id")["step"].min()
    return {r: int(first.get(r, -1)) for r in run_ids}


def runs_with_outcome(runs: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """The runs whose label is known, and how many diverged and were stopped early.

    A diverged run has no val accuracy to label; a run stopped early (``--stop-model``) has
    only a censored one: its max val acc up to the stop says nothing of what it would have
    reached. Both are left out of anything that needs labels.

    Raises
    ------
    ValueError
        No run is left.
    """
    status = runs["status"]
    unknown = status[~status.isin(["finished", "diverged", "stopped"])]
    if len(unknown):  # a hand-made table's "failed" would be analysed as a finished run
        raise ValueError(f"status={unknown.iloc[0]!r} (on {len(unknown)} run(s)) is not allowed: "
                         "expected 'finished', 'diverged' or 'stopped', as a sweep stores them")
    n_diverged, n_stopped = int((status == "diverged").sum()), int((status == "stopped").sum())
    kept = runs[~status.isin(["diverged", "stopped"])].reset_index(drop=True)
    if kept.empty:
        raise ValueError(f"no runs with a known outcome: of {len(runs)} runs, {n_diverged} "
                         f"diverged and {n_stopped} were stopped early")
    # The label is max_val_acc >= threshold: a NaN would silently be a non-grokker (fit and
    # evaluate read this too), a value past 1 a grokker at every threshold.
    acc = pd.to_numeric(kept["max_val_acc"], errors="coerce")
    bad = kept[~acc.between(0.0, 1.0)]
    if len(bad):
        value = plain_number(bad["max_val_acc"].iloc[0])
        raise ValueError(f"max_val_acc={value!r} (run {bad['run_id'].iloc[0]!r}, "
                         f"on {len(bad)} run(s)) is not allowed: expected an accuracy in [0, 1] "
                         "(a run without one is marked diverged)")
    return kept, n_diverged, n_stopped


def analyze_sweep(sweep_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  partial: bool = False, **kwargs: Any) -> AnalysisResult:
    """Read a sweep directory, :func:`analyze` it, and write the results to ``out_dir``.

    ``out_dir`` defaults to ``sweep_dir / "analysis"``; ``kwargs`` go to :func:`analyze`.
    An unfinished sweep (fewer runs stored than its grid holds) is refused unless
    ``partial``: its numbers would describe whichever chunks happened to finish.
    """
    from grokcast.store import SweepStore

    # Named before the sweep is read, and as this function's (Python would name analyze()).
    allowed = [name for name, par in inspect.signature(analyze).parameters.items()
               if par.kind is par.KEYWORD_ONLY and name != "sweep_dir"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"analyze_sweep() got unexpected keyword argument(s) {', '.join(unknown)}: "
                        f"it takes partial and {', '.join(allowed)}")
    check_path("sweep_dir", sweep_dir, "a sweep directory (grokcast sweep --out)")
    if out_dir is not None:
        check_path("out_dir", out_dir, "the results directory to write")
    store = SweepStore(sweep_dir)
    store.check_finished(partial=partial)
    out = Path(out_dir) if out_dir is not None else Path(sweep_dir) / "analysis"
    for table in ("log", "runs"):  # each one Parquet dataset: its readers would meet our files
        if out.resolve().is_relative_to((Path(sweep_dir) / table).resolve()):
            raise ValueError(f"out_dir={str(out)!r} is not allowed: it is inside the sweep's "
                             f"{table}/ folder, which pandas.read_parquet reads as one table; "
                             f"write it elsewhere (the default is {str(Path(sweep_dir) / 'analysis')!r})")
    # Refused now, not after minutes of analysis: the path, or a folder it needs, is a file.
    blocking = next((d for d in (out, *out.parents) if d.exists() and not d.is_dir()), None)
    if blocking is not None:
        raise FileExistsError(17, "File exists", str(blocking))
    result = analyze(store.runs(), store.log(), store.read_config(), sweep_dir=sweep_dir, **kwargs)
    write_results(result, out)
    return result


# ----------------------------------------------------------------------------- tables

HEADER = ("W", "multi", "val loss", "val acc", "Δ(multi−loss)", "p₁", "Δ(multi−acc)", "p₁")
_TEX_HEADER = (r"$W$", "multi", "val loss", "val acc", r"$\Delta(\mathrm{multi}-\mathrm{loss})$",
               r"$p_1$", r"$\Delta(\mathrm{multi}-\mathrm{acc})$", r"$p_1$")
NA = "—"


def _fmt_ci(entry: dict[str, Any] | None, key: str = "auroc", signed: bool = False) -> str:
    if not entry or entry.get(key) is None:
        return NA
    f = "{:+.3f}" if signed else "{:.3f}"
    lo, hi = entry["ci"]
    ends = ", ".join(NA if v is None else f.format(v) for v in (lo, hi))
    return f"{f.format(entry[key])} [{ends}]"


def _fmt_p(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("p_one_sided") is None:
        return NA
    return format_p(entry["p_one_sided"], entry.get("n_resamples"))


def table_rows(result: dict[str, Any], threshold: float | str) -> list[tuple[str, ...]]:
    """Rows of Table 1/2 for one threshold: W, multi, val loss, val acc, Δ, p₁, Δ, p₁."""
    entry = result["thresholds"][result_key(result, threshold)]
    rows: list[tuple[str, ...]] = []
    for w, cell in entry["windows"].items():
        rows.append((w, _fmt_ci(cell.get("multi")), _fmt_ci(cell.get("val_loss")),
                     _fmt_ci(cell.get("val_acc")),
                     _fmt_ci(cell.get("diff_val_loss"), "diff", signed=True),
                     _fmt_p(cell.get("diff_val_loss")),
                     _fmt_ci(cell.get("diff_val_acc"), "diff", signed=True),
                     _fmt_p(cell.get("diff_val_acc"))))
    return rows


def _caption(result: dict[str, Any], key: str) -> str:
    entry, s = result["thresholds"][key], result["settings"]
    sweep = result["sweep"]
    n = entry["n_pos"] + entry["n_neg"]
    cv_name = entry["cv"] or s["cv"]
    custom = custom_predictor(cv_name)
    multi = (f"custom predictor {custom}, its held-out predictions" if custom is not None else
             f"{len(result['features'])}-feature logistic regression, "
             + {"loo": "leave-one-out CV"}.get(cv_name, f"{cv_name} CV"))
    text = (f"AUROC [{format_percent(s['level'])} bootstrap CI] for predicting max val_acc ≥ {key} "
            f"({entry['n_pos']}/{n} runs positive"
            + (f"; {sweep['n_diverged']} diverged run(s) left out" if sweep["n_diverged"] else "")
            + (f"; {sweep['n_stopped']} run(s) stopped early left out (no known outcome)"
               if sweep.get("n_stopped") else "")
            + f") from the log before step W. multi: {multi}; "
            "val loss (negated) / val acc: end-of-window value alone. Δ: paired-bootstrap difference in "
            f"AUROC; p₁: one-sided P(Δ* ≤ 0); {s['n_resamples']} resamples of runs.")
    if entry["single_class"]:
        text += f" Not computed: {entry['message']}."
    notes = {c["multi_note"] for c in entry["windows"].values() if c.get("multi_note")}
    if notes:  # the same for every window: it depends on the labels only
        text += f" multi not computed: {sorted(notes)[0]}."
    elif n_small := few_in_a_class(entry):  # the terminal's note, where the table goes
        text += (f" With {n_small} run{'s' if n_small > 1 else ''} in one class, multi's "
                 "held-out predictions of that class come from models that saw (almost) none "
                 "of it: its AUROC and CIs say little about the method.")
    return text


def _table3_window(result: dict[str, Any]) -> str:
    return str(primary_window(result["settings"]["windows"]))


def table3_order(result: dict[str, Any], key: str, window: int | str) -> list[str]:
    """Every feature by folded AUROC at (threshold ``key``, ``window``), best first; ties (and
    features without one) in feature order. The order of Table 3 here and in the paper."""
    uni = result["thresholds"][key]["windows"][str(window)].get("univariate") or {}
    names = [f["name"] for f in result["features"]]
    folded = {n: (uni.get(n) or {}).get("folded") for n in names}
    return sorted(names, key=lambda n: -(strength_key(f) if (f := folded[n]) is not None else -1))


def table3_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows of Table 3: every feature at the :func:`primary_window` (primary threshold), by folded
    AUROC, best first."""
    key, window = _key(result["settings"]["thresholds"][0]), _table3_window(result)
    uni = result["thresholds"][key]["windows"][window].get("univariate") or {}

    def value(f: str, k: str) -> str:
        return NA if (uni.get(f) or {}).get(k) is None else f"{uni[f][k]:.3f}"
    return [(f, value(f, "auroc"), value(f, "folded")) for f in table3_order(result, key, window)]


def _markdown(title: str, caption: str, header: Sequence[str], rows: Sequence[tuple[str, ...]],
              align: str) -> str:
    lines = [f"**{title}.** {caption}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                 ("#", r"\#"), ("≥", r"$\geq$"), ("≤", r"$\leq$"), ("Δ*", r"$\Delta^*$"),
                 ("Δ", r"$\Delta$"), ("p₁", r"$p_1$"), ("—", "---")):
        text = text.replace(a, b)
    return text


def _tex_cell(cell: str) -> str:
    if cell == NA:
        return "---"
    if cell.startswith("< "):
        return f"$<{cell[2:]}$"
    return cell.replace("-", "$-$") if not any(ch.isalpha() for ch in cell) else cell


def _latex(caption: str, label: str, header: Sequence[str], rows: Sequence[tuple[str, ...]],
           align: str, first_col_tt: bool = False) -> str:
    body = []
    for r in rows:
        first = rf"\texttt{{{_tex_escape(r[0])}}}" if first_col_tt else _tex_escape(r[0])
        body.append(" & ".join([first, *(_tex_cell(c) for c in r[1:])]) + r" \\")
    return "\n".join([
        r"% requires \usepackage{booktabs}",
        r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}",
        rf"\label{{{label}}}", r"\small", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
        " & ".join(header) + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}",
        r"\end{table}", ""])


def format_table(result: dict[str, Any], threshold: float | str, *, fmt: str = "md",
                 title: str = "Table 1") -> str:
    """Table 1/2 for one threshold as Markdown (``fmt="md"``), LaTeX (``"tex"``) or text."""
    key = result_key(result, threshold)
    rows, caption = table_rows(result, key), _caption(result, key)
    align = "rllllrlr"
    if fmt == "md":
        return _markdown(title, caption, HEADER, rows, align)
    if fmt == "tex":
        return _latex(caption, f"tab:auroc-{key}", _TEX_HEADER, rows, align)
    if fmt == "text":
        return _text(f"{title}: {caption}", HEADER, rows, align)
    raise ValueError(f"fmt={fmt!r} is not allowed: expected one of 'md', 'tex', 'text'")


def format_table3(result: dict[str, Any], *, fmt: str = "md") -> str:
    """Table 3: per-feature AUROC and folded AUROC at the :func:`primary_window`, ranked, as
    Markdown or LaTeX."""
    key, w = _key(result["settings"]["thresholds"][0]), _table3_window(result)
    caption = (f"Per-feature AUROC and |AUROC − 0.5| + 0.5 at W = {w} for max val_acc ≥ {key}, "
               "sorted by the latter. AUROC < 0.5 means lower values predict grokking.")
    header, rows = ("feature", "AUROC", "|AUROC − 0.5| + 0.5"), table3_rows(result)
    if fmt == "md":  # a bare | would end the Markdown cell
        return _markdown("Table 3", caption, ("feature", "AUROC", r"\|AUROC − 0.5\| + 0.5"),
                         rows, "lrr")
    if fmt == "tex":
        tex_header = ("feature", "AUROC", r"$|\mathrm{AUROC}-0.5|+0.5$")
        return _latex(caption.replace("−", "-"), "tab:univariate", tex_header, rows, "lrr",
                      first_col_tt=True)
    if fmt == "text":
        return _text(f"Table 3: {caption}", header, rows, "lrr")
    raise ValueError(f"fmt={fmt!r} is not allowed: expected one of 'md', 'tex', 'text'")


def _text(caption: str, header: Sequence[str], rows: Sequence[tuple[str, ...]], align: str) -> str:
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(wd) if a == "r" else c.ljust(wd)
                         for c, wd, a in zip(cells, widths, align)).rstrip()
    return "\n".join([caption, "", line(header), line(["-" * wd for wd in widths]),
                      *(line(r) for r in rows)]) + "\n"


def format_table1(result: dict[str, Any]) -> str:
    """Table 1 (primary threshold) as aligned plain text, for the terminal, with a note when
    a class is too small for its leave-one-out numbers to mean anything."""
    first = result["settings"]["thresholds"][0]
    return "\n".join([format_table(result, first, fmt="text"), *small_class_notes(result)])


# Below this many runs in a class, holding one out leaves the model (nearly) nothing to learn.
MIN_CLASS_RUNS = 3


def few_in_a_class(entry: dict[str, Any]) -> int:
    """The size of a threshold's smaller class where it holds fewer than MIN_CLASS_RUNS runs
    (but some), else 0: leave-one-out numbers of such a class say little."""
    n_small = min(entry.get("n_pos") or 0, entry.get("n_neg") or 0)
    return n_small if 0 < n_small < MIN_CLASS_RUNS else 0


def small_class_notes(result: dict[str, Any]) -> list[str]:
    """One warning line per threshold whose smaller class has fewer than MIN_CLASS_RUNS runs."""
    notes = []
    for key, entry in result["thresholds"].items():
        if n_small := few_in_a_class(entry):
            notes.append(f"note: at threshold {key} only {n_small} run(s) are in one class; "
                         "its multivariate AUROC and CIs say little")
    return notes


# ----------------------------------------------------------------------------- files

def write_results(result: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Write ``analysis.json``, the tables, and (for an :class:`AnalysisResult`) the Parquet files.

    Files: ``analysis.json``; ``features.parquet`` and ``curves.parquet`` (only when ``result``
    carries them, i.e. comes from :func:`analyze`, not from reading ``analysis.json``);
    ``table1.md/.tex`` (first threshold), ``table2.md/.tex`` (second threshold, if any) and
    ``table3.md/.tex``. Every file is written atomically.

    Returns
    -------
    list of Path
        The files written.
    """
    from grokcast.store import atomic_write_bytes, atomic_write_parquet

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, text: str) -> None:
        atomic_write_bytes(out / name, text.encode())
        written.append(out / name)

    put("analysis.json", json.dumps(dict(result), indent=1, allow_nan=False) + "\n")
    for name in ("features", "curves"):
        frame = getattr(result, name, None)
        if frame is not None:
            atomic_write_parquet(out / f"{name}.parquet", frame)
            written.append(out / f"{name}.parquet")
    for i, th in enumerate(result["settings"]["thresholds"][:2], start=1):
        for fmt in ("md", "tex"):
            put(f"table{i}.{fmt}", format_table(result, th, fmt=fmt, title=f"Table {i}"))
    for fmt in ("md", "tex"):
        put(f"table3.{fmt}", format_table3(result, fmt=fmt))
    return written
