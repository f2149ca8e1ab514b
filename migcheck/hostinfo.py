"""One host's facts, summarised for ``migcheck host`` (what QEMU would call -cpu/-machine help)."""

from __future__ import annotations

from typing import Any

from migcheck.catalog import Catalog
from migcheck.facts import Facts
from migcheck.platforms import HostPlatforms

_NON_MODELS = {"host", "max", "base"}


def usable_cpu_models(facts: Facts) -> tuple[list[str], dict[str, list[str]]] | None:
    """Named CPU models usable under the host's accelerator, and the blocked ones' blockers.

    A model is usable when QEMU reports no unavailable features for it (libvirt's
    ``usable='yes'``). Aliases are listed under their own names too, as libvirt does.
    """
    models = facts.cpu_models
    if models is None:
        return None
    usable: list[str] = []
    blocked: dict[str, list[str]] = {}
    for name, model in sorted(models.items()):
        if name in _NON_MODELS:
            continue
        unavailable = model.get("unavailable_features")
        if unavailable is None:
            continue  # QEMU did not say (TCG on some versions): neither usable nor blocked
        if unavailable:
            blocked[name] = sorted(unavailable)
        else:
            usable.append(name)
    return usable, blocked


def platform_summary(facts: Facts, catalog: Catalog) -> dict[str, Any]:
    """What ``query-platforms`` would say: supported, maximal and effective platforms."""
    hp = HostPlatforms(catalog, facts)
    return {
        "distro": hp.distro.id if hp.distro else None,
        "effective": hp.effective.id if hp.effective else None,
        "maximal": [p.id for p in hp.maximal],
        "supported": [p.id for p in hp.supported],
        "capabilities": {
            cid: {"has": ev.has.value, "why": ev.why} for cid, ev in sorted(hp.evidence.items())
        },
    }


def _guests(facts: Facts) -> list[dict[str, Any]] | None:
    section = facts.doc.get("guests")
    if not isinstance(section, dict) or "error" in section:
        return None
    return [{"name": g.get("name"), "pid": g.get("pid")} for g in section.get("guests", [])]


def host_summary(facts: Facts, catalog: Catalog | None = None) -> dict[str, Any]:
    kvm = facts.section("kvm") or {}
    qemu = facts.qemu or {}
    machines = facts.machines or {}
    models = usable_cpu_models(facts)
    caps = kvm.get("capabilities") or {}
    nested = {
        mod: params.get("nested")
        for mod, params in (kvm.get("modules") or {}).items()
        if isinstance(params, dict) and "nested" in params
    }
    return {
        "name": facts.name,
        "origin": facts.origin,
        "kernel": facts.kernel_release,
        "os": (facts.section("os") or {}).get("pretty_name"),
        "cpu": facts.cpu_summary,
        "kvm": {
            "usable": facts.kvm_usable,
            "api_version": kvm.get("api_version"),
            "capabilities": sorted(k for k, v in caps.items() if v),
            "nested": nested,
        },
        "qemu": {
            "binary": qemu.get("binary"),
            "version": facts.qemu_version,
            "package": qemu.get("package"),
            "kvm_enabled": facts.qemu_kvm_enabled,
            "default_machine": facts.resolve_machine(None),
            "aliases": {m["alias"]: n for n, m in sorted(machines.items()) if m.get("alias")},
            "machines": sorted(machines),
            "deprecated_machines": sorted(n for n, m in machines.items() if m.get("deprecated")),
        },
        "usable_cpu_models": models[0] if models else None,
        "blocked_cpu_models": models[1] if models else None,
        "platforms": platform_summary(facts, catalog) if catalog is not None else None,
        "guests": _guests(facts),
        "errors": {
            name: err
            for name in ("kernel", "os", "cpu", "kvm", "devices", "qemu")
            if (err := facts.missing(name))
        },
    }
