"""The median rule's lean curves (median_curves.py): the same decisions as Ray's own rule on the same
reports, without keeping every result."""

import numpy as np
import pytest
from ray.tune.schedulers import MedianStoppingRule, TrialScheduler

from tune_sd.tune.stopping.median_curves import Curve
from tune_sd.tune.stopping.replay import ReplayController, ReplayTrial
from tune_sd.tune.stopping.schedulers import RecordedMedianStoppingRule


def test_a_curve_answers_what_the_rule_asks():
    c = Curve("epoch", "avg_acc", grace=20, mode="max")
    for epoch, value in [(10, 0.9), (20, 0.6), (30, 0.7), (40, float("nan")), (50, 0.8)]:
        c.append({"epoch": epoch, "avg_acc": value})
    assert c[-1] == {"epoch": 50.0} and c.best == 0.9
    assert np.isnan(c.running_mean(10)) and c.running_mean(20) == pytest.approx(0.6)
    assert c.running_mean(35) == pytest.approx(0.65) and np.isnan(c.running_mean(45))  # a nan, as np.mean
    # a trial restored from a checkpoint reports from an earlier epoch again: what it redoes is replaced
    c.append({"epoch": 30, "avg_acc": 0.5})
    assert c[-1] == {"epoch": 30.0} and c.running_mean(100) == pytest.approx(0.55)
    with pytest.raises(IndexError):
        c[0]


def test_the_lean_rule_decides_as_rays_rule_on_the_same_reports():
    rng = np.random.default_rng(3)
    levels = rng.uniform(0.6, 0.9, size=12)  # off chance: no chance guard at play
    lean = RecordedMedianStoppingRule(time_attr="epoch", grace_period=60, min_samples_required=3)
    lean.guard = None
    ray_rule = MedianStoppingRule(time_attr="epoch", grace_period=60, min_samples_required=3)
    decisions = {}
    for rule in (lean, ray_rule):
        rule.set_search_properties("avg_acc", "max")
        ctl, trials = ReplayController(), [ReplayTrial(f"t{i}") for i in range(len(levels))]
        for t in trials:
            rule.on_trial_add(ctl, t)
        noise = np.random.default_rng(4)
        out, stopped = [], set()
        for epoch in range(20, 1001, 20):
            for t, level in zip(trials, levels):
                if t.trial_id in stopped:
                    continue
                d = rule.on_trial_result(ctl, t, {"epoch": epoch, "avg_acc": level + noise.normal(0, 0.05)})
                out.append(d)
                if d == TrialScheduler.STOP:
                    stopped.add(t.trial_id)
        decisions[rule is lean] = (out, stopped)
    assert decisions[True] == decisions[False]
    assert 0 < len(decisions[True][1]) < len(levels)
    # it keeps a curve per trial, not its results
    assert all(isinstance(c, Curve) for c in lean._results.values())
