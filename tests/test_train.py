"""The trainer's log: step convention against a plain loop, determinism, divergence, hooks."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch
from reference_model import PlainTransformer

from grokcast import model as M
from grokcast.config import LogConfig, ModelConfig, OptimConfig, RunConfig
from grokcast.data import all_examples, split_indices
from grokcast.signals import SIGNAL_NAMES
from grokcast.train import train_ensemble

P = 23
COL = {n: k for k, n in enumerate(SIGNAL_NAMES)}


def _run(**kw) -> RunConfig:
    base = dict(p=P, train_frac=0.4, weight_decay=1.0, seed=0, n_steps=6,
                log=LogConfig(dense_until=4, every=3))
    return RunConfig(**{**base, **kw})


def test_logged_steps_schedule():
    assert LogConfig(dense_until=300, every=100).steps(10_000)[:3] == [0, 1, 2]
    steps = LogConfig(dense_until=300, every=100).steps(10_000)
    assert len(steps) == 300 + 98 and steps[299:302] == [299, 300, 400] and steps[-1] == 10_000
    assert LogConfig(dense_until=4, every=3).steps(7) == [0, 1, 2, 3, 6, 7]


def test_count_of_logged_steps_equals_the_listed_steps():
    """The config's size check counts logged steps without listing them (10^11 steps)."""
    for dense, every, n in itertools.product([0, 1, 5, 10, 300, 301], [1, 3, 7, 100],
                                             [0, 1, 4, 9, 10, 299, 300, 301, 1000, 10_000]):
        log = LogConfig(dense_until=dense, every=every)
        assert log.count(n) == len(log.steps(n)), (dense, every, n)
    # Exactly the limit is allowed, one more is not.
    RunConfig(n_steps=99_999, log=LogConfig(dense_until=0, every=1))
    with pytest.raises(ValueError, match="at most 100,000 logged steps"):
        RunConfig(n_steps=100_000, log=LogConfig(dense_until=0, every=1))


def test_log_matches_plain_loop_step_by_step():
    """Every signal of row t, recomputed from theta_t of an independent nn.Module + AdamW loop.

    n_steps=7 with dense_until=4, every=3 logs [0, 1, 2, 3, 6, 7]: step 6 is a sparsely logged
    step that is not the final one, so its update columns (theta_7 - theta_6, and the cosine
    with theta_6 - theta_5, step 5 not being logged) are known and checked too.
    """
    run = _run(weight_decay=3.0, n_steps=7)
    log = train_ensemble([run])
    assert log.steps.tolist() == [0, 1, 2, 3, 6, 7]

    params = M.init_params(run.model, P, [run.seed])
    plain = PlainTransformer(P).load_ensemble_run(params, 0)
    opt = torch.optim.AdamW(plain.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=3.0)
    tokens, labels = all_examples(P)
    tr, va = (torch.from_numpy(i) for i in split_indices(P, run.train_frac, run.split_seed))
    flat = lambda: torch.cat([p.detach().reshape(-1) for p in plain.parameters()])  # noqa: E731
    thetas, rows = [flat()], []
    for t in range(run.n_steps + 1):
        opt.zero_grad()
        logits = plain(tokens[tr])[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, labels[tr])
        loss.backward()
        with torch.no_grad():
            val_logits = plain(tokens[va])[:, -1]
            correct = logits.gather(1, labels[tr, None])[:, 0]
            other = logits.scatter(1, labels[tr, None], -math.inf).max(1).values
            sv_e = torch.linalg.svdvals(plain.embed.weight)
            sv_u = torch.linalg.svdvals(plain.unembed.weight)
            erank = lambda s: math.exp(-(s / s.sum() * torch.log(s / s.sum())).sum().item())  # noqa: E731
            rows.append({
                "train_loss": loss.item(),
                "val_loss": torch.nn.functional.cross_entropy(val_logits, labels[va]).item(),
                "train_acc": (logits.argmax(1) == labels[tr]).float().mean().item(),
                "val_acc": (val_logits.argmax(1) == labels[va]).float().mean().item(),
                "param_norm": thetas[-1].norm().item(),
                "grad_norm": torch.cat([p.grad.reshape(-1) for p in plain.parameters()]).norm().item(),
                "erank_we": erank(sv_e), "erank_wu": erank(sv_u),
                "train_margin": (correct - other).mean().item(),
            })
        if t < run.n_steps:
            opt.step()
            thetas.append(flat())
    checked = []
    for s, step in enumerate(log.steps):
        got = log.values[0, s]
        for name, want in rows[step].items():
            assert got[COL[name]] == pytest.approx(want, rel=2e-4, abs=2e-5), (step, name)
        if step < run.n_steps:
            delta = thetas[step + 1] - thetas[step]
            assert got[COL["update_norm"]] == pytest.approx(delta.norm().item(), rel=1e-3), step
            if step > 0:
                prev = thetas[step] - thetas[step - 1]
                cos = torch.nn.functional.cosine_similarity(delta, prev, dim=0).item()
                assert got[COL["update_cos"]] == pytest.approx(cos, abs=1e-3), step
                checked.append(int(step))
    assert 6 in checked  # the sparse, non-final row's update columns were compared
    assert np.isnan(log.values[0, 0, COL["update_cos"]])
    assert np.isnan(log.values[0, -1, COL["update_norm"]])


def test_same_config_gives_identical_log():
    runs = [_run(seed=1), _run(seed=2, weight_decay=0.3, train_frac=0.6)]
    a, b = train_ensemble(runs), train_ensemble(runs)
    np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_log_agrees_with_cpu_log():
    """The GPU-vs-CPU agreement check: 4 mixed runs, 50 steps, every signal of every row.

    The two devices sum in different orders, so rows agree to rounding that training then
    amplifies, not bit for bit; fp32 matmuls on CUDA must not use TF32. Measured on an H100
    (2026-11-26, 100 steps): every row through step 60 agreed to rtol 1e-3; from step 70 one
    run's grad_norm differed by 0.3% and train accuracies by one example. So the check stops
    at 50. Over a whole sweep the runs' outcomes agree, not their logs: benchmarks/gpu_checks.py
    compares a GPU paper sweep's grokking labels with a CPU one's.
    """
    runs = [_run(seed=s, weight_decay=wd, train_frac=f, n_steps=50, log=LogConfig(dense_until=30, every=10))
            for s, wd, f in [(0, 1.0, 0.3), (1, 0.3, 0.6), (2, 10.0, 0.4), (3, 3.0, 0.5)]]
    cpu, cuda = train_ensemble(runs, "cpu"), train_ensemble(runs, "cuda")
    np.testing.assert_array_equal(cpu.steps, cuda.steps)
    np.testing.assert_allclose(cuda.values, cpu.values, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_same_config_gives_identical_log_on_cuda():
    """On CUDA too: the table gradient must not be summed with atomics (model._scatter_rows)."""
    runs = [_run(seed=s, weight_decay=wd, train_frac=f, n_steps=100, log=LogConfig(dense_until=30, every=10))
            for s, wd, f in [(0, 1.0, 0.3), (1, 0.3, 0.6), (2, 10.0, 0.4)]]
    a, b = train_ensemble(runs, "cuda"), train_ensemble(runs, "cuda")
    np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_graphs_change_the_speed_not_the_log():
    """The unlogged steps replayed as a CUDA graph (the default on CUDA) against their kernels
    launched one by one: the same log, through a stop that drops a run (and so records a new
    graph). A graph that read stale parameters, or skipped or repeated a step, would differ
    by far more than the tolerance, which only allows cuBLAS another algorithm on the
    recording stream. A failed recording (a warning, then no graph) fails the test."""
    import warnings

    runs = [_run(seed=s, weight_decay=wd, train_frac=f, n_steps=200, log=LogConfig(dense_until=5, every=40))
            for s, wd, f in [(0, 1.0, 0.3), (1, 0.3, 0.6), (2, 10.0, 0.4)]]
    hook = lambda step, rows: np.array([False, step == 80, False])  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graphed = train_ensemble(runs, "cuda", on_log=hook)
    eager = train_ensemble(runs, "cuda", on_log=hook, cuda_graphs=False)
    assert graphed.stopped_at.tolist() == eager.stopped_at.tolist() == [-1, 80, -1]
    np.testing.assert_allclose(graphed.values, eager.values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("recording", ["works", "warns", "raises", "is_empty"])
def test_replayed_steps_warm_up_record_once_replay_and_fall_back(monkeypatch, recording):
    """``train._Replayed``'s control flow, with torch.cuda's graph API faked (no GPU here; the
    real thing is the CUDA-only test above): every call must run the step exactly once, as an
    eager warm-up, a recording followed by its replay, or a replay; a recording that raises
    or comes out empty (PyTorch only warns) must warn and leave every later call eager, even
    after :meth:`forget`; another warning of a recording that works reaches the caller as it
    is; and the stream current before a recording is current after it."""
    import contextlib
    import warnings

    from grokcast.train import _Replayed

    events: list[str] = []

    class FakeStream:
        def __init__(self, device=None):
            pass

        def wait_stream(self, other):
            pass

    current = FakeStream()

    class FakeGraph:
        def replay(self):
            events.append("replay")

    @contextlib.contextmanager
    def record(graph, stream=None):
        events.append("record")
        yield  # a real recording runs nothing: the replay that follows it does
        if recording == "raises":
            raise RuntimeError("operation not permitted when stream is capturing")
        if recording == "warns":
            warnings.warn("a note of the recording, not about it failing", UserWarning, stacklevel=2)
        if recording == "is_empty":
            warnings.warn("The CUDA Graph is empty. This usually means that the graph was "
                          "attempted to be captured on wrong device or stream.", stacklevel=2)

    fake = {"Stream": FakeStream, "CUDAGraph": FakeGraph, "graph": record,
            "device": lambda d: contextlib.nullcontext(),
            "stream": lambda s: contextlib.nullcontext(), "current_stream": lambda: current,
            "synchronize": lambda device=None: None,
            "set_stream": lambda stream: events.append("restored" if stream is current else "other")}
    for name, value in fake.items():
        monkeypatch.setattr(torch.cuda, name, value)
    step = _Replayed(lambda: events.append("step"), torch.device("cuda"))

    def call() -> list[str]:
        events.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step()
        return events + [f"warned: {w.message}" for w in caught]

    warm = [call(), call()]
    assert warm == [["step"], ["step"]]
    third = call()
    if recording in ("works", "warns"):
        note = ["warned: a note of the recording, not about it failing"] if recording == "warns" else []
        assert third == ["record", "step", "restored", "replay", *note]
        assert call() == ["replay"]
        step.forget()  # the runs changed: warm up and record again
        assert [call(), call(), call(), call()] == [["step"], ["step"], third, ["replay"]]
    else:
        assert third[:4] == ["record", "step", "restored", "step"] and len(third) == 5
        assert third[4].startswith("warned: recording the training step as a CUDA graph failed")
        assert call() == ["step"]
        step.forget()
        assert [call(), call(), call()] == [["step"]] * 3  # no second attempt, no second warning


def test_a_stop_makes_the_replayed_steps_record_again(monkeypatch):
    """When runs leave, the tensors a CUDA graph was recorded on are replaced: the loop must
    tell its replayed steps to forget the recording. Checked on the CPU with a stand-in that
    runs the steps eagerly and counts the calls to forget."""
    import grokcast.train as T

    class Spy(T._Replayed):
        def __init__(self, fn, device):  # no CUDA stream on the CPU
            self.fn, self.forgotten = fn, 0

        def __call__(self):
            self.fn()

        def forget(self):
            self.forgotten += 1

    spies = []

    def quiet_steps(fn, device, graphs):
        spies.append(Spy(fn, device))
        return spies[-1]

    monkeypatch.setattr(T, "_quiet_steps", quiet_steps)
    runs = [_run(seed=s, n_steps=60, log=LogConfig(dense_until=3, every=20)) for s in (0, 1, 2)]
    hook = lambda step, rows: np.array([False, step == 20, step == 40])  # noqa: E731
    log = train_ensemble(runs, on_log=hook)
    assert spies[0].forgotten == 2 and log.stopped_at.tolist() == [-1, 20, 40]
    monkeypatch.undo()
    np.testing.assert_array_equal(log.values, train_ensemble(runs, on_log=hook).values)


@pytest.mark.parametrize("tick, expected", [(0.0, [100, 100, 50]), (0.4, [3] * 83 + [1])])
def test_progress_comes_in_blocks_and_sums_to_the_steps(monkeypatch, tick, expected):
    """Blocks of 100 steps, or of the steps a second finishes (a clock that ticks `tick`
    seconds a step), and the rest at the end."""
    from grokcast import train as T

    now = iter(np.arange(0, 1000, tick) if tick else [0.0] * 1000)
    monkeypatch.setattr(T, "_clock", lambda: float(next(now)))
    seen = []
    train_ensemble([_run(seed=0, n_steps=250, log=LogConfig(dense_until=5, every=100))],
                   on_progress=seen.append)
    assert seen == expected and sum(seen) == 250


def test_progress_sums_to_the_steps_when_every_run_stops():
    """A chunk whose runs all stop ends its loop early; the steps it will never train are
    reported as done, or the sweep's bar stopped at a quarter (found in review)."""
    seen = []
    hook = lambda step, rows: np.full(len(rows), step == 20)  # noqa: E731
    log = train_ensemble([_run(seed=s, n_steps=250, log=LogConfig(dense_until=5, every=10))
                          for s in (0, 1)], on_log=hook, on_progress=seen.append)
    assert log.stopped_at.tolist() == [20, 20] and sum(seen) == 250


def test_ensemble_of_one_equals_member_of_larger_ensemble():
    runs = [_run(seed=1), _run(seed=2, weight_decay=0.3, train_frac=0.6), _run(seed=3)]
    together = train_ensemble(runs)
    alone = train_ensemble([runs[1]])
    np.testing.assert_allclose(alone.values[0], together.values[1], rtol=1e-4, atol=1e-5)


def test_on_cpu_a_run_of_one_split_logs_the_same_bits_in_any_chunk():
    """The CPU chunk cap (sweep.DEFAULT_CPU_CHUNK) is chosen for speed alone: without padding,
    a run's batched products are its own, so its log must not depend on its chunk-mates."""
    runs = [_run(seed=s, weight_decay=wd, n_steps=40, log=LogConfig(dense_until=10, every=10))
            for s, wd in [(0, 0.3), (1, 1.0), (2, 10.0), (3, 3.0), (4, 1.0)]]
    together = train_ensemble(runs)
    for k in (0, 3):
        np.testing.assert_array_equal(train_ensemble([runs[k]]).values[0], together.values[k])
    np.testing.assert_array_equal(train_ensemble(runs[1:3]).values, together.values[1:3])


@pytest.mark.parametrize("p, model", [
    (23, ModelConfig(d_model=64, n_heads=1, d_mlp=256)),
    (13, ModelConfig(d_model=128, n_heads=1, d_mlp=512)),
])
def test_on_cpu_a_run_of_one_head_logs_the_same_bits_in_any_chunk(p, model):
    """The promise of the test above with one head, whose score products are (M, d) @ (d, 1):
    MKL's matrix-vector kernel rounded a run's scores alone otherwise than in a batch of three
    (found in review: their logs differed from step 0, val losses 0.08 apart by step 300)."""
    runs = [_run(p=p, train_frac=0.5, seed=s, n_steps=3, model=model) for s in range(3)]
    together = train_ensemble(runs).values
    for i, run in enumerate(runs):
        np.testing.assert_array_equal(train_ensemble([run]).values[0], together[i])


@pytest.mark.parametrize("model, n_steps", [
    # N V = 15 x 6 logits per run, not a multiple of 4 floats: MKL rounded the (N, V) products'
    # results by where each run's block starts (16-byte alignment); a run differed from step 1.
    (ModelConfig(d_model=64, n_heads=4, d_mlp=256), 3),
    # d_model = 62: the one-row products (q, dq W_Q^T) read and write 62-float blocks, and
    # AdamW's fused kernel rounds a tensor's tail otherwise (W_pos: 3 x 62 floats per run).
    (ModelConfig(d_model=62, n_heads=2, d_mlp=64), 20),
])
def test_on_cpu_a_run_logs_the_same_bits_in_any_chunk_where_its_blocks_are_unaligned(model, n_steps):
    """The promise of the tests above where a run's per-run blocks are not 16-byte multiples
    (found in review: a run alone and in a chunk of three differed from step 0 to 10)."""
    runs = [_run(p=5, train_frac=0.6, seed=s, n_steps=n_steps, model=model,
                 log=LogConfig(dense_until=n_steps + 1, every=1)) for s in range(3)]
    together = train_ensemble(runs).values
    for i, run in enumerate(runs):
        np.testing.assert_array_equal(train_ensemble([run]).values[0], together[i])


def test_at_the_paper_shapes_no_run_block_is_realigned(monkeypatch):
    """Every per-run block of the paper's shapes is 16-byte sized: the products and the AdamW
    step run as they always did, untouched by the realignment of other shapes."""
    def refuse(*args, **kwargs):
        raise AssertionError("a run's blocks were realigned at the paper's shapes")

    monkeypatch.setattr(M, "_aligned_products", refuse)
    monkeypatch.setattr("grokcast.train._padded_copy", refuse)
    for f in (0.3, 0.4, 0.5, 0.6):  # the paper's splits: 159 to 317 train examples
        train_ensemble([_run(p=23, train_frac=f, seed=s, n_steps=2) for s in (0, 1)])


def test_diverging_run_does_not_disturb_the_others():
    # 1 - lr * wd = -999: that run's weights blow up to inf/NaN within a few steps.
    runs = [_run(seed=0, n_steps=40), _run(seed=0, weight_decay=1e6, n_steps=40)]
    both = train_ensemble(runs)
    alone = train_ensemble(runs[:1])
    assert not np.isfinite(both.values[1, -1, COL["train_loss"]])
    np.testing.assert_allclose(both.values[0], alone.values[0], rtol=1e-4, atol=1e-5)


def test_hook_stops_runs_and_the_others_train_on_unchanged():
    runs = [_run(seed=0, n_steps=10), _run(seed=1, n_steps=10)]
    stop_second = lambda step, rows: np.array([False, step == 2])  # noqa: E731
    log = train_ensemble(runs, on_log=stop_second)
    assert log.stopped_at.tolist() == [-1, 2]
    later = log.steps > 2
    assert np.isnan(log.values[1, later]).all() and np.isfinite(log.values[0, later, 0]).all()
    reference = train_ensemble(runs[:1])
    np.testing.assert_allclose(log.values[0], reference.values[0], rtol=1e-4, atol=1e-5)


def test_a_run_stays_stopped_at_its_first_stop_when_the_hook_keeps_saying_stop():
    runs = [_run(seed=0, n_steps=10), _run(seed=1, n_steps=10)]
    log = train_ensemble(runs, on_log=lambda step, rows: np.array([False, step >= 2]))
    assert log.stopped_at.tolist() == [-1, 2]


def test_the_hooks_own_array_is_left_as_it_returned_it():
    """Was: the trainer cleared, in the hook's array, the flags of runs already stopped, so a
    hook that kept its stop record in the array it returned lost run 0's stop at step 6."""
    runs = [_run(seed=0, n_steps=10), _run(seed=1, n_steps=10)]
    record = np.zeros(2, dtype=bool)

    def hook(step, rows):
        record[0] |= step == 3
        record[1] |= step == 6  # logged steps: 0-3, 6, 9, 10
        return record

    log = train_ensemble(runs, on_log=hook)
    assert log.stopped_at.tolist() == [3, 6]
    assert record.tolist() == [True, True]


@pytest.mark.parametrize("field, value", [("optim", OptimConfig(lr=3e-3)), ("n_steps", 7),
                                          ("model", ModelConfig(init="nanda")),
                                          ("log", LogConfig(dense_until=2, every=3))])
def test_an_ensemble_refuses_runs_that_differ_in_what_it_shares(field, value):
    with pytest.raises(ValueError, match=f"differ in {field!r}: an ensemble shares it"):
        train_ensemble([_run(seed=0), _run(seed=1, **{field: value})])


@pytest.mark.parametrize("returned", [np.array([0.2, 0.9]), [1, 0]])
def test_a_hook_returning_anything_but_flags_is_refused(returned):
    """Probabilities stopped every run; run indices were read as flags."""
    runs = [_run(seed=0, n_steps=5), _run(seed=1, n_steps=5)]
    with pytest.raises(TypeError, match="the on_log hook returned an array of dtype .*: expected "
                                        "booleans"):
        train_ensemble(runs, on_log=lambda step, rows: returned)


@pytest.mark.parametrize("device, needle", [
    ("cuda:x", "device='cuda:x' is not allowed: expected auto, cpu or cuda[:N]"),
    ("cuda:-1", "device='cuda:-1' is not allowed"),
    ("cuda:7", "cuda:7"),  # no GPU here: not available; on a 1-GPU machine: out of range
])
def test_malformed_or_absent_cuda_devices_are_named(device, needle):
    from grokcast.train import resolve_device

    with pytest.raises(ValueError, match=re.escape(needle)):
        resolve_device(device)


def test_hook_sees_the_final_step_but_cannot_stop_a_finished_run():
    seen = []

    def stop_at_end(step, rows):
        seen.append(step)
        return np.array([step == 10])

    log = train_ensemble([_run(seed=0, n_steps=10)], on_log=stop_at_end)
    assert seen == log.steps.tolist() and seen[-1] == 10
    assert log.stopped_at.tolist() == [-1]


def test_stopping_drops_runs_in_any_order_and_the_rest_match():
    runs = [_run(seed=s, n_steps=12, weight_decay=wd) for s, wd in ((0, 1.0), (1, 3.0), (2, 0.3))]

    def hook(step, rows):
        assert rows.shape == (3, len(SIGNAL_NAMES))
        return np.array([step == 3, False, step == 1])  # middle run survives

    log = train_ensemble(runs, on_log=hook)
    assert log.stopped_at.tolist() == [3, -1, 1]
    alone = train_ensemble([runs[1]])
    np.testing.assert_allclose(log.values[1], alone.values[0], rtol=1e-4, atol=1e-5)
    for r, stop in ((0, 3), (2, 1)):
        assert np.isfinite(log.values[r, log.steps == stop, 0]).all()
        assert np.isnan(log.values[r, log.steps > stop]).all()
    with pytest.raises(ValueError, match="one flag per run"):
        train_ensemble(runs, on_log=lambda step, rows: np.array([True]))


def test_bf16_precision_trains_reproducibly_and_close_to_fp32():
    """The opt-in bf16 products: same config, same log; and the log stays near fp32's early on."""
    from grokcast.config import ModelConfig

    runs = [_run(seed=s, weight_decay=wd, train_frac=f, n_steps=30, model=ModelConfig(precision=pr))
            for pr in ("fp32", "bf16") for s, wd, f in [(0, 1.0, 0.3), (1, 0.3, 0.6)]]
    fp32, bf16 = train_ensemble(runs[:2]), train_ensemble(runs[2:])
    np.testing.assert_array_equal(bf16.values, train_ensemble(runs[2:]).values)
    loss = COL["train_loss"]
    assert not np.array_equal(bf16.values[:, :, loss], fp32.values[:, :, loss])
    np.testing.assert_allclose(bf16.values[:, :, loss], fp32.values[:, :, loss], rtol=2e-2)


# Calls that wait for the device on CUDA: a value read back to the host, or an output whose
# size depends on the data. On the CPU they cost nothing, so this is where they are caught.
_HOST_SYNCS = {"item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__",
               "__array__", "nonzero", "argwhere", "unique", "unique_consecutive",
               "masked_select", "equal", "allclose", "bincount", "repeat_interleave"}


@pytest.mark.parametrize("lookup", M.LOOKUPS)
def test_steps_that_log_nothing_never_wait_for_the_device(monkeypatch, lookup):
    """Issue 6: no host round trip per step except at logged steps. Every torch call of the
    training loop is recorded (TorchFunctionMode) with the step it belongs to; the unlogged
    steps may make none that reads a value back or sizes an output by the data. Each way of
    reading the tables (``model.LOOKUPS``; CUDA's is ``onehot``) is checked on the CPU."""
    import functools

    from torch.overrides import TorchFunctionMode, resolve_name

    from grokcast import train as T

    calls: list[tuple[int, str, tuple]] = []
    step = [-1]

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            calls.append((step[0], resolve_name(func) or repr(func), (*args, *kwargs.values())))
            return func(*args, **kwargs)

    loss_and_grads = M.loss_and_grads

    def counted(*args, **kwargs):
        step[0] += 1  # the training loop calls it once per step, first
        return loss_and_grads(*args, **kwargs)

    monkeypatch.setattr(M, "loss_and_grads", counted)
    monkeypatch.setattr(T, "_padded_examples", functools.partial(T._padded_examples, lookup=lookup))
    runs = [_run(p=11, seed=s, train_frac=f, n_steps=14, log=LogConfig(dense_until=2, every=10))
            for s, f in [(0, 0.3), (1, 0.6)]]
    with Record():
        train_ensemble(runs)
    # Logged: 0, 1, 10, 14; a step before a logged one snapshots the parameters (9, 13).
    quiet = {2, 3, 4, 5, 6, 7, 8, 11, 12}
    seen = [c for c in calls if c[0] in quiet]
    assert {s for s, _, _ in seen} == quiet and len(seen) > 40 * len(quiet)
    for s, name, args in seen:
        short = name.rsplit(".", 1)[-1]
        assert short not in _HOST_SYNCS, (s, name)
        if short in ("__getitem__", "__setitem__"):  # a boolean mask sizes its output by data
            index = args[1] if len(args) > 1 else None
            assert not (isinstance(index, torch.Tensor) and index.dtype == torch.bool), (s, name)
        if short == "to":  # a device transfer
            assert not any(isinstance(a, (str, torch.device)) for a in args[1:]), (s, name, args[1:])
    # The probe sees what it must: the log is read back to the host once, after the last step.
    assert [c[1] for c in calls if c[0] == 14 and c[1].endswith(".cpu")] == ["torch.Tensor.cpu"]
