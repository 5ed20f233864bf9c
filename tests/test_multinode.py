"""Scale-out: a sweep on a 3-node Ray cluster on loopback (a head without CPUs, 2 workers of 1 CPU); a worker is
removed while its trial runs, and every trial still ends, resumed from its checkpoint elsewhere."""

import copy
import json
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from tune_helpers import BASE, assert_complete_curves, read_tables, write_space

from tune_sd.tune.cluster import _loopback_only
from tune_sd.spaces import load_space
from tune_sd.tune.plan import SweepOptions, plan_sweep
from tune_sd.tune.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_cluster_configs_pass_rays_schema(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / name).read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    text = (ROOT / name).read_text().lower()
    for secret in ("aws_access_key_id", "aws_secret_access_key", "begin openssh private key", "password"):
        assert secret not in text
    if config["provider"]["type"] == "aws":
        rules = config["provider"]["security_group"]["IpPermissions"]
        assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]  # nothing but SSH is opened
        assert {"head", "cpu_worker", "gpu_worker"} <= set(config["available_node_types"])


@pytest.fixture
def three_nodes():
    import ray
    from ray.cluster_utils import Cluster

    _loopback_only()
    # no CPU on the head: every trial runs on a worker, so that one can be taken away under it
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()  # only the cluster this test started


def _rows(folder: Path):
    """Every result row Tune wrote under ``folder`` (a sweep or one trial), in the order written."""
    own = folder / "result.json"
    for f in [own] if own.exists() else sorted(folder.glob("trial_*/result.json")):
        for line in f.read_text().splitlines():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                pass


@pytest.mark.slow
def test_trials_spread_over_nodes_and_survive_a_lost_worker(three_nodes, tmp_path):
    cluster, workers = three_nodes
    epochs = 600
    space = write_space(tmp_path, "multi", {"arch": {"parameters": {"lat_size": {"values": [2, 3, 4]}}}},
                        base={"epochs": epochs, "checkpoint_every": 1, "figure_every": 0},
                        tune={"scheduler": "fifo", "num_samples": 1, "max_failures": 3})
    shared = tmp_path / "shared"  # storage every node reaches (one machine: one path)
    plan = plan_sweep(load_space(str(space)), SweepOptions(storage=str(shared), name="multi"))
    exp = plan.exp_dir
    removed = {}

    def remove_a_worker_when_a_trial_on_it_has_a_checkpoint():
        by_node = {w.node_id[:12]: w for w in workers}
        deadline = time.time() + 240
        while time.time() < deadline:
            # a trial with two checkpoint folders: Tune saves one at a time, so the first is registered
            saved = next((r for r in _rows(exp) if r.get("node") in by_node
                          and len(list(exp.glob(f"trial_{r['trial_id']}/checkpoint_*"))) >= 2), None)
            if saved is not None:
                removed.update(node=saved["node"], trial=saved["trial_id"])
                cluster.remove_node(by_node[saved["node"]])
                return
            time.sleep(0.3)

    killer = threading.Thread(target=remove_a_worker_when_a_trial_on_it_has_a_checkpoint, daemon=True)
    killer.start()
    run_sweep(plan)
    killer.join(timeout=5)
    assert removed, "no trial ran on the worker that was to be removed"

    curves, trials = read_tables(exp)
    assert len(trials) == 3 and set(trials.status) == {"TERMINATED"}
    assert (trials.epochs == epochs).all()
    assert_complete_curves(curves)
    assert curves.node.nunique() >= 2
    every, victim = BASE["report_every"], removed["node"]
    rows = {tid: [r for r in _rows(exp / f"trial_{tid}") if "training_iteration" in r] for tid in trials.trial_id}
    on_victim = {tid for tid, rs in rows.items() if any(r["node"] == victim for r in rs)}
    # every trial that ran there finished elsewhere
    for tid in on_victim:
        nodes = list(curves[curves.trial_id == tid].sort_values("iteration").node)
        assert nodes[0] == victim and nodes[-1] != victim
    # the saved one resumed from its checkpoint: the first report after the move (in the order
    # result.json got them) continues past epoch 0, at the iteration after one it saved on the victim
    moved = next(i for i, r in enumerate(rows[removed["trial"]]) if r["node"] != victim)
    first_after, before = rows[removed["trial"]][moved], rows[removed["trial"]][:moved]
    start_epoch = first_after["epoch"] - every  # the epoch the restored study started from
    assert start_epoch > 0, f"the trial restarted from scratch after the move: {first_after}"
    assert start_epoch in {r["epoch"] for r in before}
    assert first_after["training_iteration"] == start_epoch // every + 1
    assert first_after["iterations_since_restore"] < first_after["training_iteration"]
    # the trials on the other worker went on undisturbed: the lost node took only its own populations
    # (the packing registry, whose actors the executors are, runs on the head node)
    for tid in set(rows) - on_victim:
        assert [r["iterations_since_restore"] for r in rows[tid]] == [r["training_iteration"] for r in rows[tid]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU on this machine: the GPU path is skipped")
def test_fractional_gpu_trials_run_on_the_gpu(tmp_path):
    import ray

    from tune_sd.tune.cluster import connect

    space = write_space(tmp_path, "gpu", {"arch": {"parameters": {"lat_size": {"values": [2, 3]}}}},
                        base={"epochs": 40}, tune={"scheduler": "fifo", "num_samples": 1})
    started = connect(num_cpus=2, num_gpus=1)
    try:
        plan = plan_sweep(load_space(str(space)), SweepOptions(storage=str(tmp_path / "s"), name="gpu",
                                                             gpus_per_trial=0.5))
        run_sweep(plan)
    finally:
        if started:
            ray.shutdown()
    curves, trials = read_tables(plan.exp_dir)
    assert set(trials.status) == {"TERMINATED"}
    assert set(curves.device) == {"cuda"}
