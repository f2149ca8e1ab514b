"""Platform checks: host-kernel-dependent virtual hardware must exist on the destination.

``platform.support``: with ``-platform P`` both hosts must support P; without it, the
destination must have every capability the guest uses on the source (what the source's
effective platform gave it). ``kernel.device-defaults``: the device-level view of the same
question for properties QEMU turns on by default and clears silently on hosts without the
capability (virtio-net USO on tap since QEMU 8.2, UDP tunnel GSO since 10.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migcheck.checks.base import PLATFORM_READS, Context, Finding, Status, unknown
from migcheck.checks.kvm import PREFERRED_ONLY
from migcheck.checks.registry import check
from migcheck.dependencies import Dependency, guest_dependencies
from migcheck.platforms import Has, HostPlatforms, recommended_pin


def _machine(ctx: Context) -> str | None:
    return ctx.src.resolve_machine(ctx.vm.machine.type) or ctx.vm.machine.type


# A fleet judges one guest against hundreds of class pairs, three checks each ask: the
# answer depends only on the guest, the catalog and the machine type, so it is kept (with
# the objects, so their ids stay theirs) for the last few guests.
_deps_memo: dict[tuple[int, int, str | None, str | None], tuple[Any, Any, dict]] = {}


def guest_deps(ctx: Context) -> Mapping[str, Dependency]:
    machine = _machine(ctx)
    key = (id(ctx.vm), id(ctx.platforms), machine, ctx.vm.platform)
    hit = _deps_memo.get(key)
    if hit is not None and hit[0] is ctx.vm and hit[1] is ctx.platforms:
        return hit[2]
    deps = guest_dependencies(ctx.vm, ctx.platforms, machine, ctx.vm.platform)
    if len(_deps_memo) >= 64:
        _deps_memo.clear()
    _deps_memo[key] = (ctx.vm, ctx.platforms, deps)
    return deps


def cap_text(ctx: Context, cap_id: str) -> str:
    cap = ctx.platforms.capabilities[cap_id]
    mark = "" if cap.verified else "?"
    return f"{cap_id} (Linux {cap.linux}{mark})"


def _platform_name(hp: HostPlatforms) -> str:
    return hp.effective.id if hp.effective else "no catalogued platform"


@check(
    "platform.support",
    reads=PLATFORM_READS | {"qemu.machines"},
    summary=(
        "with `-platform P`: a host does not support P; without it: the guest uses a "
        "host-kernel capability (from the source's effective platform) that the "
        "destination lacks"
    ),
)
def check_support(ctx: Context) -> list[Finding]:
    cid = "platform.support"
    src, dst = ctx.src_platforms, ctx.dst_platforms
    if ctx.vm.platform is not None:
        return [_check_pinned(ctx, ctx.vm.platform, src, dst)]
    # Kernel-version capabilities only: hardware- and config-dependent ones are host.features,
    # and those QEMU falls back from are judged by kvm.* (kvm.PREFERRED_ONLY).
    deps = {
        c: d
        for c, d in guest_deps(ctx).items()
        if d.capability.in_platforms and c not in PREFERRED_ONLY
    }
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
        why = "; ".join(f"{cap_text(ctx, c)}: {dst.evidence[c].why}" for c in lacking)
        uses = "; ".join(r for c in lacking for r in needed[c].reasons)
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
        return [unknown(cid, *(f"{cap_text(ctx, c)}" for c in src_unknown + dst_unknown), *parts)]
    return [
        Finding(
            cid,
            Status.PASS,
            "every host-kernel capability the guest uses is on both hosts: "
            + ", ".join(cap_text(ctx, c) for c in sorted(needed)),
            source=_platform_name(src),
            destination=_platform_name(dst),
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
            why = ", ".join(f"{cap_text(ctx, c)} ({hp.evidence[c].why})" for c in lacking)
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
