"""Files migcheck writes: never over each other, never through a planted symlink, never
half-written; a report path that cannot be written stops the run before any host."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require
from typer.testing import CliRunner

from migcheck.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
BOOKWORM = FIXTURES / "debian12-qemu7.2-epyc-pvm.json"
TRIXIE = FIXTURES / "debian13-qemu10.0-epyc-pvm.json"

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_two_hosts_that_would_write_one_file_are_refused_before_gathering():
    started = time.monotonic()
    # Unresolvable names: reaching the network at all would take longer and say so.
    r = run("gather", "root@hv-same.invalid", "hv-same.invalid:2222", "--out-dir", "/tmp/x-no")
    assert r.exit_code == 2
    assert "'root@hv-same.invalid' and 'hv-same.invalid:2222'" in r.stderr
    assert "hv-same.invalid.json" in r.stderr
    assert time.monotonic() - started < 2
    assert not Path("/tmp/x-no").exists()


def test_a_host_whose_name_is_no_file_name_is_reported_and_the_others_written(tmp_path: Path):
    doc = json.loads(BOOKWORM.read_text())
    doc["host"]["name"] = "h" * 300  # NAME_MAX is 255: no file system takes it
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(doc))
    out = tmp_path / "out"
    r = run("gather", str(odd), str(TRIXIE), "--out-dir", str(out))
    assert r.exit_code == 3, r.stderr
    assert "facts not saved" in r.stderr and "is no file name" in r.stderr
    assert sorted(p.name for p in out.glob("*.json")) == ["hv-trixie.json"]


def test_a_planted_symlink_is_replaced_never_followed(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (out / "hv-trixie.json").symlink_to(victim)
    r = run("gather", str(TRIXIE), "--out-dir", str(out))
    assert r.exit_code == 0, r.stderr
    assert victim.read_text() == "precious\n"
    saved = out / "hv-trixie.json"
    assert not saved.is_symlink() and json.loads(saved.read_text())["host"]["name"] == "hv-trixie"
    assert not list(out.glob(".*.tmp"))


@pytest.fixture()
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    require(proc.returncode == 0, f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_keeps_the_previous_file_and_says_so(small_tmpfs: Path):
    out = small_tmpfs / "out"
    out.mkdir()
    previous = '{"previous": true}\n'
    (out / "hv-trixie.json").write_text(previous)
    fd = os.open(small_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk up to the last block
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    r = run("gather", str(TRIXIE), "--out-dir", str(out))
    assert r.exit_code == 2, r.stderr
    assert "No space left on device" in r.stderr and "hv-trixie.json" in r.stderr
    assert "Traceback" not in r.stderr
    assert (out / "hv-trixie.json").read_text() == previous
    assert not list(out.glob(".*.tmp"))


def test_an_output_that_cannot_be_written_is_exit_2_before_any_host():
    """A listening socket stands for the host: after the run nobody has connected to it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        started = time.monotonic()
        r = run(
            "fleet",
            f"127.0.0.1:{port}",
            str(TRIXIE),
            "--cmdline",
            str(FIXTURES.parent / "cmdlines" / "missing.cmdline"),
            "-o",
            "/nonexistent-dir/report.json",
        )
        assert r.exit_code == 2
        assert "--output /nonexistent-dir/report.json: cannot be written" in r.stderr
        assert "does not exist" in r.stderr
        assert time.monotonic() - started < 2
        readable, _, _ = select.select([server], [], [], 0.2)
        assert not readable  # no connection was ever attempted
