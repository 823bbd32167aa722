"""Render the paper: its context from ``analysis.json``, a Typst template, the PDF.

Every number in the paper is read from the results directory (``analysis.json`` and, for
figure 5's pair of features, ``features.parquet``) and handed to ``paper.typ`` through
``context.json``. The modules beside this one write it, each pure (dicts in, Typst markup
out): :mod:`~grokcast.paper.formatting` prints numbers and names,
:mod:`~grokcast.paper.sentences` chooses each sentence that compares two numbers from their
confidence intervals and p-values (never one written for one particular outcome),
:mod:`~grokcast.paper.claims` sets the reference paper's claims beside ours (its values, in
``grokcast/paper/reference_paper.json``, appear only in the appendix that does so), and
:mod:`~grokcast.paper.context` gathers what the template prints.

Strings in the context are Typst *markup*: data that goes into them passes through
:func:`~grokcast.paper.formatting.esc`, feature names through
:func:`~grokcast.paper.formatting.code`.

Layout written by :func:`render_paper` into ``out_dir`` (default: the results directory)::

    paper.pdf
    table1.tex  table2.tex  table3.tex   (copies, for LaTeX users; also the .md tables)
    paper-src/paper.typ                  (the template; ``typst.compile("paper-src/paper.typ")``
                                          with the typst Python package recompiles it)
    paper-src/context.json               (every sentence and number the template prints)
    paper-src/figures/fig*.pdf
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from grokcast import figures as F
from grokcast.paper.context import EARLY_STOP_DIR, build_context
from grokcast.validation import check_bool, check_path

TEMPLATE_DIR = Path(__file__).resolve().parent
TEMPLATE = "paper.typ"


def template_files() -> list[Path]:
    """The template's files, which :func:`render_paper` copies into ``paper-src/``."""
    return [tpl for pattern in ("*.typ", "*.yml") for tpl in sorted(TEMPLATE_DIR.glob(pattern))]


def _timestamp(created: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(created).timestamp()) if created else None
    except ValueError:
        return None


def import_typst() -> Any:
    """The typst compiler's module, or an error that says how to install it (it is one of
    grokcast's dependencies: only an odd install lacks it)."""
    try:
        import typst
    except ImportError as err:
        raise ValueError(f"rendering the paper needs the typst package, which is not importable "
                         f"({err}): pip install 'typst>=0.12'") from None
    return typst


def render_paper(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                 early_stop: bool = True) -> Path:
    """Render ``paper.pdf`` from a results directory.

    Draws the figures first (into ``results_dir/figures``) unless that directory's
    ``figures.json`` says this grokcast drew them from these results
    (:func:`grokcast.figures.figures_current`), writes the Typst source and ``context.json``
    to ``out_dir/paper-src``, compiles ``out_dir/paper.pdf``, and copies the LaTeX/Markdown
    tables next to it.

    Parameters
    ----------
    results_dir : directory written by :func:`grokcast.analysis.write_results`
    out_dir : where the PDF goes; default ``results_dir``
    early_stop : give the paper an "Early stopping" section when ``results_dir/early_stop``
        holds a study (``grokcast early-stop-study``); False leaves it out, and that directory
        unread, whatever it holds

    Returns
    -------
    Path of the PDF.
    """
    typst = import_typst()
    from grokcast.store import atomic_write_bytes

    check_path("results_dir", results_dir, "a results directory (grokcast analyze --out)")
    if out_dir is not None:
        check_path("out_dir", out_dir, "the directory for paper.pdf")
    check_bool("early_stop", early_stop)
    res = F.load_results(results_dir)
    out = Path(out_dir) if out_dir is not None else res.root
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={str(out)!r} is not allowed: it is a file; expected the directory "
                         "to write paper.pdf and paper-src/ into")
    src = out / "paper-src"
    fig_dir = res.root / "figures"
    if not F.figures_current(res.root, fig_dir):
        F.make_figures(res.root, fig_dir)
    (src / "figures").mkdir(parents=True, exist_ok=True)
    for name in F.FIGURE_NAMES:
        shutil.copyfile(fig_dir / f"{name}.pdf", src / "figures" / f"{name}.pdf")
    for tpl in template_files():
        shutil.copyfile(tpl, src / tpl.name)
    study_fig = res.root / EARLY_STOP_DIR / "early_stop.pdf"
    if early_stop and study_fig.is_file():
        shutil.copyfile(study_fig, src / "figures" / "early_stop.pdf")
    else:  # an earlier render's copy: paper-src is as a render without the study writes it
        (src / "figures" / "early_stop.pdf").unlink(missing_ok=True)
    context = build_context(res, early_stop=early_stop)
    (src / "context.json").write_text(json.dumps(context, indent=1, ensure_ascii=False) + "\n",
                                      encoding="utf-8")  # λ, ≈: not the locale's codec
    pdf, warns = typst.compile_with_warnings(
        str(src / TEMPLATE), root=str(src), ignore_system_fonts=True,
        timestamp=_timestamp(res.analysis.get("created")))
    for w in warns:
        warnings.warn(f"typst: {w.message}", stacklevel=2)
    path = out / "paper.pdf"
    atomic_write_bytes(path, pdf)
    if out.resolve() != res.root.resolve():
        for k in (1, 2, 3):
            for ext in ("tex", "md"):
                table = res.root / f"table{k}.{ext}"
                if table.is_file():
                    shutil.copyfile(table, out / table.name)
    return path
