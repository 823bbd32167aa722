"""The multivariate predictor: GrokForecaster, leave-one-out and k-fold predictions, JSON files.

The model is the paper's (§5): standardise the features, then an ℓ2-regularised logistic
regression whose C is chosen by an internal stratified 3-fold CV on accuracy, the way
``make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, cv=3, solver="liblinear"))``
does it. liblinear penalises the intercept: it appends a constant feature
``intercept_scaling = 1`` to every row and minimises, over ``w̃ = [w, b]``,

    ½‖w̃‖² + C Σᵢ log(1 + exp(−yᵢ w̃·x̃ᵢ)),      x̃ᵢ = [xᵢ, 1],  yᵢ ∈ {−1, +1}.

We minimise that same objective exactly, with a damped Newton method batched over every
(outer fold, inner fold) problem at once and warm-started along the C grid, so a
leave-one-out over 48 runs (1,440 inner fits + 48 refits) is a few dozen numpy batch steps
(see benchmarks/bench_forecast.py for timings against a plain scikit-learn loop).

What differs from scikit-learn, and why:

* Solutions are the exact optimum (Newton step below ``tol`` relative to ‖w̃‖∞), where
  liblinear stops at its own ``tol``; with ``tol=1e-10`` given to liblinear the two agree to
  ~1e-6 in the coefficients, and the chosen C agrees because the accuracy scores do.
* An inner training fold holding a single class (the outer training set has just one member
  of that class) makes ``LogisticRegressionCV`` raise. Here that fold's model is the constant
  predictor of its one class, which is what the liblinear library itself returns for
  one-label data, and it is scored as such for every C.
* In :func:`loo_predictions` / :func:`kfold_predictions`, an outer training set holding a
  single class gets, for its held-out runs, that set's prevalence of ``classes[1]`` (0.0
  or 1.0) instead of an error. :meth:`GrokForecaster.fit` on a single class raises.

Files: :meth:`GrokForecaster.save` writes one JSON document (no pickle) and
:meth:`GrokForecaster.load` validates it, raising :class:`ForecasterFileError` naming the
problem.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

import grokcast
from grokcast.validation import check_int, check_number, unique_keys

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _sk_validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

# check_array's "allow NaN/inf" switch was renamed in scikit-learn 1.6.
_NO_FINITE_CHECK = (
    {"ensure_all_finite": False}
    if "ensure_all_finite" in inspect.signature(check_array).parameters
    else {"force_all_finite": False}
)

INTERCEPT_SCALING = 1.0  # liblinear's default, which the paper used (LogisticRegressionCV default)
FORMAT_NAME = "grokcast.forecaster"
FORMAT_VERSION = 1
# Bounds the (problems, rows, features) design stack one Newton batch holds: 2**22 float64
# values = 32 MiB, so large k-fold sweeps are solved in chunks instead of all at once.
_MAX_BATCH_VALUES = 2**22
_ARMIJO = 1e-4  # sufficient-decrease constant of the backtracking line search
_QUADRATIC_DZ = 1e-2  # margin change below which the full Newton step is safe (see below)
_MAX_HALVINGS = 40  # a step shrunk 2**40 times is below roundoff: the problem is solved


class ForecasterFileError(ValueError):
    """A saved forecaster file is unreadable, malformed or incompatible."""


class TooFewRunsError(ValueError):
    """A training set too small for the stratified internal CV that chooses C."""


@dataclass(frozen=True)
class ForecasterMetadata:
    """What a saved forecaster was trained on (read back by :meth:`GrokForecaster.load`)."""

    window: int
    threshold: float
    sweep_hash: str
    n_train_runs: int
    grokcast_version: str
    # The logged steps below W that the training runs' features came from; None in files
    # written before grokcast recorded them.
    window_steps: tuple[int, ...] | None = None
    # The training sweep's task (SweepConfig.task(): p, model, optimiser); None in older files.
    task: dict[str, Any] | None = None
    # The training runs' window digests (grokcast.analysis.window_digests), sorted; None in
    # older files and where save() was not given them.
    train_digests: tuple[str, ...] | None = None

    def check_task(self, task: dict[str, Any], where: str) -> None:
        """Refuse runs of another task than the forecaster's training runs (where recorded):
        their features would be read on another scale, and P(grok) would mean nothing."""
        if self.task is None:
            return
        diffs = [f"{key} {theirs!r} (the forecaster's: {mine!r})"
                 for key, mine, theirs in _differences(self.task, task)]
        if diffs:
            raise ValueError(f"{where} holds runs of another task than the forecaster was fit on: "
                             f"{'; '.join(diffs)}; fit a forecaster on a sweep of this task")

    def required_steps(self) -> tuple[int, ...]:
        """The steps below W a log must hold to be forecast: those the fit's features read,
        or, for a file that does not record them, every step below W."""
        return self.window_steps if self.window_steps is not None else tuple(range(self.window))

    def missing_steps(self, logged: Iterable[int]) -> list[int]:
        """The :meth:`required_steps` that a log schedule's ``logged`` steps leave out."""
        logged = set(logged)
        return [t for t in self.required_steps() if t not in logged]

    def steps_hint(self) -> str:
        """What to add to an error about missing steps: why a file without steps needs all."""
        if self.window_steps is not None:
            return ""
        return ("; this forecaster file predates the record of the steps its features came from "
                "(window_steps), so it needs every step below W: refit it with grokcast fit to "
                "record them")


# ----------------------------------------------------------------------------- validation

MAX_CS = 1000  # grid points of C; LogisticRegressionCV's default is 10

def _resolve_Cs(Cs: int | Sequence[float]) -> np.ndarray:
    """The grid of C values: ``np.logspace(-4, 4, Cs)`` for an int, as LogisticRegressionCV."""
    if isinstance(Cs, (int, np.integer)) and not isinstance(Cs, bool):
        if not 1 <= Cs <= MAX_CS:  # each C is a Newton solve per fold: a huge grid never ends
            raise ValueError(f"Cs={Cs!r} is not allowed: expected an integer in [1, {MAX_CS}] or "
                             "a list of C > 0")
        return np.logspace(-4, 4, int(Cs))
    grid = np.asarray(Cs, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ValueError(f"Cs={Cs!r} is not allowed: expected an integer >= 1 or a list of C > 0")
    return grid


def _check_params(cv: Any, tol: Any, max_iter: Any) -> None:
    check_int("cv", cv, 2)
    check_number("tol", tol, 0, 1)
    check_int("max_iter", max_iter, 1)


def _check_not_huge(X: np.ndarray, names: Sequence[str] | None) -> None:
    """Raise naming a column whose values are so large that standardising it overflows
    float64 (the sum of squares of its values: about 1e150 and beyond)."""
    limit = np.sqrt(np.finfo(np.float64).max / max(len(X), 1)) / 2
    bad = np.flatnonzero((np.abs(X) > limit).any(axis=0))
    if bad.size:
        column = repr(str(names[bad[0]])) if names is not None else f"{bad[0]}"
        raise ValueError(f"X column {column} holds values up to {np.abs(X[:, bad[0]]).max():.3g}, "
                         f"too large to standardise in float64 (at most {limit:.3g} here): rescale it")


def _check_finite(X: np.ndarray, names: Sequence[str] | None) -> None:
    """Raise naming the first column that holds NaN or ±inf."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    j = int(np.flatnonzero(bad.any(axis=0))[0])
    rows = np.flatnonzero(bad[:, j])
    column = repr(str(names[j])) if names is not None else f"{j}"
    shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
    raise ValueError(
        f"X column {column} holds {rows.size} non-finite value(s) (NaN or inf) at row(s) {shown}; "
        "the forecaster accepts finite features only"
    )


def _column_names(X: Any) -> list[str] | None:
    columns = getattr(X, "columns", None)
    return None if columns is None else [str(c) for c in columns]


def _encode_binary(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes, y01) with classes sorted as LabelEncoder does; exactly two classes required."""
    check_classification_targets(y)
    classes, y01 = np.unique(y, return_inverse=True)
    if classes.size == 1:
        only = classes[0].item() if isinstance(classes[0], np.generic) else classes[0]
        raise ValueError(
            f"y contains only one class: {only!r}; the forecaster needs both runs that grok "
            "and runs that do not"
        )
    if classes.size > 2:
        raise ValueError(f"Only binary classification is supported; y holds {classes.size} "
                         f"classes: {classes.tolist()!r}")
    return classes, y01.astype(np.int64)


def _check_Xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 X, the 0/1 labels and the two classes."""
    names = _column_names(X)
    X_arr, y_arr = check_X_y(X, y, dtype=np.float64, **_NO_FINITE_CHECK)
    _check_finite(X_arr, names)
    _check_not_huge(X_arr, names)
    classes, y01 = _encode_binary(y_arr)
    return X_arr, y01, classes


# ----------------------------------------------------------------------------- the solver

def _scaler_stats(X: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """StandardScaler's mean_ and scale_ for each training mask.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    train : bool ndarray of shape (G, n)

    Returns
    -------
    mean, scale : ndarrays of shape (G, d)
    """
    w = train.astype(np.float64)  # (G, n)
    count = w.sum(axis=1, keepdims=True)  # (G, 1)
    mean = (w @ X) / count  # (G, d)
    centred = (X[None, :, :] - mean[:, None, :]) * w[:, :, None]  # (G, n, d)
    # Two-pass variance with the Chan-Golub-LeVeque correction, as sklearn's
    # _incremental_mean_and_var computes it.
    correction = centred.sum(axis=1)
    var = ((centred**2).sum(axis=1) - correction**2 / count) / count
    # sklearn's _is_constant_feature: a variance within roundoff of zero means a constant
    # column, whose scale is set to 1 so the column maps to ~0 instead of to noise.
    eps = np.finfo(np.float64).eps
    constant = var <= count * eps * var + (count * mean * eps) ** 2
    scale = np.where(constant, 1.0, np.sqrt(var))
    return mean, scale


def _designs(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Standardised rows with liblinear's constant intercept feature appended: (G, n, d + 1)."""
    Z = (X[None, :, :] - mean[:, None, :]) / scale[:, None, :]  # (G, n, d)
    ones = np.full(Z.shape[:2] + (1,), INTERCEPT_SCALING)
    return np.concatenate([Z, ones], axis=2)


def _objective(w: np.ndarray, yz: np.ndarray, cm: np.ndarray) -> np.ndarray:
    """½‖w̃‖² + Σᵢ Cmᵢ log(1 + exp(−yᵢzᵢ)) per problem: (B,)."""
    return 0.5 * np.einsum("bp,bp->b", w, w) + np.sum(cm * np.logaddexp(0.0, -yz), axis=1)


def _newton_chunk(X: np.ndarray, y: np.ndarray, cm: np.ndarray, w0: np.ndarray, *, tol: float,
                  max_iter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise the liblinear objective for a stack of problems by damped Newton.

    Parameters
    ----------
    X : ndarray of shape (B, n, p)
        Design of each problem (intercept column included).
    y : ndarray of shape (n,)
        Labels in {-1, +1}.
    cm : ndarray of shape (B, n)
        C times the 0/1 membership of each row in the problem's training set.
    w0 : ndarray of shape (B, p)
        Starting point (the optimum does not depend on it; a nearby one saves iterations).

    Returns
    -------
    w : ndarray of shape (B, p)
    n_iter : int ndarray of shape (B,)
        Newton steps taken, the final (tiny) one included.
    converged : bool ndarray of shape (B,)
    """
    n_problems, _, p = X.shape
    w_out = np.zeros((n_problems, p))
    n_iter = np.full(n_problems, max_iter)
    converged = np.zeros(n_problems, dtype=bool)
    idx = np.arange(n_problems)  # problems still iterating, compacted as they finish
    w = w0.copy()
    diag = np.arange(p)
    for it in range(max_iter):
        z = np.matmul(X, w[:, :, None])[:, :, 0]  # (b, n)
        yz = y * z
        s = expit(-yz)  # P(wrong label)
        grad = w - np.matmul((cm * y * s)[:, None, :], X)[:, 0, :]  # (b, p)
        h = cm * s * expit(yz)  # both factors from expit: no cancellation in 1 - s
        H = np.matmul(X.transpose(0, 2, 1) * h[:, None, :], X)  # (b, p, p)
        H[:, diag, diag] += 1.0
        step = np.linalg.solve(H, -grad[:, :, None])[:, :, 0]  # (b, p)
        # H ⪰ I, so the Newton step bounds the distance to the optimum (to second order):
        # once it is below tol relative to ‖w̃‖∞ the full step lands on the optimum.
        small = np.abs(step).max(axis=1) <= tol * np.maximum(1.0, np.abs(w).max(axis=1))

        # Backtracking (Armijo) line search on the problems not yet at the optimum. A step
        # that moves no margin by more than _QUADRATIC_DZ stays where the loss is quadratic to
        # within that relative error, so the full step decreases f; it is taken without
        # comparing f values, whose difference there can be below roundoff.
        dz = np.matmul(X, step[:, :, None])[:, :, 0]  # (b, n)
        t = np.ones(len(idx))
        accepted = small | (np.abs(dz).max(axis=1) <= _QUADRATIC_DZ)
        f0 = _objective(w, yz, cm)
        slope = np.einsum("bp,bp->b", grad, step)  # −(Newton decrement)² < 0
        for _ in range(_MAX_HALVINGS):
            pending = np.flatnonzero(~accepted)
            if pending.size == 0:
                break
            tp = t[pending]
            f = _objective(w[pending] + tp[:, None] * step[pending],
                           y * (z[pending] + tp[:, None] * dz[pending]), cm[pending])
            ok = f <= f0[pending] + _ARMIJO * tp * slope[pending]
            accepted[pending[ok]] = True
            t[pending[~ok]] *= 0.5
        stalled = ~accepted  # no decrease even for a 2**-40 step: roundoff, the optimum
        t[stalled] = 0.0
        w = w + t[:, None] * step

        done = small | stalled
        if done.any():
            w_out[idx[done]] = w[done]
            n_iter[idx[done]] = it + 1
            # A stalled problem counts as converged only if its step was already tiny.
            w_scale = np.maximum(1.0, np.abs(w[done]).max(axis=1))
            converged[idx[done]] = small[done] | (np.abs(step[done]).max(axis=1) <= 1e-6 * w_scale)
            keep = ~done
            idx, X, cm, w = idx[keep], X[keep], cm[keep], w[keep]
            if idx.size == 0:
                break
    else:
        w_out[idx] = w
    return w_out, n_iter, converged


def _solve_l2_logistic(designs: np.ndarray, group: np.ndarray, y01: np.ndarray,
                       train: np.ndarray, C: np.ndarray, *, tol: float, max_iter: int,
                       w0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact liblinear solutions of many problems sharing a few designs.

    Parameters
    ----------
    designs : ndarray of shape (G, n, p)
    group : int ndarray of shape (B,)
        Which design each problem uses.
    y01 : int ndarray of shape (n,)
    train : bool ndarray of shape (B, n)
        Rows in each problem's training set.
    C : ndarray of shape (B,)
    w0 : ndarray of shape (B, p), optional
        Starting points; zeros by default.

    Returns
    -------
    w : ndarray of shape (B, p)
        Coefficients; the last entry multiplies the intercept feature.
    n_iter : int ndarray of shape (B,)
    converged : bool ndarray of shape (B,)
    """
    _, n, p = designs.shape
    y = 2.0 * y01 - 1.0
    cm = C[:, None] * train  # (B, n)
    if w0 is None:
        w0 = np.zeros((len(group), p))
    w = np.empty((len(group), p))
    n_iter = np.empty(len(group), dtype=np.int64)
    converged = np.empty(len(group), dtype=bool)
    chunk = max(1, _MAX_BATCH_VALUES // (n * p))
    # The batch is many tiny (p x p) products: BLAS threads only add overhead, and on a
    # machine shared with training they made each step ~5x slower in our measurements.
    with threadpool_limits(limits=1, user_api="blas"):
        for lo in range(0, len(group), chunk):
            sl = slice(lo, lo + chunk)
            w[sl], n_iter[sl], converged[sl] = _newton_chunk(
                designs[group[sl]], y, cm[sl], w0[sl], tol=tol, max_iter=max_iter)
    return w, n_iter, converged


@dataclass(frozen=True)
class _CVFit:
    """Result of CV-selecting C and refitting, for G training sets at once."""

    mean: np.ndarray  # (G, d) scaler means
    scale: np.ndarray  # (G, d) scaler scales
    designs: np.ndarray  # (G, n, p) every row standardised by its group's scaler
    scores: np.ndarray  # (G, cv, n_Cs) inner-fold accuracies
    best: np.ndarray  # (G,) index of the chosen C
    w: np.ndarray  # (G, p) refit coefficients, intercept last
    n_iter: np.ndarray  # (G,) Newton steps of each refit


def _cv_fit(X: np.ndarray, y01: np.ndarray, train_sets: Sequence[np.ndarray], Cs: np.ndarray,
            *, cv: int, tol: float, max_iter: int) -> _CVFit:
    """Standardise, pick C by stratified cv-fold accuracy, refit — for each training set.

    Every training set must hold both classes.
    """
    n = len(y01)
    n_groups, n_cs = len(train_sets), len(Cs)
    outer = np.zeros((n_groups, n), dtype=bool)
    for g, rows in enumerate(train_sets):
        outer[g, rows] = True
    mean, scale = _scaler_stats(X, outer)
    designs = _designs(X, mean, scale)  # (G, n, p)

    inner_train = np.zeros((n_groups, cv, n), dtype=bool)
    inner_test = np.zeros((n_groups, cv, n), dtype=bool)
    for g, rows in enumerate(train_sets):
        try:
            # LogisticRegressionCV(cv=int) uses StratifiedKFold(cv) without shuffling.
            with warnings.catch_warnings():
                # A class smaller than cv is expected with few grokking runs; the folds that
                # lack it are handled below, so sklearn's per-fit warning is only noise.
                warnings.filterwarnings("ignore", message="The least populated class")
                folds = list(StratifiedKFold(cv).split(np.zeros(len(rows)), y01[rows]))
        except ValueError as err:  # every class smaller than cv
            counts = np.bincount(y01[rows], minlength=2)
            raise TooFewRunsError(
                f"C is chosen by cv={cv} stratified folds, which need at least {cv} runs of one "
                f"class in every training set; one has {len(rows)} runs: {counts[1]} positive, "
                f"{counts[0]} negative"
            ) from err
        for k, (tr, te) in enumerate(folds):
            inner_train[g, k, rows[tr]] = True
            inner_test[g, k, rows[te]] = True

    # One problem per (group, fold), solved along the C grid in increasing order, each C
    # starting from the previous C's optimum: about a third fewer Newton steps than cold starts.
    group = np.repeat(np.arange(n_groups), cv)
    w_inner = np.empty((n_groups * cv, n_cs, designs.shape[2]))
    converged = np.ones((n_groups * cv, n_cs), dtype=bool)
    w_prev = None
    for j in np.argsort(Cs, kind="stable"):
        w_prev, _, converged[:, j] = _solve_l2_logistic(
            designs, group, y01, inner_train.reshape(-1, n), np.full(len(group), Cs[j]),
            tol=tol, max_iter=max_iter, w0=w_prev)
        w_inner[:, j] = w_prev
    w_inner = w_inner.reshape(n_groups, cv, n_cs, -1)

    # Accuracy on each inner test fold; predict classes[1] where the decision is > 0,
    # as LinearClassifierMixin.predict does.
    decision = np.einsum("gnp,gkcp->gkcn", designs, w_inner)  # (G, cv, n_Cs, n)
    correct = (decision > 0) == y01.astype(bool)
    n_test = inner_test.sum(axis=2)  # (G, cv)
    scores = (correct & inner_test[:, :, None, :]).sum(axis=3) / n_test[:, :, None]
    # A single-class inner training fold: the constant predictor of that class.
    n_pos = (inner_train & y01.astype(bool)).sum(axis=2)
    n_train = inner_train.sum(axis=2)
    for g, k in zip(*np.nonzero((n_pos == 0) | (n_pos == n_train))):
        only = int(n_pos[g, k] > 0)
        scores[g, k, :] = np.mean(y01[inner_test[g, k]] == only)

    # sklearn sums the fold scores in fold order and takes the first maximum.
    total = scores[:, 0, :].copy()
    for k in range(1, cv):
        total = total + scores[:, k, :]
    best = np.argmax(total, axis=1)

    w, n_iter, refit_converged = _solve_l2_logistic(
        designs, np.arange(n_groups), y01, outer, Cs[best], tol=tol, max_iter=max_iter)
    n_failed = int((~converged).sum() + (~refit_converged).sum())
    if n_failed:
        warnings.warn(
            f"{n_failed} of {converged.size + n_groups} logistic fits did not converge in "
            f"max_iter={max_iter} Newton steps; increase max_iter",
            ConvergenceWarning, stacklevel=3,
        )
    return _CVFit(mean=mean, scale=scale, designs=designs, scores=scores, best=best, w=w,
                  n_iter=n_iter)


def _outer_predictions(X: np.ndarray, y01: np.ndarray,
                       splits: Sequence[tuple[np.ndarray, np.ndarray]], Cs: int | Sequence[float],
                       *, cv: int, tol: float, max_iter: int) -> np.ndarray:
    """Held-out P(classes[1]) for each (train, test) split; every row must be tested once."""
    grid = _resolve_Cs(Cs)
    _check_params(cv, tol, max_iter)
    proba = np.full(len(y01), np.nan)
    fitted = []
    for train, test in splits:
        prevalence = y01[train].mean()
        if prevalence in (0.0, 1.0):
            proba[test] = prevalence  # one class to learn from: predict it, as documented above
        else:
            fitted.append((train, test))
    if fitted:
        fit = _cv_fit(X, y01, [tr for tr, _ in fitted], grid, cv=cv, tol=tol, max_iter=max_iter)
        for g, (_, test) in enumerate(fitted):
            proba[test] = expit(fit.designs[g, test] @ fit.w[g])
    return proba


def loo_predictions(X: Any, y: Any, *, Cs: int | Sequence[float] = 10, cv: int = 3,
                    tol: float = 1e-10, max_iter: int = 100) -> np.ndarray:
    """Leave-one-out held-out probabilities of the multivariate predictor.

    For each run i, the scaler is fit on the other n − 1 runs, C is chosen by stratified
    ``cv``-fold accuracy on them, the model is refit on all n − 1, and run i is predicted —
    the same as looping ``make_pipeline(StandardScaler(), LogisticRegressionCV(Cs, cv,
    solver="liblinear"))`` over the runs, but all fits are solved together.

    Parameters
    ----------
    X : array-like of shape (n_runs, n_features)
        Finite features.
    y : array-like of shape (n_runs,)
        Binary labels; the probability returned is that of the larger label.
    Cs : int or sequence of float, default=10
        Grid of C; an int means ``np.logspace(-4, 4, Cs)``.
    cv : int, default=3
        Number of inner stratified folds.
    tol : float, default=1e-10
        Newton stopping tolerance (step size relative to the coefficients).
    max_iter : int, default=100
        Newton iterations per fit.

    Returns
    -------
    ndarray of shape (n_runs,)
        Held-out P(y = classes[1]). A run whose n − 1 others hold a single class gets that
        class's indicator (0.0 or 1.0).

    Notes
    -----
    Memory grows as n_runs² × n_features (one standardised copy of the data per held-out
    run): ~0.5 MB at 48 × 28, ~230 MB at 1000 × 28. For large sweeps use
    :func:`kfold_predictions`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 3))
    >>> y = (X[:, 0] + 0.3 * rng.normal(size=20) > 0).astype(int)
    >>> loo_predictions(X, y).shape
    (20,)
    """
    # np.size, not len: a bad y (a scalar, None) is then named by the checks, not by len().
    return group_predictions(X, y, np.arange(np.size(y)), Cs=Cs, cv=cv, tol=tol,
                             max_iter=max_iter)


def group_predictions(X: Any, y: Any, groups: Any, *, Cs: int | Sequence[float] = 10,
                      cv: int = 3, tol: float = 1e-10, max_iter: int = 100) -> np.ndarray:
    """Held-out probabilities leaving out one group of runs at a time.

    As :func:`loo_predictions` (its case of one run per group), but each fit leaves out every
    run of a group, e.g. all seeds of one (train fraction, weight decay) cell, so that no run
    is predicted by a model that saw its siblings. The other runs keep their order.

    Parameters
    ----------
    X, y, Cs, cv, tol, max_iter
        As in :func:`loo_predictions`.
    groups : array-like of shape (n_runs,)
        A label per run, at least two distinct; runs with equal labels (NaN labels too) are
        held out together.

    Returns
    -------
    ndarray of shape (n_runs,)
        Held-out P(y = classes[1]); a group whose complement holds one class gets that
        class's indicator.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(24, 3))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> group_predictions(X, y, np.repeat(np.arange(8), 3)).shape
    (24,)
    """
    X_arr, y01, _ = _check_Xy(X, y)
    groups = np.asarray(groups)
    if groups.shape != y01.shape:
        raise ValueError(f"groups of shape {groups.shape} are not allowed: expected one label "
                         f"per run, shape {y01.shape}")
    # Integer codes, so that NaN labels (never equal to themselves) form one group too.
    _, first, codes = np.unique(groups, return_index=True, return_inverse=True)
    if len(first) < 2:
        raise ValueError(f"groups holding {len(first)} distinct label(s) are not allowed: leaving "
                         "out one group at a time needs at least 2")
    rows = np.arange(len(y01))
    splits = [(rows[codes != codes[i]], rows[codes == codes[i]]) for i in np.sort(first)]
    return _outer_predictions(X_arr, y01, splits, Cs, cv=cv, tol=tol, max_iter=max_iter)


def kfold_predictions(X: Any, y: Any, *, n_splits: int = 10, rng: np.random.Generator,
                      Cs: int | Sequence[float] = 10, cv: int = 3, tol: float = 1e-10,
                      max_iter: int = 100) -> np.ndarray:
    """Held-out probabilities from stratified, shuffled k-fold CV over runs (for large sweeps).

    Like :func:`loo_predictions`, but the outer loop is ``StratifiedKFold(n_splits,
    shuffle=True)`` seeded from ``rng`` (one draw), so n_splits instead of n refits.

    Parameters
    ----------
    X : array-like of shape (n_runs, n_features)
    y : array-like of shape (n_runs,)
    n_splits : int, default=10
        Outer folds, at most the number of runs. A class with fewer members than
        ``n_splits`` is missing from some folds' held-out runs (allowed, silently).
    rng : numpy.random.Generator
        Source of the fold shuffle; the same state gives the same folds.
    Cs, cv, tol, max_iter
        As in :func:`loo_predictions`.

    Returns
    -------
    ndarray of shape (n_runs,)
        Held-out P(y = classes[1]).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> kfold_predictions(X, y, n_splits=5, rng=np.random.default_rng(1)).shape
    (40,)
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    check_int("n_splits", n_splits, 2)
    X_arr, y01, _ = _check_Xy(X, y)
    seed = int(rng.integers(2**32))  # RandomState seeds are < 2**32
    outer = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A class smaller than n_splits leaves some folds without it, which the predictions
        # allow; the analysis reports the class sizes instead of sklearn's note.
        warnings.filterwarnings("ignore", message="The least populated class")
        splits = list(outer.split(np.zeros(len(y01)), y01))
    return _outer_predictions(X_arr, y01, splits, Cs, cv=cv, tol=tol, max_iter=max_iter)


# ----------------------------------------------------------------------------- the estimator

class GrokForecaster(ClassifierMixin, BaseEstimator):
    """Standardise → ℓ2 logistic regression with C chosen by internal stratified CV.

    Equivalent to ``make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=Cs, cv=cv,
    solver="liblinear"))`` (accuracy scoring, first best C, refit on all rows), solved
    exactly; see the module docstring for the few deliberate differences.

    Parameters
    ----------
    Cs : int or sequence of float, default=10
        Grid of C; an int means ``np.logspace(-4, 4, Cs)``.
    cv : int, default=3
        Number of stratified folds (no shuffling) used to choose C.
    tol : float, default=1e-10
        Newton stopping tolerance: the last step, relative to ``max(1, ‖w̃‖∞)``.
    max_iter : int, default=100
        Newton iterations per fit (≈ 20 suffice even for C = 1e4 on separable data).

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The labels, sorted; ``classes_[1]`` is the positive class.
    scaler_mean_, scaler_scale_ : ndarray of shape (n_features,)
        The standardisation, as StandardScaler's ``mean_`` and ``scale_``.
    coef_ : ndarray of shape (1, n_features)
        Coefficients on the *standardised* features (as the pipeline's LogisticRegressionCV).
    intercept_ : ndarray of shape (1,)
    C_ : float
        The chosen C.
    Cs_ : ndarray of shape (n_Cs,)
    scores_ : ndarray of shape (cv, n_Cs)
        Inner-fold accuracy of each C. A diagnostic of the fit: not saved, so a forecaster
        returned by :meth:`load` lacks it.
    n_iter_ : ndarray of shape (1,)
        Newton steps of the final refit; not saved either.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when fit on a DataFrame with string column names.
    metadata_ : ForecasterMetadata
        Only on a forecaster returned by :meth:`load`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> model = GrokForecaster().fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 2)
    """

    def __init__(self, Cs: int | Sequence[float] = 10, cv: int = 3, tol: float = 1e-10,
                 max_iter: int = 100) -> None:
        self.Cs = Cs
        self.cv = cv
        self.tol = tol
        self.max_iter = max_iter

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _more_tags(self) -> dict[str, bool]:  # scikit-learn < 1.6
        return {"binary_only": True}

    def _feature_names(self) -> list[str] | None:
        names = getattr(self, "feature_names_in_", None)
        return None if names is None else [str(s) for s in names]

    def fit(self, X: Any, y: Any) -> GrokForecaster:
        """Standardise, choose C by cross-validation, refit on all rows.

        Parameters
        ----------
        X : array-like of shape (n_runs, n_features)
            Finite features; a DataFrame's column names are kept.
        y : array-like of shape (n_runs,)
            Binary labels; both classes must occur.

        Returns
        -------
        self : GrokForecaster
        """
        Cs = _resolve_Cs(self.Cs)
        _check_params(self.cv, self.tol, self.max_iter)
        X_arr, y_arr = _sk_validate_data(self, X, y, dtype=np.float64, **_NO_FINITE_CHECK)
        _check_finite(X_arr, self._feature_names())
        _check_not_huge(X_arr, self._feature_names())
        self.classes_, y01 = _encode_binary(y_arr)

        fit = _cv_fit(X_arr, y01, [np.arange(len(y01))], Cs, cv=int(self.cv), tol=self.tol,
                      max_iter=int(self.max_iter))
        d = X_arr.shape[1]
        if not np.isfinite(fit.w).all():
            raise ValueError("the fit's coefficients overflowed float64: rescale the features")
        self.scaler_mean_ = fit.mean[0]
        self.scaler_scale_ = fit.scale[0]
        self.coef_ = fit.w[:, :d].copy()  # (1, d)
        self.intercept_ = INTERCEPT_SCALING * fit.w[:, d].copy()  # (1,)
        self.Cs_ = Cs
        self.C_ = float(Cs[fit.best[0]])
        self.scores_ = fit.scores[0]
        self.n_iter_ = fit.n_iter.copy()  # (1,)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of ``classes_[1]``.

        Parameters
        ----------
        X : array-like of shape (n_runs, n_features)

        Returns
        -------
        ndarray of shape (n_runs,)
        """
        check_is_fitted(self)
        X_arr = _sk_validate_data(self, X, reset=False, dtype=np.float64, **_NO_FINITE_CHECK)
        _check_finite(X_arr, self._feature_names())
        Z = (X_arr - self.scaler_mean_) / self.scaler_scale_
        with np.errstate(over="ignore", invalid="ignore"):  # refused below, by run
            log_odds = Z @ self.coef_[0] + self.intercept_[0]
        bad = np.flatnonzero(~np.isfinite(log_odds))
        if bad.size:
            raise ValueError(f"the log-odds of row(s) {bad[:5].tolist()} overflow: their features "
                             f"(largest |value| {np.abs(X_arr[bad]).max():.3g}) or the forecaster's "
                             f"coefficients (largest |coef| {np.abs(self.coef_).max():.3g}) are too "
                             "large for float64")
        return log_odds

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_runs, n_features)

        Returns
        -------
        ndarray of shape (n_runs, 2)
        """
        check_is_fitted(self)
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[1]`` where the decision function is positive, else ``classes_[0]``.

        Parameters
        ----------
        X : array-like of shape (n_runs, n_features)

        Returns
        -------
        ndarray of shape (n_runs,)
        """
        check_is_fitted(self)
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    # ------------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike, *, window: int, threshold: float, sweep_hash: str,
             n_train_runs: int, window_steps: Sequence[int] | None = None,
             task: dict[str, Any] | None = None,
             train_digests: Iterable[str] | None = None,
             known_features: Sequence[str] | None = None) -> None:
        """Write the fitted forecaster as one JSON file (atomically: whole file or none).

        Parameters
        ----------
        path : path-like
        window : int
            Early-training window (steps) the features were computed on.
        threshold : float
            max val_acc threshold that defined the labels, in (0, 1].
        sweep_hash : str
            Identifies the sweep the training runs came from.
        n_train_runs : int
            Number of runs it was trained on.
        window_steps : sequence of int, optional
            The logged steps below ``window`` the features were computed on (increasing, from
            0). Logs forecast later must hold them (``GrokForecaster.load`` reads them into
            ``metadata_.window_steps``); without them, every step below ``window`` is required.
        task : dict, optional
            The training sweep's :meth:`grokcast.config.SweepConfig.task`; sweeps of another
            task are then refused by ``evaluate``, ``early-stop-study`` and ``--stop-model``.
        train_digests : iterable of str, optional
            The training runs' :func:`grokcast.analysis.window_digests` (the values); saved
            sorted as ``train_window_digests``, so that ``evaluate`` and ``early-stop-study``
            recognise a training run in another sweep.
        known_features : sequence of str, optional
            Allowed feature names; defaults to ``grokcast.features.FEATURE_NAMES``.
        """
        check_is_fitted(self)
        names = self._feature_names()
        if names is None:
            raise ValueError("cannot save a forecaster fit without feature names: fit it on a "
                             "DataFrame whose columns are the feature names")
        _check_feature_names(names, known_features, ValueError)
        meta = {"window": window, "threshold": threshold, "sweep_hash": sweep_hash,
                "n_train_runs": n_train_runs}
        _check_metadata(meta, ValueError)
        meta = {"window": int(window), "threshold": float(threshold), "sweep_hash": sweep_hash,
                "n_train_runs": int(n_train_runs)}
        if window_steps is not None:
            meta["window_steps"] = [int(t) for t in _check_window_steps(
                list(window_steps), meta["window"], ValueError)]
        if task is not None:
            meta["task"] = _check_task(json.loads(json.dumps(task)), ValueError)
        if train_digests is not None:
            digests = [] if isinstance(train_digests, str | bytes) else list(train_digests)
            if digests and all(isinstance(d, str) for d in digests):
                digests = sorted(set(digests))  # any order in, one order saved
            if not digests:
                raise ValueError(f"train_digests={train_digests!r} is not allowed: expected the "
                                 "training runs' window digests (grokcast.analysis.window_digests)")
            meta["train_window_digests"] = list(_check_digests(digests, ValueError))
        doc = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "grokcast_version": grokcast.__version__,
            "feature_names": names,
            "classes": [c.item() if isinstance(c, np.generic) else c for c in self.classes_],
            "scaler_mean": self.scaler_mean_.tolist(),
            "scaler_scale": self.scaler_scale_.tolist(),
            "coef": self.coef_[0].tolist(),
            "intercept": float(self.intercept_[0]),
            "C": self.C_,
            "Cs": self.Cs_.tolist(),
            "cv": int(self.cv),
            "tol": float(self.tol),
            "max_iter": int(self.max_iter),
            **meta,
        }
        # repr-precision floats make the round trip exact; allow_nan=False keeps it strict JSON.
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
        from grokcast.store import atomic_write_bytes

        if Path(path).is_dir():  # the atomic rename would fail naming its temp file
            raise ValueError(f"path {str(path)!r} is a directory: expected the name of the "
                             "forecaster's JSON file")
        atomic_write_bytes(Path(path), text.encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike, *,
             known_features: Sequence[str] | None = None) -> GrokForecaster:
        """Read a file written by :meth:`save`, validating every field.

        Parameters
        ----------
        path : path-like
        known_features : sequence of str, optional
            Allowed feature names; defaults to ``grokcast.features.FEATURE_NAMES``.

        Returns
        -------
        GrokForecaster
            Fitted, with ``metadata_`` set; it predicts exactly as the saved one. Its ``Cs``
            parameter is the grid the saved one resolved (a list of floats, also where it was
            given as a count), and the fit diagnostics ``scores_`` and ``n_iter_`` are absent.

        Raises
        ------
        ForecasterFileError
            The file is not JSON, is truncated, lacks a key, has a value of the wrong type or
            length, was written by an incompatible format version, or names an unknown feature.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike naming a forecaster JSON file, got "
                            f"{type(path).__name__}")
        path = Path(path)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise ForecasterFileError(f"forecaster file {str(path)!r} {what}: expected the JSON file "
                                      "that grokcast fit (or GrokForecaster.save) writes")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ForecasterFileError(f"{path}: not a forecaster JSON file (not UTF-8 text)") from err

        def reject_constant(name: str) -> None:
            raise ForecasterFileError(f"{path}: {name} is not allowed in a forecaster file")

        def parse_int(digits: str) -> int:  # past ~309 digits a float conversion overflows
            if len(digits.lstrip("-")) > 300:
                raise ForecasterFileError(f"{path}: an integer of {len(digits)} digits is not "
                                          "allowed in a forecaster file")
            return int(digits)

        try:
            doc = json.loads(text, parse_constant=reject_constant, parse_int=parse_int,
                             object_pairs_hook=unique_keys)
        except json.JSONDecodeError as err:
            raise ForecasterFileError(
                f"{path}: not valid JSON (truncated or corrupted?): {err.msg} (line "
                f"{err.lineno}, column {err.colno})"
            ) from err
        except RecursionError:
            raise ForecasterFileError(f"{path}: not a forecaster file: its JSON is nested too "
                                      "deeply") from None
        except ForecasterFileError:
            raise  # reject_constant's and parse_int's, which name the file
        except ValueError as err:  # unique_keys's
            raise ForecasterFileError(f"{path}: not a forecaster file: {err}") from None
        try:
            return cls._from_document(doc, known_features)
        except ForecasterFileError as err:
            raise ForecasterFileError(f"{path}: {err}") from None

    @classmethod
    def _from_document(cls, doc: Any, known_features: Sequence[str] | None) -> GrokForecaster:
        fail = ForecasterFileError
        if not isinstance(doc, dict):
            raise fail(f"expected a JSON object at the top level, got {type(doc).__name__}")
        for key in ("format", "format_version"):
            if key not in doc:
                raise fail(f"missing key {key!r}: not a forecaster file")
        if doc["format"] != FORMAT_NAME:
            raise fail(f"'format' is {doc['format']!r}, expected {FORMAT_NAME!r}")
        version = doc["format_version"]
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise fail(f"format_version {version!r} is not supported: this grokcast "
                       f"({grokcast.__version__}) reads format_version {FORMAT_VERSION}")
        missing = [k for k in _FILE_KEYS if k not in doc]
        if missing:
            raise fail(f"missing key(s) {', '.join(map(repr, missing))}")

        names = doc["feature_names"]
        if not isinstance(names, list) or not names or not all(isinstance(s, str) for s in names):
            raise fail("'feature_names' must be a non-empty list of strings")
        _check_feature_names(names, known_features, fail)
        d = len(names)
        mean = _float_list(doc, "scaler_mean", d)
        scale = _float_list(doc, "scaler_scale", d)
        if np.any(scale < np.finfo(np.float64).tiny):  # 1e-320 would turn z into inf
            raise fail("'scaler_scale' must hold positive numbers (not subnormal)")
        coef = _float_list(doc, "coef", d)
        Cs = _float_list(doc, "Cs", None)
        intercept = _float(doc, "intercept")
        C = _float(doc, "C")
        if np.any(Cs <= 0) or C <= 0:
            raise fail("'C' and 'Cs' must be positive")
        classes = doc["classes"]
        if (not isinstance(classes, list) or len(classes) != 2
                or not all(isinstance(c, (str, int, float)) for c in classes)
                or type(classes[0]) is not type(classes[1]) or not classes[0] < classes[1]):
            # Sorted, as fit() stores them: P(grok) is the probability of classes[1], so a
            # reversed pair would turn every forecast around.
            raise fail(f"'classes' must be two distinct labels of one type in increasing order, "
                       f"got {classes!r}")
        if not isinstance(doc["grokcast_version"], str):
            raise fail("'grokcast_version' must be a string")
        meta = {k: doc[k] for k in ("window", "threshold", "sweep_hash", "n_train_runs")}
        _check_metadata(meta, fail)
        try:
            _resolve_Cs(list(Cs))
            _check_params(doc["cv"], doc["tol"], doc["max_iter"])
        except ValueError as err:
            raise fail(str(err)) from None

        model = cls(Cs=Cs.tolist(), cv=doc["cv"], tol=doc["tol"], max_iter=doc["max_iter"])
        model.classes_ = np.array(classes)
        model.n_features_in_ = d
        model.feature_names_in_ = np.array(names, dtype=object)
        model.scaler_mean_ = mean
        model.scaler_scale_ = scale
        model.coef_ = coef[None, :]
        model.intercept_ = np.array([intercept])
        model.C_ = C
        model.Cs_ = Cs
        steps = doc.get("window_steps")  # optional: older files lack it
        model.metadata_ = ForecasterMetadata(
            window=meta["window"], threshold=float(meta["threshold"]),
            sweep_hash=meta["sweep_hash"], n_train_runs=meta["n_train_runs"],
            grokcast_version=doc["grokcast_version"],
            window_steps=None if steps is None else _check_window_steps(steps, meta["window"], fail),
            task=None if doc.get("task") is None else _check_task(doc["task"], fail),
            train_digests=None if doc.get("train_window_digests") is None
            else _check_digests(doc["train_window_digests"], fail),
        )
        return model


def _check_task(task: Any, error: type[Exception]) -> dict[str, Any]:
    """A task as ``SweepConfig.task()`` writes it: p, model and optim, each setting valid and
    none missing (the monitor and the task checks read them)."""
    from grokcast.config import ConfigError, SweepConfig

    if not isinstance(task, dict) or not all(isinstance(k, str) for k in task):
        raise error(f"task={task!r:.200} is not allowed: expected a JSON object (a sweep config's "
                    "p, model and optim)")
    try:
        if set(task) != {"p", "model", "optim"}:
            raise ConfigError(f"its keys are {sorted(task)}: expected ['model', 'optim', 'p']")
        full = SweepConfig.from_dict(task).task()
    except (ConfigError, TypeError) as err:
        raise error(f"task={task!r:.200} is not allowed: {err}") from None
    missing = [key for key, _, theirs in _differences(full, task) if theirs is None]
    if missing:
        raise error(f"task={task!r:.200} is not allowed: it lacks {missing}")
    return task


def _differences(mine: Any, theirs: Any, key: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, mine, theirs) wherever two nested dicts of plain values differ."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return [d for k in sorted(set(mine) | set(theirs))
                for d in _differences(mine.get(k), theirs.get(k), f"{key}.{k}" if key else k)]
    return [] if mine == theirs else [(key, mine, theirs)]


def as_forecaster(forecaster: Any) -> Any:
    """A fitted forecaster: ``forecaster`` itself, or the file ``grokcast fit`` wrote loaded.

    Anything with ``predict_proba`` passes, so a scikit-learn pipeline can stand in where only
    P(grok) is needed (the Optuna pruner); :class:`grokcast.monitor.GrokMonitor` and
    :func:`grokcast.tool.explain` also read a GrokForecaster's scaler, coefficients and
    feature names.
    """
    if isinstance(forecaster, (str, os.PathLike)):
        return GrokForecaster.load(forecaster)
    if not hasattr(forecaster, "predict_proba"):
        raise TypeError("forecaster must be a GrokForecaster or a path, got "
                        f"{type(forecaster).__name__}")
    return forecaster


def fitted_window(forecaster: Any) -> int | None:
    """The window W a forecaster was fit on, where it records one (``metadata_``), else None."""
    window = getattr(getattr(forecaster, "metadata_", None), "window", None)
    return None if window is None else int(window)


def check_window(window: Any, forecaster: Any, *, minimum: int) -> int:
    """``window`` as an int: at least ``minimum``, and the forecaster's own where it records one."""
    window = check_int("window", window, minimum)
    fitted = fitted_window(forecaster)
    if fitted is not None and window != fitted:
        raise ValueError(f"window={window} is not allowed: the forecaster was fit on "
                         f"window={fitted}; leave window out to use it")
    return window


_FILE_KEYS = (
    "grokcast_version", "feature_names", "classes", "scaler_mean", "scaler_scale", "coef",
    "intercept", "C", "Cs", "cv", "tol", "max_iter", "window", "threshold", "sweep_hash",
    "n_train_runs",
)


def _default_known_features() -> Sequence[str]:
    """The feature registry (imported late: only saving and loading need it)."""
    from grokcast.features import FEATURE_NAMES

    return FEATURE_NAMES


def _check_feature_names(names: Sequence[str], known: Sequence[str] | None,
                         error: type[Exception]) -> None:
    if len(set(names)) != len(names):
        dupes = sorted({s for s in names if list(names).count(s) > 1})
        raise error(f"feature names repeat: {dupes!r}")
    if known is None:
        known = _default_known_features()
    unknown = [s for s in names if s not in set(known)]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise error(f"unknown feature name(s) {unknown!r}{hint}: not among the {len(known)} "
                    "known features")


def _check_metadata(meta: dict[str, Any], error: type[Exception]) -> None:
    check_int("window", meta["window"], 1, error=error)
    check_number("threshold", meta["threshold"], 0, 1, closed="hi", error=error)
    if not (isinstance(meta["sweep_hash"], str) and meta["sweep_hash"]):
        raise error(f"sweep_hash={meta['sweep_hash']!r} is not allowed: expected a non-empty string")
    check_int("n_train_runs", meta["n_train_runs"], 2, error=error)


def _check_digests(digests: Any, error: type[Exception]) -> tuple[str, ...]:
    from grokcast.analysis import WINDOW_DIGEST_HEX

    pattern = re.compile(f"[0-9a-f]{{{WINDOW_DIGEST_HEX}}}")
    ok = isinstance(digests, list) and bool(digests) and all(
        isinstance(d, str) and pattern.fullmatch(d) for d in digests)
    if not ok or digests != sorted(set(digests)):
        shown = digests if not isinstance(digests, list) or len(digests) <= 3 else f"{digests[:3]}..."
        raise error(f"train_window_digests={shown!r} is not allowed: expected a sorted list of "
                    f"distinct strings of {WINDOW_DIGEST_HEX} lowercase hex digits")
    return tuple(digests)


def _check_window_steps(steps: Any, window: int, error: type[Exception]) -> tuple[int, ...]:
    ok = (isinstance(steps, list) and len(steps) >= 2
          and all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in steps))
    if ok:
        ok = steps[0] == 0 and steps[-1] < window and all(a < b for a, b in zip(steps, steps[1:]))
    if not ok:
        shown = steps if not isinstance(steps, list) or len(steps) <= 6 else f"{steps[:6]}..."
        raise error(f"window_steps={shown!r} is not allowed: expected at least two increasing "
                    f"integer steps from 0, below window={window}")
    return tuple(int(t) for t in steps)


def _float(doc: dict[str, Any], key: str) -> float:
    v = doc[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ForecasterFileError(f"{key!r} must be a finite number, got {v!r}")
    return float(v)


def _float_list(doc: dict[str, Any], key: str, length: int | None) -> np.ndarray:
    v = doc[key]
    if not isinstance(v, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise ForecasterFileError(f"{key!r} must be a list of numbers")
    if length is not None and len(v) != length:
        raise ForecasterFileError(
            f"{key!r} has {len(v)} entries but there are {length} feature names")
    if not v:
        raise ForecasterFileError(f"{key!r} must not be empty")
    out = np.array(v, dtype=np.float64)
    if not np.isfinite(out).all():  # json reads 1e400 as inf
        raise ForecasterFileError(f"{key!r} holds a non-finite number at index "
                                  f"{int(np.flatnonzero(~np.isfinite(out))[0])}")
    return out
