"""Machine type checks: the destination must build the same versioned machine.

A versioned machine type (``pc-q35-8.2``) pins the guest's device defaults through QEMU's
compat properties. An alias (``q35``, ``pc``) or no ``-machine`` at all means "the newest
type this QEMU has", which differs between QEMU releases.
"""

from __future__ import annotations

from migcheck.checks.base import (
    Context,
    Finding,
    Status,
    machine_assumed,
    missing_qemu,
    unknown,
    with_assumed,
)
from migcheck.checks.registry import check
from migcheck.facts import Facts
from migcheck.findings import assumed_sides
from migcheck.machinetypes import newest_of_line


def newest_common(line_of: str, a: Facts, b: Facts) -> str | None:
    """The newest machine type of the same line (``pc-q35`` upstream, ``pc-q35`` RHEL, ...)
    that both hosts have."""
    if a.machines is None or b.machines is None:
        return None
    return newest_of_line(line_of, set(a.machines) & set(b.machines))


def _requested(ctx: Context) -> str:
    return ctx.vm.machine.type or "(default machine)"


@check(
    "machine.type",
    reads=("qemu.machines", "qemu.version"),
    summary=(
        "the versioned machine type the guest runs is missing from the destination QEMU "
        "(deprecated there: warning)"
    ),
    gates_start=True,
)
def check_type(ctx: Context) -> list[Finding]:
    return with_assumed(_check_type(ctx), *assumed_sides(machine_assumed(ctx)))


def _check_type(ctx: Context) -> list[Finding]:
    cid = "machine.type"
    reasons = missing_qemu(ctx, "machines")
    if reasons:
        return [unknown(cid, *reasons)]
    asked = ctx.vm.machine.type
    src_type = ctx.src.resolve_machine(asked)
    if src_type is None:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"the source QEMU has no machine type {_requested(ctx)!r}: "
                "the guest cannot be running there with this command line",
                source=None,
                destination=ctx.dst.resolve_machine(asked),
                fix="compare with 'qemu-system-x86_64 -machine help' on the source",
            )
        ]
    dst_machines = ctx.dst.machines or {}
    if src_type in dst_machines:
        deprecated = bool(dst_machines[src_type].get("deprecated"))
        if deprecated:
            return [
                Finding(
                    cid,
                    Status.WARN,
                    f"{src_type} exists on the destination but is deprecated there: "
                    "a later QEMU upgrade will remove it",
                    source=src_type,
                    destination=src_type,
                    fix="plan to restart the guest on a newer machine type",
                )
            ]
        return [
            Finding(
                cid,
                Status.PASS,
                f"{src_type} exists on both hosts",
                source=src_type,
                destination=src_type,
            )
        ]
    common = newest_common(src_type, ctx.src, ctx.dst)
    fix = f"upgrade QEMU on the destination to {ctx.src.qemu_version} or newer"
    if common:
        fix += f", or restart the guest with -machine {common} (the newest type both hosts have)"
    return [
        Finding(
            cid,
            Status.FAIL,
            f"the destination QEMU {ctx.dst.qemu_version} has no machine type {src_type}: "
            "it cannot rebuild the guest's hardware",
            source=src_type,
            destination=None,
            fix=fix,
        )
    ]


@check(
    "machine.alias",
    reads=("qemu.machines",),
    summary=(
        "an alias (`q35`, `pc`) or no `-machine` resolves to different versioned types on"
        " the two hosts"
    ),
)
def check_alias(ctx: Context) -> list[Finding]:
    return with_assumed(_check_alias(ctx), *assumed_sides(machine_assumed(ctx)))


def _check_alias(ctx: Context) -> list[Finding]:
    cid = "machine.alias"
    reasons = missing_qemu(ctx, "machines")
    if reasons:
        return [unknown(cid, *reasons)]
    asked = ctx.vm.machine.type
    if asked is not None and not ctx.src.is_machine_alias(asked):
        return [Finding(cid, Status.PASS, f"{asked} is a versioned machine type", asked, asked)]
    src_type = ctx.src.resolve_machine(asked)
    dst_type = ctx.dst.resolve_machine(asked)
    label = f"-machine {asked}" if asked else "no -machine (the default machine)"
    if src_type is None:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"{label} resolves to nothing on the source QEMU",
                source=None,
                destination=dst_type,
            )
        ]
    if src_type == dst_type:
        return [
            Finding(
                cid,
                Status.PASS,
                f"{label} resolves to {src_type} on both hosts; pinning it keeps it that way",
                source=src_type,
                destination=dst_type,
                fix=f"pin -machine {src_type}",
            )
        ]
    where = f"{dst_type} on the destination" if dst_type else "nothing on the destination"
    return [
        Finding(
            cid,
            Status.FAIL,
            f"{label} means {src_type} on the source but {where}: "
            "a destination started with the same command line builds different hardware",
            source=src_type,
            destination=dst_type,
            fix=f"pin the versioned type the guest runs now: -machine {src_type}",
        )
    ]
