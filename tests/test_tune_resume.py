"""A sweep whose driver is killed (SIGKILL) is continued by `tune-sd resume`; every trial ends."""

import os
import signal
import subprocess
import sys
import time

import pytest
from tune_helpers import assert_complete_curves, read_tables, write_space

pytestmark = pytest.mark.slow


def test_killed_driver_is_resumed(tmp_path):
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

    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "resume", "killed", "--storage", str(store)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    curves, trials = read_tables(exp)
    assert len(trials) == 2 and set(trials.status) == {"TERMINATED"}
    assert (trials.epochs == 600).all()
    assert_complete_curves(curves)
    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "status", "killed", "--storage", str(store)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.count("TERMINATED") == 2
