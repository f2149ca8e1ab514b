"""Fault injection over real SSH: each fault costs only its own host, within its deadline.

Every case gathers the faulty host together with a healthy lab host in one call and checks
four things: the run ends within the deadline (wall time, plus a small margin), the faulty
host gets exit 3 and a one-line message saying what went wrong, the healthy host's facts are
exactly what it reports when gathered alone, and nothing prints a traceback.

Lab host names here start with ``f-`` (host names are shared by the whole pytest session).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest
from lab import FIXTURE_FACTS
from lab.core import LOOPBACK, free_port

from migcheck.errors import HostError
from migcheck.gather import Gatherer, GatherOptions
from migcheck.transport.ssh import SshSettings

# The CLI runs as the operator runs it: the real entry point in its own process, so what
# reaches stderr is what they would see (in-process, pytest's log capture would swallow
# e.g. records that paramiko's threads log with tracebacks).
CLI = [sys.executable, "-c", "from migcheck.cli import main; main()"]
# Seconds allowed past a deadline. HOST_MARGIN: a host's own time inside the process (the
# summary's "seconds"; the reader polls every 0.5 s). MARGIN: the whole command, including
# the interpreter starting and the summary, on a test machine that may be busy.
HOST_MARGIN = 1.0
MARGIN = 5.0
HEALTHY = "f-ok"
# Sections that legitimately differ between two runs on one host (timestamps, durations).
VOLATILE = ("host", "probe")


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keys come from the lab's config only; an operator's agent must not make tests pass.
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def flab(lab):
    """The lab with the healthy host every case gathers alongside its faulty one."""
    if HEALTHY not in lab.hosts:
        lab.add_host(HEALTHY, qemu="8.2.0", kernel="6.1.0-18-amd64")
    return lab


def _stable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in VOLATILE}


@pytest.fixture(scope="module")
def baseline(flab) -> dict[str, Any]:
    """The healthy host's facts gathered alone: what it must still report next to a fault."""
    settings = SshSettings(config_file=flab.ssh_config, timeout=30)
    with Gatherer(GatherOptions(timeout=30, ssh=settings)) as g:
        facts = g.gather(HEALTHY)
    doc = dict(facts.doc)
    assert doc["kernel"]["release"] == "6.1.0-18-amd64"
    assert doc["qemu"]["version"] == "8.2.0"
    return _stable(doc)


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float


def run_cli(*args: str, wrapper: list[str] | None = None, timeout: float = 300) -> Run:
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "MIGCHECK_DEBUG")}
    env.update(COLUMNS="200", NO_COLOR="1")
    started = time.monotonic()
    proc = subprocess.run(
        [*(wrapper or CLI), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def gather_cli(lab, *hosts: str, out: Path, timeout: float, extra: tuple[str, ...] = ()):
    """``migcheck gather HOSTS -F <lab config> -o OUT --timeout T``; (result, wall seconds)."""
    args = ["gather", *hosts, "-F", str(lab.ssh_config), "--out-dir", str(out)]
    result = run_cli(*args, "--timeout", f"{timeout:g}", *extra)
    return result, result.seconds


# A reason that is only an exception's class and text: gather_many's catch-all for bugs.
_RAW_EXCEPTION = re.compile(r"^migcheck: [^:]+: [A-Za-z_.]*(Error|Exception|Exit): ", re.M)


def host_seconds(result: Run, target: str) -> float:
    """A host's gather time from the summary table (its row: HOST ... status seconds)."""
    for line in result.stderr.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0] == target:
            return float(cells[-1])
    raise AssertionError(f"no summary row for {target}:\n{result.stderr}")


def no_traceback(result: Run) -> None:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text[-3000:]
    assert "internal error" not in text and "This is a bug" not in text, text[-3000:]
    assert not _RAW_EXCEPTION.search(result.stderr), result.stderr[-3000:]
    assert result.exit_code in (0, 1, 2, 3), (result.exit_code, text[-3000:])


def assert_isolated_failure(
    result,
    elapsed: float,
    deadline: float,
    out: Path,
    baseline: dict[str, Any],
    *,
    target: str,
    message: str,
    host: str | None = None,
) -> tuple[str, float]:
    """The shared contract of every fault case: ``target`` (the HOST given; messages name
    it ``host``) fails with ``message``, in time, alone. Returns its line and seconds."""
    host = host or target
    no_traceback(result)
    seconds = host_seconds(result, target)
    assert seconds < deadline + HOST_MARGIN, f"deadline {deadline} s not kept: {seconds} s"
    assert elapsed < deadline + MARGIN, f"deadline {deadline} s not kept: {elapsed:.1f} s"
    assert result.exit_code == 3, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith(f"migcheck: {host}: ")]
    assert len(lines) == 1, result.stderr
    assert message in lines[0], lines[0]
    assert "1 of 2 hosts gathered" in result.stderr
    assert any(target in ln and "failed" in ln for ln in result.stderr.splitlines())
    saved = sorted(p.name for p in out.glob("*.json"))
    assert saved == [f"{HEALTHY}.json"], saved
    doc = json.loads((out / f"{HEALTHY}.json").read_text())
    assert _stable(doc) == baseline
    assert doc["host"]["target"] == HEALTHY
    print(f"{target}: {seconds:.2f} s ({elapsed:.2f} s wall) of {deadline:g} s: {lines[0]}")
    return lines[0], seconds


# --- the network refuses or never answers -----------------------------------------------


def test_connection_refused(flab, baseline, tmp_path: Path):
    port = free_port()  # just handed out by the kernel and closed again: nobody listens
    target = f"root@{LOOPBACK}:{port}"
    result, elapsed = gather_cli(flab, HEALTHY, target, out=tmp_path, timeout=10)
    line, seconds = assert_isolated_failure(
        result, elapsed, 10, tmp_path, baseline,
        target=target, host=LOOPBACK, message=f"cannot connect to {target}: Connection refused",
    )  # fmt: skip
    assert seconds < 2, line  # refused is immediate: no retry, no waiting for the deadline


def test_unresolvable_name(flab, baseline, tmp_path: Path):
    result, elapsed = gather_cli(flab, HEALTHY, "f-nowhere.invalid", out=tmp_path, timeout=10)
    assert_isolated_failure(
        result, elapsed, 10, tmp_path, baseline,
        target="f-nowhere.invalid", message="cannot resolve host name 'f-nowhere.invalid'",
    )  # fmt: skip


@contextlib.contextmanager
def tcp_server(behaviour: str) -> Iterator[tuple[int, list[float]]]:
    """A TCP port on 127.0.0.1 that is not an SSH server. ``silent``: connections are
    accepted by the kernel and never answered (no banner, ever); ``drop``: every connection
    is accepted and closed at once, like an sshd over MaxStartups. Yields (port, the time of
    each accept)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((LOOPBACK, 0))
    srv.listen(64)
    srv.settimeout(0.1)
    accepts: list[float] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            accepts.append(time.monotonic())
            if behaviour == "drop":
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1], accepts
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        srv.close()


def test_port_that_never_sends_a_banner(flab, baseline, tmp_path: Path):
    with tcp_server("silent") as (port, _accepts):
        target = f"root@{LOOPBACK}:{port}"
        result, elapsed = gather_cli(flab, HEALTHY, target, out=tmp_path, timeout=3)
    assert_isolated_failure(
        result, elapsed, 3, tmp_path, baseline,
        target=target, host=LOOPBACK, message=f"SSH handshake with {target} failed",
    )  # fmt: skip


def test_server_that_drops_every_connection_before_the_banner(flab, baseline, tmp_path: Path):
    with tcp_server("drop") as (port, accepts):
        target = f"root@{LOOPBACK}:{port}"
        result, elapsed = gather_cli(flab, HEALTHY, target, out=tmp_path, timeout=10)
    assert_isolated_failure(
        result, elapsed, 10, tmp_path, baseline,
        target=target, host=LOOPBACK, message=f"SSH handshake with {target} failed",
    )  # fmt: skip
    # What a MaxStartups drop looks like: retried (connect_attempts), then given up.
    assert len(accepts) == SshSettings().connect_attempts


# --- the session dies, stalls or floods mid-output ----------------------------------------


FACTS = shlex.quote(str(FIXTURE_FACTS))


def test_connection_reset_mid_output(flab, baseline, tmp_path: Path):
    # The remote prints part of a facts document, then kills its own sshd session process:
    # the SSH connection drops without an exit status.
    if "f-reset" not in flab.hosts:
        flab.add_host(
            "f-reset",
            qemu=None,
            force_command=f"cat >/dev/null; head -c 2000 {FACTS}; kill -9 $PPID",
        )
    result, elapsed = gather_cli(flab, HEALTHY, "f-reset", out=tmp_path, timeout=10)
    assert_isolated_failure(
        result, elapsed, 10, tmp_path, baseline,
        target="f-reset", message="the connection closed before the probe reported an exit status",
    )  # fmt: skip


def test_stall_mid_output(flab, baseline, tmp_path: Path):
    if "f-stall" not in flab.hosts:
        flab.add_host(
            "f-stall",
            qemu=None,
            force_command=f"cat >/dev/null; head -c 2000 {FACTS}; exec sleep 600",
        )
    result, elapsed = gather_cli(flab, HEALTHY, "f-stall", out=tmp_path, timeout=3)
    assert_isolated_failure(
        result, elapsed, 3, tmp_path, baseline,
        target="f-stall", message="did not finish within 3 s (2000 bytes received",
    )  # fmt: skip


def test_endless_stderr_flood(flab, baseline, tmp_path: Path):
    # stderr is not capped (only its tail is kept), so only the deadline can end this one.
    if "f-errflood" not in flab.hosts:
        flab.add_host(
            "f-errflood", qemu=None, force_command="cat >/dev/null; exec cat /dev/zero >&2"
        )
    result, elapsed = gather_cli(flab, HEALTHY, "f-errflood", out=tmp_path, timeout=3)
    assert_isolated_failure(
        result, elapsed, 3, tmp_path, baseline,
        target="f-errflood", message="did not finish within 3 s (0 bytes received",
    )  # fmt: skip


def test_probe_killed_mid_probe(flab, baseline, tmp_path: Path):
    # The probe's Python gets SIGKILL while it waits for QEMU (a stand-in that never answers
    # QMP); the remote shell reports the kill as exit 137 (128 + SIGKILL).
    marker = tmp_path / "qemu-started"
    qemu = tmp_path / "qemu-that-hangs"
    qemu.write_text(f"#!/bin/sh\necho started >> {shlex.quote(str(marker))}\nexec sleep 30\n")
    qemu.chmod(0o755)
    # Background jobs of a non-interactive shell read /dev/null unless told otherwise: hand
    # the probe the session's stdin explicitly through fd 3.
    command = "exec 3<&0; python3 - <&3 3<&- & p=$!; sleep 2; kill -9 $p; wait $p"
    name = "f-killed"
    if name in flab.hosts:
        flab.remove_host(name)
    flab.add_host(
        name, qemu=None, force_command=command, extra={"/usr/bin/qemu-system-x86_64": qemu}
    )
    try:
        result, elapsed = gather_cli(flab, HEALTHY, name, out=tmp_path / "o", timeout=10)
        assert_isolated_failure(
            result, elapsed, 10, tmp_path / "o", baseline,
            target=name, message="the probe failed (exit 137)",
        )  # fmt: skip
        assert marker.read_text() == "started\n"  # killed mid-probe, not before it started
    finally:
        flab.remove_host(name)


def test_output_over_the_cap_through_gather_many(flab, baseline):
    if "f-flood" not in flab.hosts:
        flab.add_host(
            "f-flood", qemu=None, force_command="cat >/dev/null; exec head -c 50000000 /dev/zero"
        )
    settings = SshSettings(config_file=flab.ssh_config, max_output=1_000_000, timeout=20)
    started = time.monotonic()
    with Gatherer(GatherOptions(timeout=20, jobs=4, ssh=settings)) as g:
        results = g.gather_many([HEALTHY, "f-flood", HEALTHY + "-again-is-not-a-host"])
    elapsed = time.monotonic() - started
    assert elapsed < 20 + MARGIN
    assert all(r.seconds < 20 + HOST_MARGIN for r in results)
    ok, flood, missing = results
    assert ok.ok and _stable(dict(ok.facts.doc)) == baseline
    assert isinstance(flood.error, HostError)
    assert "printed more than 1000000 bytes; output cut off" in str(flood.error)
    assert isinstance(missing.error, HostError)  # not in the config: unresolvable name


# --- a reader descheduled at the worst moment ---------------------------------------------


def test_output_that_arrives_with_the_close_is_not_lost(
    flab, baseline, monkeypatch: pytest.MonkeyPatch
):
    """The last chunk, EOF, exit status and close can all land between two reads (a busy
    machine, a GIL switch). Forced here: the reader stalls once, right after it drained the
    first chunk; the rest of the document must still be read, not silently cut off."""
    if "f-tail" not in flab.hosts:
        flab.add_host(
            "f-tail",
            qemu=None,
            force_command=f"cat >/dev/null; head -c 1000 {FACTS}; sleep 0.3; tail -c +1001 {FACTS}",
        )
    real = paramiko.Channel.recv_ready
    seen: dict[int, str] = {}

    def recv_ready(chan: paramiko.Channel) -> bool:
        ready = real(chan)
        if ready:
            seen.setdefault(chan.chanid, "data")
        elif seen.get(chan.chanid) == "data" and chan.transport.getpeername()[1] == port:
            seen[chan.chanid] = "stalled"
            time.sleep(1.5)  # the rest, EOF, exit-status and close arrive meanwhile
        return ready

    port = flab.hosts["f-tail"].port
    monkeypatch.setattr(paramiko.Channel, "recv_ready", recv_ready)
    settings = SshSettings(config_file=flab.ssh_config, timeout=15)
    started = time.monotonic()
    with Gatherer(GatherOptions(timeout=15, ssh=settings)) as g:
        ok, tail = g.gather_many([HEALTHY, "f-tail"])
    assert time.monotonic() - started < 15 + MARGIN
    assert "stalled" in seen.values()  # the fault was injected
    assert tail.error is None, str(tail.error)
    assert _stable(dict(tail.facts.doc)) == _stable(json.loads(FIXTURE_FACTS.read_text()))
    assert ok.ok and _stable(dict(ok.facts.doc)) == baseline


# --- a hostile host: valid-looking facts with absurd values -------------------------------


def _nest(depth: int) -> Any:
    leaf: Any = 1
    for _ in range(depth):
        leaf = {"a": [leaf]}
    return leaf


def _hostile(kind: str) -> str:
    """A facts document as the probe would print it, made absurd in one way."""
    doc = json.loads(FIXTURE_FACTS.read_text())
    q = doc["qemu"]
    if kind == "twin":  # the unmodified fixture: proves these hosts can be judged safe
        pass
    elif kind == "machines-1e6":  # a million machine types, none the guest's
        q["machines"] = [{"name": f"pc-q35-{i}.{i}"} for i in range(10**6)]
    elif kind == "default-machines-1e6":  # a million "default" machines, one alias
        q["machines"] = [
            {"name": f"m{i}", "is_default": True, "alias": "q35"} for i in range(10**6)
        ]
    elif kind == "nested-1e5":  # deeper than any JSON parser should follow: written below
        pass
    elif kind == "nested-450":  # deep, but inside what the parser accepts
        doc["devices"]["x"] = _nest(450)
        q["host_cpu"]["props"]["x"] = _nest(400)
    elif kind == "cpu-models-1e6":
        q["cpu_models"] = [{"name": f"c{i}", "unavailable_features": []} for i in range(10**6)]
    elif kind == "machines-1e6-plus-real":  # the real machine types, drowned in junk
        q["machines"] += [{"name": f"x{i}"} for i in range(10**6)]
    elif kind == "version-4000-digits":
        q["version"] = "9" * 4000 + ".0.0"
    elif kind == "kvm-cap-1e4000":
        doc["kvm"]["capabilities"]["KVM_CAP_ABSURD"] = 10**4000
    elif kind == "cpu-flags-1e6":
        doc["cpu"]["flags"] = doc["cpu"]["flags"] + [f"flag{i}" for i in range(10**6)]
    else:
        raise ValueError(kind)
    if kind == "nested-1e5":  # json.dumps itself recurses: write the nesting by hand
        text = json.dumps({**doc, "devices": {}})
        return text.replace(
            '"devices": {}', '"devices": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}"
        )
    return json.dumps(doc)


CMDLINE = "qemu-system-x86_64 -machine pc-q35-7.2 -accel kvm -cpu EPYC-Rome -m 2048\n"


# Built in a child process: a million-entry document peaks at ~0.5 GB while it is made, and
# that should not stay in the test process's footprint for the rest of the session.
_WRITE_HOSTILE = (
    "import sys; sys.path.insert(0, sys.argv[1]); from test_faults import _hostile; "
    "open(sys.argv[3], 'w').write(_hostile(sys.argv[2]))"
)


def _hostile_host(lab, kind: str) -> str:
    """A lab host whose remote command prints the hostile document (after reading the
    probe from stdin, like python3 - would) and exits 0."""
    name = f"f-hostile-{kind}"
    if name not in lab.hosts:
        path = lab.root / "hostile" / f"{kind}.json"
        path.parent.mkdir(exist_ok=True)
        here = str(Path(__file__).resolve().parent)
        argv = [sys.executable, "-c", _WRITE_HOSTILE, here, kind, str(path)]
        subprocess.run(argv, check=True, timeout=300)
        command = f"cat >/dev/null; cat {shlex.quote(str(path))}"
        lab.add_host(name, qemu=None, force_command=command)
    return name


def _pair(lab, src: str, dst: str, tmp_path: Path, timeout: float):
    cmdline = tmp_path / "vm.cmdline"
    cmdline.write_text(CMDLINE)
    args = ["pair", src, dst, "-F", str(lab.ssh_config), "-c", str(cmdline), "-f", "json"]
    result = run_cli(*args, "--timeout", f"{timeout:g}")
    return result, result.seconds


def test_hostile_baseline_twin_is_safe(flab, tmp_path: Path):
    """The fixture served over SSH against itself on disk is safe: the hostile cases below
    are judged by the same machinery, so their 'not safe' means something."""
    name = _hostile_host(flab, "twin")
    result, _ = _pair(flab, str(FIXTURE_FACTS), name, tmp_path, 30)
    no_traceback(result)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["verdict"] == "safe"


@pytest.mark.parametrize(
    ("kind", "verdict"),
    [
        # Refused by the loader (implausible for any real host): exit 3, no verdict at all.
        ("machines-1e6", None),
        ("default-machines-1e6", None),
        ("cpu-models-1e6", None),
        ("nested-1e5", None),
    ],
)
def test_hostile_facts_stay_bounded_and_never_safe(
    flab, baseline, tmp_path: Path, kind: str, verdict: str | None
):
    name = _hostile_host(flab, kind)
    timeout = 30
    result, elapsed = _pair(flab, str(FIXTURE_FACTS), name, tmp_path, timeout)
    no_traceback(result)
    assert elapsed < timeout + MARGIN, f"{elapsed:.1f} s"
    assert '"safe"' not in result.stdout and result.exit_code != 0
    print(f"{name}: pair {elapsed:.2f} s of {timeout} s, exit {result.exit_code}")
    if verdict is None:
        assert result.exit_code == 3
        # Either the output cap (16 MiB) or the loader's plausibility limits stop it.
        assert f"migcheck: {name}: the probe" in result.stderr
    else:
        assert result.exit_code == 1, result.stderr
        assert json.loads(result.stdout)["verdict"] == verdict
    # Gathered next to a healthy host, in one call: the healthy one is untouched.
    out = tmp_path / "o"
    result, elapsed = gather_cli(flab, HEALTHY, name, out=out, timeout=timeout)
    no_traceback(result)
    assert elapsed < timeout + MARGIN, f"{elapsed:.1f} s"
    assert host_seconds(result, name) < timeout + HOST_MARGIN  # includes parsing it
    doc = json.loads((out / f"{HEALTHY}.json").read_text())
    assert _stable(doc) == baseline
    print(f"{name}: gather with {HEALTHY} {elapsed:.2f} s of {timeout} s, exit {result.exit_code}")


@pytest.mark.parametrize(
    "kind", ["machines-1e6-plus-real", "version-4000-digits", "kvm-cap-1e4000", "cpu-flags-1e6"]
)
def test_absurd_superset_of_real_facts_is_never_safe(flab, tmp_path: Path, kind: str):
    name = _hostile_host(flab, kind)
    result, elapsed = _pair(flab, str(FIXTURE_FACTS), name, tmp_path, 30)
    no_traceback(result)
    assert elapsed < 30 + MARGIN
    assert result.exit_code != 0 and '"safe"' not in result.stdout, result.stdout[-300:]


def test_deep_nesting_is_bounded_and_others_kept(flab, baseline, tmp_path: Path):
    """450 levels is no hypervisor's answer. Depending on the interpreter's recursion
    headroom it is either carried intact or refused with a message (exit 3); never a
    RecursionError or traceback, and the healthy host gathered alongside is kept."""
    name = _hostile_host(flab, "nested-450")
    out = tmp_path / "o"
    result, _ = gather_cli(flab, HEALTHY, name, out=out, timeout=30)
    no_traceback(result)
    if result.exit_code == 0:
        assert json.loads((out / f"{name}.json").read_text())["devices"]["x"]["a"][0]["a"]
    else:
        assert result.exit_code == 3, result.stderr
        assert f"migcheck: {name}: the probe's output is not usable" in result.stderr
    assert _stable(json.loads((out / f"{HEALTHY}.json").read_text())) == baseline


# --- a crowd: 100 hosts at once against one sshd with MaxStartups 10:30:60 ------------------

# The real CLI, with every connection attempt counted per host (written as JSON at exit).
_COUNTING_CLI = """
import atexit, collections, json, sys, threading
from migcheck.transport import ssh
counts, lock, real = collections.Counter(), threading.Lock(), ssh.SshSession._socket
def counting(self, ep, deadline):
    with lock:
        counts[ep.alias] += 1
    return real(self, ep, deadline)
ssh.SshSession._socket = counting
path = sys.argv.pop(1)
atexit.register(lambda: open(path, "w").write(json.dumps(counts)))
from migcheck.cli import main
main()
"""


def test_hundred_concurrent_hosts_against_max_startups(flab, tmp_path: Path, record_property):
    target = "f-crowd"
    if target not in flab.hosts:
        flab.add_host(target, qemu=None, max_startups="10:30:60")
    cfg = flab.alias_config(100, target, prefix="fcrowd")
    names = [f"fcrowd{i:03d}" for i in range(1, 101)]
    counts = tmp_path / "attempts.json"
    out = tmp_path / "out"
    timeout = 30
    args = ["gather", *names, "-F", str(cfg), "--out-dir", str(out), "--jobs", "100"]
    result = run_cli(
        str(counts), *args, "--timeout", str(timeout),
        wrapper=[sys.executable, "-c", _COUNTING_CLI],
    )  # fmt: skip
    no_traceback(result)
    attempts = json.loads(counts.read_text())
    saved = {p.stem for p in out.glob("*.json")}
    failed = [ln for ln in result.stderr.splitlines() if ln.startswith("migcheck: fcrowd")]
    stats = {
        "succeeded": len(saved),
        "failed": len(failed),
        "retried": sum(1 for n in names if attempts.get(n, 0) > 1),
        "most_attempts": max(attempts.values()),
        "wall_seconds": round(result.seconds, 1),
        "dropped_by_sshd": flab.hosts[target].log().count("past MaxStartups"),
    }
    record_property("crowd", stats)
    print("crowd:", stats)
    # Every host is accounted for: its facts, or one clear line saying why not.
    assert len(saved) + len(failed) == 100, result.stderr[-3000:]
    assert f"{len(saved)} of 100 hosts gathered" in result.stderr
    for line in failed:
        assert "SSH handshake with" in line or "timed out" in line, line
    assert result.seconds < timeout + MARGIN, stats
    assert max(host_seconds(result, n) for n in names) < timeout + HOST_MARGIN
    # The retries absorb MaxStartups' drops: measured 500 of 500 over five cold bursts.
    assert len(saved) >= 98, stats
