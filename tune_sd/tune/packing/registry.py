"""The sweep's registry: where each packed trial trains (see :mod:`tune_sd.tune.packing.executor`).

``PackRegistry`` (one per sweep, named) places a trial: it computes the trial's shape key and pack
size, picks an executor of that key on the trial's node with a free place (or starts one there) and
lets the member join it. The executors are the registry's own actors: they go when it goes.
"""

from __future__ import annotations

import asyncio
import time

import ray

from tune_sd.tune.packing.executor import FILL_S, PopulationExecutor

NAMESPACE = "tune_sd"
# a trial that finds every population of its key full waits this long for a member to leave before it
# starts another population: Tune may start the next trial before the last one's actor has cleaned up
# (a reused actor leaves before it joins; a fresh one takes longer than this to start). Longer waits
# cost every population after the first of a sweep as much at its start.
PLACE_WAIT_S = FILL_S  # as long as a new population waits for its members


def registry_name(experiment: str, run: str) -> str:
    """A registry's name: its sweep's and the driver run's (a second driver of the sweep, on a shared
    cluster, has a registry of its own)."""
    return f"pack-registry/{experiment}/{run}"


def new_run() -> str:
    """A driver run's id (a registry's name is its sweep's and this)."""
    import uuid

    return uuid.uuid4().hex[:12]


class Slot:
    """An executor of one (shape key, node) and the members placed in it."""

    def __init__(self, executor, capacity: int):
        self.executor, self.capacity = executor, capacity
        self.members: set[str] = set()

    @property
    def free(self) -> bool:
        return len(self.members) < self.capacity


@ray.remote(num_cpus=0, max_restarts=0)
class PackRegistry:
    """Places each trial in an executor of its shape key on its node, with a free place."""

    def __init__(self, experiment: str, pack, cpus_per_trial: float, gpus_per_trial: float,
                 sizes: dict | None = None):
        self.experiment, self.pack, self.sizes = experiment, pack, sizes
        self.cpus, self.gpus = cpus_per_trial, gpus_per_trial
        self.executors: dict[tuple, list[Slot]] = {}  # (key, node) -> its executors
        self.where: dict[str, tuple] = {}             # member -> ((key, node), executor)
        self.released = asyncio.Condition()

    async def place(self, member_id: str, config: dict, node_id: str, checkpoint: str | None = None):
        """Join the member to an executor; returns (executor, capacity, what the join said)."""
        from tune_sd.tune.packing.plan import pack_plan  # the engine (torch): in the registry's process, not a trial's

        await self.release(member_id)
        key, size = pack_plan(config, self.pack, self.gpus, self.sizes)
        where = (key, node_id)
        async with self.released:
            try:
                await asyncio.wait_for(self.released.wait_for(lambda: self._has_place(where)), PLACE_WAIT_S)
            except asyncio.TimeoutError:
                pass  # more trials of this key than places: one more population
            slot = self._free_slot(where, size)  # choosing a place and taking it is one step (no await)
            slot.members.add(member_id)
            self.where[member_id] = (where, slot.executor)
        try:
            joined = await slot.executor.join.remote(member_id, config, checkpoint)
        except ray.exceptions.RayActorError:
            self._forget(slot.executor)
            raise
        except Exception:
            slot.members.discard(member_id)
            self.where.pop(member_id, None)
            raise
        return slot.executor, size, joined

    def _has_place(self, where: tuple) -> bool:
        slots = self.executors.get(where, [])
        return not slots or any(slot.free for slot in slots)

    def _free_slot(self, where: tuple, size: int) -> Slot:
        slots = self.executors.setdefault(where, [])
        for slot in slots:
            if slot.free:
                return slot
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        device = "cuda" if self.gpus > 0 else "cpu"
        # the members reserve the cores (cpus_per_trial / size each): together, one trial's share
        options = {"scheduling_strategy": NodeAffinitySchedulingStrategy(where[1], soft=False)}
        if self.gpus > 0:
            options["num_gpus"] = self.gpus / size  # a share, so that Ray hands it a device
        executor = PopulationExecutor.options(**options).remote(self.experiment, size, max(1, round(self.cpus)),
                                                                 device)
        slot = Slot(executor, size)
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
            if slot.executor == executor:
                slot.members.discard(member_id)
        async with self.released:
            self.released.notify_all()

    async def lost(self, executor) -> None:
        """An executor died: its members are gone; the next trials of its key get a fresh one."""
        self._forget(executor)
        async with self.released:
            self.released.notify_all()

    def _forget(self, executor) -> None:
        for where, slots in self.executors.items():
            for slot in [s for s in slots if s.executor == executor]:
                slots.remove(slot)
                for m in slot.members:
                    self.where.pop(m, None)

    async def executors_of(self) -> list:
        return [slot.executor for slots in self.executors.values() for slot in slots]


# the resource Ray gives the head node only
HEAD_RESOURCE = "node:__internal_head__"
# the registries this driver started, by name, until it stops them
_held: dict[str, object] = {}


def start_registry(experiment: str, run: str, pack, cpus_per_trial: float, gpus_per_trial: float,
                   sizes: dict | None = None):
    """The registry of this driver's run of the sweep, started by the driver on the head node before the
    trials ask for it. The executors are the registry's actors and go with its process: on the head
    (whose loss ends the cluster anyway), a lost worker node takes only its own populations with it,
    not every packed trial of the sweep. The driver owns it: a driver that is killed takes its
    registry and executors with it (Ray ends the actors of a job that ended), and another driver of
    the same sweep name on the cluster has its own."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = next((n["NodeID"] for n in ray.nodes() if n.get("Alive") and HEAD_RESOURCE in n.get("Resources", {})),
                None)
    # a hard affinity: Ray's soft one places an actor that needs no CPU elsewhere as often as not
    where = "DEFAULT" if head is None else NodeAffinitySchedulingStrategy(head, soft=False)
    name = registry_name(experiment, run)
    registry = PackRegistry.options(name=name, namespace=NAMESPACE, get_if_exists=True,
                                    scheduling_strategy=where).remote(experiment, pack, cpus_per_trial,
                                                                      gpus_per_trial, sizes)
    _held[name] = registry  # Ray ends an actor that is not detached once no handle to it is left
    return registry


def get_registry(experiment: str, run: str, pack, cpus_per_trial: float, gpus_per_trial: float,
                 sizes: dict | None = None):
    """The run's registry: the driver's, or (where that one was lost) one started by the trial that asks,
    detached (it outlives that trial; the driver stops it at the sweep's end)."""
    # outside the asking trial's placement group (Tune's trials capture their children's scheduling),
    # which goes when that trial ends
    return PackRegistry.options(name=registry_name(experiment, run), namespace=NAMESPACE, get_if_exists=True,
                                lifetime="detached", scheduling_strategy="DEFAULT").remote(
        experiment, pack, cpus_per_trial, gpus_per_trial, sizes)


def stop_registry(experiment: str, run: str, wait_s: float = 10.0) -> None:
    """End a run's registry and with it its executors (a sweep that ended has no packed trials); waits
    up to ``wait_s`` for its name to be free."""
    name = registry_name(experiment, run)
    _held.pop(name, None)
    try:
        ray.kill(ray.get_actor(name, namespace=NAMESPACE))
    except ValueError:
        return  # none was started (nothing packed)
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return
        time.sleep(0.05)
