"""Render fleet results: a rich matrix for people, JSON, JUnit XML and Markdown for CI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.table import Table
from rich.text import Text

from migcheck import __version__
from migcheck.fleet import Cell, Change, FleetResult, HostClass, overall_verdict
from migcheck.textsafe import md_code, md_text
from migcheck.verdict import Verdict

FLEET_SCHEMA = "migcheck.fleet/1"
_MARK = {Verdict.SAFE: "ok", Verdict.UNSAFE: "FAIL", Verdict.UNKNOWN: "?"}
_STYLE = {Verdict.SAFE: "green", Verdict.UNSAFE: "bold red", Verdict.UNKNOWN: "magenta"}
_MD = {Verdict.SAFE: "✅", Verdict.UNSAFE: "❌", Verdict.UNKNOWN: "❔"}


def _hosts_text(cls: HostClass, limit: int = 4) -> str:
    shown = ", ".join(cls.hosts[:limit])
    return shown + (f" +{len(cls.hosts) - limit}" if len(cls.hosts) > limit else "")


def _guest_name(result: FleetResult, g: int) -> str:
    from pathlib import PurePath

    return PurePath(result.guests[g].source).name


def _cannot_run(result: FleetResult, g: int, a: str, b: str) -> bool:
    return result.runnable.get((g, a)) is False or result.runnable.get((g, b)) is False


_INCOMPLETE = "INCOMPLETE: interrupted (Ctrl-C); only what was judged is shown"


# --- JSON ----------------------------------------------------------------------------------


def fleet_json(result: FleetResult, changes: Sequence[Change] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": FLEET_SCHEMA,
        "migcheck_version": __version__,
        "verdict": result.verdict.value,
        "complete": result.complete,
        "both_ways": result.both_ways,
        "hosts": [{"name": h, "class": c} for h, c in result.host_class.items()],
        "failed_hosts": result.failed_hosts,
        "classes": [
            {
                "id": c.id,
                "hosts": c.hosts,
                "qemu": c.facts.qemu_version,
                "kernel": c.facts.kernel_release,
                "cpu": c.facts.cpu_summary,
                "effective_platform": c.effective_platform,
                "assumed": c.facts.assumed,  # --assume: derived from the catalog, not measured
            }
            for c in result.classes
        ],
        # Guest migrations between host pairs by verdict, as the table's last line counts.
        "counts": result.counts(),
        "common_platform": result.common_platform.id if result.common_platform else None,
        "baseline_cpu": result.baseline_cpu,
        "guests": [],
    }
    for g, vm in enumerate(result.guests):
        cells = [c for (gi, _, _), c in result.cells.items() if gi == g]
        doc["guests"].append(
            {
                "source": vm.source,
                "vm": vm.to_json(),
                "runnable": {c.id: result.runnable[(g, c.id)] for c in result.classes},
                "cells": [_cell_json(c) for c in cells],
                "stranding": result.stranding(g),
            }
        )
    if changes is not None:
        doc["whatif"] = {
            "regressions": sum(c.pairs for c in changes if c.regression),
            "changes": [
                {
                    "guest": result.guests[c.guest].source,
                    "sources": list(c.src),
                    "destinations": list(c.dst),
                    "before": c.before.value if c.before else None,
                    "after": c.after.value if c.after else None,
                    "regression": c.regression,
                    "pairs": c.pairs,
                    "reasons": list(c.reasons),
                }
                for c in changes
            ],
        }
    return doc  # findings arrive redacted (report/formats.py); VM JSON redacts itself


def _cell_json(cell: Cell) -> dict[str, Any]:
    out = {
        "source": cell.src,
        "destination": cell.dst,
        "verdict": cell.verdict.value,
        "failing": cell.failing,
        "checks": [f.to_json() for f in cell.report.findings if f.status.value != "pass"],
    }
    if cell.reverse is not None:
        out["reverse_checks"] = [
            f.to_json() for f in cell.reverse.findings if f.status.value != "pass"
        ]
    return out


def render_json(result: FleetResult, changes: Sequence[Change] | None = None) -> str:
    return json.dumps(fleet_json(result, changes), indent=2, default=str) + "\n"


# --- JUnit XML -----------------------------------------------------------------------------


def _cell_details(cell: Cell) -> str:
    lines = []
    for label, report in (("forward", cell.report), ("back", cell.reverse)):
        if report is None:
            continue
        for f in report.findings:
            if f.status.value in ("fail", "unknown"):
                fix = f" | fix: {f.fix}" if f.fix else ""
                lines.append(f"[{label}] {f.id} ({f.status.value}): {f.message}{fix}")
    return "\n".join(lines)


def render_junit(result: FleetResult, changes: Sequence[Change] | None = None) -> str:
    """One testcase per guest x class pair; failures carry the reasons. Readable by GitLab,
    Jenkins and the common GitHub test-report actions (testsuites/testsuite/testcase)."""
    root = ET.Element("testsuites", name="migcheck fleet")
    total = failures = errors = 0
    if result.failed_hosts:
        suite = ET.SubElement(root, "testsuite", name="gather")
        for host, why in result.failed_hosts.items():
            case = ET.SubElement(suite, "testcase", classname="gather", name=host, time="0")
            ET.SubElement(case, "error", message=why, type="unreachable").text = why
        suite.set("tests", str(len(result.failed_hosts)))
        suite.set("errors", str(len(result.failed_hosts)))
        suite.set("failures", "0")
        total += len(result.failed_hosts)
        errors += len(result.failed_hosts)
    for g, _vm in enumerate(result.guests):
        name = _guest_name(result, g)
        suite = ET.SubElement(root, "testsuite", name=f"guest {name}")
        s_tests = s_fail = s_err = 0
        for (gi, a, b), cell in result.cells.items():
            if gi != g:
                continue
            src, dst = result.class_by_id(a), result.class_by_id(b)
            case_name = f"{a} ({_hosts_text(src)}) -> {b} ({_hosts_text(dst)})"
            case = ET.SubElement(suite, "testcase", classname=name, name=case_name, time="0")
            s_tests += 1
            if cell.verdict is Verdict.UNSAFE:
                s_fail += 1
                el = ET.SubElement(
                    case, "failure", message="unsafe: " + ", ".join(cell.failing), type="unsafe"
                )
                el.text = _cell_details(cell)
            elif cell.verdict is Verdict.UNKNOWN:
                s_err += 1
                el = ET.SubElement(
                    case, "error", message="unknown: " + ", ".join(cell.failing), type="unknown"
                )
                el.text = _cell_details(cell)
        suite.set("tests", str(s_tests))
        suite.set("failures", str(s_fail))
        suite.set("errors", str(s_err))
        total, failures, errors = total + s_tests, failures + s_fail, errors + s_err
    if changes is not None:
        suite = ET.SubElement(root, "testsuite", name="what-if")
        regressions = [c for c in changes if c.regression]
        for c in regressions:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"what-if {_guest_name(result, c.guest)}",
                name=f"{','.join(c.src[:3])} -> {','.join(c.dst[:3])}",
                time="0",
            )
            el = ET.SubElement(
                case,
                "failure",
                message=f"becomes {c.after.value if c.after else 'unsafe'}",
                type="regression",
            )
            el.text = "; ".join(c.reasons)
        if not regressions:
            ET.SubElement(suite, "testcase", classname="what-if", name="no regression", time="0")
        suite.set("tests", str(max(1, len(regressions))))
        suite.set("failures", str(len(regressions)))
        suite.set("errors", "0")
        total += max(1, len(regressions))
        failures += len(regressions)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- Markdown ------------------------------------------------------------------------------


def render_markdown(result: FleetResult, changes: Sequence[Change] | None = None) -> str:
    v = result.verdict
    out = [f"## migcheck fleet: {_MD[v]} {v.value}", ""]
    if not result.complete:
        out += [f"**{_INCOMPLETE}**", ""]
    out.append(
        f"{len(result.host_class)} hosts in {len(result.classes)} classes, "
        f"{len(result.guests)} guests. Common platform: "
        f"`{result.common_platform.id if result.common_platform else 'none'}`; "
        f"baseline CPU model: `{result.baseline_cpu or 'none'}`."
    )
    if result.failed_hosts:
        out += [
            "",
            "**Not gathered:** "
            + ", ".join(f"{md_code(h)} ({md_text(w)})" for h, w in result.failed_hosts.items()),
        ]
    out += ["", "| class | hosts | QEMU | kernel |", "|---|---|---|---|"]
    for c in result.classes:
        out.append(
            f"| {c.id} | {md_text(_hosts_text(c))} | {md_text(c.facts.qemu_version)} "
            f"| {md_text(c.facts.kernel_release)} |"
        )
    for g in range(len(result.guests)):
        out += ["", f"### {md_code(_guest_name(result, g))}", ""]
        ids = [c.id for c in result.classes]
        out.append("| from \\ to | " + " | ".join(ids) + " |")
        out.append("|---|" + "---|" * len(ids))
        for a in ids:
            row = []
            for b in ids:
                cell = result.cells.get((g, a, b))
                if cell:
                    row.append(_MD[cell.verdict])
                else:
                    row.append("—" if _cannot_run(result, g, a, b) else "·")
            out.append(f"| **{a}** | " + " | ".join(row) + " |")
        bad = [
            c for (gi, _, _), c in result.cells.items() if gi == g and c.verdict is not Verdict.SAFE
        ]
        for cell in bad:
            out.append(f"- {cell.src} → {cell.dst}: " + ", ".join(f"`{f}`" for f in cell.failing))
    if changes is not None:
        regressions = [c for c in changes if c.regression]
        out += ["", f"### What-if: {len(regressions)} regressions", ""]
        for c in changes:
            before = c.before.value if c.before else "n/a"
            after = c.after.value if c.after else "n/a"
            out.append(
                f"- {md_code(_guest_name(result, c.guest))} {md_text(', '.join(c.src[:3]))} → "
                f"{md_text(', '.join(c.dst[:3]))}: {before} → **{after}** ({c.pairs} pairs) "
                + ", ".join(md_code(r) for r in c.reasons)
            )
    return "\n".join(out) + "\n"


# --- the terminal table --------------------------------------------------------------------


def print_fitted(
    console: Console,
    parts: list[str],
    style: str | None = None,
    indent: str = "  ",
) -> None:
    """``parts`` on lines of at most the console's width, broken only between parts
    (:func:`migcheck.report.term.fit`), printed as they are: rich does not wrap them again."""
    from migcheck.report.term import fit

    for line in fit(parts, console.width, indent=indent):
        console.print(Text(line, style=style or ""), soft_wrap=True)


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _marked(value: object, key: str, assumed: dict[str, str]) -> str:
    """A host class's value, marked when ``fleet --assume`` assumed it."""
    return f"{value} (assumed)" if key in assumed else str(value)


def verdict_parts(result: FleetResult, changes: Sequence[Change] | None = None) -> list[str]:
    """The table's last line, in parts that may go to separate lines (never split): the
    verdict the exit code states (:func:`migcheck.fleet.overall_verdict`), then what it
    counts (guest migrations between host pairs, as in the HTML report)."""
    v = overall_verdict(result, changes)
    counts = result.counts()
    parts = [v.value.upper() + " "]
    if changes is not None:
        regressions = [c for c in changes if c.regression]
        unsafe = sum(1 for c in regressions if c.became_unsafe)
        parts.append(f"what-if: {_n(len(regressions), 'regression')}")
        if regressions:
            parts[-1] += f" ({unsafe} become unsafe)"
        parts.append(f"in {_n(len(changes), 'verdict change')}")
    elif not result.cells and result.complete:
        parts += ["fleet: nothing judged", "(no two hosts the guests can run on)"]
    else:
        parts += [
            f"fleet: {counts['unsafe']} unsafe,",
            f"{counts['unknown']} unknown,",
            f"{counts['safe']} safe,",
        ]
        if counts["cannot-run"]:
            parts.append(f"{counts['cannot-run']} cannot run")
        else:
            parts[-1] = parts[-1].rstrip(",")
        parts.append("(guest migrations)")
    if result.failed_hosts:
        parts[-1] += ";"
        parts.append(f"{_n(len(result.failed_hosts), 'host')} not gathered")
    if not result.complete:
        parts[-1] += ";"
        parts.append("interrupted: incomplete")
    return parts


def _print_verdict(console: Console, result: FleetResult, changes: Sequence[Change] | None) -> None:
    from migcheck.report.term import fit

    v = overall_verdict(result, changes)
    lines = fit(verdict_parts(result, changes), console.width)
    word = v.value.upper()
    first = Text(word, style=_STYLE[v])
    first.append(lines[0][len(word) :])
    console.print(first, soft_wrap=True)
    for line in lines[1:]:
        console.print(Text(line), soft_wrap=True)


def render_table(
    console: Console, result: FleetResult, changes: Sequence[Change] | None = None
) -> None:
    console.print(
        Text.assemble(
            ("migcheck fleet", "bold"),
            f": {_n(len(result.host_class), 'host')} in "
            f"{_n(len(result.classes), 'class', 'classes')}, "
            f"{_n(len(result.guests), 'guest')}",
        )
    )
    if not result.complete:
        console.print(_INCOMPLETE, style="bold yellow", highlight=False)
    console.print("host classes (hosts identical for migration):", style="bold", highlight=False)
    classes = Table(header_style="bold")
    for col in ("class", "hosts", "QEMU", "kernel", "CPU"):
        classes.add_column(col, overflow="fold")
    for c in result.classes:
        assumed = c.facts.assumed
        classes.add_row(
            c.id,
            _hosts_text(c, 6),
            _marked(c.facts.qemu_version, "qemu", assumed),
            _marked(c.facts.kernel_release, "kernel", assumed),
            str(c.facts.cpu_summary),
        )
    console.print(classes)
    for g in range(len(result.guests)):
        # The heading is a line of its own: a table title would be centred and wrapped
        # within the matrix's narrow width.
        console.print()
        print_fitted(
            console,
            [f"guest {_guest_name(result, g)}:", "source class (rows) -> destination (columns)"],
            style="bold",
        )
        table = Table(header_style="bold")
        table.add_column("from \\ to", style="bold")
        for c in result.classes:
            table.add_column(c.id, justify="center")
        for a in result.classes:
            row: list[Text | str] = [a.id]
            for b in result.classes:
                cell = result.cells.get((g, a.id, b.id))
                if cell:
                    row.append(Text(_MARK[cell.verdict], style=_STYLE[cell.verdict]))
                else:
                    row.append("-" if _cannot_run(result, g, a.id, b.id) else "·")
            table.add_row(*row)
        console.print(table)
        for (gi, a, b), cell in result.cells.items():
            if gi == g and cell.verdict is not Verdict.SAFE:
                print_fitted(console, [f"  {a} -> {b}:", ", ".join(cell.failing)], indent="    ")
    print_fitted(
        console,
        [
            "legend:",
            "ok = safe,",
            "FAIL = unsafe,",
            "? = unknown,",
            "- = the guest cannot run there,",
            "· = one host (no migration)",
        ],
        style="dim",
    )
    print_fitted(
        console,
        [
            "common platform:",
            f"{result.common_platform.id if result.common_platform else 'none'};",
            "baseline CPU model:",
            result.baseline_cpu or "none usable on every host",
        ],
    )
    if result.failed_hosts:
        print_fitted(
            console,
            ["not gathered:"] + [f"{h} ({w})" for h, w in result.failed_hosts.items()],
            style="magenta",
        )
    if changes is not None:
        regressions = [c for c in changes if c.regression]
        console.print(
            Text(
                f"what-if: {_n(len(changes), 'verdict change')}, "
                f"{_n(len(regressions), 'regression')}",
                style="bold red" if regressions else "green",
            )
        )
        for c in changes:
            before = c.before.value if c.before else "cannot run"
            after = c.after.value if c.after else "cannot run"
            parts = [
                f"  {_guest_name(result, c.guest)}:",
                f"{', '.join(c.src[:3])} -> {', '.join(c.dst[:3])}",
                f"({_n(c.pairs, 'pair')}):",
                f"{before} -> {after}",
            ]
            if c.reasons:
                parts.append(f"[{', '.join(c.reasons)}]")
            print_fitted(console, parts, indent="    ")
    # Last, where the terminal leaves the cursor: the verdict the exit code states.
    _print_verdict(console, result, changes)
