"""KVM and host limits (issue 21 section 4): kvm.vcpus, kvm.tsc, kvm.phys-bits, kvm.hyperv,
kvm.dirty-ring, and the dirty ring no longer failing platform.support.

Expectations come from the facts themselves (this machine's capture, or a live probe of it),
so the tests hold on Intel and AMD hosts alike; where the real QEMU can show the rule (it
refuses to start, or it starts) a live test runs it.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import time
from typing import Any

import pytest
from conftest import require
from qemudata import CAPS, caps_facts, fixture_facts

import migcheck.probe.probe as probe
from migcheck.checks.base import Status
from migcheck.checks.kvm import HV_BITS, parse_smp
from migcheck.cmdline import parse_cmdline
from migcheck.facts import Facts, validate
from migcheck.pair import check_pair
from migcheck.verdict import Verdict

BOOKWORM = "debian12-qemu7.2-epyc-pvm.json"
TRIXIE = "debian13-qemu10.0-epyc-pvm.json"


def vm(text: str, machine: str = "pc-q35-7.2"):
    return parse_cmdline(f"qemu-system-x86_64 -machine {machine} {text}", "test.cmdline")


def by_id(report, cid: str):
    (found,) = [f for f in report.findings if f.id == cid]
    return found


def edited(facts: Facts, edit) -> Facts:
    doc = copy.deepcopy(dict(facts.doc))
    edit(doc)
    return Facts(validate(doc, facts.origin), facts.origin)


def caps(**values: int):
    return lambda doc: doc["kvm"]["capabilities"].update(values)


# --- -smp as QEMU reads it ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("smp", "cpus", "maxcpus", "topology"),
    [
        (None, 1, 1, (1, 1, 1)),
        ("4", 4, 4, (1, 4, 1)),  # machine types >= 6.2 prefer cores over sockets
        ("4,maxcpus=8", 4, 8, (1, 8, 1)),
        ("sockets=2,cores=3,threads=2", 12, 12, (2, 3, 2)),
        ("8,sockets=2", 8, 8, (2, 4, 1)),
        ("cpus=6,cores=3,threads=2", 6, 6, (1, 3, 2)),
    ],
)
def test_smp_is_computed_as_qemu_does(smp, cpus, maxcpus, topology):
    spec = vm(f"-smp {smp}" if smp else "")
    parsed, why = parse_smp(spec.options)
    assert parsed is not None, why
    assert (parsed.cpus, parsed.maxcpus) == (cpus, maxcpus)
    assert (parsed.sockets, parsed.cores, parsed.threads) == topology


@pytest.mark.parametrize("smp", ["8,sockets=3,cores=2", "8,maxcpus=4", "four", "4,books=2"])
def test_unusable_smp_is_unknown(smp):
    host = fixture_facts(TRIXIE)
    finding = by_id(check_pair(vm(f"-accel kvm -smp {smp}"), host, host), "kvm.vcpus")
    assert finding.status is Status.UNKNOWN


def qmp(argv: list[str], commands: list[tuple[str, dict | None]]) -> list[Any]:
    q = probe.Qmp(argv, time.time() + 20)
    try:
        q.read_message()
        q.execute("qmp_capabilities")
        return [q.execute(c, a) for c, a in commands]
    finally:
        q.close()


def require_qemu() -> str:
    binary = shutil.which("qemu-system-x86_64")
    require(binary is not None, "qemu-system-x86_64 not installed")
    return binary  # type: ignore[return-value]


def base_argv(binary: str, *extra: str) -> list[str]:
    return [binary, "-S", "-nodefaults", "-display", "none", "-m", "64", *extra]


@pytest.mark.parametrize("smp", ["12,sockets=2,cores=3,threads=2", "8,sockets=1,dies=2,cores=2"])
def test_apic_ids_match_real_qemu(smp):
    """The APIC IDs migcheck compares with KVM_CAP_MAX_VCPU_ID are QEMU's (qom-get)."""
    binary = require_qemu()
    parsed, _ = parse_smp(vm(f"-smp {smp}").options)
    assert parsed is not None
    argv = base_argv(binary, "-machine", "pc-q35-7.2", "-accel", "tcg", "-smp", smp)
    argv += ["-qmp", "stdio"]
    q = probe.Qmp(argv, time.time() + 20)
    try:
        q.read_message()
        q.execute("qmp_capabilities")
        cpus = q.execute("query-cpus-fast")
        real = sorted(
            q.execute("qom-get", {"path": c["qom-path"], "property": "apic-id"}) for c in cpus
        )
    finally:
        q.close()
    assert real == sorted(parsed.apic_id(i) for i in range(parsed.cpus))
    # A topology with gaps: the highest APIC ID exceeds the vCPU count.
    assert max(real) >= parsed.cpus - 1


# --- kvm.vcpus ---------------------------------------------------------------------


def test_more_vcpus_than_the_machine_type_allows_is_unsafe():
    host = fixture_facts(TRIXIE)
    cpu_max = host.machines["pc-q35-7.2"]["cpu_max"]  # type: ignore[index]
    report = check_pair(vm(f"-accel kvm -smp 1,maxcpus={cpu_max + 1}"), host, host)
    finding = by_id(report, "kvm.vcpus")
    assert finding.status is Status.FAIL and f"at most {cpu_max}" in finding.message
    ok = check_pair(vm(f"-accel kvm -smp 2,maxcpus={cpu_max}"), host, host)
    assert by_id(ok, "kvm.vcpus").status is Status.PASS


def test_domain_xml_vcpus_are_judged_like_smp():
    """<vcpu> becomes the -smp libvirt writes: a domain with more vCPUs than the machine
    type allows is unsafe, as its command line would be (no silent one-vCPU default)."""
    from migcheck.domainxml import parse_domain_xml

    host = fixture_facts(TRIXIE)
    cpu_max = host.machines["pc-q35-7.2"]["cpu_max"]  # type: ignore[index]

    def domain(vcpu: str) -> str:
        return (
            "<domain type='kvm'><name>g</name><memory unit='KiB'>1048576</memory>"
            f"<vcpu placement='static'{vcpu}</vcpu>"
            "<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os></domain>"
        )

    too_many = parse_domain_xml(domain(f" current='2'>{cpu_max + 1}"), "g.xml")
    finding = by_id(check_pair(too_many, host, host), "kvm.vcpus")
    assert finding.status is Status.FAIL and f"at most {cpu_max}" in finding.message
    assert "assumed" not in str(finding.to_json())
    fits = parse_domain_xml(domain(">4"), "g.xml")
    assert by_id(check_pair(fits, host, host), "kvm.vcpus").status is Status.PASS


def test_more_vcpus_than_kvm_allows_is_unsafe():
    src = fixture_facts(TRIXIE)
    most = src.doc["kvm"]["capabilities"]["KVM_CAP_MAX_VCPUS"]
    dst = edited(src, caps(KVM_CAP_MAX_VCPUS=most // 2, KVM_CAP_MAX_VCPU_ID=most * 4))
    machine = max(src.machines.values(), key=lambda m: m.get("cpu_max") or 0)  # type: ignore[union-attr]
    assert machine["cpu_max"] >= most
    guest = vm(f"-accel kvm -smp {most}", machine["name"])
    assert by_id(check_pair(guest, src, src), "kvm.vcpus").status is Status.PASS
    finding = by_id(check_pair(guest, src, dst), "kvm.vcpus")
    assert finding.status is Status.FAIL and "KVM_CAP_MAX_VCPUS" in finding.message
    # Under TCG KVM's limits do not apply.
    tcg = vm(f"-accel tcg -smp {most}", machine["name"])
    assert by_id(check_pair(tcg, src, dst), "kvm.vcpus").status is Status.PASS


def test_apic_ids_beyond_max_vcpu_id_or_x2apic_api_are_unsafe():
    src = fixture_facts(TRIXIE)
    guest = vm("-accel kvm -smp 48,sockets=2,cores=12,threads=2")  # APIC IDs up to 63
    parsed, _ = parse_smp(guest.options)
    top = parsed.apic_id(parsed.maxcpus - 1)  # type: ignore[union-attr]
    assert top > parsed.maxcpus - 1  # type: ignore[union-attr]
    dst = edited(src, caps(KVM_CAP_MAX_VCPU_ID=top))
    finding = by_id(check_pair(guest, src, dst), "kvm.vcpus")
    assert finding.status is Status.FAIL and "KVM_CAP_MAX_VCPU_ID" in finding.message
    big = vm("-accel kvm -smp 256,sockets=2,cores=64,threads=2")
    no_x2apic = edited(src, caps(KVM_CAP_X2APIC_API=0))
    finding = by_id(check_pair(big, src, no_x2apic), "kvm.vcpus")
    assert finding.status is Status.FAIL and "X2APIC" in finding.message


def test_vcpus_unknown_without_the_facts():
    src = fixture_facts(TRIXIE)
    no_cpu_max = edited(src, lambda doc: [m.update(cpu_max=None) for m in doc["qemu"]["machines"]])
    finding = by_id(check_pair(vm("-accel kvm -smp 8"), src, no_cpu_max), "kvm.vcpus")
    assert finding.status is Status.UNKNOWN
    no_kvm = edited(src, lambda doc: doc.update(kvm={"error": "permission denied"}))
    report = check_pair(vm("-accel kvm -smp 8"), src, no_kvm)
    assert by_id(report, "kvm.vcpus").status is Status.UNKNOWN
    assert report.verdict is not Verdict.SAFE


def test_real_qemu_refuses_more_vcpus_than_the_machine_allows():
    binary = require_qemu()
    host = fixture_facts(BOOKWORM)
    cpu_max = host.machines["pc-q35-7.2"]["cpu_max"]  # type: ignore[index]
    argv = base_argv(binary, "-machine", "pc-q35-7.2", "-accel", "tcg", "-smp", str(cpu_max + 1))
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert done.returncode != 0 and f"is {cpu_max}" in done.stderr


# --- kvm.tsc ---------------------------------------------------------------------


def tsc_guest(khz: int):
    return vm(f"-accel kvm -cpu qemu64,tsc-frequency={khz * 1000}")


def test_tsc_frequency_the_destination_cannot_run_is_unsafe():
    src = fixture_facts(BOOKWORM)
    khz = src.kvm_vm["tsc_khz"]  # type: ignore[index]
    scaling = edited(src, caps(KVM_CAP_TSC_CONTROL=1))
    fixed = edited(src, caps(KVM_CAP_TSC_CONTROL=0))
    assert by_id(check_pair(tsc_guest(khz), src, fixed), "kvm.tsc").status is Status.PASS
    other = tsc_guest(khz - 1000)
    finding = by_id(check_pair(other, src, fixed), "kvm.tsc")
    assert finding.status is Status.FAIL and f"{khz} kHz" in finding.message
    assert by_id(check_pair(other, src, scaling), "kvm.tsc").status is Status.PASS


def test_tsc_frequency_unknown_without_the_destination_rate():
    src = fixture_facts(BOOKWORM)
    old = edited(src, lambda doc: (doc["kvm"].pop("vm"), caps(KVM_CAP_TSC_CONTROL=0)(doc)))
    finding = by_id(check_pair(tsc_guest(2_000_000), src, old), "kvm.tsc")
    assert finding.status is Status.UNKNOWN


def test_different_tsc_rates_without_tsc_frequency_only_warn():
    src = edited(fixture_facts(BOOKWORM), caps(KVM_CAP_TSC_CONTROL=0))
    khz = src.kvm_vm["tsc_khz"]  # type: ignore[index]
    guest = vm("-accel kvm -cpu qemu64")
    # Within KVM's 250 ppm tolerance the rates are the same to KVM; beyond it they are not.
    near = edited(src, lambda doc: doc["kvm"]["vm"].update(tsc_khz=khz + khz // 10_000))
    assert by_id(check_pair(guest, src, near), "kvm.tsc").status is Status.PASS
    far = edited(src, lambda doc: doc["kvm"]["vm"].update(tsc_khz=khz + khz // 1000))
    assert by_id(check_pair(guest, src, far), "kvm.tsc").status is Status.WARN


def require_kvm() -> dict[str, Any]:
    require_qemu()
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "no usable /dev/kvm")
    kvm = probe.collect_kvm()
    require(kvm.get("usable") and "tsc_khz" in kvm.get("vm", {}), "KVM gives no TSC rate")
    return kvm


def starts(binary: str, *extra: str) -> tuple[bool, str]:
    argv = base_argv(binary, "-machine", "pc-q35-7.2", "-accel", "kvm", *extra, "-qmp", "stdio")
    try:
        qmp(argv, [("query-status", None)])
        return True, ""
    except probe.QmpError as exc:
        return False, str(exc)


def test_real_qemu_agrees_on_tsc_frequency():
    """On this machine's real KVM: QEMU starts with tsc-frequency exactly when kvm.tsc says
    the host can run it (its own rate, or TSC scaling)."""
    kvm = require_kvm()
    binary = shutil.which("qemu-system-x86_64")
    facts = Facts(validate(live_doc(kvm), "live"), "live")
    khz = kvm["vm"]["tsc_khz"]
    for want in (khz, khz - 100_000):
        expected = by_id(check_pair(tsc_guest(want), facts, facts), "kvm.tsc").status
        ok, why = starts(binary, "-cpu", f"qemu64,tsc-frequency={want * 1000}")  # type: ignore[arg-type]
        assert ok is (expected is Status.PASS), (want, expected, why)


def live_doc(kvm: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(dict(fixture_facts(BOOKWORM).doc))
    doc["kvm"] = kvm
    doc["cpu"] = probe.collect_cpu()
    return doc


# --- kvm.phys-bits ---------------------------------------------------------------------


def with_bits(facts: Facts, bits: int | None) -> Facts:
    def edit(doc: dict[str, Any]) -> None:
        if bits is None:
            doc["cpu"].pop("phys_bits", None)
        else:
            doc["cpu"]["phys_bits"] = bits

    return edited(facts, edit)


def test_host_phys_bits_between_different_hosts_is_unsafe():
    src = fixture_facts(TRIXIE)
    bits = src.phys_bits
    assert isinstance(bits, int)
    dst = with_bits(src, bits - 2)
    for cpu in ("host", "qemu64,host-phys-bits=on"):
        finding = by_id(check_pair(vm(f"-accel kvm -cpu {cpu}"), src, dst), "kvm.phys-bits")
        assert finding.status is Status.FAIL and "CPUID changes" in finding.message
    capped = vm(f"-accel kvm -cpu host,host-phys-bits-limit={bits - 2}")
    assert by_id(check_pair(capped, src, dst), "kvm.phys-bits").status is Status.PASS


def test_guest_wider_than_the_destination_cpu_is_unsafe():
    src = with_bits(fixture_facts(TRIXIE), 48)
    narrow = with_bits(src, 39)  # client Intel CPUs have 39 bits
    # Named models get QEMU's default 40 bits (x86_cpu_realizefn(): TCG_PHYS_ADDR_BITS).
    finding = by_id(check_pair(vm("-accel kvm -cpu qemu64"), src, narrow), "kvm.phys-bits")
    assert finding.status is Status.FAIL and "only 39" in finding.message
    pinned = vm("-accel kvm -cpu qemu64,phys-bits=39")
    assert by_id(check_pair(pinned, src, narrow), "kvm.phys-bits").status is Status.PASS


def test_phys_bits_unknown_without_host_widths():
    src = fixture_facts(TRIXIE)
    old = with_bits(src, None)
    finding = by_id(check_pair(vm("-accel kvm -cpu host"), src, old), "kvm.phys-bits")
    assert finding.status is Status.UNKNOWN


# --- kvm.hyperv ---------------------------------------------------------------------


def hv_host(facts: Facts, flags: list[str]) -> Facts:
    """A KVM with Hyper-V that offers exactly ``flags`` (KVM_GET_SUPPORTED_HV_CPUID leaves)."""
    regs: dict[int, list[int]] = {}
    for flag in flags:
        for leaf, reg, bits in HV_BITS[flag]:
            regs.setdefault(leaf, [leaf, 0, 0, 0, 0, 0])[reg] |= bits

    def edit(doc: dict[str, Any]) -> None:
        doc["kvm"]["capabilities"].update(
            KVM_CAP_HYPERV=1, KVM_CAP_HYPERV_CPUID=1, KVM_CAP_HYPERV_VP_INDEX=1
        )
        doc["kvm"]["vm"]["hv_cpuid"] = sorted(regs.values())

    return edited(facts, edit)


def test_hyperv_flag_the_destination_lacks_is_unsafe():
    base = fixture_facts(TRIXIE)
    src = hv_host(base, ["hv-relaxed", "hv-vapic", "hv-time", "hv-synic"])
    dst = hv_host(base, ["hv-relaxed", "hv-vapic", "hv-time"])
    guest = vm("-accel kvm -cpu qemu64,hv-relaxed=on,hv-time=on,hv-synic=on")
    assert by_id(check_pair(guest, src, src), "kvm.hyperv").status is Status.PASS
    finding = by_id(check_pair(guest, src, dst), "kvm.hyperv")
    assert finding.status is Status.FAIL and "hv-synic" in finding.message


def test_hyperv_on_a_kvm_without_hyperv_drops_the_enlightenments():
    base = fixture_facts(TRIXIE)
    src = hv_host(base, ["hv-relaxed"])
    plain = edited(base, caps(KVM_CAP_HYPERV=0))
    guest = vm("-accel kvm -cpu qemu64,hv-relaxed=on")
    assert by_id(check_pair(guest, src, plain), "kvm.hyperv").status is Status.FAIL
    # QEMU ignores hv-* on both (hyperv_enabled()): the guest sees the same CPU.
    assert by_id(check_pair(guest, plain, plain), "kvm.hyperv").status is Status.PASS


def test_hyperv_unknown_when_kvm_has_hv_cpuid_but_facts_do_not():
    base = fixture_facts(TRIXIE)
    src = hv_host(base, ["hv-relaxed"])
    older = edited(src, lambda doc: doc["kvm"]["vm"].pop("hv_cpuid"))
    guest = vm("-accel kvm -cpu qemu64,hv-relaxed=on")
    assert by_id(check_pair(guest, src, older), "kvm.hyperv").status is Status.UNKNOWN
    # A flag the catalog ties to a KVM capability is decided by that capability.
    synic = vm("-accel kvm -cpu qemu64,hv-synic=on")
    src = hv_host(base, ["hv-synic"])
    with_cap = edited(older, caps(KVM_CAP_HYPERV_SYNIC2=1))
    without = edited(older, caps(KVM_CAP_HYPERV_SYNIC2=0))
    assert by_id(check_pair(synic, src, with_cap), "kvm.hyperv").status is Status.PASS
    finding = by_id(check_pair(synic, src, without), "kvm.hyperv")
    assert finding.status is Status.FAIL and "KVM_CAP_HYPERV_SYNIC2" in finding.message


def test_real_qemu_agrees_on_hyperv_flags():
    """On this machine's KVM: hv-vpindex starts iff kvm.hyperv says the destination has it;
    hv-relaxed starts either way (ignored without KVM_CAP_HYPERV)."""
    kvm = require_kvm()
    binary = shutil.which("qemu-system-x86_64")
    facts = Facts(validate(live_doc(kvm), "live"), "live")
    for flag in ("hv-vpindex", "hv-relaxed"):
        guest = vm(f"-accel kvm -cpu qemu64,{flag}=on")
        status = by_id(check_pair(guest, facts, facts), "kvm.hyperv").status
        ok, why = starts(binary, "-cpu", f"qemu64,{flag}=on")  # type: ignore[arg-type]
        if status is Status.PASS:
            assert ok, (flag, why)
        elif status is Status.FAIL:
            assert not ok, flag


# --- dirty ring: preferred, not required ---------------------------------------------------------


def test_dirty_ring_missing_on_the_destination_is_not_a_failure():
    src = fixture_facts(TRIXIE)
    dst = edited(src, caps(KVM_CAP_DIRTY_LOG_RING=0))
    report = check_pair(vm("-accel kvm,dirty-ring-size=4096 -cpu qemu64"), src, dst)
    assert by_id(report, "kvm.dirty-ring").status is Status.PASS
    assert "bitmap" in by_id(report, "kvm.dirty-ring").message
    assert by_id(report, "platform.support").status is not Status.FAIL


def test_dirty_ring_larger_than_kvm_allows_is_unsafe():
    src = fixture_facts(TRIXIE)
    most = src.doc["kvm"]["capabilities"]["KVM_CAP_DIRTY_LOG_RING"] // 16
    require(most > 0, "the capture's KVM has no dirty ring")
    small = edited(src, caps(KVM_CAP_DIRTY_LOG_RING=most * 8))  # half the entries
    guest = vm(f"-accel kvm,dirty-ring-size={most} -cpu qemu64")
    assert by_id(check_pair(guest, src, src), "kvm.dirty-ring").status is Status.PASS
    assert by_id(check_pair(guest, src, small), "kvm.dirty-ring").status is Status.FAIL
    no_kvm = edited(src, lambda doc: doc.update(kvm={"error": "x"}))
    assert by_id(check_pair(guest, src, no_kvm), "kvm.dirty-ring").status is Status.UNKNOWN


def test_real_qemu_refuses_a_too_large_dirty_ring():
    kvm = require_kvm()
    ring = kvm["capabilities"].get("KVM_CAP_DIRTY_LOG_RING", 0)
    require(ring > 0, "this KVM has no dirty ring")
    binary = shutil.which("qemu-system-x86_64")
    argv = [
        binary,
        "-S",
        "-nodefaults",
        "-display",
        "none",
        "-machine",
        "pc-q35-7.2",
        "-accel",
        f"kvm,dirty-ring-size={ring // 16 * 2}",
        "-qmp",
        "stdio",
    ]
    with pytest.raises(probe.QmpError, match="too big"):
        qmp(argv, [("query-status", None)])  # type: ignore[list-item]


# --- kvm-* PV features: the host expansion lists what the destination's KVM offers -------------


def test_kvm_pv_feature_the_destination_kvm_lacks_is_unsafe():
    src = fixture_facts(TRIXIE)
    offered = sorted(
        k
        for k, v in src.host_cpu["props"].items()  # type: ignore[index]
        if k.startswith("kvm-pv-") and v is True and k != "kvm-pv-enforce-cpuid"
    )
    assert offered, "the capture's KVM offers PV features"
    feature = offered[0]

    def drop(doc: dict[str, Any]) -> None:  # every spelling QEMU lists (kvm_pv_eoi too)
        props = doc["qemu"]["host_cpu"]["props"]
        for name in (feature, feature.replace("-", "_")):
            if name in props:
                props[name] = False

    dst = edited(src, drop)
    guest = vm(f"-accel kvm -cpu qemu64,{feature}=on")
    assert by_id(check_pair(guest, src, src), "cpu.features").status is Status.PASS
    finding = by_id(check_pair(guest, src, dst), "cpu.features")
    assert finding.status is Status.FAIL and feature in finding.message
    no_expansion = edited(src, lambda doc: doc["qemu"].update(host_cpu={"error": "x"}))
    assert by_id(check_pair(guest, src, no_expansion), "cpu.features").status is Status.UNKNOWN


def test_smp_of_machine_types_before_6_2_prefers_sockets():
    """hw/core/machine-smp.c: pc-*-6.1 and older derive omitted counts as sockets."""
    spec = vm("-smp 8,threads=2")
    new, _ = parse_smp(spec.options)
    old, _ = parse_smp(spec.options, prefer_sockets=True)
    assert (new.sockets, new.cores) == (1, 4)  # type: ignore[union-attr]
    assert (old.sockets, old.cores) == (4, 1)  # type: ignore[union-attr]


def test_cpu_max_of_real_qemu_versions():
    """libvirt's real query-machines answers: q35 types allow 288 CPUs up to 8.0, 1024 from
    8.1 and 4096 from 9.0; a guest sized for the newer type cannot start on the older."""
    require(CAPS.is_dir(), f"libvirt QMP dumps not found under {CAPS}")
    new, old = caps_facts("9.1.0"), caps_facts("8.0.0")
    new_max = new.machines[new.resolve_machine("q35")]["cpu_max"]  # type: ignore[index]
    old_max = old.machines[old.resolve_machine("q35")]["cpu_max"]  # type: ignore[index]
    assert new_max > old_max
    guest = parse_cmdline(
        f"qemu-system-x86_64 -machine q35 -accel kvm -smp 1,maxcpus={new_max}", "x"
    )
    finding = by_id(check_pair(guest, new, old), "kvm.vcpus")
    assert finding.status is Status.FAIL and f"at most {old_max}" in finding.message
    # The other way the machine type allows it, but libvirt's dumps hold no KVM limits.
    assert by_id(check_pair(guest, old, new), "kvm.vcpus").status is Status.UNKNOWN


def test_phys_bits_do_not_apply_to_32_bit_models():
    src = with_bits(fixture_facts(TRIXIE), 48)
    narrow = with_bits(src, 36)
    assert by_id(
        check_pair(vm("-accel kvm -cpu pentium3"), src, narrow), "kvm.phys-bits"
    ).status is (Status.PASS)
