"""One epoch of SD studies whose critics are rows of one stack: their samples, drawn from each
study's own random stream in its order.
"""

from __future__ import annotations

import torch


# ---------------------------------------------------------------------------------------------
# one epoch's samples, padded to a common k


class _Batch:
    """The epoch's samples of the stepping members (rows in stack order), drawn from each member's
    own random stream exactly as its solo ``Study.step`` draws them: fake functions, real functions,
    then one gradient-penalty mix per critic step (when its gp is on)."""

    def __init__(self, members: list, device):
        P = len(members)
        self.P = P
        self.k = [m.cfg.arch.lat_size for m in members]
        self.K = max(self.k)
        self.iters = [m.iters for m in members]
        self.I = self.iters[0]                                 # rows are sorted by iters, most first
        self.active = [sum(1 for it in self.iters if it > i) for i in range(self.I)]  # prefix per step
        self.gp = [m.cfg.disc.gp for m in members]
        self.bce = [m.cfg.disc.loss_fun == "bce" for m in members]
        # the fake functions of members that share a generator, drawn each from its own stream and
        # evaluated as one batch; then each member's real ones (after its fake ones, as solo)
        fakes = [None] * P
        by_generator: dict[int, list[int]] = {}
        for i, m in enumerate(members):
            by_generator.setdefault(id(m.study.generator), []).append(i)
        for rows in by_generator.values():
            studies = [members[i].study for i in rows]
            drawn = studies[0].generator.sample_many([s.cfg.arch.lat_size for s in studies], [s.rng for s in studies],
                                                     with_grad=studies[0].needs_grad)
            for i, s, (values, grads) in zip(rows, studies, drawn):
                fakes[i] = s.fake_input(values, grads)
        # the real ones: each member's lines and coefficients from its own stream, then every line
        # evaluated once for all members that share a library
        batches = [m.iters if m.cfg.library.iter_sample else 1 for m in members]
        draws = [m.study.draw_real(b, m.cfg.arch.lat_size) for m, b in zip(members, batches)]
        reals = [None] * P
        by_library: dict[int, list[int]] = {}
        for i, m in enumerate(members):
            by_library.setdefault(id(m.study.library), []).append(i)
        for rows in by_library.values():
            first = members[rows[0]].study
            evaluated = first.library.evaluate([draws[i] for i in rows], first.X, with_grad=first.needs_grad)
            for i, (values, grads) in zip(rows, evaluated):
                _, reals[i] = members[i].study.real_input(values, grads, batches[i], members[i].cfg.arch.lat_size)
        self._pad(fakes, reals)
        # non-finite values among each member's own draws (padding is zeros: it counts nothing)
        bad_real = (~torch.isfinite(self.real)).flatten(2).sum(2)                 # [S, P]
        own_real = bad_real[0] if not self.fresh else torch.where(
            torch.tensor([r.shape[0] == 1 for r in reals], device=bad_real.device), bad_real[0], bad_real.sum(0))
        self.nonfinite = (own_real + (~torch.isfinite(self.fake)).flatten(1).sum(1)).tolist()
        # the gradient-penalty mixes, drawn after the samples as Critic.fit draws them
        self.eps = None
        if any(self.gp):
            eps_shape = (1,) * (self.fake.dim() - 2)
            self.eps = fakes[0].new_zeros((self.I, P, self.K) + eps_shape)
            for i, m in enumerate(members):
                if self.gp[i]:
                    for it in range(self.iters[i]):
                        self.eps[it, i, :self.k[i]] = torch.rand((self.k[i],) + eps_shape, generator=m.study.rng,
                                                                 device=self.fake.device, dtype=self.fake.dtype)
        dev, dt = self.fake.device, self.fake.dtype
        self.k_t = torch.tensor(self.k, device=dev, dtype=dt)
        self.mask = (torch.arange(self.K, device=dev)[None, :] < torch.tensor(self.k, device=dev)[:, None]) \
            if min(self.k) < self.K else None
        self.gp_t = torch.tensor(self.gp, device=dev, dtype=dt)
        self.bce_t = torch.tensor(self.bce, device=dev)

    def _pad(self, fakes: list[torch.Tensor], reals: list[torch.Tensor]) -> None:
        """fake [P, K, ...] and real [S, P, K, ...] (S = 1, or I where some member draws a real batch
        per critic step), zero-padded past each member's k; one stack where no padding is needed."""
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
