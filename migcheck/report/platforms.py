"""``migcheck platforms``: the catalog views of :mod:`migcheck.platforms` as text, tables,
JSON, Graphviz and Mermaid. Renderers take plain data; they never read the catalog."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def list_json(view: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(view), indent=2) + "\n"


def render_list(console: Console, view: Sequence[Mapping[str, Any]]) -> None:
    table = Table(header_style="bold", title="platforms (what -platform would accept)")
    for col in ("platform", "kind", "kernel", "capabilities", "recognised by"):
        table.add_column(col, overflow="fold")
    for p in view:
        caps = str(len(p["capabilities"]))
        if p["kind"] == "upstream":
            when = f"{p['released'] or '?'}{' LTS' if p['lts'] else ''}"
            table.add_row(p["id"], "upstream", f"{p['linux']} ({when})", caps, "-")
        else:
            os_ = p["os"] or {}
            how = (
                f"os {os_.get('id')} {os_.get('version_id') or ''}; "
                f"kernel {' | '.join(p['kernel'])}"
            )
            table.add_row(p["id"], "distro", f"{p['linux']} base", caps, how)
    console.print(table)


def show_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(dict(doc), indent=2) + "\n"


def render_show(console: Console, doc: Mapping[str, Any]) -> None:
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


def graph_text(view: Mapping[str, Any]) -> str:
    """An indented tree from the smallest platforms up; each line is one class of platforms
    with the same capabilities."""
    classes = view["classes"]
    order = {n: i for i, n in enumerate(classes)}
    supersets: dict[str, list[str]] = {n: [] for n in classes}
    has_subset: set[str] = set()
    for e in view["edges"]:
        supersets[e["subset"]].append(e["superset"])
        has_subset.add(e["superset"])
    roots = [n for n in classes if n not in has_subset]
    lines: list[str] = []
    seen: set[str] = set()

    def walk(node: str, depth: int) -> None:
        if node in seen:
            lines.append("  " * depth + f"{node} (see above)")
            return
        label = _class_label(classes[node]["members"])
        lines.append("  " * depth + f"{label}  [{classes[node]['capabilities']} capabilities]")
        seen.add(node)
        for sup in sorted(supersets[node], key=order.__getitem__):
            walk(sup, depth + 1)

    for root in roots:
        walk(root, 0)
    return "\n".join(lines) + "\n"


def graph_dot(view: Mapping[str, Any]) -> str:
    out = ["digraph platforms {", "  rankdir=BT;", '  node [shape=box, fontname="monospace"];']
    for n, c in view["classes"].items():
        label = "\\n".join(c["members"])
        out.append(f'  "{n}" [label="{label}\\n({c["capabilities"]} capabilities)"];')
    for e in view["edges"]:
        out.append(f'  "{e["subset"]}" -> "{e["superset"]}";')  # subset up to superset
    out.append("}")
    return "\n".join(out) + "\n"


def graph_mermaid(view: Mapping[str, Any]) -> str:
    def node(n: str) -> str:
        return n.replace(".", "_").replace("-", "_")

    out = ["graph BT"]
    for n, c in view["classes"].items():
        out.append(f'  {node(n)}["{_class_label(c["members"])}"]')
    for e in view["edges"]:
        out.append(f"  {node(e['subset'])} --> {node(e['superset'])}")
    return "\n".join(out) + "\n"


def graph_json(view: Mapping[str, Any]) -> str:
    doc = {
        "nodes": view["nodes"],
        "classes": {n: c["members"] for n, c in view["classes"].items()},
        "edges": view["edges"],
    }
    return json.dumps(doc, indent=2) + "\n"
