"""A search space as Ray Tune's ``param_space``: each W&B block as its Tune domain, named axes as
``tune.sample_from`` by the trial's label (the layout is ``tune_sd.spaces.sampling.space_tree``'s)."""

from __future__ import annotations

import copy

import numpy as np
from ray import tune
from ray.tune.search.sample import Float, Sampler

from tune_sd.spaces.blocks import _bounds
from tune_sd.spaces.sampling import space_tree
from tune_sd.spaces.space import SearchSpace


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


def param_space(space: SearchSpace, grid: bool | None = None) -> dict:
    """The nested ``param_space`` for ``tune.Tuner``: ``base`` with each parameter at its place.

    ``values`` become ``tune.choice`` (``tune.grid_search`` in grid mode: ``grid=True``, or
    ``grid=None`` with method grid, where int_uniform and q_uniform are enumerated as well), a
    ``value`` is a plain constant, a distribution its Tune domain. A named axis puts its label at the
    top (a grid over, or a choice of, its names) and, at each key one of its names sets, a
    ``tune.sample_from`` that picks the value by the label (base's value, or the default, for names
    that leave the key alone).
    """
    grid = space.method == "grid" if grid is None else grid
    return space_tree(space, grid, _RayDomains)


class _RayDomains:
    """The constructors :func:`space_tree` lays a space out with: Tune's domains."""

    grid = staticmethod(tune.grid_search)
    choice = staticmethod(tune.choice)

    @staticmethod
    def draw(block: dict):
        return _domain(block)

    @staticmethod
    def by_label(label: str, values: dict):
        return tune.sample_from(ByLabel(label, values))


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
