"""Render ``migcheck host`` for people."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def render_host(console: Console, s: dict[str, Any]) -> None:
    table = Table(title=s["name"], show_header=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    q = s["qemu"]
    k = s["kvm"]
    table.add_row("facts from", str(s["origin"]))
    table.add_row("kernel", str(s["kernel"] or "?"))
    table.add_row("os", str(s["os"] or "?"))
    table.add_row("cpu", str(s["cpu"] or "?"))
    nested = ", ".join(f"{m} nested={v}" for m, v in k["nested"].items()) or "-"
    table.add_row("kvm", f"usable={k['usable']} api={k['api_version']} {nested}")
    table.add_row("kvm capabilities", f"{len(k['capabilities'])} present")
    table.add_row("qemu", f"{q['version'] or '?'} ({q['binary'] or '?'}, {q['package'] or ''})")
    table.add_row("default machine", str(q["default_machine"]))
    table.add_row("aliases", ", ".join(f"{a} -> {n}" for a, n in q["aliases"].items()) or "-")
    table.add_row(
        "machine types", f"{len(q['machines'])} ({len(q['deprecated_machines'])} deprecated)"
    )
    usable = s["usable_cpu_models"]
    if usable is not None:
        table.add_row("usable CPU models", ", ".join(usable) or "(none)")
        table.add_row("blocked CPU models", f"{len(s['blocked_cpu_models'])}")
    plats = s.get("platforms")
    if plats:
        table.add_row("distro platform", str(plats["distro"] or "(not recognised)"))
        table.add_row("effective platform", str(plats["effective"] or "(none)"))
        table.add_row("maximal platforms", ", ".join(plats["maximal"]) or "(none)")
        table.add_row("supported platforms", f"{len(plats['supported'])}")
        unknown = [c for c, v in plats["capabilities"].items() if v["has"] == "unknown"]
        if unknown:
            table.add_row("unknown capabilities", ", ".join(unknown))
    if s.get("guests") is not None:
        table.add_row(
            "running guests",
            ", ".join(f"{g['name']} (pid {g['pid']})" for g in s["guests"]) or "(none)",
        )
    for name, err in s["errors"].items():
        table.add_row(Text(name, style="red"), Text(err))
    console.print(table)


def _kv(props: dict) -> str:
    return (" " + ",".join(f"{k}={v}" for k, v in props.items())) if props else ""


def _ident(item: dict) -> str:
    return f" id={item['id']}" if item.get("id") else ""


def render_vm(console: Console, title: str, doc: dict[str, Any]) -> None:
    """``migcheck cmdline``: what was understood of a command line, from its (redacted)
    JSON form."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    machine, cpu = doc["machine"], doc["cpu"]
    # What the command line leaves to QEMU, marked where the value would be.
    guessed = {a["what"]: a for a in doc.get("assumed", [])}

    def mark(what: str, shown: str) -> str:
        a = guessed.get(what)
        if a is None:
            return shown
        return f"(assumed: {a['why']})"  # the reason names the value

    rows = [
        ("binary", doc["binary"] or "-"),
        ("machine", mark("machine", (machine["type"] or "") + _kv(machine["options"]))),
        ("accel", mark("accel", ":".join(doc["accel"]))),
        ("cpu", mark("cpu", (cpu["model"] or "") + _kv(cpu["features"]) + _kv(cpu["props"]))),
        ("platform", doc["platform"] or "(not pinned)"),
    ]
    rows += [(what, mark(what, "")) for what in ("smp", "memory") if what in guessed]
    rows += [
        (
            "device",
            d["driver"]
            + _ident(d)
            + _kv(d["props"])
            + (
                f"  (assumed: {d['assumed']})"
                if d.get("assumed")
                else ("" if d["origin"] == "-device" else f"  ({d['origin']})")
            ),
        )
        for d in doc["devices"]
    ]
    rows += [
        ("readconfig", r["path"] + ("" if r["read"] else f": {r['error']}"))
        for r in doc["readconfig"]
    ]
    rows += [("incomplete", gap) for gap in doc["device_gaps"]]
    rows += [("netdev", n["type"] + _ident(n) + _kv(n["props"])) for n in doc["netdevs"]]
    rows += [("object", o["qom-type"] + _ident(o) + _kv(o["props"])) for o in doc["objects"]]
    rows += [("global", f"{g['driver']}.{g['property']}={g['value']}") for g in doc["globals"]]
    for what, value in rows:
        table.add_row(what, Text(value))
    console.print(table)
