"""AUROC, bootstrap confidence intervals and the paired bootstrap: arrays in, numbers out.

Every function is pure; randomness comes only from the ``rng`` argument (a
:class:`numpy.random.Generator`), so the same generator state gives the same answer.

How the bootstrap is done
-------------------------
A bootstrap resample draws n runs with replacement from the n runs. The AUROC of a resample
depends only on how many times each run was drawn, so :func:`auroc_weighted` computes it from
a ``(n_resamples, n)`` matrix of draw counts after sorting the scores once: all resamples
together cost O(n_resamples * n), with no Python loop over resamples (2,000 resamples of 48
runs take about a millisecond).
"""

from __future__ import annotations

import math
import numbers
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

import numpy as np

from grokcast.validation import check_int, check_number

# Resamples are processed in blocks of about this many (resample, run) cells: temporaries of
# 1 MiB stay in cache, which is ~2x faster than whole-matrix operations for large sweeps.
_BLOCK_CELLS = 2**17


class BootstrapCI(NamedTuple):
    """An AUROC on the full data and its percentile bootstrap interval."""

    estimate: float
    lo: float
    hi: float


class PairedBootstrap(NamedTuple):
    """AUROC(a) - AUROC(b) on the full data, its percentile interval, P(diff* <= 0), and
    P(diff* = 0): the ties, which the one-sided p counts against a."""

    diff: float
    lo: float
    hi: float
    p_one_sided: float
    ties: float


def format_p(p: float, n_resamples: int | None = None) -> str:
    """A p-value as the tables print it: ``0.002``, or ``< 0.001`` below three decimals.

    A bootstrap p-value is a count over ``n_resamples``: 0 means below 1/n_resamples, not
    below 0.001, so with fewer than 1,000 resamples a 0 prints as ``< 1/n_resamples``
    (rounded up to two significant digits: ``< 0.02`` for 50). A count over 2,000 can end
    in 5 at the fourth decimal: it rounds half up, as written (411/2000 = 0.2055 is stored
    as 0.20549999..., which ``f"{p:.3f}"`` rounds down while 7/2000 = 0.0035 went up).

    >>> format_p(0.0123), format_p(0.0), format_p(0.0, 2000), format_p(0.0, 50), format_p(0.0, 999)
    ('0.012', '< 0.001', '< 0.001', '< 0.02', '< 0.0011')
    >>> format_p(411 / 2000), format_p(7 / 2000), format_p(0.4335)
    ('0.206', '0.004', '0.434')
    """
    if p == 0 and n_resamples is not None and n_resamples < 1000:
        step = 10.0 ** (math.floor(math.log10(1 / n_resamples)) - 1)  # two significant digits
        return f"< {math.ceil(round(1 / n_resamples / step, 9)) * step:.2g}"
    if p < 0.001:
        return "< 0.001"
    # repr is the shortest decimal that reads back as p: 0.2055, not 0.20549999...
    return str(Decimal(repr(float(p))).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP))


def format_percent(fraction: float) -> str:
    """A fraction (a confidence level, a recall) as a percentage with the digits it needs.

    ``f"{level:.0%}"`` printed a 0.999 confidence level as "100%" and 0.975 as "98%". Ten
    significant digits at most, so that float error (1 - 0.95 is 0.050000000000000044) does
    not show.

    >>> format_percent(0.95), format_percent(0.999), format_percent(0.975), format_percent(1 - 0.95)
    ('95%', '99.9%', '97.5%', '5%')
    """
    return f"{Decimal(f'{100 * float(fraction):.10g}').normalize():f}%"


# ----------------------------------------------------------------------------- validation

def _check_labels(y: object) -> np.ndarray:
    """0/1 (or bool) labels of shape (n,) -> bool array; raise naming what was received."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"y must have shape (n,) with n >= 1, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    try:  # an object array may hold None or pandas' NA, which neither sort nor compare
        values = np.unique(arr)
        ok = bool(np.isin(values, [0, 1]).all())
    except (TypeError, ValueError):
        ok = False
        values = np.asarray(list(dict.fromkeys(arr.tolist())), dtype=object)
    if not ok:
        raise ValueError(f"y must hold 0/1 labels, got values {values[:10].tolist()!r}")
    return arr.astype(bool)


def _check_two_classes(y: np.ndarray) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(
            f"y contains only one class ({int(n_pos > 0)}, {y.size} runs): "
            "AUROC needs at least one positive and one negative")


def _check_score(score: object, n: int, name: str = "score") -> np.ndarray:
    raw = np.asarray(score)
    # float() would drop an imaginary part, or parse text; an object array of real numbers
    # (Fractions, a mixed DataFrame's row) is read as the numbers it holds.
    if raw.dtype.kind == "O":
        for v in raw.flat:
            if not isinstance(v, numbers.Real | np.bool_):
                raise ValueError(f"{name} must hold real numbers, got a {type(v).__name__}: "
                                 f"{v!r:.40}")
    elif raw.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {raw.dtype}")
    try:
        arr = raw.astype(float)
    except OverflowError:  # a 400-digit int or a huge Fraction in an object array
        raise ValueError(f"{name} holds a number too large for a float") from None
    if arr.shape[-1:] != (n,) or arr.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape ({n},) or (k, {n}) to match y, got {arr.shape}")
    if np.isnan(arr).any():
        where = np.argwhere(np.isnan(arr))[:5].tolist()
        raise ValueError(f"{name} holds NaN at index {where}: AUROC needs orderable scores")
    return arr


# The resamples are held as an (n_resamples, n_runs) matrix of draw counts. A million is far
# past the point where the CI's Monte Carlo error is negligible, and a larger number only
# exhausts memory.
MAX_RESAMPLES = 1_000_000

def _check_resampling(rng: object, n_resamples: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    check_int("n_resamples", n_resamples, 1, MAX_RESAMPLES)


def _check_bootstrap_args(rng: object, n_resamples: object, level: object) -> None:
    _check_resampling(rng, n_resamples)
    check_number("level", level, 0, 1)


# ----------------------------------------------------------------------------- AUROC

def auroc_weighted(y: object, score: object, weights: object) -> np.ndarray:
    """AUROC of one score under many weightings of the runs (bootstrap draw counts).

    With integer weights ``c_i`` this equals the AUROC of the data set in which run i appears
    ``c_i`` times, so a bootstrap resample is a row of draw counts.

    Parameters
    ----------
    y : array-like of shape (n,)
        0/1 labels.
    score : array-like of shape (n,)
        Scores, higher meaning "more likely 1"; no NaN.
    weights : array-like of shape (n_resamples, n)
        Non-negative weight of each run in each resample.

    Returns
    -------
    ndarray of shape (n_resamples,)
        Mann-Whitney AUROC per resample, ties counting one half; NaN for a resample whose
        positives or negatives all have weight 0.

    Examples
    --------
    >>> auroc_weighted([0, 1, 1], [0.1, 0.2, 0.0], [[1, 1, 1], [1, 1, 0], [0, 1, 1]])
    array([0.5, 1. , nan])
    """
    y = _check_labels(y)
    s = _check_score(score, y.size)
    if s.ndim != 1:
        raise ValueError(f"score must have shape ({y.size},), got {s.shape}")
    w = np.asarray(weights)
    if w.ndim != 2 or w.shape[1] != y.size:
        raise ValueError(f"weights must have shape (n_resamples, {y.size}), got {w.shape}")
    if w.dtype.kind not in "biuf":
        raise TypeError(f"weights must be real numbers, got dtype {w.dtype}")
    bad = (w < 0) if w.dtype.kind in "iu" else ~(np.isfinite(w) & (w >= 0))
    if bad.any():
        b, i = np.argwhere(bad)[0]
        raise ValueError(f"weights must be finite and >= 0, got {w[b, i]} at [{b}, {i}]")
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of each tie group
    out = np.empty(w.shape[0])
    block = max(1, _BLOCK_CELLS // max(y.size, 1))
    for b in range(0, w.shape[0], block):
        wb = w[b:b + block, order].astype(float)
        pos = np.add.reduceat(np.where(y, wb, 0.0), starts, axis=1)  # (B, n_groups)
        neg = np.add.reduceat(np.where(y, 0.0, wb), starts, axis=1)
        neg_below = np.cumsum(neg, axis=1) - neg  # weight of negatives scored strictly lower
        num = (pos * (neg_below + 0.5 * neg)).sum(1)
        den = pos.sum(1) * neg.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b:b + block] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def auroc(y: object, score: object) -> float | np.ndarray:
    """Area under the ROC curve, as the Mann-Whitney statistic with ties counting one half.

    AUROC = P(score of a random positive > score of a random negative)
    + 0.5 * P(the two are equal), computed from ranks in O(n log n).

    Parameters
    ----------
    y : array-like of shape (n,)
        0/1 labels holding both classes.
    score : array-like of shape (n,) or (k, n)
        Scores, higher meaning "more likely 1"; no NaN. A 2-D array holds k scorers.

    Returns
    -------
    float, or ndarray of shape (k,) for a 2-D ``score``
        1.0 when every positive outscores every negative, 0.0 for the reverse, 0.5 for a
        constant score.

    Raises
    ------
    ValueError
        If y holds a single class, the shapes differ, or a score is NaN.

    Examples
    --------
    >>> auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> auroc([0, 1], [[0.0, 1.0], [1.0, 0.0]])
    array([1., 0.])
    """
    y = _check_labels(y)
    _check_two_classes(y)
    s = _check_score(score, y.size)
    ones = np.ones((1, y.size))
    if s.ndim == 1:
        return float(auroc_weighted(y, s, ones)[0])
    return np.array([auroc_weighted(y, row, ones)[0] for row in s])


def folded_auroc(a: float | np.ndarray) -> float | np.ndarray:
    """Predictive strength regardless of direction: ``|a - 0.5| + 0.5``, in [0.5, 1].

    Examples
    --------
    >>> folded_auroc(0.2)
    0.8
    """
    return np.abs(np.asarray(a) - 0.5) + 0.5 if np.ndim(a) else abs(float(a) - 0.5) + 0.5


def strength_key(folded: float) -> float:
    """A folded AUROC as a sort key in which equal strengths compare equal.

    Folding does not keep a tie exact: AUROCs 8/380 and 372/380 fold to values one bit
    apart (the paper sweep's val loss and val accuracy at W = 300), and a plain sort or
    ``>=`` then ranks one above the other. An AUROC is a ratio of pair counts, so two that
    agree to 12 decimals are the same ratio.

    >>> strength_key(folded_auroc(8 / 380)) == strength_key(folded_auroc(372 / 380))
    True
    """
    return round(float(folded), 12)


# ----------------------------------------------------------------------------- bootstrap

def resample_counts(y: object, *, rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    """Draw counts of ``n_resamples`` bootstrap resamples of the runs, each holding both classes.

    The draw is, exactly: ``idx = rng.integers(0, n, size=(n_resamples, n))``; then, while some
    rows hold a single class, those k rows (in row order) are replaced by
    ``rng.integers(0, n, size=(k, n))``. Redrawing (rather than dropping) keeps exactly
    ``n_resamples`` resamples on which AUROC is defined; it conditions the bootstrap on both
    classes being present, which only matters when a class has very few runs.

    Parameters
    ----------
    y : array-like of shape (n,)
        0/1 labels holding both classes.
    rng : numpy.random.Generator
    n_resamples : int

    Returns
    -------
    ndarray of shape (n_resamples, n)
        ``counts[b, i]`` = how many times run i is in resample b; rows sum to n.

    Examples
    --------
    >>> counts = resample_counts([0, 1, 0, 1], rng=np.random.default_rng(0), n_resamples=3)
    >>> counts.shape, counts.sum(1).tolist()
    ((3, 4), [4, 4, 4])
    """
    y = _check_labels(y)
    _check_two_classes(y)
    _check_resampling(rng, n_resamples)
    n = y.size
    idx = rng.integers(0, n, size=(n_resamples, n))
    while True:
        hits = y[idx]
        bad = np.flatnonzero(hits.all(1) | ~hits.any(1))
        if bad.size == 0:
            break
        idx[bad] = rng.integers(0, n, size=(bad.size, n))
    counts = np.empty((n_resamples, n), dtype=np.int64)
    block = max(1, _BLOCK_CELLS // n)  # bincount into a cache-sized block is ~3x faster
    for b in range(0, n_resamples, block):
        rows = idx[b:b + block]
        offsets = (np.arange(rows.shape[0]) * n)[:, None]
        counts[b:b + block] = np.bincount((rows + offsets).ravel(),
                                          minlength=rows.size).reshape(rows.shape)
    return counts


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    alpha = 1.0 - level
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])  # linear interpolation
    return float(lo), float(hi)


def bootstrap_ci(y: object, score: object, *, rng: np.random.Generator,
                 n_resamples: int = 2000, level: float = 0.95) -> BootstrapCI:
    """AUROC with a percentile bootstrap confidence interval over runs.

    Parameters
    ----------
    y : array-like of shape (n,)
        0/1 labels holding both classes.
    score : array-like of shape (n,)
        Scores, higher meaning "more likely 1"; no NaN. Held fixed: the bootstrap resamples
        runs, it does not refit whatever produced the scores.
    rng : numpy.random.Generator
        Source of the resamples, drawn as in :func:`resample_counts` (resamples with a single
        class are redrawn, so exactly ``n_resamples`` are used).
    n_resamples : int, default=2000
    level : float, default=0.95
        Coverage; the interval is the (1 - level)/2 and (1 + level)/2 quantiles of the
        resampled AUROCs (``numpy.quantile``'s linear interpolation).

    Returns
    -------
    BootstrapCI
        ``estimate`` (AUROC on the full data), ``lo``, ``hi``.

    Examples
    --------
    >>> y = [0, 0, 0, 1, 1, 1]
    >>> ci = bootstrap_ci(y, [0.1, 0.3, 0.5, 0.4, 0.8, 0.9], rng=np.random.default_rng(0))
    >>> round(ci.estimate, 3), ci.lo <= ci.estimate <= ci.hi
    (0.889, True)
    """
    _check_bootstrap_args(rng, n_resamples, level)
    estimate = auroc(y, score)  # validates y and score
    boot = auroc_weighted(y, score, resample_counts(y, rng=rng, n_resamples=n_resamples))
    # A float: auroc_weighted has refused a 2-D score, for which auroc gives an array.
    return BootstrapCI(float(estimate), *_interval(boot, level))


def paired_bootstrap(y: object, score_a: object, score_b: object, *, rng: np.random.Generator,
                     n_resamples: int = 2000, level: float = 0.95) -> PairedBootstrap:
    """Difference AUROC(a) - AUROC(b) of two scorers of the same runs, by a paired bootstrap.

    Both AUROCs of a resample are computed on the same resampled runs (drawn as in
    :func:`resample_counts`), so the run-to-run variation they share cancels.

    Parameters
    ----------
    y : array-like of shape (n,)
        0/1 labels holding both classes.
    score_a, score_b : array-like of shape (n,)
        Two scorers of the same runs; no NaN.
    rng : numpy.random.Generator
    n_resamples : int, default=2000
    level : float, default=0.95
        Coverage of the percentile interval of the resampled differences.

    Returns
    -------
    PairedBootstrap
        ``diff`` on the full data; ``lo``, ``hi``; and the one-sided p-value
        ``p_one_sided = #{resamples b : diff*_b <= 0} / n_resamples``, the bootstrap estimate
        of P(diff* <= 0) for the alternative "a beats b". Its resolution is
        1 / n_resamples, so 0.0 means "below 1 / n_resamples". Ties count against a (a
        scorer against itself gives diff 0 and p = 1); ``ties`` is their share, so
        ``p_one_sided - ties / 2`` is the mid-p, which counts them half.

    Examples
    --------
    >>> y = [0, 0, 0, 1, 1, 1]
    >>> a, b = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0.1, 0.8, 0.3, 0.7, 0.2, 0.9]
    >>> res = paired_bootstrap(y, a, b, rng=np.random.default_rng(0))
    >>> round(res.diff, 3), res.p_one_sided < 0.5
    (0.333, True)
    """
    _check_bootstrap_args(rng, n_resamples, level)
    diff = auroc(y, score_a) - auroc(y, score_b)
    counts = resample_counts(y, rng=rng, n_resamples=n_resamples)
    boot = auroc_weighted(y, score_a, counts) - auroc_weighted(y, score_b, counts)
    return PairedBootstrap(float(diff), *_interval(boot, level), float(np.mean(boot <= 0)),
                           float(np.mean(boot == 0)))
