"""Render the platform catalog: list (like ``-platform help``), show, graph."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from migcheck.catalog import Catalog, Platform, platform_sort_key
from migcheck.platforms import children, equivalents, parents, reduced_graph


def _sorted(catalog: Catalog) -> list[Platform]:
    return sorted(catalog.platforms.values(), key=lambda p: platform_sort_key(p.id))


def platforms_json(catalog: Catalog) -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "kind": p.kind,
            "title": p.title,
            "linux": p.linux,
            "released": p.released,
            "lts": p.lts,
            "capabilities": sorted(p.capabilities),
            "os": {"id": p.os_id, "version_id": p.os_version} if p.kind == "distro" else None,
            "kernel": list(p.kernel_patterns),
        }
        for p in _sorted(catalog)
    ]


def render_list(console: Console, catalog: Catalog) -> None:
    table = Table(header_style="bold", title="platforms (what -platform would accept)")
    for col in ("platform", "kind", "kernel", "capabilities", "recognised by"):
        table.add_column(col, overflow="fold")
    for p in _sorted(catalog):
        if p.kind == "upstream":
            when = f"{p.released or '?'}{' LTS' if p.lts else ''}"
            table.add_row(p.id, "upstream", f"{p.linux} ({when})", str(len(p.capabilities)), "-")
        else:
            how = f"os {p.os_id} {p.os_version or ''}; kernel {' | '.join(p.kernel_patterns)}"
            table.add_row(p.id, "distro", f"{p.linux} base", str(len(p.capabilities)), how)
    console.print(table)


def show_json(catalog: Catalog, name: str) -> dict[str, Any]:
    p = catalog.platform(name)
    return {
        "id": p.id,
        "kind": p.kind,
        "title": p.title,
        "linux": p.linux,
        "released": p.released,
        "lts": p.lts,
        "extends": p.extends,
        "parents": parents(catalog, p.id),
        "children": children(catalog, p.id),
        "equivalent": equivalents(catalog, p.id),
        "capabilities": [
            {
                "id": c.id,
                "title": c.title,
                "linux": c.linux,
                "verified": c.verified,
                "via": _via(p, c.id),
                "sources": [dict(s) for s in c.sources],
            }
            for c in sorted(
                (catalog.capabilities[cid] for cid in p.capabilities),
                key=lambda c: (c.linux_tuple, c.id),
            )
        ],
        "backports": [b.__dict__ for b in p.backports],
        "missing": [b.__dict__ for b in p.missing],
        "sources": [dict(s) for s in p.sources],
        "note": p.note,
    }


def _via(p: Platform, cap_id: str) -> str:
    if any(b.capability == cap_id for b in p.backports):
        return "backport"
    return "kernel"


def render_show(console: Console, catalog: Catalog, name: str) -> None:
    doc = show_json(catalog, name)
    console.print(Text(f"{doc['id']}: {doc['title']}", style="bold"))
    console.print(
        f"kernel {doc['linux']}" + (f", released {doc['released']}" if doc["released"] else "")
    )
    console.print(
        "extends (direct subsets): " + (", ".join(doc["parents"]) or "(none)"), highlight=False
    )
    console.print(
        "extended by (direct supersets): " + (", ".join(doc["children"]) or "(none)"),
        highlight=False,
    )
    if doc["equivalent"]:
        console.print("same capabilities as: " + ", ".join(doc["equivalent"]), highlight=False)
    table = Table(header_style="bold")
    for col in ("capability", "Linux", "via", "source"):
        table.add_column(col, overflow="fold")
    for c in doc["capabilities"]:
        src = c["sources"][0] if c["sources"] else {}
        table.add_row(
            c["id"],
            c["linux"] + ("" if c["verified"] else " (unverified)"),
            c["via"],
            Text(str(src.get("url") or src.get("title") or "")),
        )
    console.print(table)
    if doc["note"]:
        console.print(Text(doc["note"], style="dim"))


def _class_label(members: list[str]) -> str:
    """``linux-6.2 .. linux-6.16 = linux-debian-13, linux-rhel-10.0`` for a class."""
    upstream = [m for m in members if m.startswith("linux-") and m.count("-") == 1]
    distros = [m for m in members if m not in upstream]
    parts = []
    if upstream:
        parts.append(upstream[0] if len(upstream) == 1 else f"{upstream[0]} .. {upstream[-1]}")
    parts += distros
    return parts[0] + (" = " + ", ".join(parts[1:]) if len(parts) > 1 else "")


def graph_text(catalog: Catalog) -> str:
    """An indented tree from the smallest platforms up; each line is one class of platforms
    with the same capabilities."""
    g = reduced_graph(catalog)
    roots = sorted((n for n in g.nodes if g.out_degree(n) == 0), key=platform_sort_key)
    lines: list[str] = []
    seen: set[str] = set()

    def walk(node: str, depth: int) -> None:
        caps = g.nodes[node]["capabilities"]
        label = _class_label(g.nodes[node]["members"])
        if node in seen:
            lines.append("  " * depth + f"{node} (see above)")
            return
        lines.append("  " * depth + f"{label}  [{caps} capabilities]")
        seen.add(node)
        for sup in sorted(g.predecessors(node), key=platform_sort_key):
            walk(sup, depth + 1)

    for root in roots:
        walk(root, 0)
    return "\n".join(lines) + "\n"


def graph_dot(catalog: Catalog) -> str:
    g = reduced_graph(catalog)
    out = ["digraph platforms {", "  rankdir=BT;", '  node [shape=box, fontname="monospace"];']
    for n in sorted(g.nodes, key=platform_sort_key):
        label = "\\n".join(g.nodes[n]["members"])
        out.append(f'  "{n}" [label="{label}\\n({g.nodes[n]["capabilities"]} capabilities)"];')
    for a, b in sorted(g.edges):
        out.append(f'  "{b}" -> "{a}";')  # arrow from subset up to superset
    out.append("}")
    return "\n".join(out) + "\n"


def graph_mermaid(catalog: Catalog) -> str:
    g = reduced_graph(catalog)

    def node(n: str) -> str:
        return n.replace(".", "_").replace("-", "_")

    out = ["graph BT"]
    for n in sorted(g.nodes, key=platform_sort_key):
        out.append(f'  {node(n)}["{_class_label(g.nodes[n]["members"])}"]')
    for a, b in sorted(g.edges):
        out.append(f"  {node(b)} --> {node(a)}")
    return "\n".join(out) + "\n"


def graph_json(catalog: Catalog) -> str:
    g = reduced_graph(catalog)
    doc = {
        "nodes": platforms_json(catalog),
        "classes": {n: g.nodes[n]["members"] for n in sorted(g.nodes, key=platform_sort_key)},
        "edges": [{"superset": a, "subset": b} for a, b in sorted(g.edges)],
    }
    return json.dumps(doc, indent=2) + "\n"
