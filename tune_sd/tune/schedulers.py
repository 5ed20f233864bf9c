"""Trial schedulers by name: ``asha`` (default), ``fifo``, ``median``.

ASHA and the median rule come as thin subclasses that note each STOP they decide in a
:class:`~tune_sd.tune.stop_records.StopRecorder`, so that ``trials.parquet`` says which of them ended a
trial (and not, say, the non-learner stopper or the trial's ``runtime``).
"""

from __future__ import annotations

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler

from tune_sd.errors import ConfigError

from .choices import SCHEDULERS


def default_grace_period(epochs: int, report_every: int) -> int:
    """Epochs before a trial can first be stopped: a 27th of the run (three ASHA rungs below the end),
    never less than four reports, so that avg_acc has settled a little."""
    return max(4 * report_every, epochs // 27)


class _Noted:
    """Mix-in: report each STOP of ``on_trial_result`` to the recorder under ``reason``."""

    reason = ""
    recorder = None

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and self.recorder is not None and self.cuts(result):
            self.recorder.note(trial.trial_id, self.reason)
        return decision

    def cuts(self, result) -> bool:
        return True


class RecordedASHA(_Noted, AsyncHyperBandScheduler):
    reason = "asha"

    def cuts(self, result) -> bool:
        # ASHA also says STOP to a trial that reached max_t: that trial ran to its end
        return result.get(self._time_attr, 0) < self._max_t


class RecordedMedianStoppingRule(_Noted, MedianStoppingRule):
    reason = "median"


def make_scheduler(name: str, *, epochs: int, report_every: int, grace_period: int | None = None,
                   reduction_factor: float = 3, recorder=None):
    """A scheduler whose time attribute is ``epoch``; metric and mode come from the TuneConfig.
    ``recorder`` (a StopRecorder) hears of every trial the scheduler stops."""
    grace = grace_period or default_grace_period(epochs, report_every)
    name = name.replace("+nonlearner", "").replace("nonlearner", "fifo")  # the stopper comes separately
    if name == "asha":
        scheduler = RecordedASHA(time_attr="epoch", max_t=epochs, grace_period=min(grace, epochs),
                                 reduction_factor=reduction_factor)
    elif name == "median":
        scheduler = RecordedMedianStoppingRule(time_attr="epoch", grace_period=min(grace, epochs),
                                               min_samples_required=3)
    elif name == "fifo":
        return FIFOScheduler()
    else:
        raise ConfigError(f"scheduler: {name!r} is not allowed (allowed: {', '.join(SCHEDULERS)})")
    scheduler.recorder = recorder
    return scheduler


def uses_nonlearner(name: str) -> bool:
    return "nonlearner" in name
