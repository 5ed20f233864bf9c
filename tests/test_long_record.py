"""The long-horizon record (tests/data/long_record.parquet, made by benchmarks/long_record.py): the
notebook's trend examples t1a, t2a, t2b, t3a, t3c, t4b, t4c, t4d, 5 seeds each (3 from a first sweep,
2 more from a second one), trained 100 000 epochs (FIFO, packed). The stopping rules, the race and the
trend rule are replayed on these real long curves; no training. A config (8) is the unit: its 5 seeds
are repeats of one experiment."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tune_sd.analysis.horizons import along_the_run, trends_along
from tune_sd.outcomes import LEARN_LINE
from tune_sd.tune.stopping.nonlearner import NonLearnerSettings
from tune_sd.tune.stopping.replay import (outcome, race_bootstrap, race_settings, record_from_curves, replay,
                                          replay_nonlearner, summary)

from synthetic_sweeps import SYNTHETIC_NODE, write_experiment, write_trial

RECORD = Path(__file__).resolve().parent / "data" / "long_record.parquet"
COLUMNS = ("trial_id", "variant", "seed", "repeat", "planned", "avg_hor", "epoch", "avg_acc", "acc_mean", "acc_report")
VARIANTS = ("t1a", "t2a", "t2b", "t3a", "t3c", "t4b", "t4c", "t4d")
EPOCHS = 100_000
SEEDS = 5


@pytest.fixture(scope="module")
def record() -> pd.DataFrame:
    return pd.read_parquet(RECORD)


def cut_at(record: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """The record as a study of ``epochs`` planned epochs would have recorded it."""
    return record[record["epoch"] <= epochs].assign(planned=epochs)


def as_replay(record: pd.DataFrame, per_seed: bool = False):
    """The record as the stopping rules hear it: a config's seeds judged together, or each alone."""
    return record_from_curves(record, name="long record", settings={"repeat": 1 if per_seed else SEEDS},
                              per_seed=per_seed)


def trends_on(record: pd.DataFrame):
    """(each trial's trend at each horizon, each config's trend along the run)."""
    planned = record.groupby("trial_id")["planned"].first()
    along = trends_along(record, planned, config="variant", avg_hor=float(record["avg_hor"].iloc[0]))
    return along, along_the_run(along)


def learned_by(record: pd.DataFrame, epochs: int) -> pd.Series:
    """Per trial: whether its avg_acc reached the learning line by ``epochs``."""
    cut = record[record.epoch <= epochs]
    return cut.groupby("trial_id")["avg_acc"].max() >= LEARN_LINE


def test_the_record_holds_the_long_sweep(record):
    assert set(COLUMNS) <= set(record.columns)
    per = record.groupby("trial_id").agg(variant=("variant", "first"), reports=("epoch", "size"),
                                         first=("epoch", "min"), last=("epoch", "max"), planned=("planned", "first"))
    assert sorted(per.variant.unique()) == sorted(VARIANTS)
    assert per.groupby("variant").size().eq(SEEDS).all()
    assert (per["last"] == EPOCHS).all() and (per.planned == EPOCHS).all() and (per.reports == EPOCHS // 25).all()
    assert record.groupby("variant")["seed"].nunique().eq(SEEDS).all()
    assert record.groupby("variant")["repeat"].nunique().eq(SEEDS).all()
    assert record[["avg_acc", "acc_mean", "acc_report"]].notna().all().all()
    # every config learns by the end (two of t4d's seeds never do: the record's only non-learners)
    learned = learned_by(record, EPOCHS)
    assert learned.groupby(per.variant).sum().to_dict() == {**{v: SEEDS for v in VARIANTS}, "t4d": 3}


@pytest.mark.parametrize("epochs", [10_000, 20_000, 100_000])
@pytest.mark.parametrize("per_seed", [True, False], ids=["one seed per config", "seeds together"])
def test_the_nonlearner_rule_cuts_no_learner_at_any_horizon(record, epochs, per_seed):
    # a study of `epochs` planned epochs, with the sweep's default settings (scaled to its length)
    rec = as_replay(cut_at(record, epochs), per_seed=per_seed)
    ends = replay_nonlearner(rec, NonLearnerSettings(), rec.repeat)
    learned = learned_by(record, epochs)
    cut = sorted(t for t in ends if learned[t.split("#")[0]])
    assert cut == [], f"stopped seeds that learn by epoch {epochs}: {cut}"
    if per_seed:
        # the seeds that never learn are stopped, before a tenth of a 100 000-epoch run
        never = [t for t, ok in learned.items() if not ok]
        assert sorted(ends) == never
        if epochs == EPOCHS:
            assert all(ends[t][0] < EPOCHS / 10 for t in never)
    else:
        assert ends == {}  # every config has a learning seed: none is a non-learner config


def test_a_fixed_grace_cut_the_slow_starters(record):
    # what the defaults of 3 000-epoch runs (grace 1 500, window 2 000) do to one seed per config at
    # 100 000 epochs: t4b's and t3c's slow seeds and a late t2b seed are cut
    rec = as_replay(record, per_seed=True)
    ends = replay_nonlearner(rec, NonLearnerSettings(grace=1500, window=2000), 1)
    learned = learned_by(record, EPOCHS)
    variants = record.groupby("trial_id")["variant"].first()
    assert sorted(variants[t] for t in ends if learned[t]) == ["t2b", "t3c", "t4b"]


@pytest.mark.parametrize("rule", ["asha", "median"])
def test_asha_and_the_median_rule_keep_the_best_config(record, rule):
    rec = as_replay(record)
    ends, how = replay(rec, rule)
    s = summary(rec, ends)
    assert s["best kept"] and s["best"] == "t1a", (how, s)
    # ASHA ranks: it keeps the top third at each rung, so it cuts configs that learn (all of these do)
    per = outcome(rec, ends)
    cut = per[per.stopped > 0]
    assert (cut["final median"] < per[per.best]["final median"].iloc[0]).all()


@pytest.mark.parametrize("rule", ["asha", "median"])
def test_ranking_rules_cut_no_slow_starter_at_chance(record, rule, monkeypatch):
    # one seed per config (the default sd-study sweep), the rules' defaults for 100 000 epochs: ASHA's first
    # rung (3 703) finds t3c's and t4b's slow seeds at chance (0.55-0.60); they end at 0.67-0.73, beside the
    # best. The chance guard leaves them to the non-learner rule, which keeps them (they rise)
    rec = as_replay(record, per_seed=True)
    learned = learned_by(record, EPOCHS)

    def slow_starters_cut(ends):
        return sorted(t for t, (epoch, _) in ends.items() if learned[t.split("#")[0]] and
                      next(r["avg_acc"] for r in rec.reports[t] if r["epoch"] >= epoch) < LEARN_LINE)

    ends, _ = replay(rec, rule)
    assert slow_starters_cut(ends) == [], ends
    assert summary(rec, ends)["best kept"]
    # without the guard (a metric with no chance level), the same rule cuts three of them at its first rung
    from tune_sd.tune.stopping import chance_guard

    monkeypatch.setattr(chance_guard, "GUARDED_METRIC", "no such metric")
    blind, _ = replay(rec, rule)
    cut = slow_starters_cut(blind)
    assert len(cut) == 3 and all(blind[t][0] < 4000 for t in cut), cut


def test_the_race_spares_the_slow_improvers_and_keeps_the_best_config(record):
    # the record's own 5 seeds per config: the configs still rising at a rung where they are behind
    # (t3c and t4b, which end within 0.02 of the best) run on; those that dropped or stalled are cut
    rec = as_replay(record)
    ends, _ = replay(rec, "race")
    s = summary(rec, ends)
    assert s["best kept"] and s["best"] == "t1a", s
    assert sorted(s["cut"]) == ["t2a", "t2b", "t4c"], s
    per = outcome(rec, ends)
    assert (per[per.stopped > 0]["final median"] < per[per.best]["final median"].iloc[0] - 0.02).all()


def test_the_race_keeps_the_best_config_over_resamples_of_seeds(record, monkeypatch):
    # a race of 4 seeds per config, each config's 4 drawn from its 5 recorded ones
    from tune_sd.tune.stopping.race import Race

    rec = as_replay(record)
    rungs, alpha = race_settings(rec, repeat=4)
    assert rungs[0] >= EPOCHS // 27 and rungs[-1] < EPOCHS
    boot = race_bootstrap(rec, rungs, alpha, n=40, seed=0, seeds=4)
    # the config best over all the recorded seeds (t1a) survives, and so does the resample's own best (one of
    # the configs that end within 0.02 of t1a, slow at the first rungs) in 95 % of the resamples
    assert boot["kept_overall"] >= 0.95, boot
    assert boot["kept"] >= 0.95 and boot["near_kept"] >= 0.95, boot
    assert boot["saved"] > 0.15, boot
    # judging them only once they stop rising is what keeps them, on the same resamples
    monkeypatch.setattr(Race, "rising", lambda self, key, rung: False)
    blind = race_bootstrap(rec, rungs, alpha, n=40, seed=0, seeds=4)
    assert boot["kept"] >= blind["kept"] + 0.1, (boot, blind)
    assert blind["saved"] > boot["saved"]


def test_the_trend_rule_names_the_long_record(record):
    along, table = trends_on(record)
    final = along[along.horizon == 1.0].set_index("trial_id")
    names = final.groupby("config")["trend"].agg(lambda s: s.value_counts().to_dict())
    assert names["t1a"] == {"fast-plateau": SEEDS}        # trend 1: learns quickly and stays
    assert names["t2b"] == {"rise-then-drop": SEEDS}      # trend 2: learns quickly, then drops
    assert names["t3c"].get("slow-improver", 0) >= 2      # trend 3 on some seeds: still climbing at the end
    assert names["t4d"]["non-learner"] == 2               # the two seeds that never learned
    # t2a, the example of a trend that moves: a fast-plateau on every seed at 10 % of the run,
    # dropped on every seed by 30 %, and 2 of its 5 seeds win part of it back by the end
    assert names["t2a"] == {"rise-then-drop": 3, "drop-and-recover": 2}
    assert names["t3a"] == {"drop-and-recover": SEEDS}    # the notebook's trend-3 example swings by ±0.05
    held = table.set_index("config")
    assert held.loc["t1a", "holds from epoch"] == 10_000  # named from the first horizon on
    assert held.loc["t2b", "holds from epoch"] == 30_000  # a fast-plateau at 10 000, dropped on all seeds by 30 000
    assert held.loc["t2b", "along the run"] == "fast-plateau → mixed → rise-then-drop"
    assert held.loc["t2a", "along the run"].startswith("fast-plateau → rise-then-drop")
    assert not held["cut short"].any()
    # the non-learner seeds are ones at every horizon: curves that never reached the line
    lone = along[along.trend == "non-learner"]
    assert lone.trial_id.nunique() == 2 and len(lone) == 2 * along.horizon.nunique()


@pytest.mark.slow
def test_analyze_reports_the_trends_along_the_long_record(record, tmp_path):
    from tune_sd.analysis.pipeline import analyze

    folder = tmp_path / "trend-long"
    folder.mkdir()
    tids = []
    for tid, c in record.groupby("trial_id", sort=True):
        cfg = {"variant": str(c.variant.iloc[0]), "repeat": int(c.repeat.iloc[0]), "epochs": EPOCHS,
               "avg_hor": int(c.avg_hor.iloc[0]), "report_every": 25, "seed": int(c.seed.iloc[0])}
        reports = c[["epoch", "avg_acc", "acc_mean", "acc_report"]].assign(acc=c.acc_mean)
        write_trial(folder, str(tid), cfg, reports.astype(np.float64).reset_index(drop=True), SYNTHETIC_NODE,
                    "completed")
        tids.append(str(tid))
    write_experiment(folder, "trend-long", "trend-examples", EPOCHS, tids)
    report = analyze([str(folder)], out=str(tmp_path / "analysis"))
    html = Path(report).read_text()
    assert "Trends along the run" in html
    along = pd.read_parquet(tmp_path / "analysis" / "trends_along.parquet")
    assert along.trial_id.nunique() == len(VARIANTS) * SEEDS
    t2b = along[(along.config_trend.notna()) & (along.trial_id.isin(record[record.variant == "t2b"].trial_id))] \
        if "config_trend" in along else along[along.trial_id.isin(record[record.variant == "t2b"].trial_id)]
    assert (t2b[t2b.horizon == 1.0].trend == "rise-then-drop").all()
