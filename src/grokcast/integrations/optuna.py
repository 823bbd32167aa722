"""Optuna pruning with the grokking forecaster: prune a trial at step W when P(grok) is low.

How a trial reports its signals
-------------------------------
At the end of the window (step d + 1, d the last step below W the forecaster's features read:
W on a schedule dense below W, 301 at W = 350 or 400 on the paper's, where
``grokcast sweep --stop-model`` decides too) the trial stores its 28 window features as one
user attribute,
``trial.user_attrs["grokcast"] = {"window": W, "features": {name: value}}``
(:func:`report_features`; non-finite values are stored as ``None``). :class:`GrokPruner`
reads that attribute whenever the objective calls ``trial.should_prune()``: before it exists
the trial is never pruned by the forecaster; once it does, the trial is pruned if P(grok) is
below ``threshold``. Intermediate values (``trial.report``) are not used, so an objective
may still report its own metric for another pruner (``GrokPruner(..., then=MedianPruner())``).

From a plain PyTorch loop, :class:`TrialReporter` does the reporting (it wraps a
:class:`~grokcast.monitor.GrokMonitor`). The objective below is the reporting part; ``build``,
``evaluate``, ``n_steps`` and the data are yours (``examples/optuna_pruning.py`` is this study
complete, with a model and data)::

    import optuna
    import torch
    import torch.nn.functional as F

    from grokcast.integrations.optuna import GrokPruner, TrialReporter
    from grokcast.monitor import logit_stats

    pruner = GrokPruner("forecaster.json", threshold=0.2)
    study = optuna.create_study(direction="maximize", pruner=pruner)

    def objective(trial):
        model, opt = build(trial.suggest_float("weight_decay", 0.1, 10, log=True))
        reporter = TrialReporter(trial, model.embed.weight, model.unembed.weight,
                                 forecaster="forecaster.json")   # W from the file
        for step in range(n_steps + 1):
            opt.zero_grad()
            logits = model(x_train)
            loss = F.cross_entropy(logits, y_train)
            loss.backward()
            metrics = {}
            if reporter.wants(step):
                with torch.no_grad():
                    tr, va = logit_stats(logits, y_train), logit_stats(model(x_val), y_val)
                metrics = dict(train_loss=tr["loss"], train_acc=tr["acc"],
                               train_margin=tr["margin"], val_loss=va["loss"], val_acc=va["acc"])
            if reporter.observe(step, model, **metrics) and trial.should_prune():
                raise optuna.TrialPruned()           # step W: P(grok) below 0.2
            if step < n_steps:
                opt.step()
        return evaluate(model)

With grokcast's own trainer, report from the ``on_log`` hook of
:func:`grokcast.train.train_ensemble`. The trainer calls it at each logged step, after the
step's update, with ``(step, values)``, ``values`` an ``(R, n_signals)`` array in the order of
``grokcast.signals.SIGNAL_NAMES``: collect the rows as a log table (columns ``run_id``,
``step`` and the signals, as :func:`grokcast.early_stop.forecast_hook` does) and report at
d = ``max(forecaster.metadata_.required_steps())``, the last step below W the features read,
with ``window_features(rows_df, W, forecaster, last_row=d)``: the step where the sweep's
``grokcast sweep --stop-model`` decides (``GrokMonitor.last_read_step``), so a pruned run has
trained d + 1 steps. Not at step W - 1: where the schedule logs sparsely below W (W = 350 on
the paper's, which logs 300 and then 400) the hook never sees it. ``make_run`` (a
:class:`~grokcast.config.RunConfig` on the forecaster's task and log schedule) and
``evaluate`` are yours::

    import numpy as np
    import optuna
    import pandas as pd

    from grokcast.integrations import window_features
    from grokcast.integrations.optuna import GrokPruner, report_features
    from grokcast.signals import SIGNAL_NAMES
    from grokcast.train import train_ensemble

    pruner = GrokPruner("forecaster.json", threshold=0.2)
    W, d = pruner.window, max(pruner.forecaster.metadata_.required_steps())

    def objective(trial):
        run = make_run(trial.suggest_float("weight_decay", 0.1, 10, log=True))
        rows = []

        def on_log(step, values):                   # values: (1, n_signals), after the update
            rows.append(pd.DataFrame(values, columns=list(SIGNAL_NAMES))
                        .assign(run_id=run.run_id, step=step))
            if step == d:
                features = window_features(pd.concat(rows), W, pruner.forecaster, last_row=d)
                report_features(trial, features, W)
                if trial.should_prune():
                    return np.array([True])         # the trainer drops the run
            return None

        out = train_ensemble([run], on_log=on_log)
        if out.stopped_at[0] >= 0:
            raise optuna.TrialPruned()
        return evaluate(out)

    study = optuna.create_study(direction="maximize", pruner=pruner)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

try:
    import optuna
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("grokcast.integrations.optuna needs Optuna: "
                      "pip install 'grokcast[optuna]'") from err

from torch import Tensor

from grokcast.config import LogConfig
from grokcast.integrations import (
    FeatureRecorder,
    check_threshold,
    decode_features,
    encode_features,
    p_grok,
    resolve_forecaster,
    should_stop,
)

USER_ATTR = "grokcast"  # the user attribute holding a trial's report
# Set by TrialReporter: the training step at which its window completes and it reports.
DUE_ATTR = "grokcast_due_step"

__all__ = ["DUE_ATTR", "USER_ATTR", "GrokPruner", "TrialReporter", "report_features"]


def report_features(trial: optuna.trial.Trial, features: Mapping[str, float], window: int) -> None:
    """Store a trial's window features for :class:`GrokPruner` (user attribute ``"grokcast"``).

    Parameters
    ----------
    trial : optuna.trial.Trial
    features : mapping of str to float
        The 28 window features of the trial's run, e.g. from
        :func:`grokcast.integrations.window_features`.
    window : int
        W the features were computed on; must be the pruner's forecaster window.
    """
    _check_trial(trial)
    trial.set_user_attr(USER_ATTR, encode_features(features, window))


def _check_trial(trial: Any) -> None:
    if not isinstance(trial, optuna.trial.BaseTrial):
        raise TypeError(f"trial must be an Optuna trial (the objective's argument, or "
                        f"study.ask()), got {type(trial).__name__}")
    if isinstance(trial, optuna.trial.FrozenTrial):  # its user attrs are a local copy: lost
        raise TypeError("trial must be a running Optuna trial (the objective's argument, or "
                        "study.ask()), got a FrozenTrial, the record of a trial, on which a "
                        "report would be lost")


def _resumed(trial: Any) -> bool:
    """Whether the trial starts with intermediate values: a retry that inherited them
    (RetryFailedTrialCallback(inherit_intermediate_values=True)) resumes its own run, maybe
    past W, where its inherited report is its own and would not be made again."""
    study = getattr(trial, "study", None)
    if study is None:
        return False
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return any(t.number == trial.number and t.intermediate_values for t in running)


class TrialReporter(FeatureRecorder):
    """A :class:`~grokcast.integrations.FeatureRecorder` that reports to an Optuna trial.

    :meth:`observe` takes the same arguments as ``GrokMonitor.observe`` and returns True on
    the call that completes the window, right after storing the features on the trial:
    that is the step to call ``trial.should_prune()``.

    Parameters
    ----------
    trial : optuna.trial.Trial
    embedding, unembedding, window, forecaster, log_schedule
        As for :class:`~grokcast.integrations.FeatureRecorder`; ``run_id`` is
        ``"trial-<number>"``. In a study pruned by a :class:`GrokPruner` (itself, not
        wrapped in another pruner), the forecaster and the window default to the pruner's,
        and another window is refused here rather than when the trial reaches it.
    """

    def __init__(self, trial: optuna.trial.Trial, embedding: Tensor, unembedding: Tensor, *,
                 window: int | None = None, forecaster: Any = None,
                 log_schedule: LogConfig = LogConfig()) -> None:
        _check_trial(trial)
        study = getattr(trial, "study", None)
        if study is not None and len(study.directions) > 1:
            # Optuna's should_prune() raises for these: the trial would train W steps, then fail.
            raise ValueError(f"trial {trial.number} belongs to a multi-objective study "
                             f"({len(study.directions)} directions), which Optuna cannot prune: "
                             "use a FeatureRecorder and grokcast.integrations.p_grok in the "
                             "objective instead")
        pruner = getattr(study, "pruner", None)
        own = forecaster  # the caller's forecaster, named if its window is not the pruner's
        if isinstance(pruner, GrokPruner) and forecaster is None:
            # Its schedule and task are then checked now, and the features cut to its steps;
            # its window too (an in-memory forecaster records none).
            forecaster, window = pruner.forecaster, pruner.window if window is None else window
        super().__init__(embedding, unembedding, window=window, forecaster=forecaster,
                         log_schedule=log_schedule, run_id=f"trial-{trial.number}")
        if isinstance(pruner, GrokPruner) and self.window != pruner.window:
            # window= given, or the window of the forecaster= given (window left out): name it.
            bad = (f"window={self.window}" if window is not None or own is None else
                   f"forecaster={own!r:.200} (window W={self.window})")
            left = "window" if window is not None or own is None else "forecaster"
            raise ValueError(f"{bad} is not allowed: trial {trial.number}'s study is pruned by a "
                             f"GrokPruner of window W={pruner.window}, which would refuse the "
                             f"report (leave {left} out to use the pruner's)")
        self.trial = trial
        # Tells GrokPruner in which step units the trial reports, and when its report is due.
        trial.set_user_attr(DUE_ATTR, self.monitor.forecast_step)
        if not _resumed(trial):
            # A report copied from another trial (RetryFailedTrialCallback and
            # enqueue_trial(user_attrs=...) copy user attrs) would decide before step W.
            trial.set_user_attr(USER_ATTR, None)

    def observe(self, step: int, model: Any, **metrics: float) -> bool:  # type: ignore[override]
        """Record a step; True on the call that completed the window and reported it."""
        features = super().observe(step, model, **metrics)
        if features is None:
            return False
        report_features(self.trial, features, self.window)
        return True


class GrokPruner(optuna.pruners.BasePruner):
    """Prune a trial when the forecaster's P(grok) from its first W steps is below a threshold.

    Parameters
    ----------
    forecaster : GrokForecaster or path
        A fitted forecaster, or the JSON file written by ``grokcast fit``.
    threshold : float, default=0.5
        Prune when P(grok) < threshold. A trial whose features are not finite (it diverged in
        the window) is pruned too.
    window : int, optional
        W; default: the forecaster file's. A trial that reports another window raises.
    then : optuna.pruners.BasePruner, optional
        Consulted whenever the forecaster does not prune (before step W, and after it for the
        trials it kept), e.g. ``MedianPruner()`` on the objective's intermediate values.

    Notes
    -----
    The decision is a function of the trial's report alone, so it is the same at every
    ``should_prune()`` call after step W, and the same in every worker of a distributed study.
    A trial with a :class:`TrialReporter` that has reported intermediate values
    (``trial.report``) past the step where the reporter's window completes, without its
    features, is never pruned by the forecaster: the pruner warns once per trial (in the
    process that asks), since that is a reporting mistake, not a forecast. (Without a
    reporter, the trial's step units and so its due step are unknown: no warning.)
    """

    def __init__(self, forecaster: Any, *, threshold: float = 0.5, window: int | None = None,
                 then: optuna.pruners.BasePruner | None = None) -> None:
        self.forecaster, self.window = resolve_forecaster(forecaster, window)
        self.threshold = check_threshold(threshold)
        if then is not None and not isinstance(then, optuna.pruners.BasePruner):
            raise TypeError(f"then must be an Optuna pruner, got {type(then).__name__}")
        self.then = then
        self._warned: set[tuple[str, int]] = set()  # (study, trial) warned about a missing report

    def p_grok(self, trial: optuna.trial.FrozenTrial) -> float | None:
        """P(grok) of a trial from its report; None before it reported, NaN if not finite."""
        report = trial.user_attrs.get(USER_ATTR)
        if report is None:
            return None
        window, features = decode_features(report)
        if window != self.window:
            raise ValueError(f"trial {trial.number} reported features of window W={window}, but "
                             f"the pruner's forecaster uses W={self.window}")
        return p_grok(self.forecaster, features)

    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        p = self.p_grok(trial)
        if p is None:
            self._warn_unreported(study, trial)
        elif should_stop(p, self.threshold):
            return True
        return self.then.prune(study, trial) if self.then is not None else False

    def _warn_unreported(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial,
                         ) -> None:
        # The due step itself may be reported before the features are: only a later step
        # says the report was missed.
        due, step = trial.user_attrs.get(DUE_ATTR), trial.last_step
        key = (study.study_name, trial.number)
        if due is None or step is None or step <= due or key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(f"trial {trial.number} reported step {step} without its window features, "
                      f"which its TrialReporter completes at step {due} (W={self.window}), so "
                      "GrokPruner cannot judge it: call reporter.observe() at every step up to "
                      f"{due}", RuntimeWarning, stacklevel=4)
