"""Numbers and names as the paper prints them: Typst markup, typographic minus, CIs and
p-values (pure: values in, markup out)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeGuard

from grokcast.stats import format_p, strength_key

MINUS = "\u2212"  # typographic minus; the tables and text print negative numbers with it
NA = "n/a"
_TYPST_SPECIAL = set("\\#$*_`<>@[]~/=+-'\"")


def _finite(x: Any) -> TypeGuard[float]:
    return x is not None and math.isfinite(float(x))


def fmt(x: float | None, digits: int = 3) -> str:
    """``0.917``; negative numbers with a typographic minus; None/NaN -> ``n/a``."""
    if not _finite(x):
        return NA
    return f"{float(x):.{digits}f}".replace("-", MINUS)


def fmt_apart(a: float, b: float, digits: int = 3) -> tuple[str, str]:
    """``a`` and ``b`` as :func:`fmt` writes them, with as many more digits (up to 6) as it
    takes to show that they differ: a sentence saying one is higher must not print
    "0.979 against 0.979". Equal values (up to float error) keep ``digits``: there is no
    difference to show, and more digits only made a tie read "0.978947 against 0.978947"."""
    if strength_key(a) == strength_key(b):
        return fmt(a, digits), fmt(b, digits)
    for d in range(digits, 7):
        if fmt(a, d) != fmt(b, d):
            break
    return fmt(a, d), fmt(b, d)


def fmt_signed(x: float | None, digits: int = 3) -> str:
    """``+0.137`` / ``−0.120``; a difference that is not zero with as many more digits (up to
    6) as it takes to show it: a CI end of 0.0004 printed "+0.000" beside "significantly"
    read as a CI that touches zero. Zero up to float error prints ``+0.000``."""
    if not _finite(x):
        return NA
    x = float(x)
    if round(x, 12) == 0:  # AUROC differences are ratios of pair counts: this is zero
        return f"{0.0:+.{digits}f}"
    d = digits
    while d < 6 and float(f"{x:.{d}f}") == 0:
        d += 1
    return f"{x:+.{d}f}".replace("-", MINUS)


def fmt_ci(ci: Sequence[float | None] | None, *, signed: bool = False) -> str:
    """``[0.812, 1.000]`` (``[+0.031, +0.271]`` when signed)."""
    f = fmt_signed if signed else fmt
    lo, hi = (ci or (None, None))[:2]
    return f"[{f(lo)}, {f(hi)}]"


def fmt_estimate(entry: dict | None, key: str = "auroc", *, signed: bool = False) -> str:
    """``0.917 [0.812, 1.000]``: an AUROC (or a difference) and its CI, as in Tables 1–2."""
    if not entry or not _finite(entry.get(key)):
        return NA
    f = fmt_signed if signed else fmt
    return f"{f(entry[key])} {fmt_ci(entry.get('ci'), signed=signed)}"


def fmt_p(p: float | None, n_resamples: int | None = None, alpha: float | None = None) -> str:
    """One-sided bootstrap p-value: ``0.002``, ``< 0.001``; see :func:`grokcast.stats.format_p`.

    ``alpha``: the significance level a sentence beside it judges ``p`` by (``p < alpha``). A
    p-value below it that rounds up to it (99 of 2,000 resamples: 0.0495, "0.050") is printed
    with the digits that show it below (up to 6, then ``< 0.05``): "0.050" beside "significant
    at the 5% level" read as the opposite of the verdict.
    """
    if not _finite(p):
        return NA
    text = format_p(p, n_resamples)
    if alpha is None or not p < alpha or text.startswith("<"):
        return text
    digits = 3
    while float(text) >= alpha and digits < 6:
        digits += 1
        text = str(Decimal(repr(float(p))).quantize(Decimal(1).scaleb(-digits),
                                                    rounding=ROUND_HALF_UP))
    # Within 5e-7 below it (a Fisher p, not a count over resamples) six digits round up too.
    return text if float(text) < alpha else f"< {alpha:g}"


def _p_text(p: float | None, n_resamples: int | None = None, alpha: float | None = None) -> str:
    """``= 0.002`` or ``< 0.001``: what follows a p-value's name (``alpha``: :func:`fmt_p`)."""
    text = fmt_p(p, n_resamples, alpha)
    return text if text.startswith("<") else f"= {text}"


def p_clause(diff: dict, alpha: float | None = None) -> str:
    """``p₁ = 0.002`` or ``p₁ < 0.001`` for a paired difference of ``analysis.json``
    (``alpha``: the level a verdict beside it uses, :func:`fmt_p`)."""
    return f"p₁ {_p_text(diff.get('p_one_sided'), diff.get('n_resamples'), alpha)}"


def fmt_sci(x: Any) -> str:
    """``1e-8`` as configs write it (Python's ``g`` prints ``1e-08``); NA if not finite."""
    return format(x, "g").replace("e-0", "e-").replace("e+0", "e+") if _finite(x) else NA


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: 0.123 -> ``12.3%``."""
    return NA if not _finite(x) else f"{100 * float(x):.{digits}f}%"


def plural(n: int, noun: str) -> str:
    """``noun`` as it follows a count of ``n``: ``run`` after 1, ``runs`` after 0 or 2; a
    fraction's noun follows its denominator (``1/1 run``, ``0/1 run``, ``9/48 runs``)."""
    return noun if n == 1 else f"{noun}s"


def fmt_int(n: int) -> str:
    """Thousands separated by commas: 12345 -> ``12,345``."""
    return f"{int(n):,}"


def fmt_duration(seconds: float | None) -> str:
    """``42 s``, ``12.5 min`` or ``1.6 h``."""
    if not _finite(seconds):
        return "not recorded"
    s = float(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def fmt_threshold(key: str | float) -> str:
    return f"{float(key):g}"


def esc(text: Any) -> str:
    """Escape text for Typst markup (so ``[``, ``_``, ``<``, ``//``, ``-`` print literally)."""
    return "".join("\\" + ch if ch in _TYPST_SPECIAL else ch for ch in str(text))


def code(name: str) -> str:
    """A feature name in monospace (Typst raw text; names hold no backticks)."""
    if "`" in name:
        raise ValueError(f"name={name!r} is not allowed: expected no backticks")
    return f"`{name}`"
