"""The 28 early-window features of a run, one registry: names, groups, descriptions, formulas.

A feature summarises one run's log rows with ``step < W`` (the *window*; see the step
convention in :mod:`grokcast.signals`). Every formula works on a :class:`Window`, the log of
many runs laid out as ``(n_runs, n_steps)`` arrays, so :func:`feature_table` computes all runs
at once and :func:`run_features` is the same code applied to one run.

Definitions shared by the groups:

* *end* value: the value at the last logged step below W (step 199 for W = 200; step 400 for
  W = 500, since steps >= 300 are logged every 100).
* *slope*: the ordinary least-squares slope of value on step over the logged steps in the
  window (as ``numpy.polyfit(step, value, 1)[0]``), per step.
* *std*: population standard deviation (``ddof=0``, as ``numpy.std``).
* The optimisation statistics ignore NaN: ``update_cos`` is NaN at step 0 (no previous update).
  ``update_norm`` at step t is ||theta_{t+1} - theta_t||, the update computed from theta_t.

A log row whose ``val_acc`` is NaN is a step the run was not logged at (a run stopped early
logs NaN afterwards, see :mod:`grokcast.train`), so it does not count as logged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from grokcast.validation import check_int, check_steps

# The signals a feature reads; every one must be a column of the log.
WINDOW_SIGNALS = (
    "train_loss", "val_loss", "train_acc", "val_acc", "param_norm", "grad_norm",
    "erank_we", "erank_wu", "train_margin", "update_norm", "update_cos",
)
# Series that get an end-of-window value and a slope, in registry order.
_TRACKED = (
    ("train_loss", "train loss"), ("val_loss", "validation loss"),
    ("train_acc", "train accuracy"), ("val_acc", "validation accuracy"),
    ("param_norm", "L2 norm of all parameters"), ("grad_norm", "L2 norm of the full-batch gradient"),
    ("erank_we", "effective rank of the token embedding W_E"),
    ("erank_wu", "effective rank of the unembedding W_U"),
    ("train_margin", "mean train logit margin (correct minus runner-up)"),
)
GROUPS = ("end", "slope", "gap", "optim", "transform")


@dataclass(frozen=True)
class Window:
    """The logged signals of R runs at the T logged steps below the window end W.

    Attributes
    ----------
    window : int
        W; the rows are the logged steps in [0, W).
    run_ids : ndarray of shape (R,)
    steps : ndarray of shape (T,)
        Logged steps, increasing; the same for every run.
    signals : dict of str to ndarray of shape (R, T)
    """

    window: int
    run_ids: np.ndarray
    steps: np.ndarray
    signals: dict[str, np.ndarray]

    def end(self, name: str) -> np.ndarray:
        """Value at the last logged step below W -> (R,)."""
        return self.signals[name][:, -1]

    def slope(self, name: str) -> np.ndarray:
        """Least-squares slope of the series on step -> (R,); NaN if the series holds NaN."""
        x = self.steps - self.steps.mean()  # (T,)
        y = self.signals[name]  # (R, T)
        return (y - y.mean(1, keepdims=True)) @ x / (x @ x)


@dataclass(frozen=True)
class Feature:
    """One registry entry: ``fn`` maps a :class:`Window` of R runs to values of shape (R,)."""

    name: str
    group: str
    description: str
    fn: Callable[[Window], np.ndarray]


def _nan_stat(stat: Callable[..., np.ndarray], name: str) -> Callable[[Window], np.ndarray]:
    def fn(w: Window) -> np.ndarray:
        with warnings.catch_warnings():  # an all-NaN row gives NaN, which is the answer
            warnings.simplefilter("ignore", RuntimeWarning)
            return stat(w.signals[name], axis=1)
    return fn


# A float32 loss of exactly 0 (a train set of a few examples, fitted to the last bit) is
# read as the smallest positive normal float32, so that its log and the loss ratio stay finite
# (about -87.3 and val / 1.2e-38) instead of -inf and inf, which no model can read. Any loss
# above it, every loss of the paper's sweep, is unchanged; NaN stays NaN.
LOSS_FLOOR = float(np.finfo(np.float32).tiny)


def _floored(loss: np.ndarray) -> np.ndarray:
    return np.maximum(loss, LOSS_FLOOR)


def _registry() -> tuple[Feature, ...]:
    feats = [Feature(f"end_{s}", "end", f"{d} at the last logged step below W",
                     partial(Window.end, name=s)) for s, d in _TRACKED]
    feats += [Feature(f"slope_{s}", "slope", f"least-squares slope of {d} against step over the window",
                      partial(Window.slope, name=s)) for s, d in _TRACKED]
    feats += [
        Feature("end_loss_gap", "gap", "end validation loss minus end train loss",
                lambda w: w.end("val_loss") - w.end("train_loss")),
        Feature("end_acc_gap", "gap", "end train accuracy minus end validation accuracy",
                lambda w: w.end("train_acc") - w.end("val_acc")),
        Feature("max_loss_gap", "gap", "largest validation-minus-train loss over the window",
                lambda w: (w.signals["val_loss"] - w.signals["train_loss"]).max(1)),
        Feature("std_grad_norm", "optim", "standard deviation of the gradient norm over the window",
                _nan_stat(np.nanstd, "grad_norm")),
        Feature("std_update_norm", "optim", "standard deviation of the update norm over the window",
                _nan_stat(np.nanstd, "update_norm")),
        Feature("mean_update_cos", "optim",
                "mean cosine between consecutive parameter updates over the window",
                _nan_stat(np.nanmean, "update_cos")),
        Feature("min_update_cos", "optim",
                "minimum cosine between consecutive parameter updates over the window",
                _nan_stat(np.nanmin, "update_cos")),
        Feature("log_end_val_loss", "transform", "natural log of the end validation loss",
                lambda w: np.log(_floored(w.end("val_loss")))),
        Feature("log_end_train_loss", "transform", "natural log of the end train loss",
                lambda w: np.log(_floored(w.end("train_loss")))),
        Feature("loss_ratio", "transform", "end validation loss divided by end train loss",
                lambda w: w.end("val_loss") / _floored(w.end("train_loss"))),
    ]
    return tuple(feats)


FEATURES: tuple[Feature, ...] = _registry()
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def show_steps(steps: Sequence[int] | np.ndarray) -> str:
    """A short rendering of a step list for error messages."""
    s = np.asarray(steps).tolist()
    return str(s) if len(s) <= 6 else f"[{s[0]}, {s[1]}, {s[2]}, ..., {s[-1]}] ({len(s)} steps)"


def _check_window_arg(window: object) -> int:
    return check_int("window", window, 2)  # a slope needs two steps


def make_window(log_df: pd.DataFrame, window: int) -> Window:
    """Lay out the log rows with ``step < window`` as ``(n_runs, n_steps)`` arrays.

    Parameters
    ----------
    log_df : DataFrame
        Long-format log: ``run_id``, ``step`` and the columns in :data:`WINDOW_SIGNALS`.
    window : int
        W >= 2.

    Returns
    -------
    Window
        Runs sorted by ``run_id``.

    Raises
    ------
    ValueError
        If W goes beyond a run's last logged step with a known update (the final model's row
        has none), the window holds fewer than two logged steps, runs were logged at
        different steps, or a column is missing.
    """
    window = _check_window_arg(window)
    _check_log_frame(log_df)
    codes, uniques = pd.factorize(run_id_values(log_df["run_id"]), sort=True)  # fast for 4,800 runs
    run_ids = np.asarray(uniques, dtype=object)
    step = check_steps(log_df["step"])
    logged = ~np.isnan(log_df["val_acc"].to_numpy(dtype=float))
    _check_window_fits(log_df, window, run_ids, codes, step, logged)
    sel = np.flatnonzero(logged & (step < window))
    sel = sel[np.lexsort((step[sel], codes[sel]))]  # rows by (run, step)
    steps = _shared_steps(run_ids, codes[sel], step[sel], window)
    n_runs, n_steps = run_ids.size, steps.size
    signals = {s: _numbers(log_df[s], s)[sel].reshape(n_runs, n_steps) for s in WINDOW_SIGNALS}
    return Window(window=window, run_ids=run_ids, steps=steps.astype(float), signals=signals)


def run_id_values(run_id: pd.Series) -> pd.Series:
    """A ``run_id`` column that sorts, groups and factorizes by the run ids' values: a
    Categorical one (a Parquet file's dictionary column, a frame of one's own) would do so in
    its categories' order, and give another run order than the same ids as plain text."""
    if isinstance(run_id.dtype, pd.CategoricalDtype):
        return run_id.astype(object)
    return run_id


def _check_log_frame(log_df: object) -> None:
    """Refuse what is not a long-format log: another type, a missing column, no rows, or a row
    that names no run."""
    if not isinstance(log_df, pd.DataFrame):
        raise TypeError(f"log_df must be a pandas DataFrame in long format (one row per run and "
                        f"logged step, e.g. SweepStore(DIR).log()), got {type(log_df).__name__}")
    missing = [c for c in ("run_id", "step", *WINDOW_SIGNALS) if c not in log_df.columns]
    if missing:
        raise ValueError(f"the log lacks column(s) {missing}; it needs run_id, step and "
                         f"{list(WINDOW_SIGNALS)}")
    if log_df.empty:
        raise ValueError("the log holds no rows")
    if log_df["run_id"].isna().any():
        first = log_df.loc[log_df["run_id"].isna(), "step"].iloc[0]
        raise ValueError(f"column run_id is empty on {int(log_df['run_id'].isna().sum())} row(s), "
                         f"the first at step {first}: every row names its run")


def _check_window_fits(log_df: pd.DataFrame, window: int, run_ids: np.ndarray, codes: np.ndarray,
                       step: np.ndarray, logged: np.ndarray) -> None:
    """Refuse a window W past any run's last logged step whose update is known.

    ``codes`` and ``step`` (rows,) are each row's run (an index into ``run_ids``) and step,
    ``logged`` the rows with a val_acc.
    """
    last = pd.Series(step[logged]).groupby(codes[logged]).max().reindex(range(run_ids.size))
    if last.isna().any():
        raise ValueError(f"run {run_ids[int(np.flatnonzero(last.isna())[0])]!r} has no logged "
                         "step (val_acc is NaN on every row)")
    # A run's final row (the trained model) has no update after it: its update_norm is NaN,
    # so a window may end on a run's last row only where that column is known (a run stopped
    # by a hook, or a live log whose next step has been observed).
    at_last = logged & (step == last.to_numpy()[codes])
    no_update = np.zeros(run_ids.size, dtype=bool)
    no_update[codes[at_last]] = np.isnan(log_df["update_norm"].to_numpy(dtype=float)[at_last])
    w_max = last.to_numpy().astype(np.int64) + 1 - no_update
    short = np.flatnonzero(w_max < window)
    if short.size:
        k = short[0]
        more = f" (and {short.size - 1} other run(s))" if short.size > 1 else ""
        final = ", which has no update after it (update_norm is NaN)," if no_update[k] else ""
        # W >= 2 (a slope needs two steps): a log shorter than that allows no window at all.
        allowed = (f"so W can be at most {w_max[k]}" if w_max[k] >= 2 else
                   "so no window fits (W >= 2 needs the update after step 1)")
        raise ValueError(
            f"window W={window} goes beyond the logged steps: the last logged step of run "
            f"{run_ids[k]!r}{more} is {int(last.iloc[k])}{final} {allowed}")


def _shared_steps(run_ids: np.ndarray, run_of: np.ndarray, step_of: np.ndarray,
                  window: int) -> np.ndarray:
    """The one grid of at least two distinct steps below W that every run is logged at.

    ``run_of`` and ``step_of`` are the window's rows sorted by (run, step); a run without a
    row, or with rows at other steps than the others, is refused.
    """
    sizes = np.bincount(run_of, minlength=run_ids.size)
    if (sizes == 0).any():
        absent = run_ids[int(np.flatnonzero(sizes == 0)[0])]
        raise ValueError(f"run {absent!r} has no logged step below W={window}")
    # The reference grid is that of the first run with the most common row count.
    n_runs, n_steps = run_ids.size, int(np.bincount(sizes).argmax())
    ref = int(np.flatnonzero(sizes == n_steps)[0])
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    steps = step_of[starts[ref]:starts[ref] + n_steps]
    odd = np.flatnonzero(sizes != n_steps)
    if odd.size == 0:
        odd = np.flatnonzero((step_of.reshape(n_runs, n_steps) != steps).any(1))
    if odd.size or (np.diff(steps) <= 0).any():
        r = int(odd[0]) if odd.size else ref
        raise ValueError(
            f"runs are logged at different or repeated steps below W={window}: run "
            f"{run_ids[ref]!r} at {show_steps(steps)}, run {run_ids[r]!r} at "
            f"{show_steps(step_of[starts[r]:starts[r] + sizes[r]])}; features need one grid of "
            "distinct steps")
    if n_steps < 2:
        raise ValueError(f"window W={window} holds only {n_steps} logged step ({steps.tolist()}); "
                         "slopes need at least 2")
    return steps


def _numbers(column: pd.Series, name: str) -> np.ndarray:
    try:
        return column.to_numpy(dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"log column {name!r} must hold numbers (NaN where a step has none): "
                         f"{err}") from None


def feature_table(log_df: pd.DataFrame, window: int) -> pd.DataFrame:
    """All 28 features of every run in the log, from its rows with ``step < window``.

    Parameters
    ----------
    log_df : DataFrame
        Long-format log (``SweepStore.log()``): ``run_id``, ``step`` and the signals.
    window : int
        W >= 2, at most one past each run's last logged step whose update is known (see
        :func:`make_window`).

    Returns
    -------
    DataFrame of shape (n_runs, 28)
        Index ``run_id`` (sorted); columns :data:`FEATURE_NAMES` in registry order;
        ``attrs["window"]`` is ``window`` and ``attrs["window_steps"]`` the logged steps below
        it that the features read (a list of int).

    Examples
    --------
    >>> steps = np.arange(5)
    >>> log = pd.DataFrame({"run_id": "r0", "step": steps, "update_cos": np.nan,
    ...                     **{s: 1.0 + steps for s in WINDOW_SIGNALS if s != "update_cos"}})
    >>> table = feature_table(log, 3)
    >>> table.loc["r0", ["end_val_loss", "slope_val_loss", "loss_ratio"]].tolist()
    [3.0, 1.0, 1.0]
    """
    w = make_window(log_df, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {f.name: f.fn(w) for f in FEATURES}
    table = pd.DataFrame(columns, index=pd.Index(w.run_ids, name="run_id"))
    # The same 28 names at every W: a forecaster fit at one W reads another W's table without
    # complaint, so the table says its W (GrokForecaster.decision_function checks it).
    table.attrs["window"] = int(window)
    # The features depend on which steps the window holds, not on W alone: a densely logged
    # run's table of W = 500 reads 500 steps where the paper schedule's reads 302.
    table.attrs["window_steps"] = [int(t) for t in w.steps]
    return table


def select_window_steps(log_df: pd.DataFrame, window: int, steps: tuple[int, ...]) -> pd.DataFrame:
    """The rows a forecaster fit on logs with rows at ``steps`` below W reads from ``log_df``.

    Features such as slopes and standard deviations depend on which steps a window holds, so
    a run logged more densely than the forecaster's training runs is cut to their steps, and
    one missing any of them is refused. Rows at and past W are kept.

    Raises
    ------
    ValueError
        A run lacks one of ``steps``.
    """
    window = _check_window_arg(window)
    need = np.asarray(steps, dtype=np.int64)
    step = log_df["step"].to_numpy(dtype=np.int64)
    keep = (step >= window) | np.isin(step, need)
    runs = pd.unique(log_df["run_id"])
    have = (log_df.loc[keep & (step < window)].groupby("run_id", sort=False)["step"].nunique()
            .reindex(runs, fill_value=0))
    short = have.index[have.to_numpy() < need.size]
    if len(short):
        run_id = short[0]
        missing = np.setdiff1d(need, step[(log_df["run_id"] == run_id).to_numpy()])
        raise ValueError(
            f"the log of run {run_id!r} lacks step(s) {show_steps(missing)} below W={window}: the "
            f"forecaster's features were computed on steps {show_steps(need)}, so its log must "
            "hold every one of them (log with the schedule of the sweep it was fit on)")
    return log_df[keep]


def run_features(rows: pd.DataFrame, window: int) -> dict[str, float]:
    """The 28 features of one run, from its log rows (any ``run_id``), as a name -> value dict."""
    rows = rows.assign(run_id="run")
    return {k: float(v) for k, v in feature_table(rows, window).iloc[0].items()}
