"""Connecting to Ray: an embedded local Ray on loopback (the default) or an existing cluster."""

from __future__ import annotations

import contextlib
import os

LOCAL_IP = "127.0.0.1"


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
            dashboard: bool = False) -> bool:
    """Start or join Ray. Returns True when this call started a local instance (the caller shuts it
    down); joining a cluster (``address`` or ``RAY_ADDRESS``) returns False.

    A local Ray listens on 127.0.0.1 only and runs no dashboard unless asked: on Linux, Ray 2.x
    advertises loopback when ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` and the node IP is 127.0.0.1.
    Without the dashboard it also records no task events (:func:`_task_events_off`).
    """
    if not (address or os.environ.get("RAY_ADDRESS")):
        _loopback_only()
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False)
        return False
    # "local": always a fresh embedded instance, never a cluster that `ray start` left running here
    with _task_events_off(not dashboard):
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
                 dashboard_host=LOCAL_IP, _node_ip_address=LOCAL_IP, log_to_driver=False, configure_logging=True,
                 logging_level="WARNING")
    return True


TASK_EVENTS_ENV = "RAY_task_events_report_interval_ms"


@contextlib.contextmanager
def _task_events_off(off: bool):
    """Ray's processes started in this block record no task events (unless the user set the variable).

    Every report of a trial is a Ray task, and Ray keeps an event of each (up to 100 000, about 1 KB each)
    in its GCS for the dashboard and ``ray list tasks``: with nothing to show them, they only made Ray's
    processes grow (84 MB/h against 18 MB/h without, benchmarks/long_horizon.py). Ray's processes read
    the variable when they start; the driver's environment is left as it was."""
    if not off or TASK_EVENTS_ENV in os.environ:
        yield
        return
    os.environ[TASK_EVENTS_ENV] = "0"
    try:
        yield
    finally:
        os.environ.pop(TASK_EVENTS_ENV, None)


def _loopback_only() -> None:
    """Make a local Ray bind and advertise 127.0.0.1 only.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when it is first imported; the variable is
    set for the processes Ray starts, and the value already read is corrected when Ray was imported
    before this call (e.g. by ``ray.tune``).
    """
    import sys

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False
