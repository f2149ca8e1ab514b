"""Fleets: which hosts can take which guests, the cluster baseline, what-if upgrades.

Hosts that are identical for migration purposes (same fingerprint of the facts checks
read) form a class; each guest is judged once per ordered pair of classes, so a fleet of
10,000 hosts with 20 distinct configurations costs 400 pair checks per guest, not 10^8.
A class pair stands for every host pair it contains, which the tests prove against the
naive all-pairs evaluation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from migcheck.catalog import Catalog, Platform
from migcheck.checks.base import Context, Finding, Status
from migcheck.checks.registry import declared_reads, registered
from migcheck.facts import Facts
from migcheck.pair import PairReport, check_pair
from migcheck.platforms import graph_view, host_platforms, recommended_pin
from migcheck.verdict import Verdict, combine
from migcheck.vm import VmSpec


def _class_key_paths() -> dict[str, tuple[str, ...]]:
    """Per top-level facts key, the keys the registered checks declare they read (``*``: the
    whole section). Every section a check touches also contributes its ``error``: a section
    that could not be gathered judges differently from one that could."""
    by_section: dict[str, set[str]] = {}
    for path in declared_reads():
        section, _, key = path.partition(".")
        by_section.setdefault(section, {"error"}).add(key or "*")
    return {s: tuple(sorted(keys)) for s, keys in sorted(by_section.items())}


@cache
def class_key_paths() -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(_class_key_paths().items())


def _section_hash(blob: str) -> str:
    return hashlib.sha256(blob.encode()).hexdigest()


def _hash_section(keys: tuple[str, ...], section: Any, seen: dict[int, tuple[Any, str]]) -> str:
    # Fleets built from variations share section objects: within one classification each
    # object is hashed once (``seen`` holds it, so its id cannot be reused meanwhile).
    hit = seen.get(id(section))
    if hit is not None and hit[0] is section:
        return hit[1]
    if isinstance(section, Mapping) and "*" not in keys:
        data: Any = {k: section.get(k) for k in keys if k in section}
    else:
        data = section
    digest = _section_hash(json.dumps(data, sort_keys=True, default=str))
    seen[id(section)] = (section, digest)
    return digest


def section_digest(facts: Facts, seen: dict[int, tuple[Any, str]] | None = None) -> str:
    """A digest of exactly the facts the registered checks declare they read: equal digests
    judge identically, and fields no check reads (microcode, /proc/version text, probe
    timings, the host name) do not split a class. It depends on the document alone, so it
    can be cached with the file (:mod:`migcheck.fleetload`)."""
    cache = {} if seen is None else seen
    parts = [
        f"{name}:{_hash_section(keys, facts.doc.get(name), cache)}"
        for name, keys in class_key_paths()
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def class_fingerprint(digest: str, build_key: str | None, build_at_hand: bool) -> str:
    # The build key names the data; whether that data is at hand (beside the facts file or
    # in the local store) decides the device checks too, so it is part of the class.
    return hashlib.sha256(f"{digest}|build:{build_key}:{build_at_hand}".encode()).hexdigest()[:16]


def fingerprint(facts: Facts, seen: dict[int, tuple[Any, str]] | None = None) -> str:
    """The host's class: :func:`section_digest` plus whether its build data is at hand."""
    return class_fingerprint(
        section_digest(facts, seen), facts.build_key, facts.build_missing is None
    )


@dataclass
class HostClass:
    id: str
    fingerprint: str
    facts: Facts  # the representative
    hosts: list[str] = field(default_factory=list)
    effective_platform: str | None = None  # the platform the class's hosts default to

    @property
    def label(self) -> str:
        f = self.facts
        return f"{self.id}: QEMU {f.qemu_version or '?'}, kernel {f.kernel_release or '?'}"


@dataclass(frozen=True)
class Cell:
    guest: int
    src: str  # class id
    dst: str
    verdict: Verdict
    report: PairReport
    reverse: PairReport | None = None

    @property
    def failing(self) -> list[str]:
        reports = [self.report] + ([self.reverse] if self.reverse else [])
        return sorted(
            {f.id for r in reports for f in r.findings if f.status in (Status.FAIL, Status.UNKNOWN)}
        )


@dataclass
class FleetResult:
    guests: list[VmSpec]
    classes: list[HostClass]
    host_class: dict[str, str]  # host name -> class id
    failed_hosts: dict[str, str]  # host name -> why it could not be gathered
    runnable: dict[tuple[int, str], bool | None]  # (guest, class) -> can the guest run there
    cannot_start: dict[tuple[int, str], list[Finding]]  # why, where runnable is False
    cells: dict[tuple[int, str, str], Cell]
    common_platform: Platform | None
    baseline_cpu: str | None
    both_ways: bool = False
    catalog: Catalog | None = None
    # platforms.graph_view of the catalog (the HTML report draws it); computed on first use
    platform_graph: Mapping[str, Any] = field(default_factory=dict)
    # False when Ctrl-C ended the run: the cells hold what was judged, the verdict is never
    # safe, and reports say so.
    complete: bool = True

    def class_by_id(self, cid: str) -> HostClass:
        return next(c for c in self.classes if c.id == cid)

    def migration_verdict(self, guest: int, src_host: str, dst_host: str) -> Verdict | None:
        """The verdict for one host pair; None when the guest cannot run on one of them."""
        a, b = self.host_class[src_host], self.host_class[dst_host]
        cell = self.cells.get((guest, a, b))
        return cell.verdict if cell else None

    @property
    def verdict(self) -> Verdict:
        """The worst cell; unknown when a host was not gathered, the run was interrupted,
        or nothing was judged (a one-host fleet, a guest that runs nowhere): never safe
        without a judged migration."""
        if self.failed_hosts or not self.complete:
            return combine([Verdict.UNKNOWN] + [c.verdict for c in self.cells.values()])
        return combine([c.verdict for c in self.cells.values()])

    def counts(self) -> dict[str, int]:
        """Guest migrations between host pairs by verdict, and ``cannot-run`` (the guest
        cannot start on one of the two hosts): a class pair stands for every host pair it
        holds."""
        out = {"safe": 0, "unsafe": 0, "unknown": 0, "cannot-run": 0}
        for g in range(len(self.guests)):
            for a in self.classes:
                for b in self.classes:
                    pairs = host_pairs(a, b)
                    if not pairs:
                        continue
                    cell = self.cells.get((g, a.id, b.id))
                    if cell is not None:
                        out[cell.verdict.value] += pairs
                    elif (
                        self.runnable.get((g, a.id)) is False
                        or self.runnable.get((g, b.id)) is False
                    ):
                        out["cannot-run"] += pairs
                    else:
                        out["unknown"] += pairs  # interrupted before this pair was judged
        return out

    def stranding(self, guest: int) -> dict[str, list[str]]:
        """Per source class, the destination classes the guest cannot safely move to."""
        out: dict[str, list[str]] = {}
        for (g, a, b), cell in self.cells.items():
            if g == guest and cell.verdict is not Verdict.SAFE:
                out.setdefault(a, []).append(b)
        return out


def host_pairs(a: HostClass, b: HostClass) -> int:
    """Ordered pairs of distinct hosts from class ``a`` to class ``b``."""
    n = len(a.hosts)
    return n * (n - 1) if a is b else n * len(b.hosts)


def overall_verdict(result: FleetResult, changes: Sequence[Change] | None = None) -> Verdict:
    """The run's one verdict, the one its exit code states (DESIGN.md's table). A known
    reason to refuse (unsafe) wins over missing data (unknown), as in ``pair``; nothing
    judged is unknown, never safe. With ``changes`` (--assume) only the regressions count:
    unsafe if a cell became unsafe, else unknown if one got worse or nothing was judged."""
    unsafe = any(c.verdict is Verdict.UNSAFE for c in result.cells.values())
    if not result.complete:  # interrupted: what was judged, never safe
        return Verdict.UNSAFE if unsafe else Verdict.UNKNOWN
    judged = bool(result.cells)
    if changes is not None:
        if any(c.became_unsafe for c in changes):
            return Verdict.UNSAFE
        if any(c.regression for c in changes) or not judged:
            return Verdict.UNKNOWN
        return Verdict.SAFE
    if unsafe:
        return Verdict.UNSAFE
    if not judged or result.failed_hosts or result.verdict is Verdict.UNKNOWN:
        return Verdict.UNKNOWN
    return Verdict.SAFE


def start_findings(vm: VmSpec, facts: Facts, catalog: Catalog) -> list[Finding]:
    """The findings of every check that gates "can the guest start here" (the registry's
    ``gates_start``), judged with the host as both source and destination."""
    ctx = Context(vm, facts, facts, catalog)
    return [f for info in registered() if info.gates_start for f in info.func(ctx)]


def can_run(vm: VmSpec, facts: Facts, catalog: Catalog) -> bool | None:
    """Can this host start the guest at all?"""
    return _runnable(start_findings(vm, facts, catalog))


def _runnable(findings: Sequence[Finding]) -> bool | None:
    statuses = {f.status for f in findings}
    if Status.FAIL in statuses:
        return False
    if Status.UNKNOWN in statuses:
        return None
    return True


def classify(
    hosts: Mapping[str, Facts], fingerprints: Mapping[str, str] | None = None
) -> tuple[list[HostClass], dict[str, str]]:
    """Hosts by class, in order of first appearance; ``fingerprints`` (host -> fingerprint,
    from :mod:`migcheck.fleetload`) spares recomputing them."""
    by_fp: dict[str, HostClass] = {}
    host_class: dict[str, str] = {}
    seen: dict[int, tuple[Any, str]] = {}
    for name, facts in hosts.items():
        fp = fingerprints[name] if fingerprints is not None else fingerprint(facts, seen)
        cls = by_fp.get(fp)
        if cls is None:
            cls = HostClass(f"C{len(by_fp) + 1}", fp, facts)
            by_fp[fp] = cls
        cls.hosts.append(name)
        host_class[name] = cls.id
    return list(by_fp.values()), host_class


def evaluate(
    guests: Sequence[VmSpec],
    hosts: Mapping[str, Facts],
    catalog: Catalog,
    *,
    failed_hosts: Mapping[str, str] | None = None,
    both_ways: bool = False,
    strict: bool = False,
    fingerprints: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    accept_unreviewed: bool = False,
) -> FleetResult:
    classes, host_class = classify(hosts, fingerprints)
    runnable: dict[tuple[int, str], bool | None] = {}
    blocked: dict[tuple[int, str], list[Finding]] = {}
    cells: dict[tuple[int, str, str], Cell] = {}
    complete = True
    try:
        for g, vm in enumerate(guests):
            _judge_guest(
                g,
                vm,
                classes,
                catalog,
                runnable,
                blocked,
                cells,
                both_ways,
                strict,
                accept_unreviewed,
            )
            if progress is not None:
                progress(g + 1, len(guests))
    except KeyboardInterrupt:
        complete = False  # Ctrl-C: report what was judged; the rest is unknown
        for g in range(len(guests)):
            for c in classes:
                runnable.setdefault((g, c.id), None)
    hps = [host_platforms(catalog, c.facts) for c in classes]
    for c, hp in zip(classes, hps, strict=True):
        c.effective_platform = hp.effective.id if hp.effective else None
    return FleetResult(
        guests=list(guests),
        classes=classes,
        host_class=host_class,
        failed_hosts=dict(failed_hosts or {}),
        runnable=runnable,
        cannot_start=blocked,
        cells=cells,
        common_platform=recommended_pin(hps) if hps else None,
        baseline_cpu=baseline_cpu([c.facts for c in classes], catalog),
        both_ways=both_ways,
        catalog=catalog,
        platform_graph=PlatformGraph(catalog),
        complete=complete,
    )


class PlatformGraph(Mapping[str, Any]):
    """:func:`migcheck.platforms.graph_view` of ``catalog``, computed on first access: only
    the HTML report draws it, and computing it imports networkx (about 80 ms of a fleet
    run's start-up)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    @cached_property
    def _view(self) -> Mapping[str, Any]:
        return graph_view(self._catalog)

    def __getitem__(self, key: str) -> Any:
        return self._view[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view)

    def __len__(self) -> int:
        return len(self._view)


def _judge_guest(
    g: int,
    vm: VmSpec,
    classes: list[HostClass],
    catalog: Catalog,
    runnable: dict[tuple[int, str], bool | None],
    blocked: dict[tuple[int, str], list[Finding]],
    cells: dict[tuple[int, str, str], Cell],
    both_ways: bool,
    strict: bool,
    accept_unreviewed: bool = False,
) -> None:
    for c in classes:
        found = start_findings(vm, c.facts, catalog)
        runnable[(g, c.id)] = _runnable(found)
        if runnable[(g, c.id)] is False:
            blocked[(g, c.id)] = [f for f in found if f.status is Status.FAIL]
    for a in classes:
        if runnable[(g, a.id)] is False:
            continue
        for b in classes:
            if runnable[(g, b.id)] is False:
                continue
            if a is b and len(a.hosts) < 2:
                continue  # a lone host is not a migration target for itself
            kw = {"strict": strict, "catalog": catalog, "accept_unreviewed": accept_unreviewed}
            report = check_pair(vm, a.facts, b.facts, **kw)
            reverse = None
            verdict = report.verdict
            if both_ways:
                reverse = check_pair(vm, b.facts, a.facts, **kw)
                verdict = combine([verdict, reverse.verdict])
            cells[(g, a.id, b.id)] = Cell(g, a.id, b.id, verdict, report, reverse)


# --- the cluster CPU baseline --------------------------------------------------------------


_VERSIONED = re.compile(r"^(?P<family>.+)-v(?P<version>\d+)$")


def baseline_cpu(hosts: Sequence[Facts], catalog: Catalog) -> str | None:
    """The newest named CPU model usable (no unavailable features) on every host: QEMU's
    advice for mixed fleets, what vSphere calls an EVC baseline. Versioned names only, so
    the answer does not depend on the machine type."""
    families = catalog.cpu_families
    rank = {name: (year, -i) for i, (name, _vendor, year) in enumerate(families)}
    usable: set[str] | None = None
    for facts in hosts:
        models = facts.cpu_models
        if models is None:
            return None
        names = {n for n, m in models.items() if m.get("unavailable_features") == []}
        usable = names if usable is None else usable & names
    best: tuple[tuple[int, int], int, str] | None = None
    for name in usable or ():
        m = _VERSIONED.match(name)
        if not m or m.group("family") not in rank:
            continue
        key = (rank[m.group("family")], int(m.group("version")), name)
        if best is None or key > best:
            best = key
    return best[2] if best else None


# --- what-if -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assumption:
    target: str  # host or group name
    key: str  # kernel | qemu | os
    value: str

    @classmethod
    def parse(cls, text: str) -> Assumption:
        from migcheck.errors import InputError

        m = re.match(r"^(?P<target>[^:=]+):(?P<key>kernel|qemu|os)=(?P<value>\S+)$", text)
        if not m:
            raise InputError(
                f"--assume {text!r}: expected HOST_OR_GROUP:kernel=X.Y.Z, "
                "HOST_OR_GROUP:qemu=X.Y.Z or HOST_OR_GROUP:os=DISTRO-VERSION (e.g. rhel-9.6)"
            )
        return cls(m.group("target"), m.group("key"), m.group("value"))


_RANK = {Verdict.SAFE: 0, Verdict.UNKNOWN: 1, Verdict.UNSAFE: 2, None: 2}


@dataclass(frozen=True)
class Change:
    """A verdict that changes for every migration from ``src`` hosts to ``dst`` hosts."""

    guest: int
    src: tuple[str, ...]  # host names
    dst: tuple[str, ...]
    before: Verdict | None  # None: the guest could not run on one of the hosts
    after: Verdict | None
    reasons: tuple[str, ...]

    @property
    def regression(self) -> bool:
        """Got worse: safe -> unknown, unknown -> unsafe, safe -> unsafe (a guest that
        can no longer run counts as unsafe)."""
        if self.before is None:
            return False
        return _RANK[self.after] > _RANK[self.before]

    @property
    def became_unsafe(self) -> bool:
        return self.regression and self.after in (Verdict.UNSAFE, None)

    @property
    def pairs(self) -> int:
        overlap = len(set(self.src) & set(self.dst))
        return len(self.src) * len(self.dst) - overlap


def compare(before: FleetResult, after: FleetResult) -> list[Change]:
    """Verdict changes, one entry per distinct (before class, after class) pair of hosts, so
    a 10,000-host fleet yields a handful of entries, not 10^8."""
    by_sig: dict[tuple[str, str], list[str]] = {}
    for host, cls in before.host_class.items():
        if host in after.host_class:
            by_sig.setdefault((cls, after.host_class[host]), []).append(host)
    changes: list[Change] = []
    for g in range(len(before.guests)):
        for sa, hosts_a in by_sig.items():
            for sb, hosts_b in by_sig.items():
                if sa == sb and len(hosts_a) < 2:
                    continue  # a lone host to itself is no migration
                b_cell = before.cells.get((g, sa[0], sb[0]))
                a_cell = after.cells.get((g, sa[1], sb[1]))
                v_before = b_cell.verdict if b_cell else None
                v_after = a_cell.verdict if a_cell else None
                if v_before == v_after:
                    continue
                if v_after is None:
                    reasons: tuple[str, ...] = ("the guest can no longer run on one of the hosts",)
                    v_after = Verdict.UNSAFE if v_before is not None else None
                else:
                    reasons = tuple(a_cell.failing) if a_cell else ()
                if v_before == v_after:
                    continue
                changes.append(
                    Change(g, tuple(hosts_a), tuple(hosts_b), v_before, v_after, reasons)
                )
    return changes
