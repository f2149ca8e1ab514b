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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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
    # created by the machine, not -device: the q35 LPC, the i440fx PM, the keyboard
    # controller and the default CPU model
    "ICH9-LPC",
    "PIIX4_PM",
    "i8042",
    "qemu64-x86_64-cpu",
]
CPU = "qemu64-x86_64-cpu"
COMPAT = HERE.parents[2] / "migcheck" / "catalog" / "data" / "qemu" / "compat"


def cpu_props_in_table() -> set[str]:
    """The CPU's properties are 400-500: keep those a compat entry names (x86_64-cpu)."""
    out = set()
    for path in COMPAT.glob("*.toml"):
        for e in tomllib.loads(path.read_text()).get("compat", []):
            if e["driver"].endswith("x86_64-cpu"):
                out.add(e["property"])
    return out


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
    keep_cpu = cpu_props_in_table()
    out["device-list-properties"][CPU] = [
        p for p in out["device-list-properties"][CPU] if p["name"] in keep_cpu
    ]
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
