"""Behaviour of migcheck.domainxml: libvirt domain XML -> the VmSpec of its QEMU command line.

Unit tests pin each mapping; the real-data test compares every libvirt test domain with
the command line libvirt generated for it (qemuxml2argvdata, ../shared/data).
"""

from __future__ import annotations

import io
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_DATA, require
from hypothesis import given, settings
from hypothesis import strategies as st

from migcheck.blockers import triggered
from migcheck.catalog import load_catalog
from migcheck.checks.host import _memory_paths
from migcheck.cmdline import parse_cmdline
from migcheck.dependencies import guest_dependencies
from migcheck.domainxml import (
    MAX_XML_BYTES,
    MAX_XML_DEPTH,
    MAX_XML_ELEMENTS,
    load_domain_xml,
    parse_domain_xml,
)
from migcheck.errors import InputError
from migcheck.vm import Device, VmSpec

LIBVIRT = SHARED_DATA / "libvirt/qemuxml2argvdata"
FUZZ = settings(max_examples=200, deadline=None)
CATALOG = load_catalog()
QNS = "http://libvirt.org/schemas/domain/qemu/1.0"


def dom(
    body: str = "",
    devices: str = "",
    kind: str = "kvm",
    machine: str = "pc-q35-8.2",
    extra: str = "",
) -> str:
    """A minimal domain around ``body`` (top-level elements) and ``devices``."""
    return (
        f"<domain type='{kind}' xmlns:qemu='{QNS}'>\n"
        "  <name>guest</name>\n"
        "  <memory unit='KiB'>1048576</memory>\n"
        f"  <os><type arch='x86_64' machine='{machine}'>hvm</type></os>\n"
        f"{body}\n"
        f"  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{devices}</devices>\n"
        f"{extra}\n"
        "</domain>\n"
    )


def parse(text: str) -> VmSpec:
    return parse_domain_xml(text, "guest.xml")


def error_of(text: str) -> str:
    with pytest.raises(InputError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message, "errors must be one paragraph"
    assert message.startswith("guest.xml"), "errors must name the source"
    return message


def drivers(spec: VmSpec) -> list[str]:
    return [d.driver for d in spec.devices]


def only_device(spec: VmSpec, driver: str) -> Device:
    found = [d for d in spec.devices if d.driver == driver]
    assert len(found) == 1, drivers(spec)
    return found[0]


def blockers(spec: VmSpec, warnings: bool = False) -> set[str]:
    """Blockers that make the guest unsafe (with ``warnings``, also the warning entries:
    postcopy-only refusals, host-backed identity)."""
    hits = triggered(spec, CATALOG.blockers)
    return {b.id for b, _ in hits if warnings or (b.severity == "block" and not b.postcopy_only)}


def capabilities(spec: VmSpec) -> set[str]:
    return set(guest_dependencies(spec, CATALOG, spec.machine.type))


def cmdline(text: str) -> VmSpec:
    return parse_cmdline("qemu-system-x86_64 -machine pc-q35-8.2 -accel kvm " + text, "x")


# --------------------------------------------------------------------------- domain, machine


@pytest.mark.parametrize(("kind", "accel"), [("kvm", ["kvm"]), ("qemu", ["tcg"])])
def test_domain_type_is_the_accelerator(kind: str, accel: list[str]) -> None:
    spec = parse(dom(kind=kind))
    assert spec.accel == accel
    assert spec.uses_kvm == (kind == "kvm")
    assert spec.binary == "/usr/bin/qemu-system-x86_64"
    assert spec.source == "guest.xml"


def test_machine_type_is_kept_as_written() -> None:
    # Aliases stay aliases: the machine checks resolve them per host, as libvirt would.
    assert parse(dom(machine="q35")).machine.type == "q35"
    assert parse(dom(machine="pc-i440fx-9.0")).machine.type == "pc-i440fx-9.0"
    no_machine = "<domain type='kvm'><os><type arch='x86_64'>hvm</type></os></domain>"
    assert parse(no_machine).machine.type is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("<domain><os/></domain>", "missing the type attribute"),
        ("<domain type='lxc'/>", "'lxc' is not a QEMU guest"),
        ("<domain type='xen'/>", "'xen' is not a QEMU guest"),
    ],
)
def test_non_qemu_domains_are_refused(text: str, needle: str) -> None:
    assert needle in error_of(text)


# --------------------------------------------------------------------------- CPU


def test_host_passthrough_is_host_and_migratable_by_default() -> None:
    cpu = parse(dom("<cpu mode='host-passthrough'/>")).cpu
    assert (cpu.model, cpu.features) == ("host", {"migratable": True})


def test_host_passthrough_migratable_off_trips_the_blocker() -> None:
    spec = parse(dom("<cpu mode='host-passthrough' migratable='off'/>"))
    assert spec.cpu.features == {"migratable": False}
    assert blockers(spec) == blockers(cmdline("-cpu host,migratable=off")) == {"cpu-migratable-off"}


def test_maximum_is_max() -> None:
    cpu = parse(dom("<cpu mode='maximum' migratable='on'/>")).cpu
    assert (cpu.model, cpu.features) == ("max", {"migratable": True})


def test_host_model_is_judged_as_migratable_host_cpu() -> None:
    # libvirt expands host-model at start into the host's migratable features; the
    # passthrough check judges exactly that (see the module docstring).
    xml = dom(
        "<cpu mode='host-model'><model fallback='allow'/>"
        "<feature policy='disable' name='vmx'/></cpu>"
    )
    cpu = parse(xml).cpu
    assert cpu.model == "host"
    assert cpu.features == {"migratable": True, "vmx": False}


def test_match_minimum_runs_as_the_host_cpu() -> None:
    # cpu-minimum1.args: <model>486</model> with match='minimum' becomes the host's CPU.
    cpu = parse(dom("<cpu match='minimum'><model>486</model></cpu>")).cpu
    assert (cpu.model, cpu.features["migratable"]) == ("host", True)


def test_custom_model_and_feature_policies() -> None:
    xml = dom(
        "<cpu mode='custom' match='exact'><model fallback='forbid'>EPYC-Rome</model>"
        "<feature policy='require' name='x2apic'/>"
        "<feature policy='force' name='hypervisor'/>"
        "<feature policy='disable' name='svm'/>"
        "<feature policy='forbid' name='xsaves'/>"
        "<feature policy='optional' name='sse4a'/>"
        "<feature name='topoext'/></cpu>"
    )
    cpu = parse(xml).cpu
    assert cpu.model == "EPYC-Rome"
    # optional leaves the decision to libvirt on the host: nothing is passed for it.
    assert cpu.features == {
        "x2apic": True,
        "hypervisor": True,
        "svm": False,
        "xsaves": False,
        "topoext": True,  # the default policy is require
    }


def test_custom_without_model_is_the_default_model() -> None:
    assert parse(dom("<cpu><topology sockets='1' cores='2' threads='1'/></cpu>")).cpu.model is None
    assert parse(dom()).cpu.model is None


def test_feature_names_are_translated_to_qemu_spellings() -> None:
    # libvirt cpu_map/x86_features.xml <alias source='qemu'> entries; cpu-translation.args.
    xml = dom(
        "<cpu><model>Haswell</model>"
        "<feature name='pclmuldq'/><feature name='ds_cpl'/><feature name='lahf_lm'/>"
        "<feature name='sse4.1'/><feature name='cmt'/>"
        "<feature name='vmx-invvpid-single-context-noglobals'/></cpu>"
    )
    assert list(parse(xml).cpu.features) == [
        "pclmulqdq",
        "ds-cpl",
        "lahf-lm",
        "sse4.1",
        "cmt",  # only a Linux alias ("cqm") exists: libvirt passes cmt unchanged
        "vmx-invept-single-context-noglobals",
    ]


def test_check_full_means_enforce() -> None:
    full = parse(dom("<cpu mode='custom' check='full'><model>Haswell</model></cpu>")).cpu
    partial = parse(dom("<cpu mode='custom' check='partial'><model>Haswell</model></cpu>")).cpu
    assert full.features == {"enforce": True}
    assert partial.features == {}


def test_vendor_id_is_the_vendor_property() -> None:
    xml = dom("<cpu mode='host-model'><model vendor_id='Libvirt QEMU'/></cpu>")
    assert parse(xml).cpu.props == {"vendor": "Libvirt QEMU"}


def test_invtsc_blocks_unless_the_tsc_frequency_is_pinned() -> None:
    invtsc = "<cpu><model>Haswell</model><feature policy='require' name='invtsc'/></cpu>"
    unpinned = parse(dom(invtsc))
    pinned = parse(
        dom(invtsc + "<clock offset='utc'><timer name='tsc' frequency='2500000000'/></clock>")
    )
    assert "invtsc" in blockers(unpinned)
    assert pinned.cpu.props == {"tsc-frequency": "2500000000"}
    assert "invtsc" not in blockers(pinned)
    assert blockers(pinned) == blockers(cmdline("-cpu Haswell,invtsc=on,tsc-frequency=2500000000"))


def test_cpu_caches_and_phys_bits() -> None:
    spec = parse(
        dom(
            "<cpu mode='host-passthrough'><cache mode='passthrough'/>"
            "<maxphysaddr mode='passthrough' limit='39'/></cpu>"
        )
    )
    assert spec.cpu.features == {
        "migratable": True,
        "host-cache-info": True,
        "l3-cache": False,
        "host-phys-bits": True,
    }
    assert spec.cpu.props == {"host-phys-bits-limit": "39"}


@pytest.mark.parametrize(
    ("xml", "needle"),
    [
        ("<cpu mode='guess'/>", "unknown mode 'guess'"),
        ("<cpu><model>x</model><feature policy='maybe' name='a'/></cpu>", "unknown policy"),
        ("<cpu><model>x</model><feature policy='require'/></cpu>", "missing the feature name"),
        ("<clock><timer name='tsc' frequency='fast'/></clock>", "'fast' is not a number"),
    ],
)
def test_bad_cpu_definitions_name_the_element_and_line(xml: str, needle: str) -> None:
    message = error_of(dom(xml))
    assert needle in message
    assert "guest.xml line 5:" in message


# --------------------------------------------------------------------------- <features>


def test_hyperv_passthrough_trips_its_blocker() -> None:
    spec = parse(dom("<features><hyperv mode='passthrough'/></features>"))
    assert spec.cpu.features == {"hv-passthrough": True}
    assert blockers(spec) == blockers(cmdline("-cpu host,hv-passthrough=on"))


def test_hyperv_enlightenments_match_libvirts_command_line() -> None:
    xml = dom(
        "<features><hyperv mode='custom'>"
        "<relaxed state='on'/><vapic state='off'/><spinlocks state='on' retries='8191'/>"
        "<vpindex state='on'/><synic state='on'/><stimer state='on'><direct state='on'/></stimer>"
        "<vendor_id state='on' value='KVM Hv'/><tlbflush state='on'><extended state='on'/>"
        "</tlbflush><emsr_bitmap state='on'/></hyperv></features>"
    )
    cpu = parse(xml).cpu
    # state='off' writes nothing (hyperv-off.args).
    assert cpu.features == {
        "hv-relaxed": True,
        "hv-vpindex": True,
        "hv-synic": True,
        "hv-stimer": True,
        "hv-stimer-direct": True,
        "hv-tlbflush": True,
        "hv-tlbflush-ext": True,
        "hv-emsr-bitmap": True,
    }
    assert cpu.props == {"hv-spinlocks": "0x1fff", "hv-vendor-id": "KVM Hv"}
    assert {"hyperv-synic", "hyperv-vpindex", "hyperv-tlbflush"} <= capabilities(parse(xml))


def test_kvm_features_and_dirty_ring() -> None:
    xml = dom(
        "<features><kvm><hidden state='on'/><hint-dedicated state='on'/>"
        "<poll-control state='on'/><pv-ipi state='off'/><dirty-ring state='on' size='4096'/>"
        "</kvm><pmu/><pvspinlock state='off'/><apic eoi='on'/></features>"
    )
    spec = parse(xml)
    assert spec.cpu.features == {
        "kvm": False,
        "kvm-hint-dedicated": True,
        "kvm-poll-control": True,
        "kvm-pv-ipi": False,
        "pmu": True,  # a bare <pmu/> is on (pmu-feature.args)
        "kvm-pv-unhalt": False,
        "kvm-pv-eoi": True,
    }
    assert spec.accel_options == {"dirty-ring-size": "4096"}
    assert {"kvm-dirty-ring", "kvm-poll-control", "pmu"} <= capabilities(spec)
    # A TCG guest has no KVM dirty ring.
    assert parse(xml.replace("type='kvm'", "type='qemu'")).accel_options == {}


def test_ioapic_qemu_is_a_split_irqchip() -> None:
    spec = parse(dom("<features><ioapic driver='qemu'/></features>"))
    assert spec.machine.options == {"kernel-irqchip": "split"}
    assert "kvm-split-irqchip" in capabilities(spec)


def test_timers() -> None:
    spec = parse(
        dom(
            "<clock offset='utc'><timer name='kvmclock' present='no'/>"
            "<timer name='hypervclock' present='yes'/></clock>"
        )
    )
    assert spec.cpu.features == {"kvmclock": False, "hv-time": True}


# --------------------------------------------------------------------------- interfaces


@pytest.mark.parametrize(
    ("kind", "source", "netdev"),
    [
        ("network", "<source network='default'/>", "tap"),
        ("bridge", "<source bridge='br0'/>", "tap"),
        ("ethernet", "<target dev='tap0'/>", "tap"),
        ("direct", "<source dev='eth0' mode='bridge'/>", "tap"),  # macvtap is a tap
        ("user", "", "user"),
        ("vhostuser", "<source type='unix' path='/run/vu.sock' mode='client'/>", "vhost-user"),
        ("vdpa", "<source dev='/dev/vhost-vdpa-0'/>", "vhost-vdpa"),
        ("server", "<source address='127.0.0.1' port='5558'/>", "socket"),
        ("mcast", "<source address='230.0.0.1' port='5558'/>", "socket"),
    ],
)
def test_interface_types_become_netdevs(kind: str, source: str, netdev: str) -> None:
    xml = dom(devices=f"<interface type='{kind}'>{source}<model type='virtio'/></interface>")
    spec = parse(xml)
    assert [(n.type, n.id) for n in spec.netdevs] == [(netdev, "hostnet0")]
    nic = only_device(spec, "virtio-net-pci")
    assert (nic.id, nic.props["netdev"]) == ("net0", "hostnet0")


def test_passt_backend_is_a_stream_netdev() -> None:
    xml = dom(devices="<interface type='user'><backend type='passt'/></interface>")
    assert [n.type for n in parse(xml).netdevs] == ["stream"]


@pytest.mark.parametrize(
    ("model", "driver"),
    [
        (None, "rtl8139"),  # libvirt's x86 default
        ("virtio", "virtio-net-pci"),
        ("ViRtIo", "virtio-net-pci"),  # enumerated models match case-insensitively
        ("virtio-transitional", "virtio-net-pci-transitional"),
        ("virtio-non-transitional", "virtio-net-pci-non-transitional"),
        ("e1000", "e1000"),
        ("e1000e", "e1000e"),
        ("idontexist", "idontexist"),  # unknown models pass through (net-many-models.args)
    ],
)
def test_nic_models(model: str | None, driver: str) -> None:
    model_xml = f"<model type='{model}'/>" if model else ""
    xml = dom(
        devices=f"<interface type='user'><mac address='52:54:00:00:00:01'/>{model_xml}</interface>"
    )
    nic = parse(xml).devices[0]
    assert nic.driver == driver
    assert nic.props["mac"] == "52:54:00:00:00:01"


def test_virtio_mmio_nic_is_the_device_variant() -> None:
    xml = dom(
        devices="<interface type='user'><model type='virtio'/>"
        "<address type='virtio-mmio'/></interface>"
    )
    assert drivers(parse(xml)) == ["virtio-net-device"]


def test_offloads_use_qemus_property_names() -> None:
    # Spellings from net-virtio-disable-offloads.args; USO from hw/net/virtio-net.c.
    xml = dom(
        devices="<interface type='network'><source network='default'/><model type='virtio'/>"
        "<driver><host csum='off' gso='off' tso4='off' tso6='off' ecn='off' ufo='off'"
        " mrg_rxbuf='off' uso='on'/><guest csum='off' tso4='off' tso6='off' ecn='off'"
        " ufo='on' uso4='off' uso6='on'/></driver></interface>"
    )
    props = parse(xml).devices[0].props
    assert props == {
        "netdev": "hostnet0",
        "csum": False,
        "gso": False,
        "host_tso4": False,
        "host_tso6": False,
        "host_ecn": False,
        "host_ufo": False,
        "mrg_rxbuf": False,
        "host_uso": True,
        "guest_csum": False,
        "guest_tso4": False,
        "guest_tso6": False,
        "guest_ecn": False,
        "guest_ufo": True,
        "guest_uso4": False,
        "guest_uso6": True,
    }
    # ... so the tap-dependent offload capabilities see them as on a command line.
    assert {"tap-ufo", "tap-uso"} <= capabilities(parse(xml))


def test_vhost_only_when_asked_for_explicitly() -> None:
    plain = "<interface type='bridge'><source bridge='br0'/><model type='virtio'/>"
    asked = parse(dom(devices=plain + "<driver name='vhost' queues='4'/></interface>"))
    default = parse(dom(devices=plain + "</interface>"))
    qemu = parse(dom(devices=plain + "<driver name='qemu'/></interface>"))
    rtl = parse(
        dom(devices=plain.replace("virtio", "rtl8139") + "<driver name='vhost'/></interface>")
    )
    assert asked.netdevs[0].props == {"vhost": True}
    assert "vhost-net" in capabilities(asked)
    # libvirt falls back to userspace silently when /dev/vhost-net is unusable.
    for spec in (default, qemu, rtl):
        assert spec.netdevs[0].props == {}
        assert "vhost-net" not in capabilities(spec)


def test_hostdev_interface_is_vfio_with_failover() -> None:
    xml = dom(
        devices="<interface type='hostdev' managed='yes'><source>"
        "<address type='pci' domain='0x0000' bus='0x03' slot='0x07' function='0x1'/>"
        "</source><teaming type='transient' persistent='ua-backup0'/></interface>"
    )
    spec = parse(xml)
    assert spec.netdevs == []
    dev = only_device(spec, "vfio-pci")
    assert dev.props == {"failover_pair_id": "ua-backup0"}
    assert blockers(spec) == {"vfio-pci"}


def test_aliases_name_devices_and_netdevs() -> None:
    xml = dom(
        devices="<interface type='user'><model type='virtio'/><alias name='ua-nic'/>"
        "<teaming type='persistent'/></interface>"
    )
    spec = parse(xml)
    assert spec.netdevs[0].id == "hostua-nic"
    assert (spec.devices[0].id, spec.devices[0].props["failover"]) == ("ua-nic", True)


def test_guestfwd_channel_is_a_user_netdev() -> None:
    xml = dom(
        devices="<channel type='unix'><source mode='bind' path='/tmp/s'/>"
        "<target type='guestfwd' address='10.0.2.1' port='4600'/></channel>"
    )
    (netdev,) = parse(xml).netdevs
    assert (netdev.type, netdev.props) == (
        "user",
        {"guestfwd": "tcp:10.0.2.1:4600-chardev:charchannel0"},
    )


# --------------------------------------------------------------------------- host devices


def test_pci_hostdev_is_vfio_and_blocks() -> None:
    xml = dom(
        devices="<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>"
        "<source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/>"
        "</source></hostdev>"
    )
    spec = parse(xml)
    dev = only_device(spec, "vfio-pci")
    assert (dev.id, dev.props) == ("hostdev0", {"host": "0000:3b:00.0"})
    assert blockers(spec) == blockers(cmdline("-device vfio-pci,host=0000:3b:00.0")) == {"vfio-pci"}


@pytest.mark.parametrize(
    ("hostdev", "driver"),
    [
        ("type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source>", "usb-host"),
        (
            "type='mdev' model='vfio-pci'><source><address uuid='53764d0e-85a0-42b4-af5c-"
            "2046b460b1dc'/></source>",
            "vfio-pci",
        ),
        (
            "type='mdev' model='vfio-pci' display='on' ramfb='on'><source><address uuid='5'/>"
            "</source>",
            "vfio-pci-nohotplug",
        ),
        (
            "type='scsi_host'><source protocol='vhost' wwpn='naa.5123456789abcde0'/>",
            "vhost-scsi-pci",
        ),
        (
            "type='scsi'><source><adapter name='scsi_host0'/><address bus='0' target='0' "
            "unit='0'/></source>",
            "scsi-generic",
        ),
    ],
)
def test_other_hostdevs(hostdev: str, driver: str) -> None:
    spec = parse(dom(devices=f"<hostdev mode='subsystem' {hostdev}</hostdev>"))
    assert drivers(spec) == [driver]


# --------------------------------------------------------------------------- confidential


@pytest.mark.parametrize(
    ("kind", "qom", "blocker"),
    [
        ("sev", "sev-guest", "sev"),
        ("sev-snp", "sev-snp-guest", "sev-snp"),
        ("tdx", "tdx-guest", "tdx"),
    ],
)
def test_launch_security_objects(kind: str, qom: str, blocker: str) -> None:
    xml = dom(
        f"<launchSecurity type='{kind}'><cbitpos>47</cbitpos>"
        "<reducedPhysBits>1</reducedPhysBits><policy>0x0005</policy></launchSecurity>"
    )
    spec = parse(xml)
    (obj,) = spec.objects
    assert (obj.qom_type, obj.id) == (qom, "lsec0")
    assert obj.props == {"cbitpos": 47, "reduced-phys-bits": 1, "policy": 5}
    assert spec.machine.options["confidential-guest-support"] == "lsec0"
    assert blocker in blockers(spec)


# --------------------------------------------------------------------------- memory


def test_hugepages_are_file_backed_at_the_hugetlbfs_mount() -> None:
    spec = parse(dom("<memoryBacking><hugepages/><access mode='shared'/></memoryBacking>"))
    (obj,) = spec.objects
    assert obj.qom_type == "memory-backend-file"
    assert obj.props == {"mem-path": "/dev/hugepages", "share": True, "prealloc": True}
    assert _memory_paths_of(spec) == ["/dev/hugepages"]


def test_system_size_pages_are_ordinary_memory() -> None:
    # hugepages-default-system-size.args: 4 KiB "hugepages" stay memory-backend-ram.
    xml = dom("<memoryBacking><hugepages><page size='4' unit='KiB'/></hugepages></memoryBacking>")
    assert parse(xml).objects == []
    sized = dom("<memoryBacking><hugepages><page size='1' unit='G'/></hugepages></memoryBacking>")
    assert parse(sized).objects[0].props["mem-path"] == "/dev/hugepages"


@pytest.mark.parametrize(
    ("backing", "qom", "props"),
    [
        ("<source type='memfd'/><access mode='shared'/>", "memory-backend-memfd", {"share": True}),
        ("<hugepages/><source type='memfd'/>", "memory-backend-memfd", {"hugetlb": True}),
        (
            "<source type='file'/><allocation mode='immediate'/>",
            "memory-backend-file",
            {"mem-path": "/var/lib/libvirt/qemu/ram", "prealloc": True},
        ),
        (
            "<access mode='shared'/>",
            "memory-backend-file",
            {"mem-path": "/var/lib/libvirt/qemu/ram", "share": True},
        ),
    ],
)
def test_memory_sources(backing: str, qom: str, props: dict[str, Any]) -> None:
    (obj,) = parse(dom(f"<memoryBacking>{backing}</memoryBacking>")).objects
    assert (obj.qom_type, obj.props) == (qom, props)


def test_plain_memory_needs_no_backend_object() -> None:
    assert parse(dom("<memoryBacking><nosharepages/></memoryBacking>")).objects == []


def test_memory_devices() -> None:
    spec = parse(
        dom(
            devices="<memory model='nvdimm' access='shared'><source><path>/tmp/nvdimm</path>"
            "</source><target><size unit='KiB'>523264</size></target></memory>"
            "<memory model='sgx-epc'><target><size unit='KiB'>16384</size></target></memory>"
        )
    )
    assert [(o.qom_type, o.props) for o in spec.objects] == [
        ("memory-backend-file", {"mem-path": "/tmp/nvdimm", "share": True}),
        ("memory-backend-epc", {}),
    ]
    assert drivers(spec) == ["nvdimm"]
    assert "sgx" in capabilities(spec)


def _memory_paths_of(spec: VmSpec) -> list[str]:
    class _Ctx:  # the host check only reads ctx.vm
        vm = spec

    return _memory_paths(_Ctx())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- other devices


def test_shmem_roles_and_the_ivshmem_blocker() -> None:
    xml = dom(
        devices="<shmem name='peer0' role='peer'><model type='ivshmem-plain'/>"
        "<size unit='M'>8</size></shmem>"
        "<shmem name='master0' role='master'><model type='ivshmem-plain'/></shmem>"
        "<shmem name='bell'><model type='ivshmem-doorbell'/><server path='/tmp/s'/></shmem>"
    )
    spec = parse(xml)
    assert [(d.driver, d.id, d.props.get("master")) for d in spec.devices] == [
        ("ivshmem-plain", "peer0", "off"),
        ("ivshmem-plain", "master0", "on"),
        ("ivshmem-doorbell", "bell", None),
    ]
    # shmem-plain-doorbell.args: each plain region is a shared file under /dev/shm.
    assert spec.objects[0].props == {"mem-path": "/dev/shm/peer0", "size": 8 << 20, "share": True}
    assert spec.objects[1].props["size"] == 4 << 20  # libvirt's default size
    hits = [what for b, what in triggered(spec, CATALOG.blockers) if b.id == "ivshmem"]
    assert hits == ["-device ivshmem-plain id=peer0", "-device ivshmem-doorbell id=bell"]


def test_filesystems() -> None:
    xml = dom(
        devices="<filesystem type='mount' accessmode='mapped'><source dir='/export'/>"
        "<target dir='share'/></filesystem>"
        "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>"
        "<source dir='/srv'/><target dir='srv'/></filesystem>"
        "<filesystem accessmode='passthrough' model='virtio-non-transitional'>"
        "<source dir='/x'/><target dir='x'/></filesystem>"
    )
    spec = parse(xml)
    assert drivers(spec) == [
        "virtio-9p-pci",
        "vhost-user-fs-pci",
        "virtio-9p-pci-non-transitional",
    ]
    assert spec.devices[0].props == {"fsdev": "fsdev-fs0", "mount_tag": "share"}
    assert spec.devices[1].props == {"tag": "srv"}
    assert blockers(spec) == {"virtio-9p", "vhost-user-fs"}


def test_video_primary_gets_the_vga_variant() -> None:
    xml = dom(
        devices="<video><model type='virtio' heads='1'><acceleration accel3d='yes'/></model>"
        "</video><video><model type='virtio' heads='1' primary='yes'/></video>"
        "<video><model type='qxl'/></video><video><model type='none'/></video>"
    )
    # The primary='yes' head moves first, as libvirt orders them.
    assert drivers(parse(xml)) == ["virtio-vga", "virtio-gpu-gl-pci", "qxl"]
    gl = parse(
        dom(devices="<video><model type='virtio'><acceleration accel3d='yes'/></model></video>")
    )
    assert drivers(gl) == ["virtio-vga-gl"]
    assert blockers(gl) == {"virtio-gpu-virgl"}
    user = parse(dom(devices="<video><driver name='vhostuser'/><model type='virtio'/></video>"))
    assert drivers(user) == ["vhost-user-vga"]


def test_nvme_controller_blocks_but_an_nvme_host_disk_does_not() -> None:
    controller = parse(dom(devices="<controller type='nvme' index='0'/>"))
    assert drivers(controller) == ["nvme"]
    assert blockers(controller) == {"nvme"}
    implied = parse(
        dom(
            devices="<disk type='file' device='disk'><source file='/d.img'/>"
            "<target dev='nvme0n1' bus='nvme'/></disk>"
        )
    )
    assert drivers(implied) == ["nvme", "nvme-ns"]
    # <disk type='nvme'> is a *host* NVMe opened by QEMU's userspace block driver.
    host = parse(
        dom(
            devices="<disk type='nvme' device='disk'><driver name='qemu' type='raw'/>"
            "<source type='pci' managed='yes' namespace='1'><address domain='0x0000'"
            " bus='0x01' slot='0x00' function='0x0'/></source>"
            "<target dev='vda' bus='virtio'/></disk>"
        )
    )
    assert drivers(host) == ["virtio-blk-pci"]
    assert blockers(host) == set()


def test_disks_record_their_format_node() -> None:
    spec = parse(
        dom(
            devices="<disk type='file' device='disk'><driver name='qemu' type='vmdk'/>"
            "<source file='/a.vmdk'/><target dev='sda' bus='sata'/></disk>"
            "<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>"
        )
    )
    assert drivers(spec) == ["ide-hd", "ide-cd"]
    assert [(o.name, o.value) for o in spec.options if o.name == "blockdev"] == [
        ("blockdev", "driver=vmdk,node-name=libvirt-sata-disk0-format")
    ]


@pytest.mark.parametrize(
    ("xml", "driver", "blocker"),
    [
        (
            "<input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/></input>",
            "virtio-input-host-pci",
            "virtio-input-host",
        ),
        ("<sound model='usb'/>", "usb-audio", "usb-unmigratable"),
        (
            "<serial type='pty'><target type='usb-serial'/></serial>",
            "usb-serial",
            "usb-unmigratable",
        ),
        ("<iommu model='amd'/>", "amd-iommu", "amd-iommu"),
        ("<vsock model='virtio'><cid auto='yes'/></vsock>", "vhost-vsock-pci", None),
        ("<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>", "tpm-crb", None),
        ("<input type='tablet' bus='usb'/>", "usb-tablet", None),
        (
            "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
            "virtio-rng-pci",
            None,
        ),
        ("<redirdev bus='usb' type='spicevmc'/>", "usb-redir", None),
    ],
)
def test_devices_checks_care_about(xml: str, driver: str, blocker: str | None) -> None:
    spec = parse(dom(devices=xml))
    assert drivers(spec) == [driver]
    assert blockers(spec) == ({blocker} if blocker else set())


def test_vdagent_channel_trips_the_chardev_blocker() -> None:
    spec = parse(
        dom(
            devices="<channel type='qemu-vdagent'><source><clipboard copypaste='yes'/>"
            "</source><target type='virtio' name='com.redhat.spice.0'/></channel>"
        )
    )
    assert [(o.name, o.value) for o in spec.options if o.name == "chardev"] == [
        ("chardev", "qemu-vdagent,id=charchannel0,name=vdagent")
    ]
    assert blockers(spec) == {"qemu-vdagent"}


def test_intel_iommu_properties() -> None:
    spec = parse(
        dom(
            devices="<iommu model='intel'><driver intremap='on' eim='on' "
            "caching_mode='on' aw_bits='48'/></iommu>"
        )
    )
    dev = only_device(spec, "intel-iommu")
    assert dev.props == {"intremap": "on", "eim": "on", "caching-mode": True, "aw-bits": 48}
    assert "kvm-x2apic-api" in capabilities(spec)


def test_spans_point_at_the_xml_element() -> None:
    text = dom(devices="\n<hostdev mode='subsystem' type='usb'/>")
    (dev,) = parse(text).devices
    assert dev.span is not None
    assert dev.span.line == 7
    assert text[dev.span.start :].startswith("<hostdev")
    # Offsets count characters, also after non-ASCII text.
    text = dom("<title>Gäste ☃</title>", devices="<hostdev mode='subsystem' type='usb'/>")
    (dev,) = parse(text).devices
    assert dev.span is not None and text[dev.span.start :].startswith("<hostdev")
    assert parse(text).text == ""  # nothing to rewrite byte for byte


# --------------------------------------------------------------------------- qemu namespace


def test_qemu_commandline_globals_and_devices_merge() -> None:
    extra = (
        "<qemu:commandline>"
        "<qemu:arg value='-global'/><qemu:arg value='virtio-net-pci.host_uso=off'/>"
        "<qemu:arg value='-device'/><qemu:arg value='vfio-pci,host=0000:3b:00.0'/>"
        "<qemu:arg value='-machine'/><qemu:arg value='bus-lock-ratelimit=1000'/>"
        "<qemu:env name='QEMU_AUDIO_DRV' value='none'/>"
        "</qemu:commandline>"
    )
    spec = parse(dom(extra=extra))
    assert [(g.driver, g.property, g.value) for g in spec.globals] == [
        ("virtio-net-pci", "host_uso", "off")
    ]
    assert drivers(spec) == ["vfio-pci"]
    assert spec.machine.type == "pc-q35-8.2"  # -machine without a type keeps libvirt's
    assert spec.machine.options == {"bus-lock-ratelimit": "1000"}
    assert spec.env == {"QEMU_AUDIO_DRV": "none"}
    assert "vfio-pci" in blockers(spec)
    assert "kvm-bus-lock-exit" in capabilities(spec)
    assert all(o.span.line == 7 for o in spec.options if o.name not in ("smp", "m"))


def test_qemu_commandline_set_reaches_libvirts_devices() -> None:
    # util/qemu-config.c qemu_set_option(): libvirt's -device comes first, so a -set in
    # <qemu:commandline> changes it; an id libvirt does not define is refused, as QEMU does.
    devices = "<interface type='user'><model type='virtio'/><alias name='ua-nic'/></interface>"
    extra = (
        "<qemu:commandline><qemu:arg value='-set'/>"
        "<qemu:arg value='device.ua-nic.host_mtu=9000'/></qemu:commandline>"
    )
    spec = parse(dom(devices=devices, extra=extra))
    (nic,) = [d for d in spec.devices if d.id == "ua-nic"]
    assert nic.props["host_mtu"] == "9000"
    with pytest.raises(InputError, match="no device"):
        parse(dom(devices=devices, extra=extra.replace("ua-nic", "nope")))


def test_qemu_commandline_frontend_options_make_the_device_list_incomplete() -> None:
    extra = (
        "<qemu:commandline><qemu:arg value='-nic'/><qemu:arg value='user,model=e1000'/>"
        "<qemu:arg value='-readconfig'/><qemu:arg value='extra.cfg'/></qemu:commandline>"
    )
    spec = parse(dom(extra=extra))
    assert spec.device_gaps and "-nic" in spec.device_gaps[0]
    (rc,) = spec.readconfigs
    assert rc.error is not None


def test_qemu_commandline_cpu_replaces_libvirts() -> None:
    # QEMU keeps only the last -cpu; libvirt's comes first.
    extra = (
        "<qemu:commandline><qemu:arg value='-cpu'/><qemu:arg value='EPYC,+invtsc'/>"
        "</qemu:commandline>"
    )
    spec = parse(dom("<cpu mode='host-passthrough'/>", extra=extra))
    assert (spec.cpu.model, spec.cpu.features) == ("EPYC", {"invtsc": True})
    assert "invtsc" in blockers(spec)


def test_qemu_commandline_bare_words_stay_positional() -> None:
    # qemu-ns-commandline.xml passes a lone ARGUMENT; it must not become the binary.
    extra = "<qemu:commandline><qemu:arg value='ARGUMENT'/></qemu:commandline>"
    spec = parse(dom(extra=extra))
    assert spec.binary == "/usr/bin/qemu-system-x86_64"
    assert spec.positional == ["ARGUMENT"]


def test_qemu_commandline_errors_name_the_xml_line() -> None:
    extra = "<qemu:commandline><qemu:arg value='-device'/></qemu:commandline>"
    message = error_of(dom(extra=extra))
    assert message == (
        "guest.xml line 7: <qemu:commandline>: "
        "-device: needs an argument, but the command line ends here"
    )


def test_qemu_namespace_prefix_does_not_matter() -> None:
    text = (
        "<domain type='kvm' xmlns:q='http://libvirt.org/schemas/domain/qemu/1.0'>"
        "<q:commandline><q:arg value='-object'/><q:arg value='sev-guest,id=s'/></q:commandline>"
        "</domain>"
    )
    assert [o.qom_type for o in parse(text).objects] == ["sev-guest"]


def test_qemu_override_sets_device_properties() -> None:
    devices = (
        "<interface type='network'><source network='default'/><model type='virtio'/>"
        "<alias name='ua-net'/></interface>"
    )
    override = (
        "<qemu:override><qemu:device alias='ua-net'><qemu:frontend>"
        "<qemu:property name='host_uso' type='bool' value='false'/>"
        "<qemu:property name='guest_uso4' type='bool' value='true'/>"
        "<qemu:property name='guest_uso4' type='remove'/>"
        "<qemu:property name='x-txburst' type='signed' value='-4'/>"
        "<qemu:property name='tx' type='string' value='bh'/>"
        "</qemu:frontend></qemu:device><qemu:device alias='nobody'><qemu:frontend>"
        "<qemu:property name='x' type='string' value='y'/></qemu:frontend></qemu:device>"
        "</qemu:override>"
    )
    nic = parse(dom(devices=devices, extra=override)).devices[0]
    assert nic.props == {"netdev": "hostua-net", "host_uso": False, "x-txburst": -4, "tx": "bh"}


@pytest.mark.parametrize(
    ("prop", "needle"),
    [
        ("<qemu:property name='a' type='bool' value='yes'/>", "is not true or false"),
        ("<qemu:property name='a' type='unsigned' value='lots'/>", "'lots' is not a number"),
        ("<qemu:property name='a' type='float' value='1'/>", "unknown type 'float'"),
        ("<qemu:property type='string' value='1'/>", "missing the property name"),
    ],
)
def test_bad_overrides(prop: str, needle: str) -> None:
    extra = (
        f"<qemu:override><qemu:device alias='net0'><qemu:frontend>{prop}"
        "</qemu:frontend></qemu:device></qemu:override>"
    )
    assert needle in error_of(dom(devices="<interface type='user'/>", extra=extra))


# --------------------------------------------------------------------------- hostile input

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<domain type='kvm'><name>&lol9;</name></domain>
"""


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (BILLION_LAUGHS, "line 2: refusing a DOCTYPE"),
        ("<!DOCTYPE domain><domain type='kvm'/>", "refusing a DOCTYPE"),
        (
            "\ufeff<?xml version='1.0'?>\n<!-- c -->\n<?pi x?>\n<!doctype domain>\n<domain/>",
            "line 4: refusing a DOCTYPE",
        ),
        (
            "<?xml version='1.0'?><!DOCTYPE d SYSTEM 'file:///etc/passwd'><domain>&x;</domain>",
            "refusing a DOCTYPE",
        ),
        ("<domain type='kvm'><name>&xxe;</name></domain>", "undefined entity"),
        ("qemu-system-x86_64 -machine q35 -accel kvm", "line 1, column 1: not well-formed XML"),
        ("", "line 1, column 1: not well-formed XML (no element found)"),
        (
            "<domain type='kvm'>\n  <name>x</nam>\n</domain>",
            "line 2, column 12: not well-formed XML (mismatched tag)",
        ),
        ("<domain type='kvm'/><domain/>", "junk after document element"),
        ("<network><name>default</name></network>", "root element is <network>, expected"),
        ("<x:domain xmlns:x='urn:x' type='kvm'/>", "root element is <{urn:x}domain>"),
        ("<domain type='kvm'>" + "<a>" * (MAX_XML_DEPTH + 1), f"nested over {MAX_XML_DEPTH}"),
        (
            "<domain type='kvm'>" + "<a/>" * MAX_XML_ELEMENTS + "</domain>",
            f"over {MAX_XML_ELEMENTS} elements",
        ),
        ("<domain type='kvm'>\ud800</domain>", "not valid text"),
    ],
)
def test_hostile_and_wrong_xml_is_refused(text: str, needle: str) -> None:
    assert needle in error_of(text)


def test_doctype_in_a_comment_is_only_a_comment() -> None:
    spec = parse("<!-- <!DOCTYPE x> --><domain type='qemu'/>")
    assert spec.accel == ["tcg"]


def test_huge_input_is_refused_unread(tmp_path: Path) -> None:
    padding = " " * MAX_XML_BYTES
    assert "over the 16 MiB limit" in error_of("<domain type='kvm'/>" + padding)
    # Multi-byte characters count as bytes: under the limit in characters, over in bytes.
    wide = "<domain type='kvm'><name>" + "é" * (MAX_XML_BYTES // 2) + "</name></domain>"
    assert "bytes is over the 16 MiB limit" in error_of(wide)
    path = tmp_path / "huge.xml"
    path.write_bytes(b"<domain type='kvm'/>" + b" " * MAX_XML_BYTES)
    with pytest.raises(InputError, match="over the 16 MiB limit"):
        load_domain_xml(str(path))


def test_load_from_file_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "guest.xml"
    path.write_text(dom("<cpu mode='host-passthrough'/>"), encoding="utf-8")
    assert load_domain_xml(str(path)).cpu.model == "host"
    assert load_domain_xml(str(path)).source == str(path)
    stdin = io.TextIOWrapper(io.BytesIO(dom(kind="qemu").encode()), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    spec = load_domain_xml("-")
    assert (spec.source, spec.accel) == ("<stdin>", ["tcg"])


def test_load_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="cannot read the domain XML"):
        load_domain_xml(str(tmp_path / "missing.xml"))
    with pytest.raises(InputError, match="cannot read the domain XML"):
        load_domain_xml(str(tmp_path))
    latin1 = tmp_path / "latin1.xml"
    latin1.write_bytes("<domain type='kvm'><name>G\xe4ste</name></domain>".encode("latin-1"))
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 26\)"):
        load_domain_xml(str(latin1))
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(InputError, match="standard input is closed"):
        load_domain_xml("-")


@given(st.text(max_size=300))
@FUZZ
def test_arbitrary_text_is_a_spec_or_input_error(text: str) -> None:
    try:
        assert isinstance(parse_domain_xml(text, "fuzz.xml"), VmSpec)
    except InputError as err:
        assert "\n" not in str(err)


# Elements and attributes the converter reads, so generated documents reach its code paths
# instead of failing at the first tag.
_TAGS = [
    "cpu", "model", "feature", "features", "hyperv", "kvm", "spinlocks", "stimer", "direct",
    "clock", "timer", "memoryBacking", "hugepages", "page", "source", "access", "devices",
    "interface", "driver", "host", "guest", "hostdev", "address", "shmem", "size", "video",
    "acceleration", "filesystem", "target", "disk", "controller", "memory", "path", "iommu",
    "launchSecurity", "policy", "cbitpos", "alias", "teaming", "channel", "os", "type", "pmu",
    "input", "sound", "serial", "tpm", "rng", "backend", "apic", "ioapic", "cache",
    "maxphysaddr",
]  # fmt: skip
_ATTRS = [
    "type", "mode", "name", "policy", "model", "state", "bus", "size", "unit", "frequency",
    "present", "retries", "value", "uuid", "primary", "accel3d", "role", "driver", "limit",
    "bits", "level", "match", "check", "migratable", "csum", "tso4", "uso", "eoi", "aw_bits",
    "machine", "persistent", "domain", "slot", "function", "ramfb", "access", "address",
    "port", "alias", "vendor_id",
]  # fmt: skip
_VALUES = st.sampled_from(
    ["on", "off", "yes", "no", "kvm", "qemu", "virtio", "pci", "host-model", "custom",
     "host-passthrough", "maximum", "require", "optional", "nvme", "shared", "memfd", "file",
     "2048", "0x1f", "-1", "KiB", "G", "", "x", "vhostuser", "qemu-vdagent", "guestfwd",
     "sev", "tdx", "intel", "amd", "passthrough", "emulate", "3", "minimum", "full",
     "virtio-transitional", "virtio-mmio", "master", "peer", "bool", "remove", "signed"]
) | st.text(max_size=6)  # fmt: skip


@st.composite
def _element(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(_TAGS))
    attrs = draw(st.dictionaries(st.sampled_from(_ATTRS), _VALUES, max_size=4))
    rendered = "".join(
        f' {k}="{v.replace("&", "&amp;").replace("<", "&lt;").replace(chr(34), "&quot;")}"'
        for k, v in attrs.items()
    )
    children = draw(st.lists(_element(depth + 1), max_size=3)) if depth < 3 else []
    text = draw(st.sampled_from(["", "47", "0x1", "Haswell", "x"]))
    return f"<{tag}{rendered}>{text}{''.join(children)}</{tag}>"


@given(
    st.sampled_from(["kvm", "qemu", "xen", ""]),
    st.lists(_element(), max_size=6),
    st.lists(_element(), max_size=6),
)
@FUZZ
def test_generated_domains_are_a_spec_or_input_error(
    kind: str, top: list[str], devices: list[str]
) -> None:
    text = f"<domain type='{kind}'>{''.join(top)}<devices>{''.join(devices)}</devices></domain>"
    try:
        assert isinstance(parse_domain_xml(text, "fuzz.xml"), VmSpec)
    except InputError as err:
        assert "\n" not in str(err)


# --------------------------------------------------------------------------- real pairs


def follow(path: Path) -> str:
    """The file's text; libvirt keeps some test files as git symlinks, checked out here as
    one-line files naming their target: follow those."""
    text = path.read_text(encoding="utf-8")
    target = path.parent / text.strip()
    if "\n" not in text.strip() and target.suffix in (".xml", ".args") and target.is_file():
        return target.read_text(encoding="utf-8")
    return text


def pair(name: str) -> tuple[VmSpec, VmSpec]:
    require(LIBVIRT.is_dir(), f"libvirt test data not found at {LIBVIRT}")
    xml = parse_domain_xml(follow(LIBVIRT / f"{name}.xml"), f"{name}.xml")
    args = parse_cmdline(follow(LIBVIRT / f"{name}.x86_64-latest.args"), f"{name}.args")
    return xml, args


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name",
    [
        "cpu-translation",
        "hyperv",
        "hyperv-passthrough",
        "hyperv-stimer-direct",
        "kvm-features",
        "kvm-features-off",
        "cpu-eoi-enabled",
        "pv-spinlock-disabled",
        "pmu-feature-off",
        "cpu-host-kvmclock",
        "cpu-cache-passthrough",
        "cpu-cache-emulate-l3",
        "cpu-phys-bits-emulate",
        "cpu-phys-bits-limit",
        "cpu-check-full",
    ],
)
def test_cpu_matches_libvirts_command_line(name: str) -> None:
    xml, args = pair(name)
    features = dict(xml.cpu.features)
    if name == "cpu-check-full":
        # libvirt checks the started CPU itself instead of passing enforce (module doc).
        assert features.pop("enforce") is True
    assert features == args.cpu.features
    assert xml.cpu.props == args.cpu.props
    assert xml.accel_options == args.accel_options


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name",
    ["net-virtio-disable-offloads", "shmem-plain-doorbell", "hostdev-mdev-display-ramfb",
     "virtio-options", "intel-iommu-eim", "net-virtio-teaming-hostdev"],
)  # fmt: skip
def test_device_properties_match_libvirts_command_line(name: str) -> None:
    xml, args = pair(name)
    by_id = {d.id: d for d in args.devices}
    matched = 0
    for device in xml.devices:
        theirs = by_id.get(device.id)
        if theirs is None:
            continue  # disks: libvirt's aliases come from bus addresses, not reproduced
        matched += 1
        assert device.driver == theirs.driver
        for key, value in device.props.items():
            if key in ("fsdev", "netdev", "chardev", "memdev", "sysfsdev", "host", "mac"):
                continue  # plumbing ids and host addresses, named differently
            assert theirs.props.get(key) == value, f"{device.id}.{key}"
    assert matched > 0


# Why a field may differ between a domain XML and libvirt's command line for it, each a
# fact about libvirt rather than about this module. Anything else fails the test.
EXPLAINED = {
    "machine alias expanded": "the XML names pc/q35 and libvirt wrote the versioned type it "
    "resolved the alias to on the test's QEMU",
    "machine left to libvirt": "the XML has no machine; libvirt writes its default (pc on "
    "x86_64), and the checks resolve a missing machine to the same QEMU default",
    "CPU model left to the machine": "the XML names no CPU model; libvirt writes the machine "
    "type's default (qemu64, qemu32 for i686, 486 for isapc) explicitly, the checks resolve "
    "the machine's default_cpu_type the same way",
    "host-model expanded": "host-model (or match='minimum') is expanded by libvirt at start "
    "into a named model of the test's fake host CPU; it is judged as the host CPU here",
    "kernel_irqchip spelling": "libvirt writes kernel_irqchip=split, QEMU treats '_' as '-', "
    "but the catalogue only matches kernel-irqchip, so the command line misses capabilities "
    "the XML (spelled canonically) depends on",
    "vhost-net by default": "libvirt's test mock opens /dev/vhost-net for every virtio tap NIC; "
    "a real libvirt falls back silently without it, so only an explicit <driver name='vhost'/> "
    "makes the guest depend on vhost-net",
    "incoming migration keeps its memory size": "a guest started with -incoming keeps the "
    "source's memory size as libvirt recorded it; the XML of a new guest is aligned to MiB",
}


def _option(spec: VmSpec, name: str) -> str | None:
    values = [o.value for o in spec.options if o.name == name]
    return values[-1] if values else None


def _explain_memory(args: VmSpec) -> str | None:
    if _option(args, "incoming") is not None:
        return "incoming migration keeps its memory size"
    return None


_DEFAULT_CPUS = {"qemu64", "qemu32", "486"}
_ALIASES = {"pc": "pc-i440fx-", "q35": "pc-q35-"}


def _explain_machine(xml: VmSpec, args: VmSpec) -> str | None:
    if xml.machine.type is None and args.machine.type == "pc":
        return "machine left to libvirt"
    prefix = _ALIASES.get(xml.machine.type or "")
    if prefix and (args.machine.type or "").startswith(prefix):
        return "machine alias expanded"
    return None


def _explain_cpu(xml: VmSpec, args: VmSpec, text: str) -> str | None:
    if xml.cpu.model is None and args.cpu.model in _DEFAULT_CPUS:
        return "CPU model left to the machine"
    expanded = "mode='host-model'" in text or "match='minimum'" in text
    if xml.cpu.model == "host" and expanded and args.cpu.model not in ("host", None):
        return "host-model expanded"
    return None


def _explain_capabilities(xml: VmSpec, args: VmSpec) -> str | None:
    fixed = parse_cmdline(args.text, "args")
    if "kernel_irqchip" in fixed.machine.options:
        fixed.machine.options["kernel-irqchip"] = fixed.machine.options.pop("kernel_irqchip")
        if capabilities(fixed) == capabilities(xml):
            return "kernel_irqchip spelling"
    vhost = [n for n in fixed.netdevs if n.props.get("vhost") is True]
    if vhost and not any(n.props.get("vhost") for n in xml.netdevs):
        for netdev in vhost:
            del netdev.props["vhost"]
        if capabilities(fixed) == capabilities(xml):
            return "vhost-net by default"
    return None


@pytest.mark.shared_data
def test_agreement_with_libvirt_test_pairs() -> None:
    require(LIBVIRT.is_dir(), f"libvirt test data not found at {LIBVIRT}")
    pairs = sorted(LIBVIRT.glob("*.x86_64-latest.args"))
    require(bool(pairs), f"no *.x86_64-latest.args files under {LIBVIRT}")
    agree: Counter[str] = Counter()
    explained: Counter[str] = Counter()
    unexplained: list[str] = []
    compared = 0
    for args_path in pairs:
        name = args_path.name.removesuffix(".x86_64-latest.args")
        xml_path = LIBVIRT / f"{name}.xml"
        if not xml_path.is_file():
            continue
        text = follow(xml_path)
        xml = parse_domain_xml(text, xml_path.name)
        args = parse_cmdline(follow(args_path), args_path.name)
        compared += 1
        fields: dict[str, tuple[Any, Any, str | None]] = {
            "machine": (xml.machine.type, args.machine.type, _explain_machine(xml, args)),
            "cpu model": (xml.cpu.model, args.cpu.model, _explain_cpu(xml, args, text)),
            "accelerator": (xml.accel, args.accel, None),
            "netdev types": (
                sorted(n.type for n in xml.netdevs),
                sorted(n.type for n in args.netdevs),
                None,
            ),
            "blockers": (blockers(xml, True), blockers(args, True), None),
            "-smp": (_option(xml, "smp"), _option(args, "smp"), None),
            "-m": (_option(xml, "m"), _option(args, "m"), _explain_memory(args)),
        }
        xml_caps, args_caps = capabilities(xml), capabilities(args)
        caps_why = _explain_capabilities(xml, args) if xml_caps != args_caps else None
        fields["capabilities"] = (xml_caps, args_caps, caps_why)
        for field, (mine, theirs, why) in fields.items():
            if mine == theirs:
                agree[field] += 1
            elif why is not None:
                explained[why] += 1
            else:
                unexplained.append(f"{name}: {field}: XML gives {mine!r}, args {theirs!r}")
    summary = (
        f"{compared} libvirt domain/args pairs compared; agreements: "
        + ", ".join(f"{field} {count}" for field, count in agree.items())
        + "; explained differences: "
        + (", ".join(f"{why} {count}" for why, count in sorted(explained.items())) or "none")
    )
    print(summary)
    assert set(explained) <= set(EXPLAINED)
    assert not unexplained, summary + "\n" + "\n".join(unexplained[:30])
    assert compared > 600
    # The comparison must exercise the mappings that matter, not only empty guests.
    assert agree["blockers"] == compared
    assert agree["-smp"] == compared  # <vcpu>, <vcpus> and <topology> as libvirt writes -smp


def test_cli_accepts_domain_xml_where_it_accepts_command_lines(tmp_path):
    """pair/fleet --domain-xml, cmdline FILE.xml; portable explains it wants a command line."""
    import json as _json

    from typer.testing import CliRunner

    from migcheck.cli import app

    xml = tmp_path / "gpu.xml"
    xml.write_text(
        "<domain type='kvm'><name>gpu</name><memory>1048576</memory>"
        "<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>"
        "<cpu mode='host-passthrough' migratable='on'/>"
        "<devices><hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/></source></hostdev>"
        "</devices></domain>"
    )
    host = str(
        Path(__file__).resolve().parents[1] / "fixtures/hosts/debian12-qemu7.2-epyc-pvm.json"
    )
    runner = CliRunner()
    pair = runner.invoke(app, ["pair", host, host, "--domain-xml", str(xml), "-f", "json"])
    assert pair.exit_code == 1, pair.stderr
    doc = _json.loads(pair.stdout)
    assert doc["vm"]["machine"]["type"] == "pc-q35-7.2" and doc["vm"]["cpu"]["model"] == "host"
    assert any(c["id"] == "blocker.vfio-pci" and c["status"] == "fail" for c in doc["checks"])
    fleet = runner.invoke(app, ["fleet", host, "--domain-xml", str(xml), "-f", "json"])
    assert fleet.exit_code == 3  # one host: no migration to judge, which is unknown, never 0
    shown = runner.invoke(app, ["cmdline", str(xml), "--format", "json"])
    assert _json.loads(shown.stdout)["devices"][0]["driver"] == "vfio-pci"
    # portable reads the XML too (issue 24): the host device makes it not portable (exit 1).
    other = host.replace("debian12-qemu7.2", "debian13-qemu10.0")
    portable = runner.invoke(app, ["portable", host, other, "-c", str(xml)])
    assert portable.exit_code == 1 and "vfio" in portable.stderr.lower(), portable.stderr
    both = runner.invoke(app, ["pair", host, host, "-x", str(xml), "-c", str(xml)])
    assert both.exit_code == 2
