"""Spaces draw without Ray: the checks probe a block's draws with numpy (tune_sd.spaces.draws) and
SearchSpace.sample (what sweep --dry-run shows) walks the space as Tune's variant generator does. Both give
what Ray gives from the same random state, value for value and type for type."""

import copy

import numpy as np
import pytest

from tune_sd.engine.config import flatten
from tune_sd.spaces import SPACES_DIR, load_space, space_from_dict
from tune_sd.spaces.draws import draws
from tune_sd.tune.ray_space import _domain, param_space

BLOCKS = [
    ("arch.lat_size", {"distribution": "int_uniform", "min": 1, "max": 10}),
    ("disc.gp", {"distribution": "uniform", "min": 0.0, "max": 0.3}),
    ("disc.gp", {"distribution": "q_uniform", "min": 0.0, "max": 0.3, "q": 0.05}),
    ("disc.gp", {"distribution": "q_uniform", "min": 0.01, "max": 0.29, "q": 0.05}),  # snapped inwards
    ("arch.lat_size", {"distribution": "q_uniform", "min": 1, "max": 10}),  # q defaults to 1
    ("disc.iters", {"distribution": "q_uniform", "min": 2, "max": 31, "q": 4}),
    ("disc.lr", {"distribution": "log_uniform", "min": -11.5, "max": -4.6}),
    ("disc.lr", {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2}),
    ("disc.lr", {"distribution": "inv_log_uniform", "min": 4.6, "max": 11.5}),
    ("disc.lr", {"distribution": "inv_log_uniform_values", "min": 1e-5, "max": 1e-2}),
    ("disc.lr", {"distribution": "q_log_uniform_values", "min": 1e-4, "max": 1e-2, "q": 1e-4}),
    ("disc.hid_size", {"distribution": "q_log_uniform_values", "min": 16, "max": 512}),
    ("disc.hid_size", {"distribution": "q_log_uniform_values", "min": 16, "max": 512, "q": 16}),
    ("disc.hid_size", {"distribution": "q_log_uniform", "min": 2.8, "max": 6.3, "q": 8}),
    ("disc.gp", {"distribution": "normal", "mu": 0.5, "sigma": 0.1}),
    ("disc.gp", {"distribution": "q_normal", "mu": 0.5, "sigma": 0.1, "q": 0.05}),
    ("disc.lr", {"distribution": "log_normal", "mu": -7.0, "sigma": 0.5}),
    ("disc.gp", {"distribution": "q_log_normal", "mu": -1.0, "sigma": 0.5, "q": 0.01}),
]


@pytest.mark.parametrize("key,raw", BLOCKS, ids=[f"{b['distribution']}-{i}" for i, (_, b) in enumerate(BLOCKS)])
def test_numpy_draws_are_ray_tunes(key, raw):
    section, name = key.split(".")
    space = space_from_dict({"method": "random", "parameters": {section: {"parameters": {name: raw}}}})
    block = space.params[key]  # normalised: defaults filled in, bounds checked
    ours = draws(block, 256, np.random.default_rng(3))
    theirs = [v.item() if hasattr(v, "item") else v for v in
              _domain(block).sample(size=256, random_state=np.random.default_rng(3))]
    assert [type(v) for v in ours] == [type(v) for v in theirs]
    assert ours == theirs


def ray_configs(space, n, seed):
    """What Ray's variant generator gives for the space's param_space, drawn as SearchSpace.sample describes."""
    from ray.tune.search.variant_generator import generate_variants

    tree, rng, out = param_space(space), np.random.default_rng(seed), []
    while len(out) < n:
        for _, spec in generate_variants({"config": tree}, random_state=rng):
            out.append(copy.deepcopy(spec["config"]))
            if len(out) == n:
                break
        if space.method == "grid":
            break
    return out


MIXED = {
    "method": "random",
    "parameters": {
        "arch": {"parameters": {"lat_size": {"values": [1, 3, 5]}, "hid_num": {"value": [2, 0]}}},
        "disc": {"parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
                                "iters": {"distribution": "q_uniform", "min": 2, "max": 30, "q": 4},
                                "gp": {"distribution": "q_log_normal", "mu": -8, "sigma": 1, "q": 1e-6},
                                "hid_size": {"distribution": "q_log_uniform_values", "min": 16, "max": 256}}},
        "generator": {"values": [{"type": "gp", "length_scale": 0.5}, {"type": "mlp"}]},
    },
    "variants": {"v0": {}, "v1": {"disc": {"wd": 0.0}}, "v2": {"disc": {"wd": 1e-3}, "avg_hor": 50}},
    "base": {"disc": {"wd": 1e-7}},
}


@pytest.mark.parametrize("name", sorted(p.stem for p in SPACES_DIR.glob("*.yaml")) + ["mixed", "mixed-grid"])
def test_sample_is_what_rays_variant_generator_gives(name):
    if name.startswith("mixed"):
        tree = dict(MIXED, method="grid") if name == "mixed-grid" else MIXED
        if name == "mixed-grid":  # a grid enumerates values, int_uniform and q_uniform only
            tree = copy.deepcopy(tree)
            del tree["parameters"]["disc"]["parameters"]["lr"], tree["parameters"]["disc"]["parameters"]["gp"]
            del tree["parameters"]["disc"]["parameters"]["hid_size"]
        space = space_from_dict(tree)
    else:
        space = load_space(name)
    for seed in (0, 5):
        ours = space.sample(12, seed=seed, labels=True)
        assert ours == ray_configs(space, 12, seed)
        assert [type(v) for c in ours for v in flatten(c).values()] == \
            [type(v) for c in ray_configs(space, 12, seed) for v in flatten(c).values()]
