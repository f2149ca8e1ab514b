"""``pair`` for CI: JUnit XML (one testcase per check) and Markdown (for merge requests)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from migcheck.findings import Status
from migcheck.pair import PairReport
from migcheck.textsafe import md_text

_MD = {"safe": "✅", "unsafe": "❌", "unknown": "❔"}
_STATUS_MD = {Status.PASS: "✅", Status.WARN: "⚠️", Status.FAIL: "❌", Status.UNKNOWN: "❔"}


def _md(text: str) -> str:
    """Escaped for Markdown: HTML (the redaction marker included, which Markdown would
    take for a tag), table pipes, line breaks."""
    return md_text(text)


def render_junit(reports: list[PairReport]) -> str:
    root = ET.Element("testsuites", name="migcheck pair")
    totals = [0, 0, 0]
    for report in reports:
        name = f"{report.vm.source}: {report.src.name} -> {report.dst.name}"
        suite = ET.SubElement(root, "testsuite", name=name)
        fails = errors = 0
        for f in report.findings:
            case = ET.SubElement(suite, "testcase", classname=name, name=f.id, time="0")
            message = f.message
            detail = message + (f"\nfix: {f.fix}" if f.fix else "")
            if f.status is Status.FAIL:
                fails += 1
                ET.SubElement(case, "failure", message=message, type="unsafe").text = detail
            elif f.status is Status.UNKNOWN:
                errors += 1
                ET.SubElement(case, "error", message=message, type="unknown").text = detail
        suite.set("tests", str(len(report.findings)))
        suite.set("failures", str(fails))
        suite.set("errors", str(errors))
        totals = [totals[0] + len(report.findings), totals[1] + fails, totals[2] + errors]
    root.set("tests", str(totals[0]))
    root.set("failures", str(totals[1]))
    root.set("errors", str(totals[2]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_markdown(reports: list[PairReport], verdict: str) -> str:
    out = [f"## migcheck pair: {_MD[verdict]} {verdict}", ""]
    for report in reports:
        out += [
            f"### {_md(report.src.name)} → {_md(report.dst.name)}: {report.verdict.value}",
            "",
            "| check | result | why / fix |",
            "|---|---|---|",
        ]
        for f in report.findings:
            why = _md(f.message)
            if f.fix and f.status is not Status.PASS:
                why += f"<br>**fix:** {_md(f.fix)}"
            out.append(f"| `{f.id}` | {_STATUS_MD[f.status]} {f.status.value} | {why} |")
        out.append("")
    return "\n".join(out)
