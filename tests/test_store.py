"""store.run_frame: one row per run of an EnsembleLog, checked against a plain loop."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grokcast.config import LogConfig, RunConfig
from grokcast.signals import SIGNAL_NAMES
from grokcast.store import GROK_THRESHOLDS, RUN_COLUMNS, log_frame, run_frame
from grokcast.train import EnsembleLog

COL = {n: k for k, n in enumerate(SIGNAL_NAMES)}
STEPS = np.array([0, 1, 2, 3, 4, 5, 6, 8, 10])
AT_09 = float(np.float32(333) / np.float32(370))  # 0.89999998: float32(0.9), below float64 0.9
BELOW_09 = float(np.nextafter(np.float32(AT_09), np.float32(0)))  # the next float32 down


def _ensemble() -> EnsembleLog:
    """Five runs with hand-made val acc curves.

    r0 finished: rises past 0.9 at step 2, falls back, rises again to 1.0 at step 8.
    r1 diverged: train loss inf at step 5 and NaN after, val acc still logged (reaches 0.95).
    r2 stopped at step 4 by a hook: every signal NaN afterwards (train loss included); it had
       reached 0.92 at step 3.
    r3 finished: reaches exactly 333/370 (float32(0.9)) at step 6, the max.
    r4 finished: peaks one float32 step below that: never reaches 0.9.
    r5 diverged: train loss +inf (not NaN) at its last two rows only.
    """
    runs = [RunConfig(p=23, seed=s, n_steps=10, log=LogConfig(dense_until=7, every=2))
            for s in range(6)]
    assert RunConfig(n_steps=10, log=LogConfig(dense_until=7, every=2)).log.steps(10) == \
        STEPS.tolist()
    R, S = len(runs), len(STEPS)
    rng = np.random.default_rng(0)
    values = rng.uniform(0.1, 2.0, size=(R, S, len(SIGNAL_NAMES)))
    acc = np.array([
        [0.01, 0.5, 0.93, 0.95, 0.6, 0.4, 0.97, 1.0, 0.98],
        [0.01, 0.3, 0.6, 0.95, 0.7, 0.2, 0.1, 0.05, 0.0],
        [0.01, 0.4, 0.8, 0.92, 0.85, np.nan, np.nan, np.nan, np.nan],
        [0.01, 0.2, 0.5, 0.7, 0.8, 0.85, AT_09, 0.88, 0.89],
        [0.01, 0.2, 0.5, 0.7, 0.8, 0.85, BELOW_09, 0.88, 0.89],
        [0.01, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.91],
    ])
    values[:, :, COL["val_acc"]] = acc
    values[1, 5:, COL["train_loss"]] = np.nan
    values[5, -2:, COL["train_loss"]] = np.inf
    values[2, 5:, :] = np.nan  # stopped after its step-4 row
    values[:, -1, [COL["update_norm"], COL["update_cos"]]] = np.nan
    return EnsembleLog(runs=runs, steps=STEPS, values=values,
                       stopped_at=np.array([-1, -1, 4, -1, -1, -1]))


def _reference(log: EnsembleLog) -> list[dict]:
    """status, max_val_acc, first steps and final values by a plain loop over the rows."""
    out = []
    for r, cfg in enumerate(log.runs):
        rows = [(int(step), log.values[r, s]) for s, step in enumerate(log.steps)
                if not math.isnan(log.values[r, s, COL["val_acc"]])]
        diverged = False
        for _, v in rows:
            if not math.isfinite(v[COL["train_loss"]]):
                diverged = True
        if diverged:
            status = "diverged"
        elif log.stopped_at[r] >= 0:
            status = "stopped"
        else:
            status = "finished"
        best = None
        for _, v in rows:
            if best is None or v[COL["val_acc"]] > best:
                best = v[COL["val_acc"]]
        first = {}
        for th in GROK_THRESHOLDS:
            first[th] = -1
            for step, v in rows:  # accuracies are logged in float32: compare the float32 values
                if Fraction(float(np.float32(v[COL["val_acc"]]))) >= Fraction(float(np.float32(th))):
                    first[th] = step
                    break
        last = rows[-1][1]
        nan_logits = math.isnan(last[COL["train_loss"]])  # accuracies of NaN logits mean nothing
        out.append({"run_id": cfg.run_id, "status": status,
                    "max_val_acc": math.nan if diverged else float(best),
                    **{f"step_val_acc_{th}": first[th] for th in GROK_THRESHOLDS},
                    "final_train_loss": last[COL["train_loss"]],
                    "final_val_loss": last[COL["val_loss"]],
                    "final_train_acc": math.nan if nan_logits else last[COL["train_acc"]],
                    "final_val_acc": math.nan if nan_logits else last[COL["val_acc"]]})
    return out


def test_run_frame_matches_a_plain_loop():
    log = _ensemble()
    df = run_frame(log, "chunk-00003", 12.5)
    assert list(df.columns) == list(RUN_COLUMNS) and len(df) == 6
    want = _reference(log)
    for (_, got), ref in zip(df.iterrows(), want):
        for key, value in ref.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(got[key]), (ref["run_id"], key)
            else:
                assert got[key] == value, (ref["run_id"], key, got[key], value)
        assert got["chunk"] == "chunk-00003" and got["chunk_seconds"] == 12.5
    # The hand-worked outcomes the loop must agree with.
    assert df["status"].tolist() == ["finished", "diverged", "stopped", "finished", "finished",
                                     "diverged"]
    assert df["step_val_acc_0.9"].tolist() == [2, 3, 3, 6, -1, 10]
    assert df["step_val_acc_0.99"].tolist() == [8, -1, -1, -1, -1, -1]
    assert df["max_val_acc"].iloc[[0, 2, 3, 4]].tolist() == [1.0, 0.92, AT_09, BELOW_09]
    assert df["max_val_acc"].iloc[[1, 5]].isna().all()
    assert df["final_val_acc"].fillna(-1).tolist() == [0.98, -1, 0.85, 0.89, 0.89, 0.91]
    assert df.loc[2, "final_train_loss"] == log.values[2, 4, COL["train_loss"]]  # its last row
    assert np.isnan(df.loc[1, "final_train_loss"]) and df.loc[5, "final_train_loss"] == np.inf


def test_log_frame_puts_each_runs_rows_under_its_own_id_and_step():
    log = _ensemble()
    df = log_frame(log)
    assert list(df.columns) == ["run_id", "step", *SIGNAL_NAMES] and len(df) == 6 * len(STEPS)
    for r, run in enumerate(log.runs):  # a plain loop over the (run, step, signal) cube
        for k, step in enumerate(STEPS):
            row = df[(df["run_id"] == run.run_id) & (df["step"] == step)]
            assert len(row) == 1
            np.testing.assert_array_equal(row[list(SIGNAL_NAMES)].to_numpy()[0], log.values[r, k])


@pytest.mark.parametrize(("stopped_at", "max_acc", "final_acc"), [(0, 0.01, 0.01),
                                                                  (4, 0.92, 0.85)])
def test_run_frame_nan_rows_after_a_stop_are_not_divergence(stopped_at, max_acc, final_acc):
    """Rows after a stop are NaN everywhere (train loss too): the run is stopped, not diverged,
    even when the hook stopped it at step 0."""
    log = _ensemble()
    values = log.values[2:3].copy()
    values[0, log.steps > stopped_at] = np.nan
    one = EnsembleLog(runs=log.runs[2:3], steps=log.steps, values=values,
                      stopped_at=np.array([stopped_at]))
    row = run_frame(one, "c", 1.0).iloc[0]
    assert row["status"] == "stopped"
    assert row["max_val_acc"] == max_acc
    assert row["final_val_acc"] == final_acc


# ---------------------------------------------------------------------------- damaged stores

def _sweep(tmp_path) -> tuple:
    """A finished 4-run sweep in 2 chunks of 2 (30 steps each: a second to train)."""
    from grokcast.config import SweepConfig
    from grokcast.store import SweepStore
    from grokcast.sweep import run_sweep

    cfg = SweepConfig(name="tiny", train_fracs=(0.3, 0.6), weight_decays=(1.0,), seeds=(0, 1),
                      n_steps=30, log=LogConfig(dense_until=10, every=10))
    out = tmp_path / "s"
    run_sweep(cfg, out, device="cpu", chunk_size=2, progress=False)
    return cfg, out, SweepStore(out)


def test_damaged_log_chunks_are_named_with_the_remedy(tmp_path):
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    store.check_finished()  # whole: passes
    log1 = out / "log" / "chunk-00001.parquet"
    whole = log1.read_bytes()
    remedy = (f"delete '{out}/log/chunk-00001.parquet' and '{out}/runs/chunk-00001.parquet', then rerun "
              "grokcast sweep")
    log1.write_bytes(whole[:1000])  # truncated: no footer
    for check in (store.check_finished, lambda: run_sweep(cfg, out, device="cpu", progress=False)):
        with pytest.raises(StoreError, match="chunk-00001.parquet' is damaged") as err:
            check()
        assert remedy in str(err.value)
    log1.unlink()  # deleted: a resumed sweep used to call its runs finished
    # Only its runs file is left to delete (the remedy also named the missing log file).
    with pytest.raises(StoreError, match=r"chunk-00001.parquet' is damaged \(missing\): delete "
                                         r"'[^']*runs/chunk-00001.parquet', then rerun"):
        run_sweep(cfg, out, device="cpu", progress=False)
    # Whole but short: one run's rows of the chunk's two (steps 0-9, 10, 20, 30).
    pd.read_parquet(pd.io.common.BytesIO(whole)).iloc[:13].to_parquet(log1, index=False)
    with pytest.raises(StoreError, match="13 rows, expected 2 runs x 13 logged steps"):
        store.verify()
    pd.concat([pd.read_parquet(pd.io.common.BytesIO(whole))] * 2).to_parquet(log1, index=False)
    with pytest.raises(StoreError, match="52 rows, expected 2 runs x 13 logged steps"):
        store.verify()  # rows twice over: too many is as wrong as too few
    # Every row, a signal's column gone (an older build's chunk, an edit): it was read as NaN
    # and blamed on the runs diverging. And a runs file without its outcome column.
    pd.read_parquet(pd.io.common.BytesIO(whole)).drop(columns="val_loss").to_parquet(log1, index=False)
    for check in (store.verify, lambda: run_sweep(cfg, out, device="cpu", progress=False)):
        with pytest.raises(StoreError, match=r"chunk-00001.parquet' is damaged \(lacks column\(s\) "
                                             r"val_loss\): delete"):
            check()
    log1.write_bytes(whole)
    runs1 = out / "runs" / "chunk-00001.parquet"
    runs_whole = runs1.read_bytes()
    pd.read_parquet(runs1).drop(columns=["max_val_acc", "status"]).to_parquet(runs1, index=False)
    with pytest.raises(StoreError, match=r"runs/chunk-00001.parquet' is damaged \(lacks column\(s\) "
                                         r"status, max_val_acc\)"):
        store.check_finished()
    runs1.write_bytes(runs_whole)
    # Footer whole, a page header zeroed: it passed the resume's check and analyze said only
    # "Couldn't deserialize thrift ..." (two lines), naming no file.
    body = bytearray(whole)
    body[4:204] = bytes(200)
    log1.write_bytes(body)
    store.verify()  # footers only
    with pytest.raises(StoreError, match=r"chunk-00001.parquet' is damaged \(Couldn't deserialize "
                                         r"thrift.*\): delete") as err:
        store.log()
    assert "\n" not in str(err.value) and remedy in str(err.value)
    # An intact file that fails to read (here: a column it lacks; on a loaded machine, threads
    # or memory) is not called damaged: deleting it, as the remedy says, would lose good runs.
    # (The reader is asked for the column directly: SweepStore.log refuses it by name first.)
    log1.write_bytes(whole)
    with pytest.raises(Exception) as err:
        store._read("log", ["run_id", "no_such_column"])
    assert "damaged" not in str(err.value) and "no_such_column" in str(err.value)


def test_a_missing_log_file_is_named_by_the_reader(tmp_path):
    """Was: with a finished chunk's log file gone (its runs file kept), SweepStore.log()
    returned the other chunks' rows alone, while runs() listed every run: a table short of
    runs, read without an error, by anyone reading the store without check_finished."""
    from grokcast.store import StoreError

    cfg, out, store = _sweep(tmp_path)
    (out / "log" / "chunk-00001.parquet").unlink()
    assert len(store.runs()) == 4
    with pytest.raises(StoreError, match=r"log/chunk-00001.parquet' is damaged \(missing\): "
                                         r"delete '[^']*runs/chunk-00001.parquet', then rerun"):
        store.log()
    (out / "runs" / "chunk-00001.parquet").unlink()  # as the remedy says: two runs left
    assert store.log()["run_id"].nunique() == 2


def test_a_chunk_whose_footer_renames_a_column_is_named_by_the_reader(tmp_path):
    """Was: a flipped bit in a log chunk's footer renamed a column ('train_loss' -> 'train_losc'),
    and SweepStore.log() read that chunk's train losses as NaN, with an extra column."""
    from grokcast.store import StoreError

    cfg, out, store = _sweep(tmp_path)
    log1 = out / "log" / "chunk-00001.parquet"
    pd.read_parquet(log1).rename(columns={"train_loss": "train_losc"}).to_parquet(log1, index=False)
    for check in (store.log, store.verify):
        with pytest.raises(StoreError, match=r"chunk-00001.parquet' is damaged \(lacks column\(s\) "
                                             r"train_loss\): delete"):
            check()


def test_a_sweep_logged_with_fewer_signals_is_not_called_damaged(tmp_path):
    """A sweep trained before a signal was added to grokcast.signals.SIGNAL_NAMES lacks it in
    every chunk. Was: '... chunk-00000.parquet is damaged: delete it and rerun', one chunk at a
    time, for chunks that are whole."""
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    for path in (out / "log").glob("chunk-*.parquet"):  # as a grokcast without update_cos wrote it
        pd.read_parquet(path).drop(columns="update_cos").to_parquet(path, index=False)
    for check in (store.verify, store.log, store.check_finished,
                  lambda: run_sweep(cfg, out, device="cpu", progress=False)):
        with pytest.raises(StoreError, match=r"lacks signal\(s\) update_cos in every chunk: it was "
                                             r"trained by a grokcast that did not log them") as err:
            check()
        assert "damaged" not in str(err.value) and "new --out" in str(err.value)


def test_a_flipped_bit_in_a_stored_chunk_is_named_not_read_as_numbers(tmp_path):
    """Was: 12 of 15 single-byte flips in a log chunk's data read back as other numbers, with
    no error from a resume, check_finished or the reader. Its pages carry checksums now."""
    from grokcast.store import StoreError

    cfg, out, store = _sweep(tmp_path)
    log1 = out / "log" / "chunk-00001.parquet"
    whole = log1.read_bytes()
    expected = store.log()
    outcomes = []
    for at in range(200, len(whole) // 2, 97):  # the data pages; the footer is at the end
        body = bytearray(whole)
        body[at] ^= 0x10
        log1.write_bytes(body)
        try:
            outcomes.append("same" if store.log().equals(expected) else "wrong")
        except StoreError as err:
            assert "chunk-00001.parquet' is damaged" in str(err)
            outcomes.append("named")
    assert "wrong" not in outcomes and outcomes.count("named") > len(outcomes) // 2


def test_a_file_of_another_name_among_the_chunks_is_named_before_training(tmp_path):
    """Was: a resumed sweep trained its chunks, then failed on int('a') naming no file."""
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    for sub in ("log", "runs"):
        (out / sub / "chunk-00001.parquet").rename(out / sub / "chunk-a.parquet")
    calls = []
    with pytest.raises(StoreError, match=r"chunk-a.parquet' is not a file grokcast writes \(its "
                                         r"chunks are chunk-NNNNN.parquet\): move it out"):
        run_sweep(cfg, out, device="cpu", progress=False,
                  train_fn=lambda *a, **k: calls.append(a))
    assert calls == []


def test_resume_removes_uncommitted_log_chunks_and_edited_grids_are_refused(tmp_path):
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    (out / "runs" / "chunk-00001.parquet").unlink()  # killed between its two writes
    assert len(pd.read_parquet(out / "log")) == 4 * 13  # what a reader of the whole table sees
    result = run_sweep(cfg, out, device="cpu", progress=False)
    assert result.n_trained == 2 and result.n_skipped == 2
    log = pd.read_parquet(out / "log")
    assert len(log) == 4 * 13 and not log.duplicated(["run_id", "step"]).any()
    # sweep.json edited to a smaller grid: the stored runs outside it are not analysed silently.
    raw = json.loads(store.config_path.read_text())
    raw["config"]["seeds"] = [0]
    store.config_path.write_text(json.dumps(raw))
    with pytest.raises(StoreError, match=r"stores 2 run\(s\) outside the grid of its sweep.json"):
        store.check_finished()
    with pytest.raises(ValueError, match=r"partial='no' is not allowed: expected True or False"):
        store.check_finished(partial="no")  # a truthy string passed an unfinished sweep
    del raw["config"]  # the KeyError's text alone: "is corrupt: 'config'"
    store.config_path.write_text(json.dumps(raw))
    with pytest.raises(StoreError, match=r"sweep.json' is corrupt: it lacks the key 'config'"):
        store.read_config()
    store.config_path.write_bytes(b"\xff\xfe")  # was the codec's error, naming no file
    with pytest.raises(StoreError, match=r"sweep.json' is corrupt: 'utf-8' codec can't decode"):
        store.read_config()


def test_a_truncated_sweep_json_is_named_with_what_to_do(tmp_path):
    """Was: "sweep.json' is corrupt: Expecting value: line 6 column 20 (char 100)", and no
    word of what to do, unlike a damaged chunk or stop.json."""
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    whole = store.config_path.read_bytes()
    store.config_path.write_bytes(whole[:100])
    for check in (store.read_config, lambda: run_sweep(cfg, out, device="cpu", progress=False)):
        with pytest.raises(StoreError, match=r"sweep.json' is corrupt: Expecting .*: restore it, "
                                             r"or train into a new --out"):
            check()
    store.config_path.write_bytes(whole)  # restored: resumes
    assert run_sweep(cfg, out, device="cpu", progress=False).n_skipped == 4


def test_rerunning_after_deleting_a_damaged_first_chunk_adds_a_chunk(tmp_path):
    """As the damaged-chunk message says: delete chunk 0's two files and rerun. Its runs train
    into a new chunk; the stored ones are left as they were."""
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    kept = {t: (out / t / "chunk-00001.parquet").read_bytes() for t in ("log", "runs")}
    for table in ("log", "runs"):
        (out / table / "chunk-00000.parquet").unlink()
    assert run_sweep(cfg, out, device="cpu", progress=False).n_trained == 2
    assert {t: (out / t / "chunk-00001.parquet").read_bytes() for t in ("log", "runs")} == kept
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["chunk-00001.parquet",
                                                                 "chunk-00002.parquet"]
    store.check_finished()
    assert sorted(store.runs()["run_id"]) == sorted(r.run_id for r in cfg.runs())


def test_a_rule_recorded_before_any_run_was_stored_goes_with_a_resume_without_it(tmp_path):
    """A sweep killed before its first chunk was stored, resumed without its stop rule: the
    runs it trains are not stopped, so the rule's record must go, and a later resume with
    the rule be refused (mixed runs)."""
    from grokcast.store import StoreError, SweepStore
    from grokcast.sweep import run_sweep

    cfg, _, _ = _sweep(tmp_path)
    store = SweepStore(tmp_path / "fresh")
    store.resume(cfg, {"rule": "a"})
    assert store.stop_path.is_file()
    run_sweep(cfg, store.root, device="cpu", progress=False)
    assert not store.stop_path.exists()
    with pytest.raises(StoreError, match="resume with the same"):
        store.resume(cfg, {"rule": "a"})


def test_what_a_kill_mid_write_leaves_is_resumed_and_cleaned(tmp_path):
    """A kill during the first write of sweep.json left its temp file, and the directory was
    refused for ever ("not empty and holds no sweep.json"); a kill during a chunk's write left
    a temp file as large as the chunk, kept after the resume."""
    from grokcast.store import LOCK_NAME
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / LOCK_NAME).write_text("")
    (fresh / ".sweep.json.k1ll3d.tmp").write_text('{"grokcast_ver')
    assert run_sweep(cfg, fresh, device="cpu", progress=False).n_trained == 4
    assert sorted(p.name for p in fresh.iterdir()) == [LOCK_NAME, "log", "runs", "sweep.json"]
    # Cut short in a chunk's two writes: the temp files go with the resume.
    (out / "runs" / "chunk-00001.parquet").unlink()
    shutil.copy(out / "log" / "chunk-00001.parquet", out / "runs" / ".chunk-00001.parquet.x1.tmp")
    (out / "log" / ".chunk-00002.parquet.x2.tmp").write_bytes(b"PAR1")
    assert run_sweep(cfg, out, device="cpu", progress=False).n_trained == 2
    assert not list(out.rglob("*.tmp"))


def test_a_refused_directory_gets_no_lock_file(tmp_path):
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep

    cfg, _, _ = _sweep(tmp_path)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    (notes / ".sweep.json.x.tmp").write_text("")  # a name like ours does not make it ours
    with pytest.raises(StoreError, match="is not empty and holds no sweep.json"):
        run_sweep(cfg, notes, device="cpu", progress=False)
    assert sorted(p.name for p in notes.iterdir()) == [".sweep.json.x.tmp", "notes.txt"]


def test_a_file_for_the_directory_and_a_sweep_without_runs_are_named(tmp_path):
    from grokcast.store import StoreError, SweepStore

    cfg, _, _ = _sweep(tmp_path)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(StoreError, match=rf"^'{tmp_path / 'file'}' exists and is not a directory$"):
        SweepStore(tmp_path / "file").init(cfg)
    assert (tmp_path / "file").read_text() == "mine"
    empty = SweepStore(tmp_path / "empty")
    empty.init(cfg)  # sweep.json written, no chunk trained yet
    for read in (empty.log, empty.runs):
        with pytest.raises(StoreError, match=rf"^'{tmp_path / 'empty'}' holds no finished runs yet$"):
            read()


def test_a_second_writer_is_refused_and_runs_stored_twice_are_named(tmp_path):
    """Two sweeps into one --out (a requeued job while the first still runs) trained the same
    runs twice; resume and check_finished accepted the result, analyze refused it later."""
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    with store.lock():  # as a sweep still running holds it (another open file: flock conflicts)
        with pytest.raises(StoreError, match="is being written by another sweep"):
            run_sweep(cfg, out, device="cpu", progress=False)
    assert run_sweep(cfg, out, device="cpu", progress=False).n_skipped == 4  # released
    (tmp_path / "a_file").write_text("")
    with pytest.raises(StoreError, match="exists and is not a directory"):  # not FileExistsError
        run_sweep(cfg, tmp_path / "a_file", device="cpu", progress=False)
    # What two writers leave behind: the same runs in two chunks.
    shutil.copy(out / "log" / "chunk-00000.parquet", out / "log" / "chunk-00002.parquet")
    runs = pd.read_parquet(out / "runs" / "chunk-00000.parquet")
    runs.assign(chunk="chunk-00002").to_parquet(out / "runs" / "chunk-00002.parquet", index=False)
    with pytest.raises(StoreError, match=r"stores run .* more than once, in chunks "
                                         r"\['chunk-00000', 'chunk-00002'\]"):
        store.check_finished()
    # A chunk copied in under another name (merging two directories by hand) records the
    # name it was written under: the files are named, not that.
    runs.to_parquet(out / "runs" / "chunk-00002.parquet", index=False)
    with pytest.raises(StoreError, match=r"stores run .* more than once, in chunks "
                                         r"\['chunk-00000', 'chunk-00002'\]"):
        store.check_finished()


def test_a_grid_of_whole_numbers_stores_one_float_column(tmp_path):
    """weight_decays = [0, 0.3] as TOML gives them: the chunk of the weight-decay-0 run wrote an
    int64 column, and pandas.read_parquet(DIR / "runs") failed on the mixed dataset."""
    from grokcast.config import SweepConfig
    from grokcast.sweep import run_sweep

    cfg = SweepConfig(name="ints", train_fracs=(0.5,), weight_decays=[0, 0.3], seeds=(0,),
                      n_steps=3)
    assert cfg.weight_decays == (0.0, 0.3) and all(type(r.weight_decay) is float for r in cfg.runs())
    run_sweep(cfg, tmp_path / "s", device="cpu", chunk_size=1, progress=False)
    runs = pd.read_parquet(tmp_path / "s" / "runs")
    assert sorted(runs["weight_decay"]) == [0.0, 0.3] and runs["weight_decay"].dtype == float
    # The same for init_scale = 1 (was an int64 column, which a resume with 1.0 mixed with
    # float chunks), and the optimiser's numbers, which the config records.
    from grokcast.config import ModelConfig, OptimConfig

    ints = SweepConfig.from_dict({**cfg.to_dict(), "model": {"init_scale": 1},
                                  "optim": {"lr": 1, "beta1": 0, "beta2": 0, "eps": 1}})
    assert ints.model == ModelConfig(init_scale=1.0) and type(ints.model.init_scale) is float
    assert all(type(v) is float for v in dataclasses.astuple(ints.optim))
    assert ints.optim == OptimConfig(lr=1.0, beta1=0.0, beta2=0.0, eps=1.0)
    run_sweep(ints, tmp_path / "i", device="cpu", chunk_size=1, progress=False)
    assert pd.read_parquet(tmp_path / "i" / "runs")["init_scale"].dtype == float


def test_a_sweep_stored_with_weight_decay_minus_zero_is_refused_by_name(tmp_path):
    """Before -0.0 was read as 0.0, its runs were stored as 'wd-0'. Such a store was then
    called edited by its readers, and a resume trained the 'wd0' runs a second time."""
    from grokcast.config import SweepConfig
    from grokcast.store import StoreError, SweepStore
    from grokcast.sweep import run_sweep

    cfg = SweepConfig(name="zero", train_fracs=(0.5,), weight_decays=[0.0, 0.3], seeds=(0,),
                      n_steps=3)
    out = tmp_path / "s"
    run_sweep(cfg, out, device="cpu", chunk_size=1, progress=False)
    for table in ("runs", "log"):  # what the older version wrote for weight_decays = [-0.0, 0.3]
        for path in (out / table).glob("chunk-*.parquet"):
            frame = pd.read_parquet(path)
            frame["run_id"] = frame["run_id"].str.replace("-wd0-", "-wd-0-")
            frame.to_parquet(path, index=False)
    want = r"stores run\(s\) of weight decay -0.0 \('p23-f0.5-wd-0-s0-ss0'\), which grokcast now reads"
    with pytest.raises(StoreError, match=want):
        SweepStore(out).check_finished()
    with pytest.raises(StoreError, match=want):
        run_sweep(cfg, out, device="cpu", progress=False)
    assert len(pd.read_parquet(out / "runs")) == 2  # nothing trained again


def test_resuming_a_sweep_of_another_grokcast_version_warns(tmp_path):
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    raw = json.loads(store.config_path.read_text())
    raw["grokcast_version"] = "0.0.9"
    store.config_path.write_text(json.dumps(raw))
    with pytest.warns(RuntimeWarning, match="started by grokcast 0.0.9 and is resumed by"):
        run_sweep(cfg, out, device="cpu", progress=False)


def test_resuming_with_another_build_warns(tmp_path):
    """Was silent: a sweep started eagerly and resumed with --compile (or on another device, or
    by another torch) mixed runs that round differently, which training amplifies."""
    import torch

    from grokcast.config import SweepConfig
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    raw = json.loads(store.config_path.read_text())
    assert raw["build"] == {"torch": torch.__version__.split("+")[0], "device": "cpu", "compiled": False}
    assert SweepConfig.from_file(store.config_path) == cfg  # still read as a config file
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_sweep(cfg, out, device="cpu", progress=False)  # the same build: no warning
    raw["build"] |= {"compiled": True, "device": "cuda"}
    store.config_path.write_text(json.dumps(raw))
    with pytest.warns(RuntimeWarning, match=r"started with another build than it is resumed with "
                                            r"\(device 'cuda' then, 'cpu' now, compiled True then, "
                                            r"False now\)"):
        run_sweep(cfg, out, device="cpu", progress=False)
    del raw["build"]  # a sweep of a version before the record: nothing to compare
    store.config_path.write_text(json.dumps(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_sweep(cfg, out, device="cpu", progress=False)


def test_a_failed_chunk_write_says_what_is_stored_and_a_rerun_resumes(tmp_path, monkeypatch):
    """A full disk surfaced as pyarrow's "[Errno 28] Error writing bytes to file", naming no
    file and not saying that the finished chunks were kept (found in review)."""
    import pyarrow.parquet as pq

    from grokcast.store import StoreError, SweepStore
    from grokcast.sweep import run_sweep

    cfg, _, whole = _sweep(tmp_path / "whole")
    real, calls = pq.write_table, []

    def full_disk(table, where, *args, **kwargs):
        calls.append(where)
        if len(calls) == 3:  # the second chunk's log file
            raise OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device")
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", full_disk)
    out = tmp_path / "s"
    with pytest.raises(StoreError) as err:
        run_sweep(cfg, out, device="cpu", chunk_size=2, progress=False)
    assert str(err.value) == (
        f"could not write '{out}/log/chunk-00001.parquet' (no space left on device): the 2 runs of "
        "this chunk are not stored, the chunks finished before it are; fix that and rerun grokcast "
        "sweep with the same --config and --out to resume")
    assert sorted(p.name for p in out.rglob("*") if p.is_file() and p.name != ".lock") == [
        "chunk-00000.parquet", "chunk-00000.parquet", "sweep.json"]  # no temp file left
    monkeypatch.undo()
    result = run_sweep(cfg, out, device="cpu", chunk_size=2, progress=False)
    assert (result.n_trained, result.n_skipped) == (2, 2)
    key = ["run_id", "step"]
    pd.testing.assert_frame_equal(SweepStore(out).log().sort_values(key, ignore_index=True),
                                  whole.log().sort_values(key, ignore_index=True))


def test_a_finished_sweep_in_a_read_only_directory_reruns_as_a_no_op(tmp_path, monkeypatch):
    """Rerunning an archived (read-only) finished sweep failed on its lock file: "'.lock':
    permission denied" (found in review). Root ignores file modes, so the refusal to open it
    for appending is simulated."""
    import builtins

    from grokcast import store as S
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    modes = []

    def read_only(path, mode="r", *args, **kwargs):
        modes.append(mode)
        if mode != "r":
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(S, "open", read_only, raising=False)
    result = run_sweep(cfg, out, device="cpu", chunk_size=2, progress=False)
    assert (result.n_trained, result.n_skipped) == (0, 4) and modes == ["a", "r"]
    (out / S.LOCK_NAME).unlink()  # no lock file to fall back on: the error stands
    with pytest.raises(PermissionError):
        run_sweep(cfg, out, device="cpu", chunk_size=2, progress=False)


def test_atomic_writes_go_through_a_symlink_and_never_replace_a_special_file(tmp_path):
    """Renaming onto a symlink replaced the link (its file kept the old contents), and onto a
    device or FIFO replaced it by a file: as root, GrokForecaster.save("/dev/null") turned the
    machine's /dev/null into a file (found in a review of the Python API)."""
    import os
    import stat

    from grokcast.store import atomic_write_bytes, atomic_write_parquet

    target = tmp_path / "real.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_bytes(link, b"[1]")
    assert link.is_symlink() and target.read_text() == "[1]"
    atomic_write_parquet(link, pd.DataFrame({"a": [1, 2]}))
    assert link.is_symlink() and pd.read_parquet(target)["a"].tolist() == [1, 2]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for write in (lambda p: atomic_write_bytes(p, b"x"),
                  lambda p: atomic_write_parquet(p, pd.DataFrame({"a": [1]}))):
        with pytest.raises(ValueError, match=r"'.*fifo' exists and is not a regular file \(a device, "
                                             r"FIFO or socket\)"):
            write(fifo)
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link.json", "real.json"]
    loop, nowhere = tmp_path / "loop", tmp_path / "nowhere"
    loop.symlink_to(loop)
    nowhere.symlink_to(tmp_path / "no" / "such" / "f.json")
    with pytest.raises(ValueError, match=r"'.*loop' is a symbolic link that loops: name a file"):
        atomic_write_bytes(loop, b"x")
    with pytest.raises(ValueError, match=r"'.*nowhere' is a symbolic link to '.*f.json', whose "
                                         r"directory does not exist"):
        atomic_write_bytes(nowhere, b"x")
    assert not (tmp_path / "no").exists()


def test_log_columns_are_checked_by_name(tmp_path):
    """An unknown column gave pyarrow's 20-line ArrowInvalid, and a string was read letter by
    letter (found in a review of the Python API)."""
    _, _, store = _sweep(tmp_path)
    full = store.log()
    pd.testing.assert_frame_equal(store.log(columns="val_acc"), full[["run_id", "step", "val_acc"]])
    pd.testing.assert_frame_equal(store.log(columns=["val_loss", "step"]),
                                  full[["run_id", "step", "val_loss"]])
    with pytest.raises(ValueError, match=r"^columns=\['val_acc', 'nope'\] is not allowed: 'nope' is not "
                                         r"a log column \(the log's: run_id, step, "):
        store.log(columns=["val_acc", "nope"])


def test_log_columns_missing_from_the_chunks_or_given_twice_are_handled_as_log_does(tmp_path):
    """Was: log(columns=[a signal]) of a sweep whose chunks lack it (one damaged, or all of an
    older grokcast's) raised pyarrow's ArrowInvalid with the file's schema, where log() names
    the chunk or the grokcast; and a name given twice came back as two columns, so that
    log[name] was a DataFrame."""
    import pyarrow.parquet as pq

    from grokcast.store import StoreError

    _, out, store = _sweep(tmp_path)
    files = sorted((out / "log").glob("chunk-*.parquet"))
    plain = pd.concat([pd.read_parquet(f) for f in files]).sort_values(["run_id", "step"])
    twice = store.log(columns=["val_loss", "val_loss"])
    assert list(twice.columns) == ["run_id", "step", "val_loss"]
    np.testing.assert_array_equal(twice["val_loss"].to_numpy(), plain["val_loss"].to_numpy())

    log1 = files[1]
    pd.read_parquet(log1).rename(columns={"train_loss": "train_losc"}).to_parquet(log1, index=False)
    with pytest.raises(StoreError, match=r"chunk-00001.parquet' is damaged \(lacks column\(s\) "
                                         r"train_loss\): delete"):
        store.log(columns=["train_loss"])
    pd.read_parquet(log1).rename(columns={"train_losc": "train_loss"}).to_parquet(log1, index=False)
    for path in files:  # as a grokcast without update_cos wrote them
        pq.write_table(pq.read_table(path).drop_columns("update_cos"), path)
    with pytest.raises(StoreError, match=r"lacks signal\(s\) update_cos in every chunk: it was "
                                         r"trained by a grokcast that did not log them"):
        store.log(columns=["update_cos"])


def test_a_chunk_trained_under_another_config_than_sweep_json_now_holds_is_refused(tmp_path):
    """Was: sweep.json edited by hand (lr 1e-3 -> 1e-2, more seeds) and resumed trained the new
    runs at the new lr beside the old ones, "12 already finished", the runs table showing no lr
    (found in review); an edited n_steps was called a damaged chunk, to be deleted."""
    import json

    from grokcast.config import LogConfig, ModelConfig, OptimConfig, SweepConfig
    from grokcast.store import StoreError, SweepStore
    from grokcast.sweep import run_sweep

    config = SweepConfig(name="e", p=7, train_fracs=(0.5,), weight_decays=(1.0,), seeds=(0, 1),
                         n_steps=6, model=ModelConfig(d_model=8, n_heads=2, d_mlp=8),
                         log=LogConfig(dense_until=4, every=2))
    out = tmp_path / "s"
    run_sweep(config, out, device="cpu", progress=False)
    path = out / "sweep.json"
    original = path.read_text()
    document = json.loads(original)
    document["config"]["optim"]["lr"] = 0.01
    document["config"]["seeds"] = [0, 1, 2]
    path.write_text(json.dumps(document))
    edited = SweepConfig.from_dict(document["config"])
    assert edited.optim == OptimConfig(lr=0.01)
    with pytest.raises(StoreError, match=r"chunk-00000.parquet' was trained under another config "
                                         r"than .*sweep.json' holds now \(.*optim: .*'lr': 0.001.* in "
                                         r"the chunk, .*'lr': 0.01.* now.*\): sweep.json was edited"):
        run_sweep(edited, out, device="cpu", progress=False)
    assert len(SweepStore(out).runs()) == 2  # nothing trained
    path.write_text(original)  # restored: resumes (and trains nothing)
    assert run_sweep(config, out, device="cpu", progress=False).n_trained == 0
    # A grid grown by hand, every run's settings as before: the stored runs are its runs.
    grown = dataclasses.replace(config, seeds=(0, 1, 2))
    path.write_text(json.dumps({**json.loads(original), "config": grown.to_dict()}))
    assert run_sweep(grown, out, device="cpu", progress=False).n_trained == 1


def test_a_chunk_whose_recorded_config_does_not_read_is_named_damaged(tmp_path):
    import pyarrow.parquet as pq

    from grokcast.store import CHUNK_CONFIG_KEY, StoreError
    from grokcast.sweep import run_sweep

    cfg, out, _ = _sweep(tmp_path)
    chunk = out / "runs" / "chunk-00001.parquet"
    table = pq.read_table(chunk)
    meta = {**table.schema.metadata, CHUNK_CONFIG_KEY.encode(): b'{"p": 23, "model": '}  # cut short
    pq.write_table(table.replace_schema_metadata(meta), chunk)
    with pytest.raises(StoreError, match=r"chunk-00001.parquet' is damaged \(its recorded config does "
                                         r"not read: .*\): delete .*then rerun grokcast sweep"):
        run_sweep(cfg, out, device="cpu", progress=False)


def test_the_chunks_recorded_config_is_read_once_per_check_not_once_per_chunk(tmp_path,
                                                                           monkeypatch):
    """Each chunk's recorded config was read and compared by building the whole SweepConfig
    twice (its checks build every run of the grid): 0.1 s a chunk on the 4,800-run grid, 30 s
    added to each resume and check_finished of its 300-chunk sweep. The chunks of a sweep
    record the same config: it is read once, and a chunk recording another is still refused."""
    import pyarrow.parquet as pq

    from grokcast.config import SweepConfig
    from grokcast.store import CHUNK_CONFIG_KEY, StoreError, SweepStore
    from grokcast.sweep import run_sweep

    cfg = SweepConfig(name="tiny", train_fracs=(0.3, 0.6), weight_decays=(1.0,), seeds=(0, 1),
                      n_steps=30, log=LogConfig(dense_until=10, every=10))
    out = tmp_path / "s"
    run_sweep(cfg, out, device="cpu", chunk_size=1, progress=False)
    store = SweepStore(out)
    assert len(store._chunks("runs")) == 4
    built = []
    check = SweepConfig.__post_init__

    def counted(self):
        built.append(self)
        check(self)

    monkeypatch.setattr(SweepConfig, "__post_init__", counted)
    # sweep.json's config, and one chunk's record read and set beside it (was 1 + 2 x 4).
    for call in (store.verify, store.check_finished, lambda: store.resume(cfg)):
        built.clear()
        call()
        assert len(built) == 3
    # The last chunk trained under another lr: named, though the three before it passed.
    path = out / "runs" / "chunk-00003.parquet"
    table = pq.read_table(path)
    other = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=0.01))
    meta = {**table.schema.metadata,
            CHUNK_CONFIG_KEY.encode(): json.dumps(other.to_dict(), sort_keys=True).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(StoreError, match=r"chunk-00003.parquet' was trained under another config"):
        store.verify()


def test_an_interrupted_or_refused_write_leaves_no_temp_file_and_names_the_target(tmp_path,
                                                                                 monkeypatch):
    from grokcast import store as S

    def interrupted(tmp, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "_publish", interrupted)
    for write in (lambda p: S.atomic_write_bytes(p, b"data"),
                  lambda p: S.atomic_write_parquet(p, pd.DataFrame({"a": [1]}))):
        with pytest.raises(KeyboardInterrupt):
            write(tmp_path / "d" / "f")
        assert list((tmp_path / "d").iterdir()) == []  # neither the file nor its temp file
    monkeypatch.undo()

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "d" / ".f.x1y2.tmp"))

    monkeypatch.setattr(S.tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError) as err:
        S.atomic_write_bytes(tmp_path / "d" / "f", b"data")
    # The file the caller asked for, not the temp file's random name.
    assert (err.value.filename, err.value.strerror) == (str(tmp_path / "d" / "f"), "Permission denied")


def test_a_log_chunk_whose_steps_are_not_int64_is_named_by_file_and_column(tmp_path):
    """Was: a log chunk edited with step as float (whole numbers) made the whole log's steps
    floats; analyze ran, and `grokcast fit` refused its own forecaster file's field:
    "window_steps='[0.0, 1.0, ...]' is not allowed", naming neither the chunk nor the column."""
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep
    from grokcast.tool import LogError, fit_forecaster, read_log

    cfg, out, store = _sweep(tmp_path)
    log1 = out / "log" / "chunk-00001.parquet"
    whole = pd.read_parquet(log1)
    assert whole["step"].dtype == np.int64
    for edited in (whole.astype({"step": float}), whole.astype({"step": np.int32}),
                   whole.astype({"step": str})):
        edited.to_parquet(log1, index=False)
        found = {np.float64: "double", np.int32: "int32"}.get(edited["step"].dtype.type, "(large_)?string")
        message = (rf"^'{log1}' has a step column of type {found}, and a log's steps are int64 "
                   r"\(whole step counts, as grokcast writes them\): was the file edited\? Write it "
                   rf"back with step as int64, or delete it and '{out}/runs/chunk-00001.parquet', "
                   "then rerun grokcast sweep")
        for check in (store.check_finished, lambda: read_log(out),
                      lambda: fit_forecaster(out, window=10, threshold=0.5,
                                             out=tmp_path / "f.json", n_resamples=10),
                      lambda: run_sweep(cfg, out, device="cpu", progress=False)):
            with pytest.raises((StoreError, LogError), match=message):
                check()
    whole.to_parquet(log1, index=False)  # written back as int64: read again
    store.check_finished()


def test_chunks_that_lost_their_sweep_json_are_recovered_by_a_rerun_with_their_config(tmp_path):
    """Was: a sweep directory whose sweep.json was deleted (or not copied with its chunks) got
    "is not a sweep directory: no sweep.json" from every reader and "is not empty and holds no
    sweep.json" from `grokcast sweep`, with no way back but writing sweep.json by hand."""
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep
    from grokcast.tool import LogError, read_log

    cfg, out, store = _sweep(tmp_path)
    log, runs = store.log(), store.runs()
    original = json.loads((out / "sweep.json").read_text())
    (out / "sweep.json").unlink()
    (out / "runs" / "chunk-00001.parquet").unlink()  # one chunk unfinished: its runs train again
    hint = (rf"^'{out}' holds a sweep's chunks but no sweep.json \(deleted, or not copied with "
            rf"them\): restore it, or rerun grokcast sweep --config CONFIG --out '{out}' with the "
            "config its runs were trained with; that checks CONFIG against the config each chunk "
            "records, writes sweep.json, and trains only the runs not stored")
    for check in (store.check_finished, store.log, store.runs, lambda: read_log(out)):
        with pytest.raises((StoreError, LogError), match=hint):
            check()
    # Another config is refused, and no sweep.json is written from it.
    other = dataclasses.replace(cfg, n_steps=20)
    with pytest.raises(StoreError, match=r"chunk-00000.parquet' was trained under another config "
                                         r"than --config gives \(n_steps: 30 in the chunk, 20 in "
                                         r"--config\): rerun with the config the runs were trained"):
        run_sweep(other, out, device="cpu", progress=False)
    assert not (out / "sweep.json").exists()
    result = run_sweep(cfg, out, device="cpu", progress=False)
    assert (result.n_trained, result.n_skipped) == (2, 2)
    store.check_finished()
    assert json.loads((out / "sweep.json").read_text())["config"] == original["config"]
    pd.testing.assert_frame_equal(store.log(), log)  # training is deterministic on the CPU
    pd.testing.assert_frame_equal(store.runs().drop(columns=["chunk", "chunk_seconds"]),
                                  runs.drop(columns=["chunk", "chunk_seconds"]))
    # A chunk that records no config (an older grokcast's) cannot be checked: refused.
    (out / "sweep.json").unlink()
    runs0 = out / "runs" / "chunk-00000.parquet"
    pd.read_parquet(runs0).to_parquet(runs0, index=False)  # the footer's config key gone
    with pytest.raises(StoreError, match=r"holds no sweep.json, and '.*chunk-00000.parquet' does not "
                                         r"record the config it was trained under"):
        run_sweep(cfg, out, device="cpu", progress=False)
    # A directory holding anything else is still no sweep of ours.
    (out / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="is not empty and holds no sweep.json"):
        run_sweep(cfg, out, device="cpu", progress=False)
    with pytest.raises(StoreError, match="is not a sweep directory: no sweep.json"):
        store.runs()


def test_a_lone_run_outside_the_grid_is_named_without_an_ellipsis(tmp_path):
    """Was "('p23-f0.5-wd0.3-s1-ss0', ...)" for exactly one run: read as the first of several."""
    from grokcast.config import SweepConfig
    from grokcast.store import StoreError, SweepStore
    from grokcast.sweep import run_sweep

    cfg = SweepConfig(name="two", train_fracs=(0.5,), weight_decays=(0.3,), seeds=(0, 1),
                      n_steps=3)
    out = tmp_path / "s"
    run_sweep(cfg, out, device="cpu", chunk_size=1, progress=False)
    (out / "sweep.json").unlink()
    with pytest.raises(StoreError, match=r"store 1 run\(s\) outside the grid of --config "
                                         r"\('p23-f0.5-wd0.3-s1-ss0'\): rerun"):
        run_sweep(dataclasses.replace(cfg, seeds=(0,)), out, device="cpu", progress=False)
    run_sweep(cfg, out, device="cpu", progress=False)  # sweep.json back; nothing to train
    raw = json.loads((out / "sweep.json").read_text())
    raw["config"]["seeds"] = [0]
    (out / "sweep.json").write_text(json.dumps(raw))
    with pytest.raises(StoreError, match=r"stores 1 run\(s\) outside the grid of its sweep.json "
                                         r"\('p23-f0.5-wd0.3-s1-ss0'\): was sweep.json edited"):
        SweepStore(out).check_finished()


def test_chunks_without_sweep_json_and_a_config_whose_grid_lacks_their_runs_write_no_sweep_json(
        tmp_path):
    """Was: rerunning chunks that lost their sweep.json with a config whose grid leaves out
    stored runs (one seed fewer) wrote sweep.json from that config before the grid check
    refused it; the rerun with the right config was then told the directory 'holds a
    different sweep' and to resume it with the wrong one."""
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    (out / "sweep.json").unlink()
    fewer = dataclasses.replace(cfg, seeds=(0,))
    with pytest.raises(StoreError, match=r"holds no sweep.json, and its chunks store 2 run\(s\) "
                                         r"outside the grid of --config \('p23-f0.3-wd1-s1-ss0', "
                                         r"'p23-f0.6-wd1-s1-ss0'\): "
                                         r"rerun with the config the runs were trained with"):
        run_sweep(fewer, out, device="cpu", progress=False)
    other = dataclasses.replace(cfg, train_fracs=(0.9,))  # all 4 outside: 3 named, then "..."
    with pytest.raises(StoreError, match=r"store 4 run\(s\) outside the grid of --config "
                                         r"\('p23-f0.3-wd1-s0-ss0', 'p23-f0.3-wd1-s1-ss0', "
                                         r"'p23-f0.6-wd1-s0-ss0', \.\.\.\): rerun"):
        run_sweep(other, out, device="cpu", progress=False)
    assert not (out / "sweep.json").exists()
    result = run_sweep(cfg, out, device="cpu", progress=False)  # the right config still resumes
    assert (result.n_trained, result.n_skipped) == (0, 4)


def _other_lr_sweep(tmp_path, cfg):
    """The same grid trained at twice the learning rate: other numbers under the same run ids."""
    from grokcast.sweep import run_sweep

    other = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=2 * cfg.optim.lr))
    run_sweep(other, tmp_path / "other", device="cpu", chunk_size=2, progress=False)
    return tmp_path / "other"


def test_a_log_file_of_another_chunk_or_sweep_is_named_not_read_as_its_runs(tmp_path):
    """Was: log and runs files were paired by row count alone. A log file copied over another
    chunk's of the same size read as the runs of both (one chunk's twice, the other's not at
    all), and one of another sweep with the same run ids read as this sweep's numbers; verify,
    check_finished and a resume (which trained nothing) all passed."""
    from grokcast.store import StoreError
    from grokcast.sweep import run_sweep

    cfg, out, store = _sweep(tmp_path)
    other = _other_lr_sweep(tmp_path, cfg)
    log1, whole = out / "log" / "chunk-00001.parquet", (out / "log" / "chunk-00001.parquet").read_bytes()
    assert len(pd.read_parquet(log1)) == len(pd.read_parquet(out / "log" / "chunk-00000.parquet"))
    calls = []
    for source in (out / "log" / "chunk-00000.parquet", other / "log" / "chunk-00001.parquet"):
        shutil.copy(source, log1)
        for check in (store.verify, store.log, store.check_finished,
                      lambda: run_sweep(cfg, out, device="cpu", progress=False,
                                        train_fn=lambda *a, **k: calls.append(a))):
            with pytest.raises(StoreError, match=rf"log/chunk-00001.parquet' is damaged \(it is not "
                                                 rf"the log of the runs in '{out}/runs/chunk-00001"
                                                 r".parquet'.*\): delete") as err:
                check()
            assert "\n" not in str(err.value)
    assert calls == []  # nothing trained, nothing lost: both files are still there
    log1.write_bytes(whole)
    store.check_finished()
    # Chunks of a grokcast that recorded no digest: paired by the range of their run ids.
    for table in ("log", "runs"):
        for path in (out / table).glob("chunk-*.parquet"):
            pd.read_parquet(path).to_parquet(path, index=False)  # the footer's own keys dropped
    store.verify()
    shutil.copy(out / "log" / "chunk-00000.parquet", log1)
    ids = {t: sorted(pd.read_parquet(out / t / "chunk-00001.parquet")["run_id"]) for t in ("log", "runs")}
    with pytest.raises(StoreError, match=rf"it logs runs '{ids['log'][0]}' to '{ids['log'][-1]}', "
                                         rf"and '[^']*runs/chunk-00001.parquet' lists "
                                         rf"'{ids['runs'][0]}' to '{ids['runs'][-1]}'"):
        store.log()


def test_the_readers_refuse_runs_stored_twice_short_logs_and_another_sweeps_chunk(tmp_path):
    """Was: runs() and log() (read without check_finished, as the API allows) returned a chunk
    copied in twice as duplicate rows, a log file without rows as runs missing from the log,
    and another sweep's chunk pair as this sweep's runs, all without an error."""
    from grokcast.store import StoreError

    cfg, out, store = _sweep(tmp_path)
    other = _other_lr_sweep(tmp_path, cfg)
    saved = {p: p.read_bytes() for p in out.rglob("chunk-*.parquet")}
    _copy_chunk(out, "chunk-00000.parquet", out, "chunk-00002.parquet")
    for read in (store.runs, store.log):
        with pytest.raises(StoreError, match=r"stores run .* \(and 1 other run\(s\)\) more than "
                                             r"once, in chunks \['chunk-00000', 'chunk-00002'\]"):
            read()
    for table in ("log", "runs"):
        (out / table / "chunk-00002.parquet").unlink()
    log1 = out / "log" / "chunk-00001.parquet"
    pd.read_parquet(log1).iloc[:0].to_parquet(log1, index=False)
    with pytest.raises(StoreError, match=r"log/chunk-00001.parquet' is damaged \(0 rows, expected "
                                         r"2 runs x 13 logged steps\)"):
        store.log()
    _copy_chunk(other, "chunk-00001.parquet", out, "chunk-00001.parquet")
    with pytest.raises(StoreError, match=r"runs/chunk-00001.parquet' was trained under another "
                                         r"config .*or the chunk was copied in from another sweep"):
        store.log()
    for path, data in saved.items():
        path.write_bytes(data)
    # sweep.json edited (n_steps): its chunks are not called damaged, whose remedy deletes them.
    raw = json.loads(store.config_path.read_text())
    raw["config"]["n_steps"] = 20
    store.config_path.write_text(json.dumps(raw))
    with pytest.raises(StoreError, match=r"trained under another config .*n_steps: 30 in the "
                                         r"chunk, 20 now") as err:
        store.log()
    assert "damaged" not in str(err.value)


def test_temp_files_of_a_write_cut_short_are_never_read(tmp_path):
    """A Ctrl-C between mkstemp and the write's cleanup leaves a .chunk-*.tmp file (removed by
    the next resume, under the lock): until then no reader takes it for a chunk."""
    cfg, out, store = _sweep(tmp_path)
    whole = store.log()
    for table in ("log", "runs"):
        shutil.copy(out / table / "chunk-00000.parquet", out / table / ".chunk-00002.parquet.k1.tmp")
    store.check_finished()
    pd.testing.assert_frame_equal(store.log(), whole)
    assert len(store.runs()) == 4
    assert len(pd.read_parquet(out / "log")) == len(whole)  # pandas' own reader skips dot files


def test_both_footers_hold_the_documented_chunk_digest(tmp_path):
    """docs/file-formats.md: the hex SHA-256 of the runs file's config JSON and the chunk's run
    ids in order, one per line; recomputed here with hashlib from the files themselves, on a
    sweep whose chunks train their runs out of sorted order (seeds 1, 0)."""
    import hashlib

    import pyarrow.parquet as pq

    from grokcast.config import SweepConfig
    from grokcast.store import chunk_digest
    from grokcast.sweep import run_sweep

    cfg = SweepConfig(name="tiny", train_fracs=(0.3,), weight_decays=(1.0,), seeds=(1, 0),
                      n_steps=30, log=LogConfig(dense_until=10, every=10))
    out = tmp_path / "s"
    run_sweep(cfg, out, device="cpu", chunk_size=2, progress=False)
    runs_path, log_path = out / "runs" / "chunk-00000.parquet", out / "log" / "chunk-00000.parquet"
    config = pq.read_metadata(runs_path).metadata[b"grokcast.config"].decode()
    ids = pd.read_parquet(runs_path)["run_id"].tolist()
    assert ids == ["p23-f0.3-wd1-s1-ss0", "p23-f0.3-wd1-s0-ss0"]  # as trained, not sorted
    want = hashlib.sha256(f"{config}\n{ids[0]}\n{ids[1]}".encode()).hexdigest()
    for path in (runs_path, log_path):
        assert pq.read_metadata(path).metadata[b"grokcast.chunk_sha256"].decode() == want
    # The separator keeps run ids apart: ["a", "bc"] is not ["ab", "c"].
    assert chunk_digest("{}", ["a", "bc"]) != chunk_digest("{}", ["ab", "c"])


def test_chunks_without_digest_are_paired_by_both_ends_of_their_run_id_range(tmp_path):
    """A chunk written before grokcast recorded the digest (or rewritten by hand) is paired by
    its least and greatest run id over every row group; a file that keeps no statistics is not
    refused for it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from grokcast.store import StoreError

    cfg, out, store = _sweep(tmp_path)

    def rewrite(path, frame, **kw):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, **kw)

    for table in ("log", "runs"):
        for path in (out / table).glob("chunk-*.parquet"):
            frame = pd.read_parquet(path)
            # The log a row group per run (13 rows): the greatest id is in the last group only.
            rewrite(path, frame, row_group_size=13 if table == "log" else None)
    whole = store.log()
    store.verify()
    log1 = out / "log" / "chunk-00001.parquet"
    frame = pd.read_parquet(log1)
    last = frame["run_id"].iloc[-1]
    # Its last run's rows relabelled (a log of other runs ending past the runs file's last id).
    rewrite(log1, frame.assign(run_id=frame["run_id"].where(frame["run_id"] != last, last + "-x")),
            row_group_size=13)
    with pytest.raises(StoreError, match=rf"it logs runs '[^']*' to '{last}-x', and "):
        store.verify()
    # Without statistics the files cannot be paired by range, and are read as they are.
    for table in ("log", "runs"):
        for path in (out / table).glob("chunk-*.parquet"):
            rewrite(path, pd.read_parquet(path), write_statistics=False)
    rewrite(log1, whole[whole["run_id"].isin(pd.read_parquet(out / "runs" / "chunk-00001.parquet")
                                             ["run_id"])], write_statistics=False)
    store.verify()
    pd.testing.assert_frame_equal(store.log(), whole)


def test_runs_stored_twice_name_only_committed_chunks(tmp_path):
    """A log file without its runs file (a chunk cut short) is not read, so the error naming
    the chunks holding a run stored twice leaves it out."""
    from grokcast.store import StoreError

    cfg, out, store = _sweep(tmp_path)
    _copy_chunk(out, "chunk-00000.parquet", out, "chunk-00002.parquet")
    shutil.copy(out / "log" / "chunk-00000.parquet", out / "log" / "chunk-00003.parquet")
    with pytest.raises(StoreError, match=r"in chunks \['chunk-00000', 'chunk-00002'\]:"):
        store.log()
    # Stored three times: still the chunk's 2 runs, "1 other", counted once each.
    _copy_chunk(out, "chunk-00000.parquet", out, "chunk-00004.parquet")
    for read in (store.runs, store.log):
        with pytest.raises(StoreError, match=r"\(and 1 other run\(s\)\) more than once, in chunks "
                                             r"\['chunk-00000', 'chunk-00002', 'chunk-00004'\]:"):
            read()


def _copy_chunk(src_dir: Path, name: str, dst_dir: Path, as_name: str) -> None:
    """Copy a chunk's log and runs files, as a user copying chunks between sweep dirs would."""
    for table in ("log", "runs"):
        shutil.copy(src_dir / table / name, dst_dir / table / as_name)
