"""The library ladder of Steps 15.4 and 15.6: as the library grows, where does classification fail?

One fixed critic is trained on every rung of a ladder of growing libraries (the ``ladder:`` of a space
file, ``search_spaces/ladder.yaml`` by default), with several seeds per rung, as one Tune grid sweep
over rung x mode x seed with ASHA off, so that every trial runs to the end. The modes are the file's
``variants``: the first (``none``) is the baseline critic, the others give it extra information
(Step 15.6: ``input`` / ``grad``, ``embed`` / ``stack``); ``--ext`` picks them.

The critic is, in this order: the best trial (highest ``final_avg_acc``) of a finished sweep
(``from_sweep``), a YAML run config (``config``), or the space file's base (the Step 15 defaults). Only
its critic keys count; epochs, seeds, the library and the report cadence are the ladder's.

The report (:mod:`tune_sd.analysis.ladder`) is passed in as a function: it reads the finished sweep's
tables and draws, in the analysis layer, which the tune layer does not import. Before the sweep runs, its plan is written
beside it::

    <storage>/<name>/ladder.json      the rungs and modes in order, the threshold, where the critic came from
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tune_sd.engine.config import SCHEMA, Config, flatten, merge, read_yaml, unflatten
from tune_sd import store
from tune_sd.errors import ConfigError, StudyError
from tune_sd.spaces import BASELINE, SearchSpace, load_space, rung_name, space_from_dict
from tune_sd.store import LADDER_FILE, atomic_write, find_sweep

from tune_sd.tune.choices import LADDER_QUICK as QUICK
from tune_sd.tune.plan import SweepOptions, SweepPlan, plan_sweep
from tune_sd.tune.sweep import describe

__all__ = ["LadderOptions", "LadderPlan", "plan_ladder", "describe_ladder", "run_ladder", "ladder_command",
           "best_trial_config"]

LADDER_SPACE = "ladder"
#: keys of a run that belong to the ladder, not to the critic taken from a sweep or a config file
RUN_KEYS = ("epochs", "runtime", "seed", "avg_hor", "report_every", "checkpoint_every", "checkpoint_minutes",
            "figure_every", "figure_minutes", "library.path")
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
    from tune_sd.tune.results import read_table

    exp_dir = find_sweep(name, storage)
    trials, table = read_table(exp_dir)
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


#: the report of a ladder that ran: (sweep folder or URI, threshold) -> an object with ``format()``,
#: ``table_path`` and ``figure_path`` (:func:`tune_sd.analysis.ladder.ladder_report`, bound by the CLI)
Reporter = Callable[[Path | str, float], Any]


def run_ladder(plan: LadderPlan, *, reporter: Reporter, address: str | None = None, dashboard: bool = False,
               verbose: bool = False) -> Path:
    """Run the ladder's sweep, then write and print its report (made by ``reporter``); returns the sweep folder."""
    from tune_sd.tune.sweep import run_sweep

    exp_dir = plan.exp_dir
    if "://" in plan.sweep.storage:
        raise ConfigError("tune-sd ladder writes its report beside the sweep: give a local --storage")
    with store.claim_sweep(exp_dir, f"tune-sd ladder {plan.sweep.name}"):  # before its plan is written
        if store.has_experiment_state(exp_dir):
            raise StudyError(f"{exp_dir} already holds a sweep; give the ladder another --name, or report on this "
                             f"one again with `tune-sd ladder --report {plan.sweep.name}`")
        text = json.dumps({"rungs": plan.rungs, "modes": plan.modes, "seeds": plan.seeds, "threshold": plan.threshold,
                           "critic": plan.critic, "epochs": plan.sweep.settings["epochs"]}, indent=2)
        atomic_write(exp_dir / LADDER_FILE, lambda tmp: Path(tmp).write_text(text))
        run_sweep(plan.sweep, address=address, dashboard=dashboard, verbose=verbose, claimed=True)
    report = reporter(exp_dir, plan.threshold)
    print(report.format())
    print(f"\nwrote {report.table_path}\nwrote {report.figure_path}")
    return exp_dir


def ladder_command(opts: LadderOptions, *, reporter: Reporter, address: str | None = None, dashboard: bool = False,
                   dry_run: bool = False, report: str | None = None, verbose: bool = False) -> int:
    """What ``tune-sd ladder`` does: run the ladder (or, ``dry_run``, only show it), or, with ``report``
    (a ladder sweep's name or folder), write and print the report of one that ran (made by ``reporter``)."""
    if report:
        result = reporter(find_sweep(report, opts.storage), opts.threshold)
        print(result.format())
        print(f"\nwrote {result.table_path}\nwrote {result.figure_path}")
        return 0
    plan = plan_ladder(opts)
    if dry_run:
        print(describe_ladder(plan))
        return 0
    exp_dir = run_ladder(plan, reporter=reporter, address=address, dashboard=dashboard, verbose=verbose)
    print(f"results: {exp_dir}\nTensorBoard: tensorboard --logdir {exp_dir}")
    return 0
