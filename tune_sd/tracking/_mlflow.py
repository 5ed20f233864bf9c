"""MLflow: one experiment per sweep; per config a parent run, its seeds' trials its child runs.

Each trial's run holds its engine config as parameters (dotted keys), every report row as metrics at
step = epoch, its ending as tags (``stop_reason``, ``stop_epoch``, the evidence) and its figures as
artifacts (``figures/<tag>/epoch_<epoch>.png``). Runs carry ``tune_sd.trial_id`` and ``tune_sd.group``
tags, so that a resumed sweep or ``tune-sd export --to mlflow`` finds and continues the same runs.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

from ._base import Figure, TrialRun, Writer

PARENT = "mlflow.parentRunId"
RUN_NAME = "mlflow.runName"
TRIAL_TAG, GROUP_TAG, KIND_TAG = "tune_sd.trial_id", "tune_sd.group", "tune_sd.kind"
MAX_PARAMS, MAX_METRICS = 100, 1000  # MLflow's limits of one log_batch
MAX_PARAM = 6000                     # and of a parameter's value


class MlflowWriter(Writer):
    service = "mlflow"

    def __init__(self, where: str, sweep: str, folder: Path | None = None):
        super().__init__(where, sweep, folder)
        # a service that cannot be reached is said after a few seconds, not after MLflow's minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        if where.startswith("file:"):  # asked for by name: MLflow's folder store, in maintenance
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow import MlflowClient  # ImportError: said by the tracker
        from mlflow.entities import Metric, Param, RunTag

        self.Metric, self.Param, self.RunTag = Metric, Param, RunTag
        if where.startswith("sqlite:///"):
            Path(where[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=where)
        self.experiment = self._experiment()
        self.runs: dict[str, str] = {}      # trial id -> run id
        self.parents: dict[str, str] = {}   # group -> run id
        # trial id -> the last step its run holds already (a sweep resumed or exported again): the rows up to
        # it are not logged twice (a resumed trial reports again from its checkpoint; export --to sends all)
        self.logged: dict[str, int] = {}

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.sweep)
        if found is not None:
            return found.experiment_id
        location = None
        if self.where.startswith("sqlite:///"):  # artifacts beside the database, not in the working folder
            location = (Path(self.where[len("sqlite:///"):]).parent / "artifacts" / self.sweep).resolve().as_uri()
        return self.client.create_experiment(self.sweep, artifact_location=location)

    def _find(self, tags: dict) -> str | None:
        query = " and ".join(f"tags.`{k}` = '{_quoted(v)}'" for k, v in tags.items())
        found = self.client.search_runs([self.experiment], filter_string=query, max_results=1)
        return found[0].info.run_id if found else None

    def _parent(self, group: str) -> str:
        if group not in self.parents:
            tags = {KIND_TAG: "config", GROUP_TAG: group}
            self.parents[group] = self._find(tags) or self.client.create_run(
                self.experiment, run_name=group, tags=tags).info.run_id
        return self.parents[group]

    def start(self, run: TrialRun) -> None:
        parent = self._parent(run.group)
        found = self._find({KIND_TAG: "trial", TRIAL_TAG: run.trial_id})
        if found is not None:  # a resumed sweep's trial, or a sweep logged again: its run goes on
            self.runs[run.trial_id] = found
            self.logged[run.trial_id] = self._last_step(found)
            self.client.update_run(found, status="RUNNING")
            return
        tags = {KIND_TAG: "trial", TRIAL_TAG: run.trial_id, GROUP_TAG: run.group, PARENT: parent,
                "tune_sd.sweep": self.sweep, "tune_sd.study": run.study}
        run_id = self.client.create_run(self.experiment, run_name=run.name, tags=tags).info.run_id
        self.runs[run.trial_id] = run_id
        params = [self.Param(k, _text(v)[:MAX_PARAM]) for k, v in run.params.items()]
        for i in range(0, len(params), MAX_PARAMS):
            self.client.log_batch(run_id, params=params[i:i + MAX_PARAMS])

    def _last_step(self, run_id: str) -> int:
        names = list(self.client.get_run(run_id).data.metrics)
        if not names:
            return -1
        return max((m.step for m in self.client.get_metric_history(run_id, names[0])), default=-1)

    def log(self, trial_id: str, rows: list[tuple[int, dict]]) -> None:
        held = self.logged.get(trial_id, -1)
        rows = [(step, values) for step, values in rows if step > held]
        now = int(time.time() * 1000)
        metrics = [self.Metric(k, v, now, step) for step, values in rows for k, v in values.items()]
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(self.runs[trial_id], metrics=metrics[i:i + MAX_METRICS])

    def end(self, trial_id: str, summary: dict, figures: list[Figure], failed: bool) -> None:
        run_id = self.runs.pop(trial_id, None)
        if run_id is None:
            return
        self.client.log_batch(run_id, tags=[self.RunTag(k, _text(v)) for k, v in summary.items()])
        if figures:
            with tempfile.TemporaryDirectory() as tmp:
                for f in figures:
                    folder = Path(tmp) / f.tag.replace("/", "_")
                    folder.mkdir(exist_ok=True)
                    (folder / f"epoch_{f.step:07d}.png").write_bytes(f.png)
                for folder in sorted(Path(tmp).iterdir()):
                    self.client.log_artifacts(run_id, str(folder), artifact_path=f"figures/{folder.name}")
        self.client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")

    def log_analysis(self, name: str, tables: dict, trends: dict, figures: list[Path]) -> None:
        """A run ``analysis`` in the sweep's experiment: tables/ (Parquet and MLflow's JSON tables, the
        trend of each config among them), trends.json and figures/."""
        tags = {KIND_TAG: "analysis", "tune_sd.sweep": self.sweep}
        run_id = self._find(tags) or self.client.create_run(self.experiment, run_name=f"analysis {name}",
                                                            tags=tags).info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            for key, df in tables.items():
                path = Path(tmp) / f"{key}.parquet"
                df.reset_index(drop=True).to_parquet(path, index=False)
                self.client.log_artifact(run_id, str(path), artifact_path="tables")
                self.client.log_table(run_id, df.reset_index(drop=True), artifact_file=f"tables/{key}.json")
            (Path(tmp) / "trends.json").write_text(json.dumps(trends, indent=1))
            self.client.log_artifact(run_id, str(Path(tmp) / "trends.json"))
        for p in figures:
            self.client.log_artifact(run_id, str(p), artifact_path="figures")
        if trends:  # a config's name is no tag key (MLflow refuses "="): a table of its own
            import pandas as pd

            self.client.log_table(run_id, pd.DataFrame({"config": list(trends), "trend": list(trends.values())}),
                                  artifact_file="tables/trends.json")
        self.client.set_terminated(run_id)

    def close(self) -> None:
        for run_id in self.runs.values():  # trials the sweep left unfinished (interrupted)
            self.client.set_terminated(run_id, status="KILLED")
        for run_id in self.parents.values():
            self.client.set_terminated(run_id)


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _quoted(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")
