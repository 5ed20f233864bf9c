"""`analyze`, `--critic-from` and `ladder --report` read sweeps on storage URIs (file://, a local fake S3)
through pyarrow's file systems, as `sweep`, `status` and `resume` do."""

import json
import shutil

import pandas as pd
import pytest

from fake_s3 import fake_s3
from tune_sd.analysis import analyze, load_sweep
from synthetic_sweeps import engine_sweep
from tune_sd.errors import ConfigError, StudyError
from tune_sd.tune.critic_from import resolve_critic
from tune_sd.analysis.ladder import ladder_report


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A small real sweep (engine-made, real checkpoints), kept aside; tests copy it where they need it."""
    return engine_sweep(tmp_path_factory.mktemp("made") / "tiny", n_trials=3, epochs=60, seed=0)


@pytest.fixture
def remote(made, tmp_path, monkeypatch):
    """The sweep under tmp/remote/ as file://, its original folder out of reach (the checkpoint paths it
    recorded lead nowhere, as on another machine), a fresh working folder and cache."""
    moved = tmp_path / "remote" / "tiny"
    shutil.copytree(made, moved)
    trials = pd.read_parquet(moved / "trials.parquet")
    trials["checkpoint"] = trials["checkpoint"].str.replace(str(made), "/elsewhere/tiny", regex=False)
    trials.to_parquet(moved / "trials.parquet")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return f"file://{tmp_path / 'remote'}", moved


def _ladder_sweep(folder):
    rows = [{"trial_id": f"{m}-{r}-{i}", "status": "TERMINATED", "final_avg_acc": a, "variant": m, "rung": r}
            for (m, r), accs in {("none", "L1_quadratic"): [0.9, 0.8], ("none", "L2_cubic"): [0.55, 0.5]}.items()
            for i, a in enumerate(accs)]
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "trials.parquet")
    (folder / "ladder.json").write_text(json.dumps({"rungs": ["L1_quadratic", "L2_cubic"], "modes": ["none"]}))
    return folder


# ------------------------------------------------------------------------------------------ file://


def test_analyze_reads_a_sweep_on_a_file_uri(remote, tmp_path):
    root, moved = remote
    sweep = load_sweep(f"{root}/tiny")
    assert sweep.path == f"{root}/tiny" and sweep.name == "tiny" and len(sweep.trials) == 3
    assert load_sweep("tiny", storage=root).trials.equals(sweep.trials)  # a name under a URI storage
    with pytest.raises(StudyError, match=r"no sweep 'other'.*found there: tiny"):
        load_sweep("other", storage=root)
    with pytest.raises(StudyError, match="no sweep at"):
        load_sweep(f"{root}/missing")

    report = analyze([f"{root}/tiny"], n_wrong=2, top_k=2)
    # a remote sweep's report is written here, locally; the storage is only read
    assert report.resolve() == tmp_path / "work" / "results" / "tiny" / "analysis" / "report.html"
    assert not (moved / "analysis").exists()
    html = report.read_text()
    assert "What the best critic gets wrong" in html and "checkpoint not found" not in html
    assert f"{root}/tiny" in html  # the Sweeps table names where the sweep is
    assert list((tmp_path / "cache" / "tune_sd" / "checkpoints").glob("*/study.pt"))  # read from the storage
    # the same trends as when the folder is read directly
    local = analyze([str(moved)], out=str(tmp_path / "local"), n_wrong=2, top_k=2)
    got = pd.read_parquet(report.parent / "trends.parquet")
    want = pd.read_parquet(local.parent / "trends.parquet")
    pd.testing.assert_frame_equal(got, want)
    with pytest.raises(Exception, match="local folder"):
        analyze([f"{root}/tiny"], out=f"{root}/out")


def test_critic_from_a_sweep_or_a_checkpoint_on_a_file_uri(remote, tmp_path):
    root, moved = remote
    trials = pd.read_parquet(moved / "trials.parquet")
    best = trials.loc[trials.final_avg_acc.idxmax()]
    want = (moved / f"trial_{best.trial_id}" / "checkpoint_000000" / "study.pt").read_bytes()
    for source, storage in ((f"{root}/tiny", None), ("tiny", root)):
        path, where = resolve_critic(source, storage)
        assert open(path, "rb").read() == want and str(tmp_path / "cache") in path
        assert f"the best trial of sweep tiny ({best.trial_id}" in where
    ck = f"{root}/tiny/trial_{best.trial_id}/checkpoint_000000"
    for source in (ck, f"{ck}/study.pt", f"{root}/tiny/trial_{best.trial_id}"):
        path, where = resolve_critic(source)
        assert open(path, "rb").read() == want and source in where
    with pytest.raises(ConfigError, match="neither a checkpoint nor a sweep"):
        resolve_critic(f"{root}/nothing")


def test_ladder_report_on_a_file_uri(tmp_path):
    folder = _ladder_sweep(tmp_path / "remote" / "lad")
    report = ladder_report(f"file://{folder}", threshold=0.6)
    assert report.first_fail == {"none": "L2_cubic"}
    assert report.table_path == f"file://{folder}/ladder.parquet"
    assert len(pd.read_parquet(folder / "ladder.parquet")) == 2  # written beside the sweep, on its storage
    assert (folder / "ladder.png").read_bytes()[:4] == b"\x89PNG"
    from tune_sd.cli import main

    assert main(["ladder", "--report", "lad", "--storage", f"file://{tmp_path / 'remote'}"]) == 0


# ------------------------------------------------------------------------------------------ fake S3


@pytest.mark.slow
def test_analyze_critic_from_and_ladder_report_on_a_fake_s3(remote, tmp_path):
    from pyarrow import fs

    _, moved = remote
    _ladder_sweep(moved.parent / "lad")
    with fake_s3() as bucket:
        s3, _ = fs.FileSystem.from_uri(bucket)
        fs.copy_files(str(moved.parent), "sweeps/results", source_filesystem=fs.LocalFileSystem(),
                      destination_filesystem=s3)
        shutil.rmtree(moved.parent)  # only the bucket holds the sweeps now
        root = f"{bucket}/results"
        report = analyze(["tiny"], storage=root, n_wrong=2, top_k=2)
        assert "What the best critic gets wrong" in report.read_text()
        path, where = resolve_critic("tiny", root)
        assert open(path, "rb").read()[:2] == b"PK" and "the best trial of sweep tiny" in where  # a torch zip
        lad = ladder_report(f"{root}/lad")
        assert lad.first_fail == {"none": "L2_cubic"}
        with s3.open_input_file("sweeps/results/lad/ladder.parquet") as f:
            assert len(pd.read_parquet(f)) == 2
