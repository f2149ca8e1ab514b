"""Platforms end to end: host -> platforms, -platform semantics, kernel-dependent defaults."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from qemudata import fixture_facts
from test_catalog import cap, distro, make_catalog

from migcheck.catalog import load_catalog
from migcheck.checks.base import Status
from migcheck.cmdline import parse_cmdline
from migcheck.errors import InputError
from migcheck.facts import Facts
from migcheck.pair import check_pair
from migcheck.platforms import Has, HostPlatforms, common_platforms, recommended_pin
from migcheck.verdict import Verdict

TRIXIE = "debian13-qemu10.0-epyc-pvm.json"  # real QEMU 10.0 (has pc-q35-8.2) under real KVM

UBUNTU_2404 = {"id": "ubuntu", "id_like": ["debian"], "version_id": "24.04",
               "pretty_name": "Ubuntu 24.04.1 LTS", "variant_id": ""}  # fmt: skip
DEBIAN_12 = {"id": "debian", "id_like": [], "version_id": "12",
             "pretty_name": "Debian GNU/Linux 12 (bookworm)", "variant_id": ""}  # fmt: skip
RHEL_94 = {"id": "rhel", "id_like": ["fedora"], "version_id": "9.4",
           "pretty_name": "Red Hat Enterprise Linux 9.4 (Plow)", "variant_id": ""}  # fmt: skip


def host(name: str, kernel: str, os_release: dict, base: str = TRIXIE) -> Facts:
    """A real capture with another kernel release and distro: what the same QEMU and KVM
    would report on a host running that kernel. KVM capabilities stay the real ones."""
    doc = copy.deepcopy(dict(fixture_facts(base).doc))
    doc["host"] = {"name": name}
    doc["kernel"] = dict(doc["kernel"], release=kernel, version=f"Linux version {kernel}")
    doc["os"] = dict(os_release)
    return Facts(doc, name, fixture_facts(base).base_dir)  # its QEMU build stays at hand


@pytest.fixture(scope="module")
def h68() -> Facts:
    return host("hv-noble", "6.8.0-45-generic", UBUNTU_2404)


@pytest.fixture(scope="module")
def h61() -> Facts:
    return host("hv-bookworm", "6.1.0-18-amd64", DEBIAN_12)


USO_GUEST = (
    "qemu-system-x86_64 -machine pc-q35-8.2 -accel kvm -cpu host -m 2048 "
    "-netdev tap,id=hostnet0,ifname=tap0,script=no,downscript=no "
    '-device \'{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0"}\' {extra}'
)


def vm(extra: str = "", text: str = USO_GUEST):
    return parse_cmdline(text.replace("{extra}", extra), "uso.cmdline")


def finding(report, cid: str):
    (f,) = [f for f in report.findings if f.id == cid]
    return f


def test_uso_guest_from_68_to_61_is_unsafe(h68: Facts, h61: Facts):
    report = check_pair(vm(), h68, h61)
    assert report.verdict is Verdict.UNSAFE
    dd = finding(report, "kernel.device-defaults")
    assert dd.status is Status.FAIL
    for text in ("host_uso", "guest_uso4", "guest_uso6", "6.2", "net0"):
        assert text in dd.message, dd.message
    assert "host_uso=off" in (dd.fix or "")
    support = finding(report, "platform.support")
    assert support.status is Status.FAIL
    assert "tap-uso" in support.message
    assert "-platform linux-6.1" in (support.fix or "")


def test_uso_guest_pinned_to_linux_61_is_safe(h68: Facts, h61: Facts):
    report = check_pair(vm("-platform linux-6.1"), h68, h61)
    assert finding(report, "platform.support").status is Status.PASS
    assert finding(report, "kernel.device-defaults").status is Status.PASS
    assert report.verdict is Verdict.SAFE, [f for f in report.findings if f.status != Status.PASS]


def test_uso_guest_with_offloads_off_is_safe(h68: Facts, h61: Facts):
    keyval = USO_GUEST.replace(
        '-device \'{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0"}\'',
        "-device virtio-net-pci,netdev=hostnet0,id=net0,host_uso=off,guest_uso4=off,guest_uso6=off",
    )
    report = check_pair(vm(text=keyval), h68, h61)
    assert finding(report, "kernel.device-defaults").status is Status.PASS
    assert report.verdict is Verdict.SAFE
    with_global = check_pair(
        vm("-global virtio-net-pci.host_uso=off -global virtio-net-pci.guest_uso4=off "
           "-global virtio-net-pci.guest_uso6=off"), h68, h61)  # fmt: skip
    assert with_global.verdict is Verdict.SAFE


def test_older_machine_type_has_uso_off(h68: Facts, h61: Facts):
    older = vm(text=USO_GUEST.replace("pc-q35-8.2", "pc-q35-8.1"))
    report = check_pair(older, h68, h61)
    assert finding(report, "kernel.device-defaults").status is Status.PASS
    assert report.verdict is Verdict.SAFE


def test_non_tap_netdev_does_not_depend_on_tap(h68: Facts, h61: Facts):
    user = vm(text=USO_GUEST.replace("-netdev tap,", "-netdev user,"))
    assert check_pair(user, h68, h61).verdict is Verdict.SAFE


def test_uso_guest_from_61_to_68_is_safe(h68: Facts, h61: Facts):
    assert check_pair(vm(), h61, h68).verdict is Verdict.SAFE


def test_explicit_platform_the_destination_lacks(h68: Facts, h61: Facts):
    report = check_pair(vm("-platform linux-6.8"), h68, h61)
    support = finding(report, "platform.support")
    assert support.status is Status.FAIL
    assert "destination does not support linux-6.8" in support.message


def test_unknown_platform_is_bad_input(h68: Facts):
    with pytest.raises(InputError, match=r"unknown platform 'linux-99\.1'.*linux-6\.1"):
        check_pair(vm("-platform linux-99.1"), h68, h68)


def test_rhel_host_is_recognised_as_its_distro_platform():
    rhel = host("hv-rhel", "5.14.0-427.13.1.el9_4.x86_64", RHEL_94)
    hp = HostPlatforms(load_catalog(), rhel)
    assert hp.distro is not None and hp.distro.id == "linux-rhel-9.4"
    assert hp.effective is not None and hp.effective.id == "linux-rhel-9.4"
    assert "linux-rhel-9.4" in {p.id for p in hp.supported}


def test_unrecognised_distro_kernel_is_unknown_not_guessed(h68: Facts):
    odd = host("hv-custom", "5.14.0-999.el9.x86_64", RHEL_94)  # a build no platform knows
    hp = HostPlatforms(load_catalog(), odd)
    assert hp.distro is None
    assert hp.has("tap-uso") is Has.UNKNOWN
    report = check_pair(vm(), h68, odd)
    assert report.verdict is Verdict.UNKNOWN  # never safe on a guess
    assert finding(report, "kernel.device-defaults").status is Status.UNKNOWN


def test_vanilla_kernel_on_unknown_distro_uses_its_version():
    arch = host("hv-arch", "6.1.55-1-lts", {"id": "arch", "version_id": "", "id_like": []})
    hp = HostPlatforms(load_catalog(), arch)
    assert hp.has("tap-uso") is Has.NO
    assert "6.1.55-1-lts < 6.2" in hp.evidence["tap-uso"].why


def test_common_platform_and_recommended_pin(h68: Facts, h61: Facts):
    catalog = load_catalog()
    hosts = [HostPlatforms(catalog, h68), HostPlatforms(catalog, h61)]
    common = {p.id for p in common_platforms(hosts)}
    assert "linux-6.1" in common and "linux-6.8" not in common
    pin = recommended_pin(hosts)
    assert pin is not None and "tap-uso" not in pin.capabilities


# --- tie-breaks, on a small catalog built for the purpose ---------------------------------


def tie_catalog(tmp_path: Path):
    backport_c = 'backports = [{ capability = "c", source = "test" }]'
    ubuntu = (
        distro("linux-ubuntu-x", "5.10", backports=backport_c)
        .replace('id = "rhel", version_id = "9.4"', 'id = "ubuntu", version_id = "20.04"')
        .replace("^5\\.14\\.0-427\\.", "^5\\.4\\.0-")
    )
    return load_catalog(
        make_catalog(
            tmp_path,
            {
                "a": cap("a", "5.10"),
                "b": cap("b", "6.1", extra='[detect]\nkvm_cap = "KVM_CAP_DIRTY_LOG_RING"'),
                "c": cap("c", "6.2"),
            },
            {
                "linux-rhel-9.4": distro("linux-rhel-9.4", "5.14", backports=backport_c),
                "linux-ubuntu-x": ubuntu,
            },
        )
    )


def test_effective_prefers_own_distro_among_equal_maxima(tmp_path: Path):
    catalog = tie_catalog(tmp_path)
    rhel = host("hv-rhel", "5.14.0-427.13.1.el9_4.x86_64", RHEL_94)
    rhel.doc["kvm"]["capabilities"]["KVM_CAP_DIRTY_LOG_RING"] = 0  # b: no
    hp = HostPlatforms(catalog, rhel)
    assert {p.id for p in hp.maximal} == {"linux-rhel-9.4", "linux-ubuntu-x"}
    assert hp.effective is not None and hp.effective.id == "linux-rhel-9.4"


def test_effective_is_the_newest_of_equal_upstream_maxima(tmp_path: Path):
    catalog = tie_catalog(tmp_path)
    arch = host("hv-arch", "6.3.1-arch1", {"id": "arch", "version_id": "", "id_like": []})
    hp = HostPlatforms(catalog, arch)
    assert {p.id for p in hp.maximal} == {"linux-6.2", "linux-6.3"}
    assert hp.effective is not None and hp.effective.id == "linux-6.3"


def test_direct_probe_evidence_beats_the_kernel_version(tmp_path: Path):
    catalog = tie_catalog(tmp_path)
    arch = host("hv-arch", "6.3.1-arch1", {"id": "arch", "version_id": "", "id_like": []})
    arch.doc["kvm"]["capabilities"]["KVM_CAP_DIRTY_LOG_RING"] = 0
    hp = HostPlatforms(catalog, arch)
    assert hp.has("b") is Has.NO and "KVM_CAP_DIRTY_LOG_RING = 0" in hp.evidence["b"].why
    # Without b the upstream line stops at linux-5.14; the distro sets {a, c} still fit.
    assert {p.id for p in hp.maximal} == {"linux-rhel-9.4", "linux-ubuntu-x"}
    assert "linux-6.2" not in {p.id for p in hp.supported}


def test_effective_does_not_name_a_kernel_newer_than_the_host(tmp_path: Path):
    catalog = tie_catalog(tmp_path)
    vanilla = host("hv-62", "6.2.5", {"id": "arch", "version_id": "", "id_like": []})
    hp = HostPlatforms(catalog, vanilla)
    assert {p.id for p in hp.maximal} == {"linux-6.2", "linux-6.3"}
    assert hp.effective is not None and hp.effective.id == "linux-6.2"


# --- the CLI ------------------------------------------------------------------------------


def cli(*args: str):
    from typer.testing import CliRunner

    from migcheck.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_cli_platforms_list_and_show():
    import json

    listing = json.loads(cli("platforms", "list", "--format", "json").stdout)
    ids = [p["id"] for p in listing]
    assert "linux-6.1" in ids and "linux-rhel-9.4" in ids
    assert ids.index("linux-6.1") < ids.index("linux-6.10")
    shown = json.loads(cli("platforms", "show", "linux-6.2", "--format", "json").stdout)
    uso = next(c for c in shown["capabilities"] if c["id"] == "tap-uso")
    assert uso["linux"] == "6.2" and uso["sources"]
    assert "linux-6.1" in shown["parents"] or "linux-5.11" in shown["parents"]
    table = cli("platforms", "show", "linux-6.2")
    assert table.exit_code == 0 and "tap-uso" in table.stdout
    bad = cli("platforms", "show", "linux-99.9")
    assert bad.exit_code == 2 and "known platforms" in bad.stderr


@pytest.mark.parametrize("fmt", ["text", "json", "dot", "mermaid"])
def test_cli_platforms_graph_formats(fmt: str):
    result = cli("platforms", "graph", "--format", fmt)
    assert result.exit_code == 0
    out = result.stdout
    assert "linux-6.2" in out
    if fmt == "json":
        import json

        doc = json.loads(out)
        assert {"superset", "subset"} <= doc["edges"][0].keys()
    elif fmt == "dot":
        assert out.startswith("digraph platforms {") and "->" in out
    elif fmt == "mermaid":
        assert out.startswith("graph BT") and "-->" in out


def test_cli_host_shows_platforms(tmp_path: Path):
    import json

    rhel = host("hv-rhel", "5.14.0-427.13.1.el9_4.x86_64", RHEL_94)
    path = tmp_path / "rhel.json"
    path.write_text(json.dumps(rhel.doc))
    doc = json.loads(cli("host", str(path), "--format", "json").stdout)
    plats = doc["platforms"]
    assert plats["distro"] == "linux-rhel-9.4" and plats["effective"] == "linux-rhel-9.4"
    assert "linux-rhel-9.4" in plats["maximal"]
    assert plats["capabilities"]["tap-uso"]["has"] == "no"
