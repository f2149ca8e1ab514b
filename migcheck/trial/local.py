"""One real migration between two local QEMU builds, judged stage by stage.

A build is a command prefix (``["qemu-system-x86_64"]``, or
``["chroot", ROOT, "qemu-system-x86_64"]`` for a second release's QEMU) plus the directory
its paths are relative to. Sockets live in one run directory inside the chroot tree when a
build is chrooted, so both QEMUs reach them (each under its own path).

Stages, each with a deadline, stopping at the first failure:
``source-start`` -> ``destination-start`` (``-incoming defer`` + ``migrate-incoming``) ->
``migrate`` (``query-migrate`` completed on both sides) -> ``abi`` (source stopped,
destination loaded and not yet continued) -> ``cont`` (the destination runs, and still runs
0.3 s later). The result is ``safe`` only when every stage passed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migcheck.trial.abi import AbiError, Difference, compare, snapshot
from migcheck.trial.qmp import QmpClient, QmpError

STAGES = ("source-start", "destination-start", "migrate", "abi", "cont")


@dataclass(frozen=True)
class Build:
    """A QEMU binary to run: ``prefix`` + QEMU arguments, paths seen under ``root``."""

    name: str
    prefix: tuple[str, ...]
    root: Path = Path("/")

    def path(self, host_path: Path) -> str:
        """``host_path`` as this build sees it."""
        if self.root == Path("/"):
            return str(host_path)
        return "/" + str(host_path.relative_to(self.root))


@dataclass
class Stage:
    name: str
    ok: bool | None  # None: not judged (QEMU died under a query): unknown
    detail: str = ""


@dataclass
class TrialResult:
    stages: list[Stage] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        """``safe`` only when every stage passed; a stage QEMU could not answer is unknown."""
        for stage in self.stages:
            if stage.ok is False:
                return "unsafe"
            if stage.ok is None:
                return "unknown"
        return "safe" if len(self.stages) == len(STAGES) else "unknown"

    @property
    def failed(self) -> Stage | None:
        return next((s for s in self.stages if s.ok is not True), None)

    def summary(self) -> str:
        stage = self.failed
        if stage is None:
            return "safe"
        return f"{self.outcome} at {stage.name}: {stage.detail}"


class _Qemu:
    """One QEMU process with its QMP socket and stderr file."""

    def __init__(self, build: Build, run_dir: Path, role: str, args: Sequence[str]) -> None:
        self.role = role
        self.sock = run_dir / f"{role}.qmp"
        self.log = run_dir / f"{role}.err"
        argv = [
            *build.prefix,
            *args,
            "-qmp",
            f"unix:{build.path(self.sock)},server=on,wait=off",
        ]
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
        self.qmp: QmpClient | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self, limit: int = 600) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        lines = [
            line
            for line in text.strip().splitlines()
            if "warning: host doesn't support requested feature" not in line
        ]
        return "\n".join(lines)[-limit:]

    def why(self, fallback: str) -> str:
        """QEMU's own words when it has exited, else ``fallback``."""
        if not self.alive():
            time.sleep(0.05)
            tail = self.stderr_tail()
            code = self.proc.returncode
            return f"{self.role} QEMU exited ({code}): {tail or fallback}"
        return fallback

    def stop(self) -> None:
        if self.qmp is not None:
            self.qmp.close()
        if self.proc.poll() is None:
            self.proc.kill()
        # A process in D state: leave it, never hang.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def _wait_migration(qemu: _Qemu, deadline: float) -> tuple[bool, str]:
    """Poll ``query-migrate`` until completed/failed, QEMU exits or the deadline."""
    assert qemu.qmp is not None
    status = "none"
    while time.monotonic() < deadline:
        try:
            info = qemu.qmp.execute("query-migrate", timeout=max(0.5, deadline - time.monotonic()))
        except QmpError as err:
            return False, qemu.why(str(err))
        status = str((info or {}).get("status", "none"))
        if status == "completed":
            return True, status
        if status in ("failed", "cancelled"):
            return False, qemu.why(str(info.get("error-desc") or status))
        time.sleep(0.05)
    return False, qemu.why(f"migration not finished in time (status {status})")


def migrate(
    src_build: Build,
    dst_build: Build,
    args: Sequence[str],
    *,
    step_timeout: float = 20.0,
    run_parent: Path | None = None,
    dst_args: Sequence[str] | None = None,
) -> TrialResult:
    """Migrate a guest started with QEMU ``args`` from ``src_build`` to ``dst_build``.

    ``dst_args`` starts the destination with other arguments (a rewritten command line, as
    ``portable`` writes); by default the destination gets ``args`` too. Every process is
    killed and the run directory removed however this returns."""
    started = time.monotonic()
    result = TrialResult()
    if run_parent is None:
        # Inside the chroot tree when either build is chrooted: both must reach the sockets.
        chrooted = [b.root for b in (src_build, dst_build) if b.root != Path("/")]
        run_parent = (chrooted[0] / "tmp") if chrooted else Path(tempfile.gettempdir())
    for build in (src_build, dst_build):
        if build.root != Path("/") and not Path(run_parent).resolve().is_relative_to(build.root):
            raise ValueError(
                f"run directory {run_parent} is outside {build.name}'s root {build.root}"
            )
    run_dir = Path(tempfile.mkdtemp(prefix="gt-", dir=run_parent))
    os.chmod(run_dir, 0o700)
    procs: list[_Qemu] = []
    try:
        dst = list(args if dst_args is None else dst_args)
        _run(src_build, dst_build, list(args), dst, run_dir, procs, result, step_timeout)
    finally:
        for proc in procs:
            proc.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        result.seconds = time.monotonic() - started
    return result


def _start(
    build: Build, run_dir: Path, role: str, args: list[str], procs: list[_Qemu], timeout: float
) -> tuple[_Qemu, str | None]:
    qemu = _Qemu(build, run_dir, role, args)
    procs.append(qemu)
    try:
        qemu.qmp = QmpClient.connect(str(qemu.sock), timeout=timeout, alive=qemu.alive)
    except QmpError as err:
        return qemu, qemu.why(str(err))
    return qemu, None


def _run(
    src_build: Build,
    dst_build: Build,
    args: list[str],
    dst_args: list[str],
    run_dir: Path,
    procs: list[_Qemu],
    result: TrialResult,
    timeout: float,
) -> None:
    stages = result.stages
    src, error = _start(src_build, run_dir, "source", args, procs, timeout)
    stages.append(Stage("source-start", error is None, error or src_build.name))
    if error:
        return
    # -S: the destination stays paused after loading, so its ABI is read at the same guest
    # instant as the stopped source's (vl.c: autostart is off with -S).
    dst, error = _start(
        dst_build, run_dir, "destination", [*dst_args, "-S", "-incoming", "defer"], procs, timeout
    )
    if error is None:
        assert dst.qmp is not None
        mig_sock = run_dir / "migration.sock"
        try:
            dst.qmp.execute(
                "migrate-incoming", {"uri": f"unix:{dst_build.path(mig_sock)}"}, timeout=timeout
            )
        except QmpError as err:
            error = dst.why(str(err))
    stages.append(Stage("destination-start", error is None, error or dst_build.name))
    if error:
        return
    assert src.qmp is not None and dst.qmp is not None
    deadline = time.monotonic() + timeout
    try:
        # 7.2's default max-bandwidth is 32 MiB/s (migration/options.c): lift it, the
        # socket is local.
        src.qmp.execute("migrate-set-parameters", {"max-bandwidth": 1 << 34}, timeout=timeout)
        src.qmp.execute("migrate", {"uri": f"unix:{src_build.path(mig_sock)}"}, timeout=timeout)
    except QmpError as err:
        stages.append(Stage("migrate", False, src.why(str(err))))
        return
    ok, why = _wait_migration(src, deadline)
    if ok:
        ok, why = _wait_migration(dst, deadline)
        if not ok:
            why = dst.why(f"destination: {why}")
    elif dst.alive() is False or dst.stderr_tail():
        # The source reports a broken pipe; the destination says why it refused.
        why = f"{why}; destination: {dst.why(dst.stderr_tail() or 'no message')}"
    stages.append(Stage("migrate", ok, why))
    if not ok:
        return
    try:
        before = snapshot(src.qmp, timeout=timeout)
        after = snapshot(dst.qmp, timeout=timeout)
    except AbiError as err:
        died = [q.role for q in (src, dst) if not q.alive()]
        note = f" ({', '.join(died)} QEMU died under the query)" if died else ""
        stages.append(Stage("abi", None, f"cannot compare: {err}{note}"))
        return
    result.differences = compare(before, after)
    if result.differences:
        shown = "; ".join(str(d) for d in result.differences[:4])
        more = len(result.differences) - 4
        stages.append(Stage("abi", False, shown + (f"; and {more} more" if more > 0 else "")))
    else:
        stages.append(Stage("abi", True, "equal"))
    # cont is tried even when the ABI differs: the stage list then says both.
    try:
        dst.qmp.execute("cont", timeout=timeout)
        time.sleep(0.3)
        status: Any = dst.qmp.execute("query-status", timeout=timeout)
        running = (status or {}).get("status")
        ok = running == "running"
        why = "running" if ok else f"status {running} after cont"
    except QmpError as err:
        ok, why = False, dst.why(str(err))
    stages.append(Stage("cont", ok, why))
