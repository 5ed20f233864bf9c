"""The non-learner rule, without Ray: a trial whose smoothed accuracy stays within a margin of chance
over a window of epochs, with no significant upward trend of its per-report accuracy, is a non-learner
(see nonlearner_stopper.py for the Tune stopper that applies it). A sweep's plan checks these settings before Ray
starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tune_sd.outcomes import CHANCE, LEARN_MARGIN
from tune_sd.tune.stopping.config_seeds import ConfigSeeds


@dataclass
class NonLearnerSettings:
    """The rule's settings as a sweep gives them. ``grace`` and ``window`` left as None scale with each
    trial's planned epochs (:meth:`at`): the defaults were chosen on 3 000-epoch runs and hold up to
    25 000 epochs; on the notebook's 100 000-epoch runs a seed may sit at chance for its first 5 000
    epochs and then learn (t4b, t3c of the trend examples), so the grace and the window grow with the
    run, up to a bound (:func:`scaled_window`; docs/early-stopping.md)."""

    # chosen with benchmarks/early_stopping.py --sweep-params (docs/early-stopping.md): no learner of
    # 12 sd-study trials x 3000 epochs stopped, every non-learner stopped, 9 of 10 synthetic learners
    # slower than those kept; margin 0.1 is the analysis' own non-learner line (peak < chance + 0.1)
    grace: int | None = None    # epochs before a trial can be stopped (None: GRACE, or GRACE_SHARE of the run)
    window: int | None = None   # epochs looked at (None: WINDOW, or WINDOW_SHARE of the run)
    margin: float = LEARN_MARGIN  # "at chance": avg_acc within 0.5 +- margin over the whole window
    confidence: float = 0.8  # an upward trend must be this significant to keep a trial at chance

    def check(self) -> "NonLearnerSettings":
        from tune_sd.errors import ConfigError

        grace, window = self.at(None).grace, self.at(None).window
        if grace < 0 or window <= 0:
            raise ConfigError(f"nonlearner: grace must be >= 0 and window > 0 (got {grace}, {window})")
        if not 0 < self.margin < 0.5:
            raise ConfigError(f"nonlearner: margin must be in (0, 0.5) (got {self.margin})")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"nonlearner: confidence must be in [0.5, 1) (got {self.confidence})")
        return self

    def at(self, planned: float | None) -> "NonLearnerSettings":
        """The settings a trial of ``planned`` epochs is judged by (None: not known, the fixed defaults):
        what the sweep gave, else the defaults scaled to the run."""
        grace, window = scaled_window(planned)
        return NonLearnerSettings(self.grace if self.grace is not None else grace,
                                  self.window if self.window is not None else window, self.margin, self.confidence)

    def describe(self, planned: float | None) -> str:
        """The effective grace and window for a run of ``planned`` epochs, as --dry-run and replay say them."""
        s = self.at(planned)
        scaled = [k for k in ("grace", "window") if getattr(self, k) is None]
        how = f" for {int(planned)} planned epochs" if scaled and planned and self.at(None) != s else ""
        return f"grace {s.grace}, window {s.window}{how}, margin {s.margin:g}, confidence {s.confidence:g}"


# The defaults, by the planned epochs P of a trial's run: grace = GRACE_SHARE * P and window =
# WINDOW_SHARE * P, each kept within [GRACE, GRACE_MAX] and [WINDOW, WINDOW_MAX]. Runs of up to 3 333
# epochs keep the defaults chosen on 3 000-epoch runs; from 13 333 epochs on the rule waits 6 000 epochs
# and looks at 3 000. On the long record (tests/data/long_record.parquet: the trend examples t1a, t2b,
# t3c, t4b, t4c, t4d x 5 seeds x 100 000 epochs) the slowest starters sit at chance until epoch 5 300
# (t4b) and rise from 0.54 at 3 000 to 0.60 at 10 000 (t3c): judged one seed per config, cut at 10 000,
# 20 000 and 100 000 planned epochs, these settings cut none of them and stop the two seeds that never
# learn (t4d, peaks 0.57 and 0.58) at epochs 6 300 and 6 700 of 100 000; a fixed 1 500 / 2 000 cut three.
GRACE, WINDOW = 1500, 2000
GRACE_MAX, WINDOW_MAX = 6000, 3000
GRACE_SHARE, WINDOW_SHARE = 0.45, 0.3


def scaled_window(planned: float | None) -> tuple[int, int]:
    """(grace, window) of the rule's defaults for a run of ``planned`` epochs (None: not known)."""
    if planned is None or not math.isfinite(planned) or planned <= 0:
        return GRACE, WINDOW
    return (min(GRACE_MAX, max(GRACE, int(round(GRACE_SHARE * planned)))),
            min(WINDOW_MAX, max(WINDOW, int(round(WINDOW_SHARE * planned)))))


def slope_fit(groups: list[tuple[list[float], list[float]]]):
    """The least-squares slope of values over epochs common to every group (a seed's reports), with an
    intercept per group: (slope, its standard error, degrees of freedom, each group's fitted value at
    its last epoch), or None where too few points say nothing. k seeds give k times the points (the
    slope's standard error shrinks by about sqrt(k)) at the cost of one degree of freedom per seed."""
    n = sum(len(v) for _, v in groups)
    df = n - len(groups) - 1
    if df < 1:
        return None
    sxx = sxy = 0.0
    centred = []
    for epochs, values in groups:
        mx, my = sum(epochs) / len(epochs), sum(values) / len(values)
        xs, ys = [x - mx for x in epochs], [y - my for y in values]
        sxx += sum(x * x for x in xs)
        sxy += sum(x * y for x, y in zip(xs, ys))
        centred.append((xs, ys, my))
    if sxx == 0:
        return None
    slope = sxy / sxx
    s2 = sum((y - slope * x) ** 2 for xs, ys, _ in centred for x, y in zip(xs, ys)) / df
    ends = [my + slope * xs[-1] for xs, _, my in centred]
    return slope, math.sqrt(s2 / sxx), df, ends


def slope_p(groups: list[tuple[list[float], list[float]]]) -> float:
    """One-sided p-value of "no upward trend": the t-test of the common least-squares slope of
    :func:`slope_fit`. One group is the plain slope test. 0 where too few points say nothing."""
    fit = slope_fit(groups)
    if fit is None:
        return 0.0  # too few points to call it flat
    slope, se, df, _ = fit
    if se == 0:
        return 0.0 if slope > 0 else 1.0
    from scipy import stats  # here: a sweep's plan (--dry-run) reads the settings, not the test

    return float(stats.t.sf(slope / se, df))


def short_of_margin_p(groups, epochs_left: float, line: float) -> float:
    """One-sided p-value of "the seeds rise fast enough to reach ``line`` by their last planned epoch":
    H0 is a common slope of at least (line - the best seed's fitted value now) / epochs_left. A small p
    says that even the best seed stays short of the line over the rest of its run at the rate its
    reports allow."""
    fit = slope_fit(groups)
    if fit is None or epochs_left <= 0:
        return 1.0
    slope, se, df, ends = fit
    needed = (line - max(ends)) / epochs_left
    if needed <= 0:
        return 1.0
    if se == 0:
        return 0.0 if slope < needed else 1.0
    from scipy import stats

    return float(stats.t.sf((needed - slope) / se, df))


def rising(epochs: list[float], values: list[float], confidence: float) -> bool:
    """One-sided test of a positive least-squares slope of values over epochs."""
    return slope_p([(list(epochs), list(values))]) < 1 - confidence


def report_point(result: dict) -> tuple[float, float, float] | None:
    """(epoch, avg_acc, acc_report) of a report as the rule reads it (``acc_mean`` where a report has no
    ``acc_report``), or None where one is missing or not finite: live reports and replayed ones alike."""
    try:
        report = result["acc_report"] if "acc_report" in result else result["acc_mean"]
        point = (float(result["epoch"]), float(result["avg_acc"]), float(report))
    except (KeyError, TypeError, ValueError):
        return None
    return point if all(map(math.isfinite, point)) else None


def is_non_learner(history: list[tuple[float, float, float]], s: NonLearnerSettings) -> bool:
    """history: (epoch, avg_acc, acc_report) per report, in order; ``s``: the settings of this trial's
    run (:meth:`NonLearnerSettings.at`). A trial that left the margin once has learned (a rise then a
    drop back to chance is a learner's curve): :class:`SeedRule` keeps it before asking this."""
    s = s.at(None) if s.grace is None or s.window is None else s
    if not history or history[-1][0] < s.grace:
        return False
    last = history[-1][0]
    window = [h for h in history if h[0] > last - s.window]
    if len(window) < 3:
        return False
    if max(h[1] for h in window) >= CHANCE + s.margin or min(h[1] for h in window) <= CHANCE - s.margin:
        return False  # learned something (a critic reliably wrong has learned too: it is inverted)
    return not rising([h[0] for h in window], [h[2] for h in window], s.confidence)


def nonlearner_settings(settings: dict):
    given = {k: settings.get(f"nonlearner_{k}") for k in ("grace", "window", "margin", "confidence")}
    return NonLearnerSettings(**{k: v for k, v in given.items() if v is not None})


# ------------------------------------------------------------------------------------ seeds of a config
#
# With --repeat, the seeds of a config are repeats of one experiment. The stopper then judges a config's
# seeds together (SeedRule): all its seeds stop at once when their pooled reports show no upward trend,
# and none stops on its own evidence while a sibling learns. Without repeats every trial is its own config
# and the rule is the one above, trial by trial.

# a config's identity without its seeds is tune_sd.seeds.config_key


def pooled_window(s: NonLearnerSettings, seeds: int) -> tuple[int, int]:
    """(grace, window) for a joint test of ``seeds`` seeds with the power of one seed's test at
    (s.grace, s.window): the slope's standard error over w epochs of reports falls as w**1.5 and over
    k seeds as sqrt(k), so k seeds see over w * k**(-1/3) what one seed sees over w. A slow learner
    whose seeds all rise is then kept as often as one seed of it is (the same false-stop rate), and an
    all-flat config stops about 1 - k**(-1/3) earlier (37 % for 4 seeds)."""
    f = max(seeds, 1) ** (-1 / 3)
    return int(round(s.grace * f)), max(int(round(s.window * f)), 1)


@dataclass
class Evidence:
    """Why a config's seeds (or one seed) were stopped: the test, the trials whose reports it used, the
    epoch each had reached, the p-value, and for a race the config it lost to."""

    test: str
    trials: list
    epochs: list
    p: float | None  # None for a rule without a test (ASHA's cutoff, the median rule)
    against: str | None = None

    def as_result(self) -> dict:
        """The keys written into a stopped trial's last result (and read into trials.parquet)."""
        out = {"stop_test": self.test, "stop_seeds": len(self.trials), "stop_trials": ",".join(map(str, self.trials)),
               "stop_epochs": ",".join(str(int(e)) for e in self.epochs)}
        if self.p is not None:
            out["stop_p"] = float(self.p)
        if self.against is not None:
            out["stop_against"] = self.against
        return out


def _window(history: list, window: int) -> list:
    last = history[-1][0]
    return [h for h in history if h[0] > last - window]


def _at_chance(window: list, margin: float) -> bool:
    return all(CHANCE - margin < h[1] < CHANCE + margin for h in window)


def _groups(windows: list[list]) -> list[tuple[list[float], list[float]]]:
    return [([h[0] for h in w], [h[2] for h in w]) for w in windows]


class SeedRule(ConfigSeeds):
    """The non-learner rule over the seeds of configs, without Ray: the stopper's state and decisions
    (stoppers.NonLearnerStopper adapts it to Tune; benchmarks/early_stopping.py replays it).

    ``report`` takes a trial's report (epoch, avg_acc, acc_report) and its config key and returns the
    :class:`Evidence` of a stop, or None. With ``repeat`` R > 1:

    - a config stops, all its seeds together, when each of its R seeds has run the pooled grace and
      (:func:`pooled_window`) its avg_acc stayed within the margin over the pooled window, none of them
      rises on its own (slope test at 1 - (1 - confidence) / R, Bonferroni over the seeds), and their
      pooled per-report accuracies (a slope common to the seeds, an intercept each) show no upward trend
      at ``confidence``. Or, knowing the planned epochs, their pooled reports show that the seeds rise too
      slowly to cross chance + margin before their last epoch (:func:`short_of_margin_p` at ``confidence``,
      no seed faster on its own at the Bonferroni level): a config that creeps upward by a significant
      but tiny amount is then stopped too (it would end a non-learner in the analysis' sense), where the
      slope test alone, with the power of four seeds, keeps it. Its other seeds stop at their next report;
    - a seed that is a non-learner on its own evidence (the single-trial rule) stops alone, but only
      once every sibling has reported and while none learns: none has left the margin in its last window
      nor rises at ``confidence``. Seeds report at different times (processes start apart, a result
      carries several reports, seeds queue behind others): the seed must have been a non-learner already
      at the epoch its running siblings have all reached, so that it is judged beside them at one epoch
      (a sibling still short of the grace holds it: the joint test may yet stop them together). No test
      shows a seed at chance worse than a learning sibling without also cutting the slow seeds of
      learning configs (a seed still at chance where its siblings have learned): such a seed runs on.
    """

    def __init__(self, settings: NonLearnerSettings | None = None, repeat: int = 1):
        super().__init__(repeat)
        self.settings = settings or NonLearnerSettings()
        self.history: dict[str, list[tuple[float, float, float]]] = {}
        self.stopped: dict[str, Evidence] = {}  # config -> the evidence its seeds stopped on
        self.planned: dict[str, float] = {}  # trial -> its planned epochs (the config's ``epochs``)
        self.before: set[str] = set()  # trials that ended before a resume: their last result is all there is
        # trials whose avg_acc left the margin at some report: they learned, and are never non-learners
        # (t2b of the trend examples learns to 0.70-0.77 by epoch 3 500, then drops back to 0.59-0.66)
        self.learned: set[str] = set()

    def __setstate__(self, state: dict) -> None:
        # a rule pickled with a sweep by an older version (resume restores it) lacks the newer state
        self.__dict__.update(state)
        self.__dict__.setdefault("before", set())
        if "learned" not in self.__dict__:
            self.learned = {t for t, h in self.history.items() if any(self._left_margin(t, p) for p in h)}

    def _left_margin(self, trial_id: str, point) -> bool:
        """A report that shows the trial learned: avg_acc outside the margin once the average has settled
        (from the shorter of the grace and the window on: the first reports average a few epochs, and a
        critic at chance can stray past the margin there)."""
        s = self.settings_of(trial_id)
        return point[0] >= min(s.grace, s.window) and not CHANCE - s.margin < point[1] < CHANCE + s.margin

    def settings_of(self, trial_id: str) -> NonLearnerSettings:
        """The settings a trial is judged by: the sweep's, with the defaults scaled to its planned epochs."""
        return self.settings.at(self.planned.get(str(trial_id)))

    def report(self, trial_id: str, point: tuple[float, float, float], config: str | None = None,
               planned: float | None = None) -> Evidence | None:
        self.record(trial_id, point, config, planned)
        return self.decide(trial_id)

    def record(self, trial_id: str, point: tuple[float, float, float], config: str | None = None,
               planned: float | None = None) -> None:
        """Hear a report without judging it (the ranking rules' chance guard asks :meth:`decide` only of
        the trials whose stop waits)."""
        trial_id = str(trial_id)
        if planned is not None:
            self.planned[trial_id] = float(planned)
        self.join(trial_id, config if self.repeat > 1 and config is not None else trial_id)
        history = self.history.setdefault(trial_id, [])
        if history and point[0] <= history[-1][0]:
            # a restored trial reports again from its checkpoint: forget what it will redo
            while history and history[-1][0] >= point[0]:
                history.pop()
        history.append(point)
        if self._left_margin(trial_id, point):
            self.learned.add(trial_id)
        if trial_id in self.learned:
            # a seed that learned is never judged on its reports again (nor are its siblings while it is
            # one of them): its last report is all the rule reads, and a 100 000-epoch run's driver does
            # not hold 4 000 reports per learning trial
            del history[:-1]
        self.reporting(trial_id)
        self.before.discard(trial_id)

    def decide(self, trial_id: str) -> Evidence | None:
        """The evidence of the trial's stop at its last report heard, or None."""
        trial_id = str(trial_id)
        key = self.config_of[trial_id]
        history = self.history.get(trial_id) or []
        if key in self.stopped:
            return self.stopped[key]
        if not history:
            return None
        point = history[-1]
        if self.repeat > 1:
            joint = self._joint(key)
            if joint is not None:
                self.stopped[key] = joint
                return joint
        s = self.settings_of(trial_id)
        if trial_id in self.learned or not is_non_learner(history, s):
            return None
        common = self._common_epoch(trial_id, key)
        if common is None or (common < point[0]
                              and not is_non_learner([h for h in history if h[0] <= common], s)):
            return None
        own = _window(history, s.window)
        return Evidence("slope", [trial_id], [point[0]], slope_p(_groups([own])))

    def ended_before(self, trial_id: str, point: tuple[float, float, float] | None, config: str | None = None) -> None:
        """A trial that had ended before this run of the sweep (a resumed sweep): it will not report, and
        only its last result is known (``point``, or None). It counts as a seed of its config, ended; a
        sibling that learned keeps the config running as one that reports here does."""
        trial_id = str(trial_id)
        if not self.join(trial_id, config if self.repeat > 1 and config is not None else trial_id):
            return
        self.history[trial_id] = [point] if point is not None else []
        if point is not None and self._left_margin(trial_id, point):
            self.learned.add(trial_id)
        self.before.add(trial_id)
        self.ended.add(trial_id)

    def learning(self, trial_id: str) -> bool:
        """A seed learns: its avg_acc left the margin at some report, or its reports rise in its last window."""
        history = self.history.get(trial_id)
        if trial_id in self.learned:
            return True
        if not history:
            return False
        s = self.settings_of(trial_id)
        window = _window(history, s.window)
        if not _at_chance(window, s.margin):
            return True
        return len(window) >= 3 and slope_p(_groups([window])) < 1 - s.confidence

    def _common_epoch(self, trial_id: str, key: str) -> float | None:
        """The epoch at which a seed is judged beside its siblings: the least that it and every running
        sibling have reached. None while a sibling learns or has yet to report (nothing is known of it:
        a trial process that starts late on a busy machine, a seed queued behind the others). A sibling
        that ended says all it will. One that is slow, paused or starts late holds the seed, however far
        behind: how far a sibling is behind says nothing of whether it will learn, and the stopper hears
        of every trial that ends (records.StopRecorder)."""
        members = self.members[key]
        if not self.complete(key):
            return None
        common = self.history[trial_id][-1][0]
        for m in members:
            if m == trial_id:
                continue
            if self.learning(m):
                return None
            if m not in self.ended:
                common = min(common, self.history[m][-1][0])
        return common

    def _joint(self, key: str) -> Evidence | None:
        members = self.members[key]
        if any(m in self.learned for m in members):
            return None  # a seed learned: the config is a learner
        planned = [self.planned[m] for m in members if m in self.planned]
        s = self.settings.at(min(planned) if planned else None)
        if not self.complete(key):
            return None  # a seed has not reported yet: nothing is known of it
        # seeds that ended before a resume are known by their last result only: one that learned keeps the
        # config; the others have no reports here for the pooled test
        if any(self.learning(m) for m in members if m in self.before):
            return None
        included = [m for m in members if m not in self.before]
        for _ in range(2):  # seeds that ended before the pooled grace say nothing: fewer seeds, longer grace
            grace, window = pooled_window(s, len(included))
            short = [m for m in included if self.history[m][-1][0] < grace]
            if any(m not in self.ended for m in short):
                return None  # wait for them
            included = [m for m in included if m not in short]
        if len(included) < 2 or any(self.history[m][-1][0] < grace for m in included):
            return None
        windows = [_window(self.history[m], window) for m in included]
        if any(len(w) < 3 or not _at_chance(w, s.margin) for w in windows):
            return None
        groups, alone = _groups(windows), self._alone_level(len(included))
        reached = [self.history[m][-1][0] for m in included]
        if not any(slope_p([g]) < alone for g in groups):  # no seed rises on its own
            p = slope_p(groups)
            if p >= 1 - s.confidence:
                return Evidence("pooled slope", included, reached, p)
        planned = [self.planned.get(m) for m in included]
        if None in planned:
            return None
        left, line = min(planned) - max(reached), CHANCE + s.margin
        # a seed whose rise would take it across the line by its last epoch learns within its run
        if left <= 0 or any(1 - short_of_margin_p([g], left, line) < alone for g in groups):
            return None
        p = short_of_margin_p(groups, left, line)
        if p < 1 - s.confidence:
            return Evidence("short of margin", included, reached, p)
        return None

    def _alone_level(self, seeds: int) -> float:
        """The level at which one seed's own rise keeps its config in a joint test: Bonferroni over the
        seeds, so that k flat seeds do not keep each other running by chance (at the plain level, 1 - 0.8**4
        = 59 % of the looks at four flat seeds find one "rising"). A lone slow seed among flat siblings
        is then judged with them: in 20 planted configs (one seed rising 0.15 over 10 000 epochs, three
        flat) it was stopped with its siblings every time, and 14 times at the plain level."""
        return (1 - self.settings.confidence) / seeds
