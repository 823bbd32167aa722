"""A plain, single-run PyTorch implementation of the study's model: the oracle for the ensemble.

Written the straightforward way (nn.Module, nn.Linear, all three positions, an explicit
causal mask), independent of grokcast.model except for copying weights in.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PlainTransformer(nn.Module):
    def __init__(self, p: int, d_model: int = 64, n_heads: int = 4, d_mlp: int = 256) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.embed = nn.Embedding(p + 1, d_model)
        self.pos = nn.Parameter(torch.randn(3, d_model))
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.o = nn.Linear(d_model, d_model, bias=False)
        self.mlp_in = nn.Linear(d_model, d_mlp, bias=False)
        self.mlp_out = nn.Linear(d_mlp, d_model, bias=False)
        self.unembed = nn.Linear(d_model, p + 1, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at every position, shape (N, 3, p+1)."""
        n, t = tokens.shape
        x = self.embed(tokens) + self.pos[:t]
        h, dh = self.n_heads, x.shape[-1] // self.n_heads
        q, k, v = (f(x).reshape(n, t, h, dh).transpose(1, 2) for f in (self.q, self.k, self.v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=tokens.device), diagonal=1)
        att = scores.masked_fill(causal, float("-inf")).softmax(-1)
        z = (att @ v).transpose(1, 2).reshape(n, t, -1)
        x = x + self.o(z)
        x = x + self.mlp_out(torch.relu(self.mlp_in(x)))
        return self.unembed(x)

    @torch.no_grad()
    def load_ensemble_run(self, params: dict[str, torch.Tensor], r: int) -> PlainTransformer:
        """Copy run r of an ensemble (input-major weights) into this module."""
        self.embed.weight.copy_(params["W_E"][r])
        self.pos.copy_(params["W_pos"][r])
        for lin, name in ((self.q, "W_Q"), (self.k, "W_K"), (self.v, "W_V"), (self.o, "W_O"),
                          (self.mlp_in, "W_in"), (self.mlp_out, "W_out"), (self.unembed, "W_U")):
            lin.weight.copy_(params[name][r].T)
        return self
