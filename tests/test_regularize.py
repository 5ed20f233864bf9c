"""Step 7: target data, the latent model, regularisation with a trained critic, and the study end to end."""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tune_sd.engine import (Config, Regularization, Study, latent_recovery, load_checkpoint, make_run,
                            run_from_checkpoint)
from tune_sd.engine.expr import compile_expr
from tune_sd.engine.loop import Curve
from tune_sd.engine.target import (draw_latents, evaluate_f, fixed_expression, load_target, save_target,
                                   target_from_config)
from tune_sd.errors import ConfigError, DataError, LibraryError, StudyError

SMALL_CRITIC = {"arch": {"lat_size": 3}, "disc": {"hid_num": 2, "hid_size": 16}, "epochs": 5}


def tune_sd(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "tune_sd.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def critic_ckpt(tmp_path_factory):
    """A briefly trained SD critic on the default points (700 train points), saved as a checkpoint."""
    folder = tmp_path_factory.mktemp("critic")
    study = Study(Config.from_dict(SMALL_CRITIC))
    study.run()
    return study.save(folder / "study.pt")


@pytest.fixture(scope="module")
def grad_critic_ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("critic_grad")
    study = Study(Config.from_dict({**SMALL_CRITIC, "ext": ["grad", "input"], "ext_type": "stack"}))
    study.run()
    return study.save(folder / "study.pt")


def reg_config(critic=None, **over):
    tree = {"task": "regularize", "epochs": 20, "arch": {"hid_num": [2, 1], "hid_size": [16, 16], "lat_size": 3}}
    if critic is not None:
        tree["critic"] = {"path": str(critic)}
    for key, value in over.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return Config.from_dict(tree)


# ------------------------------------------------------------------------------------------ target data


def test_default_target_is_the_original_works_quadratics_and_f():
    t = target_from_config(reg_config())
    x = t.X[:, 0].double()
    g = torch.stack([-0.08 * (x + 0.165) ** 2 - 0.21, 0.0785 * (x - 0.63) ** 2 - 0.252,
                     0.0895 * (x + 0.21) ** 2 - 0.0375])
    assert torch.allclose(t.latents.double(), g, atol=1e-6)
    assert torch.allclose(t.y.double(), g[0] * g[1] + torch.sin(g[2]), atol=1e-6)
    assert t.X.shape == (1000, 1) and [len(t.splits[s]) for s in ("train", "val", "test")] == [700, 200, 100]


def test_target_round_trips_through_parquet(tmp_path):
    t = target_from_config(reg_config(**{"target.f": "sum"}))
    path = save_target(t, tmp_path / "t.parquet")
    table = pq.read_table(path)
    assert table.column_names == ["split", "x0", "g0", "g1", "g2", "y"]
    meta = json.loads(table.schema.metadata[b"tune_sd.target"])
    assert meta["latents"] == t.latent_exprs and meta["f"] == "sum"
    back = load_target(path)
    assert torch.equal(back.X, t.X) and torch.equal(back.latents, t.latents) and torch.equal(back.y, t.y)
    assert all(np.array_equal(np.sort(back.splits[s]), np.sort(t.splits[s])) for s in t.splits)
    assert torch.allclose(back.y, t.latents.sum(0), atol=1e-6)


def test_latents_drawn_from_a_library_are_fixed_by_the_seed_and_evaluate_like_the_library():
    a = draw_latents("funs/F10_v1.lib", 4, "X10", 1, seed=3)
    assert a == draw_latents("funs/F10_v1.lib", 4, "X10", 1, seed=3)
    assert a != draw_latents("funs/F10_v1.lib", 4, "X10", 1, seed=4)
    # a fixed expression is the library line with its numbers written in
    text = "N0*0.05*(X10[:,0] + 0.5*N1)**2 + 0.15*N2"
    coeffs = {"N0": -1.25, "N1": 0.5, "N2": -0.3}
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    lib = compile_expr(text, "X10")(
        {0: x.unsqueeze(0)}, torch.tensor([[[-1.25]], [[0.5]], [[-0.3]]], dtype=torch.float64), ())
    fixed = compile_expr(fixed_expression(text, coeffs), "X10")({0: x.unsqueeze(0)}, (), (), shape=(1, 9))
    assert torch.allclose(lib, fixed)


def test_f_goes_through_the_safe_compiler():
    g = torch.randn(3, 5, dtype=torch.float64)
    assert torch.allclose(evaluate_f("g0*g1 + np.sin(g2)", g), g[0] * g[1] + torch.sin(g[2]))
    for bad in ("__import__('os').system('true')", "g3", "N0*g0", "X10[:,0]", "g0.real"):
        with pytest.raises(LibraryError):
            evaluate_f(bad, g)


def test_data_make_writes_the_target_and_refuses_bad_expressions(tmp_path):
    p = tune_sd("data", "make", "-o", str(tmp_path / "t.parquet"), "--latent", "np.sin(3*X10[:,0])",
                "--latent", "X10[:,0]**2", "--f", "g0 + g1**2")
    assert p.returncode == 0, p.stderr
    t = load_target(tmp_path / "t.parquet")
    assert t.latent_exprs == ["np.sin(3*X10[:,0])", "X10[:,0]**2"] and t.f == "g0 + g1**2"
    x = t.X[:, 0]
    assert torch.allclose(t.y, torch.sin(3 * x) + x ** 4, atol=1e-5)
    again = tune_sd("data", "make", "-o", str(tmp_path / "t.parquet"))
    assert again.returncode == 2 and "already exists" in again.stderr
    for args, frag in ((["--latent", "__import__('os')"], "not allowed"), (["--f", "g0*g9"], "g9"),
                       (["--latent", "N0*X10[:,0]"], "random coefficients"),
                       (["--library", "F10_v1", "--latent", "X10[:,0]"], "one of them")):
        p = tune_sd("data", "make", "-o", str(tmp_path / "bad.parquet"), *args)
        assert p.returncode == 2 and frag in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "bad.parquet").exists()


@pytest.mark.parametrize("change, frag", [
    (lambda t: t.drop_columns(["y"]), "no column 'y'"),
    (lambda t: t.set_column(2, "g0", pa.array([float("nan")] + [0.0] * (t.num_rows - 1))), "column 'g0', row 0"),
    (lambda t: t.set_column(0, "split", pa.array(["train"] * (t.num_rows - 1) + ["nope"])), "column 'split'"),
    (lambda t: t.drop_columns(["g0", "g1", "g2"]), "no latent columns"),
])
def test_a_broken_target_file_is_refused_naming_file_and_column(tmp_path, change, frag):
    path = save_target(target_from_config(reg_config()), tmp_path / "t.parquet")
    pq.write_table(change(pq.read_table(path)), path)
    with pytest.raises(DataError, match="t.parquet") as e:
        load_target(path)
    assert frag in str(e.value)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a Parquet file"):
        load_target(tmp_path / "junk.parquet")


# ------------------------------------------------------------------------------------------ the loss


def test_with_sd_zero_the_loss_is_plain_mse(critic_ckpt):
    with_critic = Regularization(reg_config(critic_ckpt, sd=0.0))
    without = Regularization(reg_config())
    for _ in range(5):
        a, b = with_critic.step(), without.step()
        assert a["loss"] == a["mse"] and math.isfinite(a["critic_score"])
        assert a["mse"] == b["mse"] and a["val_mse"] == b["val_mse"]  # the same updates, the critic only watches
    for p, q in zip(with_critic.model.parameters(), without.model.parameters()):
        assert torch.equal(p, q)


def test_the_regularisation_gradient_reaches_the_latent_part_not_the_fixed_critic(critic_ckpt):
    run = Regularization(reg_config(critic_ckpt, sd=1.0))
    critic_before = [p.detach().clone() for p in run.critic.parameters()]
    X = run.X.detach()
    _, h = run.model(X)
    reg = -run.critic_scores(h, X).mean()
    reg.backward()
    latent_grads = [p.grad for p in run.model.latent.parameters()]
    assert all(g is not None for g in latent_grads) and sum(g.abs().sum() for g in latent_grads) > 0
    assert all(p.grad is None or not p.grad.any() for p in run.model.output.parameters())  # the term skips it
    assert all(p.grad is None and not p.requires_grad for p in run.critic.parameters())
    run.model.zero_grad()
    curve = Curve()
    run.run(callback=curve.add)
    assert all(torch.equal(a, b) for a, b in zip(critic_before, run.critic.parameters()))
    assert curve["reg"][-1] < curve["reg"][0]  # the network moved its latents towards "real"


def test_sd_pulls_the_critic_score_up(critic_ckpt):
    plain = Regularization(reg_config(critic_ckpt, sd=0.0, epochs=40))
    pushed = Regularization(reg_config(critic_ckpt, sd=10.0, epochs=40))
    plain.run()
    pushed.run()
    assert pushed.last_metrics()["critic_score"] > plain.last_metrics()["critic_score"]


def test_sigmoid_bounds_the_term(critic_ckpt):
    run = Regularization(reg_config(critic_ckpt, sd=1.0, sigmoid=True))
    m = run.step()
    assert -1.0 <= m["reg"] <= 0.0 and math.isclose(m["loss"], m["mse"] + m["reg"], rel_tol=1e-5, abs_tol=1e-7)


@pytest.mark.parametrize("kind", ["mlp", "dsn"])
def test_a_critic_with_grad_and_input_ext_takes_the_latents_jacobian(grad_critic_ckpt, kind):
    run = Regularization(reg_config(grad_critic_ckpt, sd=1.0, **{"arch.hid_type": [kind, "mlp"]}))
    X = run.X.detach().requires_grad_(True)
    _, h = run.model(X)
    J = run._latent_grads(h, X, create_graph=True)
    assert J.shape == (3, 700, 1)
    # against autograd one unit at a time
    for j in range(3):
        (g,) = torch.autograd.grad(h[:, j].sum(), X, retain_graph=True)
        assert torch.allclose(J[j], g, atol=1e-6)
    assert math.isfinite(run.step()["loss"])


def test_an_adversarial_critic_keeps_training(critic_ckpt):
    run = Regularization(reg_config(critic_ckpt, sd=1.0, **{"critic.iters": 2}))
    before = [p.detach().clone() for p in run.critic.parameters()]
    m = run.step()
    assert 0.0 <= m["critic_acc"] <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, run.critic.parameters()))


# ------------------------------------------------------------------------------------------ latent recovery


def test_min_corr_is_one_for_the_true_latents_in_any_order_scale_and_sign():
    g = torch.randn(3, 200, dtype=torch.float64)
    learned = torch.stack([-2 * g[2] + 1, g[0] * 0.1, 5 * g[1] - 3, torch.randn(200, dtype=torch.float64)])
    assert torch.allclose(latent_recovery(g, learned), torch.ones(3, dtype=torch.float64))
    partial = latent_recovery(g, learned[:2])
    assert partial.min() < 0.5 and math.isclose(partial.max().item(), 1.0)
    assert latent_recovery(g, torch.zeros(2, 200, dtype=torch.float64)).max() == 0  # constants: no recovery


def test_a_model_whose_latents_are_the_true_ones_reports_min_corr_one():
    run = Regularization(reg_config())

    class TrueLatents(torch.nn.Module):
        def forward(self, x):
            x = x[:, 0]
            return torch.stack([-0.08 * (x + 0.165) ** 2 - 0.21, 0.0785 * (x - 0.63) ** 2 - 0.252,
                                0.0895 * (x + 0.21) ** 2 - 0.0375], 1)

    run.model.latent = TrueLatents()
    m = run.step()
    assert m["min_corr"] == pytest.approx(1.0, abs=1e-5) and m["mean_corr"] == pytest.approx(1.0, abs=1e-5)


# ------------------------------------------------------------------------------------------ errors, resume


def test_a_critic_on_other_points_is_refused_clearly(tmp_path):
    study = Study(Config.from_dict({**SMALL_CRITIC, "data": {"split_sizes": [600, 300, 100]}}))
    study.run()
    study.save(tmp_path / "study.pt")
    with pytest.raises(ConfigError, match="600 points.*700"):
        Regularization(reg_config(tmp_path, sd=1.0))


def test_sd_without_a_critic_and_other_bad_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="critic.path"):
        Regularization(reg_config(sd=1.0))
    with pytest.raises(ConfigError, match="no such file"):
        Regularization(reg_config(tmp_path / "nothing", sd=1.0))
    with pytest.raises(ConfigError, match="output part"):
        Regularization(reg_config(**{"arch.hid_type": ["mlp", "dsn"]}))
    with pytest.raises(ConfigError, match="task"):
        Study(reg_config())


def test_a_regularisation_run_resumes_exactly(critic_ckpt, tmp_path):
    cfg = reg_config(critic_ckpt, sd=1.0, **{"arch.hid_type": ["dsn", "mlp"], "critic.iters": 1})
    whole, want, got = make_run(cfg), Curve(), Curve()
    whole.run(callback=want.add)
    half = make_run(cfg)
    half.run(10, callback=got.add)
    half.save(tmp_path / "ck.pt")
    resumed = run_from_checkpoint(tmp_path / "ck.pt")
    assert isinstance(resumed, Regularization) and resumed.epoch == 10
    resumed.run(callback=got.add)
    for m, values in want.columns.items():
        if m != "time_s":
            assert np.allclose(values, got[m], equal_nan=True, rtol=0, atol=0), m


def test_a_checkpoint_of_the_other_kind_of_run_is_refused_naming_both(critic_ckpt, tmp_path):
    reg = make_run(reg_config(critic_ckpt, sd=1.0))
    reg.run(2)
    reg_file = reg.save(tmp_path / "reg.pt")
    study = Study.from_checkpoint(critic_ckpt)
    with pytest.raises(StudyError, match=re.escape(f"{reg_file} holds a regularisation run (task regularize, "
                                                   "format tune_sd.regularize/2), not an SD study (task sd")):
        Study.from_checkpoint(reg_file)
    with pytest.raises(StudyError, match=r"^checkpoint holds a regularisation run .* not an SD study"):
        study.load_state_dict(load_checkpoint(reg_file))
    with pytest.raises(StudyError, match=r"holds an SD study \(task sd, format tune_sd.study/3\), not a regul"):
        Regularization.from_checkpoint(critic_ckpt)
    with pytest.raises(StudyError, match="not a regularisation run"):
        reg.load_state_dict(load_checkpoint(critic_ckpt))
    # refused before anything was loaded: both runs go on where they were
    assert (study.epoch, reg.epoch) == (5, 2)
    assert reg.report(since=0) == {}  # the per-report metrics are the SD study's


def test_train_command_runs_a_regularisation(critic_ckpt, tmp_path):
    p = tune_sd("train", "--set", "task=regularize", "--set", "epochs=15", "--set", "sd=1", "--critic-from",
                str(critic_ckpt.parent), "--out", str(tmp_path / "run"), "--no-progress")
    assert p.returncode == 0, p.stderr
    curve = pd.read_parquet(tmp_path / "run" / "curve.parquet")
    assert len(curve) == 15 and {"mse", "val_mse", "min_corr", "reg", "critic_score"} <= set(curve.columns)
    assert "min_corr" in p.stdout


# ------------------------------------------------------------------------------------------ the study


def _fake_sd_sweep(folder, critic_ckpt):
    """An SD sweep's folder as results.export leaves it: two trials with checkpoints, one better."""
    import shutil

    rows = []
    for i, acc in enumerate((0.61, 0.83)):
        ck = folder / f"trial_{i}" / "checkpoint_000001"
        ck.mkdir(parents=True)
        shutil.copy(critic_ckpt, ck / "study.pt")
        rows.append({"trial_id": f"t{i}", "status": "TERMINATED", "final_avg_acc": acc, "checkpoint": str(ck)})
    pd.DataFrame(rows).to_parquet(folder / "trials.parquet")
    (folder / "tune_sd.json").write_text(json.dumps({"name": folder.name, "study": "sd-study"}))


def test_critic_from_takes_the_best_trial_of_a_sweep(critic_ckpt, tmp_path):
    from tune_sd.tune.critic_from import resolve_critic

    _fake_sd_sweep(tmp_path / "sd-study", critic_ckpt)
    path, where = resolve_critic("sd-study", str(tmp_path))
    assert path == str((tmp_path / "sd-study" / "trial_1" / "checkpoint_000001" / "study.pt").resolve())
    assert "0.830" in where and "t1" in where
    assert resolve_critic(str(critic_ckpt))[0] == str(critic_ckpt.resolve())
    with pytest.raises(ConfigError, match="neither a checkpoint nor a sweep"):
        resolve_critic("no-such-sweep", str(tmp_path))


def test_the_study_needs_a_critic(tmp_path):
    p = tune_sd("sweep", "regularize-dsn", "--dry-run", "--storage", str(tmp_path))
    assert p.returncode == 2 and "--critic-from" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_a_quick_regularize_dsn_sweep_runs_and_is_analysed(critic_ckpt, tmp_path):
    """From an SD sweep to a regularised DSN sweep and its report: the two commands of docs/studies.md."""
    _fake_sd_sweep(tmp_path / "sd-study", critic_ckpt)
    p = tune_sd("sweep", "regularize-dsn", "--quick", "--critic-from", "sd-study", "--epochs", "40",
                "--storage", str(tmp_path), timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    exp = tmp_path / "regularize-dsn"
    trials = pd.read_parquet(exp / "trials.parquet")
    curves = pd.read_parquet(exp / "curves.parquet")
    assert len(trials) == 36 and set(trials.status) == {"TERMINATED"}
    assert set(trials["cfg.sd"]) == {0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0}
    assert trials["final_min_corr"].between(0, 1).all() and trials["final_val_mse"].notna().all()
    assert {"mse", "val_mse", "reg", "critic_score", "min_corr"} <= set(curves.columns)
    assert not curves.duplicated(["trial_id", "iteration"]).any()
    assert (curves.groupby("trial_id")["epoch"].max() == 40).all()
    # TensorBoard has the run's own scalars
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trial_dir = next(d for d in exp.iterdir() if d.is_dir() and d.name.startswith("trial_"))
    acc = EventAccumulator(str(trial_dir))
    acc.Reload()
    assert any("min_corr" in t for t in acc.Tags()["scalars"])
    a = tune_sd("analyze", "regularize-dsn", "--storage", str(tmp_path), timeout=300)
    assert a.returncode == 0, a.stderr
    assert "improved latent recovery over sd = 0" in a.stdout
    html = (exp / "analysis" / "report.html").read_text()
    assert "Regularising with the SD" in html and "min_corr" in html and (exp / "analysis" / "regularize_1.png").exists()


def test_quick_set_fixes_keys_under_quick_only_and_is_validated(tmp_path, critic_ckpt):
    from tune_sd.spaces import load_space
    from tune_sd.tune.plan import SweepOptions, plan_sweep

    space = load_space("regularize-dsn")
    assert space.grid_size() == 108  # 9 sd x 2 lr x 2 latent types x 3 seeds
    full = plan_sweep(space, SweepOptions(storage=str(tmp_path), critic_from=str(critic_ckpt)))
    quick = plan_sweep(space, SweepOptions(storage=str(tmp_path), critic_from=str(critic_ckpt), quick=True))
    assert "seed" not in full.fixed and quick.fixed["seed"] == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: grid\nparameters: {}\ntune: {quick_set: {sedd: 0}}\n")
    p = tune_sd("sweep", str(bad), "--dry-run")
    assert p.returncode == 2 and "quick_set.sedd" in p.stderr and "Traceback" not in p.stderr


def test_the_non_learner_stopper_is_refused_for_a_regularisation_study(critic_ckpt, tmp_path):
    p = tune_sd("sweep", "regularize-dsn", "--critic-from", str(critic_ckpt), "--scheduler", "nonlearner",
                "--dry-run", "--storage", str(tmp_path))
    assert p.returncode == 2 and "non-learner stopper" in p.stderr and "Traceback" not in p.stderr
