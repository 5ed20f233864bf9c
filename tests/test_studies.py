"""The studies of the seed notebook in search_spaces/: each loads, dry-runs, says which step it
reproduces, and holds the seed's values exactly; named variants (depth-check) carry their labels."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from ray.tune.search.sample import Categorical, Function

from tune_sd.engine.config import SCHEMA, Config
from tune_sd.errors import ConfigError
from tune_sd.spaces import SPACES_DIR, list_spaces, load_space, space_from_dict
from tune_sd.tune.ray_space import param_space
from tune_sd.tune.plan import SweepOptions, plan_sweep
from tune_sd.tune.sweep import describe

STUDIES = {  # file -> (notebook step, W&B project) named in its first comment
    "sd-study": ("Step 15.3", "153-sd-study-F10_v1"),
    "depth-check": ("Step 15.3", "153-sd-study-F10_v1"),
    "ext-input-embed": ("Step 15.5.1", "155-ext1-study-F10_v1"),
    "ext-grad-embed": ("Step 15.5.2", "155-ext2-study-F10_v1"),
    "ext-grad-stack": ("Step 15.5.3", "155-ext3-study-F10_v1"),
    "ladder": ("Steps 15.4 and 15.6", "W&B project: none"),
}
FILES = sorted(p.stem for p in Path(SPACES_DIR).glob("*.yaml"))

# the seed's hp_study dicts (tuples as lists), flattened
SPACE_153 = {
    "arch.in_size": [1], "arch.out_size": [1], "arch.hid_num": [[2, 0]], "arch.hid_size": [32],
    "arch.lat_size": [1, 3, 5, 10],
    "disc.hid_num": [2, 4, 6, 8], "disc.hid_size": [64, 128, 256, 512], "disc.lr": [1e-5, 1e-4, 1e-3, 1e-2],
    "disc.iters": [1, 3, 5, 10], "disc.gp": [0.0, 1e-6, 1e-5, 1e-4, 1e-3],
}
SPACE_155 = {
    "arch.in_size": [1], "arch.out_size": [1], "arch.hid_num": [[2, 0]], "arch.hid_size": [32],
    "arch.lat_size": [1, 3, 5],
    "disc.hid_num": [[2, 2], [2, 4], [2, 8], [2, 16]], "disc.hid_size": [[64, 64], [64, 128], [64, 256], [64, 512]],
    "disc.lr": [1e-5, 1e-4, 1e-3], "disc.iters": [1, 3, 5], "disc.gp": [1e-6, 1e-5, 1e-4],
}
SPACE_155_STACK = {**SPACE_155, "disc.hid_num": [2, 4, 8, 16], "disc.hid_size": [64, 128, 256, 512]}
# the seed's commented `hyperparams` (arch.in_size is the space's 1; batch_size = all 700 training points)
BASE_ARCH = {"arch.out_size": 1, "arch.hid_num": [2, 0], "arch.hid_size": 32, "arch.hid_type": ["mlp", "mlp"],
             "arch.hid_kwargs": {"alpha": None, "norm": None, "prune": None}}
BASE_153 = {**BASE_ARCH, "arch.lat_size": 5, "epochs": 100000, "runtime": None, "batch_size": None,
            "disc.hid_num": 6, "disc.hid_size": 128, "disc.emb_size": None, "disc.lr": 1e-4, "disc.wd": 1e-7,
            "disc.betas": [0.9, 0.999], "disc.iters": 5, "disc.gp": 1e-5}
BASE_155 = {**BASE_ARCH, "arch.lat_size": 3, "epochs": 100000, "runtime": None, "batch_size": None, "ext_size": 1,
            "disc.hid_num": 2, "disc.hid_size": 64, "disc.lr": 1e-4, "disc.wd": 1e-7, "disc.betas": [0.9, 0.999],
            "disc.iters": 5, "disc.gp": 1e-5}
SEED_STUDIES = {
    "sd-study": (SPACE_153, BASE_153),
    "ext-input-embed": (SPACE_155, {**BASE_155, "ext": ["input"], "ext_type": "embed"}),
    "ext-grad-embed": (SPACE_155, {**BASE_155, "ext": ["grad"], "ext_type": "embed"}),
    # the seed's ext: ["stack"], ext_type: "embed" is a slip: the study is "stack gradient data"
    "ext-grad-stack": (SPACE_155_STACK, {**BASE_155, "ext": ["grad"], "ext_type": "stack"}),
}
# the depth check: v0 (trend 1's model) and what each variant changes
DEPTH_V0 = {"arch.lat_size": 3, "disc.hid_num": 2, "disc.hid_size": 64, "disc.lr": 1e-5, "disc.wd": 1e-7,
            "disc.betas": [0.9, 0.999], "disc.iters": 5, "disc.gp": 1e-4}
DEPTH_VARIANTS = {
    "v0": {}, "v1": {"disc.hid_num": 4}, "v2": {"disc.hid_num": 8}, "v3": {"disc.gp": 1e-5},
    "v4": {"disc.lr": 1e-4}, "v5": {"disc.gp": 1e-6}, "v6": {"disc.hid_size": 256},
    "v7": {"disc.hid_num": 16, "disc.hid_size": 64},
}


def test_every_documented_study_is_a_file_and_listed():
    assert set(STUDIES) <= set(FILES)
    listed = dict(list_spaces())
    for name in STUDIES:
        assert name in listed and listed[name], name


@pytest.fixture(scope="module")
def small_critic(tmp_path_factory):
    """A critic checkpoint for the regularisation study (which refuses to plan without one)."""
    from tune_sd.engine import Study

    study = Study(Config.from_dict({"epochs": 2, "disc": {"hid_num": 1, "hid_size": 8}}))
    study.run()
    return str(study.save(tmp_path_factory.mktemp("critic") / "study.pt"))


@pytest.mark.parametrize("name", FILES)
def test_every_file_loads_and_dry_runs(name, tmp_path, small_critic):
    space = load_space(name)
    regularize = (space.base or {}).get("task") == "regularize"
    for quick in (False, True):
        plan = plan_sweep(space, SweepOptions(storage=str(tmp_path), quick=quick,
                                              critic_from=small_critic if regularize else None))
        text = describe(plan)
        assert f"sweep {name!r}" in text and "trial 0:" in text
        for sample in space.sample(3, seed=0):
            Config.from_dict(sample)
    assert not list(tmp_path.iterdir())  # a dry run writes nothing


@pytest.mark.parametrize("name", FILES)
def test_every_file_says_which_notebook_step_and_wandb_project_it_reproduces(name):
    comments = " ".join(line.lstrip("#").strip() for line in (Path(SPACES_DIR) / f"{name}.yaml").read_text().splitlines()
                        if line.startswith("#"))
    assert "Step" in comments and "W&B project" in comments, name
    if name in STUDIES:
        step, project = STUDIES[name]
        assert step in comments and project in comments, name


@pytest.mark.parametrize("name", list(SEED_STUDIES))
def test_the_seed_studies_hold_the_seeds_values_exactly(name):
    space_values, base = SEED_STUDIES[name]
    space = load_space(name)
    assert space.method == "random"
    assert space.params == {k: {"values": v} for k, v in space_values.items()}
    assert all(type(v) is type(w) for k, vs in space_values.items() for v, w in zip(vs, space.params[k]["values"]))
    flat = Config.from_dict(space.base).flat()
    assert {k: flat[k] for k in base} == base
    assert space.tune["metric"] == "avg_acc" and space.tune["mode"] == "max"
    # sd-study stops only its non-learners (benchmarks/early_stopping.py: ASHA cut most of its learners)
    assert space.tune["scheduler"] == ("nonlearner" if name == "sd-study" else "asha")
    ps = param_space(space)
    assert isinstance(ps["disc"]["lr"], Categorical) and ps["disc"]["lr"].categories == space_values["disc.lr"]


def test_depth_check_is_a_grid_of_the_eight_named_variants():
    space = load_space("depth-check")
    assert space.method == "grid" and space.grid_size() == 8
    assert {name: _flat(over) for name, over in space.variants.items()} == DEPTH_VARIANTS
    configs = space.sample(100, seed=0, labels=True)
    assert [c["variant"] for c in configs] == list(DEPTH_VARIANTS)
    for config in configs:
        name = config.pop("variant")
        flat = Config.from_dict(config).flat()
        assert {k: flat[k] for k in DEPTH_V0} == {**DEPTH_V0, **DEPTH_VARIANTS[name]}, name
    # a trial's config carries its name at the top (the trainable's label -> the tables' `variant` column)
    from tune_sd.tune.trial_config import split_trial_config

    tree, labels = split_trial_config(configs[3] | {"variant": "v3"})
    assert labels == {"variant": "v3"} and Config.from_dict(tree).disc.gp == DEPTH_VARIANTS["v3"]["disc.gp"]
    assert space.sample(8, seed=0) == [{k: v for k, v in c.items() if k != "variant"} for c in configs]
    ps = param_space(space)
    assert ps["variant"] == {"grid_search": list(DEPTH_VARIANTS)}
    assert isinstance(ps["disc"]["hid_num"], Function)  # picked by the variant
    assert param_space(space, grid=False)["variant"].categories == list(DEPTH_VARIANTS)
    res = space.resolved()
    assert res["parameters"]["variant"] == {"values": list(DEPTH_VARIANTS)}
    assert yaml.safe_load(yaml.safe_dump(res)) == res


def _flat(tree):
    from tune_sd.engine.config import flatten

    return flatten(tree)


def test_dry_run_of_the_depth_check_through_the_command_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "sweep", "depth-check", "--dry-run", "--quick",
                        "--storage", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "variant: {values: [v0, v1, v2, v3, v4, v5, v6, v7]}" in p.stdout
    assert "search grid, scheduler fifo" in p.stdout and "disc.hid_num=4" in p.stdout


# ------------------------------------------------------------------------------------ named axes


def space(text, name="named.yaml"):
    return space_from_dict(yaml.safe_load(textwrap.dedent(text)), name=name)


def test_variants_combine_with_parameters_and_base():
    s = space("""\
        method: grid
        parameters: {arch: {parameters: {lat_size: {values: [1, 3]}}}}
        variants: {a: {}, b: {disc: {gp: 0.0, lr: 1.0e-3}}, c: {ext: grad, ext_type: stack}}
        base: {disc: {gp: 1.0e-4}}
        """)
    assert s.grid_size() == 6
    configs = s.sample(10, seed=0, labels=True)
    assert len(configs) == 6
    seen = {(c["variant"], c["arch"]["lat_size"]): c for c in configs}
    assert set(seen) == {(v, n) for v in "abc" for n in (1, 3)}
    # the base's value, and the engine's default for what neither sets
    assert seen[("a", 1)]["disc"]["gp"] == 1e-4 and seen[("a", 1)]["disc"]["lr"] == SCHEMA["disc.lr"].default
    assert seen[("b", 3)]["disc"]["gp"] == 0.0 and seen[("b", 3)]["disc"]["lr"] == 1e-3
    assert seen[("c", 1)]["ext"] == ["grad"] and seen[("a", 1)]["ext"] is None
    # method random picks a variant per trial
    r = space_from_dict({**yaml.safe_load("method: random\nvariants: {a: {}, b: {disc: {lr: 1.0e-3}}}")})
    picks = r.sample(40, seed=1, labels=True)
    assert {c["variant"] for c in picks} == {"a", "b"}
    assert all(c["disc"]["lr"] == (1e-3 if c["variant"] == "b" else 1e-4) for c in picks)


@pytest.mark.parametrize("text, fragments", [
    ("variants: {v1: {disc: {hid_nm: 4}}}", ["variants.v1", "hid_nm", "allowed"]),
    ("variants: {v1: {disc: {lr: -1}}}", ["variants.v1.disc.lr", "-1"]),
    ("variants: {v1: {disc: 3}}", ["variants.v1.disc", "mapping"]),
    ("variants: {v1: [1]}", ["variants.v1", "mapping"]),
    ("variants: [v1, v2]", ["variants", "mapping"]),
    ("variants: {v1: {disc: {hid_num: [2, 4]}}}", ["variants.v1", "does not fit", "ext_type: embed"]),
    ("variants: {v1: {disc: {lr: 1.0e-3}}}\nparameters: {disc: {parameters: {lr: {values: [1, 2]}}}}",
     ["variants.v1", "disc.lr", "parameters.disc.parameters.lr"]),
    ("variants: {v1: {library: {path: F10_v1}}}\nladder: [F10_v1]", ["library.path", "set it in one place"]),
    ("method: bayes\nvariants: {v1: {}}\nparameters: {disc: {parameters: {lr: {values: [1.0e-4]}}}}",
     ["variants", "bayes"]),
    ("ladder: [F10_v1, ladder/no-such-rung]", ["ladder[1]", "no-such-rung"]),
    ("ladder: [F10_v1, F10_v1]", ["ladder[1]", "F10_v1", "ladder[0]"]),
    ("ladder: F10_v1", ["ladder", "list"]),
])
def test_bad_named_axes_are_refused_with_their_key_path(text, fragments):
    with pytest.raises(ConfigError) as err:
        space("method: grid\n" + text if "method" not in text else text, name="bad.yaml")
    msg = str(err.value)
    assert msg.startswith("bad.yaml: "), msg
    for frag in fragments:
        assert frag in msg, msg


def test_a_ladder_is_a_grid_over_library_rungs_labelled_by_their_stems():
    s = space("""\
        method: grid
        ladder: [ladder/L1_quadratic, ladder/L2_cubic, ladder/L3_trig]
        parameters: {seed: {values: [0, 1]}}
        """)
    assert s.grid_size() == 6
    configs = s.sample(10, seed=0, labels=True)
    pairs = {(c["rung"], c["library"]["path"], c["seed"]) for c in configs}
    assert pairs == {(f"L{i}_{n}", f"ladder/L{i}_{n}", seed) for i, n in ((1, "quadratic"), (2, "cubic"), (3, "trig"))
                     for seed in (0, 1)}


# ------------------------------------------------------------------------------------ the quick sweep


@pytest.mark.slow
def test_a_quick_sweep_of_the_sd_study_runs(tmp_path):
    """`tune-sd sweep sd-study --quick` (two of its samples, to keep CI short) runs end to end."""
    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "sweep", "sd-study", "--quick", "--num-samples", "2",
                        "--storage", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "sd-study" / "trials.parquet")
    assert len(trials) == 2 and set(trials.status) == {"TERMINATED"}
    assert set(trials["cfg.epochs"]) == {400} and set(trials["cfg.disc.wd"]) == {1e-7}
    assert trials["final_avg_acc"].notna().all()
