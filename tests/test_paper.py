"""Paper: number formats, the sentences chosen from the numbers (every branch), and the PDF.

The PDF checks read the rendered text back with pypdf and look for numbers of analysis.json
formatted independently here (3 decimals, U+2212 for minus, ``< 0.001`` for tiny p-values).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader
from sklearn.metrics import roc_auc_score
from test_figures import write_synthetic_results

from grokcast.analysis import feature_difference
from grokcast.paper import claims as CL
from grokcast.paper import context as CTX
from grokcast.paper import formatting as FMT
from grokcast.paper import render as R
from grokcast.paper import sentences as S

M = "\u2212"


def _plain_fn(fn):
    return lambda *a, **k: plain(fn(*a, **k))


# The sentence functions return Typst markup; the tests read them as plain text.
headline = _plain_fn(S.headline_sentence)
window_accuracy = _plain_fn(S.window_accuracy_sentence)
trend = _plain_fn(S.trend_sentence)
order = _plain_fn(S.order_sentence)
robustness = _plain_fn(S.robustness_sentence)
reference_comparison = _plain_fn(CL.reference_comparison_sentence)
small_sample = _plain_fn(S.small_sample_sentence)
calibration = _plain_fn(S.calibration_sentence)
grid = _plain_fn(S.grid_sentence)
dynamics = _plain_fn(S.dynamics_sentence)
best_single = _plain_fn(S.best_single_sentence)
reliability = _plain_fn(S.reliability_sentence)
observed = _plain_fn(S.observed_label_sentence)


def canon(text: str) -> str:
    """Text without whitespace or ASCII hyphens, so line breaks and hyphenation do not matter."""
    return re.sub(r"[\s\-\u00ad]", "", text)


def context_source(pdf: Path) -> str:
    """The rendered paper's text as its source (``context.json``) holds it, each string as
    plain text, canonical: in the PDF's text a figure can fall inside a sentence."""
    def strings(x: object) -> list[str]:
        if isinstance(x, str):
            return [plain(x)]
        items = x.values() if isinstance(x, dict) else x if isinstance(x, list) else []
        return [s for item in items for s in strings(item)]

    context = json.loads((pdf.parent / "paper-src" / "context.json").read_text(encoding="utf-8"))
    return canon(" ".join(strings(context)))


def plain(markup: str) -> str:
    """Typst markup from the sentence functions, with escapes undone and raw ticks dropped."""
    return re.sub(r"\\(.)", r"\1", markup).replace("`", "")


def f3(x: float) -> str:
    return f"{x:.3f}".replace("-", M)


def s3(x: float) -> str:
    return f"{x:+.3f}".replace("-", M)


def est(entry: dict, key: str = "auroc", signed: bool = False) -> str:
    f = s3 if signed else f3
    return f"{f(entry[key])} [{f(entry['ci'][0])}, {f(entry['ci'][1])}]"


def pv(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def diff(d: float, lo: float, hi: float, p: float) -> dict:
    return {"diff": d, "ci": [lo, hi], "p_one_sided": p}


# ---------------------------------------------------------------------------- formatting

def test_number_formats() -> None:
    assert FMT.fmt(0.9174) == "0.917"
    assert FMT.fmt(-0.12) == f"{M}0.120"
    assert FMT.fmt(None) == FMT.fmt(float("nan")) == "n/a"
    assert FMT.fmt_signed(0.137) == "+0.137"
    assert FMT.fmt_signed(-0.005) == f"{M}0.005"
    assert FMT.fmt_ci([0.031, 0.271], signed=True) == "[+0.031, +0.271]"
    assert FMT.fmt_estimate({"auroc": 0.917, "ci": [0.812, 1.0]}) == "0.917 [0.812, 1.000]"
    assert FMT.fmt_p(0.0004) == "< 0.001" and FMT.fmt_p(0.002) == "0.002"
    assert FMT.p_clause({"p_one_sided": 0.0}) == "p₁ < 0.001"
    assert FMT.p_clause({"p_one_sided": 0.035, "n_resamples": 2000}) == "p₁ = 0.035"
    # No resample on the wrong side of 0 out of 50: p < 1/50, not < 0.001.
    assert FMT.p_clause({"p_one_sided": 0.0, "n_resamples": 50}) == "p₁ < 0.02"
    assert FMT.p_clause({"p_one_sided": 0.0, "n_resamples": 2000}) == "p₁ < 0.001"
    assert FMT.fmt_pct(0.1234) == "12.3%"
    assert FMT.fmt_duration(42.2) == "42 s"
    assert FMT.fmt_duration(1234.5) == "20.6 min"
    assert FMT.fmt_duration(3 * 3600) == "3.0 h"
    assert FMT.fmt_duration(None) == "not recorded"


def test_esc_makes_markup_literal() -> None:
    assert FMT.esc("[0.1, 0.2] < 0.001 a_b //x -1") == \
        "\\[0.1, 0.2\\] \\< 0.001 a\\_b \\/\\/x \\-1"
    assert FMT.code("end_val_acc") == "`end_val_acc`"
    with pytest.raises(ValueError, match="backticks"):
        FMT.code("a`b")


# ---------------------------------------------------------------------------- verdicts

@pytest.mark.parametrize("d, expected", [
    (diff(0.137, 0.031, 0.271, 0.002), S.BETTER),
    (diff(0.114, -0.005, 0.243, 0.035), S.WEAK),
    (diff(0.074, -0.120, 0.264, 0.235), S.AHEAD),
    (diff(-0.02, -0.15, 0.10, 0.61), S.NOT_BETTER),
    (diff(-0.30, -0.45, -0.10, 0.999), S.WORSE),
    (diff(None, None, None, None), S.UNDEFINED),
    (None, S.UNDEFINED),
])
def test_verdict(d: dict | None, expected: str) -> None:
    assert S.verdict(d, 0.95) == expected


@pytest.mark.parametrize("level", [0.95, 0.9, 0.99, 0.8])
def test_a_p_value_equal_to_the_level_is_not_significant_at_any_level(level: float) -> None:
    # The convention p < α, with α = 1 − level worked out exactly (1 − 0.95 in floats is
    # 0.050000000000000044, so p = 0.05, 100 of 2,000 resamples, was called significant at
    # the 5% level, while p = 0.1 was not at the 10% level).
    from fractions import Fraction

    a = float(1 - Fraction(str(level)))
    assert S.verdict(diff(0.1, -0.01, 0.2, a), level) == S.AHEAD
    assert S.verdict(diff(0.1, -0.01, 0.2, a - 0.0005), level) == S.WEAK
    text = plain(S.comparison_sentence(diff(0.1, -0.01, 0.2, a), "val-loss", level))
    assert "one-sided test" not in text and "but not significantly" in text


def test_a_level_is_printed_with_the_digits_it_needs(tmp_path: Path, monkeypatch) -> None:
    """``:.0%`` printed a 0.999 CI as "100% CI", its 0.1% significance level as "0%" and 0.975
    as "98%"; the sentences, the claims and the paper's own wording print 99.9%, 0.1%, 97.5%."""
    text = plain(S.comparison_sentence(diff(0.031, -0.004, 0.07, 0.0004), "val-loss", 0.999))
    assert "the 99.9% CI of the difference" in text and "at the 0.1% level" in text
    assert "the 97.5% CI of the difference" in plain(
        S.comparison_sentence(diff(0.031, -0.004, 0.07, 0.2), "val-loss", 0.975))

    class Result:
        pvalue = 0.0005

    monkeypatch.setattr(CL, "fisher_exact", lambda table: Result())
    a = {"settings": {"thresholds": [0.9]}, "runs": [{}] * 12, "thresholds": {"0.9": {"n_pos": 2}}}
    (_, text, _), = CL._count_claims(a, {"n_runs": 12, "grok_counts": {"0.9": 5}}, 0.999)
    assert "significant at the 0.1% level" in plain(text)
    facts = CTX._Facts.read(write_synthetic_results(tmp_path))
    assert dataclasses.replace(facts, level=0.975).lvl == "97.5%"


def test_a_count_claim_at_fishers_p_equal_to_the_level_is_not_significant(monkeypatch) -> None:
    class Result:
        pvalue = 0.05  # as scipy would return it for a table at exactly the level

    monkeypatch.setattr(CL, "fisher_exact", lambda table: Result())
    a = {"settings": {"thresholds": [0.9]}, "runs": [{}] * 12, "thresholds": {"0.9": {"n_pos": 2}}}
    (_, text, status), = CL._count_claims(a, {"n_runs": 12, "grok_counts": {"0.9": 5}}, 0.95)
    assert status == CL.UNRESOLVED and "p = 0.050: not significant at the 5% level" in plain(text)


@pytest.mark.parametrize("level, p, printed", [
    (0.95, 99 / 2000, "0.0495"),  # 3 decimals, rounded half up: "0.050"
    (0.95, 0.04996, "0.04996"),   # 4 decimals: "0.0500"
    (0.9, 199 / 2000, "0.0995"),
])
def test_a_p_value_below_the_level_is_not_printed_as_the_level(level, p, printed) -> None:
    """Found in review: p₁ = 99/2000 was printed "0.050" beside "only a one-sided test at the
    5% level would call it significant", and Fisher's p of a count likewise beside
    "significant at the 5% level": the printed value read as the opposite of the verdict."""
    text = plain(S.comparison_sentence(diff(0.031, -0.004, 0.07, p), "val-loss", level))
    assert f"p₁ = {printed}); only a one-sided test at the {1 - level:.0%} level" in text
    cell = {"multi": {"auroc": 0.971, "ci": [0.93, 1.0]}, "val_loss": {"auroc": 0.94, "ci": [0.88, 0.99]},
            "diff_val_loss": diff(0.031, -0.004, 0.07, p)}
    assert f"includes zero (p₁ = {printed})." in headline(cell, 200, level)
    # The same value where no verdict compares it with the level: the tables' 3 decimals.
    assert FMT.fmt_p(p) == f"{1 - level:.3f}"


def test_a_count_claim_at_fishers_p_just_below_the_level_prints_it_below(monkeypatch) -> None:
    class Result:
        pvalue = 0.04967  # a 2 × 2 table's p just below 0.05

    monkeypatch.setattr(CL, "fisher_exact", lambda table: Result())
    a = {"settings": {"thresholds": [0.9]}, "runs": [{}] * 12, "thresholds": {"0.9": {"n_pos": 2}}}
    (_, text, status), = CL._count_claims(a, {"n_runs": 12, "grok_counts": {"0.9": 5}}, 0.95)
    assert status == CL.CONTRADICTED and "p = 0.0497: significant at the 5% level" in plain(text)
    # Closer below the level than six decimals show (found in review: "0.050000"), and at it.
    Result.pvalue = 0.05 - 3e-7
    (_, text, status), = CL._count_claims(a, {"n_runs": 12, "grok_counts": {"0.9": 5}}, 0.95)
    assert status == CL.CONTRADICTED and "p < 0.05: significant at the 5% level" in plain(text)
    Result.pvalue = 0.05
    (_, text, status), = CL._count_claims(a, {"n_runs": 12, "grok_counts": {"0.9": 5}}, 0.95)
    assert status == CL.UNRESOLVED and "p = 0.050: not significant at the 5% level" in plain(text)


@pytest.mark.parametrize("d, ci_text", [
    (diff(0.06, 0.0004, 0.12, 0.01), "95% CI [+0.0004, +0.120]"),
    (diff(-0.06, -0.12, -0.00038, 0.99), f"95% CI [{M}0.120, {M}0.0004]"),
])
def test_a_ci_end_that_decides_significance_is_not_printed_as_zero(d, ci_text) -> None:
    """A CI end of 0.0004 (percentile ends interpolate between resamples, so they can fall
    this close to zero) printed "+0.000" beside "significantly", a CI that seemed to touch
    zero."""
    text = plain(S.comparison_sentence(d, "val-loss"))
    assert "significantly" in text and ci_text in text
    assert FMT.fmt_signed(0.00004) == "+0.00004" and FMT.fmt_signed(-0.0000001) == f"{M}0.000000"
    # Zero, and zero but for float error, stay three decimals with no sign of their own.
    assert FMT.fmt_signed(0.0) == FMT.fmt_signed(-0.0) == FMT.fmt_signed(-1e-17) == "+0.000"


def test_comparison_sentence_claims_significance_only_when_ci_excludes_zero() -> None:
    yes = plain(S.comparison_sentence(diff(0.137, 0.031, 0.271, 0.002), "val-loss"))
    assert yes == ("significantly outperforms the val-loss baseline "
                   "(Δ = +0.137, 95% CI [+0.031, +0.271], p₁ = 0.002)")
    for d in (diff(0.114, -0.005, 0.243, 0.035), diff(0.074, -0.120, 0.264, 0.235),
              diff(-0.02, -0.15, 0.10, 0.61)):
        no = S.comparison_sentence(d, "val-loss")
        assert "significantly outperforms" not in no
        assert "includes zero" in no or no.startswith("does not outperform")
    assert "one-sided test" in S.comparison_sentence(diff(0.114, -0.005, 0.243, 0.035), "x")
    assert S.comparison_sentence(diff(-0.3, -0.45, -0.1, 0.999), "x").startswith(
        "is significantly worse")
    assert "single class" in S.comparison_sentence(None, "x")


def _cell(d: dict, multi: float = 0.917) -> dict:
    return {"multi": {"auroc": multi, "ci": [0.812, 1.0]},
            "val_loss": {"auroc": 0.781, "ci": [0.650, 0.897]}, "diff_val_loss": d}


def test_headline_sentence_branches() -> None:
    sig = headline(_cell(diff(0.137, 0.031, 0.271, 0.002)), 200)
    assert "significantly above" in sig and "0.917" in sig and "0.781" in sig
    ns = headline(_cell(diff(0.1, -0.01, 0.2, 0.04)), 200)
    assert "significantly" not in ns and "includes zero" in ns
    below = headline(_cell(diff(-0.1, -0.3, 0.1, 0.8), multi=0.7), 200)
    assert "does not exceed" in below
    # Significantly worse: the CI of the difference, not p₁ = P(Δ* ≤ 0) = 0.999, which tests
    # "better" and printed beside "below" would read as evidence for it.
    worse = headline(_cell(diff(-0.3, -0.45, -0.1, 0.999), multi=0.6), 200)
    assert "significantly below" in worse and "difference 95% CI [−0.450, −0.100]" in worse
    assert "p₁" not in worse
    none = headline({"multi": {"auroc": None, "ci": [None, None]}}, 200)
    assert "undefined" in none
    # Above the baseline by less than the printed digits: printed to the digit that shows it.
    near = headline(_cell(diff(0.00003, -0.01, 0.01, 0.3), multi=0.78103), 200)
    assert "AUROC of 0.78103" in near and "above the validation-loss baseline's 0.78100" in near
    # One grokking run: its held-out forecast is ranked last by construction (AUROC 0), and a
    # CI of the difference that excludes zero was called "significantly below" (found in
    # review); the Results section and the windows sentence said it too.
    lone = headline(_cell(diff(-1.0, -1.0, -1.0, 1.0), multi=0.0), 200, n_pos=1, n_neg=7)
    assert "significantly" not in lone and lone.endswith(
        "against the validation-loss baseline's 0.781; with a single grokking run, held out it "
        "leaves none of its class to learn from, so the forecaster's held-out AUROC says nothing "
        "about the model.")
    assert "significantly below" in headline(_cell(diff(-1.0, -1.0, -1.0, 1.0), multi=0.0), 200,
                                             n_pos=2, n_neg=6)
    entry = {"n_pos": 7, "n_neg": 1, "windows": {"200": _cell(diff(-1.0, -1.0, -1.0, 1.0), multi=0.0)}}
    assert S.baseline_windows_sentence(entry, [200]) == (
        "The forecaster is not compared with the val-loss baseline: with a single non-grokking "
        "run, held out it leaves none of its class to learn from, so the forecaster's held-out "
        "AUROC says nothing about the model.")
    entry["n_neg"] = 2
    assert "significantly worse" in S.baseline_windows_sentence(entry, [200])


def test_window_accuracy_sentence_branches() -> None:
    before = window_accuracy(0.123, 200, "0.9", 23)
    assert "12.3%" in before and "not yet observed" in before and "1/23" in before
    assert "this is 2.8 times chance" in before and "already above chance" in before
    at_chance = window_accuracy(0.05, 200, "0.9", 23)  # 1.15 times chance: nothing to flag
    assert "not yet observed." in at_chance and "above chance" not in at_chance
    after = window_accuracy(0.95, 200, "0.9", 23)
    assert "95.0%" in after and "partly observed" in after and "not yet observed" not in after
    exactly = window_accuracy(float(np.float32(333) / np.float32(370)), 200, "0.9", 23)
    assert "partly observed" in exactly  # 333/370 = 0.9 logged in float32 reaches 0.9


def _runs(fit: list[int], hit: list[int]) -> list[dict]:
    return [{"step_train_acc_0.99": f, "step_val_acc": {"0.9": h}} for f, h in zip(fit, hit)]


def test_dynamics_sentence_branches() -> None:
    many = dynamics(_runs([80, 100, 123, 1_500_000, -1], [-1, 400, 500, 1_200_001, -1]), "0.9")
    # Both first steps are the log's, so both say so (the fitting steps did not; found in review).
    assert many.startswith("4 of 5 runs reach a train accuracy of 99% between steps 80 and "
                           "1,500,000 (median 112; steps as logged), and 1 never does.")
    assert "The 3 runs that grok first reach a validation accuracy of 0.9 between steps 400 and " \
           "1,200,001 (median 500; steps as logged)" in many
    one = dynamics(_runs([90, 95], [-1, 300]), "0.9")
    assert "The one run that groks first reaches a validation accuracy of 0.9 at step 300" in one
    none = dynamics(_runs([90, 95], [-1, -1]), "0.9")
    assert none == ("The runs reach a train accuracy of 99% between steps 90 and 95 (median 92; "
                    "steps as logged).")
    assert dynamics(_runs([90, -1], [-1, -1]), "0.9").startswith(
        "1 of 2 runs reaches a train accuracy of 99% at step 90 (as logged), and 1 never does.")
    assert dynamics(_runs([90, -1, -1], [-1, -1, -1]), "0.9").endswith("and 2 never do.")
    assert dynamics(_runs([90], [-1]), "0.9") == ("The run reaches a train accuracy of 99% at "
                                                  "step 90 (as logged).")
    assert dynamics([{"run_id": "old file", "max_val_acc": 0.5}], "0.9") == ""


def test_trend_sentence_branches() -> None:
    up = trend({100: 0.8, 200: 0.9, 500: 0.95})
    assert "does not decrease" in up and "0.800" in up and "0.950" in up
    bumpy = trend({100: 0.8, 200: 0.917, 300: 0.891})
    assert "not monotone" in bumpy and "maximum 0.917 at W = 200" in bumpy
    assert trend({100: None, 200: 0.9}) == ""


def test_trend_sentence_with_the_medians_over_run_orders() -> None:
    up = {100: 0.8, 200: 0.9, 500: 0.95}
    assert trend(up, {100: 0.97, 200: 0.99, 500: 0.98}) == (
        "With the runs in run_id order the multivariate AUROC does not decrease with the window: "
        "it goes from 0.800 at W = 100 to 0.950 at W = 500; its median over the random orders is "
        "not monotone in the window (0.970, 0.990, 0.980 at W = 100, 200 and 500).")
    assert "not the forecaster's" not in trend(up, {100: 0.97, 200: 0.99, 500: 0.98})  # no verdict
    assert trend(up, {100: 0.9, 200: None, 500: None}) == trend(up)  # one median: no trend


def test_trend_of_medians_equal_but_for_float_error_is_not_called_a_fall() -> None:
    # Medians over 20 orders average two AUROCs: (300/380 + 312/380) / 2 is one bit above
    # 306/380, the same ratio; exactly, the medians below rise and then stay level.
    from fractions import Fraction

    medians = {100: 0.79, 200: float(np.median([300 / 380, 312 / 380])), 300: 306 / 380}
    assert medians[200] != medians[300]  # the float error this test is about
    assert Fraction(300 + 312, 2 * 380) == Fraction(306, 380)
    text = trend({100: 0.8, 200: 0.9, 300: 0.95}, medians)
    assert "its median over the random orders does not decrease with the window" in text
    assert trend(medians).startswith("The multivariate AUROC does not decrease with the window")


def test_a_tie_with_the_val_loss_baseline_is_printed_to_three_decimals() -> None:
    # Equal AUROCs: no digit can show a difference, and six digits read as if one were there.
    tie = headline(_cell(diff(0.0, -0.02, 0.02, 0.55), multi=0.781), 200)
    assert "AUROC of 0.781 (" in tie and "the validation-loss baseline's 0.781." in tie
    assert FMT.fmt_apart(0.9789473684210527, 0.9789473684210526) == ("0.979", "0.979")
    assert FMT.fmt_apart(0.78103, 0.781) == ("0.78103", "0.78100")


def test_the_mid_p_is_rounded_half_up_as_the_p_values_are() -> None:
    # p = 31/2000 and ties = 20/2000: the mid-p is exactly 21/2000 = 0.0105, which rounds half
    # up to 0.011 as format_p rounds a p-value; the float difference 0.010499... gave 0.010.
    from decimal import ROUND_HALF_UP, Decimal
    from fractions import Fraction

    exact = Fraction(31, 2000) - Fraction(20, 2000) / 2
    expected = (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(
        Decimal("0.001"), rounding=ROUND_HALF_UP)
    d = {"diff": 0.01, "ci": [-0.01, 0.03], "p_one_sided": 31 / 2000, "ties": 20 / 2000,
         "n_resamples": 2000}
    text = plain(S.ties_sentence(d, "val-loss", 200))
    assert text.endswith(f"counting them half (the mid-p) gives {expected}.") and str(expected) == "0.011"


def test_ties_sentence_gives_the_share_of_tied_resamples_and_the_mid_p() -> None:
    ties = _plain_fn(S.ties_sentence)
    d = {"diff": 0.005, "ci": [-0.016, 0.04], "p_one_sided": 0.2055, "ties": 0.173,
         "n_resamples": 2000}
    assert ties(d, "val-loss", 300) == (
        "In 17.3% of the bootstrap resamples at W = 300 the forecaster and the val-loss baseline "
        "get equal AUROCs (Δ* = 0); p₁ counts these ties against the forecaster, and counting "
        "them half (the mid-p) gives 0.119.")  # 0.2055 - 0.173 / 2 = 0.119
    assert ties({**d, "ties": 0.005}, "val-loss", 300) == ""  # fewer than 1%: nothing to say
    assert ties({k: v for k, v in d.items() if k != "ties"}, "val-loss", 300) == ""  # old file
    assert ties(None, "val-loss", 300) == ""


def test_below_chance_sentence_names_baselines_that_point_the_wrong_way() -> None:
    below = _plain_fn(S.below_chance_sentence)
    d = diff(0.1, -0.1, 0.3, 0.2)
    t = {"windows": {"100": {"val_loss": {"auroc": 0.9}, "val_acc": {"auroc": 0.308},
                             "diff_val_acc": d},
                     "200": {"val_loss": {"auroc": 0.45}, "val_acc": {"auroc": 0.5},
                             "diff_val_loss": d}}}
    assert below(t, [100, 200]) == (
        "Unfolded, the val-loss baseline's AUROC is below 0.5 at W = 200 (0.450) and the "
        "val-accuracy baseline's AUROC is below 0.5 at W = 100 (0.308): there each ranks the "
        "grokking runs mostly below the others, a score that points the wrong way, so the "
        "forecaster's difference from it there says little.")
    assert below(t, [100, 200]).count("W = ") == 2  # 0.5 itself is not below chance
    # The forecaster not evaluated (too few runs for its CV): no difference from it to discount.
    alone = {"windows": {"200": {"val_loss": {"auroc": 0.45}, "diff_val_loss": None}}}
    assert below(alone, [200]) == (
        "Unfolded, the val-loss baseline's AUROC is below 0.5 at W = 200 (0.450): there it ranks "
        "the grokking runs mostly below the others, a score that points the wrong way.")
    assert below({"windows": {"100": {"val_acc": None}}}, [100]) == ""
    # Below 0.5 by less than the third decimal (1249.5 of 2,500 pairs): printed to show it.
    assert "below 0.5 at W = 100 (0.4998)" in below(
        {"windows": {"100": {"val_acc": {"auroc": 1249.5 / 2500}}}}, [100])


def test_hyperparameter_sentence_scores_the_grid_axes_as_predictors() -> None:
    hyper = _plain_fn(S.hyperparameter_sentence)
    runs = [{"weight_decay": wd, "train_frac": f} for wd in (0.3, 1.0, 10.0) for f in (0.3, 0.6)]
    labels = [0, 0, 0, 1, 1, 1]  # grokking at the larger weight decays, both fractions
    want = (roc_auc_score(labels, [r["weight_decay"] for r in runs]),
            roc_auc_score(labels, [r["train_frac"] for r in runs]))
    assert hyper(runs, labels, "0.9") == (
        "The hyperparameters alone, known before training, already rank the runs: as scores "
        f"at threshold 0.9, weight decay {want[0]:.3f} and the training fraction {want[1]:.3f} "
        "(AUROC), so part of what the early signals carry is which cell of the grid a run is in.")
    one_f = [{**r, "train_frac": 0.5} for r in runs]  # an axis that does not vary is left out
    assert "training fraction" not in hyper(one_f, labels, "0.9")
    assert hyper(runs, [0] * 6, "0.9") == ""  # one class: no AUROC
    # Was "already rank the runs" at chance too.
    assert hyper(runs, [1, 0, 0, 1, 0, 1], "0.9") == (
        "The hyperparameters alone, known before training, rank the runs little better than "
        "chance: as scores at threshold 0.9, weight decay 0.500 and the training fraction 0.667 (AUROC).")


def test_prior_baselines_sentence_compares_the_forecaster_with_them() -> None:
    prior = _plain_fn(S.prior_baselines_sentence)
    diff = {"diff": 0.179, "ci": [-0.014, 0.456], "p_one_sided": 0.073, "n_resamples": 2000}
    wd = {"auroc": 0.911, "ci": [0.82, 0.98], "diff": {
        "diff": 0.074, "ci": [0.020, 0.145], "p_one_sided": 0.003, "n_resamples": 2000}}
    f = {"auroc": 0.753, "ci": [0.6, 0.9], "diff": {**diff, "diff": 0.232}}
    hp = {"auroc": 0.805, "ci": [0.525, 0.997], "proba": [0.398, 0.5, 0.606]}
    t = {"n_pos": 10, "n_neg": 38, "windows": {
        "100": {"hyperparams": hp, "diff_hyperparams": {**diff, "diff": 0.063},
                "axis_scores": {"train_frac": f, "weight_decay": {**wd, "diff": {
                    **wd["diff"], "diff": -0.042}}}},
        "200": {"hyperparams": hp, "diff_hyperparams": diff, "loo_proba": [0.01, 0.5, 0.97],
                "axis_scores": {"train_frac": f, "weight_decay": wd}}}}
    axes = ["train_frac", "weight_decay"]
    assert prior(t, [100, 200], 200, axes) == (
        "Against the stronger axis, weight decay used as a score, the multivariate forecaster "
        "at W = 200 significantly outperforms the weight-decay baseline (Δ = +0.074, 95% CI "
        "[+0.020, +0.145], p₁ = 0.003); its difference at W = 100 is −0.042. The same "
        "logistic regression as the forecaster's, fitted and held out the same way on the "
        "runs' ranks of f and λ, has an AUROC of 0.805 (the same at every window, as its inputs "
        "do not depend on W), below weight decay alone (a difference not tested); at W = 200 "
        "its 95% CI is [0.525, 0.997]; its held-out probabilities span 0.398–0.606, the "
        "forecaster's span 0.010–0.970. The forecaster at W = 200 is ahead of the "
        "fitted-hyperparameter baseline, but not significantly: the 95% CI of the difference "
        "includes zero (Δ = +0.179, 95% CI [−0.014, +0.456], p₁ = 0.073).")
    # A model that predicts one probability (its strongest penalty) reads as such.
    t["windows"]["200"]["hyperparams"] = {**hp, "proba": [0.4999, 0.5, 0.5002]}
    assert "its held-out probabilities are all 0.500 to three decimals, the forecaster's span " \
           "0.010–0.970." in prior(t, [100, 200], 200, axes)
    # k-fold: other folds at each window; above the axis: no "below" clause; no probabilities.
    t["windows"]["100"]["hyperparams"] = {**hp, "auroc": 0.79}
    t["windows"]["200"]["hyperparams"] = {"auroc": 0.95, "ci": [0.9, 1.0]}
    text = prior(t, [100, 200], 200, axes)
    assert "0.950 at W = 200 (95% CI [0.900, 1.000]). The forecaster" in text
    assert "below" not in text and "probabilities" not in text
    # Both axes as strong: no "stronger"; one axis, one window, a custom predictor (no model).
    tied = {**t, "windows": {"200": {"axis_scores": {"train_frac": {**f, "auroc": 0.911},
                                                     "weight_decay": wd}}}}
    assert prior(tied, [200], 200, axes).startswith(
        "Against the training fraction used as a score (weight decay scores the same), the "
        "multivariate forecaster at W = 200 is ahead of the training-fraction baseline")
    one = {**t, "windows": {"200": {"axis_scores": {"weight_decay": wd}}}}
    assert prior(one, [200], 200, ["weight_decay"]) == (
        "Against weight decay used as a score, the multivariate forecaster at W = 200 "
        "significantly outperforms the weight-decay baseline (Δ = +0.074, 95% CI [+0.020, "
        "+0.145], p₁ = 0.003).")
    assert prior(t, [100, 200], 200, []) == ""  # not computed
    assert prior({**t, "n_pos": 2}, [100, 200], 200, axes) == ""  # a tiny class
    # With 5+ run orders: in how many the forecaster's AUROC is above the axis' (run_id
    # order is what the paired test used).
    for aurocs, count in (([0.95, 0.96, 0.92, 0.99, 0.97], "all"), ([0.9, 0.95, 0.911, 0.99, 0.8], "2"),
                          ([0.9] * 5, "none")):
        one["windows"]["200"]["multi_by_order"] = aurocs
        assert prior(one, [200], 200, ["weight_decay"]).endswith(
            f"p₁ = 0.003). Over the 5 random run orders the forecaster's AUROC at W = 200 "
            f"({min(aurocs):.3f}–{max(aurocs):.3f}) is above weight decay's 0.911 in {count} of "
            "them.")
    one["windows"]["200"]["multi_by_order"] = [0.95] * 4  # too few orders
    assert prior(one, [200], 200, ["weight_decay"]).endswith("p₁ = 0.003).")
    # The count is of the orders that have an AUROC, and says so where one has none.
    one["windows"]["200"]["multi_by_order"] = [0.95, 0.96, None, 0.92, 0.99, float("nan"), 0.97]
    assert prior(one, [200], 200, ["weight_decay"]).endswith(
        "p₁ = 0.003). Over the 5 random run orders that have an AUROC the forecaster's AUROC at "
        "W = 200 (0.920–0.990) is above weight decay's 0.911 in all of them.")
    one["windows"]["200"]["multi_by_order"] = [0.95, 0.96, None, 0.92, 0.99, None]  # 4: too few
    assert prior(one, [200], 200, ["weight_decay"]).endswith("p₁ = 0.003).")


def test_cell_out_sentence_sets_leaving_out_cells_beside_loo() -> None:
    cells = _plain_fn(S.cell_out_sentence)
    t = {"n_pos": 10, "n_neg": 38, "windows": {
        "100": {"multi": {"auroc": 0.868}, "multi_cell_out": {"auroc": 0.939, "ci": [0.86, 0.99]}},
        "200": {"multi": {"auroc": 0.984}, "multi_cell_out": {"auroc": 0.971, "ci": [0.92, 1.0]}},
        "300": {"multi": {"auroc": 0.995}}}}  # not computed there: left out
    assert cells(t, [100, 200, 300], 200) == (
        "Leaving out a whole grid cell at a time, so that no run is predicted by a model that "
        "saw its seed-siblings (leave-one-out keeps them in training), the forecaster's AUROC "
        "in run_id order at W = 100 and 200 is 0.939 and 0.971, against the tables' 0.868 and "
        "0.984 (95% CI at W = 200: [0.920, 1.000]).")
    assert cells(t, [100], 200).endswith("against the tables' 0.868.")  # no headline CI
    assert "(10-fold CV keeps them in training)" in cells(t, [100], 200, 0.95, "10-fold CV")
    # With 5+ run orders, both medians: the order moves the cell-out model too.
    for w, (out, multi) in {"100": ([0.9, 0.95, 0.96, 0.97, 0.99], [0.97] * 5),
                            "200": ([0.96] * 5, [0.98, 0.99, 0.99, 0.99, 1.0])}.items():
        t["windows"][w] |= {"multi_cell_out_by_order": out, "multi_by_order": multi}
    assert cells(t, [100, 200], 200).endswith(
        "[0.920, 1.000]); over the 5 random run orders its median is 0.960 and 0.960, against "
        "leave-one-out's 0.970 and 0.990.")
    # Each median is of the orders that have an AUROC, and its count says so (was "the 6
    # random run orders" for a median of 5 at W = 200): cell-out 0.96 of [0.9, 0.95, 0.96,
    # 0.96, 0.97, 0.99] and of [0.95, 0.96, 0.96, 0.97, 0.98]; LOO 0.97 and 0.99 of six.
    t["windows"]["100"] |= {"multi_cell_out_by_order": [0.9, 0.95, 0.96, 0.97, 0.99, 0.96],
                            "multi_by_order": [0.97] * 6}
    t["windows"]["200"] |= {"multi_cell_out_by_order": [0.96, None, 0.96, 0.97, 0.95, 0.98],
                            "multi_by_order": [0.98, 0.99, 0.99, 0.99, 1.0, 0.99]}
    assert cells(t, [100, 200], 200).endswith(
        "[0.920, 1.000]); over the 6 and 5 random run orders that have an AUROC its median is "
        "0.960 and 0.960, against leave-one-out's 0.970 and 0.990 over the 6 random run orders.")
    t["windows"]["100"]["multi_by_order"] = [0.97] * 5 + [float("nan")]
    t["windows"]["200"]["multi_by_order"] = [0.98, None, 0.99, 0.99, 1.0, 0.99]
    t["windows"]["100"]["multi_cell_out_by_order"] = [0.9, 0.95, None, 0.97, 0.99, 0.96]
    assert cells(t, [100, 200], 200).endswith(
        "[0.920, 1.000]); over the 5 random run orders that have an AUROC its median is "
        "0.960 and 0.960, against leave-one-out's 0.970 and 0.990.")
    t["windows"]["200"]["multi_cell_out_by_order"] = [0.96, None, 0.96, None, 0.95, 0.98]
    assert "median" not in cells(t, [100, 200], 200)  # 4 orders with an AUROC: too few
    t["windows"]["200"]["multi_cell_out_by_order"] = [0.96] * 4  # too few orders for a median
    assert "median" not in cells(t, [100, 200], 200)
    assert cells({**t, "n_pos": 2}, [100, 200], 200) == ""  # tiny class
    assert cells({"n_pos": 10, "n_neg": 38, "windows": {"200": {"multi": None}}}, [200], 200) == ""


def _order_cells(by_order: dict[int, list], loss: dict[int, float | None],
                 multi: dict[int, float] | None = None, n_pos: int = 10) -> dict:
    return {"n_pos": n_pos, "n_neg": 38,
            "windows": {str(w): {"multi_by_order": a, "val_loss": {"auroc": loss[w]},
                                 "multi": {"auroc": (multi or {}).get(w, 0.9)}}
                        for w, a in by_order.items()}}


def test_order_sentence_gives_the_spread_and_the_largest_lead_over_val_loss() -> None:
    six = [0.9, 0.8, 0.95, 0.9, 0.85, 0.9]
    t = _order_cells({100: six, 200: [0.97, 0.99, 0.98, 0.98, 0.98, 0.98]},
                     {100: 0.93, 200: 0.98}, multi={100: 0.7, 200: 0.98})
    assert order(t, [100, 200]) == (
        "With the runs in 6 random orders instead of run_id order (the cross-validation's folds "
        "change with the order), the forecaster's AUROC at W = 100 and 200 ranges over "
        "0.800–0.950 (median 0.900) and 0.970–0.990 (median 0.980), against the val-loss "
        "baseline's 0.930 and 0.980, which no order changes. In run_id order it lies outside "
        "every random order's: below them at W = 100 (0.700). Its largest lead over that "
        "baseline in any order and window is 0.020.")  # max(0.95 - 0.93, 0.99 - 0.98)
    assert order(t, [100, 200], "0.99").startswith("At threshold 0.99, with the runs in 6 random")
    custom = order(t, [100, 200], custom=True)
    assert "folds" not in custom and "in 6 random orders instead of run_id order, the" in custom
    # The spans and medians are of the orders with an AUROC, and where that is fewer than the
    # orders run the count is said (was "in 7 random orders" beside a median of 5 at W = 100):
    # 0.75 of [0.6, 0.7, 0.75, 0.8, 0.9]; 0.93 of [0.9, 0.91, 0.92, 0.93, 0.95, 0.97, 0.99].
    nan = float("nan")
    t = _order_cells({100: [0.9, None, 0.7, nan, 0.8, 0.6, 0.75],
                      200: [0.9, 0.95, 0.92, 0.97, 0.99, 0.93, 0.91]}, {100: None, 200: None})
    assert order(t, [100, 200]) == (
        "With the runs in 7 random orders instead of run_id order (the cross-validation's folds "
        "change with the order), the forecaster's AUROC at W = 100 and 200 (defined in 5 and 7 "
        "of them) ranges over 0.600–0.900 (median 0.750) and 0.900–0.990 (median 0.930).")
    # A median of fewer than MIN_ORDERS (5) orders with an AUROC is not said, where another
    # window's is (was "(median 0.750)" of the 4 at W = 100).
    t = _order_cells({100: [0.9, None, 0.7, nan, 0.8, 0.6], 200: six}, {100: None, 200: None})
    assert order(t, [100, 200]).endswith(
        "the forecaster's AUROC at W = 100 and 200 (defined in 4 and 6 of them) ranges over "
        "0.600–0.900 and 0.800–0.950 (median 0.900).")
    few = order(_order_cells({200: [0.9, None]}, {200: 0.95}), [200])
    assert "in 2 random orders" in few and "0.900–0.900," in few  # NaN: not in the spread
    assert "W = 200 (defined in 1 of them) ranges" in few
    assert "median" not in few  # under MIN_ORDERS orders: a range only
    assert few.endswith("It leads that baseline in no order at any window.")
    assert order(_order_cells({200: [0.9, 0.8]}, {200: None}), [200]).endswith(
        "ranges over 0.800–0.900.")
    assert order(_order_cells({200: six}, {200: 0.9}, n_pos=2), [200]) == ""  # tiny class
    assert order(_order_cells({200: None}, {200: 0.9}), [200]) == ""  # orders not computed
    assert order({"n_pos": 10, "n_neg": 38, "windows": {"200": {}}}, [200]) == ""


def _threshold(d_loss: dict, d_acc: dict, single: bool = False, n_pos: int = 6,
               multi: float = 0.9) -> dict:
    return {"n_pos": 0 if single else n_pos, "n_neg": 48 - (0 if single else n_pos),
            "single_class": single,
            "windows": {"200": {"multi": {"auroc": multi, "ci": [multi - 0.1, 1.0]},
                                "diff_val_loss": d_loss, "diff_val_acc": d_acc}}}


def test_robustness_sentence_branches() -> None:
    sig, ns = diff(0.2, 0.05, 0.3, 0.001), diff(0.1, -0.02, 0.2, 0.06)
    same = robustness(_threshold(sig, ns), _threshold(sig, ns), 200, "0.9", "0.99")
    assert "does not depend on the threshold" in same
    differ = robustness(_threshold(sig, ns), _threshold(ns, ns), 200, "0.9", "0.99")
    assert "depends on the threshold" in differ and "does not" not in differ
    # Not significant at 0.9 but significantly worse at 0.99 is a different conclusion.
    worse = diff(-0.75, -0.88, -0.59, 1.0)
    flips = robustness(_threshold(ns, ns), _threshold(worse, worse), 200, "0.9", "0.99")
    assert "depends on the threshold" in flips and "does not" not in flips
    one = robustness(_threshold(sig, ns), _threshold(None, None, single=True), 200,
                                "0.9", "0.99")
    assert "cannot be made" in one
    assert "no robustness check" in robustness(_threshold(sig, ns), None, 200, "0.9",
                                                          None)
    # Two positives: no verdict on the threshold, the numbers, and why LOO ranks them low.
    worse = diff(-0.75, -0.88, -0.59, 1.0)
    tiny = robustness(_threshold(sig, ns), _threshold(worse, worse, n_pos=2, multi=0.076), 200,
                      "0.9", "0.99")
    assert "0.076 [−0.024, 1.000]".replace("−", M) in tiny and "only 2 grokking runs" in tiny
    assert "fitted on the other grokking run, while every other run's model sees both:" in tiny
    assert "can explain an AUROC below 0.5" in tiny
    assert "cannot be made" in tiny and "depends on" not in tiny and "worse" not in tiny
    # Two positives: one inner fold's training part has none, where scikit-learn would stop.
    assert "scores that fold as the constant predictor" in tiny
    three = robustness(_threshold(sig, ns), _threshold(worse, worse, n_pos=3, multi=0.3), 200,
                       "0.9", "0.99")
    assert "can explain an AUROC below 0.5" in three and "constant predictor" not in three
    assert "fitted on the other 2 grokking runs, while every other run's model sees all 3:" in three
    # One run in a class: LOO predicts it as the other class outright (grokcast.logistic), so
    # the AUROC is 0 by construction, not a shift that "can" explain it (found in review).
    from sklearn.metrics import roc_auc_score

    from grokcast.logistic import loo_predictions

    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.zeros(20, dtype=int)
    y[0], X[0] = 1, 3.0  # one grokking run, far from the others: still ranked last held out
    auroc = roc_auc_score(y, loo_predictions(X, y))
    assert auroc == 0.0
    lone = S.loo_small_class_sentence(1, 40, auroc)
    assert lone.startswith("Under leave-one-out, the one grokking run, held out, leaves none of "
                           "its class to learn from: it is predicted as the other class outright "
                           "(P(grok) = 0, where scikit-learn's") and "AUROC at or near 0" in lone
    assert "P(grok) = 1" in S.loo_small_class_sentence(30, 1, auroc)
    kfold = robustness(_threshold(sig, ns), _threshold(worse, worse, n_pos=3, multi=0.7), 200,
                       "0.9", "0.99", cv="5-fold")
    assert "leave-one-out" not in kfold and "only 3 grokking runs" in kfold


def test_top_features_keep_ties_in_feature_order() -> None:
    uni = {"b": {"auroc": 0.1, "folded": 0.9}, "a": {"auroc": 0.9, "folded": 0.9},
           "c": {"auroc": 0.8, "folded": 0.8}, "d": {"auroc": 0.2, "folded": 0.8},
           "e": {"auroc": 0.5, "folded": 0.5}, "f": {"auroc": None, "folded": None}}
    assert [n for n, _, _ in S.top_features(uni, 1)] == ["b", "a"]
    assert [n for n, _, _ in S.top_features(uni, 3)] == ["b", "a", "c", "d"]
    assert [n for n, _, _ in S.top_features(uni, 5)] == ["b", "a", "c", "d", "e"]
    ties = best_single(uni, 200)  # 0.1 and 0.9: equal folded AUROCs, opposite orderings
    assert ties == ("At W = 200, 2 features tie as the strongest single early signal (folded "
                    "AUROC 0.900): b and a.")
    alike = best_single({"end_val_loss": {"auroc": 0.2, "folded": 0.8},
                         "end_val_acc": {"auroc": 0.2, "folded": 0.8}}, 200)
    # Equal AUROCs do not make equal rankings of the runs: the sentence claims the tie only.
    # A folded AUROC hides the direction: val accuracy ranked the runs the other way round
    # from its baseline (which scores end_val_acc itself), val loss its baseline's way.
    assert alike == ("At W = 200, 2 features tie as the strongest single early signal (folded "
                     "AUROC 0.800): end_val_loss and end_val_acc, among them the val-loss "
                     "baseline itself and the val-accuracy baseline's feature read the other "
                     "way round (the baseline scores AUROC 0.200).")
    both = best_single({"end_val_loss": {"auroc": 0.8, "folded": 0.8},
                        "end_val_acc": {"auroc": 0.2, "folded": 0.8}}, 200)
    assert both.endswith("among them the val-loss and val-accuracy baselines' features read the "
                         "other way round (the baselines score AUROC 0.200).")
    flipped = best_single({"end_val_acc": {"auroc": 0.15, "folded": 0.85}, "x": {"auroc": 0.6,
                                                                             "folded": 0.6}}, 100)
    assert flipped == ("The strongest single early signal at W = 100 is end_val_acc, with folded "
                       "AUROC 0.850: the val-accuracy baseline's feature read the other way "
                       "round (the baseline scores AUROC 0.150).")
    one = best_single({"end_val_loss": {"auroc": 0.1, "folded": 0.9}, "x": {"auroc": 0.6,
                                                                            "folded": 0.6}}, 100)
    assert one == ("The strongest single early signal at W = 100 is end_val_loss, with folded "
                   "AUROC 0.900: the val-loss baseline itself.")
    assert best_single({}, 100) == ""


def test_features_whose_folded_aurocs_differ_by_float_error_tie() -> None:
    """Folded 8/380 and 372/380 are one bit apart (the paper sweep's val loss and val accuracy
    at W = 300): the text, Table 3 and figure 3 must call them a tie, in feature order."""
    from grokcast.analysis import table3_order
    from grokcast.stats import folded_auroc

    low, high = 8 / 380, 372 / 380
    assert folded_auroc(low) < folded_auroc(high)  # the float error this test is about
    uni = {"end_val_loss": {"auroc": low, "folded": folded_auroc(low)},
           "end_val_acc": {"auroc": high, "folded": folded_auroc(high)},
           "x": {"auroc": 0.6, "folded": 0.6}}
    assert [n for n, _, _ in S.top_features(uni, 1)] == ["end_val_loss", "end_val_acc"]
    assert best_single(uni, 300).startswith("At W = 300, 2 features tie as the strongest")
    analysis = {"features": [{"name": n} for n in uni],
                "thresholds": {"0.9": {"windows": {"300": {"univariate": uni}}}}}
    assert table3_order(analysis, "0.9", 300) == ["end_val_loss", "end_val_acc", "x"]


def test_reliability_sentence_counts_runs_per_bin() -> None:
    # Five equal-width bins: [0, .2) [.2, .4) [.4, .6) [.6, .8) [.8, 1].
    proba = [0.05, 0.1, 0.15, 0.19, 0.0, 0.5, 0.45, 0.99, 1.0, None]
    text = reliability(proba, [0, 0, 0, 0, 0, 1, 0, 1, 1, 1])
    assert "hold 5, 0, 2, 0 and 2 runs" in text
    assert "the 2 non-empty bins with fewer than 5 runs" in text
    even = reliability([0.1] * 5 + [0.9] * 5, [0] * 5 + [1] * 5, n_bins=2)
    assert even == "From low to high predicted probability, the 2 bins of @fig:reliability at " \
                   "this window hold 5 and 5 runs."


def test_observed_label_sentence_counts_runs_that_reached_the_threshold() -> None:
    runs = _runs([100] * 4, [-1, 450, 500, 99])
    text = observed(runs, [100, 200, 500, 600], "0.9")
    # Features read log rows with step < W: 99 is inside W = 100, 500 only inside W = 600.
    assert "0.9 inside the window (log rows with step < W): 1, 1, 2 and 3 at W = 100, 200, 500 " \
           "and 600" in text
    assert "At W = 100, 200, 500 and 600 the label is partly observed" in text
    one = observed(runs, [100, 200, 700], "0.9")
    assert "1, 1 and 3 at W = 100, 200 and 700. At W = 100, 200 and 700" in one
    assert "At W = 200 the label is partly observed, so its AUROC partly measures" in \
        observed(_runs([100] * 2, [-1, 150]), [100, 200], "0.9")
    clean = observed(_runs([100] * 2, [-1, 700]), [100, 200], "0.9")
    assert clean.startswith("No run reaches a validation accuracy of 0.9 inside any window")
    assert observed([{"run_id": "old"}], [100], "0.9") == ""
    # Every run groks: a single label class has no AUROC to say anything of.
    assert observed(_runs([100] * 2, [600, 150]), [100, 200], "0.9").endswith(
        "0 and 1 at W = 100 and 200. At W = 200 the label is partly observed.")


def test_delay_sentence_compares_fitting_and_generalising_steps() -> None:
    # Fit step, grok step: (100, 100) no delay; (200, 150) before fitting; (100, 900) and
    # (50, 2050) late; a run that never fits and one that never groks are left out.
    runs = _runs([100, 200, 100, 50, -1, 80], [100, 150, 900, 2050, 300, -1])
    assert S.generalisation_delays(runs, "0.9") == [0, -50, 800, 2000]
    text = plain(S.delay_sentence(runs, "0.9"))
    assert text == ("In 2 of the 4 runs that grok and fit, validation accuracy reaches 0.9 no "
                    "later than train accuracy reaches 99% (as logged): they generalise as they "
                    "fit, without the delay that defines grokking. In the other 2 the delay is "
                    "between 800 and 2,000 steps (median 1,400).")
    late = plain(S.delay_sentence(_runs([100, 100, -1], [300, 500, 700]), "0.9"))
    assert late == ("Each of the 2 runs that grok and fit reaches a train accuracy of 99% first, "
                    "and a validation accuracy of 0.9 between 200 and 400 steps (median 300) "
                    "later.")
    one_late = plain(S.delay_sentence(_runs([100, 90], [450, -1]), "0.9"))
    assert one_late == ("The run that groks reaches a train accuracy of 99% first, and a "
                        "validation accuracy of 0.9 350 steps later.")
    one_now = plain(S.delay_sentence(_runs([100], [100]), "0.9"))
    assert one_now.startswith("The run that groks reaches a validation accuracy of 0.9 no later "
                              "than a train accuracy of 99% (as logged): it generalises as it fits")
    # Was "The run that groks" where others grok without fitting.
    one_of_three = plain(S.delay_sentence(_runs([100, -1, -1], [100, 300, 400]), "0.9"))
    assert one_of_three.startswith("The one run that fits of the 3 that grok reaches a validation "
                                   "accuracy of 0.9 no later than a train accuracy of 99%")
    assert plain(S.delay_sentence(_runs([100, -1], [450, 300]), "0.9")).startswith(
        "The one run that fits of the 2 that grok reaches a train accuracy of 99% first")
    same_late = plain(S.delay_sentence(_runs([100, 100, 100], [100, 450, 450]), "0.9"))
    assert same_late.endswith("In the other 2 the delay is 350 steps.")
    assert S.delay_sentence(_runs([100], [-1]), "0.9") == ""
    assert S.no_delay_sentence(_runs([100, 100], [300, 500]), "0.9") == ""


def test_reference_comparison_sentence_branches() -> None:
    ours = {"auroc": 0.93, "ci": [0.85, 0.99]}
    agree = reference_comparison(ours, [0.917, 0.812, 1.0], 200)
    assert "each estimate lies inside the other's CI" in agree
    disagree = reference_comparison({"auroc": 0.6, "ci": [0.5, 0.7]},
                                               [0.917, 0.812, 1.0], 200)
    assert "disagree" in disagree
    half = reference_comparison({"auroc": 0.9, "ci": [0.88, 0.92]},
                                           [0.957, 0.812, 1.0], 200)
    assert "not the reverse" in half
    # The reference's numbers have 3 decimals: ours are compared as printed beside them, where
    # 0.8466 and 0.9565 print as its 0.847 and 0.957 (they were said to lie outside them).
    touching = reference_comparison({"auroc": 0.8466, "ci": [0.80, 0.89]},
                                    [0.9, 0.847, 0.95], 200)
    assert "0.847 [0.800, 0.890] against the reference's 0.900 [0.847, 0.950]" in touching
    assert "one estimate lies inside the other's CI but not the reverse" in touching
    assert "each estimate lies inside the other's CI" in reference_comparison(
        {"auroc": 0.9, "ci": [0.80, 0.9565]}, [0.957, 0.85, 0.95], 200)
    # Their Δ = +0.161 at our CI's printed upper end: inside it, not ruled out by it.
    theirs = {"diff": 0.161, "ci": [0.043, 0.293], "p_one_sided": 0.002}
    assert CL.comparison_status(theirs, diff(0.05, -0.02, 0.1606, 0.1), 0.95) == CL.UNRESOLVED
    assert CL.comparison_status(theirs, diff(0.05, -0.02, 0.1604, 0.1), 0.95) == CL.SMALLER


def _claims_analysis(n_pos2: int) -> dict:
    """Two thresholds, W = 200, 12 runs over three weight decays (3 grokkers, all at λ = 1)."""
    wds = [0.1] * 4 + [1.0] * 4 + [10.0] * 4
    labels = [0] * 4 + [1, 1, 1, 0] + [0] * 4
    uni = {"end_val_loss": {"auroc": 0.1, "folded": 0.9}, "end_val_acc": {"auroc": 0.8, "folded": 0.8}}
    def th(n_pos: int, d_loss: dict) -> dict:
        return {"n_pos": n_pos, "n_neg": 12 - n_pos, "single_class": False, "labels": labels,
                "windows": {"200": {"diff_val_loss": d_loss, "diff_val_acc": diff(0.1, -0.1, 0.3, 0.2),
                                    "max_val_acc_in_window": 0.12, "univariate": uni}}}
    return {"settings": {"thresholds": [0.9, 0.99], "windows": [200]},
            "runs": [{"weight_decay": w, "step_train_acc_0.99": s} for w, s in
                     zip(wds, [90] * 11 + [300])],
            "thresholds": {"0.9": th(6, diff(0.2, 0.1, 0.3, 0.001)),
                           "0.99": th(n_pos2, diff(0.2, 0.1, 0.3, 0.001))}}


def test_the_weight_decay_claim_where_every_run_groks_names_no_small_class() -> None:
    a = _claims_analysis(4)
    a["thresholds"]["0.9"].update(n_pos=12, n_neg=0, single_class=True, labels=[1] * 12)
    [(_, text, status)] = CL._weight_decay_claim(a)
    assert status == CL.UNCHECKED
    assert "0 runs" not in text and "with every run in one class: nothing to compare" in text


def test_a_difference_the_reference_found_not_significant_is_not_said_to_be_on_our_other_side():
    ref = {"tables": {"0.9": {"200": {"diff_val_loss": [0.05, -0.1, 0.2], "p_val_loss": "0.3",
                                      "diff_val_acc": [0.05, -0.1, 0.2], "p_val_acc": "0.3"}}}}
    a = _claims_analysis(5)  # ours at 0.9: Δ = +0.2, CI [+0.1, +0.3], the reference's side
    [(_, text, status)] = CL._comparison_claims(a, ref, 200, 0.95)[:1]
    assert status == CL.CONTRADICTED
    assert "the side of zero the reference's difference is on" not in text
    assert "our CI excludes zero, where the reference's difference was not significant" in text


def test_reference_claims_hold_or_not_by_our_numbers() -> None:
    ref = {"n_runs": 12, "grok_counts": {"0.9": 6, "0.99": 4},
           "tables": {k: {"200": {"diff_val_loss": [0.16, 0.04, 0.29], "p_val_loss": "< 0.001",
                                  "diff_val_acc": [0.11, -0.005, 0.24], "p_val_acc": "0.035"}}
                      for k in ("0.9", "0.99")},
           "claims": {"best_single": {"threshold": "0.9", "window": 200, "feature": "end_val_acc",
                                      "folded": 0.845},
                      "max_val_acc_before": {"window": 200, "below": 0.15},
                      "fit_by_step": {"step": 100}, "moderate_weight_decay": {}}}
    claims = CL.reference_claims(_claims_analysis(5), ref, 200)
    got = {what: holds for what, _, holds in claims}
    assert got == {
        "the forecaster's standing against the val-loss baseline at threshold 0.9": CL.HOLDS,
        # theirs: CI includes zero, p = 0.035 (significant one-sided only); ours p = 0.2 with a
        # CI [−0.1, +0.3] that holds their +0.11: not shown, not ruled out.
        "the forecaster's standing against the val-accuracy baseline at threshold 0.9": CL.UNRESOLVED,
        "the forecaster's standing against the val-loss baseline at threshold 0.99": CL.HOLDS,
        # Ours is another feature, but without the features table nothing tests the gap.
        "which single feature is strongest": CL.UNRESOLVED,
        "no run generalising before step 200": CL.HOLDS,  # 12% < 15%
        "every run fitting by step 100": CL.CONTRADICTED,  # one run at step 300
        "grokking at moderate weight decay": CL.HOLDS,  # λ = 1, inside the grid
        "how many runs grok at threshold 0.9": CL.HOLDS,
        # 5 of 12 against 4 of 12: Fisher's exact p = 1.0.
        "how many runs grok at threshold 0.99": CL.UNRESOLVED}
    text = {what: plain(sentence) for what, sentence, _ in claims}
    assert "ours is end_val_loss (0.900), and end_val_acc has 0.800" in \
        text["which single feature is strongest"]
    assert "in ours 11 of 12 reach 99% by step 100 (the median run at step 90)" in \
        text["every run fitting by step 100"]
    # Runs that never fit count as the latest: the median was taken over those that fit alone,
    # "2 of 8 ... (the median run at step 98)" where 4 of 8 never fit (found in review).
    for fit_steps, words in (([90] * 7 + [-1] * 5, "7 of 12 reach 99% by step 100 (the median run "
                                                  "at step 90; 5 never do)"),
                             ([82, 81, 118, 114] + [-1] * 8, "2 of 12 reach 99% by step 100 (the "
                                                             "median run never does: 8 of 12 never "
                                                             "reach it)")):
        a = _claims_analysis(5)
        a["runs"] = [{**r, "step_train_acc_0.99": x} for r, x in zip(a["runs"], fit_steps)]
        fit = [c for c in CL.reference_claims(a, ref, 200) if c[0] == "every run fitting by step 100"]
        assert words in plain(fit[0][1]) and fit[0][2] == CL.CONTRADICTED
    assert "ours groks most at λ = 1 (0/4, 3/4, 0/4 at λ = 0.1, 1, 10)" in \
        text["grokking at moderate weight decay"]
    # Dynamics follow the initialisation: the verdicts name ours where the config records it,
    # once, under the last of the two (adjacent) claims about dynamics.
    assert "initialisation" not in text["grokking at moderate weight decay"]
    with_init = _claims_analysis(5)
    with_init["sweep"] = {"config": {"model": {"init": "torch"}}}
    said = {what: plain(s) for what, s, _ in CL.reference_claims(with_init, ref, 200)}
    assert list(said).index("grokking at moderate weight decay") == \
        list(said).index("every run fitting by step 100") + 1
    assert "initialisation" not in said["every run fitting by step 100"]
    assert said["grokking at moderate weight decay"].endswith(
        "The reference does not state its initialisation; this verdict and the one before are "
        "for ours (torch), and the dynamics may depend on it.")
    alone = CL.reference_claims(with_init, {**ref, "claims": {"fit_by_step": {"step": 100}}}, 200)
    (fit,) = [plain(s) for w, s, _ in alone if w == "every run fitting by step 100"]
    assert fit.endswith("this verdict is for ours (torch), and the dynamics may depend on it.")
    # A claim our log cannot check has no verdict to caveat (found in review): a log with gaps
    # before step 100 leaves the fitting claim unchecked, the note goes to the other alone.
    gappy = _claims_analysis(5)
    gappy["sweep"] = {"config": {"p": 23, "n_steps": 1200, "model": {"init": "torch"},
                                 "log": {"dense_until": 10, "every": 250}}}
    said = {w: (plain(s), h) for w, s, h in CL.reference_claims(gappy, ref, 200)}
    assert said["every run fitting by step 100"][1] == CL.UNCHECKED
    assert "initialisation" not in said["every run fitting by step 100"][0]
    assert said["grokking at moderate weight decay"][0].endswith(
        "this verdict is for ours (torch), and the dynamics may depend on it.")
    # Two positives at 0.99: that comparison cannot be checked, and the summary says so.
    tiny = CL.reference_claims(_claims_analysis(2), ref, 200)
    (small,) = [(s, h) for w, s, h in tiny if w.endswith("val-loss baseline at threshold 0.99")]
    assert small[1] == CL.UNCHECKED and "too few to compare" in plain(small[0])
    assert "significantly" not in plain(small[0]).split("; ours")[1]  # no verdict word on ours
    summary = CL.claims_summary(tiny)
    assert summary == (
        "Of the 9 claims of the reference paper that @sec:repro checks, 4 hold in our sweep; our "
        "data rule out 1: every run fitting by step 100; 3 are neither shown nor ruled out (our "
        "numbers allow both the claim and its negation): the forecaster's standing against "
        "the val-accuracy baseline at threshold 0.9, which single feature is strongest and how "
        "many runs grok at threshold 0.99; 1 cannot be checked with this sweep (@sec:repro says "
        "why): the forecaster's standing against the val-loss baseline at threshold 0.99.")
    # Was: "Holds" for the strongest feature and a verdict on weight decay from one or two
    # grokkers at the primary threshold, whose few positives tie many features at the top.
    few = _claims_analysis(2)
    few["thresholds"]["0.9"] |= {"n_pos": 2, "n_neg": 10}
    verdicts = {w: (plain(s), h) for w, s, h in CL.reference_claims(few, ref, 200)}
    for what in ("which single feature is strongest", "grokking at moderate weight decay"):
        assert verdicts[what][1] == CL.UNCHECKED
        assert verdicts[what][0].endswith("with only 2 runs in a class: too few to compare.")
    assert CL.claims_summary([("x", "s", CL.HOLDS)]) == ("Of the 1 claim of the reference paper "
                                                        "that @sec:repro checks, 1 holds in our sweep.")
    # Our CI [−0.05, +0.05] excludes their +0.16, not Δ > 0: the size is ruled out, the sign not.
    sized = _claims_analysis(5)
    sized["thresholds"]["0.9"]["windows"]["200"]["diff_val_loss"] = diff(0.0, -0.05, 0.05, 0.5)
    claims = CL.reference_claims(sized, ref, 200)
    (loss,) = [(s, h) for w, s, h in claims if w.endswith("val-loss baseline at threshold 0.9")]
    assert loss[1] == CL.SMALLER and plain(loss[0]).endswith(
        "our CI excludes the reference's Δ but not its sign: our sweep rules out a difference of "
        "the reference's size, not the reference's claim.")
    assert ("for 1 our data rule out a difference of the reference's size but not its sign: the "
            "forecaster's standing against the val-loss baseline at threshold 0.9;") in \
        CL.claims_summary(claims)
    assert CL._HOLDS[CL.SMALLER] == "Its size is ruled out, not its sign."
    # The same rate at every λ is not "concentrated at moderate weight decay".
    flat = _claims_analysis(5)
    flat["thresholds"]["0.9"]["labels"] = [1, 0, 0, 0] * 3
    (wd,) = [(w, s, h) for w, s, h in CL.reference_claims(flat, ref, 200) if "weight decay" in w]
    assert wd[2] == CL.CONTRADICTED and "groks at the same rate at every λ (1/4, 1/4, 1/4" in plain(wd[1])
    # A sweep of another size is not compared by counts.
    assert not any(w.startswith("how many") for w, _, _ in
                   CL.reference_claims(_claims_analysis(5), {**ref, "n_runs": 48}, 200))


@pytest.mark.parametrize("ours, expected", [
    (diff(0.2, 0.1, 0.3, 0.001), CL.HOLDS),  # both significantly better
    (diff(0.3, 0.2, 0.4, 0.0), CL.HOLDS),  # ours better still: the claim holds, not "differs"
    # Our CI excludes their +0.16 but not Δ > 0: the size is ruled out, not the claim.
    (diff(0.0, -0.05, 0.05, 0.5), CL.SMALLER),
    (diff(0.05, -0.05, 0.2, 0.2), CL.UNRESOLVED),  # ours not significant, their +0.16 inside
    (diff(-0.2, -0.3, -0.1, 1.0), CL.CONTRADICTED),  # ours significantly worse
    (diff(-0.1, -0.3, 0.0, 0.97), CL.CONTRADICTED),  # no Δ > 0 left in our CI
    (diff(0.0, float("nan"), float("nan"), 0.5), CL.UNRESOLVED),  # no CI: nothing to rule out
    ({"diff": 0.0, "ci": [None, None], "p_one_sided": None}, CL.UNRESOLVED),
])
def test_comparison_status_against_the_reference(ours: dict, expected: str) -> None:
    theirs = {"diff": 0.16, "ci": [0.04, 0.29], "p_one_sided": 0.0}
    assert CL.comparison_status(theirs, ours, 0.95) == expected
    weak = {"diff": 0.11, "ci": [-0.005, 0.24], "p_one_sided": 0.035}  # one-sided only
    assert CL.comparison_status(weak, diff(0.2, 0.1, 0.3, 0.001), 0.95) == CL.HOLDS
    level = {"diff": 0.02, "ci": [-0.1, 0.14], "p_one_sided": 0.4}  # no significant difference
    assert CL.comparison_status(level, diff(0.2, 0.1, 0.3, 0.001), 0.95) == CL.CONTRADICTED
    assert CL.comparison_status(level, diff(0.1, -0.1, 0.3, 0.2), 0.95) == CL.HOLDS


def test_the_uncertainty_limitation_counts_one_positive_in_the_singular(tmp_path: Path) -> None:
    a = write_synthetic_results(tmp_path / "res")
    for n_pos, words in ((1, "48 runs and 1 positive, the sweep"), (2, "48 runs and 2 positives,")):
        a["thresholds"]["0.9"]["n_pos"], a["thresholds"]["0.9"]["n_neg"] = n_pos, 48 - n_pos
        assert words in plain(CTX._uncertainty_limit(CTX._Facts.read(a)))


def test_figure_1_caption_counts_one_run_in_the_singular(tmp_path: Path) -> None:
    a = write_synthetic_results(tmp_path / "res")
    pair = CTX._Pair("a pair", True, True)
    for n_pos, words in ((1, "max val acc ≥ 0.9, 1 run);"), (2, "max val acc ≥ 0.9, 2 runs);")):
        a["thresholds"]["0.9"]["n_pos"], a["thresholds"]["0.9"]["n_neg"] = n_pos, 48 - n_pos
        assert words in plain(CTX._captions(CTX._Facts.read(a), pair)["fig1"])
    a["runs"], a["sweep"]["n_runs"] = a["runs"][:1], 1  # a one-run sweep: figures 1-2 draw it
    for entry in a["thresholds"].values():
        entry["labels"] = entry["labels"][:1]
    assert "accuracy of the run against step" in plain(CTX._captions(CTX._Facts.read(a),
                                                                     pair)["fig1"])


def test_figure_1_caption_counts_none_and_one_known_outcome_right(tmp_path: Path) -> None:
    """The plural of none is "runs", and one run with a known outcome out of several trained
    is "the run", not "the 1 runs"."""
    a = write_synthetic_results(tmp_path / "res")
    pair = CTX._Pair("a pair", True, True)
    a["thresholds"]["0.9"]["n_pos"], a["thresholds"]["0.9"]["n_neg"] = 0, 48
    assert "max val acc ≥ 0.9, 0 runs);" in plain(CTX._captions(CTX._Facts.read(a), pair)["fig1"])
    a["runs"], a["sweep"]["n_runs"] = a["runs"][:1], 3  # two of three trained runs left out
    for entry in a["thresholds"].values():
        entry["labels"] = entry["labels"][:1]
    caption = plain(CTX._captions(CTX._Facts.read(a), pair)["fig1"])
    assert "accuracy of the run with a known outcome (of 3 trained) against step" in caption


def test_a_one_run_sweep_is_counted_in_the_singular_in_the_text(tmp_path: Path) -> None:
    """Was: figure 1's caption said "the run", but the abstract, setup, phase text and
    limitations of the same paper said "a sweep of 1 runs", "Out of 1 runs" and "With 1 runs"."""
    a = write_synthetic_results(tmp_path / "res")
    a["runs"], a["sweep"]["n_runs"] = a["runs"][:1], 1
    for entry in a["thresholds"].values():
        entry["labels"] = entry["labels"][:1]
        entry["n_pos"] = entry["labels"][0]
        entry["n_neg"], entry["single_class"] = 1 - entry["n_pos"], True
    f = CTX._Facts.read(a)
    n_pos = a["thresholds"]["0.9"]["n_pos"]
    parts = {"abstract": CTX._abstract(f), "phase": CTX._phase(f),
             "setup": " ".join(CTX._setup(f).values()),
             "limitations": " ".join(CTX._limitations(f)), "uncertainty": CTX._uncertainty_limit(f)}
    text = {k: plain(v) for k, v in parts.items()}
    assert "On a sweep of 1 run of a one-layer transformer" in text["abstract"]
    assert f"Out of 1 run, {n_pos} grokked at threshold 0.9" in text["phase"]
    assert ": 1 run, matrix products" in text["setup"]
    assert "With 1 run, all of one class at threshold 0.9" in text["limitations"]
    assert "With 1 run and " in text["uncertainty"]
    for name, words in text.items():
        assert not re.search(r"(?<![/\d])1 runs", words), (name, words)
    a["sweep"]["n_runs"] = 3  # one known outcome of three trained runs
    assert f"{n_pos} of the 1 run with a known outcome" in plain(CTX._grok_count(CTX._Facts.read(a)))


def test_count_claims_tell_seed_noise_from_a_real_difference() -> None:
    def counts(ours: int, theirs: int) -> tuple[str, str]:
        a = {"settings": {"thresholds": [0.9]}, "runs": [{}] * 12,
             "thresholds": {"0.9": {"n_pos": ours}}}
        (_, text, status), = CL._count_claims(a, {"n_runs": 12, "grok_counts": {"0.9": theirs}}, 0.95)
        return plain(text), status

    text, status = counts(0, 9)  # scipy: fisher_exact([[0, 12], [9, 3]]) p = 0.00037
    assert status == CL.CONTRADICTED and "two-sided p < 0.001: significant at the 5% level" in text
    text, status = counts(2, 4)  # p = 0.64
    assert status == CL.UNRESOLVED and "p = 0.640: not significant at the 5% level" in text
    assert counts(3, 3)[1] == CL.HOLDS
    # 13 trained, one diverged: the counts are of the 12 analysed, and say so (the appendix's
    # comparability is that of the trained sweep, 13 runs as the reference's).
    a = {"settings": {"thresholds": [0.9]}, "runs": [{}] * 12, "sweep": {"n_runs": 13},
         "thresholds": {"0.9": {"n_pos": 3}}}
    (_, text, _), = CL._count_claims(a, {"n_runs": 13, "grok_counts": {"0.9": 3}}, 0.95)
    assert "ours 3 of the 12 with a known outcome (1 diverged or stopped early)" in plain(text)
    assert CL._count_claims(a, {"n_runs": 12, "grok_counts": {"0.9": 3}}, 0.95) == []


def test_best_single_claim_tests_the_gap_between_two_features() -> None:
    import pandas as pd

    y = np.array([0] * 6 + [1] * 6)
    runs = [{"run_id": f"r{k:02d}"} for k in range(12)]
    loss = np.r_[np.linspace(2, 3, 6), np.linspace(0, 1, 6)]  # lower loss: grokking, AUROC 0
    acc_close = loss[::-1] + np.r_[0.0, 0, 0, 0, 0, 1.7, -1.7, 0, 0, 0, 0, 0]  # one swap
    acc_flat = np.r_[np.arange(6), np.arange(6)].astype(float)  # AUROC 0.5
    for acc, expected in ((acc_flat, CL.CONTRADICTED), (acc_close, CL.UNRESOLVED)):
        feats = pd.DataFrame({"run_id": [r["run_id"] for r in runs], "window": 200,
                              "end_val_loss": loss, "end_val_acc": acc})
        uni = {n: {"auroc": float(roc_auc_score(y, feats[n])), "folded": None} for n in
               ("end_val_loss", "end_val_acc")}
        for e in uni.values():
            e["folded"] = abs(e["auroc"] - 0.5) + 0.5
        a = {"runs": runs, "settings": {"seed": 0, "n_resamples": 500, "level": 0.95},
             "thresholds": {"0.9": {"labels": y.tolist(), "single_class": False, "n_pos": 6,
                                    "n_neg": 6, "windows": {"200": {"univariate": uni}}}}}
        claim = {"threshold": "0.9", "window": 200, "feature": "end_val_acc", "folded": 0.845}
        ((_, text, status),) = CL._best_single_claim(a, claim, feats, 0.95)
        assert status == expected, plain(text)
        assert "the paired difference of the two folded AUROCs is" in plain(text)
    # The full-data difference is that of the folded AUROCs, 1.0 − 0.5 for the flat feature.
    flat = feats.assign(end_val_acc=acc_flat)
    assert feature_difference(a, flat, "0.9", 200, "end_val_loss",
                                "end_val_acc")["diff"] == pytest.approx(0.5)
    # analysis.json's own key for the window reads the same; a window not analysed is named
    # (was: "feature 'end_val_loss' at W = 200 is not finite for every run").
    assert feature_difference(a, flat, "0.9", "200", "end_val_loss", "end_val_acc")["diff"] \
        == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"window=300 is not allowed: expected one of the "
                                         r"analysed windows \[200\]"):
        feature_difference(a, flat, "0.9", 300, "end_val_loss", "end_val_acc")


def _entry_ci(auroc: float | None, lo: float | None, hi: float | None) -> dict:
    return {"auroc": auroc, "ci": [lo, hi]}


def _cross_window_analysis(cells: dict[int, dict], n_pos: int = 5) -> dict:
    """12 runs at one threshold, one cell per window (windows chosen apart from the reference's)."""
    return {"settings": {"thresholds": [0.9], "windows": sorted(cells)},
            "runs": [{}] * 12,
            "thresholds": {"0.9": {"n_pos": n_pos, "n_neg": 12 - n_pos, "single_class": False,
                                   "labels": [1] * n_pos + [0] * (12 - n_pos),
                                   "windows": {str(w): c for w, c in cells.items()}}}}


_LOSS_THEN_ACC = {"threshold": "0.9", "small_window": 50, "larger_from": 100}


def _kinds(loss: tuple, acc: tuple) -> dict:
    """A window's baselines (AUROC, lo, hi each) and univariate AUROCs that agree with them."""
    return {"val_loss": _entry_ci(*loss), "val_acc": _entry_ci(*acc),
            "univariate": {"end_val_loss": {"auroc": 1 - loss[0], "folded": loss[0]},
                           "end_val_acc": {"auroc": acc[0], "folded": abs(acc[0] - 0.5) + 0.5}}}


def _loss_then_acc(cells: dict[int, dict], n_pos: int = 5) -> tuple[str, str]:
    [(what, text, status)] = CL._loss_then_accuracy_claim(_cross_window_analysis(cells, n_pos),
                                                          _LOSS_THEN_ACC)
    assert what == "loss-related signals leading at small W, accuracy-related ones at larger W"
    return plain(text), status


def test_the_loss_then_accuracy_claim_compares_the_two_baselines_cis_at_each_window() -> None:
    """A kind of signal leads at a window only where its baseline's folded CI lies above the
    other's (the reference: loss-related at small W, accuracy-related at larger W)."""
    hi_loss, hi_acc = (0.95, 0.9, 1.0), (0.95, 0.9, 1.0)
    lo_loss, lo_acc = (0.7, 0.6, 0.8), (0.7, 0.6, 0.8)
    # Loss above at W = 50, accuracy above at both larger windows: the pattern is shown.
    text, status = _loss_then_acc({50: _kinds(hi_loss, lo_acc), 100: _kinds(lo_loss, hi_acc),
                                   150: _kinds(lo_loss, hi_acc)})
    assert status == CL.HOLDS, text
    assert text.startswith("The reference finds the strongest single signals loss-related at "
                           "small W (W = 50) and accuracy-related at larger W (from W = 100 on); "
                           "our strongest single features are loss-related at W = 50 and "
                           "accuracy-related at W = 100 and 150;")
    assert "0.950 [0.900, 1.000] against 0.700 [0.600, 0.800] at W = 50" in text
    assert text.endswith("so our data show this pattern.")
    # Overlapping CIs at one larger window: which kind leads there is not resolved.
    text, status = _loss_then_acc({50: _kinds(hi_loss, lo_acc), 100: _kinds(lo_loss, hi_acc),
                                   150: _kinds((0.9, 0.8, 0.97), (0.95, 0.9, 1.0))})
    assert status == CL.UNRESOLVED and "at W = 150 the two CIs overlap" in text
    assert text.endswith("so our sweep neither shows nor rules out this pattern.")
    # Loss above at a larger window rules the pattern out, whatever the other windows show.
    text, status = _loss_then_acc({50: _kinds(hi_loss, lo_acc), 100: _kinds(hi_loss, lo_acc),
                                   150: _kinds(lo_loss, hi_acc)})
    assert status == CL.CONTRADICTED, text
    assert "at W = 100 the val-loss CI lies above the val-accuracy one" in text
    # The val-accuracy baseline scoring below chance is strong the other way round: folded,
    # 0.05 [0.0, 0.15] is 0.95 [0.85, 1.0], above the val-loss 0.8 [0.7, 0.84] at the small
    # window, which rules the pattern out (unfolded, the val-loss CI would lie above).
    text, status = _loss_then_acc({50: _kinds((0.8, 0.7, 0.84), (0.05, 0.0, 0.15)),
                                   100: _kinds(lo_loss, hi_acc)})
    assert status == CL.CONTRADICTED, text
    assert "0.800 [0.700, 0.840] against 0.950 [0.850, 1.000] at W = 50" in text
    # A CI across 0.5 folds to one starting at 0.5: 0.3 [0.1, 0.6] is 0.7 [0.5, 0.9].
    assert CL._folded_baseline(_entry_ci(0.3, 0.1, 0.6)) == pytest.approx((0.7, 0.5, 0.9))
    assert CL._folded_baseline(_entry_ci(0.3, None, 0.6)) is None
    # CIs that touch as printed are not apart: 0.8504 and 0.8496 both print 0.850.
    text, status = _loss_then_acc({50: _kinds((0.9, 0.8504, 0.95), (0.8, 0.7, 0.8496)),
                                   100: _kinds(lo_loss, hi_acc)})
    assert status == CL.UNRESOLVED and "at W = 50 the two CIs overlap" in text


def test_the_loss_then_accuracy_claim_with_an_undefined_window_or_too_few_windows() -> None:
    hi, lo = (0.95, 0.9, 1.0), (0.7, 0.6, 0.8)
    # A NaN AUROC (null in analysis.json) at a larger window leaves that window open.
    nan_cell = _kinds(lo, hi) | {"val_acc": _entry_ci(None, None, None)}
    text, status = _loss_then_acc({50: _kinds(hi, lo), 100: _kinds(lo, hi), 150: nan_cell})
    assert status == CL.UNRESOLVED, text
    assert "(undefined at W = 150)" in text and text.endswith(
        "at W = 100 the val-accuracy CI lies above the val-loss one, as the reference has it; at "
        "W = 150 they cannot be compared, so our sweep neither shows nor rules out this pattern.")
    # Was: a larger window where accuracy leads went unsaid beside one where the CIs overlap.
    text, status = _loss_then_acc({50: _kinds(hi, lo), 100: _kinds(lo, hi), 150: _kinds(hi, hi)})
    assert status == CL.UNRESOLVED and text.endswith(
        "at W = 100 the val-accuracy CI lies above the val-loss one, as the reference has it; at "
        "W = 150 the two CIs overlap, so our sweep neither shows nor rules out this pattern.")
    # Was: with no baseline defined anywhere, "(from W = 100 on) (undefined at W = 50 and 100)".
    none = {"val_loss": _entry_ci(None, None, None), "val_acc": _entry_ci(None, None, None)}
    text, status = _loss_then_acc({50: none, 100: none})
    assert status == CL.UNRESOLVED and text == (
        "The reference finds the strongest single signals loss-related at small W (W = 50) and "
        "accuracy-related at larger W (from W = 100 on); only two single signals have CIs in our "
        "analysis, the val-loss and val-accuracy baselines, whose folded AUROCs (val loss "
        "against val accuracy, the CIs folded alike) are undefined at W = 50 and 100: at W = 50 "
        "they cannot be compared; at W = 100 they cannot be compared, so our sweep neither shows "
        "nor rules out this pattern.")
    # One window cannot show a change with the window: the larger ones are missing.
    text, status = _loss_then_acc({50: _kinds(hi, lo)})
    assert status == CL.UNCHECKED and text.endswith(
        "our analysis has no window from W = 100 on, so it cannot be compared.")
    text, status = _loss_then_acc({100: _kinds(lo, hi)})
    assert status == CL.UNCHECKED and "our analysis has no W = 50," in text
    text, status = _loss_then_acc({50: _kinds(hi, lo), 100: _kinds(lo, hi)}, n_pos=2)
    assert status == CL.UNCHECKED and text.endswith(
        "we check it at no window, with only 2 runs in a class: too few to compare.")
    assert CL._loss_then_accuracy_claim(_cross_window_analysis({50: _kinds(hi, lo)}),
                                        {**_LOSS_THEN_ACC, "threshold": "0.99"}) == []


_SATURATING = {"threshold": "0.9", "window": 100}


def _trend_claim(multi: dict[int, tuple | None], n_pos: int = 5,
                 orders: dict[int, list] | None = None) -> tuple[str, str]:
    cells = {w: {"multi": None if m is None else _entry_ci(*m),
                 **({"multi_by_order": orders[w]} if orders else {})} for w, m in multi.items()}
    [(what, text, status)] = CL._window_trend_claim(_cross_window_analysis(cells, n_pos),
                                                    _SATURATING)
    assert what == "the forecaster's AUROC rising with W and saturating by W = 100"
    return plain(text), status


def test_the_window_trend_claim_needs_cis_apart_to_show_or_rule_out_a_change() -> None:
    """Monotone, saturating by W_s: holds where the CIs show a rise up to W_s larger than any
    gain after it they allow; ruled out by a fall anywhere or a rise after W_s."""
    # Rise of at least 0.85 - 0.70 = 0.15 up to W = 100; after it at most 0.96 - 0.85 = 0.11.
    text, status = _trend_claim({50: (0.6, 0.5, 0.7), 100: (0.9, 0.85, 0.95),
                                 150: (0.91, 0.86, 0.96)})
    assert status == CL.HOLDS, text
    assert ("ours (runs in run_id order) is 0.600 [0.500, 0.700], 0.900 [0.850, 0.950] and "
            "0.910 [0.860, 0.960] at W = 50, 100 and 150: it does not decrease with the window, "
            "changing by +0.300 from W = 50 to W = 100 and +0.010 from there to W = 150") in text
    assert ("the CI at W = 50 lies below the one at W = 100 (a rise of at least 0.150), and the "
            "CIs allow a gain of at most 0.110 after "
            "W = 100, so our data show this pattern.") in text
    # The same rise, but a later CI reaching higher: a gain of up to 0.15 is not below it.
    text, status = _trend_claim({50: (0.6, 0.5, 0.7), 100: (0.9, 0.85, 0.95),
                                 150: (0.95, 0.86, 1.0)})
    assert status == CL.UNRESOLVED, text
    assert "the CIs allow a gain of up to 0.150 after W = 100, no less than that" in text
    # A later CI below an earlier one: not monotone.
    text, status = _trend_claim({50: (0.6, 0.5, 0.7), 100: (0.9, 0.85, 0.95),
                                 150: (0.7, 0.6, 0.8)})
    assert status == CL.CONTRADICTED and "but the CI at W = 150 lies below the one at W = 100, " \
        "so our data rule out a rise with the window." in text
    # A CI after W_s above W_s's: still rising, not saturated.
    text, status = _trend_claim({50: (0.6, 0.5, 0.7), 100: (0.75, 0.72, 0.8),
                                 150: (0.95, 0.9, 1.0)})
    assert status == CL.CONTRADICTED and "the CI at W = 150 lies above the one at W = 100, so " \
        "our data rule out the saturation by W = 100." in text
    # Every CI overlapping every other: neither shown nor ruled out, whatever the estimates do.
    text, status = _trend_claim({50: (0.87, 0.68, 0.99), 100: (0.98, 0.95, 1.0),
                                 150: (0.99, 0.97, 1.0)})
    assert status == CL.UNRESOLVED, text
    assert ("but the CI at W = 50 overlaps the one at W = 100, so the rise to W = 100 is not "
            "shown, and "
            "the CIs allow a gain of up to 0.050 after W = 100, so the saturation is not shown "
            "either: our sweep neither shows nor rules out this pattern.") in text
    text, status = _trend_claim({25: (0.85, 0.7, 0.97), 50: (0.87, 0.68, 0.99),
                                 100: (0.98, 0.95, 1.0)})
    assert status == CL.UNRESOLVED and ("but the CIs at W = 25 and 50 overlap the one at W = 100, "
                                        "so the rise to W = 100 is not shown, and no window after "
                                        "W = 100 shows whether it saturates") in text


def test_the_window_trend_claim_with_undefined_windows_one_window_and_run_orders() -> None:
    # A NaN AUROC at a window is left out, and said; W = 50 and 100 still show the rise, but no
    # window after W = 100 is left to show the saturation.
    text, status = _trend_claim({50: (0.6, 0.5, 0.7), 100: (0.9, 0.85, 0.95), 150: None})
    assert status == CL.UNRESOLVED, text
    assert "at W = 50 and 100 (undefined at W = 150)" in text
    assert "but no window after W = 100 shows whether it saturates" in text
    text, status = _trend_claim({50: (0.6, 0.5, 0.7), 100: (0.9, float("nan"), 0.95)})
    assert status == CL.UNCHECKED and "our forecaster's AUROC at W = 100 is undefined" in text
    text, status = _trend_claim({100: (0.9, 0.85, 0.95)})
    assert status == CL.UNCHECKED and text.endswith(
        "our forecaster has an AUROC at one window only (W = 100), so it cannot be compared.")
    text, status = _trend_claim({50: (0.6, 0.5, 0.7), 150: (0.9, 0.85, 0.95)})
    assert status == CL.UNCHECKED and "our analysis has no W = 100" in text
    text, status = _trend_claim({50: (0.6, 0.5, 0.7), 100: (0.9, 0.85, 0.95)}, n_pos=1)
    assert status == CL.UNCHECKED and "with only 1 run in a class: too few" in text
    # The medians over random run orders (0.8 of [0.7, 0.75, 0.8, 0.9, 1.0]) are said, without
    # a verdict: a fall of the medians does not rule the claim out.
    multi = {50: (0.6, 0.5, 0.7), 100: (0.9, 0.85, 0.95), 150: (0.91, 0.86, 0.96)}
    text, status = _trend_claim(multi, orders={50: [0.7, 0.8, 1.0, 0.75, 0.9],
                                               100: [0.97, 0.9, 0.93, 0.95, 0.92],
                                               150: [0.5, 0.9, 0.85, 0.6, 0.88]})
    assert status == CL.HOLDS
    assert ("(its median over the 5 random run orders, 0.800, 0.930 and 0.850, is not monotone "
            "in the window)") in text
    # An order without an AUROC is left out of its median, and of the count (was "the 6 random
    # run orders" for a median of 5 at W = 100): (0.8 + 0.84) / 2, 0.95, (0.71 + 0.85) / 2.
    text, status = _trend_claim(multi, orders={50: [0.7, 0.8, 1.0, 0.75, 0.9, 0.84],
                                               100: [0.97, None, 0.93, 0.95, 0.92, 0.99],
                                               150: [0.5, 0.9, 0.85, 0.6, 0.88, 0.71]})
    assert ("(its median over the 6, 5 and 6 random run orders that have an AUROC, 0.820, 0.950 "
            "and 0.780, is not monotone in the window)") in text
    five = [0.7, None, 1.0, 0.8, float("nan"), 0.9, 0.6]  # median 0.8 of the 5 with an AUROC
    text, status = _trend_claim(multi, orders={50: five, 100: five, 150: five})
    assert ("(its median over the 5 random run orders that have an AUROC, 0.800, 0.800 and "
            "0.800, does not decrease with the window)") in text
    # Under MIN_ORDERS (5) orders with an AUROC at any window, no median is said, as in the
    # results' sentences (was a median of 4 at W = 100, of 2 below).
    text, status = _trend_claim(multi, orders={50: [0.7, 0.8, 1.0, 0.75, 0.9],
                                               100: [0.97, None, 0.93, 0.95, 0.92],
                                               150: [0.5, 0.9, 0.85, 0.6, 0.88]})
    assert "random run orders" not in text and "median" not in text
    text, status = _trend_claim(multi, orders={50: [0.7, 0.8], 100: [0.9, 0.8], 150: [0.5, 0.9]})
    assert "random run orders" not in text and "median" not in text
    text, status = _trend_claim(multi, orders={50: [0.7, 0.8], 100: [None, None], 150: [0.5, 0.9]})
    assert "random run orders" not in text  # no median at W = 100: none is said



def test_the_reference_s_cross_window_claims_are_checked_from_its_file(tmp_path: Path) -> None:
    """Both claims of the reference's Discussion read their windows from reference_paper.json."""
    claims = CL.reference_claims(write_synthetic_results(tmp_path), CTX.load_reference(), 200)
    whats = [w for w, _, _ in claims]
    assert "loss-related signals leading at small W, accuracy-related ones at larger W" in whats
    assert any(w.startswith("the forecaster's AUROC rising with W and saturating by W = ")
               for w in whats)


def test_baseline_windows_and_max_accuracy_sentences() -> None:
    def cell(d: dict, multi: float, loss: float, acc: float) -> dict:
        return {"diff_val_loss": d, "multi": {"auroc": multi}, "val_loss": {"auroc": loss},
                "max_val_acc_in_window": acc}

    entry = {"windows": {"100": cell(diff(-0.1, -0.3, 0.0, 0.9), 0.87, 0.98, 0.05),
                         "200": cell(diff(0.2, 0.1, 0.3, 0.001), 0.95, 0.75, 0.26),
                         "500": cell(diff(-0.2, -0.3, -0.1, 1.0), 0.70, 0.90, 0.94)}}
    assert S.baseline_windows_sentence(entry, [100, 200, 500]) == (
        "The forecaster is significantly better than the val-loss baseline at W = 200 and "
        "significantly worse at W = 500; the val-loss feature alone scores higher than the "
        "forecaster at W = 100 (0.980 against 0.870) and W = 500 (0.900 against 0.700).")
    none = {"windows": {"200": cell(diff(0.0, -0.1, 0.1, 0.5), 0.9, 0.9, 0.2),
                        "300": cell(diff(0.0, -0.1, 0.1, 0.5), 0.9, 0.9, 0.2)}}
    assert S.baseline_windows_sentence(none, [200, 300]) == (
        "The forecaster is significantly better than the val-loss baseline at none of the 2 windows.")
    assert S.baseline_windows_sentence(none, [200]) == (
        "The forecaster is not significantly better than the val-loss baseline at W = 200.")
    assert S.baseline_windows_sentence({"windows": {"200": cell(None, 0.9, 0.9, 0.2)}}, [200]) == ""
    one_worse = {"windows": {"200": cell(diff(-0.2, -0.3, -0.1, 1.0), 0.7, 0.9, 0.2)}}
    assert S.baseline_windows_sentence(one_worse, [200]) == (
        "The forecaster is significantly worse than the val-loss baseline at W = 200; the "
        "val-loss feature alone scores higher than the forecaster at W = 200 (0.900 against 0.700).")
    # Higher by less than the printed digits: printed to the digit that shows it (was "0.979
    # against 0.979"); higher by float error only (0.1 + 0.2 against 0.3): not higher.
    close = {"windows": {"200": cell(diff(0.0, -0.1, 0.1, 0.5), 0.97891, 0.97894, 0.2),
                         "300": cell(diff(0.0, -0.1, 0.1, 0.5), 0.3, 0.1 + 0.2, 0.2)}}
    assert S.baseline_windows_sentence(close, [200, 300]).endswith(
        "the val-loss feature alone scores higher than the forecaster at W = 200 (0.97894 "
        "against 0.97891).")
    assert plain(S.max_accuracy_sentence(entry, [100, 200, 500])) == (
        "The largest validation accuracy of any run before step W is 5.0%, 26.0% and 94.0% at "
        "W = 100, 200 and 500.")


def test_pair_wording_follows_the_rule_figure_5_applied(tmp_path: Path) -> None:
    weak, fallback = CTX._Pair("a and b", True), CTX._Pair("a and b", False)
    assert CTX._pair_rule(weak) == "the strongest pair with |ρ| < 0.5"
    assert CTX._pair_rule(fallback).startswith("no pair has |ρ| < 0.5, so the least correlated")
    facts = CTX._Facts.read(write_synthetic_results(tmp_path))
    assert CTX._captions(facts, fallback)["fig5"].endswith("(the case here).")
    assert not CTX._captions(facts, weak)["fig5"].endswith("(the case here).")
    none = CTX._Pair("no two non-constant features", None)
    assert CTX._captions(facts, none)["fig5"].endswith("(here no two vary).")
    assert "no two features vary over the runs" in CTX._results(facts, none)["pair"]


def _grid_runs(labels_by_cell: dict[tuple[float, float], list[int]]) -> tuple[list, list]:
    runs, labels = [], []
    for (f, wd), ys in labels_by_cell.items():
        for y in ys:
            runs.append({"train_frac": f, "weight_decay": wd})
            labels.append(y)
    return runs, labels


def test_grid_sentence_branches() -> None:
    rises = grid(*_grid_runs({(0.3, 1.0): [0, 0], (0.3, 10.0): [1, 0], (0.6, 1.0): [0, 0],
                              (0.6, 10.0): [1, 1]}))
    assert rises == ("The grokking rate rises with λ (0/4 at λ = 1, 3/4 at λ = 10); "
                     "the grokking rate rises with f (1/4 at f = 0.3, 2/4 at f = 0.6).")
    bumpy = grid(*_grid_runs({(0.3, 0.3): [0], (0.3, 1.0): [1], (0.3, 3.0): [0]}))
    assert bumpy == ("The grokking rate is not monotone in λ "
                     "(0/1 at λ = 0.3, 1/1 at λ = 1, 0/1 at λ = 3).")
    flat_then_up = grid(*_grid_runs({(0.3, 0.3): [0], (0.3, 1.0): [0], (0.3, 3.0): [1]}))
    assert flat_then_up.startswith("The grokking rate never falls as λ grows (0/1 at λ = 0.3")
    flat_then_down = grid(*_grid_runs({(0.3, 1.0): [1], (0.4, 1.0): [0], (0.5, 1.0): [0]}))
    assert flat_then_down.startswith("The grokking rate never rises as f grows")
    falls = grid(*_grid_runs({(0.3, 1.0): [1], (0.6, 1.0): [0]}))
    assert "falls with f" in falls
    flat = grid(*_grid_runs({(0.3, 1.0): [0], (0.6, 1.0): [0]}))
    assert "does not change with f" in flat


def test_small_sample_sentence_and_signal_family() -> None:
    assert small_sample(10, 38, "0.9") == ""
    assert "only 1 grokking run " in small_sample(1, 7, "0.9")
    assert [S.signal_family(n) for n in ("log_end_val_loss", "end_acc_gap", "end_param_norm")] == [
        "loss", "accuracy", "other"]
    # The paper sweep at W = 500: two accuracy features lead, three tied val-loss transforms
    # follow; the sentence said "mostly loss-related".
    names = ["end_val_acc", "end_acc_gap", "end_val_loss", "min_val_loss", "log_end_val_loss"]
    assert S.families_clause(names) == ("led by an accuracy feature (3 loss-related, "
                                        "2 accuracy-related)")
    assert S.families_clause(["end_param_norm", "end_val_loss"]) == (
        "led by a non-loss, non-accuracy feature (1 loss-related, 1 neither loss- nor "
        "accuracy-related)")
    assert S.families_clause(names[2:]) == "all 3 loss-related"


def test_calibration_sentence_compares_with_base_rate() -> None:
    good = calibration([0.9, 0.1, 0.1, 0.1], [1, 0, 0, 0], 200)
    # Brier 0.01 vs base rate 0.25: 0.25 * 0.75 = 0.1875.
    assert "0.010" in good and ", below the 0.188" in good  # 0.25 * 0.75, computed
    bad = calibration([0.1, 0.9, 0.9, 0.9], [1, 0, 0, 0], 200)
    assert "not below" in bad
    # Brier (0.5² + 0.4999²) / 2 = 0.249950005 against the base rate's 0.5 · 0.5 = 0.25: below
    # it, and both were printed "0.250" beside "below".
    near = calibration([0.5, 0.4999], [1, 0], 200)
    assert "is 0.24995, below the 0.25000 of always predicting the base rate 0.500." in near


# ---------------------------------------------------------------------------- the PDF

@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, list[str]]:
    root = tmp_path_factory.mktemp("results")
    analysis = write_synthetic_results(root)
    pdf = R.render_paper(root, root / "out")
    pages = [p.extract_text() for p in PdfReader(pdf).pages]
    return analysis, pdf, pages


def expected_page_range(fig_dir: Path) -> tuple[int, int]:
    """Bounds on the page count from what the paper must hold.

    Lower: the six figures at their printed size (text width, figure 5 at 75%) plus two
    28-row tables fill at least this many A4 text areas, plus the title page and the
    appendix, which starts on a new page. Upper: that plus four pages of prose.
    """
    text_w, text_h = 21.0 - 4.4, 29.7 - 4.6  # cm, the template's A4 margins
    height = 0.0
    for name, scale in (("fig1_accuracy", 1), ("fig2_grid", 1), ("fig3_features", 1),
                        ("fig4_windows", 1), ("fig5_pair", 0.75), ("fig6_reliability", 1)):
        box = PdfReader(fig_dir / f"{name}.pdf").pages[0].mediabox
        height += text_w * scale * float(box.height) / float(box.width)
    height += 2 * 28 * 0.36  # two 28-row tables at 8 pt, ~0.36 cm a row
    low = math.ceil(height / text_h) + 2
    return low, low + 4


def test_render_paper_page_count_and_structure(rendered: tuple) -> None:
    analysis, pdf, pages = rendered
    low, high = expected_page_range(pdf.parent.parent / "figures")
    assert low <= len(pages) <= high, (low, len(pages), high)
    assert "Forecasting Grokking" in pages[0] and "Abstract" in pages[0]
    text = canon("\n".join(pages))
    for k in range(1, 7):
        assert text.count(canon(f"Figure {k}:")) == 1, k
    for k in (1, 2, 3):
        assert text.count(canon(f"Table {k}:")) == 1, k
    # The appendix starts on a fresh page.
    start = next(i for i, p in enumerate(pages) if "Univariate predictors" in p)
    assert canon(pages[start]).startswith(canon("A Univariate predictors"))
    assert "Reproduction" in "".join(pages[start:])


def test_figure_3_names_the_univariate_table_by_its_number_in_the_paper(tmp_path: Path) -> None:
    """With the early-stopping study, its table is Table 3 and the univariate one Table 4:
    figure 3's caption named the latter 'Table 3' (its file's name, table3.md)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    write_synthetic_results(tmp_path)
    study = tmp_path / "early_stop"
    study.mkdir()
    policy = {"param_name": "fraction_stopped", "param": 0.5, "saved": 0.49, "recall": 1.0,
              "n_stopped": 24, "n_wrongly_stopped": 0}
    summary = {"window": 200, "label_threshold": 0.9, "min_recall": 0.9, "n_runs": 48, "n_grok": 8,
               "forecaster": {**policy, "param_name": "threshold", "param": 0.4989},
               "median": {"median_val_loss": policy}}
    (study / "early_stop.json").write_text(json.dumps({"summary": summary}))
    fig, ax = plt.subplots(figsize=(4, 2))
    fig.savefig(study / "early_stop.pdf")
    plt.close(fig)
    pages = [p.extract_text() for p in PdfReader(R.render_paper(tmp_path, tmp_path / "out")).pages]
    text = canon("\n".join(pages))
    numbers = {caption: re.findall(r"Table(\d+):" + canon(caption), text)
               for caption in ("Stopping policies", "Per-feature AUROC and folded AUROC")}
    assert numbers == {"Stopping policies": ["3"], "Per-feature AUROC and folded AUROC": ["4"]}
    assert canon("goes to the feature listed first in Table 4)") in text


def test_render_paper_prints_the_numbers_of_analysis_json(rendered: tuple) -> None:
    analysis, pdf, pages = rendered
    text = canon("\n".join(pages))
    for key in ("0.9", "0.99"):
        t = analysis["thresholds"][key]
        assert canon(f"{t['n_pos']}/48") in text
        for w, cell in t["windows"].items():
            for series in ("multi", "val_loss", "val_acc"):
                assert canon(est(cell[series])) in text, (key, w, series)
            for d in ("diff_val_loss", "diff_val_acc"):
                row = f"{est(cell[d], 'diff', signed=True)} {pv(cell[d]['p_one_sided'])}"
                assert canon(row) in text, (key, w, d)
    cell = analysis["thresholds"]["0.9"]["windows"]["200"]
    uni = cell["univariate"]
    for name, entry in uni.items():
        assert canon(f"{name} {f3(entry['auroc'])} {f3(entry['folded'])}") in text, name
    assert canon(f"{100 * cell['max_val_acc_in_window']:.1f}%") in text
    assert canon("20.6 min") in text  # sweep.train_seconds = 1234.5
    assert canon("48 runs") in text
    assert canon("matrix products in fp32") in text  # the synthetic config has no precision key
    # The synthetic W = 200 comparison: CI above zero vs the val-loss baseline, not vs val acc.
    # Read from the paper's source: in the PDF's text a figure can fall inside a sentence.
    source = context_source(pdf)
    assert canon("significantly outperforms the val-loss baseline") in source
    assert canon("ahead of the val-accuracy baseline, but the 95% CI of the difference "
                 "includes zero") in source


def test_render_paper_writes_sources_and_tables(rendered: tuple) -> None:
    analysis, pdf, pages = rendered
    out = pdf.parent
    assert pdf.name == "paper.pdf" and pdf.read_bytes().startswith(b"%PDF")
    for k in (1, 2, 3):
        assert (out / f"table{k}.tex").read_text() == \
            (out.parent / f"table{k}.tex").read_text()
    ctx = json.loads((out / "paper-src" / "context.json").read_text())
    assert ctx["repro"]["counts"][0] == ["0.9", "10/48", "10/48"]
    assert all((out / "paper-src" / p).is_file() for p in ctx["figures"].values())


def test_reference_values_only_in_reproduction_appendix(rendered: tuple) -> None:
    """The reference's numbers that differ from ours appear after the appendix starts only."""
    analysis, pdf, pages = rendered
    ref = CTX.load_reference()
    start = next(i for i, p in enumerate(pages) if "Univariate predictors" in p)
    body = canon("".join(pages[:start]))
    ours = canon("".join(pages[start:]))
    ref_cell = ref["tables"]["0.9"]["100"]["val_loss"]
    assert canon(f"{f3(ref_cell[0])} [{f3(ref_cell[1])}, {f3(ref_cell[2])}]") in ours
    assert canon(f"[{f3(ref_cell[1])}, {f3(ref_cell[2])}]") not in body
    # Each checkable claim is stated in the appendix; the Discussion only counts them.
    claims = CL.reference_claims(analysis, ref, 200)
    assert claims and canon(f"Of the {len(claims)} claims of the reference paper") in body
    verdicts = re.findall(r"(Does\s+not\s+hold\.|Holds\.|Cannot\s+be\s+checked\s+here\.|"
                          r"Neither\s+shown\s+nor\s+ruled\s+out\.|"
                          r"Its\s+size\s+is\s+ruled\s+out,\s+not\s+its\s+sign\.)",
                          "".join(pages[start:]))
    assert len(verdicts) == len(claims)


def test_render_paper_reports_the_run_orders_when_analysed_with_them(tmp_path: Path) -> None:
    analysis = write_synthetic_results(tmp_path)
    analysis["settings"]["orders"] = 5
    for t in analysis["thresholds"].values():
        for cell in t["windows"].values():
            a = cell["multi"]["auroc"]
            cell["multi_by_order"] = [a - 0.05, a - 0.01, a, a + 0.005, a + 0.01]
    (tmp_path / "analysis.json").write_text(json.dumps(analysis), encoding="utf-8")
    pdf = R.render_paper(tmp_path, tmp_path / "out")
    context = json.loads((pdf.parent / "paper-src" / "context.json").read_text(encoding="utf-8"))
    source = canon(plain(json.dumps(context, ensure_ascii=False)))
    assert canon("to show how much, the evaluation below is repeated with the runs in 5 random "
                 "orders") in source
    cells = analysis["thresholds"]["0.9"]["windows"]
    spans = [f"{f3(c['multi']['auroc'] - 0.05)}–{f3(c['multi']['auroc'] + 0.01)} (median "
             f"{f3(c['multi']['auroc'])})" for c in cells.values()]
    assert canon("With the runs in 5 random orders instead of run_id order") in source
    assert canon(S._and_list(spans)) in source
    assert canon("its median over the random orders") in source


def test_render_paper_with_single_class_threshold(tmp_path: Path) -> None:
    write_synthetic_results(tmp_path, single_class=True)
    pages = [p.extract_text() for p in PdfReader(R.render_paper(tmp_path)).pages]
    text = canon("\n".join(pages))
    assert canon("the robustness check cannot be made") in text


def test_early_stop_section_only_when_the_study_ran(tmp_path):
    import json

    from grokcast.paper.context import early_stop_context

    assert early_stop_context(tmp_path / "early_stop") is None
    policy = {"param_name": "fraction_stopped", "param": 0.5, "saved": 0.49, "recall": 1.0,
              "n_stopped": 24, "n_wrongly_stopped": 0}
    summary = {"window": 200, "label_threshold": 0.9, "min_recall": 0.9, "n_runs": 48,
               "n_grok": 8, "forecaster": {**policy, "param_name": "threshold",
                                           "param": 0.4989, "saved": 0.677, "n_stopped": 33},
               "same_budget": {"asha_val_loss": {**policy, "saved": 0.666, "recall": 0.875,
                                                 "n_wrongly_stopped": 1}},
               "median": {"median_val_loss": policy}}
    (tmp_path / "early_stop").mkdir()
    (tmp_path / "early_stop" / "early_stop.json").write_text(json.dumps({"summary": summary}))
    ctx = early_stop_context(tmp_path / "early_stop")
    assert "saves 67.7% of all training steps" in ctx["text"] and "8 of them" in ctx["text"]
    # ASHA's saving is the nearest its keep fractions reach, not the forecaster's: not called equal.
    assert ("successive halving at the keep fraction whose saving is closest to it"
            in ctx["text"]) and "at the budget of the forecaster" not in ctx["text"]
    assert ctx["rows"][0] == ("forecaster, P(grok) below 0.4989", "67.7%", "100.0%", "0")
    assert ctx["rows"][1] == ("successive halving (ASHA-style) on val loss", "66.6%", "87.5%", "1")
    assert len(ctx["rows"]) == 3
    # A τ chosen on the outcomes is called optimistic; one fixed in advance is said to be.
    assert "chosen with these runs' outcomes, an optimistic operating point" in ctx["text"]
    (tmp_path / "early_stop" / "early_stop.json").write_text(json.dumps(
        {"summary": {**summary, "tau": "fixed"}}))
    fixed_ctx = early_stop_context(tmp_path / "early_stop")
    fixed = fixed_ctx["text"]
    assert ("At a threshold fixed in advance, P(grok) below 0.4989, the forecaster stops 33 runs "
            "and saves 67.7% of all training steps") in fixed and "optimistic" not in fixed
    # Was one caption for every τ: "the threshold was chosen to keep" a fixed one too.
    assert fixed_ctx["caption"].endswith(
        "The dotted line is the share of grokkers (90%) that the operating point chosen with "
        "these runs' outcomes keeps (see the text); the labelled point is the forecaster at the "
        "fixed threshold τ.")
    assert "was chosen to keep; the labelled point is the forecaster at that threshold τ." in \
        ctx["caption"]
    # Chosen on the training runs (the study's default): said so, the optimistic τ beside it.
    (tmp_path / "early_stop" / "early_stop.json").write_text(json.dumps(
        {"summary": {**summary, "tau": "chosen on training runs",
                     "on_outcomes": {**policy, "param_name": "threshold", "param": 0.1303,
                                     "saved": 0.674, "n_stopped": 33}}}))
    trained = early_stop_context(tmp_path / "early_stop")["text"]
    assert ("At a threshold chosen before these runs were seen, from the training runs' "
            "cross-validated P(grok) so as to keep 90% of their grokkers, P(grok) below 0.4989, "
            "the forecaster stops 33 runs") in trained
    assert ("Chosen with these runs' outcomes instead, an optimistic operating point, the "
            "threshold (P(grok) below 0.1303) would save 67.4% and keep 100.0%.") in trained
    assert "left out" not in trained and "fewer than" not in trained
    # Fewer grokkers kept than τ was chosen to keep, and runs without an outcome: both said
    # (as format_summary says them; the paper left them out).
    (tmp_path / "early_stop" / "early_stop.json").write_text(json.dumps(
        {"summary": {**summary, "tau": "chosen on training runs", "n_excluded": 2,
                     "forecaster": {**summary["forecaster"], "recall": 0.75}}}))
    short = early_stop_context(tmp_path / "early_stop")["text"]
    assert "(8 of them grok at val acc ≥ 0.9; 2 more, diverged or stopped early, have no " \
           "known outcome and are left out)" in short
    assert "keeping 75.0% of the grokking runs, fewer than the 90% it was chosen to keep." \
        in plain(short)


# ---------------------------------------------------------------------------- degenerate sweeps

def _context_of_sweep(tmp_path: Path, runs, log, edit=None, **kwargs) -> dict:
    """The paper's text for a sweep analysed by grokcast.analysis (no PDF: no typst needed);
    ``edit(analysis)`` may change analysis.json first."""
    from test_analysis import standin

    from grokcast import analysis as A
    from grokcast import figures as F
    from grokcast.config import SweepConfig

    config = SweepConfig(name="degenerate", train_fracs=(0.3, 0.6), weight_decays=(1.0,),
                         seeds=tuple(range(11)))
    A.write_results(A.analyze(runs, log, config, **{"windows": (100, 200), "n_resamples": 50,
                                                    "seed": 0, "predict_fn": standin, **kwargs}),
                    tmp_path)
    if edit is not None:
        path = tmp_path / "analysis.json"
        analysis = json.loads(path.read_text())
        edit(analysis)
        path.write_text(json.dumps(analysis))
    return json.loads(json.dumps(CTX.build_context(F.load_results(tmp_path))))


def test_one_threshold_one_window_kfold_and_reversed_thresholds_are_worded_as_analysed(tmp_path):
    """Found in review: one threshold cited the absent robustness table (Typst failed) and "the
    strict threshold n/a"; one window repeated the discussion's first sentence; the thresholds
    were called strict and relaxed by position; figure 4 said LOO after a 10-fold analysis."""
    from test_analysis import synthetic_sweep

    one = _context_of_sweep(tmp_path / "one", *synthetic_sweep(), thresholds=(0.9,), windows=(100,))
    assert "@tab:robust" not in one["robustness"] and "n/a" not in plain(
        one["setup"]["label"])
    first = plain(one["discussion"][0])
    assert first and first.count(first[:40]) == 1
    # Nor does the discussion repeat the results section's sentences (it repeated three of
    # them word for word; found in a review of the rendered PDF).
    full = _context_of_sweep(tmp_path / "full", *synthetic_sweep())
    results = plain(" ".join([full["main_result"], full["univariate"], full["robustness"]]))
    said = [s for p in full["discussion"] for s in plain(p).split(". ") if len(s) > 30]
    assert said and not [s for s in said if s in results]
    swapped = _context_of_sweep(tmp_path / "swap", *synthetic_sweep(), thresholds=(0.5, 0.9))
    assert "The strict threshold 0.9" in plain(swapped["setup"]["label"])
    assert "relaxed" not in plain(" ".join(swapped["discussion"]))
    relaxed = _context_of_sweep(tmp_path / "rel", *synthetic_sweep(), thresholds=(0.9, 0.5))
    assert "The relaxed threshold 0.5" in plain(relaxed["setup"]["label"])
    assert "strict" not in plain(relaxed["setup"]["label"] + relaxed["captions"]["fig4"])

    def kfold(analysis: dict) -> None:
        for entry in analysis["thresholds"].values():
            entry["cv"] = "10-fold"

    assert plain(_context_of_sweep(tmp_path / "kf", *synthetic_sweep(), edit=kfold)["captions"][
        "fig4"]).startswith("Multivariate forecaster (10-fold)")


def test_a_sweep_with_a_diverged_run_is_counted_as_trained_and_its_grid_named(tmp_path):
    """The abstract and setup counted only the analysed runs as the sweep (15 of a 16-run grid)
    and always said the sweep varied the training fraction, weight decay and seed."""
    from test_analysis import N_RUNS, synthetic_sweep

    ctx = _context_of_sweep(tmp_path, *synthetic_sweep())  # 20 runs + 1 diverged, one λ
    n_pos = sum(r % 3 == 0 for r in range(N_RUNS))
    abstract = plain(ctx["abstract"])
    assert f"On a sweep of {N_RUNS + 1} runs" in abstract
    assert "varying the training fraction and seed," in abstract  # one weight decay
    assert f"{n_pos} of the {N_RUNS} runs with a known outcome reach" in abstract
    assert f": {N_RUNS + 1} runs, matrix products" in plain(ctx["setup"]["training"])
    assert "1 diverged run(s) were left out" in plain(ctx["setup"]["training"])
    # Figure 1 draws the analysed runs only: was "all 20 runs" of a 21-run sweep.
    known = f"the {N_RUNS} runs with a known outcome (of {N_RUNS + 1} trained)"
    assert plain(ctx["captions"]["fig1"]).startswith(
        f"Train (left) and validation (right) accuracy of {known} against step")
    assert f"train and validation accuracy of {known}, and" in plain(ctx["phase"])
    assert f"Out of those, {n_pos} grokked" in plain(ctx["phase"])


def test_a_sweep_without_its_config_has_no_step_budget_in_common_with_a_reference_without_one(
        tmp_path):
    """Two step budgets not recorded were read as the same: the appendix said the sweep had the
    reference's, then failed on formatting the missing one (TypeError; found by mypy)."""
    from test_analysis import N_RUNS, synthetic_sweep

    from grokcast import figures as F

    def no_config(analysis: dict) -> None:
        analysis["sweep"]["config"] = None

    _context_of_sweep(tmp_path, *synthetic_sweep(), edit=no_config)
    reference = {k: v for k, v in CTX.load_reference().items() if k != "n_steps"}
    reference["n_runs"] = N_RUNS + 1  # the sweep's size, its diverged run included
    intro = plain(CTX.build_context(F.load_results(tmp_path), reference)["repro"]["intro"])
    assert f"Our sweep differs from the reference's ({N_RUNS + 1} vs {N_RUNS + 1} runs" in intro


def _strings(x) -> list[str]:
    """Every string in a nested dict/list, for checks of the whole context."""
    if isinstance(x, str):
        return [x]
    items = x.values() if isinstance(x, dict) else x if isinstance(x, list) else []
    return [s for item in items for s in _strings(item)]


def test_a_sweep_without_its_config_is_described_without_the_settings_it_does_not_know(tmp_path):
    """analysis.json with sweep.config null (analyze(config=None)) printed "addition modulo
    None", "d_model = None, None heads", "β1 = None", "chance 1/None", "the 0-step budget" and
    "0 vs 10,000 steps" (found in review)."""
    from test_analysis import synthetic_sweep

    def no_config(analysis: dict) -> None:
        analysis["sweep"]["config"] = None

    ctx = _context_of_sweep(tmp_path, *synthetic_sweep(), edit=no_config)
    text = " ".join(plain(s) for s in _strings(ctx))
    for unknown in ("None", "f ∈ {}", "seeds {}", "chance 1/"):
        assert unknown not in text, unknown
    assert not re.search(r"(?<![\d,])0(-step| vs)", text)  # an unknown step count as 0
    assert "one-layer transformer on modular addition, " in plain(ctx["abstract"])
    assert plain(ctx["setup"]["task"]).startswith("Modular addition; the modulus, split and "
                                                  "training fractions are not recorded")
    assert "21 runs" in plain(ctx["setup"]["training"])
    assert "the step budgets not both recorded" in plain(ctx["repro"]["intro"])
    assert "The regime is small: one modulus," in plain(" ".join(ctx["limitations"]))


def test_a_sweep_where_no_run_groks_claims_no_cis_and_no_informative_features(tmp_path):
    from test_analysis import synthetic_sweep

    runs, log = synthetic_sweep()
    runs = runs.assign(max_val_acc=np.minimum(runs["max_val_acc"], 0.5))
    ctx = _context_of_sweep(tmp_path, runs, log)
    text = plain(json.dumps(ctx, ensure_ascii=False))
    assert "all of one class at threshold 0.9, no AUROC, CI or p-value exists" in text
    assert "close to degenerate" not in text
    assert "no feature's AUROC is defined" in plain(ctx["pair"])
    # The rule ranked by name, not by AUROC: said so, not "the strongest pair" (found in review).
    assert "so the first pair in name order with |ρ| < 0.5" in plain(ctx["pair"])
    assert "strongest pair" not in plain(ctx["pair"])
    assert "the features were taken in name order." in plain(ctx["captions"]["fig5"])
    assert "ours is undefined: every run has the same label." in text
    assert "0 runs in a class" not in text


def test_an_undefined_auroc_with_both_classes_is_not_blamed_on_a_single_label_class(tmp_path):
    """An analysis.json whose forecaster AUROC (and so its differences) is null at the headline
    window while both classes are present: the abstract and results said "every run has the
    same label" beside their own count of grokking runs."""
    from test_analysis import synthetic_sweep

    def undefined(a: dict) -> None:
        cell = a["thresholds"]["0.9"]["windows"]["200"]
        cell["multi"] = {"auroc": None, "ci": [None, None]}
        for name in ("diff_val_loss", "diff_val_acc"):
            cell[name] = {"diff": None, "ci": [None, None], "p_one_sided": None}

    ctx = _context_of_sweep(tmp_path, *synthetic_sweep(), edit=undefined)
    abstract, results = plain(ctx["abstract"]), plain(ctx["main_result"])
    assert "At W = 200 the forecaster's AUROC is undefined. " in abstract
    assert ("At W = 200 the multivariate forecaster cannot be compared with the val-loss "
            "baseline: the difference is undefined, and it cannot be compared with the "
            "val-accuracy baseline: the difference is undefined.") in results
    assert "same label" not in abstract + results and "single class" not in results


def test_a_damaged_early_stop_json_is_named(tmp_path):
    from grokcast.paper.context import early_stop_context

    (tmp_path / "early_stop").mkdir()
    path = tmp_path / "early_stop" / "early_stop.json"
    for text in ("{}", '{"summary": {"forecaster": {"param": 0.5}}}', "not json"):
        path.write_text(text)
        with pytest.raises(ValueError, match=r"early_stop.json' is not an early_stop.json written "
                                             r"by grokcast early-stop-study \("):
            early_stop_context(tmp_path / "early_stop")


def test_a_study_of_a_forecaster_fit_on_another_sweep_is_refused(tmp_path):
    """Was: a results directory analysed again from another sweep (or a reproduce output whose
    sweep was deleted and trained anew) kept its early_stop/ from the old sweep, and the paper
    described that study as this sweep's, exit 0."""
    from grokcast import figures as F

    analysis = write_synthetic_results(tmp_path)
    policy = {"param_name": "threshold", "param": 0.5, "saved": 0.5, "recall": 1.0,
              "n_stopped": 24, "n_wrongly_stopped": 0}
    summary = {"window": 200, "label_threshold": 0.9, "min_recall": 0.9, "n_runs": 48,
               "n_grok": 8, "forecaster": policy, "same_budget": {}, "median": {}}
    F.save_figure(lambda: F.plt.figure(), tmp_path / "early_stop", "early_stop")
    path = tmp_path / "early_stop" / "early_stop.json"
    own = analysis["sweep"]["hash"]
    for fit_on in (own, None):  # this sweep's study, and one that predates the record: drawn
        provenance = {} if fit_on is None else {"train_sweep_hash": fit_on}
        path.write_text(json.dumps({"summary": summary, "provenance": provenance}))
        assert CTX.build_context(F.load_results(tmp_path))["early_stop"] is not None
    other = "f" * 64
    path.write_text(json.dumps({"summary": summary, "provenance": {"train_sweep_hash": other}}))
    with pytest.raises(ValueError, match=(
            rf"early_stop.json' is a study of a forecaster fit on another sweep \(hash ffffffffffff\) "
            rf"than the one analysed here \({own[:12]}\): run it again")):
        R.render_paper(tmp_path)
    assert not (tmp_path / "paper.pdf").exists()


def test_render_paper_refuses_an_early_stop_that_is_not_a_bool(tmp_path):
    """A string such as "no" is truthy: it would give the paper the section it declines."""
    write_synthetic_results(tmp_path)
    with pytest.raises(ValueError, match=r"^early_stop='no' is not allowed: expected True or False$"):
        R.render_paper(tmp_path, early_stop="no")
    assert not (tmp_path / "paper.pdf").exists()


def test_an_out_that_is_a_file_is_named(tmp_path):
    """Was "'<file>/paper-src/figures': not a directory"."""
    write_synthetic_results(tmp_path / "r")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"out='.*file' is not allowed: it is a file; expected "
                                         r"the directory"):
        R.render_paper(tmp_path / "r", tmp_path / "file")


# ------------------------------------------------------------------ figures kept or redrawn

def _count_draws(monkeypatch) -> list:
    """The calls render_paper makes to make_figures from now on (each still draws)."""
    from grokcast import figures as F

    calls: list = []
    draw = F.make_figures

    def counted(*args, **kwargs):
        calls.append(args)
        return draw(*args, **kwargs)

    monkeypatch.setattr(F, "make_figures", counted)
    return calls


def _set_mtime(path: Path, t: float) -> None:
    os.utime(path, (t, t))


def _figure_bytes(fig_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(fig_dir.glob("fig*.pdf"))}


def test_figures_of_another_analysis_are_redrawn_whatever_their_times(tmp_path, monkeypatch):
    """Was: render_paper redrew the figures only when one was older than analysis.json, so an
    analysis.json copied in with an older time (cp -p, a git checkout, a restored backup) kept
    the figures of the analysis before it, and the paper printed the new numbers beside them."""
    from grokcast import figures as F

    root = tmp_path / "r"
    analysis = write_synthetic_results(root)
    F.make_figures(root)
    old = _figure_bytes(root / "figures")
    # Figure 6 draws the held-out probabilities: another analysis of the same runs.
    for cell in analysis["thresholds"]["0.9"]["windows"].values():
        cell["loo_proba"] = [1 - p for p in cell["loo_proba"]]
    (root / "analysis.json").write_text(json.dumps(analysis))
    oldest = min(p.stat().st_mtime for p in (root / "figures").iterdir())
    _set_mtime(root / "analysis.json", oldest - 3600)
    F.make_figures(root, tmp_path / "fresh")  # what this analysis's figures are
    fresh = _figure_bytes(tmp_path / "fresh")
    assert fresh["fig6_reliability.pdf"] != old["fig6_reliability.pdf"]
    calls = _count_draws(monkeypatch)
    R.render_paper(root, tmp_path / "out")
    assert len(calls) == 1
    assert _figure_bytes(root / "figures") == fresh
    assert _figure_bytes(tmp_path / "out" / "paper-src" / "figures") == fresh


def test_figures_of_this_analysis_and_grokcast_are_kept_whatever_their_times(tmp_path,
                                                                             monkeypatch):
    """Not redrawn while what they were drawn from is unchanged, even under an analysis.json
    newer than they are; redrawn once grokcast's version, an input file or a figure changes."""
    import grokcast
    from grokcast import figures as F

    root = tmp_path / "r"
    write_synthetic_results(root)
    F.make_figures(root)
    figs = root / "figures"
    stamp = {p.name: p.stat().st_mtime_ns for p in figs.iterdir()}
    newest = max(p.stat().st_mtime for p in figs.iterdir())
    _set_mtime(root / "analysis.json", newest + 3600)
    calls = _count_draws(monkeypatch)
    R.render_paper(root, tmp_path / "out")
    R.render_paper(root, tmp_path / "out")
    assert calls == []
    assert {p.name: p.stat().st_mtime_ns for p in figs.iterdir()} == stamp
    monkeypatch.setattr(grokcast, "__version__", "999.0")  # another grokcast drew them
    R.render_paper(root, tmp_path / "out")
    assert len(calls) == 1
    R.render_paper(root, tmp_path / "out")
    assert len(calls) == 1
    # curves.parquet, not only analysis.json: figure 1 draws it
    curves = pd.read_parquet(root / "curves.parquet")
    curves["val_acc"] = curves["val_acc"] * 0.5
    curves.to_parquet(root / "curves.parquet", index=False)
    R.render_paper(root, tmp_path / "out")
    assert len(calls) == 2
    # A figure replaced by hand (or cut short by another program) is drawn again too.
    (figs / "fig3_features.pdf").write_bytes(b"%PDF-1.4 not the figure")
    R.render_paper(root, tmp_path / "out")
    assert len(calls) == 3 and (figs / "fig3_features.pdf").read_bytes() != b"%PDF-1.4 not the figure"


def test_figures_without_a_manifest_are_redrawn(tmp_path, monkeypatch):
    """A results directory from a grokcast before figures.json: figures newer than
    analysis.json, which the old rule kept, whoever drew them."""
    from grokcast import figures as F

    root = tmp_path / "r"
    write_synthetic_results(root)
    F.make_figures(root)
    (root / "figures" / F.MANIFEST).unlink()
    newest = max(p.stat().st_mtime for p in (root / "figures").iterdir())
    _set_mtime(root / "analysis.json", newest - 3600)
    calls = _count_draws(monkeypatch)
    R.render_paper(root, tmp_path / "out")
    assert len(calls) == 1 and F.figures_current(root, root / "figures")
    R.render_paper(root, tmp_path / "out")
    assert len(calls) == 1


def test_a_custom_predictor_is_not_described_as_the_papers_logistic_regression(tmp_path):
    """Found in review: analyze(predict_fn=...) was captioned and described as the internal-CV
    logistic regression."""
    from test_analysis import synthetic_sweep

    ctx = _context_of_sweep(tmp_path, *synthetic_sweep())  # predict_fn=standin
    text = plain(" ".join([ctx["method"], ctx["abstract"], ctx["tables"]["main"]["caption"]]))
    assert "logistic regression" not in text and "3-fold" not in text
    assert text.count("a custom predictor (standin) given to the analysis") == 3
    table = (tmp_path / "table1.md").read_text()
    assert "multi: custom predictor standin, its held-out predictions;" in table
    assert "logistic regression" not in table


def test_render_paper_compares_the_forecaster_with_the_hyperparameter_baselines(
        tmp_path: Path) -> None:
    """The Limitations give the baselines known before training where the analysis holds them
    (an analysis.json from before them, as the other tests', renders without the sentence)."""
    analysis = write_synthetic_results(tmp_path)
    analysis["settings"]["hyperparam_axes"] = ["train_frac", "weight_decay"]
    for t in analysis["thresholds"].values():
        for cell in t["windows"].values():
            if cell.get("multi") is None:
                continue
            a = cell["multi"]["auroc"]
            diff = {"diff": a - 0.8, "ci": [a - 0.9, a - 0.7], "p_one_sided": 0.01,
                    "ties": 0.0, "n_resamples": 2000}
            cell["axis_scores"] = {
                "train_frac": {"auroc": 0.6, "ci": [0.4, 0.8], "diff": {**diff, "diff": a - 0.6}},
                "weight_decay": {"auroc": 0.8, "ci": [0.7, 0.9], "diff": diff}}
            cell["hyperparams"] = {"auroc": 0.7, "ci": [0.5, 0.9]}
            cell["diff_hyperparams"] = {**diff, "diff": a - 0.7}
    (tmp_path / "analysis.json").write_text(json.dumps(analysis), encoding="utf-8")
    pdf = R.render_paper(tmp_path, tmp_path / "out")
    source = context_source(pdf)
    assert canon("Against the stronger axis, weight decay used as a score, the multivariate "
                 "forecaster at W = 200") in source
    assert canon("has an AUROC of 0.700 (the same at every window, as its inputs do not depend "
                 "on W), below weight decay alone (a difference not tested); at W = 200 its 95% "
                 "CI is [0.500, 0.900]") in source
    assert canon("each grid axis f and λ as a score (larger f or λ ⇒ grokking) and the same "
                 "logistic regression on the runs' ranks of f and λ") in source


def test_claims_about_early_training_need_the_steps_logged_and_the_reference_p() -> None:
    """Found in review: with a log of steps 0-9 and then every 250, "our largest is 5.2%"
    before step 200 was called Holds (the steps 10-199 were never logged); at p = 7 the
    reference's 15% bar (3.5 times chance at its p = 23) called a 20% accuracy, 1.4 times
    chance, a contradiction; and first logged steps to fit past a gap were read as late fits."""
    ref = {"claims": {"max_val_acc_before": {"window": 200, "below": 0.15, "p": 23},
                      "fit_by_step": {"step": 100}}}
    def claims(config: dict | None, max_acc: float = 0.12) -> dict:
        a = _claims_analysis(5)
        a["thresholds"]["0.9"]["windows"]["200"]["max_val_acc_in_window"] = max_acc
        if config is not None:
            a["sweep"] = {"config": config}
        return {what: (plain(text), status) for what, text, status in CL.reference_claims(a, ref, 200)}

    early, fit = "no run generalising before step 200", "every run fitting by step 100"
    dense = {"p": 23, "n_steps": 1200}  # every step below 300 logged
    assert claims(dense)[early][1] == CL.HOLDS and claims(None)[early][1] == CL.HOLDS
    assert claims(dense)[fit][1] == CL.CONTRADICTED  # one run fits at 300, every step logged
    sparse = {**dense, "log": {"dense_until": 10, "every": 250}}
    text, status = claims(sparse)[early]
    assert status == CL.UNCHECKED and text.endswith(
        "our largest is 12.0% at the logged steps, but our log's last row before step 200 is at step 9.")
    assert claims(sparse, max_acc=0.2)[early][1] == CL.CONTRADICTED  # seen at a logged step
    text, status = claims(sparse)[fit]
    assert status == CL.UNCHECKED and "our log skips steps up to step 100" in text
    text, status = claims({**dense, "p": 7}, max_acc=0.2)[early]
    assert status == CL.UNCHECKED and text.endswith(
        "but at p = 7 chance is 14.3%, against 4.3% at the reference's p = 23: its bar does not "
        "carry over.")
    # The main text names the last logged step where it is not W - 1.
    assert window_accuracy(0.052, 200, "0.9", 23, last_logged=9).startswith(
        "Before step 200 (at the logged steps, the last at step 9) the largest validation accuracy")
    assert S.last_logged_before(list(range(10)) + [250], 200) == 9
    assert S.last_logged_before(list(range(300)), 200) is None


def test_wording_that_must_fit_the_grid() -> None:
    """Found in review: a forecaster not fitted (too few runs) was 'undefined' in the appendix
    but 'not evaluated' in the abstract; a grid of one seed per cell was told its held-out
    predictions keep a run's seed-siblings in training."""
    text = plain(CL.reference_comparison_sentence(None, [0.955, 0.9, 1.0], 200,
                                                  why_none="too few runs for the model"))
    assert text == ("Our multivariate AUROC at W = 200 was not computed (too few runs for the "
                    "model), so it cannot be compared with the reference's 0.955.")
    assert "is undefined" in plain(CL.reference_comparison_sentence(None, [0.955, 0.9, 1.0], 200))
    one_seed = [{"train_frac": f, "weight_decay": wd} for f in (0.3, 0.6) for wd in (1.0, 10.0)]
    assert not CTX._has_seed_siblings(one_seed)
    assert CTX._has_seed_siblings(one_seed + one_seed[:1])


def test_the_choices_the_reference_leaves_open_are_read_from_the_config(tmp_path):
    """The appendix lists what the reference does not specify (found unstated in a review of the
    paper against the reference): numbers from the sweep's config and grokcast's defaults."""
    from test_analysis import synthetic_sweep

    def nanda(analysis: dict) -> None:
        cfg = analysis["sweep"]["config"]
        cfg["model"] = {**cfg["model"], "init": "nanda", "init_scale": 0.5}
        cfg["optim"] = {**cfg["optim"], "eps": 1e-6}

    choices = [plain(c) for c in _context_of_sweep(tmp_path / "a", *synthetic_sweep(), edit=nanda,
                                                   predict_fn=None)["choices"]]
    split, model, loss, optim, signals, label, forecaster, boot = choices
    sizes = ", ".join(str(round(f * 23 * 23)) for f in (0.3, 0.6))  # p = 23: 159, 317
    assert f"({sizes} for f ∈ {{0.3, 0.6}})" in split
    # Not "Nanda et al.'s": Typst sets an apostrophe after "al." as an opening quote.
    assert ("N(0, 1/d#sub[model]), the unembedding from N(0, 1/(p + 1)) (as the code of Nanda "
            "et al. draws them), all "
            "scaled by 0.5.") in model
    # Nanda et al.'s code, the reference's model, takes the log-softmax in float64 (its
    # cross_entropy_high_precision; docs/reference-readings.md).
    assert loss == ("*Loss.* The mean cross-entropy at the = position, its log-softmax taken in "
                    "float32 (the code of Nanda et al. takes it in float64).")
    # Nanda et al.'s LambdaLR(min(step / 10, 1)) (docs/reference-readings.md).
    assert optim == ("*Optimiser.* ε = 1e-6, a constant learning rate without warmup (the code "
                     "of Nanda et al. warms up linearly over its first 10 steps), and the weight "
                     "decay applied to every parameter, the embeddings included.")
    assert "every 100 steps after step 300" in label
    assert "C from 10 values log-spaced" in forecaster and "(step tolerance 1e-10)" in forecaster
    assert "fitted on each held-out fit's training runs, not on all runs" in forecaster
    assert signals.startswith("*Signals.*") and boot.startswith("*Bootstrap.*")
    # No config recorded, a custom predictor: only what holds whatever the config and model
    # (it printed "every None steps after step None" and the paper model's C grid; found in review).

    def no_config(analysis: dict) -> None:
        analysis["sweep"]["config"] = None

    bare = [plain(c) for c in _context_of_sweep(tmp_path / "b", *synthetic_sweep(),
                                                edit=no_config)["choices"]]
    assert [c.split(".*")[0] for c in bare] == ["*Model", "*Loss", "*Signals", "*Bootstrap"]
    assert "Initialisation" not in bare[0] and "None" not in " ".join(bare)

    # Every step logged: was "every 100 steps after step 20000" of a 10,000-step run.
    def dense(analysis: dict) -> None:
        analysis["sweep"]["config"]["log"] = {"dense_until": 20000, "every": 100}

    ctx = _context_of_sweep(tmp_path / "c", *synthetic_sweep(), edit=dense)
    assert [plain(c) for c in ctx["choices"] if c.startswith("*Label")] == [
        "*Label.* The maximum validation accuracy over every step (each is logged)."]
    assert plain(ctx["setup"]["signals"]).startswith("Logged every step: train and validation")


def test_the_reproduction_appendix_says_which_of_the_references_labels_it_follows(tmp_path):
    """The reference's README labels at one threshold, its paper at another (found in a review
    of the study against the reference): the appendix says so, and which one the sweep took."""
    from test_analysis import synthetic_sweep

    ref = CTX.load_reference()
    readme, primary = ref["readme_label_threshold"], ref["primary_threshold"]
    assert readme != primary  # as copied from the two documents (label_sources)
    for thresholds, follows in (((primary, readme), "we follow the paper."),
                                ((readme, primary), "we follow the README.")):
        intro = plain(_context_of_sweep(tmp_path / str(thresholds[0]), *synthetic_sweep(),
                                        thresholds=thresholds)["repro"]["intro"])
        assert intro.endswith(f"The reference's README labels a run grokked when its maximum "
                              f"validation accuracy reaches {readme:g}; its paper takes "
                              f"{primary:g} as the primary label and {readme:g} as the "
                              f"robustness check: {follows}")


def test_a_missing_typst_is_named_before_the_study_trains(monkeypatch, tmp_path):
    """Was: an ImportError's traceback, from `grokcast reproduce` only after the sweep trained."""
    import sys

    from grokcast.reproduce import reproduce

    monkeypatch.setitem(sys.modules, "typst", None)  # `import typst` raises ImportError
    with pytest.raises(ValueError, match=r"needs the typst package, .*pip install 'typst>=0.12'"):
        reproduce(Path(__file__).parents[1] / "configs" / "smoke.toml", tmp_path / "out",
                  progress=False)
    assert not (tmp_path / "out").exists()


def test_robustness_caption_of_a_single_class_threshold_is_sentences(tmp_path: Path) -> None:
    """The analysis's message is a lower-case clause: after the caption's full stop it starts
    a sentence of its own."""
    from grokcast import figures as F
    from grokcast.paper.context import build_context

    write_synthetic_results(tmp_path, single_class=True)
    caption = build_context(F.load_results(tmp_path))["tables"]["robust"]["caption"]
    after = caption.split("runs positive). ", 1)[1]
    assert after[:1].isupper(), caption


def test_figure_2_caption_says_why_a_cell_has_no_run(tmp_path):
    """A cell marked — was always explained as diverged or stopped runs; in a partial sweep
    (``analyze --partial``) its runs may simply not have been trained yet."""
    from test_analysis import synthetic_sweep

    def empty_cell(analysis: dict) -> None:  # a weight decay in the grid with no stored run
        analysis["sweep"]["config"]["weight_decays"] = [1.0, 3.0]

    partial = _context_of_sweep(tmp_path / "a", *synthetic_sweep(), edit=empty_cell)
    assert plain(partial["captions"]["fig2"]).endswith(
        "A cell marked — holds no run with a known outcome: its runs diverged, were stopped "
        "early or were not trained (a partial sweep).")

    def all_trained(analysis: dict) -> None:  # as if the grid's 44 runs were all trained
        empty_cell(analysis)
        analysis["sweep"]["n_runs"] = 2 * 2 * 11

    whole = _context_of_sweep(tmp_path / "b", *synthetic_sweep(), edit=all_trained)
    assert plain(whole["captions"]["fig2"]).endswith(
        "A cell marked — holds no run with a known outcome: its runs diverged or were stopped "
        "early.")


@pytest.mark.parametrize("run_id, n_pos", [("run00", 1), ("run01", 0)])
def test_a_one_run_sweeps_fractions_and_robustness_count_one_run(tmp_path, run_id, n_pos):
    """Was, after "1 runs" was fixed in six places: "1/1 runs reach" in the abstract, "(0/1
    runs)" in the setup, "(0/1 runs positive)" in the robustness text and table captions,
    "(0 of 1 runs positive)" in the robustness sentence and "All 1 runs have" in the robust
    table's caption (analysis.json's message)."""
    from test_analysis import synthetic_sweep

    runs, log = synthetic_sweep()
    ctx = _context_of_sweep(tmp_path, runs[runs["run_id"] == run_id], log[log["run_id"] == run_id])
    verb = "reaches" if n_pos == 1 else "reach"
    assert (f"and seed, {n_pos}/1 run {verb} a maximum validation accuracy of at least 0.9. "
            in plain(ctx["abstract"]))
    assert plain(ctx["setup"]["label"]) == (
        f"A run groks when its maximum validation accuracy reaches 0.9 ({n_pos}/1 run). The strict "
        "threshold 0.99 (0/1 run) is the robustness check of §6.")
    robustness = plain(ctx["robustness"])
    assert robustness.startswith("The same analysis at the strict threshold 0.99 (0/1 run "
                                 "positive) is in @tab:robust. At the strict threshold 0.99 every "
                                 "run has the same label (0 of 1 run positive), so AUROC is "
                                 "undefined")
    assert (f"for predicting max val acc ≥ 0.9 ({n_pos}/1 run positive) from the first W steps."
            in plain(ctx["tables"]["main"]["caption"]))
    assert plain(ctx["tables"]["robust"]["caption"]).startswith(
        "Robustness: the same analysis at max val acc ≥ 0.99 (0/1 run positive). The one run has "
        "max_val_acc < 0.99: with a single label class")
    for words in (plain(s) for s in _strings(ctx)):
        assert not re.search(r"(?<![\d.,])(?:\d+/)?1 (?:runs|grokkers|seeds|cells)\b", words), words


def _strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list | tuple):
        for v in x:
            yield from _strings(v)


def test_one_grokker_without_delay_and_one_with_it_are_singular() -> None:
    """Was "In 1 of the 3 runs that grok ...: they generalise as they fit" and "In the other 1
    the delay is"; the plural forms are unchanged."""
    one_now = plain(S.delay_sentence(_runs([100, 100, 100], [100, 450, 600]), "0.9"))
    assert one_now == ("In 1 of the 3 runs that grok, validation accuracy reaches 0.9 no later "
                       "than train accuracy reaches 99% (as logged): it generalises as it fits, "
                       "without the delay that defines grokking. In the other 2 the delay is "
                       "between 350 and 500 steps (median 425).")
    one_late = plain(S.delay_sentence(_runs([100, 100, 100], [100, 90, 450]), "0.9"))
    assert one_late == ("In 2 of the 3 runs that grok, validation accuracy reaches 0.9 no later "
                        "than train accuracy reaches 99% (as logged): they generalise as they "
                        "fit, without the delay that defines grokking. In the other one the delay "
                        "is 350 steps.")


def test_early_stop_section_counts_one_stopped_grokking_or_left_out_run(tmp_path):
    """Was "stops 1 runs", "(1 of them grok" and "1 more, ... have no known outcome and are
    left out"."""
    from grokcast.paper.context import early_stop_context

    policy = {"param_name": "threshold", "param": 0.2, "saved": 0.05, "recall": 1.0,
              "n_stopped": 1, "n_wrongly_stopped": 0}
    summary = {"window": 200, "label_threshold": 0.9, "min_recall": 0.9, "n_runs": 12,
               "n_grok": 1, "n_excluded": 1, "tau": "fixed", "forecaster": policy,
               "same_budget": {}, "median": {}}
    (tmp_path / "early_stop").mkdir()
    (tmp_path / "early_stop" / "early_stop.json").write_text(json.dumps({"summary": summary}))
    text = plain(early_stop_context(tmp_path / "early_stop")["text"])
    assert text.startswith("On a held-out sweep of 12 runs with unseen seeds (1 of them groks at "
                           "val acc ≥ 0.9; 1 more, diverged or stopped early, has no known "
                           "outcome and is left out), we simulate stopping at W = 200. At a "
                           "threshold fixed in advance, P(grok) below 0.2, the forecaster stops "
                           "1 run and saves 5.0% of all training steps")
    one = {**summary, "n_runs": 1, "n_grok": 0, "n_excluded": 2,
           "forecaster": {**policy, "n_stopped": 0}}
    (tmp_path / "early_stop" / "early_stop.json").write_text(json.dumps({"summary": one}))
    text = plain(early_stop_context(tmp_path / "early_stop")["text"])
    assert text.startswith("On a held-out sweep of 1 run with unseen seeds (0 of them grok at "
                           "val acc ≥ 0.9; 2 more, diverged or stopped early, have no known "
                           "outcome and are left out)")
    assert "the forecaster stops 0 runs and saves" in text


def test_a_48_run_sweeps_fractions_keep_the_plural(tmp_path: Path) -> None:
    """The paper sweep's sentences as its context.json has them ("10/48 runs reach", "(10/48
    runs positive)", "(2/48 runs)"), with this sweep's counts."""
    a = write_synthetic_results(tmp_path / "res")
    f = CTX._Facts.read(a)
    k1, k2 = a["thresholds"]["0.9"]["n_pos"], a["thresholds"]["0.99"]["n_pos"]
    assert k1 > 1  # k2 is 1 here: "1/48 runs", the noun follows the denominator
    assert (f"and seed, {k1}/48 runs reach a maximum validation accuracy of at least 0.9. "
            in plain(CTX._abstract(f)))
    assert plain(CTX._label(f)) == (f"A run groks when its maximum validation accuracy reaches "
                                    f"0.9 ({k1}/48 runs). The strict threshold 0.99 ({k2}/48 runs) "
                                    "is the robustness check of §6.")
    tables = CTX._tables(f)
    assert f"max val acc ≥ 0.9 ({k1}/48 runs positive) from" in plain(tables["main"]["caption"])
    assert plain(tables["robust"]["caption"]).startswith(
        f"Robustness: the same analysis at max val acc ≥ 0.99 ({k2}/48 runs positive).")
