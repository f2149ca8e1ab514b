"""firmware.* checks on real build data: the firmware and ROM images Debian 12's QEMU 7.2 and
Debian 13's QEMU 10.0 would load (fixtures/hosts/qemu-builds/, sizes and the ``-L help``
search path recorded by the probe). Every unsafe case here is also a real migration in
tests/groundtruth_cases.py (``fw-*``), measured failing with QEMU's own words.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require
from qemudata import fixture_facts

from migcheck import build as buildmod
from migcheck.checks.base import Context, Status
from migcheck.checks.firmware import (
    check_boot_firmware,
    check_option_roms,
    pflash_units,
    pow2ceil,
)
from migcheck.cmdline import parse_cmdline
from migcheck.facts import Facts, load_facts
from migcheck.pair import check_pair
from migcheck.verdict import Verdict

BOOKWORM = "debian12-qemu7.2-epyc-pvm.json"
TRIXIE = "debian13-qemu10.0-epyc-pvm.json"


@pytest.fixture(autouse=True)
def no_local_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    buildmod.forget_received()


def q72() -> Facts:
    return fixture_facts(BOOKWORM)


def q100() -> Facts:
    return fixture_facts(TRIXIE)


def vm(text: str, nodefaults: bool = True):
    base = "qemu-system-x86_64 -display none -m 64 " + ("-nodefaults " if nodefaults else "")
    return parse_cmdline(base + text, "test.cmdline")


def run(fn, guest, src: Facts, dst: Facts):
    return fn(Context(guest, src, dst))


def by_status(findings, status: Status):
    return [f for f in findings if f.status is status]


def edited(tmp_path: Path, facts: Facts, edit) -> Facts:
    """``facts`` with its build document changed by ``edit`` (stored beside a copy of the
    facts under a new key, as gather writes it)."""
    doc = json.loads(json.dumps(facts.doc))
    build = json.loads(json.dumps(facts.build.doc))  # type: ignore[union-attr]
    key = "f" * 32
    edit(build)
    build["key"] = build["identity"]["key"] = key
    doc["qemu"]["build"]["key"] = key
    (tmp_path / "qemu-builds").mkdir(exist_ok=True)
    (tmp_path / "qemu-builds" / f"{key}.json").write_text(json.dumps(build))
    path = tmp_path / "hv.json"
    path.write_text(json.dumps(doc))
    return load_facts(path)


def test_pow2ceil_is_qemus_rom_bar_rounding():
    assert [pow2ceil(n) for n in (1, 4096, 39424, 75776, 249344, 262144, 262145)] == [
        1,
        4096,
        65536,
        131072,
        262144,
        262144,
        524288,
    ]


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_bios_of_another_size_is_unsafe(direction):
    # bios-microvm.bin: qboot (64 KiB) first in Debian 12's search path, SeaBIOS's 128 KiB
    # build in Debian 13's; measured: "Size mismatch: pc.bios: 0x10000 != 0x20000".
    src, dst = (q72(), q100()) if direction == "forward" else (q100(), q72())
    guest = vm("-accel tcg -M pc-q35-7.2 -bios bios-microvm.bin")
    fails = by_status(run(check_boot_firmware, guest, src, dst), Status.FAIL)
    assert [f.id for f in fails] == ["firmware.bios"]
    assert "bios-microvm.bin" in fails[0].message and "pc.bios" in fails[0].message
    sizes = ("65536", "131072") if direction == "forward" else ("131072", "65536")
    assert sizes[0] in str(fails[0].source) and sizes[1] in str(fails[0].destination)
    assert check_pair(guest, src, dst).verdict is Verdict.UNSAFE


def test_default_bios_and_default_roms_pass_with_their_sizes():
    guest = vm("-accel kvm -M pc-i440fx-7.2", nodefaults=False)  # default e1000 and VGA
    found = run(check_boot_firmware, guest, q72(), q100()) + run(
        check_option_roms, guest, q72(), q100()
    )
    assert {f.status for f in found} == {Status.PASS}
    text = " ".join(f.message for f in found)
    # efi-e1000.rom: 249856 bytes (Debian 12) and 262144 (13), both a 256 KiB ROM BAR.
    assert "bios-256k.bin" in text and "efi-e1000.rom" in text and "vgabios-stdvga.bin" in text
    assert "249856" in text and "0x40000" in text


def test_romfile_the_destination_lacks_is_unsafe_both_ways():
    guest = vm("-accel kvm -M pc-i440fx-7.2 -device e1000,romfile=sgabios.bin")
    fwd = by_status(run(check_option_roms, guest, q72(), q100()), Status.FAIL)
    assert len(fwd) == 1 and "destination" in fwd[0].message and "sgabios.bin" in fwd[0].message
    back = by_status(run(check_option_roms, guest, q100(), q72()), Status.FAIL)
    assert len(back) == 1 and "source" in back[0].message


def test_rom_bar_rounding_absorbs_a_size_difference_but_not_across_a_power_of_two():
    same = vm("-accel kvm -M pc-q35-7.2 -device virtio-net-pci,romfile=pxe-virtio.rom")
    assert {f.status for f in run(check_option_roms, same, q72(), q100())} == {Status.PASS}
    other = vm("-accel kvm -M pc-i440fx-7.2 -device e1000,romfile=bios-microvm.bin")
    fails = by_status(run(check_option_roms, other, q72(), q100()), Status.FAIL)
    assert len(fails) == 1 and "0x10000 != 0x20000" in fails[0].message


def test_rombar_off_needs_the_file_but_not_its_size(tmp_path):
    guest = vm("-accel kvm -M pc-q35-7.2 -device virtio-net-pci,rombar=0")
    assert {f.status for f in run(check_option_roms, guest, q72(), q100())} == {Status.PASS}
    gone = edited(
        tmp_path,
        q100(),
        lambda b: b["firmware"].pop("/usr/share/qemu/efi-virtio.rom"),
    )
    fails = by_status(run(check_option_roms, guest, q72(), gone), Status.FAIL)
    assert len(fails) == 1 and "efi-virtio.rom" in fails[0].message


def test_pflash_image_the_destination_lacks_is_unsafe():
    guest = vm(
        "-accel kvm -M pc-q35-7.2 "
        "-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
    )
    found = run(check_boot_firmware, guest, q72(), q100())
    # pflash unit 0 replaces the BIOS: no firmware.bios finding.
    assert [(f.id, f.status) for f in found] == [("firmware.pflash", Status.FAIL)]


def test_libvirt_blockdev_pflash_is_followed_and_the_nvram_copy_is_unknown():
    code = "/usr/share/OVMF/OVMF_CODE_4M.fd"
    guest = vm(
        "-accel kvm "
        f'-blockdev \'{{"driver":"file","filename":"{code}","node-name":"pf0s"}}\' '
        '-blockdev \'{"node-name":"pf0f","read-only":true,"driver":"raw","file":"pf0s"}\' '
        "-blockdev driver=file,filename=/var/lib/libvirt/qemu/nvram/g_VARS.fd,node-name=pf1s "
        "-blockdev driver=raw,file=pf1s,node-name=pf1f "
        "-machine pc-q35-7.2,pflash0=pf0f,pflash1=pf1f"
    )
    units, gaps = pflash_units(guest)
    assert units == {0: code, 1: "/var/lib/libvirt/qemu/nvram/g_VARS.fd"} and gaps == []
    found = run(check_boot_firmware, guest, q72(), q72())
    assert [(f.id, f.status) for f in found] == [
        ("firmware.pflash", Status.PASS),
        ("firmware.pflash", Status.UNKNOWN),
    ]
    assert "outside the firmware directories" in found[1].message
    assert check_pair(guest, q72(), q72()).verdict is not Verdict.SAFE


def test_missing_firmware_data_is_unknown_never_pass(tmp_path):
    guest = vm("-accel kvm -M pc-i440fx-7.2", nodefaults=False)
    blind = edited(tmp_path, q100(), lambda b: b.update(firmware=None))
    found = run(check_boot_firmware, guest, q72(), blind) + run(
        check_option_roms, guest, q72(), blind
    )
    assert {f.status for f in found} == {Status.UNKNOWN}
    assert check_pair(guest, q72(), blind).verdict is not Verdict.SAFE


def test_without_the_search_path_conflicting_copies_are_unknown(tmp_path):
    # Debian 12 has two bios-microvm.bin (qboot, 64 KiB; SeaBIOS, 128 KiB): which one QEMU
    # loads depends on the search order an older probe did not record.
    old = edited(tmp_path, q72(), lambda b: b.pop("firmware_path"))
    guest = vm("-accel tcg -M pc-q35-7.2 -bios bios-microvm.bin")
    found = run(check_boot_firmware, guest, old, q100())
    assert [f.status for f in found] == [Status.UNKNOWN]
    assert "search path" in found[0].message
    # A name with one recorded size is still judged.
    plain = vm("-accel tcg -M pc-q35-7.2")
    assert [f.status for f in run(check_boot_firmware, plain, old, q100())] == [Status.PASS]


def test_unmodelled_machine_is_unknown():
    guest = vm("-accel tcg -M microvm")
    assert [f.status for f in run(check_boot_firmware, guest, q72(), q100())] == [Status.UNKNOWN]


def test_the_build_key_changes_with_the_firmware_images(tmp_path, monkeypatch):
    """Firmware comes from packages that update apart from QEMU (seabios, ipxe, ovmf): the
    same binary with other images is other build data, so it gets another key."""
    import shutil

    from migcheck.probe import probe

    binary = shutil.which("qemu-system-x86_64")
    require(binary is not None, "needs qemu-system-x86_64 (QEMU 7.2, Debian 12)")
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "bios-256k.bin").write_bytes(b"\0" * 65536)
    monkeypatch.setattr(probe, "FIRMWARE_DIRS", [str(fw)])

    def key() -> str:
        sha = probe.Background(lambda: "0" * 64)
        ident, _ = probe.build_identity(binary, "x86_64", "7.2.22", "pkg", sha)
        return ident["key"]

    first = key()
    assert first == key()  # stable for the same images
    (fw / "bios-256k.bin").write_bytes(b"\0" * 131072)
    assert key() != first
