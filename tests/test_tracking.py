"""Sweeps logged to Weights & Biases and MLflow (--log, export --to, analyze --log), with the real
libraries and no network: W&B offline (its run files read back with `wandb leet inspect --json`),
MLflow on an SQLite store in tmp_path (read back with MlflowClient)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tune_helpers import assert_complete_curves, read_tables, write_space
from tune_sd.engine.config import SCHEMA
from tune_sd.errors import ConfigError
from tune_sd.tracking import Target, group_name, parse_log, short_value, space_project
from tune_sd.tracking.figures import read_figures
from tune_sd.tracking.targets import mlflow_store

pytest.importorskip("wandb")
pytest.importorskip("mlflow")

# W&B without a service: every test writes its runs locally (the CI has no network)
OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_CODE": "true",
           "WANDB_INIT_TIMEOUT": "30"}
SMALL = {"epochs": 60, "report_every": 20, "checkpoint_every": 1, "figure_every": 1,
         "data": {"split_sizes": list(SCHEMA["data.split_sizes"].default)}}
LRS = [1e-3, 3e-4]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for key in ("WANDB_DIR", "WANDB_BASE_URL", "WANDB_API_KEY", "WANDB_PROJECT", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)


# ------------------------------------------------------------------------------ readers


def wandb_runs(folder: Path) -> dict:
    """{trial id: run} of the offline W&B runs under ``folder``/wandb, read with wandb's own reader:
    run = {"config", "group", "project", "name", "history": {step: {key: value}}, "summary"}."""
    exe = shutil.which("wandb") or str(Path(sys.executable).parent / "wandb")
    out = {}
    for f in sorted(Path(folder).glob("wandb/offline-run-*/run-*.wandb")):
        text = subprocess.run([exe, "leet", "inspect", "--json", str(f)], capture_output=True, text=True,
                              timeout=120, check=True).stdout
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        run = next(r["run"] for r in records if r["type"] == "run")
        config = {}
        for r in records:
            if r["type"] == "run" or r["type"] == "config":
                update = (r.get("run", {}).get("config") or r.get("config") or {}).get("update") or {}
                config.update({k: v for k, v in update.items() if k != "_wandb"})
        history = {}
        for r in records:
            if r["type"] == "history":
                step = int(r["history"]["step"]["num"])
                history.setdefault(step, {}).update(
                    {k: v for k, v in r["history"]["item"].items() if not k.startswith("_")})
        summary = {}
        for r in records:
            if r["type"] == "summary":
                summary.update(r["summary"].get("update") or {})
        run_info = {"config": config, "group": run.get("run_group"), "project": run.get("project"),
                    "name": run.get("display_name"), "history": history, "summary": summary,
                    "job_type": run.get("job_type")}
        out[config.get("trial_id") or run.get("display_name")] = run_info
    return out


def mlflow_runs(uri: str, experiment: str) -> tuple[dict, dict]:
    """({trial id: run}, {run id: parent run}) of an MLflow experiment, read with MlflowClient; a trial's
    run = {"run", "history": {step: {metric: value}}}."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment} in {uri}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    trials, parents = {}, {}
    for run in runs:
        kind = run.data.tags.get("tune_sd.kind")
        if kind == "trial":
            history: dict = {}
            for metric in run.data.metrics:
                for m in client.get_metric_history(run.info.run_id, metric):
                    history.setdefault(m.step, {})[metric] = m.value
            trials[run.data.tags["tune_sd.trial_id"]] = {"run": run, "history": history}
        elif kind == "config":
            parents[run.info.run_id] = run
    return trials, parents


def curves_history(curves: pd.DataFrame, trial_id: str) -> dict:
    """{epoch: {metric: value}} of a trial as curves.parquet holds it (the logged metrics, finite only)."""
    from tune_sd.tracking.tracker import METRICS

    rows = curves[curves.trial_id == trial_id].sort_values("iteration")
    out = {}
    for _, r in rows.iterrows():
        out[int(r.epoch)] = {m: float(r[m]) for m in METRICS if m in r.index and pd.notna(r[m])
                             and np.isfinite(float(r[m]))}
    return out


def numbers_only(history: dict) -> dict:
    """The metrics of a logged history (not the figures' fields: ``samples/real_vs_fake.count``, ...)."""
    from tune_sd.tracking.tracker import METRICS

    return {s: {k: v for k, v in row.items() if k in METRICS} for s, row in history.items()}


def assert_same_history(logged: dict, expected: dict):
    logged = {s: row for s, row in numbers_only(logged).items() if row}
    assert sorted(logged) == sorted(expected)
    for step, row in expected.items():
        assert logged[step] == pytest.approx(row, rel=1e-6, abs=1e-12), step


# ------------------------------------------------------------------------------ names and options


def test_a_config_is_named_by_its_variant_else_by_its_searched_values():
    assert [short_value(v) for v in (1e-4, 1e-5, 2.5e-6, 0.5, 64, [2, 4], 0.0, 0.01)] == \
        ["1e-4", "1e-5", "2.5e-6", "0.5", "64", "[2,4]", "0", "0.01"]
    config = {"disc": {"lr": 1e-4, "gp": 1e-5, "hid_num": 4}, "arch": {"hid_num": [2, 0]}, "seed": 7, "repeat": 1}
    searched = ["disc.lr", "disc.gp", "disc.hid_num", "arch.hid_num", "seed"]
    assert group_name(config, searched) == "lr=1e-4 gp=1e-5 disc.hid_num=4 arch.hid_num=[2,0]"
    assert group_name({**config, "seed": 8, "repeat": 2}, searched) == group_name(config, searched)  # its seeds
    assert group_name({**config, "variant": "t2a"}, searched) == "t2a"
    assert group_name({"disc.lr": 1e-4}, ["disc.lr"]) == "lr=1e-4"  # a searcher's dotted keys (Optuna)
    assert group_name({"seed": 3}, []) == "config"


def test_where_a_sweep_logs_by_default_and_as_told(tmp_path):
    assert space_project("search_spaces/trend-examples.yaml", "trend-examples") == "153-sd-study-F10_v1"
    assert space_project("search_spaces/ext-grad-embed.yaml", "x") == "155-ext2-study-F10_v1"
    assert space_project("search_spaces/ladder.yaml", "ladder") == "ladder"  # "W&B project: none"
    assert parse_log(["wandb", "mlflow=sqlite:///x.db", "wandb=mine"]) == [Target("wandb", "mine"),
                                                                         Target("mlflow", "sqlite:///x.db")]
    assert mlflow_store(str(tmp_path / "runs")) == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    assert mlflow_store("http://host:5000") == "http://host:5000"
    for bad in (["tensorboard"], [""], "neptune=x"):
        with pytest.raises(ConfigError, match="--log"):
            parse_log(bad)


def test_a_plan_resolves_log_from_the_command_line_or_the_tune_block(tmp_path):
    from tune_sd.spaces import load_space
    from tune_sd.tune.plan import SweepOptions, plan_sweep

    space = write_space(tmp_path, "logged", {"disc": {"parameters": {"lr": {"values": LRS}}}}, base=SMALL,
                        tune={"log": ["mlflow"]})
    plan = plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp_path / "store")))
    assert plan.settings["log"] == [f"mlflow=sqlite:///{(tmp_path / 'store' / 'mlruns' / 'mlflow.db').resolve()}"]
    plan = plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp_path / "store"), log=["wandb=p1"]))
    assert plan.settings["log"] == ["wandb=p1"]
    bad = write_space(tmp_path, "bad", {"disc": {"parameters": {"lr": {"values": LRS}}}}, tune={"log": ["comet"]})
    with pytest.raises(ConfigError, match="tune.log"):
        load_space(str(bad))
    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "sweep", str(space), "--dry-run", "--log", "comet"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--log" in p.stderr and "Traceback" not in p.stderr


# ------------------------------------------------------------------------------ a real sweep


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A packed sweep of 2 configs x 2 seeds logged live to W&B (offline) and MLflow (its default store)."""
    from tune_sd.spaces import load_space
    from tune_sd.tune.plan import SweepOptions, plan_sweep
    from tune_sd.tune.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("logged")
    saved = {k: os.environ.get(k) for k in OFFLINE}
    os.environ.update(OFFLINE)
    try:
        space = write_space(tmp, "logged", {"disc": {"parameters": {"lr": {"values": LRS}}}}, base=SMALL,
                            tune={"scheduler": "fifo", "num_samples": 1})
        plan = plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp / "store"), name="logged", pack="4",
                                                               repeat=2, log=["wandb", "mlflow"]))
        exp = run_sweep(plan)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"exp": Path(exp), "tmp": tmp, "mlflow": f"sqlite:///{(tmp / 'store' / 'mlruns' / 'mlflow.db').resolve()}"}


@pytest.mark.slow
def test_a_packed_sweep_logs_every_report_of_every_trial_grouped_by_config(logged):
    exp = logged["exp"]
    curves, trials = read_tables(exp)
    assert_complete_curves(curves)
    assert len(trials) == 4 and set(trials.stop_reason) == {"completed"}
    names = {f"lr={short_value(lr)}" for lr in LRS}

    runs = wandb_runs(exp)
    assert set(runs) == set(trials.trial_id)
    for tid, run in runs.items():
        t = trials[trials.trial_id == tid].iloc[0]
        assert run["project"] == "logged"  # the study's name: the test space's header names no project
        assert run["group"] == f"lr={short_value(t['cfg.disc.lr'])}"
        assert run["config"]["disc"]["lr"] == pytest.approx(t["cfg.disc.lr"])  # nested, as the notebook's hp
        assert run["config"]["seed"] == t["cfg.seed"] and run["config"]["repeat"] == t["repeat"]
        assert_same_history(run["history"], curves_history(curves, tid))
        assert run["summary"]["stop_reason"] == "completed" and run["summary"]["epochs"] == 60
        images = [(step, row["samples/real_vs_fake.captions"]) for step, row in run["history"].items()
                  if "samples/real_vs_fake.captions" in row]
        # the figures the trial drew (a packed trial's executor draws them as it gets to them), at the last report
        drawn = [f"epoch {f.step}" for f in read_figures(exp / f"trial_{tid}")]
        assert drawn and images == [(60, drawn)]
    assert {r["group"] for r in runs.values()} == names
    assert sorted(pd.Series([r["group"] for r in runs.values()]).value_counts()) == [2, 2]

    ml, parents = mlflow_runs(logged["mlflow"], "logged")
    assert set(ml) == set(trials.trial_id)
    assert {p.info.run_name for p in parents.values()} == names
    for tid, run in ml.items():
        t = trials[trials.trial_id == tid].iloc[0]
        assert_same_history(run["history"], curves_history(curves, tid))
        tags, params = run["run"].data.tags, run["run"].data.params
        assert parents[tags["mlflow.parentRunId"]].info.run_name == f"lr={short_value(t['cfg.disc.lr'])}"
        assert tags["stop_reason"] == "completed" and float(params["disc.lr"]) == pytest.approx(t["cfg.disc.lr"])
        assert run["run"].info.status == "FINISHED"
        from mlflow import MlflowClient

        figures = MlflowClient(logged["mlflow"]).list_artifacts(run["run"].info.run_id, "figures/samples_real_vs_fake")
        assert [Path(f.path).name for f in figures] == \
            [f"epoch_{f.step:07d}.png" for f in read_figures(exp / f"trial_{tid}")]

    # TensorBoard's HParams session groups take the same names
    from test_sweep_output import hparams_session_groups

    assert set(hparams_session_groups(exp)) == names


@pytest.mark.slow
def test_export_to_logs_a_finished_sweep_as_the_live_logging_did(logged, tmp_path, monkeypatch):
    from tune_sd.cli import main

    exp = logged["exp"]
    copy = tmp_path / "logged"
    shutil.copytree(exp, copy, ignore=shutil.ignore_patterns("wandb"))
    store = tmp_path / "other-mlruns"
    rc = main(["export", str(copy), "--to", "wandb=after", "--to", f"mlflow={store}"])
    assert rc == 0
    live, later = wandb_runs(exp), wandb_runs(copy)
    assert set(later) == set(live)
    for tid, run in later.items():
        assert run["project"] == "after"
        for key in ("group", "name", "config"):
            assert run[key] == live[tid][key], key
        assert numbers_only(run["history"]) == numbers_only(live[tid]["history"])
        assert {k: v for k, v in run["summary"].items() if not k.startswith(("_", "samples/"))} == \
            {k: v for k, v in live[tid]["summary"].items() if not k.startswith(("_", "samples/"))}
        assert run["summary"]["samples/real_vs_fake.captions"] == live[tid]["summary"]["samples/real_vs_fake.captions"]
    ml_live, parents_live = mlflow_runs(logged["mlflow"], "logged")
    ml_later, parents_later = mlflow_runs(f"sqlite:///{store / 'mlflow.db'}", "logged")
    assert set(ml_later) == set(ml_live)
    assert {p.info.run_name for p in parents_later.values()} == {p.info.run_name for p in parents_live.values()}
    for tid, run in ml_later.items():
        assert run["history"] == ml_live[tid]["history"]
        assert run["run"].data.params == ml_live[tid]["run"].data.params
        keep = ("stop_reason", "status", "epochs", "stopped_early", "tune_sd.group", "mlflow.runName")
        assert {k: run["run"].data.tags.get(k) for k in keep} == {k: ml_live[tid]["run"].data.tags.get(k) for k in keep}
    # exported again into the same store: the runs go on, every report once
    assert main(["export", str(copy), "--to", f"mlflow={store}"]) == 0
    ml_again, _ = mlflow_runs(f"sqlite:///{store / 'mlflow.db'}", "logged")
    assert {tid: run["history"] for tid, run in ml_again.items()} == {tid: run["history"] for tid, run in ml_later.items()}


@pytest.mark.slow
def test_analyze_log_adds_the_tables_trends_and_figures(logged, tmp_path, capsys):
    from mlflow import MlflowClient

    from tune_sd.cli import main

    out = tmp_path / "analysis"
    assert main(["analyze", str(logged["exp"]), "--out", str(out), "--log", "mlflow", "--log", "wandb"]) == 0
    client = MlflowClient(logged["mlflow"])
    exp = client.get_experiment_by_name("logged")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`tune_sd.kind` = 'analysis'")
    assert len(runs) == 1
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"tables", "figures", "trends.json"} <= artifacts
    tables = {Path(a.path).name for a in client.list_artifacts(runs[0].info.run_id, "tables")}
    assert {"configs.parquet", "marks.parquet", "configs.json", "trends.json"} <= tables
    configs = pd.read_parquet(out / "configs.parquet")
    trends = json.loads(Path(client.download_artifacts(runs[0].info.run_id, "trends.json", str(tmp_path))).read_text())
    assert set(trends) == {f"lr={short_value(lr)}" for lr in LRS} and len(configs) == 2
    analysis = [r for r in wandb_runs(logged["exp"]).values() if r["job_type"] == "analysis"]
    assert len(analysis) == 1
    logged_keys = {k.split(".")[0] for row in analysis[0]["history"].values() for k in row}
    assert {"tables/configs", "tables/marks", "figures/trends"} <= logged_keys
    assert set(k[len("trend/"):] for k in analysis[0]["summary"] if k.startswith("trend/")) == set(trends)


# ------------------------------------------------------------------------------ never in the way


@pytest.mark.slow
def test_an_unreachable_service_is_said_once_and_the_sweep_is_complete(tmp_path, monkeypatch, capfd):
    """An unpacked sweep logs to a W&B that cannot be reached (online, at a closed port) and to a
    working MLflow store: W&B is said once, MLflow holds every report, the tables are complete."""
    from tune_sd.spaces import load_space
    from tune_sd.tune.plan import SweepOptions, plan_sweep
    from tune_sd.tune.sweep import run_sweep

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "3")
    space = write_space(tmp_path, "unreached", {"disc": {"parameters": {"lr": {"values": LRS}}}},
                        base={**SMALL, "figure_every": 0}, tune={"scheduler": "fifo", "num_samples": 1})
    store = tmp_path / "ml"
    plan = plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp_path / "store"), name="unreached",
                                                           pack="off", log=["wandb", f"mlflow={store}"]))
    exp = run_sweep(plan)
    err = capfd.readouterr().err
    curves, trials = read_tables(Path(exp))
    assert len(trials) == 2 and set(trials.status) == {"TERMINATED"}
    assert_complete_curves(curves)
    said = [line for line in err.splitlines() if line.startswith("tune-sd: wandb")]
    assert len(said) == 1 and "not logging there" in said[0], err[-3000:]
    ml, _ = mlflow_runs(f"sqlite:///{store / 'mlflow.db'}", "unreached")
    assert set(ml) == set(trials.trial_id)
    for tid, run in ml.items():
        assert_same_history(run["history"], curves_history(curves, tid))


def test_a_bad_tracking_uri_a_bad_project_or_a_missing_package_is_said_once(tmp_path, capfd, monkeypatch):
    from tune_sd.tracking import Tracker

    tracker = Tracker([Target("mlflow", "bogus://nowhere"), Target("wandb", "bad/project#name")], "s", "study",
                      ["disc.lr"], folder=tmp_path)
    for i in range(3):
        tracker.start(f"t{i}", {"disc": {"lr": 1e-4}}, {})
        tracker.rows(f"t{i}", [{"epoch": 20, "avg_acc": 0.5}, {"epoch": 40, "avg_acc": 0.6}])
        tracker.end(f"t{i}", {"stop_reason": "completed"})
    tracker.close()
    err = capfd.readouterr().err.splitlines()
    assert len([line for line in err if line.startswith("tune-sd: mlflow (bogus://nowhere)")]) == 1, err
    assert len([line for line in err if line.startswith("tune-sd: wandb (bad/project#name)")]) == 1, err
    assert not tracker.active

    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    tracker = Tracker([Target("wandb", "p")], "s", "study", None, folder=tmp_path)
    tracker.start("t0", {}, {})
    tracker.close()
    err = capfd.readouterr().err
    assert "is not installed" in err and "tune-sd[wandb]" in err and err.count("tune-sd: wandb") == 1


def test_lines_said_by_two_writers_at_once_stay_whole(capfd):
    import threading

    from tune_sd.tracking.tracker import say

    def many(name):
        for i in range(300):
            say(f"{name} {i}: " + "x" * 200)

    threads = [threading.Thread(target=many, args=(n,)) for n in ("wandb", "mlflow")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 600 and all(line.startswith(("tune-sd: wandb ", "tune-sd: mlflow ")) for line in lines)
