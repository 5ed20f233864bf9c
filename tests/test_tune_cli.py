"""`tune-sd spaces`, `sweep --dry-run` and how bad spaces are refused (no Ray started)."""

import subprocess
import sys

import pytest
import yaml


def tune_sd(*args):
    return subprocess.run([sys.executable, "-m", "tune_sd.cli", *args], capture_output=True, text=True, timeout=120)


def test_spaces_lists_the_studies():
    p = tune_sd("spaces")
    assert p.returncode == 0 and "sd-study" in p.stdout


def test_dry_run_prints_the_space_and_sampled_configs(tmp_path):
    p = tune_sd("sweep", "sd-study", "--dry-run", "--quick", "--storage", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "disc.lr" in p.stdout and "trial 0:" in p.stdout and "epochs=400" in p.stdout
    assert not list(tmp_path.iterdir())  # nothing ran, nothing written


def test_seed_wandb_config_alone_is_a_valid_space(tmp_path):
    f = tmp_path / "seed.yaml"
    f.write_text(yaml.safe_dump({"method": "random", "parameters": {
        "arch": {"parameters": {"hid_num": {"values": [[2, 0]]}, "lat_size": {"values": [1, 3, 5, 10]}}},
        "disc": {"parameters": {"lr": {"values": [1e-5, 1e-4]}, "gp": {"values": [0.0, 1e-5]}}}}}))
    p = tune_sd("sweep", str(f), "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "hid_size=128" not in p.stdout  # defaults are the Step 15 ones, shown only where they differ


@pytest.mark.parametrize("text, fragments", [
    ("method: random\nparameters:\n  disc:\n    parameters:\n      lrr: {values: [1]}\n", ["lrr", "allowed"]),
    ("method: random\nparameters:\n  disc:\n    parameters:\n      lr: {values: [-1]}\n", ["lr"]),
    ("method: sideways\nparameters: {}\n", ["method"]),
    ("method: random\nparameters:\n  disc:\n    parameters:\n      lr: {distribution: uniform}\n", ["lr", "min"]),
    ("method: random\nparameters:\n  disc: [1, 2\n", ["line"]),
    ("method: random\nbase: {disc: {wdd: 1}}\nparameters: {}\n", ["wdd"]),
    ("method: random\ntune: {schedular: asha}\nparameters: {}\n", ["schedular"]),
])
def test_bad_spaces_are_refused_with_the_key_path(text, fragments, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    p = tune_sd("sweep", str(f), "--dry-run")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "bad.yaml" in p.stderr
    for frag in fragments:
        assert frag in p.stderr, p.stderr


def test_unknown_study_lists_the_known_ones():
    p = tune_sd("sweep", "no-such-study", "--dry-run")
    assert p.returncode == 2 and "sd-study" in p.stderr and "Traceback" not in p.stderr
