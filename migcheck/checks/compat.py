"""Device defaults per machine type: the same command line must give every device the same
property values on both QEMU builds.

A property the command line does not set takes its *effective default*: the device class's
default (``device-list-properties``) overridden by the machine type's compat properties
(QEMU's ``hw_compat_X_Y`` / ``pc_compat_X_Y``; see :mod:`migcheck.catalog.compat`). A
versioned machine type exists to keep that value fixed across QEMU releases, but QEMU does
not always add a compat entry when it changes a class default (``pvpanic`` ``events`` went
from 3 to 7 in 9.1 with none: commit ebd909bb95c2 "hw/misc/pvpanic: add support for normal
shutdowns", include/hw/misc/pvpanic.h ``PVPANIC_EVENTS``), and distributions patch both.
So each property is compared, source build vs destination build, under the source's
resolved machine type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migcheck.catalog.compat import (
    Unknown,
    ancestry,
    effective_defaults,
    shipped_compat,
    virtio_backend,
)
from migcheck.checks.base import (
    Context,
    Finding,
    Status,
    machine_assumed,
    missing_qemu,
    unknown,
    with_assumed,
)
from migcheck.checks.registry import check
from migcheck.facts import Facts
from migcheck.findings import assumed_sides

CID = "compat.defaults"


def _build(facts: Facts) -> tuple[Any, str | None]:
    """The facts' per-build QEMU data (``Facts.build``), or None and why it is missing."""
    build = getattr(facts, "build", None)
    if build is not None:
        return build, None
    why = getattr(facts, "build_missing", None) or "no per-build QEMU data in these facts"
    return None, str(why)


def _same(prop: str, a: Any, b: Any) -> bool:
    """Equal as the guest sees them. ``rombar`` became int32 with -1 (auto) as its default in
    QEMU 9.1 (uint32, default 1, before); hw/pci/pci.c pci_add_option_rom() only tests it
    for zero (``if (!pdev->rom_bar)``) in both 7.2 and 10.0, so only zero vs non-zero
    differs for the guest."""
    if prop == "rombar" and isinstance(a, int) and isinstance(b, int):
        return (a == 0) == (b == 0)
    return a == b


def _qemu_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _globals_for(ctx: Context, driver: str, types: Mapping[str, Any]) -> set[str]:
    """Properties of ``driver`` a ``-global`` sets (it matches subtypes, as compat does)."""
    if not ctx.vm.globals:
        return set()
    names = set(ancestry(driver, types))
    backend = virtio_backend(driver, types)
    if backend:
        names.update(ancestry(backend, types))
    return {g.property for g in ctx.vm.globals if g.driver in names}


def _differs(ctx: Context, dev: Any, name: str, machine: str, prop: str, a: Any, b: Any) -> Finding:
    value = _qemu_text(a)
    if getattr(dev, "implicit", False):
        # A device the machine creates (default NIC, VGA, ...) has no -device option to
        # extend: -global reaches it (and every other device of the type, as compat does).
        how = f"-global {dev.driver}.{prop}={value}"
    else:
        how = f"-device {dev.driver},...,{prop}={value}"
    return Finding(
        CID,
        Status.FAIL,
        f"{name}: {prop} defaults to {value} on the source (QEMU {ctx.src.qemu_version}) "
        f"but {_qemu_text(b)} on the destination (QEMU {ctx.dst.qemu_version}) under "
        f"{machine}: the guest's device changes under it",
        source={"device": dev.driver, "property": prop, "value": a},
        destination={"device": dev.driver, "property": prop, "value": b},
        fix=f"set {prop}={value} explicitly on the destination's command line ({how}); "
        "the source already runs with that value",
        assumed=assumed_sides(_device_assumed(dev), "guest"),
    )


def _device_assumed(dev: Any) -> str | None:
    why = getattr(dev, "assumed", None)
    return f"the device {dev.driver}: {why}" if why else None


_compared: dict[tuple[int, int, frozenset[str]], tuple[Any, Any, Any]] = {}


def _compare_defaults(
    src: Mapping[str, Any], dst: Mapping[str, Any], skip: frozenset[str]
) -> tuple[int, list[tuple[str, Any, Any]]]:
    """How many properties both builds give a static default (``skip``: set on the command
    line), and those whose defaults differ or that one build reports without a default, in
    name order. The effective-default maps are kept per build (:func:`_effective_defaults`),
    so a fleet compares each pair of them once."""
    key = (id(src), id(dst), skip)
    hit = _compared.get(key)
    if hit is not None and hit[0] is src and hit[1] is dst:
        return hit[2]
    compared = 0
    differing: list[tuple[str, Any, Any]] = []
    for prop in sorted(set(src) & set(dst) - skip):
        a, b = src[prop], dst[prop]
        if a is None and b is None:
            continue  # no static default on either build: set at realize, not a default
        compared += 1
        if a is None or b is None or not _same(prop, a, b):
            differing.append((prop, a, b))
    if len(_compared) >= 4096:
        _compared.clear()
    _compared[key] = (src, dst, (compared, differing))  # held: their ids stay theirs
    return compared, differing


def _effective_defaults(
    build: Any,
    driver: str,
    machine: str,
    listed: Any,
    qemu_version: str | None,
    table: Any,
) -> dict[str, Any] | Unknown:
    """:func:`effective_defaults` of one build, kept with the build: ``listed`` follows
    from the build, the machine type, the QEMU version and the table, so a fleet computes
    each (device, machine type) once per build instead of once per class pair. Callers only
    read the result."""
    memo = build.__dict__.setdefault("_effective_defaults", {})
    key = (driver, machine, qemu_version)
    hit = memo.get(key)
    if hit is not None and hit[0] is table:
        return hit[1]
    values = effective_defaults(
        driver, machine, build.device_props(driver), listed, qemu_version, build.device_types, table
    )
    memo[key] = (table, values)
    return values


@check(
    CID,
    reads=("qemu.version", "qemu.machines", "qemu.build"),
    summary=(
        "a device property the command line leaves to its default has a different "
        "*effective* default (class default + the machine type's compat properties, from the "
        "build's `query-machines` compat-props or the sourced table "
        "`migcheck/catalog/data/qemu/compat/`) on the two builds under the same machine type; "
        "unknown without per-build data, or for a machine type or QEMU release the table "
        "does not cover"
    ),
)
def check_defaults(ctx: Context) -> list[Finding]:
    if not ctx.vm.devices:
        return []
    if not (hasattr(type(ctx.src), "build") and hasattr(type(ctx.dst), "build")):
        # Transitional: a Facts model without per-build QEMU data at all (before the
        # per-build store, migcheck/build.py, is merged) cannot even say what is missing.
        # Once Facts has ``build``, facts without it are judged unknown below, never pass.
        return []
    reasons = missing_qemu(ctx, "machines")
    if reasons:
        return [unknown(CID, *reasons)]
    src_build, src_why = _build(ctx.src)
    dst_build, dst_why = _build(ctx.dst)
    if src_build is None or dst_build is None:
        return [
            unknown(
                CID,
                *(
                    f"{role} {facts.name}: {why}"
                    for role, facts, why in (
                        ("source", ctx.src, src_why),
                        ("destination", ctx.dst, dst_why),
                    )
                    if why
                ),
            )
        ]
    machine = ctx.src.resolve_machine(ctx.vm.machine.type)
    if machine is None:
        return [unknown(CID, "the source QEMU has no such machine type (see machine.type)")]
    if machine not in (ctx.dst.machines or {}):
        return [unknown(CID, f"the destination QEMU has no machine type {machine}")]
    # One compat list per side: the build's own (QEMU >= 9.1 query-machines compat-props),
    # else the sourced table for its QEMU version.
    table = shipped_compat()
    compat_lists = []
    notes = assumed_sides(machine_assumed(ctx))
    for role, build, facts in (("source", src_build, ctx.src), ("destination", dst_build, ctx.dst)):
        listed = build.machine_compat(machine)
        if listed is None:
            listed = table.compat_props(machine, facts.qemu_version)
            # Not the build's own answer: what upstream QEMU's source gives that release
            # (a distribution's patches to it would not show).
            notes += assumed_sides(
                f"{machine}'s compat properties on the {role}: migcheck's table of upstream "
                f"QEMU {facts.qemu_version} (that build does not report them)",
                "guest",
            )
        if isinstance(listed, Unknown):
            return [unknown(CID, f"{role} {facts.name}: {listed.reason}")]
        compat_lists.append(listed)
    return with_assumed(_compare(ctx, machine, src_build, dst_build, compat_lists, table), *notes)


def _compare(
    ctx: Context,
    machine: str,
    src_build: Any,
    dst_build: Any,
    compat_lists: list[Any],
    table: Any,
) -> list[Finding]:
    findings: list[Finding] = []
    unknowns: list[str] = []
    compared = 0
    seen: set[tuple[str, frozenset[str]]] = set()
    for dev in ctx.vm.devices:
        explicit = frozenset(dev.props)
        if (dev.driver, explicit) in seen:  # the same device twice: judged once
            continue
        seen.add((dev.driver, explicit))
        dst_types = dst_build.device_types
        if isinstance(dst_types, Mapping) and dev.driver not in dst_types:
            continue  # the destination lacks the type itself: the device-type check says so
        src, dst = (
            _effective_defaults(build, dev.driver, machine, listed, facts.qemu_version, table)
            for build, facts, listed in (
                (src_build, ctx.src, compat_lists[0]),
                (dst_build, ctx.dst, compat_lists[1]),
            )
        )
        name = f"{dev.driver}" + (f" (id={dev.id})" if dev.id else "")
        if isinstance(src, Unknown) or isinstance(dst, Unknown):
            for side, role in ((src, "source"), (dst, "destination")):
                if isinstance(side, Unknown):
                    unknowns.append(f"{name} on the {role}: {side.reason}")
            continue
        skip = explicit | _globals_for(ctx, dev.driver, src_build.device_types)
        count, differing = _compare_defaults(src, dst, frozenset(skip))
        compared += count
        for prop, a, b in differing:
            if a is None or b is None:
                unknowns.append(
                    f"{name}.{prop}: QEMU reports no default on the "
                    f"{'source' if a is None else 'destination'}"
                )
            else:
                findings.append(_differs(ctx, dev, name, machine, prop, a, b))
    if unknowns:
        findings.append(unknown(CID, *unknowns[:5], *(["..."] if len(unknowns) > 5 else [])))
    if not findings:
        findings.append(
            Finding(
                CID,
                Status.PASS,
                f"{compared} default device properties are the same on both builds under {machine}",
                source=machine,
                destination=machine,
            )
        )
    return findings
