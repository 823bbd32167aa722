"""GrokMonitor: the trainer's signal log, recorded from your own PyTorch training loop.

The monitor computes exactly the columns of a sweep's log (``run_id``, ``step``, then
:data:`grokcast.signals.SIGNAL_NAMES`) under the same step convention, with the same
functions (:mod:`grokcast.signals`), so a forecaster fit on a sweep applies to your run.

Protocol: call :meth:`GrokMonitor.observe` once per step, for every step from 0, after
``loss.backward()`` and **before** ``optimizer.step()``::

    monitor = GrokMonitor(model.embed.weight, model.unembed.weight, forecaster="forecaster.json")
    for step in range(n_steps + 1):
        optimizer.zero_grad()
        logits = model(x_train)                     # (N, V) at the answer position
        loss = F.cross_entropy(logits, y_train)
        loss.backward()
        metrics = {}
        if monitor.wants(step):                     # a logged step: give the fit statistics
            with torch.no_grad():
                train, val = logit_stats(logits, y_train), logit_stats(model(x_val), y_val)
            metrics = dict(train_loss=train["loss"], train_acc=train["acc"],
                           train_margin=train["margin"], val_loss=val["loss"], val_acc=val["acc"])
        monitor.observe(step, model, **metrics)
        if step == monitor.forecast_step:           # the rows below W it reads are complete
            print(monitor.forecast())
        if step < n_steps:
            optimizer.step()

At ``observe(t)`` the model holds theta_t and its ``.grad`` the full-batch gradient at
theta_t, which is what the trainer records in row t. Row t's ``update_norm`` and
``update_cos`` need theta_{t+1}: they are filled in by ``observe(t + 1)``, so the newest row
shows them as NaN, as the last row of a sweep's log does. Between calls the monitor keeps
one copy of the parameters (theta_t) and, at logged steps, one parameter delta.

Unlike the trainer, the monitor does not know the run's length, so it logs the schedule's
steps only (the trainer also logs the final step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from grokcast import signals as S
from grokcast.config import LogConfig, ModelConfig
from grokcast.features import show_steps
from grokcast.validation import check_bool, check_int

# Supplied by the caller at logged steps; the other signals the monitor computes itself.
METRIC_NAMES = ("train_loss", "val_loss", "train_acc", "val_acc", "train_margin")
_COL = {name: k for k, name in enumerate(S.SIGNAL_NAMES)}


def logit_stats(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Loss, accuracy and logit margin of one model's predictions, as the trainer logs them.

    Parameters
    ----------
    logits : Tensor of shape (N, V)
        Logits at the answer position.
    labels : LongTensor of shape (N,)

    Returns
    -------
    dict with float ``loss`` (mean cross-entropy), ``acc`` and ``margin`` (correct logit
    minus the largest other logit, averaged over examples); see :func:`signals.fit_stats`.

    Examples
    --------
    >>> logit_stats(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))["acc"]
    0.5
    """
    for name, t in (("logits", logits), ("labels", labels)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__} (torch.as_tensor "
                            "turns an array into one)")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"logits must be floating point, got dtype {logits.dtype}")
    if logits.device != labels.device:
        raise ValueError(f"logits and labels must be on one device, got {logits.device} and "
                         f"{labels.device}")
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"expected logits of shape (N, V) and labels of shape (N,), got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    labels = labels.long()  # unsigned dtypes lack comparison kernels; gather needs int64
    if labels.numel() and not bool(((labels >= 0) & (labels < logits.shape[1])).all()):
        raise ValueError(f"labels must be class indices in [0, {logits.shape[1]}), got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    if not labels.numel():  # an empty set (train_frac=1 leaves no val examples) has no statistics
        raise ValueError("logits and labels hold no examples: the statistics of an empty set are "
                         "undefined")
    with torch.no_grad():
        mask = torch.ones(1, labels.shape[0], dtype=torch.bool, device=labels.device)
        stats = S.fit_stats(logits.detach()[None], labels[None], mask)  # each (1,)
    return {name: float(value[0]) for name, value in stats.items()}


def is_logged_step(step: int, schedule: LogConfig) -> bool:
    """Whether the trainer logs ``step`` under ``schedule`` (the final step aside).

    Every step below ``dense_until``, then the multiples of ``every``: the same steps as
    :meth:`LogConfig.steps` without needing the run's length.
    """
    return step < schedule.dense_until or step % schedule.every == 0


class GrokMonitor:
    """Record the trainer's signal log from a plain PyTorch loop and forecast grokking.

    Parameters
    ----------
    embedding : Tensor of shape (V, d_model)
        The token-embedding parameter (e.g. ``model.embed.weight``); its effective rank is
        ``erank_we``. Must be one of the model's parameters.
    unembedding : Tensor of shape (V, d_model) or (d_model, V)
        The unembedding parameter (e.g. ``model.unembed.weight``), for ``erank_wu``. The
        effective rank does not depend on the orientation.
    window : int, optional
        Early-training window W of the forecast. Default: the forecaster's window when it
        was loaded from a file; 200 without a forecaster; an in-memory forecaster (which
        records no window) needs it given.
    forecaster : GrokForecaster or path, optional
        A fitted forecaster, or the JSON file written by ``grokcast fit``. Needed only for
        :meth:`forecast`.
    log_schedule : LogConfig, default=LogConfig()
        Which steps get a log row. Use the schedule of the sweep the forecaster was fit on
        (the paper's: every step below 300, then every 100).
    run_id : str, default="monitor"
        Value of the ``run_id`` column.
    explain : bool, default=True
        Refuse now, not after W steps, a forecaster :meth:`forecast` cannot explain (one
        without a GrokForecaster's scaler and coefficients, e.g. a scikit-learn pipeline).
        False where only the features are wanted (:class:`~grokcast.integrations.FeatureRecorder`
        for a tuner's pruner, which takes such a model at its word).
    """

    def __init__(self, embedding: Tensor, unembedding: Tensor, *, window: int | None = None,
                 forecaster: Any = None, log_schedule: LogConfig = LogConfig(),
                 run_id: str = "monitor", explain: bool = True) -> None:
        for name, t in (("embedding", embedding), ("unembedding", unembedding)):
            if not isinstance(t, Tensor) or t.dim() != 2:
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"{name} must be a 2-D weight tensor such as "
                                 f"model.embed.weight, got {shape}")
            if t.requires_grad and not t.is_leaf:  # U.T: observe() would not find it
                either = " (either orientation is read)" if name == "unembedding" else ""
                raise ValueError(f"the {name} is a view of or a result computed from a parameter "
                                 f"(e.g. weight.T), not the parameter: pass the nn.Parameter "
                                 f"itself, as model.parameters() lists it{either}")
        if not isinstance(log_schedule, LogConfig):
            raise TypeError(f"log_schedule must be a LogConfig, got {type(log_schedule).__name__}")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"run_id={run_id!r} is not allowed: expected a non-empty string")
        self.embedding, self.unembedding = embedding, unembedding
        self.forecaster = _load_forecaster(forecaster, check_bool("explain", explain))
        self.window = _resolve_window(window, self.forecaster)
        _check_schedule(log_schedule, self.window, self.forecaster)
        _check_shapes(embedding, unembedding, self.forecaster)
        # The parameter count the forecaster's task implies (None: no task to check against).
        self._task_params = _task_param_count(self.forecaster)
        self.log_schedule = log_schedule
        self.run_id = run_id
        self._steps: list[int] = []
        self._rows: list[np.ndarray] = []  # each (n_signals,), in SIGNAL_NAMES order
        self._last_step: int | None = None
        self._snapshot: list[Tensor] | None = None  # theta_t, kept when step t or t+1 is logged
        # theta_t - theta_{t-1}, kept while row t waits for its update_cos
        self._prev_delta: list[Tensor] | None = None

    def wants(self, step: int) -> bool:
        """Whether ``step`` gets a log row, so :meth:`observe` needs the fit statistics."""
        return is_logged_step(check_int("step", step, 0), self.log_schedule)

    @property
    def last_step(self) -> int | None:
        """The last observed step, or None before the first call."""
        return self._last_step

    @torch.no_grad()
    def observe(self, step: int, model: torch.nn.Module, *, train_loss: float | None = None,
                val_loss: float | None = None, train_acc: float | None = None,
                val_acc: float | None = None, train_margin: float | None = None) -> None:
        """Record step ``step``: call after ``loss.backward()`` and before ``optimizer.step()``.

        The gradient read is the one in ``.grad``: with a ``torch.amp.GradScaler`` call
        ``scaler.unscale_(optimizer)`` first (the scaled gradient's norm is the scale times
        too large), and clip gradients after this call (the norm would be the clipped one).

        Parameters
        ----------
        step : int
            Number of optimizer updates applied so far: 0 on the first call, then +1 per call.
        model : torch.nn.Module
            The model being trained; all of ``model.parameters()`` count in the norms.
        train_loss, val_loss, train_acc, val_acc, train_margin : float
            The fit statistics at this step's parameters (see :func:`logit_stats`); required
            at steps where :meth:`wants` is True, ignored otherwise.
        """
        self._check_step(step)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be the torch.nn.Module being trained, got "
                            f"{type(model).__name__}")
        logged = self.wants(step)
        # Checked before any state changes, so a corrected call can follow; unused unless logged.
        metrics = _check_metrics({"train_loss": train_loss, "val_loss": val_loss,
                                  "train_acc": train_acc, "val_acc": val_acc,
                                  "train_margin": train_margin}, step) if logged else {}
        params = list(model.parameters())
        self._check_params(params)
        # Each (1, ...): an ensemble of one run. At least float32: an update of a bf16 model
        # differenced in bf16 loses digits its norm and cosine keep in the trainer's fp32.
        current = [p.detach()[None].to(torch.promote_types(p.dtype, torch.float32)) for p in params]
        delta = None
        if self._snapshot is not None:  # theta_{t-1} was kept: the update t-1 -> t is known now
            delta = [c - s for c, s in zip(current, self._snapshot)]
            if self._steps and self._steps[-1] == step - 1:
                row = self._rows[-1]
                row[_COL["update_norm"]] = float(S.global_norm(delta)[0])
                if self._prev_delta is not None:
                    row[_COL["update_cos"]] = float(S.cosine(delta, self._prev_delta)[0])
        if logged:
            self._rows.append(self._row(params, current, metrics))
            self._steps.append(step)
        self._prev_delta = delta if logged else None
        keep = logged or self.wants(step + 1)
        self._snapshot = [c.clone() for c in current] if keep else None
        self._last_step = step

    def _check_step(self, step: int) -> None:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"step={step!r} is not allowed: expected an int (the count of "
                            f"optimizer steps taken), got {type(step).__name__}")
        expected = 0 if self._last_step is None else self._last_step + 1
        if step != expected:
            what = ("the first observed step must be 0 (the initial model, before any "
                    "optimizer.step())" if self._last_step is None else
                    f"observe every step: the last observed step was {self._last_step}")
            raise ValueError(f"step={step} is not allowed: expected {expected}; {what}")

    def _check_params(self, params: Sequence[Tensor]) -> None:
        for name, t in (("embedding", self.embedding), ("unembedding", self.unembedding)):
            if not any(p is t for p in params):
                example = "model.embed.weight" if name == "embedding" else "model.unembed.weight"
                raise ValueError(f"the {name} tensor given to GrokMonitor is not a parameter of "
                                 f"the model passed to observe(); pass e.g. {example}")
        count = sum(p.numel() for p in params)
        if self._task_params is not None and count != self._task_params:
            task = self.forecaster.metadata_.task
            raise ValueError(
                f"the model has {count:,} parameters, but the forecaster was fit on a model of "
                f"{self._task_params:,} (p={task['p']}, d_model={task['model']['d_model']}, "
                f"d_mlp={task['model']['d_mlp']}: grokcast's one-layer transformer, without "
                "biases or LayerNorm): the norms would be read on another scale; fit a "
                "forecaster on a sweep of this model")
        if all(p.grad is None for p in params):
            raise ValueError("no parameter has a gradient: call observe() after loss.backward() "
                             "and before optimizer.step() / optimizer.zero_grad()")

    def _row(self, params: Sequence[Tensor], current: list[Tensor],
             metrics: dict[str, float]) -> np.ndarray:
        """Row ``step`` without its update columns (filled in by the next call)."""
        # A parameter the loss does not reach has no .grad: its gradient is zero.
        grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).detach()[None]
                 for p in params]
        # A sparse gradient (nn.Embedding(sparse=True)) has the same norm as its dense form.
        grads = [g.to_dense() if g.is_sparse else g for g in grads]
        row = np.full(len(S.SIGNAL_NAMES), math.nan)
        for name, value in metrics.items():
            row[_COL[name]] = value
        row[_COL["param_norm"]] = float(S.global_norm(current)[0])
        row[_COL["grad_norm"]] = float(S.global_norm(grads)[0])
        row[_COL["erank_we"]] = float(S.effective_rank(self.embedding.detach()[None])[0])
        row[_COL["erank_wu"]] = float(S.effective_rank(self.unembedding.detach()[None])[0])
        return row

    @property
    def log(self) -> pd.DataFrame:
        """The log so far, with a sweep log's columns: ``run_id``, ``step``, then the signals.

        The newest row's ``update_norm`` and ``update_cos`` are NaN until the next step is
        observed, as on the last row of a sweep's log.
        """
        values = np.array(self._rows).reshape(len(self._rows), len(S.SIGNAL_NAMES))
        df = pd.DataFrame(values, columns=list(S.SIGNAL_NAMES))
        df.insert(0, "step", np.asarray(self._steps, dtype=np.int64))
        df.insert(0, "run_id", [self.run_id] * len(self._steps))
        return df

    @property
    def last_read_step(self) -> int:
        """d, the last step below W whose row the features read: the last of the forecaster's
        steps (``metadata_.required_steps()``), or, for a forecaster that records none (or
        none given), the schedule's last logged step below W. W - 1 on a schedule dense below
        W; 300 at W = 350 or 400 on the paper's (every step below 300, then every 100).
        """
        meta = getattr(self.forecaster, "metadata_", None)
        if meta is not None:
            return meta.last_read_step()  # the schedule logs it (checked when made)
        schedule = self.log_schedule
        return max(min(schedule.dense_until, self.window) - 1,
                   (self.window - 1) // schedule.every * schedule.every)

    @property
    def ready(self) -> bool:
        """Whether the window's rows are complete: step d + 1 observed (:attr:`forecast_step`).

        Unlike a log file, whose rows stop before W - 1 also when its run was cut short, the
        monitor knows its schedule and observes every step, so no row the features read can
        come after row d: it need not wait for a logged step at or past W - 1.
        """
        return self._last_step is not None and self._last_step >= self.forecast_step

    @property
    def forecast_step(self) -> int:
        """The step whose :meth:`observe` makes the monitor :attr:`ready`: d + 1, d being
        :attr:`last_read_step` (row d's update columns need theta_{d+1}). W where the
        features read step W - 1 (on the paper's schedule, W <= 300); 301 at W = 350 or 400
        on the paper's, as ``grokcast sweep --stop-model`` decides. A run that stops there has
        trained d + 1 steps. A loop forecasts once with ``if step == monitor.forecast_step:``.
        """
        return self.last_read_step + 1

    def forecast(self, *, top: int = 3) -> dict[str, Any]:
        """P(grok) from the first ``window`` steps, with the features that moved it most.

        Available once :attr:`ready`: step :attr:`forecast_step` has been observed (row d,
        the last the features read, needs theta_{d+1} for its update columns). The features
        are those of the log's rows below W, cut to the forecaster's steps, as
        ``GrokForecaster.predict_proba`` reads them on a sweep's log of the run.

        Returns
        -------
        dict
            ``run_id``, ``p_grok``, ``log_odds``, ``intercept``, ``pushed_up`` and
            ``pushed_down`` (lists of ``{"feature", "value", "z", "contribution"}``, largest
            first); see :func:`grokcast.tool.explain`.
        """
        from grokcast.tool import LogError, forecast_frame

        if self.forecaster is None:
            raise RuntimeError("this GrokMonitor has no forecaster: pass forecaster=PATH (a file "
                               "written by `grokcast fit`) or a fitted GrokForecaster")
        if not self.ready:
            seen = "no step" if self._last_step is None else f"up to step {self._last_step}"
            d = self.last_read_step
            raise LogError(f"forecast needs the rows of the logged steps up to {d} and the update "
                           f"after step {d}: observe through step {self.forecast_step} (its "
                           f"forecast_step) first (observed {seen})")
        return forecast_frame(self.forecaster, self.log, self.window, top=top,
                              last_row=self.last_read_step)[0]


def _check_metrics(metrics: dict[str, Any], step: int) -> dict[str, float]:
    """The fit statistics of a logged step as floats, or an error naming the bad one."""
    missing = [name for name in METRIC_NAMES if metrics[name] is None]
    if missing:
        raise ValueError(f"step {step} is a logged step: observe() needs {', '.join(missing)} "
                         "(compute them with grokcast.monitor.logit_stats)")
    out = {}
    for name, value in metrics.items():
        # A one-element tensor or array (loss.detach().cpu().numpy()) is its number.
        if (isinstance(value, Tensor) and value.numel() == 1) or (
                isinstance(value, np.ndarray) and value.size == 1):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name}={value!r} is not allowed: expected a number (a float or a "
                            "one-element tensor)")
        value = float(value)
        # No NaN: an accuracy is defined even for diverged logits, and the features read a row
        # with a NaN val_acc as not logged.
        if name.endswith("_acc") and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value!r} is not allowed: expected an accuracy in [0, 1]")
        if name.endswith("_loss") and value < 0:  # inf and NaN stay: a diverging run logs them
            raise ValueError(f"{name}={value!r} is not allowed: expected a loss >= 0")
        out[name] = value
    # A NaN margin comes from NaN logits, whose loss is NaN too (logit_stats); an infinite one
    # can come with a finite loss (logits near float32's limit: a run diverging), and stays.
    margin, loss = out["train_margin"], out["train_loss"]
    if math.isnan(margin) and not math.isnan(loss):
        raise ValueError(f"train_margin=nan is not allowed with train_loss={loss!r}: both come "
                         "from the train logits (grokcast.monitor.logit_stats)")
    return out


def _load_forecaster(forecaster: Any, explain: bool) -> Any:
    if forecaster is None:
        return None
    from grokcast.forecast import as_forecaster  # scikit-learn loads only when a model is used
    from grokcast.tool import check_explainable

    forecaster = as_forecaster(forecaster)
    if explain:
        check_explainable(forecaster)  # now, not after W steps of training: forecast() explains
    return forecaster


def _check_schedule(schedule: LogConfig, window: int, forecaster: Any) -> None:
    """Refuse, before training starts, a schedule that skips steps the forecaster reads, or
    (with or without a forecaster) logs fewer than the two steps below W a slope needs."""
    logged = schedule.steps_below(window, limit=2)
    if len(logged) < 2:
        raise ValueError(f"log_schedule={schedule!r} logs {len(logged)} step(s) below W={window} "
                         f"({show_steps(logged)}): the window's slopes need at least 2 (log "
                         "densely below W, e.g. LogConfig(), the paper's schedule)")
    meta = getattr(forecaster, "metadata_", None)
    if meta is None:
        return
    missing = meta.missing_steps(schedule.steps(window))
    if missing:
        raise ValueError(f"log_schedule={schedule!r} is not allowed with this forecaster: it skips "
                         f"step(s) {show_steps(missing)} below W={window}, which the forecaster's "
                         "features were computed on (use the schedule of the sweep it was fit on, "
                         "or one dense "
                         f"through them: LogConfig(dense_until={meta.last_read_step() + 1}))"
                         f"{meta.steps_hint()}")


def _check_shapes(embedding: Tensor, unembedding: Tensor, forecaster: Any) -> None:
    """Refuse, before training starts, weights of another task than the forecaster's (where
    its file records one): the effective ranks and norms would be read on another scale, as
    ``grokcast forecast`` refuses another task's sweep. Its vocabulary is p + 1 tokens (the
    numbers and '='), the embedding (V, d_model), the unembedding either way round."""
    task = getattr(getattr(forecaster, "metadata_", None), "task", None)
    if not task:
        return
    want = (int(task["p"]) + 1, int(task["model"]["d_model"]))
    for name, t in (("embedding", embedding), ("unembedding", unembedding)):
        shape = tuple(t.shape)
        if shape != want and (name == "embedding" or shape != want[::-1]):
            raise ValueError(
                f"{name} has shape {shape}, but the forecaster was fit on p={want[0] - 1} "
                f"(V = p + 1 = {want[0]} tokens) with d_model={want[1]}: its {name} is "
                f"{want}{' or its transpose' if name == 'unembedding' else ''}; fit a forecaster "
                "on a sweep of this task")


def _task_param_count(forecaster: Any) -> int | None:
    """The parameter count of the forecaster's task (where its file records one), which
    ``observe`` checks the model against: d_mlp shows nowhere else."""
    from grokcast.model import n_params

    task = getattr(getattr(forecaster, "metadata_", None), "task", None)
    if not task:
        return None
    model = task["model"]
    cfg = ModelConfig(d_model=int(model["d_model"]), n_heads=int(model["n_heads"]),
                      d_mlp=int(model["d_mlp"]))
    return n_params(cfg, int(task["p"]))


def _resolve_window(window: int | None, forecaster: Any) -> int:
    """W: the one given, else the forecaster's; without a forecaster the paper's headline
    window, 200. A forecaster that does not record its window needs it given."""
    from grokcast.forecast import check_window, fitted_window

    if window is None:
        fitted = fitted_window(forecaster)
        if fitted is None and forecaster is not None:
            raise ValueError("window=None is not allowed for a forecaster without a recorded "
                             "window (one not loaded from a file): pass window=W, the window it "
                             "was fit on")
        return fitted if fitted is not None else 200
    return check_window(window, forecaster, minimum=2)  # a slope needs two steps
