"""Pair verdicts on real host facts: bundled captures and libvirt's real QMP recordings."""

from __future__ import annotations

import pytest
from conftest import require
from qemudata import CAPS, CPUTEST, caps_facts, cputest_facts, fixture_facts, with_changes

from migcheck.checks.base import Status
from migcheck.cmdline import parse_cmdline
from migcheck.pair import check_pair
from migcheck.verdict import Verdict

BOOKWORM = "debian12-qemu7.2-epyc-pvm.json"  # this machine: QEMU 7.2 under KVM
TRIXIE = "debian13-qemu10.0-epyc-pvm.json"  # same machine, Debian 13's QEMU 10.0


def vm(text: str):
    return parse_cmdline(text, "test.cmdline")


def by_id(report, check_id: str):
    found = [f for f in report.findings if f.id == check_id]
    assert len(found) == 1, f"expected one {check_id} finding, got {found}"
    return found[0]


def shared_data() -> None:
    require(CAPS.is_dir() and CPUTEST.is_dir(), f"real QMP captures not found under {CAPS.parent}")


# --- bundled fixtures only (work on any machine) ----------------------------------------


def test_same_host_versioned_machine_is_safe():
    host = fixture_facts(BOOKWORM)
    report = check_pair(
        vm("qemu-system-x86_64 -machine pc-q35-7.2 -accel kvm -cpu host"), host, host
    )
    assert report.verdict is Verdict.SAFE, [f for f in report.findings if f.status != Status.PASS]
    assert by_id(report, "cpu.passthrough").status is Status.PASS


def test_machine_type_missing_on_destination_is_unsafe():
    report = check_pair(
        vm("-machine pc-q35-10.0 -accel kvm -cpu host"),
        fixture_facts(TRIXIE),
        fixture_facts(BOOKWORM),
    )
    assert report.verdict is Verdict.UNSAFE
    finding = by_id(report, "machine.type")
    assert finding.status is Status.FAIL
    assert finding.source == "pc-q35-10.0" and finding.destination is None
    # The fix names a type both QEMUs really have.
    assert "pc-q35-7.2" in (finding.fix or "")
    assert "pc-q35-7.2" in fixture_facts(TRIXIE).machines


def test_q35_alias_between_qemu_versions_is_unsafe():
    src, dst = fixture_facts(BOOKWORM), fixture_facts(TRIXIE)
    report = check_pair(vm("-machine q35 -accel kvm -cpu host"), src, dst)
    alias = by_id(report, "machine.alias")
    assert alias.status is Status.FAIL
    assert (alias.source, alias.destination) == ("pc-q35-7.2", "pc-q35-10.0")
    assert "-machine pc-q35-7.2" in (alias.fix or "")
    # The versioned type itself exists on the newer QEMU: only the alias is the problem.
    assert by_id(report, "machine.type").status is Status.PASS
    assert report.verdict is Verdict.UNSAFE


def test_default_machine_resolves_per_host():
    report = check_pair(vm("-accel kvm -cpu host"), fixture_facts(BOOKWORM), fixture_facts(TRIXIE))
    alias = by_id(report, "machine.alias")
    assert alias.status is Status.FAIL
    assert (alias.source, alias.destination) == ("pc-i440fx-7.2", "pc-i440fx-10.0")


def test_pinned_machine_between_qemu_versions_passes_machine_checks():
    report = check_pair(
        vm("-machine pc-q35-7.2 -accel kvm -cpu host"),
        fixture_facts(BOOKWORM),
        fixture_facts(TRIXIE),
    )
    assert by_id(report, "machine.type").status is Status.PASS
    assert by_id(report, "machine.alias").status is Status.PASS


def test_destination_without_qemu_facts_is_unknown():
    src = fixture_facts(BOOKWORM)
    dst = with_changes(src, qemu={"error": "no QEMU found"})
    report = check_pair(vm("-machine pc-q35-7.2 -accel kvm -cpu host"), src, dst)
    assert report.verdict is Verdict.UNKNOWN
    for cid in ("machine.type", "machine.alias", "cpu.passthrough", "accel.kvm", "qemu.version"):
        assert by_id(report, cid).status is Status.UNKNOWN, cid
    assert "no QEMU found" in by_id(report, "machine.type").message


def test_fail_wins_over_unknown():
    src = fixture_facts(TRIXIE)
    dst = with_changes(fixture_facts(BOOKWORM), kvm={"error": "permission denied"})
    report = check_pair(vm("-machine pc-q35-10.0 -accel kvm -cpu host"), src, dst)
    assert by_id(report, "accel.kvm").status is Status.UNKNOWN
    assert report.verdict is Verdict.UNSAFE


def test_kvm_unusable_on_destination_fails():
    src = fixture_facts(BOOKWORM)
    kvm = dict(src.doc["kvm"], usable=False)
    dst = with_changes(src, kvm=kvm)
    report = check_pair(vm("-machine pc-q35-7.2 -accel kvm -cpu host"), src, dst)
    assert by_id(report, "accel.kvm").status is Status.FAIL
    tcg = check_pair(vm("-machine pc-q35-7.2 -accel tcg -cpu qemu64"), src, dst)
    assert by_id(tcg, "accel.kvm").status is Status.PASS


def test_older_destination_qemu_warns():
    report = check_pair(
        vm("-machine pc-q35-7.2 -accel kvm -cpu host"),
        fixture_facts(TRIXIE),
        fixture_facts(BOOKWORM),
    )
    finding = by_id(report, "qemu.version")
    assert finding.status is Status.WARN
    assert (finding.source, finding.destination) == ("10.0.13", "7.2.22")


def test_model_blocked_identically_on_both_hosts_warns_not_fails():
    # Under this machine's KVM, EPYC-Rome lacks the same features with either QEMU binary
    # only if the sets match; assert what the real data says rather than assuming it.
    host = fixture_facts(BOOKWORM)
    report = check_pair(vm("-machine pc-q35-7.2 -accel kvm -cpu EPYC-Rome"), host, host)
    finding = by_id(report, "cpu.model")
    unavailable = host.cpu_models["EPYC-Rome"]["unavailable_features"]
    assert unavailable, "fixture premise: EPYC-Rome is blocked under this KVM"
    assert finding.status is Status.WARN
    assert report.verdict is Verdict.SAFE
    strict = check_pair(
        vm("-machine pc-q35-7.2 -accel kvm -cpu EPYC-Rome"), host, host, strict=True
    )
    assert strict.verdict is Verdict.UNSAFE
    enforced = check_pair(vm("-machine pc-q35-7.2 -accel kvm -cpu EPYC-Rome,enforce"), host, host)
    assert by_id(enforced, "cpu.model").status is Status.FAIL


# --- real QMP captures from ../shared/data ----------------------------------------------


def test_same_qemu_named_model_is_safe_on_real_capture():
    shared_data()
    host = caps_facts("9.1.0")
    report = check_pair(vm("-machine pc-q35-9.1 -nodefaults -accel kvm -cpu EPYC-Rome"), host, host)
    # -nodefaults: libvirt's recorded QMP holds no per-build data, so a guest with devices
    # would be unknown (tests/test_device_checks.py); this test is about the CPU model. The
    # BIOS image (pc.bios) is loaded whatever the devices: without the build's firmware
    # record its size is unknown (tests/test_firmware.py), and that is the only gap.
    unknowns = [f for f in report.findings if f.status is Status.UNKNOWN]
    assert [f.id for f in unknowns] == ["firmware.bios"], unknowns
    assert not [f for f in report.findings if f.status is Status.FAIL]
    assert report.verdict is Verdict.UNKNOWN


def test_machine_type_missing_on_older_real_qemu():
    shared_data()
    report = check_pair(
        vm("-machine pc-q35-9.1 -accel kvm -cpu EPYC-Rome"),
        caps_facts("9.1.0"),
        caps_facts("7.2.0"),
    )
    assert by_id(report, "machine.type").status is Status.FAIL
    assert "pc-q35-7.2" in (by_id(report, "machine.type").fix or "")


@pytest.mark.parametrize(
    ("old", "new"), [("6.2.0", "9.1.0"), ("7.2.0", "8.2.0"), ("8.1.0", "9.0.0")]
)
def test_q35_alias_across_real_qemu_versions(old: str, new: str):
    shared_data()
    src, dst = caps_facts(old), caps_facts(new)
    report = check_pair(vm("-machine q35 -accel kvm -cpu qemu64"), src, dst)
    alias = by_id(report, "machine.alias")
    assert alias.status is Status.FAIL
    assert alias.source == src.resolve_machine("q35") != alias.destination


def test_named_model_blocked_on_destination_names_features():
    shared_data()
    src = caps_facts("9.1.0")  # AMD Ryzen 9 3900X: EPYC (Naples) is usable
    dst = cputest_facts("Core-i7-8700")  # Intel, a QEMU without model versions
    assert src.cpu_models["EPYC"]["unavailable_features"] == []
    missing = set(dst.cpu_models["EPYC"]["unavailable_features"])
    assert missing
    report = check_pair(vm("-machine pc-q35-9.1 -accel kvm -cpu EPYC"), src, dst)
    finding = by_id(report, "cpu.model")
    assert finding.status is Status.FAIL
    assert report.verdict is Verdict.UNSAFE
    named = [f for f in sorted(missing)[:5]]
    assert all(f in finding.message for f in named), finding.message
    assert set(finding.destination) == missing


def test_host_passthrough_between_different_intel_generations_is_unsafe():
    shared_data()
    src = cputest_facts("Xeon-Gold-6130")  # Skylake-SP with AVX-512
    dst = cputest_facts("Core-i7-8700")  # Coffee Lake client, no AVX-512
    report = check_pair(vm("-machine pc-q35-9.1 -accel kvm -cpu host"), src, dst)
    finding = by_id(report, "cpu.passthrough")
    assert finding.status is Status.FAIL
    assert "avx512f" in finding.source
    assert report.verdict is Verdict.UNSAFE


def test_host_passthrough_across_vendors_is_unsafe():
    shared_data()
    report = check_pair(
        vm("-machine pc-q35-9.1 -accel kvm -cpu host"),
        caps_facts("9.1.0"),
        cputest_facts("Core-i7-8700"),
    )
    finding = by_id(report, "cpu.passthrough")
    assert finding.status is Status.FAIL
    assert (finding.source, finding.destination) == ("AuthenticAMD", "GenuineIntel")


def test_explicit_feature_missing_on_destination_fails():
    shared_data()
    report = check_pair(
        vm("-machine pc-q35-9.1 -accel kvm -cpu Skylake-Client,+avx512f"),
        cputest_facts("Xeon-Gold-6130"),
        cputest_facts("Core-i7-8700"),
    )
    finding = by_id(report, "cpu.features")
    assert finding.status is Status.FAIL
    assert "avx512f" in finding.message
    # Feature spellings are normalised: sse4_1 is sse4.1.
    same = check_pair(
        vm("-machine pc-q35-9.1 -accel kvm -cpu Skylake-Client,+sse4_1"),
        cputest_facts("Xeon-Gold-6130"),
        cputest_facts("Core-i7-8700"),
    )
    assert by_id(same, "cpu.features").status is Status.PASS
