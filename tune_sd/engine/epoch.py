"""One epoch of SD studies whose critics are the rows of one stack, the one way every study trains
(a solo :class:`~tune_sd.engine.study.Study` is a stack of one row, a
:class:`~tune_sd.engine.population.Population` stacks its members):

    sample fake functions, sample real ones (each study from its own random stream, in this order),
    take ``iters`` critic steps of every row at once, roll back a row whose loss became non-finite,
    record each study's metrics.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .stacked import _fit, _Stack


@dataclass(frozen=True)
class Steps:
    """What a row's critic steps take: its k samples of each kind, its ``iters`` steps, its penalty
    weight and loss function."""

    k: int
    iters: int
    gp: float
    bce: bool

    @classmethod
    def of(cls, cfg, k: int | None = None, iters: int | None = None) -> "Steps":
        d = cfg.disc
        return cls(cfg.arch.lat_size if k is None else k, d.iters if iters is None else iters, d.gp,
                   d.loss_fun == "bce")


def train_epoch(stack: _Stack, studies: list) -> list[dict]:
    """One epoch of each study, whose critics are the rows of ``stack`` in order (sorted by iters,
    most first): their metrics as ``Study.step()`` returns them, or ``{"error": message}`` for a study
    whose loss became non-finite; that row and its random stream go back to the epoch's start (a
    save after the error holds its last whole epoch, not NaN weights)."""
    start = time.perf_counter()
    stack.snapshot()
    rngs = [s.rng.get_state() for s in studies]
    batch = Batch.draw(studies)
    stats = _fit(stack, batch)
    bad = [i for i, st in enumerate(stats) if not all(map(math.isfinite, st[1:4]))]
    if bad:
        stack.roll_back(bad)
        for i in bad:
            studies[i].rng.set_state(rngs[i])
    # a study's run time is the wall time of the passes it took part in
    elapsed = time.perf_counter() - start
    return [s._record(st, nonfinite, elapsed) for s, st, nonfinite in zip(studies, stats, batch.nonfinite)]


# ---------------------------------------------------------------------------------------------
# one epoch's samples, padded to a common k


class Batch:
    """The samples of one epoch's critic steps, rows in stack order: fake [P, K, ...] and real
    [S, P, K, ...] (S = 1, or the most iters where some row draws a real batch per critic step),
    zero-padded past each row's k; then one gradient-penalty mix per row and critic step (where its gp
    is on), drawn from the row's random stream after its samples."""

    def __init__(self, steps: list[Steps], fakes: list[torch.Tensor], reals: list[torch.Tensor],
                 rngs: list[torch.Generator]):
        P = len(steps)
        self.P = P
        self.k = [s.k for s in steps]
        self.K = max(self.k)
        self.iters = [s.iters for s in steps]
        self.I = self.iters[0]                                 # rows are sorted by iters, most first
        self.active = [sum(1 for it in self.iters if it > i) for i in range(self.I)]  # prefix per step
        self.gp = [s.gp for s in steps]
        self.bce = [s.bce for s in steps]
        self._pad(fakes, reals)
        # non-finite values among each row's own draws (padding is zeros: it counts nothing)
        bad_real = (~torch.isfinite(self.real)).flatten(2).sum(2)                 # [S, P]
        own_real = bad_real[0] if not self.fresh else torch.where(
            torch.tensor([r.shape[0] == 1 for r in reals], device=bad_real.device), bad_real[0], bad_real.sum(0))
        self.nonfinite = (own_real + (~torch.isfinite(self.fake)).flatten(1).sum(1)).tolist()
        self.eps = None
        if any(self.gp):
            eps_shape = (1,) * (self.fake.dim() - 2)
            self.eps = fakes[0].new_zeros((self.I, P, self.K) + eps_shape)
            for i in range(P):
                if self.gp[i]:
                    for it in range(self.iters[i]):
                        self.eps[it, i, :self.k[i]] = torch.rand((self.k[i],) + eps_shape, generator=rngs[i],
                                                                 device=self.fake.device, dtype=self.fake.dtype)
        dev, dt = self.fake.device, self.fake.dtype
        self.k_t = torch.tensor(self.k, device=dev, dtype=dt)
        self.mask = (torch.arange(self.K, device=dev)[None, :] < torch.tensor(self.k, device=dev)[:, None]) \
            if min(self.k) < self.K else None
        self.gp_t = torch.tensor(self.gp, device=dev, dtype=dt)
        self.bce_t = torch.tensor(self.bce, device=dev)

    @classmethod
    def draw(cls, studies: list) -> "Batch":
        """The epoch's samples of ``studies`` (rows in stack order), each from its own random stream:
        its fake functions, its real functions, then its penalty mixes. Studies that share a generator
        have their generator networks evaluated as one batch, and each library line is evaluated once
        for all studies that share the library."""
        P = len(studies)
        fakes = [None] * P
        by_generator: dict[int, list[int]] = {}
        for i, s in enumerate(studies):
            by_generator.setdefault(id(s.generator), []).append(i)
        for rows in by_generator.values():
            group = [studies[i] for i in rows]
            drawn = group[0].generator.sample_many([s.cfg.arch.lat_size for s in group], [s.rng for s in group],
                                                   with_grad=group[0].needs_grad)
            for i, s, (values, grads) in zip(rows, group, drawn):
                fakes[i] = s.fake_input(values, grads)
        # the real ones: each study's lines and coefficients from its own stream (after its fake ones),
        # then every line evaluated once for all studies that share a library
        batches = [s.cfg.disc.iters if s.cfg.library.iter_sample else 1 for s in studies]
        draws = [s.draw_real(b, s.cfg.arch.lat_size) for s, b in zip(studies, batches)]
        reals = [None] * P
        by_library: dict[int, list[int]] = {}
        for i, s in enumerate(studies):
            by_library.setdefault(id(s.library), []).append(i)
        for rows in by_library.values():
            first = studies[rows[0]]
            evaluated = first.library.evaluate([draws[i] for i in rows], first.X, with_grad=first.needs_grad)
            for i, (values, grads) in zip(rows, evaluated):
                _, reals[i] = studies[i].real_input(values, grads, batches[i], studies[i].cfg.arch.lat_size)
        return cls([Steps.of(s.cfg) for s in studies], fakes, reals, [s.rng for s in studies])

    def _pad(self, fakes: list[torch.Tensor], reals: list[torch.Tensor]) -> None:
        """fake [P, K, ...] and real [S, P, K, ...], zero-padded past each row's k; one stack where no
        padding is needed."""
        P, K = len(fakes), self.K
        self.fresh = any(r.shape[0] > 1 for r in reals)
        same_k = min(self.k) == K
        if same_k:
            self.fake = torch.stack(fakes)
        else:
            self.fake = fakes[0].new_zeros((P, K) + fakes[0].shape[1:])
            for i, f in enumerate(fakes):
                self.fake[i, :f.shape[0]] = f
        if same_k and len({r.shape[0] for r in reals}) == 1 and reals[0].shape[0] in (1, self.I):
            self.real = torch.stack(reals, dim=1)
            return
        self.real = fakes[0].new_zeros((self.I if self.fresh else 1, P, K) + fakes[0].shape[1:])
        for i, r in enumerate(reals):
            k = r.shape[1]
            if r.shape[0] == 1:
                self.real[:, i, :k] = r[0]
            else:
                self.real[:r.shape[0], i, :k] = r

    def real_at(self, i: int) -> torch.Tensor:
        return self.real[i if self.fresh else 0]
