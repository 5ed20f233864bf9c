"""The Ray Tune trainable: a thin adapter around the engine's ``Study``.

Set-up builds a study from the trial's config; each training iteration runs ``report_every`` epochs
of the engine's loop (``RunLoop.run``) and reports the last epoch's metrics, with the study's
per-report metrics (``RunLoop.report``: ``acc_report``); checkpoints are the study's ``state_dict`` (every
``checkpoint_every`` reports and at the end); a restored trial continues the same curve.

A checkpoint always holds whole epochs: the study changes only inside ``step()``, and Tune calls
``save_checkpoint`` as the actor's next task, after ``step()`` returned. Ctrl-C in the driver never
reaches a trial (Ray starts its workers in their own process groups with SIGINT blocked; see
tests/test_train_resume.py): Tune stops each trial after its current report without saving, and
``tune-sd resume`` restores the last checkpoint, so a trial goes on bit for bit. A non-finite loss is
rolled back by the study before it is raised, so the checkpoint Tune writes at the end of such a
trial holds its last whole epoch, not NaN weights.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import ray
import torch
from ray import tune

from tune_sd.engine import Config, NonFiniteLossError, make_run
from tune_sd.engine.checkpoint import load_checkpoint, save_checkpoint
from tune_sd.tune.stop_records import own_end
from tune_sd.tune.trial_config import split_trial_config

CHECKPOINT_FILE = "study.pt"
# fault injection for tests of retries: "<experiment name>:<marker prefix>:<epoch>" makes each trial of
# that experiment raise once when it reaches that epoch (a marker file per trial records that it did)
FAIL_ONCE_ENV = "TUNE_SD_FAIL_ONCE"


class SDTrainable(tune.Trainable):
    def setup(self, config: dict):
        self._writer = None
        node_id = ray.get_runtime_context().get_node_id()
        self.node = node_id[:12]
        # the address the node registered with (127.0.0.1 for a local Ray), not a guess from routing
        self.node_ip = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), "")
        self.host = socket.gethostname()
        self._build(config)

    def reset_config(self, new_config: dict) -> bool:
        """A finished trial's actor takes the next trial (``reuse_actors``): a fresh study, the same
        process, so that the trial skips the worker start and the imports of torch and Ray Tune."""
        self._close_writer()
        self._build(new_config)
        return True

    def _build(self, config: dict) -> None:
        tree, self.labels = split_trial_config(config)
        self.cfg = Config.from_dict(tree)
        gpus = ray.get_gpu_ids()
        device = "cuda" if gpus and torch.cuda.is_available() else "cpu"
        cpus = self.trial_resources.required_resources.get("CPU", 1) if self.trial_resources else 1
        torch.set_num_threads(max(1, int(cpus)))  # a trial uses the cores it was given, no more
        self.study = make_run(self.cfg, device=device)  # the SD study, or a regularisation run (task)
        self.reports = 0

    # ------------------------------------------------------------------ one report
    def step(self) -> dict:
        """One report: ``report_every`` epochs of the engine's loop (fewer at the run's end)."""
        study, cfg = self.study, self.cfg
        first = study.epoch
        try:
            metrics = study.run(epochs=cfg.report_every, callback=self._maybe_fail)
        except NonFiniteLossError as e:
            # the run cannot go on: end the trial as an error with its reason, and let the sweep go on
            # every metric is present (NaN before the first epoch), as the scheduler expects its metric
            return {**study.last_metrics(), "error": str(e), "done": True, "stop_reason": "error",
                    **self._where()}
        self.reports += 1
        metrics = metrics or study.last_metrics()  # no epoch ran: restored at its end
        result = {**metrics, **self._where(), "done": study.done}
        if study.done:  # the trial ends itself: say whether its epochs or its runtime ran out
            result["stop_reason"] = own_end(study.epoch, cfg.epochs)
        result.update(study.report(since=first))
        if cfg.checkpoint_every and self.reports % cfg.checkpoint_every == 0:
            result["should_checkpoint"] = True
        if cfg.figure_every and (self.reports % cfg.figure_every == 0 or self.reports == 1):
            self._figure()
        return result

    def _where(self) -> dict:
        return {"node": self.node, "node_ip": self.node_ip, "host": self.host, "device": self.study.device.type,
                **self.labels}

    def _maybe_fail(self, metrics: dict) -> None:
        """Per epoch: the injected failure (``FAIL_ONCE_ENV``) once the trial's epoch ``at`` has run, so
        that the report that runs it fails (and its epochs are lost, as in any failure)."""
        spec = os.environ.get(FAIL_ONCE_ENV)
        if not spec:
            return
        experiment, marker, at = spec.split(":")
        # the trial's working folder (Trainable.logdir) lies in one named after its experiment
        if experiment not in Path(self.logdir).parts:
            return
        marker = Path(f"{marker}.{self.trial_id}")
        if metrics["epoch"] == int(at) and not marker.exists():
            marker.write_text("failed once\n")
            raise RuntimeError(f"injected failure at epoch {at} ({FAIL_ONCE_ENV})")

    def _figure(self) -> None:
        """The SD study: real vs fake samples on the input points, as the notebook's scatter plot; a
        regularisation run: its latent features beside the true latents. In TensorBoard."""
        from tune_sd.tune.figures import latents_figure, samples_figure

        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=self.logdir)
        if self.cfg.task == "regularize":
            tag, fig = "latents/learned_vs_true", latents_figure(self.study)
        else:
            tag, fig = "samples/real_vs_fake", samples_figure(self.study)
        self._writer.add_figure(tag, fig, global_step=self.study.epoch, close=True)
        self._writer.flush()

    # ------------------------------------------------------------------ state
    def save_checkpoint(self, checkpoint_dir: str):
        save_checkpoint(self.study.state_dict(), Path(checkpoint_dir) / CHECKPOINT_FILE)
        return None

    def load_checkpoint(self, checkpoint):
        path = Path(checkpoint if isinstance(checkpoint, (str, os.PathLike)) else checkpoint.path)
        self.study.load_state_dict(load_checkpoint(path / CHECKPOINT_FILE), where=str(path / CHECKPOINT_FILE))
        self.reports = self.study.epoch // self.cfg.report_every

    def cleanup(self):
        self._close_writer()

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
