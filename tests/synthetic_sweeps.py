"""Test fixture: synthetic sweep results with the platform's Parquet schema, for tests, notebooks and demos.

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
import pyarrow as pa
import pyarrow.parquet as pq

from tune_sd.analysis.trends import TRENDS

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
                    trends: tuple[str, ...] = TRENDS, noise: float = 1.0) -> pd.Series:
    """Write ``curves.parquet``, ``trials.parquet`` and ``tune_sd.json`` into ``folder``.

    ``noise`` scales both noise parts (1: per-epoch sd 0.12, wobble sd 0.015).

    Returns the true trend of every trial (indexed by trial_id).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or folder.name
    rng = np.random.default_rng(seed)
    curve_parts, trial_rows, truth = [], [], {}
    i = 0
    for trend in trends:
        for _ in range(n_per_trend):
            tid = f"syn{seed:02d}_{i:05d}"
            i += 1
            truth[tid] = trend
            cut = _cut(trend, rng)
            run = int(round(epochs * cut))
            t = np.arange(1, run + 1) / epochs
            p = np.clip(trend_curve(trend, t, rng, cut), 0.0, 1.0)
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
            cfg = _config(trend, rng)
            cfg_cols = {f"cfg.{k}": v for k, v in cfg.items()}
            cfg_cols.update({"cfg.epochs": epochs, "cfg.avg_hor": avg_hor, "cfg.report_every": report_every,
                             "cfg.seed": int(rng.integers(2**31 - 1)), "cfg.arch.hid_num": "[2, 0]"})
            curve_parts.append(pd.DataFrame({
                "trial_id": tid, "experiment": name, "study": study, "iteration": np.arange(1, len(rep) + 1),
                "epoch": rep, "acc": acc_mean[rep - 1], "acc_mean": acc_mean[rep - 1], "avg_acc": avg[rep - 1],
                "loss_real": -avg[rep - 1], "loss_fake": avg[rep - 1] - 1, "loss_gp": 0.0, "grad_max": 1.0,
                "time_s": rep * 0.01, "node": "synthetic", "nonfinite": 0, "node_ip": "127.0.0.1",
                "host": "synthetic", **cfg_cols}))
            stopped = run < epochs
            trial_rows.append({
                "trial_id": tid, "status": "TERMINATED", "epochs": int(rep[-1]),
                "final_avg_acc": float(avg[rep[-1] - 1]),
                "best_avg_acc": float(avg[rep - 1].max()), "stopped_early": stopped, "checkpoint": None,
                "node": "synthetic", "error": None, "experiment": name, "study": study,
                "path": str(folder / f"trial_{tid}"), **cfg_cols})
    curves = pd.concat(curve_parts, ignore_index=True)
    trials = pd.DataFrame(trial_rows)
    pq.write_table(pa.Table.from_pandas(curves, preserve_index=False), folder / "curves.parquet")
    pq.write_table(pa.Table.from_pandas(trials, preserve_index=False), folder / "trials.parquet")
    (folder / "tune_sd.json").write_text(json.dumps({"name": name, "study": study, "epochs": epochs}))
    return pd.Series(truth, name="trend")


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
    from tune_sd.engine.config import flatten, merge

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny critics: threads only add overhead (and contend on a busy machine)
    try:
        return _engine_sweep(Study, flatten, merge, Path(folder), n_trials, epochs, seed, name, study)
    finally:
        torch.set_num_threads(threads)


def _engine_sweep(Study, flatten, merge, folder: Path, n_trials, epochs, seed, name, study) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = name or folder.name
    curve_parts, trial_rows = [], []
    for i in range(n_trials):
        loss, gp, lr, lat = TINY_SPACE[i % len(TINY_SPACE)]
        cfg = merge(TINY, {"disc": {"loss_fun": loss, "gp": gp, "lr": lr}, "arch": {"lat_size": lat}, "epochs": epochs,
                           "seed": seed * 1000 + i})
        tid = f"tiny{seed:02d}_{i:05d}"
        run = Study(cfg)
        run.run()
        trial_dir = folder / f"trial_{tid}"
        ckpt = trial_dir / "checkpoint_000000"
        run.save(ckpt / "study.pt")
        hist = pd.DataFrame(run.curve())
        every = cfg["report_every"]
        rep = hist[hist["epoch"] % every == 0].reset_index(drop=True)
        cfg_cols = {f"cfg.{k}": (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v)
                    for k, v in flatten(cfg).items()}
        curve_parts.append(rep.assign(trial_id=tid, experiment=name, study=study, iteration=np.arange(1, len(rep) + 1),
                                      node="local", node_ip="127.0.0.1", host="local", **cfg_cols))
        trial_rows.append({
            "trial_id": tid, "status": "TERMINATED", "epochs": int(rep["epoch"].iloc[-1]),
            "final_avg_acc": float(rep["avg_acc"].iloc[-1]), "best_avg_acc": float(rep["avg_acc"].max()),
            "stopped_early": False, "checkpoint": str(ckpt), "node": "local", "error": None, "experiment": name,
            "study": study, "path": str(trial_dir), **cfg_cols})
    curves = pd.concat(curve_parts, ignore_index=True)
    first = ["trial_id", "experiment", "study", "iteration", "epoch", "acc", "acc_mean", "avg_acc", "loss_real",
             "loss_fake", "loss_gp", "grad_max", "time_s", "node", "nonfinite", "node_ip", "host"]
    curves = curves[first + [c for c in curves.columns if c not in first]]
    pq.write_table(pa.Table.from_pandas(curves, preserve_index=False), folder / "curves.parquet")
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(trial_rows), preserve_index=False), folder / "trials.parquet")
    (folder / "tune_sd.json").write_text(json.dumps({"name": name, "study": study, "epochs": epochs}))
    return folder
