"""The sweep directory: Parquet tables, atomic writes, resume.

Layout of a sweep directory::

    DIR/sweep.json               the SweepConfig (plus grokcast version), written once
    DIR/log/chunk-00000.parquet  log rows of one finished ensemble chunk
    DIR/runs/chunk-00000.parquet run rows of the same chunk (written after its log)
    DIR/stop.json                the early-stopping rule its runs were trained under, if any
    DIR/.lock                    locked by the sweep writing the directory (SweepStore.lock)

``log/`` and ``runs/`` are each one Parquet dataset (``pandas.read_parquet(DIR / "log")``
reads the whole table). A chunk counts as finished once its ``runs`` file exists; every file
is written to a temporary name and renamed, so a killed process leaves either a whole file
or none, and a rerun redoes only the unfinished runs.

Log table columns: ``run_id``, ``step``, then :data:`grokcast.signals.SIGNAL_NAMES`.
Runs table columns: see :data:`RUN_COLUMNS`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grokcast import __version__
from grokcast.config import ConfigError, SweepConfig
from grokcast.signals import SIGNAL_NAMES, first_step_reaching
from grokcast.train import EnsembleLog
from grokcast.validation import check_bool

LOCK_NAME = ".lock"  # held by the sweep writing the directory (SweepStore.lock)
_CHUNK_NAME = re.compile(r"chunk-\d{5,}\.parquet")  # write_chunk's names
# The files whose temp files (_temp_file) a writer killed mid-write leaves, by subdirectory.
WRITTEN = {".": ("sweep.json", "stop.json"), "log": ("chunk-*.parquet",),
           "runs": ("chunk-*.parquet",)}

RUN_COLUMNS = (
    "run_id", "p", "train_frac", "weight_decay", "seed", "split_seed", "n_steps", "init",
    "init_scale", "status", "max_val_acc", "step_val_acc_0.9", "step_val_acc_0.99",
    "final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc", "chunk",
    "chunk_seconds",
)
GROK_THRESHOLDS = (0.9, 0.99)


class StoreError(RuntimeError):
    """The sweep directory is missing, corrupt, or holds a different sweep."""


def _publish(tmp: str, path: Path) -> None:
    """Rename a finished temp file into place with the mode a plain open() would give it.

    mkstemp creates files readable by their owner only; results are meant to be shared.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def _temp_name(name: str) -> tuple[str, str]:
    """Prefix and suffix of the temp files of a file called ``name`` (or a glob of names)."""
    return f".{name}.", ".tmp"


def _temp_file(path: Path) -> tuple[int, str]:
    """A temp file beside ``path``; an error names ``path``, not the temp file's random name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temp_name(path.name)
    try:
        return tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None


def _write_target(path: Path) -> Path:
    """The file an atomic write replaces: a symlink's target (renaming onto the link would
    replace the link and leave its file as it was), and only ever a regular file (renaming
    onto a device such as /dev/null, a FIFO or a socket would replace it by a file)."""
    target = path
    if path.is_symlink():
        try:
            target = path.resolve()
        except (OSError, RuntimeError):  # a loop (RuntimeError before Python 3.13)
            raise ValueError(f"{str(path)!r} is a symbolic link that loops: name a file") from None
        if not target.parent.is_dir():  # not created for a link that points nowhere
            raise ValueError(f"{str(path)!r} is a symbolic link to {str(target)!r}, whose directory "
                             "does not exist")
    if target.exists() and not target.is_file() and not target.is_dir():
        raise ValueError(f"{str(path)!r} exists and is not a regular file (a device, FIFO or "
                         "socket): grokcast writes a file by replacing it, so name a file")
    return target


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory, then rename: readers never see half a file."""
    path = _write_target(path)
    fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_parquet(path: Path, df: pd.DataFrame, metadata: dict[str, str] | None = None,
                         ) -> None:
    """As :func:`atomic_write_bytes`; an error names ``path`` (pyarrow's names no file).
    ``metadata``: key-value pairs added to the file's footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _write_target(path)
    fd, tmp = _temp_file(path)
    os.close(fd)
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
        if metadata:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        # Page checksums (CRC-32): a flipped bit in a stored chunk is an error when it is read
        # (SweepStore verifies them), not wrong numbers.
        pq.write_table(table, tmp, write_page_checksum=True)
        _fsync(tmp)  # as atomic_write_bytes: after a power cut the new name holds the whole file
        _publish(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        why = os.strerror(err.errno) if err.errno else str(err)
        raise OSError(err.errno, why, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def log_frame(log: EnsembleLog) -> pd.DataFrame:
    """Long-format log rows: one per (run, logged step)."""
    R, S, _ = log.values.shape
    df = pd.DataFrame(log.values.reshape(R * S, -1), columns=list(SIGNAL_NAMES))
    df.insert(0, "step", np.tile(log.steps, R).astype(np.int64))
    df.insert(0, "run_id", np.repeat([r.run_id for r in log.runs], S))
    return df


def run_frame(log: EnsembleLog, chunk: str, chunk_seconds: float) -> pd.DataFrame:
    """One row per run: config, status and outcome (over the logged steps).

    ``chunk_seconds`` is the wall time of the whole ensemble the run trained in.
    """
    col = {n: k for k, n in enumerate(SIGNAL_NAMES)}
    rows = []
    for r, cfg in enumerate(log.runs):
        v = log.values[r]
        val_acc = v[:, col["val_acc"]]
        diverged = not np.isfinite(v[:, col["train_loss"]][~np.isnan(val_acc)]).all()
        final = v[np.flatnonzero(~np.isnan(val_acc))[-1]] if (~np.isnan(val_acc)).any() else v[-1]
        status = "diverged" if diverged else ("stopped" if log.stopped_at[r] >= 0 else "finished")
        # A NaN loss means NaN logits, whose argmax "accuracy" is the share of one class: no
        # outcome (an inf loss can come from finite logits, whose accuracies are real).
        final_accs = ((np.nan, np.nan) if np.isnan(final[col["train_loss"]]) else
                      (final[col["train_acc"]], final[col["val_acc"]]))
        rows.append({
            "run_id": cfg.run_id, "p": cfg.p, "train_frac": cfg.train_frac,
            "weight_decay": cfg.weight_decay, "seed": cfg.seed, "split_seed": cfg.split_seed,
            "n_steps": cfg.n_steps, "init": cfg.model.init, "init_scale": cfg.model.init_scale,
            "status": status, "max_val_acc": float(np.nanmax(val_acc)) if not diverged else np.nan,
            **{f"step_val_acc_{th}": int(first_step_reaching(log.steps, val_acc, th))
               for th in GROK_THRESHOLDS},
            "final_train_loss": final[col["train_loss"]], "final_val_loss": final[col["val_loss"]],
            "final_train_acc": final_accs[0], "final_val_acc": final_accs[1],
            "chunk": chunk, "chunk_seconds": chunk_seconds,
        })
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


# stop.json keys that say where a file was, not what the rule is: a moved copy of the same
# forecaster (its content pinned by model_sha256) resumes the sweep.
STOP_LOCATION_KEYS = ("model",)


# The footer key of a runs chunk holding the config it was trained under (JSON).
CHUNK_CONFIG_KEY = "grokcast.config"
# The footer key, in both files of a chunk, of the SHA-256 of its config and run ids
# (chunk_digest): pairs a log file with its runs file from the footers alone.
CHUNK_DIGEST_KEY = "grokcast.chunk_sha256"


def chunk_digest(config_json: str, run_ids: list[str]) -> str:
    """What both files of a chunk record under :data:`CHUNK_DIGEST_KEY`: the hex SHA-256 of
    its config (as :data:`CHUNK_CONFIG_KEY` holds it) and its run ids, in order."""
    return hashlib.sha256("\n".join([config_json, *run_ids]).encode()).hexdigest()


def config_diff(a: SweepConfig, b: SweepConfig, where: tuple[str, str] = ("there", "here")) -> str:
    """``n_steps: 300 there, 600 here`` for each top-level key where two configs differ."""
    old, new = a.to_dict(), b.to_dict()
    return ", ".join(f"{k}: {old[k]!r} {where[0]}, {new[k]!r} {where[1]}"
                     for k in old if old[k] != new.get(k))


def _some(run_ids: list[str]) -> str:
    """Up to three of ``run_ids`` for an error, with an ellipsis only when some are left out: a
    lone run written as "('a', ...)" read as the first of several."""
    return ", ".join(map(repr, run_ids[:3])) + (", ..." if len(run_ids) > 3 else "")


def _same_stop_rule(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return ({k: v for k, v in a.items() if k not in STOP_LOCATION_KEYS}
            == {k: v for k, v in b.items() if k not in STOP_LOCATION_KEYS})


def _stop_words(stop: dict[str, Any] | None) -> str:
    if stop is None:
        return "without --stop-model"
    if {"model", "model_sha256", "below"} <= stop.keys():  # grokcast's StopRule
        return (f"with --stop-model {stop['model']} (sha256 {str(stop['model_sha256'])[:12]}) "
                f"--stop-below {stop['below']!r}")
    return f"with the stop rule {json.dumps(stop, sort_keys=True)}"


def _run_id_range(footer: Any) -> tuple[str, str] | None:
    """The least and greatest run id of a Parquet file from its footer's statistics (None
    where it has none: no rows, or a writer that kept none). Two chunks of a sweep hold
    disjoint runs, so the least of each differs."""
    if "run_id" not in footer.schema.names:
        return None
    col = footer.schema.names.index("run_id")
    stats = [footer.row_group(g).column(col).statistics for g in range(footer.num_row_groups)]
    if not stats or any(s is None or not s.has_min_max for s in stats):
        return None
    return min(s.min for s in stats), max(s.max for s in stats)


class SweepStore:
    """Read and append to one sweep directory."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    @property
    def config_path(self) -> Path:
        return self.root / "sweep.json"

    def init(self, config: SweepConfig, build: dict[str, Any] | None = None) -> None:
        """Create the directory for ``config``, or check that it already holds the same sweep.

        ``build``: how its runs are trained (``{"torch": version, "device": "cpu", "compiled":
        False}``, :func:`grokcast.sweep.training_build`), recorded when the directory is made;
        resuming with another warns, as another grokcast version does: each build rounds
        differently, and training amplifies rounding into other logs and labels."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{str(self.root)!r} exists and is not a directory")
        if self.config_path.exists():
            stored, existing = self._read_document()
            self._warn_other_build(stored, build)
            if existing != config:
                diff = config_diff(existing, config)
                # Its own sweep.json is a config: the hint resumes it whatever made it
                # (another file, the same one with --steps, reproduce's held-out sweep).
                raise StoreError(
                    f"{str(self.root)!r} holds a different sweep ({diff}); use a new output "
                    f"directory, or resume it with the config it holds: grokcast sweep --config "
                    f"{str(self.config_path)!r} --out {str(self.root)!r}")
            return
        self._refuse_foreign()
        if self._chunks_without_config():
            self._check_orphans_config(config)
        payload = {"grokcast_version": __version__, "config": config.to_dict(),
                   **({} if build is None else {"build": build})}
        atomic_write_bytes(self.config_path, json.dumps(payload, indent=2).encode())

    def _warn_other_build(self, stored: dict[str, Any], build: dict[str, Any] | None) -> None:
        """Warn where the sweep.json ``stored`` was written by another grokcast version, or
        records another ``build``, than the one resuming it."""
        started = stored.get("grokcast_version")
        if started != __version__:
            warnings.warn(f"{str(self.root)!r} was started by grokcast {started} and is resumed "
                          f"by {__version__}: where the builds train differently, its runs "
                          "mix the two (use a new --out to keep them apart)", RuntimeWarning,
                          stacklevel=4)
        then = stored.get("build")
        changed = {k: (then[k], v) for k, v in (build or {}).items()
                   if isinstance(then, dict) and k in then and then[k] != v}
        if changed:
            what = ", ".join(f"{k} {a!r} then, {b!r} now" for k, (a, b) in changed.items())
            warnings.warn(f"{str(self.root)!r} was started with another build than it is resumed "
                          f"with ({what}): its runs mix the two, which round differently (use a "
                          "new --out to keep them apart)", RuntimeWarning, stacklevel=4)

    def _leftovers(self) -> list[Path]:
        """Temp files left by a writer killed mid-write (of the files :data:`WRITTEN`)."""
        return sorted(path for sub, names in WRITTEN.items() for name in names
                      for path in (self.root / sub).glob("*".join(_temp_name(name))))

    def _refuse_foreign(self) -> None:
        """Refuse a directory that holds something but no sweep: not ours to write into. The
        lock and a first sweep.json write cut short by a kill are ours: it resumes."""
        if self.config_path.exists() or not self.root.is_dir():
            return
        ours = {self.root / LOCK_NAME, *self._leftovers()}
        if self._chunks_without_config():  # init checks them against the config to resume
            return
        if any(p not in ours for p in self.root.iterdir()):
            raise StoreError(f"{str(self.root)!r} is not empty and holds no sweep.json")

    def _chunks_without_config(self) -> bool:
        """Whether the directory holds a sweep's stored chunks and the rest of a sweep
        directory, but no sweep.json (deleted, or not copied with them)."""
        if self.config_path.exists() or not (self.root / "runs").is_dir():
            return False
        parts = {self.root / name for name in ("log", "runs", "stop.json", LOCK_NAME)}
        parts |= set(self._leftovers())
        return (all(p in parts for p in self.root.iterdir())
                and any((self.root / "runs").glob("chunk-*.parquet")))

    def missing_config_error(self) -> StoreError:
        """What a reader says of a directory whose chunks lost their sweep.json."""
        if not self._chunks_without_config():
            return StoreError(f"{str(self.root)!r} is not a sweep directory: no sweep.json")
        return StoreError(
            f"{str(self.root)!r} holds a sweep's chunks but no sweep.json (deleted, or not copied "
            "with them): restore it, or rerun grokcast sweep --config CONFIG --out "
            f"{str(self.root)!r} with the config its runs were trained with; that checks CONFIG "
            "against the config each chunk records, writes sweep.json, and trains only the runs "
            "not stored")

    def _check_orphans_config(self, config: SweepConfig) -> None:
        """Refuse to write sweep.json for chunks that lost theirs unless every chunk records
        the config it was trained under and it is ``config`` (its grid aside, as a resume
        allows a grown grid): runs of two settings would be analysed as one sweep."""
        stored: set[str] = set()
        passed: set[bytes] = set()
        for path in self._chunks("runs"):
            raw = (self._footer(path, RUN_COLUMNS).metadata or {}).get(CHUNK_CONFIG_KEY.encode())
            if raw is None:
                raise StoreError(
                    f"{str(self.root)!r} holds no sweep.json, and {str(path)!r} does not record "
                    "the config it was trained under (written by an older grokcast), so --config "
                    "cannot be checked against it: restore sweep.json, or train into a new --out")
            self._check_chunk_config(path, {CHUNK_CONFIG_KEY.encode(): raw}, config,
                                     against="--config", passed=passed)
            stored.update(self._parquet(
                lambda p: pd.read_parquet(p, columns=["run_id"])["run_id"], path))
        # Checked before sweep.json is written (resume's _check_in_grid comes after it): a
        # sweep.json of a grid without the stored runs sent the rerun with the right config
        # to "holds a different sweep ...; resume it with the config it holds".
        extra = sorted(stored - {r.run_id for r in config.runs()})
        if extra:
            raise StoreError(
                f"{str(self.root)!r} holds no sweep.json, and its chunks store {len(extra)} "
                f"run(s) outside the grid of --config ({_some(extra)}): rerun with the config "
                "the runs were trained with (its grid may add runs, not leave out stored ones), "
                "or train into a new --out")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory for one writer: while held, a second :meth:`lock` (another sweep
        into the same ``--out``, e.g. a requeued job while the first still runs) is refused.

        Two writers would train the same runs twice and could delete each other's chunk in
        progress (:meth:`remove_uncommitted`). An advisory ``flock`` on ``DIR/.lock``, released
        by the system when the process dies; where ``fcntl`` is missing (Windows) no lock.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{str(self.root)!r} exists and is not a directory")
        self._refuse_foreign()  # before the lock file is written into someone else's directory
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock_file() as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(f"{str(self.root)!r} is being written by another sweep (it holds "
                                 f"the lock on {LOCK_NAME}): wait for it to end, or use another "
                                 "--out directory") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _lock_file(self) -> Any:
        """The lock file, opened to lock it. flock needs no write access: a finished sweep in a
        directory made read-only (archived, shared) opens its existing lock file read-only, so
        rerunning it skips its runs instead of failing on the lock."""
        path = self.root / LOCK_NAME
        try:
            return open(path, "a")
        except PermissionError:
            if not path.is_file():
                raise
            return open(path)

    def resume(self, config: SweepConfig, stop: dict[str, Any] | None = None,
               build: dict[str, Any] | None = None) -> set[str]:
        """Open the directory to train ``config`` into: :meth:`init` (with ``build``), drop the log of a chunk
        cut short by a kill (its runs are trained again), :meth:`verify` the stored chunks,
        and check the stopping rule (:meth:`check_stop`). Returns the ids of the runs already
        finished."""
        self.init(config, build)  # sweep.json holds config now, or it was refused
        self.remove_uncommitted()
        self._verify(config)
        if self._chunks("runs"):  # runs outside the grid: refused, or the grid's would train again
            self._check_in_grid([r.run_id for r in config.runs()])
        done = self.finished_run_ids()
        self.check_stop(stop, first=not done)
        return done

    @property
    def stop_path(self) -> Path:
        return self.root / "stop.json"

    def check_stop(self, stop: dict[str, Any] | None, *, first: bool) -> None:
        """Record the early-stopping rule of the runs trained here (``stop.json``: the
        stopper's ``record()``; for ``--stop-model``, the forecaster file's path and SHA-256
        and the threshold), or, once runs are stored, refuse a different one (every key but
        :data:`STOP_LOCATION_KEYS` must match): runs stopped by two rules, or some stopped and
        some not, would be analysed as one sweep."""
        if stop is not None:  # as it will read back from stop.json (tuples become lists)
            stop = json.loads(json.dumps(stop))
        if first:
            self._record_stop(stop)
            return
        stored = self._read_stop()
        if stored is None and (self.runs()["status"] == "stopped").any():
            # Stopped by a rule that a version before stop.json did not record.
            if stop is None:
                raise StoreError(f"{str(self.root)!r} holds runs stopped by a --stop-model rule that "
                                 "was not recorded: resume with that rule, or use a new --out")
            self._record_stop(stop)  # the rule it is resumed with, from now on
            return
        if not _same_stop_rule(stored, stop):
            raise StoreError(f"{str(self.root)!r} was trained {_stop_words(stored)}, not "
                             f"{_stop_words(stop)}: resume with the same, or use a new --out")

    def _read_stop(self) -> dict[str, Any] | None:
        if not self.stop_path.is_file():
            return None
        try:
            stored = json.loads(self.stop_path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            stored = err
        if not isinstance(stored, dict):
            found = stored if isinstance(stored, Exception) else type(stored).__name__
            raise StoreError(f"{str(self.stop_path)!r} is not a stop rule grokcast wrote (expected "
                             f"a JSON object, found {found}): restore it, or train into a new --out")
        return stored

    def _record_stop(self, stop: dict[str, Any] | None) -> None:
        if stop is None:
            self.stop_path.unlink(missing_ok=True)
        else:
            atomic_write_bytes(self.stop_path, json.dumps(stop, indent=2).encode())

    def read_config(self) -> SweepConfig:
        return self._read_document()[1]

    def _read_document(self) -> tuple[dict[str, Any], SweepConfig]:
        """sweep.json as read, and the config it holds."""
        if not self.config_path.is_file():
            raise self.missing_config_error()
        try:
            raw = json.loads(self.config_path.read_text())
            if not isinstance(raw, dict) or "config" not in raw:
                raise ConfigError("it lacks the key 'config' (the sweep's settings)")
            return raw, SweepConfig.from_dict(raw["config"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ConfigError) as err:
            raise StoreError(f"{str(self.config_path)!r} is corrupt: {err}: restore it, or train "
                             "into a new --out") from None

    def _chunks(self, table: str) -> list[Path]:
        paths = sorted((self.root / table).glob("chunk-*.parquet"))
        stray = next((p for p in paths if not _CHUNK_NAME.fullmatch(p.name)), None)
        if stray is not None:  # it would be read as a chunk, and its name is not a number
            raise StoreError(f"{str(stray)!r} is not a file grokcast writes (its chunks are "
                             "chunk-NNNNN.parquet): move it out of the sweep directory")
        return paths

    def finished_run_ids(self) -> set[str]:
        return set(self.runs()["run_id"]) if self._chunks("runs") else set()

    def write_chunk(self, log: EnsembleLog, seconds: float) -> None:
        """Store one finished ensemble: its log first, then its run rows (the commit point)."""
        used = [int(p.stem.split("-")[1]) for p in self._chunks("log") + self._chunks("runs")]
        name = f"chunk-{max(used, default=-1) + 1:05d}.parquet"
        # The config the chunk was trained under: a resume checks it against sweep.json.
        config = json.dumps(self.read_config().to_dict(), sort_keys=True)
        # Deterministic, not random: a sweep trained twice writes the same files.
        digest = {CHUNK_DIGEST_KEY: chunk_digest(config, [r.run_id for r in log.runs])}
        try:
            atomic_write_parquet(self.root / "log" / name, log_frame(log), digest)
            runs = run_frame(log, name.removesuffix(".parquet"), seconds)
            atomic_write_parquet(self.root / "runs" / name, runs,
                                 {CHUNK_CONFIG_KEY: config, **digest})
        except OSError as err:  # a full disk, a lost permission: what to do, not only what failed
            raise StoreError(
                f"could not write {str(err.filename)!r} ({(err.strerror or str(err)).lower()}): "
                f"the {len(log.runs)} runs of this chunk are not stored, the chunks finished "
                "before it are; fix that and rerun grokcast sweep with the same --config and "
                "--out to resume") from None

    def _damaged(self, path: Path, why: object) -> StoreError:
        why = " ".join(str(why).split())  # pyarrow's messages can end in a line break
        # Only what is there to delete (a missing log file leaves its runs file).
        present = [p for p in (self.root / "log" / path.name, self.root / "runs" / path.name)
                   if p.exists()]
        return StoreError(
            f"{str(path)!r} is damaged ({why}): delete {' and '.join(repr(str(p)) for p in present)}, "
            "then rerun grokcast sweep with the same --config and --out to train that chunk's "
            "runs again")

    def _read(self, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        if not self.config_path.is_file():
            raise self.missing_config_error()
        files = self._chunks(table)
        if table == "log":  # a log chunk without its runs file is an unfinished chunk
            committed = {p.name for p in self._chunks("runs")}
            files = [p for p in files if p.name in committed]
            # From the footers, a fifth of the reading time: a finished chunk without its log,
            # a log file that is not its runs file's (another chunk's, another sweep's) or is
            # short of rows read as other runs' numbers, or as fewer runs, without an error.
            self._verify(self.read_config())
        if not files:
            raise StoreError(f"{str(self.root)!r} holds no finished runs yet")
        frames = []
        for path in files:
            try:
                frames.append(pd.read_parquet(path, columns=columns,
                                              page_checksum_verification=True))
            except MemoryError:  # pyarrow's ArrowMemoryError too: the machine's limit, not the file's
                raise
            except Exception:  # pyarrow raises several types for damaged files
                self._check_whole(path)  # a damaged file is named here with what to do;
                if columns is not None:  # a chunk without an asked-for column, as log() names it
                    self._check_columns(table, [(p, list(self._footer(p, ()).schema.names))
                                                for p in files])
                raise  # an intact one failed to read for another reason (threads)
        if columns is None:  # a chunk without a column would read as NaN in its rows
            self._check_columns(table, [(p, list(f.columns)) for p, f in zip(files, frames)])
        return pd.concat(frames, ignore_index=True)

    def _check_columns(self, table: str, found: list[tuple[Path, list[str]]]) -> None:
        """Refuse chunk files that lack a column of ``table``.

        A column is lacking from one chunk when its file is damaged (a flipped bit in the
        footer renames it) or was edited: that chunk is named, to train again. A sweep whose
        every log chunk lacks the same signals, and has no column this grokcast does not
        know, was trained by a grokcast that logged fewer signals (one extended since, or an
        older one): its chunks are not damaged, and deleting them one by one is not the way.
        """
        need = ("run_id", "step", *SIGNAL_NAMES) if table == "log" else RUN_COLUMNS
        lacking = [(p, [c for c in need if c not in names]) for p, names in found]
        bad = [(p, missing) for p, missing in lacking if missing]
        if not bad:
            return
        path, missing = bad[0]
        same = all(names == found[0][1] for _, names in found)
        if (table == "log" and len(bad) == len(found) and same
                and set(missing) <= set(SIGNAL_NAMES) and set(found[0][1]) <= set(need)):
            raise StoreError(
                f"the log of {str(self.root)!r} lacks signal(s) {', '.join(missing)} in every "
                "chunk: it was trained by a grokcast that did not log them, and this one does "
                "(grokcast.signals.SIGNAL_NAMES); read it with the grokcast that trained it, or "
                "train the sweep again into a new --out (a resume cannot add a signal to "
                "stored runs)")
        raise self._damaged(path, f"lacks column(s) {', '.join(missing)}")

    def verify(self) -> None:
        """Check every finished chunk's files from their Parquet footers alone: present, whole,
        holding every column, and the log a row per run and logged step. A damaged one is named
        with what to do.

        Without it a truncated or deleted log file went unnoticed by a resumed sweep (its runs
        file says the runs are done) and surfaced later as missing features; a log file without
        a signal's column was read as that signal being NaN, blamed on the runs diverging.
        """
        self._verify(self.read_config())

    def _verify(self, cfg: SweepConfig) -> None:
        """:meth:`verify` against ``cfg``, sweep.json's config as the caller has read it."""
        n_steps = len(cfg.log.steps(cfg.n_steps))
        chunks = []
        for runs_path in self._chunks("runs"):
            log_path = self.root / "log" / runs_path.name
            if not log_path.is_file():
                raise self._damaged(log_path, "missing")
            chunks.append((runs_path, log_path, self._footer(runs_path, RUN_COLUMNS),
                           self._footer(log_path, ())))
        # Checked over all chunks at once: a sweep logged with other signals lacks them in each.
        self._check_columns("log", [(log_path, list(log_meta.schema.names))
                                    for _, log_path, _, log_meta in chunks])
        passed: set[bytes] = set()
        for runs_path, log_path, runs_meta, log_meta in chunks:
            self._check_chunk_config(runs_path, runs_meta.metadata or {}, cfg, passed=passed)
            self._check_step_type(log_path, log_meta)
            self._check_pair(runs_path, runs_meta, log_path, log_meta, n_steps)

    def _check_pair(self, runs_path: Path, runs_meta: Any, log_path: Path, log_meta: Any,
                    n_steps: int) -> None:
        """Refuse, from the two footers, a log without a row per run and logged step, and a
        log file that is not its runs file's: the digests they record (:data:`CHUNK_DIGEST_KEY`)
        differ, or, where one lacks it (a chunk written before grokcast recorded it, or
        rewritten by hand), the range of their run ids.

        Row counts alone passed a log file copied over another chunk's of the same size: its
        runs were read twice and the runs file's not at all, and a resume called them trained.
        """
        n_runs, n_rows = runs_meta.num_rows, log_meta.num_rows
        if n_rows != n_runs * n_steps:
            raise self._damaged(log_path, f"{n_rows} rows, expected {n_runs} runs x "
                                          f"{n_steps} logged steps")
        key = CHUNK_DIGEST_KEY.encode()
        ours, theirs = (log_meta.metadata or {}).get(key), (runs_meta.metadata or {}).get(key)
        if ours is not None and theirs is not None:
            if ours != theirs:
                raise self._damaged(log_path, f"it is not the log of the runs in "
                                              f"{str(runs_path)!r}: the two record other runs or "
                                              "configs (copied from another chunk or sweep?)")
        else:
            found, listed = _run_id_range(log_meta), _run_id_range(runs_meta)
            if found is not None and listed is not None and found != listed:
                raise self._damaged(log_path, f"it logs runs {found[0]!r} to {found[1]!r}, and "
                                              f"{str(runs_path)!r} lists {listed[0]!r} to "
                                              f"{listed[1]!r} (copied from another chunk?)")

    def _check_step_type(self, path: Path, footer: Any) -> None:
        """Refuse a log chunk whose ``step`` column is not int64, as grokcast writes it: one
        edited by hand (``astype(float)``) turned the whole table's steps into floats, which
        the forecaster file records, refused then as its own field ("window_steps=[0.0,
        ...]"), naming neither the chunk nor the column."""
        found = footer.schema.to_arrow_schema().field("step").type
        if str(found) != "int64":
            raise StoreError(
                f"{str(path)!r} has a step column of type {found}, and a log's steps are int64 "
                "(whole step counts, as grokcast writes them): was the file edited? Write it "
                "back with step as int64, or delete it and "
                f"{str(self.root / 'runs' / path.name)!r}, then rerun grokcast sweep with the "
                "same --config and --out to train that chunk's runs again")

    def _check_whole(self, path: Path) -> None:
        """Raise :meth:`_damaged` unless every page of the file reads: its footer can be whole
        while its data is not (:meth:`verify` reads footers only)."""
        import pyarrow.parquet as pq

        # A damaged footer fails here too; a file written without checksums reads unchecked.
        self._parquet(lambda p: pq.read_table(p, page_checksum_verification=True), path)

    def _footer(self, path: Path, columns: tuple[str, ...]) -> Any:
        """The file's footer (pyarrow's FileMetaData), which must list ``columns``."""
        import pyarrow.parquet as pq

        meta = self._parquet(pq.read_metadata, path)
        missing = [c for c in columns if c not in meta.schema.names]
        if missing:
            raise self._damaged(path, f"lacks column(s) {', '.join(missing)}")
        return meta

    def _check_chunk_config(self, path: Path, footer: dict[bytes, bytes], config: SweepConfig,
                            against: str = "", passed: set[bytes] | None = None) -> None:
        """Refuse a chunk trained under settings other than sweep.json holds now: sweep.json
        edited by hand, after which a resume mixed runs of two settings (an lr, say, which
        the runs table does not show). Chunks written before grokcast recorded it pass.
        ``against``: where ``config`` came from when there is no sweep.json (``--config``).
        ``passed``: the recorded configs already found to agree with ``config``, added to here.
        """
        raw = footer.get(CHUNK_CONFIG_KEY.encode())
        if raw is None or (passed is not None and raw in passed):
            # Every chunk of a sweep records the same bytes, and reading them builds and checks
            # the whole grid twice (0.1 s for 4,800 runs): 30 s per resume of a 300-chunk sweep.
            return
        try:
            trained = SweepConfig.from_dict(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ConfigError) as err:
            raise self._damaged(path, f"its recorded config does not read: {err}") from None
        # The grid's lists and the name say which runs there are, not how each trains: a grid
        # grown by hand keeps its stored runs (one it shrank is refused by _check_in_grid).
        grid = {k: getattr(config, k) for k in ("name", "train_fracs", "weight_decays", "seeds")}
        if dataclasses.replace(trained, **grid) == config:
            if passed is not None:
                passed.add(raw)
            return
        if against:  # no sweep.json: the config given is the one to be written
            raise StoreError(
                f"{str(path)!r} was trained under another config than {against} gives "
                f"({config_diff(trained, config, ('in the chunk', 'in ' + against))}): rerun "
                "with the config the runs were trained with (sweep.json is written from it), "
                "or train into a new --out")
        raise StoreError(
            f"{str(path)!r} was trained under another config than {str(self.config_path)!r} "
            f"holds now ({config_diff(trained, config, ('in the chunk', 'now'))}): sweep.json "
            "was edited after the chunk was written, or the chunk was copied in from another "
            "sweep, and a resume would mix runs of two settings; restore sweep.json, or delete "
            f"{str(path)!r} and {str(self.root / 'log' / path.name)!r} if it was copied in, or "
            "train into a new directory")

    def _parquet(self, read: Callable[[Path], Any], path: Path) -> Any:
        """``read(path)``, a failure named as :meth:`_damaged`, but for running out of memory
        (pyarrow's ArrowMemoryError too: the machine's limit, not the file's)."""
        try:
            return read(path)
        except MemoryError:
            raise
        except Exception as err:  # pyarrow raises several types for damaged files
            raise self._damaged(path, err) from None

    def remove_uncommitted(self) -> list[Path]:
        """Delete log chunks whose runs file was never written (a process killed between the
        two writes: readers skip them, but ``pandas.read_parquet(DIR / "log")`` would not),
        and the temp files of writes cut short (:meth:`_leftovers`; as large as a chunk).
        Only under :meth:`lock`: another writer's temp file is a write in progress."""
        committed = {p.name for p in self._chunks("runs")}
        orphans = [p for p in self._chunks("log") if p.name not in committed] + self._leftovers()
        for path in orphans:
            path.unlink()
        return orphans

    def check_finished(self, *, partial: bool = False) -> None:
        """Refuse a damaged sweep (:meth:`verify`), stored runs outside the config's grid, and an
        unfinished sweep (fewer runs stored than its grid holds) unless ``partial``: numbers
        from it would describe whichever chunks happened to finish."""
        partial = check_bool("partial", partial)  # "no" would be truthy
        config = self.read_config()
        self._verify(config)
        grid = [r.run_id for r in config.runs()]
        stored = self._check_in_grid(grid)
        missing = sorted(set(grid) - stored)
        if missing and not partial:
            raise StoreError(f"the sweep in {str(self.root)!r} is unfinished: "
                             f"{len(grid) - len(missing)} of its {len(grid)} runs are stored "
                             f"({missing[0]!r} is not). Resume it (grokcast sweep with the same "
                             "--config and --out), or use the stored runs alone with --partial")

    def _check_in_grid(self, grid: list[str]) -> set[str]:
        """Refuse stored runs stored twice or outside ``grid`` (run ids); the stored ids."""
        stored = set(self.runs()["run_id"])  # runs() refuses a run stored twice
        extra = sorted(stored - set(grid))
        minus_zero = [r for r in extra if "-wd-0-" in r]  # written before -0.0 became 0.0
        if minus_zero:
            raise StoreError(f"{str(self.root)!r} stores run(s) of weight decay -0.0 "
                             f"({_some(minus_zero)}), which grokcast now reads as 0.0, run id "
                             "'wd0': train the sweep into a new --out directory")
        if extra:
            raise StoreError(f"{str(self.root)!r} stores {len(extra)} run(s) outside the grid of its "
                             f"sweep.json ({_some(extra)}): was sweep.json edited? Restore it, "
                             "or train the edited grid into a new --out directory")
        return stored

    def _stored_twice(self, table: str, twice: list[str]) -> StoreError:
        """What a reader says of the runs ``twice`` (ids) found in more than one of ``table``'s
        chunks: two writers at once, or chunks copied in."""
        first = twice[0]
        committed = {p.name for p in self._chunks("runs")}
        # The files holding it, not its rows' chunk column: a chunk file copied in under
        # another name records the name it was written under ("in chunks ['chunk-00000',
        # 'chunk-00000']" named one file twice and the copy not at all).
        chunks = [p.stem for p in self._chunks(table) if p.name in committed and first in set(
            self._parquet(lambda q: pd.read_parquet(q, columns=["run_id"])["run_id"], p))]
        more = f" (and {len(twice) - 1} other run(s))" if len(twice) > 1 else ""
        return StoreError(f"{str(self.root)!r} stores run {first!r}{more} more than once, in "
                          f"chunks {chunks}: two sweeps wrote into it at once, or chunks were "
                          "copied in. Delete the later chunks' log and runs files, or train into "
                          "a new --out directory")

    def runs(self) -> pd.DataFrame:
        """The runs table, sorted by run_id."""
        runs = self._read("runs").sort_values("run_id", ignore_index=True)
        twice = runs["run_id"][runs["run_id"].duplicated()]
        if len(twice):
            raise self._stored_twice("runs", sorted(set(twice)))
        return runs

    def log(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The log table, sorted by (run_id, step); ``columns``: those signals only (``run_id``
        and ``step`` always come with them)."""
        if columns is not None:
            allowed = ("run_id", "step", *SIGNAL_NAMES)
            given = [columns] if isinstance(columns, str) else list(columns)  # one name, not letters
            unknown = [c for c in given if c not in allowed]
            if unknown:
                raise ValueError(f"columns={columns!r} is not allowed: {unknown[0]!r} is not a log "
                                 f"column (the log's: {', '.join(allowed)})")
            # Each once: a name given twice gave two columns, and log[name] a DataFrame.
            columns = ["run_id", "step", *dict.fromkeys(c for c in given if c not in ("run_id", "step"))]
        log = self._read("log", columns).sort_values(["run_id", "step"], ignore_index=True)
        # A run's steps increase, so only a run stored in two chunks repeats a step between
        # neighbouring rows: compared as integers, the ids only there.
        steps = log["step"].to_numpy()
        at = np.flatnonzero(steps[1:] == steps[:-1])
        if len(at):
            ids = log["run_id"].to_numpy()
            twice = ids[at][ids[at] == ids[at + 1]]
            if len(twice):
                raise self._stored_twice("log", sorted(set(twice)))
        return log
