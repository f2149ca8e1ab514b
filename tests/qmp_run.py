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
from pathlib import Path
from typing import Any

CHROOT = Path("/var/tmp/migcheck-trixie")
HOST_QEMU = shutil.which("qemu-system-x86_64")


def chroot_qemu() -> bool:
    return (CHROOT / "usr/bin/qemu-system-x86_64").is_file() and os.geteuid() == 0


class QmpError(RuntimeError):
    pass


def run_qmp(
    commands: list[dict[str, Any]],
    *,
    chroot: bool = False,
    args: tuple[str, ...] = ("-machine", "none"),
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Start QEMU with ``args``, run ``commands`` in order, return each reply
    (``{"return": ...}`` or ``{"error": ...}``), then quit QEMU."""
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
            return _talk(proc, sock_host, commands, timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
            if proc.stderr:
                proc.stderr.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _talk(
    proc: subprocess.Popen[bytes], sock_path: Path, commands: list[dict[str, Any]], timeout: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not sock_path.exists():
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise QmpError(f"QEMU exited {proc.returncode}: {err.strip()}")
        if time.monotonic() > deadline:
            raise QmpError("QEMU did not open its QMP socket")
        time.sleep(0.02)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        for _ in range(100):
            with contextlib.suppress(ConnectionRefusedError):
                sock.connect(str(sock_path))
                break
            time.sleep(0.02)
        f = sock.makefile("rw", encoding="utf-8")
        json.loads(f.readline())  # greeting
        replies = []
        for cmd in [{"execute": "qmp_capabilities"}, *commands, {"execute": "quit"}]:
            f.write(json.dumps(cmd) + "\n")
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    raise QmpError(f"QEMU closed QMP during {cmd['execute']}")
                msg = json.loads(line)
                if "return" in msg or "error" in msg:
                    break
            replies.append(msg)
        return replies[1:-1]
