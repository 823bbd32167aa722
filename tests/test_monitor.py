"""GrokMonitor: a plain PyTorch loop's monitor log against the trainer's log, forecasts, errors."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from reference_model import PlainTransformer

from grokcast import model as M
from grokcast.config import LogConfig, RunConfig, SweepConfig
from grokcast.data import all_examples, split_indices
from grokcast.features import FEATURE_NAMES, feature_table
from grokcast.forecast import GrokForecaster
from grokcast.monitor import GrokMonitor, is_logged_step, logit_stats
from grokcast.signals import SIGNAL_NAMES
from grokcast.store import log_frame
from grokcast.tool import LogError, explain
from grokcast.train import train_ensemble

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plain_pytorch_monitor.py"

P = 23
UPDATE_COLUMNS = ["update_norm", "update_cos"]


def _run(**kw) -> RunConfig:
    # Dense below step 4, then every 3: the monitor must fill the update columns of sparse rows.
    base = dict(p=P, train_frac=0.4, weight_decay=3.0, seed=0, n_steps=9,
                log=LogConfig(dense_until=4, every=3))
    return RunConfig(**{**base, **kw})


def _plain_model(run: RunConfig) -> PlainTransformer:
    """An nn.Module holding the run's initial weights, as the trainer draws them."""
    return PlainTransformer(P).load_ensemble_run(M.init_params(run.model, P, [run.seed]), 0)


def _train(plain: PlainTransformer, run: RunConfig, monitor: GrokMonitor,
           after_observe: Callable[[int], None] | None = None) -> None:
    """Full-batch torch.optim.AdamW on the run's split, feeding the monitor as documented."""
    opt = torch.optim.AdamW(plain.parameters(), lr=run.optim.lr,
                            betas=(run.optim.beta1, run.optim.beta2), eps=run.optim.eps,
                            weight_decay=run.weight_decay)
    tokens, labels = all_examples(P)
    tr, va = (torch.from_numpy(i) for i in split_indices(P, run.train_frac, run.split_seed))
    for step in range(run.n_steps + 1):
        opt.zero_grad()
        logits = plain(tokens[tr])[:, -1]
        F.cross_entropy(logits, labels[tr]).backward()
        metrics = {}
        if monitor.wants(step):
            with torch.no_grad():
                fit = logit_stats(logits, labels[tr])
                val = logit_stats(plain(tokens[va])[:, -1], labels[va])
            metrics = dict(train_loss=fit["loss"], train_acc=fit["acc"], train_margin=fit["margin"],
                           val_loss=val["loss"], val_acc=val["acc"])
        monitor.observe(step, plain, **metrics)
        if after_observe is not None:
            after_observe(step)
        if step < run.n_steps:
            opt.step()


def _fitted_forecaster(seed: int = 0) -> GrokForecaster:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(20, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    y = (X["end_val_acc"] + 0.5 * rng.normal(size=20) > 0).astype(int)
    return GrokForecaster(Cs=[1.0]).fit(X, y)


def _observe_without_training(monitor: GrokMonitor, model: torch.nn.Module, step: int,
                              **kw) -> None:
    model.zero_grad()
    model(torch.tensor([[0, 1, P]])).sum().backward()
    monitor.observe(step, model, **kw)


METRICS = dict(train_loss=1.0, val_loss=2.0, train_acc=0.5, val_acc=0.1, train_margin=-1.0)


def test_monitor_log_equals_trainer_log():
    """Same run, same initial weights: the plain loop's monitor log is the trainer's log."""
    run = _run()
    want = log_frame(train_ensemble([run]))
    assert want["step"].tolist() == [0, 1, 2, 3, 6, 9]

    plain = _plain_model(run)
    monitor = GrokMonitor(plain.embed.weight, plain.unembed.weight, log_schedule=run.log,
                          run_id=run.run_id)
    _train(plain, run, monitor)
    got = monitor.log

    assert list(got.columns) == list(want.columns) == ["run_id", "step", *SIGNAL_NAMES]
    assert got["run_id"].tolist() == want["run_id"].tolist()
    assert got["step"].tolist() == want["step"].tolist() and got["step"].dtype == np.int64
    same = [c for c in SIGNAL_NAMES if c not in UPDATE_COLUMNS]
    np.testing.assert_allclose(got[same], want[same], rtol=2e-4, atol=2e-5)
    # An update is a difference of nearby float32 weights: ~1e-4 of it is rounding.
    np.testing.assert_allclose(got[UPDATE_COLUMNS], want[UPDATE_COLUMNS], rtol=1e-3, atol=1e-4)
    # NaN exactly where the trainer has NaN: no update_cos at step 0, no update after the end.
    pd.testing.assert_frame_equal(got.isna(), want.isna())


def test_update_columns_of_a_row_fill_in_at_the_next_step():
    run = _run(n_steps=4, log=LogConfig(dense_until=10))
    plain = _plain_model(run)
    monitor = GrokMonitor(plain.embed.weight, plain.unembed.weight, log_schedule=run.log)
    seen = []
    _train(plain, run, monitor, after_observe=lambda step: seen.append(monitor.log.copy()))
    # After observe(t): rows 0..t exist, row t has no update yet, row t-1 has one.
    for t, log in enumerate(seen):
        assert log["step"].tolist() == list(range(t + 1))
        assert np.isnan(log["update_norm"].iloc[-1]) and np.isnan(log["update_cos"].iloc[-1])
        if t >= 1:
            assert np.isfinite(log["update_norm"].iloc[-2])
        if t >= 2:
            assert np.isfinite(log["update_cos"].iloc[-2])


def test_forecast_uses_the_first_window_steps():
    run = _run(n_steps=7, log=LogConfig(dense_until=100))
    forecaster = _fitted_forecaster()
    plain = _plain_model(run)
    monitor = GrokMonitor(plain.embed.weight, plain.unembed.weight, window=5,
                          forecaster=forecaster, log_schedule=run.log)
    results = {}

    def try_forecast(step: int) -> None:
        if step < 5:
            with pytest.raises(LogError, match="observe through step 5"):
                monitor.forecast()
        else:
            results[step] = monitor.forecast(top=2)

    _train(plain, run, monitor, after_observe=try_forecast)
    first = results[5]
    assert results[7] == first  # later steps do not change a forecast of the first W steps
    features = feature_table(monitor.log, 5)
    assert first["p_grok"] == pytest.approx(forecaster.predict_proba(features)[0, 1])
    assert first == explain(forecaster, features, top=2)[0]
    assert len(first["pushed_up"]) <= 2 and len(first["pushed_down"]) <= 2


def test_ready_once_the_last_row_below_w_has_its_update():
    # Logged steps 0, 1, 2, 3, 6: with W=5 the window's rows are 0..3, complete once step 4 is
    # observed (row 3's update). Was: not before the next logged step, 6.
    run = _run(n_steps=7)
    plain = _plain_model(run)
    monitor = GrokMonitor(plain.embed.weight, plain.unembed.weight, window=5,
                          forecaster=_fitted_forecaster(), log_schedule=run.log)
    ready, forecasts = [], {}

    def record(step: int) -> None:
        ready.append(monitor.ready)
        if monitor.ready:
            forecasts[step] = monitor.forecast()

    _train(plain, run, monitor, after_observe=record)
    assert ready == [False] * 4 + [True] * 4
    assert monitor.forecast_step == 4 and monitor.last_read_step == 3
    # The forecast is the model's probability on the features of the log's rows below W,
    # computed on the whole log (its rows at 6 and 7 ignored).
    want = monitor.forecaster.predict_proba(feature_table(monitor.log, 5))[0, 1]
    assert forecasts[4]["p_grok"] == pytest.approx(want, rel=1e-12)
    assert all(f == forecasts[4] for f in forecasts.values())
    dense = GrokMonitor(plain.embed.weight, plain.unembed.weight, window=3,
                        forecaster=_fitted_forecaster(), log_schedule=run.log)
    assert dense.forecast_step == 3  # W itself where step W - 1 is logged


def _saved_forecaster(path: Path, window: int, steps: list[int]) -> GrokForecaster:
    """A forecaster file of window W whose features read ``steps`` (its sweep's below W)."""
    _fitted_forecaster().save(path, window=window, threshold=0.9, sweep_hash="abc",
                              n_train_runs=20, window_steps=steps, task=SweepConfig(p=P).task())
    return GrokForecaster.load(path)


def _p_offline(forecaster: GrokForecaster, log: pd.DataFrame, window: int) -> float:
    """predict_proba on the features of a run's log below W, cut to the forecaster's steps."""
    steps = forecaster.metadata_.required_steps()
    rows = log[log["step"].isin(steps) | (log["step"] >= window)]
    return float(forecaster.predict_proba(feature_table(rows, window))[0, 1])


def test_monitor_decides_where_the_sweep_stop_rule_does(tmp_path):
    """W = 5 falls between logged steps (0..3, then 6, 9): the forecaster's features read rows
    0..3, so the sweep's stop rule decides on row 3 and a run it stops trains 4 steps. The
    monitor's loop forecasts there too, with the same P(grok). Was: at step 6, the first
    logged step at or past W - 1."""
    from grokcast.early_stop import StopRule

    run, W = _run(n_steps=9), 5
    path = tmp_path / "f.json"
    loaded = _saved_forecaster(path, W, [0, 1, 2, 3])
    plain = _plain_model(run)
    monitor = GrokMonitor(plain.embed.weight, plain.unembed.weight, forecaster=path,
                          log_schedule=run.log, run_id=run.run_id)
    forecasts = {}
    _train(plain, run, monitor,
           after_observe=lambda step: monitor.ready and forecasts.setdefault(step, monitor.forecast()))
    assert min(forecasts) == monitor.forecast_step == 4
    p = forecasts[4]["p_grok"]
    assert p == pytest.approx(_p_offline(loaded, monitor.log, W), rel=1e-12)
    assert all(f == forecasts[4] for f in forecasts.values())
    # The sweep's hook fed the monitor's rows decides on row 3, as P(grok) < below.
    table = monitor.log.set_index("step")[list(SIGNAL_NAMES)]
    for below, stop in ((min(p + 1e-9, 1.0), True), (max(p - 1e-9, 0.0), False)):
        hook = StopRule.from_file(path, below).hook([run])
        decisions = [(t, out.tolist()) for t in table.index
                     if (out := hook(int(t), table.loc[[t]].to_numpy())) is not None]
        assert decisions == [(monitor.forecast_step - 1, [stop])]
    # The trainer's own run, stopped by the rule: 4 steps trained, its P(grok) the monitor's
    # but for the float32 rounding of two implementations.
    p_trainer = _p_offline(loaded, log_frame(train_ensemble([run])), W)
    assert p == pytest.approx(p_trainer, abs=1e-4)
    trained = train_ensemble([run], on_log=StopRule.from_file(path, min(p + 0.01, 1.0)).hook([run]))
    assert trained.stopped_at.tolist() == [monitor.forecast_step - 1]


def test_a_loop_logging_more_densely_forecasts_from_the_forecasters_rows(tmp_path):
    """Every step logged, the forecaster's sweep logged 0..3 then 6: the forecast reads rows
    0..3 only and comes at step 4, where the sweep's rule decides (was: 5, with the same P)."""
    run, W = _run(n_steps=7, log=LogConfig(dense_until=100)), 5
    path = tmp_path / "f.json"
    loaded = _saved_forecaster(path, W, [0, 1, 2, 3])
    plain = _plain_model(run)
    monitor = GrokMonitor(plain.embed.weight, plain.unembed.weight, forecaster=path,
                          log_schedule=run.log)
    forecasts = {}
    _train(plain, run, monitor,
           after_observe=lambda step: monitor.ready and forecasts.setdefault(step, monitor.forecast()))
    assert min(forecasts) == monitor.forecast_step == 4
    log = monitor.log
    assert forecasts[4]["p_grok"] == pytest.approx(_p_offline(loaded, log, W), rel=1e-12)
    # Row 4, which the forecaster's runs did not log, would move it: it is not read.
    every_row = pd.DataFrame(feature_table(log, W).to_numpy(), columns=list(FEATURE_NAMES))
    assert abs(loaded.predict_proba(every_row)[0, 1] - forecasts[4]["p_grok"]) > 1e-6
    assert all(f == forecasts[4] for f in forecasts.values())


def test_feature_recorder_hands_over_the_features_at_the_forecast_step(tmp_path):
    """FeatureRecorder completes its window where the monitor forecasts (step 4, was 6), with
    the features of the forecaster's rows."""
    from grokcast.integrations import FeatureRecorder

    run, W = _run(n_steps=9), 5
    path = tmp_path / "f.json"
    loaded = _saved_forecaster(path, W, [0, 1, 2, 3])
    handed = {}

    class Recorder(FeatureRecorder):
        def observe(self, step, model, **metrics):
            out = super().observe(step, model, **metrics)
            if out is not None:
                handed[step] = out
            return out

    plain = _plain_model(run)
    recorder = Recorder(plain.embed.weight, plain.unembed.weight, forecaster=path,
                        log_schedule=run.log)
    _train(plain, run, recorder)
    assert list(handed) == [4]
    log = recorder.monitor.log
    rows = log[log["step"].isin([0, 1, 2, 3]) | (log["step"] >= W)]
    want = feature_table(rows, W).iloc[0]
    np.testing.assert_array_equal(np.array(list(handed[4].values())), want.to_numpy(dtype=float))
    assert list(handed[4]) == list(FEATURE_NAMES)
    assert loaded.predict_proba(pd.DataFrame([handed[4]]))[0, 1] == pytest.approx(
        _p_offline(loaded, log, W), rel=1e-12)


def test_window_comes_from_a_saved_forecaster(tmp_path):
    path = tmp_path / "f.json"
    _fitted_forecaster().save(path, window=7, threshold=0.9, sweep_hash="abc", n_train_runs=20)
    plain = PlainTransformer(P)
    assert _monitor_of(plain, forecaster=path).window == 7
    assert _monitor_of(plain).window == 200
    with pytest.raises(ValueError, match="fit on window=7"):
        _monitor_of(plain, forecaster=path, window=200)
    for bad in (0, True, 7.0, "7"):
        with pytest.raises(ValueError, match=rf"^window={bad!r} is not allowed: expected an integer >= 2$"):
            _monitor_of(plain, window=bad)
    with pytest.raises(TypeError, match="forecaster must be a GrokForecaster or a path, got dict"):
        _monitor_of(plain, forecaster={"coef": [1.0]})


def test_forecasters_the_monitor_cannot_explain_are_refused_before_training():
    """Was: accepted, then an AttributeError from forecast() after W steps of training."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    plain, named = PlainTransformer(P), _fitted_forecaster()
    X = np.random.default_rng(0).normal(size=(20, len(FEATURE_NAMES)))
    y = np.arange(20) % 2
    unnamed = GrokForecaster(Cs=[1.0]).fit(X, y)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    for model, lacks in ((unnamed, "it lacks feature_names_in_$"),
                         (pipeline, "it lacks feature_names_in_, scaler_mean_, scaler_scale_, coef_, "
                                    "intercept_$")):
        with pytest.raises(TypeError, match=f"^forecaster {type(model).__name__} is not allowed here: "
                                            f"explaining P\\(grok\\) needs a GrokForecaster .*{lacks}"):
            _monitor_of(plain, forecaster=model, window=5)
        with pytest.raises(TypeError, match=lacks):
            explain(model, pd.DataFrame(X, columns=list(FEATURE_NAMES)))
    assert _monitor_of(plain, forecaster=named, window=5).forecaster is named


def test_a_schedule_that_skips_the_forecasters_steps_is_refused_up_front(tmp_path):
    plain = PlainTransformer(P)
    path = tmp_path / "f.json"
    _fitted_forecaster().save(path, window=7, threshold=0.9, sweep_hash="abc", n_train_runs=20,
                              window_steps=[0, 2, 4, 6])
    assert _monitor_of(plain, forecaster=path, log_schedule=LogConfig(dense_until=0, every=2))
    with pytest.raises(ValueError, match=r"skips step\(s\) \[2, 6\] below W=7, .*LogConfig\(dense_until=7\)"):
        _monitor_of(plain, forecaster=path, log_schedule=LogConfig(dense_until=0, every=4))
    # The suggestion must work where the forecaster's steps go on past the missing ones.
    sparse = LogConfig(dense_until=50, every=10)
    _fitted_forecaster().save(path, window=200, threshold=0.9, sweep_hash="abc", n_train_runs=20,
                              window_steps=[s for s in sparse.steps(200) if s < 200])
    with pytest.raises(ValueError, match=r"LogConfig\(dense_until=191\)") as info:
        _monitor_of(plain, forecaster=path, log_schedule=LogConfig(dense_until=10, every=10))
    dense_until = int(re.search(r"LogConfig\(dense_until=(\d+)\)", str(info.value)).group(1))
    assert _monitor_of(plain, forecaster=path, log_schedule=LogConfig(dense_until=dense_until))


def test_weights_of_another_task_than_the_forecasters_are_refused_up_front(tmp_path):
    """Was: a forecaster fit on p = 23 forecast a p = 31 model from a plain loop, silently."""
    path = tmp_path / "f.json"
    task = SweepConfig(p=P).task()
    _fitted_forecaster().save(path, window=7, threshold=0.9, sweep_hash="abc", n_train_runs=20,
                              task=task)
    plain = PlainTransformer(P)
    assert _monitor_of(plain, forecaster=path).window == 7  # its own task
    W_U = torch.nn.Parameter(plain.unembed.weight.detach().T.clone())  # stored (d_model, V)
    GrokMonitor(plain.embed.weight, W_U, forecaster=path)  # either way round
    other = PlainTransformer(31)
    with pytest.raises(ValueError, match=r"^embedding has shape \(32, 64\), but the forecaster was "
                                         r"fit on p=23 \(V = p \+ 1 = 24 tokens\) with d_model=64"):
        _monitor_of(other, forecaster=path)
    with pytest.raises(ValueError, match=r"^unembedding has shape \(32, 64\)"):
        GrokMonitor(plain.embed.weight, other.unembed.weight, forecaster=path)
    with pytest.raises(ValueError, match=r"^embedding has shape \(64, 24\)"):  # transposed
        GrokMonitor(torch.nn.Parameter(plain.embed.weight.detach().T.clone()), plain.unembed.weight,
                    forecaster=path)
    # A wider MLP keeps the embedding's shape: its parameter count gives it away at the first
    # observe (was: norms of a 150,720-parameter model read as the 52,416 the task has).
    for wide in (PlainTransformer(P, d_mlp=1024), _with_an_extra_parameter(PlainTransformer(P))):
        monitor = _monitor_of(wide, forecaster=path)
        n = sum(p.numel() for p in wide.parameters())
        with pytest.raises(ValueError, match=rf"^the model has {n:,} parameters, but the forecaster "
                                             rf"was fit on a model of {M.n_params(SweepConfig().model, P):,} "
                                             rf"\(p={P}, d_model=64, d_mlp=256"):
            _observe_without_training(monitor, wide, 0, **METRICS)
    _observe_without_training(_monitor_of(plain, forecaster=path), plain, 0, **METRICS)


def _with_an_extra_parameter(plain: PlainTransformer) -> PlainTransformer:
    """The model with one parameter more (a bias the loss does not reach): another count."""
    plain.extra = torch.nn.Parameter(torch.zeros(1))
    return plain


def test_a_schedule_with_fewer_than_two_steps_below_w_is_refused_up_front():
    """Was: accepted without a forecaster, failing only after W steps of training."""
    plain = PlainTransformer(P)
    with pytest.raises(ValueError, match=r"logs 1 step\(s\) below W=200 \(\[0\]\): the window's "
                                         r"slopes need at least 2"):
        _monitor_of(plain, window=200, log_schedule=LogConfig(dense_until=0, every=1000))
    assert _monitor_of(plain, window=200, log_schedule=LogConfig(dense_until=0, every=199))


def test_a_denser_schedule_is_cut_to_the_forecasters_steps(tmp_path):
    run = _run(n_steps=9)
    plain = _plain_model(run)
    forecaster = _fitted_forecaster()
    path = tmp_path / "f.json"
    forecaster.save(path, window=7, threshold=0.9, sweep_hash="abc", n_train_runs=20,
                    window_steps=[0, 2, 4, 6])
    monitor = _monitor_of(plain, forecaster=path, log_schedule=LogConfig())  # every step
    _train(plain, run, monitor)
    log = monitor.log
    cut = log[log["step"].isin([0, 2, 4, 6]) | (log["step"] >= 7)]
    want = forecaster.predict_proba(feature_table(cut, 7))[0, 1]
    assert monitor.forecast()["p_grok"] == pytest.approx(want, rel=1e-12)
    assert want != pytest.approx(forecaster.predict_proba(feature_table(log, 7))[0, 1], rel=1e-6)


def _monitor_of(plain: PlainTransformer, **kw) -> GrokMonitor:
    return GrokMonitor(plain.embed.weight, plain.unembed.weight, **kw)


def test_observe_errors_name_the_protocol():
    plain = PlainTransformer(P)
    monitor = _monitor_of(plain)
    with pytest.raises(ValueError, match="after loss.backward"):
        monitor.observe(0, plain, **METRICS)
    with pytest.raises(ValueError, match="step=1 is not allowed: expected 0"):
        _observe_without_training(monitor, plain, 1, **METRICS)
    with pytest.raises(ValueError, match="needs train_margin"):
        _observe_without_training(monitor, plain, 0, **{**METRICS, "train_margin": None})
    assert monitor.last_step is None
    _observe_without_training(monitor, plain, 0, **METRICS)
    assert monitor.last_step == 0
    with pytest.raises(TypeError, match=r"^step=1\.0 is not allowed: expected an int \(the count "
                                        r"of optimizer steps taken\), got float$"):
        _observe_without_training(monitor, plain, 1.0, **METRICS)
    assert monitor.last_step == 0  # refused before anything is kept
    with pytest.raises(ValueError, match="expected 1; observe every step"):
        _observe_without_training(monitor, plain, 2, **METRICS)
    with pytest.raises(ValueError, match="not a parameter of the model"):
        _observe_without_training(monitor, PlainTransformer(P), 1, **METRICS)
    with pytest.raises(RuntimeError, match="no forecaster"):
        monitor.forecast()
    with pytest.raises(ValueError, match="2-D weight tensor"):
        GrokMonitor(plain.pos[0], plain.unembed.weight)
    with pytest.raises(TypeError, match=r"^log_schedule must be a LogConfig, got dict$"):
        _monitor_of(plain, log_schedule={"every": 10})
    with pytest.raises(ValueError, match="run_id=None is not allowed"):
        _monitor_of(plain, run_id=None)
    with pytest.raises(ValueError, match="window=None is not allowed for a forecaster without a "
                                         "recorded window"):  # was: W=200 without a word
        GrokMonitor(plain.embed.weight, plain.unembed.weight, forecaster=_fitted_forecaster())
    with pytest.raises(ValueError, match="window=1 is not allowed: expected an integer >= 2"):
        GrokMonitor(plain.embed.weight, plain.unembed.weight, window=1)
    # Was: taken, then "not a parameter of the model ...; pass e.g. model.embed.weight".
    with pytest.raises(ValueError, match=r"the unembedding is a view of or a result computed from a "
                                         r"parameter \(e.g. weight.T\), not the parameter: pass "
                                         r"the nn.Parameter itself, as model.parameters\(\) lists it "
                                         r"\(either orientation is read\)"):
        GrokMonitor(plain.embed.weight, plain.unembed.weight.T)
    with pytest.raises(ValueError, match=r"not a parameter of the model passed to observe\(\); pass "
                                         "e.g. model.unembed.weight"):
        GrokMonitor(plain.embed.weight, torch.nn.Parameter(plain.unembed.weight.detach().clone())
                    ).observe(0, plain, **METRICS)
    for bad in ("a", -1, 2.5):  # was: TypeError from inside the schedule, or True
        with pytest.raises(ValueError, match=f"step={bad!r} is not allowed: expected an integer >= 0"):
            monitor.wants(bad)


@pytest.mark.parametrize("metric, needle", [
    ({"val_acc": 5.0}, "val_acc=5.0 is not allowed: expected an accuracy in [0, 1]"),
    ({"val_acc": float("nan")}, "val_acc=nan is not allowed: expected an accuracy in [0, 1]"),
    ({"val_loss": -3.0}, "val_loss=-3.0 is not allowed: expected a loss >= 0"),
    ({"val_acc": "high"}, "val_acc='high' is not allowed: expected a number"),
    ({"train_loss": torch.ones(2)}, "train_loss=tensor([1., 1.]) is not allowed"),
    # Was: taken, and the forecast refused 80 steps later (the tuners' features silently NaN).
    ({"train_margin": float("nan")}, "train_margin=nan is not allowed with train_loss=1.0"),
])
def test_bad_metrics_are_named_and_leave_the_monitor_usable(metric, needle):
    plain = PlainTransformer(P)
    monitor = _monitor_of(plain)
    with pytest.raises((TypeError, ValueError), match=re.escape(needle)):
        _observe_without_training(monitor, plain, 0, **{**METRICS, **metric})
    with pytest.raises(TypeError, match="model must be the torch.nn.Module being trained, got NoneType"):
        monitor.observe(0, None, **METRICS)
    _observe_without_training(monitor, plain, 0, **{**METRICS, "val_acc": torch.tensor(0.25),
                                                     "val_loss": np.array(2.5, dtype=np.float32)})
    assert monitor.log["val_acc"].tolist() == [0.25] and monitor.log["val_loss"].tolist() == [2.5]


def test_statistics_of_diverging_logits_are_taken_as_logit_stats_gives_them():
    """Logits near float32's limit give an infinite margin with a finite loss: a diverging
    run, which the monitor logs (its features turn NaN, and a tuner stops it), not an error."""
    stats = logit_stats(torch.tensor([[2e38, -2e38]]), torch.tensor([0]))
    assert stats["loss"] == 0.0 and stats["margin"] == math.inf
    nan = logit_stats(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]))
    assert math.isnan(nan["loss"]) and math.isnan(nan["margin"])
    plain = PlainTransformer(P)
    monitor = _monitor_of(plain)
    for step, s in enumerate((stats, nan)):
        _observe_without_training(monitor, plain, step, train_loss=s["loss"], val_loss=1.0,
                                  train_acc=s["acc"], val_acc=0.5, train_margin=s["margin"])
    assert monitor.log["train_margin"].tolist()[0] == math.inf


def test_metrics_at_their_bounds_are_taken():
    """A float32 loss of exactly 0 (late in training) and accuracies of 0 are real values."""
    plain = PlainTransformer(P)
    monitor = _monitor_of(plain)
    edge = dict(train_loss=0.0, val_loss=0.0, train_acc=0.0, val_acc=1.0, train_margin=-1.0)
    _observe_without_training(monitor, plain, 0, **edge)
    row = monitor.log.iloc[0]
    assert [row[k] for k in edge] == list(edge.values())


@pytest.mark.parametrize("window, schedule", [
    (5, LogConfig(dense_until=5, every=10)),  # W - 1 logged, W not
    (5, LogConfig(dense_until=7, every=10)), (5, LogConfig(dense_until=2, every=3)),
    (7, LogConfig(dense_until=0, every=4)),
])
def test_forecast_step_is_the_step_that_makes_the_monitor_ready(window, schedule):
    """forecast_step is found from the schedule alone: one past the trainer's last logged step
    below W (its list of steps is the reference), the step at which `ready` turns True."""
    plain = PlainTransformer(P)
    monitor = _monitor_of(plain, window=window, log_schedule=schedule)
    want = max(s for s in schedule.steps(10 * window) if s < window) + 1
    step = 0
    while not monitor.ready:
        _observe_without_training(monitor, plain, step, **(METRICS if monitor.wants(step) else {}))
        step += 1
    assert monitor.forecast_step == step - 1 == want


def test_schedule_matches_the_trainer():
    for cfg in (LogConfig(), LogConfig(dense_until=4, every=3), LogConfig(dense_until=0, every=7)):
        steps = cfg.steps(1000)[:-1]  # the trainer also logs the final step
        assert [t for t in range(1000) if is_logged_step(t, cfg)] == steps


def test_logit_stats_against_torch():
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(50, 7, generator=gen), torch.randint(0, 7, (50,), generator=gen)
    got = logit_stats(logits, labels)
    assert got["loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    assert got["acc"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    top2 = logits.topk(2, dim=1).values
    correct = logits[torch.arange(50), labels]
    other = torch.where(correct == top2[:, 0], top2[:, 1], top2[:, 0])
    assert got["margin"] == pytest.approx((correct - other).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        logit_stats(logits[None], labels)
    with pytest.raises(TypeError, match="labels must be integer class indices, got dtype torch.float32"):
        logit_stats(logits, labels.float())
    with pytest.raises(ValueError, match=r"class indices in \[0, 7\), got values in \[0, 9\]"):
        logit_stats(logits, torch.where(labels == labels[0], 9, labels))
    assert logit_stats(logits, labels.int()) == got
    assert logit_stats(logits, labels.to(torch.uint16)) == got
    # Was: AttributeError 'dim' for arrays, torch's NotImplementedError for integer logits,
    # and NaNs for an empty set.
    with pytest.raises(TypeError, match="logits must be a torch.Tensor, got ndarray"):
        logit_stats(logits.numpy(), labels)
    with pytest.raises(TypeError, match="logits must be floating point, got dtype torch.int64"):
        logit_stats(logits.long(), labels)
    with pytest.raises(ValueError, match="hold no examples"):
        logit_stats(logits[:0], labels[:0])
    with pytest.raises(ValueError, match="logits and labels must be on one device, got meta and cpu"):
        logit_stats(torch.empty(50, 7, device="meta"), labels)  # as cuda and cpu would be
    diverged = logit_stats(torch.full((3, 7), float("inf")), labels[:3])  # NaN, not an error
    assert math.isnan(diverged["loss"])


@pytest.mark.parametrize("args, needle", [
    (["--train-frac", "1.5"], "--train-frac 1.5 is not allowed: expected 0 < f < 1"),
    (["--device", "gpu"], "--device 'gpu' is not allowed: expected cpu or cuda[:N]"),
    (["--device", "cudafoo"], "--device 'cudafoo' is not allowed"),
    (["--steps", "-1"], "--steps -1 is not allowed: expected an integer >= 0"),
    (["--p", "1"], "--p 1 is not allowed: expected an integer >= 2"),  # was a reshape traceback
    # Was: the whole run trained, then its log lost to pandas' error.
    (["--save-log", "/nonexistent/x.csv"], "--save-log '/nonexistent/x.csv': its directory does "
                                           "not exist"),
])
def test_example_script_refuses_bad_arguments_in_one_line(args, needle):
    done = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr


def test_example_script_runs_short_without_a_forecaster(tmp_path):
    log = tmp_path / "log.csv"
    done = subprocess.run([sys.executable, str(EXAMPLE), "--steps", "5", "--device", "cpu",
                           "--save-log", str(log)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list(pd.read_csv(log)["step"]) == [0, 1, 2, 3, 4, 5]


def test_example_script_notes_a_forecast_horizon_other_than_its_run(tmp_path):
    """P(grok) is of grokking within the forecaster's training runs' steps: the example's
    outcome line, over its own --steps, now says when the two differ."""
    from grokcast.config import SweepConfig
    from grokcast.features import FEATURE_NAMES
    from grokcast.forecast import GrokForecaster

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(12, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    model = GrokForecaster().fit(X, np.array([0, 1] * 6))
    path = tmp_path / "f.json"
    model.save(path, window=20, threshold=0.9, sweep_hash="0" * 64, n_train_runs=12,
               task=SweepConfig.from_file(EXAMPLE.parents[1] / "configs" / "paper.toml").task(),
               label_steps=10_000)
    done = subprocess.run([sys.executable, str(EXAMPLE), "--steps", "25", "--device", "cpu",
                           "--forecaster", str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("note: this run trained for 25 steps, the forecaster's training runs for 10,000: its "
            "P(grok) means grokking within 10,000 steps, the outcomes here within 25") in done.stdout


def _observe_two_steps(model: torch.nn.Module, lr: float = 0.05) -> pd.DataFrame:
    """observe(0), one plain SGD step, observe(1): the log's row 0 has its update."""
    monitor = GrokMonitor(model.embed.weight, model.unembed.weight,
                          log_schedule=LogConfig(dense_until=10))
    for step in (0, 1):
        _observe_without_training(monitor, model, step, **METRICS)
        if step == 0:
            with torch.no_grad():
                for p in model.parameters():
                    p -= lr * (p.grad.to_dense() if p.grad.is_sparse else p.grad)
    return monitor.log


def test_a_sparse_embedding_gradient_is_read_as_its_dense_form():
    """nn.Embedding(sparse=True) failed inside torch ("reshape is not implemented for sparse
    tensors"; found in review). Its norms are those of the dense model's."""
    dense = _plain_model(_run())
    sparse = _plain_model(_run())
    weight = sparse.embed.weight.detach().clone()
    sparse.embed = torch.nn.Embedding.from_pretrained(weight, freeze=False, sparse=True)
    want, got = _observe_two_steps(dense), _observe_two_steps(sparse)
    np.testing.assert_allclose(got[list(SIGNAL_NAMES)], want[list(SIGNAL_NAMES)], rtol=1e-6)


def test_a_bf16_models_update_and_norms_are_taken_in_float32():
    """A bf16 model's update was differenced and summed in bf16: its norm up to 1.7e-4 off
    (found in review). Against the same bf16 weights in float64, within float32 rounding."""
    model = _plain_model(_run()).to(torch.bfloat16)
    before = [p.detach().double().clone() for p in model.parameters()]
    log = _observe_two_steps(model)
    after = [p.detach().double() for p in model.parameters()]
    update = math.sqrt(sum(((a - b) ** 2).sum().item() for a, b in zip(after, before)))
    norm = math.sqrt(sum((b**2).sum().item() for b in before))
    assert log["update_norm"].iloc[0] == pytest.approx(update, rel=1e-5)
    assert log["param_norm"].iloc[0] == pytest.approx(norm, rel=1e-5)


def test_window_features_of_a_log_that_ends_at_the_last_step_read(tmp_path):
    """A log whose schedule is known (a monitor's, or the rows an on_log hook has at step d)
    is read through last_row = d, not refused for stopping before W - 1; the features are those
    of the whole run's log. A wrong last_row is refused by value."""
    from grokcast.integrations import window_features
    from grokcast.tool import window_features as table_of

    run, W = _run(n_steps=9), 5  # logs 0, 1, 2, 3, 6, 9
    path = tmp_path / "f.json"
    _saved_forecaster(path, W, [0, 1, 2, 3])
    full = log_frame(train_ensemble([run]))
    rows = full[full["step"].isin([0, 1, 2, 3]) | (full["step"] >= W)]
    want = feature_table(rows, W).iloc[0].to_numpy(dtype=float)
    early = full[full["step"] <= 3]
    got = window_features(early, W, path, last_row=3)
    np.testing.assert_array_equal(np.array(list(got.values())), want)
    with pytest.raises(LogError, match="ends at step 3, but a forecast with the window W=5 needs "
                                       "a log that reaches step 4$"):
        window_features(early, W, path)
    with pytest.raises(ValueError, match=r"^last_row=2 is not allowed: expected 3, the last step "
                                         "the forecaster's features read$"):
        window_features(early, W, path, last_row=2)
    # Without a forecaster's steps: a step below W, and no row between it and W.
    in_memory = _fitted_forecaster()
    np.testing.assert_array_equal(table_of(in_memory, early, W, last_row=3).to_numpy()[0], want)
    with pytest.raises(ValueError, match=r"^last_row=5 is not allowed: expected a step below W=5$"):
        table_of(in_memory, early, W, last_row=5)
    dense = log_frame(train_ensemble([_run(n_steps=5, log=LogConfig(dense_until=100))]))
    with pytest.raises(LogError, match=r"has a row at step 4, past last_row=3 and below W=5"):
        table_of(in_memory, dense, W, last_row=3)
