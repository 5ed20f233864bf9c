"""Parameter blocks of the W&B sweep schema: ``values``, ``value`` or a ``distribution`` with its
``min``/``max``/``q``/``mu``/``sigma``; each parsed, checked against the run config's key, and the ranges
and grids its draws lie in.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from tune_sd.engine.config import SCHEMA, SECTIONS, _as_number, _fail, _known_keys, flatten, merge, unflatten
from tune_sd.errors import ConfigError

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
    prefix = key.split(".")[0] + "." if key.split(".")[0] in SECTIONS else ""  # the known section above the key
    place = f" in {prefix[:-1]}" if prefix else ""
    raise ConfigError(f"{where}: unknown key {key}{place} (allowed: {', '.join(_known_keys(prefix))})")


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
    """A number as the run config reads one (``1e-5`` given as text too), kept an int when it is one."""
    value = _as_number(where, value, "a finite number")
    if not math.isfinite(value):
        _fail(where, value, "a finite number")
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


def _param_path(key: str) -> str:
    """The path of a dotted key in the nested W&B schema: disc.lr -> parameters.disc.parameters.lr."""
    return "parameters." + ".parameters.".join(key.split("."))


def _choices(block: dict) -> list | None:
    """The categorical choices of a block (a constant: one); None for a distribution."""
    if "value" in block:
        return [block["value"]]
    return block.get("values")


# ---------------------------------------------------------------------------------------------
# choices as a searcher stores them: Optuna keeps None/bool/int/float/str only


def choice_text(values: list) -> list:
    """The choices as Optuna can store them: as they are, or all as their YAML flow text ("[2, 4]")
    where one is a pair, a list or a mapping; :func:`choice_value` maps them back."""
    if all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
        return list(values)
    import yaml

    return [yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
            for v in values]


def choice_value(key: str, value):
    """A config key's value back from :func:`choice_text`: the YAML text of a list or mapping becomes
    the value again; anything else (text that is no YAML included) stays as it is."""
    if isinstance(value, str) and value[:1] in "[{" and key in SCHEMA:
        from tune_sd.engine import yaml_limits

        try:
            return yaml_limits.parse(value, key)
        except ConfigError:
            return value
    return value
