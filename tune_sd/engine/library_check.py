"""Checking a function library (``tune-sd lib check``): per line its value range, non-finite values,
and its written derivatives against autograd's, on the study's input points.

Lines are checked in blocks of many at once (one vectorised evaluation per block), on one torch
thread, with a progress line every few seconds on long libraries.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from tune_sd.engine.library import FunctionLibrary, load_library

__all__ = ["FunctionCheck", "LibraryCheck", "check_library", "format_check"]


@dataclass
class FunctionCheck:
    """What :func:`check_library` found for one line."""

    line: int
    text: str
    coeffs: str
    columns: list[int]
    vmin: float
    vmax: float
    nonfinite: int
    deriv_given: int
    deriv_max_abs_err: float | None
    deriv_ok: bool
    deriv_bad_cols: list[int] = field(default_factory=list)


@dataclass
class LibraryCheck:
    """What :func:`check_library` found for a library."""

    path: str
    functions: list[FunctionCheck]
    ok: bool
    problems: list[str]
    var: str = "X10"


CHECK_THREADS = 1  # torch threads of a check: its tensors are too small to gain from more (benchmarks/lib_check.py)
CHECK_CHUNK_BYTES = 8 * 1024 * 1024  # values of the lines of a block (a progress step), float64
PROGRESS_AFTER_S = 3.0  # a check that runs longer says how far it is, every few seconds


def check_library(
    path: str | os.PathLike[str],
    X: Tensor,
    var: str = "X10",
    n_samples: int = 256,
    seed: int = 0,
    rtol: float = 1e-3,
    atol: float = 1e-5,
    progress: Callable[[int, int], None] | None = None,
) -> LibraryCheck:
    """Evaluate every line of a library on ``X`` over ``n_samples`` coefficient draws.

    Reports each line's value range and non-finite count, and compares each given derivative
    column against autograd of the value (same draws, in float64; close as :func:`torch.isclose`
    with ``equal_nan``). Raises :class:`LibraryError` when the file itself is invalid.

    Each line's checks are a few fused passes over its values (one pass gives the range and tells
    whether any value is not finite; one more the derivative errors), with the full comparison only
    where those find something. Lines go in blocks of about ``CHECK_CHUNK_BYTES`` of values.
    ``progress(done, total)`` is called every few seconds (after the block that passes them).
    """
    X = torch.as_tensor(X).detach().to(device="cpu", dtype=torch.float64)
    if X.dim() == 1:
        X = X.unsqueeze(1)
    if X.dim() != 2:
        raise ValueError(f"X must be a 2-D tensor [n_points, n_features], got shape {tuple(X.shape)}")
    name = os.fspath(path)
    lib = load_library(name, var=var, n_features=X.shape[1])
    threads = torch.get_num_threads()
    torch.set_num_threads(CHECK_THREADS)
    try:
        return _check(lib, name, X, var, n_samples, seed, rtol, atol, progress)
    finally:
        torch.set_num_threads(threads)


def _check(lib: FunctionLibrary, name: str, X: Tensor, var: str, n_samples: int, seed: int, rtol: float,
           atol: float, progress: Callable[[int, int], None] | None) -> LibraryCheck:
    n_points, d = X.shape
    gen = torch.Generator().manual_seed(seed)
    xt = X.t()
    x_cols = {c: xt[c].unsqueeze(0) for c in range(d)}
    shape = (n_samples, n_points)
    per_line = max(1, n_samples * n_points * 8)
    block = max(1, min(len(lib.functions), CHECK_CHUNK_BYTES // per_line))
    results: list[FunctionCheck] = []
    problems: list[str] = []
    last = time.monotonic()
    total = len(lib.functions)
    for first in range(0, total, block):
        fns = lib.functions[first:first + block]
        by_line: dict[int, list[tuple[int, float, bool]]] = {}  # line in the block -> (column, err, differs)
        nonfinite: list[int] = []
        vmin: list[float] = []
        vmax: list[float] = []
        for i, fn in enumerate(fns):
            n = torch.randn((fn.coeffs_n, n_samples, 1), generator=gen, dtype=torch.float64)
            u = torch.rand((fn.coeffs_u, n_samples, 1), generator=gen, dtype=torch.float64)
            used = sorted(fn.value.columns)
            with torch.enable_grad():
                leaves = [xt[c].expand(shape).requires_grad_() for c in used]
                local = dict(x_cols)
                local.update(zip(used, leaves))
                v = fn.value(local, n, u, shape)
                if leaves and v.requires_grad and any(e is not None for e in fn.derivs):
                    grads = torch.autograd.grad(v.sum(), leaves, allow_unused=True)
                else:
                    grads = (None,) * len(leaves)
            auto = dict(zip(used, grads))
            with torch.no_grad():
                nonfinite_i, vmin_i, vmax_i = _ranges(v.detach().unsqueeze(0))
                nonfinite.append(nonfinite_i[0])
                vmin.append(vmin_i[0])
                vmax.append(vmax_i[0])
                for c, expr in enumerate(fn.derivs):
                    if expr is None:
                        continue
                    a = auto.get(c)
                    if a is None:
                        a = torch.zeros((), dtype=torch.float64).expand(shape)
                    (err,), (is_bad,) = _compare(expr(x_cols, n, u, shape).expand(shape).unsqueeze(0),
                                                 a.unsqueeze(0), rtol, atol)
                    by_line.setdefault(i, []).append((c, err, is_bad))
        for i, fn in enumerate(fns):
            size = n_samples * n_points
            if nonfinite[i]:
                problems.append(
                    f"line {fn.line}: {nonfinite[i]} of {size} values are not finite (NaN or inf) on the data"
                )
            lo, hi = (vmin[i], vmax[i]) if nonfinite[i] < size else (math.nan, math.nan)
            cols = by_line.get(i, [])
            bad_cols = [c for c, _, is_bad in cols if is_bad]
            for c, err, is_bad in cols:
                if is_bad:
                    problems.append(
                        f"line {fn.line}: derivative column {c + 1} (d/d{var}[:,{c}]) differs "
                        f"from autograd by up to {err:.3g}"
                    )
            results.append(FunctionCheck(
                line=fn.line, text=fn.text, coeffs=" ".join(fn.coeff_names), columns=sorted(fn.columns),
                vmin=lo, vmax=hi, nonfinite=nonfinite[i], deriv_given=len(cols),
                deriv_max_abs_err=max((err for _, err, _ in cols), default=None),
                deriv_ok=not bad_cols, deriv_bad_cols=bad_cols,
            ))
        if progress is not None and time.monotonic() - last >= PROGRESS_AFTER_S:
            last = time.monotonic()
            progress(len(results), total)
    return LibraryCheck(path=name, functions=results, ok=not problems, problems=problems, var=var)


def _ranges(v: Tensor) -> tuple[list[int], list[float], list[float]]:
    """Per line of ``v`` (``[L, S, N]``): the number of values that are not finite, and the smallest
    and largest finite value. Lines whose smallest and largest values are finite (amin and amax
    propagate NaN) hold no others and take no further pass."""
    flat = v.reshape(v.shape[0], -1)
    lo, hi = flat.aminmax(dim=1)  # one pass
    nonfinite = [0] * v.shape[0]
    for i in (~(torch.isfinite(lo) & torch.isfinite(hi))).nonzero().flatten().tolist():
        finite = torch.isfinite(flat[i])
        nonfinite[i] = int(flat.shape[1] - finite.sum())
        lo[i] = torch.where(finite, flat[i], math.inf).min()
        hi[i] = torch.where(finite, flat[i], -math.inf).max()
    return nonfinite, lo.tolist(), hi.tolist()


def _compare(g: Tensor, a: Tensor, rtol: float, atol: float) -> tuple[list[float], list[bool]]:
    """Per pair of given and autograd columns (``[P, S, N]`` each): the largest absolute difference
    where both are finite (inf where they differ only where one is not), and whether they differ,
    as ``torch.isclose(g, a, rtol, atol, equal_nan=True)`` decides. Pairs whose differences are all
    finite and within ``atol`` (the usual case) take one pass; the others are compared in full."""
    if not g.shape[0]:
        return [], []
    diff = (g - a).abs_().reshape(g.shape[0], -1)
    err = diff.amax(dim=1)  # NaN where any difference is NaN
    errs, bad = err.tolist(), [False] * g.shape[0]
    for i in (~(err <= atol)).nonzero().flatten().tolist():
        gi, ai, di = g[i].reshape(-1), a[i].reshape(-1), diff[i]
        both = torch.isfinite(gi) & torch.isfinite(ai)
        close = (torch.isfinite(di) & (di <= atol + rtol * ai.abs())) | (gi == ai) | (gi.isnan() & ai.isnan())
        e = float(torch.where(both, di, 0.0).max())
        if not bool(close.all()):
            bad[i] = True
            if bool((close | ~both).all()):  # they differ only where one side is not finite
                e = math.inf
        errs[i] = e
    return errs, bad


def format_check(check: LibraryCheck) -> str:
    """One line per function, then ``OK: N functions`` or the problems."""
    lines = []
    width = 44
    for f in check.functions:
        text = f.text if len(f.text) <= width else f.text[: width - 3] + "..."
        if f.deriv_given == 0:
            deriv = "deriv autograd"
        elif f.deriv_ok:
            deriv = "deriv OK"
        else:
            deriv = "deriv MISMATCH " + ", ".join(
                f"col {c + 1} (d/d{check.var}[:,{c}])" for c in f.deriv_bad_cols
            )
            if f.deriv_max_abs_err is not None:
                deriv += f" (max err {f.deriv_max_abs_err:.3g})"
        lines.append(
            f"line {f.line:>3}: {text:<{width}}  coeffs {f.coeffs or '-':<10}  "
            f"values [{f.vmin:.4g}, {f.vmax:.4g}]  non-finite {f.nonfinite}  {deriv}"
        )
    if check.ok:
        n = len(check.functions)
        lines.append(f"OK: {n} function{'s' if n != 1 else ''}")
    else:
        lines.append(f"PROBLEMS in {check.path} ({len(check.problems)}):")
        lines.extend(f"  {p}" for p in check.problems)
    return "\n".join(lines)
