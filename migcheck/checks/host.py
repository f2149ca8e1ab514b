"""Host resources outside QEMU that a guest's configuration names: memory backing paths."""

from __future__ import annotations

from migcheck.checks.base import PLATFORM_READS, Context, Finding, Status, unknown
from migcheck.checks.platform import guest_deps
from migcheck.checks.registry import check
from migcheck.platforms import Has


def _memory_paths(ctx: Context) -> list[str]:
    paths = []
    for obj in ctx.vm.objects:
        if obj.qom_type == "memory-backend-file" and isinstance(obj.props.get("mem-path"), str):
            paths.append(obj.props["mem-path"])
    for opt in ctx.vm.options:
        if opt.name == "mem-path" and opt.value:
            paths.append(opt.value)
    return sorted(set(paths))


@check(
    "host.memory",
    reads=(),
    summary=(
        "(warning) file-backed or hugepage guest memory: the path must exist on the destination"
    ),
)
def check_memory(ctx: Context) -> list[Finding]:
    """File-backed or hugepage memory needs the same path (and enough pages) on the
    destination; facts cannot tell free hugepages at migration time, so this warns."""
    cid = "host.memory"
    paths = _memory_paths(ctx)
    if not paths:
        return [Finding(cid, Status.PASS, "guest memory is anonymous: no host path needed")]
    huge = [p for p in paths if "huge" in p]
    what = "hugepage" if huge else "file-backed"
    return [
        Finding(
            cid,
            Status.WARN,
            f"{what} guest memory at {', '.join(paths)}: the destination needs the same "
            "path mounted" + (" with enough free hugepages" if huge else "") + " before migrating",
            source=paths,
            destination=None,
            fix="check the mount and free pages on the destination (e.g. /proc/meminfo "
            "HugePages_Free) before migrating",
        )
    ]


@check(
    "host.features",
    reads=PLATFORM_READS | {"qemu.machines"},
    summary=(
        "the guest uses a hardware- or configuration-dependent host feature (vhost-net "
        "for `vhost=on`, SEV, SGX, AMX, Hyper-V enlightenments, ...) the destination "
        "lacks"
    ),
)
def check_host_features(ctx: Context) -> list[Finding]:
    """Capabilities that depend on the destination's hardware or configuration (SEV, SGX,
    AMX, Hyper-V enlightenments, vhost-net, ...): the guest's use must be backed there."""
    cid = "host.features"
    deps = {c: d for c, d in guest_deps(ctx).items() if not d.capability.in_platforms}
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
