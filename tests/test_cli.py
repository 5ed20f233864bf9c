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


def command_parsers(parser=None) -> dict:
    """{"sweep": its parser, "lib check": ..., ...}: every command of ``tune-sd``, nested ones too."""
    import argparse

    from tune_sd.cli import build_parser

    parser = parser or build_parser()
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = sub
                out.update({f"{name} {k}": v for k, v in command_parsers(sub).items()})
    return out


def option(parser, flag):
    return next(a for a in parser._actions if flag in a.option_strings)


def test_importing_the_cli_and_building_its_parser_loads_neither_ray_nor_torch():
    # every command's parser is built before any runs: `tune-sd spaces` and `--help` must not pay for Ray
    # (nor torch: the help is instant)
    code = ("import sys, tune_sd.cli as cli; cli.build_parser(); "
            "print(' '.join(m for m in ('ray', 'torch') if m in sys.modules) or 'none')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["none"]


def test_scheduler_and_search_choices_are_those_the_sweep_knows():
    from tune_sd.tune.stopping.schedulers import SCHEDULERS
    from tune_sd.tune.choices import SEARCHES

    sweep = command_parsers()["sweep"]
    assert tuple(option(sweep, "--scheduler").choices) == SCHEDULERS
    assert tuple(option(sweep, "--search").choices) == SEARCHES


def test_help_defaults_are_the_codes():
    from tune_sd.tune.stopping.nonlearner import (GRACE, GRACE_MAX, GRACE_SHARE, WINDOW, WINDOW_MAX,
                                                  WINDOW_SHARE, NonLearnerSettings)
    from tune_sd.tune.choices import DEFAULTS

    text = " ".join(command_parsers()["sweep"].format_help().split())
    nl = NonLearnerSettings()
    for fragment in (f"epochs before a stop (default {GRACE_SHARE:.0%} of the planned epochs, within {GRACE}..{GRACE_MAX})",
                     f"epochs looked at (default {WINDOW_SHARE:.0%} of the planned epochs, within {WINDOW}..{WINDOW_MAX})",
                     f"counts as chance (default {nl.margin:g})", f"keep a trial (default {nl.confidence:g})",
                     f"reduction factor (default {DEFAULTS['reduction_factor']:g})",
                     f"from its checkpoint (default {DEFAULTS['max_failures']};",
                     f"else {DEFAULTS['scheduler']});", "over all rungs (default 0.05)"):
        assert fragment in text
    from tune_sd.tune.ladder import QUICK as LADDER_QUICK
    from tune_sd.tune.choices import QUICK

    text = " ".join(command_parsers()["ladder"].format_help().split())
    assert (f"a smoke run: {LADDER_QUICK['epochs']} epochs, {LADDER_QUICK['seeds']} seeds, avg_hor "
            f"{QUICK['avg_hor']}") in text
    assert f"{LADDER_QUICK['seeds']} seeds x {LADDER_QUICK['epochs']} epochs on every rung" in text


def test_every_command_has_help_and_shared_options_parse_alike():
    from tune_sd.cli import build_parser

    parsers = command_parsers()
    assert {"train", "sweep", "resume", "status", "export", "spaces", "analyze", "ladder", "lib check",
            "data make"} <= set(parsers)
    for name, parser in parsers.items():
        assert parser.format_help().startswith(f"usage: tune-sd {name}"), name
    # one declaration each: the same flag means the same destination and type wherever it is offered
    shared = {"--storage": "storage", "--set": "overrides", "--address": "address", "--verbose": "verbose"}
    for flag, dest in shared.items():
        having = [p for p in parsers.values() if any(flag in a.option_strings for a in p._actions)]
        assert having and {option(p, flag).dest for p in having} == {dest}
    run = ["--storage", "S", "--address", "auto", "--cpus-per-trial", "0.5", "--gpus-per-trial", "0.25",
           "--max-concurrent", "2", "--max-failures", "-1", "--set", "a=1", "--set", "b=2", "--seed", "7",
           "--dashboard", "--verbose"]
    for argv in (["sweep", "space", *run], ["ladder", *run]):
        args = build_parser().parse_args(argv)
        assert (args.storage, args.address, args.cpus_per_trial, args.gpus_per_trial, args.max_concurrent,
                args.max_failures, args.overrides, args.seed, args.dashboard, args.verbose) == (
            "S", "auto", 0.5, 0.25, 2, -1, ["a=1", "b=2"], 7, True, True)
        assert build_parser().parse_args(argv[:argv.index("--storage")]).overrides == []  # a fresh list each time
