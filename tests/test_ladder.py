"""The library ladder of Steps 15.4 / 15.6: the rungs in funs/ladder/, the ladder's plan, its report, and
(slow) the whole ladder in its quick form with a real local Ray."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tune_sd.engine.config import SCHEMA, Config, flatten
from tune_sd.engine.data import load_data
from tune_sd.engine.generators import MLPGenerator
from tune_sd.engine.library import library_path, load_library, parse_library
from tune_sd.engine.library_check import check_library
from tune_sd.errors import ConfigError, StudyError
from tune_sd.spaces import load_space
from tune_sd.analysis.ladder import COLUMNS, ladder_report
from tune_sd.tune.ladder import LADDER_SPACE, QUICK, LadderOptions, describe_ladder, plan_ladder

RUNGS = load_space("ladder").ladder
FAMILIES = ["quadratic (F10_v1)", "cubic", "sine", "cosine", "exponential", "x sine", "x cosine", "smooth hinge",
            "softplus"]
# `tune-sd lib check` of the top rung (which holds every family): each family's value range over 256 draws on
# the default training inputs. F10_v1 spans [-2.86, 3.17]; an untrained MLP's units about [-1.1, 1.5].
PINNED = {"quadratic (F10_v1)": (-2.861, 3.166), "cubic": (-1.511, 1.727), "sine": (-0.824, 0.955),
          "cosine": (-0.886, 0.773), "exponential": (-1.882, 2.699), "x sine": (-1.258, 1.105),
          "x cosine": (-0.912, 1.017), "smooth hinge": (-1.555, 1.582), "softplus": (-2.140, 1.520)}


def code_lines(path):
    return [f.text for f in load_library(path).functions]


@pytest.fixture(scope="module")
def X():
    return load_data(None).points("train", [0, 1])


# ------------------------------------------------------------------------------------ the rungs


def test_the_ladder_starts_at_f10_v1_and_every_rung_holds_the_one_before():
    assert [library_path(r).parent.name for r in RUNGS] == ["ladder"] * len(RUNGS)
    assert sorted(RUNGS) == RUNGS  # names sort in ladder order
    assert code_lines(library_path(RUNGS[0])) == code_lines(library_path("F10_v1"))
    for lower, upper in zip(RUNGS, RUNGS[1:]):
        below, above = code_lines(library_path(lower)), code_lines(library_path(upper))
        assert above[:len(below)] == below and len(above) > len(below), upper
    assert len(code_lines(library_path(RUNGS[-1]))) == len(FAMILIES)


@pytest.mark.parametrize("rung", RUNGS)
def test_every_rung_checks_out_with_ranges_like_f10_v1(rung, X):
    check = check_library(library_path(rung), X)
    assert check.ok, check.problems  # finite everywhere, derivative columns agree with autograd
    for f in check.functions:
        assert -3.5 <= f.vmin <= -0.5 and 0.5 <= f.vmax <= 3.5, (rung, f.text, f.vmin, f.vmax)


def test_each_familys_range_is_pinned(X):
    check = check_library(library_path(RUNGS[-1]), X)
    got = {family: (f.vmin, f.vmax) for family, f in zip(FAMILIES, check.functions)}
    for family, (lo, hi) in PINNED.items():
        assert got[family] == pytest.approx((lo, hi), abs=2e-3), family


def test_each_family_spans_what_an_untrained_mlp_spans(X):
    """Per sample, max - min on the inputs: every family's median within a factor 1.5 of the generator's."""
    x = X[:, :1]
    gen = torch.Generator().manual_seed(0)
    fake, _ = MLPGenerator(x, 2, 32, 5).sample(2000, gen)
    mlp = (fake.max(1).values - fake.min(1).values).median().item()
    assert 0.2 < mlp < 0.5
    for family, fn in zip(FAMILIES, load_library(library_path(RUNGS[-1])).functions):
        values, _ = parse_library(fn.text, n_features=1).sample(2000, x, torch.Generator().manual_seed(1))
        span = (values.max(1).values - values.min(1).values).median().item()
        assert mlp / 1.5 <= span <= mlp * 1.5, (family, span, mlp)


def test_lib_check_shows_every_familys_range():
    p = subprocess.run([sys.executable, "-m", "tune_sd.cli", "lib", "check", RUNGS[-1]], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("values [") == len(FAMILIES) and f"OK: {len(FAMILIES)} functions" in p.stdout


# ------------------------------------------------------------------------------------ planning


def ladder_epochs() -> int:
    """The epochs of a ladder run: the ladder space's, whatever a critic's file or sweep says."""
    return load_space(LADDER_SPACE).base["epochs"]


def modes_of(plan):
    return {m: flatten(o) for m, o in plan.sweep.space.variants.items()}


def test_the_plan_runs_every_rung_and_seed_of_one_critic_without_early_stopping(tmp_path):
    plan = plan_ladder(LadderOptions(storage=str(tmp_path)))
    assert plan.rungs == [r.split("/")[-1] for r in RUNGS] and plan.modes == ["none"] and plan.seeds == [0, 1, 2]
    s = plan.sweep.settings
    epochs = ladder_epochs()
    assert s["search"] == "grid" and s["scheduler"] == "fifo" and s["num_samples"] == 1 and s["epochs"] == epochs
    assert plan.sweep.space.grid_size() == len(RUNGS) * 3
    configs = plan.sweep.space.sample(100, seed=0, labels=True)
    assert len(configs) == len(RUNGS) * 3
    assert {(c["rung"], c["variant"], c["seed"]) for c in configs} == {
        (r, "none", s) for r in plan.rungs for s in (0, 1, 2)}
    for c in configs:
        assert c["library"]["path"].endswith(c["rung"]) and c["ext"] is None
        cfg = Config.from_dict({k: v for k, v in c.items() if k not in ("rung", "variant")})
        # one critic: the engine's defaults
        assert (cfg.disc.hid_num, cfg.disc.hid_size, cfg.disc.lr, cfg.arch.lat_size) == tuple(
            SCHEMA[k].default for k in ("disc.hid_num", "disc.hid_size", "disc.lr", "arch.lat_size"))
    assert f"{len(RUNGS)} rungs x 1 mode(s) x 3 seed(s) = {len(RUNGS) * 3} trials of {epochs} epochs" \
        in describe_ladder(plan)
    assert not list(tmp_path.iterdir())


def test_quick_ext_and_rungs_options(tmp_path):
    plan = plan_ladder(LadderOptions(quick=True, ext=["grad-embed,input-stack"], rungs="L1_quadratic,L3_trig",
                                     storage=str(tmp_path), name="q"))
    assert plan.modes == ["none", "grad-embed", "input-stack"] and plan.seeds == [0, 1]
    assert plan.rungs == ["L1_quadratic", "L3_trig"] and plan.sweep.settings["epochs"] == QUICK["epochs"]
    assert plan.sweep.exp_dir == tmp_path / "q" and plan.sweep.space.grid_size() == 12
    assert plan_ladder(LadderOptions(ext=["all"], rungs=2, seeds=4)).modes == [
        "none", "input-embed", "grad-embed", "input-stack", "grad-stack"]
    for opts, fragments in [(LadderOptions(ext=["grad-embedd"]), ["--ext", "grad-embedd", "grad-embed"]),
                            (LadderOptions(rungs="L9"), ["--rungs", "L9", "L1_quadratic"]),
                            (LadderOptions(rungs=9), ["--rungs", "1 to 6"]),
                            (LadderOptions(threshold=1.5), ["--threshold"]),
                            (LadderOptions(space="sd-study"), ["sd-study", "no ladder"]),
                            (LadderOptions(config="x.yaml", from_sweep="y"), ["--from", "--config"])]:
        with pytest.raises(ConfigError) as err:
            plan_ladder(opts)
        for frag in fragments:
            assert frag in str(err.value), str(err.value)


def test_modes_fit_the_critic_of_a_config_file(tmp_path):
    """A critic of the ext studies (embedding, main) pairs: the baseline and stack modes keep its main network,
    embed modes its embedding; ladder keys in the file (epochs, seed, library) are the ladder's."""
    f = tmp_path / "critic.yaml"
    f.write_text(yaml.safe_dump({"ext": ["grad"], "ext_type": "embed", "ext_size": 1, "epochs": 7, "seed": 9,
                                 "library": {"path": "F10_v1"}, "arch": {"lat_size": 3},
                                 "disc": {"hid_num": [3, 8], "hid_size": [32, 512], "lr": 1e-5}}))
    plan = plan_ladder(LadderOptions(config=str(f), ext=["all"], storage=str(tmp_path)))
    modes = modes_of(plan)
    assert modes["none"]["ext"] is None and modes["none"]["disc.hid_num"] == 8 and modes["none"]["disc.hid_size"] == 512
    assert modes["grad-stack"]["disc.hid_num"] == 8 and modes["grad-stack"]["ext_type"] == "stack"
    assert modes["grad-embed"]["disc.hid_num"] == [2, 8] and modes["grad-embed"]["disc.hid_size"] == [64, 512]
    base = flatten(plan.sweep.base)
    assert base["epochs"] == ladder_epochs() and "seed" not in base  # the ladder's, not the file's 7
    assert base["disc.lr"] == 1e-5 and base["arch.lat_size"] == 3
    assert "critic.yaml" in plan.critic
    for c in plan.sweep.space.sample(100, seed=0, labels=True):
        assert c["library"]["path"].endswith(c["rung"]) and c["seed"] in (0, 1, 2)


def test_from_a_sweep_takes_the_critic_of_its_best_trial(tmp_path):
    sweep = tmp_path / "sd-study"
    sweep.mkdir()
    rows = [  # the highest final_avg_acc ended in error: not taken
        {"trial_id": "a", "status": "TERMINATED", "final_avg_acc": 0.71, "cfg.disc.hid_num": 4, "cfg.disc.lr": 1e-4},
        {"trial_id": "b", "status": "TERMINATED", "final_avg_acc": 0.93, "cfg.disc.hid_num": 8, "cfg.disc.lr": 1e-5},
        {"trial_id": "c", "status": "ERROR", "final_avg_acc": 0.99, "cfg.disc.hid_num": 2, "cfg.disc.lr": 1e-2},
    ]
    common = {"cfg.epochs": 100000, "cfg.seed": 123, "cfg.library.path": "F10_v1", "cfg.ext": None,
              "cfg.disc.betas": "[0.9, 0.999]", "cfg.arch.hid_num": "[2, 0]", "cfg.arch.in_size": np.nan,
              "cfg.disc.hid_size": 256, "cfg.disc.wd": 1e-7, "cfg.arch.lat_size": 3}
    pd.DataFrame([{**r, **common} for r in rows]).to_parquet(sweep / "trials.parquet")
    plan = plan_ladder(LadderOptions(from_sweep="sd-study", storage=str(tmp_path), ext=["grad-embed"]))
    base = flatten(plan.sweep.base)
    assert (base["disc.hid_num"], base["disc.hid_size"], base["disc.lr"], base["disc.wd"]) == (8, 256, 1e-5, 1e-7)
    assert base["arch.hid_num"] == [2, 0] and base["arch.in_size"] is None and base["arch.lat_size"] == 3
    assert base["epochs"] == ladder_epochs() and "seed" not in base and base.get("library.path") is None
    assert modes_of(plan)["grad-embed"]["disc.hid_num"] == [2, 8]
    assert "sd-study" in plan.critic and "b" in plan.critic and "0.930" in plan.critic
    with pytest.raises(StudyError, match="no sweep 'nope'"):
        plan_ladder(LadderOptions(from_sweep="nope", storage=str(tmp_path)))


# ------------------------------------------------------------------------------------ the report


def _ladder(folder, acc, rungs=("L1_quadratic", "L2_cubic", "L3_trig"), modes=("none", "grad-embed"), epochs=None):
    rows = [{"trial_id": f"{m}-{r}-{i}", "status": "TERMINATED", "final_avg_acc": a, "variant": m, "rung": r,
             **({"cfg.epochs": epochs} if epochs else {})}
            for (m, r), accs in acc.items() for i, a in enumerate(accs)]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "trials.parquet")
    (folder / "ladder.json").write_text(json.dumps({"rungs": list(rungs), "modes": list(modes)}))
    return rows


def test_the_report_names_where_each_mode_fails(tmp_path):
    acc = {("none", "L1_quadratic"): [0.90, 0.80, 0.85], ("none", "L2_cubic"): [0.55, 0.58, 0.57],
           ("none", "L3_trig"): [0.5, 0.5, 0.5],
           ("grad-embed", "L1_quadratic"): [0.95, 0.97, 0.96], ("grad-embed", "L2_cubic"): [0.9, 0.8, 0.85],
           ("grad-embed", "L3_trig"): [0.7, 0.66, 0.68]}
    rows = _ladder(tmp_path, acc)
    rows.append({"trial_id": "x", "status": "ERROR", "final_avg_acc": 0.1, "variant": "grad-embed", "rung": "L3_trig"})
    pd.DataFrame(rows).to_parquet(tmp_path / "trials.parquet")
    report = ladder_report(tmp_path, threshold=0.61)
    table = pd.read_parquet(tmp_path / "ladder.parquet")
    assert list(table.columns) == COLUMNS and len(table) == 6
    row = table.set_index(["mode", "rung"]).loc[("none", "L2_cubic")]
    assert row.n_seeds == 3 and row.final_avg_acc_mean == pytest.approx(np.mean([0.55, 0.58, 0.57]))
    assert row.final_avg_acc_std == pytest.approx(np.std([0.55, 0.58, 0.57], ddof=1)) and row.fails
    assert table.set_index(["mode", "rung"]).loc[("grad-embed", "L3_trig")].n_seeds == 3  # the error is left out
    assert report.first_fail == {"none": "L2_cubic", "grad-embed": None}
    text = report.format()
    assert "none: classification fails at rung 2 of 3, L2_cubic (all 3 seeds below 0.61, all 3 of the rung" in text
    assert "grad-embed: classification holds on all 3 rungs" in text and "(at least +2 rungs against none)" in text
    assert (tmp_path / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(StudyError, match="no rung label"):
        empty = tmp_path / "plain"
        empty.mkdir()
        pd.DataFrame([{"trial_id": "a", "status": "TERMINATED", "final_avg_acc": 0.7}]).to_parquet(
            empty / "trials.parquet")
        ladder_report(empty)


def test_the_report_writes_missing_tables_through_the_export_it_is_given(tmp_path):
    """The report reads tables only; a sweep without trials.parquet gets it from the export passed in (the
    CLI passes Tune's), and without one the user is told how to write it."""
    _ladder(tmp_path / "made", {("none", "L1_quadratic"): [0.9, 0.8], ("none", "L2_cubic"): [0.5, 0.55]},
            rungs=("L1_quadratic", "L2_cubic"), modes=("none",))
    folder = tmp_path / "ran"
    folder.mkdir()
    (folder / "ladder.json").write_bytes((tmp_path / "made" / "ladder.json").read_bytes())
    with pytest.raises(StudyError, match=r"no trials\.parquet; write the tables with `tune-sd export"):
        ladder_report(folder)
    exported = []

    def export(exp_dir):
        exported.append(exp_dir)
        (exp_dir / "trials.parquet").write_bytes((tmp_path / "made" / "trials.parquet").read_bytes())

    report = ladder_report(folder, threshold=0.6, export=export)
    assert exported == [folder] and report.first_fail == {"none": "L2_cubic"}
    assert len(pd.read_parquet(folder / "ladder.parquet")) == 2


def test_a_ladder_in_which_no_rung_learned_names_no_failure_point(tmp_path):
    """The quick ladder's 300 epochs: every rung still at chance. "Fails at rung 1" would be a claim about the
    library; it is only that the run was too short."""
    acc = {("none", r): [0.50, 0.52] for r in ("L1_quadratic", "L2_cubic", "L3_trig")}
    _ladder(tmp_path, acc, modes=("none",), epochs=300)
    report = ladder_report(tmp_path, threshold=0.6)
    text = report.format()
    assert report.verdict("none") == ("never learned", "L1_quadratic")
    assert "classification fails" not in text
    assert "none: no rung learned within 300 epochs (no rung's mean reached the threshold 0.6; best 0.510" in text
    assert "no failure point can be named" in text and "--epochs" in text
    assert "of 300 epochs" in text.splitlines()[0]


def test_two_seeds_or_straddling_seeds_are_not_a_failure_point(tmp_path):
    two = {("none", "L1_quadratic"): [0.9, 0.8], ("none", "L2_cubic"): [0.55, 0.5], ("none", "L3_trig"): [0.5, 0.5]}
    _ladder(tmp_path / "two", two, modes=("none",))
    text = ladder_report(tmp_path / "two", threshold=0.6).format()
    assert "none: the mean first falls below 0.6 at rung 2 of 3, L2_cubic, but that is not a failure point: too few " \
           "seeds (2 on the rung before, 2 on this one; 3 per rung needed)" in text
    straddle = {("none", "L1_quadratic"): [0.9, 0.8, 0.85], ("none", "L2_cubic"): [0.65, 0.5, 0.5],
                ("none", "L3_trig"): [0.5, 0.5, 0.5]}
    _ladder(tmp_path / "straddle", straddle, modes=("none",))
    report = ladder_report(tmp_path / "straddle", threshold=0.6)
    assert report.verdict("none") == ("unclear", "L2_cubic")
    assert "lie on both sides of the threshold" in report.format()


# ------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_the_quick_ladder_runs_end_to_end_and_names_no_failure_point(tmp_path, capsys):
    """Two rungs x (baseline, grad-stack) x 2 seeds of a small critic on a real local Ray; a threshold no
    critic reaches in so few epochs: no rung learned, so the report names no failure point."""
    import ray

    from tune_sd.tune.cluster import connect
    from tune_sd.tune.ladder import run_ladder

    critic = tmp_path / "small.yaml"
    critic.write_text(yaml.safe_dump({"arch": {"lat_size": 3}, "disc": {"hid_num": 2, "hid_size": 32, "lr": 1e-3}}))
    started = connect(num_cpus=2)
    assert started, "a Ray instance was already running in this process"
    try:
        plan = plan_ladder(LadderOptions(quick=True, epochs=100, rungs=2, ext=["grad-stack"], config=str(critic),
                                         threshold=0.99, storage=str(tmp_path / "results")))
        exp_dir = run_ladder(plan, reporter=ladder_report)
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    assert exp_dir == tmp_path / "results" / "ladder"
    assert "none: no rung learned within 100 epochs" in out and "classification fails" not in out
    assert "grad-stack: no rung learned within 100 epochs" in out and "(no comparison with none" in out
    table = pd.read_parquet(exp_dir / "ladder.parquet")
    assert list(table.columns) == COLUMNS and len(table) == 4
    assert set(table["n_seeds"]) == {2} and table["fails"].all()
    assert table["final_avg_acc_mean"].between(0.3, 1.0).all()
    assert (exp_dir / "ladder.png").stat().st_size > 1000
    trials = pd.read_parquet(exp_dir / "trials.parquet")
    assert len(trials) == 8 and set(trials["status"]) == {"TERMINATED"} and not trials["stopped_early"].any()
    assert set(zip(trials["variant"], trials["rung"], trials["cfg.seed"])) == {
        (m, r, s) for m in ("none", "grad-stack") for r in ("L1_quadratic", "L2_cubic") for s in (0, 1)}
    assert all(p.endswith(r) for p, r in zip(trials["cfg.library.path"], trials["rung"]))
    assert set(trials.loc[trials["variant"] == "grad-stack", "cfg.ext_type"]) == {"stack"}
    assert trials.loc[trials["variant"] == "none", "cfg.ext"].isna().all()
    assert set(trials["cfg.epochs"]) == {100} and set(trials["cfg.disc.hid_size"]) == {32}
