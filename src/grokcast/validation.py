"""Checks of the public functions' scalar arguments, with one wording for every error:
``NAME=VALUE is not allowed: expected ...``, naming what was received and what is allowed.

Each check returns the value as a plain Python number (numpy scalars are accepted, bools are
not: ``True`` is an int to Python but never a meaningful count). The config dataclasses keep
their own checks, which raise :class:`grokcast.config.ConfigError` naming the TOML field.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ErrorType = Callable[[str], Exception]
MAX_FLOAT_INT = int(np.finfo(np.float64).max)  # an int beyond it has no float
# Two label thresholds this close (relatively) are one level: float32 rounds 0.9 to
# 0.8999999762 (2.6e-8 off; float32 is good to 6e-8), which a float32 Parquet or JSON column
# hands back as a plain float; no study tells apart levels one part in a million apart.
THRESHOLD_REL_TOL = 1e-6


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None, *,
              error: ErrorType = ValueError) -> int:
    """``value`` as an int, refused unless it is an integer >= ``minimum`` (and <= ``maximum``)."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum
            or (maximum is not None and value > maximum)):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise error(f"{name}={value!r} is not allowed: expected an integer {allowed}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool, refused unless it is one (a string such as ``"no"`` is truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} is not allowed: expected True or False")
    return bool(value)


def check_number(name: str, value: Any, lo: float, hi: float, *, closed: str = "",
                 error: ErrorType = ValueError) -> float:
    """``value`` as a float, refused unless it is a number between ``lo`` and ``hi``.

    ``closed`` names the ends that are allowed: ``""`` for (lo, hi), ``"lo"``, ``"hi"`` or
    ``"both"``. NaN is never allowed.
    """
    if closed not in ("", "lo", "hi", "both"):
        raise ValueError(f"closed={closed!r} is not allowed: expected '', 'lo', 'hi' or 'both'")
    lo_in, hi_in = closed in ("lo", "both"), closed in ("hi", "both")
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    number = plain_number(value) if ok else value
    # NaN fails every comparison; no float() here, which a 400-digit int would overflow.
    ok = ok and (lo <= number if lo_in else lo < number) and (number <= hi if hi_in else number < hi)
    ok = ok and (not isinstance(number, int) or abs(number) <= MAX_FLOAT_INT)  # float() below
    if not ok:
        ends = f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"
        raise error(f"{name}={value!r} is not allowed: expected a number in {ends}")
    return float(number)


def check_list(name: str, values: Any) -> list[Any]:
    """``values`` (any iterable: a list, an array, a Series, a generator) as a list, refusing a
    string and a lone number (``thresholds=0.9`` written for ``(0.9,)``) by name."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        hint = f", e.g. {name}=({values!r},)" if isinstance(values, numbers.Number) else ""
        raise ValueError(f"{name}={values!r} is not allowed: expected a non-empty list of "
                         f"numbers{hint}")
    return list(values)


def check_path(name: str, value: Any, expected: str) -> Path:
    """``value`` as a Path, refused unless it is a str or os.PathLike: ``None``, or a DataFrame
    given for a log file, named (``Path(value)`` says only "expected str, bytes or os.PathLike
    object, not NoneType", naming neither the argument nor what it is for)."""
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path (a str or os.PathLike) to {expected}, got "
                        f"{type(value).__name__}")
    return Path(value)


def check_steps(steps: pd.Series, *, error: ErrorType = ValueError) -> np.ndarray:
    """A log's ``step`` column as int64 step counts, refused unless every value is a whole
    number from 0 to 2**63 - 1 (int64).

    Integer columns pass as they are. Others are read as numbers first: floats (a CSV column
    with an empty cell, a chunk written by pandas after ``astype(float)``), text (``"12"``) and
    pyarrow-backed columns (which have no ``%``). Booleans, times and complex numbers are
    refused, not read as the numbers numpy casts them to (True as step 1, a date as its
    nanoseconds). A bad value is named as it was written.
    """
    kind = pd.api.types.infer_dtype(steps, skipna=True)
    if kind in ("boolean", "complex", "datetime64", "datetime", "date", "timedelta64",
                "timedelta", "time", "period", "interval"):
        raise error(f"column step must hold whole numbers of optimizer steps, got "
                    f"{_as_written(steps.iloc[0])} (a column of {kind} values)")
    number = pd.to_numeric(steps, errors="coerce")
    raw = number.to_numpy()
    if raw.dtype.kind in "iu":  # exact: a float would round 2**63 - 1 up to 2**63
        huge = raw > np.iinfo(np.int64).max if raw.dtype.kind == "u" else np.zeros(raw.shape, bool)
    else:
        raw = number.to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):  # inf % 1 is NaN: refused below as not whole
            not_whole = ~np.isfinite(raw) | (raw % 1 != 0)
        if not_whole.any():
            raise error(f"column step must hold whole numbers of optimizer steps, got "
                        f"{_as_written(steps.iloc[int(np.flatnonzero(not_whole)[0])])}")
        huge = raw >= 2.0**63
    if huge.any():  # int64 would wrap it (to -2**63, shown as such in later errors)
        raise error(f"column step must hold step counts below 2**63 (int64), got "
                    f"{steps.iloc[int(np.flatnonzero(huge)[0])]}")
    if (raw < 0).any():  # steps count the optimizer's updates: a window W reads steps 0..W-1
        raise error(f"column step must hold step counts from 0, got "
                    f"{steps.iloc[int(np.flatnonzero(raw < 0)[0])]}")
    return raw.astype(np.int64)


def _as_written(value: Any) -> str:
    """A value of a column as its file shows it: text quoted, numbers as they print (not
    "np.float64(0.5)" or "np.True_")."""
    return repr(value) if isinstance(value, str) else str(value)


def plain_number(value: Any) -> Any:
    """A numpy scalar as the plain Python number it prints as; other values unchanged.

    A float32 or float16 scalar is the decimal it prints as: ``np.float32(0.9)`` is 0.9, not
    0.8999999762 (its exact value), which as a label threshold or a weight decay would be
    another level, and another key in results and run ids than the 0.9 of a TOML file."""
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(str(value))
    return value.item() if isinstance(value, np.generic) else value


def same_threshold(a: float, b: float) -> bool:
    """Whether ``a`` and ``b`` are the same label threshold: equal within
    :data:`THRESHOLD_REL_TOL` (relatively), so that 0.9 read back from float32 is still 0.9."""
    return math.isclose(float(plain_number(a)), float(plain_number(b)),
                        rel_tol=THRESHOLD_REL_TOL, abs_tol=0.0)


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook``: a JSON object holding a key twice is refused,
    as TOML refuses it (plain ``json`` keeps the last value, silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out
