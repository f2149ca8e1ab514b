"""Judge one guest between two hosts: the library call behind ``migcheck pair``."""

from __future__ import annotations

from dataclasses import dataclass

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


def check_pair(vm: VmSpec, src: Facts, dst: Facts, *, strict: bool = False) -> PairReport:
    findings = tuple(run_checks(Context(vm, src, dst)))
    return PairReport(vm, src, dst, findings, decide(findings, strict=strict))
