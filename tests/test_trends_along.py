"""Trends along the run: long curves of known shapes (100 000 epochs, a report every 25) named at each
horizon as runs that ended there, the epoch from which the final trend held, drop-and-recover, and
which trends of a study cut short may still change."""

import numpy as np
import pandas as pd
import pytest

from synthetic_sweeps import long_curves, long_shape, long_sweep
from tune_sd.analysis import analyze
from tune_sd.analysis.horizons import (along_table, along_the_run, check_horizons, config_along, settled,
                                       trends_along, trial_paths)
from tune_sd.analysis.trends import curve_features, find_trends, name_of, shape_features
from tune_sd.errors import UserError
from tune_sd.outcomes import DROP_AND_RECOVER, LEARNED, TREND_HELP, TREND_NAMES, TRENDS

FP, RTD, DAR, SI, NL = "fast-plateau", "rise-then-drop", "drop-and-recover", "slow-improver", "non-learner"
# the notebook's trend examples as the 100 000-epoch record shows them, 3 seeds each; t4b's second seed
# sat at chance for its first 5 000 epochs
EXAMPLES = {"t1a": ["plateau"] * 3, "t2a": ["rise-drop-recover"] * 3, "t2b": ["rise-then-drop"] * 3,
            "t3c": ["slow-rise"] * 3, "flat": ["flat"] * 3, "t4b": ["plateau", "late-learner", "plateau"]}
SHARES = ("10 % (10000)", "20 % (20000)", "30 % (30000)", "50 % (50000)", "70 % (70000)", "100 % (100000)")


@pytest.fixture(scope="module")
def record():
    """The long record's shape: trial_id, config, seed, epoch, avg_acc, acc_mean (and the runs' avg_hor)."""
    return long_curves(EXAMPLES, seed=1)


@pytest.fixture(scope="module")
def table(record):
    return along_the_run(trends_along(record, config="config")).set_index("config")


def test_the_fifth_name_is_added_beside_the_notebooks_four():
    assert TRENDS == (FP, RTD, SI, NL)
    assert DROP_AND_RECOVER == DAR and DAR in TREND_NAMES and DAR in LEARNED and DAR in TREND_HELP
    assert set(TREND_NAMES) == set(TRENDS) | {DAR}


def test_a_curve_that_rises_drops_and_recovers_is_said_to():
    t = np.linspace(0.005, 1, 400)
    f = shape_features(t, long_shape("rise-drop-recover", t))
    assert name_of(f) == DAR
    assert f["rel_fall"] > 0.4 and 0.4 < f["recovery"] < 0.7 and 0.45 < f["trough_at"] < 0.55
    # still falling at the end, or barely back: the notebook's rise-then-drop
    assert name_of(shape_features(t, long_shape("rise-then-drop", t))) == RTD
    assert name_of(shape_features(t[t <= 0.5], long_shape("rise-drop-recover", t[t <= 0.5]))) == RTD
    # a dip before the curve learned is no fall: a late learner from a bump near chance is a plateau
    y = 0.5 + np.interp(t, [0, 0.05, 0.1, 0.2, 1], [0, 0.08, 0.02, 0.22, 0.22])
    f = shape_features(t, y)
    assert f["fall"] == 0 and name_of(f) == FP
    # a feature table written before the fifth name (no fall columns) still gets the four
    old = {k: v for k, v in shape_features(t, long_shape("rise-drop-recover", t)).items()
           if k not in ("fall", "rel_fall", "trough", "trough_at", "recovery")}
    assert name_of(old) == SI


def test_each_config_is_named_at_each_horizon(table):
    assert table.attrs["horizons"] == list(SHARES)
    expect = {"t1a": [FP] * 6, "t2a": [FP, FP, FP, RTD, RTD, DAR], "t2b": [RTD] * 6, "t3c": [FP, FP, FP, SI, SI, SI],
              "flat": [NL] * 6, "t4b": [FP] * 6}
    for config, names in expect.items():
        assert table.loc[config, list(SHARES)].tolist() == names, config
    assert table.loc["t2a", "along the run"] == "fast-plateau → rise-then-drop → drop-and-recover"
    assert table.loc["t3c", "along the run"] == "fast-plateau → slow-improver"
    holds = table["holds from epoch"].to_dict()
    assert holds == {"t1a": 10000, "t2a": 100000, "t2b": 10000, "t3c": 50000, "flat": 10000, "t4b": 10000}
    assert not table["cut short"].any() and (table["may still change"] == "").all()
    assert table.attrs["settle_epoch"] == 100000


def test_a_late_learner_seed_and_fixed_epoch_horizons(record):
    along = trends_along(record, config="config", horizons="5000,0.1,0.2,1")
    assert list(dict.fromkeys(along.sort_values("epoch")["horizon"])) == [5000.0, 0.1, 0.2, 1.0]
    paths = trial_paths(along).set_index("trial_id")
    # t4b's slow seed: at chance to 5 000 epochs, rising at 10 000, a plateau from 20 000 on
    assert paths.loc["t4b_s1", "path"] == "non-learner → slow-improver → fast-plateau"
    assert paths.loc["t4b_s1", "holds_from"] == 20000
    assert paths.loc["t4b_s0", "path"] == FP and paths.loc["t4b_s0", "holds_from"] == 5000
    # its config: two seeds of three make the trend at every horizon
    per = config_along(along)
    t4b = per[per["config"] == "t4b"].set_index("horizon")
    assert t4b["trend"].tolist() == [FP] * 4 and t4b.loc[5000.0, "shares"] == "fast-plateau 2/3, non-learner 1/3"


def test_a_cut_curve_is_named_as_a_run_that_ended_there(record):
    along = trends_along(record, config="config", horizons=(0.02, 0.3, 1.0))
    one = record[record["trial_id"] == "t2a_s0"]
    for h in (0.02, 0.3):
        # smoothed as a run of that length: at 2 000 epochs the horizon is 200, not 500
        feats, smoothed = curve_features(one[one["epoch"] <= 100_000 * h], 100_000 * h)
        row = along[(along["trial_id"] == "t2a_s0") & (along["horizon"] == h)].iloc[0]
        assert row["peak"] == pytest.approx(feats["peak"].iloc[0]) and row["trend"] == name_of(feats.iloc[0])
        assert smoothed["horizon"].iloc[0] == min(500, 0.1 * 100_000 * h)
    # at 100 % every trial gets the name trends.parquet gives it
    trends, _ = find_trends(record, 100_000)
    last = along[along["horizon"] == 1.0].set_index("trial_id")["trend"]
    assert last.to_dict() == trends.set_index("trial_id")["trend"].to_dict()


def test_settled_folds_repeats_and_skips_horizons_not_reached():
    assert settled([1, 2, 3, 4], [FP, RTD, RTD, DAR]) == (DAR, 4.0, "fast-plateau → rise-then-drop → drop-and-recover", 2)
    assert settled([1, 2, 3], [FP, FP, FP]) == (FP, 1.0, FP, 0)
    assert settled([1, 2, 3], [RTD, FP, None]) == (FP, 2.0, "rise-then-drop → fast-plateau", 1)
    assert settled([1, 2], [None, None])[0] is None


def test_a_study_cut_short_says_which_trends_may_still_change(record):
    at30 = along_the_run(trends_along(record, config="config", until=30_000)).set_index("config")
    assert at30["cut short"].all() and (at30["ran to epoch"] == 30000).all()
    assert at30.loc["t2a", SHARES[2]] == FP and at30.loc["t2a", SHARES[3]] == "-"
    # t2a lost 27 % of its gain by 30 000 (rise-then-drop from 30 %); t3c made 12 % of it late (slow from 15 %)
    assert "near the line to rise-then-drop" in at30.loc["t2a", "may still change"]
    assert "near the line to slow-improver" in at30.loc["t3c", "may still change"]
    for steady in ("t1a", "t2b", "flat"):
        assert at30.loc[steady, "may still change"] == "", steady
    # t4b's slow seed changed name at the last horizons it reached: with seeds of its own, so would its config
    late = long_curves({"late": ["late-learner"] * 3}, seed=2)
    at20 = along_the_run(trends_along(late, config="config", until=20_000)).set_index("config")
    assert at20.loc["late", "along the run"] == "slow-improver → fast-plateau"
    assert "its name changed at epoch 20000" in at20.loc["late", "may still change"]
    # configs cut short beside complete ones: not reaching the epoch the complete ones settled at is a sign
    mixed = long_curves({"t1a": ["plateau"] * 2, "t2a": ["rise-drop-recover"] * 2, "late": ["late-learner"] * 2},
                        ran={"t1a": 40_000, "late": 8_000}, seed=3)
    t = along_the_run(trends_along(mixed, config="config")).set_index("config")
    assert t.attrs["settle_epoch"] == 100000 and not t.loc["t2a", "cut short"]
    assert "settled as late as epoch 100000" in t.loc["t1a", "may still change"]
    assert "short of its first horizon" in t.loc["late", "may still change"]


def test_the_long_records_columns_are_read_as_they_come(record):
    as_saved = record.rename(columns={"trial_id": "trial"}).drop(columns=["cfg.avg_hor"])
    along = trends_along(as_saved, trial="trial", config="config", horizons=(0.3, 1), avg_hor=100)
    assert along.equals(trends_along(record, config="config", horizons=(0.3, 1)))
    table = along_table(along)
    assert {"trial_id", "config", "horizon", "epoch", "reached", "trend", "config_trend", "holds_from",
            "config_holds_from", "rel_drop", "recovery"} <= set(table.columns)
    assert table[(table["config"] == "t2a") & (table["horizon"] == 1)]["config_trend"].eq(DAR).all()


@pytest.mark.parametrize("bad", ["0.1,abc", "-1", "", "0.5,nan"])
def test_bad_horizons_are_one_clear_error(bad):
    with pytest.raises(UserError, match="--horizons"):
        check_horizons(bad)


def test_curves_without_the_columns_are_one_clear_error(record):
    with pytest.raises(UserError, match="avg_acc"):
        trends_along(record.drop(columns=["avg_acc"]))
    with pytest.raises(UserError, match="no column 'label'"):
        trends_along(record, config="label")


def test_analyze_reports_the_trends_along_the_run(tmp_path, capsys):
    folder = long_sweep(tmp_path / "long", {"t2a": ["rise-drop-recover"] * 3, "t1a": ["plateau"] * 2},
                        ran={"t1a": 40_000}, seed=4)
    report = analyze([str(folder)], n_wrong=1)
    html = report.read_text()
    assert "Trends along the run" in html and 'src="trends_along_1.png"' in html
    assert (report.parent / "trends_along_1.png").stat().st_size > 0
    assert "fast-plateau → rise-then-drop → drop-and-recover" in html
    assert "Trends that may still change: t1a (it ran to epoch 40000" in html
    along = pd.read_parquet(report.parent / "trends_along.parquet")
    assert along["sweep"].eq("long").all() and len(along) == 5 * 6
    t2a = along[along["config"] == "t2a"]
    assert t2a["config_holds_from"].eq(100000).all()
    assert not along[along["config"] == "t1a"].query("horizon >= 0.5")["reached"].any()
    out = capsys.readouterr().out
    assert "trends along the run, long:" in out and "may still change: t1a" in out


def test_analyze_until_and_bad_flags(tmp_path, capsys):
    from tune_sd.cli import main

    folder = long_sweep(tmp_path / "long", {"t2a": ["rise-drop-recover"] * 2}, seed=5)
    report = analyze([str(folder)], n_wrong=1, until=30_000, horizons="0.1,0.3,1")
    html = report.read_text()
    assert "read up to epoch 30000 only (--until 30000)" in html
    assert "near the line to rise-then-drop" in html
    capsys.readouterr()
    assert main(["analyze", str(folder), "--horizons", "0.1,x"]) == 2
    assert main(["analyze", str(folder), "--until", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("tune-sd: error: --horizons") and "--until 0" in err[1]
