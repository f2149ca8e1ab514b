"""A trial between two hosts over SSH: skeletons on both, the stream relayed by migcheck.

Per host one SSH connection (paramiko transport) carries a ``control`` channel (the agent
in ``agent.py``, which starts QEMU and answers QMP) and, during the transfer, one stream
channel. The source QEMU migrates into a unix socket the source's ``stream-out`` agent
holds; migcheck copies those bytes into the destination's ``stream-in`` agent, which writes
them into the destination QEMU's ``-incoming`` socket. The hosts need no network path to
each other, and nothing listens on a network port.

Stages (``local.STAGES``) each have a deadline; every process and file is gone however
this returns: closing a connection closes the agents' stdin, and they clean up; an agent
that is killed takes QEMU with it (``PR_SET_PDEATHSIG``); an agent whose migcheck hangs
gives up at its lifetime.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migcheck.errors import HostError
from migcheck.hosts import HostRef
from migcheck.transport._paramiko import paramiko
from migcheck.transport.ssh import Endpoint, SshSession
from migcheck.trial.abi import AbiError, compare, snapshot
from migcheck.trial.local import Stage, TrialResult
from migcheck.trial.qmp import QmpError
from migcheck.trial.skeleton import Skeleton

AGENT = (Path(__file__).with_name("agent.py")).read_text(encoding="utf-8")
OVERHEAD = 384 << 20  # a skeleton QEMU's own memory, measured (RSS ~250 MiB with TCG)
PAGE_TABLES_PER_GIB = 2 << 20  # migration maps every page (the zero page): ISSUE-NOTES


class AgentError(Exception):
    """The agent did not answer (connection dropped, deadline passed)."""


@dataclass
class TrialOptions:
    step_timeout: float = 30.0
    transfer_timeout: float = 600.0
    max_memory: int = 64 << 30
    lifetime: float = 1800.0  # agents give up on their own after this


@dataclass
class RemoteTrial:
    result: TrialResult = field(default_factory=TrialResult)
    refused: list[str] = field(default_factory=list)  # why the trial could not run
    bytes_streamed: int = 0
    peak_rss: dict[str, int] = field(default_factory=dict)  # role -> QEMU's VmHWM
    transfer_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class Agent:
    """One agent channel: JSON lines out, JSON lines back, each answer under a deadline."""

    def __init__(self, session: SshSession, transport: paramiko.Transport, ep: Endpoint):
        self.ep = ep
        self.chan = session.start_agent(transport, ep, AGENT, timeout=30.0)
        self.buf = b""

    def send(self, obj: dict[str, Any]) -> None:
        try:
            self.chan.sendall(json.dumps(obj).encode() + b"\n")
        except (OSError, paramiko.SSHException) as err:
            raise AgentError(f"{self.ep.alias}: the connection dropped ({err})") from None

    def line(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgentError(f"{self.ep.alias}: no answer within {timeout:g} s")
            select.select([self.chan], [], [], min(left, 0.5))
            if self.chan.recv_ready():
                self.buf += self.chan.recv(1 << 16)
            elif self.chan.closed or self.chan.eof_received:
                err = b""
                while self.chan.recv_stderr_ready():
                    err += self.chan.recv_stderr(65536)
                text = err.decode("utf-8", "replace").strip()[-400:]
                raise AgentError(
                    f"{self.ep.alias}: the trial agent exited" + (f": {text}" if text else "")
                )
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, obj: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.send(obj)
        return self.line(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.chan.close()


class RemoteQmp:
    """``QmpClient.execute`` over an agent, for :func:`migcheck.trial.abi.snapshot`."""

    def __init__(self, agent: Agent, role: str) -> None:
        self.agent, self.role = agent, role

    def execute(self, command: str, args: dict[str, Any] | None = None, timeout: float = 10.0):
        try:
            answer = self.agent.call(
                {"op": "qmp", "execute": command, "arguments": args, "timeout": timeout},
                timeout + 5,
            )
        except AgentError as err:
            raise QmpError(str(err)) from None
        if answer.get("ok"):
            return answer.get("return")
        raise QmpError(why(self.role, answer, command), answer.get("class"))


def why(role: str, answer: dict[str, Any], what: str = "") -> str:
    """QEMU's own words: its stderr when it exited, else the QMP error text."""
    text = str(answer.get("error") or what)
    if answer.get("exited"):
        tail = str(answer.get("stderr") or "").strip()
        return f"{role} QEMU exited ({answer.get('code')}): {tail or text}"
    return text


def headroom(info: dict[str, Any], guest: int) -> tuple[bool, str]:
    """Can this host hold the skeleton? ISSUE-NOTES, issue 23 "Memory headroom"."""
    if info.get("overcommit_memory") == 2:
        limit, used = info.get("CommitLimit"), info.get("Committed_AS")
        if limit is None or used is None:
            return False, "CommitLimit/Committed_AS unreadable under vm.overcommit_memory=2"
        free = limit - used
        ok = free >= guest + OVERHEAD
        return ok, (
            f"vm.overcommit_memory=2: commit headroom {free >> 20} MiB, the skeleton "
            f"needs {(guest + OVERHEAD) >> 20} MiB (reserve=off is refused in this mode)"
        )
    available = info.get("MemAvailable")
    need = OVERHEAD + PAGE_TABLES_PER_GIB * max(1, guest >> 30)
    if available is None:
        return False, "MemAvailable unreadable"
    return available >= need, (
        f"MemAvailable {available >> 20} MiB, the skeleton needs about {need >> 20} MiB "
        "(QEMU itself plus page tables; its RAM is never touched)"
    )


class _Relay(threading.Thread):
    """Copies the source's stream channel into the destination's."""

    def __init__(self, src: paramiko.Channel, dst: paramiko.Channel) -> None:
        super().__init__(daemon=True)
        self.src, self.dst = src, dst
        self.bytes = 0
        self.error: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self.src.settimeout(0.5)
            while not self.stop.is_set():
                try:
                    data = self.src.recv(1 << 20)
                except TimeoutError:
                    continue
                if not data:
                    break
                self.bytes += len(data)
                self.dst.sendall(data)
            self.dst.shutdown_write()
        except Exception as err:  # a dropped connection ends the copy; the stage says why
            self.error = f"stream relay: {err}"


class Side:
    """One host: its connection, control agent and (during the transfer) stream agent."""

    def __init__(
        self,
        session: SshSession,
        ref: HostRef | None,
        role: str,
        lifetime: float,
        on: Side | None = None,
    ) -> None:
        self.role = role
        self.session = session
        if on is not None:  # another agent on an existing connection: no new login
            self.transport, self.ep, self.owns = on.transport, on.ep, False
        else:
            assert ref is not None
            self.transport, self.ep = session.connect(ref)
            self.owns = not session.owns(self.transport)
        self.control = Agent(session, self.transport, self.ep)
        self.control.send({"role": "control", "lifetime": int(lifetime)})
        self.streams: list[Agent] = []
        self.dir: str | None = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.control.call({"op": "quit"}, 10.0)
        for agent in [*self.streams, self.control]:
            agent.close()
        if self.owns:
            self.transport.close()

    def stream(self, first: dict[str, Any]) -> Agent:
        agent = Agent(self.session, self.transport, self.ep)
        self.streams.append(agent)
        agent.send(first)
        return agent


def run(
    session: SshSession,
    src_ref: HostRef,
    dst_ref: HostRef,
    skeleton_for: Any,
    options: TrialOptions,
    paths: list[str],
) -> tuple[RemoteTrial, Skeleton | None]:
    """Run one trial. ``skeleton_for(sizes, reserve_off)`` builds the skeleton once the
    source has said how big its disks are."""
    started = time.monotonic()
    trial = RemoteTrial()
    sides: list[Side] = []
    skeleton: Skeleton | None = None
    try:
        try:
            sides.append(Side(session, src_ref, "source", options.lifetime))
            sides.append(Side(session, dst_ref, "destination", options.lifetime))
            hello = [s.control.line(options.step_timeout) for s in sides]
            infos = [s.control.call({"op": "hello"}, options.step_timeout) for s in sides]
            sizes = sides[0].control.call({"op": "sizes", "paths": paths}, options.step_timeout)
        except (HostError, AgentError) as err:
            trial.refused.append(f"cannot start the trial agent: {err}")
            return trial, None
        del hello
        strict = any(i["meminfo"].get("overcommit_memory") == 2 for i in infos)
        known = {k: v for k, v in (sizes.get("sizes") or {}).items() if v is not None}
        skeleton = skeleton_for(known, not strict)
        if skeleton.refused:
            trial.refused += skeleton.refused
            return trial, skeleton
        if skeleton.memory_bytes > options.max_memory:
            trial.refused.append(
                f"the guest has {skeleton.memory_bytes >> 20} MiB of memory, over --max-memory "
                f"{options.max_memory >> 20} MiB; raise --max-memory to accept"
            )
            return trial, skeleton
        for side, info in zip(sides, infos, strict=True):
            if info.get("qemu") is None:
                trial.refused.append(f"{side.role} {side.ep.alias}: no QEMU found")
            ok, text = headroom(info["meminfo"], skeleton.memory_bytes)
            if not ok:
                trial.refused.append(f"{side.role} {side.ep.alias}: not enough memory: {text}")
            else:
                trial.notes.append(f"{side.role}: {text}")
        if trial.refused:
            return trial, skeleton
        _stages(sides, skeleton, options, trial)
        abi = next((st for st in trial.result.stages if st.name == "abi"), None)
        if abi is not None and abi.ok is False:
            _same_build(session, sides, skeleton, options, trial, abi)
        return trial, skeleton
    finally:
        for side in sides:
            side.close()
        trial.result.seconds = time.monotonic() - started


# A skeleton that could not start for want of a host resource or permission says nothing
# about the migration: unknown, not unsafe (issue 23, section 3).
_ENVIRONMENT = re.compile(
    r"cannot create a private network namespace|/dev/net/tun|/dev/kvm|Permission denied|"
    r"Operation not permitted|Cannot allocate memory|cannot set up guest memory|"
    r"no QEMU found|the connection to .* dropped|no answer within"
)


def started(error: str | None) -> bool | None:
    """Stage verdict for a QEMU start: True, False (QEMU refused the guest) or None (the
    host could not give the skeleton what it needs: the trial did not really run)."""
    if error is None:
        return True
    return None if _ENVIRONMENT.search(error) else False


def _same_build(
    session: SshSession,
    sides: list[Side],
    skeleton: Skeleton,
    options: TrialOptions,
    trial: RemoteTrial,
    abi: Stage,
) -> None:
    """ISSUE-NOTES, issue 23: when the ABI differs, migrate once more from the source's
    build into the same build. A difference there too is QEMU losing state within one
    build (a QEMU bug), not an incompatibility between the two."""
    src = sides[0]
    with contextlib.suppress(AgentError):
        src.control.call({"op": "quit"}, 10.0)  # the first source's QEMU and directory go
    again = RemoteTrial()
    pair: list[Side] = []
    try:
        pair = [
            Side(session, None, "source", options.lifetime, on=src),
            Side(session, None, "destination", options.lifetime, on=src),
        ]
        for side in pair:
            side.control.line(options.step_timeout)
        _stages(pair, skeleton, options, again)
    except (HostError, AgentError) as err:
        trial.notes.append(f"same-build check not run: {err}")
        return
    finally:
        for side in pair:
            side.close()
    same = {str(d) for d in again.result.differences}
    repeated = [d for d in trial.result.differences if str(d) in same]
    if repeated:
        abi.detail += (
            f" [{len(repeated)} of these differ also from {src.ep.alias} to itself: QEMU "
            "loses that state within one build (a QEMU bug, not an incompatibility)]"
        )
    elif again.result.outcome == "safe":
        abi.detail += f" [none of them from {src.ep.alias} to itself: an incompatibility]"


def _start(side: Side, argv: list[str], netns: bool, timeout: float) -> str | None:
    try:
        answer = side.control.call(
            {"op": "start", "argv": argv, "netns": netns, "timeout": timeout}, timeout + 5
        )
    except AgentError as err:
        return str(err)
    if not answer.get("ok"):
        return why(side.role, answer, "QEMU did not start")
    side.dir = answer["dir"]
    return None


def _qmp(side: Side, command: str, args: dict[str, Any] | None, timeout: float) -> Any:
    return RemoteQmp(side.control, side.role).execute(command, args, timeout)


def _wait(side: Side, deadline: float, broken: Any = None) -> tuple[bool, str]:
    """Poll ``query-migrate`` until completed/failed, the deadline, or ``broken()`` names a
    dropped connection (the source would otherwise wait for a reader that is gone)."""
    status = "none"
    while time.monotonic() < deadline:
        problem = broken() if broken is not None else None
        if problem:
            return False, problem
        try:
            left = max(1.0, min(10.0, deadline - time.monotonic()))
            info = _qmp(side, "query-migrate", None, left)
        except QmpError as err:
            return False, str(err)
        status = str((info or {}).get("status", "none"))
        if status == "completed":
            return True, status
        if status in ("failed", "cancelled"):
            return False, str(info.get("error-desc") or status)
        time.sleep(0.1)
    return False, f"{side.role}: migration not finished in time (status {status})"


def _stderr(side: Side) -> str:
    with contextlib.suppress(AgentError):
        answer = side.control.call({"op": "status"}, 10.0)
        text = str(answer.get("stderr") or "").strip()
        if not answer.get("alive"):
            return f"{side.role} QEMU exited: {text or 'no message'}"
        return text
    return ""


def _stages(
    sides: list[Side], skeleton: Skeleton, options: TrialOptions, trial: RemoteTrial
) -> None:
    src, dst = sides
    stages = trial.result.stages
    timeout = options.step_timeout
    error = _start(src, skeleton.argv, skeleton.uses_tap, timeout)
    stages.append(Stage("source-start", started(error), error or src.ep.alias))
    if error:
        return
    # -S: the destination stays paused after loading, so its ABI is read at the guest
    # instant of the stopped source (vl.c: autostart is off with -S).
    error = _start(dst, [*skeleton.argv, "-S", "-incoming", "defer"], skeleton.uses_tap, timeout)
    if error is None:
        try:
            _qmp(dst, "migrate-incoming", {"uri": f"unix:{dst.dir}/in.sock"}, timeout)
        except QmpError as err:
            error = str(err)
    stages.append(Stage("destination-start", started(error), error or dst.ep.alias))
    if error:
        return
    assert src.dir is not None and dst.dir is not None
    life = int(options.transfer_timeout + timeout)
    out = src.stream({"role": "stream-out", "path": f"{src.dir}/out.sock", "timeout": life})
    into = dst.stream({"role": "stream-in", "path": f"{dst.dir}/in.sock", "timeout": timeout})
    relay: _Relay | None = None
    t0 = time.monotonic()
    try:
        for agent in (out, into):
            ready = agent.chan.recv(1) if _readable(agent.chan, timeout) else b""
            if ready != b"R":
                raise AgentError(f"{agent.ep.alias}: the stream agent did not start")
        relay = _Relay(out.chan, into.chan)
        relay.start()
        # 7.2's default max-bandwidth is 32 MiB/s (migration/options.c); the zero pages
        # of an untouched skeleton are ~9 bytes each on the wire: lift the cap.
        _qmp(src, "migrate-set-parameters", {"max-bandwidth": 1 << 34}, timeout)
        _qmp(src, "migrate", {"uri": f"unix:{src.dir}/out.sock"}, timeout)
    except (QmpError, AgentError) as err:
        stages.append(Stage("migrate", False, str(err)))
        return
    deadline = time.monotonic() + options.transfer_timeout

    def broken() -> str | None:
        for side in sides:
            if not side.transport.is_active():
                return f"the connection to the {side.role} {side.ep.alias} dropped"
        if relay is not None and relay.error:
            return relay.error
        return None

    ok, text = _wait(src, deadline, broken)
    if ok:
        ok, text = _wait(dst, deadline)
        if not ok:
            text = f"destination: {text}; {_stderr(dst)}".strip("; ")
    else:
        detail = _stderr(dst)
        if detail:
            text = f"{text}; destination: {detail}"
    if relay is not None:
        relay.join(timeout=5)
        trial.bytes_streamed = relay.bytes
        if relay.error and not ok:
            text = f"{text}; {relay.error}"
    trial.transfer_seconds = time.monotonic() - t0
    stages.append(Stage("migrate", ok, text))
    if not ok:
        return
    try:
        before = snapshot(RemoteQmp(src.control, "source"), timeout=timeout)  # type: ignore[arg-type]
        after = snapshot(RemoteQmp(dst.control, "destination"), timeout=timeout)  # type: ignore[arg-type]
    except AbiError as err:
        stages.append(Stage("abi", None, f"cannot compare: {err}"))
        return
    trial.result.differences = compare(before, after)
    if trial.result.differences:
        shown = "; ".join(str(d) for d in trial.result.differences[:4])
        more = len(trial.result.differences) - 4
        stages.append(Stage("abi", False, shown + (f"; and {more} more" if more > 0 else "")))
    else:
        stages.append(Stage("abi", True, "equal"))
    try:
        _qmp(dst, "cont", None, timeout)
        time.sleep(0.3)
        status = _qmp(dst, "query-status", None, timeout)
        running = (status or {}).get("status")
        ok = running == "running"
        text = "running" if ok else f"status {running} after cont"
    except QmpError as err:
        ok, text = False, str(err)
    stages.append(Stage("cont", ok, text))
    for side in sides:
        with contextlib.suppress(AgentError):
            hwm = side.control.call({"op": "status"}, timeout).get("hwm")
            if isinstance(hwm, int):
                trial.peak_rss[side.role] = hwm


def _readable(chan: paramiko.Channel, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if chan.recv_ready():
            return True
        if chan.closed or chan.eof_received:
            return False
        select.select([chan], [], [], 0.2)
    return False
