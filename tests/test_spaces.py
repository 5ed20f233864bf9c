"""Search spaces: the seed's W&B sweeps load as they are, map onto Ray Tune domains, and bad ones are refused."""

import itertools
import math
import textwrap

import numpy as np
import pytest
import yaml
from ray.tune.search.sample import Categorical, Float, Integer, Quantized

from tune_sd.engine.config import Config, defaults
from tune_sd.errors import ConfigError
from tune_sd.spaces import SearchSpace, list_spaces, load_space, space_from_dict
from tune_sd.spaces import files as space_files
from tune_sd.tune.optuna_space import optuna_space
from tune_sd.tune.ray_space import param_space

# ---------------------------------------------------------------------------------------------
# the seed's four studies (its hp_study dicts; tuples written as lists)

STUDY_153 = """\
# Step 15.3: random search over the critic on F10_v1 (153-sd-study-F10_v1)
method: random
parameters:
  arch:
    parameters:
      in_size: {values: [1]}
      out_size: {values: [1]}
      hid_num: {values: [[2, 0]]}
      hid_size: {values: [32]}
      lat_size: {values: [1, 3, 5, 10]}
  disc:
    parameters:
      hid_num: {values: [2, 4, 6, 8]}
      hid_size: {values: [64, 128, 256, 512]}
      lr: {values: [1e-5, 1e-4, 1e-3, 1e-2]}
      iters: {values: [1, 3, 5, 10]}
      gp: {values: [0.0, 1e-6, 1e-5, 1e-4, 1e-3]}
"""

EXT_EMBED_PARAMS = """\
parameters:
  arch:
    parameters:
      in_size: {values: [1]}
      out_size: {values: [1]}
      hid_num: {values: [[2, 0]]}
      hid_size: {values: [32]}
      lat_size: {values: [1, 3, 5]}
  disc:
    parameters:
      hid_num: {values: [[2, 2], [2, 4], [2, 8], [2, 16]]}
      hid_size: {values: [[64, 64], [64, 128], [64, 256], [64, 512]]}
      lr: {values: [1e-5, 1e-4, 1e-3]}
      iters: {values: [1, 3, 5]}
      gp: {values: [1e-6, 1e-5, 1e-4]}
"""

EXT_STACK_PARAMS = """\
parameters:
  arch:
    parameters:
      in_size: {values: [1]}
      out_size: {values: [1]}
      hid_num: {values: [[2, 0]]}
      hid_size: {values: [32]}
      lat_size: {values: [1, 3, 5]}
  disc:
    parameters:
      hid_num: {values: [2, 4, 8, 16]}
      hid_size: {values: [64, 128, 256, 512]}
      lr: {values: [1e-5, 1e-4, 1e-3]}
      iters: {values: [1, 3, 5]}
      gp: {values: [1e-6, 1e-5, 1e-4]}
"""


def seed_base(ext, ext_type):
    """The seed's fixed hyperparameters of the 15.5 studies."""
    return textwrap.dedent(f"""\
        base:
          arch:
            hid_type: [MLP, MLP]
            hid_kwargs: {{alpha: null, norm: null, prune: null}}
            lat_size: 3
          epochs: 100000
          runtime: null
          batch_size: 700
          ext: {ext}
          ext_type: {ext_type}
          ext_size: 1
          disc: {{hid_num: 2, hid_size: 64, lr: 1.0e-4, wd: 1.0e-7, betas: [0.9, 0.999], iters: 5, gp: 1.0e-5}}
        """)


SEED_STUDIES = {
    "153-sd-study-F10_v1": STUDY_153,
    "155-ext1-study-F10_v1": "# Step 15.5.1: embed input data\nmethod: random\n" + EXT_EMBED_PARAMS
                             + seed_base("[input]", "embed"),
    "155-ext2-study-F10_v1": "# Step 15.5.2: embed gradient data\nmethod: random\n" + EXT_EMBED_PARAMS
                             + seed_base("[grad]", "embed"),
    # the seed wrote ext: ["stack"] with ext_type embed, a slip: the study is 'stack grad'
    "155-ext3-study-F10_v1": "# Step 15.5.3: stack gradient data\nmethod: random\n" + EXT_STACK_PARAMS
                             + seed_base("[grad]", "stack"),
}


@pytest.fixture
def space_dir(tmp_path, monkeypatch):
    """A spaces folder holding the seed's studies, found through TUNE_SD_SPACES."""
    folder = tmp_path / "search_spaces"
    folder.mkdir()
    for name, text in SEED_STUDIES.items():
        (folder / f"{name}.yaml").write_text(text)
    monkeypatch.setenv("TUNE_SD_SPACES", str(folder))
    return folder


def write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def at(tree, dotted):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def one(block, key="disc.lr", method="random", **extra):
    """A space varying one key with one block."""
    *sections, leaf = key.split(".")
    tree = {leaf: block}
    for s in reversed(sections):
        tree = {s: {"parameters": tree}}
    return space_from_dict({"method": method, "parameters": tree, **extra}, name="one.yaml")


def draws(space, key, n=4000, seed=1):
    domain = at(param_space(space), key)
    return np.asarray(domain.sample(size=n, random_state=np.random.default_rng(seed)))


# ---------------------------------------------------------------------------------------------
# the seed's studies


@pytest.mark.parametrize("name", list(SEED_STUDIES))
def test_seed_studies_load_and_sample_valid_configs(space_dir, name):
    space = load_space(name)
    assert isinstance(space, SearchSpace) and space.name == name and space.method == "random"
    assert space.path == space_dir / f"{name}.yaml"
    ps = param_space(space)
    lr = ps["disc"]["lr"]
    assert isinstance(lr, Categorical)
    expected_lr = [1e-5, 1e-4, 1e-3, 1e-2] if name.startswith("153") else [1e-5, 1e-4, 1e-3]
    assert lr.categories == expected_lr
    assert isinstance(ps["arch"]["lat_size"], Categorical)
    assert ps["arch"]["hid_num"].categories == [[2, 0]]  # a list value is ONE value: the pair
    if name.startswith("155-ext1") or name.startswith("155-ext2"):
        assert ps["disc"]["hid_num"].categories == [[2, 2], [2, 4], [2, 8], [2, 16]]
        assert ps["ext"] == (["input"] if "ext1" in name else ["grad"])  # base values sit beside the domains
        assert ps["ext_type"] == "embed"
    if name.startswith("155-ext3"):
        assert ps["ext"] == ["grad"] and ps["ext_type"] == "stack"
        assert ps["disc"]["hid_num"].categories == [2, 4, 8, 16]
        assert ps["disc"]["wd"] == pytest.approx(1e-7)

    samples = space.sample(5, seed=0)
    assert len(samples) == 5
    for cfg in samples:
        checked = Config.from_dict(cfg)
        assert checked.disc.lr in expected_lr  # YAML 1.1 read 1e-5 as text; the check made it a number
        assert checked.arch.hid_num == [2, 0]
    assert space.sample(5, seed=0) == samples
    assert space.sample(5, seed=1) != samples


def test_sample_matches_what_a_seeded_basic_variant_generator_gives(space_dir, tmp_path):
    from ray.tune.experiment import Experiment
    from ray.tune.search import BasicVariantGenerator

    space = load_space("153-sd-study-F10_v1")
    gen = BasicVariantGenerator(random_state=7)
    gen.add_configurations([Experiment("e", lambda config: None, config=param_space(space), num_samples=4,
                                       storage_path=str(tmp_path / "results"))])
    got = []
    while (trial := gen.next_trial()) is not None:
        got.append(trial.config)
    assert got == space.sample(4, seed=7)


def test_the_ext_studies_need_their_base():
    # without base the pairs have no ext to embed: refused, naming the conflict
    with pytest.raises(ConfigError, match=r"needs ext with ext_type: embed"):
        space_from_dict(yaml.safe_load("method: random\n" + EXT_EMBED_PARAMS), name="ext1.yaml")
    # the seed's slip (ext: [stack]) is refused with the fix in the message
    slip = "method: random\n" + EXT_STACK_PARAMS + seed_base("[stack]", "embed")
    with pytest.raises(ConfigError, match=r"set ext_type: stack") as err:
        space_from_dict(yaml.safe_load(slip), name="ext3.yaml")
    assert "ext3.yaml: base." in str(err.value)


def test_list_spaces_reads_descriptions(space_dir):
    (space_dir / "z-described.yml").write_text('# not this one\ndescription: "A space with a key"\nmethod: grid\n')
    (space_dir / "notes.txt").write_text("# not a space\n")
    listed = list_spaces()
    assert [n for n, _ in listed] == sorted(list(SEED_STUDIES) + ["z-described"])
    desc = dict(listed)
    assert desc["153-sd-study-F10_v1"] == "Step 15.3: random search over the critic on F10_v1 (153-sd-study-F10_v1)"
    assert desc["155-ext3-study-F10_v1"] == "Step 15.5.3: stack gradient data"
    assert desc["z-described"] == "A space with a key"
    assert load_space("z-described").description == "A space with a key"
    assert load_space("155-ext2-study-F10_v1").description == "Step 15.5.2: embed gradient data"


def test_spaces_dir_attribute_is_used_without_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNE_SD_SPACES", raising=False)
    monkeypatch.setattr(space_files, "SPACES_DIR", tmp_path)
    write(tmp_path, "# only one\nmethod: random\n", "solo.yaml")
    assert list_spaces() == [("solo", "only one")]
    assert param_space(load_space("solo")) == {}
    assert load_space(str(tmp_path / "solo.yaml")).name == "solo"


def test_unknown_space_name_lists_the_available_ones(space_dir):
    with pytest.raises(ConfigError) as err:
        load_space("154-nothing")
    msg = str(err.value)
    assert "'154-nothing'" in msg and "153-sd-study-F10_v1" in msg and "155-ext3-study-F10_v1" in msg
    with pytest.raises(ConfigError, match="file not found"):
        load_space(str(space_dir / "missing.yaml"))


# ---------------------------------------------------------------------------------------------
# grid


GRID = """\
method: grid
parameters:
  arch: {parameters: {lat_size: {values: [1, 3, 5]}}}
  disc:
    parameters:
      lr: {values: [1.0e-4, 1.0e-3]}
      hid_num: {value: 4}
      iters: {distribution: int_uniform, min: 1, max: 2}
base: {epochs: 50}
"""


def test_grid_values_become_grid_search_and_sample_enumerates_the_grid(tmp_path):
    space = load_space(str(write(tmp_path, GRID)))
    ps = param_space(space)
    assert ps["arch"]["lat_size"] == {"grid_search": [1, 3, 5]}
    assert ps["disc"]["lr"] == {"grid_search": [1e-4, 1e-3]}
    assert ps["disc"]["iters"] == {"grid_search": [1, 2]}  # int_uniform is enumerated, as W&B's grid does
    assert ps["disc"]["hid_num"] == 4 and ps["epochs"] == 50
    assert space.grid_size() == 3 * 2 * 2

    points = space.sample(100, seed=0)
    assert len(points) == 12  # the whole grid, once
    seen = {(p["arch"]["lat_size"], p["disc"]["lr"], p["disc"]["iters"]) for p in points}
    assert seen == set(itertools.product([1, 3, 5], [1e-4, 1e-3], [1, 2]))
    assert all(p["disc"]["hid_num"] == 4 and p["epochs"] == 50 for p in points)
    for p in points:
        Config.from_dict(p)
    assert space.sample(5, seed=0) == points[:5]
    assert space.sample(5, seed=3) == points[:5]  # a pure grid does not depend on the seed

    # the same space as random search: choices, not grids
    assert isinstance(param_space(space, grid=False)["arch"]["lat_size"], Categorical)


def test_grid_true_turns_a_random_space_into_a_grid(space_dir):
    space = load_space("153-sd-study-F10_v1")
    ps = param_space(space, grid=True)
    assert ps["disc"]["gp"] == {"grid_search": [0.0, 1e-6, 1e-5, 1e-4, 1e-3]}
    assert ps["arch"]["hid_num"] == {"grid_search": [[2, 0]]}
    assert space.grid_size(grid=True) == 4 * 4 * 4 * 4 * 4 * 5
    assert space.grid_size() == 1  # method random: no grid


def test_grid_refuses_continuous_distributions():
    with pytest.raises(ConfigError, match=r"parameters\.disc\.parameters\.lr: method grid .*log_uniform_values"):
        one({"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2}, method="grid")


def test_q_uniform_grid_holds_the_multiples_of_q():
    space = one({"distribution": "q_uniform", "min": 0.0, "max": 0.3, "q": 0.1}, key="disc.gp", method="grid")
    assert param_space(space)["disc"]["gp"] == {"grid_search": [0.0, 0.1, 0.2, 0.3]}


# ---------------------------------------------------------------------------------------------
# distributions -> Tune domains


def test_int_uniform_max_is_inclusive():
    space = one({"distribution": "int_uniform", "min": 1, "max": 4}, key="arch.lat_size")
    domain = param_space(space)["arch"]["lat_size"]
    assert isinstance(domain, Integer) and (domain.lower, domain.upper) == (1, 5)
    x = draws(space, "arch.lat_size")
    assert set(x.tolist()) == {1, 2, 3, 4}
    # W&B infers int_uniform from integer bounds without a distribution
    inferred = one({"min": 1, "max": 4}, key="arch.lat_size")
    assert inferred.params["arch.lat_size"]["distribution"] == "int_uniform"


def test_uniform_and_inferred_uniform():
    space = one({"distribution": "uniform", "min": 0.1, "max": 0.5}, key="disc.gp")
    domain = param_space(space)["disc"]["gp"]
    assert isinstance(domain, Float) and (domain.lower, domain.upper) == (0.1, 0.5)
    x = draws(space, "disc.gp")
    assert x.min() >= 0.1 and x.max() <= 0.5 and abs(np.mean(x) - 0.3) < 0.01
    assert one({"min": 0.1, "max": 0.5}, key="disc.gp").params["disc.gp"]["distribution"] == "uniform"


def test_log_uniform_values_is_in_range_and_log_spread():
    space = one({"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2})
    domain = param_space(space)["disc"]["lr"]
    assert isinstance(domain, Float) and domain.lower == 1e-5 and domain.upper == 1e-2
    x = draws(space, "disc.lr")
    assert x.min() >= 1e-5 and x.max() <= 1e-2
    decades = np.histogram(np.log10(x), bins=[-5, -4, -3, -2])[0] / len(x)
    assert np.all(np.abs(decades - 1 / 3) < 0.04)  # each decade gets a third


@pytest.mark.parametrize("block", [
    {"distribution": "log_uniform", "min": math.log(1e-5), "max": math.log(1e-2)},  # W&B: natural-log exponents
    {"distribution": "inv_log_uniform", "min": -math.log(1e-2), "max": -math.log(1e-5)},  # log(1/X) ~ U(min, max)
    {"distribution": "inv_log_uniform_values", "min": 1e-5, "max": 1e-2},  # log(1/X) ~ U(log 1/max, log 1/min)
])
def test_log_uniform_variants_are_the_same_log_uniform_range(block):
    domain = param_space(one(block))["disc"]["lr"]
    assert isinstance(domain, Float) and str(domain.get_sampler()) == "LogUniform"
    assert domain.lower == pytest.approx(1e-5) and domain.upper == pytest.approx(1e-2)


def test_quantized_distributions():
    # float q: quniform, values are multiples of q within [min, max]
    space = one({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25}, key="disc.gp")
    domain = param_space(space)["disc"]["gp"]
    assert isinstance(domain.get_sampler(), Quantized) and domain.get_sampler().q == 0.25
    assert set(draws(space, "disc.gp").tolist()) == {0.0, 0.25, 0.5, 0.75, 1.0}
    # integer q (the default, 1): integers, max included
    space = one({"distribution": "q_uniform", "min": 1, "max": 4}, key="disc.iters")
    assert set(draws(space, "disc.iters").tolist()) == {1, 2, 3, 4}
    space = one({"distribution": "q_uniform", "min": 2, "max": 8, "q": 2}, key="disc.iters")
    assert set(draws(space, "disc.iters").tolist()) == {2, 4, 6, 8}
    # q_log_uniform_values with q 1: log-spread integers, both ends reachable
    space = one({"distribution": "q_log_uniform_values", "min": 16, "max": 512}, key="disc.hid_size")
    x = draws(space, "disc.hid_size", n=20000)
    assert x.dtype.kind == "i" and x.min() == 16 and x.max() == 512
    assert abs(np.mean(x < 90.5) - 0.5) < 0.03  # the geometric midpoint splits the draws in half
    space = one({"distribution": "q_log_uniform_values", "min": 1e-5, "max": 1e-2, "q": 1e-5})
    x = draws(space, "disc.lr")
    assert x.min() >= 1e-5 and x.max() <= 1e-2 + 1e-12
    assert np.allclose(np.round(x / 1e-5) * 1e-5, x)
    # q_log_uniform: exponents, then quantized
    space = one({"distribution": "q_log_uniform", "min": math.log(16), "max": math.log(512), "q": 16},
                key="disc.hid_size")
    x = draws(space, "disc.hid_size")
    assert set(x.tolist()) <= set(range(16, 513, 16)) and x.min() == 16 and x.max() == 512


def test_normal_distributions():
    space = one({"distribution": "normal", "mu": 1e-3, "sigma": 1e-4})
    domain = param_space(space)["disc"]["lr"]
    assert str(domain.get_sampler()) == "Normal"
    assert (domain.get_sampler().mean, domain.get_sampler().sd) == (1e-3, 1e-4)
    x = draws(space, "disc.lr")
    assert abs(x.mean() - 1e-3) < 1e-5 and abs(x.std() - 1e-4) < 1e-5
    # W&B's defaults: mu 0, sigma 1; q_normal rounds to multiples of q
    space = one({"distribution": "q_normal", "mu": 100, "sigma": 10, "q": 5}, key="avg_hor")
    assert space.params["avg_hor"] == {"distribution": "q_normal", "mu": 100, "sigma": 10, "q": 5}
    x = draws(space, "avg_hor")
    assert np.all(x % 5 == 0) and abs(x.mean() - 100) < 1
    # log_normal: exp(N(mu, sigma)), drawn with the searcher's random state
    space = one({"distribution": "log_normal", "mu": 0.0, "sigma": 0.5}, key="generator.length_scale")
    x = draws(space, "generator.length_scale")
    assert x.min() > 0 and abs(np.log(x).mean()) < 0.03 and abs(np.log(x).std() - 0.5) < 0.03
    assert space.sample(3, seed=4) == space.sample(3, seed=4) != space.sample(3, seed=5)
    space = one({"distribution": "q_log_normal", "mu": 1.0, "sigma": 0.2, "q": 0.5}, key="generator.length_scale")
    assert np.all(draws(space, "generator.length_scale") % 0.5 == 0)


def test_constants_and_categories():
    space = one({"value": [2, 4]}, key="disc.hid_num", base={"ext": ["input"]})
    assert param_space(space)["disc"]["hid_num"] == [2, 4]  # a value is a plain constant
    space = one({"distribution": "categorical", "values": ["wasserstein", "BCE"]}, key="disc.loss_fun")
    assert param_space(space)["disc"]["loss_fun"].categories == ["wasserstein", "bce"]  # normalised by the check
    space = one({"distribution": "constant", "value": "1e-5"})  # YAML 1.1 reads 1e-5 as text
    assert param_space(space)["disc"]["lr"] == 1e-5


def test_a_whole_section_can_vary_and_keeps_base_values():
    space = space_from_dict({
        "parameters": {"generator": {"values": [{"type": "gp", "length_scale": 0.5}, {"type": "mlp"}]}},
        "base": {"generator": {"variance": 0.02}, "epochs": 10},
    })
    choices = param_space(space)["generator"].categories
    assert choices == [{"variance": 0.02, "type": "gp", "length_scale": 0.5}, {"variance": 0.02, "type": "mlp"}]
    for cfg in space.sample(4, seed=0):
        Config.from_dict(cfg)
    # each value is checked key by key; how it goes with base is checked with base
    pairs = {"parameters": {"disc": {"values": [{"hid_num": [2, 2]}, {"hid_num": 4}]}}}
    assert param_space(space_from_dict({**pairs, "base": {"ext": ["grad"]}}))["disc"].categories[0] == {
        "hid_num": [2, 2]}
    with pytest.raises(ConfigError, match=r"x.yaml: parameters.disc.values\[0\]: does not fit .* needs ext"):
        space_from_dict(pairs, name="x.yaml")
    with pytest.raises(ConfigError, match=r"parameters.disc.values\[1\].lrr: unknown key disc.lrr"):
        space_from_dict({"parameters": {"disc": {"values": [{"lr": 1e-3}, {"lrr": 1}]}}}, name="x.yaml")
    with pytest.raises(ConfigError, match=r"parameters.disc: section disc takes values or value"):
        space_from_dict({"parameters": {"disc": {"min": 1, "max": 2}}}, name="x.yaml")


# ---------------------------------------------------------------------------------------------
# bayes: Optuna


BAYES = """\
# Step 15.5.1 with a Bayesian search
method: bayes
metric: {name: avg_acc, goal: maximize}
parameters:
  arch: {parameters: {lat_size: {values: [1, 3, 5]}, hid_num: {values: [[2, 0]]}}}
  disc:
    parameters:
      hid_num: {values: [[2, 2], [2, 4], [2, 8]]}
      lr: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-2}
      iters: {distribution: int_uniform, min: 1, max: 10}
      gp: {distribution: uniform, min: 0.0, max: 1.0e-3}
      hid_size: {distribution: q_uniform, min: 32, max: 256, q: 32}
      wd: {value: 1.0e-7}
base: {ext: [input], ext_type: embed}
tune: {num_samples: 8, scheduler: ASHA}
"""


def test_optuna_space_and_the_trainables_decoder(tmp_path):
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from ray.tune.utils.util import unflatten_dict

    from tune_sd.engine.config import merge
    from tune_sd.tune.trial_config import split_trial_config

    space = load_space(str(write(tmp_path, BAYES)))
    assert space.method == "bayes"
    assert space.tune == {"num_samples": 8, "scheduler": "asha", "metric": "avg_acc", "mode": "max"}
    dists = optuna_space(space)
    assert list(dists) == ["arch.lat_size", "arch.hid_num", "disc.hid_num", "disc.lr", "disc.iters", "disc.gp",
                           "disc.hid_size", "disc.wd"]
    assert dists["arch.lat_size"] == CategoricalDistribution([1, 3, 5])
    # constants are single choices, so that a searcher's config is complete
    assert dists["arch.hid_num"] == CategoricalDistribution(["[2, 0]"])
    assert dists["disc.wd"] == CategoricalDistribution([1e-7])
    assert isinstance(dists["disc.hid_num"], CategoricalDistribution)
    assert all(isinstance(c, str) for c in dists["disc.hid_num"].choices)  # Optuna stores no lists
    assert dists["disc.lr"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert dists["disc.iters"] == IntDistribution(1, 10)  # inclusive, like W&B
    assert dists["disc.gp"] == FloatDistribution(0.0, 1e-3)
    assert dists["disc.hid_size"] == IntDistribution(32, 256, step=32)

    # what a trial receives: Ray's OptunaSearch unflattens trial.params; the trainable decodes the
    # lists (split_trial_config -> decode_value, the code every bayes trial runs)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask(dists)
        tree, labels = split_trial_config(unflatten_dict(dict(trial.params)))
        cfg = Config.from_dict(merge(space.base, tree))
        assert labels == {}
        assert cfg.disc.hid_num in ([2, 2], [2, 4], [2, 8])  # the lists are back
        assert cfg.arch.hid_num == [2, 0] and cfg.disc.wd == 1e-7 and cfg.ext == ["input"]
        assert cfg.disc.lr == trial.params["disc.lr"] and cfg.disc.iters == trial.params["disc.iters"]
        seen.add(tuple(cfg.disc.hid_num))
        study.tell(trial, 0.5)
    assert len(seen) > 1
    # flat dotted keys decode alike
    trial = study.trials[0]
    assert split_trial_config(dict(trial.params)) == split_trial_config(unflatten_dict(dict(trial.params)))


def test_bayes_refuses_what_optuna_cannot_express():
    with pytest.raises(ConfigError, match=r"parameters\.disc\.parameters\.lr: normal has no Optuna counterpart"):
        one({"distribution": "normal", "mu": 1e-3, "sigma": 1e-5}, method="bayes")
    with pytest.raises(ConfigError, match=r"q_log_uniform_values with q 8"):
        one({"distribution": "q_log_uniform_values", "min": 16, "max": 512, "q": 8}, key="disc.hid_size",
            method="bayes")


# ---------------------------------------------------------------------------------------------
# refusals


def refused(tmp_path, text, *parts):
    path = write(tmp_path, text, "bad.yaml")
    with pytest.raises(ConfigError) as err:
        load_space(str(path))
    msg = str(err.value)
    assert "bad.yaml" in msg, msg
    for part in parts:
        assert part in msg, msg
    return msg


def test_unknown_key_names_the_path_and_the_allowed_keys(tmp_path):
    msg = refused(tmp_path, """\
        method: random
        parameters:
          disc:
            parameters:
              lrr: {values: [1.0e-4]}
        """, "parameters.disc.parameters.lrr", "unknown key")
    for allowed in ("lr", "wd", "iters", "gp", "betas"):
        assert allowed in msg.split("allowed:")[1]
    refused(tmp_path, "parameters: {discc: {parameters: {lr: {value: 1}}}}\n", "parameters.discc", "disc", "arch")
    refused(tmp_path, "parameters: {epochs: {parameters: {a: {value: 1}}}}\n", "parameters.epochs.parameters",
            "one setting")


@pytest.mark.parametrize("block, parts", [
    ("{values: [1.0e-4], distribution: uniform, min: 0.1, max: 1}", ["both values and distribution"]),
    ("{values: [1.0e-4], value: 1.0e-4}", ["both values and value"]),
    ("{distribution: uniform, min: 0.5, max: 0.1}", ["min 0.5 is greater than max 0.1"]),
    ("{distribution: uniform, max: 0.1}", ["min missing"]),
    ("{min: 0.1}", ["max is missing"]),
    ("{valuez: [1]}", ["lr.valuez", "unknown key in a parameter block", "values"]),
    ("1.0e-4", ["expected a block"]),
    ("[1.0e-4, 1.0e-3]", ["expected a block"]),
    ("{values: 1.0e-4}", ["lr.values", "non-empty list"]),
    ("{values: []}", ["lr.values", "non-empty list"]),
    ("{}", ["give values, value, or a distribution"]),
    ("{distribution: loguniform, min: 1.0e-5, max: 1.0e-2}",
     ["lr.distribution", "unknown distribution 'loguniform'", "log_uniform_values"]),
    ("{distribution: normal, min: 1, max: 2}", ["lr.min", "not used by distribution normal"]),
    ("{distribution: uniform, min: 0.1, max: 0.5, q: 0.1}", ["lr.q", "not used by distribution uniform"]),
    ("{distribution: log_uniform_values, min: 0, max: 1.0e-2}", ["lr.min", "needs min > 0"]),
    ("{distribution: q_log_uniform_values, min: 1.0e-5, max: 1.0e-2}", ["no multiple of q=1"]),
    ("{distribution: normal, mu: 1.0e-3, sigma: 0}", ["lr.sigma", "> 0"]),
    ("{distribution: uniform, min: low, max: 1}", ["lr.min", "is not allowed (allowed: a finite number)"]),
    ("{distribution: categorical, values: [1.0e-4], probabilities: [1]}", ["probabilities", "not supported"]),
])
def test_malformed_blocks_are_refused_with_their_path(tmp_path, block, parts):
    refused(tmp_path, f"method: random\nparameters:\n  disc:\n    parameters:\n      lr: {block}\n",
            "parameters.disc.parameters.lr", *parts)


@pytest.mark.parametrize("block, parts", [
    ("lr: {values: [-1]}", ["parameters.disc.parameters.lr.values[0]", "not allowed"]),
    ("lr: {value: 0}", ["parameters.disc.parameters.lr.value", "not allowed"]),
    ("lr: {distribution: uniform, min: 0, max: 1}", ["parameters.disc.parameters.lr", "lowest value"]),
    ("lr: {distribution: uniform, min: 1, max: 20}", ["parameters.disc.parameters.lr", "highest value"]),
    ("iters: {distribution: uniform, min: 1, max: 5}", ["parameters.disc.parameters.iters", "can draw",
                                                        "an integer"]),
    ("iters: {distribution: q_uniform, min: 1, max: 5, q: 0.5}", ["parameters.disc.parameters.iters", "can draw"]),
    ("loss_fun: {values: [wasserstein, hinge]}", ["parameters.disc.parameters.loss_fun.values[1]", "hinge"]),
    ("hid_num: {values: [[2, 2, 2]]}", ["parameters.disc.parameters.hid_num.values[0]", "pair"]),
])
def test_bad_values_for_a_key_are_refused(tmp_path, block, parts):
    refused(tmp_path, f"method: random\nparameters:\n  disc:\n    parameters:\n      {block}\n", *parts)


def test_values_that_conflict_with_the_rest_are_refused(tmp_path):
    refused(tmp_path, """\
        parameters:
          disc: {parameters: {hid_num: {values: [4, [2, 2]]}}}
        """, "parameters.disc.parameters.hid_num.values[1]", "needs ext")
    refused(tmp_path, """\
        parameters:
          arch: {parameters: {in_size: {values: [2]}}}
        """, "parameters.arch.parameters.in_size.values[0]", "does not fit", "data.features")
    refused(tmp_path, """\
        parameters:
          ext_type: {values: [stack, embed]}
        base: {ext: [input], disc: {hid_num: [2, 2]}}
        """, "base with the first value of each parameter", "disc.hid_num: a pair")


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    msg = refused(tmp_path, """\
        method: random
        parameters:
          disc:
            parameters:
              lr: {values: [1, 2}
        """, "line 5", "not valid YAML")
    assert msg.startswith(str(tmp_path / "bad.yaml")) or msg.startswith("bad.yaml")


def test_other_refusals(tmp_path):
    refused(tmp_path, "method: random\nbase: {disc: {lrr: 1}}\n", "base.disc.lrr", "unknown key")
    refused(tmp_path, "base: {epochs: 0}\n", "base.epochs")
    refused(tmp_path, "tune: {schedular: asha}\n", "tune.schedular", "unknown option", "scheduler")
    refused(tmp_path, "tune: {num_samples: many}\n", "tune.num_samples")
    refused(tmp_path, "tune: {mode: maximize}\n", "tune.mode", "max, min")
    refused(tmp_path, "method: hyperband\n", "method", "random, grid, bayes")
    refused(tmp_path, "methd: random\n", "methd", "unknown key", "parameters")
    refused(tmp_path, "metric: {name: avg_acc, goal: up}\n", "metric.goal", "maximize")
    refused(tmp_path, "metric: {name: avg_acc, goal: minimize}\ntune: {mode: max}\n", "contradicts tune.mode")
    refused(tmp_path, "parameters: [1, 2]\n", "parameters", "mapping")
    refused(tmp_path, "- 1\n", "expected a mapping")
    refused(tmp_path, "", "empty")
    refused(tmp_path, "parameters: {arch: {parameters: {hid_kwargs: {value: {eval: x}}}}}\n", "hid_kwargs", "eval")
    refused(tmp_path, "parameters: {disc: {values: [{lr: 1.0e-4}]}, disc.lr: {value: 1.0e-4}}\n",
            "whole section varies")
    refused(tmp_path, "parameters: {disc: {parameters: {lr: {value: 1.0e-4}}}, disc.lr: {value: 1.0e-4}}\n",
            "given twice")


# ---------------------------------------------------------------------------------------------
# the rest of the file


def test_metric_tune_block_and_resolved(tmp_path):
    space = load_space(str(write(tmp_path, """\
        description: Critic learning rate only
        method: random
        metric: {name: avg_acc, goal: maximize}
        run_cap: 20
        parameters:
          disc.lr: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-2}
        base: {epochs: 200, disc: {wd: 1.0e-7}, ext: grad}
        tune: {scheduler: asha, grace_period: 5, reduction_factor: 3, cpus_per_trial: 0.5, gpus_per_trial: 0}
        """)))
    assert space.description == "Critic learning rate only"
    assert space.tune == {"scheduler": "asha", "grace_period": 5, "reduction_factor": 3.0, "cpus_per_trial": 0.5,
                          "gpus_per_trial": 0.0, "metric": "avg_acc", "mode": "max", "num_samples": 20}
    assert space.base == {"epochs": 200, "disc": {"wd": 1e-7}, "ext": ["grad"]}  # normalised by the checks
    ps = param_space(space)
    assert ps["epochs"] == 200 and ps["disc"]["wd"] == 1e-7 and isinstance(ps["disc"]["lr"], Float)
    res = space.resolved()
    assert res["name"] == "space" and res["method"] == "random"
    assert res["parameters"] == {"disc.lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2}}
    assert yaml.safe_load(yaml.safe_dump(res)) == res  # plain data


def test_a_bare_seed_sweep_dict_is_a_space():
    space = space_from_dict({"method": "random",
                             "parameters": {"arch": {"parameters": {"lat_size": {"values": [1, 3]}}}}})
    assert space.base == {} and space.tune == {} and space.description == ""
    for cfg in space.sample(3, seed=0):
        # everything else: the engine defaults
        assert Config.from_dict(cfg).flat() == {**Config.from_dict(defaults()).flat(),
                                                "arch.lat_size": cfg["arch"]["lat_size"]}


# ---------------------------------------------------------------------------------------------
# a sweep's --set goes into base before the space is checked (issue 12, item 4)


def test_set_completes_a_notebook_sweep_config_before_the_space_is_checked(tmp_path):
    # Step 15.5.2's W&B config: its notebook fixed ext and ext_type outside the sweep config
    path = write(tmp_path, "method: random\n" + EXT_EMBED_PARAMS, name="s1552.yaml")
    with pytest.raises(ConfigError, match=r"disc.hid_num.*needs ext"):
        load_space(path)
    space = load_space(path, overrides={"ext": ["grad"], "ext_type": "embed"})
    assert space.base["ext"] == ["grad"] and space.base["ext_type"] == "embed"
    assert space.overrides == {"ext": ["grad"], "ext_type": "embed"}
    for config in space.sample(8, seed=0):  # every draw is a valid run config with the fixed keys
        cfg = Config.from_dict(config)
        assert cfg.ext == ["grad"] and cfg.ext_type == "embed" and isinstance(cfg.disc.hid_num, list)
    # the sweep planner applies --set the same way to a space loaded without it
    bare = space_from_dict(yaml.safe_load("method: random\n" + EXT_EMBED_PARAMS + seed_base("[grad]", "embed")),
                           name="with-base.yaml")
    from tune_sd.tune.plan import SweepOptions, plan_sweep

    plan = plan_sweep(bare, SweepOptions(storage=str(tmp_path), overrides=["ext=[input]", "ext_type=embed"]))
    assert plan.base["ext"] == ["input"] and plan.space.base["ext"] == ["input"]


def test_set_of_a_swept_key_fixes_it_for_every_searcher(tmp_path):
    space = load_space(write(tmp_path, STUDY_153), overrides={"disc.lr": 3e-4})
    assert space.params["disc.lr"] == {"value": 3e-4}
    assert "disc.lr" not in space.swept_keys() and "disc.hid_num" in space.swept_keys()
    assert {c["disc"]["lr"] for c in space.sample(10, seed=1)} == {3e-4}
    assert optuna_space(space)["disc.lr"].choices == (3e-4,)
    # a key inside a section swept whole is set in each of the section's values
    whole = space_from_dict({"method": "grid", "parameters": {"disc": {"values": [{"lr": 1e-4, "iters": 1},
                                                                               {"lr": 1e-3, "iters": 3}]}}},
                            overrides={"disc.iters": 5})
    assert [v["iters"] for v in whole.params["disc"]["values"]] == [5, 5]
    assert whole.swept_keys() == ["disc.lr"]


@pytest.mark.parametrize("overrides, fragments", [
    ({"disc.lrr": 1}, ["--set disc.lrr", "unknown key", "allowed"]),
    ({"disc.lr": -1}, ["--set disc.lr"]),
    ({"disc": {"eval": "1"}}, ["--set disc.eval"]),
])
def test_bad_set_values_name_the_flag_and_key(tmp_path, overrides, fragments):
    with pytest.raises(ConfigError) as err:
        load_space(write(tmp_path, STUDY_153), overrides=overrides)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_a_conflict_left_after_set_says_which_set_values_base_holds(tmp_path):
    with pytest.raises(ConfigError, match=r"with --set ext_type.*needs ext"):
        load_space(write(tmp_path, "method: random\n" + EXT_EMBED_PARAMS), overrides={"ext_type": "embed"})


def test_named_axes_resolve_without_ray_deprecation_warnings(caplog):
    """Ray resolves a trial's sample_from values with the trial's config (placeholders) as well as with
    the experiment spec; ByLabel reads both, so Ray never falls back to its deprecated spec call."""
    import logging

    from ray.tune.impl.placeholder import create_resolvers_map, inject_placeholders, resolve_placeholders
    from ray.tune.search.variant_generator import generate_variants

    s = space_from_dict({"method": "grid", "parameters": {}, "variants": {"v0": {}, "v1": {"disc": {"hid_num": 4}}}},
                        name="named.yaml")
    ray_logger = logging.getLogger("ray.tune.search.sample")  # Ray's loggers do not propagate to the root
    ray_logger.addHandler(caplog.handler)
    try:
        configs = [spec["config"] for _, spec in generate_variants({"config": param_space(s)})]
        resolvers = create_resolvers_map()  # as tune.run does before the searcher sees the space
        spec = inject_placeholders(param_space(s), resolvers)
        for name in ("v0", "v1"):
            config = dict(copy_tree(spec), variant=name)
            resolve_placeholders(config, resolvers)
            configs.append(config)
    finally:
        ray_logger.removeHandler(caplog.handler)
    assert [c["disc"]["hid_num"] for c in configs] == [6, 4, 6, 4]
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()], caplog.text


def copy_tree(tree):
    import copy

    return copy.deepcopy(tree)
