"""The non-learner stopper: drop trials that stay at chance level and show no upward trend.

Rank-based early stopping (ASHA, the median rule) cuts the bottom of every rung, and a slow learner
sits near the bottom early on. This stopper looks at each trial on its own instead: after a grace
period it stops a trial whose smoothed accuracy (``avg_acc``) has stayed within ``margin`` of chance
(0.5) over the last ``window`` epochs *and* whose per-report accuracy (``acc_report``, the mean over
a report's epochs, independent from report to report) shows no upward trend there: the one-sided
t-test of the least-squares slope does not reach ``confidence``. The noise of per-epoch accuracy
enters through the residuals of that fit.

With ``--repeat`` it judges the seeds of a config together (nonlearner.SeedRule): an all-flat config
stops, all its seeds, on their pooled evidence, and no seed stops while a sibling learns.
"""

from __future__ import annotations


from ray.tune.stopper import Stopper

from tune_sd.seeds import config_key
from tune_sd.tune.stopping.nonlearner import NonLearnerSettings, SeedRule, report_point as _point
from tune_sd.tune.report_rows import expand


class NonLearnerStopper(Stopper):
    """A Tune stopper; it works alone (with FIFO) or beside ASHA or the median rule.

    Each stop is noted in ``recorder`` (a :class:`~tune_sd.tune.stopping.records.StopRecorder`), which
    writes ``stop_reason: nonlearner`` and the evidence (``stop_test``, ``stop_seeds``, ``stop_trials``,
    ``stop_epochs``, ``stop_p``) into the trial's last result, so that the results say why the trial
    ended early wherever they are stored. ``repeat`` is the sweep's seeds per config (``--repeat``); a
    trial's config is read from the ``config`` of its results, without the seeds (and without
    ``data.seed`` when ``repeat_data``).
    """

    reason = "nonlearner"

    def __init__(self, settings: NonLearnerSettings | None = None, recorder=None, repeat: int = 1,
                 repeat_data: bool = False):
        self.settings = settings or NonLearnerSettings()
        self.recorder = recorder
        self.repeat_data = repeat_data
        self.rule = SeedRule(self.settings, repeat)
        if recorder is not None and hasattr(recorder, "watch"):
            recorder.watch(self)  # it tells the rule which trials ended

    def __call__(self, trial_id: str, result: dict) -> bool:
        """Stop the trial? Each report of the result in turn (report_rows.py): the first that decides, stops."""
        return any(self._judge(trial_id, row) for row in expand(result))

    def _judge(self, trial_id: str, result: dict) -> bool:
        point = _point(result)
        if point is None:
            return False
        config = result.get("config")
        planned = config.get("epochs") if isinstance(config, dict) else None
        evidence = self.rule.report(trial_id, point, self._key(config),
                                    planned if isinstance(planned, (int, float)) and not isinstance(planned, bool) else None)
        if evidence is None:
            return False
        if self.recorder is not None:
            self.recorder.note(trial_id, self.reason, evidence.as_result())
        return True

    def _key(self, config) -> str | None:
        return config_key(config, self.repeat_data) if isinstance(config, dict) else None

    def trial_ended(self, trial_id: str) -> None:
        self.rule.end(trial_id)

    def trial_ended_before(self, trial_id: str, config: dict | None, last_result: dict | None) -> None:
        """A trial that had ended before a resume: its config's seeds are judged knowing it (its last result)."""
        self.rule.ended_before(trial_id, _point(last_result or {}), self._key(config))

    @property
    def _history(self):
        return self.rule.history

    def stop_all(self) -> bool:
        return False

