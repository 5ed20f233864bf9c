"""A sweep's options before Ray loads: the names a scheduler and a search take, the defaults of the
numbers, and the non-learner stopper's settings.

Standard library only, so that the command line offers these choices and prints these defaults
without importing Ray or torch; ``sweep``, ``schedulers`` and ``stoppers`` resolve and check the
options with the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULERS = ("asha", "fifo", "median", "nonlearner", "asha+nonlearner", "median+nonlearner")
SEARCHES = ("random", "grid", "bayes")

DEFAULTS = {
    "metric": "avg_acc", "mode": "max", "scheduler": "asha", "num_samples": 10, "cpus_per_trial": 1.0,
    "gpus_per_trial": 0.0, "max_concurrent": None, "max_failures": 2, "grace_period": None,
    "reduction_factor": 3.0, "nonlearner_grace": None, "nonlearner_window": None, "nonlearner_margin": None,
    "nonlearner_confidence": None,
}
# --quick: a smoke run that still shows early stopping
QUICK = {"num_samples": 6, "epochs": 400, "report_every": 20, "avg_hor": 100, "grace_period": 100,
         "reduction_factor": 2.0, "figure_every": 5, "checkpoint_every": 5, "nonlearner_grace": 160,
         "nonlearner_window": 160}
# ladder --quick: these epochs and seeds on every rung (and the sweep's quick avg_hor)
LADDER_QUICK = {"epochs": 300, "seeds": 2}


@dataclass
class NonLearnerSettings:
    # chosen with benchmarks/early_stopping.py --sweep-params (README, "Early stopping"): no learner of
    # 12 sd-study trials x 3000 epochs stopped, every non-learner stopped, 9 of 10 synthetic learners
    # slower than those kept; margin 0.1 is the analysis' own non-learner line (peak < chance + 0.1)
    grace: int = 1500        # epochs before a trial can be stopped
    window: int = 2000       # epochs looked at
    margin: float = 0.1      # "at chance": avg_acc within 0.5 +- margin over the whole window
    confidence: float = 0.8  # an upward trend must be this significant to keep a trial at chance

    def check(self) -> "NonLearnerSettings":
        from tune_sd.errors import ConfigError

        if self.grace < 0 or self.window <= 0:
            raise ConfigError(f"nonlearner: grace must be >= 0 and window > 0 (got {self.grace}, {self.window})")
        if not 0 < self.margin < 0.5:
            raise ConfigError(f"nonlearner: margin must be in (0, 0.5) (got {self.margin})")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"nonlearner: confidence must be in [0.5, 1) (got {self.confidence})")
        return self
