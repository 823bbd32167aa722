"""The task's examples and splits against plain Python: every other test reuses these
functions, so a wrong label or a leaking split would pass unnoticed there."""

from __future__ import annotations

import numpy as np
import pytest

from grokcast.data import all_examples, n_train_examples, split_indices, vocab_size


@pytest.mark.parametrize("p", [2, 5, 23])
def test_every_pair_once_with_its_sum_mod_p(p):
    tokens, labels = all_examples(p)
    rows = [tuple(t) for t in tokens.tolist()]
    assert sorted(rows) == [(a, b, p) for a in range(p) for b in range(p)]  # '=' is token p
    assert labels.tolist() == [(a + b) % p for a, b, _ in rows]
    assert vocab_size(p) == p + 1


@pytest.mark.parametrize("p, frac, n_train", [(23, 0.3, 159), (23, 0.4, 212), (23, 0.5, 264),
                                              (23, 0.6, 317), (5, 0.5, 12), (7, 0.5, 24)])
def test_train_size_is_the_fraction_of_all_pairs_rounded_half_to_even(p, frac, n_train):
    # 0.3 * 529 = 158.7 -> 159 (not truncated to 158); 264.5 -> 264, 12.5 -> 12, 24.5 -> 24.
    assert n_train_examples(p, frac) == n_train
    train, val = split_indices(p, frac, split_seed=0)
    assert len(train) == n_train and len(val) == p * p - n_train


@pytest.mark.parametrize("split_seed", [0, 1, 7])
def test_split_is_disjoint_covers_every_pair_and_depends_only_on_its_seed(split_seed):
    train, val = split_indices(23, 0.4, split_seed)
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(23 * 23))
    again, _ = split_indices(23, 0.4, split_seed)
    assert again.tolist() == train.tolist()
    other, _ = split_indices(23, 0.4, split_seed + 1)
    assert other.tolist() != train.tolist()
    # A larger fraction with the same seed extends the smaller one's train set (one permutation).
    larger, _ = split_indices(23, 0.6, split_seed)
    assert set(train.tolist()) <= set(larger.tolist())


def test_the_config_checks_the_split_size_the_data_draws():
    """Was: round(f * p**2) in the config's check, round(f * p * p) in the split, which round
    some fractions differently: a run with no train (or no val) example was accepted and
    trained on NaN losses, and a run the split gives one example was refused."""
    from grokcast.config import ConfigError, RunConfig

    for p, frac in ((13, 0.002958579881656805), (10, 0.9949999999999999)):
        assert n_train_examples(p, frac) in (0, p * p)
        with pytest.raises(ConfigError, match="a fraction leaving at least one train and one val"):
            RunConfig(p=p, train_frac=frac)
    frac = 0.010204081632653062
    assert len(split_indices(7, frac, 0)[0]) == 1 and RunConfig(p=7, train_frac=frac).p == 7


@pytest.mark.parametrize("p, frac, split_seed", [(23, 0.3, 0), (23, 0.5, 7), (5, 0.5, 1)])
def test_split_is_the_first_n_train_of_numpys_permutation_in_row_major_order(p, frac, split_seed):
    """The draw every stored sweep and the paper's runs were split by, spelled out: numpy's
    default_rng(split_seed).permutation of the p*p pairs; the first n_train train, the rest
    val, each in all_examples' (a, b) row-major order. A draw from another stream (the seed
    shifted) or the same sets in permuted order (which reorders every sum of the train loss)
    passed the tests above: they check the sets' properties, not which sets (mutation testing)."""
    perm = np.random.default_rng(split_seed).permutation(p * p).tolist()
    n = n_train_examples(p, frac)
    train, val = split_indices(p, frac, split_seed)
    assert train.tolist() == sorted(perm[:n]) and val.tolist() == sorted(perm[n:])
    # Spelled as pairs: train row i is the pair (i // p, i % p) of all_examples.
    tokens, _ = all_examples(p)
    assert [tuple(t[:2]) for t in tokens[train].tolist()] == sorted((i // p, i % p) for i in perm[:n])

