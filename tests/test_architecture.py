"""The layering of the package holds: dependencies point down, each third-party package has
one home, and nothing applies nest_asyncio."""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "lash_nb"
LAYERS = ("_core", "_tools", "_store", "_providers", "_runtime", "_reports", "_notebook")
# what each internal layer must not import
FORBIDDEN = {
    "_core": {"_tools", "_store", "_providers", "_runtime", "_reports", "_notebook"},
    # tool sources that need pydantic / mcp: on _core, under _runtime (package docstring)
    "_tools": {"_store", "_providers", "_runtime", "_reports", "_notebook"},
    "_store": {"_tools", "_providers", "_runtime", "_reports", "_notebook"},
    "_providers": {"_tools", "_store", "_runtime", "_reports", "_notebook"},
    "_runtime": {"_reports", "_notebook"},
    "_reports": {"_notebook"},
    "_notebook": set(),
}
# the one home of each third-party package
HOMES = {
    "duckdb": {"_store"},
    "psycopg": {"_store"},
    "httpx": {"_providers"},
    "IPython": {"_notebook"},
    "anywidget": {"_notebook"},
    "ipywidgets": {"_notebook"},
    "traitlets": {"_notebook"},
    "pydantic": {"_tools"},
    "pydantic_core": {"_tools"},
    "mcp": {"_tools"},
    "markdown_it": {"_notebook"},
    "pygments": {"_notebook"},
    "opentelemetry": {"_runtime"},
    "litellm": {"_providers"},
    "jupyter_client": {"_runtime"},  # code mode's sandbox kernel (_runtime/code_mode)
}


@functools.cache  # four tests read every module's imports: each file is parsed once
def _imports(path: Path) -> tuple[tuple[str, int], ...]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                rel = path.relative_to(PKG).parts[:-1]
                base = list(rel[: len(rel) - (node.level - 1)])
                mod = ".".join(["lash_nb", *base, *(node.module.split(".") if node.module else [])])
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
    return tuple(out)


def _layer(path: Path) -> str | None:
    first = path.relative_to(PKG).parts[0]
    return first if first in LAYERS else None


def test_internal_layers_only_import_downwards():
    bad = []
    for path in PKG.rglob("*.py"):
        layer = _layer(path)
        if layer is None:
            continue
        for mod, line in _imports(path):
            parts = mod.split(".")
            if parts[0] == "lash_nb" and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                bad.append(f"{path.relative_to(PKG)}:{line} imports {mod}")
    assert bad == []


def test_core_imports_only_the_standard_library():
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for path in (PKG / "_core").rglob("*.py"):
        for mod, line in _imports(path):
            top = mod.split(".")[0]
            if top and top != "lash_nb" and top not in stdlib and not (
                top == "pandas" and path.name == "usage.py"  # lazy, inside to_dataframe()
            ):
                bad.append(f"{path.name}:{line} imports {mod}")
    assert bad == []


def test_each_third_party_package_has_one_home():
    bad = []
    for path in PKG.rglob("*.py"):
        layer = _layer(path)
        for mod, line in _imports(path):
            top = mod.split(".")[0]
            if top in HOMES and layer not in HOMES[top]:
                bad.append(f"{path.relative_to(PKG)}:{line} imports {top}")
    assert bad == []


def test_nothing_applies_nest_asyncio():
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                 if "nest_asyncio.apply" in p.read_text()]
    assert offenders == []


def test_importing_lash_nb_does_not_import_heavy_packages():
    import subprocess

    code = ("import sys, lash_nb; heavy = [m for m in ('duckdb', 'pandas', 'httpx', 'IPython', "
            "'anywidget', 'pyarrow', 'pydantic', 'mcp') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _runtime_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the ``_runtime`` modules it imports (TYPE_CHECKING blocks included), and
    every import of lash_nb made inside a function."""
    root = PKG / "_runtime"
    graph: dict[str, set[str]] = {}
    local: list[str] = []
    for path in sorted(root.glob("*.py")):
        name = f"lash_nb._runtime.{path.stem}"
        graph[name] = set()
        tree = ast.parse(path.read_text(), str(path))
        in_function = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                in_function.update(id(n) for n in ast.walk(node) if n is not node)
        for mod, _line in _imports(path):
            if mod.startswith("lash_nb._runtime."):
                graph[name].add(".".join(mod.split(".")[:3]))
        local.extend(f"{path.name}:{node.lineno}" for node in ast.walk(tree)
                     if id(node) in in_function and isinstance(node, ast.ImportFrom) and node.level)
    return graph, local


def test_runtime_has_no_import_cycle():
    graph, _ = _runtime_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(mod: str, stack: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(graph.get(mod, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert cycles == [], f"import cycles in _runtime: {cycles}"


def test_runtime_imports_lash_nb_at_module_level():
    """In-function imports of lash_nb hid the cycle; only the lazy homes of heavy third-party
    packages (the DuckDB / PostgreSQL stores, the HTTP providers) may be imported late."""
    _, local = _runtime_graph()
    allowed = {"core.py"}  # open_store / default_provider: duckdb, psycopg, httpx load lazily
    assert [x for x in local if x.split(":")[0] not in allowed] == []


def test_runtime_has_no_type_checking_imports():
    for path in (PKG / "_runtime").glob("*.py"):
        assert "TYPE_CHECKING" not in path.read_text(), path.name
