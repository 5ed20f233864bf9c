"""Figures for TensorBoard: real (library) vs fake (generator) samples on the input points."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def samples_figure(study, k: int = 5):
    """The notebook's scatter of real vs fake functions over the first input feature.

    Samples come from a generator of their own (seeded by the run's seed and epoch), so drawing a
    figure never changes the run's own random stream: a run with figures is the run without.
    """
    rng = torch.Generator(study.device).manual_seed(study.cfg.seed * 1_000_003 + study.epoch)
    with torch.no_grad():
        fake, fake_in = study.sample_fake(k, rng)
        real, real_in = study.sample_real(1, k, rng)
        score_fake = study.critic(fake_in).cpu()
        score_real = study.critic(real_in[0]).cpu()
    x = study.X[:, 0].cpu()
    n = x.numel()
    xs = x.repeat(k)  # k functions as one scatter per kind: a figure is drawn every few reports
    fig = plt.figure(figsize=(6, 4), dpi=80)
    ax = fig.add_axes((0.1, 0.12, 0.86, 0.78))  # fixed margins: tight_layout would cost a second render
    # plain markers draw faster than a scatter's per-point paths
    ax.plot(xs, real[0].cpu().reshape(k * n), "o", ms=1.5, mew=0, color="C0", alpha=0.6, label="library (real)")
    ax.plot(xs, fake.cpu().reshape(k * n), "o", ms=1.5, mew=0, color="C1", alpha=0.6, label="generator (fake)")
    acc = ((score_real > 0).sum() + (score_fake <= 0).sum()).item() / (2 * k)
    ax.set_title(f"epoch {study.epoch}: critic right on {acc:.0%} of these")
    ax.set_xlabel(f"{study.cfg.data.var}[:, {study.cfg.data.features[0]}]")
    ax.legend(loc="best", markerscale=4)
    return fig


def latents_figure(run):
    """A regularisation run's latent features on the validation points beside the true latents, over
    the first input feature; each curve standardised, as latent recovery ignores scale and sign."""
    with torch.no_grad():
        _, h = run.model(run.X_val)
    x = run.X_val[:, 0].cpu()
    order = torch.argsort(x)
    x = x[order]

    def z(v):
        v = v[order].cpu()
        return (v - v.mean()) / (v.std() + 1e-12)

    fig = plt.figure(figsize=(6, 4), dpi=80)
    ax = fig.add_axes((0.1, 0.12, 0.86, 0.78))
    for i in range(run.latents_val.shape[0]):
        ax.plot(x, z(run.latents_val[i]), color="0.3", lw=2, ls="--", label="true" if i == 0 else None)
    for j in range(h.shape[1]):
        ax.plot(x, z(h[:, j]), lw=1, label=f"latent {j}")
    last = run.last["min_corr"]  # NaN before the first epoch
    ax.set_title(f"epoch {run.epoch}: min_corr {last:.3f} (standardised)")
    ax.set_xlabel("x[:, 0]")
    ax.legend(loc="best", fontsize=7)
    return fig
