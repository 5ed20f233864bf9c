"""Trial schedulers by name: ``asha`` (default), ``fifo``, ``median``, ``race`` (configs with repeats
raced against the best one on their seeds: race.py).

ASHA and the median rule come as thin subclasses that note each STOP they decide in a
:class:`~tune_sd.tune.stopping.records.StopRecorder`, so that ``trials.parquet`` says which of them ended a
trial (and not, say, the non-learner stopper or the trial's ``runtime``).
"""

from __future__ import annotations

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler

from tune_sd.errors import ConfigError

from tune_sd.tune.choices import SCHEDULERS, default_grace_period  # noqa: F401 (default_grace_period: its old home)
from tune_sd.tune.report_rows import expand
from tune_sd.tune.stopping.records import ended_before


class _Noted:
    """Mix-in: report each STOP of ``on_trial_result`` to the recorder under ``reason``. A trial at chance
    is stopped only once the non-learner rule calls it a non-learner (chance_guard.py): until then, or
    until it leaves chance, its stop waits."""

    reason = ""
    recorder = None
    guard = None      # a ChanceGuard, set by make_scheduler (set_search_properties drops it off avg_acc)
    deferred = None   # trials whose stop waits for the non-learner rule

    def on_trial_result(self, tune_controller, trial, result):
        # each report of the result in turn (report_rows.py), so that rungs and medians see every report
        decision = TrialScheduler.CONTINUE
        for row in expand(result):
            if self.guard is not None:
                self.guard.hear(trial.trial_id, row, planned=_planned(trial))
            decision = super().on_trial_result(tune_controller, trial, row)
            if decision == TrialScheduler.STOP and self.cuts(row) and not self._guard_allows(trial, row):
                decision = TrialScheduler.CONTINUE  # at chance: the non-learner rule's to call
            elif decision != TrialScheduler.STOP and self._deferred_due(trial, row):
                decision = TrialScheduler.STOP
            if decision == TrialScheduler.STOP:
                if self.recorder is not None and self.cuts(row):
                    self.recorder.note(trial.trial_id, self.reason)
                return decision
        return decision

    def _value(self, row):
        try:
            return float(row[self._metric])
        except (KeyError, TypeError, ValueError):
            return None

    def _guard_allows(self, trial, row) -> bool:
        value = self._value(row)
        if self.guard is None or value is None or self.guard.allows(trial.trial_id, value):
            return True
        if self.deferred is None:
            self.deferred = set()
        self.deferred.add(trial.trial_id)
        _not_stopped(self, trial)
        return False

    def _deferred_due(self, trial, row) -> bool:
        """A trial whose stop waited: due once the non-learner rule calls it a non-learner; no longer
        waiting once it left chance (the next rung ranks it again)."""
        if not self.deferred or trial.trial_id not in self.deferred:
            return False
        verdict = self.guard.settle(trial.trial_id, self._value(row))
        if verdict is not None:
            self.deferred.discard(trial.trial_id)
        return bool(verdict)

    def _guard_end(self, trial) -> None:
        if self.guard is not None:
            self.guard.end(trial.trial_id)

    def on_trial_complete(self, tune_controller, trial, result):
        self._guard_end(trial)
        return super().on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller, trial):
        self._guard_end(trial)
        return super().on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial):
        self._guard_end(trial)
        return super().on_trial_remove(tune_controller, trial)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        from tune_sd.tune.stopping.chance_guard import chance_guard

        if metric and self.guard is not None:
            self.guard = chance_guard(metric, self.guard.rule.settings, self.guard.rule.repeat)
        return super().set_search_properties(metric, mode, **spec)

    def cuts(self, result) -> bool:
        return True


class RecordedASHA(_Noted, AsyncHyperBandScheduler):
    reason = "asha"

    def cuts(self, result) -> bool:
        # ASHA also says STOP to a trial that reached max_t: that trial ran to its end
        return result.get(self._time_attr, 0) < self._max_t


class _LeanMedian:
    """Mix-in for Ray's median rule: each trial's reports kept as a :class:`~.median_curves.Curve` (times,
    running sums, best) instead of every result dict, which Ray's rule rescans at every report."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import collections

        self._results = collections.defaultdict(self._new_curve)

    def _new_curve(self):
        from tune_sd.tune.stopping.median_curves import Curve

        return Curve(self._time_attr, self._metric, self._grace_period, self._mode or "max")

    def set_search_properties(self, metric, mode, **spec) -> bool:
        ok = super().set_search_properties(metric, mode, **spec)
        for curve in self._results.values():  # none yet in a sweep: Tune sets these before the first trial
            curve.metric, curve.better = self._metric, (max if self._mode == "max" else min)
        return ok

    def _running_mean(self, trial, time: float) -> float:
        return self._results[trial].running_mean(time)

    def _best_result(self, trial):
        best = self._results[trial].best
        return float("nan") if best is None else best


class RecordedMedianStoppingRule(_Noted, _LeanMedian, MedianStoppingRule):
    reason = "median"


def _planned(trial) -> float | None:
    """A trial's planned epochs, from its config (None where it has none)."""
    epochs = (getattr(trial, "config", None) or {}).get("epochs")
    return float(epochs) if isinstance(epochs, (int, float)) and not isinstance(epochs, bool) else None


def _not_stopped(scheduler, trial) -> None:
    """The median rule keeps the trials it said STOP to and asks no more of them: one whose stop waits is
    judged again at its next report."""
    stopped = getattr(scheduler, "_stopped_trials", None)
    if isinstance(stopped, set):
        stopped.discard(trial)


class _Unit:
    """A config as Ray's scheduler sees it with repeats: one "trial" whose curve is its seeds' median."""

    def __init__(self, trial_id: str):
        self.trial_id = trial_id

    def __repr__(self) -> str:
        return self.trial_id


class _ByConfig:
    """Mix-in for a Ray scheduler (ASHA, the median rule) on a sweep with repeats: the scheduler ranks
    configs, not seeds. It is fed one curve per config, the median of its seeds at the epochs they have
    all reported (seed_pool.py); a STOP on that curve stops all the config's seeds, each at its next
    report, and the recorder writes the decision as evidence (``stop_test``, ``stop_seeds``,
    ``stop_trials``, ``stop_epochs``) into each seed's last result."""

    reason = ""
    test = ""

    def __init__(self, *args, repeat: int = 2, repeat_data: bool = False, recorder=None, nonlearner=None, **kwargs):
        super().__init__(*args, **kwargs)
        from tune_sd.tune.stopping.chance_guard import ChanceGuard
        from tune_sd.tune.stopping.seed_pool import SeedPool

        self.pool = SeedPool(repeat)
        self.repeat_data = repeat_data
        self.recorder = recorder
        self.units: dict[str, _Unit] = {}
        self.stopped: dict = {}  # config -> the Evidence its seeds stop on
        self.guard = ChanceGuard(nonlearner, repeat)  # a config at chance waits for the non-learner rule
        self.deferred: dict = {}  # config at chance -> the Evidence it will stop on

    def set_search_properties(self, metric, mode, **spec) -> bool:
        from tune_sd.tune.stopping.chance_guard import chance_guard

        if metric and self.guard is not None:
            self.guard = chance_guard(metric, self.guard.rule.settings, self.pool.repeat)
        return super().set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial):
        from tune_sd.seeds import config_key

        key = config_key(trial.config or {}, self.repeat_data)
        self.pool.add(trial.trial_id, key)
        if key not in self.units:
            self.units[key] = _Unit(f"config {len(self.units) + 1}")
            super().on_trial_add(tune_controller, self.units[key])
        if ended_before(trial):
            self._ended(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        if str(trial.trial_id) not in self.pool.config_of:
            self.on_trial_add(tune_controller, trial)
        key = self.pool.config_of[str(trial.trial_id)]
        for row in expand(result):  # each report of the result in turn (report_rows.py)
            if self.guard is not None:
                self.guard.hear(trial.trial_id, row, key, _planned(trial))
            try:
                epoch, value = float(row[self._time_attr]), float(row[self._metric])
            except (KeyError, TypeError, ValueError):
                continue
            self._judge(tune_controller, self.pool.report(trial.trial_id, epoch, value))
            if key in self.stopped:
                if self.recorder is not None:
                    self.recorder.note(trial.trial_id, self.reason, self.stopped[key].as_result())
                return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def _judge(self, tune_controller, rows) -> None:
        from tune_sd.tune.stopping.nonlearner import Evidence

        for key, epoch, median, trials in rows:
            if key in self.stopped or epoch >= getattr(self, "_max_t", float("inf")):
                continue  # at its last epoch a config has nothing left to save
            unit_row = {self._time_attr: epoch, self._metric: median}
            if super().on_trial_result(tune_controller, self.units[key], unit_row) == TrialScheduler.STOP:
                evidence = Evidence(self.test, trials, [epoch] * len(trials), None)
                if self.guard is None or self.guard.allows(key, median):
                    self.stopped[key] = evidence
                else:
                    self.deferred[key] = evidence  # at chance: the non-learner rule's to call
                    _not_stopped(self, self.units[key])
            elif key in self.deferred and (verdict := self.guard.settle(key, median)) is not None:
                # a stop that waited: made once the non-learner rule agrees; dropped once the config left chance
                evidence = self.deferred.pop(key)
                if verdict:
                    self.stopped[key] = evidence

    def _ended(self, tune_controller, trial) -> None:
        if self.guard is not None:
            self.guard.end(trial.trial_id)
        self._judge(tune_controller, self.pool.end(trial.trial_id))

    def on_trial_complete(self, tune_controller, trial, result):
        self._ended(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        self._ended(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial):
        self._ended(tune_controller, trial)


class ConfigASHA(_ByConfig, AsyncHyperBandScheduler):
    """ASHA over configs (``--scheduler asha`` with ``--repeat``): at each rung a config whose seeds'
    median is below the rung's cutoff (the top 1/eta of the configs recorded there) stops, all seeds."""

    reason = "asha"
    test = "rung cutoff"


class ConfigMedianStoppingRule(_ByConfig, _LeanMedian, MedianStoppingRule):
    """The median rule over configs (``--scheduler median`` with ``--repeat``): a config whose best seeds'
    median so far is below the median of the other configs' running means stops, all seeds."""

    reason = "median"
    test = "median of configs"


class RaceScheduler(FIFOScheduler):
    """FIFO order; at each rung a config whose seeds are shown worse than the best config's seeds stops,
    all its seeds, each at its next report (racing.Race decides; the recorder writes ``stop_reason:
    race`` and the evidence into each seed's last result). Tune does not save a scheduler's state: a
    resumed sweep races on from the rungs its seeds reach after the resume."""

    reason = "race"

    def __init__(self, rungs: list[int], repeat: int, alpha: float = 0.05, repeat_data: bool = False,
                 recorder=None, report_every: int = 0, nonlearner=None):
        super().__init__()
        from tune_sd.tune.stopping.chance_guard import ChanceGuard
        from tune_sd.tune.stopping.race import Race

        self.nonlearner = nonlearner
        self.race = Race(rungs, repeat, alpha, report_every=report_every, guard=ChanceGuard(nonlearner, repeat))
        self.repeat_data = repeat_data
        self.recorder = recorder
        self._metric = None

    def set_search_properties(self, metric, mode, **spec) -> bool:
        from tune_sd.tune.stopping.chance_guard import chance_guard

        if mode:
            self.race.mode = mode
        if metric:
            self.race.guard = chance_guard(metric, self.nonlearner, self.race.repeat)
        return super().set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial):
        from tune_sd.seeds import config_key

        config = trial.config or {}
        label = ", ".join(f"{k}={config[k]}" for k in ("variant", "rung") if k in config) or f"trial {trial.trial_id}"
        self.race.add(trial.trial_id, config_key(config, self.repeat_data), label)
        if ended_before(trial):
            self.race.end(trial.trial_id)

    def on_trial_result(self, tune_controller, trial, result):
        if str(trial.trial_id) not in self.race.config_of:
            self.on_trial_add(tune_controller, trial)
        for row in expand(result):  # each report of the result in turn (report_rows.py)
            decision = self._judge(trial, row)
            if decision == TrialScheduler.STOP:
                return decision
        return TrialScheduler.CONTINUE

    def _judge(self, trial, result: dict) -> str:
        try:
            epoch, value = float(result["epoch"]), float(result[self._metric])
        except (KeyError, TypeError, ValueError):
            return TrialScheduler.CONTINUE
        evidence = self.race.report(trial.trial_id, epoch, value, result, _planned(trial))
        if evidence is None:
            return TrialScheduler.CONTINUE
        if self.recorder is not None:
            self.recorder.note(trial.trial_id, self.reason, evidence.as_result())
        return TrialScheduler.STOP

    def _end(self, trial) -> None:
        self.race.end(trial.trial_id)
        if self.race.guard is not None:
            self.race.guard.end(trial.trial_id)

    def on_trial_complete(self, tune_controller, trial, result):
        self._end(trial)

    def on_trial_error(self, tune_controller, trial):
        self._end(trial)

    def on_trial_remove(self, tune_controller, trial):
        self._end(trial)

    def debug_string(self) -> str:
        return f"Racing configs at epochs {self.race.rungs} (rank test of seeds at {self.race.level:.3g} per rung)."


def make_scheduler(name: str, *, epochs: int, report_every: int, grace_period: int | None = None,
                   reduction_factor: float = 3, recorder=None, repeat: int = 1, repeat_data: bool = False,
                   race_alpha: float | None = None, nonlearner=None):
    """A scheduler whose time attribute is ``epoch``; metric and mode come from the TuneConfig.
    ``recorder`` (a StopRecorder) hears of every trial the scheduler stops. ``race`` needs the sweep's
    ``repeat`` (seeds per config) and takes ``race_alpha``. ``nonlearner``: the sweep's non-learner settings
    (NonLearnerSettings; None: the defaults), which the ranking rules' chance guard judges by
    (chance_guard.py)."""
    grace = grace_period or default_grace_period(epochs, report_every)
    if name == "race":
        from tune_sd.tune.stopping.race import race_plan

        rungs, alpha = race_plan(epochs=epochs, report_every=report_every, grace_period=grace_period,
                                 reduction_factor=reduction_factor, repeat=repeat, race_alpha=race_alpha)
        return RaceScheduler(rungs, int(repeat), alpha, repeat_data=repeat_data, recorder=recorder,
                             report_every=report_every, nonlearner=nonlearner)
    name = name.replace("+nonlearner", "").replace("nonlearner", "fifo")  # the stopper comes separately
    # with repeats the seeds of a config are one unit: ASHA and the median rule rank configs (seed_pool.py)
    by_config = ({"repeat": int(repeat), "repeat_data": repeat_data, "recorder": recorder, "nonlearner": nonlearner}
                 if int(repeat or 1) > 1 else None)
    if name == "asha":
        kind = ConfigASHA if by_config else RecordedASHA
        scheduler = kind(time_attr="epoch", max_t=epochs, grace_period=min(grace, epochs),
                         reduction_factor=reduction_factor, **(by_config or {}))
    elif name == "median":
        kind = ConfigMedianStoppingRule if by_config else RecordedMedianStoppingRule
        scheduler = kind(time_attr="epoch", grace_period=min(grace, epochs), min_samples_required=3,
                         **(by_config or {}))
    elif name == "fifo":
        return FIFOScheduler()
    else:
        raise ConfigError(f"scheduler: {name!r} is not allowed (allowed: {', '.join(SCHEDULERS)})")
    scheduler.recorder = recorder
    if not by_config:
        from tune_sd.tune.stopping.chance_guard import ChanceGuard

        scheduler.guard = ChanceGuard(nonlearner, 1)
    return scheduler


