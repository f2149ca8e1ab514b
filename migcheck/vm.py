"""The VM spec: what a guest's command line (or, later, domain XML) asks of a host.

Parsers produce a :class:`VmSpec`; checks read it. Nothing here does I/O.
Property values keep the type their syntax gave them: keyval syntax yields strings,
JSON syntax yields JSON types. Use :func:`as_bool` to read on/off style values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

_TRUE = {"on", "yes", "true", "y", "1"}
_FALSE = {"off", "no", "false", "n", "0"}


def as_bool(value: Any) -> bool | None:
    """QEMU's boolean spellings (``on``/``off``, ``true``/``false``, ...) -> bool; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


@dataclass(frozen=True)
class Span:
    """Where an option came from in the original text (for messages and rewrites)."""

    line: int  # 1-based line of the option name
    start: int  # character offset of the option name token in the original text
    end: int  # character offset just past the option's value token (or name, if none)
    value_start: int | None = None  # character offset of the value token, if any


@dataclass
class Option:
    """One command-line option as written: ``-name value`` (value None for flags)."""

    name: str  # without leading dashes: "machine", "cpu", "device"
    value: str | None
    span: Span


@dataclass
class MachineSpec:
    type: str | None  # None: QEMU's default machine
    options: dict[str, str] = field(default_factory=dict)
    span: Span | None = None


@dataclass
class CpuSpec:
    model: str | None  # None: the machine type's default CPU model
    # Boolean properties in order, QEMU spelling ("_" -> "-"): "+avx2" -> {"avx2": True}.
    # Includes non-CPUID switches such as "enforce", "migratable", "hv-*"; checks filter.
    features: dict[str, bool] = field(default_factory=dict)
    # Non-boolean properties: "tsc-frequency" -> "2000000000".
    props: dict[str, str] = field(default_factory=dict)
    span: Span | None = None


@dataclass
class Device:
    """One frontend device of the guest, however the command line created it.

    ``driver`` is the canonical QOM type (aliases such as ``virtio-net`` resolved);
    ``props`` holds only the properties the input set (``-set`` included, ``-global`` not:
    see :meth:`VmSpec.global_value`). ``origin`` says what created it ("-device", "-nic",
    "-net nic", "default serial", "-readconfig FILE", ...) and ``implicit`` whether the
    machine created it rather than an option that asks for it.
    """

    driver: str
    id: str | None
    props: dict[str, Any] = field(default_factory=dict)
    span: Span | None = None
    origin: str = "-device"
    implicit: bool = False
    # Why the device, or its type, is QEMU's default rather than written in the input
    # ("the machine's default NIC: no -nic, -net or -nodefaults"); None: as written.
    assumed: str | None = None


@dataclass
class Netdev:
    type: str  # "tap", "user", "vhost-user", ...
    id: str | None
    props: dict[str, Any] = field(default_factory=dict)
    span: Span | None = None


@dataclass
class QemuObject:
    qom_type: str
    id: str | None
    props: dict[str, Any] = field(default_factory=dict)
    span: Span | None = None


@dataclass
class GlobalProp:
    driver: str
    property: str
    value: str
    span: Span | None = None


@dataclass
class ReadConfig:
    """One ``-readconfig FILE``: what was read from it, or why it could not be."""

    path: str  # as written on the command line
    resolved: str | None  # the file migcheck read (None: not read)
    error: str | None  # why its devices are unknown; None when it was read and parsed
    sections: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    span: Span | None = None


@dataclass(frozen=True)
class AssumedValue:
    """A value the input leaves to QEMU, which migcheck assumes QEMU's default for."""

    what: str  # "machine", "accel", "cpu", "smp", "memory"
    value: str | None  # None: the host decides (its QEMU's default machine type, ...)
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "value": self.value, "why": self.why}


# hw/core/machine.c machine_class_init(): default_ram_size 128 MiB; -smp absent is one CPU
# (machine_parse_smp_config() with nothing given).
DEFAULT_MEMORY = "128M"
DEFAULT_SMP = "1"


@dataclass
class VmSpec:
    source: str  # file name or "<stdin>", for messages
    binary: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    machine: MachineSpec = field(default_factory=lambda: MachineSpec(type=None))
    # Accelerators in preference order ("kvm", "tcg"); empty when none was named.
    accel: list[str] = field(default_factory=list)
    accel_options: dict[str, str] = field(default_factory=dict)
    cpu: CpuSpec = field(default_factory=lambda: CpuSpec(model=None))
    platform: str | None = None
    devices: list[Device] = field(default_factory=list)
    netdevs: list[Netdev] = field(default_factory=list)
    objects: list[QemuObject] = field(default_factory=list)
    globals: list[GlobalProp] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)  # every option, in order
    readconfigs: list[ReadConfig] = field(default_factory=list)
    # Why the device list may be incomplete (input that creates devices migcheck does not
    # model); checks that read devices must not say "safe" while this is non-empty.
    device_gaps: list[str] = field(default_factory=list)
    # Directory relative -readconfig paths are resolved against (the command line file's).
    base_dir: str | None = None
    # -set GROUP.ID.PROP=VALUE a command-line fragment could not apply itself (libvirt's
    # <qemu:commandline> setting a property of a device libvirt defines): the caller does.
    unresolved_sets: list[tuple[str, str, str, str]] = field(default_factory=list)
    positional: list[str] = field(default_factory=list)
    text: str = ""  # the original text, for rewrites that keep everything else byte for byte

    def global_value(
        self, device: Device, prop: str, ancestors: tuple[str, ...] = ()
    ) -> str | None:
        """The last ``-global DRIVER.PROP=VALUE`` that applies to ``device`` (None: none).

        QEMU applies globals to every instance of the type, however it was created
        (hw/core/qdev-properties.c qdev_prop_set_globals() -> qom/object.c
        object_apply_global_props(), which matches with object_dynamic_cast(): the type or
        any parent type, by name as written; aliases are not resolved for -global).
        ``ancestors``: the device type's parent types (from the build's device_types), so
        ``-global virtio-pci.x=...`` reaches virtio-net-pci; without them only the type's
        own name matches.
        """
        names = {device.driver, *ancestors}
        value = None
        for g in self.globals:
            if g.driver in names and g.property == prop:
                value = g.value
        return value

    @property
    def uses_kvm(self) -> bool:
        """True when KVM is the first accelerator QEMU would try."""
        return bool(self.accel) and self.accel[0] == "kvm"

    def accel_in_effect(self) -> tuple[str, str, bool]:
        """The accelerator the guest runs under, how the input says so, and whether that
        is assumed (none given: QEMU's default for the binary).

        QEMU tries the listed accelerators in order; the first is what a started guest uses
        on a host that has it (a guest that fell back to TCG on the source is a TCG guest,
        which facts cannot tell: the first one is judged). With none listed, QEMU picks
        "kvm:tcg" when the program name ends in "kvm" (RHEL's /usr/libexec/qemu-kvm) and
        "tcg:kvm" otherwise (softmmu/vl.c, system/vl.c since 8.1, configure_accelerators())."""
        if self.accel:
            return self.accel[0], "-accel " + ":".join(self.accel), False
        if self.binary and os.path.basename(self.binary).endswith("kvm"):
            return "kvm", f"{os.path.basename(self.binary)} (defaults to KVM)", True
        return "tcg", "no accelerator given (QEMU defaults to TCG)", True

    def assumptions(self) -> list[AssumedValue]:
        """What the input leaves to QEMU's defaults and migcheck judges as QEMU would fill
        it in. Devices the machine creates say so themselves (``Device.assumed``)."""
        out: list[AssumedValue] = []
        named = {o.name for o in self.options}
        if self.machine.type is None:
            why = "QEMU's default machine type on each host, no -machine"
            out.append(AssumedValue("machine", None, why))
        accel, _how, assumed = self.accel_in_effect()
        if assumed:
            binary = os.path.basename(self.binary or "") or "QEMU"
            why = f"accelerator {accel}, {binary}'s default, no -accel"
            out.append(AssumedValue("accel", accel, why))
        if self.cpu.model is None:
            out.append(AssumedValue("cpu", None, "the machine type's default CPU model, no -cpu"))
        if "smp" not in named:
            out.append(AssumedValue("smp", DEFAULT_SMP, "1 vCPU, QEMU's default, no -smp"))
        if "m" not in named:
            out.append(
                AssumedValue("memory", DEFAULT_MEMORY, "128 MiB of memory, QEMU's default, no -m")
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form used by ``migcheck cmdline --format json`` and reports.

        Secret values (passwords, secret-object data, rbd keys...) are replaced by
        ``<redacted>`` (:mod:`migcheck.redact`); the spec itself keeps them.
        """
        from migcheck.redact import redact_env, redact_props, redact_value

        return {
            "source": self.source,
            "binary": self.binary,
            "env": redact_env(self.env),
            "machine": {"type": self.machine.type, "options": redact_props(self.machine.options)},
            "accel": list(self.accel),
            "accel_options": redact_props(self.accel_options),
            "cpu": {
                "model": self.cpu.model,
                "features": dict(self.cpu.features),
                "props": redact_props(self.cpu.props),
            },
            "platform": self.platform,
            "devices": [
                {
                    "driver": d.driver,
                    "id": d.id,
                    "props": redact_props(d.props, d.driver),
                    "origin": d.origin,
                    "implicit": d.implicit,
                    **({"assumed": d.assumed} if d.assumed else {}),
                }
                for d in self.devices
            ],
            "netdevs": [
                {"type": n.type, "id": n.id, "props": redact_props(n.props, n.type)}
                for n in self.netdevs
            ],
            "objects": [
                {"qom-type": o.qom_type, "id": o.id, "props": redact_props(o.props, o.qom_type)}
                for o in self.objects
            ],
            "globals": [
                {
                    "driver": g.driver,
                    "property": g.property,
                    "value": redact_value(g.property, g.value, g.driver),
                }
                for g in self.globals
            ],
            "readconfig": [
                {"path": r.path, "read": r.error is None, "error": r.error}
                for r in self.readconfigs
            ],
            "device_gaps": list(self.device_gaps),
            "assumed": [a.to_json() for a in self.assumptions()],
        }
