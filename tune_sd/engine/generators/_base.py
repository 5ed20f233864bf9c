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

    def sample_many(self, ks: list[int], rngs: list[torch.Generator], with_grad: bool = True) -> list[tuple]:
        """``sample(k, rng)`` for each pair (a population's members, each with its own stream): each
        draw as ``sample`` makes it. Generators whose networks can be evaluated together override this
        to run them as one batch."""
        return [self.sample(k, rng, with_grad) for k, rng in zip(ks, rngs)]


def relu_network(h: torch.Tensor, J: torch.Tensor | None, layers) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Batched ReLU networks: ``h`` [m, n, in] through ``layers`` (W [m, in, out], bias [m, 1, out] or
    None), ReLU between layers. The Jacobian w.r.t. the inputs, ``J`` [., n, d, in], is carried forward
    in closed form (a ReLU passes the derivative where it is active); None skips it."""
    last = len(layers) - 1
    for i, (W, b) in enumerate(layers):
        h = torch.bmm(h, W) if b is None else torch.baddbmm(b, h, W)
        if J is not None:
            J = J @ W.unsqueeze(1)
        if i < last:
            if J is not None:
                J = J * (h > 0).unsqueeze(2)
            h = torch.relu(h)
    return h, J
