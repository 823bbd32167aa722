"""One command from a sweep config to the paper: sweep, analysis, figures, PDF.

Layout of the output directory::

    OUT/sweep/          the sweep directory (resumable: a rerun trains only unfinished runs)
    OUT/results/        analysis.json, features/curves Parquet, table1-3 .md/.tex
    OUT/results/figures the six figures, PNG and PDF, and figures.json (what they show)
    OUT/paper.pdf       the paper; OUT/paper-src/ its Typst source, OUT/table*.md/.tex copies
    OUT/timings.json    wall time of each stage of this call (docs/file-formats.md); removed
                        when a call starts, so that a failed call leaves none

With early stopping, also::

    OUT/forecaster.json     the forecaster fit on OUT/sweep (W = 200, threshold 0.9)
    OUT/heldout-sweep/      the same grid with unseen seeds
    OUT/results/early_stop/ the early-stopping study on the held-out runs
                            (grokcast.early_stop.run_study); the paper gets a section
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grokcast.config import SweepConfig
from grokcast.validation import check_bool, check_int

STAGES = ("sweep", "analysis", "figures", "paper")
# Run orders the paper's analysis scores the forecaster in: enough for its spread and median
# (the paper sweep's analysis takes ~55 s with them on 2 cores instead of ~3 s; above 200
# runs, where each order is a 10-fold CV, about 21 times the analysis without them).
ORDERS = 20
EARLY_STOP_STAGE = "early_stopping"
FORECAST_WINDOW = 200  # the paper's headline window
FORECAST_THRESHOLD = 0.9  # and its primary label


@dataclass(frozen=True)
class ReproduceResult:
    """Where :func:`reproduce` put things and how long each stage took (seconds)."""

    paper: Path
    results_dir: Path
    sweep_dir: Path
    timings: dict[str, float] = field(default_factory=dict)


def heldout_config(config: SweepConfig) -> SweepConfig:
    """The same sweep with unseen seeds: ``max(seeds) + 1, ...``, as many as ``config`` has.

    The early-stopping study scores the forecaster on runs it was not fit on.
    """
    first = max(config.seeds) + 1
    raw = config.to_dict()
    raw.update(name=f"{config.name}-heldout",
               seeds=[first + k for k in range(len(config.seeds))])
    return SweepConfig.from_dict(raw)


class _Stages:
    """Prints one line per stage and records its wall time."""

    def __init__(self, names: tuple[str, ...], progress: bool) -> None:
        self.names = names
        self.progress = progress
        self.timings: dict[str, float] = {}

    def say(self, text: str) -> None:
        if self.progress:
            print(text, file=sys.stderr, flush=True)

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        k = self.names.index(name) + 1
        self.say(f"[{k}/{len(self.names)}] {name}{': ' + detail if detail else ''}")
        t0 = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - t0
        self.say(f"      {name} done in {self.timings[name]:.1f} s")


def stage_names(with_early_stopping: bool) -> tuple[str, ...]:
    """The stages in the order they run: early stopping, when asked for, before the paper,
    which gets a section from it."""
    return STAGES[:-1] + ((EARLY_STOP_STAGE,) if with_early_stopping else ()) + STAGES[-1:]


def format_timings(timings: dict[str, float]) -> str:
    """The per-stage wall times as an aligned block of text."""
    names = [*stage_names(True), "total"]
    width = max(len(n) for n in names)
    return "\n".join(f"{n:<{width}}  {timings[n]:8.1f} s" for n in names if n in timings)


def reproduce(config_path: str | os.PathLike, out_dir: str | os.PathLike, *, device: str = "auto",
              workers: int | str = 1, with_early_stopping: bool = False,
              orders: int = ORDERS, progress: bool = True) -> ReproduceResult:
    """Run the whole study: sweep -> analysis -> figures -> paper.

    Parameters
    ----------
    config_path : sweep config (.toml or .json), e.g. ``configs/paper.toml``
    out_dir : output directory; an interrupted run resumes its sweep here
    device : ``auto``, ``cpu`` or ``cuda[:N]``, for training
    workers : CPU training processes, or ``"auto"`` (:func:`grokcast.sweep.run_sweep`)
    with_early_stopping : also run the early-stopping study: fit the forecaster on the sweep
        (W = 200, threshold 0.9), train the same grid with unseen seeds
        (:func:`heldout_config`; this doubles the training time) and score how much compute
        stopping at W would save there (:func:`grokcast.early_stop.run_study`)
    orders : random orders of the runs in which the analysis also scores the forecaster
        (:func:`grokcast.analysis.analyze`'s ``orders``; the paper reports their spread)
    progress : print stage names, the sweep's progress bar and the timings

    Returns
    -------
    ReproduceResult; the timings are also written to ``out_dir/timings.json``.
    """
    from grokcast.analysis import DEFAULT_WINDOWS, MAX_ORDERS, analyze_sweep
    from grokcast.figures import make_figures
    from grokcast.paper import render_paper
    from grokcast.paper.render import import_typst
    from grokcast.store import atomic_write_bytes
    from grokcast.sweep import run_sweep
    from grokcast.train import resolve_device

    check_int("orders", orders, 0, MAX_ORDERS)  # now, not after training the sweep
    check_bool("progress", progress)
    # Refused, not read as truthy: "no" would train a second, held-out sweep.
    check_bool("with_early_stopping", with_early_stopping)
    resolve_device(device)  # now, not after the sweep stage's line is printed
    import_typst()  # now, not after the sweep has trained
    config = SweepConfig.from_file(config_path)
    config.check_trainable()  # now, not after the sweep stage's line is printed
    if config.n_steps < max(DEFAULT_WINDOWS):  # refused now, not after training the sweep
        raise ValueError(f"n_steps={config.n_steps} is not allowed for reproduce: the analysis "
                         f"reads windows of up to W={max(DEFAULT_WINDOWS)} steps; for shorter "
                         "runs use grokcast sweep, then grokcast analyze --windows")
    logged = config.log.steps(config.n_steps)
    thin = [(w, n) for w in DEFAULT_WINDOWS if (n := sum(t < w for t in logged)) < 2]
    if thin:  # also refused now: the features' slopes need two logged steps in every window
        w, n = thin[0]
        raise ValueError(f"log={config.log} is not allowed for reproduce: the analysis window "
                         f"W={w} would hold {n} logged step(s), and the slopes need 2; log every "
                         "step from the start (a larger log.dense_until) or more often (a smaller "
                         "log.every)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():  # named as given, not as the derived OUT/sweep
        raise FileExistsError(17, "File exists", str(out))
    sweep_dir, results_dir = out / "sweep", out / "results"
    _check_output_paths(out, with_early_stopping)
    if with_early_stopping:  # refused now, not once the sweep, analysis and figures are done
        _check_heldout_dir(heldout_config(config), out / "heldout-sweep")
    # An earlier call's record would otherwise outlive a call that fails, read as this one's.
    (out / "timings.json").unlink(missing_ok=True)
    stages = _Stages(stage_names(with_early_stopping), progress)
    t_start = time.perf_counter()
    info: dict[str, Any] = {}

    with stages.stage("sweep", f"{config.name}, {len(config.runs())} runs x "
                      f"{config.n_steps} steps -> {sweep_dir}"):
        swept = run_sweep(config, sweep_dir, device=device, workers=workers, progress=progress)
        info.update(n_trained=swept.n_trained, n_skipped=swept.n_skipped)
    with stages.stage("analysis", str(results_dir)):
        analyze_sweep(sweep_dir, results_dir, orders=orders, progress=progress)
    with stages.stage("figures", str(results_dir / "figures")):
        make_figures(results_dir, results_dir / "figures")
    if with_early_stopping:  # before the paper, which gets a section from it
        with stages.stage(EARLY_STOP_STAGE, str(results_dir / "early_stop")):
            info["early_stopping"] = _early_stopping_study(config, out, device, workers,
                                                           progress)
    with stages.stage("paper", str(out / "paper.pdf")):
        # Only with the study of this call: an earlier call's early_stop/ stays in results/,
        # and without the flag it gave the paper a section, or (its sweep since replaced)
        # failed this last stage.
        paper = render_paper(results_dir, out, early_stop=with_early_stopping)
    timings = {**stages.timings, "total": time.perf_counter() - t_start}
    record = {"config": str(config_path), "device": device,
              "with_early_stopping": with_early_stopping, **info,
              "seconds": {k: round(v, 3) for k, v in timings.items()}}
    atomic_write_bytes(out / "timings.json", (json.dumps(record, indent=1) + "\n").encode())
    stages.say(format_timings(timings))  # the paper's path is the caller's to print
    return ReproduceResult(paper=paper, results_dir=results_dir, sweep_dir=sweep_dir,
                           timings=timings)


def output_layout(out: Path, with_early_stopping: bool) -> tuple[list[Path], list[Path]]:
    """The directories and the files :func:`reproduce`'s stages write under ``out``.

    Returns
    -------
    (directories, files), each a list of paths under ``out``: the sweeps' own (``log/``,
    ``runs/``, ``sweep.json``, ``.lock``), ``results/`` and ``results/figures/`` with every
    file in them, ``paper-src/`` with its template, ``context.json`` and ``figures/``,
    ``paper.pdf``, ``timings.json`` and the table copies; with early stopping also
    ``heldout-sweep/``, ``forecaster.json`` and ``results/early_stop/``'s files.
    """
    from grokcast.figures import FIGURE_NAMES, MANIFEST, figure_files
    from grokcast.paper.context import EARLY_STOP_DIR
    from grokcast.paper.render import template_files
    from grokcast.store import LOCK_NAME

    results, src = out / "results", out / "paper-src"
    study = results / EARLY_STOP_DIR
    tables = [f"table{k}.{ext}" for k in (1, 2, 3) for ext in ("md", "tex")]
    sweeps = [out / "sweep", *((out / "heldout-sweep",) if with_early_stopping else ())]
    dirs = [*sweeps, *(s / sub for s in sweeps for sub in ("log", "runs")),
            results, results / "figures", src, src / "figures",
            *((study,) if with_early_stopping else ())]
    files = [*(s / name for s in sweeps for name in ("sweep.json", LOCK_NAME)),
             *(results / name for name in ("analysis.json", "features.parquet", "curves.parquet",
                                           *tables)),
             *(results / "figures" / name for name in (*figure_files(), MANIFEST)),
             *(src / tpl.name for tpl in template_files()), src / "context.json",
             # early_stop.pdf too: a render without the study removes an earlier one's copy
             *(src / "figures" / f"{name}.pdf" for name in (*FIGURE_NAMES, "early_stop")),
             out / "paper.pdf", out / "timings.json", *(out / name for name in tables)]
    if with_early_stopping:
        files += [out / "forecaster.json",
                  *(study / f"early_stop.{ext}" for ext in ("json", "md", "png", "pdf"))]
    return dirs, files


def _check_output_paths(out: Path, with_early_stopping: bool) -> None:
    """Refuse, before the first stage, an output some stage could not write
    (:func:`output_layout`): a file where a directory goes (``results/``,
    ``results/figures/``, ``paper-src/``, ...), or a directory where a file goes
    (``paper.pdf``, ``results/analysis.json``, a figure, ...). Each stage refused it only
    when it came to it, most after the sweep had trained."""
    dirs, files = output_layout(out, with_early_stopping)
    for path in dirs:
        if path.exists() and not path.is_dir():
            raise FileExistsError(errno.EEXIST, "File exists", str(path))
    for path in files:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory, where reproduce writes a file: "
                                    "remove it, or use a new output directory", str(path))


def _check_heldout_dir(held: SweepConfig, heldout_dir: Path) -> None:
    """Refuse a held-out sweep directory that holds another config's runs (an earlier call's,
    whose sweep/ was since deleted to change the config): the study's sweep refused it only
    after every stage before it, with a hint to resume it on its own."""
    from grokcast.store import StoreError, SweepStore, config_diff

    store = SweepStore(heldout_dir)
    if not store.config_path.is_file():  # not begun: the study's sweep starts it
        return
    existing = store.read_config()
    if existing != held:
        raise StoreError(f"{str(heldout_dir)!r} holds the held-out sweep of another config than "
                         f"this one's ({config_diff(existing, held)}): an earlier reproduce "
                         "with early stopping trained it; remove it, or use a new output "
                         "directory")


def _early_stopping_study(config: SweepConfig, out: Path, device: str, workers: int | str,
                          progress: bool) -> dict[str, Any]:
    """Fit on OUT/sweep, train the held-out seeds, run the study; returns what was trained."""
    from grokcast.early_stop import run_study
    from grokcast.sweep import run_sweep
    from grokcast.tool import fit_forecaster

    try:
        fit_forecaster(out / "sweep", window=FORECAST_WINDOW, threshold=FORECAST_THRESHOLD,
                       out=out / "forecaster.json")
    except ValueError as err:  # said as reproduce's, whose caller set no threshold or window
        raise ValueError(f"the early-stopping study (with_early_stopping) fits the forecaster on "
                         f"{str(out / 'sweep')!r} at W={FORECAST_WINDOW} with the label threshold "
                         f"{FORECAST_THRESHOLD:g}, which failed: {err}; without the study, "
                         "reproduce renders the paper alone") from None
    held = run_sweep(heldout_config(config), out / "heldout-sweep", device=device,
                     workers=workers, progress=progress)
    run_study(out / "forecaster.json", out / "heldout-sweep", out / "results" / "early_stop")
    return {"heldout_trained": held.n_trained, "heldout_skipped": held.n_skipped}
