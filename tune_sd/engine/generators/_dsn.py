"""Untrained disentangled sparsity networks (DSN): one small bias-free MLP per latent unit."""

from __future__ import annotations

import math

import torch

from ._base import Generator, relu_network
from ._mlp import layer_sizes


class DSNGenerator(Generator):
    """Latent unit j is ``mlp_j(alpha_j * x)``: a mask ``alpha_j ~ N(0, 1)`` per input feature, then
    ``hid_num`` x ``hid_size`` ReLU layers without biases, weights N(0, 1) * sqrt(6 / (fan_in + fan_out)).

    Without biases every unit is positively homogeneous, f(t x) = t f(x) for t > 0, so in one dimension
    an untrained DSN's feature is two straight lines meeting at x = 0 (the notebook's observation).
    All k units are drawn and evaluated at once; the Jacobian is carried forward in closed form.
    """

    name = "dsn"

    def __init__(self, X: torch.Tensor, hid_num: int, hid_size: int):
        super().__init__(X)
        self.sizes = layer_sizes(self.d, hid_num, hid_size, 1)

    def sample(self, k, rng, with_grad=True):
        dev, dt = self.X.device, self.X.dtype
        alpha = torch.randn((k, 1, self.d), generator=rng, device=dev, dtype=dt)
        h = self.X.unsqueeze(0) * alpha                       # [k, n, d]
        J = torch.diag_embed(alpha).expand(k, 1, self.d, self.d) if with_grad else None  # d(alpha x)/dx
        layers = [(torch.randn((k, fan_in, fan_out), generator=rng, device=dev, dtype=dt)
                   .mul_(math.sqrt(6.0 / (fan_in + fan_out))), None)
                  for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:])]
        h, J = relu_network(h, J, layers)
        values = h[..., 0]                                      # [k, n]
        return values, (J[..., 0] if with_grad else None)       # [k, n, d]
