"""The critic: input layouts for every ext mode; the critic steps' loss, penalty and accuracy
definitions on hand-made critics."""

import math

import pytest
import torch
from torch import nn

from tune_sd.engine.config import resolve
from tune_sd.engine.critic import Critic, critic_input
from tune_sd.engine.epoch import Batch, Steps
from tune_sd.engine.stacked import _fit, _Stack


def rng(seed=0):
    return torch.Generator().manual_seed(seed)


N, K = 20, 4


def parts(ext, d=1):
    values = torch.randn(K, N)
    X = torch.randn(N, d)
    grads = torch.randn(K, N, d)
    return values, [X if e == "input" else grads for e in ext], X, grads


@pytest.mark.parametrize("ext", [[], ["input"], ["grad"], ["input", "grad"]])
@pytest.mark.parametrize("ext_type", ["embed", "stack"])
@pytest.mark.parametrize("d", [1, 2])
def test_critic_input_shapes_and_scores(ext, ext_type, d):
    values, ext_parts, X, grads = parts(ext, d)
    x = critic_input(values, ext_parts, ext_type)
    e = len(ext) * d
    if not ext:
        assert x.shape == (K, N)
    elif ext_type == "embed":
        assert x.shape == (K, N, 1 + e)
        assert torch.equal(x[..., 0], values)
    else:
        assert x.shape == (K, N * (1 + e))
        assert torch.equal(x[:, :N], values)  # the value block first, then the extra blocks
    cfg = resolve(overrides=[f"ext={ext or 'null'}", f"ext_type={ext_type}", "disc.hid_num=2",
                             "disc.hid_size=8", f"data.features={list(range(d))}"])
    critic = Critic.from_config(cfg, N, rng=rng())
    assert critic(x).shape == (K,)
    # the first layer sees exactly what the notebook's SDNet saw
    if ext and ext_type == "embed":
        assert critic.embed[0].in_features == 1 + e and critic.main[0].in_features == N
    else:
        assert critic.main[0].in_features == N * (1 + e)


def test_stack_layout_puts_each_extra_block_along_the_point_axis():
    values = torch.arange(6.0).view(2, 3)
    grads = 10 + torch.arange(6.0).view(2, 3, 1)
    x = critic_input(values, [grads], "stack")
    assert x.tolist() == [[0, 1, 2, 10, 11, 12], [3, 4, 5, 13, 14, 15]]


def test_embed_pairs_size_the_two_networks():
    cfg = resolve(overrides=["ext=[grad]", "ext_type=embed", "disc.hid_num=[2,4]", "disc.hid_size=[64,512]"])
    critic = Critic.from_config(cfg, 700, rng=rng())
    # the seed's printed SDNet: embedding 2 -> 64 -> 64 -> 1, main 700 -> 512 x4 -> 1
    lin = [m for m in critic.embed if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(2, 64), (64, 64), (64, 1)]
    lin = [m for m in critic.main if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(700, 512)] + [(512, 512)] * 3 + [(512, 1)]


def linear(w, b=0.0):
    """A hand-made critic without hidden layers: score(x) = w . x + b."""
    critic = Critic(N, hid_num=0, hid_size=1, rng=rng())
    with torch.no_grad():
        critic.main[0].weight.copy_(torch.as_tensor(w, dtype=torch.float32).expand(1, N))
        critic.main[0].bias.fill_(b)
    return critic


MEAN = torch.full((N,), 1.0 / N)   # score = the mean of the input
FIRST = torch.eye(N)[0]            # score = the first value


def fit(critic, real, fake, *, iters=1, gp=0.0, bce=False, lr=0.0):
    """The critic steps a study takes (engine/stacked.py), on one critic; lr 0 keeps its weights."""
    stack = _Stack.of(critic, [lr, 0.0, 0.9, 0.999, 1e-8])
    batch = Batch([Steps(fake.shape[0], iters, gp, bce)], [fake], [real], [rng()])
    accs, loss_real, loss_fake, loss_gp, grad_max = _fit(stack, batch)[0]
    return accs, loss_real, loss_fake, loss_gp, grad_max, Critic.view(resolve(overrides=[
        "disc.hid_num=0", "disc.hid_size=1"]), N, stack)


def test_accuracy_definition():
    # real if output > 0, fake if <= 0; accuracy over all 2k samples
    real = torch.zeros(1, K, N)
    real[0, :, 0] = torch.tensor([1.0, 0.0, -2.0, 3.0])
    fake = torch.zeros(K, N)
    fake[:, 0] = torch.tensor([0.0, -1.0, 2.0, 5.0])
    accs = fit(linear(FIRST), real, fake)[0]
    assert accs == [pytest.approx((2 + 2) / 8)]


def test_wasserstein_and_bce_losses_on_hand_made_scores():
    real = torch.zeros(1, 2, N)
    real[0, :, 0] = torch.tensor([1.0, 3.0])
    fake = torch.zeros(2, N)
    fake[:, 0] = torch.tensor([-1.0, 0.5])
    _, lr_, lf, *_ = fit(linear(FIRST), real, fake)
    assert lr_ == pytest.approx(-2.0) and lf == pytest.approx(-0.25)
    _, lr_, lf, *_ = fit(linear(FIRST), real, fake, bce=True)
    sp = lambda z: math.log1p(math.exp(z))  # softplus
    assert lr_ == pytest.approx((sp(-1) + sp(-3)) / 2)
    assert lf == pytest.approx((sp(-1) + sp(0.5)) / 2)


def test_gradient_penalty_of_a_linear_critic():
    # critic(x) = w . x has input-gradient w everywhere: penalty = (|w| - 1)^2
    w = torch.full((N,), 0.5)
    loss_gp = fit(linear(w), torch.randn(1, K, N), torch.randn(K, N), gp=1.0)[3]
    assert loss_gp == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)


def test_fit_reports_per_step_accuracy_and_last_losses():
    real = torch.full((1, K, N), 2.0)  # mean 2 > 0: all real correct
    fake = torch.full((K, N), -1.0)    # mean -1 <= 0: all fake correct
    accs, loss_real, loss_fake, loss_gp, _, _ = fit(linear(MEAN), real, fake, iters=3)
    assert accs == [1.0, 1.0, 1.0]
    assert loss_real == pytest.approx(-2.0) and loss_fake == pytest.approx(-1.0) and loss_gp == 0.0
    fake = torch.full((K, N), 1.0)     # every fake called real
    assert fit(linear(MEAN), real, fake)[0] == [0.5]


def test_fit_with_iter_sample_uses_one_real_batch_per_step():
    real = torch.stack([torch.full((K, N), float(i + 1)) for i in range(3)])
    loss_real = fit(linear(MEAN), real, torch.zeros(K, N), iters=3)[1]
    assert loss_real == pytest.approx(-3.0)  # the last step's batch


def test_training_separates_easy_classes_and_the_view_follows_the_weights():
    critic = Critic(N, hid_num=2, hid_size=16, rng=rng())
    real = torch.randn(1, 8, N, generator=rng(1)) + 1.0
    fake = torch.randn(8, N, generator=rng(2)) - 1.0
    before = [p.detach().clone() for p in critic.parameters()]
    stack = _Stack.of(critic, [1e-2, 0.0, 0.9, 0.999, 1e-8])
    accs, *_, grad_max = _fit(stack, Batch([Steps(8, 50, 1e-3, False)], [fake], [real], [rng()]))[0]
    assert accs[-1] == 1.0 and grad_max > 0
    view = Critic.view(resolve(overrides=["disc.hid_num=2", "disc.hid_size=16"]), N, stack)
    # (the Wasserstein loss does not depend on the output's bias: -mean(real) + mean(fake) cancels it)
    assert all(not torch.equal(a, b) for a, b in zip(before[:-1], list(view.parameters())[:-1]))
    assert ((view(real[0]) > 0).all() and (view(fake) <= 0).all())


def test_initialisation_comes_from_the_given_generator_only():
    a = Critic(N, hid_num=2, hid_size=8, rng=rng(1))
    torch.manual_seed(123)
    b = Critic(N, hid_num=2, hid_size=8, rng=rng(1))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
