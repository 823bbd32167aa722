"""Everything the paper's template prints, gathered from a results directory into one
``context.json``: the sections' text, the captions, the tables' rows (:func:`build_context`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from grokcast import figures as F
from grokcast.analysis import custom_predictor, table3_order
from grokcast.paper.claims import (
    _HOLDS,
    Claim,
    claims_summary,
    reference_claims,
    reference_comparison_sentence,
)
from grokcast.paper.formatting import (
    NA,
    _finite,
    code,
    esc,
    fmt,
    fmt_ci,
    fmt_duration,
    fmt_estimate,
    fmt_int,
    fmt_p,
    fmt_pct,
    fmt_sci,
    fmt_signed,
    fmt_threshold,
    plural,
)
from grokcast.paper.sentences import (
    INNER_FOLDS,
    _and_list,
    _axis_symbols,
    _order_median,
    baseline_windows_sentence,
    below_chance_sentence,
    best_single_sentence,
    calibration_sentence,
    cell_out_sentence,
    comparison_sentence,
    dynamics_sentence,
    grid_sentence,
    headline_sentence,
    hyperparameter_sentence,
    last_logged_before,
    logged_steps,
    lone_run_clause,
    max_accuracy_sentence,
    no_delay_sentence,
    observed_label_sentence,
    order_sentence,
    prior_baselines_sentence,
    reliability_sentence,
    robustness_sentence,
    small_sample_sentence,
    threshold_word,
    ties_sentence,
    top_features_sentence,
    trend_sentence,
    window_accuracy_sentence,
)
from grokcast.stats import format_percent

SIGNIFICANCE_NOTE = ("We call a difference significant when its two-sided {level} bootstrap "
                     "CI excludes zero.")


def load_reference() -> dict[str, Any]:
    """The reference paper's published numbers (for the Reproduction appendix only)."""
    return json.loads(files("grokcast").joinpath("paper/reference_paper.json").read_text(encoding="utf-8"))


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


def _capitalised(text: str) -> str:
    """An analysis message (a clause, lower case) as a sentence of a caption."""
    return text[:1].upper() + text[1:]


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
    def last_logged_w0(self) -> int | None:
        """The last logged step before the headline window, where it is not W − 1."""
        return last_logged_before(logged_steps(self.a), self.w0)

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
        return format_percent(self.level)

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
    def runs(self) -> str:
        """The noun after :attr:`grok1` and :attr:`grok2`: ``1/1 run``, ``9/48 runs``."""
        return plural(self.n_runs, "run")

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


def _partial(f: _Facts) -> bool:
    """Whether the sweep stored fewer runs than its recorded grid holds (``analyze --partial``)."""
    cfg = f.cfg or {}
    sizes = [len(cfg.get(k) or ()) for k in ("train_fracs", "weight_decays", "seeds")]
    return all(sizes) and f.n_trained < math.prod(sizes)


def _all_runs(f: _Facts) -> str:
    """``all 48 runs``, or ``the 47 runs with a known outcome (of 48 trained)``: the figures
    draw only those, and "all 47" of a 48-run sweep miscounts it."""
    if f.n_runs == f.n_trained:
        return "the run" if f.n_runs == 1 else f"all {f.n_runs} runs"
    known = "run" if f.n_runs == 1 else f"{f.n_runs} runs"
    return f"the {known} with a known outcome (of {f.n_trained} trained)"


def _n_runs(n: int) -> str:
    """``48 runs``, ``1 run``: a one-run sweep renders a paper too."""
    return f"{n} {plural(n, 'run')}"


def _grok_count(f: _Facts) -> str:
    """``9/48 runs``, or ``3 of the 15 runs with a known outcome`` when diverged or stopped runs
    were left out."""
    if f.n_runs == f.n_trained:
        return f"{f.grok1} {f.runs}"
    return f"{f.t1['n_pos']} of the {_n_runs(f.n_runs)} with a known outcome"


def _abstract(f: _Facts) -> str:
    c0 = f.c0
    headline = headline_sentence(c0, f.w0, f.level, n_pos=f.t1["n_pos"], n_neg=f.t1["n_neg"])
    small = small_sample_sentence(f.t1["n_pos"], f.t1["n_neg"], f.k1)
    acc_sentence = window_accuracy_sentence(c0.get("max_val_acc_in_window"), f.w0, f.k1, f.p,
                                            last_logged=f.last_logged_w0)
    best_single = best_single_sentence(c0.get("univariate"), f.w0)
    undelayed = no_delay_sentence(f.a["runs"], f.k1)
    return (
        "Grokking — validation accuracy jumping from chance to near-perfect long after the "
        "training loss has converged — is usually studied after it happens. Following a "
        "published study, we ask whether it can be forecast from the first few hundred steps "
        f"of training. On a sweep of {_n_runs(f.n_trained)} of a one-layer transformer on "
        f"{_task_words(f.p)}{_varied_clause(f.cfg)}, {_grok_count(f)} "
        f"{'reaches' if f.t1['n_pos'] == 1 else 'reach'} a maximum validation accuracy of at "
        f"least {f.th1}. We summarise each run's "
        f"first W steps by {f.n_feat} features and predict the label with "
        f"{_model_words(f.cv)} evaluated by {_cv_words(f.cv)}. {headline} {small} {acc_sentence} "
        f"{best_single} {undelayed} Every number of ours in this paper is computed by grokcast "
        "from the sweep (the reference's own are quoted as such); the sweep, analysis, figures "
        "and this document are regenerated by one command."
    )


def _task_words(p: int | None) -> str:
    """``addition modulo 23``; without the sweep's config (analysis.json may hold none), the
    modulus is unknown."""
    return "modular addition" if p is None else f"addition modulo {p}"


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
    diverged, stopped = sweep.get("n_diverged") or 0, sweep.get("n_stopped") or 0
    div_note = (f" {diverged} diverged run(s) were left out of the analysis." if diverged else "")
    if stopped:
        div_note += (f" {stopped} run(s) stopped early were left out of the analysis: their "
                     "outcome is unknown.")
    if not cfg:
        return _setup_unrecorded(f, div_note)
    model, optim, log = cfg.get("model", {}), cfg.get("optim", {}), cfg.get("log", {})
    try:  # n/a without p, as for a model config it cannot build
        n_par = NA if p is None else fmt_int(n_params(ModelConfig(**model), p))
    except (TypeError, ValueError):
        n_par = NA
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
                     f"seeds {{{esc(seeds)}}}: {_n_runs(f.n_trained)}, matrix products {products}. "
                     "Training all of them took "
                     f"{esc(f.train_time)} summed over the ensemble chunks (chunks trained in "
                     f"parallel worker processes take less wall time).{div_note}"),
        "signals": (("Logged every step" if _all_logged(log, n_steps) else
                     f"Logged every step below step {log.get('dense_until')} and every "
                     f"{log.get('every')} steps after") + _SIGNALS),
        "label": _label(f),
    }


def _phase(f: _Facts) -> str:
    t1, t2 = f.t1, f.t2
    return (
        f"@fig:accuracy shows the train and validation accuracy of {_all_runs(f)}, and "
        f"@fig:grid the grokking rate over the (f, λ) grid. Out of "
        + (f"{_n_runs(f.n_runs)}, " if f.n_runs == f.n_trained else "those, ") +
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


_INIT_WORDS = {
    "torch": ("the token and positional embeddings drawn from N(0, 1) (an #raw(\"nn.Embedding\")'s "
              "default, the positional table's by our choice), every other matrix from "
              "U(±1/√fan#sub[in]) (a bias-free #raw(\"nn.Linear\")'s default)"),
    "nanda": ("every matrix drawn from N(0, 1/d#sub[model]), the unembedding from N(0, 1/(p + 1)) "
              "(as the code of Nanda et al. draws them)"),
}


def _all_logged(log: dict, n_steps: int | None) -> bool:
    """Whether the schedule logs every step of the run (dense through its last)."""
    dense = log.get("dense_until")
    return n_steps is not None and dense is not None and dense >= n_steps  # n_steps is logged too


def _choices(f: _Facts) -> list[str]:
    """What the reference leaves open and this sweep chose, each from its config or the code
    that made the numbers (found unstated in a review of the paper against the reference); an
    item whose config values an analysis does not record is left out."""
    import inspect

    from grokcast.data import n_train_examples
    from grokcast.logistic import loo_predictions

    cfg, p = f.cfg, f.p
    model, optim, log = cfg.get("model") or {}, cfg.get("optim") or {}, cfg.get("log") or {}
    fracs = cfg.get("train_fracs") or []
    items = []
    if p and fracs:
        sizes = ", ".join(fmt_int(n_train_examples(p, x)) for x in fracs)
        items.append(
            f"*Split.* round(f · p#super[2]) training pairs, a half to the even neighbour "
            f"({esc(sizes)} for f ∈ {{{esc(', '.join(f'{x:g}' for x in fracs))}}}), the first of "
            f"one permutation of the pairs drawn by numpy's #raw(\"default_rng\") from the split "
            "seed: the smaller training sets are subsets of the larger.")
    init = _INIT_WORDS.get(model.get("init", ""))
    scale = model.get("init_scale", 1.0)
    items.append(
        "*Model.* A ReLU MLP, a learned positional embedding, no biases, attention scores "
        "scaled by 1/√d#sub[head], the logits read at the = position only, over all p + 1 "
        "tokens." + (f" Initialisation: {init}" + (f", all scaled by {esc(f'{scale:g}')}."
                                                   if scale != 1 else ".") if init else ""))
    # grokcast.model's loss, whatever the precision of the products (their results are fp32).
    # "Nanda et al.'s" would print an opening quote: Typst reads an apostrophe after "." so.
    items.append(
        "*Loss.* The mean cross-entropy at the = position, its log-softmax taken in float32 "
        "(the code of Nanda et al. takes it in float64).")
    if _finite(optim.get("eps")):
        items.append(
            f"*Optimiser.* ε = {esc(fmt_sci(optim['eps']))}, a constant learning rate without "
            "warmup (the code of Nanda et al. warms up linearly over its first 10 steps), and "
            "the weight decay applied to every parameter, the embeddings included.")
    items.append(
        "*Signals.* The gradient norm is that of the loss alone (AdamW's decoupled decay is "
        "not part of it); a window's last update norm is that of the update after its last "
        "logged step (θ#sub[W] − θ#sub[W−1] where step W − 1 is logged), and the window's "
        "standard deviations divide by n (ddof = 0).")
    if _all_logged(log, f.n_steps):
        items.append("*Label.* The maximum validation accuracy over every step (each is logged).")
    elif log.get("every") is not None and log.get("dense_until") is not None:
        items.append(
            f"*Label.* The maximum validation accuracy over the logged steps (every "
            f"{log['every']} steps after step {log['dense_until']}, the last step included), "
            "not over every step.")
    if custom_predictor(f.cv) is None:  # the paper's model: grokcast.logistic's defaults
        defaults = inspect.signature(loo_predictions).parameters
        items.append(
            f"*Forecaster.* C from {defaults['Cs'].default} values log-spaced over "
            "[10#super[−4], 10#super[4]], the intercept penalised as liblinear does (intercept "
            "scaling 1); each fit is solved to its optimum by a batched Newton method (step "
            f"tolerance {esc(fmt_sci(defaults['tol'].default))}) instead of liblinear's own "
            "stopping rule, so where two values of C tie in CV accuracy within liblinear's "
            "tolerance, the C chosen could differ from scikit-learn's. The standardisation's "
            "means and scales are fitted on each held-out fit's training runs, not on all runs "
            "(as a scikit-learn pipeline of scaler and model does under cross-validation).")
    items.append(
        "*Bootstrap.* A resample holding one class is drawn again; the CI ends are numpy's "
        "linear-interpolation quantiles; every CI and paired test of one (threshold, W) cell "
        "uses the same resamples.")
    return items


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
           if c0.get("multi_note") else "the label has a single class" if t1["single_class"]
           else "the difference is undefined")
    cmp_loss = comparison_sentence(c0.get("diff_val_loss"), "val-loss", f.level, why=why)
    cmp_acc = comparison_sentence(c0.get("diff_val_acc"), "val-accuracy", f.level, why=why)
    small = small_sample_sentence(t1["n_pos"], t1["n_neg"], f.k1)
    acc_sentence = window_accuracy_sentence(c0.get("max_val_acc_in_window"), w0, f.k1, f.p,
                                            last_logged=f.last_logged_w0)
    uni_text = " ".join(top_features_sentence(t1["windows"][str(w)].get("univariate"), w)
                        for w in dict.fromkeys((ws[0], w0)))
    robustness = robustness_sentence(t1, t2, w0, f.k1, f.k2, f.level,
                                     (t2 or {}).get("cv") or f.a["settings"].get("cv"))
    lone = lone_run_clause(t1["n_pos"], t1["n_neg"])
    compared = (f"the multivariate forecaster was not evaluated ({why}), so it cannot be compared "
                "with either baseline" if c0.get("multi_note") else
                f"the multivariate forecaster is not compared with either baseline: {lone}" if lone
                else f"the multivariate forecaster {cmp_loss}, and it {cmp_acc}")
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
                        f"{f.runs} positive) is in @tab:robust. " if f.k2 else "") + robustness
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
    """What the results section has not said: the strongest features at the longest window,
    the share of the budget a forecast uses, the reference's claims counted. (It repeated the
    results' trend, observed-label and first-window sentences word for word; found in review.)"""
    t1, ws, w0, n_steps = f.t1, f.ws, f.w0, f.n_steps
    longest = ws[-1] if ws[-1] not in (ws[0], w0) else None
    paragraphs = [
        (top_features_sentence(t1["windows"][str(longest)].get("univariate"), longest)
         if longest is not None else ""),
        (f"A forecast from W = {w0} steps uses {esc(fmt_pct(w0 / n_steps))} of the "
         f"{fmt_int(n_steps)}-step budget." if n_steps else ""),
        claims_summary(claims),
    ]
    return [x for x in paragraphs if x]


_SIGNALS = (": train and validation loss and accuracy, parameter and gradient L#sub[2] norms, the "
            "effective rank of the embedding W#sub[E] and unembedding W#sub[U], the train logit "
            "margin, and the norm and cosine alignment of consecutive parameter updates.")


def _label(f: _Facts) -> str:
    return (f"A run groks when its maximum validation accuracy reaches {f.th1} ({f.grok1} {f.runs})."
            + (f" The {f.word2} threshold {f.th2} ({f.grok2} {f.runs}) is the robustness check of "
               "§6." if f.k2 else ""))


def _setup_unrecorded(f: _Facts, div_note: str) -> dict[str, str]:
    """The setup of a sweep whose config analysis.json does not hold (``analyze(config=None)``):
    only what the analysis itself knows, rather than every setting printed as unknown."""
    unknown = ("not recorded: the analysis was run without the sweep's config "
               "(analysis.json's sweep.config is null)")
    return {
        "task": f"Modular addition; the modulus, split and training fractions are {unknown}.",
        "model": f"A one-layer decoder-only transformer without LayerNorm; its sizes are {unknown}.",
        "training": (f"Full-batch AdamW, settings {unknown}: {_n_runs(f.n_trained)}. Training all of "
                     f"them took {esc(f.train_time)} summed over the ensemble chunks.{div_note}"),
        "signals": "At the steps of the sweep's log" + _SIGNALS,
        "label": _label(f),
    }


def _limitations(f: _Facts) -> list[str]:
    modulus = "one modulus" if f.p is None else f"p = {f.p}"
    budget = "finite" if f.n_steps is None else f"{fmt_int(f.n_steps)}-step"
    return [x for x in (
        (f"The regime is small: {modulus}, one transformer block, full-batch AdamW. Whether the "
         "early signals transfer to other tasks, deeper models or mini-batch training is "
         "untested."),
        ("The forecaster is trained and evaluated on one hyperparameter sweep; transfer to "
         "unseen (f, λ) regions is not tested"
         + (", and the tables' held-out predictions keep a run's seed-siblings (the same f "
            "and λ) in its training set (leaving out whole cells, where the results give it, "
            "takes them out). " if _has_seed_siblings(f.a["runs"]) else ". ")
         + hyperparameter_sentence(f.a["runs"], f.t1["labels"], f.k1)),
        prior_baselines_sentence(f.t1, f.ws, f.w0, f.a["settings"].get("hyperparam_axes") or [],
                                 f.level),
        (_uncertainty_limit(f) if not f.t1["single_class"] else
         f"With {_n_runs(f.n_runs)}, all of one class at threshold {f.th1}, no AUROC, CI or p-value "
         "exists at that threshold: a larger or more varied sweep is needed."),
        (f"The {budget} budget can label late grokkers as negatives"
         + (f", which the relaxed primary threshold {f.th1} lessens (the strict {f.th2} is "
            "the robustness check)." if f.k2 and f.word2 == "strict" else ".")),
        ("Forecasting a binary outcome is a simplification; predicting the grokking step is "
         "left open."),
    ) if x]


def _has_seed_siblings(runs: list[dict]) -> bool:
    """Whether some (f, λ) cell holds more than one run (one seed per cell: no siblings)."""
    cells = [(r.get("train_frac"), r.get("weight_decay")) for r in runs]
    return len(set(cells)) < len(cells)


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
    n_pos = f.t1["n_pos"]
    return (f"With {_n_runs(f.n_runs)} and {n_pos} positive{'s' if n_pos != 1 else ''}, the sweep "
            "resolves differences "
            f"only down to the width of its intervals{ci_text}; the bootstrap p-values have a "
            f"resolution of 1/{fmt_int(f.a['settings']['n_resamples'])}. The bootstrap resamples "
            "the forecaster's held-out predictions without refitting it, so its intervals and "
            "paired tests leave out the variance of fitting and can be narrower than a refit per "
            "resample would give.")


def _captions(f: _Facts, pair: _Pair) -> dict[str, str]:
    th1, w0, n_pos = f.th1, f.w0, f.t1["n_pos"]
    return {
        "fig1": (f"Train (left) and validation (right) accuracy of {_all_runs(f)} against "
                 "step (symlog axis). Solid blue: runs that eventually grok (max val acc ≥ "
                 f"{th1}, {n_pos} run{'s' if n_pos != 1 else ''}); dashed orange: the others. "
                 f"Grey: the first W = {w0} steps, the forecaster's input"
                 + (f"; dotted line: chance 1/{f.p}." if f.p else ".")),
        "fig2": ("Grokking rate over the (f, λ) grid, seeds pooled; each cell shows "
                 "(grokked runs)/(runs)" + (f", at thresholds {th1} (left) and {f.th2} "
                                            "(right)." if f.t2 else f" at threshold {th1}.")
                 + (" A cell marked — holds no run with a known outcome: its runs diverged"
                    + (", were stopped early or were not trained (a partial sweep)." if _partial(f)
                       else " or were stopped early.")
                    if (F.grid_counts(f.a, f.k1)[3] == 0).any() else "")),
        "fig3": (f"Folded AUROC |AUROC − 0.5| + 0.5 of the {F.N_TOP_FEATURES} best single "
                 f"features at W = {w0}, in every window (threshold {th1}; a tie at the last place "
                 "goes to the feature listed first in @tab:univariate). ↓: lower values predict grokking."),
        "fig4": (f"Multivariate forecaster ({esc(F.cv_label(f.cv))}) and the two univariate "
                 "baselines against window "
                 f"length; {'shaded' if len(f.ws) > 1 else 'bars'}: {f.lvl} bootstrap CIs; grey "
                 "dotted line: chance."
                 + (f" Left: threshold {th1}; right: the {f.word2} threshold {f.th2}"
                    + (" (too few runs in a class for a conclusion, see §6)."
                       if small_sample_sentence(f.t2["n_pos"], f.t2["n_neg"], f.k2) else ".")
                    if f.t2 and f.k2 else "")),
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
                             f"{f.th1} ({f.grok1} {f.runs} positive) from the first W steps. "
                             + (f"multi: {f.n_feat}-feature logistic regression, held out by "
                                f"{'LOO' if cv in (None, 'loo') else esc(cv)}" if custom_predictor(cv) is None
                                else f"multi: {_model_words(cv)}, its held-out predictions")
                             + "; val loss (negated) / val "
                             "acc: the end-of-window value alone, its direction fixed in "
                             "advance (lower loss, higher accuracy scores higher; not "
                             "folded). Δ: paired-bootstrap "
                             "difference; p#sub[1]: one-sided p-value.")},
        "robust": None if not f.k2 or t2 is None else {
            "rows": _table_rows(a, f.k2),
            "caption": (f"Robustness: the same analysis at max val acc ≥ {f.th2} "
                        f"({f.grok2} {f.runs} positive)."
                        + (f" {esc(_capitalised(t2['message']))}." if t2.get("single_class")
                           else ""))},
        "univariate": {"rows": _table3_rows(a, f.k1, f.w0),
                       "caption": (f"Per-feature AUROC and folded AUROC at W = {f.w0} "
                                   f"(threshold {f.th1}), sorted by the latter. AUROC < 0.5: "
                                   "lower values predict grokking.")},
        "features": {"caption": (f"The {f.n_feat} features, computed from the log rows with "
                                 "step < W.")},
    }


def _label_sources(reference: dict, f: _Facts) -> str:
    """The reference's own documents disagree on the label (its README: one threshold, its
    paper: another as primary); which this sweep's primary threshold follows."""
    readme, primary = reference.get("readme_label_threshold"), reference.get("primary_threshold")
    if not (_finite(readme) and _finite(primary)) or readme == primary:
        return ""
    ours = float(f.k1)
    follows = ("we follow the paper." if ours == primary else "we follow the README." if
               ours == readme else f"this sweep's primary threshold is {f.th1}.")
    return (f" The reference's README labels a run grokked when its maximum validation accuracy "
            f"reaches {readme:g}; its paper takes {primary:g} as the primary label and {readme:g} "
            f"as the robustness check: {follows}")


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
    # Two budgets not recorded (no config; a reference without one) are not the same budget.
    if f.n_trained == ref_n and n_steps is not None and n_steps == ref_steps:
        setup = (f"Our sweep has the reference's size and step budget ({ref_n} runs, "
                 f"{fmt_int(n_steps)} steps).")
    else:
        steps = (f"{fmt_int(n_steps)} vs {fmt_int(ref_steps)} steps"
                 if n_steps is not None and ref_steps is not None else
                 "the step budgets not both recorded")
        setup = (f"Our sweep differs from the reference's ({f.n_trained} vs {ref_n} runs, "
                 f"{steps}), so the numbers are not expected to match.")
    intro = ("The reference paper's published values (copied into "
             "grokcast/paper/reference\\_paper.json, used only here) beside ours. "
             + setup + _label_sources(reference, f))
    return {
        "intro": intro,
        "sentences": [
            reference_comparison_sentence(f.c0.get("multi"), ref_t1.get("multi"), f.w0,
                                          why_none=f.c0.get("multi_note")),
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


def build_context(res: F.Results, reference: dict | None = None, *,
                  early_stop: bool = True) -> dict[str, Any]:
    """Every sentence, number and table cell the template prints, as a JSON-able dict;
    ``early_stop=False``: no early-stopping section, whatever ``res.root/early_stop`` holds."""
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
        "choices": _choices(f),
        "early_stop": (early_stop_context(res.root / EARLY_STOP_DIR, a["sweep"].get("hash"))
                       if early_stop else None),
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


def early_stop_context(study_dir: Path, sweep_hash: str | None = None) -> dict[str, Any] | None:
    """The early-stopping section, from ``early_stop.json`` when the study was run; else None.

    ``sweep_hash``: the analysed sweep's (``analysis.json``'s ``sweep.hash``); a study whose
    forecaster was fit on another sweep is refused (a results directory analysed again from
    another sweep keeps the old study, which the section would describe as this sweep's)."""
    path = study_dir / "early_stop.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        section = _early_stop_section(doc["summary"])
        fit_on = (doc.get("provenance") or {}).get("train_sweep_hash")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        # A damaged file is named here, not met as a KeyError deep in the renderer.
        raise ValueError(f"{str(path)!r} is not an early_stop.json written by grokcast "
                         f"early-stop-study ({type(err).__name__}: {err}); run the study again "
                         "or remove the file") from None
    if section is not None and sweep_hash and isinstance(fit_on, str) and fit_on != sweep_hash:
        raise ValueError(f"{str(path)!r} is a study of a forecaster fit on another sweep (hash "
                         f"{fit_on[:12]}) than the one analysed here ({sweep_hash[:12]}): run it "
                         "again with a forecaster fit on this sweep (grokcast fit, then grokcast "
                         "early-stop-study), or remove the file")
    return section


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
    excluded = s.get("n_excluded") or 0  # diverged or stopped runs: no known outcome
    left_out = (("; 1 more, diverged or stopped early, has no known outcome and is left out"
                 if excluded == 1 else f"; {excluded} more, diverged or stopped early, have no "
                 "known outcome and are left out") if excluded else "")
    # τ chosen on the training runs promised a share of grokkers it may not keep on new runs.
    short = (f", fewer than the {format_percent(s['min_recall'])} it was chosen to keep"
             if s.get("tau") == "chosen on training runs" and f["recall"] < s["min_recall"] else "")
    grok = "groks" if s["n_grok"] == 1 else "grok"
    text = (f"On a held-out sweep of {_n_runs(s['n_runs'])} with unseen seeds ({s['n_grok']} of "
            f"them {grok} at val acc ≥ {s['label_threshold']:g}{left_out}), we simulate stopping "
            f"at W = {s['window']}. "
            + _early_stop_tau(s, f)
            + f"stops {_n_runs(f['n_stopped'])} and saves {fmt_pct(f['saved'])} of all training "
            f"steps, keeping {fmt_pct(f['recall'])} of the grokking runs{esc(short)}. "
            + _early_stop_caveat(s)
            + "Beside it: rules that stop as many runs at W (the same budget), successive "
              "halving at the keep fraction whose saving is closest to it, and the median rule "
              "at its own budget.")
    return {"text": text, "rows": rows, "figure": "figures/early_stop.pdf",
            "caption": _early_stop_caption(s)}


def _early_stop_caption(s: dict[str, Any]) -> str:
    """The figure's caption: what its dotted line (the study's ``min_recall``) and labelled
    point (the forecaster at its threshold τ) are, by how τ was chosen."""
    kept = esc(format_percent(s["min_recall"]))
    line = {"fixed": f"the share of grokkers ({kept}) that the operating point chosen with these "
                     "runs' outcomes keeps (see the text)",
            "chosen on training runs": f"the share of the training runs' grokkers ({kept}) the "
                                       "threshold was chosen to keep"}.get(
        s.get("tau", ""), f"the share of grokkers ({kept}) the forecaster's threshold was chosen to keep")
    point = "the fixed threshold τ" if s.get("tau") == "fixed" else "that threshold τ"
    return (f"Compute saved against grokking runs kept, per stopping policy. The dotted line is "
            f"{line}; the labelled point is the forecaster at {point}.")


def _early_stop_tau(s: dict[str, Any], f: dict[str, Any]) -> str:
    """The sentence's opening: how the forecaster's threshold τ was chosen."""
    if s.get("tau") == "fixed":
        return f"At a threshold fixed in advance, P(grok) below {f['param']:.4g}, the forecaster "
    if s.get("tau") == "chosen on training runs":
        return (f"At a threshold chosen before these runs were seen, from the training runs' "
                f"cross-validated P(grok) so as to keep {format_percent(s['min_recall'])} of their grokkers, "
                f"P(grok) below {f['param']:.4g}, the forecaster ")
    return (f"Where the forecaster keeps at least {format_percent(s['min_recall'])} of the grokking runs "
            "and saves the most compute, it ")


def _early_stop_caveat(s: dict[str, Any]) -> str:
    """What the reader must know about τ: an optimistic choice, or the optimistic one beside it."""
    # A summary written before grokcast recorded "tau" was always chosen on the outcomes.
    if s.get("tau", "chosen on outcomes") == "chosen on outcomes":
        return ("That threshold is chosen with these runs' outcomes, an optimistic operating point "
                "that a threshold fixed in advance need not reach. ")
    best = s.get("on_outcomes")
    if best is None:
        return ""
    return (f"Chosen with these runs' outcomes instead, an optimistic operating point, the "
            f"threshold (P(grok) below {best['param']:.4g}) would save {fmt_pct(best['saved'])} "
            f"and keep {fmt_pct(best['recall'])}. ")
