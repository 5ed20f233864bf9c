"""Live logging of a sweep to W&B and MLflow: a Tune callback on the driver that hands each trial's
config, every report row of every result (rows.expand: a result carries a span of reports) and its
ending to a :class:`tune_sd.tracking.Tracker`, which logs them off the driver's thread. Packed and
unpacked trials report alike, so they log alike. ``tune-sd export --to`` hands the same things from the
result files (tracking_export.py)."""

from __future__ import annotations

from pathlib import Path

from ray.tune import Callback

from tune_sd.store import is_uri
from tune_sd.tracking import Target, Tracker, from_dicts

from tune_sd.tune.results import ending
from tune_sd.tune.report_rows import expand
from tune_sd.tune.stopping.records import ended_before
from tune_sd.tune.tracking_export import summary
from tune_sd.tune.trial_config import split_trial_config


def tree_of(trial) -> dict:
    return split_trial_config(trial.config or {})[0]


def last_figure(tree: dict, epoch: int) -> int | None:
    """The epoch of the last figure a trial that reported up to ``epoch`` drew (cadence.py), or None."""
    from tune_sd.engine.config import Config

    from tune_sd.tune.cadence import Cadence

    try:
        cadence = Cadence.of(Config.from_dict(tree))
    except Exception:  # noqa: BLE001 - a config the engine refused drew nothing
        return None
    reports = -(-epoch // cadence.report_every) if epoch > 0 else 0
    due = [n for n in range(reports, 0, -1) if cadence.figure_due(n)][:1]
    return min(due[0] * cadence.report_every, epoch) if due else None


class SweepTracking(Callback):
    """Logs every trial of a sweep to ``targets``. Comes after the stop recorder (it reads the stop
    reason the recorder writes into a trial's last result). ``continued``: the targets a resumed sweep
    logged to before (its trials' earlier epochs are there already)."""

    def __init__(self, targets: list[Target], sweep: str, study: str, searched: list[str] | None, exp_dir,
                 epochs: int, scheduler: str, continued: bool = False):
        self.targets = list(targets)
        self.sweep, self.study, self.searched = sweep, study, searched
        self.exp_dir, self.epochs, self.scheduler, self.continued = str(exp_dir), epochs, scheduler, continued
        self.tracker: Tracker | None = None
        self._logged_to: dict[str, int] = {}
        self._looked = False

    def __getstate__(self):  # pickled with the run config (Tuner.restore): no threads, no open runs
        return {k: getattr(self, k) for k in ("sweep", "study", "searched", "exp_dir", "epochs", "scheduler")} | {
            "targets": [t.as_dict() for t in self.targets]}

    def __setstate__(self, state):
        self.__init__(from_dicts(state["targets"]), state["sweep"], state["study"], state["searched"],
                      state["exp_dir"], state["epochs"], state["scheduler"])

    def _tracker(self) -> Tracker:
        if self.tracker is None:
            folder = None if is_uri(self.exp_dir) else Path(self.exp_dir)
            self.tracker = Tracker(self.targets, self.sweep, self.study, self.searched, folder=folder,
                                   later=f"tune-sd export {self.exp_dir} --to SERVICE logs it later")
        return self.tracker

    def on_step_begin(self, iteration, trials, **info):
        if self._looked:
            return
        self._looked = True
        self._tracker()  # the writers start (and a missing package is said) before the first result
        if self.continued:  # a resumed sweep: what each restored trial reported before is logged already
            for trial in trials:
                epoch = (trial.last_result or {}).get("epoch")
                if isinstance(epoch, (int, float)) and not ended_before(trial):
                    self._logged_to[str(trial.trial_id)] = int(epoch)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tracker, tid = self._tracker(), str(trial.trial_id)
        if not tracker.started(tid):
            tree, labels = split_trial_config(trial.config or {})
            tracker.start(tid, tree, labels, logged_to=self._logged_to.get(tid))
        tracker.rows(tid, expand(result))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, failed=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, failed=True)

    def _end(self, trial, failed: bool) -> None:
        tracker, tid = self._tracker(), str(trial.trial_id)
        if not tracker.started(tid):
            return
        last = dict(trial.last_result or {})
        error = last.get("error") or ("error" if failed else None)
        status = "ERROR" if error else "TERMINATED"
        target = (trial.config or {}).get("epochs", self.epochs)
        ended = summary(status, int(last.get("epoch", 0) or 0), ending(last, status, error, target, self.scheduler))
        folders = [getattr(trial, "local_path", None), getattr(trial, "path", None)]
        tracker.end(tid, ended, figures_from=[f for f in folders if f and not is_uri(f)], failed=bool(error),
                    figure_at=last_figure(tree_of(trial), int(last.get("epoch", 0) or 0)))

    def close(self) -> None:
        """After the sweep's own tables are written: wait for the services to take what they were handed."""
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None
