"""Accelerator check: a KVM guest needs a working KVM on the destination."""

from __future__ import annotations

import os

from migcheck.checks.base import Context, Finding, Status, unknown
from migcheck.checks.registry import check
from migcheck.vm import VmSpec


def guest_accel(vm: VmSpec) -> tuple[str, str]:
    """The accelerator the guest runs under and how the command line says so.

    QEMU tries the listed accelerators in order; the first is what a started guest uses on
    a host that has it (a guest that fell back to TCG on the source is a TCG guest, which
    facts cannot tell: the first one is judged). With none listed, QEMU picks "kvm:tcg" when
    the program name ends in "kvm" (RHEL's /usr/libexec/qemu-kvm) and "tcg:kvm" otherwise
    (softmmu/vl.c, system/vl.c since 8.1, configure_accelerators())."""
    if vm.accel:
        return vm.accel[0], "-accel " + ":".join(vm.accel)
    if vm.binary and os.path.basename(vm.binary).endswith("kvm"):
        return "kvm", f"{os.path.basename(vm.binary)} (defaults to KVM)"
    return "tcg", "no accelerator given (QEMU defaults to TCG)"


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
    if not wants:
        return [Finding(cid, Status.PASS, f"{how}: KVM not required")]
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
            )
        ]
    return [Finding(cid, Status.PASS, f"KVM usable on both hosts ({how})", src_text, dst_text)]
