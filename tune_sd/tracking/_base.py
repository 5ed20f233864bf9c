"""What a tracking service is handed: one run per trial (:class:`TrialRun`), its report rows at their
epochs, its ending and its figures; and an analysis. One small writer module per service
(``_wandb.py``, ``_mlflow.py``) behind :class:`Writer`. Writers raise on any failure; the
:class:`~tune_sd.tracking.tracker.Tracker` calling them says so once and stops using the writer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrialRun:
    """A trial as a run: ``config`` is the trial's engine config, nested as the notebook's ``hp``,
    with its labels (variant, rung, repeat); ``group`` names its config (names.group_name), shared
    by the config's seeds."""

    sweep: str
    study: str
    trial_id: str
    group: str
    name: str
    config: dict
    params: dict = field(default_factory=dict)  # the config flat (dotted keys), for flat stores


@dataclass
class Figure:
    """A figure the trial drew into TensorBoard: its tag, the epoch it shows, its PNG bytes."""

    tag: str
    step: int
    png: bytes


class Writer(ABC):
    """One service. ``where``: the W&B project or the MLflow tracking URI; ``folder``: a local
    folder for what the service writes beside the sweep (W&B's offline runs)."""

    service = ""

    def __init__(self, where: str, sweep: str, folder: Path | None = None):
        self.where, self.sweep, self.folder = where, sweep, folder

    @abstractmethod
    def start(self, run: TrialRun) -> None:
        """Open the trial's run (a resumed sweep's trial: its run again, where the service can)."""

    @abstractmethod
    def log(self, trial_id: str, rows: list[tuple[int, dict]]) -> None:
        """Report rows, each (epoch, {metric: value}), epochs increasing."""

    @abstractmethod
    def end(self, trial_id: str, summary: dict, figures: list[Figure], failed: bool) -> None:
        """Close the trial's run: why it ended and the evidence (``summary``), its figures."""

    @abstractmethod
    def log_analysis(self, name: str, tables: dict, trends: dict, figures: list[Path]) -> None:
        """An analysis of the sweep: ``tables`` {name: DataFrame}, ``trends`` {config: trend}, figure files."""

    def close(self) -> None:
        """Everything written; called once, after the last trial."""
