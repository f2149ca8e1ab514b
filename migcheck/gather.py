"""Gather facts for HOSTs: saved files, this machine, or SSH; many hosts in parallel.

A failed host never costs the others their facts: results come back per host, each either
facts or the error that stopped it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from migcheck import __version__
from migcheck.errors import HostError, InputError, MigcheckError
from migcheck.facts import Facts, facts_from_probe_output, load_facts
from migcheck.hosts import HostRef, parse_host

if TYPE_CHECKING:
    from migcheck.transport.ssh import SshSession, SshSettings

DEFAULT_JOBS = 32


@dataclass(frozen=True)
class GatherOptions:
    timeout: float = 30.0
    qemu: str | None = None
    jobs: int = DEFAULT_JOBS
    ssh: SshSettings | None = None  # None: defaults (~/.ssh/config, strict host keys)


@dataclass
class HostResult:
    ref: HostRef
    facts: Facts | None = None
    error: MigcheckError | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.facts is not None


@dataclass
class Gatherer:
    """Gathers hosts; keeps one SSH session (config, known_hosts, bastions) for all."""

    options: GatherOptions = field(default_factory=GatherOptions)
    _ssh: SshSession | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def _session(self) -> SshSession:
        with self._lock:  # one session for all threads: bastions and known_hosts are shared
            return self._session_locked()

    def _session_locked(self) -> SshSession:
        if self._ssh is None:
            from migcheck.transport.ssh import SshSession, SshSettings

            settings = self.options.ssh or SshSettings()
            if settings.timeout != self.options.timeout:
                from dataclasses import replace

                settings = replace(settings, timeout=self.options.timeout)
            self._ssh = SshSession(settings)
        return self._ssh

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None

    def __enter__(self) -> Gatherer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _probe_config(self) -> dict[str, Any]:
        # QEMU gets most of the budget; the rest covers connecting and the file reads.
        config: dict[str, Any] = {"qemu_timeout": max(1.0, self.options.timeout * 0.8 - 1.0)}
        if self.options.qemu:
            config["qemu"] = self.options.qemu
        return config

    def gather(self, host: HostRef | str) -> Facts:
        """Facts for one host; raises HostError (exit 3) or InputError (exit 2)."""
        ref = parse_host(host) if isinstance(host, str) else host
        if ref.kind == "file":
            return load_facts(ref.name)
        from migcheck.probe import probe_script

        started = time.monotonic()
        if ref.kind == "local":
            from migcheck.transport.local import run_local_probe

            output = run_local_probe(self._probe_config(), timeout=self.options.timeout)
            name = socket.gethostname()
        else:
            output = self._session().run_probe(ref, probe_script(self._probe_config()))
            name = ref.name
        facts = facts_from_probe_output(output, ref.text)
        doc = dict(facts.doc)
        doc["host"] = {
            "name": name,
            "target": ref.text,
            "transport": ref.kind,
            "gathered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "gather_seconds": round(time.monotonic() - started, 3),
            "migcheck_version": __version__,
        }
        return Facts(doc, ref.text)

    def gather_many(
        self,
        hosts: Sequence[HostRef | str],
        progress: Callable[[HostResult], None] | None = None,
    ) -> list[HostResult]:
        """Gather every host with a bounded pool; results in the order given."""
        refs = [parse_host(h) if isinstance(h, str) else h for h in hosts]
        results = [HostResult(ref) for ref in refs]

        def one(i: int) -> int:
            started = time.monotonic()
            try:
                results[i].facts = self.gather(refs[i])
            except MigcheckError as exc:
                results[i].error = exc
            except Exception as exc:  # a bug or an unforeseen library error: this host only
                results[i].error = HostError(refs[i].text, f"{type(exc).__name__}: {exc}")
            results[i].seconds = time.monotonic() - started
            return i

        jobs = max(1, min(self.options.jobs, len(refs) or 1))
        if jobs == 1:
            for i in range(len(refs)):
                one(i)
                if progress:
                    progress(results[i])
            return results
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="gather") as pool:
            for future in as_completed([pool.submit(one, i) for i in range(len(refs))]):
                if progress:
                    progress(results[future.result()])
        return results


def gather(host: HostRef | str, *, timeout: float = 30.0, qemu: str | None = None) -> Facts:
    """Facts for one host with default options (a convenience for scripts and tests)."""
    with Gatherer(GatherOptions(timeout=timeout, qemu=qemu)) as g:
        return g.gather(host)


def file_name_for(facts: Facts) -> str:
    """A safe file name for saved facts: the host name with path characters replaced."""
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in facts.name)
    if not name or name.startswith("."):
        raise InputError(f"cannot derive a file name from host name {facts.name!r}")
    return f"{name}.json"
