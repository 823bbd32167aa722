"""The batched ensemble against a plain per-run PyTorch model (tests/reference_model.py)."""

from __future__ import annotations

import math

import pytest
import torch
from reference_model import PlainTransformer

from grokcast import model as M
from grokcast.config import ModelConfig, OptimConfig, RunConfig
from grokcast.data import all_examples, split_indices
from grokcast.train import _AdamW, _padded_examples

P = 23
# The oracle tests run on every device this machine has: the CPU always, CUDA where present.
_NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
DEVICES = ["cpu", pytest.param("cuda", marks=_NEEDS_CUDA)]
# And every way of reading the tables' rows (model.LOOKUPS) on each.
WAYS = [pytest.param(device, lookup, marks=[_NEEDS_CUDA] if device == "cuda" else [], id=f"{device}-{lookup}")
        for device in ("cpu", "cuda") for lookup in M.LOOKUPS]


def test_param_count_is_derived_from_shapes():
    shapes = M.param_shapes(ModelConfig(), P)
    count = sum(math.prod(s) for s in shapes.values())
    # W_E 24x64, pos 3x64, Q/K/V/O 4x64x64, MLP 64x256 + 256x64, W_U 64x24
    assert count == 24 * 64 + 3 * 64 + 4 * 64 * 64 + 2 * 64 * 256 + 64 * 24 == 52_416
    assert M.n_params(ModelConfig(), P) == 52_416
    plain = PlainTransformer(P)
    assert sum(p.numel() for p in plain.parameters()) == 52_416


@pytest.mark.parametrize("init", ["torch", "nanda"])
def test_init_is_per_run_and_independent_of_ensemble(init):
    cfg = ModelConfig(init=init)
    alone = M.init_params(cfg, P, [5])
    together = M.init_params(cfg, P, [3, 5, 7])
    for name in M.PARAM_NAMES:
        assert torch.equal(alone[name][0], together[name][1])
    assert not torch.equal(together["W_in"][0], together["W_in"][1])


def test_init_scales():
    torch_init = M.init_params(ModelConfig(init="torch"), P, list(range(8)))
    # What a plain PyTorch model draws (README, "Initialisation"): nn.Embedding and the
    # randn positional table N(0, 1); a bias-free nn.Linear U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    # fan_in the input width: d_model = 64, or d_mlp = 256 for W_out. Each matrix is checked:
    # a W_pos drawn uniform, like a Linear, passed a check of W_E alone (mutation testing).
    for name in ("W_E", "W_pos"):
        assert torch_init[name].std().item() == pytest.approx(1.0, rel=0.05), name
        assert torch_init[name].abs().max().item() > 2.5, name  # a normal's tails, not a bound
    for name, fan_in in (("W_Q", 64), ("W_K", 64), ("W_V", 64), ("W_O", 64), ("W_in", 64),
                         ("W_out", 256), ("W_U", 64)):
        bound = 1 / math.sqrt(fan_in)
        assert torch_init[name].abs().max().item() <= bound, name
        assert torch_init[name].std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05), name
    nanda = M.init_params(ModelConfig(init="nanda"), P, list(range(8)))
    # Nanda et al.'s code: randn / sqrt(d_model) for every matrix (W_out too, whose fan-in is
    # d_mlp = 256: a fan-in rule gave it 1/16, found in review), the unembedding randn /
    # sqrt(d_vocab), d_vocab = p + 1 = 24 (a fan-in rule gave it 1/8).
    for name, scale in (("W_E", 64), ("W_pos", 64), ("W_Q", 64), ("W_K", 64), ("W_V", 64),
                        ("W_O", 64), ("W_in", 64), ("W_out", 64), ("W_U", P + 1)):
        assert nanda[name].std().item() == pytest.approx(1 / math.sqrt(scale), rel=0.05), name
    scaled = M.init_params(ModelConfig(init="nanda", init_scale=0.5), P, list(range(8)))
    assert torch.allclose(scaled["W_U"], 0.5 * nanda["W_U"])


def _mixed_runs(init: str = "torch") -> list[RunConfig]:
    return [RunConfig(p=P, train_frac=f, weight_decay=wd, seed=s, n_steps=20, model=ModelConfig(init=init))
            for f, wd, s in [(0.3, 1.0, 0), (0.6, 0.3, 1), (0.3, 10.0, 2), (0.5, 3.0, 0)]]


@pytest.mark.parametrize("device, lookup", WAYS)
def test_logits_match_plain_model_for_every_run(device, lookup):
    runs = _mixed_runs()
    params = M.init_params(runs[0].model, P, [r.seed for r in runs], device)
    train = _padded_examples(runs, 0, torch.device(device), lookup)
    tokens, mask = train.tokens.cpu(), train.mask.cpu()
    batched = M.forward(params, train, n_heads=4).cpu()
    cpu_params = {n: p.cpu() for n, p in params.items()}
    for r in range(len(runs)):
        plain = PlainTransformer(P).load_ensemble_run(cpu_params, r)
        n = int(mask[r].sum())
        expected = plain(tokens[r, :n])[:, -1]  # the '=' position, on the CPU
        torch.testing.assert_close(batched[r, :n], expected, atol=1e-5, rtol=0)


# float32 rounding differs between the two implementations, and Adam turns a near-zero
# gradient's rounding noise into an lr-sized step (1e-3): float32 can only be checked loosely.
# In float64 the noise stays at ~1e-14, so every parameter must agree closely, for both inits.
ADAMW_CASES = [pytest.param(torch.float32, "torch", 1e-4, id="float32"),
               pytest.param(torch.float64, "torch", 1e-10, id="float64-torch-init"),
               pytest.param(torch.float64, "nanda", 1e-10, id="float64-nanda-init")]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype, init, atol", ADAMW_CASES)
def test_training_matches_plain_adamw_loop(device, dtype, init, atol):
    """20 full-batch AdamW steps: ensemble (on ``device``) vs one torch.optim.AdamW per run (CPU)."""
    runs = _mixed_runs(init)
    opt_cfg = OptimConfig()
    params = {n: p.to(dtype) for n, p in M.init_params(runs[0].model, P, [r.seed for r in runs]).items()}
    plains = [PlainTransformer(P).to(dtype).load_ensemble_run(params, r) for r in range(len(runs))]

    params = {n: p.to(device) for n, p in params.items()}
    opt = _AdamW([params[n] for n in M.PARAM_NAMES], runs)
    train = _padded_examples(runs, 0, torch.device(device))
    for _ in range(20):
        _, _, grads = M.loss_and_grads(params, train, 4)
        opt.step([grads[n] for n in M.PARAM_NAMES])
    params = {n: p.cpu() for n, p in params.items()}

    all_tokens, all_labels = all_examples(P)
    for r, (run, plain) in enumerate(zip(runs, plains)):
        idx = torch.from_numpy(split_indices(P, run.train_frac, run.split_seed)[0])
        torch_opt = torch.optim.AdamW(plain.parameters(), lr=opt_cfg.lr,
                                      betas=(opt_cfg.beta1, opt_cfg.beta2),
                                      weight_decay=run.weight_decay)
        for _ in range(20):
            torch_opt.zero_grad()
            logits = plain(all_tokens[idx])[:, -1]
            torch.nn.functional.cross_entropy(logits, all_labels[idx]).backward()
            torch_opt.step()
        expected = PlainTransformer(P).to(dtype).load_ensemble_run(
            {n: p.detach() for n, p in params.items()}, r)
        for (name, got), want in zip(expected.named_parameters(), plain.parameters()):
            torch.testing.assert_close(got, want, atol=atol, rtol=0, msg=f"run {r} {name}")


def test_unaligned_blocks_train_as_a_plain_adamw_loop():
    """At d_model = 62 and p = 5 no per-run block is a multiple of 16 bytes, so the products
    and the AdamW step place each run's blocks themselves (model._aligned_products,
    train._padded_copy): 10 float64 steps against one torch.optim.AdamW per run."""
    p, model, opt_cfg = 5, ModelConfig(d_model=62, n_heads=2, d_mlp=64), OptimConfig()
    runs = [RunConfig(p=p, train_frac=0.6, weight_decay=wd, seed=s, n_steps=10, model=model)
            for s, wd in [(0, 1.0), (1, 0.3), (2, 10.0)]]
    params = {n: x.double() for n, x in M.init_params(model, p, [r.seed for r in runs]).items()}
    plains = [PlainTransformer(p, 62, 2, 64).double().load_ensemble_run(params, r) for r in range(3)]
    opt = _AdamW([params[n] for n in M.PARAM_NAMES], runs)
    train = _padded_examples(runs, 0, torch.device("cpu"))
    for _ in range(10):
        _, _, grads = M.loss_and_grads(params, train, 2)
        opt.step([grads[n] for n in M.PARAM_NAMES])
    for r, (run, plain) in enumerate(zip(runs, plains)):
        n = int(train.mask[r].sum())
        torch_opt = torch.optim.AdamW(plain.parameters(), lr=opt_cfg.lr,
                                      betas=(opt_cfg.beta1, opt_cfg.beta2),
                                      weight_decay=run.weight_decay)
        for _ in range(10):
            torch_opt.zero_grad()
            logits = plain(train.tokens[r, :n])[:, -1]
            torch.nn.functional.cross_entropy(logits, train.labels[r, :n]).backward()
            torch_opt.step()
        expected = PlainTransformer(p, 62, 2, 64).double().load_ensemble_run(params, r)
        for (name, got), want in zip(expected.named_parameters(), plain.parameters()):
            torch.testing.assert_close(got, want, atol=1e-10, rtol=0, msg=f"run {r} {name}")


@pytest.mark.parametrize("device, lookup", WAYS)
def test_hand_written_backward_equals_autograd_in_float64(device, lookup):
    runs = _mixed_runs()
    seeds = [r.seed for r in runs]
    params = {k: v.double() for k, v in M.init_params(runs[0].model, P, seeds, device).items()}
    train = _padded_examples(runs, 0, torch.device(device), lookup)
    labels, mask = train.labels, train.mask
    leaves = [params[n].clone().requires_grad_() for n in M.PARAM_NAMES]
    logits = M.forward(dict(zip(M.PARAM_NAMES, leaves)), train, 4)
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    loss = (ce * mask).sum(1) / mask.sum(1)
    expected = torch.autograd.grad(loss.sum(), leaves)
    got_loss, got_logits, grads = M.loss_and_grads(params, train, 4)
    torch.testing.assert_close(got_loss, loss.detach(), rtol=1e-12, atol=1e-12)
    for name, want in zip(M.PARAM_NAMES, expected):
        torch.testing.assert_close(grads[name], want, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("device, lookup", WAYS)
def test_gradients_equal_the_plain_models_in_float64(device, lookup):
    """The hand-written backward on each device against autograd on the independent
    all-positions model on the CPU."""
    runs = _mixed_runs()
    params = {k: v.double() for k, v in M.init_params(runs[0].model, P, [r.seed for r in runs]).items()}
    train = _padded_examples(runs, 0, torch.device("cpu"))
    got_loss, _, grads = M.loss_and_grads({k: v.to(device) for k, v in params.items()},
                                          _padded_examples(runs, 0, torch.device(device), lookup), 4)
    got_loss, grads = got_loss.cpu(), {k: v.cpu() for k, v in grads.items()}
    linear = {"W_Q": "q", "W_K": "k", "W_V": "v", "W_O": "o", "W_in": "mlp_in", "W_out": "mlp_out",
              "W_U": "unembed"}
    for r in range(len(runs)):
        plain = PlainTransformer(P).double().load_ensemble_run(params, r)
        n = int(train.mask[r].sum())
        loss = torch.nn.functional.cross_entropy(plain(train.tokens[r, :n])[:, -1], train.labels[r, :n])
        loss.backward()
        torch.testing.assert_close(got_loss[r], loss.detach(), rtol=1e-12, atol=0)
        want = {"W_E": plain.embed.weight.grad, "W_pos": plain.pos.grad,
                **{name: getattr(plain, attr).weight.grad.T for name, attr in linear.items()}}
        for name in M.PARAM_NAMES:
            torch.testing.assert_close(grads[name][r], want[name], rtol=1e-9, atol=1e-12,
                                       msg=f"run {r} {name}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n_heads", [1, 2])
def test_fewer_heads_match_the_plain_model_in_logits_and_gradients(n_heads, device):
    """The tests above train 4 heads; one head takes its own score product (model._score_table,
    two equal columns), and 2 heads are the width that product pads one head to."""
    runs = _mixed_runs()
    params = {k: v.double() for k, v in M.init_params(runs[0].model, P, [r.seed for r in runs]).items()}
    train = _padded_examples(runs, 0, torch.device("cpu"))
    on_device = {k: v.to(device) for k, v in params.items()}
    examples = _padded_examples(runs, 0, torch.device(device))
    logits = M.forward(on_device, examples, n_heads=n_heads).cpu()
    got_loss, _, grads = M.loss_and_grads(on_device, examples, n_heads)
    got_loss, grads = got_loss.cpu(), {k: v.cpu() for k, v in grads.items()}
    linear = {"W_Q": "q", "W_K": "k", "W_V": "v", "W_O": "o", "W_in": "mlp_in", "W_out": "mlp_out",
              "W_U": "unembed"}
    for r in range(len(runs)):
        plain = PlainTransformer(P, n_heads=n_heads).double().load_ensemble_run(params, r)
        n = int(train.mask[r].sum())
        want_logits = plain(train.tokens[r, :n])[:, -1]
        torch.testing.assert_close(logits[r, :n], want_logits.detach(), rtol=1e-12, atol=1e-12)
        loss = torch.nn.functional.cross_entropy(want_logits, train.labels[r, :n])
        loss.backward()
        torch.testing.assert_close(got_loss[r], loss.detach(), rtol=1e-12, atol=0)
        want = {"W_E": plain.embed.weight.grad, "W_pos": plain.pos.grad,
                **{name: getattr(plain, attr).weight.grad.T for name, attr in linear.items()}}
        for name in M.PARAM_NAMES:
            torch.testing.assert_close(grads[name][r], want[name], rtol=1e-9, atol=1e-12,
                                       msg=f"run {r} {name}")


def _tables(ex: M.Examples, C: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    R, _, T = ex.tokens.shape
    gen = torch.Generator().manual_seed(0)
    return torch.randn(R, M.table_rows(T, ex.vocab), C, generator=gen, dtype=dtype).to(ex.tokens.device)


@pytest.mark.parametrize("device, lookup", WAYS)
def test_every_way_reads_exactly_the_examples_table_rows(device, lookup):
    """A one-hot product has one nonzero term per sum: the rows it reads are the rows
    themselves, bitwise, as plain indexing of the stacked tables reads them."""
    ex = _padded_examples(_mixed_runs(), 0, torch.device(device), lookup)
    tables = _tables(ex, 16)
    expected = tables.cpu().reshape(-1, 16)[ex.rows.cpu()]
    assert torch.equal(M._rows(tables, ex).cpu(), expected)


@pytest.mark.parametrize("device, lookup", WAYS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_way_sums_the_table_gradient_as_a_plain_loop_does(dtype, device, lookup):
    """Each way of summing the table gradient against a per-row loop of float64 sums, within
    rounding."""
    ex = _padded_examples(_mixed_runs(), 0, torch.device(device), lookup)
    R, N, T = ex.tokens.shape
    src = torch.randn(R, N, T, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)
    got = M._scatter_rows(src.to(device), ex).cpu()
    rows, flat = ex.rows.reshape(-1).tolist(), src.reshape(-1, 5).double()
    expected = torch.zeros(R * M.table_rows(T, P + 1), 5, dtype=torch.float64)
    read = torch.zeros(R * M.table_rows(T, P + 1), dtype=torch.bool)
    for i, row in enumerate(rows):
        expected[row] += flat[i]
        read[row] = True
    assert got.shape == expected.shape
    # Sums of up to 317 N(0, 1) terms (the '=' row): float32 rounding reaches ~1e-5 there;
    # a contribution added to the wrong row would be off by O(1).
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=tol)
    # Rows no example reads (the '=' token at the first positions) get exact zeros.
    assert (~read).any() and not got[~read].any()


def test_examples_refuse_an_unknown_lookup_and_keep_theirs_when_runs_are_dropped():
    tokens, labels = all_examples(P)
    mask = torch.ones(2, P * P, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"lookup='sparse' is not allowed.*'gather', 'onehot'"):
        M.Examples.build(tokens.expand(2, -1, -1), labels.expand(2, -1), mask, P + 1, lookup="sparse")
    ex = M.Examples.build(tokens.expand(2, -1, -1), labels.expand(2, -1), mask, P + 1, lookup="onehot")
    kept = ex.select(torch.tensor([False, True]))
    assert kept.lookup == "onehot" and kept.onehot.shape == (1, P * P, 2, P + 1)
    # The default is the device's: on the CPU the embedding lookup and index_add_.
    assert M.Examples.build(tokens[None], labels[None], mask[:1], P + 1).lookup == "gather"


def test_examples_refuse_a_last_position_that_is_not_one_query_token():
    # The folded query assumes every example's last token is '='; anything else must not
    # silently produce logits for the wrong query.
    tokens, labels = all_examples(P)
    tokens = tokens.clone()
    tokens[5, -1] = 3
    with pytest.raises(ValueError, match=r"same token at the last position.*\[3, 23\]"):
        M.Examples.build(tokens[None], labels[None], torch.ones(1, P * P, dtype=torch.bool), P + 1)


@pytest.mark.parametrize("process_flag", ["none", "tf32"])
def test_fp32_products_and_lookups_ignore_a_process_wide_tf32_flag(process_flag):
    """A script may allow TF32 for its own models (torch.backends.cuda.matmul): grokcast's
    fp32 products and one-hot lookups run with the flag at IEEE whatever it says, and the
    flag is set back after (and never written where it says IEEE already: PyTorch's default
    "none" is IEEE). Recorded at each product call: the flag is host state, read by PyTorch
    when it launches the product."""
    from torch.overrides import TorchFunctionMode

    flags = torch.backends.cuda.matmul
    seen: list[tuple[str, str]] = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in (torch.bmm, torch.baddbmm):
                # A one-hot operand, (N, V) or transposed, reads or sums table rows.
                kind = "lookup" if any(P + 1 in a.shape[-2:] and bool(((a == 0) | (a == 1)).all())
                                       for a in args[:2]) else "product"
                seen.append((kind, flags.fp32_precision))
            return func(*args, **(kwargs or {}))

    runs = _mixed_runs()
    params = M.init_params(runs[0].model, P, [r.seed for r in runs])
    ex = _padded_examples(runs, 0, torch.device("cpu"), "onehot")
    flags.fp32_precision = process_flag
    try:
        for call in (lambda: M.loss_and_grads(params, ex, 4), lambda: M.forward(params, ex, 4)):
            seen.clear()
            with Record():
                call()
            assert {k for k, _ in seen} == {"lookup", "product"}
            assert {flag for _, flag in seen} == {"ieee" if process_flag == "tf32" else "none"}
            assert flags.fp32_precision == process_flag
    finally:
        flags.fp32_precision = "none"


def test_a_matmul_flag_that_inherits_tf32_goes_on_inheriting_after_grokcast_ran():
    """The matmul flag reads "tf32" when only the generic flag says so; set back to that
    value explicitly, it would no longer follow the generic flag when the script changes it."""
    runs = _mixed_runs()
    params = M.init_params(runs[0].model, P, [r.seed for r in runs])
    ex = _padded_examples(runs, 0, torch.device("cpu"), "onehot")
    backends = torch.backends
    try:
        backends.fp32_precision = "tf32"
        assert backends.cuda.matmul.fp32_precision == "tf32"
        M.loss_and_grads(params, ex, 4)
        backends.fp32_precision = "ieee"
        assert backends.cuda.matmul.fp32_precision == "ieee"
    finally:
        backends.fp32_precision = "none"
        backends.cuda.matmul.fp32_precision = "none"


def test_products_in_bf16_are_products_of_rounded_operands():
    """Closed form: bf16 mode is the float64 product of the bf16-rounded operands, rounded once."""
    gen = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(shape, generator=gen) for shape in [(3, 7, 40), (3, 40, 5), (3, 1, 5)])
    bmm, baddbmm = M.products("bf16")
    exact = a.bfloat16().double() @ b.bfloat16().double()
    got = bmm(a, b)
    assert got.dtype == torch.float32
    # One rounding of the fp32-accumulated result to bf16's 8 significant bits.
    torch.testing.assert_close(got.double(), exact, rtol=2**-8, atol=1e-6)
    assert not torch.equal(got, a @ b)  # the operands really were rounded
    torch.testing.assert_close(baddbmm(c, a, b), got + c, rtol=0, atol=0)
    assert M.products("fp32") == (torch.bmm, torch.baddbmm)
    with pytest.raises(ValueError, match=r"precision='fp16' is not allowed: expected one of \("):
        M.products("fp16")


def test_bf16_gradients_stay_within_bf16_rounding_of_float64():
    """The opt-in bf16 products against the float64 oracle: bf16-sized errors, fp32-sized for fp32."""
    runs = _mixed_runs()
    params = M.init_params(runs[0].model, P, [r.seed for r in runs])
    train = _padded_examples(runs, 0, torch.device("cpu"))
    want_loss, _, want = M.loss_and_grads({k: v.double() for k, v in params.items()}, train, 4)
    loss32, _, g32 = M.loss_and_grads(params, train, 4)
    loss16, _, g16 = M.loss_and_grads(params, train, 4, precision="bf16")
    torch.testing.assert_close(loss16.double(), want_loss, rtol=2e-3, atol=0)
    for name in M.PARAM_NAMES:
        scale = want[name].abs().max()
        err32 = float((g32[name].double() - want[name]).abs().max() / scale)
        err16 = float((g16[name].double() - want[name]).abs().max() / scale)
        assert g16[name].dtype == torch.float32
        assert err16 < 5e-2, f"{name}: bf16 gradient off by {err16:.2e} of its largest entry"
        assert err16 > 10 * err32, f"{name}: bf16 error {err16:.1e} is not above fp32's {err32:.1e}"
