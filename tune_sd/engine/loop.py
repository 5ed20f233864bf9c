"""What every run of the engine shares (the SD study, a regularisation run): the epoch loop, the
stopping rule (``epochs`` or ``runtime``), the metric history as columns, saving, and what a
resumed run may change.

An epoch is the unit of state: ``step()`` either completes one or leaves the run as it was (a
non-finite loss is rolled back before it is raised), and Ctrl-C during ``run()`` takes effect at the
next epoch boundary (:class:`EpochBoundaryInterrupt`), so that whatever is saved is a whole number of
epochs and a resumed run goes on bit for bit.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from .checkpoint import save_checkpoint


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
    """A subclass provides ``cfg``, ``epoch``, ``elapsed``, ``history``, ``changes``, ``step()``,
    ``state_dict()`` and ``metrics`` (the names of its per-epoch metrics)."""

    metrics: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        runtime = self.cfg.runtime
        return self.epoch >= self.cfg.epochs or (runtime is not None and self.elapsed >= runtime)

    def run(self, epochs: int | None = None, callback=None) -> dict | None:
        """Step until ``done`` (or ``epochs`` more epochs); ``callback(metrics)`` after each epoch.

        Ctrl-C lets the epoch in progress and its callback finish, then raises :class:`Interrupted`
        (a ``KeyboardInterrupt``) with the run at that epoch; a second Ctrl-C raises at once."""
        metrics, stop = None, (self.epoch + epochs if epochs is not None else None)
        with EpochBoundaryInterrupt() as interrupt:
            while not self.done and (stop is None or self.epoch < stop):
                metrics = self.step()
                if callback is not None:
                    callback(metrics)
                if interrupt.requested:
                    raise Interrupted(f"interrupted at epoch {self.epoch}")
        return metrics

    def curve(self, start: int = 0) -> dict[str, list]:
        """The per-epoch metric history from epoch ``start`` + 1 on, as columns."""
        cols = {"epoch": list(range(start + 1, self.epoch + 1))}
        cols.update({m: self.history[m][start:] for m in self.metrics})
        return cols

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(self.state_dict(), path)

    @classmethod
    def from_state(cls, state: dict, device="cpu", **overrides):
        """Rebuild a run from its checkpoint's state. ``overrides`` (dotted keys, e.g. ``epochs`` or
        ``disc.lr``) may change what a resumed run can apply from its next epoch on; each change is
        kept in ``changes`` (and so in the next checkpoint) with that epoch. A key that would change
        a shape or the data raises :class:`~tune_sd.errors.ConfigError` naming it and why (see
        :func:`~tune_sd.engine.config.resume_changes`)."""
        from .config import Config, resume_changes

        cfg = Config.from_dict(state["config"])
        changes: list[dict] = []
        if overrides:
            new = cfg.replace(**overrides)
            changes = resume_changes(cfg, new, epoch=int(state["epoch"]) + 1)
            cfg = new
        run = cls(cfg, device=device)
        run.load_state_dict(state)
        run.changes = run.changes + changes
        return run


def load_changes(state: dict) -> list[dict]:
    """The ``changes`` records of a checkpoint (none in one written before they were kept)."""
    return [dict(c) for c in state.get("changes", [])]
