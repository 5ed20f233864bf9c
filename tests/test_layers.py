"""The layers of DESIGN.md, read from the source: imports point down only, no module imports itself back
through others (function-level imports included), and the commands that plan without running start
without Ray."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tune_sd"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST):
    """The nodes of a module that run, at any depth: all but the bodies of ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *runtime_nodes(child)])
            continue
        yield node
        yield from runtime_nodes(node)


def imports(path: Path, modules: frozenset = frozenset()) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (inside functions too), absolute names.
    ``from package import module`` (one of ``modules``) imports that module, not the package's names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            named = {f"{module}.{a.name}" for a in node.names}
            out.update(named & modules if named <= modules else named | {module})
    return out


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = frozenset(modules)
    return {name: {m for m in imports(path, known) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def foreign(prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    """(module: import) for each import of a forbidden module by a module under ``prefix``."""
    out = []
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name == prefix or name.startswith(prefix + "."):
            out += [f"{name}: {m}" for m in sorted(imports(path))
                    if any(m == f or m.startswith(f + ".") for f in forbidden)]
    return out


@pytest.mark.parametrize("layer,forbidden", [
    ("tune_sd.engine", ("ray", "tune_sd.tune", "tune_sd.analysis", "tune_sd.spaces", "tune_sd.store", "tune_sd.cli")),
    ("tune_sd.analysis", ("ray.tune", "tune_sd.tune", "tune_sd.cli")),
    ("tune_sd.spaces", ("ray", "optuna", "tune_sd.tune", "tune_sd.analysis", "tune_sd.cli")),
    ("tune_sd.store", ("ray", "tune_sd.tune", "tune_sd.analysis", "tune_sd.spaces", "tune_sd.cli")),
    # the words and the seed arithmetic that the stopping rules and the analysis share: below both
    ("tune_sd.outcomes", ("ray", "torch", "pandas", "tune_sd.tune", "tune_sd.analysis", "tune_sd.spaces", "tune_sd.cli")),
    ("tune_sd.seeds", ("ray", "torch", "pandas", "tune_sd.tune", "tune_sd.analysis", "tune_sd.spaces", "tune_sd.cli")),
    # the rules of early stopping and the packing plan run where Ray is absent (a plan, a replay)
    ("tune_sd.tune.stopping.nonlearner", ("ray", "torch", "tune_sd.analysis")),
    ("tune_sd.tune.stopping.race", ("ray", "torch", "tune_sd.analysis")),
    ("tune_sd.tune.stopping.seed_pool", ("ray", "torch", "tune_sd.analysis")),
    ("tune_sd.tune.stopping.describe", ("ray", "torch", "tune_sd.analysis")),
    ("tune_sd.tune.packing.plan", ("ray", "tune_sd.analysis")),
    # logging to W&B and MLflow: a finished sweep (export --to) and the analysis log without Ray
    ("tune_sd.tracking", ("ray", "tune_sd.tune", "tune_sd.analysis", "tune_sd.cli")),
    ("tune_sd.tune.tracking_export", ("ray", "tune_sd.analysis")),
])
def test_layers_import_down_only(layer, forbidden):
    assert foreign(layer, forbidden) == []


@pytest.mark.parametrize("args", [["spaces"], ["sweep", "sd-study", "--dry-run"]])
def test_planning_commands_start_without_ray(args, tmp_path):
    code = ("import sys\nfrom tune_sd.cli import main\n"
            f"rc = main({args!r})\n"
            "assert rc in (0, None), rc\n"
            "loaded = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
            "assert not loaded, loaded[:5]\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "sd-study" in run.stdout
