"""The layering of the package holds: dependencies point down, each third-party package has
one home, and nothing applies nest_asyncio."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "lash_nb"
LAYERS = ("_core", "_store", "_providers", "_runtime", "_reports", "_notebook")
# what each internal layer must not import
FORBIDDEN = {
    "_core": {"_store", "_providers", "_runtime", "_reports", "_notebook"},
    "_store": {"_providers", "_runtime", "_reports", "_notebook"},
    "_providers": {"_store", "_runtime", "_reports", "_notebook"},
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
    "markdown_it": {"_notebook"},
    "pygments": {"_notebook"},
}


def _imports(path: Path) -> list[tuple[str, int]]:
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
    return out


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
            "'anywidget', 'pyarrow') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
