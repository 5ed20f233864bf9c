"""Where packed trials train: a shared executor per shape key that steps a ``Population``.

Two kinds of Ray actors, both asyncio actors that hold no CPUs of their own (the trials reserve them,
see :mod:`tune_sd.tune.packing.client`):

- ``PopulationExecutor`` owns one engine ``Population`` of up to ``capacity`` members of one shape key
  on one node. ``advance(member, n, reports, seconds)`` returns the rows of one Tune result: up to
  ``reports`` reports of ``n`` epochs each, gathered for about ``seconds`` (report_rows.py); a background loop
  meanwhile steps every member with pending work in one batched pass (``Population.step(ids)``), so
  that members whose requests overlap share their passes.
- ``PackRegistry`` (one per sweep, :mod:`tune_sd.tune.packing.registry`) places each trial in an executor.

A member's state is a ``Study`` state: the executor reads and writes the trial's checkpoint file
(``trainable.CHECKPOINT_FILE``) on the node they share, so packed and unpacked checkpoints interchange.
"""

from __future__ import annotations

import asyncio
import logging
import time

import ray

from tune_sd.tune.cadence import Cadence

# one hand-off to the stepping thread runs epochs for up to this long while no member is due to report,
# so that the event loop's and the thread's hand-offs cost little per epoch; joins, leaves and saves
# wait at most this long
BURST_S = 0.25
# a new population starts once it is full, or once no member joined for this long (a trial that finds
# no place waits as long before it starts another population: registry.PLACE_WAIT_S)
FILL_S = 2.0

log = logging.getLogger(__name__)


class _Request:
    """A member's pending ``advance``: its reports so far, epochs still to run for the current one, and
    the future its caller awaits."""

    def __init__(self, epochs: int, reports: int, seconds: float, future: asyncio.Future, first: int):
        self.every, self.reports, self.future = epochs, reports, future
        self.end = time.monotonic() + seconds  # no report starts after this: the caller's result is due
        self.left = epochs
        self.first = first  # the member's epoch when the current report began
        self.last = None    # the last epoch's metrics
        self.rows: list[dict] = []


@ray.remote(num_cpus=0, max_restarts=0)
class PopulationExecutor:
    def __init__(self, experiment: str, capacity: int, threads: int, device: str):
        import torch

        from tune_sd.engine.allocator import keep_freed_memory
        from tune_sd.engine.population import Population

        torch.set_num_threads(max(1, threads))  # the cores its members reserved, no more
        keep_freed_memory()  # the stacked steps' big temporaries stay in the heap between steps
        self.experiment, self.capacity, self.device = experiment, capacity, device
        self.pop = Population(device)
        self.lock = asyncio.Lock()  # the population is stepped in a worker thread; one change at a time
        self.requests: dict[str, _Request] = {}
        self.work = asyncio.Event()
        self.writers: dict[str, object] = {}
        self.loop = None
        self.passes = 0
        self.filling = True             # a new population waits for its members before its first pass
        self.joined = asyncio.Event()   # a member joined (a filling population looks again)

    # ---------------------------------------------------------------- membership
    async def join(self, member_id: str, config: dict, checkpoint: str | None = None) -> dict:
        """The member joins, fresh or from a checkpoint file (a Study state)."""
        from tune_sd.engine import Config
        from tune_sd.engine.checkpoint import load_checkpoint

        from tune_sd.tune.trial_config import split_trial_config

        tree, _ = split_trial_config(config)
        cfg = Config.from_dict(tree)
        state = await asyncio.to_thread(load_checkpoint, checkpoint) if checkpoint else None
        async with self.lock:
            if member_id in self.pop.members:
                self._drop(member_id)
            await asyncio.to_thread(self.pop.add, member_id, cfg, state)
        self.joined.set()
        if self.loop is None:
            self.loop = asyncio.get_running_loop().create_task(self._run())
        return {"epoch": self.pop.epoch(member_id), "device": str(self.pop.device.type),
                "cadence": Cadence.of(cfg).to_dict()}

    async def leave(self, member_id: str) -> None:
        async with self.lock:
            if member_id in self.pop.members:
                self._drop(member_id)

    def _drop(self, member_id: str) -> None:
        self.pop.remove(member_id)
        if not len(self.pop):
            self.filling = True  # the next members (a next wave of trials) start together again
        request = self.requests.pop(member_id, None)
        if request is not None and not request.future.done():
            request.future.set_exception(RuntimeError(f"member {member_id} left with epochs pending"))
        writer = self.writers.pop(member_id, None)
        if writer is not None:
            writer.close()

    # ---------------------------------------------------------------- training
    async def advance(self, member_id: str, epochs: int, reports: int = 1, seconds: float = 0.0) -> list[dict]:
        """Up to ``reports`` reports of ``epochs`` epochs each of the member, for about ``seconds`` (fewer
        where it is done or fails first): the rows of one Tune result (report_rows.py). Between its reports the
        member goes on stepping with its population; only the last one waits for the caller."""
        if member_id not in self.pop.members:
            raise RuntimeError(f"member {member_id} is not in this population")
        future = asyncio.get_running_loop().create_future()
        request = _Request(int(epochs), max(1, int(reports)), float(seconds), future, self.pop.epoch(member_id))
        self.requests[member_id] = request
        self.work.set()
        await future
        if not request.rows:  # done before any epoch (restored at its last one)
            request.rows.append(self._report(member_id, request))
        return request.rows

    async def _run(self) -> None:
        """Step the members with pending work, pass after pass. A member whose result just went out
        misses the passes until its trial asks again (a few ms; its reports ride along in spans, so
        that is seldom): waiting for it would idle every other member meanwhile, and the passes it
        misses it makes up at the end, when its fellows are done."""
        while True:
            await self.work.wait()
            if self.filling:
                await self._fill()
            async with self.lock:
                ids = self._due()
                if not ids:
                    self.work.clear()
                    continue
                epochs = min(self.requests[m].left for m in ids)
                passes = await asyncio.to_thread(self._burst, ids, epochs)
            for results, done in passes:
                self.passes += 1
                self._record(results, done)

    async def _fill(self) -> None:
        """Before its first pass, a population waits until it is full or no member joined for FILL_S:
        its members' trial processes start a few at a time, and a population that started with the first
        would step its members apart, in passes of a few and a long tail of the last ones alone, while
        the cores are busy starting those processes anyway."""
        while len(self.pop) < self.capacity:
            self.joined.clear()
            try:
                await asyncio.wait_for(self.joined.wait(), FILL_S)
            except asyncio.TimeoutError:
                break
        self.filling = False

    def _burst(self, ids: list[str], epochs: int) -> list[tuple[dict, set]]:
        """Up to ``epochs`` passes over ``ids`` (for about BURST_S at most), in the stepping thread: per
        pass its results and the members done after it. It ends early where a member errs or is done,
        so that its report goes out at once."""
        passes, end = [], time.monotonic() + BURST_S
        for _ in range(max(1, epochs)):
            results = self.pop.step(ids)
            done = {m for m in ids if self.pop.done(m)}
            passes.append((results, done))
            if done or time.monotonic() > end or any("error" in r for r in results.values()):
                break
        return passes

    def _due(self) -> list[str]:
        """Members with epochs to run; requests of members that are done (or failed) are answered."""
        ids = []
        for m, request in list(self.requests.items()):
            if self.pop.done(m):
                self._resolve(m)
            else:
                ids.append(m)
        return ids

    def _record(self, results: dict, done: set) -> None:
        """A pass's results: a member whose report is complete gets its row; its request is answered
        where that was its last report (or its time is up, or it is done or failed)."""
        for m, metrics in results.items():
            request = self.requests.get(m)
            if request is None:
                continue
            request.last = metrics
            request.left -= 1
            ended = "error" in metrics or m in done
            if request.left > 0 and not ended:
                continue
            request.rows.append(self._report(m, request))
            if ended or len(request.rows) >= request.reports or time.monotonic() >= request.end:
                self._resolve(m)
            else:  # the next report of the same result: the member steps on in this population's passes
                request.left, request.first, request.last = request.every, self.pop.epoch(m), None

    def _resolve(self, member_id: str) -> None:
        request = self.requests.pop(member_id)
        if not request.future.done():
            request.future.set_result(None)

    def _report(self, member_id: str, request: _Request) -> dict:
        """What the trial reports: the last epoch's metrics and the report's (the engine's
        ``RunLoop.last_metrics`` and ``RunLoop.report`` of the member), as an unpacked trial reports them."""
        from tune_sd.tune.stopping.records import own_end

        pop, epoch = self.pop, self.pop.epoch(member_id)
        metrics = request.last
        if metrics is not None and "error" in metrics:
            return {**pop.last_metrics(member_id), "error": metrics["error"], "done": True, "stop_reason": "error"}
        if metrics is None:  # restored at its last epoch
            metrics = pop.last_metrics(member_id)
        # which population trained it, and with how many members at the time (in result.json, TensorBoard)
        report = {**metrics, "done": self.pop.done(member_id), "pack_members": len(self.pop),
                  "pack_executor": ray.get_runtime_context().get_actor_id()[:12]}
        if report["done"]:  # the trial ends itself: its epochs or its runtime ran out
            report["stop_reason"] = own_end(epoch, self.pop.config(member_id).epochs)
        report.update(pop.report(member_id, since=request.first))
        return report

    # ---------------------------------------------------------------- state and figures
    async def save(self, member_id: str, path: str) -> str:
        from tune_sd.engine.checkpoint import save_checkpoint

        async with self.lock:
            state = self.pop.state_dict(member_id)
        await asyncio.to_thread(save_checkpoint, state, path)
        return path

    async def figure(self, member_id: str, logdir: str, task: str = "sd") -> None:
        """The trial's TensorBoard figure, drawn from a solo study rebuilt from the member's state."""
        async with self.lock:
            study = await asyncio.to_thread(self.pop.study, member_id)
        await asyncio.to_thread(self._draw, member_id, study, logdir)

    def _draw(self, member_id: str, study, logdir: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from tune_sd.tune.trial_figures import samples_figure

        writer = self.writers.get(member_id)
        if writer is None:
            writer = self.writers[member_id] = SummaryWriter(log_dir=logdir)
        writer.add_figure("samples/real_vs_fake", samples_figure(study), global_step=study.epoch, close=True)
        writer.flush()

    async def stats(self) -> dict:
        return {"members": len(self.pop), "passes": self.passes, "capacity": self.capacity}
