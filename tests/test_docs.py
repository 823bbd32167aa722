"""The README's Python examples, run as a user pastes them, and the docs against the files."""

from __future__ import annotations

import json
import os
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


def run_readme_block(heading: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the README's block after ``heading`` as a script in ``cwd``, beside the smoke
    config it reads, as a user who pasted it would; it must exit 0."""
    (cwd / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "smoke.toml", cwd / "configs")
    (cwd / "pasted.py").write_text(readme_block(heading))
    done = subprocess.run([sys.executable, "pasted.py"], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_readme_from_python_example_runs_as_pasted(tmp_path):
    done = run_readme_block("### From Python", tmp_path)
    assert done.stdout.count(" finished ") == 8  # the runs table: every smoke run trained
    probs = re.search(r"\[([0-9. \n]+)\]\s*$", done.stdout)
    assert probs is not None, done.stdout
    values = [float(v) for v in probs.group(1).split()]
    assert len(values) == 8
    # What it printed is P(grok) by the formula docs/file-formats.md gives for the saved file,
    # not just numbers in [0, 1] (a forecast of the wrong window or feature order passed).
    import numpy as np

    from grokcast.features import feature_table
    from grokcast.store import SweepStore

    doc = json.loads((tmp_path / "smoke-forecaster.json").read_text())
    X = feature_table(SweepStore(tmp_path / "runs" / "smoke").log(), doc["window"])
    z = (X[doc["feature_names"]].to_numpy() - doc["scaler_mean"]) / doc["scaler_scale"]
    p = 1 / (1 + np.exp(-(doc["intercept"] + z @ np.array(doc["coef"]))))
    np.testing.assert_allclose(values, p, atol=5e-4 + 1e-9)  # printed to 3 decimals


def test_readme_train_ensemble_example_runs_as_pasted(tmp_path):
    """The README's second Python block (an ensemble without a sweep directory)."""
    from grokcast.config import SweepConfig

    done = run_readme_block("its result out as the sweep's log table:", tmp_path)
    printed = dict(re.findall(r"^(p\S+)\s+([0-9.]+)$", done.stdout, re.M))
    runs = SweepConfig.from_file(ROOT / "configs" / "smoke.toml").runs()[:2]
    assert sorted(printed) == sorted(r.run_id for r in runs), done.stdout
    assert all(0 <= float(v) <= 1 for v in printed.values())


def test_commands_quoted_before_set_up_point_to_it_first():
    """The README's findings come before its Set-up and quote commands (`make reproduce`,
    `.venv/bin/grokcast sweep ...`) that a new user reading top to bottom cannot run yet: a
    pointer to Set-up must come before the first of them."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    before = text[:text.index("\n## Set-up\n")]
    command = re.search(r"`(make |\.venv/bin/|grokcast |python )", before)
    assert command is not None  # else nothing here to point from
    pointer = before.find("](#set-up)")
    assert 0 <= pointer < command.start(), before[command.start() - 200:command.start() + 50]


def doc_table_keys(doc: str, heading: str) -> set[str]:
    """The backquoted names in the first column of the first table after ``heading``."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    rows = text[text.index(f"\n{heading}\n"):].split("\n|")[2:]  # past the header and rule
    keys: set[str] = set()
    for row in rows:
        if row.startswith(" ---"):
            continue
        keys |= set(re.findall(r"`([^`]+)`", row.split(" | ")[0]))
        if "\n\n" in row:  # the table's last row
            break
    return keys


def test_file_formats_doc_names_every_key_the_files_hold(tmp_path):
    """docs/file-formats.md against what grokcast writes: a key added or renamed in the code
    and not in the doc (or the reverse) fails here."""
    import numpy as np
    import pandas as pd

    from grokcast.config import SweepConfig
    from grokcast.early_stop import COLUMNS
    from grokcast.features import FEATURE_NAMES
    from grokcast.forecast import GrokForecaster
    from grokcast.store import RUN_COLUMNS

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(12, 3)), columns=FEATURE_NAMES[:3])
    y = np.array([0, 1] * 6)
    path = tmp_path / "f.json"
    GrokForecaster().fit(X, y).save(
        path, window=200, threshold=0.9, sweep_hash="0" * 64, n_train_runs=12,
        window_steps=range(200), task=SweepConfig.from_file(ROOT / "configs" / "smoke.toml").task(),
        train_digests=["0123456789abcdef"], label_steps=1000,
        train_heldout=([0.2, 0.9] * 6, y))
    saved = set(json.loads(path.read_text()))
    assert doc_table_keys("file-formats.md", "## The forecaster file") == saved
    assert doc_table_keys("file-formats.md", "## The runs table") == set(RUN_COLUMNS)
    assert doc_table_keys("file-formats.md", "## `early_stop.json`") == set(COLUMNS)


def literal_blocks(text: str) -> list[str]:
    """The reST literal blocks (``::`` then an indented block) of a docstring, dedented."""
    import textwrap

    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        body = []
        for nxt in lines[i + 1:]:
            if nxt.strip() and not nxt.startswith(" "):
                break
            body.append(nxt)
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n"))
    return blocks


def free_names(code: str) -> set[str]:
    """Names a snippet reads but neither imports nor binds (scopes merged), builtins aside."""
    import ast
    import builtins

    tree = ast.parse(code)
    read, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return read - bound - set(dir(builtins))


# What each tuner snippet leaves to the user (its text says so); every other name it reads
# must be imported or defined in it, so that it runs once these are.
USER_NAMES = {
    "optuna": {"build", "evaluate", "n_steps", "x_train", "y_train", "x_val", "y_val"},
    "ray": {"build", "n_steps", "metrics", "space"},  # metrics: the loop's, as in the Optuna one
}


def test_tuner_snippets_import_what_they_use():
    """Found in review: the Ray snippet used ``tune`` without importing it (NameError when
    pasted)."""
    import ast

    for name, user in USER_NAMES.items():
        path = ROOT / "src" / "grokcast" / "integrations" / f"{name}.py"
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        blocks = literal_blocks(doc or "")
        assert blocks, f"no code block in {path.name}'s docstring"
        missing = free_names(blocks[0]) - user
        assert not missing, f"{path.name}'s snippet reads {sorted(missing)} without importing them"


# The reference's text is not part of this repository; where a checkout has it beside the
# repository (or GROKCAST_REFERENCE_DIR names its folder), the quotes are checked against it.
REFERENCE_DIR = Path(os.environ.get("GROKCAST_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))
# The paper's text keeps its LaTeX math; these macros print as the word or letter the docs use.
_MACROS = {"bmod": "mod", "beta": "β", "lambda": "λ", "theta": "θ", "Delta": "Δ", "max": "max"}


def quote_words(text: str) -> list[str]:
    """Words and numbers of ``text``, punctuation, markup and math typesetting aside: the
    docs' "mod p = 23" and "β₁ = 0.9" match the paper's "mod $p=23$" and "$\\beta_1=0.9$"."""
    import unicodedata

    text = re.sub(r"\\([A-Za-z]+)", lambda m: f" {_MACROS.get(m.group(1), '')} ", text)
    return re.findall(r"[^\W\d_]+|\d+", unicodedata.normalize("NFKC", text).lower())


def test_quote_words_sees_a_dropped_word():
    paper = quote_words(r"the target is $(a + b) \bmod p$ with $\beta_1=0.9$, learning rate 10^{-3}")
    assert quote_words("the target is (a + b) mod p with β₁ = 0.9, learning rate 10⁻³") == paper
    assert quote_words("the target (a + b) mod p with β₁ = 0.9, learning rate 10⁻³") != paper


def test_reference_readings_quote_the_reference_word_for_word():
    """Found in an audit: four quotes in docs/reference-readings.md had dropped words without
    an ellipsis ("target (a + b) mod p" for "the target is (a + b) mod p", "seeds {0, 1, 2},
    48 runs" for "..., giving 48 runs total", "(`LogisticRegressionCV`, `liblinear`)" for
    "(scikit-learn's `LogisticRegressionCV`, `liblinear` solver)", "… the univariate baselines"
    for "are the corresponding univariate baselines"). Every "..." in a reference column must
    be the reference's words in order, each part between ellipses found in its paper or
    README."""
    import pytest

    texts = [REFERENCE_DIR / name for name in ("paper.txt", "original-readme.txt")]
    if not all(p.is_file() for p in texts):
        pytest.skip(f"the reference's text is not at {REFERENCE_DIR} (GROKCAST_REFERENCE_DIR)")
    sources = [" ".join(quote_words(p.read_text(encoding="utf-8"))) for p in texts]
    doc = (ROOT / "docs" / "reference-readings.md").read_text(encoding="utf-8")
    checked, wrong = 0, []
    for row in re.findall(r"^\| (.*) \|$", doc, re.M):
        cells = row.split(" | ")
        if len(cells) < 3 or cells[0] in ("detail", "figure") or set(cells[0]) <= {"-", " "}:
            continue
        for quote in re.findall(r"\"([^\"]+)\"", cells[1]):  # the reference column
            for part in quote.replace("\\|", "|").split("…"):
                words = " ".join(quote_words(part))
                checked += 1
                if words and not any(f" {words} " in f" {s} " for s in sources):
                    wrong.append(part.strip())
    assert checked >= 25, checked  # else the table was not read
    assert not wrong, f"not in the reference as quoted: {wrong}"


def schema_text() -> str:
    return (ROOT / "docs" / "analysis-schema.md").read_text(encoding="utf-8")


def schema_doc_paths() -> set[tuple[str, ...]]:
    """Every key path of the document in docs/analysis-schema.md ("<threshold>", "<W>" and
    the other placeholders as "*"; a list's entries under the list's key)."""
    text = schema_text()
    block = text[text.index("\n## Document\n"):]
    block = block[block.index("```text\n") + len("```text\n"):]
    block = re.sub(r"#[^\n]*", "", block[:block.index("```")])  # the comments
    paths: set[tuple[str, ...]] = set()
    stack: list[str | None] = []
    last: str | None = None
    for token in re.finditer(r'"([^"]+)"\s*:|[{}\[\]]', block):
        if token.group(1) is not None:
            last = "*" if token.group(1).startswith("<") else token.group(1)
            paths.add((*(k for k in stack if k), last))
        elif token.group() in "{[":
            stack.append(last)
            last = None
        else:
            stack.pop()
    return paths


# The document's maps keyed by value (threshold, W, run threshold, feature, axis).
SCHEMA_MAPS = {("thresholds",), ("thresholds", "*", "windows"), ("runs", "step_val_acc"),
               ("thresholds", "*", "windows", "*", "univariate"),
               ("thresholds", "*", "windows", "*", "axis_scores")}


def json_key_paths(doc: object, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every key path of a JSON document, as :func:`schema_doc_paths` writes them (the sweep's
    config, SweepConfig.to_dict(), not descended into)."""
    out: set[tuple[str, ...]] = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            path = (*prefix, "*" if prefix in SCHEMA_MAPS else k)
            out.add(path)
            if path != ("sweep", "config"):
                out |= json_key_paths(v, path)
    elif isinstance(doc, list):
        for v in doc:
            out |= json_key_paths(v, prefix)
    return out


def test_analysis_schema_doc_names_every_key_analyze_writes():
    """docs/analysis-schema.md's document against what analyze() returns, key path by key
    path, both ways: a key added, renamed or moved in the code and not in the doc (or the
    reverse) fails here. Two analyses cover every key: the paper's model with run orders on a
    grid with several runs per cell, and a sweep too small for its internal CV (multi_note)."""
    from test_analysis import synthetic_sweep

    from grokcast.analysis import analyze
    from grokcast.config import SweepConfig
    from grokcast.features import FEATURE_NAMES

    runs, log = synthetic_sweep()
    full = analyze(runs, log, SweepConfig(name="synthetic"), windows=(200,), thresholds=(0.9, 0.99),
                   n_resamples=50, orders=1, sweep_dir="sweep")
    few = ["run00", "run01", "run02", "run03", "run04"]  # 2 grok: a fold holds 2 of each class
    tiny = analyze(runs[runs["run_id"].isin(few)], log[log["run_id"].isin(few)], None,
                   windows=(200,), thresholds=(0.9,), n_resamples=50)
    cell = full["thresholds"]["0.9"]["windows"]["200"]
    assert {"hyperparams", "multi_cell_out_by_order"} <= set(cell)  # else a key goes unchecked
    assert "multi_note" in tiny["thresholds"]["0.9"]["windows"]["200"]
    written = json_key_paths(json.loads(json.dumps(full))) | json_key_paths(tiny)
    documented = schema_doc_paths()
    assert written - documented == set(), "written but not in docs/analysis-schema.md"
    assert documented - written == set(), "in docs/analysis-schema.md but not written"
    # The two tables the doc's file list spells out column by column.
    rows = dict(re.findall(r"^\| `(\w+\.parquet)` \| (.*) \|$", schema_text(), re.M))
    assert list(full.curves.columns) == re.findall(r"`(\w+)`", rows["curves.parquet"])
    assert list(full.features.columns) == [*re.findall(r"`(\w+)`", rows["features.parquet"]),
                                           *FEATURE_NAMES]


def _stated(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match is not None, f"the reference's text no longer states {pattern!r}"
    return match.group(1)


def _numbers(listed: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", listed.replace(",", ""))]


def test_the_paper_config_and_the_analysis_defaults_are_the_setup_the_reference_states():
    """The method settings the reference's paper states (task, model size, optimiser, grid,
    logging schedule, windows, labels, CV, bootstrap), read from its text where a checkout has
    it, against configs/paper.toml and the defaults ``grokcast reproduce`` analyses with: a
    setting changed in either place, or a sentence of the reference read differently, fails
    here instead of changing every result silently."""
    import inspect
    import warnings

    import numpy as np
    import pytest

    from grokcast.analysis import DEFAULT_WINDOWS, analyze
    from grokcast.config import SweepConfig
    from grokcast.logistic import loo_predictions, resolve_Cs
    from grokcast.model import n_params

    path = REFERENCE_DIR / "paper.txt"
    if not path.is_file():
        pytest.skip(f"the reference's text is not at {REFERENCE_DIR} (GROKCAST_REFERENCE_DIR)")
    text = path.read_text(encoding="utf-8")
    cfg = SweepConfig.from_file(ROOT / "configs" / "paper.toml")
    assert cfg.p == int(_stated(r"Modular addition mod \$p=(\d+)\$", text))
    assert list(cfg.train_fracs) == _numbers(_stated(r"fraction \$f \\in \\\{([^}]*)\\\}", text))
    size = re.search(r"d_\{\\text\{model\}\}=(\d+)\$, (\d+) heads, MLP width (\d+)", text)
    assert size is not None
    assert (cfg.model.d_model, cfg.model.n_heads, cfg.model.d_mlp) == tuple(map(int, size.groups()))
    assert n_params(cfg.model, cfg.p) == int(_stated(r"model has ([\d,]+) parameters", text).replace(",", ""))
    assert cfg.optim.beta1 == float(_stated(r"\\beta_1=([\d.]+)", text))
    assert cfg.optim.beta2 == float(_stated(r"\\beta_2=([\d.]+)", text))
    assert cfg.optim.lr == 10.0 ** int(_stated(r"learning rate 10\^\{(-?\d+)\}", text))
    assert list(cfg.weight_decays) == _numbers(_stated(r"weight decay \$\\lambda \\in \\\{([^}]*)\\\}", text))
    assert cfg.n_steps == int(_stated(r"for ([\d,]+) steps", text).replace(",", ""))
    assert list(cfg.seeds) == _numbers(_stated(r"with seeds \$\\\{([^}]*)\\\}", text))
    assert len(cfg.runs()) == int(_stated(r"giving (\d+) runs total", text))
    schedule = re.search(r"every step in \$\[0, (\d+)\)\$ and every (\d+) steps thereafter", text)
    assert schedule is not None
    assert (cfg.log.dense_until, cfg.log.every) == tuple(map(int, schedule.groups()))

    assert list(DEFAULT_WINDOWS) == _numbers(_stated(r"window \$W \\in \\\{([^}]*)\\\}", text))
    defaults = {k: v.default for k, v in inspect.signature(analyze).parameters.items()}
    primary = float(_stated(r"\\geq (0\.\d+)\$ —as our primary label", text))
    strict = float(_stated(r"strict-(0\.\d+) analysis", text))
    assert tuple(defaults["thresholds"]) == (primary, strict)
    assert defaults["n_resamples"] == int(_stated(r"over runs, (\d+) resamples", text))
    assert defaults["level"] == int(_stated(r"Bootstrap (\d+)% CIs", text)) / 100
    cv_defaults = {k: v.default for k, v in inspect.signature(loo_predictions).parameters.items()}
    assert cv_defaults["cv"] == int(_stated(r"chosen by (\d+)-fold internal CV", text))
    # "scikit-learn's LogisticRegressionCV": the grid of C it searches by default.
    from sklearn.linear_model import LogisticRegressionCV

    assert "LogisticRegressionCV" in text
    X = np.r_[np.arange(6.0), np.arange(6.0) + 0.5][:, None]
    with warnings.catch_warnings():  # scikit-learn >= 1.8 warns of its defaults' future change
        warnings.simplefilter("ignore", FutureWarning)
        sk = LogisticRegressionCV(cv=3, solver="liblinear").fit(X, np.r_[np.zeros(6), np.ones(6)])
    np.testing.assert_array_equal(resolve_Cs(cv_defaults["Cs"]), sk.Cs_)
