"""Racing configs on their seeds (``--scheduler race``): planted configs raced against the best one, the
scheduler as Tune drives it, and the plan's refusals."""

from types import SimpleNamespace

import numpy as np
import pytest

from tune_sd.tune.stopping.race import Race, check_race, race_rungs, rank_p, smallest_p
from tune_sd.tune.stopping.schedulers import RaceScheduler, make_scheduler
from tune_sd.tune.stopping.records import StopRecorder

RUNGS = [100, 300, 900]


def run_race(configs: dict[str, list[float]], noise=0.01, seed=0, rungs=RUNGS, alpha=0.05, rise=None):
    """Each config's seeds report ``level + noise`` at every 25 epochs up to 3000, side by side (plus
    ``rise[config](epoch)`` where given). Returns {config: (epoch, evidence)} of the configs stopped."""
    rise = rise or {}
    rng = np.random.default_rng(seed)
    repeat = len(next(iter(configs.values())))
    race = Race(rungs, repeat, alpha)
    for name, levels in configs.items():
        for r in range(len(levels)):
            race.add(f"{name}-{r}", name)
    stops = {}
    for epoch in range(25, 3001, 25):
        for name, levels in configs.items():
            for r, level in enumerate(levels):
                if name in stops:
                    continue
                value = level + rng.normal(0, noise) + (rise[name](epoch) if name in rise else 0.0)
                ev = race.report(f"{name}-{r}", epoch, value)
                if ev is not None:
                    stops[name] = (epoch, ev)
    return stops


def test_a_clearly_worse_config_is_raced_out_at_the_first_rung_and_the_best_runs_on():
    stops = run_race({"best": [0.75, 0.74, 0.76, 0.75], "worse": [0.55, 0.56, 0.54, 0.55],
                      "tied": [0.75, 0.76, 0.74, 0.75]}, noise=0.0)
    assert set(stops) == {"worse"}
    epoch, ev = stops["worse"]
    assert epoch == RUNGS[0]
    assert ev.test == "rank vs best" and len(ev.trials) == 4 and ev.epochs == [RUNGS[0]] * 4
    assert ev.p == pytest.approx(1 / 70) and ev.against in ("best", "tied")


def test_a_worse_config_flat_in_noise_is_raced_out_at_a_rung_where_it_did_not_rise():
    # noise makes a flat config rise since the last look at some rungs (in about half of them): it is
    # judged again at the next rung and stopped at the first where its seeds' median change is no gain
    stopped_at = []
    for seed in range(40):
        stops = run_race({"best": [0.75, 0.74, 0.76, 0.75], "worse": [0.55, 0.56, 0.54, 0.55]}, seed=seed)
        assert set(stops) <= {"worse"}
        stopped_at.append(stops["worse"][0] if stops else None)
    assert set(stopped_at) <= {100, 300, 900, None}
    assert stopped_at.count(100) >= 10 and stopped_at.count(None) <= 10  # 1/2 and 1/8 expected


def test_a_worse_config_still_rising_is_not_raced_out_until_it_stalls():
    # a slow improver: far below the best at the first rungs, climbing by 0.1 per look; it stalls after 300
    def climbing(epoch):
        return min(0.1 * np.log(epoch / 33) / np.log(3), 0.2)

    stops = run_race({"best": [0.75, 0.74, 0.76, 0.75], "slow": [0.45, 0.46, 0.44, 0.45]}, noise=0.0,
                     rise={"slow": climbing})
    assert set(stops) == {"slow"} and stops["slow"][0] == 900  # spared at 100 and 300, stalled by 900
    rising = run_race({"best": [0.75, 0.74, 0.76, 0.75], "slow": [0.45, 0.46, 0.44, 0.45]}, noise=0.0,
                      rise={"slow": lambda e: 0.1 * np.log(e / 33) / np.log(3) / 10})
    assert rising == {}  # still rising at the last rung: it runs to the end


def test_a_tied_config_is_rarely_raced_out():
    # two configs of the same accuracy, noise larger than any gap: the Bonferroni level over 3 rungs keeps
    # the chance of stopping a given one below alpha = 0.05 (3 / 70 at most: all seeds below at some rung)
    runs = [run_race({"a": [0.7] * 4, "b": [0.7] * 4}, noise=0.05, seed=s) for s in range(300)]
    assert sum("b" in stops for stops in runs) / 300 <= 0.07
    assert sum("a" in stops for stops in runs) / 300 <= 0.07
    assert not any(len(stops) == 2 for stops in runs)  # one of them is always the best: it runs on


def test_a_worse_config_stops_only_when_all_its_seeds_are_below_the_best():
    # one seed of the worse config as good as the best: not shown worse by a rank test of 4 seeds
    stops = run_race({"best": [0.75, 0.74, 0.76, 0.75], "mixed": [0.55, 0.56, 0.54, 0.75]}, noise=0.001)
    assert stops == {}


def test_rank_test_and_what_a_number_of_seeds_can_reach():
    assert rank_p([0.5] * 4, [0.7, 0.71, 0.72, 0.73]) == pytest.approx(1 / 70)
    assert rank_p([0.7, 0.71, 0.72, 0.73], [0.5] * 4) == pytest.approx(1.0)
    assert rank_p([0.1] * 4, [0.3] * 4, mode="min") == pytest.approx(1.0)  # lower is better
    assert smallest_p(3) == pytest.approx(0.05) and smallest_p(4) == pytest.approx(1 / 70)
    assert race_rungs(3000, 111, 3) == [111, 333, 999]
    check_race(4, [111, 333, 999], 0.05)
    from tune_sd.errors import ConfigError

    with pytest.raises(ConfigError, match="--repeat 4 or more"):
        check_race(3, [111, 333, 999], 0.05)
    with pytest.raises(ConfigError, match="give --repeat R"):
        check_race(1, [111], 0.05)


from tune_sd.tune.stopping.replay import ReplayTrial as _Trial  # noqa: E402  (what the scheduler reads of a trial)


def test_the_scheduler_stops_every_seed_of_a_worse_config_and_records_why():
    rec = StopRecorder()
    sched = make_scheduler("race", epochs=3000, report_every=25, grace_period=100, reduction_factor=3,
                           recorder=rec, repeat=4)
    assert isinstance(sched, RaceScheduler) and sched.race.rungs == [100, 300, 900]
    sched.set_search_properties("avg_acc", "max")
    controller = SimpleNamespace(get_live_trials=lambda: [])
    trials = [_Trial(f"{v}{r}", {"variant": v, "disc": {"lr": lr}, "seed": 7 + r, "repeat": r})
              for v, lr in (("good", 1e-4), ("bad", 1e-9)) for r in range(4)]
    for t in trials:
        sched.on_trial_add(controller, t)
    decided = {}
    for epoch in range(25, 501, 25):
        for t in trials:
            if t.trial_id in decided:
                continue
            level = 0.75 if t.config["variant"] == "good" else 0.62  # learned, and worse
            d = sched.on_trial_result(controller, t, {"epoch": epoch, "avg_acc": level + 0.001 * t.config["repeat"]})
            if d == "STOP":
                decided[t.trial_id] = epoch
                last = {"epoch": epoch, "done": True}
                rec.on_trial_result(0, [], t, last)
                assert last["stop_reason"] == "race" and last["stop_against"] == "variant=good"
                assert last["stop_seeds"] == 4 and last["stop_epochs"] == "100,100,100,100"
                assert last["stop_p"] == pytest.approx(1 / 70)
    # the last seed of the bad config to reach the rung stops there, its siblings at their next report
    assert decided == {"bad0": 125, "bad1": 125, "bad2": 125, "bad3": 100}


def test_race_without_repeats_is_refused_before_ray_starts(tmp_path):
    import subprocess
    import sys

    from tune_helpers import write_space

    space = write_space(tmp_path, "r", {"disc": {"parameters": {"lr": {"values": [1e-3, 1e-9]}}}})
    for extra, says in (([], "give --repeat R"), (["--repeat", "3"], "--repeat 4 or more"),
                        (["--repeat", "3", "--race-alpha", "0.2"], None)):
        p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "sweep", str(space), "--scheduler", "race",
                            "--storage", str(tmp_path), "--epochs", "3000", "--dry-run", *extra], capture_output=True, text=True)
        if says is None:
            assert p.returncode == 0, p.stderr
        else:
            assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr


def test_a_trial_first_heard_of_past_a_rung_is_not_judged_there():
    # after a resume the race hears of a seed again at its checkpoint: its value then is not its value at a
    # rung it passed before
    race = Race([100, 300], 4, report_every=25)
    for r in range(4):
        race.add(f"a{r}", "a")
        race.add(f"b{r}", "b")
    for r in range(4):
        race.report(f"a{r}", 200, 0.8)
        race.report(f"b{r}", 200, 0.5)
    assert race.stopped == {} and all(race.at[f"a{r}"] == {} for r in range(4))
    for r in range(4):
        race.report(f"a{r}", 300, 0.8)
        ev = race.report(f"b{r}", 300, 0.5)
    assert ev is not None and ev.epochs == [300] * 4


def test_after_a_resume_seeds_that_had_ended_are_not_waited_for():
    # two seeds of each config had finished before the resume (Tune adds them as TERMINATED): the race
    # judges the configs on the seeds that run on (3 of 4 each: p = 1/20 at best, so a single rung at 0.05)
    sched = make_scheduler("race", epochs=3000, report_every=25, grace_period=100, reduction_factor=3,
                           repeat=4, race_alpha=0.05 * 3)
    sched.set_search_properties("avg_acc", "max")
    controller = SimpleNamespace(get_live_trials=lambda: [])
    trials = [_Trial(f"{v}{r}", {"variant": v, "disc": {"lr": lr}, "seed": 7 + r, "repeat": r})
              for v, lr in (("good", 1e-4), ("bad", 1e-9)) for r in range(4)]
    trials[0].status = trials[4].status = "TERMINATED"
    for t in trials:
        sched.on_trial_add(controller, t)
    decided = {}
    for epoch in range(25, 201, 25):
        for t in trials:
            if t.trial_id in decided or getattr(t, "status", "") == "TERMINATED":
                continue
            level = 0.75 if t.config["variant"] == "good" else 0.62  # learned, and worse
            if sched.on_trial_result(controller, t, {"epoch": epoch, "avg_acc": level + 0.001 * t.config["repeat"]}) == "STOP":
                decided[t.trial_id] = epoch
    assert sorted(decided) == ["bad1", "bad2", "bad3"]
    assert sched.race.stopped[sched.race.config_of["bad1"]].trials == ["bad1", "bad2", "bad3"]
