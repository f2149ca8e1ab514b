"""What-if: a host's facts as they would be after a kernel, QEMU or distro upgrade.

Assumed facts are recomputed from the catalog, never measured, and say so: they carry an
``assumed`` record, and what cannot be derived keeps today's values (named below).

- ``kernel=X.Y.Z``: the kernel release becomes X.Y.Z; KVM capabilities newer than X.Y are
  dropped and kernel-version capabilities up to X.Y are added. Hardware- or
  config-dependent capabilities keep today's answer.
- ``qemu=X.Y.Z``: the version becomes X.Y.Z and the x86 machine types, aliases, default
  and deprecations become those of release X.Y (``migcheck/catalog/data/qemu/releases.toml``). CPU
  model availability and the host CPU expansion keep today's values.
- ``os=DISTRO-VERSION``: the host becomes that distro platform (``linux-DISTRO-VERSION``),
  os-release included.
"""

from __future__ import annotations

import copy
from typing import Any

from migcheck.catalog import Catalog, version_tuple
from migcheck.errors import InputError
from migcheck.facts import Facts, parse_version
from migcheck.machinetypes import parse_machine


def _machine_key(name: str) -> tuple[str, tuple[int, ...]] | None:
    mt = parse_machine(name)
    return (mt.family, mt.version) if mt is not None and mt.upstream else None


def machines_for(catalog: Catalog, qemu: str) -> list[dict[str, Any]]:
    """x86 versioned machine types QEMU ``qemu`` registers, from the release facts."""
    releases = catalog.releases
    if not releases:
        raise InputError("the catalog holds no QEMU release facts; cannot assume a QEMU version")
    v = parse_version(qemu)
    if v is None:
        raise InputError(f"--assume qemu={qemu}: not a QEMU version")
    key = (v[0], v[1])
    if key not in releases:
        known = ", ".join(f"{a}.{b}" for a, b in sorted(releases))
        raise InputError(
            f"--assume qemu={qemu}: no release facts for QEMU {key[0]}.{key[1]} ({known})"
        )
    rel = releases[key]
    names: list[str] = []
    for r in sorted(releases):
        if r <= key:
            names += [n for n in releases[r].machines_added if n not in names]
    out = []
    for name in names:
        parsed = _machine_key(name)
        if parsed is None:
            continue
        family, ver = parsed
        first = rel.first_machine.get(family)
        if first is not None and ver < version_tuple(first):
            continue
        dep = rel.deprecated_before.get(family)
        alias = next((a for a, target in rel.aliases.items() if target == name), None)
        out.append(
            {
                "name": name,
                "alias": alias,
                "is_default": name == rel.default,
                "deprecated": bool(dep) and ver < version_tuple(dep),
                "cpu_max": None,
                "default_cpu_type": "qemu64-x86_64-cpu",
            }
        )
    return out


def assume(facts: Facts, key: str, value: str, catalog: Catalog) -> Facts:
    doc: dict[str, Any] = dict(facts.doc)  # shallow: untouched sections stay shared
    assumed = dict(doc.get("assumed") or {})
    if key == "kernel":
        kv = parse_version(value)
        if kv is None:
            raise InputError(f"--assume kernel={value}: not a kernel version")
        doc["kernel"] = dict(doc.get("kernel") or {}, release=value, version=f"assumed {value}")
        doc["kvm"] = _kvm_for_kernel(doc.get("kvm") or {}, (kv[0], kv[1]), catalog)
        assumed.pop("platform", None)
    elif key == "qemu":
        qemu = copy.copy(dict(doc.get("qemu") or {}))
        # TCG's CPU is the QEMU build's own emulation: another version's answers would judge
        # a TCG guest by the wrong CPU, so an assumed QEMU has none (TCG guests: unknown).
        qemu["tcg"] = {"error": f"assumed QEMU {value}: its TCG CPU answers are not known"}
        if "error" in qemu:
            raise InputError(f"--assume qemu={value}: {facts.name} has no QEMU facts to start from")
        machines = machines_for(catalog, value)
        others = [m for m in qemu.get("machines", []) if _machine_key(m.get("name", "")) is None]
        qemu["machines"] = machines + others
        qemu["version"] = value
        qemu.pop("build", None)  # the assumed release's build data is not known
        # Another QEMU is another build: its device schema is not known (unknown, not pass).
        qemu.pop("build", None)
        doc["qemu"] = qemu
    elif key == "os":
        pid = value if value.startswith("linux-") else f"linux-{value}"
        platform = catalog.platform(pid)
        if platform.kind != "distro":
            raise InputError(f"--assume os={value}: {pid} is not a distribution platform")
        doc["os"] = {
            "id": platform.os_id or "",
            "id_like": [],
            "version_id": platform.os_version or "",
            "pretty_name": platform.title,
        }
        assumed["platform"] = pid
    else:
        raise InputError(f"--assume: unknown key {key!r}")
    assumed[key] = value
    doc["assumed"] = assumed
    return Facts(doc, facts.origin, facts.base_dir)


def _kvm_for_kernel(
    kvm: dict[str, Any], kernel: tuple[int, int], catalog: Catalog
) -> dict[str, Any]:
    if "error" in kvm:
        return kvm
    caps = dict(kvm.get("capabilities") or {})
    for cap in catalog.capabilities.values():
        if not cap.kvm_cap:
            continue
        if cap.linux_tuple > kernel:
            caps[cap.kvm_cap] = 0
        elif cap.in_platforms and not caps.get(cap.kvm_cap):
            caps[cap.kvm_cap] = 1
    out = dict(kvm, capabilities=caps)
    if isinstance(kvm.get("vm"), dict) and "hv_cpuid" in kvm["vm"]:
        # The Hyper-V CPUID is the recorded kernel's: the assumed one is judged by its
        # capabilities instead (kvm.hyperv).
        out["vm"] = {k: v for k, v in kvm["vm"].items() if k != "hv_cpuid"}
    return out
