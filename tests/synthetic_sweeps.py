"""Test fixture: synthetic sweep results with the platform's Parquet schema, for tests, notebooks and demos.

Both fixtures write what a sweep leaves on disk (Tune's layout: ``trial_<id>/params.json`` and
``result.json``, an ``experiment_state`` file, the sweep's ``tune_sd.json``) and make the Parquet
tables with the platform's own exporter (:func:`tune_sd.tune.results.export`), so the tables carry
whatever schema the exporter writes: a change of it reaches the analysis tests.

Each trial follows one of the four trends of Step 15.3, as per-epoch accuracies with noise (a
binomial-like part and a slow wobble) that are then averaged over ``avg_hor`` epochs and reported
every ``report_every`` epochs, as the engine does. Some trials are cut short at the rungs of an
ASHA-like scheduler (1/9 and 1/3 of the run). Hyperparameters are planted: every non-learner has
``disc.gp`` = 0 and no other trial has; the other keys lean towards the notebook's notes.

:func:`engine_sweep` instead trains a few tiny critics with the engine (no Ray) and writes their
curves, trials and real checkpoints: a small real sweep folder for tests and notebooks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tune_sd.analysis.trends import TRENDS
from tune_sd.engine.config import unflatten
from tune_sd.engine.loop import Curve
from tune_sd.tune.results import META_FILE, export

SPACE = {
    "arch.lat_size": [1, 3, 5, 10],
    "disc.hid_num": [2, 4, 6, 8],
    "disc.hid_size": [64, 128, 256, 512],
    "disc.lr": [1e-5, 1e-4, 1e-3, 1e-2],
    "disc.iters": [1, 3, 5, 10],
    "disc.gp": [0.0, 1e-6, 1e-5, 1e-4, 1e-3],
}
# where each trend leans (values drawn from these with probability LEAN, else from the whole space)
LEANS = {
    "fast-plateau": {"disc.hid_num": [2], "disc.hid_size": [64], "disc.lr": [1e-5], "disc.gp": [1e-4, 1e-3]},
    "rise-then-drop": {"arch.lat_size": [1, 3], "disc.iters": [1, 3], "disc.gp": [1e-5, 1e-4]},
    "slow-improver": {"disc.hid_num": [6, 8], "disc.hid_size": [256, 512], "disc.lr": [1e-4],
                      "disc.gp": [1e-6, 1e-5]},
    "non-learner": {"arch.lat_size": [1, 3], "disc.iters": [1, 3]},
}
LEAN = 0.7


def trend_curve(trend: str, t: np.ndarray, rng: np.random.Generator, cut: float = 1.0) -> np.ndarray:
    """The noiseless accuracy of one trial of ``trend`` at times ``t`` (fraction of the run)."""
    if trend == "fast-plateau":
        a, tau = rng.uniform(0.25, 0.45), rng.uniform(0.005, 0.04)
        return 0.5 + a * (1 - np.exp(-t / tau))
    if trend == "rise-then-drop":
        a, tau, d = rng.uniform(0.3, 0.45), rng.uniform(0.005, 0.02), rng.uniform(0.45, 0.85)
        # a trial cut at a rung already dropped (that is why ASHA stopped it)
        tp = rng.uniform(0.04, 0.1) if cut < 1 else rng.uniform(0.05, 0.3)
        width = rng.uniform(0.08, 0.15) if cut < 1 else rng.uniform(0.1, 0.4)
        s = np.clip((t - tp) / width, 0, 1)
        return 0.5 + a * (1 - np.exp(-t / tau)) * (1 - d * s * s * (3 - 2 * s))
    if trend == "slow-improver":
        a = rng.uniform(0.35, 0.45)
        tau = rng.uniform(0.5, 1.0) * cut if cut < 1 else rng.uniform(0.5, 1.2)
        if rng.random() < 0.5:
            return 0.5 + a * (1 - np.exp(-t / tau))
        return 0.5 + a * np.sqrt(t) if cut >= 1 else 0.5 + 0.6 * a * np.sqrt(t / cut)
    if trend == "non-learner":
        return 0.5 + rng.uniform(-0.01, 0.04) * t / max(cut, 1e-9) + 0.01 * np.sin(rng.uniform(2, 8) * t)
    raise ValueError(trend)


def _cut(trend: str, rng: np.random.Generator) -> float:
    u = rng.random()
    if trend == "non-learner":
        return 1 / 9 if u < 0.6 else (1 / 3 if u < 0.8 else 1.0)
    return 1 / 3 if u < 0.3 else 1.0


def synthetic_sweep(folder: str | Path, n_per_trend: int = 10, epochs: int = 9000, report_every: int = 25,
                    avg_hor: int = 500, seed: int = 0, name: str | None = None, study: str = "synthetic",
                    trends: tuple[str, ...] = TRENDS, noise: float = 1.0, repeats: int = 1,
                    split: dict[int, str] | None = None, cut: bool = True) -> pd.Series:
    """Write a sweep folder into ``folder``: its trials, ``tune_sd.json`` and the exported Parquet tables.

    ``noise`` scales both noise parts (1: per-epoch sd 0.12, wobble sd 0.015). With ``repeats`` R > 1,
    each of the ``n_per_trend`` configs of a trend runs R seeds (a ``repeat`` label and its own
    ``seed``, as ``tune-sd sweep --repeat R`` writes them), every seed following the config's trend;
    ``split`` {config number: other trend} makes the second half of that config's seeds follow the other
    trend (a seed-sensitive config; configs are numbered in the order of ``trends``). ``cut=False``: no
    trial is cut at a rung.

    Returns the true trend of every trial (indexed by trial_id).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or folder.name
    rng = np.random.default_rng(seed)
    split = split or {}
    truth, trial_ids = {}, []
    i = 0
    configs = [trend for trend in trends for _ in range(n_per_trend)]
    drawn: list[dict] = []
    for c, config_trend in enumerate(configs):
        cfg = None
        while repeats > 1 and (cfg is None or cfg in drawn):  # distinct configs: a repeat of one is more seeds
            cfg = _config(config_trend, rng)
        drawn.append(cfg)
        for r in range(repeats):
            trend = split[c] if c in split and r >= repeats // 2 else config_trend
            tid = f"syn{seed:02d}_{i:05d}"
            i += 1
            truth[tid] = trend
            frac = _cut(trend, rng) if cut else 1.0
            run = int(round(epochs * frac))
            t = np.arange(1, run + 1) / epochs
            p = np.clip(trend_curve(trend, t, rng, frac), 0.0, 1.0)
            # per-epoch accuracy: a binomial-like part and a slow AR(1) wobble
            wobble = np.zeros(run)
            e = rng.normal(0, noise * 0.015 * np.sqrt(1 - 0.99**2), run)
            for j in range(1, run):
                wobble[j] = 0.99 * wobble[j - 1] + e[j]
            acc_mean = np.clip(p + wobble + rng.normal(0, noise * 0.12, run), 0.0, 1.0)
            csum = np.concatenate([[0.0], np.cumsum(acc_mean)])
            lo = np.maximum(np.arange(run) + 1 - avg_hor, 0)
            avg = (csum[1:] - csum[lo]) / (np.arange(1, run + 1) - lo)
            rep = np.arange(report_every, run + 1, report_every)
            trial_cfg = dict(cfg) if cfg is not None else _config(trend, rng)
            trial_cfg.update({"epochs": epochs, "avg_hor": avg_hor, "report_every": report_every,
                              "seed": int(rng.integers(2**31 - 1)), "arch.hid_num": [2, 0]})
            if repeats > 1:
                trial_cfg["repeat"] = r
            reports = pd.DataFrame({
                "epoch": rep, "acc": acc_mean[rep - 1], "acc_mean": acc_mean[rep - 1], "avg_acc": avg[rep - 1],
                "loss_real": -avg[rep - 1], "loss_fake": avg[rep - 1] - 1, "loss_gp": 0.0, "grad_max": 1.0,
                "time_s": rep * 0.01, "nonfinite": 0})
            # a trial cut at a rung was stopped by the (ASHA-like) scheduler; the others ran their epochs
            write_trial(folder, tid, unflatten(trial_cfg), reports, where=SYNTHETIC_NODE,
                        stop_reason="completed" if run == epochs else "asha")
            trial_ids.append(tid)
    write_experiment(folder, name, study, epochs, trial_ids)
    return pd.Series(truth, name="trend")


# ------------------------------------------------------------------------------ long runs, known shapes

# (t, level) knots of the long-run shapes that fall after their early peak (t: share of the run)
KNOTS = {
    # t2a on 100 000 epochs: peak 0.75 by 3 000, 0.69 by 10 000, 0.64 by 50 000, back to 0.70 by 100 000
    "rise-drop-recover": ([0, 0.03, 0.1, 0.3, 0.5, 1.0], [0.75, 0.75, 0.69, 0.685, 0.64, 0.70]),
    # t2b: peak 0.76 by 4 000, down by a third of its gain by 10 000, ends 0.635
    "rise-then-drop": ([0, 0.04, 0.1, 0.3, 1.0], [0.76, 0.76, 0.67, 0.645, 0.635]),
}
LONG_SHAPES = ("plateau", "rise-then-drop", "rise-drop-recover", "slow-rise", "flat", "late-learner")


def long_shape(shape: str, t: np.ndarray) -> np.ndarray:
    """The noiseless accuracy of a long run of a known shape at ``t`` (share of the run): a ``plateau``
    (t1a: 0.75 within 3 % of the run, then stays), a ``rise-then-drop`` (t2b), a ``rise-drop-recover``
    (t2a), a ``slow-rise`` (t3c: 0.62 early, climbing to 0.75 at the end), a ``flat`` one at chance, and a
    ``late-learner`` (t4b's slow seed: 0.55 for the first 5 % of the run, then 0.70 from 9 % on)."""
    rise = 1 - np.exp(-t / 0.006)
    if shape == "plateau":
        return 0.5 + 0.25 * (1 - np.exp(-t / 0.008))
    if shape in KNOTS:
        return 0.5 + (np.interp(t, *KNOTS[shape]) - 0.5) * rise
    if shape == "slow-rise":
        return 0.5 + 0.12 * rise + 0.13 * t
    if shape == "flat":
        return 0.5 + 0.01 * np.sin(6 * t)
    if shape == "late-learner":
        s = np.clip((t - 0.05) / 0.04, 0, 1)
        return 0.5 + 0.05 * rise + 0.15 * s * s * (3 - 2 * s)
    raise ValueError(shape)


def _noisy_reports(p: np.ndarray, rng: np.random.Generator, noise: float, avg_hor: int, report_every: int
                   ) -> pd.DataFrame:
    """Per-epoch accuracies ``p`` plus noise (a binomial-like part and a slow AR(1) wobble), averaged
    over ``avg_hor`` epochs as the engine does, reported every ``report_every`` epochs."""
    from scipy.signal import lfilter

    run = len(p)
    wobble = lfilter([1.0], [1.0, -0.99], rng.normal(0, noise * 0.015 * np.sqrt(1 - 0.99**2), run))
    acc_mean = np.clip(p + wobble + rng.normal(0, noise * 0.12, run), 0.0, 1.0)
    csum = np.concatenate([[0.0], np.cumsum(acc_mean)])
    lo = np.maximum(np.arange(run) + 1 - avg_hor, 0)
    avg = (csum[1:] - csum[lo]) / (np.arange(1, run + 1) - lo)
    rep = np.arange(report_every, run + 1, report_every)
    return pd.DataFrame({"epoch": rep, "acc_mean": acc_mean[rep - 1], "avg_acc": avg[rep - 1]})


def long_curves(configs: dict[str, list[str]], epochs: int = 100_000, report_every: int = 25, avg_hor: int = 100,
                noise: float = 0.3, seed: int = 0, ran: dict[str, int] | None = None) -> pd.DataFrame:
    """Curves of long runs as a plain table, the shape of the long record: ``trial_id, config, seed,
    epoch, avg_acc, acc_mean, cfg.avg_hor``. ``configs``: {config label: the shape of each of its seeds}
    (see :func:`long_shape`); ``ran``: {config label: epochs its seeds ran} for configs cut short."""
    rng = np.random.default_rng(seed)
    parts = []
    for label, shapes in configs.items():
        run = int((ran or {}).get(label, epochs))
        for r, shape in enumerate(shapes):
            p = long_shape(shape, np.arange(1, epochs + 1) / epochs)[:run]
            rep = _noisy_reports(p, rng, noise, avg_hor, report_every)
            parts.append(rep.assign(trial_id=f"{label}_s{r}", config=label, seed=r, **{"cfg.avg_hor": avg_hor}))
    cols = ["trial_id", "config", "seed", "epoch", "avg_acc", "acc_mean", "cfg.avg_hor"]
    return pd.concat(parts, ignore_index=True)[cols]


def long_sweep(folder: str | Path, configs: dict[str, list[str]], epochs: int = 100_000, report_every: int = 25,
               avg_hor: int = 100, noise: float = 0.3, seed: int = 0, ran: dict[str, int] | None = None,
               name: str | None = None) -> Path:
    """A sweep folder of long runs of known shapes (:func:`long_curves`): each config a ``variant`` (its
    label) run with one seed per shape (a ``repeat`` label each), as ``tune-sd sweep --repeat`` writes
    them; a config in ``ran`` was cut short there (out of its --runtime)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    curves = long_curves(configs, epochs, report_every, avg_hor, noise, seed, ran)
    trial_ids = []
    for i, (tid, c) in enumerate(curves.groupby("trial_id", sort=False)):
        label, r = str(c["config"].iloc[0]), int(c["seed"].iloc[0])
        cfg = {"variant": label, "repeat": r, "epochs": epochs, "avg_hor": avg_hor, "report_every": report_every,
               "seed": 1000 * seed + i, "disc": {"gp": 1e-5}, "arch": {"lat_size": 3}}
        reports = c[["epoch", "acc_mean", "avg_acc"]].assign(acc=c["acc_mean"], loss_real=-c["avg_acc"],
                                                             loss_fake=c["avg_acc"] - 1, loss_gp=0.0, grad_max=1.0,
                                                             time_s=c["epoch"] * 0.01, nonfinite=0)
        short = int(c["epoch"].max()) < epochs
        write_trial(folder, str(tid), cfg, reports.reset_index(drop=True), where=SYNTHETIC_NODE,
                    stop_reason="runtime" if short else "completed")
        trial_ids.append(str(tid))
    write_experiment(folder, name or folder.name, "long", epochs, trial_ids)
    return folder


# where the synthetic trials "ran" (the node columns)
SYNTHETIC_NODE = {"node": "synthetic", "node_ip": "127.0.0.1", "host": "synthetic", "device": "cpu"}
LOCAL_NODE = {"node": "local", "node_ip": "127.0.0.1", "host": "local", "device": "cpu"}


def write_trial(folder: Path, tid: str, config: dict, reports: pd.DataFrame, where: dict,
                stop_reason: str) -> Path:
    """One trial folder as Tune writes it: the config in ``params.json``, one ``result.json`` line per
    report (the trainable's metrics and where it ran; the last one says how the trial ended)."""
    trial_dir = folder / f"trial_{tid}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "params.json").write_text(json.dumps(config))
    names, n = list(reports.columns), len(reports)
    lines = []
    # plain Python numbers (tolist), one row at a time: what json writes and the exporter reads back
    for i, values in enumerate(zip(*(reports[c].tolist() for c in names)), start=1):
        row = {**dict(zip(names, values)), **where, "trial_id": tid, "training_iteration": i, "done": i == n}
        if i == n:
            row["stop_reason"] = stop_reason
        lines.append(json.dumps(row))
    (trial_dir / "result.json").write_text("\n".join(lines) + "\n")
    return trial_dir


def write_experiment(folder: Path, name: str, study: str, epochs: int, trial_ids: list[str],
                     status: str = "TERMINATED") -> None:
    """The sweep's metadata and Tune's experiment state (each trial's status and folder), then the
    Parquet tables, made by the exporter from those files."""
    (folder / META_FILE).write_text(json.dumps({"name": name, "study": study, "epochs": epochs,
                                                "settings": {"scheduler": "asha"}}))
    trial_data = [[json.dumps({"trial_id": tid, "status": status, "relative_logdir": f"trial_{tid}"}),
                   json.dumps({"error_filename": None})] for tid in trial_ids]
    (folder / "experiment_state-2000-01-01_00-00-00.json").write_text(json.dumps({"trial_data": trial_data}))
    export(folder)


def _config(trend: str, rng: np.random.Generator) -> dict:
    cfg = {}
    for key, values in SPACE.items():
        lean = LEANS[trend].get(key)
        pool = lean if lean is not None and rng.random() < LEAN else values
        if key == "disc.gp":  # planted: gp = 0 exactly for the non-learners
            pool = [0.0] if trend == "non-learner" else [v for v in (lean or values) if v > 0]
        cfg[key] = pool[int(rng.integers(len(pool)))]
    return cfg


# ------------------------------------------------------------------------------ a real, tiny sweep

TINY = {"disc": {"hid_num": 2, "hid_size": 32}, "avg_hor": 10, "report_every": 5}
TINY_SPACE = [  # (disc.loss_fun, disc.gp, disc.lr, arch.lat_size) per trial; the first one learns
    ("bce", 1e-4, 1e-3, 10), ("wasserstein", 0.0, 1e-3, 3), ("wasserstein", 1e-5, 1e-3, 10),
    ("bce", 1e-5, 1e-4, 5), ("wasserstein", 0.0, 1e-2, 1), ("bce", 1e-6, 1e-3, 3),
]


def engine_sweep(folder: str | Path, n_trials: int = 3, epochs: int = 40, seed: int = 0, name: str | None = None,
                 study: str = "tiny") -> Path:
    """A sweep folder made with the engine alone (no Ray): ``n_trials`` tiny critics trained for
    ``epochs`` epochs, their curves and trials as Parquet with the platform's schema, and a real
    checkpoint per trial (``trial_<id>/checkpoint_000000/study.pt``). Takes about a second a trial."""
    from tune_sd.engine import Study
    from tune_sd.engine.config import merge

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny critics: threads only add overhead (and contend on a busy machine)
    try:
        return _engine_sweep(Study, merge, Path(folder), n_trials, epochs, seed, name, study)
    finally:
        torch.set_num_threads(threads)


def _engine_sweep(Study, merge, folder: Path, n_trials, epochs, seed, name, study) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = name or folder.name
    trial_ids = []
    for i in range(n_trials):
        loss, gp, lr, lat = TINY_SPACE[i % len(TINY_SPACE)]
        cfg = merge(TINY, {"disc": {"loss_fun": loss, "gp": gp, "lr": lr}, "arch": {"lat_size": lat}, "epochs": epochs,
                           "seed": seed * 1000 + i})
        tid = f"tiny{seed:02d}_{i:05d}"
        run, curve = Study(cfg), Curve()
        run.run(callback=curve.add)
        hist = pd.DataFrame(curve.columns)
        reports = hist[hist["epoch"] % cfg["report_every"] == 0].reset_index(drop=True)
        trial_dir = write_trial(folder, tid, cfg, reports, where=LOCAL_NODE, stop_reason="completed")
        run.save(trial_dir / "checkpoint_000000" / "study.pt")
        trial_ids.append(tid)
    write_experiment(folder, name, study, epochs, trial_ids)
    return folder
