"""The words a sweep's outcome is told in, shared by the stopping rules (tune layer) and the analysis:
the chance line and the learning line, the names of the trends, and the reasons a trial ended.

No Ray, no torch, no pandas: the stopping rules import this where Ray and the analysis are absent.
"""

from __future__ import annotations

#: a critic that cannot tell real from fake is right half the time
CHANCE = 0.5
#: a curve whose smoothed accuracy never gets this far from chance has learned nothing: the analysis'
#: non-learner line (peak < CHANCE + LEARN_MARGIN) and the non-learner stopper's default margin
LEARN_MARGIN = 0.1
LEARN_LINE = CHANCE + LEARN_MARGIN

# ------------------------------------------------------------------------------------------- trends
#: the notebook's four trends (Step 15.3), in their usual order
FAST_PLATEAU, RISE_THEN_DROP, SLOW_IMPROVER, NON_LEARNER = TRENDS = (
    "fast-plateau", "rise-then-drop", "slow-improver", "non-learner")
#: a fifth name, beside the notebook's four (never instead of one): a curve that learned, fell by as much
#: as a rise-then-drop does and then won a good part of it back. Seen on 100 000-epoch runs, where the
#: notebook's trend-2 example t2a falls from its early peak and recovers in the second half; without it
#: such a curve would be called a slow-improver, which it is not
DROP_AND_RECOVER = "drop-and-recover"
TREND_HELP = {
    FAST_PLATEAU: "learns quickly, then stays",
    RISE_THEN_DROP: "learns quickly, then drops",
    DROP_AND_RECOVER: "learns, drops, then wins part of it back",
    SLOW_IMPROVER: "learns slowly, still rising at the end",
    NON_LEARNER: "learns nothing (stays near chance)",
}
#: every name the trend rule gives, in the report's order
TREND_NAMES = (FAST_PLATEAU, RISE_THEN_DROP, DROP_AND_RECOVER, SLOW_IMPROVER, NON_LEARNER)
#: trends of a curve that learned something
LEARNED = (FAST_PLATEAU, RISE_THEN_DROP, DROP_AND_RECOVER, SLOW_IMPROVER)


def learned(peak_avg_acc: float) -> bool:
    """A curve learned something: its smoothed accuracy reached the learning line (or, inverted, fell
    as far below chance: a critic reliably wrong tells real from fake too)."""
    return abs(float(peak_avg_acc) - CHANCE) >= LEARN_MARGIN


# ------------------------------------------------------------------------------- why a trial ended
#: the result key that records it
STOP_REASON = "stop_reason"
#: a trial that ended by itself: its planned epochs, its --runtime, or an error
COMPLETED, RUNTIME, ERROR = ENDED_ITSELF = ("completed", "runtime", "error")
#: a trial stopped by a rule: ASHA, the median rule, the non-learner stopper, the race
ASHA, MEDIAN, NONLEARNER, RACE = STOPPED = ("asha", "median", "nonlearner", "race")
STOP_REASONS = ENDED_ITSELF + STOPPED
#: the reasons a trial ends before its planned epochs (each comes with a stop epoch)
ENDED_EARLY = STOPPED + (RUNTIME,)
#: the reasons a trial may end short of its planned epochs: stopped, out of --runtime, failed
SHORT_OF_PLAN = ENDED_EARLY + (ERROR,)
