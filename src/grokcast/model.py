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
    W_E, W_pos = params["W_E"], params["W_pos"]
    R, N, T = tokens.shape
    V, d = W_E.shape[1:]
    H, dh = n_heads, d // n_heads
    # Every (position, token) embedding and its projections: tables of T*V rows per run.
    emb = (W_pos[:, :, None, :] + W_E[:, None, :, :]).reshape(R, T * V, d)
    k_tab = torch.bmm(emb, params["W_K"]).reshape(R, T * V, H, dh)
    v_tab = torch.bmm(emb, params["W_V"])  # (R, T*V, d)
    q_tab = torch.bmm(emb[:, (T - 1) * V:], params["W_Q"]).reshape(R, V, H, dh)  # last position
    # Score of every query token against every key row, per head: (R, V * T*V, H).
    s_tab = torch.einsum("rihc,rjhc->rijh", q_tab, k_tab).reshape(R, V * T * V, H) / math.sqrt(dh)
    rows = tokens + torch.arange(T, device=tokens.device) * V  # (R, N, T) rows of the tables
    # The causal mask is a no-op for the last query: it attends to every position.
    scores = _gather_rows(s_tab, (tokens[:, :, -1:] * (T * V) + rows).reshape(R, N * T))
    attn = torch.softmax(scores.reshape(R, N, T, H), dim=2)
    vals = _gather_rows(v_tab, rows.reshape(R, N * T)).reshape(R, N, T, H, dh)
    z = (attn.unsqueeze(-1) * vals).sum(2).reshape(R, N, d)
    resid = _gather_rows(emb, rows[:, :, -1]) + torch.bmm(z, params["W_O"])  # (R, N, d) at '='
    hidden = torch.relu(torch.bmm(resid, params["W_in"]))  # (R, N, d_mlp)
    resid = resid + torch.bmm(hidden, params["W_out"])
    return torch.bmm(resid, params["W_U"])  # (R, N, V)


def _gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """``table[r, index[r, n]]`` for tables of shape (R, M, C) and index (R, N) -> (R, N, C)."""
    R, M, C = table.shape
    # One flat embedding lookup: much faster on CPU than torch.gather with an expanded index.
    offset = torch.arange(R, device=index.device).unsqueeze(1) * M
    return torch.nn.functional.embedding(index + offset, table.reshape(R * M, C))
