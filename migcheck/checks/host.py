"""Host resources outside QEMU that a guest's configuration names: memory backing paths."""

from __future__ import annotations

from migcheck.checks.base import Context, Finding, Status


def _memory_paths(ctx: Context) -> list[str]:
    paths = []
    for obj in ctx.vm.objects:
        if obj.qom_type == "memory-backend-file" and isinstance(obj.props.get("mem-path"), str):
            paths.append(obj.props["mem-path"])
    for opt in ctx.vm.options:
        if opt.name == "mem-path" and opt.value:
            paths.append(opt.value)
    return sorted(set(paths))


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
