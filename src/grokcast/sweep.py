"""Run a sweep: plan ensemble chunks, train them, store each as it finishes, resume."""

from __future__ import annotations

import ast
import json
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, Protocol

import torch
from tqdm.auto import tqdm

from grokcast.config import RunConfig, SweepConfig
from grokcast.store import SweepStore
from grokcast.train import EnsembleLog, LogHook, check_compilable, resolve_device, train_ensemble
from grokcast.validation import check_bool, check_int, check_path

# Runs per CPU ensemble, capped. Bigger ensembles share each op's fixed cost among more runs
# (what small train sets need), but past about 16 runs they ran slower, probably because
# their activations outgrow the cache.
# Measured on the 2-core machine, --workers 2, 128 runs x 1,000 steps of one train fraction:
# chunks of 16 took 49.5-58.1 s at f = 0.3 and 83.4-94.4 s at f = 0.6 against 53.9-55.5 s
# and 95.8-99.6 s for chunks of 64 (4 A/B pairs each; 16 faster in 7 of 8); with one
# 2-thread process, no clear difference. Chunks of 6 instead of whole 12-run split groups
# were at least 10% slower at f = 0.3 and 0.4. On the CPU a run's log does not depend on
# its chunk when it trains on one thread (bitwise equal at chunk sizes 1, 12, 16 and 64; at
# other shapes, by aligning each run's blocks: README, "Train a sweep"), so the cap changes
# speed only (README: the one exception, in-process on several threads).
DEFAULT_CPU_CHUNK = 16


class Stopper(Protocol):
    """A rule that stops runs of a sweep as they train (:class:`grokcast.early_stop.StopRule`).

    It must pickle: ``--workers`` sends it to the worker processes, which build each
    chunk's hook there.
    """

    def hook(self, chunk: list[RunConfig]) -> LogHook:
        """The ``on_log`` hook that :func:`~grokcast.train.train_ensemble` calls for ``chunk``."""
        ...

    def record(self) -> dict[str, Any]:
        """What the sweep directory records of the rule (``stop.json``, so JSON values): a
        resumed sweep must give an equal record, but for the keys in
        :data:`grokcast.store.STOP_LOCATION_KEYS` (``model``: where a file was)."""
        ...

    # Optional: ``check(config)``, raising ValueError when the rule cannot apply to the
    # sweep; run_sweep calls it, where present, before anything is written.


@dataclass(frozen=True)
class SweepResult:
    n_trained: int
    n_skipped: int
    seconds: float


def plan_chunks(runs: list[RunConfig], max_runs: int, *, pack_splits: bool = False,
                ) -> list[list[RunConfig]]:
    """Split runs into ensembles of at most ``max_runs``, as few as the cap allows.

    By default runs of one split stay together: they need no padding, so each split group
    fills its own chunks, of equal size (12 runs at most 8 -> 6 + 6, not 8 + 4). That is
    right on a CPU, where padding is real work. ``pack_splits`` fills chunks across splits
    instead, ordered by train set size so that neighbours pad little: on a GPU a step of a
    small ensemble costs about as much as a larger one's (it is kernel-launch bound), so
    the 48-run paper grid becomes one ensemble instead of four run one after another.
    """
    check_int("max_runs", max_runs, 1)
    if pack_splits:
        groups = [sorted(runs, key=lambda r: r.split_key)]
    else:
        by_split: dict[tuple, list[RunConfig]] = {}
        for r in runs:
            by_split.setdefault(r.split_key, []).append(r)
        groups = list(by_split.values())
    chunks = []
    for g in filter(None, groups):  # no runs left to train: no chunks
        n_chunks = -(-len(g) // max_runs)
        bounds = [round(i * len(g) / n_chunks) for i in range(n_chunks + 1)]
        chunks += [g[a:b] for a, b in zip(bounds, bounds[1:])]
    return chunks


def remaining_chunks(config: SweepConfig, done: Collection[str], cap_for: Callable[[int], int],
                     *, pack_splits: bool) -> list[list[RunConfig]]:
    """The chunks a sweep still has to train, ``done`` (run ids) being stored already.

    ``cap_for(n)`` is the chunk cap for ``n`` runs. The whole grid is planned as an
    uninterrupted sweep plans it, and the finished runs taken out, so that a resumed sweep
    (same chunk size, workers and device) trains every unfinished chunk as it would have been
    trained: a run's log can depend on the runs beside it. Packed (a GPU), they pad its train
    set; split by split (the CPU), a run's log is its own at the shapes tested, but not where
    in-process threads split its products (README, "Train a sweep"). Replanning the
    unfinished runs afresh would balance them better over the workers, but give such runs
    other logs.
    """
    runs = config.runs()
    chunks = plan_chunks(runs, cap_for(len(runs)), pack_splits=pack_splits)
    return [kept for chunk in chunks if (kept := [r for r in chunk if r.run_id not in done])]


def run_bytes(config: SweepConfig, device: torch.device | None = None) -> int:
    """About the memory one run of ``config`` takes while it trains: per example, the
    activations saved for the backward pass, ~ (4 d_model + 2 d_mlp) floats, and the logits'
    V = p + 1 wide buffers (log-softmax, its gradient, the fit statistics'), ~ 3 V floats; and
    some 20 parameter-sized buffers (parameters, gradients, Adam moments, update snapshots,
    products' workspace). Measured peak RSS over a p = 5 run's: 0.64-0.91 of this (p = 200
    and 300, d_model 64 and 16, ``tests/test_sweep.py``); without the V-wide terms, the
    estimate was 5x too low at p = 300, d_model = 16. On CUDA the examples' one-hot tokens
    (``model.Examples``, lookup ``"onehot"``) add 2 V floats per example."""
    from grokcast.data import SEQ_LEN, vocab_size
    from grokcast.model import n_params

    m, v = config.model, vocab_size(config.p)
    onehot = (SEQ_LEN - 1) * v if device is not None and device.type == "cuda" else 0
    per_example = config.p**2 * (4 * m.d_model + 2 * m.d_mlp + 3 * v + onehot)
    return 4 * (per_example + 20 * max(60_000, n_params(m, config.p)))


def device_bytes(device: torch.device) -> int:
    """Total memory of the device: the GPU's, or for the CPU the machine's RAM, or a cgroup's
    memory limit where that is lower (a container's)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min(ram, cgroup_memory_limit() or ram)


def cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup"),
                        proc: Path = Path("/proc/self/cgroup")) -> int | None:
    """The lowest memory limit in bytes of the cgroups this process is in: its own, as
    ``proc`` names it (a batch scheduler's job is a nested cgroup), and each one above it
    (v2 ``memory.max``, v1 ``memory/.../memory.limit_in_bytes``, whose "no limit" is a huge
    number); None without one."""
    limits = []
    for d in _cgroup_dirs(root, "memory", proc):
        for name in ("memory.max", "memory.limit_in_bytes"):
            try:
                text = (d / name).read_text().strip()
            except OSError:
                continue
            if text.isdigit() and int(text) < 2**60:
                limits.append(int(text))
    return min(limits, default=None)


def _cgroup_dirs(root: Path, controller: str, proc: Path) -> list[Path]:
    """The directories of the cgroups that bound this process for ``controller``, its own
    first, then each parent: under ``root`` for cgroup v2 (a ``0::/path`` line), under
    ``root/controller`` for v1 (``N:controller:/path``). Without ``proc``: the roots alone."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        lines = []
    dirs = []
    for line in lines:
        _, names, path = (line.split(":", 2) + ["", ""])[:3]
        if names and controller not in names.split(","):
            continue
        base, rel = (root / controller if names else root), Path(path.strip().lstrip("/"))
        dirs += [base / d for d in (rel, *rel.parents)]
    return list(dict.fromkeys(dirs + [root, root / controller]))


def default_chunk_size(device: torch.device, config: SweepConfig, workers: int = 1) -> int:
    """Runs per ensemble: what fits in a quarter of the device's memory (shared by ``workers``
    chunks training at once), at most 16 on a CPU.

    A quarter of the device's total memory, not of what is free now: on a GPU a run's log can
    depend on the chunk it trains in (the padding of packed splits, the batched products' shapes),
    so the plan must be the same every time the sweep runs on the same kind of device. On a
    CPU the paper's model hits the cap long before the memory bound.
    """
    cap = 4096 if device.type == "cuda" else DEFAULT_CPU_CHUNK
    return max(1, min(cap, int(device_bytes(device) * 0.25 / workers // run_bytes(config, device))))


def balanced_chunk_size(n_runs: int, workers: int, device: torch.device, config: SweepConfig) -> int:
    """:func:`default_chunk_size`, and at most ceil(n_runs / workers): the chunks are then at
    least as many as the workers wherever the splits allow.

    A core left without a chunk costs more than smaller ensembles do: with 2 workers on the
    2-core machine, a 12-run grid of one split (f = 0.5, 1,000 steps) trained as one chunk of
    12 in 14.6-15.1 s, one core idle, and as two of 6 in 8.7-8.8 s (three sweeps each; in the
    paper grid, chunks of 6 ran as fast per run-step as chunks of 12). On the CPU a run's log
    does not depend on its chunk (the two logs were equal; README, "Train a sweep"), so this
    changes the speed only; a GPU trains with one worker, whose plan it leaves alone.
    """
    return max(1, min(default_chunk_size(device, config, workers), -(-n_runs // workers)))


def check_fits(device: torch.device, config: SweepConfig) -> None:
    """Refuse, before anything is written, a model too big to train one run of on ``device``
    (the OS would kill the process part-way instead of raising an error)."""
    need, have = run_bytes(config, device), device_bytes(device)
    if need > have:
        gib = 2**30
        raise ValueError(f"one run of this model needs about {need / gib:,.1f} GiB while it trains "
                         f"(p={config.p}, d_model={config.model.d_model}, d_mlp={config.model.d_mlp}), "
                         f"more than the {have / gib:,.1f} GiB of {device}: use a smaller model or p")


def check_memory(device: torch.device, config: SweepConfig, workers: int,
                 chunk_size: int | None) -> None:
    """Refuse, before anything is written, ``workers`` processes each training a chunk of
    ``chunk_size`` runs (default: the smallest, 1) that the CPU's memory cannot hold together:
    the OS would kill a worker part-way. The default chunk size fits by construction."""
    chunk, one = largest_chunk(config, chunk_size or 1), run_bytes(config, device)
    need = workers * (chunk * one + (WORKER_BYTES if workers > 1 else 0))
    have = device_bytes(device)
    if need > have:
        gib = 2**30
        raise ValueError(f"workers={workers} with chunks of {chunk} run(s) is not allowed: they "
                         f"need about {need / gib:,.1f} GiB at once ({one / gib:,.1f} GiB per run), "
                         f"more than the {have / gib:,.1f} GiB of {device}: use fewer --workers "
                         "or a smaller --chunk-size")


def largest_chunk(config: SweepConfig, chunk_size: int) -> int:
    """The most runs one chunk of :func:`plan_chunks` holds on the CPU with cap ``chunk_size``:
    a chunk holds runs of one split, so a cap beyond a split's runs (``--chunk-size 2000`` on
    the paper grid's 12) trains chunks of that split's size, not of the cap."""
    group = len(config.weight_decays) * len(config.seeds)  # one split per train fraction
    return -(-group // -(-group // chunk_size))


# What a worker process holds beside its chunk (the interpreter, torch, the chunk's log):
# measured, the sweep process and two workers training chunks of 16 summed to 1,066-1,070 MiB.
WORKER_BYTES = 512 * 2**20


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity, capped by a cgroup's CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, cgroup_cpu_quota() or cores))


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"),
                     proc: Path = Path("/proc/self/cgroup")) -> int | None:
    """The CPUs the lowest CPU quota of this process's cgroups allows (its own and those above
    it, as for :func:`cgroup_memory_limit`), rounded up (v2 ``cpu.max``, v1
    ``cpu/.../cpu.cfs_quota_us``); None without a quota. A container started with ``--cpus 2``
    on a 64-core host has all 64 cores in its affinity but the time of 2 to share among them."""
    quotas = []
    for d in _cgroup_dirs(root, "cpu", proc):
        try:
            if (d / "cpu.max").exists():
                quota, period = (d / "cpu.max").read_text().split()[:2]
            else:
                quota = (d / "cpu.cfs_quota_us").read_text().strip()
                period = (d / "cpu.cfs_period_us").read_text().strip()
            if quota not in ("max", "-1"):
                quotas.append(max(1, -(-int(quota) // int(period))))
        except (OSError, ValueError):  # no cgroup files (not Linux, not mounted) or garbled
            continue
    return min(quotas, default=None)


def max_workers() -> int:
    """The most ``workers`` a sweep may start: the CPU cores this process may run on (at least 2,
    so that a one-core machine can still run the multi-process code path)."""
    return max(2, usable_cores())


def resolve_workers(workers: int | str, device: torch.device,
                    config: SweepConfig | None = None) -> int:
    """``workers="auto"``: one single-threaded process per usable core on the CPU, 1 on a GPU;
    no more than half the machine's memory holds at :data:`WORKER_BYTES` each, nor, given the
    sweep's ``config``, more than the memory holds each training one of its runs.

    Each worker process trains on one thread, and on the CPU a run's log does not depend on
    its chunk, so the logs are the same for any number of worker processes: on the CPU
    ``auto`` changes the speed only (a one-core machine trains in-process, on its one thread).
    In-process training with several threads can sum a one-run chunk's update cosine in
    another order (last-bit differences of that logged signal only).
    """
    if workers == "auto":
        if device.type != "cpu":
            return 1
        have = device_bytes(device)
        each = WORKER_BYTES + (run_bytes(config, device) if config is not None else 0)
        return max(1, min(usable_cores(), int(have * 0.5 // WORKER_BYTES), have // each))
    if isinstance(workers, str):
        raise ValueError(f"workers={workers!r} is not allowed: expected an integer >= 1 or 'auto'")
    return check_int("workers", workers, 1)


def run_sweep(config: SweepConfig, out: str | os.PathLike, *, device: str | torch.device = "auto",
              chunk_size: int | None = None, workers: int | str = 1, progress: bool = True,
              stop: Stopper | None = None, cuda_graphs: bool = True, compiled: bool = False,
              train_fn: Callable[..., EnsembleLog] = train_ensemble) -> SweepResult:
    """Train every unfinished run of ``config`` into the sweep directory ``out``.

    ``stop`` stops runs as they train (a :class:`~grokcast.early_stop.StopRule`: once their
    first W steps are logged, W the forecaster's window, those whose P(grok) is below its
    threshold): they leave their ensemble and are stored with status ``stopped``.

    ``workers > 1`` (CPU only) trains that many chunks at once in separate processes with one
    torch thread each: on small matrices, processes scale better than intra-op threads. At most
    :func:`max_workers`; ``"auto"``: one per usable core on the CPU, 1 on a GPU
    (:func:`resolve_workers`). The workers import the main script again, so a script calls this
    under ``if __name__ == "__main__":`` (:func:`check_main_guard` refuses a call outside).
    Chunks are stored by this process as they finish, in whatever order that is.

    On the CPU it tunes this process's allocator (:func:`tune_allocator`).

    ``cuda_graphs=False`` launches a GPU's kernels one by one instead of replaying the steps
    that log nothing as a recorded CUDA graph (:func:`~grokcast.train.train_ensemble`).
    ``compiled=True`` trains with the ``torch.compile`` build of the training step (the same
    function's argument): for long sweeps, where its seconds of compiling per chunk shape and
    worker are repaid (benchmarks/README.md, "Compiled steps").

    ``train_fn`` stands in for :func:`~grokcast.train.train_ensemble` (the tests use it to make
    a chunk fail); it is called in this process, so only with ``workers=1``.
    """
    # Before anything is written: a bad argument leaves no sweep directory behind.
    dev, record, workers = _checked_arguments(
        config, out, device=device, chunk_size=chunk_size, workers=workers, progress=progress,
        stop=stop, cuda_graphs=cuda_graphs, compiled=compiled, train_fn=train_fn)
    if dev.type == "cpu":
        tune_allocator()  # the in-process chunks are trained here
    store = SweepStore(out)
    with store.lock():  # a second sweep into the same directory is refused meanwhile
        done = store.resume(config, record, training_build(dev, compiled))
        chunks = remaining_chunks(
            config, done, lambda n: chunk_size or balanced_chunk_size(n, workers, dev, config),
            pack_splits=dev.type == "cuda")
        n_todo = sum(len(c) for c in chunks)
        total = n_todo * config.n_steps
        start = time.perf_counter()
        with tqdm(total=total, unit="run-step", unit_scale=True, disable=not progress,
                  desc=f"sweep {config.name}", dynamic_ncols=True) as bar:
            n_all = len(done) + n_todo
            bar.set_postfix(runs=f"{len(done)}/{n_all}")
            if workers == 1:
                _train_here(chunks, store, bar, len(done), n_all, dev, stop, train_fn,
                            cuda_graphs=cuda_graphs, compiled=compiled)
            else:
                _train_in_workers(chunks, store, bar, len(done), n_all, dev, workers, stop, compiled)
        return SweepResult(n_trained=n_todo, n_skipped=len(done),
                           seconds=time.perf_counter() - start)


def _checked_arguments(config: SweepConfig, out: str | os.PathLike, *, device: str | torch.device,
                       chunk_size: int | None, workers: int | str, progress: bool,
                       stop: Stopper | None, cuda_graphs: bool, compiled: bool,
                       train_fn: Callable[..., EnsembleLog],
                       ) -> tuple[torch.device, dict[str, Any] | None, int]:
    """:func:`run_sweep`'s arguments checked, in that order: the device, the stop rule's
    ``record()`` (None without one) and the number of workers."""
    check_sweep_config(config)
    check_path("out", out, "the sweep directory to create or resume")
    dev = resolve_device(str(device))  # a torch.device too
    check_fits(dev, config)
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, 1)
    record = check_stopper(stop, config)
    check_bool("cuda_graphs", cuda_graphs)
    check_bool("progress", progress)
    if check_bool("compiled", compiled):
        check_compilable(dev)
    n_workers = resolve_workers(workers, dev, config)
    if n_workers > 1 and dev.type != "cpu":
        raise ValueError(f"workers={n_workers} is not allowed: expected 1, or >= 1 on the CPU")
    if n_workers > max_workers():
        raise ValueError(f"workers={n_workers} is not allowed: expected an integer in [1, "
                         f"{max_workers()}] (the CPU cores this process may use, at least 2): "
                         "single-threaded workers beyond the cores only compete for them")
    if dev.type == "cpu":
        check_memory(dev, config, n_workers, chunk_size)
    if n_workers > 1:
        check_main_guard("run_sweep(..., workers>1)")
    if n_workers > 1 and train_fn is not train_ensemble:
        raise ValueError(f"train_fn={getattr(train_fn, '__name__', train_fn)!r} is not allowed with "
                         f"workers={n_workers}: the worker processes train with train_ensemble")
    return dev, record, n_workers


def training_build(device: torch.device | str, compiled: bool) -> dict[str, Any]:
    """What a sweep directory records of how its runs are trained (``sweep.json``'s
    ``build``), beside the config: the same config trained by another torch, on another
    device type or with the compiled step rounds differently (README, "Performance")."""
    return {"torch": torch.__version__.split("+")[0], "device": torch.device(device).type,
            "compiled": bool(compiled)}


def check_sweep_config(config: Any) -> None:
    """Refuse anything but a :class:`SweepConfig`, with the way to build one, and a grid that
    would waste its training (:meth:`SweepConfig.check_trainable`)."""
    if not isinstance(config, SweepConfig):
        hint = (": a grid of one run is SweepConfig(train_fracs=[f], weight_decays=[wd], seeds=[s])"
                if isinstance(config, RunConfig) else
                " (SweepConfig.from_file(path), or SweepConfig.from_dict(settings))")
        raise TypeError(f"config must be a SweepConfig, got {type(config).__name__}{hint}")
    config.check_trainable()


def check_stopper(stop: Any, config: SweepConfig) -> dict[str, Any] | None:
    """Refuse, before anything is written, a ``stop`` that is not a :class:`Stopper` or (by
    its optional ``check``) cannot apply to the sweep; its ``record()`` (None without one)."""
    if stop is None:
        return None
    if not all(callable(getattr(stop, m, None)) for m in ("hook", "record")):
        raise TypeError(f"stop={stop!r:.80} is not allowed: expected a rule with hook(chunk) and "
                        "record() methods (grokcast.early_stop.stop_rule builds one)")
    if hasattr(stop, "check"):
        stop.check(config)
    record = stop.record()  # written to stop.json: a value json cannot write would fail after
    try:                    # sweep.json and the lock were, and leave them behind
        if not isinstance(record, dict):
            raise TypeError(f"a {type(record).__name__}")
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"stop.record() returned {record!r:.200}, which is not allowed: expected a "
                        f"dict of JSON values (str, int, float, bool, None, lists and dicts of "
                        f"them; not numpy numbers, not NaN): {err}") from None
    return record


def _train_here(chunks: list[list[RunConfig]], store: SweepStore, bar: tqdm, n_done: int,
                n_all: int, dev: torch.device, stop: Stopper | None,
                train_fn: Callable[..., EnsembleLog], *, cuda_graphs: bool, compiled: bool) -> None:
    """Train the chunks one after another in this process, storing each as it finishes."""
    for chunk in chunks:
        t0 = time.perf_counter()
        hook = None if stop is None else stop.hook(chunk)
        try:
            log = train_fn(chunk, dev, on_progress=lambda k, n=len(chunk): bar.update(k * n),
                           on_log=hook, cuda_graphs=cuda_graphs, compiled=compiled)
        except (torch.OutOfMemoryError, RuntimeError) as err:
            reraise_training_error(err, len(chunk), dev, n_done)
        store.write_chunk(log, seconds=time.perf_counter() - t0)
        n_done += len(chunk)
        bar.set_postfix(runs=f"{n_done}/{n_all}")


def _train_in_workers(chunks: list[list[RunConfig]], store: SweepStore, bar: tqdm, n_done: int,
                      n_all: int, dev: torch.device, workers: int, stop: Stopper | None,
                      compiled: bool) -> None:
    """Train the chunks in worker processes, storing each as it finishes."""
    try:
        for log, seconds in train_in_processes(chunks, workers, bar, stop, compiled):
            store.write_chunk(log, seconds=seconds)
            n_done += len(log.runs)
            bar.set_postfix(runs=f"{n_done}/{n_all}")
    except BrokenProcessPool:  # a RuntimeError: caught first
        raise ValueError(
            f"a worker process died (killed by the system, perhaps for lack of memory, "
            f"or it failed to start: its traceback is then printed above); "
            f"the {n_done} finished runs are stored: rerun to resume, with fewer --workers "
            "or a smaller --chunk-size if it happens again") from None
    except (torch.OutOfMemoryError, RuntimeError) as err:
        reraise_training_error(err, max(map(len, chunks)), dev, n_done)


def reraise_training_error(err: Exception, n_runs: int, device: torch.device, n_done: int) -> NoReturn:
    """Raise running out of memory as :func:`_out_of_memory`'s clear error, anything else as is."""
    oom = _out_of_memory(err, n_runs, device, n_done)
    if oom is None:
        raise err
    raise oom from err


def _out_of_memory(err: Exception, n_runs: int, device: torch.device, n_done: int,
                   ) -> ValueError | None:
    """A clear error for running out of memory in a chunk of ``n_runs``; None for other errors."""
    # The CPU allocator raises a plain RuntimeError.
    if not isinstance(err, torch.OutOfMemoryError) and "can't allocate memory" not in str(err):
        return None
    first_line = str(err).partition("\n")[0]
    stored = f"the {n_done} finished runs are stored"
    if n_runs == 1:
        return ValueError(f"{device} ran out of memory ({first_line}) training one run: it does "
                          f"not fit; {stored}")
    # A smaller chunk trains the remaining runs in other ensembles than an uninterrupted
    # sweep would have (other padding, other product shapes): their logs may differ in rounding.
    return ValueError(
        f"{device} ran out of memory ({first_line}) in a chunk of {n_runs} runs; {stored}: rerun "
        f"with --chunk-size below {n_runs} (the chunks, and with them the unfinished runs' logs, "
        "then differ in rounding from an uninterrupted sweep's)")


def tune_allocator() -> None:
    """Keep freed activation buffers in the heap instead of returning them to the OS.

    glibc hands large blocks back with munmap on free, so every training step would
    page-fault its ~15 MB activations in again: a 12-run step at f = 0.6 on one thread took
    24.2 ms untuned and 15.4 ms tuned (benchmarks/README.md); a 12-run, 1,000-step
    ``run_sweep`` at f = 0.5, 14.5-16.3 s untuned and 13.0-13.2 s tuned. Process-wide, and
    freed memory then stays with the process: called by :func:`run_sweep` on the CPU, by
    sweep workers, Ray tasks and ``grokcast reproduce``, never on import (a direct caller of
    ``train_ensemble`` calls it once, if they want the speed).
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


# Set in each worker process by _worker_init: where workers report finished steps.
_progress: Any = None


def _worker_init(progress: Any, parent: int) -> None:
    """Make a worker die with the sweep process, and leave Ctrl-C to it.

    Without this, a sweep killed by SIGKILL or SIGTERM (a scheduler's time limit) leaves
    its workers training on, orphaned, competing with the rerun; and Ctrl-C, which the
    terminal sends to every process of the group, would kill workers mid-task. The sweep
    process alone handles Ctrl-C, by terminating its workers (:func:`train_in_processes`).
    """
    global _progress
    _progress = progress
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux/glibc: orphans are possible there
        pass
    if os.getppid() != parent:  # the sweep process died before the signal was armed
        os._exit(1)
    tune_allocator()
    torch.set_num_threads(1)


def _worker_train(chunk: list[RunConfig], stop: Stopper | None, compiled: bool,
                  ) -> tuple[EnsembleLog, float]:
    t0 = time.perf_counter()
    log = train_ensemble(chunk, "cpu", on_progress=lambda k: _progress.put(k * len(chunk)),
                         on_log=None if stop is None else stop.hook(chunk), compiled=compiled)
    return log, time.perf_counter() - t0


def train_in_processes(chunks: list[list[RunConfig]], workers: int, bar: tqdm,
                       stop: Stopper | None = None, compiled: bool = False,
                       ) -> Iterator[tuple[EnsembleLog, float]]:
    """Yield (log, seconds) of each chunk as its worker finishes; the biggest chunks start first.

    Leaving the iteration early (an error, Ctrl-C, the caller stopping) terminates the
    workers at once: the chunks they were training are lost, the ones yielded are the
    caller's to keep. After a Ctrl-C, the chunks whose results are back when it is handled
    are still yielded before ``KeyboardInterrupt`` is raised; one after the last chunk was
    yielded (while the pool shuts down) raises it from the final ``next()``. A worker that dies
    (the OOM killer) raises ``BrokenProcessPool``.
    """
    check_main_guard("train_in_processes")
    ctx = multiprocessing.get_context("spawn")  # fork after torch's thread pools can deadlock
    order = sorted(chunks, key=lambda c: -len(c) * max(r.train_frac for r in c))
    progress = ctx.Queue()
    ours = set(multiprocessing.active_children())  # to tell the pool's workers from others

    def drain() -> None:
        while True:
            try:
                bar.update(progress.get_nowait())
            except queue.Empty:
                return

    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(progress, os.getpid()))
    with _sigint_deferred() as interrupted:
        try:
            with _sigint_ignored():  # the pool starts its processes as the chunks are submitted
                pending = {pool.submit(_worker_train, c, stop, compiled) for c in order}
            while pending and not interrupted():
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                drain()
                # The caller stores each, a Ctrl-C meanwhile or not; a failed one last, so
                # that its error does not throw away the others that finished beside it.
                for future in sorted(finished, key=lambda f: f.exception() is not None):
                    yield future.result()
            if interrupted():  # what finished training meanwhile is stored too
                for future in pending:
                    if future.done() and not future.cancelled() and future.exception() is None:
                        yield future.result()
                raise KeyboardInterrupt
        except BaseException:
            # shutdown() alone would wait for the chunks in flight, and start the queued ones.
            pool.shutdown(wait=False, cancel_futures=True)
            for worker in set(multiprocessing.active_children()) - ours:
                worker.terminate()
            raise
        pool.shutdown()


def check_main_guard(caller: str) -> None:
    """Refuse to start worker processes from the unguarded top level of a script.

    Spawned workers run the main script again, as a module. A call at its top level, outside
    ``if __name__ == "__main__":``, would start workers from every worker: multiprocessing
    stops them, the pool breaks, and the sweep would report workers that died. Found by reading
    the script's syntax tree at the line being run; interactive sessions and notebooks have
    no script and pass. A main script that cannot be read (piped to python) is refused: the
    workers cannot run it again.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    # As multiprocessing.spawn does: a main run as a package's or directory's __main__ is
    # not run again in the workers.
    name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if name == "__main__" or name.endswith(".__main__"):
        return
    if path is None:
        return
    try:
        source = Path(path).read_bytes()
    except OSError as err:
        # The workers could not run it either, and would die starting: seen with a script
        # piped to python (its __file__ is "<stdin>") reported as workers that died.
        raise ValueError(
            f"{caller} cannot start worker processes from the main script {path}: they run it "
            f"again when they start, and it cannot be read ({err.strerror or err}); run the "
            "script from a file (or train with workers=1)") from None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and not (frame.f_globals is getattr(main, "__dict__", None)
                                     and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # not Python source (a .pyc run directly): let it be
        return
    line = frame.f_lineno
    if any(isinstance(node, ast.If) and _is_main_test(node.test)
           and node.lineno <= line <= (node.end_lineno or line) for node in ast.walk(tree)):
        return
    raise ValueError(
        f"{caller} is called at the top level of {path} (line {line}), outside "
        "`if __name__ == \"__main__\":`: the worker processes run that file again when they "
        "start, so put the call under that guard (or train with workers=1)")


def _is_main_test(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either way round), or an ``and`` of it."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return any(map(_is_main_test, test.values))
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = {ast.dump(test.left), ast.dump(test.comparators[0])}
    return sides == {ast.dump(ast.Name("__name__", ast.Load())), ast.dump(ast.Constant("__main__"))}


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C while worker processes are started, so that they start ignoring it.

    A spawned process inherits an ignored SIGINT and Python then leaves it ignored; without
    this, a Ctrl-C in a worker's first seconds (importing torch, before :func:`_worker_init`
    runs) printed each worker's KeyboardInterrupt traceback. Ctrl-C in this moment (the
    processes are forked and exec'd here, they import later) is lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _sigint_deferred() -> Iterator[Callable[[], bool]]:
    """Within: Ctrl-C only sets a flag, which the caller checks at points safe to stop at; one
    that came is raised as KeyboardInterrupt when the block ends without an error (a caller
    that acted on it has raised already); one that came before a generator holding the block
    was closed early is dropped with it.

    Python raises KeyboardInterrupt wherever the main thread happens to be. Inside
    concurrent.futures it can leave a future's lock held, and the pool's manager thread then
    blocks the interpreter's exit forever (seen: a sweep hung at exit, its workers gone); in
    a finalizer it is swallowed (seen: the sweep trained on to the end). Outside the main
    thread signal handlers cannot be set, and the default behaviour stays; so does an
    ignored SIGINT (a job started with ``&`` by a non-interactive shell).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield lambda: False
        return
    hits: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: hits.append(signum))
    try:
        yield lambda: bool(hits)
    finally:
        signal.signal(signal.SIGINT, previous)
    # A Ctrl-C after the caller's last check (seen: while the pool shut down after its last
    # chunk, and `grokcast reproduce` went on to analyse) is not lost.
    if hits:
        raise KeyboardInterrupt
