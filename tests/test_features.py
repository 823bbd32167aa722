"""The feature registry, and every feature against a value computed by hand with numpy."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from grokcast.features import (
    FEATURE_NAMES,
    FEATURES,
    GROUPS,
    WINDOW_SIGNALS,
    feature_table,
    run_features,
)

STEPS = np.r_[np.arange(300), np.arange(300, 1001, 100)]  # the paper's logging schedule


def synthetic_log(n_runs: int = 3, seed: int = 0) -> pd.DataFrame:
    """Random positive signals; update_cos NaN at step 0, update_norm NaN on the last row."""
    rng = np.random.default_rng(seed)
    frames = []
    for r in range(n_runs):
        cols = {s: rng.uniform(0.1, 3.0, STEPS.size) for s in WINDOW_SIGNALS}
        cols["update_cos"] = rng.uniform(-1, 1, STEPS.size)
        cols["update_cos"][0] = np.nan
        cols["update_norm"][-1] = np.nan
        frames.append(pd.DataFrame({"run_id": f"run{r}", "step": STEPS, **cols}))
    return pd.concat(frames, ignore_index=True)


def by_hand(rows: pd.DataFrame, window: int) -> dict[str, float]:
    """The 28 features of one run, written out directly from their definitions."""
    w = rows[rows["step"] < window].sort_values("step")
    step = w["step"].to_numpy(float)
    col = {s: w[s].to_numpy() for s in WINDOW_SIGNALS}
    tracked = ["train_loss", "val_loss", "train_acc", "val_acc", "param_norm", "grad_norm",
               "erank_we", "erank_wu", "train_margin"]
    out = {f"end_{s}": col[s][-1] for s in tracked}
    out |= {f"slope_{s}": np.polyfit(step, col[s], 1)[0] for s in tracked}
    out["end_loss_gap"] = col["val_loss"][-1] - col["train_loss"][-1]
    out["end_acc_gap"] = col["train_acc"][-1] - col["val_acc"][-1]
    out["max_loss_gap"] = max(v - t for v, t in zip(col["val_loss"], col["train_loss"]))
    grad, upd, cos = col["grad_norm"], col["update_norm"], col["update_cos"]
    out["std_grad_norm"] = np.std(grad)
    out["std_update_norm"] = np.std(upd[~np.isnan(upd)])
    out["mean_update_cos"] = np.mean(cos[~np.isnan(cos)])
    out["min_update_cos"] = min(cos[~np.isnan(cos)])
    out["log_end_val_loss"] = np.log(col["val_loss"][-1])
    out["log_end_train_loss"] = np.log(col["train_loss"][-1])
    out["loss_ratio"] = col["val_loss"][-1] / col["train_loss"][-1]
    return out


def test_registry_has_the_28_features_in_5_groups():
    assert len(FEATURES) == 28 and len(set(FEATURE_NAMES)) == 28
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", f.name) for f in FEATURES)
    assert all(f.description and "\n" not in f.description for f in FEATURES)
    sizes = {g: sum(f.group == g for f in FEATURES) for g in GROUPS}
    assert sizes == {"end": 9, "slope": 9, "gap": 3, "optim": 4, "transform": 3}
    # Names the paper's Table 3 spells out.
    paper = {"end_val_acc", "slope_val_acc", "end_val_loss", "log_end_val_loss", "slope_val_loss",
             "end_loss_gap", "max_loss_gap", "slope_train_acc", "slope_train_loss", "end_acc_gap",
             "mean_update_cos", "loss_ratio", "end_train_loss"}
    assert paper <= set(FEATURE_NAMES)


@pytest.mark.parametrize("window", [2, 3, 57, 300, 301, 450, 1000, 1001])
def test_every_feature_matches_the_hand_computation(window):
    log = synthetic_log()
    if window == 1001:  # ends on the last row: as for a run stopped there, its update is known
        log.loc[log["step"] == 1000, "update_norm"] = 2.5
    table = feature_table(log, window)
    assert list(table.columns) == list(FEATURE_NAMES)
    assert list(table.index) == ["run0", "run1", "run2"]
    for run, rows in log.groupby("run_id"):
        expected = by_hand(rows, window)
        for name in FEATURE_NAMES:
            assert table.loc[run, name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), \
                (run, name)


def test_end_is_the_last_logged_step_below_w():
    log = synthetic_log(1)
    val = log.set_index("step")["val_loss"]
    assert feature_table(log, 200)["end_val_loss"].iloc[0] == val[199]
    assert feature_table(log, 500)["end_val_loss"].iloc[0] == val[400]  # sparse logging


def test_the_table_records_its_window_for_the_forecaster_to_check():
    log = synthetic_log(1)
    assert feature_table(log, 200).attrs["window"] == 200
    assert feature_table(log, 500)[["end_val_loss"]].attrs["window"] == 500  # kept by a selection


def test_the_recorded_window_survives_a_parquet_round_trip(tmp_path):
    """As the README says; pandas writes attrs as JSON, which has no numpy integer (a W read
    from an array would fail to_parquet, unless the table records it as an int)."""
    table = feature_table(synthetic_log(2), np.int64(200))
    table.reindex(table.index[::-1]).to_parquet(tmp_path / "x.parquet")
    steps = list(range(200))  # the logged steps below W, which the forecaster checks too
    assert pd.read_parquet(tmp_path / "x.parquet").attrs == {"window": 200, "window_steps": steps}


def test_row_order_does_not_matter_and_one_run_matches_the_table():
    log = synthetic_log(4, seed=1)
    ref = feature_table(log, 250)
    shuffled = feature_table(log.sample(frac=1, random_state=0), 250)
    pd.testing.assert_frame_equal(ref, shuffled)
    one = run_features(log[log["run_id"] == "run2"], 250)
    assert one == pytest.approx(ref.loc["run2"].to_dict())


def test_a_categorical_run_id_gives_the_table_sorted_by_run_id():
    """Was: the index in the categories' order (pd.factorize's sort=True sorts a Categorical
    by its codes), not sorted by run_id as documented; a category no row uses is no run."""
    log = synthetic_log(4, seed=2)
    ids = log["run_id"].to_numpy()
    by_run = {r: by_hand(log[ids == r], 250) for r in sorted(set(ids))}
    categories = ["run3", "run1", "unused", "run0", "run2"]
    table = feature_table(log.assign(run_id=pd.Categorical(ids, categories=categories)), 250)
    assert table.index.tolist() == ["run0", "run1", "run2", "run3"]
    for r, features in by_run.items():
        assert table.loc[r].to_dict() == pytest.approx(features, rel=1e-9)


def test_window_beyond_the_log_names_w_and_the_last_step():
    log = synthetic_log()
    log.loc[log["step"] == 1000, "update_norm"] = 1.0  # a run stopped at 1000: its update is known
    feature_table(log, 1001)  # includes the last logged step, 1000
    with pytest.raises(ValueError, match=r"W=1002 .*last logged step .* is 1000 so W can be at most 1001"):
        feature_table(log, 1002)
    first = log[log["step"] == 0].assign(update_norm=np.nan)  # a 0-step run: its final model only
    with pytest.raises(ValueError, match=r"is 0, which has no update .* so no window fits \(W >= 2"):
        feature_table(first, 2)


def test_window_stops_before_the_final_model_row():
    """The final model's row has no update after it (fit refuses it too): W ends before it."""
    log = synthetic_log()  # update_norm NaN on the last row, as the trainer logs it
    with pytest.raises(ValueError, match=r"W=1001 .*is 1000, which has no update after it .* at most 1000"):
        feature_table(log, 1001)
    assert np.isfinite(feature_table(log, 1000).to_numpy()).all()


def test_stopped_run_counts_only_its_logged_steps():
    log = synthetic_log()
    stopped = (log["run_id"] == "run1") & (log["step"] > 150)
    log.loc[stopped, list(WINDOW_SIGNALS)] = np.nan  # what the trainer logs after a stop
    assert np.isfinite(feature_table(log, 151).to_numpy()).all()
    with pytest.raises(ValueError, match=r"W=200 .*'run1'.* is 150"):
        feature_table(log, 200)


@pytest.mark.parametrize("window", [1, 0, 2.5, True])
def test_bad_window_argument(window):
    with pytest.raises(ValueError, match="window="):
        feature_table(synthetic_log(1), window)


def test_malformed_logs_are_refused():
    log = synthetic_log()
    with pytest.raises(ValueError, match="lacks column"):
        feature_table(log.drop(columns="erank_wu"), 100)
    with pytest.raises(ValueError, match="different or repeated steps"):
        feature_table(log.drop(index=[5]), 100)
    sparse = log[log["step"].isin([0, 300, 400])]
    with pytest.raises(ValueError, match="only 1 logged step"):
        feature_table(sparse, 200)
    unnamed = log.astype({"run_id": object})
    unnamed.loc[unnamed["step"] == 7, "run_id"] = None  # was a numpy bincount error
    with pytest.raises(ValueError, match=r"run_id is empty on \d+ row\(s\), the first at step 7"):
        feature_table(unnamed, 100)
    half = log.astype({"step": float})
    half.loc[half["step"] == 7, "step"] = 7.5  # was truncated to 7 without a word
    with pytest.raises(ValueError, match=r"whole numbers of optimizer steps, got .*7.5"):
        feature_table(half, 100)
    half.loc[half["step"] == 7.5, "step"] = 1e22  # was cast to -2**63: "different steps ..."
    with pytest.raises(ValueError, match=r"step counts below 2\*\*63 \(int64\), got 1e\+22"):
        feature_table(half, 100)
    huge = log.astype({"step": np.uint64})
    huge.loc[huge["step"] == 7, "step"] = np.uint64(2**64 - 1)
    with pytest.raises(ValueError, match=r"below 2\*\*63 \(int64\), got 18446744073709551615"):
        feature_table(huge, 100)
    assert feature_table(log.astype({"step": np.uint64}), 100).equals(feature_table(log, 100))
    assert feature_table(log.astype({"step": float}), 100).equals(feature_table(log, 100))
    with pytest.raises(ValueError, match=r"^the log holds no rows$"):
        feature_table(log.iloc[:0], 100)
    blank = log.copy()
    blank.loc[blank["run_id"] == "run1", "val_acc"] = np.nan
    with pytest.raises(ValueError, match=r"^run 'run1' has no logged step \(val_acc is NaN on every row\)$"):
        feature_table(blank, 100)
    late = log[(log["run_id"] != "run2") | (log["step"] >= 200)]  # run2 logged only from 200 on
    with pytest.raises(ValueError, match=r"^run 'run2' has no logged step below W=200$"):
        feature_table(late, 200)
    texts = log.astype({"grad_norm": object})
    texts.loc[texts["step"] == 7, "grad_norm"] = "x"  # was numpy's error, naming no column
    with pytest.raises(ValueError, match=r"log column 'grad_norm' must hold numbers .*'x'"):
        feature_table(texts, 100)


def test_docs_table_lists_the_registry():
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "features.md").read_text()
    rows = re.findall(r"^\| \d+ \| `(\w+)` \| (\w+) \| (.+) \|$", doc, flags=re.M)
    assert rows == [(f.name, f.group, f.description) for f in FEATURES]


def test_a_log_that_is_not_a_dataframe_is_named():
    """`feature_table(None, 200)` ended in an AttributeError on .columns."""
    for bad in (None, np.zeros((3, 13))):
        with pytest.raises(TypeError, match=rf"^log_df must be a pandas DataFrame .* got "
                                            rf"{type(bad).__name__}$"):
            feature_table(bad, 200)


def test_a_nan_inside_the_window_reaches_the_features_docs_features_md_names():
    """docs/features.md: the slopes and max_loss_gap carry a NaN from anywhere in the window;
    the end values read the last logged step alone."""
    log = synthetic_log()
    one = log[log["run_id"] == log["run_id"].iloc[0]].copy()
    one.loc[one["step"] == 50, "val_loss"] = np.nan
    table = feature_table(one, 100)
    assert [c for c in table.columns if np.isnan(table[c].iloc[0])] == ["slope_val_loss",
                                                                          "max_loss_gap"]
    one.loc[one["step"] == 99, "val_loss"] = np.nan
    table = feature_table(one, 100)
    assert {c for c in table.columns if np.isnan(table[c].iloc[0])} == {
        "slope_val_loss", "max_loss_gap", "end_val_loss", "end_loss_gap", "log_end_val_loss",
        "loss_ratio"}


def test_a_zero_loss_gives_finite_log_and_ratio_features():
    """A float32 train loss of exactly 0 (a train set of one example) made log_end_train_loss
    -inf and loss_ratio inf, which analyze refused as a suspect log of a healthy run."""
    one = synthetic_log(n_runs=1).copy()
    one.loc[one["step"] == 99, ["train_loss", "val_loss"]] = 0.0
    row = feature_table(one, 100).iloc[0]
    floor = float(np.finfo(np.float32).tiny)  # docs/features.md: 1.18e-38, log -87.3
    assert row["log_end_train_loss"] == row["log_end_val_loss"] == pytest.approx(np.log(floor))
    assert round(row["log_end_train_loss"], 1) == -87.3
    assert row["loss_ratio"] == 0.0 and row["end_train_loss"] == 0.0
    one.loc[one["step"] == 99, "val_loss"] = 2.0
    assert feature_table(one, 100).iloc[0]["loss_ratio"] == pytest.approx(2.0 / floor)
    assert np.isfinite(feature_table(one, 100).to_numpy()).all()
