"""The paper's sentences, each chosen from the numbers of ``analysis.json`` (pure: dicts in, Typst
markup out).

A sentence that compares two numbers is chosen from their confidence intervals and p-values,
never written for one particular outcome.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TypeGuard, TypeVar

import numpy as np

from grokcast import figures as F
from grokcast.logistic import loo_predictions
from grokcast.paper.formatting import (
    _finite,
    code,
    esc,
    fmt,
    fmt_apart,
    fmt_ci,
    fmt_estimate,
    fmt_int,
    fmt_p,
    fmt_pct,
    fmt_signed,
    fmt_threshold,
    p_clause,
    plural,
)
from grokcast.signals import reaches
from grokcast.stats import auroc, format_percent, strength_key

_T = TypeVar("_T")

BETTER, WEAK, AHEAD, NOT_BETTER, WORSE, UNDEFINED = (
    "better", "weak", "ahead", "not_better", "worse", "undefined")


def alpha(level: float) -> float:
    """The significance level ``1 − level`` as written (0.05 for 0.95): computed in floats it is
    0.050000000000000044 but 0.09999999999999998 for 0.9, so float error, not the convention
    ``p < α``, decided whether a p-value of exactly 0.05 (100 of 2,000 resamples) or 0.1 was
    significant."""
    return round(1 - level, 12)


def verdict(diff: dict | None, level: float = 0.95) -> str:
    """Classify a paired-bootstrap difference ``multi − baseline``.

    Returns
    -------
    ``"better"``: the ``level`` CI lies above zero; ``"worse"``: below zero;
    ``"weak"``: the CI includes zero but the one-sided p-value is below ``1 − level``
    (:func:`alpha`; a p-value equal to it is not);
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
    if _finite(diff.get("p_one_sided")) and diff["p_one_sided"] < alpha(level):
        return WEAK
    return AHEAD if diff["diff"] > 0 else NOT_BETTER


def _diff_numbers(diff: dict, level: float) -> str:
    """``Δ = +0.137, 95% CI [+0.031, +0.271], p₁ = 0.002``; without p₁ for a difference
    significantly below zero: p₁ = P(Δ* ≤ 0) tests "better", and its value near 1 printed
    beside "worse" would read as the opposite of what it means."""
    text = f"Δ = {fmt_signed(diff['diff'])}, {format_percent(level)} CI {fmt_ci(diff['ci'], signed=True)}"
    if verdict(diff, level) == WORSE:
        return text
    return f"{text}, {p_clause(diff, alpha(level))}"


def comparison_sentence(diff: dict | None, baseline: str, level: float = 0.95, *,
                        why: str = "the label has a single class") -> str:
    """How the multivariate forecaster compares with one baseline, as a predicate.

    ``"significantly outperforms the val-loss baseline (Δ = +0.137, 95% CI [+0.031, +0.271],
    p₁ = 0.002)"`` only when the CI of the difference excludes zero; otherwise a sentence
    that says what the numbers do support. Meant to follow "the multivariate forecaster".
    """
    v = verdict(diff, level)
    base = f"the {esc(baseline)} baseline"
    if diff is None or v == UNDEFINED:
        return f"cannot be compared with {base}: {why}"
    nums = esc(_diff_numbers(diff, level))
    return {
        BETTER: f"significantly outperforms {base} ({nums})",
        WORSE: f"is significantly worse than {base} ({nums})",
        WEAK: (f"is ahead of {base}, but the {format_percent(level)} CI of the difference includes zero "
               f"({nums}); only a one-sided test at the {format_percent(1 - level)} level would call it "
               "significant"),
        AHEAD: (f"is ahead of {base}, but not significantly: the {format_percent(level)} CI of the "
                f"difference includes zero ({nums})"),
        NOT_BETTER: f"does not outperform {base} ({nums})",
    }[v]


def ties_sentence(diff: dict | None, baseline: str, window: int) -> str:
    """How many bootstrap resamples tie the forecaster with a baseline, and the mid-p.

    ``p₁ = P(Δ* ≤ 0)`` counts the resamples where both get the same AUROC against the
    forecaster; where they are many, the mid-p (``p₁ − ties / 2``) says what counting them
    half would give. Silent below 1% of the resamples or where no ``ties`` were recorded.
    The mid-p is rounded to 12 decimals before it is printed: both are counts over the
    resamples, and their float difference (0.0045 − 0.002 / 2 = 0.0034999...) rounded down
    where :func:`~grokcast.stats.format_p` rounds the count's value half up.
    """
    ties, p = (diff or {}).get("ties"), (diff or {}).get("p_one_sided")
    if not (_finite(ties) and _finite(p)) or ties < 0.01:
        return ""
    n = (diff or {}).get("n_resamples")
    return (f"In {esc(fmt_pct(ties))} of the bootstrap resamples at W = {window} the forecaster "
            f"and the {esc(baseline)} baseline get equal AUROCs (Δ\\* = 0); p₁ counts these "
            f"ties against the forecaster, and counting them half (the mid-p) gives "
            f"{esc(fmt_p(max(round(p - ties / 2, 12), 0.0), n))}.")


def lone_run_clause(n_pos: int, n_neg: int) -> str:
    """Why a held-out AUROC with one run in a class says nothing ('' with more in each)."""
    if min(n_pos, n_neg) != 1:
        return ""
    which = "grokking" if n_pos == 1 else "non-grokking"
    return (f"with a single {which} run, held out it leaves none of its class to learn from, so "
            "the forecaster's held-out AUROC says nothing about the model")


def headline_sentence(cell: dict, window: int, level: float = 0.95, *,
                      n_pos: int | None = None, n_neg: int | None = None) -> str:
    """The abstract's result: multi AUROC at W and how it compares with the val-loss baseline
    (no comparison where ``n_pos`` or ``n_neg`` is 1: :func:`lone_run_clause`)."""
    multi = cell.get("multi")
    if cell.get("multi_note"):
        return f"At W = {window} the forecaster was not evaluated: {esc(cell['multi_note'])}."
    if not multi or not _finite(multi.get("auroc")):
        # The reason only where the counts show it: beside "10/48 runs" it contradicted them.
        one_class = n_pos is not None and n_neg is not None and min(n_pos, n_neg) == 0
        return (f"At W = {window} the forecaster's AUROC is undefined"
                + (" because every run has the same label." if one_class else "."))
    loss = cell.get("val_loss") or {}
    v = verdict(cell.get("diff_val_loss"), level)
    ours, theirs = (fmt_apart(multi["auroc"], loss["auroc"]) if _finite(loss.get("auroc"))
                    else (fmt(multi["auroc"]), fmt(None)))
    lead = (f"At the {window}-step mark the multivariate forecaster reaches a held-out AUROC "
            f"of {esc(ours)} ({format_percent(level)} CI {esc(fmt_ci(multi.get('ci')))})")
    tail = f"the validation-loss baseline's {esc(theirs)}"
    d = cell.get("diff_val_loss") or {}
    lone = lone_run_clause(n_pos, n_neg) if n_pos is not None and n_neg is not None else ""
    if lone:  # the difference's CI can exclude zero, but nothing is significant about it
        return f"{lead}, against {tail}; {lone}."
    if v == BETTER:
        return f"{lead}, significantly above {tail} ({esc(p_clause(d, alpha(level)))})."
    if v == WORSE:
        return (f"{lead}, significantly below {tail} (difference {format_percent(level)} CI "
                f"{esc(fmt_ci(d.get('ci'), signed=True))}).")
    if v in (WEAK, AHEAD):
        return (f"{lead}, above {tail}, but the {format_percent(level)} CI of the difference includes zero "
                f"({esc(p_clause(d, alpha(level)))}).")
    if v == NOT_BETTER:
        return f"{lead}, which does not exceed {tail}."
    return f"{lead}."


ABOVE_CHANCE = 2.0  # a val accuracy this many times chance counts as "above chance" in words


def logged_steps(a: dict) -> list[int] | None:
    """The steps the analysed sweep's log schedule logs (its config's ``[log]`` and
    ``n_steps``); None where analysis.json records no readable config."""
    from grokcast.config import ConfigError, SweepConfig

    try:
        cfg = SweepConfig.from_dict((a.get("sweep") or {}).get("config") or {})
    except (ConfigError, TypeError, ValueError):
        return None
    return cfg.log.steps(cfg.n_steps)


def last_logged_before(steps: Sequence[int] | None, window: int) -> int | None:
    """The last of ``steps`` below ``window`` where it is not ``window − 1`` (the log skips
    steps just before W), else None: where a sentence about "before step W" must say so."""
    below = [t for t in steps or () if t < window]
    return max(below) if below and max(below) < window - 1 else None


def window_accuracy_sentence(max_acc: float | None, window: int, threshold: str,
                             p: int | None, *, last_logged: int | None = None) -> str:
    """Whether any run has generalised by step W (is the forecast really a forecast?).

    Below the threshold the label is not yet observed; where some run's val accuracy is
    already :data:`ABOVE_CHANCE` times chance or more, the sentence says so, since the window
    then sees generalisation begin. ``last_logged``: the last logged step before W where the
    log skips the steps just before it (:func:`last_logged_before`), named, since the
    accuracy is the largest at the logged steps only.
    """
    if not _finite(max_acc):
        return f"The validation accuracy before step {window} was not logged."
    # The statement covers the logged steps only.
    step = window if last_logged is None else (
        f"{window} (at the logged steps, the last at step {last_logged})")
    acc = esc(fmt_pct(max_acc))
    if not reaches(max_acc, float(threshold)):
        chance = (f" (chance is 1/{p} ≈ {fmt_pct(1 / p)}; this is {max_acc * p:.1f} times "
                  "chance)") if p else ""
        begun = (", though some run's validation accuracy is already above chance"
                 if p and max_acc * p >= ABOVE_CHANCE else "")
        return (f"Before step {step} the largest validation accuracy of any run is {acc}"
                f"{esc(chance)}, so no run has yet reached the label threshold "
                f"{esc(fmt_threshold(threshold))}: the label is not yet observed{begun}.")
    return (f"Before step {step} some run already reaches a validation accuracy of {acc}, at or "
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
    # Equal up to float error is equal: a median over an even number of orders averages two
    # AUROCs, and (k1/n + k2/n)/2 can land one bit off the same ratio read directly.
    diffs = np.diff([strength_key(a) for _, a in pts])
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
    best = pts[int(np.argmax([strength_key(a) for _, a in pts]))]
    text = (f"it goes {span}, with its maximum {esc(fmt(best[1]))} at W = {best[0]}"
            if kind.startswith("is not monotone") else f"it goes {span}")
    med = [(w, a) for w, a in sorted((medians or {}).items()) if _finite(a)]
    if len(med) < 2:
        return f"The multivariate AUROC {kind}: {text}."
    return (f"With the runs in run_id order the multivariate AUROC {kind}: {text}; its median "
            f"over the random orders {_trend(med)} ({', '.join(esc(fmt(a)) for _, a in med)} "
            f"at W = {_and_list([str(w) for w, _ in med])}).")


# Fewer random run orders than this give a range but no median worth a sentence. The rule
# for every median over the orders the paper prints (:func:`_order_median`): it is of this
# many orders or more that have an AUROC, and the count said beside it is of those
# (:func:`orders_words`), not of the orders run.
MIN_ORDERS = 5


def order_sentence(t: dict, ws: Sequence[int], threshold: str | None = None, *,
                   custom: bool = False) -> str:
    """How the forecaster's AUROC moves with the order of the runs (``multi_by_order``).

    ``threshold`` names the threshold where it is not the one the paragraph is about;
    ``custom``: the held-out predictions came from a custom predictor, whose folds (if any)
    grokcast does not know. The spans are of the orders that have an AUROC, with a median
    where those are :data:`MIN_ORDERS` or more. Silent where a class has fewer than
    :data:`MIN_CLASS_SIZE` runs: there the AUROCs themselves are degenerate.
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
        f" (median {esc(fmt(m))})" if (m := _order_median(a)) is not None else "")
        for _, a, _, _ in rows])
    # n is the orders the runs were put in; an order's AUROC may be null, and the spans and
    # medians are of the orders that have one, so where that is fewer their count is said.
    defined = [len(a) for _, a, _, _ in rows]
    some = f" (defined in {_counts_words(defined)} of them)" if min(defined) < n else ""
    at = f"At threshold {esc(fmt_threshold(threshold))}, with" if threshold else "With"
    why = "" if custom else " (the cross-validation's folds change with the order)"
    text = (f"{at} the runs in {n} random order{'s' if n > 1 else ''} instead of run_id "
            f"order{why}, the forecaster's AUROC at W = "
            f"{_and_list([str(w) for w, *_ in rows])}{some} ranges over {spans}")
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


def _counts_words(counts: Sequence[int]) -> str:
    """``"5"`` where every count is 5, else each in turn: ``"5, 4 and 5"``."""
    return str(counts[0]) if len(set(counts)) == 1 else _and_list([str(c) for c in counts])


def orders_words(values: Sequence[Sequence[float | None] | None]) -> str:
    """``"20 random run orders"``: how many orders a number taken over the finite AUROCs of
    ``values`` (one list per window, None or NaN for an order without one) is of, one count
    where every window has the same; ``"... that have an AUROC"`` where some order has none."""
    used = [sum(_finite(a) for a in v or []) for v in values]
    many = any(c != 1 for c in used)
    some = any(c < len(v or []) for c, v in zip(used, values))
    return (f"{_counts_words(used)} random run order{'s' if many else ''}"
            + (f" that {'have' if many else 'has'} an AUROC" if some else ""))


def cell_out_sentence(t: dict, ws: Sequence[int], headline: int, level: float = 0.95,
                      held_out: str = "leave-one-out") -> str:
    """The forecaster's AUROC leaving out a whole grid cell at a time (``multi_cell_out``)
    beside the tables' (``held_out`` names how they held runs out), in run_id order and, with
    :data:`MIN_ORDERS` run orders or more that have an AUROC, as medians over those orders,
    since both depend on the order. Silent where it was not computed or a class is tiny."""
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
        text += f" ({format_percent(level)} CI at W = {headline}: {esc(fmt_ci(top.get('ci')))})"

    medians = [(_order_median(c.get("multi_cell_out_by_order")),
                _order_median(c.get("multi_by_order")))
               for *_, c in rows]
    if all(_finite(a) and _finite(b) for a, b in medians):
        # Each median is of the orders that have an AUROC, which need not be the same orders
        # (nor as many) for the two models.
        out = orders_words([c.get("multi_cell_out_by_order") for *_, c in rows])
        loo = orders_words([c.get("multi_by_order") for *_, c in rows])
        text += (f"; over the {out} its median is "
                 f"{_and_list([esc(fmt(a)) for a, _ in medians])}, against {held_out}'s "
                 f"{_and_list([esc(fmt(b)) for _, b in medians])}"
                 + ("" if loo == out else f" over the {loo}"))
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
    given = cells[headline].get("multi_by_order") or []
    orders = [a for a in given if _finite(a)]
    if len(orders) >= MIN_ORDERS:
        above = sum(a > scores[best]["auroc"] for a in orders)
        count = ("all" if above == len(orders) else "none" if above == 0 else str(above))
        text += (f". Over the {orders_words([given])} the forecaster's AUROC at "
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
    ci = f"{format_percent(level)} CI {esc(fmt_ci(hp.get('ci')))}"
    text = (f"The same logistic regression as the forecaster's, fitted and held out the same way "
            f"on the runs' ranks of {_and_list(_axis_symbols(axes))}, "
            f"has an AUROC of {esc(fmt(hp['auroc']))}")
    # Only the AUROC is the same at every window: each window's CI has its own resamples.
    text += (" (the same at every window, as its inputs do not depend on W)" if same
             else f" at W = {headline} ({ci})")
    if strength_key(hp["auroc"]) < strength_key(best_auroc):  # not by float error alone
        text += f", below {esc(best_name)} alone (a difference not tested)"
    if same:
        text += f"; at W = {headline} its {ci.replace(' CI ', ' CI is ')}"
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


def _all_known(steps: list[_T | None]) -> TypeGuard[list[_T]]:
    """Whether every step is recorded (analysis.json's older files lack them)."""
    return all(s is not None for s in steps)


def dynamics_sentence(runs: Sequence[dict], threshold: str) -> str:
    """When the runs fit their train sets and when the grokkers reach the label threshold,
    from the first logged steps in analysis.json ('' for a file without them)."""
    fit = [r.get(FIT_STEP_KEY) for r in runs]
    hit = [(r.get("step_val_acc") or {}).get(threshold) for r in runs]
    if not (_all_known(fit) and _all_known(hit)):
        return ""
    reached = np.array([s for s in fit if s >= 0])
    text = ""
    if reached.size:
        never = len(fit) - reached.size
        # "As logged", as the grokking steps are: past the log's dense part a first logged
        # step can lie up to a logging interval after the step the run got there.
        when = (f"at step {fmt_int(reached[0])} (as logged)" if reached.min() == reached.max()
                else f"between steps {fmt_int(reached.min())} and {fmt_int(reached.max())} "
                f"(median {fmt_int(round(float(np.median(reached))))}; steps as logged)")
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


def _n_grokkers(runs: Sequence[dict], threshold: str) -> int:
    hits = [(r.get("step_val_acc") or {}).get(threshold) for r in runs]
    return sum(h is not None and h >= 0 for h in hits)


def _grokkers(n_delays: int, runs: Sequence[dict], threshold: str) -> str:
    """``10 runs that grok``, or ``9 runs that grok and fit`` where some grokker never fits."""
    n_grok = _n_grokkers(runs, threshold)
    return f"{n_delays} runs that grok" + ("" if n_delays == n_grok else " and fit")


def _one_grokker(runs: Sequence[dict], threshold: str) -> str:
    """The subject for the one grokker that fits: ``The run that groks`` where it is the only
    grokker, else ``The one run that fits of the 3 that grok``."""
    n_grok = _n_grokkers(runs, threshold)
    return "The run that groks" if n_grok == 1 else f"The one run that fits of the {n_grok} that grok"


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
        return (f"{_one_grokker(runs, threshold)} reaches a validation accuracy of {level} no later than a "
                f"train accuracy of {fit} (as logged): it generalises as it fits, without the "
                "delay that defines grokking.")
    they = "it generalises as it fits" if n_now == 1 else "they generalise as they fit"
    return (f"In {n_now} of the {_grokkers(delays.size, runs, threshold)}, validation accuracy "
            f"reaches {level} no later than train accuracy reaches {fit} (as logged): {they}, "
            "without the delay that defines grokking.")


def delay_sentence(runs: Sequence[dict], threshold: str) -> str:
    """Whether the runs that grok generalise long after fitting, as grokking is defined."""
    delays = np.array(generalisation_delays(runs, threshold))
    if not delays.size:
        return ""
    late = delays[delays > 0]
    if late.size == delays.size:
        who = (_one_grokker(runs, threshold) if late.size == 1 else
               f"Each of the {_grokkers(delays.size, runs, threshold)}")
        return (f"{who} reaches a train accuracy of {esc('99%')} first, and a validation accuracy "
                f"of {esc(fmt_threshold(threshold))} {_steps_span(late)} later.")
    text = no_delay_sentence(runs, threshold)
    if late.size:
        other = "other one" if late.size == 1 else f"other {late.size}"
        text += f" In the {other} the delay is {_steps_span(late)}."
    return text


def top_features(univariate: dict | None, k: int = 3) -> list[tuple[str, float, float]]:
    """The ``k`` features with the highest folded AUROC: (name, auroc, folded), best first,
    and every feature tied with the k-th (features that are monotone functions of one another,
    such as a loss and its log, tie exactly).

    Ties keep the order of ``univariate`` (analysis.json lists the features in their defined
    order), as the univariate table (``table3.md``, the paper's appendix) and figure 3 do.
    """
    if not univariate:
        return []
    rows = [(n, e["auroc"], e["folded"]) for n, e in univariate.items() if _finite(e.get("folded"))]
    rows.sort(key=lambda r: -strength_key(r[2]))  # stable: ties stay in feature order
    if len(rows) <= k:
        return rows
    return [r for r in rows if strength_key(r[2]) >= strength_key(rows[k - 1][2])]


def _and_list(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# The baselines' features, and the sign each baseline scores its feature with (analysis:
# val_loss scores -end_val_loss, val_acc end_val_acc). A folded AUROC hides the direction: a
# feature is "the baseline itself" only where it ranks the runs the baseline's way round.
BASELINE_FEATURES = {"end_val_loss": ("val-loss", -1), "end_val_acc": ("val-accuracy", 1)}


def best_single_sentence(univariate: dict | None, window: int) -> str:
    """The strongest single feature at W, or every feature tied for strongest."""
    top = top_features(univariate, 1)
    if not top:
        return ""
    folded = esc(fmt(top[0][2]))
    which = _baselines_among(top)
    base_note = (f", among them {which}" if which and len(top) > 1 else
                 f": {which}" if which else "")
    if len(top) == 1:
        return (f"The strongest single early signal at W = {window} is {code(top[0][0])}, with "
                f"folded AUROC {folded}{base_note}.")
    names = _and_list([code(n) for n, _, _ in top])
    # Equal AUROCs do not mean equal rankings of the runs: the sentence claims the tie only.
    return (f"At W = {window}, {len(top)} features tie as the strongest single early signal "
            f"(folded AUROC {folded}): {names}{base_note}.")


def _baselines_among(top: list[tuple[str, float, float]]) -> str:
    """Which of the strongest features are a baseline's: ``the val-loss baseline itself``, or
    its feature read the other way round, whose baseline scores 1 - the folded AUROC."""
    same: list[str] = []
    flipped: list[str] = []
    for name, raw, _ in top:
        if name in BASELINE_FEATURES:
            label, sign = BASELINE_FEATURES[name]
            (same if sign * (raw - 0.5) >= 0 else flipped).append(label)
    parts = []
    if same:
        parts.append(f"the {_and_list(same)} baselines themselves" if len(same) > 1 else
                     f"the {same[0]} baseline itself")
    if flipped:
        whose, score = (("baselines' features", "baselines score") if len(flipped) > 1 else
                        ("baseline's feature", "baseline scores"))
        parts.append(f"the {_and_list(flipped)} {whose} read the other way round (the {score} "
                     f"AUROC {esc(fmt(1 - top[0][2]))})")
    return _and_list(parts) if parts else ""


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


# The forecaster's internal CV for C, read from the function that runs it (not a copy that
# could drift from it).
INNER_FOLDS = inspect.signature(loo_predictions).parameters["cv"].default


def loo_small_class_sentence(n_pos: int, n_neg: int, auroc: float | None) -> str:
    """Why leave-one-out AUROCs with a tiny class can fall below 0.5, and, where a class has
    two runs, what grokcast does where scikit-learn would stop ('' when the class is not tiny)."""
    small = min(n_pos, n_neg)
    if small >= MIN_CLASS_SIZE:
        return ""
    which = "grokking" if n_pos <= n_neg else "non-grokking"
    if small == 1:  # grokcast.logistic: an outer training set of one class predicts that class
        return (f"Under leave-one-out, the one {which} run, held out, leaves none of its class to "
                f"learn from: it is predicted as the other class outright (P(grok) = "
                f"{0 if which == 'grokking' else 1}, where scikit-learn's LogisticRegressionCV "
                "would stop with an error), on the wrong side of every run of the other class, "
                "which puts the AUROC at or near 0 by construction: it is no evidence of a "
                "signal in either direction.")
    others, every = ((f"the other {which} run", "both") if small == 2 else
                     (f"the other {small - 1} {which} runs", f"all {small}"))
    text = (f"Under leave-one-out, each held-out {which} run is predicted by a model fitted on "
            f"{others}, while every other run's model sees {every}: with so few, that shift can "
            f"rank the held-out {which} runs against their label")
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
                f"label ({n_pos} of {n_pos + n_neg} {plural(n_pos + n_neg, 'run')} positive), so "
                "AUROC is undefined and the "
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
    ours, theirs = fmt_apart(brier, ref)  # "below" is not said of two numbers printed alike
    return (f"At W = {window} the Brier score of the held-out probabilities is "
            f"{esc(ours)}, {cmp} the {esc(theirs)} of always predicting the base rate "
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
    if not windows or not _all_known(hit):
        return ""
    seen = [sum(0 <= s < w for s in hit) for w in windows]
    level = esc(fmt_threshold(threshold))
    if not any(seen):
        return (f"No run reaches a validation accuracy of {level} inside any window: every "
                "window's prediction is a forecast.")
    ws = _and_list([str(w) for w in windows])
    partly = [str(w) for w, n in zip(windows, seen) if n]
    these = "those AUROCs partly measure" if len(partly) > 1 else "its AUROC partly measures"
    # Every run groks: one label class, no AUROC for the observed label to inflate.
    scored = "" if min(hit) >= 0 else f", so {these} an outcome the forecaster can see"
    return (f"Runs that already reach a validation accuracy of {level} inside the window (log "
            f"rows with step < W): {_and_list([str(n) for n in seen])} at W = {ws}. At "
            f"W = {_and_list(partly)} the label is partly observed{scored}.")


def baseline_windows_sentence(entry: dict, windows: Sequence[int], level: float = 0.95) -> str:
    """At which windows the forecaster is significantly better (or worse) than the val-loss
    baseline, and where that one feature alone scores higher than the 28 together."""
    lone = lone_run_clause(entry.get("n_pos", 0), entry.get("n_neg", 0))
    if lone:
        return f"The forecaster is not compared with the val-loss baseline: {lone}."
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
    # Equal up to float error is equal: AUROCs are ratios of pair counts.
    lower = [(w, b, m) for w, (b, m) in aurocs.items()
             if _finite(b) and _finite(m) and strength_key(b) > strength_key(m)]
    if lower:
        at = _and_list([f"W = {w} ({' against '.join(esc(x) for x in fmt_apart(b, m))})"
                        for w, b, m in lower])
        text += f"; the val-loss feature alone scores higher than the forecaster at {at}"
    return text + "."


def below_chance_sentence(entry: dict, windows: Sequence[int]) -> str:
    """Where a baseline's (unfolded) AUROC is below 0.5: a comparison with it there is one
    with a score that ranks the runs the wrong way round."""
    parts, compared = [], False
    for key, name in (("val_loss", "val-loss"), ("val_acc", "val-accuracy")):
        low = [(w, a) for w in windows
               if _finite(a := (entry["windows"][str(w)].get(key) or {}).get("auroc")) and a < 0.5]
        if low:
            # fmt_apart: 0.4998 (a 50 × 50 sweep's step) printed "0.500" beside "below 0.5".
            at = _and_list([f"W = {w} ({esc(fmt_apart(a, 0.5)[0])})" for w, a in low])
            parts.append(f"the {name} baseline's AUROC is below 0.5 at {at}")
            compared |= any(entry["windows"][str(w)].get(f"diff_{key}") for w, _ in low)
    if not parts:
        return ""
    # Where the forecaster was not evaluated there is no difference from it to discount.
    return (f"Unfolded, {_and_list(parts)}: there {'it ranks' if len(parts) == 1 else 'each ranks'} "
            "the grokking runs mostly below the others, a score that points the wrong way"
            + (", so the forecaster's difference from it there says little." if compared else "."))


# The folded AUROC (either direction) from which an axis is said to rank the runs: below
# it, the sentence says they rank them little better than chance.
HYPERPARAMETERS_RANK = 0.7


def hyperparameter_sentence(runs: Sequence[dict], labels: Sequence[int], threshold: str) -> str:
    """How well the hyperparameters alone, known before training, rank the runs: the AUROC of
    weight decay and of the training fraction as scores. Empty where they do not vary or the
    labels have one class."""
    y = np.asarray(labels, dtype=int)
    if len(y) == 0 or y.min() == y.max():
        return ""
    parts, folded = [], []
    for key in ("weight_decay", "train_frac"):
        name = _AXIS_WORDS[key]
        x = np.array([float(r[key]) for r in runs])
        if np.ptp(x) > 0:
            a = float(auroc(y, x))
            parts.append(f"{name} {esc(fmt(a))}")
            folded.append(max(a, 1 - a))
    if not parts:
        return ""
    scores = f"as scores at threshold {esc(fmt_threshold(threshold))}, {_and_list(parts)} (AUROC)"
    if max(folded) < HYPERPARAMETERS_RANK:
        return (f"The hyperparameters alone, known before training, rank the runs little better "
                f"than chance: {scores}.")
    return (f"The hyperparameters alone, known before training, already rank the runs: "
            f"{scores}, so part of what the early signals carry is which cell of the grid a run "
            "is in.")


def max_accuracy_sentence(entry: dict, windows: Sequence[int]) -> str:
    """The largest val accuracy of any run inside each window: how much of the outcome it sees."""
    acc = [entry["windows"][str(w)].get("max_val_acc_in_window") for w in windows]
    if not windows or not all(_finite(x) for x in acc):
        return ""
    return (f"The largest validation accuracy of any run before step W is "
            f"{_and_list([esc(fmt_pct(x)) for x in acc])} at W = "
            f"{_and_list([str(w) for w in windows])}.")
