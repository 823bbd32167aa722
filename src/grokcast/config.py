"""Typed configuration: one run, and the sweep grid that expands into runs.

Every dataclass is frozen and validates itself in ``__post_init__``; a bad value raises
:class:`ConfigError` naming the field, the value received and what is allowed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grokcast.validation import MAX_FLOAT_INT, check_path, plain_number, unique_keys

INIT_SCHEMES = ("torch", "nanda")
PRECISIONS = ("fp32", "bf16")
MAX_P = 1000  # the task has p * p examples, each trained on full-batch: p = 1000 is 10^6 of them
MAX_SEED = 2**63 - 1  # seeds are stored as int64
# A run's seed seeds torch.Generator, whose Mersenne Twister keeps its low 32 bits: seeds equal
# mod 2**32 would train the same run under two names. (split_seed goes to numpy: all 64.)
MAX_RUN_SEED = 2**32 - 1
MAX_WIDTH = 1 << 16  # d_model, d_mlp: one 65,536-wide square matrix is already 16 GiB per run
# Rows of one run's log held in memory while it trains (13 signals each); with the default
# schedule (every 100 steps) that allows 10^7 steps.
MAX_LOGGED_STEPS = 100_000


class ConfigError(ValueError):
    """A configuration value is outside what grokcast accepts; ``field`` names it, if one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name}={value!r} is not allowed: expected {allowed}", field=name)


def _plain_numbers(config: Any) -> None:
    """A numpy scalar field (``n_steps=np.int64(300)``) becomes the plain number a TOML file
    holds, before the checks: the config is then compared, hashed and written as JSON alike."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, np.integer | np.floating):
            object.__setattr__(config, f.name, plain_number(value))


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
            or (maximum is not None and value > maximum)):
        _fail(name, value, f"an integer >= {minimum}" if maximum is None
              else f"an integer in [{minimum}, {maximum}]")


# The smallest normal and the largest float32: training runs in float32, where a setting below
# the first rounds to 0 or loses digits (eps = 1e-50 made every run's update 0/0) and one
# above the second is inf.
FLOAT32_RANGE = (1.1754943508222875e-38, 3.4028234663852886e38)


def _check_real(name: str, value: Any, *, lo: float, hi: float = math.inf,
                lo_open: bool = False, hi_open: bool = True, float32: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    # An int is finite, but one too large for a float (a 400-digit TOML integer) is refused
    # here: math.isfinite, and every float() after this check, would raise OverflowError.
    ok = ok and (math.isfinite(value) if isinstance(value, float) else abs(value) <= MAX_FLOAT_INT)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        _fail(name, value, f"a finite number in {left}{lo}, {hi}{right}")
    if float32 and value != 0 and not FLOAT32_RANGE[0] <= abs(value) <= FLOAT32_RANGE[1]:
        zero = "" if lo_open else "0 or "
        _fail(name, value, f"{zero}a number float32 holds, between {FLOAT32_RANGE[0]:.4g} and "
                           f"{FLOAT32_RANGE[1]:.4g} in size (training runs in float32)")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the 1-layer, no-LayerNorm transformer."""

    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 256
    init: str = "torch"
    init_scale: float = 1.0
    # Operands of the matrix products: "bf16" rounds them to bfloat16 (opt-in, faster where the
    # hardware has bf16 units); parameters, optimiser state and everything else stay fp32.
    precision: str = "fp32"

    def __post_init__(self) -> None:
        _plain_numbers(self)
        _check_int("model.d_model", self.d_model, 1, MAX_WIDTH)
        _check_int("model.n_heads", self.n_heads, 1)
        _check_int("model.d_mlp", self.d_mlp, 1, MAX_WIDTH)
        if self.d_model % self.n_heads:
            _fail("model.n_heads", self.n_heads, f"a divisor of d_model={self.d_model}")
        if self.init not in INIT_SCHEMES:
            _fail("model.init", self.init, f"one of {INIT_SCHEMES}")
        _check_real("model.init_scale", self.init_scale, lo=0.0, lo_open=True, float32=True)
        # A TOML 1 is an int: the runs table would get an integer column beside other chunks'
        # floats (a resume with 1.0 is the same config).
        object.__setattr__(self, "init_scale", float(self.init_scale))
        if self.precision not in PRECISIONS:
            _fail("model.precision", self.precision, f"one of {PRECISIONS}")


@dataclass(frozen=True)
class OptimConfig:
    """Full-batch AdamW settings shared by every run (weight decay is per run)."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-8

    def __post_init__(self) -> None:
        _plain_numbers(self)
        _check_real("optim.lr", self.lr, lo=0.0, lo_open=True, float32=True)
        _check_real("optim.beta1", self.beta1, lo=0.0, hi=1.0)
        _check_real("optim.beta2", self.beta2, lo=0.0, hi=1.0)
        _check_real("optim.eps", self.eps, lo=0.0, lo_open=True, float32=True)
        for name in ("lr", "beta1", "beta2", "eps"):  # as init_scale: a TOML 1 is an int
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class LogConfig:
    """Which steps get a log row: every step below ``dense_until``, then every ``every``."""

    dense_until: int = 300
    every: int = 100

    def __post_init__(self) -> None:
        _plain_numbers(self)
        _check_int("log.dense_until", self.dense_until, 0)
        _check_int("log.every", self.every, 1)

    @property
    def _first_sparse(self) -> int:
        """The first multiple of ``every`` at or past ``dense_until``."""
        return -(-self.dense_until // self.every) * self.every

    def steps_below(self, n: int, *, limit: int) -> list[int]:
        """The first ``limit`` (or fewer) logged steps below ``n``, without listing the rest
        (``n`` can be 10**12)."""
        first = itertools.islice(itertools.chain(
            range(min(self.dense_until, n)),
            range(self._first_sparse, n, self.every)), limit)
        return list(first)

    def count(self, n_steps: int) -> int:
        """``len(steps(n_steps))``, without listing them (the size check of 10^11 steps)."""
        start = self._first_sparse
        sparse = (n_steps - start) // self.every + 1 if n_steps >= start else 0
        last_listed = n_steps < self.dense_until or (n_steps >= start and
                                                     (n_steps - start) % self.every == 0)
        return min(self.dense_until, n_steps + 1) + sparse + (0 if last_listed else 1)

    def steps(self, n_steps: int) -> list[int]:
        """Logged steps in ``[0, n_steps]``; the final model (step ``n_steps``) is always logged."""
        dense = range(min(self.dense_until, n_steps + 1))
        sparse = range(self._first_sparse, n_steps + 1, self.every)
        return sorted(set(dense) | set(sparse) | {n_steps})


def n_train_examples(p: int, train_frac: float) -> int:
    """The train split's size, ``round(train_frac * p * p)``: Python's rounding, a half to the
    even neighbour (p = 23, f = 0.5: 264.5 -> 264), after the products' float rounding. The one
    place it is computed: ``p**2`` instead of ``p * p`` rounds differently for some fractions
    (p = 13, f = 0.002958579881656805, the float above 1/338: 1 example against 0)."""
    return round(train_frac * p * p)


_RUN_ID = re.compile(r"p(\d+)-f.+-wd.+-s\d+-ss\d+")  # RunConfig.run_id's form


def _collision(values: tuple[Any, ...], key: Callable[[Any], Any]) -> tuple[Any, Any, Any] | None:
    """The first two ``values`` with equal ``key(value)``, and that key; None if all differ."""
    seen: dict[Any, Any] = {}
    for v in values:
        k = key(v)
        if k in seen:
            return seen[k], v, k
        seen[k] = v
    return None


def decay_factor(lr: float, weight_decay: float) -> float:
    """AdamW's per-step weight factor ``1 - lr * weight_decay`` as the trainer computes it on
    float32 weights (:class:`grokcast.train._AdamW` computes it in the weights' dtype, in torch;
    torch.optim.AdamW rounds so too), for the config's checks."""
    one, lr32, wd32 = np.float32(1), np.float32(lr), np.float32(weight_decay)
    return float(one - lr32 * wd32)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run, and so its log."""

    p: int = 23
    train_frac: float = 0.3
    weight_decay: float = 1.0
    seed: int = 0
    split_seed: int = 0
    n_steps: int = 10_000
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        _plain_numbers(self)
        _check_int("p", self.p, 2, MAX_P)
        _check_real("train_frac", self.train_frac, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        _check_real("weight_decay", self.weight_decay, lo=0.0, float32=True)
        # A TOML 0 is an int: stored as it came, a chunk of weight_decay 0 runs would write an
        # integer column beside other chunks' floats, and one Parquet dataset cannot hold both.
        # And -0.0 as 0.0: equal numbers, but their run ids would differ ("wd-0").
        for name in ("train_frac", "weight_decay"):
            object.__setattr__(self, name, float(getattr(self, name)) + 0.0)
        _check_int("seed", self.seed, 0, MAX_RUN_SEED)
        _check_int("split_seed", self.split_seed, 0, MAX_SEED)
        self._check_decay()
        _check_int("n_steps", self.n_steps, 1)  # zero steps: no training, nothing to analyse
        for name, kind in (("model", ModelConfig), ("optim", OptimConfig), ("log", LogConfig)):
            if not isinstance(getattr(self, name), kind):
                _fail(name, getattr(self, name), f"a {kind.__name__}")
        if self.log.count(self.n_steps) > MAX_LOGGED_STEPS:
            _fail("n_steps", self.n_steps, f"at most {MAX_LOGGED_STEPS:,} logged steps per run "
                  f"(log.dense_until={self.log.dense_until}, log.every={self.log.every}): fewer "
                  "steps, or a larger log.every")
        n_train = n_train_examples(self.p, self.train_frac)
        if not 1 <= n_train < self.p**2:
            _fail("train_frac", self.train_frac,
                  f"a fraction leaving at least one train and one val example of p*p={self.p**2}")

    def _check_decay(self) -> None:
        # AdamW multiplies the weights by 1 - lr * λ in float32, as torch.optim.AdamW does on
        # float32 parameters: a λ too small for that product is no decay at all. (One at or
        # past 1 / lr zeroes or flips the weights every step; the tests use it to make a run
        # diverge, and a run that does is stored as diverged.)
        lr, wd = self.optim.lr, self.weight_decay
        if wd > 0 and decay_factor(lr, wd) == 1.0:
            _fail("weight_decay", wd, f"0, or a decay float32 can apply at optim.lr={lr:g}: the "
                                      "factor 1 - lr * weight_decay rounds to 1 in float32 (no "
                                      f"decay at all), so a weight_decay above {2**-25 / lr:.3g}")

    @property
    def run_id(self) -> str:
        """Stable, human-readable identifier: unique within a sweep."""
        return (f"p{self.p}-f{self.train_frac:g}-wd{self.weight_decay:g}"
                f"-s{self.seed}-ss{self.split_seed}")

    @staticmethod
    def p_of_run_id(run_id: str) -> int | None:
        """The p a run id as :attr:`run_id` writes it names; None for an id of another form."""
        match = _RUN_ID.fullmatch(run_id)
        return int(match.group(1)) if match else None

    def task(self) -> dict[str, Any]:
        """What the run's early signals depend on besides its grid values: p, the model and
        the optimiser (a forecaster file records its training runs' task)."""
        return {"p": self.p, "model": dataclasses.asdict(self.model),
                "optim": dataclasses.asdict(self.optim)}

    @property
    def split_key(self) -> tuple[int, float, int]:
        """Runs with equal split keys see the same train/val split."""
        return (self.p, self.train_frac, self.split_seed)


@dataclass(frozen=True)
class SweepConfig:
    """A grid of runs: train fraction x weight decay x seed, sharing everything else."""

    name: str = "sweep"
    p: int = 23
    train_fracs: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6)
    weight_decays: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    split_seed: int = 0
    n_steps: int = 10_000
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        _plain_numbers(self)
        if not isinstance(self.name, str) or not self.name.strip():
            _fail("name", self.name, "a non-empty string")
        for name in ("train_fracs", "weight_decays", "seeds"):
            given = values = getattr(self, name)
            if isinstance(values, np.ndarray) and values.ndim == 1:  # np.arange(3), say
                values = list(values)  # numpy scalars: plain_number below
            # A list or a range (seeds=range(100)) reads as naturally as a tuple in Python;
            # numpy scalars become the plain numbers a TOML file holds.
            if isinstance(values, list | tuple | range):
                values = tuple(plain_number(v) for v in values)
                object.__setattr__(self, name, values)  # frozen: the stored grid is a tuple
            if not isinstance(values, tuple) or not values:
                _fail(name, given, "a non-empty list")
            if any(isinstance(v, (list, tuple, dict, np.ndarray)) for v in values):
                _fail(name, values, "a flat list of numbers")
            if (twice := _collision(values, lambda v: v)) is not None:
                # 1e-4 and 0.0001 print alike in the tuple: name the value.
                _fail(name, values, f"a list without repeated values ({twice[1]!r} is there twice)")
        # Validate every field once through RunConfig so errors name the bad value, and the
        # list it came from (the config's key is the plural).
        lists = {"train_frac": "train_fracs", "weight_decay": "weight_decays", "seed": "seeds"}
        for f, wd, s in itertools.product(self.train_fracs, self.weight_decays, self.seeds):
            try:
                self._run(f, wd, s)
            except ConfigError as err:
                if err.field not in lists:
                    raise
                raise ConfigError(f"{err} (an entry of {lists[err.field]})", err.field) from None
        for name in ("train_fracs", "weight_decays"):  # as RunConfig stores them (0 -> 0.0)
            object.__setattr__(self, name, tuple(float(v) + 0.0 for v in getattr(self, name)))
        self._check_run_ids_unique()

    def check_trainable(self) -> None:
        """Refuse, before a new sweep trains, a grid that would waste its training: fractions
        giving one train set (the same runs under two names), or a schedule that logs fewer
        than two steps before the last (no window could be analysed). Not checked when a
        config is read, so a sweep stored by an older grokcast still opens."""
        self._check_train_sets_differ()
        self._check_decays_differ()
        self._check_some_window_fits()

    def _check_decays_differ(self) -> None:
        # Weight decays whose float32 factors 1 - lr * λ are equal train the same runs twice.
        same = _collision(self.weight_decays, lambda wd: decay_factor(self.optim.lr, wd))
        if same is not None:
            a, b, factor = same
            _fail("weight_decays", self.weight_decays,
                  f"weight decays that train differently: {a!r} and {b!r} give the same float32 "
                  f"factor 1 - lr * weight_decay = {factor!r} at optim.lr={self.optim.lr:g}")

    def _check_some_window_fits(self) -> None:
        # The smallest window, W = 2, reads two logged steps below W <= n_steps.
        below = self.log.steps_below(self.n_steps, limit=2)
        if len(below) < 2:
            _fail("n_steps", self.n_steps,
                  f"a run that logs at least two steps before its last (log.dense_until="
                  f"{self.log.dense_until}, log.every={self.log.every} log {below} below it): "
                  "a window's slopes need two, so no analysis could read this sweep")

    def _check_train_sets_differ(self) -> None:
        # Fractions that round to one train-set size draw the same examples from one split
        # permutation: the same runs twice, under two names.
        same = _collision(self.train_fracs, lambda f: n_train_examples(self.p, f))
        if same is not None:
            a, b, n = same
            _fail("train_fracs", self.train_fracs,
                  f"fractions that give different train sets: {a!r} and {b!r} both give "
                  f"round(f * p * p) = {n} of the p * p = {self.p**2} examples")

    def _check_run_ids_unique(self) -> None:
        # Run ids print the grid values to 6 significant digits (%g): two values that agree
        # that far would share an id, and so a place in the store.
        for name in ("train_fracs", "weight_decays"):
            values = getattr(self, name)
            if (same := _collision(values, lambda v: f"{v:g}")) is not None:
                a, b, key = same
                _fail(name, values, f"values that differ in their first 6 significant digits "
                                    f"(run ids print them so: {a!r} and {b!r} are both {key!r})")

    def _run(self, train_frac: float, weight_decay: float, seed: int) -> RunConfig:
        return RunConfig(p=self.p, train_frac=train_frac, weight_decay=weight_decay, seed=seed,
                         split_seed=self.split_seed, n_steps=self.n_steps, model=self.model,
                         optim=self.optim, log=self.log)

    def runs(self) -> list[RunConfig]:
        """The grid expanded in (train_frac, weight_decay, seed) order."""
        return [self._run(f, wd, s) for f, wd, s in
                itertools.product(self.train_fracs, self.weight_decays, self.seeds)]

    def task(self) -> dict[str, Any]:
        """What the runs' early signals depend on besides the grid: p, the model and the
        optimiser. A forecaster file records it, and refuses runs of another task, whose
        features it would read on another scale."""
        return self._run(self.train_fracs[0], self.weight_decays[0], self.seeds[0]).task()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("train_fracs", "weight_decays", "seeds"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SweepConfig:
        """Build from a parsed TOML/JSON mapping; unknown keys are an error."""
        if not isinstance(raw, dict):
            raise ConfigError(f"a sweep config must be a table of settings (a TOML document or a "
                              f"JSON object), got a {type(raw).__name__}: {raw!r:.80}")
        raw = dict(raw)
        sub = {"model": ModelConfig, "optim": OptimConfig, "log": LogConfig}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in sub:
                if not isinstance(value, dict):
                    _fail(key, value, "a table of settings")
                kwargs[key] = _build(sub[key], value, prefix=f"{key}.")
            elif key in {f.name for f in dataclasses.fields(cls)}:
                kwargs[key] = tuple(value) if isinstance(value, list) else value
            else:
                allowed = sorted(f.name for f in dataclasses.fields(cls))
                raise ConfigError(f"unknown config key {key!r}: allowed keys are {allowed}")
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> SweepConfig:
        """Read a ``.toml`` or ``.json`` sweep config, or a sweep directory's ``sweep.json``
        (the config it holds, beside the grokcast version that wrote it)."""
        path = check_path("path", path, "a sweep config (.toml or .json)")
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise ConfigError(f"config file {str(path)!r} {what}")
        if path.suffix.lower() not in (".toml", ".json"):
            raise ConfigError(f"config file {str(path)!r} is not allowed: expected a .toml or .json "
                              "file (configs/paper.toml shows every key)")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(f"config file {str(path)!r} is not UTF-8 text: {err}") from None
        try:
            raw = (json.loads(text, object_pairs_hook=unique_keys) if path.suffix.lower() == ".json"
                   else tomllib.loads(text))
        except (tomllib.TOMLDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
            raise ConfigError(f"config file {str(path)!r} is not valid: {err}") from None
        except RecursionError:
            raise ConfigError(f"config file {str(path)!r} is not valid: nested too deeply") from None
        if isinstance(raw, dict) and set(raw) - {"build"} == {"grokcast_version", "config"}:  # a sweep.json
            raw = raw["config"]
        return cls.from_dict(raw)


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"unknown config key {prefix + key!r}: allowed keys are "
                              f"{sorted(prefix + n for n in names)}")
    return cls(**raw)
