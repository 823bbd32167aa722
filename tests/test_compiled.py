"""Training with the torch.compile build of the step (``compiled=True``, ``--compile``).

The compiled step is the same computation as the eager one, whose gradients
``test_model.py`` checks against autograd on a plain nn.Module: here the compiled one is
checked against it, and the option against reaching the trainer. The compiled tests use two
ensemble shapes (2 runs and 1 run of one split at p = 23) at one torch thread (conftest.py),
so the suite compiles them once; one test compiles a third time, at 2 threads.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from grokcast import model as M
from grokcast.cli import main
from grokcast.config import SweepConfig
from grokcast.signals import SIGNAL_NAMES
from grokcast.store import SweepStore
from grokcast.sweep import plan_chunks, run_sweep
from grokcast.train import _padded_examples, check_compilable, train_ensemble

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def _compilable() -> bool:
    try:
        check_compilable(torch.device("cpu"))
    except ValueError:
        return False
    return True


needs_compiler = pytest.mark.skipif(not _compilable(), reason="torch.compile on the CPU needs a "
                                    "C++ compiler and Python's C headers (check_compilable)")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
SETTINGS = {"name": "compiled", "p": 23, "train_fracs": [0.3], "weight_decays": [0.1, 1.0],
            "seeds": [0], "n_steps": 30, "log": {"dense_until": 40, "every": 10}}
LOSS = SIGNAL_NAMES.index("train_loss")


def _runs(**overrides):
    return SweepConfig.from_dict({**SETTINGS, **overrides}).runs()


@pytest.fixture
def compiled_calls(monkeypatch):
    """Counts the training steps computed by the compiled step (a spy on ``model._compiled``)."""
    calls = []
    compiled = M._compiled()

    def counted(*args):
        calls.append(args[1].tokens.shape)
        return compiled(*args)

    monkeypatch.setattr(M, "_compiled", lambda: counted)
    return calls


@needs_compiler
def test_compiled_gradients_equal_the_eager_ones_within_rounding():
    runs = _runs()
    params = M.init_params(runs[0].model, 23, [r.seed for r in runs])
    # Trained a little, so no gradient is at its initial, symmetric value.
    params = {k: v + 0.05 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1))
              for k, v in params.items()}
    ex = _padded_examples(runs, 0, torch.device("cpu"))
    want_loss, want_logits, want = M.loss_and_grads(params, ex, 4)
    loss, logits, got = M.loss_and_grads(params, ex, 4, compiled=True)
    torch.testing.assert_close(loss, want_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-6)
    for name in M.PARAM_NAMES:
        scale = want[name].abs().max()
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-5 * float(scale),
                                   msg=lambda m, n=name: f"{n}: {m}")


@needs_compiler
def test_compiled_training_logs_what_eager_training_does_and_repeats_its_own_bits(compiled_calls):
    """30 steps: every step's gradients from the compiled step, the signals within rounding
    of the eager log (later, training's chaos amplifies rounding as it does between a CPU and
    a GPU); the same config twice, the same bits."""
    runs = _runs()
    eager = train_ensemble(runs, "cpu")
    assert compiled_calls == []
    first = train_ensemble(runs, "cpu", compiled=True)
    assert len(compiled_calls) == 31  # the gradients at steps 0..30
    again = train_ensemble(runs, "cpu", compiled=True)
    np.testing.assert_array_equal(first.values, again.values)
    np.testing.assert_allclose(first.values, eager.values, rtol=1e-5, atol=1e-7)


@needs_compiler
def test_a_compiled_ensemble_stops_runs_as_an_eager_one_does(compiled_calls):
    """A stop drops a run: the ensemble's new shape is compiled too, and the runs' logs are
    the eager ones' within rounding."""
    runs = _runs()
    hook = lambda step, rows: np.array([False, step == 10])  # noqa: E731
    eager = train_ensemble(runs, "cpu", on_log=hook)
    got = train_ensemble(runs, "cpu", on_log=hook, compiled=True)
    assert got.stopped_at.tolist() == eager.stopped_at.tolist() == [-1, 10]
    np.testing.assert_allclose(got.values, eager.values, rtol=1e-5, atol=1e-7)
    assert sorted({shape[0] for shape in compiled_calls}) == [1, 2]  # both ensembles compiled


@needs_compiler
def test_every_ensemble_shape_and_thread_count_is_compiled_past_torchs_recompile_limit():
    """torch runs a function eagerly once it has compiled it ``recompile_limit`` times (8 by
    default; 1 here), and with ``fullgraph=True`` raises instead: a worker that had trained 8
    chunk shapes would have trained the ninth eagerly, its runs' logs then depending on the
    worker's history. A new thread count compiles anew too (inductor builds it into its
    kernels), which a limit raised only for new shapes missed."""
    threads = torch.get_num_threads()
    try:
        for runs, n_threads in ((_runs(), 1), (_runs(weight_decays=[1.0]), 1), (_runs(), 2)):
            torch.set_num_threads(n_threads)
            params = M.init_params(runs[0].model, 23, [r.seed for r in runs])
            ex = _padded_examples(runs, 0, torch.device("cpu"))
            want = M.loss_and_grads(params, ex, 4)[2]
            with torch._dynamo.config.patch(recompile_limit=1):
                got = M.loss_and_grads(params, ex, 4, compiled=True)[2]
            for name in M.PARAM_NAMES:
                torch.testing.assert_close(got[name], want[name], rtol=1e-5,
                                           atol=1e-5 * float(want[name].abs().max()))
    finally:
        torch.set_num_threads(threads)


@needs_compiler
def test_sweep_compile_option_reaches_the_trainer_in_process_and_in_workers(tmp_path, compiled_calls):
    """Through the CLI in this process (the compiled step computes every step; the stored log
    is its bits), and through ``run_sweep`` in two worker processes (the stored logs are the
    compiled trainer's bits, not the eager one's)."""
    config = tmp_path / "c.toml"
    config.write_text('name = "compiled"\np = 23\ntrain_fracs = [0.3]\nweight_decays = [0.1, 1.0]\n'
                      "seeds = [0]\nn_steps = 30\n[log]\ndense_until = 40\nevery = 10\n")
    main(["sweep", "--config", str(config), "--out", str(tmp_path / "cli"), "--device", "cpu",
          "--workers", "1", "--compile", "--quiet"])
    assert len(compiled_calls) == 31
    runs = _runs()
    want = train_ensemble(runs, "cpu", compiled=True)
    stored = SweepStore(tmp_path / "cli").log()
    for k, run in enumerate(runs):
        got = stored[stored["run_id"] == run.run_id].sort_values("step")
        np.testing.assert_array_equal(got["train_loss"].to_numpy(), want.values[k, :, LOSS])

    four = SweepConfig.from_dict({**SETTINGS, "seeds": [0, 1]})
    run_sweep(four, tmp_path / "workers", device="cpu", workers=2, progress=False, compiled=True)
    stored = SweepStore(tmp_path / "workers").log()
    eager_differs = False
    for chunk in plan_chunks(four.runs(), 2):
        want = train_ensemble(chunk, "cpu", compiled=True)
        eager = train_ensemble(chunk, "cpu")
        for k, run in enumerate(chunk):
            got = stored[stored["run_id"] == run.run_id].sort_values("step")["train_loss"].to_numpy()
            np.testing.assert_array_equal(got, want.values[k, :, LOSS])
            eager_differs |= not np.array_equal(got, eager.values[k, :, LOSS])
    # The workers' own compiled steps: 4 runs x 31 logged losses, each within rounding of the
    # eager ones (checked above), all equal to them would mean the workers trained eagerly.
    assert eager_differs


# inductor's text on an H200 with torch 2.11 (benchmarks/README.md, "GPU", 2026-11-27)
TF32_ADVICE = ("TensorFloat32 tensor cores for float32 matrix multiplication available but not enabled. "
               "Consider setting `torch.set_float32_matmul_precision('high')` for better performance.")
SOFTMAX_NOTE = ("\nOnline softmax is disabled on the fly since Inductor decides to\nsplit the reduction. "
                "Cut an issue to PyTorch if this is an\nimportant use case and you want to speed it up "
                "with online\nsoftmax.\n")


def test_compiling_hides_inductors_advice_and_nothing_else():
    """Compiling on CUDA, inductor advises TF32 products, which grokcast declines on purpose;
    a user should see that advice neither at the first step nor later, but every other warning."""
    runs = _runs()
    params = M.init_params(runs[0].model, 23, [r.seed for r in runs])
    ex = _padded_examples(runs, 0, torch.device("cpu"))

    def compiling(*args):  # stands in for torch.compile's function on its first call
        for text in (TF32_ADVICE, SOFTMAX_NOTE, "an unrelated warning"):
            warnings.warn(text, UserWarning, stacklevel=1)
        return M._loss_and_grads(*args)

    step = M._Compiled()
    step.fns["cpu"] = compiling
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        step(params, ex, 4, "fp32")
    assert [str(w.message) for w in seen] == ["an unrelated warning"]
    with warnings.catch_warnings(record=True) as seen:  # the filter does not outlive the call
        warnings.simplefilter("always")
        warnings.warn(TF32_ADVICE, UserWarning, stacklevel=1)
    assert len(seen) == 1


@needs_cuda
def test_compiled_steps_replay_as_a_cuda_graph_through_a_stop():
    """On CUDA the compiled step is recorded in the CUDA graph of the unlogged steps, and
    recorded again after a stop: the same log as the compiled kernels launched one by one, and
    the same log again (inductor's timing-based kernel choices are off: ``deterministic``)."""
    import warnings

    runs = _runs(n_steps=120, log={"dense_until": 5, "every": 40})
    hook = lambda step, rows: np.array([False, step == 40])  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed recording warns
        graphed = train_ensemble(runs, "cuda", on_log=hook, compiled=True)
        again = train_ensemble(runs, "cuda", on_log=hook, compiled=True)
    eager = train_ensemble(runs, "cuda", on_log=hook, compiled=True, cuda_graphs=False)
    assert graphed.stopped_at.tolist() == eager.stopped_at.tolist() == [-1, 40]
    np.testing.assert_array_equal(graphed.values, again.values)
    np.testing.assert_allclose(graphed.values, eager.values, rtol=1e-5, atol=1e-6)


def test_compiled_must_be_a_bool():
    with pytest.raises(ValueError, match=r"compiled='yes' is not allowed: expected True or False"):
        train_ensemble(_runs(), "cpu", compiled="yes")
    with pytest.raises(ValueError, match=r"compiled=1 is not allowed"):
        run_sweep(SweepConfig.from_dict(SETTINGS), "unused", device="cpu", compiled=1)
    with pytest.raises(ValueError, match=r"compiled='no' is not allowed"):  # per step: cheap
        runs = _runs()
        M.loss_and_grads(M.init_params(runs[0].model, 23, [0]),
                         _padded_examples(runs[:1], 0, torch.device("cpu")), 4, compiled="no")
    with pytest.raises(ValueError, match=r"cuda_graphs='no' is not allowed"):
        run_sweep(SweepConfig.from_dict(SETTINGS), "unused", device="cpu", cuda_graphs="no")


def test_compiled_without_a_cpp_compiler_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match=r"C\+\+ compiler, and '.*no-such-g\+\+' \(CXX"):
        run_sweep(SweepConfig.from_dict(SETTINGS), out, device="cpu", compiled=True)
    assert not out.exists()
    with pytest.raises(ValueError, match="train without compiling"):
        train_ensemble(_runs(), "cpu", compiled=True)


@needs_compiler
def test_compiled_without_pythons_c_headers_is_refused(tmp_path, monkeypatch):
    """Inductor's and Triton's kernel wrappers include Python.h: without it the first step
    failed inside torch with a C compiler's error."""
    import sysconfig

    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"include": str(tmp_path)})
    with pytest.raises(ValueError, match=r"Python's C headers, and '.*Python\.h' is missing"):
        run_sweep(SweepConfig.from_dict(SETTINGS), tmp_path / "sweep", device="cpu", compiled=True)
    assert not (tmp_path / "sweep").exists()
