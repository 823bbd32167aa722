"""The shared argument checks: what passes, and the one wording of every refusal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grokcast.validation import check_int, check_number


def test_check_int_takes_integers_and_numpy_integers_and_returns_python_ints():
    for value in (2, np.int64(2), np.int32(7)):
        got = check_int("window", value, 2)
        assert got == int(value) and type(got) is int
    for bad in (1, True, 2.0, "2", None, np.float64(3.0)):
        with pytest.raises(ValueError) as err:
            check_int("window", bad, 2)
        assert str(err.value) == f"window={bad!r} is not allowed: expected an integer >= 2"


@pytest.mark.parametrize("closed, lo_ok, hi_ok, ends", [
    ("", False, False, "(0, 1)"), ("lo", True, False, "[0, 1)"),
    ("hi", False, True, "(0, 1]"), ("both", True, True, "[0, 1]")])
def test_check_number_ends(closed, lo_ok, hi_ok, ends):
    assert check_number("level", np.float32(0.5), 0, 1, closed=closed) == pytest.approx(0.5)
    for value, ok in ((0, lo_ok), (1, hi_ok), (-0.1, False), (1.5, False), (math.nan, False),
                      (math.inf, False), (True, False), ("0.5", False)):
        if ok:
            assert check_number("level", value, 0, 1, closed=closed) == value
        else:
            with pytest.raises(ValueError) as err:
                check_number("level", value, 0, 1, closed=closed)
            assert str(err.value) == f"level={value!r} is not allowed: expected a number in {ends}"


def test_an_integer_beyond_float_range_is_refused_even_where_the_interval_is_open_ended():
    """Was: OverflowError from the float() after the check (rung_factor=10**400)."""
    with pytest.raises(ValueError, match=r"^rung_factor=1000+ is not allowed: expected a number "
                                         r"in \(1, inf\)"):
        check_number("rung_factor", 10**400, 1, math.inf)
    assert check_number("rung_factor", 10**300, 1, math.inf) == 1e300


def test_narrow_numpy_floats_are_the_decimal_they_print_as():
    assert check_number("threshold", np.float32(0.9), 0, 1) == 0.9 != float(np.float32(0.9))
    assert check_number("level", np.float16(0.1), 0, 1) == 0.1
    assert check_number("threshold", np.float64(0.9), 0, 1) == 0.9
    with pytest.raises(ValueError, match=r"threshold=np.float32\(1.0000001\) is not allowed"):
        check_number("threshold", np.nextafter(np.float32(1), np.float32(2)), 0, 1, closed="hi")


def test_the_error_type_is_the_callers():
    class FileError(ValueError):
        pass

    with pytest.raises(FileError, match=r"^n_train_runs=1 is not allowed"):
        check_int("n_train_runs", 1, 2, error=FileError)


def test_sizes_that_only_exhaust_memory_are_refused_before_any_work():
    """`--resamples 10^11` asked numpy for 5.8 TiB (a traceback); Cs=10^9 likewise."""
    from grokcast.forecast import GrokForecaster
    from grokcast.stats import MAX_RESAMPLES, bootstrap_ci

    y, score = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])
    with pytest.raises(ValueError, match=r"^n_resamples=1000001 is not allowed: expected an "
                                         r"integer in \[1, 1000000\]$"):
        bootstrap_ci(y, score, rng=np.random.default_rng(0), n_resamples=MAX_RESAMPLES + 1)
    X = np.random.default_rng(0).normal(size=(12, 2))
    with pytest.raises(ValueError, match=r"^Cs=1000000000 is not allowed: expected an integer in "
                                         r"\[1, 1000\] or a list of C > 0$"):
        GrokForecaster(Cs=10**9).fit(X, np.arange(12) % 2)
    assert check_int("n", 5, 1, 5) == 5


def test_check_number_refuses_an_int_too_large_for_a_float():
    """math.isnan(10**400) raised OverflowError instead of the one-line refusal."""
    with pytest.raises(ValueError, match=r"^level=1000.* is not allowed: expected a number in \(0, 1\)$"):
        check_number("level", 10**400, 0, 1)
    with pytest.raises(ValueError, match="closed='open' is not allowed"):
        check_number("level", 0.5, 0, 1, closed="open")


def test_running_out_of_memory_is_one_line(monkeypatch, capsys, tmp_path):
    from grokcast import cli

    def cmd(args):
        raise MemoryError()

    monkeypatch.setattr(cli, "cmd_analyze", cmd)
    assert cli.main(["analyze", str(tmp_path)]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == ("grokcast analyze: error: out of memory (MemoryError): ask "
                                       "for less (fewer runs, resamples or workers)\n")


def _entry_points():
    """A path argument of each public function given something else, and its name there."""
    import pandas as pd

    from grokcast import tool
    from grokcast.analysis import analyze_sweep
    from grokcast.config import SweepConfig
    from grokcast.early_stop import run_study
    from grokcast.figures import make_figures
    from grokcast.paper import render_paper
    from grokcast.sweep import run_sweep

    config = SweepConfig(p=7, train_fracs=(0.5,), weight_decays=(1.0,), seeds=(0,), n_steps=5)
    log = pd.DataFrame({"run_id": ["a"], "step": [0]})
    return [
        ("log_path", "DataFrame", lambda: tool.forecast_log("f.json", log)),
        ("model_path", "NoneType", lambda: tool.forecast_log(None, "log.csv")),
        ("sweep_dir", "NoneType", lambda: tool.fit_forecaster(None, out="f.json")),
        ("out", "NoneType", lambda: tool.fit_forecaster("sweep", out=None)),
        ("sweep_dir", "NoneType", lambda: tool.evaluate_forecaster("f.json", None)),
        ("sweep_dir", "int", lambda: analyze_sweep(5)),
        ("out_dir", "int", lambda: analyze_sweep("sweep", 5)),
        ("out", "NoneType", lambda: run_sweep(config, None)),
        ("out_dir", "NoneType", lambda: run_study("f.json", "sweep", None)),
        ("results_dir", "NoneType", lambda: make_figures(None)),
        ("results_dir", "NoneType", lambda: render_paper(None)),
        ("path", "NoneType", lambda: SweepConfig.from_file(None)),
    ]


def test_a_path_argument_of_another_type_is_named():
    """Was: 'expected str, bytes or os.PathLike object, not DataFrame' from Path(), naming
    neither the argument nor what it is for."""
    for name, got, call in _entry_points():
        with pytest.raises(TypeError, match=rf"^{name} must be a path \(a str or os.PathLike\) "
                                            rf"to .*, got {got}$"):
            call()


def test_check_steps_is_the_one_step_check_of_feature_table_and_forecast():
    """The log's step column is read by feature_table and by forecast's log checks, which
    each had their own copy of this check (the text one refused by one, read by the other)."""
    import pandas as pd

    from grokcast.features import feature_table
    from grokcast.tool import LogError, check_log
    from grokcast.validation import check_steps

    want = np.array([0, 1, 2, 7], dtype=np.int64)
    for steps in (want, want.astype(np.int32), want.astype(np.uint64), want.astype(float),
                  want.astype(str), pd.array(want, dtype="int64[pyarrow]"),
                  pd.array(want, dtype="Int64")):
        got = check_steps(pd.Series(steps))
        assert got.dtype == np.int64 and got.tolist() == want.tolist()
    assert check_steps(pd.Series([2**63 - 1], dtype=np.uint64)).tolist() == [2**63 - 1]
    for steps, message in (([0.0, 2.5], "whole numbers of optimizer steps, got 2.5"),
                           (["0", "x"], "whole numbers of optimizer steps, got 'x'"),
                           ([0.0, np.nan], "whole numbers of optimizer steps, got nan"),
                           ([0.0, 1e22], r"step counts below 2\*\*63 \(int64\), got 1e\+22"),
                           (np.array([0, 2**63], dtype=np.uint64),
                            r"step counts below 2\*\*63 \(int64\), got 9223372036854775808")):
        with pytest.raises(ValueError, match=f"^column step must hold {message}$"):
            check_steps(pd.Series(steps))
        with pytest.raises(LogError, match=f"^column step must hold {message}$"):
            check_steps(pd.Series(steps), error=LogError)

    # Both readers take a log whose steps are text (a Parquet file written from strings) as
    # the numbers they spell.
    rng = np.random.default_rng(0)
    log = pd.DataFrame({"run_id": "r", "step": np.arange(6), "update_cos": np.r_[np.nan, 0.5 * np.ones(5)],
                        **{c: 0.5 + rng.random(6) / 4 for c in ("train_loss", "val_loss", "train_acc",
                                                                  "val_acc", "param_norm", "grad_norm",
                                                                  "erank_we", "erank_wu",
                                                                  "train_margin", "update_norm")}})
    log[["erank_we", "erank_wu"]] += 1  # an effective rank is >= 1
    as_text = log.assign(step=log["step"].astype(str))
    pd.testing.assert_frame_equal(feature_table(as_text, 5), feature_table(log, 5))
    check_log(as_text, 5)
    with pytest.raises(LogError, match="whole numbers of optimizer steps, got '1.5'"):
        check_log(as_text.assign(step=["0", "1.5", "2", "3", "4", "5"]), 5)


def test_check_steps_refuses_what_is_no_step_count_and_reads_text_integers_exactly():
    """Was: booleans (True read as step 1), dates and durations (their nanoseconds) and
    negative steps passed as step counts, which make_window had refused for booleans and
    times before it used check_steps, and took negative steps into every window; text and
    object integers went through float64, which refused 2**63 - 1 (rounded up to 2**63);
    an inf step warned 'invalid value encountered in remainder' beside its error."""
    import warnings

    import pandas as pd

    from grokcast.validation import check_steps

    for steps, message in (
            (pd.Series([False, True]), r"got False \(a column of boolean values\)"),
            (pd.Series([False, True], dtype="boolean"), r"got False \(a column of boolean values\)"),
            (pd.Series([True, False], dtype=object), r"got True \(a column of boolean values\)"),
            (pd.Series(pd.to_datetime([0, 1])), r"\(a column of datetime64 values\)"),
            (pd.Series(pd.to_timedelta([0, 1], unit="s")), r"\(a column of timedelta64 values\)"),
            (pd.Series([0, -1]), "step counts from 0, got -1"),
            (pd.Series([0.0, -2.0]), r"step counts from 0, got -2\.0"),
            (pd.Series(["0", "-3"]), "step counts from 0, got -3"),
            (pd.Series([0.0, np.inf]), "whole numbers of optimizer steps, got inf")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=f"^column step must hold .*{message}$"):
                check_steps(steps)
    big = 2**63 - 1  # the largest int64, as numpy writes it
    for steps in (pd.Series([str(big)]), pd.Series([big], dtype=object)):
        assert check_steps(steps).tolist() == [big]


def test_same_threshold_is_float32_rounding_and_no_more():
    """Equal up to float32 rounding (one part in 1e7 here), distinct a few parts in a
    million off; relative, so a threshold near 0 is not equal to 0 or to a neighbour."""
    from grokcast.validation import same_threshold

    for level in (0.9, 0.99, 0.1):
        f32 = float(np.float32(level))
        assert abs(f32 - level) / level < 1e-7 and f32 != level
        assert same_threshold(level, f32) and same_threshold(np.float32(level), level)
        for rel in (3e-6, 5e-5, 1e-3):
            assert not same_threshold(level, level * (1 + rel))
            assert not same_threshold(level * (1 - rel), np.float64(level))
    assert not same_threshold(0.0, 1e-7) and not same_threshold(1e-7, 2e-7)
    assert same_threshold(0.0, 0.0)
