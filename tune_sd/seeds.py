"""A config and its seeds: what tells the seeds of one config apart, a config's value over its seeds,
and whether one config's seeds score worse than another's.

With ``--repeat R`` a sweep runs each sampled config R times, each with its own engine seed (and, with
``--repeat-data``, its own input points); the seeds are repeats of one experiment. The stopping rules
(tune layer), the TensorBoard session groups and the analysis all group trials into configs by what
is left when the seed keys are dropped, take a config's value at a point as the median over its
seeds, and compare two configs by a rank test on their seeds: the definitions live here, once.

No Ray, no torch, no pandas (the stopping rules import this where none of them is needed).
"""

from __future__ import annotations

import statistics

#: what differs between the seeds of one config: the engine seed and the repeat label
SEED_KEYS = ("seed", "repeat")
#: the input points' seed: a seed key too where each repeat draws its own points (--repeat-data)
DATA_SEED = "data.seed"


def seed_keys(repeat_data: bool = False) -> tuple[str, ...]:
    """The dotted keys that tell the seeds of a config apart."""
    return SEED_KEYS + ((DATA_SEED,) if repeat_data else ())


def flat_config(config: dict | None) -> dict:
    """``{dotted key: value}`` of a trial's config, nested (Tune's) or already dotted (a searcher's)."""
    flat: dict = {}

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(config or {})
    return flat


def without_seeds(flat: dict, repeat_data: bool = False) -> dict:
    """A flat config (or a trial's values) without the keys that tell its seeds apart."""
    drop = set(seed_keys(repeat_data))
    return {k: v for k, v in flat.items() if k not in drop}


def config_key(config: dict | None, repeat_data: bool = False) -> str:
    """A trial's config without what its repeat changes, as text: the same for all seeds of a config."""
    return repr(sorted((k, repr(v)) for k, v in without_seeds(flat_config(config), repeat_data).items()))


def seed_columns(columns, repeat_data: bool = False, prefix: str = "cfg.") -> set[str]:
    """The columns of a results table (``cfg.<dotted key>`` and the labels) that tell seeds apart."""
    keys = seed_keys(repeat_data)
    return {c for c in columns if c in keys or (c.startswith(prefix) and c[len(prefix):] in keys)}


def median_over_seeds(values) -> float:
    """A config's value at one point (an epoch, the end of its run): the median over its seeds there,
    robust to one lucky or unlucky seed."""
    return float(statistics.median(values))


def p_worse(values, best, mode: str = "max", method: str = "auto") -> float:
    """One-sided p-value of the Mann-Whitney U test that the seeds ``values`` score worse than the seeds
    ``best`` (lower where ``mode`` is max, higher where it is min): small where a config is shown worse
    than the best one. ``method``: SciPy's (``exact`` for the race, whose few seeds make it exact)."""
    from scipy import stats

    values, best = list(map(float, values)), list(map(float, best))
    if mode == "min":
        values, best = [-v for v in values], [-v for v in best]
    return float(stats.mannwhitneyu(values, best, alternative="less", method=method).pvalue)
