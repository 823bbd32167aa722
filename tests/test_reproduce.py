"""End to end: ``reproduce(configs/smoke.toml)`` trains, analyses, draws and renders the paper.

The smoke sweep (8 runs x 600 steps) takes about a minute on two idle CPU cores.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from pypdf import PdfReader
from test_paper import canon, est, expected_page_range, pv

from grokcast.config import SweepConfig
from grokcast.reproduce import ORDERS, STAGES, heldout_config, reproduce

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.toml"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("reproduce")
    return reproduce(SMOKE, out, device="cpu", progress=False), out


def _form_xobjects(reader: PdfReader) -> set:
    """Embedded vector figures: typst places each PDF image as a Form XObject."""
    seen = set()
    for page in reader.pages:
        xobjects = page.get("/Resources", {}).get("/XObject", {})
        for name, ref in xobjects.items():
            if xobjects[name].get("/Subtype") == "/Form":
                seen.add(getattr(ref, "idnum", name))
    return seen


def test_reproduce_writes_the_paper_with_six_figures(smoke) -> None:
    result, out = smoke
    assert result.paper == out / "paper.pdf"
    reader = PdfReader(result.paper)
    low, high = expected_page_range(result.results_dir / "figures")
    assert low <= len(reader.pages) <= high, (low, len(reader.pages), high)
    text = canon("\n".join(p.extract_text() for p in reader.pages))
    for k in range(1, 7):
        assert text.count(canon(f"Figure {k}:")) == 1, k
    assert len(_form_xobjects(reader)) >= 6
    for name in ("fig1_accuracy", "fig6_reliability"):
        assert (result.results_dir / "figures" / f"{name}.png").is_file()
    for k in (1, 2, 3):
        assert (out / f"table{k}.tex").is_file()


def test_reproduce_paper_numbers_equal_analysis_json(smoke) -> None:
    result, out = smoke
    analysis = json.loads((result.results_dir / "analysis.json").read_text())
    text = canon("\n".join(p.extract_text() for p in PdfReader(result.paper).pages))
    n_runs = analysis["sweep"]["n_runs"]
    assert n_runs == 8
    t = analysis["thresholds"]["0.9"]
    assert canon(f"{t['n_pos']}/{n_runs}") in text
    for w, cell in t["windows"].items():  # Table 1, row by row
        row = [w, *(est(cell[s]) for s in ("multi", "val_loss", "val_acc"))]
        for d in ("diff_val_loss", "diff_val_acc"):
            row += [est(cell[d], "diff", signed=True), pv(cell[d]["p_one_sided"])]
        assert canon(" ".join(row)) in text, w
    w200 = t["windows"]["200"]
    assert canon(f"{100 * w200['max_val_acc_in_window']:.1f}%") in text
    # The paper's analysis scores the forecaster in ORDERS random run orders too.
    assert analysis["settings"]["orders"] == ORDERS
    for cell in t["windows"].values():
        assert cell["multi"] is None or len(cell["multi_by_order"]) == ORDERS
    # The dynamics sentences, from the runs' first logged steps. Read from the source the PDF
    # prints verbatim: in the PDF's extracted text a page break can interleave figure labels.
    ctx = json.loads((result.paper.parent / "paper-src" / "context.json").read_text())
    text = canon(re.sub(r"\\(.)", r"\1", ctx["phase"]))
    fit = [r["step_train_acc_0.99"] for r in analysis["runs"] if r["step_train_acc_0.99"] >= 0]
    if fit:  # the first and last fitting steps, from analysis.json, in the sentence on fitting
        sentence = next(s for s in text.split(".") if canon("a train accuracy of 99%") in s)
        assert canon(f"{min(fit):,}") in sentence and canon(f"{max(fit):,}") in sentence
    grok = [r["step_val_acc"]["0.9"] for r in analysis["runs"] if r["step_val_acc"]["0.9"] >= 0]
    if len(grok) == 1:
        assert canon(f"reaches a validation accuracy of 0.9 at step {grok[0]:,}") in text
    elif grok:
        assert canon(f"between steps {min(grok):,} and {max(grok):,}") in text


def test_the_up_front_check_knows_every_path_reproduce_writes(smoke) -> None:
    _check_layout_covers(smoke[1], with_early_stopping=False)


def test_reproduce_records_stage_timings(smoke) -> None:
    result, out = smoke
    record = json.loads((out / "timings.json").read_text())
    assert set(record["seconds"]) == {*STAGES, "total"}
    # Each of the 5 values is rounded to 1 ms, so the stored sum may exceed the total by 2.5 ms.
    assert record["seconds"]["total"] >= sum(record["seconds"][s] for s in STAGES) - 2.5e-3
    assert record["n_trained"] == 8 and record["n_skipped"] == 0
    assert set(result.timings) == {*STAGES, "total"}


def test_reproduce_again_reuses_the_sweep_and_gives_the_same_numbers(smoke) -> None:
    result, out = smoke
    before = json.loads((result.results_dir / "analysis.json").read_text())
    again = reproduce(SMOKE, out, device="cpu", progress=False)
    record = json.loads((out / "timings.json").read_text())
    assert record["n_trained"] == 0 and record["n_skipped"] == 8
    after = json.loads((again.results_dir / "analysis.json").read_text())
    for key in ("created", "timing"):
        before.pop(key), after.pop(key)
    assert after == before


@pytest.mark.parametrize("study_of", ["this sweep", "a replaced sweep"])
def test_reproduce_without_early_stopping_leaves_an_earlier_calls_study_out_of_the_paper(
        smoke, tmp_path: Path, study_of: str) -> None:
    """Was: a reproduce without with_early_stopping into an output directory where an earlier
    call had run the study (results/early_stop/ stays) gave its paper the "Early stopping"
    section, while timings.json said with_early_stopping false; and where that study's sweep
    had since been deleted and trained anew, it failed its last stage, refusing the study it
    had not been asked for. A clean run without the flag has no section."""
    import shutil

    from grokcast import figures as F

    _, clean = smoke
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    analysis = json.loads((out / "results" / "analysis.json").read_text())
    fit_on = analysis["sweep"]["hash"] if study_of == "this sweep" else "f" * 64
    policy = {"param_name": "threshold", "param": 0.5, "saved": 0.5, "recall": 1.0,
              "n_stopped": 4, "n_wrongly_stopped": 0}
    summary = {"window": 200, "label_threshold": 0.9, "min_recall": 0.9, "n_runs": 8,
               "n_grok": 1, "forecaster": policy, "same_budget": {}, "median": {}}
    study = out / "results" / "early_stop"
    F.save_figure(lambda: F.plt.figure(), study, "early_stop")
    (study / "early_stop.json").write_text(json.dumps(
        {"summary": summary, "provenance": {"train_sweep_hash": fit_on}}))
    if study_of == "this sweep":  # the earlier call's render copied its figure too
        shutil.copyfile(study / "early_stop.pdf", out / "paper-src" / "figures" / "early_stop.pdf")
    result = reproduce(SMOKE, out, device="cpu", orders=0, progress=False)
    assert json.loads((out / "paper-src" / "context.json").read_text())["early_stop"] is None
    text = " ".join(page.extract_text() for page in PdfReader(result.paper).pages)
    assert "Early stopping" not in text and "held-out sweep" not in text
    assert sorted(p.name for p in (out / "paper-src" / "figures").iterdir()) == sorted(
        p.name for p in (clean / "paper-src" / "figures").iterdir())
    assert (study / "early_stop.json").is_file()  # the earlier study is left as it was


def test_stages_are_numbered_in_the_order_they_run(tmp_path, monkeypatch, capsys) -> None:
    """Every stage stubbed out: the "[k/5] name" lines must follow the calls' order."""
    import grokcast.analysis
    import grokcast.figures
    import grokcast.paper
    import grokcast.reproduce as R
    import grokcast.sweep

    calls: list[str] = []

    def stub(name: str, result=None):
        def record(*args, **kwargs):
            calls.append(name)
            return result
        return record

    swept = type("Swept", (), {"n_trained": 0, "n_skipped": 8})()
    monkeypatch.setattr(grokcast.sweep, "run_sweep", stub("sweep", swept))
    monkeypatch.setattr(grokcast.analysis, "analyze_sweep", stub("analysis"))
    monkeypatch.setattr(grokcast.figures, "make_figures", stub("figures"))
    monkeypatch.setattr(R, "_early_stopping_study", stub("early_stopping", {}))
    monkeypatch.setattr(grokcast.paper, "render_paper", stub("paper", tmp_path / "paper.pdf"))
    R.reproduce(SMOKE, tmp_path, with_early_stopping=True, progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    announced = [line.split("] ")[1].split(":")[0] for line in lines]
    assert calls == announced == ["sweep", "analysis", "figures", "early_stopping", "paper"]
    assert [line.split("]")[0] for line in lines] == [f"[{k}/5" for k in range(1, 6)]
    # timings.json holds what docs/file-formats.md lists (it named a stage early_stop and left
    # out the held-out counts; found in review).
    from test_docs import doc_table_keys

    record = json.loads((tmp_path / "timings.json").read_text())
    assert doc_table_keys("file-formats.md", "## `timings.json`") == set(record)
    doc = (ROOT / "docs" / "file-formats.md").read_text(encoding="utf-8")
    seconds_row = next(line for line in doc.splitlines() if line.startswith("| `seconds` |"))
    assert all(f"`{stage}`" in seconds_row for stage in record["seconds"])
    # `grokcast reproduce` prints the paper's path on stdout, with or without --quiet (it went
    # to stderr with the progress, to stdout only under --quiet; found in a review of the CLI).
    from grokcast.cli import main

    for quiet in ([], ["--quiet"]):
        assert main(["reproduce", "--config", str(SMOKE), "--out", str(tmp_path), *quiet]) == 0
        out, err = capsys.readouterr()
        assert out == f"paper: {tmp_path / 'paper.pdf'}\n"
        assert ("[1/4] sweep" in err) == (not quiet)
        assert not [line for line in err.splitlines() if line.startswith("paper:")]


def test_heldout_config_has_unseen_seeds_and_the_same_grid() -> None:
    from grokcast.config import SweepConfig

    config = SweepConfig.from_file(SMOKE)
    held = heldout_config(config)
    assert set(held.seeds).isdisjoint(config.seeds) and len(held.seeds) == len(config.seeds)
    assert min(held.seeds) == max(config.seeds) + 1
    same = {k: v for k, v in held.to_dict().items() if k not in ("seeds", "name")}
    assert same == {k: v for k, v in config.to_dict().items() if k not in ("seeds", "name")}
    assert held.name != config.name


@pytest.mark.slow
def test_reproduce_with_early_stopping_adds_the_study_and_its_section(tmp_path, capsys) -> None:
    result = reproduce(SMOKE, tmp_path, device="cpu", with_early_stopping=True, progress=True)
    # The stages are announced as "[k/5] name" and must be numbered in the order they run.
    announced = [line.split("]")[0] for line in capsys.readouterr().err.splitlines()
                 if line.startswith("[")]
    assert announced == [f"[{k}/5" for k in range(1, 6)], announced
    study = json.loads((result.results_dir / "early_stop" / "early_stop.json").read_text())
    assert study["summary"]["n_runs"] == len(heldout_config(SweepConfig.from_file(SMOKE)).runs())
    # τ chosen on the forecaster's training runs (their held-out P(grok) are in its file).
    assert study["summary"]["tau"] == "chosen on training runs", study["summary"]
    text = "".join(page.extract_text() for page in PdfReader(result.paper).pages)
    assert "Early stopping" in text and "held-out sweep" in text
    assert "chosen before these runs were seen" in " ".join(text.split())
    _check_layout_covers(tmp_path, with_early_stopping=True)


def test_a_heldout_sweep_of_another_config_is_refused_before_training(tmp_path, capsys) -> None:
    """Was: with early stopping into an output directory whose sweep/ had been deleted to change
    the config, the earlier call's heldout-sweep/ was refused only in the fourth stage, after
    the new sweep had trained, with a hint to resume it alone."""
    from grokcast.store import StoreError, SweepStore

    earlier = heldout_config(SweepConfig.from_file(SMOKE))
    changed = tmp_path / "changed.toml"
    changed.write_text(SMOKE.read_text().replace('name = "smoke"', 'name = "smoke-b"')
                       .replace("seeds = [0, 1]", "seeds = [5, 6]"))
    SweepStore(tmp_path / "out" / "heldout-sweep").init(earlier)  # its sweep.json alone
    with pytest.raises(StoreError, match=(
            r"^'.*heldout-sweep' holds the held-out sweep of another config than this one's "
            r"\(name: 'smoke-heldout' there, 'smoke-b-heldout' here, seeds: \[2, 3\] there, "
            r"\[7, 8\] here\): an earlier reproduce with early stopping trained it; remove it, "
            r"or use a new output directory$")):
        reproduce(changed, tmp_path / "out", device="cpu", with_early_stopping=True, progress=True)
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["heldout-sweep"]
    # Its own held-out sweep, begun by an earlier call of the same config, is resumed.
    from grokcast.reproduce import _check_heldout_dir

    _check_heldout_dir(earlier, tmp_path / "out" / "heldout-sweep")


def test_a_config_too_short_for_the_analysis_windows_is_refused_before_training(tmp_path):
    """It trained the whole sweep, then failed in the analysis at W = 100 > n_steps."""
    config = tmp_path / "short.toml"
    config.write_text(SMOKE.read_text().replace("n_steps = 600", "n_steps = 20"))
    assert SweepConfig.from_file(config).n_steps == 20
    with pytest.raises(ValueError, match=r"^n_steps=20 is not allowed for reproduce: the analysis "
                                         r"reads windows of up to W=500 steps"):
        reproduce(config, tmp_path / "out", device="cpu", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_log_schedule_too_sparse_for_the_analysis_windows_is_refused_before_training(tmp_path):
    """It trained the whole sweep, then failed in the analysis: W=100 held one logged step."""
    config = tmp_path / "sparse.toml"
    config.write_text(SMOKE.read_text().replace("dense_until = 300", "dense_until = 0")
                      .replace("every = 100", "every = 250"))
    assert SweepConfig.from_file(config).log.steps(600) == [0, 250, 500, 600]
    with pytest.raises(ValueError, match=r"is not allowed for reproduce: the analysis window "
                                         r"W=100 would hold 1 logged step\(s\)"):
        reproduce(config, tmp_path / "out", device="cpu", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_grid_of_one_train_set_twice_is_refused_before_the_first_stage(tmp_path, capsys):
    """Found in review: refused only after the sweep stage's line was printed."""
    config = tmp_path / "twice.toml"
    config.write_text(SMOKE.read_text().replace("train_fracs = [0.3, 0.6]",
                                                "train_fracs = [0.3, 0.3005]"))
    with pytest.raises(ValueError, match=r"0.3 and 0.3005 both give round\(f \* p \* p\) = 159"):
        reproduce(config, tmp_path / "out", device="cpu", progress=True)
    said = capsys.readouterr()
    assert "[1/" not in said.out + said.err and not (tmp_path / "out").exists()


def test_reproduce_refuses_bad_orders_before_training(tmp_path: Path) -> None:
    for bad in (-1, 10_001, 2.5):
        with pytest.raises((ValueError, TypeError), match=r"^orders="):
            reproduce(SMOKE, tmp_path / "out", device="cpu", orders=bad, progress=False)
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_reproduce_refuses_a_with_early_stopping_that_is_not_a_bool(tmp_path: Path,
                                                                   capsys) -> None:
    """Was: with_early_stopping="no" (a value read from a config file or an environment
    variable) was truthy, so the sweep and a second, held-out sweep were trained."""
    for bad in ("no", "false", 0, None):
        with pytest.raises(ValueError, match=rf"^with_early_stopping={bad!r} is not allowed: "
                                             "expected True or False$"):
            reproduce(SMOKE, tmp_path / "out", device="cpu", with_early_stopping=bad,
                      progress=True)
    assert capsys.readouterr().err == "" and not (tmp_path / "out").exists()


def test_an_early_stopping_study_without_grokkers_names_what_reproduce_set(tmp_path: Path) -> None:
    """Was 'threshold=0.9 is not allowed for this sweep', from the fit of the study's
    forecaster, to a reproduce caller who set no threshold; nor was the held-out sweep begun."""
    from grokcast.config import LogConfig, ModelConfig, OptimConfig
    from grokcast.reproduce import _early_stopping_study
    from grokcast.sweep import run_sweep

    config = SweepConfig(name="no-grok", p=11, train_fracs=(0.3,), weight_decays=(1.0,),
                         seeds=(0, 1, 2), n_steps=201, model=ModelConfig(d_model=16, n_heads=2,
                                                                         d_mlp=32),
                         optim=OptimConfig(lr=1e-4), log=LogConfig(dense_until=202))
    run_sweep(config, tmp_path / "sweep", device="cpu", progress=False)
    with pytest.raises(ValueError, match=(
            r"^the early-stopping study \(with_early_stopping\) fits the forecaster on '.*sweep' at "
            r"W=200 with the label threshold 0.9, which failed: threshold=0.9 is not allowed for "
            r"this sweep: 0 of 3 runs reach .*; without the study, reproduce renders the paper "
            r"alone$")):
        _early_stopping_study(config, tmp_path, "cpu", 1, False)
    assert not (tmp_path / "heldout-sweep").exists() and not (tmp_path / "forecaster.json").exists()


def test_reproduce_names_an_output_path_that_is_a_file(tmp_path: Path, capsys) -> None:
    """`--out FILE` was refused naming 'FILE/sweep' (found in a review of the CLI)."""
    from grokcast.cli import main

    (tmp_path / "a_file").write_text("")
    assert main(["reproduce", "--config", str(SMOKE), "--out", str(tmp_path / "a_file")]) == 2
    err = capsys.readouterr().err
    assert err == (f"grokcast reproduce: error: {str(tmp_path / 'a_file')!r}: exists and is not a "
                   "directory (an output directory was expected)\n")


def test_reproduce_refuses_a_bad_device_before_its_first_stage(tmp_path: Path, capsys) -> None:
    """`--device tpu` was refused after "[1/4] sweep: ..." was printed (found in a review)."""
    with pytest.raises(ValueError, match=r"^device='tpu' is not allowed: expected auto, cpu or cuda"):
        reproduce(SMOKE, tmp_path / "out", device="tpu", progress=True)
    assert capsys.readouterr().err == "" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, make, what", [
    ("results", lambda p: p.write_text(""), "exists and is not a directory (an output directory "
                                            "was expected)"),
    ("paper-src", lambda p: p.write_text(""), "exists and is not a directory (an output directory "
                                              "was expected)"),
    ("paper.pdf", lambda p: p.mkdir(), "is a directory, where reproduce writes a file: remove it, "
                                       "or use a new output directory"),
    ("timings.json", lambda p: p.mkdir(), "is a directory, where reproduce writes a file: remove "
                                          "it, or use a new output directory"),
    # The paper stage copies every table, .md and .tex, to OUT/.
    *[(f"table{k}.{ext}", lambda p: p.mkdir(), "is a directory, where reproduce writes a file: "
                                               "remove it, or use a new output directory")
      for k in (1, 2, 3) for ext in ("md", "tex")],
])
def test_an_output_path_of_the_wrong_kind_is_refused_before_the_first_stage(tmp_path, capsys, name,
                                                                            make, what) -> None:
    """`results` as a file was refused by the analysis, and `paper.pdf` as a directory by the
    paper stage (naming its temp file), both only after the sweep had trained."""
    from grokcast.cli import main

    out = tmp_path / "out"
    out.mkdir()
    make(out / name)
    assert main(["reproduce", "--config", str(SMOKE), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"grokcast reproduce: error: {str(out / name)!r}: {what}\n"
    assert sorted(p.name for p in out.iterdir()) == [name]  # no sweep begun


@pytest.mark.parametrize("name, make, what", [
    ("heldout-sweep", lambda p: p.write_text(""), "exists and is not a directory (an output "
                                                  "directory was expected)"),
    ("forecaster.json", lambda p: p.mkdir(), "is a directory, where reproduce writes a file: "
                                             "remove it, or use a new output directory"),
])
def test_an_early_stopping_output_of_the_wrong_kind_is_refused_before_the_first_stage(
        tmp_path, capsys, name, make, what) -> None:
    """Was: with early stopping, a forecaster.json directory or a heldout-sweep file was
    refused only in the study's stage, after the sweep had trained."""
    from grokcast.cli import main

    out = tmp_path / "out"
    out.mkdir()
    make(out / name)
    argv = ["reproduce", "--config", str(SMOKE), "--out", str(out), "--with-early-stopping"]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"grokcast reproduce: error: {str(out / name)!r}: {what}\n"
    assert sorted(p.name for p in out.iterdir()) == [name]  # no sweep begun


def _no_sweep(monkeypatch) -> None:
    """The sweep stage fails the test if reached: a refusal must come before it."""
    import grokcast.sweep

    def fail(*args, **kwargs):
        raise AssertionError("the sweep stage started")

    monkeypatch.setattr(grokcast.sweep, "run_sweep", fail)


_A_FILE = "exists and is not a directory (an output directory was expected)"
_A_DIR = "is a directory, where reproduce writes a file: remove it, or use a new output directory"


@pytest.mark.parametrize("name, kind", [
    ("sweep", "file"), ("sweep/log", "file"), ("sweep/runs", "file"), ("sweep/sweep.json", "dir"),
    ("results/figures", "file"), ("results/analysis.json", "dir"),
    ("results/features.parquet", "dir"), ("results/curves.parquet", "dir"),
    ("results/table3.tex", "dir"), ("results/figures/fig6_reliability.pdf", "dir"),
    ("results/figures/fig1_accuracy.png", "dir"), ("results/figures/figures.json", "dir"),
    ("paper-src/figures", "file"), ("paper-src/paper.typ", "dir"),
    ("paper-src/context.json", "dir"), ("paper-src/figures/fig2_grid.pdf", "dir"),
    # a render without the study removes an earlier study's copy: a directory there stopped it
    ("paper-src/figures/early_stop.pdf", "dir"),
    # neither file nor directory: no stage can make a directory of it either
    ("results/figures", "fifo"), ("paper-src", "fifo"),
])
def test_a_deeper_output_path_of_the_wrong_kind_is_refused_before_the_sweep(
        tmp_path, monkeypatch, capsys, name, kind) -> None:
    """Was: refused only by the stage that writes it (the analysis, the figures, the paper),
    after the sweep had trained, e.g. "'OUT/results/figures': exists and is not a directory"
    from the figures stage, minutes in."""
    from grokcast.cli import main

    _no_sweep(monkeypatch)
    out = tmp_path / "out"
    path = out / name
    path.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_text("") if kind == "file" else path.mkdir()
    assert main(["reproduce", "--config", str(SMOKE), "--out", str(out)]) == 2
    what = _A_DIR if kind == "dir" else _A_FILE
    assert capsys.readouterr().err == f"grokcast reproduce: error: {str(path)!r}: {what}\n"


@pytest.mark.parametrize("name, kind", [
    ("results/early_stop", "file"), ("results/early_stop/early_stop.json", "dir"),
    ("results/early_stop/early_stop.md", "dir"), ("results/early_stop/early_stop.pdf", "dir"),
    ("heldout-sweep/log", "file"), ("heldout-sweep/runs", "file"),
    ("heldout-sweep/sweep.json", "dir"), ("heldout-sweep/.lock", "dir"),
])
def test_a_deeper_early_stopping_output_of_the_wrong_kind_is_refused_before_the_sweep(
        tmp_path, monkeypatch, capsys, name, kind) -> None:
    """Was: refused only in the study's stage, after the sweep, analysis and figures."""
    from grokcast.cli import main

    _no_sweep(monkeypatch)
    out = tmp_path / "out"
    path = out / name
    path.parent.mkdir(parents=True)
    path.write_text("") if kind == "file" else path.mkdir()
    argv = ["reproduce", "--config", str(SMOKE), "--out", str(out), "--with-early-stopping"]
    assert main(argv) == 2
    what = _A_FILE if kind == "file" else _A_DIR
    assert capsys.readouterr().err == f"grokcast reproduce: error: {str(path)!r}: {what}\n"
    # Without the study these paths are not reproduce's: no refusal, the sweep starts.
    with pytest.raises(AssertionError, match="the sweep stage started"):
        reproduce(SMOKE, out, device="cpu", progress=False)


def _check_layout_covers(out: Path, with_early_stopping: bool) -> None:
    """Every directory and file a finished reproduce left under ``out`` is one the up-front
    check knows the kind of (a sweep's chunk files lie in its log/ and runs/)."""
    from grokcast.reproduce import output_layout

    dirs, files = output_layout(out, with_early_stopping)
    chunks = {d for d in dirs if d.name in ("log", "runs")}
    found = list(out.rglob("*"))
    assert found
    for path in found:
        if path.is_dir():
            assert path in dirs, path
        else:
            assert path in files or path.parent in chunks, path


def test_a_failed_call_leaves_no_timings_json(tmp_path, monkeypatch) -> None:
    """A call that failed left the previous call's timings.json, which read as its own."""
    import grokcast.sweep

    def fail(*args, **kwargs):
        raise RuntimeError("training failed")

    (tmp_path / "timings.json").write_text('{"seconds": {"total": 1.0}}\n')
    monkeypatch.setattr(grokcast.sweep, "run_sweep", fail)
    with pytest.raises(RuntimeError, match="training failed"):
        reproduce(SMOKE, tmp_path, device="cpu", progress=False)
    assert not (tmp_path / "timings.json").exists()
