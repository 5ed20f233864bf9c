"""ASHA and the median rule with repeats rank configs, not seeds: they see each config's median curve
(seed_pool.py) and stop a config's seeds together. Driven with planted seeds through the schedulers'
own Tune callbacks, beside the per-seed schedulers on the same reports."""

import pytest
from ray.tune.schedulers import TrialScheduler

from tune_sd.tune.stopping.schedulers import make_scheduler
from tune_sd.tune.stopping.seed_pool import SeedPool
from tune_sd.tune.stopping.records import StopRecorder


from tune_sd.tune.stopping.replay import ReplayController as _Controller, ReplayTrial as _Trial  # noqa: E402


def seeds_of(configs: dict[str, list[float]]) -> list[_Trial]:
    """A trial per seed; each config's seeds differ only in their engine seed and repeat label."""
    out = []
    for c, (name, levels) in enumerate(configs.items()):
        for r in range(len(levels)):
            out.append(_Trial(f"{name}-{r}", {"disc": {"lr": 10.0 ** -c}, "seed": 100 * c + r, "repeat": r}))
    return out


def drive(scheduler, configs: dict[str, list[float]], epochs=100, every=10):
    """Every seed reports its level (its metric, the same at every report) every ``every`` epochs, the seeds
    side by side; a stopped seed reports no more. Returns {trial: epoch it was stopped at}."""
    scheduler.set_search_properties("avg_acc", "max")
    trials, ctl = seeds_of(configs), _Controller()
    level = {t.trial_id: lv for t, lv in zip(trials, [lv for lvs in configs.values() for lv in lvs])}
    for t in trials:
        scheduler.on_trial_add(ctl, t)
    stopped = {}
    for epoch in range(every, epochs + 1, every):
        for t in trials:
            if t.trial_id in stopped:
                continue
            result = {"epoch": epoch, "avg_acc": level[t.trial_id], "training_iteration": epoch // every}
            if scheduler.on_trial_result(ctl, t, result) == TrialScheduler.STOP and epoch < epochs:
                stopped[t.trial_id] = epoch
    return stopped


# a good config with one unlucky seed, a middling one, a bad one
# (all off chance: a config at chance waits for the non-learner rule, test_chance_guard.py)
CONFIGS = {"good": [0.80, 0.82, 0.79, 0.615], "mid": [0.70, 0.71, 0.69, 0.72], "bad": [0.63, 0.61, 0.62, 0.64]}


def test_asha_with_repeats_stops_configs_not_seeds():
    per_seed = drive(make_scheduler("asha", epochs=100, report_every=10, grace_period=10), CONFIGS)
    assert "good-3" in per_seed  # alone, the good config's unlucky seed is ranked with the bad ones and cut
    rec = StopRecorder()
    scheduler = make_scheduler("asha", epochs=100, report_every=10, grace_period=10, recorder=rec, repeat=4)
    stops = drive(scheduler, CONFIGS)
    # the configs' medians at the first rung: good 0.795 first, then mid and bad below its cutoff
    assert sorted(stops) == [f"{c}-{r}" for c in ("bad", "mid") for r in range(4)]
    # decided when a config's last seed reported at the rung: that seed stops there, the others at their next report
    assert stops["bad-3"] == stops["mid-3"] == 10 and set(stops.values()) == {10, 20}
    ev = scheduler.stopped[scheduler.pool.config_of["bad-0"]].as_result()
    assert ev["stop_test"] == "rung cutoff" and ev["stop_seeds"] == 4 and ev["stop_epochs"] == "10,10,10,10"
    assert ev["stop_trials"] == "bad-0,bad-1,bad-2,bad-3" and "stop_p" not in ev
    assert rec._decided["bad-2"] == "asha" and rec._evidence["bad-2"]["stop_test"] == "rung cutoff"


def test_asha_with_repeats_waits_for_every_seed_at_the_rung():
    scheduler = make_scheduler("asha", epochs=100, report_every=10, grace_period=10, repeat=4)
    scheduler.set_search_properties("avg_acc", "max")
    trials, ctl = seeds_of({"good": [0.8] * 4, "bad": [0.62] * 4}), _Controller()
    for t in trials:
        scheduler.on_trial_add(ctl, t)
    for t in trials[:4]:
        scheduler.on_trial_result(ctl, t, {"epoch": 10, "avg_acc": 0.8})
    # three seeds of the bad config run on to epoch 30 while the fourth has not reported: nothing is known
    for epoch in (10, 20, 30):
        for t in trials[4:7]:
            assert scheduler.on_trial_result(ctl, t, {"epoch": epoch, "avg_acc": 0.62}) == TrialScheduler.CONTINUE
    # its last seed reaches the rung: the config is judged there and its seed stops now, the others at their next report
    assert scheduler.on_trial_result(ctl, trials[7], {"epoch": 10, "avg_acc": 0.62}) == TrialScheduler.STOP
    assert scheduler.on_trial_result(ctl, trials[4], {"epoch": 40, "avg_acc": 0.62}) == TrialScheduler.STOP


def test_the_median_rule_with_repeats_compares_configs():
    configs = {"a": [0.80, 0.81, 0.79, 0.62], "b": [0.75] * 4, "c": [0.74] * 4, "d": [0.62, 0.63, 0.64, 0.90]}
    rec = StopRecorder()
    scheduler = make_scheduler("median", epochs=100, report_every=10, grace_period=20, recorder=rec, repeat=4)
    stops = drive(scheduler, configs)
    # d's median (0.635) is below the median of the other configs' means: all four seeds stop, its lucky
    # 0.90 seed with them; a's unlucky seed runs on with its config
    assert sorted(stops) == ["d-0", "d-1", "d-2", "d-3"] and stops["d-3"] == 20 and set(stops.values()) == {20, 30}
    assert rec._decided["d-3"] == "median"
    assert scheduler.stopped[scheduler.pool.config_of["d-0"]].test == "median of configs"
    # seed by seed the rule cuts a's unlucky seed and keeps d's lucky one
    per_seed = drive(make_scheduler("median", epochs=100, report_every=10, grace_period=20), configs)
    assert "a-3" in per_seed and "d-3" not in per_seed


def test_without_repeats_the_schedulers_are_the_per_trial_ones():
    from tune_sd.tune.stopping.schedulers import ConfigASHA, RecordedASHA

    one = make_scheduler("asha", epochs=100, report_every=10, repeat=1)
    assert isinstance(one, RecordedASHA) and not isinstance(one, ConfigASHA)
    assert isinstance(make_scheduler("asha+nonlearner", epochs=100, report_every=10, repeat=3), ConfigASHA)


def test_the_seed_pool_hands_on_a_config_curve_at_the_epochs_all_its_seeds_reached():
    pool = SeedPool(3)
    for t in ("a", "b", "c"):
        pool.add(t, "k")
    assert pool.report("a", 10, 0.6) == [] and pool.report("a", 20, 0.7) == []
    assert pool.report("b", 10, 0.5) == []  # c has not reported: nothing is known of it
    assert pool.report("c", 10, 0.9) == [("k", 10, 0.6, ["a", "b", "c"])]
    # b ends before epoch 20: the curve goes on with the seeds that get there
    assert pool.end("b") == []
    assert pool.report("c", 20, 0.8) == [("k", 20, 0.75, ["a", "c"])]
    # a restored seed that passed epoch 30 unheard is left out there, and reports again are not counted twice
    assert pool.report("a", 40, 0.7) == []
    assert pool.report("c", 30, 0.8) == [("k", 30, 0.8, ["c"])]
    assert pool.report("c", 20, 0.1) == []
    assert pool.report("c", 40, 0.6) == [("k", 40, pytest.approx(0.65), ["a", "c"])]


def test_after_a_resume_seeds_that_had_ended_are_not_waited_for():
    # bad-2 and bad-3 had finished before the resume (Tune adds them as TERMINATED / ERROR): the config is
    # judged at the rung on the two seeds that run on
    scheduler = make_scheduler("asha", epochs=100, report_every=10, grace_period=10, repeat=4)
    scheduler.set_search_properties("avg_acc", "max")
    trials, ctl = seeds_of({"good": [0.8] * 4, "bad": [0.62] * 4}), _Controller()
    trials[6].status, trials[7].status = "TERMINATED", "ERROR"
    for t in trials:
        scheduler.on_trial_add(ctl, t)
    for t in trials[:4]:
        scheduler.on_trial_result(ctl, t, {"epoch": 10, "avg_acc": 0.8})
    assert scheduler.on_trial_result(ctl, trials[4], {"epoch": 10, "avg_acc": 0.62}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(ctl, trials[5], {"epoch": 10, "avg_acc": 0.62}) == TrialScheduler.STOP
    assert scheduler.stopped[scheduler.pool.config_of["bad-0"]].trials == ["bad-0", "bad-1"]


def test_the_sweep_header_says_the_schedulers_rank_configs():
    from tune_sd.tune.progress import describe_scheduler

    settings = {"scheduler": "asha", "epochs": 3000, "report_every": 25, "repeat": 4}
    assert describe_scheduler(settings) == ("ASHA (grace 111 epochs, reduction factor 3) over configs (the median of "
                                            "each config's 4 seeds; its seeds stop together); a config at chance "
                                            "stops only once the non-learner rule calls it a non-learner (grace "
                                            "1500, window 2000)")
    # the guard reads avg_acc: a sweep ranked on another metric has none
    assert "at chance" not in describe_scheduler({**settings, "metric": "val_mse"})
    assert "over configs" not in describe_scheduler({**settings, "repeat": 1})
    assert "over configs" in describe_scheduler({**settings, "scheduler": "median+nonlearner"})
