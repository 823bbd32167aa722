"""How far two sweeps of the same grid drift apart, signal by signal: e.g. fp32 against bf16.

For each logged signal and each chosen step, the median over runs of the relative difference
|b - a| / |a| between the two sweeps' logs (absolute difference for the accuracies, which
start at 0). Both sweeps must hold the same run ids.

    python benchmarks/precision_effect.py out/paper/sweep out/paper_bf16/sweep
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from grokcast.signals import SIGNAL_NAMES
from grokcast.store import SweepStore

ABSOLUTE = ("train_acc", "val_acc")


def drift(a: pd.DataFrame, b: pd.DataFrame, steps: list[int]) -> pd.DataFrame:
    """Median over runs of each signal's difference between logs ``a`` and ``b`` at ``steps``."""
    both = a.merge(b, on=["run_id", "step"], suffixes=("_a", "_b"))
    if both.empty:
        raise SystemExit("the two sweeps share no (run_id, step) rows: not the same grid")
    table = {}
    for step in steps:
        at = both[both.step == step]
        col = {}
        for name in SIGNAL_NAMES:
            x, y = at[f"{name}_a"].to_numpy(), at[f"{name}_b"].to_numpy()
            diff = np.abs(y - x) if name in ABSOLUTE else np.abs(y - x) / np.abs(x)
            col[name] = np.nanmedian(diff) if np.isfinite(diff).any() else np.nan
        table[step] = col
    return pd.DataFrame(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="sweep directory (the reference, e.g. fp32)")
    ap.add_argument("b", help="sweep directory of the same grid (e.g. bf16)")
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 10, 50, 100, 199, 299])
    args = ap.parse_args()
    table = drift(SweepStore(args.a).log(), SweepStore(args.b).log(), args.steps)
    print(table.to_string(float_format=lambda v: f"{v:.1e}"))


if __name__ == "__main__":
    main()
