"""The non-learner stopper on synthetic metric streams: it stops a flat-at-chance stream and keeps
slowly and quickly rising ones."""

import numpy as np
import pytest

from tune_sd.tune.nonlearner import NonLearnerSettings, rising
from tune_sd.tune.stoppers import NonLearnerStopper


def stream(level, epochs=6000, report_every=25, avg_hor=500, n=50, seed=0):
    """Reports of a simulated run: per-epoch accuracy is the mean of n Bernoulli(level(epoch)) draws
    (2 x lat_size samples x iters steps); avg_acc its moving average, acc_report the report's mean."""
    rng = np.random.default_rng(seed)
    e = np.arange(1, epochs + 1)
    acc = rng.binomial(n, np.clip(level(e), 0, 1)) / n
    avg = np.array([acc[max(0, i - avg_hor + 1):i + 1].mean() for i in range(epochs)])
    out = []
    for end in range(report_every, epochs + 1, report_every):
        out.append({"epoch": end, "avg_acc": avg[end - 1], "acc_mean": acc[end - 1],
                    "acc_report": acc[end - report_every:end].mean()})
    return out


def first_stop(reports, settings=None):
    stopper = NonLearnerStopper(settings)
    for r in reports:
        if stopper("t", r):
            return r["epoch"]
    return None


DEFAULTS = NonLearnerSettings()


def test_the_defaults_are_the_measured_ones():
    # benchmarks/early_stopping.py --sweep-params on 12 sd-study trials x 3000 epochs (README)
    assert (DEFAULTS.grace, DEFAULTS.window, DEFAULTS.margin, DEFAULTS.confidence) == (1500, 2000, 0.1, 0.8)


@pytest.mark.parametrize("seed", range(5))
def test_stops_a_flat_at_chance_stream(seed):
    at = first_stop(stream(lambda e: 0.5 + 0 * e, seed=seed))
    assert at is not None and at >= DEFAULTS.grace  # after the grace period, not before
    assert at <= DEFAULTS.grace + 500  # soon after: a flat stream rarely passes the slope test


@pytest.mark.parametrize("seed", range(5))
def test_keeps_a_slowly_rising_stream(seed):
    # 0.5 -> 0.65 over 10 000 epochs: still near chance at the end of the grace period
    assert first_stop(stream(lambda e: 0.5 + 0.15 * e / 10000, epochs=6000, seed=seed)) is None


@pytest.mark.parametrize("seed", range(5))
def test_keeps_a_fast_learner(seed):
    assert first_stop(stream(lambda e: 0.5 + 0.3 * (1 - np.exp(-e / 300)), seed=seed)) is None


def test_a_learner_that_drops_back_to_chance_is_stopped_once_it_is_flat():
    level = lambda e: np.where(e < 1500, 0.8, 0.5)  # noqa: E731
    at = first_stop(stream(level, epochs=6000))
    assert at is not None and at > 1500 + DEFAULTS.window - 100  # once the whole window is back at chance


def test_restored_trials_forget_the_reports_they_redo():
    reports = stream(lambda e: 0.5 + 0 * e, epochs=1500)
    stopper = NonLearnerStopper()
    for r in reports[:40]:
        stopper("t", r)
    for r in reports[20:]:  # restored from a checkpoint at report 20
        stopper("t", r)
    assert [h[0] for h in stopper._history["t"]] == [r["epoch"] for r in reports]


def test_slope_test():
    x = list(range(50))
    assert rising(x, [0.5 + 0.01 * i for i in x], 0.9)
    assert not rising(x, [0.5 - 0.01 * i for i in x], 0.9)
    assert not rising(x, [0.5] * 50, 0.9)


def test_settings_are_checked():
    from tune_sd.errors import ConfigError

    for bad in (dict(margin=0.7), dict(confidence=1.2), dict(window=0)):
        with pytest.raises(ConfigError):
            NonLearnerSettings(**bad).check()
