"""Hostile and broken cases a careful user and a hostile one try: bounded YAML, one driver per sweep folder,
a damaged experiment state, a copied sweep, storage failures and Ctrl-C. Each is exit 2 (130 for Ctrl-C)
and one line, with nothing on disk half written or changed."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from synthetic_sweeps import engine_sweep
from tune_sd.cli import main
from tune_sd.errors import StudyError

SMALL = ["--set", "disc.hid_num=2", "--set", "disc.hid_size=16", "--set", "arch.lat_size=3", "--no-progress"]


def _snapshot(folder: Path) -> dict:
    return {str(p): (p.read_bytes() if p.is_file() else None) for p in sorted(Path(folder).rglob("*"))}


def _one_line(capsys, code, *fragments, expect: int = 2) -> str:
    assert code == expect, capsys.readouterr()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tune-sd: "), err
    assert len(err[0]) < 1000, f"{len(err[0])} characters"
    for fragment in fragments:
        assert fragment in err[0], err[0]
    return err[0]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return engine_sweep(tmp_path_factory.mktemp("made") / "tiny", n_trials=2, epochs=40, seed=0)


# ------------------------------------------------------------------------------------------ 1. YAML


def _laughs(levels: int, width: int = 10, indent: str = "") -> str:
    """Anchors of ``levels`` levels, each ``width`` aliases of the one before: width**levels leaves."""
    lines = [f"{indent}- &a0 [0.5, 0.9]"]
    for i in range(1, levels):
        lines.append(f"{indent}- &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines)


BOMB_CONFIG = "disc:\n  betas:\n" + _laughs(7, indent="    ")  # 10**6 pairs of betas from 1 KB


def test_a_billion_laughs_config_is_refused_before_it_grows(tmp_path, capsys):
    config = tmp_path / "bomb.yaml"
    config.write_text(BOMB_CONFIG)
    before = _peak_mib()
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "run"), *SMALL])
    _one_line(capsys, code, str(config), "line ", "refused", "aliases count as the value they repeat")
    assert _peak_mib() - before < 200  # flat: nothing of the million pairs was built
    assert not (tmp_path / "run").exists()
    # anchors and aliases within the budget read as before
    from tune_sd.engine.config import resolve

    config.write_text("arch:\n  hid_size: &h 24\ndisc:\n  hid_size: *h\n  betas: &b [0.4, 0.8]\n")
    cfg = resolve(config)
    assert cfg.arch.hid_size == cfg.disc.hid_size == 24 and list(cfg.disc.betas) == [0.4, 0.8]


def test_a_billion_laughs_space_base_and_set_value_are_refused(tmp_path, capsys):
    space = tmp_path / "bomb-space.yaml"
    space.write_text("method: random\nparameters:\n  disc.lr: {values: [0.001, 0.0001]}\nbase:\n"
                     "  disc:\n    betas:\n" + _laughs(7, indent="      ") + "\n")
    code = main(["sweep", str(space), "--dry-run", "--storage", str(tmp_path / "st")])
    _one_line(capsys, code, "bomb-space.yaml", "refused")
    value = "[&a0 [0.5, 0.9], " + ", ".join(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)) + "]"
    code = main(["train", "--set", f"disc.betas={value}", "--out", str(tmp_path / "run"), *SMALL])
    _one_line(capsys, code, "--set disc.betas", "refused")
    assert not (tmp_path / "st").exists() and not (tmp_path / "run").exists()


def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path, capsys):
    config = tmp_path / "deep.yaml"
    config.write_text("disc:\n  betas: " + "[" * 10_000 + "]" * 10_000 + "\n")
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "run"), *SMALL])
    _one_line(capsys, code, "deep.yaml, line 2", "nested more than 50 levels deep")


def test_an_oversized_config_is_refused_by_its_size_before_it_is_read(tmp_path, capsys):
    from tune_sd.engine.yaml_limits import MAX_BYTES

    config = tmp_path / "big.yaml"
    config.write_text("epochs: 2\n# " + "x" * MAX_BYTES + "\n")
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "run"), *SMALL])
    _one_line(capsys, code, "big.yaml", f"{MAX_BYTES:,}")


def test_a_long_list_stops_at_the_value_budget(tmp_path, capsys):
    from tune_sd.engine.yaml_limits import MAX_NODES

    config = tmp_path / "long.yaml"
    config.write_text("disc:\n  betas: [" + ", ".join(["0.5"] * (MAX_NODES + 10)) + "]\n")
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "run"), *SMALL])
    _one_line(capsys, code, "long.yaml", f"more than {MAX_NODES:,} values")


# ------------------------------------------------------------------------------------------ 2. one driver


def _claim_in_child(folder: str, start, done, results) -> None:
    from tune_sd.store import claim_sweep

    start.wait()  # all at once
    try:
        claim_sweep(folder)
        results.put("claimed")
    except StudyError:
        results.put("refused")
    done.wait()  # every driver stays alive until all have tried: no claim is a dead driver's


def test_of_drivers_started_at_once_one_claims_the_folder(tmp_path):
    ctx = multiprocessing.get_context("fork")
    n = 6
    start, done, results = ctx.Barrier(n), ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_claim_in_child, args=(str(tmp_path / "st" / "same"), start, done, results))
             for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(60)
    assert outcomes == ["claimed"] + ["refused"] * (n - 1)


def test_a_second_driver_is_refused_naming_the_first(tmp_path, capsys, made):
    holder = subprocess.Popen(["sleep", "120"])
    try:
        exp = tmp_path / "st" / "dup"
        exp.mkdir(parents=True)
        claim = {"host": socket.gethostname(), "pid": holder.pid, "started": "2026-01-01 10:00:00 UTC",
                 "command": "tune-sd sweep dup", "token": "abc"}
        (exp / ".tune_sd.driver").write_text(json.dumps(claim))
        before = _snapshot(exp)
        code = main(["sweep", "sd-study", "--quick", "--storage", str(tmp_path / "st"), "--name", "dup"])
        _one_line(capsys, code, "another driver", f"host {socket.gethostname()}", f"pid {holder.pid}",
                  "started 2026-01-01 10:00:00 UTC", ".tune_sd.driver")
        assert _snapshot(exp) == before
        # resume of a sweep whose driver still runs: refused the same way, nothing restored
        sweep = tmp_path / "st2" / "tiny"
        shutil.copytree(made, sweep)
        (sweep / "tuner.pkl").write_bytes(b"never read")
        _as_tune_writes_it(sweep)
        (sweep / ".tune_sd.driver").write_text(json.dumps(claim))
        before = _snapshot(sweep)
        code = main(["resume", "tiny", "--storage", str(sweep.parent), "--trust-storage"])
        _one_line(capsys, code, "another driver", f"pid {holder.pid}")
        assert _snapshot(sweep) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_drivers_claim_is_taken_over(tmp_path):
    from tune_sd.store import CLAIM_FILE, claim_sweep

    gone = subprocess.Popen(["true"])
    gone.wait()
    exp = tmp_path / "st" / "old"
    exp.mkdir(parents=True)
    (exp / CLAIM_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": gone.pid, "started": "then",
                                              "token": "old"}))
    with claim_sweep(exp) as claim:
        assert json.loads((exp / CLAIM_FILE).read_text())["token"] == claim.info["token"] != "old"
        with pytest.raises(StudyError, match=f"pid {os.getpid()}"):
            claim_sweep(exp)  # a live claim (this process) is not taken over
    assert not (exp / CLAIM_FILE).exists() and sorted(p.name for p in exp.iterdir()) == []


def test_a_claim_on_file_uri_storage(tmp_path):
    from tune_sd.store import CLAIM_FILE, claim_sweep

    uri = f"file://{tmp_path}/st/uri"
    with claim_sweep(uri):
        assert (tmp_path / "st" / "uri" / CLAIM_FILE).is_file()
        with pytest.raises(StudyError, match="another driver"):
            claim_sweep(uri)
    assert not (tmp_path / "st" / "uri" / CLAIM_FILE).exists()


# ------------------------------------------------------------------------------------------ 3. resume


def _as_tune_writes_it(sweep: Path) -> None:
    """The synthetic sweep's experiment state with the runner's state Tune writes beside its trials."""
    state_file = next(sweep.glob("experiment_state-*.json"))
    state = json.loads(state_file.read_text())
    state["runner_data"] = {}
    state_file.write_text(json.dumps(state))


@pytest.fixture
def resumable(made, tmp_path):
    sweep = tmp_path / "store" / "tiny"
    shutil.copytree(made, sweep)
    (sweep / "tuner.pkl").write_bytes(b"never read")  # refused before Ray would unpickle it
    _as_tune_writes_it(sweep)
    return sweep


@pytest.mark.parametrize("damage, says", [
    ("truncated", "not readable JSON"),
    ("no trial_data", "not a Tune experiment state"),
    ("a folder that is gone", "which the sweep does not hold"),
    ("a folder outside", "is not a folder of the sweep"),
    ("a text status", "has the status"),
    ("a damaged tune_sd.json", "tune_sd.json: not the sweep's readable record"),
])
def test_resume_refuses_a_damaged_experiment_state(resumable, capsys, damage, says):
    sweep = resumable
    state_file = next(sweep.glob("experiment_state-*.json"))
    state = json.loads(state_file.read_text())
    trial = json.loads(state["trial_data"][0][0])
    if damage == "truncated":
        state_file.write_text(json.dumps(state)[:40])
    elif damage == "no trial_data":
        state_file.write_text(json.dumps({"runner_data": {}}))
    elif damage == "a damaged tune_sd.json":
        state_file.write_text(json.dumps(state))
        (sweep / "tune_sd.json").write_text("{\"epochs\": ")
    else:
        if damage == "a folder that is gone":
            shutil.rmtree(sweep / trial["relative_logdir"])
        elif damage == "a folder outside":
            trial["relative_logdir"] = "../../elsewhere"
        else:
            trial["status"] = "FINISHED?"
        state["trial_data"][0][0] = json.dumps(trial)
        state_file.write_text(json.dumps(state))
    before = _snapshot(sweep)
    code = main(["resume", "tiny", "--storage", str(sweep.parent), "--trust-storage"])
    _one_line(capsys, code, says, "not resumed")
    assert _snapshot(sweep) == before


def test_a_restored_trial_never_runs_past_its_planned_epochs(made, tmp_path):
    from tune_sd.tune.resume_check import DEFAULT, check_experiment_state, planned_epochs

    sweep = tmp_path / "tiny"
    shutil.copytree(made, sweep)
    (sweep / "tuner.pkl").write_bytes(b"never read")
    state_file = next(sweep.glob("experiment_state-*.json"))
    state = json.loads(state_file.read_text())
    state["runner_data"] = {}
    state_file.write_text(json.dumps(state))
    planned = check_experiment_state(sweep)
    tid = json.loads(state["trial_data"][0][0])["trial_id"]
    assert planned[tid] == 40 and planned[DEFAULT] == 40  # from the trial's params.json and tune_sd.json
    assert planned_epochs({"seed": 1}, tid, planned)["epochs"] == 40  # restored without epochs: not the default
    assert planned_epochs({"epochs": 1000}, tid, planned)["epochs"] == 40
    assert planned_epochs({"epochs": 20}, tid, planned)["epochs"] == 20
    assert planned_epochs({"epochs": 1000}, "new", planned)["epochs"] == 40


@pytest.mark.slow
def test_resume_of_a_finished_sweep_whose_state_lost_its_epochs(tmp_path):
    """A real sweep, finished; its experiment state then says a trial is paused and its config has no
    epochs (Ray would run it to the default, 1000). Resume ends it at the sweep's 40: no new epoch."""
    from tune_helpers import read_tables, write_space

    space = write_space(tmp_path, "fin", {"arch": {"parameters": {"lat_size": {"values": [3]}}}},
                        base={"epochs": 40, "report_every": 10, "checkpoint_every": 1, "figure_every": 0,
                              "avg_hor": 10}, tune={"scheduler": "fifo", "num_samples": 1})
    store = tmp_path / "store"
    run = [sys.executable, "-m", "tune_sd.cli"]
    p = subprocess.run([*run, "sweep", str(space), "--storage", str(store)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    exp = store / "fin"
    curves_before, _ = read_tables(exp)
    state_file = sorted(exp.glob("experiment_state-*.json"))[-1]
    state = json.loads(state_file.read_text())
    trial = json.loads(state["trial_data"][0][0])
    trial["status"] = "PAUSED"
    trial["config"].pop("epochs")
    state["trial_data"][0][0] = json.dumps(trial)
    state_file.write_text(json.dumps(state))
    p = subprocess.run([*run, "resume", "fin", "--storage", str(store)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    curves, trials = read_tables(exp)
    assert (trials.epochs == 40).all() and curves.epoch.max() == 40
    assert len(curves) == len(curves_before)


# ------------------------------------------------------------------------------------------ 4. a copy


def test_tables_record_paths_inside_the_sweep(made):
    _, trials = pd.read_parquet(made / "curves.parquet"), pd.read_parquet(made / "trials.parquet")
    assert "checkpoint" in trials.columns
    for value in list(trials.checkpoint) + list(trials.path):
        assert not os.path.isabs(value) and ".." not in value.split("/")
    for value in trials.checkpoint:
        assert (made / value / "study.pt").is_file()


def test_a_copied_sweep_reads_its_own_checkpoints_only(made, tmp_path):
    from tune_sd.analysis.gallery import checkpoint_path
    from tune_sd.analysis.load import load_sweep

    copy = tmp_path / "copy" / "tiny"
    shutil.copytree(made, copy)
    trials = pd.read_parquet(copy / "trials.parquet")
    # a table from someone else: absolute paths to wherever they kept their sweep (here: the original)
    trials["checkpoint"] = [str(made / c) for c in trials["checkpoint"]]
    trials["path"] = [str(made / c) for c in trials["path"]]
    trials.to_parquet(copy / "trials.parquet")
    sweep = load_sweep(str(copy))
    for _, trial in sweep.trials.iterrows():
        f = checkpoint_path(sweep, trial)
        assert copy.resolve() in f.resolve().parents
    # a path that climbs out, and a checkpoint folder that is a link out of the sweep, are refused
    trial = sweep.trials.iloc[0].copy()
    trial["checkpoint"], trial["path"] = "../../outside/checkpoint_000000", None
    with pytest.raises(StudyError, match="leaves the sweep folder"):
        checkpoint_path(sweep, trial)
    outside = tmp_path / "outside"
    shutil.copytree(made / pd.read_parquet(made / "trials.parquet").checkpoint.iloc[0], outside)
    (copy / "trial_link").mkdir()
    (copy / "trial_link" / "checkpoint_000000").symlink_to(outside)
    trial["checkpoint"] = "trial_link/checkpoint_000000"
    with pytest.raises(StudyError, match="leads out of the sweep folder"):
        checkpoint_path(sweep, trial)


# ------------------------------------------------------------------------------------------ 5. storage


@pytest.mark.parametrize("where", ["the storage", "a folder above it"])
def test_a_storage_that_is_a_file(tmp_path, capsys, where):
    f = tmp_path / "results.txt"
    f.write_text("mine")
    storage = f if where == "the storage" else f / "sub"
    for dry in (["--dry-run"], []):
        code = main(["sweep", "sd-study", "--quick", *dry, "--storage", str(storage)])
        _one_line(capsys, code, f"--storage {storage}", "not a folder")
    assert f.read_text() == "mine"


@pytest.mark.parametrize("number, says", [(errno.EROFS, "read-only"), (errno.ENOSPC, "no space left"),
                                          (errno.EACCES, "permission denied")])
def test_export_force_onto_a_storage_that_fails(made, tmp_path, capsys, monkeypatch, number, says):
    import pyarrow.parquet as pq

    sweep = tmp_path / "tiny"
    shutil.copytree(made, sweep)
    _older_tables(sweep)
    before = _snapshot(sweep)
    real = pq.write_table
    calls = []

    def failing(table, where, *a, **k):  # the first table is written; the second finds the disk failing
        calls.append(where)
        if len(calls) == 2:
            raise OSError(number, os.strerror(number), str(where))
        return real(table, where, *a, **k)

    monkeypatch.setattr(pq, "write_table", failing)
    code = main(["export", str(sweep), "--force"])
    _one_line(capsys, code, says, str(sweep))
    assert _snapshot(sweep) == before  # both tables as they were, no temporary file left


def test_train_force_onto_a_full_disk_keeps_the_old_run(tmp_path, capsys, monkeypatch):
    import torch

    out = tmp_path / "run"
    assert main(["train", *SMALL, "--set", "epochs=2", "--out", str(out)]) == 0
    capsys.readouterr()
    before = _snapshot(out)

    def full(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0: "
                           "PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    code = main(["train", *SMALL, "--set", "epochs=3", "--set", "disc.lr=0.01", "--out", str(out), "--force"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()  # the run's start line, then the error, one line
    assert "Traceback" not in "\n".join(err) and [line for line in err if line.startswith("tune-sd: ")] == err[-1:]
    assert f"{out / 'checkpoint.pt'}: cannot write" in err[-1]
    assert _snapshot(out) == before  # the old config.yaml beside the old checkpoint, nothing half written


# ------------------------------------------------------------------------------------------ 6. Ctrl-C


def _older_tables(sweep: Path) -> None:
    """Tables that differ from what export would write now (an export from before the last trials)."""
    for name in ("curves.parquet", "trials.parquet"):
        pd.read_parquet(sweep / name).iloc[:1].to_parquet(sweep / name)


def _swallowed_ctrl_c():
    """Ctrl-C arriving where a library catches it (a finaliser, a callback): the handler runs, the
    KeyboardInterrupt it raises is lost."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        if callable(handler):
            handler(signal.SIGINT, None)
    except KeyboardInterrupt:
        pass


def test_ctrl_c_late_in_analyze_exits_130_and_writes_nothing(made, tmp_path, capsys, monkeypatch):
    from tune_sd.analysis import pipeline

    out = tmp_path / "analysis"
    out.mkdir()
    (out / "report.html").write_text("the last report")
    real = pipeline.write_report

    def late(*a, **k):
        path = real(*a, **k)
        _swallowed_ctrl_c()
        return path

    monkeypatch.setattr(pipeline, "write_report", late)
    code = main(["analyze", str(made), "--out", str(out), "--n-wrong", "1"])
    _one_line(capsys, code, "interrupted", expect=130)
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]
    assert (out / "report.html").read_text() == "the last report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis"]  # no half-made report beside it


def test_ctrl_c_in_export_leaves_both_tables(made, tmp_path, capsys, monkeypatch):
    import pyarrow.parquet as pq

    sweep = tmp_path / "tiny"
    shutil.copytree(made, sweep)
    _older_tables(sweep)
    before = _snapshot(sweep)
    real = pq.write_table
    calls = []

    def interrupted(table, where, *a, **k):
        calls.append(where)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(table, where, *a, **k)

    monkeypatch.setattr(pq, "write_table", interrupted)
    code = main(["export", str(sweep), "--force"])
    _one_line(capsys, code, "interrupted", expect=130)
    assert _snapshot(sweep) == before


def test_a_swallowed_ctrl_c_in_status_and_lib_check_exits_130(made, tmp_path, capsys, monkeypatch):
    from tune_sd.engine import library_check
    from tune_sd.tune import results

    real_collect = results.collect

    def collect(*a, **k):
        _swallowed_ctrl_c()
        return real_collect(*a, **k)

    monkeypatch.setattr(results, "collect", collect)
    _one_line(capsys, main(["status", str(made)]), "interrupted", expect=130)
    real_check = library_check.check_library

    def check(*a, **k):
        _swallowed_ctrl_c()
        return real_check(*a, **k)

    monkeypatch.setattr(library_check, "check_library", check)
    lib = tmp_path / "one.lib"
    lib.write_text("N0*X10[:,0]**2\n")
    _one_line(capsys, main(["lib", "check", str(lib), "--samples", "2"]), "interrupted", expect=130)
