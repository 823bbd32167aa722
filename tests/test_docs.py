"""The README's Python example, run as a user pastes it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_block(heading: str) -> str:
    """The first ```python block after ``heading`` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    match = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no python block after {heading!r}"
    return match.group(1)


def test_readme_from_python_example_runs_as_pasted(tmp_path):
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "smoke.toml", tmp_path / "configs")
    (tmp_path / "my_study.py").write_text(readme_block("### From Python"))
    done = subprocess.run([sys.executable, "my_study.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count(" finished ") == 8  # the runs table: every smoke run trained
    probs = re.search(r"\[([0-9. \n]+)\]\s*$", done.stdout)
    assert probs is not None, done.stdout
    values = [float(v) for v in probs.group(1).split()]
    assert len(values) == 8 and all(0 <= v <= 1 for v in values)
    assert (tmp_path / "smoke-forecaster.json").is_file()
