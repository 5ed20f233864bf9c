"""The seeds of a config as one unit for the rank-based schedulers (ASHA, the median rule), without Ray.

With ``--repeat R`` a config runs R seeds, repeats of one experiment. ASHA and the median rule rank
trials against each other; fed the seeds one by one, they would count each seed as a config (four
votes for a config of four seeds in every rung's quantile) and cut a config's seeds apart (its slow
seed stopped, its lucky one kept), leaving configs with truncated seeds for the analysis. Instead they
see one curve per config: at each epoch that every seed of the config has reported, the median of the
seeds' metric there (equal epochs for every seed). The scheduler's decision on that curve is the
config's: its seeds stop together, each at its next report (schedulers.py).

A seed that ended before an epoch (it failed, or another stopper ended it) is left out of the median
there; one that passed an epoch unheard (restored from a checkpoint past it) too. Until each of the R
seeds has reported once nothing is known of the config, and its curve waits.
"""

from __future__ import annotations

import math

from tune_sd.seeds import median_over_seeds
from tune_sd.tune.stopping.config_seeds import ConfigSeeds


class SeedPool(ConfigSeeds):
    """``add`` a trial with its config key, ``report`` its metric at an epoch, ``end`` it when it ended:
    each returns the config rows that became complete, in epoch order, as (key, epoch, median, trials)."""

    def __init__(self, repeat: int):
        super().__init__(repeat)
        self.values: dict[str, dict[float, dict[str, float]]] = {}  # config -> epoch -> trial -> value
        self.last: dict[str, float] = {}
        self.done: dict[str, float] = {}  # config -> the last epoch of its curve handed on

    def add(self, trial_id: str, key: str) -> None:
        if self.join(trial_id, key):
            self.values.setdefault(key, {})

    def report(self, trial_id: str, epoch: float, value: float) -> list[tuple[str, float, float, list[str]]]:
        trial_id = str(trial_id)
        key = self.config_of[trial_id]
        self.reporting(trial_id)
        self.last[trial_id] = max(epoch, self.last.get(trial_id, -math.inf))
        if math.isfinite(value) and epoch > self.done.get(key, -math.inf):
            self.values[key].setdefault(epoch, {})[trial_id] = value
        return self._complete(key)

    def end(self, trial_id: str) -> list[tuple[str, float, float, list[str]]]:
        super().end(trial_id)
        key = self.config_of.get(str(trial_id))
        return self._complete(key) if key is not None else []

    def _complete(self, key: str) -> list[tuple[str, float, float, list[str]]]:
        members = self.members[key]
        if not self.complete(key):
            return []
        rows = []
        for epoch in sorted(self.values[key]):
            at = self.values[key][epoch]
            # a running seed that has not got to this epoch yet: the curve waits for it
            if any(m not in at and m not in self.ended and self.last.get(m, -math.inf) < epoch for m in members):
                break
            del self.values[key][epoch]
            self.done[key] = epoch
            if at:
                trials = [m for m in members if m in at]
                rows.append((key, epoch, median_over_seeds(at[m] for m in trials), trials))
        return rows
