"""The platform catalog: capabilities, upstream and distro platforms, loaded from TOML.

Format: ``data/SCHEMA.md`` beside this module. Loading validates everything a check relies
on; a broken catalog (unknown capability, bad version, inconsistent parent, cycle) is an
:class:`InputError` naming the file and the entry, never a wrong verdict.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from migcheck import fileid
from migcheck.catalog.blockers import load_blockers
from migcheck.catalog.compat import load_compat
from migcheck.catalog.cpumodels import load_cpu_families
from migcheck.catalog.releases import Release, Reviewed, load_releases, load_reviewed
from migcheck.catalog.toml import (
    CatalogError,
    _need,
    _optional,
    _sources,
    check_option,
    read_toml,
)
from migcheck.errors import InputError

_LINUX_RE = re.compile(r"^\d+\.\d+$")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
AREAS = {"tap", "vhost", "kvm", "cpu", "memory", "confidential", "hyperv"}


def default_catalog_dir() -> Path:
    """The catalog: ``$MIGCHECK_PLATFORMS`` if set, else the data shipped inside the package
    (``migcheck/catalog/data``), so a wheel installed anywhere finds it."""
    import os

    override = os.environ.get("MIGCHECK_PLATFORMS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / "data"


@lru_cache(maxsize=1024)  # catalog versions, compared thousands of times by a fleet's checks
def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


@dataclass(frozen=True)
class DeviceProps:
    drivers: tuple[str, ...]
    props: tuple[str, ...]
    netdev: str | None = None
    default_on_machine: str | None = None
    qemu_source: str | None = None


@dataclass(frozen=True)
class Capability:
    id: str
    title: str
    summary: str
    area: str
    linux: str
    verified: bool
    note: str
    in_platforms: bool  # False: depends on hardware or kernel config, not on the version
    kvm_cap: str | None
    device: str | None
    kvm_param: Mapping[str, Any] | None
    qemu_since: str | None
    device_props: tuple[DeviceProps, ...]
    accel_props: tuple[str, ...]
    cpu_features: tuple[str, ...]
    objects: tuple[str, ...]
    options: tuple[Mapping[str, str], ...]
    sources: tuple[Mapping[str, str], ...]
    path: str

    @property
    def linux_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.linux)


@dataclass(frozen=True)
class Backport:
    capability: str
    verified: bool
    source: str
    note: str = ""


@dataclass(frozen=True)
class Platform:
    id: str
    title: str
    kind: str  # "upstream" | "distro"
    linux: str  # upstream version, or the distro kernel's base
    capabilities: frozenset[str]
    released: str | None = None
    lts: bool = False
    extends: str | None = None
    os_id: str | None = None
    os_version: str | None = None
    kernel_patterns: tuple[str, ...] = ()
    backports: tuple[Backport, ...] = ()
    missing: tuple[Backport, ...] = ()
    sources: tuple[Mapping[str, str], ...] = ()
    note: str = ""
    path: str = ""

    @property
    def linux_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.linux)

    def matches_kernel(self, release: str) -> bool:
        return any(re.search(p, release) for p in self.kernel_patterns)


@dataclass(frozen=True, eq=False)  # hashed by identity: caches key on the catalog object
class Catalog:
    capabilities: Mapping[str, Capability]
    platforms: Mapping[str, Platform]
    root: str = ""
    blockers: tuple[Any, ...] = field(default=(), repr=False)  # migcheck.blockers.Blocker
    releases: Mapping[tuple[int, int], Release] = field(default_factory=dict, repr=False)
    cpu_families: tuple[tuple[str, str, int], ...] = field(default=(), repr=False)
    compat: Any = field(default=None, repr=False)  # catalog.compat.CompatTable, if shipped
    reviewed: Reviewed | None = field(default=None, repr=False)  # newest reviewed QEMU

    def platform(self, name: str) -> Platform:
        try:
            return self.platforms[name]
        except KeyError:
            known = ", ".join(sorted(self.platforms, key=platform_sort_key))
            raise InputError(f"unknown platform {name!r}; known platforms: {known}") from None

    def capabilities_until(self, linux: str) -> frozenset[str]:
        """The platform capabilities every upstream kernel >= ``linux`` has."""
        return _until(self.capabilities, linux)


def _until(caps: Mapping[str, Capability], linux: str) -> frozenset[str]:
    limit = version_tuple(linux)
    return frozenset(c.id for c in caps.values() if c.in_platforms and c.linux_tuple <= limit)


@cache  # a few dozen platform names, sorted thousands of times by a fleet's pair checks
def platform_sort_key(name: str) -> tuple[Any, ...]:
    """linux-4.19 < linux-6.1 < linux-debian-12 < linux-rhel-9.4 (upstream first, numeric)."""
    m = re.match(r"^linux-(\d+)\.(\d+)$", name)
    if m:
        return (0, int(m.group(1)), int(m.group(2)), "")
    parts = re.split(r"(\d+)", name)
    return (1, 0, 0, tuple(int(p) if p.isdigit() else p for p in parts))


def _list(doc: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise CatalogError(where, f"{key!r} should be a list")
    return value


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(where, f"{key!r} should be a list of strings")
    return tuple(value)


def _linux(value: Any, where: str, key: str = "linux") -> str:
    if not isinstance(value, str) or not _LINUX_RE.match(value):
        raise CatalogError(where, f'{key!r} should be a Linux version like "6.2", not {value!r}')
    return value


def load_capability(path: Path, known_kvm_caps: frozenset[str]) -> Capability:
    doc = read_toml(path)
    cid = _need(doc, "id", str, str(path))
    where = f"{path} [{cid}]"
    if cid != path.stem or not _ID_RE.match(cid):
        raise CatalogError(where, f"id {cid!r} must equal the file name and be lower-case")
    area = _need(doc, "area", str, where)
    if area not in AREAS:
        raise CatalogError(where, f"area {area!r} is not one of {sorted(AREAS)}")
    detect = doc.get("detect", {})
    qemu = doc.get("qemu", {})
    if not isinstance(detect, dict) or not isinstance(qemu, dict):
        raise CatalogError(where, "[detect] and [qemu] must be tables")
    kvm_cap = _optional(detect, "kvm_cap", str, where)
    if kvm_cap is not None and kvm_cap not in known_kvm_caps:
        raise CatalogError(where, f"detect.kvm_cap {kvm_cap!r} is not a capability the probe asks")
    kvm_param = _optional(detect, "kvm_param", dict, where)
    if kvm_param is not None:  # read by platforms.HostPlatforms._direct()
        w = f"{where} detect.kvm_param"
        _need(kvm_param, "module", str, w)
        _need(kvm_param, "name", str, w)
        if "values" in kvm_param:
            _strings(kvm_param["values"], w, "values")
    device_props = []
    for i, dp in enumerate(_list(qemu, "device_props", where)):
        w = f"{where} qemu.device_props[{i}]"
        if not isinstance(dp, dict):
            raise CatalogError(w, "should be a table")
        machine = _optional(dp, "default_on_machine", str, w)
        if machine is not None and not _LINUX_RE.match(machine):
            raise CatalogError(w, f'default_on_machine {machine!r} should look like "8.2"')
        device_props.append(
            DeviceProps(
                drivers=_strings(dp.get("drivers"), w, "drivers") or _missing(w, "drivers"),
                props=_strings(dp.get("props"), w, "props") or _missing(w, "props"),
                netdev=_optional(dp, "netdev", str, w),
                default_on_machine=machine,
                qemu_source=_optional(dp, "qemu_source", str, w),
            )
        )
    options = qemu.get("options", [])
    if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
        raise CatalogError(where, "qemu.options should be a list of tables")
    for i, option in enumerate(options):
        check_option(option, f"{where} qemu.options[{i}]")
    return Capability(
        id=cid,
        title=_need(doc, "title", str, where),
        summary=_need(doc, "summary", str, where),
        area=area,
        linux=_linux(doc.get("linux"), where),
        verified=_need(doc, "verified", bool, where),
        note=str(doc.get("note", "")),
        in_platforms=_platform_flag(doc, where),
        kvm_cap=kvm_cap,
        device=_optional(detect, "device", str, where),
        kvm_param=kvm_param,
        qemu_since=str(qemu["since"]) if "since" in qemu else None,
        device_props=tuple(device_props),
        accel_props=_strings(qemu.get("accel_props"), where, "accel_props"),
        cpu_features=_strings(qemu.get("cpu_features"), where, "cpu_features"),
        objects=_strings(qemu.get("objects"), where, "objects"),
        options=tuple(options),
        sources=_sources(doc, where),
        path=str(path),
    )


def _platform_flag(doc: Mapping[str, Any], where: str) -> bool:
    value = doc.get("platform", True)
    if not isinstance(value, bool):
        raise CatalogError(where, "'platform' should be true or false")
    return value


def _missing(where: str, key: str) -> tuple[str, ...]:
    raise CatalogError(where, f"{key!r} must be a non-empty list")


def _backports(doc: Mapping[str, Any], key: str, where: str) -> tuple[Backport, ...]:
    out = []
    for i, b in enumerate(_list(doc, key, where)):
        w = f"{where} {key}[{i}]"
        if not isinstance(b, dict) or not isinstance(b.get("capability"), str):
            raise CatalogError(w, "needs a 'capability' id")
        if not isinstance(b.get("source"), str) or not b["source"]:
            raise CatalogError(w, "needs a 'source' (every backport cites one)")
        out.append(
            Backport(
                capability=b["capability"],
                verified=bool(b.get("verified", False)),
                source=b["source"],
                note=str(b.get("note", "")),
            )
        )
    return tuple(out)


def load_catalog(root: Path | str | None = None) -> Catalog:
    """Load and validate the catalog (upstream.toml, capabilities/, distros/)."""
    from migcheck.probe.probe import KVM_CAPS

    base = Path(root) if root is not None else default_catalog_dir()
    if not (base / "upstream.toml").is_file():
        raise CatalogError(str(base), "no upstream.toml: not a platform catalog directory")
    caps: dict[str, Capability] = {}
    for path in sorted((base / "capabilities").glob("*.toml")):
        cap = load_capability(path, frozenset(KVM_CAPS))
        caps[cap.id] = cap
    platforms: dict[str, Platform] = {}

    def add(p: Platform) -> None:
        if p.id in platforms:
            raise CatalogError(
                f"{p.path} [{p.id}]", f"platform id also defined in {platforms[p.id].path}"
            )
        platforms[p.id] = p

    upstream_path = base / "upstream.toml"
    upstream = read_toml(upstream_path)
    entries = upstream.get("platform")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(str(upstream_path), "needs [[platform]] entries")
    for i, entry in enumerate(entries):
        where = f"{upstream_path} platform[{i}]"
        if not isinstance(entry, dict):
            raise CatalogError(where, "should be a table")
        pid = _need(entry, "id", str, where)
        where = f"{upstream_path} [{pid}]"
        linux = _linux(entry.get("linux"), where)
        if pid != f"linux-{linux}":
            raise CatalogError(where, f"upstream platform id should be 'linux-{linux}'")
        add(
            Platform(
                id=pid,
                title=f"upstream Linux {linux}",
                kind="upstream",
                linux=linux,
                capabilities=_until(caps, linux),
                released=entry.get("released"),
                lts=bool(entry.get("lts", False)),
                sources=_sources(entry, where),
                note=str(entry.get("note", "")),
                path=str(upstream_path),
            )
        )
    for path in sorted((base / "distros").glob("*.toml")):
        add(_load_distro(path, caps))
    _check_references(platforms, caps)
    return Catalog(
        caps,
        platforms,
        str(base),
        load_blockers(base / "qemu" / "blockers.toml"),
        load_releases(base / "qemu" / "releases.toml"),
        load_cpu_families(base / "qemu" / "cpu-models.toml"),
        load_compat(base / "qemu" / "compat") if (base / "qemu" / "compat").is_dir() else None,
        load_reviewed(base / "qemu" / "releases.toml"),
    )


def _load_distro(path: Path, caps: Mapping[str, Capability]) -> Platform:
    doc = read_toml(path)
    pid = _need(doc, "id", str, str(path))
    where = f"{path} [{pid}]"
    if pid != path.stem or not _ID_RE.match(pid):
        raise CatalogError(where, f"id {pid!r} must equal the file name and be lower-case")
    base = _linux(doc.get("base"), where, "base")
    os_match = _need(doc, "os", dict, where)
    patterns = _strings(doc.get("kernel"), where, "kernel")
    if not patterns:
        raise CatalogError(where, "'kernel' needs at least one regular expression")
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise CatalogError(
                where, f"kernel pattern {p!r} is not a regular expression: {exc}"
            ) from None
    backports = _backports(doc, "backports", where)
    missing = _backports(doc, "missing", where)
    for b in (*backports, *missing):
        if b.capability not in caps:
            raise CatalogError(where, f"unknown capability {b.capability!r}")
    have = set(_until(caps, base))
    have |= {b.capability for b in backports if caps[b.capability].in_platforms}
    have -= {b.capability for b in missing}
    return Platform(
        id=pid,
        title=_need(doc, "title", str, where),
        kind="distro",
        linux=base,
        capabilities=frozenset(have),
        extends=_optional(doc, "extends", str, where),
        os_id=str(os_match.get("id", "")) or None,
        os_version=str(os_match.get("version_id", "")) or None,
        kernel_patterns=patterns,
        backports=backports,
        missing=missing,
        sources=_sources(doc, where),
        note=str(doc.get("note", "")),
        path=str(path),
    )


def _check_references(platforms: Mapping[str, Platform], caps: Mapping[str, Capability]) -> None:
    for p in platforms.values():
        seen = [p.id]
        parent_id = p.extends
        while parent_id is not None and parent_id in platforms:
            if parent_id in seen:
                chain = " -> ".join([*seen, parent_id])
                raise CatalogError(f"{p.path} [{p.id}]", f"'extends' forms a cycle: {chain}")
            seen.append(parent_id)
            parent_id = platforms[parent_id].extends
    for p in platforms.values():
        unknown = p.capabilities - set(caps)
        if unknown:
            raise CatalogError(f"{p.path} [{p.id}]", f"unknown capabilities {sorted(unknown)}")
        if p.extends is not None:
            parent = platforms.get(p.extends)
            if parent is None:
                raise CatalogError(f"{p.path} [{p.id}]", f"extends unknown platform {p.extends!r}")
            lacking = parent.capabilities - p.capabilities
            if lacking:
                raise CatalogError(
                    f"{p.path} [{p.id}]",
                    f"extends {p.extends} but lacks its capabilities {sorted(lacking)}: a "
                    "declared parent must be a subset",
                )


@cache
def shipped_catalog() -> Catalog:
    """The catalog migcheck runs with, parsed once per content: parsing and validating the
    ~70 TOML files takes ~65 ms, a pickle of the result ~3 ms (see BENCHMARKS.md)."""
    return cached_catalog(default_catalog_dir())


def _identity(base: Path) -> tuple[Any, ...]:
    """Every data file's name and identity (device, inode, size, mtime and ctime in ns), and
    the code that reads them: an edited, added or removed file, or a new migcheck, never
    reuses a stale parse. A rewrite changes ctime even when size and mtime are restored.
    Reading and hashing the ~90 files' bytes instead cost ~2 ms a run; this costs ~0.3 ms."""
    from migcheck import __version__

    found: list[tuple[Any, ...]] = []
    pending = [str(base)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.name.endswith(".toml"):
                    found.append((entry.path, *fileid.identity(entry.stat())))
    return (__version__, sys.version_info[:2], str(base), tuple(sorted(found)))


def _cache_name(identity: tuple[Any, ...]) -> str:
    """One cache file per installed version and catalog directory: two installs (or
    checkouts) must not take turns overwriting one file. The file holds the identity it was
    parsed from and is used only when that still matches, so this name only spreads them."""
    import zlib

    version, python, base, _ = identity
    tag = zlib.crc32(f"{version} {python} {base}".encode())
    return f"{version}-{tag:08x}.pickle"


def _cache_root() -> Path | None:
    """$XDG_CACHE_HOME/migcheck/catalog when it is ours and private, else None (no cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = Path(base) / "migcheck" / "catalog"
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = root.stat()
    except OSError:
        return None
    # A pickle is code: never read one from a directory someone else could write.
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return root


def cached_catalog(base: Path) -> Catalog:
    try:
        identity = _identity(base)
    except OSError:
        return load_catalog(base)  # unreadable: let the loader say what is wrong
    root = _cache_root()
    path = root / _cache_name(identity) if root is not None else None
    if path is not None:
        try:
            with path.open("rb") as f:
                found = pickle.load(f)
            if (
                isinstance(found, tuple)
                and len(found) == 2
                and found[0] == identity
                and isinstance(found[1], Catalog)
            ):
                return found[1]
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass  # absent or unreadable: parse again
        except Exception:
            pass
    catalog = load_catalog(base)
    if path is not None:
        try:
            import tempfile  # only when the parse is written: a cache hit never needs it

            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".catalog-")
            with os.fdopen(fd, "wb") as f:
                pickle.dump((identity, catalog), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only or full cache only costs the next run the parse
    return catalog
