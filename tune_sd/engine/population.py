"""A population: SD studies whose critics share one shape, trained as one stack of critics.

Each member is a study with its own config and seed: its own points, library, generator and random
stream (a solo :class:`Study` holds them), so it draws exactly the samples, gradient-penalty mixes and
initial weights the solo run draws. Only the critics are pooled: the P critics' weights are stacked
along a leading member axis, and every critic step is one batched forward and backward pass
(``torch.baddbmm`` over the stacked weights; the gradient penalty's input gradient is written out,
see :func:`_input_grad`) followed by one Adam update with per-member ``lr``, ``wd``, ``betas`` and
step counts: torch's fused kernel once per group of equal hyperparameters (on a GPU with many
groups, the same formulas broadcast over per-member tensors).

What may differ between members (everything but the shape key, see :func:`shape_key`):

- ``disc.iters``: rows are kept sorted by iters, most first, so the members still stepping at critic
  step i are a prefix of the stack; the others are neither computed nor updated (their Adam step count
  stays);
- ``arch.lat_size`` (k): samples are padded to the largest k and masked: losses, accuracy and the
  gradient penalty are means over the member's own k samples;
- ``disc.gp``, ``disc.loss_fun``, ``disc.lr/wd/betas``, the seed, the library and the generator.

A member's curve equals its solo run's to float rounding: the batched products sum in another
order (and the broadcast Adam rounds a last bit differently from the fused kernel in about one
element in 1500); see tests/test_population.py for the tolerances measured. Sampling stays per
member (each member's draws come from its own generator, in its solo order); members with equal
generator or library settings share those objects. On a CPU the critic steps are about 85-90 % of a
packed epoch (2 x 64 critic, P = 16), the sampling the rest.

A member's state is a ``Study.state_dict()`` ("tune_sd.study/1"): a solo study resumes it, and a
population takes a solo run's.
"""

from __future__ import annotations

import copy
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_sd.errors import ConfigError, StudyError

from .config import Config
from .critic import pair
from .study import Study, nonfinite_message

# the data keys that choose the input points: members of one population see the same points
_DATA_KEYS = ("path", "var", "n_points", "n_features", "split_sizes", "seed", "split_path", "key", "split",
              "features", "allow_pickle")


def _frozen(v):
    return tuple(_frozen(x) for x in v) if isinstance(v, (list, tuple)) else v


def shape_key(cfg: Config | dict, device="cpu") -> tuple:
    """The config values that change tensor shapes (critic depth and widths, extra information, the
    points) plus dtype and device: trials with equal keys can share one population."""
    cfg = cfg if isinstance(cfg, Config) else Config.from_dict(cfg)
    d = cfg.disc
    return (("disc.hid_num", _frozen(d.hid_num)), ("disc.hid_size", _frozen(d.hid_size)),
            ("ext", _frozen(sorted(cfg.ext or []))), ("ext_type", cfg.ext_type if cfg.ext else None),
            ("ext_size", cfg.derived_ext_size),
            *((f"data.{k}", _frozen(cfg.data[k])) for k in _DATA_KEYS),
            ("dtype", "float32"), ("device", str(torch.device(device))))


# ---------------------------------------------------------------------------------------------
# one member


@dataclass
class _Member:
    """A member: its study (config, points, library, generator, random stream, history; its critic's
    weights live in the stack) and what its solo optimizer's state dict holds besides tensors."""

    id: str
    study: Study
    names: list[str]         # the critic's parameter names, in the optimizer's order
    groups: list[dict]       # the optimizer's param_groups, as torch.optim.Adam writes them
    error: str | None = None

    @property
    def cfg(self) -> Config:
        return self.study.cfg

    @property
    def iters(self) -> int:
        return self.cfg.disc.iters


def _adam_tensors(study: Study) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], float]:
    """Weights, Adam moments and step count of a study's critic (zeros before its first step)."""
    params = [p.detach() for p in study.critic.parameters()]
    state = study.critic.optimizer.state
    if all(p in state and "exp_avg" in state[p] for p in study.critic.parameters()):
        m = [state[p]["exp_avg"].detach() for p in study.critic.parameters()]
        v = [state[p]["exp_avg_sq"].detach() for p in study.critic.parameters()]
        step = float(state[next(iter(study.critic.parameters()))]["step"])
    else:
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        step = 0.0
    return params, m, v, step


# ---------------------------------------------------------------------------------------------
# the stacked critics


class _Stack:
    """P critics of one shape as stacked tensors, rows in member order.

    ``params`` = weight [P, in, out], bias [P, 1, out] per layer, in the order of ``Critic.parameters()``
    (the embedding's layers, then the main MLP's; ``n_embed`` layers belong to the embedding). Weights
    are stored transposed from ``nn.Linear``'s [out, in], so that ``baddbmm`` and its backward read and
    write them contiguously.
    """

    def __init__(self, n_embed: int, device):
        self.n_embed = n_embed
        self.params: list[torch.Tensor] = []
        self.exp_avg: list[torch.Tensor] = []
        self.exp_avg_sq: list[torch.Tensor] = []
        # per row: Adam's step count (float32, as torch.optim.Adam(fused=True) keeps it), and
        # lr, wd, beta1, beta2, eps, as Python numbers and as a float64 tensor
        self.step = torch.zeros(0, dtype=torch.float32, device=device)
        self.hyper_rows: list[tuple[float, ...]] = []
        self.hyper = torch.zeros(0, 5, dtype=torch.float64, device=device)

    def __len__(self):
        return int(self.step.shape[0])

    @staticmethod
    def _row(t: torch.Tensor) -> torch.Tensor:
        # a Linear's weight [out, in] as [1, in, out]; its bias [out] as [1, 1, out], to broadcast in baddbmm
        return (t.t().unsqueeze(0) if t.dim() == 2 else t.view(1, 1, -1)).contiguous()

    def insert(self, row: int, params, m, v, step: float, hyper: list[float]) -> None:
        def put(old: list[torch.Tensor], new):
            rows = [self._row(t) for t in new]
            return rows if not old else [torch.cat([o[:row], r, o[row:]]) for o, r in zip(old, rows)]

        self.params, self.exp_avg, self.exp_avg_sq = put(self.params, params), put(self.exp_avg, m), \
            put(self.exp_avg_sq, v)
        self.step = torch.cat([self.step[:row], self.step.new_tensor([step]), self.step[row:]])
        self.hyper = torch.cat([self.hyper[:row], self.hyper.new_tensor([hyper]), self.hyper[row:]])
        self.hyper_rows.insert(row, tuple(hyper))

    def delete(self, row: int) -> None:
        def cut(ts):
            return [torch.cat([t[:row], t[row + 1:]]) for t in ts]

        self.params, self.exp_avg, self.exp_avg_sq = cut(self.params), cut(self.exp_avg), cut(self.exp_avg_sq)
        self.step = torch.cat([self.step[:row], self.step[row + 1:]])
        self.hyper = torch.cat([self.hyper[:row], self.hyper[row + 1:]])
        del self.hyper_rows[row]

    def member(self, row: int):
        """(weights, exp_avg, exp_avg_sq, step) of one row, in the solo critic's shapes."""
        def unrow(ts):  # back to nn.Linear's shapes
            return [(t[row].reshape(-1) if i % 2 else t[row].t()).clone(memory_format=torch.contiguous_format)
                    for i, t in enumerate(ts)]

        return unrow(self.params), unrow(self.exp_avg), unrow(self.exp_avg_sq), float(self.step[row])

    def take(self, rows: list[int] | None) -> "_Stack":
        """The stack of ``rows`` (a copy), or itself for None (every row, in order)."""
        if rows is None:
            return self
        sub = _Stack(self.n_embed, self.step.device)
        sub.hyper_rows = [self.hyper_rows[r] for r in rows]
        rows = torch.tensor(rows, device=self.step.device)
        sub.params = [t.index_select(0, rows) for t in self.params]
        sub.exp_avg = [t.index_select(0, rows) for t in self.exp_avg]
        sub.exp_avg_sq = [t.index_select(0, rows) for t in self.exp_avg_sq]
        sub.step, sub.hyper = self.step.index_select(0, rows), self.hyper.index_select(0, rows)
        return sub

    def put_back(self, rows: list[int] | None, sub: "_Stack") -> None:
        if rows is None:
            return
        rows = torch.tensor(rows, device=self.step.device)
        for mine, theirs in ((self.params, sub.params), (self.exp_avg, sub.exp_avg),
                             (self.exp_avg_sq, sub.exp_avg_sq)):
            for t, s in zip(mine, theirs):
                t.index_copy_(0, rows, s)
        self.step.index_copy_(0, rows, sub.step)


def _forward(layers: list[torch.Tensor], n_embed: int, x: torch.Tensor) -> torch.Tensor:
    """Scores [P, B] of P stacked critics on x [P, B, ...] (laid out by :func:`critic_input`)."""
    P, B = x.shape[:2]
    if n_embed:
        n = x.shape[2]
        h = _mlp(layers[:2 * n_embed], x.reshape(P, B * n, x.shape[3]))
        x = h.view(P, B, n)
    else:
        x = x.reshape(P, B, -1)
    return _mlp(layers[2 * n_embed:], x).squeeze(-1)


def _mlp(layers, h, masks: list | None = None):
    last = len(layers) // 2 - 1
    for j in range(last + 1):
        W, b = layers[2 * j], layers[2 * j + 1]
        h = torch.baddbmm(b, h, W)
        if j < last:
            if masks is not None:
                masks.append(h > 0)  # where the ReLU passes the derivative
            h = torch.relu(h)
    return h


def _input_grad(layers: list[torch.Tensor], n_embed: int, x: torch.Tensor) -> torch.Tensor:
    """d sum(critic(x)) / d x [P, B, ...] of P stacked critics, written out: ReLU masks from a forward
    pass without autograd, then the chain of weights back from the output. It is computed transposed,
    g^T = W @ g_out^T, so that the weights enter every product as the first operand in their stored
    layout: the penalty's gradient then reaches them laid out like the loss's, and the two add up
    without transposing (a second differentiation of the forward would hand it over transposed).
    The penalty depends on the biases only through the masks, which are locally constant."""
    P, B = x.shape[:2]
    emb_masks: list[torch.Tensor] = []
    main_masks: list[torch.Tensor] = []
    with torch.no_grad():
        if n_embed:
            n = x.shape[2]
            h = _mlp(layers[:2 * n_embed], x.reshape(P, B * n, x.shape[3]), emb_masks).view(P, B, n)
        else:
            h = x.reshape(P, B, -1)
        _mlp(layers[2 * n_embed:], h, main_masks)
    gt = _chain_back(layers[2 * n_embed::2], main_masks, B)           # [P, main inputs, B]
    if n_embed:
        n = x.shape[2]
        gt = gt.transpose(1, 2).reshape(P, 1, B * n)                   # per point: d out / d embedding
        gt = _chain_back(layers[:2 * n_embed:2], emb_masks, B * n, gt)  # [P, 1 + e, B * n]
    return gt.transpose(1, 2).reshape(x.shape)


def _chain_back(weights, masks, B, gt=None):
    """Back through an MLP from its one output, transposed: gt [P, 1, B] (ones when None) to the
    input's [P, inputs, B]; weights [P, in, out], masks [P, B, hidden]."""
    for j in range(len(weights) - 1, -1, -1):
        W = weights[j]
        gt = W.expand(-1, -1, B) if gt is None else torch.bmm(W, gt)
        if j > 0:
            gt = gt * masks[j - 1].transpose(1, 2)
    return gt


# Up to this many distinct (lr, wd, betas, eps) among the stepping members, Adam runs as torch's
# fused kernel once per group (one pass over the weights, bit for bit the solo run's update);
# beyond it on a GPU, as one set of broadcast tensor operations for all members (about ten passes,
# but a constant number of kernel launches). On a CPU the fused kernel always wins.
FUSED_GROUPS = 16


def _adam(stack: _Stack, grads: list[torch.Tensor], n: int) -> None:
    """One Adam step (L2 weight decay, as ``torch.optim.Adam(fused=True)`` computes it) of rows [0, n),
    each row with its own hyperparameters and step count."""
    with torch.no_grad():
        stack.step[:n] += 1
        groups: dict[tuple, list[int]] = {}
        for r in range(n):
            groups.setdefault(stack.hyper_rows[r], []).append(r)
        if stack.step.device.type == "cpu" or len(groups) <= FUSED_GROUPS:
            # the kernel reads gradients as contiguous memory; bmm's backward may hand transposed ones
            grads = [g.contiguous() for g in grads]
            for (lr, wd, beta1, beta2, eps), rows in groups.items():
                _fused_adam(stack, grads, rows, lr, wd, beta1, beta2, eps)
        else:
            _broadcast_adam(stack, grads, n)


def _fused_adam(stack: _Stack, grads, rows: list[int], lr, wd, beta1, beta2, eps) -> None:
    # each row's slice of a stacked tensor is a contiguous tensor of the solo critic's size
    def per_row(ts):
        rows_of = [t.unbind(0) for t in ts]  # all views at once: cheaper than one index per row
        return [views[r] for r in rows for views in rows_of]

    steps = stack.step.unbind(0)
    torch._fused_adam_(per_row(stack.params), per_row(grads), per_row(stack.exp_avg), per_row(stack.exp_avg_sq),
                       [], [steps[r] for r in rows for _ in stack.params], lr=lr, beta1=beta1, beta2=beta2,
                       weight_decay=wd, eps=eps, amsgrad=False, maximize=False)


def _broadcast_adam(stack: _Stack, grads, n: int) -> None:
    """The fused kernel's formulas with per-row coefficients: its bias corrections in float64, the
    moments' updates as ``lerp`` and ``addcmul`` round them (they agree with the kernel to the last
    bit in all but about one element in 1500, and there by one unit in the last place)."""
    step = stack.step[:n].double()
    lr, wd, b1, b2, eps = stack.hyper[:n].unbind(1)
    dt = stack.params[0].dtype

    neg_step_size = (-lr / (1 - b1 ** step)).to(dt)
    bc2_sqrt = (1 - b2 ** step).sqrt().to(dt)
    wd_, w1, b2_, c2, eps_ = wd.to(dt), (1 - b1).to(dt), b2.to(dt), (1 - b2).to(dt), eps.to(dt)
    for p, g, m, v in zip(stack.params, grads, stack.exp_avg, stack.exp_avg_sq):
        p, m, v = p[:n], m[:n], v[:n]
        shape = (n,) + (1,) * (p.dim() - 1)
        g = torch.addcmul(g, p, wd_.view(shape))
        m.lerp_(g, w1.view(shape))
        v.mul_(b2_.view(shape)).addcmul_(g * c2.view(shape), g)
        denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(eps_.view(shape))
        p.add_(neg_step_size.view(shape) * m / denom)


# ---------------------------------------------------------------------------------------------
# the population


class Population:
    """Members of one shape key, each reproducing the solo :class:`Study` with its config and seed."""

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self._members: dict[str, _Member] = {}
        self._rows: list[str] = []           # member ids in stack order: most iters first
        self._stack: _Stack | None = None
        self._shared: dict[tuple, object] = {}   # generators and libraries, by their settings
        self.key: tuple | None = None

    # ------------------------------------------------------------------ membership
    def add(self, member_id: str, cfg: Config | dict, state: dict | None = None) -> None:
        """A member joins, fresh (as ``Study(cfg)`` starts) or from ``state`` (a ``Study.state_dict()``)."""
        cfg = cfg if isinstance(cfg, Config) else Config.from_dict(cfg)
        if member_id in self._members:
            raise ConfigError(f"population: member {member_id!r} is already in it")
        key = shape_key(cfg, self.device)
        if self.key is not None and key != self.key:
            diff = ", ".join(f"{a[0]} {a[1]!r} (population: {b[1]!r})" for a, b in zip(key, self.key) if a != b)
            raise ConfigError(f"population: member {member_id!r} has another shape: {diff}")
        study = Study(cfg, device=self.device)
        if state is not None:
            study.load_state_dict(state)
        self._share(study)
        critic = study.critic
        names = [name for name, _ in critic.named_parameters()]
        groups = critic.optimizer.state_dict()["param_groups"]
        params, m, v, step = _adam_tensors(study)
        g = groups[0]
        hyper = [g["lr"], g["weight_decay"], g["betas"][0], g["betas"][1], g["eps"]]
        n_embed = len(critic.embed) // 2 + 1 if critic.embed is not None else 0
        if self._stack is None:
            self._stack = _Stack(n_embed, self.device)
        row = sum(1 for r in self._rows if self._members[r].iters >= cfg.disc.iters)
        self._stack.insert(row, params, m, v, step, hyper)
        study.critic = None  # its weights now live in the stack
        self._members[member_id] = _Member(member_id, study, names, groups)
        self._rows.insert(row, member_id)
        self.key = key

    def _share(self, study: Study) -> None:
        """Members with equal generator or library settings share one object (a GP generator holds a
        factor of the (1 + d) n x (1 + d) n covariance, some MB per member): both are read-only."""
        cfg = study.cfg
        gen_key = ("generator", cfg.generator_type, _frozen(cfg.arch.hid_num), _frozen(cfg.arch.hid_size),
                   cfg.arch.lat_size, cfg.generator.length_scale, cfg.generator.variance, cfg.generator.jitter)
        lib_key = ("library", str(study.library.path), study.library.var, study.n_features,
                   tuple(f.text for f in study.library.functions))
        study.generator = self._shared.setdefault(gen_key, study.generator)
        study.library = self._shared.setdefault(lib_key, study.library)

    def remove(self, member_id: str) -> dict:
        """The member leaves; returns its state (``Study.state_dict()`` format)."""
        state = self.state_dict(member_id)
        self._stack.delete(self._rows.index(member_id))
        self._rows.remove(member_id)
        del self._members[member_id]
        if not self._members:
            self.key, self._stack, self._shared = None, None, {}
        return state

    def _member(self, member_id: str) -> _Member:
        try:
            return self._members[member_id]
        except KeyError:
            raise StudyError(f"population: no member {member_id!r}") from None

    @property
    def members(self) -> list[str]:
        return list(self._members)

    def __len__(self) -> int:
        return len(self._members)

    # ------------------------------------------------------------------ training
    def step(self, member_ids: list[str] | None = None) -> dict[str, dict]:
        """One epoch for each listed member (default: every member not done), in one batched pass;
        their metrics as ``Study.step()`` returns them, or ``{"error": message}`` for a member whose
        loss became non-finite (it stays until removed, and keeps reporting the error)."""
        ids = [m for m in self._members if not self.done(m)] if member_ids is None else list(member_ids)
        members = [self._member(m) for m in ids]
        out = {m.id: {"error": m.error} for m in members if m.error is not None}
        stepping = set(m.id for m in members if m.error is None)
        rows = [r for r in self._rows if r in stepping]  # stack order: most iters first
        if rows:
            out.update(self._epoch([self._members[r] for r in rows]))
        return {m: out[m] for m in ids}

    def _epoch(self, members: list[_Member]) -> dict[str, dict]:
        start = time.perf_counter()
        full = len(members) == len(self._rows)
        index = None if full else [self._rows.index(m.id) for m in members]
        stack = self._stack.take(index)
        batch = _Batch(members, self.device)
        stats = _fit(stack, batch)
        self._stack.put_back(index, stack)
        elapsed = time.perf_counter() - start
        return {m.id: self._record(m, stats[i], batch.nonfinite[i], elapsed) for i, m in enumerate(members)}

    def _record(self, member: _Member, stats: tuple, nonfinite: int, elapsed: float) -> dict:
        accs, loss_real, loss_fake, loss_gp, grad_max = stats
        study = member.study
        if not all(map(math.isfinite, (loss_real, loss_fake, loss_gp))):
            member.error = nonfinite_message(study, loss_real, loss_fake, loss_gp, nonfinite)
            return {"error": member.error}
        study.epoch += 1
        # a packed member's run time is the wall time of the passes it took part in
        study.elapsed += elapsed
        acc_mean = sum(accs) / len(accs)
        study._window.append(acc_mean)
        metrics = {
            "epoch": study.epoch, "acc": accs[-1], "acc_mean": acc_mean,
            "avg_acc": sum(study._window) / len(study._window), "loss_real": loss_real,
            "loss_fake": loss_fake, "loss_gp": loss_gp, "grad_max": grad_max,
            "nonfinite": nonfinite, "time_s": study.elapsed,
        }
        for m in study.metrics:
            study.history[m].append(metrics[m])
        return metrics

    # ------------------------------------------------------------------ per member
    def state_dict(self, member_id: str) -> dict:
        """The member's state as ``Study.state_dict()`` writes it: a solo study resumes it."""
        member = self._member(member_id)
        study = member.study
        params, m, v, step = self._stack.member(self._rows.index(member_id))
        critic = OrderedDict(zip(member.names, params))
        opt_state = {}
        if step > 0:
            step_t = torch.tensor(step, dtype=torch.float32, device=self.device)
            opt_state = {i: {"step": step_t.clone(), "exp_avg": a, "exp_avg_sq": b}
                         for i, (a, b) in enumerate(zip(m, v))}
        return {
            "format": "tune_sd.study/1",
            "config": study.cfg.to_dict(),
            "epoch": study.epoch,
            "elapsed": study.elapsed,
            "history": {k: torch.tensor(h, dtype=torch.float64) for k, h in study.history.items()},
            "critic": critic,
            "optimizer": {"state": opt_state, "param_groups": copy.deepcopy(member.groups)},
            "rng": study.rng.get_state(),
        }

    def epoch(self, member_id: str) -> int:
        return self._member(member_id).study.epoch

    def config(self, member_id: str) -> Config:
        """The member's run config."""
        return self._member(member_id).study.cfg

    def done(self, member_id: str) -> bool:
        return self._member(member_id).study.done

    def history(self, member_id: str) -> dict[str, list]:
        return self._member(member_id).study.history

    def study(self, member_id: str) -> Study:
        """A solo study rebuilt from the member's state (for figures and the like)."""
        return Study.from_state(self.state_dict(member_id), device=self.device)


# ---------------------------------------------------------------------------------------------
# one epoch's samples, padded to a common k


class _Batch:
    """The epoch's samples of the stepping members (rows in stack order), drawn from each member's
    own random stream exactly as its solo ``Study.step`` draws them: fake functions, real functions,
    then one gradient-penalty mix per critic step (when its gp is on)."""

    def __init__(self, members: list[_Member], device):
        P = len(members)
        self.P = P
        self.k = [m.cfg.arch.lat_size for m in members]
        self.K = max(self.k)
        self.iters = [m.iters for m in members]
        self.I = self.iters[0]                                 # rows are sorted by iters, most first
        self.active = [sum(1 for it in self.iters if it > i) for i in range(self.I)]  # prefix per step
        self.gp = [m.cfg.disc.gp for m in members]
        self.bce = [m.cfg.disc.loss_fun == "bce" for m in members]
        fakes, reals = [], []
        for m in members:
            s = m.study
            _, fake = s.sample_fake(m.cfg.arch.lat_size)
            _, real = s.sample_real(m.iters if m.cfg.library.iter_sample else 1, m.cfg.arch.lat_size)
            fakes.append(fake)
            reals.append(real)
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


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None, k: torch.Tensor) -> torch.Tensor:
    """Mean over each row's own samples: x [P, K] -> [P]."""
    if mask is None:
        return x.mean(1)
    return torch.where(mask, x, 0).sum(1) / k


def _losses(pred_real, pred_fake, batch: _Batch, mask, k):
    """Per-member (loss_real, loss_fake), each member with its own loss function."""
    parts = []
    if not all(batch.bce[:pred_real.shape[0]]):
        parts.append((-_masked_mean(pred_real, mask, k), _masked_mean(pred_fake, mask, k)))
    if any(batch.bce[:pred_real.shape[0]]):
        parts.append((
            _masked_mean(F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real), reduction="none"),
                         mask, k),
            _masked_mean(F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake), reduction="none"),
                         mask, k)))
    if len(parts) == 1:
        return parts[0]
    bce = batch.bce_t[:pred_real.shape[0]]
    return torch.where(bce, parts[1][0], parts[0][0]), torch.where(bce, parts[1][1], parts[0][1])


def _fit(stack: _Stack, batch: _Batch) -> list[tuple]:
    """``iters`` critic steps of every member at once; per member (accs, loss_real, loss_fake,
    loss_gp, grad_max) of its own steps, as ``Critic.fit`` reports them."""
    n_embed, K = stack.n_embed, batch.K
    accs, finals = [], {}
    for i in range(batch.I):
        n = batch.active[i]
        leaves = [p[:n].detach().requires_grad_() for p in stack.params]
        real, fake = batch.real_at(i)[:n], batch.fake[:n]
        mask = batch.mask[:n] if batch.mask is not None else None
        k = batch.k_t[:n]
        pred = _forward(leaves, n_embed, torch.cat([real, fake], dim=1))
        pred_real, pred_fake = pred[:, :K], pred[:, K:]
        loss_real, loss_fake = _losses(pred_real, pred_fake, batch, mask, k)
        loss = loss_real + loss_fake
        gp = batch.gp_t[:n]
        with_gp = batch.eps is not None and any(batch.gp[:n])
        if with_gp:
            eps = batch.eps[i, :n]
            interp = eps * real + (1 - eps) * fake
            g = _input_grad(leaves, n_embed, interp)
            loss_gp = _masked_mean((g.flatten(2).norm(dim=2) - 1).pow(2), mask, k)
            loss = loss + gp * loss_gp
            loss_gp = torch.where(gp > 0, loss_gp.detach(), 0)
        else:
            loss_gp = loss_real.new_zeros(n)
        grads = torch.autograd.grad(loss.sum(), leaves)
        _adam(stack, grads, n)
        with torch.no_grad():
            if mask is None:
                correct = (pred_real > 0).sum(1) + (pred_fake <= 0).sum(1)
            else:
                correct = ((pred_real > 0) & mask).sum(1) + ((pred_fake <= 0) & mask).sum(1)
            accs.append(correct / (2 * k))
            # members whose last step this is: rows [active[i + 1], n)
            lo = batch.active[i + 1] if i + 1 < batch.I else 0
            if lo < n:
                grad_max = torch.stack([g[lo:n].flatten(1).abs().amax(1) for g in grads]).amax(0)
                finals[i] = torch.stack([loss_real[lo:n], loss_fake[lo:n], loss_gp[lo:n], grad_max], 1)
    acc_rows = [a.tolist() for a in accs]
    final_rows = torch.cat([finals[i] for i in sorted(finals, reverse=True)]).tolist()
    out = []
    for r in range(batch.P):
        out.append(([acc_rows[i][r] for i in range(batch.iters[r])], *final_rows[r]))
    return out


# ---------------------------------------------------------------------------------------------
# how many to pack


def pack_size(cfg: Config | dict, device="cpu") -> int:
    """How many members of this shape to pack in one population where it pays (1: do not pack).

    From benchmarks/population.py (one CPU thread; member-epochs per CPU second against one solo
    study): the plain 2 x 64 critic (about 49 000 multiply-adds per function) gains about 2.1x from
    P = 4 on, 2.5x at 64; the 6 x 128 critic (about 172 000) about 2x from P = 4 on (no more at 16 or
    64); an embedding on every point (``ext_type: embed``, [2, 4] x [64, 512]: about 4 million)
    gains nothing (1.0x at P = 4). Through Tune (benchmarks/pack.py, from process start, idle 2-core
    machine) the 6 x 128 critic's engine gain does not survive the packed trials' start-up: 8 trials
    x 1500 epochs ran at 0.98x packed (P = 4) against unpacked, while 32 plain critics x 2000 epochs
    ran at 1.53x (P = 16). So a CPU packs only critics up to 100 000 multiply-adds per evaluation;
    ``--pack P`` still packs a bigger one for long runs. On a GPU every shape is expected to gain from
    many members (measured by benchmarks/gpu_check.sh).
    """
    cfg = cfg if isinstance(cfg, Config) else Config.from_dict(cfg)
    if torch.device(device).type == "cuda":
        return 256
    work = critic_work(cfg)
    return 16 if work <= 100_000 else 1


def critic_work(cfg: Config) -> int:
    """Multiply-adds of one critic evaluation of one function under ``cfg`` (the point count of the
    default data's split; 700 for data read from a file, whose size is not known here)."""
    n = cfg.data.split_sizes[("train", "val", "test").index(cfg.data.split)] if cfg.data.path is None else 700
    e = cfg.derived_ext_size
    if e and cfg.ext_type == "embed":
        (en, mn), (es, ms) = pair(cfg.disc.hid_num), pair(cfg.disc.hid_size)
        return n * _mlp_work(1 + e, en, es) + _mlp_work(n, mn, ms)
    return _mlp_work(n * (1 + e), cfg.disc.hid_num, cfg.disc.hid_size)


def _mlp_work(inputs: int, num: int, size: int) -> int:
    sizes = [inputs] + [size] * num + [1]
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
