"""Firmware and ROM image checks: every image the guest's firmware and option ROMs come from
must exist on the destination, and every one that becomes a RAM block must have the size
the source sends.

What the migration stream carries: each RAM block's id and length. On load,
``qemu_ram_resize()`` (softmmu/physmem.c in 7.2, system/physmem.c in 10.0) refuses a block
of another length unless the block is resizable: "Size mismatch: pc.bios: 0x10000 !=
0x20000", and the destination exits (measured: tests/groundtruth_cases.py ``fw-bios-*``).
The blocks firmware images make, and their sizes, read from QEMU's code and checked with
``info ramblock`` on QEMU 7.2 and 10.0:

* ``pc.bios``: x86_bios_rom_init() (hw/i386/x86.c, 7.2; hw/i386/x86-common.c, 10.0)
  allocates exactly the image's size with memory_region_init_ram() (fixed size). The image
  is ``-bios`` / ``-machine firmware=`` or BIOS_FILENAME "bios-256k.bin" (hw/i386/pc.c); it
  is not loaded when pflash unit 0 is configured (hw/i386/pc_sysfw.c
  pc_system_firmware_init()).
* ``system.flash0``/``system.flash1``: pflash_cfi01_realize() (hw/block/pflash_cfi01.c)
  makes a ROM device of the block device's size (fixed size).
* ``BDF/DEVICE.rom``: pci_add_option_rom() (hw/pci/pci.c) allocates the ROM BAR with
  memory_region_init_rom() at ``romsize``, which defaults to pow2ceil(image size): images
  of 249344 and 262144 bytes both make a 256 KiB block (the ROM BAR's power-of-two
  rounding), 75776 and 110080 both 128 KiB. With ``rombar=0`` it instead adds the image to
  fw_cfg (rom_add_option()/rom_add_vga()), which is not a RAM block and not migrated
  (``info ramblock`` lists none): only the file's presence matters then.

A file is looked up as QEMU does (qemu_find_file(), softmmu/datadir.c / system/datadir.c):
a name without a directory in the build's search path in order (``-L help``, recorded by
the probe), the first directory that holds it wins. An image outside the directories the
probe records (a per-guest NVRAM copy, a path of the operator's) has no recorded size: the
check says ``unknown``, never ``pass``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from migcheck.build import BuildData
from migcheck.checks.base import Context, Finding, Status, unknown, with_assumed
from migcheck.checks.registry import check
from migcheck.cmdline import split_keyval
from migcheck.devicegraph import MachineModel, machine_model
from migcheck.findings import assumed_sides
from migcheck.vm import Device, VmSpec

READS = ("qemu.build",)

# hw/i386/pc.c BIOS_FILENAME (7.2 and 10.0): pc.bios is 0x40000 on both (info ramblock).
DEFAULT_BIOS = "bios-256k.bin"

# The option ROM a device type loads when the command line names none: the class default
# (PCIDeviceClass.romfile, set in each type's class_init: hw/net/e1000.c, e1000e.c,
# rtl8139.c, virtio-net-pci.c, ne2000-pci.c, pcnet-pci.c, eepro100.c, vmxnet3.c;
# hw/display/vga-pci.c, cirrus_vga.c, virtio-vga.c, vmware_vga.c, ati.c, bochs-display.c,
# qxl.c). device-list-properties does not show it (romfile has no property default);
# ``info qtree`` on a realised instance does: every entry below read the same on QEMU 7.2
# and 10.0 (qxl-vga on 7.2; 10.0 here lacks it). Types not listed report an empty romfile
# (checked: virtio-blk-pci, virtio-gpu-pci, secondary-vga, igb).
_EEPRO100 = [
    *("i82550", "i82551", "i82557a", "i82557b", "i82557c", "i82558a", "i82558b"),
    *("i82559a", "i82559b", "i82559c", "i82559er", "i82562", "i82801"),
]
DEFAULT_ROMS: dict[str, str] = {
    "e1000": "efi-e1000.rom",
    "e1000-82544gc": "efi-e1000.rom",
    "e1000-82545em": "efi-e1000.rom",
    "e1000e": "efi-e1000e.rom",
    "rtl8139": "efi-rtl8139.rom",
    "virtio-net-pci": "efi-virtio.rom",
    "virtio-net-pci-transitional": "efi-virtio.rom",
    "virtio-net-pci-non-transitional": "efi-virtio.rom",
    "ne2k_pci": "efi-ne2k_pci.rom",
    "pcnet": "efi-pcnet.rom",
    "vmxnet3": "efi-vmxnet3.rom",
    **{name: "pxe-eepro100.rom" for name in _EEPRO100},
    "VGA": "vgabios-stdvga.bin",
    "cirrus-vga": "vgabios-cirrus.bin",
    "virtio-vga": "vgabios-virtio.bin",
    "virtio-vga-gl": "vgabios-virtio.bin",
    "vmware-svga": "vgabios-vmware.bin",
    "ati-vga": "vgabios-ati.bin",
    "bochs-display": "vgabios-bochs-display.bin",
    "qxl-vga": "vgabios-qxl.bin",
}


def pow2ceil(n: int) -> int:
    """include/qemu/host-utils.h pow2ceil(): the ROM BAR size of an n-byte image."""
    size = 1
    while size < n:
        size <<= 1
    return size


@dataclass(frozen=True)
class Image:
    """One side's answer for one image: ``size`` when found, else ``missing`` (the build
    does not have it: QEMU fails to start) or ``why`` (the size is not recorded)."""

    path: str | None = None
    size: int | None = None
    missing: str | None = None
    why: str | None = None


def _under(path: str, dirs: Iterable[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _recorded_dirs(build: BuildData) -> list[str]:
    from migcheck.probe.probe import FIRMWARE_DIRS  # the directories every probe walks

    return [*FIRMWARE_DIRS, *(build.firmware_path or [])]


def resolve(build: BuildData, name: str) -> Image:
    """Where ``name`` is found in ``build`` and its size (qemu_find_file()'s order)."""
    files = build.firmware
    if files is None:
        return Image(
            why=f"build {build.key} recorded no firmware files ({build.error('firmware')})"
        )
    if name.startswith("/"):
        path = os.path.normpath(name)
        if path in files:
            return Image(path, files[path])
        if _under(path, _recorded_dirs(build)):
            return Image(path, missing=f"{path} does not exist")
        return Image(path, why=f"{path} is outside the firmware directories the probe records")
    search = build.firmware_path
    if search is not None:
        for directory in search:
            path = os.path.normpath(os.path.join(directory, name))
            if path in files:
                return Image(path, files[path])
        return Image(missing=f"{name} is in none of {', '.join(search)}")
    # An older probe did not record the search path: usable only when every recorded copy
    # of the name has one size (whichever directory QEMU searches first, it loads that size).
    found = {
        os.path.join(d, name): files[os.path.join(d, name)]
        for d in _recorded_dirs(build)
        if os.path.join(d, name) in files
    }
    if len(set(found.values())) == 1:
        path, size = next(iter(found.items()))
        return Image(path, size)
    return Image(
        why=f"build {build.key} did not record its firmware search path (-L help) and "
        + (
            f"{name} is not in the recorded directories"
            if not found
            else f"{name} has copies of different sizes ({', '.join(sorted(found))})"
        )
    )


def _pair(ctx: Context) -> tuple[BuildData | None, BuildData | None, list[str]]:
    why = []
    for role, facts in (("source", ctx.src), ("destination", ctx.dst)):
        if facts.build is None:
            why.append(f"{role} {facts.name}: {facts.build_missing}")
    return ctx.src.build, ctx.dst.build, why


def _judge(
    cid: str,
    what: str,
    name: str,
    src: Image,
    dst: Image,
    ctx: Context,
    *,
    block: str,
    size_of: Any = None,
    sizes_matter: bool = True,
) -> Finding:
    """One image: present on both sides, and (where it is a RAM block) the same block size."""
    if dst.missing:
        return Finding(
            cid,
            Status.FAIL,
            f"{what}: {name}: the destination {ctx.dst.name} lacks it ({dst.missing}): QEMU "
            "fails to start there",
            source=src.path,
            destination=None,
            fix=f"install the package that ships {name} on the destination, or migrate to a "
            "host that has it",
        )
    if src.missing:
        return Finding(
            cid,
            Status.FAIL,
            f"{what}: {name}: the source {ctx.src.name} lacks it ({src.missing}): the guest "
            "cannot be running there with this command line",
            source=None,
            destination=dst.path,
        )
    if src.size is None or dst.size is None:
        return unknown(cid, f"{what}: {name}: " + "; ".join(r for r in (src.why, dst.why) if r))
    if not sizes_matter:
        return Finding(
            cid,
            Status.PASS,
            f"{what}: {name} exists on both hosts (fw_cfg, not migrated)",
            source=src.path,
            destination=dst.path,
        )
    fn = size_of or (lambda n: n)
    sblock, dblock = fn(src.size), fn(dst.size)
    shown = f"{src.size} bytes -> {block} 0x{sblock:x}, destination {dst.size} -> 0x{dblock:x}"
    if sblock != dblock:
        return Finding(
            cid,
            Status.FAIL,
            f"{what}: {name} is {shown}: the destination refuses a RAM block of another "
            f"size ({block}: 0x{sblock:x} != 0x{dblock:x}, qemu_ram_resize's \"Size "
            'mismatch") and the migration fails',
            source=f"{src.path} ({src.size} bytes)",
            destination=f"{dst.path} ({dst.size} bytes)",
            fix="install the same firmware package version on both hosts, or name an image "
            "of the same size on both (an absolute path to a copy)",
        )
    return Finding(
        cid,
        Status.PASS,
        f"{what}: {name}: source {shown}",
        source=f"{src.path} ({src.size} bytes)",
        destination=f"{dst.path} ({dst.size} bytes)",
    )


# --- what the command line loads -----------------------------------------------------------


def _blockdevs(vm: VmSpec) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def add(node: dict[str, Any]) -> None:
        name = node.get("node-name")
        if isinstance(name, str):
            out[name] = node
        child = node.get("file")
        if isinstance(child, dict):
            add(child)

    for opt in vm.options:
        if opt.name != "blockdev" or not opt.value:
            continue
        text = opt.value.strip()
        if text.startswith("{"):
            try:
                node = json.loads(text)
            except ValueError:
                continue
        else:
            _, props = split_keyval(text)
            node = dict(props)
            # keyval dotted keys (file.driver=file,file.filename=X) make a nested child
            child = {k[5:]: v for k, v in props.items() if k.startswith("file.")}
            if child:
                node["file"] = child
        if isinstance(node, dict):
            add(node)
    return out


def _node_file(nodes: dict[str, dict[str, Any]], node: Any, depth: int = 0) -> str | None:
    """The host file a raw/file node chain reads (None: not a plain image file)."""
    if isinstance(node, str):
        node = nodes.get(node)
    if not isinstance(node, dict) or depth > 4:
        return None
    driver = node.get("driver")
    if driver == "file":
        name = node.get("filename")
        return name if isinstance(name, str) else None
    if driver == "raw" and not ({"offset", "size"} & set(node)):
        return _node_file(nodes, node.get("file"), depth + 1)
    return None


def pflash_units(vm: VmSpec) -> tuple[dict[int, str], list[str]]:
    """Flash unit -> image path (``-drive if=pflash``, ``-machine pflash0=/pflash1=``), and
    why a unit's image cannot be told."""
    units: dict[int, str] = {}
    gaps: list[str] = []
    nxt = 0
    for opt in vm.options:
        if opt.name != "drive" or not opt.value:
            continue
        _, props = split_keyval(opt.value)
        if props.get("if") != "pflash":
            continue
        # drive_new(): if=pflash units count up from 0 unless index=/unit= says otherwise.
        raw = props.get("index", props.get("unit"))
        unit = int(raw) if raw is not None and raw.isdigit() else nxt
        nxt = unit + 1
        fmt = props.get("format", "raw")
        if "file" not in props or fmt != "raw":
            gaps.append(f"-drive if=pflash unit {unit}: not a raw image file (format={fmt})")
            continue
        units[unit] = props["file"]
    nodes = _blockdevs(vm)
    for unit in (0, 1):
        node = vm.machine.options.get(f"pflash{unit}")
        if node is None:
            continue
        path = _node_file(nodes, node)
        if path is None:
            gaps.append(f"pflash{unit}={node}: not a raw image file migcheck can follow")
        else:
            units[unit] = path
    return units, gaps


def _bios_name(vm: VmSpec) -> str:
    name = DEFAULT_BIOS
    for opt in vm.options:
        if opt.name == "bios" and opt.value:
            name = opt.value
    return vm.machine.options.get("firmware", name)


@check(
    "firmware.bios",
    "firmware.pflash",
    reads=READS,
    summary=(
        "the BIOS (-bios, bios-256k.bin) or pflash firmware image the guest boots from is "
        "missing on the destination, or has another size (its RAM block fails to load)"
    ),
    gates_start=True,
)
def check_boot_firmware(ctx: Context) -> list[Finding]:
    model = machine_model(ctx.vm.machine.type)
    if isinstance(model, str):
        return [unknown("firmware.bios", f"the firmware of this machine is not modelled: {model}")]
    assert isinstance(model, MachineModel)
    if model.family == "none":
        return [Finding("firmware.bios", Status.PASS, "machine none loads no firmware")]
    src, dst, why = _pair(ctx)
    units, gaps = pflash_units(ctx.vm)
    cid_bios, cid_flash = "firmware.bios", "firmware.pflash"
    if src is None or dst is None:
        cid = cid_flash if units else cid_bios
        return [unknown(cid, *why)]
    findings: list[Finding] = [unknown(cid_flash, g) for g in gaps]
    for unit in sorted(units):
        path = units[unit]
        if not path.startswith("/"):
            findings.append(unknown(cid_flash, f"pflash{unit}: {path} is a relative path"))
            continue
        findings.append(
            _judge(
                cid_flash,
                f"pflash unit {unit}",
                path,
                resolve(src, path),
                resolve(dst, path),
                ctx,
                block=f"system.flash{unit}",
            )
        )
    if 0 not in units and not any("unit 0" in g or "pflash0" in g for g in gaps):
        name = _bios_name(ctx.vm)
        found = _judge(
            cid_bios, "BIOS", name, resolve(src, name), resolve(dst, name), ctx, block="pc.bios"
        )
        default = name == DEFAULT_BIOS and not any(o.name == "bios" for o in ctx.vm.options)
        why = f"{name}: QEMU's default BIOS, no -bios" if default else None
        findings += with_assumed([found], *assumed_sides(why, "guest"))
    return findings


def _ancestors(build: BuildData, driver: str) -> tuple[str, ...]:
    out = []
    info = build.device_types.get(driver)
    while info and info.get("parent") and len(out) < 32:
        out.append(info["parent"])
        info = build.device_types.get(info["parent"])
    return tuple(out)


def _setting(vm: VmSpec, dev: Device, build: BuildData, prop: str) -> Any:
    if prop in dev.props:
        return dev.props[prop]
    return vm.global_value(dev, prop, _ancestors(build, dev.driver))


def _is_zero(value: Any) -> bool:
    try:
        return int(str(value), 0) == 0
    except ValueError:
        return str(value).strip().lower() in ("off", "false", "no")


@check(
    "firmware.rom",
    reads=READS,
    summary=(
        "a device's option ROM (romfile=, or its default efi-*.rom / vgabios-*.bin) is "
        "missing on the destination, or its ROM BAR gets another power-of-two size"
    ),
    gates_start=True,
)
def check_option_roms(ctx: Context) -> list[Finding]:
    cid = "firmware.rom"
    src, dst, why = _pair(ctx)
    candidates = [d for d in ctx.vm.devices if "romfile" in d.props or d.driver in DEFAULT_ROMS]
    if not candidates:
        return [Finding(cid, Status.PASS, "no device loads an option ROM")]
    if src is None or dst is None:
        return [unknown(cid, *why)]
    findings: list[Finding] = []
    for dev in candidates:
        label = f"{dev.driver} (id {dev.id})" if dev.id else dev.driver
        name = _setting(ctx.vm, dev, dst, "romfile")
        notes: tuple[tuple[str, str], ...] = ()
        if name is None:
            name = DEFAULT_ROMS.get(dev.driver)
            why = f"{name}: {dev.driver}'s default option ROM, no romfile="
            notes = assumed_sides(why, "guest")
        if not name:
            continue  # romfile="" loads nothing (pci_add_option_rom returns early)
        name = str(name)
        if dev.assumed:
            notes += assumed_sides(f"the device {dev.driver}: {dev.assumed}", "guest")
        s_img, d_img = resolve(src, name), resolve(dst, name)
        rombar = _setting(ctx.vm, dev, dst, "rombar")
        if rombar is not None and _is_zero(rombar):
            found = _judge(
                cid,
                f"{label} (rombar=0)",
                name,
                s_img,
                d_img,
                ctx,
                block="fw_cfg",
                sizes_matter=False,
            )
            findings += with_assumed([found], *notes)
            continue
        romsize = _setting(ctx.vm, dev, dst, "romsize")
        size_of = pow2ceil
        if romsize is not None:
            try:
                fixed = int(str(romsize), 0)
            except ValueError:
                findings.append(unknown(cid, f"{label}: romsize={romsize} is not a number"))
                continue
            if fixed != 0xFFFFFFFF:  # the "unset" default: pow2ceil of the image

                def size_of(_n: int, fixed: int = fixed) -> int:
                    return fixed

        found = _judge(
            cid,
            f"{label} option ROM",
            name,
            s_img,
            d_img,
            ctx,
            block=f"{dev.driver} ROM BAR",
            size_of=size_of,
        )
        findings += with_assumed([found], *notes)
    if not findings:
        return [Finding(cid, Status.PASS, 'no device loads an option ROM (romfile="")')]
    return findings
