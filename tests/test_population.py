"""The population: each member reproduces its solo study; members join and leave; states interchange."""

import pytest
import torch

from tune_sd.engine import Population, Study, pack_size, shape_key
from tune_sd.engine.config import resolve
from tune_sd.engine.loop import Curve
from tune_sd.errors import ConfigError, StudyError

SMALL = ["disc.hid_num=2", "disc.hid_size=16", "arch.lat_size=3", "data.split_sizes=[60,20,20]",
         "data.n_points=100", "avg_hor=4", "epochs=1000"]
LOSSES = ("loss_real", "loss_fake", "loss_gp", "grad_max")
# The stacked critic multiplies and sums in another order than the solo one (batched products,
# masked means, the penalty's input gradient written out), so values agree to float rounding,
# amplified a little by training; an accuracy count can differ only where a critic's score sits
# within rounding of 0. Measured over 200 epochs (2 x 64 and these configs, 3-4 members each):
# losses within 1e-5 absolute or 1e-6 relative, accuracy identical in every epoch; in two chaotic
# runs (gp 0.1 with lr 1e-3; an embedding) the differences grow after epoch 125-150 to a few percent
# of the values, with one epoch's accuracy differing. The tests run 10-40 epochs.
RTOL, ATOL = 1e-3, 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(*extra, **dotted):
    return resolve(overrides=SMALL + list(extra), **dotted)


def assert_same_curve(got: dict, want: dict, start: int = 0, rtol=RTOL, atol=ATOL, acc_flips=0.02):
    n = len(want["acc_mean"])
    assert len(got["acc_mean"]) == n
    for m in LOSSES + ("avg_acc",):
        a, b = torch.tensor(got[m][start:], dtype=torch.float64), torch.tensor(want[m][start:], dtype=torch.float64)
        assert torch.allclose(a, b, rtol=rtol, atol=atol), (m, (a - b).abs().max().item())
    assert got["nonfinite"] == want["nonfinite"]
    differ = sum(x != y for x, y in zip(got["acc_mean"][start:], want["acc_mean"][start:]))
    assert differ <= acc_flips * (n - start), f"{differ} of {n - start} epochs differ in accuracy"


def solo(cfg, epochs):
    """A solo study's curve over its first ``epochs`` epochs."""
    curve = Curve()
    Study(cfg).run(epochs=epochs, callback=curve.add)
    return curve


class Curves(dict):
    """The members' curves, from what the population's steps return (a run keeps none of its own)."""

    def __init__(self, pop):
        super().__init__()
        self.pop = pop

    def step(self, member_ids=None):
        out = self.pop.step(member_ids)
        for m, metrics in out.items():
            self.setdefault(m, Curve()).add(metrics)
        return out


CONFIGS = {
    "plain": [],
    "mix": ["disc.iters=3", "arch.lat_size=5", "disc.gp=1e-2", "disc.lr=3e-3"],
    "embed_grad": ["ext=[grad]", "disc.hid_num=[2,2]", "disc.hid_size=[8,16]", "library.iter_sample=true"],
    "stack_bce": ["ext=[input,grad]", "ext_type=stack", "disc.loss_fun=bce", "disc.betas=[0.5,0.9]", "disc.wd=0"],
}
MIX = {  # members of one shape that differ in everything else
    "a": ["seed=1"],
    "b": ["seed=2", "disc.iters=2", "arch.lat_size=6", "disc.gp=0.1", "disc.lr=1e-3", "disc.wd=0"],
    "c": ["seed=3", "disc.loss_fun=bce", "disc.betas=[0.5,0.99]", "arch.lat_size=1"],
    "d": ["seed=4", "generator.type=dsn", "library.shuffle=false", "disc.gp=0", "disc.iters=7"],
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_members_reproduce_their_solo_runs(name):
    epochs = 40
    extra = CONFIGS[name]
    cfgs = {f"s{seed}": small(*extra, seed=seed) for seed in (0, 1, 2)}
    pop = Population()
    curves = Curves(pop)
    for m, cfg in cfgs.items():
        pop.add(m, cfg)
    for _ in range(epochs):
        out = curves.step()
        assert set(out) == set(cfgs)
    for m, cfg in cfgs.items():
        assert pop.epoch(m) == epochs
        assert_same_curve(curves[m], solo(cfg, epochs))


def test_members_differing_in_every_per_member_setting():
    epochs = 30
    cfgs = {m: small(*extra) for m, extra in MIX.items()}
    pop = Population()
    curves = Curves(pop)
    for m, cfg in cfgs.items():
        pop.add(m, cfg)
    metrics = [curves.step() for _ in range(epochs)]
    for m, cfg in cfgs.items():
        assert_same_curve(curves[m], solo(cfg, epochs))
        last = metrics[-1][m]
        assert set(last) == {"epoch", *Study.metrics} and last["epoch"] == epochs


def test_step_takes_any_subset_and_members_join_and_leave():
    cfg_a, cfg_b, cfg_c = small(seed=1), small(seed=2, **{"disc.iters": 3}), small(seed=3, **{"arch.lat_size": 4})
    pop = Population()
    curves = Curves(pop)
    pop.add("a", cfg_a)
    for _ in range(5):
        curves.step()
    pop.add("b", cfg_b)                       # joins at a's epoch 5, fresh
    for _ in range(4):
        assert set(curves.step(["b"])) == {"b"}  # only b moves
    for _ in range(6):
        curves.step()
    assert (pop.epoch("a"), pop.epoch("b")) == (11, 10)
    state_a = pop.remove("a")                 # a leaves
    assert pop.members == ["b"] and len(pop) == 1 and state_a["epoch"] == 11
    pop.add("c", cfg_c)
    for _ in range(5):
        curves.step()
    pop.add("a", cfg_a, state=state_a)        # a comes back where it left
    for _ in range(4):
        curves.step()
    assert_same_curve(curves["a"], solo(cfg_a, 15))
    assert_same_curve(curves["b"], solo(cfg_b, 19))
    assert_same_curve(curves["c"], solo(cfg_c, 9))


@pytest.mark.parametrize("name", ["plain", "embed_grad"])
def test_a_solo_run_resumes_a_members_state(name, tmp_path):
    cfg = small(*CONFIGS[name], seed=5)
    pop = Population()
    curves = Curves(pop)
    pop.add("m", cfg)
    pop.add("other", small(*CONFIGS[name], seed=6))
    for _ in range(10):
        curves.step()
    Study(cfg).load_state_dict(pop.state_dict("m"))  # accepted as it is
    path = tmp_path / "checkpoint.pt"
    from tune_sd.engine import save_checkpoint

    save_checkpoint(pop.state_dict("m"), path)
    resumed = Study.from_checkpoint(path)
    assert resumed.epoch == 10
    curve = Curve()
    resumed.run(epochs=15, callback=curve.add)
    whole = solo(cfg, 25)
    assert_same_curve(curves["m"], {m: column[:10] for m, column in whole.columns.items()})
    assert_same_curve(curve, {m: column[10:] for m, column in whole.columns.items()})


@pytest.mark.parametrize("name", ["plain", "stack_bce"])
def test_a_population_takes_a_solo_runs_state(name):
    cfg = small(*CONFIGS[name], seed=7)
    first, first_curve = Study(cfg), Curve()
    first.run(epochs=10, callback=first_curve.add)
    pop = Population()
    curves = Curves(pop)
    pop.add("other", small(*CONFIGS[name], seed=8, **{"arch.lat_size": 2}))
    curves.step()
    pop.add("m", cfg, state=first.state_dict())
    assert pop.epoch("m") == 10
    for _ in range(15):
        curves.step()
    whole = solo(cfg, 25)
    assert first_curve["acc"] == whole["acc"][:10]
    assert_same_curve(curves["m"], {m: column[10:] for m, column in whole.columns.items()})
    rebuilt = pop.study("m")
    assert isinstance(rebuilt, Study) and rebuilt.epoch == 25


def test_done_follows_the_epochs_of_each_member():
    pop = Population()
    curves = Curves(pop)
    pop.add("short", small(epochs=3))
    pop.add("long", small(epochs=5, seed=1))
    steps = 0
    while True:
        out = curves.step()
        if not out:
            break
        steps += 1
    assert steps == 5 and pop.done("short") and pop.done("long")
    assert (pop.epoch("short"), pop.epoch("long")) == (3, 5)


def test_another_shape_is_refused_with_the_key_that_differs():
    pop = Population()
    Curves(pop)
    pop.add("a", small())
    with pytest.raises(ConfigError, match="disc.hid_size"):
        pop.add("b", small(**{"disc.hid_size": 32}))
    with pytest.raises(ConfigError, match="already"):
        pop.add("a", small())
    with pytest.raises(StudyError, match="no member"):
        pop.epoch("zz")
    assert shape_key(small(seed=3, **{"disc.lr": 1})) == shape_key(small())
    assert shape_key(small(ext=["grad"])) != shape_key(small())


def test_a_non_finite_member_reports_an_error_and_the_others_go_on(tmp_path):
    lib = tmp_path / "overflow.lib"
    lib.write_text("np.exp(1000*N0*X10[:,0])\n")
    cfg_ok = small(seed=1)
    pop = Population()
    curves = Curves(pop)
    pop.add("bad", small(**{"library.path": str(lib)}))
    pop.add("ok", cfg_ok)
    errors = 0
    for _ in range(20):
        out = curves.step()
        if "error" in out["bad"]:
            errors += 1
            assert "non-finite" in out["bad"]["error"]
        assert "error" not in out["ok"]
    assert errors > 0
    assert_same_curve(curves["ok"], solo(cfg_ok, 20))


def test_pack_size_follows_the_measured_critic_costs():
    plain = ["disc.hid_num=2", "disc.hid_size=64"]
    assert pack_size(resolve(overrides=plain + ["epochs=3000"])) == 16   # plain 2 x 64
    assert pack_size(resolve(overrides=plain + ["epochs=1000"])) == 1    # ... a short trial gains less than it costs
    assert pack_size(resolve(overrides=["epochs=100000"])) == 4   # 6 x 128 in a long trial
    assert pack_size(resolve(overrides=["epochs=1000"])) == 1     # ... a short one gains less than it costs
    embed = resolve(overrides=["ext=[grad]", "disc.hid_num=[2,4]", "disc.hid_size=[64,512]"])
    assert pack_size(embed) == 1          # a CPU core is compute-bound: packing loses there
    assert pack_size(embed, "cuda") > 1 and pack_size(resolve(), "cuda") > 1


def test_epoch_cost_orders_the_trend_critics_as_they_ran():
    """The estimate the progress line's time left costs a critic by before it has run (ms of one CPU
    thread; benchmarks/epoch_cost.py measures it): the 8 x 512 critics and t3b (8 x 256, 10 steps) cost
    10-25 times the small ones; t3c (6 x 128, k = 10, one step) is among the cheapest; a population of
    four costs more than one member and less than four alone for a small critic, about four for a large one."""
    from tune_sd.engine.population import epoch_cost

    def critic(lat, gp, num, size, iters):
        return resolve(overrides=[f"arch.lat_size={lat}", f"disc.gp={gp}", f"disc.hid_num={num}",
                                  f"disc.hid_size={size}", f"disc.iters={iters}"])

    small = {"t1a": critic(3, 1e-4, 2, 64, 5), "t4b": critic(1, 0, 2, 64, 5), "t3c": critic(10, 1e-6, 6, 128, 1),
             "t4c": critic(3, 0, 4, 128, 3), "t2b": critic(1, 1e-4, 4, 256, 1)}
    large = {"t3b": critic(3, 1e-6, 8, 256, 10), "t3d": critic(5, 1e-5, 8, 512, 5), "t4a": critic(3, 0, 8, 512, 5),
             "t4e": critic(1, 1e-6, 8, 512, 3)}
    assert min(map(epoch_cost, large.values())) > 8 * max(map(epoch_cost, small.values()))
    assert epoch_cost(small["t3c"]) < 1.5 * min(map(epoch_cost, small.values()))
    assert epoch_cost(small["t1a"]) < epoch_cost(small["t1a"], 4) < 2.5 * epoch_cost(small["t1a"])
    assert 3.5 < epoch_cost(large["t3d"], 4) / epoch_cost(large["t3d"]) < 4


@pytest.mark.parametrize("fused", [True, "gpu", False])
def test_stacked_adam_matches_torch_fused_adam_per_member(fused, monkeypatch):
    """Per-member lr, wd, betas and step counts (one member joins late, one skips steps), on each of the
    ways the stacked Adam runs: runs of rows (a CPU), rows per group (a GPU with few groups) and
    broadcast (a GPU with many)."""
    from tune_sd.engine import stacked as pm

    monkeypatch.setattr(pm, "FUSED_GROUPS", 16 if fused else 0)
    if fused == "gpu":  # the way a GPU takes it, which keeps the step counts on the device
        monkeypatch.setattr(pm, "_reads_steps", lambda device: False)
    if not fused:  # the broadcast path is the one a GPU takes with many groups: force it here
        monkeypatch.setattr(pm, "_adam", _broadcast_only(pm))
    shapes = [(37, 8), (8,), (1, 8), (1,)]
    hyper = [(1e-3, 1e-4, 0.9, 0.999), (3e-3, 0.0, 0.5, 0.9), (1e-2, 1e-2, 0.3, 0.99)]
    gen = torch.Generator().manual_seed(0)
    solo = [[torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes] for _ in hyper]
    opts = [torch.optim.Adam(ps, lr=lr, weight_decay=wd, betas=(b1, b2), fused=True)
            for ps, (lr, wd, b1, b2) in zip(solo, hyper)]
    stack = pm._Stack(0, "cpu")
    for row, (ps, h) in enumerate(zip(solo, hyper)):
        stack.insert(row, [p.detach() for p in ps], [torch.zeros(s) for s in shapes],
                     [torch.zeros(s) for s in shapes], 0.0, [*h, 1e-8])
    for it in range(40):
        n = 3 if it % 4 else 2  # row 2 skips every fourth step
        grads = [torch.randn((3,) + stack.params[j].shape[1:], generator=gen) for j in range(len(shapes))]
        pm._adam(stack, [g[:n] for g in grads], n)
        for r in range(n):
            for j, p in enumerate(solo[r]):
                p.grad = (grads[j][r].t() if j % 2 == 0 else grads[j][r].reshape(-1)).contiguous()
            opts[r].step()
    for r in range(3):
        params, m, v, step = stack.member(r)
        assert step == opts[r].state[solo[r][0]]["step"].item()
        for p, got in zip(solo[r], params):
            if fused:
                assert torch.equal(p.detach(), got)
            else:
                assert torch.allclose(p.detach(), got, rtol=1e-6, atol=1e-7)


def _broadcast_only(pm):
    def adam(stack, grads, n):
        with torch.no_grad():
            stack.step[:n] += 1
            pm._broadcast_adam(stack, grads, n)
    return adam


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_members_reproduce_their_solo_runs_on_a_gpu():
    cfgs = {m: small(*extra) for m, extra in MIX.items()}
    pop = Population("cuda")
    curves = Curves(pop)
    for m, cfg in cfgs.items():
        pop.add(m, cfg)
    for _ in range(20):
        curves.step()
    for m, cfg in cfgs.items():
        want = Curve()
        Study(cfg, device="cuda").run(epochs=20, callback=want.add)
        assert_same_curve(curves[m], want)
    resumed = Study.from_state(pop.state_dict("a"), device="cuda")
    assert resumed.epoch == 20
    resumed.step()


@pytest.mark.parametrize("extra", [["disc.hid_num=0"], ["ext=[input]", "disc.hid_num=[0,1]", "disc.hid_size=[4,8]"]])
def test_critics_without_hidden_layers(extra):
    cfgs = {f"s{seed}": small(*extra, seed=seed, **{"arch.lat_size": 2 + seed}) for seed in (0, 1)}
    pop = Population()
    curves = Curves(pop)
    for m, cfg in cfgs.items():
        pop.add(m, cfg)
    for _ in range(10):
        curves.step()
    for m, cfg in cfgs.items():
        assert_same_curve(curves[m], solo(cfg, 10))


def test_members_share_generators_and_libraries_of_equal_settings():
    cfgs = {"g1": small("generator.type=gp", seed=1), "g2": small("generator.type=gp", "disc.lr=1e-3", seed=2),
            "m": small(seed=3)}
    pop = Population()
    curves = Curves(pop)
    for m, cfg in cfgs.items():
        pop.add(m, cfg)
    studies = {m: pop._members[m].study for m in cfgs}
    assert studies["g1"].generator is studies["g2"].generator is not studies["m"].generator
    assert studies["g1"].library is studies["m"].library
    for _ in range(10):
        curves.step()
    for m, cfg in cfgs.items():
        assert_same_curve(curves[m], solo(cfg, 10))


@pytest.mark.parametrize("extra", [[], ["disc.hid_num=0"], ["disc.hid_num=1"], ["ext=[input,grad]", "ext_type=stack"]])
def test_the_written_out_backward_equals_autograd(extra):
    """Plain critics step through a hand-written backward pass; autograd (which the embedding critics
    keep) must give the same scores, losses and gradients, for members with padding, BCE, no penalty."""
    from tune_sd.engine.epoch import Batch
    from tune_sd.engine.stacked import _step_autograd, _step_mlp

    pop = Population()

    curves = Curves(pop)
    for m, over in MIX.items():
        pop.add(m, small(*extra, *over))
    for _ in range(3):
        curves.step()
    batch = Batch.draw([pop._members[r].study for r in pop._rows])
    n = batch.active[0]
    args = (batch.real_at(0)[:n], batch.fake[:n], batch.eps[0, :n], batch, n, batch.mask[:n], batch.k_t[:n])
    want = _step_autograd([p[:n].detach().requires_grad_() for p in pop._stack.params], 0, *args)
    with torch.no_grad():
        got = _step_mlp([p[:n] for p in pop._stack.params], *args)
    for a, b in zip(got[:5], want[:5]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), (a - b).abs().max()
    for a, b in zip(got[5], want[5]):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-8), (a - b).abs().max()


def test_a_population_process_keeps_freed_memory():
    import platform

    from tune_sd.engine.allocator import keep_freed_memory

    assert keep_freed_memory() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


@pytest.mark.parametrize("subset", [False, True])
def test_a_non_finite_member_goes_back_to_the_start_of_its_epoch(tmp_path, subset):
    """As a solo study rolls back: the failing member's state (weights, Adam moments and steps, random
    stream) is that of its last whole epoch, whether the pass stepped every member or some."""
    lib = tmp_path / "overflow.lib"
    lib.write_text("np.exp(1000*N0*X10[:,0])\n")
    pop = Population()
    curves = Curves(pop)
    pop.add("bad", small(**{"library.path": str(lib)}))
    pop.add("ok", small(seed=1))
    pop.add("idle", small(seed=2))
    ids = ["bad", "ok"] if subset else None
    for _ in range(20):
        before = pop.state_dict("bad")
        out = curves.step(ids)
        if "error" in out["bad"]:
            break
    else:
        pytest.fail("the overflowing library never made a loss non-finite")
    after = pop.state_dict("bad")
    assert after["epoch"] == before["epoch"]
    assert torch.equal(after["rng"], before["rng"])
    for name, w in after["critic"].items():
        assert torch.isfinite(w).all() and torch.equal(w, before["critic"][name]), name
    for i, s in after["optimizer"]["state"].items():
        for k in s:
            assert torch.equal(s[k], before["optimizer"]["state"][i][k]), (i, k)
    # the other member went on, and a solo study resumes the failed one's last whole epoch
    assert "error" not in out["ok"] and pop.epoch("ok") == after["epoch"] + 1
    resumed = Study.from_state(after)
    assert resumed.epoch == after["epoch"]
