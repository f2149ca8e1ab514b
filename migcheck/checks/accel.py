"""Accelerator check: a KVM guest needs a working KVM on the destination."""

from __future__ import annotations

import os

from migcheck.checks.base import Context, Finding, Status, unknown
from migcheck.checks.registry import check
from migcheck.findings import assumed_sides
from migcheck.vm import VmSpec


def guest_accel(vm: VmSpec) -> tuple[str, str]:
    """The accelerator the guest runs under and how the command line says so
    (:meth:`VmSpec.accel_in_effect`)."""
    accel, how, _assumed = vm.accel_in_effect()
    return accel, how


def accel_assumed(vm: VmSpec) -> str | None:
    """Why the accelerator is assumed (the input names none), or None."""
    accel, _how, assumed = vm.accel_in_effect()
    if not assumed:
        return None
    binary = os.path.basename(vm.binary or "") or "QEMU"
    return f"accelerator {accel}, {binary}'s default, no -accel"


def _wants_kvm(ctx: Context) -> tuple[bool, str]:
    accel, how = guest_accel(ctx.vm)
    return accel == "kvm", how


@check(
    "accel.kvm",
    reads=("kvm.present", "kvm.usable", "kvm.error_open", "qemu.kvm"),
    summary=("the guest uses KVM and the destination cannot"),
    gates_start=True,
)
def check_kvm(ctx: Context) -> list[Finding]:
    cid = "accel.kvm"
    wants, how = _wants_kvm(ctx)
    guessed = assumed_sides(accel_assumed(ctx.vm), "guest")
    if not wants:
        return [Finding(cid, Status.PASS, f"{how}: KVM not required", assumed=guessed)]
    sides = {}
    for role, facts in (("source", ctx.src), ("destination", ctx.dst)):
        usable = facts.kvm_usable
        enabled = facts.qemu_kvm_enabled
        if usable is None or enabled is None:
            why = facts.missing("kvm") or facts.missing("qemu") or "no QEMU KVM facts"
            if facts.kvm_denied:
                why = "the probe could not open /dev/kvm (permission denied): run it with --sudo"
            return [unknown(cid, f"{role} {facts.name}: {why}")]
        sides[role] = usable and enabled
    src_text = "KVM enabled" if sides["source"] else "KVM unavailable"
    dst_text = "KVM enabled" if sides["destination"] else "KVM unavailable"
    if not sides["destination"]:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"the guest uses KVM ({how}) but the destination's QEMU cannot use KVM "
                "(no usable /dev/kvm or KVM disabled)",
                source=src_text,
                destination=dst_text,
                fix="load the kvm module on the destination (and check /dev/kvm permissions)",
                assumed=guessed,
            )
        ]
    return [
        Finding(
            cid,
            Status.PASS,
            f"KVM usable on both hosts ({how})",
            src_text,
            dst_text,
            assumed=guessed,
        )
    ]
