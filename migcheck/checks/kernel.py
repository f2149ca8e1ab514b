"""Kernel-dependent device defaults: properties QEMU turns on by default only where the
host kernel supports them, and clears silently elsewhere (virtio-net USO on tap since QEMU
8.2, UDP tunnel GSO since 10.2). The device-level view of ``platform.support``.
"""

from __future__ import annotations

from migcheck.checks.base import PLATFORM_READS, Context, Finding, Status, unknown
from migcheck.checks.platform import _machine, cap_text, guest_deps
from migcheck.checks.registry import check
from migcheck.dependencies import undecided_defaults
from migcheck.platforms import Has


@check(
    "kernel.device-defaults",
    reads=PLATFORM_READS | {"qemu.machines"},
    summary=(
        "a device property that QEMU turns on by default and silently clears on hosts "
        "without the kernel feature (virtio-net `host_uso`/`guest_uso4`/`guest_uso6` on "
        "tap for machine types >= 8.2) is on, and the destination kernel lacks the "
        "feature"
    ),
)
def check_device_defaults(ctx: Context) -> list[Finding]:
    cid = "kernel.device-defaults"
    deps = guest_deps(ctx)
    device_deps = {c: d for c, d in deps.items() if d.devices}
    # A machine type whose upstream version migcheck cannot tell (RHEL's, an Ubuntu type
    # not in machinetypes.UBUNTU_BASES) leaves version-dependent defaults undecided.
    undecided = [] if ctx.vm.platform else undecided_defaults(ctx.vm, ctx.platforms, _machine(ctx))
    if not device_deps and undecided:
        return [unknown(cid, *undecided)]
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
            unknowns.append(f"{cap_text(ctx, cap_id)} on the {who}: {hp.evidence[cap_id].why}")
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
    if unknowns or undecided:
        return [unknown(cid, *unknowns, *undecided)]
    caps = ", ".join(cap_text(ctx, c) for c in sorted(device_deps) if src.has(c) is Has.YES)
    return [
        Finding(
            cid,
            Status.PASS,
            f"kernel-dependent device defaults are available on both hosts ({caps or 'none on'})",
        )
    ]
