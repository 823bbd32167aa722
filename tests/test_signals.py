"""Signal functions against independent references (torch.linalg, closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grokcast import signals as S


def test_effective_rank_closed_forms():
    rank1 = torch.outer(torch.arange(1.0, 6.0), torch.arange(1.0, 4.0))
    eye = torch.eye(7)
    diag = torch.diag(torch.tensor([3.0, 1.0, 0.0]))  # p = (3/4, 1/4, 0)
    got = S.effective_rank(torch.stack([rank1[:3, :3], eye[:3, :3] * 2, diag]))
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    torch.testing.assert_close(got, torch.tensor([1.0, 3.0, math.exp(entropy)]), atol=1e-4, rtol=0)
    assert abs(S.effective_rank(eye[None])[0].item() - 7) < 1e-4
    assert S.effective_rank(torch.zeros(1, 4, 3)).tolist() == [1.0]  # the documented convention


def test_effective_rank_of_a_diverged_matrix_is_nan_and_leaves_the_others_alone():
    mats = torch.stack([torch.eye(3), torch.eye(3), torch.eye(3)])
    mats[1, 0, 0], mats[2, 1, 2] = float("inf"), float("nan")
    got = S.effective_rank(mats)
    assert abs(got[0].item() - 3) < 1e-4 and got[1:].isnan().all()


@pytest.mark.parametrize("shape", [(6, 24, 64), (6, 64, 24), (5, 9, 9)])
def test_effective_rank_against_numpy_svd(shape):
    """The Gram-eigenvalue route against a float64 SVD, on full-rank and nearly rank-3 matrices
    (whose small singular values the squaring would lose in float32)."""
    g = torch.Generator().manual_seed(1)
    R, m, n = shape
    full = torch.randn(shape, generator=g)
    low = torch.randn(R, m, 3, generator=g) @ torch.randn(R, 3, n, generator=g)
    low += 1e-3 * torch.randn(shape, generator=g)
    for mats in (full, low):
        s = np.linalg.svd(mats.double().numpy(), compute_uv=False)
        prob = s / s.sum(-1, keepdims=True)
        want = np.exp(-(prob * np.log(prob)).sum(-1))
        np.testing.assert_allclose(S.effective_rank(mats).numpy(), want, rtol=2e-6)
        np.testing.assert_allclose(S.effective_rank(mats.double()).numpy(), want, rtol=1e-9)


def test_norms_against_linalg():
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(3, 4, 5, generator=g), torch.randn(3, 7, generator=g)]
    b = [torch.randn(3, 4, 5, generator=g), torch.randn(3, 7, generator=g)]
    flat_a = torch.cat([t.reshape(3, -1) for t in a], 1)
    flat_b = torch.cat([t.reshape(3, -1) for t in b], 1)
    torch.testing.assert_close(S.global_norm(a), torch.linalg.vector_norm(flat_a, dim=1))
    torch.testing.assert_close(S.cosine(a, b), torch.nn.functional.cosine_similarity(flat_a, flat_b))


def test_fit_stats_on_hand_made_logits():
    logits = torch.tensor([[[2.0, 0.5, -1.0],    # label 0: margin 2 - 0.5 = 1.5, correct
                            [0.0, 1.0, 3.0],     # label 1: margin 1 - 3 = -2, wrong
                            [9.0, 9.0, 9.0]]])   # padded example, masked out
    labels = torch.tensor([[0, 1, 2]])
    mask = torch.tensor([[True, True, False]])
    out = S.fit_stats(logits, labels, mask)
    assert out["margin"].item() == -0.25
    assert out["acc"].item() == 0.5
    ce = torch.nn.functional.cross_entropy(logits[0, :2], labels[0, :2])
    torch.testing.assert_close(out["loss"][0], ce)


@pytest.mark.parametrize("n", [370, 317, 265, 212])  # the paper grid's val set sizes
@pytest.mark.parametrize("threshold", [0.9, 0.99, 0.5])
def test_reaches_agrees_with_exact_fractions(n, threshold):
    """Every accuracy k/n as fit_stats logs it (float32) against the exact comparison."""
    from fractions import Fraction

    k = torch.arange(n + 1)
    correct = (torch.arange(n)[None, :] < k[:, None]).float()  # (n+1, n): row k has k ones
    acc = S.masked_mean(correct, torch.ones_like(correct, dtype=torch.bool)).numpy()
    exact = np.array([Fraction(int(j), n) >= Fraction(str(threshold)) for j in k])
    assert (S.reaches(acc, threshold) == exact).all()
    assert S.reaches(np.nan, threshold) == np.False_
    if n == 370 and threshold == 0.9:  # the case that float64 comparison gets wrong
        assert not acc[333].astype(np.float64) >= 0.9 and S.reaches(acc[333], 0.9)


def test_half_precision_inputs_are_measured_in_float32():
    """A bf16 model's logits and weights: the signals are those of the same values in
    float32 (a bf16 mean over hundreds of 0/1 accuracies is off in the third digit, and the
    CPU has no bf16 SVD)."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 317, 24, generator=gen).bfloat16()
    labels = torch.randint(0, 24, (1, 317), generator=gen)
    mask = torch.ones(1, 317, dtype=torch.bool)
    half, full = S.fit_stats(logits, labels, mask), S.fit_stats(logits.float(), labels, mask)
    for key in ("loss", "acc", "margin"):
        assert half[key].dtype == torch.float32 and torch.equal(half[key], full[key]), key
    w = torch.randn(2, 24, 16, generator=gen).bfloat16()
    assert torch.equal(S.effective_rank(w), S.effective_rank(w.float()))
    assert S.effective_rank(w.double()).dtype == torch.float64  # float64 stays float64
    ws = [w, torch.randn(2, 5, generator=gen).bfloat16()]
    assert torch.equal(S.global_norm(ws), S.global_norm([x.float() for x in ws]))
    vs = [torch.randn(2, 24, 16, generator=gen).bfloat16(), torch.randn(2, 5, generator=gen).bfloat16()]
    assert torch.equal(S.cosine(ws, vs), S.cosine([x.float() for x in ws], [x.float() for x in vs]))


def test_first_step_reaching_against_a_plain_loop():
    """Rows of runs: the first step whose accuracy, as exact fractions k/n rounded to float32
    the way the trainer logs them, reaches the threshold (333/370 reaches 0.9); NaN never does."""
    steps = np.array([0, 1, 2, 5, 10])
    acc = np.array([[0.1, 0.5, 0.95, 0.2, 0.99],
                    [0.1, 0.2, 0.3, 0.4, 0.5],
                    [np.float32(333 / 370), 1.0, 1.0, 1.0, 1.0],
                    [0.1, np.nan, np.nan, np.nan, np.nan],
                    [0.0, 0.0, 0.0, np.float32(0.9), np.nan]])
    for threshold in (0.9, 0.99, 0.3):
        want = []
        for row in acc:
            hits = [s for s, a in zip(steps, row) if not math.isnan(a)
                    and np.float32(a) >= np.float32(threshold)]
            want.append(hits[0] if hits else -1)
        got = S.first_step_reaching(steps, acc, threshold)
        assert got.tolist() == want and got.dtype == np.int64, threshold
    assert S.first_step_reaching(steps, acc[0], 0.9) == 2  # one run: a scalar
