"""QEMU version check: migrating to an older QEMU is the less travelled direction."""

from __future__ import annotations

from migcheck.checks.base import Context, Finding, Status, missing_qemu, unknown
from migcheck.checks.registry import check


@check(
    "qemu.version",
    reads=("qemu.version",),
    summary=("(warning) the destination QEMU is older than the source's"),
)
def check_version(ctx: Context) -> list[Finding]:
    cid = "qemu.version"
    reasons = missing_qemu(ctx, "version")
    if reasons:
        return [unknown(cid, *reasons)]
    src, dst = ctx.src.qemu_version, ctx.dst.qemu_version
    src_t, dst_t = ctx.src.qemu_version_tuple, ctx.dst.qemu_version_tuple
    assert src_t is not None and dst_t is not None  # validated when the facts were loaded
    if dst_t < src_t:
        return [
            Finding(
                cid,
                Status.WARN,
                f"the destination QEMU {dst} is older than the source's {src}: backward "
                "migration works only for machine types and devices the older QEMU knows, "
                "and is less tested upstream",
                source=src,
                destination=dst,
                fix="prefer migrating to a host with the same or a newer QEMU",
            )
        ]
    rel = "the same as" if dst_t == src_t else "newer than"
    return [Finding(cid, Status.PASS, f"destination QEMU {dst} is {rel} the source's", src, dst)]
