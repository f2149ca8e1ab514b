"""Migration blockers: configurations QEMU itself refuses to live-migrate."""

from __future__ import annotations

from typing import Any

from migcheck.blockers import triggered
from migcheck.checks.base import Context, Finding, Status
from migcheck.checks.registry import check

# A fleet asks once per class pair; the answer depends on the guest, the catalog's blockers
# and the source's release only (objects kept with their ids, the last few guests).
_memo: dict[tuple[int, int, tuple[int, ...] | None], tuple[Any, Any, list]] = {}


def _triggered(vm: Any, blockers: Any, version: tuple[int, ...] | None) -> list:
    key = (id(vm), id(blockers), version)
    hit = _memo.get(key)
    if hit is not None and hit[0] is vm and hit[1] is blockers:
        return hit[2]
    found = triggered(vm, blockers, version)
    if len(_memo) >= 64:
        _memo.clear()
    _memo[key] = (vm, blockers, found)
    return found


@check(
    "blocker",
    "blocker.*",
    reads=("qemu.version",),
    summary=(
        "the configuration is one QEMU refuses to live-migrate "
        "(`migcheck/catalog/data/qemu/blockers.toml`: vfio-pci without `enable-"
        "migration=on`, ivshmem without `master=on`, `invtsc` without `tsc-frequency`, "
        "`hv-passthrough`, SEV/SNP/TDX guests, virgl GPUs, nvme, ...), each with the QEMU"
        " source that says so"
    ),
)
def check_blockers(ctx: Context) -> list[Finding]:
    version = ctx.src.qemu_version_tuple
    hits = _triggered(ctx.vm, ctx.platforms.blockers, version)
    if not any(b.severity == "block" and not b.postcopy_only for b, _ in hits):
        n = len(ctx.platforms.blockers)
        text = f"none of {n} known QEMU migration blockers applies"
        if hits:
            text += " to precopy migration (see the warnings)"
        status = Status.PASS
        audited = getattr(ctx.platforms.blockers, "qemu_max", None)
        if version is not None and audited is not None and version[:2] > audited[:2]:
            # A newer QEMU may refuse configurations no one has catalogued: never 'pass'.
            # --accept-unreviewed-qemu judges with what is known: a warning.
            status = Status.WARN if ctx.accept_unreviewed else Status.UNKNOWN
            text = (
                f"{text}, but the source's QEMU {'.'.join(map(str, version))} is newer than "
                f"the newest release whose blockers were audited "
                f"({'.'.join(map(str, audited))}): a blocker added since is not known; "
                "upgrade migcheck, or prove it with a trial migration (migcheck trial)"
                + (
                    " (judged with what is known: --accept-unreviewed-qemu)"
                    if ctx.accept_unreviewed
                    else ""
                )
            )
        findings = [Finding("blocker", status, text)]
        if not hits:
            return findings
    else:
        findings = []
    by_id: dict[str, list[str]] = {}
    for blocker, what in hits:
        by_id.setdefault(blocker.id, []).append(what)
    for blocker_id, whats in by_id.items():
        b = next(b for b, _ in hits if b.id == blocker_id)
        caveat = "" if b.verified else " (not confirmed in QEMU source)"
        # A warning: QEMU migrates it but the guest sees different host-backed hardware
        # (TPM passthrough), or QEMU refuses only postcopy (precopy, the default, works).
        warn = b.severity == "warn" or b.postcopy_only
        scope = "postcopy only, precopy is not blocked: " if b.postcopy_only else ""
        findings.append(
            Finding(
                f"blocker.{b.id}",
                Status.WARN if warn else Status.FAIL,
                f"{b.title}: {scope}{b.message} [{'; '.join(whats)}]{caveat}",
                source=whats,
                destination=None,
                fix=b.fix,
            )
        )
    return findings
