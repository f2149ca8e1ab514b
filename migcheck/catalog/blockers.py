"""Loading ``data/qemu/blockers.toml``: configurations QEMU refuses to live-migrate, with
the condition that lifts each, its version range, severity and sources. Matching a guest
against them is :mod:`migcheck.blockers`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migcheck.catalog.toml import CatalogError, _sources, check_option
from migcheck.catalog.toml import read_toml as _read

MATCH_KINDS = ("device", "object", "cpu_feature", "cpu_prop", "option")
UNLESS_KINDS = ("device_prop", "cpu_prop", "object_prop")
SEVERITIES = ("block", "warn")
ENTRY_KEYS = frozenset(
    {
        "id", "title", "match", "unless", "message", "fix", "verified", "note", "sources",
        "qemu_since", "qemu_until", "severity", "postcopy_only",
    }
)  # fmt: skip
# Option alternatives: the keys dependencies._option_matches() reads, plus two that only
# blockers need: ``value_re`` (a regular expression searched in the value of ``key``, or in
# the whole option value when ``key`` is absent: -drive file=fat:rw:DIR, -hda fat:rw:DIR)
# and ``also`` (further key = value pairs the same option must carry: -blockdev
# driver=vvfat,rw=on).
OPTION_KEYS = frozenset({"option", "key", "value", "value_re", "also"})


@dataclass(frozen=True)
class Blocker:
    id: str
    title: str
    match: Mapping[str, Any]
    unless: Mapping[str, Any]
    message: str
    fix: str
    verified: bool
    note: str
    sources: tuple[Mapping[str, str], ...]
    qemu_until: tuple[int, ...] | None = None  # QEMU release that lifted it, if any
    qemu_since: tuple[int, ...] | None = None  # QEMU release that added it, if known
    severity: str = "block"  # "block": QEMU refuses; "warn": migrates, but see message
    postcopy_only: bool = False  # refuses postcopy only; precopy is unaffected


class BlockerSet(tuple):  # type: ignore[type-arg]  # tuple[Blocker, ...] plus the audit range
    """The catalogued blockers, and the QEMU releases whose source the audit read
    (``[audit]`` in blockers.toml): a source QEMU newer than ``qemu_max`` may register
    blockers nobody has catalogued."""

    qemu_min: tuple[int, ...] | None = None
    qemu_max: tuple[int, ...] | None = None


def _blocker_set(
    blockers: list[Blocker], qemu_min: tuple[int, ...] | None, qemu_max: tuple[int, ...] | None
) -> BlockerSet:
    out = BlockerSet(blockers)
    out.qemu_min, out.qemu_max = qemu_min, qemu_max
    return out


def load_blockers(path: Path) -> BlockerSet:
    if not path.is_file():
        return BlockerSet()
    doc = _read(path)
    unknown = sorted(set(doc) - {"blocker", "audit"})
    if unknown:
        raise CatalogError(str(path), f"unknown top-level key(s) {', '.join(unknown)}")
    audit = doc.get("audit", {})
    if not isinstance(audit, dict) or not set(audit) <= {"qemu_min", "qemu_max", "note"}:
        raise CatalogError(f"{path} [audit]", "takes qemu_min, qemu_max and note")
    qemu_min = _version(audit.get("qemu_min"), f"{path} [audit]", "qemu_min")
    qemu_max = _version(audit.get("qemu_max"), f"{path} [audit]", "qemu_max")
    out = []
    seen: set[str] = set()
    for i, entry in enumerate(doc.get("blocker", [])):
        where = f"{path} blocker[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise CatalogError(where, "needs an 'id'")
        where = f"{path} [{entry['id']}]"
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            raise CatalogError(where, f"unknown key(s) {', '.join(unknown)}")
        if entry["id"] in seen:
            raise CatalogError(where, "duplicate id")
        seen.add(entry["id"])
        match = entry.get("match")
        if not isinstance(match, dict) or len(match) != 1 or next(iter(match)) not in MATCH_KINDS:
            raise CatalogError(where, f"'match' needs exactly one of {', '.join(MATCH_KINDS)}")
        _check_match(match, where)
        unless = entry.get("unless", {})
        if not isinstance(unless, dict) or not all(isinstance(c, dict) for c in unless.values()):
            raise CatalogError(where, "'unless' should be a table of tables")
        if not set(unless) <= set(UNLESS_KINDS):
            raise CatalogError(where, f"'unless' takes only {', '.join(UNLESS_KINDS)}")
        severity = entry.get("severity", "block")
        if severity not in SEVERITIES:
            raise CatalogError(where, f"'severity' should be one of {', '.join(SEVERITIES)}")
        for flag in ("verified", "postcopy_only"):
            if not isinstance(entry.get(flag, False), bool):
                raise CatalogError(where, f"{flag!r} should be true or false")
        since = _version(entry.get("qemu_since"), where, "qemu_since")
        until = _version(entry.get("qemu_until"), where, "qemu_until")
        if since is not None and until is not None and since >= until:
            raise CatalogError(where, "qemu_since should be older than qemu_until")
        for key in ("title", "message", "fix"):
            if not isinstance(entry.get(key), str):
                raise CatalogError(where, f"{key!r} is missing")
        out.append(
            Blocker(
                id=entry["id"],
                title=entry["title"],
                match=match,
                unless=unless,
                message=entry["message"],
                fix=entry["fix"],
                verified=entry.get("verified", False),
                note=str(entry.get("note", "")),
                sources=_sources(entry, where),
                qemu_until=until,
                qemu_since=since,
                severity=severity,
                postcopy_only=entry.get("postcopy_only", False),
            )
        )
    return _blocker_set(out, qemu_min, qemu_max)


def _check_match(match: Mapping[str, Any], where: str) -> None:
    """The target of each match kind has the shape triggered() reads."""
    kind, target = next(iter(match.items()))
    if kind in ("device", "object", "cpu_feature"):
        if not isinstance(target, list) or not all(isinstance(t, str) for t in target):
            raise CatalogError(where, f"match.{kind} should be a list of strings")
    elif kind == "cpu_prop":
        if not isinstance(target, dict):
            raise CatalogError(where, "match.cpu_prop should be a table")
    else:  # one option table, or a list of alternatives
        alternatives = target if isinstance(target, list) else [target]
        if not alternatives or not all(isinstance(a, dict) for a in alternatives):
            raise CatalogError(where, "match.option should be a table or a list of tables")
        for alternative in alternatives:
            check_option(alternative, f"{where} match.option")
            unknown = sorted(set(alternative) - OPTION_KEYS)
            if unknown:
                raise CatalogError(where, f"match.option: unknown key(s) {', '.join(unknown)}")
            if "value_re" in alternative:
                if "value" in alternative:
                    raise CatalogError(where, "match.option: 'value' or 'value_re', not both")
                try:
                    re.compile(str(alternative["value_re"]))
                except re.error as e:
                    raise CatalogError(where, f"match.option: bad value_re ({e})") from None
            also = alternative.get("also")
            if also is not None and (
                not isinstance(also, dict) or not also or "key" not in alternative
            ):
                raise CatalogError(where, "match.option: 'also' needs 'key' and a non-empty table")


def _version(value: Any, where: str, key: str = "qemu_until") -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(p) for p in str(value).split("."))
    except ValueError:
        raise CatalogError(where, f"{key} {value!r} is not a QEMU version") from None
