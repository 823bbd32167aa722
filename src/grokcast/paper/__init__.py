"""The paper: a Typst template filled from a results directory and rendered to PDF."""

from grokcast.paper.render import build_context, render_paper

__all__ = ["build_context", "render_paper"]
