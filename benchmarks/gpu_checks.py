"""Issue 6's GPU checks in one command, for a session whose task is lent a GPU machine.

Run in four sessions (2026-11-26, twice on 2026-11-27, and 2026-11-28; results and what they
say: benchmarks/README.md, "GPU"). Nothing is installed there: the machine's own python3 and
torch run the sources. With the device tool, from the repository root, in one call (its
stages took, on an H100 on 2026-11-27: repeat 10 s, lookups 67 s, paper 8 s, grid at 2,000
steps 65 s; on an H200 tests 178 s with ``tests/test_compiled.py``, whose CUDA test compiles,
25 s without it on an H100; a machine's start took about 30-60 s):

    run(command="export PYTHONPATH=src:tests; "
                "python3 benchmarks/gpu_checks.py --out $OUT/a --stages tests repeat paper "
                "--cpu-sweep out/paper/sweep; "
                "python3 benchmarks/gpu_checks.py --out $OUT/b --stages grid --steps 2000",
        carry=["out/paper/sweep"], timeout_s=400)

The opt-in compiled step against the eager one, on the same machine (on an H200: the
2,000-step grid 57.7 s eager, 63.5 s compiled with its compiling; the 10,000-step grid
187.7 s compiled):

    run(command="export PYTHONPATH=src:tests; "
                "python3 benchmarks/gpu_checks.py --out $OUT/c --stages grid --steps 2000 --compile; "
                "python3 benchmarks/gpu_checks.py --out $OUT/d --stages grid --steps 2000",
        timeout_s=300)

(``steps``, ``profile`` and ``bench`` take 5, 61 and 55 s more.) The grid at the paper's
10,000 steps takes 3-5 minutes, much of a 15-minute device budget, so mostly a fifth of it
is timed: with ``--steps`` the figure to report is the grid's run-steps per second, not its
time (its first 300 steps log densely, a larger share of a shorter run). The full eager
grid has not been measured on any card (only projected); ``--stages grid`` alone measures it.

``out/paper/sweep`` is this machine's CPU sweep from ``make reproduce``. Stages, in the
order given; each is written to OUT/summary.json as soon as it ends (a run cut off keeps
what it has):

- ``tests``: tests/test_model.py, test_train.py and test_compiled.py on the GPU (the oracle tests for
  each way of reading the tables, the GPU-vs-CPU agreement check, the repeatability
  check), output in OUT/tests.txt;
- ``repeat``: 3 runs x 300 steps trained twice with each way of reading the tables
  (``model.LOOKUPS``: ``onehot``, CUDA's, and ``gather``, whose gradient is summed with
  ``index_add_``'s atomics): whether each pair's logs are equal;
- ``steps``: ms per step of the 48 runs as one ensemble, every step logged and none logged
  (with and without the CUDA graphs): where a sweep's time goes (--steps, default 200);
- ``lookups``: ms per unlogged step of the 48 runs and of the grid's 2,400-run chunk, by way
  of reading the tables and precision, twice each, and per logged step of the large chunk;
- ``compile``: an experiment for the 4,800-run target (on an H200 on 2026-11-28 the
  max-autotune mode was still autotuning after 170 s, cuBLAS beating its templates in every
  shape it had finished: benchmarks/README.md, "GPU (2026-11-28)"): one step's
  gradients (``model._loss_and_grads``) of the 2,400-run f = 0.6 chunk, eager against
  ``torch.compile`` in its ``default`` and ``max-autotune-no-cudagraphs`` modes (ms per
  call, compile seconds, largest relative gradient difference). On this project's 2-core CPU
  with 8 runs (``--device cpu --profile-seeds 2``, 2026-11-27, other jobs running): eager
  8.96 ms, compiled 7.23 and 6.53 ms after 40 and 55 s of compiling, gradients within
  3.1e-7. Max-autotune benchmarks Triton templates for every product: on a GPU give it its
  own call (``--stages compile``, timeout_s 400) until its compile time is known. The
  trainer's own opt-in (``grokcast sweep --compile``) is timed by ``--compile`` with the
  ``grid`` or ``paper`` stage, in the same call as the eager one (another call may get
  another machine): ``--stages grid --steps 2000`` then ``--stages grid --steps 2000
  --compile`` (on the CPU it gained 4-13% on whole sweeps; on an H200 on 2026-11-27 the
  4,800-run grid took 187.7 s compiled, about 220-235 s eager projected: benchmarks/README.md,
  "Compiled steps" and "GPU"; the ``tests`` stage shows whether the compiled step works on CUDA);
- ``anatomy``: where a large ensemble's step goes, part by part (see stage_anatomy; with
  ``--profile-seeds 300 --steps 20`` the grid's own 2,400-run chunks, 48 s on an H200 on
  2026-11-28);
- ``profile``: the operators that take the time of 40 logged steps of those 48 runs, and of
  10 unlogged steps of a 2,400-run ensemble (the grid's chunk) in fp32 and bf16 (the
  one-off initialisation of the 2,400 runs, ~100 ms of ``copy_`` and ``mul``, included);
- ``bench``: bench_train.py on the GPU, 48 runs x --bench-steps steps, a log row every 100
  (``--dense-until 0``, as the CPU rows of benchmarks/README.md): fp32, fp32 with
  ``--no-cuda-graphs`` (what the recorded CUDA graphs gain) and bf16;
- ``paper``: the 48-run x 10,000-step paper sweep, timed, and its runs compared with the
  CPU sweep's (max val acc, who groks at 0.9 and 0.99);
- ``grid``: the paper grid with --seeds seeds per (f, lambda) cell, timed: 300 (the default)
  gives issue 6's 4,800 runs, as ``configs/paper_300_seeds.toml`` does. (The issue also says
  "100 seeds per cell", which on the 4 x 4 grid is 1,600 runs; we time the larger sweep.) A
  call cut off before the stage ends keeps no figure for it, but the progress bar's last
  lines, with the run-steps per second so far, are in the call's output. ``--precision bf16``
  times the opt-in precision (149.2 s compiled on an H200 on 2026-11-28, fp32 203.4 s).

``--device cpu --steps 30 --seeds 2 --bench-steps 30 --profile-seeds 2`` runs the same stages
on a CPU in a few minutes: a check of the script, not a measurement (without
``--profile-seeds 2`` the profile and lookups stages build their 2,400-run ensembles).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("tests", "repeat", "steps", "lookups", "compile", "anatomy", "profile", "bench", "paper",
          "grid")


def stage_tests(args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "tests/test_model.py", "tests/test_train.py", "tests/test_compiled.py"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    (args.out / "tests.txt").write_text(done.stdout + done.stderr)
    return {"returncode": done.returncode, "last_line": (done.stdout.strip().splitlines() or [""])[-1]}


@contextmanager
def _lookup(way: str | None) -> Iterator[None]:
    """Train with the table lookup ``way`` (model.LOOKUPS) instead of the device's default."""
    from grokcast import train as T

    build = T._padded_examples
    T._padded_examples = partial(build, lookup=way)
    try:
        yield
    finally:
        T._padded_examples = build


def stage_repeat(args: argparse.Namespace) -> dict[str, Any]:
    """Each way of reading the tables trained twice: whether the two logs are equal."""
    from grokcast.config import LogConfig, RunConfig
    from grokcast.model import LOOKUPS
    from grokcast.train import train_ensemble

    runs = [RunConfig(p=23, train_frac=f, weight_decay=wd, seed=s, n_steps=args.steps or 300,
                      log=LogConfig(dense_until=300, every=100))
            for f, wd, s in [(0.3, 1.0, 0), (0.6, 0.3, 1), (0.4, 10.0, 2)]]
    out = {}
    for way in LOOKUPS:  # "gather" sums the gradient with index_add_: atomics on CUDA
        with _lookup(way):
            a, b = (train_ensemble(runs, args.device).values for _ in range(2))
        out[way] = {"equal": bool(np.array_equal(a, b, equal_nan=True)),
                    "max_abs_diff": float(np.nanmax(np.abs(a - b)))}
    return out


def stage_lookups(args: argparse.Namespace) -> dict[str, Any]:
    """Milliseconds per unlogged step (CUDA graphs on) of the paper grid's 48 runs and of the
    grid's 2,400-run chunk (--profile-seeds), by way of reading the tables and precision;
    and per logged step of the large chunk (what a sweep's first 300 steps cost). Each
    variant is warmed up on its own first: the first use of a precision loads its kernels."""
    out: dict[str, Any] = {}
    variants = (("gather", "fp32", False), ("onehot", "fp32", False), ("onehot", "bf16", False),
                ("onehot", "fp32", True))
    for seeds in (3, args.profile_seeds):
        runs = _grid(args, seeds).runs()
        for way, precision, logged in variants:
            chunk = [dataclasses.replace(r, model=dataclasses.replace(r.model, precision=precision))
                     for r in runs]
            key = f"{len(runs)}_runs_{way}_{precision}" + ("_logged" if logged else "")
            try:
                with _lookup(way):
                    _ms_per_step(chunk, 10, logged, True, args.device)  # one-off initialisations
                    n = 20 if logged else args.steps or 50
                    out[key] = sorted(_ms_per_step(chunk, n, logged, True, args.device) for _ in range(2))
            except Exception as err:  # the others are still worth having
                out[key] = f"{type(err).__name__}: {err}"
            print(f"{key}: {out[key]} ms per step", flush=True)
    return out


def stage_compile(args: argparse.Namespace) -> dict[str, Any]:
    """An experiment, not a feature: ``torch.compile`` of one training step's gradients
    (``model._loss_and_grads``) against the eager function, on the grid's 2,400-run chunk at
    f = 0.6 (--profile-seeds; its largest train set): milliseconds per call (median of 3
    timings of --steps calls, default 20), seconds to compile, and the largest gradient
    difference relative to the gradient's largest entry. Whether compiling pays where the
    step is memory-bound (the elementwise passes fused, the batched products left to cuBLAS
    or, with max-autotune, Triton's templates) decides whether the trainer should record a
    compiled step in its CUDA graph."""
    from grokcast import model as M
    from grokcast.train import _padded_examples

    runs = [r for r in _grid(args, args.profile_seeds).runs() if r.train_frac == 0.6]
    device = torch.device(args.device)
    ex = _padded_examples(runs, 0, device)
    params = M.init_params(runs[0].model, runs[0].p, [r.seed for r in runs], device)
    n_heads, n = runs[0].model.n_heads, args.steps or 20
    eager = partial(M._loss_and_grads, params, ex, n_heads, "fp32")
    _, _, want = eager()
    out: dict[str, Any] = {"runs": len(runs), "examples_per_run": int(ex.tokens.shape[1]),
                           "eager_ms": _ms_per_call(eager, n, args.device)}
    for mode in ("default", "max-autotune-no-cudagraphs"):
        try:
            compiled = torch.compile(M._loss_and_grads, mode=mode, dynamic=False)
            t0 = time.perf_counter()
            _, _, got = compiled(params, ex, n_heads, "fp32")
            _sync(args.device)
            compile_s = time.perf_counter() - t0
            diff = max(float((got[k] - want[k]).abs().max() / want[k].abs().max()) for k in want)
            out[mode] = {"compile_seconds": round(compile_s, 1), "max_rel_grad_diff": diff,
                         "ms": _ms_per_call(partial(compiled, params, ex, n_heads, "fp32"), n, args.device)}
        except Exception as err:  # the other mode is still worth having
            out[mode] = f"{type(err).__name__}: {err}"[:2000]
        print(f"{mode}: {out[mode]}", flush=True)
    return out


def stage_anatomy(args: argparse.Namespace) -> dict[str, Any]:
    """Where a large ensemble's step time goes, part by part (CUDA-graph replays, medians of 3
    timings of --steps replays, default 20): the two chunks ``grokcast sweep`` packs a grid of
    2 x 8 x --profile-seeds runs into on a large GPU (its runs sorted by train set, halved) and
    the same runs split by train fraction (no padding); eager and compiled gradients; AdamW
    with its separate decay pass and with the decay folded into torch's fused kernel per weight
    decay (an experiment); the logged step's parts, launched one by one as the trainer does;
    and the compiled step's 15 longest kernels."""
    from grokcast import model as M
    from grokcast import signals as S
    from grokcast.train import _AdamW, _padded_examples, _record

    device = torch.device(args.device)
    runs = sorted(_grid(args, args.profile_seeds).runs(), key=lambda r: r.split_key)
    half = len(runs) // 2
    n = args.steps or 20
    out: dict[str, Any] = {}

    def setup(chunk: list[Any]) -> tuple[dict[str, Any], Any, Any]:
        params = M.init_params(chunk[0].model, chunk[0].p, [r.seed for r in chunk], device)
        return params, _padded_examples(chunk, 0, device), _padded_examples(chunk, 1, device)

    def step_parts(chunk: list[Any], detail: bool) -> dict[str, Any]:
        params, ex, val = setup(chunk)
        plist = [params[k] for k in M.PARAM_NAMES]
        opt, heads = _AdamW(plist, chunk), chunk[0].model.n_heads
        res: dict[str, Any] = {"runs": len(chunk), "examples_per_run": int(ex.tokens.shape[1]),
                               "train_fracs": sorted({r.train_frac for r in chunk})}
        grads = M.loss_and_grads(params, ex, heads)[2]
        glist = [grads[k] for k in M.PARAM_NAMES]

        def step(compiled: bool, precision: str = "fp32") -> None:
            g = M.loss_and_grads(params, ex, heads, compiled=compiled, precision=precision)[2]
            opt.step([g[k] for k in M.PARAM_NAMES])

        t0 = time.perf_counter()
        M.loss_and_grads(params, ex, heads, compiled=True)
        _sync(args.device)
        res["compile_s"] = round(time.perf_counter() - t0, 1)
        res["step_compiled_ms"] = _graphed_ms(partial(step, True), n, args.device)
        if not detail:
            return res
        res["step_eager_ms"] = _graphed_ms(partial(step, False), n, args.device)
        try:  # opt-in precision: worth knowing, not worth the stage
            res["step_compiled_bf16_ms"] = _graphed_ms(partial(step, True, "bf16"), n, args.device)
        except Exception as err:
            res["step_compiled_bf16_ms"] = f"{type(err).__name__}: {err}"[:500]
        res["grads_compiled_ms"] = _graphed_ms(
            lambda: M.loss_and_grads(params, ex, heads, compiled=True), n, args.device)
        res["adamw_ms"] = _graphed_ms(lambda: opt.step(glist), n, args.device)
        res["adamw_without_decay_pass_ms"] = _graphed_ms(lambda: torch._fused_adamw_(
            opt.params, glist, opt.m, opt.v, [], opt.t, lr=opt.lr, beta1=opt.b1, beta2=opt.b2,
            weight_decay=0.0, eps=opt.eps, amsgrad=False, maximize=False), n, args.device)
        # The logged step's parts, as the trainer launches them (not replayed).
        logits = M.loss_and_grads(params, ex, heads, compiled=True)[1]
        cur = torch.empty(len(S.SIGNAL_NAMES), len(chunk), device=device)
        col = {name: k for k, name in enumerate(S.SIGNAL_NAMES)}
        res["logged_record_ms"] = _ms_per_call(
            lambda: _record(cur, col, params, plist, glist, logits, ex, val, chunk[0].model),
            5, args.device)
        res["logged_val_forward_ms"] = _ms_per_call(lambda: M.forward(params, val, heads), 5, args.device)
        res["logged_erank_ms"] = _ms_per_call(
            lambda: (S.effective_rank(params["W_E"]), S.effective_rank(params["W_U"])), 5, args.device)

        def update_signals() -> None:
            before = S.flat(plist)
            delta = [S.flat(plist) - before]
            S.global_norm(delta), S.cosine(delta, delta)

        res["logged_flat_delta_ms"] = _ms_per_call(update_signals, 5, args.device)
        res["grads_compiled_launched_ms"] = _ms_per_call(
            lambda: M.loss_and_grads(params, ex, heads, compiled=True), 5, args.device)
        if args.device.startswith("cuda"):
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    step(True)
                _sync(args.device)
            events = sorted(prof.key_averages(), key=lambda e: e.self_device_time_total, reverse=True)
            res["kernels_5_compiled_steps"] = [
                f"{e.key[:90]}: {e.self_device_time_total / 5e3:.3f} ms/step, {e.count // 5} calls"
                for e in events[:15]]
        return res

    for name, chunk, detail in [("packed_upper", runs[half:], True),
                                ("packed_lower", runs[:half], False)]:
        out[name] = step_parts(chunk, detail)
        print(name, out[name], flush=True)
    for f in sorted({r.train_frac for r in runs}):
        key = f"split_f{f}"
        out[key] = step_parts([r for r in runs if r.train_frac == f], False)
        print(key, out[key], flush=True)
    return out


def _graphed_ms(fn: Any, n: int, device: str) -> float:
    """ms per replay of ``fn`` recorded as a CUDA graph (on a CPU: per call)."""
    if not device.startswith("cuda"):
        return _ms_per_call(fn, n, device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return _ms_per_call(graph.replay, n, device)


def _ms_per_call(fn: Any, n: int, device: str) -> float:
    """Median over 3 timings of n calls, after one call outside them."""
    fn()
    times = []
    for _ in range(3):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        _sync(device)
        times.append(1e3 * (time.perf_counter() - t0) / n)
    return round(sorted(times)[1], 3)


def stage_bench(args: argparse.Namespace) -> dict[str, Any]:
    results = {}
    for name, extra in [("fp32", []), ("fp32_no_cuda_graphs", ["--no-cuda-graphs"]),
                        ("bf16", ["--precision", "bf16"])]:
        out = args.out / f"bench_{name}.json"
        cmd = [sys.executable, "benchmarks/bench_train.py", "--device", args.device, "--runs", "48",
               "--steps", str(args.bench_steps), "--plain-runs", "4", "--repeats", "1",
               "--dense-until", "0", *extra, "--json", str(out)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        results[name] = (json.loads(out.read_text()) if done.returncode == 0
                         else {"returncode": done.returncode, "stderr": done.stderr[-2000:]})
    return results


def stage_steps(args: argparse.Namespace) -> dict[str, Any]:
    """Milliseconds per step of the paper grid's 48 runs as one ensemble, by kind of step:
    every step logged (the first 300 of a paper sweep), none logged with and without the
    CUDA graphs (95% of its steps). Where a GPU sweep's time goes, before profiling it."""
    n = args.steps or 200
    runs = _grid(args).runs()
    out = {"runs": len(runs), "steps": n}
    for name, dense, graphs in [("logged", True, True), ("unlogged", False, True),
                                ("unlogged_no_cuda_graphs", False, False)]:
        _ms_per_step(runs, 20, dense, graphs, args.device)  # one-off initialisations
        out[f"ms_per_step_{name}"] = _ms_per_step(runs, n, dense, graphs, args.device)
    return out


def _ms_per_step(runs: list[Any], n: int, dense: bool, graphs: bool, device: str) -> float:
    """The difference of an n-step and a 2n-step training: set-up, warm-up and recording
    cancel out."""
    from grokcast.config import LogConfig
    from grokcast.train import train_ensemble

    def seconds(steps: int) -> float:
        log = LogConfig(dense_until=steps + 1 if dense else 0, every=steps)
        chunk = [dataclasses.replace(r, n_steps=steps, log=log) for r in runs]
        _sync(device)
        t0 = time.perf_counter()
        train_ensemble(chunk, device, cuda_graphs=graphs)
        _sync(device)
        return time.perf_counter() - t0

    return round(1e3 * (seconds(2 * n) - seconds(n)) / n, 3)


def stage_profile(args: argparse.Namespace) -> dict[str, Any]:
    """The operators that take the time, from PyTorch's profiler: 40 logged steps of the paper
    grid's 48 runs, and 10 unlogged steps (kernels launched one by one, so that each is
    named) of the grid's 2,400-run chunks in fp32 and bf16: the top 10 of each by self time."""
    from grokcast.config import LogConfig

    runs = _grid(args).runs()
    big = _grid(args, args.profile_seeds).runs()
    out = {"logged_48_runs": _top_ops(runs, LogConfig(dense_until=41, every=40), 40, args.device)}
    for precision in ("fp32", "bf16"):
        chunk = [dataclasses.replace(r, model=dataclasses.replace(r.model, precision=precision))
                 for r in big]
        out[f"unlogged_{len(chunk)}_runs_{precision}"] = _top_ops(
            chunk, LogConfig(dense_until=0, every=12), 12, args.device, unlogged=10)
    return out


def _top_ops(runs: list[Any], log: Any, steps: int, device: str, unlogged: int = 0) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    from grokcast.train import train_ensemble

    chunk = [dataclasses.replace(r, n_steps=steps, log=log) for r in runs]
    train_ensemble(chunk, device, cuda_graphs=False)  # one-off initialisations outside the profile
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities) as prof:
        train_ensemble(chunk, device, cuda_graphs=False)
        _sync(device)
    events = [e for e in prof.key_averages() if e.key.startswith(("aten::", "cuda"))]
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    total = sum(getattr(e, key, 0) for e in events if e.key.startswith("aten::")) / 1e3
    top = sorted(events, key=lambda e: getattr(e, key, 0), reverse=True)[:10]
    return {"runs": len(chunk), "steps": steps, "unlogged_steps": unlogged, key + "_ms": round(total, 1),
            "top": [f"{e.key}: {getattr(e, key, 0) / 1e3:.1f} ms, {e.count} calls" for e in top]}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _sweep(config: Any, out: Path, device: str, chunk_size: int | None, compiled: bool,
           ) -> dict[str, Any]:
    from grokcast.store import SweepStore
    from grokcast.sweep import default_chunk_size, run_sweep

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    result = run_sweep(config, out, device=device, chunk_size=chunk_size, progress=True,
                       compiled=compiled)
    chunks = SweepStore(out).runs().groupby("chunk").agg(
        runs=("run_id", "size"), seconds=("chunk_seconds", "first"),
        train_fracs=("train_frac", lambda f: sorted(set(f))))
    info = {"runs": result.n_trained, "steps": config.n_steps, "compiled": compiled,
            "precision": config.model.precision,
            "seconds": round(result.seconds, 2),
            "run_steps_per_s": round(result.n_trained * config.n_steps / result.seconds),
            "chunk_size_cap": chunk_size or default_chunk_size(torch.device(device), config),
            "runs_per_chunk": sorted(chunks["runs"].tolist(), reverse=True),
            # A chunk's train set is padded to its largest fraction's: its step costs that size.
            "chunks": [{"runs": int(c.runs), "train_fracs": c.train_fracs, "seconds": round(c.seconds, 2)}
                       for c in chunks.itertuples()]}
    if device.startswith("cuda"):
        info["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return info


def _grid(args: argparse.Namespace, seeds: int | None = None) -> Any:
    from grokcast.config import SweepConfig

    raw = SweepConfig.from_file(ROOT / "configs" / "paper.toml").to_dict()
    if seeds is not None:
        raw["seeds"] = list(range(seeds))
    if args.steps is not None:
        raw["n_steps"] = args.steps
    if args.precision is not None:
        raw["model"]["precision"] = args.precision
    return SweepConfig.from_dict(raw)


def compare_runs(gpu_runs: Any, cpu_runs: Any) -> dict[str, Any]:
    """Where the GPU's study differs from the CPU's: max val acc and the grokking labels."""
    both = gpu_runs.merge(cpu_runs, on="run_id", suffixes=("", "_cpu")).set_index("run_id")
    diff = (both["max_val_acc"] - both["max_val_acc_cpu"]).abs()
    out: dict[str, Any] = {"runs_compared": len(both),
                           "max_abs_diff_max_val_acc": float(diff.max()),
                           "median_abs_diff_max_val_acc": float(diff.median())}
    for th in (0.9, 0.99):
        gpu, cpu = both["max_val_acc"] >= th, both["max_val_acc_cpu"] >= th
        out[f"grokkers_{th}"] = {"gpu": int(gpu.sum()), "cpu": int(cpu.sum()),
                                 "label_differs": sorted(both.index[gpu != cpu])}
    return out


def stage_paper(args: argparse.Namespace) -> dict[str, Any]:
    from grokcast.store import SweepStore

    config = _grid(args)
    with tempfile.TemporaryDirectory() as tmp:
        info = _sweep(config, Path(tmp) / "paper", args.device, args.chunk_size, args.compile)
        if args.cpu_sweep is not None:
            cpu = SweepStore(args.cpu_sweep)
            info["vs_cpu"] = (compare_runs(SweepStore(Path(tmp) / "paper").runs(), cpu.runs())
                              if cpu.read_config() == config else "not compared: a different sweep config")
    return info


def stage_grid(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return _sweep(_grid(args, args.seeds), Path(tmp) / "grid", args.device, args.chunk_size,
                      args.compile)


def main() -> None:
    from grokcast.store import SweepStore

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="directory for summary.json and the logs")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cpu-sweep", type=Path, default=None,
                    help="a finished CPU sweep of configs/paper.toml to compare the GPU's with")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    ap.add_argument("--bench-steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=300,
                    help="seeds per (f, lambda) cell in the grid stage (300: 4,800 runs)")
    ap.add_argument("--profile-seeds", type=int, default=150,
                    help="seeds per cell of the profile and lookups stages' large ensemble "
                         "(150: 2,400 runs)")
    ap.add_argument("--steps", type=int, default=None, help="sweep steps (default: the config's 10,000)")
    ap.add_argument("--chunk-size", type=int, default=None,
                    help="runs per ensemble in the sweeps (default: grokcast's, from the GPU's memory)")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                    help="the sweeps' model precision (default: the config's, fp32)")
    ap.add_argument("--compile", action="store_true",
                    help="the paper and grid stages train with the torch.compile build of the "
                         "step (grokcast sweep --compile), compile time included")
    args = ap.parse_args()
    if args.cpu_sweep is not None and not SweepStore(args.cpu_sweep).config_path.exists():
        ap.error(f"--cpu-sweep {str(args.cpu_sweep)!r} is not a sweep directory (no sweep.json)")
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"torch": torch.__version__, "python": sys.version.split()[0],
                               "device": (torch.cuda.get_device_name() if args.device.startswith("cuda")
                                          else "cpu")}
    for name in args.stages:
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            summary[name] = globals()[f"stage_{name}"](args)
        except Exception as err:  # record it and go on: the later stages are worth having
            summary[name] = {"error": f"{type(err).__name__}: {err}"}
        summary[name]["stage_seconds"] = round(time.perf_counter() - t0, 1)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=_plain))
        print(json.dumps(summary[name], indent=2, default=_plain), flush=True)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)


if __name__ == "__main__":
    main()
