"""The analysis: trends of synthetic curves of the four shapes, characterisation of planted
hyperparameters, importance, k-means groups, and the report on real (engine-made) sweeps."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tune_sd.analysis import (analyze, decision_rules, find_trends, importance, load_sweep, marks, separation,
                              top_trials, trend_profiles)
from tune_sd.analysis.figures import base_name
from synthetic_sweeps import engine_sweep, synthetic_sweep
from tune_sd.analysis.trends import TRENDS, moving_average, shape_features
from tune_sd.errors import StudyError, UserError

SECTIONS = ["Sweeps", "Trends", "What characterises each trend", "Best models across sweeps",
            "What the best critic gets wrong"]


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("syn") / "syn"
    truth = synthetic_sweep(folder, n_per_trend=12, seed=3)
    return folder, truth


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two small real sweeps, made with the engine (no Ray), with real checkpoints."""
    root = tmp_path_factory.mktemp("tiny")
    a = engine_sweep(root / "tiny_a", n_trials=3, epochs=60, seed=0)
    b = engine_sweep(root / "tiny_b", n_trials=2, epochs=40, seed=1, study="tiny-ext")
    return root, a, b


def _rule_accuracy(trends, truth):
    got = trends.set_index("trial_id")["trend"].map(base_name)
    return (got == truth.reindex(got.index)).groupby(truth.reindex(got.index)).mean()


# ------------------------------------------------------------------------------ trends


def test_the_four_shapes_come_out_right_with_noise_and_cut_curves(syn):
    folder, truth = syn
    sweep = load_sweep(folder)
    trends, smoothed = find_trends(sweep.curves, sweep.planned_epochs())
    assert set(trends["trend"]) <= set(TRENDS)
    acc = _rule_accuracy(trends, truth)
    assert set(acc.index) == set(TRENDS)
    assert (acc >= 0.9).all(), acc
    # some trials of several kinds were cut short (ASHA-like) and are described on their observed part
    cut = trends.set_index("trial_id")["observed"] < 0.5
    assert cut.sum() >= 6 and truth[cut[cut].index].nunique() >= 2
    assert set(trends.columns) >= {"trial_id", "trend", "observed", "early", "peak", "peak_at", "end", "drop",
                                   "late_gain", "end_slope"}
    assert set(smoothed.columns) >= {"trial_id", "epoch", "t", "acc"}


def test_sparse_reports_and_a_short_avg_hor_are_smoothed_on_the_epoch_axis(tmp_path):
    truth = synthetic_sweep(tmp_path / "sparse", n_per_trend=8, seed=5, avg_hor=50, report_every=100)
    sweep = load_sweep(tmp_path / "sparse")
    trends, _ = find_trends(sweep.curves, sweep.planned_epochs(), horizon=500)
    assert (_rule_accuracy(trends, truth) >= 0.85).all()


def test_moving_average_in_epochs_on_irregular_reports():
    epochs = np.array([10, 20, 40, 80, 90])
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # trailing window of 30 epochs: (e - 30, e]
    assert moving_average(epochs, values, 30).tolist() == [1.0, 1.5, 2.5, 4.0, 4.5]
    assert moving_average(epochs, values, 0).tolist() == values.tolist()


def test_shape_features_of_a_curve_cut_short():
    t = np.linspace(0.01, 1 / 9, 30)
    f = shape_features(t, 0.5 + 0.3 * (1 - np.exp(-t / 0.01)))
    assert f["observed"] == pytest.approx(1 / 9)
    assert f["peak"] > 0.75 and f["late_gain"] < 0.05 and f["rel_drop"] < 0.05


def test_k_auto_and_k_groups_are_named_by_the_rule(syn):
    folder, truth = syn
    sweep = load_sweep(folder)
    auto, _ = find_trends(sweep.curves, sweep.planned_epochs(), k="auto")
    assert "silhouette" in auto.attrs["method"]
    k = auto["group"].nunique()
    assert 3 <= k <= 8 and auto["trend"].nunique() == k
    assert set(auto["trend"].map(base_name)) <= set(TRENDS)
    right = (auto.set_index("trial_id")["trend"].map(base_name) == truth).mean()
    assert right >= 0.8
    three, _ = find_trends(sweep.curves, sweep.planned_epochs(), k=3)
    assert three["group"].nunique() == 3
    for bad in (1, "many", 0):
        with pytest.raises(UserError, match="--k"):
            find_trends(sweep.curves, sweep.planned_epochs(), k=bad)


# ------------------------------------------------------------------------------ characterisation


def test_characterisation_marks_the_planted_gradient_penalty(syn):
    folder, _ = syn
    sweep = load_sweep(folder)
    trends, _ = find_trends(sweep.curves, sweep.planned_epochs())
    m = marks(trends, sweep.trials)
    assert m["non-learner"][0].startswith("disc.gp = 0 (")
    prof = trend_profiles(trends, sweep.trials)
    assert prof.loc["disc.gp", "non-learner"].startswith("0 ×")
    assert "×" in prof.loc["disc.gp", "non-learner"] and "," not in prof.loc["disc.gp", "non-learner"]
    assert prof.loc["trials", "all"] == str(len(sweep.trials))
    sep = separation(trends, sweep.trials)
    assert sep["param"].iloc[0] == "disc.gp" and 0 < sep["normalised"].iloc[0] <= 1
    rules, acc = decision_rules(trends, sweep.trials)
    assert rules.splitlines()[0] == "if disc.gp <= 0:" and "-> non-learner" in rules.splitlines()[1]
    assert acc >= 0.7


def test_mutual_information_in_bits_agrees_with_scikit_learn():
    from sklearn.metrics import mutual_info_score

    from tune_sd.analysis import mutual_information

    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 48):
        x, y = rng.choice(["a", "b", "c"], n), rng.choice(["p", "q"], n)
        assert mutual_information(x, y) == pytest.approx(mutual_info_score(x, y) / np.log(2), abs=1e-12)
    assert mutual_information(["a", "a", "b", "b"], ["p", "p", "q", "q"]) == pytest.approx(1.0)  # one bit


def test_decision_rules_name_categorical_values_and_numeric_cut_points_seen_in_the_trials():
    trends = pd.DataFrame({"trial_id": list("abcdef"), "trend": ["x", "x", "y", "y", "z", "z"]})
    trials = pd.DataFrame({"trial_id": list("abcdef"), "cfg.loss": ["bce", "bce", "wgan", "wgan", "wgan", "wgan"],
                           "cfg.lr": [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5]})
    rules, acc = decision_rules(trends, trials, params=["cfg.loss"])
    assert rules.splitlines() == ["if loss = bce:", "    -> x (2 of 2)", "else:", "    -> y (2 of 4)"]
    assert acc == pytest.approx(4 / 6)
    rules, acc = decision_rules(trends, trials, params=["cfg.lr"])
    assert acc == 1.0 and "if lr <= 1e-05:" in rules.splitlines()  # an observed value, not a midpoint
    assert rules.count("-> ") == 3


def test_importance_ranks_the_planted_hyperparameter_first(syn):
    folder, _ = syn
    sweep = load_sweep(folder)
    imp = importance(sweep.trials, seed=0)
    assert imp["param"].iloc[0] == "disc.gp"
    assert imp["method"].iloc[0].startswith("fANOVA")
    assert imp["importance"].sum() == pytest.approx(1.0)
    few = importance(sweep.trials.iloc[::8].head(6))
    assert few["method"].iloc[0].startswith("variance share") and len(few) == 6


# ------------------------------------------------------------------------------ report on real sweeps


def test_report_renders_every_section_on_a_real_small_sweep(tiny, capsys):
    _, a, _ = tiny
    report = analyze([str(a)], n_wrong=3)
    assert report == a / "analysis" / "report.html"
    text = report.read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in text
    for png in ("trends.png", "compare.png", "gallery.png"):
        assert (report.parent / png).stat().st_size > 1000
        assert f'src="{png}"' in text
    # 3 trials support no importance ranking: the report says so instead of drawing one
    assert "no importance is claimed" in text and not (report.parent / "importance_1.png").exists()
    assert "No gallery" not in text
    assert "Fresh fakes from its generator (mlp)" in text  # the default, resolved (arch.hid_type[0])
    trends = pd.read_parquet(report.parent / "trends.parquet")
    assert list(trends.columns[:2]) == ["trial_id", "trend"] and len(trends) == 3
    out = capsys.readouterr().out
    assert "trends (" in out and "top trials:" in out and str(report) in out


def test_compare_two_sweeps_by_name_under_storage(tiny, tmp_path, capsys):
    root, a, b = tiny
    report = analyze(["tiny_a", "tiny_b"], storage=str(root), out=str(tmp_path / "cmp"), top_k=2, n_wrong=2)
    assert report.parent == tmp_path / "cmp"
    text = report.read_text()
    assert "tiny_a" in text and "tiny_b (tiny-ext)" in text
    out = capsys.readouterr().out
    assert "tiny_a #1" in out and "tiny_b #1" in out
    top = top_trials([load_sweep(a), load_sweep(b)], top_k=2)
    assert top.groupby("sweep").size().to_dict() == {"tiny_a": 2, "tiny_b": 2}
    assert top.groupby("sweep")["final_avg_acc"].apply(lambda s: s.is_monotonic_decreasing).all()
    assert {"disc.gp", "disc.loss_fun", "arch.lat_size"} <= set(top.columns) and "disc.lr" not in top.columns


def test_a_missing_or_broken_checkpoint_leaves_a_note_not_a_crash(tiny, tmp_path):
    _, a, _ = tiny
    moved = tmp_path / "moved"
    shutil.copytree(a, moved, ignore=shutil.ignore_patterns("analysis"))
    # the recorded paths are relative to the sweep folder: the copy reads its own trial folders
    report = analyze([str(moved)], n_wrong=1)
    assert "No gallery" not in report.read_text()
    for ck in moved.glob("trial_*/checkpoint_*/study.pt"):
        ck.write_bytes(b"not a checkpoint")
    trials = pd.read_parquet(moved / "trials.parquet")
    trials["checkpoint"] = [str(moved / f"trial_{t}" / "checkpoint_000000") for t in trials["trial_id"]]
    trials["path"] = [str(moved / f"trial_{t}") for t in trials["trial_id"]]
    pq.write_table(pa.Table.from_pandas(trials, preserve_index=False), moved / "trials.parquet")
    text = analyze([str(moved)]).read_text()
    assert "No gallery for the best critic" in text and "not a readable tune_sd checkpoint" in text
    for ck in moved.glob("trial_*/checkpoint_*"):
        shutil.rmtree(ck)
    text = analyze([str(moved)]).read_text()
    assert "No gallery for the best critic" in text and "checkpoint not found" in text
    assert all(f"<h2>{t}</h2>" in text for t in SECTIONS)


def test_user_errors_say_what_and_where(tmp_path, syn):
    with pytest.raises(StudyError, match="no sweep 'nope'"):
        analyze(["nope"], storage=str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudyError, match="holds no curves.parquet"):
        analyze([str(tmp_path / "empty")])
    folder, _ = syn
    bare = tmp_path / "bare"
    bare.mkdir()
    curves = pd.read_parquet(folder / "curves.parquet").head(0)
    pq.write_table(pa.Table.from_pandas(curves, preserve_index=False), bare / "curves.parquet")
    with pytest.raises(StudyError, match="empty"):
        analyze([str(bare)])
    (bare / "curves.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(StudyError, match="not a readable Parquet"):
        analyze([str(bare)])
    with pytest.raises(StudyError, match="not a sweep under file://"):  # URIs are read (tests/test_storage_uri.py)
        analyze(["x"], storage=f"file://{tmp_path}/nowhere")
    with pytest.raises(UserError, match="--top-k"):
        analyze([str(folder)], top_k=0)
    with pytest.raises(UserError, match="at least one sweep"):
        analyze([])


def test_trials_table_is_optional_and_text_is_escaped(tmp_path):
    folder = tmp_path / "esc"
    synthetic_sweep(folder, n_per_trend=3, seed=1, study="<b>bold</b>", trends=("fast-plateau", "non-learner"))
    (folder / "trials.parquet").unlink()
    meta = json.loads((folder / "tune_sd.json").read_text())
    meta["name"] = "a<script>"
    (folder / "tune_sd.json").write_text(json.dumps(meta))
    text = analyze([str(folder)], k="auto").read_text()
    assert "<b>bold</b>" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "<script>" not in text
    assert "has no checkpoint recorded" in text


def test_the_analysis_does_not_import_ray(tiny):
    _, a, _ = tiny
    code = ("import sys; from tune_sd.analysis import load_sweep, find_trends; s = load_sweep(sys.argv[1]); "
            "find_trends(s.curves, s.planned_epochs()); assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code, str(a)], check=True, timeout=120)


def _analysis_imports() -> dict[str, set[str]]:
    """Per module of tune_sd/analysis, the modules of the package it imports (at the top or in a function)."""
    import ast
    from pathlib import Path

    import tune_sd.analysis

    folder = Path(tune_sd.analysis.__file__).parent
    graph = {}
    for f in folder.glob("*.py"):
        edges = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                edges |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tune_sd.analysis."):
                edges.add(node.module.split(".")[2])
        graph[f.stem] = edges - {f.stem}
    return graph


def test_the_analysis_modules_import_no_cycle_and_the_report_knows_nothing_of_stops():
    graph = _analysis_imports()
    assert "stops" not in graph["report"]

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for m in graph.get(todo.pop(), ()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    cycles = sorted(m for m in graph if m != "__init__" and m in reach(m))
    assert not cycles, f"import cycles through {cycles}"
