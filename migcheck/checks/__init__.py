"""All checks, in report order. Each is a pure function of (VM spec, source, destination)."""

from __future__ import annotations

from collections.abc import Callable

from migcheck.checks import accel, blockers, cpu, host, machine, platform, qemu
from migcheck.checks.base import Context, Finding, Status

Check = Callable[[Context], list[Finding]]

ALL_CHECKS: tuple[Check, ...] = (
    machine.check_type,
    machine.check_alias,
    cpu.check_model,
    cpu.check_features,
    cpu.check_passthrough,
    cpu.check_nested,
    cpu.check_migratable,
    accel.check_kvm,
    platform.check_support,
    platform.check_device_defaults,
    platform.check_host_features,
    host.check_memory,
    blockers.check_blockers,
    qemu.check_version,
)


def run_checks(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for check in ALL_CHECKS:
        findings.extend(check(ctx))
    return findings


__all__ = ["ALL_CHECKS", "Context", "Finding", "Status", "run_checks"]
