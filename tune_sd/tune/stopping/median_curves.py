"""What Ray's median stopping rule keeps of each trial, kept lean for long runs, without Ray.

Ray's ``MedianStoppingRule`` appends every result dict a trial reports to a list and, at each report,
recomputes every other trial's running mean by filtering its whole list (and the trial's best by
scanning its own): time and memory grow with the square of the reports. A sweep feeds the rule every
report (report_rows.py), so at the notebook's horizon (4 000 reports per 100 000-epoch trial) the
driver would hold each trial's every result and spend its time in these scans (a replay of the median
rule over the 40 trials of tests/data/long_record.parquet took minutes). :class:`Curve` keeps the
times, the running sums of the metric from the grace period on and the best value, and answers the
rule's three questions (the last time, the running mean up to a time, the best) in O(log n) or O(1).
"""

from __future__ import annotations

import bisect
import math


class Curve:
    """One trial's reports as the median rule reads them. ``append`` a result; ``last`` is what Ray's
    rule reads of ``results[-1]`` (a dict of the time attribute); :meth:`running_mean` and :attr:`best`
    replace its scans. A report at or before an earlier one's time (a trial restored from a checkpoint
    within the sweep) replaces the reports it will redo."""

    __slots__ = ("time_attr", "metric", "grace", "better", "times", "sums", "best", "_last")

    def __init__(self, time_attr: str, metric: str, grace: float, mode: str):
        self.time_attr, self.metric, self.grace = time_attr, metric, float(grace)
        self.better = max if mode == "max" else min
        self.times: list[float] = []   # the times of the reports from the grace period on
        self.sums: list[float] = []    # the running sum of the metric over those reports
        self.best = None
        self._last = None

    def append(self, result: dict) -> None:
        try:
            time = float(result[self.time_attr])
        except (KeyError, TypeError, ValueError):
            return  # a result without its time (Ray's rule would keep it and never count it)
        if self._last is not None and time <= self._last[self.time_attr]:
            cut = bisect.bisect_left(self.times, time)
            del self.times[cut:], self.sums[cut:]
        self._last = {self.time_attr: time}
        value = result.get(self.metric)
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if math.isfinite(value):
            self.best = value if self.best is None else self.better(self.best, value)
        if time >= self.grace:
            self.times.append(time)
            self.sums.append((self.sums[-1] if self.sums else 0.0) + value)

    def __getitem__(self, index):
        if index != -1 or self._last is None:
            raise IndexError("a median rule's curve keeps only its last report")
        return self._last

    def __len__(self) -> int:
        return 0 if self._last is None else 1

    def running_mean(self, time: float) -> float:
        """The mean of the metric over the reports from the grace period up to ``time`` (nan: none;
        a non-finite value makes every mean after it nan, as Ray's mean of the list does)."""
        n = bisect.bisect_right(self.times, time)
        return self.sums[n - 1] / n if n else math.nan
