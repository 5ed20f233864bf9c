"""The symbolic discriminator (critic): its networks and its input layout (its training:
:mod:`tune_sd.engine.stacked`).

A function reaches the critic as its values on the n input points, optionally with extra
information per point (``ext``: the inputs ``x`` and/or the function's gradient). Two layouts:

- ``stack``: the value block and the extra blocks are concatenated along the point axis, so the
  main MLP sees n * (1 + ext_size) numbers;
- ``embed``: a small MLP maps each point's (1 + ext_size) numbers to one number, then the main MLP
  sees the n results. ``hid_num`` / ``hid_size`` are then pairs (embedding, main); one int serves both.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def pair(v) -> tuple[int, int]:
    """``hid_num``/``hid_size`` of a two-part network: one number for both parts, or [first, second]."""
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


def mlp(in_size: int, hid_num: int, hid_size: int, rng: torch.Generator, out_size: int = 1,
        init: bool = True) -> nn.Sequential:
    """``hid_num`` ReLU layers of ``hid_size`` and ``out_size`` outputs, with PyTorch's default
    initialisation (uniform on +-1/sqrt(fan_in)) drawn from ``rng`` instead of the global random state
    (none with ``init=False``: the weights are to be set)."""
    sizes = [in_size] + [hid_size] * hid_num + [out_size]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.utils.skip_init(nn.Linear, fan_in, fan_out)
        bound = 1.0 / math.sqrt(fan_in)
        if init:
            with torch.no_grad():
                lin.weight.uniform_(-bound, bound, generator=rng)
                lin.bias.uniform_(-bound, bound, generator=rng)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def critic_input(values: torch.Tensor, ext: list[torch.Tensor], ext_type: str) -> torch.Tensor:
    """Lay out functions for the critic.

    values [..., k, n]; each ext part [..., k, n, e] (or broadcastable, e.g. the inputs [n, d]).
    Returns [..., k, n] without ext, [..., k, n, 1 + e] for ``embed``, [..., k, (1 + e) * n] for ``stack``.
    """
    if not ext:
        return values
    parts = [values.unsqueeze(-1)] + [p.expand(*values.shape, p.shape[-1]) for p in ext]
    x = torch.cat(parts, dim=-1)
    if ext_type == "embed":
        return x
    return x.transpose(-1, -2).reshape(*values.shape[:-1], -1)


class Critic(nn.Module):
    """An MLP critic (optionally with a per-point embedding): ``critic(x)`` scores functions laid out
    by :func:`critic_input`. It draws its initial weights; training happens on stacked tensors
    (:mod:`tune_sd.engine.stacked`, where the losses, the penalty, the accuracy and Adam live), and
    :meth:`view` makes a critic whose parameters are one row of such a stack (for figures, scoring and
    Step 7): the stack's steps move them.
    """

    def __init__(self, n_points: int, *, hid_num=6, hid_size=128, ext_size: int = 0, ext_type: str = "embed",
                 rng: torch.Generator | None = None, device="cpu", init: bool = True):
        super().__init__()
        rng = rng if rng is not None else torch.Generator().manual_seed(0)
        self.n_points, self.ext_size, self.ext_type = n_points, ext_size, ext_type
        self.embedded = ext_size > 0 and ext_type == "embed"
        if self.embedded:
            (emb_num, main_num), (emb_size, main_size) = pair(hid_num), pair(hid_size)
            self.embed = mlp(1 + ext_size, emb_num, emb_size, rng, init=init)
            self.main = mlp(n_points, main_num, main_size, rng, init=init)
        else:
            self.embed = None
            self.main = mlp(n_points * (1 + ext_size), hid_num, hid_size, rng, init=init)
        self.to(device)

    @classmethod
    def from_config(cls, cfg, n_points: int, rng: torch.Generator | None = None, device="cpu",
                    init: bool = True) -> "Critic":
        d = cfg.disc
        return cls(n_points, hid_num=d.hid_num, hid_size=d.hid_size, ext_size=cfg.derived_ext_size,
                   ext_type=cfg.ext_type, rng=rng, device=device, init=init)

    @classmethod
    def view(cls, cfg, n_points: int, stack, row: int = 0) -> "Critic":
        """The critic of ``cfg`` whose parameters are row ``row`` of ``stack`` (a
        :class:`~tune_sd.engine.stacked._Stack`; they share memory, and need no gradient)."""
        critic = cls.from_config(cfg, n_points, device="meta", init=False)
        layers = [m for m in critic.modules() if isinstance(m, nn.Linear)]
        for lin, W, b in zip(layers, stack.params[0::2], stack.params[1::2]):
            lin.weight = nn.Parameter(W[row].t(), requires_grad=False)
            lin.bias = nn.Parameter(b[row].view(-1), requires_grad=False)
        return critic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Critic scores [B] of functions laid out by :func:`critic_input`."""
        if self.embed is not None:
            x = self.embed(x).squeeze(-1)
        return self.main(x).squeeze(-1)
