"""Step 7: a trained SD regularises a network. The run reads like the plan:

    prediction, latents = model(x)                   inputs -> latent (mlp | dsn) -> output (mlp)
    loss = MSE(prediction, y) + sd * mean(-critic(latent features, with the critic's ext data))

The critic comes from an SD study's checkpoint (``critic.path``) and stays fixed, or, with
``critic.iters > 0``, keeps training against the latent features (adversarial): its steps are a
study's (:func:`~tune_sd.engine.stacked._fit` on a stack of one critic). Each epoch is one
full-batch step on the train split (the critic sees every latent feature on all train points, as it
saw library functions). Reported: ``mse`` (train), ``val_mse``, ``reg`` (the term ``sd`` multiplies),
``critic_score`` (the critic's mean raw score of the latent features), latent recovery on the
validation points (``min_corr``, ``mean_corr``), ``loss`` and ``critic_acc`` (adversarial only).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tune_sd.errors import ConfigError, StudyError

from .checkpoint import load_checkpoint
from .config import Config
from .critic import Critic, critic_input
from .epoch import Batch, Steps
from .library import library_path, load_library
from .loop import RunLoop
from .model import LatentModel
from .stacked import _fit, _Stack, hyper_of
from .study import NonFiniteLossError, Study, _seeds
from .target import target_from_config

REG_METRICS = ("loss", "mse", "val_mse", "reg", "critic_score", "min_corr", "mean_corr", "critic_acc", "time_s")
# /2: the last epoch's metrics (no whole history); /1 (its whole history) is read as well
FORMAT = "tune_sd.regularize/2"
READS = ("tune_sd.regularize/1",)
CRITIC_FILES = ("study.pt", "checkpoint.pt")


def latent_recovery(true: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """For each true latent [k, n], the best absolute Pearson correlation with any learned latent
    [m, n] over the n points; a constant learned latent correlates with nothing (0)."""
    t = true - true.mean(1, keepdim=True)
    lrn = learned - learned.mean(1, keepdim=True)
    t = t / t.norm(dim=1, keepdim=True)
    lrn = lrn / lrn.norm(dim=1, keepdim=True)
    corr = torch.nan_to_num((t @ lrn.t()).abs(), nan=0.0).clamp(max=1.0)
    return corr.max(1).values


def critic_checkpoint(path: str | Path) -> Path:
    """The critic's checkpoint file from a file, a Tune checkpoint folder or a trial folder (its
    newest checkpoint)."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        for name in CRITIC_FILES:
            if (p / name).is_file():
                return p / name
        cks = sorted((c for c in p.glob("checkpoint_*") if c.is_dir()), key=lambda c: c.name)
        for ck in reversed(cks):
            for name in CRITIC_FILES:
                if (ck / name).is_file():
                    return ck / name
        raise ConfigError(f"critic.path: {p} holds no critic checkpoint (study.pt)")
    raise ConfigError(f"critic.path: {p}: no such file or folder")


def critic_points(state: dict, cfg: Config) -> int:
    """The number of points the saved critic takes, read from its first layer's width."""
    weight = state["critic"].get("main.0.weight")
    if weight is None:
        raise StudyError("the critic checkpoint has no main.0.weight")
    width = int(weight.shape[1])
    stacked = cfg.ext and cfg.ext_type == "stack"
    return width // (1 + cfg.derived_ext_size) if stacked else width


class Regularization(RunLoop):
    """One regularisation run; the same interface as :class:`~tune_sd.engine.study.Study`: ``step()``,
    ``run()``, ``done``, ``last_metrics()``, ``state_dict()`` / ``load_state_dict()`` (bit-exact resume);
    :func:`~tune_sd.engine.runs.run_from_checkpoint` rebuilds one from its checkpoint."""

    format = FORMAT
    reads = READS
    metrics = REG_METRICS

    def __init__(self, config: Config | dict | None = None, device: str | torch.device = "cpu"):
        self.cfg = cfg = config if isinstance(config, Config) else Config.from_dict(config)
        self.device = torch.device(device)
        if cfg.arch.hid_type[1] != "mlp":
            raise ConfigError(f"arch.hid_type: {cfg.arch.hid_type}: the output part is an MLP ([MLP, MLP] or [DSN, MLP])")
        if cfg.arch.out_size != 1:
            raise ConfigError(f"arch.out_size: {cfg.arch.out_size} but the target y is one number per point; set 1")
        self.target = target_from_config(cfg)
        dev = self.device
        X, y, _ = self.target.part("train")
        Xv, yv, Gv = self.target.part("val")
        if Xv.shape[0] < 2:  # latent recovery needs points to correlate over
            raise ConfigError(f"the target's val split has {Xv.shape[0]} point(s); give it at least 2 "
                              "(data.split_sizes)")
        self.X, self.y = X.to(dev), y.to(dev)
        self.X_val, self.y_val, self.latents_val = Xv.to(dev), yv.to(dev), Gv.to(dev)
        self.n_points, self.n_features = self.X.shape
        model_seed, sample_seed = _seeds(cfg.seed, 2)
        self.model = LatentModel.from_config(cfg, self.n_features, torch.Generator().manual_seed(model_seed)).to(dev)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.wd)
        self.rng = torch.Generator(dev).manual_seed(sample_seed)
        self.critic: Critic | None = None
        self.library = None
        self.ext: list[str] = []
        self.ext_type = "embed"
        if cfg.critic.path is not None:
            self._load_critic(cfg.critic.path)
        elif cfg.sd > 0 or cfg.critic.iters > 0:
            raise ConfigError(f"sd: {cfg.sd} (critic.iters {cfg.critic.iters}) needs a trained critic: set critic.path, "
                              "or pass --critic-from SWEEP")
        self.epoch = 0
        self.elapsed = 0.0
        self.changes: list[dict] = []  # settings changed on resume: {epoch, key, from, to}
        self._start_keeping()

    # ------------------------------------------------------------------ the critic
    def _load_critic(self, path) -> None:
        file = critic_checkpoint(path)
        state = load_checkpoint(file, map_location="cpu")
        if state.get("format") not in (Study.format, *Study.reads):
            raise ConfigError(f"critic.path: {file} is not an SD study's checkpoint")
        ccfg = Config.from_saved(state["config"], where=f"{file}: ")
        n = critic_points(state, ccfg)
        if n != self.n_points:
            raise ConfigError(
                f"critic.path: the critic in {file} takes functions on {n} points, but the model's train split has "
                f"{self.n_points}; the points must match (the critic's study used data {ccfg.data.path or 'default'} "
                f"with split {ccfg.data.split} of sizes {ccfg.data.split_sizes})")
        self.ext, self.ext_type = list(ccfg.ext or []), ccfg.ext_type
        if self.ext and len(ccfg.data.features) != self.n_features:
            raise ConfigError(f"critic.path: the critic in {file} reads ext {self.ext} of {len(ccfg.data.features)} input "
                              f"feature(s), the model has {self.n_features}")
        # the critic's weights and Adam state, as a study keeps them (a stack of one row); the module
        # the regulariser calls is a view of it, whose weights need no gradient: the regulariser's
        # gradient reaches the latents only
        critic = Critic.from_config(ccfg, n, device=self.device, init=False)
        self._critic_names = [name for name, _ in critic.named_parameters()]
        self._critic_stack = _Stack.of(critic, hyper_of(ccfg.disc))
        try:
            self._critic_stack.load_row(0, self._critic_names, state["critic"], state["optimizer"])
        except (KeyError, ValueError) as e:
            raise StudyError(f"{file}: the critic does not fit its config ({type(e).__name__}: {e})") from None
        if self.cfg.critic.iters:
            self.library = load_library(library_path(ccfg.library.path), var=ccfg.data.var, n_features=self.n_features)
        self.critic = Critic.view(ccfg, n, self._critic_stack)
        self.critic_file, self.critic_cfg = str(file), ccfg

    def _critic_parts(self, h: torch.Tensor, X: torch.Tensor, create_graph: bool) -> list[torch.Tensor]:
        parts = []
        for kind in self.ext:
            parts.append(self.X if kind == "input" else self._latent_grads(h, X, create_graph))
        return parts

    @staticmethod
    def _latent_grads(h: torch.Tensor, X: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """d latent_j(x_i) / d x_i for every unit j and point i: [lat, n, d], one batched backward
        (a point's latents depend on that point's input only)."""
        lat = h.shape[1]
        eye = torch.eye(lat, device=h.device, dtype=h.dtype).unsqueeze(1).expand(lat, h.shape[0], lat)
        (J,) = torch.autograd.grad(h, X, grad_outputs=eye, is_grads_batched=True, create_graph=create_graph)
        return J

    def critic_scores(self, h: torch.Tensor, X: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
        """The critic's raw scores [lat] of the latent features h [n, lat] on the train points X."""
        return self.critic(critic_input(h.t(), self._critic_parts(h, X, create_graph), self.ext_type))

    # ------------------------------------------------------------------ the loop
    @torch.enable_grad()  # stepped by hand too: autograd on whatever the thread was left in
    def step(self) -> dict:
        """One epoch: a full-batch step of the network on MSE + sd x critic term; then, adversarial
        only, ``critic.iters`` critic steps on library functions vs the latent features."""
        start = time.perf_counter()
        cfg, model = self.cfg, self.model
        needs_grad = "grad" in self.ext
        X = self.X.detach().requires_grad_(needs_grad)
        pred, h = model(X)
        mse = F.mse_loss(pred.squeeze(-1), self.y)
        nan = torch.tensor(float("nan"))
        parts: list[torch.Tensor] = []
        if self.critic is not None:
            parts = self._critic_parts(h, X, create_graph=True)
            score = self.critic(critic_input(h.t(), parts, self.ext_type))
            s = torch.sigmoid(score) if cfg.sigmoid else score
            reg = -s.mean()
            loss = mse + cfg.sd * reg if cfg.sd else mse
        else:
            score, reg, loss = nan, nan, mse
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"epoch {self.epoch + 1}: the loss became non-finite (mse={mse.item()}, "
                                     f"reg={reg.item()}); try a lower lr or sd")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        critic_acc = float("nan")
        if self.critic is not None and cfg.critic.iters:
            critic_acc = self._fit_critic(h.detach(), [p.detach() for p in parts])
        with torch.no_grad():
            val_pred, h_val = model(self.X_val)
            val_mse = F.mse_loss(val_pred.squeeze(-1), self.y_val)
            best = latent_recovery(self.latents_val, h_val.t())
        self.epoch += 1
        self.elapsed += time.perf_counter() - start
        numbers = torch.stack([loss.detach(), mse.detach(), val_mse, reg.detach(), score.detach().mean(),
                               best.min(), best.mean()]).tolist()
        metrics = dict(zip(("loss", "mse", "val_mse", "reg", "critic_score", "min_corr", "mean_corr"), numbers))
        metrics.update(critic_acc=critic_acc, time_s=self.elapsed)
        self._keep(metrics)
        return {"epoch": self.epoch, **metrics}

    def _fit_critic(self, h: torch.Tensor, fake_parts: list[torch.Tensor]) -> float:
        """``critic.iters`` steps on fresh library functions (real) vs this epoch's latent features
        (fake), the critic steps a study takes (its losses, penalty and Adam)."""
        k = h.shape[1]
        real, grads = self.library.sample(k, self.X, self.rng, with_grad="grad" in self.ext,
                                          shuffle=self.critic_cfg.library.shuffle)
        real_parts = [self.X if kind == "input" else grads.unsqueeze(0) for kind in self.ext]
        real_in = critic_input(real.unsqueeze(0), real_parts, self.ext_type)
        fake_in = critic_input(h.t(), fake_parts, self.ext_type)
        batch = Batch([Steps.of(self.critic_cfg, k=k, iters=self.cfg.critic.iters)], [fake_in], [real_in], [self.rng])
        accs = _fit(self._critic_stack, batch)[0][0]
        return sum(accs) / len(accs)

    # ------------------------------------------------------------------ state
    def _own_state(self) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.critic is not None and self.cfg.critic.iters:
            state["critic"], state["critic_optimizer"] = self._critic_stack.row_state(0, self._critic_names)
        return state

    def _load_own_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "critic" in state and self.critic is not None:
            self._critic_stack.load_row(0, self._critic_names, state["critic"], state["critic_optimizer"])

    def _loaded(self) -> None:
        # the config's learning rate and weight decay hold, not the ones the loaded optimizer kept
        # (they differ only where a resumed run changed them, see config.resume_changes)
        for group in self.optimizer.param_groups:
            group.update(lr=self.cfg.lr, weight_decay=self.cfg.wd)
