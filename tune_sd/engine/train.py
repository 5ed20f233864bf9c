"""``tune-sd train``: one run of a study in a folder, without Ray.

The folder holds ``config.yaml``, ``checkpoint.pt`` and ``curve.parquet`` (one row per epoch). The
checkpoint and the curve are written together from the same history (checkpoint first), so that
whatever the moment a run is stopped, ``--resume`` continues exactly where the checkpoint is and the
curve ends up with every epoch once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

from tune_sd.errors import StudyError

from .atomic import atomic_write
from .checkpoint import load_checkpoint
from .config import Config, merge, parse_override, unflatten
from .runs import make_run
from .study import Study

SAVE_EVERY_S = 30.0  # wall-clock seconds between saves of a long run (and at every checkpoint_every reports)


def write_curve(study: Study, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(study.curve())
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


class TrainRun:
    def __init__(self, study: Study, out: Path):
        self.study, self.out = study, out

    @classmethod
    def start(cls, cfg: Config, out: Path, device="cpu") -> "TrainRun":
        out = Path(out)
        if (out / "checkpoint.pt").exists():
            raise StudyError(f"{out}: already holds a run (checkpoint.pt); continue it with "
                             f"--resume {out} or choose another --out")
        study = make_run(cfg, device=device)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
        return cls(study, out)

    @classmethod
    def resume(cls, out, overrides=(), device="cpu") -> "TrainRun":
        out = Path(out)
        state = load_checkpoint(out / "checkpoint.pt")
        tree = state["config"]
        for key, value in map(parse_override, overrides):
            tree = merge(tree, unflatten({key: value}))
        cfg = Config.from_dict(tree)
        study = make_run(cfg, device=device)
        study.load_state_dict(state)
        (out / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
        return cls(study, out)

    def save(self) -> None:
        self.study.save(self.out / "checkpoint.pt")
        write_curve(self.study, self.out / "curve.parquet")

    def run(self, progress: bool = True) -> int:
        study, cfg = self.study, self.study.cfg
        save_epochs = cfg.report_every * cfg.checkpoint_every
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.epochs, initial=study.epoch, desc="epochs", unit="ep", dynamic_ncols=True,
                       mininterval=0.5, file=sys.stderr)
        last_save = time.monotonic()
        metrics = None
        try:
            while not study.done:
                metrics = study.step()
                if bar is not None:
                    bar.update(1)
                    if study.epoch % 10 == 0 or study.done:
                        bar.set_postfix(_headline(metrics), refresh=False)
                if study.epoch % save_epochs == 0 or time.monotonic() - last_save > SAVE_EVERY_S:
                    self.save()
                    last_save = time.monotonic()
        except KeyboardInterrupt:
            self.save()
            if bar is not None:
                bar.close()
            print(f"interrupted at epoch {study.epoch}; continue with: tune-sd train --resume {self.out}",
                  file=sys.stderr)
            return 130
        except StudyError:
            self.save()  # everything up to the failing epoch stays on disk
            raise
        finally:
            if bar is not None:
                bar.close()
        self.save()
        if metrics is None:
            print(f"{self.out}: already at epoch {study.epoch} of {cfg.epochs}; raise epochs with "
                  f"--set epochs=N to go on")
        else:
            shown = ", ".join(f"{k} {v}" for k, v in _headline(metrics).items())
            print(f"epoch {study.epoch}: {shown} ({study.elapsed:.1f} s) -> {self.out}")
        return 0


def _headline(metrics: dict) -> dict:
    """The metrics a progress line shows: accuracy for the SD study, errors and recovery for Step 7."""
    if "avg_acc" in metrics:
        return {"acc": f"{metrics['acc']:.2f}", "avg_acc": f"{metrics['avg_acc']:.3f}"}
    return {"mse": f"{metrics['mse']:.2e}", "val_mse": f"{metrics['val_mse']:.2e}",
            "min_corr": f"{metrics['min_corr']:.3f}"}
