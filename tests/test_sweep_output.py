"""What a sweep shows: its terminal (our progress lines; Ray's table only with --verbose) and its
TensorBoard (scalars stepped by epoch, no Ray bookkeeping, an HParams session per trial)."""

import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from tune_helpers import BASE

# the lines Ray prints that are not so for a sweep of ours (issue 12, item 10)
MISLEADING = ("Using FIFO scheduling algorithm", "Result logdir", "Token authentication", "deprecated",
              "/tmp/ray/session", "== Status ==")
RAY_AT_CTRL_C = ("Stop signal received", "Resume experiment with", "Tuner.restore", "Failed to fetch metrics")
BOOKKEEPING = ("done", "should_checkpoint", "iterations_since_restore", "training_iteration", "time_this_iter_s",
               "time_since_restore", "time_total_s", "timestamp", "pid", "epoch")
PROGRESS = re.compile(r"^\[\d+:\d\d\] (\d+ running, )?.*\d+ done.* of 2 \| best avg_acc [0-9.]+ \(trial \w+\)", re.M)


def tune_sd(*args, timeout=600):
    env = {**os.environ, "TUNE_SD_PROGRESS_EVERY": "0"}  # a line per report: the sweep is short
    return subprocess.run([sys.executable, "-m", "tune_sd.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def write_space(folder, epochs=40):
    """Two trials, a swept lr and a named axis (variants), the non-learner stopper (whose FIFO Ray names)."""
    tree = {"method": "random", "parameters": {"disc": {"parameters": {"lr": {"values": [1e-4, 1e-3]}}}},
            "variants": {"narrow": {}, "wide": {"disc": {"hid_size": 48}}},
            "base": {**BASE, "epochs": epochs, "figure_every": 1},
            "tune": {"scheduler": "nonlearner", "num_samples": 2}}
    path = folder / "out.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("output")
    p = tune_sd("sweep", str(write_space(root)), "--storage", str(root / "store"), "--name", "out")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return SimpleNamespace(exp=root / "store" / "out", text=p.stdout + p.stderr)


@pytest.mark.slow
def test_the_terminal_shows_our_progress_and_nothing_misleading(swept):
    text = swept.text
    for line in MISLEADING:
        assert line not in text, line
    # the header says which scheduler and stopper run, and where the results go
    assert "early stopping: FIFO (no rank-based early stopping) + the non-learner stopper (grace 1500" in text
    assert "it stops none: trials end at epoch 40" in text
    assert f"results: {swept.exp} (TensorBoard: tensorboard --logdir {swept.exp})" in text
    # a progress line per report, then the last one
    assert len(PROGRESS.findall(text)) >= 2, text
    assert re.search(r"epochs/s \| ~\d+s left", text), text
    assert re.search(r"^\[\d+:\d\d\] finished: 2 done of 2 \| best avg_acc", text, re.M), text


@pytest.mark.slow
def test_tensorboard_steps_by_epoch_without_bookkeeping_and_with_hparams(swept):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = pd.read_parquet(swept.exp / "curves.parquet")
    trials = pd.read_parquet(swept.exp / "trials.parquet").set_index("trial_id")
    assert len(trials) == 2
    for trial_id, rows in curves.groupby("trial_id"):
        acc = EventAccumulator(str(swept.exp / f"trial_{trial_id}"), size_guidance={"scalars": 0, "images": 0})
        acc.Reload()
        tags = acc.Tags()["scalars"]
        for key in BOOKKEEPING:
            assert f"ray/tune/{key}" not in tags, key
        assert {"ray/tune/avg_acc", "ray/tune/acc", "ray/tune/loss_real", "hparams/final_avg_acc",
                "hparams/best_avg_acc"} <= set(tags)
        epochs = sorted(rows.epoch)
        assert epochs == [20, 40]
        for tag in tags:  # every scalar is stepped by epoch, as the figures are
            assert [e.step for e in acc.Scalars(tag)] == epochs, tag
        assert [e.step for e in acc.Images("samples/real_vs_fake")] == epochs
        assert [e.value for e in acc.Scalars("ray/tune/avg_acc")] == pytest.approx(list(rows.sort_values("epoch").avg_acc))

    # the HParams dashboard, as TensorBoard's own plugin backend computes it: a session per trial with
    # its swept values and its final and best avg_acc
    groups = hparams_session_groups(swept.exp)
    assert set(groups) == {f"trial_{t}" for t in trials.index}
    for name, (hparams, metrics) in groups.items():
        trial = trials.loc[name.removeprefix("trial_")]
        assert hparams["disc.lr"] == pytest.approx(trial["cfg.disc.lr"])
        assert hparams["variant"] == trial["variant"] and "seed" in hparams
        assert metrics["hparams/final_avg_acc"] == pytest.approx(trial.final_avg_acc, rel=1e-6)
        assert metrics["hparams/best_avg_acc"] == pytest.approx(trial.best_avg_acc, rel=1e-6)


def hparams_session_groups(logdir):
    """{session group: ({hparam: value}, {metric tag: value})} as TensorBoard's HParams plugin lists them."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    tb = base_plugin.TBContext(logdir=str(logdir), multiplexer=mux,
                               data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir)))
    request = api_pb2.ListSessionGroupsRequest(
        allowed_statuses=[api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING,
                          api_pb2.STATUS_UNKNOWN], start_index=0, slice_size=100)
    response = list_session_groups.Handler(context.RequestContext(), backend_context.Context(tb), "", request).run()
    out = {}
    for g in response.session_groups:
        hparams = {k: v.number_value if v.HasField("number_value") else v.string_value for k, v in g.hparams.items()}
        out[g.name] = (hparams, {m.name.tag: m.value for m in g.metric_values})
    return out


@pytest.mark.slow
def test_verbose_brings_back_rays_table_told_right(tmp_path):
    p = tune_sd("sweep", str(write_space(tmp_path, epochs=20)), "--storage", str(tmp_path / "store"),
                "--name", "loud", "--num-samples", "1", "--verbose")
    assert p.returncode == 0, p.stderr[-3000:]
    exp = tmp_path / "store" / "loud"
    assert "== Status ==" in p.stdout and "Trial name" in p.stdout
    assert f"Result logdir: {exp}\n" in p.stdout and "/tmp/ray/session" not in p.stdout
    assert "Using FIFO scheduling algorithm" not in p.stdout
    assert "Scheduler: FIFO (no rank-based early stopping) + the non-learner stopper" in p.stdout
    assert "finished: 1 done of 1" in p.stderr


# ------------------------------------------------------------------------------ the progress line's counts


def trial(tid, status="RUNNING", epochs=100):
    return SimpleNamespace(trial_id=tid, status=status, config={"epochs": epochs}, last_result={},
                           metric_analysis={})


def test_progress_tells_done_stopped_errored_and_an_interrupted_end(capsys):
    from tune_sd.tune.progress import SweepProgress

    p = SweepProgress(epochs=100, every_s=3600)
    p.setup(total_num_samples=5)
    a, b, c, d = trial("a"), trial("b"), trial("c"), trial("d")
    trials = [a, b, c, d]
    for t in trials:
        p.on_trial_start(0, trials, t)
    p.on_trial_result(0, trials, a, {"epoch": 100, "avg_acc": 0.8, "done": True})
    p.on_trial_result(0, trials, b, {"epoch": 40, "avg_acc": 0.9})
    p.on_trial_result(0, trials, c, {"epoch": 20, "avg_acc": float("nan"), "error": "loss is NaN", "done": True})
    p.on_trial_result(0, trials, d, {"epoch": 60, "avg_acc": 0.55})
    a.status = b.status = c.status = "TERMINATED"
    for t in (a, b, c):
        p.on_trial_complete(0, trials, t)
    assert p.counts(trials) == {"running": 1, "pending": 0, "unfinished": 0, "stopped": 1, "done": 1, "errored": 1}
    assert p.best["avg_acc"] == (0.9, "b")
    # time left if nothing else stops early: d's 40 epochs and a trial not created yet
    assert p._remaining(trials, 5) == 40 + 100
    # interrupted: Tune stops what still runs (it then reads TERMINATED); the end says so
    p.on_step_end(0, trials)
    d.status = "TERMINATED"
    p.on_experiment_end(trials)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "interrupted: 2 unfinished, 1 stopped, 1 done, 1 errored of 5" in last, last
    assert "best avg_acc 0.9 (trial b)" in last


@pytest.mark.slow
def test_an_interrupted_sweep_says_so_and_its_resume_shows_our_progress(tmp_path):
    import signal
    import time

    space = tmp_path / "cut.yaml"
    space.write_text(yaml.safe_dump({
        "method": "grid", "parameters": {"disc": {"parameters": {"lr": {"values": [1e-3]}}}},
        "base": {**BASE, "epochs": 600, "checkpoint_every": 1, "figure_every": 0},
        "tune": {"scheduler": "asha", "num_samples": 1}}))
    store = tmp_path / "store"
    env = {**os.environ, "TUNE_SD_PROGRESS_EVERY": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "tune_sd.cli", "sweep", str(space), "--storage", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    exp = store / "cut"
    deadline = time.time() + 240
    while not list(exp.glob("trial_*/checkpoint_*")):
        assert proc.poll() is None and time.time() < deadline, "no checkpoint before the sweep ended"
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves the experiment and returns
    out, _ = proc.communicate(timeout=240)
    assert re.search(r"^\[\d+:\d\d\] interrupted: 1 unfinished, 0 done of 1 \| best avg_acc", out, re.M), out[-3000:]
    assert "finished:" not in out
    assert f"continue it with: tune-sd resume cut --storage {store}" in out
    # exit 130, as an interrupted `tune-sd train`; only our lines (Tune's own at Ctrl-C are left out)
    assert proc.returncode == 130, out[-3000:]
    for line in RAY_AT_CTRL_C:
        assert line not in out, line

    p = tune_sd("resume", "cut", "--storage", str(store))
    assert p.returncode == 0, p.stderr[-3000:]
    text = p.stdout + p.stderr
    for line in MISLEADING:
        assert line not in text, line
    assert "resuming sweep cut:" in text and "early stopping: ASHA (grace 80 epochs, reduction factor 3)" in text
    assert re.search(r"^\[\d+:\d\d\] 1 running, 0 done of 1 \| best avg_acc", text, re.M), text
    assert re.search(r"^\[\d+:\d\d\] finished: 1 done of 1", text, re.M), text


def test_time_left_is_the_mean_of_each_trials_own_pace_and_the_sweeps(monkeypatch):
    """Four small critics at 100 epochs/s beside four large ones at 10. At its own pace in its own
    place, each large one ends in 99 s (990 epochs at 10/s: a trial holds its cores, and the small ones'
    ending frees theirs for nothing). At the sweep's pace, the work left (each epoch weighted by the
    seconds it took its trial) over the work done per second: 54 s (the large ones get the freed cores).
    The estimate weighs them 0.7 to 0.3."""
    from tune_sd.tune import progress as progress_mod

    def weighed(own, sweep):
        return 0.7 * own + 0.3 * sweep

    assert progress_mod.OWN_PACE_WEIGHT == 0.7
    clock = [0.0]
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: clock[0])
    p = progress_mod.SweepProgress(epochs=1000, every_s=3600)
    p.setup(total_num_samples=8)
    trials = [trial(f"s{i}", epochs=1000) for i in range(4)] + [trial(f"b{i}", epochs=1000) for i in range(4)]
    for t in trials:
        p.on_trial_start(0, trials, t)
    for t in trials:
        p.on_trial_result(0, trials, t, {"epoch": 0})
    clock[0] = 1.0
    for t in trials:
        p.on_trial_result(0, trials, t, {"epoch": 100 if t.trial_id.startswith("s") else 10})
    assert p.trial_rate("s0") == 100 and p.trial_rate("b0") == 10
    assert p.seconds_left(trials, 8) == pytest.approx(weighed(99, 54))
    assert p.line(trials).endswith("| 440 epochs/s | ~1m26s left"), p.line(trials)
    # trials still to come cost what the trials measured so far cost on average (0.055 s an epoch): at
    # their own pace, four take the small ones' places at 9 s and end at 64, four more then end at 119;
    # at the sweep's pace (the work of 8 epochs per second) they add 8 * 55 s / 8
    assert p.seconds_left(trials, 16) == pytest.approx(weighed(119, 54 + 8 * 1000 * 0.055 / 8))
    # ... or what their config's other seeds cost (a config's seeds differ in seed, data.seed, repeat)
    seeds = [SimpleNamespace(**{**vars(trial(f"r{i}", status="PENDING", epochs=1000)),
                                "config": {"epochs": 1000, "disc": {"lr": 0.1}, "seed": i, "repeat": i,
                                           "data": {"seed": i}}})
             for i in range(2)]
    p.on_trial_start(0, trials + seeds, seeds[0])
    p.on_trial_result(0, trials + seeds, seeds[0], {"epoch": 0})
    clock[0] = 2.0
    p.on_trial_result(0, trials + seeds, seeds[0], {"epoch": 1})
    assert p.trial_cost("r0") == 1.0 and p.cost_kind(seeds[0]) == p.cost_kind(seeds[1]) != p.cost_kind(trials[0])
    # own pace: a second after their last reports the small ones have 8 s left, the large ones 98; the
    # two waiting seeds (999 and 1000 epochs at r0's 1 s) take the first places to free
    own = 8 + 1000 * 1.0
    done = 4 * 100 * 0.01 + 4 * 10 * 0.1 + 1.0
    left = 4 * 900 * 0.01 + 4 * 990 * 0.1 + 999 * 1.0 + 1000 * 1.0  # r1 not run yet: at r0's cost
    assert p.seconds_left(trials + seeds, 10) == pytest.approx(weighed(own, 2.0 * left / done))


def _simulate(costs, pack, places, cores, epochs, report_s=5.0, step_s=1.0, configs=None, plan=None, slower=1.0,
              told=True, per_member=0.0):
    """A sweep as Ray runs it: the trials, in order, packed ``pack`` at a time into populations; at most
    ``places`` populations run at once (each holds a core) and a waiting one takes the first place to
    free. A population's members train together, an epoch costing the sum of theirs (CPU-seconds);
    with more places than ``cores`` (other work on the machine) the running populations share the
    cores equally. With ``configs`` and a ``plan`` (packing.plan.PopulationCosts) the trials are those
    configs, a config's trials pack by the plan's members, and a population's epoch costs ``slower`` times
    what the plan estimates for it, plus ``per_member`` seconds for each member.
    Results carry the population as the executors report it; the progress line is told the plan unless
    ``told`` is false. Returns [(epochs done / all epochs,
    estimated seconds left, true seconds left)] at each progress line."""
    from tune_sd.tune import progress as progress_mod

    clock = [0.0]
    real = progress_mod.time.monotonic
    progress_mod.time.monotonic = lambda: clock[0]
    try:
        p = progress_mod.SweepProgress(epochs=epochs, every_s=1e9, costs=plan if told else None)
        n = len(configs) if configs is not None else len(costs)
        p.setup(total_num_samples=n)
        trials = [trial(f"t{i}", status="PENDING", epochs=epochs) for i in range(n)]
        if configs is None:
            for t, c in zip(trials, costs):
                t.config = {"epochs": epochs, "cost": c}  # a config per cost: its seeds cost alike
            pops = [list(range(i, min(i + pack, n))) for i in range(0, n, pack)]

            def pop_cost(pop):
                return sum(costs[i] for i in pop)
        else:
            for t, c in zip(trials, configs):
                t.config = c
            pops, i = [], 0
            while i < n:  # a config's trials in a row, by the plan's members
                kind = [j for j in range(i, n) if configs[j]["disc"] == configs[i]["disc"]]
                size = plan.members(configs[i])
                pops += [kind[k:k + size] for k in range(0, len(kind), size)]
                i = kind[-1] + 1

            def pop_cost(pop):
                return slower * plan.epoch_ms(configs[pop[0]], len(pop)) / 1000 + per_member * len(pop)
        done = [0.0] * n
        estimates, next_report, running = [], {}, []
        while any(t.status != "TERMINATED" for t in trials):
            while len(running) < places and any(trials[pop[0]].status == "PENDING" for pop in pops):
                pop = next(pop for pop in pops if trials[pop[0]].status == "PENDING")
                running.append(pop)
                for i in pop:
                    trials[i].status = "RUNNING"
                    p.on_trial_start(0, trials, trials[i])
                    next_report[i] = clock[0] + report_s
            share = min(1.0, cores / len(running))
            clock[0] += step_s
            for pop in list(running):
                step = share * step_s / pop_cost(pop)
                for i in pop:
                    done[i] = min(epochs, done[i] + step)
                    if clock[0] >= next_report[i] or done[i] >= epochs:
                        next_report[i] = clock[0] + report_s
                        p.on_trial_result(0, trials, trials[i], {"epoch": int(done[i]), "pack_members": len(pop),
                                                                 "pack_executor": f"executor-{pops.index(pop)}"})
                        left = p.seconds_left(trials, len(trials))
                        if left is not None:
                            estimates.append((sum(done) / (epochs * n), left, clock[0]))
                if all(done[i] >= epochs for i in pop):
                    running.remove(pop)
                    for i in pop:
                        trials[i].status = "TERMINATED"
                        p.on_trial_complete(0, trials, trials[i])
        return [(f, left, clock[0] - at) for f, left, at in estimates]
    finally:
        progress_mod.time.monotonic = real


def _worst(estimates, start=0.1):
    """The largest error of the estimates once a tenth (``start``) is done, until the last few percent
    (where any error is a large share)."""
    whole = estimates[0][2]  # the sweep's length from its first estimate on
    judged = [(f, left, truth) for f, left, truth in estimates if start <= f and truth > 0.05 * whole]
    assert judged
    return max(abs(left - truth) / truth for _, left, truth in judged)


@pytest.mark.parametrize("costs, pack, places, cores", [
    ([1.0] * 12, 1, 2, 2),                                           # twelve alike, two at a time
    ([1.0] * 4 + [1.5] * 4 + [1.0] * 4 + [1.5] * 4, 4, 2, 2),         # two configs' further seeds queued
    ([1.0, 4.0, 2.0, 3.0, 1.5] * 4, 10, 2, 2),                       # two mixed populations at once
    ([1.0, 0.5] * 2, 2, 2, 2),                                       # the soak: two pairs, one ends first
    ([1.0, 4.0, 2.0, 3.0] * 2, 2, 4, 2),                             # four populations on two busy cores
])
def test_time_left_is_within_a_quarter_of_the_truth_once_a_tenth_is_done(costs, pack, places, cores):
    """Wherever what an epoch costs can be known (the configs run, or their seeds ran), on a quiet machine
    and on a shared one. (A config that has not run yet costs what the measured ones did: no estimate
    can know better.)"""
    worst = _worst(_simulate(costs, pack, places, cores, epochs=1000))
    assert worst <= 0.25, worst


def test_time_left_packs_the_trials_to_come_as_the_plan_does_and_costs_critics_not_run_yet():
    """The trend examples' order: small critics packed by 4 run first, large ones alone last, each epoch
    of a large one 10-20 times a small one's. The places are populations (two here, on two cores), not
    trials, and a config not run yet costs the engine's estimate for its critic and population, scaled
    by what the measured ones cost against theirs (here 3 times: a slower machine). Without
    the plan, the estimate costs the large critics at the small ones' mean and seats them eight at a time."""
    from tune_sd.tune.packing.plan import PopulationCosts

    critics = {"t1a": {"gp": 1e-4, "hid_num": 2, "hid_size": 64, "iters": 5, "lr": 1e-5},
               "t4b": {"gp": 0.0, "hid_num": 2, "hid_size": 64, "iters": 5, "lr": 1e-3},
               "t3d": {"gp": 1e-5, "hid_num": 8, "hid_size": 512, "iters": 5, "lr": 1e-4},
               "t4a": {"gp": 0.0, "hid_num": 8, "hid_size": 512, "iters": 5, "lr": 1e-5}}
    configs = [{"epochs": 2000, "arch": {"lat_size": 3}, "disc": disc, "variant": name, "repeat": r, "seed": r}
               for name, disc in critics.items() for r in range(4 if name in ("t1a", "t4b") else 2)]
    plan = PopulationCosts("auto")
    assert [plan.members(c) for c in configs] == [16] * 8 + [1] * 4  # one population per small critic
    assert _worst(_simulate(None, None, 2, 2, 2000, configs=configs, plan=plan, slower=3.0)) <= 0.25
    assert _worst(_simulate(None, None, 2, 2, 2000, configs=configs, plan=plan, slower=3.0, told=False)) > 0.5
    # a busy machine: each packed member adds 5 ms to its population's epoch, which the engine's estimate
    # leaves out (its trial process, its reports); the line fits that apart from the cost per estimated ms
    # once two critics have reported (one alone cannot tell them apart: the first 10 s, when a tenth of
    # the epochs, the small critics', is done already)
    busy = dict(configs=configs, plan=plan, slower=1.5, per_member=0.005)
    assert _worst(_simulate(None, None, 2, 2, 2000, **busy), start=0.2) <= 0.25
    assert _worst(_simulate(None, None, 2, 2, 2000, **busy, told=False), start=0.2) > 0.5


def test_tunes_lines_at_ctrl_c_are_left_out_and_its_others_pass():
    import logging

    from tune_sd.tune.sweep import INTERRUPT_LOGGERS, _quiet_ray_output

    _quiet_ray_output()
    _quiet_ray_output()  # once more: one filter per logger still

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    keep = Keep()
    for name in INTERRUPT_LOGGERS:
        log = logging.getLogger(name)
        assert len(log.filters) == len({type(f) for f in log.filters})
        log.addHandler(keep)
    try:
        tune_log, analysis_log = (logging.getLogger(n) for n in INTERRUPT_LOGGERS)
        tune_log.warning("Stop signal received (e.g. via SIGINT/Ctrl+C), ending Ray Tune run. ")
        tune_log.warning("Experiment has been interrupted, but the most recent state was saved.\\n"
                         "Resume experiment with: Tuner.restore(path=\"/x\", trainable=...)")
        analysis_log.warning("Failed to fetch metrics for 3 trial(s):\\n- a: ValueError()")
        tune_log.warning("a trial raised")
    finally:
        for name in INTERRUPT_LOGGERS:
            logging.getLogger(name).removeHandler(keep)
    assert keep.lines == ["a trial raised"]


def test_the_driver_forgets_the_keys_rays_encoder_leaves_per_saved_result():
    # Tune saves each trial's metadata with deques of its last results in it; its encoder keeps a
    # log-once key per text of each deque: one more key per trial, metric and save, for hours
    import json
    from collections import deque

    from ray.tune.utils.serialization import TuneFunctionEncoder
    from ray.util import debug

    from tune_sd.tune.progress import ENCODER_KEY, forget_encoder_keys

    for value in (0.51, 0.52, 0.53):
        json.dumps({"metric_n_steps": {"avg_acc": {"5": deque([value], maxlen=5)}}}, cls=TuneFunctionEncoder)
    assert sum(k.startswith(ENCODER_KEY) for k in debug._logged) >= 3
    debug._logged.add("another key")  # what others keep once stays
    assert forget_encoder_keys() >= 3
    assert not any(k.startswith(ENCODER_KEY) for k in debug._logged) and "another key" in debug._logged


def test_the_progress_line_keeps_the_packing_plan_across_a_resume():
    """Tune pickles the callbacks with the run config (a resume restores them): the plan goes with the
    line; it has no estimate for trials on GPUs or outside the SD study."""
    import pickle

    from tune_sd.tune.packing.plan import PopulationCosts
    from tune_sd.tune.progress import SweepProgress

    plan = PopulationCosts("auto", 0.0, {})
    line = pickle.loads(pickle.dumps(SweepProgress(epochs=3000, costs=plan)))
    assert line.costs == plan and line.epoch == {}
    config = {"epochs": 3000, "arch": {"lat_size": 3}, "disc": {"hid_num": 2, "hid_size": 64}, "seed": 1}
    assert plan.members(config) == 16 and plan.epoch_ms(config, 16) > plan.epoch_ms(config, 1) > 0
    assert PopulationCosts("auto", 1.0, {}).epoch_ms(config, 1) is None
    assert plan.epoch_ms({**config, "task": "regularize"}, 1) is None


def test_time_left_knows_the_trials_a_random_search_has_not_created_yet(monkeypatch):
    """Tune creates a random search's trials as places free; the plan's draws (in Tune's order) tell the
    progress line what those will be. One place; a small critic measured at 10 ms an epoch; to come: a
    second small one and a large one, which costs the small one's 10 ms times the ratio of their
    estimates (one measured trial cannot tell a cost per member from a cost per estimated ms)."""
    from tune_sd.tune import progress as progress_mod
    from tune_sd.tune.packing.plan import PopulationCosts

    small = {"epochs": 1000, "arch": {"lat_size": 3}, "disc": {"hid_num": 2, "hid_size": 64, "iters": 5}}
    large = {"epochs": 1000, "arch": {"lat_size": 3}, "disc": {"hid_num": 8, "hid_size": 512, "iters": 5}}
    plan = PopulationCosts("off", 0.0, {}, upcoming=(small, {**small, "seed": 2}, large))
    clock = [0.0]
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: clock[0])
    p = progress_mod.SweepProgress(epochs=1000, every_s=3600, costs=plan)
    p.setup(total_num_samples=3)
    first = trial("t0", epochs=1000)
    first.config = small
    p.on_trial_start(0, [first], first)
    p.on_trial_result(0, [first], first, {"epoch": 0})
    clock[0] = 1.0
    p.on_trial_result(0, [first], first, {"epoch": 100})
    assert p.trial_cost("t0") == pytest.approx(0.01)
    ratio = plan.epoch_ms(large, 1) / plan.epoch_ms(small, 1)
    assert ratio > 8
    own = 900 * 0.01 + 1000 * 0.01 + 1000 * 0.01 * ratio  # one place: one after the other
    sweep = 1.0 * (900 * 0.01 + 1000 * 0.01 + 1000 * 0.01 * ratio) / (100 * 0.01)
    assert p.seconds_left([first], 3) == pytest.approx(0.7 * own + 0.3 * sweep)
    # without the plan's draws, the two to come cost the measured mean
    p.costs = PopulationCosts("off", 0.0, {})
    assert p.seconds_left([first], 3) == pytest.approx(0.7 * (900 + 2000) * 0.01 + 0.3 * 2900 * 0.01)


def test_the_plan_tells_the_line_a_random_searchs_draws_in_tunes_order(tmp_path):
    """What --dry-run shows is what the progress line is told (not for bayes: Optuna picks from the results)."""
    import json

    from tune_sd.spaces import load_space
    from tune_sd.tune.packing.plan import sampled_configs, upcoming_configs
    from tune_sd.tune.plan import SweepOptions, plan_sweep

    plan = plan_sweep(load_space("sd-study"), SweepOptions(storage=str(tmp_path), num_samples=12, epochs=500,
                                                           search="random"))
    told = upcoming_configs(plan)
    assert len(told) == 12 and list(told) == sampled_configs(plan, 12)
    assert len({json.dumps(c, sort_keys=True) for c in told}) == 12 and all(c["epochs"] == 500 for c in told)
    bayes = plan_sweep(load_space("sd-study"), SweepOptions(storage=str(tmp_path), num_samples=12, search="bayes"))
    assert upcoming_configs(bayes) == ()
