"""A sweep's plan: its options (command line, the space's ``tune:`` block, the defaults) resolved and
checked into everything it needs, before Ray starts (and without Ray: ``--dry-run`` describes a plan).

Every option is resolved in one order: the command line, then the space's ``tune:`` block, then
the defaults (``choices.DEFAULTS``). ``--quick`` shrinks samples and epochs to a smoke run that still
shows early stopping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tune_sd.engine.config import Config, integer, merge, parse_override, unflatten
from tune_sd.errors import ConfigError
from tune_sd.store import check_name, check_storage, storage_root

from tune_sd.tune.choices import DEFAULTS, QUICK, SEARCHES
from tune_sd.tune.stopping.nonlearner import nonlearner_settings


@dataclass
class SweepOptions:
    num_samples: int | None = None
    epochs: int | None = None
    scheduler: str | None = None
    search: str | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    storage: str | None = None
    name: str | None = None
    max_concurrent: int | None = None
    max_failures: int | None = None
    grace_period: int | None = None
    reduction_factor: float | None = None
    nonlearner_grace: int | None = None
    nonlearner_window: int | None = None
    nonlearner_margin: float | None = None
    nonlearner_confidence: float | None = None
    race_alpha: float | None = None  # race: the chance of stopping a config as good as the best
    quick: bool = False
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    critic_from: str | None = None  # regularisation studies: a sweep (its best trial) or a checkpoint
    pack: str | int | None = None   # auto | off | P: trials of one shape key train as one population
    repeat: int = 1                 # seeds per sampled config (a `repeat` label)
    repeat_data: bool = False       # each repeat also draws its own input points (data.seed)
    log: list[str] = field(default_factory=list)  # wandb[=PROJECT], mlflow[=URI]: where the sweep also logs


@dataclass
class SweepPlan:
    """Everything a sweep needs, resolved, before Ray starts."""

    space: object
    name: str
    storage: str
    settings: dict  # metric, mode, scheduler, search, num_samples, resources, ... (resolved)
    base: dict      # the space's base with what the sweep fixes (nested)
    fixed: dict     # what the sweep fixes on top of the space: dotted keys (tune: block, CLI, --quick)
    tracking: dict = field(default_factory=dict)  # where it logs by default: wandb_project, mlflow_uri
    # what the sweep runs, resolved once by plan_sweep (packing/plan.py) and read after: every trial config
    # of a repeated sweep in order (its sampled configs, each R times), the trials it creates, and per shape
    # key of the first sampled configs (shape key, P, trials)
    points: list = field(default_factory=list)
    trials: int = 0
    groups: list = field(default_factory=list)

    @property
    def exp_dir(self) -> Path:
        return Path(self.storage) / self.name

    @property
    def exp_uri(self):
        """The sweep folder: a local Path, or a URI string for remote storage."""
        return f"{self.storage.rstrip('/')}/{self.name}" if "://" in self.storage else self.exp_dir


def plan_sweep(space, opts: SweepOptions) -> SweepPlan:
    # --set first, then the space is checked as a whole (a no-op when load_space was given them)
    space = space.with_overrides(dict(map(parse_override, opts.overrides)))
    tune_block = dict(space.tune or {})

    def pick(key):
        value = getattr(opts, key, None)
        if value is None:
            value = tune_block.get(key)
        if value is None:
            value = DEFAULTS.get(key)
        return value

    _check_flags(opts)
    check_name(opts.name or space.name, "--name" if opts.name else "the study's name (give --name)")
    settings = {k: pick(k) for k in DEFAULTS}
    settings["search"] = opts.search or tune_block.get("search") or space.method
    if settings["search"] not in SEARCHES:
        raise ConfigError(f"search: {settings['search']!r} is not allowed (allowed: {', '.join(SEARCHES)})")
    if settings["search"] == "grid" and opts.num_samples is None and tune_block.get("num_samples") is None:
        settings["num_samples"] = 1  # a grid runs each point once (as W&B's does); seeds per point: --repeat
    # what the sweep fixes on top of the space (tune: block, command line, --quick), as dotted keys
    fixed = {k: tune_block[k] for k in ("report_every", "checkpoint_every", "checkpoint_minutes", "figure_every",
                                        "figure_minutes", "epochs")
             if tune_block.get(k) is not None}
    if opts.epochs is not None:
        fixed["epochs"] = opts.epochs
    fixed.update(space.overrides)  # --set, checked (1e-4 given as text is the number)
    critic_note = None
    if opts.critic_from:
        from tune_sd.tune.critic_from import resolve_critic

        fixed["critic.path"], critic_note = resolve_critic(opts.critic_from, opts.storage)
    base = merge(space.base or {}, unflatten(fixed))
    cfg = Config.from_dict(base, where="base: ")
    if cfg.task == "regularize":
        _check_regularize(cfg, space.name)
    if opts.quick:
        settings["num_samples"] = min(settings["num_samples"], QUICK["num_samples"])
        settings["grace_period"] = QUICK["grace_period"]
        settings["reduction_factor"] = QUICK["reduction_factor"]
        settings["nonlearner_grace"] = min(settings["nonlearner_grace"] or QUICK["nonlearner_grace"], QUICK["nonlearner_grace"])
        settings["nonlearner_window"] = min(settings["nonlearner_window"] or QUICK["nonlearner_window"],
                                            QUICK["nonlearner_window"])
        fixed["epochs"] = min(cfg.epochs, opts.epochs or QUICK["epochs"])
        for key in ("report_every", "avg_hor", "figure_every", "checkpoint_every"):
            fixed[key] = min(cfg[key], QUICK[key]) if cfg[key] else QUICK[key]
        for key, value in (tune_block.get("quick_set") or {}).items():  # the study's own smoke settings
            fixed.setdefault(key, value)
        base = merge(space.base or {}, unflatten(fixed))
        cfg = Config.from_dict(base, where="base: ")
    settings["epochs"] = cfg.epochs
    settings["report_every"] = cfg.report_every
    settings["seed"] = opts.seed
    nonlearner_settings(settings).check()
    if settings["gpus_per_trial"] < 0 or settings["cpus_per_trial"] <= 0:
        raise ConfigError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    settings["task"] = cfg.task
    from tune_sd.tune.packing.plan import check_repeat, resolve_pack

    settings["repeat"], settings["repeat_data"] = check_repeat(opts.repeat, opts.repeat_data, settings["search"])
    from tune_sd.engine.limits import MAX_TRIALS

    if settings["num_samples"] * settings["repeat"] > MAX_TRIALS:
        flag = "--repeat" if settings["repeat"] > 1 else "--num-samples"
        raise ConfigError(f"{flag}: {settings['num_samples']} samples x {settings['repeat']} repeats is more than "
                          f"{MAX_TRIALS} trials, the most of a sweep")
    settings["pack"] = resolve_pack(opts.pack, settings)
    if settings["scheduler"] == "race":
        from tune_sd.tune.stopping.race import race_plan

        # refused before Ray starts: without repeats, or with too few seeds to ever stop a config
        race_plan(epochs=settings["epochs"], report_every=settings["report_every"],
                  grace_period=settings["grace_period"], reduction_factor=settings["reduction_factor"],
                  repeat=settings["repeat"], race_alpha=settings["race_alpha"])
    if cfg.task == "regularize" and "nonlearner" in str(settings["scheduler"]):
        raise ConfigError(f"--scheduler {settings['scheduler']}: the non-learner stopper reads a critic's accuracy; "
                          "a regularisation study reports val_mse and min_corr (use fifo, asha or median)")
    if critic_note:
        settings["critic_from"] = critic_note
    name = opts.name or space.name
    storage = check_storage(storage_root(opts.storage), "--storage" if opts.storage else "$TUNE_SD_STORAGE")
    from tune_sd.tracking import parse_log, resolve
    from tune_sd.tune.tracking_export import defaults

    tracking = defaults(space.path, space.name, storage)
    log = parse_log(opts.log or tune_block.get("log"), "--log" if opts.log else f"{space.name}: tune.log")
    settings["log"] = [str(t) for t in resolve(log, tracking["wandb_project"], tracking["mlflow_uri"])]
    plan = SweepPlan(space=space, name=name, storage=storage, settings=settings, base=base,
                     fixed=fixed, tracking=tracking)
    from tune_sd.tune.packing.plan import resolve_trials

    resolve_trials(plan)
    return plan


# the numeric options given on the command line, checked as the space's tune: block is (spaces/options.py):
# a bad value is refused before Ray starts, rather than, say, 0 samples running nothing
FLAG_NUMBERS = ("num_samples", "max_concurrent", "max_failures", "grace_period", "reduction_factor", "epochs")


def _check_flags(opts: SweepOptions) -> None:
    from tune_sd.spaces import TUNE_OPTIONS

    for key in FLAG_NUMBERS:
        value = getattr(opts, key, None)
        if value is not None:
            setattr(opts, key, TUNE_OPTIONS[key]("--" + key.replace("_", "-"), value))
    integer(0)("--seed", opts.seed)


def _check_regularize(cfg: Config, study: str) -> None:
    """A regularisation study fails before Ray starts when its critic or target does not fit."""
    if cfg.critic.path is None:
        raise ConfigError(f"{study}: a regularisation study needs a trained critic: --critic-from SWEEP "
                          "(its best trial) or --critic-from PATH (a checkpoint), or set critic.path")
    from tune_sd.engine import Regularization

    Regularization(cfg.replace(sd=0.0))  # loads the target and the critic, checks the point counts
