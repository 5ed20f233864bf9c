"""Real --repeat sweeps through the seed-aware non-learner stopper and the race: each stop is recorded
with its config's evidence in the trial's last result, read back into trials.parquet and counted per
config in the report."""

import json

import pytest

from tune_helpers import read_tables, write_space
from tune_sd.spaces import load_space
from tune_sd.tune.plan import SweepOptions, plan_sweep
from tune_sd.tune.sweep import run_sweep

pytestmark = pytest.mark.slow

# two configs of four seeds: lr 1e-9 cannot learn, lr 3e-4 leaves chance within about 100 epochs
LRS = {"disc": {"parameters": {"lr": {"values": [3e-4, 1e-9]}}}}
BASE = {"epochs": 200, "avg_hor": 40, "arch": {"lat_size": 10}, "disc": {"hid_num": 2, "hid_size": 128, "iters": 10,
                                                                      "gp": 1e-4}}


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from tune_sd.tune.cluster import connect

    started = connect(num_cpus=2)
    assert started, "a Ray instance was already running in this process"
    yield
    ray.shutdown()


def _sweep(tmp_path, name, tune):
    space = write_space(tmp_path, name, LRS, base=BASE,
                        tune={"num_samples": 1, "max_concurrent": 8, **tune})
    plan = plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp_path / "store"), name=name, repeat=4,
                                                                   pack="4"))
    exp = run_sweep(plan)
    curves, trials = read_tables(exp)
    return exp, curves, trials


def _last_results(exp):
    return {d.name.removeprefix("trial_"): [json.loads(x) for x in (d / "result.json").open()][-1]
            for d in exp.glob("trial_*")}


def test_nonlearner_stops_the_flat_config_with_its_seeds_evidence(tmp_path, ray_local):
    exp, curves, trials = _sweep(tmp_path, "nl", {"scheduler": "nonlearner", "nonlearner_grace": 100,
                                                   "nonlearner_window": 80, "nonlearner_margin": 0.1})
    assert len(trials) == 8 and set(trials.status) == {"TERMINATED"}
    flat = trials[trials["cfg.disc.lr"] == 1e-9]
    learns = trials[trials["cfg.disc.lr"] == 3e-4]
    assert (learns.stop_reason == "completed").all(), learns[["stop_reason", "final_avg_acc"]]
    # every flat seed stops, unless the decision came while it was on its last reports: a trial runs on while the
    # driver takes the results of others, and one that got to its end first completed (it is named in the decision)
    ran_out = flat[flat.stop_reason != "nonlearner"]
    assert (ran_out.stop_reason == "completed").all() and (ran_out.epochs == 200).all()
    flat = flat[flat.stop_reason == "nonlearner"]
    # together, on the pooled test of its seeds, before one seed's grace (100) could. A seed may be stopped alone,
    # on its own slope test, never before its own grace and only where it was a non-learner already at the epoch
    # its siblings had all reached (the pooled test may have found a rise by chance); the others then stop
    # together on their pooled test
    pooled, alone = flat[flat.stop_test == "pooled slope"], flat[flat.stop_test != "pooled slope"]
    assert set(alone.stop_test) <= {"slope"} and (alone.stop_epoch >= 100).all()
    assert len(pooled) >= 2 or not alone.empty
    if len(pooled):
        # the joint decision names the seeds whose reports it used: these, and any stopped alone past the grace
        assert pooled.stop_trials.nunique() == 1
        used = set(pooled.stop_trials.iloc[0].split(","))
        assert set(pooled.trial_id) | set(ran_out.trial_id) <= used <= set(flat.trial_id) | set(ran_out.trial_id)
        assert set(pooled.stop_seeds) == {len(used)}
        # decided once the last seed reached the pooled grace (100 * 4**(-1/3) = 63: its report at 80)
        reached = [int(e) for e in pooled.stop_epochs.iloc[0].split(",")]
        assert min(reached) == 80
        last = _last_results(exp)
        for tid in pooled.trial_id:
            assert last[tid]["stop_reason"] == "nonlearner" and last[tid]["stop_seeds"] == len(used)
            assert len(last[tid]["stop_epochs"].split(",")) == len(used)
    assert (flat.stop_epoch >= 80).all() and (flat.stop_p >= 0.2).all()
    _report_counts_per_config(exp, tmp_path, {"1e-09": (f"nonlearner {len(flat)}", "yes" if alone.empty else "no"),
                                              "0.0003": ("-", "-")})


def test_race_stops_the_worse_config_with_its_seeds_evidence(tmp_path, ray_local):
    # the flat config is at chance: the race's stop waits for the non-learner rule (chance_guard.py), which
    # these settings let rule within the run
    exp, curves, trials = _sweep(tmp_path, "race", {"scheduler": "race", "grace_period": 40,
                                                     "reduction_factor": 2, "nonlearner_grace": 100,
                                                     "nonlearner_window": 80})
    worse = trials[trials["cfg.disc.lr"] == 1e-9]
    best = trials[trials["cfg.disc.lr"] == 3e-4]
    assert (best.stop_reason == "completed").all() and (best.epochs == 200).all()
    assert (worse.stop_reason == "race").all()
    assert set(worse.stop_test) == {"rank vs best"} and set(worse.stop_seeds) == {4}
    assert set(worse.stop_against) == {"trial " + best.trial_id.min()}  # the first seed names the config
    assert worse.stop_p.iloc[0] == pytest.approx(1 / 70)
    rung = int(worse.stop_epochs.iloc[0].split(",")[0])
    # every seed had reached the rung when the race decided; a seed a busy machine had run ahead stops at its
    # next report, well before the end
    assert rung in (40, 80) and (worse.stop_epoch >= rung).all() and (worse.stop_epoch < 200).all()
    _report_counts_per_config(exp, tmp_path, {"1e-09": ("race 4", "yes"), "0.0003": ("-", "-")})


def test_asha_with_repeats_stops_a_configs_seeds_together(tmp_path, ray_local):
    exp, curves, trials = _sweep(tmp_path, "asha", {"scheduler": "asha", "grace_period": 40, "reduction_factor": 2})
    assert len(trials) == 8 and set(trials.status) == {"TERMINATED"}
    best = trials[trials["cfg.disc.lr"] == 3e-4]
    assert (best.stop_reason == "completed").all() and (best.epochs == 200).all()
    # ASHA ranks the two configs' seed medians: the flat one is cut at a rung where it reached the rung after the
    # learner (all four seeds, on one decision), or runs to the end where it got to every rung first. A seed that
    # got to its last epoch before the decision reached it completed (it is named in the decision)
    flat = trials[trials["cfg.disc.lr"] == 1e-9]
    cut, ran_out = flat[flat.stop_reason == "asha"], flat[flat.stop_reason != "asha"]
    assert (ran_out.stop_reason == "completed").all() and (ran_out.epochs == 200).all()
    if len(cut):
        assert set(cut.stop_test) == {"rung cutoff"} and set(cut.stop_seeds) == {4}
        assert cut.stop_trials.nunique() == 1 and set(cut.stop_trials.iloc[0].split(",")) == set(flat.trial_id)
        rung = int(cut.stop_epochs.iloc[0].split(",")[0])
        assert rung in (40, 80, 160) and (cut.stop_epoch >= rung).all() and (cut.stop_epoch < 200).all()
        want = (f"asha {len(cut)}", "yes" if len(cut) > 1 else "-", "rung cutoff")  # ASHA's cutoff is no test: no p
    else:
        want = ("-", "-")
    _report_counts_per_config(exp, tmp_path, {"1e-09": want, "0.0003": ("-", "-")})


def _report_counts_per_config(exp, tmp_path, want):
    from tune_sd.analysis import analyze
    from test_report_stops import read_tables as html_tables

    report = analyze([str(exp)], out=str(tmp_path / f"report-{exp.name}"))
    per = html_tables(report)["Stops per config"]
    assert len(per) == 2 and (per.seeds.astype(int) == 4).all()
    for lr, (by, together, *test) in want.items():
        row = per[per.config.str.contains(f"disc.lr={lr}")].iloc[0]
        assert (row.by, row.together) == (by, together)
        assert not test or row.test == test[0]


def test_replay_of_a_fifo_sweep_makes_the_live_decisions(tmp_path, ray_local, capsys):
    """A finished fifo sweep's reports fed to the stopper's and the race's own code (stopping/replay.py, the
    code of `tune-sd replay` and of the benchmark): the flat config stopped on its seeds' pooled evidence, the
    worse config raced out."""
    from tune_sd.cli import main
    from tune_sd.tune.stopping import replay as rp
    from tune_sd.tune.stopping.nonlearner import NonLearnerSettings

    exp, _, trials = _sweep(tmp_path, "fifo", {"scheduler": "fifo"})
    assert (trials.stop_reason == "completed").all()
    rec = rp.load_record(str(exp))
    assert rec.repeat == 4 and len(rec.configs()) == 2 and rec.exact  # curves.parquet carries acc_report
    flat = set(trials.loc[trials["cfg.disc.lr"] == 1e-9, "trial_id"])
    ends = rp.replay_nonlearner(rec, NonLearnerSettings(grace=100, window=80, margin=0.1), 4)
    assert set(ends) == flat and {ev.test for _, ev in ends.values()} == {"pooled slope"}
    # reports epoch by epoch: decided at the pooled grace on the last seed's report at 80, the others at their next
    assert {tuple(ev.epochs) for _, ev in ends.values()} == {(80, 80, 80, 80)}
    assert sorted(e for e, _ in ends.values()) == [80, 100, 100, 100]
    alone = rp.replay_nonlearner(rec, NonLearnerSettings(grace=100, window=80, margin=0.1), 1)
    # each seed alone: the flat ones at the single-seed grace (here also some learner seeds, still within the
    # margin at epoch 100, which their learning siblings protect in the seed-aware replay)
    assert flat <= set(alone) and min(e for e, _ in alone.values()) >= 100
    s = rp.summary(rec, ends)
    assert s["non-learner configs stopped"] == "1/1" and s["learner configs cut"] == 0 and s["best kept"]
    assert s["saved"] == pytest.approx(1 - (4 * 200 + 80 + 3 * 100) / 1600)
    fast = NonLearnerSettings(grace=100, window=80, margin=0.1)
    raced = rp.replay_race(rec, [40, 80], 0.05, nonlearner=fast)
    assert set(raced) == flat and {ev.test for _, ev in raced.values()} == {"rank vs best"}
    # at chance, the flat config's stop waited for the non-learner rule: decided at a rung, made at its verdict
    assert {tuple(ev.epochs) for _, ev in raced.values()} <= {(40,) * 4, (80,) * 4}
    assert sorted(e for e, _ in raced.values()) == [80, 100, 100, 100]
    # with the record's own non-learner settings (a grace of 1 500 for 200 epochs) that rule never rules: the
    # race leaves the flat config to run
    assert rp.replay_race(rec, [40, 80], 0.05) == {}
    # ASHA by config, through its Tune callbacks: the configs reach each rung in trial order, the learner first,
    # so the flat config is cut at the first rung (the default grace: four reports, 80), all its seeds
    cut = rp.replay_scheduler(rec, "asha", nonlearner=fast)
    assert set(cut) == flat and {ev.test for _, ev in cut.values()} == {"rung cutoff"}
    assert (rp.outcome(rec, cut)["stopped"].isin([0, 4])).all()  # no config cut apart
    # the command: the same decisions, said per config
    assert main(["replay", str(exp), "--scheduler", "nonlearner", "--nonlearner-grace", "100",
                 "--nonlearner-window", "80"]) == 0
    out = capsys.readouterr().out
    assert "epochs saved: 26%" in out and "non-learner configs (no seed learned) stopped: 1/1" in out
    assert "configs cut whose seeds went on to learn: 0" in out and "(lr=0.0003): kept" in out
    assert main(["replay", str(exp), "--scheduler", "race", "--grace-period", "40", "--bootstrap", "20",
                 "--nonlearner-grace", "100", "--nonlearner-window", "80"]) == 0
    out = capsys.readouterr().out
    assert "race at epochs" in out and "bootstrap resamples" in out
    assert main(["replay", str(exp), "--scheduler", "median"]) == 0
