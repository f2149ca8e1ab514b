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
        return out
