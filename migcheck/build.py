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
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from migcheck.errors import InputError
from migcheck.fileid import identity

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


def _first_bad(origin: str, where: str, items: list[Any], ok: Any, want: str) -> None:
    """Bulk-check ``items`` with ``ok``; name the first bad one (a clear error, cheaply)."""
    if all(map(ok, items)):
        return
    i = next(i for i, item in enumerate(items) if not ok(item))
    raise BuildError(origin, f"{where}[{i}] should be {want}, found {str(items[i])[:80]}")


def _type_ok(info: Any) -> bool:
    return (
        type(info) is dict
        and type(info.get("abstract")) is bool
        and (info.get("parent") is None or type(info["parent"]) is str)
    )


def _prop_ok(item: Any) -> bool:
    # [name, type] or [name, type, default]: device-list-properties' name, type and
    # default-value (any JSON value).
    return (
        type(item) is list and 2 <= len(item) <= 3 and type(item[0]) is str and type(item[1]) is str
    )


def _compat_ok(item: Any) -> bool:
    # [qom-type, property, value] of query-machines compat-props.
    return type(item) is list and len(item) == 3 and all(type(x) is str for x in item)


def _table(origin: str, doc: dict, name: str, ok: Any, want: str) -> int:
    table = doc.get(name)
    _want(origin, name, table, list)
    _limit(origin, name, table, "files")
    _first_bad(origin, name, table, ok, want)
    return len(table)


def _str_values(origin: str, where: str, mapping: Any, limit: str) -> None:
    _want(origin, where, mapping, dict)
    _limit(origin, where, mapping, limit)
    if not all(type(v) is str for v in mapping.values()):
        name = next(k for k, v in mapping.items() if type(v) is not str)
        raise BuildError(origin, f"{where}[{name!r}] should be str, found {_kind(mapping[name])}")


def decode_ranges(text: str, size: int) -> list[int] | None:
    """ "0-2,7" -> [0, 1, 2, 7] (the probe's index_ranges); None when malformed or out of
    ``range(size)``."""
    out: list[int] = []
    if not text:
        return out
    for part in text.split(","):
        first, sep, last = part.partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            return None
        a, b = int(first), int(last) if sep else int(first)
        if a > b or b >= size or len(out) + b - a >= LIMITS["props_per_device"]:
            return None
        out.extend(range(a, b + 1))
    return out


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
        if not all(map(_type_ok, types.values())):
            for name, info in types.items():  # name the first bad entry
                where = f"device_types[{name!r}]"
                _want(origin, where, info, dict)
                _want(origin, f"{where}.abstract", info.get("abstract"), bool)
                if info.get("parent") is not None:
                    _want(origin, f"{where}.parent", info["parent"], str)
    # device_props: type -> index ranges into "props", decoded (and checked) per type on
    # use; vmstate: section -> JSON text, parsed (and checked) per section on use. A
    # 600-type build then costs a few milliseconds to load, not a hundred.
    if doc.get("device_props") is not None:
        _table(origin, doc, "props", _prop_ok, "[name, type] or [name, type, default]")
        _str_values(origin, "device_props", doc["device_props"], "device_props")
    compat = doc.get("machine_compat")
    if compat is not None:
        size = _table(origin, doc, "compat", _compat_ok, "[qom-type, property, value]")
        _want(origin, "machine_compat", compat, dict)
        _limit(origin, "machine_compat", compat, "machines")
        for machine, refs in compat.items():
            where = f"machine_compat[{machine!r}]"
            _want(origin, where, refs, list)
            _limit(origin, where, refs, "compat_per_machine")
            if refs and (set(map(type, refs)) != {int} or min(refs) < 0 or max(refs) >= size):
                raise BuildError(origin, f"{where} should list indexes into compat")
    for name in ("netdevs", "block_drivers"):
        if doc.get(name) is not None:
            _str_list(origin, name, doc[name])
    if doc.get("vmstate") is not None:
        _str_values(origin, "vmstate", doc["vmstate"], "vmstate")
    if doc.get("firmware") is not None:
        _size_map(origin, "firmware", doc["firmware"])
    if doc.get("modules") is not None:
        _size_map(origin, "modules", doc["modules"])
    if doc.get("firmware_path") is not None:
        _str_list(origin, "firmware_path", doc["firmware_path"])
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
        the build did not list this type's properties (abstract, unknown, or it failed).
        Raises :class:`BuildError` for a malformed entry."""
        cache = self.__dict__.setdefault("_props_cache", {})
        if driver in cache:
            return cache[driver]
        props, table = self.doc.get("device_props"), self.doc.get("props")
        text = props.get(driver) if isinstance(props, dict) else None
        out: dict[str, dict] | None = None
        if isinstance(text, str) and isinstance(table, list):
            refs = decode_ranges(text, len(table))
            if refs is None:
                raise BuildError(
                    self.origin, f"device_props[{driver!r}] = {text[:60]!r} is not index ranges"
                )
            out = {}
            for i in refs:
                item = table[i]
                info = {"type": item[1]}
                if len(item) > 2:
                    info["default"] = item[2]
                out[item[0]] = info
        cache[driver] = out
        return out

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

    @cached_property
    def vmstate(self) -> Mapping[str, Any] | None:
        """The ``-dump-vmstate`` JSON: section (QOM class name) -> description. A read-only
        mapping that parses and checks each section on first use."""
        value = self.doc.get("vmstate")
        return VmstateSections(value, self.origin) if isinstance(value, dict) else None

    @property
    def firmware(self) -> dict[str, int] | None:
        value = self.doc.get("firmware")
        return value if isinstance(value, dict) else None

    @property
    def firmware_path(self) -> list[str] | None:
        """The directories QEMU searches for a firmware file named without a directory, in
        order (``-L help``); None when the build did not record them (older probes)."""
        value = self.doc.get("firmware_path")
        return value if isinstance(value, list) else None

    @property
    def modules(self) -> dict[str, int] | None:
        value = self.doc.get("modules")
        return value if isinstance(value, dict) else None

    def machine_compat(self, machine: str) -> list[dict] | None:
        """``query-machines`` ``compat-props`` of ``machine`` (QEMU >= 9.1); None when the
        build cannot say (older QEMU, or a machine it does not have)."""
        compat, table = self.doc.get("machine_compat"), self.doc.get("compat")
        if not isinstance(compat, dict) or not isinstance(table, list):
            return None
        refs = compat.get(machine)
        if not isinstance(refs, list):
            return None
        return [
            {"qom-type": table[i][0], "property": table[i][1], "value": table[i][2]} for i in refs
        ]

    @property
    def complete(self) -> bool:
        """Every part recorded: the only error allowed is QEMU < 9.1 refusing compat-props
        (which a newer probe cannot fix either)."""
        errors = self.doc.get("errors") or {}
        return set(errors) <= {"machine_compat"}

    def error(self, part: str) -> str | None:
        """Why ``part`` (``vmstate``, ``netdevs``, ...) was not recorded, if the probe said."""
        value = (self.doc.get("errors") or {}).get(part)
        return value if isinstance(value, str) else None


class VmstateSections(Mapping[str, Any]):
    """``-dump-vmstate`` sections kept as JSON text, parsed and checked on first use."""

    def __init__(self, texts: dict[str, str], origin: str) -> None:
        self._texts = texts
        self._parsed: dict[str, Any] = {}
        self._origin = origin

    def __getitem__(self, name: str) -> Any:
        if name in self._parsed:
            return self._parsed[name]
        text = self._texts[name]  # KeyError: no such section
        where = f"vmstate[{name!r}]"
        try:
            sec = json.loads(text)
        except (ValueError, RecursionError):
            raise BuildError(self._origin, f"{where} is not JSON text of a section") from None
        sec = _scrub(sec, self._origin)  # names reach the report: no terminal control
        _want(self._origin, where, sec, dict)
        if name != "vmschkmachine":
            _want(self._origin, f"{where}.version_id", sec.get("version_id"), int)
            _want(self._origin, f"{where}.minimum_version_id", sec.get("minimum_version_id"), int)
            if "Description" in sec:
                _want(self._origin, f"{where}.Description", sec["Description"], dict)
        self._parsed[name] = sec
        return sec

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def __contains__(self, name: object) -> bool:
        return name in self._texts


# --- where builds live -------------------------------------------------------------------


def store_dir() -> Path:
    """The local store: every build this controller has seen."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "migcheck" / BUILDS_DIR


_lock = threading.Lock()
# Builds received from probes in this process (also when the store cannot be written).
_received: dict[str, BuildData] = {}
# Parsed build files by path, with the identity they were parsed at (device, inode, size,
# mtime and ctime in ns): a fleet of 1,000 hosts on 3 builds parses 3, and a file rewritten
# 1,000 times (gather --from-ansible) is held once, not 1,000 times.
_parsed: dict[str, tuple[tuple[int, int, int, int, int], BuildData]] = {}
# What each received build was validated from: a probe that sends the same schema again
# (every host of a build, under gather --from-ansible) is not validated and stored again.
_received_from: dict[str, Any] = {}


def forget_received() -> None:
    """Drop what probes sent this process and the parsed-file cache (tests, long runs)."""
    with _lock:
        _received.clear()
        _received_from.clear()
        _parsed.clear()


def known_keys() -> list[str]:
    """Keys the controller holds (local store and this process), for the probe's CONFIG."""
    keys = {k for k, b in _received.items() if b.complete}
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
    where = f"{origin} (probe build data)"
    key = doc.get("key") if isinstance(doc, dict) else None
    with _lock:
        seen = _received.get(key) if isinstance(key, str) else None
        if seen is not None and _received_from.get(key) == doc:
            return seen  # the same schema again: validated and stored already
    build = BuildData(validate_build(_scrub(doc, where), where), origin)
    with _lock:
        _received[build.key] = build
        _received_from[build.key] = doc
    if build.complete:  # a partial one is used, but fetched again by the next probe
        with contextlib.suppress(OSError):  # the store is a cache; this process keeps it
            write_build(build, store_dir(), replace=True)
    return build


def write_build(build: BuildData, directory: Path, replace: bool = False) -> Path:
    """Write ``directory/KEY.json`` atomically. An existing file is kept unless ``replace``
    (what a probe just sent replaces what an older probe recorded of the same build)."""
    path = directory / f"{build.key}.json"
    if path.is_file() and not replace:
        return path
    from migcheck.safefile import atomic_write

    directory.mkdir(parents=True, exist_ok=True)
    # A fresh O_EXCL|O_NOFOLLOW temporary file: a symlink planted in the directory is
    # never written through.
    atomic_write(path, json.dumps(build.doc, sort_keys=True, separators=(",", ":")) + "\n")
    return path


def load_build(path: str | Path, key: str | None = None) -> BuildData:
    """Load and validate one build file (parsed once per process while it is unchanged)."""
    origin = str(path)
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise InputError(f"{origin}: cannot read QEMU build file: {exc.strerror or exc}") from None
    cache_key = os.path.abspath(origin)
    ident = identity(st)
    hit = _parsed.get(cache_key)
    if hit is not None and hit[0] == ident:
        return hit[1]
    if st.st_size > MAX_BUILD_BYTES:
        raise BuildError(origin, f"file is {st.st_size} bytes, more than {MAX_BUILD_BYTES}")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{origin}: cannot read QEMU build file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text)
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
    if _ESCAPED_CONTROL.search(text):  # rare: only then walk the whole document
        doc = _scrub(doc, origin)
    build = BuildData(validate_build(doc, origin, key), origin)
    with _lock:
        _parsed[cache_key] = (ident, build)
    return build


# Terminal control characters (migcheck.textsafe) can only reach a parsed JSON string as
# \u escapes (raw ones are not JSON); nested vmstate text shows them as \\u escapes.
_ESCAPED_CONTROL = re.compile(r"\\u00(?:[01][0-9a-fA-F]|7[fF]|[89][0-9a-fA-F])")


def _scrub(value: Any, origin: str) -> Any:
    from migcheck.textsafe import scrub_tree

    try:
        return scrub_tree(value)
    except RecursionError:
        raise BuildError(origin, "JSON nested too deeply") from None


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
