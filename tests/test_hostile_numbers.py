"""Hostile numbers: each is refused before anything is allocated or started, with exit 2 and one line
naming the key."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tune_sd.cli import main
from tune_sd.engine import library_check as library_check_mod
from tune_sd.engine import limits
from tune_sd.engine.config import resolve
from tune_sd.engine.library_check import _compare, check_library
from tune_sd.errors import ConfigError

BIG = "9" * 400


@pytest.mark.parametrize("item, key", [
    ("epochs=.inf", "epochs"), ("epochs=.nan", "epochs"), ("epochs=-.inf", "epochs"), (f"epochs={BIG}", "epochs"),
    (f"seed={BIG}", "seed"), (f"avg_hor={BIG}", "avg_hor"), (f"data.n_points={BIG}", "data.n_points"),
    (f"disc.hid_num=[{BIG},2]", "disc.hid_num[0]"), (f"disc.lr={BIG}", "disc.lr"), ("seed=1e30", "seed"),
    ("disc.hid_size=1e9", "disc.hid_size"), ("disc.hid_num=1e6", "disc.hid_num"),
    ("data.n_points=1e9", "data.n_points"), ("arch.hid_size=1e9", "arch.hid_size"),
    ("arch.hid_size=[1000000,3]", "arch.hid_size"), ("data.n_features=100000000000", "data.n_features"),
])
def test_hostile_numbers_name_their_key(item: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        resolve(None, [item])
    message = str(e.value)
    assert message.startswith(f"{key}:") and "\n" not in message and len(message) < 300


def test_memory_estimate_says_why(monkeypatch) -> None:
    monkeypatch.setattr(limits, "machine_memory", lambda: 1024**3)
    with pytest.raises(ConfigError, match=r"disc.hid_size: 20000 is too large: a critic of .* parameters would need "
                                          r"about .* GiB, more than this machine's 1.0 GiB"):
        resolve(None, ["disc.hid_size=20000"])
    resolve(None, ["disc.hid_size=512"])  # a studied size passes


@pytest.mark.parametrize("argv", [
    ["train", "--set", "epochs=.inf"], ["train", "--set", f"epochs={BIG}"], ["train", "--set", "disc.hid_size=1e9"],
    ["train", "--set", "disc.hid_num=1e6"], ["train", "--set", "data.n_points=1e9"],
])
def test_train_refuses_before_writing(argv, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tune-sd: error: ") and "Traceback" not in err[0]
    assert not out.exists()


# -- lib check ------------------------------------------------------------------------------------------

def test_compare_agrees_with_isclose() -> None:
    """The batched comparison of given and autograd derivatives decides as torch.isclose does, and
    reports the same largest error, on hostile values (inf, nan, near the tolerance)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 8, 16, generator=gen, dtype=torch.float64)
    g = a.clone()
    g[1] += 1e-3 * a[1].abs() + 2e-5  # past the tolerance
    g[2] += 1e-9
    g[3, 0, 0], a[3, 0, 0] = math.inf, math.inf  # the same inf: close
    g[4, 0, 0] = math.nan  # nan against a number: differs, only where one side is not finite
    g[5, 0, 0], a[5, 0, 0] = math.nan, math.nan  # nan on both sides: close
    errs, bad = _compare(g, a, 1e-3, 1e-5)
    for i in range(6):
        close = torch.isclose(g[i], a[i], rtol=1e-3, atol=1e-5, equal_nan=True)
        both = torch.isfinite(g[i]) & torch.isfinite(a[i])
        err = float((g[i] - a[i]).abs()[both].max())
        if not close.all() and close[both].all():
            err = math.inf
        assert bad[i] == (not bool(close.all())), i
        assert errs[i] == err, i
    assert bad == [False, True, False, False, True, False]


def test_lib_check_reports_progress(tmp_path: Path, monkeypatch, capsys) -> None:
    lib = tmp_path / "many.lib"
    lib.write_text("\n".join(["N0*X10[:,0]**2;2*N0*X10[:,0]", "np.sin(X10[:,0])*U0"] * 6) + "\n")
    monkeypatch.setattr(library_check_mod, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(library_check_mod, "CHECK_CHUNK_BYTES", 1)  # a block per line
    seen = []
    check = check_library(lib, torch.randn(50, 2), n_samples=8, progress=lambda done, total: seen.append((done, total)))
    assert check.ok and seen == [(i, 12) for i in range(1, 13)]
    assert main(["lib", "check", str(lib), "--samples", "8"]) == 0
    err = capsys.readouterr().err
    assert "lib check: 12/12 lines" in err


@pytest.mark.parametrize("argv, flag", [
    (["--samples", "1e8"], "--samples"), (["--features", "1e9"], "--features"), (["--samples", "-1"], "--samples"), (["--samples", "100000000"], "--samples"), (["--samples", "0"], "--samples"),
    (["--features", "1000000000"], "--features"), (["--features", "0"], "--features"),
])
def test_lib_check_refuses_hostile_sizes(argv, flag, capsys) -> None:
    assert main(["lib", "check", "F10_v1"] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tune-sd: error: {flag}:")


def _lying_npy(path: Path) -> Path:
    """A .npy file whose header claims (10**12, 2) float64 (14.6 TiB) in a few hundred bytes."""
    from numpy.lib import format as npy_format

    with open(path, "wb") as fh:
        npy_format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 2)})
        fh.write(np.zeros(4).tobytes())
    return path


def test_npy_header_checked_against_size(tmp_path: Path, capsys) -> None:
    from tune_sd.engine.data import load_data
    from tune_sd.errors import DataError

    bad = _lying_npy(tmp_path / "lying.npy")
    assert bad.stat().st_size < 300
    with pytest.raises(DataError, match=r"data.path: .*lying.npy' claims a 1000000000000x2 float64 array "
                                        r"\(16000000000000 bytes\) in its header but holds 32 bytes"):
        load_data(str(bad))
    out = tmp_path / "run"
    assert main(["train", "--set", f"data.path={bad}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "claims a 1000000000000x2" in err[0]
    assert not out.exists()
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).normal(size=(50, 2)))
    assert load_data(str(good)).X.shape == (50, 2)


@pytest.mark.parametrize("threads", ["100000", "1e5", "0"])
def test_train_threads_bounded_by_the_machine(threads, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--threads", threads, "--set", "epochs=2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads: " in err[0] and "this machine's CPUs" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("argv", [["--repeat", "100000000"], ["--num-samples", "100000000"]])
def test_sweep_dry_run_refuses_a_sweep_past_the_trial_limit(argv, capsys) -> None:
    assert main(["sweep", "sd-study", "--dry-run"] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tune-sd: error: {argv[0]}: ") and "1000000" in err[0]


def test_npz_member_header_checked_against_size(tmp_path: Path) -> None:
    import zipfile

    from tune_sd.engine.data import load_data
    from tune_sd.errors import DataError

    lying = _lying_npy(tmp_path / "X10.npy")
    bad = tmp_path / "lying.npz"
    with zipfile.ZipFile(bad, "w") as z:
        z.write(lying, "X10.npy")
    with pytest.raises(DataError, match=r"lying.npz' array 'X10' claims a 1000000000000x2 float64 array"):
        load_data(str(bad))
    good = tmp_path / "good.npz"
    np.savez(good, X10=np.random.default_rng(0).normal(size=(50, 2)))
    assert load_data(str(good)).X.shape == (50, 2)
