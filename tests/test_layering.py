"""The one-way flow, held by a test: host -> probe -> facts -> checks -> verdict -> report.

Reads every module's imports (top-level and inside functions) and fails when a check or the
catalog reaches for transport, gathering, the CLI or rendering, or when a renderer reaches
for the checks, the catalog or platform logic (renderers consume recorded findings and plain
views only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "migcheck"

FORBIDDEN = {
    "migcheck.checks": (
        "migcheck.transport",
        "migcheck.gather",
        "migcheck.cli",
        "migcheck.commands",
        "migcheck.report",
    ),
    "migcheck.catalog": (
        "migcheck.transport",
        "migcheck.gather",
        "migcheck.cli",
        "migcheck.commands",
        "migcheck.report",
        "migcheck.checks",
    ),
    "migcheck.report": (
        "migcheck.checks",
        "migcheck.catalog",
        "migcheck.platforms",
        "migcheck.dependencies",
        "migcheck.blockers",
        "migcheck.transport",
        "migcheck.gather.Gatherer",
    ),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module (and ``module.name`` for from-imports) the file imports, anywhere."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "probe" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: _module_name(p))
def test_imports_follow_the_layers(path: Path):
    name = _module_name(path)
    for layer, banned in FORBIDDEN.items():
        if name != layer and not name.startswith(layer + "."):
            continue
        bad = sorted(i for i in imports(path) for b in banned if i == b or i.startswith(b + "."))
        assert not bad, f"{name} ({layer}) must not import {bad}"


def test_the_rules_can_fail():
    # A renderer that imported a check would be caught.
    banned = FORBIDDEN["migcheck.report"]
    assert any("migcheck.checks.cpu".startswith(b) for b in banned)


def test_no_import_cycles():
    """No module reaches itself through imports (at any depth, lazy imports included): the
    catalog owns its loaders, keyval text is split in one leaf module."""
    import networkx as nx

    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for target in imports(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # A package importing its own submodule (or a submodule its package) is how
            # Python packages work, not a cycle between layers.
            inside = name.startswith(target + ".") or target.startswith(name + ".")
            if target and target != name and not inside:
                graph.add_edge(name, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles}"
