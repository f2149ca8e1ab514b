"""QEMU migration blockers as data (``migcheck/catalog/data/qemu/blockers.toml``).

Each entry is a configuration QEMU itself refuses to live-migrate (it registers a
migration blocker or marks a device unmigratable), with the condition that lifts it and
the QEMU source that says so. ``severity = "warn"`` marks configurations QEMU migrates but
that change what the guest sees (host-backed identity such as TPM passthrough) or whose
blocker depends on the host at run time; ``postcopy_only`` marks refusals that hit only
postcopy migration, never the default precopy. The audit of every QEMU call site behind
the file is ``BLOCKERS-AUDIT.md`` beside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migcheck.catalog import _sources, check_option
from migcheck.catalog.toml import CatalogError
from migcheck.catalog.toml import read_toml as _read
from migcheck.cmdline import split_keyval
from migcheck.cpufeatures import canonical
from migcheck.vm import Device, VmSpec, as_bool

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


def _same(value: Any, want: Any) -> bool:
    if want == "*":
        return value is not None
    wb, vb = as_bool(want), as_bool(value)
    if wb is not None and vb is not None:
        return wb == vb
    return str(value) == str(want)


def _cpu_value(vm: VmSpec, name: str) -> Any:
    key = canonical(name)
    for features in (vm.cpu.features, vm.cpu.props):
        for k, v in features.items():
            if canonical(k) == key:
                return v
    return None


def _lifted(vm: VmSpec, blocker: Blocker, device: Device | None) -> bool:
    """True when the blocker's ``unless`` condition holds."""
    if not blocker.unless:
        return False
    for kind, conditions in blocker.unless.items():
        for name, want in dict(conditions).items():
            if kind == "device_prop":
                value = device.props.get(name) if device is not None else None
            elif kind == "cpu_prop":
                value = _cpu_value(vm, name)
            elif kind == "object_prop":
                value = next((o.props.get(name) for o in vm.objects if name in o.props), None)
            else:
                return False
            if not _same(value, want):
                return False
    return True


def _describe_option(target: Mapping[str, Any]) -> str:
    key, value = target.get("key"), target.get("value", target.get("value_re"))
    text = f"{key}={value}" if key is not None and value is not None else f"{key or value}"
    text += "".join(f",{k}={v}" for k, v in dict(target.get("also", {})).items())
    return f"-{target.get('option')} {text}"


def _option_props(value: str) -> tuple[str | None, dict[str, Any]] | None:
    """(implied first item, properties) of one option value, keyval or JSON."""
    if value.lstrip().startswith("{"):  # JSON syntax, as libvirt writes -blockdev
        try:
            doc = json.loads(value)
        except (ValueError, RecursionError):
            return None
        return (None, doc) if isinstance(doc, dict) else None
    return split_keyval(value)


def _extended_option_matches(vm: VmSpec, alternative: Mapping[str, Any]) -> bool:
    """An option alternative with ``value_re`` or ``also`` (see OPTION_KEYS)."""
    from migcheck.dependencies import _same as option_same

    key, pattern = alternative.get("key"), alternative.get("value_re")
    want = alternative.get("value")
    for opt in vm.options:
        if opt.name != alternative["option"] or opt.value is None:
            continue
        if key is None:  # the regular expression reads the whole value (-hda fat:rw:DIR)
            if pattern is not None and re.search(str(pattern), opt.value):
                return True
            continue
        parsed = _option_props(opt.value)
        if parsed is None or key not in parsed[1]:
            continue
        props = parsed[1]
        if pattern is not None:
            if not re.search(str(pattern), str(props[key])):
                continue
        elif not option_same(props[key], None if want is None else str(want)):
            continue
        if all(
            k in props and option_same(props[k], str(v))
            for k, v in dict(alternative.get("also", {})).items()
        ):
            return True
    return False


def _option_hit(vm: VmSpec, alternative: Mapping[str, Any]) -> bool:
    from migcheck.dependencies import _option_matches

    if "value_re" in alternative or "also" in alternative:
        return _extended_option_matches(vm, alternative)
    return _option_matches(vm, dict(alternative))


def triggered(
    vm: VmSpec, blockers: tuple[Blocker, ...], qemu: tuple[int, ...] | None = None
) -> list[tuple[Blocker, str]]:
    """Blockers this guest's configuration trips on a source running QEMU ``qemu``
    (None: unknown, every blocker counts), with what tripped each. A blocker counts on
    releases ``qemu_since`` <= QEMU < ``qemu_until`` (comparing major.minor: a release's
    stable updates carry the same blockers)."""
    out = []
    release = qemu[:2] if qemu is not None else None
    for b in blockers:
        if release is not None and b.qemu_until is not None and release >= b.qemu_until[:2]:
            continue
        if release is not None and b.qemu_since is not None and release < b.qemu_since[:2]:
            continue
        kind, target = next(iter(b.match.items()))
        if kind == "device":
            for d in vm.devices:
                if d.driver in target and not _lifted(vm, b, d):
                    how = "-device" if d.origin == "-device" else f"{d.origin}:"
                    out.append((b, f"{how} {d.driver}" + (f" id={d.id}" if d.id else "")))
        elif kind == "object":
            for o in vm.objects:
                if o.qom_type in target and not _lifted(vm, b, None):
                    out.append((b, f"-object {o.qom_type}" + (f" id={o.id}" if o.id else "")))
        elif kind == "cpu_feature":
            on = [f for f in target if _cpu_value(vm, f) is True]
            if on and not _lifted(vm, b, None):
                out.append((b, "-cpu ..." + "".join(f",+{f}" for f in on)))
        elif kind == "cpu_prop":
            hits = [f"{k}={v}" for k, v in dict(target).items() if _same(_cpu_value(vm, k), v)]
            if hits and not _lifted(vm, b, None):
                out.append((b, "-cpu ...," + ",".join(hits)))
        elif kind == "option":
            alternatives = target if isinstance(target, list) else [target]
            hit = next((a for a in alternatives if _option_hit(vm, a)), None)
            if hit is not None and not _lifted(vm, b, None):
                out.append((b, _describe_option(hit)))
    return out
