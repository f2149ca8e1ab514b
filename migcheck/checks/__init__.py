"""Every check, registered by the module its ids name (``kernel.*`` in ``kernel.py``).

A check registers itself with :func:`migcheck.checks.registry.check`; see CONTRIBUTING.md
to add one. ``REPORT_ORDER`` is the order findings appear in, by module.
"""

from __future__ import annotations

from migcheck.checks.base import Context, Finding, Status
from migcheck.checks.registry import Check, CheckInfo, registered

# Report order, by module; a new check module is named here and imported below.
REPORT_ORDER = (
    "cmdline",
    "machine",
    "device",
    "firmware",
    "compat",
    "cpu",
    "accel",
    "kvm",
    "platform",
    "kernel",
    "host",
    "blocker",
    "qemu",
    "trial",
)

from migcheck.checks import (  # noqa: E402, F401  (importing registers the checks)
    accel,
    blocker,
    cmdline,
    compat,
    cpu,
    device,
    firmware,
    host,
    kernel,
    kvm,
    machine,
    platform,
    qemu,
    trial,
)


def run_checks(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for info in registered():
        findings.extend(info.func(ctx))
    return findings


__all__ = ["Check", "CheckInfo", "Context", "Finding", "Status", "registered", "run_checks"]
