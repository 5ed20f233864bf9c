"""Named grid axes: ``variants`` (label ``variant``: name -> what it changes in base) and ``ladder``
(label ``rung``: library files, named by their stems), parsed and checked key by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tune_sd.engine.config import SCHEMA, SECTIONS, flatten, unflatten
from tune_sd.errors import ConfigError

from .blocks import _check_key, _refuse_tune_syntax



#: The top-level blocks that declare a named grid axis -> the label each of its trials carries (a top-level
#: key of the trial config that the trainable passes on as a Parquet column; see trainable.LABELS).
AXES = {"variants": "variant", "ladder": "rung"}
#: the mode (variant) of a ladder file without variants
BASELINE = "none"


def rung_name(path: str) -> str:
    """A rung's name (its ``rung`` label): the library file's stem, ``ladder/L2_cubic.lib`` -> ``L2_cubic``."""
    return Path(str(path)).stem


def _parse_variants(raw: Any, label: str) -> dict[str, dict]:
    """``variants:``: name -> a partial config tree (what the variant changes in base), each leaf checked."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{label}: variants: expected a mapping of variant names to what each changes in base, "
                          f"e.g. {{v0: {{}}, v1: {{disc: {{hid_num: 4}}}}}}, got {raw!r}")
    out: dict[str, dict] = {}
    for name, over in raw.items():
        if isinstance(name, bool) or not isinstance(name, (str, int)) or not str(name):
            raise ConfigError(f"{label}: variants: variant names must be text, got {name!r}")
        name = str(name)
        where = f"{label}: variants.{name}"
        if name in out:
            raise ConfigError(f"{where}: the name is given twice")
        if over is None:
            over = {}
        if not isinstance(over, dict):
            raise ConfigError(f"{where}: expected a mapping of config keys, e.g. {{disc: {{hid_num: 4}}}}, "
                              f"got {over!r}")
        checked = {}
        for key, value in flatten(over).items():
            _check_key(key, where)
            if key in SECTIONS:
                raise ConfigError(f"{where}.{key}: section {key} takes a mapping of its keys, got {value!r}")
            _refuse_tune_syntax(value, f"{where}.{key}")
            checked[key] = SCHEMA[key].check(f"{where}.{key}", value)
        out[name] = unflatten(checked)
    return out


def _parse_ladder(raw: Any, label: str) -> list[str]:
    """``ladder:``: the rungs, library files (paths, or names in funs/) in order; their stems name them."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{label}: ladder: expected a list of library files (the rungs, in order), "
                          f"e.g. [ladder/L1_quadratic, ladder/L2_cubic], got {raw!r}")
    from tune_sd.engine.study import library_path

    out: list[str] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"{label}: ladder[{i}]"
        item = SCHEMA["library.path"].check(where, item)
        try:
            found = library_path(item)
        except ConfigError as e:
            raise ConfigError(f"{where}: {str(e).split(': ', 1)[-1]}") from None
        if found == Path(item) and not found.is_absolute():
            item = str(found.resolve())  # a file beside the caller: trials run in their own folders
        name = rung_name(item)
        if name in seen:
            raise ConfigError(f"{where}: rung {name!r} is ladder[{seen[name]}] already (rungs are named by "
                              "their file stems, which must differ)")
        seen[name] = i
        out.append(item)
    return out


def _axis_locations(space) -> dict[tuple[str, str], str]:
    """(label, name) -> where the name is in the file: ``variants.v1``, ``ladder[2]``."""
    out = {(AXES["variants"], name): f"variants.{name}" for name in space.variants}
    out.update({(AXES["ladder"], rung_name(p)): f"ladder[{i}]" for i, p in enumerate(space.ladder)})
    return out
