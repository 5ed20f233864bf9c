"""One SD training run: the notebook's training cell as a resumable object.

Per epoch (``Study.step``): sample fake functions from the generator, sample real ones from the
library, add the extra information, fit the critic for ``iters`` steps, record the metrics. The epoch
is :func:`~tune_sd.engine.epoch.train_epoch`, the one a population runs: a solo study is a stack of
one critic (its weights and Adam state: :class:`~tune_sd.engine.stacked._Stack`).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

from tune_sd.errors import ConfigError, StudyError

from .config import Config
from .critic import Critic, critic_input
from .data import load_data
from .epoch import train_epoch
from .generators import make_generator
from .library import library_path, load_library
from .loop import RunLoop
from .stacked import _Stack, hyper_of

# /3: the last epoch's metrics and the recent ones (not the whole history: a checkpoint's size does not
# grow with the epochs); /2 (the stacked engine, whole history) and /1 (the solo critic and its torch
# optimizer, the same layout) are read as well
FORMAT = "tune_sd.study/3"
READS = ("tune_sd.study/2", "tune_sd.study/1")
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
    (:class:`~tune_sd.engine.loop.RunLoop`'s, with the critic's weights and Adam state) cover the random
    state, the last metrics and the recent accuracies (the ``avg_hor`` window, a report's epochs) too,
    so that a run stopped at epoch e and resumed continues bit for bit like the uninterrupted run. The
    run keeps no whole history: gather its curve with ``run(callback=...)``
    (:class:`~tune_sd.engine.loop.Curve`).
    """

    format = FORMAT
    reads = READS
    metrics = METRICS
    # the mean accuracy over a report's epochs (see RunLoop.report): the trend tests of the early
    # stopper weigh its noise (tune/stopping/nonlearner_stopper.py)
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
        critic = Critic.from_config(cfg, self.n_points, rng=torch.Generator().manual_seed(init_seed),
                                    device=self.device)
        self._names = [name for name, _ in critic.named_parameters()]
        # the critic's weights and Adam state: a stack of one row, or a row of a population's stack
        # (Population.add attaches it there)
        self._stack, self._row = _Stack.of(critic, hyper_of(cfg.disc)), 0
        self._view: tuple[tuple, Critic] | None = None
        self.rng = torch.Generator(self.device).manual_seed(sample_seed)
        self.ext = list(cfg.ext or [])
        self.needs_grad = "grad" in self.ext
        self.epoch = 0
        self.elapsed = 0.0
        self.changes: list[dict] = []  # settings changed on resume: {epoch, key, from, to}
        self._window: deque[float] = deque(maxlen=cfg.avg_hor)
        self._start_keeping()

    def recent_epochs(self) -> int:
        # a report's epochs, and the avg_hor window of avg_acc (rebuilt from them on resume)
        return max(int(self.cfg.report_every), int(self.cfg.avg_hor))

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
        """One epoch: fresh fake and real functions, ``iters`` critic steps, the epoch's metrics. A
        non-finite loss rolls the epoch back and raises :class:`NonFiniteLossError`."""
        if self._row != 0 or len(self._stack) != 1:
            raise StudyError("this study's critic is a population's member: step the population")
        metrics = train_epoch(self._stack, [self])[0]
        if "error" in metrics:
            raise NonFiniteLossError(metrics["error"])
        return metrics

    def _record(self, stats: tuple, nonfinite: int, elapsed: float) -> dict:
        """The epoch's metrics from its critic steps' (accs, loss_real, loss_fake, loss_gp, grad_max),
        kept as the last ones (and the recent accuracies); ``{"error": message}`` where a loss is not finite (the epoch was rolled
        back and does not count)."""
        accs, loss_real, loss_fake, loss_gp, grad_max = stats
        if not all(map(math.isfinite, (loss_real, loss_fake, loss_gp))):
            return {"error": nonfinite_message(self, loss_real, loss_fake, loss_gp, nonfinite)}
        self.epoch += 1
        self.elapsed += elapsed
        acc_mean = sum(accs) / len(accs)
        self._window.append(acc_mean)
        metrics = {
            "epoch": self.epoch, "acc": accs[-1], "acc_mean": acc_mean,
            "avg_acc": sum(self._window) / len(self._window), "loss_real": loss_real,
            "loss_fake": loss_fake, "loss_gp": loss_gp, "grad_max": grad_max,
            "nonfinite": nonfinite, "time_s": self.elapsed,
        }
        self._keep(metrics)
        return metrics

    @property
    def critic(self) -> Critic:
        """The critic as an ``nn.Module`` (for figures and scoring): a view of its row of the stack,
        so that it follows the training."""
        key = (id(self._stack), self._row, self._stack.params[0].data_ptr())
        if self._view is None or self._view[0] != key:
            self._view = (key, Critic.view(self.cfg, self.n_points, self._stack, self._row))
        return self._view[1]

    def _attach(self, stack: _Stack, row: int) -> None:
        """The critic's weights and Adam state are now row ``row`` of ``stack`` (a population's)."""
        self._stack, self._row, self._view = stack, row, None

    # ------------------------------------------------------------------ state
    def _own_state(self) -> dict:
        critic, optimizer = self._stack.row_state(self._row, self._names)
        return {"critic": critic, "optimizer": optimizer}

    def _load_own_state(self, state: dict) -> None:
        self._stack.load_row(self._row, self._names, state["critic"], state["optimizer"])

    def _loaded(self) -> None:
        # the config's Adam settings hold (the checkpoint's differ only where a resumed run changed
        # them, see config.resume_changes)
        self._stack.set_hyper(self._row, hyper_of(self.cfg.disc))
        if self.epoch:  # a count (a checkpoint of an earlier format held it as a float)
            self.last["nonfinite"] = int(self.last["nonfinite"])
        # a resumed run that raised avg_hor starts its window from the accuracies the checkpoint kept
        self._window = deque(list(self.recent["acc_mean"])[-self.cfg.avg_hor:], maxlen=self.cfg.avg_hor)
