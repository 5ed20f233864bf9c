"""The critic: input layouts for every ext mode, loss and accuracy definitions on hand-made critics."""

import math

import pytest
import torch
from torch import nn

from tune_sd.engine.config import resolve
from tune_sd.engine.critic import Critic, critic_input


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


class Constant(Critic):
    """A hand-made critic: scores are a fixed function of the input, no parameters trained."""

    def __init__(self, score, **kw):
        super().__init__(N, hid_num=0, hid_size=1, lr=1e-9, **kw)
        self.score = score

    def forward(self, x):
        return self.score(x) + 0 * self.main[0].weight.sum()


def test_accuracy_definition():
    # real if output > 0, fake if <= 0; accuracy over all 2k samples
    pr = torch.tensor([1.0, 0.0, -2.0, 3.0])
    pf = torch.tensor([0.0, -1.0, 2.0, 5.0])
    assert Critic.accuracy(pr, pf).item() == pytest.approx((2 + 2) / 8)


def test_wasserstein_and_bce_losses_on_hand_made_scores():
    c = Constant(lambda x: x.mean(dim=1))
    pr, pf = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.5])
    lr_, lf = c.losses(pr, pf)
    assert lr_.item() == pytest.approx(-2.0) and lf.item() == pytest.approx(-0.25)
    c.loss_fun = "bce"
    lr_, lf = c.losses(pr, pf)
    sp = lambda z: math.log1p(math.exp(z))  # softplus
    assert lr_.item() == pytest.approx((sp(-1) + sp(-3)) / 2)
    assert lf.item() == pytest.approx((sp(-1) + sp(0.5)) / 2)


def test_gradient_penalty_of_a_linear_critic():
    # critic(x) = w . x has input-gradient w everywhere: penalty = (|w| - 1)^2
    w = torch.full((N,), 0.5)
    c = Constant(lambda x: x @ w, gp=1.0)
    pen = c.gradient_penalty(torch.randn(K, N), torch.randn(K, N), rng())
    assert pen.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)


def test_fit_reports_per_step_accuracy_and_last_losses():
    c = Constant(lambda x: x.mean(dim=1), iters=3, gp=0.0)
    real = torch.full((1, K, N), 2.0)  # mean 2 > 0: all real correct
    fake = torch.full((K, N), -1.0)    # mean -1 <= 0: all fake correct
    stats = c.fit(real, fake, rng())
    assert stats.accs == [1.0, 1.0, 1.0] and stats.acc == 1.0 and stats.acc_mean == 1.0
    assert stats.loss_real == pytest.approx(-2.0) and stats.loss_fake == pytest.approx(-1.0)
    assert stats.loss_gp == 0.0
    fake = torch.full((K, N), 1.0)     # every fake called real
    assert c.fit(real, fake, rng()).acc == 0.5


def test_fit_with_iter_sample_uses_one_real_batch_per_step():
    seen = []
    c = Constant(lambda x: (seen.append(x[0, 0].item()), x.mean(dim=1))[1], iters=3, gp=0.0)
    real = torch.stack([torch.full((K, N), float(i + 1)) for i in range(3)])
    c.fit(real, torch.zeros(K, N), rng())
    assert seen == [1.0, 2.0, 3.0]


def test_training_separates_easy_classes():
    torch.manual_seed(0)
    c = Critic(N, hid_num=2, hid_size=16, lr=1e-2, iters=50, gp=1e-3, rng=rng())
    real = torch.randn(1, 8, N) + 1.0
    fake = torch.randn(8, N) - 1.0
    stats = c.fit(real, fake, rng())
    assert stats.acc == 1.0 and stats.grad_max > 0


def test_initialisation_comes_from_the_given_generator_only():
    a = Critic(N, hid_num=2, hid_size=8, rng=rng(1))
    torch.manual_seed(123)
    b = Critic(N, hid_num=2, hid_size=8, rng=rng(1))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
