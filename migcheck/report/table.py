"""The operator's view: a one-line verdict, then a table of why and what to change."""

from __future__ import annotations

from typing import Any

from migcheck.findings import Finding, Status
from migcheck.pair import PairReport
from migcheck.report.term import Cell, Column, Span, Terminal, fit, render_table
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


def verdict_line(report: PairReport) -> list[Span]:
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
    return [
        (report.verdict.value.upper(), _VERDICT_STYLE[report.verdict]),
        (f"  {report.src.name} -> {report.dst.name}: {why}", None),
    ]


def assumed_value(v: Any, why: str | None) -> str:
    """A value as shown, marked when migcheck assumed it rather than read it."""
    return _value(v) + (f" (assumed: {why})" if why and v is not None else "")


# Below this width the source and destination values move into the "why" column, so the
# reason and the fix are never cut off in an 80-column terminal or a CI log.
WIDE = 130


def _why(f: Finding, with_values: bool, room: int = 0) -> Cell:
    """The message, then (``with_values``) both values on one line if it fits in ``room``
    columns, else a line each (a value is never parted from its label), what was assumed,
    and a pointer to the fix."""
    why: list[Span] = [(line, None) for line in f.message.split("\n")]
    assumed = f.assumptions
    if with_values and (f.source is not None or f.destination is not None):
        src_why, dst_why = assumed.get("source"), assumed.get("destination")
        both: list[Span] = []
        if src_why and src_why == dst_why and f.source is not None and f.destination is not None:
            src_why = dst_why = None
            both = [(f"(both assumed: {assumed['source']})", "dim")]
        src = f"source: {assumed_value(f.source, src_why)}"
        dst = f"destination: {assumed_value(f.destination, dst_why)}"
        if len(src) + 2 + len(dst) <= room:
            why.append((f"{src}  {dst}", "dim"))
        else:
            why += [(src, "dim"), (dst, "dim")]
        why += both
    if assumed.get("guest"):
        why.append((f"assumed: {assumed['guest']}", "italic"))
    if f.fix and f.status is not Status.PASS:
        why.append(("fix: see below", "bold"))
    return why


# Failures first, then what cannot be told, then warnings: what an operator must act on.
_ORDER = {Status.FAIL: 0, Status.UNKNOWN: 1, Status.WARN: 2, Status.PASS: 3}


def render_pair(term: Terminal, report: PairReport, verbose: bool = False) -> None:
    term.print(*verdict_line(report))
    findings = sorted(report.findings, key=lambda f: _ORDER[f.status])  # stable: ids keep order
    shown = findings if verbose else [f for f in findings if f.status is not Status.PASS]
    passed = [f for f in findings if f.status is Status.PASS]
    wide = term.width >= WIDE
    if shown:
        columns = [Column(("check",), wrap=False), Column(("result",), wrap=False)]
        if wide:
            columns.append(Column(("source", report.src.name), max_width=30))
            columns.append(Column(("destination", report.dst.name), max_width=30))
        columns.append(Column(("why",)))
        rows: list[list[Cell]] = []
        for f in shown:
            status: Cell = [(f.status.value, _STATUS_STYLE[f.status])]
            if wide:
                marks = f.assumptions
                values: list[Cell] = [
                    [(assumed_value(f.source, marks.get("source")), None)],
                    [(assumed_value(f.destination, marks.get("destination")), None)],
                ]
                rows.append([[(f.id, None)], status, *values, _why(f, False)])
            else:
                # The why column gets what the check and result columns leave.
                room = term.width - max(len(x.id) for x in shown) - len("unknown") - 10
                rows.append([[(f.id, None)], status, _why(f, True, room)])
        for line in render_table(term, columns, rows, lines_between_rows=not wide):
            term.stream.write(line + "\n")
    if passed and not verbose:
        other = "other " if shown else ""
        term.print((f"pass  {len(passed)} {other}checks passed (-v lists them)", "green"))
    fixes = [f for f in findings if f.fix and f.status is not Status.PASS]
    if fixes:
        term.print(("fixes (each on one line, to copy as is):", "bold"))
        for f in fixes:
            # Never broken by migcheck; the terminal wraps it for display only, so a copied
            # fix is the exact text (options are never split).
            term.print((f"  {f.id}: {f.fix}", None))
    guessed = report.vm.assumptions()
    if guessed:
        # What the command line leaves to QEMU: judged as QEMU's defaults, said once here.
        parts = ["assumed (the command line does not say):"]
        parts += [f"{a.why};" for a in guessed]
        parts[-1] = parts[-1].rstrip(";")
        for line in fit(parts, term.width):
            term.print((line, "italic"))
    # Broken only between parts: where the line does not fit, "(kernel X, QEMU Y)" goes to a
    # line of its own instead of the terminal cutting it after "(kernel "; a path too long
    # for a line is still whole (the terminal wraps it for display only).
    for side, facts in (("source", report.src), ("destination", report.dst)):
        kernel, qemu = facts.kernel_release or "?", facts.qemu_version or "?"
        for line in fit([f"{side}: {facts.origin}", f"(kernel {kernel}, QEMU {qemu})"], term.width):
            term.print((line, "dim"))
    for facts in (report.src, report.dst):
        if facts.cache_note:
            for line in fit([f"{facts.origin}:", facts.cache_note], term.width):
                term.print((line, "dim"))
    if shown:
        # The verdict again, last: a table taller than the terminal has scrolled the first
        # line away, and the last is where the cursor leaves the operator's eye.
        term.print(*verdict_line(report))


def both_ways_line(forward: PairReport, reverse: PairReport, verdict: Verdict) -> list[Span]:
    """One line at the end of --both-ways: the verdict for the round trip."""
    return [
        (f"BOTH WAYS {verdict.value.upper()}", _VERDICT_STYLE[verdict]),
        (
            f"  {forward.src.name} -> {forward.dst.name}: {forward.verdict.value}; "
            f"{reverse.src.name} -> {reverse.dst.name}: {reverse.verdict.value}",
            None,
        ),
    ]
