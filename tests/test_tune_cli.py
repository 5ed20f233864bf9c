"""`tune-sd spaces`, `sweep --dry-run` and how bad spaces are refused (no Ray started)."""

import subprocess
import sys

import pytest
import yaml
from test_spaces import EXT_EMBED_PARAMS  # Step 15.5.2's W&B sweep config, without its method


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


# ------------------------------------------------------------------------------ --set and --dry-run (issue 12)

# Step 15.5.2's W&B sweep config as its notebook handed it to wandb.sweep: ext and ext_type lived outside it
STEP_1552 = "method: random\n" + EXT_EMBED_PARAMS


def sections(text):
    """The dry run's blocks by their heading line's first words."""
    out, key = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            key = line.split(" (")[0].split(":")[0]
            out[key] = []
        elif key is not None and line.strip():
            out[key].append(line.strip())
    return out


def test_set_fixes_what_a_notebook_sweep_config_left_out(tmp_path):
    f = tmp_path / "s1552.yaml"
    f.write_text(STEP_1552)
    p = tune_sd("sweep", str(f), "--dry-run", "--storage", str(tmp_path))
    assert p.returncode == 2 and "disc.hid_num" in p.stderr and "Traceback" not in p.stderr
    p = tune_sd("sweep", str(f), "--set", "ext=[grad]", "--set", "ext_type=embed", "--dry-run",
                "--storage", str(tmp_path))
    assert p.returncode == 0, p.stderr
    blocks = sections(p.stdout)
    assert 'ext=["grad"], ext_type="embed"' in " ".join(blocks["fixed for every trial by this sweep"])
    assert any(line.startswith("trial 0: ") and "disc.hid_num=[2, " in line for line in blocks["the first 3 trials, searched keys only"])
    # a swept key set on the command line is fixed: it leaves the searched keys and every trial has it
    p = tune_sd("sweep", str(f), "--set", "ext=[grad]", "--set", "ext_type=embed", "--set", "disc.lr=3e-4",
                "--dry-run", "--storage", str(tmp_path))
    blocks = sections(p.stdout)
    assert not any(line.startswith("disc.lr") for line in blocks["searched"])
    assert "disc.lr=0.0003" in " ".join(blocks["fixed for every trial by this sweep"])
    assert not (tmp_path / "s1552").exists()  # nothing ran


def test_dry_run_shows_searched_and_fixed_keys_apart(tmp_path):
    p = tune_sd("sweep", "sd-study", "--dry-run", "--quick", "--set", "disc.wd=1e-6", "--storage", str(tmp_path))
    assert p.returncode == 0, p.stderr
    blocks = sections(p.stdout)
    searched = [line.split(":")[0] for line in blocks["searched"]]
    assert searched == ["arch.lat_size", "disc.hid_num", "disc.hid_size", "disc.lr", "disc.iters", "disc.gp", "seed"]
    by_space = " ".join(blocks["fixed for every trial by the space"])
    by_sweep = " ".join(blocks["fixed for every trial by this sweep"])
    # base keys are shown whether or not they equal the defaults, and what the sweep fixes apart from them
    assert "arch.in_size=1" in by_space and "disc.betas=[0.9, 0.999]" in by_space and "disc.wd" not in by_space
    assert "disc.wd=1e-06" in by_sweep and "epochs=400" in by_sweep and "report_every=20" in by_sweep
    assert "every other key: its default" in p.stdout
    trials = blocks["the first 3 trials, searched keys only"]
    assert len(trials) == 3
    for line in trials:  # a trial line holds what the search drew, and only that
        keys = [item.split("=")[0] for item in line.split(": ", 1)[1].split(", ")]
        assert keys == searched[:-1], line
