"""Ray: a Tune stopper driven by the grokking forecaster, and a sweep executor on Ray tasks.

Stopping Tune trials
--------------------
A trial adds its window features to one of its results under the key ``"grokcast"``
(:func:`features_metrics`), e.g. in a function trainable with a plain PyTorch loop::

    from pathlib import Path

    from ray import tune

    from grokcast.integrations import FeatureRecorder
    from grokcast.integrations.ray import GrokStopper, features_metrics

    # Absolute: Tune runs each trial in a working directory of its own.
    FORECASTER = str(Path("forecaster.json").resolve())

    def trainable(config):
        model, opt = build(config)
        recorder = FeatureRecorder(model.embed.weight, model.unembed.weight,
                                   forecaster=FORECASTER)               # W from the file
        for step in range(n_steps + 1):
            ...                                                          # loss.backward()
            features = recorder.observe(step, model, **metrics)          # see GrokMonitor
            if features is not None:                  # step W (d + 1: its forecast_step)
                tune.report({"val_acc": metrics["val_acc"],
                             **features_metrics(features, recorder.window)})
            ...                                                          # optimizer.step()

    stopper = GrokStopper(FORECASTER, threshold=0.2)
    tuner = tune.Tuner(trainable, param_space=space, run_config=tune.RunConfig(stop=stopper))

:class:`GrokStopper` stops the trial on the result that carries the features when P(grok) is
below the threshold (Tune then ends the trainable at its next ``tune.report``); results
without them never stop a trial. The features may also arrive flattened, as
``"grokcast/window"`` and ``"grokcast/features/<name>"`` keys.

Sweeps on Ray
-------------
:func:`run_sweep_ray` is :func:`grokcast.sweep.run_sweep` with the ensemble chunks sent to a
Ray cluster as tasks: the driver writes each chunk to the same sweep directory as it returns
(``SweepStore.write_chunk``), so the store is the local executor's, and a rerun skips the
finished runs. Workers import grokcast: on a cluster, install it on every node (or pass a
``runtime_env`` to ``ray.init`` yourself before calling).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

try:
    import ray
    from ray.tune import Stopper
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("grokcast.integrations.ray needs Ray Tune: "
                      "pip install 'grokcast[ray]'") from err

import torch
from tqdm.auto import tqdm

from grokcast.config import RunConfig, SweepConfig
from grokcast.integrations import (
    check_threshold,
    decode_features,
    encode_features,
    p_grok,
    resolve_forecaster,
    should_stop,
)
from grokcast.store import SweepStore
from grokcast.sweep import (
    DEFAULT_CPU_CHUNK,
    SweepResult,
    check_fits,
    check_stopper,
    check_sweep_config,
    default_chunk_size,
    remaining_chunks,
    reraise_training_error,
    training_build,
    tune_allocator,
)
from grokcast.sweep import Stopper as RunStopper  # Tune's Stopper is GrokStopper's base
from grokcast.train import EnsembleLog, check_compilable, train_ensemble
from grokcast.validation import check_bool, check_int

RESULT_KEY = "grokcast"  # the result entry holding a trial's report

__all__ = ["RESULT_KEY", "GrokStopper", "features_metrics", "run_sweep_ray"]


def features_metrics(features: Mapping[str, float], window: int) -> dict[str, Any]:
    """The result entry that reports a trial's window features to :class:`GrokStopper`.

    Returns
    -------
    dict
        ``{"grokcast": {"window": W, "features": {name: value}}}``, non-finite values as
        ``None``; merge it into the dict given to ``tune.report``.
    """
    return {RESULT_KEY: encode_features(features, window)}


def _find_report(result: Mapping[str, Any]) -> Any:
    """The trial's report in a nested or a flattened (``"grokcast/..."``) result, or None."""
    if RESULT_KEY in result:
        return result[RESULT_KEY]
    prefix = f"{RESULT_KEY}/features/"
    if f"{RESULT_KEY}/window" not in result:
        return None
    return {"window": result[f"{RESULT_KEY}/window"],
            "features": {k[len(prefix):]: v for k, v in result.items() if k.startswith(prefix)}}


class GrokStopper(Stopper):
    """Stop a Tune trial when the forecaster's P(grok) from its first W steps is below a threshold.

    Parameters
    ----------
    forecaster : GrokForecaster or path
        A fitted forecaster, or the JSON file written by ``grokcast fit``.
    threshold : float, default=0.5
        Stop when P(grok) < threshold; a trial whose features are not finite (it diverged in
        the window) is stopped too.
    window : int, optional
        W; default: the forecaster file's. A trial that reports another window raises.

    Attributes
    ----------
    p_grok : dict of str to float
        P(grok) of every trial that reported, by trial id (NaN when not finite).

    Notes
    -----
    A stopper runs in Tune's driver, so a malformed report (another window, features missing)
    raises there and ``tuner.fit()`` ends the whole experiment with a ``TuneError`` naming it:
    a reporting mistake is in the trainable's code, shared by every trial. (Optuna's
    :class:`~grokcast.integrations.optuna.GrokPruner` raises in the trial's own process, in
    ``trial.should_prune()``: the trial fails, and ``study.optimize`` re-raises the error
    unless its ``catch`` names it.)
    """

    def __init__(self, forecaster: Any, *, threshold: float = 0.5,
                 window: int | None = None) -> None:
        self.forecaster, self.window = resolve_forecaster(forecaster, window)
        self.threshold = check_threshold(threshold)
        self.p_grok: dict[str, float] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        report = _find_report(result)
        if report is None:
            return False
        window, features = decode_features(report)
        if window != self.window:
            raise ValueError(f"trial {trial_id} reported features of window W={window}, but the "
                             f"stopper's forecaster uses W={self.window}")
        p = p_grok(self.forecaster, features)
        self.p_grok[trial_id] = p
        return should_stop(p, self.threshold)

    def stop_all(self) -> bool:
        return False


# ----------------------------------------------------------------------------- sweeps

def _train_chunk(runs: list[RunConfig], device: str, steps: Any, stop: RunStopper | None = None,
                 compiled: bool = False) -> tuple[EnsembleLog, float]:
    """Ray task: train one ensemble chunk on the worker, counting its run-steps on the
    ``steps`` actor (:class:`_StepCounter`) and stopping runs by ``stop``'s hook; return its
    log and wall time."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))  # no oversubscription beside other tasks
    tune_allocator()  # as the local executor's workers do
    start = time.perf_counter()
    log = train_ensemble(runs, device, on_progress=lambda k: steps.add.remote(k * len(runs)),
                         on_log=None if stop is None else stop.hook(runs), compiled=compiled)
    return log, time.perf_counter() - start


class _StepCounter:
    """A Ray actor: the run-steps the tasks finished since the driver last took them, so
    that its progress bar moves while chunks train (it moved only as whole chunks came back:
    the smoke sweep sat at 0% for 14 s, then jumped to 50% and 100%)."""

    def __init__(self) -> None:
        self.steps = 0

    def add(self, steps: int) -> None:
        self.steps += steps

    def take(self) -> int:
        steps, self.steps = self.steps, 0
        return steps


def _gpu_chunk_size(config: SweepConfig) -> int:
    """Ray task on a GPU worker: the local executor's chunk size for that GPU."""
    return default_chunk_size(torch.device("cuda"), config)


# No default for compiled: ray's stubs would type the remote function as one of two arguments.
def _refusal(config: SweepConfig, device: str, compiled: bool) -> str | None:
    """Ray task on a worker of the tasks' kind: :func:`~grokcast.sweep.check_fits`'s refusal
    there as text (an exception would come back wrapped in Ray's traceback), None if one run
    fits (and, ``compiled``, if torch.compile can build there: :func:`check_compilable`)."""
    try:
        check_fits(torch.device(device), config)
        if compiled:
            check_compilable(torch.device(device))
    except ValueError as err:
        return str(err)
    return None


def _all_stored(store: SweepStore, config: SweepConfig) -> bool:
    """Whether every run of ``config`` is already stored: then no Ray is started. A guess
    that errs towards False; :meth:`SweepStore.resume` checks the directory either way."""
    try:
        return store.config_path.is_file() and {r.run_id for r in config.runs()} <= store.finished_run_ids()
    except Exception:  # a damaged store: resume names it
        return False


def _check_device(device: Any) -> None:
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device={device!r} is not allowed: expected auto, cpu or cuda "
                         "(Ray assigns each task its GPU, so cuda:N is not needed)")


def _task_device(device: str) -> str:
    """``cpu`` or ``cuda`` for the tasks; ``auto`` picks cuda when the cluster has GPUs."""
    _check_device(device)
    if device == "auto":
        return "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
    if device == "cuda" and ray.cluster_resources().get("GPU", 0) <= 0:
        raise ValueError("device='cuda' was requested but the Ray cluster has no GPU")
    return device


def _chunk_size(device: str, config: SweepConfig, n_todo: int, cpus_per_task: int) -> int:
    """Runs per task: enough tasks to occupy the cluster, at most the local executor's size."""
    resources = ray.cluster_resources()
    if device == "cuda":
        slots = int(resources.get("GPU", 1))
        cap = ray.get(ray.remote(num_gpus=1)(_gpu_chunk_size).remote(config))
    else:
        slots = int(resources.get("CPU", 1) // cpus_per_task)
        cap = DEFAULT_CPU_CHUNK
    return max(1, min(cap, math.ceil(n_todo / max(1, slots))))


def _check_reachable(address: str) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) that accepts no connection, before
    anything is written: ``ray.init`` retries such an address for minutes, deaf to SIGTERM.
    ``auto`` and other forms are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as err:
        raise ValueError(f"address={address!r} is not reachable ({err.strerror or err}): is a Ray "
                         "cluster running there? (`ray start --head` starts one; leave --address "
                         "out for a local Ray)") from None


def run_sweep_ray(config: SweepConfig, out: str | os.PathLike, *, address: str | None = None,
                  device: str = "cpu", chunk_size: int | None = None, progress: bool = True,
                  cpus_per_task: int = 1, stop: RunStopper | None = None,
                  compiled: bool = False) -> SweepResult:
    """Train every unfinished run of ``config`` into the sweep directory ``out`` on Ray.

    Parameters
    ----------
    config : SweepConfig
    out : path
        Sweep directory to create or resume; the same layout as the local executor's.
    address : str, optional
        Ray cluster to connect to (``ray.init(address=...)``); default: a local Ray. When
        Ray is already initialised in this process, that session is used as it is.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the tasks train: ``cuda`` gives each task one GPU of the cluster; ``auto``
        picks cuda when the cluster has GPUs.
    chunk_size : int, optional
        Runs per task (ensemble). Default: the runs split evenly over the cluster's task
        slots (CPUs / ``cpus_per_task``, or GPUs), at most what the local executor uses.
    progress : bool, default=True
        A progress bar, advanced every second as the tasks train. ``False`` (``--quiet``) also starts a local
        Ray with its own log lines at ERROR and without forwarding the tasks' output.
    cpus_per_task : int, default=1
        CPUs each task reserves (and its torch thread count).
    stop : Stopper, optional
        Stops runs as they train, as in :func:`grokcast.sweep.run_sweep`
        (:func:`grokcast.early_stop.stop_rule`). Each task reads the forecaster file at the
        path the rule names (and checks its SHA-256): on a cluster, the file must be at that
        path on every node (a shared filesystem).
    compiled : bool, default=False
        Train with the ``torch.compile`` build of the training step, as in
        :func:`grokcast.sweep.run_sweep`: each task compiles for its chunk's shape.

    Returns
    -------
    SweepResult
        Runs trained, runs skipped (already finished) and wall time.
    """
    check_sweep_config(config)
    cpus_per_task = check_int("cpus_per_task", cpus_per_task, 1)
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, 1)
    _check_device(device)
    record = check_stopper(stop, config)
    check_bool("compiled", compiled)
    check_bool("progress", progress)
    if address is not None and not ray.is_initialized():
        _check_reachable(address)
    store = SweepStore(out)
    if _all_stored(store, config):
        with store.lock():
            return SweepResult(n_trained=0, n_skipped=len(store.resume(config, record)), seconds=0.0)
    # Ray, the device and the model's size are settled before the directory is written: a
    # set-up that fails leaves no sweep.json behind to refuse the next config.
    started = not ray.is_initialized()
    if started:
        # A local Ray needs no dashboard; a cluster keeps whatever it was started with. Without
        # a progress bar (--quiet), Ray's own start-up lines and task output stay quiet too.
        quiet: dict[str, Any] = {} if progress else {"logging_level": logging.ERROR,
                                                     "log_to_driver": False}
        dashboard: dict[str, Any] = {"include_dashboard": False} if address is None else {}
        ray.init(address=address, **dashboard, **quiet)
    try:
        dev = _task_device(device)
        gpus = 1 if dev == "cuda" else 0
        refusal = ray.get(ray.remote(num_gpus=gpus)(_refusal).remote(config, dev, compiled))
        if refusal is not None:
            raise ValueError(refusal)
        with store.lock():  # a second sweep into the same directory is refused meanwhile
            return _train_on_ray(config, store, dev, chunk_size, progress, cpus_per_task, stop,
                                 record, compiled)
    finally:
        if started:
            ray.shutdown()


def _train_on_ray(config: SweepConfig, store: SweepStore, dev: str, chunk_size: int | None,
                  progress: bool, cpus_per_task: int, stop: RunStopper | None,
                  record: dict[str, Any] | None, compiled: bool) -> SweepResult:
    """:func:`run_sweep_ray` once Ray is up and the directory held: resume, train, store
    (``record``: the stopper's, as :func:`grokcast.sweep.check_stopper` returned it)."""
    done = store.resume(config, record, training_build(dev, compiled))
    start = time.perf_counter()
    if len(done) == len(config.runs()):
        return SweepResult(n_trained=0, n_skipped=len(done), seconds=0.0)
    chunks = remaining_chunks(
        config, done, lambda n: chunk_size or _chunk_size(dev, config, n, cpus_per_task),
        pack_splits=dev == "cuda")
    todo = [r for chunk in chunks for r in chunk]
    counter = ray.remote(num_cpus=0)(_StepCounter).remote()
    task = ray.remote(_train_chunk).options(num_cpus=cpus_per_task,
                                            num_gpus=1 if dev == "cuda" else 0)
    pending = {task.remote(chunk, dev, counter, stop, compiled): chunk for chunk in chunks}
    n_all, n_done = len(done) + len(todo), len(done)
    try:
        with tqdm(total=len(todo) * config.n_steps, unit="run-step", unit_scale=True,
                  disable=not progress, desc=f"sweep {config.name} (ray)",
                  dynamic_ncols=True) as bar:
            bar.set_postfix(runs=f"{n_done}/{n_all}")
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                # ray's stubs type an actor handle's methods as the class's plain functions,
                # without .remote, unless each is decorated with @ray.method.
                taken = ray.get(counter.take.remote())  # type: ignore[attr-defined]
                bar.update(min(taken, bar.total - bar.n))
                for ref in ready:
                    chunk = pending.pop(ref)
                    try:
                        log, seconds = ray.get(ref)
                    except ray.exceptions.RayTaskError as err:  # the task's own error, as locally
                        # The chunks that finished beside it are stored before it is raised, as
                        # the local executor stores a failed chunk's batch first: its error's
                        # count of stored runs (out of memory) then includes them.
                        n_done += _store_finished(pending, store)
                        cause = getattr(err, "cause", None) or err
                        reraise_training_error(cause, len(chunk), torch.device(dev), n_done)
                    store.write_chunk(log, seconds=seconds)
                    n_done += len(chunk)
                    bar.set_postfix(runs=f"{n_done}/{n_all}")
            bar.update(bar.total - bar.n)  # counts still on their way when the last chunk returned
    except BaseException:
        # As the local executor does: the chunks that finished beside a failed one (or before a
        # Ctrl-C) but were not yet taken are stored, not trained again on the rerun.
        _store_finished(pending, store)
        raise
    finally:
        for ref in pending:  # an error or Ctrl-C: finished chunks are stored, the rest rerun
            ray.cancel(ref, force=True)
    return SweepResult(n_trained=len(todo), n_skipped=len(done), seconds=time.perf_counter() - start)


def _store_finished(pending: dict[Any, list[RunConfig]], store: SweepStore) -> int:
    """Store the chunks of ``pending`` whose tasks have finished without an error, taking them
    out of it; the others are left for the rerun. Returns the runs stored.

    Called while an error is being raised: one of its own (Ray or the store failing too) ends
    it quietly, so that it never takes the place of the error being raised."""
    stored = 0
    if not pending:
        return stored
    try:
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
    except Exception:
        return stored
    for ref in ready:
        try:
            log, seconds = ray.get(ref)
        except ray.exceptions.RayError:  # the failed chunk (or a lost one) trains again
            continue
        try:
            store.write_chunk(log, seconds=seconds)
        except Exception:  # this chunk, and those after it, rerun
            return stored
        stored += len(pending.pop(ref))
    return stored
