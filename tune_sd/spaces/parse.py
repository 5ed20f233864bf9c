"""A space from a mapping: the top-level keys, base, ``tune:``, parameters and named axes parsed,
then the whole checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tune_sd.engine.config import Config
from tune_sd.errors import ConfigError

from .axes import _parse_ladder, _parse_variants
from .blocks import _normalised_tree, _param_path, _parse_parameters
from .checks import _apply_overrides, _check_space, _with_sets
from .options import _tune_block
from .space import METHODS, SearchSpace, _label

_TOP_KEYS = ("description", "method", "metric", "parameters", "base", "tune", "run_cap", "variants", "ladder")


def space_from_dict(tree: dict, name: str = "<dict>", path: Path | None = None,
                    overrides: dict | None = None) -> SearchSpace:
    """A space from an already loaded mapping (e.g. a W&B sweep dict of the notebook)."""
    label = _label(path) if path is not None else name
    return _build(tree, name=name, path=Path(path) if path is not None else None, label=label, comment="",
                  overrides=overrides)


def _build(tree: Any, name: str, path: Path | None, label: str, comment: str,
           overrides: dict | None = None) -> SearchSpace:
    if not isinstance(tree, dict):
        raise ConfigError(f"{label}: expected a mapping with method and parameters, got {type(tree).__name__}")
    unknown = [k for k in tree if k not in _TOP_KEYS]
    if unknown:
        raise ConfigError(f"{label}: {unknown[0]}: unknown key (allowed: {', '.join(_TOP_KEYS)})")

    description = tree.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"{label}: description: expected a line of text, got {type(description).__name__}")
    description = _one_line(description) if description else comment

    method = tree.get("method", "random")
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ConfigError(f"{label}: method: {method!r} is not allowed (allowed: {', '.join(METHODS)})")
    method = method.lower()

    base = tree.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{label}: base: expected a mapping of config keys, got {type(base).__name__}")
    Config.from_dict(base, where=f"{label}: base.")
    base = _normalised_tree(base)

    tune_opts = _tune_block(tree, label)

    raw_params = tree.get("parameters") or {}
    if not isinstance(raw_params, dict):
        raise ConfigError(f"{label}: parameters: expected a mapping of parameter blocks, "
                          f"got {type(raw_params).__name__}")
    params: dict[str, dict] = {}
    paths: dict[str, str] = {}  # dotted key -> where it is in the file (parameters.disc.parameters.lr)
    _parse_parameters(raw_params, "", "parameters", label, params, paths)

    variants = _parse_variants(tree.get("variants"), label)
    ladder = _parse_ladder(tree.get("ladder"), label)

    overrides = dict(overrides or {})
    if overrides:  # a sweep's --set is part of base before the space is checked as a whole
        base, params, overrides = _apply_overrides(base, params, overrides)
        paths.update({k: _param_path(k) for k in params if k not in paths})
    space = SearchSpace(name=name, path=path, description=description, method=method, params=params,
                        base=base, tune=tune_opts, variants=variants, ladder=ladder, overrides=overrides)
    _check_space(space, _with_sets(label, overrides), paths)
    return space


def _one_line(s: str) -> str:
    for line in s.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""
