"""A compiled library expression: the callable that evaluates it on torch tensors.

:func:`tune_sd.engine.expr.compile_expr` builds it from the text; calling it evaluates the tree of
closures (or the folded constant) on the input columns and the coefficient draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import torch
from torch import Tensor

# A compiled node is either a Python float (a folded constant) or a closure f(x, n, u).
_Fn = Callable[[Mapping[int, Tensor], Sequence[Tensor], Sequence[Tensor]], Any]
_Node = Union[float, _Fn]


class CompiledExpr:
    """One compiled expression; call it to evaluate on tensors.

    Attributes: ``text`` (the source), ``columns`` (input columns used), ``coeffs_n`` /
    ``coeffs_u`` (number of N / U coefficients it needs: largest index + 1, 0 if none),
    ``n_used`` / ``u_used`` (the coefficient indices it actually uses), ``constant`` (its value
    when the whole expression folds to a constant, else ``None``).
    """

    __slots__ = ("text", "columns", "coeffs_n", "coeffs_u", "n_used", "u_used", "constant", "_fn")

    def __init__(
        self,
        text: str,
        node: _Node,
        columns: set[int],
        n_used: set[int],
        u_used: set[int],
    ) -> None:
        self.text = text
        self.columns = frozenset(columns)
        self.n_used = frozenset(n_used)
        self.u_used = frozenset(u_used)
        self.coeffs_n = max(n_used) + 1 if n_used else 0
        self.coeffs_u = max(u_used) + 1 if u_used else 0
        if isinstance(node, float):
            self.constant: float | None = node
            self._fn: _Fn | None = None
        else:
            self.constant = None
            self._fn = node

    def __repr__(self) -> str:
        return f"CompiledExpr({self.text!r})"

    def __call__(
        self,
        x_cols: Mapping[int, Tensor],
        n: Tensor | Sequence[Tensor],
        u: Tensor | Sequence[Tensor],
        shape: tuple[int, int] | None = None,
    ) -> Tensor:
        """Evaluate.

        ``x_cols[c]``: column ``c`` of the input, broadcastable to ``[k, n_points]`` (e.g.
        ``[1, n_points]``); ``n``: ``[coeffs_n, k, 1]`` standard normal draws (or a sequence of
        ``[k, 1]`` tensors); ``u``: the same for the uniform draws. Returns a tensor of shape
        ``shape`` (inferred from the arguments when omitted: ``k`` from ``n``/``u``, ``n_points``
        from ``x_cols``). The result may be an expanded view: do not write into it.
        """
        if shape is None:
            shape = _infer_shape(x_cols, n, u)
        if self._fn is None:
            dtype, device = _like(x_cols, n, u)
            return torch.tensor(self.constant, dtype=dtype, device=device).expand(shape)
        result = self._fn(x_cols, n, u)
        if not isinstance(result, Tensor):  # cannot happen for a non-constant tree; be safe
            dtype, device = _like(x_cols, n, u)
            result = torch.tensor(float(result), dtype=dtype, device=device)
        return result.expand(shape)


def _first_tensor(x_cols: Mapping[int, Tensor], n: Any, u: Any) -> Tensor | None:
    for t in x_cols.values():
        return t
    for seq in (n, u):
        if isinstance(seq, Tensor):
            return seq
        if len(seq):
            return seq[0]
    return None


def _like(x_cols: Mapping[int, Tensor], n: Any, u: Any) -> tuple[torch.dtype, torch.device | None]:
    t = _first_tensor(x_cols, n, u)
    if t is None:
        return torch.get_default_dtype(), None
    return t.dtype, t.device


def _infer_shape(x_cols: Mapping[int, Tensor], n: Any, u: Any) -> tuple[int, int]:
    k = 1
    for seq in (n, u):
        if isinstance(seq, Tensor) and seq.dim() == 3:
            k = seq.shape[1]
            break
        if not isinstance(seq, Tensor) and len(seq):
            k = seq[0].shape[0]
            break
    n_points = 1
    for t in x_cols.values():
        if t.dim() >= 1:
            n_points = t.shape[-1]
            if t.dim() >= 2 and t.shape[0] > k:
                k = t.shape[0]
            break
    return (k, n_points)
