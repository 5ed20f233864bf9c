"""The report says what its claims rest on: the smoothing horizon it really used, marks, separation,
decision tree, importance and regularisation verdicts tested against chance ("too few" where the
trials cannot support a verdict), and the smaller things a user reads (distinct compare lines, a
table that fits the page, file modes, plurals). Synthetic sweeps are real Parquet files; the report's
HTML is read back."""

import os
import re

import numpy as np
import pandas as pd
import pytest

from tune_sd.analysis import analyze, load_sweep
from tune_sd.analysis.characterise import separation, tree_verdict, trend_marks
from tune_sd.analysis.figures import comparison_figure
from tune_sd.analysis.importance import importance
from tune_sd.analysis.regularize import verdicts
from synthetic_sweeps import synthetic_sweep
from tune_sd.analysis.trends import find_trends

from test_report_stops import read_tables


@pytest.fixture(scope="module")
def few(tmp_path_factory):
    """Two trials per trend: 8 trials, on which any rule fits perfectly by chance."""
    folder = tmp_path_factory.mktemp("few") / "few"
    synthetic_sweep(folder, n_per_trend=2, seed=3, epochs=3000)
    return folder


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """Twelve trials per trend, gp = 0 planted in every non-learner and in no other trial."""
    folder = tmp_path_factory.mktemp("many") / "many"
    synthetic_sweep(folder, n_per_trend=12, seed=3, epochs=3000)
    return folder


@pytest.fixture(scope="module")
def many_report(many):
    return analyze([str(many)], top_k=5, n_wrong=1)


def _trends(folder):
    s = load_sweep(folder)
    return s, find_trends(s.curves, s.planned_epochs())[0]


# ------------------------------------------------------------------------------ too few / enough


def test_two_trials_per_trend_give_too_few_instead_of_a_verdict(few):
    s, tr = _trends(few)
    assert tr["trend"].value_counts().max() <= 3
    m = trend_marks(tr, s.trials)
    assert {v.status for v in m.values()} == {"too few"} and not any(v.marks for v in m.values())
    assert all("too few trials to name a mark" in v.describe() for v in m.values())
    tree = tree_verdict(tr, s.trials)
    assert tree.accuracy == 1.0  # the tree fits 8 trials perfectly ...
    assert tree.status == "too few"  # ... and so does a tree on shuffled trends
    sep = separation(tr, s.trials)
    assert (sep["trials"] == 8).all() and not sep["beyond chance"].any()
    imp = importance(s.trials)
    assert (imp["trials"] == 8).all() and not imp["beyond chance"].any()

    report = analyze([str(few)], n_wrong=1)
    text = report.read_text()
    assert "Too few trials for a decision tree" in text and "No rules are given" in text
    assert "<pre>" not in text  # no rules printed
    assert "right on 100" not in text
    assert not re.search(r"\(2/2;", text)  # no mark resting on 2 trials
    assert "none separates them better than on shuffled trends" in text
    assert "no importance is claimed" in text and not (report.parent / "importance_1.png").exists()


def test_enough_trials_give_the_verdict_with_its_counts(many, many_report):
    s, tr = _trends(many)
    m = trend_marks(tr, s.trials)
    nl = m["non-learner"]
    assert nl.status == "marked" and nl.marks[0].startswith(f"disc.gp = 0 ({nl.n}/{nl.n}; 0% of the other {nl.n_all - nl.n}; p = ")
    tree = tree_verdict(tr, s.trials)
    assert tree.status == "rules" and tree.p < 0.05 and tree.accuracy > tree.null_mean + 0.2
    leaves = re.findall(r"-> (\S+) \((\d+) of (\d+)\)(.*)", tree.rules)
    assert leaves and any(int(n) <= 2 for _, _, n, _ in leaves)
    for _, k, n, flag in leaves:  # a leaf of 2 trials is flagged, a pure leaf of 12 is not
        assert ("too few trials for this leaf alone" in flag) == (int(n) <= 2), (k, n, flag)
    sep = separation(tr, s.trials)
    assert sep.iloc[0]["param"] == "disc.gp" and sep.iloc[0]["beyond chance"] and (sep["trials"] == len(s.trials)).all()

    report = many_report
    text = report.read_text()
    assert f"Decision tree (depth &lt;= 3), fitted to 48 trials: right on {tree.accuracy:.0%}" in text
    assert "<pre>if disc.gp &lt;= 0:" in text
    assert f"non-learner ({nl.n} trials of 48): disc.gp = 0 ({nl.n}/{nl.n};" in text
    imp = next(t for t in read_tables(report).values() if "importance" in t.columns)
    assert set(imp["trials"]) == {"48"} and imp.iloc[0]["param"] == "disc.gp"
    assert imp.iloc[0]["beyond chance"] == "yes"
    assert (report.parent / "importance_1.png").exists()


# ------------------------------------------------------------------------------ the horizon used


@pytest.mark.parametrize("epochs, avg_hor, said", [
    (400, 100, "100 epochs (asked 500; capped at 10% of the 400 planned epochs (40), but never below the runs' "
               "own avg_hor"),
    (3000, 50, "300 epochs (asked 500; capped at 10% of the 3000 planned epochs)"),
    (9000, 100, "500 epochs"),
])
def test_the_report_states_the_horizon_it_used(tmp_path, capsys, epochs, avg_hor, said):
    synthetic_sweep(tmp_path / "h", n_per_trend=1, epochs=epochs, avg_hor=avg_hor, report_every=10, seed=1)
    report = analyze([str(tmp_path / "h")], n_wrong=1)
    text = report.read_text().replace("&#x27;", "'")
    assert f"Smoothing horizon used: h (synthetic): {said}" in text
    assert f"smoothing horizon used: h (synthetic): {said}" in capsys.readouterr().out
    if epochs < 5000:
        assert "horizon 500 epochs" not in text


# ------------------------------------------------------------------------------ regularisation


def _reg(n_rep, gain):
    """A regularisation table of 1 setting, sd in {0, 1, 10}, ``n_rep`` repeats of each."""
    rng = np.random.default_rng(0)
    rows = []
    for sd in (0.0, 1.0, 10.0):
        for _ in range(n_rep):
            rows.append({"sd": sd, "min_corr": 0.5 + (gain if sd == 1.0 else 0.0) + rng.normal(0, 0.01)})
    trials = pd.DataFrame(rows)
    table = trials.groupby("sd").agg(trials=("min_corr", "size"), min_corr=("min_corr", "median")).reset_index()
    table["val_mse"], table["best_min_corr"] = 0.1, table["min_corr"]
    return table[["sd", "trials", "val_mse", "min_corr", "best_min_corr"]], trials


def test_a_regularisation_verdict_needs_enough_repeats():
    v = verdicts(*_reg(1, 0.2))  # one seed: the baseline is the lowest of 3 values by chance 1 time in 3
    assert v.iloc[0]["verdict"] == "too few repeats" and v["improved"].iloc[0] is None
    assert v.iloc[0]["repeats at sd=0"] == 1 and v.iloc[0]["repeats at best sd"] == 1
    assert v.iloc[0]["gain"] > 0.15  # a large difference of one seed each is still no verdict
    v = verdicts(*_reg(3, 0.2))
    assert v.iloc[0]["verdict"] == "improved" and bool(v["improved"].iloc[0]) and v.iloc[0]["p"] < 0.05
    assert v.iloc[0]["repeats at sd=0"] == 3 and v.iloc[0]["repeats at best sd"] == 3
    v = verdicts(*_reg(5, 0.0))
    assert v.iloc[0]["verdict"] == "no improvement shown" and v.iloc[0]["p"] >= 0.05


# ------------------------------------------------------------------------------ smaller things


def test_every_compared_trial_has_its_own_colour_and_style(many):
    s, tr = _trends(many)
    from tune_sd.analysis.compare import top_trials
    from tune_sd.analysis.pipeline import sweep_trends

    _, smoothed = sweep_trends([s])
    top = top_trials([s], top_k=9)
    fig = comparison_figure(smoothed, top)
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith(s.name)]
    assert len(lines) == 9
    looks = {(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in lines}
    assert len(looks) == 9, looks


def test_the_best_models_tables_fit_the_page(many_report):
    report = many_report
    tables = read_tables(report)
    best = tables["Best models across sweeps"]
    configs = tables["Best models across sweeps #2"]
    assert len(best) == 5 and len(best.columns) <= 9 and "disc.lr" not in best.columns
    assert list(configs.columns) == ["hyperparameter", "#1", "#2", "#3", "#4", "#5"]
    assert {"disc.lr", "disc.gp", "arch.lat_size"} <= set(configs["hyperparameter"])
    assert '<div class="scroll"><table>' in report.read_text()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_report_and_checkpoint_honour_the_umask(tmp_path, umask, few):
    import torch

    from tune_sd.analysis.report import Section, write_report
    from tune_sd.engine.checkpoint import save_checkpoint

    old = os.umask(umask)
    try:
        report = write_report(tmp_path / "r" / "report.html", "t", [Section("s").p("x")])
        ckpt = save_checkpoint({"format": "tune_sd.study/1", "w": torch.zeros(2)}, tmp_path / "c" / "checkpoint.pt")
        with open(tmp_path / "plain", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    assert (tmp_path / "plain").stat().st_mode & 0o777 == want
    assert report.stat().st_mode & 0o777 == want
    assert ckpt.stat().st_mode & 0o777 == want
    assert not list((tmp_path / "r").glob(".*.tmp")) and not list((tmp_path / "c").glob(".*.tmp"))


def test_lib_check_counts_in_the_singular_for_one_function(tmp_path, capsys):
    from tune_sd.cli import main

    one = tmp_path / "one.lib"
    one.write_text("N0*X10[:,0]**2;2*N0*X10[:,0]\n")
    assert main(["lib", "check", str(one), "--samples", "8"]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == "OK: 1 function"
    two = tmp_path / "two.lib"
    two.write_text("N0*X10[:,0]**2\nN0*X10[:,0]\n")
    assert main(["lib", "check", str(two), "--samples", "8"]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == "OK: 2 functions"


def _reg_sweep(folder, n_rep, gain):
    """A Step 7 sweep folder (real Parquet): sd in {0, 1, 10} x ``n_rep`` seeds, min_corr raised by ``gain``
    at sd = 1."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    trials, curves = [], []
    for sd in (0.0, 1.0, 10.0):
        for seed in range(n_rep):
            tid = f"r{int(sd)}_{seed}"
            corr = 0.5 + (gain if sd == 1.0 else 0.0) + rng.normal(0, 0.01)
            cfg = {"cfg.task": "regularize", "cfg.sd": sd, "cfg.seed": seed, "cfg.epochs": 40}
            trials.append({"trial_id": tid, "status": "TERMINATED", "epochs": 40, "final_avg_acc": np.nan,
                           "best_avg_acc": np.nan, "stopped_early": False, "checkpoint": None,
                           "final_min_corr": corr, "final_val_mse": 0.1, **cfg})
            curves.append({"trial_id": tid, "iteration": 1, "epoch": 40, "avg_acc": np.nan, "min_corr": corr,
                           "val_mse": 0.1, **cfg})
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(trials), preserve_index=False), folder / "trials.parquet")
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(curves), preserve_index=False), folder / "curves.parquet")
    (folder / "tune_sd.json").write_text(json.dumps({"name": folder.name, "study": "regularize-dsn", "epochs": 40}))
    return folder


def test_the_regularisation_report_gives_no_verdict_on_one_seed(tmp_path, capsys):
    one = _reg_sweep(tmp_path / "one", 1, 0.2)
    text = analyze([str(one)]).read_text()
    out = capsys.readouterr().out
    assert "No verdict on whether the SD improved latent recovery over sd = 0 in 1 setting(s): too few repeats" in out
    assert "shuffled sd labels would do as well" in out and "Not a verdict" in text
    five = _reg_sweep(tmp_path / "five", 3, 0.2)
    analyze([str(five)])
    out = capsys.readouterr().out
    assert "The SD improved latent recovery over sd = 0" in out and "in 1 of 1 setting(s) with enough repeats" in out
