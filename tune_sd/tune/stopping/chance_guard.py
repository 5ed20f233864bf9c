"""The chance guard of the ranking rules (ASHA, the median rule, the race), without Ray.

A ranking rule stops what ranks low at a rung. Early in a long run a slow starter ranks lowest of all:
on the notebook's 100 000-epoch curves (tests/data/long_record.parquet) seeds of t3c and t4b sit at
chance (avg_acc 0.55-0.60) at ASHA's first rung (3 703) and end at 0.67-0.73, beside the best config;
without this guard ASHA and the median rule, seed by seed, cut them there, and on the 12 example critics
at 3 000 epochs the race cut t1a and t2b at its first rung, at chance, which end within 0.01 of the best. Whether a curve at chance
will learn is the question the non-learner rule answers (its grace, its window, its trend test), and
a rank cannot: so a ranking rule does not stop a trial (or, with repeats, a config) whose metric is at
chance (within the non-learner margin of 0.5) unless the non-learner rule, run beside it on the same
reports with the sweep's non-learner settings, calls it a non-learner. Its stop is deferred: it happens
at the report where the non-learner rule agrees, and is dropped once the curve leaves chance (it is
then ranked again at the next rung). A curve that has learned is ranked as before.

The guard reads ``avg_acc``: a sweep ranked on another metric (the regularisation's ``val_mse``) has no
chance level and no guard.
"""

from __future__ import annotations

from tune_sd.outcomes import CHANCE
from tune_sd.tune.stopping.nonlearner import NonLearnerSettings, SeedRule, report_point

#: the metric whose chance level the guard knows
GUARDED_METRIC = "avg_acc"


class ChanceGuard:
    """``hear`` every report of every trial (its config key with repeats); ``allows(unit, value)`` says
    whether a ranking rule may stop a unit (a trial, or a config's key with repeats) whose metric is
    ``value`` now."""

    def __init__(self, settings: NonLearnerSettings | None = None, repeat: int = 1):
        self.rule = SeedRule(settings or NonLearnerSettings(), repeat)
        self.margin = self.rule.settings.margin
        self.flagged: set[str] = set()   # trials the non-learner rule called non-learners
        self.asked: dict[str, float] = {}  # trial -> the epoch the rule last judged it at

    def hear(self, trial_id: str, result: dict, key: str | None = None, planned: float | None = None) -> None:
        """Every report: the rule keeps it; it judges only when asked (:meth:`non_learner`), which the
        ranking rules do only of a unit whose stop waits, so that a sweep of learners pays for nothing."""
        point = report_point(result)
        if point is not None:
            self.rule.record(str(trial_id), point, key, planned)

    def end(self, trial_id: str) -> None:
        self.rule.end(str(trial_id))

    def at_chance(self, value: float) -> bool:
        return abs(float(value) - CHANCE) < self.margin

    def non_learner(self, unit: str) -> bool:
        """The non-learner rule called the unit a non-learner: the trial, or the config (all its seeds
        together, or each of them on its own)."""
        members = self.rule.members.get(unit) or []
        for m in members:
            history = self.rule.history.get(m)
            if m in self.flagged or not history or self.asked.get(m) == history[-1][0]:
                continue
            self.asked[m] = history[-1][0]
            if self.rule.decide(m) is not None:
                self.flagged.add(m)
        if unit in self.flagged or unit in self.rule.stopped:
            return True
        return bool(members) and all(m in self.flagged for m in members)

    def settle(self, unit: str, value: float | None) -> bool | None:
        """Of a unit whose stop waits: True, stop it now (the non-learner rule calls it a non-learner);
        False, its wait ends (its metric ``value`` left chance: the next rung ranks it again); None, it waits on."""
        if self.non_learner(unit):
            return True
        if value is not None and not self.at_chance(value):
            return False
        return None

    def allows(self, unit: str, value: float) -> bool:
        """A ranking rule may stop the unit: it has left chance, or it is a non-learner."""
        return not self.at_chance(value) or self.non_learner(unit)


def chance_guard(metric: str | None, settings: NonLearnerSettings | None, repeat: int) -> ChanceGuard | None:
    """The guard of a sweep ranked on ``metric`` (None where the metric has no chance level)."""
    return ChanceGuard(settings, repeat) if metric in (None, GUARDED_METRIC) else None
