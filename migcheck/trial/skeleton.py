"""The skeleton guest: the guest's ABI without the host's resources (issue 23, section 2).

A pure function from the guest's options to the argv of a throwaway QEMU that builds the
same virtual hardware: machine, CPU, ``-smp``, memory size and layout, firmware selection,
every frontend device with its properties, ``-global``/``-set``. What ties the guest to a
host goes, or gets a null backend:

- disks: ``null-co`` of the disk's size (``disk_sizes``, read on the source host; 1 GiB
  where unknown, the same on both sides, so the trial compares like with like);
- chardevs: ``-chardev null`` (a dropped ``-serial`` would remove a device the guest sees);
- tap/bridge netdevs: ``tap`` without scripts (the agent runs QEMU in a private network
  namespace); other host-side networks: ``user``;
- memory: ``memory-backend-ram`` with ``reserve=off`` (QEMU >= 6.1), so a guest bigger than
  the host starts (``-m`` alone charges its size to the kernel's commit limit);
- monitors, sockets, pidfiles, ``-daemonize``, ``-runas``, ``-mem-prealloc`` go;
  ``-display none``.

What cannot be faked (host PCI, vhost-user backends, confidential guests, TPM emulators)
is refused with the reason: :attr:`Skeleton.refused` non-empty means no trial.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from migcheck.cmdline import split_keyval
from migcheck.vm import VmSpec

DEFAULT_DISK_SIZE = 1 << 30
RAM_ID = "pc.ram"  # the x86 machines' default_ram_id (hw/i386/pc.c): as libvirt names it

# Options dropped entirely: host plumbing, never guest-visible.
DROP = frozenset(
    {
        "monitor", "qmp", "qmp-pretty", "mon", "pidfile", "daemonize", "runas", "run-with",
        "chroot", "mem-prealloc", "mem-path", "sandbox", "incoming", "S", "D", "d", "trace",
        "loadvm", "snapshot", "writeconfig", "add-fd", "vnc", "spice", "sdl", "curses",
        "nographic", "display", "k", "iscsi", "no-user-config", "realtime",
        "enable-fips", "tpmdev", "fsdev", "virtfs",
    }
)  # fmt: skip
# Device types that need something of the host the trial cannot fake.
_HOST_DEVICES = re.compile(
    r"^(vfio-.*|pci-assign|kvm-pci-assign|vhost-user-.*|vhost-vdpa.*|vhost-scsi.*|"
    r"vhost-vsock.*|usb-host|u2f-passthru|ivshmem-doorbell|ivshmem|virtio-9p-.*|"
    r"tpm-.*|sgx-epc|spapr-.*-vfio|xen-.*|ccid-card-emulated)$"
)
_CONFIDENTIAL = re.compile(r"^(sev-guest|sev-snp-guest|tdx-guest|pef-guest|s390-pv-guest)$")
_HOST_OBJECTS = re.compile(r"^(memory-backend-epc|iommufd|vfio-user.*|dbus-vmstate)$")
_DROP_OBJECTS = re.compile(
    r"^(secret|secret_keyring|tls-creds-.*|tls-cipher-suites|throttle-group|"
    r"pr-manager-helper|input-linux|input-barrier|filter-.*|colo-compare|authz-.*)$"
)
_MEMORY = re.compile(r"^memory-backend-(ram|file|memfd)$")
_DRIVE_KEEP = {
    "if", "index", "bus", "unit", "media", "id", "readonly", "serial", "werror", "rerror",
    "cache", "cache.writeback", "addr", "boot", "bootindex", "copy-on-read",
}  # fmt: skip
_NETDEV_KEEP = {"id", "vhost", "vhostforce", "queues", "vnet_hdr", "poll-us", "type"}
_NIC_KEEP = {"model", "mac", "id", "netdev"}


@dataclass
class Skeleton:
    argv: list[str] = field(default_factory=list)  # QEMU arguments, without the binary
    refused: list[str] = field(default_factory=list)  # why no trial can be run
    notes: list[str] = field(default_factory=list)  # what was replaced, for the report
    memory_bytes: int = 128 << 20
    uses_tap: bool = False

    def command_line(self, binary: str = "qemu-system-x86_64") -> str:
        return shlex.join([binary, *self.argv])


def _keyval(first: str | None, props: dict[str, Any]) -> str:
    def esc(text: Any) -> str:
        return str(text).replace(",", ",,")

    items = [esc(first)] if first else []
    items += [f"{k}={esc(v)}" for k, v in props.items()]
    return ",".join(items)


def _parse(value: str) -> tuple[bool, str | None, dict[str, Any]]:
    """(is_json, implied first value, props) of an option value."""
    if value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            return False, None, {}
        if isinstance(data, dict):
            return True, None, dict(data)
    first, props = split_keyval(value)
    return False, first, dict(props)


def _emit(is_json: bool, first: str | None, props: dict[str, Any]) -> str:
    return json.dumps(props, separators=(",", ":")) if is_json else _keyval(first, props)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[bB]?\s*$")
_UNIT = {"": 1 << 20, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_memory(text: str, default_unit: str = "m") -> int | None:
    """QEMU's -m size (a bare number is MiB) -> bytes; None when unreadable."""
    match = _SIZE.match(text)
    if not match:
        return None
    unit = match.group(2).lower() or default_unit
    return int(float(match.group(1)) * _UNIT[unit])


def _size_bytes(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        return None
    unit = match.group(2).lower()
    return int(float(match.group(1)) * (_UNIT[unit] if unit else 1))


def disk_paths(spec: VmSpec) -> list[str]:
    """Host files whose size the skeleton's null disks copy (asked of the source host)."""
    found: list[str] = []
    for opt in spec.options:
        if opt.value is None or opt.name not in ("drive", "blockdev", "hda", "hdb", "cdrom"):
            continue
        if opt.name in ("hda", "hdb", "cdrom"):
            found.append(opt.value)
            continue
        _, _, props = _parse(opt.value)
        name = props.get("file") if opt.name == "drive" else props.get("filename")
        if isinstance(name, str) and name and not name.startswith("/dev/fdset"):
            found.append(name)
    return found


def build(
    spec: VmSpec, disk_sizes: dict[str, int] | None = None, *, reserve_off: bool = True
) -> Skeleton:
    """The skeleton of ``spec`` (see the module docstring). Pure: no I/O.

    ``reserve_off=False`` for a host with ``vm.overcommit_memory=2``, which refuses it
    (util/mmap-alloc.c: "Skipping reservation of swap space is not supported")."""
    sizes = disk_sizes or {}
    sk = Skeleton()
    out = sk.argv
    blockdevs: dict[str, dict[str, Any]] = {}
    used_nodes: set[str] = set()
    for dev in spec.devices:
        drive = dev.props.get("drive")
        if isinstance(drive, str):
            used_nodes.add(drive)
    pflash: set[str] = set()
    for opt in spec.options:
        if opt.name in ("machine", "M") and opt.value:
            # Firmware flash is a node the machine, not a device, refers to.
            for key in ("pflash0", "pflash1"):
                node = _parse(opt.value)[2].get(key)
                if isinstance(node, str):
                    used_nodes.add(node)
                    pflash.add(node)
        if opt.name == "blockdev" and opt.value:
            _, _, props = _parse(opt.value)
            if isinstance(props.get("node-name"), str):
                blockdevs[props["node-name"]] = props

    def node_size(node: str) -> tuple[int, str]:
        """Size of the disk under a blockdev node: its format's file, down the chain."""
        props, seen = blockdevs.get(node), 0
        while props is not None and seen < 16:
            seen += 1
            name = props.get("filename")
            if isinstance(name, str):
                return (sizes[name], name) if name in sizes else (DEFAULT_DISK_SIZE, name)
            child = props.get("file")
            props = blockdevs.get(child) if isinstance(child, str) else None
        return DEFAULT_DISK_SIZE, node

    memory_written = False
    machine_has_backend = False
    for opt in spec.options:
        name, value = opt.name, opt.value
        if name in DROP:
            if name in ("tpmdev", "fsdev", "virtfs"):
                sk.refused.append(
                    f"-{name} {value}: its backend (swtpm, a shared host directory) cannot be "
                    "faked with a null backend"
                )
            continue
        if value is None:
            out.append(f"-{name}")
            continue
        if name in ("machine", "M"):
            is_json, first, props = _parse(value)
            for key in ("confidential-guest-support", "memory-encryption"):
                if props.get(key):
                    sk.refused.append(
                        f"-machine {key}={props[key]}: a confidential guest's memory cannot be "
                        "read by a throwaway migration"
                    )
            machine_has_backend = bool(props.get("memory-backend"))
            out += [f"-{name}", _emit(is_json, first, props)]
        elif name == "m":
            first, props = split_keyval(value)
            size_text = first or props.get("size") or "128"
            size = parse_memory(size_text)
            if size is None:
                sk.refused.append(f"-m {value}: size not understood")
                continue
            sk.memory_bytes = size
            props.pop("size", None)
            out += ["-m", _keyval(f"{size // (1 << 20)}M", props)]
            memory_written = True
        elif name == "object":
            is_json, first, props = _parse(value)
            qom = str(props.pop("qom-type", first or ""))
            if _CONFIDENTIAL.match(qom):
                sk.refused.append(
                    f"-object {qom}: a confidential guest cannot be migrated by a skeleton"
                )
            elif _HOST_OBJECTS.match(qom):
                sk.refused.append(f"-object {qom}: needs host hardware or a helper process")
            elif _DROP_OBJECTS.match(qom):
                sk.notes.append(f"-object {qom} dropped (host side only)")
            elif _MEMORY.match(qom):
                keep = {"id": props.get("id"), "size": props.get("size")}
                if props.get("share") is not None:
                    keep["share"] = props["share"]
                keep["reserve"] = False if is_json else "off"
                body = {"qom-type": "memory-backend-ram", **keep}
                if is_json:
                    out += ["-object", json.dumps(body, separators=(",", ":"))]
                else:
                    out += ["-object", _keyval("memory-backend-ram", keep)]
                if qom != "memory-backend-ram":
                    sk.notes.append(f"-object {qom} {props.get('id')}: memory-backend-ram")
            elif qom in ("rng-random", "rng-egd"):
                out += ["-object", _keyval("rng-builtin", {"id": props.get("id")})]
            else:
                out += ["-object", value]
        elif name == "device":
            is_json, first, props = _parse(value)
            driver = str(props.get("driver", first or ""))
            if _HOST_DEVICES.match(driver):
                sk.refused.append(
                    f"-device {driver}: a host device or host-side backend, which a skeleton "
                    "cannot fake"
                )
                continue
            out += ["-device", value]
        elif name == "chardev":
            is_json, first, props = _parse(value)
            out += ["-chardev", _keyval("null", {"id": props.get("id")})]
        elif name in ("serial", "parallel", "virtioconsole", "debugcon"):
            out += [f"-{name}", "none" if value == "none" else "null"]
        elif name == "audiodev":
            is_json, first, props = _parse(value)
            out += ["-audiodev", _keyval("none", {"id": props.get("id")})]
        elif name == "netdev" or name == "nic":
            is_json, first, props = _parse(value)
            kind = str(props.pop("type", first or ""))
            if kind in ("vhost-user", "vhost-vdpa", "af-xdp", "vde"):
                sk.refused.append(f"-{name} {kind}: needs a host-side backend process")
                continue
            keep_set = _NETDEV_KEEP | (_NIC_KEEP if name == "nic" else set())
            keep = {k: v for k, v in props.items() if k in keep_set}
            if kind in ("tap", "bridge"):
                sk.uses_tap = True
                keep.update({"script": "no", "downscript": "no"})
                kind = "tap"
            elif kind != "none":
                kind = "user"
                keep = {k: v for k, v in keep.items() if k in ("id", *_NIC_KEEP)}
            if is_json:
                out += [f"-{name}", json.dumps({"type": kind, **keep}, separators=(",", ":"))]
            else:
                out += [f"-{name}", _keyval(kind, keep)]
        elif name == "net":
            first, props = split_keyval(value)
            if first == "nic":
                out += ["-net", value]
            elif first in ("tap", "bridge"):
                sk.uses_tap = True
                keep = {k: v for k, v in props.items() if k in _NETDEV_KEEP | {"name"}}
                out += ["-net", _keyval("tap", {**keep, "script": "no", "downscript": "no"})]
            else:
                out += ["-net", _keyval("user", {})]
        elif name == "drive":
            first, props = split_keyval(value)
            if props.get("if") == "pflash":
                # Firmware: the image is the guest's code, read-only on the host; its
                # variables store must not be written: snapshot=on (an overlay in /tmp).
                out += ["-drive", _keyval(first, {**props, "snapshot": "on"})]
                continue
            keep = {k: v for k, v in props.items() if k in _DRIVE_KEEP}
            path = props.get("file")
            if path:
                size = sizes.get(path, DEFAULT_DISK_SIZE)
                if path not in sizes:
                    sk.notes.append(f"disk {path}: size unknown, 1 GiB on both sides")
                keep.update({"driver": "null-co", "size": str(size)})
                if keep.get("readonly") in ("on", "true", "yes"):
                    keep["read-only"] = keep.pop("readonly")
            out += ["-drive", _keyval(None, keep)]
        elif name == "blockdev":
            is_json, first, props = _parse(value)
            node = props.get("node-name")
            if node not in used_nodes:
                continue  # protocol and backing nodes: the device sees only the top node
            size, origin = node_size(str(node))
            if node in pflash and origin not in sizes:
                sk.refused.append(
                    f"firmware flash {origin}: its size is unknown (not readable on the "
                    "source), and a flash of another size changes the guest's memory map"
                )
                continue
            if origin == node or (origin not in sizes):
                sk.notes.append(f"disk {origin}: size unknown, 1 GiB on both sides")
            body: dict[str, Any] = {"driver": "null-co", "node-name": node, "size": size}
            if props.get("read-only") in (True, "on"):
                body["read-only"] = True
            out += ["-blockdev", json.dumps(body, separators=(",", ":"))]
        elif name in ("hda", "hdb", "hdc", "hdd", "cdrom"):
            size = sizes.get(value, DEFAULT_DISK_SIZE)
            media = ",media=cdrom" if name == "cdrom" else ""
            index = {"hda": 0, "hdb": 1, "hdc": 2, "hdd": 3, "cdrom": 2}[name]
            out += ["-drive", f"driver=null-co,size={size},if=ide,index={index}{media}"]
        elif name == "overcommit":
            first, props = split_keyval(value)
            props.pop("mem-lock", None)
            if props:
                out += ["-overcommit", _keyval(None, props)]
        elif name == "readconfig":
            sk.refused.append(
                f"-readconfig {value}: the trial rewrites command lines only; inline the file"
            )
        elif name in ("smbios",):
            first, props = split_keyval(value)
            if "file" in props:
                sk.notes.append(f"-smbios file={props['file']} kept: must exist on both hosts")
            out += [f"-{name}", value]
        else:
            out += [f"-{name}", value]
    if spec.positional:
        size = sizes.get(spec.positional[0], DEFAULT_DISK_SIZE)
        out += ["-drive", f"driver=null-co,size={size},if=ide,index=0"]
    if not machine_has_backend and not any(
        _MEMORY.match(str(_parse(o.value)[2].get("qom-type") or _parse(o.value)[1] or ""))
        for o in spec.options
        if o.name == "object" and o.value
    ):
        # The machine's RAM as an explicit backend: reserve=off needs one (hw/core/machine.c
        # create_default_memdev takes no reserve), and libvirt writes the same pair.
        out += [
            "-object",
            f"memory-backend-ram,id={RAM_ID},size={sk.memory_bytes},reserve=off",
        ]
        _append_machine_option(out, f"memory-backend={RAM_ID}")
        if not memory_written:
            out += ["-m", f"{sk.memory_bytes // (1 << 20)}M"]
    out += ["-display", "none"]
    if not reserve_off:
        sk.argv = [a.replace(",reserve=off", "").replace(',"reserve":false', "") for a in out]
    return sk


def _append_machine_option(argv: list[str], item: str) -> None:
    """Add ``item`` to the last -machine option, or add a -machine option."""
    for i in range(len(argv) - 2, -1, -1):
        if argv[i] in ("-machine", "-M"):
            value = argv[i + 1]
            if value.lstrip().startswith("{"):
                data = json.loads(value)
                key, _, val = item.partition("=")
                data[key] = val
                argv[i + 1] = json.dumps(data, separators=(",", ":"))
            else:
                argv[i + 1] = f"{value},{item}"
            return
    argv += ["-machine", item]
