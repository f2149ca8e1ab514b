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
    vm: VmSpec, src: Facts, dst: Facts, *, strict: bool = False, catalog: Catalog | None = None
) -> PairReport:
    """Run every check for one direction. An unknown ``-platform`` is bad input (exit 2)."""
    ctx = Context(vm, src, dst, catalog)
    if vm.platform is not None:
        ctx.platforms.platform(vm.platform)  # raises InputError listing the known platforms
    findings = tuple(run_checks(ctx))
    return PairReport(vm, src, dst, findings, decide(findings, strict=strict))
