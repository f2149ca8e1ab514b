"""device.* checks on real build data: Debian 12's QEMU 7.2 and Debian 13's QEMU 10.0 as
captured by fixtures/capture.sh (fixtures/hosts/qemu-builds/).

Each class the checks cover has a case that must say unsafe between these two real
builds, and a case where missing build data makes it unknown (never safe).
"""

from __future__ import annotations

import json

import pytest
from qemudata import fixture_facts

from migcheck import build as buildmod
from migcheck.checks.base import Context, Status
from migcheck.checks.device import (
    check_blockdev,
    check_netdev,
    check_property,
    check_type,
    check_vmstate,
    compare_section,
    same_value,
    vmstate_sections,
)
from migcheck.cmdline import parse_cmdline
from migcheck.facts import Facts
from migcheck.pair import check_pair
from migcheck.verdict import Verdict

BOOKWORM = "debian12-qemu7.2-epyc-pvm.json"
TRIXIE = "debian13-qemu10.0-epyc-pvm.json"
BASE = "-machine pc-q35-7.2 -accel kvm -cpu pentium3 -nodefaults "


@pytest.fixture(autouse=True)
def no_local_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    buildmod.forget_received()


def q72() -> Facts:
    return fixture_facts(BOOKWORM)


def q100() -> Facts:
    return fixture_facts(TRIXIE)


def vm(devices: str):
    return parse_cmdline(BASE + devices, "test.cmdline")


def statuses(findings) -> set[Status]:
    return {f.status for f in findings}


def only(findings, status: Status):
    return [f for f in findings if f.status is status]


def test_baseline_guest_is_safe_both_ways():
    """The control: devices both builds have, properties both know, same state formats."""
    guest = vm(
        "-netdev tap,id=n0 -device virtio-net-pci,netdev=n0,mq=on,id=net0 "
        "-blockdev driver=file,filename=/dev/null,node-name=f0 "
        "-blockdev driver=qcow2,file=f0,node-name=d0 -device virtio-blk-pci,drive=d0"
    )
    for src, dst in ((q72(), q100()), (q100(), q72())):
        ctx = Context(guest, src, dst)
        for fn in (check_type, check_property, check_netdev, check_blockdev, check_vmstate):
            assert statuses(fn(ctx)) == {Status.PASS}, [f.message for f in fn(ctx)]


# --- device.type -----------------------------------------------------------------------------


def test_device_type_only_10_0_has_is_unsafe_backwards():
    # igb (hw/net/igb.c) arrived in QEMU 8.0: Debian 12's 7.2 cannot start it.
    assert "igb" in q100().build.device_types and "igb" not in q72().build.device_types
    guest = vm("-netdev tap,id=n0 -device igb,netdev=n0")
    back = check_pair(guest, q100(), q72())
    fails = [f for f in back.findings if f.id == "device.type" and f.status is Status.FAIL]
    assert back.verdict is Verdict.UNSAFE
    assert len(fails) == 1 and "igb" in fails[0].message and "7.2.22" in fails[0].message
    assert statuses(check_type(Context(guest, q72(), q100()))) == {Status.PASS}


def test_device_type_of_a_module_the_destination_lacks():
    # qxl lives in hw-display-qxl.so: installed in the 7.2 capture, not in the 10.0 chroot.
    assert "hw-display-qxl.so" not in q100().build.modules
    fails = only(check_type(Context(vm("-device qxl-vga"), q72(), q100())), Status.FAIL)
    assert fails and "qxl-vga" in fails[0].message


def test_device_type_unknown_to_both_builds_is_unknown_not_fail():
    found = check_type(Context(vm("-device no-such-nic"), q72(), q100()))
    assert statuses(found) == {Status.UNKNOWN} and "no-such-nic" in found[0].message


# --- device.property -------------------------------------------------------------------------


def test_property_only_10_0_has_is_unsafe_backwards():
    # virtio-net's host_uso (QEMU 8.2, hw/net/virtio-net.c) is absent from 7.2.
    assert "host_uso" in q100().build.device_props("virtio-net-pci")
    assert "host_uso" not in q72().build.device_props("virtio-net-pci")
    guest = vm("-netdev tap,id=n0 -device virtio-net-pci,netdev=n0,host_uso=off")
    back = check_pair(guest, q100(), q72())
    assert back.verdict is Verdict.UNSAFE
    fails = [f for f in back.findings if f.id == "device.property" and f.status is Status.FAIL]
    assert len(fails) == 1 and "host_uso" in fails[0].message
    assert "cannot build" in fails[0].fix  # off is not 10.0's default (true)
    # Forward, 10.0 has the property (the 7.2 source could not have started this line,
    # which is not what this test is about).
    forward = check_property(Context(guest, q72(), q100()))
    assert not any("in the destination" in f.message for f in forward)


def test_property_equal_to_the_default_is_fixed_by_removing_it():
    assert q100().build.device_props("virtio-net-pci")["host_uso"]["default"] is True
    guest = vm("-netdev tap,id=n0 -device virtio-net-pci,netdev=n0,host_uso=on")
    fails = only(check_property(Context(guest, q100(), q72())), Status.FAIL)
    assert fails and fails[0].fix.startswith("remove host_uso=on")


def test_link_properties_count_as_properties():
    # iothread is a link<iothread>, hidden by device-list-properties; the probe records it.
    guest = vm("-object iothread,id=io0 -device virtio-blk-pci,iothread=io0,drive=d0")
    assert statuses(check_property(Context(guest, q100(), q72()))) == {Status.PASS}


@pytest.mark.parametrize(
    ("explicit", "default", "same"),
    [("on", True, True), ("off", True, False), ("no", False, True), (False, False, True),
     ("0x10", 16, True), ("16", 16, True), ("x", 16, False), (True, 1, False),
     ("auto", "auto", True), ("on", "auto", False)],
)  # fmt: skip
def test_same_value_parses_like_qemu(explicit, default, same):
    assert same_value(explicit, default) is same


# --- device.netdev / device.blockdev ---------------------------------------------------------


def test_block_driver_whose_module_is_missing_is_unsafe():
    # Debian 13's chroot has no qemu-block-extra: block-curl.so (http) is not installed.
    guest = vm(
        "-blockdev driver=http,url=http://mirror/disk.img,node-name=h0 "
        "-blockdev driver=raw,file=h0,node-name=d0 -device virtio-blk-pci,drive=d0"
    )
    fails = only(check_blockdev(Context(guest, q72(), q100())), Status.FAIL)
    assert len(fails) == 1 and "'http'" in fails[0].message
    assert statuses(check_blockdev(Context(guest, q100(), q72()))) == {Status.PASS}
    json_guest = vm(
        """-blockdev '{"driver":"raw","node-name":"d0","file":{"driver":"https","url":"https://x"}}'"""
    )
    assert only(check_blockdev(Context(json_guest, q72(), q100())), Status.FAIL)
    drive = vm("-drive if=none,id=d0,format=qcow2,file.driver=ftp,file.url=ftp://x/y")
    fails = only(check_blockdev(Context(drive, q72(), q100())), Status.FAIL)
    assert [f.source for f in fails] == ["ftp"]


def test_netdev_backend_the_destination_lacks_is_unsafe(tmp_path):
    from migcheck.facts import load_facts, save_facts

    # The same 10.0 build as if compiled without CONFIG_VDE (qapi/net.json: 'vde' is an
    # "if: CONFIG_VDE" branch of Netdev, so the probe would not list it).
    real = q100()
    doc = json.loads(json.dumps(real.build.doc))
    doc["netdevs"] = [n for n in doc["netdevs"] if n != "vde"]
    buildmod.write_build(buildmod.BuildData(doc, "no-vde"), tmp_path / "qemu-builds")
    save_facts(real, tmp_path / "hv.json")  # beside its (edited) build
    dst = load_facts(tmp_path / "hv.json")
    guest = vm("-nic vde,model=virtio-net-pci -netdev tap,id=n0")
    fails = only(check_netdev(Context(guest, q72(), dst)), Status.FAIL)
    assert [f.source for f in fails] == ["vde"]
    assert statuses(check_netdev(Context(guest, q72(), q100()))) == {Status.PASS}


# --- device.vmstate --------------------------------------------------------------------------


def test_vmstate_version_only_10_0_can_load_is_unsafe_backwards():
    # The am53c974 SCSI HBA nests vmstate_esp (hw/scsi/esp.c): version 7 in QEMU 10.0
    # (drq_state added, mig_ti_cmd only up to 6), 6 in 7.2. A nested struct loads with the
    # destination's own version (migration/vmstate.c vmstate_load_state passes
    # field->vmsd->version_id), so 7.2 reads 10.0's stream with the wrong layout. A real
    # migration of this guest 10.0 -> 7.2 (pc-q35-7.2, TCG, paused) completes: the two
    # one-byte fields shift (drq_state lands in lun, lun in ti_cmd). Completion proves
    # nothing; the state is misread.
    src_esp = q100().build.vmstate["am53c974"]
    assert src_esp["version_id"] == q72().build.vmstate["am53c974"]["version_id"]
    guest = vm("-device am53c974")
    back = check_pair(guest, q100(), q72())
    assert back.verdict is Verdict.UNSAFE
    fails = [f for f in back.findings if f.id == "device.vmstate" and f.status is Status.FAIL]
    assert len(fails) == 1
    assert "am53c974.esp (esp)" in fails[0].message and "version 7" in fails[0].message
    assert "own version 6" in fails[0].message and "misread" in fails[0].message
    # Forward, 10.0 loads 7.2's version 6 (minimum 3), but 7.2 may send the pdma
    # subsection 10.0 dropped: a warning, since only run-time state decides.
    forward = check_vmstate(Context(guest, q72(), q100()))
    assert statuses(forward) == {Status.WARN}
    assert "pdma" in forward[0].message and "static" in forward[0].message


def test_vmstate_rules_top_level():
    s = {"version_id": 5, "minimum_version_id": 2}
    assert compare_section("x", s, {"version_id": 4, "minimum_version_id": 1})[0]
    assert compare_section("x", s, {"version_id": 9, "minimum_version_id": 6})[0]
    assert compare_section("x", s, {"version_id": 5, "minimum_version_id": 5}) == ([], [])
    assert "no such vmstate section" in compare_section("x", s, None)[0][0]


def test_virtio_proxies_are_judged_by_their_virtio_device():
    dump = q100().build.vmstate
    assert vmstate_sections("virtio-net-pci", dump) == ["virtio-net-device"]
    assert vmstate_sections("virtio-mem-pci", dump) == ["virtio-mem"]
    assert vmstate_sections("e1000", dump) == ["e1000"]


# --- missing build data: unknown, naming the key, never pass ---------------------------------


def test_facts_without_build_data_make_device_checks_unknown(tmp_path):
    src = q72()
    doc = json.loads(json.dumps(src.doc))
    doc["qemu"]["build"]["key"] = missing = "0123456789abcdef" * 2  # a build nobody stored
    moved = tmp_path / "hv.json"
    moved.write_text(json.dumps(doc))
    from migcheck.facts import load_facts

    lonely = load_facts(moved)
    guest = vm("-netdev tap,id=n0 -device virtio-net-pci,netdev=n0,mq=on")
    report = check_pair(guest, lonely, q100())
    dev = [f for f in report.findings if f.id.startswith("device.")]
    assert {f.id for f in dev if f.status is Status.UNKNOWN} == {"device.vmstate"}
    report = check_pair(guest, q100(), lonely)
    unknowns = [f for f in report.findings if f.status is Status.UNKNOWN]
    assert report.verdict is not Verdict.SAFE
    dev = [f for f in unknowns if f.id.startswith("device.")]
    assert {f.id for f in dev} == {
        "device.type",
        "device.property",
        "device.netdev",
        "device.vmstate",
    }
    assert all(missing in f.message for f in dev)
    # Facts written before the build store (no qemu.build at all): unknown too.
    doc = json.loads(json.dumps(src.doc))
    del doc["qemu"]["build"]
    old = Facts(doc, "old.json")
    found = check_type(Context(guest, q100(), old))
    assert statuses(found) == {Status.UNKNOWN} and "no QEMU build" in found[0].message
    assert check_pair(guest, old, old).verdict is not Verdict.SAFE
