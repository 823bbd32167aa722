"""examples/fold_order_sensitivity.py on a sweep analysed by grokcast.analysis."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_analysis import synthetic_sweep
from test_forecast import sklearn_reference

from grokcast import analysis as A
from grokcast.config import LogConfig, ModelConfig, OptimConfig, SweepConfig
from grokcast.features import FEATURE_NAMES
from grokcast.store import SweepStore
from grokcast.sweep import run_sweep
from grokcast.tool import evaluate_forecaster, fit_forecaster

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "fold_order_sensitivity.py"


def test_run_id_order_reproduces_the_analysis_and_other_orders_are_listed(tmp_path: Path) -> None:
    runs, log = synthetic_sweep()
    config = SweepConfig(name="orders", train_fracs=(0.3, 0.6), weight_decays=(1.0,),
                         seeds=tuple(range(11)))
    # Seed 3: the script's random orders follow the analysis' seed, not a fixed one.
    A.write_results(A.analyze(runs, log, config, windows=(100, 200), n_resamples=50, seed=3,
                              orders=3), tmp_path)
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--orders", "3"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("LOO AUROC of the forecaster at threshold 0.9")
    assert out[1].split() == ["W", "run_id", "grid", "min", "median", "max", "val", "loss"]
    a = json.loads((tmp_path / "analysis.json").read_text())
    for line, w in zip(out[2:4], (100, 200), strict=True):
        values = line.split()
        cell = a["thresholds"]["0.9"]["windows"][str(w)]
        assert int(values[0]) == w
        # The analysis gives the runs in run_id order: that column must be its number.
        assert float(values[1]) == round(cell["multi"]["auroc"], 3)
        assert float(values[6]) == round(cell["val_loss"]["auroc"], 3)
        # The random orders are the analysis' (same seed): their spread is multi_by_order's.
        by_order = cell["multi_by_order"]
        assert [float(v) for v in values[3:6]] == [
            round(x, 3) for x in (min(by_order), np.median(by_order), max(by_order))]
    # The fits on all runs: the run_id order's C is scikit-learn's, fitted in that order.
    assert out[5].startswith("C chosen by a fit on all runs at W = 200")
    (c_line,) = [line for line in out[6:] if "run_id" in line]
    X = A.feature_matrix(log, [r["run_id"] for r in a["runs"]], 200)[list(FEATURE_NAMES)]
    sk = sklearn_reference().fit(X, a["thresholds"]["0.9"]["labels"])[-1]
    assert float(c_line.split()[2]) == float(f"{np.ravel(sk.C_)[0]:.4g}")


def test_held_out_scores_match_grokcast_fit_and_evaluate(tmp_path: Path) -> None:
    """On a tiny real sweep, the run_id order's fit is what grokcast fit saves, and its
    held-out AUROC (here on the same sweep) what grokcast evaluate reports."""
    config = SweepConfig(
        name="tiny", p=11, train_fracs=(0.3, 0.6), weight_decays=(1.0, 10.0), seeds=(0, 1),
        n_steps=30, model=ModelConfig(d_model=16, n_heads=2, d_mlp=32),
        optim=OptimConfig(lr=1e-2), log=LogConfig(dense_until=40))
    sweep = tmp_path / "sweep"
    run_sweep(config, sweep, device="cpu", progress=False)
    store = SweepStore(sweep)
    A.write_results(A.analyze(store.runs(), store.log(), config, windows=(20,), thresholds=(0.09,),
                              n_resamples=20, seed=0), tmp_path / "results")
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "results"), "--orders", "2",
                          "--heldout", str(sweep)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    (c_line,) = [line for line in out if line.startswith("C = ") and "run_id" in line]
    fit = fit_forecaster(sweep, window=20, threshold=0.09, out=tmp_path / "f.json", seed=0,
                         n_resamples=20)
    held = evaluate_forecaster(tmp_path / "f.json", sweep, n_resamples=20)
    assert float(c_line.split()[2]) == float(f"{fit['C']:.4g}")
    assert f"AUROC {held['forecaster']['auroc']:.3f}," in c_line
    # Found walking the docs: the analysed sweep passed as --heldout scored its own runs, in
    # sample, without a word (grokcast evaluate notes it); runs of other seeds get no note.
    assert out[-1].startswith("note: 8 of the 8 held-out runs (e.g. 'p11-f0.3-wd1-s0-ss0') are "
                              "runs of the analysed sweep"), out[-1]
    unseen = tmp_path / "unseen"
    run_sweep(dataclasses.replace(config, seeds=(4, 5)), unseen, device="cpu", progress=False)
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "results"), "--orders", "0",
                          "--heldout", str(unseen)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "held out: AUROC" in out.stdout and "note:" not in out.stdout, out.stdout
    # The same task logged on another schedule: its window features read other steps.
    sparse = tmp_path / "sparse"
    run_sweep(dataclasses.replace(config, log=LogConfig(dense_until=10, every=5)), sparse,
              device="cpu", progress=False)
    res = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "results"), "--orders", "0",
                          "--heldout", str(sparse)], capture_output=True, text=True)
    assert res.returncode == 2 and "logs on another schedule" in res.stderr, res.stderr


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    runs, log = synthetic_sweep()
    config = SweepConfig(name="orders", train_fracs=(0.3, 0.6), weight_decays=(1.0,),
                         seeds=tuple(range(11)))
    A.write_results(A.analyze(runs, log, config, windows=(100,), n_resamples=10, seed=0), tmp_path)
    other_task = tmp_path / "other"  # p = 11: another task than the analysed p = 23
    run_sweep(SweepConfig(name="p11", p=11, train_fracs=(0.5,), weight_decays=(1.0,), seeds=(0,),
                          n_steps=5, model=ModelConfig(d_model=16, n_heads=2, d_mlp=32)),
              other_task, device="cpu", progress=False)

    def error(*argv: str) -> str:
        res = subprocess.run([sys.executable, str(SCRIPT), *argv, "--orders", "0"],
                             capture_output=True, text=True)
        assert res.returncode == 2, res.stdout
        return res.stderr.strip().splitlines()[-1]

    assert "--threshold '0.5' is not allowed: expected one of" in error(str(tmp_path),
                                                                        "--threshold", "0.5")
    assert "holds no analysis.json" in error(str(tmp_path / "nowhere"))
    assert "--window 7 is not allowed" in error(str(tmp_path), "--window", "7")
    assert "is not a sweep directory" in error(str(tmp_path), "--heldout", str(tmp_path))
    assert "another task" in error(str(tmp_path), "--heldout", str(other_task))
