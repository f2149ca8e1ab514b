"""QEMU machine-type compat properties as data, and the effective default of a device property.

``device-list-properties`` reports a device class's static default whatever ``-machine``
says. A versioned machine type changes that default through its compat properties: QEMU
applies the machine class's ``compat_props`` list to every object it creates
(hw/core/machine.c and qom/object.c ``object_apply_global_props()``), each entry to objects
of that QOM type or a subtype, in list order, so a later entry wins. The effective default of
a property is therefore: the class default, overridden by the last matching compat entry.

Where the list comes from:

- QEMU >= 9.1 answers ``query-machines`` with ``{"compat-props": true}`` (unstable): the
  build's own list, ``BuildData.machine_compat(machine)``. It is preferred when present.
- Otherwise the sourced table ``data/qemu/compat/`` (``X.Y.toml`` per machine-type version,
  ``families.toml`` for coverage and family-wide defaults; format in ``data/SCHEMA.md``)
  rebuilds the list the way hw/i386/pc_q35.c / pc_piix.c do: the family's defaults, then
  ``hw_compat_V`` + ``pc_compat_V`` for every version V from the build's newest down to the
  machine's own.

What the table does not cover (a distribution machine type, a QEMU older than the oldest or
newer than the newest release read, a machine type older than 6.0) is :class:`Unknown`, with
the reason: never a guess.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migcheck.catalog.toml import CatalogError, _sources
from migcheck.catalog.toml import read_toml as _read

_RELEASE_RE = re.compile(r"^(\d+)\.(\d+)$")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
_MACHINE_RE = re.compile(r"^(?P<family>pc-q35|pc-i440fx)-(?P<major>\d+)\.(?P<minor>\d+)$")
_QEMU_VERSION_RE = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")
_INT_TYPE_RE = re.compile(r"^u?int(8|16|32|64)?$|^size$")


@dataclass(frozen=True)
class Unknown:
    """An effective default that cannot be known, with the reason. Every ``Unknown`` equals
    :data:`UNKNOWN`, so ``value == UNKNOWN`` (or :func:`is_unknown`) tests for it."""

    reason: str = "not known"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown)

    def __hash__(self) -> int:
        return hash(Unknown)

    def __bool__(self) -> bool:
        return False


UNKNOWN = Unknown()


def is_unknown(value: object) -> bool:
    return isinstance(value, Unknown)


@dataclass(frozen=True)
class CompatEntry:
    array: str  # "hw_compat_8_2" / "pc_compat_8_2"
    driver: str  # QOM type name; applies to subtypes too
    property: str
    value: str  # as QEMU's source spells it: parsed by the property's type when applied
    since: tuple[int, int, int] | None = None  # first QEMU with it, when later than the array
    verified: bool = True
    note: str = ""

    def as_prop(self) -> dict[str, str]:
        return {"qom-type": self.driver, "property": self.property, "value": self.value}


@dataclass(frozen=True)
class MachineOption:
    """A machine-class field a ``*_machine_X_Y_options()`` sets that changes guest hardware
    without a compat property (informational: not part of any property's default)."""

    families: tuple[str, ...]
    field: str
    value: str
    effect: str
    source: str
    verified: bool = True
    qemu_until: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class CompatRelease:
    machine_version: tuple[int, int]  # pc-*-X.Y
    defined_in: tuple[int, int]  # the QEMU release whose source first defines the arrays
    verified: bool
    entries: tuple[CompatEntry, ...]
    options: tuple[MachineOption, ...]
    sources: tuple[Mapping[str, str], ...]
    path: str


@dataclass(frozen=True)
class FamilyDefault:
    family: str
    driver: str
    property: str
    value: str
    since: tuple[int, int, int]
    verified: bool
    note: str = ""

    def as_prop(self) -> dict[str, str]:
        return {"qom-type": self.driver, "property": self.property, "value": self.value}


@dataclass(frozen=True)
class CompatTable:
    qemu_min: tuple[int, int]
    qemu_max: tuple[int, int]
    machine_min: tuple[int, int]
    families: tuple[str, ...]
    releases: Mapping[tuple[int, int], CompatRelease]
    family_defaults: tuple[FamilyDefault, ...]

    def compat_props(
        self, machine: str, qemu_version: str | None
    ) -> list[dict[str, str]] | Unknown:
        """The compat property list QEMU ``qemu_version`` gives ``machine``, in QEMU's order
        (``[{"qom-type", "property", "value"}]``, as ``query-machines`` spells it)."""
        qv = parse_qemu_version(qemu_version)
        if qv is None:
            return Unknown(f"QEMU version {qemu_version!r} is not X.Y[.Z]")
        release = qv[:2]
        if release < self.qemu_min:
            return Unknown(
                f"the compat table starts at QEMU {_fmt(self.qemu_min)}; "
                f"QEMU {qemu_version} was not read"
            )
        if release > self.qemu_max:
            return Unknown(
                f"QEMU {qemu_version} is newer than the newest release the compat table "
                f"covers ({_fmt(self.qemu_max)}): upgrade migcheck"
            )
        m = _MACHINE_RE.match(machine or "")
        if m is None or m.group("family") not in self.families:
            return Unknown(
                f"machine type {machine!r} is not in the compat table "
                f"(it covers {', '.join(f + '-X.Y' for f in self.families)})"
            )
        mv = (int(m.group("major")), int(m.group("minor")))
        if mv < self.machine_min:
            return Unknown(
                f"machine type {machine} is older than the compat table "
                f"({_fmt(self.machine_min)} and newer)"
            )
        if mv > release:
            return Unknown(f"QEMU {qemu_version} has no machine type {machine}")
        out = [
            d.as_prop()
            for d in self.family_defaults
            if d.family == m.group("family") and d.since <= qv
        ]
        # Newest array first, the machine's own last (pc_q35_machine_X_Y_options() calls
        # the newer version's options, then compat_props_add()s its own arrays).
        for version in sorted(self.releases, reverse=True):
            if version >= release or version < mv:
                continue
            out.extend(
                e.as_prop()
                for e in self.releases[version].entries
                if e.since is None or e.since <= qv
            )
        needed = [v for v in _release_range(mv, release) if v not in self.releases]
        if needed:
            return Unknown(f"the compat table lacks machine version {_fmt(needed[0])}")
        return out

    def machine_options(self, machine: str, qemu_version: str | None) -> list[MachineOption]:
        """Machine-class option changes that apply to ``machine`` (informational)."""
        m = _MACHINE_RE.match(machine or "")
        qv = parse_qemu_version(qemu_version)
        if m is None or qv is None:
            return []
        mv = (int(m.group("major")), int(m.group("minor")))
        return [
            o
            for version, rel in sorted(self.releases.items(), reverse=True)
            if mv <= version < qv[:2]
            for o in rel.options
            if m.group("family") in o.families and (o.qemu_until is None or qv < o.qemu_until)
        ]


def _fmt(version: Sequence[int]) -> str:
    return ".".join(str(p) for p in version)


def _release_range(lo: tuple[int, int], hi: tuple[int, int]) -> Iterable[tuple[int, int]]:
    """Machine versions lo <= v < hi that QEMU released (x.0 .. x.2, 6.0 onwards)."""
    major, minor = lo
    while (major, minor) < hi:
        yield major, minor
        minor += 1
        if minor > 2:
            major, minor = major + 1, 0


def parse_qemu_version(text: str | None) -> tuple[int, int, int] | None:
    m = _QEMU_VERSION_RE.match(text or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _release(value: Any, where: str, key: str) -> tuple[int, int]:
    m = _RELEASE_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise CatalogError(where, f'{key!r} should be a QEMU release like "8.2", not {value!r}')
    return int(m.group(1)), int(m.group(2))


def _version3(value: Any, where: str, key: str) -> tuple[int, int, int] | None:
    if value is None:
        return None
    m = _VERSION_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise CatalogError(where, f'{key!r} should be a QEMU version like "7.2.1", not {value!r}')
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _text(doc: Mapping[str, Any], key: str, where: str, *, empty: bool = False) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise CatalogError(where, f"{key!r} should be a non-empty string")
    return value


def _flag(doc: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise CatalogError(where, f"{key!r} should be true or false")
    return value


def _table_list(doc: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CatalogError(where, f"{key!r} should be a list of tables ([[{key}]])")
    return value


def _load_release(path: Path, families: tuple[str, ...]) -> CompatRelease:
    doc = _read(path)
    where = str(path)
    version = _release(doc.get("machine_version"), where, "machine_version")
    if _fmt(version) != path.stem:
        raise CatalogError(where, f"machine_version {_fmt(version)!r} != file name {path.stem!r}")
    defined_in = _release(doc.get("defined_in"), where, "defined_in")
    if defined_in <= version:
        raise CatalogError(where, "defined_in should be a later release than machine_version")
    arrays = {f"hw_compat_{version[0]}_{version[1]}", f"pc_compat_{version[0]}_{version[1]}"}
    entries = []
    for i, e in enumerate(_table_list(doc, "compat", where)):
        ew = f"{where} compat[{i}]"
        array = _text(e, "array", ew)
        if array not in arrays:
            raise CatalogError(ew, f"array {array!r} should be one of {sorted(arrays)}")
        driver = _text(e, "driver", ew)
        ew = f"{where} compat[{i}] ({driver}.{e.get('property')})"
        entries.append(
            CompatEntry(
                array=array,
                driver=driver,
                property=_text(e, "property", ew),
                value=_text(e, "value", ew, empty=True),
                since=_version3(e.get("since"), ew, "since"),
                verified=_flag(e, "verified", ew, True),
                note=str(e.get("note", "")),
            )
        )
    options = []
    for i, o in enumerate(_table_list(doc, "machine_option", where)):
        ow = f"{where} machine_option[{i}]"
        fams = o.get("families")
        if not isinstance(fams, list) or not fams or not all(f in families for f in fams):
            raise CatalogError(ow, f"'families' should be a non-empty list from {list(families)}")
        options.append(
            MachineOption(
                families=tuple(fams),
                field=_text(o, "field", ow),
                value=_text(o, "value", ow),
                effect=_text(o, "effect", ow),
                source=_text(o, "source", ow),
                verified=_flag(o, "verified", ow, True),
                qemu_until=_version3(o.get("qemu_until"), ow, "qemu_until"),
            )
        )
    return CompatRelease(
        machine_version=version,
        defined_in=defined_in,
        verified=_flag(doc, "verified", where, False),
        entries=tuple(entries),
        options=tuple(options),
        sources=_sources(doc, where),
        path=where,
    )


def load_compat(directory: Path | str | None = None) -> CompatTable:
    """Load and validate ``data/qemu/compat/``: a broken file is a :class:`CatalogError`
    (an InputError) naming the file and the entry."""
    if directory is None:
        from migcheck.catalog import default_catalog_dir

        directory = default_catalog_dir() / "qemu" / "compat"
    root = Path(directory)
    index = root / "families.toml"
    if not index.is_file():
        raise CatalogError(str(index), "missing (the compat table's index)")
    doc = _read(index)
    where = str(index)
    families = doc.get("families")
    if (
        not isinstance(families, list)
        or not families
        or not all(isinstance(f, str) for f in families)
    ):
        raise CatalogError(where, "'families' should be a non-empty list of strings")
    families_t = tuple(families)
    qemu_min = _release(doc.get("qemu_min"), where, "qemu_min")
    qemu_max = _release(doc.get("qemu_max"), where, "qemu_max")
    machine_min = _release(doc.get("machine_min"), where, "machine_min")
    if qemu_min > qemu_max:
        raise CatalogError(where, "qemu_min is newer than qemu_max")
    _sources(doc, where)
    defaults = []
    for i, d in enumerate(_table_list(doc, "family_default", where)):
        dw = f"{where} family_default[{i}]"
        family = _text(d, "family", dw)
        if family not in families_t:
            raise CatalogError(dw, f"family {family!r} is not in 'families'")
        since = _version3(d.get("since"), dw, "since")
        if since is None:
            raise CatalogError(dw, "'since' is missing")
        defaults.append(
            FamilyDefault(
                family=family,
                driver=_text(d, "driver", dw),
                property=_text(d, "property", dw),
                value=_text(d, "value", dw, empty=True),
                since=since,
                verified=_flag(d, "verified", dw, True),
                note=str(d.get("note", "")),
            )
        )
    releases: dict[tuple[int, int], CompatRelease] = {}
    for path in sorted(root.glob("*.toml")):
        if path.name == index.name:
            continue
        rel = _load_release(path, families_t)
        releases[rel.machine_version] = rel
    # The arrays of version V are defined by the release after V: a chain with a gap would
    # silently drop a version's entries from every older machine type.
    ordered = sorted(releases)
    for older, newer in itertools.pairwise(ordered):
        if releases[older].defined_in != newer:
            raise CatalogError(
                releases[older].path,
                f"defined_in {_fmt(releases[older].defined_in)} but the next file is "
                f"{_fmt(newer)}: a machine version is missing or misdated",
            )
    if not ordered or ordered[0] != machine_min:
        raise CatalogError(where, f"machine_min {_fmt(machine_min)} has no file")
    if releases[ordered[-1]].defined_in <= qemu_max:
        raise CatalogError(where, f"qemu_max {_fmt(qemu_max)}: newer machine versions missing")
    return CompatTable(
        qemu_min=qemu_min,
        qemu_max=qemu_max,
        machine_min=machine_min,
        families=families_t,
        releases=releases,
        family_defaults=tuple(defaults),
    )


def shipped_compat() -> CompatTable:
    """The shipped table, parsed with (and cached as part of) the catalog."""
    from migcheck.catalog import shipped_catalog

    compat = shipped_catalog().compat
    return compat if compat is not None else load_compat()


# --- effective defaults --------------------------------------------------------------------


def ancestry(type_name: str, device_types: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``type_name`` and its QOM parents, nearest first (``qom-list-types`` ``parent``)."""
    out: list[str] = []
    name: str | None = type_name
    while name and name not in out:
        out.append(name)
        info = device_types.get(name)
        name = info.get("parent") if isinstance(info, Mapping) else None
    return out


# A virtio PCI proxy (virtio-net-pci) embeds its virtio backend (virtio-net-device) and
# aliases the backend's properties onto itself; compat entries naming the backend or its
# parents (virtio-net-device, virtio-device) set them. The proxies' instance_init names the
# backend (hw/virtio/virtio-net-pci.c virtio_net_pci_instance_init():
# virtio_instance_init_common(obj, &dev->vdev, sizeof(dev->vdev), TYPE_VIRTIO_NET)); most
# follow "X-pci" -> "X-device" or "X", these do not:
_VIRTIO_BACKEND_EXCEPTIONS = {
    "virtio-vga": "virtio-gpu-device",  # hw/display/virtio-vga.c
    "virtio-vga-gl": "virtio-gpu-gl-device",
    "virtio-vga-rutabaga": "virtio-gpu-rutabaga-device",
    "vhost-user-vga": "vhost-user-gpu",  # hw/display/vhost-user-vga.c
}
_PROXY_SUFFIXES = ("-pci-non-transitional", "-pci-transitional", "-pci")


def virtio_backend(driver: str, device_types: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The virtio backend type a virtio PCI proxy embeds, or None (not a proxy)."""
    if "virtio-pci" not in ancestry(driver, device_types):
        return None
    special = _VIRTIO_BACKEND_EXCEPTIONS.get(driver)
    if special in device_types:
        return special
    for suffix in _PROXY_SUFFIXES:
        if driver.endswith(suffix):
            stem = driver[: -len(suffix)]
            for candidate in (stem + "-device", stem):
                anc = ancestry(candidate, device_types)
                if candidate in device_types and "virtio-device" in anc:
                    return candidate
    return None


def parse_value(text: str, prop_type: str | None) -> Any:
    """A compat value (a string, as QEMU parses -global) in the JSON form device-list-properties
    and qom-get use: bool for bool, int for the integer types, else the string."""
    if prop_type == "bool":
        low = text.strip().lower()
        if low in ("on", "true", "yes"):
            return True
        if low in ("off", "false", "no"):
            return False
        return text
    if prop_type and _INT_TYPE_RE.match(prop_type):
        for base in (0, 10):
            try:
                return int(text, base)
            except ValueError:
                continue
        return text
    return text


def matching_compat(
    driver: str,
    props: Sequence[Mapping[str, Any]],
    device_types: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """Property -> compat value that wins for an object of type ``driver`` (the last matching
    entry, as object_apply_global_props() applies them in order)."""
    types = set(ancestry(driver, device_types))
    backend = virtio_backend(driver, device_types)
    if backend:
        types.update(ancestry(backend, device_types))
    out: dict[str, str] = {}
    for entry in props:
        if entry.get("qom-type") in types and isinstance(entry.get("property"), str):
            out[entry["property"]] = str(entry.get("value"))
    return out


def effective_defaults(
    driver: str,
    machine: str,
    class_props: Mapping[str, Mapping[str, Any]] | None,
    build_compat: Sequence[Mapping[str, Any]] | None,
    qemu_version: str | None,
    device_types: Mapping[str, Mapping[str, Any]] | None,
    table: CompatTable | None = None,
) -> dict[str, Any] | Unknown:
    """Every property of a ``driver`` device under ``machine`` on one build: its effective
    default, or None where QEMU has no static default and no compat entry sets it (the device
    computes it at realize). :class:`Unknown` when the compat list cannot be known."""
    if class_props is None:
        return Unknown(f"no device properties of {driver} recorded for this build")
    if device_types is None or driver not in device_types:
        return Unknown(f"{driver} is not among the build's recorded QOM types")
    if build_compat is not None:
        compat: Sequence[Mapping[str, Any]] | Unknown = build_compat
    else:
        compat = (table or shipped_compat()).compat_props(machine, qemu_version)
    if isinstance(compat, Unknown):
        return compat
    wins = matching_compat(driver, compat, device_types)
    out: dict[str, Any] = {}
    for prop, info in class_props.items():
        if prop in wins:
            out[prop] = parse_value(wins[prop], info.get("type"))
        else:
            out[prop] = info.get("default")
    return out


def effective_default(
    driver: str,
    prop: str,
    machine: str,
    class_props: Mapping[str, Mapping[str, Any]] | None,
    build_compat: Sequence[Mapping[str, Any]] | None,
    qemu_version: str | None,
    device_types: Mapping[str, Mapping[str, Any]] | None,
    table: CompatTable | None = None,
) -> Any:
    """The value property ``prop`` of a ``driver`` device has under ``machine`` on one QEMU
    build when the command line does not set it, or :class:`Unknown` with the reason.

    ``class_props``: the build's ``device_props(driver)``; ``build_compat``: the build's own
    ``machine_compat(machine)`` (QEMU >= 9.1) or None, then the sourced table for
    ``qemu_version`` is used; ``device_types``: the build's QOM types with their parents.
    """
    values = effective_defaults(
        driver, machine, class_props, build_compat, qemu_version, device_types, table
    )
    if isinstance(values, Unknown):
        return values
    if prop not in values:
        return Unknown(f"{driver} has no property {prop!r} on this build")
    if values[prop] is None:
        return Unknown(f"QEMU reports no default for {driver}.{prop}")
    return values[prop]
