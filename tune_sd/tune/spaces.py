"""Search spaces: the studies as YAML in the W&B-sweep schema, turned into Ray Tune param spaces.

A space file holds what the seed notebook handed to ``wandb.sweep`` (``method`` and a nested
``parameters`` tree), and optionally a one-line ``description``, fixed hyperparameters (``base``, a
run-config subtree) and how to run it (``tune``)::

    # Step 15.3: random search over the critic        <- the first comment line describes the space
    method: random                                    # random | grid | bayes
    metric: {name: avg_acc, goal: maximize}           # W&B's key; same as tune: {metric, mode}
    parameters:
      arch: {parameters: {lat_size: {values: [1, 3, 5, 10]}}}
      disc:
        parameters:
          lr: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-2}
          hid_num: {values: [[2, 2], [2, 4]]}         # a list is ONE value (the notebook's tuples)
    base: {epochs: 100000, disc: {wd: 1.0e-7}}
    tune: {scheduler: asha, num_samples: 20}

Parameter blocks follow W&B: ``values`` (categorical), ``value`` (constant), or ``distribution``
with ``min``/``max``/``q``/``mu``/``sigma``. Each maps onto a Ray Tune domain (:data:`DISTRIBUTIONS`
says which); every key must be one of the run config (:data:`tune_sd.engine.config.SCHEMA`) and every
value it can take must pass that key's check. Errors name the file and the key path in it.

Two optional top-level blocks add a *named* grid axis whose trials carry a label (a column of the
Parquet tables, see :data:`AXES`)::

    variants:                                         # label `variant`: name -> what it changes in base
      v0: {}
      v1: {disc: {hid_num: 4}}
    ladder: [ladder/L1_quadratic, ladder/L2_cubic]    # label `rung` (the file's stem): library.path

Every trial config then holds ``variant: v1`` (``rung: L2_cubic``) at its top level and the values that
name stands for at their places. Method grid enumerates the names (times the other grid values), random
picks one per trial; bayes takes no named axes. The overrides are checked like everything else.

Only ``yaml.safe_load`` reads the files; nothing in them is evaluated.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ray import tune
from ray.tune.search.sample import Float, Sampler
from ray.tune.search.variant_generator import generate_variants

from tune_sd.engine.config import (SCHEMA, SECTIONS, Config, choice, flatten, integer, load_yaml, merge, real,
                                    text, unflatten)
from tune_sd.errors import ConfigError

__all__ = ["SPACES_DIR", "METHODS", "DISTRIBUTIONS", "TUNE_OPTIONS", "AXES", "SearchSpace", "load_space",
           "list_spaces", "space_from_dict", "rung_name"]

_DEFAULT_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
#: Where named spaces live. The environment variable ``TUNE_SD_SPACES`` wins when it is set.
SPACES_DIR: Path = Path(os.environ["TUNE_SD_SPACES"]) if os.environ.get("TUNE_SD_SPACES") else _DEFAULT_DIR

METHODS = ("random", "grid", "bayes")

#: W&B distribution -> (required keys, optional keys with their defaults). What each becomes in Ray Tune:
#: int_uniform -> randint(min, max + 1) (W&B's max is inclusive); uniform -> uniform; q_uniform ->
#: quniform, or qrandint when q is an integer (W&B then gives integers); log_uniform (min/max are natural-log
#: exponents) -> loguniform(e^min, e^max); log_uniform_values -> loguniform(min, max); q_log_uniform(_values)
#: -> qloguniform, or (q)lograndint for integer q; inv_log_uniform -> loguniform(e^-max, e^-min) and
#: inv_log_uniform_values -> loguniform(min, max) (log(1/X) uniform on an interval is X log-uniform on the
#: mirrored one: the same distribution); normal -> randn(mu, sigma); q_normal -> qrandn; log_normal and
#: q_log_normal -> a Float domain whose sampler draws exp(N(mu, sigma)) from the searcher's random state.
#: Quantized ranges are snapped inwards to multiples of q, so every draw lies within [min, max].
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "constant": (("value",), {}),
    "categorical": (("values",), {}),
    "int_uniform": (("min", "max"), {}),
    "uniform": (("min", "max"), {}),
    "q_uniform": (("min", "max"), {"q": 1}),
    "log_uniform": (("min", "max"), {}),
    "log_uniform_values": (("min", "max"), {}),
    "q_log_uniform": (("min", "max"), {"q": 1}),
    "q_log_uniform_values": (("min", "max"), {"q": 1}),
    "inv_log_uniform": (("min", "max"), {}),
    "inv_log_uniform_values": (("min", "max"), {}),
    "normal": ((), {"mu": 0.0, "sigma": 1.0}),
    "q_normal": ((), {"mu": 0.0, "sigma": 1.0, "q": 1}),
    "log_normal": ((), {"mu": 0.0, "sigma": 1.0}),
    "q_log_normal": ((), {"mu": 0.0, "sigma": 1.0, "q": 1}),
}
_BLOCK_KEYS = ("values", "value", "distribution", "min", "max", "q", "mu", "sigma", "parameters")
_LOG_EXPONENTS = ("log_uniform", "q_log_uniform", "inv_log_uniform")  # min/max are exponents (natural log)
_POSITIVE_VALUES = ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values")
_GRID_DISTRIBUTIONS = ("int_uniform", "q_uniform")  # enumerated in a grid (as W&B's grid search does)
_MAX_GRID_VALUES = 100_000
_PROBES = 256  # draws per distribution checked against the key's check when a space is loaded

_TOP_KEYS = ("description", "method", "metric", "parameters", "base", "tune", "run_cap", "variants", "ladder")

#: The top-level blocks that declare a named grid axis -> the label each of its trials carries (a top-level
#: key of the trial config that the trainable passes on as a Parquet column; see trainable.LABELS).
AXES = {"variants": "variant", "ladder": "rung"}

#: The ``tune:`` options and their checks. Values are kept as a dict; the sweep reads them.
def _quick_set(key: str, value) -> dict:
    """``tune.quick_set``: engine keys that ``--quick`` fixes for this study (e.g. one seed of a grid
    over seeds), as a mapping of dotted keys; each must be a config key with a valid value."""
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping of config keys, e.g. {{seed: 0}}")
    flat = flatten(value)
    for k in flat:
        if k not in SCHEMA:
            raise ConfigError(f"{key}.{k}: unknown config key")
    Config.from_dict(unflatten(flat), where=f"{key}.")
    return flat


TUNE_OPTIONS: dict[str, Any] = {
    "metric": text(),
    "mode": choice("max", "min"),
    "scheduler": text(optional=True),
    "epochs": integer(1),
    "num_samples": integer(1),
    "grace_period": integer(1),
    "reduction_factor": real(1, lo_open=True),
    "max_concurrent": integer(1, optional=True),
    "report_every": integer(1),
    "checkpoint_every": integer(1),
    "figure_every": integer(0),
    "max_failures": integer(-1),
    "search": text(optional=True),
    "cpus_per_trial": real(0, lo_open=True),
    "gpus_per_trial": real(0),
    "nonlearner_grace": integer(0),
    "nonlearner_window": integer(1),
    "nonlearner_margin": real(0, 0.5, lo_open=True, hi_open=True),
    "nonlearner_confidence": real(0.5, 1, hi_open=True),
    "quick_set": _quick_set,
}
_LOWERCASE_OPTIONS = ("scheduler", "search")


# --------------------------------------------------------------------------------------------
# the one Tune domain Ray lacks: log-normal, drawn from the searcher's random state


class LogNormal(Sampler):
    """Draws exp(N(mean, sd)) with the random state the searcher passes (so a seeded search repeats)."""

    def __init__(self, mean: float, sd: float):
        self.mean, self.sd = float(mean), float(sd)

    def sample(self, domain, config=None, size=1, random_state=None):
        rng = random_state if random_state is not None else np.random
        items = np.exp(rng.normal(self.mean, self.sd, size=size))
        return items if len(items) > 1 else domain.cast(items[0])

    def __str__(self):
        return "LogNormal"


def lognormal(mu: float, sigma: float, q: float | None = None) -> Float:
    domain = Float(0.0, None)
    domain.set_sampler(LogNormal(mu, sigma))
    return domain.quantized(q) if q is not None else domain


_MISSING = object()


class ByLabel:
    """The value of one key that a named axis sets: ``values[<the trial's label>]``.

    Given to ``tune.sample_from``; Tune calls it with the trial's spec once the label is resolved (an
    unresolved label raises Tune's RecursiveDependencyError, and Tune tries again after the others).
    """

    def __init__(self, label: str, values: dict):
        self.label, self.values = label, values

    def __call__(self, config):
        # Ray hands over the trial's config (when it resolves a trial's placeholders) or, while it generates
        # variants, the experiment spec ({"config": ...}) behind a guard whose attribute access raises
        # RecursiveDependencyError for a label not drawn yet. Reading both here keeps Ray from falling
        # back to its deprecated spec call, which warns once per trial and key.
        if self.label not in config and "config" in config:
            config = getattr(config, "config", None) or config["config"]
        name = getattr(config, self.label, _MISSING)  # the guard checks that the label is resolved
        if name is _MISSING:
            name = config[self.label]
        return copy.deepcopy(self.values[name])

    def __repr__(self):
        return f"ByLabel({self.label!r}, {self.values!r})"


# --------------------------------------------------------------------------------------------
# the space


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
    def param_space(self, grid: bool | None = None) -> dict:
        """The nested ``param_space`` for ``tune.Tuner``: ``base`` with each parameter at its place.

        ``values`` become ``tune.choice`` (``tune.grid_search`` in grid mode: ``grid=True``, or
        ``grid=None`` with method grid, where int_uniform and q_uniform are enumerated as well), a
        ``value`` is a plain constant, a distribution its Tune domain. A named axis puts its label at the
        top (a grid over, or a choice of, its names) and, at each key one of its names sets, a
        ``tune.sample_from`` that picks the value by the label (base's value, or the default, for names
        that leave the key alone).
        """
        grid = self.method == "grid" if grid is None else grid
        tree = copy.deepcopy(self.base)
        for key, block in self.params.items():
            if key in SECTIONS:  # a whole section: each value is merged onto base's section
                block = _merged_section_block(block, tree.get(key) or {})
            _put(tree, key, _tune_value(block, grid))
        base = flatten(self.base)
        for label, table in self.axes().items():
            names = list(table)
            tree[label] = tune.grid_search(names) if grid else tune.choice(names)
            for key in dict.fromkeys(k for over in table.values() for k in over):
                default = base[key] if key in base else SCHEMA[key].default
                values = {name: over.get(key, default) for name, over in table.items()}
                _put(tree, key, tune.sample_from(ByLabel(label, copy.deepcopy(values))))
        return tree

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

    def sample(self, n: int, seed: int, labels: bool = False) -> list[dict]:
        """``n`` nested configs (base + sampled parameters), reproducible per ``seed``, without Ray running.

        Draws through Ray's own variant generator with ``np.random.default_rng(seed)``, as a
        ``BasicVariantGenerator(random_state=seed)`` does. A grid space gives its first ``n`` points in
        Tune's order (all of them when it has fewer). A bayes space gives random draws from the same
        distributions (the searcher's own picks depend on results). The labels of named axes
        (``variant``, ``rung``) are left out, so that each config is a run config, unless ``labels``.
        """
        if n < 0:
            raise ConfigError(f"sample: n must be >= 0, got {n}")
        grid = self.method == "grid"
        space = self.param_space()
        drop = () if labels else tuple(self.axes())
        rng = np.random.default_rng(seed)
        out: list[dict] = []
        while len(out) < n:
            # the experiment spec's shape, as Tune hands it over ({"config": ...}): named axes read it
            for _, spec in generate_variants({"config": space}, random_state=rng):
                config = copy.deepcopy(spec["config"])
                for label in drop:
                    config.pop(label, None)
                out.append(config)
                if len(out) == n:
                    break
            if grid:
                break
        return out

    # ---- Optuna (method bayes)
    def optuna_space(self) -> dict:
        """``{dotted key: optuna distribution}`` for every parameter of the space.

        ``values`` become a ``CategoricalDistribution`` (a ``value`` one with a single choice, so that
        the searcher's configs are complete). Choices that Optuna cannot store (lists, mappings) are
        given as their YAML flow text, e.g. ``"[2, 4]"``; :meth:`decode` maps them back to the values.
        """
        import optuna.distributions as od

        if self.axes():
            block = next(b for b, label in AXES.items() if label in self.axes())
            raise ConfigError(f"{self._label()}: {block}: method bayes cannot search named variants or rungs "
                              "(Optuna suggests parameters only); use method grid or random")
        out = {}
        for key, block in self.params.items():
            where = f"{self._label()}: {_param_path(key)}"
            if "value" in block or "values" in block:
                out[key] = od.CategoricalDistribution(_optuna_choices(_choices(block)))
                continue
            dist = block["distribution"]
            if dist == "int_uniform":
                out[key] = od.IntDistribution(block["min"], block["max"])
            elif dist == "uniform":
                out[key] = od.FloatDistribution(block["min"], block["max"])
            elif dist == "q_uniform":
                lo, hi = _bounds(block)
                cls = od.IntDistribution if isinstance(lo, int) else od.FloatDistribution
                out[key] = cls(lo, hi, step=block["q"])
            elif dist in ("log_uniform", "log_uniform_values", "inv_log_uniform", "inv_log_uniform_values"):
                lo, hi = _bounds(block)
                out[key] = od.FloatDistribution(lo, hi, log=True)
            elif dist in ("q_log_uniform", "q_log_uniform_values") and block["q"] == 1 and isinstance(block["q"], int):
                lo, hi = _bounds(block)
                out[key] = od.IntDistribution(lo, hi, log=True)
            elif dist in ("q_log_uniform", "q_log_uniform_values"):
                raise ConfigError(f"{where}: {dist} with q {block['q']!r} has no Optuna counterpart (Optuna "
                                  "quantizes a log scale only for integers with step 1); use q: 1, "
                                  "log_uniform_values or values for method bayes")
            else:
                raise ConfigError(f"{where}: {dist} has no Optuna counterpart (Optuna has no normal "
                                  "distributions); use uniform, log_uniform_values, int_uniform or values "
                                  "for method bayes, or method random")
        return out

    def decode(self, params: dict) -> dict:
        """Optuna's ``trial.params`` (``{dotted key: value}``, as :meth:`optuna_space` names them; nested
        dicts are accepted too) -> the nested config of that trial: base + the values, with
        categorical codes turned back into the lists they stand for. Constants may be left out."""
        flat = _flatten_params(params, self.params)
        space = self.optuna_space()
        unknown = [k for k in flat if k not in space]
        if unknown:
            raise ConfigError(f"{self._label()}: decode: {', '.join(unknown)} not among the varying "
                              f"parameters ({', '.join(space) or 'none'})")
        missing = [k for k in space if k not in flat and len(_choices(self.params[k]) or ()) != 1]
        if missing:
            raise ConfigError(f"{self._label()}: decode: no value for {', '.join(missing)}")
        chosen = {}
        for key, block in self.params.items():
            choices = _choices(block)
            if choices is not None and key not in flat:  # a constant
                chosen[key] = choices[0]
            elif choices is not None:
                codes = dict(zip(_optuna_choices(choices), choices))
                if flat[key] not in codes:
                    raise ConfigError(f"{self._label()}: decode: {key}: {flat[key]!r} is not one of "
                                      f"{list(codes)}")
                chosen[key] = codes[flat[key]]
            else:
                chosen[key] = flat[key]
        return self._assemble(chosen)

    # ---- printing
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


# --------------------------------------------------------------------------------------------
# loading


def _spaces_dir() -> Path:
    env = os.environ.get("TUNE_SD_SPACES")
    return Path(env) if env else Path(SPACES_DIR)


def _space_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix in (".yaml", ".yml") and p.is_file():
            files.setdefault(p.stem, p)
    return dict(sorted(files.items()))


def list_spaces() -> list[tuple[str, str]]:
    """(name, one-line description) of every space file in the spaces folder, sorted by name."""
    out = []
    for name, path in _space_files(_spaces_dir()).items():
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            out.append((name, f"(cannot read: {e})"))
            continue
        desc = None
        try:
            tree = yaml.safe_load(raw)
            if isinstance(tree, dict) and isinstance(tree.get("description"), str):
                desc = _one_line(tree["description"])
        except yaml.YAMLError:
            pass
        out.append((name, desc or _first_comment(raw)))
    return out


def load_space(name_or_path: str | Path, overrides: dict | None = None) -> SearchSpace:
    """A space from a .yaml/.yml path, or by name (the file stem) from the spaces folder.

    ``overrides`` ({dotted key: value}, a sweep's ``--set``) are fixed before the space is checked as a
    whole (see :meth:`SearchSpace.with_overrides`)."""
    text_ = str(name_or_path)
    path = Path(text_)
    if path.suffix in (".yaml", ".yml") or "/" in text_ or os.sep in text_ or path.is_file():
        return _load_file(path, overrides)
    folder = _spaces_dir()
    files = _space_files(folder)
    if text_ not in files:
        available = ", ".join(files) if files else "none"
        raise ConfigError(f"unknown search space {text_!r} (available in {folder}: {available})")
    return _load_file(files[text_], overrides)


def _load_file(path: Path, overrides: dict | None = None) -> SearchSpace:
    label = _label(path)
    raw, tree = load_yaml(path, label)
    if tree is None:
        raise ConfigError(f"{label}: the file is empty (expected method and parameters)")
    return _build(tree, name=path.stem, path=path, label=label, comment=_first_comment(raw), overrides=overrides)


def space_from_dict(tree: dict, name: str = "<dict>", path: Path | None = None,
                    overrides: dict | None = None) -> SearchSpace:
    """A space from an already loaded mapping (e.g. a W&B sweep dict of the notebook)."""
    label = _label(path) if path is not None else name
    return _build(tree, name=name, path=Path(path) if path is not None else None, label=label, comment="",
                  overrides=overrides)


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


def _tune_block(tree: dict, label: str) -> dict:
    block = tree.get("tune") or {}
    if not isinstance(block, dict):
        raise ConfigError(f"{label}: tune: expected a mapping of options, got {type(block).__name__}")
    out = {}
    for key, value in block.items():
        if key not in TUNE_OPTIONS:
            raise ConfigError(f"{label}: tune.{key}: unknown option (allowed: {', '.join(TUNE_OPTIONS)})")
        value = TUNE_OPTIONS[key](f"{label}: tune.{key}", value)
        out[key] = value.lower() if key in _LOWERCASE_OPTIONS and isinstance(value, str) else value

    metric = tree.get("metric")  # W&B's own key: {name, goal} (a bare name is accepted too)
    if metric is not None:
        if isinstance(metric, str):
            metric = {"name": metric}
        if not isinstance(metric, dict):
            raise ConfigError(f"{label}: metric: expected {{name: ..., goal: maximize|minimize}}, "
                              f"got {type(metric).__name__}")
        for key in metric:
            if key not in ("name", "goal"):
                raise ConfigError(f"{label}: metric.{key}: unknown key (allowed: name, goal)")
        mapped = {}
        if "name" in metric:
            mapped["metric"] = TUNE_OPTIONS["metric"](f"{label}: metric.name", metric["name"])
        if "goal" in metric:
            goal = choice("maximize", "minimize")(f"{label}: metric.goal", metric["goal"])
            mapped["mode"] = "max" if goal == "maximize" else "min"
        for key, value in mapped.items():
            if key in out and out[key] != value:
                raise ConfigError(f"{label}: metric: {value!r} contradicts tune.{key}: {out[key]!r}")
            out[key] = value

    if "run_cap" in tree:  # W&B's cap on the number of runs
        cap = TUNE_OPTIONS["num_samples"](f"{label}: run_cap", tree["run_cap"])
        if "num_samples" in out and out["num_samples"] != cap:
            raise ConfigError(f"{label}: run_cap: {cap} contradicts tune.num_samples: {out['num_samples']}")
        out["num_samples"] = cap
    return out


# --------------------------------------------------------------------------------------------
# parameter blocks


def _parse_parameters(tree: dict, prefix: str, ppath: str, label: str, out: dict, paths: dict) -> None:
    for name, block in tree.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{label}: {ppath}: parameter names must be text, got {name!r}")
        key = prefix + name
        here = f"{ppath}.{name}"
        _check_key(key, f"{label}: {here}")
        if isinstance(block, dict) and "parameters" in block:
            if len(block) > 1:
                other = ", ".join(str(k) for k in block if k != "parameters")
                raise ConfigError(f"{label}: {here}: a block with parameters takes nothing else (got {other})")
            if key in SCHEMA:
                raise ConfigError(f"{label}: {here}.parameters: {key} is one setting, not a section; "
                                  "give it values, value or a distribution")
            inner = block["parameters"]
            if inner is None:
                inner = {}
            if not isinstance(inner, dict):
                raise ConfigError(f"{label}: {here}.parameters: expected a mapping of parameter blocks, "
                                  f"got {type(inner).__name__}")
            _parse_parameters(inner, key + ".", f"{here}.parameters", label, out, paths)
            continue
        if key in out:
            raise ConfigError(f"{label}: {here}: {key} is given twice")
        out[key] = _parse_block(block, key, here, label)
        paths[key] = here


def _check_key(key: str, where: str) -> None:
    if key in SCHEMA or key in SECTIONS:
        return
    parts = key.split(".")
    prefix = ""
    for part in parts[:-1]:  # the deepest known section above the key
        if prefix + part in SECTIONS:
            prefix += part + "."
        else:
            break
    n = len(prefix)
    allowed = sorted({k[n:].split(".")[0] for k in SCHEMA if k.startswith(prefix)})
    place = f" in {prefix[:-1]}" if prefix else ""
    raise ConfigError(f"{where}: unknown key {key}{place} (allowed: {', '.join(allowed)})")


def _parse_block(block: Any, key: str, here: str, label: str) -> dict:
    where = f"{label}: {here}"
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: expected a block like {{values: [...]}}, {{value: x}} or "
                          f"{{distribution: ..., min: ..., max: ...}}, got {type(block).__name__} {block!r}")
    for k in block:
        if k == "probabilities":
            raise ConfigError(f"{where}.probabilities: weighted categories are not supported "
                              "(Ray Tune's choice is uniform); repeat a value to weight it")
        if k not in _BLOCK_KEYS:
            raise ConfigError(f"{where}.{k}: unknown key in a parameter block (allowed: {', '.join(_BLOCK_KEYS)})")

    dist = block.get("distribution")
    if dist is not None:
        if not isinstance(dist, str) or dist.lower() not in DISTRIBUTIONS:
            raise ConfigError(f"{where}.distribution: unknown distribution {dist!r} "
                              f"(allowed: {', '.join(DISTRIBUTIONS)})")
        dist = dist.lower()
    if "values" in block and "value" in block:
        raise ConfigError(f"{where}: both values and value given; give one")
    if dist is None:
        if "values" in block:
            dist = "categorical"
        elif "value" in block:
            dist = "constant"
        elif "min" in block or "max" in block:  # W&B infers int_uniform / uniform from the bounds
            for b in ("min", "max"):
                if b not in block:
                    raise ConfigError(f"{where}: {b} is missing (a range needs min and max)")
            ints = all(isinstance(block[b], int) and not isinstance(block[b], bool) for b in ("min", "max"))
            dist = "int_uniform" if ints else "uniform"
        else:
            raise ConfigError(f"{where}: give values, value, or a distribution with its min and max")
    if "values" in block and dist != "categorical":
        raise ConfigError(f"{where}: both values and distribution {dist} given; give one")
    if "value" in block and dist != "constant":
        raise ConfigError(f"{where}: both value and distribution {dist} given; give one")

    required, optional = DISTRIBUTIONS[dist]
    used = set(required) | set(optional) | {"distribution"}
    for k in block:
        if k not in used:
            its = ", ".join(list(required) + list(optional)) or "none"
            raise ConfigError(f"{where}.{k}: not used by distribution {dist} (its keys: {its})")
    missing = [k for k in required if k not in block]
    if missing:
        raise ConfigError(f"{where}: {' and '.join(missing)} missing (distribution {dist} needs "
                          f"{', '.join(required)})")

    if dist == "constant":
        return {"value": _check_value(key, block["value"], f"{where}.value")}
    if dist == "categorical":
        values = block["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.values: expected a non-empty list, got {values!r}")
        return {"values": [_check_value(key, v, f"{where}.values[{i}]") for i, v in enumerate(values)]}
    if key in SECTIONS:
        raise ConfigError(f"{where}: section {key} takes values or value (mappings of its keys), "
                          "not a distribution")

    out: dict[str, Any] = {"distribution": dist}
    for k in list(required) + list(optional):
        out[k] = _number(block.get(k, optional.get(k)), f"{where}.{k}")
    if dist == "int_uniform":
        for k in ("min", "max"):
            if out[k] != int(out[k]):
                raise ConfigError(f"{where}.{k}: int_uniform needs integer bounds, got {out[k]!r}")
            out[k] = int(out[k])
    if "min" in out and out["min"] > out["max"]:
        raise ConfigError(f"{where}: min {out['min']!r} is greater than max {out['max']!r}")
    if dist in _POSITIVE_VALUES and out["min"] <= 0:
        raise ConfigError(f"{where}.min: {dist} needs min > 0, got {out['min']!r} "
                          "(for bounds given as exponents use " + dist.replace("_values", "") + ")")
    if "q" in out and out["q"] <= 0:
        raise ConfigError(f"{where}.q: must be > 0, got {out['q']!r}")
    if "sigma" in out and out["sigma"] <= 0:
        raise ConfigError(f"{where}.sigma: must be > 0, got {out['sigma']!r}")
    if dist in _LOG_EXPONENTS and max(abs(out["min"]), abs(out["max"])) > 700:
        raise ConfigError(f"{where}: {dist} takes natural-log exponents; {out['min']!r}..{out['max']!r} "
                          "overflows (did you mean " + dist + "_values?)")
    if "q" in out:
        _bounds(out, where)  # refuses a range without a multiple of q
    return out


def _number(value: Any, where: str) -> int | float:
    if isinstance(value, str):  # YAML 1.1 reads 1e-5 as text
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return value


def _check_value(key: str, value: Any, where: str) -> Any:
    """One value of a parameter, checked by the schema (a section: a partial subtree of it, key by key;
    how its keys go together with the rest is checked once the whole space is known)."""
    if key in SECTIONS:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: section {key} takes mappings of its keys, got {value!r}")
        out = {}
        for k, v in flatten({key: value}).items():
            inner = f"{where}.{k[len(key) + 1:]}"
            _check_key(k, inner)
            if k in SECTIONS:  # an empty mapping under a section name
                raise ConfigError(f"{inner}: expected a value, got {v!r}")
            out[k] = SCHEMA[k].check(inner, v)
        return unflatten(out).get(key, {})
    return SCHEMA[key].check(where, value)


def _normalised_tree(tree: dict) -> dict:
    """A validated partial config with every given leaf passed through its check (``ext: grad`` -> [grad])."""
    return unflatten({k: SCHEMA[k].check(k, v) for k, v in flatten(tree).items()})


# --------------------------------------------------------------------------------------------
# ranges, domains, grids


def _snap(lo: float, hi: float, q: int | float, where: str) -> tuple:
    """The first and last multiples of q within [lo, hi] (ints for an integer q)."""
    dq = Decimal(repr(q))

    def index(bound, rounding):  # a bound within rounding error of a multiple (e^log(512)) is that multiple
        scaled = Decimal(repr(float(bound))) / dq
        nearest = round(scaled)
        return int(nearest) if math.isclose(scaled, nearest, rel_tol=1e-9, abs_tol=1e-12) else rounding(scaled)

    klo, khi = index(lo, math.ceil), index(hi, math.floor)
    if klo > khi:
        raise ConfigError(f"{where}: no multiple of q={q!r} between {lo:g} and {hi:g} (q defaults to 1)")
    if isinstance(q, int):
        return int(klo * q), int(khi * q)
    return float(klo * dq), float(khi * dq)


def _bounds(block: dict, where: str = "") -> tuple | None:
    """The range the draws of a distribution block lie in (None: unbounded)."""
    dist = block["distribution"]
    lo, hi = block.get("min"), block.get("max")
    if dist in ("log_uniform", "q_log_uniform"):
        lo, hi = math.exp(lo), math.exp(hi)
    elif dist == "inv_log_uniform":
        lo, hi = math.exp(-hi), math.exp(-lo)
    elif lo is None:
        return None
    if "q" in block:
        return _snap(lo, hi, block["q"], where)
    return lo, hi


def _domain(block: dict):
    """The Ray Tune domain of a distribution block."""
    dist, q = block["distribution"], block.get("q")
    if dist == "int_uniform":
        return tune.randint(block["min"], block["max"] + 1)  # W&B's max is inclusive, Tune's is not
    if dist == "uniform":
        return tune.uniform(block["min"], block["max"])
    if dist in ("normal", "q_normal"):
        return tune.qrandn(block["mu"], block["sigma"], q) if q is not None else tune.randn(block["mu"], block["sigma"])
    if dist in ("log_normal", "q_log_normal"):
        return lognormal(block["mu"], block["sigma"], q)
    lo, hi = _bounds(block)
    if dist == "q_uniform":
        if isinstance(q, int):
            return tune.randint(lo, hi + 1) if q == 1 else tune.qrandint(lo, hi, q)
        return tune.quniform(lo, hi, q)
    if dist in ("q_log_uniform", "q_log_uniform_values"):
        if isinstance(q, int):
            return tune.lograndint(lo, hi + 1) if q == 1 else tune.qlograndint(lo, hi, q)
        return tune.qloguniform(lo, hi, q)
    return tune.loguniform(lo, hi)  # log_uniform(_values), inv_log_uniform(_values)


def _grid_values(block: dict) -> list | None:
    """The values a grid enumerates for a block (None: not enumerated)."""
    if "values" in block:
        return block["values"]
    dist = block.get("distribution")
    if dist == "int_uniform":
        return list(range(block["min"], block["max"] + 1))
    if dist == "q_uniform":
        lo, hi = _bounds(block)
        q = block["q"]
        if isinstance(q, int):
            return list(range(lo, hi + 1, q))
        dq = Decimal(repr(q))
        klo, khi = round(Decimal(repr(lo)) / dq), round(Decimal(repr(hi)) / dq)
        return [float(k * dq) for k in range(klo, khi + 1)]
    return None


def _tune_value(block: dict, grid: bool):
    if "value" in block:
        return copy.deepcopy(block["value"])
    if grid:
        values = _grid_values(block)
        if values is not None:
            return tune.grid_search(copy.deepcopy(values))
    if "values" in block:
        return tune.choice(copy.deepcopy(block["values"]))
    return _domain(block)


def _merged_section_block(block: dict, base_section: dict) -> dict:
    if "value" in block:
        return {"value": merge(base_section, block["value"])}
    return {"values": [merge(base_section, v) for v in block["values"]]}


def _representative(block: dict):
    """A value of the block used to check the space as a whole: the first value, or the lower bound."""
    if "value" in block:
        return block["value"]
    if "values" in block:
        return block["values"][0]
    dist = block["distribution"]
    bounds = _bounds(block)
    if bounds is not None:
        return bounds[0]
    centre = block["mu"] if dist in ("normal", "q_normal") else math.exp(block["mu"])
    return round(centre / block["q"]) * block["q"] if "q" in block else centre


def _put(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[leaf] = value


# --------------------------------------------------------------------------------------------
# whole-space checks


def _check_space(space: SearchSpace, label: str, paths: dict) -> None:
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
        space.optuna_space()  # refuses what Optuna cannot express, now rather than when the sweep starts


def _axis_locations(space: SearchSpace) -> dict[tuple[str, str], str]:
    """(label, name) -> where the name is in the file: ``variants.v1``, ``ladder[2]``."""
    out = {(AXES["variants"], name): f"variants.{name}" for name in space.variants}
    out.update({(AXES["ladder"], rung_name(p)): f"ladder[{i}]" for i, p in enumerate(space.ladder)})
    return out


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
    draws = _domain(block).sample(size=_PROBES, random_state=np.random.default_rng(0))
    for value in draws:
        value = value.item() if hasattr(value, "item") else value
        try:
            check(key, value)
        except ConfigError as e:
            raise ConfigError(f"{where}: {block['distribution']} can draw {value!r}; {e}") from None


def _refuse_tune_syntax(value: Any, where: str) -> None:
    """Ray would evaluate a mapping {eval: ...} and expand {grid_search: ...}; no value may look like one."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("eval", "grid_search"):
                raise ConfigError(f"{where}: a mapping with key {k!r} is not allowed as a value")
            _refuse_tune_syntax(v, where)
    elif isinstance(value, list):
        for v in value:
            _refuse_tune_syntax(v, where)


# --------------------------------------------------------------------------------------------
# small helpers


def _param_path(key: str) -> str:
    """The path of a dotted key in the nested W&B schema: disc.lr -> parameters.disc.parameters.lr."""
    return "parameters." + ".parameters.".join(key.split("."))


def _choices(block: dict) -> list | None:
    """The categorical choices of a block (a constant: one); None for a distribution."""
    if "value" in block:
        return [block["value"]]
    return block.get("values")


def _optuna_choices(values: list) -> list:
    """Optuna stores None/bool/int/float/str only; other values are given as their YAML text."""
    if all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
        return list(values)
    return [yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
            for v in values]


def _flatten_params(params: dict, known: dict) -> dict:
    out = {}

    def walk(node, prefix):
        for k, v in node.items():
            key = prefix + str(k)
            if isinstance(v, dict) and key not in known and key not in SCHEMA:
                walk(v, key + ".")
            else:
                out[key] = v

    walk(params, "")
    return out


def _label(path: Path | str) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _first_comment(raw: str) -> str:
    for line in raw.splitlines():
        s = line.strip()
        if s.startswith("#"):
            s = s.lstrip("#").strip()
            if s:
                return s
    return ""


def _one_line(s: str) -> str:
    for line in s.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""
