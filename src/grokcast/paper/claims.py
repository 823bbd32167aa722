"""The reference paper's claims beside our numbers: for each, whether it holds, whether our
data rule it out, or whether our sweep neither shows nor rules it out (pure: dicts in, Typst
markup out). The reference's values (``grokcast/paper/reference_paper.json``) are read only
for this comparison, which the paper prints as its Reproduction appendix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import fisher_exact

from grokcast import figures as F
from grokcast.analysis import feature_difference
from grokcast.paper.formatting import (
    _finite,
    _p_text,
    code,
    esc,
    fmt,
    fmt_ci,
    fmt_estimate,
    fmt_int,
    fmt_pct,
    fmt_signed,
    fmt_threshold,
)
from grokcast.paper.sentences import (
    BETTER,
    FIT_STEP_KEY,
    MIN_CLASS_SIZE,
    WEAK,
    WORSE,
    _and_list,
    _diff_numbers,
    _order_median,
    _trend,
    alpha,
    last_logged_before,
    logged_steps,
    orders_words,
    signal_family,
    top_features,
    verdict,
)
from grokcast.stats import folded_auroc, format_percent


def _as_reference(x: float) -> float:
    """One of our numbers at the reference's precision (3 decimals, as printed beside it): an
    AUROC of 0.8466 printed "0.847" beside the reference's CI [0.847, …] was said to lie outside
    it, so "the results disagree" stood beside numbers that touch."""
    return round(float(x), 3)


def reference_comparison_sentence(ours: dict | None, ref: Sequence[float] | None,
                                  window: int, what: str = "multivariate AUROC", *,
                                  why_none: str | None = None) -> str:
    """Is our estimate inside the reference paper's CI (and theirs inside ours)?
    ``why_none``: why ours was not computed (the cell's ``multi_note``), said instead of
    "undefined"."""
    if ref is None:
        return f"The reference paper reports no {esc(what)} at W = {window}."
    if why_none:
        return (f"Our {esc(what)} at W = {window} was not computed ({esc(why_none)}), so it "
                f"cannot be compared with the reference's {esc(fmt(ref[0]))}.")
    if not ours or not _finite(ours.get("auroc")):
        return (f"Our {esc(what)} at W = {window} is undefined, so it cannot be compared with "
                f"the reference's {esc(fmt(ref[0]))}.")
    a, (lo, hi) = ours["auroc"], ours["ci"]
    in_theirs = ref[1] <= _as_reference(a) <= ref[2]
    theirs_in_ours = (_finite(lo) and _finite(hi)
                      and _as_reference(lo) <= ref[0] <= _as_reference(hi))
    ours_s = f"{esc(fmt_estimate(ours))}"
    ref_s = f"{esc(fmt(ref[0]))} {esc(fmt_ci(ref[1:]))}"
    if in_theirs and theirs_in_ours:
        how = "each estimate lies inside the other's CI"
    elif in_theirs or theirs_in_ours:
        how = "one estimate lies inside the other's CI but not the reverse"
    else:
        how = "neither estimate lies inside the other's CI: the results disagree"
    return f"At W = {window} our {esc(what)} is {ours_s} against the reference's {ref_s}; {how}."


def _reference_diff(cell: dict, name: str) -> dict:
    """A difference of the reference's tables in analysis.json's shape, for :func:`verdict`."""
    # Every cell of reference_paper.json holds both differences: the claims print them.
    d, p = cell[f"diff_{name}"], str(cell.get(f"p_{name}", "nan"))
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
    inside = _as_reference(lo) <= theirs["diff"] <= _as_reference(hi)
    return UNRESOLVED if inside else SMALLER


def _versus_theirs(theirs: dict, ours: dict, status: str, ref_standing: str | None) -> str:
    """The end of a comparison claim's sentence: how our CI stands to the reference's Δ
    (``ref_standing``: the reference's :func:`_standing`)."""
    if status == HOLDS:
        return "."
    if status == CONTRADICTED and ref_standing is None:
        # The reference found no significant difference: our CI excludes zero, and may well
        # lie on the side of its Δ.
        return (", and our CI excludes zero, where the reference's difference was not "
                "significant.")
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
        small, tiny = _small_class(t)
        defined = bool(ours) and _finite(ours.get("diff"))
        status = UNCHECKED if tiny or not defined else comparison_status(theirs, ours, level)
        if not defined:
            ours_text = _why_undefined(t, window) + "."
        elif tiny:  # no verdict word: the numbers support none
            ours_text = f"ours is {esc(_diff_numbers(ours, level))}, {_too_few(small)}."
        else:
            ours_text = (f"ours is {_STANDING[our_s]} it ({esc(_diff_numbers(ours, level))})"
                         + _versus_theirs(theirs, ours, status, ref_s))
        out.append((
            f"the forecaster's standing against the {base} baseline at threshold {th}",
            f"At W = {window} and threshold {th} the reference's forecaster is {_STANDING[ref_s]} "
            f"the {base} baseline ({esc(_diff_numbers(theirs, level))}); {ours_text}",
            status))
    return out


def _small_class(entry: dict) -> tuple[int, bool]:
    """A threshold's smaller class size, and whether it is too small for a verdict."""
    small = min(entry["n_pos"], entry["n_neg"])
    return small, bool(entry.get("single_class")) or small < MIN_CLASS_SIZE


def _too_few(small: int) -> str:
    if small == 0:  # every run groks (a threshold no run reaches has no claim to check)
        return "with every run in one class: nothing to compare"
    return f"with only {small} run{'s' if small != 1 else ''} in a class: too few to compare"


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
    small, tiny = _small_class(a["thresholds"][th])
    if tiny:  # a handful of positives ties many features at the top
        return [("which single feature is strongest", f"{text}; {_too_few(small)}.", UNCHECKED)]
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


def _printed_apart(lo: float, hi: float) -> bool:
    """Whether a CI whose lower end is ``lo`` lies above one whose upper end is ``hi``, as the
    sentence prints them (3 decimals): intervals printed as touching are not called apart."""
    return round(float(lo), 3) > round(float(hi), 3)


def _windows_words(ws: Sequence[int]) -> str:
    return f"W = {_and_list([str(w) for w in ws])}"


def _folded_baseline(entry: dict | None) -> tuple[float, float, float] | None:
    """A baseline's AUROC and CI read as predictive strength, whichever way it ranks the
    runs: the folded AUROC and the image of the CI under folding (a CI across 0.5 folds to
    [0.5, …]). The image holds the folded AUROC of every resample the CI held, at least the
    level's share of them. None where the AUROC or an end of the CI is not finite."""
    if not entry or not _finite(entry.get("auroc")):
        return None
    lo, hi = entry.get("ci") or (None, None)
    if not (_finite(lo) and _finite(hi)):
        return None
    ends = [float(folded_auroc(lo)), float(folded_auroc(hi))]
    low = 0.5 if lo <= 0.5 <= hi else min(ends)
    return float(folded_auroc(entry["auroc"])), low, max(ends)


_FAMILY_WORDS = {"loss": "loss-related", "accuracy": "accuracy-related",
                 "other": "neither loss- nor accuracy-related"}


def _leading_families(univariate: dict | None) -> str | None:
    """The kind of the strongest single feature(s): ``loss-related``, or ``loss-related and
    accuracy-related (tied)`` where features of both tie at the top."""
    top = top_features(univariate, 1)
    if not top:
        return None
    kinds = [k for k in _FAMILY_WORDS if k in {signal_family(n) for n, _, _ in top}]
    words = [_FAMILY_WORDS[k] for k in kinds]
    return words[0] if len(words) == 1 else f"{_and_list(words)} (tied)"


def _loss_then_accuracy_claim(a: dict, claim: dict) -> list[Claim]:
    """Loss-related signals lead at the reference's small window and accuracy-related ones
    from its larger windows on. Only the two baselines (end-of-window val loss and val
    accuracy, one signal of each kind) have CIs in analysis.json, so they decide: a kind
    leads at a window where its folded CI lies above the other's. Where the CIs overlap the
    data do not say which leads; the strongest features' kinds are said beside, as point
    estimates."""
    th = claim["threshold"]
    entry = a["thresholds"].get(th)
    if entry is None:
        return []
    small_w, from_w = claim["small_window"], claim["larger_from"]
    what = "loss-related signals leading at small W, accuracy-related ones at larger W"
    intro = (f"The reference finds the strongest single signals loss-related at small W "
             f"(W = {small_w}) and accuracy-related at larger W (from W = {from_w} on)")
    ws = F.windows(a)
    larger = [w for w in ws if w >= from_w]
    if small_w not in ws or not larger:
        missing = f"W = {small_w}" if small_w not in ws else f"window from W = {from_w} on"
        return [(what, f"{intro}; our analysis has no {missing}, so it cannot be compared.",
                 UNCHECKED)]
    small, tiny = _small_class(entry)
    if tiny:
        return [(what, f"{intro}; we check it at no window, {_too_few(small)}.", UNCHECKED)]
    cells = {w: entry["windows"].get(str(w)) or {} for w in [small_w, *larger]}
    kinds: dict[str, list[int]] = {}
    for w in ws:
        kind = _leading_families((entry["windows"].get(str(w)) or {}).get("univariate"))
        if kind is not None:
            kinds.setdefault(kind, []).append(w)
    strongest = ("; our strongest single features are "
                 + _and_list([f"{k} at {_windows_words(v)}" for k, v in kinds.items()])
                 if kinds else "")
    leads: dict[int, str | None] = {}
    pairs, undefined = [], []
    for w, cell in cells.items():
        loss, acc = _folded_baseline(cell.get("val_loss")), _folded_baseline(cell.get("val_acc"))
        if loss is None or acc is None:
            undefined.append(w)
            leads[w] = None
            continue
        leads[w] = ("loss" if _printed_apart(loss[1], acc[2]) else
                    "accuracy" if _printed_apart(acc[1], loss[2]) else None)
        pairs.append(f"{esc(fmt(loss[0]))} {esc(fmt_ci(loss[1:]))} against "
                     f"{esc(fmt(acc[0]))} {esc(fmt_ci(acc[1:]))} at W = {w}")
    numbers = ("; only two single signals have CIs in our analysis, the val-loss and "
               "val-accuracy baselines, whose folded AUROCs (val loss against val accuracy, "
               "the CIs folded alike) are ")
    if not pairs:  # "(undefined at ...)" after the reference's "(from W = ... on)" said nothing
        numbers += f"undefined at {_windows_words(undefined)}"
    else:
        numbers += _and_list(pairs) + (f" (undefined at {_windows_words(undefined)})"
                                       if undefined else "")
    small_lead = leads[small_w]
    loss_later = [w for w in larger if leads[w] == "loss"]
    acc_later = [w for w in larger if leads[w] == "accuracy"]
    verdicts = []
    if small_lead == "accuracy":
        verdicts.append(f"at W = {small_w} the val-accuracy CI lies above the val-loss one")
    elif small_lead == "loss":
        verdicts.append(f"at W = {small_w} the val-loss CI lies above the val-accuracy one, as "
                        "the reference has it")
    else:
        verdicts.append(f"at W = {small_w} the two CIs overlap" if small_w not in undefined
                        else f"at W = {small_w} they cannot be compared")
    if loss_later:
        verdicts.append(f"at {_windows_words(loss_later)} the val-loss CI lies above the "
                        "val-accuracy one")
    else:  # each larger window said as it stands: one agreeing was left out beside one open
        overlap = [w for w in larger if leads[w] is None and w not in undefined]
        no_ci = [w for w in larger if w in undefined]
        agree = "the val-accuracy CI lies above the val-loss one, as the reference has it"
        for group, words in ((acc_later, agree), (overlap, "the two CIs overlap"),
                             (no_ci, "they cannot be compared")):
            if group:
                verdicts.append(f"at {_windows_words(group)} {words}")
    if small_lead == "accuracy" or loss_later:
        status, end = CONTRADICTED, "so our data rule out this pattern"
    elif small_lead == "loss" and len(acc_later) == len(larger):
        status, end = HOLDS, "so our data show this pattern"
    else:
        status, end = UNRESOLVED, "so our sweep neither shows nor rules out this pattern"
    return [(what, f"{intro}{strongest}{numbers}: {'; '.join(verdicts)}, {end}.", status)]


def _window_trend_claim(a: dict, claim: dict) -> list[Claim]:
    """The forecaster's AUROC rises with the window and stops rising by the reference's
    window W_s. analysis.json has one CI per window and no paired test across windows,
    so a difference between two windows counts only where their CIs lie apart: a fall
    anywhere, or a rise after W_s, rules the claim out; it holds where a rise up to
    W_s is shown and the largest gain after it the CIs allow is below the smallest gain
    up to it they allow. Otherwise our sweep does not resolve it."""
    th, ws_ = claim["threshold"], claim["window"]
    entry = a["thresholds"].get(th)
    if entry is None:
        return []
    what = f"the forecaster's AUROC rising with W and saturating by W = {ws_}"
    intro = (f"The reference finds its forecaster's AUROC rising with the window and its gain "
             f"saturating by W = {ws_}")
    small, tiny = _small_class(entry)
    if tiny:
        return [(what, f"{intro}; we check it at no window, {_too_few(small)}.", UNCHECKED)]
    ws = F.windows(a)
    pts: dict[int, tuple[float, float, float]] = {}
    for w in ws:
        m = (entry["windows"].get(str(w)) or {}).get("multi") or {}
        lo, hi = m.get("ci") or (None, None)
        if _finite(m.get("auroc")) and _finite(lo) and _finite(hi):
            pts[w] = (float(m["auroc"]), float(lo), float(hi))
    undefined = [w for w in ws if w not in pts]
    if ws_ not in pts or len(pts) < 2:
        why = (f"our analysis has no W = {ws_}" if ws_ not in ws else
               f"our forecaster's AUROC at W = {ws_} is undefined" if ws_ not in pts else
               f"our forecaster has an AUROC at one window only (W = {next(iter(pts))})")
        return [(what, f"{intro}; {why}, so it cannot be compared.", UNCHECKED)]
    listed = _and_list([f"{esc(fmt(x))} {esc(fmt_ci(ci))}" for x, *ci in pts.values()])
    # The tables' run_id order is one of many the CV's folds depend on: its median over the
    # random orders is said beside, without a verdict (it has no CI).
    orders = [entry["windows"][str(w)].get("multi_by_order") for w in pts]
    # None under MIN_ORDERS orders with an AUROC, as every median over the orders the paper says.
    medians = [m for v in orders if (m := _order_median(v)) is not None]
    by_order = ""
    if len(medians) == len(pts):
        by_order = (f" (its median over the {orders_words(orders)}, "
                    f"{_and_list([esc(fmt(x)) for x in medians])}, "
                    f"{_trend(list(zip(pts, medians)))})")
    text = (f"{intro}; ours (runs in run_id order) is {listed} at {_windows_words(list(pts))}"
            + (f" (undefined at {_windows_words(undefined)})" if undefined else "") + by_order
            + f": it {_trend(list((w, x) for w, (x, _, _) in pts.items()))}")
    before, after = [w for w in pts if w < ws_], [w for w in pts if w > ws_]
    _, lo_s, hi_s = pts[ws_]
    gains = []
    if before:
        gains.append(f"{esc(fmt_signed(pts[ws_][0] - pts[before[0]][0]))} from W = {before[0]} "
                     f"to W = {ws_}")
    if after:
        gains.append(f"{esc(fmt_signed(pts[after[-1]][0] - pts[ws_][0]))} from there to "
                     f"W = {after[-1]}")
    if gains:
        text += f", changing by {_and_list(gains)}"
    falls = [(i, j) for i in pts for j in pts if i < j and _printed_apart(pts[i][1], pts[j][2])]
    rises_after = [j for j in after if _printed_apart(pts[j][1], hi_s)]
    if falls:
        i, j = falls[0]
        return [(what, f"{text}; but the CI at W = {j} lies below the one at W = {i}, so our "
                 "data rule out a rise with the window.", CONTRADICTED)]
    if rises_after:
        return [(what, f"{text}; but the CI at W = {rises_after[0]} lies above the one at "
                 f"W = {ws_}, so our data rule out the saturation by W = {ws_}.", CONTRADICTED)]
    shown = [i for i in before if _printed_apart(lo_s, pts[i][2])]
    # The smallest rise up to W_s and the largest gain after it that the CIs allow.
    rise = max((lo_s - pts[i][2] for i in shown), default=None)
    room = max((pts[j][2] - lo_s for j in after), default=None)
    if rise is not None and room is not None and round(room, 3) < round(rise, 3):
        return [(what, f"{text}; the CI at W = {shown[0]} lies below the one at W = {ws_} (a "
                 f"rise of at least {esc(fmt(rise))}), and the CIs allow a gain of at most "
                 f"{esc(fmt(room))} after W = {ws_}, so our data show this pattern.", HOLDS)]
    if rise is not None:
        shown_text = (f"the CI at W = {shown[0]} lies below the one at W = {ws_} (a rise of at "
                      f"least {esc(fmt(rise))})")
        rest = (f"but the CIs allow a gain of up to {esc(fmt(room))} after W = {ws_}, no less "
                "than that, so the saturation is not shown" if room is not None else
                f"but no window after W = {ws_} shows whether it saturates")
        verdict_text = f"{shown_text}, {rest}"
    else:
        # Written without "W = 100's": Typst sets an apostrophe after a digit as a prime.
        first = (f"the {'CIs' if len(before) > 1 else 'CI'} at {_windows_words(before)} "
                 f"overlap{'' if len(before) > 1 else 's'} the one at W = {ws_}, so the rise to "
                 f"W = {ws_} is not shown" if before else
                 f"no window before W = {ws_} shows a rise to it")
        rest = (f"the CIs allow a gain of up to {esc(fmt(room))} after W = {ws_}, so the "
                "saturation is not shown either" if room is not None else
                f"no window after W = {ws_} shows whether it saturates")
        verdict_text = f"but {first}, and {rest}"
    return [(what, f"{text}; {verdict_text}: our sweep neither shows nor rules out this "
             "pattern.", UNRESOLVED)]


def _early_accuracy_claim(a: dict, claim: dict) -> list[Claim]:
    k1, w = F.threshold_keys(a)[0], claim["window"]
    cell = a["thresholds"][k1]["windows"].get(str(w))
    if not cell or not _finite(cell.get("max_val_acc_in_window")):
        return []
    mine, bar = cell["max_val_acc_in_window"], claim["below"]
    text = (f"The reference puts every run's validation accuracy below about "
            f"{esc(fmt_pct(bar, 0))} before step {w}; our largest is {esc(fmt_pct(mine))}")
    p = ((a.get("sweep") or {}).get("config") or {}).get("p")
    if p and claim.get("p") and p != claim["p"]:  # chance is 1/p: the bar is the reference's p's
        return [(f"no run generalising before step {w}",
                 f"{text}, but at p = {p} chance is {esc(fmt_pct(1 / p))}, against "
                 f"{esc(fmt_pct(1 / claim['p']))} at the reference's p = {claim['p']}: its bar "
                 "does not carry over.", UNCHECKED)]
    last = last_logged_before(logged_steps(a), w)
    if last is not None and mine < bar:  # a higher accuracy at an unlogged step is not ruled out
        return [(f"no run generalising before step {w}",
                 f"{text} at the logged steps, but our log's last row before step {w} is at "
                 f"step {last}.", UNCHECKED)]
    return [(f"no run generalising before step {w}", f"{text}.",
             HOLDS if mine < bar else CONTRADICTED)]


def _with_init_note(a: dict, dynamics: list[Claim]) -> list[Claim]:
    """Claims about training dynamics, the last with a verdict bearing their caveat: verdicts
    follow the initialisation, which the reference does not state. Said once (it was said
    under each, two bullets in a row saying the same; found in review), and not of a claim
    that cannot be checked: it has no verdict."""
    init = (((a.get("sweep") or {}).get("config") or {}).get("model") or {}).get("init")
    judged = [i for i, (_, _, status) in enumerate(dynamics) if status in (HOLDS, CONTRADICTED)]
    if not (init and judged):
        return dynamics
    last = judged[-1]
    # Two claims at most (fitting, weight decay), listed together: both judged are adjacent.
    verdicts = "this verdict is" if len(judged) == 1 else "this verdict and the one before are"
    what, text, status = dynamics[last]
    note = (f" The reference does not state its initialisation; {verdicts} for ours "
            f"({esc(init)}), and the dynamics may depend on it.")
    return [*dynamics[:last], (what, text + note, status), *dynamics[last + 1:]]


def _fit_claim(a: dict, claim: dict) -> list[Claim]:
    steps = [r.get(FIT_STEP_KEY) for r in a["runs"]]
    if not steps or any(x is None for x in steps):
        return []
    n_fit = sum(0 <= x <= claim["step"] for x in steps)
    logged = logged_steps(a)
    gaps = logged is not None and not set(range(claim["step"] + 1)) <= set(logged)
    if gaps and n_fit < len(steps):
        # A run first logged at 99% after the claim's step may have fitted before it, unlogged.
        return [(f"every run fitting by step {claim['step']}",
                 f"The reference has every run at near-perfect train accuracy by step ≈ "
                 f"{claim['step']}; our log skips steps up to step {claim['step']}, and at the "
                 f"logged ones {n_fit} of {len(steps)} reach {esc('99%')} by then.", UNCHECKED)]
    # Over every run, one that never fits counting as the latest: a median of only those that
    # fit read as the median run when half of them never did (found in review).
    median = float(np.median([x if x >= 0 else np.inf for x in steps]))
    n_never = sum(x < 0 for x in steps)
    never = f"; {n_never} never do" if n_never else ""
    med = (f" (the median run at step {fmt_int(round(median))}{never})" if np.isfinite(median)
           else f" (the median run never does: {n_never} of {len(steps)} never reach it)")
    return [(f"every run fitting by step {claim['step']}",
             f"The reference has every run at near-perfect train accuracy by step ≈ {claim['step']}; "
             f"in ours {n_fit} of {len(steps)} reach {esc('99%')} by step {claim['step']}{med}.",
             HOLDS if n_fit == len(steps) else CONTRADICTED)]


def _weight_decay_claim(a: dict) -> list[Claim]:
    entry = a["thresholds"][F.threshold_keys(a)[0]]
    labels = entry["labels"]
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
    small, tiny = _small_class(entry)
    if tiny:
        where = esc(_and_list([f"{v:g}" for v in best]))
        return [("grokking at moderate weight decay",
                 f"{intro}groks most at λ = {where}{counts}, {_too_few(small)}.", UNCHECKED)]
    if len(best) == len(lams):
        return [("grokking at moderate weight decay",
                 f"{intro}groks at the same rate at every λ{counts}.", CONTRADICTED)]
    inside = all(lams[0] < v < lams[-1] for v in best)
    where = esc(_and_list([f"{v:g}" for v in best])) + ("" if inside else ", an edge of the grid")
    return [("grokking at moderate weight decay",
             f"{intro}groks most at λ = {where}{counts}.",
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
            status = CONTRADICTED if p < alpha(level) else UNRESOLVED
            # Fisher's test treats runs as independent draws; a fixed grid varies less than
            # that, so p errs high: the verdict "not ruled out" is the cautious one here.
            out.append((f"how many runs grok at threshold {th}",
                        f"{text} (Fisher's exact test, two-sided p "
                        f"{esc(_p_text(p, alpha=alpha(level)))}: "
                        + ("significant at the " if status == CONTRADICTED else
                           "not significant at the ") + f"{format_percent(1 - level)} level).", status))
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
    if "loss_then_accuracy" in claims:
        out += _loss_then_accuracy_claim(a, claims["loss_then_accuracy"])
    if "monotone_saturating" in claims:
        out += _window_trend_claim(a, claims["monotone_saturating"])
    if "max_val_acc_before" in claims:
        out += _early_accuracy_claim(a, claims["max_val_acc_before"])
    dynamics = []
    if "fit_by_step" in claims:
        dynamics += _fit_claim(a, claims["fit_by_step"])
    if "moderate_weight_decay" in claims:
        dynamics += _weight_decay_claim(a)
    return out + _with_init_note(a, dynamics) + _count_claims(a, reference, level)


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
        text += (f"; {len(unknown)} cannot be checked with this sweep (@sec:repro says why): "
                 f"{_and_list(unknown)}")
    return text + "."
