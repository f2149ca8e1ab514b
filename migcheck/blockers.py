"""QEMU migration blockers as data (``migcheck/catalog/data/qemu/blockers.toml``).

Each entry is a configuration QEMU itself refuses to live-migrate (it registers a
migration blocker or marks a device unmigratable), with the condition that lifts it and
the QEMU source that says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migcheck.catalog import CatalogError, _read, _sources, check_option
from migcheck.cpufeatures import canonical
from migcheck.vm import Device, VmSpec, as_bool

MATCH_KINDS = ("device", "object", "cpu_feature", "cpu_prop", "option")


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


def load_blockers(path: Path) -> tuple[Blocker, ...]:
    if not path.is_file():
        return ()
    doc = _read(path)
    out = []
    seen: set[str] = set()
    for i, entry in enumerate(doc.get("blocker", [])):
        where = f"{path} blocker[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise CatalogError(where, "needs an 'id'")
        where = f"{path} [{entry['id']}]"
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
                verified=bool(entry.get("verified", False)),
                note=str(entry.get("note", "")),
                sources=_sources(entry, where),
                qemu_until=_version(entry.get("qemu_until"), where),
            )
        )
    return tuple(out)


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


def _version(value: Any, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(p) for p in str(value).split("."))
    except ValueError:
        raise CatalogError(where, f"qemu_until {value!r} is not a QEMU version") from None


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
    key, value = target.get("key"), target.get("value")
    return f"-{target.get('option')} " + (f"{key}={value}" if value is not None else f"{key}")


def triggered(
    vm: VmSpec, blockers: tuple[Blocker, ...], qemu: tuple[int, ...] | None = None
) -> list[tuple[Blocker, str]]:
    """Blockers this guest's configuration trips on a source running QEMU ``qemu``
    (None: unknown, every blocker counts), with what tripped each."""
    from migcheck.dependencies import _option_matches

    out = []
    for b in blockers:
        if b.qemu_until is not None and qemu is not None and qemu >= b.qemu_until:
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
            hit = next((a for a in alternatives if _option_matches(vm, dict(a))), None)
            if hit is not None and not _lifted(vm, b, None):
                out.append((b, _describe_option(hit)))
    return out
