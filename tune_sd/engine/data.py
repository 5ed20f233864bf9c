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
read only with ``allow_pickle=True`` because unpickling runs code from the file; otherwise a seeded
random split of 70 % / 20 % / 10 %.

Nothing here unpickles, except that ``.mask`` file under the explicit opt-in; ``np.load`` always
runs with ``allow_pickle=False``.
"""

from __future__ import annotations

import gzip
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from tune_sd.errors import DataError

__all__ = [
    "SPLITS",
    "DATA_SUFFIXES",
    "InputData",
    "load_data",
    "default_data",
]

SPLITS: tuple[str, str, str] = ("train", "val", "test")
"""The split names, in order."""

DATA_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".parquet", ".gz", ".txt")
"""File types :func:`load_data` reads (a folder is read as ``<folder>/<var>.gz``)."""

_FOLDER_SUFFIXES = (".gz", ".npy", ".npz", ".parquet", ".txt")  # tried in this order in a folder
_SPLIT_FILE_SUFFIXES = (".txt", ".npy")  # per-split files in a split folder
_PICKLE_SUFFIXES = (".mask", ".pkl", ".pickle", ".joblib")
_DEFAULT_FRACTIONS = (0.7, 0.2, 0.1)


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


def load_data(
    path: str | os.PathLike | None = None,
    *,
    var: str = "X10",
    n_points: int = 1000,
    n_features: int = 2,
    split_sizes: tuple[int, int, int] = (700, 200, 100),
    seed: int = 0,
    split_path: str | os.PathLike | None = None,
    allow_pickle: bool = False,
    key: str | None = None,
) -> InputData:
    """Load the input points and their split.

    ``path=None`` gives the default data (:func:`default_data`: ``n_points`` x ``n_features`` of
    N(0, 1) split by ``split_sizes``, all drawn from ``seed``). Otherwise ``path`` is a file (see the
    module docstring for the formats) or a folder holding ``<var>.gz``. ``split_path`` gives the
    split explicitly (for the default data too); ``allow_pickle=True`` permits reading the
    original project's pickled ``.mask`` split file. ``key`` names the array of a ``.npz``.
    A file without any split is split at random (``seed``) 70 % / 20 % / 10 %.
    Every problem with the input raises :class:`~tune_sd.errors.DataError`.
    """
    var = _check_var(var)
    seed = _check_int("data.seed", seed, minimum=None)
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
                    f"`data.allow_pickle: true` (which runs code from the file - only for files you "
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


# --------------------------------------------------------------------------------------------
# Readers of the points
# --------------------------------------------------------------------------------------------


def _read_npy(file: Path) -> np.ndarray:
    try:
        arr = np.load(file, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise DataError(
                f"data.path: '{file}' holds an object array, which is refused (it would need "
                f"unpickling); save a numeric array instead"
            ) from None
        raise DataError(f"data.path: cannot read '{file}' as a .npy array: {exc}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"data.path: cannot read '{file}' as a .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray):  # pragma: no cover - np.load of .npy gives an array
        raise DataError(f"data.path: '{file}' is not a .npy array")
    return arr


def _open_npz(file: Path, key: str) -> Any:
    try:
        return np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{key}: cannot read '{file}' as a .npz archive: {exc}") from None


def _npz_array(npz: Any, name: str, file: Path, key: str) -> np.ndarray:
    try:
        return np.asarray(npz[name])
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise DataError(
                f"{key}: '{file}' array '{name}' is an object array, which is refused (it would "
                f"need unpickling)"
            ) from None
        raise DataError(f"{key}: cannot read '{file}' array '{name}': {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{key}: cannot read '{file}' array '{name}': {exc}") from None


def _read_npz(file: Path, *, key: str | None, var: str) -> tuple[np.ndarray, dict | None]:
    npz = _open_npz(file, "data.path")
    with npz:
        names = list(npz.files)
        listing = ", ".join(repr(n) for n in names) or "none"
        if key is not None:
            if key not in names:
                raise DataError(f"data.key: '{file}' has no array {key!r} (arrays: {listing})")
            chosen = key
        elif var in names:
            chosen = var
        else:
            candidates = [n for n in names if n not in SPLITS]
            if len(candidates) != 1:
                what = "no arrays besides split arrays" if not candidates else "several arrays"
                raise DataError(
                    f"data.key: '{file}' has {what} (arrays: {listing}) and none named "
                    f"data.var = {var!r}; name the array with data.key"
                )
            chosen = candidates[0]
        arr = _npz_array(npz, chosen, file, "data.path")
        split_names = [s for s in SPLITS if s in names and s != chosen]
        splits = None
        if split_names:
            splits = {s: _npz_array(npz, s, file, "data.path") for s in split_names}
    return arr, splits


def _read_parquet(file: Path) -> tuple[np.ndarray, list[str]]:
    import pandas as pd  # imported here: only Parquet users pay for it

    try:
        df = pd.read_parquet(file)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"data.path: cannot read '{file}' as Parquet: {exc}") from None
    bad = [str(c) for c in df.columns
           if not (pd.api.types.is_numeric_dtype(df[c].dtype)
                   and not pd.api.types.is_complex_dtype(df[c].dtype))]
    if bad:
        raise DataError(
            f"data.path: '{file}' has non-numeric columns {', '.join(repr(c) for c in bad)}; only "
            f"numeric columns can be input points (drop them or convert them first)"
        )
    if df.shape[1] == 0 or df.shape[0] == 0:
        raise DataError(f"data.path: '{file}' is empty ({df.shape[0]} rows, {df.shape[1]} columns)")
    try:
        arr = df.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"data.path: cannot convert '{file}' to numbers: {exc}") from None
    return arr, [str(c) for c in df.columns]


def _read_text(file: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Empty input file" - reported below as an error
            arr = np.loadtxt(file, dtype=np.float64, ndmin=2)
    except (ValueError, OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        fmt = "gzipped text" if file.suffix.lower() == ".gz" else "text"
        raise DataError(
            f"data.path: cannot read '{file}' as {fmt} (whitespace-separated numbers, one point "
            f"per row): {exc}"
        ) from None
    return arr


def _to_points(arr: np.ndarray, where: str) -> torch.Tensor:
    """Check a loaded array and make it the [N, D] float32 tensor X."""
    arr = np.asarray(arr)
    kind = arr.dtype.kind
    if arr.dtype.hasobject or kind == "O":
        raise DataError(f"{where} holds an object array, which is refused")
    if kind not in "biuf":
        raise DataError(f"{where} has dtype {arr.dtype}, not numbers (expected a float array)")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(
            f"{where} has shape {tuple(arr.shape)}; expected a 2-D array [points, features] "
            f"(or 1-D for one feature)"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{where} is empty (shape {tuple(arr.shape)})")
    if kind == "f":
        _check_finite(arr, where, "")
    with np.errstate(over="ignore"):  # overflow to inf is reported just below
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if kind == "f" and arr.dtype.itemsize > 4:
        _check_finite(out, where, " after conversion to float32 (values beyond about 3.4e38)")
    return torch.from_numpy(out)


def _check_finite(arr: np.ndarray, where: str, note: str) -> None:
    finite = np.isfinite(arr)
    if finite.all():
        return
    bad = ~finite
    count = int(bad.sum())
    rows, cols = np.nonzero(bad)
    n_rows = len(np.unique(rows))
    value = arr[rows[0], cols[0]]
    raise DataError(
        f"{where} has {count} non-finite value{'s' if count != 1 else ''} (NaN or inf){note} in "
        f"{n_rows} row{'s' if n_rows != 1 else ''}; the first is {value} at row {int(rows[0])}, "
        f"column {int(cols[0])}"
    )


# --------------------------------------------------------------------------------------------
# The split
# --------------------------------------------------------------------------------------------


def _random_split(n: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded random split of n rows, 70 % / 20 % / 10 % (train at least 1)."""
    n_train = min(n, max(1, int(round(_DEFAULT_FRACTIONS[0] * n))))
    n_val = min(n - n_train, int(round(_DEFAULT_FRACTIONS[1] * n)))
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen).numpy().astype(np.int64)
    return {
        "train": perm[:n_train].copy(),
        "val": perm[n_train:n_train + n_val].copy(),
        "test": perm[n_train + n_val:].copy(),
    }


def _indices(values: Any, n: int, where: str) -> np.ndarray:
    """Index array (or boolean mask of length n) -> int64 indices in [0, n), no duplicates."""
    try:
        arr = np.asarray(values)
    except Exception as exc:  # noqa: BLE001 - ragged lists and the like
        raise DataError(f"{where}: cannot read the indices: {exc}") from None
    if arr.dtype.hasobject:
        raise DataError(f"{where}: expected integer indices, got mixed or non-numeric values")
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise DataError(f"{where}: expected a 1-D list of indices, got shape {tuple(arr.shape)}")
    kind = arr.dtype.kind
    if kind == "b":
        if arr.shape[0] != n:
            raise DataError(
                f"{where}: a boolean mask must have one entry per point ({n}), it has {arr.shape[0]}"
            )
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if kind == "f":
        if not np.isfinite(arr).all() or not (arr == np.round(arr)).all():
            bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))][0]
            raise DataError(f"{where}: indices must be integers, found {bad}")
    elif kind not in "iu":
        raise DataError(f"{where}: expected integer indices, got dtype {arr.dtype}")
    out_of_range = (arr < 0) | (arr >= n)
    if out_of_range.any():
        bad = arr[out_of_range]
        raise DataError(
            f"{where}: {len(bad)} ind{'ices' if len(bad) != 1 else 'ex'} out of range [0, {n}) "
            f"(the data has {n} points), e.g. {bad[0]:.0f}"
        )
    idx = arr.astype(np.int64)
    uniq, counts = np.unique(idx, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise DataError(f"{where}: index {int(dup[0])} appears more than once "
                        f"({len(dup)} duplicated ind{'ices' if len(dup) != 1 else 'ex'})")
    return idx


def _complete_splits(splits: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """Add empty arrays for missing val / test; train is required."""
    if "train" not in splits:
        raise DataError(f"{where}: the split has no 'train' part (found: "
                        f"{', '.join(splits) or 'none'})")
    if len(splits["train"]) == 0:
        raise DataError(f"{where}: the 'train' split is empty")
    return {s: splits.get(s, np.zeros(0, dtype=np.int64)) for s in SPLITS}


def _check_split_names(mapping: Mapping, where: str) -> None:
    unknown = [str(k) for k in mapping if k not in SPLITS]
    if unknown:
        raise DataError(
            f"{where}: unknown split name{'s' if len(unknown) != 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)} (valid: {', '.join(SPLITS)})"
        )


def _read_split_path(sp: Path, n: int, allow_pickle: bool) -> dict[str, np.ndarray]:
    key = "data.split_path"
    if sp.is_dir():
        return _read_split_folder(sp, n)
    suffix = sp.suffix.lower()
    if suffix == ".npz":
        npz = _open_npz(sp, key)
        with npz:
            names = list(npz.files)
            _check_split_names(dict.fromkeys(names), f"{key}: '{sp}'")
            raw = {s: _npz_array(npz, s, sp, key) for s in SPLITS if s in names}
        splits = {s: _indices(v, n, f"{key}: '{sp}' split '{s}'") for s, v in raw.items()}
        return _complete_splits(splits, f"{key}: '{sp}'")
    if suffix in (".json", ".yaml", ".yml"):
        return _read_split_mapping(sp, n)
    if suffix in _PICKLE_SUFFIXES:
        if not allow_pickle:
            raise DataError(
                f"{key}: the split file '{sp}' is a pickle; it is only read with "
                f"`data.allow_pickle: true` (which runs code from the file - only for files you "
                f"trust), or give the split as plain index files instead"
            )
        return _read_pickle_split(sp, n)
    raise DataError(
        f"{key}: unsupported split file '{sp}' (supported: a folder with train/val/test .txt or "
        f".npy index files, a .npz with train/val/test arrays, a .json or .yaml mapping split name "
        f"to a list of indices, or a pickled .mask with data.allow_pickle: true)"
    )


def _read_split_folder(folder: Path, n: int) -> dict[str, np.ndarray]:
    key = "data.split_path"
    splits: dict[str, np.ndarray] = {}
    for s in SPLITS:
        found = [folder / f"{s}{suf}" for suf in _SPLIT_FILE_SUFFIXES if (folder / f"{s}{suf}").is_file()]
        if len(found) > 1:
            raise DataError(
                f"{key}: folder '{folder}' has both {found[0].name} and {found[1].name}; keep one"
            )
        if not found:
            continue
        f = found[0]
        where = f"{key}: '{f}' (split '{s}')"
        if f.suffix == ".npy":
            try:
                raw = np.load(f, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise DataError(f"{where}: cannot read the .npy file: {exc}") from None
        else:
            raw = _read_index_text(f, where)
        splits[s] = _indices(raw, n, where)
    if not splits:
        raise DataError(
            f"{key}: folder '{folder}' has no split files (expected train.txt, val.txt, test.txt "
            f"or train.npy, val.npy, test.npy)"
        )
    return _complete_splits(splits, f"{key}: folder '{folder}'")


def _read_index_text(f: Path, where: str) -> np.ndarray:
    """Integers separated by whitespace or commas (integral floats such as 3.0 are accepted)."""
    try:
        text = f.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: cannot read the file: {exc}") from None
    tokens = [t for line in text.splitlines() if not line.lstrip().startswith("#")
              for t in line.replace(",", " ").split()]
    values = []
    for i, tok in enumerate(tokens):
        try:
            values.append(int(tok))
            continue
        except ValueError:
            pass
        try:
            v = float(tok)
        except ValueError:
            raise DataError(f"{where}: {tok!r} (entry {i}) is not an integer index") from None
        if not np.isfinite(v) or v != int(v):
            raise DataError(f"{where}: {tok!r} (entry {i}) is not an integer index")
        values.append(int(v))
    return np.asarray(values, dtype=np.int64)


def _read_split_mapping(sp: Path, n: int) -> dict[str, np.ndarray]:
    key = "data.split_path"
    try:
        text = sp.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{key}: cannot read '{sp}': {exc}") from None
    if sp.suffix.lower() == ".json":
        try:
            mapping = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{key}: '{sp}' is not valid JSON: {exc}") from None
    else:
        import yaml

        try:
            mapping = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DataError(f"{key}: '{sp}' is not valid YAML: {exc}") from None
    if not isinstance(mapping, Mapping):
        raise DataError(
            f"{key}: '{sp}' must map split names (train, val, test) to lists of indices, got "
            f"{type(mapping).__name__}"
        )
    _check_split_names(mapping, f"{key}: '{sp}'")
    splits = {}
    for s, v in mapping.items():
        where = f"{key}: '{sp}' split '{s}'"
        if not isinstance(v, list) or any(isinstance(x, (list, dict, str)) or x is None for x in v):
            raise DataError(f"{where}: expected a list of integer indices")
        splits[s] = _indices(v, n, where)
    return _complete_splits(splits, f"{key}: '{sp}'")


def _mask_file_for(file: Path) -> Path | None:
    """The original project's pickled split next to a text data file: NAME.gz -> NAME.mask."""
    name = file.name
    stem = name[: -len(".gz")] if name.lower().endswith(".gz") else file.stem
    stem = stem[: -len(".txt")] if stem.lower().endswith(".txt") else stem
    cand = file.with_name(f"{stem}.mask")
    return cand if cand.is_file() else None


def _read_pickle_split(mask: Path, n: int) -> dict[str, np.ndarray]:
    """Read the original project's joblib pickle {'train': mask, 'val': mask, 'test': mask}.

    Only called when the user set allow_pickle=True: unpickling runs code from the file.
    """
    key = "data.split_path"
    try:
        try:
            import joblib  # type: ignore[import-not-found]
        except ImportError:
            joblib = None
        if joblib is not None:
            obj = joblib.load(mask)
        else:
            import pickle

            with open(mask, "rb") as fh:
                obj = pickle.load(fh)  # opt-in via data.allow_pickle (see the docstring)
    except Exception as exc:  # noqa: BLE001 - unpickling may raise anything
        raise DataError(f"{key}: cannot read the pickled split file '{mask}': {exc}") from None
    if not isinstance(obj, Mapping):
        raise DataError(
            f"{key}: the pickled split file '{mask}' holds a {type(obj).__name__}, expected a dict "
            f"{{'train': mask, 'val': mask, 'test': mask}}"
        )
    # Extra keys of a legacy file are ignored; the three splits are taken if present.
    splits = {}
    for s in SPLITS:
        if s in obj:
            v = obj[s]
            if isinstance(v, torch.Tensor):
                v = v.detach().cpu().numpy()
            splits[s] = _indices(v, n, f"{key}: '{mask}' split '{s}'")
    return _complete_splits(splits, f"{key}: '{mask}'")
