"""Figures: all twelve files are valid PNG/PDF, one class does not crash, the pair rule holds.

:func:`write_synthetic_results` (also used by ``test_paper.py``) writes a small, plausible
results directory in the layout of :func:`grokcast.analysis.write_results`, so these tests do
not need a sweep.
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from itertools import combinations
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from grokcast import figures as F
from grokcast.features import FEATURES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WINDOWS = (100, 200, 300, 500)
THRESHOLDS = (0.9, 0.99)


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann–Whitney AUROC with ties as 1/2 (a reference independent of grokcast.stats)."""
    pos, neg = s[y == 1], s[y == 0]
    return float(((pos[:, None] > neg).sum() + 0.5 * (pos[:, None] == neg).sum())
                 / (len(pos) * len(neg)))


def _entry(auc: float | None, width: float) -> dict:
    if auc is None:
        return {"auroc": None, "ci": [None, None]}
    return {"auroc": auc, "ci": [max(0.0, auc - width), min(1.0, auc + width)]}


def _diff(a: float | None, b: float | None, width: float, p: float) -> dict:
    if a is None or b is None:
        return {"diff": None, "ci": [None, None], "p_one_sided": None}
    return {"diff": a - b, "ci": [a - b - width, a - b + width], "p_one_sided": p}


def write_synthetic_results(root: Path, *, single_class: bool = False, seed: int = 0) -> dict:
    """Write analysis.json, features.parquet, curves.parquet and the table files under ``root``.

    48 runs on the paper's 4 x 4 x 3 grid. Grokking is likelier at high train fraction and
    moderate weight decay; each feature is the label times a feature-specific strength plus
    noise, so univariate AUROCs spread from chance to near 1. At W = 200 the multivariate
    model beats the val-loss baseline (CI above zero) but not the val-acc one (CI spans zero).
    With ``single_class`` no run reaches 0.99, so that threshold has one class.

    Returns the analysis dict that was written.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    runs = []
    for f in (0.3, 0.4, 0.5, 0.6):
        for wd in (0.3, 1.0, 3.0, 10.0):
            for s in (0, 1, 2):
                runs.append({"run_id": f"f{f:g}-wd{wd:g}-s{s}", "train_frac": f,
                             "weight_decay": wd, "seed": s})
    n = len(runs)
    propensity = np.array([3 * r["train_frac"] - abs(np.log10(r["weight_decay"])) for r in runs])
    propensity += rng.normal(0, 0.4, n)
    order = np.argsort(-propensity)
    max_val = np.full(n, 0.0)
    max_val[order[:10]] = np.linspace(0.999, 0.91, 10)
    max_val[order[10:]] = rng.uniform(0.05, 0.85, n - 10)
    if single_class:
        max_val = np.minimum(max_val, 0.98)
    for r, m in zip(runs, max_val):
        r["max_val_acc"] = float(m)
    names = [f.name for f in FEATURES]
    strength = np.linspace(2.5, 0.0, len(names))
    feats, thresholds = [], {}
    for w in WINDOWS:
        y9 = (max_val >= 0.9).astype(int)
        block = {"run_id": [r["run_id"] for r in runs], "window": w}
        for k, name in enumerate(names):
            sign = -1 if k % 3 == 1 else 1
            block[name] = sign * strength[k] * (w / 300) * y9 + rng.normal(0, 1, n)
        feats.append(pd.DataFrame(block))
    features = pd.concat(feats, ignore_index=True)

    for th in THRESHOLDS:
        y = (max_val >= th).astype(int)
        n_pos = int(y.sum())
        one = n_pos in (0, n)
        wins = {}
        for k, w in enumerate(WINDOWS):
            fw = features[features["window"] == w]
            uni = {}
            for name in names:
                a = None if one else _auroc(y, fw[name].to_numpy())
                uni[name] = {"auroc": a, "folded": None if a is None else abs(a - 0.5) + 0.5}
            multi = None if one else [0.80, 0.917, 0.921, 0.928][k] - (th == 0.99) * 0.01
            loss = None if one else [0.713, 0.781, 0.827, 0.843][k]
            acc = None if one else [0.652, 0.826, 0.812, 0.861][k]
            score = fw["end_val_acc"].to_numpy()
            proba = None if one else list(1 / (1 + np.exp(-(score - 1.0) * 2)))
            wins[str(w)] = {
                "max_val_acc_in_window": [0.047, 0.123, 0.191, 0.35][k],
                "multi": _entry(multi, 0.1), "val_loss": _entry(loss, 0.13),
                "val_acc": _entry(acc, 0.12),
                "diff_val_loss": _diff(multi, loss, [0.19, 0.12, 0.11, 0.09][k],
                                       [0.235, 0.002, 0.036, 0.021][k]),
                "diff_val_acc": _diff(multi, acc, [0.22, 0.13, 0.1, 0.09][k],
                                      [0.103, 0.035, 0.037, 0.042][k]),
                "loo_proba": proba, "univariate": uni,
            }
        thresholds[f"{th:g}"] = {
            "n_pos": n_pos, "n_neg": n - n_pos, "single_class": one,
            "message": (f"all {n} runs have max_val_acc < {th:g}: with a single label class "
                        "AUROC is undefined" if one else f"{n_pos} of {n} runs reach "
                        f"max_val_acc >= {th:g}"),
            "cv": None if one else "loo",
            "labels": [int(v) for v in y], "windows": wins,
        }

    steps = np.r_[np.arange(300), np.arange(300, 2001, 100)]
    curves = []
    for r, m in zip(runs, max_val):
        t = steps.astype(float)
        grok_at = 400 + 2000 * (1 - m)
        curves.append(pd.DataFrame({
            "run_id": r["run_id"], "step": steps,
            "train_acc": 1 / (1 + np.exp(-(t - 60) / 15)),
            "val_acc": 1 / 23 + (m - 1 / 23) / (1 + np.exp(-(t - grok_at) / 80)),
            "train_loss": 3.2 * np.exp(-t / 50) + 1e-3,
            "val_loss": 3.2 + 2 * (1 - m) * (1 - np.exp(-t / 200)),
        }))
    analysis = {
        "grokcast_version": "0.1.0", "created": "2025-01-01T00:00:00+00:00",
        "sweep": {"dir": "/tmp/synthetic", "hash": "0123456789abcdef", "name": "synthetic",
                  "config": {"name": "synthetic", "p": 23, "train_fracs": [0.3, 0.4, 0.5, 0.6],
                             "weight_decays": [0.3, 1.0, 3.0, 10.0], "seeds": [0, 1, 2],
                             "split_seed": 0, "n_steps": 2000,
                             "model": {"d_model": 64, "n_heads": 4, "d_mlp": 256,
                                       "init": "torch", "init_scale": 1.0},
                             "optim": {"lr": 0.001, "beta1": 0.9, "beta2": 0.98, "eps": 1e-8},
                             "log": {"dense_until": 300, "every": 100}},
                  "n_runs": n, "n_diverged": 0, "train_seconds": 1234.5},
        "settings": {"windows": list(WINDOWS), "thresholds": list(THRESHOLDS),
                     "n_resamples": 2000, "level": 0.95, "seed": 0,
                     "cv": "loo"},
        "features": [{"name": f.name, "group": f.group, "description": f.description}
                     for f in FEATURES],
        "runs": runs, "thresholds": thresholds, "timing": {"analysis_seconds": 3.2},
    }
    (root / "analysis.json").write_text(json.dumps(analysis, indent=1))
    features.to_parquet(root / "features.parquet", index=False)
    pd.concat(curves, ignore_index=True).to_parquet(root / "curves.parquet", index=False)
    for k in (1, 2, 3):
        (root / f"table{k}.md").write_text(f"| table {k} |\n|---|\n")
        (root / f"table{k}.tex").write_text(
            f"% table {k}\n\\begin{{tabular}}{{l}}\\end{{tabular}}\n")
    return analysis


def _check_files(paths: list[Path]) -> None:
    expected = [f"{name}.{ext}" for name in F.FIGURE_NAMES for ext in ("png", "pdf")]
    assert [p.name for p in paths] == expected
    for p in paths:
        data = p.read_bytes()
        if p.suffix == ".png":
            assert data.startswith(PNG_MAGIC), p
        else:
            assert data.startswith(b"%PDF"), p
            assert len(PdfReader(p).pages) == 1, p


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    write_synthetic_results(root)
    return root


def test_make_figures_writes_twelve_valid_files(results: Path) -> None:
    paths = F.make_figures(results)
    assert all(p.parent == results / "figures" for p in paths)
    _check_files(paths)


def test_the_figures_command_writes_them_where_asked(results: Path, tmp_path: Path, capsys) -> None:
    from grokcast.cli import main

    assert main(["figures", str(results), "--out", str(tmp_path / "figs")]) == 0
    assert capsys.readouterr().out == f"wrote 12 files -> {tmp_path / 'figs'}\n"
    written = sorted((tmp_path / "figs").iterdir(), key=lambda p: (p.stem, p.suffix != ".png"))
    assert [p.name for p in written].count("figures.json") == 1  # beside them, what they show
    _check_files([p for p in written if p.name != "figures.json"])
    assert main(["figures", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grokcast figures: error: ") and str(tmp_path / "nowhere") in err
    assert len(err.splitlines()) == 1
    (tmp_path / "notes.txt").write_text("mine")  # --out under a file: the path, then the reason
    assert main(["figures", str(results), "--out", str(tmp_path / "notes.txt" / "figs")]) == 2
    assert capsys.readouterr().err == (f"grokcast figures: error: "
                                       f"{str(tmp_path / 'notes.txt' / 'figs')!r}: not a directory\n")


def test_the_manifest_names_the_inputs_and_figures_by_their_bytes(tmp_path: Path) -> None:
    import grokcast

    root = tmp_path / "r"
    write_synthetic_results(root)
    paths = F.make_figures(root, tmp_path / "figs")
    doc = json.loads((tmp_path / "figs" / "figures.json").read_text())

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert doc["inputs"] == {n: sha(root / n)
                             for n in ("analysis.json", "features.parquet", "curves.parquet")}
    assert doc["figures"] == {p.name: sha(p) for p in paths}
    assert doc["grokcast_version"] == grokcast.__version__
    assert doc["matplotlib_version"] == mpl.__version__
    # docs/file-formats.md: over every Python source of the package, subpackages included (an
    # edit to grokcast/paper/ is an edited checkout too), each file's path and bytes.
    pkg = Path(grokcast.__file__).resolve().parent
    sources = sorted(pkg.rglob("*.py"))
    assert pkg / "paper" / "context.py" in sources
    want = hashlib.sha256(b"".join(p.relative_to(pkg).as_posix().encode() + b"\0" + p.read_bytes()
                                   + b"\0" for p in sources)).hexdigest()
    assert doc["grokcast_source_sha256"] == want
    assert F.figures_current(root, tmp_path / "figs")
    assert not F.figures_current(root, root / "figures")  # nothing drawn there


def test_figures_drawn_only_in_part_have_no_manifest(tmp_path: Path, monkeypatch) -> None:
    """A redraw stopped midway leaves no manifest (figures of two analyses are current for
    neither), not the last complete drawing's."""
    root = tmp_path / "r"
    write_synthetic_results(root)
    F.make_figures(root)
    save = F.save_figure

    def fails_at_figure_3(draw, out_dir, name):
        if name == "fig3_features":
            raise KeyboardInterrupt
        return save(draw, out_dir, name)

    monkeypatch.setattr(F, "save_figure", fails_at_figure_3)
    with pytest.raises(KeyboardInterrupt):
        F.make_figures(root)
    assert not (root / "figures" / "figures.json").exists()
    assert not F.figures_current(root, root / "figures")


def test_a_manifest_missing_a_figure_or_an_input_is_not_current(tmp_path: Path) -> None:
    """figures_current reads a manifest it did not write (by hand, cut short, another tool's)
    as not current, never as an error: one figure left out of it, or inputs recorded as
    unreadable (null) beside a results directory that lacks them."""
    root = tmp_path / "r"
    write_synthetic_results(root)
    figs = root / "figures"
    F.make_figures(root)
    whole = json.loads((figs / "figures.json").read_text())
    assert F.figures_current(root, figs)
    cut = {**whole, "figures": {k: v for k, v in whole["figures"].items()
                                if k != "fig3_features.pdf"}}
    (figs / "figures.json").write_text(json.dumps(cut))
    assert not F.figures_current(root, figs)
    (figs / "figures.json").write_text(json.dumps({**whole, "inputs": dict.fromkeys(whole["inputs"])}))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not F.figures_current(empty, figs)


def _one_window_figure(results: Path) -> tuple[plt.Figure, dict]:
    """Figure 4 of the results analysed at W = 200 alone, and that analysis."""
    res = F.load_results(results)
    a = json.loads(json.dumps(res.analysis))
    a["settings"]["windows"] = [200]
    for entry in a["thresholds"].values():
        entry["windows"] = {"200": entry["windows"]["200"]}
    fig = F.fig_windows(F.Results(a, res.features[res.features["window"] == 200], res.curves,
                                  results))
    return fig, a


def test_one_window_draws_each_ci_as_an_error_bar(results: Path) -> None:
    """Was: fill_between over one W, a band of no width: the CIs drawn nowhere, under a y
    label saying they were shaded."""
    fig, a = _one_window_figure(results)
    for ax, th in zip(fig.axes, F.threshold_keys(a)):
        bars = [c for c in ax.containers if isinstance(c, mpl.container.ErrorbarContainer)]
        want = sorted(tuple(a["thresholds"][th]["windows"]["200"][s]["ci"]) for s in F.SERIES)
        drawn = sorted(tuple(np.asarray(b.lines[2][0].get_segments()[0])[:, 1]) for b in bars)
        assert np.allclose(drawn, want)
    assert fig.axes[0].get_ylabel().startswith("AUROC (bars: 95% bootstrap CI")
    plt.close(fig)
    res = F.load_results(results)  # a 0.999 CI was labelled "100%"
    res.analysis["settings"]["level"] = 0.999
    fig = F.fig_windows(res)
    assert fig.axes[0].get_ylabel().startswith("AUROC (shaded: 99.9% bootstrap CI")
    plt.close(fig)


def test_single_class_threshold_draws_a_note(tmp_path: Path) -> None:
    write_synthetic_results(tmp_path / "r", single_class=True)
    analysis = json.loads((tmp_path / "r" / "analysis.json").read_text())
    assert analysis["thresholds"]["0.99"]["single_class"]
    _check_files(F.make_figures(tmp_path / "r", tmp_path / "figs"))


def test_primary_threshold_single_class_does_not_crash(tmp_path: Path) -> None:
    root = tmp_path / "r"
    analysis = write_synthetic_results(root)
    # Make the primary threshold one class too: every figure must still draw.
    entry = analysis["thresholds"]["0.9"]
    # A single-class cell holds only max_val_acc_in_window (docs/analysis-schema.md).
    entry.update(single_class=True, n_pos=0, n_neg=48, labels=[0] * 48, cv=None)
    entry["windows"] = {w: {"max_val_acc_in_window": cell["max_val_acc_in_window"]}
                        for w, cell in entry["windows"].items()}
    (root / "analysis.json").write_text(json.dumps(analysis))
    _check_files(F.make_figures(root))


def _one_run_results(root: Path) -> dict:
    """The synthetic results cut to their first run, as ``analyze`` writes a one-run sweep's:
    each threshold a single class, so every cell holds only max_val_acc_in_window."""
    analysis = write_synthetic_results(root)
    run = analysis["runs"][0]
    analysis["runs"] = [run]
    analysis["sweep"]["n_runs"] = 1
    for entry in analysis["thresholds"].values():
        label = entry["labels"][0]
        entry.update(single_class=True, n_pos=label, n_neg=1 - label, labels=[label], cv=None)
        entry["windows"] = {w: {"max_val_acc_in_window": cell["max_val_acc_in_window"]}
                            for w, cell in entry["windows"].items()}
    (root / "analysis.json").write_text(json.dumps(analysis))
    for name in ("features", "curves"):
        table = pd.read_parquet(root / f"{name}.parquet")
        table[table["run_id"] == run["run_id"]].to_parquet(root / f"{name}.parquet", index=False)
    return analysis


def test_a_one_run_sweep_draws_every_figure_and_the_pair_as_a_note(tmp_path: Path) -> None:
    """Was: figure 5 raised 'only 0 do(es)' after figures 1-4 were written, so `grokcast
    figures`, `grokcast paper` and `reproduce` stopped there, though the paper's text has
    a sentence for this case (no two features vary)."""
    _one_run_results(tmp_path / "r")
    _check_files(F.make_figures(tmp_path / "r"))
    fig = F.fig_pair(F.load_results(tmp_path / "r"))
    (ax,) = fig.axes
    assert not ax.axison and not ax.collections  # no scatter of a pair that does not exist
    assert [t.get_text() for t in ax.texts] == [
        "no two features vary over the 1 run at W = 200:\nno pair to plot"]
    plt.close(fig)


@pytest.mark.parametrize(("n_pos", "n_neg", "count"), [
    (0, 1, "0/1 run"), (1, 0, "1/1 run"), (0, 48, "0/48 runs"), (48, 0, "48/48 runs")])
def test_single_class_note_puts_the_noun_after_the_denominator(
        n_pos: int, n_neg: int, count: str) -> None:
    """Was: a one-run sweep's note said '0/1 runs grokked'."""
    analysis = {"thresholds": {"0.9": {"single_class": True, "n_pos": n_pos, "n_neg": n_neg}}}
    assert F.single_class_note(analysis, "0.9") == (
        f"max val acc ≥ 0.9: {count} grokked — one class only, so AUROC is undefined")


def test_a_one_run_sweep_s_feature_figure_counts_1_run_not_runs(tmp_path: Path) -> None:
    analysis = _one_run_results(tmp_path / "r")
    th = F.primary_threshold_key(analysis)
    n_pos = analysis["thresholds"][th]["n_pos"]
    fig = F.fig_features(F.load_results(tmp_path / "r"))
    assert [t.get_text() for t in fig.axes[0].texts] == [
        f"max val acc ≥ {float(th):g}: {n_pos}/1 run grokked — one class only, "
        "so AUROC is undefined"]
    plt.close(fig)


class _FailsToDrawAPdf(mpl.artist.Artist):
    """An artist whose drawing into a PDF fails, as a Ctrl-C stops savefig midway: the PNG,
    written first, is drawn, and so is the PDF's first pass (the tight bounding box's)."""

    def __init__(self) -> None:
        super().__init__()
        self.pdf_draws = 0

    def draw(self, renderer: object) -> None:
        if type(renderer).__name__ == "MixedModeRenderer":  # the PDF backend's
            self.pdf_draws += 1
            if self.pdf_draws == 2:
                raise RuntimeError("stopped mid-draw")


def test_a_figure_that_fails_mid_draw_leaves_the_files_as_they_were(tmp_path: Path) -> None:
    """Was: savefig opens a PDF before drawing, so a failed draw left a cut-short PDF, newer
    than analysis.json: render_paper took the figures for current and embedded it as an
    empty figure, exiting 0."""
    def broken() -> plt.Figure:
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        ax.add_artist(_FailsToDrawAPdf())
        return fig

    with pytest.raises(RuntimeError, match="stopped mid-draw"):
        F.save_figure(broken, tmp_path, "fig3_features")
    # The PNG, drawn before, is whole; of the PDF there is neither a file nor a temp file.
    assert [p.name for p in tmp_path.iterdir()] == ["fig3_features.png"]
    assert (tmp_path / "fig3_features.png").read_bytes().startswith(PNG_MAGIC)
    (tmp_path / "fig3_features.pdf").write_bytes(b"%PDF-1.4 the last good figure")
    with pytest.raises(RuntimeError, match="stopped mid-draw"):
        F.save_figure(broken, tmp_path, "fig3_features")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig3_features.pdf", "fig3_features.png"]
    assert (tmp_path / "fig3_features.pdf").read_bytes() == b"%PDF-1.4 the last good figure"


def test_feature_figure_zooms_to_its_points_and_shows_every_one(tmp_path: Path) -> None:
    """Figure 3's x axis began at 0.45 whatever the AUROCs: with all of them near 1 the windows'
    markers lay on top of each other (found in a review of the paper's figures)."""
    assert F.feature_axis_start([0.911, 0.98]) == 0.85
    assert F.feature_axis_start([0.97]) == 0.95 and F.feature_axis_start([0.98]) == 0.95
    assert F.feature_axis_start([float("nan"), 0.97]) == F.feature_axis_start([0.97, float("nan")])
    assert F.feature_axis_start([0.52, 0.9]) == 0.5 and F.feature_axis_start([0.3]) == 0.45
    assert F.feature_axis_start([]) == F.feature_axis_start([float("nan")]) == 0.45
    # The synthetic results' AUROCs near 1 (the paper's case): the axis zooms in on them.
    root = tmp_path / "r"
    analysis = write_synthetic_results(root)
    for entry in analysis["thresholds"]["0.9"]["windows"].values():
        for name, uni in entry["univariate"].items():
            if uni.get("folded") is not None:
                uni["auroc"] = uni["folded"] = 0.9 + 0.09 * (sum(map(ord, name)) % 100) / 100
    (root / "analysis.json").write_text(json.dumps(analysis))
    fig = F.fig_features(F.load_results(root))
    ax = fig.axes[0]
    xs = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections])
    xs = xs[np.isfinite(xs)]
    lo, hi = ax.get_xlim()
    assert xs.size and xs.min() >= 0.9 and lo == F.feature_axis_start(xs) >= 0.85
    assert lo <= xs.min() - 0.02 and hi >= xs.max()
    F.plt.close(fig)


def test_feature_figure_tells_eight_windows_apart_within_the_page(results: Path) -> None:
    """Was: the six window styles repeated, so at eight windows (``analyze --windows`` of
    eight) W = 800 and 900 were drawn exactly as W = 100 and 200, and their one-row legend
    widened the figure past the page."""
    res = F.load_results(results)
    a = json.loads(json.dumps(res.analysis))
    extra = [600, 700, 800, 900]
    a["settings"]["windows"] = [*a["settings"]["windows"], *extra]
    for entry in a["thresholds"].values():
        for w in extra:
            entry["windows"][str(w)] = entry["windows"]["500"]
    with plt.rc_context(F.STYLE):  # as save_figure draws it
        fig = F.fig_features(F.Results(a, res.features, res.curves, results))
        fig.canvas.draw()
    ax = fig.axes[0]
    looks = {(c.get_facecolor().tobytes(), c.get_edgecolor().tobytes(),
              c.get_paths()[0].vertices.tobytes()) for c in ax.collections}
    assert len(ax.collections) == len(looks) == 8
    assert ax.get_legend().get_window_extent().width <= fig.bbox.width
    plt.close(fig)


def test_missing_results_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="analysis.json"):
        F.make_figures(tmp_path)
    # A path that does not exist is said so (it was "not a results directory: missing ...").
    with pytest.raises(FileNotFoundError, match=r"^results directory '.*nowhere' does not exist"):
        F.make_figures(tmp_path / "nowhere")
    # A sweep directory holding `grokcast analyze`'s default output names it (was: "write one
    # with grokcast analyze", which the user had just run; found in review).
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "analysis.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"its results are in '.*/analysis'\)$"):
        F.make_figures(tmp_path)


def test_pair_rule_takes_best_weakly_correlated_pair() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=40)
    other = rng.normal(size=40)
    values = pd.DataFrame({
        "a": base, "a_copy": base + 0.01 * rng.normal(size=40),  # rho ~ 1 with a
        "b": other, "c": rng.normal(size=40), "const": np.ones(40),
    })
    folded = {"a": 0.95, "a_copy": 0.94, "b": 0.80, "c": 0.85, "const": 0.99}
    first, second, rho = F.choose_feature_pair(values, folded)
    # a & a_copy are the best pair but correlated; const is constant; among the rest the pair
    # whose weaker member is best is (a, c): min 0.85 beats (a, b) min 0.80.
    assert (first, second) == ("a", "c")
    assert abs(rho) < F.MAX_ABS_RHO
    assert rho == pytest.approx(pd.Series(values["a"]).corr(values["c"], method="spearman"))


def test_pair_rule_falls_back_to_least_correlated_top_pair() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=30)
    values = pd.DataFrame({"p": x, "q": x + 0.3 * rng.normal(size=30),
                           "r": x + 0.6 * rng.normal(size=30)})
    folded = {"p": 0.9, "q": 0.8, "r": 0.7}
    rho = values.corr(method="spearman").abs()
    assert (rho.to_numpy()[np.triu_indices(3, 1)] >= F.MAX_ABS_RHO).all()
    first, second, _ = F.choose_feature_pair(values, folded)
    pairs = [("p", "q"), ("p", "r"), ("q", "r")]
    least = min(pairs, key=lambda pq: rho.loc[pq[0], pq[1]])
    assert {first, second} == set(least)
    assert folded[first] >= folded[second]


def test_pair_rule_breaks_a_tie_by_its_rule_not_by_a_bit_of_float_error() -> None:
    # 10 grokkers and 38 others, as in the paper's sweep: AUROCs 8/380 and 372/380 are equally
    # strong, but folded in floating point they come out one bit apart.
    y = np.r_[np.ones(10), np.zeros(38)].astype(int)
    b_tie = np.r_[29.5, 38.0 + np.arange(9), np.arange(38.0)]  # one grokker below 8 others
    rng = np.random.default_rng(0)
    values = pd.DataFrame({"strong": rng.normal(size=48), "a_tie": -b_tie, "b_tie": b_tie})
    aurocs = {"a_tie": _auroc(y, values["a_tie"].to_numpy()),
              "b_tie": _auroc(y, values["b_tie"].to_numpy())}
    assert aurocs == {"a_tie": 8 / 380, "b_tie": 372 / 380}
    folded = {"strong": 0.99, **{n: abs(a - 0.5) + 0.5 for n, a in aurocs.items()}}
    assert folded["a_tie"] != folded["b_tie"]  # the float error the rule must not see
    # The rule in a plain loop, on exact strengths: the weaker member's strength, then the
    # sum, then the names.
    exact = {"strong": Fraction(99, 100), "a_tie": Fraction(372, 380), "b_tie": Fraction(372, 380)}
    rho = values.corr(method="spearman")
    weak = [(a, b) for a, b in combinations(sorted(values), 2) if abs(rho.loc[a, b]) < F.MAX_ABS_RHO]
    assert len(weak) == 2  # strong with each tied feature; the tied two are rank-opposite
    want = min(weak, key=lambda p: (-min(exact[p[0]], exact[p[1]]), -(exact[p[0]] + exact[p[1]]),
                                    sorted(p)))
    first, second, _ = F.choose_feature_pair(values, folded)
    assert {first, second} == set(want) == {"strong", "a_tie"}


def test_pair_rule_does_not_take_a_correlation_of_exactly_the_bound_for_one_below_it() -> None:
    # Five runs, no ties: Spearman's rho is 1 - 6 sum(d^2) / (n (n^2 - 1)), exactly 1/2 for
    # a and b (scipy computes 0.49999999999999994), -1/10 for a and c, 1/5 for b and c.
    ranks = {"a": [0, 1, 2, 3, 4], "b": [0, 3, 1, 4, 2], "c": [2, 4, 0, 1, 3]}
    values = pd.DataFrame(ranks, dtype=float)
    folded = {"a": 0.9, "b": 0.85, "c": 0.6}
    n = len(values)

    def exact_rho(u: str, v: str) -> Fraction:
        d2 = sum((x - y) ** 2 for x, y in zip(ranks[u], ranks[v], strict=True))
        return 1 - Fraction(6 * d2, n * (n * n - 1))

    assert exact_rho("a", "b") == Fraction(1, 2)
    # The rule in a plain loop: the pairs with |rho| below the bound, the weaker member's
    # strength, then the sum.
    weak = [p for p in combinations("abc", 2) if abs(exact_rho(*p)) < Fraction(F.MAX_ABS_RHO)]
    want = min(weak, key=lambda p: (-min(folded[p[0]], folded[p[1]]),
                                    -(folded[p[0]] + folded[p[1]])))
    first, second, rho = F.choose_feature_pair(values, folded)
    assert (first, second) == want == ("a", "c")
    assert rho == pytest.approx(float(exact_rho("a", "c")))


def test_pair_rule_ranks_a_pair_by_its_weaker_member_then_by_the_sum() -> None:
    # "a" is the strongest feature but correlates with "b" and "c" (it is their sum), so the
    # only weakly correlated pair it is in is with the weak "e". "d" copies "b" up to noise.
    # The rule takes (d, c): its weaker member, c, ties with that of (b, c), and its sum is
    # higher. By the stronger member it would take (a, e); by names after the minimum, (b, c).
    rng = np.random.default_rng(3)
    y, z, w = rng.normal(size=(3, 200))
    values = pd.DataFrame({"a": y + z, "b": y, "c": z, "d": y + 0.1 * rng.normal(size=200),
                           "e": w})
    folded = {"a": 0.99, "b": 0.90, "c": 0.88, "d": 0.95, "e": 0.55}
    # The rule in a plain loop, on pandas' Spearman correlations.
    rho = values.corr(method="spearman")
    weak = [(u, v) for u, v in combinations(sorted(values), 2) if abs(rho.loc[u, v]) < F.MAX_ABS_RHO]
    assert ("a", "e") in weak and ("a", "b") not in weak and ("b", "d") not in weak
    want = min(weak, key=lambda p: (-min(folded[p[0]], folded[p[1]]),
                                    -(folded[p[0]] + folded[p[1]]), p))
    first, second, got_rho = F.choose_feature_pair(values, folded)
    assert (first, second) == ("d", "c") and {first, second} == set(want)
    assert got_rho == pytest.approx(rho.loc["c", "d"])


def test_pair_rule_on_one_run_names_the_cause() -> None:
    one_run = pd.DataFrame({"p": [1.0], "q": [2.0]})
    with pytest.raises(ValueError, match="over these 1 run[(]s[)] only 0 do[(]es[)] [(]none[)]: the "
                                         "sweep has too few runs"):
        F.choose_feature_pair(one_run, {"p": 0.9, "q": 0.8})


def test_pair_rule_on_synthetic_results(results: Path) -> None:
    res = F.load_results(results)
    w = F.primary_window(res.analysis)
    at_w = res.features[res.features["window"] == w].set_index("run_id")
    at_w = at_w.drop(columns="window")
    folded = F.folded_aurocs(res.analysis, "0.9", w)
    first, second, rho = F.choose_feature_pair(at_w, folded)
    rho_all = at_w.corr(method="spearman")
    allowed = [(a, b) for a in at_w for b in at_w if a < b and abs(rho_all.loc[a, b]) < 0.5]
    best = max(min(folded[a], folded[b]) for a, b in allowed)
    assert min(folded[first], folded[second]) == pytest.approx(best)
    assert rho == pytest.approx(rho_all.loc[first, second])


def test_reliability_bins_counts_and_means() -> None:
    proba = np.array([0.05, 0.1, 0.5, 0.55, 0.95, 1.0, np.nan])
    labels = np.array([0, 0, 1, 0, 1, 1, 1])
    bins = F.reliability_bins(proba, labels, n_bins=5)
    assert bins["n"].tolist() == [2, 2, 2]
    assert bins["mean_proba"].tolist() == pytest.approx([0.075, 0.525, 0.975])
    assert bins["frac_pos"].tolist() == pytest.approx([0.0, 0.5, 1.0])


@pytest.mark.parametrize("n_bins", [5, 10])
def test_a_probability_on_a_bin_edge_is_in_the_bin_that_starts_there(n_bins: int) -> None:
    # np.linspace(0, 1, 6)[3] is 0.6000000000000001, which put P(grok) = 0.6 in [0.4, 0.6).
    proba = np.arange(n_bins + 1) / n_bins  # every edge, 0 and 1 included
    labels = np.arange(n_bins + 1) % 2
    bins = F.reliability_bins(proba, labels, n_bins=n_bins)
    # A plain loop over half-open bins [k/n, (k+1)/n), the last one closed.
    want = [sum(k / n_bins <= p < (k + 1) / n_bins or (k == n_bins - 1 and p == 1.0)
                for p in proba) for k in range(n_bins)]
    assert want == [1] * (n_bins - 1) + [2]
    assert bins["n"].tolist() == want
    assert bins["lo"].tolist() == [k / n_bins for k in range(n_bins)]


@pytest.mark.parametrize("name, expected", [
    ("end_val_loss", "val loss at W"), ("slope_val_acc", "slope of val acc"),
    ("log_end_train_loss", "log train loss at W"), ("std_update_norm", "std of update norm"),
    ("unknown_thing", "unknown thing"),
])
def test_readable_name(name: str, expected: str) -> None:
    assert F.readable_name(name) == expected


def test_every_registry_feature_gets_the_unit_of_its_definition() -> None:
    """Axis units, by hand from the registry's definitions: losses in nats (their natural
    logs in log nats), accuracies as fractions, margins in logits, slopes per step; norms,
    ranks, cosines and ratios without one."""
    unit = {"loss": "nats", "acc": "fraction", "margin": "logits"}
    for f in FEATURES:
        kind = next((k for k in ("margin", "loss", "acc") if f"{k}" in f.name), None)
        if f.name.startswith("log_"):
            want = "log nats"
        elif f.name == "loss_ratio" or kind is None:
            want = ""
        else:
            want = unit[kind]
        if f.name.startswith("slope_"):
            want = f"{want or 'units'} per step"
        assert F.feature_unit(f.name) == want, f.name
        assert F.axis_label(f.name) == (f"{F.readable_name(f.name)} ({want})" if want
                                        else F.readable_name(f.name))


def test_every_registry_feature_gets_a_readable_name() -> None:
    for f in FEATURES:
        assert "_" not in F.readable_name(f.name).replace("W_E", "").replace("W_U", ""), f.name


def test_grid_marks_a_cell_without_a_known_outcome(tmp_path: Path) -> None:
    """A (f, λ) cell whose runs all diverged used to be a blank square, unexplained."""
    import matplotlib.pyplot as plt

    from grokcast.paper import context as CTX

    write_synthetic_results(tmp_path)
    res = F.load_results(tmp_path)
    analysis = res.analysis
    gone = {i for i, r in enumerate(analysis["runs"])
            if (r["train_frac"], r["weight_decay"]) == (0.6, 3.0)}
    analysis["runs"] = [r for i, r in enumerate(analysis["runs"]) if i not in gone]
    for t in analysis["thresholds"].values():
        t["labels"] = [y for i, y in enumerate(t["labels"]) if i not in gone]
    fracs, wds, k, n = F.grid_counts(analysis, "0.9")
    assert n[wds.index(3.0), fracs.index(0.6)] == 0 and n.sum() == 48 - len(gone)
    fig = F.fig_grid(res)
    try:
        marks = [t for ax in fig.axes for t in ax.texts if t.get_text() == "—"]
        assert len(marks) == 2  # one per threshold panel
    finally:
        plt.close(fig)
    # Only the caption: the rest of the paper needs a consistent analysis (loo_proba, ...).
    pair = CTX._Pair("", True)
    assert "A cell marked — holds no run" in CTX._captions(CTX._Facts.read(analysis), pair)["fig2"]
    assert "A cell marked" not in CTX._captions(CTX._Facts.read(F.load_results(tmp_path).analysis),
                                              pair)["fig2"]
    # A whole row gone (every run at λ = 3 diverged): drawn from the recorded grid, marked.
    analysis["sweep"]["config"] = {"train_fracs": [0.3, 0.4, 0.5, 0.6],
                                   "weight_decays": [0.3, 1.0, 3.0, 10.0]}
    row = {i for i, r in enumerate(analysis["runs"]) if r["weight_decay"] == 3.0}
    analysis["runs"] = [r for i, r in enumerate(analysis["runs"]) if i not in row]
    for t in analysis["thresholds"].values():
        t["labels"] = [y for i, y in enumerate(t["labels"]) if i not in row]
    fracs, wds, k, n = F.grid_counts(analysis, "0.9")
    assert wds == [0.3, 1.0, 3.0, 10.0] and (n[wds.index(3.0)] == 0).all()


@pytest.mark.parametrize("text, what", [
    ("xx", "not valid JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    ("{}", "'sweep' is missing or not a JSON object"),
    ('{"sweep": {}, "settings": {"windows": [200]}, "features": [], "runs": [], "thresholds": {}}',
     "'settings' lacks ['thresholds', 'n_resamples', 'level']"),
    ('{"sweep": {}, "settings": {"windows": 200, "thresholds": [0.9], "n_resamples": 1, '
     '"level": 0.9}, "features": [], "runs": [], "thresholds": {}}',
     "settings.windows is 200, not a list of window lengths"),
])
def test_a_damaged_analysis_json_is_named(results: Path, tmp_path: Path, text: str, what: str):
    """`figures`/`paper` on `{}` ended in a KeyError traceback; on `xx` the error named no file."""
    for name in ("features.parquet", "curves.parquet"):
        (tmp_path / name).write_bytes((results / name).read_bytes())
    (tmp_path / "analysis.json").write_text(text)
    with pytest.raises(ValueError) as err:
        F.load_results(tmp_path)
    assert str(err.value).startswith(f"{str(tmp_path / 'analysis.json')!r} is not an "
                                     "analysis.json written by grokcast analyze: ")
    assert what in str(err.value)


@pytest.mark.parametrize("edit, what", [
    (lambda d: d["thresholds"]["0.9"]["windows"]["200"]["multi"].update(auroc="0.98"),
     "thresholds.0.9.windows.200.multi.auroc is '0.98', not a number"),
    (lambda d: d["thresholds"]["0.99"]["windows"]["100"]["loo_proba"].__setitem__(3, True),
     "thresholds.0.99.windows.100.loo_proba[3] is True, not a number"),
    (lambda d: d["runs"][5].update(weight_decay="1.0"), "runs[5].weight_decay is '1.0', not a number"),
    (lambda d: d["thresholds"]["0.9"]["windows"]["300"].update(multi_note=3),
     "thresholds.0.9.windows.300.multi_note is 3, not a text"),
    # Found in review: each of these ended `grokcast figures` in a traceback (KeyError,
    # AttributeError, IndexError, TypeError), or, labels as text, in a grid of "101/3" cells.
    (lambda d: d["thresholds"]["0.9"]["windows"].pop("200"),
     "thresholds.0.9.windows has cells ['100', '300', '500'], not one for each of "
     "settings.windows [100, 200, 300, 500]"),
    (lambda d: d["thresholds"]["0.9"]["windows"].update({"200": None}),
     "thresholds.0.9.windows.200 is None, not a JSON object"),
    (lambda d: d["thresholds"]["0.9"]["windows"]["200"]["univariate"].update(end_val_loss=None),
     "thresholds.0.9.windows.200.univariate is not an object of per-feature objects"),
    (lambda d: d["thresholds"]["0.9"]["windows"]["200"]["multi"].update(ci=[0.5]),
     "thresholds.0.9.windows.200.multi.ci is [0.5], not a [low, high] pair"),
    (lambda d: d["thresholds"].clear(), "'thresholds' is empty"),
    (lambda d: d["sweep"].pop("config"), "sweep.config (the sweep's settings) is missing"),
    (lambda d: d["thresholds"]["0.9"].update(n_pos="ten"), "thresholds.0.9.n_pos is 'ten', not a count"),
    (lambda d: d["thresholds"]["0.9"].update(labels=[str(v) for v in d["thresholds"]["0.9"]["labels"]]),
     "thresholds.0.9.labels holds '"),
    # Found in review: KeyError, TypeError and AttributeError tracebacks from the figures or
    # the paper.
    (lambda d: d["runs"][2].pop("train_frac"), "runs[2] is not an object holding ['run_id', "
                                               "'train_frac', 'weight_decay', 'seed']"),
    (lambda d: d["settings"].update(level=None), "settings.level is None, not a CI level in (0, 1)"),
    (lambda d: d["settings"].update(level="95%"), "settings.level is '95%', not a CI level"),
    (lambda d: d["settings"].update(n_resamples=None), "settings.n_resamples is None, not a count"),
    (lambda d: d["thresholds"]["0.9"]["windows"]["200"].update(multi=0.9),
     "thresholds.0.9.windows.200.multi is 0.9, not a JSON object"),
    (lambda d: d["thresholds"]["0.9"]["windows"]["200"]["diff_val_loss"].update(ci=None),
     "thresholds.0.9.windows.200.diff_val_loss.ci is None, not a [low, high] pair"),
    (lambda d: d.update(created=20261128), "created is 20261128, not a text"),
    (lambda d: d["sweep"].update(hash=7), "sweep.hash is 7, not a text"),
    (lambda d: d.update(features=["end_val_loss"]), "'features' holds an entry that is not an object"),
    (lambda d: d["sweep"].update(config={**(d["sweep"]["config"] or {}), "p": "23"}),
     "sweep.config is not a sweep config: p='23' is not allowed"),
    (lambda d: d["thresholds"]["0.9"].pop("labels"),
     "threshold '0.9' lacks one of ['n_pos', 'n_neg', 'single_class', 'labels', 'windows']"),
    (lambda d: d["thresholds"].update({"0.9": [1, 0]}),
     "threshold '0.9' lacks one of ['n_pos', 'n_neg', 'single_class', 'labels', 'windows']"),
    (lambda d: d["thresholds"]["0.9"]["labels"].pop(), "thresholds.0.9.labels holds 47 labels for 48 runs"),
    (lambda d: d["thresholds"]["0.9"].update(labels="1,0"), "thresholds.0.9.labels holds '1,0' labels "
                                                            "for 48 runs"),
])
def test_a_string_for_a_number_in_analysis_json_is_named(results: Path, tmp_path: Path, edit,
                                                          what: str) -> None:
    """A hand-edited "0.98" for an AUROC ended `grokcast paper` in a numpy traceback."""
    for name in ("features.parquet", "curves.parquet"):
        (tmp_path / name).write_bytes((results / name).read_bytes())
    doc = json.loads((results / "analysis.json").read_text())
    F.load_results(results)  # as written: read
    # A tiny sweep's cells carry a text, multi_note (refused by the first version of the check).
    noted = json.loads(json.dumps(doc))
    noted["thresholds"]["0.9"]["windows"]["200"]["multi_note"] = "too few runs for the model"
    (tmp_path / "analysis.json").write_text(json.dumps(noted))
    F.load_results(tmp_path)
    edit(doc)
    (tmp_path / "analysis.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError) as err:
        F.load_results(tmp_path)
    assert str(err.value).startswith(f"{str(tmp_path / 'analysis.json')!r} is not an "
                                     "analysis.json written by grokcast analyze: ")
    assert what in str(err.value)


def test_a_parquet_file_without_a_column_the_figures_read_is_named(results: Path,
                                                                   tmp_path: Path) -> None:
    """Was: KeyError: 'val_acc' from inside figure 1."""
    for name in ("analysis.json", "features.parquet"):
        (tmp_path / name).write_bytes((results / name).read_bytes())
    pd.read_parquet(results / "curves.parquet").drop(columns="val_acc").to_parquet(
        tmp_path / "curves.parquet")
    with pytest.raises(ValueError, match=r"curves.parquet' lacks column\(s\) val_acc: write it "
                                         r"again with grokcast analyze"):
        F.load_results(tmp_path)


def test_an_empty_or_unreadable_parquet_file_is_named(results: Path, tmp_path: Path) -> None:
    """Was: 'Axis limits cannot be NaN or Inf' from figure 1 (curves.parquet of no rows), and
    pyarrow's error alone (a file of 0 bytes)."""
    for name in ("analysis.json", "features.parquet"):
        (tmp_path / name).write_bytes((results / name).read_bytes())
    pd.read_parquet(results / "curves.parquet").iloc[:0].to_parquet(tmp_path / "curves.parquet")
    with pytest.raises(ValueError, match=r"curves.parquet' holds no rows, but analysis.json has "
                                         r"\d+ runs: write it again with grokcast analyze"):
        F.make_figures(tmp_path)
    (tmp_path / "features.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match=r"features.parquet' is not a Parquet table \(.*\): write "
                                         r"it again with grokcast analyze"):
        F.make_figures(tmp_path)


def test_files_of_two_analyses_are_refused(results: Path, tmp_path: Path) -> None:
    """A re-analysis into the same directory cut short between its files left analysis.json of
    one sweep beside the Parquet files of another: figure 5 then said the sweep had 0 runs."""
    for name in ("analysis.json", "features.parquet", "curves.parquet"):
        (tmp_path / name).write_bytes((results / name).read_bytes())
    F.load_results(tmp_path)  # one analysis: read
    features = pd.read_parquet(results / "features.parquet")
    renamed = features.assign(run_id=features["run_id"].str.replace("s0", "s9"))
    renamed.to_parquet(tmp_path / "features.parquet", index=False)
    n = (renamed["run_id"] != features["run_id"]).groupby(features["window"]).sum().iloc[0]
    assert n > 0
    with pytest.raises(ValueError, match=rf"holds files of different analyses: features.parquet's "
                                         rf"run_ids differ from analysis.json's \({2 * n}, e.g. "):
        F.load_results(tmp_path)
    features[features["window"] != features["window"].max()].to_parquet(
        tmp_path / "features.parquet", index=False)
    with pytest.raises(ValueError, match=r"features.parquet's windows differ from analysis.json's "
                                         rf"\(1, e.g. {features['window'].max()}\)"):
        F.load_results(tmp_path)
    (tmp_path / "features.parquet").write_bytes((results / "features.parquet").read_bytes())
    curves = pd.read_parquet(results / "curves.parquet")
    curves[curves["run_id"] != curves["run_id"].iloc[0]].to_parquet(tmp_path / "curves.parquet")
    F.load_results(tmp_path)  # a run without val acc rows has no curve: not a mix-up
    curves.assign(run_id="another-run").to_parquet(tmp_path / "curves.parquet")
    with pytest.raises(ValueError, match=r"curves.parquet's run_ids differ"):
        F.load_results(tmp_path)


def _without_multi(analysis: dict, th_key: str) -> None:
    """The threshold's cells as ``analyze`` writes them on a sweep too small for the model's
    internal CV: baselines kept, ``multi`` and its paired tests null, ``multi_note`` set."""
    for cell in analysis["thresholds"][th_key]["windows"].values():
        cell.update(multi=None, diff_val_loss=None, diff_val_acc=None, loo_proba=None,
                    multi_note="too few runs for the 28-feature model (cv=3 folds)")


def test_window_figure_legend_names_every_series_any_panel_draws(tmp_path: Path) -> None:
    """Was: the legend copied the first panel with a series; with the model not computed at
    the primary threshold (a small sweep: 3 of 5 runs grok at 0.9, 1 at 0.99) but computed at
    the second, the second panel's solid blue line had no legend entry."""
    root = tmp_path / "r"
    analysis = write_synthetic_results(root)
    _without_multi(analysis, "0.9")
    (root / "analysis.json").write_text(json.dumps(analysis))
    fig = F.fig_windows(F.load_results(root))
    drawn = {line.get_label() for ax in fig.axes for line in ax.lines
             if not line.get_label().startswith("_")}
    named = [t.get_text() for t in fig.legends[0].get_texts()]
    assert drawn == set(named) and len(named) == 3
    assert named[0].startswith("multivariate")  # the series' order, whichever panel drew it
    # The panel without the model says so, beside the baselines it does draw.
    assert "not computed" in fig.axes[0].get_title()
    assert "not computed" not in fig.axes[1].get_title()
    plt.close(fig)


def test_one_window_error_bars_stand_side_by_side(results: Path) -> None:
    """Was: with one W the three series' error bars and markers were drawn at the same x, so
    overlapping CIs (the paper sweep at W = 200: multi [0.95, 1], val loss [0.94, 1]) hid each
    other and one could not tell which bar was whose."""
    fig, _ = _one_window_figure(results)
    fig.canvas.draw()
    for ax in fig.axes:
        bars = [c for c in ax.containers if isinstance(c, mpl.container.ErrorbarContainer)]
        bar_x = [c.lines[2][0].get_transform().transform(c.lines[2][0].get_segments()[0])[0, 0]
                 for c in bars]
        dot_x = [line.get_transform().transform(line.get_xydata())[0, 0] for line in ax.lines
                 if not line.get_label().startswith("_")]
        assert len(bar_x) == len(dot_x) == 3
        assert min(np.diff(sorted(bar_x))) > 5 and np.allclose(bar_x, dot_x)  # pixels
        box = ax.get_window_extent()
        assert box.x0 + 20 < min(bar_x) and max(bar_x) < box.x1 - 20  # all inside the panel
    plt.close(fig)


def test_figures_say_which_runs_they_leave_out_and_when_a_class_is_too_small(tmp_path: Path) -> None:
    """Figures 1 and 2 left diverged runs out without a word (the legend said "did not grok:
    37 runs" of a 48-run sweep), and figure 4's panel of a threshold with 2 runs in a class
    (the paper sweep at 0.99: multi AUROCs 0.08-0.29) did not say how little it shows."""
    import matplotlib.pyplot as plt

    write_synthetic_results(tmp_path)
    res = F.load_results(tmp_path)
    a = res.analysis
    assert F.runs_left_out(a) == 0
    drop = {0, 1}  # as if two runs had diverged: the sweep still counts them
    a["sweep"]["n_runs"] = len(a["runs"])
    a["runs"] = [r for i, r in enumerate(a["runs"]) if i not in drop]
    for t in a["thresholds"].values():
        t["labels"] = [y for i, y in enumerate(t["labels"]) if i not in drop]
    assert F.runs_left_out(a) == 2
    fig1, fig2 = F.fig_accuracy(res), F.fig_grid(res)
    try:
        assert any("not shown: 2 runs without an outcome (diverged or stopped early)"
                   in t.get_text() for t in fig1.texts)
        titles = [ax.get_title() for ax in fig2.axes if ax.get_title()]
        assert titles and all(t.endswith("\n(2 runs without an outcome left out)") for t in titles)
    finally:
        plt.close(fig1), plt.close(fig2)
    fresh = F.load_results(tmp_path)  # 10 of 48 runs grok at 0.9, 1 at 0.99
    counts = [(t["n_pos"], t["n_neg"]) for t in fresh.analysis["thresholds"].values()]
    assert counts == [(10, 38), (1, 47)]
    fig4 = F.fig_windows(fresh)
    try:
        titles = [ax.get_title() for ax in fig4.axes[:2]]
        assert "too few" not in titles[0]
        assert titles[1].endswith("\nfew runs in a class: says little")
    finally:
        plt.close(fig4)


def test_threshold_key_is_none_for_a_threshold_not_analysed() -> None:
    a = {"thresholds": {"0.9": {}, "0.99": {}}, "settings": {"thresholds": [0.99, 0.95, 0.9]}}
    assert [F.threshold_key(a, t) for t in (0.9, 0.99, 0.95, 0.999)] == ["0.9", "0.99", None, None]
    assert F.threshold_keys(a) == ["0.99", "0.9"]  # settings' order, less the one not stored
    a["settings"]["thresholds"] = [0.5]  # none of them stored: the stored keys as they are
    assert F.threshold_keys(a) == ["0.9", "0.99"]


def test_pair_figure_puts_a_feature_spanning_orders_of_magnitude_on_a_log_axis(results: Path) -> None:
    """Both features of figure 5 made positive and spanning 10^5 by an increasing map (which
    leaves the pair rule's ranks, and so its pair, unchanged): both axes are log; shifted
    to go below zero, or spanning 10^1.9 only, they stay linear."""
    res = F.load_results(results)
    w = F.primary_window(res.analysis)
    at_w = res.features[res.features["window"] == w].set_index("run_id").drop(columns="window")
    fx, fy, _ = F.choose_feature_pair(at_w, F.folded_aurocs(res.analysis, "0.9", w))

    def spread(v: pd.Series, decades: float, shift: float = 0.0) -> pd.Series:
        return 10 ** (decades * (v - v.min()) / (v.max() - v.min())) + shift

    for decades, shift, scale in ((5, 0.0, "log"), (5, -2.0, "linear"), (1.9, 0.0, "linear")):
        features = res.features[res.features["window"] == w].copy()  # the figure's W alone
        for name in (fx, fy):
            features[name] = spread(features[name], decades, shift)
        fig = F.fig_pair(F.Results(res.analysis, features, res.curves, res.root))
        ax = fig.axes[0]
        assert (ax.get_xlabel(), ax.get_ylabel()) == (F.axis_label(fx), F.axis_label(fy))
        assert (ax.get_xscale(), ax.get_yscale()) == (scale, scale)
        plt.close(fig)


def test_early_stop_figure_marks_the_forecasters_tau_only_where_the_summary_has_one() -> None:
    df = pd.DataFrame({"policy": ["forecaster"] * 3 + ["median_val_loss"],
                       "param": [0.2, 0.5, 0.8, None], "saved": [0.1, 0.5, 0.8, 0.4],
                       "recall": [1.0, 0.9, 0.5, 0.8]})
    labels = {"forecaster": "forecaster", "median_val_loss": "median"}
    summary = {"min_recall": 0.9, "window": 100, "n_runs": 10, "n_grok": 4,
               "forecaster": {"param": 0.5, "saved": 0.5, "recall": 0.9}}
    for fc, texts in ((summary["forecaster"], ["τ = 0.5"]), (None, [])):
        fig = F.fig_early_stop(df, {**summary, "forecaster": fc}, labels)
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.texts] == texts
        if fc is not None:
            assert tuple(ax.texts[0].xy) == (0.5, 0.9)
        assert [line.get_label() for line in ax.lines][:2] == ["forecaster", "median"]
        assert ax.get_title() == "Early stopping at W = 100: 10 held-out runs, 4 grok"
        plt.close(fig)


def test_a_memory_error_reading_a_results_table_is_not_named_as_a_damaged_file(
        results: Path, monkeypatch) -> None:
    """Running out of memory says nothing about the file: it is raised as it is."""
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(pd, "read_parquet", no_memory)
    with pytest.raises(MemoryError):
        F.load_results(results)
