"""Render the paper: sentences and numbers from ``analysis.json``, a Typst template, the PDF.

Every number in the paper is read from the results directory (``analysis.json`` and, for
figure 5's pair of features, ``features.parquet``), formatted here, and handed to
``paper.typ`` through ``context.json``. Sentences that compare two numbers are chosen by
the pure functions below from the confidence intervals and p-values, never written for one
particular outcome. The reference paper's values (``grokcast/paper/reference_paper.json``)
appear only in the appendix that puts them beside ours.

Strings in the context are Typst *markup*: data that goes into them passes through
:func:`esc`, feature names through :func:`code`.

Layout written by :func:`render_paper` into ``out_dir`` (default: the results directory)::

    paper.pdf
    table1.tex  table2.tex  table3.tex   (copies, for LaTeX users; also the .md tables)
    paper-src/paper.typ                  (the template; ``typst compile paper-src/paper.typ``)
    paper-src/context.json               (every sentence and number the template prints)
    paper-src/figures/fig*.pdf
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import fisher_exact

from grokcast import figures as F
from grokcast.analysis import custom_predictor, feature_difference, table3_order
from grokcast.signals import reaches
from grokcast.stats import auroc, format_p

MINUS = "\u2212"  # typographic minus; the tables and text print negative numbers with it
NA = "n/a"
TEMPLATE_DIR = Path(__file__).resolve().parent
TEMPLATE = "paper.typ"
SIGNIFICANCE_NOTE = ("We call a difference significant when its two-sided {level} bootstrap "
                     "CI excludes zero.")
_TYPST_SPECIAL = set("\\#$*_`<>@[]~/=+-'\"")


# ---------------------------------------------------------------------------------------------
# Formatting: numbers as the paper prints them
# ---------------------------------------------------------------------------------------------

def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))


def fmt(x: float | None, digits: int = 3) -> str:
    """``0.917``; negative numbers with a typographic minus; None/NaN -> ``n/a``."""
    if not _finite(x):
        return NA
    return f"{float(x):.{digits}f}".replace("-", MINUS)


def fmt_signed(x: float | None, digits: int = 3) -> str:
    """``+0.137`` / ``−0.120``."""
    if not _finite(x):
        return NA
    return f"{float(x):+.{digits}f}".replace("-", MINUS)


def fmt_ci(ci: Sequence[float | None] | None, *, signed: bool = False) -> str:
    """``[0.812, 1.000]`` (``[+0.031, +0.271]`` when signed)."""
    f = fmt_signed if signed else fmt
    lo, hi = (ci or (None, None))[:2]
    return f"[{f(lo)}, {f(hi)}]"


def fmt_estimate(entry: dict | None, key: str = "auroc", *, signed: bool = False) -> str:
    """``0.917 [0.812, 1.000]``: an AUROC (or a difference) and its CI, as in Tables 1–2."""
    if not entry or not _finite(entry.get(key)):
        return NA
    f = fmt_signed if signed else fmt
    return f"{f(entry[key])} {fmt_ci(entry.get('ci'), signed=signed)}"


def fmt_p(p: float | None, n_resamples: int | None = None) -> str:
    """One-sided bootstrap p-value: ``0.002``, ``< 0.001``; see :func:`grokcast.stats.format_p`."""
    if not _finite(p):
        return NA
    return format_p(p, n_resamples)


def _p_text(p: float | None, n_resamples: int | None = None) -> str:
    """``= 0.002`` or ``< 0.001``: what follows a p-value's name."""
    text = fmt_p(p, n_resamples)
    return text if text.startswith("<") else f"= {text}"


def p_clause(diff: dict) -> str:
    """``p₁ = 0.002`` or ``p₁ < 0.001`` for a paired difference of ``analysis.json``."""
    return f"p₁ {_p_text(diff.get('p_one_sided'), diff.get('n_resamples'))}"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: 0.123 -> ``12.3%``."""
    return NA if not _finite(x) else f"{100 * float(x):.{digits}f}%"


def fmt_int(n: int) -> str:
    """Thousands separated by commas: 12345 -> ``12,345``."""
    return f"{int(n):,}"


def fmt_duration(seconds: float | None) -> str:
    """``42 s``, ``12.5 min`` or ``1.6 h``."""
    if not _finite(seconds):
        return "not recorded"
    s = float(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def fmt_threshold(key: str | float) -> str:
    return f"{float(key):g}"


def esc(text: Any) -> str:
    """Escape text for Typst markup (so ``[``, ``_``, ``<``, ``//``, ``-`` print literally)."""
    return "".join("\\" + ch if ch in _TYPST_SPECIAL else ch for ch in str(text))


def code(name: str) -> str:
    """A feature name in monospace (Typst raw text; names hold no backticks)."""
    if "`" in name:
        raise ValueError(f"name={name!r} is not allowed: expected no backticks")
    return f"`{name}`"


# ---------------------------------------------------------------------------------------------
# Sentences chosen from the numbers (pure: dicts in, Typst markup out)
# ---------------------------------------------------------------------------------------------

BETTER, WEAK, AHEAD, NOT_BETTER, WORSE, UNDEFINED = (
    "better", "weak", "ahead", "not_better", "worse", "undefined")


def verdict(diff: dict | None, level: float = 0.95) -> str:
    """Classify a paired-bootstrap difference ``multi − baseline``.

    Returns
    -------
    ``"better"``: the ``level`` CI lies above zero; ``"worse"``: below zero;
    ``"weak"``: the CI includes zero but the one-sided p-value is below ``1 − level``;
    ``"ahead"``: the estimate is positive, nothing more; ``"not_better"``: estimate <= 0 with
    a CI that includes zero; ``"undefined"``: no difference was computed (one class).
    """
    if not diff or not _finite(diff.get("diff")):
        return UNDEFINED
    lo, hi = diff["ci"]
    if _finite(lo) and lo > 0:
        return BETTER
    if _finite(hi) and hi < 0:
        return WORSE
    if _finite(diff.get("p_one_sided")) and diff["p_one_sided"] < 1 - level:
        return WEAK
    return AHEAD if diff["diff"] > 0 else NOT_BETTER


def _diff_numbers(diff: dict, level: float) -> str:
    """``Δ = +0.137, 95% CI [+0.031, +0.271], p₁ = 0.002``; without p₁ for a difference
    significantly below zero: p₁ = P(Δ* ≤ 0) tests "better", and its value near 1 printed
    beside "worse" would read as the opposite of what it means."""
    text = f"Δ = {fmt_signed(diff['diff'])}, {level:.0%} CI {fmt_ci(diff['ci'], signed=True)}"
    if verdict(diff, level) == WORSE:
        return text
    return f"{text}, {p_clause(diff)}"


def comparison_sentence(diff: dict | None, baseline: str, level: float = 0.95, *,
                        why: str = "the label has a single class") -> str:
    """How the multivariate forecaster compares with one baseline, as a predicate.

    ``"significantly outperforms the val-loss baseline (Δ = +0.137, 95% CI [+0.031, +0.271],
    p₁ = 0.002)"`` only when the CI of the difference excludes zero; otherwise a sentence
    that says what the numbers do support. Meant to follow "the multivariate forecaster".
    """
    v = verdict(diff, level)
    base = f"the {esc(baseline)} baseline"
    if v == UNDEFINED:
        return f"cannot be compared with {base}: {why}"
    nums = esc(_diff_numbers(diff, level))
    return {
        BETTER: f"significantly outperforms {base} ({nums})",
        WORSE: f"is significantly worse than {base} ({nums})",
        WEAK: (f"is ahead of {base}, but the {level:.0%} CI of the difference includes zero "
               f"({nums}); only a one-sided test at the {1 - level:.0%} level would call it "
               "significant"),
        AHEAD: (f"is ahead of {base}, but not significantly: the {level:.0%} CI of the "
                f"difference includes zero ({nums})"),
        NOT_BETTER: f"does not outperform {base} ({nums})",
    }[v]


def ties_sentence(diff: dict | None, baseline: str, window: int) -> str:
    """How many bootstrap resamples tie the forecaster with a baseline, and the mid-p.

    ``p₁ = P(Δ* ≤ 0)`` counts the resamples where both get the same AUROC against the
    forecaster; where they are many, the mid-p (``p₁ − ties / 2``) says what counting them
    half would give. Silent below 1% of the resamples or where no ``ties`` were recorded.
    """
    ties, p = (diff or {}).get("ties"), (diff or {}).get("p_one_sided")
    if not (_finite(ties) and _finite(p)) or ties < 0.01:
        return ""
    n = (diff or {}).get("n_resamples")
    return (f"In {esc(fmt_pct(ties))} of the bootstrap resamples at W = {window} the forecaster "
            f"and the {esc(baseline)} baseline get equal AUROCs (Δ\\* = 0); p₁ counts these "
            f"ties against the forecaster, and counting them half (the mid-p) gives "
            f"{esc(fmt_p(max(p - ties / 2, 0.0), n))}.")


def headline_sentence(cell: dict, window: int, level: float = 0.95) -> str:
    """The abstract's result: multi AUROC at W and how it compares with the val-loss baseline."""
    multi = cell.get("multi")
    if cell.get("multi_note"):
        return f"At W = {window} the forecaster was not evaluated: {esc(cell['multi_note'])}."
    if not multi or not _finite(multi.get("auroc")):
        return (f"At W = {window} the forecaster's AUROC is undefined because every run has the "
                "same label.")
    loss = cell.get("val_loss") or {}
    v = verdict(cell.get("diff_val_loss"), level)
    lead = (f"At the {window}-step mark the multivariate forecaster reaches a held-out AUROC "
            f"of {esc(fmt(multi['auroc']))} ({level:.0%} CI {esc(fmt_ci(multi.get('ci')))})")
    tail = f"the validation-loss baseline's {esc(fmt(loss.get('auroc')))}"
    d = cell.get("diff_val_loss") or {}
    if v == BETTER:
        return f"{lead}, significantly above {tail} ({esc(p_clause(d))})."
    if v == WORSE:
        return (f"{lead}, significantly below {tail} (difference {level:.0%} CI "
                f"{esc(fmt_ci(d.get('ci'), signed=True))}).")
    if v in (WEAK, AHEAD):
        return (f"{lead}, above {tail}, but the {level:.0%} CI of the difference includes zero "
                f"({esc(p_clause(d))}).")
    if v == NOT_BETTER:
        return f"{lead}, which does not exceed {tail}."
    return f"{lead}."


ABOVE_CHANCE = 2.0  # a val accuracy this many times chance counts as "above chance" in words


def window_accuracy_sentence(max_acc: float | None, window: int, threshold: str,
                             p: int | None) -> str:
    """Whether any run has generalised by step W (is the forecast really a forecast?).

    Below the threshold the label is not yet observed; where some run's val accuracy is
    already :data:`ABOVE_CHANCE` times chance or more, the sentence says so, since the window
    then sees generalisation begin.
    """
    if not _finite(max_acc):
        return f"The validation accuracy before step {window} was not logged."
    acc = esc(fmt_pct(max_acc))
    if not reaches(max_acc, float(threshold)):
        chance = (f" (chance is 1/{p} ≈ {fmt_pct(1 / p)}; this is {max_acc * p:.1f} times "
                  "chance)") if p else ""
        begun = (", though some run's validation accuracy is already above chance"
                 if p and max_acc * p >= ABOVE_CHANCE else "")
        return (f"Before step {window} the largest validation accuracy of any run is {acc}"
                f"{esc(chance)}, so no run has yet reached the label threshold "
                f"{esc(fmt_threshold(threshold))}: the label is not yet observed{begun}.")
    return (f"Before step {window} some run already reaches a validation accuracy of {acc}, at or "
            f"above the label threshold {esc(fmt_threshold(threshold))}, so at this window the "
            "label is partly observed rather than forecast.")


MIN_CLASS_SIZE = 5  # below this many runs in a class, AUROCs and their CIs are degenerate


def small_sample_sentence(n_pos: int, n_neg: int, threshold: str) -> str:
    """A warning when a class is too small for the AUROCs to mean much ('' otherwise)."""
    small = min(n_pos, n_neg)
    if small >= MIN_CLASS_SIZE or small == 0:  # with one class no AUROC exists to warn about
        return ""
    which = "grokking" if n_pos <= n_neg else "non-grokking"
    return (f"With only {small} {which} run{'s' if small != 1 else ''} at threshold "
            f"{esc(fmt_threshold(threshold))}, the AUROCs and their CIs are close to degenerate: "
            "these numbers exercise the pipeline but support no conclusion.")


def _trend(pts: Sequence[tuple[int, float]]) -> str:
    """``"does not decrease with the window"``, ``"does not increase ..."`` or ``"is not
    monotone in the window"``."""
    diffs = np.diff([a for _, a in pts])
    if (diffs >= 0).all():
        return "does not decrease with the window"
    if (diffs <= 0).all():
        return "does not increase with the window"
    return "is not monotone in the window"


def trend_sentence(aurocs: dict[int, float | None],
                   medians: dict[int, float | None] | None = None) -> str:
    """How the multivariate AUROC changes with the window length.

    ``medians``: its median over random orders of the runs at each window (analysis
    ``orders``), given beside the run_id order's trend without a verdict: a median that
    moves by a pair or two of runs is no trend.
    """
    pts = [(w, a) for w, a in sorted(aurocs.items()) if _finite(a)]
    if len(pts) < 2:
        return ""
    first, last = pts[0], pts[-1]
    span = (f"from {esc(fmt(first[1]))} at W = {first[0]} to {esc(fmt(last[1]))} at "
            f"W = {last[0]}")
    kind = _trend(pts)
    best = pts[int(np.argmax([a for _, a in pts]))]
    text = (f"it goes {span}, with its maximum {esc(fmt(best[1]))} at W = {best[0]}"
            if kind.startswith("is not monotone") else f"it goes {span}")
    med = [(w, a) for w, a in sorted((medians or {}).items()) if _finite(a)]
    if len(med) < 2:
        return f"The multivariate AUROC {kind}: {text}."
    return (f"With the runs in run_id order the multivariate AUROC {kind}: {text}; its median "
            f"over the random orders {_trend(med)} ({', '.join(esc(fmt(a)) for _, a in med)} "
            f"at W = {_and_list([str(w) for w, _ in med])}).")


# Fewer random run orders than this give a range but no median worth a sentence.
MIN_ORDERS = 5


def order_sentence(t: dict, ws: Sequence[int], threshold: str | None = None, *,
                   custom: bool = False) -> str:
    """How the forecaster's AUROC moves with the order of the runs (``multi_by_order``).

    ``threshold`` names the threshold where it is not the one the paragraph is about;
    ``custom``: the held-out predictions came from a custom predictor, whose folds (if any)
    grokcast does not know. Silent where a class has fewer than :data:`MIN_CLASS_SIZE` runs:
    there the AUROCs themselves are degenerate.
    """
    if min(t.get("n_pos", 0), t.get("n_neg", 0)) < MIN_CLASS_SIZE:
        return ""
    rows, n = [], 0
    for w in ws:
        cell = t["windows"][str(w)]
        n = max(n, len(cell.get("multi_by_order") or []))
        by_order = [a for a in (cell.get("multi_by_order") or []) if _finite(a)]
        if by_order:
            rows.append((w, by_order, (cell.get("val_loss") or {}).get("auroc"),
                         (cell.get("multi") or {}).get("auroc")))
    if not rows:
        return ""
    spans = _and_list([f"{esc(fmt(min(a)))}–{esc(fmt(max(a)))}" + (
        f" (median {esc(fmt(float(np.median(a))))})" if n >= MIN_ORDERS else "")
        for _, a, _, _ in rows])
    at = f"At threshold {esc(fmt_threshold(threshold))}, with" if threshold else "With"
    why = "" if custom else " (the cross-validation's folds change with the order)"
    text = (f"{at} the runs in {n} random order{'s' if n > 1 else ''} instead of run_id "
            f"order{why}, the forecaster's AUROC at W = "
            f"{_and_list([str(w) for w, *_ in rows])} ranges over {spans}")
    losses = [(a, v) for _, a, v, _ in rows if _finite(v)]
    if losses:
        text += (f", against the val-loss baseline's {_and_list([esc(fmt(v)) for _, v in losses])}"
                 ", which no order changes")
    text += "."
    outside = [(w, m, "below" if m < min(a) else "above") for w, a, _, m in rows
               if _finite(m) and not min(a) <= m <= max(a)]
    if outside:
        text += " In run_id order it lies outside every random order's: " + _and_list(
            [f"{side} them at W = {w} ({esc(fmt(m))})" for w, m, side in outside]) + "."
    if losses:
        lead = max(max(a) - v for a, v in losses)
        text += (f" Its largest lead over that baseline in any order and window is "
                 f"{esc(fmt(lead))}." if lead > 0 else
                 " It leads that baseline in no order at any window.")
    return text


def _order_median(values: Sequence[float | None] | None) -> float | None:
    """The median of an AUROC over the random run orders; None under :data:`MIN_ORDERS`
    finite values."""
    finite = [a for a in (values or []) if _finite(a)]
    return float(np.median(finite)) if len(finite) >= MIN_ORDERS else None


def cell_out_sentence(t: dict, ws: Sequence[int], headline: int, level: float = 0.95,
                      held_out: str = "leave-one-out") -> str:
    """The forecaster's AUROC leaving out a whole grid cell at a time (``multi_cell_out``)
    beside the tables' (``held_out`` names how they held runs out), in run_id order and, with
    :data:`MIN_ORDERS` run orders or more, as medians over the orders, since both depend on
    the order. Silent where it was not computed or a class is tiny."""
    if min(t.get("n_pos", 0), t.get("n_neg", 0)) < MIN_CLASS_SIZE:
        return ""
    cells = [(w, t["windows"][str(w)]) for w in ws]
    rows = [(w, c.get("multi_cell_out") or {}, (c.get("multi") or {}).get("auroc"), c)
            for w, c in cells]
    rows = [(w, out, m, c) for w, out, m, c in rows if _finite(out.get("auroc")) and _finite(m)]
    if not rows:
        return ""
    at = _and_list([str(w) for w, *_ in rows])
    text = (f"Leaving out a whole grid cell at a time, so that no run is predicted by a model "
            f"that saw its seed-siblings ({held_out} keeps them in training), the forecaster's "
            f"AUROC in run_id order at W = {at} is "
            f"{_and_list([esc(fmt(out['auroc'])) for _, out, _, _ in rows])}, against the "
            f"tables' {_and_list([esc(fmt(m)) for _, _, m, _ in rows])}")
    top = next((out for w, out, _, _ in rows if w == headline), None)
    if top is not None:
        text += f" ({level:.0%} CI at W = {headline}: {esc(fmt_ci(top.get('ci')))})"

    medians = [(_order_median(c.get("multi_cell_out_by_order")),
                _order_median(c.get("multi_by_order")))
               for *_, c in rows]
    if all(_finite(a) and _finite(b) for a, b in medians):
        n = len(rows[0][3].get("multi_cell_out_by_order") or [])
        text += (f"; over the {n} random run orders its median is "
                 f"{_and_list([esc(fmt(a)) for a, _ in medians])}, against {held_out}'s "
                 f"{_and_list([esc(fmt(b)) for _, b in medians])}")
    return text + "."


_AXIS_SYMBOLS = {"train_frac": "f", "weight_decay": "λ"}
_AXIS_WORDS = {"train_frac": "the training fraction", "weight_decay": "weight decay"}


def _axis_symbols(axes: Sequence[str]) -> list[str]:
    return [_AXIS_SYMBOLS.get(a, esc(a)) for a in axes]


def prior_baselines_sentence(t: dict, ws: Sequence[int], headline: int, axes: Sequence[str],
                             level: float = 0.95) -> str:
    """The forecaster against the baselines known before training: the stronger grid axis as
    a score (``axis_scores``) and the paper's model fitted on the axes' ranks
    (``hyperparams``). Silent where they were not computed or a class is tiny."""
    if not axes or min(t.get("n_pos", 0), t.get("n_neg", 0)) < MIN_CLASS_SIZE:
        return ""
    cells = {w: t["windows"][str(w)] for w in ws}
    top = cells.get(headline) or {}
    scores = {a: v for a, v in (top.get("axis_scores") or {}).items() if _finite(v.get("auroc"))}
    if not scores:
        return ""
    best = max(scores, key=lambda a: scores[a]["auroc"])
    return " ".join(x for x in (_axis_score_sentence(cells, headline, scores, best, level),
                                _fitted_hyperparameter_sentence(cells, headline, axes,
                                                                scores[best]["auroc"],
                                                                _AXIS_WORDS.get(best, best), level))
                    if x)


_UNDEFINED_DIFF = "its difference from it is undefined"


def _axis_score_sentence(cells: dict[int, dict], headline: int, scores: dict[str, dict],
                         best: str, level: float) -> str:
    """The forecaster against the ``best`` axis as a score: the paired test at the headline
    window, the differences at the others, and how often it is above it over the run orders."""
    name = _AXIS_WORDS.get(best, best)
    ties = [_AXIS_WORDS.get(a, a) for a in scores
            if a != best and scores[a]["auroc"] == scores[best]["auroc"]]
    lead_in = (f"Against {esc(name)} used as a score ({_and_list(ties)} scores the same)" if ties else
               f"Against the stronger axis, {esc(name)} used as a score" if len(scores) > 1 else
               f"Against {esc(name)} used as a score")
    versus = comparison_sentence(scores[best]["diff"], name.removeprefix("the ").replace(" ", "-"), level,
                                 why=_UNDEFINED_DIFF)
    text = f"{lead_in}, the multivariate forecaster at W = {headline} {versus}"
    others = [(w, (((c.get("axis_scores") or {}).get(best) or {}).get("diff") or {}).get("diff"))
              for w, c in cells.items() if w != headline]
    others = [(w, d) for w, d in others if _finite(d)]
    if others:
        text += (f"; its difference{'s' if len(others) > 1 else ''} at W = "
                 f"{_and_list([str(w) for w, _ in others])} {'are' if len(others) > 1 else 'is'} "
                 f"{_and_list([esc(fmt_signed(d)) for _, d in others])}")
    # The test above is of run_id order; the axis' score does not depend on the order.
    orders = [a for a in cells[headline].get("multi_by_order") or [] if _finite(a)]
    if len(orders) >= MIN_ORDERS:
        above = sum(a > scores[best]["auroc"] for a in orders)
        count = ("all" if above == len(orders) else "none" if above == 0 else str(above))
        text += (f". Over the {len(orders)} random run orders the forecaster's AUROC at "
                 f"W = {headline} ({esc(fmt(min(orders)))}–{esc(fmt(max(orders)))}) is above "
                 f"{esc(name)}'s {esc(fmt(scores[best]['auroc']))} in {count} of them")
    return text + "."


def _fitted_hyperparameter_sentence(cells: dict[int, dict], headline: int, axes: Sequence[str],
                                    best_auroc: float, best_name: str, level: float) -> str:
    """The forecaster's procedure fitted on the axes' ranks (``hyperparams``): its AUROC, whether
    it is below the best axis' unfitted score, its probabilities' span, and the paired test."""
    top = cells.get(headline) or {}
    hp = top.get("hyperparams") or {}
    if not (_finite(hp.get("auroc")) and top.get("diff_hyperparams")):
        return ""
    # Under LOO its predictions are the same at every window; under k-fold the folds differ.
    same = len(cells) > 1 and len({(c.get("hyperparams") or {}).get("auroc")
                                   for c in cells.values()}) == 1
    every = "; the same at every window, as its inputs do not depend on W" if same else ""
    text = (f"The same logistic regression as the forecaster's, fitted and held out the same way "
            f"on the runs' ranks of {_and_list(_axis_symbols(axes))}, "
            f"has an AUROC of {esc(fmt(hp['auroc']))} at W = {headline} ({level:.0%} CI "
            f"{esc(fmt_ci(hp.get('ci')))}{every})")
    if hp["auroc"] < best_auroc:
        text += f", below {esc(best_name)} alone (a difference not tested)"
    spreads = [_spread(hp.get("proba")), _spread(top.get("loo_proba"))]
    if all(spreads):
        text += f"; its held-out probabilities {spreads[0]}, the forecaster's {spreads[1]}"
    versus = comparison_sentence(top["diff_hyperparams"], "fitted-hyperparameter", level,
                                 why=_UNDEFINED_DIFF)
    return f"{text}. The forecaster at W = {headline} {versus}."


def _spread(values: Sequence[float | None] | None) -> str:
    """``"span 0.398–0.606"``, or ``"are all 0.500 to three decimals"`` where the smallest and
    largest finite value print the same; empty if there is none."""
    finite = [v for v in values or [] if _finite(v)]
    if not finite:
        return ""
    lo, hi = esc(fmt(min(finite))), esc(fmt(max(finite)))
    return f"span {lo}–{hi}" if lo != hi else f"are all {lo} to three decimals"


def grid_sentence(runs: Sequence[dict], labels: Sequence[int]) -> str:
    """How the grokking rate changes with weight decay and with training fraction (seeds and the
    other axis pooled): "rises with" (every step up), "never falls as ... grows" (some steps
    flat), "falls with", "never rises as ... grows", "is not monotone in", with the counts."""
    parts = []
    for field in ("weight_decay", "train_frac"):
        symbol = _AXIS_SYMBOLS[field]
        groups: dict[float, list[int]] = {}
        for run, y in zip(runs, labels, strict=True):
            groups.setdefault(float(run[field]), []).append(int(y))
        levels = sorted(groups)
        if len(levels) < 2:
            continue
        rates = [np.mean(groups[v]) for v in levels]
        steps = np.diff(rates)
        if (steps == 0).all():
            how = "does not change with {s}"
        elif (steps > 0).all():
            how = "rises with {s}"
        elif (steps >= 0).all():
            how = "never falls as {s} grows"
        elif (steps < 0).all():
            how = "falls with {s}"
        elif (steps <= 0).all():
            how = "never rises as {s} grows"
        else:
            how = "is not monotone in {s}"
        counts = ", ".join(f"{sum(groups[v])}/{len(groups[v])} at {symbol} = {v:g}"
                           for v in levels)
        parts.append(f"the grokking rate {how.format(s=symbol)} ({esc(counts)})")
    if not parts:
        return ""
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


FIT_STEP_KEY = "step_train_acc_0.99"  # written by grokcast.analysis (FIT_ACC)


def dynamics_sentence(runs: Sequence[dict], threshold: str) -> str:
    """When the runs fit their train sets and when the grokkers reach the label threshold,
    from the first logged steps in analysis.json ('' for a file without them)."""
    fit = [r.get(FIT_STEP_KEY) for r in runs]
    hit = [(r.get("step_val_acc") or {}).get(threshold) for r in runs]
    if any(s is None for s in fit + hit):
        return ""
    reached = np.array([s for s in fit if s >= 0])
    text = ""
    if reached.size:
        never = len(fit) - reached.size
        when = (f"at step {fmt_int(reached[0])}" if reached.min() == reached.max() else
                f"between steps {fmt_int(reached.min())} and {fmt_int(reached.max())} (median "
                f"{fmt_int(round(float(np.median(reached))))})")
        who = (f"{reached.size} of {len(fit)} runs reach{'es' if reached.size == 1 else ''}"
               if never else "The run reaches" if reached.size == 1 else "The runs reach")
        text = (f"{who} a train accuracy of {esc('99%')} {when}"
                + (f", and {never} never do{'es' if never == 1 else ''}" if never else "") + ".")
    grok = np.array([s for s in hit if s >= 0])
    level = esc(fmt_threshold(threshold))
    if grok.size == 1:
        text += (f" The one run that groks first reaches a validation accuracy of {level} at "
                 f"step {fmt_int(grok[0])} (as logged).")
    elif grok.size:
        text += (f" The {grok.size} runs that grok first reach a validation accuracy of {level} "
                 f"between steps {fmt_int(grok.min())} and {fmt_int(grok.max())} (median "
                 f"{fmt_int(round(float(np.median(grok))))}; steps as logged).")
    return (text + " " + delay_sentence(runs, threshold)).strip()


def generalisation_delays(runs: Sequence[dict], threshold: str) -> list[int]:
    """For each run that groks and fits: first logged step with val acc >= threshold minus the
    first with train acc >= 99%. Zero or negative: it generalised as it fitted, no delay."""
    out = []
    for r in runs:
        fit, hit = r.get(FIT_STEP_KEY), (r.get("step_val_acc") or {}).get(threshold)
        if fit is not None and hit is not None and fit >= 0 and hit >= 0:
            out.append(int(hit) - int(fit))
    return out


def _grokkers(n_delays: int, runs: Sequence[dict], threshold: str) -> str:
    """``10 runs that grok``, or ``9 runs that grok and fit`` where some grokker never fits."""
    hits = [(r.get("step_val_acc") or {}).get(threshold) for r in runs]
    n_grok = sum(h is not None and h >= 0 for h in hits)
    return f"{n_delays} runs that grok" + ("" if n_delays == n_grok else " and fit")


def _steps_span(x: np.ndarray) -> str:
    """``350 steps``, or ``between 700 and 5,026 steps (median 2,000)``."""
    if x.min() == x.max():
        return f"{fmt_int(x[0])} steps"
    return (f"between {fmt_int(x.min())} and {fmt_int(x.max())} steps (median "
            f"{fmt_int(round(float(np.median(x))))})")


def no_delay_sentence(runs: Sequence[dict], threshold: str) -> str:
    """How many grokkers reach the label threshold no later than they fit ('' if none)."""
    delays = np.array(generalisation_delays(runs, threshold))
    n_now = int((delays <= 0).sum())
    if not n_now:
        return ""
    level, fit = esc(fmt_threshold(threshold)), esc("99%")
    if delays.size == 1:
        return (f"The run that groks reaches a validation accuracy of {level} no later than a "
                f"train accuracy of {fit} (as logged): it generalises as it fits, without the "
                "delay that defines grokking.")
    return (f"In {n_now} of the {_grokkers(delays.size, runs, threshold)}, validation accuracy "
            f"reaches {level} no later than train accuracy reaches {fit} (as logged): they "
            "generalise as they fit, without the delay that defines grokking.")


def delay_sentence(runs: Sequence[dict], threshold: str) -> str:
    """Whether the runs that grok generalise long after fitting, as grokking is defined."""
    delays = np.array(generalisation_delays(runs, threshold))
    if not delays.size:
        return ""
    late = delays[delays > 0]
    if late.size == delays.size:
        who = ("The run that groks" if late.size == 1 else
               f"Each of the {_grokkers(delays.size, runs, threshold)}")
        return (f"{who} reaches a train accuracy of {esc('99%')} first, and a validation accuracy "
                f"of {esc(fmt_threshold(threshold))} {_steps_span(late)} later.")
    text = no_delay_sentence(runs, threshold)
    if late.size:
        text += f" In the other {late.size} the delay is {_steps_span(late)}."
    return text


def top_features(univariate: dict | None, k: int = 3) -> list[tuple[str, float, float]]:
    """The ``k`` features with the highest folded AUROC: (name, auroc, folded), best first,
    and every feature tied with the k-th (features that are monotone functions of one another,
    such as a loss and its log, tie exactly).

    Ties keep the order of ``univariate`` (analysis.json lists the features in their defined
    order), as Table 3 and figure 3 do.
    """
    if not univariate:
        return []
    rows = [(n, e["auroc"], e["folded"]) for n, e in univariate.items() if _finite(e.get("folded"))]
    rows.sort(key=lambda r: -r[2])  # stable: ties stay in feature order
    if len(rows) <= k:
        return rows
    return [r for r in rows if r[2] >= rows[k - 1][2]]


def _and_list(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


BASELINE_FEATURES = {"end_val_loss": "val-loss", "end_val_acc": "val-accuracy"}


def best_single_sentence(univariate: dict | None, window: int) -> str:
    """The strongest single feature at W, or every feature tied for strongest."""
    top = top_features(univariate, 1)
    if not top:
        return ""
    folded = esc(fmt(top[0][2]))
    base = [BASELINE_FEATURES[n] for n, _, _ in top if n in BASELINE_FEATURES]
    which = (f"the {_and_list(base)} baselines themselves" if len(base) > 1 else
             f"the {base[0]} baseline itself" if base else "")
    base_note = (f", among them {which}" if base and len(top) > 1 else
                 f": {which}" if base else "")
    if len(top) == 1:
        return (f"The strongest single early signal at W = {window} is {code(top[0][0])}, with "
                f"folded AUROC {folded}{base_note}.")
    names = _and_list([code(n) for n, _, _ in top])
    # Equal AUROCs do not mean equal rankings of the runs: the sentence claims the tie only.
    return (f"At W = {window}, {len(top)} features tie as the strongest single early signal "
            f"(folded AUROC {folded}): {names}{base_note}.")


def signal_family(name: str) -> str:
    """``"loss"``, ``"accuracy"`` or ``"other"``: what a feature measures, by its name."""
    return "loss" if "loss" in name else "accuracy" if "acc" in name else "other"


def families_clause(names: Sequence[str]) -> str:
    """``all 4 loss-related``, or ``led by an accuracy feature (3 loss-related, 2 accuracy-related)``.

    Led by the strongest, then counted: a majority alone misread W = 500 of the paper sweep,
    whose two strongest are accuracy features and whose next three, tied, are transforms
    of the one val loss.
    """
    kinds = [signal_family(n) for n in names]
    word = {"loss": "loss-related", "accuracy": "accuracy-related",
            "other": "neither loss- nor accuracy-related"}
    if len(set(kinds)) == 1:
        return f"all {len(kinds)} {word[kinds[0]]}" if len(kinds) > 1 else word[kinds[0]]
    lead = {"loss": "a loss", "accuracy": "an accuracy", "other": "a non-loss, non-accuracy"}
    counts = ", ".join(f"{kinds.count(k)} {word[k]}" for k in word if k in kinds)
    return f"led by {lead[kinds[0]]} feature ({counts})"


def top_features_sentence(univariate: dict | None, window: int, k: int = 3) -> str:
    """``At W = 200 the strongest single features are a (0.826), b ↓ (0.781), …``."""
    top = top_features(univariate, k)
    if not top:
        return f"At W = {window} no single feature has a defined AUROC."
    items = ", ".join(f"{code(n)}{' ↓' if a < 0.5 else ''} ({esc(fmt(f))})" for n, a, f in top)
    return (f"At W = {window} the strongest single features (folded AUROC) are {items}: "
            f"{families_clause([n for n, _, _ in top])}.")


INNER_FOLDS = 3  # the forecaster's internal CV for C (grokcast.forecast)


def loo_small_class_sentence(n_pos: int, n_neg: int, auroc: float | None) -> str:
    """Why leave-one-out AUROCs with a tiny class can fall below 0.5, and, where a class has
    two runs, what grokcast does where scikit-learn would stop ('' when the class is not tiny)."""
    small = min(n_pos, n_neg)
    if small >= MIN_CLASS_SIZE:
        return ""
    which = "grokking" if n_pos <= n_neg else "non-grokking"
    text = (f"Under leave-one-out, each held-out {which} run is predicted by a model fitted on the "
            f"other {small - 1} {which} run{'s' if small != 2 else ''}, while every other run's "
            f"model sees all {small}: with so few, that shift can rank the held-out {which} "
            "runs against their label")
    text += (", which can explain an AUROC below 0.5: it is no evidence of a signal in either "
             "direction." if _finite(auroc) and auroc < 0.5 else ".")
    if small == 2:
        text += (f" And a model fitted on one {which} run meets, in its internal "
                 f"{INNER_FOLDS}-fold CV, a fold whose training part holds no {which} run; "
                 "scikit-learn's LogisticRegressionCV stops with an error there, and grokcast "
                 "scores that fold as the constant predictor of its one class: these held-out "
                 "predictions come from a procedure the reference could not have run.")
    return text


def threshold_word(key1: str, key2: str) -> str:
    """What the second threshold is next to the primary one: ``"strict"`` when higher."""
    return "strict" if float(key2) > float(key1) else "relaxed"


def robustness_sentence(primary: dict, secondary: dict | None, window: int, key1: str,
                        key2: str | None, level: float = 0.95, cv: str | None = "loo") -> str:
    """Do the verdicts against both baselines at W hold at the second threshold too?

    With fewer than :data:`MIN_CLASS_SIZE` runs in a class at the second threshold, the
    comparison is not made: the numbers are stated with why they support no conclusion.
    """
    if secondary is None or key2 is None:
        return "Only one label threshold was analysed, so there is no robustness check."
    th1, th2 = esc(fmt_threshold(key1)), esc(fmt_threshold(key2))
    n_pos, n_neg = secondary["n_pos"], secondary["n_neg"]
    if secondary.get("single_class"):
        return (f"At the {threshold_word(key1, key2)} threshold {th2} every run has the same "
                f"label ({n_pos} of {n_pos + n_neg} runs positive), so AUROC is undefined and the "
                "robustness check cannot be made.")
    c1 = primary["windows"][str(window)]
    c2 = secondary["windows"][str(window)]
    multi2 = c2.get("multi") or {}
    lead = f"At W = {window} the multivariate AUROC at threshold {th2} is {esc(fmt_estimate(multi2))}"
    small = small_sample_sentence(n_pos, n_neg, key2)
    if small:
        loo = (loo_small_class_sentence(n_pos, n_neg, multi2.get("auroc"))
               if cv in (None, "loo") and _finite(multi2.get("auroc")) else "")
        return " ".join(x for x in (f"{lead}.", small, loo, "The robustness check cannot be made "
                                    "at this sweep's size.") if x)
    # Significant either way counts: a forecaster that is significantly worse at one threshold
    # and merely not better at the other does not reach the same conclusion.
    def significant(d: str, cell: dict) -> str | None:
        v = verdict(cell.get(d), level)
        return v if v in (BETTER, WORSE) else None

    same = all(significant(d, c1) == significant(d, c2) for d in ("diff_val_loss", "diff_val_acc"))
    cmp = (f" At threshold {th2} the forecaster "
           f"{comparison_sentence(c2.get('diff_val_loss'), 'val-loss', level)}.")
    if same:
        return (f"{lead}, and which baseline comparisons are significant is the same as at {th1}: "
                f"the conclusion does not depend on the threshold.{cmp}")
    return (f"{lead}, but which baseline comparisons are significant differs from threshold {th1}: "
            f"the conclusion depends on the threshold.{cmp}")


def calibration_sentence(proba: Sequence[float | None] | None, labels: Sequence[int],
                         window: int) -> str:
    """Brier score of the LOO probabilities at W against the constant base-rate predictor."""
    if not proba:
        return f"No held-out probabilities exist at W = {window}."
    p = np.array([np.nan if v is None else v for v in proba], float)
    y = np.asarray(labels, float)
    keep = np.isfinite(p)
    brier = float(np.mean((p[keep] - y[keep]) ** 2))
    base = float(y[keep].mean())
    ref = base * (1 - base)  # Brier score of always predicting the base rate
    cmp = "below" if brier < ref else "not below"
    return (f"At W = {window} the Brier score of the held-out probabilities is "
            f"{esc(fmt(brier))}, {cmp} the {esc(fmt(ref))} of always predicting the base rate "
            f"{esc(fmt(base))}.")


def reliability_sentence(proba: Sequence[float | None] | None, labels: Sequence[int],
                         n_bins: int = F.N_RELIABILITY_BINS) -> str:
    """How many runs each reliability bin holds, and which bins are too small to read."""
    if not proba:
        return ""
    p = np.array([np.nan if v is None else v for v in proba], float)
    bins = F.reliability_bins(p, np.asarray(labels, float), n_bins)
    counts = dict(zip(bins["lo"].round(6), bins["n"]))
    edges = np.linspace(0.0, 1.0, n_bins + 1)[:-1].round(6)
    held = [int(counts.get(lo, 0)) for lo in edges]
    small = sum(0 < n < MIN_CLASS_SIZE for n in held)
    text = (f"From low to high predicted probability, the {n_bins} bins of @fig:reliability at this "
            f"window hold {_and_list([str(n) for n in held])} runs.")
    if small:
        text += (f" A bin of n runs moves its observed frequency in steps of 1/n, so the {small} "
                 f"non-empty bin{'s' if small > 1 else ''} with fewer than {MIN_CLASS_SIZE} runs "
                 "say little about calibration.")
    return text


def observed_label_sentence(runs: Sequence[dict], windows: Sequence[int], threshold: str) -> str:
    """How many runs have already reached the label threshold inside each window (as logged):
    where any has, the window's AUROC partly measures an outcome it can see."""
    hit = [(r.get("step_val_acc") or {}).get(threshold) for r in runs]
    if not windows or any(s is None for s in hit):
        return ""
    seen = [sum(0 <= s < w for s in hit) for w in windows]
    level = esc(fmt_threshold(threshold))
    if not any(seen):
        return (f"No run reaches a validation accuracy of {level} inside any window: every "
                "window's prediction is a forecast.")
    ws = _and_list([str(w) for w in windows])
    partly = [str(w) for w, n in zip(windows, seen) if n]
    these = "those AUROCs partly measure" if len(partly) > 1 else "its AUROC partly measures"
    return (f"Runs that already reach a validation accuracy of {level} inside the window (log "
            f"rows with step < W): {_and_list([str(n) for n in seen])} at W = {ws}. At "
            f"W = {_and_list(partly)} the label is partly observed, so {these} an outcome the "
            "forecaster can see.")


def baseline_windows_sentence(entry: dict, windows: Sequence[int], level: float = 0.95) -> str:
    """At which windows the forecaster is significantly better (or worse) than the val-loss
    baseline, and where that one feature alone scores higher than the 28 together."""
    cells = {w: entry["windows"][str(w)] for w in windows}
    verdicts = {w: verdict(c.get("diff_val_loss"), level) for w, c in cells.items()}
    by = {v: [w for w, x in verdicts.items() if x == v] for v in (BETTER, WORSE)}
    compared = [w for w, x in verdicts.items() if x != UNDEFINED]
    if not compared:
        return ""
    base = "the val-loss baseline"
    better_at, worse_at = (_and_list([str(w) for w in by[v]]) if by[v] else "" for v in (BETTER, WORSE))
    if by[BETTER] or len(compared) > 1:
        text = (f"The forecaster is significantly better than {base} at "
                + (f"W = {better_at}" if by[BETTER] else f"none of the {len(compared)} windows")
                + (f" and significantly worse at W = {worse_at}" if by[WORSE] else ""))
    elif by[WORSE]:  # the one window compared
        text = f"The forecaster is significantly worse than {base} at W = {worse_at}"
    else:
        text = f"The forecaster is not significantly better than {base} at W = {compared[0]}"
    aurocs = {w: ((cells[w].get("val_loss") or {}).get("auroc"),
                  (cells[w].get("multi") or {}).get("auroc")) for w in compared}
    lower = [(w, b, m) for w, (b, m) in aurocs.items() if _finite(b) and _finite(m) and b > m]
    if lower:
        at = _and_list([f"W = {w} ({esc(fmt(b))} against {esc(fmt(m))})" for w, b, m in lower])
        text += f"; the val-loss feature alone scores higher than the forecaster at {at}"
    return text + "."


def below_chance_sentence(entry: dict, windows: Sequence[int]) -> str:
    """Where a baseline's (unfolded) AUROC is below 0.5: a comparison with it there is one
    with a score that ranks the runs the wrong way round."""
    parts = []
    for key, name in (("val_loss", "val-loss"), ("val_acc", "val-accuracy")):
        low = [(w, a) for w in windows
               if _finite(a := (entry["windows"][str(w)].get(key) or {}).get("auroc")) and a < 0.5]
        if low:
            at = _and_list([f"W = {w} ({esc(fmt(a))})" for w, a in low])
            parts.append(f"the {name} baseline's AUROC is below 0.5 at {at}")
    if not parts:
        return ""
    return (f"Unfolded, {_and_list(parts)}: there {'it ranks' if len(parts) == 1 else 'each ranks'} "
            "the grokking runs mostly below the others, a score that points the wrong way, so the "
            "forecaster's difference from it there says little.")


def hyperparameter_sentence(runs: Sequence[dict], labels: Sequence[int], threshold: str) -> str:
    """How well the hyperparameters alone, known before training, rank the runs: the AUROC of
    weight decay and of the training fraction as scores. Empty where they do not vary or the
    labels have one class."""
    y = np.asarray(labels, dtype=int)
    if len(y) == 0 or y.min() == y.max():
        return ""
    parts = []
    for key in ("weight_decay", "train_frac"):
        name = _AXIS_WORDS[key]
        x = np.array([float(r[key]) for r in runs])
        if np.ptp(x) > 0:
            parts.append(f"{name} {esc(fmt(float(auroc(y, x))))}")
    if not parts:
        return ""
    return (f"The hyperparameters alone, known before training, already rank the runs: as "
            f"scores at threshold {esc(fmt_threshold(threshold))}, {_and_list(parts)} (AUROC), "
            "so part of what the early signals carry is which cell of the grid a run is in.")


def max_accuracy_sentence(entry: dict, windows: Sequence[int]) -> str:
    """The largest val accuracy of any run inside each window: how much of the outcome it sees."""
    acc = [entry["windows"][str(w)].get("max_val_acc_in_window") for w in windows]
    if not windows or not all(_finite(x) for x in acc):
        return ""
    return (f"The largest validation accuracy of any run before step W is "
            f"{_and_list([esc(fmt_pct(x)) for x in acc])} at W = "
            f"{_and_list([str(w) for w in windows])}.")


def reference_comparison_sentence(ours: dict | None, ref: Sequence[float] | None,
                                  window: int, what: str = "multivariate AUROC") -> str:
    """Is our estimate inside the reference paper's CI (and theirs inside ours)?"""
    if ref is None:
        return f"The reference paper reports no {esc(what)} at W = {window}."
    if not ours or not _finite(ours.get("auroc")):
        return (f"Our {esc(what)} at W = {window} is undefined, so it cannot be compared with "
                f"the reference's {esc(fmt(ref[0]))}.")
    a, (lo, hi) = ours["auroc"], ours["ci"]
    in_theirs = ref[1] <= a <= ref[2]
    theirs_in_ours = _finite(lo) and _finite(hi) and lo <= ref[0] <= hi
    ours_s = f"{esc(fmt_estimate(ours))}"
    ref_s = f"{esc(fmt(ref[0]))} {esc(fmt_ci(ref[1:]))}"
    if in_theirs and theirs_in_ours:
        how = "each estimate lies inside the other's CI"
    elif in_theirs or theirs_in_ours:
        how = "one estimate lies inside the other's CI but not the reverse"
    else:
        how = "neither estimate lies inside the other's CI: the results disagree"
    return f"At W = {window} our {esc(what)} is {ours_s} against the reference's {ref_s}; {how}."


def _reference_diff(cell: dict, name: str) -> dict | None:
    """A difference of the reference's tables in analysis.json's shape, for :func:`verdict`."""
    d, p = cell.get(f"diff_{name}"), str(cell.get(f"p_{name}", "nan"))
    if d is None:
        return None
    # "< 0.001" is below every level we test; the printed value otherwise.
    return {"diff": d[0], "ci": d[1:], "p_one_sided": 0.0 if p.startswith("<") else float(p)}


_STANDING = {BETTER: "significantly better than", WORSE: "significantly worse than",
             WEAK: "better, by the one-sided p-value only, than", None: "not significantly "
             "different from"}


def _standing(diff: dict | None, level: float) -> str | None:
    """A difference's verdict, with the three that claim nothing merged into None."""
    v = verdict(diff, level)
    return v if v in (BETTER, WORSE, WEAK) else None


# What our sweep says about a claim of the reference: it shows it; its data rule it out;
# they neither show it nor rule it out; or a class is too small to check it at all. A
# comparison neither shown nor ruled out whose effect size our CI excludes is SMALLER.
HOLDS, CONTRADICTED, UNRESOLVED, UNCHECKED = "holds", "contradicted", "unresolved", "unchecked"
SMALLER = "smaller"
Claim = tuple[str, str, str]  # (what, sentence, status), see reference_claims
_RANK = {WORSE: -1, None: 0, WEAK: 1, BETTER: 2}  # standings, from "worse" to "better"


def comparison_status(theirs: dict, ours: dict, level: float) -> str:
    """Whether our paired difference supports the reference's standing against a baseline.

    It holds where our standing is the reference's, or claims superiority at least as
    strongly. It is contradicted only where our CI excludes the whole side the reference
    claims: Δ > 0 for "better" (also one-sided), Δ < 0 for "worse", Δ = 0 for "no
    significant difference". A CI that excludes the reference's estimate but not its sign
    rules out the size of its difference, not the claim: :data:`SMALLER`. Otherwise, and
    where our CI was not computed, it is unresolved.
    """
    ref_s, our_s = _standing(theirs, level), _standing(ours, level)
    if ref_s == our_s or _RANK[ref_s] > 0 and _RANK[our_s] >= _RANK[ref_s]:
        return HOLDS
    lo, hi = ours.get("ci") or (None, None)
    if not (_finite(lo) and _finite(hi)):
        return UNRESOLVED
    if _RANK[ref_s] > 0:  # "better": ruled out where no Δ > 0 is left
        ruled_out = hi <= 0
    elif _RANK[ref_s] < 0:  # "worse"
        ruled_out = lo >= 0
    else:  # "no significant difference"
        ruled_out = lo > 0 or hi < 0
    if ruled_out:
        return CONTRADICTED
    return UNRESOLVED if lo <= theirs["diff"] <= hi else SMALLER


def _versus_theirs(theirs: dict, ours: dict, status: str) -> str:
    """The end of a comparison claim's sentence: how our CI stands to the reference's Δ."""
    if status == HOLDS:
        return "."
    if status == CONTRADICTED:
        return ", and our CI excludes the side of zero the reference's difference is on."
    if status == SMALLER:
        return (", and our CI excludes the reference's Δ but not its sign: our sweep rules out a "
                "difference of the reference's size, not the reference's claim.")
    return (", and our CI includes the reference's Δ: our sweep neither shows nor rules out the "
            "reference's difference.")


def _comparison_claims(a: dict, reference: dict, window: int, level: float) -> list[Claim]:
    """The forecaster against each baseline at the primary threshold, and against val loss at
    the strict one (the reference: "conclusions are unchanged")."""
    keys = F.threshold_keys(a)
    comparisons = [(keys[0], "val_loss", "val-loss"), (keys[0], "val_acc", "val-accuracy")]
    comparisons += [(k, "val_loss", "val-loss") for k in keys[1:2]]
    out = []
    for key, name, base in comparisons:
        ref_cell = reference.get("tables", {}).get(key, {}).get(str(window))
        if ref_cell is None:
            continue
        t, th = a["thresholds"][key], esc(fmt_threshold(key))
        ours = t["windows"][str(window)].get(f"diff_{name}")
        theirs = _reference_diff(ref_cell, name)
        ref_s, our_s = _standing(theirs, level), _standing(ours, level)
        small = min(t["n_pos"], t["n_neg"])
        tiny = t.get("single_class") or small < MIN_CLASS_SIZE
        defined = bool(ours) and _finite(ours.get("diff"))
        status = UNCHECKED if tiny or not defined else comparison_status(theirs, ours, level)
        if not defined:
            ours_text = _why_undefined(t, window) + "."
        elif tiny:  # no verdict word: the numbers support none
            ours_text = (f"ours is {esc(_diff_numbers(ours, level))}, with only {small} "
                         f"run{'s' if small != 1 else ''} in a class: too few to compare.")
        else:
            ours_text = (f"ours is {_STANDING[our_s]} it ({esc(_diff_numbers(ours, level))})"
                         + _versus_theirs(theirs, ours, status))
        out.append((
            f"the forecaster's standing against the {base} baseline at threshold {th}",
            f"At W = {window} and threshold {th} the reference's forecaster is {_STANDING[ref_s]} "
            f"the {base} baseline ({esc(_diff_numbers(theirs, level))}); {ours_text}",
            status))
    return out


def _why_undefined(entry: dict, window: int) -> str:
    """Why a threshold's model comparison at ``window`` has no number, as "ours ..." words."""
    if entry.get("single_class"):
        return "ours is undefined: every run has the same label"
    if entry["windows"][str(window)].get("multi_note"):
        return "ours was not evaluated (too few runs for its internal cross-validation)"
    return "ours is undefined"


def _best_single_claim(a: dict, claim: dict, features: Any, level: float) -> list[Claim]:
    """Is the reference's strongest feature ours too? Where it is not, a paired bootstrap of
    our strongest against it (``features``: features.parquet) says whether our data rule it out."""
    th, w = claim["threshold"], claim["window"]
    uni = a["thresholds"].get(th, {}).get("windows", {}).get(str(w), {}).get("univariate")
    if not uni:
        return []
    top = top_features(uni, 1)
    mine = (uni.get(claim["feature"]) or {}).get("folded")
    text = (f"The reference's strongest single signal at W = {w} is {code(claim['feature'])} "
            f"(folded AUROC {esc(fmt(claim['folded']))}); ours is "
            f"{_and_list([code(n) for n, _, _ in top])} ({esc(fmt(top[0][2]))}), and "
            f"{code(claim['feature'])} has {esc(fmt(mine))}")
    if claim["feature"] in [n for n, _, _ in top]:
        return [("which single feature is strongest", text + ".", HOLDS)]
    try:
        d = None if features is None or not _finite(mine) else feature_difference(
            a, features, th, w, top[0][0], claim["feature"])
    except (KeyError, ValueError):  # a features table without these runs or features
        d = None
    if d is None or not _finite(d["ci"][0]):
        return [("which single feature is strongest", text + ".", UNRESOLVED)]
    status = CONTRADICTED if d["ci"][0] > 0 else UNRESOLVED
    # Ours is the best of all features on these same runs, which favours it in this test.
    return [("which single feature is strongest",
             f"{text}; the paired difference of the two folded AUROCs is "
             f"{esc(_diff_numbers(d, level))}"
             + (" (ours is picked as the best on the same runs, which favours it): the CI "
                "excludes zero, so our data rule out the reference's feature as the strongest."
                if status == CONTRADICTED else ": the CI includes zero, so our sweep does not "
                "settle which is stronger."), status)]


def _early_accuracy_claim(a: dict, claim: dict) -> list[Claim]:
    k1 = F.threshold_keys(a)[0]
    cell = a["thresholds"][k1]["windows"].get(str(claim["window"]))
    if not cell or not _finite(cell.get("max_val_acc_in_window")):
        return []
    mine = cell["max_val_acc_in_window"]
    return [(f"no run generalising before step {claim['window']}",
             f"The reference puts every run's validation accuracy below about "
             f"{esc(fmt_pct(claim['below'], 0))} before step {claim['window']}; our largest is "
             f"{esc(fmt_pct(mine))}.", HOLDS if mine < claim["below"] else CONTRADICTED)]


def _init_note(a: dict) -> str:
    """The caveat of a claim about training dynamics: they follow the initialisation, which
    the reference does not state."""
    init = (((a.get("sweep") or {}).get("config") or {}).get("model") or {}).get("init")
    return (f" The reference does not state its initialisation; this verdict is for ours "
            f"({esc(init)}), and the dynamics may depend on it." if init else "")


def _fit_claim(a: dict, claim: dict) -> list[Claim]:
    steps = [r.get(FIT_STEP_KEY) for r in a["runs"]]
    if not steps or any(x is None for x in steps):
        return []
    n_fit = sum(0 <= x <= claim["step"] for x in steps)
    reached = [x for x in steps if x >= 0]
    med = (f" (the median run at step {fmt_int(round(float(np.median(reached))))})"
           if reached else "")
    return [(f"every run fitting by step {claim['step']}",
             f"The reference has every run at near-perfect train accuracy by step ≈ {claim['step']}; "
             f"in ours {n_fit} of {len(steps)} reach {esc('99%')} by step {claim['step']}{med}."
             + _init_note(a),
             HOLDS if n_fit == len(steps) else CONTRADICTED)]


def _weight_decay_claim(a: dict) -> list[Claim]:
    labels = a["thresholds"][F.threshold_keys(a)[0]]["labels"]
    groups: dict[float, list[int]] = {}
    for run, y in zip(a["runs"], labels, strict=True):
        groups.setdefault(float(run["weight_decay"]), []).append(int(y))
    lams = sorted(groups)
    rates = [float(np.mean(groups[v])) for v in lams]
    if len(lams) < 3 or max(rates) == 0:
        return []
    best = [v for v, r in zip(lams, rates) if r == max(rates)]
    counts = (f" ({esc(', '.join(f'{sum(groups[v])}/{len(groups[v])}' for v in lams))} at "
              f"λ = {esc(', '.join(f'{v:g}' for v in lams))})")
    intro = "The reference finds grokking concentrated at moderate weight decay; ours "
    if len(best) == len(lams):
        return [("grokking at moderate weight decay",
                 f"{intro}groks at the same rate at every λ{counts}." + _init_note(a), CONTRADICTED)]
    inside = all(lams[0] < v < lams[-1] for v in best)
    where = esc(_and_list([f"{v:g}" for v in best])) + ("" if inside else ", an edge of the grid")
    return [("grokking at moderate weight decay",
             f"{intro}groks most at λ = {where}{counts}." + _init_note(a),
             HOLDS if inside else CONTRADICTED)]


def _count_claims(a: dict, reference: dict, level: float) -> list[Claim]:
    """Equal counts hold; unequal ones are told apart from seed-to-seed noise by Fisher's exact
    test of the two sweeps' 2 × 2 table (grokked or not, theirs or ours)."""
    counts, n_ref = reference.get("grok_counts", {}), reference.get("n_runs")
    n_runs = len(a["runs"])  # analysed: diverged and stopped runs have no label
    n_trained = int((a.get("sweep") or {}).get("n_runs") or n_runs)
    if not n_runs or n_ref != n_trained:
        return []  # another sweep size (as the appendix says): counts are not comparable
    left_out = (f" of the {n_runs} with a known outcome ({n_trained - n_runs} diverged or "
                "stopped early)" if n_trained > n_runs else "")
    out = []
    for key in F.threshold_keys(a):
        if key in counts:
            n, th = a["thresholds"][key]["n_pos"], esc(fmt_threshold(key))
            text = (f"At threshold {th} the reference counts {counts[key]} grokking runs of "
                    f"{n_ref}; ours {n}{left_out}")
            if n == counts[key]:
                out.append((f"how many runs grok at threshold {th}", text + ".", HOLDS))
                continue
            p = float(fisher_exact([[n, n_runs - n], [counts[key], n_ref - counts[key]]]).pvalue)
            status = CONTRADICTED if p < 1 - level else UNRESOLVED
            # Fisher's test treats runs as independent draws; a fixed grid varies less than
            # that, so p errs high: the verdict "not ruled out" is the cautious one here.
            out.append((f"how many runs grok at threshold {th}",
                        f"{text} (Fisher's exact test, two-sided p {esc(_p_text(p))}: "
                        + ("significant at the " if status == CONTRADICTED else
                           "not significant at the ") + f"{1 - level:.0%} level).", status))
    return out


def reference_claims(a: dict, reference: dict, window: int, level: float = 0.95,
                     features: Any = None) -> list[Claim]:
    """Each claim of the reference paper our sweep can check: (what it is about, in words
    without the reference's numbers; the sentence putting theirs beside ours; its status:
    :data:`HOLDS`, :data:`CONTRADICTED`, :data:`UNRESOLVED`, :data:`SMALLER` or
    :data:`UNCHECKED`).

    ``features`` (the features.parquet table) lets the strongest-feature claim be tested;
    without it a claim our point estimates do not show is :data:`UNRESOLVED`.
    """
    claims = reference.get("claims", {})
    out = _comparison_claims(a, reference, window, level)
    if "best_single" in claims:
        out += _best_single_claim(a, claims["best_single"], features, level)
    if "max_val_acc_before" in claims:
        out += _early_accuracy_claim(a, claims["max_val_acc_before"])
    if "fit_by_step" in claims:
        out += _fit_claim(a, claims["fit_by_step"])
    if "moderate_weight_decay" in claims:
        out += _weight_decay_claim(a)
    return out + _count_claims(a, reference, level)


_HOLDS = {HOLDS: "Holds.", CONTRADICTED: "Does not hold.",
          UNRESOLVED: "Neither shown nor ruled out.", UNCHECKED: "Cannot be checked here.",
          SMALLER: "Its size is ruled out, not its sign."}


def claims_summary(claims: Sequence[Claim]) -> str:
    """The Discussion's count of the reference's claims that hold (no reference numbers)."""
    if not claims:
        return ""
    held = [w for w, _, h in claims if h == HOLDS]
    failed = [w for w, _, h in claims if h == CONTRADICTED]
    open_ = [w for w, _, h in claims if h == UNRESOLVED]
    smaller = [w for w, _, h in claims if h == SMALLER]
    unknown = [w for w, _, h in claims if h == UNCHECKED]
    text = (f"Of the {len(claims)} claim{'s' if len(claims) > 1 else ''} of the reference paper "
            f"that @sec:repro checks, {len(held)} hold{'s' if len(held) == 1 else ''} in our sweep")
    if failed:
        text += (f"; our data rule out {len(failed)}: {_and_list(failed)}")
    if smaller:
        text += (f"; for {len(smaller)} our data rule out a difference of the reference's size "
                 f"but not its sign: {_and_list(smaller)}")
    if open_:
        text += (f"; {len(open_)} {'is' if len(open_) == 1 else 'are'} neither shown nor ruled "
                 f"out (our numbers allow both the claim and its negation): {_and_list(open_)}")
    if unknown:
        text += (f"; {len(unknown)} cannot be checked with this sweep's class sizes: "
                 f"{_and_list(unknown)}")
    return text + "."


# ---------------------------------------------------------------------------------------------
# Context: everything the template prints
# ---------------------------------------------------------------------------------------------

def load_reference() -> dict[str, Any]:
    """The reference paper's published numbers (for the Reproduction appendix only)."""
    return json.loads(files("grokcast").joinpath("paper/reference_paper.json").read_text())


def _fmt_diff_p(diff: dict | None) -> str:
    return fmt_p((diff or {}).get("p_one_sided"), (diff or {}).get("n_resamples"))


def _table_rows(analysis: dict, key: str) -> list[list[str]]:
    """Rows of Table 1/2: W, multi, val loss, val acc, Δ loss, p₁, Δ acc, p₁."""
    rows = []
    for w in F.windows(analysis):
        c = analysis["thresholds"][key]["windows"][str(w)]
        rows.append([str(w), fmt_estimate(c.get("multi")), fmt_estimate(c.get("val_loss")),
                     fmt_estimate(c.get("val_acc")),
                     fmt_estimate(c.get("diff_val_loss"), "diff", signed=True),
                     _fmt_diff_p(c.get("diff_val_loss")),
                     fmt_estimate(c.get("diff_val_acc"), "diff", signed=True),
                     _fmt_diff_p(c.get("diff_val_acc"))])
    return rows


def _table3_rows(analysis: dict, key: str, window: int) -> list[list[str]]:
    uni = analysis["thresholds"][key]["windows"][str(window)].get("univariate") or {}
    return [[n, fmt((uni.get(n) or {}).get("auroc")), fmt((uni.get(n) or {}).get("folded"))]
            for n in table3_order(analysis, key, window)]


def _cv_words(cv: str | None) -> str:
    if cv in (None, "loo"):
        return "leave-one-out (LOO) cross-validation over runs"
    if custom_predictor(cv):
        return "the held-out predictions it returns"
    return f"{esc(cv)} cross-validation over runs"


def _model_words(cv: str | None) -> str:
    name = custom_predictor(cv)
    return "an ℓ#sub[2]-regularised logistic regression" if name is None else \
        f"a custom predictor ({esc(name)}) given to the analysis"


def _reference_rows(analysis: dict, ref: dict, key: str) -> list[list[str]]:
    """Reproduction table: per W, the reference's and our AUROC [CI] of multi, val loss, val acc."""
    rows = []
    ref_t = ref["tables"].get(key, {})
    for w in F.windows(analysis):
        c = analysis["thresholds"][key]["windows"][str(w)]
        r = ref_t.get(str(w))
        row = [str(w)]
        for series in ("multi", "val_loss", "val_acc"):
            row.append(NA if r is None else f"{fmt(r[series][0])} {fmt_ci(r[series][1:])}")
            row.append(fmt_estimate(c.get(series)))
        rows.append(row)
    return rows


@dataclass(frozen=True)
class _Facts:
    """What several sections of the paper print, read once from analysis.json."""

    a: dict
    cfg: dict  # the sweep config
    k1: str  # primary threshold key
    k2: str | None  # robustness threshold key
    ws: list[int]  # windows
    w0: int  # the headline window
    level: float  # CI level

    @classmethod
    def read(cls, a: dict) -> _Facts:
        keys = F.threshold_keys(a)
        return cls(a, a["sweep"]["config"] or {}, keys[0], keys[1] if len(keys) > 1 else None,
                   F.windows(a), F.primary_window(a), float(a["settings"]["level"]))

    @property
    def p(self) -> int | None:
        return self.cfg.get("p")

    @property
    def n_steps(self) -> int | None:
        return self.cfg.get("n_steps")

    @property
    def t1(self) -> dict:
        return self.a["thresholds"][self.k1]

    @property
    def t2(self) -> dict | None:
        return self.a["thresholds"][self.k2] if self.k2 else None

    @property
    def c0(self) -> dict:
        """The primary threshold's cell at the headline window."""
        return self.t1["windows"][str(self.w0)]

    @property
    def n_runs(self) -> int:
        return len(self.a["runs"])

    @property
    def n_trained(self) -> int:
        """Runs of the sweep, those left out of the analysis (diverged, stopped) included."""
        return int(self.a["sweep"].get("n_runs") or self.n_runs)

    @property
    def informative(self) -> bool:
        """Whether any feature's AUROC is defined at the headline cell (both classes present)."""
        uni = self.c0.get("univariate") or {}
        return any(_finite((v or {}).get("folded")) for v in uni.values())

    @property
    def n_feat(self) -> int:
        return len(self.a["features"])

    @property
    def cv(self) -> str | None:
        return self.t1.get("cv") or self.a["settings"].get("cv")

    @property
    def lvl(self) -> str:
        return f"{self.level:.0%}"

    @property
    def th1(self) -> str:
        return esc(fmt_threshold(self.k1))

    @property
    def th2(self) -> str:
        return esc(fmt_threshold(self.k2) if self.k2 else NA)

    @property
    def word2(self) -> str | None:
        """``"strict"`` or ``"relaxed"``: the second threshold next to the primary one."""
        return threshold_word(self.k1, self.k2) if self.k2 else None

    @property
    def grok1(self) -> str:
        return esc(f"{self.t1['n_pos']}/{self.n_runs}")

    @property
    def grok2(self) -> str:
        return esc(f"{self.t2['n_pos']}/{self.n_runs}" if self.t2 else NA)

    @property
    def multi_by_w(self) -> dict[int, float | None]:
        return {w: (self.t1["windows"][str(w)].get("multi") or {}).get("auroc") for w in self.ws}

    @property
    def median_by_w(self) -> dict[int, float | None] | None:
        """The multivariate AUROC's median over the random run orders, None without orders."""
        medians = {w: _order_median(self.t1["windows"][str(w)].get("multi_by_order"))
                   for w in self.ws}
        return medians if any(_finite(m) for m in medians.values()) else None

    @property
    def train_time(self) -> str:
        return fmt_duration(self.a["sweep"].get("train_seconds"))


def _varied_clause(cfg: dict) -> str:
    """``, varying the training fraction and seed``: the grid's axes with more than one value."""
    axes = [(name, cfg.get(key) or []) for name, key in (
        ("training fraction", "train_fracs"), ("weight decay", "weight_decays"), ("seed", "seeds"))]
    varied = [name for name, values in axes if len(values) > 1]
    return f", varying the {_and_list(varied)}" if varied else ", all with one setting"


def _grok_count(f: _Facts) -> str:
    """``9/48 runs``, or ``3 of the 15 runs with a known outcome`` when diverged or stopped runs
    were left out."""
    if f.n_runs == f.n_trained:
        return f"{f.grok1} runs"
    return f"{f.t1['n_pos']} of the {f.n_runs} runs with a known outcome"


def _abstract(f: _Facts) -> str:
    c0 = f.c0
    headline = headline_sentence(c0, f.w0, f.level)
    small = small_sample_sentence(f.t1["n_pos"], f.t1["n_neg"], f.k1)
    acc_sentence = window_accuracy_sentence(c0.get("max_val_acc_in_window"), f.w0, f.k1, f.p)
    best_single = best_single_sentence(c0.get("univariate"), f.w0)
    undelayed = no_delay_sentence(f.a["runs"], f.k1)
    return (
        "Grokking — validation accuracy jumping from chance to near-perfect long after the "
        "training loss has converged — is usually studied after it happens. Following a "
        "published study, we ask whether it can be forecast from the first few hundred steps "
        f"of training. On a sweep of {f.n_trained} runs of a one-layer transformer on addition "
        f"modulo {f.p}{_varied_clause(f.cfg)}, {_grok_count(f)} "
        f"reach a maximum validation accuracy of at least {f.th1}. We summarise each run's "
        f"first W steps by {f.n_feat} features and predict the label with "
        f"{_model_words(f.cv)} evaluated by {_cv_words(f.cv)}. {headline} {small} {acc_sentence} "
        f"{best_single} {undelayed} Every number of ours in this paper is computed by grokcast "
        "from the sweep (the reference's own are quoted as such); the sweep, analysis, figures "
        "and this document are regenerated by one command."
    )


def _intro(f: _Facts) -> str:
    return (
        "Small transformers trained on modular arithmetic can reach 100% training accuracy "
        "within a few hundred steps while validation accuracy stays at chance for thousands "
        "more, then jumps: _grokking_ @power2022. Mechanistic work explains the jump by "
        "competing memorising and generalising circuits @nanda2023 @varma2023, and weight "
        "decay and data fraction decide whether it happens @liu2022. We reproduce a study "
        "@reference that frames _grokking forecasting_ as binary classification: from the "
        f"training dynamics of the first W steps, predict whether a run will eventually reach "
        f"a validation accuracy of {f.th1}. Our contributions are the reproduction itself, "
        "with every number of ours computed from the sweep, and an honest statement of which of the "
        "original comparisons our data support."
    )


def _setup(f: _Facts) -> dict[str, str]:
    from grokcast.config import ModelConfig
    from grokcast.model import n_params

    cfg, p, sweep = f.cfg, f.p, f.a["sweep"]
    model, optim, log = cfg.get("model", {}), cfg.get("optim", {}), cfg.get("log", {})
    try:
        n_par = fmt_int(n_params(ModelConfig(**model), p))
    except (TypeError, ValueError):
        n_par = NA
    diverged, stopped = sweep.get("n_diverged") or 0, sweep.get("n_stopped") or 0
    div_note = (f" {diverged} diverged run(s) were left out of the analysis." if diverged else "")
    if stopped:
        div_note += (f" {stopped} run(s) stopped early were left out of the analysis: their "
                     "outcome is unknown.")
    fracs = ", ".join(f"{x:g}" for x in cfg.get("train_fracs", []))
    wds = ", ".join(f"{w:g}" for w in cfg.get("weight_decays", []))
    seeds = ", ".join(str(s) for s in cfg.get("seeds", []))
    lr = format(optim["lr"], "g") if _finite(optim.get("lr")) else NA
    products = ("in fp32" if model.get("precision", "fp32") == "fp32" else
                "with bfloat16 operands (parameters, optimiser state and signals in fp32)")
    n_steps = f.n_steps
    return {
        "task": (f"Addition modulo p = {p}. Each input is the token sequence [a, b, =] and the "
                 f"target is (a + b) mod {p}; the {fmt_int(p * p) if p else NA} pairs are split "
                 f"once (split seed {cfg.get('split_seed')}) into a training fraction "
                 f"f ∈ {{{esc(fracs)}}} and a validation set, the same split for every model "
                 "seed."),
        "model": (f"A one-layer decoder-only transformer without LayerNorm, d#sub[model] = "
                  f"{model.get('d_model')}, {model.get('n_heads')} heads, MLP width "
                  f"{model.get('d_mlp')}, {esc(model.get('init', NA))} initialisation: {n_par} "
                  "parameters."),
        "training": (f"Full-batch AdamW, learning rate {esc(lr)}, "
                     f"β#sub[1] = {optim.get('beta1')}, β#sub[2] = {optim.get('beta2')}, weight "
                     f"decay λ ∈ {{{esc(wds)}}}, {fmt_int(n_steps) if n_steps else NA} steps, "
                     f"seeds {{{esc(seeds)}}}: {f.n_trained} runs, matrix products {products}. "
                     "Training all of them took "
                     f"{esc(f.train_time)} summed over the ensemble chunks (chunks trained in "
                     f"parallel worker processes take less wall time).{div_note}"),
        "signals": (f"Logged every step below step {log.get('dense_until')} and every "
                    f"{log.get('every')} steps after: train and validation loss and accuracy, "
                    "parameter and gradient L#sub[2] norms, the effective rank of the embedding "
                    "W#sub[E] and unembedding W#sub[U], the train logit margin, and the norm and "
                    "cosine alignment of consecutive parameter updates."),
        "label": (f"A run groks when its maximum validation accuracy reaches {f.th1} "
                  f"({f.grok1} runs)."
                  + (f" The {f.word2} threshold {f.th2} ({f.grok2} runs) is the robustness "
                     "check of §6." if f.k2 else "")),
    }


def _phase(f: _Facts) -> str:
    t1, t2 = f.t1, f.t2
    return (
        f"@fig:accuracy shows the train and validation accuracy of all {f.n_runs} runs, and "
        f"@fig:grid the grokking rate over the (f, λ) grid. Out of {f.n_runs} runs, "
        f"{t1['n_pos']} grokked at threshold {f.th1}"
        + (f" and {t2['n_pos']} at {f.th2}. " if t2 else ". ")
        + grid_sentence(f.a["runs"], t1["labels"])
        + " " + dynamics_sentence(f.a["runs"], f.k1)
    )


def _held_out_words(cv: str | None) -> str:
    """How the tables held runs out, as a noun phrase: ``leave-one-out``, ``10-fold CV``."""
    return "leave-one-out" if cv in (None, "loo") else f"{cv} CV"


def _orders_clause(f: _Facts) -> str:
    n = int(f.a["settings"].get("orders") or 0)
    return (f"; to show how much, the evaluation below is repeated with the runs in {n} random "
            "orders" if n else "")


def _method(f: _Facts) -> str:
    multi = (
        f"The {f.n_feat} features are standardised and fed "
        "to an ℓ#sub[2]-regularised logistic regression whose strength is chosen by an internal "
        f"stratified {INNER_FOLDS}-fold CV on accuracy; as in scikit-learn's LogisticRegressionCV "
        "the folds are not shuffled: each takes, within each class, a consecutive block of its "
        "runs in the order given, here that of their run ids, so the chosen strength depends on "
        f"that order{_orders_clause(f)}. The model is evaluated by "
        f"{_cv_words(f.cv)}." if custom_predictor(f.cv) is None else
        f"The {f.n_feat} features are fed to {_model_words(f.cv)}, which returns each run's "
        "held-out P(grok); it is evaluated by those predictions.")
    return (
        f"*Univariate.* Each feature's value at W is a one-dimensional score; its AUROC "
        "below 0.5 means lower values predict grokking, so we also report the folded value "
        f"|AUROC − 0.5| + 0.5. *Multivariate.* {multi} *Baselines.* The end-of-window "
        f"validation loss (negated) and validation accuracy{_prior_baselines_words(f)}. "
        "*Uncertainty.* Percentile "
        f"bootstrap {f.lvl} CIs over runs ({fmt_int(f.a['settings']['n_resamples'])} resamples) "
        "and paired-bootstrap differences multi − baseline with one-sided p-values "
        "p#sub[1] = P(Δ\\* ≤ 0). " + SIGNIFICANCE_NOTE.format(level=f.lvl)
    )


def _prior_baselines_words(f: _Facts) -> str:
    """The method's words for the baselines known before training, where some cell holds them."""
    axes = f.a["settings"].get("hyperparam_axes") or []
    cells = [c for t in (f.t1, f.t2) if t for c in t["windows"].values()]
    if not axes or not any(c.get("axis_scores") for c in cells):
        return ""
    names = _and_list(_axis_symbols(axes))
    text = (f"; and, known before training, {'each grid axis' if len(axes) > 1 else 'the grid axis'} "
            f"{names} as a score (larger {' or '.join(_axis_symbols(axes))} "
            "⇒ grokking)")
    if any(c.get("hyperparams") for c in cells):
        text += (f" and the same logistic regression on the runs' ranks of {names}, fitted and "
                 "held out as the forecaster is")
    return text


def _results(f: _Facts, pair: _Pair) -> dict[str, str]:
    """The main result, figure 5's pair, the univariate ranking, calibration, robustness."""
    c0, t1, t2, w0, ws = f.c0, f.t1, f.t2, f.w0, f.ws
    why = ("the sweep has too few runs for its internal cross-validation"
           if c0.get("multi_note") else "the label has a single class")
    cmp_loss = comparison_sentence(c0.get("diff_val_loss"), "val-loss", f.level, why=why)
    cmp_acc = comparison_sentence(c0.get("diff_val_acc"), "val-accuracy", f.level, why=why)
    small = small_sample_sentence(t1["n_pos"], t1["n_neg"], f.k1)
    acc_sentence = window_accuracy_sentence(c0.get("max_val_acc_in_window"), w0, f.k1, f.p)
    uni_text = " ".join(top_features_sentence(t1["windows"][str(w)].get("univariate"), w)
                        for w in dict.fromkeys((ws[0], w0)))
    robustness = robustness_sentence(t1, t2, w0, f.k1, f.k2, f.level,
                                     (t2 or {}).get("cv") or f.a["settings"].get("cv"))
    compared = (f"the multivariate forecaster {cmp_loss}, and it {cmp_acc}" if not c0.get("multi_note")
                else f"the multivariate forecaster was not evaluated ({why}), so it cannot be compared "
                     "with either baseline")
    return {
        "main_result": (
            f"@tab:main gives the headline numbers for every window. At W = {w0} {compared}. "
            f"{ties_sentence(c0.get('diff_val_loss'), 'val-loss', w0)} "
            f"{small} {acc_sentence} "
            f"{trend_sentence(f.multi_by_w, f.median_by_w)} "
            f"{order_sentence(t1, ws, custom=custom_predictor(f.cv) is not None)} "
            f"{cell_out_sentence(t1, ws, w0, f.level, _held_out_words(f.cv))} "
            f"{baseline_windows_sentence(t1, ws, f.level)} {below_chance_sentence(t1, ws)} "
            f"{max_accuracy_sentence(t1, ws)} {observed_label_sentence(f.a['runs'], ws, f.k1)} "
            "@fig:windows shows the comparison against the window length."),
        "pair": (f"@fig:pair plots two signals at W = {w0}, chosen by a fixed rule "
                 f"({_pair_rule(pair)}): {pair.text}." if f.informative else
                 f"@fig:pair plots two signals at W = {w0} that vary over the runs, chosen by a "
                 f"fixed rule ({_pair_rule(pair)}): {pair.text}. With a single label class no "
                 "feature's AUROC is defined, so the figure shows how the runs spread, not which "
                 "signals carry information."),
        "univariate": (f"@fig:features shows the folded AUROC of the best single features across "
                       f"windows and @tab:univariate ranks all {f.n_feat} at W = {w0}. {uni_text}"),
        "calibration": (
            "@fig:reliability shows reliability diagrams of the held-out probabilities. "
            + calibration_sentence(c0.get("loo_proba"), t1["labels"], w0) + " "
            + reliability_sentence(c0.get("loo_proba"), t1["labels"])),
        "robustness": ((f"The same analysis at the {f.word2} threshold {f.th2} ({f.grok2} "
                        f"runs positive) is in @tab:robust. " if f.k2 else "") + robustness
                       + (f" {order_sentence(t2, ws, f.k2, custom=custom_predictor(f.cv) is not None)}"
                          if t2 else "")),
    }


@dataclass(frozen=True)
class _Pair:
    """Figure 5's pair of features, as the paper names it."""

    text: str
    # |Spearman ρ| below the rule's bound (else the rule fell back to a stronger pair); None
    # where no two features vary over the runs, so there is no pair.
    weak: bool | None
    # Whether the pair's folded AUROCs exist: with a single label class none does, and the
    # rule's ranking falls back to the features' names.
    ranked: bool = True


def _pair_rule(pair: _Pair) -> str:
    """What figure 5's rule did: found a weakly correlated pair, or fell back."""
    if pair.weak is None:
        return "no two features vary over the runs, so it has none to choose from"
    if not pair.ranked:
        return ("no feature has an AUROC (a single label class), so the first pair in name order "
                + (f"with |ρ| < {F.MAX_ABS_RHO}" if pair.weak else "of the least correlated"))
    if pair.weak:
        return f"the strongest pair with |ρ| < {F.MAX_ABS_RHO}"
    return (f"no pair has |ρ| < {F.MAX_ABS_RHO}, so the least correlated of the five strongest "
            "features")


def _figure_pair(res: F.Results, f: _Facts) -> _Pair:
    """Figure 5's pair of features, by the rule the figure uses."""
    at_w = res.features[res.features["window"] == f.w0].set_index("run_id")
    at_w = at_w[[x["name"] for x in f.a["features"] if x["name"] in at_w.columns]]
    folded0 = F.folded_aurocs(f.a, f.k1, f.w0)
    try:
        fx, fy, rho = F.choose_feature_pair(at_w, folded0)
    except ValueError:
        return _Pair("no two non-constant features", None)
    return _Pair(f"{code(fx)} and {code(fy)} (folded AUROC {esc(fmt(folded0.get(fx)))} and "
                 f"{esc(fmt(folded0.get(fy)))}, Spearman ρ = {esc(fmt_signed(rho, 2))} over runs)",
                 abs(rho) < F.MAX_ABS_RHO, _finite(folded0.get(fx)) and _finite(folded0.get(fy)))


def _discussion(f: _Facts, claims: list[Claim]) -> list[str]:
    t1, ws, w0, n_steps = f.t1, f.ws, f.w0, f.n_steps
    paragraphs = [
        " ".join(s for s in (top_features_sentence(t1["windows"][str(w)].get("univariate"), w)
                             for w in dict.fromkeys((ws[0], ws[-1]))) if s),
        (f"{trend_sentence(f.multi_by_w, f.median_by_w)} "
         f"{observed_label_sentence(f.a['runs'], ws, f.k1)} A "
         f"forecast from W = {w0} steps uses {esc(fmt_pct(w0 / n_steps if n_steps else None))} "
         f"of the {fmt_int(n_steps or 0)}-step budget."),
        claims_summary(claims),
    ]
    return [x for x in paragraphs if x]


def _limitations(f: _Facts) -> list[str]:
    return [x for x in (
        (f"The regime is small: p = {f.p}, one transformer block, full-batch AdamW. Whether the "
         "early signals transfer to other tasks, deeper models or mini-batch training is "
         "untested."),
        ("The forecaster is trained and evaluated on one hyperparameter sweep; transfer to "
         "unseen (f, λ) regions is not tested, and the tables' held-out predictions keep a "
         "run's seed-siblings (the same f and λ) in its training set (leaving out whole "
         "cells, where the results give it, takes them out). "
         + hyperparameter_sentence(f.a["runs"], f.t1["labels"], f.k1)),
        prior_baselines_sentence(f.t1, f.ws, f.w0, f.a["settings"].get("hyperparam_axes") or [],
                                 f.level),
        (_uncertainty_limit(f) if not f.t1["single_class"] else
         f"With {f.n_runs} runs, all of one class at threshold {f.th1}, no AUROC, CI or p-value "
         "exists at that threshold: a larger or more varied sweep is needed."),
        (f"The {fmt_int(f.n_steps or 0)}-step budget can label late grokkers as negatives"
         + (f", which is why the primary threshold is the relaxed {f.th1}."
            if f.k2 and f.word2 == "strict" else ".")),
        ("Forecasting a binary outcome is a simplification; predicting the grokking step is "
         "left open."),
    ) if x]


def _uncertainty_limit(f: _Facts) -> str:
    """How wide the headline intervals are, in numbers, and the p-values' resolution."""
    c0, lvl = f.c0, f.lvl
    parts = []
    if _finite((c0.get("multi") or {}).get("auroc")):
        parts.append(f"the {lvl} CI of the forecaster's AUROC at W = {f.w0} is "
                     f"{esc(fmt_ci(c0['multi'].get('ci')))}")
    if _finite((c0.get("diff_val_loss") or {}).get("diff")):
        parts.append("that of its difference from the val-loss baseline "
                     f"{esc(fmt_ci(c0['diff_val_loss'].get('ci'), signed=True))}")
    ci_text = (": " + " and ".join(parts)) if parts else ""
    return (f"With {f.n_runs} runs and {f.t1['n_pos']} positives, the sweep resolves differences "
            f"only down to the width of its intervals{ci_text}; the bootstrap p-values have a "
            f"resolution of 1/{fmt_int(f.a['settings']['n_resamples'])}. The bootstrap resamples "
            "the forecaster's held-out predictions without refitting it, so its intervals and "
            "paired tests leave out the variance of fitting and can be narrower than a refit per "
            "resample would give.")


def _captions(f: _Facts, pair: _Pair) -> dict[str, str]:
    th1, w0 = f.th1, f.w0
    return {
        "fig1": (f"Train (left) and validation (right) accuracy of all {f.n_runs} runs against "
                 "step (symlog axis). Solid dark blue: runs that eventually grok (max val acc ≥ "
                 f"{th1}, {f.t1['n_pos']} runs); dashed orange: the others. Grey: the first "
                 f"W = {w0} steps, the forecaster's input; dotted line: chance 1/{f.p}."),
        "fig2": ("Grokking rate over the (f, λ) grid, seeds pooled; each cell shows "
                 "(grokked runs)/(runs)" + (f", at thresholds {th1} (left) and {f.th2} "
                                            "(right)." if f.t2 else f" at threshold {th1}.")
                 + (" A cell marked — holds no run with a known outcome: its runs diverged or "
                    "were stopped early." if (F.grid_counts(f.a, f.k1)[3] == 0).any() else "")),
        "fig3": (f"Folded AUROC |AUROC − 0.5| + 0.5 of the {F.N_TOP_FEATURES} best single "
                 f"features at W = {w0}, in every window (threshold {th1}; a tie at the last place "
                 "goes to the feature listed first in Table 3). ↓: lower values predict grokking."),
        "fig4": (f"Multivariate forecaster ({esc(F.cv_label(f.cv))}) and the two univariate "
                 "baselines against window "
                 f"length; shaded: {f.lvl} bootstrap CIs; grey dotted line: chance."
                 + (f" Left: threshold {th1}; right: the {f.word2} threshold {f.th2}"
                    + (" (too few runs in a class for a conclusion, see §6)."
                       if small_sample_sentence(f.t2["n_pos"], f.t2["n_neg"], f.k2) else ".")
                    if f.t2 else "")),
        "fig5": (f"Two features at W = {w0}: {pair.text}. Rule: among "
                 f"pairs with |Spearman ρ| < {F.MAX_ABS_RHO} over runs, the pair whose weaker "
                 "member has the highest folded AUROC (ties: the higher sum); if there is none, the "
                 "least correlated pair of the five strongest features"
                 + {True: ".", False: " (the case here).", None: " (here no two vary)."}[pair.weak]
                 + ("" if pair.ranked or pair.weak is None else " No feature has an AUROC here "
                    "(a single label class), so the features were taken in name order.")),
        "fig6": ("Reliability diagrams of the held-out probabilities per window "
                 f"({F.N_RELIABILITY_BINS} equal-width bins; dot area and number: runs in the bin; "
                 "dotted: perfect calibration). Brier scores in the panel titles."),
    }


def _tables(f: _Facts) -> dict[str, Any]:
    a, cv, t2 = f.a, f.cv, f.t2
    return {
        "main": {"rows": _table_rows(a, f.k1),
                 "caption": (f"AUROC [{f.lvl} bootstrap CI] for predicting max val acc ≥ "
                             f"{f.th1} ({f.grok1} runs positive) from the first W steps. "
                             + (f"multi: {f.n_feat}-feature logistic regression, held out by "
                                f"{'LOO' if cv in (None, 'loo') else esc(cv)}" if custom_predictor(cv) is None
                                else f"multi: {_model_words(cv)}, its held-out predictions")
                             + "; val loss (negated) / val "
                             "acc: the end-of-window value alone, its direction fixed in "
                             "advance (lower loss, higher accuracy scores higher; not "
                             "folded). Δ: paired-bootstrap "
                             "difference; p#sub[1]: one-sided p-value.")},
        "robust": None if not f.k2 else {
            "rows": _table_rows(a, f.k2),
            "caption": (f"Robustness: the same analysis at max val acc ≥ {f.th2} "
                        f"({f.grok2} runs positive)."
                        + (f" {esc(t2['message'])}." if t2.get("single_class") else ""))},
        "univariate": {"rows": _table3_rows(a, f.k1, f.w0),
                       "caption": (f"Per-feature AUROC and folded AUROC at W = {f.w0} "
                                   f"(threshold {f.th1}), sorted by the latter. AUROC < 0.5: "
                                   "lower values predict grokking.")},
        "features": {"caption": (f"The {f.n_feat} features, computed from the log rows with "
                                 "step < W.")},
    }


def _reproduction(f: _Facts, reference: dict, claims: list[Claim]) -> dict[str, Any]:
    """The appendix that puts the reference paper's numbers and claims beside ours."""
    a, n_runs, n_steps, keys = f.a, f.n_runs, f.n_steps, [k for k in (f.k1, f.k2) if k]
    ref_counts, ref_n = reference.get("grok_counts", {}), reference.get("n_runs")
    count_rows = []
    for key in keys:
        rc = ref_counts.get(key)
        count_rows.append([fmt_threshold(key), NA if rc is None else f"{rc}/{ref_n}",
                           f"{a['thresholds'][key]['n_pos']}/{n_runs}"])
    ref_t1 = reference.get("tables", {}).get(f.k1, {}).get(str(f.w0), {})
    ref_steps = reference.get("n_steps")
    same_setup = f.n_trained == ref_n and n_steps == ref_steps
    intro = (
        "The reference paper's published values (copied into "
        "grokcast/paper/reference\\_paper.json, used only here) beside ours. "
        + ("Our sweep has the reference's size and step budget "
           f"({ref_n} runs, {fmt_int(ref_steps)} steps)." if same_setup else
           f"Our sweep differs from the reference's ({f.n_trained} vs {ref_n} runs, "
           f"{fmt_int(n_steps or 0)} vs {fmt_int(ref_steps or 0)} steps), so the numbers are not "
           "expected to match.")
    )
    return {
        "intro": intro,
        "sentences": [
            reference_comparison_sentence(f.c0.get("multi"), ref_t1.get("multi"), f.w0),
            reference_comparison_sentence(f.c0.get("val_loss"), ref_t1.get("val_loss"), f.w0,
                                          "val-loss baseline AUROC"),
        ],
        "claims": [f"*{_HOLDS[h]}* {text}" for _, text, h in claims],
        "counts": count_rows,
        "tables": [{"rows": _reference_rows(a, reference, k),
                    "caption": (f"AUROC [CI] at threshold {esc(fmt_threshold(k))}: the "
                                "reference paper's published values (ref., 95% CIs) beside "
                                f"this sweep's (ours, {f.lvl} CIs).")}
                   for k in keys],
    }


def _reproducibility(f: _Facts) -> str:
    a, sweep = f.a, f.a["sweep"]
    return (
        f"grokcast {esc(a.get('grokcast_version', NA))} regenerates this paper from a config "
        "file with one command, `grokcast reproduce --config CONFIG --out DIR`: sweep, "
        "analysis, figures, document. The sweep "
        f"“{esc(sweep.get('name') or NA)}” "
        f"(data hash {esc((sweep.get('hash') or NA)[:12])}) "
        f"took {esc(f.train_time)} of training summed over its ensemble chunks; the analysis took "
        f"{esc(fmt_duration(a.get('timing', {}).get('analysis_seconds')))}. All randomness is "
        f"seeded: the split seed, each run's seed, and the analysis seed "
        f"{a['settings'].get('seed')}.")


def build_context(res: F.Results, reference: dict | None = None) -> dict[str, Any]:
    """Every sentence, number and table cell the template prints, as a JSON-able dict."""
    a = res.analysis
    reference = reference if reference is not None else load_reference()
    f = _Facts.read(a)
    pair = _figure_pair(res, f)
    claims = reference_claims(a, reference, f.w0, f.level, res.features)
    sweep = a["sweep"]
    return {
        "meta": {
            "title": "Forecasting Grokking from Early Training Dynamics",
            "subtitle": "A reproduction with grokcast",
            "version": a.get("grokcast_version", NA), "created": a.get("created", NA),
            "sweep_name": sweep.get("name") or NA, "hash": (sweep.get("hash") or NA)[:12],
        },
        "abstract": _abstract(f),
        "intro": _intro(f),
        "setup": _setup(f),
        "phase": _phase(f),
        "features_intro": (
            f"For each run and window W ∈ {{{esc(', '.join(map(str, f.ws)))}}} we compute "
            f"{f.n_feat} features, listed below, from the log rows with step < W: end-of-window "
            "values, least-squares slopes, generalisation gaps, optimisation variability, and "
            "log/ratio transforms of the losses."),
        "feature_rows": [[x["name"], x["group"], x["description"]] for x in a["features"]],
        "method": _method(f),
        **_results(f, pair),
        "discussion": _discussion(f, claims),
        "limitations": _limitations(f),
        "reproducibility": _reproducibility(f),
        "tables": _tables(f),
        "captions": _captions(f, pair),
        "figures": {k: f"figures/{name}.pdf" for k, name in
                    zip(("fig1", "fig2", "fig3", "fig4", "fig5", "fig6"), F.FIGURE_NAMES)},
        "repro": _reproduction(f, reference, claims),
        "early_stop": early_stop_context(res.root / EARLY_STOP_DIR),
    }


EARLY_STOP_DIR = "early_stop"  # results_dir/early_stop: grokcast.early_stop.write_study output
_POLICY_NAMES = {
    "percentile_val_loss": "stop the same number of runs, worst val loss at W",
    "percentile_val_acc": "stop the same number of runs, worst val acc at W",
    "asha_val_loss": "successive halving (ASHA-style) on val loss",
    "asha_val_acc": "successive halving (ASHA-style) on val acc",
    "median_val_loss": "median rule at W, val loss",
    "median_val_acc": "median rule at W, val acc",
}


def early_stop_context(study_dir: Path) -> dict[str, Any] | None:
    """The early-stopping section, from ``early_stop.json`` when the study was run; else None."""
    path = study_dir / "early_stop.json"
    if not path.is_file():
        return None
    try:
        return _early_stop_section(json.loads(path.read_text(encoding="utf-8"))["summary"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        # A damaged file is named here, not met as a KeyError deep in the renderer.
        raise ValueError(f"{str(path)!r} is not an early_stop.json written by grokcast "
                         f"early-stop-study ({type(err).__name__}: {err}); run the study again "
                         "or remove the file") from None


def _early_stop_section(s: dict[str, Any]) -> dict[str, Any] | None:
    f = s.get("forecaster")
    if not f:
        return None
    rows = [("forecaster, P(grok) below " + f"{f['param']:.4g}", fmt_pct(f["saved"]),
             fmt_pct(f["recall"]), str(f["n_wrongly_stopped"]))]
    for group in ("same_budget", "median"):
        for key, r in (s.get(group) or {}).items():
            rows.append((_POLICY_NAMES.get(key, key), fmt_pct(r["saved"]), fmt_pct(r["recall"]),
                         str(r["n_wrongly_stopped"])))
    text = (f"On a held-out sweep of {s['n_runs']} runs with unseen seeds ({s['n_grok']} of them "
            f"grok at val acc ≥ {s['label_threshold']:g}), we simulate stopping at "
            f"W = {s['window']}. Where the forecaster keeps at least "
            f"{s['min_recall']:.0%} of the grokking runs and saves the most compute, it stops "
            f"{f['n_stopped']} runs and saves {fmt_pct(f['saved'])} of all training steps, keeping "
            f"{fmt_pct(f['recall'])} of the grokking runs. Standard rules at the same budget, and "
            "the median rule at its own, are listed beside it.")
    return {"text": text, "rows": rows, "figure": "figures/early_stop.pdf"}


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def _figures_current(fig_dir: Path, analysis_path: Path) -> bool:
    paths = [fig_dir / f"{n}.pdf" for n in F.FIGURE_NAMES]
    return all(p.is_file() and p.stat().st_mtime >= analysis_path.stat().st_mtime for p in paths)


def _timestamp(created: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(created).timestamp()) if created else None
    except ValueError:
        return None


def render_paper(results_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Render ``paper.pdf`` from a results directory.

    Draws the figures first (into ``results_dir/figures``) unless they are newer than
    ``analysis.json``, writes the Typst source and ``context.json`` to ``out_dir/paper-src``,
    compiles ``out_dir/paper.pdf``, and copies the LaTeX/Markdown tables next to it.

    Parameters
    ----------
    results_dir : directory written by :func:`grokcast.analysis.write_results`
    out_dir : where the PDF goes; default ``results_dir``

    Returns
    -------
    Path of the PDF.
    """
    import typst

    from grokcast.store import atomic_write_bytes

    res = F.load_results(results_dir)
    out = Path(out_dir) if out_dir is not None else res.root
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={str(out)!r} is not allowed: it is a file; expected the directory "
                         "to write paper.pdf and paper-src/ into")
    src = out / "paper-src"
    fig_dir = res.root / "figures"
    if not _figures_current(fig_dir, res.root / "analysis.json"):
        F.make_figures(res.root, fig_dir)
    (src / "figures").mkdir(parents=True, exist_ok=True)
    for name in F.FIGURE_NAMES:
        shutil.copyfile(fig_dir / f"{name}.pdf", src / "figures" / f"{name}.pdf")
    for pattern in ("*.typ", "*.yml"):
        for tpl in TEMPLATE_DIR.glob(pattern):
            shutil.copyfile(tpl, src / tpl.name)
    study_fig = res.root / EARLY_STOP_DIR / "early_stop.pdf"
    if study_fig.is_file():
        shutil.copyfile(study_fig, src / "figures" / "early_stop.pdf")
    context = build_context(res)
    (src / "context.json").write_text(json.dumps(context, indent=1, ensure_ascii=False) + "\n")
    pdf, warns = typst.compile_with_warnings(
        str(src / TEMPLATE), root=str(src), ignore_system_fonts=True,
        timestamp=_timestamp(res.analysis.get("created")))
    for w in warns:
        warnings.warn(f"typst: {w.message}", stacklevel=2)
    path = out / "paper.pdf"
    atomic_write_bytes(path, pdf)
    if out.resolve() != res.root.resolve():
        for k in (1, 2, 3):
            for ext in ("tex", "md"):
                table = res.root / f"table{k}.{ext}"
                if table.is_file():
                    shutil.copyfile(table, out / table.name)
    return path
