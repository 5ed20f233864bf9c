"""A trial's cadence and files, wherever its epochs run (its own process or a shared executor): when it
checkpoints and draws its figure, and the file its checkpoint is. No Ray, no torch: a packed trial's
process reads this and waits. The values are the run config's (``report_every``, ``checkpoint_every``,
``figure_every``; their defaults are the engine's, ``engine.config.SCHEMA``), read where the engine is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# a trial checkpoint's file: a Study state, packed or not (the two interchange)
CHECKPOINT_FILE = "study.pt"

# results per second that the Tune driver gets from all of a sweep's trials together, at most: each
# costs it about 30 ms of CPU, so this is about a fifth of a core (reports ride along: report_rows.py)
DRIVER_RESULTS_PER_S = 6.0
# a trial's results come at least this often (the progress line, stop decisions) and at most this often
MAX_RESULT_S, MIN_RESULT_S = 10.0, 1.0
# reports of one result at most (a span also ends at a report due a checkpoint or figure, and at the end)
MAX_SPAN_REPORTS = 1000


def result_interval(trials: int) -> float:
    """Seconds over which a trial gathers its reports into one Tune result, where ``trials`` trials of
    the sweep run at once: the driver gets at most ``DRIVER_RESULTS_PER_S`` results a second."""
    return min(MAX_RESULT_S, max(MIN_RESULT_S, trials / DRIVER_RESULTS_PER_S))


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

    def span(self, reports: int) -> int:
        """Reports of the next result after report number ``reports``: up to the next one due a
        checkpoint or a figure (so that these stay where the cadence puts them), at most
        ``MAX_SPAN_REPORTS``."""
        for k in range(1, MAX_SPAN_REPORTS):
            if self.checkpoint_due(reports + k) or self.figure_due(reports + k):
                return k
        return MAX_SPAN_REPORTS

    def reports_at(self, epoch: int) -> int:
        """Reports made by a run at ``epoch`` (a restored one)."""
        return epoch // self.report_every
