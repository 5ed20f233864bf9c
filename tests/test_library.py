"""Tests of the safe expression compiler and the function library (tune_sd.engine.expr/library)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tune_sd.engine import expr as expr_mod
from tune_sd.engine.expr import CompiledExpr, compile_expr
from tune_sd.engine.library import FunctionLibrary, load_library, parse_library
from tune_sd.engine.library_check import check_library, format_check
from tune_sd.errors import LibraryError, UserError

REPO = Path(__file__).resolve().parents[1]
F10_V1 = REPO / "funs" / "F10_v1.lib"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def write(tmp_path: Path, content: str | bytes, name: str = "lib.lib") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# -- F10_v1 ---------------------------------------------------------------------------------------


def test_f10_v1_parses_and_samples() -> None:
    lib = load_library(F10_V1)
    assert isinstance(lib, FunctionLibrary)
    assert len(lib) == 1
    fn = lib.functions[0]
    assert fn.line == 1
    assert fn.value.columns == {0}
    assert (fn.value.coeffs_n, fn.value.coeffs_u) == (3, 0)
    assert len(fn.derivs) == 1 and fn.derivs[0] is not None
    assert fn.derivs[0].coeffs_n == 2  # uses N0, N1 only; shares the draws with the value

    X = torch.linspace(-1, 1, 50).unsqueeze(1)
    values, derivs = lib.sample(7, X, gen())
    assert values.shape == (7, 50) and derivs is not None and derivs.shape == (7, 50, 1)
    assert values.dtype == X.dtype == derivs.dtype
    assert torch.isfinite(values).all() and torch.isfinite(derivs).all()

    values2, none = lib.sample(7, X, gen(), with_grad=False)
    assert none is None
    assert torch.equal(values, values2)


def test_f10_v1_given_derivative_matches_autograd() -> None:
    X = torch.linspace(-2, 2, 40, dtype=torch.float64).unsqueeze(1)
    given = load_library(F10_V1)
    # The same value line without the derivative column: its derivative comes from autograd, and
    # it needs the same coefficients (N0, N1, N2), so the same generator state gives the same draws.
    auto = parse_library(F10_V1.read_text().split(";")[0])
    assert auto.functions[0].derivs == []
    v1, d1 = given.sample(25, X, gen(3))
    v2, d2 = auto.sample(25, X, gen(3))
    assert torch.equal(v1, v2)
    torch.testing.assert_close(d1, d2)

    check = check_library(F10_V1, X)
    assert check.ok, check.problems
    (fc,) = check.functions
    assert fc.coeffs == "N0 N1 N2"
    assert fc.columns == [0]
    assert fc.deriv_given == 1 and fc.deriv_ok and fc.nonfinite == 0
    assert fc.deriv_max_abs_err is not None and fc.deriv_max_abs_err < 1e-9
    assert fc.vmin < fc.vmax
    text = format_check(check)
    assert "deriv OK" in text
    assert text.splitlines()[-1] == "OK: 1 function"


# -- refusals -------------------------------------------------------------------------------------

# (bad expression, a fragment its error message must contain)
REFUSED = [
    ("__import__('os')", "call to '__import__'"),
    ("().__class__", "__class__"),
    ("N0.__class__", "attribute"),
    ("os.system('x')", "call to 'os.system' is not allowed"),
    ("np.load('f')", "call to 'np.load'"),
    ("open('x')", "call to 'open'"),
    ("np.sin.__call__(N0)", "call to 'np.sin.__call__'"),
    ("(lambda: 1)()", "call to"),
    ("lambda x: x", "lambda"),
    ("[N0 for N0 in X10]", "list comprehension"),
    ("sum(N0 for N0 in X10)", "call to 'sum'"),
    ("f'{N0}'", "f-string"),
    ("'abc'", "string constant"),
    ("b'abc'", "bytes constant"),
    ("X10[0]", "X10[:,c]"),
    ("X10[:,0][1]", "subscript of an expression"),
    ("X11[:,0]", "unknown input 'X11'"),
    ("N0[0]", "subscript of 'N0'"),
    ("X10[:,-1]", "non-negative"),
    ("X10[:,0.5]", "non-negative"),
    ("X10[1:,0]", "X10[:,c]"),
    ("X10[:,True]", "non-negative"),
    ("X10", "one column at a time"),
    ("foo + N0", "unknown name 'foo'"),
    ("x", "unknown name 'x'"),
    ("np", "'np' alone"),
    ("np.random", "attribute 'np.random'"),
    ("np.sin", "must be called"),
    ("np.sin(X10[:,0], out=N0)", "keyword arguments"),
    ("np.sin(*N0)", "starred"),
    ("np.sin(N0, N1)", "exactly one argument"),
    ("np.sin()", "exactly one argument"),
    ("X10[:,0] < 1", "comparison"),
    ("N0 and N1", "boolean operator"),
    ("N0 if N1 else N2", "conditional expression"),
    ("(y := 1)", "assignment expression"),
    ("(N0, N1)", "tuple"),
    ("[N0]", "list"),
    ("{N0: 1}", "dict"),
    ("N0 // 2", "operator '//'"),
    ("N0 % 2", "operator '%'"),
    ("N0 @ N1", "operator '@'"),
    ("~N0", "operator '~'"),
    ("not N0", "operator 'not'"),
    ("1j * N0", "complex"),
    ("True * N0", "boolean constant"),
    ("None", "None"),
    ("X10[:,0]**1000", "exponent"),
    ("X10[:,0]**-101", "exponent"),
    ("2**(10*20)", "exponent"),
    ("N0 +", "syntax error"),
    ("N0 = 1", "syntax error"),
    ("import os", "syntax error"),
    ("N1000", "too large an index"),
    ("np.sin(" * 60 + "N0" + ")" * 60, "nested"),
    ("+".join(["N0"] * 4000), "characters long"),
    ("1" + "0" * 400, "too large"),
    ("N0 \x07 N1", "non-printable"),
    ("N0\u202e + N1", "non-printable"),
]


@pytest.mark.parametrize("bad,fragment", REFUSED, ids=[b[:30] for b, _ in REFUSED])
def test_refused_expressions_name_file_and_line(tmp_path: Path, bad: str, fragment: str) -> None:
    path = write(tmp_path, f"# a comment\nN0*X10[:,0]\n{bad}\n", name="bad.lib")
    with pytest.raises(LibraryError) as info:
        load_library(path, n_features=2)
    msg = str(info.value)
    assert str(path) in msg and "line 3" in msg, msg
    assert fragment.lower() in msg.lower(), msg
    assert isinstance(info.value, UserError)


@pytest.mark.parametrize("bad,fragment", REFUSED[:20], ids=[b[:30] for b, _ in REFUSED[:20]])
def test_refused_in_a_derivative_column(tmp_path: Path, bad: str, fragment: str) -> None:
    path = write(tmp_path, f"N0*X10[:,0]\n\nN0*X10[:,0];{bad}\n", name="bad_deriv.lib")
    with pytest.raises(LibraryError) as info:
        load_library(path)
    msg = str(info.value)
    assert str(path) in msg and "line 3, column 2" in msg, msg
    assert fragment.lower() in msg.lower(), msg


@pytest.mark.parametrize(
    "content,line,fragment",
    [
        (b"N0*X10[:,0]\n\x00N1\n", 2, "NUL"),
        (b"N0\n" + bytes(range(256)) * 4, 2, "NUL"),  # binary junk
        (b"N0\nN1\n\xff\xfe junk\n", 3, "UTF-8"),
        (b"N0\n# caf\xe9\n", 2, "UTF-8"),
        (b"N0\nN1 \x1b[31m\n", 2, "non-printable"),
    ],
    ids=["nul", "binary", "non-utf8", "latin1-comment", "escape"],
)
def test_refused_bytes(tmp_path: Path, content: bytes, line: int, fragment: str) -> None:
    path = write(tmp_path, content, name="junk.lib")
    with pytest.raises(LibraryError) as info:
        load_library(path)
    msg = str(info.value)
    assert str(path) in msg and f"line {line}" in msg, msg
    assert fragment.lower() in msg.lower(), msg


@pytest.mark.parametrize("content", ["", "\n\n   \n", "# only\n  # comments\n"], ids=["empty", "blank", "comments"])
def test_refused_empty_library(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content, name="empty.lib")
    with pytest.raises(LibraryError) as info:
        load_library(path)
    msg = str(info.value)
    assert str(path) in msg and "line 1" in msg and "no functions" in msg


def test_refused_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.lib"
    with pytest.raises(LibraryError, match="missing.lib, line 1: cannot read"):
        load_library(path)


def test_refused_empty_value_column(tmp_path: Path) -> None:
    path = write(tmp_path, "N0\n;N0\n")
    with pytest.raises(LibraryError, match=r"lib.lib, line 2, column 1: the value column is empty"):
        load_library(path)


def test_refused_too_many_derivative_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "N0*X10[:,0]\nN0*X10[:,0];N0;0\n", name="many.lib")
    with pytest.raises(LibraryError) as info:
        load_library(path, n_features=1)
    msg = str(info.value)
    assert str(path) in msg and "line 2" in msg and "2 derivative columns" in msg
    # Without n_features at load time, the data's width is checked when sampling.
    lib = load_library(path)
    with pytest.raises(LibraryError) as info:
        lib.sample(3, torch.zeros(5, 1))
    msg = str(info.value)
    assert str(path) in msg and "line 2" in msg and "derivative columns" in msg
    v, d = lib.sample(3, torch.ones(5, 2), gen())  # two features: fine
    assert d is not None and d.shape == (3, 5, 2)


def test_refused_out_of_range_column(tmp_path: Path) -> None:
    path = write(tmp_path, "N0*X10[:,0]\nN0*X10[:,1]\nN0*X10[:,3]\n", name="range.lib")
    with pytest.raises(LibraryError) as info:
        load_library(path, n_features=2)
    msg = str(info.value)
    assert str(path) in msg and "line 3" in msg and "out of range" in msg
    lib = load_library(path)
    with pytest.raises(LibraryError) as info:
        lib.sample(4, torch.zeros(5, 2))
    msg = str(info.value)
    assert str(path) in msg and "line 3" in msg and "X10[:,3]" in msg
    # A derivative column that uses an out-of-range input column is refused as well.
    with pytest.raises(LibraryError, match=r"line 1, column 2: column X10\[:,2\] is out of range"):
        parse_library("N0*X10[:,0];N0*X10[:,2]", n_features=2)


def test_compile_expr_where_prefix() -> None:
    with pytest.raises(LibraryError) as info:
        compile_expr("os.system('x')", "X10", where="funs/F10_v1.lib, line 1, column 2")
    msg = str(info.value)
    assert msg.startswith("funs/F10_v1.lib, line 1, column 2: call to 'os.system' is not allowed")
    assert "np.sin" in msg


def test_string_library_errors_name_the_source() -> None:
    with pytest.raises(LibraryError, match=r"^mylib, line 2: unknown name 'q'"):
        parse_library("N0\nq\n", name="mylib")


# -- the compiler itself --------------------------------------------------------------------------


def test_compile_expr_metadata_and_constants() -> None:
    e = compile_expr("N2*np.sin(X10[:,3]) + U1*X10[:,0] + np.pi", "X10")
    assert e.columns == {0, 3}
    assert (e.coeffs_n, e.coeffs_u) == (3, 2)
    assert e.n_used == {2} and e.u_used == {1}
    assert e.constant is None
    c = compile_expr("2*np.pi - np.e**2 / 4 + np.sqrt(4)", "X10")
    assert c.constant == pytest.approx(2 * math.pi - math.e**2 / 4 + 2)
    assert c.columns == set() and c.coeffs_n == 0
    out = c({0: torch.zeros(1, 6)}, torch.zeros(0, 3, 1), torch.zeros(0, 3, 1))
    assert out.shape == (3, 6)
    assert torch.allclose(out, torch.full((3, 6), c.constant))
    zero = compile_expr(" 0 ", "X10")
    assert zero.constant == 0.0
    # Constant folding follows numpy float64 semantics, not Python exceptions.
    assert compile_expr("1/0", "X10").constant == math.inf
    assert math.isnan(compile_expr("np.log(-1)", "X10").constant)


def test_compiled_expression_agrees_with_numpy() -> None:
    text = (
        "np.sin(3*X10[:,0])*N0 - np.cos(X10[:,1])/(1 + X10[:,0]**2) + np.exp(-X10[:,1])*U0"
        " + np.tanh(X10[:,0]) * np.abs(X10[:,1]) + np.sqrt(U1) + np.log(1 + U0) + 2**X10[:,0]"
        " + np.arctan(X10[:,1]) + np.sinh(X10[:,0]) - np.cosh(0.5*X10[:,1]) + np.square(N1) - -N1"
    )
    e = compile_expr(text, "X10")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2))
    n = rng.normal(size=(2, 4, 1))
    u = rng.uniform(size=(2, 4, 1))
    x0, x1 = x[:, 0][None, :], x[:, 1][None, :]
    n0, n1, u0, u1 = n[0], n[1], u[0], u[1]
    expected = (
        np.sin(3 * x0) * n0 - np.cos(x1) / (1 + x0**2) + np.exp(-x1) * u0
        + np.tanh(x0) * np.abs(x1) + np.sqrt(u1) + np.log(1 + u0) + 2**x0
        + np.arctan(x1) + np.sinh(x0) - np.cosh(0.5 * x1) + np.square(n1) + n1
    )
    xt = torch.from_numpy(x)
    got = e({0: xt[:, 0][None, :], 1: xt[:, 1][None, :]}, torch.from_numpy(n), torch.from_numpy(u))
    assert got.shape == (4, 20)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_long_flat_sum_is_not_deep_nesting() -> None:
    e = compile_expr("+".join(["X10[:,0]"] * 200), "X10")
    out = e({0: torch.ones(1, 3)}, torch.zeros(0, 2, 1), torch.zeros(0, 2, 1))
    assert torch.equal(out, torch.full((2, 3), 200.0))


def test_bare_n_and_u_mean_n0_and_u0() -> None:
    bare = parse_library("N*X10[:,0] + U")
    fn = bare.functions[0]
    assert fn.value.n_used == {0} and fn.value.u_used == {0}
    assert (fn.coeffs_n, fn.coeffs_u) == (1, 1)
    explicit = parse_library("N0*X10[:,0] + U0")
    X = torch.randn(30, 1)
    vb, db = bare.sample(9, X, gen(5))
    ve, de = explicit.sample(9, X, gen(5))
    assert torch.equal(vb, ve) and torch.equal(db, de)


# -- sampling statistics ---------------------------------------------------------------------------

K_STAT = 20000


def test_normal_coefficient_statistics() -> None:
    lib = parse_library("N0 + 0*X10[:,0]")
    X = torch.linspace(-1, 1, 5, dtype=torch.float64).unsqueeze(1)
    values, derivs = lib.sample(K_STAT, X, gen(11))
    assert torch.equal(values, values[:, :1].expand_as(values))  # one draw per sample
    per_sample = values[:, 0]
    tol = 5 / math.sqrt(K_STAT)
    assert abs(per_sample.mean().item()) < tol
    assert abs(per_sample.std().item() - 1.0) < tol
    assert derivs is not None and torch.equal(derivs, torch.zeros_like(derivs))


def test_uniform_coefficient_statistics() -> None:
    lib = parse_library("U0 + 0*X10[:,0]")
    X = torch.linspace(-1, 1, 5, dtype=torch.float64).unsqueeze(1)
    values, _ = lib.sample(K_STAT, X, gen(12), with_grad=False)
    assert torch.equal(values, values[:, :1].expand_as(values))
    u = values[:, 0]
    assert (u >= 0).all() and (u < 1).all()
    assert abs(u.mean().item() - 0.5) < 5 * math.sqrt(1 / 12 / K_STAT)
    assert abs(u.var().item() - 1 / 12) < 0.005


def test_lines_are_picked_uniformly() -> None:
    lib = parse_library("1 + 0*X10[:,0]\n# comment between\n\n2 + 0*X10[:,0]\n")
    assert [f.line for f in lib.functions] == [1, 4]
    X = torch.zeros(3, 1)
    values, derivs = lib.sample(K_STAT, X, gen(13))
    first = values[:, 0]
    assert set(first.unique().tolist()) == {1.0, 2.0}
    frac = (first == 1.0).double().mean().item()
    assert abs(frac - 0.5) < 5 * math.sqrt(0.25 / K_STAT)
    assert torch.equal(values, values[:, :1].expand_as(values))
    assert derivs is not None and not derivs.any()


def test_coefficient_draw_shared_by_value_and_derivative() -> None:
    lib = parse_library("N0*X10[:,0];N0")
    X = torch.linspace(0.5, 2.0, 8, dtype=torch.float64).unsqueeze(1)
    values, derivs = lib.sample(100, X, gen(14))
    assert derivs is not None
    torch.testing.assert_close(derivs[..., 0], values / X[:, 0])
    # A coefficient used only in the derivative column is drawn too (and shared).
    lib2 = parse_library("N0*X10[:,0] + 0*N1;N0 + N1 - N1")
    v2, d2 = lib2.sample(50, X, gen(15))
    assert d2 is not None
    torch.testing.assert_close(d2[..., 0], v2 / X[:, 0])


def test_documented_draw_order() -> None:
    lib = parse_library("N0*X10[:,0] + U1\nN1*X10[:,0]**2")
    X = torch.linspace(-1, 1, 6, dtype=torch.float64).unsqueeze(1)
    k = 40
    values, _ = lib.sample(k, X, gen(21), with_grad=False)
    g = gen(21)
    idx = torch.randint(2, (k,), generator=g)
    c0, c1 = int((idx == 0).sum()), int((idx == 1).sum())
    n_a = torch.randn((1, c0, 1), generator=g, dtype=torch.float64)
    u_a = torch.rand((2, c0, 1), generator=g, dtype=torch.float64)
    n_b = torch.randn((2, c1, 1), generator=g, dtype=torch.float64)
    x = X[:, 0][None, :]
    expected = torch.empty(k, 6, dtype=torch.float64)
    expected[idx == 0] = n_a[0] * x + u_a[1]
    expected[idx == 1] = n_b[1] * x**2
    torch.testing.assert_close(values, expected)


def test_shuffle_false_takes_lines_in_order() -> None:
    lib = parse_library("1 + 0*X10[:,0]\n2 + 0*X10[:,0]\nN0 + 3 + 0*X10[:,0]")
    X = torch.zeros(4, 1, dtype=torch.float64)
    values, derivs = lib.sample(7, X, gen(40), shuffle=False)
    assert values[:, 0].tolist()[:6] == pytest.approx([1, 2, values[2, 0].item(), 1, 2, values[5, 0].item()])
    assert values[0, 0].item() == 1 and values[6, 0].item() == 1
    # No index draw: the coefficients of line 3 (samples 2 and 5) are the generator's first draws.
    n = torch.randn((1, 2, 1), generator=gen(40), dtype=torch.float64)
    torch.testing.assert_close(values[[2, 5], 0], n[0, :, 0] + 3)
    assert derivs is not None and not derivs.any()
    small, _ = lib.sample(2, X, gen(40), shuffle=False)
    assert small[:, 0].tolist() == [1.0, 2.0]


# -- derivatives ------------------------------------------------------------------------------------


def test_autograd_derivatives_match_analytic_and_finite_differences() -> None:
    lib = parse_library("np.sin(3*X10[:,0])*N0 + X10[:,0]*X10[:,1]**2*N1")
    X = torch.randn(25, 2, dtype=torch.float64, generator=gen(1))
    k = 12
    values, derivs = lib.sample(k, X, gen(30))
    assert derivs is not None and derivs.shape == (k, 25, 2)

    # Analytic, with the coefficients re-drawn in the documented order.
    g = gen(30)
    torch.randint(1, (k,), generator=g)
    n = torch.randn((2, k, 1), generator=g, dtype=torch.float64)
    x0, x1 = X[:, 0][None, :], X[:, 1][None, :]
    torch.testing.assert_close(values, torch.sin(3 * x0) * n[0] + x0 * x1**2 * n[1])
    torch.testing.assert_close(derivs[..., 0], 3 * torch.cos(3 * x0) * n[0] + x1**2 * n[1])
    torch.testing.assert_close(derivs[..., 1], 2 * x0 * x1 * n[1])

    # Central finite differences: the draws do not depend on X's values, so the same seed gives
    # the same coefficients at the shifted points.
    h = 1e-6
    for c in range(2):
        shift = torch.zeros(1, 2, dtype=torch.float64)
        shift[0, c] = h
        vp, _ = lib.sample(k, X + shift, gen(30), with_grad=False)
        vm, _ = lib.sample(k, X - shift, gen(30), with_grad=False)
        torch.testing.assert_close(derivs[..., c], (vp - vm) / (2 * h), rtol=1e-6, atol=1e-6)


def test_mixed_given_empty_and_zero_derivative_columns() -> None:
    # column 2 (d/dx0) empty -> autograd; column 3 (d/dx1) given; an unused input -> zero.
    lib = parse_library("N0*X10[:,0]**2 + N1*X10[:,1];;N1\nN0*X10[:,1];0")
    X = torch.randn(10, 3, dtype=torch.float64, generator=gen(2))
    values, derivs = lib.sample(30, X, gen(31))
    assert derivs is not None and derivs.shape == (30, 10, 3)
    auto = parse_library("N0*X10[:,0]**2 + N1*X10[:,1]\nN0*X10[:,1]")
    v2, d2 = auto.sample(30, X, gen(31))
    torch.testing.assert_close(values, v2)
    # line 2 says d/dx0 = 0, which is also what autograd gives; all columns agree.
    torch.testing.assert_close(derivs, d2)
    assert not derivs[..., 2].any()


def test_check_library_reports_mismatch_and_nonfinite(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "N0*X10[:,0]**2;N0*X10[:,0]\nnp.log(X10[:,0])*U0\nN0*X10[:,1];0;N0\n",
        name="wrong.lib",
    )
    X = torch.linspace(-1, 1, 21).unsqueeze(1).repeat(1, 2)
    check = check_library(path, X, n_samples=64)
    assert not check.ok
    f1, f2, f3 = check.functions
    assert not f1.deriv_ok and f1.deriv_given == 1 and f1.deriv_max_abs_err > 0.1
    assert f2.nonfinite > 0 and f2.deriv_given == 0 and f2.deriv_max_abs_err is None
    assert f3.deriv_ok and f3.deriv_given == 2 and f3.coeffs == "N0"
    assert any("line 1: derivative column 1 (d/dX10[:,0]) differs from autograd" in p for p in check.problems)
    assert any(p.startswith("line 2:") and "not finite" in p for p in check.problems)
    assert not any(p.startswith("line 3") for p in check.problems)
    text = format_check(check)
    assert "deriv MISMATCH col 1" in text and "deriv OK" in text
    assert "OK: " not in text.splitlines()[-1]


def test_check_library_invalid_file_raises(tmp_path: Path) -> None:
    path = write(tmp_path, "N0*X10[:,2]\n", name="narrow.lib")
    with pytest.raises(LibraryError, match=r"narrow.lib, line 1: .*out of range"):
        check_library(path, torch.zeros(4, 2))


# -- determinism and vectorisation ---------------------------------------------------------------------


def test_same_seed_same_samples() -> None:
    lib = parse_library("N0*X10[:,0] + U0\nnp.sin(N1*X10[:,1])\nN0*U1*X10[:,0]*X10[:,1]")
    X = torch.randn(40, 2)
    a = lib.sample(17, X, gen(7))
    b = lib.sample(17, X, gen(7))
    c = lib.sample(17, X, gen(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # Drawing with or without derivatives consumes the generator identically.
    d = lib.sample(17, X, gen(7), with_grad=False)
    assert torch.equal(a[0], d[0])


def test_each_distinct_expression_evaluated_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = parse_library(
        "N0*X10[:,0]\nnp.sin(X10[:,0])*U0;np.cos(X10[:,0])*U0\nN0*N1 + X10[:,0]**2\nU0*X10[:,0]"
    )
    calls: dict[int, int] = {}
    original = CompiledExpr.__call__

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls[id(self)] = calls.get(id(self), 0) + 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CompiledExpr, "__call__", counting)
    X = torch.randn(30, 1)
    for k in (1, 5, 200):
        for with_grad in (True, False):
            calls.clear()
            values, _ = lib.sample(k, X, gen(k), with_grad=with_grad)
            assert values.shape == (k, 30)
            value_calls = [calls.get(id(f.value), 0) for f in lib.functions]
            assert all(c in (0, 1) for c in value_calls), value_calls
            assert 1 <= sum(value_calls) <= min(k, len(lib))
            deriv = lib.functions[1].derivs[0]
            expected = value_calls[1] if with_grad else 0
            assert calls.get(id(deriv), 0) == expected
            if k == 200:
                assert value_calls == [1, 1, 1, 1]


def test_output_dtype_and_empty_sample() -> None:
    lib = load_library(F10_V1)
    X = torch.randn(11, 1, dtype=torch.float64)
    v, d = lib.sample(3, X, gen())
    assert v.dtype == torch.float64 and d is not None and d.dtype == torch.float64
    v0, d0 = lib.sample(0, X, gen())
    assert v0.shape == (0, 11) and d0 is not None and d0.shape == (0, 11, 1)


def test_sample_does_not_alias_or_track_input() -> None:
    lib = parse_library("X10[:,0]")
    X = torch.randn(6, 1, requires_grad=True)
    v, d = lib.sample(1, X, gen())
    assert not v.requires_grad and d is not None and not d.requires_grad
    v.add_(1.0)
    assert not torch.equal(v[0], X[:, 0].detach())
    assert torch.equal(d, torch.ones(1, 6, 1))


def test_no_eval_exec_or_pickle_in_sources() -> None:
    for mod in (expr_mod, __import__("tune_sd.engine.compiled_expr", fromlist=["x"]),
                __import__("tune_sd.engine.library", fromlist=["x"])):
        source = Path(mod.__file__).read_text()
        for word in ("eval(", "exec(", "pickle", "compile(source"):
            assert word not in source.replace("mode=\"eval\"", ""), (mod.__name__, word)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("with_grad", [True, False])
@pytest.mark.parametrize("source", ["ladder", "autograd"])
def test_draws_evaluated_together_are_the_samples_one_by_one(shuffle: bool, with_grad: bool, source: str) -> None:
    """A population draws each member's lines and coefficients from its own stream and evaluates every
    line once for all members: each member gets exactly its own sample, and its stream moves as by it
    (given derivatives, autograd ones, uniform coefficients, a constant line)."""
    lib = load_library(REPO / "funs" / "ladder" / "L6_bent.lib") if source == "ladder" else parse_library(
        "N0*0.05*(X10[:,0] + 0.5*N1)**2 + 0.15*N2\nnp.sin(3*U0*X10[:,0]) + N0\n0.5\n")
    X = torch.linspace(-2, 2, 30).unsqueeze(1)
    ks = [5, 1, 12, 3]
    streams, alone = [gen(s) for s in range(4)], [gen(s) for s in range(4)]
    draws = [lib.draw(k, X, g, shuffle=shuffle) for k, g in zip(ks, streams)]
    together = lib.evaluate(draws, X, with_grad=with_grad)
    for (values, derivs), k, g_together, g_alone in zip(together, ks, streams, alone):
        want_values, want_derivs = lib.sample(k, X, g_alone, with_grad=with_grad, shuffle=shuffle)
        assert torch.equal(values, want_values)
        assert (derivs is None and want_derivs is None) or torch.equal(derivs, want_derivs)
        assert torch.equal(g_together.get_state(), g_alone.get_state())
