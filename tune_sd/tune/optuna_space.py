"""A search space as Optuna's: ``{dotted key: distribution}`` for method bayes."""

from __future__ import annotations

from tune_sd.spaces.blocks import _bounds, _choices, choice_text
from tune_sd.spaces.checks import check_bayes
from tune_sd.spaces.space import SearchSpace


def optuna_space(space: SearchSpace) -> dict:
    """``{dotted key: optuna distribution}`` for every parameter of the space.

    ``values`` become a ``CategoricalDistribution`` (a ``value`` one with a single choice, so that
    the searcher's configs are complete). Choices that Optuna cannot store (lists, mappings) are
    given as their YAML flow text, e.g. ``"[2, 4]"`` (``spaces.blocks.choice_value`` maps them back).
    """
    import optuna.distributions as od

    check_bayes(space)
    out = {}
    for key, block in space.params.items():
        if "value" in block or "values" in block:
            out[key] = od.CategoricalDistribution(choice_text(_choices(block)))
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


