"""Small sweeps for the Tune tests: tiny critics on the default data, few epochs."""

from pathlib import Path

import pandas as pd
import yaml

BASE = {"epochs": 240, "report_every": 20, "checkpoint_every": 2, "figure_every": 5, "avg_hor": 20,
        "arch": {"lat_size": 5}, "disc": {"hid_num": 2, "hid_size": 32, "iters": 5, "gp": 1e-5}}


def write_space(folder: Path, name: str, parameters: dict, base: dict | None = None, tune: dict | None = None,
                method: str = "grid") -> Path:
    tree = {"description": f"test space {name}", "method": method, "parameters": parameters,
            "base": {**BASE, **(base or {})}, "tune": tune or {}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def read_tables(exp_dir: Path):
    return pd.read_parquet(exp_dir / "curves.parquet"), pd.read_parquet(exp_dir / "trials.parquet")


def assert_complete_curves(curves: pd.DataFrame, report_every: int = 20):
    """Every trial reports iterations 1..n exactly once, each `report_every` epochs apart (the last
    one at the trial's end, which may come sooner)."""
    assert not curves.duplicated(["trial_id", "iteration"]).any()
    for _, c in curves.groupby("trial_id"):
        c = c.sort_values("iteration")
        assert list(c.iteration) == list(range(1, len(c) + 1))
        end = c.epoch.iloc[-1]
        assert end > report_every * (len(c) - 1)
        assert list(c.epoch) == [min(report_every * i, end) for i in range(1, len(c) + 1)]
