"""The modular-addition task: every pair (a, b) as input [a, b, =] with label (a + b) mod p."""

from __future__ import annotations

import numpy as np
import torch

from grokcast.config import n_train_examples

SEQ_LEN = 3  # [a, b, =]


def vocab_size(p: int) -> int:
    """Tokens 0..p-1 are numbers; token p is '='."""
    return p + 1


def all_examples(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every input of the task, in (a, b) row-major order.

    Returns
    -------
    tokens : LongTensor of shape (p*p, 3)
    labels : LongTensor of shape (p*p,)
    """
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    tokens = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    return tokens, (a + b) % p


def split_indices(p: int, train_frac: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint train/val indices into :func:`all_examples`, fixed by (p, train_frac, split_seed).

    The split has its own seed, separate from the run seed, so every run of a sweep
    with the same train fraction sees the same examples.
    """
    perm = np.random.default_rng(split_seed).permutation(p * p)
    n_train = n_train_examples(p, train_frac)
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])
