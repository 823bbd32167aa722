"""How much the forecaster's leave-one-out AUROC depends on the order of the runs.

The forecaster chooses its regularisation C by a stratified 3-fold CV that, as in
scikit-learn's ``LogisticRegressionCV(cv=3)``, is not shuffled: each fold takes, within each
class, a consecutive block of its runs in the order they are given, and ``grokcast analyze``
gives them in ``run_id`` order. Another order gives other folds, possibly another C, other held-out
probabilities and another AUROC. The reference does not say in which order its runs were.

This script recomputes the LOO AUROC of every window from a results directory with the runs
in ``run_id`` order (it must equal analysis.json's), in grid order (train fraction, weight
decay, seed: the order a config's loops give), and in ``--orders`` random orders (those of
``grokcast analyze --orders`` with the analysis' seed unless ``--seed`` is given, so the
first of them are the analysis' ``multi_by_order``), beside the val-loss baseline, which no
order changes. Then it fits the forecaster on all
runs at ``--window`` in each order, as ``grokcast fit`` does, and lists the C each order
chooses; with ``--heldout SWEEP`` (another sweep of the same task) also each fit's held-out
AUROC and how many held-out runs it gives P(grok) < 0.1::

    python examples/fold_order_sensitivity.py out/paper/results --orders 50 --heldout runs/heldout

The 50 orders of the paper sweep take about a minute on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from grokcast.analysis import feature_matrix, primary_window, run_orders, runs_with_outcome
from grokcast.config import SweepConfig
from grokcast.forecast import GrokForecaster
from grokcast.logistic import loo_predictions
from grokcast.signals import reaches
from grokcast.stats import auroc
from grokcast.store import StoreError, SweepStore


def loo_aurocs(features: pd.DataFrame, names: list[str], run_ids: list[str], labels: pd.Series,
               windows: list[int]) -> list[float]:
    """The LOO AUROC at each window with the runs in the order of ``run_ids``."""
    y = labels.loc[run_ids].to_numpy()
    out = []
    for w in windows:
        X = features[features["window"] == w].set_index("run_id").loc[run_ids, names].to_numpy()
        out.append(float(auroc(y, loo_predictions(X, y))))
    return out


def heldout_set(sweep_dir: Path, config: SweepConfig, names: list[str], window: int,
                threshold: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Features at ``window`` and labels of a sweep's runs with a known outcome; refused for a
    sweep of another task (p, model, optimiser) or log schedule than the analysed ``config``,
    whose features are on another scale or read other steps, and for one label class."""
    store = SweepStore(sweep_dir)
    theirs = store.read_config()
    if theirs.task() != config.task():
        raise ValueError("it trains another task (p, model or optimiser) than the analysed "
                         "sweep, so its features are not comparable")
    if theirs.log != config.log:
        raise ValueError(f"it logs on another schedule ({theirs.log}) than the analysed sweep "
                         f"({config.log}), so its window features read other steps")
    runs, _, _ = runs_with_outcome(store.runs())
    ids = sorted(runs["run_id"].astype(str))
    y = np.array([reaches(v, threshold) for v in runs.set_index("run_id").loc[ids, "max_val_acc"]])
    if y.min() == y.max():
        raise ValueError(f"all {len(y)} of its runs have the label {bool(y[0])} at threshold "
                         f"{threshold:g}: a held-out AUROC needs both classes")
    return feature_matrix(store.log(), ids, window)[names], y


def print_fits(features: pd.DataFrame, names: list[str], orders: dict[str, list[str]],
               labels: pd.Series, window: int, heldout: tuple[pd.DataFrame, np.ndarray] | None,
               ) -> None:
    """One row per C chosen: which orders chose it and, held out, what the fit does."""
    X = features[features["window"] == window].set_index("run_id")[names]
    by_c: dict[float, list[str]] = {}
    fits: dict[float, GrokForecaster] = {}
    for name, ids in orders.items():
        fit = GrokForecaster().fit(X.loc[ids], labels.loc[ids].to_numpy())
        by_c.setdefault(fit.C_, []).append(name)
        fits.setdefault(fit.C_, fit)
    print(f"\nC chosen by a fit on all runs at W = {window} (as grokcast fit), by the order of "
          "the runs" + ("; held out: AUROC and runs with P(grok) < 0.1 of "
                        f"{len(heldout[1])}" if heldout else ""))
    for c in sorted(by_c):
        named = [n for n in by_c[c] if not n.startswith("random")]
        n_random = len(by_c[c]) - len(named)
        who = ", ".join(named + ([f"{n_random} random"] if n_random else []))
        line = f"C = {c:<10.4g} {who:<28}"
        if heldout:
            p = fits[c].predict_proba(heldout[0])[:, 1]
            line += f" AUROC {auroc(heldout[1], p):.3f}, P < 0.1: {int((p < 0.1).sum())}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", type=Path, help="written by grokcast analyze")
    parser.add_argument("--threshold", default=None, help="a key of analysis.json's thresholds "
                        "(default: the primary one)")
    parser.add_argument("--orders", type=int, default=50, help="random orders to try (default 50)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random orders "
                        "(default: the analysis' seed, whose orders analysis.json holds)")
    parser.add_argument("--window", type=int, default=None, help="W of the fits on all runs "
                        "(default: grokcast fit's, 200, or the analysis' middle window)")
    parser.add_argument("--heldout", type=Path, default=None, help="a sweep directory of the "
                        "same task to evaluate the fits on")
    args = parser.parse_args()
    if args.orders < 0:
        parser.error(f"--orders {args.orders} is not allowed: expected 0 or more")
    if args.seed is not None and args.seed < 0:
        parser.error(f"--seed {args.seed} is not allowed: expected 0 or more")

    if not (args.results_dir / "analysis.json").is_file():
        parser.error(f"{str(args.results_dir)!r} holds no analysis.json: expected a results "
                     "directory written by grokcast analyze")
    analysis = json.loads((args.results_dir / "analysis.json").read_text())
    features = pd.read_parquet(args.results_dir / "features.parquet")
    key = args.threshold or next(iter(analysis["thresholds"]))
    if key not in analysis["thresholds"]:
        parser.error(f"--threshold {key!r} is not allowed: expected one of "
                     f"{sorted(analysis['thresholds'])}")
    entry = analysis["thresholds"][key]
    cv = entry.get("cv") or analysis["settings"].get("cv")
    if cv not in (None, "loo"):  # above LOO_MAX_RUNS runs the analysis held runs out by k-fold
        parser.error(f"the analysis evaluated the forecaster by {cv} cross-validation; this "
                     "script recomputes leave-one-out, which is only comparable with a LOO analysis")
    if entry.get("single_class"):
        parser.error(f"at threshold {key} every run has the same label: no AUROC to compare")
    windows = [int(w) for w in analysis["settings"]["windows"]]
    names = [f["name"] for f in analysis["features"]]
    runs = pd.DataFrame(analysis["runs"])
    labels = pd.Series(entry["labels"], index=runs["run_id"])

    window = args.window if args.window is not None else primary_window(windows)
    if window not in windows:
        parser.error(f"--window {window} is not allowed: expected one of the analysed {windows}")

    try:  # before the long part: a bad sweep directory is named at once
        config = SweepConfig.from_dict(analysis["sweep"]["config"])
        heldout = (heldout_set(args.heldout, config, names, window, float(key))
                   if args.heldout is not None else None)
    except (StoreError, ValueError) as err:
        parser.error(f"--heldout {str(args.heldout)!r}: {err}")

    grid = runs.sort_values(["train_frac", "weight_decay", "seed"], kind="stable")["run_id"]
    seed = args.seed if args.seed is not None else int(analysis["settings"]["seed"])
    orders = {"run_id": list(runs["run_id"]), "grid": list(grid)}
    ids = runs["run_id"].to_numpy()
    random_orders = {f"random {k}": list(ids[o])
                     for k, o in enumerate(run_orders(len(ids), args.orders, seed))}
    # A bar on stderr: each order is a LOO fit per window, about a second on 2 cores.
    shuffled = [loo_aurocs(features, names, ids, labels, windows)
                for ids in tqdm(random_orders.values(), desc="run orders", unit="order", leave=False)]
    rows = {name: loo_aurocs(features, names, ids, labels, windows) for name, ids in orders.items()}

    print(f"LOO AUROC of the forecaster at threshold {key}, by the order of the runs"
          + (f" ({len(shuffled)} random orders: min, median, max)" if shuffled else ""))
    cols = ["W", "run_id", "grid"] + (["min", "median", "max"] if shuffled else []) + ["val loss"]
    print("".join(f"{c:>9}" for c in cols))
    for k, w in enumerate(windows):
        values = [rows["run_id"][k], rows["grid"][k]]
        if shuffled:
            col = np.array([s[k] for s in shuffled])
            values += [col.min(), np.median(col), col.max()]
        loss = (entry["windows"][str(w)].get("val_loss") or {}).get("auroc")
        values.append(np.nan if loss is None else loss)
        print(f"{w:>9}" + "".join(f"{v:>9.3f}" for v in values))

    print_fits(features, names, orders | random_orders, labels, window, heldout)
    # The task and schedule were checked equal above, so a shared run_id is the same run (same
    # fraction, weight decay and seeds), whose window every fit was trained on.
    shared = sorted(set(heldout[0].index) & set(runs["run_id"])) if heldout is not None else []
    if shared:
        print(f"note: {len(shared)} of the {len(heldout[1])} held-out runs (e.g. {shared[0]!r}) "
              "are runs of the analysed sweep, which every fit was trained on: their AUROC and "
              "P(grok) are in-sample, not held out (train the grid with other seeds)")


if __name__ == "__main__":
    main()
