# ruff: noqa: UP031, UP041, B904, RUF005
# (Python 3.6 on the remote host: socket.timeout is no TimeoutError there.)
"""The trial's remote agent: sent as text over an SSH channel and run by the host's Python.

Standalone (Python 3.6+, standard library only), like the probe. One JSON object per line
on stdin, one per line on stdout. Three roles, chosen by the first line:

- ``control``: starts one QEMU in a private directory (``mkdtemp``, mode 0700) and relays QMP
  commands to it. Everything it started is killed and the directory removed when stdin
  reaches EOF (migcheck finished, was interrupted, or the connection dropped), on any
  error, and when its lifetime runs out (``alarm``). QEMU gets ``PR_SET_PDEATHSIG`` so it
  dies with the agent even when the agent is killed outright.
- ``stream-out``: listens on a unix socket in that directory, takes one connection (the
  source QEMU's ``migrate``), copies it to stdout.
- ``stream-in``: connects to the destination QEMU's incoming socket, copies stdin into it.

The migration stream thus travels through migcheck's SSH connections; the hosts need no
network path to each other.
"""

import ctypes
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

PR_SET_PDEATHSIG = 1
CLONE_NEWNET = 0x40000000
STATE = {"proc": None, "dir": None, "qmp": None, "buf": b""}


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def cleanup(*_):
    proc = STATE.get("proc")
    if proc is not None and proc.poll() is None:
        try:
            proc.kill()
            proc.wait(timeout=5)
        except Exception:
            pass
    if STATE.get("dir"):
        shutil.rmtree(STATE["dir"], ignore_errors=True)
        STATE["dir"] = None


def die(*_):
    cleanup()
    os._exit(3)


def meminfo():
    info = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    info[key] = int(parts[0]) * 1024
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            info["overcommit_memory"] = int(f.read().strip())
    except (OSError, ValueError):
        pass
    return info


def find_qemu(wanted):
    if wanted:
        return wanted if os.access(wanted, os.X_OK) else None
    arch = os.uname()[4]
    for name in ("qemu-system-" + arch, "/usr/libexec/qemu-kvm", "qemu-kvm"):
        path = shutil.which(name) if "/" not in name else name
        if path and os.access(path, os.X_OK):
            return path
    return None


def disk_size(path):
    """Virtual size of a disk image: qcow2's header field, else the file or device size."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head[:4] == b"QFI\xfb" and len(head) >= 32:
                return struct.unpack(">Q", head[24:32])[0]
            f.seek(0, 2)
            return f.tell()
    except OSError:
        return None


def preexec(netns):
    def run():
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if netns and libc.unshare(CLONE_NEWNET) != 0:
            # A tap needs a private network namespace: without one QEMU would create a
            # tap on the host's network. Exit with a message QEMU's stderr slot carries.
            os.write(2, b"migcheck agent: cannot create a private network namespace (root?)\n")
            os._exit(125)

    return run


def tail(limit=800):
    try:
        with open(os.path.join(STATE["dir"], "err"), "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except (OSError, TypeError):
        return ""
    lines = [
        line
        for line in text.strip().splitlines()
        if "host doesn't support requested feature" not in line
    ]
    return "\n".join(lines)[-limit:]


def qmp_read(deadline):
    sock = STATE["qmp"]
    while b"\n" not in STATE["buf"]:
        left = deadline - time.time()
        if left <= 0:
            raise RuntimeError("no answer in time")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise RuntimeError("no answer in time")
        if not chunk:
            raise RuntimeError("QEMU closed the QMP connection")
        STATE["buf"] += chunk
    line, STATE["buf"] = STATE["buf"].split(b"\n", 1)
    return json.loads(line.decode("utf-8", "replace"))


def qmp(command, arguments=None, timeout=10.0):
    deadline = time.time() + timeout
    req = {"execute": command, "id": "a"}
    if arguments:
        req["arguments"] = arguments
    STATE["qmp"].sendall(json.dumps(req).encode() + b"\n")
    while True:
        msg = qmp_read(deadline)
        if "event" in msg:
            continue
        if "error" in msg:
            err = msg["error"]
            return {"ok": False, "error": err.get("desc"), "class": err.get("class")}
        return {"ok": True, "return": msg.get("return")}


def peak():
    """QEMU's peak resident memory in bytes (VmHWM), for the report's cost figures."""
    try:
        with open("/proc/%d/status" % STATE["proc"].pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, AttributeError):
        pass
    return None


def alive():
    proc = STATE.get("proc")
    return proc is not None and proc.poll() is None


def failure(text):
    time.sleep(0.05)
    exited = not alive()
    code = STATE["proc"].returncode if STATE.get("proc") is not None else None
    return {"ok": False, "error": text, "exited": exited, "code": code, "stderr": tail()}


def start(req):
    qemu = find_qemu(req.get("qemu"))
    if qemu is None:
        return {"ok": False, "error": "no QEMU found (qemu-system-ARCH, qemu-kvm)"}
    STATE["dir"] = tempfile.mkdtemp(prefix="migcheck-trial-")
    os.chmod(STATE["dir"], 0o700)
    sock_path = os.path.join(STATE["dir"], "qmp.sock")
    argv = [qemu] + list(req["argv"]) + ["-qmp", "unix:%s,server=on,wait=off" % sock_path]
    env = dict(os.environ, LC_ALL="C", TMPDIR=STATE["dir"])
    with open(os.path.join(STATE["dir"], "err"), "wb") as err:
        STATE["proc"] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=STATE["dir"],
            env=env,
            preexec_fn=preexec(bool(req.get("netns"))),
            close_fds=True,
        )
    deadline = time.time() + float(req.get("timeout", 20))
    while True:
        if not alive():
            return failure("QEMU exited before its QMP socket answered")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(sock_path)
            STATE["qmp"] = sock
            STATE["buf"] = b""
            qmp_read(deadline)  # greeting
            answer = qmp("qmp_capabilities", timeout=max(1.0, deadline - time.time()))
            if not answer["ok"]:
                return failure(answer["error"])
            return {"ok": True, "dir": STATE["dir"], "pid": STATE["proc"].pid, "qemu": qemu}
        except (OSError, RuntimeError, ValueError) as exc:
            sock.close()
            if time.time() >= deadline:
                return failure("QMP did not answer in time: %s" % exc)
            time.sleep(0.05)


def control():
    for raw in iter(sys.stdin.buffer.readline, b""):
        try:
            req = json.loads(raw)
        except ValueError:
            out({"ok": False, "error": "bad request"})
            continue
        op = req.get("op")
        if op == "hello":
            out({"ok": True, "uid": os.getuid(), "meminfo": meminfo(), "qemu": find_qemu(None)})
        elif op == "sizes":
            out({"ok": True, "sizes": {p: disk_size(p) for p in req.get("paths", [])}})
        elif op == "start":
            out(start(req))
        elif op == "qmp":
            if STATE.get("qmp") is None:
                out({"ok": False, "error": "QEMU not started"})
                continue
            try:
                out(qmp(req["execute"], req.get("arguments"), float(req.get("timeout", 10))))
            except (OSError, RuntimeError, ValueError) as exc:
                out(failure("%s: %s" % (req["execute"], exc)))
        elif op == "status":
            out({"ok": True, "alive": alive(), "stderr": tail(), "hwm": peak()})
        elif op == "quit":
            cleanup()
            out({"ok": True})
            return
        else:
            out({"ok": False, "error": "unknown op"})


def stream_out(req):
    path = req["path"]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    sys.stdout.buffer.write(b"R")
    sys.stdout.buffer.flush()
    deadline = time.time() + float(req.get("timeout", 60))
    try:
        # Wait for QEMU's connection, but give up as soon as migcheck closes the channel
        # (stdin EOF): a migrate command that failed must not leave this agent waiting.
        while True:
            left = deadline - time.time()
            if left <= 0:
                return
            ready = select.select([srv, sys.stdin.buffer], [], [], left)[0]
            if srv in ready:
                conn, _ = srv.accept()
                break
            if sys.stdin.buffer in ready and not os.read(0, 4096):
                return
    finally:
        srv.close()
        os.unlink(path)
    conn.settimeout(None)
    sink = sys.stdout.buffer
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        sink.write(data)
        sink.flush()


def stream_in(req):
    deadline = time.time() + float(req.get("timeout", 60))
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while True:
        try:
            conn.connect(req["path"])
            break
        except OSError:
            if time.time() >= deadline:
                raise
            time.sleep(0.05)
    sys.stdout.buffer.write(b"R")
    sys.stdout.buffer.flush()
    source = sys.stdin.buffer
    while True:
        data = source.read1(1 << 20) if hasattr(source, "read1") else os.read(0, 1 << 20)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    conn.close()


def main():
    signal.signal(signal.SIGTERM, die)
    signal.signal(signal.SIGHUP, die)
    signal.signal(signal.SIGPIPE, die)
    signal.signal(signal.SIGALRM, die)
    first = json.loads(sys.stdin.buffer.readline().decode("utf-8"))
    signal.alarm(int(first.get("lifetime", 600)))
    try:
        if first["role"] == "control":
            out({"ok": True, "role": "control"})
            control()
        elif first["role"] == "stream-out":
            stream_out(first)
        elif first["role"] == "stream-in":
            stream_in(first)
    finally:
        cleanup()


main()
