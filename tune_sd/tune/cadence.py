"""A trial's cadence and files, wherever its epochs run (its own process or a shared executor): when it
checkpoints and draws its figure, and the file its checkpoint is. No Ray, no torch: a packed trial's
process reads this and waits. The values are the run config's (``report_every``, ``checkpoint_every``,
``figure_every``; their defaults are the engine's, ``engine.config.SCHEMA``), read where the engine is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# a trial checkpoint's file: a Study state, packed or not (the two interchange)
CHECKPOINT_FILE = "study.pt"


@dataclass(frozen=True)
class Cadence:
    report_every: int
    checkpoint_every: int = 0  # every this many reports (0: only at the end)
    figure_every: int = 0      # every this many reports and at the first (0: never)

    @classmethod
    def of(cls, cfg) -> "Cadence":
        """A run config's cadence (an engine ``Config``)."""
        return cls(int(cfg.report_every), int(cfg.checkpoint_every or 0), int(cfg.figure_every or 0))

    def to_dict(self) -> dict:
        return asdict(self)

    def checkpoint_due(self, reports: int) -> bool:
        """After report number ``reports`` (1, 2, ...)."""
        return bool(self.checkpoint_every) and reports % self.checkpoint_every == 0

    def figure_due(self, reports: int) -> bool:
        return bool(self.figure_every) and (reports % self.figure_every == 0 or reports == 1)

    def reports_at(self, epoch: int) -> int:
        """Reports made by a run at ``epoch`` (a restored one)."""
        return epoch // self.report_every
