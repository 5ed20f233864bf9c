"""Trial schedulers by name: ``asha`` (default), ``fifo``, ``median``."""

from __future__ import annotations

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, MedianStoppingRule

from tune_sd.errors import ConfigError

SCHEDULERS = ("asha", "fifo", "median", "nonlearner", "asha+nonlearner", "median+nonlearner")


def default_grace_period(epochs: int, report_every: int) -> int:
    """Epochs before a trial can first be stopped: a 27th of the run (three ASHA rungs below the end),
    never less than four reports, so that avg_acc has settled a little."""
    return max(4 * report_every, epochs // 27)


def make_scheduler(name: str, *, epochs: int, report_every: int, grace_period: int | None = None,
                   reduction_factor: float = 3):
    """A scheduler whose time attribute is ``epoch``; metric and mode come from the TuneConfig."""
    grace = grace_period or default_grace_period(epochs, report_every)
    name = name.replace("+nonlearner", "").replace("nonlearner", "fifo")  # the stopper comes separately
    if name == "asha":
        return AsyncHyperBandScheduler(time_attr="epoch", max_t=epochs, grace_period=min(grace, epochs),
                                       reduction_factor=reduction_factor)
    if name == "median":
        return MedianStoppingRule(time_attr="epoch", grace_period=min(grace, epochs), min_samples_required=3)
    if name == "fifo":
        return FIFOScheduler()
    raise ConfigError(f"scheduler: {name!r} is not allowed (allowed: {', '.join(SCHEDULERS)})")


def uses_nonlearner(name: str) -> bool:
    return "nonlearner" in name
