"""The study loop: metrics, exact resume, non-finite handling, config loading of the seed's dicts."""

import pytest
import torch

from tune_sd.engine import Study, load_checkpoint
from tune_sd.engine.config import Config, resolve
from tune_sd.engine.loop import Curve
from tune_sd.errors import ConfigError, StudyError

SMALL = ["disc.hid_num=2", "disc.hid_size=16", "arch.lat_size=3", "data.split_sizes=[60,20,20]",
         "data.n_points=100", "avg_hor=4"]


def small(*extra, **dotted):
    return resolve(overrides=SMALL + list(extra), **dotted)


def test_step_returns_the_documented_metrics():
    study, curve = Study(small()), Curve()
    m = study.step()
    curve.add(m)
    assert set(m) >= {"epoch", "acc", "acc_mean", "avg_acc", "loss_real", "loss_fake", "loss_gp",
                      "grad_max", "time_s", "nonfinite"}
    assert m["epoch"] == 1 and 0 <= m["acc"] <= 1 and m["nonfinite"] == 0
    for _ in range(5):
        m = study.step()
        curve.add(m)
    # avg_acc is the moving average of acc_mean over avg_hor epochs
    assert m["avg_acc"] == pytest.approx(sum(curve["acc_mean"][-4:]) / 4)
    # acc_mean is a mean of per-step accuracies over 2k samples
    k2 = 2 * study.cfg.arch.lat_size
    assert round(m["acc_mean"] * k2 * study.cfg.disc.iters) == pytest.approx(m["acc_mean"] * k2 * study.cfg.disc.iters)


@pytest.mark.parametrize("extra", [
    [],
    ["ext=[grad]", "disc.hid_num=[2,2]", "disc.hid_size=[8,16]", "library.iter_sample=true"],
    ["ext=[input,grad]", "ext_type=stack", "disc.loss_fun=bce"],
    ["generator.type=dsn", "ext=[input]"],
    ["generator.type=gp", "disc.gp=0"],
])
def test_resume_is_bit_for_bit(extra, tmp_path):
    cfg = small(*extra, epochs=12)
    straight, want = Study(cfg), Curve()
    straight.run(callback=want.add)

    first, got = Study(cfg), Curve()
    first.run(epochs=5, callback=got.add)
    first.save(tmp_path / "checkpoint.pt")
    del first
    resumed = Study.from_checkpoint(tmp_path / "checkpoint.pt")
    assert resumed.epoch == 5
    resumed.run(callback=got.add)
    for m in ("epoch", "acc", "acc_mean", "avg_acc", "loss_real", "loss_fake", "loss_gp", "grad_max", "nonfinite"):
        assert got[m] == want[m], m
    assert resumed.last_metrics() == straight.last_metrics() | {"time_s": resumed.last_metrics()["time_s"]}
    for p, q in zip(resumed.critic.parameters(), straight.critic.parameters()):
        assert torch.equal(p, q)


def test_same_seed_same_run_other_seed_other_run():
    curves = [Curve() for _ in range(3)]
    for seed, curve in zip((3, 3, 4), curves):
        Study(small(seed=seed)).run(epochs=3, callback=curve.add)
    a, b, c = curves
    assert a["loss_real"] == b["loss_real"] != c["loss_real"]


def test_checkpoint_holds_only_tensors_and_plain_containers(tmp_path):
    study = Study(small())
    study.run(epochs=2)
    path = study.save(tmp_path / "ck.pt")
    state = torch.load(path, weights_only=True)  # would raise on anything else
    assert state["epoch"] == 2 and state["config"]["disc"]["hid_size"] == 16
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


def test_broken_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(StudyError, match="checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(StudyError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_runtime_and_epochs_end_the_run():
    study = Study(small(epochs=4))
    study.run()
    assert study.epoch == 4 and study.done
    study = Study(small(epochs=10_000, runtime=1e-9))
    study.run()
    assert study.epoch == 1


def test_library_overflow_is_counted_and_fails_the_run_clearly(tmp_path):
    lib = tmp_path / "overflow.lib"
    lib.write_text("np.exp(1000*N0*X10[:,0])\n")
    study = Study(small(**{"library.path": str(lib)}))
    with pytest.raises(StudyError, match="non-finite"):
        study.run(epochs=20)


def test_seed_notebook_dict_loads_as_is():
    hp = {
        "arch": {"in_size": 1, "out_size": 1, "hid_num": (2, 0), "hid_size": 32, "hid_type": ("MLP", "MLP"),
                 "hid_kwargs": {"alpha": None, "norm": None, "prune": None}, "lat_size": 5},
        "epochs": 100000, "runtime": None, "batch_size": 700,
        "disc": {"hid_num": 6, "hid_size": 128, "emb_size": None, "lr": 1e-4, "wd": 1e-7,
                 "betas": (0.9, 0.999), "iters": 5, "gp": 1e-5},
    }
    cfg = Config.from_dict(hp)
    assert cfg.disc.wd == 1e-7 and cfg.arch.hid_num == [2, 0] and cfg.generator_type == "mlp"
    ext = dict(hp, ext=["grad"], ext_type="embed", ext_size=1)
    assert Config.from_dict(ext).derived_ext_size == 1
    Study(Config.from_dict(dict(hp, epochs=1))).step()


def test_defaults_are_the_step15_setting():
    cfg = resolve()
    assert (cfg.disc.hid_num, cfg.disc.hid_size, cfg.disc.lr, cfg.disc.wd, cfg.disc.iters, cfg.disc.gp) == \
        (6, 128, 1e-4, 1e-4, 5, 1e-5)
    assert cfg.arch.lat_size == 5 and cfg.arch.hid_num == [2, 0] and cfg.arch.hid_size == 32
    assert cfg.data.features == [0] and cfg.avg_hor == 500 and cfg.library.path == "F10_v1"
    study = Study(cfg)
    assert study.X.shape == (700, 1)


@pytest.mark.parametrize("overrides, key", [
    (["disc.lr=0"], "disc.lr"),
    (["disc.nope=1"], "disc.nope"),
    (["nope=1"], "nope"),
    (["ext=[stack]"], "ext"),
    (["ext=[grad]", "ext_size=3"], "ext_size"),
    (["disc.hid_num=[2,4]"], "disc.hid_num"),
    (["arch.in_size=2"], "arch.in_size"),
    (["disc.betas=[0.9]"], "disc.betas"),
    (["generator.type=vae"], "generator.type"),
    (["disc.iters=two"], "disc.iters"),
])
def test_bad_config_names_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        resolve(overrides=overrides)
    assert str(e.value).startswith(key)


def test_batch_size_must_match_the_points():
    with pytest.raises(ConfigError, match="batch_size"):
        Study(small(batch_size=5))


def test_unknown_library_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="F10_v1"):
        Study(small(**{"library.path": "no-such-library"}))


def test_config_file_errors_name_the_file_and_line(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("disc:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"c.yaml, line \d"):
        resolve(f)
    f.write_text("disc:\n  lrr: 1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: disc.lrr"):
        resolve(f)


@pytest.mark.parametrize("seed", [0, 2])  # the loss turns NaN in epoch 1 (no optimizer state yet) / epoch 7
def test_a_non_finite_epoch_is_rolled_back_to_the_last_whole_epoch(tmp_path, seed):
    lib = tmp_path / "mixed.lib"  # one function in three overflows: some epoch draws it
    lib.write_text("N0*X10[:,0]\nnp.sin(N0*X10[:,0])\nnp.exp(1000*N0*X10[:,0])\n")
    cfg = small(**{"library.path": str(lib), "arch.lat_size": 1, "seed": seed})
    study = Study(cfg)
    with pytest.raises(StudyError, match="non-finite"):
        study.run(epochs=30)
    whole = Study(cfg)
    whole.run(epochs=study.epoch)
    # what a save after the error holds (train's, or Tune's checkpoint at the end) is that epoch's state
    saved, expected = study.state_dict(), whole.state_dict()
    assert saved["epoch"] == expected["epoch"] == (6 if seed == 2 else 0)
    assert torch.equal(saved["rng"], expected["rng"])
    for k, v in expected["critic"].items():
        assert torch.equal(saved["critic"][k], v), k
    assert saved["optimizer"]["state"].keys() == expected["optimizer"]["state"].keys()
    for k, v in expected["optimizer"]["state"].items():
        for name, t in v.items():
            assert torch.equal(saved["optimizer"]["state"][k][name], t), (k, name)


def test_from_state_applies_a_changed_optimizer_setting_and_records_it():
    study = Study(small(epochs=10))
    study.run(epochs=4)
    resumed = Study.from_state(study.state_dict(), **{"disc.lr": 1e-3, "disc.betas": [0.5, 0.9], "disc.wd": 0.0,
                                                      "disc.gp": 0.0, "avg_hor": 2})
    group = resumed.state_dict()["optimizer"]["param_groups"][0]
    assert (group["lr"], group["betas"], group["weight_decay"], resumed.cfg.disc.gp) == (1e-3, (0.5, 0.9), 0.0, 0.0)
    assert [(c["epoch"], c["key"], c["from"], c["to"]) for c in resumed.changes] == [
        (5, "disc.lr", 1e-4, 1e-3), (5, "disc.wd", 1e-4, 0.0), (5, "disc.betas", [0.9, 0.999], [0.5, 0.9]),
        (5, "disc.gp", 1e-5, 0.0), (5, "avg_hor", 4, 2)]
    before = study.state_dict()["recent"]["acc_mean"].tolist()
    m = resumed.step()
    assert m["avg_acc"] == pytest.approx((before[-1] + m["acc_mean"]) / 2)
    # the value is in the checkpoint's config: a plain reload keeps it, and the record
    again = Study.from_state(resumed.state_dict())
    assert again.state_dict()["optimizer"]["param_groups"][0]["lr"] == 1e-3 and again.changes == resumed.changes
    # unchanged values are no change
    assert Study.from_state(study.state_dict(), **{"disc.lr": 1e-4}).changes == []


@pytest.mark.parametrize("key, value, why", [
    ("disc.hid_size", 32, "shape"), ("ext", ["grad"], "shape"), ("data.seed", 1, "data"),
    ("library.shuffle", False, "data"), ("generator.type", "gp", "fake functions"), ("seed", 1, "random state"),
    ("sd", 1.0, "does not use it"),
])
def test_from_state_refuses_what_it_cannot_apply(key, value, why):
    study = Study(small(epochs=10))
    study.run(epochs=2)
    with pytest.raises(ConfigError, match=rf"{key}: .*{why}"):
        Study.from_state(study.state_dict(), **{key: value})


def test_a_reports_accuracy_is_the_mean_of_acc_mean_over_the_reports_epochs():
    study, curve = Study(small(epochs=7)), Curve()
    study.run(epochs=3, callback=curve.add)
    study.run(epochs=4, callback=curve.add)
    acc = curve["acc_mean"]
    assert study.report(since=3) == {"acc_report": pytest.approx(sum(acc[3:7]) / 4)}
    assert study.report(since=0) == {"acc_report": pytest.approx(sum(acc) / 7)}
    # a report in which no epoch ran (a trial restored at its end) has its last epoch's
    assert study.report(since=7) == {"acc_report": acc[-1]}
    # it is read from the recent epochs, which a checkpoint keeps
    assert Study.from_state(study.state_dict()).report(since=3) == study.report(since=3)
    # a report spans at most the epochs a run keeps (report_every; here avg_hor 4 is larger)
    longer = Study(small(epochs=7, report_every=2))
    longer.run()
    with pytest.raises(StudyError, match="report of 7 epochs"):
        longer.report(since=0)
