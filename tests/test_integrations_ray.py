"""Ray: the sweep executor writes the local executor's store, resumes; GrokStopper in Tune.

One local Ray session (2 CPUs) serves the whole module: starting Ray costs seconds.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch

ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune")

from test_compiled import needs_compiler  # noqa: E402  (the skip condition check_compilable sets)

from grokcast.config import LogConfig, ModelConfig, RunConfig, SweepConfig  # noqa: E402
from grokcast.features import feature_table  # noqa: E402
from grokcast.forecast import GrokForecaster  # noqa: E402
from grokcast.integrations import window_features  # noqa: E402
from grokcast.integrations.ray import RESULT_KEY, GrokStopper, features_metrics, run_sweep_ray  # noqa: E402
from grokcast.signals import SIGNAL_NAMES  # noqa: E402
from grokcast.store import StoreError, SweepStore, log_frame  # noqa: E402
from grokcast.sweep import run_sweep  # noqa: E402
from grokcast.train import train_ensemble  # noqa: E402

P, W, N_STEPS = 11, 20, 40
MODEL = ModelConfig(d_model=32, n_heads=4, d_mlp=64)
LOG = LogConfig(dense_until=10, every=10)
BOOKKEEPING = ["chunk", "chunk_seconds"]  # which chunk file a run landed in, and wall time


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    """One local Ray for the module; torch in this process on one thread, like the tasks
    (tiny tensors gain nothing from threads, and they differ in float rounding)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    # Tune's function trainables are defined in this test module, which Ray's workers
    # cannot import: ship them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    torch.set_num_threads(n)


def tiny_sweep() -> SweepConfig:
    """4 runs in 2 split groups, 40 steps."""
    return SweepConfig(name="tiny", p=P, train_fracs=(0.3, 0.6), weight_decays=(1.0, 3.0),
                       seeds=(0,), n_steps=N_STEPS, model=MODEL, log=LOG)


def assert_same_store(a: SweepStore, b: SweepStore) -> None:
    pd.testing.assert_frame_equal(a.log(), b.log(), check_exact=True)
    pd.testing.assert_frame_equal(a.runs().drop(columns=BOOKKEEPING),
                                  b.runs().drop(columns=BOOKKEEPING), check_exact=True)


def test_ray_executor_writes_the_local_store_and_resumes(tmp_path):
    config = tiny_sweep()
    local = tmp_path / "local"
    run_sweep(config, local, device="cpu", chunk_size=2, progress=False)

    # Default chunking on 2 CPUs: 4 runs -> 2 tasks of 2, the local executor's chunks here.
    result = run_sweep_ray(config, tmp_path / "ray", progress=False)
    assert (result.n_trained, result.n_skipped) == (4, 0)
    assert_same_store(SweepStore(local), SweepStore(tmp_path / "ray"))
    assert SweepStore(tmp_path / "ray").runs()["chunk"].nunique() == 2
    assert ray.is_initialized()  # the caller's session is left running

    # Resume: a chunk whose runs file is missing never finished; only its runs train again.
    partial = tmp_path / "partial"
    shutil.copytree(local, partial)
    (partial / "runs" / "chunk-00001.parquet").unlink()
    result = run_sweep_ray(config, partial, chunk_size=1, progress=False)
    assert (result.n_trained, result.n_skipped) == (2, 2)
    assert_same_store(SweepStore(local), SweepStore(partial))
    result = run_sweep_ray(config, partial, progress=False)
    assert (result.n_trained, result.n_skipped) == (0, 4)


def test_ray_executor_stops_runs_as_the_local_executor_does(tmp_path):
    """Was: `--stop-model is not supported with --executor ray`. The rule travels with each
    task; stores, statuses and the stop record equal the local executor's."""
    from grokcast.early_stop import stop_rule

    config = dataclasses.replace(tiny_sweep(), seeds=(0, 1))  # 8 runs
    plain = SweepStore(tmp_path / "plain")
    run_sweep(config, plain.root, device="cpu", chunk_size=2, progress=False)
    runs, log = plain.runs(), plain.log()
    X = feature_table(log, W).reindex(runs["run_id"])
    model = GrokForecaster(Cs=[1.0], cv=2).fit(X, runs["weight_decay"] > 1)
    path = tmp_path / "by_decay.json"
    model.save(path, window=W, threshold=0.9, sweep_hash="by-weight-decay", n_train_runs=len(X),
               window_steps=sorted(log.loc[log["step"] < W, "step"].unique().tolist()),
               task=config.task())
    p = np.sort(model.predict_proba(X)[:, 1])
    rule = stop_rule(path, float(p[3] + p[4]) / 2, config)  # the four lowest stop

    local, on_ray = SweepStore(tmp_path / "local"), SweepStore(tmp_path / "ray")
    run_sweep(config, local.root, device="cpu", chunk_size=2, progress=False, stop=rule)
    run_sweep_ray(config, on_ray.root, chunk_size=2, progress=False, stop=rule)
    assert_same_store(local, on_ray)
    assert (on_ray.runs()["status"] == "stopped").sum() == 4
    assert on_ray.stop_path.read_text() == local.stop_path.read_text()
    # Resuming under no rule is refused, as for the local executor.
    with pytest.raises(StoreError, match="was trained with --stop-model .* not without --stop-model"):
        run_sweep_ray(config, on_ray.root, progress=False)
    with pytest.raises(TypeError, match="stop=<object object .*> is not allowed"):
        run_sweep_ray(config, tmp_path / "never", progress=False, stop=object())
    with pytest.raises(TypeError, match="config must be a SweepConfig, got RunConfig"):
        run_sweep_ray(config.runs()[0], tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


class FailsOnTheLargerSplit:
    """A stopper whose hook fails in the task that trains the f = 0.6 chunk."""

    def hook(self, chunk):
        if chunk[0].train_frac == 0.6:
            raise RuntimeError("the hook failed on the f = 0.6 chunk")
        return lambda step, values: None

    def record(self):
        return {"rule": "fails on f = 0.6"}


def test_a_tasks_own_error_is_raised_as_the_local_executor_raises_it(tmp_path):
    """The task's exception itself, not Ray's RayTaskError wrapping it; the chunk that
    finished is stored, one still running is cancelled."""
    config = tiny_sweep()
    with pytest.raises(RuntimeError, match=r"^the hook failed on the f = 0.6 chunk$"):
        run_sweep_ray(config, tmp_path / "s", chunk_size=2, progress=False,
                      stop=FailsOnTheLargerSplit())
    stored = SweepStore(tmp_path / "s").finished_run_ids()
    assert stored <= {r.run_id for r in config.runs() if r.train_frac == 0.3}
    assert ray.is_initialized()  # the caller's session survives the error


def wait_for_every_task_the_failed_first(monkeypatch):
    """Make Ray's wait return once every task is done, the failed one first: what it may
    return when the driver was busy storing another chunk meanwhile."""
    real_wait = ray.wait

    def failed(ref) -> bool:
        try:
            ray.get(ref)
        except ray.exceptions.RayTaskError:
            return True
        return False

    def every_task_done_the_failed_first(refs, *, num_returns=1, timeout=None):
        done, _ = real_wait(refs, num_returns=len(refs))
        done = sorted(done, key=lambda ref: not failed(ref))
        return done[:num_returns], done[num_returns:]

    monkeypatch.setattr(ray, "wait", every_task_done_the_failed_first)


def test_a_chunk_that_finished_beside_a_failed_one_is_stored(tmp_path, monkeypatch):
    """Was: when the failed chunk's result was taken first, a chunk that had finished beside
    it was cancelled unstored and trained again on the rerun (the local executor stores it)."""
    wait_for_every_task_the_failed_first(monkeypatch)
    config = tiny_sweep()
    with pytest.raises(RuntimeError, match=r"^the hook failed on the f = 0.6 chunk$"):
        run_sweep_ray(config, tmp_path / "s", chunk_size=2, progress=False,
                      stop=FailsOnTheLargerSplit())
    assert SweepStore(tmp_path / "s").finished_run_ids() == {
        r.run_id for r in config.runs() if r.train_frac == 0.3}


class RunsOutOfMemoryOnTheLargerSplit(FailsOnTheLargerSplit):
    def hook(self, chunk):
        if chunk[0].train_frac == 0.6:  # the CPU allocator's error, as torch raises it
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                               "allocate 1024 bytes")
        return lambda step, values: None


def test_running_out_of_memory_counts_the_chunk_stored_beside_it(tmp_path, monkeypatch):
    """Was "the 0 finished runs are stored" with the f = 0.3 chunk's 2 runs stored: the
    chunks that finished beside the failed one were stored after its error was worded (the
    local executor stores them first)."""
    wait_for_every_task_the_failed_first(monkeypatch)
    config = tiny_sweep()
    with pytest.raises(ValueError, match=r"^cpu ran out of memory \(DefaultCPUAllocator: can't "
                                         r"allocate memory: .*\) in a chunk of 2 runs; the 2 "
                                         r"finished runs are stored: rerun with --chunk-size "
                                         r"below 2"):
        run_sweep_ray(config, tmp_path / "s", chunk_size=2, progress=False,
                      stop=RunsOutOfMemoryOnTheLargerSplit())
    assert SweepStore(tmp_path / "s").finished_run_ids() == {
        r.run_id for r in config.runs() if r.train_frac == 0.3}


def test_a_ctrl_c_while_a_chunk_is_stored_stores_the_others_that_finished(tmp_path, monkeypatch):
    """The other path to the gathering: an error of the driver's own (here Ctrl-C while the
    first chunk is written), not a task's; the chunk that finished beside it is stored."""
    wait_for_every_task_the_failed_first(monkeypatch)  # no task fails: every task done
    real_write = SweepStore.write_chunk
    calls = []

    def interrupted_first(self, log, **kwargs):
        calls.append(len(log.runs))
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_write(self, log, **kwargs)

    monkeypatch.setattr(SweepStore, "write_chunk", interrupted_first)
    with pytest.raises(KeyboardInterrupt):
        run_sweep_ray(tiny_sweep(), tmp_path / "s", chunk_size=2, progress=False)
    assert calls == [2, 2]
    assert len(SweepStore(tmp_path / "s").finished_run_ids()) == 2


def test_storing_the_finished_chunks_never_hides_the_error_being_raised(tmp_path, monkeypatch):
    """Ray failing too as the finished chunks are gathered (its wait raising) raised Ray's
    error in place of the task's own."""
    real_wait = ray.wait

    def fails_when_gathering(refs, *, num_returns=1, timeout=None):
        if timeout == 0:  # the gathering's: every pending task, without waiting
            raise ray.exceptions.RaySystemError("the raylet went away")
        return real_wait(refs, num_returns=num_returns, timeout=timeout)

    monkeypatch.setattr(ray, "wait", fails_when_gathering)
    with pytest.raises(RuntimeError, match=r"^the hook failed on the f = 0.6 chunk$"):
        run_sweep_ray(tiny_sweep(), tmp_path / "s", chunk_size=2, progress=False,
                      stop=FailsOnTheLargerSplit())


def test_a_damaged_store_is_named_as_the_local_executor_names_it(tmp_path):
    """The check whether every run is stored (to skip Ray) reads the store; a damaged chunk
    there is left to resume, which names it, here as for run_sweep."""
    config = tiny_sweep()
    run_sweep(config, tmp_path / "s", device="cpu", chunk_size=2, progress=False)
    (tmp_path / "s" / "runs" / "chunk-00001.parquet").write_bytes(b"PAR1 cut short")
    with pytest.raises(StoreError) as local:
        run_sweep(config, tmp_path / "s", device="cpu", chunk_size=2, progress=False)
    with pytest.raises(StoreError) as on_ray:
        run_sweep_ray(config, tmp_path / "s", chunk_size=2, progress=False)
    assert str(on_ray.value) == str(local.value)
    assert "chunk-00001.parquet' is damaged" in str(on_ray.value)


def test_ray_tasks_count_their_run_steps_as_they_train():
    """The executor's progress bar reads the tasks' counts (it moved only as chunks returned):
    a task reports every run-step of its chunk, in blocks, to the counter actor."""
    import time

    from grokcast.integrations.ray import _StepCounter, _train_chunk

    runs = tiny_sweep().runs()[:2]
    counter = ray.remote(num_cpus=0)(_StepCounter).remote()
    ray.get(ray.remote(_train_chunk).remote(runs, "cpu", counter))
    counted, deadline = 0, time.monotonic() + 30
    while counted < len(runs) * N_STEPS and time.monotonic() < deadline:  # counts in flight
        counted += ray.get(counter.take.remote())
    assert counted == len(runs) * N_STEPS
    assert ray.get(counter.take.remote()) == 0  # taken once


def test_ray_executor_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="device='cuda:1' is not allowed"):
        run_sweep_ray(tiny_sweep(), tmp_path / "a", device="cuda:1", progress=False)
    assert not (tmp_path / "a").exists()  # checked before anything is written
    with pytest.raises(ValueError, match="cluster has no GPU"):
        run_sweep_ray(tiny_sweep(), tmp_path / "b", device="cuda", progress=False)
    assert not (tmp_path / "b").exists()  # was: sweep.json written first, refusing other configs
    with pytest.raises(ValueError, match="chunk_size=0 is not allowed"):
        run_sweep_ray(tiny_sweep(), tmp_path / "c", chunk_size=0, progress=False)
    # Too big for the machine: refused like the local executor refuses it (was: a traceback
    # from the task's allocation, or the OOM killer), before anything is written.
    huge = dataclasses.replace(tiny_sweep(), p=1000, model=ModelConfig(d_model=8, n_heads=2,
                                                                       d_mlp=65536))
    with pytest.raises(ValueError, match=r"one run of this model needs about .* GiB"):
        run_sweep_ray(huge, tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists()


@needs_compiler
def test_ray_executor_trains_compiled_as_the_local_executor_does(tmp_path):
    """``compiled=True`` reaches the tasks: the store is the local compiled executor's, bit
    for bit, and not the eager one's (test_compiled.py's ensemble shape: compiled once)."""
    config = SweepConfig(name="compiled", p=23, train_fracs=(0.3,), weight_decays=(0.1, 1.0),
                         seeds=(0,), n_steps=30, log=LogConfig(dense_until=40, every=10))
    run_sweep(config, tmp_path / "local", device="cpu", chunk_size=2, progress=False, compiled=True)
    run_sweep_ray(config, tmp_path / "ray", chunk_size=2, progress=False, compiled=True)
    assert_same_store(SweepStore(tmp_path / "local"), SweepStore(tmp_path / "ray"))
    run_sweep(config, tmp_path / "eager", device="cpu", chunk_size=2, progress=False)
    assert not SweepStore(tmp_path / "eager").log().equals(SweepStore(tmp_path / "ray").log())
    with pytest.raises(ValueError, match="compiled='yes' is not allowed"):
        run_sweep_ray(config, tmp_path / "bad", compiled="yes", progress=False)
    with pytest.raises(ValueError, match="progress='no' is not allowed: expected True or False"):
        run_sweep_ray(config, tmp_path / "bad", progress="no")
    assert not (tmp_path / "bad").exists()


def test_an_unreachable_cluster_address_is_refused_at_once():
    """`--address 127.0.0.1:1` left ray.init retrying for minutes, deaf to SIGTERM."""
    import socket
    import time

    from grokcast.integrations.ray import _check_reachable

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(ValueError, match=rf"^address='{address}' is not reachable \(.*\): is "
                                             "a Ray cluster running there"):
            _check_reachable(address)
    assert time.perf_counter() - start < 10
    with socket.socket() as sock:  # a listening port passes
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        _check_reachable(f"127.0.0.1:{sock.getsockname()[1]}")
    _check_reachable("auto")  # left to Ray


# ----------------------------------------------------------------------------- Tune

def tiny_run(train_frac: float, weight_decay: float, seed: int) -> RunConfig:
    return RunConfig(p=P, train_frac=train_frac, weight_decay=weight_decay, seed=seed,
                     n_steps=N_STEPS, model=MODEL, log=LogConfig(dense_until=30, every=10))


def trainable(config: dict) -> None:
    """A Tune function trainable: one grokcast run, a result per logged step, the window
    features added to the result of step W - 1."""
    torch.set_num_threads(1)
    run = tiny_run(config["train_frac"], config["weight_decay"], seed=2)
    rows, steps = [], []

    def on_log(step: int, values: np.ndarray) -> None:
        steps.append(step)
        rows.append(values[0])
        metrics = {"step": step, "val_acc": float(values[0, SIGNAL_NAMES.index("val_acc")])}
        if step == W - 1:
            log = pd.DataFrame(rows, columns=list(SIGNAL_NAMES))
            log.insert(0, "step", steps)
            log.insert(0, "run_id", run.run_id)
            metrics.update(features_metrics(window_features(log, W), W))
        tune.report(metrics)

    out = train_ensemble([run], on_log=on_log)  # the hook sees every logged step but the last
    final_val_acc = float(out.values[0, -1, SIGNAL_NAMES.index("val_acc")])
    tune.report({"step": N_STEPS, "val_acc": final_val_acc})


def test_stopper_stops_low_p_grok_trials_at_w(tmp_path):
    fit_runs = [tiny_run(f, wd, s) for f in (0.3, 0.6) for wd in (0.3, 3.0) for s in (0, 1)]
    trial_runs = [tiny_run(0.6, 0.3, 2), tiny_run(0.6, 3.0, 2)]
    log = log_frame(train_ensemble(fit_runs + trial_runs))
    X = feature_table(log, W)
    model = GrokForecaster(Cs=[1.0], cv=2).fit(X.loc[[r.run_id for r in fit_runs]],
                                                [r.weight_decay > 1 for r in fit_runs])
    p = {r.weight_decay: model.predict_proba(X.loc[[r.run_id]])[0, 1] for r in trial_runs}
    assert abs(p[0.3] - p[3.0]) > 1e-3, p
    threshold = (p[0.3] + p[3.0]) / 2
    stopper = GrokStopper(model, window=W, threshold=threshold)

    tuner = tune.Tuner(
        trainable,
        param_space={"train_frac": 0.6, "weight_decay": tune.grid_search([0.3, 3.0])},
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(stop=stopper, storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    for result in results:
        wd = result.config["weight_decay"]
        last = result.metrics["step"]
        if p[wd] < threshold:
            assert last == W - 1  # stopped on the result carrying the features
            assert result.metrics[RESULT_KEY]["window"] == W
        else:
            assert last == N_STEPS  # trained to the end


def test_stopper_reads_nested_and_flattened_results():
    from grokcast.integrations import p_grok

    rng = np.random.default_rng(0)
    names = [f"end_{s}" for s in ("val_acc", "val_loss")]
    X = pd.DataFrame(rng.normal(size=(12, 2)), columns=names)
    model = GrokForecaster(Cs=[1.0]).fit(X, (X["end_val_acc"] > 0).astype(int))
    stopper = GrokStopper(model, window=W, threshold=0.5)
    low = {"end_val_acc": -2.0, "end_val_loss": 0.0}
    high = {"end_val_acc": 2.0, "end_val_loss": 0.0}
    assert stopper("a", {"val_acc": 0.1}) is False  # no report: never stops
    assert stopper("a", features_metrics(low, W)) is True
    flat = {f"{RESULT_KEY}/window": W, **{f"{RESULT_KEY}/features/{k}": v for k, v in high.items()}}
    assert stopper("b", flat) is False
    assert stopper.p_grok == {"a": p_grok(model, low), "b": p_grok(model, high)}
    assert stopper("c", features_metrics({**high, "end_val_loss": float("nan")}, W)) is True
    assert not stopper.stop_all()
    with pytest.raises(ValueError, match="reported features of window W=30"):
        stopper("d", features_metrics(low, 30))


def test_grokcast_sweep_executor_ray_starts_and_stops_its_own_ray_and_logs_as_the_local_sweep(
        tmp_path):
    """`grokcast sweep --executor ray` end to end, in a process with no Ray running: it starts a
    local Ray, trains, shuts it down; its store equals `grokcast sweep`'s bit for bit (less
    which chunk file a run landed in, and the wall time)."""
    import subprocess

    from grokcast.cli import main

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(f'name = "tiny"\np = {P}\ntrain_fracs = [0.3, 0.6]\nweight_decays = [1.0, 3.0]\n'
                   f"seeds = [0]\nn_steps = {N_STEPS}\n"
                   f"[model]\nd_model = {MODEL.d_model}\nn_heads = {MODEL.n_heads}\nd_mlp = {MODEL.d_mlp}\n"
                   f"[log]\ndense_until = {LOG.dense_until}\nevery = {LOG.every}\n")
    assert SweepConfig.from_file(cfg) == tiny_sweep()
    script = ("import sys, ray\nfrom grokcast.cli import main\ncode = main(sys.argv[1:])\n"
              "print('ray still initialized:', ray.is_initialized())\nsys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script, "sweep", "--config", str(cfg), "--out",
                           str(tmp_path / "ray"), "--executor", "ray", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("trained 4 runs (0 already finished) in ") and lines[0].endswith(
        f" s -> {tmp_path / 'ray'}")
    assert lines[1:] == ["ray still initialized: False"]
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "local"), "--workers", "1",
                 "--quiet"]) == 0
    assert_same_store(SweepStore(tmp_path / "local"), SweepStore(tmp_path / "ray"))
