"""Ground truth from real QEMU (issue 21): migrate each command line of
tests/groundtruth_cases.py both ways between this machine's QEMU 7.2 and the trixie chroot's
QEMU 10.0, judge each migration stage by stage (migcheck.trial.local), and hold migcheck's
verdict on the same command line against it.

A migration is ground-truth ``safe`` only when the destination started with ``-incoming``,
the migration completed, the guest-visible ABI (CPUID words, filtered features, virtio
offered features, every device's properties) is equal at the stopped instant and ``cont``
left the destination running.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import require
from groundtruth_cases import (
    CASES,
    DIRECTIONS,
    KNOWN_GAPS,
    agreement,
    builds,
    migcheck_verdicts,
    run_trials,
)
from lab.chroot import chroot_has_kvm, trixie_root

from migcheck.trial.abi import Snapshot, compare, parse_qtree
from migcheck.trial.local import migrate
from migcheck.trial.qmp import QmpClient, QmpError

KEYS = [f"{case.id}/{d}" for case in CASES for d in DIRECTIONS]
HAVE_QEMU = shutil.which("qemu-system-x86_64") is not None
HAVE_KVM = os.access("/dev/kvm", os.R_OK | os.W_OK)


def _need(case_id: str) -> Path:
    require(HAVE_QEMU, "needs qemu-system-x86_64 (QEMU 7.2, Debian 12)")
    root = trixie_root()
    require(root is not None, "needs the Debian 13 chroot with QEMU 10.0: run .ci/trixie-chroot")
    assert root is not None
    if next(c for c in CASES if c.id == case_id).kvm:
        require(HAVE_KVM, "needs a usable /dev/kvm")
        require(chroot_has_kvm(root), f"needs /dev/kvm inside {root}: run .ci/trixie-chroot")
    return root


@pytest.fixture(scope="module")
def trials() -> dict[str, object]:
    """Every migration, run once for the module (two at a time: 2 cores here)."""
    root = trixie_root()
    if not HAVE_QEMU or root is None:
        return {}
    cases = [c for c in CASES if not c.kvm or (HAVE_KVM and chroot_has_kvm(root))]
    return run_trials(cases, root, jobs=2)


@pytest.fixture(scope="module")
def verdicts() -> dict[str, str]:
    return migcheck_verdicts(list(CASES))


def _params_no_false_safe() -> list[object]:
    out = []
    for key in KEYS:
        marks = []
        if key in KNOWN_GAPS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[key]))
        out.append(pytest.param(key, id=key, marks=marks))
    return out


@pytest.mark.parametrize("key", KEYS)
def test_ground_truth_outcome(key: str, trials: dict[str, object]) -> None:
    """(b) Each measured outcome holds: the stage that fails and QEMU's own words."""
    case_id, direction = key.split("/")
    _need(case_id)
    case = next(c for c in CASES if c.id == case_id)
    result = trials[key]
    expected = case.expected(direction)
    summary = result.summary()  # type: ignore[attr-defined]
    if expected == "safe":
        assert result.outcome == "safe", summary  # type: ignore[attr-defined]
        return
    stage, fragment = expected.split(": ", 1)
    failed = result.failed  # type: ignore[attr-defined]
    assert result.outcome == "unsafe", summary  # type: ignore[attr-defined]
    assert failed is not None and failed.name == stage, summary
    assert fragment in failed.detail, summary


@pytest.mark.parametrize("key", _params_no_false_safe())
def test_migcheck_never_safe_where_migration_is_unsafe(
    key: str, trials: dict[str, object], verdicts: dict[str, str]
) -> None:
    """(a) migcheck never says ``safe`` where the real migration fails or changes the guest's
    hardware; the exceptions are KNOWN_GAPS (strict xfail: fixing one flips the test)."""
    case_id, _ = key.split("/")
    _need(case_id)
    result = trials[key]
    truth = result.outcome  # type: ignore[attr-defined]
    assert truth != "unknown", f"the trial could not judge: {result.summary()}"  # type: ignore[attr-defined]
    assert agreement(truth, verdicts[key]) != "false safe", (
        f"migcheck says safe, real migration: {result.summary()}"  # type: ignore[attr-defined]
    )


def test_every_known_gap_names_a_real_case() -> None:
    assert set(KNOWN_GAPS) <= set(KEYS)
    assert len(CASES) >= 40


# --- the trial library on its own -------------------------------------------------------------


def test_trial_cleans_up_processes_and_run_directory(tmp_path: Path) -> None:
    """A refused migration (a blocker) leaves no QEMU and no run directory behind."""
    require(HAVE_QEMU, "needs qemu-system-x86_64")
    build = builds(Path("/"))["7.2"]
    args = [
        "-display",
        "none",
        "-m",
        "64",
        "-nodefaults",
        "-accel",
        "tcg",
        "-M",
        "pc-q35-7.2",
        "-device",
        "amd-iommu",
    ]
    result = migrate(build, build, args, run_parent=tmp_path)  # type: ignore[arg-type]
    assert result.outcome == "unsafe" and result.failed.name == "migrate"  # type: ignore[union-attr]
    assert "amd-iommu" in result.failed.detail  # type: ignore[union-attr]
    assert list(tmp_path.iterdir()) == []
    ours = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert ours.stdout.strip() == ""


def test_same_build_migration_is_safe(tmp_path: Path) -> None:
    """7.2 -> 7.2 with virtio devices: every stage passes, the ABI compares equal."""
    require(HAVE_QEMU, "needs qemu-system-x86_64")
    build = builds(Path("/"))["7.2"]
    args = [
        "-display",
        "none",
        "-m",
        "64",
        "-nodefaults",
        "-accel",
        "tcg",
        "-smp",
        "2",
        "-M",
        "pc-q35-7.2",
        "-device",
        "virtio-net-pci",
        "-blockdev",
        "null-co,node-name=d0",
        "-device",
        "virtio-blk-pci,drive=d0",
    ]
    result = migrate(build, build, args, run_parent=tmp_path)  # type: ignore[arg-type]
    assert result.outcome == "safe", result.summary()
    assert [s.name for s in result.stages] == [
        "source-start",
        "destination-start",
        "migrate",
        "abi",
        "cont",
    ]


def test_qmp_on_dead_qemu_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """QEMU killed under an open connection: the next call raises within its timeout."""
    require(HAVE_QEMU, "needs qemu-system-x86_64")
    sock = tmp_path / "q.sock"
    proc = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-display",
            "none",
            "-nodefaults",
            "-m",
            "32",
            "-S",
            "-qmp",
            f"unix:{sock},server=on,wait=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = QmpClient.connect(str(sock), timeout=10, alive=lambda: proc.poll() is None)
        assert client.execute("query-status")["status"] == "prelaunch"
        proc.kill()
        proc.wait(timeout=5)
        started = time.monotonic()
        with pytest.raises(QmpError, match=r"closed|lost|send"):
            client.execute("query-status", timeout=5)
        assert time.monotonic() - started < 5
        client.close()
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_qmp_silent_peer_times_out(tmp_path: Path) -> None:
    """A socket that accepts and never speaks: connect gives up at its deadline."""
    path = tmp_path / "silent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(QmpError, match="cannot connect"):
            QmpClient.connect(str(path), timeout=0.8)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_qmp_exited_qemu_reports_at_once(tmp_path: Path) -> None:
    """A QEMU that exits at start (bad option) stops the connect loop without waiting."""
    require(HAVE_QEMU, "needs qemu-system-x86_64")
    proc = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-M",
            "no-such-machine",
            "-qmp",
            f"unix:{tmp_path / 'q.sock'},server=on,wait=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    with pytest.raises(QmpError, match="exited"):
        QmpClient.connect(str(tmp_path / "q.sock"), timeout=20, alive=lambda: proc.poll() is None)
    assert time.monotonic() - started < 10
    proc.wait(timeout=5)


QTREE = """bus: main-system-bus
  type System
  dev: q35-pcihost, id ""
    bus: pcie.0
      type PCIE
      dev: virtio-net-pci, id "n0"
        rombar = 1 (0x1)
        netdev = "hostnet0"
        addr = 02.0
      dev: e1000, id ""
        rombar = 1 (0x1)
        addr = 03.0
        bar 0: mem at 0xffffffffffffffff [0x1fffe]
"""


def test_qtree_keys_and_representation_normalisations() -> None:
    devices = parse_qtree(QTREE)
    assert set(devices) == {
        "/main-system-bus/q35-pcihost[0]",
        "/main-system-bus/q35-pcihost[0]/pcie.0/virtio-net-pci#n0",
        "/main-system-bus/q35-pcihost[0]/pcie.0/e1000@03.0",
    }
    newer = parse_qtree(
        QTREE.replace("rombar = 1 (0x1)", "rombar = -1 (0xffffffff)").replace(
            '"hostnet0"', '"__org.qemu.net0"'
        )
    )
    assert compare(Snapshot(devices=devices), Snapshot(devices=newer)) == []
    off = parse_qtree(
        QTREE.replace(
            "rombar = 1 (0x1)\n        addr = 03.0", "rombar = 0 (0x0)\n        addr = 03.0"
        )
    )
    (diff,) = compare(Snapshot(devices=devices), Snapshot(devices=off))
    assert diff.what.endswith("e1000@03.0 rombar")


def test_cpu_runtime_bits_and_unknown_virtio_bits_compare_equal() -> None:
    from migcheck.trial.abi import _virtio_features, _words

    def word(eax: int, reg: str, bits: int) -> dict[str, object]:
        return {
            "cpuid-input-eax": eax,
            "cpuid-input-ecx": 0,
            "cpuid-register": reg,
            "features": bits,
        }

    older = Snapshot(cpus={"vcpu0": _words([word(1, "EDX", 0x1), word(0x80000001, "ECX", 0)])})
    newer = Snapshot(
        cpus={"vcpu0": _words([word(1, "EDX", 0x1 | 1 << 28), word(0x80000001, "ECX", 0x2)])}
    )
    assert compare(older, newer) == []  # HTT, CmpLegacy: ORed in at run time by 7.2
    other = Snapshot(cpus={"vcpu0": _words([word(1, "EDX", 0x3)])})
    assert [d.what for d in compare(older, other)] == ["vcpu0 CPUID CPUID.1h.0:EDX bits 0x2"]

    decoded = {
        "host-features": {
            "transports": ["VIRTIO_F_RING_RESET: reset"],
            "dev-features": [],
            "unknown-dev-features": 0,
        }
    }
    unknown = {
        "host-features": {"transports": [], "dev-features": [], "unknown-dev-features": 1 << 40}
    }
    a = Snapshot(virtio={"virtio-net#n0": _virtio_features(decoded)})
    b = Snapshot(virtio={"virtio-net#n0": _virtio_features(unknown)})
    assert compare(a, b) == []
    fewer = Snapshot(
        virtio={
            "virtio-net#n0": _virtio_features(
                {"host-features": {"transports": [], "dev-features": []}}
            )
        }
    )
    assert [d.what for d in compare(a, fewer)] == [
        "virtio virtio-net#n0 feature bits 0x10000000000"
    ]


def test_fewer_virtio_features_load_silently_and_the_abi_stage_sees_it(tmp_path: Path) -> None:
    """The issue's point: with no guest driver nothing was negotiated, so a destination whose
    virtio-net offers less (mrg_rxbuf=off) loads the state and runs. Only the ABI stage fails,
    naming the feature bit and the property."""
    require(HAVE_QEMU, "needs qemu-system-x86_64")
    build = builds(Path("/"))["7.2"]
    args = [
        "-display",
        "none",
        "-m",
        "64",
        "-nodefaults",
        "-accel",
        "tcg",
        "-M",
        "pc-q35-7.2",
        "-device",
        "virtio-net-pci,id=n0",
    ]
    dst = [*args[:-1], "virtio-net-pci,id=n0,mrg_rxbuf=off"]
    result = migrate(build, build, args, run_parent=tmp_path, dst_args=dst)  # type: ignore[arg-type]
    by_name = {s.name: s for s in result.stages}
    assert by_name["migrate"].ok and by_name["cont"].ok, result.summary()
    assert result.outcome == "unsafe" and by_name["abi"].ok is False
    diffs = {d.what: (d.source, d.destination) for d in result.differences}
    assert diffs["virtio virtio-net#n0 features"] == (["VIRTIO_NET_F_MRG_RXBUF"], [])
    prop = (
        "/main-system-bus/q35-pcihost[0]/pcie.0/virtio-net-pci#n0/virtio-bus/virtio-net-device[0]"
    )
    assert diffs[f"device {prop} mrg_rxbuf"] == ("true", "false")
    assert len(diffs) == 2, diffs


def test_snapshot_of_a_qemu_that_dies_is_an_abi_error(tmp_path: Path) -> None:
    """A QEMU that dies under the ABI queries (some builds abort on x-query-virtio-status)
    makes the comparison unknown, naming the query, never a crash or a hang."""
    from migcheck.trial.abi import AbiError, snapshot

    require(HAVE_QEMU, "needs qemu-system-x86_64")
    sock = tmp_path / "q.sock"
    proc = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-display",
            "none",
            "-nodefaults",
            "-m",
            "32",
            "-S",
            "-device",
            "virtio-rng-pci",
            "-qmp",
            f"unix:{sock},server=on,wait=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = QmpClient.connect(str(sock), timeout=10, alive=lambda: proc.poll() is None)
        assert "virtio-rng[0]" in snapshot(client).virtio
        proc.kill()
        proc.wait(timeout=5)
        with pytest.raises(AbiError, match="info qtree"):
            snapshot(client, timeout=5)
        client.close()
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_trixie_root_needs_qemu_inside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGCHECK_TRIXIE", str(tmp_path))
    assert trixie_root() is None
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/qemu-system-x86_64").write_bytes(b"")
    assert trixie_root() == tmp_path


def test_run_directory_must_be_inside_a_chroot_build(tmp_path: Path) -> None:
    """Sockets outside the chroot tree are unreachable from the chrooted QEMU: refused."""
    chrooted = builds(tmp_path / "root")["10.0"]
    with pytest.raises(ValueError, match="outside"):
        migrate(chrooted, chrooted, [], run_parent=tmp_path)  # type: ignore[arg-type]
