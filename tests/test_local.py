"""The real thing on this machine: gather local (real QEMU, real KVM) and judge a
libvirt-generated command line against it and against an older real CPU."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import require
from qemudata import CAPS, FIXTURES, caps_facts

from migcheck.checks.base import Status
from migcheck.cmdline import load_cmdline
from migcheck.gather import gather
from migcheck.pair import check_pair
from migcheck.verdict import Verdict

CMDLINE = FIXTURES / "cmdlines" / "libvirt-host-passthrough.cmdline"


@pytest.fixture(scope="module")
def local():
    require(shutil.which("qemu-system-x86_64") is not None, "needs qemu-system-x86_64")
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "needs a usable /dev/kvm")
    return gather("local")


def test_libvirt_command_line_local_to_local_is_safe(local):
    vm = load_cmdline(str(CMDLINE))
    assert vm.machine.type == "pc-q35-7.2" and vm.cpu.model == "host"
    report = check_pair(vm, local, local)
    problems = [f for f in report.findings if f.status is not Status.PASS]
    assert report.verdict is Verdict.SAFE, problems


def test_same_command_line_to_an_older_cpu_names_missing_features(local):
    require(CAPS.is_dir(), f"real QMP captures not found under {CAPS}")
    older = caps_facts("9.1.0", name="ryzen-3900x")  # Zen 2 (2019), real capture
    report = check_pair(load_cmdline(str(CMDLINE)), local, older)
    assert report.verdict is Verdict.UNSAFE
    (passthrough,) = [f for f in report.findings if f.id == "cpu.passthrough"]
    assert passthrough.status is Status.FAIL
    local_features = {k for k, v in local.host_cpu["props"].items() if v is True}
    older_features = {k for k, v in older.host_cpu["props"].items() if v is True}
    for feature in passthrough.source:
        assert feature in local_features and feature not in older_features, feature
        assert feature in passthrough.message or "more" in passthrough.message
