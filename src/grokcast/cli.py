"""Command line: parses arguments and delegates; no logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from grokcast import __version__

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # as a process killed by SIGPIPE


def cmd_sweep(args: argparse.Namespace) -> None:
    import dataclasses

    from grokcast.config import SweepConfig
    from grokcast.sweep import run_sweep

    config = SweepConfig.from_file(args.config)
    if args.steps is not None:
        config = dataclasses.replace(config, n_steps=args.steps)  # validated like the file
    stop = None
    if args.stop_model is not None or args.stop_below is not None:
        if args.stop_model is None or args.stop_below is None:
            given, needs = (("--stop-model", "--stop-below P (stop the runs whose P(grok) at W is "
                             "below P, a number in [0, 1])") if args.stop_below is None else
                            ("--stop-below", "--stop-model FILE (a forecaster file from grokcast fit)"))
            raise ValueError(f"{given} needs {needs}: --stop-model and --stop-below go together")
        from grokcast.early_stop import stop_rule

        stop = stop_rule(args.stop_model, args.stop_below, config)
    if args.executor != "ray" and args.address is not None:
        raise ValueError("--address is for --executor ray")
    if args.executor == "ray" and args.workers is not None:
        raise ValueError("--workers is for the local executor; Ray places one chunk per task")
    if args.executor == "ray" and not args.cuda_graphs:
        raise ValueError("--no-cuda-graphs is for the local executor")
    if args.executor == "ray":
        try:
            from grokcast.integrations.ray import run_sweep_ray
        except ImportError as err:
            raise ValueError(f"--executor ray needs Ray: pip install 'grokcast[ray]' ({err})") from None
        result = run_sweep_ray(config, args.out, address=args.address, device=args.device,
                               chunk_size=args.chunk_size, progress=not args.quiet, stop=stop,
                               compiled=args.compile)
    else:
        result = run_sweep(config, args.out, device=args.device, chunk_size=args.chunk_size,
                           workers=args.workers or "auto", progress=not args.quiet, stop=stop,
                           cuda_graphs=args.cuda_graphs, compiled=args.compile)
    print(f"trained {result.n_trained} runs ({result.n_skipped} already finished) "
          f"in {result.seconds:.1f} s -> {args.out}")
    if stop is not None:
        from grokcast.store import SweepStore

        status = SweepStore(args.out).runs()["status"]
        print(f"{int((status == 'stopped').sum())} of the sweep's {len(status)} runs were stopped "
              f"early by the forecaster (status 'stopped'; NaN log rows after their stop)")


@contextmanager
def _naming_the_window_option(hint: str, applies: bool = True) -> Iterator[None]:
    """Add ``hint`` (the option that sets W) to a window-past-the-log error, where ``applies``."""
    try:
        yield
    except ValueError as err:
        if not applies or "goes beyond the logged steps" not in str(err):
            raise
        raise ValueError(f"{err}; {hint}") from None


def cmd_analyze(args: argparse.Namespace) -> None:
    from grokcast.analysis import analyze_sweep, format_table1

    kwargs = {} if args.windows is None else {"windows": tuple(args.windows)}
    # A short sweep and the default windows: the error names the option that sets them.
    with _naming_the_window_option("set the windows with --windows", args.windows is None):
        result = analyze_sweep(args.sweep_dir, args.out, n_resamples=args.resamples, seed=args.seed,
                               orders=args.orders, partial=args.partial,
                               progress=not args.quiet, **kwargs)
    if args.json:  # what analysis.json holds
        print(json.dumps(dict(result), indent=1, allow_nan=False))
        return
    print(format_table1(result))
    seconds = result["timing"]["analysis_seconds"]
    print(f"\nanalysis took {seconds:.1f} s -> {args.out or args.sweep_dir / 'analysis'}")


def cmd_fit(args: argparse.Namespace) -> None:
    from grokcast.tool import fit_forecaster, format_fit

    with _naming_the_window_option("set it with --window"):
        result = fit_forecaster(args.sweep_dir, window=args.window, threshold=args.threshold,
                                out=args.out, seed=args.seed, n_resamples=args.resamples,
                                partial=args.partial)
    print(json.dumps(result, indent=2) if args.json else format_fit(result))


def cmd_forecast(args: argparse.Namespace) -> None:
    from grokcast.tool import forecast_log, format_forecast

    result = forecast_log(args.model, args.log, top=args.top)
    print(json.dumps(result, indent=2) if args.json else format_forecast(result))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from grokcast.tool import evaluate_forecaster, format_evaluation

    result = evaluate_forecaster(args.model, args.sweep_dir, seed=args.seed,
                                 n_resamples=args.resamples, partial=args.partial)
    print(json.dumps(result, indent=2) if args.json else format_evaluation(result))


def cmd_figures(args: argparse.Namespace) -> None:
    from grokcast.figures import make_figures

    paths = make_figures(args.results_dir, args.out)
    print(f"wrote {len(paths)} files -> {paths[0].parent}")


def cmd_paper(args: argparse.Namespace) -> None:
    from grokcast.paper import render_paper

    print(f"wrote {render_paper(args.results_dir, args.out)}")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from grokcast.reproduce import reproduce
    from grokcast.sweep import tune_allocator

    if args.config == DEFAULT_CONFIG and not args.config.exists():
        raise ValueError(f"config file {str(args.config)!r} does not exist in {str(Path.cwd())!r}: "
                         "run from the repository root, or pass --config")
    tune_allocator()
    result = reproduce(args.config, args.out, device=args.device, workers=args.workers or "auto",
                       with_early_stopping=args.with_early_stopping, progress=not args.quiet,
                       **({} if args.orders is None else {"orders": args.orders}))
    print(f"paper: {result.paper}")  # on stdout with or without --quiet (progress: stderr)


def cmd_early_stop_study(args: argparse.Namespace) -> None:
    from grokcast.early_stop import format_summary, run_study

    recall = {} if args.min_recall is None else {"min_recall": args.min_recall}
    result = run_study(args.model, args.heldout_sweep, args.out, partial=args.partial,
                       threshold=args.threshold, **recall)
    print(json.dumps(result, indent=2) if args.json else format_summary(result))


def _partial_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--partial", action="store_true",
                   help="use an unfinished sweep's stored runs (refused otherwise)")


def _int_at_least(minimum: int, maximum: Callable[[], int] | None = None) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (and <= ``maximum()``, read when an option
    is parsed, so that the module holding the bound is not imported for every command)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        most = None if maximum is None else maximum()
        if value < minimum or (most is not None and value > most):
            allowed = f">= {minimum}" if most is None else f"in [{minimum}, {most}]"
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected an integer {allowed}")
        return value

    return parse


def _max_orders() -> int:
    from grokcast.analysis import MAX_ORDERS

    return MAX_ORDERS


def _max_resamples() -> int:
    from grokcast.stats import MAX_RESAMPLES

    return MAX_RESAMPLES


_positive_int, _nonnegative_int, _window_int = _int_at_least(1), _int_at_least(0), _int_at_least(2)
_orders, _resamples = _int_at_least(0, _max_orders), _int_at_least(1, _max_resamples)


def _fraction(text: str) -> float:
    """An argparse type: a number in [0, 1] (a P(grok) cut-off, a share of runs). Checked here
    so that the error names the option typed: early-stop-study's run_study calls its cut-off
    ``threshold``, which reads like the label threshold of fit and analyze."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected a number in [0, 1]")
    return value


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected an integer >= 1 "
                                         "or auto") from None


WORKERS_HELP = ("train this many chunks at once, each in its own single-threaded process (CPU only), "
                "at most one per core (2 allowed on one core); 1: in this process with all of "
                "torch's threads; auto (the default): one per core on the CPU, 1 on a GPU")
DEFAULT_CONFIG = Path("configs/paper.toml")


def _command(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` opens with the line ``grokcast --help`` lists for it."""
    return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grokcast", description="Forecast grokking from the first few hundred steps of training.")
    parser.add_argument("--version", action="version", version=f"grokcast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _command(sub, "sweep", "train a sweep of runs into a sweep directory (resumable)")
    p.add_argument("--config", required=True, type=Path, help="sweep config (.toml or .json)")
    p.add_argument("--out", required=True, type=Path, help="sweep directory to create or resume")
    p.add_argument("--device", default="auto",
                   help="auto | cpu | cuda[:N] (default: auto; --executor ray: auto | cpu | cuda)")
    p.add_argument("--chunk-size", type=_positive_int, default=None,
                   help="runs per ensemble (default: what fits in a quarter of the device's memory, "
                   "at most 16 on CPU, and at most ceil(runs / workers))")
    p.add_argument("--steps", type=_positive_int, default=None, help="override the config's n_steps (>= 1)")
    p.add_argument("--workers", type=_workers, default=None, help=WORKERS_HELP)
    p.add_argument("--stop-model", type=Path, default=None,
                   help="forecaster file from `grokcast fit`: at the last logged step below its "
                   "window W, stop the runs whose P(grok) is below --stop-below")
    p.add_argument("--stop-below", type=_fraction, default=None,
                   help="with --stop-model: stop runs whose P(grok) is below this (in [0, 1])")
    p.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                   help="on a GPU, launch the kernels of the steps that log nothing one by one "
                   "instead of replaying them as a recorded CUDA graph (slower; the same log)")
    p.add_argument("--compile", action="store_true",
                   help="train with torch.compile's build of the training step: faster on long "
                   "sweeps, after seconds of compiling per chunk shape (a C++ compiler on the CPU); "
                   "the logs differ from the default's in rounding")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local (default) or ray: ensemble chunks as Ray tasks (grokcast[ray])")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start Ray locally)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)

    p = _command(sub, "analyze", "features, AUROCs, LOO forecaster and Tables 1-3 of a sweep "
                 "(labels: max val acc >= 0.9, and >= 0.99 as the robustness check)")
    p.add_argument("sweep_dir", type=Path, help="a sweep directory written by `grokcast sweep`")
    p.add_argument("--out", type=Path, default=None, help="results directory (default: SWEEP_DIR/analysis)")
    p.add_argument("--windows", type=_window_int, nargs="+", default=None,
                   help="early windows W in steps (default: 100 200 300 500)")
    p.add_argument("--resamples", type=_resamples, default=2000,
                   help="bootstrap resamples (default: 2000)")
    p.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="seed of the bootstrap resamples and the run orders (default: 0)")
    p.add_argument("--orders", type=_orders, default=0, metavar="K",
                   help="also score the forecaster with the runs in K random orders, on which "
                        "its internal CV's folds depend (default 0; ~0.3 s per order and cell "
                        "at 48 runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help="print the analysis (analysis.json's content) instead of Table 1")
    _partial_flag(p)
    p.set_defaults(func=cmd_analyze)

    p = _command(sub, "fit", "fit a forecaster on a sweep and save it as JSON")
    p.add_argument("sweep_dir", type=Path, help="a sweep directory written by `grokcast sweep`")
    p.add_argument("--window", type=_window_int, default=200,
                   help="early window W in steps (default: 200)")
    p.add_argument("--threshold", type=float, default=0.9,
                   help="grokking label: max val acc >= this (default: 0.9)")
    p.add_argument("--out", type=Path, required=True, help="forecaster file to write (.json)")
    p.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="seed of the held-out evaluation: its bootstrap resamples, and its "
                        "10-fold split above 200 runs (LOO below); the fitted forecaster does "
                        "not depend on it (default: 0)")
    p.add_argument("--resamples", type=_resamples, default=2000,
                   help="bootstrap resamples of the held-out AUROC's CI (default: 2000)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _partial_flag(p)
    p.set_defaults(func=cmd_fit)

    p = _command(sub, "forecast", "P(grok) of each run of an early log (CSV or Parquet) or "
                 "sweep directory")
    p.add_argument("log", type=Path, help="a .csv or .parquet log of one or more runs with the "
                   "sweep log's column names, or a sweep directory (every run of it)")
    p.add_argument("--model", type=Path, required=True, help="forecaster file from `grokcast fit`")
    p.add_argument("--top", type=_nonnegative_int, default=3, metavar="N",
                   help="features to list each way, by contribution to the log-odds (default 3; "
                        "28 lists them all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_forecast)

    p = _command(sub, "evaluate", "AUROC of a saved forecaster on another sweep (held out)")
    p.add_argument("sweep_dir", type=Path, help="a sweep the forecaster was not fitted on")
    p.add_argument("--model", type=Path, required=True, help="forecaster file from `grokcast fit`")
    p.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="seed of the bootstrap resamples (default: 0)")
    p.add_argument("--resamples", type=_resamples, default=2000,
                   help="bootstrap resamples of the AUROCs' CIs (default: 2000)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _partial_flag(p)
    p.set_defaults(func=cmd_evaluate)

    p = _command(sub, "figures", "the six figures (PNG and PDF) from a results directory")
    p.add_argument("results_dir", type=Path, help="output of `grokcast analyze`")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for the figures (default: RESULTS_DIR/figures)")
    p.set_defaults(func=cmd_figures)

    p = _command(sub, "paper", "render the paper (PDF) from a results directory")
    p.add_argument("results_dir", type=Path, help="output of `grokcast analyze`")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for paper.pdf, its source and the tables (default: RESULTS_DIR)")
    p.set_defaults(func=cmd_paper)

    p = _command(sub, "reproduce", "sweep -> analyze -> figures -> paper, resumable")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help="sweep config (default: configs/paper.toml, from the current directory: "
                        "the repository root)")
    p.add_argument("--out", type=Path, required=True,
                   help="output directory: sweep/, results/, paper.pdf (resumable)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto)")
    p.add_argument("--workers", type=_workers, default=None, help=WORKERS_HELP)
    p.add_argument("--orders", type=_orders, default=None, metavar="K",
                   help="random run orders the analysis also scores the forecaster in, for the "
                        "paper (default 20, grokcast.reproduce.ORDERS; see grokcast analyze "
                        "--orders)")
    p.add_argument("--with-early-stopping", action="store_true",
                   help="also fit the forecaster, train unseen seeds and run the early-stop study")
    p.add_argument("--quiet", action="store_true", help="no stage lines or progress bar")
    p.set_defaults(func=cmd_reproduce)

    p = _command(sub, "early-stop-study",
                 "on a held-out sweep, the training steps saved and the grokking runs kept by "
                 "stopping at W: the forecaster against ASHA-style halving and median stopping")
    p.add_argument("heldout_sweep", type=Path, help="a sweep the forecaster was not fitted on")
    p.add_argument("--model", type=Path, required=True, help="forecaster file from `grokcast fit`")
    p.add_argument("--out", type=Path, required=True,
                   help="directory for early_stop.json, its table (early_stop.md) and figure")
    # --stop-below as `grokcast sweep` names the same cut-off; --threshold, its first name here,
    # reads like fit's and analyze's label threshold (a review passed 0.9 meaning the label).
    p.add_argument("--stop-below", "--threshold", dest="threshold", type=_fraction, default=None,
                   metavar="TAU",
                   help="a P(grok) threshold fixed in advance, reported as the forecaster's "
                        "point; not the label threshold, which the forecaster file records "
                        "(default: the largest τ keeping --min-recall of the "
                        "forecaster's training grokkers by their held-out P(grok), which the "
                        "file records; an older file's τ is chosen on these runs' outcomes: "
                        "optimistic)")
    p.add_argument("--min-recall", type=_fraction, default=None,
                   help="share of grokking runs a chosen τ keeps: of the forecaster's training "
                        "runs for the summary's τ, of these runs for the τ chosen on their "
                        "outcomes that is printed for comparison (default: 0.9, "
                        "grokcast.early_stop.MIN_RECALL)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _partial_flag(p)
    p.set_defaults(func=cmd_early_stop_study)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then handled below
        return code
    except BrokenPipeError:
        if not _stdout_closed_by_reader():  # another pipe (a worker's): an error of ours
            raise
        # The reader stopped reading (`grokcast forecast ... --json | head`): no error message,
        # and the exit status of a Unix tool killed by SIGPIPE. Standard output now goes
        # nowhere, so the interpreter's last flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:  # before the command started: in its imports (torch's take seconds)
        print("grokcast: interrupted", file=sys.stderr)
        return 130


def _stdout_closed_by_reader() -> bool:
    """Whether standard output is a pipe whose reading end is closed (poll says POLLERR)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll, or not a file descriptor
        return False


def _stored_runs(args: argparse.Namespace) -> str:
    """``: 12 of 48 runs are stored; the same command resumes`` after a sweep's Ctrl-C; for
    reproduce, per sweep directory it has begun (with early stopping, a held-out one too)."""
    if args.command not in ("sweep", "reproduce"):
        return ""
    from grokcast.store import StoreError, SweepStore

    roots = [args.out] if args.command == "sweep" else [args.out / "sweep", args.out / "heldout-sweep"]
    counts = []
    for root in roots:
        store = SweepStore(root)
        try:
            counts.append((root, len(store.finished_run_ids()), len(store.read_config().runs())))
        except (OSError, ValueError, StoreError):  # not begun, or before sweep.json was written
            continue
    if not counts:
        return ""
    if args.command == "sweep":
        return f": {counts[0][1]} of {counts[0][2]} runs are stored; the same command resumes"
    stored = ", ".join(f"{done} of {total} runs in {str(root)!r}" for root, done, total in counts)
    return f": stored {stored}; the same command resumes"


def _main(argv: list[str] | None) -> int:
    from grokcast.config import ConfigError
    from grokcast.store import StoreError

    typst_error: type[Exception]
    try:
        from typst import TypstError as typst_error
    except ImportError:  # typst is a dependency; this only guards odd installs
        typst_error = RuntimeError

    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], None] = args.func
    try:
        handler(args)
    except (ConfigError, StoreError, ValueError, OSError, typst_error) as err:
        if isinstance(err, BrokenPipeError) and _stdout_closed_by_reader():
            raise  # not an error of ours: main's to end quietly
        message = str(err)
        if isinstance(err, OSError) and err.filename is not None and err.strerror:
            # Not "[Errno 17] File exists: ...": the path(s), then what went wrong.
            both = f"{str(err.filename)!r}" + (f" -> {str(err.filename2)!r}" if err.filename2 else "")
            what = err.strerror.lower()
            if isinstance(err, FileExistsError) and not Path(err.filename).is_dir():
                what = "exists and is not a directory (an output directory was expected)"
            message = f"{both}: {what}"
        print(f"grokcast {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError as err:  # numpy's names the array it could not allocate
        print(f"grokcast {args.command}: error: out of memory ({str(err) or 'MemoryError'}): ask for "
              "less (fewer runs, resamples or workers)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"grokcast {args.command}: interrupted{_stored_runs(args)}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
