"""What one QEMU build can build, stored once per build and referenced from facts by key.

The probe records a build's identity in ``qemu.build`` (``key``: a digest of the version
and package strings, the binary's sha256 and the module directory's digest). Only when the
controller does not hold that key yet does the probe add the build's schema: device types
(``qom-list-types``), device properties (``device-list-properties``), netdev backends and
block drivers (``query-qmp-schema``), ``query-machines`` compat properties (QEMU >= 9.1),
the ``-dump-vmstate`` migration formats and the firmware image sizes. The controller moves
that schema out of the facts into a build document, ``qemu-builds/KEY.json``:

- ``gather --out DIR`` (and :func:`migcheck.facts.save_facts`) writes each referenced build
  once beside the facts, as ``DIR/qemu-builds/KEY.json``;
- the controller keeps every build it has seen in the local store,
  ``$XDG_CACHE_HOME/migcheck/qemu-builds/`` (the probe cache's neighbour), and tells the
  probe which keys it holds.

A reader looks beside the facts file first, then in the local store. A key found nowhere
makes :attr:`Facts.build` None and :attr:`Facts.build_missing` name the key, and every
check that needs build data says ``unknown``. A build document is validated like facts:
a corrupt one is refused with an :class:`InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from migcheck.errors import InputError

BUILD_SCHEMA = "migcheck.qemu-build/1"
BUILDS_DIR = "qemu-builds"  # beside the facts files, and inside the local cache
KEY_RE = re.compile(r"^[0-9a-f]{16,64}$")
MAX_BUILD_BYTES = 64 * 1024 * 1024

# Plausibility limits, an order of magnitude above real builds (QEMU 10.0 for x86: ~740
# device types, at most ~150 properties per device, ~230 vmstate sections, ~70 machines).
LIMITS = {
    "device_types": 20000,
    "device_props": 20000,
    "props_per_device": 4000,
    "names": 4000,  # netdevs, block drivers
    "machines": 10000,
    "compat_per_machine": 20000,
    "vmstate": 20000,
    "files": 100000,  # firmware files, modules
}


# Block drivers QEMU builds as loadable modules when configured with --enable-modules
# (block/meson.build, the "block_modules" loop: blkio, curl, gluster, iscsi, nfs, ssh, rbd),
# named by the format_name/protocol_name of their BlockDriver (block/curl.c, block/blkio.c,
# block/iscsi.c, ...), loaded by block.c bdrv_find_format/bdrv_find_protocol through
# block_module_load().
BLOCK_MODULES: dict[str, tuple[str, ...]] = {
    "block-curl.so": ("http", "https", "ftp", "ftps"),
    "block-gluster.so": ("gluster",),
    "block-iscsi.so": ("iscsi", "iser"),
    "block-nfs.so": ("nfs",),
    "block-ssh.so": ("ssh",),
    "block-rbd.so": ("rbd",),
    "block-blkio.so": (
        "io_uring",
        "nvme-io_uring",
        "virtio-blk-vfio-pci",
        "virtio-blk-vhost-user",
        "virtio-blk-vhost-vdpa",
    ),
}


class BuildError(InputError):
    """A build document migcheck cannot trust."""

    def __init__(self, origin: str, problem: str) -> None:
        super().__init__(f"{origin}: not a usable migcheck QEMU build file: {problem}")
        self.origin = origin
        self.problem = problem


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _want(origin: str, where: str, value: Any, kind: type | tuple[type, ...]) -> None:
    # bool is an int in Python: a build file must not let one stand for the other.
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is int)
    if not ok:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BuildError(origin, f"{where} should be {names}, found {_kind(value)}")


def _limit(origin: str, where: str, value: Any, key: str) -> None:
    if len(value) > LIMITS[key]:
        raise BuildError(
            origin, f"{where} has {len(value)} entries, more than any real build ({LIMITS[key]})"
        )


def _str_list(origin: str, where: str, value: Any) -> None:
    _want(origin, where, value, list)
    _limit(origin, where, value, "names")
    for i, item in enumerate(value):
        _want(origin, f"{where}[{i}]", item, str)


def _size_map(origin: str, where: str, value: Any) -> None:
    _want(origin, where, value, dict)
    _limit(origin, where, value, "files")
    for name, size in value.items():
        _want(origin, f"{where}[{name!r}]", size, int)
        if size < 0:
            raise BuildError(origin, f"{where}[{name!r}] = {size} is not a file size")


def validate_build(doc: Any, origin: str, key: str | None = None) -> dict[str, Any]:
    """Check a parsed build document; return it or raise :class:`BuildError`.

    ``key``: the key the document must carry (the file name's), so a renamed file cannot
    stand in for another build."""
    _want(origin, "top level", doc, dict)
    if doc.get("schema") != BUILD_SCHEMA:
        raise BuildError(origin, f"schema {doc.get('schema')!r} is not {BUILD_SCHEMA!r}")
    _want(origin, "key", doc.get("key"), str)
    if not KEY_RE.match(doc["key"]):
        raise BuildError(origin, f"key {doc['key'][:80]!r} is not a build key")
    if key is not None and doc["key"] != key:
        raise BuildError(origin, f"holds build {doc['key']}, not {key}")
    ident = doc.get("identity")
    _want(origin, "identity", ident, dict)
    if ident.get("key") != doc["key"]:
        raise BuildError(origin, "identity.key differs from key")
    _want(origin, "identity.version", ident.get("version"), str)
    _want(origin, "identity.binary", ident.get("binary"), dict)
    _want(origin, "identity.binary.sha256", ident["binary"].get("sha256"), str)
    _want(origin, "errors", doc.get("errors", {}), dict)
    types = doc.get("device_types")
    if types is not None:
        _want(origin, "device_types", types, dict)
        _limit(origin, "device_types", types, "device_types")
        for name, info in types.items():
            where = f"device_types[{name!r}]"
            _want(origin, where, info, dict)
            _want(origin, f"{where}.abstract", info.get("abstract"), bool)
            if info.get("parent") is not None:
                _want(origin, f"{where}.parent", info["parent"], str)
    props = doc.get("device_props")
    if props is not None:
        _want(origin, "device_props", props, dict)
        _limit(origin, "device_props", props, "device_props")
        for name, entry in props.items():
            where = f"device_props[{name!r}]"
            _want(origin, where, entry, dict)
            _limit(origin, where, entry, "props_per_device")
            for prop, info in entry.items():
                _want(origin, f"{where}[{prop!r}]", info, dict)
                _want(origin, f"{where}[{prop!r}].type", info.get("type"), str)
    for name in ("netdevs", "block_drivers"):
        if doc.get(name) is not None:
            _str_list(origin, name, doc[name])
    compat = doc.get("machine_compat")
    if compat is not None:
        _want(origin, "machine_compat", compat, dict)
        _limit(origin, "machine_compat", compat, "machines")
        for machine, items in compat.items():
            where = f"machine_compat[{machine!r}]"
            _want(origin, where, items, list)
            _limit(origin, where, items, "compat_per_machine")
            for i, item in enumerate(items):
                _want(origin, f"{where}[{i}]", item, dict)
                for field in ("qom-type", "property", "value"):
                    _want(origin, f"{where}[{i}].{field}", item.get(field), str)
    vmstate = doc.get("vmstate")
    if vmstate is not None:
        _want(origin, "vmstate", vmstate, dict)
        _limit(origin, "vmstate", vmstate, "vmstate")
        for name, sec in vmstate.items():
            where = f"vmstate[{name!r}]"
            _want(origin, where, sec, dict)
            if name == "vmschkmachine":
                continue
            _want(origin, f"{where}.version_id", sec.get("version_id"), int)
            _want(origin, f"{where}.minimum_version_id", sec.get("minimum_version_id"), int)
            if "Description" in sec:
                _want(origin, f"{where}.Description", sec["Description"], dict)
    if doc.get("firmware") is not None:
        _size_map(origin, "firmware", doc["firmware"])
    if doc.get("modules") is not None:
        _size_map(origin, "modules", doc["modules"])
    return doc


@dataclass(frozen=True, eq=False)
class BuildData:
    """One validated build document with the accessors checks use (None: not recorded)."""

    doc: Mapping[str, Any]
    origin: str  # the file it came from, or the host whose probe sent it

    @property
    def key(self) -> str:
        return str(self.doc["key"])

    @property
    def identity(self) -> Mapping[str, Any]:
        return self.doc["identity"]

    @property
    def version(self) -> str:
        return str(self.identity.get("version"))

    @property
    def device_types(self) -> dict[str, dict]:
        types = self.doc.get("device_types")
        return types if isinstance(types, dict) else {}

    @property
    def has_device_types(self) -> bool:
        return isinstance(self.doc.get("device_types"), dict)

    def device_props(self, driver: str) -> dict[str, dict] | None:
        """Property name -> {"type", "default" (absent when QEMU reports none)}; None when
        the build did not list this type's properties (abstract, unknown, or it failed)."""
        props = self.doc.get("device_props")
        if not isinstance(props, Mapping):
            return None
        entry = props.get(driver)
        return entry if isinstance(entry, dict) else None

    def device_props_error(self, driver: str) -> str | None:
        errors = (self.doc.get("errors") or {}).get("device_props")
        if isinstance(errors, dict) and isinstance(errors.get(driver), str):
            return errors[driver]
        return None

    @cached_property
    def netdevs(self) -> frozenset[str] | None:
        value = self.doc.get("netdevs")
        return frozenset(value) if isinstance(value, list) else None

    @cached_property
    def block_drivers(self) -> frozenset[str] | None:
        """Block drivers this build can open. The QAPI schema lists module drivers whether
        or not their module is installed (Debian ships block-curl.so and friends in
        qemu-block-extra); a modular build without the module cannot load the driver."""
        value = self.doc.get("block_drivers")
        if not isinstance(value, list):
            return None
        drivers = set(value)
        modules = self.modules
        if modules:  # a build with modules builds every block module as one
            for module, names in BLOCK_MODULES.items():
                if module not in modules:
                    drivers -= set(names)
        return frozenset(drivers)

    @property
    def vmstate(self) -> Mapping[str, Any] | None:
        value = self.doc.get("vmstate")
        return value if isinstance(value, Mapping) else None

    @property
    def firmware(self) -> dict[str, int] | None:
        value = self.doc.get("firmware")
        return value if isinstance(value, dict) else None

    @property
    def modules(self) -> dict[str, int] | None:
        value = self.doc.get("modules")
        return value if isinstance(value, dict) else None

    def machine_compat(self, machine: str) -> list[dict] | None:
        """``query-machines`` ``compat-props`` of ``machine`` (QEMU >= 9.1); None when the
        build cannot say (older QEMU, or a machine it does not have)."""
        compat = self.doc.get("machine_compat")
        if not isinstance(compat, Mapping):
            return None
        items = compat.get(machine)
        return items if isinstance(items, list) else None

    def error(self, part: str) -> str | None:
        """Why ``part`` (``vmstate``, ``netdevs``, ...) was not recorded, if the probe said."""
        value = (self.doc.get("errors") or {}).get(part)
        return value if isinstance(value, str) else None


# --- where builds live -------------------------------------------------------------------


def store_dir() -> Path:
    """The local store: every build this controller has seen."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "migcheck" / BUILDS_DIR


_lock = threading.Lock()
# Builds received from probes in this process (also when the store cannot be written).
_received: dict[str, BuildData] = {}
# Parsed build files by (path, mtime, size): a fleet of 1,000 hosts on 3 builds parses 3.
_parsed: dict[tuple[str, int, int], BuildData] = {}


def forget_received() -> None:
    """Drop what probes sent this process and the parsed-file cache (tests, long runs)."""
    with _lock:
        _received.clear()
        _parsed.clear()


def known_keys() -> list[str]:
    """Keys the controller holds (local store and this process), for the probe's CONFIG."""
    keys = set(_received)
    try:
        for entry in os.scandir(store_dir()):
            stem = entry.name[:-5] if entry.name.endswith(".json") else ""
            if KEY_RE.match(stem) and entry.is_file():
                keys.add(stem)
    except OSError:
        pass
    return sorted(keys)


def received(doc: Any, origin: str) -> BuildData:
    """Validate a build schema a probe sent, keep it for this process and in the local
    store (best effort: the store is a cache)."""
    build = BuildData(validate_build(doc, f"{origin} (probe build data)"), origin)
    with _lock:
        _received[build.key] = build
    with contextlib.suppress(OSError):  # the store is a cache; this process keeps it
        write_build(build, store_dir(), replace=True)
    return build


def _plain(value: Any) -> Any:
    """A lazily decoded section (LazySection) written out as the object it stands for."""
    if isinstance(value, Mapping):
        return {k: value[k] for k in value}
    raise TypeError(f"{type(value).__name__} is not JSON data")


def write_build(build: BuildData, directory: Path, replace: bool = False) -> Path:
    """Write ``directory/KEY.json`` atomically. An existing file is kept unless ``replace``
    (what a probe just sent replaces what an older probe recorded of the same build)."""
    path = directory / f"{build.key}.json"
    if path.is_file() and not replace:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{build.key}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        text = json.dumps(build.doc, sort_keys=True, separators=(",", ":"), default=_plain)
        tmp.write_text(text + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# --- the validated index: per-entry access without parsing a whole build -----------------
#
# A build file is 2-4 MB of JSON; parsing and validating it costs ~0.25 s, more than the rest
# of a pair check. The first load writes a validated index to the private cache, keyed by the
# file's identity (device, inode, size, mtime and ctime in nanoseconds: a rewrite in place
# changes ctime); later loads decode only the entries a check asks for (the guest's devices).

LAZY_SECTIONS = ("device_props", "vmstate", "machine_compat")
INDEX_VERSION = 1


class LazySection(Mapping[str, Any]):
    """One big section of a validated build: entries decoded on first access."""

    def __init__(self, raw: dict[str, bytes]) -> None:
        self._raw = raw
        self._decoded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        try:
            return self._decoded[name]
        except KeyError:
            value = self._decoded[name] = json.loads(self._raw[name])
            return value

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Any:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def _index_dir() -> Path | None:
    root = store_dir().parent / "build-index"
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = root.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None  # never trust an index someone else could have written
    return root


def _index_path(path: Path, st: os.stat_result) -> Path | None:
    root = _index_dir()
    if root is None:
        return None
    ident = f"{INDEX_VERSION}|{os.path.abspath(path)}|{st.st_dev}|{st.st_ino}|{st.st_size}"
    ident += f"|{st.st_mtime_ns}|{st.st_ctime_ns}"
    return root / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".idx")


def _write_index(target: Path, doc: Mapping[str, Any]) -> None:
    head = {k: v for k, v in doc.items() if k not in LAZY_SECTIONS}
    head["_lazy"] = [k for k in LAZY_SECTIONS if isinstance(doc.get(k), dict)]
    lines = [json.dumps(head, separators=(",", ":"))]
    for section in head["_lazy"]:
        for name, value in doc[section].items():
            lines.append(
                json.dumps([section, name]) + "\t" + json.dumps(value, separators=(",", ":"))
            )
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _read_index(path: Path) -> dict[str, Any] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        first, _, rest = data.partition(b"\n")
        doc: dict[str, Any] = json.loads(first)
        raws: dict[str, dict[str, bytes]] = {s: {} for s in doc.pop("_lazy")}
        for line in rest.split(b"\n"):
            if line:
                head, _, body = line.partition(b"\t")
                section, name = json.loads(head)
                raws[section][name] = body
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a damaged index is rebuilt from the file
    for section, raw in raws.items():
        doc[section] = LazySection(raw)
    return doc


def load_build(path: str | Path, key: str | None = None) -> BuildData:
    """Load and validate one build file (parsed once per process while it is unchanged,
    and once per machine through the validated index)."""
    origin = str(path)
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise InputError(f"{origin}: cannot read QEMU build file: {exc.strerror or exc}") from None
    cache_key = (os.path.abspath(origin), st.st_mtime_ns, st.st_size)
    hit = _parsed.get(cache_key)
    if hit is not None:
        return hit
    index = _index_path(p, st)
    indexed = _read_index(index) if index is not None and index.is_file() else None
    if indexed is not None and (key is None or indexed.get("key") == key):
        build = BuildData(indexed, origin)
        with _lock:
            _parsed[cache_key] = build
        return build
    if st.st_size > MAX_BUILD_BYTES:
        raise BuildError(origin, f"file is {st.st_size} bytes, more than {MAX_BUILD_BYTES}")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{origin}: cannot read QEMU build file: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BuildError(origin, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise BuildError(
            origin, f"not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
        ) from None
    except (RecursionError, ValueError):
        raise BuildError(
            origin, "not valid JSON (nested too deeply, or an overlong number)"
        ) from None
    build = BuildData(validate_build(doc, origin, key), origin)
    if index is not None:
        _write_index(index, build.doc)
    with _lock:
        _parsed[cache_key] = build
    return build


def find_build(key: str, beside: Path | None = None) -> BuildData | None:
    """The build ``key``: beside the facts file (``beside/qemu-builds``) first, then the
    local store, then what probes sent this process. None when it is nowhere."""
    if not KEY_RE.match(key):
        return None
    dirs = [beside / BUILDS_DIR] if beside is not None else []
    dirs.append(store_dir())
    for directory in dirs:
        path = directory / f"{key}.json"
        if path.is_file():
            return load_build(path, key)
    return _received.get(key)


def split_probe_output(doc: dict[str, Any], origin: str) -> dict[str, Any]:
    """Move the build schema a probe sent (top-level ``build_schema``) into the build store;
    the facts keep only ``qemu.build``. Returns the facts document without it."""
    if "build_schema" not in doc:
        return doc
    doc = dict(doc)
    schema = doc.pop("build_schema")
    received(schema, origin)
    return doc
