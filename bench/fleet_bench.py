"""Benchmark: fleet matrix and baseline for 10,000 hosts built from real fixture variations.

The hosts are the two bundled real captures (QEMU 7.2 and 10.0 under KVM) varied the way
real fleets vary: kernel release and distro (Debian 12, Ubuntu 24.04, RHEL 9.4, vanilla)
and QEMU release (via the what-if machinery, which recomputes machine types from the
release facts). Sections are shared between hosts, as facts of identical hypervisors are.

Run: .venv/bin/python bench/fleet_bench.py [--hosts 10000] [--runs 5]
Prints the median/min/max of classify + matrix + baseline wall time and the peak RSS.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import time
from pathlib import Path

from migcheck.catalog import load_catalog
from migcheck.cmdline import parse_cmdline
from migcheck.facts import Facts, load_facts
from migcheck.fleet import evaluate
from migcheck.whatif import assume

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "hosts"
GUESTS = [
    "-machine pc-q35-8.2 -accel kvm -cpu host -netdev tap,id=n0 -device virtio-net-pci,netdev=n0",
    "-machine q35 -accel kvm -cpu pentium3",
    "-machine pc-q35-7.2 -accel kvm -cpu pentium3 -overcommit cpu-pm=on",
]
KERNELS = [
    ("6.1.0-18-amd64", {"id": "debian", "id_like": [], "version_id": "12"}),
    ("6.8.0-45-generic", {"id": "ubuntu", "id_like": ["debian"], "version_id": "24.04"}),
    ("5.14.0-427.13.1.el9_4.x86_64", {"id": "rhel", "id_like": ["fedora"], "version_id": "9.4"}),
    ("6.6.30", {"id": "arch", "id_like": [], "version_id": ""}),
]
QEMUS = [None, "8.2.0", "9.2.0", "10.2.0"]


def shapes(catalog) -> list[Facts]:
    out = []
    bases = [load_facts(p) for p in sorted(FIXTURES.glob("*.json"))]
    for base, (kernel, os_release), qemu in itertools.product(bases, KERNELS, QEMUS):
        doc = dict(base.doc)
        doc["kernel"] = dict(doc["kernel"], release=kernel)
        doc["os"] = os_release
        facts = Facts(doc, "shape")
        if qemu:
            facts = assume(facts, "qemu", qemu, catalog)
        out.append(facts)
    return out


def build(n: int, catalog) -> dict[str, Facts]:
    variants = shapes(catalog)
    hosts = {}
    for i in range(n):
        shape = variants[i % len(variants)]
        doc = dict(shape.doc)  # shallow: sections shared, only the host record differs
        doc["host"] = {"name": f"hv{i:05d}"}
        hosts[f"hv{i:05d}"] = Facts(doc, f"hv{i:05d}")
    return hosts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    catalog = load_catalog()
    guests = [parse_cmdline(t, f"guest{i}.cmdline") for i, t in enumerate(GUESTS)]
    hosts = build(args.hosts, catalog)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        result = evaluate(guests, hosts, catalog)
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.hosts} hosts, {len(result.classes)} classes, {len(guests)} guests, "
        f"{len(result.cells)} class-pair cells"
    )
    print(
        f"classify + matrix + baseline: median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s, max {max(times):.3f} s (n={args.runs})"
    )
    print(f"peak RSS: {peak_mib:.0f} MiB; baseline CPU: {result.baseline_cpu}")


if __name__ == "__main__":
    main()
