"""What every run of the engine shares (the SD study, a regularisation run): the epoch loop, the
stopping rule (``epochs`` or ``runtime``), the metric history as columns, and saving."""

from __future__ import annotations

from pathlib import Path

from .checkpoint import save_checkpoint


class RunLoop:
    """A subclass provides ``cfg``, ``epoch``, ``elapsed``, ``history``, ``step()``, ``state_dict()``
    and ``metrics`` (the names of its per-epoch metrics)."""

    metrics: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        runtime = self.cfg.runtime
        return self.epoch >= self.cfg.epochs or (runtime is not None and self.elapsed >= runtime)

    def run(self, epochs: int | None = None, callback=None) -> dict | None:
        """Step until ``done`` (or ``epochs`` more epochs); ``callback(metrics)`` after each epoch."""
        metrics, stop = None, (self.epoch + epochs if epochs is not None else None)
        while not self.done and (stop is None or self.epoch < stop):
            metrics = self.step()
            if callback is not None:
                callback(metrics)
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
        """Rebuild a run from its checkpoint's state; ``overrides`` (dotted keys such as ``epochs``)
        may change what does not alter the networks, e.g. raise ``epochs``."""
        from .config import Config

        cfg = Config.from_dict(state["config"])
        if overrides:
            cfg = cfg.replace(**overrides)
        run = cls(cfg, device=device)
        run.load_state_dict(state)
        return run
