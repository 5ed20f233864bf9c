"""Where a sweep logs: ``--log wandb[=PROJECT]`` and ``--log mlflow[=URI]`` (also ``log:`` in a space's
``tune:`` block), resolved against the sweep's defaults: the W&B project the space's header names
(else the study's name) and a local MLflow store, ``mlruns/`` beside the sweep's results."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from tune_sd.errors import ConfigError

SERVICES = ("wandb", "mlflow")
# the header of a space names its W&B project: "W&B project 153-sd-study-F10_v1"
_PROJECT = re.compile(r"W&B project:?\s+([A-Za-z0-9][\w.-]*)")
MLFLOW_DB = "mlflow.db"
MLFLOW_FOLDER = "mlruns"


@dataclass(frozen=True)
class Target:
    """One service to log to: ``service`` (wandb, mlflow) and ``where`` (a W&B project, an MLflow
    tracking URI; "" until resolved: the sweep's default)."""

    service: str
    where: str = ""

    def __str__(self) -> str:
        return f"{self.service}={self.where}" if self.where else self.service

    def as_dict(self) -> dict:
        return asdict(self)


def parse_log(values, where: str = "--log") -> list[Target]:
    """``wandb``, ``wandb=PROJECT``, ``mlflow``, ``mlflow=URI`` (a list, or one text) -> targets, one
    per service (a later one wins)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{where}: expected wandb[=PROJECT] or mlflow[=URI] (or a list of them)")
    out: dict[str, Target] = {}
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {value!r}: expected wandb[=PROJECT] or mlflow[=URI]")
        service, _, rest = value.strip().partition("=")
        service = service.strip().lower()
        if service not in SERVICES:
            raise ConfigError(f"{where}: {value!r}: unknown service {service!r} (allowed: {', '.join(SERVICES)})")
        out[service] = Target(service, rest.strip())
    return list(out.values())


def header_project(text: str) -> str | None:
    """The W&B project a space's header comment names (``W&B project: none`` names none)."""
    found = _PROJECT.search(text or "")
    if not found or found.group(1).lower() in ("none", "no"):
        return None
    return found.group(1)


def space_project(space_path, study: str) -> str:
    """The default W&B project of a sweep: the one its space's header names, else the study's name."""
    text = ""
    if space_path:
        try:
            text = "\n".join(line for line in Path(space_path).read_text(errors="replace").splitlines()[:12]
                             if line.lstrip().startswith("#") or line.startswith("description"))
        except OSError:
            text = ""
    return header_project(text) or study


def default_mlflow_uri(storage) -> str:
    """The default tracking store: an SQLite file in ``mlruns/`` beside the sweep's results (a sweep on
    a storage URI: ``./mlruns``; the MLflow database is a local file)."""
    root = Path(MLFLOW_FOLDER) if "://" in str(storage) else Path(storage) / MLFLOW_FOLDER
    return f"sqlite:///{(root / MLFLOW_DB).resolve()}"


def mlflow_store(where: str) -> str:
    """An MLflow tracking URI as given (``sqlite:///…``, ``http://…``, ``file://…``, ``databricks``), a
    folder as an SQLite store in it (MLflow's own folder store is in maintenance), a ``*.db`` file as
    that SQLite file."""
    if "://" in where or where in ("databricks",) or where.startswith("databricks://"):
        return where
    path = Path(where).expanduser()
    return f"sqlite:///{(path if path.suffix == '.db' else path / MLFLOW_DB).resolve()}"


def resolve(targets: list[Target], project: str, mlflow_uri: str) -> list[Target]:
    """Targets with their defaults filled in."""
    return [Target(t.service, t.where or project) if t.service == "wandb"
            else Target(t.service, mlflow_store(t.where) if t.where else mlflow_uri) for t in targets]


def from_dicts(values) -> list[Target]:
    return [Target(**v) for v in values or []]
