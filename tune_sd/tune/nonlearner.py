"""The non-learner rule, without Ray: a trial whose smoothed accuracy stays within a margin of chance
over a window of epochs, with no significant upward trend of its per-report accuracy, is a non-learner
(see stoppers.py for the Tune stopper that applies it). A sweep's plan checks these settings before Ray
starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CHANCE = 0.5


@dataclass
class NonLearnerSettings:
    # chosen with benchmarks/early_stopping.py --sweep-params (README, "Early stopping"): no learner of
    # 12 sd-study trials x 3000 epochs stopped, every non-learner stopped, 9 of 10 synthetic learners
    # slower than those kept; margin 0.1 is the analysis' own non-learner line (peak < chance + 0.1)
    grace: int = 1500        # epochs before a trial can be stopped
    window: int = 2000       # epochs looked at
    margin: float = 0.1      # "at chance": avg_acc within 0.5 +- margin over the whole window
    confidence: float = 0.8  # an upward trend must be this significant to keep a trial at chance

    def check(self) -> "NonLearnerSettings":
        from tune_sd.errors import ConfigError

        if self.grace < 0 or self.window <= 0:
            raise ConfigError(f"nonlearner: grace must be >= 0 and window > 0 (got {self.grace}, {self.window})")
        if not 0 < self.margin < 0.5:
            raise ConfigError(f"nonlearner: margin must be in (0, 0.5) (got {self.margin})")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"nonlearner: confidence must be in [0.5, 1) (got {self.confidence})")
        return self


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
    from scipy import stats  # here: a sweep's plan (--dry-run) reads the settings, not the test

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


def nonlearner_settings(settings: dict):
    given = {k: settings.get(f"nonlearner_{k}") for k in ("grace", "window", "margin", "confidence")}
    return NonLearnerSettings(**{k: v for k, v in given.items() if v is not None})
