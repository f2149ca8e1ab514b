"""The probe on awkward hosts: non-root, huge cpuinfo. Partial facts, never a false safe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import require
from qemudata import SHARED, fixture_facts

import migcheck.probe.probe as probe
from migcheck.cmdline import parse_cmdline
from migcheck.facts import facts_from_probe_output
from migcheck.pair import check_pair
from migcheck.probe import probe_script
from migcheck.verdict import Verdict


def test_non_root_probe_gives_unknown_not_a_verdict(tmp_path):
    require(os.geteuid() == 0 and shutil.which("setpriv") is not None, "needs root and setpriv")
    require(shutil.which("qemu-system-x86_64") is not None, "needs qemu-system-x86_64")
    require(os.path.exists("/dev/kvm"), "needs /dev/kvm")
    # As the unprivileged 'nobody' user: /dev/kvm is root-only on this machine.
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-"],
        input=probe_script({"qemu_timeout": 20}), capture_output=True, text=True, timeout=60,
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    facts = facts_from_probe_output(proc.stdout, "nobody@local")
    kvm = facts.doc["kvm"]
    if kvm.get("usable"):
        pytest.skip("/dev/kvm is world-accessible here; nothing to test")
    assert kvm["present"] is True and "ermission denied" in kvm["error_open"]
    assert facts.kvm_usable is None and facts.kvm_denied
    assert facts.qemu_kvm_enabled is False  # QEMU fell back to TCG
    vm = parse_cmdline("-machine pc-q35-7.2 -accel kvm -cpu host", "x")
    root = fixture_facts("debian12-qemu7.2-epyc-pvm.json")
    report = check_pair(vm, root, facts)
    assert report.verdict is Verdict.UNKNOWN
    accel = next(f for f in report.findings if f.id == "accel.kvm")
    assert "--sudo" in accel.message
    passthrough = next(f for f in report.findings if f.id == "cpu.passthrough")
    assert passthrough.status.value == "unknown" and "without KVM" in passthrough.message


def test_512_cpu_cpuinfo():
    dump = (
        SHARED
        / "cpuinfo"
        / "virtines-wasp"
        / "data_example"
        / "AMD-EPYC-7302P-cloudlab"
        / "data"
        / "cpuinfo"
    )
    require(dump.is_file(), f"needs {dump}")
    block = dump.read_text().split("\n\n")[0]
    text = "\n\n".join(block.replace("processor\t: 0", f"processor\t: {i}", 1) for i in range(512))
    parsed = probe.parse_cpuinfo(text + "\n")
    assert parsed["count"] == 512 and parsed["vendor"] == "AuthenticAMD"
    assert "avx2" in parsed["flags"]


def test_non_utf8_cpuinfo_does_not_crash(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_bytes(b"processor\t: 0\nvendor_id\t: Genuine\xffIntel\nflags\t\t: fpu \xfe sse\n\n")
    parsed = probe.parse_cpuinfo(probe.read_text(str(path)))
    assert parsed["count"] == 1 and "fpu" in parsed["flags"]
