"""Gather facts for HOSTs: saved files, this machine, or SSH; many hosts in parallel.

A failed host never costs the others their facts: results come back per host, each either
facts or the error that stopped it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migcheck import __version__, fileid
from migcheck.errors import HostError, InputError, MigcheckError
from migcheck.facts import Facts, facts_from_probe_output, load_facts, validate
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


CACHE_FORMAT = "migcheck.probe-cache/2"


def dumps_by_section(doc: dict[str, Any]) -> str:
    """Compact JSON, keys sorted, with one top-level member per line (``,\n "name": ...``):
    :class:`migcheck.fleetload.SectionReader` cuts the text there and shares sections it
    has seen byte for byte (hosts on one QEMU build send the same ``qemu`` section)."""
    lines = (f" {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(doc.items()))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def dumps_cache_entry(entry: dict[str, Any]) -> str:
    """A probe-cache file: the entry as JSON with its keys sorted (``facts`` first), the
    facts laid out by :func:`dumps_by_section` and the rest on their last line, so
    ``fleet --cached`` reads a fleet's entries as cheaply as facts files."""
    rest = json.dumps({k: v for k, v in entry.items() if k != "facts"}, sort_keys=True)
    facts = dumps_by_section(entry["facts"]).rstrip("\n")
    return '{"facts": ' + facts + (", " + rest[1:] if rest != "{}" else "}") + "\n"


def usable_cache_dir() -> Path:
    """The cache directory, created 0700; CacheRefused when another user owns it or others
    may write to it (they could plant facts that make an unsafe migration look safe)."""
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.lstat(path)
    except OSError as exc:
        raise CacheRefused(f"cannot create the probe cache {path}: {exc.strerror}") from None
    import stat as stat_mod

    if not stat_mod.S_ISDIR(st.st_mode):
        raise CacheRefused(f"probe cache {path} is not a directory (a symlink?); not used")
    if st.st_uid != os.geteuid():
        raise CacheRefused(
            f"probe cache {path} is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}); "
            "not used. Remove it or point XDG_CACHE_HOME elsewhere"
        )
    if st.st_mode & 0o022:
        raise CacheRefused(
            f"probe cache {path} is writable by others (mode {st.st_mode & 0o777:o}); not used. "
            f"Fix it with: chmod 700 {path}"
        )
    return path


class CacheRefused(Exception):
    pass


def machine_id() -> str | None:
    """This machine's identity: a home directory on NFS shared by many hosts must not give
    one host the facts of another."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return None


def cache_key(identity: dict[str, Any]) -> str:
    import hashlib  # ~3 ms (OpenSSL): only a probed host needs it, not a facts file

    from migcheck.probe import probe_source

    # The probe's own text is part of the key: a new probe never reuses an old one's answers.
    probe = hashlib.sha256(probe_source().encode()).hexdigest()
    text = json.dumps({"identity": identity, "probe": probe}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cacheable(doc: dict[str, Any]) -> dict[str, Any]:
    """What the cache keeps: never the running guests (their argv can carry secrets)."""
    return {k: v for k, v in doc.items() if k not in ("guests",)}


_ENTRY_HEAD = b'{"facts": {\n'
_ENTRY_TAIL = b"\n}, "  # the facts' closing brace, then the entry's other members
_HOST_LINE = b'\n "host": '


def _entry_outline(raw: bytes) -> dict[str, Any]:
    """What :func:`_targets_in` needs of an entry (``format``, ``stored_unix``,
    ``facts.host``) without parsing its facts: in :func:`dumps_cache_entry`'s layout the
    other members are the last line and ``host`` is one line of the facts (JSON text cannot
    hold a raw line feed inside a string, so these markers only occur where it put them).
    Any other text is parsed whole."""
    tail = raw.rfind(_ENTRY_TAIL)
    if raw.startswith(_ENTRY_HEAD) and tail > 0 and raw.count(_HOST_LINE) == 1:
        start = raw.index(_HOST_LINE) + 2
        end = raw.find(b"\n", start)
        line = raw[start:end].rstrip(b",") if 0 < end <= tail else b""
        try:
            rest = json.loads(b"{" + raw[tail + len(_ENTRY_TAIL) :])
            host = json.loads(b"{" + line + b"}") if line else None
        except ValueError:
            rest = host = None
        if isinstance(rest, dict) and "facts" not in rest and isinstance(host, dict):
            return dict(rest, facts=host)
    entry = json.loads(raw)
    return entry if isinstance(entry, dict) else {}


@functools.lru_cache(maxsize=8)
def _targets_in(directory: Path, _mtime_ns: int) -> dict[str, Path]:
    """HOST text -> the newest probe-cache entry gathered under that text. Entries are keyed
    by the host that answered (its address and host key), which only a connection can tell;
    ``fleet --cached`` contacts no host, so it finds them by the text they were gathered as
    and reports them as cached facts of that age (the key is not re-verified)."""
    found: dict[str, tuple[float, Path]] = {}
    try:
        paths = sorted(directory.glob("*.json"))
    except OSError:
        return {}
    known = _read_index(directory)
    index: dict[str, list[Any]] = {}
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        ident = list(fileid.identity(st))
        hit = known.get(path.name)
        if isinstance(hit, list) and len(hit) == 7 and hit[:5] == ident:
            target, stored = hit[5], hit[6]
        else:
            target, stored = _entry_target(path)
        index[path.name] = [*ident, target, stored]
        if isinstance(target, str) and (target not in found or stored > found[target][0]):
            found[target] = (stored, path)
    if index != known:
        _write_index(directory, index)
    return {t: p for t, (_, p) in found.items()}


_INDEX = ".targets-index"  # not *.json: never taken for an entry


def _entry_target(path: Path) -> tuple[str | None, float]:
    """The HOST text an entry was gathered under and when (None: not an entry of ours)."""
    try:
        entry = _entry_outline(path.read_bytes())
        target = entry["facts"]["host"]["target"]
        stored = float(entry.get("stored_unix", 0))
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None, 0.0  # not an entry we wrote: ignore it, as the cache lookup does
    ours = entry.get("format") == CACHE_FORMAT and isinstance(target, str)
    return (target, stored) if ours else (None, 0.0)


def _read_index(directory: Path) -> dict[str, Any]:
    """Entry file name -> [device, inode, size, mtime_ns, ctime_ns, target, stored] as the
    last run found them: an entry whose identity is unchanged is not read again (10,000
    entries are 1.2 GB). Only an index this user owns and only they can write is used."""
    try:
        fd = os.open(directory / _INDEX, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return {}
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return {}
        try:
            data = json.loads(f.read())
        except (OSError, ValueError, RecursionError):
            return {}
    return data if isinstance(data, dict) else {}


def _write_index(directory: Path, index: dict[str, list[Any]]) -> None:
    from migcheck.safefile import atomic_write

    with contextlib.suppress(OSError):  # an optimisation: the next run reads the entries
        atomic_write(directory / _INDEX, json.dumps(index, separators=(",", ":")), 0o600)


def cached_facts_path(ref: HostRef) -> Path:
    """The probe-cache entry ``fleet --cached`` reads for ``ref`` (a path that does not
    exist when the host was never gathered under that text)."""
    return cached_facts_paths([ref])[0]


def cached_facts_paths(refs: Sequence[HostRef]) -> list[Path]:
    """:func:`cached_facts_path` of each of ``refs``, the cache directory checked once."""
    missing = cache_dir() / "never-gathered.json"
    try:
        directory = usable_cache_dir()
        mtime = directory.stat().st_mtime_ns  # a new entry changes it: the index is redone
    except (CacheRefused, OSError):
        return [missing for _ in refs]
    index = _targets_in(directory, mtime)
    return [index.get(ref.text, missing) for ref in refs]


@dataclass
class HostResult:
    ref: HostRef
    facts: Facts | None = None
    error: MigcheckError | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.facts is not None


def _fixed(config: dict[str, Any]) -> Callable[[dict[str, Any] | None], str]:
    from migcheck.probe import probe_script

    return lambda _identity: probe_script(config)


@dataclass
class Gatherer:
    """Gathers hosts; keeps one SSH session (config, known_hosts, bastions) for all."""

    options: GatherOptions = field(default_factory=GatherOptions)
    _ssh: SshSession | None = None
    # One-paragraph messages for the user (a refused probe cache), each once per run.
    notices: list[str] = field(default_factory=list)
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

    def _cached(self, key: str | None) -> tuple[Facts | None, dict[str, Any]]:
        """The cached facts for ``key`` and what the report says about the cache."""
        note: dict[str, Any] = {"used": False}
        if not self.options.cache or key is None:
            note["why"] = "disabled" if not self.options.cache else "no identity for this host"
            return None, note
        try:
            directory = usable_cache_dir()
        except CacheRefused as exc:
            self._refused(str(exc))
            return None, {"used": False, "refused": str(exc)}
        if self.options.refresh:
            note["why"] = "--refresh"
            return None, note
        try:
            entry = json.loads((directory / f"{key}.json").read_text())
            if entry.get("format") != CACHE_FORMAT or entry.get("key") != key:
                return None, note
            facts = Facts(validate(entry["facts"], f"probe cache {key}"), f"cache {key}")
            stored = float(entry["stored_unix"])
        except (OSError, ValueError, KeyError, TypeError, InputError, RecursionError):
            return None, note  # a missing or damaged cache only costs a full probe
        qemu = facts.doc.get("qemu") or {}
        fp = (facts.doc.get("probe") or {}).get("fingerprint")
        if "error" in qemu or not isinstance(fp, dict) or "error" in fp:
            return None, note
        if "tcg" not in qemu:  # kept by an older probe, without QEMU's TCG answers
            return None, note
        note = {"stored_unix": stored}
        return facts, note

    def _refused(self, message: str) -> None:
        with self._lock:
            if message in self.notices:
                return
            self.notices.append(message)
        # Once per run, on stderr: the operator must learn that the cache is not theirs.
        print(f"migcheck: {message}", file=sys.stderr)

    def _store(self, key: str | None, identity: dict[str, Any], facts: Facts) -> None:
        if not self.options.cache or key is None:
            return
        qemu = facts.doc.get("qemu") or {}
        probe = facts.doc.get("probe") or {}
        fp = probe.get("fingerprint")
        if "error" in qemu or qemu.get("cached") or probe.get("qemu_from_cache"):
            return  # nothing new to keep
        if not isinstance(fp, dict) or "error" in fp:
            return  # no fingerprint (a wrapper script, a deleted binary): never reusable
        from migcheck.safefile import atomic_write

        try:
            directory = usable_cache_dir()
        except CacheRefused as exc:
            self._refused(str(exc))
            return
        entry = {
            "format": CACHE_FORMAT,
            "key": key,
            "identity": identity,
            "stored_unix": time.time(),
            "facts": _cacheable(dict(facts.doc)),
        }
        # The cache is an optimisation; failing to write it is not an error.
        with contextlib.suppress(OSError):
            atomic_write(directory / f"{key}.json", dumps_cache_entry(entry), 0o600)

    def gather(
        self, host: HostRef | str, *, vm: str | None = None, list_vms: bool = False
    ) -> Facts:
        """Facts for one host; raises HostError (exit 3) or InputError (exit 2).

        ``vm``: also read the argv of the running guest of that name (same single exec);
        ``list_vms``: also list the running guests."""
        ref = parse_host(host) if isinstance(host, str) else host
        if ref.kind == "file":
            return load_facts(ref.name)
        from datetime import datetime, timezone  # ~1 ms that a facts file never needs

        guests: dict[str, Any] = {}
        if vm is not None:
            guests["vm"] = vm
        if list_vms:
            guests["list_vms"] = True
        started = time.monotonic()
        # Filled once the answering host is known (after its host key, before the exec).
        state: dict[str, Any] = {"key": None, "identity": None, "cached": None, "note": {}}

        def script_for(identity: dict[str, Any] | None) -> str:
            from migcheck.probe import probe_script

            key = cache_key(identity) if identity is not None else None
            cached, note = self._cached(key)
            state.update(key=key, identity=identity, cached=cached, note=note)
            return probe_script(self._probe_config(cached, guests))

        output = self._run(ref, script_for)
        facts = facts_from_probe_output(output, ref.text)
        doc = dict(facts.doc)
        cached = state["cached"]
        cache_note = dict(state["note"])
        if (doc.get("qemu") or {}).get("cached"):
            if cached is None:  # the probe answered from a cache we no longer have
                config = self._probe_config(None, guests)
                facts = facts_from_probe_output(self._run(ref, _fixed(config)), ref.text)
                doc = dict(facts.doc)
                cache_note = {"used": False}
            else:
                doc["qemu"] = cached.doc["qemu"]
                doc["probe"] = dict(doc.get("probe") or {}, qemu_from_cache=True)
                stored = float(cache_note.get("stored_unix", time.time()))

                cache_note = {
                    "used": True,
                    "facts": ["qemu"],
                    "stored_at": datetime.fromtimestamp(stored, timezone.utc).isoformat(
                        timespec="seconds"
                    ),
                    "age_seconds": max(0, round(time.time() - stored)),
                }
        else:
            cache_note.pop("stored_unix", None)
            cache_note["used"] = False
        doc["probe"] = dict(doc.get("probe") or {}, cache=cache_note)
        if ref.kind == "local":
            import socket  # only a local probe needs this machine's name

            name = socket.gethostname()
        else:
            name = ref.name
        doc["host"] = {
            "name": name,
            "target": ref.text,
            "transport": ref.kind,
            "gathered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "gather_seconds": round(time.monotonic() - started, 3),
            "migcheck_version": __version__,
        }
        result = Facts(doc, ref.text)
        self._store(state["key"], state["identity"], result)
        return result

    def _run(self, ref: HostRef, script_for: Callable[[dict[str, Any] | None], str]) -> str:
        if ref.kind == "local":
            from migcheck.transport.local import run_local_script

            mid = machine_id()
            script = script_for({"machine_id": mid} if mid else None)
            return run_local_script(script, timeout=self.options.timeout)
        return self._session().run_probe(ref, script_for)

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
        # Saved facts files are read in place: a thread pool (and its ~8 ms import) buys
        # nothing when no host is contacted.
        if jobs == 1 or all(ref.kind == "file" for ref in refs):
            for i in range(len(refs)):
                one(i)
                if progress:
                    progress(results[i])
            return results
        from concurrent.futures import ThreadPoolExecutor, as_completed

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
    return list(iter_probe_outputs(directory))


def iter_probe_outputs(directory: Path) -> Iterator[HostResult]:
    """:func:`load_probe_outputs` one host at a time, so a caller can write and drop each."""
    if not directory.is_dir():
        raise InputError(f"--from-ansible {directory}: not a directory")
    count = 0
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        count += 1
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
        yield result
    if not count:
        raise InputError(f"--from-ansible {directory}: no result files")


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
