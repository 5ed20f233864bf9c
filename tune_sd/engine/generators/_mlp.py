"""Untrained MLPs: the fake functions of Step 15."""

from __future__ import annotations

import math

import torch

from ._base import Generator, relu_network


def layer_sizes(d: int, hid_num: int, hid_size: int, out: int) -> list[int]:
    return [d] + [hid_size] * hid_num + [out]


class MLPGenerator(Generator):
    """Latent units of freshly initialised MLPs, inputs -> ``hid_num`` x ``hid_size`` ReLU -> ``lat_size``.

    Initialisation is PyTorch's default for ``nn.Linear``: weights and biases uniform on
    [-1/sqrt(fan_in), 1/sqrt(fan_in)]. A draw of k functions uses ceil(k / lat_size) networks, all
    evaluated at once with batched matrix products; the Jacobian is carried forward in closed form
    (a ReLU passes the derivative where it is active), so no autograd is needed.
    """

    name = "mlp"

    def __init__(self, X: torch.Tensor, hid_num: int, hid_size: int, lat_size: int):
        super().__init__(X)
        self.sizes = layer_sizes(self.d, hid_num, hid_size, lat_size)
        self.lat_size = lat_size
        self._bounds: dict[int, torch.Tensor] = {}

    def draw_weights(self, m: int, rng: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Weights and biases of m networks: one uniform draw for all of them, then views per layer
        (a draw per tensor would cost more than the networks' forward pass)."""
        bounds = self._bounds.get(m)
        if bounds is None:
            parts = []
            for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
                parts.append(torch.full((m * (fan_in + 1) * fan_out,), 1.0 / math.sqrt(fan_in)))
            bounds = self._bounds[m] = torch.cat(parts).to(self.X.device, self.X.dtype)
        flat = torch.rand(bounds.shape, generator=rng, device=self.X.device, dtype=self.X.dtype)
        flat = flat.mul_(2).sub_(1).mul_(bounds)
        layers, start = [], 0
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            size = m * (fan_in + 1) * fan_out
            block = flat[start:start + size].view(m, fan_in + 1, fan_out)
            layers.append((block[:, :fan_in], block[:, fan_in:]))  # weights [m, in, out], bias [m, 1, out]
            start += size
        return layers

    def forward(self, layers, with_grad: bool):
        """Values [m, n, out] and Jacobians [m, n, d, out] of m networks on X."""
        m = layers[0][0].shape[0]
        h = self.X.expand(m, self.n, self.d)
        # the Jacobian of the input w.r.t. itself: identity per point, broadcast over networks/points
        J = torch.eye(self.d, device=self.X.device, dtype=self.X.dtype).expand(1, 1, self.d, self.d) if with_grad else None
        return relu_network(h, J, layers)

    def sample(self, k, rng, with_grad=True):
        return self.sample_many([k], [rng], with_grad)[0]

    def sample_many(self, ks, rngs, with_grad=True):
        """Each draw's networks from its own stream, then all of them evaluated as one batch."""
        ms = [-(-k // self.lat_size) for k in ks]
        drawn = [self.draw_weights(m, rng) for m, rng in zip(ms, rngs)]
        layers = drawn[0] if len(drawn) == 1 else \
            [(torch.cat([d[j][0] for d in drawn]), torch.cat([d[j][1] for d in drawn])) for j in range(len(drawn[0]))]
        h, J = self.forward(layers, with_grad)
        values = h.transpose(1, 2).reshape(-1, self.n)          # units of every network, in order
        grads = J.permute(0, 3, 1, 2).reshape(-1, self.n, self.d) if with_grad else None
        out, start = [], 0
        for k, m in zip(ks, ms):
            out.append((values[start:start + k], grads[start:start + k] if with_grad else None))
            start += m * self.lat_size
        return out
