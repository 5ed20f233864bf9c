"""store.py: where a sweep lives and what is read from it, shared by the sweep, the ladder, --critic-from
and the analysis."""

import math

import pandas as pd
import pytest

from tune_sd import store
from tune_sd.errors import StudyError


def trials_table():
    return pd.DataFrame({
        "trial_id": ["a", "b", "c", "d", "e"],
        "status": ["TERMINATED", "ERROR", "TERMINATED", "TERMINATED", "RUNNING"],
        "final_avg_acc": [0.7, 0.99, math.nan, 0.8, 0.75],
        "checkpoint": ["/x/a", "/x/b", "/x/c", None, "/x/e"],
    })


def test_best_trial_is_the_highest_final_avg_acc_of_the_trials_that_did_not_fail():
    trials = trials_table()
    assert store.best_trial(trials)["trial_id"] == "d"  # b failed, c has no final avg_acc
    assert store.best_trial(trials, with_checkpoint=True)["trial_id"] == "e"  # d kept no checkpoint
    assert store.best_trial(trials[trials["trial_id"].isin(["b", "c"])]) is None


def test_storage_root_is_absolute_and_a_uri_stays_a_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNE_SD_STORAGE", raising=False)
    assert store.storage_root(None) == str(tmp_path / "results")
    monkeypatch.setenv("TUNE_SD_STORAGE", "elsewhere")
    assert store.storage_root(None) == str(tmp_path / "elsewhere")
    assert store.storage_root("s3://bucket/runs/") == "s3://bucket/runs"


def test_find_sweep_by_name_path_and_what_it_says_when_missing(tmp_path):
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / store.META_FILE).write_text('{"study": "sd-study"}')
    assert store.find_sweep("s1", str(tmp_path)) == tmp_path / "s1"
    assert store.find_sweep(str(tmp_path / "s1")) == tmp_path / "s1"
    assert store.read_meta(tmp_path / "s1") == {"study": "sd-study"}
    assert store.read_meta(tmp_path) == {}
    with pytest.raises(StudyError, match=r"no sweep 'nope'.*found there: s1"):
        store.find_sweep("nope", str(tmp_path))


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "sub" / "table.txt"
    assert store.atomic_write(path, lambda tmp: open(tmp, "w").write("first")) == path  # the folder is made
    assert path.read_text() == "first"

    def half_then_fail(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        store.atomic_write(path, half_then_fail)
    assert path.read_text() == "first" and sorted(p.name for p in path.parent.iterdir()) == ["table.txt"]


def test_atomic_write_files_are_readable_as_open_makes_them(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = store.atomic_write(tmp_path / "report.html", lambda tmp: open(tmp, "w").write("<html>"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600
