"""Migration blockers from migcheck/catalog/data/qemu/blockers.toml, on real command lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import require
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


def test_vfio_with_migration_enabled_blocks_only_postcopy():
    """enable-migration=on lifts the VFIO blocker; postcopy is still refused (a warning)."""
    text = "-cpu host -device vfio-pci,host=0000:3b:00.0,enable-migration=on"
    found = blockers_of(text)
    assert found == {"blocker": "pass", "blocker.vfio-pci-postcopy": "warn"}, found
    report = check_pair(parse_cmdline(BASE + text, "x"), HOST, HOST)
    assert report.verdict is not Verdict.UNSAFE


@pytest.mark.parametrize(
    "text",
    [
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


# --------------------------------------------------------------------------- audit additions


@pytest.mark.parametrize(
    ("text", "blocker", "status"),
    [
        ("-drive if=none,id=d0,file=fat:rw:/srv/x,format=raw", "block-vvfat-rw", "fail"),
        ("-hda fat:floppy:rw:/srv/x", "block-vvfat-rw", "fail"),
        ("-drive if=none,id=d0,file.driver=vvfat,file.dir=/x,file.rw=on", "block-vvfat-rw",
         "fail"),
        ("-blockdev driver=vvfat,dir=/srv/x,rw=on,node-name=n0", "block-vvfat-rw", "fail"),
        ('-blockdev \'{"driver":"vvfat","dir":"/srv/x","rw":true,"node-name":"n0"}\'',
         "block-vvfat-rw", "fail"),
        ("-device rocker,name=sw0", "rocker", "fail"),
        ("-object cryptodev-backend-builtin,id=c0 -device virtio-crypto-pci,cryptodev=c0",
         "virtio-crypto", "fail"),
        ("-device hv-syndbg,host_ip=127.0.0.1,host_port=50000", "hv-syndbg", "fail"),
        ("-device virtio-sound-pci,audiodev=a0", "virtio-sound", "fail"),
        ("-device ufs,serial=x", "ufs", "fail"),
        ("-device virtio-gpu-rutabaga-pci", "virtio-gpu-rutabaga", "fail"),
        ("-accel kvm,xen-version=0x4000a", "kvm-xen-emulation", "fail"),
        ("-tpmdev passthrough,id=t0,path=/dev/tpm0 -device tpm-crb,tpmdev=t0",
         "tpm-passthrough", "warn"),
        ("-tpmdev type=passthrough,id=t0 -device tpm-tis,tpmdev=t0", "tpm-passthrough", "warn"),
        ("-device qemu-xhci -device usb-host,vendorid=0x046d,productid=0xc52b", "usb-host", "warn"),
        ("-object memory-backend-epc,id=epc0,size=64M,prealloc=on", "sgx-epc", "warn"),
    ],
)  # fmt: skip
def test_audited_blockers_match_their_command_lines(text: str, blocker: str, status: str):
    found = blockers_of("-cpu host " + text)
    assert found.get(f"blocker.{blocker}") == status, found
    if status == "fail":
        report = check_pair(parse_cmdline(BASE + "-cpu host " + text, "x"), HOST, HOST)
        assert report.verdict is Verdict.UNSAFE
    else:  # a warning entry never fails the blocker check (other checks may, e.g. SGX)
        assert "fail" not in found.values(), found


@pytest.mark.parametrize(
    "text",
    [
        "-drive if=none,id=d0,file=fat:/srv/x,format=raw,readonly=on",  # read-only vvfat
        "-blockdev driver=vvfat,dir=/srv/x,node-name=n0",
        "-tpmdev emulator,id=t0,chardev=c0 -device tpm-tis,tpmdev=t0",  # swtpm state migrates
        "-device virtio-gpu-pci",
    ],
)
def test_audited_blockers_do_not_match_neighbours(text: str):
    assert blockers_of("-cpu host " + text) == {"blocker": "pass"}


def test_a_blocker_is_counted_only_in_its_release_range():
    """vhost-user-fs: unmigratable before 8.2, then back-end dependent (a warning)."""
    trixie = fixture_facts("debian13-qemu10.0-epyc-pvm.json")
    text = "-cpu host -chardev socket,id=c0,path=/run/vfs.sock "
    text += "-device vhost-user-fs-pci,chardev=c0,tag=fs"
    assert blockers_of(text) == {"blocker.vhost-user-fs": "fail"}
    assert blockers_of(text, trixie) == {"blocker": "pass", "blocker.vhost-user-fs-backend": "warn"}


# --------------------------------------------------------------------------- loader strictness

GOOD_ENTRY = """
[[blocker]]
id = "x"
title = "t"
match = { device = ["rocker"] }
message = "m"
fix = "f"
[[blocker.sources]]
title = "s"
"""


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('severty = "warn"\n', "unknown key(s) severty"),
        ('severity = "maybe"\n', "'severity' should be one of block, warn"),
        ("postcopy_only = 1\n", "'postcopy_only' should be true or false"),
        ('qemu_since = "9.0"\nqemu_until = "8.2"\n', "qemu_since should be older"),
        ('qemu_since = "nine"\n', "qemu_since 'nine' is not a QEMU version"),
        ('unless = { drive_prop = { rw = "on" } }\n', "'unless' takes only"),
    ],
)
def test_a_broken_entry_names_file_and_entry(tmp_path, extra: str, problem: str):
    from migcheck.catalog import CatalogError
    from migcheck.catalog.blockers import load_blockers

    path = tmp_path / "blockers.toml"
    path.write_text(GOOD_ENTRY.replace('fix = "f"\n', 'fix = "f"\n' + extra))
    with pytest.raises(CatalogError) as e:
        load_blockers(path)
    assert f"{path} [x]" in str(e.value) and problem in str(e.value), str(e.value)


@pytest.mark.parametrize(
    "match",
    [
        '{ option = { option = "drive", key = "file", value_re = "([" } }',
        '{ option = { option = "drive", key = "file", value = "a", value_re = "a" } }',
        '{ option = { option = "blockdev", value = "vvfat", also = { rw = "on" } } }',
        '{ option = { option = "drive", key = "file", valu = "a" } }',
    ],
)
def test_a_broken_option_match_is_refused(tmp_path, match: str):
    from migcheck.catalog import CatalogError
    from migcheck.catalog.blockers import load_blockers

    path = tmp_path / "blockers.toml"
    path.write_text(GOOD_ENTRY.replace('{ device = ["rocker"] }', match))
    with pytest.raises(CatalogError, match=r"\[x\].*match\.option"):
        load_blockers(path)


def test_the_shipped_catalog_loads_and_every_warning_says_why():
    blockers = load_catalog().blockers
    assert len(blockers) >= 40
    assert {b.id for b in blockers if b.severity == "warn"} >= {"tpm-passthrough"}
    assert {b.id for b in blockers if b.postcopy_only} == {"vfio-pci-postcopy"}
    for b in blockers:
        assert b.verified or b.note, b.id


# --------------------------------------------------------------------------- real QEMU
# Each case starts the real QEMU (Debian 12's 7.2 on the host, Debian 13's 10.0 in the
# chroot) with the configuration, issues 'migrate' to exec:cat, and asserts QEMU refuses with
# the blocker's text; then migcheck, given the same command line, must name that blocker and
# say unsafe. {dir} is a scratch directory QEMU can see (inside the chroot for 10.0).

REAL_CASES = [
    # (blocker id, builds, args, QEMU's error text)
    ("block-vvfat-rw", ("7.2", "10.0"),
     "-drive if=none,id=d0,file=fat:rw:{dir}/vv,format=raw",
     "The vvfat (rw) format used by node"),
    ("rocker", ("7.2", "10.0"), "-device rocker,name=sw0", "non-migratable device"),
    ("virtio-crypto", ("7.2", "10.0"),
     "-object cryptodev-backend-builtin,id=c0 -device virtio-crypto-pci,cryptodev=c0",
     "non-migratable device '0000:00:02.0/virtio-crypto'"),
    ("virtio-sound", ("10.0",), "-audiodev none,id=a0 -device virtio-sound-pci,audiodev=a0",
     "non-migratable device '0000:00:02.0/virtio-sound-device'"),
    ("ufs", ("10.0",), "-device ufs,serial=x", "non-migratable device '0000:00:02.0/ufs'"),
    ("qemu-vdagent", ("7.2", "10.0"), "-chardev qemu-vdagent,id=v0,name=vdagent",
     "The vdagent chardev doesn't yet support migration"),
    ("invtsc", ("7.2", "10.0"), "-cpu qemu64,+invtsc",
     "State blocked by non-migratable CPU device (invtsc flag)"),
    ("block-vmdk", ("7.2",), "-drive if=none,id=d0,file={dir}/d.vmdk,format=vmdk",
     "The vmdk format used by node"),
    ("usb-unmigratable", ("7.2",),
     "-audiodev none,id=a0 -device qemu-xhci -device usb-audio,audiodev=a0",
     "non-migratable device '0000:00:02.0/1/usb-audio'"),
    ("amd-iommu", ("10.0",), "-machine q35 -device amd-iommu",
     "non-migratable device 'amd-iommu'"),
    ("ivshmem", ("10.0",),
     "-object memory-backend-file,id=m,size=1M,mem-path={dir}/shm,share=on "
     "-device ivshmem-plain,memdev=m",
     "Migration is disabled when using feature 'peer mode' in device 'ivshmem'"),
    ("nvme", ("7.2",),
     "-drive if=none,id=d0,file={dir}/d.img,format=raw -device nvme,serial=x,drive=d0",
     "non-migratable device '0000:00:02.0/nvme'"),
]  # fmt: skip

# The lifting condition, on the real QEMU: it migrates, and migcheck flags nothing.
REAL_LIFTED = [
    ("block-vvfat-rw", "-drive if=none,id=d0,file=fat:{dir}/vv,format=raw,readonly=on"),
    ("ivshmem",
     "-object memory-backend-file,id=m,size=1M,mem-path={dir}/shm,share=on "
     "-device ivshmem-plain,memdev=m,master=on"),
]  # fmt: skip


def _real_params(cases):
    return [
        pytest.param(build, *case, id=f"{case[0]}-{build}")
        for case in cases
        for build in (case[1] if isinstance(case[1], tuple) else ("7.2", "10.0"))
    ]


@pytest.fixture
def scratch(request, tmp_path):
    """(directory as QEMU sees it, chroot or None) for the build under test."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from blocker_qemu import TRIXIE, have_qemu72, have_trixie

    build = request.node.callspec.params["build"]
    if build == "7.2":
        require(have_qemu72(), "qemu-system-x86_64 (Debian 12's QEMU 7.2) is not installed")
        host_dir, root = tmp_path, None
    else:
        require(have_trixie(), f"Debian 13 chroot with QEMU 10.0 missing at {TRIXIE} (or not root)")
        host_dir, root = Path(tempfile.mkdtemp(prefix="migcheck-blk-", dir=TRIXIE / "tmp")), TRIXIE
        request.addfinalizer(lambda: shutil.rmtree(host_dir, ignore_errors=True))
    require(shutil.which("qemu-img") is not None, "qemu-img is not installed")
    (host_dir / "vv").mkdir()
    for name, fmt in (("d.img", "raw"), ("d.vmdk", "vmdk")):
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", fmt, str(host_dir / name), "1M"], check=True
        )
    seen = "/" + str(host_dir.relative_to(root)) if root is not None else str(host_dir)
    return seen, root


def _migcheck_blockers(argv: list[str], build: str) -> tuple[dict[str, str], Verdict]:
    import shlex

    host = HOST if build == "7.2" else fixture_facts("debian13-qemu10.0-epyc-pvm.json")
    report = check_pair(parse_cmdline(shlex.join(argv), "x"), host, host)
    found = {f.id: f.status.value for f in report.findings if f.id.startswith("blocker")}
    return found, report.verdict


@pytest.mark.parametrize(
    ("build", "blocker", "builds", "args", "refusal"), _real_params(REAL_CASES)
)
def test_real_qemu_refuses_and_migcheck_agrees(scratch, build, blocker, builds, args, refusal):
    import shlex

    from blocker_qemu import migrate_refusal, qemu_argv

    where, root = scratch
    argv = shlex.split(args.format(dir=where))
    refused, text = migrate_refusal(argv, chroot=root)
    assert refused and refusal in text, (build, text)
    found, verdict = _migcheck_blockers(qemu_argv(argv), build)
    assert found.get(f"blocker.{blocker}") == "fail", found
    assert verdict is Verdict.UNSAFE


@pytest.mark.parametrize(("build", "blocker", "args"), _real_params(REAL_LIFTED))
def test_real_qemu_migrates_the_lifted_form_and_migcheck_agrees(scratch, build, blocker, args):
    import shlex

    from blocker_qemu import migrate_refusal, qemu_argv

    where, root = scratch
    argv = shlex.split(args.format(dir=where))
    assert migrate_refusal(argv, chroot=root) == (False, "completed")
    found, _ = _migcheck_blockers(qemu_argv(argv), build)
    assert found == {"blocker": "pass"}, found


# --------------------------------------------------------------------------- the audit

AUDIT = Path(__file__).parent.parent / "migcheck/catalog/data/qemu/BLOCKERS-AUDIT.md"
QEMU_SOURCES = {  # release heading in the audit -> Debian source tree (see the audit)
    "7.2": Path("/var/tmp/qemu-src/qemu-7.2+dfsg"),
    "10.0": Path("/var/tmp/qemu-src/qemu-10.0.13+ds"),
}


def _audit_rows() -> dict[str, list[tuple[str, str]]]:
    """Release -> [(file:line, disposition)] from the audit's per-release tables."""
    rows: dict[str, list[tuple[str, str]]] = {}
    release = None
    for line in AUDIT.read_text().splitlines():
        if line.startswith("### QEMU "):
            release = line.split()[2]
            rows[release] = []
        elif release and line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[release].append((cells[0].strip("`"), cells[2]))
    return rows


def test_the_audit_and_the_catalog_name_each_other():
    ids = {b.id for b in load_catalog().blockers}
    text = AUDIT.read_text()
    assert not [i for i in ids if f"`{i}`" not in text and not re.search(rf"\b{i}\b", text)]
    named = set()
    for rows in _audit_rows().values():
        for _, disposition in rows:
            if not disposition.startswith("LEFT OUT"):
                named |= set(re.findall(r"[a-z0-9][a-z0-9-]+", disposition.split("(")[0]))
    assert named and named <= ids, named - ids
    assert set(_audit_rows()) == {"7.2", "10.0", "10.2"}


@pytest.mark.parametrize("release", sorted(QEMU_SOURCES))
def test_the_audit_lists_every_call_site_in_the_source(release: str):
    """Re-run the audit's grep on Debian's source tree: no call site may be missing."""
    import subprocess

    tree = QEMU_SOURCES[release]
    if not tree.is_dir():  # the tree is a shared scratch copy, not a tool the suite needs
        pytest.skip(f"QEMU {release} source not unpacked at {tree} (apt-get source qemu)")
    pattern = r"migrate_add_blocker\|unmigratable *= *1\|unmigratable = true"
    out = subprocess.run(
        ["grep", "-rn", pattern, "--include=*.c", "."],
        cwd=tree, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    skip = ("./.pc/", "./tests/", "./stubs/", "./migration/migration.c")
    found = {
        ":".join(line.split(":", 2)[:2])[2:]
        for line in out.splitlines()
        if not line.startswith(skip)
    }
    listed = {site for site, _ in _audit_rows()[release]}
    assert found == listed, (sorted(found - listed), sorted(listed - found))


@pytest.mark.parametrize("build", ["7.2", "10.0"])
def test_real_qemu_invtsc_is_lifted_by_the_hosts_tsc_frequency(scratch, build):
    """invtsc blocks unless tsc-frequency is set (kvm_arch_init_vcpu(): env->user_tsc_khz).
    Under KVM the frequency must be one the host can run (without TSC scaling, its own), so
    ask QEMU for the host's: the vCPU's tsc-frequency property."""

    from blocker_qemu import accel, cpu_property, migrate_refusal, qemu_argv

    require(accel() == "kvm", "/dev/kvm is not usable: the invtsc blocker is KVM-only")
    _, root = scratch
    hz = cpu_property(["-cpu", "qemu64,+invtsc"], "tsc-frequency", chroot=root)
    assert isinstance(hz, int) and hz > 0
    argv = ["-cpu", f"qemu64,+invtsc,tsc-frequency={hz}"]
    assert migrate_refusal(argv, chroot=root) == (False, "completed")
    found, _ = _migcheck_blockers(qemu_argv(argv), build)
    assert found == {"blocker": "pass"}, found


def test_a_qemu_newer_than_the_audit_is_never_a_blocker_pass():
    """QEMU 11.1 may register blockers the catalog (audited to 10.2) does not know."""
    from qemudata import with_changes

    trixie = fixture_facts("debian13-qemu10.0-epyc-pvm.json")
    newer = with_changes(trixie, qemu={**dict(trixie.doc["qemu"]), "version": "11.1.3"})
    assert load_catalog().blockers.qemu_max == (10, 2)
    assert blockers_of("-cpu host -device virtio-net-pci", newer) == {"blocker": "unknown"}
    assert blockers_of("-cpu host -device virtio-net-pci", trixie) == {"blocker": "pass"}
    found = blockers_of("-cpu host -device rocker,name=sw0", newer)
    assert found == {"blocker.rocker": "fail"}, found  # what is known still fails


def test_the_audit_table_is_checked(tmp_path):
    from migcheck.catalog import CatalogError
    from migcheck.catalog.blockers import load_blockers

    path = tmp_path / "blockers.toml"
    path.write_text('[audit]\nqemu_max = "ten"\n' + GOOD_ENTRY)
    with pytest.raises(CatalogError, match=r"\[audit\].*qemu_max 'ten'"):
        load_blockers(path)
    path.write_text("[audti]\n" + GOOD_ENTRY)
    with pytest.raises(CatalogError, match="unknown top-level key"):
        load_blockers(path)
