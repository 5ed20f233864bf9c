"""What ``tune-sd resume`` checks before Ray restores a sweep, and the epochs each trial planned.

Ray's ``Tuner.restore`` reads the newest ``experiment_state-*.json`` of the sweep folder; a damaged one
makes it print its own traceback and go on with whatever it could restore, which has re-run a finished
sweep past its epochs. Here that file is read first, as JSON (nothing in it is unpickled), and the
sweep is refused with one line where it cannot be read or does not agree with itself or the folder:
nothing is started, no file is changed. What it records is also where each trial's planned epochs
come from: a resumed trial is never run past them (:func:`planned_epochs`, used by the trainable).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from tune_sd import store
from tune_sd.errors import StudyError

STATE_PREFIX = "experiment_state-"
STATUSES = ("PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR")
DEFAULT = "*"  # the key of planned_epochs' value for a trial the state does not name


def _json(value):
    """Tune nests JSON in JSON strings (a trial's state and its run metadata)."""
    return json.loads(value) if isinstance(value, str) else value


def check_experiment_state(exp_dir) -> dict:
    """The planned epochs of the sweep in ``exp_dir`` ({trial_id: epochs, DEFAULT: epochs}), once its
    newest experiment state, its ``tuner.pkl`` and its ``tune_sd.json`` are found whole and consistent;
    else a one-line :class:`StudyError` naming the file and what is wrong."""
    held = store.names(exp_dir)
    states = sorted(n for n in held if n.startswith(STATE_PREFIX) and n.endswith(".json"))
    if not states:
        raise StudyError(f"{exp_dir}: holds no Tune experiment state to resume")
    newest = states[-1]  # the one Tune restores (the greatest name: the newest start time)
    where = store.join(exp_dir, newest)
    if "tuner.pkl" not in held:
        raise StudyError(f"{store.join(exp_dir, 'tuner.pkl')}: missing; the sweep cannot be resumed (Tune restores "
                         "its settings from it)")

    def refuse(problem: str):
        raise StudyError(f"{where}: {problem}; the sweep is not resumed (nothing was changed). Restore the file from "
                         f"a copy, or start the sweep again under another --name")

    try:
        state = json.loads(store.read_bytes(where))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        refuse(f"not readable JSON ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})")
    if not isinstance(state, dict) or not isinstance(state.get("trial_data"), list) \
            or not isinstance(state.get("runner_data"), dict):
        refuse("not a Tune experiment state (no trial_data list and runner_data)")
    meta = _meta(exp_dir, held)
    sweep_epochs = meta.get("epochs")
    planned: dict = {}
    for i, entry in enumerate(state["trial_data"]):
        try:
            trial, run = (_json(part) for part in entry)
        except (TypeError, ValueError):
            refuse(f"trial {i} of trial_data is not a pair of JSON states")
        if not isinstance(trial, dict) or not isinstance(run, dict):
            refuse(f"trial {i} of trial_data is not a pair of JSON objects")
        tid, status, logdir = trial.get("trial_id"), trial.get("status"), trial.get("relative_logdir")
        if not isinstance(tid, str) or not tid or tid in planned:
            refuse(f"trial {i} has no trial_id of its own ({str(tid)[:40]!r})")
        if status not in STATUSES:
            refuse(f"trial {tid} has the status {str(status)[:40]!r} (Tune writes one of {', '.join(STATUSES)})")
        if logdir is not None:
            parts = PurePosixPath(str(logdir)).parts
            if not isinstance(logdir, str) or len(parts) != 1 or parts[0] in (".", "..") or "\\" in logdir:
                refuse(f"trial {tid}'s folder {str(logdir)[:60]!r} is not a folder of the sweep")
            if status != "PENDING" and logdir not in held:
                refuse(f"trial {tid} ({status.lower()}) names the folder {logdir}, which the sweep does not hold")
        config = trial.get("config")
        epochs = config.get("epochs") if isinstance(config, dict) else None
        if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
            refuse(f"trial {tid} has epochs {str(epochs)[:40]!r} in its config")
        if epochs is None and logdir in held:  # the trial's own record of its config
            epochs = _params_epochs(store.join(exp_dir, logdir, "params.json"))
        planned[tid] = epochs if epochs is not None else sweep_epochs
    known = [e for e in planned.values() if isinstance(e, int)]
    if isinstance(sweep_epochs, int):
        known.append(sweep_epochs)
    planned = {tid: e for tid, e in planned.items() if isinstance(e, int)}
    if known:
        planned[DEFAULT] = max(known)
    return planned


def _meta(exp_dir, held: list[str]) -> dict:
    """The sweep's own record (``tune_sd.json``): {} where there is none; refused where it is damaged."""
    if store.META_FILE not in held:
        return {}
    where = store.join(exp_dir, store.META_FILE)
    try:
        meta = json.loads(store.read_bytes(where))
    except (OSError, ValueError, UnicodeDecodeError):
        meta = None
    epochs = meta.get("epochs") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise StudyError(f"{where}: not the sweep's readable record (JSON with its planned epochs); the sweep is "
                         "not resumed (nothing was changed)")
    return meta


def _params_epochs(location) -> int | None:
    try:
        epochs = json.loads(store.read_bytes(location)).get("epochs")
    except (OSError, ValueError, AttributeError, StudyError, UnicodeDecodeError):
        return None
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def planned_epochs(config: dict, trial_id: str, planned: dict | None) -> dict:
    """``config`` with its epochs no more than the trial planned: a resumed trial stops at the epochs its
    sweep gave it, whatever config Ray restored for it (one without epochs would run to the default)."""
    if not planned:
        return config
    cap = planned.get(trial_id, planned.get(DEFAULT))
    epochs = config.get("epochs")
    if cap is None or (isinstance(epochs, int) and epochs <= cap):
        return config
    return {**config, "epochs": cap}
