"""Train an ensemble of runs with full-batch AdamW and record their signal log.

The only module that touches the device. Runs in one ensemble share p, the model shape,
the optimiser settings, the number of steps and the logging schedule; they may differ in
seed, weight decay, train fraction and split seed. Runs with different splits are padded to
the largest train set and masked, so each run's loss is the mean over its own examples; its
sums then run over more rows in another order, so a padded run's log differs from its log in
an ensemble of its own split by rounding (which training amplifies). `grokcast sweep` trains
each split in chunks of its own, where a run's log does not depend on its chunk (on the CPU:
the products and the AdamW step place each run's blocks on aligned boundaries, see
:data:`_ADAM_BLOCK` and ``model._ALIGN``; README, "Train a sweep").
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import sysconfig
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from grokcast import model as M
from grokcast import signals as S
from grokcast.config import ModelConfig, RunConfig
from grokcast.data import all_examples, split_indices, vocab_size
from grokcast.validation import check_bool

# Called after every logged step, the final one included, with (step, per-run signal rows of
# shape (R, n_signals)). Returning a boolean array of shape (R,) marks runs to stop: they
# leave the ensemble (they cost nothing more) and log NaN after. At the final step the
# return value is ignored.
LogHook = Callable[[int, np.ndarray], "np.ndarray | None"]


@dataclass
class EnsembleLog:
    """Signals of R runs at S logged steps: ``values[r, s, k]`` is signal ``SIGNAL_NAMES[k]``."""

    runs: list[RunConfig]
    steps: np.ndarray  # (S,)
    values: np.ndarray  # (R, S, n_signals)
    stopped_at: np.ndarray  # (R,) step at which a hook stopped the run, -1 if never


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not re.fullmatch(r"cuda:\d+", device):
        raise ValueError(f"device={device!r} is not allowed: expected auto, cpu or cuda[:N]")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but torch.cuda.is_available() is False")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} is not allowed: this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s), cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1}")
    return torch.device(device)


def check_compilable(device: torch.device) -> None:
    """Refuse ``compiled=True`` where ``torch.compile`` cannot build the step (else its first
    call fails deep inside torch): its CPU code is C++ built with ``$CXX`` (or ``g++``), its
    CUDA code Triton, and both wrap their kernels in C that includes Python's ``Python.h``."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise ValueError("compiled=True is not allowed here: torch.compile needs Triton for "
                             "CUDA, and it is not installed; train without compiling")
        # Triton builds its kernel launcher with $CC, else gcc or clang.
        if not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")):
            raise ValueError("compiled=True is not allowed here: Triton builds its kernel "
                             "launcher with a C compiler, and none ($CC, gcc, clang) is on the "
                             "PATH; install one (e.g. apt install gcc) or train without compiling")
    else:
        cxx = os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")
        if shutil.which(cxx) is None:
            raise ValueError(f"compiled=True is not allowed here: torch.compile builds the CPU "
                             f"step with a C++ compiler, and {cxx!r} (CXX, or the default) is not "
                             "on the PATH; install one (e.g. apt install g++) or train without "
                             "compiling")
    headers = Path(sysconfig.get_paths()["include"])
    if not (headers / "Python.h").is_file():
        raise ValueError(f"compiled=True is not allowed here: torch.compile builds the step "
                         f"against Python's C headers, and {str(headers / 'Python.h')!r} is "
                         "missing; install them (e.g. apt install python3-dev) or train without "
                         "compiling")


def check_compatible(runs: list[RunConfig]) -> None:
    """Runs of one ensemble must agree on everything except seed, weight decay and split."""
    if isinstance(runs, RunConfig):
        raise TypeError("runs must be a list of RunConfig objects, got one RunConfig: pass [run]")
    if not runs:
        raise ValueError("an ensemble needs at least one run")
    odd = [type(r).__name__ for r in runs if not isinstance(r, RunConfig)]
    if odd:
        raise TypeError(f"an ensemble's runs must be RunConfig objects, got {odd[0]} (build them "
                        "with RunConfig(...) or SweepConfig.runs())")
    first = runs[0]
    for r in runs[1:]:
        for name in ("p", "n_steps", "model", "optim", "log"):
            if getattr(r, name) != getattr(first, name):
                raise ValueError(f"runs {first.run_id} and {r.run_id} differ in {name!r}: "
                                 "an ensemble shares it")


def _padded_examples(runs: list[RunConfig], which: int, device: torch.device,
                     lookup: str | None = None) -> M.Examples:
    """Each run's train (0) or val (1) set, padded to the largest (padding is masked out);
    ``lookup`` as :meth:`grokcast.model.Examples.build` takes it."""
    tokens, labels = all_examples(runs[0].p)
    idx = [split_indices(r.p, r.train_frac, r.split_seed)[which] for r in runs]
    n_max = max(len(i) for i in idx)
    padded = np.zeros((len(runs), n_max), dtype=np.int64)  # pad with example 0, masked out
    mask = np.zeros((len(runs), n_max), dtype=bool)
    for r, i in enumerate(idx):
        padded[r, : len(i)], mask[r, : len(i)] = i, True
    padded_t = torch.from_numpy(padded)
    return M.Examples.build(tokens[padded_t].to(device), labels[padded_t].to(device),
                            torch.from_numpy(mask).to(device), vocab=vocab_size(runs[0].p),
                            lookup=lookup)


# Floats a run's block of each parameter is padded to a multiple of in the CPU's AdamW step.
# PyTorch's fused AdamW rounds the second moment of a tensor's last elements, past its last
# whole vector, otherwise than the rest's (measured: torch 2.13 CPU); where a parameter's
# per-run size is not a multiple of the vector, a run's block meets that tail at another place
# alone than in a chunk, and its log depended on its chunk (W_pos is 3 d_model floats:
# d_model = 62, 63, 66). A multiple of 8 floats was enough; 16, AVX-512's vector, for margin.
_ADAM_BLOCK = 16


def _adam_block(p: Tensor) -> int | None:
    """The padded per-run size of parameter ``p`` (R, ...) in the AdamW step; None where it
    needs none (on CUDA: its kernel is another, and no chunk promise is made there)."""
    size = p[0].numel()
    if p.is_cuda or size % _ADAM_BLOCK == 0:
        return None
    return -(-size // _ADAM_BLOCK) * _ADAM_BLOCK


def _padded_copy(x: Tensor, block: int) -> Tensor:
    """``x`` (R, ...) as an (R, block) matrix, each run's values first and zeros after."""
    out = x.new_zeros(x.shape[0], block)
    out[:, : x[0].numel()] = x.reshape(x.shape[0], -1)
    return out


class _AdamW:
    """Full-batch AdamW matching ``torch.optim.AdamW`` with a per-run weight decay.

    The decay is applied first, as AdamW does, as one multiply by a per-run factor; the Adam
    update itself is PyTorch's fused kernel (one pass over the parameters instead of nine,
    on CPU and CUDA alike). On the CPU, a parameter whose per-run size is not a multiple of
    :data:`_ADAM_BLOCK` floats is stepped in a padded copy (its moments kept padded), so that a
    run's update does not depend on its place in the chunk.
    """

    def __init__(self, params: list[Tensor], runs: list[RunConfig]) -> None:
        opt = runs[0].optim
        self.params, self.lr, self.b1, self.b2, self.eps = params, opt.lr, opt.beta1, opt.beta2, opt.eps
        wd = torch.tensor([r.weight_decay for r in runs], dtype=params[0].dtype, device=params[0].device)
        self.decay = [(1 - self.lr * wd).reshape(-1, *[1] * (p.dim() - 1)) for p in params]
        self.blocks = [_adam_block(p) for p in params]
        self.m = [torch.zeros_like(p) if b is None else p.new_zeros(p.shape[0], b)
                  for p, b in zip(params, self.blocks, strict=True)]
        self.v = [torch.zeros_like(m) for m in self.m]
        # The fused kernel reads the step count from a float tensor per parameter.
        self.t = [torch.zeros((), dtype=torch.float32, device=params[0].device) for _ in params]

    def select(self, params: list[Tensor], keep: Tensor) -> None:
        """Continue with the ensemble members where ``keep`` (R,) is True; ``params`` are theirs."""
        self.params = params
        self.decay, self.m, self.v = ([x[keep] for x in xs] for xs in (self.decay, self.m, self.v))

    @torch.no_grad()
    def step(self, grads: list[Tensor]) -> None:
        torch._foreach_mul_(self.params, self.decay)
        torch._foreach_add_(self.t, 1.0)
        params = self.params
        if any(b is not None for b in self.blocks):
            blocks = self.blocks
            params = [p if b is None else _padded_copy(p, b) for p, b in zip(params, blocks, strict=True)]
            grads = [g if b is None else _padded_copy(g, b) for g, b in zip(grads, blocks, strict=True)]
        torch._fused_adamw_(params, grads, self.m, self.v, [], self.t, lr=self.lr, beta1=self.b1,
                            beta2=self.b2, weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)
        for p, padded in zip(self.params, params, strict=True):
            if padded is not p:
                p.copy_(padded[:, : p[0].numel()].view_as(p))


def train_ensemble(runs: list[RunConfig], device: str | torch.device = "cpu", *,
                   on_progress: Callable[[int], None] | None = None,
                   on_log: LogHook | None = None, cuda_graphs: bool = True,
                   compiled: bool = False) -> EnsembleLog:
    """Train ``runs`` as one ensemble and return their logs.

    ``on_progress(k)`` is called with the number of optimizer steps just completed (in
    blocks, for progress bars). ``on_log`` may stop runs early, see :data:`LogHook`.
    ``cuda_graphs`` (CUDA only): replay the steps that log nothing as one recorded CUDA
    graph, see :class:`_Replayed`; False launches their kernels one by one.
    ``compiled``: every step's gradients from the ``torch.compile`` build of the model's
    step (:func:`grokcast.model.loss_and_grads`): faster once compiled, which takes seconds
    per ensemble shape and thread count, and a C++ compiler on the CPU; the logs differ from
    the eager ones in rounding, which can move a run near a label threshold across it, and
    depend on the number of torch threads (fix it to compare compiled logs).
    """
    check_compatible(runs)
    device = resolve_device(str(device))  # a torch.device too: CUDA asked for, none present
    check_bool("cuda_graphs", cuda_graphs)
    if check_bool("compiled", compiled):
        check_compilable(device)
    cfg = runs[0]
    R, n_steps, n_heads, precision = len(runs), cfg.n_steps, cfg.model.n_heads, cfg.model.precision
    params = M.init_params(cfg.model, cfg.p, [r.seed for r in runs], device)
    plist = [params[n] for n in M.PARAM_NAMES]
    opt = _AdamW(plist, runs)
    train = _padded_examples(runs, 0, device)
    val = _padded_examples(runs, 1, device)

    steps = cfg.log.steps(n_steps)
    logged = set(steps)
    buf = torch.full((len(steps), len(S.SIGNAL_NAMES), R), math.nan, device=device)
    col = {name: k for k, name in enumerate(S.SIGNAL_NAMES)}
    live = torch.arange(R, device=device)  # ensemble member k is run live[k]
    stopped_at = np.full(R, -1)
    prev_delta: list[Tensor] | None = None
    row, progress = 0, _Progress(on_progress)

    def update() -> None:  # a step that logs nothing: the gradients at theta_t, then AdamW
        _, _, grad = M.loss_and_grads(params, train, n_heads, precision=precision, compiled=compiled)
        opt.step([grad[n] for n in M.PARAM_NAMES])

    quiet_step = _quiet_steps(update, device, cuda_graphs)

    # Left only by a break (coverage calls the loop's own exit never taken): at the final step,
    # or at a logged step where the hook has stopped every run.
    for t in range(n_steps + 1):
        if t not in logged and t + 1 not in logged:  # neither records this step nor the next
            quiet_step()
            # Not the last: step n_steps is always logged, so the step before it never gets here.
            progress.step(last=False)
            continue
        _, logits, grad = M.loss_and_grads(params, train, n_heads, precision=precision,
                                           compiled=compiled)
        grads = [grad[n] for n in M.PARAM_NAMES]
        if t in logged:  # the last step always is
            cur = torch.full((len(S.SIGNAL_NAMES), len(live)), math.nan, device=device)
            _record(cur, col, params, plist, grads, logits, train, val, cfg.model)
        if t == n_steps:  # the final model: logged and shown to the hook, never updated
            buf[row, :, live] = cur
            if on_log is not None:
                on_log(t, buf[row].T.cpu().numpy())  # nothing left to stop
            break
        before = S.flat(plist)  # theta_t: the update's norm and cosine need it
        opt.step(grads)
        delta = [S.flat(plist) - before]  # one (R, P) tensor: one reduction per signal
        if t in logged:
            cur[col["update_norm"]] = S.global_norm(delta)
            if prev_delta is not None:
                cur[col["update_cos"]] = S.cosine(delta, prev_delta)
        prev_delta = delta if t + 1 in logged else None
        if t in logged:
            buf[row, :, live] = cur
            stop = _stops(on_log, t, buf[row], stopped_at) if on_log is not None else None
            row += 1
            if stop is not None:  # drop stopped runs: the rest train on, the stopped cost nothing
                keep = torch.from_numpy(~stop[live.cpu().numpy()]).to(device)
                if not keep.any():  # the steps left will never run: the bar counts them done
                    progress.skip(n_steps - t)
                    break
                live = live[keep]
                params = {n: p[keep] for n, p in params.items()}
                plist = [params[n] for n in M.PARAM_NAMES]
                opt.select(plist, keep)
                train, val = train.select(keep), val.select(keep)
                prev_delta = [d[keep] for d in prev_delta] if prev_delta is not None else None
                if isinstance(quiet_step, _Replayed):  # recorded on the tensors just replaced
                    quiet_step.forget()
        progress.step(last=t + 1 == n_steps)

    values = buf.permute(2, 0, 1).cpu().numpy().astype(np.float64)
    return EnsembleLog(runs=runs, steps=np.asarray(steps), values=values, stopped_at=stopped_at)


def _quiet_steps(update: Callable[[], None], device: torch.device, cuda_graphs: bool,
                 ) -> Callable[[], None]:
    """How the steps that log nothing run: replayed as a CUDA graph, or op by op."""
    return _Replayed(update, device) if cuda_graphs and device.type == "cuda" else update


_clock = time.monotonic  # the progress reports' clock (a test sets its own)


class _Progress:
    """Passes finished steps to ``on_progress`` in blocks: of 100 steps, or of what a second
    finished where steps are slow (at p = 600 one step of one run takes ~20 s on a CPU core),
    and at the end."""

    def __init__(self, on_progress: Callable[[int], None] | None) -> None:
        self.on_progress = on_progress
        self.pending, self.since = 0, _clock()

    def step(self, *, last: bool) -> None:
        if self.on_progress is None:
            return
        self.pending += 1
        now = _clock()
        if self.pending >= 100 or last or now - self.since >= 1.0:
            self.on_progress(self.pending)
            self.pending, self.since = 0, now

    def skip(self, steps: int) -> None:
        """Pass on the steps pending and ``steps`` that will not run (every run stopped)."""
        if self.on_progress is not None and self.pending + steps:
            self.on_progress(self.pending + steps)
            self.pending = 0


class _Replayed:
    """A CUDA step function recorded once as a CUDA graph, then replayed.

    A training step is about 90 small operators on CUDA (one-hot lookups; 78 on the CPU's
    way), not counting views, each at least one kernel.
    Launched one by one from Python, their launch overhead, not the GPU, bounds an ensemble
    of tens of runs; a replayed graph launches them all at once. The graph holds the
    addresses of the tensors the function used while it was recorded: it stays valid while
    those are updated in place (the parameters and AdamW's state are), and must be recorded
    again (:meth:`forget`) when they are replaced (runs leaving the ensemble). The first
    calls run eagerly on the side stream that records, as recording requires: one-off
    initialisations (cuBLAS's workspace) must not happen while recording. Everything runs
    with ``device`` as the current device: a recording captures the current device's work
    only, and an ensemble on another GPU would record an empty graph while its steps ran
    once, unrecorded.
    """

    WARMUP = 2

    def __init__(self, fn: Callable[[], None], device: torch.device) -> None:
        self.fn, self.device, self.stream = fn, device, torch.cuda.Stream(device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls, self.failed = 0, False

    def forget(self) -> None:
        """Drop the recording: the tensors it was made on were replaced."""
        self.graph, self.calls = None, 0

    def __call__(self) -> None:
        with torch.cuda.device(self.device):
            self.calls += 1
            if self.failed:
                self.fn()
            elif self.calls <= self.WARMUP:
                self.stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(self.stream):
                    self.fn()
                torch.cuda.current_stream().wait_stream(self.stream)
            else:
                if self.graph is None:
                    self.graph = self._recorded()
                if self.graph is None:  # nothing was run: train on, launching kernels one by one
                    self.failed = True
                    self.fn()
                else:
                    self.graph.replay()

    def _recorded(self) -> torch.cuda.CUDAGraph | None:
        # Errors of earlier asynchronous work surface here, not as a failed recording.
        torch.cuda.synchronize(self.device)
        graph, current = torch.cuda.CUDAGraph(), torch.cuda.current_stream()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with torch.cuda.graph(graph, stream=self.stream):
                    self.fn()  # recorded, not run: the caller replays it
            for w in caught:
                if "graph is empty" in str(w.message).lower():  # nothing recorded: no replay
                    raise RuntimeError(str(w.message))
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        except RuntimeError as err:
            warnings.warn(f"recording the training step as a CUDA graph failed ({err}); this "
                          "ensemble trains on without it, slower (cuda_graphs=False skips the "
                          "attempt)", RuntimeWarning, stacklevel=3)
            return None
        finally:  # a failed recording can leave its stream current
            torch.cuda.set_stream(current)
        return graph


@torch.no_grad()
def _record(out: Tensor, col: dict[str, int], params: dict[str, Tensor], plist: list[Tensor],
            grads: list[Tensor], logits: Tensor, train: M.Examples, val: M.Examples,
            model: ModelConfig) -> None:
    """Fill one log row (n_signals, R) for theta_t, except the update columns."""
    fit = S.fit_stats(logits, train.labels, train.mask)
    vfit = S.fit_stats(M.forward(params, val, model.n_heads, precision=model.precision),
                       val.labels, val.mask)
    out[col["train_loss"]], out[col["train_acc"]], out[col["train_margin"]] = (
        fit["loss"], fit["acc"], fit["margin"])
    out[col["val_loss"]], out[col["val_acc"]] = vfit["loss"], vfit["acc"]
    out[col["param_norm"]] = S.global_norm(plist)
    out[col["grad_norm"]] = S.global_norm(grads)
    out[col["erank_we"]] = S.effective_rank(params["W_E"])
    out[col["erank_wu"]] = S.effective_rank(params["W_U"])


def _stops(hook: LogHook, t: int, row: Tensor, stopped_at: np.ndarray) -> np.ndarray | None:
    """Ask the hook which runs to stop at step t; record them; None when none newly stop."""
    stop = hook(t, row.T.cpu().numpy())
    if stop is None:
        return None
    stop = np.array(stop)  # a copy: the hook's own array is its record, not ours to change
    if stop.dtype != bool:  # probabilities or run indices would silently read as flags
        raise TypeError(f"the on_log hook returned an array of dtype {stop.dtype}: expected "
                        "booleans, True for each run to stop")
    if stop.shape != stopped_at.shape:
        raise ValueError(f"the on_log hook returned shape {stop.shape}: expected "
                         f"{stopped_at.shape}, one flag per run of the ensemble")
    stop &= stopped_at < 0
    if not stop.any():
        return None
    stopped_at[stop] = t
    return stopped_at >= 0
