"""A non-editable install ships every file of the package (the editable one reads src/)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_every_file_of_the_source_package(tmp_path):
    """`pip install .` builds this wheel: a data file left out of it (the paper's template,
    the reference's numbers, the py.typed marker) would be missing only for such users."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "src", tmp_path / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # setuptools is there already (torch requires it); no index: nothing is downloaded.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", ".", "--wheel-dir", "dist"], cwd=tmp_path, check=True)
    (wheel,) = (tmp_path / "dist").glob("grokcast-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("grokcast/")}
    package = tmp_path / "src"
    source = {p.relative_to(package).as_posix() for p in (package / "grokcast").rglob("*") if p.is_file()}
    assert {"grokcast/py.typed", "grokcast/__main__.py", "grokcast/paper/paper.typ"} <= source
    assert shipped == source
