"""A validated search space: its parameters (normalised W&B blocks by dotted key), base, ``tune:``
options and named axes, and what a sweep derives from them without Ray (swept keys, grid size, the
config of a choice of values, plain data for printing)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from tune_sd.engine.config import SECTIONS, flatten, merge
from tune_sd.errors import ConfigError

from .axes import AXES, rung_name
from .blocks import _grid_values, _param_path, _put
from .checks import _apply_overrides, _check_space, _checked, _with_sets
from .sampling import sample_configs

METHODS = ("random", "grid", "bayes")

_MISSING = object()



@dataclass
class SearchSpace:
    """A validated search space.

    ``params`` maps dotted config keys (``disc.lr``) to normalised W&B blocks: ``{"values": [...]}``,
    ``{"value": x}`` or ``{"distribution": name, "min": .., "max": .., "q": .., "mu": .., "sigma": ..}``
    (only the keys the distribution uses, defaults filled in). A section name (``disc``) may be a key
    too; its values are partial subtrees merged onto ``base``'s section.

    ``variants`` (name -> partial config tree) and ``ladder`` (library paths, the rungs) are the named
    axes of :data:`AXES`; :meth:`axes` gives both as label -> name -> dotted overrides.
    """

    name: str
    path: Path | None
    description: str
    method: str
    params: dict[str, dict] = field(default_factory=dict)
    base: dict = field(default_factory=dict)
    tune: dict = field(default_factory=dict)
    variants: dict[str, dict] = field(default_factory=dict)
    ladder: list[str] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)  # what a sweep's --set fixed: {dotted key: value}

    def with_overrides(self, overrides: dict) -> "SearchSpace":
        """This space with a sweep's ``--set`` values fixed, then checked as a whole.

        The values go into ``base``; a swept key they name is fixed to that value (for every searcher),
        a key inside a section swept whole is set in each of the section's values. Checking after that
        lets a notebook's W&B config, whose fixed keys lived outside it, run with ``--set``.
        """
        overrides = dict(overrides or {})
        if not overrides or all(self.overrides.get(k, _MISSING) == v for k, v in _checked(overrides).items()):
            return self
        label = self._label()
        base, params, checked = _apply_overrides(self.base, self.params, overrides)
        space = SearchSpace(name=self.name, path=self.path, description=self.description, method=self.method,
                            params=params, base=base, tune=self.tune, variants=self.variants, ladder=self.ladder,
                            overrides={**self.overrides, **checked})
        _check_space(space, _with_sets(label, checked), {k: _param_path(k) for k in params})
        return space

    def swept_keys(self) -> list[str]:
        """The dotted keys whose value differs between trials: parameters with more than one value or a
        distribution; for a section swept whole, the keys that differ between its values. Named axes
        (their labels) and a per-trial seed come on top (see :meth:`axes`)."""
        out = []
        for key, block in self.params.items():
            if "value" in block or ("values" in block and len(block["values"]) < 2):
                continue
            if key in SECTIONS:
                flats = [flatten({key: v}) for v in block["values"]]
                inner = dict.fromkeys(k for f in flats for k in f)
                out.extend(k for k in inner if len({repr(f.get(k, _MISSING)) for f in flats}) > 1)
            else:
                out.append(key)
        return out

    def axes(self) -> dict[str, dict[str, dict]]:
        """The named axes: label -> {name: {dotted key: value}}, in the file's order.

        ``variants`` give label ``variant``; ``ladder`` gives label ``rung``, named by each library's file
        stem, setting ``library.path``.
        """
        out: dict[str, dict[str, dict]] = {}
        if self.variants:
            out[AXES["variants"]] = {name: flatten(over) for name, over in self.variants.items()}
        if self.ladder:
            out[AXES["ladder"]] = {rung_name(p): {"library.path": p} for p in self.ladder}
        return out

    # ---- Ray Tune

    def grid_size(self, grid: bool | None = None) -> int:
        """Points in the grid (the product of the enumerated value counts; 1 without any)."""
        grid = self.method == "grid" if grid is None else grid
        n = 1
        if grid:
            for block in self.params.values():
                values = _grid_values(block)
                n *= len(values) if values is not None else 1
            for table in self.axes().values():
                n *= len(table)
        return n

    # ---- printing
    def sample(self, n: int, seed: int, labels: bool = False) -> list[dict]:
        """``n`` nested configs (base + sampled parameters), reproducible per ``seed``, without Ray.

        The configs a ``BasicVariantGenerator(random_state=seed)`` gives for the space's Tune
        ``param_space``, value for value (see :mod:`.sampling`). A grid space gives its first ``n`` points
        in Tune's order (all of them when it has fewer). A bayes space gives random draws from the same
        distributions (the searcher's own picks depend on results). The labels of named axes
        (``variant``, ``rung``) are left out, so that each config is a run config, unless ``labels``.
        """
        if n < 0:
            raise ConfigError(f"sample: n must be >= 0, got {n}")
        return sample_configs(self, n, seed, labels)

    def resolved(self) -> dict:
        """Plain data for printing (YAML/JSON): name, description, method, base, parameters, tune; with named
        axes also ``variants`` / ``ladder``, and each axis's label among the parameters (its names)."""
        params = dict(self.params)
        for label, table in self.axes().items():
            params[label] = {"values": list(table)}
        out = {
            "name": self.name,
            "description": self.description,
            "method": self.method,
            "base": self.base,
            "parameters": params,
            "tune": self.tune,
        }
        if self.variants:
            out["variants"] = self.variants
        if self.ladder:
            out["ladder"] = self.ladder
        return copy.deepcopy(out)

    # ---- helpers
    def _label(self) -> str:
        return _label(self.path) if self.path is not None else self.name

    def _assemble(self, chosen: dict) -> dict:
        """base + {dotted key: value} as a nested config (section values merged onto the section)."""
        tree = copy.deepcopy(self.base)
        for key, value in chosen.items():
            if key in SECTIONS:
                tree[key] = merge(tree.get(key) or {}, value)
            else:
                _put(tree, key, copy.deepcopy(value))
        return tree


def _label(path: Path | str) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
