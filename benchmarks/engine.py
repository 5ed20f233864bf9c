"""Engine speed: the engine's epochs/s against a bare loop of only the critic's optimizer steps.

The bare loop runs the same critic network (same shapes, iters, gradient penalty) on tensors made
once beforehand, with nothing else: no sampling, no extra information, no metrics, no bookkeeping.
The ratio engine time / bare time per epoch is what sampling, metrics and bookkeeping cost together,
less what the engine's critic steps save over autograd's (the engine writes the backward pass out for
critics without an embedding): the goal is <= 0.75 for the plain and big critics, <= 1.25 for the
others. One process, one thread; the time is the process's CPU time (``--clock wall`` for wall time),
which a busy shared machine disturbs less.

    python benchmarks/engine.py [--epochs 200] [--rounds 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tune_sd.engine import Study, resolve

CONFIGS = {
    "plain": ["arch.lat_size=3", "disc.hid_num=2", "disc.hid_size=64"],
    "big": ["arch.lat_size=5", "disc.hid_num=6", "disc.hid_size=128"],
    "embed_grad": ["arch.lat_size=3", "ext=[grad]", "ext_type=embed", "disc.hid_num=[2,4]", "disc.hid_size=[64,512]"],
    "stack_grad": ["arch.lat_size=3", "ext=[grad]", "ext_type=stack", "disc.hid_num=2", "disc.hid_size=64"],
}
COMMON = ["disc.iters=5", "disc.gp=1e-5", "epochs=1000000"]


def bare_loop(critic, real, fake, disc):
    """The critic's optimizer steps and nothing else, through autograd and torch's fused Adam (the loss
    as the notebook's SDNet.fit)."""
    opt = torch.optim.Adam(critic.parameters(), lr=disc.lr, weight_decay=disc.wd, betas=tuple(disc.betas), fused=True)
    iters, gp = disc.iters, disc.gp
    k = fake.shape[0]
    shape = (k,) + (1,) * (fake.dim() - 1)

    def epoch():
        for _ in range(iters):
            opt.zero_grad(set_to_none=True)
            loss = -critic(real).mean() + critic(fake).mean()
            eps = torch.rand(shape, device=fake.device)
            interp = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (g,) = torch.autograd.grad(critic(interp).sum(), interp, create_graph=True)
            loss = loss + gp * (g.flatten(1).norm(dim=1) - 1).pow(2).mean()
            loss.backward()
            opt.step()

    return epoch


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
GOALS = {"plain": 0.75, "big": 0.75}  # the others: 1.25


def timed(fn, epochs, device, clock=time.process_time) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = clock()
    for _ in range(epochs):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (clock() - start) / epochs


def measure(name, overrides, epochs, rounds, device, clock):
    study = Study(resolve(overrides=overrides + COMMON), device=device)
    # tensors of exactly the shapes the engine feeds, made once
    _, fake = study.sample_fake(study.cfg.arch.lat_size)
    _, real = study.sample_real(1, study.cfg.arch.lat_size)
    bare_critic = type(study.critic).from_config(study.cfg, study.n_points, device=device)
    bare = bare_loop(bare_critic, real[0].clone(), fake.clone(), study.cfg.disc)
    engine = study.step
    timed(engine, max(epochs // 10, 5), device, clock)
    timed(bare, max(epochs // 10, 5), device, clock)
    t_engine, t_bare = [], []
    for _ in range(rounds):  # interleaved, so that drifts of a noisy machine hit both alike
        t_engine.append(timed(engine, epochs, device, clock))
        t_bare.append(timed(bare, epochs, device, clock))
    te, tb = statistics.median(t_engine), statistics.median(t_bare)
    return {"config": name, "engine_ep_s": 1 / te, "bare_ep_s": 1 / tb, "ratio": te / tb}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=200, help="epochs per timed round (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median counts (default 5)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu",
                        help="cpu: the process's CPU time (default; one thread); wall: wall time")
    parser.add_argument("--only", nargs="*", choices=list(CONFIGS), help="configs to run (default all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = CLOCKS[args.clock] if device.type == "cpu" else time.perf_counter
    rows = [measure(n, CONFIGS[n], args.epochs, args.rounds, device, clock) for n in (args.only or CONFIGS)]
    print(f"device {device}, {args.threads} thread(s), {args.clock if device.type == 'cpu' else 'wall'} time, "
          f"700 points, iters 5, gp 1e-5, median of {args.rounds} rounds x {args.epochs} epochs")
    print(f"{'config':<12} {'engine ep/s':>12} {'bare ep/s':>12} {'ratio':>7} {'goal':>6}")
    for r in rows:
        goal = GOALS.get(r["config"], 1.25)
        mark = "ok" if r["ratio"] <= goal else "OVER"
        print(f"{r['config']:<12} {r['engine_ep_s']:>12.1f} {r['bare_ep_s']:>12.1f} {r['ratio']:>7.3f} "
              f"{goal:>6.2f}  {mark}")


if __name__ == "__main__":
    main()
