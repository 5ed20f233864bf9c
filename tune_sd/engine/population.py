"""A population: SD studies whose critics share one shape, trained as one stack of critics.

Each member is a study with its own config and seed: its own points, library, generator and random
stream (a solo :class:`Study` holds them), so it draws exactly the samples, gradient-penalty mixes and
initial weights the solo run draws. Only the critics are pooled: the P critics' weights are stacked
along a leading member axis, and every critic step is one batched forward and backward pass
(``torch.baddbmm`` over the stacked weights; for critics without an embedding the whole backward
pass, penalty included, is written out, see :func:`tune_sd.engine.stacked._step_mlp`) followed by one
Adam update with per-member ``lr``, ``wd``, ``betas`` and step counts: torch's fused kernel once per
run of rows with equal hyperparameters and step count (on a GPU with many groups, the same formulas
broadcast over per-member tensors).
The stacked critics live in :mod:`tune_sd.engine.stacked`.

What may differ between members (everything but the shape key, see :func:`shape_key`):

- ``disc.iters``: rows are kept sorted by iters, most first, so the members still stepping at critic
  step i are a prefix of the stack; the others are neither computed nor updated (their Adam step count
  stays);
- ``arch.lat_size`` (k): samples are padded to the largest k and masked: losses, accuracy and the
  gradient penalty are means over the member's own k samples;
- ``disc.gp``, ``disc.loss_fun``, ``disc.lr/wd/betas``, the seed, the library and the generator.

A member's curve equals its solo run's (a stack of one row, stepped by the same code) to float
rounding: products batched over more rows, and means over samples padded to the largest k, may sum in
another order (and the broadcast Adam rounds a last bit differently from the fused kernel in about one
element in 1500); see tests/test_population.py for the tolerances measured. Each member draws from
its own random stream, in its solo order; members with equal generator or library settings share
those objects, and the generator networks of all members that share one are evaluated as one batch,
as is each library line for all members that share a library. On a CPU the critic steps are about
70 % of a packed epoch (2 x 64 critic, P = 16), the sampling the rest.

A member's state is a ``Study.state_dict()`` (the member is a study whose critic is a row of the
population's stack): a solo study resumes it, and a population takes a solo run's. The epoch is the
one a solo study runs, :func:`~tune_sd.engine.epoch.train_epoch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tune_sd.errors import ConfigError, StudyError

from .config import Config
from .critic import pair
from .epoch import train_epoch
from .stacked import _Stack
from .study import Study

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
    """A member: its study (config, points, library, generator, random stream, last metrics; its critic's
    weights and Adam state are a row of the population's stack)."""

    id: str
    study: Study
    error: str | None = None

    @property
    def cfg(self) -> Config:
        return self.study.cfg

    @property
    def iters(self) -> int:
        return self.cfg.disc.iters


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
        if self._stack is None:
            self._stack = _Stack(study._stack.n_embed, self.device)
        row = sum(1 for r in self._rows if self._members[r].iters >= cfg.disc.iters)
        self._stack.insert(row, *study._stack.member(0), study._stack.hyper_rows[0])
        self._members[member_id] = _Member(member_id, study)
        self._rows.insert(row, member_id)
        self._attach()
        self.key = key

    def _attach(self) -> None:
        """Each member's critic is the row of the stack in its place (after a member joined or left)."""
        for row, member_id in enumerate(self._rows):
            self._members[member_id].study._attach(self._stack, row)

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
        self._attach()
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
        loss became non-finite (it stays until removed, and keeps reporting the error; its state stays that of
        its last whole epoch, as a solo study rolls back)."""
        ids = [m for m in self._members if not self.done(m)] if member_ids is None else list(member_ids)
        members = [self._member(m) for m in ids]
        out = {m.id: {"error": m.error} for m in members if m.error is not None}
        stepping = set(m.id for m in members if m.error is None)
        rows = [r for r in self._rows if r in stepping]  # stack order: most iters first
        if rows:
            out.update(self._epoch([self._members[r] for r in rows]))
        return {m: out[m] for m in ids}

    def _epoch(self, members: list[_Member]) -> dict[str, dict]:
        full = len(members) == len(self._rows)
        index = None if full else [self._rows.index(m.id) for m in members]
        stack = self._stack.take(index)  # every row: the stack itself; some: a copy of them
        results = train_epoch(stack, [m.study for m in members])
        self._stack.put_back(index, stack)
        for m, metrics in zip(members, results):
            m.error = metrics.get("error")
        return {m.id: metrics for m, metrics in zip(members, results)}

    # ------------------------------------------------------------------ per member
    def state_dict(self, member_id: str) -> dict:
        """The member's state, ``Study.state_dict()``: a solo study resumes it."""
        return self._member(member_id).study.state_dict()

    def epoch(self, member_id: str) -> int:
        return self._member(member_id).study.epoch

    def config(self, member_id: str) -> Config:
        """The member's run config."""
        return self._member(member_id).study.cfg

    def done(self, member_id: str) -> bool:
        return self._member(member_id).study.done

    def last_metrics(self, member_id: str) -> dict:
        """The member's last epoch's metrics (``RunLoop.last_metrics``)."""
        return self._member(member_id).study.last_metrics()

    def report(self, member_id: str, since: int) -> dict:
        """The member's report of the epochs after epoch ``since`` (``RunLoop.report``)."""
        return self._member(member_id).study.report(since)

    def study(self, member_id: str) -> Study:
        """A solo study rebuilt from the member's state (for figures and the like)."""
        return Study.from_state(self.state_dict(member_id), device=self.device)


# ---------------------------------------------------------------------------------------------
# how many to pack


def pack_size(cfg: Config | dict, device="cpu") -> int:
    """How many members of this shape to pack in one population where it pays (1: do not pack).

    From benchmarks/population.py (one CPU thread; member-epochs per CPU second against a population
    of one, which is a solo study's speed; 700 points, iters 5): the plain 2 x 64 critic (about 49 000
    multiply-adds per function) runs 2.1x at P = 4, 2.8x at P = 8 and 2.9x at P = 16 with lat_size 5
    (2.3x, 2.9x, 3.3x with lat_size 3); the 6 x 128 critic (about 172 000) 1.5x at P = 4 and no more
    at 16; an embedding on every point (``ext_type: embed``, [2, 4] x [64, 512]: about 4 million)
    gains nothing (1.0x at every P). A packed trial also costs a Tune trial process of its own (about
    2 CPU-s over its life, no torch: benchmarks/pack.py), which long trials hide: a 6 x 128 trial of
    2000 epochs takes about 16 CPU-s alone and 11 packed by 4. So a CPU packs critics up to 100 000
    multiply-adds 16 to a population; up to 1 million 4, in trials of at least ``LONG_TRIAL`` epochs
    (shorter ones gain less than their processes cost); bigger ones not at all (``--pack P`` still
    packs them). On a GPU every shape is expected to gain from many members (measured by
    benchmarks/gpu_check.sh).

    Through a whole sweep (benchmarks/pack.py, 16 seeds of the plain critic on 2 cores, ``--pack auto``
    against ``off``) the processes cost more than packing saves in short trials: 0.75x at 500 epochs,
    1.00x at 1000, 1.13x at 1500, 1.43x at 5000. So small critics pack in trials of at least
    ``SHORT_TRIAL`` epochs.
    """
    cfg = cfg if isinstance(cfg, Config) else Config.from_dict(cfg)
    if torch.device(device).type == "cuda":
        return GPU_PACK
    work = critic_work(cfg)
    if work <= 100_000:
        return CPU_PACK if cfg.epochs >= SHORT_TRIAL else 1
    return 4 if work <= 1_000_000 and cfg.epochs >= LONG_TRIAL else 1


# the most members pack_size puts in one population, on a CPU and on a GPU
CPU_PACK, GPU_PACK = 16, 256


# epochs from which a trial of a small critic (2 x 64: about 4.3 ms an epoch solo, 1.6 ms packed by 8)
# is long enough for packing's engine gain to outweigh its trial process (benchmarks/pack.py)
SHORT_TRIAL = 1500


# epochs from which a trial of a mid-sized critic (6 x 128: about 8 s of a CPU core per 1000 epochs
# solo, 5.6 s packed by 4) is long enough for packing's engine gain to outweigh its trial process
LONG_TRIAL = 2000


def critic_work(cfg: Config) -> int:
    """Multiply-adds of one critic evaluation of one function under ``cfg`` (the point count of the
    default data's split; 700 for data read from a file, whose size is not known here)."""
    n = cfg.data.split_sizes[("train", "val", "test").index(cfg.data.split)] if cfg.data.path is None else 700
    e = cfg.derived_ext_size
    if e and cfg.ext_type == "embed":
        (en, mn), (es, ms) = pair(cfg.disc.hid_num), pair(cfg.disc.hid_size)
        return n * _mlp_work(1 + e, en, es) + _mlp_work(n, mn, ms)
    return _mlp_work(n * (1 + e), cfg.disc.hid_num, cfg.disc.hid_size)


#: a population epoch's milliseconds on one CPU thread (:func:`epoch_cost`): fixed, per member, per critic
#: step and layer, per multiply-add of a critic step (fitted by benchmarks/epoch_cost.py)
EPOCH_COST_MS = (0.674, 0.206, 0.0271, 1.8e-6)


def epoch_cost(cfg: Config, members: int = 1) -> float:
    """Milliseconds one epoch of a population of ``members`` critics of ``cfg`` takes on one CPU thread:
    what a trial that has not run yet will cost, relative to those that have (the progress line's time
    left fits what they cost to it: tune/progress.py).

    A small critic's epoch is mostly fixed costs: sampling (per member) and one batched pass per layer
    per critic step, whatever its width; a large one's is its multiply-adds, per member and step. The
    gradient penalty doubles a step's passes and adds half to its multiply-adds; each of the k fake and
    real samples adds a tenth. Fitted on the 12 critics of the trend examples at 700 points, populations
    of 1, 3 and 4 (benchmarks/epoch_cost.py): within 21 % of each measured time, which span 2 to 190 ms
    (t3c, the most samples of them, k = 10, is among the cheapest: one step an epoch)."""
    return sum(c * term for c, term in zip(EPOCH_COST_MS, epoch_cost_terms(cfg, members)))


def epoch_cost_terms(cfg: Config, members: int = 1) -> tuple[float, float, float, float]:
    """The terms of :func:`epoch_cost` that ``EPOCH_COST_MS`` weighs: 1, the members, the critic steps'
    layer passes, their multiply-adds."""
    d = cfg.disc
    embedded = cfg.derived_ext_size and cfg.ext_type == "embed"
    layers = sum(pair(d.hid_num)) + 2 if embedded else pair(d.hid_num)[1] + 1
    gp = 1.0 if d.gp > 0 else 0.0
    return (1.0, members, d.iters * layers * (1 + gp),
            d.iters * members * critic_work(cfg) * (1 + 0.5 * gp) * (1 + 0.1 * cfg.arch.lat_size))


def _mlp_work(inputs: int, num: int, size: int) -> int:
    sizes = [inputs] + [size] * num + [1]
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
