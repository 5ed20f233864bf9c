"""Replaying a stopping rule over a finished sweep: what it would have stopped, when, and at what cost.

A FIFO sweep runs every trial to its end; its curves hold every report each rule would have heard. Fed
those reports in epoch order (every trial's report of an epoch before any trial's next one, as the
seeds of a packed sweep run side by side), the non-learner rule, ASHA, the median rule and the race
decide what they would have decided live, with the same code: a trial they stop gives no more reports,
so its siblings stop at their next report. Knowing how each curve went on, a replay says what each
rule saves, which configs it cuts that went on to learn, and whether it keeps the best config: a user
tunes early stopping on a finished sweep before paying for a big one (``tune-sd replay``).

A record is read from a sweep's tables (``curves.parquet`` and ``trials.parquet``, on any storage
``analyze`` reads) or from one Parquet file of curves (``trial_id, epoch, avg_acc`` and ``acc_report``
or ``acc_mean``, with a ``config`` or ``variant`` column naming each trial's config and ``planned``
epochs). The non-learner rule and the race need no Ray; ASHA and the median rule are Ray's own
schedulers (``schedulers.make_scheduler``), fed through their Tune callbacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from tune_sd.errors import StudyError
from tune_sd.outcomes import ASHA, MEDIAN, NONLEARNER, RACE, learned
from tune_sd.seeds import config_key, median_over_seeds, seed_columns

RULES = (NONLEARNER, ASHA, MEDIAN, RACE)
LABEL_COLUMNS = ("config", "variant", "rung")  # what names a trial's config in a record, first found
NEEDS = ("trial_id", "epoch", "avg_acc")


@dataclass
class Record:
    """A finished sweep's reports as the rules hear them."""

    name: str
    reports: dict[str, list[dict]]   # trial -> its reports in epoch order: epoch, avg_acc, acc_report, config
    keys: dict[str, str]             # trial -> its config's key (seeds left out)
    labels: dict[str, str]           # config key -> how a person knows it
    repeat: int                      # seeds per config (1: every trial its own config)
    settings: dict = field(default_factory=dict)  # the sweep's own settings (tune_sd.json), where known
    report_every: int = 25
    exact: bool = True               # the reports carry acc_report (else acc_mean stands in for it)

    @property
    def epochs(self) -> int:
        """The planned epochs of the longest trial."""
        return int(max(_planned(r) for r in self.reports.values()))

    def configs(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for tid, key in self.keys.items():
            out.setdefault(key, []).append(tid)
        return out


def _planned(reports: list[dict]) -> float:
    return float((reports[0].get("config") or {}).get("epochs") or reports[-1]["epoch"])


# ------------------------------------------------------------------------------------------ reading


def record_from_curves(curves: pd.DataFrame, trials: pd.DataFrame | None = None, *, name: str = "",
                       settings: dict | None = None, per_seed: bool = False) -> Record:
    """A record from a curves table (one row per trial per report) and, where there is one, the trials
    table (its ``cfg.*`` columns and labels say which trials are seeds of one config)."""
    settings = dict(settings or {})
    missing = [c for c in NEEDS if c not in curves.columns]
    if missing:
        raise StudyError(f"{name or 'the curves'}: lacks the column(s) {', '.join(missing)}")
    curves = curves.copy()
    curves["trial_id"] = curves["trial_id"].astype(str)
    for c in ("epoch", "avg_acc", "acc_report", "acc_mean"):
        if c in curves.columns:
            curves[c] = pd.to_numeric(curves[c], errors="coerce")
    curves = curves.dropna(subset=["epoch"]).sort_values(["trial_id", "epoch"], kind="stable")
    curves = curves.drop_duplicates(["trial_id", "epoch"], keep="last")
    exact = "acc_report" in curves.columns and curves["acc_report"].notna().all()
    per_trial = _per_trial(curves, trials)
    repeat_data = bool(settings.get("repeat_data"))
    keys, named, identities = {}, {}, {}
    for tid, row in per_trial.items():
        drop = seed_columns(row.keys(), repeat_data) | {"repeat"}
        identity = {k: v for k, v in row.items() if k not in drop and (k.startswith("cfg.") or k in LABEL_COLUMNS)
                    and _given(v)}
        key = config_key(identity, repeat_data) if identity else tid
        keys[tid] = tid if per_seed else key
        identities.setdefault(key, identity)
        named.setdefault(keys[tid], (key, next((str(row[c]) for c in LABEL_COLUMNS if c in row and _given(row[c])), None)))
    labels = {k: name or _short(identities.get(config, {}), identities.values()) or f"trial {k}"
              for k, (config, name) in named.items()}
    if per_seed:  # each seed its own row: its config's name and the seed's repeat (else its trial id)
        seeds_of = pd.Series([config for config, _ in named.values()]).value_counts()
        for tid, (config, _) in named.items():
            if seeds_of[config] > 1:
                r = per_trial.get(tid, {}).get("repeat")
                labels[tid] += f" #{int(r)}" if _given(r) else f" ({tid})"
    repeat = 1 if per_seed else int(settings.get("repeat") or max(pd.Series(list(keys.values())).value_counts()))
    reports = {}
    planned_col = next((c for c in ("planned", "cfg.epochs") if c in curves.columns), None)
    for tid, c in curves.groupby("trial_id", sort=True):
        planned = per_trial.get(tid, {}).get("cfg.epochs")
        if not _given(planned) and planned_col:
            planned = c[planned_col].iloc[0]
        if not _given(planned):
            planned = settings.get("epochs") or c["epoch"].max()
        report = c["acc_report"] if exact else c.get("acc_mean", c["avg_acc"])
        config = {"epochs": int(planned)}
        reports[tid] = [{"epoch": int(e), "avg_acc": float(a), "acc_report": float(r), "config": config}
                        for e, a, r in zip(c["epoch"], c["avg_acc"], report)]
    every = settings.get("report_every") or _report_every(curves)
    return Record(name=name, reports=reports, keys={t: keys.get(t, t) for t in reports},
                  labels=labels, repeat=max(repeat, 1), settings=settings, report_every=int(every), exact=exact)


def _per_trial(curves: pd.DataFrame, trials: pd.DataFrame | None) -> dict[str, dict]:
    """Per trial: its cfg.* values and labels, from the trials table where given, else its first report."""
    cols = [c for c in curves.columns if c.startswith("cfg.") or c in LABEL_COLUMNS or c == "repeat"]
    out = {str(t): dict(r) for t, r in curves.groupby("trial_id", sort=False)[cols].first().iterrows()} if cols else {}
    if trials is not None and len(trials):
        tcols = [c for c in trials.columns if c.startswith("cfg.") or c in LABEL_COLUMNS or c == "repeat"]
        for _, r in trials.iterrows():
            out.setdefault(str(r["trial_id"]), {}).update({c: r[c] for c in tcols})
    return out


def _given(v) -> bool:
    if v is None:
        return False
    try:
        return not pd.isna(v)
    except (TypeError, ValueError):
        return True  # a list or another container


def _short(identity: dict, all_identities) -> str:
    """A config's searched values in short (``lr=0.0001 gp=1e-05``): the keys whose values differ between
    the record's configs."""
    all_identities = list(all_identities)
    varying = [k for k in identity if len({repr(i.get(k)) for i in all_identities}) > 1]
    return " ".join(f"{k.rsplit('.', 1)[-1]}={identity[k]}" for k in sorted(varying))[:80]


def _report_every(curves: pd.DataFrame) -> int:
    steps = curves.groupby("trial_id")["epoch"].diff().dropna()
    return int(steps.mode().iloc[0]) if len(steps) else 25


def load_record(sweep: str, storage: str | None = None, per_seed: bool = False) -> Record:
    """The record of a finished sweep (a name under ``storage``, a folder or a URI: its tables are
    written first where missing, as ``analyze`` does), or of one Parquet file of curves."""
    from tune_sd import store

    if str(sweep).endswith(".parquet") and store.is_file(str(sweep)):
        curves = store.read_parquet(str(sweep))
        return record_from_curves(curves, name=str(sweep).rstrip("/").rsplit("/", 1)[-1], per_seed=per_seed)
    from tune_sd.tune.results import read_table

    folder = store.find_sweep(sweep, storage)
    curves, _ = read_table(folder, store.CURVES_FILE)
    trials, _ = read_table(folder, store.TRIALS_FILE)
    meta = store.read_meta(folder)
    settings = dict(meta.get("settings") or {}) if isinstance(meta.get("settings"), dict) else {}
    settings.setdefault("epochs", meta.get("epochs"))
    name = str(meta.get("name") or str(folder).rstrip("/").rsplit("/", 1)[-1])
    return record_from_curves(curves, trials, name=name, settings=settings,
                              per_seed=per_seed)


# ------------------------------------------------------------------------------------------ replays


def _in_epoch_order(reports: dict[str, list[dict]]):
    """(trial, report, is its last) of every trial, epoch by epoch, trials in order within an epoch."""
    order = {tid: i for i, tid in enumerate(reports)}
    items = [(r["epoch"], order[tid], k == len(reps) - 1, tid, r) for tid, reps in reports.items()
             for k, r in enumerate(reps)]
    for _, _, last, tid, r in sorted(items, key=lambda x: (x[0], x[1])):
        yield tid, r, last


def _run(reports, judge, end) -> dict:
    """{trial: (epoch it stopped at, evidence)}: every report in epoch order to ``judge(trial, report)``,
    which returns (stop?, evidence); a stopped trial reports no more; ``end(trial, report)`` at its last
    report (a stop on the last report is the trial's own end)."""
    ends = {}
    for tid, r, last in _in_epoch_order(reports):
        if tid in ends:
            continue
        stop, ev = judge(tid, r)
        if stop and not last:
            ends[tid] = (int(r["epoch"]), ev)
        elif last:
            end(tid, r)
    return ends


def replay_nonlearner(rec: Record, settings=None, repeat: int | None = None) -> dict:
    """The non-learner rule (seed-aware with ``repeat`` > 1, each seed alone with 1)."""
    from tune_sd.tune.stopping.nonlearner import SeedRule, report_point

    rule = SeedRule(settings, rec.repeat if repeat is None else repeat)

    def judge(tid, r):
        ev = rule.report(tid, report_point(r), rec.keys[tid], r["config"]["epochs"])
        return ev is not None, ev

    return _run(rec.reports, judge, lambda tid, r: rule.end(tid))


def replay_race(rec: Record, rungs: list[int], alpha: float, mode: str = "max", nonlearner=None) -> dict:
    """The race at ``rungs`` with ``alpha`` over all rungs; its chance guard judges by ``nonlearner``
    (NonLearnerSettings; None: the record's own)."""
    from tune_sd.tune.stopping.chance_guard import ChanceGuard
    from tune_sd.tune.stopping.race import Race

    guard = ChanceGuard(nonlearner or nonlearner_of(rec), rec.repeat)
    race = Race(rungs, rec.repeat, alpha, mode, guard=guard)  # every report heard from the first: no report gap needed
    for tid in rec.reports:
        race.add(tid, rec.keys[tid], label=rec.labels.get(rec.keys[tid], tid))

    def judge(tid, r):
        ev = race.report(tid, float(r["epoch"]), float(r["avg_acc"]), r, _planned(rec.reports[tid]))
        return ev is not None, ev

    def end(tid, r):
        race.end(tid)
        guard.end(tid)

    return _run(rec.reports, judge, end)


class ReplayTrial:
    """What a Tune scheduler, stopper or recorder reads of a trial: its id, config and drawn values; one
    trial per id (equal and hashed by id, as Tune's trials are)."""

    def __init__(self, trial_id: str, config: dict | None = None, evaluated_params: dict | None = None):
        self.trial_id, self.config = str(trial_id), dict(config or {})
        self.evaluated_params: dict = dict(evaluated_params or {})

    def __eq__(self, other) -> bool:
        return isinstance(other, ReplayTrial) and other.trial_id == self.trial_id

    def __hash__(self) -> int:
        return hash(self.trial_id)

    def __repr__(self) -> str:
        return f"ReplayTrial({self.trial_id!r})"


class ReplayController:
    """What a Tune scheduler asks of the controller: no trial waits to run (the median rule never pauses
    one for lack of others)."""

    def get_live_trials(self):
        return []


def replay_scheduler(rec: Record, name: str, *, grace_period: int | None = None, reduction_factor: float = 3,
                     repeat: int | None = None, nonlearner=None) -> dict:
    """ASHA or the median rule as a sweep makes it (by config with repeats, per seed without); its chance
    guard judges by ``nonlearner`` (NonLearnerSettings; None: the record's own)."""
    from ray.tune.schedulers import TrialScheduler

    from tune_sd.tune.stopping.schedulers import make_scheduler

    repeat = rec.repeat if repeat is None else repeat
    scheduler = make_scheduler(name, epochs=rec.epochs, report_every=rec.report_every, grace_period=grace_period,
                               reduction_factor=reduction_factor, repeat=repeat,
                               nonlearner=nonlearner or nonlearner_of(rec))
    scheduler.set_search_properties("avg_acc", "max")
    ctl = ReplayController()
    # the scheduler keys a trial's config by its config: give each trial its record key, seeds apart
    trials = {tid: ReplayTrial(tid, {"config": rec.keys[tid], "epochs": _planned(reps)})
              for tid, reps in rec.reports.items()}
    for t in trials.values():
        scheduler.on_trial_add(ctl, t)

    def judge(tid, r):
        row = {k: v for k, v in r.items() if k != "config"}
        row["config"] = trials[tid].config
        stop = scheduler.on_trial_result(ctl, trials[tid], row) == TrialScheduler.STOP
        ev = getattr(scheduler, "stopped", {}).get(config_key(trials[tid].config)) if stop and repeat > 1 else None
        return stop, ev

    return _run(rec.reports, judge, lambda tid, r: scheduler.on_trial_complete(ctl, trials[tid], r))


# ------------------------------------------------------------------------------------------ outcome


def learned_by_end(reports: list[dict]) -> bool:
    """A seed learned over its whole run: its smoothed accuracy reached the learning line."""
    peak = max((abs(r["avg_acc"] - 0.5) for r in reports if math.isfinite(r["avg_acc"])), default=0.0)
    return learned(0.5 + peak)


def final_medians(rec: Record) -> dict[str, float]:
    """Each config's final avg_acc, the median over its seeds' full runs."""
    return {k: median_over_seeds(rec.reports[t][-1]["avg_acc"] for t in ts) for k, ts in rec.configs().items()}


def outcome(rec: Record, ends: dict) -> pd.DataFrame:
    """Per config: ``config`` (its label), ``seeds``, ``stopped`` (seeds), ``at`` (their stop epochs),
    ``epochs run`` and ``epochs planned`` (over its seeds, as recorded), ``saved``, ``learned`` (seeds
    that reached the learning line over their whole recorded runs), ``cut learner`` (a stopped seed had
    gone on to learn), ``final median`` (avg_acc over its seeds at their recorded ends) and ``best``
    (the best config by final median). Sorted best first."""
    finals = final_medians(rec)
    best = max(finals, key=finals.get) if finals else None
    rows = []
    for key, tids in rec.configs().items():
        total = sum(rec.reports[t][-1]["epoch"] for t in tids)
        run = sum(ends[t][0] if t in ends else rec.reports[t][-1]["epoch"] for t in tids)
        stopped = [t for t in tids if t in ends]
        rows.append({"config": rec.labels.get(key, key), "seeds": len(tids), "stopped": len(stopped),
                     "at": ",".join(str(ends[t][0]) for t in sorted(stopped, key=lambda t: ends[t][0])),
                     "epochs run": int(run), "epochs recorded": int(total), "saved": 1 - run / total if total else 0.0,
                     "learned": sum(learned_by_end(rec.reports[t]) for t in tids),
                     "cut learner": any(learned_by_end(rec.reports[t]) for t in stopped),
                     "final median": finals[key], "best": key == best, "key": key})
    out = pd.DataFrame(rows)
    return out.sort_values("final median", ascending=False, kind="stable").reset_index(drop=True) if len(out) else out


def summary(rec: Record, ends: dict) -> dict:
    """The replay in numbers: epochs saved, configs stopped, learner configs cut (a seed stopped that went
    on to learn), non-learner configs (no seed learned) stopped, and whether the best config was kept."""
    per = outcome(rec, ends)
    if per.empty:
        return {"saved": 0.0, "configs stopped": 0, "learner configs cut": 0, "non-learner configs stopped": "0/0",
                "best kept": True, "best": None}
    total, run = per["epochs recorded"].sum(), per["epochs run"].sum()
    non = per[per["learned"] == 0]
    best = per[per["best"]].iloc[0]
    return {"saved": 1 - run / total if total else 0.0,
            "configs stopped": int((per["stopped"] > 0).sum()),
            "learner configs cut": int(per["cut learner"].sum()),
            "cut": list(per.loc[per["cut learner"], "config"]),
            "non-learner configs stopped": f"{int((non['stopped'] == non['seeds']).sum())}/{len(non)}",
            "best kept": bool(best["stopped"] == 0), "best": best["config"]}


def race_bootstrap(rec: Record, rungs: list[int], alpha: float, n: int, seed: int = 0, near: float = 0.01,
                   seeds: int | None = None, replace: bool = True, nonlearner=None) -> dict:
    """Over ``n`` resamples of each config's seeds (with replacement, ``seeds`` of R: R where not given; more
    than R asks how a sweep of more seeds would race; ``replace`` False draws ``seeds`` < R distinct
    seeds, as a sweep of fewer seeds would have run), the share in which the best
    config by final median survives the race (``kept``), the share in which it or one within ``near`` of
    its final median survives (``near_kept``), the share in which the best config over all the record's
    seeds survives (``kept_overall``: the resample's best can be another config, its seeds drawn
    luckier), and the mean share of epochs saved (``saved``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    configs = rec.configs()
    overall = final_medians(rec)
    best_overall = max(overall, key=overall.get) if overall else None
    kept = near_kept = kept_overall = 0
    saved = []
    for _ in range(n):
        reps, keys = {}, {}
        for key, tids in configs.items():
            for j, tid in enumerate(rng.choice(tids, size=seeds or len(tids), replace=replace)):
                reps[f"{tid}#{j}"], keys[f"{tid}#{j}"] = rec.reports[tid], key
        boot = Record(rec.name, reps, keys, rec.labels, seeds or rec.repeat, rec.settings, rec.report_every, rec.exact)
        ends = replay_race(boot, rungs, alpha, nonlearner=nonlearner)
        finals = final_medians(boot)
        top = max(finals.values())
        raced = {keys[t] for t in ends}
        kept += max(finals, key=finals.get) not in raced
        kept_overall += best_overall not in raced
        near_kept += any(k not in raced for k, f in finals.items() if f >= top - near)
        total = sum(r[-1]["epoch"] for r in reps.values())
        saved.append(1 - sum(ends[t][0] if t in ends else r[-1]["epoch"] for t, r in reps.items()) / total)
    return {"kept": kept / n, "near_kept": near_kept / n, "kept_overall": kept_overall / n,
            "saved": float(np.mean(saved)) if saved else 0.0}


# ------------------------------------------------------------------------------------------ by name


def nonlearner_of(rec: Record, grace=None, window=None, margin=None, confidence=None):
    """The non-learner settings a sweep of this record ran with (its tune_sd.json), as given overrides them."""
    from tune_sd.tune.stopping.nonlearner import nonlearner_settings

    given = {f"nonlearner_{k}": v for k, v in (("grace", grace), ("window", window), ("margin", margin),
                                               ("confidence", confidence)) if v is not None}
    return nonlearner_settings({**rec.settings, **given}).check()


def race_settings(rec: Record, grace_period: int | None = None, reduction_factor: float | None = None,
                  race_alpha: float | None = None, repeat: int | None = None) -> tuple[list[int], float]:
    """(rungs, alpha) of the race a sweep of this record ran (or would run), as given overrides it."""
    from tune_sd.tune.stopping.race import race_plan

    return race_plan(epochs=rec.epochs, report_every=rec.report_every,
                     grace_period=grace_period if grace_period is not None else rec.settings.get("grace_period"),
                     reduction_factor=reduction_factor or rec.settings.get("reduction_factor") or 3,
                     repeat=rec.repeat if repeat is None else repeat,
                     race_alpha=race_alpha if race_alpha is not None else rec.settings.get("race_alpha"))


def replay(rec: Record, rule: str, *, grace_period: int | None = None, reduction_factor: float | None = None,
           nonlearner: dict | None = None, race_alpha: float | None = None, repeat: int | None = None):
    """(ends, what was replayed: a line) of ``rule`` (nonlearner, asha, median, race) on the record."""
    grace_period = grace_period if grace_period is not None else rec.settings.get("grace_period")
    reduction_factor = reduction_factor or rec.settings.get("reduction_factor") or 3
    repeat = rec.repeat if repeat is None else repeat
    if rule == NONLEARNER:
        s = nonlearner_of(rec, **(nonlearner or {}))
        how = (f"nonlearner {s.describe(rec.epochs)}"
               + (f", {repeat} seeds per config judged together" if repeat > 1 else ", each trial alone"))
        return replay_nonlearner(rec, s, repeat), how
    if rule == RACE:
        rungs, alpha = race_settings(rec, grace_period, reduction_factor, race_alpha, repeat)
        return (replay_race(rec, rungs, alpha, nonlearner=nonlearner_of(rec, **(nonlearner or {}))),
                f"race at epochs {rungs}, alpha {alpha:g}")
    if rule in (ASHA, MEDIAN):
        from tune_sd.tune.choices import default_grace_period

        g = grace_period or default_grace_period(rec.epochs, rec.report_every)
        how = (f"{rule} grace {min(g, rec.epochs)}" + (f", reduction factor {reduction_factor:g}" if rule == ASHA else "")
               + (f", configs of {repeat} seeds ranked by their median" if repeat > 1 else ", each trial alone"))
        return replay_scheduler(rec, rule, grace_period=grace_period, reduction_factor=reduction_factor,
                                repeat=repeat, nonlearner=nonlearner_of(rec, **(nonlearner or {}))), how
    raise StudyError(f"--scheduler {rule!r}: a replay takes one of {', '.join(RULES)}")


def report_text(rec: Record, rule: str, ends: dict, how: str, bootstrap: dict | None = None) -> str:
    """What ``tune-sd replay`` prints: the record, the rule's settings, a line per config and the verdict."""
    per, s = outcome(rec, ends), summary(rec, ends)
    n_trials = len(rec.reports)
    lines = [f"{rec.name}: {len(per)} configs, {n_trials} trials"
             + (f" ({rec.repeat} seeds per config)" if rec.repeat > 1 else "") + f", {rec.epochs} epochs planned",
             f"replayed: {how}"]
    if not rec.exact:
        lines.append("note: the curves carry no acc_report (older sweeps): the non-learner rule's trend test reads "
                     "acc_mean, the last epoch's accuracy of each report, instead")
    width = max([len(str(c)) for c in per["config"]] + [6])
    lines.append(f"{'config':<{width}} {'seeds':>5} {'stopped':>7} {'at epochs':<24} {'saved':>6} {'learned':>7} "
                 f"{'final median':>12}")
    for _, r in per.iterrows():
        at = r["at"] if len(r["at"]) <= 24 else r["at"][:21] + "..."
        flag = "  best" if r["best"] else ""
        flag += "  cut, yet learned" if r["cut learner"] else ""
        lines.append(f"{str(r['config']):<{width}} {r['seeds']:>5} {r['stopped']:>7} {at or '-':<24} "
                     f"{r['saved']:>6.0%} {r['learned']:>3}/{r['seeds']:<3} {r['final median']:>12.3f}{flag}")
    lines.append(f"epochs saved: {s['saved']:.0%}; configs stopped: {s['configs stopped']} of {len(per)}; "
                 f"non-learner configs (no seed learned) stopped: {s['non-learner configs stopped']}")
    lines.append(f"configs cut whose seeds went on to learn: {s['learner configs cut']}"
                 + (f" ({', '.join(map(str, s['cut']))})" if s["learner configs cut"] else ""))
    lines.append(f"best config by final median ({s['best']}): " + ("kept" if s["best kept"] else "STOPPED"))
    if bootstrap:
        lines.append(f"over {bootstrap['n']} bootstrap resamples of each config's seeds: the best config kept in "
                     f"{bootstrap['kept']:.0%} (it or one within 0.01 of its final median: {bootstrap['near_kept']:.0%}; "
                     f"the best over all the seeds recorded: {bootstrap['kept_overall']:.0%}), "
                     f"{bootstrap['saved']:.0%} of the epochs saved (mean)")
    return "\n".join(lines)
