"""`grokcast sweep` end to end: smoke run, resume after kill -9, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import grokcast
from grokcast.cli import main
from grokcast.config import ConfigError, SweepConfig
from grokcast.store import SweepStore
from grokcast.train import train_ensemble

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.toml"


def _tiny_config(tmp_path: Path, **overrides) -> Path:
    lines = {"name": '"tiny"', "train_fracs": "[0.3, 0.6]", "weight_decays": "[1.0]",
             "seeds": "[0, 1]", "n_steps": "30", **overrides}
    path = tmp_path / "tiny.toml"
    body = "\n".join(f"{k} = {v}" for k, v in lines.items())
    path.write_text(body + "\n[log]\ndense_until = 10\nevery = 10\n")
    return path


def test_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version

    from grokcast.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"grokcast {version('grokcast')}\n"


def test_python_m_grokcast_runs_the_command_and_its_workers(tmp_path):
    """`python -m grokcast` is the grokcast command, down to a sweep with worker processes
    (they import the package's __main__ again): its log equals an in-process sweep's."""
    version = subprocess.run([sys.executable, "-m", "grokcast", "--version"], capture_output=True,
                             text=True, check=True)
    assert version.stdout == f"grokcast {grokcast.__version__}\n"
    cfg = _tiny_config(tmp_path)
    cmd = [sys.executable, "-m", "grokcast", "sweep", "--config", str(cfg), "--out",
           str(tmp_path / "m"), "--workers", "2", "--chunk-size", "2", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "trained 4 runs" in done.stdout
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "in"), "--workers", "1",
                 "--quiet"]) == 0
    logs = [SweepStore(tmp_path / d).log().sort_values(["run_id", "step"], ignore_index=True)
            for d in ("m", "in")]
    pd.testing.assert_frame_equal(*logs)


def test_shipped_configs_parse():
    paper = SweepConfig.from_file(ROOT / "configs" / "paper.toml")
    assert len(paper.runs()) == 48 and paper.n_steps == 10_000
    assert len(SweepConfig.from_file(SMOKE).runs()) == 8


def test_sweep_writes_loadable_tables_and_skips_finished_runs(tmp_path, capsys):
    cfg, out = _tiny_config(tmp_path), tmp_path / "s"
    assert main(["sweep", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    runs, log = pd.read_parquet(out / "runs"), pd.read_parquet(out / "log")
    assert len(runs) == 4 and set(runs["status"]) == {"finished"}
    assert sorted(log[log.run_id == runs.run_id[0]]["step"]) == list(range(10)) + [10, 20, 30]
    before = sorted(p.name for p in (out / "runs").iterdir())
    assert main(["sweep", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == before
    # The sweep's own sweep.json is a config too (the TOML may be gone): was "unknown config
    # key 'grokcast_version'".
    assert SweepConfig.from_file(out / "sweep.json") == SweepConfig.from_file(cfg)
    assert main(["sweep", "--config", str(out / "sweep.json"), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == before
    assert "trained 0 runs (4 already finished)" in capsys.readouterr().out


def test_kill_9_mid_sweep_loses_no_finished_run(tmp_path):
    cfg = _tiny_config(tmp_path, n_steps="400", seeds="[0, 1, 2]")
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "grokcast.cli", "sweep", "--config", str(cfg), "--out", str(out),
           "--chunk-size", "1", "--workers", "1", "--quiet"]  # in-process (workers: the next test)
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "runs").glob("chunk-*.parquet"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = SweepStore(out).finished_run_ids()
    assert 2 <= len(finished) < 6, "the kill should land mid-sweep"
    subprocess.run(cmd, check=True)
    runs = SweepStore(out).runs()
    assert len(runs) == 6 and runs["run_id"].is_unique
    assert finished <= set(runs["run_id"])
    assert len(SweepStore(out).log()) == 6 * len(SweepConfig.from_file(cfg).log.steps(400))


def _session_pids(sid: int) -> list[int]:
    """Processes of a session, from /proc (field 6 of stat is the session id)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # exited while we looked
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_worker_sweep_stops_its_workers_at_once(tmp_path, sig):
    """Ctrl-C (SIGINT to the whole process group) or kill -9 of the sweep process: every
    worker is gone within seconds (none trains on orphaned), the stored chunks survive."""
    cfg = _tiny_config(tmp_path, n_steps="3000", seeds="[0, 1, 2]")  # ~3 s per run
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "grokcast.cli", "sweep", "--config", str(cfg), "--out", str(out),
           "--chunk-size", "1", "--workers", "2", "--quiet"]
    # As a terminal's foreground job starts: with Ctrl-C at its default, also where this test
    # runs in a background job, which starts with it ignored (and a sweep then ignores it).
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "runs").glob("chunk-*.parquet")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT) if sig == signal.SIGINT else os.kill(proc.pid, sig)
    t0 = time.time()
    rc = proc.wait(timeout=60)
    # The 5 unfinished runs would take several seconds more: they are dropped, not trained.
    assert time.time() - t0 < 5
    while _session_pids(proc.pid) and time.time() - t0 < 5:
        time.sleep(0.1)
    assert not _session_pids(proc.pid)
    assert rc == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    finished = SweepStore(out).finished_run_ids()
    assert 1 <= len(finished) < 6, "the signal should land mid-sweep"
    if sig == signal.SIGINT:  # how far it got and how to go on (was: "finished runs are stored")
        assert (f"interrupted: {len(finished)} of 6 runs are stored; the same command resumes"
                in proc.stderr.read())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_worker_killed_by_the_system_ends_the_sweep_with_a_clear_error(tmp_path):
    """The OOM killer takes a worker: the sweep says so and exits (it does not wait forever
    for the lost chunk), keeping what finished."""
    cfg = _tiny_config(tmp_path, n_steps="3000", seeds="[0, 1, 2]")
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "grokcast.cli", "sweep", "--config", str(cfg), "--out", str(out),
           "--chunk-size", "1", "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.PIPE, text=True)

    def cmdline(pid: int) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # a short-lived process of the session exited after it was listed
            return b""

    def workers() -> list[int]:
        return [pid for pid in _session_pids(proc.pid) if b"spawn_main" in cmdline(pid)]

    deadline = time.time() + 120
    while time.time() < deadline and len(workers()) < 2:
        time.sleep(0.05)
    time.sleep(1.0)  # inside their first chunks
    os.kill(workers()[0], signal.SIGKILL)
    assert proc.wait(timeout=30) == 2
    err = proc.stderr.read()
    assert "a worker process died" in err and "rerun to resume" in err
    assert not workers(), "multiprocessing joins its children at exit: none may train on"
    # multiprocessing's resource tracker is no child: it exits when it reads EOF from the
    # sweep's closed pipe, which on a loaded machine can be just after the sweep has exited.
    t0 = time.time()
    while _session_pids(proc.pid) and time.time() - t0 < 5:
        time.sleep(0.05)
    assert not _session_pids(proc.pid)
    assert len(SweepStore(out).finished_run_ids()) < 6


@pytest.mark.parametrize("override, needle", [
    ({"train_fracs": "[0.3, 1.5]"}, "train_frac=1.5"),
    ({"weight_decays": "[-1.0]"}, "weight_decay=-1.0"),
    ({"n_steps": "-5"}, "n_steps=-5"),
    ({"p": "1"}, "p=1"),
    ({"colour": '"red"'}, "unknown config key 'colour'"),
    ({"train_fracs": "[[0.3], [0.6]]"}, "a flat list of numbers"),
    ({"train_fracs": "[0.3, 0.3000001]"}, "0.3 and 0.3000001 are both '0.3'"),
    # Was accepted: two names for the same runs (one split permutation, 159 examples each).
    ({"train_fracs": "[0.3, 0.3005]"}, "0.3 and 0.3005 both give round(f * p * p) = 159 of the "
                                       "p * p = 529 examples"),
    ({"weight_decays": "[1.0, 1.0000001]"}, "weight_decays=(1.0, 1.0000001) is not allowed"),
    ({"seeds": "[18446744073709551616]"}, "seed=18446744073709551616 is not allowed: expected an "
                                          "integer in [0, 4294967295]"),
    # Were accepted: torch's generator keeps a seed's low 32 bits, so these trained one run
    # twice under two names (found in review).
    ({"seeds": "[0, 4294967296]"}, "seed=4294967296 is not allowed: expected an integer in "
                                   "[0, 4294967295] (an entry of seeds)"),
    # Were accepted: AdamW's factor 1 - lr * λ rounds in float32 (as torch.optim.AdamW's on
    # float32 weights): 1e-5 trained as λ = 0, 4e-5 as 5e-5.
    ({"weight_decays": "[0.0, 1e-5]"}, "weight_decay=1e-05 is not allowed: expected 0, or a decay "
                                       "float32 can apply at optim.lr=0.001: the factor 1 - lr * "
                                       "weight_decay rounds to 1 in float32 (no decay at all), so "
                                       "a weight_decay above 2.98e-05"),
    ({"weight_decays": "[4e-5, 5e-5]"}, "4e-05 and 5e-05 give the same float32 factor 1 - lr * "
                                        "weight_decay = 0.9999999403953552 at optim.lr=0.001"),
    ({"p": "100000"}, "p=100000 is not allowed: expected an integer in [2, 1000]"),
    ({"name": '""'}, "name='' is not allowed: expected a non-empty string"),
    # Sizes that would exhaust memory are refused before anything is allocated or written.
    ({"n_steps": "0"}, "n_steps=0 is not allowed: expected an integer >= 1"),
    # Was accepted: a sweep trained for nothing, every window refused by analyze afterwards.
    ({"n_steps": "1"}, "n_steps=1 is not allowed: expected a run that logs at least two steps "
                       "before its last (log.dense_until=10, log.every=10 log [0] below it)"),
    ({"n_steps": "100000000000"}, "n_steps=100000000000 is not allowed: expected at most "
                                  "100,000 logged steps per run (log.dense_until=10, log.every=10)"),
    # Were accepted: 0 in float32, every run's update 0/0 (stored as diverged), or inf.
    ({"optim": "{eps = 1e-50}"}, "optim.eps=1e-50 is not allowed: expected a number float32 holds, "
                                 "between 1.175e-38 and 3.403e+38 in size"),
    ({"weight_decays": "[0.0, 1e39]"}, "weight_decay=1e+39 is not allowed: expected 0 or a number "
                                       "float32 holds"),
    ({"model": "{init_scale = 1e-45}"}, "model.init_scale=1e-45 is not allowed"),
    ({"model": "{d_mlp = 1000000000000}"}, "model.d_mlp=1000000000000 is not allowed: expected an "
                                           "integer in [1, 65536]"),
    ({"model": "{d_model = 32768, d_mlp = 65536}"}, "one run of this model needs about 640.6 GiB "
                                                    "while it trains"),
    ({"model": "{d_model = 64, n_heads = 5}"}, "model.n_heads=5 is not allowed: expected a divisor of "
                                               "d_model=64"),
    ({"model": "3"}, "model=3 is not allowed: expected a table of settings"),
])
def test_bad_config_is_one_clear_line_and_exit_2(tmp_path, capsys, override, needle):
    cfg = _tiny_config(tmp_path, **override)
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "s"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_steps_overrides_the_configs_n_steps(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--config", str(_tiny_config(tmp_path)), "--out", str(out), "--quiet",
                 "--workers", "1", "--steps", "13"]) == 0
    store = SweepStore(out)
    assert store.read_config().n_steps == 13  # the file says 30
    runs, log = store.runs(), store.log()
    assert len(runs) == 4 and (runs["n_steps"] == 13).all() and (runs["status"] == "finished").all()
    # log.dense_until = 10, log.every = 10: every step below 10, then 10, and the final step.
    for _, one in log.groupby("run_id"):
        assert one["step"].tolist() == [*range(11), 13]


def test_directory_of_another_sweep_is_refused_untouched(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--config", str(_tiny_config(tmp_path)), "--out", str(out), "--quiet",
                 "--workers", "1"]) == 0
    snapshot = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    other = _tiny_config(tmp_path, weight_decays="[3.0]")
    assert main(["sweep", "--config", str(other), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "different sweep" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == snapshot
    # The hint resumes it (was "use ... the same config", after a --steps override the user had).
    hint = (f"resume it with the config it holds: grokcast sweep --config "
            f"{str(out / 'sweep.json')!r} --out {str(out)!r}")
    assert hint in err
    assert main(["sweep", "--config", str(out / "sweep.json"), "--out", str(out), "--quiet"]) == 0


@pytest.mark.parametrize("args, needle", [
    (["--device", "tpu"], "device='tpu' is not allowed"),
    (["--device", "cuda", "--workers", "2"], "workers=2 is not allowed"),
    (["--address", "auto"], "--address is for --executor ray"),
    (["--executor", "ray", "--workers", "2"], "--workers is for the local executor"),
    (["--executor", "ray", "--no-cuda-graphs"], "--no-cuda-graphs is for the local executor"),
    (["--stop-model", "nothere.json", "--stop-below", "0.5"], "'nothere.json' does not exist"),
    # Was "--stop-model and --stop-below go together" alone: now it names the one missing.
    (["--stop-below", "0.5"], "--stop-below needs --stop-model FILE (a forecaster file from "
                              "grokcast fit): --stop-model and --stop-below go together"),
    (["--stop-model", "nothere.json"], "--stop-model needs --stop-below P (stop the runs whose "
                                       "P(grok) at W is below P, a number in [0, 1])"),
    # Above 2**31 ProcessPoolExecutor raised an OverflowError traceback after sweep.json was
    # written; any count above the cores made one-run chunks and competing processes.
    (["--workers", "99999999999999999999"], "workers=99999999999999999999 is not allowed: "
                                            "expected an integer in [1, "),
])
def test_bad_device_or_workers_leave_no_sweep_directory(tmp_path, capsys, args, needle):
    if args[1] == "cuda" and not torch.cuda.is_available():
        needle = "torch.cuda.is_available() is False"
    out = tmp_path / "s"
    assert main(["sweep", "--config", str(_tiny_config(tmp_path)), "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_workers_takes_a_count_or_auto(tmp_path, capsys):
    cfg = str(_tiny_config(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "--config", cfg, "--out", str(tmp_path / "s"), "--workers", "two"])
    assert exit_.value.code == 2
    assert ("argument --workers: 'two' is not allowed: expected an integer >= 1 or auto"
            in capsys.readouterr().err)
    with pytest.raises(SystemExit):
        main(["reproduce", "--config", cfg, "--out", str(tmp_path / "r"), "--workers", "0"])
    assert "argument --workers: '0' is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()


def test_api_objects_of_the_wrong_type_are_named(tmp_path):
    from grokcast.config import RunConfig
    from grokcast.sweep import run_sweep
    from grokcast.train import train_ensemble

    with pytest.raises(ConfigError, match="model=.* is not allowed: expected a ModelConfig"):
        RunConfig(model={"d_model": 8})
    with pytest.raises(TypeError, match="runs must be RunConfig objects, got dict"):
        train_ensemble([{"p": 23}])
    # Was: "'RunConfig' object is not iterable"; run_sweep's AttributeErrors from inside the
    # store (after creating the directory's lock), the memory estimate, or the stop rule.
    with pytest.raises(TypeError, match=r"got one RunConfig: pass \[run\]"):
        train_ensemble(RunConfig(n_steps=1))
    with pytest.raises(ValueError, match=r"^an ensemble needs at least one run$"):
        train_ensemble([])
    out = tmp_path / "s"
    with pytest.raises(TypeError, match=r"config must be a SweepConfig, got RunConfig: a grid of one "
                                        r"run is SweepConfig\(train_fracs=\[f\]"):
        run_sweep(RunConfig(n_steps=1), out)
    with pytest.raises(TypeError, match=r"config must be a SweepConfig, got dict \(SweepConfig.from_file"):
        run_sweep({"p": 5}, out)
    with pytest.raises(TypeError, match=r"stop=<object object .*> is not allowed: expected a rule "
                                        r"with hook\(chunk\) and record\(\) methods"):
        run_sweep(SweepConfig(n_steps=2), out, stop=object())
    assert not out.exists()
    from grokcast.analysis import analyze
    from grokcast.early_stop import StopRule

    with pytest.raises(TypeError, match=r"config must be the sweep's SweepConfig .* got dict"):
        analyze(pd.DataFrame(), pd.DataFrame(), {"name": "x"})
    with pytest.raises(TypeError, match=r"config must be the sweep's SweepConfig, got NoneType"):
        StopRule("model.json", 0.5, "0" * 64).check(None)
    if not torch.cuda.is_available():  # was "AssertionError: Torch not compiled with CUDA"
        with pytest.raises(ValueError, match=r"device='cuda' was requested but "
                                             r"torch.cuda.is_available\(\) is False"):
            train_ensemble([RunConfig(n_steps=1)], torch.device("cuda"))


def test_grids_may_be_python_lists_and_numpy_numbers():
    """`SweepConfig(train_fracs=[0.3])` said "expected a non-empty list" of a list."""
    import numpy as np

    config = SweepConfig(train_fracs=[0.3, 0.6], weight_decays=[np.float64(1.0)],
                         seeds=tuple(np.arange(2)))
    assert config == SweepConfig(train_fracs=(0.3, 0.6), weight_decays=(1.0,), seeds=(0, 1))
    assert all(type(s) is int for s in config.seeds)
    assert [r.run_id for r in config.runs()] == [r.run_id for r in SweepConfig(
        train_fracs=(0.3, 0.6), weight_decays=(1.0,), seeds=(0, 1)).runs()]
    assert SweepConfig(seeds=np.arange(3)).seeds == (0, 1, 2)
    assert SweepConfig(seeds=range(1, 4)).seeds == (1, 2, 3)  # was "expected a non-empty list"
    assert len(SweepConfig(seeds=range(100)).runs()) == 4 * 4 * 100
    with pytest.raises(ConfigError, match=r"^seeds=range\(0, 0\) is not allowed: expected a non-empty list"):
        SweepConfig(seeds=range(0))
    with pytest.raises(ConfigError, match=r"^seeds=\(array\(\[0, 1\]\),\) is not allowed: expected "
                                          "a flat list of numbers"):
        SweepConfig(seeds=[np.array([0, 1])])


def test_scalar_settings_may_be_numpy_numbers_and_are_stored_as_plain_ones():
    """Was: `SweepConfig(n_steps=np.int64(300))` and `RunConfig(seed=np.int64(1))` refused,
    while a grid of numpy numbers was taken."""
    import json

    import numpy as np

    from grokcast.config import LogConfig, ModelConfig, OptimConfig, RunConfig

    config = SweepConfig(p=np.int64(23), n_steps=np.int64(300), split_seed=np.int32(1),
                         model=ModelConfig(d_model=np.int64(32), init_scale=np.float64(0.5)),
                         optim=OptimConfig(lr=np.float32(0.25)), log=LogConfig(every=np.int64(50)))
    plain = SweepConfig(p=23, n_steps=300, split_seed=1, model=ModelConfig(d_model=32, init_scale=0.5),
                        optim=OptimConfig(lr=0.25), log=LogConfig(every=50))
    assert config == plain and json.dumps(config.to_dict()) == json.dumps(plain.to_dict())
    assert type(config.n_steps) is int and type(config.model.init_scale) is float
    assert RunConfig(seed=np.int64(1)).run_id == RunConfig(seed=1).run_id
    with pytest.raises(ConfigError, match=r"^n_steps=3.5 is not allowed: expected an integer"):
        SweepConfig(n_steps=np.float64(3.5))
    with pytest.raises(ConfigError, match=r"^seed=(np\.)?True_? is not allowed"):
        RunConfig(seed=np.bool_(True))


def test_float32_settings_are_the_decimals_they_print_as_and_minus_zero_is_zero():
    """Was: `weight_decay=np.float32(0.1)` stored 0.10000000149011612, a different sweep from
    the TOML file's 0.1; `weight_decays=[-0.0]` equal to `[0.0]` but with run ids "wd-0", so
    a store of one refused the other's runs as "outside the grid"."""
    import numpy as np

    from grokcast.config import OptimConfig, RunConfig

    assert RunConfig(weight_decay=np.float32(0.1)).weight_decay == 0.1
    assert SweepConfig(weight_decays=np.array([0.1, 1.0], dtype=np.float32)) == \
        SweepConfig(weight_decays=(0.1, 1.0))
    assert OptimConfig(lr=np.float32(1e-3)).lr == 1e-3
    zero = SweepConfig(weight_decays=[-0.0])
    assert zero.to_dict() == SweepConfig(weight_decays=[0.0]).to_dict()
    assert [r.run_id for r in zero.runs()][0] == "p23-f0.3-wd0-s0-ss0"
    assert str(RunConfig(weight_decay=-0.0).weight_decay) == "0.0"
    with pytest.raises(ConfigError, match="expected a list without repeated values"):
        SweepConfig(weight_decays=[0.0, -0.0])
    # The repeated value is named: the tuple alone printed two equal-looking entries.
    with pytest.raises(ConfigError, match=r"weight_decays=\(0.0001, 0.0001\) is not allowed: "
                                          r"expected a list without repeated values \(0.0001 is "
                                          r"there twice\)$"):
        SweepConfig(weight_decays=[1e-4, 0.0001])


def test_json_configs_refuse_repeated_keys_and_deep_nesting_as_toml_does(tmp_path):
    """Was: {"p": 5, "p": 7} trained p = 7 (TOML refuses a repeated key); 100,000 nested
    brackets a RecursionError traceback."""
    path = tmp_path / "c.json"
    path.write_text('{"p": 5, "p": 7}')
    with pytest.raises(ConfigError, match=r"is not valid: the key 'p' appears twice in one object"):
        SweepConfig.from_file(path)
    path.write_text('{"model": {"d_model": 8, "d_model": 16}}')
    with pytest.raises(ConfigError, match=r"the key 'd_model' appears twice"):
        SweepConfig.from_file(path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match=r"is not valid: nested too deeply"):
        SweepConfig.from_file(path)
    path.write_text('{"p": 7}')
    assert SweepConfig.from_file(path).p == 7


def test_integers_too_large_for_a_float_are_refused_by_name(tmp_path):
    """Was: OverflowError ('int too large to convert to float') from the check itself."""
    from grokcast.config import OptimConfig

    huge = 10**400
    with pytest.raises(ConfigError, match=r"^weight_decay=1000+ is not allowed: expected a finite "
                                          r"number in \[0.0, inf\) \(an entry of weight_decays\)"):
        SweepConfig(weight_decays=[huge])
    with pytest.raises(ConfigError, match=r"^optim.lr=1000+ is not allowed"):
        OptimConfig(lr=huge)
    path = tmp_path / "big.toml"
    path.write_text(f"weight_decays = [{huge}]\n")
    with pytest.raises(ConfigError, match=r"weight_decay=1000+ is not allowed"):
        SweepConfig.from_file(path)
    assert SweepConfig(weight_decays=[10**38]).weight_decays == (1e38,)
    with pytest.raises(ConfigError, match=r"^weight_decay=10+ is not allowed: expected 0 or a number "
                                          r"float32 holds"):
        SweepConfig(weight_decays=[10**300])  # a float, but inf in float32


def test_config_errors_name_value_and_allowed():
    with pytest.raises(ConfigError, match=r"train_frac=0 .*\(0.0, 1.0\) \(an entry of train_fracs\)"):
        SweepConfig(train_fracs=(0,))
    with pytest.raises(ConfigError, match=r"seed=-1 .* \(an entry of seeds\)"):
        SweepConfig(seeds=(0, -1))
    with pytest.raises(ConfigError, match="model.init='xavier'"):
        SweepConfig.from_dict({"model": {"init": "xavier"}})
    with pytest.raises(ConfigError, match=r"model.precision=.fp16. .*'fp32', 'bf16'"):
        SweepConfig.from_dict({"model": {"precision": "fp16"}})
    # One value, a set (unordered) or a text where a list belongs: refused, not iterated.
    for given in (0.3, {0.3, 0.6}, "0.3"):
        with pytest.raises(ConfigError, match=rf"^train_fracs={re.escape(repr(given))} is not allowed: "
                                              r"expected a non-empty list$"):
            SweepConfig(train_fracs=given)


@pytest.mark.parametrize("text", ["[1, 2, 3]", "null", '"p"'])
def test_json_config_must_be_an_object(tmp_path, text):
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(ConfigError, match="must be a table of settings"):
        SweepConfig.from_file(tmp_path / "c.json")


def test_config_file_must_be_utf8(tmp_path):
    (tmp_path / "c.toml").write_bytes(b"p = 23\n\xff\n")
    with pytest.raises(ConfigError, match=r"c\.toml' is not UTF-8 text"):
        SweepConfig.from_file(tmp_path / "c.toml")


def test_config_file_must_be_a_toml_or_json_file(tmp_path):
    (tmp_path / "c.yaml").write_text("p: 23\n")
    with pytest.raises(ConfigError, match=r"c\.yaml' is not allowed: expected a \.toml or \.json file"):
        SweepConfig.from_file(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        SweepConfig.from_file(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        SweepConfig.from_file(tmp_path / "none.toml")
    (tmp_path / "UPPER.TOML").write_text("seeds = [7]\n")
    assert SweepConfig.from_file(tmp_path / "UPPER.TOML").seeds == (7,)


@pytest.mark.parametrize("workers", ["2", "auto"])  # auto: one per core (at least 2 in CI)
def test_worker_processes_write_the_same_store_as_one_process(tmp_path, workers):
    cfg = _tiny_config(tmp_path)
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "one"), "--quiet",
                 "--workers", "1"]) == 0
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "two"), "--quiet",
                 "--workers", workers, "--chunk-size", "1"]) == 0
    one, two = SweepStore(tmp_path / "one"), SweepStore(tmp_path / "two")
    # Both use one torch thread per ensemble (conftest sets it here; workers set it themselves).
    pd.testing.assert_frame_equal(one.log(), two.log())
    cols = ["run_id", "status", "max_val_acc", "final_val_loss"]
    pd.testing.assert_frame_equal(one.runs()[cols], two.runs()[cols])


def test_the_cli_trains_one_single_threaded_worker_per_core_by_default(tmp_path, monkeypatch):
    """No --workers: ``auto`` (one worker process per usable core on the CPU), while
    ``run_sweep``'s own default stays in-process (a script needs a __main__ guard for workers)."""
    import grokcast.sweep as sweep_module

    used, real = [], sweep_module.train_in_processes

    def spy(chunks, workers, *args):
        used.append(workers)
        yield from real(chunks, workers, *args)

    monkeypatch.setattr(sweep_module, "train_in_processes", spy)
    cfg = _tiny_config(tmp_path)
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "s"), "--quiet",
                 "--device", "cpu"]) == 0
    cores = sweep_module.resolve_workers("auto", torch.device("cpu"))
    assert used == ([cores] if cores > 1 else [])
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "one"), "--quiet",
                 "--workers", "1", "--device", "cpu"]) == 0
    assert used == ([cores] if cores > 1 else [])  # --workers 1: in this process
    pd.testing.assert_frame_equal(SweepStore(tmp_path / "s").log(), SweepStore(tmp_path / "one").log())


def test_no_cuda_graphs_reaches_the_trainer(tmp_path, monkeypatch):
    """The CLI's escape hatch from the CUDA graphs is passed down to train_ensemble."""
    import grokcast.sweep as sweep_module

    seen, real = [], sweep_module.run_sweep

    def spy_train(chunk, device, **kwargs):
        seen.append(kwargs["cuda_graphs"])
        return train_ensemble(chunk, device, **kwargs)

    monkeypatch.setattr(sweep_module, "run_sweep", lambda *a, **kw: real(*a, **kw, train_fn=spy_train))
    cfg = _tiny_config(tmp_path)
    base = ["sweep", "--config", str(cfg), "--quiet", "--workers", "1", "--out"]
    assert main(base + [str(tmp_path / "a"), "--no-cuda-graphs"]) == 0
    assert main(base + [str(tmp_path / "b")]) == 0
    assert seen == [False, False, True, True]  # two chunks each (two splits)


def test_written_files_get_the_umask_mode_and_os_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--config", str(_tiny_config(tmp_path)), "--out", str(out), "--quiet",
                 "--workers", "1"]) == 0
    umask = os.umask(0)
    os.umask(umask)
    for path in [out / "sweep.json", *(out / "runs").iterdir(), *(out / "log").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert main(["analyze", str(out), "--out", str(a_file), "--windows", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grokcast analyze: error:") and len(err.splitlines()) == 1
    assert "Errno" not in err and str(a_file) in err
    assert "exists and is not a directory" in err
    # A folder the output path needs that is a file: refused before the analysis too.
    assert main(["analyze", str(out), "--out", str(a_file / "results"), "--windows", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"grokcast analyze: error: {str(a_file)!r}: exists and is not a directory (an "
                   "output directory was expected)")
    assert main(["analyze", str(tmp_path / "nowhere")]) == 2
    assert "not a sweep directory" in capsys.readouterr().err
    # A sweep shorter than the default windows: the error names the option that sets them.
    assert main(["analyze", str(out)]) == 2
    err = capsys.readouterr().err
    assert "window W=100 goes beyond the logged steps" in err
    assert err.rstrip().endswith("so W can be at most 30; set the windows with --windows")


@pytest.mark.parametrize("path", sorted(Path("configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    assert SweepConfig.from_file(path).runs()


def test_bf16_config_is_the_paper_grid_with_bf16_products():
    paper, bf16 = (SweepConfig.from_file(f"configs/{n}.toml") for n in ("paper", "paper_bf16"))
    assert bf16 == dataclasses.replace(paper, name="paper_bf16",
                                       model=dataclasses.replace(paper.model, precision="bf16"))


def test_300_seeds_config_is_the_paper_grid_with_300_seeds():
    paper, big = (SweepConfig.from_file(ROOT / "configs" / f"{n}.toml") for n in ("paper", "paper_300_seeds"))
    assert big == dataclasses.replace(paper, name="paper-300-seeds", seeds=tuple(range(300)))
    assert big == SweepConfig(name="paper-300-seeds", seeds=range(300))  # as the README writes it
    assert len(big.runs()) == 4_800


def test_reproduce_outside_the_repository_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the default config is not found
    assert main(["reproduce", "--out", "o", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"'configs/paper.toml' does not exist in {str(tmp_path)!r}" in err
    assert "run from the repository root" in err and not (tmp_path / "o").exists()
    assert main(["reproduce", "--config", "no/such.toml", "--out", "o", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'no/such.toml' does not exist" in err and "repository root" not in err


@pytest.mark.parametrize("argv, bound", [(["evaluate", "s", "--model", "m", "--seed", "-1"], 0),
                                         (["fit", "s", "--out", "f.json", "--seed", "x"], 0),
                                         # zero steps trained nothing and "trained 8 runs"
                                         (["sweep", "--config", "c.toml", "--out", "o", "--steps", "0"], 1),
                                         (["fit", "s", "--out", "f.json", "--window", "1"], 2),
                                         (["forecast", "log.csv", "--model", "m", "--top", "-1"], 0),
                                         (["analyze", "s", "--windows", "100", "1"], 2)])
def test_integer_options_name_the_value_and_the_bound(argv, bound, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert f"{argv[-1]!r} is not allowed: expected an integer >= {bound}" in capsys.readouterr().err


@pytest.mark.parametrize("argv, option, bounds", [
    (["analyze", "s", "--orders", "100000"], "--orders", "[0, 10000]"),
    (["reproduce", "--out", "o", "--orders", "10001"], "--orders", "[0, 10000]"),
    (["analyze", "s", "--resamples", "1000001"], "--resamples", "[1, 1000000]")])
def test_bounded_options_are_refused_by_their_option_name(argv, option, bounds, capsys):
    # Refused while parsing, as the option (the library's check named its parameter, orders=).
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {argv[-1]!r} is not allowed: expected an integer in {bounds}" in err


def test_ctrl_c_in_the_imports_before_a_command_starts_is_one_line(monkeypatch, capsys):
    """Was: a traceback through torch's imports (a second or more after the command is typed)."""
    from grokcast import cli

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_main", interrupted)
    assert cli.main(["sweep"]) == 130
    assert capsys.readouterr().err == "grokcast: interrupted\n"


def test_a_schedule_no_window_can_read_is_refused_before_training(tmp_path):
    """Found in review: 300 steps logged every 1,000 trained, then every W was refused. The
    check is the new sweep's: a config is still read as it was stored (an older grokcast's
    sweep opens, a forecaster file of p = 3, whose task reads as a default grid, loads)."""
    from grokcast.config import ConfigError, LogConfig, SweepConfig
    from grokcast.forecast import _check_task
    from grokcast.store import SweepStore
    from grokcast.sweep import run_sweep

    sparse = SweepConfig(n_steps=300, log=LogConfig(dense_until=0, every=1000))
    with pytest.raises(ConfigError, match=r"^n_steps=300 is not allowed: expected a run that logs at "
                                          r"least two steps before its last \(log.dense_until=0, "
                                          r"log.every=1000 log \[0\] below it\)"):
        run_sweep(sparse, tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()
    SweepConfig(n_steps=300, log=LogConfig(dense_until=0, every=299)).check_trainable()
    SweepConfig(n_steps=2, log=LogConfig(dense_until=0, every=1)).check_trainable()
    stored = tmp_path / "old"  # as an older grokcast wrote it, before the check
    stored.mkdir()
    (stored / "sweep.json").write_text(json.dumps({"grokcast_version": "0.1.0",
                                                   "config": sparse.to_dict()}))
    assert SweepStore(stored).read_config() == sparse
    task = SweepConfig(p=3, train_fracs=[0.5]).task()
    assert _check_task(task, ValueError) == task  # was: the default fractions collide at p = 3


@pytest.mark.parametrize("dense_until, every", [(0, 1), (0, 7), (5, 3), (6, 3), (300, 100), (10, 1000)])
def test_the_first_steps_below_n_are_those_the_schedule_lists(dense_until, every):
    from grokcast.config import LogConfig

    log = LogConfig(dense_until=dense_until, every=every)
    for n in (1, 2, 3, 7, 12, 301, 2500):
        for limit in (1, 2, 5):
            want = [s for s in log.steps(n) if s < n][:limit]
            assert log.steps_below(n, limit=limit) == want, (n, limit)
    assert log.steps_below(10**12, limit=2) == [s for s in log.steps(2000) if s < 2000][:2]


def test_an_interrupted_reproduce_counts_the_runs_of_each_sweep_it_began(tmp_path):
    """Was: a Ctrl-C during reproduce's held-out sweep (--with-early-stopping) said "48 of 48
    runs are stored", the main sweep's count (found in review)."""
    import argparse

    from grokcast.cli import _stored_runs

    config = SweepConfig.from_file(_tiny_config(tmp_path))  # 4 runs
    out = tmp_path / "out"
    SweepStore(out / "sweep").init(config)
    SweepStore(out / "sweep").write_chunk(train_ensemble(config.runs()[:2]), 1.0)  # one split's
    reproduce = argparse.Namespace(command="reproduce", out=out)
    assert _stored_runs(reproduce) == (f": stored 2 of 4 runs in {str(out / 'sweep')!r}; the same "
                                       "command resumes")
    SweepStore(out / "heldout-sweep").init(dataclasses.replace(config, seeds=(5,)))
    assert _stored_runs(reproduce) == (f": stored 2 of 4 runs in {str(out / 'sweep')!r}, 0 of 2 "
                                       f"runs in {str(out / 'heldout-sweep')!r}; the same command "
                                       "resumes")
    sweep = argparse.Namespace(command="sweep", out=out / "sweep")
    assert _stored_runs(sweep) == ": 2 of 4 runs are stored; the same command resumes"
    assert _stored_runs(argparse.Namespace(command="sweep", out=tmp_path / "none")) == ""
    assert _stored_runs(argparse.Namespace(command="analyze")) == ""


def test_help_names_what_each_command_reads_and_writes(capsys):
    """From a read of every subcommand's --help: early-stop-study's summary was "compute saved
    vs grokkers kept" and its --out "the table and figure" (it writes early_stop.json too);
    forecast's said "of a run" though a log of many runs, or a sweep directory, is forecast;
    --stop-model's said P(grok) "is low" without naming --stop-below."""
    from grokcast.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    pages = {}
    for name in commands:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        pages[name] = " ".join(capsys.readouterr().out.split())
    docs = (ROOT / "docs" / "file-formats.md").read_text(encoding="utf-8")
    row = next(line for line in docs.splitlines() if "`grokcast early-stop-study`" in line)
    for written in ("early_stop.json", "early_stop.md"):
        assert written in row and written in pages["early-stop-study"]
    assert "held-out sweep" in pages["early-stop-study"].split("positional")[0]
    assert "sweep directory" in pages["forecast"].split("positional")[0]
    assert "below --stop-below" in pages["sweep"]
