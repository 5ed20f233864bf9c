"""Safe on shared storage: no code from a file the user did not write runs (a sweep's tuner.pkl, a pickled
split), and no command replaces a table or a run's files with less than they hold unless asked (--force).
Each hostile input is tried as a user would, on the command line: exit 2, one line, nothing on disk changed."""

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthetic_sweeps import engine_sweep
from tune_sd.cli import main
from tune_sd.engine import data as data_mod
from tune_sd.errors import StudyError, UserError

SMALL = ["--set", "disc.hid_num=2", "--set", "disc.hid_size=16", "--set", "arch.lat_size=3", "--set", "epochs=2",
         "--no-progress"]


class Payload:
    """Unpickling it creates the file ``marker``: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(autouse=True)
def no_pickle_opt_in(monkeypatch):
    monkeypatch.setattr(data_mod, "_PICKLE_OPT_IN", False, raising=False)  # --allow-pickle lasts for the process


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes and mode (links as links)."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        st = p.lstat()
        out[str(p)] = (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else None, st.st_mode)
    return out


def _one_line_error(capsys, code, *fragments):
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("tune-sd: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
    return err


# ------------------------------------------------------------------------------------------ resume


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return engine_sweep(tmp_path_factory.mktemp("made") / "tiny", n_trials=2, epochs=40, seed=0)


@pytest.fixture
def hostile(made, tmp_path):
    """A sweep folder whose tuner.pkl (what Tuner.restore unpickles) would create ``marker``."""
    sweep = tmp_path / "store" / "tiny"
    shutil.copytree(made, sweep)
    marker = tmp_path / "PAYLOAD_RAN"
    (sweep / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))
    for f in sweep.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    sweep.chmod(0o755)
    return sweep, marker


@pytest.mark.parametrize("how", ["world-writable folder", "world-writable tuner.pkl", "another user's tuner.pkl",
                                 "another user's trial folder"])
def test_resume_refuses_a_folder_others_can_write(hostile, capsys, how):
    sweep, marker = hostile
    target = {"world-writable folder": sweep, "world-writable tuner.pkl": sweep / "tuner.pkl"}.get(how)
    if target is not None:
        target.chmod(target.stat().st_mode | 0o002)
    else:
        if os.getuid() != 0:
            pytest.skip("giving a file to another user needs root")
        target = sweep / "tuner.pkl" if "tuner" in how else next(sweep.glob("trial_*"))
        os.chown(target, 4242, -1)
    before = _snapshot(sweep)
    code = main(["resume", "tiny", "--storage", str(sweep.parent)])
    err = _one_line_error(capsys, code, str(target), "unpickles", "--trust-storage")
    assert ("another user" in err) == ("another" in how)
    assert not marker.exists() and _snapshot(sweep) == before
    # the same through file://
    code = main(["resume", f"file://{sweep}"])
    _one_line_error(capsys, code, str(target), "--trust-storage")
    assert not marker.exists() and _snapshot(sweep) == before


def test_resume_needs_consent_for_remote_storage(monkeypatch):
    from tune_sd.tune.trust import check_resume_trusted

    monkeypatch.delenv("TUNE_SD_TRUSTED_STORAGE", raising=False)
    for uri in ("s3://lab/sweeps/tiny", "gs://lab/tiny"):
        with pytest.raises(StudyError, match=r"not resumed: resume unpickles.*--trust-storage.*TUNE_SD_TRUSTED_STORAGE"):
            check_resume_trusted(uri)
        check_resume_trusted(uri, trust=True)
    monkeypatch.setenv("TUNE_SD_TRUSTED_STORAGE", "gs://other, s3://lab/sweeps")
    check_resume_trusted("s3://lab/sweeps/tiny")
    with pytest.raises(StudyError):
        check_resume_trusted("s3://lab/sweeps-of-someone/tiny")  # a prefix is a whole folder


def test_resume_trusts_a_folder_that_is_the_users_alone(hostile, monkeypatch):
    from tune_sd.tune.trust import check_resume_trusted

    sweep, _ = hostile
    monkeypatch.delenv("TUNE_SD_TRUSTED_STORAGE", raising=False)
    check_resume_trusted(sweep)
    check_resume_trusted(f"file://{sweep}")
    sweep.parent.chmod(0o777)  # anyone could swap the sweep folder for another
    with pytest.raises(StudyError, match="without the sticky bit"):
        check_resume_trusted(sweep)
    sweep.parent.chmod(0o1777)  # as /tmp: only the owner renames what is theirs
    check_resume_trusted(sweep)
    (sweep / "tuner.pkl").chmod(0o666)
    with pytest.raises(StudyError):
        check_resume_trusted(sweep)
    check_resume_trusted(sweep, trust=True)  # --trust-storage: the user vouches for who can write there


@pytest.mark.parametrize("command", ["status", "export", "analyze", "train --critic-from", "sweep --critic-from"])
def test_reading_commands_never_unpickle(hostile, tmp_path, capsys, command):
    """status, export, analyze and --critic-from read a sweep holding a hostile tuner.pkl (and a hostile
    pickle in place of a trial's checkpoint folder files) without running it."""
    sweep, marker = hostile
    (sweep / "searcher-state-2024.pkl").write_bytes(pickle.dumps(Payload(marker)))
    for trial in sweep.glob("trial_*"):
        (trial / "checkpoint_000000" / ".metadata.pkl").write_bytes(pickle.dumps(Payload(marker)))
    storage = str(sweep.parent)
    argv = {"status": ["status", "tiny", "--storage", storage],
            "export": ["export", "tiny", "--storage", storage],
            "analyze": ["analyze", "tiny", "--storage", storage, "--out", str(tmp_path / "report"), "--n-wrong", "1"],
            "train --critic-from": ["train", "--critic-from", str(sweep), "--out", str(tmp_path / "reg"),
                                    "--set", "task=regularize", "--set", "epochs=1", "--no-progress"],
            "sweep --critic-from": ["sweep", "regularize-dsn", "--critic-from", str(sweep), "--dry-run",
                                    "--storage", storage]}[command]
    main(argv)
    capsys.readouterr()
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ pickled splits


@pytest.fixture
def pickled(tmp_path):
    """A data folder with the original project's layout (X10.gz, X10.mask) whose mask would create
    ``marker``, and a lone pickled split file that would too."""
    folder = tmp_path / "data"
    folder.mkdir()
    np.savetxt(folder / "X10.gz", np.random.default_rng(0).normal(size=(20, 2)))
    marker = tmp_path / "PAYLOAD_RAN"
    (folder / "X10.mask").write_bytes(pickle.dumps(Payload(marker)))
    (tmp_path / "split.pkl").write_bytes(pickle.dumps(Payload(marker)))
    return folder, tmp_path / "split.pkl", marker


def test_a_pickled_split_never_runs_without_the_flag(pickled, tmp_path, capsys):
    folder, split, marker = pickled
    (tmp_path / "c.yaml").write_text(f"data:\n  allow_pickle: true\n  split_path: {split}\n")
    cases = [(["--set", f"data.path={folder}"], "--allow-pickle on the command line"),
             (["--set", f"data.split_path={split}"], "--allow-pickle on the command line"),
             (["--set", f"data.path={folder}", "--set", "data.allow_pickle=true"], "data.allow_pickle: true is refused"),
             (["--config", str(tmp_path / "c.yaml")], "data.allow_pickle: true is refused")]
    before = _snapshot(tmp_path)
    for args, says in cases:
        code = main(["train", "--out", str(tmp_path / "run"), *args, *SMALL])
        _one_line_error(capsys, code, says)
        assert not marker.exists() and _snapshot(tmp_path) == before


def test_a_space_cannot_switch_on_unpickling(tmp_path, capsys):
    for i, text in enumerate(["parameters:\n  data.allow_pickle: {value: true}\n",
                              "parameters:\n  data:\n    parameters:\n      allow_pickle: {values: [false, true]}\n",
                              "parameters:\n  disc.lr: {values: [0.001]}\nbase:\n  data: {allow_pickle: true}\n"]):
        space = tmp_path / f"space{i}.yaml"
        space.write_text("method: random\n" + text)
        code = main(["sweep", str(space), "--dry-run", "--storage", str(tmp_path / "st")])
        _one_line_error(capsys, code, "allow_pickle", "refused", "--allow-pickle")
    code = main(["sweep", "sd-study", "--dry-run", "--storage", str(tmp_path / "st"), "--set", "data.allow_pickle=true"])
    _one_line_error(capsys, code, "data.allow_pickle")
    assert not (tmp_path / "st").exists()


def test_allow_pickle_on_the_command_line_reads_the_original_split(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    np.savetxt(folder / "X10.gz", np.random.default_rng(0).normal(size=(20, 2)))
    masks = {s: np.isin(np.arange(20), idx) for s, idx in
             (("train", range(14)), ("val", range(14, 17)), ("test", range(17, 20)))}
    (folder / "X10.mask").write_bytes(pickle.dumps(masks))
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "train", "--allow-pickle", "--out", str(out),
                        "--set", f"data.path={folder}", *SMALL], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "allow_pickle: false" in (out / "config.yaml").read_text()  # the opt-in is never part of a config


def test_a_run_saved_with_the_old_config_key_resumes(tmp_path):
    """Runs saved before the opt-in moved to the command line keep data.allow_pickle: true in their
    checkpoint's config: they resume (a pickled split is then read only with --allow-pickle)."""
    import torch

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *SMALL]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["config"]["data"]["allow_pickle"] = True
    torch.save(state, out / "checkpoint.pt")
    assert main(["train", "--resume", str(out), "--set", "epochs=3", "--no-progress"]) == 0


# ------------------------------------------------------------------------------------------ tables kept


@pytest.fixture
def tables_only(made, tmp_path):
    """A sweep's tables copied without its trial folders (as from a colleague)."""
    sweep = tmp_path / "store" / "tiny"
    sweep.mkdir(parents=True)
    for name in ("curves.parquet", "trials.parquet", "tune_sd.json"):
        shutil.copy(made / name, sweep / name)
    return sweep


def test_export_does_not_replace_tables_with_fewer_rows(tables_only, capsys):
    sweep = tables_only
    rows = len(pd.read_parquet(sweep / "curves.parquet"))
    assert rows > 0
    before = _snapshot(sweep)
    code = main(["export", "tiny", "--storage", str(sweep.parent)])
    _one_line_error(capsys, code, f"holds {rows} rows", "its trial folders give 0", "--force")
    assert _snapshot(sweep) == before
    assert main(["export", "tiny", "--storage", str(sweep.parent), "--force"]) == 0
    assert len(pd.read_parquet(sweep / "curves.parquet")) == 0


def test_critic_from_and_ladder_report_do_not_replace_a_table(tables_only, tmp_path, capsys):
    sweep = tables_only
    (sweep / "trials.parquet").unlink()  # they write the trials table where it is missing: never over curves
    before = _snapshot(sweep)
    code = main(["train", "--critic-from", str(sweep), "--out", str(tmp_path / "reg"), "--set", "task=regularize",
                 "--no-progress"])
    _one_line_error(capsys, code, "curves.parquet: holds", "--force")
    assert _snapshot(sweep) == before
    code = main(["ladder", "--report", "tiny", "--storage", str(sweep.parent)])
    _one_line_error(capsys, code, "curves.parquet: holds", "--force")
    assert _snapshot(sweep) == before


def test_export_on_a_file_uri_is_atomic_and_kept(tables_only, capsys):
    from tune_sd import store

    sweep = tables_only
    code = main(["export", f"file://{sweep}"])
    _one_line_error(capsys, code, "holds", "--force")
    target = sweep.parent / "elsewhere.parquet"
    target.write_bytes(b"keep")
    (sweep / "curves.parquet").unlink()
    (sweep / "curves.parquet").symlink_to(target)
    with pytest.raises(UserError, match="symbolic link"):
        store.write_bytes(f"file://{sweep}/curves.parquet", b"new")
    assert target.read_bytes() == b"keep"
    store.write_bytes(f"file://{sweep}/new.json", b"{}")
    assert (sweep / "new.json").read_bytes() == b"{}" and not list(sweep.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------ train --out


def test_train_out_does_not_replace_a_runs_files(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("# mine\n")
    code = main(["train", "--out", str(out), *SMALL])
    _one_line_error(capsys, code, "already holds config.yaml", "--force")
    assert (out / "config.yaml").read_text() == "# mine\n" and os.listdir(out) == ["config.yaml"]
    # a link in place of a run file: never written through, --force or not
    target = tmp_path / "precious.txt"
    target.write_text("keep")
    (out / "config.yaml").unlink()
    (out / "config.yaml").symlink_to(target)
    for force in ([], ["--force"]):
        code = main(["train", "--out", str(out), *SMALL, *force])
        _one_line_error(capsys, code, "symbolic link")
        assert target.read_text() == "keep" and os.listdir(out) == ["config.yaml"]
    (out / "config.yaml").unlink()
    (out / "config.yaml").write_text("# mine\n")
    assert main(["train", "--out", str(out), *SMALL, "--force"]) == 0
    assert "disc:" in (out / "config.yaml").read_text()


def test_atomic_write_and_figures_refuse_a_symlink(tmp_path):
    from tune_sd.analysis.figures import new_figure, save
    from tune_sd.engine.atomic import atomic_write

    target = tmp_path / "precious.txt"
    target.write_text("keep")
    link = tmp_path / "out.png"
    link.symlink_to(target)
    with pytest.raises(UserError, match="symbolic link"):
        atomic_write(link, lambda tmp: Path(tmp).write_text("new"))
    with pytest.raises(UserError, match="symbolic link"):
        save(new_figure(2, 2), link)
    assert target.read_text() == "keep" and link.is_symlink()
    assert save(new_figure(2, 2), tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------------------ sweep names


@pytest.mark.parametrize("name", ["../../escape", "/etc", "a/b", "..", "a\\b"])
def test_sweep_names_are_plain_names(tmp_path, capsys, name):
    storage = tmp_path / "deep" / "st"
    for argv in (["sweep", "sd-study", "--dry-run"], ["ladder", "--quick", "--dry-run"]):
        code = main([*argv, "--storage", str(storage), "--name", name])
        _one_line_error(capsys, code, "not a plain name")
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escape").exists()


def test_same_name_guard_on_uri_storage(made, tmp_path, capsys):
    """A second sweep of a name that holds one is refused on a storage URI too, before Ray starts."""
    sweep = tmp_path / "store" / "tiny"
    shutil.copytree(made, sweep)
    before = _snapshot(sweep)
    code = main(["sweep", "sd-study", "--quick", "--storage", f"file://{sweep.parent}", "--name", "tiny"])
    _one_line_error(capsys, code, "already holds a sweep", "tune-sd resume tiny")
    assert _snapshot(sweep) == before


@pytest.mark.slow
def test_same_name_guard_on_a_fake_s3(made, capsys):
    from pyarrow import fs

    from fake_s3 import fake_s3

    with fake_s3() as bucket:
        s3, _ = fs.FileSystem.from_uri(bucket)
        fs.copy_files(str(made), "sweeps/results/tiny", source_filesystem=fs.LocalFileSystem(),
                      destination_filesystem=s3)
        code = main(["sweep", "sd-study", "--quick", "--storage", f"{bucket}/results", "--name", "tiny"])
        _one_line_error(capsys, code, "already holds a sweep")


# ------------------------------------------------------------------------------------------ cluster


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_cluster_configs_require_rays_token_authentication(name):
    """Every node starts Ray with token authentication required, and gets the cluster's token (made on the
    launching machine, never written in the file); the configs still pass Ray's own schema."""
    import copy

    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / name).read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    starts = [c for key in ("head_start_ray_commands", "worker_start_ray_commands") for c in config[key]
              if "ray start" in c]
    assert len(starts) == 2 and all(c.startswith("RAY_AUTH_MODE=token ray start") for c in starts)
    mounts = {remote: local for remote, local in config["file_mounts"].items() if remote.endswith("/.ray/auth_token")}
    assert list(mounts.values()) == ["~/.ray/auth_token"]
    assert any("chmod 600 ~/.ray/auth_token" in c for c in config["setup_commands"])
