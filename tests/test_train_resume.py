"""`tune-sd train`: Ctrl-C and --resume are bit for bit; what a resumed run may change is applied
for real and recorded, the rest is refused; --threads reaches torch."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tune_sd.cli import main
from tune_sd.engine import Study, load_checkpoint, resolve
from tune_sd.engine.loop import Curve


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """Each test starts with Python's own Ctrl-C handler, as a fresh `tune-sd train` process has: a Tune
    run earlier in the same test process leaves Tune's handler installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


TINY = ["disc.hid_num=2", "disc.hid_size=16", "arch.lat_size=3", "data.n_points=100", "data.split_sizes=[60,20,20]",
        "avg_hor=20"]
# a regularisation run (Step 7) without a critic: the same loop, another state
TINY_REG = ["task=regularize", "sd=0", "arch.hid_num=[2,2]", "arch.hid_size=[16,16]", "arch.lat_size=3",
            "data.n_points=100", "data.split_sizes=[60,20,20]"]
# everything but the wall-clock times must match
TIMES = ("time_s",)


def sets(keys):
    return [a for k in keys for a in ("--set", k)]


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tune_sd.cli", "train", "--no-progress", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_training(proc: subprocess.Popen) -> str:
    """Read stderr up to the run's start line (printed when the epochs begin)."""
    seen = ""
    while True:
        line = proc.stderr.readline()
        seen += line
        if not line or "torch thread" in line:
            return seen


def finish(proc: subprocess.Popen, head: str = "") -> tuple[int, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, head + err


def assert_same_run(a: Path, b: Path):
    ca, cb = pd.read_parquet(a / "curve.parquet"), pd.read_parquet(b / "curve.parquet")
    assert list(ca.epoch) == list(cb.epoch)
    cols = [c for c in ca.columns if c not in TIMES]
    pd.testing.assert_frame_equal(ca[cols], cb[cols])
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa["epoch"] == sb["epoch"]
    assert torch.equal(sa["rng"], sb["rng"])
    for part in ("critic", "model"):
        for k in sa.get(part, {}):
            assert torch.equal(sa[part][k], sb[part][k]), (part, k)
    for k, v in sa["optimizer"]["state"].items():
        for name, t in v.items():
            assert torch.equal(t, sb["optimizer"]["state"][k][name]), (k, name)
    for m in sa["recent"]:
        torch.testing.assert_close(sa["recent"][m], sb["recent"][m], rtol=0, atol=0, equal_nan=True, msg=m)
    assert sa["last"].keys() == sb["last"].keys()
    for m in sa["last"]:
        if m not in TIMES:
            torch.testing.assert_close(torch.tensor(float(sa["last"][m])), torch.tensor(float(sb["last"][m])),
                                       rtol=0, atol=0, equal_nan=True, msg=m)


def interrupted_main(argv: list[str], delay: float, twice: bool) -> int | None:
    """``tune-sd train`` in this process, with Ctrl-C (SIGINT to the process, handled by its main
    thread as a terminal's would be) after ``delay`` seconds, and a second one just after if ``twice``.
    None: the Ctrl-C came as the command returned."""
    pid = os.getpid()
    active = True

    def ctrl_c():
        os.kill(pid, signal.SIGINT)
        if twice:
            time.sleep(0.002)
            os.kill(pid, signal.SIGINT)

    def python_default(signum, frame):  # Python's own handler while the command runs, nothing after
        if active:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, python_default)
    timer = threading.Timer(delay, ctrl_c)
    timer.start()
    try:
        return main(argv)
    except KeyboardInterrupt:
        return None
    finally:
        active = False
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("keys, interrupts", [(TINY + ["disc.iters=8"], 10), (TINY_REG, 5)], ids=["sd", "regularize"])
def test_ctrl_c_at_random_moments_then_resume_is_the_uninterrupted_run(tmp_path, capsys, keys, interrupts):
    args = sets(keys + ["epochs=200", "report_every=1", "checkpoint_every=3", "seed=5"])
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert main(["train", "--no-progress", "--out", str(straight), *args]) == 0

    moments = random.Random(2024)
    stopped_at = []

    def train() -> list[str]:  # a Ctrl-C before the first save leaves no checkpoint: then the run starts again
        saved = (run / "checkpoint.pt").exists()
        return ["train", "--no-progress"] + (["--resume", str(run)] if saved else ["--out", str(run), *args])

    for _ in range(interrupts):
        rc = interrupted_main(train(), moments.uniform(0.02, 0.15), twice=moments.random() < 0.3)
        err = capsys.readouterr().err
        assert rc in (0, 130, None), err
        epoch = load_checkpoint(run)["epoch"] if (run / "checkpoint.pt").exists() else 0
        if epoch == 200:
            break
        if rc == 130:
            stopped_at.append(epoch)
    else:
        assert main(train()) == 0
    assert len(stopped_at) >= 3, stopped_at  # they came mid-run
    assert_same_run(straight, run)


@pytest.mark.slow
def test_ctrl_c_to_the_command_then_resume_is_the_uninterrupted_run(tmp_path):
    """The same through real `tune-sd train` processes and a real SIGINT to each."""
    args = sets(TINY + ["disc.iters=8", "epochs=200", "report_every=1", "checkpoint_every=3", "seed=5"])
    straight, run = tmp_path / "straight", tmp_path / "run"
    rc, err = finish(start("--out", str(straight), *args))
    assert rc == 0, err
    assert "1 torch thread(s)" in err  # the default --threads

    moments = random.Random(7)
    stopped_at = []
    for i in range(3):
        proc = start(*(["--resume", str(run)] if i else ["--out", str(run), *args]))
        head = wait_until_training(proc)
        time.sleep(moments.uniform(0.05, 0.3))
        proc.send_signal(signal.SIGINT)
        rc, err = finish(proc, head)
        assert rc in (0, 130) and "Traceback" not in err, err
        if rc == 0:
            break
        assert "interrupted at epoch" in err and f"--resume {run}" in err, err
        stopped_at.append(load_checkpoint(run)["epoch"])
    if rc == 130:
        rc, err = finish(start("--resume", str(run)))
        assert rc == 0, err
    assert stopped_at, "no SIGINT came mid-run"
    assert_same_run(straight, run)


def test_resume_applies_a_new_learning_rate_from_the_next_epoch_and_keeps_it(tmp_path, capsys):
    run, straight = tmp_path / "run", tmp_path / "straight"
    assert main(["train", "--out", str(run), "--no-progress", *sets(TINY + ["epochs=30"])]) == 0
    assert main(["train", "--out", str(straight), "--no-progress", *sets(TINY + ["epochs=50"])]) == 0
    assert main(["train", "--resume", str(run), "--no-progress", "--set", "disc.lr=1e-3", "--set", "epochs=50"]) == 0
    err = capsys.readouterr().err
    assert "from epoch 31: disc.lr 0.0001 -> 0.001" in err

    # the optimizer took the new value, the config and the checkpoint's records say so
    state = load_checkpoint(run)
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [1e-3]
    assert state["config"]["disc"]["lr"] == 1e-3
    lr_change = {"epoch": 31, "key": "disc.lr", "from": 1e-4, "to": 1e-3}
    assert lr_change in state["changes"]
    assert yaml.safe_load((run / "changes.yaml").read_text()) == state["changes"]
    assert yaml.safe_load((run / "config.yaml").read_text())["disc"]["lr"] == 1e-3
    assert "disc.lr 0.0001 -> 0.001" in (run / "config.yaml").read_text()

    # epochs 1-30 are the run without the change; from 31 on, the change shows
    cols = ["acc_mean", "loss_real", "loss_fake", "grad_max"]
    a, b = pd.read_parquet(run / "curve.parquet"), pd.read_parquet(straight / "curve.parquet")
    pd.testing.assert_frame_equal(a[cols].iloc[:30], b[cols].iloc[:30])
    assert (a.loss_real.iloc[30:].to_numpy() != b.loss_real.iloc[30:].to_numpy()).all()
    # ... and it is exactly a run whose learning rate was raised after epoch 30
    ref, ref_curve = Study(resolve(overrides=TINY + ["epochs=60"])), Curve()
    ref.run(epochs=30, callback=ref_curve.add)
    ref = Study.from_state(ref.state_dict(), **{"disc.lr": 1e-3})
    ref.run(epochs=20, callback=ref_curve.add)
    assert list(a.loss_real) == ref_curve["loss_real"]

    # a second resume keeps the value and the record
    assert main(["train", "--resume", str(run), "--no-progress", "--set", "epochs=60"]) == 0
    state = load_checkpoint(run)
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [1e-3]
    assert lr_change in state["changes"] and {"epoch": 51, "key": "epochs", "from": 50, "to": 60} in state["changes"]
    ref.run(callback=ref_curve.add)
    assert list(pd.read_parquet(run / "curve.parquet").loss_real) == ref_curve["loss_real"]


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("override, key", [
    (["disc.hid_size=32"], "disc.hid_size"),
    (["data.n_points=90"], "data.n_points"),
    (["seed=3"], "seed"),
    (["library.path=F1_v1"], "library.path"),
    (["disc.lr=1e-3", "arch.lat_size=4"], "arch.lat_size"),  # one refused key refuses the whole resume
    (["lr=0.01"], "lr"),  # the SD study has no network learning rate: it would be recorded, never used
])
def test_resume_refuses_what_changes_shapes_or_data_and_writes_nothing(tmp_path, capsys, override, key):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--no-progress", *sets(TINY + ["epochs=5"])]) == 0
    before = _snapshot(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress", *sets(override + ["epochs=8"])]) == 2
    err = capsys.readouterr().err
    assert f"{key}:" in err and "cannot change" in err and "Traceback" not in err
    assert _snapshot(run) == before


def test_resume_on_a_finished_run_records_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--no-progress", *sets(TINY + ["epochs=5"])]) == 0
    before = _snapshot(run)
    assert main(["train", "--resume", str(run), "--no-progress", "--set", "disc.lr=1e-3"]) == 0
    assert "already at epoch 5" in capsys.readouterr().out
    assert _snapshot(run) == before  # no epoch used the new value: it is not written anywhere


def test_threads_reach_torch(tmp_path, capsys):
    proc = subprocess.run([sys.executable, "-m", "tune_sd.cli", "train", "--no-progress", "--threads", "2",
                           "--out", str(tmp_path / "run"), *sets(TINY + ["epochs=2"])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2 torch thread(s)" in proc.stderr
    assert main(["train", "--threads", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "--threads" in capsys.readouterr().err


def test_a_regularisation_run_applies_its_own_optimizer_settings_and_refuses_the_critics():
    from tune_sd.engine import Regularization
    from tune_sd.errors import ConfigError

    run = Regularization(resolve(overrides=TINY_REG + ["epochs=10"]))
    run.run(epochs=3)
    resumed = Regularization.from_state(run.state_dict(), **{"lr": 0.01, "wd": 1e-5, "epochs": 20})
    group = resumed.optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.01, 1e-5)
    assert [(c["epoch"], c["key"]) for c in resumed.changes] == [(4, "epochs"), (4, "lr"), (4, "wd")]
    assert Regularization.from_state(resumed.state_dict()).optimizer.param_groups[0]["lr"] == 0.01
    # the critic's settings are not this run's (its critic comes from critic.path), nor is its shape
    for key, value, why in (("disc.lr", 1e-3, "does not use it"), ("critic.iters", 3, "fixed and trained"),
                            ("arch.hid_size", [8, 8], "shape"), ("target.f", "sum", "data")):
        with pytest.raises(ConfigError, match=rf"{key}: .*{why}"):
            Regularization.from_state(run.state_dict(), **{key: value})


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_ctrl_c_in_a_sweeps_terminal_never_reaches_a_trial():
    """What the trainable relies on for whole-epoch checkpoints: a trial's actor runs in its own
    process group (a terminal's Ctrl-C goes to the driver's group) with SIGINT blocked, so it is never
    interrupted mid-epoch; Tune stops it between reports."""
    import ray

    from tune_sd.tune.cluster import connect

    @ray.remote(num_cpus=0)
    class Probe:
        def signals(self):
            status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
            return os.getpgid(0), int(status["SigBlk"].strip(), 16)

    started = connect(None, num_cpus=1)
    try:
        pgid, blocked = ray.get(Probe.remote().signals.remote())
    finally:
        if started:
            ray.shutdown()
    assert pgid != os.getpgid(0)
    assert blocked & (1 << (signal.SIGINT - 1))


def test_ctrl_c_during_a_save_waits_until_the_files_are_written(tmp_path):
    from tune_sd.engine.checkpoint import interrupts_held, save_checkpoint

    study = Study(resolve(overrides=TINY))
    study.run(epochs=2)
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)  # Python's handler would raise in the middle of torch.save
            save_checkpoint(study.state_dict(), tmp_path / "ck.pt")
            written = True
    assert written and load_checkpoint(tmp_path / "ck.pt")["epoch"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_in_run_stops_at_an_epoch_boundary():
    """The engine's own loop (notebooks, scripts): Ctrl-C raises KeyboardInterrupt only once the epoch
    in progress is whole, so the run can be saved and resumed as it is."""
    from tune_sd.engine.loop import Interrupted

    cfg = resolve(overrides=TINY + ["disc.iters=8", "epochs=100000"])
    study, curve = Study(cfg), Curve()
    study.run(epochs=2, callback=curve.add)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(Interrupted):
            study.run(callback=curve.add)
    finally:
        timer.join()
    whole, whole_curve = Study(cfg), Curve()
    whole.run(epochs=study.epoch, callback=whole_curve.add)
    assert curve["loss_real"] == whole_curve["loss_real"]
    assert torch.equal(study.rng.get_state(), whole.rng.get_state())
    for p, q in zip(study.critic.parameters(), whole.critic.parameters()):
        assert torch.equal(p, q)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("keys", [TINY, TINY_REG], ids=["sd", "regularize"])
def test_a_run_trains_where_a_ctrl_c_left_autograd_off(tmp_path, keys):
    # a Ctrl-C that lands between torch.no_grad()'s switch and its `with` taking hold leaves autograd off
    # in that thread: the next run in the same process (a notebook, this suite) must still train
    previous = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        assert main(["train", "--no-progress", "--out", str(tmp_path / "run"), *sets(keys + ["epochs=3"])]) == 0
    finally:
        torch.set_grad_enabled(previous)
