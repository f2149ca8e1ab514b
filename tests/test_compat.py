"""Effective device defaults per machine type: the sourced compat table, effective_default()
and the compat.defaults check, on real QEMU answers.

Real data only: tests/data/compat/ holds what Debian 12's QEMU 7.2 and Debian 13's QEMU
10.0 answered (device-list-properties, qom-list-types, query-machines compat-props;
re-capture with data/compat/capture.py), and the instance tests start those QEMUs and
qom-get the properties of devices built under each machine type.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import require
from qemudata import fixture_facts, with_changes
from qmp_run import CHROOT, HOST_QEMU, chroot_qemu, qmp_session, run_qmp

from migcheck.catalog import CatalogError
from migcheck.catalog.compat import (
    UNKNOWN,
    effective_default,
    is_unknown,
    load_compat,
    shipped_compat,
)
from migcheck.checks.base import Context, Status
from migcheck.checks.compat import check_defaults
from migcheck.cmdline import parse_cmdline
from migcheck.facts import Facts

DATA = Path(__file__).resolve().parent / "data" / "compat"
COMPAT_DIR = (
    Path(__file__).resolve().parents[1] / "migcheck" / "catalog" / "data" / "qemu" / "compat"
)


class CapturedBuild:
    """The BuildData interface (migcheck/build.py on the buildschema branch) over real QMP
    answers captured from one QEMU build: what that branch stores, in its shape."""

    def __init__(self, name: str) -> None:
        doc = json.loads((DATA / f"{name}-devices.json").read_text())
        ver = doc["query-version"]["qemu"]
        self.key = f"{name}-captured"
        self.version = f"{ver['major']}.{ver['minor']}.{ver['micro']}"
        self.device_types = {
            t["name"]: {"parent": t.get("parent"), "abstract": bool(t.get("abstract"))}
            for t in doc["qom-list-types"]
        }
        self._props = {
            drv: {
                p["name"]: {"type": p["type"]}
                | ({"default": p["default-value"]} if "default-value" in p else {})
                for p in props
            }
            for drv, props in doc["device-list-properties"].items()
        }
        self._compat: dict[str, list[dict[str, str]]] | None = None
        compat = DATA / f"{name}-compat-props.json"
        if compat.is_file():  # QEMU >= 9.1 only: 7.2 cannot say
            self._compat = json.loads(compat.read_text())["query-machines compat-props"]
        self.netdevs = self.block_drivers = self.vmstate = self.firmware = None

    def device_props(self, driver: str) -> dict[str, dict[str, Any]] | None:
        return self._props.get(driver)

    def machine_compat(self, machine: str) -> list[dict[str, str]] | None:
        if self._compat is None:
            return None
        return self._compat.get(machine)


@cache
def build(name: str) -> CapturedBuild:
    return CapturedBuild(name)


class BuildFacts(Facts):
    """Facts with captured per-build data attached in place of the store's (the real QMP
    answers of one build, in BuildData's shape)."""

    def __init__(self, base: Facts, build: Any, missing: str | None = None) -> None:
        super().__init__(base.doc, base.origin)
        object.__setattr__(self, "_build", build)
        object.__setattr__(self, "_missing", missing)

    @property
    def build(self) -> Any:  # type: ignore[override]
        return self._build

    @property
    def build_missing(self) -> str | None:  # type: ignore[override]
        return self._missing


def facts(fixture: str, build_name: str | None, **qemu_changes: Any) -> BuildFacts:
    base = fixture_facts(fixture)
    if qemu_changes:
        base = with_changes(base, qemu={**base.doc["qemu"], **qemu_changes})
    if build_name is None:
        return BuildFacts(base, None, "qemu build 'deb12-7.2.22' not stored")
    return BuildFacts(base, build(build_name))


SRC72 = "debian12-qemu7.2-epyc-pvm.json"
DST10 = "debian13-qemu10.0-epyc-pvm.json"


def judge(cmdline: str, src: Facts, dst: Facts) -> list[Any]:
    return check_defaults(Context(parse_cmdline(cmdline), src, dst))


# --- the table against real QEMU ------------------------------------------------------------


def test_table_rebuilds_real_qemu_10_0_compat_props_exactly() -> None:
    """Every pc-i440fx/pc-q35 6.0 .. 10.0 list QEMU 10.0.13 reports (query-machines
    compat-props) is the table's, entry for entry and in order."""
    real = build("qemu-10.0")._compat
    assert real is not None
    table = shipped_compat()
    checked = 0
    for machine, props in sorted(real.items()):
        assert table.compat_props(machine, "10.0.13") == props, machine
        checked += 1
        entries = len(props)
    assert checked == 26  # 13 versions x 2 families
    assert entries > 0


def test_live_qemu_10_0_still_answers_the_capture() -> None:
    require(chroot_qemu(), "Debian 13 QEMU 10.0 chroot not found at /var/tmp/migcheck-trixie")
    (reply,) = run_qmp(
        [{"execute": "query-machines", "arguments": {"compat-props": True}}], chroot=True
    )
    live = {m["name"]: m.get("compat-props", []) for m in reply["return"]}
    real = build("qemu-10.0")._compat or {}
    assert real and all(live[m] == props for m, props in real.items())


def test_table_knows_the_7_2_1_stable_addition() -> None:
    table = shipped_compat()
    at_720 = table.compat_props("pc-q35-7.1", "7.2.0")
    at_7222 = table.compat_props("pc-q35-7.1", "7.2.22")
    assert isinstance(at_720, list) and isinstance(at_7222, list)
    rng = {"qom-type": "virtio-rng-pci", "property": "vectors", "value": "0"}
    assert rng not in at_720 and rng in at_7222


@pytest.mark.parametrize(
    ("machine", "qemu", "why"),
    [
        ("pc-q35-rhel9.6.0", "10.0.13", "not in the compat table"),
        ("pc-q35-7.2", "11.0.0", "newer than the newest release"),
        ("pc-q35-6.0", "6.2.0", "starts at QEMU 7.2"),
        ("pc-q35-5.2", "7.2.22", "older than the compat table"),
        ("pc-q35-8.0", "7.2.22", "has no machine type"),
    ],
)
def test_uncovered_machine_or_version_is_unknown(machine: str, qemu: str, why: str) -> None:
    b = build("qemu-7.2")
    value = effective_default(
        "e1000",
        "init-vet",
        machine,
        b.device_props("e1000"),
        None,
        qemu,
        b.device_types,
    )
    assert value == UNKNOWN and is_unknown(value)
    assert why in value.reason


def test_effective_default_follows_qom_parents_and_virtio_backends() -> None:
    b7, b10 = build("qemu-7.2"), build("qemu-10.0")
    # hw_compat_7_1 { "virtio-device", "queue_reset", "false" }: virtio-net-pci embeds a
    # virtio-net-device, a virtio-device; the class default is true.
    args = ("virtio-net-pci", "queue_reset")
    assert b10.device_props("virtio-net-pci")["queue_reset"]["default"] is True
    for machine, want in (("pc-q35-7.1", False), ("pc-q35-7.2", True)):
        assert (
            effective_default(
                *args,
                machine,
                b10.device_props(args[0]),
                b10.machine_compat(machine),
                "10.0.13",
                b10.device_types,
            )
            is want
        )
    # hw_compat_6_0 { "e1000", "init-vet", "off" } on 7.2, which has no compat-props: the table.
    e1000 = b7.device_props("e1000")
    assert (
        effective_default(
            "e1000", "init-vet", "pc-i440fx-6.0", e1000, None, "7.2.22", b7.device_types
        )
        is False
    )
    assert (
        effective_default(
            "e1000", "init-vet", "pc-i440fx-6.1", e1000, None, "7.2.22", b7.device_types
        )
        is True
    )


# --- real instances: qom-get on devices built under each machine type -------------------------

INSTANCE_DEVICES = {
    "e1000": "d-e1000",
    "e1000e": "d-e1000e",
    "virtio-net-pci": "d-vnet",
    "virtio-rng-pci": "d-rng",
    "virtio-balloon-pci": "d-balloon",
    "pvpanic": "d-pvpanic",
}
INSTANCE_MACHINES = [
    "pc-q35-6.0",
    "pc-q35-6.1",
    "pc-q35-6.2",
    "pc-q35-7.0",
    "pc-q35-7.1",
    "pc-q35-7.2",
    "pc-i440fx-6.0",
    "pc-i440fx-7.1",
]


# DEV_NVECTORS_UNSPECIFIED (include/hw/virtio/virtio-pci.h): "let realize choose", which
# replaces it (hw/virtio/virtio-net-pci.c virtio_net_pci_realize(): 2 * queues + 2), so the
# instance shows the chosen count, not the default.
NVECTORS_UNSPECIFIED = 0xFFFFFFFF


def _table_props() -> set[str]:
    return {e.property for r in shipped_compat().releases.values() for e in r.entries}


def _instance_values(
    machine: str, chroot: bool, props: dict[str, list[str]]
) -> dict[tuple[str, str], Any]:
    args = ["-machine", machine, "-accel", "tcg"]
    for drv, dev_id in INSTANCE_DEVICES.items():
        args += ["-device", f"{drv},id={dev_id}"]
    cmds, keys = [], []
    for drv, names in props.items():
        for prop in names:
            path = f"/machine/peripheral/{INSTANCE_DEVICES[drv]}"
            cmds.append({"execute": "qom-get", "arguments": {"path": path, "property": prop}})
            keys.append((drv, prop))
    replies = run_qmp(cmds, chroot=chroot, args=tuple(args))
    out = {}
    for key, reply in zip(keys, replies, strict=True):
        assert "return" in reply, (machine, key, reply)
        out[key] = reply["return"]
    return out


@pytest.mark.parametrize("build_name", ["qemu-7.2", "qemu-10.0"])
def test_effective_defaults_match_real_instances(build_name: str) -> None:
    """Build each device under each machine type on the real QEMU and qom-get every property
    the compat table touches: the value must be effective_default()'s (7.2 through the
    sourced table, 10.0 through its own compat-props)."""
    chroot = build_name == "qemu-10.0"
    require(
        chroot_qemu() if chroot else HOST_QEMU is not None,
        "Debian 13 QEMU 10.0 chroot not found" if chroot else "qemu-system-x86_64 not found",
    )
    b = build(build_name)
    touched = _table_props() | {"events"}
    props = {
        drv: sorted(p for p in (b.device_props(drv) or {}) if p in touched)
        for drv in INSTANCE_DEVICES
    }
    assert sum(map(len, props.values())) >= 6
    checked = changed = 0
    for machine in INSTANCE_MACHINES:
        real = _instance_values(machine, chroot, props)
        for (drv, prop), value in real.items():
            want = effective_default(
                drv,
                prop,
                machine,
                b.device_props(drv),
                b.machine_compat(machine),
                b.version,
                b.device_types,
            )
            assert not is_unknown(want), (machine, drv, prop, want)
            if want == NVECTORS_UNSPECIFIED:
                continue  # realize picks the count (virtio_net_pci_realize() and friends)
            assert value == want, (build_name, machine, drv, prop, value, want)
            checked += 1
            changed += want != b.device_props(drv)[prop].get("default")
    # 8 machine types x the touched properties; at least 20 values set by compat entries.
    print(f"{build_name}: {checked} values checked, {changed} set by compat entries")
    assert checked >= 40 and changed >= 20, (checked, changed)


MACHINE_OBJECTS = ("ICH9-LPC", "PIIX4_PM", "i8042", "qemu64-x86_64-cpu")


@pytest.mark.parametrize("build_name", ["qemu-7.2", "qemu-10.0"])
def test_machine_created_objects_match_real_instances(build_name: str) -> None:
    """The compat entries on what the machine builds itself (pc_compat_6_0 qemu64 family/
    model/stepping and x-vendor-cpuid-only, pc_compat_6_1 hv-version-id-*, the ICH9-LPC
    hotplug entries, hw_compat_6_2 PIIX4_PM, hw_compat_6_0 i8042): qom-get on the real
    objects equals effective_default() wherever a compat entry decides the value."""
    chroot = build_name == "qemu-10.0"
    require(
        chroot_qemu() if chroot else HOST_QEMU is not None,
        "Debian 13 QEMU 10.0 chroot not found" if chroot else "qemu-system-x86_64 not found",
    )
    b = build(build_name)
    table = shipped_compat()
    decided: set[tuple[str, str]] = set()
    checked = 0
    machines = ["pc-q35-6.0", "pc-q35-6.1", "pc-q35-7.2", "pc-i440fx-6.0", "pc-i440fx-6.2"]
    for machine in machines:
        args = ("-machine", machine, "-cpu", "qemu64", "-accel", "tcg")
        with qmp_session(chroot=chroot, args=args) as qmp:
            paths = {
                child["type"][len("child<") : -1]: f"/machine/unattached/{child['name']}"
                for child in qmp.cmd("qom-list", path="/machine/unattached")["return"]
                if child["type"].startswith("child<")
            }
            paths["qemu64-x86_64-cpu"] = qmp.cmd("query-cpus-fast")["return"][0]["qom-path"]
            compat = b.machine_compat(machine) or table.compat_props(machine, b.version)
            assert isinstance(compat, list)
            for obj in MACHINE_OBJECTS:
                if obj not in paths:
                    continue  # i440fx has no ICH9-LPC, q35 no PIIX4_PM
                named = {e["property"] for e in compat if e["qom-type"] in (obj, "x86_64-cpu")}
                for prop in sorted(named & set(b.device_props(obj) or {})):
                    want = effective_default(
                        obj,
                        prop,
                        machine,
                        b.device_props(obj),
                        b.machine_compat(machine),
                        b.version,
                        b.device_types,
                    )
                    got = qmp.cmd("qom-get", path=paths[obj], property=prop)["return"]
                    assert got == want, (build_name, machine, obj, prop, got, want)
                    decided.add((obj, prop))
                    checked += 1
    print(f"{build_name}: {checked} machine-object values, {len(decided)} distinct entries")
    assert len(decided) >= 10 and checked >= 20, (decided, checked)


# --- the check ------------------------------------------------------------------------------


def test_pvpanic_events_differ_between_7_2_and_10_0_under_the_same_machine_type() -> None:
    """QEMU 9.1 added PVPANIC_SHUTDOWN to the events pvpanic offers (commit ebd909bb95c2,
    include/hw/misc/pvpanic.h PVPANIC_EVENTS) with no compat entry: pc-q35-7.2 gives 3 on 7.2
    and 7 on 10.0 (the guest reads them from the device: hw/misc/pvpanic.c pvpanic_read())."""
    out = judge(
        "qemu-system-x86_64 -machine pc-q35-7.2 -device pvpanic,id=p0",
        facts(SRC72, "qemu-7.2"),
        facts(DST10, "qemu-10.0"),
    )
    fails = [f for f in out if f.status is Status.FAIL]
    assert len(fails) == 1, out
    f = fails[0]
    assert "pvpanic" in f.message and "events" in f.message
    assert f.source["value"] == 3 and f.destination["value"] == 7
    assert f.fix and "events=3" in f.fix


def test_a_machine_created_device_gets_a_global_as_fix() -> None:
    spec = parse_cmdline("qemu-system-x86_64 -machine pc-q35-7.2 -device pvpanic")
    object.__setattr__(spec.devices[0], "implicit", True)  # as the device graph marks them
    out = check_defaults(Context(spec, facts(SRC72, "qemu-7.2"), facts(DST10, "qemu-10.0")))
    assert [f.status for f in out] == [Status.FAIL]
    assert "-global pvpanic.events=3" in (out[0].fix or "")


def test_the_other_direction_fails_too() -> None:
    out = judge(
        "qemu-system-x86_64 -machine pc-q35-7.2 -device pvpanic-pci",
        facts(DST10, "qemu-10.0"),
        facts(SRC72, "qemu-7.2"),
    )
    assert [f.status for f in out] == [Status.FAIL]
    assert out[0].source["value"] == 7 and out[0].destination["value"] == 3


def test_pvpanic_events_change_across_a_real_migration(tmp_path: Path) -> None:
    """The finding is real: migrate a pc-q35-7.2 guest with pvpanic from QEMU 7.2 to 10.0;
    the destination loads the state without a word and its device offers 7, not 3."""
    require(HOST_QEMU is not None, "qemu-system-x86_64 not found")
    require(chroot_qemu(), "Debian 13 QEMU 10.0 chroot not found at /var/tmp/migcheck-trixie")
    common = ("-machine", "pc-q35-7.2", "-accel", "tcg", "-m", "64", "-device", "pvpanic,id=p0")
    chroot_dir = Path(tempfile.mkdtemp(prefix="migcheck-mig-", dir=CHROOT / "tmp"))
    try:
        sock = chroot_dir / "mig.sock"
        incoming = ("-incoming", f"unix:/{sock.relative_to(CHROOT)}")
        with (
            qmp_session(chroot=True, args=(*common, *incoming)) as dst,
            qmp_session(args=common) as src,
        ):
            for _ in range(200):
                if sock.exists():
                    break
                time.sleep(0.02)
            assert "return" in src.cmd("migrate", uri=f"unix:{sock}")
            status = ""
            for _ in range(500):
                status = src.cmd("query-migrate")["return"].get("status", "")
                if status in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.02)
            assert status == "completed", status
            for _ in range(500):
                if dst.cmd("query-status")["return"]["status"] != "inmigrate":
                    break
                time.sleep(0.02)
            path = "/machine/peripheral/p0"
            before = src.cmd("qom-get", path=path, property="events")["return"]
            after = dst.cmd("qom-get", path=path, property="events")["return"]
    finally:
        shutil.rmtree(chroot_dir, ignore_errors=True)
    assert (before, after) == (3, 7)


@pytest.mark.parametrize(
    "line",
    [
        "-device pvpanic,events=3",  # set on the command line
        "-global pvpanic.events=3 -device pvpanic",  # set by -global
        "-global isa-device.events=3 -device pvpanic",  # -global on a parent type matches too
    ],
)
def test_explicit_values_are_not_defaults(line: str) -> None:
    out = judge(
        f"qemu-system-x86_64 -machine pc-q35-7.2 {line}",
        facts(SRC72, "qemu-7.2"),
        facts(DST10, "qemu-10.0"),
    )
    assert [f.status for f in out] == [Status.PASS], out


def test_same_defaults_pass_rombar_representation_included() -> None:
    """virtio-net-pci under pc-q35-7.2: every default agrees (rombar is 1 as uint32 on 7.2,
    -1 as int32 on 10.0: both mean enabled)."""
    out = judge(
        "qemu-system-x86_64 -machine pc-q35-7.2 -netdev user,id=n0 "
        "-device virtio-net-pci,netdev=n0 -device e1000e",
        facts(SRC72, "qemu-7.2"),
        facts(DST10, "qemu-10.0"),
    )
    assert [f.status for f in out] == [Status.PASS], out
    assert int(out[0].message.split()[0]) > 50  # properties really compared


def test_an_older_qemu_than_the_table_is_unknown() -> None:
    out = judge(
        "qemu-system-x86_64 -machine pc-q35-6.2 -device e1000",
        facts(SRC72, "qemu-7.2", version="6.2.0"),
        facts(DST10, "qemu-10.0"),
    )
    assert [f.status for f in out] == [Status.UNKNOWN]
    assert "starts at QEMU 7.2" in out[0].message


def test_missing_build_data_is_unknown_naming_it() -> None:
    out = judge(
        "qemu-system-x86_64 -machine pc-q35-7.2 -device e1000",
        facts(SRC72, None),
        facts(DST10, "qemu-10.0"),
    )
    assert [f.status for f in out] == [Status.UNKNOWN]
    assert "deb12-7.2.22" in out[0].message


# --- loader validation ------------------------------------------------------------------------


def _broken(tmp_path: Path, name: str, old: str, new: str) -> Path:
    root = tmp_path / "compat"
    shutil.copytree(COMPAT_DIR, root)
    path = root / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return root


@pytest.mark.parametrize(
    ("name", "old", "new", "words"),
    [
        (
            "8.2.toml",
            'array = "hw_compat_8_2"',
            'array = "hw_compat_8_1"',
            ["8.2.toml", "compat[0]"],
        ),
        ("8.2.toml", 'property = "', 'propertyx = "', ["8.2.toml", "'property'"]),
        ("7.1.toml", 'since = "7.2.1"', 'since = "soon"', ["7.1.toml", "virtio-rng-pci", "since"]),
        ("9.0.toml", 'defined_in = "9.1"', 'defined_in = "9.2"', ["9.0.toml", "missing"]),
        ("6.0.toml", "[[compat]]", "[[compat]", ["6.0.toml", "TOML"]),
        ("families.toml", 'qemu_max = "10.2"', 'qemu_max = "11.2"', ["families.toml"]),
    ],
)
def test_a_broken_table_is_an_input_error_naming_file_and_entry(
    tmp_path: Path, name: str, old: str, new: str, words: list[str]
) -> None:
    root = _broken(tmp_path, name, old, new)
    with pytest.raises(CatalogError) as exc:
        load_compat(root)
    for word in words:
        assert word in str(exc.value)


def test_shipped_table_counts() -> None:
    table = load_compat(COMPAT_DIR)
    counts = {".".join(map(str, v)): len(r.entries) for v, r in table.releases.items()}
    assert counts["6.0"] == 12 and counts["10.1"] == 7 and counts["10.2"] == 2
    assert len(counts) == 15  # 6.0 .. 10.2
