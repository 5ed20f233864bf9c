"""Faults the tests inject into a sweep's trials (none of this is in tune_sd).

Ray's workers import this module by name: a test that uses it puts tests/ on the PYTHONPATH of the Ray
it starts (``importable_by_workers``)."""

from __future__ import annotations

import os
from pathlib import Path

from tune_sd.tune.trainable import SDTrainable

# "<experiment name>:<marker prefix>:<epoch>": each trial of that experiment fails once, in the report
# that runs that epoch (its epochs are lost, as in any failure); a marker file per trial records it
FAIL_ONCE_ENV = "TUNE_SD_FAIL_ONCE"


def importable_by_workers() -> None:
    """tests/ on the PYTHONPATH of the processes a Ray started after this call runs."""
    here = str(Path(__file__).resolve().parent)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if here not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([here, *paths])


class FailOnce(SDTrainable):
    """The sweep's trainable, packed or not, whose trials raise once at the epoch ``FAIL_ONCE_ENV`` says."""

    def step(self) -> dict:
        result = super().step()
        spec = os.environ.get(FAIL_ONCE_ENV)
        if not spec:
            return result
        experiment, marker, at = spec.split(":")
        # the trial's working folder (Trainable.logdir) lies in one named after its experiment
        if experiment not in Path(self.logdir).parts:
            return result
        marker = Path(f"{marker}.{self.trial_id}")
        if result["epoch"] >= int(at) and not marker.exists():
            marker.write_text("failed once\n")
            raise RuntimeError(f"injected failure at epoch {at} ({FAIL_ONCE_ENV})")
        return result
