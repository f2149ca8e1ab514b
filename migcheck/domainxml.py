"""libvirt domain XML (``virsh dumpxml``) -> :class:`migcheck.vm.VmSpec`.

The result has the shape :mod:`migcheck.cmdline` gives the QEMU command line libvirt's qemu
driver would generate for the same XML, so every check reads it unchanged: the same device
drivers, netdev types, ``-object`` types, CPU model and feature names, machine and
accelerator options. The mapping was checked against libvirt's own test pairs
(``qemuxml2argvdata/NAME.xml`` and ``NAME.x86_64-latest.args`` in ../shared/data); see
``tests/test_domainxml.py`` for the agreement counts.

What a check, a blocker or a catalogued capability reads is mapped, plus the CPU
switches libvirt writes on ``-cpu``. Disk images, PCI addresses, controllers, chardev
plumbing, NUMA layout and CPU topology are left out: no check looks at them.

Decisions where XML and the command line cannot match exactly:

* ``<cpu mode='host-model'>`` becomes ``-cpu host,migratable=on``. libvirt expands
  host-model when the guest starts into a named model plus the features of *that* host
  which KVM can migrate, and sends the expanded definition with the migration, so the
  destination must offer every one of those features and the guest never gains any. The
  passthrough check judges exactly the first part (a feature of the source missing on the
  destination fails); its "would gain features" and "CPU identity differs" warnings are
  conservative for host-model. ``virsh dumpxml`` of a *running* guest already shows the
  expansion (``mode='custom'`` with the model and features), which this module reads
  exactly: prefer it to ``--inactive`` XML. ``<cpu match='minimum'>`` is host-model too
  (libvirt gives the guest the host's model, cpu-minimum1.args).
* Features with ``policy='optional'`` are left out, and ``match='strict'`` does not switch
  off the host features the definition omits: libvirt decides both on the host at start
  (the running guest's XML shows the outcome).
* ``<cpu check='full'>`` sets ``enforce``. libvirt does not pass ``enforce`` (its
  ``cpu-check-full`` test writes the same command line as ``check='none'``); it compares
  the CPU QEMU built with the definition after start and refuses to run the guest when a
  feature is missing. That is ``enforce``'s effect, which the CPU checks judge.
* ``vhost=on`` is set on a tap netdev only for an explicit ``<driver name='vhost'/>``.
  Without it libvirt opens ``/dev/vhost-net`` when it can (KVM guest, virtio model) and
  silently falls back to userspace networking on a host where it cannot, so the guest does
  not depend on vhost-net (libvirt src/qemu/qemu_interface.c qemuInterfaceOpenVhostNet).
* Hugepage-backed memory is a ``memory-backend-file`` at ``/dev/hugepages``: libvirt uses the
  hugetlbfs mount of the page size (qemu.conf ``hugetlbfs_mount``, usually /dev/hugepages)
  plus a per-guest directory it creates. ``<source type='file'>`` memory lives under
  libvirt's default ``memory_backing_dir``, /var/lib/libvirt/qemu/ram.
* ``<qemu:commandline>`` arguments are parsed by :func:`migcheck.cmdline.parse_cmdline`
  and merged as QEMU would see them, after libvirt's own options; ``<qemu:override>``
  frontend properties are applied to the device with that alias.
* :attr:`VmSpec.text` stays empty and spans point at XML elements (line, and the element's
  character offset as ``start == end``): there is no command line to rewrite byte for byte.

Hostile input is refused, never expanded: a DOCTYPE (the only place entity declarations
can live, hence "billion laughs") is rejected before the parser sees the document, and
again by the parser's handlers; input over 16 MiB is rejected unread. Every problem is an
:class:`~migcheck.errors.InputError` naming the source and, where there is one, the line.
"""

from __future__ import annotations

import shlex
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from xml.parsers.expat import ExpatError, ParserCreate, errors

from migcheck.cmdline import _oneline, parse_cmdline
from migcheck.errors import InputError
from migcheck.vm import Device, Netdev, Option, QemuObject, Span, VmSpec

__all__ = ["MAX_XML_BYTES", "QEMU_NS", "load_domain_xml", "parse_domain_xml"]

# A domain XML is a few KiB; 16 MiB leaves room for anything real while bounding memory.
MAX_XML_BYTES = 16 * 1024 * 1024
_MIB = MAX_XML_BYTES // (1024 * 1024)
# A real domain has a few hundred elements, nested less than ten deep. Tiny elements
# ("<a>" is 3 bytes) would otherwise let 16 MiB of input build millions of tree nodes.
MAX_XML_ELEMENTS = 100_000
MAX_XML_DEPTH = 64
# libvirt's qemu namespace (docs/drvqemu.rst "Pass-through of arbitrary qemu commands").
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
_Q = "{" + QEMU_NS + "}"

# <domain type=...> -> accelerator. libvirt's other driver types (xen, lxc, vbox, ...) are
# not QEMU guests and are refused.
_ACCEL = {"kvm": "kvm", "qemu": "tcg", "hvf": "hvf", "whpx": "whpx", "nvmm": "nvmm"}

# libvirt CPU feature names whose QEMU spelling differs beyond "_" -> "-" (which is applied
# to every name, as QEMU's feat2prop() does). From libvirt's cpu_map/x86_features.xml,
# <alias name='...' source='qemu'> entries: pclmuldq is QEMU's pclmulqdq, and QEMU keeps a
# historical typo for vmx-invvpid-single-context-noglobals. "cmt" has only a Linux alias
# ("cqm", /proc/cpuinfo's name), so libvirt passes "cmt" to QEMU unchanged.
_CPU_FEATURE_QEMU = {
    "pclmuldq": "pclmulqdq",
    "vmx-invvpid-single-context-noglobals": "vmx-invept-single-context-noglobals",
}
# <feature policy=...>: optional leaves the feature to the model, so nothing is passed.
_POLICY = {"require": True, "force": True, "disable": False, "forbid": False, "optional": None}

# <interface type=...> -> -netdev type (libvirt qemuBuildHostNetProps). macvtap ("direct")
# is a tap device, so QEMU sees tap for it as for bridges and libvirt networks.
_NETDEV_TYPE = {
    "network": "tap",
    "bridge": "tap",
    "ethernet": "tap",
    "direct": "tap",
    "user": "user",
    "vhostuser": "vhost-user",
    "vdpa": "vhost-vdpa",
    "server": "socket",
    "client": "socket",
    "mcast": "socket",
    "udp": "socket",
}
# Interfaces whose model defaults to virtio (libvirt rejects other models for them); any
# other interface without <model> is an rtl8139 on x86 (qemuDomainDefaultNetModel).
_VIRTIO_ONLY_NET = {"vhostuser", "vdpa"}
# Enumerated libvirt NIC models (matched case-insensitively, as libvirt does); other model
# strings are passed to QEMU verbatim as the device driver.
_NET_MODELS = {"e1000", "e1000e", "igb", "rtl8139", "usb-net", "vmxnet3", "spapr-vlan"}
# <driver><host .../><guest .../></driver> offload attributes -> virtio-net properties
# (libvirt qemuBuildNicDevProps; spellings confirmed by net-virtio-disable-offloads.args).
# USO: libvirt's schema in the test data has no uso/uso4/uso6 attributes; should a libvirt
# accept them, they map to QEMU's host_uso/guest_uso4/guest_uso6 (hw/net/virtio-net.c).
# Today operators set those through <qemu:override>, which is applied as well.
_HOST_OFFLOADS = {
    "csum": "csum",
    "gso": "gso",
    "tso4": "host_tso4",
    "tso6": "host_tso6",
    "ecn": "host_ecn",
    "ufo": "host_ufo",
    "uso": "host_uso",
    "mrg_rxbuf": "mrg_rxbuf",
}
_GUEST_OFFLOADS = {
    "csum": "guest_csum",
    "tso4": "guest_tso4",
    "tso6": "guest_tso6",
    "ecn": "guest_ecn",
    "ufo": "guest_ufo",
    "uso4": "guest_uso4",
    "uso6": "guest_uso6",
}
# <driver> attributes common to virtio devices -> QEMU property (libvirt
# qemuBuildVirtioDevProps).
_VIRTIO_OPTIONS = {
    "iommu": "iommu_platform",
    "ats": "ats",
    "packed": "packed",
    "page_per_vq": "page-per-vq",
}

_VIDEO = {
    "vga": "VGA",
    "cirrus": "cirrus-vga",
    "vmvga": "vmware-svga",
    "bochs": "bochs-display",
    "ramfb": "ramfb",
}
_SOUND = {
    "ich6": "intel-hda",
    "ich7": "intel-hda",
    "ich9": "ich9-intel-hda",
    "ac97": "AC97",
    "es1370": "ES1370",
    "sb16": "sb16",
    "usb": "usb-audio",
}
_INPUT = {
    ("mouse", "usb"): "usb-mouse",
    ("tablet", "usb"): "usb-tablet",
    ("keyboard", "usb"): "usb-kbd",
    ("mouse", "virtio"): "virtio-mouse-pci",
    ("tablet", "virtio"): "virtio-tablet-pci",
    ("keyboard", "virtio"): "virtio-keyboard-pci",
    ("passthrough", "virtio"): "virtio-input-host-pci",
}
_SERIAL_TARGET = {"usb-serial": "usb-serial", "pci-serial": "pci-serial"}
_WATCHDOG = {"i6300esb": "i6300esb", "ib700": "ib700", "diag288": "diag288"}
_RNG_BACKEND = {"random": "rng-random", "egd": "rng-egd", "builtin": "rng-builtin"}

# libvirt's default hugetlbfs mount and memory_backing_dir (see the module docstring).
HUGEPAGES_PATH = "/dev/hugepages"
MEMORY_BACKING_DIR = "/var/lib/libvirt/qemu/ram"
# A "hugepage" of the normal page size is ordinary memory (hugepages-default-system-size).
_SYSTEM_PAGE_KIB = 4

_UNITS = {
    "": 1,
    "b": 1,
    "bytes": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}
_ON = {"on", "yes"}
_OFF = {"off", "no"}


# --------------------------------------------------------------------------- XML reading


class _Refused(Exception):
    """Raised from inside the expat callbacks; carries the refusal to the caller."""


def _skip_prolog(text: str) -> int:
    """Offset of the first markup after the XML declaration, comments and PIs.

    A DOCTYPE may only appear here (before the root element), and entity declarations
    only inside a DOCTYPE, so looking here is enough to refuse both before parsing.
    """
    pos = 1 if text.startswith("\ufeff") else 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if text.startswith("<?", pos):
            end = text.find("?>", pos + 2)
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
        else:
            return pos
        if end < 0:
            return pos  # unterminated: the parser reports it with a position
        pos = end + (2 if text[end] == "?" else 3)


class _Tree:
    """A parsed document: the root element and where each element starts."""

    def __init__(self, root: ET.Element, where: dict[ET.Element, tuple[int, int]], text: str):
        self.root = root
        self._where = where
        self._text = text
        self._ascii = text.isascii()
        self._data: bytes | None = None

    def line(self, elem: ET.Element) -> int:
        return self._where.get(elem, (0, 0))[0]

    def span(self, elem: ET.Element) -> Span:
        line, byte_index = self._where.get(elem, (0, 0))
        if self._ascii:
            offset = byte_index
        else:  # expat counts bytes of the UTF-8 encoding; spans count characters
            if self._data is None:
                self._data = self._text.encode("utf-8")
            offset = len(self._data[:byte_index].decode("utf-8", "replace"))
        return Span(line, offset, offset)


def _tag(name: str) -> str:
    # expat reports "uri}local" with namespace_separator="}"; ElementTree spells "{uri}local".
    return "{" + name if "}" in name else name


def _read_tree(text: str, source: str) -> _Tree:
    name = _oneline(source)
    if len(text) > MAX_XML_BYTES:
        raise InputError(f"{name}: {len(text)} characters is over the {_MIB} MiB limit for XML")
    start = _skip_prolog(text)
    if text[start : start + 9].upper() == "<!DOCTYPE":
        line = text.count("\n", 0, start) + 1
        raise InputError(
            f"{name} line {line}: refusing a DOCTYPE declaration (entity definitions can "
            "expand without bound); virsh dumpxml never writes one"
        )
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InputError(f"{name}: not valid text (character {err.start})") from None
    if len(data) > MAX_XML_BYTES:
        raise InputError(f"{name}: {len(data)} bytes is over the {_MIB} MiB limit for XML")

    builder = ET.TreeBuilder()
    where: dict[ET.Element, tuple[int, int]] = {}
    # Forcing UTF-8 overrides any encoding= in the declaration: the bytes are ours.
    parser = ParserCreate("utf-8", "}")
    parser.buffer_text = True

    depth = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise _Refused(f"elements nested over {MAX_XML_DEPTH} deep")
        if len(where) >= MAX_XML_ELEMENTS:
            raise _Refused(f"over {MAX_XML_ELEMENTS} elements")
        elem = builder.start(_tag(tag), {_tag(k): v for k, v in attrs.items()})
        where[elem] = (parser.CurrentLineNumber, parser.CurrentByteIndex)

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(_tag(tag))

    def refuse(*_: Any) -> None:
        raise _Refused("a DOCTYPE or entity declaration; virsh dumpxml never writes one")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    # Belt and braces behind the prolog check: never let a declaration through.
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    try:
        parser.Parse(data, True)
        root = builder.close()
    except _Refused as err:
        raise InputError(f"{name} line {parser.CurrentLineNumber}: refusing {err}") from None
    except ExpatError as err:
        raise InputError(
            f"{name} line {err.lineno}, column {err.offset + 1}: not well-formed XML "
            f"({errors.messages[err.code]})"
        ) from None
    if root.tag != "domain":
        raise InputError(
            f"{name} line {where.get(root, (1, 0))[0]}: the root element is "
            f"<{_oneline(root.tag)}>, expected <domain> (the output of virsh dumpxml)"
        )
    return _Tree(root, where, text)


# --------------------------------------------------------------------------- helpers


def _state(value: str | None) -> bool | None:
    """libvirt's on/off and yes/no -> bool; anything else (or absent) -> None."""
    if value is None:
        return None
    low = value.strip().lower()
    return True if low in _ON else False if low in _OFF else None


def _virtio_driver(base: str, model: str | None, address: ET.Element | None) -> str:
    """virtio device name for libvirt's model variants and address types.

    ``virtio-net`` + ``virtio-transitional`` -> ``virtio-net-pci-transitional``; on a
    virtio-mmio or ccw address the -device / -ccw variant (libvirt qemuBuildVirtioDevGetConfig).
    """
    kind = address.get("type") if address is not None else None
    if kind == "virtio-mmio":
        return f"{base}-device"
    if kind == "ccw":
        return f"{base}-ccw"
    if model in ("virtio-transitional", "virtio-non-transitional"):
        return f"{base}-pci-{model.removeprefix('virtio-')}"
    return f"{base}-pci"


# --------------------------------------------------------------------------- converter


class _Converter:
    """Walks one domain element and fills a VmSpec."""

    def __init__(self, tree: _Tree, source: str) -> None:
        self.tree = tree
        self.root = tree.root
        self.source = source
        self.spec = VmSpec(source=source)
        self.counters: dict[str, int] = {}
        self.has_nvme_controller = False

    # ----- small utilities

    def fail(self, elem: ET.Element, what: str) -> InputError:
        tag = elem.tag.replace(_Q, "qemu:")  # as libvirt's documentation spells them
        return InputError(
            f"{_oneline(self.source)} line {self.tree.line(elem)}: <{_oneline(tag)}>: {what}"
        )

    def next_id(self, elem: ET.Element, prefix: str) -> str:
        """The device's <alias name>, or libvirt's generated alias (net0, hostdev1, ...)."""
        index = self.counters.get(prefix, 0)
        self.counters[prefix] = index + 1
        alias = elem.find("alias")
        name = alias.get("name") if alias is not None else None
        return name or f"{prefix}{index}"

    def number(self, elem: ET.Element, text: str | None, what: str) -> int:
        value = (text or "").strip()
        try:
            return int(value, 0) if value.lower().startswith("0x") else int(value, 10)
        except ValueError:
            raise self.fail(elem, f"{what} {_oneline(value)!r} is not a number") from None

    def scaled(self, elem: ET.Element, value: str | None, unit: str) -> int:
        """A libvirt scaled integer (value and unit, e.g. 128 and "M") in bytes."""
        low = unit.strip().lower()
        if low not in _UNITS:
            raise self.fail(elem, f"unknown unit {_oneline(unit)!r}")
        return self.number(elem, value, "size") * _UNITS[low]

    def device(
        self, elem: ET.Element, driver: str, ident: str | None, props: dict[str, Any]
    ) -> Device:
        dev = Device(driver, ident, props, self.tree.span(elem))
        self.spec.devices.append(dev)
        return dev

    def obj(self, elem: ET.Element, qom_type: str, ident: str, props: dict[str, Any]) -> None:
        self.spec.objects.append(QemuObject(qom_type, ident, props, self.tree.span(elem)))

    def option(self, elem: ET.Element, name: str, value: str) -> None:
        self.spec.options.append(Option(name, value, self.tree.span(elem)))

    def virtio_options(self, driver: ET.Element | None, props: dict[str, Any]) -> None:
        if driver is None:
            return
        for attr, prop in _VIRTIO_OPTIONS.items():
            value = _state(driver.get(attr))
            if value is not None:
                props[prop] = value

    # ----- top level

    def convert(self) -> VmSpec:
        root = self.root
        self.domain_type(root)
        self.machine(root)
        self.smp(root)
        self.memory(root)
        self.cpu(root)
        self.features(root)
        self.clock(root)
        self.memory_backing(root)
        self.launch_security(root)
        devices = root.find("devices")
        if devices is not None:
            self.devices(devices)
        self.qemu_namespace(root)
        return self.spec

    def domain_type(self, root: ET.Element) -> None:
        kind = root.get("type")
        if kind is None:
            raise self.fail(root, "missing the type attribute (kvm or qemu)")
        if kind not in _ACCEL:
            raise self.fail(
                root,
                f"type={_oneline(kind)!r} is not a QEMU guest (expected kvm or qemu)",
            )
        self.spec.accel = [_ACCEL[kind]]

    def machine(self, root: ET.Element) -> None:
        os_type = root.find("os/type")
        # Kept as written: an alias (pc, q35) is resolved per host by the machine checks,
        # which is exactly what libvirt would do when it starts the guest there.
        machine = os_type.get("machine") if os_type is not None else None
        self.spec.machine.type = machine or None
        if os_type is not None:
            self.spec.machine.span = self.tree.span(os_type)

    # ----- vCPUs and memory, as libvirt writes -smp and -m

    def smp(self, root: ET.Element) -> None:
        """``-smp`` as libvirt writes it (src/qemu/qemu_command.c qemuBuildSmpCommandLine()):
        the online vCPUs that are not hotpluggable (hotpluggable ones become -device), then
        ``maxcpus`` when the maximum differs, then ``<cpu><topology>`` (sockets, dies, cores,
        threads) or, without one, ``sockets=MAX,cores=1,threads=1``. Without ``<vcpu>`` a
        domain has one vCPU. tests/test_domainxml.py compares this with every
        qemuxml2argvdata case that has a ``.args`` file."""
        elem = root.find("vcpu")
        maximum = self.number(elem, elem.text, "<vcpu>") if elem is not None else 1
        current = maximum
        if elem is not None and elem.get("current") is not None:
            current = self.number(elem, elem.get("current"), "<vcpu current>")
        if maximum < 1 or not 1 <= current <= maximum:
            raise self.fail(elem if elem is not None else root, "<vcpu> needs 1 <= current <= max")
        listed = root.findall("vcpus/vcpu")
        if listed:
            boot = [
                v
                for v in listed
                if v.get("enabled", "yes") == "yes" and v.get("hotpluggable", "no") == "no"
            ]
            online = len(boot)
        else:
            online = current
        value = f"{online}" + (f",maxcpus={maximum}" if online != maximum else "")
        topology = root.find("cpu/topology")
        if topology is not None:
            counts = {
                key: self.number(topology, topology.get(key, default), f"topology {key}")
                for key, default in (
                    ("sockets", None),
                    ("dies", "1"),
                    ("cores", None),
                    ("threads", None),
                )
            }
            value += "".join(f",{key}={count}" for key, count in counts.items())
        else:
            value += f",sockets={maximum},cores=1,threads=1"
        self.option(elem if elem is not None else root, "smp", value)

    def memory(self, root: ET.Element) -> None:
        """``-m size=...k`` as libvirt writes it (qemuDomainAlignMemorySizes()): the sum of
        the NUMA cells, each rounded up to whole MiB; without cells ``<memory>`` less the
        memory devices (DIMMs are hot-plugged, not part of ``size``), rounded up to whole
        MiB; ``slots`` and ``maxmem`` from ``<maxMemory>``."""
        elem = root.find("memory")
        cells = root.findall("cpu/numa/cell")
        if elem is None and not cells:
            return  # libvirt refuses a domain without either; nothing to add here

        def mib(node: ET.Element, value: str | None, unit: str | None) -> int:
            return -(-self.scaled(node, value, unit or "KiB") // 1024**2)

        if cells:
            size = sum(mib(cell, cell.get("memory"), cell.get("unit")) for cell in cells)
        else:
            plugged = sum(
                self.scaled(target, target.text, target.get("unit", "KiB"))
                for target in root.findall("devices/memory/target/size")
            )
            assert elem is not None
            total = self.scaled(elem, elem.text, elem.get("unit", "KiB")) - plugged
            size = -(-max(total, 0) // 1024**2)
        value = f"size={size * 1024}k"
        maximum = root.find("maxMemory")
        if maximum is not None:
            slots = self.number(maximum, maximum.get("slots", "0"), "<maxMemory slots>")
            value += f",slots={slots}" if slots else ""
            value += f",maxmem={mib(maximum, maximum.text, maximum.get('unit')) * 1024}k"
        self.option(elem if elem is not None else cells[0], "m", value)

    # ----- CPU

    def cpu(self, root: ET.Element) -> None:
        spec = self.spec.cpu
        elem = root.find("cpu")
        if elem is None:
            return  # QEMU's default model for the machine type, as with no -cpu
        spec.span = self.tree.span(elem)
        model_elem = elem.find("model")
        mode = elem.get("mode") or "custom"
        if mode == "custom" and elem.get("match") == "minimum":
            # "At least this CPU": libvirt gives the guest the host's CPU model instead
            # (cpu-minimum1.args: <model>486</model> runs as the host's Haswell).
            mode = "host-model"
        if mode in ("host-passthrough", "maximum", "host-model"):
            spec.model = "max" if mode == "maximum" else "host"
            # libvirt writes migratable=on unless told otherwise (cpu-host-passthrough.args);
            # host-model is by construction the migratable subset.
            migratable = _state(elem.get("migratable")) if mode != "host-model" else True
            spec.features["migratable"] = migratable is not False
        elif mode == "custom":
            text = (model_elem.text or "").strip() if model_elem is not None else ""
            spec.model = text or None
        else:
            raise self.fail(elem, f"unknown mode {_oneline(mode)!r}")
        if model_elem is not None and model_elem.get("vendor_id"):
            spec.props["vendor"] = model_elem.get("vendor_id", "")
        if elem.get("check") == "full":
            spec.features["enforce"] = True
        self.cpu_cache(elem.find("cache"))
        self.cpu_phys_bits(elem.find("maxphysaddr"))
        for feature in elem.findall("feature"):
            name = feature.get("name")
            if not name:
                raise self.fail(feature, "missing the feature name")
            policy = feature.get("policy") or "require"
            if policy not in _POLICY:
                raise self.fail(feature, f"unknown policy {_oneline(policy)!r}")
            on = _POLICY[policy]
            if on is not None:
                self.cpu_feature(name, on)

    def cpu_cache(self, elem: ET.Element | None) -> None:
        # cpu-cache-*.args: passthrough -> host-cache-info, emulated L3 -> l3-cache.
        if elem is None:
            return
        mode = elem.get("mode")
        if mode == "passthrough":
            self.cpu_feature("host-cache-info", True)
            self.cpu_feature("l3-cache", False)
        elif mode == "emulate" and elem.get("level") == "3":
            self.cpu_feature("l3-cache", True)
            self.cpu_feature("host-cache-info", False)
        elif mode == "disable":
            self.cpu_feature("host-cache-info", False)
            self.cpu_feature("l3-cache", False)

    def cpu_phys_bits(self, elem: ET.Element | None) -> None:
        # cpu-phys-bits-*.args: passthrough -> host-phys-bits(+limit), emulate -> phys-bits.
        if elem is None:
            return
        mode = elem.get("mode")
        if mode == "passthrough":
            self.cpu_feature("host-phys-bits", True)
            if elem.get("limit"):
                limit = self.number(elem, elem.get("limit"), "limit")
                self.spec.cpu.props["host-phys-bits-limit"] = str(limit)
        elif mode == "emulate":
            if elem.get("bits"):
                self.spec.cpu.props["phys-bits"] = str(self.number(elem, elem.get("bits"), "bits"))
            else:
                self.cpu_feature("host-phys-bits", False)

    def cpu_feature(self, name: str, on: bool) -> None:
        dashed = name.replace("_", "-")
        qemu = _CPU_FEATURE_QEMU.get(dashed, dashed)
        self.spec.cpu.props.pop(qemu, None)
        self.spec.cpu.features[qemu] = on

    # ----- <features>

    def features(self, root: ET.Element) -> None:
        features = root.find("features")
        if features is None:
            return
        handlers: dict[str, Callable[[ET.Element], None]] = {
            "hyperv": self.hyperv,
            "kvm": self.kvm_features,
            "pmu": lambda e: self.state_feature(e, "pmu"),
            "pvspinlock": lambda e: self.state_feature(e, "kvm-pv-unhalt"),
            "apic": self.apic,
            "ioapic": self.ioapic,
            "smm": lambda e: self.machine_state(e, "smm"),
            "vmport": lambda e: self.machine_state(e, "vmport"),
        }
        for child in features:
            handler = handlers.get(child.tag)
            if handler is not None:
                handler(child)

    def state_feature(self, elem: ET.Element, prop: str) -> None:
        # A bare <pmu/> or <pvspinlock/> means on (formatdomain.rst: "default on";
        # pmu-feature.args writes pmu=on for <pmu/>).
        value = _state(elem.get("state", "on"))
        if value is not None:
            self.cpu_feature(prop, value)

    def machine_state(self, elem: ET.Element, prop: str) -> None:
        value = _state(elem.get("state", "on"))
        if value is not None:
            self.spec.machine.options[prop] = "on" if value else "off"

    def apic(self, elem: ET.Element) -> None:
        value = _state(elem.get("eoi"))
        if value is not None:
            self.cpu_feature("kvm-pv-eoi", value)

    def ioapic(self, elem: ET.Element) -> None:
        # libvirt writes kernel_irqchip=...; QEMU's machine options treat "_" as "-"
        # (machine_set_property), and the catalogue matches the canonical kernel-irqchip.
        driver = elem.get("driver")
        if driver == "qemu":
            self.spec.machine.options["kernel-irqchip"] = "split"
        elif driver == "kvm":
            self.spec.machine.options["kernel-irqchip"] = "on"

    def hyperv(self, elem: ET.Element) -> None:
        if elem.get("mode") == "passthrough":
            self.cpu_feature("hv-passthrough", True)
            return
        # libvirt passes only the enlightenments that are on (hyperv-off.args is bare).
        for child in elem:
            if _state(child.get("state")) is not True:
                continue
            name = "hv-" + child.tag.replace("_", "-")
            if child.tag == "spinlocks":
                if child.get("retries"):
                    retries = self.number(child, child.get("retries"), "retries")
                    self.spec.cpu.props["hv-spinlocks"] = hex(retries)
            elif child.tag == "vendor_id":
                self.spec.cpu.props["hv-vendor-id"] = child.get("value", "")
            else:
                self.cpu_feature(name, True)
            for sub in child:  # <stimer><direct/>, <tlbflush><direct/><extended/>
                if _state(sub.get("state")) is True:
                    suffix = "ext" if sub.tag == "extended" else sub.tag.replace("_", "-")
                    self.cpu_feature(f"{name}-{suffix}", True)

    def kvm_features(self, elem: ET.Element) -> None:
        # As kvm-features.args and kvm-features-off.args show: only the non-default state
        # of each switch reaches the command line.
        for child in elem:
            value = _state(child.get("state"))
            if value is None:
                continue
            if child.tag == "hidden" and value:
                self.cpu_feature("kvm", False)
            elif child.tag in ("hint-dedicated", "poll-control") and value:
                self.cpu_feature(f"kvm-{child.tag}", True)
            elif child.tag == "pv-ipi" and not value:
                self.cpu_feature("kvm-pv-ipi", False)
            elif child.tag == "dirty-ring" and value and self.spec.uses_kvm:
                size = child.get("size")
                if size:
                    ring = self.number(child, size, "dirty-ring size")
                    self.spec.accel_options["dirty-ring-size"] = str(ring)

    def clock(self, root: ET.Element) -> None:
        for timer in root.findall("clock/timer"):
            name = timer.get("name")
            present = _state(timer.get("present"))
            if name == "tsc" and timer.get("frequency"):
                frequency = self.number(timer, timer.get("frequency"), "frequency")
                self.spec.cpu.features.pop("tsc-frequency", None)
                self.spec.cpu.props["tsc-frequency"] = str(frequency)
            elif name == "kvmclock" and present is not None:
                self.cpu_feature("kvmclock", present)
            elif name == "hypervclock" and present:
                self.cpu_feature("hv-time", True)

    # ----- memory

    def memory_backing(self, root: ET.Element) -> None:
        backing = root.find("memoryBacking")
        if backing is None:
            return
        props: dict[str, Any] = {}
        access = backing.find("access")
        if access is not None and access.get("mode") in ("shared", "private"):
            props["share"] = access.get("mode") == "shared"
        allocation = backing.find("allocation")
        if allocation is not None and allocation.get("mode") == "immediate":
            props["prealloc"] = True
        source = backing.find("source")
        source_type = source.get("type") if source is not None else None
        huge = self.hugepages(backing.find("hugepages"))
        if source_type == "memfd":
            if huge:
                props["hugetlb"] = True
            qom = "memory-backend-memfd"
        elif huge:
            props = {"mem-path": HUGEPAGES_PATH, **props, "prealloc": True}
            qom = "memory-backend-file"
        elif source_type == "file":
            props = {"mem-path": MEMORY_BACKING_DIR, **props}
            qom = "memory-backend-file"
        elif props.get("share"):
            # Shared anonymous memory still needs a file: libvirt uses memory_backing_dir
            # (disk-vhostvdpa.args).
            props = {"mem-path": MEMORY_BACKING_DIR, **props}
            qom = "memory-backend-file"
        else:
            return
        self.obj(backing, qom, "pc.ram", props)
        self.spec.machine.options.setdefault("memory-backend", "pc.ram")

    def hugepages(self, elem: ET.Element | None) -> bool:
        if elem is None:
            return False
        pages = elem.findall("page")
        if not pages:
            return True
        for page in pages:
            size = page.get("size")
            if size is None:
                return True
            if self.scaled(page, size, page.get("unit") or "KiB") != _SYSTEM_PAGE_KIB * 1024:
                return True
        return False

    def launch_security(self, root: ET.Element) -> None:
        elem = root.find("launchSecurity")
        if elem is None:
            return
        kind = elem.get("type")
        qom = {"sev": "sev-guest", "sev-snp": "sev-snp-guest", "tdx": "tdx-guest"}.get(kind or "")
        if qom is None:
            return  # s390-pv and future types: no x86 object, nothing a check reads
        props: dict[str, Any] = {}
        for tag, prop in (
            ("cbitpos", "cbitpos"),
            ("reducedPhysBits", "reduced-phys-bits"),
            ("policy", "policy"),
        ):
            child = elem.find(tag)
            if child is not None and (child.text or "").strip():
                props[prop] = self.number(child, child.text, tag)
        self.obj(elem, qom, "lsec0", props)
        self.spec.machine.options["confidential-guest-support"] = "lsec0"

    # ----- devices

    def devices(self, devices: ET.Element) -> None:
        emulator = devices.find("emulator")
        if emulator is not None and (emulator.text or "").strip():
            self.spec.binary = (emulator.text or "").strip()
        self.has_nvme_controller = any(
            c.get("type") == "nvme" for c in devices.findall("controller")
        )
        handlers: dict[str, Callable[[ET.Element], None]] = {
            "interface": self.interface,
            "hostdev": self.hostdev,
            "shmem": self.shmem,
            "filesystem": self.filesystem,
            "disk": self.disk,
            "controller": self.controller,
            "input": self.input,
            "sound": self.sound,
            "serial": self.serial,
            "channel": self.channel,
            "tpm": self.tpm,
            "crypto": self.crypto,
            "vsock": self.vsock,
            "iommu": self.iommu,
            "memory": self.memory_device,
            "rng": self.rng,
            "watchdog": self.watchdog,
            "redirdev": self.redirdev,
        }
        for child in devices:
            handler = handlers.get(child.tag)
            if handler is not None:
                handler(child)
        self.videos(devices.findall("video"))

    def interface(self, elem: ET.Element) -> None:
        kind = elem.get("type") or ""
        model_elem = elem.find("model")
        raw_model = model_elem.get("type") if model_elem is not None else None
        if not raw_model:
            raw_model = "virtio" if kind in _VIRTIO_ONLY_NET else "rtl8139"
        model = raw_model.lower()
        if kind == "hostdev":  # SR-IOV VF assigned to the guest: VFIO, no netdev
            ident = self.next_id(elem, "hostdev")
            self.device(elem, "vfio-pci", ident, self.teaming(elem))
            return
        netdev_type = _NETDEV_TYPE.get(kind)
        if netdev_type is None:
            return  # "internal" and other types the qemu driver rejects
        backend = elem.find("backend")
        if kind == "user" and backend is not None and backend.get("type") == "passt":
            netdev_type = "stream"  # passt is reached over a unix stream socket
        ident = self.next_id(elem, "net")
        netdev_props: dict[str, Any] = {}
        driver = elem.find("driver")
        virtio = model.startswith("virtio")
        if netdev_type == "tap" and virtio and driver is not None and driver.get("name") == "vhost":
            netdev_props["vhost"] = True
        netdev_id = "host" + ident
        self.spec.netdevs.append(Netdev(netdev_type, netdev_id, netdev_props, self.tree.span(elem)))
        if virtio:
            name = _virtio_driver("virtio-net", model, elem.find("address"))
        elif model in _NET_MODELS:
            name = model
        else:
            name = raw_model  # libvirt passes unknown models through verbatim
        props: dict[str, Any] = {"netdev": netdev_id}
        mac = elem.find("mac")
        if mac is not None and mac.get("address"):
            props["mac"] = mac.get("address")
        if virtio:
            props.update(self.offloads(driver))
            self.virtio_options(driver, props)
            props.update(self.teaming(elem))
        self.device(elem, name, ident, props)

    def offloads(self, driver: ET.Element | None) -> dict[str, Any]:
        props: dict[str, Any] = {}
        if driver is None:
            return props
        for tag, table in (("host", _HOST_OFFLOADS), ("guest", _GUEST_OFFLOADS)):
            part = driver.find(tag)
            if part is None:
                continue
            for attr, prop in table.items():
                value = _state(part.get(attr))
                if value is not None:
                    props[prop] = value
        return props

    def teaming(self, elem: ET.Element) -> dict[str, Any]:
        team = elem.find("teaming")
        if team is None:
            return {}
        if team.get("type") == "persistent":
            return {"failover": True}
        if team.get("type") == "transient" and team.get("persistent"):
            return {"failover_pair_id": team.get("persistent")}
        return {}

    def hostdev(self, elem: ET.Element) -> None:
        if elem.get("mode", "subsystem") != "subsystem":
            return  # mode='capabilities' is for containers, not QEMU
        kind = elem.get("type")
        ident = self.next_id(elem, "hostdev")
        props: dict[str, Any] = {}
        if kind == "pci":
            # Every PCI hostdev is VFIO: libvirt dropped legacy KVM device assignment.
            address = elem.find("source/address")
            if address is not None:
                props["host"] = _pci_address(address)
            props.update(self.teaming(elem))
            self.device(elem, "vfio-pci", ident, props)
        elif kind == "mdev":
            model = elem.get("model") or "vfio-pci"
            driver = model
            if model == "vfio-pci" and _state(elem.get("ramfb")):
                driver = "vfio-pci-nohotplug"  # hostdev-mdev-display-ramfb.args
            address = elem.find("source/address")
            if address is not None and address.get("uuid"):
                props["sysfsdev"] = "/sys/bus/mdev/devices/" + address.get("uuid", "")
            self.device(elem, driver, ident, props)
        elif kind == "usb":
            self.device(elem, "usb-host", ident, props)
        elif kind == "scsi":
            self.device(elem, "scsi-generic", ident, props)
        elif kind == "scsi_host":
            name = _virtio_driver("vhost-scsi", elem.get("model"), elem.find("address"))
            self.device(elem, name, ident, props)

    def shmem(self, elem: ET.Element) -> None:
        name = elem.get("name") or ""
        model_elem = elem.find("model")
        model = (model_elem.get("type") if model_elem is not None else None) or "ivshmem-plain"
        if model not in ("ivshmem", "ivshmem-plain", "ivshmem-doorbell"):
            return
        alias = elem.find("alias")
        ident = (alias.get("name") if alias is not None else None) or name
        props: dict[str, Any] = {}
        if model == "ivshmem-plain" or (model == "ivshmem" and elem.find("server") is None):
            # libvirt's default ivshmem size is 4 MiB; <size> defaults to bytes.
            size_elem = elem.find("size")
            size = (
                self.scaled(size_elem, size_elem.text, size_elem.get("unit") or "b")
                if size_elem is not None
                else 4 << 20
            )
            memdev = f"shmmem-{ident}"
            self.obj(
                elem,
                "memory-backend-file",
                memdev,
                {"mem-path": f"/dev/shm/{name}", "size": size, "share": True},
            )
            props["memdev"] = memdev
            driver = "ivshmem-plain"
        else:
            props["chardev"] = f"char{ident}"
            driver = "ivshmem-doorbell"
        role = elem.get("role")
        if role in ("master", "peer"):
            props["master"] = "on" if role == "master" else "off"
        self.device(elem, driver, ident, props)

    def filesystem(self, elem: ET.Element) -> None:
        if elem.get("type", "mount") != "mount":
            return  # block/file/ram/... filesystems are not supported by the qemu driver
        ident = self.next_id(elem, "fs")
        driver = elem.find("driver")
        target = elem.find("target")
        tag = target.get("dir") if target is not None else None
        props: dict[str, Any] = {}
        if driver is not None and driver.get("type") == "virtiofs":
            name = _virtio_driver("vhost-user-fs", elem.get("model"), elem.find("address"))
            if tag:
                props["tag"] = tag
        else:
            name = _virtio_driver("virtio-9p", elem.get("model"), elem.find("address"))
            props["fsdev"] = f"fsdev-{ident}"
            if tag:
                props["mount_tag"] = tag
        self.virtio_options(driver, props)
        self.device(elem, name, ident, props)

    def disk(self, elem: ET.Element) -> None:
        target = elem.find("target")
        bus = (target.get("bus") if target is not None else None) or ""
        device = elem.get("device") or "disk"
        ident = self.next_id(elem, f"{bus or 'disk'}-disk")
        driver = elem.find("driver")
        # The format node libvirt writes as -blockdev (never -drive): recorded so checks
        # that match block formats can see it. The storage node is not a check's concern.
        fmt = driver.get("type") if driver is not None else None
        if fmt:
            self.option(elem, "blockdev", f"driver={fmt},node-name=libvirt-{ident}-format")
        # Backing images are opened by their own format drivers too (libvirt writes one
        # -blockdev per layer), and a blocking format anywhere in the chain blocks.
        for depth, store in enumerate(elem.iter("backingStore")):
            layer = store.find("format")
            if layer is not None and layer.get("type"):
                node = f"libvirt-{ident}-backing{depth}-format"
                self.option(store, "blockdev", f"driver={layer.get('type')},node-name={node}")
        if elem.get("type") == "vhostuser":
            name = _virtio_driver("vhost-user-blk", elem.get("model"), elem.find("address"))
        elif bus == "virtio":
            name = _virtio_driver("virtio-blk", elem.get("model"), elem.find("address"))
        elif bus in ("ide", "sata"):
            name = "ide-cd" if device == "cdrom" else "ide-hd"
        elif bus == "scsi":
            name = {"cdrom": "scsi-cd", "lun": "scsi-block"}.get(device, "scsi-hd")
        elif bus == "usb":
            name = "usb-storage"
        elif bus == "fdc":
            name = "floppy"
        elif bus == "nvme":
            # A namespace on an NVMe controller; libvirt adds the controller if the XML
            # lacks one, as for every bus. The controller is what blocks migration.
            if not self.has_nvme_controller:
                self.device(elem, "nvme", "nvme0", {})
                self.has_nvme_controller = True
            name = "nvme-ns"
        else:
            return
        props: dict[str, Any] = {}
        self.virtio_options(driver, props)
        self.device(elem, name, ident, props)

    def controller(self, elem: ET.Element) -> None:
        # Only the NVMe controller matters to a check (QEMU's nvme device is unmigratable).
        # Note <disk type='nvme'> is different: a host NVMe disk opened by QEMU's userspace
        # block driver, not an emulated controller.
        if elem.get("type") == "nvme":
            self.device(elem, "nvme", self.next_id(elem, "nvme"), {})

    def input(self, elem: ET.Element) -> None:
        kind = elem.get("type") or ""
        if kind == "evdev":
            source = elem.find("source")
            props = {"evdev": source.get("dev")} if source is not None else {}
            self.obj(elem, "input-linux", self.next_id(elem, "input"), props)
            return
        bus = elem.get("bus") or ("virtio" if kind == "passthrough" else "ps2")
        name = _INPUT.get((kind, bus))
        if name is None:
            return  # ps2 devices are part of the machine
        ident = self.next_id(elem, "input")
        if bus == "virtio":
            base = name.removesuffix("-pci")
            name = _virtio_driver(base, elem.get("model"), elem.find("address"))
        props: dict[str, Any] = {}
        if kind == "passthrough":
            source = elem.find("source")
            if source is not None and source.get("evdev"):
                props["evdev"] = source.get("evdev")
        self.device(elem, name, ident, props)

    def sound(self, elem: ET.Element) -> None:
        name = _SOUND.get(elem.get("model") or "")
        if name is not None:
            self.device(elem, name, self.next_id(elem, "sound"), {})

    def serial(self, elem: ET.Element) -> None:
        target = elem.find("target")
        name = _SERIAL_TARGET.get(target.get("type") or "") if target is not None else None
        if name is not None:
            self.device(elem, name, self.next_id(elem, "serial"), {})

    def channel(self, elem: ET.Element) -> None:
        target = elem.find("target")
        if target is not None and target.get("type") == "guestfwd":
            # libvirt implements guestfwd as a user-mode netdev (channel-guestfwd.args).
            ident = self.next_id(elem, "channel")
            forward = (
                f"tcp:{target.get('address', '')}:{target.get('port', '')}-chardev:char{ident}"
            )
            netdev = Netdev("user", ident, {"guestfwd": forward}, self.tree.span(elem))
            self.spec.netdevs.append(netdev)
            return
        # QEMU's clipboard agent is a chardev backend; its blocker matches the option.
        if elem.get("type") == "qemu-vdagent":
            ident = "char" + self.next_id(elem, "channel")
            self.option(elem, "chardev", f"qemu-vdagent,id={ident},name=vdagent")

    def tpm(self, elem: ET.Element) -> None:
        model = elem.get("model") or "tpm-tis"
        ident = self.next_id(elem, "tpm")
        self.device(elem, model, ident, {})
        # The backend decides migration: a host TPM (passthrough) stays behind, swtpm state
        # moves. libvirt writes -tpmdev passthrough|emulator,id=tpm-<id> (qemuBuildTPMBackendStr).
        backend = elem.find("backend")
        kind = backend.get("type") if backend is not None else None
        if kind in ("passthrough", "emulator"):
            self.option(elem, "tpmdev", f"{kind},id=tpm-{ident}")

    def crypto(self, elem: ET.Element) -> None:
        """<crypto model='virtio' type='qemu'><backend model='builtin'|'lkcf'/></crypto>:
        libvirt's -object cryptodev-backend-*,id=objcrypto<N> and virtio-crypto-pci."""
        if elem.get("model") != "virtio":
            return
        ident = self.next_id(elem, "crypto")
        backend = elem.find("backend")
        kind = (backend.get("model") if backend is not None else None) or "builtin"
        self.obj(elem, f"cryptodev-backend-{kind}", f"obj{ident}", {})
        name = _virtio_driver("virtio-crypto", None, elem.find("address"))
        self.device(elem, name, ident, {"cryptodev": f"obj{ident}"})

    def vsock(self, elem: ET.Element) -> None:
        name = _virtio_driver("vhost-vsock", elem.get("model"), elem.find("address"))
        self.device(elem, name, self.next_id(elem, "vsock"), {})

    def iommu(self, elem: ET.Element) -> None:
        model = elem.get("model")
        ident = self.next_id(elem, "iommu")
        driver = elem.find("driver")
        props: dict[str, Any] = {}
        if model in ("intel", "amd") and driver is not None:
            # intel-iommu-*.args: on/off switches stay strings, the rest become booleans.
            for attr, prop, as_string in (
                ("intremap", "intremap", True),
                ("eim", "eim", True),
                ("caching_mode", "caching-mode", False),
                ("iotlb", "device-iotlb", False),
            ):
                value = _state(driver.get(attr))
                if value is not None:
                    props[prop] = ("on" if value else "off") if as_string else value
            if driver.get("aw_bits"):
                props["aw-bits"] = self.number(driver, driver.get("aw_bits"), "aw_bits")
        if model == "intel":
            self.device(elem, "intel-iommu", ident, props)
        elif model == "amd":
            # No libvirt test pair shows its AMD IOMMU command line; without a pci-id the
            # amd-iommu blocker applies, which errs on the side of "not migratable".
            self.device(elem, "amd-iommu", ident, props)
        elif model == "virtio":
            self.device(elem, "virtio-iommu", ident, props)
        elif model == "smmuv3":
            self.spec.machine.options["iommu"] = "smmuv3"

    def memory_device(self, elem: ET.Element) -> None:
        model = elem.get("model")
        ident = self.next_id(elem, "dimm" if model == "dimm" else (model or "mem"))
        path_elem = elem.find("source/path")
        path = (path_elem.text or "").strip() if path_elem is not None else ""
        memdev = f"mem{ident}"
        props: dict[str, Any] = {}
        if path:
            props["mem-path"] = path
        if elem.get("access") == "shared":
            props["share"] = True
        if model == "sgx-epc":
            self.obj(elem, "memory-backend-epc", memdev, {})
            return
        if model in ("nvdimm", "virtio-pmem"):
            self.obj(elem, "memory-backend-file", memdev, props)
            driver = "nvdimm" if model == "nvdimm" else "virtio-pmem-pci"
        elif model in ("dimm", "virtio-mem"):
            self.obj(elem, "memory-backend-ram", memdev, props)
            driver = "pc-dimm" if model == "dimm" else "virtio-mem-pci"
        else:
            return
        self.device(elem, driver, ident, {"memdev": memdev})

    def rng(self, elem: ET.Element) -> None:
        ident = self.next_id(elem, "rng")
        backend = elem.find("backend")
        qom = _RNG_BACKEND.get(backend.get("model") or "") if backend is not None else None
        props: dict[str, Any] = {}
        if qom is not None:
            self.obj(elem, qom, f"obj{ident}", {})
            props["rng"] = f"obj{ident}"
        name = _virtio_driver("virtio-rng", elem.get("model"), elem.find("address"))
        self.device(elem, name, ident, props)

    def watchdog(self, elem: ET.Element) -> None:
        name = _WATCHDOG.get(elem.get("model") or "")
        if name is not None:
            self.device(elem, name, self.next_id(elem, "watchdog"), {})

    def redirdev(self, elem: ET.Element) -> None:
        if elem.get("bus", "usb") == "usb":
            self.device(elem, "usb-redir", self.next_id(elem, "redir"), {})

    def videos(self, videos: list[ET.Element]) -> None:
        # libvirt puts the primary video first and gives it the VGA-compatible device
        # (virtio-vga, qxl-vga); secondary heads get the plain PCI variant.
        def is_primary(video: ET.Element) -> bool:
            model = video.find("model")
            return model is not None and _state(model.get("primary")) is True

        primary = next((v for v in videos if is_primary(v)), None)
        ordered = [primary, *[v for v in videos if v is not primary]] if primary else videos
        for index, video in enumerate(ordered):
            model_elem = video.find("model")
            model = model_elem.get("type") if model_elem is not None else None
            if model_elem is None or model in (None, "none"):
                continue
            accel = model_elem.find("acceleration")
            gl = accel is not None and _state(accel.get("accel3d")) is True
            driver = video.find("driver")
            vhostuser = driver is not None and driver.get("name") == "vhostuser"
            first = index == 0
            if model == "virtio":
                if vhostuser:
                    name = "vhost-user-vga" if first else "vhost-user-gpu-pci"
                elif first:
                    name = "virtio-vga-gl" if gl else "virtio-vga"
                else:
                    name = "virtio-gpu-gl-pci" if gl else "virtio-gpu-pci"
            elif model == "qxl":
                name = "qxl-vga" if first else "qxl"
            elif model in _VIDEO:
                name = _VIDEO[model]
            else:
                continue  # xen, vbox, gop, ...: not QEMU devices; libvirt refuses them
            self.device(video, name, self.next_id(video, "video"), {})

    # ----- <qemu:commandline>, <qemu:override>

    def qemu_namespace(self, root: ET.Element) -> None:
        for commandline in root.findall(_Q + "commandline"):
            args = [arg.get("value", "") for arg in commandline.findall(_Q + "arg")]
            for env in commandline.findall(_Q + "env"):
                if env.get("name"):
                    self.spec.env[env.get("name", "")] = env.get("value", "")
            if args:
                self.merge_args(commandline, args)
        for override in root.findall(_Q + "override"):
            for target in override.findall(_Q + "device"):
                self.override(target)

    def merge_args(self, elem: ET.Element, args: list[str]) -> None:
        """libvirt appends the arguments to its own; QEMU reads them in that order."""
        # A leading dummy binary keeps a first bare argument (or A=b) from being taken as
        # the binary or an environment assignment.
        try:
            extra = parse_cmdline("qemu " + shlex.join(args), "<qemu:commandline>", defaults=False)
        except InputError as err:
            # The joined text is one line of our making: point at the XML instead.
            what = str(err).removeprefix("<qemu:commandline> line 1: ")
            raise self.fail(elem, what) from None
        spec = self.spec
        span = self.tree.span(elem)
        # The extra options' spans point into the joined text, which does not exist for
        # the reader; point them at the <qemu:commandline> element instead.
        for item in (*extra.devices, *extra.netdevs, *extra.objects, *extra.globals):
            item.span = span
        for option in extra.options:
            option.span = span
        if any(o.name == "cpu" for o in extra.options):
            extra.cpu.span = span
            spec.cpu = extra.cpu  # QEMU keeps only the last -cpu
        if any(o.name in ("machine", "M") for o in extra.options):
            if extra.machine.type is not None:
                spec.machine.type = extra.machine.type
            spec.machine.options.update(extra.machine.options)
        for name in extra.accel:
            if name not in spec.accel:
                spec.accel.append(name)
        if extra.accel and extra.accel[0] == spec.accel[0]:
            spec.accel_options.update(extra.accel_options)
        if extra.platform is not None:
            spec.platform = extra.platform
        spec.devices += extra.devices
        spec.netdevs += extra.netdevs
        spec.readconfigs += extra.readconfigs
        spec.device_gaps += extra.device_gaps
        # -set device.ID.PROP=VALUE on a device libvirt defines (util/qemu-config.c
        # qemu_set_option()): libvirt's own options come first, so the id is known here.
        for group, ident, prop, value in extra.unresolved_sets:
            targets = spec.devices if group == "device" else spec.netdevs
            found = [t for t in targets if t.id == ident]
            if not found:
                raise self.fail(elem, f'-set {group}.{ident}.{prop}: there is no {group} "{ident}"')
            for target in found:
                target.props[prop] = value
        spec.objects += extra.objects
        spec.globals += extra.globals
        spec.options += extra.options
        spec.positional += extra.positional

    def override(self, target: ET.Element) -> None:
        alias = target.get("alias")
        devices = [d for d in self.spec.devices if d.id == alias]
        for prop in target.findall(_Q + "frontend/" + _Q + "property"):
            name = prop.get("name")
            kind = prop.get("type")
            if not name:
                raise self.fail(prop, "missing the property name")
            for device in devices:
                if kind == "remove":
                    device.props.pop(name, None)
                    continue
                device.props[name] = self.override_value(prop, kind, prop.get("value"))

    def override_value(self, prop: ET.Element, kind: str | None, value: str | None) -> Any:
        if value is None:
            raise self.fail(prop, "missing the value")
        if kind == "string":
            return value
        if kind in ("signed", "unsigned"):
            return self.number(prop, value, kind)
        if kind == "bool":
            if value not in ("true", "false"):
                raise self.fail(prop, f"bool value {_oneline(value)!r} is not true or false")
            return value == "true"
        raise self.fail(prop, f"unknown type {_oneline(str(kind))!r}")


def _pci_address(address: ET.Element) -> str:
    """<address domain='0x0000' bus='0x03' slot='0x07' function='0x1'/> -> 0000:03:07.1."""

    def field(name: str, width: int) -> str:
        raw = (address.get(name) or "0").strip()
        try:
            return format(int(raw, 0) if raw.lower().startswith("0x") else int(raw), f"0{width}x")
        except ValueError:
            return raw

    return f"{field('domain', 4)}:{field('bus', 2)}:{field('slot', 2)}.{field('function', 1)}"


# --------------------------------------------------------------------------- API


def parse_domain_xml(text: str, source: str = "<stdin>") -> VmSpec:
    """Parse libvirt domain XML into a VmSpec; bad or hostile input -> InputError."""
    tree = _read_tree(text, source)
    return _Converter(tree, source).convert()


def load_domain_xml(path: str) -> VmSpec:
    """Read domain XML from ``path`` ("-" for stdin) and parse it, reading at most the limit."""
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            if sys.stdin is None:
                raise OSError("standard input is closed")
            stream = sys.stdin.buffer
            data = stream.read(MAX_XML_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_XML_BYTES + 1)
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError(f"{_oneline(name)}: cannot read the domain XML: {reason}") from None
    if len(data) > MAX_XML_BYTES:
        raise InputError(f"{_oneline(name)}: over the {_MIB} MiB limit for domain XML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{_oneline(name)}: not UTF-8 text (byte {err.start}): expected libvirt domain XML"
        ) from None
    return parse_domain_xml(text, name)
