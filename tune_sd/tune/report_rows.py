"""Several report rows per Tune result: the curve keeps every report, the driver sees a bounded rate.

A trial reports every ``report_every`` epochs (a row of the curve: the last epoch's metrics and the
report's). It hands Tune one result per span of reports: the span ends after
:func:`tune_sd.tune.cadence.result_interval` seconds, at a report that is due a checkpoint or a figure,
or where the run ends. The result is the span's last row; the earlier ones ride along under ``ROWS``.
The Tune driver spends about 30 ms of CPU per result (its callbacks, scheduler, stopper and the
actor call); sent a result per report, 16 packed members would cost it most of a core.

Everything in the driver that reads a trial's curve takes the span's rows one by one (:func:`expand`):
the JSON and CSV logs (``result.json``, which the Parquet export reads), TensorBoard, the non-learner
stopper and the schedulers, which therefore decide on every report as before. A stop decided at an
earlier row takes effect at the result: the trial has trained to the span's end. No Ray, no torch.
"""

from __future__ import annotations

# the result's key holding the span's earlier rows, oldest first
ROWS = "report_rows"
# keys of a result that belong to its end only: an earlier row neither ends the trial nor checkpoints
_END_ONLY = ("done", "should_checkpoint", "stop_reason", "error")


def expand(result: dict) -> list[dict]:
    """The rows a result carries, oldest first, each as a result of its own: the earlier rows with the
    result's context (its config, trial id, node and Tune's bookkeeping) and their own metrics, then
    the result itself. A result without rows is returned as it is (the same dict)."""
    rows = result.get(ROWS)
    if not rows:
        return [result]
    last = {k: v for k, v in result.items() if k != ROWS}
    context = {k: v for k, v in last.items() if k not in _END_ONLY and not k.startswith("stop_")}
    return [{**context, **row, "done": False} for row in rows] + [last]


def span(rows: list[dict]) -> dict:
    """A span's rows (oldest first) as one result: the last row, the earlier ones under ``ROWS``."""
    result = dict(rows[-1])
    if len(rows) > 1:
        result[ROWS] = rows[:-1]
    return result
