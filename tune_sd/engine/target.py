"""Composite target data for regularisation studies (Step 7): y = f(g0, ..., g_{k-1}) of k latents.

The latents are fixed functions of the inputs: given as expressions (the default is the original
work's three quadratics of one input), or drawn from a library with coefficients fixed once by a seed.
The target ``f`` is an expression of ``g0 ... g_{k-1}`` (default ``g0*g1 + np.sin(g2)``) or their sum.
Every expression goes through the safe compiler of :mod:`tune_sd.engine.expr`; nothing is executed.

On disk (``tune-sd data make``) a target is one Parquet file: a row per point with the columns
``split`` (train/val/test), ``x<c>`` (the input features), ``g<i>`` (the true latents) and ``y``; the
schema metadata ``tune_sd.target`` (JSON) keeps the latents' expressions, ``f`` and how they were made.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tune_sd.errors import ConfigError, DataError, LibraryError

from .atomic import atomic_write
from .expr import compile_expr
from .library import library_path, load_library

META_KEY = b"tune_sd.target"
FORMAT = "tune_sd.target/1"
SPLITS = ("train", "val", "test")

# the original work's latents: three quadratics of one input x ~ N(0, 1), and f = g0 * g1 + sin(g2)
SEED_LATENTS = ("-0.08*({x} + 0.165)**2 - 0.21", "0.0785*({x} - 0.63)**2 - 0.252", "0.0895*({x} + 0.21)**2 - 0.0375")
SEED_F = "g0*g1 + np.sin(g2)"


@dataclass
class TargetData:
    """Inputs ``X`` [N, d] (float32), the true ``latents`` [k, N], the target ``y`` [N], the split
    indices, and the expressions behind them."""

    X: torch.Tensor
    latents: torch.Tensor
    y: torch.Tensor
    splits: dict[str, np.ndarray]
    latent_exprs: list[str]
    f: str | None
    var: str
    meta: dict = field(default_factory=dict)
    source: str = "built"

    @property
    def k(self) -> int:
        return self.latents.shape[0]

    def part(self, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(X [n, d], y [n], latents [k, n]) of one split."""
        idx = torch.as_tensor(self.splits[split], dtype=torch.long)
        return self.X[idx], self.y[idx], self.latents[:, idx]

    def summary(self) -> str:
        sizes = "/".join(str(len(self.splits[s])) for s in SPLITS)
        f = self.f if self.f not in (None, "sum") else " + ".join(f"g{i}" for i in range(self.k))
        lines = [f"{self.X.shape[0]} points x {self.X.shape[1]} input feature(s), split {sizes}; y = {f}"]
        lines += [f"  g{i} = {e}" for i, e in enumerate(self.latent_exprs)]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ building


def fixed_expression(text: str, coeffs: dict[str, float]) -> str:
    """A library expression with its coefficients (``N0``, ``U1`` ...) replaced by numbers."""

    class Substitute(ast.NodeTransformer):
        def visit_Name(self, node):  # noqa: N802 - ast API
            name = node.id if node.id not in ("N", "U") else node.id + "0"
            if name in coeffs:
                value = float(coeffs[name])
                num = ast.Constant(abs(value))
                # a negative number as unary minus, so that unparse brackets it under ** and the like
                return ast.UnaryOp(ast.USub(), num) if value < 0 else num
            return node

    tree = Substitute().visit(ast.parse(text.strip(), mode="eval"))
    return ast.unparse(ast.fix_missing_locations(tree))


def draw_latents(library_path: str | Path, k: int, var: str, n_features: int, seed: int) -> list[str]:
    """k library lines picked at random (with replacement) with coefficients drawn once, as fixed
    expressions. One seed gives the same latents on every machine."""
    library = load_library(library_path, var=var, n_features=n_features)
    gen = torch.Generator().manual_seed(seed)
    lines = torch.randint(len(library), (k,), generator=gen).tolist()
    out = []
    for j in lines:
        fn = library.functions[j]
        n = torch.randn(fn.coeffs_n, generator=gen, dtype=torch.float64).tolist()
        u = torch.rand(fn.coeffs_u, generator=gen, dtype=torch.float64).tolist()
        coeffs = {f"N{i}": v for i, v in enumerate(n)} | {f"U{i}": v for i, v in enumerate(u)}
        out.append(fixed_expression(fn.value.text, coeffs))
    return out


def seed_latents(var: str, feature: int = 0) -> list[str]:
    return [e.format(x=f"{var}[:,{feature}]") for e in SEED_LATENTS]


def evaluate_latents(exprs: list[str], X: torch.Tensor, var: str, where: str = "target.latents") -> torch.Tensor:
    """[k, N] values of fixed expressions of the inputs (no coefficients allowed)."""
    if not exprs:
        raise ConfigError(f"{where}: no latent functions given")
    cols = {c: X[:, c].double().unsqueeze(0) for c in range(X.shape[1])}
    out = []
    for i, text in enumerate(exprs):
        expr = compile_expr(text, var, where=f"{where}[{i}]", n_features=X.shape[1])
        if expr.coeffs_n or expr.coeffs_u:
            raise ConfigError(f"{where}[{i}]: '{text}' has random coefficients; a latent is a fixed "
                              "function (draw it with target.library, or write the numbers in)")
        out.append(expr(cols, (), (), shape=(1, X.shape[0]))[0])
    return torch.stack(out)


def evaluate_f(f: str | None, latents: torch.Tensor, where: str = "target.f") -> torch.Tensor:
    """y [N] = f(g0 ... g_{k-1}); ``None`` or ``"sum"`` is the sum of the latents."""
    if f is None or f.strip() == "sum":
        return latents.sum(0)
    k = latents.shape[0]
    expr = compile_expr(f, "X", where=where, aliases={f"g{i}": i for i in range(k)})
    return expr({i: latents[i].unsqueeze(0) for i in range(k)}, (), (), shape=(1, latents.shape[1]))[0]


def build_target(data, *, features, latents: list[str] | None = None, library: str | Path | None = None,
                 k: int = 3, f: str | None = SEED_F, seed: int = 0) -> TargetData:
    """The target on the points of ``data`` (an :class:`~tune_sd.engine.data.InputData`), its columns
    ``features`` as the model's inputs, with the data's own train/val/test split."""
    idx = torch.as_tensor(list(features), dtype=torch.long)
    X = data.X.index_select(1, idx).float()
    var = data.var
    if latents and library:
        raise ConfigError("target.latents and target.library: give one of them (set the other to null)")
    if library:
        exprs = draw_latents(library_path(str(library)), int(k), var, X.shape[1], int(seed))
        how = {"made_from": f"library {library}", "library": str(library), "k": int(k), "seed": int(seed)}
    else:
        exprs = list(latents) if latents else seed_latents(var)
        how = {"made_from": "given expressions" if latents else "the seed's quadratics"}
    G = evaluate_latents(exprs, X, var)
    y = evaluate_f(f, G)
    _check_values(G, y, "target")
    meta = {"format": FORMAT, "var": var, "features": [int(c) for c in features], "latents": exprs, "f": f,
            "data": data.source, **how}
    return TargetData(X=X, latents=G.float(), y=y.float(), splits={s: np.asarray(data.splits[s]) for s in SPLITS},
                      latent_exprs=exprs, f=f, var=var, meta=meta)


def _check_values(G: torch.Tensor, y: torch.Tensor, where: str) -> None:
    bad = (~torch.isfinite(G)).any(1).nonzero().flatten().tolist()
    if bad:
        raise DataError(f"{where}: latent g{bad[0]} is not finite on every point (e.g. a log of a negative "
                        "number or an exp overflow)")
    if not torch.isfinite(y).all():
        raise DataError(f"{where}: f is not finite on every point")


# ------------------------------------------------------------------------------------------ disk


def save_target(target: TargetData, path: str | Path) -> Path:
    """Write the target as Parquet (atomically: a temporary file, then a rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    split = np.empty(target.X.shape[0], dtype=object)
    for s in SPLITS:
        split[target.splits[s]] = s
    cols = {"split": pa.array(split.tolist(), type=pa.string())}
    for c in range(target.X.shape[1]):
        cols[f"x{c}"] = pa.array(target.X[:, c].numpy())
    for i in range(target.k):
        cols[f"g{i}"] = pa.array(target.latents[i].numpy())
    cols["y"] = pa.array(target.y.numpy())
    table = pa.table(cols).replace_schema_metadata({META_KEY: json.dumps(target.meta).encode()})
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def load_target(path: str | Path) -> TargetData:
    """Read a target written by :func:`save_target`; errors name the file and the column."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"target.path: {path}: file not found (make one with `tune-sd data make`)")
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise DataError(f"{path}: not a Parquet file ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    try:
        meta = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(f"{path}: its tune_sd.target metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        meta = {}
    names = table.column_names
    for col in ("split", "y"):
        if col not in names:
            raise DataError(f"{path}: no column '{col}' (a target from `tune-sd data make` has split, x0.., g0.., y)")
    xs = _numbered(names, "x")
    gs = _numbered(names, "g")
    if not xs:
        raise DataError(f"{path}: no input columns x0, x1, ...")
    if not gs:
        raise DataError(f"{path}: no latent columns g0, g1, ...")

    def floats(col):
        try:
            arr = table.column(col).to_numpy(zero_copy_only=False).astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{path}, column '{col}': expected numbers") from None
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise DataError(f"{path}, column '{col}', row {bad[0]}: not a finite number")
        return arr

    X = torch.tensor(np.stack([floats(c) for c in xs], 1), dtype=torch.float32)
    G = torch.tensor(np.stack([floats(c) for c in gs]), dtype=torch.float32)
    y = torch.tensor(floats("y"), dtype=torch.float32)
    split = np.asarray(table.column("split").to_pylist(), dtype=object)
    unknown = [i for i, s in enumerate(split) if s not in SPLITS]
    if unknown:
        raise DataError(f"{path}, column 'split', row {unknown[0]}: {split[unknown[0]]!r} "
                        f"(allowed: {', '.join(SPLITS)})")
    splits = {s: np.flatnonzero(split == s) for s in SPLITS}
    if not len(splits["train"]):
        raise DataError(f"{path}: no train rows")
    exprs = meta.get("latents") if isinstance(meta.get("latents"), list) else [f"(column g{i})" for i in range(len(gs))]
    return TargetData(X=X, latents=G, y=y, splits=splits, latent_exprs=[str(e) for e in exprs][:len(gs)],
                      f=meta.get("f"), var=str(meta.get("var", "X10")), meta=meta, source=str(path))


def _numbered(names: list[str], prefix: str) -> list[str]:
    """Columns ``<prefix>0, <prefix>1, ...`` in order, up to the first gap."""
    out = []
    while f"{prefix}{len(out)}" in names:
        out.append(f"{prefix}{len(out)}")
    return out


def target_from_config(cfg) -> TargetData:
    """The target a run config asks for: ``target.path``, else built from ``target.*`` on ``data.*``."""
    t = cfg.target
    if t.path is not None:
        return load_target(t.path)
    from .data import load_data

    d = cfg.data
    data = load_data(d.path, var=d.var, n_points=d.n_points, n_features=d.n_features,
                     split_sizes=tuple(d.split_sizes), seed=d.seed, split_path=d.split_path, key=d.key)
    try:
        return build_target(data, features=d.features, latents=t.latents, library=t.library, k=t.k, f=t.f,
                            seed=t.seed)
    except LibraryError as e:
        raise ConfigError(str(e)) from None
