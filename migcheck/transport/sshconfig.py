"""ssh_config resolved the way OpenSSH's ``ssh`` resolves it (``ssh -G``), without paramiko.

paramiko's ``SSHConfig`` differs from OpenSSH where it matters to an operator: it ignores
``Include``, merges values instead of taking the first one obtained, and knows few tokens.
This module follows OpenSSH 9.x ``readconf.c`` and ``ssh.c``:

- every keyword takes the **first** value obtained (command line, then each file in order);
  ``IdentityFile`` and ``CertificateFile`` accumulate;
- ``Host`` patterns (``*``, ``?``, ``!negation``) match the host as typed, ``Match`` supports
  ``all``, ``host``, ``originalhost``, ``user``, ``localuser``, ``exec`` (run by ``/bin/sh``,
  as ssh does), ``canonical``/``final`` (a second pass against the resolved HostName) and
  ``!`` before a criterion;
- ``Include`` (globs; relative to ``~/.ssh`` for user files, ``/etc/ssh`` for the system
  file) is conditional on the enclosing block, as in OpenSSH;
- ``HostName`` expands ``%h``; ``UserKnownHostsFile`` expands ``~``, tokens and ``${VAR}``;
  ``IdentityFile``/``CertificateFile`` are kept as written (what ``ssh -G`` prints) and
  expanded separately (:attr:`Resolved.identity_paths`), as ssh does when it loads them.

``tests/test_ssh_conformance.py`` compares the result with the real ``ssh -G`` on a corpus.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import hashlib
import os
import re
import shlex
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYSTEM_CONFIG = Path("/etc/ssh/ssh_config")
DEFAULT_IDENTITIES = (
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
)
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
_MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH

# Keywords whose lines accumulate instead of "first obtained wins".
_MULTI = {"identityfile", "certificatefile"}
# Keywords migcheck uses; everything else in a matching block is reported as ignored.
USED = {
    "hostname",
    "user",
    "port",
    "identityfile",
    "identitiesonly",
    "certificatefile",
    "proxyjump",
    "proxycommand",
    "userknownhostsfile",
    "globalknownhostsfile",
    "hostkeyalias",
    "stricthostkeychecking",
    "hashknownhosts",
}

# ``--ssh-option`` keys migcheck cannot honour without changing where it connects, how it
# authenticates or how it trusts host keys: refused by name rather than silently dropped.
# (A value migcheck does implement is accepted: see :func:`check_option`.)
REFUSED = {
    "canonicalizehostname": "migcheck does not canonicalize host names",
    "canonicaldomains": "migcheck does not canonicalize host names",
    "passwordauthentication": "migcheck never asks for passwords (keys and ssh-agent only)",
    "kbdinteractiveauthentication": "migcheck never asks for passwords (keys and ssh-agent only)",
    "challengeresponseauthentication": "migcheck never asks for passwords",
    "gssapiauthentication": "migcheck does not implement GSSAPI authentication",
    "hostbasedauthentication": "migcheck does not implement host-based authentication",
    "pubkeyauthentication": "migcheck authenticates with public keys only",
    "preferredauthentications": "migcheck authenticates with public keys only",
    "pkcs11provider": "migcheck does not load PKCS#11 keys",
    "securitykeyprovider": "migcheck does not load security keys",
    "verifyhostkeydns": "migcheck verifies host keys against known_hosts only",
    "knownhostscommand": "migcheck verifies host keys against known_hosts files only",
    "updatehostkeys": "migcheck never rewrites known_hosts beyond --accept-new-host-keys",
    "remotecommand": "migcheck runs its own probe as the remote command",
    "localcommand": "migcheck runs no local commands for a connection",
    "permitlocalcommand": "migcheck runs no local commands for a connection",
    "addressfamily": "migcheck resolves host names with the system resolver",
    "bindaddress": "migcheck does not choose the local address",
    "bindinterface": "migcheck does not choose the local interface",
    "tunnel": "migcheck opens no tunnel device",
}


class SshConfigError(ValueError):
    """A config file that cannot be read or an option migcheck refuses; one paragraph."""


@dataclass
class Resolved:
    """What ``ssh -G`` would use to connect, plus where each decision came from."""

    host: str  # as typed (the alias)
    hostname: str
    user: str
    port: int
    identity_files: list[str]  # as written (``ssh -G`` prints them unexpanded)
    identity_paths: list[str]  # expanded: the files ssh would try, in order
    certificate_files: list[str]
    proxy_jump: str | None
    proxy_command: str | None
    user_known_hosts: list[str]  # expanded
    global_known_hosts: list[str]
    host_key_alias: str | None
    identities_only: bool
    strict_host_key_checking: str | None
    hash_known_hosts: bool = False  # new known_hosts lines are hashed (Debian turns it on)
    steps: list[str] = field(default_factory=list)  # for --verbose, like ``ssh -v``
    ignored: list[str] = field(default_factory=list)  # keywords migcheck does not use

    @property
    def known_hosts_files(self) -> list[str]:
        return [*self.user_known_hosts, *self.global_known_hosts]


@dataclass
class _State:
    host_arg: str
    original_host: str
    options: dict[str, list[str]]  # keyword -> args of the first line (or all, for _MULTI)
    steps: list[str]
    ignored: list[str]
    final_pass: bool = False
    want_final: bool = False


def _local_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (containers without passwd)
        return "root"


def _split(line: str) -> list[str]:
    """Keyword and arguments as OpenSSH splits them: whitespace or one ``=`` after the
    keyword, double or single quotes group words."""
    m = re.match(r"\s*([^\s=]+)\s*(?:=\s*|\s+|$)(.*)$", line)
    if not m:
        return []
    key, rest = m.group(1), m.group(2).strip()
    try:
        args = shlex.split(rest, comments=False, posix=True)
    except ValueError:
        raise SshConfigError(f"unbalanced quotes in {line.strip()!r}") from None
    return [key, *args]


@functools.lru_cache(maxsize=65536)
def _split_line(line: str) -> tuple[str, ...]:
    """:func:`_split` of one config line, kept: every host resolved walks every line of
    the files again, and a fleet's ssh_config can hold a block per host (500 hosts over 500
    blocks: 29 ms a host when each line was split anew)."""
    return tuple(_split(line))


def _pattern_match(name: str, patterns: Iterable[str]) -> bool:
    """OpenSSH's match_pattern_list: a negated pattern that matches wins (no match)."""
    got = False
    for pat in patterns:
        for p in pat.split(","):
            neg = p.startswith("!")
            p = p[1:] if neg else p
            if fnmatch.fnmatchcase(name, p):
                if neg:
                    return False
                got = True
    return got


def _host_line_match(host: str, patterns: Iterable[str]) -> bool:
    """A ``Host`` line: each word is one pattern (no comma lists), matched case-sensitively
    against the host as typed (``Host WEB`` does not match ``web``)."""
    got = False
    for pat in patterns:
        neg = pat.startswith("!")
        if fnmatch.fnmatchcase(host, pat[1:] if neg else pat):
            if neg:
                return False
            got = True
    return got


def _host_match(host: str, patterns: Iterable[str]) -> bool:
    # ``Match host``: OpenSSH's match_hostname, a comma list compared in lower case.
    return _pattern_match(host.lower(), [p.lower() for p in patterns])


@dataclass
class SshConfig:
    """The config files ssh reads, in order: ``-F FILE`` alone, or the user's file then the
    system's. Each :meth:`resolve` re-reads nothing: file texts are loaded once."""

    files: list[tuple[Path, bool]]  # (path, is the user's config: relative Include base)
    home: Path = field(default_factory=lambda: Path(os.path.expanduser("~")))
    _texts: dict[Path, list[str]] = field(default_factory=dict)
    _split_files: dict[Path, tuple[list[str], list[Any], list[int]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None, *, system: Path | None = SYSTEM_CONFIG) -> SshConfig:
        """``path`` (``-F``) alone, else ``~/.ssh/config`` and the system file, as ssh."""
        if path is not None:
            cfg = cls([(Path(path), True)])
            cfg._read(Path(path), must_exist=True)
            return cfg
        files = [(Path(os.path.expanduser("~/.ssh/config")), True)]
        if system is not None:
            files.append((system, False))
        return cls(files)

    def _read(self, path: Path, must_exist: bool = False) -> list[str] | None:
        if path in self._texts:
            return self._texts[path]
        try:
            lines = path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            if must_exist:
                raise SshConfigError(f"ssh config {path}: no such file") from None
            return None
        except OSError as exc:
            raise SshConfigError(f"ssh config {path}: cannot read: {exc.strerror}") from None
        self._texts[path] = lines
        return lines

    # --- resolution ---------------------------------------------------------------------
    def resolve(
        self,
        host: str,
        *,
        user: str | None = None,
        port: int | None = None,
        identities: Iterable[str] = (),
        options: Iterable[tuple[str, str]] = (),
    ) -> Resolved:
        """Resolve ``host`` as ``ssh -G [-l user] [-p port] [-i id]... [-o K=V]... host``."""
        st = _State(host, host, {}, [], [])
        # Command-line values come first, so they win (OpenSSH reads them before any file).
        if user:
            st.options["user"] = [user]
        if port:
            st.options["port"] = [str(port)]
        ids = [str(i) for i in identities]
        if ids:
            st.options["identityfile"] = list(ids)
        for key, value in options:
            self._apply(st, _split(f"{key} {value}"), "command line", True)
        self._pass(st)
        if st.want_final:
            # OpenSSH re-reads every file against the resolved HostName ("Match final").
            hn = st.options.get("hostname")
            st.host_arg = _expand(hn[0], {"h": st.original_host}) if hn else st.original_host
            st.final_pass = True
            st.steps.append(f"re-parsing configuration for {st.host_arg} (Match final)")
            self._pass(st)
        return self._finish(st)

    def _pass(self, st: _State) -> None:
        for path, is_user in self.files:
            lines = self._read(path)
            if lines is None:
                continue
            st.steps.append(f"reading configuration data {path}")
            self._file(st, path, lines, is_user, active=True, never_match=False, depth=0)

    def _file(
        self,
        st: _State,
        path: Path,
        lines: list[str],
        is_user: bool,
        *,
        active: bool,
        never_match: bool,
        depth: int,
    ) -> bool:
        prepared, resume = self._prepared(path, lines)
        i = 0
        while i < len(prepared):
            active = self._line(st, path, prepared[i], is_user, active, never_match, depth)
            # While no block applies, option lines do nothing: the walk goes on at the next
            # Host, Match or Include line (or one that cannot be split, which raises there).
            i = i + 1 if active else resume[i]
        return active

    def _prepared(
        self, path: Path, lines: list[str]
    ) -> tuple[list[tuple[int, str, tuple[str, ...] | None, str | None]], list[int]]:
        """The file's meaningful lines split once: (line number, text, words or None when
        they cannot be split, keyword), and for each the index of the next line a walk
        outside any matching block must not skip (Host, Match, Include, unsplittable)."""
        hit = self._split_files.get(path)
        if hit is not None and hit[0] is lines:
            return hit[1], hit[2]
        prepared: list[tuple[int, str, tuple[str, ...] | None, str | None]] = []
        for lineno, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                words: tuple[str, ...] | None = _split_line(line)
            except SshConfigError:
                words = None
            if words == ():
                continue
            prepared.append((lineno, line, words, words[0].lower() if words else None))
        resume = [0] * len(prepared)
        upcoming = len(prepared)
        for i in range(len(prepared) - 1, -1, -1):
            resume[i] = upcoming
            if prepared[i][3] in (None, "host", "match", "include"):
                upcoming = i
        self._split_files[path] = (lines, prepared, resume)
        return prepared, resume

    def _line(
        self,
        st: _State,
        path: Path,
        entry: tuple[int, str, tuple[str, ...] | None, str | None],
        is_user: bool,
        active: bool,
        never_match: bool,
        depth: int,
    ) -> bool:
        """One config line; returns whether the lines after it apply."""
        lineno, line, words, key = entry
        if words is None:
            _split(line)  # raises SshConfigError, as splitting it always has
            return active
        if key == "host":
            active = not never_match and _host_line_match(st.host_arg, words[1:])
            if active:
                where = f"{path} line {lineno}"
                st.steps.append(f"{where}: Host {' '.join(words[1:])} matches {st.host_arg}")
            return active
        if not active and key not in ("match", "include"):
            return active  # an option of a block that does not apply to this host
        where = f"{path} line {lineno}"
        if key == "match":
            return not never_match and self._match(st, list(words[1:]), where)
        if key == "include":
            if depth >= _MAX_INCLUDE_DEPTH:
                raise SshConfigError(f"{where}: Include nested too deeply")
            base = (
                self.home / ".ssh" if is_user else SYSTEM_CONFIG.parent
            )  # OpenSSH's rule for relative Include paths
            for pattern in words[1:]:
                pattern = os.path.expanduser(pattern)
                if not os.path.isabs(pattern):
                    pattern = str(base / pattern)
                for inc in sorted(glob.glob(pattern)):
                    inc_lines = self._read(Path(inc))
                    if inc_lines is None:
                        continue
                    st.steps.append(f"{where}: including {inc}")
                    # Host lines inside an inactive block's include never match.
                    self._file(
                        st,
                        Path(inc),
                        inc_lines,
                        is_user,
                        active=active,
                        never_match=never_match or not active,
                        depth=depth + 1,
                    )
            return active
        self._apply(st, list(words), where, False)
        return active

    def _match(self, st: _State, args: list[str], where: str) -> bool:
        """OpenSSH's match_cfg_line for the criteria migcheck supports."""
        if not args:
            raise SshConfigError(f"{where}: Match needs criteria")
        opts = st.options
        host = st.host_arg
        if not st.final_pass and "hostname" in opts:
            host = _expand(opts["hostname"][0], {"h": st.host_arg})
        ruser = opts["user"][0] if "user" in opts else _local_user()
        result = True
        i = 0
        while i < len(args):
            crit = args[i].lower()
            negate = crit.startswith("!")
            crit = crit.lstrip("!")
            i += 1
            if crit == "all":
                if i < len(args) or negate or len(args) > 1:
                    raise SshConfigError(f"{where}: 'Match all' must stand alone")
                return True
            if crit in ("canonical", "final"):
                if crit == "final":
                    st.want_final = True
                hit = st.final_pass
            else:
                if i >= len(args):
                    raise SshConfigError(f"{where}: Match {crit} needs an argument")
                arg = args[i]
                i += 1
                if crit == "host":
                    hit = _host_match(host, [arg])
                elif crit == "originalhost":
                    hit = _host_match(st.original_host, [arg])
                elif crit == "user":
                    hit = _pattern_match(ruser, [arg])
                elif crit == "localuser":
                    hit = _pattern_match(_local_user(), [arg])
                elif crit == "exec":
                    if not result:
                        continue  # OpenSSH skips exec once the line cannot match
                    cmd = _expand(arg, _tokens(st, host, ruser))
                    done = subprocess.run(
                        ["/bin/sh", "-c", cmd],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        check=False,
                    )
                    hit = done.returncode == 0
                else:
                    raise SshConfigError(
                        f"{where}: Match {crit} is not supported by migcheck "
                        "(supported: all, host, originalhost, user, localuser, exec, "
                        "canonical, final)"
                    )
            if hit == negate:
                result = False
        if result:
            st.steps.append(f"{where}: Match {' '.join(args)} matches")
        return result

    def _apply(self, st: _State, words: list[str], where: str, cmdline: bool) -> None:
        key, args = words[0].lower(), words[1:]
        if key in ("host", "match", "include") and cmdline:
            raise SshConfigError(f"--ssh-option {words[0]}: not an option")
        if not args:
            raise SshConfigError(f"{where}: {words[0]} needs a value")
        opts = st.options
        if key not in USED:
            st.ignored.append(f"{words[0]} ({where})")
            return
        if key in _MULTI:
            opts.setdefault(key, []).extend(args[:1])
            return
        if key == "proxyjump" and "proxycommand" in opts:
            return  # whichever of the two comes first wins
        if key == "proxycommand" and "proxyjump" in opts:
            return
        if key not in opts:
            if key == "proxycommand":
                args = [" ".join(args)]
            opts[key] = args

    def _finish(self, st: _State) -> Resolved:
        o = st.options
        port = int(o["port"][0]) if "port" in o else 22
        user = o["user"][0] if "user" in o else _local_user()
        hostname = st.original_host
        if "hostname" in o:
            hostname = _expand(o["hostname"][0], {"h": st.original_host})
        hostname = hostname.lower()
        ids = list(o.get("identityfile", ())) or list(DEFAULT_IDENTITIES)
        tokens = _tokens(st, hostname, user, port)
        jump = o.get("proxyjump", [None])[0]
        pc = o.get("proxycommand", [None])[0]
        known = o.get("userknownhostsfile") or list(DEFAULT_USER_KNOWN_HOSTS)
        known = [_expand(_tilde(k), tokens) for k in known if k.lower() != "none"]
        glob_known = o.get("globalknownhostsfile") or list(DEFAULT_GLOBAL_KNOWN_HOSTS)
        res = Resolved(
            host=st.original_host,
            hostname=hostname,
            user=user,
            port=port,
            identity_files=ids,
            identity_paths=[_expand(_tilde(i), tokens) for i in ids if i.lower() != "none"],
            certificate_files=list(o.get("certificatefile", ())),
            proxy_jump=None if jump is None or jump.lower() == "none" else _jump_form(jump),
            proxy_command=None if pc is None or pc.lower() == "none" else _expand(pc, tokens),
            user_known_hosts=known,
            global_known_hosts=[k for k in glob_known if k.lower() != "none"],
            host_key_alias=o.get("hostkeyalias", [None])[0],
            identities_only=o.get("identitiesonly", ["no"])[0].lower() == "yes",
            strict_host_key_checking=o.get("stricthostkeychecking", [None])[0],
            hash_known_hosts=o.get("hashknownhosts", ["no"])[0].lower() == "yes",
            steps=st.steps,
            ignored=st.ignored,
        )
        res.steps.append(
            f"resolved {st.original_host}: {user}@{hostname}:{port}"
            + (f" via {res.proxy_jump}" if res.proxy_jump else "")
            + f", identities {', '.join(res.identity_paths) or '(none)'}"
            + f", known_hosts {' '.join(res.known_hosts_files)}"
        )
        return res


def _jump_form(jump: str) -> str:
    """ProxyJump as ssh keeps it: earlier hops as written, the last hop parsed (an
    ``ssh://user@host:port`` URI becomes ``user@host:port``)."""
    *extra, last = jump.split(",")
    if last.startswith("ssh://"):
        last = last[len("ssh://") :].rstrip("/")
    return ",".join([*extra, last])


def _tilde(path: str) -> str:
    return os.path.expanduser(path)


def _tokens(st: _State, host: str, ruser: str, port: int | None = None) -> dict[str, str]:
    if port is None:
        port = int(st.options["port"][0]) if "port" in st.options else 22
    local = socket.gethostname()
    conn = hashlib.sha1(f"{local}{host}{port}{ruser}".encode()).hexdigest()
    home = os.path.expanduser("~")
    return {
        "C": conn,
        "d": home,
        "h": host,
        "i": str(os.getuid()),
        "k": st.options.get("hostkeyalias", [st.original_host])[0],
        "L": local.split(".")[0],
        "l": local,
        "n": st.original_host,
        "p": str(port),
        "r": ruser,
        "u": _local_user(),
    }


def _expand(text: str, tokens: dict[str, str]) -> str:
    """OpenSSH's percent_expand plus ``${VAR}``; an unknown token is left as written."""

    def pct(m: re.Match[str]) -> str:
        c = m.group(1)
        if c == "%":
            return "%"
        return tokens.get(c, m.group(0))

    out = re.sub(r"%(.)", pct, text)
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: os.environ.get(m.group(1), ""), out)


def parse_option(text: str) -> tuple[str, str]:
    """``--ssh-option Key=Value`` (or ``Key Value``), checked against :data:`REFUSED`."""
    words = _split(text)
    if len(words) < 2:
        raise SshConfigError(f"--ssh-option {text!r}: give Key=Value, as ssh's -o")
    key, value = words[0], " ".join(words[1:])
    check_option(key, value)
    return key, value


def check_option(key: str, value: str) -> None:
    k = key.lower()
    if k in REFUSED:
        raise SshConfigError(f"--ssh-option {key}={value}: refused: {REFUSED[k]}")
    if k == "stricthostkeychecking" and value.lower() not in ("yes", "accept-new"):
        raise SshConfigError(
            f"--ssh-option {key}={value}: refused: migcheck always verifies host keys "
            "(yes, or accept-new: see --accept-new-host-keys)"
        )
    if k in ("host", "match", "include"):
        raise SshConfigError(f"--ssh-option {key}: not an option")
