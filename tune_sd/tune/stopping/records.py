"""Why each trial ended, written into its last result (``stop_reason``), wherever the storage is.

A trial ends in one of three ways, each known to exactly one party in the driver or the worker:

- it ran out: the trainable ends itself and says why in its last result (``completed`` when it
  reached ``epochs``, ``runtime`` when its time limit came first, ``error`` when its loss went
  non-finite);
- the non-learner stopper stops it (``nonlearner``);
- the scheduler stops it (``asha``, ``median``, ``race``).

A stop decided on the evidence of a config's seeds (the seed-aware non-learner stopper, the race, ASHA
and the median rule with repeats) also writes that evidence: ``stop_test``, ``stop_seeds``,
``stop_trials``, ``stop_epochs``, ``stop_p`` (and ``stop_against``, the config a race was lost to).

The stopper and the schedulers note their STOP decisions in a :class:`StopRecorder`, a Tune callback
that Tune calls after them for the same result (Ray documents that schedulers are notified before
callbacks, and that callbacks may modify the result in place). The recorder writes the reason into
that final result before Tune's JSON logger writes it to the trial's ``result.json``, which Tune
syncs to the storage with the rest of the trial: no side file, nothing that local, ``file://``,
``s3://`` or ``gs://`` storage treat differently. ``results.collect`` reads it back.
"""

from __future__ import annotations

from ray.tune import Callback

from tune_sd.outcomes import ENDED_ITSELF, STOP_REASON


def ended_before(trial) -> bool:
    """A trial that a resumed sweep restored as ended: it will not report or end in this run, and its
    config's other seeds must not wait for it."""
    return getattr(trial, "status", None) in ("TERMINATED", "ERROR")


def own_end(epoch: int, planned: int) -> str:
    """Why a run that ended by itself (``done``) ended: its epochs, or its ``runtime`` before them."""
    return "completed" if epoch >= planned else "runtime"


class StopRecorder(Callback):
    """Notes each STOP decision of the stopper and the schedulers, and writes the reason into the
    result that ends the trial. The trainable's own reason wins: a trial that reached its last
    epoch (or its runtime) on the report a scheduler would have cut is recorded as such."""

    def __init__(self):
        self._decided: dict[str, str] = {}
        self._evidence: dict[str, dict] = {}
        self._watchers: list = []
        self._looked = False

    def note(self, trial_id: str, reason: str, evidence: dict | None = None) -> None:
        # the first decision for a result is the one Tune acts on (the stopper is asked first)
        if str(trial_id) not in self._decided:
            self._decided[str(trial_id)] = reason
            if evidence:
                self._evidence[str(trial_id)] = dict(evidence)

    def watch(self, stopper) -> None:
        """``stopper.trial_ended(trial_id)`` is called for every trial that ends (a stopper hears of
        results only, and a config's seeds that ended early must not be waited for)."""
        self._watchers.append(stopper)

    def on_step_begin(self, iteration, trials, **info):
        # once, at the first step: the trials a resumed sweep restored as ended will never report or end here
        if getattr(self, "_looked", False):  # (a recorder pickled by an older version lacks it)
            return
        self._looked = True
        for trial in trials:
            if ended_before(trial):
                for w in self._watchers:
                    if hasattr(w, "trial_ended_before"):
                        w.trial_ended_before(str(trial.trial_id), trial.config, trial.last_result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        for w in self._watchers:
            w.trial_ended(str(trial.trial_id))

    def on_trial_error(self, iteration, trials, trial, **info):
        for w in self._watchers:
            w.trial_ended(str(trial.trial_id))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        decided = self._decided.pop(str(trial.trial_id), None)
        evidence = self._evidence.pop(str(trial.trial_id), None)
        if not result.get("done"):
            return
        if result.get(STOP_REASON) in ENDED_ITSELF:
            return
        if decided is not None:
            result[STOP_REASON] = decided
            result.update(evidence or {})
