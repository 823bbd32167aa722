"""Time `grokcast analyze` on a large sweep: a real sweep's runs, each copied many times.

    .venv/bin/python benchmarks/bench_analysis.py out/paper/sweep --copies 100

Copy k of run (f, lambda, seed) becomes run (f, lambda, seed + k * n_seeds) with every signal
multiplied by (1 + 1e-6 * noise), so copies are not exact ties. The result is a store of
copies x n_runs runs (4,800 for the paper sweep) that `grokcast analyze` reads like any other.
Only the timing means anything: copies of a held-out run sit in the training folds, so the
AUROCs it prints are inflated.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from grokcast.analysis import analyze_sweep
from grokcast.store import StoreError, SweepStore


def replicate(src: Path, dst: Path, copies: int, seed: int = 0) -> int:
    """Write a store of ``copies`` jittered copies of the sweep at ``src``; return its run count."""
    store = SweepStore(src)
    log, runs = store.log(), store.runs()
    meta = json.loads((src / "sweep.json").read_text())
    n_seeds = len(meta["config"]["seeds"])
    meta["config"]["seeds"] = list(range(n_seeds * copies))
    meta["config"]["name"] += f"-x{copies}"
    (dst / "log").mkdir(parents=True)
    (dst / "runs").mkdir()
    (dst / "sweep.json").write_text(json.dumps(meta, indent=1))
    signals = [c for c in log.columns if c not in ("run_id", "step")]
    rng = np.random.default_rng(seed)
    for k in range(copies):
        rename = {rid: rid.replace(f"-s{s}-", f"-s{s + k * n_seeds}-")
                  for rid, s in zip(runs.run_id, runs.seed)}
        name = f"chunk-{k:05d}.parquet"
        runs.assign(run_id=runs.run_id.map(rename), seed=runs.seed + k * n_seeds,
                    chunk=name.removesuffix(".parquet")).to_parquet(dst / "runs" / name)
        copy = log.assign(run_id=log.run_id.map(rename))
        copy[signals] = copy[signals] * (1 + 1e-6 * rng.standard_normal((len(copy), len(signals))))
        copy.to_parquet(dst / "log" / name)
    return len(runs) * copies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path, help="a finished sweep directory, e.g. out/paper/sweep")
    ap.add_argument("--copies", type=int, default=100)
    args = ap.parse_args()
    if args.copies < 1:
        raise SystemExit(f"--copies={args.copies} is not allowed: expected an integer >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "sweep"
        n_runs = replicate(args.sweep, big, args.copies)
        start = time.perf_counter()
        result = analyze_sweep(big, Path(tmp) / "results")
        seconds = time.perf_counter() - start
        cv = result["thresholds"]["0.9"]["cv"]
        shutil.rmtree(big)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"analyzed {n_runs} runs ({cv}) in {seconds:.1f} s; peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    try:
        main()
    except (StoreError, ValueError) as err:  # not a finished sweep, or too short for the windows
        raise SystemExit(f"bench_analysis.py: error: {err}") from None
