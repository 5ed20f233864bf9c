"""The non-learner stopper: drop trials that stay at chance level and show no upward trend.

Rank-based early stopping (ASHA, the median rule) cuts the bottom of every rung, and a slow learner
sits near the bottom early on. This stopper looks at each trial on its own instead: after a grace
period it stops a trial whose smoothed accuracy (``avg_acc``) has stayed within ``margin`` of chance
(0.5) over the last ``window`` epochs *and* whose per-report accuracy (``acc_report``, the mean over
a report's epochs, independent from report to report) shows no upward trend there: the one-sided
t-test of the least-squares slope does not reach ``confidence``. The noise of per-epoch accuracy
enters through the residuals of that fit.
"""

from __future__ import annotations

import math
from collections import defaultdict

from ray.tune.stopper import Stopper

from .nonlearner import NonLearnerSettings, is_non_learner


class NonLearnerStopper(Stopper):
    """A Tune stopper; it works alone (with FIFO) or beside ASHA or the median rule.

    Each stop is noted in ``recorder`` (a :class:`~tune_sd.tune.stop_records.StopRecorder`), which
    writes ``stop_reason: nonlearner`` into the trial's last result, so that the results say why the
    trial ended early wherever they are stored.
    """

    reason = "nonlearner"

    def __init__(self, settings: NonLearnerSettings | None = None, recorder=None):
        self.settings = settings or NonLearnerSettings()
        self.recorder = recorder
        self._history: dict[str, list[tuple[float, float, float]]] = defaultdict(list)

    def __call__(self, trial_id: str, result: dict) -> bool:
        try:
            report = result["acc_report"] if "acc_report" in result else result["acc_mean"]
            point = (float(result["epoch"]), float(result["avg_acc"]), float(report))
        except (KeyError, TypeError, ValueError):
            return False
        if not all(map(math.isfinite, point)):
            return False
        history = self._history[trial_id]
        if history and point[0] <= history[-1][0]:
            # a restored trial reports again from its checkpoint: forget what it will redo
            while history and history[-1][0] >= point[0]:
                history.pop()
        history.append(point)
        if is_non_learner(history, self.settings):
            if self.recorder is not None:
                self.recorder.note(trial_id, self.reason)
            return True
        return False

    def stop_all(self) -> bool:
        return False
