"""A packed trial's epochs: run in a shared executor (see executor.py), by the trial's own trainable
(:class:`tune_sd.tune.trainable.SDTrainable` with ``pack``).

Each trial keeps its trial id, reports, checkpoints, retries and scheduler decisions; only its epochs
run elsewhere: in the population of its shape key on its node. The trial's own process is a thin
waiting client (no torch imported here): its reservation (``cpus_per_trial / P``) is what backs the
executor's cores, so P trials of one shape key reserve one trial's cores between them.

- join: at the first report, or on a restore from a checkpoint (a Study state, read by the executor);
  the executor answers with the member's epoch, device and cadence (the run config's);
- advance: ``advance(trial, report_every, reports, seconds)`` awaits this member's reports of one Tune
  result (report_rows.py), its epochs batched with the others';
- save: the executor writes the member's Study state to this trial's checkpoint file;
- a stopped trial leaves (cleanup, or the next trial of a reused actor); a lost executor fails the
  pending call, the trial errors and Tune retries it from its checkpoint in a fresh executor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import ray

from tune_sd.tune.cadence import Cadence


@dataclass(frozen=True)
class PackSettings:
    experiment: str
    pack: object  # "auto" or an integer P
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    run: str = ""        # the driver run whose registry places the trials
    sizes: dict = None   # auto: members per population by shape key (packing.fill_sizes)


@dataclass(frozen=True)
class PackShare:
    """A packed trial's resources, by its config: its share (1/P) of one trial's CPUs and GPUs.

    Tune calls it in the driver; it also travels with the trainable class into every trial's process,
    which never calls it. So it imports the planning (and with it the engine and torch) only when
    called: a module-level function of packing/plan.py would make each packed trial's process import
    torch on its start (about 2 CPU-s and 200 MB each)."""

    pack: object
    cpus_per_trial: float
    gpus_per_trial: float
    sizes: dict = None

    def __call__(self, config: dict):
        from ray import tune

        from tune_sd.tune.packing.plan import pack_plan

        _, size = pack_plan(config, self.pack, self.gpus_per_trial, self.sizes)
        return tune.PlacementGroupFactory([{"CPU": self.cpus_per_trial / size, "GPU": self.gpus_per_trial / size}])


class ExecutorLost(RuntimeError):
    """The executor that trained this trial died; Tune retries the trial from its checkpoint."""


class InExecutor:
    """A trial's epochs in the shared executor of its shape key: this process only waits for them."""

    def __init__(self, trial, config: dict):
        self.trial, self.registry, self.node_id = trial, trial.registry, trial.node_id
        self.config = dict(config)
        self.executor, self.member, self.device, self.cadence = None, None, "cpu", None

    # ------------------------------------------------------------------ membership
    def _join(self, checkpoint: str | None = None) -> dict:
        trial_id = self.trial.trial_id
        for attempt in range(3):
            try:
                executor, _, joined = ray.get(self.registry.place.remote(trial_id, self.config, self.node_id,
                                                                         checkpoint))
                break
            except ray.exceptions.RayActorError:
                if attempt == 2:  # a fresh executor could not be reached either
                    raise
                time.sleep(0.5)
        # the member's name, kept: a reused actor's trial id is the next trial's by the time it leaves
        self.member = trial_id
        self.executor, self.device = executor, joined["device"]
        self.cadence = Cadence(**joined["cadence"])
        return joined

    def close(self) -> None:
        """The member leaves its population (nothing when it is in none)."""
        if self.executor is not None:
            self.executor = None
            try:
                ray.get(self.registry.release.remote(self.member))
            except ray.exceptions.RayError:
                pass  # the registry is gone with the sweep: nothing is left to leave

    # ------------------------------------------------------------------ reports, state, figures
    def advance(self, reports: int, seconds: float) -> list[dict]:
        """The reports of one result (``cadence.span`` after ``reports``, for about ``seconds``): the
        executor gathers them while the member steps with its population; this process waits."""
        if self.executor is None:
            self._join()
        try:
            return ray.get(self.executor.advance.remote(self.member, self.cadence.report_every,
                                                        self.cadence.span(reports), seconds))
        except ray.exceptions.RayActorError as e:
            self.registry.lost.remote(self.executor)
            self.executor = None
            raise ExecutorLost(f"the executor of this trial's population was lost ({type(e).__name__}); "
                               "retrying from the last checkpoint") from None

    def save(self, path: str) -> None:
        if self.executor is None:
            self._join()
        ray.get(self.executor.save.remote(self.member, path))

    def load(self, path: str) -> int:
        return int(self._join(path)["epoch"])

    def figure(self, logdir: str) -> None:
        # drawn by the executor from a solo study rebuilt from the member's state, while training goes on
        self.executor.figure.remote(self.member, logdir)
