"""Training throughput: grokcast's batched ensemble vs a plain per-run PyTorch loop.

Both train the same runs (the paper grid's first runs) for the same number of steps on the
same device with the same thread count, in one invocation. The plain loop is the tests'
oracle (tests/reference_model.py): one nn.Module per run, all three positions, torch AdamW,
one run after another, no logging. grokcast's side includes its full signal logging.

    python benchmarks/bench_train.py --runs 48 --steps 1000 --plain-runs 4 \\
        --threads 1 --workers 2 --dense-until 0 [--json out.json]

``--plain-layout processes`` runs the plain loop the way grokcast's side runs: its runs dealt
over ``--workers`` one-thread processes, a stronger baseline on a small machine (two
single-threaded loops outrun one two-threaded loop over tiny ops).

Each side is timed after its own warm-up in the process that trains: worker processes (either
side's) are started and warmed before their clocks start, and the slowest worker's seconds
count, so neither side's process start-up is timed (a sweep pays its workers' about once:
~2 s on an idle 2-core machine).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import multiprocessing
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from reference_model import PlainTransformer  # noqa: E402

from grokcast import model as M  # noqa: E402
from grokcast.config import SweepConfig  # noqa: E402
from grokcast.data import all_examples, n_train_examples, split_indices  # noqa: E402
from grokcast.sweep import plan_chunks, tune_allocator  # noqa: E402
from grokcast.train import resolve_device, train_ensemble  # noqa: E402


def plain_loop(runs, steps: int, device: torch.device) -> float:
    tokens, labels = all_examples(runs[0].p)
    start = time.perf_counter()
    for run in runs:
        params = M.init_params(run.model, run.p, [run.seed])
        net = PlainTransformer(run.p).load_ensemble_run(params, 0).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=run.optim.lr,
                                betas=(run.optim.beta1, run.optim.beta2),
                                weight_decay=run.weight_decay)
        idx = torch.from_numpy(split_indices(run.p, run.train_frac, run.split_seed)[0])
        x, y = tokens[idx].to(device), labels[idx].to(device)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x)[:, -1], y).backward()
            opt.step()
    _sync(device)
    return time.perf_counter() - start


def _plain_worker(runs, steps: int, threads: int, warm_steps: int) -> float:
    """One process's share of the plain loop: its own warm-up, then the timed loop."""
    torch.set_num_threads(threads)
    tune_allocator()
    plain_loop([dataclasses.replace(r, n_steps=warm_steps) for r in runs], warm_steps,
               torch.device("cpu"))
    return plain_loop(runs, steps, torch.device("cpu"))


def deal(items, workers: int, cost) -> list[list]:
    """``items`` shared over ``workers`` as a sweep's queue hands them out: the costliest first,
    each to the share with the least cost so far (empty shares dropped)."""
    shares: list[list] = [[] for _ in range(workers)]
    load = [0] * workers
    for item in sorted(items, key=cost, reverse=True):
        k = load.index(min(load))
        shares[k].append(item)
        load[k] += cost(item)
    return [s for s in shares if s]


def _train_size(run) -> int:
    return n_train_examples(run.p, run.train_frac)


def plain_in_processes(runs, steps: int, workers: int, warm_steps: int) -> float:
    """The plain loop with its runs dealt over ``workers`` one-thread processes (as grokcast's
    sweep workers run), by :func:`deal` on train-set size; each is timed
    after its own warm-up, and the slowest process's seconds count."""
    if len(runs) % workers:
        raise ValueError(f"{len(runs)} plain runs cannot be shared evenly by {workers} processes: "
                         "give --plain-runs a multiple of --workers")
    shares = deal(runs, workers, _train_size)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        return max(pool.map(_plain_worker, shares, [steps] * workers, [1] * workers,
                            [warm_steps] * workers))


def ensemble(runs, device: torch.device, chunk_size: int, cuda_graphs: bool = True,
             compiled: bool = False) -> float:
    """grokcast's chunks trained in this process, one after another."""
    start = time.perf_counter()
    for chunk in plan_chunks(runs, chunk_size, pack_splits=device.type == "cuda"):
        train_ensemble(chunk, device, cuda_graphs=cuda_graphs, compiled=compiled)
    _sync(device)
    return time.perf_counter() - start


def _ensemble_worker(chunks, warm_steps: int, compiled: bool) -> tuple[float, int]:
    """One sweep worker's share of grokcast's chunks, on one thread as `grokcast sweep`'s
    workers train: its own warm-up (and, with ``compiled``, the loading of the compiled step),
    then the timed chunks. Returns the seconds and the process's peak RSS in bytes."""
    torch.set_num_threads(1)
    tune_allocator()
    for chunk in chunks:
        train_ensemble([dataclasses.replace(r, n_steps=warm_steps) for r in chunk], "cpu",
                       compiled=compiled)
    start = time.perf_counter()
    for chunk in chunks:
        train_ensemble(chunk, "cpu", compiled=compiled)
    return time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def ensemble_in_processes(runs, chunk_size: int, workers: int, warm_steps: int,
                          compiled: bool) -> tuple[float, int]:
    """grokcast's chunks dealt over ``workers`` one-thread processes (:func:`deal` by
    examples), each timed after its own warm-up; the slowest worker's seconds and the largest
    peak RSS."""
    shares = deal(plan_chunks(runs, chunk_size), workers, lambda c: len(c) * _train_size(c[0]))
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(len(shares), mp_context=context) as pool:
        out = list(pool.map(_ensemble_worker, shares, [warm_steps] * len(shares),
                            [compiled] * len(shares)))
    return max(t for t, _ in out), max(rss for _, rss in out)


def flops_per_run_step(n_train: int, d: int = 64, d_mlp: int = 256, vocab: int = 24,
                       seq: int = 3, n_heads: int = 4) -> float:
    """Training FLOPs of one run-step as grokcast computes it (benchmarks/README.md derives it).

    Per example, forward multiply-adds at the '=' position: attention mix seq*d, W_O d^2,
    W_in d d_mlp, the MLP output read through the unembedding d_mlp vocab, resid W_U d vocab.
    Per run: the value and score tables over the (seq-1)*vocab + 1 key rows (rows d^2 and
    rows d n_heads), the one query and its fold into W_K (2 d^2), and W_out W_U (d_mlp d vocab).
    Backward costs twice the forward; 2 FLOPs per MAC.
    """
    per_example = seq * d + d * d + d * d_mlp + d_mlp * vocab + d * vocab
    rows = (seq - 1) * vocab + 1
    per_run = rows * d * d + rows * d * n_heads + 2 * d * d + d_mlp * d * vocab
    return 2 * 3 * (n_train * per_example + per_run)


def sgemm_gflops(device: torch.device, n: int = 2048, reps: int = 10) -> float:
    """Achieved GFLOP/s of a large square fp32 matmul: the practical peak of this device."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=48,
                    help="the first N runs of configs/paper.toml, ordered by seed, weight decay "
                         "and train fraction (so that 4 runs hold one of each train fraction)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--plain-runs", type=int, default=None,
                    help="time the plain loop on fewer runs and scale (it is slow)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--dense-until", type=int, default=300,
                    help="grokcast logs every step below this (paper: 300); 0 times the regime "
                         "of the other 97%% of a 10,000-step sweep (a log row every 100 steps)")
    ap.add_argument("--workers", type=int, default=1,
                    help="grokcast side: chunks in this many processes of one thread each "
                         "(grokcast's sweep workers; above 1 --threads sets only the plain "
                         "loop's threads per worker); the plain loop gets threads x workers")
    ap.add_argument("--repeats", type=int, default=3,
                    help="time each side this many times, alternating, after one short "
                         "untimed warm-up of each; the medians are reported")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="grokcast side: operands of the matrix products (README, Precision); "
                         "the plain loop is always fp32")
    ap.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                    help="CUDA: launch the unlogged steps' kernels one by one instead of "
                         "replaying them as a recorded graph (grokcast's default)")
    ap.add_argument("--compile", dest="compiled", action="store_true",
                    help="grokcast side: the torch.compile build of the training step, compiled "
                         "(or loaded from inductor's on-disk cache) in each process's untimed "
                         "warm-up")
    ap.add_argument("--plain-layout", choices=["threads", "processes"], default="threads",
                    help="threads (default): the plain loop in this process with threads x "
                         "workers threads, one run after another; processes: its runs dealt "
                         "over --workers one-thread processes, as grokcast's sweep workers run "
                         "(needs --threads 1)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    for name in ("runs", "steps", "threads", "chunk_size", "workers", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)}: expected an integer >= 1")
    if args.dense_until < 0:
        ap.error(f"--dense-until {args.dense_until}: expected an integer >= 0")
    if args.plain_layout == "processes" and (args.device != "cpu" or args.threads != 1):
        ap.error("--plain-layout processes is for --device cpu --threads 1 (grokcast's sweep "
                 "workers run one thread each)")
    if args.workers > 1 and args.device != "cpu":
        ap.error(f"--workers {args.workers} is for --device cpu (a sweep trains in-process on a GPU)")

    tune_allocator()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    grid = SweepConfig.from_file(ROOT / "configs" / "paper.toml")
    raw = {**grid.to_dict(), "n_steps": args.steps,
           "model": {**grid.to_dict()["model"], "precision": args.precision},
           "log": {"dense_until": args.dense_until, "every": 100}}
    # The grid interleaved, so that a prefix of runs covers every train fraction.
    runs = sorted(SweepConfig.from_dict(raw).runs(), key=lambda r: (r.seed, r.weight_decay, r.train_frac))
    runs = runs[: args.runs]
    n_plain = len(runs) if args.plain_runs is None else args.plain_runs
    n_fracs = len({r.train_frac for r in runs})
    if not 1 <= n_plain <= len(runs) or n_plain % n_fracs:
        # A prefix of another length over-weights the cheap small train fractions, and the
        # plain loop's scaled time would come out short.
        ap.error(f"--plain-runs {n_plain}: expected a multiple of the {n_fracs} train fractions "
                 f"among the runs, at most --runs ({len(runs)})")
    if args.plain_layout == "processes" and n_plain % args.workers:
        ap.error(f"--plain-layout processes shares the plain loop's {n_plain} runs evenly over "
                 f"{args.workers} processes: give --plain-runs a multiple of --workers")

    # The plain loop, and the matmul peak, get every thread the grokcast side used:
    # --workers 2 --threads 1 compares against a 2-thread plain loop on the same 2 cores (or,
    # --plain-layout processes, two one-thread plain loops).
    plain_threads = args.threads * (args.workers if args.plain_layout == "threads" else 1)
    plain_processes = args.workers if args.plain_layout == "processes" else 1
    warm_steps = min(args.steps, 20)
    warm = [dataclasses.replace(r, n_steps=warm_steps) for r in runs]
    # First calls in a process pay one-off costs (kernel selection, allocator growth) that a
    # long sweep never sees again; on this 2-core machine they halve a short plain loop's rate.
    # Worker processes, either side's, warm themselves up.
    if args.workers == 1:
        ensemble(warm, device, args.chunk_size, args.cuda_graphs, args.compiled)
    if plain_processes == 1:
        torch.set_num_threads(plain_threads)
        plain_loop(warm[:n_plain], warm_steps, device)
    t_ens_all, t_plain_all, worker_rss = [], [], 0
    for _ in range(args.repeats):
        torch.set_num_threads(args.threads)
        if args.workers > 1:
            t_ens, rss = ensemble_in_processes(runs, args.chunk_size, args.workers, warm_steps,
                                               args.compiled)
            worker_rss = max(worker_rss, rss)
        else:
            t_ens = ensemble(runs, device, args.chunk_size, args.cuda_graphs, args.compiled)
        t_ens_all.append(t_ens)
        torch.set_num_threads(plain_threads)
        if args.plain_layout == "processes":
            t_plain = plain_in_processes(runs[:n_plain], args.steps, args.workers,
                                         min(args.steps, 20))
        else:
            t_plain = plain_loop(runs[:n_plain], args.steps, device)
        t_plain_all.append(t_plain * len(runs) / n_plain)
    t_ens, t_plain = statistics.median(t_ens_all), statistics.median(t_plain_all)
    run_steps = len(runs) * args.steps
    flops = sum(flops_per_run_step(n_train_examples(r.p, r.train_frac)) for r in runs) * args.steps
    torch.set_num_threads(args.threads * args.workers)  # the peak of every thread used
    peak = sgemm_gflops(device)
    # grokcast's: its largest worker's peak RSS, or (in-process) this process's, which also
    # ran the plain loop; on a GPU the most memory torch allocated there.
    peak_mib = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                else worker_rss or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else f"{platform.processor() or platform.machine()} cpu",
        "precision": args.precision, "compiled": args.compiled, "threads": args.threads,
        "workers": args.workers,
        "cuda_graphs": args.cuda_graphs and device.type == "cuda",
        "plain_layout": args.plain_layout, "plain_processes": plain_processes,
        "plain_threads": plain_threads, "runs": len(runs), "repeats": args.repeats,
        "steps": args.steps, "dense_until": args.dense_until,
        "plain_runs_timed": n_plain,
        "plain_run_steps_per_s": run_steps / t_plain,
        "ensemble_run_steps_per_s": run_steps / t_ens,
        "ensemble_ms_per_run_step": 1e3 * t_ens / run_steps,
        "speedup": t_plain / t_ens,
        # Each repeat's plain-over-grokcast ratio, the two timed back to back: the machine's
        # drift over minutes moves both sides of a pair alike, less so the medians above.
        "speedup_paired": sorted(p / e for p, e in zip(t_plain_all, t_ens_all)),
        "plain_seconds": t_plain_all, "ensemble_seconds": t_ens_all,
        "ensemble_gflops": flops / t_ens / 1e9,
        "sgemm_gflops_measured_peak": peak,
        "peak_memory_mib": peak_mib,
        "torch": torch.__version__,
    }
    for key, value in result.items():
        if key in ("plain_seconds", "ensemble_seconds"):
            continue  # in --json only
        if isinstance(value, list):
            value = ", ".join(f"{v:.4g}" for v in value)
        print(f"{key:>26}: {value:.4g}" if isinstance(value, float) else f"{key:>26}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
