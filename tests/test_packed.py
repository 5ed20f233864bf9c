"""Packed trials (--pack) with a real local Ray: each trial still a Tune trial, trained in a shared
population; the same results as unpacked trials, ASHA stops, a lost executor, --repeat, checkpoints."""

import json
import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

from tune_helpers import assert_complete_curves, read_tables, write_space
from tune_sd.engine import Study
from tune_sd.engine.loop import Curve
from tune_sd.engine.checkpoint import load_checkpoint
from tune_sd.engine.config import SCHEMA
from tune_sd.spaces import load_space
from tune_sd.tune.plan import SweepOptions, plan_sweep
from tune_sd.tune.sweep import run_sweep

pytestmark = pytest.mark.slow

METRICS = ["acc", "acc_mean", "avg_acc", "loss_real", "loss_fake", "loss_gp"]
# 50 epochs in reports of 20: the last report is a short one; a list-valued base key travels with --repeat
SMALL = {"epochs": 50, "report_every": 20, "checkpoint_every": 1, "figure_every": 0,
         "data": {"split_sizes": list(SCHEMA["data.split_sizes"].default)}}


def sweep(path, storage, name, **opts):
    plan = plan_sweep(load_space(str(path)), SweepOptions(storage=str(storage), name=name, **opts))
    return run_sweep(plan), plan


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same 4 trials (2 learning rates x 2 repeats), packed and unpacked."""
    tmp = tmp_path_factory.mktemp("pair")
    space = write_space(tmp, "pair", {"disc": {"parameters": {"lr": {"values": [1e-3, 3e-4]}}}}, base=SMALL,
                        tune={"scheduler": "fifo", "num_samples": 1})
    packed, plan = sweep(space, tmp / "store", "packed", pack="4", repeat=2)
    unpacked, _ = sweep(space, tmp / "store", "unpacked", pack="off", repeat=2)
    return {"packed": packed, "unpacked": unpacked, "plan": plan}


def _by_config(curves):
    return {k: c.sort_values("epoch") for k, c in curves.groupby(["cfg.disc.lr", "repeat"])}


def test_a_packed_sweep_gives_the_unpacked_results(pair):
    packed, unpacked = read_tables(pair["packed"]), read_tables(pair["unpacked"])
    assert pair["plan"].settings["pack"] == 4
    for curves, trials in (packed, unpacked):
        assert len(trials) == 4 and set(trials.status) == {"TERMINATED"}
        assert (trials.epochs == 50).all() and (curves.groupby("trial_id").epoch.max() == 50).all()
        assert_complete_curves(curves)
    # the packed trials trained side by side in one population; the unpacked ones each on their own
    rows = [json.loads(line) for d in pair["packed"].glob("trial_*") for line in (d / "result.json").open()]
    assert max(r["pack_members"] for r in rows) >= 2
    assert not any("pack_members" in json.loads(line) for d in pair["unpacked"].glob("trial_*")
                   for line in (d / "result.json").open())
    a, b = _by_config(packed[0]), _by_config(unpacked[0])
    assert a.keys() == b.keys() and len(a) == 4
    for key in a:
        pd.testing.assert_frame_equal(a[key][["epoch", *METRICS]].reset_index(drop=True),
                                      b[key][["epoch", *METRICS]].reset_index(drop=True), rtol=1e-5, atol=1e-6)


def test_repeat_gives_r_trials_per_config_with_their_own_seeds(pair):
    _, trials = read_tables(pair["packed"])
    assert sorted(trials.groupby("cfg.disc.lr").repeat.apply(sorted).tolist()) == [[0, 1], [0, 1]]
    for _, t in trials.groupby("cfg.disc.lr"):
        seeds = t.sort_values("repeat")["cfg.seed"].tolist()
        assert seeds[1] == seeds[0] + 1  # repeat r runs the seed of repeat 0 plus r
        assert "cfg.data.seed" not in t or t["cfg.data.seed"].nunique() <= 1  # the same points
    curves, _ = read_tables(pair["packed"])
    assert "repeat" in curves.columns and curves.repeat.notna().all()
    # the dry run lists the trials as they ran: each config's repeats, with their seeds
    from tune_sd.tune.sweep import describe

    listed = describe(pair["plan"], n=4).split("the first 4 trials, searched keys only:")[1]
    for _, t in trials.iterrows():
        assert f"repeat={t['repeat']}, disc.lr={json.dumps(t['cfg.disc.lr'])}, seed={t['cfg.seed']}" in listed


def test_checkpoints_interchange_between_packed_and_solo(pair, tmp_path):
    """A packed trial's checkpoint resumes solo; an unpacked trial's joins a population: both continue
    the curve of the run that was never interrupted."""
    import ray

    from tune_sd.tune.cluster import connect
    from tune_sd.tune.packing.executor import PopulationExecutor

    _, packed = read_tables(pair["packed"])
    unpacked_curves, unpacked = read_tables(pair["unpacked"])
    torch.set_num_threads(1)
    for _, t in packed.iterrows():
        early = sorted(pair["packed"].glob(f"trial_{t.trial_id}/checkpoint_*"))[0]  # epoch 40 (2 kept)
        study = Study.from_state(load_checkpoint(early / "study.pt"))
        assert study.epoch == 40
        study.run()
        twin = unpacked[(unpacked["cfg.disc.lr"] == t["cfg.disc.lr"]) & (unpacked["repeat"] == t["repeat"])].iloc[0]
        end = unpacked_curves[(unpacked_curves.trial_id == twin.trial_id)].sort_values("epoch").iloc[-1]
        assert study.last_metrics()["avg_acc"] == pytest.approx(end.avg_acc, rel=1e-5)

    started = connect(num_cpus=1)
    try:
        executor = PopulationExecutor.remote("interchange", 4, 1, "cpu")
        expected = {}
        for _, t in unpacked.iterrows():
            early = sorted(pair["unpacked"].glob(f"trial_{t.trial_id}/checkpoint_*"))[0]
            config = json.loads((pair["unpacked"] / f"trial_{t.trial_id}" / "params.json").read_text())
            joined = ray.get(executor.join.remote(t.trial_id, config, str(early / "study.pt")))
            assert joined["epoch"] == 40
            expected[t.trial_id] = t.final_avg_acc
        reports = [rows[-1] for rows in ray.get([executor.advance.remote(m, 20) for m in expected])]
        for m, report in zip(expected, reports):
            assert report["epoch"] == 50 and report["done"]
            assert report["avg_acc"] == pytest.approx(expected[m], rel=1e-5)
        assert ray.get(executor.stats.remote())["members"] == 4
    finally:
        if started:
            ray.shutdown()


def test_a_trial_stopped_by_asha_leaves_and_another_joins(tmp_path):
    space = write_space(tmp_path, "asha", {"disc": {"parameters": {"lr": {"values": [1e-3, 1e-7]}}}},
                        base={**SMALL, "epochs": 160, "avg_hor": 20},
                        tune={"scheduler": "asha", "num_samples": 1, "grace_period": 40, "reduction_factor": 2,
                              "nonlearner_grace": 40, "nonlearner_window": 60})
    # (the lr 1e-7 config sits at chance: ASHA's stop waits for the non-learner rule, here within the run)
    # 6 trials, 2 places in one population (P=2, 1 CPU per population: the 2 cores hold 2 populations)
    exp, _ = sweep(space, tmp_path / "store", "asha", pack="2", repeat=3, max_concurrent=2)
    curves, trials = read_tables(exp)
    assert len(trials) == 6 and set(trials.status) == {"TERMINATED"}
    assert_complete_curves(curves)
    assert trials.stopped_early.any(), "ASHA stopped nothing"
    rows = {d.name: [json.loads(line) for line in (d / "result.json").open()] for d in exp.glob("trial_*")}
    executors = {r["pack_executor"] for rs in rows.values() for r in rs}
    # 2 trials at a time and 2 places: had a stopped trial kept its place, a second population would start
    assert len(executors) == 1, executors
    assert max(r["pack_members"] for rs in rows.values() for r in rs) == 2


def _kill_an_executor_once_a_trial_reached(exp, epoch: int, killed: threading.Event, done: threading.Event):
    """From outside the sweep (a thread of its driver): once a trial of ``exp`` reported ``epoch`` and
    holds a checkpoint, kill the executor of its population, as a crash would."""
    import ray

    from tune_sd.tune.packing.registry import NAMESPACE

    while not done.is_set() and not killed.is_set():
        time.sleep(0.05)
        try:
            rows = [json.loads(line) for f in exp.glob("trial_*/result.json") for line in f.read_text().splitlines()]
            if not ray.is_initialized() or not any(r.get("epoch", 0) >= epoch for r in rows):
                continue
            if not list(exp.glob("trial_*/checkpoint_*")):
                continue
            names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                     if a["namespace"] == NAMESPACE and a["name"].startswith(f"pack-registry/{exp.name}/")]
            executors = ray.get(ray.get_actor(names[0], namespace=NAMESPACE).executors_of.remote())
            if executors:
                ray.kill(executors[0], no_restart=True)
                killed.set()
        except Exception:  # noqa: BLE001  (the sweep ended under this thread: nothing to kill)
            continue


def test_a_killed_executor_retries_its_trials_from_their_checkpoints(tmp_path):
    space = write_space(tmp_path, "killed", {"disc": {"parameters": {"lr": {"values": [1e-3, 3e-4]}}}},
                        base={**SMALL, "epochs": 400}, tune={"scheduler": "fifo", "num_samples": 1})
    killed, done = threading.Event(), threading.Event()
    killer = threading.Thread(target=_kill_an_executor_once_a_trial_reached,
                              args=(tmp_path / "store" / "killed", 40, killed, done), daemon=True)
    killer.start()
    try:
        exp, _ = sweep(space, tmp_path / "store", "killed", pack="4", repeat=2, max_failures=3)
    finally:
        done.set()
        killer.join()
    assert killed.is_set(), "no executor was killed"
    curves, trials = read_tables(exp)
    assert len(trials) == 4 and set(trials.status) == {"TERMINATED"} and (trials.epochs == 400).all()
    assert_complete_curves(curves)  # every iteration once, none lost, none twice
    assert any((exp / f"trial_{t}" / "error.txt").exists() for t in trials.trial_id), "no trial was retried"


def test_repeat_data_draws_its_own_points_per_repeat_and_dry_run_says_what_packs(tmp_path):
    from tune_sd.tune.sweep import describe

    # planned only: trials long enough for the plain critic to pack (engine.population.SHORT_TRIAL)
    space = write_space(tmp_path, "rd", {"disc": {"parameters": {"lr": {"values": [1e-3, 3e-4]}}}},
                        base={**SMALL, "epochs": 3000}, tune={"num_samples": 1})
    plan = plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp_path), repeat=3, repeat_data=True))
    points = plan.points  # resolved once by the plan
    assert plan.trials == len(points) == 6
    assert [(p["disc"]["lr"], p["repeat"], p["data"]["seed"]) for p in points] == \
        [(lr, r, r) for lr in (1e-3, 3e-4) for r in range(3)]
    assert len({p["seed"] for p in points}) == 6
    # each input-point draw is a shape key of its own (the population shares its points)
    text = describe(plan)
    assert "repeat: 3 seeds per config, each with its own input points" in text
    assert text.count("P=16, 2 trial(s) -> packs") == 3, text

    # auto packs only where it pays: not a critic with a per-point embedding on a CPU (pack_size 1)
    embed = plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp_path), repeat=2, overrides=[
        "ext=[input]", "ext_type=embed", "disc.hid_size=64"]))
    from tune_sd.engine.config import Config
    from tune_sd.engine.population import pack_size

    assert pack_size(Config.from_dict(embed.base), "cpu") == 1
    assert embed.settings["pack"] == "off"
    assert "packing: off" in describe(embed)
    from tune_sd.errors import ConfigError

    with pytest.raises(ConfigError, match="--pack"):
        plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp_path), pack="many"))


def test_the_report_shows_the_spread_over_repeats(pair, tmp_path):
    from tune_sd.analysis.pipeline import analyze
    from tune_sd.analysis.repeats import repeat_spread

    _, trials = read_tables(pair["packed"])
    spread = repeat_spread(trials)
    assert len(spread) == 2 and (spread.repeats == 2).all()
    for _, row in spread.iterrows():
        lr = float(row.config.split("=")[1])
        acc = trials[trials["cfg.disc.lr"] == lr].final_avg_acc
        assert row["median"] == pytest.approx(acc.median()) and row["range"] == pytest.approx(acc.max() - acc.min())
    analyze([str(pair["packed"])], out=str(tmp_path / "analysis"), top_k=2, n_wrong=1, horizon=20)
    html = (tmp_path / "analysis" / "report.html").read_text()
    assert "Spread over repeats" in html and "over repeats" in html
    assert f"{spread['median'].iloc[0]:.3f}" in html


def test_repeat_spread_without_repeats_is_empty():
    from tune_sd.analysis.repeats import repeat_spread

    trials = pd.DataFrame({"trial_id": ["a", "b"], "final_avg_acc": [0.6, 0.7], "cfg.disc.lr": [1e-3, 1e-4]})
    assert repeat_spread(trials).empty


def test_a_packed_trials_process_imports_no_torch(tmp_path, monkeypatch):
    """A packed trial's process only waits for its population: no torch, no engine (about 2 CPU-s and
    200 MB a process). Checked in the trials' own processes, with the trainable class as the sweep
    builds it (its parameters and resources go with it into each process)."""
    from faults import MODULES_PROBE_ENV, ModulesProbe, importable_by_workers

    from tune_sd.tune import trainable

    importable_by_workers()
    probe = tmp_path / "probe"
    probe.mkdir()
    monkeypatch.setenv(MODULES_PROBE_ENV, str(probe))
    monkeypatch.setattr(trainable, "SDTrainable", ModulesProbe)
    space = write_space(tmp_path, "probe", {"disc": {"parameters": {"lr": {"values": [1e-3]}}}}, base=SMALL,
                        tune={"scheduler": "fifo", "num_samples": 1})
    exp, _ = sweep(space, tmp_path / "store", "probe", pack="2", repeat=2)
    _, trials = read_tables(exp)
    assert len(trials) == 2 and set(trials.status) == {"TERMINATED"}
    seen = [json.loads(f.read_text()) for f in probe.glob("*.json")]
    assert seen and all(s["packed"] for s in seen)
    assert not any(s["torch"] or s["engine"] for s in seen), seen


def test_the_cli_refuses_a_bad_pack_or_repeat_with_exit_2(tmp_path):
    import subprocess
    import sys

    space = write_space(tmp_path, "cli", {"disc": {"parameters": {"lr": {"values": [1e-3]}}}},
                        base={**SMALL, "epochs": 3000})  # planned only
    for args, word in ((["--pack", "0"], "--pack"), (["--repeat", "0"], "--repeat"),
                       (["--repeat-data"], "--repeat"), (["--repeat", "2", "--search", "bayes"], "--repeat")):
        p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "sweep", str(space), "--dry-run", *args],
                           capture_output=True, text=True)
        assert p.returncode == 2 and word in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "sweep", str(space), "--dry-run", "--repeat", "4"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "repeat: 4 seeds per config" in p.stdout and "P=16" in p.stdout, p.stderr


def test_each_driver_run_has_its_own_registry_and_a_killed_driver_takes_its_own_along():
    """Two drivers of one sweep name on a cluster each have a registry; stopping one leaves the other.
    A driver that is killed takes its registry (and so its executors) with it: nothing stale is left
    for the next driver of the sweep (tune-sd resume) to find."""
    import signal
    import subprocess
    import sys
    import time

    import ray

    from tune_sd.tune.cluster import connect
    from tune_sd.tune.packing.registry import NAMESPACE, registry_name
    from tune_sd.tune.sweep import _start_packing, _stop_packing

    settings = {"pack": 4, "cpus_per_trial": 1, "gpus_per_trial": 0}
    started = connect(num_cpus=1)
    try:
        first, _ = _start_packing("shared", settings)
        second, _ = _start_packing("shared", settings)
        assert first != second
        a, b = (ray.get_actor(registry_name("shared", run), namespace=NAMESPACE) for run in (first, second))
        home = ray.get(a.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))
        assert home == ray.get_runtime_context().get_node_id()  # the head: the only node here
        _stop_packing("shared", second, settings)
        with pytest.raises(ValueError):
            ray.get_actor(registry_name("shared", second), namespace=NAMESPACE)
        assert ray.get(a.executors_of.remote()) == []  # the other driver's registry goes on
        _stop_packing("shared", first, settings)

        code = ("import sys, time, ray\n"
                "from tune_sd.tune.packing.registry import start_registry\n"
                f"ray.init(address={ray.get_runtime_context().gcs_address!r}, log_to_driver=False)\n"
                "ray.get(start_registry('shared', 'killed', 4, 1.0, 0.0).executors_of.remote())\n"
                "print('ready', flush=True)\n"
                "time.sleep(600)\n")
        driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert driver.stdout.readline().strip() == "ready"
            ray.get_actor(registry_name("shared", "killed"), namespace=NAMESPACE)  # there while it runs
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                ray.get_actor(registry_name("shared", "killed"), namespace=NAMESPACE)
            except ValueError:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the killed driver's registry is still there")
    finally:
        if started:
            ray.shutdown()


def test_the_seeds_of_a_config_are_one_hparams_session_group(pair):
    from test_sweep_output import hparams_session_groups

    groups = hparams_session_groups(pair["packed"])
    _, trials = read_tables(pair["packed"])
    assert len(groups) == 2  # 2 learning rates, each with its 2 seeds
    for hparams, metrics in groups.values():
        assert set(hparams) == {"disc.lr"}  # the searched key; no seed, no repeat, no constant key
        seeds = trials[np.isclose(trials["cfg.disc.lr"], hparams["disc.lr"])]
        assert len(seeds) == 2
        assert metrics["hparams/final_avg_acc"] == pytest.approx(seeds.final_avg_acc.mean(), rel=1e-5)


def test_auto_makes_a_population_per_place_each_no_larger_than_pack_size(tmp_path):
    """N trials of a key on C places make at least min(C, N) populations of at most pack_size."""
    from tune_sd.engine import Config, pack_size
    from tune_sd.tune.packing.plan import fill_sizes, pack_plan, trial_slots
    from tune_sd.tune.sweep import describe

    space = write_space(tmp_path, "fill", {"seed": {"values": list(range(16))}}, base={"epochs": 2000})
    plan = plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp_path), pack="auto"))
    cap = pack_size(Config.from_dict(plan.base), "cpu")
    assert cap > 2  # the plain critic packs
    config = {**plan.base, "seed": 3}
    for cpus, n_pops in ((2, 2), (4, 4), (1, 1), (64, 16)):
        sizes = fill_sizes(plan, trial_slots(plan.settings, cpus))
        (key, size), = sizes.items()
        assert size <= cap and -(-16 // size) >= min(cpus, 16) and -(-16 // size) >= -(-16 // cap)
        assert pack_plan(config, "auto", 0.0, sizes) == (key, size)
    assert trial_slots({"cpus_per_trial": 0.5, "gpus_per_trial": 0}, 2) == 4
    assert trial_slots({"cpus_per_trial": 1, "gpus_per_trial": 0.5}, 16, 1) == 2
    slots = trial_slots(plan.settings, os.cpu_count())
    size = fill_sizes(plan, slots).popitem()[1]
    text = describe(plan)
    assert f"{slots} place(s) for populations" in text
    assert f"16 trial(s) in {-(-16 // size)} population(s) of up to {size}" in text, text




@pytest.mark.parametrize("pack", ["2", "off"])
def test_a_result_carries_several_reports_and_every_reader_takes_each(tmp_path, pack):
    """With nothing due before the end, a trial gathers its reports into few Tune results (about one a
    second at least): result.json, curves.parquet and TensorBoard still have every report, each at its
    own iteration and epoch, equal to the engine's uninterrupted run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    base = {**SMALL, "epochs": 300, "report_every": 10, "checkpoint_every": 1000}
    space = write_space(tmp_path, "rows", {"disc": {"parameters": {"lr": {"values": [1e-3]}}}}, base=base,
                        tune={"scheduler": "fifo", "num_samples": 1})
    exp, _ = sweep(space, tmp_path / "store", "rows", pack=pack, repeat=2)
    curves, trials = read_tables(exp)
    assert len(trials) == 2 and (trials.epochs == 300).all()
    assert_complete_curves(curves, report_every=10)
    for trial_id, c in curves.groupby("trial_id"):
        lines = [json.loads(x) for x in (exp / f"trial_{trial_id}" / "result.json").open()]
        assert [r["epoch"] for r in lines] == list(range(10, 301, 10))
        # the rows of one result share its Tune bookkeeping; fewer results than reports
        assert len({r["time_total_s"] for r in lines}) < len(lines)
        assert not any("report_rows" in r for r in lines)
        acc = EventAccumulator(str(exp / f"trial_{trial_id}"), size_guidance={"scalars": 0})
        acc.Reload()
        tag = next(t for t in acc.Tags()["scalars"] if t.endswith("/avg_acc"))
        assert [e.step for e in acc.Scalars(tag)] == list(range(10, 301, 10))
    # the curve is the engine's own run, report for report
    (trial_id, c), = list(curves[curves.repeat == 0].groupby("trial_id"))
    cfg = Study.from_state(load_checkpoint(str(next((exp / f"trial_{trial_id}").glob("checkpoint_*/study.pt"))))).cfg
    torch.set_num_threads(1)
    curve = Curve()
    Study(cfg).run(callback=curve.add)
    assert np.allclose(c.sort_values("iteration").avg_acc, curve["avg_acc"][9::10])
