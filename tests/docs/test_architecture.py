"""The package's architecture, as its folders show it, held against its imports.

- No import circle among the package's modules (an import inside a function or
  under ``TYPE_CHECKING`` counts: it is still a dependency).
- ``_core`` (the durable side) imports neither the HTTP layer (``_gateway``),
  nor the in-process clients, the dev server, an adapter or their glue.
- ``_gateway`` imports no adapter; the adapters never import each other.
- The examples and the docs' Python snippets use the public API only: no module
  whose path has a part starting with ``_``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "resonate_web"
ADAPTERS = ("fastapi", "flask", "django")


def module_of(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every ``resonate_web`` module ``tree`` imports, wherever the import stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield name
            for alias in node.names:  # ``from resonate_web import _core`` names a module
                yield f"{name}.{alias.name}"


def graph() -> dict[str, set[str]]:
    paths = {module_of(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text())
        found = imports(tree, module, path.name == "__init__.py")
        edges[module] = {m for m in found if m in paths and m != module}
    return edges


def package_face(module: str) -> bool:
    return module in {"resonate_web"} or module.endswith(".__init__")


def test_no_import_circle() -> None:
    edges = graph()
    # A package's __init__ that only hands names on is a face, not a room: an import
    # of the package by its own modules is what Python needs to load them.
    faces = {m for m in edges if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt in faces:
                continue
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state and node not in faces:
            visit(node)
    assert circles == [], "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_layers_point_one_way() -> None:
    edges = graph()
    wrong = []
    for module, targets in edges.items():
        for target in targets:
            if module.startswith("resonate_web._core") and target.startswith(
                (
                    "resonate_web._gateway",
                    "resonate_web._inprocess",
                    "resonate_web._devserver",
                    "resonate_web._adapter",
                    *(f"resonate_web.{a}" for a in ADAPTERS),
                )
            ):
                wrong.append(f"{module} -> {target}")
            if module.startswith("resonate_web._gateway") and target.startswith(
                tuple(f"resonate_web.{a}" for a in ADAPTERS)
            ):
                wrong.append(f"{module} -> {target}")
            for a in ADAPTERS:
                for b in ADAPTERS:
                    if (
                        a != b
                        and module.startswith(f"resonate_web.{a}")
                        and target.startswith(f"resonate_web.{b}")
                    ):
                        wrong.append(f"{module} -> {target}")
    assert wrong == [], "imports against the layers: " + ", ".join(sorted(wrong))


def internal(name: str) -> bool:
    return name.startswith("resonate_web") and any(p.startswith("_") for p in name.split("."))


def snippets() -> Iterator[tuple[str, str]]:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, block in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)):
            yield f"{doc.name}#{n}", block


def test_examples_and_docs_use_the_public_api_only() -> None:
    used = []
    sources = [(str(p.relative_to(ROOT)), p.read_text()) for p in (ROOT / "examples").rglob("*.py")]
    for where, text in [*sources, *snippets()]:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue  # a fragment; tests/docs/test_docs_snippets.py runs the whole ones
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and internal(node.module):
                used.append(f"{where}: {node.module}")
            if isinstance(node, ast.Import):
                used += [f"{where}: {a.name}" for a in node.names if internal(a.name)]
    assert used == [], "internal modules in examples or docs: " + ", ".join(used)


def test_the_check_sees_what_it_checks() -> None:
    edges = graph()
    assert "resonate_web._core.runtime" in edges["resonate_web._gateway.router"]
    assert len(list(snippets())) > 10
    assert internal("resonate_web._core.sdk") and not internal("resonate_web.fastapi")
