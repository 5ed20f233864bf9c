"""Function libraries (``funs/*.lib``): reading and sampling of fake functions (checking a library:
:mod:`tune_sd.engine.library_check`).

One function per non-blank line, columns separated by ``;``::

    value ; d value/d x_0 ; d value/d x_1 ; ...

Derivative columns are optional (an empty one, or one not written, comes from autograd); ``0`` is
a zero derivative. Lines starting with ``#`` are comments, and ``#`` starts a comment anywhere on a
line. Expressions are compiled by :mod:`tune_sd.engine.expr`; nothing is ever ``eval``-ed.

:meth:`FunctionLibrary.sample` is on the training hot path: it draws which lines to use, fresh
coefficients per sample, and evaluates every distinct line once for all of its samples.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from tune_sd.engine.expr import CompiledExpr, compile_expr
from tune_sd.errors import ConfigError, LibraryError

__all__ = [
    "FunctionLibrary",
    "LibraryFunction",
    "library_path",
    "load_library",
    "parse_library",
]

MAX_FILE_BYTES = 16 * 1024 * 1024
FUNS_DIR = Path(os.environ.get("TUNE_SD_FUNS", Path(__file__).resolve().parents[2] / "funs"))


class LibraryFunction:
    """One line of a library: its value expression and its given derivative columns.

    ``derivs[c]`` is the given expression of d value / d x_c, or ``None`` where it comes from
    autograd; columns past ``len(derivs)`` also come from autograd.
    """

    __slots__ = ("line", "text", "value", "derivs", "coeffs_n", "coeffs_u", "columns")

    def __init__(
        self, line: int, text: str, value: CompiledExpr, derivs: list[CompiledExpr | None]
    ) -> None:
        self.line = line
        self.text = text
        self.value = value
        self.derivs = derivs
        exprs = [value] + [d for d in derivs if d is not None]
        self.coeffs_n = max(e.coeffs_n for e in exprs)
        self.coeffs_u = max(e.coeffs_u for e in exprs)
        self.columns = frozenset().union(*(e.columns for e in exprs))

    @property
    def coeff_names(self) -> list[str]:
        """The coefficients the line uses, e.g. ``['N0', 'N1', 'U0']``."""
        exprs = [self.value] + [d for d in self.derivs if d is not None]
        n_used = sorted(set().union(*(e.n_used for e in exprs)))
        u_used = sorted(set().union(*(e.u_used for e in exprs)))
        return [f"N{i}" for i in n_used] + [f"U{i}" for i in u_used]

    def __repr__(self) -> str:
        return f"LibraryFunction(line={self.line}, text={self.text!r})"


class _Plan:
    """How to evaluate one function for inputs with ``d`` columns (cached per ``d``)."""

    __slots__ = ("value", "n_coeffs", "u_coeffs", "auto_cols", "given", "kinds")

    def __init__(self, fn: LibraryFunction, d: int, where: str, var: str) -> None:
        if len(fn.derivs) > d:
            raise LibraryError(
                f"{where}, line {fn.line}: {len(fn.derivs)} derivative columns but the data "
                f"has {d} input feature(s)"
            )
        if fn.columns and max(fn.columns) >= d:
            c = max(fn.columns)
            raise LibraryError(
                f"{where}, line {fn.line}: uses {var}[:,{c}] but the data has {d} input "
                f"feature(s) (columns 0..{d - 1})"
            )
        self.value = fn.value
        self.n_coeffs = fn.coeffs_n
        self.u_coeffs = fn.coeffs_u
        auto: list[int] = []
        given: list[tuple[int, CompiledExpr]] = []
        # kinds[c]: ("auto", i) -> i-th autograd gradient; ("given", expr); ("zero", None)
        kinds: list[tuple[str, object]] = []
        for c in range(d):
            expr = fn.derivs[c] if c < len(fn.derivs) else None
            if expr is None:
                if c in fn.value.columns:
                    kinds.append(("auto", len(auto)))
                    auto.append(c)
                else:
                    kinds.append(("zero", None))
            elif expr.constant == 0.0:
                kinds.append(("zero", None))
            else:
                kinds.append(("given", expr))
                given.append((c, expr))
        self.auto_cols = tuple(auto)
        self.given = tuple(given)
        self.kinds = tuple(kinds)


class FunctionLibrary:
    """A parsed library: ``path``, ``var`` (data variable name) and ``functions`` (one per line)."""

    def __init__(
        self,
        path: str,
        var: str,
        functions: list[LibraryFunction],
        n_features: int | None = None,
    ) -> None:
        self.path = path
        self.var = var
        self.functions = functions
        self.n_features = n_features
        self._plans: dict[int, list[_Plan]] = {}

    def __len__(self) -> int:
        return len(self.functions)

    def __repr__(self) -> str:
        return f"FunctionLibrary({self.path!r}, {len(self.functions)} functions)"

    def _plans_for(self, d: int) -> list[_Plan]:
        plans = self._plans.get(d)
        if plans is None:
            plans = [_Plan(fn, d, self.path, self.var) for fn in self.functions]
            self._plans[d] = plans
        return plans

    def sample(
        self,
        k: int,
        X: Tensor,
        generator: torch.Generator | None = None,
        with_grad: bool = True,
        shuffle: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Draw ``k`` fake functions and evaluate them on the points ``X`` (``[n, d]``).

        Picks ``k`` lines uniformly with replacement (with ``shuffle=False``: lines
        ``0, 1, ..., L-1, 0, 1, ...`` in order, no index draw), draws fresh coefficients per sample and
        returns ``(values [k, n], derivatives [k, n, d])`` (``derivatives`` is ``None`` when
        ``with_grad`` is false). Random draws, in this order: the line indices
        (``torch.randint``), then for each distinct sampled line in ascending order its N
        coefficients ``[coeffs_n, c_j, 1]`` (``torch.randn``) and its U coefficients
        (``torch.rand``). Each distinct line is evaluated once, for all its samples together.
        """
        _check_points(X)
        return self.evaluate([self.draw(k, X, generator, shuffle)], X, with_grad)[0]

    def draw(self, k: int, X: Tensor, generator: torch.Generator | None = None,
             shuffle: bool = True) -> "_Draw":
        """The random part of :meth:`sample`: which lines and which coefficients (``X`` gives the
        device, dtype and feature count); :meth:`evaluate` turns draws into functions."""
        _check_points(X)
        n_funcs = len(self.functions)
        plans = self._plans_for(X.shape[1])
        device, dtype = X.device, X.dtype
        groups: list[tuple[int, int, Tensor | None, object, object]] = []
        with torch.no_grad():
            if not shuffle:
                picked = [(j, len(range(j, k, n_funcs)), None if len(range(j, k, n_funcs)) == k else
                           torch.arange(j, k, n_funcs, device=device)) for j in range(min(n_funcs, k))]
            elif n_funcs == 1:
                torch.randint(n_funcs, (k,), generator=generator, device=device)  # keeps the draw order
                picked = [(0, k, None)] if k else []
            else:
                idx = torch.randint(n_funcs, (k,), generator=generator, device=device)
                counts = torch.bincount(idx, minlength=n_funcs).tolist()
                order = torch.argsort(idx, stable=True)
                picked, start = [], 0
                for j, count in enumerate(counts):
                    if count:
                        picked.append((j, count, None if count == k else order[start:start + count]))
                        start += count
            for j, count, pos in picked:
                plan = plans[j]
                n = (torch.randn((plan.n_coeffs, count, 1), generator=generator, device=device, dtype=dtype)
                     if plan.n_coeffs else ())
                u = (torch.rand((plan.u_coeffs, count, 1), generator=generator, device=device, dtype=dtype)
                     if plan.u_coeffs else ())
                groups.append((j, count, pos, n, u))
        return _Draw(k, groups)

    def evaluate(self, draws: list["_Draw"], X: Tensor, with_grad: bool = True) -> list[tuple[Tensor, Tensor | None]]:
        """(values [k, n], derivatives [k, n, d] or None) of each draw on the points ``X``: each line
        evaluated once, for the samples of every draw that picked it together (a population's
        members draw from their own streams, then evaluate as one batch)."""
        X = X.detach()
        n_points, d = X.shape
        plans = self._plans_for(d)
        device, dtype = X.device, X.dtype
        # per line: (draw index, count, pos, n, u) of every draw that picked it
        by_line: dict[int, list[tuple]] = {}
        for i, dr in enumerate(draws):
            for j, count, pos, n, u in dr.groups:
                by_line.setdefault(j, []).append((i, count, pos, n, u))
        with torch.no_grad():
            xt = X.t()
            x_cols = {c: xt[c].unsqueeze(0) for c in range(d)}  # [1, n] views, no copies
            values = [torch.empty((dr.k, n_points), dtype=dtype, device=device) for dr in draws]
            derivs = [torch.empty((dr.k, n_points, d), dtype=dtype, device=device) for dr in draws] \
                if with_grad else None
            # Pass 1: values, building one autograd graph over every line.
            pending: list[tuple[_Plan, list[tuple], object, object, int]] = []
            all_leaves: list[Tensor] = []
            all_values: list[Tensor] = []
            for j in sorted(by_line):
                plan, parts = plans[j], by_line[j]
                count = sum(part[1] for part in parts)
                n = _joined([part[3] for part in parts])
                u = _joined([part[4] for part in parts])
                shape = (count, n_points)
                first_leaf = len(all_leaves)
                if with_grad and plan.auto_cols:
                    with torch.enable_grad():
                        leaves = [xt[c].expand(shape).requires_grad_() for c in plan.auto_cols]
                        local = dict(x_cols)
                        local.update(zip(plan.auto_cols, leaves))
                        v = plan.value(local, n, u, shape)
                    all_leaves.extend(leaves)
                    if v.requires_grad:
                        all_values.append(v)
                    v = v.detach()
                else:
                    v = plan.value(x_cols, n, u, shape)
                _scatter(values, parts, v)
                if with_grad:
                    pending.append((plan, parts, n, u, first_leaf))
            if not with_grad:
                return [(v, None) for v in values]
            # One backward pass for all lines: each sample's value at a point depends only on that
            # sample's leaf at that point, so the gradient of the total sum is per-point.
            grads: tuple[Tensor | None, ...] = (None,) * len(all_leaves)
            if all_values:
                with torch.enable_grad():
                    total = all_values[0].sum()
                    for extra in all_values[1:]:
                        total = total + extra.sum()
                    grads = torch.autograd.grad(total, all_leaves, allow_unused=True)
            # Pass 2: derivative columns (autograd, given, or zero), scattered into place.
            for plan, parts, n, u, first_leaf in pending:
                shape = (sum(part[1] for part in parts), n_points)
                zero = None
                cols: list[Tensor] = []
                for kind, what in plan.kinds:
                    if kind == "auto":
                        g = grads[first_leaf + what]  # type: ignore[operator]
                        if g is not None:
                            cols.append(g)
                            continue
                    elif kind == "given":
                        cols.append(what(x_cols, n, u, shape))  # type: ignore[operator]
                        continue
                    if zero is None:
                        zero = torch.zeros((), dtype=dtype, device=device).expand(shape)
                    cols.append(zero)
                _scatter(derivs, parts, torch.stack(cols, dim=-1))
        return list(zip(values, derivs))


class _Draw:
    """What :meth:`FunctionLibrary.draw` drew: ``k`` samples as groups (line, count, positions or None
    for all, N coefficients, U coefficients)."""

    __slots__ = ("k", "groups")

    def __init__(self, k: int, groups: list[tuple]):
        self.k, self.groups = k, groups


def _check_points(X: Tensor) -> None:
    if X.dim() != 2:
        raise ValueError(f"X must be a 2-D tensor [n_points, n_features], got shape {tuple(X.shape)}")


def _joined(parts: list):
    """The coefficients of several draws of one line, along the sample axis (``()``: none)."""
    if isinstance(parts[0], tuple):
        return ()
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _scatter(outs: list[Tensor], parts: list[tuple], v: Tensor) -> None:
    """Each draw's rows of ``v`` (evaluated for every draw of a line at once) into its own output."""
    start = 0
    for i, count, pos, _, _ in parts:
        _put(outs[i], pos, v[start:start + count] if len(parts) > 1 else v)
        start += count


def _put(out: Tensor, pos: Tensor | None, v: Tensor) -> None:
    if pos is None:
        out.copy_(v)
    else:
        out.index_copy_(0, pos, v)


# -- reading ------------------------------------------------------------------------------------


def _split_line(raw: str) -> str:
    """The code part of a line: without a ``#`` comment and surrounding whitespace."""
    cut = raw.find("#")
    if cut >= 0:
        raw = raw[:cut]
    return raw.strip()


def parse_library(
    text: str,
    var: str = "X10",
    n_features: int | None = None,
    name: str = "<string>",
) -> FunctionLibrary:
    """Parse library text (see the module docstring); errors name ``name`` and the line."""
    if text.startswith("\ufeff"):
        text = text[1:]
    functions: list[LibraryFunction] = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        if raw.endswith("\r"):
            raw = raw[:-1]
        if "\0" in raw:
            raise LibraryError(
                f"{name}, line {lineno}: NUL byte (binary data?); a library must be UTF-8 text"
            )
        code = _split_line(raw)
        if not code:
            continue
        parts = code.split(";")
        multi = len(parts) > 1

        def where(col: int) -> str:
            return f"{name}, line {lineno}, column {col}" if multi else f"{name}, line {lineno}"

        if n_features is not None and len(parts) - 1 > n_features:
            raise LibraryError(
                f"{name}, line {lineno}: {len(parts) - 1} derivative columns but the data has "
                f"{n_features} input feature(s)"
            )
        if not parts[0].strip():
            raise LibraryError(f"{where(1)}: the value column is empty")
        value = compile_expr(parts[0], var, where=where(1), n_features=n_features)
        derivs: list[CompiledExpr | None] = []
        for col, part in enumerate(parts[1:], start=2):
            if not part.strip():
                derivs.append(None)  # empty column: from autograd
            else:
                derivs.append(compile_expr(part, var, where=where(col), n_features=n_features))
        while derivs and derivs[-1] is None:
            derivs.pop()
        functions.append(LibraryFunction(lineno, code, value, derivs))
    if not functions:
        raise LibraryError(f"{name}, line 1: the library has no functions (only blank lines or comments)")
    return FunctionLibrary(name, var, functions, n_features)


def library_path(name: str) -> Path:
    """A library given as a path, or by name (``F10_v1``) from the shipped ``funs/`` folder."""
    for candidate in (Path(name), FUNS_DIR / name, FUNS_DIR / f"{name}.lib"):
        if candidate.is_file():
            return candidate
    shipped = sorted(p.stem for p in FUNS_DIR.glob("*.lib")) if FUNS_DIR.is_dir() else []
    raise ConfigError(f"library.path: {name!r} is neither a file nor a library in {FUNS_DIR} "
                      f"(shipped: {', '.join(shipped) or 'none'})")


def load_library(
    path: str | os.PathLike[str], var: str = "X10", n_features: int | None = None
) -> FunctionLibrary:
    """Read and parse a library file. Raises :class:`LibraryError` naming file and line."""
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
        if size > MAX_FILE_BYTES:
            raise LibraryError(
                f"{name}, line 1: file is {size} bytes, too large for a library "
                f"(at most {MAX_FILE_BYTES})"
            )
        data = Path(name).read_bytes()
    except OSError as exc:
        raise LibraryError(f"{name}, line 1: cannot read library file: {exc.strerror or exc}") from None
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise LibraryError(
            f"{name}, line {line}: NUL byte (binary data?); a library must be UTF-8 text"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise LibraryError(
            f"{name}, line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
            "a library must be UTF-8 text"
        ) from None
    return parse_library(text, var=var, n_features=n_features, name=name)
