"""The choices and defaults of a sweep's options: the names a scheduler and a search take, the
defaults of the numbers, and what ``--quick`` (of a sweep and of a ladder) sets.

Standard library only, so that the command line offers these choices and prints these defaults
without importing Ray or torch; ``sweep``, ``schedulers`` and ``ladder`` resolve and check the
options with the same values.
"""

from __future__ import annotations

SCHEDULERS = ("asha", "fifo", "median", "nonlearner", "asha+nonlearner", "median+nonlearner", "race")
SEARCHES = ("random", "grid", "bayes")

DEFAULTS = {
    "metric": "avg_acc", "mode": "max", "scheduler": "asha", "num_samples": 10, "cpus_per_trial": 1.0,
    "gpus_per_trial": 0.0, "max_concurrent": None, "max_failures": 2, "grace_period": None,
    "reduction_factor": 3.0, "nonlearner_grace": None, "nonlearner_window": None, "nonlearner_margin": None,
    "nonlearner_confidence": None, "race_alpha": None,
}
# --quick: a smoke run that still shows early stopping
QUICK = {"num_samples": 6, "epochs": 400, "report_every": 20, "avg_hor": 100, "grace_period": 100,
         "reduction_factor": 2.0, "figure_every": 5, "checkpoint_every": 5, "nonlearner_grace": 160,
         "nonlearner_window": 160}
# ladder --quick: these epochs and seeds on every rung (and the sweep's quick avg_hor)
LADDER_QUICK = {"epochs": 300, "seeds": 2}



def default_grace_period(epochs: int, report_every: int) -> int:
    """Epochs before a trial can first be stopped: a 27th of the run (three ASHA rungs below the end),
    never less than four reports, so that avg_acc has settled a little."""
    return max(4 * report_every, epochs // 27)
