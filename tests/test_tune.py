"""The Ray Tune platform with a real local Ray: ASHA, retries, NaN trials, Optuna, TensorBoard, Parquet."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch

from faults import FAIL_ONCE_ENV, FailOnce, importable_by_workers
from tune_helpers import BASE, assert_complete_curves, read_tables, write_space
from tune_sd.engine import Study
from tune_sd.engine.loop import Curve
from tune_sd.engine.checkpoint import load_checkpoint
from tune_sd.engine.config import Config
from tune_sd.tune.results import CURVE_COLUMNS, TRIAL_COLUMNS
from tune_sd.spaces import load_space
from tune_sd.tune.plan import SweepOptions, plan_sweep
from tune_sd.tune.sweep import run_sweep
from tune_sd.tune.cadence import CHECKPOINT_FILE

pytestmark = pytest.mark.slow


def _listeners():
    return {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet") if c.status == "LISTEN"}


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """One local Ray for this module, started and shut down here (other Ray instances are left alone)."""
    import ray

    from tune_sd.tune.cluster import connect

    marker = tmp_path_factory.mktemp("fail") / "failed"
    os.environ[FAIL_ONCE_ENV] = f"retry:{marker}:50"  # before Ray starts, so that workers see it
    importable_by_workers()  # the test trainable that fails (faults.FailOnce)
    before = _listeners()
    started = connect(num_cpus=2)
    assert started, "a Ray instance was already running in this process"
    new = _listeners() - before
    yield {"marker": marker, "new_listeners": new}
    ray.shutdown()
    os.environ.pop(FAIL_ONCE_ENV, None)


def sweep(path, storage, name, **opts):
    plan = plan_sweep(load_space(str(path)), SweepOptions(storage=str(storage), name=name, **opts))
    return run_sweep(plan)


def assert_reports_are_the_studys(trial_dir):
    """Each report's acc_report is the study's (``RunLoop.report``): the mean of acc_mean over that report's
    epochs in the trial's uninterrupted run (a report repeated by a retry: the last one, as results.py reads)."""
    cfg = Config.from_dict(json.loads((trial_dir / "params.json").read_text()))
    torch.set_num_threads(1)
    curve = Curve()
    Study(cfg).run(callback=curve.add)
    rows = (trial_dir / "result.json").read_text().splitlines()
    reported = {r["epoch"]: r["acc_report"] for r in map(json.loads, rows)}
    acc, every = curve["acc_mean"], cfg.report_every
    assert reported == {e: sum(acc[e - every:e]) / every for e in range(every, cfg.epochs + 1, every)}


def test_local_ray_listens_on_loopback_only(ray_local):
    assert ray_local["new_listeners"], "Ray opened no port at all?"
    outside = {(ip, port) for ip, port in ray_local["new_listeners"] if not ip.endswith("127.0.0.1")}
    assert not outside, f"Ray listens beyond loopback: {outside}"


def test_local_ray_without_dashboard_records_no_task_events(ray_local):
    """Ray's own processes (its GCS keeps every task's events) start with task events off; the driver's
    environment is as it was."""
    import ray

    from tune_sd.tune.cluster import TASK_EVENTS_ENV

    node = ray._private.worker._global_node
    gcs = node.all_processes[ray._private.ray_constants.PROCESS_TYPE_GCS_SERVER][0].process
    env = dict(kv.split(b"=", 1) for kv in Path(f"/proc/{gcs.pid}/environ").read_bytes().split(b"\0") if b"=" in kv)
    assert env.get(TASK_EVENTS_ENV.encode()) == b"0", sorted(k for k in env if k.startswith(b"RAY_"))
    assert TASK_EVENTS_ENV not in os.environ


def test_asha_sweep_stops_a_non_learner_and_writes_complete_tables(ray_local, tmp_path):
    space = write_space(tmp_path, "asha", {"disc": {"parameters": {"lr": {"values": [1e-3, 1e-7]}}}},
                        tune={"scheduler": "asha", "num_samples": 2, "grace_period": 80, "reduction_factor": 2,
                              "max_concurrent": 2, "nonlearner_grace": 80, "nonlearner_window": 80})
    # (the non-learner sits at chance: ASHA's stop waits for the non-learner rule, here within the run)
    exp = sweep(space, tmp_path / "store", "asha")
    curves, trials = read_tables(exp)
    assert list(curves.columns[:len(CURVE_COLUMNS)]) == CURVE_COLUMNS
    assert set(TRIAL_COLUMNS) <= set(trials.columns)
    assert "cfg.disc.lr" in curves.columns and "cfg.disc.lr" in trials.columns
    assert len(trials) == 4 and set(trials.status) == {"TERMINATED"}
    assert_complete_curves(curves)
    stopped = trials[trials.stopped_early]
    assert len(stopped) >= 1 and (stopped.epochs < BASE["epochs"]).all()
    assert (trials[~trials.stopped_early].epochs == BASE["epochs"]).all()
    assert (stopped["cfg.disc.lr"] == 1e-7).all()  # the non-learner is what ASHA cuts
    # each trial's last curve row is its trials.parquet summary
    for _, t in trials.iterrows():
        c = curves[curves.trial_id == t.trial_id]
        assert c.epoch.max() == t.epochs and c.avg_acc.iloc[-1] == pytest.approx(t.final_avg_acc)
        assert t.checkpoint and not os.path.isabs(t.checkpoint) and os.path.isdir(os.path.join(exp, t.checkpoint))
        # a checkpoint every 2 reports, and Ray's line about each is kept out of the trial's stderr
        assert "Checkpoint successfully created" not in (exp / f"trial_{t.trial_id}" / "stderr").read_text()
    # pandas and pyarrow read them; the node column is filled
    assert curves.node.notna().all()

    # TensorBoard's own reader sees every reported metric as a scalar, and the sample figures
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trial_dir = exp / f"trial_{trials.trial_id.iloc[0]}"
    acc = EventAccumulator(str(trial_dir), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    avg_tags = [t for t in tags["scalars"] if t.endswith("avg_acc")]
    assert avg_tags, tags["scalars"]
    assert len(acc.Scalars(avg_tags[0])) == len(curves[curves.trial_id == trials.trial_id.iloc[0]])
    for metric in ("acc", "loss_real", "loss_fake", "loss_gp", "grad_max"):
        assert any(t.endswith(metric) for t in tags["scalars"]), metric
    assert any("real_vs_fake" in t for t in tags["images"]), tags["images"]


def test_a_trial_that_raises_resumes_from_its_checkpoint_without_gap_or_repeat(ray_local, tmp_path, monkeypatch):
    from tune_sd.tune import trainable

    monkeypatch.setattr(trainable, "SDTrainable", FailOnce)  # the sweep's trainable, failing once at epoch 50
    epochs = 120
    space = write_space(tmp_path, "retry", {"arch": {"parameters": {"lat_size": {"values": [3]}}}},
                        base={"epochs": epochs}, tune={"scheduler": "fifo", "num_samples": 1})
    exp = sweep(space, tmp_path / "store", "retry")
    curves, trials = read_tables(exp)
    (trial_id,) = trials.trial_id
    assert os.path.exists(f"{ray_local['marker']}.{trial_id}"), "the injected failure did not happen"
    assert trials.status.iloc[0] == "TERMINATED" and trials.epochs.iloc[0] == epochs
    assert_complete_curves(curves)
    assert_reports_are_the_studys(exp / f"trial_{trial_id}")
    # the curve, through the failure and the restore, is the engine's uninterrupted run
    cfg = Config.from_dict(json.loads((exp / f"trial_{trial_id}" / "params.json").read_text()))
    torch.set_num_threads(1)
    curve = Curve()
    Study(cfg).run(callback=curve.add)
    every = cfg.report_every
    assert list(curves.sort_values("iteration").avg_acc) == curve["avg_acc"][every - 1::every]


@pytest.mark.parametrize("logger", ["json", "csv"])
def test_a_restarted_trial_keeps_the_rows_its_driver_logged_since_the_last_upload(ray_local, tmp_path, logger):
    """A trial that starts again from a checkpoint keeps every row of its log, though the storage copy
    (uploaded before its last reports) is older: Tune's own loggers copy that back over the driver's."""
    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial

    from tune_sd.tune.trial_logs import TrialCsvLogger, TrialJsonLogger

    storage = StorageContext(storage_path=str(tmp_path / "storage"), experiment_dir_name="restart")
    trial = Trial("PackedTrainable", config={"seed": 1}, trial_id="r0001", storage=storage, stub=True)
    trial.init_local_path()
    callback, name = (TrialJsonLogger(), "result.json") if logger == "json" else (TrialCsvLogger(), "progress.csv")
    local, uploaded = Path(trial.local_path, name), Path(trial.path, name)

    def report(i):
        callback.log_trial_result(i, trial, {"training_iteration": i, "epoch": 20 * i, "trial_id": trial.trial_id})

    def logged():
        if logger == "json":
            return [json.loads(line)["training_iteration"] for line in local.read_text().splitlines()]
        return list(pd.read_csv(local).training_iteration)

    callback.log_trial_start(trial)
    report(1)
    report(2)
    uploaded.parent.mkdir(parents=True)
    uploaded.write_bytes(local.read_bytes())  # the experiment's upload, before the next report
    report(3)
    saved = tmp_path / "checkpoint_000002"
    saved.mkdir()
    trial.on_checkpoint(_TrainingResult(checkpoint=Checkpoint(str(saved)), metrics={"training_iteration": 3}))
    callback.log_trial_end(trial, failed=True)  # its node is lost; Tune restarts it from the checkpoint
    callback.log_trial_start(trial)
    report(4)
    callback.log_trial_end(trial)
    assert logged() == [1, 2, 3, 4]

    # a resumed sweep on a fresh driver has no log of its own: the storage copy is where it continues
    local.unlink()
    callback.log_trial_start(trial)
    report(5)
    callback.log_trial_end(trial)
    assert logged() == [1, 2, 5]


def test_a_nan_trial_ends_as_an_error_with_its_reason_and_the_sweep_goes_on(ray_local, tmp_path):
    overflow = tmp_path / "overflow.lib"
    overflow.write_text("np.exp(1000*N0*X10[:,0])\n")
    epochs = 40
    space = write_space(tmp_path, "nan", {"library": {"parameters": {"path": {"values": ["F10_v1", str(overflow)]}}}},
                        base={"epochs": epochs}, tune={"scheduler": "fifo", "num_samples": 1})
    exp = sweep(space, tmp_path / "store", "nan")
    _, trials = read_tables(exp)
    bad = trials[trials["cfg.library.path"] == str(overflow)].iloc[0]
    good = trials[trials["cfg.library.path"] == "F10_v1"].iloc[0]
    assert bad.status == "ERROR" and "non-finite" in bad.error
    assert good.status == "TERMINATED" and good.epochs == epochs


def test_bayes_search_with_optuna_builds_critics_from_decoded_lists(ray_local, tmp_path):
    """Optuna only suggests scalars, so list choices (pairs of an embedding critic, Adam's betas, the
    extra inputs) reach the trial as text; the trainable decodes them: the critics are built with the
    lists, and the tables hold them as every other sweep does (JSON text of the list)."""
    hid_sizes, betas, exts = [[2, 4], [4, 8]], [[0.5, 0.9], [0.9, 0.999]], [["input"], ["grad"]]
    space = write_space(tmp_path, "bayes", {"disc": {"parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
        "hid_size": {"values": hid_sizes}, "betas": {"values": betas}}}, "ext": {"values": exts}},
        base={"epochs": 40, "ext_type": "embed"}, method="bayes",
        tune={"scheduler": "fifo", "num_samples": 3, "max_concurrent": 2})
    exp = sweep(space, tmp_path / "store", "bayes")
    curves, trials = read_tables(exp)
    assert len(trials) == 3 and set(trials.status) == {"TERMINATED"}
    assert trials["cfg.disc.lr"].between(1e-5, 1e-2).all()
    assert_complete_curves(curves)
    for _, t in trials.iterrows():
        state = load_checkpoint(os.path.join(exp, t.checkpoint, CHECKPOINT_FILE))
        built = state["config"]
        disc = built["disc"]
        assert disc["hid_size"] in hid_sizes and disc["betas"] in betas and built["ext"] in exts
        # the tables hold each list as the JSON text of the list the trial was built with
        for col, value in (("cfg.disc.hid_size", disc["hid_size"]), ("cfg.disc.betas", disc["betas"]),
                           ("cfg.ext", built["ext"])):
            assert t[col] == json.dumps(value), col
            assert (curves.loc[curves.trial_id == t.trial_id, col] == json.dumps(value)).all(), col
        # the critic itself: [embedding, main] hidden units, the embedding's inputs (a point's value and
        # its extra numbers), and the optimizer's betas
        emb_size, main_size = disc["hid_size"]
        assert state["critic"]["embed.0.weight"].shape == (emb_size, 1 + Config.from_dict(built).derived_ext_size)
        assert state["critic"]["main.0.weight"].shape[0] == main_size
        assert list(state["optimizer"]["param_groups"][0]["betas"]) == disc["betas"]


def tune_sd(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tune_sd.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_status_and_export_commands(ray_local, tmp_path):
    epochs = 40
    space = write_space(tmp_path, "small", {"arch": {"parameters": {"lat_size": {"values": [3]}}}},
                        base={"epochs": epochs}, tune={"scheduler": "fifo", "num_samples": 1})
    exp = sweep(space, tmp_path / "store", "small")
    (exp / "curves.parquet").unlink()
    p = tune_sd("export", "small", "--storage", str(tmp_path / "store"))
    assert p.returncode == 0, p.stderr
    assert len(pd.read_parquet(exp / "curves.parquet")) == epochs // BASE["report_every"]  # one row a report
    p = tune_sd("status", str(exp))
    assert p.returncode == 0 and "TERMINATED" in p.stdout and "avg_acc" in p.stdout
    # the same name again is refused: nothing is overwritten
    plan = plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp_path / "store"), name="small"))
    from tune_sd.errors import StudyError

    with pytest.raises(StudyError, match="resume"):
        run_sweep(plan)


def test_storage_uri(ray_local, tmp_path):
    """Storage given as a URI (s3://, gs://, file://) goes through pyarrow's filesystems end to end."""
    epochs = 40
    space = write_space(tmp_path, "uri", {"arch": {"parameters": {"lat_size": {"values": [3]}}}},
                        base={"epochs": epochs}, tune={"scheduler": "fifo", "num_samples": 1})
    uri = f"file://{tmp_path / 'remote'}"
    exp = sweep(space, uri, "uri")
    assert str(exp) == f"{uri}/uri"
    curves, trials = read_tables(tmp_path / "remote" / "uri")
    assert len(curves) == epochs // BASE["report_every"] and trials.checkpoint.iloc[0].startswith("trial_")
    p = tune_sd("status", "uri", "--storage", uri)
    assert p.returncode == 0 and "TERMINATED" in p.stdout
