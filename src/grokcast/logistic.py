"""ℓ2-regularised logistic regression as liblinear solves it, batched: the solver behind
:class:`grokcast.forecast.GrokForecaster` and the held-out predictions of the analysis.

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
  ~1e-6 in the coefficients, and the chosen C agrees because the accuracy scores do. Where
  the optimum is w̃ = 0 to within the rounding of the gradient there (balanced classes whose
  features sum alike: discrete features in a small fold), the solution is exactly 0, as
  liblinear's is, not rounding noise whose signs would decide the predictions. Likewise a
  decision that is exactly 0 at a nonzero optimum (a run at the centre of a fold symmetric
  but for its labels: grid ranks, discrete features) counts as 0, i.e. ``classes[0]``, in
  the internal CV's accuracies, where its rounding noise, liblinear's too, picked either class.
* An inner training fold holding a single class (the outer training set has just one member
  of that class) makes ``LogisticRegressionCV`` raise. Here that fold's model is the constant
  predictor of its one class, which is what the liblinear library itself returns for
  one-label data, and it is scored as such for every C.
* In :func:`loo_predictions` / :func:`kfold_predictions`, an outer training set holding a
  single class gets, for its held-out runs, that set's prevalence of ``classes[1]`` (0.0
  or 1.0) instead of an error. :meth:`grokcast.forecast.GrokForecaster.fit` on a single
  class raises.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_X_y
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

from grokcast.validation import check_int, check_number

# check_array's "allow NaN/inf" switch was renamed in scikit-learn 1.6.
NO_FINITE_CHECK = (
    {"ensure_all_finite": False}
    if "ensure_all_finite" in inspect.signature(check_array).parameters
    else {"force_all_finite": False}
)

INTERCEPT_SCALING = 1.0  # liblinear's default, which the paper used (LogisticRegressionCV default)
# Bounds the (problems, rows, features) design stack one Newton batch holds: 2**22 float64
# values = 32 MiB, so large k-fold sweeps are solved in chunks instead of all at once.
_MAX_BATCH_VALUES = 2**22
_ARMIJO = 1e-4  # sufficient-decrease constant of the backtracking line search
_QUADRATIC_DZ = 1e-2  # margin change below which the full Newton step is safe (see below)
_MAX_HALVINGS = 40  # a step shrunk 2**40 times is below roundoff: the problem is solved


class TooFewRunsError(ValueError):
    """A training set too small for the stratified internal CV that chooses C."""


# ----------------------------------------------------------------------------- validation

MAX_CS = 1000  # grid points of C; LogisticRegressionCV's default is 10

def resolve_Cs(Cs: int | Sequence[float]) -> np.ndarray:
    """The grid of C values: ``np.logspace(-4, 4, Cs)`` for an int, as LogisticRegressionCV."""
    if isinstance(Cs, (int, np.integer)) and not isinstance(Cs, bool):
        if not 1 <= Cs <= MAX_CS:  # each C is a Newton solve per fold: a huge grid never ends
            raise ValueError(f"Cs={Cs!r} is not allowed: expected an integer in [1, {MAX_CS}] or "
                             "a list of C > 0")
        return np.logspace(-4, 4, int(Cs))
    # bool excluded for the type checker only: a bool has no __iter__.
    values = list(Cs) if hasattr(Cs, "__iter__") and not isinstance(Cs, str | bytes | bool) else []
    try:  # numbers only: numpy would read '1' as 1.0, and fail on 'a' naming no argument
        if any(isinstance(c, str | bytes | bool | np.bool_) for c in values):
            raise TypeError
        grid = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        grid = np.empty(0)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ValueError(f"Cs={Cs!r} is not allowed: expected an integer >= 1 or a list of C > 0")
    return grid


def check_params(cv: Any, tol: Any, max_iter: Any) -> None:
    check_int("cv", cv, 2)
    check_number("tol", tol, 0, 1)
    check_int("max_iter", max_iter, 1)


def check_not_huge(X: np.ndarray, names: Sequence[str] | None) -> None:
    """Raise naming a column whose values are so large that standardising it overflows
    float64 (the sum of squares of its values: about 1e150 and beyond)."""
    limit = np.sqrt(np.finfo(np.float64).max / max(len(X), 1)) / 2
    bad = np.flatnonzero((np.abs(X) > limit).any(axis=0))
    if bad.size:
        column = repr(str(names[bad[0]])) if names is not None else f"{bad[0]}"
        raise ValueError(f"X column {column} holds values up to {np.abs(X[:, bad[0]]).max():.3g}, "
                         f"too large to standardise in float64 (at most {limit:.3g} here): rescale it")


def check_finite(X: np.ndarray, names: Sequence[str] | None) -> None:
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


def column_names(X: Any) -> list[str] | None:
    columns = getattr(X, "columns", None)
    return None if columns is None else [str(c) for c in columns]


def encode_binary(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def check_Xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 X, the 0/1 labels and the two classes."""
    names = column_names(X)
    X_arr, y_arr = check_X_y(X, y, dtype=np.float64, **NO_FINITE_CHECK)
    check_finite(X_arr, names)
    check_not_huge(X_arr, names)
    classes, y01 = encode_binary(y_arr)
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
    # column, whose scale is set to 1 so the column maps to x - mean, 0 up to the rounding of
    # the mean, instead of to noise (as with sklearn, that rounding is large for |x| >~ 1e16).
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
    for it in range(max_iter):
        z = np.matmul(X, w[:, :, None])[:, :, 0]  # (b, n)
        yz = y * z
        s = expit(-yz)  # P(wrong label)
        grad = w - np.matmul((cm * y * s)[:, None, :], X)[:, 0, :]  # (b, p)
        h = cm * s * expit(yz)  # both factors from expit: no cancellation in 1 - s
        step = np.linalg.solve(_hessian(X, h), -grad[:, :, None])[:, :, 0]  # (b, p)
        # H ⪰ I, so the Newton step bounds the distance to the optimum (to second order):
        # once it is below tol relative to ‖w̃‖∞ the full step lands on the optimum.
        small = np.abs(step).max(axis=1) <= tol * np.maximum(1.0, np.abs(w).max(axis=1))

        t, stalled = _step_lengths(X, y, cm, w, z, yz, grad, step, small)
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


def _hessian(X: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The liblinear objective's Hessian X̃ᵀ diag(h) X̃ + I for a stack of problems: X (b, n, p),
    h (b, n) the rows' weights C·s·(1 − s); (b, p, p)."""
    H = np.matmul(X.transpose(0, 2, 1) * h[:, None, :], X)
    diag = np.arange(X.shape[2])
    H[:, diag, diag] += 1.0
    return H


def _step_lengths(X: np.ndarray, y: np.ndarray, cm: np.ndarray, w: np.ndarray, z: np.ndarray,
                  yz: np.ndarray, grad: np.ndarray, step: np.ndarray, small: np.ndarray,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Backtracking (Armijo) line search along each problem's Newton ``step``: the step
    lengths t (B,), and which problems stalled (no decrease even for a 2**-40 step: roundoff,
    the optimum; their t is 0).

    ``z`` (B, n) are the margins at ``w``, ``yz = y * z``, ``grad`` the gradient there and
    ``small`` the problems already at the optimum (full step). A step that moves no margin by
    more than _QUADRATIC_DZ stays where the loss is quadratic to within that relative error,
    so the full step decreases f; it is taken without comparing f values, whose difference
    there can be below roundoff.
    """
    dz = np.matmul(X, step[:, :, None])[:, :, 0]  # (b, n)
    t = np.ones(len(w))
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
    stalled = ~accepted
    t[stalled] = 0.0
    return t, stalled


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
            X = designs[group[sl]]
            w[sl], n_iter[sl], converged[sl] = _newton_chunk(
                X, y, cm[sl], w0[sl], tol=tol, max_iter=max_iter)
            w[sl][_optimum_is_zero(X, y, cm[sl])] = 0.0
    return w, n_iter, converged


def _optimum_is_zero(X: np.ndarray, y: np.ndarray, cm: np.ndarray) -> np.ndarray:
    """Whether each problem's gradient at w̃ = 0 vanishes to within its rounding: (B,) bool.

    It does exactly when the classes are balanced and every feature sums alike over both
    (discrete features in a small fold). The optimum is then w̃ = 0, every decision 0 and every
    prediction ``classes[0]``, which is what liblinear returns; Newton's answer would be
    rounding noise of ~1e-17 whose signs decide the predictions, and with them the fold
    accuracies and the chosen C.
    """
    terms = 0.5 * (cm * y)[:, :, None] * X  # (b, n, p): the gradient at 0 is minus their sum
    bound = 4 * X.shape[1] * np.finfo(np.float64).eps * np.abs(terms).sum(axis=1)
    return (np.abs(terms.sum(axis=1)) <= bound).all(axis=1)


@dataclass(frozen=True)
class CVFit:
    """Result of CV-selecting C and refitting, for G training sets at once."""

    mean: np.ndarray  # (G, d) scaler means
    scale: np.ndarray  # (G, d) scaler scales
    designs: np.ndarray  # (G, n, p) every row standardised by its group's scaler
    scores: np.ndarray  # (G, cv, n_Cs) inner-fold accuracies
    best: np.ndarray  # (G,) index of the chosen C
    w: np.ndarray  # (G, p) refit coefficients, intercept last
    n_iter: np.ndarray  # (G,) Newton steps of each refit


def cv_fit(X: np.ndarray, y01: np.ndarray, train_sets: Sequence[np.ndarray], Cs: np.ndarray,
            *, cv: int, tol: float, max_iter: int) -> CVFit:
    """Standardise, pick C by stratified cv-fold accuracy, refit — for each training set.

    Every training set must hold both classes.
    """
    n, n_groups = len(y01), len(train_sets)
    outer = np.zeros((n_groups, n), dtype=bool)
    for g, rows in enumerate(train_sets):
        outer[g, rows] = True
    mean, scale = _scaler_stats(X, outer)
    designs = _designs(X, mean, scale)  # (G, n, p)

    inner_train, inner_test = _inner_folds(y01, train_sets, cv)
    w_inner, converged = _fit_along_Cs(designs, y01, inner_train, Cs, tol=tol, max_iter=max_iter)
    scores = _fold_scores(designs, y01, inner_train, inner_test, w_inner, Cs)

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
    return CVFit(mean=mean, scale=scale, designs=designs, scores=scores, best=best, w=w,
                  n_iter=n_iter)


def _inner_folds(y01: np.ndarray, train_sets: Sequence[np.ndarray], cv: int,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The inner CV's folds of each training set as row masks: ``inner_train`` and
    ``inner_test``, bool (G, cv, n)."""
    n_groups, n = len(train_sets), len(y01)
    inner_train = np.zeros((n_groups, cv, n), dtype=bool)
    inner_test = np.zeros((n_groups, cv, n), dtype=bool)
    for g, rows in enumerate(train_sets):
        try:
            # LogisticRegressionCV(cv=int) uses StratifiedKFold(cv) without shuffling.
            with warnings.catch_warnings():
                # A class smaller than cv is expected with few grokking runs; the folds that
                # lack it are handled by _fold_scores, so sklearn's per-fit warning is only noise.
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
    return inner_train, inner_test


def _fit_along_Cs(designs: np.ndarray, y01: np.ndarray, inner_train: np.ndarray, Cs: np.ndarray,
                  *, tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Every inner fold's solution at every C: ``w_inner`` (G, cv, n_Cs, p) and ``converged``
    (G * cv, n_Cs).

    One problem per (group, fold), solved along the C grid in increasing order, each C
    starting from the previous C's optimum: about a third fewer Newton steps than cold starts.
    """
    n_groups, cv, n = inner_train.shape
    group = np.repeat(np.arange(n_groups), cv)
    w_inner: np.ndarray = np.empty((n_groups * cv, len(Cs), designs.shape[2]))
    converged = np.ones((n_groups * cv, len(Cs)), dtype=bool)
    w_prev = None
    for j in np.argsort(Cs, kind="stable"):
        w_prev, _, converged[:, j] = _solve_l2_logistic(
            designs, group, y01, inner_train.reshape(-1, n), np.full(len(group), Cs[j]),
            tol=tol, max_iter=max_iter, w0=w_prev)
        w_inner[:, j] = w_prev
    return w_inner.reshape(n_groups, cv, len(Cs), -1), converged


def _fold_scores(designs: np.ndarray, y01: np.ndarray, inner_train: np.ndarray,
                 inner_test: np.ndarray, w_inner: np.ndarray, Cs: np.ndarray) -> np.ndarray:
    """Accuracy of each inner fold's model on its test fold at each C: (G, cv, n_Cs).

    Predicts classes[1] where the decision is > 0, as LinearClassifierMixin.predict does,
    counting a decision within its rounding of 0 (:func:`_decision_rounding`) as 0; a
    single-class inner training fold is the constant predictor of that class.
    """
    decision = np.einsum("gnp,gkcp->gkcn", designs, w_inner)  # (G, cv, n_Cs, n)
    rounding = _decision_rounding(designs, y01, inner_train, w_inner, Cs, decision)
    correct = (decision > rounding) == y01.astype(bool)
    n_test = inner_test.sum(axis=2)  # (G, cv)
    scores = (correct & inner_test[:, :, None, :]).sum(axis=3) / n_test[:, :, None]
    n_pos = (inner_train & y01.astype(bool)).sum(axis=2)
    n_train = inner_train.sum(axis=2)
    for g, k in zip(*np.nonzero((n_pos == 0) | (n_pos == n_train))):
        only = int(n_pos[g, k] > 0)
        scores[g, k, :] = np.mean(y01[inner_test[g, k]] == only)
    return scores


def _decision_rounding(designs: np.ndarray, y01: np.ndarray, inner_train: np.ndarray,
                       w_inner: np.ndarray, Cs: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """How far each computed decision can be from the exact optimum's: (G, cv, n_Cs, n).

    A decision that is exactly 0 at a nonzero optimum (a run at the centre of a fold that is
    symmetric but for its labels: grid ranks, discrete features) comes out as rounding noise
    of either sign, and that sign picked classes[1] or classes[0], so the fold accuracies,
    and with them C, changed with C's rounding and not with the data (liblinear's answer is
    noise too). At a converged solution ∇f(w̃) is the rounding of the gradient's n-term sums
    (margins and expit included, bounded generously), and w̃ − w̃* = H⁻¹∇f(w̃) with H the
    Hessian (to first order in that tiny step), so the decision x̃·w̃ is within
    ‖H⁻¹x̃‖₂‖∇f(w̃)‖₂ (and its own rounding) of the optimum's; a decision that close to 0 has
    no sign the data decide, and is read as the exact 0 it is in those cases. H ⪰ I, but
    ‖x̃‖₂ in place of ‖H⁻¹x̃‖₂ (the objective's 1-strong convexity) is far too wide at a large C:
    at C = 1e8 it read a test run's decision of 2e-4, exact to 1e-16, as 0. A fit stopped by
    max_iter (warned about) keeps its decisions as computed.
    """
    n_groups, cv, n_cs, n = decision.shape
    p = designs.shape[2]
    eps = np.finfo(np.float64).eps
    y = 2.0 * y01 - 1.0
    cm = Cs[None, None, :, None] * inner_train[:, :, None, :]  # (G, cv, n_Cs, n)
    s = expit(-y * decision)  # P(wrong label) at the training rows
    abs_designs = np.abs(designs)  # (G, n, p)
    spread = np.matmul(np.abs(w_inner).reshape(n_groups, -1, p),
                       abs_designs.transpose(0, 2, 1)).reshape(decision.shape)  # Σ_j |x̃_j w̃_j|
    weight = (cm * s * (1.0 + spread)).reshape(n_groups, -1, n)
    grad_rounding = 4 * (n + p) * eps * (
        np.abs(w_inner) + np.matmul(weight, abs_designs).reshape(w_inner.shape))
    radius = np.linalg.norm(grad_rounding, axis=-1)  # (G, cv, n_Cs)
    own = 4 * p * eps * spread  # the rounding of x̃·w̃ itself
    reach = np.broadcast_to(np.linalg.norm(designs, axis=2)[:, None, None, :],
                            decision.shape).copy()  # ‖x̃‖₂ >= ‖H⁻¹x̃‖₂, as H ⪰ I
    # ‖H⁻¹x̃‖₂ only for the fits with a run it scores inside the wider bound, which are rare:
    # building every fit's Hessian made a 48-run leave-one-out 13% slower.
    near = ((np.abs(decision) <= radius[..., None] * reach + own)
            & ~inner_train[:, :, None, :]).any(axis=-1)
    g, k, j = np.nonzero(near)
    if g.size:
        X = designs[g]  # (m, n, p), one per fit near 0
        H = _hessian(X, (cm * s * expit(y * decision))[g, k, j])
        reach[g, k, j] = np.linalg.norm(np.linalg.solve(H, X.transpose(0, 2, 1)), axis=1)
    return radius[..., None] * reach + own


def _outer_predictions(X: np.ndarray, y01: np.ndarray,
                       splits: Sequence[tuple[np.ndarray, np.ndarray]], Cs: int | Sequence[float],
                       *, cv: int, tol: float, max_iter: int) -> np.ndarray:
    """Held-out P(classes[1]) for each (train, test) split; every row must be tested once."""
    grid = resolve_Cs(Cs)
    check_params(cv, tol, max_iter)
    proba = np.full(len(y01), np.nan)
    fitted = []
    for train, test in splits:
        prevalence = y01[train].mean()
        if prevalence in (0.0, 1.0):
            proba[test] = prevalence  # one class to learn from: predict it, as documented above
        else:
            fitted.append((train, test))
    if fitted:
        fit = cv_fit(X, y01, [tr for tr, _ in fitted], grid, cv=cv, tol=tol, max_iter=max_iter)
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
    X_arr, y01, _ = check_Xy(X, y)
    groups = np.asarray(groups)
    if groups.shape != y01.shape:
        raise ValueError(f"groups of shape {groups.shape} are not allowed: expected one label "
                         f"per run, shape {y01.shape}")
    # Integer codes in order of first appearance, by hashing: labels of mixed types need no
    # order, and missing ones (NaN, never equal to itself, or None) form one group.
    codes, labels = pd.factorize(groups, use_na_sentinel=False)
    if len(labels) < 2:
        raise ValueError(f"groups holding {len(labels)} distinct label(s) are not allowed: leaving "
                         "out one group at a time needs at least 2")
    rows = np.arange(len(y01))
    splits = [(rows[codes != c], rows[codes == c]) for c in range(len(labels))]
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
    X_arr, y01, _ = check_Xy(X, y)
    seed = int(rng.integers(2**32))  # RandomState seeds are < 2**32
    outer = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A class smaller than n_splits leaves some folds without it, which the predictions
        # allow; the analysis reports the class sizes instead of sklearn's note.
        warnings.filterwarnings("ignore", message="The least populated class")
        splits = list(outer.split(np.zeros(len(y01)), y01))
    return _outer_predictions(X_arr, y01, splits, Cs, cv=cv, tol=tol, max_iter=max_iter)
