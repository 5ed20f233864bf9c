"""``tune-sd train``: one run of a study in a folder, without Ray.

The folder holds ``config.yaml``, ``checkpoint.pt`` and ``curve.parquet`` (one row per epoch), and
``changes.yaml`` once a resumed run changed a setting. The checkpoint, the curve and the config are
written together from the same state (all written, then all renamed), and only at epoch boundaries:
Ctrl-C lets the epoch in progress finish and saves it (a second Ctrl-C stops at once and keeps the
last save), so ``--resume`` continues bit for bit and the curve ends up with every epoch once. The run
keeps only the epochs since its last save (:class:`~tune_sd.engine.loop.Curve`); a save adds them to
``curve.parquet`` after the rows up to the epoch the checkpoint before held.

``--resume DIR --set KEY=VALUE`` applies what a run can change from its next epoch on (optimizer
settings, epochs, runtime, cadences; :data:`~tune_sd.engine.config.RESUMABLE`) and refuses the rest
(shapes, data, seed) with an error naming the key. Each change is kept with the epoch from which it
holds, in the checkpoint and in ``changes.yaml``, and is written only once an epoch has used it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import yaml

from tune_sd.errors import StudyError

from .atomic import atomic_write, atomic_write_all, refuse_symlink
from .checkpoint import interrupts_held, load_checkpoint
from .config import Config, format_changes, parse_override
from .loop import Curve, Interrupted, load_changes
from .runs import make_run, run_from_state
from .study import Study

# what a run writes into its folder
RUN_FILES = ("config.yaml", "checkpoint.pt", "curve.parquet", "changes.yaml")
SAVE_EVERY_S = 30.0  # wall-clock seconds between saves of a long run (and at every checkpoint_every reports)


def curve_writer(path: Path, rows: Curve, columns: list[str], after: int):
    """What fills ``curve.parquet``: its rows up to epoch ``after`` (the epoch the last checkpoint
    holds), then ``rows`` (the epochs since)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pa.table({c: rows[c] if len(rows) else [] for c in columns})
    if after > 0 and path.exists():
        held = pq.read_table(path)
        held = held.filter(pc.less_equal(held["epoch"], after))
        table = pa.concat_tables([held, table.select(held.column_names).cast(held.schema)])
    return lambda tmp: pq.write_table(table, tmp)


def config_writers(run) -> dict:
    """{name: what fills it}: ``config.yaml`` (the values the run uses now; changed ones are listed on
    top) and, once a resumed run changed a setting, ``changes.yaml``: ``{epoch, key, from, to}`` per change."""
    text = run.cfg.to_yaml()
    writers = {}
    if run.changes:
        lines = "".join(f"#   {line}\n" for line in format_changes(run.changes))
        text = f"# changed when the run was resumed (see changes.yaml):\n{lines}" + text
        dump = yaml.safe_dump(run.changes, sort_keys=False)
        writers["changes.yaml"] = lambda tmp: Path(tmp).write_text(dump, encoding="utf-8")
    writers["config.yaml"] = lambda tmp: Path(tmp).write_text(text, encoding="utf-8")
    return writers


class TrainRun:
    def __init__(self, study: Study, out: Path, saved_epoch: int | None = None):
        self.study, self.out = study, out
        self.first = study.epoch
        self.saved_epoch = saved_epoch  # the epoch checkpoint.pt holds (None: none written yet)
        self.new_changes: list[dict] = []  # the changes this resume asked for, shown when it starts
        self.replacing: list[str] = []  # a run's files in the folder this run replaces (--force)
        self.rows = Curve()  # the epochs since the last save: the next save adds them to curve.parquet

    @classmethod
    def start(cls, cfg: Config, out: Path, device="cpu", force: bool = False) -> "TrainRun":
        """A new run in ``out``. A folder that holds a run's files already is left alone unless ``force``
        (then they are replaced); a run file that is a symbolic link is never written through."""
        out = Path(out)
        for name in RUN_FILES:
            refuse_symlink(out / name)
        if (out / "checkpoint.pt").exists() and not force:
            raise StudyError(f"{out}: already holds a run (checkpoint.pt); continue it with "
                             f"--resume {out} or choose another --out")
        held = [name for name in RUN_FILES if (out / name).exists()]
        if held and not force:
            raise StudyError(f"{out}: already holds {', '.join(held)}; choose another --out, or give --force to "
                             "replace them")
        study = make_run(cfg, device=device)
        if not held:  # a folder that held a run (--force) keeps its files until the first save replaces them all
            text = cfg.to_yaml()
            atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        run = cls(study, out)
        run.replacing = held
        return run

    @classmethod
    def resume(cls, out, overrides=(), device="cpu") -> "TrainRun":
        """The run in ``out`` with ``--set`` overrides applied or refused (before anything is written)."""
        out = Path(out)
        state = load_checkpoint(out / "checkpoint.pt")
        study = run_from_state(state, device, **dict(map(parse_override, overrides)))
        run = cls(study, out, saved_epoch=study.epoch)
        run.new_changes = study.changes[len(load_changes(state)):]
        return run

    def save(self) -> None:
        with interrupts_held():  # the files always hold the same epoch: written together, renamed together
            state = self.study.state_dict()
            curve = curve_writer(self.out / "curve.parquet", self.rows, ["epoch", *self.study.metrics],
                                 after=self.saved_epoch or 0)
            writes = {self.out / "checkpoint.pt": lambda tmp: torch.save(state, tmp),
                      self.out / "curve.parquet": curve,
                      **{self.out / name: write for name, write in config_writers(self.study).items()}}
            atomic_write_all(writes)  # a full disk leaves the files of the last save as they were
            for name in self.replacing:  # the replaced run's files this run does not write (its changes.yaml)
                if self.out / name not in writes:
                    (self.out / name).unlink(missing_ok=True)
            self.replacing = []
            self.saved_epoch = self.study.epoch  # before a held Ctrl-C is raised
            self.rows.clear()

    def _save_new_epochs(self) -> None:
        # nothing new since the last save (or since the start): then a value changed on resume has
        # not been used yet, and stays unrecorded
        if self.study.epoch > self.first and self.study.epoch != self.saved_epoch:
            self.save()

    def run(self, progress: bool = True) -> int:
        study, cfg = self.study, self.study.cfg
        for line in format_changes(self.new_changes):
            print(f"resume: {line}", file=sys.stderr)
        verb = f"resuming at epoch {study.epoch}" if study.epoch else "training"
        print(f"{self.out}: {verb} to epoch {cfg.epochs} on {study.device}, {torch.get_num_threads()} "
              f"torch thread(s)", file=sys.stderr, flush=True)
        save_epochs = cfg.report_every * cfg.checkpoint_every if cfg.checkpoint_every else 0
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.epochs, initial=study.epoch, desc="epochs", unit="ep", dynamic_ncols=True,
                       mininterval=0.5, file=sys.stderr)
        last_save = time.monotonic()

        def after_epoch(metrics: dict) -> None:
            nonlocal last_save
            self.rows.add(metrics)
            if bar is not None:
                bar.update(1)
                if study.epoch % 10 == 0 or study.done:
                    bar.set_postfix(_headline(metrics), refresh=False)
            if (save_epochs and study.epoch % save_epochs == 0) or time.monotonic() - last_save > SAVE_EVERY_S:
                self.save()
                last_save = time.monotonic()

        try:
            metrics = study.run(callback=after_epoch)
        except Interrupted:  # at an epoch boundary: the state is whole epochs
            self._close(bar)
            self._save_new_epochs()
            then = (f"continue with: tune-sd train --resume {self.out}" if self.saved_epoch is not None
                    else "no epoch was saved; start it again")
            print(f"interrupted at epoch {study.epoch}; {then}", file=sys.stderr)
            return 130
        except KeyboardInterrupt:  # a second Ctrl-C, mid-epoch: the memory is not a whole epoch
            self._close(bar)
            kept = (f"it holds epoch {self.saved_epoch}; continue with: tune-sd train --resume {self.out}"
                    if self.saved_epoch is not None else "no epoch was saved yet")
            print(f"stopped at once in epoch {study.epoch + 1}; nothing of it was saved in {self.out}: {kept}",
                  file=sys.stderr)
            return 130
        except StudyError:
            self._close(bar)
            self._save_new_epochs()  # every whole epoch up to the failing one stays on disk
            raise
        self._close(bar)
        if metrics is None:
            print(f"{self.out}: already at epoch {study.epoch} of {cfg.epochs}; raise epochs with "
                  f"--set epochs=N to go on" + (" (nothing changed)" if self.new_changes else ""))
            return 0
        self.save()
        shown = ", ".join(f"{k} {v}" for k, v in _headline(metrics).items())
        print(f"epoch {study.epoch}: {shown} ({study.elapsed:.1f} s) -> {self.out}")
        return 0

    @staticmethod
    def _close(bar) -> None:
        if bar is not None:
            bar.close()


def _headline(metrics: dict) -> dict:
    """The metrics a progress line shows: accuracy for the SD study, errors and recovery for Step 7."""
    if "avg_acc" in metrics:
        return {"acc": f"{metrics['acc']:.2f}", "avg_acc": f"{metrics['avg_acc']:.3f}"}
    return {"mse": f"{metrics['mse']:.2e}", "val_mse": f"{metrics['val_mse']:.2e}",
            "min_corr": f"{metrics['min_corr']:.3f}"}
