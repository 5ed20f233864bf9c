"""Weights & Biases: one run per trial in the sweep's project, the seeds of a config one group.

The run's id is the sweep's and the trial's (``<sweep>-<trial id>``), so that a resumed sweep, or
``tune-sd export --to wandb`` of a sweep that logged live, continues the same runs. With
``WANDB_MODE=offline`` (no service needed) the runs are written under ``<sweep folder>/wandb/``
for ``wandb sync``. W&B's console capture, system statistics and code saving are off: the driver
holds one run per running trial.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from ._base import Figure, TrialRun, Writer


def run_id(sweep: str, trial_id: str) -> str:
    """A W&B run id (letters, digits, - and _; at most 64): the sweep's name and the trial's id."""
    text = re.sub(r"[^A-Za-z0-9_-]", "-", f"{sweep}-{trial_id}")
    return text[-64:]


class WandbWriter(Writer):
    service = "wandb"

    def __init__(self, where: str, sweep: str, folder: Path | None = None):
        super().__init__(where, sweep, folder)
        import wandb  # ImportError: said by the tracker

        self.wandb = wandb
        self.runs: dict = {}
        self.steps: dict[str, int] = {}
        if folder is not None and not os.environ.get("WANDB_DIR"):
            Path(folder).mkdir(parents=True, exist_ok=True)
        self.dir = os.environ.get("WANDB_DIR") or (str(folder) if folder is not None else None)

    def _settings(self):
        timeout = float(os.environ.get("WANDB_INIT_TIMEOUT", 90))
        # the environment as it is now (W&B keeps the settings of its first run in a process otherwise)
        now = {key: os.environ[var] for key, var in (("mode", "WANDB_MODE"), ("base_url", "WANDB_BASE_URL"))
               if os.environ.get(var)}
        return self.wandb.Settings(silent=True, console="off", disable_git=True, save_code=False,
                                   x_disable_stats=True, x_save_requirements=False, init_timeout=timeout, **now)

    def _init(self, **kwargs):
        return self.wandb.init(project=self.where, dir=self.dir, reinit="create_new", settings=self._settings(),
                               **kwargs)

    def start(self, run: TrialRun) -> None:
        self.runs[run.trial_id] = self._init(
            id=run_id(self.sweep, run.trial_id), name=run.name, group=run.group, job_type="trial",
            tags=[self.sweep], config=run.config, resume="allow")

    def log(self, trial_id: str, rows: list[tuple[int, dict]]) -> None:
        run = self.runs[trial_id]
        for step, metrics in rows:
            run.log(metrics, step=step)
            self.steps[trial_id] = step

    def end(self, trial_id: str, summary: dict, figures: list[Figure], failed: bool) -> None:
        run = self.runs.pop(trial_id, None)
        if run is None:
            return
        if figures:  # beside the last report (W&B's steps only go up): one image list per tag, by epoch
            from PIL import Image

            by_tag: dict[str, list] = {}
            for f in figures:
                by_tag.setdefault(f.tag, []).append(
                    self.wandb.Image(Image.open(io.BytesIO(f.png)), caption=f"epoch {f.step}"))
            run.log(by_tag, step=self.steps.get(trial_id, 0))
        run.summary.update(summary)
        run.finish(exit_code=1 if failed else 0)
        self.steps.pop(trial_id, None)

    def log_analysis(self, name: str, tables: dict, trends: dict, figures: list[Path]) -> None:
        run = self._init(id=run_id(self.sweep, f"analysis-{name}"), name=f"analysis {name}", group="analysis",
                         job_type="analysis", tags=[self.sweep, "analysis"], resume="allow")
        data = {f"tables/{key}": self.wandb.Table(dataframe=df.reset_index(drop=True)) for key, df in tables.items()}
        data.update({f"figures/{Path(p).stem}": self.wandb.Image(str(p)) for p in figures})
        run.log(data)
        run.summary.update({f"trend/{config}": trend for config, trend in trends.items()})
        run.finish()

    def close(self) -> None:
        for trial_id in list(self.runs):  # a trial the sweep left unfinished (interrupted): its run ends
            self.runs.pop(trial_id).finish(exit_code=1)
