"""What every run of the engine shares (the SD study, a regularisation run): the epoch loop, the
stopping rule (``epochs`` or ``runtime``), the last epoch's metrics and the few recent epochs a report
needs, the state a checkpoint holds (and the check that a checkpoint is of this kind of run), saving,
and what a resumed run may change.

A run keeps no per-epoch history: its curve is what its callers write as it goes (``tune-sd train``'s
``curve.parquet``, a trial's reports), so that its memory and its checkpoint's size do not grow with
the epochs it trained. It keeps the last epoch's metrics (``last``) and, of the metrics its reports
and moving averages read, the last ``recent_epochs()`` values (``recent``); a checkpoint holds those,
and a resumed run goes on bit for bit. :class:`Curve` gathers a run's per-epoch metrics where a
caller wants them (``run(callback=curve.add)``).

The loop is :meth:`RunLoop.run`; ``tune-sd train`` and the Tune trainable both call it, with their
own per-epoch callbacks and epoch budgets (the whole run, or one report).

An epoch is the unit of state: ``step()`` either completes one or leaves the run as it was (a
non-finite loss is rolled back before it is raised), and Ctrl-C during ``run()`` takes effect at the
next epoch boundary (:class:`EpochBoundaryInterrupt`), so that whatever is saved is a whole number of
epochs and a resumed run goes on bit for bit.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections import deque
from pathlib import Path

import torch

from tune_sd.errors import StudyError

from .checkpoint import FORMATS, load_checkpoint, save_checkpoint


class Interrupted(KeyboardInterrupt):
    """Ctrl-C took effect at an epoch boundary: the run's state is a whole number of epochs."""


class EpochBoundaryInterrupt:
    """Within ``with``, a first SIGINT (Ctrl-C) only sets ``requested``: the loop finishes the epoch
    in progress (and any save) and stops at the boundary. A second one raises ``KeyboardInterrupt``
    at once, in the middle of whatever runs; then nothing of the run's memory may be saved.

    Signal handlers can only be set from the main thread; elsewhere Python never delivers
    KeyboardInterrupt, so there is nothing to defer and this does nothing."""

    def __init__(self, notice: str = "Ctrl-C: stopping when this epoch ends (press again to stop at once)"):
        self.notice, self.requested, self._previous = notice, False, None

    def __enter__(self) -> "EpochBoundaryInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{self.notice}", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> bool:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        elif threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return False


class RunLoop:
    """A subclass provides ``cfg``, ``epoch``, ``elapsed``, ``changes``, ``rng`` and ``step()`` (which
    hands each whole epoch's metrics to ``_keep``); ``format`` (its checkpoints' ``format``; ``reads``:
    earlier ones it resumes), ``metrics`` (the names of its per-epoch metrics) and ``report_means``;
    and its own parts of the state: ``_own_state()`` (what ``state_dict()`` adds),
    ``_load_own_state(state)`` (loads it) and ``_loaded()`` (after a load: what follows from the loaded
    state and the config). Its ``__init__`` calls ``_start_keeping()``."""

    format: str = ""
    reads: tuple[str, ...] = ()  # the formats it resumes besides its own (earlier versions)
    metrics: tuple[str, ...] = ()
    # metrics of a report (a run of several epochs, as a Tune trial reports them): name -> the
    # per-epoch metric whose mean over the report's epochs it is
    report_means: dict[str, str] = {}

    @property
    def done(self) -> bool:
        runtime = self.cfg.runtime
        return self.epoch >= self.cfg.epochs or (runtime is not None and self.elapsed >= runtime)

    # ------------------------------------------------------------------ the loop
    def run(self, epochs: int | None = None, callback=None) -> dict | None:
        """Step until ``done`` (or ``epochs`` more epochs); ``callback(metrics)`` after each epoch.
        Returns the last epoch's metrics (None when no epoch ran).

        Ctrl-C lets the epoch in progress and its callback finish, then raises :class:`Interrupted`
        (a ``KeyboardInterrupt``) with the run at that epoch; a second Ctrl-C raises at once."""
        metrics, stop = None, (self.epoch + epochs if epochs is not None else None)
        # autograd on, whatever the thread was left in: a Ctrl-C that lands inside torch.no_grad()'s
        # __enter__ leaves it off for the rest of the thread (the next run in a notebook would not train)
        with EpochBoundaryInterrupt() as interrupt, torch.enable_grad():
            while not self.done and (stop is None or self.epoch < stop):
                metrics = self.step()
                if callback is not None:
                    callback(metrics)
                if interrupt.requested:
                    raise Interrupted(f"interrupted at epoch {self.epoch}")
        return metrics

    # ------------------------------------------------------------------ what a run keeps of its epochs
    def recent_epochs(self) -> int:
        """How many of the last epochs ``recent`` keeps: a report's (``report_every``); a subclass
        whose moving average reads more keeps more."""
        return int(self.cfg.report_every)

    def recent_metrics(self) -> tuple[str, ...]:
        """The per-epoch metrics whose recent values are kept: those the reports average."""
        return tuple(dict.fromkeys(self.report_means.values()))

    def _start_keeping(self, last: dict | None = None, recent: dict | None = None) -> None:
        """``last`` (every metric, NaN before the first epoch) and ``recent`` (the newest values of
        ``recent_metrics()``, as many as ``recent_epochs()``; older values beyond that are dropped)."""
        self.last = {m: float("nan") for m in self.metrics} if last is None else dict(last)
        n = self.recent_epochs()
        self.recent = {m: deque((recent or {}).get(m, ())[-n:], maxlen=n) for m in self.recent_metrics()}

    def _keep(self, metrics: dict) -> None:
        """A whole epoch's metrics: the last ones, and the recent values of those reports read."""
        self.last = {m: metrics[m] for m in self.metrics}
        for m, values in self.recent.items():
            values.append(metrics[m])

    def last_metrics(self) -> dict:
        """The last epoch's metrics as ``step()`` returned them (NaN for each before the first epoch)."""
        return {"epoch": self.epoch, **self.last}

    def report(self, since: int) -> dict:
        """The metrics of the report made of the epochs after epoch ``since`` (``report_means``): each
        the mean of its per-epoch metric over them, unlike a moving average independent from one report
        to the next. A report in which no epoch ran (a run restored at its end) has its last epoch's.
        A report spans at most ``recent_epochs()`` epochs (a trial's: ``report_every``)."""
        count = self.epoch - since
        if count > self.recent_epochs():
            raise StudyError(f"a report of {count} epochs (since epoch {since}): the run keeps the last "
                             f"{self.recent_epochs()} (report_every)")
        return {name: mean_last(self.recent[metric], count) for name, metric in self.report_means.items()}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """The run at an epoch boundary: what every run keeps, and its own parts (``_own_state``)."""
        return {
            "format": self.format,
            "config": self.cfg.to_dict(),
            "changes": self.changes,
            "epoch": self.epoch,
            "elapsed": self.elapsed,
            "last": dict(self.last),
            "recent": {m: torch.tensor(list(v), dtype=torch.float64) for m, v in self.recent.items()},
            "rng": self.rng.get_state(),
            **self._own_state(),
        }

    def load_state_dict(self, state: dict, where: str = "checkpoint") -> None:
        """Continue from ``state`` (a checkpoint of this kind of run and config; ``where`` names it in
        errors). The config's settings hold where a resumed run changed them."""
        self.check_format(state, where)
        try:
            self._load_own_state(state)
            self.rng.set_state(state["rng"].cpu() if hasattr(state["rng"], "cpu") else state["rng"])
            last, recent = self._kept(state)
            self.epoch, self.elapsed = int(state["epoch"]), float(state["elapsed"])
            self.changes = load_changes(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise StudyError(f"{where} does not fit this config ({type(e).__name__}: "
                             f"{str(e).splitlines()[0]})") from None
        self._start_keeping(last, recent)
        self._loaded()

    def _kept(self, state: dict) -> tuple[dict, dict]:
        """A checkpoint's last metrics and recent values; from the whole history that checkpoints of
        earlier formats hold, its last values."""
        if "history" in state:
            history = {m: [float(x) for x in state["history"][m].tolist()] for m in self.metrics}
            last = {m: (h[-1] if h else float("nan")) for m, h in history.items()}
            return last, {m: history[m] for m in self.recent_metrics()}
        last = {m: state["last"][m] for m in self.metrics}
        return last, {m: [float(x) for x in state["recent"][m].tolist()] for m in self.recent_metrics()}

    @classmethod
    def check_format(cls, state: dict, where: str = "checkpoint") -> None:
        """Refuse the checkpoint of another kind of run (an SD study's for a regularisation run, and
        the other way round), naming both."""
        found = state.get("format")
        if found != cls.format and found not in cls.reads:
            raise StudyError(f"{where} holds {_kind(found)}, not {_kind(cls.format)}")

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(self.state_dict(), path)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device="cpu", **overrides):
        """Rebuild a run from its checkpoint file (see :meth:`from_state` for ``overrides``)."""
        state = load_checkpoint(path)
        cls.check_format(state, str(path))
        return cls.from_state(state, device, **overrides)

    @classmethod
    def from_state(cls, state: dict, device="cpu", **overrides):
        """Rebuild a run from its checkpoint's state. ``overrides`` (dotted keys, e.g. ``epochs`` or
        ``disc.lr``) may change what a resumed run can apply from its next epoch on; each change is
        kept in ``changes`` (and so in the next checkpoint) with that epoch. A key that would change
        a shape or the data raises :class:`~tune_sd.errors.ConfigError` naming it and why (see
        :func:`~tune_sd.engine.config.resume_changes`)."""
        from .config import Config, resume_changes

        cls.check_format(state)
        cfg = Config.from_saved(state["config"])
        changes: list[dict] = []
        if overrides:
            new = cfg.replace(**overrides)
            changes = resume_changes(cfg, new, epoch=int(state["epoch"]) + 1)
            cfg = new
        run = cls(cfg, device=device)
        run.load_state_dict(state)
        run.changes = run.changes + changes
        return run


def mean_last(values, count: int) -> float:
    """The mean of the last ``count`` of ``values`` (oldest first, summed in that order); the last
    value when ``count`` is 0 (NaN where there is none)."""
    values = list(values)
    tail = values[len(values) - count:] if count > 0 else values[-1:]
    return sum(tail) / len(tail) if tail else float("nan")


class Curve:
    """A run's per-epoch metrics as columns, gathered as it goes: ``run.run(callback=curve.add)``, or
    ``add`` with each epoch's metrics that a population's ``step()`` returns for a member. What a
    caller keeps of a run's epochs (a run keeps only its recent ones)."""

    def __init__(self):
        self.columns: dict[str, list] = {}

    def add(self, metrics: dict) -> None:
        if "error" in metrics:  # a rolled-back epoch: not part of the curve
            return
        n = len(self)
        for key, value in metrics.items():
            self.columns.setdefault(key, [None] * n).append(value)
        for key, column in self.columns.items():
            if len(column) == n:
                column.append(None)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), ()))

    def __getitem__(self, key: str) -> list:
        return self.columns[key]

    def clear(self) -> None:
        self.columns = {}


def _kind(fmt) -> str:
    if not isinstance(fmt, str) or fmt not in FORMATS:
        return f"format {fmt!r}"
    what, task = FORMATS[fmt]
    return f"{what} (task {task}, format {fmt})"


def load_changes(state: dict) -> list[dict]:
    """The ``changes`` records of a checkpoint (none in one written before they were kept)."""
    return [dict(c) for c in state.get("changes", [])]
