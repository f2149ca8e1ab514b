"""The guest-visible ABI of a running QEMU, read over QMP, and a comparison of two of them.

A completed migration proves little: QEMU compares only the virtio features a guest driver
acked against what the destination offers, and CPUID is not in the migration stream, so a
destination that offers fewer virtio features or filters a CPU feature loads the state
silently. The snapshot therefore reads what the guest would see:

- per vCPU, ``feature-words`` and ``filtered-features`` (``qom-get`` on the paths from
  ``query-cpus-fast``; QEMU's target/i386/cpu.c, x86_cpu_get_feature_words);
- per virtio device, the features it offers (``host-features`` of ``x-query-virtio-status``
  on its ``virtio-backend``, paths from ``x-query-virtio``; hw/virtio/virtio-qmp.c, QEMU >= 7.2);
- every device's properties, from ``info qtree`` (softmmu/qdev-monitor.c, qdev_print_props).

``compare`` applies the normalisations in ISSUE-NOTES.md (issue 23, "Comparing the ABI without
false alarms") so that representation changes between builds are not reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from migcheck.trial.qmp import QmpClient, QmpError

# Properties naming host-side backends: the guest never sees the name, and a command line
# with anonymous backends (-nic, -drive) gets build-specific names (softmmu/vl.c, net/net.c).
BACKEND_LINKS = frozenset({"netdev", "drive", "chardev", "audiodev", "memdev", "iothread"})

# Bits that 7.2 ORs into CPUID at run time (target/i386/cpu.c, cpu_x86_cpuid: leaf 1
# ``*edx |= CPUID_HT`` when cores * threads > 1; CmpLegacy likewise for leaf 0x80000001) but
# 10.0 keeps in env->features (target/i386/cpu.c, x86_cpu_expand_features: CPUID_HT and
# CPUID_EXT3_CMP_LEG when x86_threads_per_pkg > 1), so ``feature-words`` differ although the
# guest reads the same CPUID. Measured: -smp 2 reports them on 10.0 only.
RUNTIME_BITS = {
    (1, 0, "EDX"): 1 << 28,  # HTT
    (0x80000001, 0, "ECX"): 1 << 1,  # CmpLegacy
}

# Virtio feature bit numbers, for names one build decodes while the other lists the bit as
# unknown (hw/virtio/virtio-qmp.c, the *_map arrays; bit numbers from the virtio 1.2 spec
# and include/standard-headers/linux/virtio_*.h).
VIRTIO_BITS = {
    "VIRTIO_F_NOTIFY_ON_EMPTY": 24,
    "VIRTIO_F_ANY_LAYOUT": 27,
    "VIRTIO_RING_F_INDIRECT_DESC": 28,
    "VIRTIO_RING_F_EVENT_IDX": 29,
    "VHOST_USER_F_PROTOCOL_FEATURES": 30,
    "VIRTIO_F_BAD_FEATURE": 30,
    "VIRTIO_F_VERSION_1": 32,
    "VIRTIO_F_IOMMU_PLATFORM": 33,
    "VIRTIO_F_ACCESS_PLATFORM": 33,
    "VIRTIO_F_RING_PACKED": 34,
    "VIRTIO_F_IN_ORDER": 35,
    "VIRTIO_F_ORDER_PLATFORM": 36,
    "VIRTIO_F_SR_IOV": 37,
    "VIRTIO_F_NOTIFICATION_DATA": 38,
    "VIRTIO_F_NOTIF_CONFIG_DATA": 39,
    "VIRTIO_F_RING_RESET": 40,
    "VIRTIO_F_ADMIN_VQ": 41,
}


class AbiError(Exception):
    """The snapshot could not be taken (QEMU died or refused a query): the comparison is
    unknown, naming the query."""


@dataclass
class Snapshot:
    """What the guest sees. Keys are stable across builds (see the ``_key`` helpers)."""

    cpus: dict[str, dict[str, int]] = field(default_factory=dict)  # vcpu -> word -> bits
    filtered: dict[str, dict[str, int]] = field(default_factory=dict)
    virtio: dict[str, dict[str, Any]] = field(default_factory=dict)  # device -> features
    devices: dict[str, dict[str, str]] = field(default_factory=dict)  # qtree key -> props
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Difference:
    what: str
    source: Any
    destination: Any

    def __str__(self) -> str:
        return f"{self.what}: source {self.source!r}, destination {self.destination!r}"


def _words(value: Any) -> dict[str, int]:
    """``feature-words`` list -> {"CPUID.<eax>h.<ecx>:<reg>": bits}, run-time bits masked."""
    out: dict[str, int] = {}
    for word in value if isinstance(value, list) else []:
        eax = int(word.get("cpuid-input-eax", 0))
        ecx = int(word.get("cpuid-input-ecx", 0) or 0)
        reg = str(word.get("cpuid-register"))
        bits = int(word.get("features", 0)) & ~RUNTIME_BITS.get((eax, ecx, reg), 0)
        out[f"CPUID.{eax:X}h.{ecx}:{reg}"] = bits
    return out


def _virtio_features(status: dict[str, Any]) -> dict[str, Any]:
    """host-features -> {"names": decoded constant names, "unknown": bitmask}."""
    host = status.get("host-features") or {}
    names: set[str] = set()
    for group in ("transports", "dev-features"):
        for text in host.get(group) or []:
            names.add(str(text).split(":", 1)[0].strip())
    return {"names": names, "unknown": int(host.get("unknown-dev-features") or 0)}


_DEV_RE = re.compile(r'^dev: ([^,]+), id "(.*)"$')
_PROP_RE = re.compile(r"^([A-Za-z0-9_.\-]+) = (.*)$")


def parse_qtree(text: str) -> dict[str, dict[str, str]]:
    """``info qtree`` -> {device key: {property: value}}.

    A device's key is its parent's key, its bus name, then ``type#id`` when it has an id,
    ``type@addr`` when it has an address (creation order of anonymous devices is not part
    of the ABI, their slot is), else ``type[k]`` (the k-th of that type on that bus)."""
    # Each node: (indent, kind, parent node index, own key segment); devices get props.
    nodes: list[tuple[int, str, int, str]] = []
    props: dict[int, dict[str, str]] = {}
    stack: list[int] = []
    counts: dict[tuple[int, str], int] = {}
    for raw in text.splitlines():
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        while stack and nodes[stack[-1]][0] >= indent:
            stack.pop()
        parent = stack[-1] if stack else -1
        if line.startswith("bus: "):
            nodes.append((indent, "bus", parent, line[5:]))
            stack.append(len(nodes) - 1)
            continue
        match = _DEV_RE.match(line)
        if match:
            dtype, ident = match.group(1), match.group(2)
            n = counts.get((parent, dtype), 0)
            counts[(parent, dtype)] = n + 1
            nodes.append((indent, "dev", parent, f"{dtype}#{ident}" if ident else f"{dtype}[{n}]"))
            props[len(nodes) - 1] = {}
            stack.append(len(nodes) - 1)
            continue
        prop = _PROP_RE.match(line)
        if prop and stack and nodes[stack[-1]][1] == "dev" and indent > nodes[stack[-1]][0]:
            props[stack[-1]][prop.group(1)] = prop.group(2).strip()

    def segment(index: int) -> str:
        seg = nodes[index][3]
        addr = props.get(index, {}).get("addr")
        if addr and "#" not in seg:
            seg = f"{seg.split('[')[0]}@{addr.strip(chr(34))}"
        return seg

    keys: dict[int, str] = {}
    for index, node in enumerate(nodes):  # parents come before their children
        keys[index] = f"{keys.get(node[2], '')}/{segment(index)}"
    return {keys[index]: values for index, values in props.items()}


def snapshot(qmp: QmpClient, timeout: float = 10.0, virtio: bool = True) -> Snapshot:
    """Read the guest-visible ABI. Raises AbiError naming the query that failed."""
    snap = Snapshot()

    def run(cmd: str, args: dict[str, Any] | None = None) -> Any:
        try:
            return qmp.execute(cmd, args, timeout=timeout)
        except QmpError as err:
            raise AbiError(f"{cmd} {args or ''}: {err}".strip()) from None

    qtree = run("human-monitor-command", {"command-line": "info qtree"})
    snap.devices = parse_qtree(str(qtree))
    for cpu in run("query-cpus-fast") or []:
        path, index = cpu.get("qom-path"), cpu.get("cpu-index")
        snap.cpus[f"vcpu{index}"] = _words(
            run("qom-get", {"path": path, "property": "feature-words"})
        )
        snap.filtered[f"vcpu{index}"] = _words(
            run("qom-get", {"path": path, "property": "filtered-features"})
        )
    if virtio:
        try:
            found = qmp.execute("x-query-virtio", timeout=timeout)
        except QmpError as err:
            if "No virtio devices found" in str(err):  # hw/virtio/virtio-qmp.c: qmp_x_query_virtio
                return snap
            if err.error_class == "CommandNotFound":  # QEMU < 7.2: not comparable
                snap.notes.append("x-query-virtio not available: virtio features not compared")
                return snap
            raise AbiError(f"x-query-virtio: {err}") from None
        anon: dict[str, list[tuple[int, str]]] = {}
        keyed: list[tuple[str, str]] = []
        for dev in found or []:
            path, name = str(dev.get("path")), str(dev.get("name"))
            match = re.match(r"^/machine/peripheral/([^/]+)/", path)
            if match:
                keyed.append((f"{name}#{match.group(1)}", path))
            else:
                number = re.search(r"device\[(\d+)\]", path)
                anon.setdefault(name, []).append((int(number.group(1)) if number else 0, path))
        # Anonymous devices' QOM paths differ in N between builds: rank them instead.
        for name, items in anon.items():
            for rank, (_, path) in enumerate(sorted(items)):
                keyed.append((f"{name}[{rank}]", path))
        for key, path in keyed:
            snap.virtio[key] = _virtio_features(run("x-query-virtio-status", {"path": path}))
    return snap


def _bits_of(features: dict[str, Any]) -> tuple[set[str], int]:
    """Names with a known bit number go into the bitmask; the rest stay names."""
    names, mask = set(), int(features["unknown"])
    for name in features["names"]:
        if name in VIRTIO_BITS:
            mask |= 1 << VIRTIO_BITS[name]
        else:
            names.add(name)
    return names, mask


def _int(value: str) -> int | None:
    try:
        return int(value.split()[0], 0)
    except (ValueError, IndexError):
        return None


def _same_prop(name: str, a: str, b: str) -> bool:
    if a == b:
        return True
    if name == "rombar":  # int32 since 9.1 with -1 = auto: only zero vs non-zero matters
        ia, ib = _int(a), _int(b)
        if ia is not None and ib is not None:
            return (ia == 0) == (ib == 0)
    # 0 = "from the backend" on 10.0; the resolved size is the backend's, the same on both
    # sides for the same command line.
    return name.endswith("_block_size") and (_int(a) == 0 or _int(b) == 0)


def compare(src: Snapshot, dst: Snapshot) -> list[Difference]:
    """Differences a guest could notice, after the representation normalisations."""
    diffs: list[Difference] = []
    for label, left, right in (
        ("CPUID", src.cpus, dst.cpus),
        ("filtered", src.filtered, dst.filtered),
    ):
        for vcpu in sorted(set(left) | set(right)):
            a, b = left.get(vcpu, {}), right.get(vcpu, {})
            for word in sorted(set(a) | set(b)):
                # A word one build does not model is what that build gives the guest: 0.
                va, vb = a.get(word, 0), b.get(word, 0)
                if va != vb:
                    what = f"{vcpu} {label} {word} bits {va ^ vb:#x}"
                    diffs.append(Difference(what, hex(va), hex(vb)))
    for dev in sorted(set(src.virtio) | set(dst.virtio)):
        if dev not in src.virtio or dev not in dst.virtio:
            diffs.append(Difference(f"virtio {dev}", dev in src.virtio, dev in dst.virtio))
            continue
        na, ma = _bits_of(src.virtio[dev])
        nb, mb = _bits_of(dst.virtio[dev])
        if ma != mb:
            diffs.append(Difference(f"virtio {dev} feature bits {ma ^ mb:#x}", hex(ma), hex(mb)))
        if na != nb:
            diffs.append(Difference(f"virtio {dev} features", sorted(na - nb), sorted(nb - na)))
    for dev in sorted(set(src.devices) | set(dst.devices)):
        if dev not in src.devices or dev not in dst.devices:
            diffs.append(Difference(f"device {dev}", dev in src.devices, dev in dst.devices))
            continue
        a, b = src.devices[dev], dst.devices[dev]
        # A property one build lacks cannot be compared: the older build behaves as the
        # newer one's compat value for that machine type, which qtree does not show.
        for name in sorted(set(a) & set(b)):
            if name in BACKEND_LINKS:
                continue
            if not _same_prop(name, a[name], b[name]):
                diffs.append(Difference(f"device {dev} {name}", a[name], b[name]))
    return diffs
