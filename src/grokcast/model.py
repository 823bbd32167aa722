"""The batched-ensemble 1-layer transformer: every parameter has a leading run dimension R.

One run is the ensemble with R = 1; there is no second code path.

Architecture (Nanda et al. 2023 without LayerNorm): token + learned positional embedding,
one causal multi-head attention layer, a ReLU MLP, both residual, and an unembedding over
all p + 1 tokens. No biases. Weights are stored input-major (``x @ W``).

Only the output at the last position ('=') enters the loss, so :func:`forward` computes
that position alone. Its one query is the same for every example (the last token is always
'='), so each head's score is linear in the key's embedding: q folds into W_K, and scores
and values are looked up from tables over the (position, token) pairs the keys can hold,
computed once per step instead of projected per example. The per-example work is the
attention mix, W_O, W_in, and the MLP's output read through the unembedding
(logits = resid W_U + hidden (W_out W_U): V = p + 1 columns instead of d_model).

Every product with the weights goes through :func:`products`, so the opt-in bf16 precision
changes those products' operands and nothing else; the one-hot products that read the
tables on CUDA (:func:`_rows`) do not, and stay exact.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.functional import embedding

from grokcast.config import PRECISIONS, ModelConfig
from grokcast.data import SEQ_LEN, vocab_size
from grokcast.validation import check_bool

# Parameter names in the order their initial values are drawn from a run's generator.
PARAM_NAMES = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U")
# Ways to read the score and value tables' rows and to sum their gradient (Examples.lookup):
# "gather", an embedding lookup and index_add_ (the CPU's way: fastest there); "onehot",
# batched products with each example's one-hot tokens both ways (CUDA's way: deterministic,
# and faster there). Both read the same values from finite tables; the gradients differ in
# summation order only (benchmarks/README.md, "GPU"). A non-finite entry (a diverged run)
# spreads to all of that run's examples with "onehot" (0 * inf is NaN), to its readers only
# with "gather": the run is diverged either way.
LOOKUPS = ("gather", "onehot")


def param_shapes(cfg: ModelConfig, p: int) -> dict[str, tuple[int, ...]]:
    """Per-run shape of every parameter (without the leading run dimension)."""
    d, v = cfg.d_model, vocab_size(p)
    return {
        "W_E": (v, d), "W_pos": (SEQ_LEN, d),
        "W_Q": (d, d), "W_K": (d, d), "W_V": (d, d), "W_O": (d, d),
        "W_in": (d, cfg.d_mlp), "W_out": (cfg.d_mlp, d),
        "W_U": (d, v),
    }


def n_params(cfg: ModelConfig, p: int) -> int:
    return sum(math.prod(s) for s in param_shapes(cfg, p).values())


@dataclass(frozen=True)
class Examples:
    """Each run's examples, and the table rows they read: derived once per ensemble.

    A run's table has a row for every (position, token) pair of the first T - 1 positions and
    one for the query token at the last; the tables of all runs are stacked into one, so a
    run's rows carry its offset into the stack. Every step reads the same rows.
    """

    tokens: Tensor  # (R, N, T)
    labels: Tensor  # (R, N)
    mask: Tensor  # (R, N) bool: a run's real examples (shorter sets are padded)
    vocab: int  # V
    query_token: int  # the token every example holds at the last position ('=')
    weight: Tensor  # (R, N): 1/n_r on a run's real examples, 0 on padding
    rows: Tensor  # (R, N, T): rows of the stacked tables, R * table_rows(T, V) in all
    # How the table rows are read and their gradient summed (see LOOKUPS and _rows).
    lookup: str
    # "onehot": each example's tokens at the key positions one-hot, (R, N, T - 1, V) float32;
    # "gather" leaves it empty.
    onehot: Tensor

    @classmethod
    def build(cls, tokens: Tensor, labels: Tensor, mask: Tensor, vocab: int,
              lookup: str | None = None) -> Examples:
        """``lookup``: one of :data:`LOOKUPS`; by default ``"onehot"`` on CUDA, else ``"gather"``."""
        lookup = lookup or ("onehot" if tokens.is_cuda else "gather")
        if lookup not in LOOKUPS:
            raise ValueError(f"lookup={lookup!r} is not allowed: expected one of {LOOKUPS}")
        R, _, T = tokens.shape
        last = tokens[:, :, -1]
        query_token = int(last.reshape(-1)[0]) if last.numel() else vocab - 1
        if not bool((last == query_token).all()):
            raise ValueError("every example must hold the same token at the last position (the "
                             f"'=' query), found {sorted(set(last.unique().tolist()))}")
        # Within one run's table: row t*V + x for token x at position t < T-1; the query's last.
        pos = torch.arange(T, device=tokens.device) * vocab
        rows = torch.cat([tokens[:, :, :-1] + pos[:-1], torch.full_like(last, (T - 1) * vocab)[..., None]],
                         dim=2)
        rows += torch.arange(R, device=tokens.device)[:, None, None] * table_rows(T, vocab)
        weight = mask.double() / mask.sum(1, keepdim=True)  # exact in float32 and float64 models
        onehot = torch.empty(0, device=tokens.device)
        if lookup == "onehot":  # float32 from the start: an int64 one_hot would be twice its size
            keys = tokens[:, :, :-1]
            onehot = torch.zeros(*keys.shape, vocab, device=tokens.device).scatter_(-1, keys[..., None], 1.0)
        return cls(tokens, labels, mask, vocab, query_token, weight, rows, lookup, onehot)

    def select(self, keep: Tensor) -> Examples:
        """The examples of the runs where ``keep`` (R,) is True, as their own ensemble."""
        return Examples.build(self.tokens[keep], self.labels[keep], self.mask[keep], self.vocab,
                              self.lookup)


def table_rows(seq_len: int, vocab: int) -> int:
    """Rows of one run's score and value tables: every key (position, token) the task holds."""
    return (seq_len - 1) * vocab + 1


def _init_one(name: str, shape: tuple[int, ...], cfg: ModelConfig, gen: torch.Generator) -> Tensor:
    fan_in = shape[0]  # input-major storage: rows are inputs
    is_embedding = name in ("W_E", "W_pos")
    if cfg.init == "torch":
        # nn.Embedding and a randn positional table draw N(0, 1); a bias-free nn.Linear
        # draws kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        if is_embedding:
            return torch.randn(shape, generator=gen)
        bound = 1.0 / math.sqrt(fan_in)
        return torch.empty(shape).uniform_(-bound, bound, generator=gen)
    # "nanda", as Nanda et al.'s code (progress-measures-paper, transformers.py) draws it:
    # randn / sqrt(d_model) for every matrix but the unembedding, randn / sqrt(d_vocab) for it.
    # Not by fan-in: its W_out (d_model x d_mlp) is also scaled by 1/sqrt(d_model).
    std = 1.0 / math.sqrt(shape[1] if name == "W_U" else cfg.d_model)
    return torch.randn(shape, generator=gen) * std


def init_params(cfg: ModelConfig, p: int, seeds: list[int], device: torch.device | str = "cpu",
                ) -> dict[str, Tensor]:
    """Initial parameters of an ensemble, one run per seed, each of shape (R, *per_run_shape).

    Each run draws from its own ``torch.Generator`` seeded by its seed, on the CPU, so a run's
    initial weights do not depend on the ensemble it is in or on the device.
    """
    shapes = param_shapes(cfg, p)
    per_run = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        per_run.append({n: _init_one(n, shapes[n], cfg, gen) * cfg.init_scale for n in PARAM_NAMES})
    return {n: torch.stack([r[n] for r in per_run]).to(device) for n in PARAM_NAMES}


Product = Callable[..., Tensor]


@contextmanager
def _ieee_fp32() -> Iterator[None]:
    """CUDA's float32 matrix products in IEEE fp32 within the block, whatever the process set:
    a script that allows TF32 for its own models (``torch.backends.cuda.matmul.fp32_precision``,
    or the legacy ``allow_tf32``, which that attribute reads) must not round grokcast's fp32
    products or its one-hot lookups (TF32 keeps 10 mantissa bits). The flag is written only
    where it says TF32, and set back after, so with PyTorch's defaults nothing is touched.
    (Inside the block, PyTorch refuses to read the legacy ``allow_tf32``.)"""
    flags = torch.backends.cuda.matmul
    before = flags.fp32_precision
    if before != "tf32":
        yield
        return
    # The matmul flag reads "tf32" also where it inherits the generic one, which it must go
    # on doing after the block: set back to "none" (inherit) in that case.
    inherited = getattr(torch.backends, "fp32_precision", None) == before
    flags.fp32_precision = "ieee"
    try:
        yield
    finally:
        flags.fp32_precision = "none" if inherited else before


def products(precision: str, *, aligned: bool = False) -> tuple[Product, Product]:
    """``bmm(a, b) = a @ b`` and ``baddbmm(c, a, b) = c + a @ b`` in a model precision.

    ``"bf16"`` rounds both operands to bfloat16; PyTorch's kernel accumulates in fp32 and
    rounds its result to bfloat16 once, which is then carried on in fp32: about 3 significant
    digits. Where the hardware has bf16 units the products run faster (2.4-3.1x for the MLP's
    shapes on an AVX512-BF16 CPU).

    ``aligned`` (fp32 only): every run's block of the operands and the result starts on a
    16-byte boundary, see :func:`_aligned_products`.
    """
    if precision == "fp32":
        return _aligned_products() if aligned else (torch.bmm, torch.baddbmm)
    if precision != "bf16":
        raise ValueError(f"precision={precision!r} is not allowed: expected one of {PRECISIONS}")

    def bmm(a: Tensor, b: Tensor) -> Tensor:
        return torch.bmm(a.bfloat16(), b.bfloat16()).to(a.dtype)

    def baddbmm(c: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return bmm(a, b).add_(c)

    return bmm, baddbmm


# Floats per 16 bytes. MKL's kernels for some small products on the CPU round a run's block by
# where it starts in memory modulo 16 bytes: the result of a product a few columns wide (V = 6
# at p = 5, the score table's 8 heads) and every operand of a one-row product (the query's
# q and its gradient's dq W_Q^T). In a batch, run r's block starts r times its per-run size
# after run 0's, so where that size is not a multiple of 4 floats a run's bits depended on its
# place in the chunk (README, "Train a sweep").
_ALIGN = 4


@functools.cache  # asked for on every step: the answer once per ensemble shape
def _aligned_blocks(n: int, m: int, v: int, d: int, h: int, d_mlp: int) -> bool:
    """Whether every per-run block the step's products read or write is a multiple of
    :data:`_ALIGN` floats, for n examples and m table rows: then a run's blocks start on
    16-byte boundaries at any place in the chunk, as alone. The blocks: (n, V), (n, d),
    (n, d_mlp), (m, d), (m, H) (one head is read as two, :func:`_score_table`), (1, d), and
    the weights' (d, d), (d, H), (d, d_mlp), (d, V), (d_mlp, V)."""
    blocks = (n * v, n * d, n * d_mlp, m * d, m * max(h, 2), d, d * d, d * h, d * d_mlp, d * v,
              d_mlp * v)
    return all(b % _ALIGN == 0 for b in blocks)


def _step_products(params: dict[str, Tensor], ex: Examples, n_heads: int, precision: str,
                   ) -> tuple[Product, Product]:
    """:func:`products` for a step on ``ex``, aligned where the step's products must place
    each run's blocks themselves: on the CPU, in fp32, eagerly (a compiled step's logs depend
    on the thread count anyway, and inductor lays out its own buffers), where some per-run
    block is not 16-byte sized."""
    _, n, t = ex.tokens.shape
    d, d_mlp = params["W_in"].shape[1:]
    aligned = (not ex.tokens.is_cuda and precision == "fp32" and not torch.compiler.is_compiling()
               and not _aligned_blocks(n, table_rows(t, ex.vocab), ex.vocab, d, n_heads, d_mlp))
    return products(precision, aligned=aligned)


def _padded(shape: tuple[int, int, int], like: Tensor) -> Tensor:
    """An empty (R, m, n) tensor whose runs' blocks start every m * n floats rounded up to a
    multiple of :data:`_ALIGN`."""
    r, m, n = shape
    block = -(-m * n // _ALIGN) * _ALIGN
    return like.new_empty(r, block)[:, : m * n].view(r, m, n)


def _aligned(x: Tensor) -> Tensor:
    """``x`` (R, m, n), or a copy of it whose runs' blocks start on 16-byte boundaries where
    its per-run stride would not, each block laid out as before (row- or column-major:
    a transposed operand takes another kernel)."""
    if x.stride(0) % _ALIGN == 0:
        return x
    r, m, n = x.shape
    if x.stride(1) == 1 and x.stride(2) != 1:
        return _padded((r, n, m), x).transpose(1, 2).copy_(x)
    return _padded((r, m, n), x).copy_(x)


@functools.cache
def _aligned_products() -> tuple[Product, Product]:
    """fp32 ``bmm`` and ``baddbmm`` that read and write every run's block at a 16-byte
    boundary (:data:`_ALIGN`), so that a run's bits do not depend on its place in the batch."""

    def bmm(a: Tensor, b: Tensor) -> Tensor:
        out = _padded((a.shape[0], a.shape[1], b.shape[2]), a)
        return torch.bmm(_aligned(a), _aligned(b), out=out)

    def baddbmm(c: Tensor, a: Tensor, b: Tensor) -> Tensor:
        out = _padded((a.shape[0], a.shape[1], b.shape[2]), a)
        return torch.baddbmm(c, _aligned(a), _aligned(b), out=out)

    return bmm, baddbmm


def forward(params: dict[str, Tensor], examples: Examples, n_heads: int, *,
            precision: str = "fp32") -> Tensor:
    """Logits at the last position for every run and example.

    Parameters
    ----------
    params : dict of tensors of shape (R, ...), see :func:`param_shapes`
    examples : each run's own examples, see :class:`Examples`
    n_heads : attention heads (``ModelConfig.n_heads``; d_model must be a multiple)
    precision : operands of the matrix products, see :func:`products`

    Returns
    -------
    logits : Tensor of shape (R, N, V)
    """
    with _ieee_fp32():
        return _forward(params, examples, n_heads, precision)["logits"]


def _forward(params: dict[str, Tensor], ex: Examples, n_heads: int, precision: str,
             ) -> dict[str, Tensor]:
    """The forward pass, keeping the intermediates that :func:`loss_and_grads` needs."""
    W_E, W_pos = params["W_E"], params["W_pos"]
    R, N, T = ex.tokens.shape
    V, d = W_E.shape[1:]
    H, dh = n_heads, d // n_heads
    bmm, baddbmm = _step_products(params, ex, n_heads, precision)
    # The embedding of every (position, token) a key can hold: (R, M, d), the query's last.
    emb = torch.cat([(W_pos[:, :-1, None, :] + W_E[:, None, :, :]).reshape(R, (T - 1) * V, d),
                     (W_pos[:, -1] + W_E[:, ex.query_token]).unsqueeze(1)], dim=1)
    q = bmm(emb[:, -1:], params["W_Q"]).reshape(R, 1, H, dh) / math.sqrt(dh)
    # One query: the scores are emb @ wkq, with q folded into W_K per head: (R, d, H).
    wkq = (params["W_K"].reshape(R, d, H, dh) * q).sum(-1)
    s_tab = _score_table(bmm, emb, wkq)  # (R, M, H)
    v_tab = bmm(emb, params["W_V"])  # (R, M, d)
    # The causal mask is a no-op for the last query: it attends to every position.
    attn = torch.softmax(_rows(s_tab, ex), dim=2)  # (R, N, T, H)
    vals = _rows(v_tab, ex).reshape(R, N, T, H, dh)
    z = (attn.unsqueeze(-1) * vals).sum(2).reshape(R, N, d)
    resid = baddbmm(emb[:, -1:], z, params["W_O"])  # (R, N, d) at '='
    hidden = bmm(resid, params["W_in"]).relu_()  # (R, N, d_mlp)
    # logits = (resid + hidden W_out) W_U, associated as resid W_U + hidden (W_out W_U): the
    # MLP's output is read only through the V-wide unembedding, so its (d_mlp, V) product
    # replaces the per-example (d_mlp, d) one, and the backward pass inherits the saving.
    out_map = bmm(params["W_out"], params["W_U"])  # (R, d_mlp, V)
    logits = baddbmm(bmm(resid, params["W_U"]), hidden, out_map)  # (R, N, V)
    return dict(emb=emb, q=q, wkq=wkq, attn=attn, vals=vals, z=z, resid=resid, hidden=hidden,
                out_map=out_map, logits=logits)


@torch.no_grad()
def loss_and_grads(params: dict[str, Tensor], examples: Examples, n_heads: int, *,
                   precision: str = "fp32", compiled: bool = False,
                   ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Per-run mean cross-entropy over each run's examples, the logits, and the exact gradients.

    The backward pass is written out by hand: on a CPU it costs about half of what autograd
    spends on this many small ops, and the sparse table gradients become row sums
    (:func:`_scatter_rows`).
    ``tests/test_model.py`` checks it against autograd on a plain nn.Module.

    ``compiled``: run it as ``torch.compile`` builds it (:class:`_Compiled`), the same
    computation with its elementwise ops fused; the values differ from the eager ones in
    rounding only.

    Returns
    -------
    loss : (R,), logits : (R, N, V), grads : dict like ``params``
    """
    with _ieee_fp32():
        fn = _compiled() if check_bool("compiled", compiled) else _loss_and_grads
        return fn(params, examples, n_heads, precision)


# Compilations of the step one process may make: one per chunk shape of a sweep, per shape an
# ensemble shrinks to as a stop rule drops runs, and per torch thread count.
MAX_COMPILED_SHAPES = 4096


# What inductor advises while it compiles on CUDA, which a grokcast user cannot act on: TF32
# products (grokcast keeps its fp32 products at IEEE on purpose: no gain at these shapes, and
# results further from the CPU's; benchmarks/README.md, "GPU") and a note on its own softmax
# lowering. Regular expressions matched at the start of the warning's text.
_INDUCTOR_ADVICE = (r"TensorFloat32 tensor cores for float32 matrix multiplication available",
                    r"\s*Online softmax is disabled on the fly")


class _Compiled:
    """:func:`_loss_and_grads` compiled by ``torch.compile`` (inductor), for every ensemble
    shape it is called with.

    ``dynamic=False``: a kernel specialised to each shape. A kernel general in the number of
    examples ran slower than the specialised one (benchmarks/README.md, "Compiled steps"), and
    an ensemble keeps its shape for thousands of steps. Each new shape compiles again (seconds;
    inductor keeps what it built in its on-disk cache for later processes), and so does a new
    torch thread count, which inductor builds into its CPU kernels. Past torch's default of 8
    compilations per function (``recompile_limit``) it would run the step eagerly, and a run's
    log would depend on what its process had trained before: the limit is raised for the calls
    that compile (raising it costs ~0.1 ms, too much for every step), and ``fullgraph=True``
    makes any fallback an error instead.
    """

    def __init__(self) -> None:
        self.fns: dict[str, Callable[..., tuple[Tensor, Tensor, dict[str, Tensor]]]] = {}
        self.keys: set[tuple] = set()

    def __call__(self, params: dict[str, Tensor], ex: Examples, n_heads: int, precision: str,
                 ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        device = ex.tokens.device
        fn = self.fns.get(device.type) or self._build(device.type)
        key = (tuple(p.shape for p in params.values()), ex.tokens.shape, device, ex.vocab,
               ex.query_token, ex.lookup, n_heads, precision, torch.get_num_threads())
        if key in self.keys:
            return fn(params, ex, n_heads, precision)
        limits = torch._dynamo.config.patch(recompile_limit=MAX_COMPILED_SHAPES,
                                            accumulated_recompile_limit=MAX_COMPILED_SHAPES)
        with limits, warnings.catch_warnings():
            for text in _INDUCTOR_ADVICE:
                warnings.filterwarnings("ignore", message=text, category=UserWarning)
            out = fn(params, ex, n_heads, precision)
        self.keys.add(key)
        return out

    def _build(self, device_type: str) -> Callable[..., tuple[Tensor, Tensor, dict[str, Tensor]]]:
        # On CUDA inductor picks among kernel configurations by timing them, and they can sum in
        # different orders: the same config would not always give the same log. The CPU's
        # default build has no such choice (and is what benchmarks/README.md measured).
        fn = torch.compile(_loss_and_grads, dynamic=False, fullgraph=True,
                           options={"deterministic": True} if device_type == "cuda" else None)
        self.fns[device_type] = fn
        return fn


@functools.cache
def _compiled() -> _Compiled:
    """The process's one :class:`_Compiled` (torch caches the compiled code per function)."""
    return _Compiled()


def _loss_and_grads(params: dict[str, Tensor], ex: Examples, n_heads: int, precision: str,
                    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    f = _forward(params, ex, n_heads, precision)
    R, N, T = ex.tokens.shape
    V, d = params["W_E"].shape[1:]
    H, dh = n_heads, d // n_heads
    bmm, baddbmm = _step_products(params, ex, n_heads, precision)
    logits, hidden, resid = f["logits"], f["hidden"], f["resid"]
    W_U = params["W_U"]
    t = lambda x: x.transpose(1, 2)  # noqa: E731

    logp = torch.log_softmax(logits, dim=-1)
    weight = ex.weight.to(logits.dtype)  # (R, N): 1/n_r on real examples
    labels = ex.labels.unsqueeze(-1)
    loss = -(logp.gather(-1, labels).squeeze(-1) * weight).sum(1)
    dlogits = logp.exp_()
    dlogits.scatter_add_(-1, labels, torch.full_like(labels, -1, dtype=logits.dtype))
    dlogits.mul_(weight.unsqueeze(-1))  # (R, N, V)

    # Through logits = resid W_U + hidden (W_out W_U), keeping every per-example product V wide.
    hidden_dlogits = bmm(t(hidden), dlogits)  # (R, d_mlp, V)
    g = {"W_U": baddbmm(bmm(t(resid), dlogits), t(params["W_out"]), hidden_dlogits),
         "W_out": bmm(hidden_dlogits, t(W_U))}
    # One fused pass over the largest tensor instead of compare, cast and multiply, in place in
    # the product's buffer: a fresh (R, N, d_mlp) output would be written to cold cache lines.
    dhidden = bmm(dlogits, t(f["out_map"]))
    torch.ops.aten.threshold_backward.grad_input(dhidden, hidden, 0.0, grad_input=dhidden)
    g["W_in"] = bmm(t(resid), dhidden)
    dresid = baddbmm(bmm(dlogits, t(W_U)), dhidden, t(params["W_in"]))  # (R, N, d)
    g["W_O"] = bmm(t(f["z"]), dresid)
    dz = bmm(dresid, t(params["W_O"])).reshape(R, N, 1, H, dh)

    attn, vals = f["attn"], f["vals"]
    dattn = (dz * vals).sum(-1)  # (R, N, T, H)
    dvals = attn.unsqueeze(-1) * dz  # (R, N, T, H, dh)
    dscores = attn * (dattn - (attn * dattn).sum(2, keepdim=True))

    M = table_rows(T, V)
    ds_tab = _scatter_rows(dscores, ex).reshape(R, M, H)
    dv_tab = _scatter_rows(dvals.reshape(R, N, T, d), ex).reshape(R, M, d)
    emb, wkq, q = f["emb"], f["wkq"], f["q"]
    g["W_V"] = bmm(t(emb), dv_tab)
    dwkq = bmm(t(emb), ds_tab).unsqueeze(-1)  # (R, d, H, 1)
    W_K4 = params["W_K"].reshape(R, d, H, dh)
    g["W_K"] = (dwkq * q).reshape(R, d, d)
    dq = (dwkq * W_K4).sum(1).reshape(R, 1, d) / math.sqrt(dh)
    g["W_Q"] = bmm(t(emb[:, -1:]), dq)
    demb = baddbmm(bmm(ds_tab, t(wkq)), dv_tab, t(params["W_V"]))  # (R, M, d)
    # The query's embedding also feeds q and, unmixed, the residual at '='.
    demb[:, -1] += dresid.sum(1) + bmm(dq, t(params["W_Q"])).squeeze(1)
    keys = demb[:, :-1].reshape(R, T - 1, V, d)
    g["W_E"] = keys.sum(1)
    g["W_E"][:, ex.query_token] += demb[:, -1]
    g["W_pos"] = torch.cat([keys.sum(2), demb[:, -1:]], dim=1)
    return loss, logits, g


def _score_table(bmm: Product, emb: Tensor, wkq: Tensor) -> Tensor:
    """``bmm(emb, wkq)``, the score table (R, M, H). With one head that is a matrix-vector
    product, for which MKL takes a kernel whose rounding on the CPU depends on the batch: a
    run's table alone and in a chunk of three differed (found in review; a run's val loss
    0.08 apart after 300 steps). Two equal columns keep it a matrix product, whose rounding
    does not."""
    if wkq.shape[2] > 1:
        return bmm(emb, wkq)
    return bmm(emb, wkq.expand(-1, -1, 2))[..., :1]


def _rows(tables: Tensor, ex: Examples) -> Tensor:
    """Each example's rows of the stacked tables (R, M, C): ``tables.reshape(R * M, C)[ex.rows]``,
    (R, N, T, C).

    ``"gather"``: one flat embedding lookup, much faster on CPU than
    torch.gather with an expanded index. ``"onehot"``: per key position a batched product of
    the examples' one-hot tokens with that position's (V, C) table, one nonzero term per sum
    and so the same values (of finite tables: 0 * inf is NaN); on CUDA a dense product runs
    near the memory's speed where the row lookup did not (benchmarks/README.md, "GPU").
    """
    if ex.lookup != "onehot":
        return embedding(ex.rows, tables.reshape(-1, tables.shape[-1]))
    R, _, C = tables.shape
    _, N, T = ex.tokens.shape
    onehot = ex.onehot.to(tables.dtype)
    keys = tables[:, :-1].reshape(R, T - 1, ex.vocab, C)
    looked_up = [torch.bmm(onehot[:, :, t], keys[:, t]) for t in range(T - 1)]
    return torch.stack([*looked_up, tables[:, -1:].expand(R, N, C)], dim=2)  # the query row last


def _scatter_rows(src: Tensor, ex: Examples) -> Tensor:
    """Adjoint of :func:`_rows`: sum the rows of ``src`` (*ex.rows.shape, C) into the stacked
    tables' rows, (R * table_rows, C).

    ``"gather"`` (the CPU's way): ``index_add_`` adds each table row's contributions one after
    another in example order. On CUDA it adds them with atomics, whose order is not fixed:
    PyTorch lists it among the nondeterministic operations
    (``torch.use_deterministic_algorithms``), so the same config could give a different log
    (``benchmarks/gpu_checks.py``'s ``repeat`` stage: it does). ``"onehot"`` (CUDA's way)
    sums them as the batched product of the one-hot tokens' transpose with ``src``, per key
    position: a fixed order, cuBLAS's, on every call.
    """
    R, _, T, C = src.shape
    if ex.lookup == "onehot":
        onehot = ex.onehot.to(src.dtype)
        parts = [torch.bmm(onehot[:, :, t].transpose(1, 2), src[:, :, t]) for t in range(T - 1)]
        parts.append(src[:, :, -1].sum(1, keepdim=True))  # the query row: every example reads it
        return torch.cat(parts, dim=1).reshape(-1, C)
    out = torch.zeros(R * table_rows(T, ex.vocab), C, dtype=src.dtype, device=src.device)
    return out.index_add_(0, ex.rows.reshape(-1), src.reshape(-1, C))
