"""The lab: real OpenSSH sshd processes, one mount namespace each, plus client-side files.

See the package docstring (``tests/lab/__init__.py``) for the API and how it works.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import hostdata, standin

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")
LOOPBACK = "127.0.0.1"
QEMU_BINARY = Path("/usr/bin/qemu-system-x86_64")
# Where the probe could find some other QEMU; hidden on hosts that get a stand-in or none.
QEMU_OTHER_PLACES = (
    "/usr/local/bin/qemu-system-x86_64",
    "/usr/local/sbin/qemu-system-x86_64",
    "/usr/sbin/qemu-system-x86_64",
    "/usr/libexec/qemu-kvm",
    "/usr/local/bin/qemu-kvm",
    "/usr/bin/qemu-kvm",
    "/usr/sbin/qemu-kvm",
)

START_TIMEOUT = 5.0  # per sshd start attempt: namespace, bind mounts, listening, banner
STOP_TIMEOUT = 5.0
TOOL_TIMEOUT = 15.0  # ssh-keygen, unshare checks
PORT_ATTEMPTS = 5

GARBAGE = (
    "Welcome to hv-legacy.example.net!\n"
    "*** Authorized use only. All activity is logged. ***\n"
    "Last login: Mon Mar  4 09:12:44 2024 from 10.1.2.3\n"
)
FAILURE_STDERR = "migcheck-lab: the remote command failed on purpose (fault host)\n"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

BindSource = str | bytes | Path


class LabError(RuntimeError):
    """The lab itself could not do what was asked (an sshd did not start, ...)."""


def _write(path: Path, data: str | bytes, mode: int = 0o644) -> Path:
    """Write atomically (rename into place) with ``mode``."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        data = data.encode()
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)
    return path


def keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair without passphrase at ``path``; returns the public key line
    (type and base64, no comment)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TOOL_TIMEOUT,
    )
    kind, blob = path.with_name(path.name + ".pub").read_text().split()[:2]
    return f"{kind} {blob}"


def free_port() -> int:
    """A port the kernel just gave out on 127.0.0.1 (sshd takes it right after; a lost
    race is detected and retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself holds the listening socket on 127.0.0.1:``port``
    (so a banner from someone else's server on a stolen port is never mistaken for ours)."""
    local = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    inodes = {f[9] for f in (line.split() for line in lines) if f[1] == local and f[3] == "0A"}
    return bool(inodes & _socket_inodes(pid))


def read_banner(port: int, timeout: float = 1.0) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        data = b""
        while b"\n" not in data and len(data) < 256:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        return data


def mount_namespace(pid: int | str = "self") -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


def pids_in_namespace(ns: str) -> list[int]:
    """Every process whose mount namespace is ``ns`` (e.g. ``mnt:[4026532801]``)."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{entry}/ns/mnt") == ns:
                found.append(int(entry))
    return found


@dataclass(eq=False)
class LabHost:
    """One lab host: an sshd on 127.0.0.1:``port`` in its own mount namespace."""

    name: str
    port: int
    dir: Path
    host_key_path: Path
    host_public_key: str  # "ssh-ed25519 AAAA..." (no comment)
    log_path: Path  # sshd -e output (and the namespace setup's), LogLevel as configured
    known: bool  # listed in lab.known_hosts
    kernel: str
    qemu: str | None
    force_command: str | None
    start_seconds: float  # spawn -> listening socket + SSH banner
    mnt_ns: str  # "mnt:[...]" of the sshd and every session it spawns
    process: subprocess.Popen = field(repr=False)
    lab: Lab = field(repr=False)
    _ns_fd: int | None = field(default=None, repr=False)

    @property
    def known_hosts_line(self) -> str:
        """What OpenSSH writes for this host: ``[127.0.0.1]:<port> ssh-ed25519 AAAA...``."""
        return f"[{LOOPBACK}]:{self.port} {self.host_public_key}"

    def ssh_argv(self, *cmd: str, config: Path | str | None = None) -> list[str]:
        """``ssh -F <lab.ssh_config> <name> <cmd...>`` (ssh joins ``cmd`` with spaces into
        one remote shell command line, like every OpenSSH client)."""
        return ["ssh", "-F", str(config or self.lab.ssh_config), self.name, *cmd]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def namespace_pids(self) -> list[int]:
        """The sshd and everything its sessions started (they share its mount namespace)."""
        return pids_in_namespace(self.mnt_ns)

    def stop(self) -> None:
        """Terminate the sshd (its process group), then kill whatever its sessions left in
        the namespace (sessions run setsid(), so they are not in the group). Idempotent."""
        deadline = time.monotonic() + STOP_TIMEOUT
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1.0)
        # Our open ns fd keeps the namespace (and so its inode number) from being reused,
        # so every process matched here was started by this host's sshd.
        while self._ns_fd is not None and time.monotonic() < deadline:
            pids = self.namespace_pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=max(0.5, deadline - time.monotonic()))
        if self._ns_fd is not None:
            os.close(self._ns_fd)
            self._ns_fd = None


class Lab:
    """A set of lab hosts plus the client side: one client key, ``ssh_config``,
    ``known_hosts``. Use through the ``lab`` fixture, or as a context manager."""

    def __init__(self, root: Path | str | None = None, *, remove_root: bool | None = None):
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix="migcheck-lab-"))
            remove = True if remove_root is None else remove_root
        else:
            self.root = Path(root)
            self.root.mkdir(parents=True, exist_ok=True)
            remove = bool(remove_root)
        self._remove_root = remove
        self.hosts: dict[str, LabHost] = {}
        self.client_key = self.root / "client_ed25519"
        self.client_public_key = keygen(self.client_key, "migcheck-lab-client")
        self.authorized_keys = _write(self.root / "authorized_keys", self.client_public_key + "\n")
        self.ssh_config = self.root / "ssh_config"
        self.known_hosts = self.root / "known_hosts"
        self.home = pwd.getpwuid(0).pw_dir
        self._shadow = self._unlocked_shadow()
        self._closed = False
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._write_client_files()
        atexit.register(self.close)

    # --- hosts ---------------------------------------------------------------------------
    def add_host(
        self,
        name: str,
        *,
        kernel: str = hostdata.DEFAULT_KERNEL,
        os_release: str = hostdata.DEBIAN_12,
        cpuinfo: Path | str | None = None,
        qemu: str | None = "real",
        extra: Mapping[str, BindSource] | None = None,
        force_command: str | None = None,
        known: bool = True,
        allow_tcp_forwarding: bool = False,
        max_startups: str | None = None,
        log_level: str = "VERBOSE",
        proc_version: str | None = None,
        clean_home: bool = True,
        sshd_options: Iterable[str] = (),
    ) -> LabHost:
        """Start one sshd in its own mount namespace; see the package docstring."""
        from conftest import require

        if not _NAME.match(name) or name in self.hosts:
            raise ValueError(f"bad or duplicate lab host name {name!r}")
        if force_command is not None and "\n" in force_command:
            raise ValueError("force_command must be one line")
        hdir = self._host_dir(name)
        binds: list[tuple[Path, str, bool]] = []  # (source, target, read-only)

        def bind(target: str, data: BindSource, *, ro: bool = True, mode: int = 0o644) -> None:
            if isinstance(data, Path):
                source = data
            else:
                label = target.strip("/").replace("/", "_")
                source = _write(hdir / "files" / label, data, mode)
            binds.append((source, target, ro))

        bind("/proc/sys/kernel/osrelease", kernel + "\n")
        bind("/proc/version", proc_version or hostdata.proc_version(kernel))
        bind("/etc/os-release", os_release)  # a symlink on Debian: binds its target
        if cpuinfo is None:
            cpuinfo = hostdata.CPUINFO[hostdata.DEFAULT_CPUINFO]
            if not cpuinfo.is_file():
                # Without ../shared/data a lab host shows this machine's own /proc/cpuinfo
                # (real data too), so suites that do not ask for a particular CPU still run
                # in a clone of the project alone.
                cpuinfo = Path("/proc/cpuinfo").read_text()
        if isinstance(cpuinfo, Path):
            if cpuinfo.is_relative_to(hostdata.SHARED):
                require(cpuinfo.is_file(), f"shared data missing: {cpuinfo}")
            elif not cpuinfo.is_file():
                raise FileNotFoundError(cpuinfo)
        bind("/proc/cpuinfo", cpuinfo)

        if qemu == "real":
            require(os.access(QEMU_BINARY, os.X_OK), f"lab host {name}: no {QEMU_BINARY}")
        else:
            if qemu is not None:
                replies = hostdata.caps_path(qemu)
                require(replies.is_file(), f"shared data missing: {replies}")
                require(
                    QEMU_BINARY.exists(),
                    f"lab host {name}: the QEMU stand-in is bound over {QEMU_BINARY}, "
                    "which must exist",
                )
                script = _write(hdir / "qemu-system-x86_64", standin.render(replies), 0o755)
                bind(str(QEMU_BINARY), script)
            hide = [] if qemu is not None else [str(QEMU_BINARY)]
            hide += QEMU_OTHER_PLACES
            seen = set()
            for place in hide:
                real = os.path.realpath(place)
                if os.path.isfile(real) and real not in seen:
                    seen.add(real)
                    bind(real, "")  # empty, not executable: QEMU is absent
        if clean_home:
            home = hdir / "home"
            home.mkdir(mode=0o700, exist_ok=True)
            bind(self.home, home, ro=False)
        if self._shadow is not None:
            bind("/etc/shadow", self._shadow)
        for target, data in (extra or {}).items():
            bind(target, data)

        key = hdir / "ssh_host_ed25519_key"
        if not key.exists():
            host_public_key = keygen(key, f"migcheck-lab-{name}")
        else:
            host_public_key = " ".join(key.with_name(key.name + ".pub").read_text().split()[:2])
        options = [
            f"AllowTcpForwarding {'yes' if allow_tcp_forwarding else 'no'}",
            f"LogLevel {log_level}",
        ]
        if max_startups:
            options.append(f"MaxStartups {max_startups}")
        if force_command:
            options.append(f"ForceCommand {force_command}")
        options += list(sshd_options)

        start = hdir / "start.sh"
        lines = ["#!/bin/sh", "# runs inside: unshare --mount --propagation private", "set -e"]
        for source, target, ro in binds:
            flags = "--bind -o ro" if ro else "--bind"
            lines.append(f"mount {flags} {shlex.quote(str(source))} {shlex.quote(target)}")
        config = hdir / "sshd_config"
        lines.append(f"exec {SSHD} -D -e -f {shlex.quote(str(config))}")
        _write(start, "\n".join(lines) + "\n", 0o755)

        log_path = hdir / "sshd.log"
        process, port, seconds = self._spawn(name, start, config, key, options, log_path)
        ns_fd = os.open(f"/proc/{process.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        host = LabHost(
            name=name,
            port=port,
            dir=hdir,
            host_key_path=key,
            host_public_key=host_public_key,
            log_path=log_path,
            known=known,
            kernel=kernel,
            qemu=qemu,
            force_command=force_command,
            start_seconds=seconds,
            mnt_ns=mount_namespace(process.pid),
            process=process,
            lab=self,
            _ns_fd=ns_fd,
        )
        if host.mnt_ns == mount_namespace():
            host.stop()
            raise LabError(f"lab host {name}: sshd is not in its own mount namespace")
        self.hosts[name] = host
        self._write_client_files()
        return host

    def add_bastion(self, name: str, **kw) -> LabHost:
        """A plain host that forwards TCP (``AllowTcpForwarding yes``): a ProxyJump hop."""
        kw.setdefault("qemu", None)
        return self.add_host(name, allow_tcp_forwarding=True, **kw)

    def add_stalling_host(self, name: str, *, seconds: int = 600, **kw) -> LabHost:
        """Authenticates, then the remote command never answers (``sleep 600``)."""
        return self._fault(name, f"exec sleep {int(seconds)}\n", drain=False, **kw)

    def add_garbage_host(
        self, name: str, *, text: str = GARBAGE, drain: bool = True, **kw
    ) -> LabHost:
        """Prints ``text`` (not JSON) and exits 0."""
        src = _write(self._host_dir(name) / "garbage.txt", text)
        return self._fault(name, f"cat {shlex.quote(str(src))}\n", drain=drain, **kw)

    def add_truncated_host(
        self,
        name: str,
        *,
        source: Path = hostdata.FIXTURE_FACTS,
        nbytes: int | None = None,
        drain: bool = True,
        **kw,
    ) -> LabHost:
        """Prints the first ``nbytes`` (default: half) of a real facts JSON and exits 0."""
        size = source.stat().st_size
        n = size // 2 if nbytes is None else nbytes
        cmd = f"head -c {int(n)} {shlex.quote(str(source))}\n"
        return self._fault(name, cmd, drain=drain, **kw)

    def add_failing_host(
        self,
        name: str,
        *,
        status: int = 1,
        stderr: str = FAILURE_STDERR,
        stdout: str = "",
        drain: bool = True,
        **kw,
    ) -> LabHost:
        """Prints ``stdout``/``stderr`` and exits with ``status``."""
        hdir = self._host_dir(name)
        out = _write(hdir / "fault.stdout", stdout)
        err = _write(hdir / "fault.stderr", stderr)
        cmd = f"cat {shlex.quote(str(out))}\ncat {shlex.quote(str(err))} >&2\nexit {int(status)}\n"
        return self._fault(name, cmd, drain=drain, **kw)

    def _fault(self, name: str, script: str, *, drain: bool, **kw) -> LabHost:
        """A host whose sshd replaces every remote command (``ForceCommand``) by ``script``;
        with ``drain`` it first reads stdin to EOF (the probe), like a remote python3 -."""
        body = ("cat >/dev/null\n" if drain else "") + script
        path = _write(self._host_dir(name) / "force.sh", "#!/bin/sh\n" + body, 0o755)
        kw.setdefault("qemu", None)
        return self.add_host(name, force_command=f"/bin/sh {path}", **kw)

    def _host_dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"bad lab host name {name!r}")
        hdir = self.root / "hosts" / name
        hdir.mkdir(parents=True, exist_ok=True)
        (hdir / "files").mkdir(exist_ok=True)
        return hdir

    def _unlocked_shadow(self) -> Path | None:
        """sshd without PAM refuses a locked account ('!' password) even for keys; if root
        is locked here, the hosts get a copy of /etc/shadow with root's field set to '*'."""
        try:
            lines = Path("/etc/shadow").read_text().splitlines(keepends=True)
        except OSError:
            return None
        out, changed = [], False
        for line in lines:
            fields = line.split(":")
            if fields[0] == "root" and len(fields) > 1 and fields[1].startswith("!"):
                fields[1] = "*"
                changed = True
            out.append(":".join(fields))
        return _write(self.root / "shadow", "".join(out), 0o600) if changed else None

    def _spawn(
        self, name: str, start: Path, config: Path, key: Path, options: list[str], log_path: Path
    ) -> tuple[subprocess.Popen, int, float]:
        last = ""
        for _attempt in range(PORT_ATTEMPTS):
            port = free_port()
            _write(config, self._sshd_config(name, port, key, options))
            t0 = time.monotonic()
            with open(log_path, "ab") as log:
                log.write(f"--- lab: starting {name} on port {port}\n".encode())
                log.flush()
                process = subprocess.Popen(
                    ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", str(start)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            deadline = t0 + START_TIMEOUT
            while time.monotonic() < deadline and process.poll() is None:
                if listens_on(process.pid, port):
                    with contextlib.suppress(OSError):
                        if read_banner(port).startswith(b"SSH-2.0-"):
                            return process, port, time.monotonic() - t0
                time.sleep(0.005)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
            last = log_path.read_text(errors="replace")[-2000:]
            if "Address already in use" not in last and "Cannot bind" not in last:
                break  # not a port race: retrying will not help
        raise LabError(f"lab host {name}: sshd did not come up (log {log_path}):\n{last}")

    def _sshd_config(self, name: str, port: int, key: Path, options: list[str]) -> str:
        return "\n".join(
            [
                f"# migcheck lab host {name}",
                f"ListenAddress {LOOPBACK}",
                f"Port {port}",
                f"HostKey {key}",
                "PidFile none",
                f"AuthorizedKeysFile {self.authorized_keys}",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UseDNS no",
                "PrintMotd no",
                "PrintLastLog no",
                "X11Forwarding no",
                "AllowAgentForwarding no",
                "PermitTunnel no",
                *options,
                "",
            ]
        )

    # --- client side ---------------------------------------------------------------------
    def _block(
        self, alias: str, host: LabHost, known_hosts: Path, jump: str | None = None
    ) -> list[str]:
        lines = [
            f"Host {alias}",
            f"  HostName {LOOPBACK}",
            f"  Port {host.port}",
            "  User root",
            f"  IdentityFile {self.client_key}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {known_hosts}",
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes",
            "  BatchMode yes",
        ]
        if jump:
            lines.append(f"  ProxyJump {jump}")
        return [*lines, ""]

    def write_ssh_config(
        self,
        path: Path | str,
        *,
        known_hosts: Path | str | None = None,
        jump: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> Path:
        """An OpenSSH client config with a block per lab host, and per ``aliases`` entry
        (alias -> lab host name); ``jump`` maps host or alias -> bastion name (ProxyJump);
        ``known_hosts`` replaces ``lab.known_hosts``."""
        kh = Path(known_hosts) if known_hosts else self.known_hosts
        jump = dict(jump or {})
        lines = ["# migcheck test lab: all hosts are 127.0.0.1, one port each", ""]
        for name, host in self.hosts.items():
            lines += self._block(name, host, kh, jump.get(name))
        for alias, target in (aliases or {}).items():
            lines += self._block(alias, self.hosts[target], kh, jump.get(alias))
        return _write(Path(path), "\n".join(lines))

    def ssh_config_via(self, bastion: str, *targets: str, path: Path | str | None = None) -> Path:
        """A config where each of ``targets`` is reached with ``ProxyJump <bastion>``."""
        for n in (bastion, *targets):
            if n not in self.hosts:
                raise KeyError(n)
        out = path or self.root / f"ssh_config.via-{bastion}"
        return self.write_ssh_config(out, jump=dict.fromkeys(targets, bastion))

    def alias_config(
        self, n: int, target: str, *, prefix: str = "hv", path: Path | str | None = None
    ) -> Path:
        """A config with ``n`` aliases ``hv001``..``hv<n>`` (zero-padded to at least 3
        digits), all reaching lab host ``target`` (plus the usual per-host blocks)."""
        names = alias_names(n, prefix)
        out = path or self.root / f"ssh_config.{n}x{target}"
        return self.write_ssh_config(out, aliases=dict.fromkeys(names, target))

    def known_hosts_without(self, *names: str, path: Path | str | None = None) -> Path:
        """A known_hosts with every known lab host except ``names``."""
        out = path or self.root / ("known_hosts.without-" + "-".join(names))
        lines = [h.known_hosts_line for h in self.hosts.values() if h.known and h.name not in names]
        return _write(Path(out), "".join(line + "\n" for line in lines))

    def _write_client_files(self) -> None:
        lines = [h.known_hosts_line for h in self.hosts.values() if h.known]
        _write(self.known_hosts, "".join(line + "\n" for line in lines))
        self.write_ssh_config(self.ssh_config)

    # --- lifetime ------------------------------------------------------------------------
    def remove_host(self, name: str) -> None:
        """Stop a host and drop it from ssh_config and known_hosts."""
        self.hosts.pop(name).stop()
        self._write_client_files()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors = []
        for host in self.hosts.values():
            try:
                host.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{host.name}: {exc}")
        if self._remove_root:
            shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        if errors:
            raise LabError("could not stop every lab host: " + "; ".join(errors))

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def alias_names(n: int, prefix: str = "hv") -> list[str]:
    """``hv001``..``hv<n>``: what :meth:`Lab.alias_config` writes."""
    width = max(3, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]
