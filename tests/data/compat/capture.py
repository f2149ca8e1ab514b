"""Re-capture the real QEMU answers tests/test_compat.py reads (run as root, from tests/).

    cd tests && python3 data/compat/capture.py

Writes, per build (Debian 12's QEMU 7.2 on the host, Debian 13's 10.0 in the chroot), only
what the tests need: query-version, the qom-list-types entries on the ancestry of the
tested devices (and their virtio backends), device-list-properties of those devices, and
for 10.0 query-machines {"compat-props": true} for pc-i440fx-/pc-q35- 6.0 and newer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from qmp_run import run_qmp  # noqa: E402

DEVICES = [
    "virtio-net-pci",
    "virtio-rng-pci",
    "virtio-balloon-pci",
    "virtio-blk-pci",
    "e1000",
    "e1000e",
    "pvpanic",
    "pvpanic-pci",
]
BACKENDS = ["virtio-net-device", "virtio-rng-device", "virtio-balloon-device", "virtio-blk-device"]


def capture(chroot: bool) -> dict:
    version, types = run_qmp(
        [
            {"execute": "query-version"},
            {"execute": "qom-list-types", "arguments": {"abstract": True}},
        ],
        chroot=chroot,
    )
    by_name = {t["name"]: t for t in types["return"]}
    keep: dict[str, dict] = {}
    for name in DEVICES + BACKENDS:
        while name and name not in keep:
            keep[name] = by_name[name]
            name = by_name[name].get("parent")
    props = run_qmp(
        [{"execute": "device-list-properties", "arguments": {"typename": d}} for d in DEVICES],
        chroot=chroot,
    )
    out = {
        "query-version": version["return"],
        "qom-list-types": sorted(keep.values(), key=lambda t: t["name"]),
        "device-list-properties": {d: r["return"] for d, r in zip(DEVICES, props, strict=True)},
    }
    return out


def main() -> None:
    for chroot, name in ((False, "qemu-7.2"), (True, "qemu-10.0")):
        doc = capture(chroot)
        (HERE / f"{name}-devices.json").write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")
    (machines,) = run_qmp(
        [{"execute": "query-machines", "arguments": {"compat-props": True}}], chroot=True
    )
    keep = {}
    for m in machines["return"]:
        name = m["name"]
        fam, _, ver = name.rpartition("-")
        if (
            fam in ("pc-q35", "pc-i440fx")
            and ver.count(".") == 1
            and tuple(int(p) for p in ver.split(".")) >= (6, 0)
        ):
            keep[name] = m.get("compat-props", [])
    (HERE / "qemu-10.0-compat-props.json").write_text(
        json.dumps({"query-machines compat-props": keep}, indent=0, sort_keys=True) + "\n"
    )


if __name__ == "__main__":
    main()
