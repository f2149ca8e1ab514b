"""Platforms as a graph, and which platforms a host supports.

Platform P is a superset of Q when P's capabilities include all of Q's. The graph is
computed from capability sets (an edge P -> Q for every strict inclusion, reduced
transitively for display), so a declared ``extends`` can never disagree with it unnoticed.

A host's capabilities come from evidence in its facts, strongest first:

1. a direct probe answer (a KVM capability, a device node, a kvm module parameter);
2. its distro platform, when os-release and kernel release match one (backports count);
3. its upstream kernel version, when the host runs no distro migcheck knows;
4. otherwise unknown: a distribution kernel no platform matches may carry backports, so
   guessing from the version alone could hide a capability and turn into a false "safe".
   Capabilities that also depend on hardware or kernel configuration (``platform = false``
   in the catalog) are unknown without a direct probe answer, unless the kernel is too old.

A host supports P when it certainly has every capability of P. The *effective* platform
(what ``-platform`` omitted means: "the very latest platform compatible with the host") is
the best maximal supported platform; ties between maxima go, in order, to the host's own
distro platform, the platform with more capabilities, a platform no newer than the host's
kernel, the newer kernel base, and the name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from migcheck.catalog import Capability, Catalog, Platform, platform_sort_key, version_tuple
from migcheck.facts import Facts

if TYPE_CHECKING:
    import networkx as nx

# Release-string styles of distribution kernels, which carry backports: for these the
# version number alone misleads. Anything else is taken as a vanilla (upstream) kernel.
_DISTRO_KERNEL_RE = re.compile(
    r"(\.el\d|\.fc\d\d|\.uek|\+deb\d*|\+bpo|-(amd64|arm64|cloud-amd64|rt-amd64)$|"
    r"-\d+-(generic|lowlatency|aws|azure|gcp|oracle|kvm|ibm|nvidia|raspi)|-default$|\.amzn\d)"
)


def is_distro_kernel(release: str) -> bool:
    """``5.14.0-427.el9_4.x86_64``, ``6.1.0-18-amd64``, ``6.8.0-45-generic``: yes;
    ``6.6.30``, ``6.18.44-fc-v595`` (custom builds): no."""
    return bool(_DISTRO_KERNEL_RE.search(release))


class Has(str, Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Evidence:
    has: Has
    why: str  # "KVM_CAP_XSAVE2 = 1", "linux-rhel-9.4 backport", "kernel 6.1 < 6.2", ...


def _kernel_version(release: str | None) -> tuple[int, int] | None:
    m = re.match(r"^(\d+)\.(\d+)", release or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _os_ids(facts: Facts) -> set[str]:
    os_sec = facts.section("os") or {}
    ids = {str(os_sec.get("id", ""))}
    like = os_sec.get("id_like") or []
    if isinstance(like, list):
        ids |= {str(x) for x in like}
    return {i for i in ids if i}


def distro_platform(catalog: Catalog, facts: Facts) -> Platform | None:
    """The distro platform whose os-release and kernel patterns match the host, if any."""
    assumed = (facts.doc.get("assumed") or {}).get("platform")
    if isinstance(assumed, str) and assumed in catalog.platforms:
        return catalog.platforms[assumed]  # what-if: the host is assumed to run this distro
    release = facts.kernel_release
    os_sec = facts.section("os")
    if not release or os_sec is None:
        return None
    ids = _os_ids(facts)
    version = str(os_sec.get("version_id", ""))
    found = [
        p
        for p in catalog.platforms.values()
        if p.kind == "distro"
        and p.os_id in ids
        and (not p.os_version or version == p.os_version or version.startswith(p.os_version + "."))
        and p.matches_kernel(release)
    ]
    # Several can match (an older minor release's pattern); prefer the most specific one.
    found.sort(key=lambda p: (p.os_version == version, len(p.capabilities), p.id), reverse=True)
    return found[0] if found else None


class HostPlatforms:
    """Capabilities and platforms of one host, with the evidence for each."""

    def __init__(self, catalog: Catalog, facts: Facts) -> None:
        self.catalog = catalog
        self.facts = facts
        self.distro = distro_platform(catalog, facts)

    @cached_property
    def evidence(self) -> dict[str, Evidence]:
        return {cid: self._evidence(cap) for cid, cap in self.catalog.capabilities.items()}

    def _evidence(self, cap: Capability) -> Evidence:
        direct = self._direct(cap)
        if direct is not None:
            return direct
        kernel = self._kernel_evidence(cap)
        if kernel.has is Has.YES and not cap.in_platforms:
            # The kernel could do it, but hardware or kernel configuration also decide, and
            # the facts hold no direct answer: say so rather than assume.
            return Evidence(
                Has.UNKNOWN,
                f"{kernel.why}, but {cap.id} also depends on the host's hardware or kernel "
                "configuration, which the facts do not show",
            )
        return kernel

    def _kernel_evidence(self, cap: Capability) -> Evidence:
        """What the kernel alone says: its distro platform, else its upstream version."""
        if self.distro is not None:
            backported = any(b.capability == cap.id for b in self.distro.backports)
            missing = any(b.capability == cap.id for b in self.distro.missing)
            has = backported or (cap.linux_tuple <= self.distro.linux_tuple and not missing)
            how = "backport" if backported else f"kernel base {self.distro.linux}"
            return Evidence(Has.YES if has else Has.NO, f"{self.distro.id} ({how})")
        release = self.facts.kernel_release
        version = _kernel_version(release)
        if release is None or version is None:
            why = self.facts.missing("kernel") or f"kernel release {release!r} unknown"
            return Evidence(Has.UNKNOWN, why)
        if is_distro_kernel(release):
            return Evidence(
                Has.UNKNOWN,
                f"kernel {release} looks like a distribution kernel that no catalogued "
                "platform matches; its backports are unknown",
            )
        has = version >= cap.linux_tuple
        op = ">=" if has else "<"
        return Evidence(Has.YES if has else Has.NO, f"kernel {release} {op} {cap.linux}")

    def _direct(self, cap: Capability) -> Evidence | None:
        kvm = self.facts.section("kvm")
        if cap.kvm_cap and kvm is not None:
            caps = kvm.get("capabilities") or {}
            if cap.kvm_cap in caps:
                value = caps[cap.kvm_cap]
                return Evidence(Has.YES if value > 0 else Has.NO, f"{cap.kvm_cap} = {value}")
        if cap.device:
            devices = self.facts.section("devices") or {}
            if cap.device in devices:
                present = bool(devices[cap.device])
                return Evidence(
                    Has.YES if present else Has.NO,
                    f"{cap.device} {'present' if present else 'absent'}",
                )
        if cap.kvm_param and kvm is not None:
            module = (kvm.get("modules") or {}).get(cap.kvm_param.get("module"))
            if isinstance(module, Mapping):
                value = module.get(cap.kvm_param.get("name"))
                if isinstance(value, str):
                    ok = value in cap.kvm_param.get("values", ["Y", "1"])
                    name = f"{cap.kvm_param.get('module')}.{cap.kvm_param.get('name')}"
                    return Evidence(Has.YES if ok else Has.NO, f"{name} = {value}")
        return None

    def has(self, cap_id: str) -> Has:
        return self.evidence[cap_id].has

    @cached_property
    def supported(self) -> list[Platform]:
        out = []
        for p in self.catalog.platforms.values():
            if all(self.evidence[c].has is Has.YES for c in p.capabilities):
                out.append(p)
        return sorted(out, key=lambda p: platform_sort_key(p.id))

    @cached_property
    def maximal(self) -> list[Platform]:
        sup = self.supported
        return [p for p in sup if not any(q.capabilities > p.capabilities for q in sup)]

    @cached_property
    def effective(self) -> Platform | None:
        if not self.maximal:
            return None
        return max(self.maximal, key=self._preference)

    def _preference(self, p: Platform) -> tuple[int, int, int, tuple[int, ...], tuple]:
        own = 1 if self.distro is not None and p.id == self.distro.id else 0
        # Among equal sets, do not name a kernel newer than the one the host runs.
        kernel = _kernel_version(self.facts.kernel_release)
        fits = 1 if kernel is None or version_tuple(p.linux) <= kernel else 0
        return (own, len(p.capabilities), fits, version_tuple(p.linux), platform_sort_key(p.id))

    @cached_property
    def unknown(self) -> list[str]:
        return sorted(c for c, e in self.evidence.items() if e.has is Has.UNKNOWN)


@lru_cache(maxsize=65536)
def host_platforms(catalog: Catalog, facts: Facts) -> HostPlatforms:
    """One HostPlatforms per (catalog, facts): a fleet judges each host many times."""
    return HostPlatforms(catalog, facts)


def common_platforms(hosts: Iterable[HostPlatforms]) -> list[Platform]:
    """Platforms every host supports."""
    hosts = list(hosts)
    if not hosts:
        return []
    ids = set.intersection(*({p.id for p in h.supported} for h in hosts))
    catalog = hosts[0].catalog
    return sorted((catalog.platforms[i] for i in ids), key=lambda p: platform_sort_key(p.id))


def recommended_pin(hosts: Iterable[HostPlatforms]) -> Platform | None:
    """The greatest common platform: most capabilities, then newest, upstream before distro
    names on a tie (an upstream name means the same thing on every host)."""
    hosts = list(hosts)
    if not hosts:
        return None
    # The key below orders every platform (its id breaks ties), so the common set need not
    # be sorted first, as common_platforms() does for display.
    ids = set.intersection(*({p.id for p in h.supported} for h in hosts))
    common = [hosts[0].catalog.platforms[i] for i in ids]
    if not common:
        return None
    kernels = [_kernel_version(h.facts.kernel_release) for h in hosts]
    oldest = min((k for k in kernels if k is not None), default=None)

    def key(p: Platform) -> tuple[int, bool, bool, tuple[int, ...], str]:
        # Equal sets: do not name a kernel newer than the oldest host runs.
        fits = oldest is None or version_tuple(p.linux) <= oldest
        return (len(p.capabilities), fits, p.kind == "upstream", version_tuple(p.linux), p.id)

    return max(common, key=key)


def superset_graph(catalog: Catalog) -> nx.DiGraph:
    """Edge P -> Q when P strictly includes Q; platforms with equal sets get no edge."""
    import networkx as nx

    g = nx.DiGraph()
    plats = list(catalog.platforms.values())
    for p in plats:
        g.add_node(p.id, kind=p.kind, linux=p.linux, capabilities=len(p.capabilities))
    for p in plats:
        for q in plats:
            if p is not q and p.capabilities > q.capabilities:
                g.add_edge(p.id, q.id)
    return g


def equivalence_classes(catalog: Catalog) -> dict[str, list[str]]:
    """Platforms grouped by identical capability sets, keyed by a representative: the
    oldest upstream platform of the group (the first kernel with exactly that set), else
    the first distro platform by name."""
    groups: dict[frozenset[str], list[str]] = {}
    for p in catalog.platforms.values():
        groups.setdefault(p.capabilities, []).append(p.id)
    out = {}
    for members in groups.values():
        members.sort(key=platform_sort_key)
        out[members[0]] = members
    return out


def reduced_graph(catalog: Catalog) -> nx.DiGraph:
    """Direct supersets between equivalence classes (transitive reduction), for display.
    Node ids are class representatives; ``members`` lists every platform in the class."""
    import networkx as nx

    classes = equivalence_classes(catalog)
    g = nx.DiGraph()
    for rep, members in classes.items():
        p = catalog.platforms[rep]
        g.add_node(rep, members=members, kind=p.kind, capabilities=len(p.capabilities))
    for a in classes:
        for b in classes:
            if catalog.platforms[a].capabilities > catalog.platforms[b].capabilities:
                g.add_edge(a, b)
    if not nx.is_directed_acyclic_graph(g):  # strict inclusion cannot cycle; guard anyway
        from migcheck.catalog import CatalogError

        raise CatalogError(catalog.root, f"platform graph has a cycle: {nx.find_cycle(g)}")
    reduced = nx.transitive_reduction(g)
    reduced.add_nodes_from(g.nodes(data=True))
    return reduced


def _class_of(catalog: Catalog, platform_id: str) -> str:
    for rep, members in equivalence_classes(catalog).items():
        if platform_id in members:
            return rep
    raise KeyError(platform_id)


def parents(catalog: Catalog, platform_id: str) -> list[str]:
    """Direct subsets (what this platform extends), as class representatives."""
    g = reduced_graph(catalog)
    return sorted(g.successors(_class_of(catalog, platform_id)), key=platform_sort_key)


def children(catalog: Catalog, platform_id: str) -> list[str]:
    """Direct supersets, as class representatives."""
    g = reduced_graph(catalog)
    return sorted(g.predecessors(_class_of(catalog, platform_id)), key=platform_sort_key)


def equivalents(catalog: Catalog, platform_id: str) -> list[str]:
    """Other platforms with exactly the same capabilities (e.g. linux-6.3 when no
    catalogued capability arrived in 6.3)."""
    caps = catalog.platforms[platform_id].capabilities
    return sorted(
        (
            p.id
            for p in catalog.platforms.values()
            if p.id != platform_id and p.capabilities == caps
        ),
        key=platform_sort_key,
    )


# --- views: plain data for renderers (which never import the catalog or this module) ----


def _identity(p: Platform) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind,
        "title": p.title,
        "linux": p.linux,
        "released": p.released,
        "lts": p.lts,
    }


def list_view(catalog: Catalog) -> list[dict[str, Any]]:
    """Every platform, upstream first then distributions, as ``platforms list`` shows it."""
    return [
        _identity(p)
        | {
            "capabilities": sorted(p.capabilities),
            "os": {"id": p.os_id, "version_id": p.os_version} if p.kind == "distro" else None,
            "kernel": list(p.kernel_patterns),
        }
        for p in sorted(catalog.platforms.values(), key=lambda p: platform_sort_key(p.id))
    ]


def show_view(catalog: Catalog, name: str) -> dict[str, Any]:
    """One platform with its capabilities and sources, parents, children and equivalents."""
    p = catalog.platform(name)

    def via(cap_id: str) -> str:
        return "backport" if any(b.capability == cap_id for b in p.backports) else "kernel"

    return _identity(p) | {
        "extends": p.extends,
        "parents": parents(catalog, p.id),
        "children": children(catalog, p.id),
        "equivalent": equivalents(catalog, p.id),
        "capabilities": [
            {
                "id": c.id,
                "title": c.title,
                "linux": c.linux,
                "verified": c.verified,
                "via": via(c.id),
                "sources": [dict(s) for s in c.sources],
            }
            for c in sorted(
                (catalog.capabilities[cid] for cid in p.capabilities),
                key=lambda c: (c.linux_tuple, c.id),
            )
        ],
        "backports": [b.__dict__ for b in p.backports],
        "missing": [b.__dict__ for b in p.missing],
        "sources": [dict(s) for s in p.sources],
        "note": p.note,
    }


def graph_view(catalog: Catalog) -> dict[str, Any]:
    """The reduced superset graph: ``classes`` (representative -> members, capability
    count), in display order, and ``edges`` from a superset to its direct subset."""
    g = reduced_graph(catalog)
    order = sorted(g.nodes, key=platform_sort_key)
    return {
        "nodes": list_view(catalog),
        "classes": {
            n: {"members": g.nodes[n]["members"], "capabilities": g.nodes[n]["capabilities"]}
            for n in order
        },
        "edges": [{"superset": a, "subset": b} for a, b in sorted(g.edges)],
    }
