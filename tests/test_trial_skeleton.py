"""The skeleton guest (issue 23, section 2) on real command lines: libvirt's own argv test
data (../shared/data) and the project's fixtures, and started with this machine's QEMU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SHARED_DATA, require

from migcheck.cmdline import load_cmdline, parse_cmdline
from migcheck.trial.skeleton import DEFAULT_DISK_SIZE, build

ROOT = Path(__file__).resolve().parent.parent
ARGV_DATA = SHARED_DATA / "libvirt" / "qemuxml2argvdata"
FIXTURES = ROOT / "fixtures" / "cmdlines"
QEMU = shutil.which("qemu-system-x86_64")

HOST_PLUMBING = ("-mon", "-qmp", "-monitor", "-pidfile", "-daemonize", "-runas", "-mem-prealloc")


def _libvirt_args() -> list[Path]:
    require(ARGV_DATA.is_dir(), f"shared data missing: {ARGV_DATA}")
    return sorted(ARGV_DATA.glob("*.x86_64-latest.args"))


def _drivers(argv: list[str]) -> list[str]:
    spec = parse_cmdline("qemu-system-x86_64 " + " ".join(_quote(a) for a in argv), "skeleton")
    return sorted(d.driver for d in spec.devices)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def test_web01_keeps_the_abi_and_drops_the_host() -> None:
    spec = load_cmdline(str(FIXTURES / "web01-q35.cmdline"))
    sk = build(spec, {"/var/lib/images/web01.qcow2": 20 << 30})
    argv = sk.argv
    assert not sk.refused
    assert argv[argv.index("-machine") + 1].startswith("q35,usb=off")
    assert "memory-backend=pc.ram" in argv[argv.index("-machine") + 1]
    assert f"memory-backend-ram,id=pc.ram,size={4 << 30},reserve=off" in argv
    assert argv[argv.index("-cpu") + 1] == "host,migratable=on"
    assert argv[argv.index("-smp") + 1] == "2,sockets=1,cores=2,threads=1"
    # The tap keeps its offload-relevant type, loses the host interface name.
    assert "tap,id=hostnet0,script=no,downscript=no" in argv
    assert not any("ifname" in a or "web01.qcow2" in a for a in argv)
    disk = json.loads(argv[argv.index("-blockdev") + 1])
    assert disk == {"driver": "null-co", "node-name": "disk0", "size": 20 << 30}
    assert argv.count("-blockdev") == 1  # the protocol node went with the file
    assert argv[argv.index("-serial") + 1] == "null"  # the device stays, the pty goes
    assert argv[-2:] == ["-display", "none"]
    assert sk.uses_tap and sk.memory_bytes == 4 << 30
    assert _drivers(argv) == sorted(d.driver for d in spec.devices)


def test_unknown_disk_size_is_the_same_default_on_both_sides_and_said() -> None:
    sk = build(load_cmdline(str(FIXTURES / "web01-q35.cmdline")))
    disk = json.loads(sk.argv[sk.argv.index("-blockdev") + 1])
    assert disk["size"] == DEFAULT_DISK_SIZE
    assert any("size unknown" in n for n in sk.notes)


def test_every_libvirt_argv_keeps_its_devices_or_is_refused_with_a_reason() -> None:
    files = _libvirt_args()
    assert len(files) > 300
    judged = refused = 0
    for path in files:
        try:
            spec = load_cmdline(str(path))
        except Exception:  # libvirt test data the parser refuses is not the skeleton's job
            continue
        sk = build(spec)
        if sk.refused:
            refused += 1
            assert all(len(r) > 20 for r in sk.refused), path
            continue
        judged += 1
        argv = sk.argv
        text = " ".join(argv)
        for option in HOST_PLUMBING:
            assert option not in argv, (path.name, option)
        assert "server=on" not in text and '"filename"' not in text, path.name
        assert "fd=" not in text.replace("fdc", ""), path.name
        assert argv[-2:] == ["-display", "none"], path.name
        assert "reserve=off" in text or '"reserve":false' in text, path.name
        # The device graph of the skeleton is the guest's: same frontend devices.
        assert _drivers(argv) == sorted(d.driver for d in spec.devices), path.name
    assert judged > 200 and refused > 10, (judged, refused)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("hostdev-pci-address.x86_64-latest.args", "vfio-pci"),
        ("launch-security-sev-direct.x86_64-latest.args", "confidential"),
        ("hostdev-scsi-vhost-scsi-pci.x86_64-latest.args", "vhost-scsi"),
    ],
)
def test_what_cannot_be_faked_is_refused(name: str, reason: str) -> None:
    path = ARGV_DATA / name
    require(path.is_file(), f"shared data missing: {path}")
    sk = build(load_cmdline(str(path)))
    assert any(reason in r for r in sk.refused), sk.refused


def test_memory_given_only_as_m_becomes_an_unreserved_backend() -> None:
    spec = parse_cmdline("qemu-system-x86_64 -machine pc-q35-7.2 -m 200G -serial pty -S")
    sk = build(spec)
    assert sk.memory_bytes == 200 << 30
    assert sk.argv[:2] == ["-machine", "pc-q35-7.2,memory-backend=pc.ram"]
    assert f"memory-backend-ram,id=pc.ram,size={200 << 30},reserve=off" in sk.argv
    assert "-S" not in sk.argv


@pytest.mark.parametrize(
    "name",
    [
        "disk-floppy-q35.x86_64-latest.args",
        "audio-none-full.x86_64-latest.args",
        "boot-floppy-q35.x86_64-latest.args",
    ],
)
def test_skeleton_starts_on_this_machines_qemu(name: str, tmp_path: Path) -> None:
    require(QEMU is not None, "no qemu-system-x86_64 on PATH")
    path = ARGV_DATA / name
    require(path.is_file(), f"shared data missing: {path}")
    sk = build(load_cmdline(str(path)))
    assert not sk.refused
    qmp = b'{"execute":"qmp_capabilities"}\n{"execute":"query-status"}\n{"execute":"quit"}\n'
    proc = subprocess.run(
        [str(QEMU), *sk.argv, "-S", "-qmp", "stdio"],
        input=qmp,
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "LC_ALL": "C"},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    assert b'"status": "prelaunch"' in proc.stdout or b'"paused"' in proc.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written next to it


def test_trial_show_prints_both_skeletons_and_runs_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from migcheck.cli import app

    result = CliRunner().invoke(
        app, ["trial", "a", "b", "--show", "--cmdline", str(FIXTURES / "web01-q35.cmdline")]
    )
    assert result.exit_code == 0, result.stdout
    lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert len(lines) == 2
    assert lines[1] == lines[0] + " -S -incoming defer"
    assert "null-co" in lines[0] and "reserve=off" in lines[0]


def test_trial_show_says_what_it_refuses() -> None:
    from typer.testing import CliRunner

    from migcheck.cli import app

    path = ARGV_DATA / "hostdev-pci-address.x86_64-latest.args"
    require(path.is_file(), f"shared data missing: {path}")
    result = CliRunner().invoke(app, ["trial", "a", "b", "--show", "--cmdline", str(path)])
    assert "# REFUSED: -device vfio-pci" in result.stdout


def test_trial_needs_ssh_hosts_and_a_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from migcheck.cli import app

    guest = FIXTURES / "web01-q35.cmdline"
    result = CliRunner().invoke(app, ["trial", "local", "b", "--cmdline", str(guest)])
    assert result.exit_code == 2
    assert "not an SSH host" in result.stderr
    xml = ARGV_DATA / "disk-floppy-q35.xml"
    require(xml.is_file(), f"shared data missing: {xml}")
    result = CliRunner().invoke(app, ["trial", "a", "b", "--domain-xml", str(xml)])
    assert result.exit_code == 2
    assert "domxml-to-native" in result.stderr


def test_memory_headroom_follows_the_overcommit_mode() -> None:
    from migcheck.trial.remote import OVERHEAD, headroom

    gib = 1 << 30
    # Heuristic overcommit: only the skeleton's own footprint must fit, not the guest.
    ok, why = headroom({"overcommit_memory": 0, "MemAvailable": 2 * gib}, 200 * gib)
    assert ok and "MemAvailable 2048 MiB" in why
    ok, _ = headroom({"overcommit_memory": 0, "MemAvailable": 300 << 20}, 200 * gib)
    assert not ok  # 384 MiB of QEMU plus 400 MiB of page tables do not fit
    # Strict overcommit: reserve=off is refused, the whole guest is committed.
    strict = {"overcommit_memory": 2, "CommitLimit": 20 * gib, "Committed_AS": 4 * gib}
    assert headroom(strict, 8 * gib)[0]
    ok, why = headroom(strict, 16 * gib)
    assert not ok and "reserve=off is refused" in why
    assert headroom(strict, 16 * gib - OVERHEAD)[0]
    assert not headroom({}, gib)[0]  # unreadable: refuse, never guess


def test_strict_overcommit_skeleton_has_no_reserve_off() -> None:
    spec = parse_cmdline("qemu-system-x86_64 -machine pc-q35-7.2 -m 2G")
    argv = build(spec, reserve_off=False).argv
    assert f"memory-backend-ram,id=pc.ram,size={2 << 30}" in argv
    assert not any("reserve" in a for a in argv)


def test_trial_findings_never_pass_what_did_not_run() -> None:
    from migcheck.findings import Status
    from migcheck.trial.local import Stage
    from migcheck.trial.remote import RemoteTrial
    from migcheck.trial.report import findings

    refused = RemoteTrial(refused=["-device vfio-pci: a host device"])
    assert [(f.id, f.status) for f in findings(refused)] == [("trial.start", Status.UNKNOWN)]
    # QEMU died under an ABI query: unknown, and later stages are not reached.
    died = RemoteTrial()
    died.result.stages += [
        Stage("source-start", True),
        Stage("destination-start", True),
        Stage("migrate", True),
        Stage("abi", None, "cannot compare: x-query-virtio-status: QEMU exited"),
    ]
    got = {f.id: f.status for f in findings(died)}
    assert got == {
        "trial.start": Status.PASS,
        "trial.transfer": Status.PASS,
        "trial.abi": Status.UNKNOWN,
        "trial.resume": Status.UNKNOWN,
    }
    failed = RemoteTrial()
    failed.result.stages += [
        Stage("source-start", True),
        Stage("destination-start", False, "qemu: unsupported machine type"),
    ]
    (start,) = findings(failed)
    assert start.status is Status.FAIL and "does not have the guest's machine type" in start.message


def test_disagreement_is_shown_and_the_worse_verdict_wins() -> None:
    from migcheck.findings import Finding, Status
    from migcheck.trial.report import join
    from migcheck.verdict import Verdict

    static = (Finding("machine.type", Status.PASS, "ok"),)
    trial = [Finding("trial.abi", Status.FAIL, "CPUID differs")]
    merged, verdict = join(static, trial)
    assert verdict is Verdict.UNSAFE
    assert [f.id for f in merged] == ["machine.type", "trial.abi", "trial.disagreement"]
    assert "migcheck defect" in merged[-1].message
    merged, verdict = join(
        (Finding("cpu.model", Status.FAIL, "no"),), [Finding("trial.start", Status.PASS, "ok")]
    )
    assert verdict is Verdict.UNSAFE and merged[-1].id == "trial.disagreement"
    # An unknown trial is no disagreement, and never makes a safe static verdict safe.
    merged, verdict = join(static, [Finding("trial.start", Status.UNKNOWN, "not run")])
    assert verdict is Verdict.UNKNOWN and merged[-1].id == "trial.start"


def test_a_start_the_host_could_not_give_is_unknown_not_unsafe() -> None:
    from migcheck.trial.remote import started

    assert started(None) is True
    assert started("destination QEMU exited (1): qemu: unsupported machine type") is False
    assert started("qemu: Property 'virtio-net-pci.host_uso' not found") is False
    for text in (
        "migcheck agent: cannot create a private network namespace (root?)",
        "-netdev tap,id=n0: could not open /dev/net/tun: No such file or directory",
        "Could not access KVM kernel module: Permission denied\nfailed to initialize kvm",
        "cannot set up guest memory 'pc.ram': Cannot allocate memory",
    ):
        assert started(text) is None, text
