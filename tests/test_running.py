"""Running guests: the probe reads the real argv of a running QEMU in the same exec."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from conftest import require
from typer.testing import CliRunner

import migcheck.probe.probe as probe
from migcheck.cli import app

ARGV = [
    "-name", "guest=mc-test-vm,debug-threads=on", "-machine", "pc-q35-7.2,usb=off",
    # This machine's nested KVM (PVM) rejects QEMU 7.2's arch-capabilities MSR write for
    # -cpu host; without it the guest starts.
    "-accel", "kvm", "-cpu", "host,migratable=on,-arch-capabilities", "-m", "64", "-S",
    "-display", "none",
    "-nodefaults", "-no-user-config",
]  # fmt: skip


@pytest.fixture(scope="module")
def running_guest() -> Iterator[subprocess.Popen]:
    qemu = shutil.which("qemu-system-x86_64")
    require(qemu is not None, "needs qemu-system-x86_64")
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "needs a usable /dev/kvm")
    proc = subprocess.Popen([qemu, *ARGV], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(0.5)
    if proc.poll() is not None:
        pytest.fail(f"QEMU did not start: {proc.stderr.read().decode()[-500:]}")
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_guest_name_parsing():
    assert probe.guest_name(["qemu", "-name", "guest=db01,debug-threads=on"]) == "db01"
    assert probe.guest_name(["qemu", "-name", "web"]) == "web"
    assert probe.guest_name(["qemu", "-m", "1G"]) is None


def test_host_lists_running_guests(running_guest: subprocess.Popen):
    out = CliRunner().invoke(app, ["host", "local", "--vms", "--format", "json"])
    assert out.exit_code == 0, out.stderr
    guests = json.loads(out.stdout)["guests"]
    assert {"name": "mc-test-vm", "pid": running_guest.pid} in guests


def test_pair_judges_the_running_guest(running_guest: subprocess.Popen):
    out = CliRunner().invoke(app, ["pair", "local", "local", "--vm", "mc-test-vm", "-f", "json"])
    assert out.exit_code == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["verdict"] == "safe"
    assert doc["vm"]["machine"]["type"] == "pc-q35-7.2"
    assert doc["vm"]["cpu"]["model"] == "host"
    assert f"pid {running_guest.pid}" in doc["vm"]["source"]


def test_unknown_running_guest_is_bad_input(running_guest: subprocess.Popen):
    out = CliRunner().invoke(app, ["pair", "local", "local", "--vm", "no-such-vm"])
    assert out.exit_code == 2
    assert "no running guest named 'no-such-vm'" in out.stderr and "mc-test-vm" in out.stderr


def test_cmdline_and_vm_are_exclusive(tmp_path):
    cmd = tmp_path / "x.cmdline"
    cmd.write_text("-machine pc\n")
    out = CliRunner().invoke(app, ["pair", "local", "local", "--vm", "a", "-c", str(cmd)])
    assert out.exit_code == 2
