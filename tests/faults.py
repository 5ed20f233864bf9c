"""Faults the tests inject into a sweep's trials (none of this is in tune_sd).

Ray's workers import this module by name: a test that uses it puts tests/ on the PYTHONPATH of the Ray
it starts (``importable_by_workers``)."""

from __future__ import annotations

import json
import os
import sys
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


# a folder: each trial's process of a sweep with ModulesProbe notes there what it had imported by its setup
MODULES_PROBE_ENV = "TUNE_SD_MODULES_PROBE"


class ModulesProbe(SDTrainable):
    """The sweep's trainable, whose trial processes note whether they imported torch or the engine
    before their epochs started (from the trainable class as the sweep built it: its parameters and
    resources travel with it)."""

    def setup(self, config: dict, **kwargs):
        folder = os.environ.get(MODULES_PROBE_ENV)
        if folder:
            Path(folder, f"{os.getpid()}.json").write_text(json.dumps(
                {"torch": "torch" in sys.modules, "engine": "tune_sd.engine" in sys.modules,
                 "packed": kwargs.get("pack") is not None}))
        super().setup(config, **kwargs)
