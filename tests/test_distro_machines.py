"""Distribution machine types and kernels (issue 21, section 5): Ubuntu's machine types are
judged as the upstream type they copy, RHEL's and unreviewed ones make the version-dependent
checks unknown; distribution kernels outside the stable series (Debian backports, RHEL
z-streams, Ubuntu HWE) are judged by their upstream version plus the catalog's deltas.

Hosts are the project's real captures (fixtures/hosts/), changed only through what-if
(``--assume``), as an operator would.
"""

from __future__ import annotations

import json

import pytest
from qemudata import FIXTURES, fixture_facts
from typer.testing import CliRunner

from migcheck import build as buildmod
from migcheck.catalog import shipped_catalog
from migcheck.checks.base import Context, Status
from migcheck.checks.kernel import check_device_defaults
from migcheck.cli import app
from migcheck.cmdline import parse_cmdline
from migcheck.dependencies import guest_dependencies
from migcheck.machinetypes import defaults_version, parse_machine
from migcheck.platforms import Has, host_platforms
from migcheck.whatif import assume

BOOKWORM = "debian12-qemu7.2-epyc-pvm.json"
TRIXIE = "debian13-qemu10.0-epyc-pvm.json"
USO_GUEST = (
    "qemu-system-x86_64 -machine {machine} -accel kvm -cpu pentium3 -nodefaults "
    "-netdev tap,id=n0 -device virtio-net-pci,netdev=n0"
)


@pytest.fixture(autouse=True)
def no_local_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    buildmod.forget_received()


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("pc-q35-8.2", (8, 2)),
        ("pc-q35-noble", (8, 2)),
        ("pc-i440fx-jammy", (6, 2)),
        ("pc-q35-jammy-hpb", (6, 2)),
        ("pc-q35-focal-maxcpus", (4, 2)),
        ("pc-q35-questing", (10, 1)),
        ("pc-q35-rhel9.6.0", None),
        ("pc-q35-noble-v2", None),  # an SRU revision nobody reviewed
        ("pc-q35-trusty", None),  # older than the table
    ],
)
def test_distribution_machine_types_map_to_their_upstream_base(name, version):
    assert defaults_version(name)[0] == version
    assert parse_machine(name) is not None  # every one is a versioned name of its line
    if version is None:
        assert name in (defaults_version(name)[1] or "")


def test_aliases_are_not_versions():
    assert defaults_version("q35") == (None, None)


def test_ubuntu_type_has_the_upstream_types_kernel_dependent_defaults():
    # pc-q35-noble copies pc-q35-8.2, which turns virtio-net USO on (tap-uso, Linux 6.2).
    catalog = shipped_catalog()
    for machine in ("pc-q35-8.2", "pc-q35-noble", "pc-q35-noble-hpb"):
        vm = parse_cmdline(USO_GUEST.format(machine=machine), "vm")
        deps = guest_dependencies(vm, catalog, machine)
        assert "tap-uso" in deps, machine
        assert machine in deps["tap-uso"].reasons[0]
    older = parse_cmdline(USO_GUEST.format(machine="pc-q35-jammy"), "vm")
    assert "tap-uso" not in guest_dependencies(older, catalog, "pc-q35-jammy")


@pytest.mark.parametrize("machine", ["pc-q35-rhel9.6.0", "pc-q35-noble-v2"])
def test_unmapped_distribution_type_makes_kernel_defaults_unknown(machine):
    vm = parse_cmdline(USO_GUEST.format(machine=machine), "vm")
    host = fixture_facts(TRIXIE)
    found = check_device_defaults(Context(vm, host, host))
    assert [f.status for f in found] == [Status.UNKNOWN]
    assert machine in found[0].message and "virtio-net-pci" in found[0].message


def test_explicit_properties_need_no_machine_version():
    vm = parse_cmdline(
        USO_GUEST.format(machine="pc-q35-rhel9.6.0")
        + ",host_uso=off,guest_uso4=off,guest_uso6=off,host_tunnel=off,host_tunnel_csum=off"
        + ",guest_tunnel=off,guest_tunnel_csum=off",
        "vm",
    )
    host = fixture_facts(TRIXIE)
    assert [f.status for f in check_device_defaults(Context(vm, host, host))] == [Status.PASS]


@pytest.mark.parametrize(
    ("os", "kernel", "platform"),
    [
        # Debian 12 with bookworm-backports' 6.12 (Debian 13's kernel rebuilt).
        (None, "6.12.30+bpo-amd64", "linux-debian-12-bpo-6.12"),
        # A RHEL 9.4 z-stream (EUS) kernel: same 5.14.0-427 build line.
        ("rhel-9.4", "5.14.0-427.42.1.el9_4.x86_64", "linux-rhel-9.4"),
        # Ubuntu 22.04 with the 6.8 HWE kernel.
        ("ubuntu-22.04", "6.8.0-45-generic", "linux-ubuntu-22.04-hwe-6.8"),
    ],
)
def test_distribution_kernels_are_judged_by_their_platform(os, kernel, platform):
    catalog = shipped_catalog()
    facts = fixture_facts(BOOKWORM)
    if os is not None:
        facts = assume(facts, "os", os, catalog)
    facts = assume(facts, "kernel", kernel, catalog)
    hp = host_platforms(catalog, facts)
    assert hp.distro is not None and hp.distro.id == platform
    # tap-uso (Linux 6.2) is decided from the platform, never "unknown distribution kernel".
    assert hp.has("tap-uso") is not Has.UNKNOWN, hp.evidence["tap-uso"].why
    assert platform in hp.evidence["tap-uso"].why


def test_backports_kernel_gets_the_upstream_capabilities():
    catalog = shipped_catalog()
    facts = assume(fixture_facts(BOOKWORM), "kernel", "6.12.30+bpo-amd64", catalog)
    assert host_platforms(catalog, facts).has("tap-uso") is Has.YES
    # An older bookworm-backports kernel line is another kernel: still unknown.
    other = assume(fixture_facts(BOOKWORM), "kernel", "6.5.0-0.deb12.4-amd64", catalog)
    assert host_platforms(catalog, other).has("tap-uso") is Has.UNKNOWN


def test_fleet_assume_backports_kernel_answers():
    hosts = [str(FIXTURES / "hosts" / BOOKWORM), str(FIXTURES / "hosts" / TRIXIE)]
    guest = str(FIXTURES / "cmdlines" / "uso-guest.cmdline")
    args = ["fleet", *hosts, "--cmdline", guest, "--format", "json"]
    result = CliRunner().invoke(
        app,
        [*args, "--assume", "hv-bookworm:kernel=6.12.30+bpo-amd64"],
        env={"COLUMNS": "120", "NO_COLOR": "1"},
    )
    # pc-q35-8.2 cannot run on the QEMU 7.2 host: no migration is judged, so exit 3 (never 0)
    assert result.exit_code == 3, result.stdout
    doc = json.loads(result.stdout)
    platforms = {c["hosts"][0]: c["effective_platform"] for c in doc["classes"]}
    assert platforms["hv-bookworm"] == "linux-debian-12-bpo-6.12"


def test_ubuntu_hpb_type_gives_the_guest_the_hosts_address_width():
    # -hpb's one deviation is host-phys-bits=on: between hosts of different widths the
    # guest's CPUID 0x80000008 changes, as with -cpu ...,host-phys-bits=on.
    from test_kvm_limits import with_bits

    from migcheck.checks.kvm import check_phys_bits

    src = fixture_facts(TRIXIE)
    assert isinstance(src.phys_bits, int)
    dst = with_bits(src, src.phys_bits - 2)
    for machine, status in (("pc-q35-noble-hpb", Status.FAIL), ("pc-q35-noble", Status.PASS)):
        guest = parse_cmdline(
            f"qemu-system-x86_64 -machine {machine} -accel kvm -cpu qemu64 -nodefaults", "vm"
        )
        found = check_phys_bits(Context(guest, src, dst))
        assert [f.status for f in found] == [status], (machine, found)
