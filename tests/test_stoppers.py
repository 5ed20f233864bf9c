"""The non-learner stopper on synthetic metric streams: it stops a flat-at-chance stream and keeps
slowly and quickly rising ones."""

import numpy as np
import pytest

from tune_sd.tune.stopping.nonlearner import NonLearnerSettings, SeedRule, rising
from tune_sd.tune.stopping.nonlearner_stopper import NonLearnerStopper


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


DEFAULTS = NonLearnerSettings().at(None)  # the settings of a run whose planned epochs are not known


def test_the_defaults_are_the_measured_ones():
    # benchmarks/early_stopping.py --sweep-params on 12 sd-study trials x 3000 epochs (docs/early-stopping.md)
    assert (DEFAULTS.grace, DEFAULTS.window, DEFAULTS.margin, DEFAULTS.confidence) == (1500, 2000, 0.1, 0.8)
    assert NonLearnerSettings().at(3000) == DEFAULTS
    # and the long record's (tests/test_long_record.py): they grow with the run, up to 6 000 / 3 000
    scaled = {p: (s.grace, s.window) for p in (5000, 10000, 20000, 100000) for s in [NonLearnerSettings().at(p)]}
    assert scaled == {5000: (2250, 2000), 10000: (4500, 3000), 20000: (6000, 3000), 100000: (6000, 3000)}
    # what a sweep gives is kept, whatever the run's length
    assert NonLearnerSettings(grace=800).at(100000).grace == 800


def test_a_seed_that_learned_once_is_never_a_non_learner():
    # t2b of the long record: learns to 0.75 by epoch 3 500, then drops back within the margin; a learner
    # whose curve fell is the analysis' rise-then-drop, not a non-learner
    rule = SeedRule(NonLearnerSettings(), repeat=1)
    stops = [rule.report("t", (e, 0.5 + (0.2 if 2000 <= e < 2500 else 0.0), 0.5), planned=5000)
             for e in range(25, 5001, 25)]
    assert not any(stops)
    flat = SeedRule(NonLearnerSettings(), repeat=1)
    assert any(flat.report("t", (e, 0.5, 0.5), planned=5000) for e in range(25, 5001, 25))
    # a stray report past the margin before the average settled is no learning
    early = SeedRule(NonLearnerSettings(), repeat=1)
    assert any(early.report("t", (e, 0.65 if e == 50 else 0.5, 0.5), planned=5000) for e in range(25, 5001, 25))


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


def test_a_learner_that_drops_back_to_chance_runs_on():
    # the rule stops only what never learned: a curve that rose and fell is the analysis' rise-then-drop
    # (counted from the shorter of grace and window on, where the average has settled)
    level = lambda e: np.where(e < 2500, 0.8, 0.5)  # noqa: E731
    assert first_stop(stream(level, epochs=6000)) is None


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


# ------------------------------------------------------------------------------ the seeds of a config


def config_reports(levels, seeds, repeat=None, config=None, **kw):
    """Each seed's reports with its config in them, as Tune hands them to the stopper: the config of
    ``config`` (the same for all seeds), each with its own engine seed and repeat label."""
    config = config or {"disc": {"lr": 1e-4}}
    out = []
    for r, (level, seed) in enumerate(zip(levels, seeds)):
        reps = stream(level, seed=seed, **kw)
        for rep in reps:
            rep["config"] = {**config, "seed": 1000 + r, "repeat": r}
        out.append(reps)
    return out


def drive(stopper, configs: dict[str, list[list[dict]]]):
    """Feed the stopper every trial's reports report by report, the trials of all configs side by side (as a
    packed sweep runs them); a stopped trial reports no more. Returns {trial: (epoch, evidence)}."""
    stops = {}
    n = max(len(reps) for seeds in configs.values() for reps in seeds)
    for i in range(n):
        for name, seeds in configs.items():
            for r, reps in enumerate(seeds):
                tid = f"{name}-{r}"
                if tid in stops or i >= len(reps):
                    continue
                if stopper(tid, reps[i]):
                    stops[tid] = (reps[i]["epoch"], stopper.rule.stopped.get(stopper.rule.config_of[tid]))
    return stops


flat = lambda e: 0.5 + 0 * e  # noqa: E731
fast = lambda e: 0.5 + 0.3 * (1 - np.exp(-e / 300))  # noqa: E731
# a seed that starts learning late: at chance until epoch 2500, then up to 0.8
late = lambda e: np.where(e < 2500, 0.5, 0.5 + 0.3 * (1 - np.exp(-(e - 2500) / 300)))  # noqa: E731


@pytest.mark.parametrize("seed", range(3))
def test_a_slow_seed_is_kept_while_its_siblings_learn(seed):
    seeds = [10 * seed + k for k in range(4)]
    alone = drive(NonLearnerStopper(), {"c": config_reports([late, fast, fast, fast], seeds)})
    assert "c-0" in alone  # judged alone, the late seed looks like a non-learner and is cut
    together = drive(NonLearnerStopper(repeat=4), {"c": config_reports([late, fast, fast, fast], seeds)})
    assert together == {}  # judged with its siblings, it runs on (and learns after epoch 2500)


def drive_lagged(stopper, seeds: list[list[dict]], lag: int):
    """Seed 0 runs ``lag`` reports ahead of its siblings (it started first, or its results reached the
    driver first): its report i comes with their report i - lag."""
    stops = {}
    for i in range(max(len(r) for r in seeds) + lag):
        for r, reps in enumerate(seeds):
            j = i if r == 0 else i - lag
            tid = f"c-{r}"
            if tid in stops or not 0 <= j < len(reps):
                continue
            if stopper(tid, reps[j]):
                stops[tid] = reps[j]["epoch"]
    return stops


@pytest.mark.parametrize("seed", range(3))
def test_a_seed_ahead_of_its_siblings_waits_for_them(seed):
    seeds = [10 * seed + k for k in range(4)]
    reports = config_reports([late, fast, fast, fast], seeds)
    # its siblings queued behind it (they start 1600 epochs later): alone it would be cut at its grace, before
    # they show that the config learns; judged with them it runs on
    assert "c-0" in drive(NonLearnerStopper(), {"c": [reports[0]]})
    assert drive_lagged(NonLearnerStopper(repeat=4), reports, lag=64) == {}
    # a few reports ahead of siblings still short of the grace, it is judged at the epoch they have reached
    rule = NonLearnerStopper(repeat=4).rule
    still = [(e, 0.5, 0.5 + 0.01 * (-1) ** (e // 25)) for e in range(25, 6001, 25)]  # flat, no trend
    for tid in ("c-1", "c-2", "c-3"):
        for point in still[:36]:  # up to epoch 900, short of the pooled grace (945)
            assert rule.report(tid, point, "c") is None
    assert all(rule.report("c-0", point, "c") is None for point in still[:64])  # up to 1600, past its grace
    assert rule._common_epoch("c-0", "c") == 900 and "c" not in rule.stopped
    for tid in ("c-1", "c-2", "c-3"):  # they catch up, all flat: the joint test stops them together
        rule.report(tid, still[60], "c")
    assert rule.stopped["c"].test == "pooled slope"


def test_flat_seeds_apart_in_time_still_all_stop():
    for lag in (4, 64):
        stops = drive_lagged(NonLearnerStopper(repeat=4), config_reports([flat] * 4, [lag, lag + 1, lag + 2, lag + 3]),
                             lag=lag)
        assert sorted(stops) == ["c-0", "c-1", "c-2", "c-3"]


def test_a_seed_at_chance_runs_on_while_its_siblings_have_not_reported():
    # three seeds of the config never report (queued, or their processes start late): nothing is known of
    # them, so neither the joint test nor the single-seed rule stops the one that runs
    stopper = NonLearnerStopper(repeat=4)
    assert drive(stopper, {"c": config_reports([flat], [3])}) == {}


def test_four_flat_seeds_stop_together_and_earlier_than_one():
    single, joint = [], []
    for s in range(8):
        single.append(drive(NonLearnerStopper(), {"c": config_reports([flat], [100 + s])})["c-0"][0])
        stops = drive(NonLearnerStopper(repeat=4), {"c": config_reports([flat] * 4, [4 * s + k for k in range(4)])})
        assert sorted(stops) == ["c-0", "c-1", "c-2", "c-3"]
        epochs = [e for e, _ in stops.values()]
        assert max(epochs) - min(epochs) <= 25  # at the decision or the next report
        evidence = {ev.test for _, ev in stops.values()}
        assert evidence == {"pooled slope"}
        ev = next(iter(stops.values()))[1]
        assert len(ev.trials) == 4 and ev.p >= 1 - DEFAULTS.confidence
        joint.append(max(epochs))
    # k seeds see over w * k**(-1/3) epochs what one sees over w: 37 % earlier for four seeds
    assert np.median(joint) <= 0.7 * np.median(single)


def test_the_pooled_grace_keeps_configs_whose_seeds_all_rise_slowly():
    # the same false-stop rate as one seed: four seeds rising 0.15 over 10 000 epochs are kept as one is
    slow = lambda e: 0.5 + 0.15 * e / 10000  # noqa: E731
    kept_alone = sum(not drive(NonLearnerStopper(), {"c": config_reports([slow], [50 + s])}) for s in range(10))
    kept_together = sum(not drive(NonLearnerStopper(repeat=4),
                                  {"c": config_reports([slow] * 4, [60 + 4 * s + k for k in range(4)])})
                        for s in range(10))
    assert kept_together >= kept_alone - 1 and kept_together >= 8


def test_configs_are_told_apart_by_everything_but_their_seeds():
    from tune_sd.seeds import config_key

    a = {"disc": {"lr": 1e-4}, "seed": 3, "repeat": 0, "data": {"seed": 1}}
    assert config_key(a) == config_key({**a, "seed": 4, "repeat": 1})
    assert config_key(a) != config_key({**a, "disc": {"lr": 1e-3}})
    assert config_key(a) != config_key({**a, "data": {"seed": 2}})  # other input points: another config
    assert config_key(a, repeat_data=True) == config_key({**a, "data": {"seed": 2}}, repeat_data=True)


def test_a_flat_config_stops_and_a_learning_one_runs_on_side_by_side():
    stopper = NonLearnerStopper(repeat=3)
    stops = drive(stopper, {"flat": config_reports([flat] * 3, [1, 2, 3], config={"disc": {"lr": 1e-9}}),
                            "learns": config_reports([fast] * 3, [4, 5, 6], config={"disc": {"lr": 1e-3}})})
    assert sorted(stops) == ["flat-0", "flat-1", "flat-2"]


def test_pooled_slope_test_is_the_plain_one_for_one_seed():
    from scipy import stats

    from tune_sd.tune.stopping.nonlearner import slope_p

    rng = np.random.default_rng(0)
    x = np.arange(40.0)
    y = 0.5 + 0.001 * x + rng.normal(0, 0.02, 40)
    assert slope_p([(list(x), list(y))]) == pytest.approx(stats.linregress(x, y, alternative="greater").pvalue)
    # two seeds at different levels with the same rise: the common slope, not the gap between them
    two = slope_p([(list(x), list(y)), (list(x), list(y + 0.2))])
    assert two < slope_p([(list(x), list(y))])


def test_a_config_creeping_too_slowly_to_reach_the_margin_in_its_run_is_stopped():
    # four seeds rising 0.03 over 3000 epochs: a significant rise on pooled reports, but one that cannot
    # take them across chance + margin before their last planned epoch; seeds rising 0.2 over the run can
    creep = lambda e: 0.52 + 0.03 * e / 3000  # noqa: E731
    rise = lambda e: 0.5 + 0.2 * e / 3000  # noqa: E731
    planned = {"disc": {"lr": 1e-4}, "epochs": 3000}
    for s in range(3):
        seeds = [20 * s + k for k in range(4)]
        stops = drive(NonLearnerStopper(repeat=4), {"c": config_reports([creep] * 4, seeds, config=planned, epochs=3000,
                                                                        n=200)})
        assert sorted(stops) == ["c-0", "c-1", "c-2", "c-3"]
        assert {ev.test for _, ev in stops.values()} == {"short of margin"}
        # each seed alone shows its rise and runs to the end
        assert drive(NonLearnerStopper(), {"c": config_reports([creep] * 4, seeds, config=planned, epochs=3000,
                                                               n=200)}) == {}
        kept = drive(NonLearnerStopper(repeat=4), {"c": config_reports([rise] * 4, seeds, config=planned, epochs=3000,
                                                                       n=200)})
        assert kept == {}
        # without the planned epochs (a config with no end) only the slope test can stop it: it rises
        assert drive(NonLearnerStopper(repeat=4), {"c": config_reports([rise] * 4, seeds, epochs=3000, n=200)}) == {}


def test_beside_asha_a_seed_cut_early_is_not_waited_for():
    # ASHA cut one seed at epoch 200 and the recorder tells the stopper it ended: the other three stop
    # together on their pooled evidence, at the grace of three seeds
    from tune_sd.tune.stopping.records import StopRecorder

    seeds = config_reports([flat] * 4, [7, 8, 9, 10])
    rec = StopRecorder()
    stopper = NonLearnerStopper(repeat=4, recorder=rec)
    for r in seeds[3][:8]:  # its last report at epoch 200
        assert not stopper("c-3", r)
    rec.on_trial_complete(0, [], _Trial("c-3"))
    stops = drive(stopper, {"c": seeds[:3] + [[]]})
    assert sorted(stops) == ["c-0", "c-1", "c-2"]
    ev = next(iter(stops.values()))[1]
    assert ev.test == "pooled slope" and len(ev.trials) == 3
    assert max(e for e, _ in stops.values()) <= 0.8 * DEFAULTS.grace  # 1500 * 3**(-1/3) = 1040
    # not told (a seed that stopped reporting without ending): it may only be slow, and the others wait for it
    stopper = NonLearnerStopper(repeat=4)
    for r in seeds[3][:8]:
        stopper("c-3", r)
    assert drive(stopper, {"c": seeds[:3] + [[]]}) == {}


from tune_sd.tune.stopping.replay import ReplayTrial as _Trial  # noqa: E402


def test_after_a_resume_seeds_that_had_ended_count_by_their_last_result():
    # a resumed sweep: two seeds of the config had finished before the resume and will never report here
    def told(last_levels):
        stopper = NonLearnerStopper(repeat=4)
        for r, level in zip((2, 3), last_levels):
            stopper.trial_ended_before(f"c-{r}", {"disc": {"lr": 1e-4}, "seed": 1000 + r, "repeat": r},
                                       {"epoch": 6000, "avg_acc": level, "acc_report": level})
        return stopper

    two = lambda: config_reports([flat, flat], [1, 2])  # noqa: E731
    # one of them ended learned: the two flat seeds that run on are kept, as beside a learning sibling here
    assert drive(told([0.8, 0.52]), {"c": two()}) == {}
    # both ended at chance: the two that run on stop, on their own pooled evidence
    stops = drive(told([0.52, 0.49]), {"c": two()})
    assert sorted(stops) == ["c-0", "c-1"]
    assert {ev.test for _, ev in stops.values()} <= {"pooled slope", "slope"}
    # not told of them, the seeds that run would wait for them to the end
    assert drive(NonLearnerStopper(repeat=4), {"c": two()}) == {}


def test_the_recorder_tells_the_stopper_of_trials_that_ended_before_a_resume():
    from tune_sd.tune.stopping.records import StopRecorder

    class Restored:
        def __init__(self, trial_id, status, last):
            self.trial_id, self.status, self.last_result = trial_id, status, last
            self.config = {"disc": {"lr": 1e-4}, "seed": 7, "repeat": 0}

    rec = StopRecorder()
    stopper = NonLearnerStopper(repeat=2, recorder=rec)
    trials = [Restored("a", "TERMINATED", {"epoch": 3000, "avg_acc": 0.81, "acc_report": 0.8}),
              Restored("b", "ERROR", {}), Restored("c", "PENDING", {})]
    rec.on_step_begin(0, trials)
    rec.on_step_begin(1, trials + [Restored("d", "TERMINATED", {})])  # looked once, at the first step
    assert stopper.rule.ended == {"a", "b"} and stopper.rule.history["a"] == [(3000.0, 0.81, 0.8)]
    assert stopper.rule.history["b"] == [] and stopper.rule.learning("a")


def test_a_learning_trial_leaves_only_its_last_report_in_the_rule():
    # a 100 000-epoch run reports 4 000 times: the rule keeps what it may judge, a flat trial's window, and
    # of a trial that learned (never judged again) only its last report
    learner = stream(lambda e: np.minimum(0.5 + e / 4000, 0.8), epochs=20_000)
    flat = stream(lambda e: 0.5 + 0 * e, epochs=1_200)
    stopper = NonLearnerStopper()
    for r in learner:
        stopper("learns", r)
    for r in flat:
        stopper("flat", r)
    assert stopper._history["learns"] == [(learner[-1]["epoch"], learner[-1]["avg_acc"], learner[-1]["acc_report"])]
    assert stopper.rule.learning("learns") and len(stopper._history["flat"]) == len(flat)
