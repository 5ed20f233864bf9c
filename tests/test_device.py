"""The engine on a GPU: skipped cleanly on machines without CUDA."""

import pytest
import torch

from tune_sd.engine import Study, resolve
from tune_sd.engine.loop import Curve

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

SMALL = ["disc.hid_num=2", "disc.hid_size=16", "arch.lat_size=3", "data.n_points=100",
         "data.split_sizes=[60,20,20]", "epochs=10"]
MODES = [[], ["ext=[grad]", "disc.hid_num=[2,2]", "disc.hid_size=[8,16]"], ["ext=[input,grad]", "ext_type=stack"],
         ["generator.type=dsn"], ["generator.type=gp", "library.iter_sample=true"]]


@cuda
@pytest.mark.parametrize("extra", MODES)
def test_study_runs_on_the_gpu_and_resumes_exactly(extra, tmp_path):
    cfg = resolve(overrides=SMALL + extra)
    straight = Study(cfg, device="cuda")
    assert straight.X.is_cuda and next(straight.critic.parameters()).is_cuda
    want, got = Curve(), Curve()
    straight.run(callback=want.add)
    half = Study(cfg, device="cuda")
    half.run(epochs=4, callback=got.add)
    half.save(tmp_path / "ck.pt")
    resumed = Study.from_checkpoint(tmp_path / "ck.pt", device="cuda")
    resumed.run(callback=got.add)
    assert got["loss_real"] == want["loss_real"]
    assert got["acc_mean"] == want["acc_mean"]


@cuda
def test_a_gpu_checkpoint_loads_on_the_cpu(tmp_path):
    cfg = resolve(overrides=SMALL)
    study = Study(cfg, device="cuda")
    study.run(epochs=3)
    study.save(tmp_path / "ck.pt")
    cpu = Study.from_checkpoint(tmp_path / "ck.pt", device="cpu")
    assert cpu.epoch == 3 and not next(cpu.critic.parameters()).is_cuda
    cpu.run()
    assert cpu.epoch == 10


@cuda
@pytest.mark.parametrize("critic_extra", [[], ["ext=[input,grad]", "ext_type=stack"]])
def test_a_regularisation_runs_on_the_gpu_with_a_critic_and_resumes_exactly(critic_extra, tmp_path):
    from tune_sd.engine import run_from_checkpoint

    critic = Study(resolve(overrides=SMALL + critic_extra), device="cuda")
    critic.run()
    critic.save(tmp_path / "critic.pt")
    cfg = resolve(overrides=["task=regularize", "sd=1", f"critic.path={tmp_path / 'critic.pt'}", "critic.iters=1",
                             "data.n_points=100", "data.split_sizes=[60,20,20]", "epochs=10",
                             "arch.hid_type=[dsn,mlp]", "arch.hid_num=[2,1]", "arch.lat_size=3"])
    from tune_sd.engine import make_run

    straight = make_run(cfg, device="cuda")
    assert straight.X.is_cuda and next(straight.model.parameters()).is_cuda
    want, got = Curve(), Curve()
    straight.run(callback=want.add)
    half = make_run(cfg, device="cuda")
    half.run(epochs=4, callback=got.add)
    half.save(tmp_path / "ck.pt")
    resumed = run_from_checkpoint(tmp_path / "ck.pt", device="cuda")
    resumed.run(callback=got.add)
    assert got["mse"] == want["mse"]
    assert got["min_corr"] == want["min_corr"]
