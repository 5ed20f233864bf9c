"""What a sweep packs and repeats: the ``--pack`` and ``--repeat`` options, resolved before Ray starts.

``--pack auto`` packs the trials of a shape key by the engine's measured ``pack_size`` (1: not at all,
e.g. the big 6x128 critic on a CPU, which is compute-bound already); ``--pack P`` packs P per
population; ``--pack off`` runs every trial in its own process, as without packing. Packing is the
default where same-shaped trials are many: ``--repeat`` and grid searches (the ladder is one).

``--repeat R`` runs R seeds of each sampled config (grid point): repeat r has the seed of repeat 0 plus
r and a ``repeat`` label (a column in the tables); with ``--repeat-data`` it also draws its own input
points (``data.seed`` plus r). Repeats of a config are sampled once and run side by side, so that
they share their populations.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from tune_sd.engine.config import SCHEMA, flatten, merge, unflatten
from tune_sd.engine.limits import MAX_TRIALS
from tune_sd.errors import ConfigError

PACK_CHOICES = "auto, off, or an integer P >= 1"
# sampled configs looked at to tell which shape keys a sweep has (its dry run lists them)
PLAN_SAMPLES = 64
# sampled configs counted per shape key to size auto's populations (scaled to the sweep's trials)
FILL_SAMPLES = 1024


def check_repeat(repeat: int | None, repeat_data: bool, search: str) -> tuple[int, bool]:
    repeat = 1 if repeat is None else repeat
    if not isinstance(repeat, int) or not 1 <= repeat <= MAX_TRIALS:
        raise ConfigError(f"--repeat: {repeat!r} is not allowed (allowed: an integer >= 1 and <= {MAX_TRIALS}, "
                          "the most trials of a sweep)")
    if repeat > 1 and search == "bayes":
        raise ConfigError("--repeat: bayes search suggests one config at a time from the results; "
                          "repeat configs with --search random or grid")
    if repeat_data and repeat == 1:
        raise ConfigError("--repeat-data varies the input points per repeat: give --repeat R with R >= 2")
    return repeat, bool(repeat_data)


def parse_pack(value) -> str | int:
    if value is None or value in ("auto", "off"):
        return value
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size < 1 or str(value).strip() != str(size):
        raise ConfigError(f"--pack: {value!r} is not allowed (allowed: {PACK_CHOICES})")
    return size


def resolve_pack(value, settings: dict) -> str | int:
    """The sweep's pack setting: "off", "auto" or P. Unset: auto for repeats and grids, else off."""
    pack = parse_pack(value)
    if pack is None:
        pack = "auto" if settings.get("repeat", 1) > 1 or settings.get("search") == "grid" else "off"
    if settings.get("task", "sd") != "sd":
        return "off"  # a regularisation run trains one network per trial: nothing to stack
    return pack


# ------------------------------------------------------------------------------------ planning


def pack_plan(config: dict, pack, gpus_per_trial: float = 0.0, sizes: dict | None = None) -> tuple[tuple, int]:
    """(shape key, members per population) of a trial config (nested or dotted, labels included).

    ``pack``: "auto" (``sizes[key]`` where the sweep sized its keys to fill the machine, see
    :func:`fill_sizes`; else the engine's measured ``pack_size``), "off", or an integer P. Only the SD
    study packs; other tasks (a regularisation run) get 1.
    """
    from tune_sd.engine import Config, pack_size, shape_key

    from tune_sd.tune.trial_config import split_trial_config

    tree, _ = split_trial_config(config)
    cfg = Config.from_dict(tree)
    device = "cuda" if gpus_per_trial > 0 else "cpu"
    key = shape_key(cfg, device) if cfg.task == "sd" else ("task", cfg.task)
    if cfg.task != "sd" or pack in (None, "off"):
        return key, 1
    if pack == "auto":
        return key, (sizes or {}).get(key) or pack_size(cfg, device)
    return key, max(1, int(pack))


@dataclass(frozen=True)
class PopulationCosts:
    """What the progress line's time left (tune/progress.py) reads of the packing plan, per trial config:
    the members of the population the trial trains in (:func:`pack_plan`), and what an epoch of that
    population costs, in ms of one CPU thread (the engine's ``epoch_cost``; None for trials on GPUs,
    where it was not measured, and outside the SD study). The progress callback holds it, so it pickles
    with the run config and imports the engine only when called (in the driver)."""

    pack: object = "off"
    gpus_per_trial: float = 0.0
    sizes: dict | None = None
    upcoming: tuple = ()  # the sweep's trial configs in the order Tune creates them (upcoming_configs)

    def members(self, config: dict) -> int:
        return pack_plan(config, self.pack, self.gpus_per_trial, self.sizes)[1]

    def epoch_ms(self, config: dict, members: int) -> float | None:
        from tune_sd.engine import Config
        from tune_sd.engine.population import epoch_cost

        from tune_sd.tune.trial_config import split_trial_config

        if self.gpus_per_trial > 0:
            return None
        cfg = Config.from_dict(split_trial_config(config)[0])
        return epoch_cost(cfg, members) if cfg.task == "sd" else None


#: the most trial configs a sweep's progress line is told in advance (upcoming_configs)
UPCOMING_MAX = 1024


def upcoming_configs(plan) -> tuple:
    """The configs of the sweep's trials, in the order Tune creates them, for the progress line's time left:
    Tune creates a random search's trials as places free, so the line would not know what the trials to
    come cost. A bayes search's are Optuna's picks, not known before; only the first UPCOMING_MAX."""
    if plan.settings.get("search") == "bayes":
        return ()
    return tuple(sampled_configs(plan, min(int(plan.trials or 0), UPCOMING_MAX)))


def sampled_configs(plan, n: int = PLAN_SAMPLES) -> list[dict]:
    """The first ``n`` trial configs the sweep runs (labels included): repeats, or the space's draws."""
    if plan.settings.get("repeat", 1) > 1:
        return plan.points[:n]
    return [merge(c, unflatten(plan.fixed)) for c in plan.space.sample(n, seed=plan.settings["seed"], labels=True)]


def _pack_groups(plan, n: int = PLAN_SAMPLES) -> list[tuple[tuple, int, int]]:
    """(shape key, P, trials among the first ``n`` sampled configs) per shape key, most trials first."""
    groups: dict[tuple, list] = {}
    gpus = float(plan.settings.get("gpus_per_trial") or 0.0)
    for config in sampled_configs(plan, n):
        key, size = pack_plan(config, plan.settings["pack"], gpus)
        groups.setdefault(key, [size, 0])[1] += 1
    return sorted(((k, p, n) for k, (p, n) in groups.items()), key=lambda g: -g[2])


def _total_trials(plan) -> int:
    """Trials the sweep creates: its repeats, grid points times samples, or samples (random, bayes)."""
    if plan.settings.get("repeat", 1) > 1:
        return len(plan.points)
    n = int(plan.settings["num_samples"])
    return n * plan.space.grid_size(grid=True) if plan.settings["search"] == "grid" else n


def trial_slots(settings: dict, cpus: float, gpus: float = 0.0) -> int:
    """Places for populations on ``cpus`` CPUs (``gpus`` GPUs where trials ask for one): a population
    takes one trial's share, as an unpacked trial does."""
    share, have = ((float(settings["gpus_per_trial"]), gpus) if float(settings.get("gpus_per_trial") or 0) > 0
                   else (float(settings["cpus_per_trial"]), cpus))
    return max(1, int(have // share + 1e-9))


def concurrent_trials(settings: dict, cpus: float, gpus: float = 0.0, sizes: dict | None = None) -> int:
    """Trials of the sweep that run at once on ``cpus`` CPUs (``gpus`` GPUs): a trial's share each,
    packed ones 1/P of it (P: the largest of ``sizes``, else what ``--pack`` says; auto: the most the
    engine's ``pack_size`` puts in a population)."""
    from tune_sd.engine.population import CPU_PACK, GPU_PACK

    slots, pack = trial_slots(settings, cpus, gpus), settings.get("pack", "off")
    if pack in (None, "off"):
        return slots
    if sizes:
        return slots * max(sizes.values())
    if pack != "auto":
        return slots * int(pack)
    return slots * (GPU_PACK if float(settings.get("gpus_per_trial") or 0) > 0 else CPU_PACK)


def fill_sizes(plan, slots: int) -> dict:
    """``auto``: per shape key, members per population such that every place the sweep has (``slots``,
    see :func:`trial_slots`) has work: the key's N trials make at least min(slots, N) populations, each
    no larger than the engine's measured ``pack_size`` (the counts are the first sampled configs',
    scaled to the sweep's trials). Empty unless ``pack`` is auto."""
    if plan.settings.get("pack") != "auto":
        return {}
    total = plan.trials
    groups = _pack_groups(plan, min(total, FILL_SAMPLES))
    seen = sum(g[2] for g in groups) or 1
    sizes = {}
    for key, cap, count in groups:
        n = max(1, round(count * total / seen))
        sizes[key] = max(1, min(cap, -(-n // min(slots, n))))
    return sizes


def local_slots(settings: dict) -> tuple[int, str]:
    """The sweep's places on this machine, for a plan made before Ray starts, and what they are."""
    import os

    cpus = os.cpu_count() or 1
    gpus = 0
    if float(settings.get("gpus_per_trial") or 0) > 0:
        import torch

        gpus = torch.cuda.device_count()
        return trial_slots(settings, cpus, gpus), f"{gpus} GPU(s)"
    return trial_slots(settings, cpus, gpus), f"{cpus} CPU(s)"


def resolve_trials(plan) -> None:
    """What a sweep runs, once (its plan then holds it): the trial configs of a repeated sweep, the trials
    it creates, its shape keys and their P; ``auto`` where no shape key pays to pack is ``off``."""
    plan.points = _repeat_points(plan) if plan.settings.get("repeat", 1) > 1 else []
    plan.trials = _total_trials(plan)
    plan.groups = _pack_groups(plan, PLAN_SAMPLES)
    if plan.settings.get("pack") == "auto" and all(p == 1 for _, p, _ in plan.groups):
        plan.settings["pack"] = "off"
        plan.groups = _pack_groups(plan, PLAN_SAMPLES)


def describe_packing(plan) -> list[str]:
    s = plan.settings
    lines = []
    if s.get("repeat", 1) > 1:
        lines.append(f"repeat: {s['repeat']} seeds per config" + (", each with its own input points (data.seed)"
                                                                  if s.get("repeat_data") else ""))
    if s.get("pack", "off") == "off":
        lines.append("packing: off (each trial trains in its own process)")
        return lines
    groups = plan.groups
    n = sum(g[2] for g in groups)
    lines.append(f"packing: {s['pack']} (shape keys of the first {n} trials; P trials of a key train as one "
                 f"population, each reserving {s['cpus_per_trial']:g}/P CPU)")
    sizes = {}
    if s["pack"] == "auto":
        slots, what = local_slots(s)
        sizes = fill_sizes(plan, slots)
        lines.append(f"  auto fills the machine: {slots} place(s) for populations on the {what} here (on a "
                     "cluster, its own are counted when the sweep starts); a key's N trials make at least "
                     f"min({slots}, N) populations")
    total = plan.trials
    for key, size, count in groups:
        what = "packs" if size > 1 else "does not pack (1 per population)"
        if key in sizes and size > 1:
            trials = max(1, round(count * total / n))
            p = sizes[key]
            what += f": {trials} trial(s) in {-(-trials // p)} population(s) of up to {p}"
        lines.append(f"  {_short_key(key)}: P={size}, {count} trial(s) -> {what}")
    return lines


def _short_key(key: tuple) -> str:
    """The shape key's critic and extra information (what tells shapes apart in a sweep)."""
    shown = [f"{k}={v}" for k, v in key if isinstance(k, str) and (k.startswith("disc.") or k.startswith("ext")
                                                                 or k in ("data.n_points", "device", "task"))]
    return ", ".join(shown) or str(key)


# ------------------------------------------------------------------------------------ repeats


def _repeat_points(plan) -> list[dict]:
    """Every trial config of a repeated sweep, in order: each sampled config (grid point) R times.

    Repeat r of a config runs seed s + r, s being the config's seed or one drawn for it from the
    search's seed; with ``repeat_data`` also ``data.seed`` d + r."""
    s = plan.settings
    rng = np.random.default_rng(s["seed"])
    if s["search"] == "grid":
        configs = [c for i in range(int(s["num_samples"]))
                   for c in plan.space.sample(plan.space.grid_size(), seed=s["seed"] + i, labels=True)]
    else:
        configs = plan.space.sample(int(s["num_samples"]), seed=s["seed"], labels=True)
    points = []
    for config in configs:
        config = merge(config, unflatten(plan.fixed))
        flat = flatten(config)
        seed = flat.get("seed")
        if seed is None:
            seed = int(rng.integers(0, 2**31 - 1))
        data_seed = flat.get("data.seed", SCHEMA["data.seed"].default)
        for r in range(int(s["repeat"])):
            point = copy.deepcopy(config)
            point["repeat"], point["seed"] = r, int(seed) + r
            if s.get("repeat_data"):
                point = merge(point, {"data": {"seed": int(data_seed) + r}})
            points.append(point)
    return points
