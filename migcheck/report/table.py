"""The operator's view: a one-line verdict, then a table of why and what to change."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from migcheck.findings import Finding, Status
from migcheck.pair import PairReport
from migcheck.verdict import Verdict

_STATUS_STYLE = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.UNKNOWN: "magenta",
}
_VERDICT_STYLE = {
    Verdict.SAFE: "bold green",
    Verdict.UNSAFE: "bold red",
    Verdict.UNKNOWN: "bold magenta",
}


def _value(v: Any) -> str:
    return _plain(v)


def _plain(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        if not v:
            return "(none)"
        shown = ", ".join(str(x) for x in v[:6])
        return shown + (f" +{len(v) - 6}" if len(v) > 6 else "")
    if isinstance(v, dict):
        return ", ".join(f"{k}={val}" for k, val in v.items())
    return str(v)


def verdict_line(report: PairReport) -> Text:
    fails = sum(1 for f in report.findings if f.status is Status.FAIL)
    unknowns = sum(1 for f in report.findings if f.status is Status.UNKNOWN)
    warns = sum(1 for f in report.findings if f.status is Status.WARN)
    why = {
        Verdict.SAFE: f"can live-migrate ({warns} warning{'s' * (warns != 1)})",
        Verdict.UNSAFE: f"cannot live-migrate safely ({fails} failed check{'s' * (fails != 1)})",
        Verdict.UNKNOWN: f"cannot tell ({unknowns} check{'s' * (unknowns != 1)} lack facts)",
    }[report.verdict]
    if report.verdict is Verdict.UNSAFE and not fails:
        why = f"unsafe under --strict ({warns} warning{'s' * (warns != 1)})"
    line = Text()
    line.append(report.verdict.value.upper(), style=_VERDICT_STYLE[report.verdict])
    line.append(f"  {report.src.name} -> {report.dst.name}: {why}")
    return line


# Below this width the source and destination values move into the "why" column, so the
# reason and the fix are never cut off in an 80-column terminal or a CI log.
WIDE = 130


def _why(f: Finding, with_values: bool) -> Text:
    why = Text(f.message)
    if with_values and (f.source is not None or f.destination is not None):
        why.append(
            f"\nsource: {_value(f.source)}  destination: {_value(f.destination)}", style="dim"
        )
    if f.fix and f.status is not Status.PASS:
        why.append("\nfix: see below", style="bold")
    return why


# Failures first, then what cannot be told, then warnings: what an operator must act on.
_ORDER = {Status.FAIL: 0, Status.UNKNOWN: 1, Status.WARN: 2, Status.PASS: 3}


def render_pair(console: Console, report: PairReport, verbose: bool = False) -> None:
    console.print(verdict_line(report))
    findings = sorted(report.findings, key=lambda f: _ORDER[f.status])  # stable: ids keep order
    shown = findings if verbose else [f for f in findings if f.status is not Status.PASS]
    passed = [f for f in findings if f.status is Status.PASS]
    wide = console.width >= WIDE
    if shown:
        table = Table(show_lines=not wide, expand=False, header_style="bold")
        table.add_column("check", no_wrap=True)
        table.add_column("result", no_wrap=True)
        if wide:
            table.add_column(f"source\n{escape(report.src.name)}", overflow="fold", max_width=30)
            table.add_column(
                f"destination\n{escape(report.dst.name)}", overflow="fold", max_width=30
            )
        table.add_column("why", overflow="fold", ratio=1)
        for f in shown:
            status = Text(f.status.value, style=_STATUS_STYLE[f.status])
            if wide:
                table.add_row(f.id, status, _value(f.source), _value(f.destination), _why(f, False))
            else:
                table.add_row(f.id, status, _why(f, True))
        console.print(table)
    if passed and not verbose:
        console.print(
            Text(f"pass  {len(passed)} other checks passed (-v lists them)", style="green")
        )
    fixes = [f for f in findings if f.fix and f.status is not Status.PASS]
    if fixes:
        console.print(Text("fixes (each on one line, to copy as is):", style="bold"))
        for f in fixes:
            # soft_wrap: never broken by migcheck; the terminal wraps it for display only, so
            # a copied fix is the exact text (options are never split).
            console.print(Text(f"  {f.id}: {f.fix}"), soft_wrap=True)
    src, dst = report.src, report.dst
    console.print(
        Text(
            f"source: {src.origin} (kernel {src.kernel_release or '?'}, "
            f"QEMU {src.qemu_version or '?'})\n"
            f"destination: {dst.origin} (kernel {dst.kernel_release or '?'}, "
            f"QEMU {dst.qemu_version or '?'})"
            + "".join(f"\n{f.origin}: {f.cache_note}" for f in (src, dst) if f.cache_note),
            style="dim",
        )
    )


def both_ways_line(forward: PairReport, reverse: PairReport, verdict: Verdict) -> Text:
    """One line at the end of --both-ways: the verdict for the round trip."""
    line = Text()
    line.append(f"BOTH WAYS {verdict.value.upper()}", style=_VERDICT_STYLE[verdict])
    line.append(
        f"  {forward.src.name} -> {forward.dst.name}: {forward.verdict.value}; "
        f"{reverse.src.name} -> {reverse.dst.name}: {reverse.verdict.value}"
    )
    return line
