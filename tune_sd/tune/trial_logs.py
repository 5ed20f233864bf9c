"""A trial's JSON and CSV logs (``result.json``, ``progress.csv``): a line per report (the rows of a
result, report_rows.py), kept whole across the trial's restarts.

Tune writes a trial's logs in the driver's staging folder and uploads that folder to the storage path
from time to time. When a trial starts again from a checkpoint (after a failure, or a lost node), Tune's
loggers first copy the trial's log back from storage, which is meant for a resumed run on a fresh
driver. Within one run that copy is older than the driver's own: the reports written since the last
upload are lost, and ``curves.parquet`` has a gap where they were. These loggers copy a log from storage
only where the driver has none of its own (a resumed sweep); the driver's log is never older than the
copy that was uploaded from it.
"""

from __future__ import annotations

from pathlib import Path

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from tune_sd.tune.report_rows import expand


class _KeepDriverLog:
    # Tune's loggers call this hook as a trial starts (tests/test_tune.py checks that they still do)
    def _restore_from_remote(self, file_name: str, trial) -> None:
        local = Path(trial.local_path, file_name)
        if local.exists() and local.stat().st_size > 0:
            return  # this driver wrote it: it holds every row the storage copy has, and the newer ones
        super()._restore_from_remote(file_name, trial)

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        for row in expand(result):  # a line per report, each with its own training_iteration
            super().log_trial_result(iteration, trial, row)


class TrialJsonLogger(_KeepDriverLog, JsonLoggerCallback):
    """Tune's ``result.json`` logger (what the Parquet export reads), keeping the driver's rows."""


class TrialCsvLogger(_KeepDriverLog, CSVLoggerCallback):
    """Tune's ``progress.csv`` logger, keeping the driver's rows."""
