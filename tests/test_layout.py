"""The package's shape (issue 18): modules a page or two long, no import circle, and no
private name (``_x``) used across modules except the private helper modules themselves."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "closedloop"
MODULES = sorted(PKG.rglob("*.py"))
HELPERS = {"_checks", "_loop", "_threads"}  # private modules: their names serve the package


def dotted(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """(module imported, names taken from it) for every import in ``path``, lazy ones too,
    resolved to dotted names inside the package."""
    here = dotted(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = (package[:len(package) - node.level + 1] if node.level else [])
            mod = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                yield (sub, ()) if (PKG.parent / Path(*sub.split("."))).with_suffix(
                    ".py").exists() or (PKG.parent / Path(*sub.split("."))).is_dir() else (
                    mod, (alias.name,))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: dotted(p))
def test_a_module_is_a_page_or_two(path):
    assert len(path.read_text().splitlines()) <= 500


def test_no_private_name_crosses_a_module():
    crossing = []
    for path in MODULES:
        me = dotted(path)
        tree = ast.parse(path.read_text())
        for mod, names in imports(path):
            if not mod.startswith("closedloop") or mod.split(".")[-1] in HELPERS or mod == me:
                continue
            crossing += [f"{me}: from {mod} import {n}" for n in names if n.startswith("_")
                         and not n.startswith("__")]
        # module._name: an attribute of an imported package module
        aliases = {a.asname or a.name for node in ast.walk(tree)
                   if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names
                   if a.name.split(".")[-1] not in HELPERS}
        crossing += [f"{me}: {n.value.id}.{n.attr}" for n in ast.walk(tree)
                     if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                     and n.value.id in aliases and n.attr.startswith("_")
                     and not n.attr.startswith("__")
                     and n.value.id not in {"np", "torch", "os", "sys", "plt", "math"}]
    assert not crossing, "\n".join(crossing)


def test_no_import_circle():
    """Modules and packages (a package is its ``__init__``) as nodes; an edge for every import
    of another, lazy ones too, except of a package the importer lives in (Python has started
    that one before the importer)."""
    graph = {}
    for path in MODULES:
        me = dotted(path)
        inside = {me.rsplit(".", k)[0] for k in range(1, me.count(".") + 1)}
        if path.name == "__init__.py":
            inside.add(me)
        graph[me] = {m for m, _ in imports(path)
                     if m.startswith("closedloop") and m != me and m not in inside}
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import circle: " + " -> ".join(
                stack[stack.index(node):] + [node]))
        if node in seen or node not in graph:
            return
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for node in sorted(graph):
        visit(node)
