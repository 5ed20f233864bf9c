"""A sweep: a search space run as Ray Tune trials, with its results exported as Parquet. Its plan
(options resolved and checked before Ray starts) is :mod:`tune_sd.tune.plan`; here it is described
(``--dry-run``), run and resumed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from tune_sd.engine.config import SECTIONS, Config, flatten, merge, unflatten
from tune_sd.errors import StudyError
from tune_sd.store import META_FILE, check_storage, claim_sweep, find_sweep, has_experiment_state, join, read_meta, write_bytes

from tune_sd.tune.choices import DEFAULTS
from tune_sd.tune.stopping.nonlearner import nonlearner_settings
from tune_sd.tune.plan import SweepPlan
from tune_sd.tune.results import export


def describe(plan: SweepPlan, n: int = 3) -> str:
    """What a sweep will run, for ``--dry-run``: what the search draws per trial, what every trial shares
    (the space's and this sweep's, apart), and the first sampled trials with only what they drew."""
    import yaml

    s, space = plan.settings, plan.space
    grid = s["search"] == "grid"
    if grid:
        points = space.grid_size(grid=True)
        samples = (f"grid of {points} point(s), each once" if int(s["num_samples"]) == 1 else
                   f"grid of {points} point(s), repeated {s['num_samples']} times (num_samples)")
    else:
        samples = f"samples {s['num_samples']}"
    lines = [f"sweep {plan.name!r} of study {space.name!r} -> {plan.exp_uri}",
             f"search {s['search']}, scheduler {s['scheduler']}, metric {s['metric']} ({s['mode']}), "
             f"{samples}, epochs {s['epochs']}, report every {s['report_every']}, "
             f"{s['cpus_per_trial']:g} CPU / {s['gpus_per_trial']:g} GPU per trial",
             f"trials: {plan.trials}"]
    from tune_sd.tune.stopping.describe import describe_scheduler  # no Ray: the words of the plan

    # the effective settings for this run's planned epochs: the grace, window and rungs a trial is judged by
    lines.append(f"stopping: {describe_scheduler(s)}")
    if s.get("critic_from"):
        path = plan.fixed["critic.path"]
        lines.append(f"critic: {s['critic_from']}" + ("" if path in s["critic_from"] else f" ({path})"))
    swept = space.swept_keys()
    searched = ("searched (the grid: each trial runs one point" + (")" if int(s["num_samples"]) == 1 else
                ", and each point runs num_samples times)") + ":" if grid else "searched (each trial draws its own value):")
    lines += ["", searched]
    for key in swept:
        block = space.params.get(key)
        text_ = yaml.safe_dump(block, default_flow_style=True, width=1000).strip() if block else "(its section's values)"
        lines.append(f"  {key}: {text_}")
    for label, table in space.axes().items():
        keys = sorted({k for over in table.values() for k in over})
        names = yaml.safe_dump({"values": list(table)}, default_flow_style=True, width=1000).strip()
        lines.append(f"  {label}: {names}" + (f" (each name sets {', '.join(keys)})" if keys else ""))
    seed = _engine_seed(plan)
    if seed == "drawn":
        lines.append("  seed: a distinct engine seed per trial, drawn by the search")
    if len(lines) == lines.index(searched) + 1:
        lines.append("  nothing: every trial runs the same config")
    by_space, by_sweep = _fixed_keys(plan, swept)
    if seed not in ("drawn", None) and "seed" not in by_space and "seed" not in by_sweep:
        by_sweep["seed"] = seed  # Optuna's trials share the search's seed
    lines += ["", "fixed for every trial by the space (its base and single-valued parameters):"]
    lines += _wrapped(by_space) or ["  nothing"]
    lines += ["fixed for every trial by this sweep (tune: block, --set, --epochs, --quick"
              + (", --critic-from" if s.get("critic_from") else "") + "; it wins over the space):"]
    lines += _wrapped(by_sweep) or ["  nothing"]
    lines.append("every other key: its default (the Step 15 run; tune_sd/engine/config.py lists them)")
    from tune_sd.tune.packing.plan import describe_packing

    lines.extend(describe_packing(plan))
    labels = list(space.axes())
    axis_keys = list(dict.fromkeys(k for table in space.axes().values() for over in table.values() for k in over))
    shown = axis_keys + swept
    if s.get("repeat", 1) > 1:  # the trials as they run: each config's repeats side by side, with their seeds
        samples = plan.points[:n]
        labels.append("repeat")
        shown = shown + ["seed"] + (["data.seed"] if s.get("repeat_data") else [])
    else:
        samples = space.sample(n, seed=s["seed"], labels=True)
    what = ("random draws from the space (Optuna's own picks depend on the results)" if s["search"] == "bayes"
            else f"the first {len(samples)} trials")
    lines += ["", f"{what}, searched keys only:"]
    for i, sample in enumerate(samples):
        run = {k: v for k, v in sample.items() if k not in labels}
        Config.from_dict(merge(run, unflatten(plan.fixed)), where=f"trial {i}: ")  # what the trial will run
        flat = flatten(run)
        drawn = {**{k: sample[k] for k in labels if k in sample}, **{k: flat.get(k) for k in shown}}
        lines.append(f"  trial {i}: " + (", ".join(f"{k}={json.dumps(v)}" for k, v in drawn.items()) or "(the fixed config)"))
    return "\n".join(lines)


def _engine_seed(plan: SweepPlan):
    """How trials get their engine seed: "drawn" per trial, a value fixed for all, or None (swept)."""
    if "seed" in plan.space.params:
        return None if "seed" in plan.space.swept_keys() else flatten(plan.base).get("seed")
    if "seed" in plan.base:
        return plan.base["seed"]
    # a searcher without a seed parameter: random and grid draw one per trial; Optuna runs every trial on the
    # search's seed (see _param_space_and_searcher)
    return plan.settings["seed"] if plan.settings["search"] == "bayes" else "drawn"


def _fixed_keys(plan: SweepPlan, swept: list[str]) -> tuple[dict, dict]:
    """({key: value} the space fixes, {key: value} this sweep fixes), dotted, without the swept keys."""
    space = plan.space
    axis_keys = {k for table in space.axes().values() for over in table.values() for k in over}
    constants = {}
    for key, block in space.params.items():
        if "value" in block or ("values" in block and len(block["values"]) == 1):
            value = block["value"] if "value" in block else block["values"][0]
            constants.update(flatten({key: value}) if key in SECTIONS else {key: value})
        elif key not in swept:  # a section swept whole: the keys its values share
            constants.update({k: v for k, v in flatten({key: block["values"][0]}).items() if k not in swept})
    varying = set(swept) | axis_keys
    sweep_fixed = {k: v for k, v in plan.fixed.items() if k not in varying}
    sweep_fixed.update({k: v for k, v in flatten(space.overrides).items() if k not in varying})
    by_space = {k: v for k, v in {**flatten(space.base), **constants}.items()
                if k not in varying and k not in sweep_fixed}
    return by_space, sweep_fixed


def _wrapped(values: dict, width: int = 100) -> list[str]:
    """key=value pairs as indented lines of at most ``width`` characters."""
    lines, line = [], ""
    for k, v in values.items():
        item = f"{k}={json.dumps(v)}"
        if line and len(line) + 2 + len(item) > width - 2:
            lines.append("  " + line)
            line = item
        else:
            line = f"{line}, {item}" if line else item
    if line:
        lines.append("  " + line)
    return lines


# ------------------------------------------------------------------------------------ running


def packed_trainable(settings: dict, name: str, run: str, sizes: dict | None = None, result_s: float | None = None,
                     planned: dict | None = None):
    """The packed trainable of a sweep's driver run: each trial reserves its share of an executor's
    cores (``sizes``: auto's members per population by shape key, :func:`.packing.fill_sizes`)."""
    from ray import tune

    from tune_sd.tune.packing.client import PackSettings, PackShare
    from tune_sd.tune.trainable import SDTrainable

    pack = settings["pack"]
    cpus, gpus = float(settings["cpus_per_trial"]), float(settings["gpus_per_trial"])
    trainable = tune.with_parameters(SDTrainable, pack=PackSettings(name, pack, cpus, gpus, run, sizes or {}),
                                     result_s=result_s, planned=planned)
    # the resources travel with the class into each trial's process: PackShare imports nothing there
    return tune.with_resources(trainable, PackShare(pack, cpus, gpus, sizes or {}))


def _trainable(settings: dict, name: str | None = None, run: str = "", sizes: dict | None = None,
               planned: dict | None = None):
    """The sweep's trainable; each trial sends the driver a result about every ``result_s`` seconds,
    sized to the trials that run at once on the cluster (cadence.result_interval, report_rows.py). ``planned``
    (a resumed sweep's, resume_check.py): the epochs no trial runs past."""
    import ray
    from ray import tune

    from tune_sd.tune.cadence import result_interval
    from tune_sd.tune.packing.plan import concurrent_trials
    from tune_sd.tune.trainable import SDTrainable

    res = ray.cluster_resources()
    result_s = result_interval(concurrent_trials(settings, res.get("CPU", 1.0), res.get("GPU", 0.0), sizes))
    if settings.get("pack", "off") != "off" and name:
        return packed_trainable(settings, name, run, sizes, result_s, planned)

    resources = {"cpu": settings["cpus_per_trial"], "gpu": settings["gpus_per_trial"]}
    return tune.with_resources(tune.with_parameters(SDTrainable, result_s=result_s, planned=planned), resources)


def _param_space_and_searcher(plan: SweepPlan):
    from ray import tune

    s = plan.settings
    if s["search"] == "bayes":
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch
        import optuna

        from tune_sd.tune.optuna_space import optuna_space

        sampler = optuna.samplers.TPESampler(seed=s["seed"])
        searcher = OptunaSearch(space=optuna_space(plan.space), sampler=sampler, metric=s["metric"], mode=s["mode"])
        if s["max_concurrent"]:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=s["max_concurrent"])
        param_space = merge(plan.base, {"seed": s["seed"]}) if "seed" not in plan.space.params else plan.base
        # Optuna suggests every swept key, constants included; the base carries the rest
        param_space = {k: v for k, v in flatten(param_space).items() if k not in plan.space.params}
        param_space = unflatten(param_space)
        return param_space, searcher
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if s.get("repeat", 1) > 1:
        from tune_sd.spaces.blocks import choice_text

        # R copies of each sampled config, each with its own seed: evaluated as given. Tune walks into
        # a preset's lists as into its mappings, so a list or mapping travels as its YAML text, as
        # Optuna's list choices do (the trainable and the exporter read it back)
        points = [unflatten({k: choice_text([v])[0] for k, v in flatten(point).items()})
                  for point in plan.points]
        # Tune sets a point's values into the space: every key must be there (None: Tune checks nothing)
        keys = {key: None for point in points for key in flatten(point)}
        return unflatten(keys), BasicVariantGenerator(points_to_evaluate=points, max_concurrent=s["max_concurrent"] or 0)
    from tune_sd.tune.ray_space import param_space as ray_param_space

    # the space (its base and what it sweeps), then what the sweep fixes on top
    param_space = merge(ray_param_space(plan.space, grid=s["search"] == "grid"), unflatten(plan.fixed))
    if "seed" not in plan.space.params and "seed" not in plan.base:
        # a distinct, reproducible engine seed per trial (the searcher's random state draws it)
        param_space["seed"] = tune.randint(0, 2**31 - 1)
    searcher = BasicVariantGenerator(random_state=s["seed"], max_concurrent=s["max_concurrent"] or 0)
    return param_space, searcher


def trial_dirname(trial) -> str:
    """Short trial folder names (Tune's default spells out every parameter)."""
    return f"trial_{trial.trial_id}"


def _swept_columns(space, sep: str = "/", repeat: bool = False) -> dict:
    """Progress table columns: the swept keys only, by their last name. Nested trial configs are
    looked up with "/"; a searcher's flat dotted keys (Optuna) with the dotted key itself."""
    cols = {}
    for key, block in space.params.items():
        if "value" in block or len(block.get("values", [None, None])) < 2:
            continue
        short = key.split(".")[-1]
        cols[key.replace(".", sep)] = short if short not in cols.values() else key
    for label in space.axes():  # variant / rung names
        cols[label] = label
    if repeat:
        cols["repeat"] = "repeat"
    return cols


def _stopper(plan: "SweepPlan", recorder=None):
    from tune_sd.tune.stopping.describe import uses_nonlearner
    from tune_sd.tune.stopping.nonlearner_stopper import NonLearnerStopper

    if not uses_nonlearner(plan.settings["scheduler"]):
        return None
    s = plan.settings
    return NonLearnerStopper(nonlearner_settings(s), recorder=recorder, repeat=int(s.get("repeat", 1) or 1),
                             repeat_data=bool(s.get("repeat_data")))


# the progress table's metric columns, per task (Ray's table, --verbose)
PROGRESS_COLUMNS = {"sd": ("epoch", "avg_acc", "acc"), "regularize": ("epoch", "val_mse", "min_corr", "reg")}


def searched_keys(space) -> list[str]:
    """The dotted keys a sweep searches: its swept keys, then those its named axes set to differing
    values (a key every variant sets alike is no more searched than a constant)."""
    out = list(space.swept_keys())
    for names in space.axes().values():
        sets = list(names.values())
        for key in dict.fromkeys(k for over in sets for k in over):
            if key not in out and len({repr(over.get(key, _UNSET)) for over in sets}) > 1:
                out.append(key)
    return out


_UNSET = object()


def _run_config(plan_name: str, storage: str, settings: dict, columns: dict | None = None, stop=None,
                callbacks: list | None = None, verbose: bool = False, searched: list | None = None,
                tracking=None, sizes: dict | None = None, upcoming: tuple = ()):
    """Tune's run config. Ray's own status table only with ``verbose``; otherwise our progress line
    (progress.py). Our TensorBoard logger stands in for Tune's; the JSON and CSV loggers (Tune's, kept
    whole across a trial's restarts: trial_logs.py), which the Parquet export reads, are named so that
    they stay whatever the environment says. ``callbacks`` (the stop recorder) come first: they edit a
    trial's last result before the loggers write it. ``tracking`` (W&B, MLflow: tracking.py) comes last.
    ``sizes`` (auto's members per population) tell the progress line how the trials still to run pack, and
    ``upcoming`` (packing.plan.upcoming_configs) what the trials Tune has not created yet will be."""
    from ray import tune

    from tune_sd.tune.packing.plan import PopulationCosts
    from tune_sd.tune.progress import SweepProgress, SweepReporter, describe_scheduler, progress_metrics
    from tune_sd.tune.tensorboard import SweepTensorBoard
    from tune_sd.tune.trial_logs import TrialCsvLogger, TrialJsonLogger

    metrics = progress_metrics(settings)
    callbacks = list(callbacks or []) + [TrialJsonLogger(), TrialCsvLogger(), SweepTensorBoard(metrics, searched),
                 SweepProgress(epochs=int(settings["epochs"]), metrics=metrics,
                               costs=PopulationCosts(settings.get("pack", "off"),
                                                     float(settings.get("gpus_per_trial") or 0.0), sizes, upcoming))]
    if tracking is not None:
        callbacks.append(tracking)
    reporter = None
    if verbose:
        uri = f"{storage.rstrip('/')}/{plan_name}" if "://" in storage else str(Path(storage) / plan_name)
        reporter = SweepReporter(describe_scheduler(settings), uri,
                                 metric_columns={m: m for m in PROGRESS_COLUMNS[settings.get("task", "sd")]},
                                 parameter_columns=columns or None, max_progress_rows=30, max_report_frequency=30,
                                 sort_by_metric=True, print_intermediate_tables=True)
    return tune.RunConfig(
        name=plan_name, storage_path=storage, stop=stop, callbacks=callbacks,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_at_end=True),
        failure_config=tune.FailureConfig(max_failures=int(settings["max_failures"])),
        sync_config=tune.SyncConfig(sync_artifacts=True),
        progress_reporter=reporter, verbose=1 if verbose else 0, log_to_file=True)


def _quiet_ray_output():
    """Ray's settings for a sweep's terminal, set before Ray starts (where each misleading line comes from:
    docs/sweeps.md, "What the terminal shows")."""
    # the legacy output engine: its table is what --verbose shows (the new one ignores our reporter)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # ray.init turns Ray's token authentication on for a local Ray (its default) and this logger then warns
    # at every start that it did (ray/_private/authentication/authentication_token_setup.py); inside
    # ray.init that is all it says (the warning about auth being off is for `ray start`), so it is quieted
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # at Ctrl-C Tune's own lines: its signal handler's "Stop signal received" and, once it returns, "Resume
    # experiment with: Tuner.restore(...)" (ray/tune/tune.py), and ExperimentAnalysis's "Failed to fetch
    # metrics for N trial(s)" for trials stopped before their first result (ray/tune/analysis/
    # experiment_analysis.py); our progress line says "interrupted" and `continue it with: tune-sd resume`
    for name in INTERRUPT_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, _InterruptLines) for f in log.filters):
            log.addFilter(_InterruptLines())


INTERRUPT_LOGGERS = ("ray.tune.tune", "ray.tune.analysis.experiment_analysis")
INTERRUPT_LINES = ("Stop signal received", "Experiment has been interrupted", "Training has been interrupted",
                   "Failed to fetch metrics for")


class _InterruptLines(logging.Filter):
    """Drops Tune's lines at Ctrl-C (``INTERRUPT_LINES``); every other line of those loggers passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(INTERRUPT_LINES)


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C: Tune saved it, its tables are written (``exp_dir``), and the command
    exits 130, as an interrupted ``tune-sd train`` does."""

    def __init__(self, exp_dir):
        super().__init__(str(exp_dir))
        self.exp_dir = exp_dir


def write_meta(plan: SweepPlan) -> None:
    meta = {"name": plan.name, "study": plan.space.name, "space_path": str(plan.space.path or ""),
            "epochs": plan.settings["epochs"], "settings": plan.settings, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            # where the sweep logs by default and what it searched: a resumed sweep, export --to and
            # analyze --log log as the sweep does (tracking_export.py)
            "tracking": plan.tracking, "searched": searched_keys(plan.space)}
    text = json.dumps(meta, indent=2, default=str)
    write_bytes(join(plan.exp_uri, META_FILE), text.encode())


def run_sweep(plan: SweepPlan, address: str | None = None, dashboard: bool = False, verbose: bool = False,
              claimed: bool = False) -> Path:
    """Run the sweep to the end and export its Parquet tables; returns the sweep folder. The terminal
    shows our header and progress lines; ``verbose`` adds Ray's status table. The folder is this
    driver's while it runs (store.claim_sweep): a second driver of the same name is refused
    (``claimed``: the caller holds the claim already, as a ladder does while it writes its plan)."""
    if claimed:
        return _run_claimed(plan, address, dashboard, verbose)
    with claim_sweep(plan.exp_uri, f"tune-sd sweep {plan.name}"):
        return _run_claimed(plan, address, dashboard, verbose)


def _run_claimed(plan: SweepPlan, address: str | None, dashboard: bool, verbose: bool) -> Path:
    if has_experiment_state(plan.exp_uri):
        raise StudyError(f"{plan.exp_uri} already holds a sweep; continue it with `tune-sd resume {plan.name}` "
                         f"or start a new one with --name")
    _quiet_ray_output()
    import ray
    from ray import tune

    from tune_sd.tune.cluster import connect

    started = connect(address, dashboard=dashboard)
    run = ""  # this driver run's registry (a packed sweep)
    run_config = None
    try:
        write_meta(plan)
        param_space, searcher = _param_space_and_searcher(plan)
        s = plan.settings
        from tune_sd.tune.packing.plan import upcoming_configs
        from tune_sd.tune.stopping.schedulers import make_scheduler
        from tune_sd.tune.stopping.records import StopRecorder

        # the stopper and the scheduler note their stops here; it writes them into the trials' results
        recorder = StopRecorder()
        scheduler = make_scheduler(s["scheduler"], epochs=s["epochs"], report_every=s["report_every"],
                                   grace_period=s["grace_period"], reduction_factor=s["reduction_factor"],
                                   recorder=recorder, repeat=int(s.get("repeat", 1) or 1),
                                   repeat_data=bool(s.get("repeat_data")), race_alpha=s.get("race_alpha"),
                                   nonlearner=nonlearner_settings(s))
        num_samples = int(s["num_samples"])
        if s.get("repeat", 1) > 1:
            num_samples = len(plan.points)  # the sampled configs (or grid points) times the repeats
        _print_header(plan.name, plan.exp_uri, s, total=plan.trials)
        tracking = _tracking(s.get("log"), plan.name, plan.space.name, searched_keys(plan.space), plan.exp_uri, s)
        run, sizes = _start_packing(plan.name, s, plan)
        run_config = _run_config(plan.name, plan.storage, s,
                                 _swept_columns(plan.space, "." if s["search"] == "bayes" else "/",
                                                s.get("repeat", 1) > 1),
                                 stop=_stopper(plan, recorder), callbacks=[recorder], verbose=verbose,
                                 searched=searched_keys(plan.space), tracking=tracking, sizes=sizes,
                                 upcoming=upcoming_configs(plan))
        tuner = tune.Tuner(
            _trainable(s, plan.name, run, sizes), param_space=param_space,
            tune_config=tune.TuneConfig(metric=s["metric"], mode=s["mode"], scheduler=scheduler,
                                        search_alg=searcher, num_samples=num_samples,
                                        reuse_actors=True, trial_dirname_creator=trial_dirname),
            run_config=run_config)
        tuner.fit()
        interrupted = _say_if_interrupted(run_config, f"tune-sd resume {plan.name} --storage {plan.storage}")
    finally:
        _stop_packing(plan.name, run, plan.settings)
        if started:
            ray.shutdown()
    try:
        exp_dir = finish(plan.exp_uri)
    finally:  # the sweep's own tables first; then what the services were handed is written
        _close_tracking(run_config)
    if interrupted:
        raise SweepInterrupted(exp_dir)
    return exp_dir


def _tracking(log, name: str, study: str, searched, exp_dir, settings: dict, continued=None):
    """The sweep's W&B and MLflow logging (tracking.py), or None where it logs nowhere; says where
    it logs. ``continued``: the targets a resumed sweep logged to before."""
    if not log:
        return None
    from tune_sd.tracking import parse_log

    from tune_sd.tune.tracking import SweepTracking

    targets = parse_log(log)
    said = []
    for t in targets:
        if t.service == "wandb":
            offline = os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun")
            folder = os.environ.get("WANDB_DIR") or (f"{exp_dir}/wandb" if "://" not in str(exp_dir) else "./wandb")
            said.append(f"W&B project {t.where}" + (f" (offline: {folder}; `wandb sync` it)" if offline else ""))
        else:
            said.append(f"MLflow {t.where}")
    print("logging to " + ", ".join(said), file=sys.stderr, flush=True)
    return SweepTracking(targets, name, study, searched, exp_dir, int(settings["epochs"]),
                         str(settings.get("scheduler", "asha")), continued=set(continued or []) >= {str(t) for t in targets})


def _close_tracking(run_config) -> None:
    from tune_sd.tune.tracking import SweepTracking

    for c in (getattr(run_config, "callbacks", None) or []):
        if isinstance(c, SweepTracking):
            c.close()


def _say_if_interrupted(run_config, resume: str) -> bool:
    """After Ctrl-C Tune returns normally, having saved the sweep: say how to continue it with our command
    (True: it was interrupted)."""
    from tune_sd.tune.progress import SweepProgress

    progress = next((c for c in run_config.callbacks or [] if isinstance(c, SweepProgress)), None)
    if progress is not None and progress.interrupted:
        print(f"continue it with: {resume}", file=sys.stderr, flush=True)
        return True
    return False


def _print_header(name: str, exp_uri, settings: dict, total: int | None = None, resumed: bool = False) -> None:
    from tune_sd.tune.progress import header

    print(header(name, exp_uri, settings, total=total, resumed=resumed), file=sys.stderr, flush=True)


def _start_packing(name: str, settings: dict, plan: SweepPlan | None = None) -> tuple[str, dict]:
    """The registry of this driver's run of a packed sweep, on the head node (see
    registry.start_registry), and auto's members per population by shape key, sized to the cluster's
    CPUs (GPUs) now (a resumed sweep, without its plan: the engine's ``pack_size``). Returns (run id,
    sizes). A killed driver's registry went with it; another driver of this sweep keeps its own."""
    if settings.get("pack", "off") == "off":
        return "", {}
    import ray

    from tune_sd.tune.packing.plan import fill_sizes, trial_slots
    from tune_sd.tune.packing.registry import new_run, start_registry

    sizes = {}
    if plan is not None and settings["pack"] == "auto":
        res = ray.cluster_resources()
        sizes = fill_sizes(plan, trial_slots(settings, res.get("CPU", 0.0), res.get("GPU", 0.0)))
    run = new_run()
    ray.get(start_registry(name, run, settings["pack"], float(settings["cpus_per_trial"]),
                           float(settings["gpus_per_trial"]), sizes).executors_of.remote())  # started and ready
    return run, sizes


def _stop_packing(name: str, run: str | None, settings: dict) -> None:
    if settings.get("pack", "off") != "off" and run:
        from tune_sd.tune.packing.registry import stop_registry

        stop_registry(name, run)


def finish(exp_dir) -> str:
    curves, trials = export(exp_dir)
    print(f"wrote {curves} and {trials}", file=sys.stderr)
    return exp_dir


def resume_sweep(name: str, storage: str | None = None, address: str | None = None, verbose: bool = False,
                 trust: bool = False, log: list[str] | None = None) -> Path:
    """Continue an interrupted sweep: unfinished and errored trials go on from their checkpoints. Tune's
    restore unpickles the sweep's files: only from storage the user trusts (trust.py; ``trust``: they said so).
    Its experiment state is checked first (resume_check.py): a damaged one is refused, nothing changed;
    no trial runs past the epochs it planned; the folder is this driver's while it runs. ``log``: where to
    log (``--log``; default: where the sweep logged)."""
    from tune_sd.tune.resume_check import check_experiment_state
    from tune_sd.tune.trust import check_resume_trusted

    exp_dir = find_sweep(name, storage)
    if "://" not in str(exp_dir) and not has_experiment_state(exp_dir):
        raise StudyError(f"{exp_dir}: holds no Tune experiment state to resume")
    check_resume_trusted(exp_dir, trust)
    planned = check_experiment_state(exp_dir)
    if "://" not in str(exp_dir):
        check_storage(str(exp_dir), "the sweep folder")
    with claim_sweep(exp_dir, f"tune-sd resume {Path(str(exp_dir)).name}"):
        return _resume_claimed(exp_dir, address, verbose, planned, log)


def _resume_claimed(exp_dir, address: str | None, verbose: bool, planned: dict, log: list[str] | None) -> Path:
    meta = read_meta(exp_dir)
    settings = meta.get("settings") or dict(DEFAULTS)
    logged = list(settings.get("log") or [])
    if log:
        from tune_sd.tune.tracking_export import sweep_targets

        storage_of = str(exp_dir).rstrip("/").rpartition("/")[0]
        settings = {**settings, "log": [str(t) for t in sweep_targets(log, meta, storage_of)]}
    _quiet_ray_output()
    import ray
    from ray import tune

    from tune_sd.tune.cluster import connect

    started = connect(address)
    run = ""
    run_config = None
    try:
        name = meta.get("name") or Path(str(exp_dir)).name
        run, sizes = _start_packing(name, settings)
        tuner = tune.Tuner.restore(str(exp_dir), trainable=_trainable(settings, name, run, sizes, planned),
                                   resume_unfinished=True, resume_errored=True)
        run_config = _restored_output(tuner, exp_dir, settings, verbose, meta, logged, sizes)
        tuner.fit()
        interrupted = False
        if run_config is not None:
            storage, _, sweep = str(exp_dir).rstrip("/").rpartition("/")
            interrupted = _say_if_interrupted(run_config, f"tune-sd resume {sweep} --storage {storage}")
    finally:
        _stop_packing(meta.get("name") or Path(str(exp_dir)).name, run, settings)
        if started:
            ray.shutdown()
    try:
        finish(exp_dir)
    finally:
        _close_tracking(run_config)
    if interrupted:
        raise SweepInterrupted(exp_dir)
    return exp_dir


def _restored_output(tuner, exp_dir, settings: dict, verbose: bool, meta: dict | None = None,
                     logged: list | None = None, sizes: dict | None = None):
    """The terminal and TensorBoard of a resumed sweep are this run's: Tune restores the run config
    saved with the sweep (its reporter, verbosity and callbacks, older sweeps' included), so they
    are set again, as run_sweep sets them. Tuner keeps that config in its local tuner (not in Ray
    client mode, where the saved one stays)."""
    local = getattr(tuner, "_local_tuner", None)
    if local is None or not all(k in settings for k in ("epochs", "metric", "mode", "report_every")):
        return None
    exp_dir = str(exp_dir)
    storage, _, name = exp_dir.rstrip("/").rpartition("/")
    from tune_sd.tune.stopping.records import StopRecorder

    config = local.get_run_config()
    # the restored stop recorder stays: the restored scheduler and stopper report their stops to it
    recorders = [c for c in (config.callbacks or []) if isinstance(c, StopRecorder)]
    # the restored TensorBoard logger knows which keys the sweep searched (the space is not at hand here)
    searched = next((getattr(c, "searched", None) for c in (config.callbacks or [])
                     if type(c).__name__ == "SweepTensorBoard"), None)
    meta = meta or {}
    tracking = _tracking(settings.get("log"), name, meta.get("study", ""), meta.get("searched", searched), exp_dir,
                         settings, continued=logged)
    fresh = _run_config(name, storage, settings, callbacks=recorders, verbose=verbose, searched=searched,
                        tracking=tracking, sizes=sizes)
    config.callbacks = fresh.callbacks
    config.progress_reporter = fresh.progress_reporter
    config.verbose = fresh.verbose
    _print_header(name, exp_dir, settings, resumed=True)
    return config
