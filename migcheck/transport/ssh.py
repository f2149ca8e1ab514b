"""Run the probe over SSH (paramiko) the way an operator's ``ssh host`` would connect.

One connection and one exec per host: the remote command is a fixed string that starts the
remote Python reading the probe from stdin. Nothing the user typed (host names, users,
paths, command-line content) is ever part of that string; configuration travels inside the
probe text on stdin.

Host keys are verified against known_hosts strictly: an unknown key stops the host unless
``accept_new_host_keys`` (OpenSSH's ``accept-new``) is set; a changed key is always refused.
Every step runs under one deadline for the whole exchange.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import random
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from migcheck.errors import HostError
from migcheck.hosts import HostRef
from migcheck.transport.settings import SshSettings

STDERR_TAIL = 600

# The only remote command migcheck ever runs. Fixed text: no user input is spliced in.
_FIND_PYTHON = (
    "LC_ALL=C; export LC_ALL; "
    "for py in python3 /usr/libexec/platform-python python; do "
    'p=$(command -v "$py" 2>/dev/null) && [ -x "$p" ] && exec {sudo}"$p" -; done; '
    'echo "migcheck: no python3, /usr/libexec/platform-python or python found" >&2; exit 127'
)
REMOTE_COMMAND = _FIND_PYTHON.format(sudo="")
REMOTE_COMMAND_SUDO = _FIND_PYTHON.format(sudo="sudo -n ")
# The trial's agent (migcheck/trial/agent.py) keeps stdin open after its text: the Python
# reads a length line and that many bytes of program, then the rest of stdin is the agent's.
# Fixed text as well.
_AGENT_BOOT = (
    "import sys;n=int(sys.stdin.buffer.readline());"
    'exec(compile(sys.stdin.buffer.read(n),"migcheck-agent","exec"))'
)
_FIND_PYTHON_AGENT = _FIND_PYTHON.replace('"$p" -;', '"$p" -c \'' + _AGENT_BOOT + "';")
REMOTE_AGENT_COMMAND = _FIND_PYTHON_AGENT.format(sudo="")
REMOTE_AGENT_COMMAND_SUDO = _FIND_PYTHON_AGENT.format(sudo="sudo -n ")
NO_PYTHON_EXIT = 127

# paramiko's transport thread logs every failed handshake with a traceback at ERROR; with no
# handler anywhere, logging's last resort would print those on stderr. Errors reach the user
# as HostError; an application that configures logging still gets the records.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect, after ``~/.ssh/config`` and the HOST string are applied."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    identities_only: bool
    proxy_jump: str | None
    proxy_command: str | None
    known_hosts_files: tuple[str, ...]
    host_key_alias: str | None

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH names this host in known_hosts (``[host]:port`` off port 22)."""
        name = self.host_key_alias or self.hostname
        return name if self.port == 22 else f"[{name}]:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def _expand_includes(text: str, base: Path, depth: int = 0) -> str:
    """paramiko does not follow ``Include``; inline included files like OpenSSH does."""
    if depth > 8:
        return text
    out = []
    for line in text.splitlines():
        words = line.strip().split()
        if words and words[0].lower() == "include":
            for pattern in words[1:]:
                pattern = os.path.expanduser(pattern)
                if not os.path.isabs(pattern):
                    pattern = str(base / pattern)
                for path in sorted(glob.glob(pattern)):
                    with contextlib.suppress(OSError):
                        out.append(_expand_includes(Path(path).read_text(), base, depth + 1))
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def load_ssh_config(path: Path | None) -> paramiko.SSHConfig:
    if path is None:
        default = Path("~/.ssh/config").expanduser()
        if not default.is_file():
            return paramiko.SSHConfig()
        path = default
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise HostError(str(path), f"cannot read ssh config: {exc.strerror or exc}") from None
    try:
        return paramiko.SSHConfig.from_text(_expand_includes(text, Path("~/.ssh").expanduser()))
    except Exception as exc:  # paramiko raises several types for bad config lines
        raise HostError(str(path), f"cannot parse ssh config: {exc}") from None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def resolve(ref: HostRef, settings: SshSettings, config: paramiko.SSHConfig) -> Endpoint:
    """Apply ssh_config to a HOST; the HOST string's user and port win, like ``ssh -l -p``."""
    cfg = config.lookup(ref.name)
    port = ref.port or int(cfg.get("port", 22))
    user = ref.user or settings.user or cfg.get("user") or _local_user()
    identity_files = tuple(
        os.path.expanduser(p) for p in (*settings.identities, *_as_list(cfg.get("identityfile")))
    )
    known = _as_list(cfg.get("userknownhostsfile")) or [
        "~/.ssh/known_hosts",
        "~/.ssh/known_hosts2",
    ]
    known += _as_list(cfg.get("globalknownhostsfile")) or ["/etc/ssh/ssh_known_hosts"]
    jump = cfg.get("proxyjump")
    return Endpoint(
        alias=ref.name,
        hostname=cfg.get("hostname", ref.name),
        port=port,
        user=user,
        identity_files=identity_files,
        identities_only=str(cfg.get("identitiesonly", "no")).lower() == "yes",
        proxy_jump=None if not jump or jump.lower() == "none" else jump,
        proxy_command=cfg.get("proxycommand") if not jump else None,
        known_hosts_files=tuple(os.path.expanduser(p) for p in known),
        host_key_alias=cfg.get("hostkeyalias"),
    )


def _local_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "root"


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


class KnownHosts:
    """known_hosts files read once per session; new keys appended under a lock."""

    def __init__(self) -> None:
        self._cache: dict[str, paramiko.HostKeys] = {}
        self._lock = threading.Lock()

    def _load(self, path: str) -> paramiko.HostKeys:
        with self._lock:
            if path not in self._cache:
                keys = paramiko.HostKeys()
                if os.path.isfile(path):
                    with contextlib.suppress(OSError, paramiko.SSHException, ValueError):
                        keys.load(path)
                self._cache[path] = keys
            return self._cache[path]

    def lookup(self, endpoint: Endpoint) -> tuple[dict[str, paramiko.PKey], str | None]:
        """Known keys for the endpoint by key type, and the file they came from."""
        for path in endpoint.known_hosts_files:
            found = self._load(path).lookup(endpoint.known_hosts_name)
            if found:
                return dict(found), path
        return {}, None

    def add(self, endpoint: Endpoint, key: paramiko.PKey) -> str:
        path = endpoint.known_hosts_files[0]
        line = f"{endpoint.known_hosts_name} {key.get_name()} {key.get_base64()}\n"
        with self._lock:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(line)
            self._cache.pop(path, None)
        return path


def verify_host_key(
    endpoint: Endpoint, key: paramiko.PKey, known: KnownHosts, accept_new: bool
) -> None:
    """Refuse unknown (unless accept_new) and changed keys, with the command that fixes it."""
    keys, path = known.lookup(endpoint)
    name = endpoint.known_hosts_name
    if not keys:
        if accept_new:
            known.add(endpoint, key)
            return
        raise HostError(
            endpoint.alias,
            f"host key for {name} is not known ({_fingerprint(key)}). Verify it, then add it "
            f"with: ssh-keyscan -p {endpoint.port} {endpoint.hostname} >> "
            f"{endpoint.known_hosts_files[0]} (or rerun with --accept-new-host-keys)",
        )
    expected = keys.get(key.get_name())
    if expected is not None and expected == key:
        return
    old = expected or next(iter(keys.values()))
    raise HostError(
        endpoint.alias,
        f"HOST KEY CHANGED for {name}: known_hosts ({path}) has {_fingerprint(old)}, the host "
        f"offered {_fingerprint(key)}. This may be a man-in-the-middle attack, or the host "
        f"was reinstalled. If you know why it changed: ssh-keygen -R '{name}' -f {path}",
    )


def _load_key(path: str) -> paramiko.PKey | str:
    """A private key, or why it could not be used (never the key material itself)."""
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        return f"{path}: needs a passphrase (load it into ssh-agent)"
    except (OSError, paramiko.SSHException, ValueError) as exc:
        return f"{path}: {type(exc).__name__}"


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self, what: str, host: str) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise HostError(host, f"timed out after {self.seconds:g} s while {what}")
        return remaining


_DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")


@dataclass
class SshSession:
    """Shared state for gathering many hosts: config, known_hosts, bastion transports."""

    settings: SshSettings = field(default_factory=SshSettings)

    def __post_init__(self) -> None:
        self.config = load_ssh_config(self.settings.config_file)
        self.known = KnownHosts()
        self._jumps: dict[str, paramiko.Transport] = {}
        self._jump_lock = threading.RLock()  # multi-hop ProxyJump re-enters
        self._agent: paramiko.Agent | None = None
        # keep_connections: the probe's connection stays open for a later connect() to the
        # same host (a trial logs into each host once: probe, agents, stream).
        self.keep_connections = False
        # Per host, every connection made (two threads may connect at once); all closed by
        # close(), the first active one reused.
        self._kept: dict[HostRef, list[tuple[paramiko.Transport, Endpoint]]] = {}
        self._kept_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        with self._kept_lock:
            for kept in self._kept.values():
                for t, _ in kept:
                    t.close()
            self._kept.clear()
        with self._jump_lock:
            for t in self._jumps.values():
                t.close()
            self._jumps.clear()
        if self._agent is not None:
            self._agent.close()

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connection --------------------------------------------------------------------
    def _socket(self, ep: Endpoint, deadline: _Deadline) -> Any:
        if ep.proxy_jump:
            return self._jump_channel(ep, deadline)
        if ep.proxy_command:
            try:
                return paramiko.ProxyCommand(ep.proxy_command)
            except Exception as exc:
                raise HostError(ep.alias, f"ProxyCommand failed to start: {exc}") from None
        try:
            return socket.create_connection(
                (ep.hostname, ep.port), timeout=deadline.left("connecting", ep.alias)
            )
        except socket.gaierror:
            raise HostError(ep.alias, f"cannot resolve host name {ep.hostname!r}") from None
        except TimeoutError:
            raise HostError(ep.alias, f"connection to {ep.label} timed out") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise HostError(ep.alias, f"cannot connect to {ep.label}: {reason}") from None

    def _jump_channel(self, ep: Endpoint, deadline: _Deadline) -> paramiko.Channel:
        """A direct-tcpip channel through the (shared) bastion transport; hops chain."""
        hops = [h.strip() for h in (ep.proxy_jump or "").split(",") if h.strip()]
        # The last hop is the one that opens the channel to the target.
        from migcheck.hosts import parse_host

        last = hops[-1]
        with self._jump_lock:
            transport = self._jumps.get(last)
            if transport is None or not transport.is_active():
                ref = parse_host(last if "://" in last else f"ssh://{last}")
                jump_ep = resolve(ref, self.settings, self.config)
                if len(hops) > 1:
                    jump_ep = _replace_jump(jump_ep, ",".join(hops[:-1]))
                transport = self._connect(jump_ep, deadline)
                self._jumps[last] = transport
        try:
            return transport.open_channel(
                "direct-tcpip",
                (ep.hostname, ep.port),
                ("127.0.0.1", 0),
                timeout=deadline.left("opening the jump channel", ep.alias),
            )
        except (paramiko.SSHException, OSError) as exc:
            raise HostError(
                ep.alias, f"jump host {last} could not reach {ep.hostname}:{ep.port}: {exc}"
            ) from None

    def _connect(self, ep: Endpoint, deadline: _Deadline) -> paramiko.Transport:
        """An authenticated transport, retrying handshakes that a busy sshd drops."""
        attempts = max(1, self.settings.connect_attempts)
        for attempt in range(1, attempts + 1):
            sock = self._socket(ep, deadline)
            transport = paramiko.Transport(sock)
            try:
                self._prefer_known_key_types(transport, ep)
                remaining = deadline.left("waiting for the SSH banner", ep.alias)
                transport.banner_timeout = remaining
                transport.handshake_timeout = remaining
                transport.auth_timeout = remaining
                transport.start_client(timeout=remaining)
                if not transport.initial_kex_done:  # start_client returns quietly at timeout
                    raise paramiko.SSHException(f"no SSH handshake within {remaining:.1f} s")
            except (paramiko.SSHException, EOFError, OSError) as exc:
                transport.close()
                # sshd's MaxStartups drops connections before the banner: back off, retry.
                if attempt < attempts and deadline.end - time.monotonic() > 1.0:
                    time.sleep(min(0.2 * attempt + random.uniform(0, 0.3 * attempt), 2.0))
                    continue
                raise HostError(ep.alias, f"SSH handshake with {ep.label} failed: {exc}") from None
            except HostError:
                transport.close()
                raise
            try:
                verify_host_key(
                    ep,
                    transport.get_remote_server_key(),
                    self.known,
                    self.settings.accept_new_host_keys,
                )
                self._authenticate(transport, ep, deadline)
            except BaseException:
                transport.close()
                raise
            return transport
        raise AssertionError("unreachable")

    def _prefer_known_key_types(self, transport: paramiko.Transport, ep: Endpoint) -> None:
        """Ask for the key type known_hosts has, as OpenSSH does, so a host with several
        keys is not mistaken for an unknown one."""
        keys, _ = self.known.lookup(ep)
        if not keys:
            return
        opts = transport.get_security_options()
        known_types = [t for t in opts.key_types if t in keys or _base_type(t) in keys]
        if known_types:
            opts.key_types = known_types + [t for t in opts.key_types if t not in known_types]

    def _agent_keys(self) -> list[paramiko.PKey]:
        if not os.environ.get("SSH_AUTH_SOCK"):
            return []
        try:
            if self._agent is None:
                self._agent = paramiko.Agent()
            return list(self._agent.get_keys())
        except (paramiko.SSHException, OSError):
            return []

    def _authenticate(self, transport: paramiko.Transport, ep: Endpoint, dl: _Deadline) -> None:
        tried: list[str] = []
        problems: list[str] = []
        candidates: list[tuple[str, paramiko.PKey]] = []
        files = list(ep.identity_files) or [
            p for p in map(os.path.expanduser, _DEFAULT_IDENTITIES) if os.path.isfile(p)
        ]
        if not (ep.identities_only and files):
            candidates += [("ssh-agent key", k) for k in self._agent_keys()]
        for path in files:
            if not os.path.isfile(path):
                continue
            key = _load_key(path)
            if isinstance(key, str):
                problems.append(key)
            else:
                candidates.append((path, key))
        for label, key in candidates:
            dl.left("authenticating", ep.alias)
            try:
                transport.auth_publickey(ep.user, key)
            except paramiko.AuthenticationException:
                tried.append(label)
                continue
            except (paramiko.SSHException, OSError) as exc:
                raise HostError(ep.alias, f"authentication error at {ep.label}: {exc}") from None
            if transport.is_authenticated():
                return
        detail = ", ".join(tried) if tried else "no usable key (agent empty, no identity file)"
        if problems:
            detail += "; skipped " + "; ".join(problems)
        raise HostError(
            ep.alias,
            f"authentication failed for {ep.label} (tried: {detail}). migcheck uses public "
            "keys from ssh-agent, --identity and IdentityFile; it never asks for passwords",
        )

    # --- the one exec ------------------------------------------------------------------
    def run_probe(self, ref: HostRef, script: str) -> str:
        """Connect, run the probe once, and return its stdout; HostError on any failure."""
        settings = self.settings
        ep = resolve(ref, settings, self.config)
        deadline = _Deadline(settings.timeout)
        if self.keep_connections:
            transport, ep = self.connect(ref)
            return self._exec(transport, ep, script, deadline)
        transport = self._connect(ep, deadline)
        try:
            return self._exec(transport, ep, script, deadline)
        finally:
            transport.close()

    def connect(self, ref: HostRef) -> tuple[paramiko.Transport, Endpoint]:
        """An authenticated connection to ``ref``. With ``keep_connections`` it is the
        session's (closed by :meth:`close`, reused by every call for the same host);
        otherwise the caller closes it."""
        if self.keep_connections:
            with self._kept_lock:
                for kept in self._kept.get(ref, []):
                    if kept[0].is_active():
                        return kept
        ep = resolve(ref, self.settings, self.config)
        transport = self._connect(ep, _Deadline(self.settings.timeout))
        if self.keep_connections:
            with self._kept_lock:
                self._kept.setdefault(ref, []).append((transport, ep))
        return transport, ep

    def owns(self, transport: paramiko.Transport) -> bool:
        """True when :meth:`close` closes ``transport`` (a kept connection)."""
        with self._kept_lock:
            return any(t is transport for kept in self._kept.values() for t, _ in kept)

    def start_agent(
        self, transport: paramiko.Transport, ep: Endpoint, program: str, timeout: float
    ) -> paramiko.Channel:
        """A channel running ``program`` as the trial agent, its stdin left open."""
        command = REMOTE_AGENT_COMMAND_SUDO if self.settings.sudo else REMOTE_AGENT_COMMAND
        data = program.encode("utf-8")
        try:
            chan = transport.open_session(timeout=timeout)
            chan.settimeout(timeout)
            chan.exec_command(command)
            chan.sendall(b"%d\n" % len(data) + data)
        except (paramiko.SSHException, OSError) as exc:
            raise HostError(ep.alias, f"could not start the trial agent: {exc}") from None
        return chan

    def _exec(self, t: paramiko.Transport, ep: Endpoint, script: str, dl: _Deadline) -> str:
        command = REMOTE_COMMAND_SUDO if self.settings.sudo else REMOTE_COMMAND
        try:
            chan = t.open_session(timeout=dl.left("opening a session", ep.alias))
            chan.settimeout(dl.left("starting the probe", ep.alias))
            chan.exec_command(command)
            chan.sendall(script.encode("utf-8"))
            chan.shutdown_write()
        except HostError:
            raise
        except (paramiko.SSHException, OSError) as exc:
            raise HostError(ep.alias, f"could not start the probe: {exc}") from None
        out, err = self._drain(chan, ep, dl)
        if not chan.status_event.wait(dl.left("waiting for the probe to exit", ep.alias)):
            raise HostError(ep.alias, f"the probe did not exit within {dl.seconds:g} s")
        status = chan.recv_exit_status()
        chan.close()
        err_text = err.decode("utf-8", "replace").strip()[-STDERR_TAIL:]
        if status != 0:
            raise HostError(ep.alias, _explain_exit(status, err_text, self.settings.sudo))
        return out.decode("utf-8", "replace")

    def _drain(self, chan: paramiko.Channel, ep: Endpoint, dl: _Deadline) -> tuple[bytes, bytes]:
        """Read stdout and stderr together until EOF: sequential reads deadlock on big
        outputs. The output cap bounds memory against a hostile host."""
        out = bytearray()
        err = bytearray()
        cap = self.settings.max_output
        while True:
            remaining = dl.end - time.monotonic()
            if remaining <= 0:
                chan.close()
                raise HostError(
                    ep.alias,
                    f"the probe did not finish within {dl.seconds:g} s "
                    f"({len(out)} bytes received; raise --timeout if the host is slow)",
                )
            select.select([chan], [], [], min(remaining, 0.5))
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                del err[:-65536]
            while chan.recv_ready():
                out += chan.recv(1 << 20)
                if len(out) > cap:
                    chan.close()
                    raise HostError(
                        ep.alias, f"the probe printed more than {cap} bytes; output cut off"
                    )
            # Closed can come with data still buffered (it all arrived since the reads above).
            if (chan.eof_received or chan.closed) and not (
                chan.recv_ready() or chan.recv_stderr_ready()
            ):
                return bytes(out), bytes(err)


def _explain_exit(status: int, stderr: str, sudo: bool) -> str:
    if sudo and ("password is required" in stderr or "a terminal is required" in stderr):
        return (
            "sudo needs a password on this host; allow the probe's Python with NOPASSWD in "
            "sudoers, or run without --sudo"
        )
    if status == NO_PYTHON_EXIT and "migcheck: no python" in stderr:
        return "no Python 3 on the host (tried python3, /usr/libexec/platform-python, python)"
    if "SyntaxError" in stderr:
        return f"the host's Python is too old for the probe (needs 3.6+): {stderr[-200:]}"
    if status == -1:
        return "the connection closed before the probe reported an exit status"
    return f"the probe failed (exit {status}): {stderr or '(no stderr)'}"


def _base_type(key_type: str) -> str:
    # rsa-sha2-256/512 are signature algorithms for an ssh-rsa key.
    return "ssh-rsa" if key_type.startswith("rsa-sha2-") else key_type


def _replace_jump(ep: Endpoint, jump: str) -> Endpoint:
    from dataclasses import replace

    return replace(ep, proxy_jump=jump, proxy_command=None)


@contextlib.contextmanager
def session(settings: SshSettings) -> Iterator[SshSession]:
    s = SshSession(settings)
    try:
        yield s
    finally:
        s.close()
