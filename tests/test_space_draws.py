"""The space checks probe a block's draws with numpy alone (tune_sd.spaces.draws); those draws are the ones
Ray Tune's domain for the block gives from the same random state, value for value and type for type."""

import numpy as np
import pytest

from tune_sd.spaces import space_from_dict
from tune_sd.spaces.draws import draws
from tune_sd.tune.ray_space import _domain

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
