"""Checks of a space as a whole: every draw and every value fits its key, the named axes and the
parameters vary different keys, and every combination of first values is a valid run config; and the
sweep's ``--set`` values fixed onto a space before it is checked."""

from __future__ import annotations

import copy

import numpy as np

from tune_sd.engine.config import SCHEMA, SECTIONS, Config, flatten, merge, unflatten
from tune_sd.errors import ConfigError

from .axes import AXES, _axis_locations
from .blocks import (_GRID_DISTRIBUTIONS, _MAX_GRID_VALUES, _PROBES, _bounds, _check_key, _grid_values,
                     _param_path, _refuse_tune_syntax, _representative)
from .draws import draws



def _check_space(space, label: str, paths: dict) -> None:
    sections = [k for k in space.params if k in SECTIONS]
    for sec in sections:
        inner = [k for k in space.params if k.startswith(sec + ".")]
        if inner:
            raise ConfigError(f"{label}: {paths[sec]}: the whole section varies, so {inner[0]} cannot "
                              "vary on its own; put it into the section's values")

    for key, block in space.params.items():
        where = f"{label}: {paths[key]}"
        if "distribution" in block:
            _probe(key, block, where)
            if space.method == "grid" and block["distribution"] not in _GRID_DISTRIBUTIONS:
                raise ConfigError(f"{where}: method grid enumerates values, int_uniform and q_uniform only "
                                  f"(as W&B's grid search); {block['distribution']} has no grid")
        values = _grid_values(block) if space.method == "grid" else None
        if values is not None and len(values) > _MAX_GRID_VALUES:
            raise ConfigError(f"{where}: {len(values)} grid values (more than {_MAX_GRID_VALUES})")
        for v in block.get("values", []):
            _refuse_tune_syntax(v, where)
        if "value" in block:
            _refuse_tune_syntax(block["value"], where)

    # named axes: what they set varies nowhere else
    axes = space.axes()
    locations = _axis_locations(space)
    owner: dict[str, tuple[str, str]] = {}  # key -> (label, where) of the first axis that sets it
    for (lab, name), loc in locations.items():
        for key in axes[lab][name]:
            clash = key if key in space.params else next(
                (sec for sec in SECTIONS if sec in space.params and key.startswith(sec + ".")), None)
            if clash:
                raise ConfigError(f"{label}: {loc}: {key} varies in {paths[clash]} too; vary it in one place")
            other_label, other_loc = owner.setdefault(key, (lab, loc))
            if other_label != lab:
                raise ConfigError(f"{label}: {loc}: {key} is set by {other_loc} too; set it in one place")
    axis_first = {k: v for table in axes.values() for k, v in next(iter(table.values())).items()}
    axis_first_at = {k: locations[(lab, next(iter(table)))] for lab, table in axes.items()
                     for k in next(iter(table.values()))}

    # the default combination (base + the first value of each parameter and each named axis) must be a
    # valid run config, and so must each value of each parameter (each name of each axis) together with
    # the first values of all others
    first = {k: _representative(b) for k, b in space.params.items()}
    try:
        Config.from_dict(space._assemble({**first, **axis_first}))
    except ConfigError as e:
        culprit = str(e).split(":", 1)[0].split("[", 1)[0]  # the dotted key the engine names first
        if culprit not in space.params and culprit.split(".")[0] in space.params:  # a whole section varies
            culprit = culprit.split(".")[0]
        if culprit in space.params:
            block = space.params[culprit]
            what = "value" if "value" in block else "values[0]" if "values" in block else "min"
            raise ConfigError(f"{label}: {paths[culprit]}.{what}: does not fit base and the first values of the "
                              f"other parameters: {e}") from None
        if culprit in axis_first_at:
            raise ConfigError(f"{label}: {axis_first_at[culprit]}: does not fit the rest of the space: {e}") from None
        raise ConfigError(f"{label}: base with the first value of each parameter is not a valid config: {e}") from None
    for key, block in space.params.items():
        for i, value in enumerate(block.get("values", [])[1:], start=1):
            try:
                Config.from_dict(space._assemble({**first, **axis_first, key: value}))
            except ConfigError as e:
                raise ConfigError(f"{label}: {paths[key]}.values[{i}]: {value!r} does not fit the rest "
                                  f"of the space: {e}") from None
    for (lab, name), loc in locations.items():
        others = {k: v for other, table in axes.items() if other != lab for k, v in next(iter(table.values())).items()}
        try:
            Config.from_dict(space._assemble({**first, **others, **axes[lab][name]}))
        except ConfigError as e:
            raise ConfigError(f"{label}: {loc}: does not fit the rest of the space: {e}") from None

    if space.method == "bayes":
        check_bayes(space)  # refuses what Optuna cannot express, now rather than when the sweep starts


def check_bayes(space) -> None:
    """Refuses what Optuna's search (method bayes, or ``--search bayes``) cannot express: named axes, normal
    distributions, and a quantized log scale other than integers with step 1."""
    if space.axes():
        block = next(b for b, label in AXES.items() if label in space.axes())
        raise ConfigError(f"{space._label()}: {block}: method bayes cannot search named variants or rungs "
                          "(Optuna suggests parameters only); use method grid or random")
    for key, block in space.params.items():
        where = f"{space._label()}: {_param_path(key)}"
        dist = block.get("distribution")
        if dist in ("q_log_uniform", "q_log_uniform_values") and not (block["q"] == 1 and isinstance(block["q"], int)):
            raise ConfigError(f"{where}: {dist} with q {block['q']!r} has no Optuna counterpart (Optuna "
                              "quantizes a log scale only for integers with step 1); use q: 1, "
                              "log_uniform_values or values for method bayes")
        if dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
            raise ConfigError(f"{where}: {dist} has no Optuna counterpart (Optuna has no normal "
                              "distributions); use uniform, log_uniform_values, int_uniform or values "
                              "for method bayes, or method random")


def _probe(key: str, block: dict, where: str) -> None:
    """The range ends and a fixed set of draws must all pass the key's check."""
    check = SCHEMA[key].check
    bounds = _bounds(block)
    if bounds is not None:
        for end, value in zip(("lowest", "highest"), bounds):
            try:
                check(key, value)
            except ConfigError as e:
                raise ConfigError(f"{where}: the {end} value of {block['distribution']} is {value!r}; {e}") from None
    for value in draws(block, _PROBES, np.random.default_rng(0)):
        try:
            check(key, value)
        except ConfigError as e:
            raise ConfigError(f"{where}: {block['distribution']} can draw {value!r}; {e}") from None


def _checked(overrides: dict) -> dict:
    """``--set`` values as {dotted key: value}, each key and value checked (``1e-4`` given as text -> 0.0001)."""
    flat = {}
    for key, value in flatten(unflatten(dict(overrides))).items():
        where = f"--set {key}"
        _check_key(key, where)
        if key in SECTIONS:
            raise ConfigError(f"{where}: {key} is a section; set its keys, e.g. --set {key}.<key>=VALUE")
        _refuse_tune_syntax(value, where)
        flat[key] = SCHEMA[key].check(where, value)
    return flat


def _apply_overrides(base: dict, params: dict, overrides: dict) -> tuple[dict, dict, dict]:
    """(base, params, checked values) with ``--set`` values fixed: merged onto base; a swept key becomes a
    constant, a key inside a section swept whole is set in each of its values."""
    flat = _checked(overrides)
    params = dict(params)
    for key, value in flat.items():
        if key in params:
            params[key] = {"value": copy.deepcopy(value)}
            continue
        section = next((sec for sec in SECTIONS if sec in params and key.startswith(sec + ".")), None)
        if section is not None:
            inner = unflatten({key[len(section) + 1:]: value})
            block = params[section]
            params[section] = ({"value": merge(block["value"], inner)} if "value" in block
                               else {"values": [merge(v, inner) for v in block["values"]]})
    return merge(base, unflatten(flat)), params, flat


def _with_sets(label: str, overrides: dict) -> str:
    """The label of a space in errors, saying which --set values its base holds."""
    return f"{label} (with --set {', '.join(overrides)})" if overrides else label
