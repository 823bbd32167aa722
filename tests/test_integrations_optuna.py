"""GrokPruner in real Optuna studies: grokcast runs and a plain PyTorch loop as trials."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.exceptions import NotFittedError

optuna = pytest.importorskip("optuna")

from reference_model import PlainTransformer  # noqa: E402
from test_docs import literal_blocks  # noqa: E402

import grokcast.train  # noqa: E402
from grokcast import model as M  # noqa: E402
from grokcast.config import LogConfig, ModelConfig, RunConfig  # noqa: E402
from grokcast.data import all_examples, split_indices  # noqa: E402
from grokcast.features import FEATURE_NAMES, feature_table  # noqa: E402
from grokcast.forecast import GrokForecaster  # noqa: E402
from grokcast.integrations import FeatureRecorder, p_grok, resolve_forecaster, window_features  # noqa: E402
from grokcast.integrations.optuna import (  # noqa: E402
    DUE_ATTR,
    USER_ATTR,
    GrokPruner,
    TrialReporter,
    report_features,
)
from grokcast.monitor import logit_stats  # noqa: E402
from grokcast.signals import SIGNAL_NAMES  # noqa: E402
from grokcast.store import log_frame  # noqa: E402
from grokcast.train import train_ensemble  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "optuna_pruning.py"

# Tiny runs: a few ms per step. The window W = 20 lies in the dense part of the log.
P, W, N_STEPS = 11, 20, 40
MODEL = ModelConfig(d_model=32, n_heads=4, d_mlp=64)
LOG = LogConfig(dense_until=30, every=10)
GRID = {"train_frac": [0.3, 0.6], "weight_decay": [0.3, 3.0]}


def tiny_run(train_frac: float, weight_decay: float, seed: int) -> RunConfig:
    return RunConfig(p=P, train_frac=train_frac, weight_decay=weight_decay, seed=seed,
                     n_steps=N_STEPS, model=MODEL, log=LOG)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors this small gain nothing from threads, and on a busy machine OpenMP threads that
    wait for each other make a 40-step run take ~500x longer."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def setup(one_thread):
    """A forecaster fit on 8 tiny runs (label: weight decay > 1, for a usable P spread), and
    the P(grok) it gives the 4 trial runs (seed 2), computed by training them directly."""
    fit_runs = [tiny_run(f, wd, s) for f in GRID["train_frac"] for wd in GRID["weight_decay"]
                for s in (0, 1)]
    trial_runs = [tiny_run(f, wd, 2) for f in GRID["train_frac"] for wd in GRID["weight_decay"]]
    log = log_frame(train_ensemble(fit_runs + trial_runs))
    X = feature_table(log, W)
    ids = [r.run_id for r in fit_runs]
    # Fit on the values alone, without feature_table's record of W: the tests save this model
    # as files of other windows and steps, which save() refuses for a fit on a table with one.
    values = X.loc[ids]
    values.attrs = {}
    model = GrokForecaster(Cs=[1.0], cv=2).fit(values, [r.weight_decay > 1 for r in fit_runs])
    expected = {(r.train_frac, r.weight_decay): float(model.predict_proba(X.loc[[r.run_id]])[0, 1])
                for r in trial_runs}
    return {"forecaster": model, "expected": expected, "log": log, "trial_runs": trial_runs}


def grokcast_objective(trial: optuna.Trial) -> float:
    """A trial that trains one grokcast run and reports from the trainer's on_log hook."""
    run = tiny_run(trial.suggest_categorical("train_frac", GRID["train_frac"]),
                   trial.suggest_categorical("weight_decay", GRID["weight_decay"]), seed=2)
    rows: list[np.ndarray] = []
    steps: list[int] = []

    def on_log(step: int, values: np.ndarray) -> np.ndarray | None:  # values: (1, n_signals)
        steps.append(step)
        rows.append(values[0])
        if step == W - 1:  # row W-1 is complete (the hook runs after the update)
            log = pd.DataFrame(rows, columns=list(SIGNAL_NAMES))
            log.insert(0, "step", steps)
            log.insert(0, "run_id", run.run_id)
            report_features(trial, window_features(log, W), W)
            if trial.should_prune():
                return np.array([True])  # the trainer drops the run
        return None

    out = train_ensemble([run], on_log=on_log)
    trial.set_user_attr("stopped_at", int(out.stopped_at[0]))
    if out.stopped_at[0] >= 0:
        raise optuna.TrialPruned()
    return float(out.values[0, -1, SIGNAL_NAMES.index("val_acc")])


def test_pruner_prunes_the_low_p_grok_trials_at_w(setup):
    ps = sorted(setup["expected"].values())
    threshold = (ps[1] + ps[2]) / 2  # two trials below, two above
    assert ps[2] - ps[1] > 1e-3, f"P(grok) of the trial runs too close to split: {ps}"
    pruner = GrokPruner(setup["forecaster"], window=W, threshold=threshold)
    study = optuna.create_study(direction="maximize", pruner=pruner,
                                sampler=optuna.samplers.GridSampler(GRID, seed=0))
    study.optimize(grokcast_objective, n_trials=4)

    assert len(study.trials) == 4
    seen = set()
    for trial in study.trials:
        key = (trial.params["train_frac"], trial.params["weight_decay"])
        seen.add(key)
        p = pruner.p_grok(trial)
        assert p == pytest.approx(setup["expected"][key], abs=1e-3)
        assert trial.user_attrs[USER_ATTR]["window"] == W
        if p < threshold:
            assert trial.state == optuna.trial.TrialState.PRUNED
            assert trial.user_attrs["stopped_at"] == W - 1
        else:
            assert trial.state == optuna.trial.TrialState.COMPLETE
            assert trial.user_attrs["stopped_at"] == -1
    assert seen == {(f, wd) for f in GRID["train_frac"] for wd in GRID["weight_decay"]}


@pytest.mark.parametrize("threshold", [1.0, 0.0])
def test_the_docstrings_on_log_recipe_reports_at_the_last_step_read_on_a_sparse_log(
        setup, tmp_path, monkeypatch, threshold):
    """The module docstring's train_ensemble snippet, run as written. Was: it said to report
    once the rows reach step W - 1, which a schedule logging sparsely below W never logs."""
    import grokcast.integrations.optuna as module

    sparse, window = LogConfig(dense_until=20, every=10), 25
    logged = sparse.steps(N_STEPS)
    assert window - 1 not in logged  # the old recipe's step: the hook never sees it
    d = max(t for t in logged if t < window)
    setup["forecaster"].save(tmp_path / "forecaster.json", window=window, threshold=0.9,
                             sweep_hash="x", n_train_runs=8, window_steps=range(d + 1))
    monkeypatch.chdir(tmp_path)
    stopped, train = [], grokcast.train.train_ensemble

    def recorded(*args, **kwargs):
        out = train(*args, **kwargs)
        stopped.append(int(out.stopped_at[0]))
        return out

    monkeypatch.setattr(grokcast.train, "train_ensemble", recorded)

    def make_run(weight_decay: float) -> RunConfig:
        return RunConfig(p=P, train_frac=0.6, weight_decay=weight_decay, seed=2,
                         n_steps=N_STEPS, model=MODEL, log=sparse)

    code = literal_blocks(module.__doc__)[1]
    assert code.count("threshold=0.2") == 1
    val_acc = SIGNAL_NAMES.index("val_acc")
    ns = {"make_run": make_run, "evaluate": lambda out: float(out.values[0, -1, val_acc])}
    exec(code.replace("threshold=0.2", f"threshold={threshold}"), ns)
    ns["study"].sampler = optuna.samplers.RandomSampler(seed=0)
    ns["study"].optimize(ns["objective"], n_trials=2)

    forecaster = GrokForecaster.load(tmp_path / "forecaster.json")
    for trial, stopped_at in zip(ns["study"].trials, stopped, strict=True):
        run = make_run(trial.params["weight_decay"])
        # The reference: the whole run trained without a hook, its offline feature row.
        X = feature_table(log_frame(train([run])), window)
        want = float(forecaster.predict_proba(X)[0, 1])
        assert ns["pruner"].p_grok(trial) == pytest.approx(want, abs=1e-9)
        assert 0 < want < 1
        pruned = threshold == 1.0  # P < 1 always, P < 0 never
        states = optuna.trial.TrialState
        assert trial.state == (states.PRUNED if pruned else states.COMPLETE)
        assert stopped_at == (d if pruned else -1)  # where --stop-model decides: d = 20


def plain_loop(run: RunConfig, make_recorder, on_observe) -> None:
    """Train ``run`` with a plain PyTorch loop (nn.Module, torch.optim.AdamW), feeding a
    FeatureRecorder as documented; ``on_observe(step, observe's return value)``."""
    plain = PlainTransformer(P, MODEL.d_model, MODEL.n_heads, MODEL.d_mlp)
    plain.load_ensemble_run(M.init_params(run.model, P, [run.seed]), 0)
    opt = torch.optim.AdamW(plain.parameters(), lr=run.optim.lr,
                            betas=(run.optim.beta1, run.optim.beta2), eps=run.optim.eps,
                            weight_decay=run.weight_decay)
    tokens, labels = all_examples(P)
    tr, va = (torch.from_numpy(i) for i in split_indices(P, run.train_frac, run.split_seed))
    recorder = make_recorder(plain)
    for step in range(run.n_steps + 1):
        opt.zero_grad()
        logits = plain(tokens[tr])[:, -1]
        F.cross_entropy(logits, labels[tr]).backward()
        metrics = {}
        if recorder.wants(step):
            with torch.no_grad():
                fit = logit_stats(logits, labels[tr])
                val = logit_stats(plain(tokens[va])[:, -1], labels[va])
            metrics = dict(train_loss=fit["loss"], train_acc=fit["acc"], train_margin=fit["margin"],
                           val_loss=val["loss"], val_acc=val["acc"])
        on_observe(step, recorder.observe(step, plain, **metrics))
        if step < run.n_steps:
            opt.step()


def plain_objective(trial: optuna.Trial, run: RunConfig, record: dict) -> float:
    """A plain PyTorch trial reporting through TrialReporter."""

    def on_observe(step: int, reported: bool) -> None:
        if reported:
            record["reported_at"] = step
            if trial.should_prune():
                record["pruned_at"] = step
                raise optuna.TrialPruned()

    plain_loop(run, lambda m: TrialReporter(trial, m.embed.weight, m.unembed.weight, window=W,
                                            log_schedule=LOG), on_observe)
    return 0.0


@pytest.mark.parametrize("threshold", [1.0, 0.0])
def test_plain_pytorch_trial_reports_at_step_w(setup, threshold):
    run = setup["trial_runs"][0]
    pruner = GrokPruner(setup["forecaster"], window=W, threshold=threshold)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    record: dict = {}
    study.optimize(lambda t: plain_objective(t, run, record), n_trials=1)
    trial = study.trials[0]
    assert record["reported_at"] == W  # observe(W) completes row W-1's update columns
    # The monitor's features are the trainer's, so the forecast is too.
    want = feature_table(setup["log"][setup["log"]["run_id"] == run.run_id], W).iloc[0]
    got = pd.Series(trial.user_attrs[USER_ATTR]["features"])[list(FEATURE_NAMES)]
    np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), rtol=2e-3, atol=1e-6)
    expected = setup["expected"][(run.train_frac, run.weight_decay)]
    assert pruner.p_grok(trial) == pytest.approx(expected, abs=1e-3)
    if threshold == 1.0:  # every P(grok) < 1: pruned right at the report
        assert trial.state == optuna.trial.TrialState.PRUNED and record["pruned_at"] == W
    else:  # P(grok) >= 0 always: runs to the end
        assert trial.state == optuna.trial.TrialState.COMPLETE and "pruned_at" not in record


def test_a_pruner_holding_a_scikit_learn_pipeline_gives_the_reporter_its_window(setup):
    """Was: TrialReporter took the pruner's pipeline and refused it as one it cannot explain,
    though it only reports features and the pruner takes such a model at its word."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = feature_table(setup["log"], W)
    runs = setup["trial_runs"]
    y = [r.weight_decay > 1 for r in runs]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X.loc[[r.run_id for r in runs]], y)
    run = runs[0]
    study = optuna.create_study(pruner=GrokPruner(pipeline, window=W, threshold=0.0))
    record: dict = {}

    def objective(trial: optuna.Trial) -> float:
        make = lambda m: TrialReporter(trial, m.embed.weight, m.unembed.weight, log_schedule=LOG)  # noqa: E731
        plain_loop(run, make, lambda step, reported: record.setdefault("at", step) if reported else None)
        return 0.0

    study.optimize(objective, n_trials=1)
    assert record["at"] == W and study.trials[0].state == optuna.trial.TrialState.COMPLETE
    want = float(pipeline.predict_proba(X.loc[[run.run_id]])[0, 1])
    assert study.pruner.p_grok(study.trials[0]) == pytest.approx(want, abs=1e-3)


def test_window_features_needs_only_the_signals_that_are_read(setup, monkeypatch):
    """A signal added to the log that no feature reads (README, "What is logged"): `grokcast
    forecast` takes a log without it, and so must a tuner's monitor log; window_features
    selected every logged column and failed with a KeyError."""
    import grokcast.integrations
    import grokcast.signals

    one = setup["log"][setup["log"]["run_id"] == setup["trial_runs"][0].run_id]
    want = feature_table(one, W)
    grown = (*SIGNAL_NAMES, "norm_w_in")
    for module in (grokcast.signals, grokcast.integrations):
        monkeypatch.setattr(module, "SIGNAL_NAMES", grown, raising=False)
        monkeypatch.setattr(module, "LOG_COLUMNS", ("run_id", "step", *grown), raising=False)
    got = window_features(one, W)  # a log written before the signal existed
    assert list(got) == list(want.columns)
    np.testing.assert_array_equal(list(got.values()), want.iloc[0].to_numpy(dtype=float))
    with pytest.raises(ValueError, match="lacks column"):
        window_features(one.drop(columns="grad_norm"), W)  # a signal the features read
    # Without run_id the one-run check is skipped, for the column check to name it (not a KeyError).
    with pytest.raises(ValueError, match=r"^the log lacks column\(s\) run_id; a log needs the columns "
                                         r"run_id, step, "):
        window_features(one.drop(columns="run_id"), W)


def test_report_survives_database_storage_and_nan_features_prune(setup, tmp_path):
    log = setup["log"]
    run = setup["trial_runs"][0]
    features = window_features(log[log["run_id"] == run.run_id], W)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    pruner = GrokPruner(setup["forecaster"], window=W, threshold=0.0)  # prunes only NaN
    study = optuna.create_study(storage=storage, pruner=pruner)
    decisions = []

    def objective(trial):
        diverged = trial.number == 1
        report_features(trial, {**features, "end_val_loss": math.nan} if diverged else features, W)
        decisions.append(trial.should_prune())
        return 0.0

    study.optimize(objective, n_trials=2)
    assert decisions == [False, True]
    reloaded = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert reloaded[1].user_attrs[USER_ATTR]["features"]["end_val_loss"] is None
    assert math.isnan(pruner.p_grok(reloaded[1]))
    assert pruner.p_grok(reloaded[0]) == pytest.approx(p_grok(setup["forecaster"], features), abs=0)


def test_then_pruner_decides_when_the_forecaster_keeps_a_trial(setup):
    then = optuna.pruners.ThresholdPruner(upper=1.0)
    pruner = GrokPruner(setup["forecaster"], window=W, threshold=0.0, then=then)
    study = optuna.create_study(pruner=pruner)
    decisions = []

    def objective(trial):
        decisions.append(trial.should_prune())  # no report, no value: neither prunes
        trial.report(2.0 if trial.number else 0.5, step=0)
        decisions.append(trial.should_prune())  # ThresholdPruner: 2.0 > upper
        return 0.0

    study.optimize(objective, n_trials=2)
    assert decisions == [False, False, False, True]


def test_errors_name_the_problem(setup, tmp_path):
    model = setup["forecaster"]
    with pytest.raises(ValueError, match="window=None is not allowed"):
        GrokPruner(model)
    with pytest.raises(ValueError, match=r"threshold=1.5 is not allowed"):
        GrokPruner(model, window=W, threshold=1.5)
    with pytest.raises(TypeError, match="then must be an Optuna pruner"):
        GrokPruner(model, window=W, then="median")
    # An unfitted forecaster: refused when the pruner is made, not at step W of a trial.
    with pytest.raises(NotFittedError, match="This GrokForecaster instance is not fitted yet"):
        GrokPruner(GrokForecaster(), window=W)

    class Constant:  # another library's model: anything with predict_proba is taken as it is
        feature_names_in_ = np.array(FEATURE_NAMES, dtype=object)

        def fit(self, X, y):
            return self

        def predict_proba(self, X):
            return np.tile([0.25, 0.75], (len(X), 1))

    assert GrokPruner(Constant(), window=W).window == W
    path = tmp_path / "f.json"
    model.save(path, window=W, threshold=0.9, sweep_hash="x", n_train_runs=8)
    assert resolve_forecaster(path, None)[1] == W
    with pytest.raises(ValueError, match="fit on window=20"):
        GrokPruner(path, window=30)
    with pytest.raises(ValueError, match=r"^window=1 is not allowed: expected an integer >= 2$"):
        resolve_forecaster(model, 1)  # a one-step window has no slope to read
    with pytest.raises(TypeError, match="forecaster must be a GrokForecaster or a path, got int"):
        resolve_forecaster(3, W)
    with pytest.raises(ValueError, match="expected the log of one run, got 12 runs"):
        window_features(setup["log"], W)
    one = setup["log"][setup["log"]["run_id"] == setup["trial_runs"][0].run_id]
    holed = one.assign(val_acc=one["val_acc"].where(one["step"] != W - 1))
    with pytest.raises(ValueError, match=f"has val_acc = nan at step {W - 1}: a logged step needs "
                                         "its accuracy"):
        window_features(holed, W)  # was: the features of a window ending at step W - 2
    # Was: P(grok) 1.0 from accuracies in percent, or from negative losses (`grokcast forecast`
    # refused the same log); NaN and inf losses still give NaN features: the trial diverged.
    for column, factor, needle in [("val_acc", 100, "an accuracy lies in [0, 1]"),
                                   ("train_loss", -1, "a loss or a norm is >= 0")]:
        with pytest.raises(ValueError, match=rf"has {column} = .* at step \d+: {re.escape(needle)}"):
            window_features(one.assign(**{column: one[column] * factor}), W)
    diverged = one.assign(train_loss=one["train_loss"].where(one["step"] < 10, np.inf))
    assert math.isnan(window_features(diverged, W)["slope_train_loss"])

    pruner = GrokPruner(path)
    study = optuna.create_study(pruner=pruner)
    trial = study.ask()
    report_features(trial, window_features(setup["log"][setup["log"]["run_id"] ==
                                                         setup["trial_runs"][0].run_id], 25), 25)
    with pytest.raises(ValueError, match="reported features of window W=25, but the pruner's "
                                         "forecaster uses W=20"):
        trial.should_prune()
    # Was: a window of 200.7 stored as 200; AttributeErrors for a study or features=None; a
    # report's True read as 1.0.
    feats = window_features(one, W)
    with pytest.raises(ValueError, match=r"^window=20.7 is not allowed: expected an integer >= 2"):
        report_features(trial, feats, 20.7)
    with pytest.raises(TypeError, match="features must be a mapping of feature name to value"):
        report_features(trial, None, W)
    with pytest.raises(TypeError, match=r"^features must be a mapping .*, got list$"):
        p_grok(model, [1.0, 2.0])  # was: "the reported features lack [...]"
    uses = [str(s) for s in model.feature_names_in_]
    for gone in (uses[:1], uses[:6]):  # more than five are cut short
        shown = re.escape(repr(gone[:5])) + (" ..." if len(gone) > 5 else "")
        with pytest.raises(ValueError, match=rf"^the reported features lack {shown} that the "
                                             r"forecaster uses: report all of "
                                             r"grokcast.features.FEATURE_NAMES$"):
            p_grok(model, {k: v for k, v in feats.items() if k not in gone})
    with pytest.raises(TypeError, match=r"feature 'end_val_acc'='high' is not allowed: expected a number"):
        report_features(trial, {**feats, "end_val_acc": "high"}, W)
    # Were numpy's "could not convert string to float", naming no feature, and an
    # AttributeError for the path; a log passed as a dict had no columns.
    with pytest.raises(TypeError, match=r"feature 'end_val_acc'='high' is not allowed: expected a number"):
        p_grok(model, {**feats, "end_val_acc": "high"})
    assert p_grok(path, feats) == p_grok(model, feats)
    with pytest.raises(TypeError, match=r"^log_df must be a pandas DataFrame .*, got dict$"):
        window_features(one.to_dict(), W)
    with pytest.raises(TypeError, match="trial must be an Optuna trial .* got Study"):
        report_features(study, feats, W)
    with pytest.raises(TypeError, match="trial must be an Optuna trial .* got Study"):
        TrialReporter(study, torch.nn.Parameter(torch.randn(P + 1, 32)),
                      torch.nn.Parameter(torch.randn(P + 1, 32)), window=W)
    # Found in review: a FrozenTrial took a report that was lost (its user attrs are a copy);
    # a multi-objective study failed at step W, in Optuna's should_prune().
    emb = [torch.nn.Parameter(torch.randn(P + 1, 32)) for _ in range(2)]
    frozen = optuna.trial.create_trial(value=1.0)
    with pytest.raises(TypeError, match="got a FrozenTrial, the record of a trial"):
        report_features(frozen, feats, W)
    with pytest.raises(TypeError, match="got a FrozenTrial"):
        TrialReporter(frozen, *emb, window=W)
    two = optuna.create_study(directions=["maximize", "minimize"]).ask()
    with pytest.raises(ValueError, match=r"multi-objective study \(2 directions\), which Optuna "
                                         "cannot prune"):
        TrialReporter(two, *emb, window=W)
    # In a study pruned by a GrokPruner the reporter takes the pruner's forecaster, and another
    # window is refused when it is made (was: the trial failed at step W, in should_prune()).
    reporter = TrialReporter(study.ask(), *emb)
    assert reporter.window == W and reporter.monitor.forecaster is pruner.forecaster
    in_memory = GrokPruner(model, window=W)
    assert TrialReporter(optuna.create_study(pruner=in_memory).ask(), *emb).window == W
    with pytest.raises(ValueError, match=rf"^window={W + 5} is not allowed: trial \d+'s study is "
                                         rf"pruned by a GrokPruner of window W={W}"):
        TrialReporter(optuna.create_study(pruner=in_memory).ask(), *emb, window=W + 5)
    assert TrialReporter(optuna.create_study().ask(), *emb, window=W + 5).window == W + 5
    # Found in review: a forecaster file of another window, window left out, was refused as
    # "window=25 is not allowed ... (leave window out ...)", naming an argument not given.
    other = tmp_path / "f25.json"
    model.save(other, window=W + 5, threshold=0.9, sweep_hash="x", n_train_runs=8)
    with pytest.raises(ValueError, match=rf"^forecaster=.*f25\.json'\) \(window W={W + 5}\) is not "
                                         rf"allowed: trial \d+'s study is pruned by a GrokPruner of "
                                         rf"window W={W}, .* \(leave forecaster out to use the "
                                         r"pruner's\)$"):
        TrialReporter(optuna.create_study(pruner=in_memory).ask(), *emb, forecaster=other)
    from grokcast.integrations import decode_features

    with pytest.raises(ValueError, match="a grokcast report's feature 'end_val_acc' is True: "
                                         "expected a number or None"):
        decode_features({"window": W, "features": {"end_val_acc": True}})
    from grokcast.early_stop import StopRule

    with pytest.raises(FileNotFoundError, match="forecaster file '.*missing.json' does not exist"):
        StopRule.from_file(tmp_path / "missing.json", 0.5)


@pytest.mark.parametrize("window, complete_at", [(20, 20), (35, 31), (31, 31)])
def test_feature_recorder_hands_over_the_features_once_the_window_is_complete(window, complete_at):
    """Logged: every step below 30, then every 10. W = 35 reads rows up to 30, complete once
    step 31 gives row 30's update (was: at step 40, the first logged step >= W - 1)."""
    run = tiny_run(0.6, 3.0, seed=2)
    recorders, handed = [], {}

    def make(m):
        recorders.append(FeatureRecorder(m.embed.weight, m.unembed.weight, window=window,
                                         log_schedule=LOG))
        return recorders[0]

    plain_loop(run, make, lambda step, feats: handed.update({step: feats}) if feats else None)
    assert list(handed) == [complete_at]
    monitor = recorders[0].monitor
    assert handed[complete_at] == window_features(monitor.log, window) == recorders[0].features


def test_window_features_cut_to_the_forecasters_steps(setup, tmp_path):
    """A forecaster fit on a sparser window (every other step below W) gets the features of
    those steps from a dense log, not of every logged step: another schedule's slopes and
    spreads would give another P(grok) without a word. A log lacking one is refused."""
    from grokcast.tool import LogError

    path = tmp_path / "sparse.json"
    sparse = list(range(0, W, 2))
    setup["forecaster"].save(path, window=W, threshold=0.9, sweep_hash="x", n_train_runs=8,
                             window_steps=sparse)
    one = setup["log"][setup["log"]["run_id"] == setup["trial_runs"][0].run_id]
    want = window_features(one[one["step"].isin(sparse + list(range(W, N_STEPS + 1)))], W)
    got = window_features(one, W, path)
    assert got == want and got != window_features(one, W)
    with pytest.raises(LogError, match=r"lacks step\(s\) \[2\]"):
        window_features(one[one["step"] != 2], W, path)


def test_window_features_are_the_feature_tables_row_read_once(setup, monkeypatch):
    """The run's row of its feature table, as floats in registry order (NaN where the run
    diverged), read without a copy of the table's attrs per feature: pandas deep-copies them
    on every column or row it hands out, and attrs["window_steps"] holds up to W ints (read
    per column, ~40 ms a call at a dense W = 10,000)."""
    import grokcast.tool

    copies = []

    class Probe:
        def __deepcopy__(self, memo):
            copies.append(1)
            return self

    def probed(log_df, window):
        table = feature_table(log_df, window)
        table.attrs["probe"] = Probe()
        return table

    one = setup["log"][setup["log"]["run_id"] == setup["trial_runs"][0].run_id]
    diverged = one.assign(train_loss=one["train_loss"].where(one["step"] < 10, np.inf))
    monkeypatch.setattr(grokcast.tool, "feature_table", probed)  # window_features' table
    for log in (one, diverged):
        copies.clear()
        got = window_features(log, W)
        assert len(copies) <= 1
        want = feature_table(log, W).loc[setup["trial_runs"][0].run_id]
        assert list(got) == list(FEATURE_NAMES) and all(type(v) is float for v in got.values())
        np.testing.assert_array_equal(np.array(list(got.values())), want.to_numpy(dtype=float))
    assert math.isnan(got["slope_train_loss"])


def test_reports_with_a_fractional_window_are_refused():
    from grokcast.integrations import decode_features

    for good in (200.0, np.int64(200), np.float32(200)):  # numpy: a flattened Ray result's
        assert decode_features({"window": good, "features": {}}) == (200, {})
    for bad in (200.7, float("inf"), float("nan"), "200", True, np.bool_(True), np.float64(1.5)):
        with pytest.raises(ValueError, match="whole number of steps"):
            decode_features({"window": bad, "features": {}})
    # Not a report at all (a tuner's other intermediate value, a features mapping alone).
    for bad in (0.5, {"features": {}}, {"window": 200, "features": [1.0]}):
        with pytest.raises(ValueError, match=rf"^a grokcast report is \{{'window': W, 'features': "
                                             rf"\{{name: value\}}\}}, got {re.escape(repr(bad))}$"):
            decode_features(bad)


def _run_example(forecaster, threshold: float, steps: int) -> dict[int, tuple[float, bool]]:
    """Run examples/optuna_pruning.py (4 trials); {trial: (printed P(grok), pruned)}."""
    done = subprocess.run([sys.executable, str(EXAMPLE), "--forecaster", str(forecaster),
                           "--trials", "4", "--steps", str(steps), "--p", str(P),
                           "--threshold", str(threshold)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    trials = {int(m[1]): (float(m[2]), m[3] == f"pruned at step {W}")
              for m in re.finditer(r"trial +(\d+) .*P\(grok\) = ([0-9.]+), (pruned at step \d+|"
                                   r"complete)", done.stdout)}
    assert len(trials) == 4, done.stdout
    n = sum(pruned for _, pruned in trials.values())
    assert (f"{n} of 4 trials pruned at W = {W}: {n * W + (4 - n) * steps} of {4 * steps} "
            "optimizer steps trained") in done.stdout
    return trials


def test_example_study_prunes_the_trials_below_the_threshold_at_w(setup, tmp_path):
    """examples/optuna_pruning.py end to end. A weakly regularised forecaster gives the trials
    distinct P(grok); with the threshold between them, exactly the lower trials are pruned."""
    log, runs = setup["log"], setup["trial_runs"]
    fit_ids = sorted(set(log["run_id"]) - {r.run_id for r in runs})
    X = feature_table(log, W).loc[fit_ids]
    model = GrokForecaster(Cs=[0.01], cv=2).fit(X, X.index.str.contains("wd3"))
    path = tmp_path / "f.json"
    model.save(path, window=W, threshold=0.9, sweep_hash="0" * 64, n_train_runs=len(fit_ids),
               window_steps=list(range(W)))
    steps = W + 5
    first = _run_example(path, 0.0, steps)  # P < 0 never: every trial trains to the end
    assert not any(pruned for _, pruned in first.values())
    p = sorted(p for p, _ in first.values())
    assert p[1] < p[2], first  # distinct at the printed precision
    threshold = (p[1] + p[2]) / 2
    second = _run_example(path, threshold, steps)
    assert {t: p for t, (p, _) in second.items()} == {t: p for t, (p, _) in first.items()}
    assert {t: pruned for t, (_, pruned) in second.items()} == {
        t: p < threshold for t, (p, _) in first.items()}


def test_example_study_refuses_a_window_longer_than_the_trials(setup, tmp_path):
    path = tmp_path / "f.json"
    setup["forecaster"].save(path, window=W, threshold=0.9, sweep_hash="0" * 64, n_train_runs=8,
                             window_steps=list(range(W)))
    done = subprocess.run([sys.executable, str(EXAMPLE), "--forecaster", str(path),
                           "--steps", str(W - 1)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "is too short for the forecast window W=20: a trial reports at step 20" in done.stderr
    # W = 350 on the paper's schedule (every step below 300, then every 100): the features read
    # rows up to 300, so the report comes at 301, where the sweep's stop rule decides (was 400).
    setup["forecaster"].save(path, window=350, threshold=0.9, sweep_hash="0" * 64, n_train_runs=8,
                             window_steps=list(range(301)))
    done = subprocess.run([sys.executable, str(EXAMPLE), "--forecaster", str(path),
                           "--steps", "300"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "is too short for the forecast window W=350: a trial reports at step 301" in done.stderr


@pytest.mark.parametrize("value", ["2", "-0.5", "nan"])
def test_example_study_names_a_stop_below_out_of_range(setup, tmp_path, value):
    """Found walking the docs: `--stop-below 2` was refused as "threshold=2.0", GrokPruner's
    name for it, not the option typed."""
    path = tmp_path / "f.json"
    setup["forecaster"].save(path, window=W, threshold=0.9, sweep_hash="0" * 64, n_train_runs=8,
                             window_steps=list(range(W)))
    done = subprocess.run([sys.executable, str(EXAMPLE), "--forecaster", str(path),
                           "--stop-below", value], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert (f"--stop-below {float(value):g} is not allowed: expected a number in [0, 1]"
            in done.stderr), done.stderr


def test_a_retried_trial_is_not_judged_by_the_report_it_inherited(setup):
    """RetryFailedTrialCallback and enqueue_trial(user_attrs=...) copy a trial's user attrs to
    the new trial: its copied report decided should_prune() before the new run reached step W
    (found in review)."""
    one = setup["log"][setup["log"]["run_id"] == setup["trial_runs"][0].run_id]
    old = {USER_ATTR: {"window": W, "features": {k: float(v) for k, v in
                                                 window_features(one, W).items()}}}
    study = optuna.create_study(pruner=GrokPruner(setup["forecaster"], window=W, threshold=1.0))
    study.enqueue_trial({}, user_attrs=old)
    trial = study.ask()
    assert trial.should_prune()  # the copied report alone: P(grok) < 1 prunes at step 0
    TrialReporter(trial, *(torch.nn.Parameter(torch.randn(P + 1, 32)) for _ in range(2)), window=W)
    assert not trial.should_prune()  # not before the run's own report
    assert study.trials[-1].user_attrs[USER_ATTR] is None
    # A retry that inherited its intermediate values resumes its own run, perhaps past W: its
    # inherited report is its own, kept (found in a review of the above).
    study.enqueue_trial({}, user_attrs=old)
    resumed = study.ask()
    resumed.report(0.5, step=W + 5)  # as RetryFailedTrialCallback(inherit_intermediate_values=True)
    TrialReporter(resumed, *(torch.nn.Parameter(torch.randn(P + 1, 32)) for _ in range(2)), window=W)
    assert resumed.should_prune() and study.trials[-1].user_attrs[USER_ATTR] == old[USER_ATTR]


def test_pruner_warns_once_about_a_trial_past_its_due_step_without_its_report(setup):
    """A trial whose TrialReporter never completed its window, reporting steps past the
    reporter's due step, is a mistake the pruner names (once per trial and study); the due
    step itself, asked about before the features arrive, and trials without a reporter
    (whose step units are unknown) are not."""
    run = setup["trial_runs"][0]
    net = PlainTransformer(P, MODEL.d_model, MODEL.n_heads, MODEL.d_mlp)
    pruner = GrokPruner(setup["forecaster"], window=W)
    features = window_features(setup["log"][setup["log"].run_id == run.run_id], W)

    def objective(trial):
        if trial.number != 2:  # trial 2 has no reporter
            reporter = TrialReporter(trial, net.embed.weight, net.unembed.weight, window=W,
                                     log_schedule=LOG)
            assert trial.user_attrs[DUE_ATTR] == reporter.monitor.forecast_step == W
        for step in range(W + 5):
            trial.report(0.0, step=step)
            if trial.number == 1 and step == W:  # asked at W, then reported: no warning
                assert not trial.should_prune()
                report_features(trial, features, W)
            trial.should_prune()
        return 0.0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("a", "b"):  # the same pruner in a second study warns there too
            optuna.create_study(study_name=name, pruner=pruner).optimize(objective, n_trials=3)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert [str(w.message) for w in runtime] == 2 * [
        f"trial 0 reported step {W + 1} without its window features, which its TrialReporter "
        f"completes at step {W} (W={W}), so GrokPruner cannot judge it: call reporter.observe() "
        f"at every step up to {W}"]
    assert runtime[0].filename == __file__  # points at the objective's should_prune()
