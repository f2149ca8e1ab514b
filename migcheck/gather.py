"""Gather facts for HOSTs: load saved files, probe this machine, (later) probe over SSH."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timezone
from typing import Any

from migcheck import __version__
from migcheck.errors import HostError, InputError
from migcheck.facts import Facts, facts_from_probe_output, load_facts
from migcheck.hosts import HostRef, parse_host


def gather(host: HostRef | str, *, timeout: float = 30.0, qemu: str | None = None) -> Facts:
    """Facts for one host; raises HostError (exit 3) or InputError (exit 2)."""
    ref = parse_host(host) if isinstance(host, str) else host
    if ref.kind == "file":
        return load_facts(ref.name)
    config: dict[str, Any] = {"qemu_timeout": max(1.0, timeout - 5.0)}
    if qemu:
        config["qemu"] = qemu
    started = time.monotonic()
    if ref.kind == "local":
        from migcheck.transport.local import run_local_probe

        output = run_local_probe(config, timeout=timeout)
        hostname = socket.gethostname()
    else:
        raise HostError(ref.text, "SSH hosts are not supported yet in this build")
    facts = facts_from_probe_output(output, ref.text)
    doc = dict(facts.doc)
    doc["host"] = {
        "name": hostname if ref.kind == "local" else ref.name,
        "target": ref.text,
        "transport": ref.kind,
        "gathered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "gather_seconds": round(time.monotonic() - started, 3),
        "migcheck_version": __version__,
    }
    return Facts(doc, ref.text)


def file_name_for(facts: Facts) -> str:
    """A safe file name for saved facts: the host name with path characters replaced."""
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in facts.name)
    if not name or name.startswith("."):
        raise InputError(f"cannot derive a file name from host name {facts.name!r}")
    return f"{name}.json"
