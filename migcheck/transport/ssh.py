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
import logging
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migcheck.errors import HostError
from migcheck.hosts import HostRef
from migcheck.transport._paramiko import paramiko
from migcheck.transport.settings import SshSettings
from migcheck.transport.sshconfig import SshConfig, SshConfigError

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
# The SSH steps per host (``--verbose`` shows them on stderr, like ``ssh -v``).
log = logging.getLogger("migcheck.ssh")


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

    hash_known_hosts: bool = False

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH names this host in known_hosts: ``HostKeyAlias`` exactly as given
        (sshconnect.c uses options.host_key_alias as is, no port), else ``[host]:port``
        off port 22."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def load_ssh_config(path: Path | None) -> SshConfig:
    """``-F FILE`` alone, else ``~/.ssh/config`` then the system file, as ``ssh`` reads them
    (resolution in :mod:`migcheck.transport.sshconfig`, checked against ``ssh -G``)."""
    try:
        return SshConfig.load(path)
    except SshConfigError as exc:
        raise HostError(str(path), str(exc)) from None


def resolve(
    ref: HostRef, settings: SshSettings, config: SshConfig, *, hop: bool = False
) -> Endpoint:
    """Apply ssh_config to a HOST as ``ssh -G`` does; the HOST string's user and port win,
    then ``-l``/``-p``/``--ssh-option``/``-J``. A jump host (``hop``) gets neither the
    destination's port, options nor ``-J``: ssh connects to it with its own config."""
    options = list(settings.options)
    if settings.jump and not hop:
        options.insert(0, ("ProxyJump", settings.jump))
    try:
        r = config.resolve(
            ref.name,
            user=ref.user or settings.user,
            port=ref.port or (None if hop else settings.port),
            identities=settings.identities,
            options=() if hop else options,
        )
    except SshConfigError as exc:
        raise HostError(ref.name, str(exc)) from None
    for step in r.steps:
        log.info("%s: %s", ref.name, step)
    for what in r.ignored:
        log.info("%s: ignored (migcheck does not use it): %s", ref.name, what)
    return Endpoint(
        alias=ref.name,
        hostname=r.hostname,
        port=r.port,
        user=r.user,
        identity_files=tuple(r.identity_paths),
        identities_only=r.identities_only,
        proxy_jump=r.proxy_jump,
        proxy_command=r.proxy_command,
        known_hosts_files=tuple(r.known_hosts_files),
        host_key_alias=r.host_key_alias,
        hash_known_hosts=r.hash_known_hosts,
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
    """known_hosts files read once per session; new keys appended under a lock.

    paramiko skips marker lines, so they are read here: a key listed ``@revoked`` is
    refused for every host (wider than OpenSSH's per-pattern match: fail closed), and a
    ``@cert-authority`` line for the host makes it unknown with a message, because
    migcheck does not verify host certificates."""

    def __init__(self) -> None:
        self._cache: dict[str, paramiko.HostKeys] = {}
        self._markers: dict[str, list[tuple[str, str, str]]] = {}
        self._lock = threading.Lock()

    def _load(self, path: str) -> paramiko.HostKeys:
        with self._lock:
            if path not in self._cache:
                self._cache[path], self._markers[path] = _read_known_hosts(path)
            return self._cache[path]

    def markers(self, endpoint: Endpoint) -> list[tuple[str, str, str, str]]:
        """(marker, patterns, base64 key, file) of every marker line in the files."""
        out = []
        for path in endpoint.known_hosts_files:
            self._load(path)
            out += [(m, names, blob, path) for m, names, blob in self._markers.get(path, [])]
        return out

    def lookup(self, endpoint: Endpoint) -> tuple[dict[str, paramiko.PKey], str | None]:
        """Known keys for the endpoint by key type, and the file they came from."""
        for path in endpoint.known_hosts_files:
            found = self._load(path).lookup(endpoint.known_hosts_name)
            if found:
                return dict(found), path
        return {}, None

    def add(self, endpoint: Endpoint, key: paramiko.PKey) -> str:
        """Append the key as ``ssh`` does (hashed with ``HashKnownHosts yes``). Under an
        flock across processes: one write per line, a missing trailing newline added
        first, and a key another process just recorded is not added twice."""
        import fcntl

        path = endpoint.known_hosts_files[0]
        name = endpoint.known_hosts_name
        shown = paramiko.HostKeys.hash_host(name) if endpoint.hash_known_hosts else name
        line = f"{shown} {key.get_name()} {key.get_base64()}\n"
        with self._lock:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                current, _ = _read_known_hosts(path)
                if (current.lookup(name) or {}).get(key.get_name()) == key:
                    return path  # recorded meanwhile by another migcheck
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = "\n" + line
                os.write(fd, line.encode())
            finally:
                os.close(fd)  # releases the flock
            self._cache.pop(path, None)
        return path


def _read_known_hosts(path: str) -> tuple[paramiko.HostKeys, list[tuple[str, str, str]]]:
    """Keys and marker lines, line by line: paramiko's own loader raises on the first line
    it cannot parse (a marker, a bad key), which would lose every other key in the file."""
    keys = paramiko.HostKeys()
    markers: list[tuple[str, str, str]] = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return keys, markers
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].startswith("@"):
            if len(words) >= 4 and words[0] in ("@revoked", "@cert-authority"):
                markers.append((words[0], words[1], words[3]))
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except Exception:  # one bad line costs only itself, as in OpenSSH
            continue
        if entry is not None:
            keys._entries.append(entry)  # paramiko has no public add for a parsed entry
    return keys, markers


def _check_markers(endpoint: Endpoint, key: paramiko.PKey, known: KnownHosts) -> bool:
    """Raise for a revoked key or a host vouched for by a certificate authority; True
    when a @cert-authority line names the host (and its plain key is not known)."""
    blob = key.get_base64()
    name = endpoint.known_hosts_name
    ca = False
    for marker, patterns, mblob, path in known.markers(endpoint):
        if marker == "@revoked" and mblob == blob:
            raise HostError(
                endpoint.alias,
                f"the host key of {name} ({_fingerprint(key)}) is marked @revoked in {path}; "
                "refused",
            )
        if marker == "@cert-authority" and _matches(patterns, name, endpoint.hostname):
            ca = True
    return ca


def _matches(patterns: str, *names: str) -> bool:
    """OpenSSH's match_pattern: only ``*`` and ``?`` are special (``[`` is literal, as in
    ``[host]:port``). Negations are ignored: a broader match only makes more hosts
    unknown."""
    import re

    for pattern in patterns.split(","):
        if not pattern or pattern.startswith("!"):
            continue
        rx = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
        if any(re.fullmatch(rx, n.lower()) for n in names):
            return True
    return False


def verify_host_key(
    endpoint: Endpoint, key: paramiko.PKey, known: KnownHosts, accept_new: bool
) -> None:
    """Refuse revoked, unknown (unless accept_new) and changed keys, with the command
    that fixes it."""
    ca = _check_markers(endpoint, key, known)
    keys, path = known.lookup(endpoint)
    name = endpoint.known_hosts_name
    if not keys and ca:
        raise HostError(
            endpoint.alias,
            f"known_hosts trusts a @cert-authority for {name}, and migcheck does not verify "
            f"SSH host certificates; the host is unknown. Add its plain host key "
            f"({_fingerprint(key)}) to {endpoint.known_hosts_files[0]} after verifying it",
        )
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


def _resolve_within(ep: Endpoint, deadline: _Deadline) -> list[str]:
    """getaddrinfo has no timeout: run it in a daemon thread and stop waiting at the
    deadline (a hung resolver must not outlast --timeout). Names the codec refuses (a
    label over 63 characters) are a clear error, not an idna traceback."""
    result: list[Any] = []

    def work() -> None:
        try:
            result.append(socket.getaddrinfo(ep.hostname, ep.port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            result.append(exc)

    thread = threading.Thread(target=work, name="resolve", daemon=True)
    thread.start()
    thread.join(deadline.left(f"resolving {ep.hostname!r}", ep.alias))
    if not result:
        deadline.left(f"resolving {ep.hostname!r}", ep.alias)  # raises once past the end
        raise HostError(
            ep.alias, f"timed out after {deadline.seconds:g} s while resolving {ep.hostname!r}"
        )
    answer = result[0]
    if isinstance(answer, UnicodeError):
        raise HostError(ep.alias, f"host name {ep.hostname!r} is not a valid DNS name")
    if isinstance(answer, OSError) or not answer:
        raise HostError(ep.alias, f"cannot resolve host name {ep.hostname!r}")
    return [info[4][0] for info in answer]


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
        addresses = _resolve_within(ep, deadline)
        try:
            return socket.create_connection(
                (addresses[0], ep.port), timeout=deadline.left("connecting", ep.alias)
            )
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
                jump_ep = resolve(ref, self.settings, self.config, hop=True)
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
    def run_probe(self, ref: HostRef, script: str | Callable[[dict[str, Any]], str]) -> str:
        """Connect, run the probe once, and return its stdout; HostError on any failure.

        ``script`` may be a function of the answering host's identity (see ``identity``),
        called after the host key is verified and before the one exec: the probe cache is
        keyed on the machine that answered, not on the name typed."""
        settings = self.settings
        ep = resolve(ref, settings, self.config)
        deadline = _Deadline(settings.timeout)
        log.info("%s: connecting to %s", ref.name, ep.label)
        if self.keep_connections:  # a trial: the probe's connection stays for its agents
            transport, ep = self.connect(ref)
            if callable(script):
                script = script(self.identity(transport, ep))
            return self._exec(transport, ep, script, deadline)
        transport = self._connect(ep, deadline)
        log.info("%s: authenticated as %s; running the probe", ref.name, ep.user)
        # paramiko waits for the exec request's reply without a timeout: at the deadline
        # the watchdog closes the transport, which ends every wait on it.
        watchdog = threading.Timer(max(0.0, deadline.end - time.monotonic()), transport.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            if callable(script):
                script = script(self.identity(transport, ep))
            return self._exec(transport, ep, script, deadline)
        except HostError:
            raise
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if time.monotonic() >= deadline.end:
                raise HostError(
                    ep.alias, f"timed out after {deadline.seconds:g} s waiting for the probe"
                ) from None
            raise HostError(ep.alias, f"SSH session failed: {exc}") from None
        finally:
            watchdog.cancel()
            transport.close()

    def identity(self, transport: paramiko.Transport, ep: Endpoint) -> dict[str, Any]:
        """Who answered: the peer address (or the proxy route), port, user, the ssh_config
        file in effect and the host key's SHA-256 fingerprint."""
        import base64
        import hashlib

        address: str
        if ep.proxy_jump:
            address = f"via {ep.proxy_jump} to {ep.hostname}"
        elif ep.proxy_command:
            address = f"proxycommand {ep.proxy_command}"
        else:
            try:
                address = str(transport.sock.getpeername()[0])
            except (OSError, AttributeError, IndexError):
                address = ep.hostname
        key = transport.get_remote_server_key()
        digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
        config = self.settings.config_file or Path("~/.ssh/config").expanduser()
        return {
            "address": address,
            "port": ep.port,
            "user": ep.user,
            "ssh_config": str(Path(config).resolve()),
            "host_key": f"{key.get_name()} SHA256:{digest}",
        }

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
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if time.monotonic() >= dl.end:
                raise HostError(
                    ep.alias, f"timed out after {dl.seconds:g} s while starting the probe"
                ) from None
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
            try:
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
            except (OSError, EOFError, paramiko.SSHException):
                if time.monotonic() < dl.end:
                    raise
                continue  # the deadline's watchdog closed the transport: reported above
            # Closed can come with data still buffered (it all arrived since the reads above).
            if (chan.eof_received or chan.closed) and not (
                chan.recv_ready() or chan.recv_stderr_ready()
            ):
                if not chan.eof_received and time.monotonic() >= dl.end:
                    continue  # closed by the deadline's watchdog: report it as such above
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
