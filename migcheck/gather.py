"""Gather facts for HOSTs: saved files, this machine, or SSH; many hosts in parallel.

A failed host never costs the others their facts: results come back per host, each either
facts or the error that stopped it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migcheck import __version__
from migcheck.errors import HostError, InputError, MigcheckError
from migcheck.facts import Facts, facts_from_probe_output, load_facts
from migcheck.hosts import HostRef, parse_host

if TYPE_CHECKING:
    from migcheck.transport.settings import SshSettings
    from migcheck.transport.ssh import SshSession
    from migcheck.vm import VmSpec

DEFAULT_JOBS = 32


@dataclass(frozen=True)
class GatherOptions:
    timeout: float = 30.0
    qemu: str | None = None
    jobs: int = DEFAULT_JOBS
    ssh: SshSettings | None = None  # None: defaults (~/.ssh/config, strict host keys)
    refresh: bool = False  # ignore the cache: start QEMU even if nothing changed
    cache: bool = True  # keep the last facts per host and let the probe skip QEMU


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "migcheck" / "facts"


def _cache_path(ref: HostRef) -> Path:
    key = f"{ref.kind}:{ref.user or ''}@{ref.name}:{ref.port or ''}"
    return cache_dir() / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


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
    borrowed: bool = False  # _ssh is the caller's (a trial's): close() leaves it open

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def _session(self) -> SshSession:
        with self._lock:  # one session for all threads: bastions and known_hosts are shared
            return self._session_locked()

    def _session_locked(self) -> SshSession:
        if self._ssh is None:
            from migcheck.transport.settings import SshSettings
            from migcheck.transport.ssh import SshSession

            settings = self.options.ssh or SshSettings()
            if settings.timeout != self.options.timeout:
                from dataclasses import replace

                settings = replace(settings, timeout=self.options.timeout)
            self._ssh = SshSession(settings)
        return self._ssh

    def close(self) -> None:
        if self._ssh is not None and not self.borrowed:
            self._ssh.close()
            self._ssh = None

    def __enter__(self) -> Gatherer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _probe_config(
        self, cached: Facts | None = None, guests: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        # QEMU gets most of the budget; the rest covers connecting and the file reads.
        config: dict[str, Any] = {"qemu_timeout": max(1.0, self.options.timeout * 0.8 - 1.0)}
        if self.options.qemu:
            config["qemu"] = self.options.qemu
        config.update(guests or {})
        from migcheck.build import known_keys

        # The probe sends a build's schema only when its key is not among these (data in
        # CONFIG, never in a shell command); --refresh fetches it again.
        known = [] if self.options.refresh else known_keys()
        config["known_builds"] = known
        if cached is not None and cached.build_key is not None and cached.build_key not in known:
            cached = None  # the cached QEMU answers name a build we no longer hold
        if cached is not None:
            # The fingerprint travels with the probe: still one round trip.
            config["known_fingerprint"] = (cached.doc.get("probe") or {}).get("fingerprint")
        return config

    def _cached(self, ref: HostRef) -> Facts | None:
        if not self.options.cache or self.options.refresh:
            return None
        path = _cache_path(ref)
        try:
            facts = load_facts(path)
        except (InputError, OSError):
            return None  # a missing or damaged cache only costs a full probe
        qemu = facts.doc.get("qemu") or {}
        fp = (facts.doc.get("probe") or {}).get("fingerprint")
        if "error" in qemu or not isinstance(fp, dict) or "error" in fp:
            return None
        if "tcg" not in qemu:  # kept by an older probe, without QEMU's TCG answers
            return None
        return facts

    def _store(self, ref: HostRef, facts: Facts) -> None:
        if not self.options.cache:
            return
        qemu = facts.doc.get("qemu") or {}
        if (
            "error" in qemu
            or qemu.get("cached")
            or (facts.doc.get("probe") or {}).get("qemu_from_cache")
        ):
            return  # nothing new to keep
        path = _cache_path(ref)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(facts.doc, sort_keys=True))
            os.replace(tmp, path)
        except OSError:
            pass  # the cache is an optimisation; failing to write it is not an error

    def gather(
        self, host: HostRef | str, *, vm: str | None = None, list_vms: bool = False
    ) -> Facts:
        """Facts for one host; raises HostError (exit 3) or InputError (exit 2).

        ``vm``: also read the argv of the running guest of that name (same single exec);
        ``list_vms``: also list the running guests."""
        ref = parse_host(host) if isinstance(host, str) else host
        if ref.kind == "file":
            return load_facts(ref.name)
        guests: dict[str, Any] = {}
        if vm is not None:
            guests["vm"] = vm
        if list_vms:
            guests["list_vms"] = True
        started = time.monotonic()
        cached = self._cached(ref)
        output = self._run(ref, self._probe_config(cached, guests))
        facts = facts_from_probe_output(output, ref.text)
        doc = dict(facts.doc)
        if (doc.get("qemu") or {}).get("cached"):
            if cached is None:  # the probe answered from a cache we no longer have
                config = self._probe_config(None, guests)
                facts = facts_from_probe_output(self._run(ref, config), ref.text)
                doc = dict(facts.doc)
            else:
                doc["qemu"] = cached.doc["qemu"]
                doc["probe"] = dict(doc.get("probe") or {}, qemu_from_cache=True)
        name = socket.gethostname() if ref.kind == "local" else ref.name
        doc["host"] = {
            "name": name,
            "target": ref.text,
            "transport": ref.kind,
            "gathered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "gather_seconds": round(time.monotonic() - started, 3),
            "migcheck_version": __version__,
        }
        result = Facts(doc, ref.text)
        self._store(ref, result)
        return result

    def _run(self, ref: HostRef, config: dict[str, Any]) -> str:
        from migcheck.probe import probe_script

        if ref.kind == "local":
            from migcheck.transport.local import run_local_probe

            return run_local_probe(config, timeout=self.options.timeout)
        return self._session().run_probe(ref, probe_script(config))

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


MAX_RESULT_BYTES = 64 * 1024 * 1024


def load_probe_outputs(directory: Path) -> list[HostResult]:
    """Probe results gathered by other tools: ``ansible HOSTS -m script -a PROBE --tree DIR``
    writes one JSON result per host (the probe's output under ``stdout``); a plain directory
    holds one probe output (a facts document) per file. The host is the file name."""
    if not directory.is_dir():
        raise InputError(f"--from-ansible {directory}: not a directory")
    results = []
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        ref = HostRef("file", path.name, str(path))
        result = HostResult(ref)
        try:
            if path.stat().st_size > MAX_RESULT_BYTES:
                raise HostError(path.name, f"result file is larger than {MAX_RESULT_BYTES} bytes")
            text = path.read_text(encoding="utf-8", errors="replace")
            try:
                doc = json.loads(text)
            except (json.JSONDecodeError, RecursionError, ValueError):
                doc = None
            ansible_keys = {"stdout", "unreachable", "failed", "msg", "rc"}
            if isinstance(doc, dict) and "schema" not in doc and ansible_keys & doc.keys():
                if doc.get("failed") or doc.get("unreachable") or doc.get("rc", 0) != 0:
                    why = doc.get("msg") or doc.get("stderr") or f"rc={doc.get('rc')}"
                    raise HostError(path.name, f"Ansible reports failure: {str(why)[-400:]}")
                text = str(doc.get("stdout", ""))
            facts = facts_from_probe_output(text, path.name)
            fdoc = dict(facts.doc)
            fdoc["host"] = dict(fdoc.get("host") or {}, name=path.name, transport="ansible")
            result.facts = Facts(fdoc, path.name)
        except MigcheckError as exc:
            result.error = exc
        results.append(result)
    if not results:
        raise InputError(f"--from-ansible {directory}: no result files")
    return results


def running_guest(facts: Facts, name: str) -> VmSpec:
    """The VM spec of running guest ``name`` from facts gathered with ``vm=name``."""
    import shlex

    from migcheck.cmdline import parse_cmdline

    section = facts.doc.get("guests")
    if not isinstance(section, dict) or "error" in section:
        why = section.get("error") if isinstance(section, dict) else "no guest list in the facts"
        raise HostError(facts.origin, f"cannot read running guests: {why}")
    matches = [g for g in section.get("guests", []) if g.get("name") == name and g.get("argv")]
    if not matches:
        names = sorted({g.get("name") for g in section.get("guests", []) if g.get("name")})
        raise InputError(
            f"{facts.name}: no running guest named {name!r}"
            + (f"; running: {', '.join(names)}" if names else "; no QEMU guest is running")
        )
    if len(matches) > 1:
        pids = ", ".join(str(g.get("pid")) for g in matches)
        raise InputError(f"{facts.name}: several QEMU processes are named {name!r} (pids {pids})")
    argv = [str(a) for a in matches[0]["argv"]]
    return parse_cmdline(shlex.join(argv), f"{facts.name}:{name} (pid {matches[0].get('pid')})")


def safe_file_stem(text: str) -> str:
    """``text`` with every character but letters, digits and ``._-`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def file_name_for(facts: Facts) -> str:
    """A safe file name for saved facts: the host name with path characters replaced."""
    name = safe_file_stem(facts.name)
    if not name or name.startswith("."):
        raise InputError(f"cannot derive a file name from host name {facts.name!r}")
    return f"{name}.json"
