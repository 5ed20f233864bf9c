"""Configs drawn from a space without Ray, in the order and with the values Ray Tune's variant generator
(``BasicVariantGenerator``) gives for the space's ``param_space`` from the same random state (a test holds
the two equal), so that ``sweep --dry-run`` shows the trials a sweep will run without importing Ray.

:func:`space_tree` lays a space out once for both: base with each parameter at its place, as made by a
set of constructors (Ray's domains in ``tune_sd.tune.ray_space``, plain markers here).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from tune_sd.engine.config import SCHEMA, SECTIONS, flatten

from .blocks import _grid_values, _merged_section_block, _put
from .draws import draws



def space_tree(space, grid: bool, make) -> dict:
    """``base`` with each parameter at its place, made by ``make``: ``make.grid(values)`` for an enumerated
    block in grid mode, ``make.choice(values)``, ``make.draw(block)`` for a distribution, and
    ``make.by_label(label, {name: value})`` at each key a named axis sets (the label itself, at the top, is
    a grid over or a choice of its names). A ``value`` is a plain constant."""
    tree = copy.deepcopy(space.base)
    for key, block in space.params.items():
        if key in SECTIONS:  # a whole section: each value is merged onto base's section
            block = _merged_section_block(block, tree.get(key) or {})
        _put(tree, key, _value(block, grid, make))
    base = flatten(space.base)
    for label, table in space.axes().items():
        names = list(table)
        tree[label] = make.grid(names) if grid else make.choice(names)
        for key in dict.fromkeys(k for over in table.values() for k in over):
            default = base[key] if key in base else SCHEMA[key].default
            values = {name: over.get(key, default) for name, over in table.items()}
            _put(tree, key, make.by_label(label, copy.deepcopy(values)))
    return tree


def _value(block: dict, grid: bool, make):
    if "value" in block:
        return copy.deepcopy(block["value"])
    if grid:
        values = _grid_values(block)
        if values is not None:
            return make.grid(copy.deepcopy(values))
    if "values" in block:
        return make.choice(copy.deepcopy(block["values"]))
    return make.draw(block)


@dataclass
class _Grid:
    values: list


@dataclass
class _Choice:
    values: list


@dataclass
class _Draw:
    block: dict


@dataclass
class _ByLabel:
    label: str
    values: dict


class _Markers:
    grid, choice, draw, by_label = _Grid, _Choice, _Draw, _ByLabel


def sample_configs(space, n: int, seed: int, labels: bool = False) -> list[dict]:
    """``n`` nested configs of the space (see :meth:`SearchSpace.sample`)."""
    grid = space.method == "grid"
    tree = space_tree(space, grid, _Markers)
    found = list(_variables(tree, ()))
    grids = sorted(((p, m) for p, m in found if isinstance(m, _Grid)), key=lambda pm: pm[0])  # Tune sorts them
    draws_ = [(p, m) for p, m in found if isinstance(m, (_Choice, _Draw))]  # in the order Tune meets them
    by_label = [(p, m) for p, m in found if isinstance(m, _ByLabel)]  # draw nothing: read after the rest
    drop = () if labels else tuple(space.axes())
    rng = np.random.default_rng(seed)
    out: list[dict] = []
    while len(out) < n:
        for point in _grid_points([m.values for _, m in grids]):
            config = copy.deepcopy(tree)
            for (path, _), value in zip(grids, point):
                _assign(config, path, copy.deepcopy(value))
            for path, marker in draws_:
                _assign(config, path, _draw(marker, rng))
            for path, marker in by_label:
                _assign(config, path, copy.deepcopy(marker.values[config[marker.label]]))
            for label in drop:
                config.pop(label, None)
            out.append(config)
            if len(out) == n:
                break
        if grid:
            break
    return out


def _variables(node: dict, path: tuple):
    """(path, marker) of every marker in the tree, depth first in the tree's order."""
    for k, v in node.items():
        if isinstance(v, (_Grid, _Choice, _Draw, _ByLabel)):
            yield path + (k,), v
        elif isinstance(v, dict):
            yield from _variables(v, path + (k,))


def _grid_points(grids: list[list]):
    """Every combination of the grid values, the first grid varying fastest (as Tune enumerates them)."""
    index = [0] * len(grids)
    while True:
        yield [values[i] for values, i in zip(grids, index)]
        for axis in range(len(grids)):
            index[axis] += 1
            if index[axis] < len(grids[axis]):
                break
            index[axis] = 0
        else:
            return


def _draw(marker, rng: np.random.Generator) -> Any:
    if isinstance(marker, _Choice):  # Tune draws an index, so that the values keep their types
        return copy.deepcopy(marker.values[rng.choice(np.arange(0, len(marker.values)), size=1)[0]])
    return draws(marker.block, 1, rng)[0]


def _assign(tree: dict, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        tree = tree[k]
    tree[path[-1]] = value
