"""A search space as Optuna's: ``{dotted key: distribution}`` for method bayes."""

from __future__ import annotations

import yaml

from tune_sd.engine.config import SCHEMA
from tune_sd.errors import ConfigError
from tune_sd.spaces.blocks import _bounds, _choices
from tune_sd.spaces.checks import check_bayes
from tune_sd.spaces.space import SearchSpace


def optuna_space(space: SearchSpace) -> dict:
    """``{dotted key: optuna distribution}`` for every parameter of the space.

    ``values`` become a ``CategoricalDistribution`` (a ``value`` one with a single choice, so that
    the searcher's configs are complete). Choices that Optuna cannot store (lists, mappings) are
    given as their YAML flow text, e.g. ``"[2, 4]"``; :meth:`decode` maps them back to the values.
    """
    import optuna.distributions as od

    check_bayes(space)
    out = {}
    for key, block in space.params.items():
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
        else:  # q_log_uniform(_values) with q: 1, the one quantized log scale check_bayes lets through
            lo, hi = _bounds(block)
            out[key] = od.IntDistribution(lo, hi, log=True)
    return out


def decode(space: SearchSpace, params: dict) -> dict:
    """Optuna's ``trial.params`` (``{dotted key: value}``, as :meth:`optuna_space` names them; nested
    dicts are accepted too) -> the nested config of that trial: base + the values, with
    categorical codes turned back into the lists they stand for. Constants may be left out."""
    flat = _flatten_params(params, space.params)
    dists = optuna_space(space)
    unknown = [k for k in flat if k not in dists]
    if unknown:
        raise ConfigError(f"{space._label()}: decode: {', '.join(unknown)} not among the varying "
                          f"parameters ({', '.join(dists) or 'none'})")
    missing = [k for k in dists if k not in flat and len(_choices(space.params[k]) or ()) != 1]
    if missing:
        raise ConfigError(f"{space._label()}: decode: no value for {', '.join(missing)}")
    chosen = {}
    for key, block in space.params.items():
        choices = _choices(block)
        if choices is not None and key not in flat:  # a constant
            chosen[key] = choices[0]
        elif choices is not None:
            codes = dict(zip(_optuna_choices(choices), choices))
            if flat[key] not in codes:
                raise ConfigError(f"{space._label()}: decode: {key}: {flat[key]!r} is not one of "
                                  f"{list(codes)}")
            chosen[key] = codes[flat[key]]
        else:
            chosen[key] = flat[key]
    return space._assemble(chosen)


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
