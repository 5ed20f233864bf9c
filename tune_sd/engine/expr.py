"""A safe compiler from one library expression (Python syntax) to a function on torch tensors.

The original work ran library lines through Python's ``eval``; this module never does. The text is
parsed with ``ast.parse(text, mode="eval")`` and the tree is walked against a whitelist; what is
allowed is compiled into a tree of small Python closures that call torch operations. Allowed:

* numeric literals (``int``/``float``; no complex, bool, strings or bytes);
* the input as a column ``VAR[:,c]`` (``VAR`` the data variable name, ``c`` a non-negative int);
* coefficients ``N<k>`` (standard normal) and ``U<k>`` (uniform on [0, 1)); bare ``N``/``U`` are
  ``N0``/``U0``;
* ``+ - * / **``, unary ``-``/``+`` and parentheses;
* ``np.<f>(arg)`` for ``f`` in :data:`FUNCTIONS`, and the constants ``np.pi`` and ``np.e``.

Everything else is refused with a :class:`~tune_sd.errors.LibraryError` naming where it is and what
it is. Sub-expressions made of constants only are folded at compile time (with numpy float64
semantics: ``1/0`` is ``inf``, ``np.log(-1)`` is ``nan``).
"""

from __future__ import annotations

import ast
import math
import operator
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tune_sd.engine.compiled_expr import CompiledExpr, _Fn, _Node
from tune_sd.errors import LibraryError

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_LENGTH",
    "CompiledExpr",
    "compile_expr",
]

MAX_LENGTH = 10_000
"""Longest expression text (characters) accepted."""
MAX_DEPTH = 50
"""Deepest nesting accepted (calls, unary operators, powers, parentheses between +-/*/ chains)."""
MAX_EXPONENT = 100.0
"""Largest absolute value of a constant exponent."""
MAX_COEFF_INDEX = 999
"""Largest coefficient index k in ``N<k>`` / ``U<k>``."""

# np.<name> -> (torch function for tensors, numpy function for constant folding)
FUNCTIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Any], Any]]] = {
    "sin": (torch.sin, np.sin),
    "cos": (torch.cos, np.cos),
    "exp": (torch.exp, np.exp),
    "log": (torch.log, np.log),
    "sqrt": (torch.sqrt, np.sqrt),
    "tanh": (torch.tanh, np.tanh),
    "abs": (torch.abs, np.abs),
    "arctan": (torch.atan, np.arctan),
    "sinh": (torch.sinh, np.sinh),
    "cosh": (torch.cosh, np.cosh),
    "square": (torch.square, np.square),
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

_ALLOWED_FUNCTIONS = ", ".join(f"np.{name}" for name in FUNCTIONS)
_COEFF_RE = re.compile(r"^([NU])(\d*)$")

_BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.Pow: ("**", operator.pow),
}
_OP_SYMBOLS: dict[type, str] = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Not: "not",
    ast.Invert: "~",
}
_NODE_NAMES: dict[type, str] = {
    ast.Lambda: "a lambda",
    ast.ListComp: "a list comprehension",
    ast.SetComp: "a set comprehension",
    ast.DictComp: "a dict comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.Compare: "a comparison",
    ast.BoolOp: "a boolean operator (and/or)",
    ast.IfExp: "a conditional expression (... if ... else ...)",
    ast.Starred: "a starred expression",
    ast.NamedExpr: "an assignment expression (:=)",
    ast.Tuple: "a tuple",
    ast.List: "a list",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.Slice: "a slice",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield from",
}

def _fold(fn: Callable[..., Any], *args: float) -> float:
    """Apply ``fn`` to constants with numpy float64 semantics (inf/nan instead of exceptions)."""
    with np.errstate(all="ignore"):
        return float(fn(*(np.float64(a) for a in args)))


def _shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _bad_character(text: str) -> str | None:
    """Describe the first non-printable character in ``text`` (tab allowed), or ``None``."""
    if text.isprintable():
        return None
    for i, ch in enumerate(text):
        if ch == "\t" or ch == " ":
            continue
        cat = unicodedata.category(ch)
        if cat[0] == "C" or cat in ("Zl", "Zp"):
            what = "NUL byte" if ch == "\0" else f"non-printable character U+{ord(ch):04X}"
            return f"{what} at character {i + 1}"
    return None


class _Compiler:
    def __init__(self, text: str, var: str, where: str, n_features: int | None,
                 aliases: Mapping[str, int] | None = None) -> None:
        self.text = text
        self.var = var
        self.aliases = dict(aliases or {})
        self.where = where
        self.n_features = n_features
        self.columns: set[int] = set()
        self.n_used: set[int] = set()
        self.u_used: set[int] = set()

    # -- errors ---------------------------------------------------------------------------
    def fail(self, message: str) -> LibraryError:
        return LibraryError(f"{self.where}: {message}")

    def snippet(self, node: ast.AST) -> str:
        seg = ast.get_source_segment(self.text, node)
        if seg is None:
            try:
                seg = ast.unparse(node)
            except Exception:  # pragma: no cover - unparse of our own parse tree
                seg = type(node).__name__
        return _shorten(seg)

    def _allowed_names(self) -> str:
        if self.aliases:
            return f"allowed: {', '.join(self.aliases)}, np.pi, np.e"
        return f"allowed: {self.var}[:,c], N0, N1, ..., U0, U1, ..., np.pi, np.e"

    # -- walk -----------------------------------------------------------------------------
    def compile(self, node: ast.AST, depth: int) -> _Node:
        if depth > MAX_DEPTH:
            raise self.fail(f"expression is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Pow):
                return self.power(node, depth)
            if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
                return self.chain(node, depth)
            sym = _OP_SYMBOLS.get(type(node.op), type(node.op).__name__)
            raise self.fail(
                f"operator '{sym}' is not allowed in '{self.snippet(node)}' "
                "(allowed operators: + - * / **)"
            )
        what = _NODE_NAMES.get(type(node), f"'{type(node).__name__}' syntax")
        raise self.fail(f"{what} is not allowed: '{self.snippet(node)}'")

    def constant(self, node: ast.Constant) -> float:
        value = node.value
        if isinstance(value, bool):
            raise self.fail(f"boolean constant {value} is not allowed (use a number)")
        if isinstance(value, (int, float)):
            try:
                return float(value)
            except OverflowError:
                raise self.fail(f"number '{self.snippet(node)}' is too large") from None
        if isinstance(value, str):
            what = f"string constant {_shorten(repr(value), 40)}"
        elif isinstance(value, bytes):
            what = f"bytes constant {_shorten(repr(value), 40)}"
        elif isinstance(value, complex):
            what = f"complex number {self.snippet(node)}"
        elif value is None:
            what = "None"
        elif value is Ellipsis:
            what = "'...'"
        else:  # pragma: no cover - no other constant kinds exist
            what = f"constant {self.snippet(node)}"
        raise self.fail(f"{what} is not allowed (only int and float numbers)")

    def name(self, node: ast.Name) -> _Node:
        ident = node.id
        if ident in self.aliases:
            col = self.aliases[ident]
            self.columns.add(col)
            return lambda x, n, u: x[col]
        m = _COEFF_RE.match(ident) if not self.aliases else None
        if m:
            kind, digits = m.groups()
            index = int(digits) if digits else 0
            if index > MAX_COEFF_INDEX:
                raise self.fail(
                    f"coefficient '{ident}' has too large an index (at most {MAX_COEFF_INDEX})"
                )
            if kind == "N":
                self.n_used.add(index)
                return lambda x, n, u: n[index]
            self.u_used.add(index)
            return lambda x, n, u: u[index]
        if ident == self.var:
            raise self.fail(
                f"the input '{ident}' must be used one column at a time, as {ident}[:,c]"
            )
        if ident == "np":
            raise self.fail("'np' alone is not a value (use np.pi, np.e or np.<function>(...))")
        raise self.fail(f"unknown name '{ident}' ({self._allowed_names()})")

    def subscript(self, node: ast.Subscript) -> _Fn:
        base = node.value
        if self.aliases:
            raise self.fail(f"'{self.snippet(node)}' is not allowed here ({self._allowed_names()})")
        if not (isinstance(base, ast.Name) and base.id == self.var):
            if isinstance(base, ast.Name):
                if _COEFF_RE.match(base.id) or base.id == "np":
                    raise self.fail(
                        f"subscript of '{base.id}' is not allowed in '{self.snippet(node)}' "
                        f"(only the input is indexed, as {self.var}[:,c])"
                    )
                raise self.fail(
                    f"unknown input '{base.id}' in '{self.snippet(node)}' "
                    f"(the data variable is '{self.var}', used as {self.var}[:,c])"
                )
            raise self.fail(
                f"subscript of an expression is not allowed: '{self.snippet(node)}' "
                f"(only the input is indexed, as {self.var}[:,c])"
            )
        index = node.slice
        ok = (
            isinstance(index, ast.Tuple)
            and len(index.elts) == 2
            and isinstance(index.elts[0], ast.Slice)
            and index.elts[0].lower is None
            and index.elts[0].upper is None
            and index.elts[0].step is None
            and isinstance(index.elts[1], ast.Constant)
            and type(index.elts[1].value) is int
            and index.elts[1].value >= 0
        )
        if not ok:
            raise self.fail(
                f"the input must be indexed as {self.var}[:,c] with c a non-negative integer "
                f"(got '{self.snippet(node)}')"
            )
        col = index.elts[1].value  # type: ignore[union-attr]
        if self.n_features is not None and col >= self.n_features:
            raise self.fail(
                f"column {self.var}[:,{col}] is out of range: the data has {self.n_features} "
                f"input feature(s) (columns 0..{self.n_features - 1})"
            )
        self.columns.add(col)
        return lambda x, n, u: x[col]

    def attribute(self, node: ast.Attribute) -> float:
        dotted = _dotted(node)
        if isinstance(node.value, ast.Name) and node.value.id == "np":
            if node.attr in CONSTANTS:
                return CONSTANTS[node.attr]
            if node.attr in FUNCTIONS:
                raise self.fail(f"function 'np.{node.attr}' must be called, as np.{node.attr}(...)")
        shown = dotted if dotted is not None else self.snippet(node)
        raise self.fail(
            f"attribute '{shown}' is not allowed (allowed: np.pi, np.e, and calls of "
            f"{_ALLOWED_FUNCTIONS})"
        )

    def call(self, node: ast.Call, depth: int) -> _Node:
        func = node.func
        dotted = _dotted(func)
        if not (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "np"
            and func.attr in FUNCTIONS
        ):
            shown = dotted if dotted is not None else self.snippet(func)
            raise self.fail(
                f"call to '{shown}' is not allowed (allowed functions: {_ALLOWED_FUNCTIONS})"
            )
        if node.keywords:
            raise self.fail(
                f"keyword arguments are not allowed in a call to '{dotted}': "
                f"'{self.snippet(node)}'"
            )
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(
                f"starred arguments are not allowed in a call to '{dotted}': "
                f"'{self.snippet(node)}'"
            )
        if len(node.args) != 1:
            raise self.fail(
                f"'{dotted}' takes exactly one argument (got {len(node.args)}): "
                f"'{self.snippet(node)}'"
            )
        tfn, nfn = FUNCTIONS[func.attr]
        arg = self.compile(node.args[0], depth + 1)
        if isinstance(arg, float):
            return _fold(nfn, arg)
        return lambda x, n, u: tfn(arg(x, n, u))

    def unary(self, node: ast.UnaryOp, depth: int) -> _Node:
        if isinstance(node.op, ast.UAdd):
            return self.compile(node.operand, depth + 1)
        if not isinstance(node.op, ast.USub):
            sym = _OP_SYMBOLS.get(type(node.op), type(node.op).__name__)
            raise self.fail(
                f"operator '{sym}' is not allowed in '{self.snippet(node)}' "
                "(allowed operators: + - * / **)"
            )
        arg = self.compile(node.operand, depth + 1)
        if isinstance(arg, float):
            return -arg
        return lambda x, n, u: -arg(x, n, u)

    def power(self, node: ast.BinOp, depth: int) -> _Node:
        base = self.compile(node.left, depth + 1)
        exp = self.compile(node.right, depth + 1)
        if isinstance(exp, float) and not abs(exp) <= MAX_EXPONENT:
            raise self.fail(
                f"exponent {exp:g} in '{self.snippet(node)}' is too large "
                f"(a constant exponent must be at most {MAX_EXPONENT:g} in absolute value)"
            )
        if isinstance(base, float):
            if isinstance(exp, float):
                return _fold(operator.pow, base, exp)
            return lambda x, n, u: base ** exp(x, n, u)
        if isinstance(exp, float):
            e: float | int = int(exp) if exp.is_integer() else exp
            return lambda x, n, u: base(x, n, u) ** e
        return lambda x, n, u: base(x, n, u) ** exp(x, n, u)

    def chain(self, node: ast.BinOp, depth: int) -> _Node:
        """A left-associated chain of + and - (or of * and /) as one n-ary node.

        A long sum is a flat list of terms, not a deep nesting: it does not count against the
        depth limit and does not recurse at evaluation time.
        """
        group = (ast.Add, ast.Sub) if isinstance(node.op, (ast.Add, ast.Sub)) else (ast.Mult, ast.Div)
        items: list[tuple[type, ast.AST]] = []
        cur: ast.AST = node
        while isinstance(cur, ast.BinOp) and isinstance(cur.op, group):
            items.append((type(cur.op), cur.right))
            cur = cur.left
        items.reverse()
        head = self.compile(cur, depth + 1)
        rest: list[tuple[Callable[[Any, Any], Any], _Node]] = []
        for op_type, right in items:
            fn = _BINOPS[op_type][1]
            operand = self.compile(right, depth + 1)
            if not rest and isinstance(head, float) and isinstance(operand, float):
                head = _fold(fn, head, operand)
            else:
                rest.append((fn, operand))
        if not rest:
            return head
        return _make_chain(head, rest)


def _make_chain(head: _Node, rest: list[tuple[Callable[[Any, Any], Any], _Node]]) -> _Fn:
    if len(rest) == 1:
        (op, right), left = rest[0], head
        if isinstance(left, float):
            assert not isinstance(right, float)
            return lambda x, n, u: op(left, right(x, n, u))
        assert not isinstance(left, float)
        if isinstance(right, float):
            return lambda x, n, u: op(left(x, n, u), right)
        return lambda x, n, u: op(left(x, n, u), right(x, n, u))

    ops = tuple(
        (op, operand, isinstance(operand, float)) for op, operand in rest
    )

    def chain(x: Mapping[int, Tensor], n: Sequence[Tensor], u: Sequence[Tensor]) -> Any:
        acc = head if isinstance(head, float) else head(x, n, u)
        for op, operand, is_const in ops:
            acc = op(acc, operand if is_const else operand(x, n, u))  # type: ignore[operator]
        return acc

    return chain


def compile_expr(
    text: str, var: str, *, where: str = "", n_features: int | None = None,
    aliases: Mapping[str, int] | None = None,
) -> CompiledExpr:
    """Compile ``text`` (one expression of a library line) into a :class:`CompiledExpr`.

    ``var`` is the data variable name (e.g. ``"X10"``), ``where`` the prefix of error messages
    (e.g. ``"funs/F10_v1.lib, line 1, column 2"``), ``n_features`` the number of input columns
    when known (a column beyond it is refused). ``aliases`` (e.g. ``{"g0": 0, "g1": 1}``) are plain
    names that stand for input columns; with them, coefficients (``N<k>``/``U<k>``) are refused, as
    the expression is then a fixed function of those names. Raises :class:`LibraryError` on
    anything refused.
    """
    prefix = where or "<expression>"
    if not isinstance(text, str):
        raise LibraryError(f"{prefix}: expression must be text, not {type(text).__name__}")
    if not var.isidentifier() or _COEFF_RE.match(var) or var == "np":
        raise LibraryError(f"{prefix}: invalid data variable name {var!r}")
    source = text.strip()
    if not source:
        raise LibraryError(f"{prefix}: empty expression")
    if len(source) > MAX_LENGTH:
        raise LibraryError(
            f"{prefix}: expression is {len(source)} characters long (at most {MAX_LENGTH})"
        )
    bad = _bad_character(source)
    if bad is not None:
        raise LibraryError(f"{prefix}: {bad} (a library must be printable text)")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        at = f" at character {exc.offset}" if exc.offset else ""
        raise LibraryError(
            f"{prefix}: syntax error{at}: {exc.msg} in '{_shorten(source)}'"
        ) from None
    except (RecursionError, MemoryError):
        raise LibraryError(
            f"{prefix}: expression is too deeply nested or too long to parse"
        ) from None
    except ValueError as exc:  # e.g. NUL bytes on older Pythons
        raise LibraryError(f"{prefix}: cannot parse expression: {exc}") from None
    compiler = _Compiler(source, var, prefix, n_features, aliases)
    node = compiler.compile(tree.body, 1)
    return CompiledExpr(source, node, compiler.columns, compiler.n_used, compiler.u_used)
