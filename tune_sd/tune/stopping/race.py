"""Racing the configs of a sweep with repeats (``--scheduler race``), without Ray.

Each config runs R seeds (``--repeat R``). At each rung (epochs ``grace * eta**j``, up to a third of
the run for eta 3), once all seeds of a config have reached it, the configs whose seeds have all
reached it are compared with the best of them (the highest median of the metric over its seeds): a
config whose seeds are shown worse than the best config's seeds, and which has stopped rising, stops,
all its seeds together. A config still rising (at least half of its seeds gained since the last look,
the previous rung or the first rung / eta) is judged again at the next rung: at the notebook's horizon
slow improvers sit far below the best at the first rungs and end beside it (tests/data/long_record.parquet;
docs/early-stopping.md). A config still at chance is the non-learner rule's to judge, not a rank's
(chance_guard.py): its stop waits until that rule calls it a non-learner, and is dropped once it leaves
chance (at 3 000 epochs the race cut t1a and t2b of the trend examples at its first rung, at chance,
which end within 0.01 of the best).
The test is the one-sided Mann-Whitney rank test of the seeds' metric at the rung (the first report at
or past the rung's epoch: equal epochs for every seed), exact, at ``alpha / K`` for K rungs: Bonferroni
over the looks, so that a config as good as the best one is stopped at some rung with probability at
most ``alpha`` (comparing it with the best of several configs, picked on the same data, makes that
bound loose where many configs are tied; benchmarks/early_stopping.py measures how often the best
config by final median survives). The best configs run to the end.

With R seeds against R, the smallest p-value a rank test can give is 1 / C(2R, R) (all of one
config's seeds below all of the other's): 0.05 for 3 seeds, 0.014 for 4, 0.004 for 5. A race whose
``alpha / K`` is below it could never stop anything; the plan refuses it (:func:`check_race`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tune_sd.seeds import median_over_seeds, p_worse
from tune_sd.tune.stopping.config_seeds import ConfigSeeds
from tune_sd.tune.stopping.nonlearner import Evidence


@dataclass
class RaceSettings:
    alpha: float = 0.05  # the chance, per config, of stopping one as good as the best (over all rungs)

    def check(self) -> "RaceSettings":
        from tune_sd.errors import ConfigError

        if not 0 < self.alpha < 1:
            raise ConfigError(f"race: alpha must be in (0, 1) (got {self.alpha})")
        return self


def race_rungs(epochs: int, grace: int, eta: float) -> list[int]:
    """The epochs at which configs are compared: grace, grace * eta, ... up to epochs / eta (a rung later
    than that saves little of the run)."""
    rungs, r = [], float(max(grace, 1))
    while r <= epochs / eta + 1e-9 and (not rungs or int(r) > rungs[-1]):
        rungs.append(int(r))
        r *= eta
    return rungs or [max(min(grace, epochs - 1), 1)]


def last_looks(rungs: list[int]) -> dict[int, int]:
    """Each rung's last look, the epoch a config's rise is measured from: the previous rung, and for the
    first one the rung / eta (eta: the rungs' ratio, 3 for a lone rung)."""
    rungs = sorted(rungs)
    eta = rungs[1] / rungs[0] if len(rungs) > 1 else 3.0
    return {r: rungs[i - 1] if i else max(int(r / eta), 1) for i, r in enumerate(rungs)}


def smallest_p(seeds: int) -> float:
    """The smallest one-sided p-value of an exact rank test of ``seeds`` values against as many."""
    return 1 / math.comb(2 * seeds, seeds)


def check_race(repeat: int, rungs: list[int], alpha: float) -> None:
    from tune_sd.errors import ConfigError

    if repeat < 2:
        raise ConfigError("--scheduler race compares the seeds of configs: give --repeat R (R >= 4 with the "
                          "default alpha); without repeats use asha or median")
    level = alpha / len(rungs)
    if smallest_p(repeat) > level:
        need = next(r for r in range(2, 50) if smallest_p(r) <= level)
        raise ConfigError(f"--scheduler race: with {repeat} seeds per config a rank test can at best reach "
                          f"p = {smallest_p(repeat):.3g}, above alpha / rungs = {alpha:g} / {len(rungs)}: it could "
                          f"never stop a config; give --repeat {need} or more, or fewer rungs (a larger "
                          f"--grace-period or --reduction-factor)")


def race_plan(*, epochs: int, report_every: int, grace_period: int | None, reduction_factor: float | None,
              repeat: int, race_alpha: float | None) -> tuple[list[int], float]:
    """(rungs, alpha) of a race, checked (a ConfigError says what to change): the first rung is the
    sweep's grace period (``--grace-period``, default a 27th of the run), the next ones ``eta`` =
    ``--reduction-factor`` times later."""
    from tune_sd.tune.choices import default_grace_period

    alpha = RaceSettings(RaceSettings.alpha if race_alpha is None else race_alpha).check().alpha
    grace = min(grace_period or default_grace_period(epochs, report_every), epochs)
    rungs = race_rungs(epochs, grace, float(reduction_factor or 3))
    check_race(int(repeat or 1), rungs, alpha)
    return rungs, alpha


def rank_p(values: list[float], best: list[float], mode: str = "max") -> float:
    """One-sided p-value that ``values`` are worse than ``best``: the exact Mann-Whitney test
    (:func:`tune_sd.seeds.p_worse`; a race's few seeds make it exact)."""
    return p_worse(values, best, mode, method="exact")


class Race(ConfigSeeds):
    """The race's state and decisions (schedulers.RaceScheduler adapts it to Tune; the benchmark replays
    it). ``add`` a trial with its config key (and a label for the records), ``report`` its metric at an
    epoch: the :class:`Evidence` of its config's stop, or None; ``end`` a trial that ended."""

    def __init__(self, rungs: list[int], repeat: int, alpha: float = 0.05, mode: str = "max", report_every: int = 0,
                 guard=None):
        self.rungs = sorted(rungs)
        self.guard = guard  # a ChanceGuard (chance_guard.py): a config at chance waits for the non-learner rule
        self.report_every = report_every  # a trial first heard of far past a rung passed it unheard (a resume)
        super().__init__(repeat)
        self.level = alpha / len(self.rungs)
        self.mode = mode
        self.last_look = last_looks(self.rungs)
        self.looks = sorted(set(self.rungs) | set(self.last_look.values()))
        self.label: dict[str, str] = {}
        self.at: dict[str, dict[int, float]] = {}   # trial -> rung or last look -> its metric there
        self.last: dict[str, float] = {}
        self.stopped: dict[str, Evidence] = {}      # config -> the evidence it was stopped on
        self.deferred: dict[str, Evidence] = {}     # config at chance -> the evidence it will stop on
        self.now: dict[str, float] = {}             # trial -> its metric at its last report

    def add(self, trial_id: str, key: str, label: str | None = None) -> None:
        trial_id = str(trial_id)
        if not self.join(trial_id, key):
            return
        self.label.setdefault(key, label or key)
        self.at[trial_id] = {}

    def report(self, trial_id: str, epoch: float, value: float, result: dict | None = None,
               planned: float | None = None) -> Evidence | None:
        """``result``: the whole report (epoch, avg_acc, acc_report), which the chance guard's non-learner
        rule reads; ``planned``: the trial's planned epochs."""
        trial_id = str(trial_id)
        key = self.config_of[trial_id]
        before = self.last.get(trial_id, epoch - self.report_every if self.report_every else -math.inf)
        self.last[trial_id] = epoch
        if self.guard is not None and result is not None:
            self.guard.hear(trial_id, result, key if self.repeat > 1 else None, planned)
        if key in self.stopped:
            return self.stopped[key]
        if not math.isfinite(value):
            return None
        self.now[trial_id] = value
        if key in self.deferred:
            self._settle(key)
            if key in self.stopped:
                return self.stopped[key]
        for look in self.looks:
            # the first report at or past the look is the seed's value there; a restored trial keeps what it had
            if before < look <= epoch and look not in self.at[trial_id]:
                self.at[trial_id][look] = value
                if look in self.last_look:  # a rung (a last look that is no rung only records)
                    self._judge(look)
        return self.stopped.get(key)

    def values(self, key: str, rung: int) -> list[float] | None:
        """The seeds' metric at ``rung``, once every seed that will get there did (None before)."""
        members = self.members[key]
        if not self.complete(key):
            return None
        out = []
        for m in members:
            if rung in self.at[m]:
                out.append(self.at[m][rung])
            elif m not in self.ended:
                return None  # still on its way to the rung
        return out if len(out) >= 2 else None

    def rising(self, key: str, rung: int) -> bool:
        """Whether the config is still rising at ``rung``: at least half of its seeds gained since the
        rung's last look (seeds not heard at the last look, e.g. restored past it, left out; none left: not
        known to rise). A count of seeds, not their median change: the seeds of a slow improver swing by
        ±0.05 between two looks of a long run (t3a and t4b of the long record, which end beside the best
        config), and the median change of four such seeds read as a loss in 1 of 8 resamples."""
        back, sign = self.last_look[rung], 1 if self.mode == "max" else -1
        gains = [sign * (self.at[m][rung] - self.at[m][back]) for m in self.members[key]
                 if rung in self.at[m] and back in self.at[m]]
        return bool(gains) and 2 * sum(g > 0 for g in gains) >= len(gains)

    def _settle(self, key: str) -> None:
        """A config whose stop waits at chance: it stops once the non-learner rule calls it a non-learner;
        its wait ends once its seeds' median leaves chance (the next rung ranks it again)."""
        values = [self.now[m] for m in self.members[key] if m in self.now]
        verdict = self.guard.settle(key, median_over_seeds(values) if values else None)
        if verdict is not None:
            evidence = self.deferred.pop(key)
            if verdict:
                self.stopped[key] = evidence

    def _judge(self, rung: int) -> None:
        ready = {k: v for k in self.members if k not in self.stopped and (v := self.values(k, rung)) is not None}
        if len(ready) < 2:
            return
        sign = 1 if self.mode == "max" else -1
        best = max(ready, key=lambda k: sign * median_over_seeds(ready[k]))
        for key, vals in ready.items():
            if key == best:
                continue
            p = rank_p(vals, ready[best], self.mode)
            if p <= self.level and not self.rising(key, rung):
                trials = [m for m in self.members[key] if rung in self.at[m]]
                evidence = Evidence("rank vs best", trials, [rung] * len(trials), p, against=self.label[best])
                if self.guard is None or self.guard.allows(key, median_over_seeds(vals)):
                    self.stopped[key] = evidence
                else:
                    self.deferred[key] = evidence  # at chance: the non-learner rule's to call
