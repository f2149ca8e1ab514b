"""Run a real QEMU briefly and talk QMP to it (tests and tests/data/compat/capture.py).

The distribution's QEMU (Debian 12: 7.2) runs on the host; Debian 13's (10.0) inside the
chroot at /var/tmp/migcheck-trixie. QEMU starts paused (-S) with no default devices beyond
those asked for, so nothing runs guest code.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROOT = Path("/var/tmp/migcheck-trixie")
HOST_QEMU = shutil.which("qemu-system-x86_64")


def chroot_qemu() -> bool:
    return (CHROOT / "usr/bin/qemu-system-x86_64").is_file() and os.geteuid() == 0


class QmpError(RuntimeError):
    pass


class QmpSession:
    """One QMP connection: ``cmd(name, **arguments)`` returns the reply (return or error)."""

    def __init__(self, f: Any) -> None:
        self._f = f

    def cmd(self, execute: str, **arguments: Any) -> dict[str, Any]:
        msg: dict[str, Any] = {"execute": execute}
        if arguments:
            msg["arguments"] = arguments
        self._f.write(json.dumps(msg) + "\n")
        self._f.flush()
        while True:
            line = self._f.readline()
            if not line:
                raise QmpError(f"QEMU closed QMP during {execute}")
            reply = json.loads(line)
            if "return" in reply or "error" in reply:
                return reply


@contextlib.contextmanager
def qmp_session(
    *,
    chroot: bool = False,
    args: tuple[str, ...] = ("-machine", "none"),
    timeout: float = 30.0,
) -> Iterator[QmpSession]:
    """Start QEMU with ``args`` and yield a QMP session; QEMU quits (or is killed) after."""
    base = Path(tempfile.mkdtemp(prefix="migcheck-qmp-", dir=(CHROOT / "tmp") if chroot else None))
    try:
        sock_host = base / "qmp.sock"
        sock_qemu = ("/" + str(sock_host.relative_to(CHROOT))) if chroot else str(sock_host)
        argv = ["qemu-system-x86_64", "-nodefaults", "-display", "none", "-S", *args]
        argv += ["-qmp", f"unix:{sock_qemu},server=on,wait=off"]
        if chroot:
            argv = ["chroot", str(CHROOT), *argv]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with _connect(proc, sock_host, timeout) as sock:
                f = sock.makefile("rw", encoding="utf-8")
                json.loads(f.readline())  # greeting
                session = QmpSession(f)
                session.cmd("qmp_capabilities")
                yield session
                with contextlib.suppress(QmpError, OSError):
                    session.cmd("quit")
        finally:
            if proc.poll() is None:
                try:
                    proc.wait(2)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.wait(5)
            if proc.stderr:
                proc.stderr.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_qmp(
    commands: list[dict[str, Any]],
    *,
    chroot: bool = False,
    args: tuple[str, ...] = ("-machine", "none"),
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Start QEMU with ``args``, run ``commands`` in order, return each reply
    (``{"return": ...}`` or ``{"error": ...}``), then quit QEMU."""
    with qmp_session(chroot=chroot, args=args, timeout=timeout) as qmp:
        return [qmp.cmd(c["execute"], **c.get("arguments", {})) for c in commands]


def _connect(proc: subprocess.Popen[bytes], sock_path: Path, timeout: float) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise QmpError(f"QEMU exited {proc.returncode}: {err.strip()}")
        if sock_path.exists():
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(timeout)
            try:
                sock.connect(str(sock_path))
                return sock
            except ConnectionRefusedError:
                sock.close()
        if time.monotonic() > deadline:
            raise QmpError("QEMU did not open its QMP socket")
        time.sleep(0.02)
