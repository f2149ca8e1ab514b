"""`migcheck trial` over the real-sshd lab with real QEMU on both sides (issue 23).

Two lab hosts: ``tr-old`` runs this machine's QEMU (Debian 12, 7.2), ``tr-new`` the trixie
chroot's (10.0) through ``lab.chroot.qemu_wrapper``. Every trial relays the migration
stream through migcheck's two SSH connections. The matrix runs through ``trial`` (which
includes the static checks of ``pair``) and prints the agreement table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require
from lab.chroot import qemu_wrapper, trixie_root

from migcheck import commands
from migcheck.cmdline import parse_cmdline
from migcheck.findings import Status
from migcheck.gather import GatherOptions
from migcheck.hosts import parse_host
from migcheck.transport.settings import SshSettings
from migcheck.transport.ssh import SshSession
from migcheck.trial import remote
from migcheck.trial.skeleton import build
from migcheck.verdict import Verdict

ROOT = Path(__file__).resolve().parent.parent
QEMU = Path("/usr/bin/qemu-system-x86_64")
BASE = "qemu-system-x86_64 -machine {machine} -accel tcg -m 256 -nodefaults"
AGREEMENT: list[tuple[str, str, str, str]] = []


@pytest.fixture(scope="module")
def hosts(lab) -> Iterator[tuple[str, str]]:
    root = trixie_root()
    require(root is not None, "no trixie chroot with QEMU 10.0 (.ci/trixie-chroot)")
    require(os.access(QEMU, os.X_OK), f"no {QEMU}")
    assert root is not None
    wrapper = qemu_wrapper(Path(lab.root) / "qemu-trixie", root)
    lab.add_host("tr-old")
    lab.add_host("tr-new", extra={str(QEMU): wrapper})
    yield "tr-old", "tr-new"
    for name in ("tr-old", "tr-new"):
        lab.remove_host(name)


def _options(lab) -> GatherOptions:
    return GatherOptions(
        ssh=SshSettings(config_file=lab.ssh_config, timeout=60), timeout=60, cache=False
    )


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    out = []
    for pid in _all_pids():
        cur, hops = pid, 0
        while cur > 1 and hops < 64:
            cur, hops = _ppid(cur), hops + 1
            if cur == root:
                out.append(pid)
                break
    return out


def _leftovers(lab, *names: str) -> list[str]:
    """What a trial could leave: anything the lab hosts' sshd listeners started (sessions,
    agents, QEMUs, whatever their namespace), any QEMU whose QMP socket is in a trial
    directory (an orphan), and trial directories."""
    found = []
    for name in names:
        host = lab.hosts[name]
        for pid in {*host.namespace_pids(), *_descendants(host.process.pid)}:
            if pid != host.process.pid and _cmd(pid):
                found.append(f"{name}: {pid} {_cmd(pid)[:120]}")
    found += [f"orphan {pid}" for pid in _all_pids() if "migcheck-trial-" in _cmd(pid)]
    found += [str(p) for p in Path("/tmp").glob("migcheck-trial-*")]
    return found


def _wait_clean(lab, *names: str, seconds: float = 15.0) -> list[str]:
    deadline = time.monotonic() + seconds
    left = _leftovers(lab, *names)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _leftovers(lab, *names)
    return left


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "guest.cmdline"
    path.write_text(text + "\n")
    return str(path)


def _trial_findings(outcome) -> dict[str, object]:
    return {f.id: f for f in outcome.forward.findings if f.id.startswith("trial.")}


def _record(case: str, outcome) -> None:
    static = [f for f in outcome.forward.findings if not f.id.startswith("trial.")]
    trial = [f for f in outcome.forward.findings if f.id.startswith("trial.")]
    from migcheck.verdict import decide

    AGREEMENT.append((case, decide(static).value, decide(trial).value, outcome.verdict.value))


MATRIX = [
    # case, src, dst, options, expected trial finding that fails (None: all pass)
    (
        "identical, versioned machine",
        "old",
        "new",
        BASE.format(machine="pc-q35-7.2")
        + " -device virtio-net-pci,netdev=n0 -netdev user,id=n0 -serial pty",
        None,
    ),
    (
        "identical, tap network (private namespace)",
        "old",
        "new",
        BASE.format(machine="pc-q35-7.2")
        + " -netdev tap,id=n0,ifname=mc-real0,script=/etc/qemu-ifup,vhost=off"
        + " -device virtio-net-pci,netdev=n0,id=net0",
        None,
    ),
    ("machine type only on the source", "new", "old", BASE.format(machine="pc-q35-10.0"), "start"),
    (
        "device property only in the newer QEMU",
        "new",
        "old",
        BASE.format(machine="pc-q35-7.2")
        + " -device virtio-net-pci,netdev=n0,host_uso=off -netdev user,id=n0",
        "start",
    ),
    ("-cpu max under TCG", "old", "new", BASE.format(machine="pc-q35-7.2") + " -cpu max", "abi"),
    (
        "CPU model only the newer QEMU has",
        "new",
        "old",
        BASE.format(machine="pc-q35-7.2") + " -cpu SierraForest",
        "start",
    ),
]


@pytest.mark.parametrize("case, src, dst, line, failing", MATRIX, ids=[m[0] for m in MATRIX])
def test_trial_matrix(lab, hosts, tmp_path, case, src, dst, line, failing) -> None:
    names = {"old": hosts[0], "new": hosts[1]}
    outcome = commands.trial(names[src], names[dst], _options(lab), cmdline=_write(tmp_path, line))
    _record(case, outcome)
    found = _trial_findings(outcome)
    if failing is None:
        assert [f.status for f in found.values()] == [Status.PASS] * 4, found
        assert outcome.verdict in (Verdict.SAFE, Verdict.UNKNOWN)
    else:
        bad = found[f"trial.{failing}"]
        assert bad.status is Status.FAIL, found
        assert outcome.verdict is Verdict.UNSAFE
        if failing == "abi":
            assert found["trial.transfer"].status is Status.PASS
            assert "CPUID" in bad.message
            # Migrated again from 7.2 into 7.2: equal, so the difference is between builds.
            assert "to itself: an incompatibility" in bad.message
        else:
            assert "QEMU exited" in bad.message and "destination" in bad.message
    assert _wait_clean(lab, *hosts) == []
    # A tap lives in the skeleton's private network namespace: none appears on the host.
    assert not [n for n in os.listdir("/sys/class/net") if n.startswith(("tap", "mc-real"))]


def test_a_blocker_is_refused_before_any_qemu_starts(lab, hosts, tmp_path, monkeypatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(remote, "run", lambda *a, **k: started.append(a))
    line = BASE.format(machine="pc-q35-7.2") + (
        " -object memory-backend-ram,id=shm,size=1M -device ivshmem-plain,memdev=shm"
    )
    outcome = commands.trial(*hosts, _options(lab), cmdline=_write(tmp_path, line))
    _record("migration blocker (ivshmem peer)", outcome)
    found = _trial_findings(outcome)
    assert started == []
    assert found["trial.start"].status is Status.UNKNOWN
    assert "blocker" in found["trial.start"].message
    assert outcome.verdict is Verdict.UNSAFE  # the static blocker decides


def test_refused_skeleton_is_unknown_never_safe(lab, hosts, tmp_path) -> None:
    line = BASE.format(machine="pc-q35-7.2") + " -device vfio-pci,host=0000:00:02.0"
    settings = SshSettings(config_file=lab.ssh_config, timeout=60)
    spec = parse_cmdline(line)
    with SshSession(settings) as session:
        run, _ = remote.run(
            session,
            parse_host(hosts[0]),
            parse_host(hosts[1]),
            lambda sizes, r: build(spec, sizes, reserve_off=r),
            remote.TrialOptions(),
            [],
        )
    from migcheck.trial.report import findings

    result = findings(run)
    assert [f.status for f in result] == [Status.UNKNOWN]
    assert "vfio-pci" in result[0].message
    assert _wait_clean(lab, *hosts) == []


def _big_trial(lab, hosts, gib: int, stop: threading.Event | None = None, **kw):
    spec = parse_cmdline(BASE.format(machine="pc-q35-7.2").replace("-m 256", f"-m {gib}G"))
    settings = SshSettings(config_file=lab.ssh_config, timeout=60)
    with SshSession(settings) as session:
        return remote.run(
            session,
            parse_host(hosts[0]),
            parse_host(hosts[1]),
            lambda sizes, r: build(spec, sizes, reserve_off=r),
            remote.TrialOptions(max_memory=1 << 50, **kw),
            [],
        )


def _qemus(lab, name: str) -> list[int]:
    out = []
    for pid in _descendants(lab.hosts[name].process.pid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().startswith("qemu-system"):
                out.append(pid)
        except OSError:
            pass
    return out


def _when_migrating(lab, hosts, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _qemus(lab, hosts[0]) and _qemus(lab, hosts[1]):
            time.sleep(1.0)  # the destination has started; the transfer is under way
            return
        time.sleep(0.05)
    raise AssertionError("the trial never started both QEMUs")


def test_connection_killed_mid_trial_leaves_nothing(lab, hosts) -> None:
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.update(r=_big_trial(lab, hosts, 64)))
    thread.start()
    _when_migrating(lab, hosts)
    # Kill the destination's per-connection sshd processes: the connection drops.
    host = lab.hosts[hosts[1]]
    for pid in host.namespace_pids():
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"sshd" in cmd and pid != host.process.pid and b"-D" not in cmd:
            os.kill(pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()
    run, _ = box["r"]  # type: ignore[misc]
    assert run.result.outcome != "safe"
    assert _wait_clean(lab, *hosts) == []


def test_hanging_destination_is_cut_by_the_deadline(lab, hosts) -> None:
    box: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: box.update(r=_big_trial(lab, hosts, 64, transfer_timeout=6.0))
    )
    thread.start()
    _when_migrating(lab, hosts)
    for pid in _qemus(lab, hosts[1]):
        os.kill(pid, signal.SIGSTOP)  # the destination QEMU hangs
    thread.join(timeout=120)
    assert not thread.is_alive()
    run, _ = box["r"]  # type: ignore[misc]
    assert run.result.outcome == "unsafe"
    assert run.result.failed.name == "migrate"
    assert _wait_clean(lab, *hosts) == []


def test_ctrl_c_leaves_nothing(lab, hosts, tmp_path) -> None:
    line = BASE.format(machine="pc-q35-7.2").replace("-m 256", "-m 64G")
    guest = _write(tmp_path, line)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("migcheck")),
            "trial",
            *hosts,
            "--cmdline",
            guest,
            "--ssh-config",
            str(lab.ssh_config),
            "--format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        # A suite started in the background inherits SIGINT ignored: not the CLI under test.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _when_migrating(lab, hosts)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    # The project's Ctrl-C exit (cli.main): never 0, never a report that says safe.
    assert proc.returncode == 3, err.decode()[-800:]  # interrupted: unknown (DESIGN.md)
    assert b'"safe"' not in out
    assert _wait_clean(lab, *hosts) == []


def test_zz_agreement_table() -> None:
    """The matrix through the static checks and the trial (printed with -s)."""
    require(bool(AGREEMENT), "the matrix did not run")
    width = max(len(c) for c, *_ in AGREEMENT)
    lines = [f"{'case':<{width}}  static   trial    verdict"]
    lines += [f"{c:<{width}}  {s:<8} {t:<8} {v}" for c, s, t, v in AGREEMENT]
    print("\n" + "\n".join(lines))
    for case, static, trial, verdict in AGREEMENT:
        assert verdict in ("unsafe", "unknown", "safe")
        if "unsafe" in (static, trial):
            assert verdict == "unsafe", case


def test_cli_json_through_trial_and_pair_trial(lab, hosts, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from migcheck.cli import app

    common = ["--ssh-config", str(lab.ssh_config), "--format", "json"]
    same = _write(tmp_path, BASE.format(machine="pc-q35-7.2"))
    result = CliRunner().invoke(app, ["trial", *hosts, "--cmdline", same, *common])
    doc = json.loads(result.stdout)
    ids = {c["id"]: c["status"] for c in doc["checks"]}
    assert result.exit_code == 0 and doc["verdict"] == "safe", result.stdout[-2000:]
    assert [ids[i] for i in ("trial.start", "trial.transfer", "trial.abi", "trial.resume")] == [
        "pass"
    ] * 4
    cpu_max = tmp_path / "max.cmdline"
    cpu_max.write_text(BASE.format(machine="pc-q35-7.2") + " -cpu max\n")
    result = CliRunner().invoke(
        app, ["pair", hosts[0], hosts[1], "--trial", "--cmdline", str(cpu_max), *common]
    )
    doc = json.loads(result.stdout)
    abi = next(c for c in doc["checks"] if c["id"] == "trial.abi")
    assert result.exit_code == 1 and doc["verdict"] == "unsafe"
    assert abi["status"] == "fail" and "CPUID" in abi["message"]
    assert _wait_clean(lab, *hosts) == []


def test_trial_of_a_running_guest_by_name(lab, hosts, tmp_path) -> None:
    """--vm NAME: the source's probe reads the running guest's argv; its monitor and
    pidfile are the real guest's and stay untouched, the skeleton gets its own."""
    pidfile, sock = tmp_path / "real.pid", tmp_path / "real.qmp"
    real = subprocess.Popen(
        [
            str(QEMU),
            *("-name", "guest=mc-trial-vm", "-machine", "pc-q35-7.2", "-accel", "tcg"),
            *("-m", "64", "-S", "-display", "none", "-nodefaults", "-no-user-config"),
            *("-qmp", f"unix:{sock},server=on,wait=off", "-pidfile", str(pidfile)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        outcome = commands.trial(hosts[0], hosts[0], _options(lab), vm_name="mc-trial-vm")
        found = _trial_findings(outcome)
        assert [f.status for f in found.values()] == [Status.PASS] * 4, found
        assert real.poll() is None and sock.exists() and pidfile.exists()
    finally:
        real.kill()
        real.wait(timeout=10)
    assert _wait_clean(lab, *hosts) == []


def test_one_login_per_host(lab, hosts, tmp_path) -> None:
    """The probe, both agents and the stream share one SSH connection per host."""

    def logins() -> list[int]:
        return [lab.hosts[h].log().count("Accepted publickey") for h in hosts]

    before = logins()
    line = BASE.format(machine="pc-q35-7.2") + " -device virtio-net-pci,netdev=n0"
    outcome = commands.trial(
        *hosts, _options(lab), cmdline=_write(tmp_path, line + " -netdev user,id=n0")
    )
    assert outcome.verdict is Verdict.SAFE
    assert [a - b for a, b in zip(logins(), before, strict=True)] == [1, 1]
    assert _wait_clean(lab, *hosts) == []
