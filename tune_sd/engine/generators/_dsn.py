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
        return self.sample_many([k], [rng], with_grad)[0]

    def sample_many(self, ks, rngs, with_grad=True):
        """Each draw's masks and weights from its own stream, then all units evaluated as one batch."""
        dev, dt = self.X.device, self.X.dtype
        alphas, weights = [], []
        for k, rng in zip(ks, rngs):
            alphas.append(torch.randn((k, 1, self.d), generator=rng, device=dev, dtype=dt))
            weights.append([torch.randn((k, fan_in, fan_out), generator=rng, device=dev, dtype=dt)
                            .mul_(math.sqrt(6.0 / (fan_in + fan_out)))
                            for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:])])
        alpha = torch.cat(alphas) if len(alphas) > 1 else alphas[0]
        layers = [(torch.cat(ws) if len(ws) > 1 else ws[0], None) for ws in zip(*weights)]
        k = alpha.shape[0]
        h = self.X.unsqueeze(0) * alpha                       # [k, n, d]
        J = torch.diag_embed(alpha).expand(k, 1, self.d, self.d) if with_grad else None  # d(alpha x)/dx
        h, J = relu_network(h, J, layers)
        values = h[..., 0]                                      # [k, n]
        grads = J[..., 0] if with_grad else None                # [k, n, d]
        out, start = [], 0
        for k in ks:
            out.append((values[start:start + k], grads[start:start + k] if with_grad else None))
            start += k
        return out
