"""Platform checks: host-kernel-dependent virtual hardware must exist on the destination.

``platform.support``: with ``-platform P`` both hosts must support P; without it, the
destination must have every capability the guest uses on the source (what the source's
effective platform gave it). ``kernel.device-defaults``: the device-level view of the same
question for properties QEMU turns on by default and clears silently on hosts without the
capability (virtio-net USO on tap since QEMU 8.2, UDP tunnel GSO since 10.2).
"""

from __future__ import annotations

from migcheck.checks.base import Context, Finding, Status, unknown
from migcheck.dependencies import Dependency, guest_dependencies
from migcheck.platforms import Has, HostPlatforms, recommended_pin


def _machine(ctx: Context) -> str | None:
    return ctx.src.resolve_machine(ctx.vm.machine.type) or ctx.vm.machine.type


def _deps(ctx: Context) -> dict[str, Dependency]:
    return guest_dependencies(ctx.vm, ctx.platforms, _machine(ctx), ctx.vm.platform)


def _cap_text(ctx: Context, cap_id: str) -> str:
    cap = ctx.platforms.capabilities[cap_id]
    mark = "" if cap.verified else "?"
    return f"{cap_id} (Linux {cap.linux}{mark})"


def _platform_name(hp: HostPlatforms) -> str:
    return hp.effective.id if hp.effective else "no catalogued platform"


def check_support(ctx: Context) -> list[Finding]:
    cid = "platform.support"
    src, dst = ctx.src_platforms, ctx.dst_platforms
    if ctx.vm.platform is not None:
        return [_check_pinned(ctx, ctx.vm.platform, src, dst)]
    # Kernel-version capabilities only: hardware- and config-dependent ones are host.features.
    deps = {c: d for c, d in _deps(ctx).items() if d.capability.in_platforms}
    needed = {c: d for c, d in deps.items() if src.has(c) is not Has.NO}
    if not needed:
        return [
            Finding(
                cid,
                Status.PASS,
                "the guest uses no catalogued host-kernel capability"
                + (f" (source platform {_platform_name(src)})" if src.effective else ""),
                source=_platform_name(src),
                destination=_platform_name(dst),
            )
        ]
    src_unknown = [c for c in needed if src.has(c) is Has.UNKNOWN]
    lacking = [c for c in needed if dst.has(c) is Has.NO and c not in src_unknown]
    dst_unknown = [c for c in needed if dst.has(c) is Has.UNKNOWN]
    pin = recommended_pin([src, dst])
    pin_text = f"pin -platform {pin.id} (the greatest platform both hosts support)" if pin else ""
    if lacking:
        why = "; ".join(f"{_cap_text(ctx, c)}: {dst.evidence[c].why}" for c in lacking)
        uses = "; ".join(r for c in lacking for r in needs_reasons(needed[c]))
        switch_off = [u.fix() for c in lacking for u in needed[c].devices]
        fix = pin_text
        if switch_off:
            fix += (" or " if fix else "") + "switch off: " + "; ".join(switch_off)
        return [
            Finding(
                cid,
                Status.FAIL,
                f"the guest uses host-kernel capabilities the destination lacks: {why} "
                f"(used by: {uses}). Source platform {_platform_name(src)}, destination "
                f"{_platform_name(dst)}",
                source=sorted(needed),
                destination=sorted(c for c in needed if dst.has(c) is Has.YES),
                fix=fix or None,
            )
        ]
    if src_unknown or dst_unknown:
        parts = [f"source {src.evidence[c].why}" for c in src_unknown]
        parts += [f"destination {dst.evidence[c].why}" for c in dst_unknown]
        return [unknown(cid, *(f"{_cap_text(ctx, c)}" for c in src_unknown + dst_unknown), *parts)]
    return [
        Finding(
            cid,
            Status.PASS,
            "every host-kernel capability the guest uses is on both hosts: "
            + ", ".join(_cap_text(ctx, c) for c in sorted(needed)),
            source=_platform_name(src),
            destination=_platform_name(dst),
        )
    ]


def needs_reasons(dep: Dependency) -> tuple[str, ...]:
    return dep.reasons


def check_host_features(ctx: Context) -> list[Finding]:
    """Capabilities that depend on the destination's hardware or configuration (SEV, SGX,
    AMX, Hyper-V enlightenments, vhost-net, ...): the guest's use must be backed there."""
    cid = "host.features"
    deps = {c: d for c, d in _deps(ctx).items() if not d.capability.in_platforms}
    if not deps:
        return [
            Finding(
                cid, Status.PASS, "the guest uses no hardware- or config-dependent host feature"
            )
        ]
    src, dst = ctx.src_platforms, ctx.dst_platforms
    lacking = [c for c in deps if dst.has(c) is Has.NO]
    unsure = [c for c in deps if dst.has(c) is Has.UNKNOWN]
    if lacking:
        lines = [
            f"{ctx.platforms.capabilities[c].title} ({dst.evidence[c].why}), used by "
            + "; ".join(deps[c].reasons)
            for c in sorted(lacking)
        ]
        return [
            Finding(
                cid,
                Status.FAIL,
                "the destination lacks: " + " | ".join(lines),
                source=sorted(c for c in deps if src.has(c) is Has.YES),
                destination=sorted(c for c in deps if dst.has(c) is Has.YES),
                fix="enable the feature on the destination (module, device node, BIOS) or "
                "remove its use from the guest",
            )
        ]
    if unsure:
        return [
            unknown(
                cid, *(f"{c} on the destination: {dst.evidence[c].why}" for c in sorted(unsure))
            )
        ]
    return [
        Finding(
            cid,
            Status.PASS,
            "the destination has every host feature the guest uses: " + ", ".join(sorted(deps)),
            source=sorted(deps),
            destination=sorted(deps),
        )
    ]


def _check_pinned(ctx: Context, name: str, src: HostPlatforms, dst: HostPlatforms) -> Finding:
    cid = "platform.support"
    platform = ctx.platforms.platform(name)
    problems = []
    unknowns = []
    for role, hp in (("source", src), ("destination", dst)):
        lacking = sorted(c for c in platform.capabilities if hp.has(c) is Has.NO)
        unsure = sorted(c for c in platform.capabilities if hp.has(c) is Has.UNKNOWN)
        if lacking:
            why = ", ".join(f"{_cap_text(ctx, c)} ({hp.evidence[c].why})" for c in lacking)
            problems.append(f"the {role} does not support {name}: it lacks {why}")
        elif unsure:
            unknowns.append(f"{role}: " + ", ".join(f"{c} ({hp.evidence[c].why})" for c in unsure))
    if problems:
        pin = recommended_pin([src, dst])
        return Finding(
            cid,
            Status.FAIL,
            "; ".join(problems),
            source=name if name in {p.id for p in src.supported} else None,
            destination=name if name in {p.id for p in dst.supported} else None,
            fix=f"pin -platform {pin.id}, which both hosts support" if pin else None,
        )
    if unknowns:
        return unknown(cid, f"cannot tell whether both hosts support {name}", *unknowns)
    return Finding(cid, Status.PASS, f"both hosts support -platform {name}", name, name)


def check_device_defaults(ctx: Context) -> list[Finding]:
    cid = "kernel.device-defaults"
    deps = _deps(ctx)
    device_deps = {c: d for c, d in deps.items() if d.devices}
    if not device_deps:
        why = "no device property that depends on the host kernel is on"
        if ctx.vm.platform:
            why += f" (defaults follow -platform {ctx.vm.platform})"
        return [Finding(cid, Status.PASS, why)]
    src, dst = ctx.src_platforms, ctx.dst_platforms
    failures = []
    unknowns = []
    for cap_id, dep in sorted(device_deps.items()):
        s, d = src.has(cap_id), dst.has(cap_id)
        if s is Has.NO:
            continue  # QEMU clears the bits on the source too: the guest never had them
        if d is Has.NO and s is Has.YES:
            failures.append((cap_id, dep))
        elif Has.UNKNOWN in (s, d):
            who = "source" if s is Has.UNKNOWN else "destination"
            hp = src if s is Has.UNKNOWN else dst
            unknowns.append(f"{_cap_text(ctx, cap_id)} on the {who}: {hp.evidence[cap_id].why}")
    if failures:
        lines = []
        fixes = []
        for cap_id, dep in failures:
            cap = ctx.platforms.capabilities[cap_id]
            for use in dep.devices:
                lines.append(
                    f"{use.label}: {', '.join(use.props_on)} ({use.why}) need {cap.title} "
                    f"(Linux {cap.linux}+); source {src.evidence[cap_id].why}, destination "
                    f"{dst.evidence[cap_id].why}"
                )
                fixes.append(use.fix())
        return [
            Finding(
                cid,
                Status.FAIL,
                "; ".join(lines) + ". QEMU on the destination would silently clear them and "
                "the guest's virtio features would change under it",
                source=sorted(p for _, dep in failures for u in dep.devices for p in u.props_on),
                destination=[],
                fix="restart the guest with " + "; ".join(fixes) + " (or pin a -platform both "
                "hosts support)",
            )
        ]
    if unknowns:
        return [unknown(cid, *unknowns)]
    caps = ", ".join(_cap_text(ctx, c) for c in sorted(device_deps) if src.has(c) is Has.YES)
    return [
        Finding(
            cid,
            Status.PASS,
            f"kernel-dependent device defaults are available on both hosts ({caps or 'none on'})",
        )
    ]
