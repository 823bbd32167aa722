"""AUROC and bootstrap against independent references: scikit-learn, plain loops, scipy."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from grokcast.stats import (
    auroc,
    auroc_weighted,
    bootstrap_ci,
    folded_auroc,
    format_p,
    format_percent,
    paired_bootstrap,
    resample_counts,
)


def pairwise_auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney by brute force over all (positive, negative) pairs."""
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def draw_like_documented(y: np.ndarray, rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    """The resampling procedure as resample_counts documents it, spelled as a plain loop."""
    n = len(y)
    idx = rng.integers(0, n, size=(n_resamples, n))
    while True:
        bad = [b for b in range(n_resamples) if len(set(y[idx[b]].tolist())) < 2]
        if not bad:
            return idx
        idx[bad] = rng.integers(0, n, size=(len(bad), n))


def loop_bootstrap(y, scores, seed, n_resamples, level):
    """Percentile bootstrap of AUROC (one scorer) or of a difference (two), one resample at a time."""
    idx = draw_like_documented(y, np.random.default_rng(seed), n_resamples)
    values = []
    for rows in idx:
        aucs = [pairwise_auroc(y[rows], s[rows]) for s in scores]
        values.append(aucs[0] if len(aucs) == 1 else aucs[0] - aucs[1])
    values = np.array(values)
    q = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return values, q


def tied_data(seed: int, n: int | None = None):
    rng = np.random.default_rng(seed)
    n = n or int(rng.integers(2, 60))
    y = rng.integers(0, 2, n)
    y[rng.choice(n, 2, replace=False)] = [0, 1]  # both classes present
    # Few distinct values, so most scores tie; sometimes continuous.
    s = rng.integers(0, int(rng.integers(1, 5)), n).astype(float) if seed % 4 else rng.normal(size=n)
    return y, s


# ----------------------------------------------------------------------------- auroc

@pytest.mark.parametrize("chunk", range(4))
def test_auroc_matches_sklearn_with_ties(chunk):
    for seed in range(chunk * 100, chunk * 100 + 100):
        y, s = tied_data(seed)
        assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12), seed


def test_auroc_closed_cases_and_batched_form():
    y = np.array([0, 0, 0, 1, 1])
    perfect = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert auroc(y, perfect) == 1.0
    assert auroc(y, -perfect) == 0.0
    assert auroc(y, np.full(5, 3.0)) == 0.5
    assert auroc(y.astype(bool), perfect) == 1.0
    np.testing.assert_array_equal(auroc(y, np.stack([perfect, -perfect, np.zeros(5)])), [1, 0, 0.5])


def test_weighted_auroc_equals_auroc_of_repeated_runs():
    rng = np.random.default_rng(3)
    for _ in range(25):
        y, s = tied_data(int(rng.integers(1000)), n=20)
        counts = rng.integers(0, 4, size=(6, 20))
        got = auroc_weighted(y, s, counts)
        for c, value in zip(counts, got):
            yy, ss = np.repeat(y, c), np.repeat(s, c)
            if len(set(yy.tolist())) < 2:
                assert np.isnan(value)
            else:
                assert value == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)


@pytest.mark.parametrize("y, score, match", [
    ([1, 1, 1], [0.1, 0.2, 0.3], "only one class"),
    ([0, 1, 2], [0.1, 0.2, 0.3], "0/1 labels"),
    # Were numpy's TypeError from sorting the labels.
    (np.array([0, 1, None], dtype=object), [0.1, 0.2, 0.3], r"0/1 labels, got values \[0, 1, None\]"),
    (pd.array([True, None, False], dtype="boolean"), [0.1, 0.2, 0.3], "0/1 labels"),
    ([0, 1], [0.1, np.nan], "NaN"),
    ([0, 1, 1], [0.1, 0.2], "shape"),
    # Were scored: the imaginary part dropped with a ComplexWarning, the text parsed.
    ([0, 1, 0, 1], [0.1, 0.2 + 5j, 0.3, 0.4], "score must hold real numbers, got dtype complex128"),
    ([0, 1, 0, 1], ["0.1", "0.2", "0.3", "0.4"], "score must hold real numbers, got dtype <U3"),
])
def test_auroc_errors_say_what_was_wrong(y, score, match):
    with pytest.raises(ValueError, match=match):
        auroc(y, score)


def test_auroc_reads_an_object_array_of_real_numbers():
    from fractions import Fraction

    y = [0, 1, 0, 1]
    for score in (np.array([0.1, 0.2, 0.3, 1], dtype=object),
                  [Fraction(1, 10), Fraction(2, 10), Fraction(3, 10), Fraction(4, 10)]):
        assert auroc(y, score) == roc_auc_score(y, np.asarray(score, dtype=float)) == 0.75
    for bad, match in (([0.1, None, 0.3, 0.4], "got a NoneType: None"),
                       ([10**400, 1, 2, 3], "holds a number too large for a float")):
        with pytest.raises(ValueError, match=match):
            auroc(y, np.array(bad, dtype=object))


def test_folded_auroc():
    assert folded_auroc(0.2) == pytest.approx(0.8)
    assert folded_auroc(0.7) == pytest.approx(0.7)
    np.testing.assert_allclose(folded_auroc(np.array([0.0, 0.5, 1.0])), [1.0, 0.5, 1.0])


# ----------------------------------------------------------------------------- bootstrap

@pytest.mark.parametrize("rare", [1, 0])
def test_resample_counts_redraws_single_class_resamples(rare):
    # One run of the rare class: a resample misses it with probability (29/30)^30 ~ 0.36.
    # Both ways round: a redraw of only the all-negative resamples left all-positive ones in,
    # whose AUROC is NaN, and with it the interval's ends (mutation testing).
    y = np.full(30, 1 - rare)
    y[7] = rare
    counts = resample_counts(y, rng=np.random.default_rng(0), n_resamples=500)
    assert counts.shape == (500, 30)
    assert (counts.sum(1) == 30).all()
    assert (counts[:, 7] > 0).all() and (counts[:, y != rare].sum(1) > 0).all()
    # The loop spelling of the documented draw gives the same resamples, and so finite ends.
    idx = draw_like_documented(y, np.random.default_rng(0), 500)
    np.testing.assert_array_equal(counts, [np.bincount(row, minlength=30) for row in idx])
    s = np.arange(30.0)
    ci = bootstrap_ci(y, s, rng=np.random.default_rng(0), n_resamples=500)
    assert np.isfinite([ci.lo, ci.hi]).all()


@pytest.mark.parametrize("seed, n, n_pos", [(0, 48, 10), (1, 12, 1), (2, 30, 15)])
def test_bootstrap_ci_equals_plain_loop(seed, n, n_pos):
    rng = np.random.default_rng(seed + 100)
    y = np.zeros(n, dtype=int)
    y[:n_pos] = 1
    s = np.round(y * 0.8 + rng.normal(size=n), 1)  # ties included
    ci = bootstrap_ci(y, s, rng=np.random.default_rng(seed), n_resamples=400, level=0.9)
    _, (lo, hi) = loop_bootstrap(y, [s], seed, 400, 0.9)
    assert ci.estimate == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert (ci.lo, ci.hi) == pytest.approx((lo, hi), abs=1e-12)


def test_bootstrap_ci_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 24)
    s = y + rng.normal(scale=1.2, size=48)
    ours = bootstrap_ci(y, s, rng=np.random.default_rng(0), n_resamples=2000)
    ref = sps.bootstrap((y, s), pairwise_auroc, paired=True, vectorized=False,
                        n_resamples=2000, method="percentile", rng=np.random.default_rng(1))
    # Different random streams: the endpoints agree up to Monte Carlo error.
    assert ours.lo == pytest.approx(ref.confidence_interval.low, abs=0.03)
    assert ours.hi == pytest.approx(ref.confidence_interval.high, abs=0.03)


def test_bootstrap_ci_reproducible_and_ordered():
    y, s = tied_data(8, n=40)  # continuous scores
    a = bootstrap_ci(y, s, rng=np.random.default_rng(11))
    b = bootstrap_ci(y, s, rng=np.random.default_rng(11))
    c = bootstrap_ci(y, s, rng=np.random.default_rng(12))
    assert a == b and a != c
    assert a.lo <= a.estimate <= a.hi
    wide = bootstrap_ci(y, s, rng=np.random.default_rng(11), level=0.99)
    assert wide.lo <= a.lo and wide.hi >= a.hi


def test_bootstrap_argument_errors():
    y, s = [0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]
    with pytest.raises(TypeError, match="Generator"):
        bootstrap_ci(y, s, rng=0)
    with pytest.raises(ValueError, match="n_resamples=0"):
        bootstrap_ci(y, s, rng=np.random.default_rng(0), n_resamples=0)
    with pytest.raises(ValueError, match="level=1.5"):
        paired_bootstrap(y, s, s, rng=np.random.default_rng(0), level=1.5)
    with pytest.raises(ValueError, match="only one class"):
        bootstrap_ci([1, 1, 1], [0.1, 0.2, 0.3], rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        resample_counts(y, rng=None, n_resamples=3)
    with pytest.raises(ValueError, match="n_resamples=-1"):
        resample_counts(y, rng=np.random.default_rng(0), n_resamples=-1)


@pytest.mark.parametrize("bad, match", [(-1, "got -1.0 at \\[1, 2\\]"), (np.nan, "got nan"),
                                        (np.inf, "got inf")])
def test_weighted_auroc_refuses_weights_that_are_not_counts(bad, match):
    """A negative weight gave an AUROC of 1.25; a NaN one a NaN AUROC."""
    w = np.ones((2, 4))
    w[1, 2] = bad
    with pytest.raises(ValueError, match=match):
        auroc_weighted([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], w)
    with pytest.raises(TypeError, match="real numbers"):
        auroc_weighted([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [["a"] * 4])


def test_arrays_of_the_wrong_shape_are_named_with_the_shape_expected():
    y, s = [0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]
    with pytest.raises(ValueError, match=r"^y must have shape \(n,\) with n >= 1, got shape \(0,\)$"):
        auroc([], [])
    with pytest.raises(ValueError, match=r"^y must have shape \(n,\) with n >= 1, got shape \(1, 4\)$"):
        auroc([y], s)
    # auroc takes k scores of the n runs at once; the weighted one, one score per run only.
    with pytest.raises(ValueError, match=r"^score must have shape \(4,\), got \(2, 4\)$"):
        auroc_weighted(y, [s, s], np.ones((3, 4)))
    for w in (np.ones(4), np.ones((3, 5))):
        with pytest.raises(ValueError, match=rf"^weights must have shape \(n_resamples, 4\), got "
                                             rf"{re.escape(str(w.shape))}$"):
            auroc_weighted(y, s, w)


def test_paired_bootstrap_of_a_scorer_against_itself():
    y, s = tied_data(9, n=48)
    res = paired_bootstrap(y, s, s, rng=np.random.default_rng(0))
    assert res.diff == 0 and res.lo == 0 and res.hi == 0
    assert res.p_one_sided == 1 and res.ties == 1  # every resample ties


def test_paired_bootstrap_detects_a_clearly_better_scorer():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 24)
    good = y + rng.normal(scale=0.5, size=48)
    bad = y + rng.normal(scale=3.0, size=48)
    res = paired_bootstrap(y, good, bad, rng=np.random.default_rng(0))
    assert res.diff == pytest.approx(roc_auc_score(y, good) - roc_auc_score(y, bad), abs=1e-12)
    assert res.diff > 0 and res.lo > 0 and res.p_one_sided < 0.05


def test_paired_bootstrap_equals_plain_loop_and_is_antisymmetric():
    rng = np.random.default_rng(2)
    y = (rng.random(30) < 0.3).astype(int)
    y[:2] = [0, 1]
    a, b = np.round(y + rng.normal(size=30), 1), np.round(y + rng.normal(size=30), 1)
    ab = paired_bootstrap(y, a, b, rng=np.random.default_rng(4), n_resamples=300)
    ba = paired_bootstrap(y, b, a, rng=np.random.default_rng(4), n_resamples=300)
    diffs, (lo, hi) = loop_bootstrap(y, [a, b], 4, 300, 0.95)
    assert (ab.lo, ab.hi) == pytest.approx((lo, hi), abs=1e-12)
    assert ab.p_one_sided == pytest.approx(np.mean(diffs <= 0))
    assert ba.diff == -ab.diff
    # P(d <= 0) + P(d >= 0) = 1 + P(d == 0) on the same resamples.
    assert ab.p_one_sided + ba.p_one_sided == pytest.approx(1 + np.mean(np.abs(diffs) < 1e-12))
    assert ab.ties == ba.ties == pytest.approx(np.mean(np.abs(diffs) < 1e-12)) and ab.ties > 0


def test_format_p_rounds_counts_over_resamples_half_up():
    """A bootstrap p-value is k / n: printed to 3 decimals as written (half up, not as the
    nearest binary float rounds), "< 0.001" strictly below."""
    from decimal import ROUND_HALF_UP, Decimal
    from fractions import Fraction

    for k in range(0, 2001):
        p = k / 2000
        exact = Fraction(k, 2000)
        want = ("< 0.001" if exact < Fraction(1, 1000) else
                str((Decimal(exact.numerator) / Decimal(exact.denominator))
                    .quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)))
        assert format_p(p) == want, k
    assert format_p(np.nextafter(0.001, 0)) == "< 0.001"


@pytest.mark.parametrize("fraction, printed", [
    (0.999, "99.9%"), (0.975, "97.5%"), (0.9999, "99.99%"), (1 - 0.999, "0.1%"),
    (1 - 0.975, "2.5%"), (1 - 0.95, "5%"), (0.5, "50%"), (1.0, "100%"), (0.0, "0%"),
])
def test_format_percent_prints_the_digits_a_level_needs(fraction, printed):
    """``:.0%`` printed a 0.999 CI as "100%" and 0.975 as "98%" (and 1 - 0.999 as "0%")."""
    assert format_percent(fraction) == printed


@pytest.mark.parametrize("fraction", [0.95, 0.9, 0.99, 0.8, 1 - 0.95, 1 - 0.9, 1 - 0.99, 1.0])
def test_format_percent_keeps_whole_percents_as_they_were_printed(fraction):
    # The rendered paper and tables of the usual levels must not change by a byte.
    assert format_percent(fraction) == f"{fraction:.0%}"
