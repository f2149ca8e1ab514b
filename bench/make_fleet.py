"""Make a benchmark fleet from the real captures in fixtures/hosts.

Two forms, as an operator has them:

* ``files``: N facts files in DIR as ``gather --out-dir DIR`` writes them (indented, sorted
  keys), with the QEMU builds they reference once in ``DIR/qemu-builds/``.
* ``cache``: N hosts named in ``DIR/inventory.ini`` whose facts sit in the probe cache under
  ``DIR/cache`` (use it as ``XDG_CACHE_HOME``), written as the gatherer writes them, with the
  builds in that cache's local store.

Variety: the two captures (QEMU 7.2 and 10.0) x 4 kernel/distro pairs x 4 CPU flag sets
(hosts of one CPU model that differ in microcode-gated or BIOS-disabled features) = 32
classes; every host has its own name, microcode revision, gather time and probe timings,
which no check reads, so they must not split a class.

Run: .venv/bin/python bench/make_fleet.py files DIR --hosts 1000
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "hosts"
KERNELS = [
    ("6.1.0-18-amd64", {"id": "debian", "id_like": [], "version_id": "12"}),
    ("6.8.0-45-generic", {"id": "ubuntu", "id_like": ["debian"], "version_id": "24.04"}),
    ("5.14.0-427.13.1.el9_4.x86_64", {"id": "rhel", "id_like": ["fedora"], "version_id": "9.4"}),
    ("6.6.30", {"id": "arch", "id_like": [], "version_id": ""}),
]
# Flags both captures report; each set is dropped from cpu.flags for a quarter of the hosts.
DROPPED_FLAGS = [(), ("vaes",), ("vaes", "vpclmulqdq"), ("sha_ni", "xsaves")]


def shape_docs() -> list[dict]:
    bases = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]
    shapes = []
    for base in bases:
        for kernel, os_release in KERNELS:
            for dropped in DROPPED_FLAGS:
                doc = json.loads(json.dumps(base))
                doc["kernel"]["release"] = kernel
                doc["os"] = dict(os_release, pretty_name=f"{os_release['id']} {kernel}")
                doc["cpu"]["flags"] = [f for f in doc["cpu"]["flags"] if f not in dropped]
                shapes.append(doc)
    return shapes


def host_doc(shape: dict, i: int, rng: random.Random, transport: str) -> dict:
    doc = dict(shape)
    name = f"hv{i:05d}.dc{i % 7}.example.net"
    doc["cpu"] = dict(shape["cpu"], microcode=hex(0x1000065 + rng.randrange(4)))
    doc["probe"] = dict(shape["probe"], seconds=round(rng.uniform(0.05, 2.5), 3))
    doc["host"] = {
        "gather_seconds": round(rng.uniform(0.3, 4.0), 3),
        "gathered_at": f"2026-12-0{1 + i % 7}T{i % 24:02d}:{i % 60:02d}:{i * 7 % 60:02d}+00:00",
        "migcheck_version": "0.1.0",
        "name": name,
        "target": name,
        "transport": transport,
    }
    return doc


def copy_builds(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for build in (FIXTURES / "qemu-builds").glob("*.json"):
        shutil.copyfile(build, dest / build.name)


def make_files(out: Path, n: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    copy_builds(out / "qemu-builds")
    shapes = shape_docs()
    rng = random.Random(25)
    for i in range(n):
        # Hosts of a class are not adjacent: a rack mixes configurations.
        doc = host_doc(shapes[(i * 7) % len(shapes)], i, rng, "ssh")
        (out / f"{doc['host']['name']}.json").write_text(
            json.dumps(doc, indent=1, sort_keys=True) + "\n"
        )


def make_cache(out: Path, n: int) -> None:
    import os

    os.environ["XDG_CACHE_HOME"] = str(out / "cache")
    import hashlib
    import time

    from migcheck.gather import CACHE_FORMAT, dumps_cache_entry, usable_cache_dir

    shapes = shape_docs()
    rng = random.Random(25)
    lines = ["[hypervisors]"]
    for i in range(n):
        doc = host_doc(shapes[(i * 7) % len(shapes)], i, rng, "ssh")
        name = doc["host"]["name"]
        lines.append(name)
        doc["host"]["target"] = name  # the HOST text it was gathered as
        key = hashlib.sha256(name.encode()).hexdigest()[:32]
        entry = {  # the shape Gatherer._store writes
            "format": CACHE_FORMAT,
            "key": key,
            "identity": {"target": name},
            "stored_unix": time.time(),
            "facts": doc,
        }
        (usable_cache_dir() / f"{key}.json").write_text(dumps_cache_entry(entry))
    copy_builds(out / "cache" / "migcheck" / "qemu-builds")
    (out / "inventory.ini").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("form", choices=("files", "cache"))
    parser.add_argument("dir", type=Path)
    parser.add_argument("--hosts", type=int, default=1000)
    args = parser.parse_args()
    if args.dir.exists():
        shutil.rmtree(args.dir)
    (make_files if args.form == "files" else make_cache)(args.dir, args.hosts)
    print(f"{args.form}: {args.hosts} hosts in {args.dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
