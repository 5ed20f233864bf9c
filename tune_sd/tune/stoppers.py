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
from scipy import stats

from .options import NonLearnerSettings

CHANCE = 0.5


def rising(epochs: list[float], values: list[float], confidence: float) -> bool:
    """One-sided test of a positive least-squares slope of values over epochs."""
    n = len(values)
    if n < 3:
        return True  # too few points to call it flat
    mx, my = sum(epochs) / n, sum(values) / n
    sxx = sum((x - mx) ** 2 for x in epochs)
    if sxx == 0:
        return True
    slope = sum((x - mx) * (y - my) for x, y in zip(epochs, values)) / sxx
    resid = [y - my - slope * (x - mx) for x, y in zip(epochs, values)]
    s2 = sum(r * r for r in resid) / (n - 2)
    if s2 == 0:
        return slope > 0
    t = slope / math.sqrt(s2 / sxx)
    return t > stats.t.ppf(confidence, n - 2)


def is_non_learner(history: list[tuple[float, float, float]], s: NonLearnerSettings) -> bool:
    """history: (epoch, avg_acc, acc_report) per report, in order."""
    if not history or history[-1][0] < s.grace:
        return False
    last = history[-1][0]
    window = [h for h in history if h[0] > last - s.window]
    if len(window) < 3:
        return False
    if max(h[1] for h in window) >= CHANCE + s.margin or min(h[1] for h in window) <= CHANCE - s.margin:
        return False  # learned something (a critic reliably wrong has learned too: it is inverted)
    return not rising([h[0] for h in window], [h[2] for h in window], s.confidence)


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
