"""The network of Step 7: inputs -> latent features (``mlp`` or ``dsn``) -> output (``mlp``), trainable.

The notebook's ``arch`` dict describes it: ``hid_type`` (latent part, output part), ``hid_num`` and
``hid_size`` as pairs (or one number for both), ``lat_size`` latent units, ``out_size`` outputs.
Weights are drawn from an explicit generator, so a run's seed fixes them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .critic import mlp, pair
from .generators._base import relu_network


class DSNLatent(nn.Module):
    """A disentangled sparsity network: latent unit j is ``mlp_j(alpha_j * x)``, one small ReLU MLP
    per unit on the input times its mask ``alpha_j``. Initialised as the DSN generator draws them
    (alpha ~ N(0, 1), weights N(0, 1) * sqrt(6 / (fan_in + fan_out))) but with biases, zero at the
    start, that training moves: without them a unit could only be two lines meeting at x = 0.
    All units run at once as batched matrix products."""

    def __init__(self, in_size: int, lat_size: int, hid_num: int, hid_size: int, rng: torch.Generator):
        super().__init__()
        sizes = [in_size] + [hid_size] * hid_num + [1]
        self.alpha = nn.Parameter(torch.randn(lat_size, 1, in_size, generator=rng))
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(lat_size, a, b, generator=rng) * math.sqrt(6.0 / (a + b)))
            for a, b in zip(sizes[:-1], sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(lat_size, 1, b)) for b in sizes[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0) * self.alpha                      # [lat, n, d]
        h, _ = relu_network(h, None, list(zip(self.weights, self.biases)))
        return h[..., 0].t()                                  # [n, lat]


class LatentModel(nn.Module):
    """``forward(x)`` -> (prediction [n, out_size], latent features [n, lat_size])."""

    def __init__(self, in_size: int, lat_size: int, out_size: int = 1, *, kind: str = "mlp",
                 hid_num=(2, 0), hid_size=32, rng: torch.Generator | None = None):
        super().__init__()
        rng = rng if rng is not None else torch.Generator().manual_seed(0)
        (lat_num, out_num), (lat_hid, out_hid) = pair(hid_num), pair(hid_size)
        self.kind = kind.lower()
        if self.kind == "dsn":
            self.latent = DSNLatent(in_size, lat_size, lat_num, lat_hid, rng)
        elif self.kind == "mlp":
            self.latent = mlp(in_size, lat_num, lat_hid, rng, out_size=lat_size)
        else:
            raise ValueError(f"latent part: {kind!r} (allowed: mlp, dsn)")
        self.output = mlp(lat_size, out_num, out_hid, rng, out_size=out_size)

    @classmethod
    def from_config(cls, cfg, in_size: int, rng: torch.Generator) -> "LatentModel":
        a = cfg.arch
        return cls(in_size, a.lat_size, a.out_size, kind=a.hid_type[0], hid_num=a.hid_num, hid_size=a.hid_size,
                   rng=rng)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.latent(x)
        return self.output(h), h
