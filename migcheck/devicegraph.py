"""Every frontend device a QEMU command line gives the guest, however it was created.

:func:`migcheck.cmdline.parse_cmdline` records ``-device`` (and ``-readconfig`` devices) as
it reads them; :func:`complete_devices` then adds what the rest of the command line and the
machine create: ``-nic``, ``-net nic`` (on hub 0, QEMU's legacy "vlan"), ``-serial``,
``-parallel``, ``-vga``, ``-drive``/``-hda``/``-cdrom``/``-fda`` and positional images,
``-usb``/``-usbdevice``, ``-virtfs``, ``-debugcon``, and the machine's default devices when
``-nodefaults`` is absent. The rules follow QEMU's ``softmmu/vl.c`` (7.2; unchanged in
10.0 for what is modelled here, checked against both builds by tests/test_device_graph.py):

* ``qemu_disable_default_devices()``: ``-nodefaults`` clears every default; a ``-device``
  or ``-global`` naming a driver in ``default_list[]`` clears that class's default (as
  written, aliases not resolved); the machine class's ``no_serial``/``no_parallel``/
  ``no_floppy``/``no_cdrom`` flags clear theirs.
* ``qemu_create_default_devices()``: the default serial and parallel chardevs (``vc`` or,
  with ``-nographic``, ``mon:stdio``/``null``: the device exists either way), ``-net nic``
  plus ``-net user`` unless any ``-net``/``-nic``/``-netdev`` was given, the machine's
  default VGA unless ``-vga`` or a VGA ``-device`` was given.
* ``configure_blockdev()`` -> ``default_drive()``: the default CD-ROM is drive index 2 of
  the machine's ``block_default_type`` unless that index is taken; the default floppy is
  floppy drive 0.

Only x86_64 PC machines (``pc``/``pc-i440fx-*``, ``q35``/``pc-q35-*``) and ``none`` are
modelled. Anything else that creates devices is recorded in ``VmSpec.device_gaps`` so the
checks say ``unknown`` rather than judge a partial list. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from migcheck.vm import Device, Netdev, Option, Span, VmSpec, as_bool

# softmmu/qdev-monitor.c qdev_alias_table[] (7.2 and 10.0), the entries for x86_64:
# QEMU_ARCH_VIRTIO_PCI covers i386/x86_64, so each virtio alias names its -pci type; the
# unconditional entries (arch 0) apply everywhere. qdev_get_device_class() tries the real
# type name first and the alias only when no type has that name; no x86_64 type is named
# like an alias, so a plain lookup is exact. Cross-checked with the "alias" column of
# `qemu-system-x86_64 -device help` on Debian 12 (7.2) and 13 (10.0): 10.0 adds
# virtio-sound (hw/audio/virtio-snd-pci.c, QEMU 8.2); virtio-gpu-gl is listed only where
# the hw-display-virtio-gpu-gl module is installed.
X86_64_ALIASES: dict[str, str] = {
    "ac97": "AC97",
    "e1000-82540em": "e1000",
    "es1370": "ES1370",
    "ahci": "ich9-ahci",
    "lsi": "lsi53c895a",
    "virtio-9p": "virtio-9p-pci",
    "virtio-balloon": "virtio-balloon-pci",
    "virtio-blk": "virtio-blk-pci",
    "virtio-gpu": "virtio-gpu-pci",
    "virtio-gpu-gl": "virtio-gpu-gl-pci",
    "virtio-input-host": "virtio-input-host-pci",
    "virtio-iommu": "virtio-iommu-pci",
    "virtio-keyboard": "virtio-keyboard-pci",
    "virtio-mouse": "virtio-mouse-pci",
    "virtio-net": "virtio-net-pci",
    "virtio-rng": "virtio-rng-pci",
    "virtio-scsi": "virtio-scsi-pci",
    "virtio-serial": "virtio-serial-pci",
    "virtio-sound": "virtio-sound-pci",
    "virtio-tablet": "virtio-tablet-pci",
}

# softmmu/vl.c default_list[]: a -device or -global naming one of these drivers clears
# that default (default_driver_check(), default_driver_check_json()).
DEFAULT_LIST: dict[str, str] = {
    "isa-serial": "serial",
    "isa-parallel": "parallel",
    "isa-fdc": "floppy",
    "floppy": "floppy",
    "ide-cd": "cdrom",
    "ide-hd": "cdrom",
    "scsi-cd": "cdrom",
    "scsi-hd": "cdrom",
    "VGA": "vga",
    "isa-vga": "vga",
    "cirrus-vga": "vga",
    "isa-cirrus-vga": "vga",
    "vmware-svga": "vga",
    "qxl-vga": "vga",
    "virtio-vga": "vga",
    "ati-vga": "vga",
    "vhost-user-vga": "vga",
    "virtio-vga-gl": "vga",
}

# softmmu/vl.c vga_interfaces[]: -vga NAME -> the device a PCI PC creates
# (hw/i386/pc.c pc_vga_init() -> pci_vga_init(), hw/pci/pci.c). "none" creates nothing.
VGA_MODELS: dict[str, str | None] = {
    "std": "VGA",
    "cirrus": "cirrus-vga",
    "vmware": "vmware-svga",
    "qxl": "qxl-vga",
    "virtio": "virtio-vga",
    "none": None,
}

# hw/usb/dev-hid.c, dev-wacom.c, dev-serial.c usb_legacy_register(): -usbdevice NAME.
USBDEVICE_TYPES: dict[str, str] = {
    "tablet": "usb-tablet",
    "mouse": "usb-mouse",
    "keyboard": "usb-kbd",
    "wacom-tablet": "usb-wacom-tablet",
    "braille": "usb-braille",
}

MAX_ISA_SERIAL_PORTS = 4  # include/hw/char/serial.h; hw/i386/pc.c pc_superio_init()
MAX_PARALLEL_PORTS = 3  # include/hw/char/parallel.h

# Device types this module can add (besides NIC models and -device drivers): the test
# against real QEMU compares exactly these types with what QEMU builds.
MODELLED_TYPES = frozenset(
    {
        "isa-serial",
        "isa-parallel",
        "isa-fdc",
        "floppy",
        "ide-cd",
        "ide-hd",
        "virtio-blk-pci",
        "isa-debugcon",
        "virtio-9p-pci",
        "piix3-usb-uhci",
        "ich9-usb-ehci1",
        "ich9-usb-uhci1",
        "ich9-usb-uhci2",
        "ich9-usb-uhci3",
        *USBDEVICE_TYPES.values(),
        *(t for t in VGA_MODELS.values() if t),
    }
)

_VERSION_RE = re.compile(r"-(\d+)\.(\d+)(?:\.\d+)?$")


def canonical_driver(name: str) -> str:
    """A -device driver name with QEMU's x86_64 aliases resolved (``virtio-net`` ->
    ``virtio-net-pci``); other names unchanged."""
    return X86_64_ALIASES.get(name, name)


def binary_target(binary: str | None) -> str:
    """The QEMU target a binary emulates: ``qemu-system-aarch64`` -> ``aarch64``. Names
    that do not say (``qemu-kvm``, ``kvm``, none) are taken as x86_64."""
    m = re.fullmatch(r"qemu-system-([A-Za-z0-9_]+)(?:\.exe)?", (binary or "").rsplit("/", 1)[-1])
    return m.group(1) if m else "x86_64"


@dataclass(frozen=True)
class MachineModel:
    """What a machine type creates by default (hw/i386/pc_piix.c, pc_q35.c)."""

    family: str  # "pc", "q35" or "none"
    name: str  # as asked ("(default machine)" when none was)
    version: tuple[int, int] | None
    default_nic: str | None
    default_vga: str | None  # VGA type, None: no VGA device
    floppy_default: bool  # default_floppy survives (not no_floppy)
    fdc_always: bool  # the board creates isa-fdc with or without drives
    serial_parallel: bool  # no_serial/no_parallel unset
    cdrom_default: bool  # no_cdrom unset, IDE is the default block interface
    ide_units_per_bus: int  # drive index -> bus/unit (units_per_default_bus)


def machine_model(machine: str | None) -> MachineModel | str:
    """The modelled defaults of ``machine`` (None: QEMU's default, ``pc`` on x86_64), or a
    string saying why that machine is not modelled."""
    name = machine or "pc"
    asked = machine or "(default machine)"
    m = _VERSION_RE.search(name)
    version = (int(m.group(1)), int(m.group(2))) if m else None
    if name == "none":
        # hw/core/null-machine.c: no_serial, no_parallel, no_floppy, no_cdrom; no board
        # code, so -nic/-net nic/-vga make no device either.
        return MachineModel("none", asked, None, None, None, False, False, False, False, 1)
    if name in ("q35",) or name.startswith("pc-q35-"):
        # A versionless distribution type (pc-q35-rhel9.6.0, pc-q35-noble) keeps version
        # None: the family's defaults hold, and the version-dependent ones are flagged
        # where a guest gets them (_version_dependent()).
        # pc_q35.c pc_q35_machine_options(): default_nic_model "e1000e", no_floppy,
        # default_display "std", units_per_default_bus 1; pc_q35_2_11_machine_options()
        # goes back to "e1000" for 2.11 and older.
        nic = "e1000" if version is not None and version < (2, 12) else "e1000e"
        return MachineModel("q35", asked, version, nic, "VGA", False, False, True, True, 1)
    if name == "pc" or name.startswith("pc-i440fx-") or re.fullmatch(r"pc-\d+\.\d+", name):
        # pc_piix.c pc_i440fx_machine_options(): default_nic_model "e1000",
        # default_display "std"; pc_i440fx_2_1_machine_options() sets default_display
        # NULL, so softmmu/vl.c get_default_vga_model() picks cirrus (built in Debian).
        # pc_init1() -> pc_basic_device_init(..., create_fdctrl=true): isa-fdc always;
        # pc.c pc_machine_class_init(): block_default_type IF_IDE; 2 units per IDE bus.
        vga = "cirrus-vga" if version is not None and version < (2, 2) else "VGA"
        return MachineModel("pc", asked, version, "e1000", vga, True, True, True, True, 2)
    return f"the default devices of machine type {asked} are not modelled"


@dataclass
class _Drive:
    interface: str  # "ide", "floppy", "virtio", "none", "scsi", ...
    index: int | None
    media: str  # "disk" or "cdrom"
    origin: str
    span: Span | None
    assumed: str | None = None  # why the interface is the machine's default


@dataclass
class _Graph:
    vm: VmSpec
    model: MachineModel | None
    disabled: set[str] = field(default_factory=set)  # defaults cleared by -device/-global
    devices: list[Device] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    default_net: bool = True
    default_serial: bool = True
    default_parallel: bool = True
    default_vga: bool = True
    vga: tuple[str, Span | None] | None = None
    serials: list[tuple[str, Span | None]] = field(default_factory=list)
    parallels: list[tuple[str, Span | None]] = field(default_factory=list)
    drives: list[_Drive] = field(default_factory=list)
    nics: list[tuple[str, Device]] = field(default_factory=list)  # (kind, device sans model)
    usb: bool = False
    usb_span: Span | None = None
    hub_ports: int = 0
    nic_ids: int = 0

    def add(
        self,
        driver: str,
        origin: str,
        span: Span | None,
        implicit: bool,
        assumed: str | None = None,
    ) -> Device:
        if implicit and assumed is None:
            assumed = self.machine_default(f"the {origin}")
        dev = Device(driver, None, {}, span, origin, implicit, assumed)
        self.devices.append(dev)
        return dev

    def machine_default(self, what: str, nodefaults: bool = True) -> str:
        """Why a device the machine creates is assumed: QEMU's default for the type."""
        assert self.model is not None
        unless = ", no -nodefaults" if nodefaults else ""
        if self.model.name == "(default machine)":
            return f"{what} of QEMU's default machine (pc){unless}"
        return f"{what} of machine type {self.model.name}{unless}"


def _keyval(text: str) -> tuple[str | None, dict[str, str]]:
    from migcheck.keyval import split_keyval

    return split_keyval(text)


def _hub_port(g: _Graph) -> str:
    # net/hub.c net_hub_port_new(): ports of hub 0 are named "hub0port<N>" in order.
    name = f"hub0port{g.hub_ports}"
    g.hub_ports += 1
    g.vm.netdevs.append(Netdev("hubport", name, {"hubid": "0"}, None))
    return name


def _version_dependent(g: _Graph, what: str) -> None:
    """A default that changed between machine versions, on a type whose upstream version
    migcheck cannot read (``pc-q35-rhel9.6.0``): the device is a guess, so say so."""
    assert g.model is not None
    if g.model.version is None and g.model.name not in ("pc", "q35", "(default machine)"):
        g.gaps.append(
            f"{what} of machine type {g.model.name} depends on its upstream version, "
            "which migcheck cannot read from the name"
        )


def _nic_model(model: str | None, g: _Graph) -> str | None:
    # hw/pci/pci.c pci_nic_init_nofail(): "virtio" means virtio-net-pci; any other model
    # must be a PCI NIC type name as written (no -device aliases).
    if model == "virtio":
        return "virtio-net-pci"
    if model is not None:
        return model
    if g.model is None:
        return None
    if g.model.family == "q35":
        _version_dependent(g, "the default NIC model")  # e1000 up to pc-q35-2.11
    return g.model.default_nic


def _nic_assumed(g: _Graph, origin: str) -> str:
    if origin == "default NIC":
        return g.machine_default("the default NIC")
    return f"{origin} without model=: " + g.machine_default("the NIC model", nodefaults=False)


def _handle_nic(g: _Graph, opt: Option) -> None:
    """``-nic TYPE[,model=M][,mac=...][,backend options]`` (net/net.c net_param_nic())."""
    g.default_net = False
    kind, props = _keyval(opt.value or "")
    kind = props.pop("type", None) or kind
    if kind == "none":
        return
    model = props.pop("model", None)
    mac = props.pop("mac", None)
    # net_param_nic(): the backend gets the -nic's id, or a generated one (util/id.c
    # id_generate(ID_NET) -> "#net<N>", never a user id); the NIC's netdev is that backend.
    ident = props.pop("id", None) or f"#net{g.nic_ids}"
    g.nic_ids += 1
    g.vm.netdevs.append(Netdev(kind or "user", ident, props, opt.span))
    nic_props: dict[str, Any] = {"netdev": ident}
    if mac is not None:
        nic_props["mac"] = mac
    dev = Device(model or "", None, nic_props, opt.span, "-nic", False)
    g.nics.append(("-nic", dev))


def _handle_net(g: _Graph, opt: Option, from_config: bool = False) -> None:
    """``-net nic|TYPE,...``: every client joins hub 0 unless a nic names netdev=
    (net/net.c net_client_init1(): "Do not add to a hub if it's a nic with a netdev=")."""
    if not from_config:  # vl.c clears default_net for -net only, not for -readconfig
        g.default_net = False
    kind, props = _keyval(opt.value or "")
    kind = props.pop("type", None) or kind
    if kind in (None, "none"):
        return
    if kind == "nic":
        model = props.pop("model", None)
        nic_props: dict[str, Any] = {}
        netdev = props.pop("netdev", None)
        nic_props["netdev"] = netdev if netdev is not None else _hub_port(g)
        for key in ("mac", "macaddr"):
            if key in props:
                nic_props["mac"] = props.pop(key)
        # pci_nic_init_nofail() creates the NIC without a qdev id.
        dev = Device(model or "", None, nic_props, opt.span, "-net nic", False)
        g.nics.append(("-net nic", dev))
        return
    # A legacy backend: its peer is a hub port, not a NIC, so a NIC on the hub never sees
    # the tap's vnet header (virtio-net peer_has_vnet_hdr() is false through a hub).
    ident = props.pop("id", None) or props.pop("name", None) or f"#net{g.nic_ids}"
    g.nic_ids += 1
    props["peer"] = _hub_port(g)
    g.vm.netdevs.append(Netdev(kind, ident, props, opt.span))


def _handle_drive(g: _Graph, opt: Option, *, origin: str | None = None) -> None:
    _first, props = _keyval(opt.value or "")
    interface = props.get("if", "ide")  # block_default_type IF_IDE on pc and q35
    media = props.get("media", "disk")
    index: int | None = None
    try:
        if "index" in props:
            index = int(props["index"], 0)
        elif "bus" in props or "unit" in props:
            units = g.model.ide_units_per_bus if (g.model and interface == "ide") else 1
            index = int(props.get("bus", "0"), 0) * units + int(props.get("unit", "0"), 0)
    except ValueError:
        g.gaps.append(f"-drive {opt.value!r}: unreadable index/bus/unit")
        return
    assumed = None if "if" in props else "-drive without if=: the machine's default interface, IDE"
    g.drives.append(_Drive(interface, index, media, origin or "-drive", opt.span, assumed))


def _drive_devices(g: _Graph) -> None:
    """Drives -> frontends (blockdev/drive.c drive_new() index allocation; hw/i386
    pc_piix.c/pc_q35.c create ide-hd/ide-cd, fdc floppy, virtio-blk-pci for if=virtio)."""
    assert g.model is not None
    taken: dict[str, set[int]] = {}
    for d in g.drives:
        if d.index is not None:
            taken.setdefault(d.interface, set()).add(d.index)
    for d in g.drives:
        if d.index is None:  # drive_new(): the first free index of that interface
            used = taken.setdefault(d.interface, set())
            d.index = next(i for i in range(len(used) + 1) if i not in used)
            used.add(d.index)
    ide, floppy = taken.get("ide", set()), taken.get("floppy", set())
    if g.model.cdrom_default and "cdrom" not in g.disabled and 2 not in ide:
        g.drives.append(_Drive("ide", 2, "cdrom", "default CD-ROM", None))
    if g.model.floppy_default and "floppy" not in g.disabled and 0 not in floppy:
        g.drives.append(_Drive("floppy", 0, "disk", "default floppy", None))
    floppies = [d for d in g.drives if d.interface == "floppy"]
    if g.model.fdc_always or floppies:
        # pc.c pc_superio_init(): isa-fdc when create_fdctrl (pc) or any floppy drive.
        why = g.machine_default("the floppy controller", nodefaults=False)
        g.add("isa-fdc", "machine floppy controller", None, True, why)
    for d in g.drives:
        implicit = d.origin.startswith("default")
        if d.interface == "ide":
            driver = "ide-cd" if d.media == "cdrom" else "ide-hd"
            g.add(driver, d.origin, d.span, implicit, d.assumed)
        elif d.interface == "floppy":
            g.add("floppy", d.origin, d.span, implicit)
        elif d.interface == "virtio":
            g.add("virtio-blk-pci", d.origin, d.span, implicit)
        elif d.interface in ("none", "pflash"):
            continue  # if=none: a backend for -device; pflash: firmware, not a device
        else:
            g.gaps.append(f"{d.origin} if={d.interface}: the device it creates is not modelled")


_DRIVE_SHORTHANDS = {"hda": 0, "hdb": 1, "hdc": 2, "hdd": 3}


def _collect(g: _Graph, opt: Option, origin: str | None = None) -> None:
    name, value = opt.name, opt.value or ""
    if name == "nic":
        _handle_nic(g, opt)
    elif name == "net":
        _handle_net(g, opt, from_config=origin is not None)
    elif name == "netdev":
        g.default_net = False
    elif name == "global":
        driver = _global_driver(opt.value or "")
        if driver in DEFAULT_LIST:
            g.disabled.add(DEFAULT_LIST[driver])
    elif name == "vga":
        g.default_vga = False
        g.vga = (value, opt.span)
    elif name == "serial":
        g.default_serial = False
        g.serials.append((value, opt.span))
    elif name == "parallel":
        g.default_parallel = False
        g.parallels.append((value, opt.span))
    elif name == "drive":
        _handle_drive(g, opt, origin=origin)
    elif name in _DRIVE_SHORTHANDS:
        index = _DRIVE_SHORTHANDS[name]
        g.drives.append(_Drive("ide", index, "disk", f"-{name}", opt.span))
    elif name == "cdrom":
        g.drives.append(_Drive("ide", 2, "cdrom", "-cdrom", opt.span))
    elif name in ("fda", "fdb"):
        g.drives.append(_Drive("floppy", 0 if name == "fda" else 1, "disk", f"-{name}", opt.span))
    elif name == "usb":
        g.usb, g.usb_span = True, g.usb_span or opt.span
    elif name == "usbdevice":
        g.usb, g.usb_span = True, g.usb_span or opt.span
        driver = USBDEVICE_TYPES.get(value)
        if driver is None:
            g.gaps.append(f"-usbdevice {value}: the device it creates is not modelled")
        else:
            g.add(driver, "-usbdevice", opt.span, False)
    elif name == "virtfs":
        g.add("virtio-9p-pci", "-virtfs", opt.span, False)  # vl.c QEMU_OPTION_virtfs
    elif name == "debugcon":
        g.add("isa-debugcon", "-debugcon", opt.span, False)  # vl.c debugcon_parse()
    elif name == "soundhw" or (name == "audio" and "model" in _keyval(value)[1]):
        g.gaps.append(f"-{name} {value}: the sound device it creates is not modelled")
    elif name == "watchdog":
        g.gaps.append(f"-watchdog {value}: the watchdog device it creates is not modelled")


def _collect_section(
    g: _Graph, group: str, props: dict[str, str], origin: str, span: Span | None
) -> None:
    """A ``-readconfig`` section: [global] clears defaults as -global does ([device] is in
    ``vm.devices`` already and counts there); [drive] and [net] create
    frontends; [nic] is not a config group QEMU reads (no QemuOptsList "nic" in
    vm_config_groups), so it is not one here either."""
    if group == "global":
        driver = props.get("driver")
        if driver in DEFAULT_LIST:
            g.disabled.add(DEFAULT_LIST[driver])
    elif group in ("drive", "net"):
        text = ",".join(f"{k}={v.replace(',', ',,')}" for k, v in props.items())
        _collect(g, Option(group, text, span), origin)


def _global_driver(value: str) -> str | None:
    m = re.fullmatch(r"([^.=]+)\.([^=]+)=(.*)", value, re.DOTALL)
    if m:
        return m.group(1)
    return _keyval(value)[1].get("driver")


def complete_devices(vm: VmSpec) -> None:
    """Add to ``vm.devices`` every device the command line creates besides ``-device``.

    Called once by the command-line parser after every option is read."""
    target = binary_target(vm.binary)
    if target in ("x86_64", "i386"):
        raw = machine_model(vm.machine.type)
    else:
        raw = f"the default devices of target {target} are not modelled"
    nodefaults = any(o.name == "nodefaults" for o in vm.options)
    model = raw if isinstance(raw, MachineModel) else None
    g = _Graph(vm, model)
    # -device and -readconfig [device]: the driver as written clears its default. The
    # list holds canonical names, which equal the written ones for every default_list[]
    # driver (no alias resolves to one, and no alias is one); a -set ...driver= counts,
    # as QEMU checks the options after -set changed them.
    for device in vm.devices:
        if device.driver in DEFAULT_LIST:
            g.disabled.add(DEFAULT_LIST[device.driver])
    for opt in vm.options:
        if opt.name == "readconfig":
            for rc in vm.readconfigs:
                if rc.span == opt.span:
                    for group, props in rc.sections:
                        _collect_section(g, group, props, f"-readconfig {rc.path}", opt.span)
            continue
        _collect(g, opt)
    if isinstance(raw, str):
        uses = [o.name for o in vm.options if o.name in FRONTEND_OPTIONS]
        if not nodefaults or uses or vm.positional:
            why = raw if not uses else f"{raw} (options: -{', -'.join(sorted(set(uses)))})"
            g.gaps.append(why)
        vm.device_gaps.extend(g.gaps)
        return
    assert model is not None
    if model.family == "none":
        vm.device_gaps.extend(g.gaps)
        return
    for image in vm.positional:  # vl.c: a bare word is "-hda WORD"
        g.drives.append(_Drive("ide", 0, "disk", f"disk image {image}", None))
    has_defaults = not nodefaults
    _nics(g, has_defaults)
    _vga(g, has_defaults)
    _ports(g, has_defaults)
    if not has_defaults:
        g.disabled.update({"cdrom", "floppy"})
    _drive_devices(g)
    _usb(g)
    vm.devices.extend(g.devices)
    vm.device_gaps.extend(g.gaps)


FRONTEND_OPTIONS = frozenset(
    {
        "nic",
        "net",
        "vga",
        "serial",
        "parallel",
        "drive",
        "hda",
        "hdb",
        "hdc",
        "hdd",
        "cdrom",
        "fda",
        "fdb",
        "usb",
        "usbdevice",
        "virtfs",
        "debugcon",
    }
)


def _nics(g: _Graph, has_defaults: bool) -> None:
    if g.default_net and has_defaults:
        # vl.c qemu_create_default_devices(): "-net nic" and "-net user" (CONFIG_SLIRP).
        port = _hub_port(g)
        g.vm.netdevs.append(Netdev("user", f"#net{g.nic_ids}", {"peer": _hub_port(g)}, None))
        g.nic_ids += 1
        dev = Device("", None, {"netdev": port}, None, "default NIC", True)
        g.nics.append(("default NIC", dev))
    for origin, dev in g.nics:
        model = _nic_model(dev.driver or None, g)
        if model is None:
            continue
        if not dev.driver:  # no model= (or the default NIC): the machine's default model
            dev.assumed = _nic_assumed(g, origin)
        dev.driver = model
        g.devices.append(dev)


def _vga(g: _Graph, has_defaults: bool) -> None:
    assert g.model is not None
    if g.vga is not None:
        name, span = g.vga
        if name not in VGA_MODELS:
            g.gaps.append(f"-vga {name}: not a VGA model migcheck knows")
            return
        driver = VGA_MODELS[name]
        if driver is not None:
            g.add(driver, f"-vga {name}", span, False)
        return
    if has_defaults and g.default_vga and "vga" not in g.disabled and g.model.default_vga:
        if g.model.family == "pc":
            _version_dependent(g, "the default VGA")  # cirrus-vga up to pc-i440fx-2.1
        g.add(g.model.default_vga, "default VGA", None, True)


def _ports(g: _Graph, has_defaults: bool) -> None:
    assert g.model is not None
    if not g.model.serial_parallel:
        return
    if g.default_serial and has_defaults and "serial" not in g.disabled:
        g.add("isa-serial", "default serial", None, True)
    # vl.c serial_parse(): "none" keeps its index empty; pc_superio_init() ->
    # serial_hds_isa_init() makes isa-serial for each chardev among the first 4.
    for index, (value, span) in enumerate(g.serials):
        if value != "none" and index < MAX_ISA_SERIAL_PORTS:
            g.add("isa-serial", "-serial", span, False)
    if g.default_parallel and has_defaults and "parallel" not in g.disabled:
        g.add("isa-parallel", "default parallel", None, True)
    # vl.c parallel_parse(): "none" takes no index; at most MAX_PARALLEL_PORTS.
    real = [(v, s) for v, s in g.parallels if v != "none"]
    for _value, span in real[:MAX_PARALLEL_PORTS]:
        g.add("isa-parallel", "-parallel", span, False)


def _usb(g: _Graph) -> None:
    assert g.model is not None
    # vl.c: -usb and -usbdevice set the machine's usb=on (machine_usb()).
    if not (g.usb or as_bool(g.vm.machine.options.get("usb")) is True):
        return
    origin = "-usb" if g.usb else "-machine usb=on"
    if g.model.family == "pc":  # pc_piix.c pc_init1(): piix3-usb-uhci when machine_usb()
        g.add("piix3-usb-uhci", origin, g.usb_span, False)
    else:  # pc_q35.c pc_q35_init(): ehci_create_ich9_with_companions()
        for driver in ("ich9-usb-ehci1", "ich9-usb-uhci1", "ich9-usb-uhci2", "ich9-usb-uhci3"):
            g.add(driver, origin, g.usb_span, False)
