"""Nested virtualization, migratable CPUs, host features and memory backing."""

from __future__ import annotations

import copy

from qemudata import fixture_facts

from migcheck.checks.base import Status
from migcheck.cmdline import parse_cmdline
from migcheck.facts import Facts
from migcheck.pair import check_pair
from migcheck.verdict import Verdict

BOOKWORM = "debian12-qemu7.2-epyc-pvm.json"
BASE = "qemu-system-x86_64 -machine pc-q35-7.2 -accel kvm -m 2048 "


def finding(report, cid: str):
    (f,) = [f for f in report.findings if f.id == cid]
    return f


def with_module(facts: Facts, module: str, nested_state: int | None = None, **params: str) -> Facts:
    doc = copy.deepcopy(dict(facts.doc))
    doc["kvm"]["modules"][module] = dict(params)
    if nested_state is not None:
        doc["kvm"]["capabilities"]["KVM_CAP_NESTED_STATE"] = nested_state
    return Facts(doc, facts.origin)


def test_guest_with_vmx_needs_nested_on_destination():
    host = fixture_facts(BOOKWORM)
    vm = parse_cmdline(BASE + "-cpu pentium3,+vmx", "x")
    src = with_module(host, "kvm_intel", nested="Y")
    off = check_pair(vm, src, with_module(host, "kvm_intel", nested="N"))
    assert finding(off, "cpu.nested").status is Status.FAIL
    assert "kvm_intel.nested = N" in finding(off, "cpu.nested").message
    # This machine's KVM (PVM) saves no nested state (KVM_CAP_NESTED_STATE = 0): a guest that
    # has used VMX cannot be saved (QEMU's cpu_pre_save()), whatever the module says.
    assert host.doc["kvm"]["capabilities"]["KVM_CAP_NESTED_STATE"] == 0
    stateless = check_pair(vm, src, with_module(host, "kvm_intel", nested="Y"))
    assert finding(stateless, "cpu.nested").status is Status.FAIL
    assert "KVM_CAP_NESTED_STATE = 0" in finding(stateless, "cpu.nested").message
    # 8320 bytes: the size a VMX host reports (header + two 4 KiB VMCS12 pages).
    src = with_module(host, "kvm_intel", nested_state=8320, nested="Y")
    on = check_pair(vm, src, with_module(host, "kvm_intel", nested_state=8320, nested="Y"))
    assert finding(on, "cpu.nested").status is Status.PASS
    tcg = parse_cmdline(BASE.replace("kvm", "tcg") + "-cpu pentium3,+vmx", "x")
    assert finding(check_pair(tcg, src, host), "cpu.nested").status is Status.PASS
    unknown = check_pair(vm, src, host)  # PVM host: no kvm_intel parameters at all
    assert finding(unknown, "cpu.nested").status is Status.UNKNOWN
    plain = check_pair(parse_cmdline(BASE + "-cpu pentium3", "x"), src, host)
    assert finding(plain, "cpu.nested").status is Status.PASS


def test_host_cpu_with_migratable_off_fails():
    host = fixture_facts(BOOKWORM)
    report = check_pair(parse_cmdline(BASE + "-cpu host,migratable=off", "x"), host, host)
    assert finding(report, "cpu.migratable").status is Status.FAIL
    assert report.verdict is Verdict.UNSAFE


def test_vhost_net_needs_the_device_on_the_destination():
    host = fixture_facts(BOOKWORM)
    assert host.doc["devices"]["/dev/vhost-net"] is False  # real capture: module not loaded
    src = copy.deepcopy(dict(host.doc))
    src["devices"]["/dev/vhost-net"] = True
    vm = parse_cmdline(
        BASE + "-cpu host -netdev tap,id=n0,vhost=on -device virtio-net-pci,netdev=n0", "x"
    )
    report = check_pair(vm, Facts(src, "src"), host)
    f = finding(report, "host.features")
    assert f.status is Status.FAIL
    assert "/dev/vhost-net absent" in f.message
    json_syntax = parse_cmdline(
        BASE + '-cpu host -netdev \'{"type":"tap","id":"n0","vhost":true}\' '
        "-device virtio-net-pci,netdev=n0",
        "x",
    )
    assert finding(check_pair(json_syntax, Facts(src, "src"), host), "host.features").status is (
        Status.FAIL
    )
    no_vhost = parse_cmdline(
        BASE + "-cpu host -netdev tap,id=n0 -device virtio-net-pci,netdev=n0", "x"
    )
    assert finding(check_pair(no_vhost, Facts(src, "src"), host), "host.features").status is (
        Status.PASS
    )


def test_hugepage_memory_warns_with_the_path():
    host = fixture_facts(BOOKWORM)
    vm = parse_cmdline(
        BASE + "-cpu host -object memory-backend-file,id=mem0,size=2G,"
        "mem-path=/dev/hugepages/libvirt/qemu,share=on -numa node,memdev=mem0",
        "x",
    )
    report = check_pair(vm, host, host)
    f = finding(report, "host.memory")
    assert f.status is Status.WARN
    assert "/dev/hugepages/libvirt/qemu" in f.message and "hugepages" in f.message
    assert report.verdict is Verdict.SAFE
    assert check_pair(vm, host, host, strict=True).verdict is Verdict.UNSAFE


def test_cpu_pm_needs_disable_exits_on_the_destination():
    host = fixture_facts(BOOKWORM)
    assert host.doc["kvm"]["capabilities"]["KVM_CAP_X86_DISABLE_EXITS"] > 0
    dst = copy.deepcopy(dict(host.doc))
    dst["kvm"]["capabilities"]["KVM_CAP_X86_DISABLE_EXITS"] = 0
    vm = parse_cmdline(BASE + "-cpu host -overcommit cpu-pm=on", "x")
    report = check_pair(vm, host, Facts(dst, "dst"))
    f = finding(report, "platform.support")
    assert f.status is Status.FAIL
    assert "kvm-disable-exits" in f.message and "KVM_CAP_X86_DISABLE_EXITS = 0" in f.message
    assert check_pair(vm, host, host).verdict is Verdict.SAFE
