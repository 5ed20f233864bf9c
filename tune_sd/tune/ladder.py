"""The library ladder of Steps 15.4 and 15.6: as the library grows, where does classification fail?

One fixed critic is trained on every rung of a ladder of growing libraries (the ``ladder:`` of a space
file, ``search_spaces/ladder.yaml`` by default), with several seeds per rung, as one Tune grid sweep
over rung x mode x seed with ASHA off, so that every trial runs to the end. The modes are the file's
``variants``: the first (``none``) is the baseline critic, the others give it extra information
(Step 15.6: ``input`` / ``grad``, ``embed`` / ``stack``); ``--ext`` picks them.

The critic is, in this order: the best trial (highest ``final_avg_acc``) of a finished sweep
(``from_sweep``), a YAML run config (``config``), or the space file's base (the Step 15 defaults). Only
its critic keys count; epochs, seeds, the library and the report cadence are the ladder's.

The report, per (mode, rung): the final ``avg_acc`` of each seed, their mean and standard deviation,
and the first rung whose mean falls below the threshold. That rung is named "where classification fails"
only where the evidence holds (see :data:`MIN_SEEDS` and :meth:`LadderReport.verdict`): some rung
learned at all, every seed of the rung before is at or above the threshold and every seed of this one
below, with enough seeds. A ladder in which no rung learned (a quick run of 300 epochs) names no
failure point. It is printed as a table and written beside the sweep's tables::

    <storage>/<name>/ladder.parquet   mode, rung, rung_index, n_seeds, final_avg_acc_mean, final_avg_acc_std, fails
    <storage>/<name>/ladder.png       accuracy vs rung, one line per mode
    <storage>/<name>/ladder.json      the rungs and modes in order, the threshold, where the critic came from
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from tune_sd.engine.config import SCHEMA, Config, flatten, merge, read_yaml, unflatten
from tune_sd import store
from tune_sd.errors import ConfigError, StudyError
from tune_sd.spaces import AXES, SearchSpace, load_space, rung_name, space_from_dict
from tune_sd.store import META_FILE, find_sweep, read_meta

from .choices import LADDER_QUICK as QUICK
from .sweep import SweepOptions, SweepPlan, describe, plan_sweep

__all__ = ["LadderOptions", "LadderPlan", "LadderReport", "COLUMNS", "plan_ladder", "describe_ladder",
           "run_ladder", "ladder_report", "ladder_command", "best_trial_config"]

LADDER_SPACE = "ladder"
COLUMNS = ["mode", "rung", "rung_index", "n_seeds", "final_avg_acc_mean", "final_avg_acc_std", "fails"]
LADDER_FILE, TABLE_FILE, FIGURE_FILE = "ladder.json", "ladder.parquet", "ladder.png"
BASELINE = "none"  # the mode of a ladder file without variants
#: keys of a run that belong to the ladder, not to the critic taken from a sweep or a config file
RUN_KEYS = ("epochs", "runtime", "seed", "avg_hor", "report_every", "checkpoint_every", "figure_every",
            "library.path")
#: the embedding net of the seed's ext studies (Step 15.5's NOTE: 2 hidden layers of 64), for embed modes
#: when neither the mode nor the critic gives one
SEED_EMBEDDING = {"disc.hid_num": 2, "disc.hid_size": 64}


@dataclass
class LadderOptions:
    space: str = LADDER_SPACE           # the space file with the rungs (a name in search_spaces/ or a path)
    from_sweep: str | None = None       # take the critic of this sweep's best trial
    config: str | None = None           # or of this YAML run config
    ext: list[str] = field(default_factory=list)  # modes beside the baseline ("grad-embed", ...; "all")
    rungs: str | int | list[str] | None = None    # the first N rungs, or rung names (comma-separated)
    seeds: int | None = None            # seeds 0 .. N-1 (default: the file's, 2 with quick)
    epochs: int | None = None
    threshold: float = 0.6
    quick: bool = False                 # 300 epochs, 2 seeds, avg_hor 100: a smoke run
    name: str | None = None             # sweep name (default: the space's name)
    storage: str | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    max_failures: int | None = None
    seed: int = 0                       # seed of the search (the trials' seeds are the grid's)
    overrides: list[str] = field(default_factory=list)  # --set KEY=VALUE for every trial
    pack: str | int | None = "auto"     # one critic shape across rungs, modes and seeds: packed where it pays


@dataclass
class LadderPlan:
    sweep: SweepPlan
    rungs: list[str]      # rung names, in order
    modes: list[str]      # the baseline first
    seeds: list[int]
    threshold: float
    critic: str           # where the critic came from, in words

    @property
    def exp_dir(self) -> Path:
        return self.sweep.exp_dir


# ------------------------------------------------------------------------------------ planning


def plan_ladder(opts: LadderOptions) -> LadderPlan:
    """The ladder's sweep, resolved (nothing runs): rungs x modes x seeds of one critic."""
    if not 0.0 < opts.threshold < 1.0:
        raise ConfigError(f"--threshold: {opts.threshold!r} is not allowed (allowed: a number between 0 and 1)")
    file = load_space(opts.space)
    label = file._label()
    if not file.ladder:
        raise ConfigError(f"{label}: no ladder: block (the list of library rungs); give a ladder space, "
                          f"e.g. {LADDER_SPACE}")
    critic, source = _critic(opts, label)
    base = merge(file.base, critic) if critic else dict(file.base)
    modes = _modes(file, opts.ext, label)
    rungs = _rungs(file, opts.rungs, label)
    seeds = _seeds(file, opts)

    params = {k: b for k, b in file.params.items() if k != "seed"}
    params["seed"] = {"values": seeds}
    tree = {"description": file.description, "method": "grid", "ladder": rungs,
            "variants": {m: _fit_mode(over, base) for m, over in modes.items()},
            "parameters": _wandb_parameters(params), "base": base, "tune": file.tune}
    space = space_from_dict(tree, name=file.name, path=file.path)
    epochs = opts.epochs if opts.epochs is not None else (QUICK["epochs"] if opts.quick else None)
    sweep = plan_sweep(space, SweepOptions(
        num_samples=1, epochs=epochs, scheduler="fifo", search="grid", cpus_per_trial=opts.cpus_per_trial,
        gpus_per_trial=opts.gpus_per_trial, storage=opts.storage, name=opts.name,
        max_concurrent=opts.max_concurrent, max_failures=opts.max_failures, quick=opts.quick, seed=opts.seed,
        overrides=list(opts.overrides), pack=opts.pack))
    return LadderPlan(sweep=sweep, rungs=[rung_name(r) for r in rungs], modes=list(modes), seeds=seeds,
                      threshold=float(opts.threshold), critic=source)


def _critic(opts: LadderOptions, label: str) -> tuple[dict, str]:
    if opts.from_sweep and opts.config:
        raise ConfigError("--from and --config both give the critic; give one")
    if opts.from_sweep:
        return best_trial_config(opts.from_sweep, opts.storage)
    if opts.config:
        tree = read_yaml(opts.config)
        Config.from_dict(tree, where=f"{opts.config}: ")
        return _critic_keys(tree), f"the config {opts.config}"
    return {}, f"the base of {label}"


def _critic_keys(tree: dict) -> dict:
    """A run config's critic: everything but the keys the ladder sets (epochs, seed, library, cadence)."""
    return unflatten({k: v for k, v in flatten(tree).items() if k not in RUN_KEYS})


def best_trial_config(name: str, storage: str | None = None) -> tuple[dict, str]:
    """The critic of a sweep's best trial (highest ``final_avg_acc`` among trials that did not fail), read
    back from its ``cfg.*`` columns in ``trials.parquet``: (nested config, where it came from in words)."""
    from .results import export

    exp_dir = find_sweep(name, storage)
    table = store.join(exp_dir, "trials.parquet")
    if not store.is_file(table):
        export(exp_dir)
    trials = store.read_parquet(table)
    if "final_avg_acc" not in trials.columns:
        raise StudyError(f"{table}: no final_avg_acc column; is it a sweep's trials table?")
    best = store.best_trial(trials)
    if best is None:
        raise StudyError(f"{table}: no trial with a final avg_acc yet (of {len(trials)}); "
                         "pick another sweep or give --config")
    flat = {}
    for col, value in best.items():
        key = col[4:] if isinstance(col, str) and col.startswith("cfg.") else None
        if key in SCHEMA and key not in RUN_KEYS:
            flat[key] = _cell(value)
    tree = unflatten(flat)
    Config.from_dict(tree, where=f"{table}: trial {best['trial_id']}: ")
    name = str(exp_dir).rstrip("/").rsplit("/", 1)[-1]
    return tree, f"the best trial of sweep {name} ({best['trial_id']}, final avg_acc {best['final_avg_acc']:.3f})"


def _cell(value):
    """A ``cfg.*`` cell back to a config value: pairs and lists are JSON text, missing values NaN/None."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _modes(file: SearchSpace, ext: list[str], label: str) -> dict[str, dict]:
    """{mode: overrides}: the file's first variant (the baseline), then the ones ``ext`` names."""
    variants = file.variants or {BASELINE: {}}
    baseline, *others = variants
    wanted: list[str] = []
    for item in ext or []:
        for m in (s.strip() for s in str(item).split(",")):
            if not m or m == baseline:
                continue
            if m == "all":
                wanted.extend(others)
            elif m in others:
                wanted.append(m)
            else:
                raise ConfigError(f"--ext: {m!r} is not a mode of {label} (allowed: {', '.join(others) or 'none'}, "
                                  "or all)")
    return {m: variants[m] for m in dict.fromkeys([baseline, *wanted])}


def _fit_mode(over: dict, base: dict) -> dict:
    """A mode's overrides made to fit the critic: the main network is the critic's (its ints, or the main
    part of its pairs); an embed mode puts an embedding in front (the mode's, else the critic's, else the
    seed's 2 x 64); ext_size is left to the engine."""
    flat = flatten(over)
    given = flatten(base)
    ext = flat.get("ext", given.get("ext"))
    ext_type = flat.get("ext_type", given.get("ext_type", SCHEMA["ext_type"].default))
    embed = bool(ext) and ext_type == "embed"
    for key, seed_part in SEED_EMBEDDING.items():
        critic = given.get(key, SCHEMA[key].default)
        mode = flat.get(key)
        main = critic[1] if isinstance(critic, list) else critic
        if embed:
            first = mode[0] if isinstance(mode, list) else critic[0] if isinstance(critic, list) else seed_part
            flat[key] = [first, main]
        else:
            flat[key] = main
    flat["ext_size"] = None
    return unflatten(flat)


def _rungs(file: SearchSpace, pick, label: str) -> list[str]:
    rungs = list(file.ladder)
    if pick is None or pick == "":
        return rungs
    if isinstance(pick, str) and pick.strip().isdigit():
        pick = int(pick)
    if isinstance(pick, int):
        if not 1 <= pick <= len(rungs):
            raise ConfigError(f"--rungs: {pick} is not allowed (allowed: 1 to {len(rungs)}, the first N rungs of {label})")
        return rungs[:pick]
    names = [s.strip() for s in (pick.split(",") if isinstance(pick, str) else pick) if s.strip()]
    by_name = {rung_name(r): r for r in rungs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"--rungs: {unknown[0]!r} is not a rung of {label} (allowed: {', '.join(by_name)}, "
                          "or a number: the first N)")
    return [r for r in rungs if rung_name(r) in names]  # in the ladder's order


def _seeds(file: SearchSpace, opts: LadderOptions) -> list[int]:
    if opts.seeds is not None:
        if opts.seeds < 1:
            raise ConfigError(f"--seeds: {opts.seeds} is not allowed (allowed: an integer >= 1)")
        return list(range(opts.seeds))
    if opts.quick:
        return list(range(QUICK["seeds"]))
    block = file.params.get("seed", {})
    values = block.get("values") or ([block["value"]] if "value" in block else None)
    return list(values) if values else [0, 1, 2]


def _wandb_parameters(params: dict) -> dict:
    """Dotted parameter blocks back into the nested W&B form a space file has."""
    out: dict = {}
    for key, block in params.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {"parameters": {}})["parameters"]
        node[leaf] = block
    return out


def describe_ladder(plan: LadderPlan) -> str:
    """What the ladder will run (for ``--dry-run``): the grid, the critic, and the sweep's first trials."""
    n = len(plan.rungs) * len(plan.modes) * len(plan.seeds)
    s = plan.sweep.settings
    head = [f"ladder {plan.sweep.name!r}: {len(plan.rungs)} rungs x {len(plan.modes)} mode(s) x "
            f"{len(plan.seeds)} seed(s) = {n} trials of {s['epochs']} epochs, threshold {plan.threshold:g}",
            f"  rungs: {', '.join(plan.rungs)}",
            f"  modes: {', '.join(plan.modes)}",
            f"  seeds: {', '.join(map(str, plan.seeds))}",
            f"  critic: {plan.critic}", ""]
    return "\n".join(head) + describe(plan.sweep, n=min(3, n))


# ------------------------------------------------------------------------------------ running


def run_ladder(plan: LadderPlan, address: str | None = None, dashboard: bool = False, verbose: bool = False) -> Path:
    """Run the ladder's sweep, then write and print its report; returns the sweep folder."""
    from .sweep import run_sweep

    exp_dir = plan.exp_dir
    if "://" in plan.sweep.storage:
        raise ConfigError("tune-sd ladder writes its report beside the sweep: give a local --storage")
    if list(exp_dir.glob("experiment_state-*.json")):
        raise StudyError(f"{exp_dir} already holds a sweep; give the ladder another --name, or report on this "
                         f"one again with `tune-sd ladder --report {plan.sweep.name}`")
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / LADDER_FILE).write_text(json.dumps({
        "rungs": plan.rungs, "modes": plan.modes, "seeds": plan.seeds, "threshold": plan.threshold,
        "critic": plan.critic, "epochs": plan.sweep.settings["epochs"]}, indent=2))
    run_sweep(plan.sweep, address=address, dashboard=dashboard, verbose=verbose)
    report = ladder_report(exp_dir, plan.threshold)
    print(report.format())
    print(f"\nwrote {report.table_path}\nwrote {report.figure_path}")
    return exp_dir


def ladder_command(opts: LadderOptions, address: str | None = None, dashboard: bool = False, dry_run: bool = False,
                   report: str | None = None, verbose: bool = False) -> int:
    """What ``tune-sd ladder`` does: run the ladder (or, ``dry_run``, only show it), or, with ``report``
    (a ladder sweep's name or folder), write and print the report of one that ran."""
    if report:
        result = ladder_report(find_sweep(report, opts.storage), opts.threshold)
        print(result.format())
        print(f"\nwrote {result.table_path}\nwrote {result.figure_path}")
        return 0
    plan = plan_ladder(opts)
    if dry_run:
        print(describe_ladder(plan))
        return 0
    exp_dir = run_ladder(plan, address=address, dashboard=dashboard, verbose=verbose)
    print(f"results: {exp_dir}\nTensorBoard: tensorboard --logdir {exp_dir}")
    return 0


# ------------------------------------------------------------------------------------ the report


#: seeds per rung for naming a failure point. If two neighbouring rungs both sat right at the threshold,
#: each seed would fall on either side of it with probability 1/2; a clean split (every seed of the rung
#: before at or above the threshold, every seed of the failing rung below) would then happen by chance
#: with probability 2^-(seeds of both rungs): 1/16 for 2 + 2 seeds (above 5 %), 1/64 for 3 + 3. A seed
#: matters this much: the Step 15 critic's mean accuracy spans 0.58 to 0.72 over 16 seeds (DOMAIN.md).
MIN_SEEDS = 3


@dataclass
class LadderReport:
    table: object                 # pandas DataFrame with COLUMNS
    first_fail: dict              # mode -> the first rung whose mean is below the threshold (None: none)
    rungs: list[str]
    modes: list[str]
    threshold: float
    table_path: Path
    figure_path: Path
    seeds: dict = field(default_factory=dict)   # (mode, rung) -> the seeds' final avg_acc
    epochs: int | None = None                   # the runs' planned epochs, where known

    def verdict(self, mode: str) -> tuple[str, str | None]:
        """(kind, rung): ``fails`` at a named failure point; ``holds`` on every rung; ``never learned``
        (no rung reached the threshold, so there is no point where it starts to fail); ``unclear`` (the
        mean first falls below at ``rung``, but too few seeds or seeds on both sides of the threshold)."""
        rung = self.first_fail[mode]
        if rung is None:
            return "holds", None
        i = self.rungs.index(rung)
        if not any(self._mean(mode, r) >= self.threshold for r in self.rungs):
            return "never learned", rung
        if i == 0:  # the smallest library fails while a larger one holds: no point where it starts to fail
            return "unclear", rung
        before = self._accs(mode, self.rungs[i - 1])
        at = self._accs(mode, rung)
        clean = len(before) and len(at) and min(before) >= self.threshold and max(at) < self.threshold
        if clean and min(len(before), len(at)) >= MIN_SEEDS:
            return "fails", rung
        return "unclear", rung

    def _accs(self, mode, rung) -> list[float]:
        return list(self.seeds.get((mode, rung), []))

    def _mean(self, mode, rung) -> float:
        a = self._accs(mode, rung)
        return sum(a) / len(a) if a else float("nan")

    def format(self) -> str:
        """The table: one row per rung, one column per mode (mean ± std over seeds; * below the threshold),
        then, per mode, what the ladder shows and what it rests on, and how far extra information moves
        the failure point."""
        t = self.table.set_index(["mode", "rung"])
        cell_w = 17
        name_w = max([len(r) for r in self.rungs] + [len("first rung below")])
        n = sorted(set(int(v) for v in self.table["n_seeds"]))
        seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]} to {n[-1]}"
        lines = [f"final avg_acc per rung (mean ± std over {seeds} seed(s)"
                 + (f" of {self.epochs} epochs" if self.epochs else "") + f"; * below the threshold {self.threshold:g})",
                 "", f"{'rung':<{name_w}}" + "".join(f"  {m:>{cell_w}}" for m in self.modes)]
        for rung in self.rungs:
            cells = []
            for mode in self.modes:
                row = t.loc[(mode, rung)]
                if row.n_seeds == 0:
                    cell = "-"
                else:
                    cell = f"{row.final_avg_acc_mean:.3f} ± {row.final_avg_acc_std:.3f}" + ("*" if row.fails else " ")
                cells.append(f"  {cell:>{cell_w}}")
            lines.append(f"{rung:<{name_w}}" + "".join(cells))
        lines.append(f"{'first rung below':<{name_w}}"
                     + "".join(f"  {(self.first_fail[m] or '-'):>{cell_w}}" for m in self.modes))
        lines.append("")
        base = self.modes[0]
        lines.append(self._where(base))
        for mode in self.modes[1:]:
            lines.append(self._where(mode) + self._moved(mode, base))
        lines.append(f"(a failure point is named only where every seed of the rung before is at or above the "
                     f"threshold, every seed of the failing rung below it, and each has >= {MIN_SEEDS} seeds: with "
                     f"fewer, two rungs at the threshold would split that way by chance in more than 5 % of runs)")
        return "\n".join(lines)

    def _where(self, mode: str) -> str:
        kind, rung = self.verdict(mode)
        k = len(self.rungs)
        if kind == "holds":
            n = min((len(self._accs(mode, r)) for r in self.rungs), default=0)
            return (f"{mode}: classification holds on all {k} rung{'s' if k != 1 else ''} (mean over >= {n} "
                    f"seed{'s' if n != 1 else ''} each at or above {self.threshold:g})")
        at = f"rung {self.rungs.index(rung) + 1} of {k}, {rung}"
        if kind == "fails":
            n0, n1 = len(self._accs(mode, self.rungs[self.rungs.index(rung) - 1])), len(self._accs(mode, rung))
            return (f"{mode}: classification fails at {at} (all {n1} seeds below {self.threshold:g}, all {n0} "
                    "of the rung before at or above)")
        if kind == "never learned":
            best = max(self.rungs, key=lambda r: self._mean(mode, r) if self._mean(mode, r) == self._mean(mode, r) else -1)
            within = f" within {self.epochs} epochs" if self.epochs else ""
            return (f"{mode}: no rung learned{within} (no rung's mean reached the threshold {self.threshold:g}; "
                    f"best {self._mean(mode, best):.3f} at {best}), so no failure point can be named: the critic did "
                    "not reach it even on the smallest library. Train longer (--epochs; the quick ladder is a smoke "
                    "run) or take a critic that learns (--from a sweep's best trial), then look again")
        i = self.rungs.index(rung)
        n = [len(self._accs(mode, r)) for r in (self.rungs[max(i - 1, 0)], rung)]
        if i == 0:
            why = "the first rung is below it while a larger library is above it"
        elif min(n) < MIN_SEEDS:
            why = f"too few seeds ({n[0]} on the rung before, {n[1]} on this one; {MIN_SEEDS} per rung needed)"
        else:
            why = "its seeds and those of the rung before lie on both sides of the threshold"
        return (f"{mode}: the mean first falls below {self.threshold:g} at {at}, but that is not a failure point: "
                f"{why}; run more seeds (--seeds)")

    def _moved(self, mode: str, base: str) -> str:
        kinds = {m: self.verdict(m) for m in (mode, base)}
        if any(k not in ("fails", "holds") for k, _ in kinds.values()):
            return f" (no comparison with {base}: a failure point is missing)"
        end = len(self.rungs)  # "never fails" counts as failing one past the last rung
        at = self.rungs.index(kinds[mode][1]) if kinds[mode][1] else end
        at_base = self.rungs.index(kinds[base][1]) if kinds[base][1] else end
        if at == at_base:
            return f" (as {base})"
        moved = f"{at - at_base:+d} rung{'s' if abs(at - at_base) != 1 else ''}"
        return f" ({'at least ' if at == end else ''}{moved} against {base})"


def ladder_report(exp_dir: str | Path, threshold: float = 0.6) -> LadderReport:
    """The report of a finished (or interrupted) ladder sweep: ``ladder.parquet`` and ``ladder.png`` are
    (re)written in its folder (a local one, or one on a storage URI, through pyarrow's file systems)."""
    import numpy as np
    import pandas as pd

    from .results import export

    if store.is_uri(exp_dir):
        return _remote_ladder_report(str(exp_dir).rstrip("/"), threshold)
    exp_dir = Path(exp_dir)
    table = exp_dir / "trials.parquet"
    if not table.exists():
        export(exp_dir)
    trials = store.read_parquet(table)
    label = AXES["ladder"]
    if label not in trials.columns:
        raise StudyError(f"{exp_dir}: its trials carry no {label} label; is it a ladder sweep?")
    mode_col = AXES["variants"]
    trials = trials.assign(mode=trials[mode_col] if mode_col in trials.columns else BASELINE)
    rungs, modes = _order(exp_dir, trials)

    ok = trials[(trials["status"] != "ERROR") & trials["final_avg_acc"].notna()]
    rows = []
    for mode in modes:
        for i, rung in enumerate(rungs, start=1):
            acc = ok.loc[(ok["mode"] == mode) & (ok[label] == rung), "final_avg_acc"].to_numpy(dtype=float)
            mean = float(acc.mean()) if len(acc) else math.nan
            std = float(acc.std(ddof=1)) if len(acc) > 1 else (0.0 if len(acc) else math.nan)
            rows.append({"mode": mode, "rung": rung, "rung_index": i, "n_seeds": int(len(acc)),
                         "final_avg_acc_mean": mean, "final_avg_acc_std": std,
                         "fails": bool(len(acc) and mean < threshold)})
    df = pd.DataFrame(rows, columns=COLUMNS).astype({"rung_index": np.int64, "n_seeds": np.int64, "fails": bool})
    seeds = {(m, r): ok.loc[(ok["mode"] == m) & (ok[label] == r), "final_avg_acc"].astype(float).tolist()
             for m in modes for r in rungs}
    epochs = pd.to_numeric(trials.get("cfg.epochs"), errors="coerce") if "cfg.epochs" in trials.columns else None
    epochs = int(epochs.max()) if epochs is not None and epochs.notna().any() else None
    first_fail = {}
    for mode in modes:
        failing = df[(df["mode"] == mode) & df["fails"]]
        first_fail[mode] = failing.sort_values("rung_index")["rung"].iloc[0] if len(failing) else None
    store.atomic_write(exp_dir / TABLE_FILE, lambda tmp: df.to_parquet(tmp, index=False))
    report = LadderReport(table=df, first_fail=first_fail, rungs=rungs, modes=modes, threshold=float(threshold),
                          table_path=exp_dir / TABLE_FILE, figure_path=exp_dir / FIGURE_FILE, seeds=seeds,
                          epochs=epochs)
    named = {m: (r if report.verdict(m)[0] == "fails" else None) for m, r in first_fail.items()}
    _figure(df, rungs, modes, named, threshold, exp_dir / FIGURE_FILE, title=exp_dir.name)
    return report


def _order(exp_dir: Path, trials) -> tuple[list[str], list[str]]:
    """Rungs and modes in the ladder's order: as planned (ladder.json, written by :func:`run_ladder`), else
    as the space file the sweep ran lists them (those that ran), else sorted; then any others found."""
    found_rungs = sorted(set(trials[AXES["ladder"]].dropna()))
    found_modes = sorted(set(trials["mode"].dropna()))
    try:
        saved = json.loads(store.read_bytes(store.join(exp_dir, LADDER_FILE)))
        rungs, modes = list(saved["rungs"]), list(saved["modes"])
    except (OSError, StudyError, ValueError, KeyError, TypeError):
        space_path = read_meta(exp_dir).get("space_path")
        try:
            axes = load_space(space_path).axes() if space_path else {}
        except (ConfigError, OSError):
            axes = {}
        rungs = [r for r in axes.get(AXES["ladder"], {}) if r in found_rungs]
        modes = [m for m in axes.get(AXES["variants"], {}) if m in found_modes]
    return rungs + [r for r in found_rungs if r not in rungs], modes + [m for m in found_modes if m not in modes]


def _remote_ladder_report(uri: str, threshold: float) -> LadderReport:
    """The report of a ladder sweep on a storage URI: its files are read from there, the report is made in
    a local folder with the same name and its two files are written back beside the sweep."""
    import tempfile

    from pyarrow import fs

    from .results import export

    if not store.is_dir(uri):
        raise StudyError(f"no sweep at {uri}: no such folder on that storage")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / uri.rsplit("/", 1)[-1]
        local.mkdir()
        if not store.is_file(store.join(uri, "trials.parquet")):
            export(uri)
        for name in ("trials.parquet", LADDER_FILE, META_FILE):
            if store.is_file(store.join(uri, name)):
                (local / name).write_bytes(store.read_bytes(store.join(uri, name)))
        report = ladder_report(local, threshold)
        filesystem, root = fs.FileSystem.from_uri(uri)
        for name in (TABLE_FILE, FIGURE_FILE):
            with filesystem.open_output_stream(f"{root}/{name}") as sink:
                sink.write((local / name).read_bytes())
    report.table_path, report.figure_path = store.join(uri, TABLE_FILE), store.join(uri, FIGURE_FILE)
    return report


def _figure(df, rungs, modes, first_fail, threshold, path: Path, title: str) -> Path:
    """Final avg_acc vs rung, one line per mode (mean, bars: std over seeds); the threshold dashed, each
    mode's failure point circled where the report names one (:meth:`LadderReport.verdict`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 1.1 * len(rungs) + 2), 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = list(range(1, len(rungs) + 1))
    for i, mode in enumerate(modes):
        d = df[df["mode"] == mode].sort_values("rung_index")
        color = f"C{i % 10}"
        ax.errorbar(d["rung_index"], d["final_avg_acc_mean"], yerr=d["final_avg_acc_std"].fillna(0), color=color,
                    marker="o", capsize=3, label=mode)
        rung = first_fail.get(mode)
        if rung is not None:
            at = d[d["rung"] == rung].iloc[0]
            ax.plot([at["rung_index"]], [at["final_avg_acc_mean"]], marker="o", markersize=14, markerfacecolor="none",
                    markeredgecolor=color, markeredgewidth=1.5)
    if any(first_fail.get(m) for m in modes):
        ax.plot([], [], marker="o", markersize=10, markerfacecolor="none", markeredgecolor="0.3", linestyle="none",
                label="failure point")
    ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.axhline(0.5, color="0.6", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(x)
    ax.set_xticklabels(rungs, rotation=20, ha="right")
    ax.set_xlim(0.5, len(rungs) + 0.5)
    low = (df["final_avg_acc_mean"] - df["final_avg_acc_std"].fillna(0)).min(skipna=True)
    ax.set_ylim(min(0.4, float(low) - 0.03) if low == low else 0.4, 1.02)
    ax.set_xlabel("library rung (each holds the ones before)")
    ax.set_ylabel("final avg_acc (mean ± std over seeds)")
    ax.set_title(f"{title}: where classification fails" if any(first_fail.get(m) for m in modes)
                 else f"{title}: final avg_acc per rung (no failure point named)", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return store.atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".")))
