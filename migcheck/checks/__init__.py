"""Every check, registered in report order (the import order below).

A check lives in the module its id names (``kernel.*`` in ``kernel.py``) and registers
itself with :func:`migcheck.checks.registry.check`; see CONTRIBUTING.md to add one.
"""

from __future__ import annotations

# Import order is report order.
from migcheck.checks import (  # noqa: F401
    accel,
    blocker,
    cmdline,
    cpu,
    host,
    kernel,
    machine,
    platform,
    qemu,
)
from migcheck.checks.base import Context, Finding, Status
from migcheck.checks.registry import Check, CheckInfo, registered


def run_checks(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for info in registered():
        findings.extend(info.func(ctx))
    return findings


__all__ = ["Check", "CheckInfo", "Context", "Finding", "Status", "registered", "run_checks"]
