"""Why each trial ended (``stop_reason``): recorded in the trial's last result by the trainable, the
non-learner stopper and the schedulers, and read back from any storage (``file://``, a local fake S3)."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from fake_s3 import fake_s3
from tune_helpers import BASE
from tune_sd.tune.results import collect
from tune_sd.tune.stopping.schedulers import make_scheduler
from tune_sd.tune.stopping.records import StopRecorder, own_end
from tune_sd.tune.stopping.nonlearner import NonLearnerSettings
from tune_sd.tune.stopping.nonlearner_stopper import NonLearnerStopper


def tune_sd(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tune_sd.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


# ------------------------------------------------------------------------------ the recorder, no Ray started


from tune_sd.tune.stopping.replay import ReplayTrial as _Trial  # noqa: E402  (hashable by id, as Trial is)


def _trial(tid):
    return _Trial(tid)


def test_the_trainable_says_whether_its_epochs_or_its_runtime_ran_out():
    assert own_end(240, 240) == "completed"
    assert own_end(11, 100000) == "runtime"


def test_the_recorder_writes_the_deciders_reason_into_the_final_result_only():
    rec = StopRecorder()
    going = {"epoch": 20, "done": False}
    rec.on_trial_result(1, [], _trial("a"), going)
    assert "stop_reason" not in going
    rec.note("a", "nonlearner")
    rec.note("a", "asha")  # Tune acts on the first decision for a result (the stopper is asked first)
    last = {"epoch": 40, "done": True}
    rec.on_trial_result(2, [], _trial("a"), last)
    assert last["stop_reason"] == "nonlearner"
    # the trial's own end wins over a stop decided on the same report
    rec.note("b", "asha")
    own = {"epoch": 240, "done": True, "stop_reason": "completed"}
    rec.on_trial_result(3, [], _trial("b"), own)
    assert own["stop_reason"] == "completed"
    # a decision is used once: it does not leak into a later trial's result of the same id
    again = {"epoch": 20, "done": True, "stop_reason": "runtime"}
    rec.on_trial_result(4, [], _trial("b"), again)
    assert again["stop_reason"] == "runtime"


def test_the_non_learner_stopper_notes_its_stops():
    rec = StopRecorder()
    stopper = NonLearnerStopper(NonLearnerSettings(grace=40, window=60, margin=0.1), recorder=rec)
    stopped = [stopper("t", {"epoch": e, "avg_acc": 0.5, "acc_report": 0.5}) for e in range(20, 120, 20)]
    assert stopped[-1] and rec._decided == {"t": "nonlearner"}


@pytest.mark.parametrize("name, reason", [("asha", "asha"), ("median", "median"), ("median+nonlearner", "median")])
def test_rank_based_schedulers_note_each_trial_they_stop(name, reason):
    """Real ASHA / median rule: a trial far below the others is stopped, and the recorder hears why."""
    rec = StopRecorder()
    sched = make_scheduler(name, epochs=400, report_every=20, grace_period=20, reduction_factor=2, recorder=rec)
    sched.set_search_properties("avg_acc", "max")
    controller = SimpleNamespace(get_live_trials=lambda: [])
    trials = [_trial(f"t{i}") for i in range(5)]
    for t in trials:
        sched.on_trial_add(controller, t)
    decisions = {}
    for epoch in range(20, 401, 20):
        for i, t in reversed(list(enumerate(trials))):  # the worst reports last, against the others
            if t.trial_id in decisions:
                continue
            d = sched.on_trial_result(controller, t, {"epoch": epoch, "avg_acc": 0.62 + 0.04 * i})
            if d == "STOP":
                decisions[t.trial_id] = epoch
    assert "t0" in decisions and decisions["t0"] < 400  # the worst is cut early
    assert set(rec._decided) == {tid for tid, e in decisions.items() if e < 400}
    assert set(rec._decided.values()) == {reason}


def test_fifo_has_nothing_to_record():
    assert make_scheduler("fifo", epochs=100, report_every=20, recorder=StopRecorder()).__class__.__name__ == \
        "FIFOScheduler"


# --------------------------------------------------------------------------- reading the records back


def _fake_sweep(folder, rows_by_trial, scheduler="asha", stops=()):
    """A sweep folder as Tune leaves it (params.json, result.json per trial), without running Ray."""
    folder.mkdir(parents=True)
    (folder / "tune_sd.json").write_text(json.dumps({"name": folder.name, "epochs": 240,
                                                     "settings": {"scheduler": scheduler}}))
    for tid, rows in rows_by_trial.items():
        d = folder / f"trial_{tid}"
        d.mkdir()
        (d / "params.json").write_text(json.dumps({"epochs": 240}))
        (d / "result.json").write_text("".join(json.dumps({"trial_id": tid, "training_iteration": i + 1, **r}) + "\n"
                                               for i, r in enumerate(rows)))
    state = [[json.dumps({"trial_id": tid, "status": "TERMINATED", "relative_logdir": f"trial_{tid}"}), "{}"]
             for tid in rows_by_trial]
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": state}))
    if stops:
        (folder / "stops.jsonl").write_text("".join(json.dumps({"trial_id": t, "reason": "nonlearner"}) + "\n"
                                                    for t in stops))
    return folder


def test_collect_reads_the_recorded_reason_and_falls_back_for_older_sweeps(tmp_path):
    ends = {"a": [{"epoch": 20, "avg_acc": 0.5}, {"epoch": 40, "avg_acc": 0.5, "done": True,
                                                    "stop_reason": "runtime"}],
            "b": [{"epoch": 120, "avg_acc": 0.5, "done": True, "stop_reason": "nonlearner"}],
            "c": [{"epoch": 240, "avg_acc": 0.9, "done": True, "stop_reason": "completed"}],
            "d": [{"epoch": 60, "avg_acc": 0.5, "done": True}],  # an older sweep: nothing recorded
            "e": [{"epoch": 80, "avg_acc": 0.5, "done": True}]}  # ... but in the old side file
    _, trials = collect(_fake_sweep(tmp_path / "s", ends, scheduler="fifo", stops=["e"]))
    t = trials.set_index("trial_id")
    assert t.stop_reason.to_dict() == {"a": "runtime", "b": "nonlearner", "c": "completed", "d": "asha",
                                       "e": "nonlearner"}
    assert t.stop_epoch.drop("c").to_dict() == {"a": 40, "b": 120, "d": 60, "e": 80}
    assert pd.isna(t.stop_epoch["c"])
    assert t.stopped_early.to_dict() == {"a": True, "b": True, "c": False, "d": True, "e": True}


# ------------------------------------------------------------------ real sweeps on URI storage


def _space(folder):
    """Three trials, each ending its own way under the FIFO scheduler with the non-learner stopper:
    ``flat`` cannot learn (lr 1e-9) and is stopped; ``timed`` (50 critic steps an epoch) hits its
    0.5 s ``runtime`` within its first report, long before the stopper's grace; ``short`` completes
    its 60 epochs, also before the grace."""
    tree = {"description": "stop reasons", "method": "grid", "parameters": {},
            "variants": {"flat": {"disc": {"lr": 1e-9}},
                         "timed": {"epochs": 100000, "runtime": 0.5, "disc": {"iters": 50}},
                         "short": {"epochs": 60}},
            "base": {**BASE, "avg_hor": 60},
            "tune": {"scheduler": "nonlearner", "num_samples": 1, "nonlearner_grace": 100,
                     "nonlearner_window": 80, "nonlearner_margin": 0.2, "max_concurrent": 2}}
    path = folder / "stops.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def s3():
    """A local fake S3, started before Ray (ray_local), so that Ray's workers write checkpoints there too."""
    with fake_s3() as bucket:
        yield bucket + "/results"


@pytest.fixture(scope="module")
def ray_local(s3):
    import ray

    from tune_sd.tune.cluster import connect

    started = connect(num_cpus=2)
    assert started, "a Ray instance was already running in this process"
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "s3"])
def test_each_stop_is_recorded_with_its_reason_on_uri_storage(kind, s3, ray_local, tmp_path):
    from tune_sd.spaces import load_space
    from tune_sd.tune.plan import SweepOptions, plan_sweep
    from tune_sd.tune.sweep import run_sweep

    storage = f"file://{tmp_path / 'remote'}" if kind == "file" else s3 + f"/{tmp_path.name}"
    plan = plan_sweep(load_space(str(_space(tmp_path))), SweepOptions(storage=storage, name="stops"))
    exp = run_sweep(plan)
    assert str(exp) == f"{storage}/stops"
    _, trials = collect(exp)
    t = trials.set_index("variant")
    assert t.loc["flat", "stop_reason"] == "nonlearner" and 100 <= t.loc["flat", "stop_epoch"] < 240
    assert t.loc["timed", "stop_reason"] == "runtime" and t.loc["timed", "stop_epoch"] < 100
    assert t.loc["short", "stop_reason"] == "completed" and pd.isna(t.loc["short", "stop_epoch"])
    assert set(t.status) == {"TERMINATED"}
    assert t.loc[["flat", "timed"], "stopped_early"].all() and not t.loc["short", "stopped_early"]

    # the tables the sweep exported on that storage say the same, and status / export read it back
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(f"{storage}/stops/trials.parquet")
    with filesystem.open_input_file(root) as f:
        exported = pd.read_parquet(f).set_index("variant")
    assert exported.stop_reason.to_dict() == t.stop_reason.to_dict()
    p = tune_sd("status", "stops", "--storage", storage)
    assert p.returncode == 0, p.stderr
    assert "nonlearner @" in p.stdout and "runtime @" in p.stdout and "completed" in p.stdout
    assert "1 nonlearner" in p.stdout and "1 runtime" in p.stdout
    p = tune_sd("export", f"{storage}/stops")
    assert p.returncode == 0, p.stderr


def test_the_report_counts_and_labels_runtime_ends():
    from tune_sd.analysis.stops import stop_label, stops_per_trend

    trials = pd.DataFrame({"trial_id": ["a", "b", "c"], "status": "TERMINATED", "epochs": [11, 120, 240],
                           "stopped_early": [True, True, False],
                           "stop_reason": ["runtime", "nonlearner", "completed"], "stop_epoch": [11, 120, None]})
    trends = pd.DataFrame({"trial_id": ["a", "b", "c"], "trend": ["non-learner", "non-learner", "fast-plateau"]})
    per = stops_per_trend(trends, trials)
    assert per.loc["all", "runtime"] == 1 and per.loc["all", "nonlearner"] == 1
    assert per.loc["all", "stopped early"] == 1  # by a scheduler or the stopper; runtime is counted apart
    assert stop_label("runtime", 11) == "runtime @ 11"
