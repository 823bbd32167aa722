"""analyze/write_results on a synthetic sweep, checked against numbers computed independently."""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from grokcast import analysis as A
from grokcast.config import SweepConfig
from grokcast.features import FEATURE_NAMES, WINDOW_SIGNALS, feature_table

STEPS = np.r_[np.arange(300), np.arange(300, 601, 100)]
N_RUNS = 20  # plus one diverged run


def synthetic_sweep(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs whose early val loss/acc carry a noisy signal of the label; nobody reaches 0.99."""
    rng = np.random.default_rng(seed)
    runs, logs = [], []
    for r in range(N_RUNS + 1):
        run_id = f"run{r:02d}"
        groks = r % 3 == 0
        z = (1.0 if groks else 0.0) + rng.normal(scale=0.8)
        t = STEPS / 600
        cols = {s: rng.uniform(0.5, 2.0) + 0.05 * rng.normal(size=STEPS.size) for s in WINDOW_SIGNALS}
        cols["train_loss"] = 3.0 * np.exp(-5 * t) + 0.01
        cols["val_loss"] = 3.5 + t * (1 - z) + 0.05 * rng.normal(size=STEPS.size)
        cols["val_acc"] = np.clip(0.04 + 0.1 * t * (1 + z) + 0.01 * rng.normal(size=STEPS.size), 0, 1)
        cols["update_cos"] = rng.uniform(0.5, 1.0, STEPS.size)
        cols["update_cos"][0] = np.nan
        diverged = r == N_RUNS
        if diverged:
            cols["train_loss"][STEPS > 50] = np.nan
        logs.append(pd.DataFrame({"run_id": run_id, "step": STEPS, **cols}))
        runs.append({
            "run_id": run_id, "p": 23, "train_frac": [0.3, 0.6][r % 2], "weight_decay": 1.0,
            "seed": r, "status": "diverged" if diverged else "finished",
            "max_val_acc": np.nan if diverged else (0.95 if groks else 0.3),
            "chunk": f"chunk-{r // 8:05d}", "chunk_seconds": 10.0 + r // 8,
        })
    return pd.DataFrame(runs), pd.concat(logs, ignore_index=True)


def standin(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A fixed score in place of the fitted model (no fitting: fast, exactly known)."""
    acc = X[:, FEATURE_NAMES.index("end_val_acc")]
    loss = X[:, FEATURE_NAMES.index("end_val_loss")]
    return 1 / (1 + np.exp(-(acc - acc.mean()) / acc.std() + (loss - loss.mean()) / loss.std()))


@pytest.fixture(scope="module")
def sweep():
    return synthetic_sweep()


@pytest.fixture(scope="module")
def result(sweep):
    runs, log = sweep
    return A.analyze(runs, log, SweepConfig(name="synthetic"), windows=(100, 200),
                     n_resamples=300, seed=3, predict_fn=standin, sweep_dir="/somewhere")


def test_structure_single_class_and_diverged_runs(result):
    assert json.loads(json.dumps(result, allow_nan=False)) == result  # plain JSON as is
    sweep = result["sweep"]
    assert (sweep["n_runs"], sweep["n_diverged"], sweep["name"]) == (21, 1, "synthetic")
    assert sweep["dir"] == "/somewhere" and len(sweep["hash"]) == 64
    assert sweep["train_seconds"] == pytest.approx(10 + 11 + 12)  # one per chunk
    assert result["settings"] == {"windows": [100, 200], "thresholds": [0.9, 0.99],
                                  "n_resamples": 300, "level": 0.95, "seed": 3,
                                  "cv": "custom:standin", "orders": 0,
                                  "hyperparam_axes": ["train_frac"]}
    assert all("multi_by_order" not in c for t in result["thresholds"].values()
               for c in t["windows"].values())  # orders=0: not computed
    assert [f["name"] for f in result["features"]] == list(FEATURE_NAMES)
    ids = [r["run_id"] for r in result["runs"]]
    assert ids == [f"run{r:02d}" for r in range(N_RUNS)]  # sorted, diverged run left out

    main = result["thresholds"]["0.9"]
    assert main["single_class"] is False and (main["n_pos"], main["n_neg"]) == (7, 13)
    assert main["labels"] == [int(r % 3 == 0) for r in range(N_RUNS)]
    cell = main["windows"]["200"]
    assert set(cell) == {"max_val_acc_in_window", "multi", "val_loss", "val_acc", "diff_val_loss",
                         "diff_val_acc", "loo_proba", "univariate", "axis_scores"}
    assert list(cell["axis_scores"]) == ["train_frac"]  # the custom predictor: no fitted model
    assert list(cell["univariate"]) == list(FEATURE_NAMES) and len(cell["loo_proba"]) == N_RUNS

    strict = result["thresholds"]["0.99"]
    assert strict["single_class"] is True and (strict["n_pos"], strict["n_neg"]) == (0, 20)
    assert "single label class" in strict["message"]
    assert all(set(c) == {"max_val_acc_in_window"} for c in strict["windows"].values())


def test_numbers_match_an_independent_computation(sweep, result):
    runs, log = sweep
    log = log[log["run_id"] != "run20"]
    y = np.array([r % 3 == 0 for r in range(N_RUNS)], dtype=int)
    at199 = log[log["step"] == 199].set_index("run_id").sort_index()
    cell = result["thresholds"]["0.9"]["windows"]["200"]

    assert cell["val_loss"]["auroc"] == pytest.approx(roc_auc_score(y, -at199["val_loss"]))
    assert cell["val_acc"]["auroc"] == pytest.approx(roc_auc_score(y, at199["val_acc"]))
    X = feature_table(log, 200).to_numpy()
    np.testing.assert_allclose(cell["loo_proba"], standin(X, y))
    assert cell["multi"]["auroc"] == pytest.approx(roc_auc_score(y, standin(X, y)))
    uni = cell["univariate"]["end_val_loss"]
    assert uni["auroc"] == pytest.approx(1 - cell["val_loss"]["auroc"])
    assert uni["folded"] == pytest.approx(max(uni["auroc"], 1 - uni["auroc"]))
    # The CIs and paired tests: the plain-loop-tested stats functions (test_stats.py) on the
    # cell's resamples (seed 3, key 0), the scores oriented as the paper says. Was checked only
    # as lo <= estimate <= hi, which a p of 1 - p or a CI at another level passed (found in an
    # audit of the tests, by mutation).
    from grokcast.stats import bootstrap_ci, paired_bootstrap

    scores = {"multi": standin(X, y), "val_loss": -at199["val_loss"].to_numpy(),
              "val_acc": at199["val_acc"].to_numpy()}
    for name, score in scores.items():
        ci = bootstrap_ci(y, score, rng=A._rng(3, 0.9, 200, 0), n_resamples=300)
        assert cell[name]["ci"] == pytest.approx([ci.lo, ci.hi], abs=1e-12)
    for name in ("val_loss", "val_acc"):
        pair = paired_bootstrap(y, scores["multi"], scores[name], rng=A._rng(3, 0.9, 200, 0),
                                n_resamples=300)
        diff = cell[f"diff_{name}"]
        assert diff["diff"] == pytest.approx(cell["multi"]["auroc"] - cell[name]["auroc"])
        assert diff["ci"] == pytest.approx([pair.lo, pair.hi], abs=1e-12)
        assert (diff["p_one_sided"], diff["ties"], diff["n_resamples"]) == (
            pytest.approx(pair.p_one_sided), pytest.approx(pair.ties), 300)
    assert cell["max_val_acc_in_window"] == pytest.approx(log.loc[log["step"] < 200, "val_acc"].max())


def test_write_results_writes_every_file(result, tmp_path):
    written = A.write_results(result, tmp_path)
    names = {p.name for p in written}
    assert names == {"analysis.json", "features.parquet", "curves.parquet", "table1.md",
                     "table1.tex", "table2.md", "table2.tex", "table3.md", "table3.tex"}
    assert json.loads((tmp_path / "analysis.json").read_text()) == result
    features = pd.read_parquet(tmp_path / "features.parquet")
    assert list(features.columns) == ["run_id", "window", *FEATURE_NAMES]
    assert len(features) == 2 * N_RUNS and set(features["window"]) == {100, 200}
    curves = pd.read_parquet(tmp_path / "curves.parquet")
    assert list(curves.columns) == ["run_id", "step", "train_acc", "val_acc", "train_loss", "val_loss"]
    assert len(curves) == N_RUNS * len(STEPS)
    assert "single label class" in (tmp_path / "table2.md").read_text()
    tex = (tmp_path / "table1.tex").read_text()
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    table3 = [line for line in (tmp_path / "table3.md").read_text().splitlines()
              if line.startswith("| ") and "_" in line]
    folded = [float(line.split("|")[3]) for line in table3]
    assert len(table3) == len(FEATURE_NAMES) and folded == sorted(folded, reverse=True)
    text = A.format_table1(result)
    assert "p₁" in text and any(line.startswith("100") for line in text.splitlines())
    assert "AUROC [95% bootstrap CI]" in text
    # Was "[98% bootstrap CI]" (:.0%).
    assert "AUROC [97.5% bootstrap CI]" in A.format_table1(
        {**result, "settings": {**result["settings"], "level": 0.975}})


def test_write_results_from_a_plain_dict_skips_the_parquet_files(result, tmp_path):
    written = A.write_results(json.loads(json.dumps(result)), tmp_path)
    assert {p.name for p in written} >= {"analysis.json", "table1.md", "table3.tex"}
    assert not (tmp_path / "features.parquet").exists()


def test_reproducible_and_cells_independent_of_other_windows(sweep, result):
    runs, log = sweep
    again = A.analyze(runs, log, None, windows=(100, 200), n_resamples=300, seed=3,
                      predict_fn=standin)
    assert again["thresholds"] == result["thresholds"]
    only200 = A.analyze(runs, log, None, windows=(200,), thresholds=(0.9,), n_resamples=300,
                        seed=3, predict_fn=standin)
    assert only200["thresholds"]["0.9"]["windows"]["200"] == result["thresholds"]["0.9"]["windows"]["200"]
    other = A.analyze(runs, log, None, windows=(200,), thresholds=(0.9,), n_resamples=300,
                      seed=4, predict_fn=standin)
    assert other["thresholds"]["0.9"]["windows"]["200"]["multi"]["ci"] != \
        result["thresholds"]["0.9"]["windows"]["200"]["multi"]["ci"]


def test_sweep_hash_is_stable_and_sensitive(sweep):
    runs, log = sweep
    h = A.sweep_hash(runs, log)
    rechunked = runs.assign(chunk="chunk-00009", chunk_seconds=1.0)
    assert A.sweep_hash(rechunked.sample(frac=1, random_state=1), log.sample(frac=1, random_state=2)) == h
    changed = log.copy()
    changed.loc[10, "val_loss"] += 1e-9
    assert A.sweep_hash(runs, changed) != h


def recipe_hash(runs: pd.DataFrame, log: pd.DataFrame) -> str:
    """docs/analysis-schema.md's byte recipe, written out in plain Python."""
    import hashlib
    import math
    import struct

    h = hashlib.sha256()
    for label, table, keys in (("runs", runs, ["run_id"]), ("log", log, ["run_id", "step"])):
        rows = sorted(table.to_dict("records"), key=lambda r: tuple(r[k] for k in keys))
        h.update(f"[{label} {len(rows)}]".encode())
        for col in sorted(c for c in table.columns if c not in ("chunk", "chunk_seconds")):
            h.update(f"\x1e{col}\x1e".encode())
            values = [r[col] for r in rows]
            if label == "log" and col == "run_id":
                ids = sorted(set(values))
                h.update(b"".join(struct.pack("<q", ids.index(v)) for v in values))
                h.update("\x1f".join(ids).encode())
            elif pd.api.types.is_numeric_dtype(table[col]) or pd.api.types.is_bool_dtype(table[col]):
                h.update(b"".join(bytes.fromhex("000000000000f87f") if math.isnan(float(v))
                                  else struct.pack("<d", float(v)) for v in values))
            else:
                h.update("\x1f".join("" if v is None or v != v else str(v) for v in values).encode())
    return h.hexdigest()


def test_sweep_hash_follows_the_recipe_in_the_schema(sweep):
    """docs/analysis-schema.md's byte recipe, written out in plain Python, gives the hash."""
    runs, log = sweep
    runs = runs.assign(status=["finished"] * (len(runs) - 1) + [None], chunk="c")  # a missing text
    log = log.copy()
    log.loc[3, "val_loss"] = float("nan")
    assert A.sweep_hash(runs, log) == recipe_hash(runs, log)


def test_a_categorical_run_id_hashes_as_its_values(sweep):
    """Was: a Categorical run_id (a Parquet dictionary column) sorted the rows, and coded the
    log's ids, in its categories' order, so the same sweep hashed differently with categories
    not in sorted order; the recipe sorts by the run ids' values."""
    runs, log = sweep
    ids = sorted(runs["run_id"])
    categories = [*ids[::-1], "unused"]
    as_category = {"run_id": lambda t: pd.Categorical(t["run_id"], categories=categories)}
    want = recipe_hash(runs, log)
    assert A.sweep_hash(runs.assign(**as_category), log) == want
    assert A.sweep_hash(runs, log.assign(**as_category)) == want
    assert A.sweep_hash(runs.assign(**as_category), log.assign(**as_category)) == want


def test_runs_stopped_early_are_left_out_like_absent_runs(sweep):
    """A stopped run's max val acc is censored at its stop: its label is unknown."""
    runs, log = sweep
    stopped = ["run02", "run05"]
    marked = runs.assign(status=runs["status"].where(~runs["run_id"].isin(stopped), "stopped"))
    kwargs = dict(windows=(100,), n_resamples=200, seed=1, predict_fn=standin)
    with_stopped = A.analyze(marked, log, None, **kwargs)
    without = A.analyze(runs[~runs["run_id"].isin(stopped)], log, None, **kwargs)
    assert with_stopped["sweep"]["n_stopped"] == 2 and without["sweep"]["n_stopped"] == 0
    assert with_stopped["thresholds"] == without["thresholds"]
    assert "2 run(s) stopped early left out" in A.format_table1(with_stopped)


def test_numeric_run_ids_are_matched_between_the_runs_table_and_the_log(sweep):
    """Ids 100..120 instead of run00..run20 (sorting alike), in both tables: the same analysis
    (was: every run reported to have no log rows, the runs table's ids turned into text)."""
    runs, log = sweep
    number = {r: 100 + i for i, r in enumerate(sorted(runs["run_id"]))}
    kwargs = dict(windows=(100,), n_resamples=200, seed=1, predict_fn=standin)
    named = A.analyze(runs, log, None, **kwargs)
    numbered = A.analyze(runs.assign(run_id=runs["run_id"].map(number)),
                         log.assign(run_id=log["run_id"].map(number)), None, **kwargs)
    cells = [r["thresholds"]["0.9"]["windows"]["100"] for r in (named, numbered)]
    assert cells[0] == cells[1]


def test_bad_inputs_are_refused(sweep):
    runs, log = sweep
    with pytest.raises(ValueError, match=r"W=700 goes beyond the logged steps"):
        A.analyze(runs, log, None, windows=(700,), predict_fn=standin)
    with pytest.raises(ValueError, match="lacks column"):
        A.analyze(runs.drop(columns="max_val_acc"), log, None, predict_fn=standin)
    with pytest.raises(ValueError, match="of 21 runs, 21 diverged and 0 were stopped early"):
        A.analyze(runs.assign(status="diverged"), log, None, predict_fn=standin)
    with pytest.raises(ValueError, match=r"status='failed' \(on 21 run\(s\)\) is not allowed: "
                                         "expected 'finished', 'diverged' or 'stopped'"):
        A.analyze(runs.assign(status="failed"), log, None, predict_fn=standin)
    with pytest.raises(ValueError) as err:
        A.analyze(runs, log, None, thresholds=(0.9, 1.5), predict_fn=standin)
    assert str(err.value) == ("thresholds=[0.9, 1.5] is not allowed: threshold=1.5 is not allowed: "
                              "expected a number in (0, 1]")
    for bad in ((0.9, 0.9), (), 0.9, "0.9"):
        with pytest.raises(ValueError, match=r"thresholds=.* is not allowed"):
            A.analyze(runs, log, None, thresholds=bad, predict_fn=standin)
    with pytest.raises(ValueError, match=r"^run 'run03' has no log rows$"):
        A.analyze(runs, log[log["run_id"] != "run03"], None, predict_fn=standin)
    with pytest.raises(ValueError, match=r"^run 'run03' \(and 1 other run\(s\)\) has no log rows$"):
        A.analyze(runs, log[~log["run_id"].isin(["run03", "run07"])], None, predict_fn=standin)
    with pytest.raises(ValueError, match=r"^the log lacks column 'run_id'$"):
        A.analyze(runs, log.drop(columns="run_id"), None, predict_fn=standin)
    with pytest.raises(ValueError, match=r"^the runs table lists run 'run03' more than once$"):
        A.analyze(pd.concat([runs, runs[runs["run_id"] == "run03"]]), log, None, predict_fn=standin)
    # A finished run whose window holds a NaN is suspect, not diverged.
    suspect = log.assign(val_loss=log["val_loss"].mask((log["run_id"] == "run03") & (log["step"] == 50)))
    with pytest.raises(ValueError, match=r"^feature 'end_val_loss' of run 'run03' at W=51 is nan \(\d+ "
                                         r"non-finite value\(s\) in all\); the run is not marked "
                                         r"diverged, so its log is suspect$"):
        A.analyze(runs, suspect, None, windows=(51,), predict_fn=standin)
    for bad in ((1,), (100, 100), (100.0,), (True,), ()):
        with pytest.raises(ValueError, match=rf"^windows={re.escape(repr(list(bad)))} is not allowed: "
                                             r"expected distinct integers >= 2$"):
            A.analyze(runs, log, None, windows=bad, predict_fn=standin)
    with pytest.raises(ValueError, match=r"^the predictor returned shape \(19,\) for 20 runs$"):
        A.analyze(runs, log, None, windows=(100,), predict_fn=lambda X, y: standin(X, y)[:-1])

    def holes(X: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.where(np.arange(len(y)) == 3, np.nan, standin(X, y))

    with pytest.raises(ValueError, match=r"predictor returned non-finite probabilities for runs at "
                                         r"rows \[3\] \(threshold 0.9, W = 100\)"):
        A.analyze(runs, log, None, windows=(100,), predict_fn=holes)


def test_feature_difference_refuses_a_single_class_and_a_feature_that_is_not_finite():
    y = np.array([0, 0, 0, 1, 1, 1])
    runs = [{"run_id": f"r{k}"} for k in range(6)]
    feats = pd.DataFrame({"run_id": [r["run_id"] for r in runs], "window": 200,
                          "end_val_loss": np.arange(6.0)[::-1], "end_val_acc": np.arange(6.0)})
    a = {"runs": runs, "settings": {"seed": 0, "n_resamples": 200, "level": 0.95},
         "thresholds": {"0.9": {"labels": y.tolist(), "single_class": False,
                                "windows": {"200": {}}}}}
    # Both perfectly ordered, one each way: oriented by their AUROCs, both fold to 1.
    assert A.feature_difference(a, feats, "0.9", 200, "end_val_loss", "end_val_acc")["diff"] == 0.0
    # The threshold as a number, as table_rows takes it: np.float32(0.9) is the "0.9" cell (was a
    # KeyError, for 0.9 too), with the same resamples.
    feats2 = feats.assign(end_val_acc=[0.0, 4, 2, 3, 1, 5])
    by_key = A.feature_difference(a, feats2, "0.9", 200, "end_val_loss", "end_val_acc")
    for t in (0.9, np.float32(0.9)):
        assert A.feature_difference(a, feats2, t, 200, "end_val_loss", "end_val_acc") == by_key
    with pytest.raises(ValueError, match=r"^threshold=0.99 is not allowed: expected one of the "
                                         r"analysed thresholds \[0.9\]"):
        A.feature_difference(a, feats, 0.99, 200, "end_val_loss", "end_val_acc")
    # The cell's resamples are keyed by the analysed threshold, not by the number given: at
    # 0.9000005 its millionths (900000.5) round down, float32's (900000.51) up.
    b = {**a, "thresholds": {"0.9000005": a["thresholds"]["0.9"]}}
    assert round(0.9000005 * 1e6) != round(float(np.float32(0.9000005)) * 1e6)
    assert (A.feature_difference(b, feats2, np.float32(0.9000005), 200, "end_val_loss",
                                 "end_val_acc")
            == A.feature_difference(b, feats2, "0.9000005", 200, "end_val_loss", "end_val_acc")
            == by_key)
    with pytest.raises(ValueError, match=r"^feature 'end_val_acc' at W = 200 is not finite for every "
                                         r"run$"):
        A.feature_difference(a, feats.assign(end_val_acc=[0.0, 1, np.inf, 3, 4, 5]), "0.9", 200,
                             "end_val_loss", "end_val_acc")
    a["thresholds"]["0.9"]["single_class"] = True
    with pytest.raises(ValueError, match=r"^threshold='0.9' has a single label class: no AUROC to "
                                         r"compare$"):
        A.feature_difference(a, feats, "0.9", 200, "end_val_loss", "end_val_acc")


def test_default_predictor_is_the_papers_model(sweep, monkeypatch):
    from grokcast import logistic
    runs, log = sweep
    res = A.analyze(runs, log, None, windows=(200,), thresholds=(0.9,), n_resamples=50)
    assert res["settings"]["cv"] == "loo" and res["thresholds"]["0.9"]["cv"] == "loo"
    X = feature_table(log[log["run_id"] != "run20"], 200).to_numpy()
    y = np.array(res["thresholds"]["0.9"]["labels"])
    np.testing.assert_allclose(res["thresholds"]["0.9"]["windows"]["200"]["loo_proba"],
                               logistic.loo_predictions(X, y))
    monkeypatch.setattr(A, "LOO_MAX_RUNS", 10)  # as if the sweep were large
    res = A.analyze(runs, log, None, windows=(200,), thresholds=(0.9,), n_resamples=50)
    assert res["settings"]["cv"] == "10-fold" and res["thresholds"]["0.9"]["cv"] == "7-fold"


def test_small_class_notes_flag_thresholds_with_few_runs_in_a_class():
    from grokcast.analysis import small_class_notes

    result = {"thresholds": {"0.9": {"n_pos": 1, "n_neg": 7}, "0.99": {"n_pos": 0, "n_neg": 8},
                             "0.5": {"n_pos": 4, "n_neg": 4}}}
    notes = small_class_notes(result)
    assert len(notes) == 1 and "threshold 0.9 only 1 run(s)" in notes[0]


def test_a_table_with_few_runs_in_a_class_says_so_in_its_caption(result):
    """The terminal's small-class note, in the table file's caption too (table2.md of the
    paper sweep: 2 of 48 runs reach 0.99, and its multi AUROCs of 0.08-0.29 said nothing of it)."""
    import copy

    few = copy.deepcopy(result)
    entry = few["thresholds"]["0.9"]
    assert not A.small_class_notes(result) and "say little" not in A.format_table(result, 0.9)
    entry["n_pos"], entry["n_neg"] = 2, entry["n_pos"] + entry["n_neg"] - 2
    for fmt in ("md", "tex", "text"):
        assert ("With 2 runs in one class, multi's held-out predictions of that class come "
                "from models that saw (almost) none of it") in A.format_table(few, 0.9, fmt=fmt)


def test_tables_take_a_threshold_read_back_from_float32(result):
    """Was: table_rows and format_table looked np.float32(0.9) up as the key "0.899999976158"
    (12 digits of its exact value) and failed with a KeyError, as did a threshold not
    analysed; 0.9 up to float32 rounding is the "0.9" a plain 0.9 finds."""
    plain = A.table_rows(result, 0.9)
    assert plain == A.table_rows(result, "0.9")
    for t in (np.float32(0.9), float(np.float32(0.9)), np.float64(0.9)):
        assert A.table_rows(result, t) == plain
        for fmt in ("md", "tex", "text"):
            assert A.format_table(result, t, fmt=fmt) == A.format_table(result, 0.9, fmt=fmt)
    keys = list(result["thresholds"])
    for bad in (0.9 * (1 + 2e-6), 0.5, "0.90", True):
        with pytest.raises(ValueError, match=rf"^threshold={re.escape(repr(bad))} is not allowed: "
                                             rf"expected one of the analysed thresholds "
                                             rf"{re.escape(str([float(k) for k in keys]))}"):
            A.format_table(result, bad)


def test_result_key_prefers_the_exact_key_and_refuses_an_ambiguous_or_boolean_threshold():
    """Two analysed thresholds within float32 rounding of each other: each number finds its own
    key, and a number near both (0.9 read back from float32 as a plain float) is refused, not
    taken as the first; True is no threshold even where 1 is analysed."""
    r = {"thresholds": {"0.9": {}, "0.9000001": {}, "1": {}}}
    assert A.result_key(r, 0.9) == "0.9" and A.result_key(r, 0.9000001) == "0.9000001"
    assert A.result_key(r, np.float32(0.9)) == "0.9"  # the decimal it prints as
    assert A.result_key(r, "0.9000001") == "0.9000001"
    assert A.result_key(r, 1.0) == "1" and A.result_key(r, np.float32(1)) == "1"
    for bad in (float(np.float32(0.9)), True, np.bool_(True), "1.0"):
        with pytest.raises(ValueError, match=rf"^threshold={re.escape(repr(bad))} is not allowed"):
            A.result_key(r, bad)


def test_first_steps_per_run_against_a_plain_loop(sweep, result):
    """step_train_acc_0.99 and step_val_acc: the first logged step reaching each level."""
    _, log = sweep

    def first(rows: pd.DataFrame, column: str, level: float) -> int:
        for step, value in zip(rows["step"], rows[column]):
            if not np.isnan(value) and np.float32(value) >= np.float32(level):
                return int(step)
        return -1

    for run in result["runs"]:
        rows = log[log["run_id"] == run["run_id"]].sort_values("step")
        assert run["step_train_acc_0.99"] == first(rows, "train_acc", 0.99), run["run_id"]
        for key, step in run["step_val_acc"].items():
            assert step == first(rows, "val_acc", float(key)), (run["run_id"], key)
    # The synthetic log rarely reaches the levels: check the same rule on climbing accuracies,
    # one run exactly at 333/370 = 0.9 (logged as 0.89999998) from step 7 on.
    rng = np.random.default_rng(5)
    steps = np.arange(0, 40)
    climb = pd.concat([pd.DataFrame({"run_id": f"r{k}", "step": steps,
                                     "val_acc": np.clip(np.cumsum(rng.uniform(0, 0.045, 40)), 0, 1)})
                       for k in range(12)], ignore_index=True)
    climb.loc[climb["run_id"] == "r0", "val_acc"] = np.where(
        steps >= 7, np.float32(333) / np.float32(370), 0.1).astype(np.float32)
    ids = [f"r{k}" for k in range(12)]
    got = A.first_logged_step(climb, "val_acc", 0.9, ids)
    want = {r: first(climb[climb["run_id"] == r], "val_acc", 0.9) for r in ids}
    assert got == want and got["r0"] == 7
    assert -1 in got.values() and len(set(got.values())) > 3


def test_numpy_thresholds_mean_the_decimal_they_print_as(sweep):
    """np.float32(0.9) is 0.8999999762 exactly: taken as 0.9, it gives the Python float's
    results under the Python float's key, "0.9" (its exact value's key is "0.899999976158")."""
    runs, log = sweep
    kwargs = dict(windows=(100,), n_resamples=20, predict_fn=standin)
    want = A.analyze(runs, log, None, thresholds=(0.9, 0.99), **kwargs)
    for given in ((np.float32(0.9), np.float64(0.99)), np.array([0.9, 0.99], dtype=np.float32),
                  pd.Series([0.9, 0.99]), (t for t in (0.9, 0.99))):  # any iterable of numbers
        got = A.analyze(runs, log, None, thresholds=given, **kwargs)
        assert got["settings"]["thresholds"] == [0.9, 0.99]
        assert list(got["thresholds"]) == ["0.9", "0.99"]
        assert got["thresholds"] == want["thresholds"]


def test_labels_compare_max_val_acc_in_float32_like_the_logged_accuracy(sweep):
    """333/370 is exactly 0.9 but is logged as float32 0.89999998 (below the float64 0.9): that
    run reaches 0.9. A run one float32 step lower does not. Reference: exact fractions of the
    true accuracies against 9/10."""
    from fractions import Fraction

    runs, log = sweep
    at = float(np.float32(333) / np.float32(370))
    below = float(np.nextafter(np.float32(at), np.float32(0)))
    assert at < 0.9 and Fraction(below) < Fraction(9, 10)
    true_acc = {"run01": Fraction(333, 370), "run03": Fraction(below), "run04": Fraction(0.9)}
    logged = {"run01": at, "run03": below, "run04": 0.9}
    runs = runs.assign(max_val_acc=[logged.get(r, m) for r, m in zip(runs["run_id"], runs["max_val_acc"])])
    res = A.analyze(runs, log, None, windows=(100,), thresholds=(0.9,), n_resamples=20,
                    predict_fn=standin)
    want = []
    for r in range(N_RUNS):
        run_id = f"run{r:02d}"
        acc = true_acc.get(run_id, Fraction(0.95) if r % 3 == 0 else Fraction(0.3))
        want.append(int(acc >= Fraction(9, 10)))
    assert want[1] == 1 and want[3] == 0 and want[4] == 1
    main = res["thresholds"]["0.9"]
    assert main["labels"] == want
    assert (main["n_pos"], main["n_neg"]) == (sum(want), N_RUNS - sum(want))


def test_max_val_acc_in_window_reads_steps_below_w_only(sweep):
    """A peak exactly at step W is outside window W; a diverged run is not analysed."""
    runs, log = sweep
    log = log.copy()
    at = lambda run_id, step: (log["run_id"] == run_id) & (log["step"] == step)  # noqa: E731
    log.loc[at("run05", 100), "val_acc"] = 0.96  # inside W=200, not W=100
    log.loc[at("run07", 200), "val_acc"] = 0.97  # outside both
    log.loc[at("run20", 50), "val_acc"] = 0.99  # the diverged run: left out
    res = A.analyze(runs, log, None, windows=(100, 200), thresholds=(0.9,), n_resamples=20,
                    predict_fn=standin)
    for w in (100, 200):
        best = -1.0
        for run_id, step, acc in zip(log["run_id"], log["step"], log["val_acc"]):
            if run_id != "run20" and step < w and not np.isnan(acc) and acc > best:
                best = acc
        assert res["thresholds"]["0.9"]["windows"][str(w)]["max_val_acc_in_window"] == best, w
    assert res["thresholds"]["0.9"]["windows"]["200"]["max_val_acc_in_window"] == 0.96
    assert res["thresholds"]["0.9"]["windows"]["100"]["max_val_acc_in_window"] < 0.96


@pytest.mark.parametrize(("loo_max", "cv"), [(N_RUNS, "loo"), (N_RUNS - 1, "10-fold")])
def test_loo_up_to_loo_max_runs_analysed_runs_then_kfold(sweep, monkeypatch, loo_max, cv):
    """Exactly LOO_MAX_RUNS analysed runs (the diverged one not counted) -> LOO; one more ->
    k-fold, for the model and its hyperparameter baseline (one varying axis here). The
    predictors are stubbed (no fitting) to record which one ran."""
    runs, log = sweep
    called = []

    def score(X, y):
        return standin(X, y) if X.shape[1] == len(FEATURE_NAMES) else X[:, 0]

    def loo(X, y):
        called.append(("loo", len(y), X.shape[1]))
        return score(X, y)

    def kfold(X, y, *, n_splits, rng):
        called.append(("kfold", len(y), X.shape[1]))
        return score(X, y)

    monkeypatch.setattr(A, "loo_predictions", loo)
    monkeypatch.setattr(A, "kfold_predictions", kfold)
    monkeypatch.setattr(A, "LOO_MAX_RUNS", loo_max)
    res = A.analyze(runs, log, None, windows=(100,), thresholds=(0.9,), n_resamples=20)
    assert res["settings"]["cv"] == cv
    kind = "loo" if cv == "loo" else "kfold"
    assert called == [(kind, N_RUNS, len(FEATURE_NAMES)), (kind, N_RUNS, 1)]


def test_table3_the_figures_and_the_paper_share_one_headline_window(sweep):
    """W = 200 when analysed; else the middle analysed window, in whatever order they were given
    (table3.md once fell back to the first window given while the paper and figures used the
    middle one, so the two Table 3s disagreed)."""
    from grokcast import figures as F

    assert A.primary_window([100, 200, 300]) == 200
    assert A.primary_window([500, 100, 300]) == 300
    assert A.primary_window([100, 300, 500, 1000]) == 300
    runs, log = sweep
    result = A.analyze(runs, log, None, windows=(500, 100, 300), n_resamples=50, seed=3,
                       predict_fn=standin)
    assert F.primary_window(result) == 300
    assert "at W = 300 for" in A.format_table3(result)
    cell = result["thresholds"]["0.9"]["windows"]["300"]["univariate"]
    best = max(cell, key=lambda f: cell[f]["folded"])
    first_row = next(line for line in A.format_table3(result).splitlines() if line.startswith("| ")
                     and "_" in line)
    assert first_row.split("|")[1].strip() == best
    # The text form (`grokcast analyze` writes md and tex only) lists the same rows in order.
    text = A.format_table3(result, fmt="text").splitlines()
    assert text[0].startswith("Table 3: Per-feature AUROC") and "at W = 300 for" in text[0]
    shown = [line.split() for line in text if line.split() and line.split()[0] in cell]
    assert [row[0] for row in shown] == sorted(cell, key=lambda f: -cell[f]["folded"])
    assert [float(row[2]) for row in shown] == [round(cell[row[0]]["folded"], 3) for row in shown]
    for fn in (A.format_table3, functools.partial(A.format_table, threshold=0.9)):
        with pytest.raises(ValueError, match=r"^fmt='html' is not allowed: expected one of 'md', 'tex', "
                                             r"'text'$"):
            fn(result, fmt="html")


def test_a_sweep_too_small_for_the_models_internal_cv_keeps_its_baselines(sweep):
    """4 runs, 2 grokking: every leave-one-out training set (2 + 1 runs) is too small for the
    internal 3-fold CV that picks C. The analysis used to abort; now the model's cells are
    None with the reason, and the baselines are still computed (checked against sklearn)."""
    from grokcast.paper.sentences import headline_sentence

    runs, log = sweep
    keep = ["run00", "run01", "run02", "run03"]  # run00 and run03 grok
    result = A.analyze(runs[runs["run_id"].isin(keep)], log[log["run_id"].isin(keep)], None,
                       windows=(100, 200), n_resamples=50, seed=3)
    entry = result["thresholds"]["0.9"]
    assert (entry["n_pos"], entry["n_neg"], entry["single_class"]) == (2, 2, False)
    cell = entry["windows"]["200"]
    assert cell["multi"] is None and cell["loo_proba"] is None and cell["diff_val_loss"] is None
    assert cell["multi_note"].startswith(f"too few runs for the {len(FEATURE_NAMES)}-feature model "
                                         "(C is chosen by cv=3 stratified folds, which need at "
                                         "least 3 runs")
    y = np.array(entry["labels"])
    at199 = log[log["run_id"].isin(keep) & (log["step"] == 199)].sort_values("run_id")
    assert cell["val_loss"]["auroc"] == pytest.approx(roc_auc_score(y, -at199["val_loss"]))
    assert cell["univariate"]["end_val_loss"]["auroc"] == pytest.approx(
        1 - cell["val_loss"]["auroc"])
    assert "multi not computed: too few runs" in A.format_table(result, 0.9)
    assert f"not evaluated: too few runs for the {len(FEATURE_NAMES)}" in headline_sentence(cell, 200)


def test_table_p_values_show_the_resolution_of_the_resamples(result):
    """A p of 0 from 300 resamples means p < 1/300, which the tables print as < 0.0034, not
    < 0.001; a nonzero p prints with three decimals."""
    import copy

    result = copy.deepcopy(result)
    entry = result["thresholds"]["0.9"]
    first = next(iter(entry["windows"].values()))
    first["diff_val_loss"]["p_one_sided"] = 0.0  # as if no resample had diff* <= 0
    rows = A.table_rows(result, 0.9)
    for cell, row in zip(entry["windows"].values(), rows, strict=True):
        for diff, text in ((cell["diff_val_loss"], row[5]), (cell["diff_val_acc"], row[7])):
            assert diff["n_resamples"] == 300
            p = diff["p_one_sided"]
            assert text == ("< 0.0034" if p == 0 else f"{p:.3f}")
    assert rows[0][5] == "< 0.0034"
    # The TeX table sets it in math mode (a bare < is an inverted exclamation mark in T1 text).
    tex_row = next(line for line in A.format_table(result, 0.9, fmt="tex").splitlines()
                   if line.startswith(f"{rows[0][0]} & "))
    cells = tex_row.removesuffix(r" \\").split(" & ")
    assert cells[5] == "$<0.0034$" and len(cells) == len(rows[0])
    assert cells[7] == ("$<0.0034$" if rows[0][7] == "< 0.0034" else rows[0][7])


def test_threshold_keys_keep_the_thresholds_digits(sweep):
    """0.9999999 was stored and captioned as "1" (six significant digits)."""
    runs, log = sweep
    result = A.analyze(runs, log, None, windows=(100,), thresholds=(0.9, 0.9999999),
                       n_resamples=50, seed=1, predict_fn=standin)
    assert list(result["thresholds"]) == ["0.9", "0.9999999"]


def test_run_orders_are_seeded_permutations():
    orders = A.run_orders(7, 5, seed=1)
    assert orders.shape == (5, 7) and (np.sort(orders, axis=1) == np.arange(7)).all()
    assert len({tuple(o) for o in orders}) == 5  # 5 of 7! orders: distinct here
    np.testing.assert_array_equal(orders, A.run_orders(7, 5, seed=1))
    assert not np.array_equal(orders, A.run_orders(7, 5, seed=2))
    assert A.run_orders(7, 0, seed=1).shape == (0, 7)
    for bad in ((5, -2, 0), (5, 2, -1), (-1, 2, 0), (5, 2.5, 0)):
        with pytest.raises((ValueError, TypeError), match="n_orders|seed|n_runs"):
            A.run_orders(*bad)


def test_multi_by_order_against_sklearn_loo_on_the_permuted_runs(sweep):
    """Each order's AUROC is that of a plain LOO loop of the scikit-learn pipeline over the
    runs given in that order (whose unshuffled inner folds follow it), un-permuted."""
    from test_forecast import sklearn_reference

    runs, log = sweep
    res = A.analyze(runs, log, None, windows=(200,), thresholds=(0.9,), n_resamples=20,
                    seed=4, orders=2)
    assert res["settings"]["orders"] == 2
    cell = res["thresholds"]["0.9"]["windows"]["200"]
    X = feature_table(log[log["run_id"] != "run20"], 200).to_numpy()
    y = np.array(res["thresholds"]["0.9"]["labels"])
    expected = []
    for order in A.run_orders(len(y), 2, seed=4):
        Xo, yo = X[order], y[order]
        proba = np.empty(len(y))
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            model = sklearn_reference()
            proba[order[i]] = model.fit(Xo[keep], yo[keep]).predict_proba(Xo[i:i + 1])[0, 1]
        expected.append(roc_auc_score(y, proba))
    np.testing.assert_allclose(cell["multi_by_order"], expected, atol=1e-12)
    # The order changes the folds, so the AUROCs of these two orders and run_id order differ.
    assert len({round(a, 9) for a in [*cell["multi_by_order"], cell["multi"]["auroc"]]}) > 1


def test_hyperparameter_matrix_ranks_each_varying_axis_among_the_runs_values():
    runs = pd.DataFrame({"train_frac": [0.5, 0.3, 0.5], "weight_decay": [10.0, 0.0, 1.0],
                         "seed": [0, 1, 2]})
    ranks, axes = A.hyperparameter_matrix(runs)
    assert axes == ["train_frac", "weight_decay"]
    np.testing.assert_array_equal(ranks, [[1, 2], [0, 0], [1, 1]])  # ranks, not values
    ranks, axes = A.hyperparameter_matrix(runs.assign(train_frac=0.4))
    assert axes == ["weight_decay"] and ranks.shape == (3, 1)
    assert A.hyperparameter_matrix(runs.assign(train_frac=0.4, weight_decay=1.0)) is None


def test_hyperparameter_baselines_match_sklearn_and_share_multis_resamples(sweep, monkeypatch):
    """Each axis as a score, and the paper's model on the runs' ranks of f and λ: a plain
    scikit-learn LOO loop gives its AUROC; CIs and paired tests are those of multi's resamples;
    with k-fold the model uses multi's folds. A custom predictor gets the axis scores only; a
    grid where no axis varies gets no baseline."""
    from test_forecast import sklearn_reference

    from grokcast.logistic import kfold_predictions
    from grokcast.stats import bootstrap_ci, paired_bootstrap

    runs, log = sweep
    # Unsorted, with a zero (ranks 0, 2, 1, 2); with these labels, ranks in order of
    # appearance, or other k-fold folds, would give other AUROCs.
    wd = ([0.0, 3.0, 1.0, 3.0] * 6)[:21]
    runs = runs.assign(weight_decay=wd)
    res = A.analyze(runs, log, None, windows=(200,), thresholds=(0.9,), n_resamples=40, seed=6)
    assert res["settings"]["hyperparam_axes"] == ["train_frac", "weight_decay"]
    cell = res["thresholds"]["0.9"]["windows"]["200"]
    y = np.array(res["thresholds"]["0.9"]["labels"])
    multi = np.array(cell["loo_proba"])
    analysed = runs[runs["run_id"] != "run20"]

    def check(entry: dict, diff: dict, score: np.ndarray) -> None:
        resamples = dict(n_resamples=40)  # multi's: the cell's generator, key 0
        ci = bootstrap_ci(y, score, rng=A._rng(6, 0.9, 200, 0), **resamples)
        assert entry["auroc"] == pytest.approx(roc_auc_score(y, score), abs=1e-9)
        assert entry["ci"] == pytest.approx([ci.lo, ci.hi], abs=1e-9)
        pair = paired_bootstrap(y, multi, score, rng=A._rng(6, 0.9, 200, 0), **resamples)
        assert diff["diff"] == pytest.approx(roc_auc_score(y, multi) - roc_auc_score(y, score),
                                             abs=1e-9)
        assert diff["ci"] == pytest.approx([pair.lo, pair.hi], abs=1e-9)
        assert (diff["p_one_sided"], diff["ties"], diff["n_resamples"]) == (
            pytest.approx(pair.p_one_sided), pytest.approx(pair.ties), 40)

    scores = cell["axis_scores"]
    assert list(scores) == ["train_frac", "weight_decay"]
    for axis in scores:  # a larger value scores higher: the values themselves as the score
        check(scores[axis], scores[axis]["diff"], analysed[axis].to_numpy())
    H = np.column_stack([(analysed["train_frac"] == 0.6).to_numpy(),
                         analysed["weight_decay"].map({0.0: 0, 1.0: 1, 3.0: 2}).to_numpy()]
                        ).astype(float)
    proba = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        proba[i] = sklearn_reference().fit(H[keep], y[keep]).predict_proba(H[i:i + 1])[0, 1]
    check(cell["hyperparams"], cell["diff_hyperparams"], proba)
    np.testing.assert_allclose(cell["hyperparams"]["proba"], proba, atol=1e-9)

    monkeypatch.setattr(A, "LOO_MAX_RUNS", 10)  # 20 runs: 10-fold, or as many as the minority
    res = A.analyze(runs, log, None, windows=(200,), thresholds=(0.9,), n_resamples=40, seed=6)
    cell = res["thresholds"]["0.9"]["windows"]["200"]
    folds = kfold_predictions(H, y, n_splits=A._n_splits(y), rng=A._rng(6, 0.9, 200, 1))
    assert cell["hyperparams"]["auroc"] == pytest.approx(roc_auc_score(y, folds), abs=1e-9)
    monkeypatch.undo()

    custom = A.analyze(runs, log, None, windows=(200,), thresholds=(0.9,), n_resamples=40,
                       predict_fn=standin)
    assert custom["settings"]["hyperparam_axes"] == ["train_frac", "weight_decay"]
    cell = custom["thresholds"]["0.9"]["windows"]["200"]
    assert "axis_scores" in cell and not {"hyperparams", "diff_hyperparams"} & set(cell)
    fixed = A.analyze(runs.assign(train_frac=0.3, weight_decay=1.0), log, None, windows=(200,),
                      thresholds=(0.9,), n_resamples=40)
    assert fixed["settings"]["hyperparam_axes"] == []
    assert not {"axis_scores", "hyperparams", "diff_hyperparams"} & set(
        fixed["thresholds"]["0.9"]["windows"]["200"])


def test_orders_are_checked_and_a_model_too_small_to_fit_has_none(sweep):
    runs, log = sweep
    for bad in (-1, 1.5, True, A.MAX_ORDERS + 1):
        with pytest.raises((ValueError, TypeError), match=r"^orders="):
            A.analyze(runs, log, None, windows=(200,), predict_fn=standin, orders=bad)
    few = runs[runs["run_id"].isin([f"run{r:02d}" for r in range(5)])]
    res = A.analyze(few, log, None, windows=(200,), thresholds=(0.9,), n_resamples=20, orders=2)
    cell = res["thresholds"]["0.9"]["windows"]["200"]
    assert cell["multi"] is None and cell["multi_by_order"] is None


def test_multi_cell_out_leaves_out_whole_grid_cells_as_sklearn_does(sweep):
    """Every seed of a (train fraction, weight decay) cell is held out together: the AUROC is
    that of a plain scikit-learn loop over the cells, its CI on multi's resamples, and with
    run orders each order's AUROC is that loop's over the permuted runs; a custom predictor,
    a grid of one run per cell and a grid of one cell get none."""
    from test_forecast import sklearn_reference

    from grokcast.stats import bootstrap_ci

    runs, log = sweep
    runs = runs.assign(weight_decay=[1.0, 1.0, 3.0, 3.0] * 5 + [1.0])  # 4 cells of 5 runs
    res = A.analyze(runs, log, None, windows=(200,), thresholds=(0.9,), n_resamples=30,
                    orders=2, seed=5)
    cell = res["thresholds"]["0.9"]["windows"]["200"]
    X = feature_table(log[log["run_id"] != "run20"], 200).to_numpy()
    y = np.array(res["thresholds"]["0.9"]["labels"])
    analysed = runs[runs["run_id"] != "run20"]
    keys = np.array([f"{f}/{wd}" for f, wd in zip(analysed["train_frac"], analysed["weight_decay"])])

    def cell_out(order: np.ndarray) -> np.ndarray:
        Xo, yo, ko = X[order], y[order], keys[order]
        proba = np.empty(len(y))
        for key in dict.fromkeys(ko):
            out = ko == key
            proba[order[out]] = sklearn_reference().fit(Xo[~out], yo[~out]).predict_proba(
                Xo[out])[:, 1]
        return proba

    proba = cell_out(np.arange(len(y)))
    assert cell["multi_cell_out"]["auroc"] == pytest.approx(roc_auc_score(y, proba), abs=1e-9)
    ci = bootstrap_ci(y, proba, rng=A._rng(5, 0.9, 200, 0), n_resamples=30)  # multi's resamples
    assert cell["multi_cell_out"]["ci"] == pytest.approx([ci.lo, ci.hi], abs=1e-9)
    np.testing.assert_allclose(cell["multi_cell_out_by_order"],
                               [roc_auc_score(y, cell_out(o)) for o in A.run_orders(len(y), 2, 5)],
                               atol=1e-9)
    custom = A.analyze(runs, log, None, windows=(200,), thresholds=(0.9,), n_resamples=30,
                       predict_fn=standin)
    assert "multi_cell_out" not in custom["thresholds"]["0.9"]["windows"]["200"]
    for grid in (runs.assign(weight_decay=np.arange(len(runs), dtype=float)),  # one run a cell
                 runs.assign(train_frac=0.3, weight_decay=1.0)):  # one cell
        other = A.analyze(grid, log, None, windows=(200,), thresholds=(0.9,), n_resamples=30)
        assert "multi_cell_out" not in other["thresholds"]["0.9"]["windows"]["200"]
    # Seven runs in two cells (f = 0.3: 4 runs, f = 0.6: 3 runs, one grokking): every leave-one-out
    # training set holds cv=3 runs of a class, but the 0.6 cell alone, left to train on when
    # the 0.3 cell is out, holds fewer of each: multi is scored, cell-out is not.
    seven = [f"run{r:02d}" for r in range(7)]
    few = A.analyze(runs[runs["run_id"].isin(seven)].assign(weight_decay=1.0),
                    log[log["run_id"].isin(seven)], None, windows=(200,), thresholds=(0.9,),
                    n_resamples=30, orders=2)
    cell = few["thresholds"]["0.9"]["windows"]["200"]
    assert cell["multi"] is not None and cell["multi_cell_out"] is None
    assert cell["multi_cell_out_by_order"] == [None, None]


def test_analyze_sweep_names_a_misspelt_option_as_its_own_before_reading_the_sweep(tmp_path):
    """The CLI's --resamples is n_resamples in Python: analyze_sweep(resamples=...) said
    "analyze() got an unexpected keyword argument", a function the user never called, after
    reading the whole sweep (found in review)."""
    with pytest.raises(TypeError, match=r"^analyze_sweep\(\) got unexpected keyword argument\(s\) "
                                        r"resamples: it takes partial and windows, thresholds, "
                                        r"n_resamples, level, seed, predict_fn, orders, progress$"):
        A.analyze_sweep(tmp_path / "no-sweep-here", resamples=100)


def test_the_analysis_reads_the_features_by_name_not_by_registry_position(monkeypatch):
    """The baselines and univariate AUROCs were taken by position in the registry as this
    module imported it: a registry changed afterwards (a researcher's added feature) gave a
    val-loss baseline of 0.047 instead of 0.979 and AUROCs under other features' names, with
    no error (found in review). The registry reversed must give the same numbers by name."""
    import grokcast.features as feats

    runs, log = synthetic_sweep()
    kw = dict(windows=(100,), thresholds=(0.9,), n_resamples=50, seed=0, predict_fn=standin)
    base = A.analyze(runs, log, None, **kw)
    monkeypatch.setattr(feats, "FEATURES", feats.FEATURES[::-1])
    flipped = A.analyze(runs, log, None, **kw)
    (cell,), (fcell,) = ([w for t in r["thresholds"].values() for w in t["windows"].values()]
                         for r in (base, flipped))
    assert fcell["val_loss"] == cell["val_loss"] and fcell["val_acc"] == cell["val_acc"]
    assert fcell["univariate"] == cell["univariate"] and len(cell["univariate"]) == len(FEATURE_NAMES)
    names = [f["name"] for f in base["features"]]
    assert [f["name"] for f in flipped["features"]] == names[::-1]
    assert list(flipped.features.columns[2:]) == names[::-1]
    pd.testing.assert_frame_equal(flipped.features[["run_id", "window", *names]], base.features)


def test_window_digests_do_not_move_when_a_signal_is_added(monkeypatch):
    """A researcher's new signal appended to SIGNAL_NAMES (logged by the trainer, so in every
    new sweep's log) changed every run's window digest: a forecaster file fit before it no
    longer recognised its training runs in evaluate and early-stop-study, silently."""
    import grokcast.signals as S

    _, log = synthetic_sweep()
    assert A.DIGEST_SIGNALS == S.SIGNAL_NAMES  # today's digests are those files already hold
    before = A.window_digests(log, 200)
    extended = (*S.SIGNAL_NAMES, "norm_w_in")
    monkeypatch.setattr(S, "SIGNAL_NAMES", extended)
    monkeypatch.setattr(A, "SIGNAL_NAMES", extended, raising=False)
    grown = log.assign(norm_w_in=np.linspace(1.0, 2.0, len(log)))
    assert A.window_digests(grown, 200) == before


def test_a_runs_table_without_chunk_columns_has_no_training_time_and_nothing_else_changes(sweep):
    """Runs from elsewhere than a SweepStore (no chunk bookkeeping): train_seconds is None,
    not a sum over a missing column; the rest of the analysis is the one with the columns."""
    runs, log = sweep
    kwargs = dict(windows=(100,), n_resamples=50, seed=1, predict_fn=standin)
    with_chunks = A.analyze(runs, log, None, **kwargs)
    assert with_chunks["sweep"]["train_seconds"] == pytest.approx(
        runs.drop_duplicates("chunk")["chunk_seconds"].sum())
    for dropped in (["chunk", "chunk_seconds"], ["chunk_seconds"]):
        without = A.analyze(runs.drop(columns=dropped), log, None, **kwargs)
        assert without["sweep"].pop("train_seconds") is None
        with_chunks["sweep"].pop("train_seconds", None)
        # When and how long: the two calls may straddle a second (found flaky).
        for key in ("timing", "created"):
            without.pop(key), with_chunks.pop(key, None)
        assert without == with_chunks


def test_threshold_messages_count_one_run_in_the_singular(sweep):
    """Was "all 1 runs have max_val_acc < 0.99" (the one-run paper's robustness caption prints
    it) and "1 of 3 runs reach"."""
    runs, log = sweep
    ids = ["run00", "run01", "run02"]  # run00 alone groks (max_val_acc 0.95)

    def messages(keep):
        result = A.analyze(runs[runs["run_id"].isin(keep)], log[log["run_id"].isin(keep)], None,
                           windows=(100,), n_resamples=20, predict_fn=standin)
        return {k: e["message"] for k, e in result["thresholds"].items()}

    assert messages(ids) == {
        "0.9": "1 of 3 runs reaches max_val_acc >= 0.9",
        "0.99": "all 3 runs have max_val_acc < 0.99: with a single label class AUROC is undefined, "
                "so the predictor, baselines and univariate AUROCs are skipped at this threshold"}
    assert messages(ids[:1])["0.99"].startswith("the one run has max_val_acc < 0.99: with a single")
    assert messages(ids[1:])["0.9"].startswith("all 2 runs have max_val_acc < 0.9: ")
