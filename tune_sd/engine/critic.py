"""The symbolic discriminator (critic): its networks, its input layout and its training step.

A function reaches the critic as its values on the n input points, optionally with extra
information per point (``ext``: the inputs ``x`` and/or the function's gradient). Two layouts:

- ``stack``: the value block and the extra blocks are concatenated along the point axis, so the
  main MLP sees n * (1 + ext_size) numbers;
- ``embed``: a small MLP maps each point's (1 + ext_size) numbers to one number, then the main MLP
  sees the n results. ``hid_num`` / ``hid_size`` are then pairs (embedding, main); one int serves both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def pair(v) -> tuple[int, int]:
    """``hid_num``/``hid_size`` of a two-part network: one number for both parts, or [first, second]."""
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


def mlp(in_size: int, hid_num: int, hid_size: int, rng: torch.Generator, out_size: int = 1) -> nn.Sequential:
    """``hid_num`` ReLU layers of ``hid_size`` and ``out_size`` outputs, with PyTorch's default
    initialisation (uniform on +-1/sqrt(fan_in)) drawn from ``rng`` instead of the global random state."""
    sizes = [in_size] + [hid_size] * hid_num + [out_size]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.utils.skip_init(nn.Linear, fan_in, fan_out)
        bound = 1.0 / math.sqrt(fan_in)
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


@dataclass
class FitStats:
    """What one epoch of critic steps measured, as Python numbers (one device sync per epoch)."""

    accs: list[float]
    loss_real: float
    loss_fake: float
    loss_gp: float
    grad_max: float

    @property
    def acc(self) -> float:
        return self.accs[-1]

    @property
    def acc_mean(self) -> float:
        return sum(self.accs) / len(self.accs)


class Critic(nn.Module):
    """An MLP critic (optionally with a per-point embedding) and its Adam optimizer.

    ``fit(real, fake)`` takes ``iters`` optimizer steps. Loss ``wasserstein``: -mean(critic(real)) +
    mean(critic(fake)); ``bce``: binary cross-entropy with logits (real = 1, fake = 0). Plus ``gp`` x
    gradient penalty on per-sample interpolations of real and fake. A sample counts as classified
    correctly when the critic's output is > 0 for real and <= 0 for fake.
    """

    def __init__(self, n_points: int, *, hid_num=6, hid_size=128, ext_size: int = 0, ext_type: str = "embed",
                 lr=1e-4, wd=1e-4, betas=(0.9, 0.999), iters=5, gp=1e-5, loss_fun="wasserstein",
                 rng: torch.Generator | None = None, device="cpu"):
        super().__init__()
        rng = rng if rng is not None else torch.Generator().manual_seed(0)
        self.n_points, self.ext_size, self.ext_type = n_points, ext_size, ext_type
        self.embedded = ext_size > 0 and ext_type == "embed"
        if self.embedded:
            (emb_num, main_num), (emb_size, main_size) = pair(hid_num), pair(hid_size)
            self.embed = mlp(1 + ext_size, emb_num, emb_size, rng)
            self.main = mlp(n_points, main_num, main_size, rng)
        else:
            self.embed = None
            self.main = mlp(n_points * (1 + ext_size), hid_num, hid_size, rng)
        self.to(device)  # before the optimizer exists, so that it holds the parameters on the device
        # fused Adam: one kernel for all parameters, half the time of the default on CPU
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=wd, betas=tuple(betas), fused=True)
        self.iters, self.gp, self.loss_fun = iters, gp, loss_fun

    @classmethod
    def from_config(cls, cfg, n_points: int, rng: torch.Generator | None = None, device="cpu") -> "Critic":
        d = cfg.disc
        return cls(n_points, hid_num=d.hid_num, hid_size=d.hid_size, ext_size=cfg.derived_ext_size,
                   ext_type=cfg.ext_type, lr=d.lr, wd=d.wd, betas=d.betas, iters=d.iters, gp=d.gp,
                   loss_fun=d.loss_fun, rng=rng, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Critic scores [B] of functions laid out by :func:`critic_input`."""
        if self.embed is not None:
            x = self.embed(x).squeeze(-1)
        return self.main(x).squeeze(-1)

    def losses(self, pred_real: torch.Tensor, pred_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.loss_fun == "bce":
            return (F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real)),
                    F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake)))
        return -pred_real.mean(), pred_fake.mean()

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """mean over samples of (||d critic / d input||_2 - 1)^2 at eps * real + (1 - eps) * fake."""
        k = fake.shape[0]
        eps = torch.rand((k,) + (1,) * (fake.dim() - 1), generator=rng, device=fake.device, dtype=fake.dtype)
        interp = (eps * real[:k] + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self(interp).sum(), interp, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()

    @staticmethod
    def accuracy(pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
        correct = (pred_real > 0).sum() + (pred_fake <= 0).sum()
        return correct / (pred_real.numel() + pred_fake.numel())

    def fit(self, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator) -> FitStats:
        """``iters`` optimizer steps. ``real`` is [S, k, ...]: S = 1 (one batch for every step) or
        S = iters (a fresh batch per step); ``fake`` is [k, ...]."""
        accs = []
        zero = fake.new_zeros(())
        for i in range(self.iters):
            batch_real = real[i if real.shape[0] > 1 else 0]
            self.optimizer.zero_grad(set_to_none=True)
            pred = self(torch.cat([batch_real, fake]))  # one pass for both: no batch statistics to mix
            pred_real, pred_fake = pred[:batch_real.shape[0]], pred[batch_real.shape[0]:]
            loss_real, loss_fake = self.losses(pred_real, pred_fake)
            loss = loss_real + loss_fake
            loss_gp = self.gradient_penalty(batch_real, fake, rng) if self.gp else zero
            if self.gp:
                loss = loss + self.gp * loss_gp
            loss.backward()
            self.optimizer.step()
            accs.append(self.accuracy(pred_real.detach(), pred_fake.detach()))
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        grad_max = torch.stack(torch._foreach_norm(grads, float("inf"))).max() if grads else zero
        numbers = torch.stack(accs + [loss_real.detach(), loss_fake.detach(), loss_gp.detach(), grad_max]).tolist()
        return FitStats(numbers[:self.iters], *numbers[self.iters:])
