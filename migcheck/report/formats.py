"""Every output format, in one registry, and the one place secrets are redacted.

A command asks for a format by name; the registry redacts the judgment once (findings'
messages, values and fixes: command-line secrets never reach any output) and hands the
redacted data to the renderer. Renderers never redact, judge or read the catalog.

Renderers either return text (JSON, JUnit, Markdown, HTML: written to stdout or a file
as is) or draw on a rich console (tables). They receive a function that makes the console,
so the text formats never import rich (~20 ms: a CI gate reading JSON does not pay it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from migcheck.findings import Finding
from migcheck.redact import redact_json, redact_text
from migcheck.verdict import Verdict

if TYPE_CHECKING:  # ~6 ms of imports that pair never needs
    from rich.console import Console

    from migcheck.fleet import Change, FleetResult
    from migcheck.pair import PairReport  # the checks: imported while SSH hosts answer

ConsoleMaker = Callable[[], "Console"]


def redact_finding(f: Finding) -> Finding:
    message = redact_text(f.message)
    source = redact_json(f.source)
    destination = redact_json(f.destination)
    fix = redact_text(f.fix) if f.fix else f.fix
    if (message, source, destination, fix) == (f.message, f.source, f.destination, f.fix):
        return f  # nothing to hide (the usual case): a fleet report redacts ~30,000 findings
    return replace(f, message=message, source=source, destination=destination, fix=fix)


def redact_report(report: PairReport) -> PairReport:
    return replace(report, findings=tuple(redact_finding(f) for f in report.findings))


def redact_fleet(result: FleetResult) -> FleetResult:
    cells = {
        key: replace(
            cell,
            report=redact_report(cell.report),
            reverse=redact_report(cell.reverse) if cell.reverse else None,
        )
        for key, cell in result.cells.items()
    }
    blocked = {k: [redact_finding(f) for f in fs] for k, fs in result.cannot_start.items()}
    failed = {h: redact_text(why) for h, why in result.failed_hosts.items()}
    return replace(result, cells=cells, cannot_start=blocked, failed_hosts=failed)


# --- pair ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairView:
    """A redacted judgment of one guest, one or both directions."""

    forward: PairReport
    reverse: PairReport | None
    verdict: Verdict
    verbose: bool = False  # tables: list passed checks instead of one folded line

    @property
    def reports(self) -> list[PairReport]:
        return [self.forward] + ([self.reverse] if self.reverse else [])


def _pair_table(view: PairView, _: ConsoleMaker) -> None:
    from migcheck.report.table import both_ways_line, render_pair
    from migcheck.report.term import Terminal

    term = Terminal()  # not rich: ~30 ms less for the command CI gates run most
    render_pair(term, view.forward, verbose=view.verbose)
    if view.reverse is not None:
        term.print()
        render_pair(term, view.reverse, verbose=view.verbose)
        term.print()
        term.print(*both_ways_line(view.forward, view.reverse, view.verdict))
    term.stream.flush()


def _pair_json(view: PairView, _: ConsoleMaker) -> str:
    from migcheck.report.json import render_pair

    return render_pair(view.forward, view.reverse, view.verdict)


def _pair_junit(view: PairView, _: ConsoleMaker) -> str:
    from migcheck.report.pair_ci import render_junit

    return render_junit(view.reports)


def _pair_markdown(view: PairView, _: ConsoleMaker) -> str:
    from migcheck.report.pair_ci import render_markdown

    return render_markdown(view.reports, view.verdict.value)


PAIR_FORMATS: dict[str, Callable[[PairView, ConsoleMaker], str | None]] = {
    "table": _pair_table,
    "json": _pair_json,
    "junit": _pair_junit,
    "markdown": _pair_markdown,
}


def render_pair(
    fmt: str,
    forward: PairReport,
    reverse: PairReport | None,
    verdict: Verdict,
    make_console: ConsoleMaker,
    verbose: bool = False,
) -> str | None:
    """Text to write, or None when the renderer drew on the console ``make_console`` made."""
    view = PairView(
        redact_report(forward), redact_report(reverse) if reverse else None, verdict, verbose
    )
    return PAIR_FORMATS[fmt](view, make_console)


# --- fleet -----------------------------------------------------------------------------------


def _fleet_table(
    result: FleetResult, changes: Sequence[Change] | None, make_console: ConsoleMaker
) -> None:
    from migcheck.report.fleet import render_table

    render_table(make_console(), result, changes)


def _fleet_text(name: str) -> Callable[[FleetResult, Sequence[Change] | None, ConsoleMaker], str]:
    def render(result: FleetResult, changes: Sequence[Change] | None, _: ConsoleMaker) -> str:
        if name == "html":
            from migcheck.report.html import render_html

            return render_html(result, changes)
        from migcheck.report import fleet

        renderer: Any = {
            "json": fleet.render_json,
            "junit": fleet.render_junit,
            "markdown": fleet.render_markdown,
        }[name]
        return renderer(result, changes)

    return render


FLEET_FORMATS: dict[
    str, Callable[[FleetResult, Sequence[Change] | None, ConsoleMaker], str | None]
] = {
    "table": _fleet_table,
    "json": _fleet_text("json"),
    "junit": _fleet_text("junit"),
    "markdown": _fleet_text("markdown"),
    "html": _fleet_text("html"),
}

# The format a report file's extension asks for (``-o gate.xml``).
EXTENSIONS = {".json": "json", ".xml": "junit", ".md": "markdown", ".html": "html"}


def render_fleet(
    fmt: str, result: FleetResult, changes: Sequence[Change] | None, make_console: ConsoleMaker
) -> str | None:
    return FLEET_FORMATS[fmt](redact_fleet(result), changes, make_console)


class FleetReports:
    """One fleet judgment in several formats (``-f json -o gate.json -o gate.xml``):
    redacted once, each text format rendered once (a 1,000-host report is ~1.5 MB of JSON)."""

    def __init__(self, result: FleetResult, changes: Sequence[Change] | None) -> None:
        self._result = result
        self._changes = changes
        self._redacted: FleetResult | None = None
        self._texts: dict[str, str | None] = {}

    def render(self, fmt: str, make_console: ConsoleMaker) -> str | None:
        """Text to write, or None when the renderer drew on the console (tables)."""
        if fmt in self._texts:
            return self._texts[fmt]
        if self._redacted is None:
            self._redacted = redact_fleet(self._result)
        text = FLEET_FORMATS[fmt](self._redacted, self._changes, make_console)
        if text is not None:
            self._texts[fmt] = text
        return text


__all__ = [
    "EXTENSIONS",
    "FLEET_FORMATS",
    "PAIR_FORMATS",
    "FleetReports",
    "redact_fleet",
    "redact_report",
    "render_fleet",
    "render_pair",
]
