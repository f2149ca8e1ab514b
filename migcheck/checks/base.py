"""What every check shares: the context it reads and the finding it returns.

Checks are pure functions ``(Context) -> list[Finding]``: no I/O, no globals, so they can
be tested with facts built in memory and run thousands of times in a fleet matrix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

from migcheck.facts import Facts
from migcheck.findings import Finding, Status
from migcheck.vm import VmSpec

if TYPE_CHECKING:
    from migcheck.catalog import Catalog
    from migcheck.platforms import HostPlatforms


@dataclass(frozen=True, eq=False)
class Context:
    vm: VmSpec
    src: Facts
    dst: Facts
    catalog: Catalog | None = None  # None: the catalog shipped with migcheck
    # --accept-unreviewed-qemu: a QEMU newer than the catalog has reviewed is a warning.
    accept_unreviewed: bool = False

    @cached_property
    def platforms(self) -> Catalog:
        if self.catalog is not None:
            return self.catalog
        from migcheck.catalog import shipped_catalog

        return shipped_catalog()

    @cached_property
    def src_platforms(self) -> HostPlatforms:
        from migcheck.platforms import host_platforms

        return host_platforms(self.platforms, self.src)

    @cached_property
    def dst_platforms(self) -> HostPlatforms:
        from migcheck.platforms import host_platforms

        return host_platforms(self.platforms, self.dst)


def with_assumed(findings: Iterable[Finding], *notes: tuple[str, str]) -> list[Finding]:
    """``findings`` with ``notes`` ((side, why) pairs, see ``Finding.assumed``) added to each
    one that is not unknown (an unknown finding judged nothing, so it assumed nothing)."""
    out = []
    for f in findings:
        values = {"source": f.source, "destination": f.destination}
        # A side with no value ("-") assumed nothing.
        add = tuple(n for n in notes if n[0] not in values or values[n[0]] is not None)
        if f.status is Status.UNKNOWN or not add:
            out.append(f)
        else:
            out.append(replace(f, assumed=f.assumed + add))
    return out


def machine_assumed(ctx: Context) -> str | None:
    """Why the guest's machine type is assumed (no -machine: each host's default), or None."""
    if ctx.vm.machine.type is not None:
        return None
    return "QEMU's default, no -machine"


def unknown(check_id: str, *reasons: str | None) -> Finding:
    """A check that cannot judge: the verdict becomes unknown, never safe."""
    why = "; ".join(r for r in reasons if r) or "facts are missing"
    return Finding(check_id, Status.UNKNOWN, f"cannot judge: {why}")


# What host platform evidence reads (migcheck.platforms.HostPlatforms): checks that ask
# ctx.src_platforms / ctx.dst_platforms declare these.
PLATFORM_READS = frozenset(
    {
        "kernel.release",
        "os.id",
        "os.id_like",
        "os.version_id",
        "kvm.capabilities",
        "kvm.modules",
        "devices.*",
        "assumed.platform",
    }
)

_KVM_DEPENDENT = {"cpu_models", "host_cpu"}  # QEMU answers these per accelerator


def missing_qemu(ctx: Context, key: str) -> list[str]:
    """Reasons the QEMU facts ``key`` are unusable on either side (empty when usable).

    CPU answers gathered under TCG say nothing about a KVM guest: QEMU filters CPU features
    by accelerator, so they count as missing rather than as evidence."""
    reasons = []
    for role, facts in (("source", ctx.src), ("destination", ctx.dst)):
        why = facts.missing("qemu")
        if why is None and (facts.qemu or {}).get(key) is None:
            err = (facts.qemu or {}).get("error")
            why = f"no QEMU {key} facts" + (f" ({err})" if err else "")
        if (
            why is None
            and key in _KVM_DEPENDENT
            and ctx.vm.uses_kvm
            and facts.qemu_kvm_enabled is False
            and facts.kvm_usable is not False
        ):
            why = "QEMU's CPU answers were gathered without KVM" + (
                " (the probe could not open /dev/kvm: run it with --sudo)"
                if facts.kvm_denied
                else ""
            )
        if why:
            reasons.append(f"{role} {facts.name}: {why}")
    return reasons
