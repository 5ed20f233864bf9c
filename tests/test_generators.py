"""Generators of fake functions: shapes, gradients against finite differences, the DSN kink, GP covariance."""

import math

import pytest
import torch

from tune_sd.engine.generators import DSNGenerator, GPGenerator, MLPGenerator


def rng(seed=0):
    return torch.Generator().manual_seed(seed)


def make(kind, X):
    if kind == "mlp":
        return MLPGenerator(X, hid_num=2, hid_size=32, lat_size=3)
    if kind == "dsn":
        return DSNGenerator(X, hid_num=2, hid_size=32)
    return GPGenerator(X, length_scale=1.0, variance=0.04)


@pytest.mark.parametrize("kind", ["mlp", "dsn", "gp"])
@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_shapes(kind, d, k):
    X = torch.randn(50, d, generator=rng(1))
    values, grads = make(kind, X).sample(k, rng())
    assert values.shape == (k, 50) and grads.shape == (k, 50, d)
    values, grads = make(kind, X).sample(k, rng(), with_grad=False)
    assert values.shape == (k, 50) and grads is None


@pytest.mark.parametrize("kind", ["mlp", "dsn"])
@pytest.mark.parametrize("d", [1, 2])
def test_network_gradients_match_finite_differences(kind, d):
    X = torch.randn(40, d, generator=rng(2), dtype=torch.float64)
    h = 1e-6
    gen = make(kind, X)
    _, grads = gen.sample(5, rng(3))
    for a in range(d):
        shift = torch.zeros(d, dtype=X.dtype)
        shift[a] = h
        # the same draw (same rng state) evaluated at shifted points
        plus, _ = make(kind, X + shift).sample(5, rng(3), with_grad=False)
        minus, _ = make(kind, X - shift).sample(5, rng(3), with_grad=False)
        fd = (plus - minus) / (2 * h)
        # a point within h of a ReLU kink has no derivative; there are almost surely none here
        assert torch.allclose(grads[..., a], fd, atol=1e-5, rtol=1e-4)


def test_gp_gradients_match_finite_differences_of_the_sample():
    # on a fine 1-D grid, the sampled derivative is the slope of the sampled values
    X = torch.linspace(-2, 2, 401, dtype=torch.float64).unsqueeze(1)
    gen = GPGenerator(X, length_scale=1.0, variance=1.0, jitter=1e-10)
    values, grads = gen.sample(4, rng(4))
    step = (X[1, 0] - X[0, 0]).item()
    fd = (values[:, 2:] - values[:, :-2]) / (2 * step)
    err = (fd - grads[:, 1:-1, 0]).abs().max().item()
    assert err < 0.01 * grads.abs().max().item() + 1e-3


def test_gp_samples_have_the_configured_covariance():
    X = torch.tensor([[-1.0], [0.0], [0.5], [2.0]], dtype=torch.float64)
    ell, var = 0.8, 0.3
    gen = GPGenerator(X, length_scale=ell, variance=var, jitter=1e-9)
    values, grads = gen.sample(40000, rng(5))
    emp = values.T @ values / values.shape[0]
    r = X - X.T
    want = var * torch.exp(-r ** 2 / (2 * ell ** 2))
    assert torch.allclose(emp, want, atol=0.02)
    # derivative variance is var / ell^2 and cov(f(x), f'(x)) = 0
    assert math.isclose(grads[:, 1, 0].var().item(), var / ell ** 2, rel_tol=0.05)
    assert abs((values[:, 1] * grads[:, 1, 0]).mean().item()) < 0.02


def test_untrained_dsn_is_piecewise_linear_with_the_kink_at_zero():
    X = torch.linspace(-3, 3, 601).unsqueeze(1)
    values, grads = DSNGenerator(X, hid_num=2, hid_size=32).sample(20, rng(6))
    neg, pos = X[:, 0] < 0, X[:, 0] > 0
    for v, g in zip(values, grads[..., 0]):
        # one slope on each side of 0, and the value is 0 at 0 (no biases)
        assert torch.allclose(g[neg], g[neg][0].expand(int(neg.sum())), atol=1e-5)
        assert torch.allclose(g[pos], g[pos][0].expand(int(pos.sum())), atol=1e-5)
        assert abs(v[300].item()) < 1e-6
        assert torch.allclose(v[pos], g[pos][0] * X[pos, 0], atol=1e-4)
        assert torch.allclose(v[neg], g[neg][0] * X[neg, 0], atol=1e-4)
    # whereas an untrained MLP (with biases) bends elsewhere: its slope changes away from 0 too
    mv, mg = MLPGenerator(X, 2, 32, 5).sample(5, rng(7))
    inner = mg[:, pos, 0]
    assert (inner.max(dim=1).values - inner.min(dim=1).values > 1e-3).any()


def test_mlp_uses_pytorch_default_initialisation_bounds():
    X = torch.randn(10, 1, generator=rng(8))
    gen = MLPGenerator(X, 2, 32, 5)
    layers = gen.draw_weights(200, rng(9))
    for (W, b), fan_in in zip(layers, [1, 32, 32]):
        bound = 1 / math.sqrt(fan_in)
        assert W.abs().max() <= bound and b.abs().max() <= bound
        assert W.abs().max() > 0.95 * bound  # uniform over the whole range
        assert abs(W.var().item() - bound ** 2 / 3) < 0.05 * bound ** 2


def test_same_rng_state_same_functions():
    X = torch.randn(30, 1, generator=rng(10))
    for kind in ("mlp", "dsn", "gp"):
        a = make(kind, X).sample(4, rng(11))
        b = make(kind, X).sample(4, rng(11))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("kind", ["mlp", "dsn", "gp"])
@pytest.mark.parametrize("with_grad", [False, True])
def test_many_draws_at_once_are_the_draws_one_by_one(kind, with_grad):
    """A population evaluates its members' fake functions as one batch: each member's stream is drawn
    exactly as by its own draw, and its functions agree to float rounding (a batched product of
    another batch size may sum in another order)."""
    X = torch.randn(40, 2, generator=rng(1))
    gen, ks = make(kind, X), [3, 1, 7]
    batched, alone = [rng(s) for s in range(3)], [rng(s) for s in range(3)]
    many = gen.sample_many(ks, batched, with_grad=with_grad)
    for (values, grads), k, r_many, r_one in zip(many, ks, batched, alone):
        want_values, want_grads = gen.sample(k, r_one, with_grad=with_grad)
        assert torch.allclose(values, want_values, rtol=1e-6, atol=1e-7)
        assert (grads is None and want_grads is None) or torch.allclose(grads, want_grads, rtol=1e-6, atol=1e-7)
        assert torch.equal(r_many.get_state(), r_one.get_state())
