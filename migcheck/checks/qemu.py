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


@check(
    "qemu.reviewed",
    reads=("qemu.version",),
    summary=(
        "a QEMU newer than the newest release migcheck's catalog has reviewed (compat "
        "properties, blockers, known regressions): unknown, or a warning with "
        "--accept-unreviewed-qemu"
    ),
)
def check_reviewed(ctx: Context) -> list[Finding]:
    # Every version-dependent check (compat.defaults, blocker.*, machine.*, device.vmstate
    # rules) reads catalog data written for releases up to reviewed.newest; a newer QEMU
    # may change any of them in ways no static data records.
    cid = "qemu.reviewed"
    reasons = missing_qemu(ctx, "version")
    if reasons:
        return [unknown(cid, *reasons)]
    reviewed = ctx.platforms.reviewed
    if reviewed is None:
        return [unknown(cid, "the catalog records no reviewed QEMU release ([reviewed])")]
    newest = ".".join(map(str, reviewed.newest))
    newer = []
    for role, facts in (("source", ctx.src), ("destination", ctx.dst)):
        version = facts.qemu_version_tuple
        assert version is not None  # validated when the facts were loaded
        if version[:2] > reviewed.newest:
            newer.append(f"the {role} {facts.name} runs QEMU {facts.qemu_version}")
    if not newer:
        return [
            Finding(
                cid,
                Status.PASS,
                f"both QEMU releases are ones the catalog has reviewed (up to {newest})",
                ctx.src.qemu_version,
                ctx.dst.qemu_version,
            )
        ]
    what = (
        f"{' and '.join(newer)}, newer than {newest}, the newest release migcheck's catalog "
        "has reviewed: what it changed (compat properties, blockers, device state, "
        "regressions) is not known to the version-dependent checks. Static checks cannot "
        "know an unrecorded regression either: `migcheck trial` migrates a skeleton guest "
        "between the two real builds"
    )
    if ctx.accept_unreviewed:
        return [
            Finding(
                cid,
                Status.WARN,
                f"{what} (judged with what is known: --accept-unreviewed-qemu)",
                ctx.src.qemu_version,
                ctx.dst.qemu_version,
            )
        ]
    return [
        Finding(
            cid,
            Status.UNKNOWN,
            f"cannot judge: {what}",
            ctx.src.qemu_version,
            ctx.dst.qemu_version,
            fix="upgrade migcheck (a newer catalog reviews that release), or pass "
            "--accept-unreviewed-qemu to judge with what is known (this becomes a warning)",
        )
    ]
