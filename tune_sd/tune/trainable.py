"""The Ray Tune trainable: a thin adapter around the engine, whose epochs run in one of two places.

- in the trial's own process (:class:`InProcess`): the engine's run (``make_run``: a ``Study``, or a
  regularisation run) built from the trial's config; a report is ``report_every`` epochs of its loop
  (``RunLoop.run``) and the run's per-report metrics (``RunLoop.report``: ``acc_report``);
- in a shared executor (:class:`tune_sd.tune.packing.client.InExecutor`, ``--pack``): the trial is a member of
  the population of its shape key on its node, and its process only waits for its reports.

Either way the trial reports the last epoch's metrics and where it ran; it checkpoints (the run's
``state_dict``, one file: ``cadence.CHECKPOINT_FILE``, packed and unpacked alike) and draws its
figure at the run config's cadence (:mod:`tune_sd.tune.cadence`); a restored trial continues the same
curve.

A checkpoint always holds whole epochs: the run changes only inside ``step()``, and Tune calls
``save_checkpoint`` as the actor's next task, after ``step()`` returned. Ctrl-C in the driver never
reaches a trial (Ray starts its workers in their own process groups with SIGINT blocked; see
tests/test_train_resume.py): Tune stops each trial after its current report without saving, and
``tune-sd resume`` restores the last checkpoint, so a trial goes on bit for bit. A non-finite loss is
rolled back by the engine before it is raised, so the checkpoint Tune writes at the end of such a
trial holds its last whole epoch, not NaN weights.

This module imports neither torch nor the engine at its top: a packed trial's process never does.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import ray
from ray import tune

from tune_sd.store import LABELS

from tune_sd.tune.cadence import CHECKPOINT_FILE, MIN_RESULT_S, Cadence
from tune_sd.tune.report_rows import span
from tune_sd.tune.resume_check import planned_epochs

TRAINING_ITERATION = "training_iteration"  # Tune's key; a trial sets it to its own count of reports
# Ray Train's storage logs "Checkpoint successfully created at: ..." at INFO in the trial's process for
# every checkpoint (ray/train/_internal/storage.py), which goes to the trial's stderr file; its warnings
# and errors still pass
CHECKPOINT_LOGGER = "ray.train._internal.storage"


class SDTrainable(tune.Trainable):
    """One trial. ``pack`` (``packed.PackSettings``, from the sweep) makes its epochs run in the shared
    executor of its shape key; without it they run here. ``result_s``: seconds of reports per Tune
    result (``cadence.result_interval``; report_rows.py)."""

    def setup(self, config: dict, pack=None, result_s: float | None = None, planned: dict | None = None):
        logging.getLogger(CHECKPOINT_LOGGER).setLevel(logging.WARNING)
        self.pack = pack
        self.planned = planned  # a resumed sweep's planned epochs per trial (resume_check.py)
        self.result_s = MIN_RESULT_S if result_s is None else float(result_s)
        node_id = ray.get_runtime_context().get_node_id()
        self.node_id, self.node = node_id, node_id[:12]
        # the address the node registered with (127.0.0.1 for a local Ray), not a guess from routing
        self.node_ip = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), "")
        self.host = socket.gethostname()
        self.registry = None
        if pack is not None:
            from tune_sd.tune.packing.registry import get_registry

            self.registry = get_registry(pack.experiment, pack.run, pack.pack, pack.cpus_per_trial,
                                         pack.gpus_per_trial, pack.sizes)
        self._build(config)

    def reset_config(self, new_config: dict) -> bool:
        """A finished trial's actor takes the next trial (``reuse_actors``): the last one's epochs end
        (its member leaves its population), the same process goes on, so that the trial skips the
        worker start and the imports of Ray Tune (and, here, torch)."""
        self.epochs.close()
        self._build(new_config)
        return True

    def _build(self, config: dict) -> None:
        config = planned_epochs(config, self.trial_id, getattr(self, "planned", None))
        self.labels = {k: config[k] for k in LABELS if k in config}
        if self.pack is not None:
            from tune_sd.tune.packing.client import InExecutor

            self.epochs = InExecutor(self, config)
        else:
            self.epochs = InProcess(self, config)
        self.reports = 0
        # the clock of checkpoints and figures (cadence.py): from the trial's start in this process
        self.checkpointed_at = self.figured_at = time.monotonic()

    # ------------------------------------------------------------------ one result
    def step(self) -> dict:
        """One Tune result: a span of reports of ``report_every`` epochs each, gathered for about
        ``result_s`` seconds (report_rows.py); it ends early at a report due a checkpoint or a figure by count,
        or where the run ends. Each report is a row of the curve with its own ``training_iteration``.
        A checkpoint or figure paced by the clock is due at the end of a result (cadence.py)."""
        rows = self.epochs.advance(self.reports, self.result_s)
        restored_at = getattr(self, "restored_at", None)
        self.restored_at = None
        for row in rows:
            # restored at its last epoch (a finished trial Ray runs again): its one report repeats the last
            # one, at the same iteration, rather than adding a row to the curve
            again = restored_at is not None and row.get("done") and row.get("epoch") == restored_at
            if "error" not in row and not again:  # the run cannot go on: the trial ends as an error with its reason
                self.reports += 1
            row[TRAINING_ITERATION] = self.reports + ("error" in row)
        result = {**span(rows), **self._where()}
        if "error" in result:
            return result
        cadence, now = self.epochs.cadence, time.monotonic()
        if cadence.checkpoint_due(self.reports, now - self.checkpointed_at):
            result["should_checkpoint"] = True
        if cadence.figure_due(self.reports, now - self.figured_at, done=bool(rows[-1].get("done"))):
            self.epochs.figure(self.logdir)
            self.figured_at = now
        return result

    def _where(self) -> dict:
        return {"node": self.node, "node_ip": self.node_ip, "host": self.host, "device": self.epochs.device,
                **self.labels}

    # ------------------------------------------------------------------ state
    def save_checkpoint(self, checkpoint_dir: str):
        self.epochs.save(str(Path(checkpoint_dir) / CHECKPOINT_FILE))
        self.checkpointed_at = time.monotonic()
        return None

    def restore(self, checkpoint_path):
        """Tune's restore, from the trial's next checkpoint where the one Tune names is gone: a driver
        killed after Tune deleted an old checkpoint (``num_to_keep``) but before it saved its experiment
        state names one that no longer exists. Tune deletes a checkpoint only once a newer one of the
        trial is written, so the trial goes on from the oldest of the newer ones (the closest to what
        the driver had logged; reports it had not logged before that checkpoint are missing from the
        curve, its later ones are rewritten, each report at its own iteration)."""
        checkpoint = getattr(checkpoint_path, "checkpoint", None)
        if checkpoint is not None:
            later = next_checkpoint_if_gone(checkpoint)
            if later is not None:
                checkpoint_path.checkpoint = later
        return super().restore(checkpoint_path)

    def load_checkpoint(self, checkpoint):
        path = Path(checkpoint if isinstance(checkpoint, (str, os.PathLike)) else checkpoint.path)
        epoch = self.epochs.load(str(path / CHECKPOINT_FILE))
        self.reports = self.epochs.cadence.reports_at(epoch)
        self.restored_at = epoch

    def cleanup(self):
        self.epochs.close()


def next_checkpoint_if_gone(checkpoint):
    """The oldest checkpoint (``checkpoint_<n>`` holding ``CHECKPOINT_FILE``) newer than ``checkpoint``
    beside it on its storage, where ``checkpoint`` itself is gone; else None."""
    import pyarrow.fs as pafs

    fs, path = checkpoint.filesystem, checkpoint.path.rstrip("/")
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        return None
    parent, name = path.rsplit("/", 1)
    try:
        found = fs.get_file_info(pafs.FileSelector(parent))
    except (FileNotFoundError, OSError):
        return None
    ours = [info.path for info in found if info.type == pafs.FileType.Directory
            and info.base_name.startswith("checkpoint_") and info.base_name > name
            and fs.get_file_info(f"{info.path}/{CHECKPOINT_FILE}").type == pafs.FileType.File]
    if not ours:
        return None
    return type(checkpoint)(path=min(ours), filesystem=fs)  # one folder: the names order them


class InProcess:
    """A trial's epochs in its own process: the engine's run, built from the trial's config."""

    def __init__(self, trial: SDTrainable, config: dict):
        import torch

        from tune_sd.engine import Config, make_run

        from tune_sd.tune.trial_config import split_trial_config

        tree, _ = split_trial_config(config)
        self.cfg = Config.from_dict(tree)
        gpus = ray.get_gpu_ids()
        device = "cuda" if gpus and torch.cuda.is_available() else "cpu"
        cpus = trial.trial_resources.required_resources.get("CPU", 1) if trial.trial_resources else 1
        torch.set_num_threads(max(1, int(cpus)))  # a trial uses the cores it was given, no more
        self.run = make_run(self.cfg, device=device)  # the SD study, or a regularisation run (task)
        self.cadence = Cadence.of(self.cfg)
        self.device = self.run.device.type
        self._writer = None

    def advance(self, reports: int, seconds: float) -> list[dict]:
        """The reports of one result (``cadence.span``, for about ``seconds``), after ``reports``."""
        most, end, rows = self.cadence.span(reports), time.monotonic() + seconds, []
        while True:
            rows.append(self._report())
            if "error" in rows[-1] or rows[-1]["done"] or len(rows) >= most or time.monotonic() >= end:
                return rows

    def _report(self) -> dict:
        """``report_every`` epochs of the engine's loop: the last epoch's metrics and the report's."""
        from tune_sd.engine import NonFiniteLossError

        from tune_sd.tune.stopping.records import own_end

        run, first = self.run, self.run.epoch
        try:
            metrics = run.run(epochs=self.cadence.report_every)
        except NonFiniteLossError as e:
            # every metric is present (NaN before the first epoch), as the scheduler expects its metric
            return {**run.last_metrics(), "error": str(e), "done": True, "stop_reason": "error"}
        metrics = metrics or run.last_metrics()  # no epoch ran: restored at its end
        report = {**metrics, "done": run.done}
        if run.done:  # the trial ends itself: say whether its epochs or its runtime ran out
            report["stop_reason"] = own_end(run.epoch, self.cfg.epochs)
        report.update(run.report(since=first))
        return report

    def save(self, path: str) -> None:
        from tune_sd.engine.checkpoint import save_checkpoint

        save_checkpoint(self.run.state_dict(), path)

    def load(self, path: str) -> int:
        from tune_sd.engine.checkpoint import load_checkpoint

        self.run.load_state_dict(load_checkpoint(path), where=path)
        return self.run.epoch

    def figure(self, logdir: str) -> None:
        """The SD study: real vs fake samples on the input points, as the notebook's scatter plot; a
        regularisation run: its latent features beside the true latents. In TensorBoard."""
        from tune_sd.tune.trial_figures import latents_figure, samples_figure

        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=logdir)
        if self.cfg.task == "regularize":
            tag, fig = "latents/learned_vs_true", latents_figure(self.run)
        else:
            tag, fig = "samples/real_vs_fake", samples_figure(self.run)
        self._writer.add_figure(tag, fig, global_step=self.run.epoch, close=True)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
