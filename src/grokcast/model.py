"""The batched-ensemble 1-layer transformer: every parameter has a leading run dimension R.

One run is the ensemble with R = 1; there is no second code path.

Architecture (Nanda et al. 2023 without LayerNorm): token + learned positional embedding,
one causal multi-head attention layer, a ReLU MLP, both residual, and an unembedding over
all p + 1 tokens. No biases. Weights are stored input-major (``x @ W``).

Only the output at the last position ('=') enters the loss, so :func:`forward` computes
that position alone. Its queries, keys and values depend on a (token, position) pair only,
so they are looked up from (V x T) tables computed once per step instead of being
projected per example; the per-example work is the attention mix, W_O, W_in, and the MLP's
output read through the unembedding (logits = resid W_U + hidden (W_out W_U): V = p + 1
columns instead of d_model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.functional import embedding

from grokcast.config import ModelConfig
from grokcast.data import SEQ_LEN

# Parameter names in the order their initial values are drawn from a run's generator.
PARAM_NAMES = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U")


def param_shapes(cfg: ModelConfig, p: int) -> dict[str, tuple[int, ...]]:
    """Per-run shape of every parameter (without the leading run dimension)."""
    d, v = cfg.d_model, p + 1
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

    The (token, position) tables of all runs are stacked into one, so a run's rows carry its
    offset into the stack; every step reads the same rows, so they are computed here once.
    """

    tokens: Tensor  # (R, N, T)
    labels: Tensor  # (R, N)
    mask: Tensor  # (R, N) bool: a run's real examples (shorter sets are padded)
    vocab: int  # V, table rows per position
    weight: Tensor  # (R, N): 1/n_r on a run's real examples, 0 on padding
    kv_rows: Tensor  # (R, N, T): rows of the stacked key/value tables, R*T*V in all
    eq_rows: Tensor  # (R, N): the last position's rows of the same tables
    score_rows: Tensor  # (R, N, T): rows of the stacked score tables, R*V*T*V in all

    @classmethod
    def build(cls, tokens: Tensor, labels: Tensor, mask: Tensor, vocab: int) -> Examples:
        R, _, T = tokens.shape
        run = torch.arange(R, device=tokens.device)[:, None, None]
        rows = tokens + torch.arange(T, device=tokens.device) * vocab  # within one run's table
        kv_rows = rows + run * (T * vocab)
        # A score row pairs the query token (the last position's) with a key row.
        score_rows = tokens[:, :, -1:] * (T * vocab) + rows + run * (vocab * T * vocab)
        weight = mask.double() / mask.sum(1, keepdim=True)  # exact in float32 and float64 models
        return cls(tokens, labels, mask, vocab, weight, kv_rows, kv_rows[:, :, -1].contiguous(),
                   score_rows)

    def select(self, keep: Tensor) -> Examples:
        """The examples of the runs where ``keep`` (R,) is True, as their own ensemble."""
        return Examples.build(self.tokens[keep], self.labels[keep], self.mask[keep], self.vocab)


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
    # "nanda": N(0, 1/fan_in); embeddings scaled by 1/sqrt(d_model) as in Nanda et al.'s code.
    std = 1.0 / math.sqrt(cfg.d_model if is_embedding else fan_in)
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


def forward(params: dict[str, Tensor], examples: Examples, n_heads: int) -> Tensor:
    """Logits at the last position for every run and example.

    Parameters
    ----------
    params : dict of tensors of shape (R, ...), see :func:`param_shapes`
    examples : each run's own examples, see :class:`Examples`

    Returns
    -------
    logits : Tensor of shape (R, N, V)
    """
    return _forward(params, examples, n_heads)["logits"]


def _forward(params: dict[str, Tensor], ex: Examples, n_heads: int) -> dict[str, Tensor]:
    """The forward pass, keeping the intermediates that :func:`loss_and_grads` needs."""
    W_E, W_pos = params["W_E"], params["W_pos"]
    R, N, T = ex.tokens.shape
    V, d = W_E.shape[1:]
    H, dh = n_heads, d // n_heads
    # Every (position, token) embedding and its projections: tables of T*V rows per run.
    emb = (W_pos[:, :, None, :] + W_E[:, None, :, :]).reshape(R, T * V, d)
    k_tab = torch.bmm(emb, params["W_K"])  # (R, T*V, d)
    v_tab = torch.bmm(emb, params["W_V"])  # (R, T*V, d)
    q_tab = torch.bmm(emb[:, (T - 1) * V:], params["W_Q"])  # (R, V, d): last position only
    # Score of every query token against every key row, per head: (R, V * T*V, H).
    s_tab = torch.einsum("rihc,rjhc->rijh", q_tab.reshape(R, V, H, dh),
                         k_tab.reshape(R, T * V, H, dh)).reshape(R, V * T * V, H) / math.sqrt(dh)
    # The causal mask is a no-op for the last query: it attends to every position.
    attn = torch.softmax(_rows(s_tab, ex.score_rows), dim=2)  # (R, N, T, H)
    vals = _rows(v_tab, ex.kv_rows).reshape(R, N, T, H, dh)
    z = (attn.unsqueeze(-1) * vals).sum(2).reshape(R, N, d)
    resid = _rows(emb, ex.eq_rows) + torch.bmm(z, params["W_O"])  # (R, N, d) at '='
    hidden = torch.bmm(resid, params["W_in"]).relu_()  # (R, N, d_mlp)
    # logits = (resid + hidden W_out) W_U, associated as resid W_U + hidden (W_out W_U): the
    # MLP's output is read only through the V-wide unembedding, so its (d_mlp, V) product
    # replaces the per-example (d_mlp, d) one, and the backward pass inherits the saving.
    out_map = torch.bmm(params["W_out"], params["W_U"])  # (R, d_mlp, V)
    logits = torch.baddbmm(torch.bmm(resid, params["W_U"]), hidden, out_map)  # (R, N, V)
    return dict(emb=emb, k_tab=k_tab, q_tab=q_tab, attn=attn, vals=vals, z=z, resid=resid,
                hidden=hidden, out_map=out_map, logits=logits)


@torch.no_grad()
def loss_and_grads(params: dict[str, Tensor], examples: Examples, n_heads: int,
                   ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Per-run mean cross-entropy over each run's examples, the logits, and the exact gradients.

    The backward pass is written out by hand: on a CPU it costs about half of what autograd
    spends on this many small ops, and the sparse table gradients become ``index_add_``.
    ``tests/test_model.py`` checks it against autograd on a plain nn.Module.

    Returns
    -------
    loss : (R,), logits : (R, N, V), grads : dict like ``params``
    """
    ex = examples
    f = _forward(params, ex, n_heads)
    R, N, T = ex.tokens.shape
    V, d = params["W_E"].shape[1:]
    H, dh = n_heads, d // n_heads
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
    hidden_dlogits = torch.bmm(t(hidden), dlogits)  # (R, d_mlp, V)
    g = {"W_U": torch.baddbmm(torch.bmm(t(resid), dlogits), t(params["W_out"]), hidden_dlogits),
         "W_out": torch.bmm(hidden_dlogits, t(W_U))}
    # One fused pass over the largest tensor instead of compare, cast and multiply.
    dhidden = torch.ops.aten.threshold_backward(torch.bmm(dlogits, t(f["out_map"])), hidden, 0.0)
    g["W_in"] = torch.bmm(t(resid), dhidden)
    dresid = torch.baddbmm(torch.bmm(dlogits, t(W_U)), dhidden, t(params["W_in"]))  # (R, N, d)
    g["W_O"] = torch.bmm(t(f["z"]), dresid)
    dz = torch.bmm(dresid, t(params["W_O"])).reshape(R, N, 1, H, dh)

    attn, vals = f["attn"], f["vals"]
    dattn = (dz * vals).sum(-1)  # (R, N, T, H)
    dvals = attn.unsqueeze(-1) * dz  # (R, N, T, H, dh)
    dscores = attn * (dattn - (attn * dattn).sum(2, keepdim=True)) / math.sqrt(dh)

    ds_tab = _scatter_rows(dscores, ex.score_rows, R * V * T * V).reshape(R, V, T * V, H)
    dv_tab = _scatter_rows(dvals.reshape(R, N, T, d), ex.kv_rows, R * T * V).reshape(R, T * V, d)
    demb = _scatter_rows(dresid, ex.eq_rows, R * T * V).reshape(R, T * V, d)  # residual at '='

    q4, k4 = f["q_tab"].reshape(R, V, H, dh), f["k_tab"].reshape(R, T * V, H, dh)
    dq_tab = torch.einsum("rijh,rjhc->rihc", ds_tab, k4).reshape(R, V, d)
    dk_tab = torch.einsum("rijh,rihc->rjhc", ds_tab, q4).reshape(R, T * V, d)
    emb = f["emb"]
    g["W_K"] = torch.bmm(t(emb), dk_tab)
    g["W_V"] = torch.bmm(t(emb), dv_tab)
    g["W_Q"] = torch.bmm(t(emb[:, (T - 1) * V:]), dq_tab)
    demb += torch.bmm(dk_tab, t(params["W_K"])) + torch.bmm(dv_tab, t(params["W_V"]))
    demb[:, (T - 1) * V:] += torch.bmm(dq_tab, t(params["W_Q"]))
    demb = demb.reshape(R, T, V, d)
    g["W_E"], g["W_pos"] = demb.sum(1), demb.sum(2)
    return loss, logits, g


def _rows(tables: Tensor, rows: Tensor) -> Tensor:
    """Rows of the stacked tables (R, M, C): ``tables.reshape(R * M, C)[rows]`` -> (*rows.shape, C).

    One flat embedding lookup: much faster on CPU than torch.gather with an expanded index.
    """
    return embedding(rows, tables.reshape(-1, tables.shape[-1]))


def _scatter_rows(src: Tensor, rows: Tensor, n_rows: int) -> Tensor:
    """Adjoint of :func:`_rows`: sum the rows of ``src`` (*rows.shape, C) into (n_rows, C) zeros."""
    C = src.shape[-1]
    out = torch.zeros(n_rows, C, dtype=src.dtype, device=src.device)
    return out.index_add_(0, rows.reshape(-1), src.reshape(-1, C))
