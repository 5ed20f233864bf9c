"""Checkpoints of an earlier format still resume: tests/data/study_v1_*.pt were written by the engine
of format ``tune_sd.study/1`` (the solo critic and its torch optimizer), each after 6 epochs, a resume
with ``disc.lr=3e-3`` and 4 more epochs; the .json beside it holds the config's overrides, the
``changes`` record and the curves of the 30 epochs that engine went on with."""

import json
from pathlib import Path

import pytest
import torch

from tune_sd.engine import Population, Study, load_checkpoint
from tune_sd.engine.loop import Curve

DATA = Path(__file__).parent / "data"
# the engine that wrote them summed in another order (autograd's backward, one critic): its curves
# and ours agree to float rounding, amplified a little by training (see tests/test_population.py)
RTOL, ATOL = 1e-3, 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def assert_continues(curve: Curve, want: dict):
    for m in ("avg_acc", "loss_real", "loss_fake", "loss_gp", "grad_max"):
        got = torch.tensor(curve[m], dtype=torch.float64)
        assert torch.allclose(got, torch.tensor(want[m], dtype=torch.float64), rtol=RTOL, atol=ATOL), m
    assert curve["nonfinite"] == want["nonfinite"]
    differ = sum(a != b for a, b in zip(curve["acc_mean"], want["acc_mean"]))
    assert differ <= 1, f"{differ} epochs differ in accuracy"


@pytest.mark.parametrize("name", ["plain", "embed_grad"])
def test_a_version_1_checkpoint_resumes_and_goes_on_as_before(name):
    file = DATA / f"study_v1_{name}.pt"
    want = json.loads((DATA / f"study_v1_{name}.json").read_text())
    assert load_checkpoint(file)["format"] == "tune_sd.study/1"
    study = Study.from_checkpoint(file)
    assert study.epoch == 10 and study.cfg.disc.lr == 3e-3
    assert study.changes == want["changes"]
    curve = Curve()
    study.run(epochs=30, callback=curve.add)
    assert curve["epoch"] == list(range(11, 41))
    assert_continues(curve, want["continued"])
    # a population takes it too, and what it writes keeps the record of the change
    pop, curve = Population(), Curve()
    pop.add("m", study.cfg, load_checkpoint(file))
    for _ in range(30):
        curve.add(pop.step()["m"])
    assert_continues(curve, want["continued"])
    assert pop.state_dict("m")["changes"] == want["changes"]
