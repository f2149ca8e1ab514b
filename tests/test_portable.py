"""portable: rewrite a command line so it is safe across hosts, verified by pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require
from qemudata import CAPS, CPUTEST, FIXTURES, caps_facts, cputest_facts, with_changes
from test_fleet import DEBIAN12, GUESTS, TRIXIE, UBUNTU, variant
from typer.testing import CliRunner

from migcheck.catalog import load_catalog
from migcheck.cli import app
from migcheck.cmdline import parse_cmdline
from migcheck.facts import save_facts
from migcheck.pair import check_pair
from migcheck.portable import make_portable
from migcheck.verdict import Verdict

LIBVIRT_STYLE = """\
LC_ALL=C \\
/usr/bin/qemu-system-x86_64 \\
-name guest=app01,debug-threads=on \\
-machine {machine},usb=off,dump-guest-core=off \\
-accel kvm \\
-cpu {cpu} \\
-m 4096 \\
-netdev '{{"type":"tap","fd":"32","id":"hostnet0"}}' \\
-device '{{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0","bus":"pcie.0"}}' \\
-msg timestamp=on
"""


# Checks that need facts these captures lack: a build's own data (device schemas,
# -dump-vmstate, compat properties) and the host's address width. Facts built from libvirt's
# recorded QMP, or the lab's replaying stand-in, cannot give them.
BUILD_CHECKS = {
    "device.type",
    "device.property",
    "device.netdev",
    "device.blockdev",
    "device.vmstate",
    "compat.defaults",
    "firmware.bios",  # image sizes are part of the build data (migcheck/checks/firmware.py)
    "firmware.pflash",
    "firmware.rom",
    "kvm.phys-bits",  # the host's address width: libvirt's captures do not record it
}


def proven_or_only_build_data_missing(report) -> None:
    """Safe, or unknown only because the per-build data is missing: the rewrite fixed every
    check it can be judged by, and nothing fails."""
    open_ = [
        (f.id, f.status.value, f.message)
        for f in report.findings
        if f.status.value not in ("pass", "warn")
    ]
    if report.verdict is Verdict.SAFE:
        return
    assert report.verdict is Verdict.UNKNOWN, open_
    assert all(fid in BUILD_CHECKS and st == "unknown" for fid, st, _ in open_), open_


def both_ways_safe(text: str, hosts) -> None:
    vm = parse_cmdline(text, "rewritten")
    for a in hosts:
        for b in hosts:
            if a is not b:
                proven_or_only_build_data_missing(check_pair(vm, a, b))


def changed_lines(result) -> list[str]:
    return [
        line
        for line in result.diff().splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_q35_across_qemu_72_and_82():
    require(CAPS.is_dir(), "needs the real QMP captures")
    hosts = [caps_facts("7.2.0", "hv-72"), caps_facts("8.2.0", "hv-82")]
    vm = parse_cmdline(LIBVIRT_STYLE.format(machine="q35", cpu="EPYC"), "app01.cmdline")
    assert check_pair(vm, hosts[0], hosts[1]).verdict is Verdict.UNSAFE
    result = make_portable(vm, hosts, load_catalog())
    assert result.ok, result.problems
    both_ways_safe(result.text, hosts)
    assert changed_lines(result) == [
        "--machine q35,usb=off,dump-guest-core=off \\",
        "+-machine pc-q35-7.2,usb=off,dump-guest-core=off \\",
    ]
    assert len(result.verification) == 2


def test_cpu_host_across_two_cpu_generations():
    require(CPUTEST.is_dir(), "needs the real CPU captures")
    # CLX and SKX; the captures record no kernel: give both the same Ubuntu 24.04 one.
    hosts = [
        with_changes(cputest_facts(cpu), kernel={"release": "6.8.0-45-generic", "arch": "x86_64"},
                     os=UBUNTU)
        for cpu in ("Xeon-Platinum-9242", "Xeon-Gold-6130")
    ]  # fmt: skip
    text = LIBVIRT_STYLE.format(machine="pc-q35-9.1", cpu="host,migratable=on")
    vm = parse_cmdline(text, "app01.cmdline")
    assert check_pair(vm, hosts[0], hosts[1]).verdict is Verdict.UNSAFE
    result = make_portable(vm, hosts, load_catalog())
    assert result.ok, result.problems
    both_ways_safe(result.text, hosts)
    lines = changed_lines(result)
    assert len(lines) == 2 and lines[0] == "--cpu host,migratable=on \\"
    model = lines[1].split()[1].split(",")[0]
    assert model.startswith(("Skylake-Server-v", "Cascadelake-Server-v", "Skylake-Client-v"))
    assert "avx512f" in lines[1]  # both generations have AVX-512: kept
    assert result.losses, "the newer CPU has features the older lacks"
    for host, lost in result.losses.items():
        assert lost and all(f not in lines[1].split(",") for f in lost), host


def uso_hosts():
    return [
        variant(TRIXIE, "hv-noble", "6.8.0-45-generic", UBUNTU),
        variant(TRIXIE, "hv-bookworm", "6.1.0-18-amd64", DEBIAN12),
    ]


def test_uso_guest_across_68_and_61_with_platform():
    hosts = uso_hosts()
    text = LIBVIRT_STYLE.format(machine="pc-q35-8.2", cpu="pentium3")
    vm = parse_cmdline(text, "uso.cmdline")
    assert check_pair(vm, hosts[0], hosts[1]).verdict is Verdict.UNSAFE
    result = make_portable(vm, hosts, load_catalog(), use_platform=True)
    assert result.ok, result.problems
    both_ways_safe(result.text, hosts)
    lines = changed_lines(result)
    assert lines[0].startswith("+-platform linux-")
    assert len(lines) == 1  # one inserted line, nothing else touched
    pinned = parse_cmdline(result.text, "x").platform
    assert "tap-uso" not in load_catalog().platforms[pinned].capabilities


def test_uso_guest_without_platform_switches_properties_off():
    hosts = uso_hosts()
    text = LIBVIRT_STYLE.format(machine="pc-q35-8.2", cpu="pentium3")
    # The default: what released QEMU accepts (no -platform).
    result = make_portable(parse_cmdline(text, "uso.cmdline"), hosts, load_catalog())
    assert result.ok, result.problems
    assert "-platform" not in (result.text or "")
    assert set(result.written_props) == {
        ("virtio-net-pci", p) for p in ("host_uso", "guest_uso4", "guest_uso6")
    }
    both_ways_safe(result.text, hosts)
    lines = changed_lines(result)
    assert len(lines) == 2 and lines[0].startswith("--device") and lines[1].startswith("+-device")
    device = parse_cmdline(result.text, "x").devices[0]
    assert device.props["host_uso"] is False and device.props["guest_uso6"] is False
    assert device.props["bus"] == "pcie.0"  # the rest of the device is kept


def test_vfio_guest_is_refused_with_reasons():
    hosts = uso_hosts()
    text = LIBVIRT_STYLE.format(machine="pc-q35-8.2", cpu="pentium3").replace(
        "-msg timestamp=on", "-device vfio-pci,host=0000:3b:00.0,id=hostdev0 \\\n-msg timestamp=on"
    )
    result = make_portable(parse_cmdline(text, "gpu.cmdline"), hosts, load_catalog())
    assert not result.ok and result.text is None
    assert any("vfio" in p.lower() for p in result.problems)


def test_already_portable_is_left_alone():
    hosts = uso_hosts()
    text = LIBVIRT_STYLE.format(machine="pc-q35-7.2", cpu="pentium3")
    result = make_portable(parse_cmdline(text, "ok.cmdline"), hosts, load_catalog())
    assert result.ok and result.text == text and not result.changes


def test_portable_cli(tmp_path: Path):
    paths = []
    for facts in uso_hosts():
        p = tmp_path / f"{facts.name}.json"
        save_facts(facts, p)  # with its QEMU build's data beside it
        paths.append(str(p))
    cmd = tmp_path / "uso.cmdline"
    cmd.write_text(LIBVIRT_STYLE.format(machine="pc-q35-8.2", cpu="pentium3"))
    runner = CliRunner()
    out = runner.invoke(app, ["portable", *paths, "-c", str(cmd)])
    assert out.exit_code == 0, out.stderr  # the real captures carry their build data
    assert "-platform" not in out.stdout and '"host_uso":false' in out.stdout
    pinned = runner.invoke(app, ["portable", *paths, "-c", str(cmd), "--platform"])
    assert "-platform linux-" in pinned.stdout and "changed -platform" in pinned.stderr
    diff = runner.invoke(app, ["portable", *paths, "-c", str(cmd), "-f", "diff", "--no-platform"])
    assert diff.stdout.startswith("---") and "host_uso" in diff.stdout
    doc = json.loads(runner.invoke(app, ["portable", *paths, "-c", str(cmd), "-f", "json"]).stdout)
    assert doc["portable"] is True and doc["changes"][0]["option"] == "device"
    assert all(p["verdict"] == "safe" for p in doc["verified_pairs"])
    cmd.write_text(GUESTS["uso.cmdline"] + " -device vfio-pci,host=0000:3b:00.0\n")
    refused = runner.invoke(app, ["portable", *paths, "-c", str(cmd)])
    assert refused.exit_code == 1 and refused.stdout == ""
    assert "cannot be made portable" in refused.stderr


def test_written_property_unknown_to_a_hosts_qemu_is_refused():
    """host_uso came with QEMU 8.2: a host whose build (here Debian 12's 7.2) lacks it would
    refuse the rewritten guest, so the rewrite is refused, naming host and property."""
    hosts = uso_hosts()
    old_build = json.loads((FIXTURES / "hosts" / "debian12-qemu7.2-epyc-pvm.json").read_text())
    q = dict(hosts[1].doc["qemu"])
    q["build"] = old_build["qemu"]["build"]
    hosts[1] = with_changes(hosts[1], qemu=q)
    text = LIBVIRT_STYLE.format(machine="pc-q35-8.2", cpu="pentium3")
    result = make_portable(parse_cmdline(text, "uso.cmdline"), hosts, load_catalog())
    assert not result.ok
    assert any(
        "hv-bookworm: QEMU 7.2.22 has no property host_uso on virtio-net-pci" in p
        for p in result.problems
    ), result.problems


def test_host_without_build_data_leaves_the_rewrite_unverified():
    hosts = uso_hosts()
    q = dict(hosts[1].doc["qemu"])
    q["build"] = {**q["build"], "key": "0" * 32}
    hosts[1] = with_changes(hosts[1], qemu=q)
    text = LIBVIRT_STYLE.format(machine="pc-q35-8.2", cpu="pentium3")
    result = make_portable(parse_cmdline(text, "uso.cmdline"), hosts, load_catalog())
    assert result.ok and result.verdict is Verdict.UNKNOWN
    assert any("cannot check that its QEMU accepts virtio-net-pci.host_uso" in u
               for u in result.unverified)  # fmt: skip


def test_libvirt_format_and_domain_xml_input(tmp_path: Path):
    """--format libvirt prints the <cpu> element with libvirt's feature names; a domain XML
    guest is rewritten the same way (machine type and CPU)."""
    paths = []
    for facts in uso_hosts():
        p = tmp_path / f"{facts.name}.json"
        save_facts(facts, p)
        paths.append(str(p))
    xml = tmp_path / "g.xml"
    xml.write_text(
        "<domain type='kvm'><name>g</name><memory unit='MiB'>1024</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
        "<cpu mode='custom' match='exact'><model>pentium3</model>"
        "<feature policy='require' name='sse3'/></cpu>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>"
    )
    runner = CliRunner()
    out = runner.invoke(app, ["portable", *paths, "--domain-xml", str(xml)])
    assert out.exit_code in (0, 3), out.stderr
    assert "<cpu mode='custom' match='exact' check='full'>" in out.stdout
    assert "<model fallback='forbid'>pentium3</model>" in out.stdout
    assert "machine='pc-q35-" in out.stdout  # the alias q35 became a versioned type
    assert "name='pni'" in out.stdout  # QEMU's sse3 is libvirt's pni
    refused = runner.invoke(app, ["portable", *paths, "--domain-xml", str(xml), "-f", "cmdline"])
    assert refused.exit_code == 2 and "no command line to rewrite" in refused.stderr


@pytest.mark.parametrize("machine", ["q35", "pc-q35-8.2"])
def test_portable_over_ssh_lab(lab, tmp_path: Path, machine: str):
    """Two lab hosts (real sshd, recorded QEMU 7.2 and 8.2): rewrite, then pair both ways."""
    require(CAPS.is_dir(), "needs the real QMP captures")
    for name, qemu in (("p-72", "7.2.0"), ("p-82", "8.2.0")):
        if name not in lab.hosts:
            lab.add_host(name, qemu=qemu)
    cmd = tmp_path / "vm.cmdline"
    cmd.write_text(LIBVIRT_STYLE.format(machine=machine, cpu="EPYC"))
    runner = CliRunner()
    cfg = str(lab.ssh_config)
    out = runner.invoke(app, ["portable", "p-72", "p-82", "-F", cfg, "-c", str(cmd)])
    # The stand-ins replay recorded QMP and cannot run -dump-vmstate: the rewrite is printed
    # and exits 3 (not proven), naming device.vmstate as the only check that could not judge.
    assert out.exit_code in (0, 3), out.stderr
    assert out.exit_code == 0 or "device.vmstate" in out.stderr
    fixed = tmp_path / "fixed.cmdline"
    fixed.write_text(out.stdout)
    for src, dst in (("p-72", "p-82"), ("p-82", "p-72")):
        pair = runner.invoke(app, ["pair", src, dst, "-F", cfg, "-c", str(fixed), "-f", "json"])
        doc = json.loads(pair.stdout)
        assert pair.exit_code == {"safe": 0, "unknown": 3}[doc["verdict"]], pair.stdout
        open_ = [c for c in doc["checks"] if c["status"] not in ("pass", "warn")]
        assert all(c["id"] in BUILD_CHECKS and c["status"] == "unknown" for c in open_), open_


def test_libvirt_feature_names_agree_with_libvirts_cpu_map():
    """Every x86 feature of libvirt's cpu_map: its QEMU spelling (a <alias source='qemu'>, or
    the name with '_' as '-', as QEMU's feat2prop) maps back to libvirt's own name."""
    import xml.etree.ElementTree as ET

    from migcheck.portable import libvirt_feature

    path = CAPS.parents[1] / "libvirt" / "cpu_map" / "x86_features.xml"
    require(path.is_file(), f"libvirt cpu_map not found at {path}")
    root = ET.parse(path).getroot()
    names = 0
    for feature in root.iter("feature"):
        name = feature.get("name") or ""
        spellings = [a.get("name") for a in feature.findall("alias") if a.get("source") == "qemu"]
        for qemu in spellings or [name.replace("_", "-")]:
            assert libvirt_feature(qemu or "") == name, (qemu, name)
        names += 1
    assert names > 300
