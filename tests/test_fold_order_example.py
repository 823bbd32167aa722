"""examples/fold_order_sensitivity.py on a sweep analysed by grokcast.analysis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_analysis import synthetic_sweep

from grokcast import analysis as A
from grokcast.config import SweepConfig

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "fold_order_sensitivity.py"


def test_run_id_order_reproduces_the_analysis_and_other_orders_are_listed(tmp_path: Path) -> None:
    runs, log = synthetic_sweep()
    config = SweepConfig(name="orders", train_fracs=(0.3, 0.6), weight_decays=(1.0,),
                         seeds=tuple(range(11)))
    A.write_results(A.analyze(runs, log, config, windows=(100, 200), n_resamples=50, seed=0),
                    tmp_path)
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--orders", "3"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("LOO AUROC of the forecaster at threshold 0.9")
    assert out[1].split() == ["W", "run_id", "grid", "min", "median", "max", "val", "loss"]
    a = json.loads((tmp_path / "analysis.json").read_text())
    for line, w in zip(out[2:], (100, 200), strict=True):
        values = line.split()
        cell = a["thresholds"]["0.9"]["windows"][str(w)]
        assert int(values[0]) == w
        # The analysis gives the runs in run_id order: that column must be its number.
        assert float(values[1]) == round(cell["multi"]["auroc"], 3)
        assert float(values[6]) == round(cell["val_loss"]["auroc"], 3)
        lo, med, hi = map(float, values[3:6])
        assert lo <= med <= hi and np.isfinite([lo, hi]).all()


def test_a_bad_threshold_is_named(tmp_path: Path) -> None:
    runs, log = synthetic_sweep()
    config = SweepConfig(name="orders", train_fracs=(0.3, 0.6), weight_decays=(1.0,),
                         seeds=tuple(range(11)))
    A.write_results(A.analyze(runs, log, config, windows=(100,), n_resamples=10, seed=0), tmp_path)
    res = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--threshold", "0.5"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--threshold '0.5' is not allowed: expected one of" in res.stderr
