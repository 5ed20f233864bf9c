"""The critics' training: P critics of one shape as stacked tensors, their batched forward pass, the
gradient penalty's input gradient written out, the critic steps of every row at once, and Adam with
per-row hyperparameters. A solo :class:`~tune_sd.engine.study.Study` is a stack of one row; a
:class:`~tune_sd.engine.population.Population` stacks its members'. :class:`~tune_sd.engine.critic.Critic`
is an ``nn.Module`` view of one row (figures, scoring, Step 7).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F

# Adam's epsilon (torch.optim.Adam's default; the notebook never set it)
ADAM_EPS = 1e-8


def hyper_of(disc) -> list[float]:
    """A row's Adam hyperparameters (lr, wd, beta1, beta2, eps) from a config's ``disc`` section."""
    return [float(disc.lr), float(disc.wd), float(disc.betas[0]), float(disc.betas[1]), ADAM_EPS]



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
        self.device = torch.device(device)
        self.params: list[torch.Tensor] = []
        self.exp_avg: list[torch.Tensor] = []
        self.exp_avg_sq: list[torch.Tensor] = []
        # per row: Adam's step count (float32, as torch.optim.Adam(fused=True) keeps it), and
        # lr, wd, beta1, beta2, eps, as Python numbers and as a float64 tensor
        self.step = torch.zeros(0, dtype=torch.float32, device=device)
        self.hyper_rows: list[tuple[float, ...]] = []
        self.hyper = torch.zeros(0, 5, dtype=torch.float64, device=device)
        self._before: list[torch.Tensor] | None = None  # what snapshot() copied

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

    @classmethod
    def of(cls, critic, hyper: list[float]) -> "_Stack":
        """A stack of one row: ``critic``'s weights (a :class:`~tune_sd.engine.critic.Critic`), Adam
        not yet stepped."""
        params = [p.detach() for p in critic.parameters()]
        stack = cls(len(critic.embed) // 2 + 1 if critic.embed is not None else 0, params[0].device)
        zeros = [torch.zeros_like(p) for p in params]
        stack.insert(0, params, zeros, [z.clone() for z in zeros], 0.0, hyper)
        return stack

    def set_hyper(self, row: int, hyper: list[float]) -> None:
        """A row's Adam hyperparameters (lr, wd, beta1, beta2, eps)."""
        self.hyper_rows[row] = tuple(hyper)
        self.hyper[row] = self.hyper.new_tensor(hyper)

    def member(self, row: int):
        """(weights, exp_avg, exp_avg_sq, step) of one row, in the solo critic's shapes."""
        def unrow(ts):  # back to nn.Linear's shapes
            return [(t[row].reshape(-1) if i % 2 else t[row].t()).clone(memory_format=torch.contiguous_format)
                    for i, t in enumerate(ts)]

        return unrow(self.params), unrow(self.exp_avg), unrow(self.exp_avg_sq), float(self.step[row])

    def row_state(self, row: int, names: list[str]) -> tuple[OrderedDict, dict]:
        """A row as a checkpoint holds it: the critic's ``state_dict()`` (``names``: its parameter
        names, in order) and its Adam state in the layout of ``torch.optim.Adam.state_dict()`` (no
        state before the first step)."""
        params, m, v, step = self.member(row)
        lr, wd, beta1, beta2, eps = self.hyper_rows[row]
        state = {}
        if step > 0:
            step_t = torch.tensor(step, dtype=torch.float32, device=self.device)
            state = {i: {"step": step_t.clone(), "exp_avg": a, "exp_avg_sq": b} for i, (a, b) in enumerate(zip(m, v))}
        groups = [{"lr": lr, "betas": (beta1, beta2), "eps": eps, "weight_decay": wd, "amsgrad": False,
                   "maximize": False, "fused": True, "params": list(range(len(params)))}]
        return OrderedDict(zip(names, params)), {"state": state, "param_groups": groups}

    def load_row(self, row: int, names: list[str], critic: dict, optimizer: dict) -> None:
        """Load a row from what :meth:`row_state` wrote (or a solo critic and ``torch.optim.Adam``
        wrote, format tune_sd.study/1), in place. The hyperparameters stay the row's (the config's).
        A missing name or another shape raises ``KeyError`` / ``ValueError``."""
        state = optimizer["state"]
        with torch.no_grad():
            for j, name in enumerate(names):
                saved = critic[name]
                ts = (self.params[j], self.exp_avg[j], self.exp_avg_sq[j])
                if tuple(self._row(saved).shape[1:]) != tuple(ts[0].shape[1:]):
                    raise ValueError(f"{name}: shape {tuple(saved.shape)} is not this critic's")
                ts[0][row] = self._row(saved.to(self.device))[0]
                if state:
                    ts[1][row] = self._row(state[j]["exp_avg"].to(self.device))[0]
                    ts[2][row] = self._row(state[j]["exp_avg_sq"].to(self.device))[0]
                else:
                    ts[1][row].zero_()
                    ts[2][row].zero_()
            self.step[row] = float(state[0]["step"]) if state else 0.0

    def _tensors(self) -> list[torch.Tensor]:
        return [*self.params, *self.exp_avg, *self.exp_avg_sq, self.step]

    def snapshot(self) -> None:
        """Copy what a critic step changes into buffers kept from epoch to epoch (:meth:`roll_back`
        restores rows from them), as a solo study keeps its critic at the start of each epoch."""
        tensors = self._tensors()
        with torch.no_grad():
            if self._before is None or [b.shape for b in self._before] != [t.shape for t in tensors]:
                self._before = [t.detach().clone() for t in tensors]
            else:
                torch._foreach_copy_(self._before, tensors)

    def roll_back(self, rows: list[int]) -> None:
        """Rows back to the last :meth:`snapshot`."""
        index = torch.tensor(rows, device=self.step.device)
        with torch.no_grad():
            for t, b in zip(self._tensors(), self._before):
                t.index_copy_(0, index, b.index_select(0, index))

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
        """Rows ``rows`` from ``sub`` (taken by :meth:`take`)."""
        if rows is None:
            return
        rows = torch.tensor(rows, device=self.step.device)
        for t, s in zip(self._tensors(), sub._tensors()):
            t.index_copy_(0, rows, s)


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


# Up to this many distinct (lr, wd, betas, eps, step count) among the stepping members, Adam runs as
# torch's fused kernel once per run of neighbouring rows that share them (one pass over the weights,
# bit for bit the solo run's update);
# beyond it on a GPU, as one set of broadcast tensor operations for all members (about ten passes,
# but a constant number of kernel launches). On a CPU the fused kernel always wins.
FUSED_GROUPS = 16


def _adam(stack: _Stack, grads: list[torch.Tensor], n: int) -> None:
    """One Adam step (L2 weight decay, as ``torch.optim.Adam(fused=True)`` computes it) of rows [0, n),
    each row with its own hyperparameters and step count."""
    with torch.no_grad():
        stack.step[:n] += 1
        if _reads_steps(stack.step.device):
            # reading the step counts costs nothing here: one kernel call per run of rows that share
            # hyperparameters and step count, each stacked tensor's slice updated as one tensor
            steps = stack.step[:n].tolist()
            grads = [g.contiguous() for g in grads]  # the kernel reads gradients as contiguous memory
            for start, end in _runs([(stack.hyper_rows[r], steps[r]) for r in range(n)]):
                _fused_adam_run(stack, grads, start, end)
            return
        # on a GPU the step counts stay on the device (reading them would wait for it): per group of
        # equal hyperparameters, each row with its own step count
        groups: dict[tuple, list[int]] = {}
        for r in range(n):
            groups.setdefault(stack.hyper_rows[r], []).append(r)
        if len(groups) <= FUSED_GROUPS:
            grads = [g.contiguous() for g in grads]
            for rows in groups.values():
                _fused_adam_rows(stack, grads, rows)
        else:
            _broadcast_adam(stack, grads, n)


def _reads_steps(device: torch.device) -> bool:
    """Whether Adam may read the step counts back (a CPU; on a GPU that would wait for the device)."""
    return device.type == "cpu"


def _runs(keys: list) -> list[tuple[int, int]]:
    """[start, end) of each run of equal keys."""
    runs, start = [], 0
    for r in range(1, len(keys) + 1):
        if r == len(keys) or keys[r] != keys[start]:
            runs.append((start, r))
            start = r
    return runs


def _fused_adam_run(stack: _Stack, grads, start: int, end: int) -> None:
    """Torch's fused kernel over rows [start, end), which share hyperparameters and step count: each
    stacked tensor's slice is one contiguous tensor, updated elementwise as each row's own would be."""
    lr, wd, beta1, beta2, eps = stack.hyper_rows[start]
    rows = slice(start, end)
    torch._fused_adam_([p[rows] for p in stack.params], [g[rows] for g in grads],
                       [m[rows] for m in stack.exp_avg], [v[rows] for v in stack.exp_avg_sq], [],
                       [stack.step[start]] * len(stack.params), lr=lr, beta1=beta1, beta2=beta2,
                       weight_decay=wd, eps=eps, amsgrad=False, maximize=False)


def _fused_adam_rows(stack: _Stack, grads, rows: list[int]) -> None:
    """Torch's fused kernel over ``rows``, which share hyperparameters: each row's slice of a stacked
    tensor is a tensor of the solo critic's size, with that row's own step count."""
    def per_row(ts):
        rows_of = [t.unbind(0) for t in ts]  # all views at once: cheaper than one index per row
        return [views[r] for r in rows for views in rows_of]

    lr, wd, beta1, beta2, eps = stack.hyper_rows[rows[0]]
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
# the critic steps of every member at once


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None, k: torch.Tensor) -> torch.Tensor:
    """Mean over each row's own samples: x [P, K] -> [P]."""
    if mask is None:
        return x.mean(1)
    return torch.where(mask, x, 0).sum(1) / k


def _losses(pred_real, pred_fake, batch, mask, k):
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


def _step_autograd(leaves, n_embed, real, fake, eps, batch, n, mask, k):
    """One critic step's scores, losses and weight gradients through autograd (any critic; the
    penalty's input gradient written out by :func:`_input_grad`)."""
    K = real.shape[1]
    pred = _forward(leaves, n_embed, torch.cat([real, fake], dim=1))
    pred_real, pred_fake = pred[:, :K], pred[:, K:]
    loss_real, loss_fake = _losses(pred_real, pred_fake, batch, mask, k)
    loss = loss_real + loss_fake
    gp = batch.gp_t[:n]
    if eps is not None:
        interp = eps * real + (1 - eps) * fake
        g = _input_grad(leaves, n_embed, interp)
        loss_gp = _masked_mean((g.flatten(2).norm(dim=2) - 1).pow(2), mask, k)
        loss = loss + gp * loss_gp
        loss_gp = torch.where(gp > 0, loss_gp.detach(), 0)
    else:
        loss_gp = loss_real.new_zeros(n)
    grads = torch.autograd.grad(loss.sum(), leaves)
    return pred_real.detach(), pred_fake.detach(), loss_real.detach(), loss_fake.detach(), loss_gp, grads


def _step_mlp(layers, real, fake, eps, batch, n, mask, k):
    """:func:`_step_autograd` for critics without an embedding, with the backward pass written out.

    One forward pass over the real, fake and (with a penalty) mixed samples at once; the penalty's
    input gradient c_0 = W_0 (m_0 * W_1 (m_1 * ... w_L)) and its way back are chains of products with
    the same weights. The weight gradients of the loss and of the penalty are one product per layer:
    [inputs of the loss; penalty's gradient at c_j]^T [loss's gradient; m_j * c_(j+1)]. Autograd would
    take about twice as many (and smaller, slower) products for the same numbers."""
    K = real.shape[1]
    P = real.shape[0]
    L = len(layers) // 2 - 1
    x = torch.cat([real, fake], dim=1).reshape(P, 2 * K, -1)
    if eps is not None:
        x = torch.cat([x, (eps * real + (1 - eps) * fake).reshape(P, K, -1)], dim=1)
    hs, masks = [x], []
    h = x
    for j in range(L + 1):
        h = torch.baddbmm(layers[2 * j + 1], h, layers[2 * j])
        if j < L:
            masks.append(h > 0)
            h = torch.relu(h)
            hs.append(h)
    pred = h[:, :2 * K, 0]
    pred_real, pred_fake = pred[:, :K], pred[:, K:]

    # the losses and their gradient with respect to the scores, per member's loss function
    loss_real, loss_fake = _losses(pred_real, pred_fake, batch, mask, k)
    per = (mask / k[:, None]) if mask is not None else (1 / k)[:, None].expand(-1, K)
    bce = batch.bce_t[:n, None]
    d_real = torch.where(bce, torch.sigmoid(pred_real) - 1, -1) * per
    d_fake = torch.where(bce, torch.sigmoid(pred_fake), 1) * per
    delta = torch.cat([d_real, d_fake], dim=1).unsqueeze(2)          # [P, 2K, 1]: d loss / d score

    grads: list[torch.Tensor] = [None] * len(layers)
    penalty = eps is not None
    if penalty:
        # c_L = w_L, s_(j+1) = m_j * c_(j+1), c_j = s_(j+1) W_j^T, up to c_0 = d score / d input
        gm = [m[:, 2 * K:] for m in masks]                              # the mixes' ReLU masks
        c = layers[2 * L][:, :, 0].unsqueeze(1).expand(-1, K, -1)
        s = [None] * (L + 1)
        for j in range(L - 1, -1, -1):
            s[j + 1] = gm[j] * c
            c = torch.bmm(s[j + 1], layers[2 * j].transpose(1, 2))
        norm = c.norm(dim=2)                                             # [P, K]
        loss_gp = _masked_mean((norm - 1).pow(2), mask, k)
        gp = batch.gp_t[:n]
        # d (gp * loss_gp) / d c_0; a zero gradient has no direction (autograd's norm gives 0 there too)
        scale = gp[:, None] * per * 2 * (norm - 1) / torch.where(norm > 0, norm, 1)
        r = c * scale.unsqueeze(2)
        loss_gp = torch.where(gp > 0, loss_gp, 0)
        rs = [r]                                                         # d penalty / d c_j
        for j in range(L):
            r = torch.bmm(r, layers[2 * j]) * gm[j]
            rs.append(r)
    else:
        loss_gp = loss_real.new_zeros(n)

    # back from the score (loss) and from c_0 (penalty), one weight product per layer for both
    for j in range(L, -1, -1):
        a, b = hs[j][:, :2 * K], delta
        if penalty and j < L:
            a, b = torch.cat([a, rs[j]], dim=1), torch.cat([b, s[j + 1]], dim=1)
        grads[2 * j] = torch.bmm(a.transpose(1, 2), b)
        if penalty and j == L:
            grads[2 * j] = grads[2 * j] + rs[j].sum(1).unsqueeze(2)
        grads[2 * j + 1] = delta.sum(1, keepdim=True)
        if j:
            delta = torch.bmm(delta, layers[2 * j].transpose(1, 2)) * masks[j - 1][:, :2 * K]
    return pred_real, pred_fake, loss_real, loss_fake, loss_gp, grads


def _fit(stack: _Stack, batch) -> list[tuple]:
    """``iters`` critic steps of every row at once (rows sorted by iters, most first; a row takes its
    own number of steps, on its own k samples); per row (accs, loss_real, loss_fake, loss_gp,
    grad_max): the accuracy of each of its steps (the share of its 2 k samples classified right: real
    if the score is > 0, fake if <= 0), then the losses of its last step and the largest absolute
    weight gradient of that step. Losses: ``wasserstein`` -mean(score(real)) + mean(score(fake)),
    ``bce`` binary cross-entropy with logits (real 1, fake 0), plus gp x the gradient penalty
    mean((||d score / d input|| - 1)^2) at eps * real + (1 - eps) * fake. Critics without an
    embedding take the written-out backward pass (:func:`_step_mlp`), the others autograd."""
    n_embed = stack.n_embed
    manual = not n_embed
    accs, finals = [], {}
    for i in range(batch.I):
        n = batch.active[i]
        real, fake = batch.real_at(i)[:n], batch.fake[:n]
        mask = batch.mask[:n] if batch.mask is not None else None
        k = batch.k_t[:n]
        eps = batch.eps[i, :n] if batch.eps is not None and any(batch.gp[:n]) else None
        if manual:
            with torch.no_grad():
                pred_real, pred_fake, loss_real, loss_fake, loss_gp, grads = _step_mlp(
                    [p[:n] for p in stack.params], real, fake, eps, batch, n, mask, k)
        else:
            leaves = [p[:n].detach().requires_grad_() for p in stack.params]
            pred_real, pred_fake, loss_real, loss_fake, loss_gp, grads = _step_autograd(
                leaves, n_embed, real, fake, eps, batch, n, mask, k)
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
