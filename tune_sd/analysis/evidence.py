"""How much a sweep's trials can support a claim about them.

A sweep of a few trials per trend always "finds" something: with 2 trials in a trend, some value of
some hyperparameter is shared by both, and a depth-3 tree names every trial right. The report gives a
verdict (a mark, a rule, a ranking) only where chance could not produce one as strong, and says how
many trials it rests on; elsewhere it says that there are too few.

The test is a **permutation test**: the null hypothesis is that the trends (or the final accuracies)
have nothing to do with the hyperparameters. Shuffling the trend labels over the trials keeps the
trend sizes and every hyperparameter's values and breaks only their link; the claim is computed again
on :data:`N_PERM` shuffles, exactly as on the real labels (the same search over keys and cut points,
so that trying many candidates is paid for). A claim stands when at most :data:`ALPHA` (5 %) of the
shuffles give one as strong: p = (1 + shuffles at least as strong) / (1 + N_PERM). With 200 shuffles
the smallest p is 0.005, so a 5 % test keeps room for a Bonferroni factor of up to 10 keys.

The threshold that decides "too few" is not a fixed count but follows from the test: there are too
few trials when even the strongest possible claim (a value held by every trial of a trend and by no
other trial; a tree right on every trial) would not beat the shuffles, i.e. when chance alone makes
claims that strong at least 5 % of the time. It is no fixed count because it depends on how many
keys and values the sweep has. Measured on the synthetic sweeps (6 keys): with 2 trials per trend (8
in all) no mark and no tree can pass (a shuffled pair shares some value of some key, and a tree fits
8 shuffled trials perfectly, in most shuffles); the quick sweep's 6 trials (trends of 4 and 2) support
nothing either; with 3 per trend (12 in all) a value held by all 3 trials of a trend and by no other
(gp = 0 of the non-learners) passes, and with 8 per trend every planted mark does.
"""

from __future__ import annotations

import numpy as np

ALPHA = 0.05
N_PERM = 200


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 trial``, ``2 trials``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def p_value(observed: float, null: np.ndarray) -> float:
    """Permutation p-value: (1 + shuffles at least as strong) / (1 + shuffles)."""
    null = np.asarray(null, dtype=float)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def shuffles(y: np.ndarray, n_perm: int = N_PERM, seed: int = 0) -> np.ndarray:
    """``n_perm`` random permutations of ``y`` (one per row), seeded."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    return np.stack([y[rng.permutation(len(y))] for _ in range(n_perm)]) if len(y) else np.empty((n_perm, 0), y.dtype)


def codes(labels) -> tuple[np.ndarray, int]:
    """Labels as integer codes 0..k-1, and k."""
    _, inv = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    return inv.astype(np.int64), int(inv.max()) + 1 if len(inv) else 0


__all__ = ["ALPHA", "N_PERM", "plural", "p_value", "shuffles", "codes"]
