"""Ask a real QEMU whether it refuses to migrate a configuration (tests only).

QEMU checks its blockers when ``migrate`` is issued: migration_is_blocked() in
migration/migration.c returns the first registered blocker (migrate_add_blocker*) or, through
qemu_savevm_state_blocked() in migration/savevm.c, "State blocked by non-migratable device
'NAME'" for a VMState marked ``.unmigratable``. Either comes back as the QMP error of the
``migrate`` command, so migrating to ``exec:cat >/dev/null`` is enough to see it, without a
destination.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

TRIXIE = Path("/var/tmp/migcheck-trixie")


def have_qemu72() -> bool:
    return shutil.which("qemu-system-x86_64") is not None


def have_trixie() -> bool:
    return os.geteuid() == 0 and (TRIXIE / "usr/bin/qemu-system-x86_64").exists()


def accel() -> str:
    return "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"


class _Qmp:
    def __init__(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        self.proc = proc
        self.deadline = time.monotonic() + timeout
        self.sel = selectors.DefaultSelector()
        assert proc.stdout is not None
        self.sel.register(proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                raise TimeoutError("QEMU did not answer on QMP in time")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError("QEMU exited")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        msg = {"execute": name, **({"arguments": args} if args else {})}
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            reply = self._line()
            if "return" in reply or "error" in reply:
                return reply


def qemu_argv(args: list[str]) -> list[str]:
    """The command line migrate_refusal() starts (without the chroot prefix)."""
    argv = ["qemu-system-x86_64", "-nodefaults", "-display", "none", "-S", "-m", "128"]
    if "-accel" not in args:  # several -accel options are a fallback list: the first wins
        argv += ["-accel", accel()]
    return [*argv, "-qmp", "stdio", *args]


def cpu_property(
    args: list[str], prop: str, *, chroot: Path | None = None, timeout: float = 60.0
) -> Any:
    """``qom-get`` of the first vCPU's ``prop`` in a QEMU started with ``args``."""
    proc = subprocess.Popen(
        ["chroot", str(chroot), *qemu_argv(args)] if chroot is not None else qemu_argv(args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        qmp = _Qmp(proc, timeout)
        qmp._line()
        qmp.cmd("qmp_capabilities")
        path = qmp.cmd("query-cpus-fast")["return"][0]["qom-path"]
        return qmp.cmd("qom-get", path=path, property=prop)["return"]
    finally:
        proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                f.close()


def migrate_refusal(
    args: list[str], *, chroot: Path | None = None, timeout: float = 60.0
) -> tuple[bool, str]:
    """Start QEMU (7.2 on the host, or the chroot's) with ``args`` and migrate it out.

    Returns (refused, text): refused is True when ``migrate`` was rejected or the migration
    failed, with QEMU's error text; (False, "completed") when it went through. Raises
    RuntimeError with QEMU's stderr when QEMU does not start.
    """
    argv = qemu_argv(args)
    if chroot is not None:
        argv = ["chroot", str(chroot), *argv]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        qmp = _Qmp(proc, timeout)
        try:
            qmp._line()  # greeting
            qmp.cmd("qmp_capabilities")
        except (EOFError, TimeoutError) as e:
            proc.kill()
            err = proc.communicate()[1].decode(errors="replace")
            raise RuntimeError(f"QEMU did not start ({e}): {err.strip()}") from None
        reply = qmp.cmd("migrate", uri="exec:cat >/dev/null")
        if "error" in reply:
            return True, reply["error"].get("desc", "")
        while True:
            status = qmp.cmd("query-migrate")["return"]
            if status.get("status") == "completed":
                return False, "completed"
            if status.get("status") == "failed":
                return True, status.get("error-desc", "failed")
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                f.close()
