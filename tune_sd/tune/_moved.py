"""Old module names of moved modules, for the objects that sweeps pickled under them.

``tune-sd resume`` unpickles a sweep's ``tuner.pkl`` and experiment state, which name the classes of
its scheduler and stopper by module; a sweep started before a module moved names the old module.
Each old name resolves to the module's new home (the same module object, so its classes are the
same classes), and only when something imports the old name.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "tune_sd.tune.nonlearner": "tune_sd.tune.stopping.nonlearner",
    "tune_sd.tune.stoppers": "tune_sd.tune.stopping.nonlearner_stopper",
    "tune_sd.tune.racing": "tune_sd.tune.stopping.race",
    "tune_sd.tune.seed_pool": "tune_sd.tune.stopping.seed_pool",
    "tune_sd.tune.schedulers": "tune_sd.tune.stopping.schedulers",
    "tune_sd.tune.stop_records": "tune_sd.tune.stopping.records",
    "tune_sd.tune.packed": "tune_sd.tune.packing.client",
    "tune_sd.tune.registry": "tune_sd.tune.packing.registry",
    "tune_sd.tune.executor": "tune_sd.tune.packing.executor",
    "tune_sd.tune.figures": "tune_sd.tune.trial_figures",
    "tune_sd.tune.rows": "tune_sd.tune.report_rows",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass  # the new home ran when it was imported


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
