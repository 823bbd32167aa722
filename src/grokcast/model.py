"""The batched-ensemble 1-layer transformer: every parameter has a leading run dimension R.

One run is the ensemble with R = 1; there is no second code path.

Architecture (Nanda et al. 2023 without LayerNorm): token + learned positional embedding,
one causal multi-head attention layer, a ReLU MLP, both residual, and an unembedding over
all p + 1 tokens. No biases. Weights are stored input-major (``x @ W``).

Only the output at the last position ('=') enters the loss, so :func:`forward` computes
that position alone. Its queries, keys and values depend on a (token, position) pair only,
so they are looked up from (V x T) tables computed once per step instead of being
projected per example; the per-example work is the attention mix, W_O, the MLP and W_U.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

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


def forward(params: dict[str, Tensor], tokens: Tensor, n_heads: int) -> Tensor:
    """Logits at the last position for every run and example.

    Parameters
    ----------
    params : dict of tensors of shape (R, ...), see :func:`param_shapes`
    tokens : LongTensor of shape (R, N, T): each run's own examples

    Returns
    -------
    logits : Tensor of shape (R, N, V)
    """
    return _forward(params, tokens, n_heads)["logits"]


def _forward(params: dict[str, Tensor], tokens: Tensor, n_heads: int) -> dict[str, Tensor]:
    """The forward pass, keeping the intermediates that :func:`loss_and_grads` needs."""
    W_E, W_pos = params["W_E"], params["W_pos"]
    R, N, T = tokens.shape
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
    rows = tokens + torch.arange(T, device=tokens.device) * V  # (R, N, T) rows of the tables
    score_rows = (tokens[:, :, -1:] * (T * V) + rows).reshape(R, N * T)
    # The causal mask is a no-op for the last query: it attends to every position.
    attn = torch.softmax(_gather_rows(s_tab, score_rows).reshape(R, N, T, H), dim=2)
    vals = _gather_rows(v_tab, rows.reshape(R, N * T)).reshape(R, N, T, H, dh)
    z = (attn.unsqueeze(-1) * vals).sum(2).reshape(R, N, d)
    resid = _gather_rows(emb, rows[:, :, -1]) + torch.bmm(z, params["W_O"])  # (R, N, d) at '='
    hidden = torch.bmm(resid, params["W_in"]).relu_()  # (R, N, d_mlp)
    resid2 = resid + torch.bmm(hidden, params["W_out"])
    logits = torch.bmm(resid2, params["W_U"])  # (R, N, V)
    return dict(emb=emb, k_tab=k_tab, q_tab=q_tab, rows=rows, score_rows=score_rows, attn=attn,
                vals=vals, z=z, resid=resid, hidden=hidden, resid2=resid2, logits=logits)


@torch.no_grad()
def loss_and_grads(params: dict[str, Tensor], tokens: Tensor, labels: Tensor, mask: Tensor,
                   n_heads: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Per-run mean cross-entropy over masked examples, the logits, and the exact gradients.

    The backward pass is written out by hand: on a CPU it costs about half of what autograd
    spends on this many small ops, and the sparse table gradients become ``index_add_``.
    ``tests/test_model.py`` checks it against autograd on a plain nn.Module.

    Returns
    -------
    loss : (R,), logits : (R, N, V), grads : dict like ``params``
    """
    f = _forward(params, tokens, n_heads)
    R, N, T = tokens.shape
    V, d = params["W_E"].shape[1:]
    H, dh = n_heads, d // n_heads
    logits, hidden, resid, resid2 = f["logits"], f["hidden"], f["resid"], f["resid2"]
    t = lambda x: x.transpose(1, 2)  # noqa: E731

    logp = torch.log_softmax(logits, dim=-1)
    weight = mask.to(logits.dtype) / mask.sum(1, keepdim=True)  # (R, N): 1/n_r on real examples
    loss = -(logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1) * weight).sum(1)
    dlogits = logp.exp_()
    dlogits.scatter_add_(-1, labels.unsqueeze(-1), -torch.ones_like(labels, dtype=logits.dtype)[..., None])
    dlogits.mul_(weight.unsqueeze(-1))  # (R, N, V)

    g = {"W_U": torch.bmm(t(resid2), dlogits)}
    dresid2 = torch.bmm(dlogits, t(params["W_U"]))
    g["W_out"] = torch.bmm(t(hidden), dresid2)
    # One fused pass over the largest tensor instead of compare, cast and multiply.
    dhidden = torch.ops.aten.threshold_backward(torch.bmm(dresid2, t(params["W_out"])), hidden, 0.0)
    g["W_in"] = torch.bmm(t(resid), dhidden)
    dresid = torch.bmm(dhidden, t(params["W_in"])).add_(dresid2)  # (R, N, d)
    g["W_O"] = torch.bmm(t(f["z"]), dresid)
    dz = torch.bmm(dresid, t(params["W_O"])).reshape(R, N, 1, H, dh)

    attn, vals = f["attn"], f["vals"]
    dattn = (dz * vals).sum(-1)  # (R, N, T, H)
    dvals = attn.unsqueeze(-1) * dz  # (R, N, T, H, dh)
    dscores = attn * (dattn - (attn * dattn).sum(2, keepdim=True)) / math.sqrt(dh)

    offset = torch.arange(R, device=tokens.device).unsqueeze(1)
    ds_tab = _scatter_rows(dscores.reshape(R, N * T, H), f["score_rows"], offset, V * T * V)
    dv_tab = _scatter_rows(dvals.reshape(R, N * T, d), f["rows"].reshape(R, N * T), offset, T * V)
    demb = _scatter_rows(dresid, f["rows"][:, :, -1], offset, T * V)  # residual at '='

    ds_tab = ds_tab.reshape(R, V, T * V, H)
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


def _gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """``table[r, index[r, n]]`` for tables of shape (R, M, C) and index (R, N) -> (R, N, C)."""
    R, M, C = table.shape
    # One flat embedding lookup: much faster on CPU than torch.gather with an expanded index.
    offset = torch.arange(R, device=index.device).unsqueeze(1) * M
    return torch.nn.functional.embedding(index + offset, table.reshape(R * M, C))


def _scatter_rows(src: Tensor, index: Tensor, offset: Tensor, n_rows: int) -> Tensor:
    """Adjoint of :func:`_gather_rows`: sum (R, N, C) rows into a zero (R, n_rows, C) table."""
    R, _, C = src.shape
    out = torch.zeros(R * n_rows, C, dtype=src.dtype, device=src.device)
    out.index_add_(0, (index + offset * n_rows).reshape(-1), src.reshape(-1, C))
    return out.reshape(R, n_rows, C)
