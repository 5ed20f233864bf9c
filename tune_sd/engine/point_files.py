"""Readers of the input points: ``.npy``, ``.npz``, ``.parquet`` and ``numpy.savetxt`` text.

Each reader returns a numeric array (the formats are described in :mod:`tune_sd.engine.data`);
:func:`_to_points` turns it into the float32 points and refuses non-finite values. ``np.load``
always runs with ``allow_pickle=False``.
"""

from __future__ import annotations

import gzip
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tune_sd.errors import DataError

SPLITS: tuple[str, str, str] = ("train", "val", "test")
"""The split names, in order (a ``.npz`` may hold split arrays of these names)."""


# --------------------------------------------------------------------------------------------
# Readers of the points
# --------------------------------------------------------------------------------------------


def _check_npy_header(file: Path, member: str | None = None, key: str = "data.path") -> None:
    """Refuse a ``.npy`` file (or the ``.npy`` member of a ``.npz`` archive) whose header claims more
    data than it holds (nothing is allocated for it: a header of a few bytes may claim terabytes)."""
    from numpy.lib import format as npy_format

    where = f"'{file}'" + (f" array '{member}'" if member else "")
    try:
        if member is None:
            size, fh = file.stat().st_size, open(file, "rb")
        else:
            archive = zipfile.ZipFile(file)
            info = archive.getinfo(member + ".npy")
            size, fh = info.file_size, archive.open(info)
        with fh:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = npy_format.read_array_header_2_0(fh)
            offset = fh.tell()
    except KeyError:
        return  # not stored as NAME.npy: np.load reads it, or says why not
    except (ValueError, OSError, EOFError, TypeError, zipfile.BadZipFile) as exc:
        raise DataError(f"{key}: cannot read {where} as a .npy array: {exc}") from None
    if dtype.hasobject:
        return  # refused by np.load(allow_pickle=False), with its own message
    count = 1
    for n in shape:
        count *= int(n)
    need = count * dtype.itemsize
    if offset + need > size:
        raise DataError(f"{key}: {where} claims a {'x'.join(map(str, shape)) or 'scalar'} {dtype} array "
                        f"({need} bytes) in its header but holds {size - offset} bytes of data")


def _read_npy(file: Path) -> np.ndarray:
    _check_npy_header(file)
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
    _check_npy_header(file, name, key)
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

