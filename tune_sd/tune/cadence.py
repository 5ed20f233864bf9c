"""A trial's cadence and files, wherever its epochs run (its own process or a shared executor): when it
checkpoints and draws its figure, and the file its checkpoint is. No Ray, no torch: a packed trial's
process reads this and waits. The values are the run config's (``report_every``, ``checkpoint_every``,
``checkpoint_minutes``, ``figure_every``, ``figure_minutes``; their defaults are the engine's,
``engine.config.SCHEMA``), read where the engine is.

Checkpoints and figures are paced by the clock: a checkpoint at most every ``checkpoint_minutes``
(default 5) and at the end (Tune's ``checkpoint_at_end``, which also covers a trial a scheduler or
stopper ends), a figure at the first report, then at most every ``figure_minutes`` (default 15), and at
the end. So a trial of 100 000 epochs writes as many as one of an hour, and its disk is bounded: Tune
keeps its newest checkpoints (``num_to_keep``), each of a size that does not grow with the epochs. A
count of reports (``checkpoint_every``, ``figure_every``), where the config gives one, takes the clock's
place (``figure_every: 0``: no figures).
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
    checkpoint_every: int = 0  # every this many reports (0: by the clock, checkpoint_s)
    figure_every: int = 0      # every this many reports and at the first (0: by the clock, figure_s)
    checkpoint_s: float = 0.0  # seconds between checkpoints where checkpoint_every is 0 (0: only at the end)
    figure_s: float = 0.0      # seconds between figures where figure_every is 0 (0: never)

    @classmethod
    def of(cls, cfg) -> "Cadence":
        """A run config's cadence (an engine ``Config``)."""
        figure_every = cfg.figure_every
        return cls(int(cfg.report_every), int(cfg.checkpoint_every or 0), int(figure_every or 0),
                   checkpoint_s=60.0 * float(cfg.checkpoint_minutes) if not cfg.checkpoint_every else 0.0,
                   figure_s=60.0 * float(cfg.figure_minutes) if figure_every is None else 0.0)

    def to_dict(self) -> dict:
        return asdict(self)

    def checkpoint_due(self, reports: int, since_s: float = 0.0) -> bool:
        """After report number ``reports`` (1, 2, ...), ``since_s`` seconds after the trial's last
        checkpoint (or its start)."""
        if self.checkpoint_every:
            return reports % self.checkpoint_every == 0
        return bool(self.checkpoint_s) and since_s >= self.checkpoint_s

    def figure_due(self, reports: int, since_s: float = 0.0, done: bool = False) -> bool:
        """After report number ``reports``, ``since_s`` seconds after the trial's last figure; ``done``:
        it is the trial's last report (a figure by the clock ends the run with one)."""
        if self.figure_every:
            return reports % self.figure_every == 0 or reports == 1
        return bool(self.figure_s) and (reports == 1 or done or since_s >= self.figure_s)

    def span(self, reports: int) -> int:
        """Reports of the next result after report number ``reports``: up to the next one due a
        checkpoint or a figure by count (so that these stay where the cadence puts them), at most
        ``MAX_SPAN_REPORTS``; the clock's are due at the end of a result (a few seconds at most)."""
        for k in range(1, MAX_SPAN_REPORTS):
            n = reports + k
            if (self.checkpoint_every and n % self.checkpoint_every == 0) or (
                    self.figure_every and (n % self.figure_every == 0 or n == 1)) or (self.figure_s and n == 1):
                return k
        return MAX_SPAN_REPORTS

    def reports_at(self, epoch: int) -> int:
        """Reports made by a run at ``epoch`` (a restored one)."""
        return epoch // self.report_every
