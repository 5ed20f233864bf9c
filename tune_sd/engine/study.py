"""One SD training run: the notebook's training cell as a resumable object.

Per epoch (``Study.step``): sample fake functions from the generator, sample real ones from the
library, add the extra information, fit the critic for ``iters`` steps, record the metrics.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np
import torch

from tune_sd.errors import ConfigError, StudyError

from .config import Config
from .critic import Critic, critic_input
from .data import load_data
from .generators import make_generator
from .library import library_path, load_library
from .loop import RunLoop

FORMAT = "tune_sd.study/1"
METRICS = ("acc", "acc_mean", "avg_acc", "loss_real", "loss_fake", "loss_gp", "grad_max", "nonfinite", "time_s")


class NonFiniteLossError(StudyError):
    """The critic's loss became NaN or infinite: the run cannot go on."""


def _seeds(seed: int, n: int) -> list[int]:
    # independent streams for the critic's initial weights and for sampling, from one trial seed
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64) >> np.uint64(1)]


def nonfinite_message(study: "Study", loss_real: float, loss_fake: float, loss_gp: float, nonfinite: int) -> str:
    """Why a study's epoch failed: its loss became non-finite (and what to try)."""
    hint = (f"; the samples held {nonfinite} non-finite value(s) (e.g. exp overflow in {study.library.path})"
            if nonfinite else "; try a lower disc.lr or a larger disc.gp")
    return (f"epoch {study.epoch + 1}: the critic's loss became non-finite "
            f"(loss_real={loss_real}, loss_fake={loss_fake}, loss_gp={loss_gp}){hint}")


class Study(RunLoop):
    """Train a critic to tell library functions from generator functions.

    ``step()`` runs one epoch and returns its metrics; ``state_dict()`` / ``load_state_dict()``
    (:class:`~tune_sd.engine.loop.RunLoop`'s, with the critic and its optimizer) cover the random
    state and the metric history too, so that a run stopped at epoch e and resumed continues bit for
    bit like the uninterrupted run.
    """

    format = FORMAT
    metrics = METRICS
    # the mean accuracy over a report's epochs (see RunLoop.report): the trend tests of the early
    # stopper weigh its noise (tune/stoppers.py)
    report_means = {"acc_report": "acc_mean"}

    def __init__(self, config: Config | dict | None = None, device: str | torch.device = "cpu"):
        self.cfg = config if isinstance(config, Config) else Config.from_dict(config)
        cfg = self.cfg
        if cfg.task != "sd":
            raise ConfigError(f"task: {cfg.task!r} is not the SD study (build it with tune_sd.engine.make_run)")
        self.device = torch.device(device)
        d = cfg.data
        self.data = load_data(d.path, var=d.var, n_points=d.n_points, n_features=d.n_features,
                              split_sizes=tuple(d.split_sizes), seed=d.seed, split_path=d.split_path, key=d.key)
        self.X = self.data.points(d.split, d.features, device=self.device)
        self.n_points, self.n_features = self.X.shape
        if cfg.batch_size is not None and cfg.batch_size != self.n_points:
            raise ConfigError(f"batch_size: {cfg.batch_size} but the {d.split} split has {self.n_points} points "
                              "(every function is given on all of them); set batch_size: null")
        self.library = load_library(library_path(cfg.library.path), var=d.var, n_features=self.n_features)
        self.generator = make_generator(cfg, self.X)
        init_seed, sample_seed = _seeds(cfg.seed, 2)
        self.critic = Critic.from_config(cfg, self.n_points, rng=torch.Generator().manual_seed(init_seed),
                                         device=self.device)
        self.rng = torch.Generator(self.device).manual_seed(sample_seed)
        self.ext = list(cfg.ext or [])
        self.needs_grad = "grad" in self.ext
        self.epoch = 0
        self.elapsed = 0.0
        self.history: dict[str, list[float]] = {m: [] for m in METRICS}
        self.changes: list[dict] = []  # settings changed on resume: {epoch, key, from, to}
        self._before: list[torch.Tensor] | None = None  # the critic at the start of the epoch in progress
        self._window: deque[float] = deque(maxlen=cfg.avg_hor)

    # ------------------------------------------------------------------ the loop
    def sample_fake(self, k: int, rng: torch.Generator | None = None):
        """k fake functions: (values [k, n], critic input). ``rng`` defaults to the run's own."""
        values, grads = self.generator.sample(k, rng or self.rng, with_grad=self.needs_grad)
        return values, self.fake_input(values, grads)

    def fake_input(self, values, grads):
        """The critic input of fake functions drawn elsewhere (a population draws its members' at once)."""
        return critic_input(values, self._ext_parts(grads), self.cfg.ext_type)

    def sample_real(self, batches: int, k: int, rng: torch.Generator | None = None):
        """batches x k library functions: (values [batches, k, n], critic input)."""
        values, grads = self.library.sample(batches * k, self.X, rng or self.rng, with_grad=self.needs_grad,
                                            shuffle=self.cfg.library.shuffle)
        return self.real_input(values, grads, batches, k)

    def draw_real(self, batches: int, k: int):
        """The random part of :meth:`sample_real` (the library's ``evaluate`` does the rest; a population
        evaluates its members' draws at once)."""
        return self.library.draw(batches * k, self.X, self.rng, shuffle=self.cfg.library.shuffle)

    def real_input(self, values, grads, batches: int, k: int):
        """(values [batches, k, n], critic input) of batches x k evaluated library functions."""
        values = values.view(batches, k, self.n_points)
        grads = grads.view(batches, k, self.n_points, self.n_features) if grads is not None else None
        return values, critic_input(values, self._ext_parts(grads), self.cfg.ext_type)

    def _ext_parts(self, grads):
        return [self.X if kind == "input" else grads for kind in self.ext]

    def step(self) -> dict:
        """One epoch: fresh fake and real functions, ``iters`` critic steps, the epoch's metrics."""
        start = time.perf_counter()
        before = self._epoch_start()
        k = self.cfg.arch.lat_size
        fake_values, fake = self.sample_fake(k)
        real_values, real = self.sample_real(self.cfg.disc.iters if self.cfg.library.iter_sample else 1, k)
        # exp overflow and the like in a library must not pass silently
        nonfinite = int((~torch.isfinite(real)).sum() + (~torch.isfinite(fake)).sum())
        stats = self.critic.fit(real, fake, self.rng)
        if not all(map(math.isfinite, (stats.loss_real, stats.loss_fake, stats.loss_gp))):
            self._roll_back(before)  # a save after the error holds the last whole epoch, not NaN weights
            raise NonFiniteLossError(nonfinite_message(self, stats.loss_real, stats.loss_fake, stats.loss_gp,
                                                       nonfinite))
        self.epoch += 1
        self.elapsed += time.perf_counter() - start
        self._window.append(stats.acc_mean)
        metrics = {
            "epoch": self.epoch, "acc": stats.acc, "acc_mean": stats.acc_mean,
            "avg_acc": sum(self._window) / len(self._window), "loss_real": stats.loss_real,
            "loss_fake": stats.loss_fake, "loss_gp": stats.loss_gp, "grad_max": stats.grad_max,
            "nonfinite": nonfinite, "time_s": self.elapsed,
        }
        for m in METRICS:
            self.history[m].append(metrics[m])
        return metrics

    def _trained_tensors(self) -> list[torch.Tensor]:
        """What the critic's steps change: its weights, then its optimizer's moments and step counts
        (none before the first step)."""
        params = list(self.critic.parameters())
        state = self.critic.optimizer.state
        return params + [t for p in params for t in state.get(p, {}).values() if torch.is_tensor(t)]

    def _epoch_start(self) -> tuple[int, torch.Tensor]:
        """Copy what an epoch changes besides the history into buffers kept from epoch to epoch (a
        few percent of an epoch's time with the default critic); ``_roll_back`` restores it."""
        tensors = self._trained_tensors()
        with torch.no_grad():
            if self._before is None or len(self._before) != len(tensors):
                self._before = [t.detach().clone() for t in tensors]
            else:
                torch._foreach_copy_(self._before, tensors)
        return len(tensors), self.rng.get_state()

    def _roll_back(self, before: tuple[int, torch.Tensor]) -> None:
        n, rng = before
        tensors = self._trained_tensors()
        with torch.no_grad():
            torch._foreach_copy_(tensors[:n], self._before[:n])
        if len(tensors) != n:  # the optimizer's moments were born in this epoch
            self.critic.optimizer.state.clear()
        self.rng.set_state(rng)

    # ------------------------------------------------------------------ state
    def _own_state(self) -> dict:
        return {"critic": self.critic.state_dict(), "optimizer": self.critic.optimizer.state_dict()}

    def _load_own_state(self, state: dict) -> None:
        self.critic.load_state_dict(state["critic"])
        self.critic.optimizer.load_state_dict(state["optimizer"])

    def _loaded(self) -> None:
        # loading the optimizer restored the saved hyperparameters; the config's hold (they differ
        # only where a resumed run changed them, see config.resume_changes)
        d = self.cfg.disc
        for group in self.critic.optimizer.param_groups:
            group.update(lr=d.lr, weight_decay=d.wd, betas=tuple(d.betas))
        self.history["nonfinite"] = [int(x) for x in self.history["nonfinite"]]
        self._window = deque(self.history["acc_mean"][-self.cfg.avg_hor:], maxlen=self.cfg.avg_hor)
