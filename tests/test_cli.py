"""The `tune-sd` command end to end: train, resume, lib check, and how user errors are reported."""

import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml

SMALL = ["--set", "disc.hid_num=2", "--set", "disc.hid_size=16", "--set", "arch.lat_size=3",
         "--set", "data.n_points=100", "--set", "data.split_sizes=[60,20,20]", "--no-progress"]


def tune_sd(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tune_sd.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in proc.stderr, proc.stderr


def test_train_writes_curve_config_and_checkpoint_and_resumes(tmp_path):
    out = tmp_path / "run"
    p = tune_sd("train", "--out", str(out), "--set", "epochs=30", "--seed", "7", *SMALL)
    assert p.returncode == 0, p.stderr
    curve = pd.read_parquet(out / "curve.parquet")
    assert list(curve.epoch) == list(range(1, 31))
    for col in ("acc", "acc_mean", "avg_acc", "loss_real", "loss_fake", "loss_gp", "grad_max"):
        assert col in curve.columns
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["seed"] == 7 and cfg["epochs"] == 30
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 30

    p = tune_sd("train", "--resume", str(out), "--set", "epochs=45", "--no-progress")
    assert p.returncode == 0, p.stderr
    resumed = pd.read_parquet(out / "curve.parquet")
    assert list(resumed.epoch) == list(range(1, 46))
    pd.testing.assert_frame_equal(resumed.iloc[:30], curve)  # the first part is untouched

    # the resumed curve is the uninterrupted one
    straight = tmp_path / "straight"
    p = tune_sd("train", "--out", str(straight), "--set", "epochs=45", "--seed", "7", *SMALL)
    assert p.returncode == 0, p.stderr
    full = pd.read_parquet(straight / "curve.parquet")
    cols = ["acc", "acc_mean", "avg_acc", "loss_real", "loss_fake", "loss_gp", "grad_max"]
    pd.testing.assert_frame_equal(full[cols], resumed[cols])


def test_train_accepts_a_config_file_with_the_notebooks_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"epochs": 5, "disc": {"hid_num": [2, 2], "hid_size": [8, 16], "lr": 1e-3},
                                 "ext": ["grad"], "ext_type": "embed", "arch": {"lat_size": 2}}))
    p = tune_sd("train", "--config", str(f), "--out", str(tmp_path / "o"), "--set", "data.n_points=50",
                "--set", "data.split_sizes=[30,10,10]", "--no-progress")
    assert p.returncode == 0, p.stderr
    assert len(pd.read_parquet(tmp_path / "o" / "curve.parquet")) == 5


@pytest.mark.parametrize("args, fragments", [
    (["--set", "disc.lr=-1"], ["disc.lr", "allowed"]),
    (["--set", "disc.lrr=1"], ["disc.lrr", "unknown key"]),
    (["--set", "ext=[stack]"], ["ext", "ext_type: stack"]),
    (["--set", "nonsense"], ["KEY=VALUE"]),
    (["--set", "library.path=/no/such.lib"], ["library.path"]),
    (["--config", "/no/such.yaml"], ["/no/such.yaml", "not found"]),
    (["--resume", "/no/such/run"], ["checkpoint not found"]),
    (["--set", "data.path=/no/such.npy"], ["/no/such.npy"]),
])
def test_train_user_errors_exit_2_without_traceback(args, fragments, tmp_path):
    assert_user_error(tune_sd("train", "--out", str(tmp_path / "x"), *args, "--no-progress"), *fragments)


def test_bad_library_line_names_file_and_line(tmp_path):
    lib = tmp_path / "bad.lib"
    lib.write_text("N0*X10[:,0]**2\n__import__('os').system('echo hi')\n")
    p = tune_sd("train", "--out", str(tmp_path / "x"), "--set", f"library.path={lib}", "--no-progress")
    assert_user_error(p, "bad.lib", "line 2")
    assert "hi" not in p.stdout


def test_existing_run_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    assert tune_sd("train", "--out", str(out), "--set", "epochs=2", *SMALL).returncode == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert_user_error(tune_sd("train", "--out", str(out), *SMALL), "--resume")
    assert (out / "checkpoint.pt").read_bytes() == before


def test_lib_check(tmp_path):
    p = tune_sd("lib", "check", "F10_v1")
    assert p.returncode == 0, p.stderr
    assert "deriv OK" in p.stdout and "OK: 1 function" in p.stdout
    wrong = tmp_path / "wrong.lib"
    wrong.write_text("N0*X10[:,0]**2;N0*X10[:,0]\n")  # the derivative should be 2*N0*x
    p = tune_sd("lib", "check", str(wrong))
    assert p.returncode == 2 and "MISMATCH" in p.stdout + p.stderr
    bad = tmp_path / "bad.lib"
    bad.write_text("np.sin(X10[:,0])\nopen('x')\n")
    assert_user_error(tune_sd("lib", "check", str(bad)), "bad.lib", "line 2")


def test_help_explains_the_commands():
    p = tune_sd("--help")
    assert p.returncode == 0 and "train" in p.stdout and "lib" in p.stdout
    p = tune_sd("train", "--help")
    assert "--resume" in p.stdout and "--set" in p.stdout and "curve.parquet" in p.stdout
