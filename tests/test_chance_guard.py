"""The ranking rules' chance guard (chance_guard.py): ASHA, the median rule and the race do not stop a
trial (a config, with repeats) at chance until the non-learner rule, run beside them on the same
reports, calls it a non-learner; a slow starter that leaves chance is ranked as a learner. Driven through
the schedulers' own Tune callbacks with planted curves."""

import numpy as np
import pytest
from ray.tune.schedulers import TrialScheduler

from tune_sd.tune.stopping.chance_guard import ChanceGuard, chance_guard
from tune_sd.tune.stopping.nonlearner import NonLearnerSettings
from tune_sd.tune.stopping.records import StopRecorder
from tune_sd.tune.stopping.replay import ReplayController, ReplayTrial
from tune_sd.tune.stopping.schedulers import make_scheduler

EPOCHS, EVERY = 3000, 25
FAST = NonLearnerSettings(grace=400, window=300)  # the non-learner rule's verdict on a flat curve by ~400


def best(epoch):
    return 0.75


def flat(epoch):
    return 0.5


def sinking(epoch):
    """At chance and sinking a little: a config that does not rise between two rungs."""
    return 0.5 - 1e-5 * epoch


def good(epoch):
    return 0.72


def slow_starter(epoch):
    """At chance to epoch 150, then climbing to 0.80 by 750 (it leaves chance at 350): last at the first
    rungs (100, 300), first at the end."""
    return 0.5 + 0.3 * min(max(epoch - 150, 0) / 600, 1.0)


def drive(scheduler, curves: dict, seeds: int = 1, noise: float = 0.01, seed: int = 0):
    """Every seed of every config reports ``curve(epoch)`` + noise as avg_acc and acc_report every 25
    epochs, side by side; a stopped seed reports no more. Returns ({trial: epoch stopped}, recorder)."""
    rec = StopRecorder()
    scheduler.recorder = rec
    scheduler.set_search_properties("avg_acc", "max")
    rng = np.random.default_rng(seed)
    ctl = ReplayController()
    trials = {f"{name}-{r}": ReplayTrial(f"{name}-{r}", {"variant": name, "disc": {"lr": 10.0 ** -c},
                                                          "seed": r, "repeat": r, "epochs": EPOCHS})
              for c, name in enumerate(curves) for r in range(seeds)}
    for t in trials.values():
        scheduler.on_trial_add(ctl, t)
    stopped = {}
    for epoch in range(EVERY, EPOCHS + 1, EVERY):
        for tid, t in trials.items():
            if tid in stopped:
                continue
            value = curves[t.config["variant"]](epoch) + rng.normal(0, noise)
            result = {"epoch": epoch, "avg_acc": value, "acc_report": value + rng.normal(0, noise),
                      "config": t.config}
            if scheduler.on_trial_result(ctl, t, result) == TrialScheduler.STOP and epoch < EPOCHS:
                stopped[tid] = epoch
    return stopped, rec


def test_the_guard_allows_what_left_chance_and_what_the_nonlearner_rule_flags():
    guard = ChanceGuard(FAST)
    assert guard.at_chance(0.55) and guard.at_chance(0.45) and not guard.at_chance(0.62)
    assert guard.allows("t", 0.62) and not guard.allows("t", 0.52)
    for epoch in range(25, 801, 25):
        guard.hear("t", {"epoch": epoch, "avg_acc": 0.5, "acc_report": 0.5 + 0.01 * (-1) ** (epoch // 25)})
    assert guard.non_learner("t") and guard.allows("t", 0.52)
    # a metric without a chance level has no guard
    assert chance_guard("val_mse", None, 1) is None and isinstance(chance_guard("avg_acc", None, 4), ChanceGuard)


@pytest.mark.parametrize("rule", ["asha", "median"])
def test_ranking_rules_do_not_cut_a_slow_starter_at_chance_and_cut_a_flat_one_when_it_is_a_non_learner(rule):
    curves = {"best": best, "good": good, "slow": slow_starter, "flat": flat}
    scheduler = make_scheduler(rule, epochs=EPOCHS, report_every=EVERY, grace_period=100, nonlearner=FAST)
    stopped, rec = drive(scheduler, curves)
    assert "slow-0" not in stopped and "best-0" not in stopped
    # the flat trial ranks last from the first rung on (100), but waits for the non-learner rule's verdict
    assert 400 <= stopped["flat-0"] <= 1000, stopped
    assert rec._decided["flat-0"] == rule and set(rec._decided.values()) == {rule}
    # without the guard's patience (a non-learner rule that never rules), the flat trial runs to the end
    never = NonLearnerSettings(grace=10 ** 6, window=300)
    stopped, _ = drive(make_scheduler(rule, epochs=EPOCHS, report_every=EVERY, grace_period=100, nonlearner=never),
                       curves)
    assert "flat-0" not in stopped and "slow-0" not in stopped


def test_without_the_guard_asha_cuts_the_slow_starter_at_its_first_rung():
    # the same curves on a metric with no chance level (the guard is off): ASHA ranks the slow starter
    # with the flat trial at its first rung and cuts it there
    scheduler = make_scheduler("asha", epochs=EPOCHS, report_every=EVERY, grace_period=100, nonlearner=FAST)
    scheduler.guard = None
    rng_curves = {"best": best, "good": good, "slow": slow_starter, "flat": flat}
    stopped, _ = drive(scheduler, rng_curves)
    assert stopped.get("slow-0", EPOCHS) <= 300 and stopped.get("flat-0", EPOCHS) <= 300


@pytest.mark.parametrize("rule", ["asha", "median", "race"])
def test_with_repeats_a_config_at_chance_waits_for_the_nonlearner_rule(rule):
    curves = {"best": best, "good": good, "slow": slow_starter, "flat": sinking}
    scheduler = make_scheduler(rule, epochs=EPOCHS, report_every=EVERY, grace_period=100, nonlearner=FAST,
                               repeat=4)
    stopped, rec = drive(scheduler, curves, seeds=4, noise=0.002)
    assert not any(t.startswith(("slow", "best")) for t in stopped), stopped
    # the flat config ranks last from the first rung (100) on; it stops once the non-learner rule, on its
    # four seeds' pooled reports, calls it a non-learner (or, in the race, at a later rung where it did
    # not rise, once that rule has)
    flat_stops = [stopped.get(f"flat-{r}") for r in range(4)]
    assert all(e is not None and 200 <= e <= 1000 for e in flat_stops), stopped
    assert set(rec._decided.values()) == {rule}


def test_a_deferred_stop_is_dropped_once_the_config_leaves_chance():
    # a config at chance at the race's first rung (100), that learns to a level below the best's and stays:
    # not stopped at 100 (at chance); once it has left chance it is ranked as a learner: spared at 300 (it
    # rose since 100), stopped at 900 (it did not rise since 300), though the non-learner rule never flags it
    def late(epoch):
        return 0.5 if epoch < 150 else 0.65

    scheduler = make_scheduler("race", epochs=EPOCHS, report_every=EVERY, grace_period=100, nonlearner=FAST,
                               repeat=4)
    stopped, _ = drive(scheduler, {"best": best, "late": late}, seeds=4, noise=0.0)
    assert {stopped.get(f"late-{r}") for r in range(4)} <= {900, 925}, stopped
    assert not scheduler.race.deferred
