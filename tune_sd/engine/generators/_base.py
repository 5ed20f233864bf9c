"""What every generator of fake functions provides."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Generator(ABC):
    """Draws fresh fake functions on fixed input points ``X`` [n, d].

    ``sample(k)`` returns the values [k, n] and, when asked, the input-gradients [k, n, d] of k
    latent features of freshly drawn, untrained networks (or GP samples). All the work is batched
    tensor work: no module is built per draw and there is no loop over latent units or points.
    """

    name = "base"

    def __init__(self, X: torch.Tensor):
        self.X = X
        self.n, self.d = X.shape

    @abstractmethod
    def sample(self, k: int, rng: torch.Generator, with_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        ...

    def _uniform(self, shape, bound, rng):
        # uniform on [-bound, bound), drawn on the device of X from the run's generator
        out = torch.rand(shape, generator=rng, device=self.X.device, dtype=self.X.dtype)
        return out.mul_(2).sub_(1).mul_(bound)
