"""The sweep's registry: where each packed trial trains (see :mod:`tune_sd.tune.executor`).

``PackRegistry`` (one per sweep, named) places a trial: it computes the trial's shape key and pack
size, picks an executor of that key on the trial's node with a free place (or starts one there) and
lets the member join it. The executors are the registry's own actors: they go when it goes.
"""

from __future__ import annotations

import asyncio
import time

import ray

from .executor import PopulationExecutor
from .packing import pack_plan

NAMESPACE = "tune_sd"
# a trial that finds every population of its key full waits this long for a member to leave before it
# starts another population: Tune may start the next trial before the last one's actor has cleaned up
# (a reused actor leaves before it joins; a fresh one takes longer than this to start). Longer waits
# cost every population after the first of a sweep as much at its start.
PLACE_WAIT_S = 2.0


def registry_name(experiment: str) -> str:
    return f"pack-registry/{experiment}"


@ray.remote(num_cpus=0, max_restarts=0)
class PackRegistry:
    """Places each trial in an executor of its shape key on its node, with a free place."""

    def __init__(self, experiment: str, pack, cpus_per_trial: float, gpus_per_trial: float):
        self.experiment, self.pack = experiment, pack
        self.cpus, self.gpus = cpus_per_trial, gpus_per_trial
        self.executors: dict[tuple, list[list]] = {}  # (key, node) -> [[executor, members set, capacity], ...]
        self.where: dict[str, tuple] = {}             # member -> (key, node, executor)
        self.released = asyncio.Condition()

    async def place(self, member_id: str, config: dict, node_id: str, checkpoint: str | None = None):
        """Join the member to an executor; returns (executor, capacity, what the join said)."""
        await self.release(member_id)
        key, size = pack_plan(config, self.pack, self.gpus)
        where = (key, node_id)
        async with self.released:
            try:
                await asyncio.wait_for(self.released.wait_for(lambda: self._has_place(where)), PLACE_WAIT_S)
            except asyncio.TimeoutError:
                pass  # more trials of this key than places: one more population
            slot = self._free_slot(where, size)  # choosing a place and taking it is one step (no await)
            slot[1].add(member_id)
            self.where[member_id] = (where, slot[0])
        try:
            joined = await slot[0].join.remote(member_id, config, checkpoint)
        except ray.exceptions.RayActorError:
            self._forget(slot[0])
            raise
        except Exception:
            slot[1].discard(member_id)
            self.where.pop(member_id, None)
            raise
        return slot[0], size, joined

    def _has_place(self, where: tuple) -> bool:
        slots = self.executors.get(where, [])
        return not slots or any(len(slot[1]) < slot[2] for slot in slots)

    def _free_slot(self, where: tuple, size: int) -> list:
        slots = self.executors.setdefault(where, [])
        for slot in slots:
            if len(slot[1]) < slot[2]:
                return slot
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        device = "cuda" if self.gpus > 0 else "cpu"
        # the members reserve the cores (cpus_per_trial / size each): together, one trial's share
        options = {"scheduling_strategy": NodeAffinitySchedulingStrategy(where[1], soft=False)}
        if self.gpus > 0:
            options["num_gpus"] = self.gpus / size  # a share, so that Ray hands it a device
        executor = PopulationExecutor.options(**options).remote(self.experiment, size, max(1, round(self.cpus)),
                                                                 device)
        slot = [executor, set(), size]
        slots.append(slot)
        return slot

    async def release(self, member_id: str) -> None:
        """The member leaves its executor (nothing when it is in none)."""
        placed = self.where.pop(member_id, None)
        if placed is None:
            return
        where, executor = placed
        try:
            await executor.leave.remote(member_id)
        except ray.exceptions.RayActorError:
            self._forget(executor)
        for slot in self.executors.get(where, []):
            if slot[0] == executor:
                slot[1].discard(member_id)
        async with self.released:
            self.released.notify_all()

    async def lost(self, executor) -> None:
        """An executor died: its members are gone; the next trials of its key get a fresh one."""
        self._forget(executor)
        async with self.released:
            self.released.notify_all()

    def _forget(self, executor) -> None:
        for where, slots in self.executors.items():
            for slot in [s for s in slots if s[0] == executor]:
                slots.remove(slot)
                for m in slot[1]:
                    self.where.pop(m, None)

    async def executors_of(self) -> list:
        return [slot[0] for slots in self.executors.values() for slot in slots]


# the resource Ray gives the head node only
HEAD_RESOURCE = "node:__internal_head__"


def start_registry(experiment: str, pack, cpus_per_trial: float, gpus_per_trial: float):
    """The sweep's registry, started by the driver on the head node before the trials ask for it. The
    executors are the registry's actors and go with its process: on the head (whose loss ends the
    cluster anyway), a lost worker node takes only its own populations with it, not every packed trial
    of the sweep."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = next((n["NodeID"] for n in ray.nodes() if n.get("Alive") and HEAD_RESOURCE in n.get("Resources", {})),
                None)
    # a hard affinity: Ray's soft one places an actor that needs no CPU elsewhere as often as not
    where = "DEFAULT" if head is None else NodeAffinitySchedulingStrategy(head, soft=False)
    return _registry(experiment, where, pack, cpus_per_trial, gpus_per_trial)


def get_registry(experiment: str, pack, cpus_per_trial: float, gpus_per_trial: float):
    """The sweep's registry: the driver's, or (where that one was lost) one started by the trial that asks."""
    # outside the asking trial's placement group (Tune's trials capture their children's scheduling),
    # which goes when that trial ends
    return _registry(experiment, "DEFAULT", pack, cpus_per_trial, gpus_per_trial)


def _registry(experiment: str, where, pack, cpus_per_trial: float, gpus_per_trial: float):
    # detached: it outlives whichever trial or driver call started it; the sweep's end stops it
    return PackRegistry.options(name=registry_name(experiment), namespace=NAMESPACE, get_if_exists=True,
                                lifetime="detached", scheduling_strategy=where).remote(
        experiment, pack, cpus_per_trial, gpus_per_trial)


def stop_registry(experiment: str, wait_s: float = 10.0) -> None:
    """End a sweep's registry and with it its executors (a sweep that ended has no packed trials); waits
    up to ``wait_s`` for its name to be free."""
    try:
        ray.kill(ray.get_actor(registry_name(experiment), namespace=NAMESPACE))
    except ValueError:
        return  # none was started (nothing packed)
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            ray.get_actor(registry_name(experiment), namespace=NAMESPACE)
        except ValueError:
            return
        time.sleep(0.05)
