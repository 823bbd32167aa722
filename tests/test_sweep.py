"""Chunk planning: every run once, balanced sizes within the cap, one split per chunk unless packed."""

from collections import Counter

import pytest

from grokcast.config import SweepConfig
from grokcast.sweep import plan_chunks


def _grid(seeds: int, split_seeds: list[int]) -> list:
    raw = SweepConfig.from_file("configs/paper.toml").to_dict()
    runs = []
    for ss in split_seeds:
        runs += SweepConfig.from_dict({**raw, "seeds": list(range(seeds)), "split_seed": ss}).runs()
    return runs


@pytest.mark.parametrize("max_runs", [1, 5, 6, 8, 12, 64])
def test_chunks_cover_every_run_once_and_never_mix_splits(max_runs):
    runs = _grid(seeds=3, split_seeds=[0, 1])  # 8 splits x 12 runs
    chunks = plan_chunks(runs, max_runs)
    assert Counter(r.run_id for c in chunks for r in c) == Counter(r.run_id for r in runs)
    assert all(len({r.split_key for r in c}) == 1 for c in chunks)
    assert all(1 <= len(c) <= max_runs for c in chunks)
    # As few chunks per split as the cap allows, their sizes differing by at most one.
    for key in {r.split_key for r in runs}:
        sizes = [len(c) for c in chunks if c[0].split_key == key]
        assert len(sizes) == -(-12 // max_runs)
        assert max(sizes) - min(sizes) <= 1


def test_twelve_runs_at_most_eight_split_six_and_six():
    chunks = plan_chunks(_grid(seeds=3, split_seeds=[0]), 8)
    assert [len(c) for c in chunks] == [6] * 8


def test_bad_cap_is_a_clear_error():
    with pytest.raises(ValueError, match="max_runs=0 is not allowed"):
        plan_chunks(_grid(seeds=1, split_seeds=[0]), 0)


@pytest.mark.parametrize("max_runs", [5, 20, 48, 4096])
def test_packed_chunks_cover_every_run_once_in_train_size_order(max_runs):
    """The GPU plan: chunks fill across splits, as few as the cap allows, neighbours by size."""
    runs = _grid(seeds=3, split_seeds=[0, 1])  # 96 runs, 8 splits
    chunks = plan_chunks(runs, max_runs, pack_splits=True)
    assert Counter(r.run_id for c in chunks for r in c) == Counter(r.run_id for r in runs)
    assert len(chunks) == -(-96 // max_runs)
    sizes = [len(c) for c in chunks]
    assert max(sizes) <= max_runs and max(sizes) - min(sizes) <= 1
    fracs = [r.train_frac for c in chunks for r in c]
    assert fracs == sorted(fracs)  # a chunk pads its smaller train sets up to its largest


def test_no_runs_left_means_no_chunks():  # a finished sweep resumed
    assert plan_chunks([], 8) == [] == plan_chunks([], 8, pack_splits=True)


def test_paper_grid_packs_into_one_ensemble_on_the_gpu_plan():
    runs = _grid(seeds=3, split_seeds=[0])
    assert [len(c) for c in plan_chunks(runs, 64, pack_splits=True)] == [48]
    assert [len(c) for c in plan_chunks(runs, 64)] == [12] * 4


def test_gpu_chunk_size_follows_free_memory_within_its_bounds(monkeypatch):
    """The CUDA sizing rule, run on the CPU with torch.cuda.mem_get_info stubbed."""
    import torch

    from grokcast.sweep import DEFAULT_CPU_CHUNK, default_chunk_size

    cfg = SweepConfig.from_file("configs/paper.toml")
    gib = 2**30
    sizes = {}
    for free in (0, 1 * gib, 8 * gib, 80 * gib, 4096 * gib):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None, f=free: (f, 80 * gib))
        sizes[free] = default_chunk_size(torch.device("cuda"), cfg)
    assert sizes[0] == 1  # never an empty ensemble
    assert sizes[1 * gib] < sizes[8 * gib] < sizes[80 * gib] <= 4096
    assert sizes[4096 * gib] == 4096  # capped
    assert default_chunk_size(torch.device("cpu"), cfg) == DEFAULT_CPU_CHUNK
