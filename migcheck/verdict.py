"""Findings -> verdict. Fail closed: a fail is unsafe, anything unknown is unknown."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import Enum

from migcheck.errors import EXIT_SAFE, EXIT_UNKNOWN, EXIT_UNSAFE
from migcheck.findings import Finding, Status


class Verdict(str, Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"
    UNKNOWN = "unknown"

    @property
    def exit_code(self) -> int:
        return {Verdict.SAFE: EXIT_SAFE, Verdict.UNSAFE: EXIT_UNSAFE}.get(self, EXIT_UNKNOWN)


def decide(findings: Iterable[Finding], *, strict: bool = False) -> Verdict:
    """A fail wins over unknown: a known reason to refuse is the more useful answer.

    ``strict`` treats warnings as failures, for CI gates that want no surprises.
    """
    counts = Counter(f.status for f in findings)
    if counts[Status.FAIL] or (strict and counts[Status.WARN]):
        return Verdict.UNSAFE
    if counts[Status.UNKNOWN] or not counts:
        return Verdict.UNKNOWN
    return Verdict.SAFE


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """The verdict for several directions: the worst one, unsafe before unknown."""
    vs = list(verdicts)
    if Verdict.UNSAFE in vs:
        return Verdict.UNSAFE
    if Verdict.UNKNOWN in vs or not vs:
        return Verdict.UNKNOWN
    return Verdict.SAFE
