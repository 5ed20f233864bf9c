"""Draws of a distribution block with numpy alone: value for value what Ray Tune's domain for the block
(``tune_sd.tune.ray_space``) draws from the same random state, so that a space is checked without
importing Ray. W&B's quantized ranges are snapped to multiples of q first (see :func:`blocks._bounds`),
as the Ray domain is built from them.
"""

from __future__ import annotations

import math

import numpy as np

from .blocks import _bounds


def draws(block: dict, size: int, rng: np.random.Generator) -> list:
    """``size`` values of a distribution block: ints for integer domains, floats otherwise."""
    dist, q = block["distribution"], block.get("q")
    if dist == "int_uniform":
        return _cast(rng.integers(block["min"], block["max"] + 1, size=size), int)  # W&B's max is inclusive
    if dist == "uniform":
        return _cast(rng.uniform(block["min"], block["max"], size=size), float)
    if dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
        values = rng.normal(block["mu"], block["sigma"], size=size)
        values = np.exp(values) if dist.endswith("log_normal") else values
        return _cast(values, float) if q is None else _rounded(values, q)
    lo, hi = _bounds(block)
    logarithmic = dist != "q_uniform"
    if isinstance(q, int):  # an integer domain: a draw of the index k of k * q
        if q == 1:
            return _cast(_integers(rng, lo, hi + 1, size, logarithmic), int)
        first, last = int(_index(lo, q, np.ceil)), int(_index(hi, q, np.floor))
        return _cast(_integers(rng, first, last + 1, size, logarithmic) * q, int)
    if q is not None:  # a float domain: a draw within the snapped range, rounded to a multiple of q
        lo, hi = _index(lo, q, np.ceil) * q, _index(hi, q, np.floor) * q
        values = np.exp(rng.uniform(np.log(lo), np.log(hi), size=size)) if logarithmic else rng.uniform(lo, hi, size=size)
        return _rounded(values, q)
    return _cast(np.exp(rng.uniform(np.log(lo), np.log(hi), size=size)), float)  # log-uniform


def _integers(rng: np.random.Generator, lo: int, hi: int, size: int, logarithmic: bool) -> np.ndarray:
    """Integers in [lo, hi): uniform, or log-uniform (the floor of a log-uniform float)."""
    if logarithmic:
        return np.floor(np.exp(rng.uniform(np.log(lo), np.log(hi), size=size))).astype(int)
    return rng.integers(lo, hi, size=size)


def _index(bound: float, q, rounding):
    """The index of ``bound`` among the multiples of q, rounded inwards (a bound within rounding error of a
    multiple is that multiple)."""
    scaled = bound / q
    nearest = round(scaled)
    return nearest if math.isclose(scaled, nearest) else rounding(scaled)


def _rounded(values: np.ndarray, q) -> list:
    return _cast(np.round(np.divide(values, q)) * q, float)


def _cast(values, kind) -> list:
    return [kind(v) for v in values]
