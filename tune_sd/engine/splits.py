"""The train / val / test split of the input points: where it is read from, or drawn at random.

The sources are described in :mod:`tune_sd.engine.data`. Nothing here unpickles, except the
original project's ``.mask`` file under the command line's explicit ``--allow-pickle`` opt-in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from tune_sd.engine.point_files import SPLITS, _npz_array, _open_npz
from tune_sd.errors import DataError

_SPLIT_FILE_SUFFIXES = (".txt", ".npy")  # per-split files in a split folder
_PICKLE_SUFFIXES = (".mask", ".pkl", ".pickle", ".joblib")
_DEFAULT_FRACTIONS = (0.7, 0.2, 0.1)


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
                f"--allow-pickle on the command line (which runs code from the file - only for files you "
                f"trust), or give the split as plain index files instead"
            )
        return _read_pickle_split(sp, n)
    raise DataError(
        f"{key}: unsupported split file '{sp}' (supported: a folder with train/val/test .txt or "
        f".npy index files, a .npz with train/val/test arrays, a .json or .yaml mapping split name "
        f"to a list of indices, or a pickled .mask with --allow-pickle)"
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
    from .yaml_limits import DATA_MAX_BYTES

    try:
        if sp.stat().st_size > DATA_MAX_BYTES:
            raise DataError(f"{key}: '{sp}' holds {sp.stat().st_size:,} bytes, more than the {DATA_MAX_BYTES:,} a "
                            "split file may hold (give the split as a .npz or .npy index files)")
        text = sp.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{key}: cannot read '{sp}': {exc}") from None
    if sp.suffix.lower() == ".json":
        try:
            mapping = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{key}: '{sp}' is not valid JSON: {exc}") from None
    else:
        from . import yaml_limits

        # a split file holds index lists, far larger than a config: the data bounds, aliases counted alike
        mapping = yaml_limits.parse(text, f"{key}: '{sp}'", max_bytes=yaml_limits.DATA_MAX_BYTES,
                                    max_nodes=yaml_limits.DATA_MAX_NODES, error=DataError)
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

    Only called when the user gave --allow-pickle: unpickling runs code from the file.
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
                obj = pickle.load(fh)  # opt-in: the command line's --allow-pickle (see the docstring)
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
