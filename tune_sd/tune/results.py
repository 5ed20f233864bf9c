"""Results of a sweep as Parquet tables, read from Tune's experiment folder without starting Ray.

``curves.parquet``: one row per trial per report; ``trials.parquet``: one row per trial. A trial that
was restored or retried reports some iterations twice in its ``result.json``; the last report of an
iteration wins, so every iteration appears once.
"""

from __future__ import annotations

import glob
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tune_sd.engine.config import flatten
from tune_sd.outcomes import ENDED_EARLY, STOP_REASON, STOP_REASONS, STOPPED
from tune_sd.engine.limits import short
from tune_sd.errors import StudyError
from tune_sd.spaces.blocks import choice_value
from tune_sd import store
from tune_sd.store import CURVES_FILE, LABELS, META_FILE, TRIALS_FILE, is_uri, read_meta, relative_to_sweep

CURVE_COLUMNS = ["trial_id", "experiment", "study", "iteration", "epoch", "acc", "acc_mean", "avg_acc", "loss_real",
                 "loss_fake", "loss_gp", "grad_max", "time_s", "node"]
TRIAL_COLUMNS = ["trial_id", "status", "epochs", "final_avg_acc", "best_avg_acc", "stopped_early", "checkpoint", "node"]
# acc_report: the mean accuracy over a report's epochs, what the non-learner rule tests (a replay reads it)
EXTRA_METRICS = ["acc_report", "nonfinite", "node_ip", "host", "device"]
# a regularisation run's (Step 7) metrics: columns of its own, present in the tables of such sweeps
REGULARIZE_METRICS = ["loss", "mse", "val_mse", "reg", "critic_score", "min_corr", "mean_corr", "critic_acc"]
# written by the non-learner stopper of older versions (local storage only): one line per trial it
# stopped; read for sweeps whose results do not record stop_reason yet
STOPS_FILE = "stops.jsonl"
# why a trial ended (the column stop_reason; the key of the trial's last result that records it, see
# stopping/records.py): the words are tune_sd.outcomes'; ENDED_EARLY's reasons come with a stop_epoch
# the evidence of a stop decided on a config's seeds (records.py): copied from the last result
STOP_EVIDENCE = ("stop_test", "stop_seeds", "stop_trials", "stop_epochs", "stop_p", "stop_against")


@dataclass
class TrialRecord:
    trial_id: str
    status: str
    path: Path
    config: dict
    error: str | None


def _experiment_states(exp_dir: Path) -> dict[str, dict]:
    """trial_id -> {'status', 'relative_logdir', 'error_filename'} from Tune's newest experiment state."""
    # the newest by the start time in the name (a restored run adds a file; syncing touches them all)
    files = sorted(glob.glob(str(exp_dir / "experiment_state-*.json")))
    if not files:
        return {}
    try:
        state = json.loads(Path(files[-1]).read_text())
        out = {}
        for trial_json, meta_json in state["trial_data"]:
            t = _json_value(trial_json)
            m = _json_value(meta_json)
            out[str(_json_value(t["trial_id"]))] = {
                "status": str(_json_value(t["status"])),
                "relative_logdir": str(_json_value(t["relative_logdir"])),
                "error_filename": _json_value(m.get("error_filename")),
            }
        return out
    except (OSError, KeyError, TypeError, ValueError):
        return {}  # an unknown state layout: statuses are then read from the results alone


def _json_value(v):
    """Tune's state file nests JSON in JSON strings in some versions and not in others."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def find_trials(exp_dir: Path) -> list[TrialRecord]:
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise StudyError(f"{exp_dir}: no such sweep folder")
    states = _experiment_states(exp_dir)
    by_dir = {s["relative_logdir"]: (tid, s) for tid, s in states.items()}
    trials = []
    for params in sorted(exp_dir.glob("*/params.json")):
        trial_dir = params.parent
        try:
            config = json.loads(params.read_text())
        except (OSError, json.JSONDecodeError):
            config = {}
        tid, state = by_dir.get(trial_dir.name, (None, None))
        if tid is None:
            tid = _trial_id_from_results(trial_dir) or trial_dir.name
        error = None
        err_file = trial_dir / "error.txt"
        if err_file.exists():
            error = err_file.read_text(errors="replace").strip().splitlines()[-1][:500] if err_file.stat().st_size else None
        trials.append(TrialRecord(tid, state["status"] if state else "UNKNOWN", trial_dir, config, error))
    return trials


def _trial_id_from_results(trial_dir: Path) -> str | None:
    for row in _read_results(trial_dir):
        if "trial_id" in row:
            return row["trial_id"]
    return None


def _read_results(trial_dir: Path) -> list[dict]:
    f = trial_dir / "result.json"
    if not f.exists():
        return []
    rows = []
    for n, line in enumerate(f.read_text(errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed process
        if not isinstance(row, dict):
            raise StudyError(f"{f}, line {n}: not a result (a JSON object)")
        for key in COUNTS:
            value = row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value != int(value)):
                raise StudyError(f"{f}, line {n}: {key} {short(value)} is not a whole number")
        rows.append(row)
    return rows


COUNTS = ("training_iteration", "epoch")  # the counts of a result that the tables read as integers


def read_reports(trial_dir) -> list[dict]:
    """A trial's results as Tune logged them (``result.json``): one per training iteration (a restored
    trial's repeated iterations once, the last), in order; a line cut short by a killed process is
    skipped. The one reader of ``result.json``: the tables, the replays and the benchmarks use it."""
    return _unique_iterations(_read_results(Path(trial_dir)))


def _unique_iterations(rows: list[dict]) -> list[dict]:
    last: dict[int, dict] = {}
    for row in rows:
        if "training_iteration" in row:
            last[int(row["training_iteration"])] = row
    return [last[i] for i in sorted(last)]


def _cfg_columns(config: dict) -> dict:
    out = {}
    for key, value in flatten({k: v for k, v in config.items() if k not in LABELS}).items():
        value = choice_value(key, value)  # a list choice as the list, whichever searcher ran
        # pairs such as hid_num [2, 4] become text, so that a column has one type in every tool
        out[f"cfg.{key}"] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else value
    return out


def _read_stops(exp_dir: Path) -> dict[str, dict]:
    f = Path(exp_dir) / STOPS_FILE
    out = {}
    if f.exists():
        for line in f.read_text().splitlines():
            try:
                row = json.loads(line)
                out[row["trial_id"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return out


def _latest_checkpoint(trial_dir: Path, exp_dir: Path) -> str | None:
    """The trial's newest checkpoint folder, relative to the sweep folder (``trial_<id>/checkpoint_<n>``)."""
    cks = sorted(trial_dir.glob("checkpoint_*"), key=lambda p: p.name)
    return relative_to_sweep(exp_dir, cks[-1]) if cks else None


def collect(exp_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, trials) data frames of a sweep folder (a local path or a storage URI)."""
    if is_uri(exp_dir):
        import tempfile

        uri = str(exp_dir).rstrip("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = fetch(uri, Path(tmp))
            return collect(local)  # its paths are relative to the sweep folder, wherever it lies
    exp_dir = Path(exp_dir)
    meta = read_meta(exp_dir)
    experiment, study = meta.get("name", exp_dir.name), meta.get("study", "")
    planned = meta.get("epochs")
    scheduler = (meta.get("settings") or {}).get("scheduler", "asha")
    stops = _read_stops(exp_dir)
    curve_rows, trial_rows = [], []
    for trial in find_trials(exp_dir):
        rows = read_reports(trial.path)
        cfg_cols = _cfg_columns(trial.config)
        labels = {k: trial.config[k] for k in LABELS if k in trial.config}
        for r in rows:
            row = {"trial_id": trial.trial_id, "experiment": experiment, "study": study,
                   "iteration": int(r["training_iteration"])}
            for c in CURVE_COLUMNS[4:] + EXTRA_METRICS:
                row[c] = r.get(c)
            for c in REGULARIZE_METRICS:
                if c in r:
                    row[c] = r[c]
            curve_rows.append({**row, **labels, **cfg_cols})
        last = rows[-1] if rows else {}
        status = trial.status
        # error.txt stays after a retry succeeded: it counts only for a trial that ended in error
        failed = status == "ERROR" or (status == "UNKNOWN" and trial.error and not last.get("done"))
        error = last.get("error") or (trial.error if failed else None)
        if error:
            status = "ERROR"
        avg = [r["avg_acc"] for r in rows if isinstance(r.get("avg_acc"), (int, float)) and math.isfinite(r["avg_acc"])]
        epochs = int(last.get("epoch", 0) or 0)
        target = trial.config.get("epochs", planned)
        ended = ending(last, status, error, target, scheduler, trial.trial_id in stops)
        trial_rows.append({
            "trial_id": trial.trial_id, "status": status, "epochs": epochs,
            "final_avg_acc": avg[-1] if avg else None, "best_avg_acc": max(avg) if avg else None,
            "stopped_early": ended.pop("stopped_early"), "checkpoint": _latest_checkpoint(trial.path, exp_dir),
            "node": last.get("node"), **ended,
            "error": error, "experiment": experiment, "study": study,
            "path": relative_to_sweep(exp_dir, trial.path), **_regularize_summary(rows), **labels, **cfg_cols,
        })
    curves = pd.DataFrame(curve_rows)
    trials = pd.DataFrame(trial_rows)
    if curves.empty:
        curves = pd.DataFrame(columns=CURVE_COLUMNS)
    if trials.empty:
        trials = pd.DataFrame(columns=TRIAL_COLUMNS)
    return curves, trials


def ending(last: dict, status: str, error, target, scheduler: str, in_stops_file: bool = False) -> dict:
    """How a trial ended, from its last result: ``stopped_early``, ``stop_reason``, ``stop_epoch`` and the
    evidence of a stop decided on a config's seeds (the columns of trials.parquet; the end of a
    trial's run in W&B and MLflow)."""
    epochs = int(last.get("epoch", 0) or 0)
    stopped_early = bool(status == "TERMINATED" and not error and target is not None and epochs < int(target))
    stop_reason = _stop_reason(last, error, status, stopped_early, in_stops_file, scheduler)
    return {"stopped_early": stopped_early, "stop_reason": stop_reason,
            "stop_epoch": epochs if stop_reason in ENDED_EARLY else None,
            **{k: last.get(k) for k in STOP_EVIDENCE if stop_reason in STOPPED and k in last}}


def _stop_reason(last: dict, error, status: str, stopped_early: bool, in_stops_file: bool, scheduler: str) -> str:
    """Why a trial ended: the reason its last result records (see records.py), else, for sweeps
    run before results recorded it, the non-learner stopper's old side file or the sweep's scheduler."""
    if error:
        return "error"
    recorded = last.get(STOP_REASON)
    if recorded in STOP_REASONS and status != "ERROR":
        return recorded
    if in_stops_file:
        return "nonlearner"
    if stopped_early:
        return "median" if "median" in scheduler else "asha"
    return "completed" if status == "TERMINATED" else status.lower()


def _regularize_summary(rows: list[dict]) -> dict:
    """A regularisation trial's final and best val_mse and min_corr (nothing for an SD trial)."""
    out = {}
    for metric, best in (("val_mse", min), ("min_corr", max), ("mse", min)):
        vals = [r[metric] for r in rows if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
        if vals:
            out[f"final_{metric}"] = vals[-1]
            out[f"best_{metric}"] = best(vals)
    return out


def export(exp_dir: str | Path, force: bool = False) -> tuple[str, str]:
    """Write ``curves.parquet`` and ``trials.parquet`` into the sweep folder, local or remote (``s3://…``,
    ``gs://…``, ``file://…``: read and written through pyarrow's filesystems), each atomically. A table
    is not replaced by one with fewer rows (trial folders removed or not copied along) unless ``force``."""
    curves, trials = collect(exp_dir)
    base = str(exp_dir).rstrip("/")
    targets = {name: (store.join(exp_dir, name), df) for name, df in ((CURVES_FILE, curves), (TRIALS_FILE, trials))}
    if not force:
        for name, (target, df) in targets.items():
            held = store.table_rows(target)
            if held is not None and held > len(df):
                raise StudyError(f"{base}/{name}: holds {held} rows, its trial folders give {len(df)}; not replaced "
                                 f"(give `tune-sd export {base} --force` to rewrite the tables from the trial folders)")
    writes = {}
    for name, (target, df) in targets.items():
        table = pa.Table.from_pandas(df, preserve_index=False)
        writes[target] = lambda sink, table=table: pq.write_table(table, sink)
    store.write_all(writes)  # both tables, or (a full disk, Ctrl-C) neither: the old pair stays together
    return f"{base}/{CURVES_FILE}", f"{base}/{TRIALS_FILE}"


def read_table(exp_dir, name: str = TRIALS_FILE) -> tuple[pd.DataFrame, str]:
    """(table, its path) of a sweep's ``trials.parquet`` or ``curves.parquet``, local or remote; where the
    sweep has no tables yet (a sweep still running, or copied without them), they are written first."""
    table = store.join(exp_dir, name)
    if not store.is_file(table):
        export(exp_dir)
    return store.read_parquet(table), table


def fetch(uri: str, into: Path) -> Path:
    """Copy what the tables are made of (JSON files, checkpoint folder names) from remote storage."""
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(uri.rstrip("/"))
    try:
        infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    except (OSError, FileNotFoundError) as e:
        raise StudyError(f"{uri}: cannot list the sweep folder ({e})") from None
    wanted = ("params.json", "result.json", "error.txt", META_FILE, STOPS_FILE)
    local = into / Path(root).name
    local.mkdir(parents=True, exist_ok=True)
    for info in infos:
        rel = Path(info.path).relative_to(root)
        keep = rel.name in wanted or (len(rel.parts) == 1 and rel.name.startswith("experiment_state-"))
        if info.type == fs.FileType.Directory and rel.name.startswith("checkpoint_"):
            (local / rel).mkdir(parents=True, exist_ok=True)  # its name is all trials.parquet needs
        elif info.type == fs.FileType.File and keep:
            (local / rel).parent.mkdir(parents=True, exist_ok=True)
            with filesystem.open_input_stream(info.path) as src:
                (local / rel).write_bytes(src.read())
    return local


def status_table(exp_dir: str | Path) -> str:
    """A plain-text table of the trials: state, epochs, avg_acc, node."""
    _, trials = collect(exp_dir)
    if trials.empty:
        return f"{exp_dir}: no trials yet"
    label = "variant" if "variant" in trials.columns else None
    # a regularisation sweep shows its own headline metrics instead of the critic's accuracy
    regularize = "final_val_mse" in trials.columns and trials["final_val_mse"].notna().any()
    cols = (("final_val_mse", "val_mse", 9, ".2e"), ("final_min_corr", "min_corr", 8, ".3f")) if regularize else \
        (("final_avg_acc", "avg_acc", 8, ".3f"), ("best_avg_acc", "best", 7, ".3f"))
    head = f"{'trial':<14} {'state':<11} {'epochs':>8} " + " ".join(f"{title:>{w}}" for _, title, w, _ in cols) \
        + f" {'ended':<16} {'node':<13}"
    lines = [head + (f" {label}" if label else ""), "-" * len(head)]
    for _, t in trials.sort_values("trial_id").iterrows():
        state = t.status + ("*" if t.stopped_early else "")
        values = " ".join(f"{'-' if pd.isna(t[c]) else format(t[c], fmt):>{w}}" for c, _, w, fmt in cols)
        line = f"{t.trial_id:<14} {state:<11} {t.epochs:>8} {values} {_ended(t):<16} {str(t.node or '-'):<13}"
        lines.append(line + (f" {t[label]}" if label else ""))
    counts = trials.status.value_counts().to_dict()
    early = trials.loc[trials.stopped_early.astype(bool), "stop_reason"].value_counts()
    lines.append("")
    lines.append(", ".join(f"{n} {s.lower()}" for s, n in counts.items())
                 + f"; {int(trials.stopped_early.sum())} stopped early (*)"
                 + (f": {', '.join(f'{n} {r}' for r, n in early.items())}" if len(early) else ""))
    return "\n".join(lines)


def _ended(trial) -> str:
    """How a trial ended, as the status table shows it: ``nonlearner @ 120``, ``completed``, ``-``."""
    reason = trial.get("stop_reason")
    if trial.status not in ("TERMINATED", "ERROR") or not isinstance(reason, str):
        return "-"
    return f"{reason} @ {int(trial.stop_epoch)}" if pd.notna(trial.get("stop_epoch")) else reason
