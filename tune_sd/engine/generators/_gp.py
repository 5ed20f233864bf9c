"""Samples of a Gaussian-process prior on the input points."""

from __future__ import annotations

import torch

from ._base import Generator


def rbf_joint_covariance(X: torch.Tensor, length_scale: float, variance: float) -> torch.Tensor:
    """Covariance of (f(x_1..n), df/dx_0(x_1..n), ..., df/dx_{d-1}(x_1..n)) under an RBF prior.

    For k(x, x') = s exp(-|x - x'|^2 / (2 l^2)) and r = x - x':
    cov(f, f') = k, cov(d_a f(x), f(x')) = -r_a / l^2 k, cov(f(x), d_b f(x')) = r_b / l^2 k,
    cov(d_a f(x), d_b f(x')) = (delta_ab / l^2 - r_a r_b / l^4) k.
    """
    n, d = X.shape
    r = X[:, None, :] - X[None, :, :]                       # [n, n, d]
    K = variance * torch.exp(-(r ** 2).sum(-1) / (2 * length_scale ** 2))
    l2 = length_scale ** 2
    C = torch.empty(((1 + d) * n, (1 + d) * n), dtype=X.dtype, device=X.device)
    C[:n, :n] = K
    for a in range(d):  # d blocks: a handful at most, built once per study
        C[(1 + a) * n:(2 + a) * n, :n] = -r[..., a] / l2 * K
        C[:n, (1 + a) * n:(2 + a) * n] = r[..., a] / l2 * K
        for b in range(d):
            C[(1 + a) * n:(2 + a) * n, (1 + b) * n:(2 + b) * n] = ((a == b) / l2 - r[..., a] * r[..., b] / l2 ** 2) * K
    return C


class GPGenerator(Generator):
    """Functions drawn from a zero-mean GP with an RBF kernel, jointly with their exact gradients.

    The joint covariance of values and derivatives on the n points is factorised once (in float64,
    by eigendecomposition, which stays stable where a Cholesky factor would fail on the nearly
    singular kernel matrix of many close points); a draw of k functions is one matrix product.
    """

    name = "gp"

    def __init__(self, X: torch.Tensor, length_scale: float = 1.0, variance: float = 0.01, jitter: float = 1e-6):
        super().__init__(X)
        self.length_scale, self.variance = length_scale, variance
        C = rbf_joint_covariance(X.detach().to("cpu", torch.float64), length_scale, variance)
        diag_scale = torch.cat([torch.full((self.n,), variance, dtype=C.dtype),
                                torch.full((self.n * self.d,), variance / length_scale ** 2, dtype=C.dtype)])
        C.diagonal().add_(jitter * diag_scale)
        evals, evecs = torch.linalg.eigh(C)
        # directions where only the jitter varies add nothing but cost: keep the effective rank
        keep = evals > 2 * jitter * diag_scale.min()
        self.factor = (evecs[:, keep] * evals[keep].sqrt()).to(X.device, X.dtype)  # C ~= F F^T

    def sample(self, k, rng, with_grad=True):
        z = torch.randn((self.factor.shape[1], k), generator=rng, device=self.X.device, dtype=self.X.dtype)
        joint = (self.factor @ z).T                              # [k, (1 + d) n]
        values = joint[:, :self.n]
        if not with_grad:
            return values.contiguous(), None
        grads = joint[:, self.n:].reshape(k, self.d, self.n).transpose(1, 2)
        return values.contiguous(), grads.contiguous()
