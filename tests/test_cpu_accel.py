"""CPU checks per accelerator (issue 21 section 3): under TCG the CPU is QEMU's emulation.

Real data: the bundled captures of QEMU 7.2 and 10.0 on this machine (their ``qemu.tcg`` was
gathered by the probe's second, ``-accel tcg`` QEMU run), the real QEMUs themselves, and the
TCG phase of libvirt's real QMP dumps of QEMU 6.2-9.1 (``../shared/data``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import require
from qemudata import CAPS, fixture_facts, read_qmp_objects

import migcheck.probe.probe as probe
from migcheck.checks.base import Status
from migcheck.checks.cpu import ACCEL_DEFAULT_PROPS, expansion_features
from migcheck.cmdline import parse_cmdline
from migcheck.cpufeatures import canonical
from migcheck.facts import Facts, FactsError, validate
from migcheck.pair import check_pair
from migcheck.verdict import Verdict

BOOKWORM = "debian12-qemu7.2-epyc-pvm.json"  # QEMU 7.2 on this machine
TRIXIE = "debian13-qemu10.0-epyc-pvm.json"  # Debian 13's QEMU 10.0, same machine
CHROOT = Path("/var/tmp/migcheck-trixie")


def vm(text: str):
    return parse_cmdline("qemu-system-x86_64 -machine pc-q35-7.2 " + text, "test.cmdline")


def by_id(report, cid: str):
    (found,) = [f for f in report.findings if f.id == cid]
    return found


def edited(facts: Facts, edit) -> Facts:
    doc = copy.deepcopy(dict(facts.doc))
    edit(doc)
    return Facts(validate(doc, facts.origin), facts.origin)


def tcg_on(facts: Facts) -> set[str]:
    return {f for f, on in (expansion_features(facts, "tcg") or {}).items() if on}


# --- -cpu max under TCG: QEMU's emulation differs between builds -----------------------


def test_tcg_max_between_qemu_72_and_100_is_unsafe_both_ways():
    old, new = fixture_facts(BOOKWORM), fixture_facts(TRIXIE)
    # The two builds' own TCG answers differ (measured: 10.0 adds rdseed, sha-ni, fsrm...).
    assert tcg_on(old) != tcg_on(new)
    for src, dst in ((old, new), (new, old)):
        report = check_pair(vm("-accel tcg -cpu max"), src, dst)
        finding = by_id(report, "cpu.passthrough")
        assert finding.status is Status.FAIL, finding
        assert report.verdict is Verdict.UNSAFE
    # Same build on both sides: the same emulated CPU.
    assert by_id(check_pair(vm("-accel tcg -cpu max"), new, new), "cpu.passthrough").status is (
        Status.PASS
    )


def test_no_accelerator_on_an_upstream_binary_is_tcg():
    old, new = fixture_facts(BOOKWORM), fixture_facts(TRIXIE)
    finding = by_id(check_pair(vm("-cpu max"), old, new), "cpu.passthrough")
    assert finding.status is Status.FAIL
    # Named "qemu-kvm" the binary defaults to KVM: the host expansions decide instead.
    kvm = parse_cmdline("/usr/libexec/qemu-kvm -machine pc-q35-7.2 -cpu max", "x")
    assert by_id(check_pair(kvm, old, old), "cpu.passthrough").status is Status.PASS


def test_tcg_max_is_judged_by_tcg_answers_not_by_kvm_ones():
    host = fixture_facts(TRIXIE)

    def other_kvm_answers(doc: dict[str, Any]) -> None:  # a different host CPU under KVM
        doc["qemu"]["host_cpu"]["props"]["avx512f"] = not doc["qemu"]["host_cpu"]["props"].get(
            "avx512f", False
        )

    other = edited(host, other_kvm_answers)
    assert by_id(check_pair(vm("-accel kvm -cpu max"), host, other), "cpu.passthrough").status is (
        Status.FAIL
    )
    assert by_id(check_pair(vm("-accel tcg -cpu max"), host, other), "cpu.passthrough").status is (
        Status.PASS
    )


def test_tcg_guest_without_tcg_answers_is_unknown():
    old, new = fixture_facts(BOOKWORM), fixture_facts(TRIXIE)
    bare = edited(new, lambda doc: doc["qemu"].pop("tcg"))
    assert bare.qemu_kvm_enabled is True  # the one QEMU run used KVM: no TCG evidence
    for cmd, cid in (("-cpu max", "cpu.passthrough"), ("-cpu Haswell", "cpu.model")):
        report = check_pair(vm("-accel tcg " + cmd), old, bare)
        assert by_id(report, cid).status is Status.UNKNOWN, by_id(report, cid)
        assert "TCG" in by_id(report, cid).message
        assert report.verdict is not Verdict.SAFE
    failed = edited(new, lambda doc: doc["qemu"].update(tcg={"error": "QEMU exited"}))
    assert by_id(check_pair(vm("-accel tcg -cpu max"), old, failed), "cpu.passthrough").status is (
        Status.UNKNOWN
    )


def test_one_qemu_run_that_fell_back_to_tcg_answers_for_tcg():
    """Facts of a host without usable KVM: the probe's only QEMU ran under TCG, so its
    answers are QEMU's TCG answers (Facts.tcg uses them when qemu.tcg is absent)."""
    new = fixture_facts(TRIXIE)

    def no_kvm(doc: dict[str, Any]) -> None:
        tcg = doc["qemu"].pop("tcg")
        doc["qemu"]["kvm"] = {"enabled": False, "present": False}
        doc["qemu"]["cpu_models"] = tcg["cpu_models"]
        doc["qemu"]["host_cpu"] = tcg["max_cpu"]

    tcg_host = edited(new, no_kvm)
    assert tcg_on(tcg_host) == tcg_on(new)
    report = check_pair(vm("-accel tcg -cpu max"), new, tcg_host)
    assert by_id(report, "cpu.passthrough").status is Status.PASS


# --- named models under TCG ---------------------------------------------------------------


def unavailable(facts: Facts, model: str, accel: str) -> set[str]:
    models = facts.tcg_cpu_models if accel == "tcg" else facts.cpu_models
    return {canonical(f) for f in (models or {})[model]["unavailable_features"] or []}


def test_named_model_under_tcg_follows_each_builds_emulation():
    old, new = fixture_facts(BOOKWORM), fixture_facts(TRIXIE)
    diffs = [
        name
        for name in sorted(old.tcg_cpu_models or {})
        if name in (new.tcg_cpu_models or {})
        and not name.endswith(("-v1", "-v2", "-v3", "-v4", "-v5", "-v6", "-v7"))
        and name not in ("host", "max", "base")
        and unavailable(old, name, "tcg") != unavailable(new, name, "tcg")
    ]
    assert diffs, "the two TCG builds should differ on some named model"
    name = "Haswell" if "Haswell" in diffs else diffs[0]
    gained = unavailable(old, name, "tcg") - unavailable(new, name, "tcg")
    report = check_pair(vm(f"-accel tcg -cpu {name}"), old, new)
    finding = by_id(report, "cpu.model")
    assert finding.status is Status.FAIL
    assert "under TCG" in finding.message
    assert all(f in finding.message for f in sorted(gained)[:3])
    # Models both builds emulate fully are safe under TCG.
    same = next(
        n
        for n in sorted(new.tcg_cpu_models or {})
        if n in (old.tcg_cpu_models or {})
        and not unavailable(old, n, "tcg")
        and not unavailable(new, n, "tcg")
    )
    assert by_id(check_pair(vm(f"-accel tcg -cpu {same}"), old, new), "cpu.model").status is (
        Status.PASS
    )


def test_kvm_only_checks_do_not_apply_to_tcg_guests():
    host = fixture_facts(TRIXIE)
    no_kvm = edited(host, lambda doc: doc["kvm"].update(present=False, usable=False))
    report = check_pair(vm("-accel tcg -cpu EPYC,+svm"), host, no_kvm)
    assert by_id(report, "accel.kvm").status is Status.PASS
    assert by_id(report, "cpu.nested").status is Status.PASS
    for cid in ("kvm.tsc", "kvm.phys-bits", "kvm.hyperv"):
        assert by_id(report, cid).status is Status.PASS, cid
    # The same guest under KVM needs KVM on the destination.
    kvm_report = check_pair(vm("-accel kvm -cpu EPYC,+svm"), host, no_kvm)
    assert by_id(kvm_report, "accel.kvm").status is Status.FAIL


def test_cpu_host_under_tcg_cannot_start():
    host = fixture_facts(TRIXIE)
    finding = by_id(check_pair(vm("-accel tcg -cpu host"), host, host), "cpu.passthrough")
    assert finding.status is Status.FAIL and "needs KVM" in finding.message


# --- invtsc: no spurious warning -------------------------------------------------------------


def test_invtsc_with_tsc_frequency_is_neither_warned_nor_blocked():
    src, dst = fixture_facts(BOOKWORM), fixture_facts(TRIXIE)
    khz = dst.kvm_vm["tsc_khz"]  # type: ignore[index]
    report = check_pair(
        vm(f"-accel kvm -cpu pentium3,+invtsc,tsc-frequency={khz * 1000}"), src, dst
    )
    # The migratable host expansion never lists invtsc (unmigratable_flags), yet KVM gives it
    # to a model that asks: judged from the host's nonstop_tsc/constant_tsc flags.
    assert dst.host_cpu["props"].get("invtsc") is not True  # type: ignore[index]
    has_invtsc = {"nonstop_tsc", "constant_tsc"} <= set(dst.section("cpu")["flags"])  # type: ignore[index]
    expected = Status.PASS if has_invtsc else Status.FAIL
    assert by_id(report, "cpu.features").status is expected
    assert not [f for f in report.findings if f.id == "blocker.invtsc"]
    # Without a frequency QEMU registers its invtsc blocker: still unsafe.
    plain = check_pair(vm("-accel kvm -cpu pentium3,+invtsc"), src, dst)
    assert by_id(plain, "blocker.invtsc").status is Status.FAIL


def test_invtsc_lost_on_a_destination_without_an_invariant_tsc():
    src = fixture_facts(TRIXIE)
    require(
        {"nonstop_tsc", "constant_tsc"} <= set(src.section("cpu")["flags"]), "capture lacks invtsc"
    )  # type: ignore[index]
    dst = edited(
        src,
        lambda doc: doc["cpu"].update(
            flags=[f for f in doc["cpu"]["flags"] if f not in ("nonstop_tsc", "constant_tsc")]
        ),
    )
    report = check_pair(vm("-accel kvm -cpu pentium3,+invtsc,tsc-frequency=2000000000"), src, dst)
    finding = by_id(report, "cpu.features")
    assert finding.status is Status.FAIL and "invtsc" in finding.message


# --- real QEMU: the accelerator defaults and the TCG answers ---------------------------------


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


def expand(binary: str, accel: str, model: str, prefix: list[str] | None = None) -> dict:
    argv = (prefix or []) + [
        binary,
        "-S",
        "-nodefaults",
        "-display",
        "none",
        "-machine",
        "none",
        "-accel",
        accel,
        "-qmp",
        "stdio",
    ]
    (answer,) = qmp(
        argv, [("query-cpu-model-expansion", {"type": "full", "model": {"name": model}})]
    )
    return answer["model"]["props"]


def test_accelerator_default_props_match_real_qemu():
    """ACCEL_DEFAULT_PROPS against QEMU 7.2 itself: EPYC lists svm and vme in its definition;
    KVM switches svm (and monitor) off and x2apic on, TCG switches vme off."""
    binary = require_qemu()
    tcg = expand(binary, "tcg", "EPYC")
    for prop, value in ACCEL_DEFAULT_PROPS["tcg"].items():
        assert tcg[prop] is value, prop
    assert tcg["svm"] is True  # EPYC's own definition, untouched by TCG
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "no usable /dev/kvm")
    kvm = expand(binary, "kvm", "EPYC")
    for prop in ("svm", "monitor", "acpi", "x2apic", "kvmclock", "kvm-pv-eoi"):
        assert kvm[prop] is ACCEL_DEFAULT_PROPS["kvm"][prop], prop


def test_probe_gathers_tcg_answers_in_a_second_run():
    require_qemu()
    kvm = probe.collect_kvm()
    qemu = probe.collect_qemu("x86_64", kvm)
    assert "error" not in qemu, qemu.get("error")
    started = time.monotonic()
    tcg = probe.collect_qemu_tcg(qemu)
    spent = time.monotonic() - started
    assert "error" not in tcg, tcg
    assert len(tcg["cpu_models"]) == len(qemu["cpu_models"])
    assert tcg["max_cpu"]["model"] == "max" and tcg["max_cpu"]["props"]
    if qemu["kvm"].get("enabled"):
        # Under KVM the answers differ (the host CPU vs QEMU's emulation), and it cost one
        # more short QEMU run.
        assert tcg["max_cpu"]["props"] != qemu["host_cpu"]["props"]
        assert spent < 5
    else:
        assert tcg.get("same_run") is True


def test_real_tcg_max_differs_between_qemu_72_and_100():
    binary = require_qemu()
    require((CHROOT / "usr/bin/qemu-system-x86_64").exists(), f"no Debian 13 chroot at {CHROOT}")
    old = expand(binary, "tcg", "max")
    new = expand("qemu-system-x86_64", "tcg", "max", prefix=["chroot", str(CHROOT)])

    def on(props: dict) -> set[str]:
        return {canonical(k) for k, v in props.items() if v is True}

    assert on(old) != on(new)
    # The bundled captures hold exactly these answers.
    assert on(old) == {
        canonical(k) for k, v in fixture_facts(BOOKWORM).tcg_max_cpu["props"].items() if v is True
    }  # type: ignore[index]
    assert on(new) == {
        canonical(k) for k, v in fixture_facts(TRIXIE).tcg_max_cpu["props"].items() if v is True
    }  # type: ignore[index]


# --- libvirt's real QMP dumps: their TCG phase ---------------------------------------------


def libvirt_tcg_facts(version: str) -> Facts:
    """A host from libvirt's dump of QEMU ``version``: libvirt probes twice, and the answers
    after the second ``qmp_capabilities`` are the TCG ones. libvirt expands max with type
    "static" (features as props of a base model); that is what this helper records."""
    path = CAPS / f"caps_{version}_x86_64.replies"
    objs = read_qmp_objects(path)
    pending: dict[str, tuple[str, dict]] = {}
    phase, defs, max_props = 0, None, None
    for obj in objs:
        if "execute" in obj:
            if obj["execute"] == "qmp_capabilities":
                phase += 1
            pending[obj.get("id", "")] = (obj["execute"], obj.get("arguments") or {})
        elif "return" in obj and obj.get("id") in pending and phase == 2:
            cmd, args = pending.pop(obj["id"])
            if cmd == "query-cpu-definitions" and defs is None:
                defs = obj["return"]
            model = args.get("model", {})
            if cmd == "query-cpu-model-expansion" and model == {"name": "max"}:
                max_props = obj["return"]["model"]["props"]
    assert defs and max_props, path
    doc = json.loads((Path(__file__).parents[1] / "fixtures/hosts" / TRIXIE).read_text())
    doc["host"] = {"name": f"libvirt-qemu-{version}"}
    doc["qemu"]["version"] = version
    doc["qemu"]["tcg"] = {
        "cpu_models": [
            {
                "name": d["name"],
                "alias_of": d.get("alias-of"),
                "unavailable_features": d.get("unavailable-features"),
            }
            for d in defs
        ],
        "max_cpu": {"model": "max", "props": max_props},
    }
    return Facts(validate(doc, str(path)), str(path))


def test_libvirt_tcg_max_across_real_qemu_versions():
    require(CAPS.is_dir(), f"libvirt QMP dumps not found under {CAPS}")
    old, new = libvirt_tcg_facts("6.2.0"), libvirt_tcg_facts("9.1.0")
    assert tcg_on(old) != tcg_on(new)
    guest = vm("-accel tcg -cpu max")
    assert by_id(check_pair(guest, old, new), "cpu.passthrough").status is Status.FAIL
    assert by_id(check_pair(guest, new, old), "cpu.passthrough").status is Status.FAIL
    assert by_id(check_pair(guest, new, new), "cpu.passthrough").status is Status.PASS


# --- facts: the new fields are type-checked ---------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d["qemu"].update(tcg=[]), "qemu.tcg should be dict"),
        (lambda d: d["qemu"]["tcg"].update(cpu_models="Haswell"), "qemu.tcg.cpu_models"),
        (
            lambda d: d["qemu"]["tcg"]["cpu_models"].append(d["qemu"]["tcg"]["cpu_models"][0]),
            "listed twice",
        ),
        (
            lambda d: d["qemu"]["tcg"]["cpu_models"][0].update(unavailable_features="vmx"),
            "unavailable_features should be list",
        ),
        (lambda d: d["qemu"]["tcg"]["max_cpu"].update(props=[]), "qemu.tcg.max_cpu.props"),
        (lambda d: d["kvm"]["vm"].update(tsc_khz="2596150"), "kvm.vm.tsc_khz should be int"),
        (lambda d: d["kvm"]["vm"].update(tsc_khz=True), "kvm.vm.tsc_khz should be int"),
        (lambda d: d["kvm"]["vm"].update(tsc_khz=0), "not a TSC rate"),
        (lambda d: d["kvm"]["vm"].update(hv_cpuid=[[1, 2, 3]]), "6 registers"),
        (lambda d: d["cpu"].update(phys_bits="48"), "cpu.phys_bits should be int"),
        (lambda d: d["cpu"].update(phys_bits=99), "not an address width"),
    ],
)
def test_malformed_new_fields_are_refused(edit, problem):
    doc = copy.deepcopy(dict(fixture_facts(TRIXIE).doc))
    edit(doc)
    with pytest.raises(FactsError, match=problem):
        validate(doc, "bad.json")


def test_live_probe_output_has_the_new_fields():
    require_qemu()
    out = subprocess.run(
        ["python3", probe.__file__], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    doc = json.loads(out)
    validate(doc, "live")
    assert isinstance(doc["cpu"].get("phys_bits"), int)
    assert "tcg" in doc["qemu"] and "error" not in doc["qemu"]["tcg"]
    if doc["kvm"].get("usable"):
        assert doc["kvm"]["vm"]["tsc_khz"] > 0


def test_a_cache_kept_by_an_older_probe_is_not_reused(tmp_path: Path, monkeypatch):
    """Cached QEMU answers without qemu.tcg come from a probe before TCG answers: reusing
    them would leave every TCG guest unknown until --refresh, so the probe starts QEMU."""
    from migcheck.gather import Gatherer, GatherOptions, cache_dir

    real = require_qemu()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # A QEMU of the test's own (a copy: a wrapper script is never cached): whatever a
    # gather keeps about this build stays apart from the real binary's.
    wrapper = tmp_path / "qemu-system-x86_64"
    shutil.copy2(real, wrapper)
    options = GatherOptions(qemu=str(wrapper), timeout=60)
    first = Gatherer(options).gather("local")
    assert "tcg" in first.doc["qemu"]
    assert Gatherer(options).gather("local").doc["probe"].get("qemu_from_cache") is True
    (path,) = cache_dir().glob("*.json")
    doc = json.loads(path.read_text())
    del doc["facts"]["qemu"]["tcg"]
    path.write_text(json.dumps(doc))
    again = Gatherer(options).gather("local")
    assert not again.doc["probe"].get("qemu_from_cache")
    assert "tcg" in again.doc["qemu"]


def test_kvm_without_in_kernel_irqchip_never_asks_for_x2apic():
    """kvm_cpu_instance_init(): without an in-kernel irqchip KVM's default for x2apic is off,
    so a destination that cannot give x2apic takes such a guest; with one it cannot."""
    src = fixture_facts(TRIXIE)
    model = next(
        n
        for n, m in sorted((src.cpu_models or {}).items())
        if not m.get("unavailable_features")
        and not m.get("alias_of")
        and n not in ("max", "host", "base")
    )

    def lacks_x2apic(doc: dict[str, Any]) -> None:
        for m in doc["qemu"]["cpu_models"]:
            if m["name"] == model:
                m["unavailable_features"] = ["x2apic"]

    dst = edited(src, lacks_x2apic)
    finding = by_id(check_pair(vm(f"-accel kvm -cpu {model}"), src, dst), "cpu.model")
    assert finding.status is Status.FAIL and "x2apic" in finding.message
    off = parse_cmdline(
        f"qemu-system-x86_64 -machine pc-q35-7.2,kernel-irqchip=off -accel kvm -cpu {model}", "x"
    )
    assert by_id(check_pair(off, src, dst), "cpu.model").status is Status.PASS


def test_assumed_qemu_upgrade_has_no_tcg_answers():
    """fleet --assume qemu=X keeps the host's KVM answers but cannot know X's emulation."""
    from migcheck.catalog import shipped_catalog
    from migcheck.whatif import assume

    host = fixture_facts(BOOKWORM)
    upgraded = assume(host, "qemu", "10.0.0", shipped_catalog())
    report = check_pair(vm("-accel tcg -cpu max"), host, upgraded)
    assert by_id(report, "cpu.passthrough").status is Status.UNKNOWN
    assert "assumed QEMU 10.0.0" in by_id(report, "cpu.passthrough").message


def test_a_tcg_run_that_hangs_costs_only_its_share_and_keeps_the_rest(tmp_path: Path):
    """A QEMU that answers under KVM but hangs under TCG: qemu.tcg records the error, the
    KVM answers stay, and the probe still ends within the QEMU budget."""
    from migcheck.facts import facts_from_probe_output
    from migcheck.transport.local import run_local_probe

    real = require_qemu()
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "no usable /dev/kvm")
    wrapper = tmp_path / "qemu-system-x86_64"
    wrapper.write_text(
        f'#!/bin/sh\ncase "$*" in *kvm*) exec {real} "$@" ;; esac\nexec sleep 3600\n'
    )
    wrapper.chmod(0o755)
    started = time.monotonic()
    out = run_local_probe({"qemu": str(wrapper), "qemu_timeout": 3.0}, 15)
    elapsed = time.monotonic() - started
    facts = facts_from_probe_output(out, "local")
    assert facts.qemu is not None and facts.cpu_models
    assert "deadline" in facts.doc["qemu"]["tcg"]["error"]
    assert facts.tcg is None and "could not be gathered" in (facts.tcg_missing() or "")
    assert elapsed < 3.0 + 4.0, elapsed
