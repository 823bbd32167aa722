"""Training with the torch.compile build of the step (``compiled=True``, ``--compile``).

The compiled step is the same computation as the eager one, whose gradients
``test_model.py`` checks against autograd on a plain nn.Module: here the compiled one is
checked against it, and the option against reaching the trainer. Every compiled test uses
the same ensemble shape (2 runs of one split at p = 23), so the suite compiles it once.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from grokcast import model as M
from grokcast.cli import main
from grokcast.config import SweepConfig
from grokcast.signals import SIGNAL_NAMES
from grokcast.store import SweepStore
from grokcast.sweep import plan_chunks, run_sweep
from grokcast.train import _padded_examples, train_ensemble

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
needs_cxx = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                               reason="torch.compile on the CPU needs a C++ compiler")
SETTINGS = {"name": "compiled", "p": 23, "train_fracs": [0.3], "weight_decays": [0.1, 1.0],
            "seeds": [0], "n_steps": 30, "log": {"dense_until": 40, "every": 10}}
LOSS = SIGNAL_NAMES.index("train_loss")


def _runs(**overrides):
    return SweepConfig.from_dict({**SETTINGS, **overrides}).runs()


@needs_cxx
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


@needs_cxx
def test_every_ensemble_shape_is_compiled_past_torchs_recompile_limit():
    """torch runs a function eagerly once it has compiled it for ``recompile_limit`` shapes
    (8 by default; 1 here): a worker that had trained 8 chunk shapes would have trained the
    ninth eagerly, its runs' logs then depending on the worker's history."""
    for runs in (_runs(), _runs(weight_decays=[1.0])):  # 2 runs, then 1: two shapes
        params = M.init_params(runs[0].model, 23, [r.seed for r in runs])
        ex = _padded_examples(runs, 0, torch.device("cpu"))
        eager = M.loss_and_grads(params, ex, 4)[2]
        with torch._dynamo.config.patch(recompile_limit=1):
            got = M.loss_and_grads(params, ex, 4, compiled=True)[2]
        assert not all(torch.equal(got[n], eager[n]) for n in M.PARAM_NAMES)  # compiled bits


@needs_cxx
def test_compiled_training_logs_what_eager_training_does_and_repeats_its_own_bits():
    """30 steps: the signals within rounding of the eager log (later, training's chaos
    amplifies rounding as it does between a CPU and a GPU); the same config twice, the
    same bits."""
    runs = _runs()
    eager = train_ensemble(runs, "cpu")
    first = train_ensemble(runs, "cpu", compiled=True)
    again = train_ensemble(runs, "cpu", compiled=True)
    np.testing.assert_array_equal(first.values, again.values)
    np.testing.assert_allclose(first.values, eager.values, rtol=1e-5, atol=1e-7)
    assert not np.array_equal(first.values, eager.values, equal_nan=True)  # it did compile


@needs_cxx
def test_sweep_compile_option_reaches_the_trainer_in_process_and_in_workers(tmp_path):
    """The stored logs are the compiled trainer's bits, not the eager one's: through the CLI
    in this process, and through ``run_sweep`` in two worker processes."""
    config = tmp_path / "c.toml"
    config.write_text('name = "compiled"\np = 23\ntrain_fracs = [0.3]\nweight_decays = [0.1, 1.0]\n'
                      "seeds = [0]\nn_steps = 30\n[log]\ndense_until = 40\nevery = 10\n")
    main(["sweep", "--config", str(config), "--out", str(tmp_path / "cli"), "--device", "cpu",
          "--workers", "1", "--compile", "--quiet"])
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
    assert eager_differs


def test_compiled_must_be_a_bool():
    with pytest.raises(ValueError, match=r"compiled='yes' is not allowed: expected True or False"):
        train_ensemble(_runs(), "cpu", compiled="yes")
    with pytest.raises(ValueError, match=r"compiled=1 is not allowed"):
        run_sweep(SweepConfig.from_dict(SETTINGS), "unused", device="cpu", compiled=1)


def test_compiled_without_a_cpp_compiler_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match=r"C\+\+ compiler, and '.*no-such-g\+\+' \(CXX"):
        run_sweep(SweepConfig.from_dict(SETTINGS), out, device="cpu", compiled=True)
    assert not out.exists()
    with pytest.raises(ValueError, match="train without compiling"):
        train_ensemble(_runs(), "cpu", compiled=True)


def test_compiled_without_pythons_c_headers_is_refused(tmp_path, monkeypatch):
    """Inductor's and Triton's kernel wrappers include Python.h: without it the first step
    failed inside torch with a C compiler's error."""
    import sysconfig

    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"include": str(tmp_path)})
    with pytest.raises(ValueError, match=r"Python's C headers, and '.*Python\.h' is missing"):
        run_sweep(SweepConfig.from_dict(SETTINGS), tmp_path / "sweep", device="cpu", compiled=True)
    assert not (tmp_path / "sweep").exists()
