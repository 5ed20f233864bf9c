"""Broken inputs a user can give: each is exit 2 and one line, no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from synthetic_sweeps import synthetic_sweep
from tune_sd.cli import main


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tune-sd: error: "), err
    return err[0]


@pytest.mark.parametrize("device, says", [("foo", "is not a device"), ("cuda:99", "is not available on this machine")])
def test_train_refuses_an_unknown_device(device, says, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--device", device, "--set", "epochs=2", "--out", str(out)]) == 2
    assert f"--device: {device!r} {says}" in _one_error_line(capsys)
    assert not out.exists()


def test_train_out_naming_a_file(tmp_path: Path, capsys) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    assert main(["train", "--set", "epochs=2", "--out", str(f)]) == 2
    assert "--out: " in _one_error_line(capsys)
    assert f.read_text() == "mine"


def test_checkpoint_without_config(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "tune_sd.study/1", "epoch": 3}, run / "checkpoint.pt")
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["train", "--resume", str(run)]) == 2
    assert "not a complete tune_sd checkpoint (no valid config)" in _one_error_line(capsys)
    assert (run / "checkpoint.pt").read_bytes() == before and sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]


def test_status_with_a_text_iteration(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "syn"
    synthetic_sweep(folder, n_per_trend=1, epochs=200, avg_hor=20, report_every=20)
    result = sorted(folder.glob("*/result.json"))[0]
    rows = result.read_text().splitlines()
    row = json.loads(rows[1])
    row["training_iteration"] = "abc"
    rows[1] = json.dumps(row)
    result.write_text("\n".join(rows) + "\n")
    assert main(["status", str(folder)]) == 2
    line = _one_error_line(capsys)
    assert "result.json, line 2: training_iteration 'abc' is not a whole number" in line


def test_analyze_with_text_epochs(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "syn"
    synthetic_sweep(folder, n_per_trend=1, epochs=200, avg_hor=20, report_every=20)
    curves = pd.read_parquet(folder / "curves.parquet")
    curves["epoch"] = curves["epoch"].astype(str)
    curves.loc[0, "epoch"] = "twenty"
    curves.to_parquet(folder / "curves.parquet")
    assert main(["analyze", str(folder), "--out", str(tmp_path / "analysis")]) == 2
    line = _one_error_line(capsys)
    assert "column epoch holds 1 value(s) that are not numbers (first: 'twenty', row 0)" in line
    assert "empty" not in line and not (tmp_path / "analysis").exists()


@pytest.mark.parametrize("storage", ["weird://bucket", "s3://", "http://example.com/results"])
def test_sweep_refuses_a_storage_it_cannot_open(storage, capsys, monkeypatch) -> None:
    import sys

    monkeypatch.delenv("TUNE_SD_STORAGE", raising=False)
    assert main(["sweep", "sd-study", "--dry-run", "--storage", storage]) == 2
    assert f"--storage: {storage!r} is not a storage this can open" in _one_error_line(capsys)
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


def test_dry_run_prints_a_uri_as_given(capsys) -> None:
    assert main(["sweep", "sd-study", "--dry-run", "--storage", "s3://bucket/results"]) == 0
    out = capsys.readouterr().out
    assert "-> s3://bucket/results/sd-study" in out and "s3:/bucket" not in out
