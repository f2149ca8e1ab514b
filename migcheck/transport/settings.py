"""SSH settings, importable without paramiko (offline commands must not pay for it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Real facts documents are ~100-200 KB; the cap only has to stop a hostile host.
DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024


@dataclass(frozen=True)
class SshSettings:
    config_file: Path | None = None  # None: ~/.ssh/config when it exists
    identities: tuple[str, ...] = ()  # --identity, tried before ssh_config's IdentityFile
    user: str | None = None  # --user/-l, when HOST has no user@
    port: int | None = None  # -p, when HOST has no :port
    jump: str | None = None  # -J, ssh's ProxyJump for the destinations (not the jump hosts)
    options: tuple[tuple[str, str], ...] = ()  # --ssh-option Key=Value, ssh's -o
    accept_new_host_keys: bool = False
    sudo: bool = False
    timeout: float = 30.0  # deadline for the whole exchange with one host
    connect_attempts: int = 5  # 100 at once vs MaxStartups 10:30:60: 3 lost ~2%, 5 none
    max_output: int = DEFAULT_MAX_OUTPUT
