"""Generators of fake functions: ``mlp`` (untrained MLPs), ``dsn`` (untrained DSNs), ``gp`` (GP prior)."""

from __future__ import annotations

import torch

from ._base import Generator
from ._dsn import DSNGenerator
from ._gp import GPGenerator
from ._mlp import MLPGenerator

GENERATORS = {"mlp": MLPGenerator, "dsn": DSNGenerator, "gp": GPGenerator}


def _first(v):
    return v[0] if isinstance(v, list) else v


def make_generator(cfg, X: torch.Tensor) -> Generator:
    """The generator a config asks for (``generator.type``, else ``arch.hid_type[0]``), on points X."""
    kind = cfg.generator_type
    if kind == "mlp":
        return MLPGenerator(X, _first(cfg.arch.hid_num), _first(cfg.arch.hid_size), cfg.arch.lat_size)
    if kind == "dsn":
        return DSNGenerator(X, _first(cfg.arch.hid_num), _first(cfg.arch.hid_size))
    return GPGenerator(X, cfg.generator.length_scale, cfg.generator.variance, cfg.generator.jitter)


__all__ = ["Generator", "MLPGenerator", "DSNGenerator", "GPGenerator", "GENERATORS", "make_generator"]
