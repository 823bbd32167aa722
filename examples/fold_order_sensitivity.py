"""How much the forecaster's leave-one-out AUROC depends on the order of the runs.

The forecaster chooses its regularisation C by a stratified 3-fold CV that, as in
scikit-learn's ``LogisticRegressionCV(cv=3)``, is not shuffled: each fold takes, within each
class, a consecutive block of its runs in the order they are given, and ``grokcast analyze``
gives them in ``run_id`` order. Another order gives other folds, possibly another C, other held-out
probabilities and another AUROC. The reference does not say in which order its runs were.

This script recomputes the LOO AUROC of every window from a results directory with the runs
in ``run_id`` order (it must equal analysis.json's), in grid order (train fraction, weight
decay, seed: the order a config's loops give), and in ``--orders`` random orders (seeded),
beside the val-loss baseline, which no order changes::

    python examples/fold_order_sensitivity.py out/paper/results --orders 50

The 50 orders of the paper sweep take about a minute on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from grokcast.forecast import loo_predictions
from grokcast.stats import auroc


def loo_aurocs(features: pd.DataFrame, names: list[str], run_ids: list[str], labels: pd.Series,
               windows: list[int]) -> list[float]:
    """The LOO AUROC at each window with the runs in the order of ``run_ids``."""
    y = labels.loc[run_ids].to_numpy()
    out = []
    for w in windows:
        X = features[features["window"] == w].set_index("run_id").loc[run_ids, names].to_numpy()
        out.append(float(auroc(y, loo_predictions(X, y))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", type=Path, help="written by grokcast analyze")
    parser.add_argument("--threshold", default=None, help="a key of analysis.json's thresholds "
                        "(default: the primary one)")
    parser.add_argument("--orders", type=int, default=50, help="random orders to try (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random orders")
    args = parser.parse_args()
    if args.orders < 0:
        parser.error(f"--orders {args.orders} is not allowed: expected 0 or more")

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

    grid = runs.sort_values(["train_frac", "weight_decay", "seed"], kind="stable")["run_id"]
    rng = np.random.default_rng(args.seed)
    orders = {"run_id": list(runs["run_id"]), "grid": list(grid)}
    shuffled = [loo_aurocs(features, names, list(rng.permutation(runs["run_id"])), labels, windows)
                for _ in range(args.orders)]
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


if __name__ == "__main__":
    main()
