"""A sweep whose driver is killed (SIGKILL) is continued by `tune-sd resume`; every trial ends."""

import os
import signal
import subprocess
import sys
import time

import pytest
from tune_helpers import read_tables, write_space

pytestmark = pytest.mark.slow


def _killed_sweep(tmp_path):
    """A sweep of 2 trials whose driver (and the Ray it started) is killed once 2 checkpoints exist."""
    space = write_space(tmp_path, "killed", {"arch": {"parameters": {"lat_size": {"values": [3, 5]}}}},
                        base={"epochs": 600, "checkpoint_every": 1, "figure_every": 0},
                        tune={"scheduler": "fifo", "num_samples": 1})
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "tune_sd.cli", "sweep", str(space), "--storage", str(store)]
    # its own session, so that the driver and the Ray it started can be killed together (a crash)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    exp = store / "killed"
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if len(list(exp.glob("trial_*/checkpoint_*"))) >= 2:
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("no checkpoint appeared")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (exp / "trials.parquet").exists()
    return store, exp


def test_killed_driver_is_resumed(tmp_path):
    store, exp = _killed_sweep(tmp_path)
    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "resume", "killed", "--storage", str(store)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    curves, trials = read_tables(exp)
    assert len(trials) == 2 and set(trials.status) == {"TERMINATED"}
    assert (trials.epochs == 600).all()
    assert_resumed_curves(curves)
    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "status", "killed", "--storage", str(store)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.count("TERMINATED") == 2


def test_a_checkpoint_gone_since_the_last_experiment_state_is_replaced_by_the_next(tmp_path):
    """Tune keeps 2 checkpoints per trial and deletes older ones as new ones come; a driver killed
    between such a deletion and its next save of the experiment state names a checkpoint that is gone.
    Here every checkpoint of each trial is renamed to a later index: whichever one the state names is
    gone and newer ones exist. The trials go on from the next one and end; each report in the curve
    once, in order (a report the killed driver had not logged before that checkpoint may be missing)."""
    store, exp = _killed_sweep(tmp_path)
    for trial in exp.glob("trial_*"):
        for ck in sorted(trial.glob("checkpoint_*"), reverse=True):
            ck.rename(trial / f"checkpoint_{int(ck.name.split('_')[1]) + 50:06d}")
    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "resume", "killed", "--storage", str(store)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    curves, trials = read_tables(exp)
    assert len(trials) == 2 and set(trials.status) == {"TERMINATED"}, trials[["status", "error"]]
    assert (trials.epochs == 600).all()
    assert_resumed_curves(curves)


def assert_resumed_curves(curves):
    """Each report once, in order, to the end. Where the checkpoint the experiment state named was gone
    (see above), the reports the killed driver had not logged before the next checkpoint are missing
    (a report or two at this cadence); otherwise none is."""
    assert not curves.duplicated(["trial_id", "iteration"]).any()
    for _, c in curves.groupby("trial_id"):
        c = c.sort_values("iteration")
        assert list(c.epoch) == [20 * i for i in c.iteration] and c.epoch.iloc[-1] == 600
        assert c.iteration.iloc[0] == 1 and len(c) >= 28
