"""The one path from a sweep's trials to the tracking services, for a live sweep (a Tune callback on
the driver, ``tune_sd.tune.tracking``) and for a finished one (``tune-sd export --to``) alike: each
trial's engine config, every report row at its epoch, its ending and its figures.

Nothing of the sweep waits on a service: each writer runs in a thread of its own, fed by a queue.
A writer that fails (a package that is missing, a service that cannot be reached, a project name the
service refuses) is said once, in one line, and is not called again; the sweep's own records (its
Parquet tables, TensorBoard, checkpoints) do not depend on it.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from numbers import Number
from pathlib import Path

from tune_sd.engine.config import Config, flatten

from ._base import TrialRun, Writer
from .names import group_name
from .targets import Target

#: the numbers of a report row that are logged (the columns of curves.parquet that are metrics)
METRICS = ("acc", "acc_mean", "avg_acc", "loss_real", "loss_fake", "loss_gp", "grad_max", "time_s",
           "nonfinite", "loss", "mse", "val_mse", "reg", "critic_score", "min_corr", "mean_corr", "critic_acc")
#: the best value of these, over the rows logged, joins a run's summary
BEST = {"avg_acc": max, "val_mse": min, "min_corr": max}
_STOP = object()


def report_metrics(row: dict) -> tuple[int, dict] | None:
    """A report row -> (epoch, {metric: value}) with the finite numbers only; None without an epoch."""
    epoch = row.get("epoch")
    if not isinstance(epoch, Number) or isinstance(epoch, bool) or not math.isfinite(float(epoch)):
        return None
    metrics = {}
    for key in METRICS:
        value = row.get(key)
        if isinstance(value, Number) and not isinstance(value, bool) and math.isfinite(float(value)):
            metrics[key] = float(value)
    return int(epoch), metrics


def plain(value):
    """A value as every service stores it alike, whether read from a live result or a Parquet table
    (numpy scalars and arrays, whole floats of a column with gaps)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def make_writer(target: Target, sweep: str, folder: Path | None) -> Writer:
    """The writer of a target (ImportError: its package is not installed)."""
    if target.service == "wandb":
        from ._wandb import WandbWriter

        return WandbWriter(target.where, sweep, folder)
    from ._mlflow import MlflowWriter

    return MlflowWriter(target.where, sweep, folder)


_SAY_LOCK = threading.Lock()


def say(line: str) -> None:
    """One line on stderr, whole: the writers' threads may say theirs at the same moment (print writes a
    line and its newline apart, and two threads' lines ran together)."""
    with _SAY_LOCK:
        sys.stderr.write(f"tune-sd: {line}\n")
        sys.stderr.flush()


class _Worker:
    """A writer in a thread of its own; its first failure is said once and ends its work."""

    def __init__(self, target: Target, sweep: str, folder: Path | None, later: str):
        self.target, self.sweep, self.folder, self.later = target, sweep, folder, later
        self.failed = False
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"tune-sd-{target.service}", daemon=True)
        self.thread.start()

    def put(self, op: str, *args) -> None:
        if not self.failed:
            self.queue.put((op, args))

    def _run(self) -> None:
        writer = None
        try:
            writer = make_writer(self.target, self.sweep, self.folder)
        except ImportError as e:
            self._fail(f"{e.name or e} is not installed (pip install 'tune-sd[{self.target.service}]'; "
                       f"from a clone: pip install -c constraints.txt -e '.[{self.target.service}]')")
        except Exception as e:  # noqa: BLE001 - a logger never fails the sweep
            self._fail(_first_line(e))
        while True:
            op, args = self.queue.get()
            try:
                if op is _STOP:
                    if writer is not None and not self.failed:
                        writer.close()
                    return
                if writer is not None and not self.failed:
                    if op == "_end":  # the figures are read here, off the sweep's thread
                        trial_id, summary, folders, failed = args
                        writer.end(trial_id, summary, _figures(folders), failed)
                    else:
                        getattr(writer, op)(*args)
            except Exception as e:  # noqa: BLE001 - a logger never fails the sweep
                self._fail(_first_line(e))
            finally:
                self.queue.task_done()

    def _fail(self, why: str) -> None:
        if not self.failed:
            self.failed = True
            say(f"{self.target.service} ({self.target.where}): {why}; not logging there (the sweep's own "
                f"records are complete{'; ' + self.later if self.later else ''})")


#: how long a writer waits for a trial's last figure to be drawn (once it waited in vain, not again)
FIGURE_WAIT_S = 10.0
_waited_in_vain = threading.Event()


def _figures(where) -> list:
    from .figures import read_figures

    folders, at = where
    deadline = time.monotonic() + (0 if at is None or _waited_in_vain.is_set() else FIGURE_WAIT_S)
    while True:
        found = next((f for f in (read_figures(folder) for folder in folders) if f), [])
        if at is None or any(f.step >= at for f in found):
            return found
        if time.monotonic() >= deadline:
            _waited_in_vain.set()
            return found
        time.sleep(0.5)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


class Tracker:
    """A sweep's trials to its targets. ``searched``: the sweep's searched dotted keys (a config's
    name); ``folder``: a local folder for what a service writes beside the sweep (W&B's offline runs);
    ``later``: how to log the sweep afterwards, said where a service fails."""

    def __init__(self, targets: list[Target], sweep: str, study: str, searched: list[str] | None,
                 folder: Path | None = None, later: str = ""):
        self.sweep, self.study, self.searched = sweep, study, searched
        self.workers = [_Worker(t, sweep, folder, later) for t in targets]
        self._last: dict[str, int] = {}   # trial id -> last epoch logged
        self._best: dict[str, dict] = {}
        self._started: set[str] = set()

    # ------------------------------------------------------------------ a trial
    def started(self, trial_id: str) -> bool:
        return str(trial_id) in self._started

    def start(self, trial_id: str, tree: dict, labels: dict, logged_to: int | None = None) -> None:
        """Open a trial's run: ``tree`` its engine config as the searcher set it (nested), ``labels``
        its variant, rung, repeat; ``logged_to``: the epoch a resumed sweep's trial was logged up to."""
        trial_id = str(trial_id)
        self._started.add(trial_id)
        if logged_to is not None:
            self._last[trial_id] = int(logged_to)
        try:  # every key of the engine's config, its defaults included, as the trial ran it
            tree = Config.from_dict(tree).to_dict()
        except Exception:  # noqa: BLE001 - a trial that could not run still gets its run
            tree = dict(tree)
        group = group_name({**tree, **labels}, self.searched)
        name = f"{group} #{labels['repeat']}" if "repeat" in labels else f"{group} ({trial_id})"
        full = {**tree, **labels, "trial_id": trial_id, "sweep": self.sweep}
        run = TrialRun(sweep=self.sweep, study=self.study, trial_id=trial_id, group=group, name=name,
                       config=full, params={k: plain(v) for k, v in flatten(full).items()})
        self._put("start", run)

    def rows(self, trial_id: str, rows: list[dict]) -> None:
        """Report rows of a trial, oldest first; rows at an epoch already logged are left out (a trial
        restarted from a checkpoint reports some epochs again)."""
        trial_id = str(trial_id)
        last = self._last.get(trial_id, -1)
        out = []
        for row in rows:
            point = report_metrics(row)
            if point is None or point[0] <= last:
                continue
            last = point[0]
            out.append(point)
            best = self._best.setdefault(trial_id, {})
            for metric, pick in BEST.items():
                if metric in point[1]:
                    held = best.get(metric)
                    best[metric] = point[1][metric] if held is None else pick(held, point[1][metric])
        self._last[trial_id] = last
        if out:
            self._put("log", trial_id, out)

    def end(self, trial_id: str, summary: dict, figures_from=(), failed: bool = False,
            figure_at: int | None = None) -> None:
        """Close a trial's run: ``summary`` (stop_reason, stop_epoch, the evidence, status, epochs),
        the best values logged, and the figures TensorBoard holds in the first of ``figures_from``
        (folders) that has any. ``figure_at``: the epoch of the trial's last figure, where it may still
        be being drawn (a live trial's: a packed trial's executor draws it after the report)."""
        trial_id = str(trial_id)
        values = {k: plain(v) for k, v in summary.items()}
        values = {k: v for k, v in values.items() if v is not None}
        values.update({f"best_{m}": v for m, v in self._best.pop(trial_id, {}).items()})
        self._put("_end", trial_id, values, (tuple(Path(p) for p in figures_from if p), figure_at), failed)

    # ------------------------------------------------------------------ analysis, the end
    def analysis(self, name: str, tables: dict, trends: dict, figures: list[Path]) -> None:
        self._put("log_analysis", name, tables, trends, figures)

    def close(self, patience: float = 60.0) -> None:
        """Wait for every writer to finish what it was handed, as long as it makes progress: one that
        has handled nothing for ``patience`` seconds is said and left (a daemon thread)."""
        for w in self.workers:
            w.queue.put((_STOP, ()))
        for w in self.workers:
            held, since = w.queue.unfinished_tasks, time.monotonic()
            while w.thread.is_alive():
                w.thread.join(1.0)
                now = w.queue.unfinished_tasks
                if now < held:
                    held, since = now, time.monotonic()
                elif time.monotonic() - since > patience:
                    say(f"{w.target.service} ({w.target.where}): no progress for {patience:.0f} s; "
                        f"{now} item(s) left unlogged")
                    break

    @property
    def active(self) -> bool:
        return any(not w.failed for w in self.workers)

    def _put(self, op: str, *args) -> None:
        for w in self.workers:
            w.put(op, *args)
