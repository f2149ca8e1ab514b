"""Which catalogued host-kernel capabilities a guest actually depends on.

A guest depends on a capability when its configuration turns on something backed by it:
a device property that is on (explicitly, or by default for its machine type, as QEMU's
``hw_compat`` arrays decide), an accelerator property, a CPU feature, an object type or an
option. With ``-platform P`` the kernel-dependent defaults follow P instead of the host:
that is the point of the proposal. Pure functions: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from migcheck.catalog import Capability, Catalog, DeviceProps, version_tuple
from migcheck.cpufeatures import canonical
from migcheck.keyval import split_keyval
from migcheck.machinetypes import defaults_version
from migcheck.vm import Device, VmSpec, as_bool


def machine_version(machine: str | None) -> tuple[int, int] | None:
    """``pc-q35-8.2`` -> (8, 2); ``pc-q35-noble`` -> (8, 2) (Ubuntu's types copy the
    upstream type, migcheck.machinetypes.UBUNTU_BASES); ``pc-q35-rhel9.4.0`` and types not
    in the table -> None (see :func:`undecided_defaults`)."""
    return defaults_version(machine)[0]


def undecided_defaults(vm: VmSpec, catalog: Catalog, machine: str | None) -> list[str]:
    """Kernel-dependent device properties whose default depends on the machine type's
    version when migcheck cannot tell that version (a RHEL type, an Ubuntu type not in the
    table, an unresolved name): those checks must say unknown, not "off"."""
    if machine is None or machine_version(machine) is not None:
        return []
    why = defaults_version(machine)[1] or f"{machine}: no upstream machine version known"
    out = []
    for cap in catalog.capabilities.values():
        for rule in cap.device_props:
            if rule.default_on_machine is None:
                continue
            for device in vm.devices:
                if device.driver not in rule.drivers:
                    continue
                if rule.netdev is not None and _netdev_type(vm, device) != rule.netdev:
                    continue
                unset = [
                    p
                    for p in rule.props
                    if as_bool(device.props.get(p)) is None
                    and as_bool(vm.global_value(device, p)) is None
                ]
                if unset:
                    label = device.driver + (f" {device.id}" if device.id else "")
                    out.append(
                        f"{label}: {', '.join(unset)} on by default from upstream machine "
                        f"version {rule.default_on_machine} ({why})"
                    )
    return out


@dataclass(frozen=True)
class DeviceUse:
    """One device whose properties depend on a capability."""

    device: Device
    rule: DeviceProps
    props_on: tuple[str, ...]  # the capability-backed properties that are on
    why: str  # "on by default for pc-q35-8.2 (>= 8.2)" / "set on explicitly"

    @property
    def label(self) -> str:
        return f"{self.device.driver}" + (f" {self.device.id}" if self.device.id else "")

    def fix(self) -> str:
        if self.device.origin != "-device":
            # No -device line to edit (-nic, -net nic, a default): a -global reaches it.
            return " ".join(f"-global {self.device.driver}.{p}=off" for p in self.props_on)
        off = ",".join(f"{p}=off" for p in self.props_on)
        ident = f"id={self.device.id}," if self.device.id else ""
        return f"-device {self.device.driver},{ident}...,{off}"


@dataclass(frozen=True)
class Dependency:
    capability: Capability
    reasons: tuple[str, ...]
    devices: tuple[DeviceUse, ...] = ()


def _netdev_type(vm: VmSpec, device: Device) -> str | None:
    """The kind of backend a NIC's offloads depend on: "tap" for a tap with a vnet header.

    * ``-netdev bridge`` is a tap: net/tap.c net_init_bridge() opens it through
      qemu-bridge-helper and calls net_tap_fd_init() with the probed vnet header, so the
      kernel's tap offloads (USO, UFO, ...) apply as for ``-netdev tap``.
    * ``vnet_hdr=off``: virtio-net sees no vnet header (hw/net/virtio-net.c
      peer_has_vnet_hdr()), and virtio_net_get_features() then clears every offload
      (CSUM, TSO, UFO; USO too, peer_has_uso() first asks peer_has_vnet_hdr()), so no
      kernel offload is a dependency.
    * a NIC on a hub (``-net nic`` with ``-net tap``) has a hub port as its peer, which
      has no vnet header either (net/hub.c net_hub_port_info has no has_vnet_hdr).
    """
    ref = device.props.get("netdev")
    if not isinstance(ref, str):
        return None
    for n in vm.netdevs:
        if n.id == ref:
            if n.type in ("tap", "bridge"):
                if as_bool(n.props.get("vnet_hdr")) is False:
                    return "tap (vnet_hdr=off)"
                return "tap"
            return n.type
    return None


def _device_uses(
    vm: VmSpec, rule: DeviceProps, machine: str | None, platform_has: bool | None
) -> list[DeviceUse]:
    uses = []
    version = machine_version(machine)
    for device in vm.devices:
        if device.driver not in rule.drivers:
            continue
        if rule.netdev is not None and _netdev_type(vm, device) != rule.netdev:
            continue
        default_on = (
            rule.default_on_machine is not None
            and version is not None
            and version >= version_tuple(rule.default_on_machine)
        )
        on: list[str] = []
        explicit = False
        for prop in rule.props:
            value = as_bool(device.props.get(prop)) if prop in device.props else None
            if value is None:
                # -global reaches every device of the type, -nic and defaults included.
                value = as_bool(vm.global_value(device, prop))
            if value is True:
                on.append(prop)
                explicit = True
            elif value is None and default_on and platform_has is not False:
                on.append(prop)
        if not on:
            continue
        if explicit:
            why = "set on explicitly"
        else:
            why = f"on by default for {machine} (>= {rule.default_on_machine})"
        uses.append(DeviceUse(device, rule, tuple(on), why))
    return uses


def _same(value: object, want: str | None) -> bool:
    if want is None:
        return True
    wanted_bool = as_bool(want)
    if wanted_bool is not None and as_bool(value) is not None:
        return as_bool(value) == wanted_bool
    return str(value) == want


def _option_matches(vm: VmSpec, option: dict[str, str]) -> bool:
    name = option.get("option", "")
    key, want = option.get("key"), option.get("value")
    if name in ("machine", "M"):
        # QEMU accepts kernel_irqchip for kernel-irqchip (libvirt writes the former).
        opts = {k.replace("_", "-"): v for k, v in vm.machine.options.items()}
        key = (key or "").replace("_", "-")
        return key in opts and _same(opts[key], want)
    # Parsed options (keyval or JSON syntax alike) are matched on their properties.
    parsed = {"netdev": vm.netdevs, "device": vm.devices, "object": vm.objects}.get(name)
    if parsed is not None:
        return any(key in item.props and _same(item.props[key], want) for item in parsed)
    for opt in vm.options:
        if opt.name != name or opt.value is None:
            continue
        if opt.value.lstrip().startswith("{"):  # JSON syntax, as libvirt writes -blockdev
            try:
                doc = json.loads(opt.value)
            except (ValueError, RecursionError):
                continue
            if isinstance(doc, dict) and key in doc and _same(doc[key], want):
                return True
            continue
        first, props = split_keyval(opt.value)
        if key is None:
            return True
        if key in props and _same(props[key], want):
            return True
        if first is not None and want is None and first == key:
            return True
    return False


def guest_dependencies(
    vm: VmSpec, catalog: Catalog, machine: str | None, platform: str | None = None
) -> dict[str, Dependency]:
    """Capabilities this guest's configuration turns on, keyed by capability id.

    ``machine`` is the versioned machine type the guest runs (aliases resolved by the
    caller). ``platform``: the guest's ``-platform``; kernel-dependent defaults then follow
    that platform's capabilities rather than the host's.
    """
    pinned = catalog.platforms.get(platform) if platform else None
    wanted_features = {canonical(f) for f, on in vm.cpu.features.items() if on}
    object_types = {o.qom_type for o in vm.objects}
    out: dict[str, Dependency] = {}
    for cap in catalog.capabilities.values():
        reasons: list[str] = []
        platform_has = None if pinned is None else cap.id in pinned.capabilities
        devices: list[DeviceUse] = []
        for rule in cap.device_props:
            devices += _device_uses(vm, rule, machine, platform_has)
        reasons += [f"{u.label}: {', '.join(u.props_on)} {u.why}" for u in devices]
        if vm.uses_kvm:
            reasons += [f"-accel kvm,{p}=" for p in cap.accel_props if p in vm.accel_options]
        reasons += [f"-cpu ...,+{f}" for f in cap.cpu_features if canonical(f) in wanted_features]
        reasons += [f"-object {t}" for t in cap.objects if t in object_types]
        for option in cap.options:
            if _option_matches(vm, dict(option)):
                text = f"-{option.get('option')} {option.get('key')}={option.get('value')}"
                reasons.append(text)
        if reasons:
            out[cap.id] = Dependency(cap, tuple(reasons), tuple(devices))
    return out
