"""Early-stopping study: policies on hand-worked examples, the simulation against direct
computation, the summary's operating point, and the written files."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from grokcast.analysis import sweep_hash
from grokcast.config import LogConfig, RunConfig, SweepConfig
from grokcast.early_stop import (
    COLUMNS,
    POLICIES,
    HeldOut,
    forecaster_stops,
    format_markdown,
    format_summary,
    halving_stops,
    held_out,
    median_stops,
    percentile_stops,
    run_study,
    rungs,
    score,
    simulate,
    summarize,
    training_threshold,
    write_study,
)
from grokcast.features import feature_table
from grokcast.forecast import ForecasterFileError, GrokForecaster
from grokcast.signals import SIGNAL_NAMES
from grokcast.store import SweepStore
from grokcast.train import EnsembleLog

W, N_STEPS = 40, 1000
LOG = LogConfig(dense_until=50, every=50)


# ----------------------------------------------------------------------------- policies

def _held_out(val_loss, val_acc, steps, grok_step, n_steps=100, p=None) -> HeldOut:
    val_loss, val_acc = np.asarray(val_loss, float), np.asarray(val_acc, float)
    R = len(val_loss)
    return HeldOut(run_ids=np.array([f"r{i}" for i in range(R)]), n_steps=np.full(R, n_steps),
                   grok_step=np.asarray(grok_step), steps=np.asarray(steps), val_loss=val_loss,
                   val_acc=val_acc, p_grok=np.full(R, np.nan) if p is None else np.asarray(p),
                   n_excluded=0)


def test_forecaster_stops_low_and_nan_probabilities_at_w():
    stop = forecaster_stops(np.array([0.1, np.nan, 0.6, 0.5]), 0.5, 20, np.full(4, 100))
    assert stop.tolist() == [20, 20, 100, 100]


def test_percentile_stops_the_k_worst_nan_first_ties_by_order():
    loss = np.array([1.0, np.nan, 3.0, 3.0, 2.0])
    n = np.full(5, 100)
    assert percentile_stops(loss, 0, 10, n, higher_is_better=False).tolist() == [100] * 5
    assert percentile_stops(loss, 2, 10, n, higher_is_better=False).tolist() == [
        100, 10, 10, 100, 100]
    acc = np.array([0.5, 0.1, 0.1, 0.9])
    assert percentile_stops(acc, 1, 10, n[:4], higher_is_better=True).tolist() == [
        100, 10, 100, 100]


def test_median_rule_stops_runs_worse_than_the_median():
    loss = np.array([1.0, 2.0, 3.0, 4.0, np.nan])  # median of the finite values: 2.5
    assert median_stops(loss, 10, np.full(5, 100), higher_is_better=False).tolist() == [
        100, 100, 10, 10, 10]
    acc = np.array([0.1, 0.1, 0.1, 0.5])  # median 0.1: nobody is strictly worse
    assert median_stops(acc, 10, np.full(4, 100), higher_is_better=True).tolist() == [100] * 4


def test_rungs_are_geometric_below_n_steps():
    assert rungs(200, 10_000, 2.0) == [200, 400, 800, 1600, 3200, 6400]
    assert rungs(200, 400, 2.0) == [200]
    assert rungs(10, 30, 1.05)[:3] == [10, 11, 12]  # rounded rungs stay distinct
    with pytest.raises(ValueError, match="rung_factor=1"):
        rungs(200, 10_000, 1)
    # Was: loops of ln(50) / ln(factor) multiplications, 13 minutes at 1 + 1e-9.
    with pytest.raises(ValueError, match=r"rung_factor=1.000000001 .* more than 10000 rungs to reach "
                                         r"step 10000; expected a number >= 1.000392"):
        rungs(200, 10_000, 1 + 1e-9)
    assert rungs(200, 10_000, 1.000392)[:3] == [200, 201, 202]


def test_halving_worked_example():
    # 4 runs, rungs 10 and 20 (logged at 0, 9, 19: a rung reads the last logged step below
    # it); keep half at each rung.
    steps = [0, 9, 19]
    loss = [[5, 4, 1], [5, 3, 3], [5, 2, 4], [5, 1, 2]]  # after rung 10: runs 3, 2 survive
    data = _held_out(loss, np.zeros((4, 3)), steps, [-1, -1, -1, -1], n_steps=40)
    # rung 10: keep the 2 lowest losses (runs 3, 2); rung 20: keep 1 of {2: 4, 3: 2} -> run 3.
    assert halving_stops(data, "val_loss", 0.5, [10, 20]).tolist() == [10, 10, 20, 40]
    # keep_fraction 1 never stops; a rung between logged steps uses the last logged value.
    assert halving_stops(data, "val_loss", 1.0, [10, 20]).tolist() == [40] * 4
    assert halving_stops(data, "val_loss", 0.25, [15]).tolist() == [15, 15, 15, 40]
    # A rung at a logged step does not read that step (it would keep run 0, loss 1 there):
    # stopped at 19, a run has read its rows below 19, as the forecaster reads those below W.
    assert halving_stops(data, "val_loss", 0.25, [19]).tolist() == [19, 19, 19, 40]


def test_metric_at_reads_the_last_logged_step_below_it():
    loss = np.array([[3.0, 2.0, 1.0], [4.0, 5.0, 6.0]])
    data = _held_out(loss, np.zeros((2, 3)), [0, 10, 30], [-1, -1])
    for step, column in ((1, 0), (10, 0), (11, 1), (30, 1), (31, 2), (10**6, 2)):
        assert data.metric_at("val_loss", step).tolist() == loss[:, column].tolist(), step
    # A policy reading at a step no row lies below has read nothing.
    with pytest.raises(ValueError, match=r"^no logged step below 0$"):
        data.metric_at("val_loss", 0)


def test_decision_step_is_the_given_logged_step_else_the_last_below_w():
    data = _held_out(np.zeros((2, 4)), np.zeros((2, 4)), [0, 10, 20, 30], [-1, -1])
    assert [data.stop_step(w) for w in (1, 11, 20, 21, 31, 10**6)] == [1, 11, 11, 21, 31, 31]
    with pytest.raises(ValueError, match=r"^no logged step below W=0$"):
        data.stop_step(0)
    given = dataclasses.replace(data, decide_step=10)  # a forecaster reading steps 0 and 10
    assert (given.decision_step(31), given.stop_step(31)) == (10, 11)
    for bad, w in ((15, 31), (30, 30)):  # not logged; not below W
        with pytest.raises(ValueError, match=rf"^decide_step={bad} is not allowed with W={w}: "
                                             r"expected a logged step below W \(logged: "
                                             r"\[0, 10, 20, 30\]\)$"):
            dataclasses.replace(data, decide_step=bad).stop_step(w)


def test_score_counts_a_grokker_stopped_after_it_grokked_as_kept():
    data = _held_out(np.zeros((4, 2)), np.zeros((4, 2)), [0, 50], grok_step=[30, 60, -1, -1])
    s = score(np.array([40, 40, 40, 100]), data)  # run 0 grokked at 30 < 40: seen; run 1 lost
    assert s == {"n_stopped": 3, "n_wrongly_stopped": 1, "steps_used": 220, "steps_total": 400,
                 "saved": 1 - 220 / 400, "recall": 0.5}
    # Stopped exactly at its grok step, a run has read its rows below it only: lost (was kept).
    assert score(np.array([30, 100, 40, 100]), data)["recall"] == 0.5


# ----------------------------------------------------------------------------- a synthetic sweep

def _synthetic_store(root, seeds=(0, 1, 2), log=LOG, flip=None) -> SweepStore:
    """12 runs with made-up signals: grokkers have a lower early val loss (noisily) and jump to
    val_acc 1 late; written through SweepStore like a real sweep, logged on ``log``. ``flip``
    (lo, hi): the val loss at steps in [lo, hi) ranks the runs the other way round."""
    rng = np.random.default_rng(sum(seeds))
    runs = [RunConfig(p=23, train_frac=f, weight_decay=wd, seed=s, n_steps=N_STEPS, log=log)
            for f in (0.3, 0.6) for wd in (1.0, 3.0) for s in seeds]
    steps = np.asarray(log.steps(N_STEPS))
    col = {n: k for k, n in enumerate(SIGNAL_NAMES)}
    values = np.empty((len(runs), len(steps), len(SIGNAL_NAMES)))
    for r, run in enumerate(runs):
        groks = run.train_frac == 0.6 and (run.weight_decay == 3.0 or run.seed != 1)
        base = rng.uniform(0.5, 1.5, size=len(SIGNAL_NAMES))
        values[r] = base * (1 + 0.1 * rng.normal(size=(len(steps), len(SIGNAL_NAMES))) ** 2)
        early = 3.0 - 0.8 * groks + 0.4 * rng.normal()
        values[r, :, col["val_loss"]] = early * np.exp(-steps / 3000)
        if flip is not None:
            at = (steps >= flip[0]) & (steps < flip[1])
            values[r, at, col["val_loss"]] = 6.0 - values[r, at, col["val_loss"]]
        grok_at = 300 + 50 * r if groks else N_STEPS + 1
        chance = 0.04 + 0.01 * rng.random(len(steps))
        values[r, :, col["val_acc"]] = np.where(steps >= grok_at, 1.0, chance)
        values[r, 0, col["update_cos"]] = np.nan
    # Within the signals' ranges, which the held-out study checks as `evaluate` does.
    values[:, :, col["train_acc"]] /= values[:, :, col["train_acc"]].max()
    values[:, :, col["update_cos"]] = np.minimum(values[:, :, col["update_cos"]], 1.0)
    values[:, :, [col["erank_we"], col["erank_wu"]]] += 1.0
    values[:, -1, [col["update_norm"], col["update_cos"]]] = np.nan
    store = SweepStore(root)
    store.init(SweepConfig(name="synthetic", p=23, train_fracs=(0.3, 0.6), weight_decays=(1.0, 3.0),
                           seeds=tuple(seeds), n_steps=N_STEPS, log=log))
    store.write_chunk(EnsembleLog(runs=runs, steps=steps, values=values,
                                  stopped_at=np.full(len(runs), -1)), seconds=1.0)
    return store


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """A training sweep, a held-out sweep (other seeds) and a forecaster saved from the first."""
    root = tmp_path_factory.mktemp("early_stop")
    train = _synthetic_store(root / "train", seeds=(0, 1, 2))
    heldout = _synthetic_store(root / "heldout", seeds=(3, 4, 5))
    runs, log = train.runs(), train.log()
    X = feature_table(log, W).reindex(runs["run_id"])
    y = (runs["max_val_acc"] >= 0.9).to_numpy().astype(int)
    model = GrokForecaster(Cs=[1.0]).fit(X, y)
    path = root / "forecaster.json"
    model.save(path, window=W, threshold=0.9, sweep_hash=sweep_hash(runs, log),
               n_train_runs=len(y))
    return {"train": train, "heldout": heldout, "forecaster": GrokForecaster.load(path),
            "path": path, "root": root}


def test_simulate_matches_direct_computation(sweeps):
    store, model = sweeps["heldout"], sweeps["forecaster"]
    runs, log = store.runs(), store.log()
    df = simulate(runs, log, model, window=W, thresholds=[0.0, 0.3, 0.5, 1.0])
    assert list(df.columns) == list(COLUMNS)
    assert list(dict.fromkeys(df["policy"])) == list(POLICIES)

    # Forecaster rows, recomputed run by run.
    p = model.predict_proba(feature_table(log, W).reindex(runs["run_id"]))[:, 1]
    grok = (runs["max_val_acc"] >= 0.9).to_numpy()
    first_grok = log[log["val_acc"] >= 0.9].groupby("run_id")["step"].min()
    assert grok.any() and not grok.all()
    for _, row in df[df["policy"] == "forecaster"].iterrows():
        stopped = p < row["param"]
        kept = sum(g and (not s or first_grok[rid] <= W)
                   for g, s, rid in zip(grok, stopped, runs["run_id"]))
        assert row["n_stopped"] == stopped.sum()
        assert row["recall"] == pytest.approx(kept / grok.sum())
        assert row["saved"] == pytest.approx(stopped.sum() * (N_STEPS - W) / (len(runs) * N_STEPS))
    fc = df[df["policy"] == "forecaster"]
    assert fc.iloc[0]["n_stopped"] == 0 and fc.iloc[-1]["n_stopped"] == len(runs)

    # Percentile rules: k = 0..R runs stopped at W, each costing exactly k * (n_steps - W).
    for signal in ("val_loss", "val_acc"):
        pct = df[df["policy"] == f"percentile_{signal}"]
        assert pct["n_stopped"].tolist() == list(range(len(runs) + 1))
        np.testing.assert_allclose(pct["saved"],
                                   pct["n_stopped"] * (N_STEPS - W) / (len(runs) * N_STEPS))
        assert pct["recall"].is_monotonic_decreasing
    # Halving that keeps ceil(0.98 * 12) = 12 runs per rung stops nothing; at 0.02 it keeps one.
    # (In between neither column need be monotone: who survives a rung depends on who else did.)
    for signal in ("val_loss", "val_acc"):
        asha = df[df["policy"] == f"asha_{signal}"]
        assert (asha.iloc[-1][["saved", "recall", "n_stopped"]] == [0.0, 1.0, 0]).all()
        assert asha.iloc[0]["n_stopped"] == len(runs) - 1
    assert (df["saved"].between(0, 1) & df["recall"].between(0, 1)).all()


def test_simulate_checks_its_inputs(sweeps):
    store, model = sweeps["heldout"], sweeps["forecaster"]
    runs, log = store.runs(), store.log()
    with pytest.raises(ValueError, match="fit on window=40"):
        simulate(runs, log, model, window=30)
    with pytest.raises(ValueError, match=r"thresholds=\[1.5\] is not allowed"):
        simulate(runs, log, model, window=W, thresholds=[1.5])
    never = log.assign(val_acc=log["val_acc"].clip(upper=0.5))
    # With what to try: a sweep shortened for a quick try (found in review).
    with pytest.raises(ValueError, match=f"no finished run reaches val_acc >= 0.9: .* best val "
                       f"acc is 0.500 in {N_STEPS} steps: grokking can take thousands of steps"):
        simulate(runs, never, model, window=W)
    # Was: NaN / inf / '2' raised from inside rungs() (int(NaN), OverflowError, TypeError); a
    # label threshold of -1 labelled every run a grokker; a lone number for thresholds was
    # "'float' object is not iterable"; a path for the forecaster an AttributeError.
    for kwargs, needle in [
            (dict(label_threshold=-1), r"label_threshold=-1 is not allowed: expected a number in \(0, 1\]"),
            (dict(label_threshold=1.01), r"label_threshold=1.01 is not allowed"),
            (dict(rung_factor=float("nan")),
             r"rung_factor=nan is not allowed: expected a number in \(1, inf\)"),
            (dict(rung_factor=float("inf")), r"rung_factor=inf is not allowed"),
            (dict(rung_factor="2"), r"rung_factor='2' is not allowed"),
            (dict(thresholds=0.5), r"thresholds=0.5 is not allowed: expected a non-empty list of "
                                   r"numbers, e.g. thresholds=\(0.5,\)"),
            (dict(thresholds=["a"]), r"thresholds=\['a'\] is not allowed"),
            (dict(thresholds=[10**400]), r"thresholds=\[1000+\] is not allowed"),
            (dict(rung_factor=10**400), r"rung_factor=1000+ is not allowed"),
            (dict(window=40.0), r"window=40.0 is not allowed: expected an integer >= 2")]:
        with pytest.raises(ValueError, match=needle):
            simulate(runs, log, model, **{"window": W, **kwargs})
    by_path = simulate(runs, log, sweeps["path"], window=W, thresholds=pd.Series([0.5]),
                       keep_fractions=np.array([0.5, 1.0]))  # any iterable of numbers
    pd.testing.assert_frame_equal(by_path, simulate(runs, log, model, window=W, thresholds=[0.5],
                                                    keep_fractions=[0.5, 1.0]))
    # Was: a repeated run counted twice (n_runs 13 of 12); a log without val_loss a KeyError; a
    # repeated log row pandas' "Index contains duplicate entries, cannot reshape".
    with pytest.raises(ValueError, match=r"^the runs table holds 2 rows with a repeated run_id "
                                         r"\(e.g. run_id='.*'\): expected one per run_id"):
        simulate(pd.concat([runs, runs.iloc[:1]]), log, model, window=W, thresholds=[0.5])
    with pytest.raises(ValueError, match=r"^the log lacks column\(s\) \['val_loss'\]"):
        simulate(runs, log.drop(columns="val_loss"), model, window=W, thresholds=[0.5])
    with pytest.raises(ValueError, match=r"^the log holds 2 rows with a repeated run_id and step"):
        simulate(runs, pd.concat([log, log.iloc[:1]]), model, window=W, thresholds=[0.5])
    with pytest.raises(TypeError, match="the log must be a pandas DataFrame, got dict"):
        simulate(runs, {}, model, window=W, thresholds=[0.5])
    with pytest.raises(ValueError, match=r"^the sweep holds 1 finished run\(s\); the study needs at "
                                         r"least 2$"):
        simulate(runs.iloc[:1], log, model, window=W, thresholds=[0.5])
    with pytest.raises(ValueError, match=rf"^window={W} is not allowed: runs train {W} steps, so "
                                         r"stopping at W would save nothing$"):
        simulate(runs.assign(n_steps=np.where(runs.index == 2, W, runs["n_steps"])), log, model,
                 window=W, thresholds=[0.5])
    absent = str(runs["run_id"].iloc[1])
    with pytest.raises(ValueError, match=rf"^run '{absent}' has no log rows$"):
        simulate(runs, log[log["run_id"] != absent], model, window=W, thresholds=[0.5])
    # A diverged run has no outcome: left out and counted.
    diverged = runs.assign(status=np.where(runs.index == 0, "diverged", runs["status"]))
    df = simulate(diverged, log, model, window=W, thresholds=[0.5])
    assert (df["n_runs"] == len(runs) - 1).all() and (df["n_excluded"] == 1).all()
    # A finished run with an inf in its window is refused, as `evaluate` refuses it: scored NaN
    # it was counted as stopped, a wrongly stopped grokker that flipped the study's headline.
    run_id = str(runs["run_id"].iloc[3])
    suspect = log.copy()
    suspect.loc[(suspect["run_id"] == run_id) & (suspect["step"] == 20), "val_loss"] = np.inf
    with pytest.raises(ValueError, match=rf"^run '{run_id}' has val_loss = inf at step 20 "):
        simulate(runs, suspect, model, window=W, thresholds=[0.5])
    suspect.loc[(suspect["run_id"] == run_id) & (suspect["step"] == 20), "val_loss"] = 1.0
    simulate(runs, suspect, model, window=W, thresholds=[0.5])  # a finite value is fine


def test_simulate_on_a_sweep_as_long_as_the_forecasters_where_no_run_groks(sweeps, tmp_path):
    """Was told to 'use a sweep trained as long as the forecaster's' whatever the forecaster's
    step budget (the study did not pass it, `evaluate` does): a held-out sweep of the paper's
    10,000 steps where no run groks got the advice to train 10,000 steps."""
    store, model = sweeps["heldout"], sweeps["forecaster"]
    runs, log = store.runs(), store.log()
    never = log.assign(val_acc=log["val_acc"].clip(upper=0.5))
    meta = model.metadata_
    for label_steps, tail in [(N_STEPS, f"in {N_STEPS} steps, as many as the forecaster's "
                                         "training runs had$"),
                              (N_STEPS + 1, f"in {N_STEPS} steps: grokking can take thousands of "
                                             "steps, so use a sweep trained as long as the "
                                             "forecaster's$")]:
        path = tmp_path / f"budget{label_steps}.json"
        GrokForecaster.load(sweeps["path"]).save(
            path, window=W, threshold=0.9, sweep_hash=meta.sweep_hash,
            n_train_runs=meta.n_train_runs, label_steps=label_steps)
        with pytest.raises(ValueError, match=r"^no finished run reaches val_acc >= 0.9: .* best "
                                             r"val acc is 0.500 " + tail):
            simulate(runs, never, path, window=W)


def test_simulate_refuses_runs_logged_at_steps_the_others_are_not(sweeps):
    """Was: a run without a row at a step the others log (two sweeps' logs on other schedules
    put together) was read as NaN there by the baselines, ranked worst and stopped."""
    store, model = sweeps["heldout"], sweeps["forecaster"]
    runs, log = store.runs(), store.log()
    run_id = str(runs["run_id"].iloc[2])
    gap = log[~((log["run_id"] == run_id) & (log["step"] == 150))]
    # Successive halving's rung at 4W = 160 reads the rows at step 150: without its own, the run
    # was read as NaN there, though it logged step 100 below it like the others.
    assert sorted(set(log["step"]) - set(gap.loc[gap["run_id"] == run_id, "step"])) == [150]
    assert 160 in rungs(W, N_STEPS, 2.0)
    with pytest.raises(ValueError, match=rf"^run '{run_id}' has no val_acc at step 150, which "
                                         r"other runs log: .* expected runs logged on one schedule"):
        simulate(runs, gap, model, window=W, thresholds=[0.5])


def test_simulate_reads_any_iterable_of_numbers_once(sweeps):
    """Was: a generator for thresholds or keep_fractions was spent by its check, leaving no
    forecaster (or ASHA) rows and a summary without a τ; an array or Series for ``also`` raised
    numpy's "truth value of an array ... is ambiguous"."""
    store, model = sweeps["heldout"], sweeps["forecaster"]
    runs, log = store.runs(), store.log()
    want = simulate(runs, log, model, window=W, thresholds=[0.3, 0.5], keep_fractions=[0.5, 1.0],
                    also=[0.1, 0.2])
    assert want[want["policy"] == "forecaster"]["param"].tolist() == [0.1, 0.2, 0.3, 0.5]
    assert want[want["policy"] == "asha_val_acc"]["param"].tolist() == [0.5, 1.0]
    for kwargs in [dict(thresholds=(t for t in (0.3, 0.5)), keep_fractions=iter([0.5, 1.0]),
                        also=(t for t in (0.1, 0.2))),
                   dict(thresholds=np.array([0.3, 0.5]), keep_fractions=pd.Series([0.5, 1.0]),
                        also=np.array([0.1, 0.2])),
                   dict(thresholds=[0.3, 0.5], keep_fractions=[0.5, 1.0], also=pd.Series([0.2, 0.1]))]:
        pd.testing.assert_frame_equal(simulate(runs, log, model, window=W, **kwargs), want)
    # An empty array adds nothing, as the default () does.
    pd.testing.assert_frame_equal(
        simulate(runs, log, model, window=W, thresholds=[0.5], keep_fractions=[1.0],
                 also=np.array([])),
        simulate(runs, log, model, window=W, thresholds=[0.5], keep_fractions=[1.0]))


def test_simulate_and_summarize_take_float32_settings_as_the_decimals_they_print_as(sweeps):
    """Was: the grids went through float(), so np.float32(0.4) (read from a float32 column)
    was 0.4000000059604645: ASHA kept ceil(0.4 * 10) = 5 runs where 0.4 keeps 4, and the
    rows were keyed 0.4000000059604645, which summarize(threshold=0.2) did not find."""
    store, model = sweeps["heldout"], sweeps["forecaster"]
    runs, log = store.runs(), store.log()
    kf, th = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [0.1, 0.3, 0.5, 0.7]
    plain = simulate(runs, log, model, window=W, thresholds=th, keep_fractions=kf, also=[0.2])
    f32 = simulate(runs, log, model, window=W, thresholds=np.array(th, np.float32),
                   keep_fractions=np.array(kf, np.float32), also=[np.float32(0.2)])
    pd.testing.assert_frame_equal(f32, plain)
    assert plain[plain["policy"] == "asha_val_loss"]["param"].tolist() == kf
    assert (summarize(plain, threshold=np.float32(0.2), tau="fixed")
            == summarize(plain, threshold=0.2, tau="fixed"))


def test_summary_takes_the_largest_saving_that_keeps_min_recall(sweeps):
    store, model = sweeps["heldout"], sweeps["forecaster"]
    df = simulate(store.runs(), store.log(), model, window=W)
    s = summarize(df, min_recall=0.9)
    fc = df[df["policy"] == "forecaster"]
    ok = fc[fc["recall"] >= 0.9]
    assert s["forecaster"]["saved"] == ok["saved"].max()
    assert s["forecaster"]["param"] == ok[ok["saved"] == ok["saved"].max()]["param"].min()
    for key in ("percentile_val_loss", "percentile_val_acc"):  # exactly the same budget
        assert s["same_budget"][key]["saved"] == pytest.approx(s["forecaster"]["saved"])
        assert s["same_budget"][key]["n_stopped"] == s["forecaster"]["n_stopped"]
    for key in ("asha_val_loss", "asha_val_acc"):  # the nearest budget on the grid
        asha = df[df["policy"] == key]
        gap = (asha["saved"] - s["forecaster"]["saved"]).abs()
        assert abs(s["same_budget"][key]["saved"] - s["forecaster"]["saved"]) == gap.min()
    # The summary's τ is picked with the runs' outcomes; the printed line says so (it read as a
    # held-out result; found in a review of the CLI).
    assert (f"forecaster, τ = {s['forecaster']['param']:g} (chosen on these runs' outcomes as "
            "the most saved keeping >= 90% of grokking runs: an optimistic operating point): "
            "saves") in format_summary(s)
    assert "keeping >= 97.5% of grokking runs" in format_summary({**s, "min_recall": 0.975})
    # Unreachable recall: no operating point, the rest still reported.
    none = summarize(df[(df["policy"] != "forecaster") | (df["param"] > 0.999)], min_recall=1.0)
    assert none["forecaster"] is None and none["same_budget"] is None
    assert set(none["median"]) == {"median_val_loss", "median_val_acc"}
    assert "no forecaster threshold keeps" in format_summary(none)
    # The Markdown says so too. Was: "The summary's τ was chosen on these runs' outcomes as the
    # most saved keeping >= 100% of grokking runs", of a summary without a τ (found in review:
    # run_study(thresholds=[0.9, 0.95]) on a held-out sweep with grokkers below P = 0.9).
    text = format_markdown(df[(df["policy"] != "forecaster") | (df["param"] > 0.999)], none)
    assert "No τ tried keeps >= 100% of grokking runs, so the summary has no τ" in text
    assert "The summary's τ was" not in text
    # Was: min_recall=-1 picked a point keeping no grokker; an empty table an IndexError.
    for bad in (-1, 2, float("nan")):
        with pytest.raises(ValueError, match=rf"^min_recall={bad!r} is not allowed: expected a "
                                             r"number in \[0, 1\]"):
            summarize(df, min_recall=bad)
    with pytest.raises(ValueError, match="summarize needs simulate's table .*: this one is empty"):
        summarize(df.iloc[:0])
    with pytest.raises(ValueError, match=r"this one lacks column\(s\) \['saved'\]"):
        summarize(df.drop(columns="saved"))


def test_write_study_files(sweeps, tmp_path):
    store, model = sweeps["heldout"], sweeps["forecaster"]
    df = simulate(store.runs(), store.log(), model, window=W)
    paths = write_study(df, tmp_path / "out")
    assert [p.name for p in paths] == ["early_stop.json", "early_stop.md", "early_stop.png",
                                       "early_stop.pdf"]
    doc = json.loads(paths[0].read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert len(doc["rows"]) == len(df) and doc["summary"] == json.loads(json.dumps(summarize(df)))
    assert paths[1].read_text() == format_markdown(df, summarize(df))
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[3].read_bytes()[:5] == b"%PDF-"
    write_study(df, tmp_path / "again")  # same input, same PDF bytes
    assert (tmp_path / "again" / "early_stop.pdf").read_bytes() == paths[3].read_bytes()


@pytest.mark.parametrize("signal", ["train_loss", "val_loss"])
def test_the_stop_hook_stops_runs_with_nothing_finite_to_read_even_at_below_0(sweeps, signal):
    """A run whose train loss is not finite has diverged (no P(grok) is computed); one whose
    val loss is, has no finite features: each gets P(grok) NaN and is stopped, at any
    threshold, here when every run of the chunk is so."""
    from grokcast.early_stop import forecast_hook, stop_rule
    from grokcast.signals import SIGNAL_NAMES

    config = sweeps["heldout"].read_config()
    runs = config.runs()
    log = sweeps["heldout"].log().set_index(["step", "run_id"])
    steps = sorted({t for t, _ in log.index if t < W})

    def decisions(broken: bool) -> list:
        hook = forecast_hook(stop_rule(sweeps["path"], 0.0, config), runs)
        out = []
        for step in steps:
            values = log.loc[step].reindex([r.run_id for r in runs])[list(SIGNAL_NAMES)].to_numpy(copy=True)
            if broken and step == 5:
                values[:, list(SIGNAL_NAMES).index(signal)] = np.inf
            out.append(hook(step, values))
        return out

    intact, broken = decisions(False), decisions(True)
    assert all(d is None for d in intact[:-1] + broken[:-1])  # the decision is at the last step
    assert not intact[-1].any()  # P(grok) >= 0: none below 0
    assert broken[-1].tolist() == [True] * len(runs)


def test_run_study_refuses_the_training_sweep(sweeps, tmp_path):
    with pytest.raises(ValueError, match="the sweep the forecaster was fit on"):
        run_study(sweeps["path"], sweeps["train"].root, tmp_path / "x")
    # A bad number is named before the sweep's checks (was: the training-sweep error above).
    with pytest.raises(ValueError, match=r"^min_recall=2 is not allowed"):
        run_study(sweeps["path"], sweeps["train"].root, tmp_path / "x", min_recall=2)
    with pytest.raises(ValueError, match=r"^threshold=-0.1 is not allowed"):
        run_study(sweeps["path"], sweeps["train"].root, tmp_path / "x", threshold=-0.1)
    result = run_study(sweeps["path"], sweeps["heldout"].root, tmp_path / "study")
    assert result["window"] == W and result["n_runs"] == 12 and len(result["paths"]) == 4
    assert math.isfinite(result["median"]["median_val_loss"]["saved"])
    doc = pd.read_json(tmp_path / "study" / "early_stop.json", typ="series")
    assert doc["summary"]["window"] == W
    # What produced the numbers, checked against independent computations of each.
    import hashlib
    from pathlib import Path

    import grokcast
    from grokcast.analysis import sweep_hash

    # The numbers are simulate's and summarize's on the held-out sweep, at the forecaster's
    # own label threshold and the default min_recall (only three of them were checked: a
    # run_study that ignored min_recall passed; found in an audit of the tests).
    model = GrokForecaster.load(sweeps["path"])
    want = summarize(simulate(sweeps["heldout"].runs(), sweeps["heldout"].log(), model, window=W,
                              label_threshold=model.metadata_.threshold), min_recall=0.9)
    # A file without train_heldout: τ on the outcomes, said so; without label_steps: no horizon.
    want["notes"] = ["the forecaster file records no held-out P(grok) of its training runs "
                     "(train_heldout: an older file, or one saved without it), so τ was chosen "
                     "on these runs' outcomes; grokcast fit records them"]
    got = {k: v for k, v in result.items() if k != "paths"}
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
    written = json.loads((tmp_path / "study" / "early_stop.json").read_text())
    assert written["summary"] == json.loads(json.dumps(want).replace("NaN", "null"))
    made = written["provenance"]
    assert got["tau"] == "chosen on outcomes"
    # A τ fixed in advance: simulated besides the others and reported as is, whatever it keeps
    # (the chosen τ reads the outcomes; found in a review of the CLI).
    fixed = run_study(sweeps["path"], sweeps["heldout"].root, tmp_path / "fixed", threshold=0.5)
    df = simulate(sweeps["heldout"].runs(), sweeps["heldout"].log(), model, window=W,
                  label_threshold=model.metadata_.threshold, also=(0.5,))
    row = df[(df["policy"] == "forecaster") & (df["param"] == 0.5)].iloc[0]
    assert fixed["tau"] == "fixed" and fixed["forecaster"]["param"] == 0.5
    assert fixed["forecaster"]["saved"] == row["saved"] and fixed["forecaster"]["recall"] == row["recall"]
    assert "forecaster, τ = 0.5 (fixed in advance): saves" in format_summary(fixed)
    with pytest.raises(ValueError, match="threshold=0.3 is not allowed: it is not among the "
                                         "simulated thresholds"):
        summarize(df, threshold=0.3)
    with pytest.raises(ValueError, match=r"^threshold=1.5 is not allowed"):
        run_study(sweeps["path"], sweeps["heldout"].root, tmp_path / "bad", threshold=1.5)
    from grokcast.cli import main  # --min-recall would be silently ignored beside --threshold

    # With --threshold, --min-recall sets the τ chosen on the outcomes shown beside it.
    assert main(["early-stop-study", str(sweeps["heldout"].root), "--model", str(sweeps["path"]),
                 "--out", str(tmp_path / "both"), "--threshold", "0.5", "--min-recall", "0.5"]) == 0
    both = json.loads((tmp_path / "both" / "early_stop.json").read_text())["summary"]
    assert both["forecaster"]["param"] == 0.5 and both["min_recall"] == 0.5
    assert both["on_outcomes"] == summarize(df, min_recall=0.5)["on_outcomes"]
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()) as out:  # --json: the result, as run_study's
        assert main(["early-stop-study", str(sweeps["heldout"].root), "--model", str(sweeps["path"]),
                     "--out", str(tmp_path / "js"), "--stop-below", "0.5", "--json"]) == 0
    printed = json.loads(out.getvalue())
    assert printed["tau"] == "fixed" and printed["forecaster"] == fixed["forecaster"]
    held = sweeps["heldout"]
    assert made == {"grokcast_version": grokcast.__version__, "forecaster": str(sweeps["path"]),
                    "forecaster_sha256": hashlib.sha256(Path(sweeps["path"]).read_bytes()).hexdigest(),
                    "train_sweep_hash": sweep_hash(sweeps["train"].runs(), sweeps["train"].log()),
                    "label_steps": None, "heldout_sweep": str(held.root),
                    "heldout_sweep_hash": sweep_hash(held.runs(), held.log()),
                    "heldout_n_steps": held.read_config().n_steps}




@pytest.mark.parametrize("dense_until", [W + 10, 15], ids=["dense", "W-between-logged-steps"])
def test_cli_sweep_with_stop_model_stops_the_low_runs_and_counts_them(tmp_path, capsys, dense_until):
    from grokcast.cli import main

    cfg = tmp_path / "tiny.toml"
    cfg.write_text('name = "tiny"\ntrain_fracs = [0.3]\nweight_decays = [1.0]\nseeds = [0, 1, 2, 3, 4, 5]\n'
                   f"n_steps = {W + 20}\n[log]\ndense_until = {dense_until}\nevery = 15\n")
    # A forecaster fitted on these very runs (label: the lower half of val loss at W), so that
    # some score below 0.5 and some above; stopping must match its offline scores.
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "s0"), "--quiet",
                 "--workers", "1"]) == 0
    runs, log = SweepStore(tmp_path / "s0").runs(), SweepStore(tmp_path / "s0").log()
    X = feature_table(log, W).reindex(runs["run_id"])
    y = (X["end_val_loss"] < X["end_val_loss"].median()).to_numpy().astype(int)
    model = GrokForecaster(Cs=[1.0]).fit(X, y)
    steps = sorted(set(log["step"][log["step"] < W]))
    model.save(tmp_path / "f.json", window=W, threshold=0.9, sweep_hash=sweep_hash(runs, log),
               n_train_runs=len(y), window_steps=steps)
    expected = dict(zip(runs["run_id"], model.predict_proba(X)[:, 1] < 0.5))
    assert 0 < sum(expected.values()) < len(expected)
    capsys.readouterr()
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "s1"), "--quiet",
                 "--workers", "1", "--stop-model", str(tmp_path / "f.json"), "--stop-below", "0.5"]) == 0
    n = sum(expected.values())
    assert f"{n} of the sweep's 6 runs were stopped early" in capsys.readouterr().out
    status = SweepStore(tmp_path / "s1").runs().set_index("run_id")["status"]
    assert (status == "stopped").to_dict() == expected
    # The stopped sweep's offline forecasts are the unstopped one's: a run stopped at the last
    # step the forecaster reads (30, where W = 40 falls between logged steps) is forecast (it
    # was refused: "W can be at most 31").
    from grokcast.tool import forecast_log

    got = forecast_log(tmp_path / "f.json", tmp_path / "s1")
    assert got["left_out"] == {}
    assert {r["run_id"]: r["p_grok"] for r in got["runs"]} == pytest.approx(
        dict(zip(runs["run_id"], model.predict_proba(X)[:, 1])), rel=1e-9)
    if dense_until == W + 10:  # worker processes get the rule pickled and build the hook there
        assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "s3"), "--quiet",
                     "--workers", "2", "--chunk-size", "3",
                     "--stop-model", str(tmp_path / "f.json"), "--stop-below", "0.5"]) == 0
        runs3 = SweepStore(tmp_path / "s3").runs()
        assert runs3["chunk"].nunique() == 2
        assert (runs3.set_index("run_id")["status"] == "stopped").to_dict() == expected
    # The rule is part of the sweep: resuming under another one (or none) is refused.
    base = ["sweep", "--config", str(cfg), "--quiet", "--out"]
    for out, extra, needle in (
            ("s1", ["--stop-model", str(tmp_path / "f.json"), "--stop-below", "0.6"],
             "--stop-below 0.5, not with --stop-model"),
            ("s1", [], "--stop-below 0.5, not without --stop-model"),
            # Was "--stop-below 0.5, not with ... --stop-below 0.5": thresholds printed to %g.
            ("s1", ["--stop-model", str(tmp_path / "f.json"), "--stop-below", "0.50000001"],
             "--stop-below 0.50000001: resume with the same"),
            ("s0", ["--stop-model", str(tmp_path / "f.json"), "--stop-below", "0.5"],
             "was trained without --stop-model, not with")):
        capsys.readouterr()
        assert main(base + [str(tmp_path / out), *extra]) == 2
        err = capsys.readouterr().err
        assert needle in err and "resume with the same, or use a new --out" in err
    assert main(base + [str(tmp_path / "s1"), "--stop-model", str(tmp_path / "f.json"),
                        "--stop-below", "0.5"]) == 0
    # A sweep stopped before stop.json existed: not resumable without a rule; with one, recorded.
    (tmp_path / "s1" / "stop.json").unlink()
    assert main(base + [str(tmp_path / "s1")]) == 2
    assert "runs stopped by a --stop-model rule that was not recorded" in capsys.readouterr().err
    assert main(base + [str(tmp_path / "s1"), "--stop-model", str(tmp_path / "f.json"),
                        "--stop-below", "0.5"]) == 0
    assert json.loads((tmp_path / "s1" / "stop.json").read_text())["below"] == 0.5
    # The forecaster file is checked by content at every chunk: a file changed mid-sweep
    # is an error, not a silent switch of the stopping model.
    from grokcast.early_stop import StopRule, forecast_hook

    rule = StopRule(str(tmp_path / "f.json"), 0.5, model_sha256="0" * 64)
    with pytest.raises(ValueError, match="changed during the sweep"):
        forecast_hook(rule, SweepConfig.from_file(cfg).runs())
    if dense_until == 15:  # a model fit on every step below W cannot read this sparse log
        # Its coefficients stand in for such a model's: fit on the values alone, as save()
        # refuses steps other than those of a feature table that records them.
        values = X.copy()
        values.attrs = {}
        GrokForecaster(Cs=[1.0]).fit(values, y).save(
            tmp_path / "dense.json", window=W, threshold=0.9, n_train_runs=len(y),
            sweep_hash=sweep_hash(runs, log), window_steps=list(range(W)))
        assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "s2"), "--quiet",
                     "--stop-model", str(tmp_path / "dense.json"), "--stop-below", "0.5"]) == 2
        assert "skips step(s) [16, 17, 18" in capsys.readouterr().err


def test_stop_model_fit_on_sparser_steps_reads_only_those_in_a_dense_sweep(tmp_path, capsys):
    """A forecaster fit on every other step, a sweep logging every step below W: the hook
    decides on the forecaster's steps alone, as the offline forecast on the cut log does."""
    from grokcast.cli import main

    cfg = tmp_path / "tiny.toml"
    cfg.write_text('name = "tiny"\ntrain_fracs = [0.3]\nweight_decays = [1.0]\nseeds = [0, 1, 2, 3, 4, 5]\n'
                   f"n_steps = {W + 20}\n[log]\ndense_until = {W + 10}\nevery = 15\n")
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "s0"), "--quiet",
                 "--workers", "1"]) == 0
    runs, log = SweepStore(tmp_path / "s0").runs(), SweepStore(tmp_path / "s0").log()
    steps = list(range(0, W, 2))
    cut = log[log["step"].isin(steps) | (log["step"] >= W)]
    X = feature_table(cut, W).reindex(runs["run_id"])
    y = (X["end_val_loss"] < X["end_val_loss"].median()).to_numpy().astype(int)
    model = GrokForecaster(Cs=[1.0]).fit(X, y)
    model.save(tmp_path / "f.json", window=W, threshold=0.9, sweep_hash=sweep_hash(runs, log),
               n_train_runs=len(y), window_steps=steps)
    p_cut = model.predict_proba(X)[:, 1]
    p_dense = model.predict_proba(feature_table(log, W).reindex(runs["run_id"]))[:, 1]
    # A threshold between the two forecasts of the run where they differ most: reading every
    # step instead of the forecaster's would flip that run's decision.
    k = int(np.argmax(np.abs(p_cut - p_dense)))
    assert abs(p_cut[k] - p_dense[k]) > 1e-3
    below = float((p_cut[k] + p_dense[k]) / 2)
    expected = dict(zip(runs["run_id"], p_cut < below))
    assert (p_dense < below).tolist() != list(expected.values())
    capsys.readouterr()
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "s1"), "--quiet",
                 "--workers", "1", "--stop-model", str(tmp_path / "f.json"), "--stop-below", str(below)]) == 0
    stopped = SweepStore(tmp_path / "s1").runs().set_index("run_id")["status"] == "stopped"
    assert stopped.to_dict() == expected
    # The offline study reads the same steps of the dense held-out log.
    loaded = GrokForecaster.load(tmp_path / "f.json")
    data = held_out(runs, log, loaded, window=W, label_threshold=float(runs["max_val_acc"].max()))
    order = pd.Index(runs["run_id"]).get_indexer(data.run_ids)
    np.testing.assert_allclose(data.p_grok, p_cut[order], rtol=1e-12)


# ----------------------------------------------------------------------------- plain-loop references

def _plain_score(stop_at, n_steps, grok_step) -> dict:
    """score() by a loop: a grokker is kept unless stopped at or before its first grokking
    step (stopped at r, a run has read its rows below r)."""
    n_grok = sum(g >= 0 for g in grok_step)
    kept = stopped = used = 0
    for stop, n, g in zip(stop_at, n_steps, grok_step):
        used += min(stop, n)
        stopped += stop < n
        if g >= 0 and (stop >= n or g < stop):
            kept += 1
    return {"n_stopped": stopped, "n_wrongly_stopped": n_grok - kept, "steps_used": used,
            "steps_total": sum(n_steps), "saved": 1 - used / sum(n_steps),
            "recall": kept / n_grok}


def _value_at(steps, row, step) -> float:
    """The value at the last logged step below step."""
    value = None
    for s, v in zip(steps, row):
        if s < step:
            value = v
    return value


def _badness_of(value, higher_is_better) -> float:
    if math.isnan(value):
        return math.inf
    return -value if higher_is_better else value


# Hand-made held-out sweep: W = 20, rungs 20, 40, 80, 160 (runs of 100 or 200 steps). Run 2
# groks exactly at W; val acc and val loss rank the runs differently, with ties and NaNs.
# W falls between logged steps (19 is not): a forecaster fit on this schedule reads steps 0
# and 10, the live rule decides on row 10 after that step's update, and a run it stops has
# trained H_STOP = 11 steps (was charged W = 20).
HW, H_STOP = 20, 11
H_STEPS = [0, 10, 20, 40, 80, 160]
H_N_STEPS = [200, 200, 200, 200, 100, 200, 200, 100]
H_ACC = [[0.0, 0.10, 0.30, 0.50, 0.95, 1.0],
         [0.0, 0.05, 0.05, 0.10, 0.20, 0.30],
         [0.0, 0.20, 0.92, 0.40, 0.95, 0.99],
         [0.0, 0.05, 0.10, 0.10, 0.15, 0.20],
         [0.0, 0.10, 0.30, 0.60, 0.91, np.nan],
         [0.0, 0.10, np.nan, 0.20, 0.30, 0.40],
         [0.0, 0.10, 0.30, 0.30, 0.93, 0.97],
         [0.0, 0.05, 0.05, 0.05, 0.06, np.nan]]
H_LOSS = [[5, 4.0, 3.0, 2.5, 0.5, 0.1],
          [5, 4.5, 3.5, 3.0, 2.9, 2.8],
          [5, 4.2, 3.6, 2.0, 0.4, 0.2],
          [5, 4.4, 3.5, 3.2, 3.1, 3.0],
          [5, 4.1, 2.8, 1.5, 0.6, np.nan],
          [5, 4.0, np.nan, 3.3, 3.3, 3.3],
          [5, 4.1, 3.0, 2.2, 0.3, 0.2],
          [5, 4.6, 3.9, 3.8, 3.7, np.nan]]
H_P = [0.8, 0.1, 0.3, 0.2, 0.9, np.nan, 0.6, 0.4]


def _first_grok(steps, acc, level=0.9) -> list[int]:
    out = []
    for row in acc:
        first = -1
        for s, v in zip(steps, row):
            if not math.isnan(v) and v >= level:
                first = s
                break
        out.append(first)
    return out


def test_simulate_held_out_rows_match_plain_loops_on_a_hand_made_sweep():
    from grokcast.early_stop import simulate_held_out

    R = len(H_ACC)
    grok_step = _first_grok(H_STEPS, H_ACC)
    assert grok_step == [80, -1, 20, -1, 80, -1, 80, -1]
    data = HeldOut(run_ids=np.array([f"r{i}" for i in range(R)]), n_steps=np.array(H_N_STEPS),
                   grok_step=np.array(grok_step), steps=np.array(H_STEPS),
                   val_loss=np.array(H_LOSS, float), val_acc=np.array(H_ACC, float),
                   p_grok=np.array(H_P), n_excluded=0)
    thresholds, keep_fractions = [0.0, 0.35, 0.7, 1.0], [0.25, 0.3, 0.5, 0.75, 1.0]
    df = simulate_held_out(data, window=HW, thresholds=thresholds, keep_fractions=keep_fractions,
                           rung_factor=2.0, label_threshold=0.9)
    higher = {"val_loss": False, "val_acc": True}
    table = {"val_loss": H_LOSS, "val_acc": H_ACC}

    expected = []  # (policy, param, stop_at)
    for t in thresholds:
        expected.append(("forecaster", t, [H_STOP if (math.isnan(p) or p < t) else n
                                           for p, n in zip(H_P, H_N_STEPS)]))
    for signal in ("val_loss", "val_acc"):
        bad = [_badness_of(_value_at(H_STEPS, table[signal][i], HW), higher[signal])
               for i in range(R)]
        worst_first = sorted(range(R), key=lambda i: (-bad[i], i))
        for k in range(R + 1):
            expected.append((f"percentile_{signal}", k / R,
                             [H_STOP if i in worst_first[:k] else H_N_STEPS[i]
                              for i in range(R)]))
    for signal in ("val_loss", "val_acc"):
        bad = [_badness_of(_value_at(H_STEPS, table[signal][i], HW), higher[signal])
               for i in range(R)]
        finite = sorted(b for b in bad if math.isfinite(b))
        mid = len(finite) // 2
        median = finite[mid] if len(finite) % 2 else (finite[mid - 1] + finite[mid]) / 2
        stop = [H_STOP if b > median else n for b, n in zip(bad, H_N_STEPS)]
        expected.append((f"median_{signal}", sum(s < n for s, n in zip(stop, H_N_STEPS)) / R, stop))
    rung_list = [20, 40, 80, 160]
    for signal in ("val_loss", "val_acc"):
        for kf in keep_fractions:
            stop, alive = list(H_N_STEPS), [True] * R
            for r in rung_list:
                here = [i for i in range(R) if alive[i] and H_N_STEPS[i] > r]
                if not here:
                    break
                bad = {i: _badness_of(_value_at(H_STEPS, table[signal][i], r), higher[signal])
                       for i in here}
                best_first = sorted(here, key=lambda i: (bad[i], i))
                n_keep = math.ceil(Fraction(str(kf)) * len(here))
                for i in best_first[n_keep:]:
                    stop[i], alive[i] = r, False
            expected.append((f"asha_{signal}", kf, stop))

    assert len(df) == len(expected)
    for (_, row), (policy, param, stop) in zip(df.iterrows(), expected):
        want = _plain_score(stop, H_N_STEPS, grok_step)
        assert (row["policy"], row["param"]) == (policy, pytest.approx(param)), (policy, param)
        for key, value in want.items():
            assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-12), (policy, param, key)
    # The two signals rank differently: the percentile rows must not coincide.
    by = {s: df[df["policy"] == f"percentile_{s}"]["recall"].tolist() for s in higher}
    assert by["val_loss"] != by["val_acc"]
    # Run 2 groks exactly at W and is stopped by τ = 0.35 on its row at step 10: it was not
    # seen to grok (as the live stop rule, deciding there, would have lost it).
    fc = df[(df["policy"] == "forecaster") & (df["param"] == 0.35)].iloc[0]
    assert fc["n_stopped"] == 4 and fc["n_wrongly_stopped"] == 1 and fc["recall"] == 0.75


def test_held_out_grok_step_is_the_first_crossing_and_a_run_grokking_before_w_is_kept(sweeps):
    """Val acc that crosses the threshold, dips and crosses again: the first logged crossing is
    the grok step; a run stopped at W that grokked before W is kept, one that grokked exactly at
    W is not: stopped at W, it has read the rows below W (was: kept, where the live stop rule,
    deciding at W - 1, loses it)."""
    store, model = sweeps["heldout"], sweeps["forecaster"]
    runs, log = store.runs(), store.log().copy()
    ids = sorted(runs["run_id"])
    non_grokkers = [r for r in ids if runs.set_index("run_id").loc[r, "max_val_acc"] < 0.9]
    grokkers = [r for r in ids if r not in non_grokkers]
    a, b, c = non_grokkers[0], grokkers[0], grokkers[1]

    def set_acc(run_id, step, value):
        mask = (log["run_id"] == run_id) & (log["step"] == step)
        assert mask.sum() == 1
        log.loc[mask, "val_acc"] = value

    set_acc(a, W, 0.95)  # groks exactly at W, dips, crosses again at 500, ends below
    set_acc(a, 50, 0.3)
    set_acc(a, 500, 0.92)
    set_acc(b, 20, 0.91)  # groks before W, dips below, groks again later (unchanged)
    set_acc(b, 21, 0.2)
    set_acc(c, 100, 0.93)  # crosses after W, dips, groks again later
    set_acc(c, 150, 0.1)

    first, last = {}, {}
    for run_id in ids:
        rows = log[log["run_id"] == run_id].sort_values("step")
        first[run_id], last[run_id] = -1, -1
        for step, acc in zip(rows["step"], rows["val_acc"]):
            if np.float32(acc) >= np.float32(0.9):
                last[run_id] = int(step)
                if first[run_id] < 0:
                    first[run_id] = int(step)
    assert (first[a], first[b], first[c]) == (W, 20, 100)
    assert first[a] != last[a] and first[b] != last[b] and first[c] != last[c]

    data = held_out(runs, log, model, window=W)
    assert dict(zip(data.run_ids, data.grok_step.tolist())) == first
    # τ = 1 stops every run at W: kept are exactly the runs that grokked at a step < W.
    df = simulate(runs, log, model, window=W, thresholds=[0.0, 1.0])
    every = df[(df["policy"] == "forecaster") & (df["param"] == 1.0)].iloc[0]
    n_steps = runs.set_index("run_id").loc[list(data.run_ids), "n_steps"].tolist()
    want = _plain_score([W] * len(ids), n_steps, [first[r] for r in data.run_ids])
    assert want["recall"] == 1 / sum(s >= 0 for s in first.values())  # run b, not a
    for key, value in want.items():
        assert every[key] == pytest.approx(value, rel=1e-12), key


@pytest.mark.parametrize("order", ["increasing", "decreasing"])
def test_summary_breaks_ties_in_saving_by_the_smallest_threshold(order):
    """Two thresholds saving the same compute with enough recall: the smaller one is reported
    (summarize's docstring), whatever the order of the rows."""
    base = dict(window=20, label_threshold=0.9, n_runs=4, n_grok=2, n_excluded=0,
                steps_used=0, steps_total=400)

    def row(policy, param, n_stopped, saved, recall, wrong=0):
        signal = "p_grok" if policy == "forecaster" else policy.split("_", 1)[1]
        name = {"forecaster": "threshold", "percentile": "fraction_stopped",
                "median": "fraction_stopped", "asha": "keep_fraction"}[policy.split("_")[0]]
        return {"policy": policy, "signal": signal, "param_name": name, "param": param,
                **base, "n_stopped": n_stopped, "n_wrongly_stopped": wrong, "saved": saved,
                "recall": recall}

    fc = [row("forecaster", 0.2, 1, 0.225, 1.0), row("forecaster", 0.4, 2, 0.45, 1.0),
          row("forecaster", 0.6, 2, 0.45, 1.0), row("forecaster", 0.8, 3, 0.675, 0.5, 1)]
    if order == "decreasing":
        fc = fc[::-1]
    rest = [row(f"percentile_{s}", k / 4, k, k * 0.225, 1.0 - k / 4)
            for s in ("val_loss", "val_acc") for k in range(5)]
    rest += [row(f"median_{s}", 0.25, 1, 0.225, 1.0) for s in ("val_loss", "val_acc")]
    rest += [row(f"asha_{s}", kf, 1, 0.2 * kf, 1.0) for s in ("val_loss", "val_acc")
             for kf in (0.5, 1.0)]
    df = pd.DataFrame(fc + rest)[list(COLUMNS)]
    s = summarize(df, min_recall=0.9)
    assert s["forecaster"]["param"] == 0.4
    assert s["forecaster"]["saved"] == 0.45 and s["forecaster"]["n_stopped"] == 2
    assert s["same_budget"]["percentile_val_acc"]["n_stopped"] == 2
    # A given τ (simulate's also=) is the smallest of its tie here: the τ chosen on the
    # outcomes, shown beside it, is still the grid's 0.4, not the given τ named as "chosen on
    # these runs' outcomes" (early-stop-study --threshold printed that).
    given = pd.DataFrame(fc + [row("forecaster", 0.3, 2, 0.45, 1.0)] + rest)[list(COLUMNS)]
    fixed = summarize(given, min_recall=0.9, threshold=0.3, tau="fixed")
    assert fixed["forecaster"]["param"] == 0.3 and fixed["on_outcomes"]["param"] == 0.4
    assert summarize(given, min_recall=0.9)["on_outcomes"]["param"] == 0.3  # no τ given: a tie
    allowed = (r" is not allowed: expected one of \('chosen on training runs', 'fixed'\) with a "
               r"threshold, or 'chosen on outcomes' without one$")
    for tau, threshold in (("sometimes", 0.3), ("fixed", None), ("chosen on outcomes", 0.3)):
        with pytest.raises(ValueError, match=rf"^tau={re.escape(repr(tau))}{allowed}"):
            summarize(given, min_recall=0.9, threshold=threshold, tau=tau)


def test_markdown_same_budget_table_shows_a_row_per_display_threshold():
    """The default thresholds are the held-out P(grok) values: none equals 0.05, ..., 0.9, and
    the table kept the summary's row alone (found in review). Each display τ = t is shown by
    the row stopping the same runs, the smallest threshold at or above t."""
    from grokcast.early_stop import TABLE_THRESHOLDS

    p = np.array([0.013, 0.07, 0.15, 0.33, 0.52, 0.58, 0.81, 0.97])
    rows = [{"policy": "forecaster", "param": t, "n_stopped": int((p < t).sum()), "saved": 0.1,
             "recall": 1.0, "n_wrongly_stopped": 0} for t in [*p, 0.98]]
    rows += [{"policy": f"percentile_{sig}", "param": k / 8, "n_stopped": k, "saved": 0.1,
              "recall": 1.0, "n_wrongly_stopped": 0} for sig in ("val_loss", "val_acc")
             for k in range(9)]
    df = pd.DataFrame(rows).assign(param_name="threshold")
    summary = {"window": 20, "n_runs": 8, "n_grok": 2, "label_threshold": 0.9, "n_excluded": 0,
               "min_recall": 0.9,
               "forecaster": None}
    text = format_markdown(df, summary)
    shown = [float(line.split("|")[1]) for line in text.splitlines()
             if line.startswith("| 0.") or line.startswith("| 1")]
    want = sorted({min(t for t in [*p, 0.98] if t >= d) for d in TABLE_THRESHOLDS})
    assert shown == want and len(shown) == 6
    for line in text.splitlines():  # each row stops the runs that τ = its display value would
        if line.startswith("| 0."):
            tau, n = float(line.split("|")[1]), int(line.split("|")[2])
            assert n == int((p < tau).sum())


def test_live_hook_stops_a_diverged_run_and_keeps_the_offline_decisions_of_the_rest(sweeps,
                                                                                     tmp_path):
    """A run whose log turns NaN before the decision has no finite features: it is stopped,
    at any threshold, 0 included; the others are stopped exactly where their offline P(grok) is."""
    from grokcast.early_stop import StopRule

    store, model = sweeps["heldout"], sweeps["forecaster"]
    runs_df, log = store.runs(), store.log()
    runs = [RunConfig(p=23, train_frac=f, weight_decay=wd, seed=s, n_steps=N_STEPS, log=LOG)
            for f, wd, s in runs_df[["train_frac", "weight_decay", "seed"]].itertuples(index=False)]
    ids = [r.run_id for r in runs]
    p_offline = model.predict_proba(feature_table(log, W).reindex(ids))[:, 1]
    table = log.set_index(["run_id", "step"])[list(SIGNAL_NAMES)]
    nan_cols = [k for k, name in enumerate(SIGNAL_NAMES) if not name.endswith("_acc")]
    for below in (float(np.median(p_offline)), 0.0):
        hook = StopRule.from_file(sweeps["path"], below).hook(runs)
        decisions = []
        for step in LOG.steps(N_STEPS):
            values = table.xs(step, level="step").reindex(ids).to_numpy().copy()
            if step >= 10:  # run 0 diverged at step 10: as the trainer logs it, only the
                values[0, nan_cols] = np.nan  # accuracies stay finite (argmax of NaN logits)
            out = hook(step, values)
            if out is not None:
                decisions.append((step, out.tolist()))
        expected = [True] + (p_offline[1:] < below).tolist()
        assert decisions == [(W - 1, expected)]
    assert 0 < sum(p_offline[1:] < np.median(p_offline)) < len(ids) - 1  # a split of the rest
    # The same with a run that really diverges (1 - lr * wd < 0): the live sweep goes on.
    from grokcast.train import train_ensemble

    real = [RunConfig(p=23, train_frac=0.3, weight_decay=wd, seed=0, n_steps=W + 5, log=LOG)
            for wd in (1.0, 1e6)]
    trained = train_ensemble(real, on_log=StopRule.from_file(sweeps["path"], 1e-6).hook(real))
    assert trained.stopped_at.tolist() == [-1, W - 1]
    # Called by hand: a step skipped, repeated or out of order, or rows of another shape, are
    # refused (were: a decision from the steps it got, or pandas' shape errors).
    def feed(steps, rows=lambda v: v):
        hook = StopRule.from_file(sweeps["path"], 0.5).hook(runs)
        for step in steps:
            hook(step, rows(table.xs(step, level="step").reindex(ids).to_numpy()))

    logged = [t for t in LOG.steps(N_STEPS) if t < W]
    with pytest.raises(ValueError, match=rf"never got step\(s\) \[{logged[3]}\] that the forecaster"):
        feed([t for t in logged if t != logged[3]])
    with pytest.raises(ValueError, match=rf"got step {logged[1]} after step {logged[1]}: expected"):
        feed([logged[0], logged[1], logged[1]])
    with pytest.raises(ValueError, match=rf"got step {logged[0]} after step {logged[1]}"):
        feed([logged[1], logged[0]])
    with pytest.raises(ValueError, match=rf"values of shape \({len(SIGNAL_NAMES)}, {len(ids)}\) at "
                                         rf"step 0: expected \({len(ids)}, {len(SIGNAL_NAMES)}\)"):
        feed([0], rows=lambda v: v.T)
    with pytest.raises(ValueError, match="needs the runs of the ensemble it will see, got none"):
        StopRule.from_file(sweeps["path"], 0.5).hook([])
    # Given to train_ensemble directly (not through run_sweep, which checks the sweep's task),
    # the hook refuses runs of another task (was: P(grok) of p = 29 runs from a p = 23 model).
    with_task = tmp_path / "with-task.json"
    GrokForecaster.load(sweeps["path"]).save(with_task, task=runs[0].task())
    assert StopRule.from_file(with_task, 0.5).hook(runs)  # its own task
    other = [dataclasses.replace(r, p=29) for r in runs[:2]]
    with pytest.raises(ValueError, match=r"^this ensemble holds runs of another task than the "
                                         r"forecaster was fit on: p 29 \(the forecaster's: 23\)"):
        StopRule.from_file(with_task, 0.5).hook(other)


SPARSE = LogConfig(dense_until=30, every=15)  # W = 40 falls between logged steps 30 and 45
COARSE = LogConfig(dense_until=20, every=10)  # below W = 40: steps 0..20 and 30


@pytest.mark.parametrize(("train_log", "held_log", "decides"), [
    (LOG, LOG, W - 1), (SPARSE, SPARSE, 30), (COARSE, LOG, 30)],
    ids=["W-1-logged", "W-between-logged-steps", "held-out-denser"])
def test_study_charges_and_reads_what_the_live_hook_does(tmp_path, train_log, held_log, decides):
    """The study against a plain loop that feeds the real stop hook the held-out log row by
    row: a run the hook stops at step t has trained t + 1 steps (train_ensemble calls it after
    step t's update), and the baselines read the row the hook decided on, as `evaluate`'s
    end-of-window baselines do. Was: W charged (40, where the hook stops at 30: 31 steps), and
    on a held-out sweep logged more densely than the forecaster's, the baselines read W - 1."""
    from sklearn.metrics import roc_auc_score

    from grokcast.early_stop import StopRule
    from grokcast.tool import evaluate_forecaster

    train = _synthetic_store(tmp_path / "train", seeds=(0, 1, 2), log=train_log)
    # Rows between the hook's step and W, which it never reads, rank the runs the other way.
    held = _synthetic_store(tmp_path / "held", seeds=(3, 4, 5), log=held_log,
                            flip=(decides + 1, W))
    runs_t, log_t = train.runs(), train.log()
    X = feature_table(log_t, W).reindex(runs_t["run_id"])
    y = (runs_t["max_val_acc"] >= 0.9).to_numpy().astype(int)
    path = tmp_path / "f.json"
    GrokForecaster(Cs=[1.0]).fit(X, y).save(path, window=W, threshold=0.9, n_train_runs=len(y),
                                            sweep_hash=sweep_hash(runs_t, log_t))
    model = GrokForecaster.load(path)
    runs_df, log = held.runs().sort_values("run_id", ignore_index=True), held.log()
    ids, n_steps = runs_df["run_id"].tolist(), runs_df["n_steps"].tolist()
    runs = [RunConfig(p=23, train_frac=f, weight_decay=wd, seed=s, n_steps=N_STEPS, log=held_log)
            for f, wd, s in runs_df[["train_frac", "weight_decay", "seed"]].itertuples(index=False)]
    assert [r.run_id for r in runs] == ids
    table = log.set_index(["run_id", "step"])[list(SIGNAL_NAMES)]
    grok = [int(table.loc[r].index[table.loc[r, "val_acc"] >= 0.9].min())
            if (table.loc[r, "val_acc"] >= 0.9).any() else -1 for r in ids]
    assert 0 < sum(g >= 0 for g in grok) < len(ids)

    data = held_out(runs_df, log, model, window=W)
    below = float(np.median(data.p_grok))  # picks a threshold that splits the runs, no more
    # The plain loop: the trainer's calls of the hook, a stopped run charged its step + 1.
    hook = StopRule.from_file(path, below).hook(runs)
    charged, asked = list(n_steps), []
    for step in held_log.steps(N_STEPS):
        out = hook(step, table.xs(step, level="step").reindex(ids).to_numpy())
        if out is not None:
            asked.append(step)
            charged = [min(c, step + 1) if stop else c for c, stop in zip(charged, out)]
    assert asked == [decides]
    assert 0 < sum(c < n for c, n in zip(charged, n_steps)) < len(ids)

    df = simulate(runs_df, log, model, window=W, thresholds=[below])
    fc = df[df["policy"] == "forecaster"].iloc[0]
    for key, value in _plain_score(charged, n_steps, grok).items():
        assert fc[key] == pytest.approx(value, rel=1e-12), key
    assert data.run_ids.tolist() == ids  # run by run:
    assert forecaster_stops(data.p_grok, below, data.stop_step(W), data.n_steps).tolist() == charged

    # The baselines at the hook's row: the k worst, and the median rule, charged as it is.
    at_d = [float(table.loc[(r, decides), "val_loss"]) for r in ids]
    worst_first = sorted(range(len(ids)), key=lambda i: (-at_d[i], i))
    pct = df[df["policy"] == "percentile_val_loss"]
    for k, (_, row) in enumerate(pct.iterrows()):
        stop = [decides + 1 if i in worst_first[:k] else n for i, n in enumerate(n_steps)]
        for key, value in _plain_score(stop, n_steps, grok).items():
            assert row[key] == pytest.approx(value, rel=1e-12), (k, key)
    median = float(np.median(at_d))
    stop = [decides + 1 if v > median else n for v, n in zip(at_d, n_steps)]
    med = df[df["policy"] == "median_val_loss"].iloc[0]
    for key, value in _plain_score(stop, n_steps, grok).items():
        assert med[key] == pytest.approx(value, rel=1e-12), key
    # `evaluate`'s val-loss baseline scores the same row.
    labels = [g >= 0 for g in grok]
    got = evaluate_forecaster(path, held.root, n_resamples=10)["val_loss"]["auroc"]
    assert got == pytest.approx(roc_auc_score(labels, -np.asarray(at_d)), rel=1e-12)


def test_a_run_the_hook_stops_at_step_t_has_trained_t_plus_1_steps():
    """The +1 the study charges, from the trainer: stopped at logged step t, a run's row t holds
    the update to theta_{t+1}, bitwise the unstopped run's, and no later row is logged."""
    from grokcast.train import train_ensemble

    t = 7
    runs = [RunConfig(p=23, train_frac=0.3, weight_decay=1.0, seed=s, n_steps=12, log=LOG)
            for s in (0, 1)]

    def hook(step, values):
        return np.array([False, True]) if step == t else None

    stopped, free = train_ensemble(runs, on_log=hook), train_ensemble(runs)
    assert stopped.stopped_at.tolist() == [-1, t]
    update = SIGNAL_NAMES.index("update_norm")
    assert np.isfinite(stopped.values[1, t, update])
    np.testing.assert_array_equal(stopped.values[1, : t + 1], free.values[1, : t + 1])
    assert np.isnan(stopped.values[1, t + 1:]).all()


@pytest.mark.parametrize("seed", range(5))
def test_training_threshold_is_the_largest_that_keeps_the_share(seed):
    """Checked by brute force over every candidate τ (and one closed-form case below)."""
    rng = np.random.default_rng(seed)
    pairs = [(float(p), int(y)) for p, y in zip(rng.random(30).round(2), rng.integers(0, 2, 30))]
    every = np.array([p for p, _ in pairs])
    grok = np.array([p for p, y in pairs if y == 1])
    for share in (0.0, 0.3, 0.5, 0.9, 1.0):
        tau = training_threshold(pairs, share)
        kept = grok[grok >= tau]
        assert (grok >= tau).mean() >= share
        if share > 0:  # the largest: keeping one grokker fewer falls below the share
            assert all((grok >= t).mean() < share for t in np.unique(grok) if t > kept.min())
            # midway between the last grokker kept and the next training run below it
            below = every[every < kept.min()]
            assert tau == pytest.approx((kept.min() + (below.max() if below.size else 0)) / 2)
    closed = [(0.9, 1), (0.8, 1), (0.3, 1), (0.1, 1), (0.95, 0), (0.5, 0)]
    assert [training_threshold(closed, r) for r in (1.0, 0.9, 0.75, 0.5, 0.25, 0.0)] == \
        pytest.approx([0.05, 0.05, 0.2, 0.65, 0.85, 1.0])
    with pytest.raises(ValueError, match=r"^train_heldout holds no grokking run: no threshold can keep "
                                         r"one$"):
        training_threshold([(0.9, 0), (0.2, 0)], 0.9)
    # Any iterable of pairs (was: a generator was spent finding the grokkers, so the run below
    # the last one kept went unseen: 0.15, half the last P kept, where the midway point is 0.2).
    assert training_threshold(iter(closed), 0.75) == pytest.approx(0.2)
    assert training_threshold(np.array(closed), 0.75) == pytest.approx(0.2)


def test_run_study_chooses_tau_on_the_training_runs_when_the_file_has_them(sweeps, tmp_path):
    """The default τ used to be chosen on the held-out runs' outcomes (optimistic); with the
    training runs' held-out P(grok) in the file it is chosen before those runs are seen, and the
    optimistic one is reported beside it."""
    model = GrokForecaster.load(sweeps["path"])
    train = sweeps["train"]
    runs, log = train.runs(), train.log()
    X = feature_table(log, W).reindex(runs["run_id"])
    y = (runs["max_val_acc"] >= 0.9).to_numpy().astype(int)
    proba = model.predict_proba(X)[:, 1]  # stand-ins for held-out predictions: any P will do
    path = tmp_path / "with.json"
    model.save(path, window=W, threshold=0.9, sweep_hash=model.metadata_.sweep_hash,
               n_train_runs=len(y), train_heldout=(proba, y))
    assert GrokForecaster.load(path).metadata_.train_heldout == tuple(sorted(zip(proba, y)))
    for share in (0.9, 0.5):
        result = run_study(path, sweeps["heldout"].root, tmp_path / f"s{share}", min_recall=share)
        tau = training_threshold(list(zip(proba, y)), share)
        held = sweeps["heldout"]
        df = simulate(held.runs(), held.log(), model, window=W, label_threshold=0.9, also=(tau,))
        row = df[(df["policy"] == "forecaster") & (df["param"] == tau)].iloc[0]
        assert result["tau"] == "chosen on training runs" and result["notes"] == []
        assert result["forecaster"]["param"] == tau
        got = result["forecaster"]
        assert (got["saved"], got["recall"]) == (row["saved"], row["recall"])
        assert result["on_outcomes"] == summarize(df, min_recall=share)["forecaster"]
        text = format_summary(result)
        assert f"forecaster, τ = {tau:g} (chosen before these runs were seen" in text
        assert f"for comparison, τ = {result['on_outcomes']['param']:g} chosen on these runs' " \
               "outcomes" in text
        md = (tmp_path / f"s{share}" / "early_stop.md").read_text()
        assert "*(on outcomes)*" in md and "**(summary)**" in md
    # Another label threshold than the file's labels: the training P(grok) do not apply.
    other = run_study(path, sweeps["heldout"].root, tmp_path / "other", label_threshold=0.5)
    assert other["tau"] == "chosen on outcomes" and "labelled at 0.9" in other["notes"][0]
    doc = json.loads(path.read_text())
    pairs = doc["train_heldout"]
    n = len(pairs)
    for bad, what in ((pairs[:-1], f"it holds {n - 1} pairs"), (pairs[::-1], "not sorted"),
                      ([[p, 1] for p, _ in pairs], "every label is 1"),
                      (pairs[:4] + [[1.5, 0]] + pairs[5:], "pair 4 is [1.5, 0]"),
                      (pairs[:2] + [[pairs[2][0], True]] + pairs[3:], "pair 2 is"),
                      ("x", "it is 'x', not a list")):
        (tmp_path / "b.json").write_text(json.dumps({**doc, "train_heldout": bad}))
        with pytest.raises(ForecasterFileError, match=r"train_heldout is not allowed: ") as err:
            GrokForecaster.load(tmp_path / "b.json")
        assert what in str(err.value)
    del model.metadata_  # save's own checks, not the loaded file's record
    with pytest.raises(ValueError, match=rf"train_heldout=\({len(y)} probabilities, {len(y) - 1} "
                                         r"labels\) is not allowed"):
        model.save(tmp_path / "c.json", window=W, threshold=0.9, sweep_hash="0" * 64,
                   n_train_runs=len(y), train_heldout=(proba, y[:-1]))
    with pytest.raises(ValueError, match=r"train_heldout is not allowed: pair"):  # was made 0
        model.save(tmp_path / "c.json", window=W, threshold=0.9, sweep_hash="0" * 64,
                   n_train_runs=len(y), train_heldout=(proba, np.where(y == 1, 1, 0.5)))


def _with_train_heldout(sweeps, path, threshold):
    """A forecaster of the training sweep saved with the training runs' P(grok) (any will do)
    and labels, its labels said to be at ``threshold``."""
    runs, log = sweeps["train"].runs(), sweeps["train"].log()
    X = feature_table(log, W).reindex(runs["run_id"])
    y = (runs["max_val_acc"] >= 0.9).to_numpy().astype(int)
    model = GrokForecaster(Cs=[1.0]).fit(X, y)
    model.save(path, window=W, threshold=threshold, sweep_hash=sweep_hash(runs, log),
               n_train_runs=len(y), train_heldout=(model.predict_proba(X)[:, 1], y))
    return path


def test_run_study_takes_the_files_label_threshold_read_back_from_float32(sweeps, tmp_path):
    """Was: label_threshold compared with the file's by ==, so 0.9 read back from a float32
    column (0.8999999762) silently chose τ on the held-out outcomes, with a note saying the
    labels were at 0.9, not at 0.9. Within float32 rounding it is the file's threshold, and
    the study is the one a plain 0.9 gives."""
    path = _with_train_heldout(sweeps, tmp_path / "f.json", 0.9)

    def study(label, name):
        result = run_study(path, sweeps["heldout"].root, tmp_path / name, label_threshold=label)
        return {k: v for k, v in result.items() if k != "paths"}

    plain = study(0.9, "plain")
    assert plain["tau"] == "chosen on training runs" and plain["label_threshold"] == 0.9
    for label in (np.float32(0.9), float(np.float32(0.9)), 0.9 * (1 + 5e-7)):
        assert study(label, "f32") == plain
    # Truly another level: τ on the outcomes, the note naming both values apart.
    other = study(0.9 * (1 + 2e-6), "other")
    assert other["tau"] == "chosen on outcomes"
    assert other["notes"] == ["τ was chosen on these runs' outcomes: the training runs' "
                              "held-out P(grok) are labelled at 0.9, not at "
                              f"label_threshold={0.9 * (1 + 2e-6)!r}"]
    # Six significant digits (:g) printed these two as 0.123456 and 0.123456.
    path = _with_train_heldout(sweeps, tmp_path / "g.json", 0.1234564)
    result = run_study(path, sweeps["heldout"].root, tmp_path / "g", label_threshold=0.1234556)
    assert ("labelled at 0.1234564, not at label_threshold=0.1234556" in result["notes"][0])
    # Refused before it is compared: "0.9" is no number, even beside a file labelled at 0.9.
    for labelled in (path, tmp_path / "f.json"):
        with pytest.raises(ValueError, match=r"label_threshold='0.9' is not allowed: expected a "
                                             r"number in \(0, 1\]"):
            run_study(labelled, sweeps["heldout"].root, tmp_path / "s", label_threshold="0.9")


@pytest.mark.parametrize("command, option, value", [
    ("early-stop-study", "--stop-below", "2"),
    ("early-stop-study", "--threshold", "nan"),
    ("early-stop-study", "--min-recall", "1.5"),
    ("sweep", "--stop-below", "-0.1"),
])
def test_cli_cut_offs_out_of_range_name_the_option_typed(tmp_path, capsys, command, option, value):
    """Found walking the README: ``early-stop-study --stop-below 2`` said ``threshold=2.0 is
    not allowed``, the name of the label threshold that `fit --threshold` sets, not of the
    option typed. Refused as the option is parsed, before any file is read."""
    from grokcast.cli import main

    args = {"early-stop-study": ["early-stop-study", str(tmp_path / "heldout"), "--model",
                                 str(tmp_path / "f.json"), "--out", str(tmp_path / "es")],
            "sweep": ["sweep", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "s"),
                      "--stop-model", str(tmp_path / "f.json")]}[command]
    with pytest.raises(SystemExit) as exit_:
        main([*args, option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err.replace("--stop-below/--threshold", option), err
    assert f"{value!r} is not allowed: expected a number in [0, 1]" in err
    assert not list(tmp_path.iterdir())
