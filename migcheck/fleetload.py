"""Load a fleet's facts files in constant memory per class, with a digest cache.

A fleet of 10,000 hosts has a few dozen distinct configurations. Each file is read once,
its class digest (:func:`migcheck.fleet.section_digest`) computed, and its parsed facts
dropped unless it is the first host of its class: memory grows with classes, not hosts.

Two things make reading cheap without changing what is read:

* **Shared sections.** ``gather --out-dir`` writes one top-level section per line group
  (``,\\n "name": ...``). The text is split there; a section whose bytes were seen before
  (hosts running the same QEMU build send the same 100 KB ``qemu`` section) reuses the
  object parsed and validated the first time. Splitting is exact whatever the input: each
  piece must parse as an object on its own, and pieces that do are, joined with the commas
  they were split at, the whole document (JSON strings cannot hold a raw line feed); any
  other text is parsed whole, as :func:`migcheck.facts.load_facts` does. Probe-cache
  entries (``fleet --cached``) hold their facts in the same layout
  (:func:`migcheck.gather.dumps_cache_entry`) and are read the same way.
* **A digest cache** (``$XDG_CACHE_HOME/migcheck/digests/``) keyed by the file's identity:
  path, device, inode, size, and mtime and ctime in nanoseconds. Rewriting a file changes
  its ctime even when the writer restores size and mtime, so a changed file is read again.
  Entries are also keyed by this migcheck's version and the registered checks' declared
  reads, so new checks never reuse old digests. Whether the referenced build data is at
  hand is looked up on every run, never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migcheck import __version__
from migcheck.errors import InputError
from migcheck.facts import MAX_FACTS_BYTES, SCHEMA, SECTIONS, Facts, _scrubbed, load_facts, validate
from migcheck.fileid import Identity, identity
from migcheck.gather import CACHE_FORMAT, dumps_by_section
from migcheck.textsafe import may_hold_control

_CUT = b',\n "'  # between top-level members, as gather and the probe cache write them
_PREFIX = 64
_SHARE_MIN = 2048  # smaller sections are parsed each time: caching them costs more
_ERROR_PLACEHOLDER = {"error": "validated before"}
_ENTRY_HEAD = b'{"facts": {\n'  # a probe-cache entry (migcheck.gather.dumps_cache_entry)
_ENTRY_TAIL = b"\n}, "

__all__ = ["DigestCache", "LoadedFleet", "SectionReader", "dumps_by_section", "load_fleet"]


def _cache_entry_facts(raw: bytes, path: str) -> Facts:
    """The facts a probe-cache entry holds (``fleet --cached``), checked like a facts file."""
    from migcheck.facts import FactsError

    try:
        entry = json.loads(raw)
    except (ValueError, RecursionError):
        raise FactsError(path, "not a readable probe-cache entry") from None
    if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
        raise FactsError(path, "not a probe-cache entry")
    facts = entry.get("facts")
    if may_hold_control(raw):  # else scrub_tree would return it unchanged (and cost ~9 ms)
        facts = _scrubbed(facts, path)
    return Facts(validate(facts, path), path)


def _entry_parts(raw: bytes) -> bytes | None:
    """The facts text of a probe-cache entry in :func:`migcheck.gather.dumps_cache_entry`'s
    layout, when its other members (its last line) say it is one; None for any other text.
    ``{"facts": FACTS, REST}`` reads as FACTS when REST holds no second ``facts``."""
    if not raw.startswith(_ENTRY_HEAD):
        return None  # a facts file: not scanned for the tail
    tail = raw.rfind(_ENTRY_TAIL)
    if tail < 0:
        return None
    try:
        rest = json.loads(b"{" + raw[tail + len(_ENTRY_TAIL) :])
    except (ValueError, RecursionError):
        return None
    if not isinstance(rest, dict) or "facts" in rest or rest.get("format") != CACHE_FORMAT:
        return None
    return raw[len(_ENTRY_HEAD) - 2 : tail + 2]  # "{\n" ... "\n}"


def _suspect(raw: bytes) -> bool:
    return may_hold_control(raw)


class SectionReader:
    """Parses facts files, sharing sections whose bytes it has seen (see the module doc)."""

    def __init__(self) -> None:
        self._parsed: dict[bytes, tuple[str, Any]] = {}  # piece bytes -> (name, value)
        self._valid: set[bytes] = set()  # pieces that passed validation in some document
        self._shared_ids: set[int] = set()
        self._by_prefix: dict[
            bytes, list[bytes]
        ] = {}  # first bytes -> shared pieces  # ids of the shared section objects (kept alive)

    def shared(self, value: Any) -> bool:
        return id(value) in self._shared_ids

    def load(self, path: str) -> Facts:
        """Exactly :func:`migcheck.facts.load_facts`, cheaper for repeated sections."""
        p = Path(path)
        try:
            size = p.stat().st_size
            if size > MAX_FACTS_BYTES:
                return load_facts(path)  # it says why, in the same words
            raw = p.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot read facts file: {exc.strerror or exc}") from None
        body = _entry_parts(raw)  # a probe-cache entry as the gatherer writes it
        if body is not None:
            return self._load(body, path, None, lambda: _cache_entry_facts(raw, path))
        if CACHE_FORMAT.encode() in raw[-512:]:  # another entry (keys sorted: at the end)
            return _cache_entry_facts(raw, path)
        return self._load(raw, path, str(p.parent), lambda: load_facts(path))

    def _load(
        self, raw: bytes, path: str, base_dir: str | None, whole: Callable[[], Facts]
    ) -> Facts:
        """The facts document ``raw`` from ``path``: exactly what ``whole()`` (the
        reader that parses it whole) returns, sharing sections seen before."""
        pieces = self._split(raw)
        if pieces is None:
            return whole()
        doc: dict[str, Any] = {}
        fresh: list[bytes] = []
        for piece in pieces:
            hit = self._parsed.get(piece) if len(piece) >= _SHARE_MIN else None
            if hit is None:
                if _suspect(piece):  # scrub_tree would change it: the full path scrubs
                    return whole()
                try:
                    member = json.loads(b"{" + piece + b"}")
                except (ValueError, RecursionError):
                    return whole()  # not split at the top level: parse it whole
                if len(member) != 1:
                    return whole()
                hit = next(iter(member.items()))
                if len(piece) >= _SHARE_MIN:
                    self._parsed[piece] = hit
                    self._shared_ids.add(id(hit[1]))
                    self._by_prefix.setdefault(piece[:_PREFIX], []).append(piece)
            doc[hit[0]] = hit[1]  # a later duplicate key wins, as in json.loads
            if piece not in self._valid:
                fresh.append(piece)
        if "build_schema" in doc:
            return whole()  # a raw probe output: its build goes to the store
        self._validate(doc, pieces, fresh, path)
        return Facts(doc, path, base_dir)

    def _validate(
        self, doc: dict[str, Any], pieces: list[bytes], fresh: list[bytes], origin: str
    ) -> None:
        # validate() is a conjunction of per-section predicates (the schema field, each of
        # SECTIONS on its own, host is a dict). A section whose bytes passed before is
        # replaced by a placeholder those predicates accept, so only new sections are checked.
        if fresh and len(fresh) < len(pieces):
            known = {
                name
                for piece in pieces
                if piece in self._valid and len(piece) >= _SHARE_MIN
                for name in (self._parsed[piece][0],)
            }
            probe = {
                k: (_ERROR_PLACEHOLDER if k in known and k in SECTIONS else v)
                for k, v in doc.items()
            }
        else:
            probe = doc
        if fresh:
            validate(probe, origin)
            self._valid.update(p for p in fresh if len(p) >= _SHARE_MIN)

    def _split(self, raw: bytes) -> list[bytes] | None:
        """The text between the outer braces cut at every ``,\\n "``; a stretch whose bytes
        equal a section seen before (and that ends at such a cut) is taken whole without
        scanning it: it holds no cut, or it would not have been one piece."""
        body = raw.strip()
        if not (body.startswith(b"{") and body.endswith(b"}")):
            return None
        inner = body[1:-1].strip()
        if not inner:
            return None
        pieces = []
        start, end_all = 0, len(inner)
        while True:
            piece = None
            for known in self._by_prefix.get(inner[start : start + _PREFIX], ()):
                end = start + len(known)
                if inner.startswith(known, start) and (
                    end == end_all or inner.startswith(_CUT, end)
                ):
                    piece = known
                    break
            if piece is None:
                end = inner.find(_CUT, start)
                if end < 0:
                    end = end_all
                piece = inner[start:end]
            pieces.append(piece)
            if end == end_all:
                return pieces
            start = end + len(_CUT) - 1  # the next piece starts at its key's quote


# --- the digest cache ------------------------------------------------------------------------


def _namespace() -> str:
    from migcheck.fleet import class_key_paths

    text = json.dumps([__version__, SCHEMA, class_key_paths()])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def digest_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "migcheck" / "digests"


@dataclass(frozen=True)
class Digest:
    digest: str  # migcheck.fleet.section_digest of the document
    name: str | None  # host.name inside the document
    build_key: str | None


class DigestCache:
    """File identity -> :class:`Digest`, one JSON file per migcheck version and check set.

    An entry is used only when every part of the identity matches; a cache that cannot be
    read, or whose directory another user could write, is ignored (it is an optimisation)."""

    MAX_ENTRIES = 200_000

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or digest_dir()
        self.path = self.directory / f"{_namespace()}.json"
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        self._lock = threading.Lock()
        if self._trusted():
            try:
                data = json.loads(self.path.read_bytes())
                if isinstance(data, dict):
                    self._entries = data
            except (OSError, ValueError, RecursionError):
                pass

    def _trusted(self) -> bool:
        try:
            for p in (self.directory, self.path):
                st = p.stat()
                if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                    return False
        except OSError:
            return False
        return True

    def get(self, path: str, ident: Identity) -> Digest | None:
        entry = self._entries.get(os.path.abspath(path))
        if not isinstance(entry, list) or len(entry) != 8 or tuple(entry[:5]) != ident:
            return None
        return Digest(entry[5], entry[6], entry[7])

    def put(self, path: str, ident: Identity, digest: Digest) -> None:
        with self._lock:
            self._entries[os.path.abspath(path)] = [
                *ident,
                digest.digest,
                digest.name,
                digest.build_key,
            ]
            self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        entries = self._entries
        if len(entries) > self.MAX_ENTRIES:  # keep the newest (insertion order: last seen)
            entries = dict(list(entries.items())[-self.MAX_ENTRIES :])
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(entries, f, separators=(",", ":"))
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:
            pass  # next run reads the files again


# --- loading a fleet -------------------------------------------------------------------------


@dataclass
class LoadedFleet:
    """Every host's class fingerprint; full facts only for the first host of each class."""

    hosts: dict[str, Facts] = field(default_factory=dict)  # host -> its class's facts
    fingerprints: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # host -> why it was not read
    read: int = 0  # files parsed
    cached: int = 0  # digests the digest cache answered
    interrupted: bool = False


# Called after each host: (hosts done, hosts in all, host name).
LoadProgress = Callable[[int, int, str], None]


def load_fleet(
    entries: Sequence[tuple[str | None, str]],
    *,
    cache: DigestCache | None = None,
    progress: LoadProgress | None = None,
) -> LoadedFleet:
    """Load ``(name, path)`` entries in order; a None name means "the host name inside the
    file, unless another host already has it" (what ``fleet FILE...`` has always done).

    A file that is not usable facts raises, as :func:`migcheck.facts.load_facts` does.
    Ctrl-C stops the loading: what was read is returned, the rest listed in ``failed``."""
    from migcheck.build import find_build
    from migcheck.fleet import class_fingerprint, section_digest

    reader = SectionReader()
    out = LoadedFleet()
    reps: dict[str, Facts] = {}  # fingerprint -> the first host's facts
    at_hand: dict[tuple[str, str], bool] = {}
    seen: dict[int, tuple[Any, str]] = {}
    total = len(entries)
    i = 0
    try:
        for i, (given, path) in enumerate(entries):
            facts: Facts | None = None
            ident: Identity | None = None
            hit: Digest | None = None
            if cache is not None:
                try:
                    ident = identity(os.stat(path))
                except OSError:
                    ident = None
                hit = cache.get(path, ident) if ident is not None else None
            if hit is not None:
                out.cached += 1
            else:
                facts = reader.load(path)
                out.read += 1
                host = facts.doc.get("host")
                doc_name = host.get("name") if isinstance(host, dict) else None
                hit = Digest(
                    section_digest(facts, seen),
                    str(doc_name) if doc_name else None,
                    facts.build_key,
                )
                if cache is not None and ident is not None:
                    try:
                        if identity(os.stat(path)) == ident:  # unchanged while we read it
                            cache.put(path, ident, hit)
                    except OSError:
                        pass
            name = given
            if name is None:
                name = hit.name or path
                if name in out.hosts:
                    name = path
            base_dir = str(Path(path).parent)
            key = (base_dir, hit.build_key or "")
            if key not in at_hand:
                at_hand[key] = (
                    hit.build_key is not None
                    and find_build(hit.build_key, Path(base_dir)) is not None
                )
            fp = class_fingerprint(hit.digest, hit.build_key, at_hand[key])
            rep = reps.get(fp)
            if rep is None:
                if facts is None:
                    facts = reader.load(path)
                    out.read += 1
                rep = facts
                reps[fp] = rep
            out.hosts[name] = rep
            out.fingerprints[name] = fp
            if progress is not None:
                progress(i + 1, total, name)
            if facts is not None and facts is not rep:
                # Only shared sections stay in the digest memo: one host's own must not pile up.
                for value in facts.doc.values():
                    if not reader.shared(value):
                        seen.pop(id(value), None)
    except KeyboardInterrupt:
        out.interrupted = True
        for given, path in entries[i:]:
            name = given or path
            if name not in out.hosts:
                out.failed[name] = "not read: interrupted (Ctrl-C)"
    finally:
        if cache is not None:
            cache.save()
    return out
