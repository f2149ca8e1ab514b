"""The probe cache: one round trip still, QEMU skipped only when nothing it depends on
changed, keyed on the machine that answered, and refused when someone else could write it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import require

import migcheck.probe.probe as probe
from migcheck.gather import Gatherer, GatherOptions, cache_dir


@pytest.fixture()
def qemu_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A QEMU binary of our own (a copy of the real one, with a module directory where the
    probe looks for it: PREFIX/lib/ARCH-linux-gnu/qemu), so the test can replace it in place
    or add a module like a package upgrade would."""
    real = shutil.which("qemu-system-x86_64")
    require(real is not None, "needs qemu-system-x86_64")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "prefix/bin").mkdir(parents=True)
    moddir = tmp_path / f"prefix/lib/{os.uname().machine}-linux-gnu/qemu"
    moddir.mkdir(parents=True)
    # The real build's modules (TCG itself is one on Debian), linked where the copy's
    # relocated module directory is.
    real_mods = Path(os.path.realpath(real)).parents[1] / moddir.relative_to(tmp_path / "prefix")
    for so in real_mods.glob("*.so") if real_mods.is_dir() else ():
        (moddir / so.name).symlink_to(so)
    binary = tmp_path / "prefix/bin/qemu-system-x86_64"
    shutil.copy2(real, binary)
    return binary


def gather(binary: Path, **kw):
    return Gatherer(GatherOptions(qemu=str(binary), **kw)).gather("local")


def from_cache(facts) -> bool:
    return facts.doc["probe"].get("qemu_from_cache") is True


def test_second_gather_reuses_qemu_answers_and_says_how_old(qemu_copy: Path):
    first = gather(qemu_copy)
    assert not from_cache(first) and first.doc["probe"]["cache"]["used"] is False
    (entry,) = cache_dir().glob("*.json")
    time.sleep(1.1)
    second = gather(qemu_copy)
    assert from_cache(second)
    assert second.doc["qemu"] == first.doc["qemu"]
    note = second.doc["probe"]["cache"]
    assert note["used"] is True and note["facts"] == ["qemu"] and note["age_seconds"] >= 1
    assert note["stored_at"].endswith("+00:00")
    # Private and atomic: 0700 directory, 0600 file, no temporary file left behind.
    assert cache_dir().stat().st_mode & 0o777 == 0o700
    assert entry.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in cache_dir().iterdir()] == [entry.name]


def test_refresh_forces_a_full_probe(qemu_copy: Path):
    gather(qemu_copy)
    fresh = gather(qemu_copy, refresh=True)
    assert not from_cache(fresh) and fresh.doc["probe"]["cache"]["why"] == "--refresh"


def test_qemu_replaced_in_place_keeping_size_and_mtime_means_a_fresh_probe(qemu_copy: Path):
    gather(qemu_copy)
    assert from_cache(gather(qemu_copy))
    st = qemu_copy.stat()
    data = qemu_copy.read_bytes()
    with qemu_copy.open("r+b") as f:  # same inode, same size, same bytes even
        f.write(data)
    os.utime(qemu_copy, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back
    after = qemu_copy.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
    )
    assert not from_cache(gather(qemu_copy))


def test_qemu_replaced_by_rename_means_a_fresh_probe(qemu_copy: Path):
    gather(qemu_copy)
    new = qemu_copy.with_name("new")
    shutil.copy2(qemu_copy, new)  # a package manager writes a new file and renames it
    os.replace(new, qemu_copy)
    assert not from_cache(gather(qemu_copy))


def test_a_module_added_means_a_fresh_probe(qemu_copy: Path):
    gather(qemu_copy)
    assert from_cache(gather(qemu_copy))
    moddir = qemu_copy.parents[1] / f"lib/{os.uname().machine}-linux-gnu/qemu"
    (moddir / "zz-test-added.so").write_bytes(b"\0" * 64)
    assert not from_cache(gather(qemu_copy))
    assert from_cache(gather(qemu_copy))


def test_a_wrapper_script_is_never_cached(qemu_copy: Path, tmp_path: Path):
    """What a script executes is not in its identity: its QEMU answers are never reused."""
    wrapper = tmp_path / "qemu-wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {qemu_copy} "$@"\n')
    wrapper.chmod(0o755)
    first = gather(wrapper)
    assert first.qemu_version and "script" in first.doc["probe"]["fingerprint"]["error"]
    assert not from_cache(gather(wrapper))
    assert not list(cache_dir().glob("*.json"))


def test_damaged_cache_costs_only_a_full_probe(qemu_copy: Path):
    gather(qemu_copy)
    for path in cache_dir().glob("*.json"):
        path.write_text("{ not json")
    facts = gather(qemu_copy)
    assert not from_cache(facts) and facts.qemu_version


def test_local_is_keyed_by_the_machine(qemu_copy: Path, monkeypatch: pytest.MonkeyPatch):
    """A home directory on NFS: another machine with the same cache directory misses."""
    import migcheck.gather as gather_mod

    gather(qemu_copy)
    assert from_cache(gather(qemu_copy))
    monkeypatch.setattr(gather_mod, "machine_id", lambda: "another-machine")
    assert not from_cache(gather(qemu_copy))


@pytest.mark.parametrize("fault", ["other-owner", "group-writable"])
def test_a_cache_others_can_write_is_refused(qemu_copy: Path, fault: str, capsys):
    gather(qemu_copy)  # a good entry exists: refusing must also mean not reading it
    directory = cache_dir()
    if fault == "other-owner":
        os.chown(directory, 65534, 65534)
    else:
        directory.chmod(0o770)
    g = Gatherer(GatherOptions(qemu=str(qemu_copy)))
    facts = g.gather("local")
    assert not from_cache(facts) and facts.qemu_version
    refused = facts.doc["probe"]["cache"]["refused"]
    assert str(directory) in refused and "not used" in refused
    assert g.notices == [refused]
    assert refused in capsys.readouterr().err


def test_running_guest_argv_is_never_stored(qemu_copy: Path):
    """--vm reads a guest's argv (which may carry secrets): the cache keeps none of it."""
    g = Gatherer(GatherOptions(qemu=str(qemu_copy)))
    proc, name = _start_guest(qemu_copy, "cache-argv-secret")
    try:
        facts = g.gather("local", vm=name)
        assert any(x.get("argv") for x in facts.doc["guests"]["guests"])
    finally:
        proc.kill()
        proc.wait()
    (entry,) = cache_dir().glob("*.json")
    text = entry.read_text()
    assert "guests" not in json.loads(text)["facts"] and "password=hunter2" not in text


def _start_guest(binary: Path, name: str) -> tuple[subprocess.Popen, str]:
    argv = [str(binary), "-name", f"guest={name}", "-machine", "none", "-accel", "tcg",
            "-S", "-nodefaults", "-display", "none", "-monitor", "none",
            "-object", "secret,id=s0,data=password=hunter2"]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # running once its /proc/PID/exe is the binary
        try:
            if os.readlink(f"/proc/{proc.pid}/exe").startswith(str(binary)):
                time.sleep(0.3)
                return proc, name
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("guest did not start")


def test_a_guest_whose_binary_was_deleted_is_judged_with_the_binary_it_runs(
    qemu_copy: Path,
):
    """A package upgrade replaced QEMU under a running guest: its facts come from the
    binary it runs (through /proc/PID/exe), never from the new one, and are not cached."""
    gather(qemu_copy)  # the cache holds the old install's answers
    proc, name = _start_guest(qemu_copy, "deleted-binary-guest")
    try:
        old_version = gather(qemu_copy).qemu_version
        qemu_copy.unlink()  # the upgrade: a new "binary" that could never answer QMP
        qemu_copy.write_text("#!/bin/sh\necho 'QEMU emulator version 99.0.0'\nexit 1\n")
        qemu_copy.chmod(0o755)
        assert os.readlink(f"/proc/{proc.pid}/exe").endswith(" (deleted)")
        facts = Gatherer(GatherOptions(qemu=str(qemu_copy))).gather("local", vm=name)
        assert facts.doc["qemu"]["running_binary"] == f"/proc/{proc.pid}/exe"
        assert facts.qemu_version == old_version and not from_cache(facts)
        (guest,) = [x for x in facts.doc["guests"]["guests"] if x.get("argv")]
        assert guest["exe_deleted"] is True
        # Without --vm the host's QEMU is the new file, and it cannot answer: no facts.
        plain = Gatherer(GatherOptions(qemu=str(qemu_copy))).gather("local")
        assert "error" in plain.doc["qemu"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


FINGERPRINT_KEYS = ["probe_version", "kernel_release", "kernel_version", "kernel_cmdline",
                    "microcode", "kvm_usable", "kvm_modules", "qemu_binary", "qemu_realpath",
                    "qemu_identity", "qemu_modules", "qemu_override"]  # fmt: skip


def test_fingerprint_covers_every_input(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(probe, "find_qemu", lambda arch: None)
    fp = probe.fingerprint({"kernel": {}, "cpu": {}, "kvm": {}}, "x86_64")
    assert sorted(fp) == sorted(FINGERPRINT_KEYS)


@pytest.mark.parametrize("key", FINGERPRINT_KEYS)
def test_any_changed_input_means_a_fresh_probe(qemu_copy: Path, key: str):
    """The real probe, told a known fingerprint that differs from the host's in one input
    (as if that input changed on the host since), starts QEMU again."""
    from migcheck.transport.local import run_local_probe

    config = {"qemu": str(qemu_copy), "qemu_timeout": 20}
    first = json.loads(run_local_probe(config))
    known = dict(first["probe"]["fingerprint"])
    same = json.loads(run_local_probe({**config, "known_fingerprint": known}))
    assert same["qemu"].get("cached") is True  # control: unchanged inputs skip QEMU
    known[key] = "changed since the last probe"
    again = json.loads(run_local_probe({**config, "known_fingerprint": known}))
    assert "cached" not in again["qemu"] and again["qemu"]["version"] == first["qemu"]["version"]


def test_a_host_alias_moved_to_another_machine_misses_the_cache(
    lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The cache is keyed on the host that answered (address, port, user, ssh_config, host
    key), not on the alias typed: the alias pointed at another machine gets a fresh probe."""
    from migcheck.transport.settings import SshSettings

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # this test's entries only
    for name in ("c-one", "c-two"):
        if name not in lab.hosts:
            lab.add_host(name, qemu="real")
    config = tmp_path / "ssh_config"

    def gather_alias(target: str):
        lab.write_ssh_config(config, aliases={"hv-moving": target})
        options = GatherOptions(ssh=SshSettings(config_file=config), timeout=60)
        return Gatherer(options).gather("hv-moving")

    first = gather_alias("c-one")
    assert not from_cache(first)
    assert from_cache(gather_alias("c-one"))  # control: the same machine reuses its answers
    moved = gather_alias("c-two")
    assert not from_cache(moved) and moved.qemu_version == first.qemu_version
    entries = [json.loads(p.read_text()) for p in cache_dir().glob("*.json")]
    keys = {e["identity"]["host_key"] for e in entries}
    assert keys == {lab.hosts[n].host_public_key.split()[0] + " SHA256:" + _sha(lab.hosts[n])
                    for n in ("c-one", "c-two")}  # fmt: skip


def _sha(host) -> str:
    import base64
    import hashlib

    blob = base64.b64decode(host.host_public_key.split()[1])
    return base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def test_reports_say_which_facts_came_from_the_cache(qemu_copy: Path):
    from migcheck.report.json import host_json

    assert host_json(gather(qemu_copy))["cache"] is None
    cached = gather(qemu_copy)
    note = host_json(cached)["cache"]
    assert note.startswith("qemu from the probe cache, ") and " s old (stored " in note
