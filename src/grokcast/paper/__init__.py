"""The paper: a Typst template filled from a results directory and rendered to PDF."""

from grokcast.paper.context import build_context
from grokcast.paper.render import render_paper

__all__ = ["build_context", "render_paper"]
