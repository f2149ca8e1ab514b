"""HOST strings -> host references.

A HOST is ``local`` (this machine, no SSH), a path to a saved facts JSON file, or an SSH
destination ``[user@]name[:port]`` / ``ssh://[user@]name[:port]``. A string that names an
existing file, or ends in ``.json``, is a facts file; everything else is SSH.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from migcheck.errors import InputError

Kind = Literal["local", "file", "ssh"]

# RFC 1123 names, IPv4, or a bracketed IPv6 literal; ssh_config aliases are looser, so allow
# the characters OpenSSH accepts in a Host pattern that makes sense as a destination.
_NAME_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.%a-zA-Z]+\]|[A-Za-z0-9_.\-]+)$")
_USER_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class HostRef:
    kind: Kind
    text: str  # as the user wrote it, for messages
    name: str  # host name / alias, or the file path
    user: str | None = None
    port: int | None = None

    @property
    def label(self) -> str:
        return self.text


def parse_host(text: str) -> HostRef:
    """Parse one HOST argument; malformed strings are exit-2 input errors."""
    raw = text.strip()
    if not raw:
        raise InputError("HOST is empty: give 'local', a facts .json file, or [user@]name[:port]")
    if raw == "local":
        return HostRef("local", raw, "local")
    if raw.startswith("ssh://"):
        return _parse_ssh(raw, raw[len("ssh://") :].rstrip("/"))
    if raw.endswith(".json") or _is_file(raw) or "/" in raw:
        return HostRef("file", raw, raw)
    return _parse_ssh(raw, raw)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:  # e.g. ENAMETOOLONG: then it is no file of ours either
        return False


def _parse_ssh(text: str, rest: str) -> HostRef:
    user = None
    if "@" in rest:
        user, _, rest = rest.rpartition("@")
        if not _USER_RE.match(user):
            raise InputError(f"HOST {text!r}: {user!r} is not a valid user name")
    port = None
    m = re.match(r"^(\[[^\]]+\]|[^:]+)(?::(\d+))?$", rest)
    if not m:
        raise InputError(f"HOST {text!r}: expected [user@]name[:port]")
    name, port_text = m.group(1), m.group(2)
    if port_text is not None:
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise InputError(f"HOST {text!r}: port {port} is out of range 1-65535")
    if not _NAME_RE.match(name) or name.startswith("-"):
        raise InputError(f"HOST {text!r}: {name!r} is not a valid host name")
    if not name.startswith("["):
        _check_dns_shape(text, name)
    return HostRef("ssh", text, name.strip("[]"), user, port)


def _check_dns_shape(text: str, name: str) -> None:
    """RFC 1035 limits, checked here so a hostile name is exit 2, never an ``idna``
    codec error from the resolver: no empty label (``..``, a leading dot), labels of at
    most 63 characters, at most 253 in all (one trailing dot allowed, as in FQDNs)."""
    bare = name[:-1] if name.endswith(".") and len(name) > 1 else name
    if len(bare) > 253:
        raise InputError(f"HOST {text!r}: the name is longer than 253 characters")
    for label in bare.split("."):
        if not label:
            raise InputError(f'HOST {text!r}: {name!r} has an empty label (".." or a dot)')
        if len(label) > 63:
            raise InputError(f"HOST {text!r}: label {label[:20]!r}... is longer than 63 characters")
