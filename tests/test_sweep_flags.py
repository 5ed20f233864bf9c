"""Numbers a sweep cannot use are refused before Ray starts; keys the notebook only sets to null refuse
other values; `analyze --k` means what its help and docs/analysis.md say."""

import subprocess
import sys

import pytest

from tune_helpers import write_space
from tune_sd.engine.config import Config
from tune_sd.errors import ConfigError, UserError
from tune_sd.spaces import load_space
from tune_sd.tune.plan import SweepOptions, plan_sweep


def tune_sd(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tune_sd.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("flag, value, allowed", [
    ("num_samples", 0, ">= 1"), ("num_samples", -3, ">= 1"), ("max_concurrent", 0, ">= 1"),
    ("max_failures", -2, ">= -1"), ("grace_period", 0, ">= 1"), ("grace_period", -5, ">= 1"),
    ("reduction_factor", 1.0, "> 1"), ("reduction_factor", 0.5, "> 1"), ("epochs", 0, ">= 1"),
    ("epochs", -1, ">= 1"), ("seed", -1, ">= 0"),
])
def test_bad_numbers_on_the_command_line_are_refused_by_flag(flag, value, allowed, tmp_path):
    space = load_space("sd-study")
    with pytest.raises(ConfigError) as e:
        plan_sweep(space, SweepOptions(storage=str(tmp_path), **{flag: value}))
    assert str(e.value).startswith(f"--{flag.replace('_', '-')}: ") and allowed in str(e.value)


def test_flags_and_the_tune_block_follow_the_same_rules(tmp_path):
    path = write_space(tmp_path, "zero", {"disc": {"parameters": {"lr": {"values": [1e-4]}}}},
                       tune={"num_samples": 0})
    with pytest.raises(ConfigError, match=r"tune.num_samples: 0 is not allowed \(allowed: an integer >= 1\)"):
        load_space(str(path))
    # -1 retries without limit (Tune's meaning), from either place; a whole float counts as an integer
    plan = plan_sweep(load_space("sd-study"), SweepOptions(storage=str(tmp_path), max_failures=-1, num_samples=2.0))
    assert plan.settings["max_failures"] == -1 and plan.settings["num_samples"] == 2
    assert isinstance(plan.settings["num_samples"], int)


def test_the_sweep_command_exits_2_before_ray_starts(tmp_path):
    p = tune_sd("sweep", "sd-study", "--num-samples", "0", "--storage", str(tmp_path / "store"))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "--num-samples: 0 is not allowed" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "store").exists()  # nothing was started, nothing written


def test_ladder_flags_are_refused_the_same_way(tmp_path):
    from tune_sd.tune.ladder import LadderOptions, plan_ladder

    for opts, fragment in (({"seeds": 0}, "--seeds: 0"), ({"epochs": -4}, "--epochs: -4"),
                           ({"max_failures": -2}, "--max-failures: -2"), ({"max_concurrent": 0}, "--max-concurrent: 0")):
        with pytest.raises(ConfigError, match=fragment):
            plan_ladder(LadderOptions(storage=str(tmp_path / "store"), **opts))
    p = tune_sd("ladder", "--epochs", "0", "--storage", str(tmp_path / "store"))
    assert p.returncode == 2 and "--epochs: 0" in p.stderr, p.stderr
    assert not (tmp_path / "store").exists()


# ------------------------------------------------------------------------------------------ emb_size


def test_emb_size_loads_as_null_and_refuses_anything_else():
    assert Config.from_dict({"disc": {"emb_size": None}}).disc.emb_size is None
    for value in (16, 0, "8"):
        with pytest.raises(ConfigError, match=r"^disc\.emb_size: .* not supported \(allowed: null\)"):
            Config.from_dict({"disc": {"emb_size": value}})


def test_the_spaces_that_set_emb_size_to_null_still_load(tmp_path):
    for name in ("sd-study", "depth-check"):
        text = load_space(name).path.read_text()
        assert "emb_size: null" in text
        plan_sweep(load_space(name), SweepOptions(storage=str(tmp_path)))
    p = tune_sd("train", "--set", "disc.emb_size=32", "--out", str(tmp_path / "run"))
    assert p.returncode == 2 and "disc.emb_size" in p.stderr and "Traceback" not in p.stderr


# ------------------------------------------------------------------------------------------ analyze --k


def test_k_rules_is_the_default_and_4_means_the_same():
    import numpy as np
    import pandas as pd

    from tune_sd.analysis.trends import CLUSTER_FEATURES, FEATURES, name_trends

    rng = np.random.default_rng(0)
    feats = pd.DataFrame(rng.uniform(0, 1, size=(12, len(FEATURES))), columns=list(FEATURES))
    feats = feats.assign(**{c: rng.uniform(0, 1, 12) for c in CLUSTER_FEATURES if c not in feats})
    default, rules, four = name_trends(feats), name_trends(feats, k="rules"), name_trends(feats, k="4")
    assert default["trend"].equals(rules["trend"]) and rules["trend"].equals(four["trend"])
    assert (rules["trend"] == rules["rule_trend"]).all() and "rule" in rules.attrs["method"]
    three = name_trends(feats, k="3")
    assert three["group"].nunique() == 3 and "k-means" in three.attrs["method"]
    with pytest.raises(UserError, match="'rules'"):
        name_trends(feats, k="lots")


def test_analyze_help_and_docs_say_what_k_does():
    from pathlib import Path

    p = tune_sd("analyze", "--help")
    text = " ".join(p.stdout.split())
    assert "rules (default; 4 is the same)" in text and "N k-means groups" in text
    analysis = " ".join((Path(__file__).parents[1] / "docs" / "analysis.md").read_text().split())
    assert "`--k 4` means the same, the four named trends, not four k-means groups" in analysis


def test_a_grid_runs_each_point_once_unless_num_samples_repeats_it(tmp_path):
    from tune_sd.tune.sweep import describe

    seeds = {"seed": {"values": list(range(16))}}
    path = write_space(tmp_path, "seeds", seeds)
    plan = plan_sweep(load_space(str(path)), SweepOptions(storage=str(tmp_path)))
    assert plan.settings["num_samples"] == 1
    text = describe(plan)
    assert "grid of 16 point(s), each once" in text and "\ntrials: 16\n" in text, text
    assert "each trial draws its own value" not in text
    # num_samples, from the command line or the tune: block, repeats the grid, and the dry run says so
    for opts, tune in (({"num_samples": 3}, {}), ({}, {"num_samples": 3})):
        path = write_space(tmp_path, "seeds", seeds, tune=tune)
        text = describe(plan_sweep(load_space(str(path)), SweepOptions(storage=str(tmp_path), **opts)))
        assert "grid of 16 point(s), repeated 3 times (num_samples)" in text and "\ntrials: 48\n" in text, text
    # a random search keeps its samples
    path = write_space(tmp_path, "drawn", {"disc": {"parameters": {"lr": {"values": [1e-3, 1e-4]}}}},
                       method="random")
    text = describe(plan_sweep(load_space(str(path)), SweepOptions(storage=str(tmp_path))))
    assert "samples 10" in text and "\ntrials: 10\n" in text and "each trial draws its own value" in text


def test_planning_a_packed_sweep_imports_no_ray(tmp_path):
    """--dry-run and --pack auto are planned before Ray starts, without importing it."""
    path = write_space(tmp_path, "seeds", {"seed": {"values": list(range(4))}}, base={"epochs": 3000})
    code = ("import sys\nfrom tune_sd.cli import main\n"
            f"code = main(['sweep', {str(path)!r}, '--dry-run', '--pack', 'auto', '--storage', {str(tmp_path)!r}])\n"
            "print('exit', code, 'ray', sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "packing: auto" in p.stdout and p.stdout.strip().endswith("exit 0 ray []"), p.stdout[-500:]
