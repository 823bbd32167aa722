"""The forecaster as a tool: fit it on a sweep, forecast runs from their early logs.

The logic behind ``grokcast fit`` and ``grokcast forecast`` (the CLI only parses arguments):

* :func:`fit_forecaster` labels a sweep's runs (``max_val_acc >= threshold``), fits a
  :class:`~grokcast.forecast.GrokForecaster` on their window-W features, writes it as JSON
  with the sweep's hash, and reports its held-out AUROC computed exactly as
  :func:`grokcast.analysis.analyze` does (same predictions, same bootstrap resamples).
* :func:`forecast_log` reads a run's early log (Parquet or CSV with the sweep log's columns)
  and returns P(grok) with the features that pushed it up and down most.
* :func:`explain` splits a forecast's log-odds into per-feature contributions:
  ``coef_j * (x_j - mean_j) / scale_j``, which sum with the intercept to the log-odds.
"""

from __future__ import annotations

import json
import os
import string
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grokcast.config import SweepConfig
from grokcast.features import WINDOW_SIGNALS, feature_table, run_id_values, select_window_steps
from grokcast.forecast import GrokForecaster, check_window
from grokcast.logistic import TooFewRunsError
from grokcast.signals import SIGNAL_NAMES, reaches
from grokcast.stats import MAX_RESAMPLES, format_percent
from grokcast.validation import check_int, check_number, check_path, check_steps

TOP_COEFFICIENTS = 5  # how many of the fitted coefficients the fit report lists


class LogError(ValueError):
    """A log cannot be forecast: a column is missing, or it is too short, gappy or NaN."""


@cache
def read_signals() -> tuple[str, ...]:
    """The signals a log to forecast must hold: those the features read
    (:data:`grokcast.features.WINDOW_SIGNALS`) and those a window digest hashes
    (:data:`grokcast.analysis.DIGEST_SIGNALS`, to tell a training run), not every signal a
    sweep logs: a CSV written before a signal was added to the log
    (:data:`grokcast.signals.SIGNAL_NAMES`) forecasts until a feature reads it."""
    from grokcast.analysis import DIGEST_SIGNALS  # analysis (scipy) only once a log is read

    return tuple(dict.fromkeys((*WINDOW_SIGNALS, *DIGEST_SIGNALS)))


def read_columns() -> tuple[str, ...]:
    """``run_id``, ``step`` and :func:`read_signals`: the columns of a log that are read."""
    return ("run_id", "step", *read_signals())


# ----------------------------------------------------------------------------- fit

def fit_forecaster(sweep_dir: str | os.PathLike, *, window: int = 200, threshold: float = 0.9,
                   out: str | os.PathLike, seed: int = 0, n_resamples: int = 2000,
                   level: float = 0.95, partial: bool = False) -> dict[str, Any]:
    """Fit the paper's forecaster on every run of a sweep and save it as JSON.

    Parameters
    ----------
    sweep_dir : path
        A sweep directory (``grokcast sweep --out``).
    window : int, default=200
        W: features use each run's log rows with ``step < W``.
    threshold : float, default=0.9
        A run is labelled as grokking when its ``max_val_acc >= threshold``.
    out : path
        The forecaster file to write, named ``*.json`` (any case); its directory must exist.
    seed : int, default=0
        Root of the randomness of the held-out evaluation (bootstrap resamples, and the fold
        shuffle above :data:`grokcast.analysis.LOO_MAX_RUNS` runs), as in ``analyze``.
    n_resamples : int, default=2000
    level : float, default=0.95
        Bootstrap resamples and coverage of the AUROC's confidence interval.
    partial : bool, default=False
        Allow an unfinished sweep (:meth:`grokcast.store.SweepStore.check_finished`).

    Returns
    -------
    dict
        ``out``, ``sweep_dir``, ``sweep_hash``, ``window``, ``threshold``, ``n_runs`` (used to
        fit), ``n_pos``, ``n_diverged`` and ``n_stopped`` (left out), ``C``, ``cv`` (``"loo"``, or
        ``"K-fold"`` with the K used: 10 above 200 runs, fewer with a rarer class),
        ``heldout_auroc`` with ``heldout_ci`` ([lo, hi]), ``level``, ``n_resamples``, ``seed``,
        ``top_coefficients`` (``{"feature", "coef"}``, largest |coef| first) and ``notes``
        (warnings about a sweep too small for the numbers to mean much).

    Raises
    ------
    ValueError
        Bad arguments, a missing output directory, a window beyond the logged steps,
        non-finite features, or labels of a single class.
    StoreError
        ``sweep_dir`` is not a readable sweep directory.
    """
    # analysis holds the paper's evaluation; reuse it so `fit` and Table 1 report one number.
    from grokcast.analysis import (
        _cv_label,
        _default_predict,
        _rng,
        feature_matrix,
        runs_with_outcome,
        sweep_hash,
        window_digests,
    )
    from grokcast.stats import bootstrap_ci
    from grokcast.store import SweepStore

    window, threshold = _check_fit_args(window, threshold, seed, n_resamples)
    check_path("sweep_dir", sweep_dir, "a sweep directory (grokcast sweep --out)")
    check_path("out", out, "the forecaster file to write (.json)")
    store = SweepStore(sweep_dir)
    store.check_finished(partial=partial)  # first: a directory that is no sweep is named so
    out = _check_fit_out(Path(out), Path(sweep_dir))
    config = store.read_config()
    if window > config.n_steps:  # said as analyze says it, not as a forecast's log check would
        raise ValueError(f"window W={window} goes beyond the logged steps: the sweep's runs "
                         f"trained {config.n_steps} steps, so W can be at most {config.n_steps}")
    all_runs, log = store.runs(), store.log()
    runs, n_diverged, n_stopped = runs_with_outcome(all_runs)
    if len(runs) < 2:
        raise ValueError(f"{str(sweep_dir)!r} holds {len(runs)} run(s) with a known outcome "
                         f"({n_diverged} diverged, {n_stopped} stopped early); fitting needs at "
                         "least 2")
    run_ids = runs["run_id"].astype(str).to_numpy()
    log_used = log[log["run_id"].isin(set(run_ids))]
    check_log(log_used, window)  # the rule forecasts follow: a complete, finite window
    table = feature_matrix(log_used, run_ids, window)
    y = reaches(runs["max_val_acc"], threshold).astype(int)
    n_pos = int(y.sum())
    if n_pos in (0, len(y)):
        raise ValueError(
            f"threshold={threshold:g} is not allowed for this sweep: {n_pos} of {len(y)} runs "
            f"reach max_val_acc >= {threshold:g}, and the forecaster needs runs of both kinds "
            f"(max_val_acc ranges over [{runs['max_val_acc'].min():.3g}, "
            f"{runs['max_val_acc'].max():.3g}])")

    model = GrokForecaster()
    cv, predict = _default_predict(len(y))
    try:
        model.fit(table, y)
        heldout = predict(table.to_numpy(), y, _rng(seed, threshold, window, 1))
    except TooFewRunsError as err:  # say which runs it had: some may have been left out
        left = (f" ({n_diverged} diverged and {n_stopped} stopped early were left out)"
                if n_diverged or n_stopped else "")
        raise TooFewRunsError(f"too few runs to fit on: {len(y)} with a known outcome{left}, "
                              f"{n_pos} of them positive; {err}") from None
    ci = bootstrap_ci(y, heldout, rng=_rng(seed, threshold, window, 0),
                      n_resamples=n_resamples, level=level)
    digest = sweep_hash(all_runs, log)
    step = log_used["step"].to_numpy()
    steps_below = np.unique(step[step < window])
    model.save(out, window=window, threshold=threshold, sweep_hash=digest, n_train_runs=len(y),
               window_steps=steps_below.tolist(), task=config.task(),
               train_digests=window_digests(log_used, window).values(), label_steps=config.n_steps,
               train_heldout=(heldout, y))
    coef = model.coef_[0]
    order = np.argsort(-np.abs(coef), kind="stable")[:TOP_COEFFICIENTS]
    return {
        "out": str(out), "sweep_dir": str(sweep_dir), "sweep_hash": digest,
        "window": int(window), "threshold": float(threshold),
        "n_runs": len(y), "n_pos": n_pos, "n_diverged": n_diverged, "n_stopped": n_stopped,
        "C": float(model.C_), "cv": _cv_label(cv, y),
        "heldout_auroc": float(ci.estimate), "heldout_ci": [float(ci.lo), float(ci.hi)],
        "level": float(level), "n_resamples": int(n_resamples), "seed": int(seed),
        "top_coefficients": [{"feature": str(model.feature_names_in_[j]), "coef": float(coef[j])}
                             for j in order],
        "notes": _small_class_notes(min(n_pos, len(y) - n_pos), model.cv),
    }


def _check_fit_out(out: Path, sweep_dir: Path) -> Path:
    """Where `fit` may write: a new file, or a forecaster it replaces, outside the sweep."""
    if out.is_dir():
        raise ValueError(f"out={str(out)!r} is not allowed: it is a directory; expected the path "
                         "of the JSON file to write, e.g. forecaster.json")
    if not out.name.lower().endswith(".json"):  # any case: F.JSON is a JSON name too
        # The file is JSON whatever its name; a name saying otherwise (forecaster.csv, a
        # predictions table expected) or nothing (forecaster) misleads whoever opens it.
        raise ValueError(f"out={str(out)!r} is not allowed: the forecaster is saved as JSON; "
                         f"expected a path ending in .json, e.g. {str(_json_name(out))!r}")
    if not out.parent.is_dir():
        raise ValueError(f"out={str(out)!r} is not allowed: directory {str(out.parent)!r} "
                         "does not exist")
    if out.resolve().is_relative_to(sweep_dir.resolve()):
        raise ValueError(f"out={str(out)!r} is not allowed: it is inside the sweep directory "
                         f"{str(sweep_dir)!r}, whose files it could overwrite; write it elsewhere")
    if out.exists() and not _is_forecaster_file(out):
        raise ValueError(f"out={str(out)!r} is not allowed: the file exists and is not a "
                         "forecaster, so it is not overwritten; choose another path")
    return out


def _json_name(out: Path) -> Path:
    """A name ending in .json for the error refusing ``out``: trailing spaces and dots dropped
    (``x.json `` -> ``x.json``), then a last suffix after .json dropped (``x.json.bak`` ->
    ``x.json``; ``with_suffix`` gave ``x.json.json``) or replaced (``x.csv`` -> ``x.json``)."""
    name = out.name.rstrip(string.whitespace + ".")
    stem = os.path.splitext(name)[0]
    for candidate in (name, stem):
        if candidate.lower().endswith(".json"):
            return out.with_name(candidate)
    return out.with_name(f"{stem or 'forecaster'}.json")  # stem "": out was all dots


def _small_class_notes(n_minority: int, inner_folds: int) -> list[str]:
    """Warnings for a fit whose smaller class is too small for its numbers to mean much."""
    if n_minority < 2:
        return [f"only {n_minority} run of one class: holding it out leaves none of its class to "
                "learn from, so the held-out AUROC says nothing about the model"]
    if n_minority < inner_folds:
        return [f"only {n_minority} runs of one class: C is chosen on {inner_folds} internal "
                "folds, some of which lack that class"]
    return []


def _is_forecaster_file(path: Path) -> bool:
    """Whether ``path`` holds a JSON object with a forecaster's keys (what `fit` may replace)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict) and {"grokcast_version", "coef", "feature_names"} <= doc.keys()


def too_short_hint(best_acc: float, n_steps: int, label_steps: int | None = None) -> str:
    """What to try when no run of a sweep groks: a sweep shortened for a quick try often
    stops before any run does. ``label_steps``: the forecaster's training runs' length, where
    known; a sweep at least as long is not told to train as long."""
    best = f"its runs' best val acc is {best_acc:.3f} in {n_steps} steps"
    if label_steps is not None and n_steps >= label_steps:
        return f"{best}, as many as the forecaster's training runs had"
    return (f"{best}: grokking can take thousands of steps, so use a sweep trained as long as "
            "the forecaster's")


def _check_fit_args(window: Any, threshold: Any, seed: Any, n_resamples: Any,
                    ) -> tuple[int, float]:
    """The window and threshold as plain numbers (np.float32(0.9) as 0.9), once checked."""
    window = check_int("window", window, 2)
    threshold = check_number("threshold", threshold, 0, 1, closed="hi")
    check_int("seed", seed, 0)
    check_int("n_resamples", n_resamples, 1, MAX_RESAMPLES)
    return window, threshold


def _left_out(result: dict[str, Any]) -> str:
    """The runs without a known outcome that a fit or an evaluation left out, as a clause."""
    parts = [f"{result[k]} {what}" for k, what in (("n_diverged", "diverged"),
                                                     ("n_stopped", "stopped early"))
             if result.get(k)]
    return f"; left out: {' and '.join(parts)} (no known outcome)" if parts else ""


def format_fit(result: dict[str, Any]) -> str:
    """A human-readable report of :func:`fit_forecaster`'s result."""
    lo, hi = result["heldout_ci"]
    cv = "leave-one-out" if result["cv"] == "loo" else f"{result['cv']} cross-validated"
    lines = [
        f"fit on {result['n_runs']} runs of {result['sweep_dir']} "
        f"(sweep {result['sweep_hash'][:12]})"
        + _left_out(result),
        f"label: max val_acc >= {result['threshold']:g} ({result['n_pos']} of {result['n_runs']} "
        f"runs); features: steps 0..{result['window'] - 1} (W={result['window']})",
        f"{cv} AUROC {result['heldout_auroc']:.3f} [{lo:.3f}, {hi:.3f}] "
        f"({format_percent(result['level'])} bootstrap CI, {result['n_resamples']} resamples)",
        *(f"note: {note}" for note in result["notes"]),
        f"C = {result['C']:.4g}; largest coefficients (log-odds per standard deviation):",
        *(f"  {c['feature']:<20} {c['coef']:+.3g}" for c in result["top_coefficients"]),
        f"wrote {result['out']}",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- forecast

def sweep_dir_of(path: Path) -> Path | None:
    """The sweep directory ``path`` is, or whose ``log/`` it is; None for any other path."""
    return enclosing_sweep(path) if path.is_dir() else None


def enclosing_sweep(path: Path) -> Path | None:
    """The sweep directory ``path`` is, or whose ``log/`` it is or is in (a chunk file)."""
    candidates = [path, *([path.parent] if path.name == "log" else []),
                  *([path.parent.parent] if path.parent.name == "log" else [])]
    return next((d for d in candidates if (d / "sweep.json").is_file()), None)


def _check_run_ids_task(meta: Any, log_df: pd.DataFrame, where: str) -> None:
    """A log file records no task, but grokcast's run ids name p: a log whose run ids are all
    grokcast's is refused where any names another p than the forecaster's (a log holding an
    id of the user's own is the user's word)."""
    if meta.task is None:
        return
    from grokcast.config import RunConfig

    found = {RunConfig.p_of_run_id(str(v)) for v in log_df["run_id"].unique()}
    ps = sorted(p for p in found if p is not None)
    if not ps or len(ps) < len(found):  # no id, or one not grokcast's
        return
    if ps != [meta.task["p"]]:
        raise LogError(f"{where} holds runs of another task than the forecaster was fit on: its "
                       f"run ids name p={', '.join(map(str, ps))} (the forecaster's: p="
                       f"{meta.task['p']}); fit a forecaster on a sweep of this task")


def _unforecastable(sweep: Path, forecaster: Any, log_df: pd.DataFrame, window: int,
                    ) -> dict[str, str]:
    """The runs of a sweep that have no forecast, by run_id, with their status: those that
    diverged or were stopped before the steps ``forecaster`` reads were all logged, finite. A
    run that diverged later is forecast; a finished run cannot lack them (a suspect log)."""
    from grokcast.store import SweepStore

    status = SweepStore(sweep).runs().set_index("run_id")["status"]
    ids = status.index[(status != "finished") & status.index.isin(log_df["run_id"])]  # a chunk's
    unfinished = log_df[log_df["run_id"].isin(ids)]
    rows_of = dict(tuple(unfinished.groupby("run_id", sort=False)))  # one pass, not one per run
    out = {}
    for run_id in ids:
        try:  # the steps read, finite, and the update after the last (what forecast_frame needs)
            window_features(forecaster, rows_of.get(run_id, unfinished.iloc[:0]), window)
        except ValueError:  # LogError too
            out[str(run_id)] = str(status[run_id])
    return out


def read_log(path: str | os.PathLike) -> pd.DataFrame:
    """Read a log file: ``.csv``, or ``.parquet`` / ``.pq`` (a file or a dataset directory).

    A sweep directory, or its ``log/``, is read through :class:`grokcast.store.SweepStore`:
    only finished chunks, each checked.
    """
    from grokcast.store import SweepStore

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"log {str(path)!r} does not exist")
    sweep = sweep_dir_of(path)
    if sweep is not None:
        store = SweepStore(sweep)
        store.verify()
        return store.log()
    runs_dir = path if path.name == "runs" else path.parent
    if runs_dir.name == "runs" and (runs_dir.parent / "sweep.json").is_file():
        raise LogError(f"{str(path)!r} is a sweep's runs table (one row per run), not its log: pass "
                       "the sweep directory, or its log/")
    if path.is_dir() and (path / "log").is_dir() and (path / "runs").is_dir():
        # read_parquet would take runs/ and log/ as one dataset and fail on a column of NaNs.
        raise LogError(f"{SweepStore(path).missing_config_error()}; or pass its log/ to read the "
                       "log alone")
    suffix = path.suffix.lower()
    if path.is_dir() and not any(path.rglob("*.parquet")):
        raise LogError(f"log {str(path)!r} is a directory without .parquet files: expected a .csv "
                       "or .parquet file, or a Parquet dataset directory")
    try:
        if suffix == ".csv":  # run ids as written: "007" is not run 7, nor "1e3" run 1000.0
            return pd.read_csv(path, dtype={"run_id": str})
        if suffix in (".parquet", ".pq") or path.is_dir():
            return pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow and the CSV parser raise subclasses of these
        what = " as a Parquet dataset (a directory like a sweep's log/)" if path.is_dir() else ""
        raise LogError(f"log {str(path)!r} is unreadable{what}: {err}") from None
    raise LogError(f"log {str(path)!r} is not allowed: expected a .csv or .parquet file")


def check_log(log_df: pd.DataFrame, window: int) -> None:
    """Raise :class:`LogError` unless every run's log covers the window completely.

    A run's log must have the columns :func:`read_columns`, distinct steps starting at 0, a row
    at step W - 1 or later (a log that ends sooner cannot be told from a run cut short, whatever
    its schedule), and finite values on its rows below W (``update_cos`` at step 0 aside).
    ``update_norm`` of step W - 1 is only known after step W, so a log that stops at W - 1
    without it is too short. Whether the steps the forecaster reads are all there is
    :func:`window_log`'s check; :func:`checked_window` checks the values of those steps only.
    """
    log_df = _check_shape(log_df, window, window - 1)
    _check_values(log_df, window, _last_steps(log_df))


def checked_window(forecaster: Any, log_df: pd.DataFrame, window: int, *,
                   finite: bool = True, last_row: int | None = None) -> pd.DataFrame:
    """The rows of each run that ``forecaster`` reads (:func:`window_log`), checked as by
    :func:`check_log`: its shape on the whole log, its values on the rows read. A row at a step
    the forecaster does not read is ignored, whatever values it holds. ``finite=False``
    lets NaN and inf through (a run diverging in the window, whose features a tuner reads as
    NaN and stops); values no run can log (an accuracy of 3.79) are refused either way.
    ``last_row``: see :func:`window_features`; the log must reach it instead of W - 1."""
    window = check_window(window, forecaster, minimum=2)
    log_df = _check_shape(log_df, window, window - 1 if last_row is None else last_row)
    cut = window_log(forecaster, log_df, window)
    _check_values(cut, window, _last_steps(log_df), finite=finite)
    return cut


def _last_steps(log_df: pd.DataFrame) -> pd.Series:
    """Each run's last logged step, by run_id (of a log whose shape is checked: int steps)."""
    return log_df.groupby("run_id")["step"].max()


def _check_shape(log_df: pd.DataFrame, window: int, reach: int) -> pd.DataFrame:
    """:func:`check_log`'s checks of the columns, run ids and steps, every run's log reaching
    step ``reach`` (W - 1 but where the caller knows its schedule); the log with its steps as
    int64 (they may come as floats, text, or a pyarrow-backed column, which has no ``%``)."""
    missing = [c for c in read_columns() if c not in log_df.columns]
    if missing:
        # One column whose name holds the others: a CSV written with another separator.
        other = len(log_df.columns) == 1 and next(
            (sep for sep in (";", "\t", "|") if sep in str(log_df.columns[0])), None)
        hint = (f" (its one column's name holds {other!r}: a CSV must be comma-separated)" if other
                else _near_names_hint(log_df.columns, missing))
        raise LogError(f"the log lacks column(s) {', '.join(missing)}; a log needs the columns "
                       f"{', '.join(read_columns())}{hint}")
    if log_df.empty:
        raise LogError("the log holds no rows")
    no_id = log_df["run_id"].isna() | (log_df["run_id"].astype(str).str.strip() == "")
    if no_id.any():
        raise LogError(f"column run_id is empty on {int(no_id.sum())} row(s), the first at step "
                       f"{log_df['step'][no_id].iloc[0]}: every row names its run")
    step = pd.Series(check_steps(log_df["step"], error=LogError), index=log_df.index)
    log_df = log_df.assign(step=step)
    dup = log_df.duplicated(["run_id", "step"])
    if dup.any():
        row = log_df[dup].iloc[0]
        raise LogError(f"run {row['run_id']!r} logs step {int(row['step'])} twice")
    span = step.groupby(run_id_values(log_df["run_id"]), sort=True).agg(["min", "max"])
    late = span[span["min"] != 0]
    if len(late):
        raise LogError(f"the log of run {late.index[0]!r} starts at step "
                       f"{int(late['min'].iloc[0])}: it must start at step 0")
    short = span[span["max"] < reach]
    if len(short):
        more = f" (and {len(short) - 1} other run(s))" if len(short) > 1 else ""
        raise LogError(f"the log of run {short.index[0]!r}{more} ends at step "
                       f"{int(short['max'].iloc[0])}, but a forecast with the window W={window} "
                       f"needs a log that reaches step {reach}")
    return log_df


def _near_names_hint(columns: Any, missing: list[str]) -> str:
    """The log's columns that are missing ones but for spaces or capitals (a CSV written with
    ", " between fields, or by hand): the error would otherwise name as missing a column the
    file visibly holds."""
    near = [c for c in columns if isinstance(c, str) and c not in read_columns()
            and c.strip().lower() in missing]
    if not near:
        return ""
    return (f" (it has {', '.join(map(repr, near))}: column names must match exactly, "
            "without spaces or capitals)")


def _zero_update_before(inside: pd.DataFrame, values: np.ndarray, i: int) -> bool:
    """Whether row ``i``'s update, or its run's previous logged one, has norm 0: the pair
    whose cosine row ``i`` holds."""
    norm = values[:, read_signals().index("update_norm")]
    same_run = i > 0 and inside["run_id"].iloc[i - 1] == inside["run_id"].iloc[i]
    return bool(norm[i] == 0 or (same_run and norm[i - 1] == 0))


def _check_values(log_df: pd.DataFrame, window: int, last_steps: pd.Series, *,
                  finite: bool = True) -> None:
    """:func:`check_log`'s checks of the values below W, on a log whose shape is checked;
    ``last_steps``: each run's last step in the whole log, which may hold more rows;
    ``finite=False``: NaN and inf allowed, except a NaN accuracy (a logged step has one)."""
    signals = read_signals()  # other columns are not read: whatever they hold is not checked
    inside = log_df[log_df["step"] < window].sort_values(["run_id", "step"])
    for column in signals:
        as_number = pd.to_numeric(inside[column], errors="coerce")
        text = as_number.isna() & inside[column].notna()
        if text.any():
            row = inside[text].iloc[0]
            raise LogError(f"column {column} must hold numbers, but run {row['run_id']!r} has "
                           f"{row[column]!r} at step {int(row['step'])}")
    values = inside[list(signals)].to_numpy(dtype=float)
    _check_first_cosine(inside, values)
    bad = ~np.isfinite(values)
    bad[:, _cosine()] &= inside["step"].to_numpy() != 0
    if not finite:  # a NaN accuracy only: the features would read its row as not logged
        accuracy = np.isin(signals, ("train_acc", "val_acc"))  # (n_signals,)
        bad = accuracy & np.isnan(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        run_id, step = inside["run_id"].iloc[i], int(inside["step"].iloc[i])
        column = signals[j]
        last = int(last_steps[run_id])
        if column in ("update_norm", "update_cos") and step == last:
            hint = (f": it is known only after step {step + 1}, so the log needs a row past "
                    f"step {window - 1}")
        elif column in ("train_acc", "val_acc") and np.isnan(values[i, j]):
            hint = ": a logged step needs its accuracy (a number in [0, 1] even for a diverged model)"
        elif column == "update_cos" and _zero_update_before(inside, values, i):
            hint = (": an update of length 0 next to it (a learning rate of 0, as a warm-up from "
                    "0 gives, or an optimizer step skipped) has no direction; the features need "
                    "a nonzero update at every logged step below W")
        else:
            # A stopped run (a stop rule's, or a sweep's hook) logs NaN after its stop too.
            hint = f" (did the run diverge, or stop before step {window}?)"
        raise LogError(f"run {run_id!r} has {column} = {values[i, j]} at step {step}{hint}")
    for columns, lo, hi, what in _SIGNAL_RANGES:
        cols = [signals.index(c) for c in columns]
        with np.errstate(invalid="ignore"):  # update_cos is NaN at step 0
            out = (values[:, cols] < lo) | (values[:, cols] > hi)
        if out.any():
            i, j = np.argwhere(out)[0]
            raise LogError(f"run {inside['run_id'].iloc[i]!r} has {columns[j]} = "
                           f"{values[i, cols[j]]} at step {int(inside['step'].iloc[i])}: {what}")


def _check_first_cosine(inside: pd.DataFrame, values: np.ndarray) -> None:
    """Refuse an ``update_cos`` at step 0: no update comes before the first, so the cosine is
    undefined there and a sweep's log holds NaN. A number (0 from ``fillna(0)``, or from
    ``F.cosine_similarity`` against a zero "previous update") would enter the mean and min
    of the cosines as if measured, and move P(grok) without a word."""
    cosine = _cosine()
    at_zero = (inside["step"].to_numpy() == 0) & ~np.isnan(values[:, cosine])
    if at_zero.any():
        i = int(np.flatnonzero(at_zero)[0])
        raise LogError(f"run {inside['run_id'].iloc[i]!r} has update_cos = {values[i, cosine]} at "
                       "step 0: there is no update before step 0, so its cosine is undefined; "
                       "leave it NaN (an empty CSV cell), as a sweep's log does")


def _cosine() -> int:
    """The column of ``update_cos`` among :func:`read_signals`."""
    return read_signals().index("update_cos")

# What a logged signal can be (up to float32 rounding): a value outside is not a grokcast log.
_SIGNAL_RANGES = (
    (("train_acc", "val_acc"), 0.0, 1.0, "an accuracy lies in [0, 1]"),
    (("train_loss", "val_loss", "param_norm", "grad_norm", "update_norm"), 0.0, np.inf,
     "a loss or a norm is >= 0"),
    (("erank_we", "erank_wu"), 1.0 - 1e-4, np.inf, "an effective rank is >= 1"),
    (("update_cos",), -1.0 - 1e-4, 1.0 + 1e-4, "a cosine lies in [-1, 1]"),
)
# A ranged signal dropped from the log failed every log check as "tuple.index(x): x not in
# tuple" (which the CLI shows as the user's error). Checked against SIGNAL_NAMES, not
# read_signals(), so that importing tool does not import analysis; the digests read every
# logged signal, so the two hold the same names.
_UNLOGGED = [c for columns, *_ in _SIGNAL_RANGES for c in columns if c not in SIGNAL_NAMES]
if _UNLOGGED:
    raise RuntimeError(f"_SIGNAL_RANGES ranges {_UNLOGGED}, which the log does not hold: "
                       f"ranged signals must be among SIGNAL_NAMES {list(SIGNAL_NAMES)}")


EXPLAINED_ATTRIBUTES = ("feature_names_in_", "scaler_mean_", "scaler_scale_", "coef_", "intercept_")


def check_explainable(forecaster: Any) -> None:
    """Refuse a forecaster :func:`explain` cannot read: one without the feature names it was fit
    on (fit on an array) or without a GrokForecaster's scaler and coefficients (a scikit-learn
    pipeline). Such models still give P(grok) where nothing is explained (the Optuna pruner)."""
    missing = [a for a in EXPLAINED_ATTRIBUTES if not hasattr(forecaster, a)]
    if missing:
        raise TypeError(f"forecaster {type(forecaster).__name__} is not allowed here: explaining "
                        f"P(grok) needs a GrokForecaster fit on a DataFrame of named features (e.g. "
                        f"grokcast.features.feature_table(...)), or a file from `grokcast fit`; "
                        f"it lacks {', '.join(missing)}")


def model_inputs(forecaster: GrokForecaster, features: pd.DataFrame) -> pd.DataFrame:
    """The columns of a feature table that ``forecaster`` was fit on, in its order.

    A forecaster may be fit on any subset of the 28 features, in any order; scikit-learn
    refuses a table whose columns differ from the fit's, so every caller selects them here.
    """
    names = [str(s) for s in forecaster.feature_names_in_]
    missing = [s for s in names if s not in features.columns]
    if missing:
        raise ValueError(f"the feature table lacks the forecaster's feature(s) {missing}")
    return features[names]


def explain(forecaster: GrokForecaster, features: pd.DataFrame, *, top: int = 3,
            ) -> list[dict[str, Any]]:
    """P(grok) of each run and the features that pushed its log-odds up and down most.

    Parameters
    ----------
    forecaster : GrokForecaster
        Fitted on a DataFrame of named features, positive class ``classes_[1]``.
    features : DataFrame of shape (n_runs, n_features)
        Indexed by run_id; must hold the forecaster's ``feature_names_in_``.
    top : int, default=3
        How many features to list in each direction.

    Returns
    -------
    list of dict, one per run
        ``run_id``, ``p_grok``, ``log_odds``, ``intercept``, and ``pushed_up`` /
        ``pushed_down``: lists of ``{"feature", "value", "z", "contribution"}`` with
        ``contribution = coef * z`` and ``z = (value - mean) / scale``, the features whose
        contribution is positive / negative, largest |contribution| first (a zero one is in
        neither). The contributions of all features plus the intercept sum to ``log_odds``.

    Examples
    --------
    >>> X = pd.DataFrame({"end_val_acc": [0.0, 0.1, 0.1, 0.2, 0.2, 0.3],
    ...                   "end_val_loss": [3.1, 3.0, 3.2, 3.1, 3.0, 3.2]})
    >>> model = GrokForecaster(Cs=[1.0]).fit(X, [0, 0, 0, 1, 1, 1])
    >>> explain(model, X.iloc[[5]], top=1)[0]["pushed_up"][0]["feature"]
    'end_val_acc'
    """
    check_int("top", top, 0)
    check_explainable(forecaster)
    X = model_inputs(forecaster, features)
    names = list(X.columns)
    p = forecaster.predict_proba(X)[:, 1]
    z = (X.to_numpy(dtype=float) - forecaster.scaler_mean_) / forecaster.scaler_scale_  # (n, d)
    contrib = z * forecaster.coef_[0]  # (n, d)
    intercept = float(forecaster.intercept_[0])
    results = []
    for i, run_id in enumerate(X.index):
        order = np.argsort(contrib[i], kind="stable")
        entry = lambda j: {"feature": names[j], "value": float(X.iat[i, j]),  # noqa: E731
                           "z": float(z[i, j]), "contribution": float(contrib[i, j])}
        results.append({
            "run_id": str(run_id), "p_grok": float(p[i]),
            "log_odds": intercept + float(contrib[i].sum()), "intercept": intercept,
            "pushed_up": [entry(j) for j in order[::-1][:top] if contrib[i, j] > 0],
            "pushed_down": [entry(j) for j in order[:top] if contrib[i, j] < 0],
        })
    return results


def forecast_frame(forecaster: GrokForecaster, log_df: pd.DataFrame, window: int, *,
                   top: int = 3, last_row: int | None = None) -> list[dict[str, Any]]:
    """:func:`explain` for every run of a log, on the rows :func:`checked_window` keeps; runs
    sorted by run_id. ``last_row``: see :func:`window_features`."""
    return explain(forecaster, window_features(forecaster, log_df, window, last_row=last_row),
                   top=top)


def window_features(forecaster: Any, log_df: pd.DataFrame, window: int, *, finite: bool = True,
                    last_row: int | None = None) -> pd.DataFrame:
    """The 28 features of every run of a log, from the rows :func:`checked_window` keeps.

    They are computed up to one past the last step the forecaster reads, not to W: no feature
    reads W itself, and where W falls between logged steps a run stopped at that last step
    (as ``--stop-model`` stops them, and as its hook forecasts them) has no row at W − 1.

    ``last_row`` is for a caller that knows the log's schedule (:class:`GrokMonitor`, which
    observes every step of it): the last step below W whose row the features read, the last
    of the forecaster's steps, or, for a forecaster that records none, the schedule's last
    logged step below W. The log then needs to reach only it, with its update known. None
    (a log file's case): the log must reach step W − 1, since one that ends sooner cannot be
    told from a run cut short before rows below W it should hold. ``finite``: see
    :func:`checked_window`.
    """
    meta = getattr(forecaster, "metadata_", None)
    if last_row is not None:
        window = check_window(window, forecaster, minimum=2)
        last_row = check_int("last_row", last_row, 0)
        if meta is None and last_row >= window:
            raise ValueError(f"last_row={last_row} is not allowed: expected a step below "
                             f"W={window}")
        if meta is not None and last_row != meta.last_read_step():
            raise ValueError(f"last_row={last_row} is not allowed: expected "
                             f"{meta.last_read_step()}, the last step the forecaster's "
                             "features read")
    cut = checked_window(forecaster, log_df, window, finite=finite, last_row=last_row)
    if meta is not None:
        read_through = meta.last_read_step() + 1
    elif last_row is None:
        read_through = window
    else:  # a row past it below W would be read offline: the caller's schedule is not the log's
        late = cut[(cut["step"] > last_row) & (cut["step"] < window)]
        if len(late):
            raise LogError(f"run {late['run_id'].iloc[0]!r} has a row at step "
                           f"{int(late['step'].iloc[0])}, past last_row={last_row} and below "
                           f"W={window}: the features of W read it")
        read_through = last_row + 1
    return feature_table(cut[list(read_columns())], read_through)


def window_log(forecaster: Any, log_df: pd.DataFrame, window: int) -> pd.DataFrame:
    """The log cut to the steps below W that the forecaster's features were computed on
    (:func:`grokcast.features.select_window_steps`); unchanged for a forecaster that was not
    loaded from a file (nothing records its steps).

    Raises
    ------
    LogError
        A run lacks one of those steps.
    """
    meta = getattr(forecaster, "metadata_", None)
    if meta is None:
        return log_df
    try:
        return select_window_steps(log_df, window, meta.required_steps())
    except ValueError as err:
        raise LogError(f"{err}{meta.steps_hint()}") from None


def forecast_log(model_path: str | os.PathLike, log_path: str | os.PathLike, *,
                 top: int = 3) -> dict[str, Any]:
    """Forecast every run of an early log with a saved forecaster.

    Parameters
    ----------
    model_path : path
        A file written by :func:`fit_forecaster` (``grokcast fit``).
    log_path : path
        The log as ``.csv`` or ``.parquet`` with the sweep log's columns that are read
        (:func:`read_columns`: the signals the features read; others may be missing),
        e.g. ``GrokMonitor.log`` saved with ``to_csv(index=False)``, or rows of a sweep's log.
        Each run needs the steps below W that the forecaster reads (every step for a
        forecaster fit on a densely logged window) and a row at step W - 1 or later, with
        the last update below W known; rows at other steps are ignored.
    top : int, default=3
        Features listed in each direction.

    Returns
    -------
    dict
        ``model``, ``log``, ``window``, ``threshold``, ``label_steps`` (P(grok) is of
        reaching ``threshold`` within that many steps; None for an older file),
        ``sweep_hash``, ``n_train_runs``, ``runs``: one :func:`explain` entry per run, sorted
        by run_id, and ``left_out``: for
        a sweep directory (or its ``log/``, or a chunk file in it), the runs of the log
        without a forecast (they diverged, or were stopped, before the window's steps were
        all logged) and their status, by run_id; empty for a log file elsewhere.
        ``task``: the forecaster's (p, model, optimiser; None where its file records none),
        and ``task_checked``: whether the log's task was compared with it (a sweep directory,
        its ``log/``, or a chunk file in it, with a forecaster that records its task; a log
        file records no task, though one whose run ids are all grokcast's and name another p
        is refused). ``in_training``: the forecast runs the forecaster was fit
        on (:func:`runs_in_training`; their P(grok) is in-sample), None for a file that
        records no training runs.

    Raises
    ------
    ForecasterFileError
        The model file is not a valid forecaster.
    LogError
        The log is unreadable, lacks columns, does not cover the window, or its run ids name
        another p than the forecaster's.
    ValueError
        The log is in a sweep of another task than the forecaster's.
    """
    check_path("model_path", model_path, "a forecaster file (grokcast fit --out)")
    check_path("log_path", log_path, "a .csv or .parquet log, or a sweep directory (a log in a "
               "DataFrame: grokcast.tool.forecast_frame)")
    model = GrokForecaster.load(model_path)
    meta = model.metadata_
    log_df = read_log(log_path)
    sweep = enclosing_sweep(Path(log_path))
    if sweep is not None:  # its task is known: refused like `evaluate` refuses it
        from grokcast.store import SweepStore

        meta.check_task(SweepStore(sweep).read_config().task(), f"the sweep {str(sweep)!r}")
    elif "run_id" in log_df.columns:
        _check_run_ids_task(meta, log_df, f"log {str(log_path)!r}")
    left_out = {} if sweep is None else _unforecastable(sweep, model, log_df, meta.window)
    if left_out:
        log_df = log_df[~log_df["run_id"].isin(list(left_out))]
        if log_df.empty:
            raise LogError(f"no run of the sweep {str(sweep)!r} can be forecast: all "
                           f"{len(left_out)} diverged or were stopped before W={meta.window}")
    return {
        "model": str(model_path), "log": str(log_path), "window": meta.window,
        "threshold": meta.threshold, "label_steps": meta.label_steps, "sweep_hash": meta.sweep_hash,
        "n_train_runs": meta.n_train_runs,
        "runs": forecast_frame(model, log_df, meta.window, top=top),
        # As evaluate notes them: a forecast of a run the model saw in training is no test.
        "in_training": runs_in_training(meta, log_df),
        "left_out": left_out,
        # A sweep's task was compared with the forecaster's; a log file records none, and a
        # forecaster file without a task has none to compare.
        "task": meta.task, "task_checked": sweep is not None and meta.task is not None,
    }


def open_scored_sweep(model_path: str | os.PathLike, sweep_dir: str | os.PathLike, *,
                      partial: bool,
                      ) -> tuple[GrokForecaster, SweepConfig, pd.DataFrame, pd.DataFrame]:
    """The forecaster and the sweep it is to be scored on (``evaluate``, ``early-stop-study``):
    the model, the sweep's config, runs and log, once the sweep is finished (or ``partial``)
    and of the forecaster's task; paths checked by the caller."""
    from grokcast.store import SweepStore

    model = GrokForecaster.load(model_path)
    store = SweepStore(sweep_dir)
    store.check_finished(partial=partial)
    config = store.read_config()
    model.metadata_.check_task(config.task(), f"the sweep {str(sweep_dir)!r}")
    return model, config, store.runs(), store.log()


def evaluate_forecaster(model_path: str | os.PathLike, sweep_dir: str | os.PathLike, *,
                        seed: int = 0, n_resamples: int = 2000,
                        level: float = 0.95, partial: bool = False) -> dict[str, Any]:
    """Score a saved forecaster on another sweep: the out-of-sample test.

    Labels come from the sweep's ``max_val_acc`` at the forecaster's threshold; the
    forecaster's P(grok) and, for comparison, the end-of-window val-loss and val-acc baselines
    are scored by AUROC with bootstrap CIs on the same resamples (diverged runs and runs
    stopped early left out). An unfinished sweep is refused unless ``partial``.

    Returns
    -------
    dict
        ``model``, ``sweep_dir``, ``sweep_hash``, ``trained_on`` (the forecaster's sweep hash),
        ``window``, ``threshold``, ``n_runs``, ``n_pos``, ``n_diverged``, ``n_stopped``,
        ``forecaster``, ``val_loss``, ``val_acc``: each ``{"auroc", "ci": [lo, hi]}``,
        ``level``, ``n_resamples`` and ``seed`` (of the bootstrap), ``in_training`` (the
        scored runs the forecaster was fit on, :func:`runs_in_training`; None for a file that
        predates that record), and ``notes`` (what makes the numbers weak, e.g. a class of one
        run, or some runs in-sample).
    """
    from grokcast.analysis import _rng, runs_with_outcome, sweep_hash
    from grokcast.stats import bootstrap_ci

    check_int("seed", seed, 0)
    check_int("n_resamples", n_resamples, 1, MAX_RESAMPLES)
    check_path("model_path", model_path, "a forecaster file (grokcast fit --out)")
    check_path("sweep_dir", sweep_dir, "a sweep directory (grokcast sweep --out)")
    model, config, all_runs, all_log = open_scored_sweep(model_path, sweep_dir, partial=partial)
    meta = model.metadata_
    runs, n_diverged, n_stopped = runs_with_outcome(all_runs)
    runs = runs.sort_values("run_id")
    log_df = all_log[all_log["run_id"].isin(runs["run_id"])]
    seen = runs_in_training(meta, log_df)
    log_df = checked_window(model, log_df, meta.window)
    X = feature_table(log_df[list(read_columns())], meta.window).loc[runs["run_id"]]
    y = reaches(runs["max_val_acc"], meta.threshold).astype(int)
    if y.min() == y.max():
        hint = "" if y[0] else "; " + too_short_hint(float(runs["max_val_acc"].max()),
                                                     config.n_steps, meta.label_steps)
        raise ValueError(f"every run of {str(sweep_dir)!r} has label {y[0]} at threshold "
                         f"{meta.threshold:g}: an AUROC needs both classes{hint}")
    scores = {"forecaster": model.predict_proba(model_inputs(model, X))[:, 1],
              "val_loss": -X["end_val_loss"].to_numpy(), "val_acc": X["end_val_acc"].to_numpy()}
    out: dict[str, Any] = {
        "model": str(model_path), "sweep_dir": str(sweep_dir),
        "sweep_hash": sweep_hash(all_runs, all_log), "trained_on": meta.sweep_hash,
        "window": meta.window, "threshold": meta.threshold, "n_runs": int(len(y)),
        "n_pos": int(y.sum()), "n_diverged": n_diverged, "n_stopped": n_stopped,
        "level": level, "n_resamples": n_resamples, "seed": seed, "in_training": seen,
        "notes": [*_in_training_notes(seen, len(y), meta.window),
                  *_one_run_class_notes(min(int(y.sum()), len(y) - int(y.sum()))),
                  *filter(None, [meta.horizon_note(config.n_steps, "this sweep's runs")])]}
    for name, score in scores.items():
        # The analysis' generator for this (threshold, W) cell: on the same runs, seed and
        # resamples the baselines' CIs are Table 1's (they were drawn from another stream).
        ci = bootstrap_ci(y, score, rng=_rng(seed, meta.threshold, meta.window, 0),
                          n_resamples=n_resamples, level=level)
        out[name] = {"auroc": float(ci.estimate), "ci": [float(ci.lo), float(ci.hi)]}
    return out


def runs_in_training(meta: Any, log_df: pd.DataFrame) -> list[str] | None:
    """The runs of ``log_df`` that the forecaster was fit on, by run_id, sorted: those whose
    log at the steps the forecaster reads is bitwise a training run's
    (:func:`grokcast.analysis.window_digests`), under any name and whatever else the log holds
    (a denser schedule below W). None for a forecaster file that records no training runs."""
    from grokcast.analysis import window_digests

    if meta.train_digests is None:
        return None
    known = set(meta.train_digests)
    read = log_df[log_df["step"].isin(meta.required_steps())]  # at fit: every row below W
    return sorted(r for r, d in window_digests(read, meta.window).items() if d in known)


def _in_training_notes(seen: list[str] | None, n_runs: int, window: int) -> list[str]:
    if seen is None:
        return ["this forecaster file records no training runs (train_window_digests: written "
                "before grokcast recorded them, or saved without train_digests), so runs it was "
                "fit on are recognised only as a whole sweep (its hash); grokcast fit records them"]
    if not seen or len(seen) == n_runs:  # none, or all: format_evaluation's heading says so
        return []
    shown = ", ".join(seen[:3]) + (", ..." if len(seen) > 3 else "")
    return [f"{len(seen)} of the {n_runs} runs scored were among the forecaster's training runs "
            f"(the same log over steps 0..{window - 1}: {shown}): their scores are in-sample, so "
            "the AUROCs are not an out-of-sample test"]


def _one_run_class_notes(n_minority: int) -> list[str]:
    if n_minority != 1:
        return []
    # Resamples with one class are redrawn, so every resample holds that run (some twice):
    # only the other class varies, and a CI of one point can come out.
    return ["only 1 run of one class: every bootstrap resample holds that same run, so the CIs "
            "leave out how a different run of its class would rank; the AUROCs are the rank of "
            "one run"]


def format_evaluation(result: dict[str, Any]) -> str:
    """A human-readable rendering of :func:`evaluate_forecaster`'s result."""
    seen = result.get("in_training")
    same = (" (the sweep it was fit on: not out of sample!)"
            if result["sweep_hash"] == result["trained_on"] else
            " (every run scored is one it was fit on: not out of sample!)"
            if seen is not None and len(seen) == result["n_runs"] else "")
    lines = [f"{result['model']} on {result['sweep_dir']}{same}: "
             f"{result['n_pos']} of {result['n_runs']} runs reach max val_acc >= "
             f"{result['threshold']:g}; features from steps 0..{result['window'] - 1}"
             + _left_out(result),
             f"AUROC [{format_percent(result['level'])} bootstrap CI, {result['n_resamples']} resamples]:"]
    for name in ("forecaster", "val_loss", "val_acc"):
        r = result[name]
        lines.append(f"  {name:<11} {r['auroc']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
    lines += [f"note: {note}" for note in result.get("notes", [])]
    return "\n".join(lines)


def _p_grok_text(p: float) -> str:
    """Three decimals, but never a certainty the model did not give: 0.99999 is "> 0.999"."""
    if p != p:  # NaN: a diverged window
        return "nan"
    return "< 0.001" if p < 0.0005 else "> 0.999" if p >= 0.9995 else f"{p:.3f}"


def format_forecast(result: dict[str, Any]) -> str:
    """A human-readable rendering of :func:`forecast_log`'s result."""
    within = "" if result.get("label_steps") is None else f" within {result['label_steps']:,} steps"
    lines = [f"forecaster {result['model']}: P(max val_acc >= {result['threshold']:g}{within}) from "
             f"steps 0..{result['window'] - 1}, fit on {result['n_train_runs']} runs "
             f"(sweep {result['sweep_hash'][:12]})"]
    seen = set(result.get("in_training") or ())
    for run in result["runs"]:
        mark = " (a training run of the forecaster: in-sample)" if run["run_id"] in seen else ""
        lines.append(f"\n{run['run_id']}: P(grok) = {_p_grok_text(run['p_grok'])}{mark}")
        for label, key in (("pushed up", "pushed_up"), ("pushed down", "pushed_down")):
            for k, e in enumerate(run[key]):
                head = f"  {label + ':':<13}" if k == 0 else " " * 15
                lines.append(f"{head}{e['feature']:<20} = {e['value']:<11.4g} "
                             f"(z {e['z']:+6.2f}) {e['contribution']:+.2g} log-odds")
    left_out = result.get("left_out") or {}
    for status in sorted(set(left_out.values())):
        ids = sorted(r for r, s in left_out.items() if s == status)
        lines.append(f"\nno forecast for {len(ids)} {status} run(s): {', '.join(ids)}")
    if result.get("in_training", []) is None:
        lines.append("\nnote: this forecaster file records no training runs (written before "
                     "grokcast recorded them), so a run it was fit on cannot be told from a new one")
    if seen:
        lines.append(f"\nnote: {len(seen)} of the {len(result['runs'])} runs forecast were among "
                     "the forecaster's training runs (the same log over the steps it reads): "
                     "their P(grok) is in-sample, not a forecast")
    task = result.get("task")
    if not result.get("task_checked", True):
        if task is None:
            lines.append("\nnote: this forecaster file records no task (saved without one, or "
                         "written before grokcast recorded it), so the runs' task was not checked")
        else:
            model = task["model"]
            lines.append(f"\nnote: a log file does not record its runs' task, so it was not checked: "
                         f"the forecaster is for runs of p={task['p']}, d_model={model['d_model']}, "
                         f"n_heads={model['n_heads']}, d_mlp={model['d_mlp']} (its file's task has "
                         "the rest)")
    return "\n".join(lines)
