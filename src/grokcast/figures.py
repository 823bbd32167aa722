"""The six figures of the paper, drawn from a results directory.

A results directory is what :func:`grokcast.analysis.write_results` writes: ``analysis.json``
(schema in ``docs/analysis-schema.md``), ``features.parquet`` (``run_id``, ``window``, one column
per feature) and ``curves.parquet`` (``run_id``, ``step``, ``train_acc``, ``val_acc``,
``train_loss``, ``val_loss``). :func:`make_figures` reads it and writes, into
``RESULTS_DIR/figures`` unless told otherwise, each figure as PNG (200 dpi) and PDF:

* ``fig1_accuracy``: train and validation accuracy of every run against step;
* ``fig2_grid``: grokking rate over the (train fraction, weight decay) grid;
* ``fig3_features``: folded AUROC of the top single features across windows;
* ``fig4_windows``: multivariate LOO AUROC and the two baselines against window length;
* ``fig5_pair``: two informative, weakly correlated features (rule: :func:`choose_feature_pair`);
* ``fig6_reliability``: reliability diagrams of the LOO probabilities per window.

:func:`fig_early_stop` draws the early-stopping study's figure
(:func:`grokcast.early_stop.write_study` writes it next to the study's tables).

Colours are the Okabe–Ito palette, and every pair of classes also differs in line style or
marker and in lightness, so the figures survive greyscale printing and colour-blind readers.
A threshold at which every run is in one class, or a sweep of one run (figure 5 has no
pair), draws a note instead of failing.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (and work without a display)

import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

import grokcast  # noqa: E402
from grokcast.analysis import few_in_a_class  # noqa: E402
from grokcast.analysis import primary_window as analysis_primary_window  # noqa: E402
from grokcast.config import ConfigError, SweepConfig  # noqa: E402
from grokcast.stats import format_percent, strength_key  # noqa: E402
from grokcast.validation import check_path  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.typing import RcKeyType

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision
# deficiencies. Grokked runs get the dark blue and others the light orange so the two classes
# also differ in greyscale lightness.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
GROK = {"color": OKABE_ITO["blue"], "linestyle": "-", "marker": "o", "label": "grokked"}
NO_GROK = {"color": OKABE_ITO["orange"], "linestyle": "--", "marker": "^",
           "label": "did not grok"}
# Three series that differ in colour, lightness, line style and marker at once.
SERIES = {
    "multi": {"color": OKABE_ITO["blue"], "linestyle": "-", "marker": "o",
              "label": "multivariate ({n} features, {cv})"},
    "val_loss": {"color": OKABE_ITO["vermillion"], "linestyle": "--", "marker": "s",
                 "label": "val loss only"},
    "val_acc": {"color": OKABE_ITO["sky_blue"], "linestyle": ":", "marker": "^",
                "label": "val accuracy only"},
}
WINDOW_STYLES = [  # one per window in fig3, dark to light
    {"color": OKABE_ITO["black"], "marker": "o"},
    {"color": OKABE_ITO["blue"], "marker": "s"},
    {"color": OKABE_ITO["vermillion"], "marker": "D"},
    {"color": OKABE_ITO["orange"], "marker": "^"},
    {"color": OKABE_ITO["purple"], "marker": "v"},
    {"color": OKABE_ITO["green"], "marker": "P"},
]
WINDOW_SHADE = "0.9"  # light grey behind the forecast window [0, W)
FIGURE_NAMES = ("fig1_accuracy", "fig2_grid", "fig3_features", "fig4_windows", "fig5_pair",
                "fig6_reliability")
# Text width of the paper (A4 with 2.2 cm margins is ~16.6 cm); figures are drawn at this
# width so their 8-pt text stays 8 pt on the page.
FIG_WIDTH_IN = 6.4
DPI = 200
MAX_ABS_RHO = 0.5  # fig5: "weakly correlated" means |Spearman rho| below this
N_TOP_FEATURES = 10  # fig3 rows
N_RELIABILITY_BINS = 5  # ~10 runs per bin for 48 runs

STYLE: dict[RcKeyType, Any] = {
    "font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "legend.fontsize": 7.5,
    "xtick.labelsize": 7.5, "ytick.labelsize": 7.5, "figure.titlesize": 9,
    "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42,
    "savefig.bbox": "tight", "savefig.pad_inches": 0.03, "lines.linewidth": 1.2,
}

_SIGNAL_WORDS = {
    "train_loss": "train loss", "val_loss": "val loss", "train_acc": "train acc",
    "val_acc": "val acc", "param_norm": "param norm", "grad_norm": "grad norm",
    "erank_we": "eff. rank W_E", "erank_wu": "eff. rank W_U", "train_margin": "train margin",
    "update_norm": "update norm", "update_cos": "update cos", "loss_gap": "loss gap",
    "acc_gap": "acc gap", "loss_ratio": "val/train loss ratio",
}
_PREFIX_WORDS = {"slope": "slope of {}", "std": "std of {}", "mean": "mean of {}",
                 "min": "min of {}", "max": "max of {}", "log": "log {}"}


@dataclass(frozen=True)
class Results:
    """A results directory in memory.

    Attributes
    ----------
    analysis : dict, the parsed ``analysis.json`` (JSON null stays None)
    features : DataFrame of shape (n_runs * n_windows, 2 + n_features)
    curves : DataFrame with columns run_id, step, train_acc, val_acc, train_loss, val_loss
    root : the directory it was read from
    """

    analysis: dict[str, Any]
    features: pd.DataFrame
    curves: pd.DataFrame
    root: Path


def load_results(results_dir: str | os.PathLike) -> Results:
    """Read ``analysis.json``, ``features.parquet`` and ``curves.parquet`` from ``results_dir``."""
    root = Path(results_dir)
    if not root.exists():
        raise FileNotFoundError(f"results directory {str(root)!r} does not exist (write one with: "
                                "grokcast analyze SWEEP_DIR --out RESULTS_DIR)")
    missing = [n for n in ("analysis.json", "features.parquet", "curves.parquet")
               if not (root / n).is_file()]
    if missing:
        # A sweep directory given for its results: `grokcast analyze`'s default output is
        # inside it (`reproduce` writes OUT/results beside OUT/sweep instead).
        inside = [d for d in (root / "analysis", root / "results") if (d / "analysis.json").is_file()]
        hint = (f"its results are in {str(inside[0])!r}" if inside else
                "write one with: grokcast analyze SWEEP_DIR --out RESULTS_DIR")
        raise FileNotFoundError(
            f"{str(root)!r} is not a results directory: missing {', '.join(missing)} ({hint})")
    analysis = read_analysis(root / "analysis.json")
    features = _read_parquet(root, "features.parquet")
    curves = _read_parquet(root, "curves.parquet")
    for name, table, need in (("features.parquet", features, ("run_id", "window")),
                              ("curves.parquet", curves, CURVE_COLUMNS)):
        missing = [c for c in need if c not in table.columns]
        if missing:
            raise ValueError(f"{str(root / name)!r} lacks column(s) {', '.join(missing)}: write it "
                             f"again with grokcast analyze SWEEP_DIR --out {str(root)!r}")
    if curves.empty and analysis["runs"]:  # every analysed run logged val acc below W
        raise ValueError(f"{str(root / 'curves.parquet')!r} holds no rows, but analysis.json has "
                         f"{len(analysis['runs'])} runs: write it again with grokcast analyze "
                         f"SWEEP_DIR --out {str(root)!r}")
    _check_same_analysis(root, analysis, features, curves)
    return Results(analysis, features, curves, root)


def _read_parquet(root: Path, name: str) -> pd.DataFrame:
    """``root / name``, a file Parquet cannot read (empty, cut short) named with the command
    that writes it again, not pyarrow's error alone."""
    try:
        return pd.read_parquet(root / name)
    except MemoryError:
        raise
    except Exception as err:  # pyarrow raises several types for damaged files
        why = " ".join(str(err).split())
        raise ValueError(f"{str(root / name)!r} is not a Parquet table ({why}): write it again "
                         f"with grokcast analyze SWEEP_DIR --out {str(root)!r}") from None


def _check_same_analysis(root: Path, analysis: dict, features: pd.DataFrame,
                         curves: pd.DataFrame) -> None:
    """Refuse Parquet files of another analysis than ``analysis.json``'s (one cut short while
    rewriting a directory leaves some files of each): its runs and windows, named."""
    runs = {str(r.get("run_id")) for r in analysis["runs"] if isinstance(r, dict)}
    windows = set(analysis["settings"]["windows"])
    found = []
    for name, table, key, want in (("features", features, "run_id", runs),
                                   ("features", features, "window", windows),
                                   ("curves", curves, "run_id", runs)):
        column = table[key] if key in table else pd.Series([], dtype=object)
        have = set(column.astype(str) if key == "run_id" else column)
        # A run that never logged val acc has no curve rows; any other difference is a mix-up.
        if have - want or (want - have and name == "features"):
            diff = sorted(map(str, have ^ want))
            found.append(f"{name}.parquet's {key}s differ from analysis.json's "
                         f"({len(have ^ want)}, e.g. {', '.join(diff[:2])})")
    if found:
        raise ValueError(f"{str(root)!r} holds files of different analyses: {'; '.join(found)}; "
                         f"write them again with grokcast analyze SWEEP_DIR --out {str(root)!r}")


CURVE_COLUMNS = ("run_id", "step", "train_acc", "val_acc", "train_loss", "val_loss")
# What the figures and the paper read, checked up front: a damaged file is named, not met as
# a KeyError deep inside a plot.
_ANALYSIS_KEYS = {"sweep": dict, "settings": dict, "features": list, "runs": list,
                  "thresholds": dict}
_SETTINGS_KEYS = ("windows", "thresholds", "n_resamples", "level")
_THRESHOLD_KEYS = ("n_pos", "n_neg", "single_class", "labels", "windows")
# The one text of a window's cell (a sweep too small for the model's CV); the rest are numbers.
_CELL_TEXT = "multi_note"
# A cell's statistics that are JSON objects (or null, where not computed).
_CELL_OBJECTS = ("multi", "val_loss", "val_acc", "diff_val_loss", "diff_val_acc", "axis_scores",
                 "hyperparams", "diff_hyperparams", "multi_cell_out")
# What every run records, which the figures and the paper read.
_RUN_KEYS = ("run_id", "train_frac", "weight_decay", "seed")


def read_analysis(path: Path) -> dict:
    """``analysis.json``, refused with the file's name if it is not what ``analyze`` writes."""
    def bad(what: str) -> ValueError:
        return ValueError(f"{str(path)!r} is not an analysis.json written by grokcast analyze: "
                          f"{what}; write it again with grokcast analyze SWEEP_DIR --out "
                          f"{str(path.parent)!r}")

    def all_numbers(tree: object, at: str, *, besides: str) -> None:
        """Every leaf of ``tree`` but its key ``besides`` is a number or null."""
        if isinstance(tree, dict):
            tree = {k: v for k, v in tree.items() if k != besides}
        where = _first_non_number(tree, at)
        if where is not None:
            raise bad(f"{where[0]} is {where[1]!r}, not a number")

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise bad(f"not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise bad(f"a JSON {type(doc).__name__}, not an object")
    for key, kind in _ANALYSIS_KEYS.items():
        if not isinstance(doc.get(key), kind):
            raise bad(f"{key!r} is missing or not a JSON {'object' if kind is dict else 'array'}")
    missing = [k for k in _SETTINGS_KEYS if k not in doc["settings"]]
    if missing:
        raise bad(f"'settings' lacks {missing}")
    windows = doc["settings"]["windows"]
    if not (isinstance(windows, list) and windows and all(isinstance(w, int) for w in windows)):
        raise bad(f"settings.windows is {windows!r}, not a list of window lengths")
    _check_settings_and_names(bad, doc)
    # null where analyze was given no config (grokcast.analysis.analyze(config=None))
    if "config" not in doc["sweep"] or not isinstance(doc["sweep"]["config"], dict | None):
        raise bad("sweep.config (the sweep's settings) is missing or not a JSON object")
    if doc["sweep"]["config"] is not None:
        try:
            SweepConfig.from_dict(doc["sweep"]["config"])
        except ConfigError as err:
            raise bad(f"sweep.config is not a sweep config: {err}") from None
    if not doc["thresholds"]:
        raise bad("'thresholds' is empty")
    for key, entry in doc["thresholds"].items():
        if not isinstance(entry, dict) or any(k not in entry for k in _THRESHOLD_KEYS):
            raise bad(f"threshold {key!r} lacks one of {list(_THRESHOLD_KEYS)}")
        _check_threshold_entry(bad, f"thresholds.{key}", entry, len(doc["runs"]), windows)
        for w, cell in entry["windows"].items():
            at = f"thresholds.{key}.windows.{w}"
            note = cell.get(_CELL_TEXT)
            if note is not None and not isinstance(note, str):
                raise bad(f"{at}.{_CELL_TEXT} is {note!r}, not a text")
            all_numbers(cell, at, besides=_CELL_TEXT)
            _check_cell_shape(bad, at, cell)
    for k, run in enumerate(doc["runs"]):
        if not isinstance(run, dict) or any(key not in run for key in _RUN_KEYS):
            raise bad(f"runs[{k}] is not an object holding {list(_RUN_KEYS)}")
        all_numbers(run, f"runs[{k}]", besides="run_id")
    return doc


def _check_settings_and_names(bad: Callable[[str], ValueError], doc: dict) -> None:
    """The settings the text prints (the CI level, the resamples), the features' entries, and
    the texts that name the analysis (its time, its sweep's hash)."""
    level, n = doc["settings"]["level"], doc["settings"]["n_resamples"]
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise bad(f"settings.level is {level!r}, not a CI level in (0, 1)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise bad(f"settings.n_resamples is {n!r}, not a count")
    if not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in doc["features"]):
        raise bad("'features' holds an entry that is not an object with a name")
    for at, value in (("created", doc.get("created")), ("sweep.hash", doc["sweep"].get("hash"))):
        if not isinstance(value, str | None):
            raise bad(f"{at} is {value!r}, not a text")


def _check_threshold_entry(bad: Callable[[str], ValueError], at: str, entry: dict, n_runs: int,
                           windows: list[int]) -> None:
    """A threshold's counts and labels, and a cell (an object) for each analysed window."""
    for name in ("n_pos", "n_neg"):
        if isinstance(entry[name], bool) or not isinstance(entry[name], int) or entry[name] < 0:
            raise bad(f"{at}.{name} is {entry[name]!r}, not a count")
    labels = entry["labels"]
    if not isinstance(labels, list) or len(labels) != n_runs:
        raise bad(f"{at}.labels holds {len(labels) if isinstance(labels, list) else labels!r} "
                  f"labels for {n_runs} runs")
    wrong = [v for v in labels if isinstance(v, bool) or not isinstance(v, int) or v not in (0, 1)]
    if wrong:
        raise bad(f"{at}.labels holds {wrong[0]!r}: a label is 0 or 1")
    cells = entry["windows"]
    if not isinstance(cells, dict) or set(cells) != {str(w) for w in windows}:
        have = sorted(cells, key=str) if isinstance(cells, dict) else cells
        raise bad(f"{at}.windows has cells {have!r}, not one for each of settings.windows "
                  f"{windows}")
    bad_cell = next((w for w, cell in cells.items() if not isinstance(cell, dict)), None)
    if bad_cell is not None:
        raise bad(f"{at}.windows.{bad_cell} is {cells[bad_cell]!r}, not a JSON object")


def _check_cell_shape(bad: Callable[[str], ValueError], at: str, cell: dict) -> None:
    """Where a cell's numbers sit: every ``ci`` a pair (or null), every univariate entry an
    object. (Its other statistics may be null: a sweep too small for the model has none.)"""
    uni = cell.get("univariate", {})
    if not isinstance(uni, dict) or any(not isinstance(v, dict) for v in uni.values()):
        raise bad(f"{at}.univariate is not an object of per-feature objects")
    for name, stat in cell.items():
        if name in _CELL_OBJECTS and not isinstance(stat, dict | None):
            raise bad(f"{at}.{name} is {stat!r}, not a JSON object")
        if isinstance(stat, dict) and "ci" in stat and (
                not isinstance(stat["ci"], list) or len(stat["ci"]) != 2):
            raise bad(f"{at}.{name}.ci is {stat['ci']!r}, not a [low, high] pair")


def _first_non_number(tree: object, path: str) -> tuple[str, object] | None:
    """The path and value of the first leaf of ``tree`` (JSON objects and arrays) that is neither
    a number nor null, or None: every statistic of a window's cell and every run's field but its
    name is one, and a hand-edited "0.98" would fail deep inside numpy or the paper."""
    if isinstance(tree, dict):
        items = ((f"{path}.{k}", v) for k, v in tree.items())
    elif isinstance(tree, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(tree))
    elif tree is None or (isinstance(tree, (int, float)) and not isinstance(tree, bool)):
        return None
    else:
        return path, tree
    for sub, value in items:
        found = _first_non_number(value, sub)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------------------------
# Small pure helpers (shared with grokcast.paper)
# ---------------------------------------------------------------------------------------------

def threshold_key(analysis: dict, threshold: float) -> str | None:
    """The key of ``analysis["thresholds"]`` equal to ``threshold`` ("0.9" for 0.9), or None."""
    for key in analysis["thresholds"]:
        if math.isclose(float(key), threshold):
            return key
    return None


def threshold_keys(analysis: dict) -> list[str]:
    """Keys of ``analysis["thresholds"]`` in the order analysed: primary, robustness, ..."""
    keys = [threshold_key(analysis, float(t)) for t in analysis["settings"]["thresholds"]]
    return [k for k in keys if k is not None] or list(analysis["thresholds"])


def primary_threshold_key(analysis: dict) -> str:
    """The primary label threshold: the first analysed (0.9 in the paper)."""
    return threshold_keys(analysis)[0]


def windows(analysis: dict) -> list[int]:
    """The analysed window lengths W, ascending."""
    return sorted(int(w) for w in analysis["settings"]["windows"])


def primary_window(analysis: dict) -> int:
    """The headline window: :func:`grokcast.analysis.primary_window` of the analysed ones."""
    return analysis_primary_window(windows(analysis))


def window_entry(analysis: dict, th_key: str, window: int) -> dict:
    return analysis["thresholds"][th_key]["windows"][str(window)]


def labels_by_run(analysis: dict, th_key: str) -> dict[str, int]:
    """run_id -> 0/1 label at one threshold."""
    ids = [r["run_id"] for r in analysis["runs"]]
    return dict(zip(ids, (int(v) for v in analysis["thresholds"][th_key]["labels"]), strict=True))


def readable_name(name: str) -> str:
    """A short label for a feature code name: ``slope_val_loss`` -> ``slope of val loss``.

    ``end_X`` (the value at the last logged step below W) reads ``X at W``.
    """
    if name in _SIGNAL_WORDS:
        return _SIGNAL_WORDS[name]
    head, _, rest = name.partition("_")
    if head == "end" and rest:
        return f"{readable_name(rest)} at W"
    if head in _PREFIX_WORDS and rest:
        return _PREFIX_WORDS[head].format(readable_name(rest))
    return name.replace("_", " ")


def feature_unit(name: str) -> str:
    """Unit of a feature's value, for axis labels ('' when dimensionless or unknown)."""
    base = name
    for prefix in ("end_", "max_", "min_", "mean_", "std_"):
        base = base.removeprefix(prefix)
    if name.startswith("log_"):
        unit = "log nats" if "loss" in name else ""
    elif "ratio" in name or "cos" in name or "erank" in name:
        unit = ""
    elif base.endswith("loss") or base.endswith("loss_gap"):
        unit = "nats"
    elif base.endswith("acc") or base.endswith("acc_gap"):
        unit = "fraction"
    elif "margin" in base:
        unit = "logits"
    else:
        unit = ""
    if name.startswith("slope_"):
        return f"{unit or 'units'} per step"
    return unit


def axis_label(name: str) -> str:
    unit = feature_unit(name)
    return f"{readable_name(name)} ({unit})" if unit else readable_name(name)


def folded_aurocs(analysis: dict, th_key: str, window: int) -> dict[str, float]:
    """Feature -> folded AUROC |AUROC - 0.5| + 0.5 at one (threshold, window); NaN if undefined."""
    uni = window_entry(analysis, th_key, window).get("univariate") or {}
    return {name: _num(entry.get("folded")) for name, entry in uni.items()}


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def choose_feature_pair(values: pd.DataFrame, folded: dict[str, float], *,
                        max_abs_rho: float = MAX_ABS_RHO) -> tuple[str, str, float]:
    """Pick the two features that figure 5 plots.

    Rule: among pairs of features whose absolute Spearman rank correlation over runs is below
    ``max_abs_rho``, take the pair whose *weaker* member has the highest folded AUROC (ties:
    the higher sum, then the names in alphabetical order). If no pair is that weakly
    correlated, take the least correlated pair among the five best features. Features with
    constant or missing values are never chosen, nor are features with an undefined AUROC
    unless fewer than two have one (a threshold every run reaches, say): then any two
    varying features are candidates.

    Parameters
    ----------
    values : DataFrame of shape (n_runs, n_features), one column per feature
    folded : feature -> folded AUROC
    max_abs_rho : float
        The correlation bound of the rule.

    Returns
    -------
    (first, second, rho) with ``first`` at least as strong as ``second`` (folded AUROC).
    """
    usable = [n for n, a in folded.items()
              if n in values and np.isfinite(a) and values[n].notna().all()
              and values[n].nunique() > 1]
    if len(usable) < 2:
        usable = [n for n in values.columns if values[n].notna().all() and values[n].nunique() > 1]
        folded = {n: folded.get(n, float("nan")) for n in usable}
        if len(usable) < 2:
            raise ValueError(f"figure 5 plots two features that vary over the runs, but over "
                             f"these {len(values)} run(s) only {len(usable)} do(es) "
                             f"({', '.join(usable) or 'none'}): the sweep has too few runs")
    # Compared as strengths (strength_key): AUROCs 8/380 and 372/380 fold one bit apart, and
    # that bit, not the rule's tie-breaks, chose the pair.
    score = {n: strength_key(np.nan_to_num(folded[n], nan=0.0)) for n in usable}
    usable.sort(key=lambda n: (-score[n], n))
    rho = spearmanr(values[usable].to_numpy(float)).statistic
    rho = np.atleast_2d(rho) if len(usable) > 2 else np.array([[1.0, rho], [rho, 1.0]])
    # A rank correlation is a ratio of integer sums, as an AUROC is (strength_key): an exact
    # 1/2 came out 0.49999999999999994 and passed for one below the bound.
    rho = np.round(rho, 12)
    idx = {n: k for k, n in enumerate(usable)}

    def key(pair: tuple[str, str]) -> tuple:
        a, b = pair
        return (-min(score[a], score[b]), -strength_key(score[a] + score[b]), a, b)

    pairs = [p for p in combinations(usable, 2) if abs(rho[idx[p[0]], idx[p[1]]]) < max_abs_rho]
    if pairs:
        a, b = min(pairs, key=key)
    else:
        top = usable[:5]
        a, b = min(combinations(top, 2), key=lambda p: (abs(rho[idx[p[0]], idx[p[1]]]), key(p)))
    # combinations keep usable's order, best score first: score[a] >= score[b] already.
    return a, b, float(rho[idx[a], idx[b]])


def reliability_bins(proba: np.ndarray, labels: np.ndarray, n_bins: int = N_RELIABILITY_BINS
                     ) -> pd.DataFrame:
    """Equal-width bins of predicted probability, for a reliability diagram.

    Returns
    -------
    DataFrame with one row per non-empty bin: ``lo``, ``hi``, ``n``, ``mean_proba``,
    ``frac_pos`` (the observed fraction of positives).
    """
    proba = np.asarray(proba, float)
    labels = np.asarray(labels, float)
    keep = np.isfinite(proba)
    proba, labels = proba[keep], labels[keep]
    # k / n_bins, the nearest floats to the edges: linspace's 0.6000000000000001 put P = 0.6 in
    # the bin below.
    edges = np.arange(n_bins + 1) / n_bins
    which = np.clip(np.digitize(proba, edges[1:-1], right=False), 0, n_bins - 1)
    rows = []
    for k in range(n_bins):
        m = which == k
        if m.any():
            rows.append({"lo": edges[k], "hi": edges[k + 1], "n": int(m.sum()),
                         "mean_proba": float(proba[m].mean()), "frac_pos": float(labels[m].mean())})
    return pd.DataFrame(rows, columns=["lo", "hi", "n", "mean_proba", "frac_pos"])


def single_class_note(analysis: dict, th_key: str) -> str | None:
    """A note for figures when one threshold's labels hold one class only, else None."""
    entry = analysis["thresholds"][th_key]
    if not entry.get("single_class"):
        return None
    n_pos, n = entry["n_pos"], entry["n_pos"] + entry["n_neg"]
    # The noun follows the denominator ("0/1 run", "9/48 runs"), the rule of
    # grokcast.paper.formatting.plural; importing it here would be circular (paper imports figures).
    noun = "run" if n == 1 else "runs"
    return (f"max val acc ≥ {float(th_key):g}: {n_pos}/{n} {noun} grokked — one class only, "
            "so AUROC is undefined")


# ---------------------------------------------------------------------------------------------
# The figures
# ---------------------------------------------------------------------------------------------

def _note(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=7.5,
            wrap=True, bbox={"boxstyle": "round", "fc": "white", "ec": "0.6"})


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def runs_left_out(analysis: dict) -> int:
    """Runs of the sweep without a known outcome (diverged, stopped early): the analysis, and
    so every figure, leaves them out."""
    return int((analysis["sweep"].get("n_runs") or len(analysis["runs"])) - len(analysis["runs"]))


def _class_counts(labels: dict[str, int]) -> tuple[int, int]:
    n_pos = sum(labels.values())
    return n_pos, len(labels) - n_pos


def fig_accuracy(res: Results) -> plt.Figure:
    """Figure 1: train (left) and validation (right) accuracy of every run against step."""
    a = res.analysis
    th = primary_threshold_key(a)
    labels = labels_by_run(a, th)
    n_pos, n_neg = _class_counts(labels)
    p = (a["sweep"]["config"] or {}).get("p")
    w = primary_window(a)
    fig, axes = plt.subplots(1, 2, figsize=(FIG_WIDTH_IN, 2.5), sharey=True)
    groups = {rid: g.sort_values("step") for rid, g in res.curves.groupby("run_id", sort=False)}
    for ax, col, title in zip(axes, ("train_acc", "val_acc"), ("train", "validation")):
        # Non-grokking runs first, so the (usually fewer) grokking runs stay visible on top.
        for cls, style, n_cls in ((0, NO_GROK, n_neg), (1, GROK, n_pos)):
            segs = [np.column_stack([g["step"].to_numpy(float), g[col].to_numpy(float)])
                    for rid, g in groups.items() if labels.get(rid) == cls]
            if not segs:
                continue
            ax.add_collection(LineCollection(
                segs, colors=style["color"], linestyles=style["linestyle"],
                linewidths=1.0 if cls else 0.8, alpha=0.85 if cls else 0.6,
                label=f"{style['label']} ({n_cls})"))
        ax.axvspan(0, w, color=WINDOW_SHADE, zorder=0, lw=0)
        if p and col == "val_acc":
            ax.axhline(1 / p, color="0.3", lw=0.8, ls=":", zorder=1)
            ax.text(1, 1 / p + 0.03, f"chance 1/{p}", ha="left", va="bottom", fontsize=7,
                    color="0.3")
        ax.set_xscale("symlog", linthresh=10, linscale=0.4)
        ax.set_xlim(0, max(res.curves["step"].max(), 1))
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("training step (symlog scale)")
        ax.set_title(f"{title} accuracy")
    axes[0].set_ylabel("accuracy (fraction correct)")
    present = [(s, n) for s, n in ((GROK, n_pos), (NO_GROK, n_neg)) if n]
    handles: list[Artist] = [plt.Line2D([], [], color=s["color"], ls=s["linestyle"], lw=1.2)
                             for s, _ in present]
    handles.append(matplotlib.patches.Patch(color=WINDOW_SHADE))
    names = [f"{s['label']} (max val acc ≥ {float(th):g}): {_runs(n)}" if s is GROK
             else f"{s['label']}: {_runs(n)}" for s, n in present]
    names.append(f"first W = {w} steps (forecast input)")
    fig.legend(handles, names, loc="lower center", ncol=3, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    left_out = runs_left_out(a)
    shown = (f"not shown: {_runs(left_out)} without an outcome (diverged or stopped early)"
             if left_out else None)
    note = " · ".join(filter(None, [single_class_note(a, th), shown]))
    fig.tight_layout(rect=(0, 0.07, 1, 0.94 if note else 1))
    if note:
        fig.text(0.5, 0.99, note, ha="center", va="top", fontsize=7.5)
    return fig


def grid_counts(analysis: dict, th_key: str) -> tuple[list[float], list[float], np.ndarray,
                                                      np.ndarray]:
    """Figure 2's cells: train fractions, weight decays, and per (λ, f) cell the runs that grok
    (k) of the runs with a known outcome (n), both of shape (len(wds), len(fracs))."""
    runs = pd.DataFrame(analysis["runs"])
    runs["label"] = analysis["thresholds"][th_key]["labels"]
    # The grid's values from the config where it is recorded: a row or column whose runs all
    # diverged is drawn (marked), not dropped.
    cfg = (analysis.get("sweep") or {}).get("config") or {}
    fracs = sorted(set(runs["train_frac"]) | set(cfg.get("train_fracs") or ()))
    wds = sorted(set(runs["weight_decay"]) | set(cfg.get("weight_decays") or ()))
    k = np.zeros((len(wds), len(fracs)), int)
    n = np.zeros_like(k)
    for (f, wd), g in runs.groupby(["train_frac", "weight_decay"]):
        k[wds.index(wd), fracs.index(f)] = int(g["label"].sum())
        n[wds.index(wd), fracs.index(f)] = len(g)
    return fracs, wds, k, n


def fig_grid(res: Results) -> plt.Figure:
    """Figure 2: grokking rate per (train fraction, weight decay) cell, k/n written in each."""
    a = res.analysis
    keys = threshold_keys(a)[:2]  # primary and robustness thresholds
    cmap = plt.get_cmap("cividis")  # monotone lightness: reads the same in greyscale
    fig, axes = plt.subplots(1, len(keys), figsize=(FIG_WIDTH_IN * (0.5 if len(keys) == 1 else 1),
                                                    2.6), squeeze=False, layout="constrained")
    left_out = runs_left_out(a)
    for i_ax, (ax, th) in enumerate(zip(axes[0], keys)):
        fracs, wds, k, n = grid_counts(a, th)
        rate = np.divide(k, n, out=np.full(k.shape, np.nan), where=n > 0)
        im = ax.imshow(rate, cmap=cmap, vmin=0, vmax=1, origin="lower", aspect="auto")
        for i in range(len(wds)):
            for j in range(len(fracs)):
                if n[i, j]:
                    light = np.mean(matplotlib.colors.to_rgb(cmap(rate[i, j]))) > 0.5
                    ax.text(j, i, f"{k[i, j]}/{n[i, j]}", ha="center", va="center", fontsize=8,
                            color="black" if light else "white")
                else:  # every run of the cell diverged or was stopped: no outcome to show
                    ax.text(j, i, "—", ha="center", va="center", fontsize=8, color="0.4")
        ax.set_xticks(range(len(fracs)), [f"{f:g}" for f in fracs])
        ax.set_yticks(range(len(wds)), [f"{w:g}" for w in wds])
        ax.set_xlabel("training fraction f")
        if i_ax == 0:
            ax.set_ylabel("weight decay λ")
        ax.set_title(f"max val acc ≥ {float(th):g}: {int(k.sum())}/{int(n.sum())} runs grokked"
                     + (f"\n({_runs(left_out)} without an outcome left out)" if left_out else ""))
        for s in ax.spines.values():
            s.set_visible(False)
    fig.colorbar(im, ax=axes[0].tolist(), label="grokking rate (fraction of seeds)",
                 shrink=0.95, pad=0.02)
    return fig


def feature_axis_start(values: Sequence[float]) -> float:
    """Figure 3's x axis starts 0.02 below its smallest value, at a multiple of 0.05, and at
    0.45 at the lowest (the chance line at 0.5 then shows): with every value near 1 a fixed
    0.45 left the windows' markers on top of each other (found in review)."""
    low = min((v for v in values if math.isfinite(v)), default=0.45) - 0.02
    # Rounded before the floor: 0.95 / 0.05 is 18.999999999999996 in floating point.
    return max(0.45, round(math.floor(round(low / 0.05, 9)) * 0.05, 2))


def fig_features(res: Results, n_top: int = N_TOP_FEATURES) -> plt.Figure:
    """Figure 3: folded AUROC of the best single features (at the primary W) in every window."""
    a = res.analysis
    th = primary_threshold_key(a)
    ws = windows(a)
    w0 = primary_window(a)
    ref = folded_aurocs(a, th, w0)
    # Stable sort: tied features keep their defined order, as in Table 3 and the paper's text.
    ranked = sorted((n for n in ref if np.isfinite(ref[n])), key=lambda n: -strength_key(ref[n]))[:n_top]
    fig, ax = plt.subplots(figsize=(FIG_WIDTH_IN, 0.34 * max(len(ranked), 4) + 0.9))
    if not ranked:
        ax.set_axis_off()
        _note(ax, single_class_note(a, th) or "no feature has a defined AUROC")
        return fig
    raw = window_entry(a, th, w0)["univariate"]
    names = [readable_name(n) + (" ↓" if _num(raw[n].get("auroc")) < 0.5 else "")
             for n in ranked]
    y = np.arange(len(ranked))[::-1]
    for yy in y:
        ax.axhline(yy, color="0.9", lw=0.6, zorder=0)
    offsets = np.linspace(0.3, -0.3, len(ws)) if len(ws) > 1 else [0.0]  # first W on top
    shown = []
    for k, w in enumerate(ws):
        vals = folded_aurocs(a, th, w)
        style = WINDOW_STYLES[k % len(WINDOW_STYLES)]
        # Past the styles, the same markers hollow: a seventh window was the first's twin.
        hollow = k // len(WINDOW_STYLES) % 2 == 1
        edge = style["color"] if hollow else "white" if style["color"] != "#000000" else "none"
        xs = [vals.get(n, np.nan) for n in ranked]
        shown += [x for x in xs if np.isfinite(x)]
        ax.scatter(xs, y + offsets[k], s=22, facecolors="none" if hollow else style["color"],
                   marker=style["marker"], label=f"W = {w} steps", zorder=3,
                   edgecolors=edge, linewidths=0.9 if hollow else 0.3)
    ax.axvline(0.5, color="0.4", lw=0.8, ls=":")
    ax.set_yticks(y, names)
    ax.set_xlim(feature_axis_start(shown), 1.01)
    ax.set_ylim(-0.6, len(ranked) - 0.4)
    ax.set_xlabel("folded AUROC = |AUROC − 0.5| + 0.5   (0.5 = chance)")
    # Four a row, the paper's windows: one row of eight widened the figure past the page.
    ncol = min(len(ws), 4)
    rows = -(-len(ws) // ncol)
    ax.set_title(f"Top {len(ranked)} single features, ranked at W = {w0}; "
                 "↓ marks features whose lower values predict grokking", pad=18 + 11 * (rows - 1))
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=ncol, frameon=False,
              handletextpad=0.2, columnspacing=1.5)
    fig.tight_layout()
    return fig


def cv_label(cv: str | None) -> str:
    """How the held-out predictions were made, in a label: ``LOO`` or ``10-fold``."""
    return "LOO" if cv in (None, "loo") else str(cv)


def fig_windows(res: Results) -> plt.Figure:
    """Figure 4: held-out AUROC of the multivariate model vs the two baselines against W."""
    a = res.analysis
    keys = threshold_keys(a)[:2]  # primary and robustness thresholds
    ws = windows(a)
    level = a["settings"].get("level", 0.95)
    fig, axes = plt.subplots(1, len(keys), figsize=(FIG_WIDTH_IN * (0.55 if len(keys) == 1 else 1),
                                                    2.6), sharey=True, squeeze=False)
    # One legend entry per series label, in SERIES order, from whichever panel draws it: a
    # series can be missing from one panel only (the model not computed at one threshold).
    legend: dict[tuple[int, str], Artist] = {}
    lowest = 0.3  # the y axis starts here unless a value or CI end lies lower
    for ax, th in zip(axes[0], keys):
        entry = a["thresholds"][th]
        title = (f"max val acc ≥ {float(th):g}  ({entry['n_pos']}/"
                 f"{entry['n_pos'] + entry['n_neg']} grokked)")
        ax.axhline(0.5, color="0.4", lw=0.8, ls=(0, (1, 2)))
        ax.text(ws[-1], 0.49, "chance", ha="right", va="top", fontsize=7, color="0.3")
        ax.set_xlabel("window length W (steps)")
        ax.set_xticks(ws)
        if len(ws) == 1:  # the bars below are offset in points, which autoscaling ignores
            ax.set_xlim(ws[0] - 1, ws[0] + 1)
        for k, (name, style) in enumerate(SERIES.items()):
            pts = [window_entry(a, th, w).get(name) or {} for w in ws]
            auc = np.array([_num(p.get("auroc")) for p in pts])
            ci = np.array([[_num(c) for c in (p.get("ci") or [None, None])] for p in pts])
            if not np.isfinite(auc).any():
                if name == "multi" and any(window_entry(a, th, w).get(_CELL_TEXT) for w in ws):
                    # analyze's multi_note: a sweep too small for the model's internal CV
                    title += "\nmodel not computed: few runs"  # no wider than the line above
                continue
            lowest = min(lowest, np.nanmin(np.r_[auc, ci[:, 0]]) - 0.03)
            at = ax.transData
            if len(ws) > 1:
                ax.fill_between(ws, ci[:, 0], ci[:, 1], color=style["color"], alpha=0.15, lw=0)
            else:  # a band over one W has no width: the CI as an error bar, the series side
                # by side (at one x their bars and markers hid each other)
                at = offset_copy(ax.transData, fig=fig, x=7 * (k - 1), units="points")
                ax.errorbar(ws, auc, yerr=np.abs(ci - auc[:, None]).T, fmt="none",
                            ecolor=style["color"], elinewidth=1, capsize=3, transform=at)
            (line,) = ax.plot(ws, auc, color=style["color"], ls=style["linestyle"],
                              marker=style["marker"], ms=4, transform=at,
                              label=style["label"].format(n=len(a["features"]),
                                                          cv=cv_label(entry.get("cv")
                                                                      or a["settings"].get("cv"))))
            legend.setdefault((k, line.get_label()), line)
        if few_in_a_class(entry) and "not computed" not in title:
            title += "\nfew runs in a class: says little"  # as the tables' captions say
        ax.set_title(title)
        if entry.get("single_class"):
            _note(ax, "one class only:\nAUROC undefined")
    axes[0][0].set_ylabel(f"AUROC ({'shaded' if len(ws) > 1 else 'bars'}: {format_percent(level)} "
                          "bootstrap CI)")
    axes[0][0].set_ylim(lowest, 1.02)
    if legend:
        items = sorted(legend.items(), key=lambda item: item[0][0])  # stable: panel order within
        fig.legend([h for _, h in items], [label for (_, label), _ in items], loc="lower center",
                   ncol=3, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def fig_pair(res: Results) -> plt.Figure:
    """Figure 5: the pair of features :func:`choose_feature_pair` picks, at the primary W (a
    note where it has none: fewer than two features vary over the runs)."""
    a = res.analysis
    th = primary_threshold_key(a)
    w = primary_window(a)
    labels = labels_by_run(a, th)
    names = [f["name"] for f in a["features"]]
    at_w = res.features[res.features["window"] == w].set_index("run_id")
    at_w = at_w.loc[[r["run_id"] for r in a["runs"] if r["run_id"] in at_w.index],
                    [n for n in names if n in at_w.columns]]
    folded = folded_aurocs(a, th, w)
    fig, ax = plt.subplots(figsize=(FIG_WIDTH_IN * 0.75, 3.0))
    try:
        fx, fy, rho = choose_feature_pair(at_w, folded)
    except ValueError:  # a single run, say: a note, as the paper's text says (no two vary)
        ax.set_axis_off()
        _note(ax, f"no two features vary over the {_runs(len(at_w))} at W = {w}:\n"
              "no pair to plot")
        return fig
    y = np.array([labels[r] for r in at_w.index])
    for cls, style in ((0, NO_GROK), (1, GROK)):
        m = y == cls
        if m.any():
            ax.scatter(at_w[fx][m], at_w[fy][m], s=22, marker=style["marker"],
                       facecolors=style["color"] if cls else "none", edgecolors=style["color"],
                       linewidths=1.0, label=f"{style['label']} ({int(m.sum())})", zorder=3)
    for axis, name in (("x", fx), ("y", fy)):
        v = at_w[name].to_numpy(float)
        if (v > 0).all() and v.max() / v.min() > 100:  # spans orders of magnitude
            getattr(ax, f"set_{axis}scale")("log")
    ax.set_xlabel(axis_label(fx))
    ax.set_ylabel(axis_label(fy))
    # A single-class cell has no AUROCs: its pair is chosen on spread alone, shown as n/a.
    fold_x, fold_y = (folded.get(n, float("nan")) for n in (fx, fy))
    ax.set_title(f"Features at W = {w}: folded AUROC {fold_x:.3f} (x), {fold_y:.3f} (y)"
                 f"\nSpearman ρ(x, y) = {rho:+.2f} over runs".replace("nan", "n/a")
                 .replace("-", "−"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              title=f"label:\nmax val acc ≥ {float(th):g}", title_fontsize=7.5,
              alignment="left")
    note = single_class_note(a, th)
    if note:
        ax.set_title(f"{ax.get_title()}\n{note}")
    fig.tight_layout()
    return fig


def fig_reliability(res: Results) -> plt.Figure:
    """Figure 6: reliability diagram of the held-out (leave-one-out or k-fold) probabilities,
    one panel per window."""
    a = res.analysis
    th = primary_threshold_key(a)
    ws = windows(a)
    y = np.asarray(a["thresholds"][th]["labels"], float)
    fig, axes = plt.subplots(1, len(ws), figsize=(FIG_WIDTH_IN, FIG_WIDTH_IN / len(ws) + 0.7),
                             sharey=True, squeeze=False)
    for ax, w in zip(axes[0], ws):
        ax.plot([0, 1], [0, 1], color="0.4", ls=":", lw=0.9)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_aspect("equal")
        ax.set_xticks([0, 0.5, 1])
        ax.set_xlabel("predicted P(grok)")
        proba = np.array([_num(v) for v in (window_entry(a, th, w).get("loo_proba") or [])])
        if proba.size != y.size or not np.isfinite(proba).any():
            ax.set_title(f"W = {w}")
            _note(ax, "no held-out\npredictions")
            continue
        bins = reliability_bins(proba, y)
        ax.plot(bins["mean_proba"], bins["frac_pos"], color=GROK["color"], lw=1.0, zorder=2)
        area = 10 + 150 * bins["n"] / y.size  # marker area (pt^2) grows with the bin's runs
        ax.scatter(bins["mean_proba"], bins["frac_pos"], s=area,
                   color=GROK["color"], edgecolors="white", linewidths=0.5, zorder=3)
        for (_, b), s in zip(bins.iterrows(), area):
            r = np.sqrt(s / np.pi) + 1.5
            ax.annotate(f"{int(b['n'])}", (b["mean_proba"], b["frac_pos"]), fontsize=6.5,
                        xytext=(r * 0.7, -r if b["frac_pos"] > 0.85 else r * 0.7),
                        textcoords="offset points", color="0.25",
                        va="top" if b["frac_pos"] > 0.85 else "bottom", zorder=4,
                        # a backing, so a count that lands on the curve or diagonal reads
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                              "alpha": 0.85})
        keep = np.isfinite(proba)
        brier = float(np.mean((proba[keep] - y[keep]) ** 2))
        ax.set_title(f"W = {w}  (Brier {brier:.3f})")
    axes[0][0].set_ylabel("observed grokking frequency")
    note = single_class_note(a, th)
    if note:
        fig.text(0.5, 0.99, note, ha="center", va="top", fontsize=7)
    fig.tight_layout()
    return fig


def fig_early_stop(df: pd.DataFrame, summary: dict[str, Any], labels: dict[str, str],
                   ) -> plt.Figure:
    """The early-stopping study (:func:`grokcast.early_stop.simulate`): compute saved (x)
    against grokking runs kept (y), one curve or point per policy, in ``labels``' order."""
    c = OKABE_ITO
    # Colour, line style and marker all differ, so the curves survive greyscale and
    # colour-vision deficiencies (Okabe-Ito palette).
    styles: dict[str, dict[str, Any]] = {
        "forecaster": dict(color=c["blue"], linestyle="-", marker="o", markersize=3.5, zorder=5),
        "percentile_val_loss": dict(color=c["vermillion"], linestyle="--", marker="s",
                                    markersize=2.5),
        "percentile_val_acc": dict(color=c["sky_blue"], linestyle=":", marker="^", markersize=2.5),
        "asha_val_loss": dict(color=c["orange"], linestyle="-.", marker="D", markersize=2.5),
        "asha_val_acc": dict(color=c["purple"], linestyle=(0, (5, 1, 1, 1, 1, 1)), marker="v",
                             markersize=2.5),
        "median_val_loss": dict(color=c["vermillion"], linestyle="none", marker="P", markersize=8,
                                markeredgecolor="black", zorder=6),
        "median_val_acc": dict(color=c["sky_blue"], linestyle="none", marker="X", markersize=8,
                               markeredgecolor="black", zorder=6),
    }
    fig, ax = plt.subplots(figsize=(FIG_WIDTH_IN * 0.62, FIG_WIDTH_IN * 0.5))
    for policy, label in labels.items():
        part = df[df["policy"] == policy].sort_values(["saved", "recall"], ascending=[True, False])
        pts = part[["saved", "recall"]].drop_duplicates()
        ax.plot(pts["saved"], pts["recall"], label=label, **styles[policy])
    ax.axhline(summary["min_recall"], color="0.6", linewidth=0.8, linestyle=":", zorder=0)
    fc = summary["forecaster"]
    if fc is not None:
        ax.annotate(f"τ = {fc['param']:g}", (fc["saved"], fc["recall"]), xytext=(-6, -14),
                    textcoords="offset points", ha="right", fontsize=7.5, color=c["blue"],
                    arrowprops=dict(arrowstyle="-", color=c["blue"], linewidth=0.6))
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.04)
    ax.set_xlabel("compute saved (fraction of training steps)")
    ax.set_ylabel("grokking runs kept (recall)")
    ax.set_title(f"Early stopping at W = {summary['window']}: {summary['n_runs']} held-out runs, "
                 f"{summary['n_grok']} grok")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


FIGURES = dict(zip(FIGURE_NAMES, (fig_accuracy, fig_grid, fig_features, fig_windows, fig_pair,
                                  fig_reliability)))


# Written beside the figures (docs/file-formats.md): what they were drawn from, so that
# render_paper redraws them unless that is this results directory and this grokcast. File times
# alone kept the figures of another analysis (one copied in with an older time, `cp -p`, a git
# checkout) and those of an older grokcast.
MANIFEST = "figures.json"
# What the figures read; analysis.json alone would miss curves.parquet, which figure 1 draws.
_INPUTS = ("analysis.json", "features.parquet", "curves.parquet")


def _sha256(path: Path) -> str | None:
    """Hex SHA-256 of a file's bytes; None where it is not a readable file."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _source_sha256() -> str:
    """SHA-256 of grokcast's Python sources, each file's path then its bytes: a checkout's
    edits change the figures while ``__version__`` stays the same."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def figure_files() -> list[str]:
    """The names :func:`make_figures` writes, ``fig1_accuracy.png``, ... in figure order."""
    return [f"{name}.{ext}" for name in FIGURE_NAMES for ext in ("png", "pdf")]


def _drawn_from(root: Path) -> dict[str, Any]:
    """The manifest's keys that say what figures of ``root`` would be drawn from now."""
    return {"grokcast_version": grokcast.__version__, "grokcast_source_sha256": _source_sha256(),
            "matplotlib_version": matplotlib.__version__,
            "inputs": {name: _sha256(root / name) for name in _INPUTS}}


def figures_current(results_dir: str | os.PathLike, fig_dir: str | os.PathLike) -> bool:
    """Whether ``fig_dir`` holds the figures :func:`make_figures` would draw from
    ``results_dir`` now: its manifest (``figures.json``) names this directory's input files
    (by SHA-256), this grokcast (its version and sources) and this matplotlib, and every
    figure file is the one it drew. Anything else, no manifest included, is not current."""
    fig_dir = Path(fig_dir)
    try:
        doc = json.loads((fig_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(doc, dict):
        return False
    want = _drawn_from(Path(results_dir))
    if None in want["inputs"].values() or any(doc.get(k) != v for k, v in want.items()):
        return False
    files = doc.get("figures")
    names = figure_files()
    return (isinstance(files, dict) and sorted(files) == sorted(names)
            and all(_sha256(fig_dir / name) == files[name] for name in names))


def make_figures(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Draw the six figures of a results directory as PNG and PDF, and last ``figures.json``,
    what they were drawn from (:func:`figures_current` reads it).

    Parameters
    ----------
    results_dir : directory written by :func:`grokcast.analysis.write_results`
    out_dir : where to write; default ``results_dir / "figures"``

    Returns
    -------
    The 12 written figure paths, ``fig1_accuracy.png``, ``fig1_accuracy.pdf``, ... in figure
    order.
    """
    from grokcast.store import atomic_write_bytes

    check_path("results_dir", results_dir, "a results directory (grokcast analyze --out)")
    if out_dir is not None:
        check_path("out_dir", out_dir, "the directory for the figures")
    # Hashed before they are read: a file rewritten meanwhile leaves a manifest that no longer
    # matches it, so the next render redraws.
    drawn_from = _drawn_from(Path(results_dir))
    res = load_results(results_dir)
    out = Path(out_dir) if out_dir is not None else res.root / "figures"
    out.mkdir(parents=True, exist_ok=True)
    # Figures partly redrawn are of no one analysis: no manifest until all are.
    (out / MANIFEST).unlink(missing_ok=True)
    paths = [path for name, draw in FIGURES.items()
             for path in save_figure(partial(draw, res), out, name)]
    manifest = {**drawn_from, "figures": {p.name: _sha256(p) for p in paths}}
    atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return paths


def save_figure(draw: Callable[[], plt.Figure], out_dir: Path, name: str) -> list[Path]:
    """Draw a figure in the house style and write it as ``name.png`` (200 dpi) and ``name.pdf``,
    each atomically (whole or not at all)."""
    from grokcast.store import atomic_write_bytes

    written = []
    with plt.rc_context(STYLE):
        fig = draw()
        try:
            for ext in ("png", "pdf"):
                path = out_dir / f"{name}.{ext}"
                # Fixed metadata: the same results give byte-identical PDFs.
                meta = {"CreationDate": None} if ext == "pdf" else {}
                # Rendered in memory first: savefig opens a PDF before drawing, so an error or
                # Ctrl-C mid-draw left a cut-short file, newer than analysis.json, which the
                # paper took for current and embedded as an empty figure.
                buffer = io.BytesIO()
                fig.savefig(buffer, format=ext, dpi=DPI, metadata=meta)
                atomic_write_bytes(path, buffer.getvalue())
                written.append(path)
        finally:
            plt.close(fig)
    return written
