"""Migration blockers from migcheck/catalog/data/qemu/blockers.toml, on real command lines."""

from __future__ import annotations

import pytest
from qemudata import fixture_facts

from migcheck.catalog import load_catalog
from migcheck.checks.base import Status
from migcheck.cmdline import parse_cmdline
from migcheck.pair import check_pair
from migcheck.verdict import Verdict

HOST = fixture_facts("debian12-qemu7.2-epyc-pvm.json")
BASE = "qemu-system-x86_64 -machine pc-q35-7.2 -accel kvm -m 2048 "


def blockers_of(text: str, host=HOST) -> dict[str, str]:
    report = check_pair(parse_cmdline(BASE + text, "x"), host, host)
    return {f.id: f.status.value for f in report.findings if f.id.startswith("blocker")}


def test_blocker_catalog_is_sourced():
    blockers = load_catalog().blockers
    assert len(blockers) >= 15
    for b in blockers:
        assert b.sources and b.fix and b.message, b.id


@pytest.mark.parametrize(
    ("text", "blocker"),
    [
        ("-cpu host -device vfio-pci,host=0000:3b:00.0,id=hostdev0", "blocker.vfio-pci"),
        ('-cpu host -device \'{"driver":"vfio-pci","host":"0000:3b:00.0"}\'', "blocker.vfio-pci"),
        ("-cpu EPYC,+invtsc", "blocker.invtsc"),
        ("-cpu host,hv-passthrough=on", "blocker.hv-passthrough"),
        ("-cpu host -object sev-guest,id=sev0,cbitpos=47,reduced-phys-bits=1", "blocker.sev"),
        ("-cpu host -object memory-backend-file,id=m,size=1G,mem-path=/dev/shm/x,share=on "
         "-device ivshmem-plain,memdev=m", "blocker.ivshmem"),
        ("-cpu host -device nvme,serial=deadbeef,drive=d0", "blocker.nvme"),
    ],
)  # fmt: skip
def test_blocking_configurations(text: str, blocker: str):
    found = blockers_of(text)
    assert found.get(blocker) == "fail", found
    report = check_pair(parse_cmdline(BASE + text, "x"), HOST, HOST)
    assert report.verdict is Verdict.UNSAFE


@pytest.mark.parametrize(
    "text",
    [
        "-cpu host -device vfio-pci,host=0000:3b:00.0,enable-migration=on",
        "-cpu EPYC,+invtsc,tsc-frequency=2500000000",
        "-cpu host -object memory-backend-file,id=m,size=1G,mem-path=/dev/shm/x,share=on "
        "-device ivshmem-plain,memdev=m,master=on",
        "-cpu host -device virtio-net-pci",
    ],
)
def test_lifted_or_absent(text: str):
    found = blockers_of(text)
    assert found == {"blocker": "pass"}, found


def test_a_blocker_fixed_in_a_later_qemu_is_skipped_there():
    trixie = fixture_facts("debian13-qemu10.0-epyc-pvm.json")  # QEMU 10.0: still blocked
    vdagent = "-cpu host -chardev qemu-vdagent,id=vdagent0,name=vdagent"
    assert blockers_of(vdagent, trixie).get("blocker.qemu-vdagent") == "fail"
    blocked = [b for b in load_catalog().blockers if b.id == "qemu-vdagent"]
    assert blocked and blocked[0].qemu_until == (10, 1)
    from migcheck.blockers import triggered

    vm = parse_cmdline(BASE + vdagent, "x")
    assert not [b for b, _ in triggered(vm, tuple(blocked), (10, 1, 0))]
    assert [b for b, _ in triggered(vm, tuple(blocked), (10, 0, 13))]


def test_blocker_finding_says_what_and_how_to_fix():
    report = check_pair(
        parse_cmdline(BASE + "-cpu host -device vfio-pci,host=0000:3b:00.0,id=gpu0", "x"),
        HOST,
        HOST,
    )
    (f,) = [f for f in report.findings if f.id == "blocker.vfio-pci"]
    assert f.status is Status.FAIL
    assert "vfio-pci id=gpu0" in f.message
    assert f.fix
