"""The SSH test lab itself (tests/lab): real sshd per host, each in its own mount namespace,
driven with the real OpenSSH client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import require
from lab import (
    CPUINFO,
    DEBIAN_12,
    FIXTURE_FACTS,
    GARBAGE,
    RHEL_94,
    UBUNTU_2204,
    Lab,
    LabHost,
    alias_names,
    caps_path,
)
from lab.standin import render
from qemudata import read_qmp_objects

from migcheck.errors import HostError
from migcheck.facts import facts_from_probe_output
from migcheck.probe import probe_script

# Until tests/conftest.py registers the plugin for every test module; harmless after.

pytestmark = pytest.mark.sshd

SSH_TIMEOUT = 30
STALL_TIMEOUT = 2

# name -> how the host is built and what it must report
HOSTS = {
    "lab-jammy": {
        "kernel": "5.15.0-105-generic",
        "os_release": UBUNTU_2204,
        "os_id": "ubuntu",
        "cpu": "xeon-gold-6126",
        "vendor": "GenuineIntel",
        "qemu": "6.2.0",
    },
    "lab-rhel": {
        "kernel": "5.14.0-427.13.1.el9_4.x86_64",
        "os_release": RHEL_94,
        "os_id": "rhel",
        "cpu": "epyc-7302p",
        "vendor": "AuthenticAMD",
        "qemu": "8.2.0",
    },
    "lab-bookworm": {
        "kernel": "6.1.0-18-amd64",
        "os_release": DEBIAN_12,
        "os_id": "debian",
        "cpu": "epyc-7281",
        "vendor": "AuthenticAMD",
        "qemu": "real",
    },
}


def get_host(lab: Lab, name: str) -> LabHost:
    """The lab host ``name`` from HOSTS, started on first use (shared by the tests)."""
    if name not in lab.hosts:
        spec = HOSTS[name]
        lab.add_host(
            name,
            kernel=spec["kernel"],
            os_release=spec["os_release"],
            cpuinfo=CPUINFO[spec["cpu"]],
            qemu=spec["qemu"],
        )
    return lab.hosts[name]


def hidden_host(lab: Lab) -> LabHost:
    """A host left out of lab.known_hosts."""
    if "lab-hidden" not in lab.hosts:
        lab.add_host("lab-hidden", qemu=None, known=False)
    return lab.hosts["lab-hidden"]


def run(argv: list[str], *, input: str | None = None, timeout: float = SSH_TIMEOUT):
    return subprocess.run(
        argv,
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ssh_ok(host: LabHost, *cmd: str, **kw) -> str:
    proc = run(host.ssh_argv(*cmd), **kw)
    assert proc.returncode == 0, f"{host.name}: {proc.stderr}\n--- sshd log:\n{host.log()[-2000:]}"
    return proc.stdout


def local_view() -> tuple[str, str, str]:
    """What the test process itself sees (must never change)."""
    return (
        Path("/proc/sys/kernel/osrelease").read_text(),
        Path("/etc/os-release").read_text(),
        Path("/proc/cpuinfo").read_text().split("\n\n")[0],
    )


def dead(pid: int) -> bool:
    """Gone, or a zombie that init has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def first_model_name(cpuinfo: str) -> str:
    return re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M).group(1).strip()


def recorded(version: str, command: str):
    """The first recorded answer to ``command`` in libvirt's capture (the KVM phase)."""
    objs = read_qmp_objects(caps_path(version))
    for ask, answer in pairwise(objs):
        if ask.get("execute") == command and answer.get("id") == ask.get("id"):
            return answer["return"]
    raise AssertionError(f"{command} not recorded for {version}")


def recorded_host_expansion(version: str):
    objs = read_qmp_objects(caps_path(version))
    for ask, answer in pairwise(objs):
        model = (ask.get("arguments") or {}).get("model", {})
        if ask.get("execute") == "query-cpu-model-expansion" and model == {"name": "host"}:
            return answer["return"]
    raise AssertionError(f"no host expansion recorded for {version}")


@pytest.mark.parametrize("name", list(HOSTS))
def test_each_host_reports_its_own_identity(lab: Lab, name: str) -> None:
    before = local_view()
    host = get_host(lab, name)
    spec = HOSTS[name]
    out = ssh_ok(
        host,
        "cat /proc/sys/kernel/osrelease /proc/version;",
        ". /etc/os-release; echo ID=$ID;",
        "grep -m1 '^model name' /proc/cpuinfo;",
        "qemu-system-x86_64 --version | head -n 1",
    )
    lines = out.splitlines()
    assert lines[0] == spec["kernel"]
    assert lines[1].startswith(f"Linux version {spec['kernel']} ")
    assert lines[2] == f"ID={spec['os_id']}"
    assert first_model_name(lines[3]) == first_model_name(CPUINFO[spec["cpu"]].read_text())
    if spec["qemu"] == "real":
        local = run(["qemu-system-x86_64", "--version"]).stdout.splitlines()[0]
        assert lines[4] == local
    else:
        assert lines[4] == f"QEMU emulator version {spec['qemu']} (v{spec['qemu']})"
    assert host.start_seconds < 1.0
    assert local_view() == before
    assert before[0].strip() == os.uname().release


@pytest.mark.parametrize("name", list(HOSTS))
def test_probe_over_ssh(lab: Lab, name: str) -> None:
    spec = HOSTS[name]
    if spec["qemu"] == "real":
        require(os.path.exists("/dev/kvm"), "needs /dev/kvm")
    host = get_host(lab, name)
    out = ssh_ok(host, "python3", "-", input=probe_script())
    facts = facts_from_probe_output(out, name)
    assert facts.kernel_release == spec["kernel"]
    assert facts.doc["os"]["id"] == spec["os_id"]
    assert facts.doc["cpu"]["vendor"] == spec["vendor"]
    assert facts.doc["cpu"]["count"] == CPUINFO[spec["cpu"]].read_text().count("processor\t:")
    if spec["qemu"] == "real":
        local = run(["qemu-system-x86_64", "--version"]).stdout
        assert f"QEMU emulator version {facts.qemu_version}" in local
        assert facts.qemu_kvm_enabled is True
        assert facts.kvm_usable is True
    else:
        assert facts.qemu_version == spec["qemu"]
        assert facts.doc["qemu"]["binary"] == "/usr/bin/qemu-system-x86_64"
        assert len(facts.machines) == len(recorded(spec["qemu"], "query-machines"))
        assert facts.qemu_kvm_enabled is True  # as recorded
        expansion = recorded_host_expansion(spec["qemu"])
        assert facts.host_cpu["props"] == expansion["model"]["props"]


def test_standin_speaks_qmp_like_the_recording(tmp_path: Path) -> None:
    require(caps_path("9.1.0").is_file(), "shared data: caps_9.1.0_x86_64.replies")
    exe = tmp_path / "qemu-system-x86_64"
    exe.write_text(render(caps_path("9.1.0")))
    exe.chmod(0o755)
    # The 9.1.0 capture was taken from a 9.1 release candidate: it says 9.0.90.
    assert run([str(exe), "--version"]).stdout.startswith("QEMU emulator version 9.0.90 (")
    commands = [
        {"execute": "qmp_capabilities", "id": 1},
        {"execute": "query-kvm", "id": "k"},
        {"execute": "query-no-such-thing", "id": "x"},
        {"execute": "query-cpu-model-expansion", "id": "e",
         "arguments": {"type": "full", "model": {"name": "host"}}},
        {"execute": "quit", "id": "q"},
        {"execute": "query-version", "id": "after-quit"},
    ]  # fmt: skip
    proc = run(
        [str(exe), "-S", "-machine", "none", "-qmp", "stdio"],
        input="".join(json.dumps(c) + "\n" for c in commands),
    )
    assert proc.returncode == 0, proc.stderr
    greeting, *replies = (json.loads(line) for line in proc.stdout.splitlines())
    assert greeting["QMP"]["version"]["qemu"] == {"major": 9, "minor": 0, "micro": 90}
    assert replies[0] == {"return": {}, "id": 1}
    assert replies[1] == {"return": recorded("9.1.0", "query-kvm"), "id": "k"}
    assert replies[2]["error"]["class"] == "CommandNotFound"
    assert replies[2]["id"] == "x"
    assert replies[3] == {"return": recorded_host_expansion("9.1.0"), "id": "e"}
    assert replies[4] == {"return": {}, "id": "q"}
    assert replies[5]["event"] == "SHUTDOWN"
    assert len(replies) == 6  # exited on quit


def test_host_without_qemu(lab: Lab) -> None:
    host = lab.add_host("lab-noqemu", qemu=None)
    out = ssh_ok(host, "python3", "-", input=probe_script())
    facts = facts_from_probe_output(out, host.name)
    assert facts.qemu is None
    assert "no QEMU found" in facts.doc["qemu"]["error"]
    assert facts.kernel_release == host.kernel
    assert os.access("/usr/bin/qemu-system-x86_64", os.X_OK) == (
        Path("/usr/bin/qemu-system-x86_64").exists()
    )  # the test process's QEMU is untouched


def test_extra_bind_mounts(lab: Lab) -> None:
    param = Path("/sys/module/kvm/parameters/ignore_msrs")
    require(param.exists(), f"needs {param} (kvm module loaded)")
    before = param.read_text()
    host = lab.add_host(
        "lab-extra", qemu=None, extra={str(param): "Y\n", "/etc/hostname": "hv42\n"}
    )
    out = ssh_ok(host, "python3", "-", input=probe_script({"skip_qemu": True}))
    facts = facts_from_probe_output(out, host.name)
    assert facts.doc["kvm"]["modules"]["kvm"]["ignore_msrs"] == "Y"
    assert ssh_ok(host, "cat /etc/hostname") == "hv42\n"
    assert param.read_text() == before


def test_client_files(lab: Lab) -> None:
    host = get_host(lab, "lab-rhel")
    hidden = hidden_host(lab)
    known = lab.known_hosts.read_text().splitlines()
    assert host.known_hosts_line == f"[127.0.0.1]:{host.port} {host.host_public_key}"
    assert host.known_hosts_line in known
    assert not any(line.startswith(f"[127.0.0.1]:{hidden.port} ") for line in known)
    assert host.host_public_key.startswith("ssh-ed25519 ")
    resolved = run(["ssh", "-F", str(lab.ssh_config), "-G", host.name]).stdout.splitlines()
    for expected in (
        "hostname 127.0.0.1",
        f"port {host.port}",
        "user root",
        "identitiesonly yes",
        "stricthostkeychecking true",
        f"userknownhostsfile {lab.known_hosts}",
    ):
        assert expected in resolved


def test_unknown_or_changed_host_key_is_refused(lab: Lab) -> None:
    host = get_host(lab, "lab-rhel")
    hidden = hidden_host(lab)
    proc = run(hidden.ssh_argv("true"))
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr

    without = lab.known_hosts_without(host.name)
    proc = run(["ssh", "-F", str(lab.ssh_config), "-o", f"UserKnownHostsFile={without}",
                host.name, "true"])  # fmt: skip
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr

    changed = lab.root / "known_hosts.changed"
    changed.write_text(f"[127.0.0.1]:{host.port} {hidden.host_public_key}\n")
    proc = run(["ssh", "-F", str(lab.ssh_config), "-o", f"UserKnownHostsFile={changed}",
                host.name, "true"])  # fmt: skip
    assert proc.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stderr

    assert ssh_ok(host, "cat /proc/sys/kernel/osrelease").strip() == host.kernel


def test_proxyjump_through_a_bastion(lab: Lab) -> None:
    bastion = lab.add_bastion("lab-bastion", kernel="6.8.0-1-bastion")
    target = lab.add_host("lab-behind", kernel="6.1.0-99-behind", qemu=None)

    def jumps() -> int:
        return bastion.log().count("Accepted publickey for root")

    assert jumps() == 0
    # ssh -J: the jump ssh gets the same -F config
    argv = ["ssh", "-F", str(lab.ssh_config), "-J", bastion.name, target.name,
            "cat /proc/sys/kernel/osrelease"]  # fmt: skip
    proc = run(argv)
    assert proc.returncode == 0, proc.stderr + bastion.log()[-2000:]
    assert proc.stdout.strip() == target.kernel
    assert jumps() == 1
    # ProxyJump in the config
    via = lab.ssh_config_via(bastion.name, target.name)
    assert f"ProxyJump {bastion.name}" in via.read_text()
    out = run(target.ssh_argv("cat /proc/sys/kernel/osrelease", config=via)).stdout
    assert out.strip() == target.kernel
    assert jumps() == 2
    # the bastion's own namespace is not the target's
    assert ssh_ok(bastion, "cat /proc/sys/kernel/osrelease").strip() == bastion.kernel


def test_fault_hosts(lab: Lab) -> None:
    probe = probe_script()
    garbage = lab.add_garbage_host("lab-garbage")
    truncated = lab.add_truncated_host("lab-truncated")
    failing = lab.add_failing_host("lab-failing", status=3, stderr="Traceback: boom\n")
    stalling = lab.add_stalling_host("lab-stall")

    proc = run(garbage.ssh_argv("python3", "-"), input=probe)
    assert (proc.returncode, proc.stdout) == (0, GARBAGE)
    with pytest.raises(HostError, match="not a facts document"):
        facts_from_probe_output(proc.stdout, garbage.name)

    proc = run(truncated.ssh_argv("python3", "-"), input=probe)
    whole = FIXTURE_FACTS.read_bytes()
    assert proc.returncode == 0
    assert proc.stdout.encode() == whole[: len(whole) // 2]
    with pytest.raises(HostError, match="not a facts document"):
        facts_from_probe_output(proc.stdout, truncated.name)

    proc = run(failing.ssh_argv("python3", "-"), input=probe)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "", "Traceback: boom\n")

    t0 = time.monotonic()
    proc = run(
        ["timeout", str(STALL_TIMEOUT), *stalling.ssh_argv("python3", "-")],
        input=probe,
        timeout=STALL_TIMEOUT + 10,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 124  # killed by timeout(1): the host never answered
    assert STALL_TIMEOUT <= elapsed < STALL_TIMEOUT + 3
    # The abandoned session's sleep outlives the client; stop() ends it with the sshd.
    leftovers = stalling.namespace_pids()
    assert any(Path(f"/proc/{pid}/comm").read_text().strip() == "sleep" for pid in leftovers)
    lab.remove_host(stalling.name)
    assert not stalling.alive
    assert stalling.namespace_pids() == []
    assert all(dead(pid) for pid in leftovers)


def test_many_aliases_for_one_sshd(lab: Lab) -> None:
    target = lab.add_host("lab-fanout", qemu=None, kernel="6.1.0-7-fanout", max_startups="200")
    cfg = lab.alias_config(60, target.name)
    names = alias_names(60)
    assert names[0] == "hv001" and names[-1] == "hv060"
    text = cfg.read_text()
    assert all(f"Host {n}\n" in text for n in names)
    assert text.count(f"Port {target.port}\n") == 61  # 60 aliases + the host's own block

    def one(alias: str) -> tuple[int, str]:
        proc = run(["ssh", "-F", str(cfg), alias, "cat /proc/sys/kernel/osrelease"])
        return proc.returncode, proc.stdout.strip()

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = list(pool.map(one, names))
    assert results == [(0, target.kernel)] * len(names)
