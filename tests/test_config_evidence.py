"""A config is the unit of evidence: on sweeps run with seeds, verdicts are made and tested on configs
(a config's seeds move together in the shuffles), each says on how many configs and seeds it rests, a
config whose seeds split is mixed, and the best models are configs, ranked by the median over their
seeds. Synthetic sweeps with repeats (Tune's layout, made into tables by the exporter); the report's
HTML and the Parquet tables beside it are read back."""

import re
from types import SimpleNamespace

import pandas as pd
import pytest

from tune_sd.analysis import analyze
from synthetic_sweeps import synthetic_sweep

from test_report_stops import read_tables


def _analysed(folder, **kw):
    report = analyze([str(folder)], n_wrong=1, **kw)
    return SimpleNamespace(folder=folder, report=report, text=report.read_text(),
                           configs=pd.read_parquet(report.parent / "configs.parquet"),
                           marks=pd.read_parquet(report.parent / "marks.parquet"))


@pytest.fixture(scope="module")
def four_by_eight(tmp_path_factory):
    """4 configs (one per trend, every key drawn for each) x 8 seeds: each trend rests on one config."""
    folder = tmp_path_factory.mktemp("c4") / "c4"
    synthetic_sweep(folder, n_per_trend=1, repeats=8, epochs=3000, seed=5, cut=False)
    return _analysed(folder)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """The same, but the second config's seeds split 4/4 between rise-then-drop and non-learner."""
    folder = tmp_path_factory.mktemp("split") / "split"
    synthetic_sweep(folder, n_per_trend=1, repeats=8, epochs=3000, seed=5, split={1: "non-learner"}, cut=False)
    return _analysed(folder)


@pytest.fixture(scope="module")
def sixteen_by_four(tmp_path_factory):
    """16 configs (4 per trend) x 4 seeds; disc.gp = 0 in exactly the 4 non-learner configs."""
    folder = tmp_path_factory.mktemp("c16") / "c16"
    synthetic_sweep(folder, n_per_trend=4, repeats=4, epochs=3000, seed=5)
    return _analysed(folder, top_k=5)


def test_four_configs_of_eight_seeds_give_too_few_configs_and_no_mark(four_by_eight):
    r = four_by_eight
    assert len(r.configs) == 4 and set(r.configs["seeds"]) == {8}
    assert r.marks.empty
    assert "too few configs to name a mark" in r.text
    assert "Too few configs for a decision tree: fitted to 4 configs, 32 seeds" in r.text
    assert "<pre>" not in r.text  # no rules
    assert not re.search(r"\(8/8;", r.text)  # no mark resting on the seeds of one config
    assert "on 4 configs, 32 seeds, none separates them" in r.text


def test_a_config_whose_seeds_split_four_four_is_mixed(split):
    r = split
    split = r.configs[r.configs["trend"] == "mixed"]
    assert len(split) == 1 and split.iloc[0]["seeds"] == 8
    assert split.iloc[0]["shares"] == "rise-then-drop 4/8, non-learner 4/8"
    assert split.iloc[0]["share.non-learner"] == 0.5 and split.iloc[0]["share.rise-then-drop"] == 0.5
    assert set(r.configs.loc[r.configs["trend"] != "mixed", "trend"]) == {"fast-plateau", "slow-improver",
                                                                          "non-learner"}
    assert {"final_avg_acc_median", "final_avg_acc_min", "final_avg_acc_max", "best_avg_acc_median",
            "best_avg_acc_min", "best_avg_acc_max"} <= set(r.configs.columns)
    tables = read_tables(r.report)
    mixed = next(t for t in tables.values() if "shares" in t.columns and "config" in t.columns and len(t) == 1)
    assert mixed.iloc[0]["shares"] == "rise-then-drop 4/8, non-learner 4/8"
    assert "Seed-sensitive configs: 1 of 4" in r.text
    # left out of the marks and the tree, which contrast trends
    assert "fitted to 3 configs, 24 seeds" in r.text


def test_the_planted_mark_is_found_on_configs_with_a_config_level_p(sixteen_by_four):
    r = sixteen_by_four
    nl = r.configs[r.configs["trend"] == "non-learner"]
    assert len(nl) == 4 and (nl["cfg.disc.gp"] == 0).all() and (r.configs["cfg.disc.gp"] == 0).sum() == 4
    gp = r.marks[(r.marks["trend"] == "non-learner") & (r.marks["key"] == "disc.gp")]
    assert len(gp) == 1 and gp.iloc[0]["value"] == "= 0"
    assert gp.iloc[0]["configs"] == 4 and gp.iloc[0]["seeds"] == 16 and gp.iloc[0]["p"] < 0.05
    n = len(r.configs[r.configs["trend"] != "mixed"])
    assert f"non-learner (4 of {n} configs, 16 seeds): disc.gp = 0 (4 of 4 configs, 16 seeds; 0% of the other " \
           f"{n - 4}; p = {gp.iloc[0]['p']:.3f})" in r.text
    # the shuffles move configs, not seeds: 4 of 16 configs at random hold all of gp = 0 once in 1820 draws,
    # so the p is the smallest 200 shuffles give; counted on 64 seeds it would be the same, but the text
    # and the table say on what it rests
    assert gp.iloc[0]["p"] == pytest.approx(1 / 201)


def test_the_best_models_are_distinct_configs_and_ties_are_called_ties(sixteen_by_four):
    r = sixteen_by_four
    best = read_tables(r.report)["Best models across sweeps"]
    assert list(best["rank"]) == ["1", "2", "3", "4", "5"]
    assert best["config"].is_unique and set(best["seeds"]) == {"4"}
    medians = best["median"].astype(float)
    assert list(medians) == sorted(medians, reverse=True)
    top = r.configs.head(5)
    assert list(best["config"]) == list(top["config"])
    assert medians.iloc[0] == pytest.approx(top["final_avg_acc_median"].iloc[0], abs=5e-5)
    tied = best[best["tied with best"] == "yes"]
    assert len(tied) >= 1  # 4 seeds of two fast-plateau configs do not tell them apart
    assert (tied["vs best: p"].astype(float) >= 0.05).all()
    assert "Mann–Whitney U" in r.text and ("are tied" in r.text or "tied with #1" in r.text)
    # the gallery and compare.png show the best config's median seed
    assert best.iloc[0]["median seed"] in r.text.split("What the best critic gets wrong")[1]


def test_a_sweep_without_repeats_is_counted_in_trials(tmp_path):
    synthetic_sweep(tmp_path / "one", n_per_trend=3, epochs=3000, seed=3)
    report = analyze([str(tmp_path / "one")], n_wrong=1)
    configs = pd.read_parquet(report.parent / "configs.parquet")
    marks = pd.read_parquet(report.parent / "marks.parquet")
    assert len(configs) == 12 and set(configs["seeds"]) == {1}
    assert list(marks.columns) == ["sweep", "trend", "key", "value", "configs", "seeds", "p"]
    text = report.read_text()
    assert "configs" not in text.split("What characterises each trend")[1].split("Best models")[0]
    assert "trial_id" in read_tables(report)["Best models across sweeps"].columns


def test_named_variants_run_with_seeds_give_one_row_per_variant_with_its_shares():
    from tune_sd.analysis.configs import config_table

    # what `tune-sd sweep trend-examples --repeat 4` leaves: a variant label, a repeat label and a seed per trial
    rows, trends = [], []
    seeds_trends = {"t1a": ["fast-plateau"] * 4, "t4b": ["slow-improver", "non-learner"] * 2,
                    "t4a": ["non-learner"] * 3 + ["rise-then-drop"]}
    for v, (name, seed_trends) in enumerate(seeds_trends.items()):
        for r, trend in enumerate(seed_trends):
            tid = f"{v}_{r}"
            rows.append({"trial_id": tid, "variant": name, "repeat": r, "cfg.seed": 7 + r, "cfg.disc.gp": [1e-4, 0.0, 0.0][v],
                         "final_avg_acc": 0.5 + 0.1 * v + 0.01 * r, "best_avg_acc": 0.6})
            trends.append({"trial_id": tid, "trend": trend})
    table = config_table(pd.DataFrame(trends), pd.DataFrame(rows)).set_index("config")
    assert sorted(table.index) == ["t1a", "t4a", "t4b"] and set(table["seeds"]) == {4}
    assert table.loc["t4b", "trend"] == "mixed" and table.loc["t4b", "shares"] == "slow-improver 2/4, non-learner 2/4"
    assert table.loc["t4a", "trend"] == "non-learner" and table.loc["t4a", "share.non-learner"] == 0.75
    assert table.loc["t1a", "trend"] == "fast-plateau" and table.loc["t1a", "final_avg_acc_median"] == pytest.approx(0.515)
    assert "cfg.seed" not in table.columns
    assert list(table.index) == ["t4a", "t4b", "t1a"]  # by the median final avg_acc
