"""Which catalogued QEMU migration blockers a guest triggers (the data and its loader:
:mod:`migcheck.catalog.blockers`, ``migcheck/catalog/data/qemu/blockers.toml``).

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
from typing import Any

from migcheck.catalog.blockers import Blocker
from migcheck.cpufeatures import canonical
from migcheck.keyval import split_keyval
from migcheck.vm import Device, VmSpec, as_bool


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
