"""Judge one guest between two hosts: the library call behind ``migcheck pair``."""

from __future__ import annotations

from dataclasses import dataclass

from migcheck.catalog import Catalog
from migcheck.checks import Context, Finding, run_checks
from migcheck.facts import Facts
from migcheck.verdict import Verdict, decide
from migcheck.vm import VmSpec


@dataclass(frozen=True)
class PairReport:
    vm: VmSpec
    src: Facts
    dst: Facts
    findings: tuple[Finding, ...]
    verdict: Verdict


def check_pair(
    vm: VmSpec,
    src: Facts,
    dst: Facts,
    *,
    strict: bool = False,
    catalog: Catalog | None = None,
    accept_unreviewed: bool = False,
) -> PairReport:
    """Run every check for one direction. An unknown ``-platform`` is bad input (exit 2).
    ``accept_unreviewed``: judge a QEMU newer than the catalog has reviewed with what is
    known (``qemu.reviewed`` warns instead of making the verdict unknown)."""
    ctx = Context(vm, src, dst, catalog, accept_unreviewed)
    if vm.platform is not None:
        ctx.platforms.platform(vm.platform)  # raises InputError listing the known platforms
    findings = tuple(run_checks(ctx))
    return PairReport(vm, src, dst, findings, decide(findings, strict=strict))
