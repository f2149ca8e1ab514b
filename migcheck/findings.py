"""Findings: what a check records, and all any renderer or the fleet reads of a judgment.

Kept apart from ``migcheck.checks`` so renderers depend on recorded findings, never on the
checks that produced them (tests/test_layering.py holds that line).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Status(str, Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Finding:
    id: str  # stable, dotted: "machine.type"
    status: Status
    message: str  # plain language: why
    source: Any = None  # the value on the source host
    destination: Any = None  # the value on the destination host
    fix: str | None = None  # what to change, where one exists
    # What the judgment rests on that migcheck assumed instead of reading it from the
    # command line or the facts: ("source" | "destination", why) when that side's value is
    # assumed ("QEMU's default machine type: no -machine"), ("guest", why) for an input the
    # check assumed (the default BIOS image). Renderers mark those values "(assumed: why)".
    assumed: tuple[tuple[str, str], ...] = ()

    @property
    def assumptions(self) -> dict[str, str]:
        """``assumed`` as a mapping: "source", "destination", "guest" -> why."""
        out: dict[str, str] = {}
        for key, why in self.assumed:
            out[key] = f"{out[key]}; {why}" if key in out and why not in out[key] else why
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status.value,
            "message": self.message,
            "source": self.source,
            "destination": self.destination,
        }
        if self.fix:
            out["fix"] = self.fix
        if self.assumed:
            out["assumed"] = self.assumptions
        return out


def assumed_sides(why: str | None, *sides: str) -> tuple[tuple[str, str], ...]:
    """``Finding.assumed`` for values assumed for the same reason (none when ``why`` is
    None); ``sides`` defaults to both hosts."""
    if not why:
        return ()
    return tuple((side, why) for side in (sides or ("source", "destination")))
