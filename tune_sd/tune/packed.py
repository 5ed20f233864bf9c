"""The packed trainable: a Tune trial whose epochs run in a shared executor (see executor.py).

Each trial keeps its trial id, reports, checkpoints, retries and scheduler decisions; only its epochs
run elsewhere: in the population of its shape key on its node. The trial's own process is a thin
waiting client (no torch imported here): its reservation (``cpus_per_trial / P``) is what backs the
executor's cores, so P trials of one shape key reserve one trial's cores between them.

- join: at the first report, or on a restore from a checkpoint (a Study state, read by the executor);
- step: ``advance(trial, report_every)`` awaits this member's epochs, batched with the others';
- save: the executor writes the member's Study state to this trial's checkpoint folder;
- a stopped trial leaves (cleanup, or the next trial of a reused actor); a lost executor fails the
  pending call, the trial errors and Tune retries it from its checkpoint in a fresh executor.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import tune

from tune_sd.store import LABELS

from .registry import get_registry

CHECKPOINT_FILE = "study.pt"  # as trainable.CHECKPOINT_FILE: packed and unpacked checkpoints interchange
# as trainable.FAIL_ONCE_ENV: "<experiment>:<marker prefix>:<epoch>" makes each trial of that experiment
# raise once, in the report that runs that epoch (the tests of retries run packed too)
FAIL_ONCE_ENV = "TUNE_SD_FAIL_ONCE"
# engine defaults of the report cadence (config.SCHEMA), for configs that leave them out
CADENCE = {"report_every": 25, "checkpoint_every": 10, "figure_every": 20}


@dataclass(frozen=True)
class PackSettings:
    experiment: str
    pack: object  # "auto" or an integer P
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    run: str = ""        # the driver run whose registry places the trials
    sizes: dict = None   # auto: members per population by shape key (packing.fill_sizes)


class ExecutorLost(RuntimeError):
    """The executor that trained this trial died; Tune retries the trial from its checkpoint."""


class PackedTrainable(tune.Trainable):
    def setup(self, config: dict, pack: PackSettings | None = None):
        self.pack = pack
        node_id = ray.get_runtime_context().get_node_id()
        self.node_id, self.node = node_id, node_id[:12]
        self.node_ip = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), "")
        self.host = socket.gethostname()
        self.registry = get_registry(pack.experiment, pack.run, pack.pack, pack.cpus_per_trial, pack.gpus_per_trial,
                                     pack.sizes)
        self._build(config)

    def reset_config(self, new_config: dict) -> bool:
        """A reused actor takes the next trial: the last one's member leaves its population first."""
        self._leave()
        self._build(new_config)
        return True

    def _build(self, config: dict) -> None:
        self.config_ = dict(config)
        self.labels = {k: config[k] for k in LABELS if k in config}
        self.cadence = {k: _lookup(config, k, default) for k, default in CADENCE.items()}
        self.executor, self.device, self.reports, self.epoch = None, "cpu", 0, 0

    # ------------------------------------------------------------------ membership
    def _join(self, checkpoint: str | None = None) -> dict:
        for attempt in range(3):
            try:
                executor, _, joined = ray.get(self.registry.place.remote(self.trial_id, self.config_, self.node_id,
                                                                         checkpoint))
                break
            except ray.exceptions.RayActorError:
                if attempt == 2:  # a fresh executor could not be reached either
                    raise
                time.sleep(0.5)
        # the member's name, kept: a reused actor's trial id is the next trial's by the time it leaves
        self.member = self.trial_id
        self.executor, self.device, self.epoch = executor, joined["device"], joined["epoch"]
        return joined

    def _leave(self) -> None:
        if self.executor is not None:
            self.executor = None
            try:
                ray.get(self.registry.release.remote(self.member))
            except ray.exceptions.RayError:
                pass  # the registry is gone with the sweep: nothing is left to leave

    # ------------------------------------------------------------------ one report
    def step(self) -> dict:
        if self.executor is None:
            self._join()
        before = self.epoch
        try:
            result = ray.get(self.executor.advance.remote(self.trial_id, self.cadence["report_every"]))
        except ray.exceptions.RayActorError as e:
            self.registry.lost.remote(self.executor)
            self.executor = None
            raise ExecutorLost(f"the executor of this trial's population was lost ({type(e).__name__}); "
                               "retrying from the last checkpoint") from None
        self.epoch = int(result["epoch"])
        self._maybe_fail(before, self.epoch)  # the report's epochs ran; the failure loses them, as unpacked
        if "error" in result:
            return {**result, **self._where()}
        self.reports += 1
        result.update(self._where())
        if self.cadence["checkpoint_every"] and self.reports % self.cadence["checkpoint_every"] == 0:
            result["should_checkpoint"] = True
        every = self.cadence["figure_every"]
        if every and (self.reports % every == 0 or self.reports == 1):
            # drawn by the executor from a solo study rebuilt from the member's state, while training goes on
            self.executor.figure.remote(self.trial_id, self.logdir)
        return result

    def _maybe_fail(self, after: int, upto: int) -> None:
        spec = os.environ.get(FAIL_ONCE_ENV)
        if not spec:
            return
        experiment, marker, at = spec.split(":")
        storage = getattr(self, "_storage", None)
        if storage is None or storage.experiment_dir_name != experiment:
            return
        marker = Path(f"{marker}.{self.trial_id}")
        if after < int(at) <= upto and not marker.exists():
            marker.write_text("failed once\n")
            raise RuntimeError(f"injected failure at epoch {at} ({FAIL_ONCE_ENV})")

    def _where(self) -> dict:
        return {"node": self.node, "node_ip": self.node_ip, "host": self.host, "device": self.device, **self.labels}

    # ------------------------------------------------------------------ state
    def save_checkpoint(self, checkpoint_dir: str):
        if self.executor is None:
            self._join()
        ray.get(self.executor.save.remote(self.trial_id, str(Path(checkpoint_dir) / CHECKPOINT_FILE)))
        return None

    def load_checkpoint(self, checkpoint):
        path = Path(checkpoint if isinstance(checkpoint, (str, os.PathLike)) else checkpoint.path)
        joined = self._join(str(path / CHECKPOINT_FILE))
        self.reports = joined["epoch"] // self.cadence["report_every"]

    def cleanup(self):
        self._leave()


def _lookup(config: dict, key: str, default):
    """A top-level engine key of a trial config, nested or dotted alike."""
    value = config.get(key)
    return default if value is None else value
