"""The input points: the default N(0, 1) data or a user's file, and its train / val / test split.

A *function* in a study is a vector of values on the input points (see DOMAIN.md, "Terms"). This
module loads those points once per trial and hands out the columns and rows a study needs::

    data = load_data()                       # 1000 x 2 points of N(0, 1), seed 0, split 700/200/100
    x = data.points("train", [0])            # [700, 1] float32: Step 15's inputs

User files (``load_data(path)``):

- ``.npy``  a 2-D numeric array [N, D] (a 1-D array is one column); object arrays are refused.
- ``.npz``  the array named ``key``, else ``var``, else the only array in it; index (or boolean
  mask) arrays ``train`` / ``val`` / ``test`` in the same file give the split.
- ``.parquet``  the numeric columns, in column order; non-numeric columns are refused by name.
- ``.gz`` / ``.txt``  whitespace-separated numbers, one point per row (``numpy.savetxt``), the
  original project's format; a folder is read as ``<folder>/<var>.gz``.

The split, first found wins: ``split_path`` (a folder of ``train.txt`` / ``val.txt`` / ``test.txt``
or ``.npy`` files, one ``.npz``, or a ``.json`` / ``.yaml`` mapping split -> list of ints); split
arrays inside a ``.npz``; the original project's ``<var>.mask`` next to a text file -- a pickle,
read only under the command line's ``--allow-pickle`` (:func:`allow_pickled_splits`) because
unpickling runs code from the file; otherwise a seeded random split of 70 % / 20 % / 10 %.

Nothing here unpickles, except that ``.mask`` file under the explicit opt-in; ``np.load`` always
runs with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tune_sd.engine.point_files import _read_npy, _read_npz, _read_parquet, _read_text, _to_points
from tune_sd.engine.splits import (
    SPLITS,
    _complete_splits,
    _indices,
    _mask_file_for,
    _random_split,
    _read_pickle_split,
    _read_split_path,
)
from tune_sd.errors import DataError

__all__ = [
    "SPLITS",
    "DATA_SUFFIXES",
    "InputData",
    "load_data",
    "default_data",
]

DATA_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".parquet", ".gz", ".txt")
"""File types :func:`load_data` reads (a folder is read as ``<folder>/<var>.gz``)."""

_FOLDER_SUFFIXES = (".gz", ".npy", ".npz", ".parquet", ".txt")  # tried in this order in a folder


# --------------------------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------------------------


@dataclass
class InputData:
    """All input points of a study and their split.

    ``X`` holds every point and every column of the file ([N, D] float32, on the CPU); ``splits``
    maps ``'train'``, ``'val'``, ``'test'`` to int64 row indices into ``X`` (a split may be empty
    when the user's split leaves it out). ``var`` is the name library files use for the data
    (``X10`` in ``X10[:,0]``); ``source`` says where the points came from; ``split_source`` where
    the split came from; ``columns`` the column names when the file has them (Parquet).
    """

    var: str
    X: torch.Tensor
    splits: dict[str, np.ndarray]
    source: str
    split_source: str = ""
    columns: list[str] | None = None

    @property
    def n_points(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    def indices(self, split: str = "train") -> np.ndarray:
        """The row indices of ``split`` (int64); DataError for an unknown split name."""
        if not isinstance(split, str) or split not in self.splits:
            valid = ", ".join(s for s in SPLITS if s in self.splits) or "none"
            raise DataError(f"data.split: unknown split {split!r} (valid: {valid})")
        return self.splits[split]

    def points(
        self,
        split: str = "train",
        features: Sequence[int] | int | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The points of ``split`` restricted to the columns ``features`` (all when None).

        Returns a new tensor [n_split, len(features)] on ``device`` with ``dtype``. DataError for an
        unknown split or a column out of range (the message lists the valid ones).
        """
        idx = self.indices(split)
        cols = self._feature_index(features)
        rows = torch.as_tensor(idx, dtype=torch.long)
        out = self.X.index_select(0, rows).index_select(1, cols)
        return out.to(device=device, dtype=dtype)

    def _feature_index(self, features: Sequence[int] | int | None) -> torch.Tensor:
        d = self.n_features
        if features is None:
            return torch.arange(d, dtype=torch.long)
        if isinstance(features, (int, np.integer)) and not isinstance(features, (bool, np.bool_)):
            features = [int(features)]
        if isinstance(features, (str, bytes)) or not isinstance(features, (Sequence, np.ndarray)):
            raise DataError(
                f"data.features: expected a list of column indices, got {type(features).__name__}"
            )
        feats = list(features)
        if not feats:
            raise DataError("data.features: the list of columns is empty")
        out = []
        for f in feats:
            if isinstance(f, (bool, np.bool_)) or not isinstance(f, (int, np.integer)):
                raise DataError(f"data.features: column {f!r} is not an integer index")
            f = int(f)
            if not 0 <= f < d:
                plural = "column" if d == 1 else "columns"
                raise DataError(
                    f"data.features: column {f} out of range (the data has {d} {plural}); "
                    f"valid: 0..{d - 1}"
                )
            out.append(f)
        return torch.tensor(out, dtype=torch.long)

    def summary(self) -> str:
        """One line: shape, split sizes and sources."""
        sizes = "/".join(str(len(self.splits.get(s, ()))) for s in SPLITS)
        text = f"{self.var}: {self.n_points} x {self.n_features} from {self.source}, split {sizes}"
        if self.split_source:
            text += f" ({self.split_source})"
        return text


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


# Unpickling a split file runs code from it: only where the user asked on the command line (tune-sd train
# --allow-pickle sets this), never through a config or a space, which travel between people.
_PICKLE_OPT_IN = False


def allow_pickled_splits(allowed: bool = True) -> None:
    """The command line's ``--allow-pickle``: :func:`load_data` reads pickled split files in this process."""
    global _PICKLE_OPT_IN
    _PICKLE_OPT_IN = bool(allowed)


def load_data(
    path: str | os.PathLike | None = None,
    *,
    var: str = "X10",
    n_points: int = 1000,
    n_features: int = 2,
    split_sizes: tuple[int, int, int] = (700, 200, 100),
    seed: int = 0,
    split_path: str | os.PathLike | None = None,
    allow_pickle: bool | None = None,
    key: str | None = None,
) -> InputData:
    """Load the input points and their split.

    ``path=None`` gives the default data (:func:`default_data`: ``n_points`` x ``n_features`` of
    N(0, 1) split by ``split_sizes``, all drawn from ``seed``). Otherwise ``path`` is a file (see the
    module docstring for the formats) or a folder holding ``<var>.gz``. ``split_path`` gives the
    split explicitly (for the default data too); ``allow_pickle=True`` permits reading the
    original project's pickled ``.mask`` split file (None: as :func:`allow_pickled_splits` set it, which
    only the command line's ``--allow-pickle`` does). ``key`` names the array of a ``.npz``.
    A file without any split is split at random (``seed``) 70 % / 20 % / 10 %.
    Every problem with the input raises :class:`~tune_sd.errors.DataError`.
    """
    var = _check_var(var)
    seed = _check_int("data.seed", seed, minimum=None)
    if allow_pickle is None:
        allow_pickle = _PICKLE_OPT_IN
    if not isinstance(allow_pickle, (bool, np.bool_)):
        raise DataError(f"data.allow_pickle: expected true or false, got {allow_pickle!r}")
    if key is not None and not isinstance(key, str):
        raise DataError(f"data.key: expected an array name, got {key!r}")

    if path is None:
        data = default_data(n_points=n_points, n_features=n_features, split_sizes=split_sizes,
                            seed=seed, var=var)
        if split_path is not None:
            sp = _existing_path(split_path, "data.split_path")
            data.splits = _read_split_path(sp, data.n_points, bool(allow_pickle))
            data.split_source = str(sp)
        return data

    file = _resolve_data_path(path, var)
    suffix = file.suffix.lower()
    columns: list[str] | None = None
    file_splits: dict[str, np.ndarray] | None = None
    file_split_source = ""
    if suffix == ".npy":
        arr = _read_npy(file)
    elif suffix == ".npz":
        arr, file_splits = _read_npz(file, key=key, var=var)
        file_split_source = f"split arrays in {file}"
    elif suffix == ".parquet":
        arr, columns = _read_parquet(file)
    elif suffix in (".gz", ".txt"):
        arr = _read_text(file)
    else:  # pragma: no cover - _resolve_data_path refuses these
        raise DataError(f"data.path: unsupported file type {file.suffix!r} of '{file}'")

    X = _to_points(arr, f"data.path: '{file}'")
    n = int(X.shape[0])

    if split_path is not None:
        sp = _existing_path(split_path, "data.split_path")
        splits = _read_split_path(sp, n, bool(allow_pickle))
        split_source = str(sp)
    elif file_splits is not None:
        splits = {name: _indices(v, n, f"data.path: '{file}' array '{name}'")
                  for name, v in file_splits.items()}
        splits = _complete_splits(splits, f"data.path: '{file}'")
        split_source = file_split_source
    else:
        mask = _mask_file_for(file) if suffix in (".gz", ".txt") else None
        if mask is not None:
            if not allow_pickle:
                raise DataError(
                    f"data.split_path: the split file '{mask}' is a pickle; it is only read with "
                    f"--allow-pickle on the command line (which runs code from the file - only for files you "
                    f"trust), or give the split as plain index files instead (data.split_path: a "
                    f"folder with train.txt / val.txt / test.txt, a .npz, or a .json / .yaml)"
                )
            splits = _read_pickle_split(mask, n)
            split_source = str(mask)
        else:
            splits = _random_split(n, seed)
            split_source = f"random 70/20/10 (seed {seed})"

    return InputData(var=var, X=X, splits=splits, source=str(file), split_source=split_source,
                     columns=columns)


def default_data(
    *,
    n_points: int = 1000,
    n_features: int = 2,
    split_sizes: tuple[int, int, int] = (700, 200, 100),
    seed: int = 0,
    var: str = "X10",
) -> InputData:
    """The study's default points: ``n_points`` x ``n_features`` of N(0, 1), float32.

    Drawn with ``torch.Generator().manual_seed(seed)`` (the same numbers on every machine); the same
    generator then draws a permutation whose first ``split_sizes[0]`` rows are train, the next
    ``split_sizes[1]`` val and the next ``split_sizes[2]`` test.
    """
    var = _check_var(var)
    n_points = _check_int("data.n_points", n_points, minimum=1)
    n_features = _check_int("data.n_features", n_features, minimum=1)
    seed = _check_int("data.seed", seed, minimum=None)
    sizes = _check_split_sizes(split_sizes, n_points)

    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n_points, n_features, generator=gen, dtype=torch.float32)
    perm = torch.randperm(n_points, generator=gen).numpy().astype(np.int64)
    a, b, c = sizes
    splits = {
        "train": perm[:a].copy(),
        "val": perm[a:a + b].copy(),
        "test": perm[a + b:a + b + c].copy(),
    }
    return InputData(var=var, X=X, splits=splits, source=f"default (seed {seed})",
                     split_source=f"random {a}/{b}/{c} (seed {seed})")


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _check_var(var: Any) -> str:
    if not isinstance(var, str) or not var.isidentifier():
        raise DataError(
            f"data.var: expected a Python-style name such as 'X10' (the name library files use), "
            f"got {var!r}"
        )
    return var


def _check_int(name: str, value: Any, minimum: int | None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DataError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise DataError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _check_split_sizes(split_sizes: Any, n_points: int) -> tuple[int, int, int]:
    if isinstance(split_sizes, (str, bytes)) or not isinstance(split_sizes, (Sequence, np.ndarray)) \
            or len(split_sizes) != 3:
        raise DataError(
            f"data.split_sizes: expected three integers (train, val, test), got {split_sizes!r}"
        )
    sizes = []
    for name, v in zip(SPLITS, split_sizes):
        sizes.append(_check_int(f"data.split_sizes ({name})", v, minimum=1 if name == "train" else 0))
    if sum(sizes) > n_points:
        raise DataError(
            f"data.split_sizes: {sizes[0]} + {sizes[1]} + {sizes[2]} = {sum(sizes)} is more than "
            f"data.n_points = {n_points}"
        )
    return sizes[0], sizes[1], sizes[2]


def _as_path(path: Any, key: str) -> Path:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise DataError(f"{key}: expected a file path, got {path!r}")
    text = os.fspath(path)
    if not str(text).strip():
        raise DataError(f"{key}: the path is empty")
    return Path(text).expanduser()


def _existing_path(path: Any, key: str) -> Path:
    p = _as_path(path, key)
    if not p.exists():
        raise DataError(f"{key}: file '{p}' not found")
    return p


def _resolve_data_path(path: Any, var: str) -> Path:
    p = _existing_path(path, "data.path")
    if p.is_dir():
        for suffix in _FOLDER_SUFFIXES:
            cand = p / f"{var}{suffix}"
            if cand.is_file():
                return cand
        tried = ", ".join(f"{var}{s}" for s in _FOLDER_SUFFIXES)
        raise DataError(
            f"data.path: folder '{p}' holds no data file for data.var = {var!r} (looked for {tried})"
        )
    suffix = p.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise DataError(
            f"data.path: unsupported file type {p.suffix or '(none)'!r} of '{p}' (supported: "
            f"{', '.join(DATA_SUFFIXES)} (numpy.savetxt text, gzipped or not), or a folder "
            f"holding <var>.gz)"
        )
    return p
