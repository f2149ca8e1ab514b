"""The JSON report: one stable document on stdout (field names are a documented contract)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from migcheck import __version__
from migcheck.facts import Facts
from migcheck.pair import PairReport
from migcheck.verdict import Verdict

REPORT_SCHEMA = "migcheck.report/1"


def host_json(facts: Facts) -> dict[str, Any]:
    return {
        "name": facts.name,
        "origin": facts.origin,
        "kernel": facts.kernel_release,
        "qemu": facts.qemu_version,
        "cpu": facts.cpu_summary,
        "cache": facts.cache_note,  # None: nothing came from the probe cache
        "assumed": facts.assumed,  # fleet --assume: values derived, not measured
    }


def pair_json(report: PairReport) -> dict[str, Any]:
    counts = Counter(f.status.value for f in report.findings)
    # Findings arrive redacted (report/formats.py); the VM's JSON form redacts itself.
    return {
        "verdict": report.verdict.value,
        "source": host_json(report.src),
        "destination": host_json(report.dst),
        "vm": report.vm.to_json(),
        "checks": [f.to_json() for f in report.findings],
        "summary": {s: counts.get(s, 0) for s in ("pass", "warn", "fail", "unknown")},
    }


def render_pair(
    report: PairReport, reverse: PairReport | None = None, verdict: Verdict | None = None
) -> str:
    doc: dict[str, Any] = {"schema": REPORT_SCHEMA, "migcheck_version": __version__}
    doc.update(pair_json(report))
    if reverse is not None:
        doc["verdict"] = (verdict or report.verdict).value
        doc["forward_verdict"] = report.verdict.value
        doc["reverse"] = pair_json(reverse)
    return json.dumps(doc, indent=2, default=str) + "\n"
