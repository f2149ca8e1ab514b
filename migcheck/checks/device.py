"""Device checks: the destination QEMU build must build every device the guest has, with
every property the command line sets, open its network and block backends, and load the
state the source sends.

They read the per-build data (:mod:`migcheck.build`): facts without it (gathered before
migcheck stored build data, recorded-QMP stand-ins) make these checks ``unknown``, naming
the build key, never ``pass``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from migcheck.build import BuildData
from migcheck.checks.base import Context, Finding, Status, unknown
from migcheck.checks.registry import check
from migcheck.facts import Facts
from migcheck.findings import assumed_sides
from migcheck.keyval import split_keyval
from migcheck.vm import Device

READS = ("qemu.build",)

# Keys of a -device argument that are not QOM properties: qdev_device_add_from_qdict()
# takes "driver", "bus" and "id" out before setting the rest as properties
# (softmmu/qdev-monitor.c in QEMU 7.2, system/qdev-monitor.c in 10.0).
NOT_PROPERTIES = frozenset({"driver", "bus", "id"})


def _build(facts: Facts, role: str) -> tuple[BuildData | None, str | None]:
    build = facts.build
    if build is None:
        return None, f"{role} {facts.name}: {facts.build_missing}"
    return build, None


def _devices(ctx: Context) -> list[Device]:
    return list(ctx.vm.devices)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"the {one}" if n == 1 else f"all {n} {many or one + 's'}"


def _label(dev: Device) -> str:
    return f"{dev.driver} (id {dev.id})" if dev.id else dev.driver


# --- device.type ---------------------------------------------------------------------------


@check(
    "device.type",
    reads=READS,
    summary=(
        "a device type the guest uses does not exist in the destination QEMU build (not "
        "compiled in, or its module is not installed)"
    ),
    gates_start=True,
)
def check_type(ctx: Context) -> list[Finding]:
    # A type the build lacks (not compiled in, or its module not installed) stops the
    # destination at start: qdev_get_device_class() "'%s' is not a valid device model name"
    # (softmmu/qdev-monitor.c, QEMU 7.2; system/qdev-monitor.c, 10.0).
    cid = "device.type"
    devices = _devices(ctx)
    if not devices:
        return [Finding(cid, Status.PASS, "the command line creates no devices to check")]
    dst, why = _build(ctx.dst, "destination")
    if dst is None:
        return [unknown(cid, why)]
    if not dst.has_device_types:
        return [unknown(cid, f"destination build {dst.key}: {dst.error('device_types')}")]
    src = ctx.src.build
    findings: list[Finding] = []
    unresolved: list[str] = []
    for driver in sorted({d.driver for d in devices}):
        info = dst.device_types.get(driver)
        if info is not None and not info.get("abstract"):
            continue
        if src is not None and src.has_device_types and driver not in src.device_types:
            # Not a type of the source build either: an alias or a name the command line
            # parser did not resolve; the source would not start it as written.
            unresolved.append(driver)
            continue
        what = "is abstract" if info is not None else "does not exist"
        findings.append(
            Finding(
                cid,
                Status.FAIL,
                f"device type {driver} {what} in the destination QEMU {dst.version} "
                f"(build {dst.key}): the destination cannot start this guest",
                source=driver,
                destination=None,
                fix=f"migrate to a host whose QEMU build has {driver}, or install the "
                "package that provides it (a module such as qemu-system-modules-*)",
                assumed=assumed_sides(_type_assumed(devices, driver), "source"),
            )
        )
    if unresolved:
        findings.append(
            unknown(
                cid,
                f"{', '.join(unresolved)}: not a device type of either build "
                "(an alias, or a type the source cannot build either)",
            )
        )
    if not findings:
        n = len({d.driver for d in devices})
        findings.append(
            Finding(
                cid,
                Status.PASS,
                f"the destination QEMU {dst.version} has {_count(n, 'device type')}",
                destination=dst.key,
            )
        )
    return findings


def _type_assumed(devices: list[Device], driver: str) -> str | None:
    """Why a device type is QEMU's default rather than named by the input, when every
    device of that type is."""
    whys = {d.assumed for d in devices if d.driver == driver}
    if None in whys or not whys:
        return None
    return "; ".join(sorted(w for w in whys if w))


# --- device.property -----------------------------------------------------------------------

_TRUE = {"on", "yes", "true", "y"}
_FALSE = {"off", "no", "false", "n"}


def same_value(explicit: Any, default: Any) -> bool:
    """Does an explicit -device value (keyval text or JSON) equal QEMU's reported default?
    Booleans parse as QEMU's keyval/qemu-option parser does (on/yes/true/y, off/no/false/n,
    qapi/qobject-input-visitor.c); integers in any base strtoll accepts."""
    if isinstance(default, bool):
        if isinstance(explicit, bool):
            return explicit is default
        text = str(explicit).strip().lower()
        return text in (_TRUE if default else _FALSE)
    if isinstance(default, int):
        if isinstance(explicit, bool):
            return False
        if isinstance(explicit, int):
            return explicit == default
        try:
            return int(str(explicit).strip(), 0) == default
        except ValueError:
            return False
    if isinstance(default, str):
        return str(explicit) == default
    return explicit == default


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@check(
    "device.property",
    reads=READS,
    summary=(
        "a property the command line sets on a device does not exist on that device type in "
        "the destination build (fix: remove it when it is the source's default)"
    ),
    gates_start=True,
)
def check_property(ctx: Context) -> list[Finding]:
    # Each property is set with object_property_set(); a name the type lacks stops the
    # destination at start: "Property '%s.%s' not found" (qom/object.c
    # object_property_find_err, via qdev_device_add_from_qdict ->
    # object_set_properties_from_keyval). device-list-properties hides link<> properties
    # (qom/qom-qmp-cmds.c qmp_device_list_properties); the probe adds them from
    # qom-list-properties.
    cid = "device.property"
    devices = [d for d in _devices(ctx) if set(d.props) - NOT_PROPERTIES]
    if not devices:
        return [Finding(cid, Status.PASS, "the command line sets no device properties")]
    dst, why = _build(ctx.dst, "destination")
    if dst is None:
        return [unknown(cid, why)]
    src = ctx.src.build
    findings: list[Finding] = []
    checked = 0
    for dev in devices:
        dprops = dst.device_props(dev.driver)
        if dprops is None:
            if dev.driver in dst.device_types:
                err = dst.device_props_error(dev.driver) or "not listed"
                findings.append(unknown(cid, f"{_label(dev)}: destination properties: {err}"))
            continue  # a missing type is device.type's finding
        sprops = src.device_props(dev.driver) if src is not None else None
        for prop in sorted(set(dev.props) - NOT_PROPERTIES):
            checked += 1
            if prop in dprops and src is not None and sprops is not None and prop not in sprops:
                # The source would refuse this line at start (same qom/object.c path): the
                # guest cannot be running there as described, so nothing is proven.
                findings.append(
                    Finding(
                        cid,
                        Status.FAIL,
                        f"{_label(dev)}: property {prop} does not exist in the source QEMU "
                        f"{src.version} (build {src.key}): the guest cannot be running there "
                        "with this command line",
                        source=None,
                        destination=f"{prop}={_shown(dev.props[prop])}",
                        fix="compare with the running guest's real command line "
                        "(pair --vm NAME reads it from the source)",
                    )
                )
                continue
            if prop in dprops:
                continue
            if sprops is not None and prop not in sprops:
                findings.append(
                    unknown(
                        cid,
                        f"{_label(dev)}: property {prop} is listed by neither build "
                        "(not a settable property QEMU reports)",
                    )
                )
                continue
            value = dev.props[prop]
            default = (sprops or {}).get(prop, {})
            is_default = "default" in default and same_value(value, default["default"])
            if is_default:
                fix = (
                    f"remove {prop}={_shown(value)} from -device {dev.driver}: it is the "
                    "source build's default; then check again"
                )
            else:
                fix = (
                    f"this destination cannot build {dev.driver} with {prop}="
                    f"{_shown(value)}: choose a destination whose QEMU has the property"
                )
            findings.append(
                Finding(
                    cid,
                    Status.FAIL,
                    f"{_label(dev)}: property {prop} does not exist in the destination QEMU "
                    f"{dst.version} (build {dst.key}); the destination refuses to start it",
                    source=f"{prop}={_shown(value)}",
                    destination=None,
                    fix=fix,
                )
            )
    if not findings:
        findings.append(
            Finding(
                cid,
                Status.PASS,
                f"the destination QEMU {dst.version} has "
                f"{_count(checked, 'property', 'properties')} set",
                destination=dst.key,
            )
        )
    return findings


# --- device.netdev / device.blockdev -------------------------------------------------------


def netdev_types(ctx: Context) -> list[tuple[str, str]]:
    """(backend type, where) for -netdev, -nic and -net (not the "nic" frontend), once per
    type (a device graph may list a -nic's backend among the netdevs too)."""
    out = [(n.type, f"-netdev {n.type}" + (f",id={n.id}" if n.id else "")) for n in ctx.vm.netdevs]
    for opt in ctx.vm.options:
        if opt.name not in ("nic", "net") or not opt.value:
            continue
        if opt.value.startswith("{"):
            continue
        first, props = split_keyval(opt.value)
        kind = props.get("type") or first
        if not kind or kind == "none" or (opt.name == "net" and kind == "nic"):
            continue
        out.append((kind, f"-{opt.name} {kind}"))
    return list({kind: (kind, where) for kind, where in reversed(out)}.values())[::-1]


def _drivers_in(value: Any, key: str = "") -> Iterable[str]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _drivers_in(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _drivers_in(v, key)
    elif isinstance(value, str) and key == "driver":
        yield value


def block_drivers_used(ctx: Context) -> list[tuple[str, str]]:
    """(block driver, where) for every driver -blockdev and -drive name: "driver" at any
    depth (file.driver=, backing.driver=) and -drive's "format"."""
    out: list[tuple[str, str]] = []
    for opt in ctx.vm.options:
        if opt.name not in ("blockdev", "drive") or not opt.value:
            continue
        names: list[str] = []
        if opt.value.startswith("{"):
            try:
                names = list(_drivers_in(json.loads(opt.value)))
            except (ValueError, RecursionError):
                continue  # the command line parser reports malformed JSON
        else:
            _, props = split_keyval(opt.value)
            for k, v in props.items():
                if (
                    k == "driver"
                    or k.endswith(".driver")
                    or (opt.name == "drive" and k == "format")
                ):
                    names.append(v)
        out += [(n, f"-{opt.name}") for n in names if n]
    return out


def _backend_check(
    ctx: Context, cid: str, used: list[tuple[str, str]], what: str, have: str
) -> list[Finding]:
    if not used:
        return [Finding(cid, Status.PASS, f"the command line names no {what}")]
    dst, why = _build(ctx.dst, "destination")
    if dst is None:
        return [unknown(cid, why)]
    available = getattr(dst, have)
    if available is None:
        return [unknown(cid, f"destination build {dst.key}: {dst.error(have) or 'not recorded'}")]
    findings = []
    for name, where in used:
        if name in available:
            continue
        findings.append(
            Finding(
                cid,
                Status.FAIL,
                f"{where}: the destination QEMU {dst.version} (build {dst.key}) has no "
                f"{what[:-1]} {name!r}; the destination cannot open it",
                source=name,
                destination=None,
                fix=f"install the destination's module for {name} (e.g. qemu-block-extra) or "
                f"migrate to a host whose QEMU has it",
            )
        )
    if not findings:
        names = ", ".join(sorted({n for n, _ in used}))
        findings.append(
            Finding(cid, Status.PASS, f"the destination QEMU has every {what[:-1]} used ({names})")
        )
    return findings


@check(
    "device.netdev",
    reads=READS,
    summary="a network backend type the guest uses (`-netdev TYPE`) is missing in the build",
    gates_start=True,
)
def check_netdev(ctx: Context) -> list[Finding]:
    # The backend type is the Netdev union's discriminator (qapi/net.json, NetClientDriver);
    # a branch the build lacks is refused when -netdev is parsed (net/net.c
    # net_client_init). The probe takes the union's branches from query-qmp-schema.
    return _backend_check(ctx, "device.netdev", netdev_types(ctx), "network backends", "netdevs")


@check(
    "device.blockdev",
    reads=READS,
    summary="a block driver `-blockdev`/`-drive` names is missing in the destination build",
    gates_start=True,
)
def check_blockdev(ctx: Context) -> list[Finding]:
    # An unknown driver stops the destination at start: block.c bdrv_open_inherit
    # "Unknown driver '%s'" (bdrv_find_format, which loads block modules through
    # block_module_load). Drivers come from the BlockdevDriver enum in query-qmp-schema,
    # minus module drivers whose module the build lacks (migcheck.build.BLOCK_MODULES).
    used = block_drivers_used(ctx)
    return _backend_check(ctx, "device.blockdev", used, "block drivers", "block_drivers")


# --- device.vmstate ------------------------------------------------------------------------

# virtio proxies (virtio-net-pci) carry no vmstate of their own: the virtio device they
# create (virtio-net-device) sends the section (hw/virtio/virtio-pci.c saves its config
# through the virtio device's VMSTATE_VIRTIO_DEVICE).
_PROXY_SUFFIXES = ("-pci-non-transitional", "-pci-transitional", "-pci", "-ccw")


def vmstate_sections(driver: str, dump: Mapping[str, Any]) -> list[str]:
    """The -dump-vmstate entries (keyed by QOM class name) a device of ``driver`` sends."""
    names = [driver] if driver in dump else []
    if driver.startswith(("virtio-", "vhost-")):
        for suffix in _PROXY_SUFFIXES:
            if driver.endswith(suffix):
                stem = driver[: -len(suffix)]
                for child in (f"{stem}-device", stem):
                    if child in dump and child not in names:
                        names.append(child)
                        break
                break
    return names


def _version_problems(where: str, s: Mapping[str, Any], d: Mapping[str, Any]) -> list[str]:
    # migration/vmstate.c vmstate_load_state(): "incoming version_id %d is too new for
    # local version_id %d" and "... too old for local minimum version_id %d" (both QEMU 7.2
    # and 10.0). Applies to sections and subsections, whose version travels in the stream.
    out = []
    sv, dv, dmin = s.get("version_id"), d.get("version_id"), d.get("minimum_version_id")
    if isinstance(sv, int) and isinstance(dv, int) and sv > dv:
        out.append(f"{where}: source sends version {sv}, the destination loads up to {dv}")
    if isinstance(sv, int) and isinstance(dmin, int) and sv < dmin:
        out.append(f"{where}: source sends version {sv}, the destination needs at least {dmin}")
    return out


def _nested_problems(where: str, s: Mapping[str, Any], d: Mapping[str, Any]) -> list[str]:
    # A VMSTATE_STRUCT carries no version on the wire: vmstate_load_state() loads it with
    # the destination's own description version (field->vmsd->version_id), so the fields
    # the source writes for its version are read with the destination's layout: misread
    # or desynchronised (scripts/vmstate-static-checker.py check_descriptions applies
    # check_version here too). Measured: QEMU 10.0 -> 7.2 with am53c974 (esp 7 vs 6)
    # completes, with esp's drq_state read into lun and lun into ti_cmd.
    out = []
    sv, dv, dmin = s.get("version_id"), d.get("version_id"), d.get("minimum_version_id")
    if isinstance(sv, int) and isinstance(dv, int) and sv > dv:
        out.append(
            f"{where}: source writes version {sv}, the destination reads it as its own "
            f"version {dv} (nested state carries no version: fields are misread)"
        )
    if isinstance(sv, int) and isinstance(dmin, int) and sv < dmin:
        out.append(
            f"{where}: source writes version {sv}, the destination's layout starts at "
            f"version {dmin} (nested state carries no version: fields are misread)"
        )
    return out


def _pairs(src: list[Any], dst: list[Any]) -> Iterable[tuple[Any, Any]]:
    """Nested struct fields paired by (field name, description name), in order: a device
    may hold several fields of one name (a PCI device and its MSI-X state)."""

    def key(f: Any) -> tuple[str, str] | None:
        if not isinstance(f, Mapping) or not isinstance(f.get("Description"), Mapping):
            return None
        return str(f.get("field")), str(f["Description"].get("name"))

    pending: dict[tuple[str, str], list[Any]] = {}
    for f in dst:
        k = key(f)
        if k is not None:
            pending.setdefault(k, []).append(f)
    for f in src:
        k = key(f)
        if k is not None and pending.get(k):
            yield f, pending[k].pop(0)


def compare_description(
    where: str, s: Mapping[str, Any], d: Mapping[str, Any], hard: list[str], soft: list[str]
) -> None:
    """Compare one vmstate description (and what it nests) of source and destination.

    ``hard``: what the destination refuses whenever the device migrates. ``soft``:
    subsections, which the source sends only when their ``needed`` callback says so at
    run time, so the static dump cannot tell whether they travel."""
    fields_s, fields_d = s.get("Fields"), d.get("Fields")
    if isinstance(fields_s, list) and isinstance(fields_d, list):
        for fs, fd in _pairs(fields_s, fields_d):
            ds, dd = fs["Description"], fd["Description"]
            inner = f"{where}.{fs.get('field')} ({ds.get('name')})"
            hard.extend(_nested_problems(inner, ds, dd))
            compare_description(inner, ds, dd, hard, soft)
    subs_s, subs_d = s.get("Subsections"), d.get("Subsections")
    if isinstance(subs_s, list):
        by_name = {
            x.get("name"): x
            for x in (subs_d if isinstance(subs_d, list) else [])
            if isinstance(x, Mapping)
        }
        for sub in subs_s:
            if not isinstance(sub, Mapping):
                continue
            name = sub.get("name")
            other = by_name.get(name)
            if other is None:
                # vmstate_subsection_load(): a subsection the destination does not know
                # fails the load with -ENOENT (migration/vmstate.c).
                soft.append(f"{where}: subsection {name} does not exist on the destination")
                continue
            sub_hard: list[str] = []
            sub_where = f"{where}/{name}"
            sub_hard.extend(_version_problems(sub_where, sub, other))
            compare_description(sub_where, sub, other, sub_hard, soft)
            soft.extend(sub_hard)


def compare_section(
    name: str, s: Mapping[str, Any], d: Mapping[str, Any] | None
) -> tuple[list[str], list[str]]:
    """(hard, soft) problems loading source section ``name`` on the destination."""
    if d is None:
        # migration/savevm.c qemu_loadvm_section_start_full(): "Unknown savevm section
        # or instance"
        return [f"{name}: the destination has no such vmstate section"], []
    hard = _version_problems(name, s, d)
    soft: list[str] = []
    ds, dd = s.get("Description"), d.get("Description")
    if isinstance(ds, Mapping) and isinstance(dd, Mapping):
        compare_description(name, ds, dd, hard, soft)
    return hard, soft


def _section_problems(src: Any, dst: Any, name: str) -> tuple[list[str], list[str]]:
    """:func:`compare_section` of two builds' ``-dump-vmstate``, kept with the source
    build: it depends on the two builds alone, and a fleet asks once per class pair.
    Callers only read the result."""
    memo = src.__dict__.setdefault("_vmstate_problems", {})
    hit = memo.get((id(dst), name))
    if hit is not None and hit[0] is dst:
        return hit[1]
    result = compare_section(name, src.vmstate[name], dst.vmstate.get(name))
    memo[(id(dst), name)] = (dst, result)  # dst held: its id cannot be reused meanwhile
    return result


@check(
    "device.vmstate",
    reads=READS,
    summary=(
        "the destination cannot load a device's migration state: its `-dump-vmstate` section "
        "is missing, the source's version is newer than the destination's or older than its "
        "minimum, also in nested descriptions (warning: a subsection the destination lacks, "
        "sent only in some run-time states)"
    ),
)
def check_vmstate(ctx: Context) -> list[Finding]:
    cid = "device.vmstate"
    devices = _devices(ctx)
    if not devices:
        return [Finding(cid, Status.PASS, "the command line creates no devices to check")]
    src, why_s = _build(ctx.src, "source")
    dst, why_d = _build(ctx.dst, "destination")
    if src is None or dst is None:
        return [unknown(cid, why_s, why_d)]
    sdump, ddump = src.vmstate, dst.vmstate
    if sdump is None or ddump is None:
        return [
            unknown(
                cid,
                None if sdump is not None else f"source build {src.key}: {src.error('vmstate')}",
                None
                if ddump is not None
                else f"destination build {dst.key}: {dst.error('vmstate')}",
            )
        ]
    findings: list[Finding] = []
    compared = 0
    for driver in sorted({d.driver for d in devices}):
        for name in vmstate_sections(driver, sdump):
            compared += 1
            hard, soft = _section_problems(src, dst, name)
            if hard:
                findings.append(
                    Finding(
                        cid,
                        Status.FAIL,
                        f"{driver}: the destination QEMU {dst.version} cannot load, or "
                        f"misreads, the state QEMU {src.version} sends: {'; '.join(hard)}",
                        source=src.version,
                        destination=dst.version,
                        fix=f"migrate {driver} only to a QEMU that loads this state "
                        "(the same or a newer release)",
                    )
                )
            if soft:
                findings.append(
                    Finding(
                        cid,
                        Status.WARN,
                        f"{driver}: {'; '.join(soft)}. Subsections travel only in some "
                        "run-time states, which the static -dump-vmstate cannot see: the "
                        "migration fails if the source sends one",
                        source=src.version,
                        destination=dst.version,
                    )
                )
    if not findings:
        findings.append(
            Finding(
                cid,
                Status.PASS,
                f"the destination loads {_count(compared, 'vmstate section')} of the guest's "
                "devices (static -dump-vmstate comparison; devices with no section send none)",
            )
        )
    return findings
