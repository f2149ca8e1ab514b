"""Fleets: class grouping equals naive all-pairs, output formats, baseline, what-if."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import require
from qemudata import CAPS, caps_facts, fixture_facts

from migcheck.catalog import load_catalog
from migcheck.cmdline import parse_cmdline
from migcheck.facts import Facts, save_facts
from migcheck.fleet import baseline_cpu, can_run, evaluate, fingerprint
from migcheck.pair import check_pair
from migcheck.report.fleet import render_json, render_junit, render_markdown
from migcheck.verdict import Verdict

TRIXIE = "debian13-qemu10.0-epyc-pvm.json"
# Checks that need a QEMU build's own data, which an assumed (--assume qemu=) release lacks.
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
}
BOOKWORM = "debian12-qemu7.2-epyc-pvm.json"
UBUNTU = {"id": "ubuntu", "id_like": ["debian"], "version_id": "24.04", "pretty_name": "Ubuntu"}
DEBIAN12 = {"id": "debian", "id_like": [], "version_id": "12", "pretty_name": "Debian 12"}

GUESTS = {
    "uso.cmdline": "-machine pc-q35-8.2 -accel kvm -cpu host -netdev tap,id=n0 "
    "-device virtio-net-pci,netdev=n0,id=net0",
    "q35.cmdline": "-machine q35 -accel kvm -cpu pentium3",
    "pinned.cmdline": "-machine pc-q35-7.2 -accel kvm -cpu pentium3",
}


def guests():
    return [parse_cmdline(text, name) for name, text in GUESTS.items()]


def variant(base: str, name: str, kernel: str | None = None, os_release: dict | None = None):
    doc = dict(fixture_facts(base).doc)  # shallow, as fleets share sections
    doc["host"] = {"name": name}
    if kernel:
        doc["kernel"] = dict(doc["kernel"], release=kernel)
    if os_release:
        doc["os"] = os_release
    return Facts(doc, name, fixture_facts(base).base_dir)


def fleet50() -> dict[str, Facts]:
    """50 hosts in a handful of real configurations: two QEMU builds, three kernels."""
    hosts = {}
    shapes = [
        (TRIXIE, "6.8.0-45-generic", UBUNTU),
        (TRIXIE, "6.1.0-18-amd64", DEBIAN12),
        (BOOKWORM, "6.1.0-18-amd64", DEBIAN12),
        (BOOKWORM, None, None),
        (TRIXIE, None, None),
    ]
    for i in range(50):
        base, kernel, os_release = shapes[i % len(shapes)]
        hosts[f"hv{i:02d}"] = variant(base, f"hv{i:02d}", kernel, os_release)
    return hosts


def test_identical_hosts_share_a_class_despite_volatile_fields():
    a = fixture_facts(BOOKWORM)
    doc = copy.deepcopy(dict(a.doc))
    doc["host"] = {"name": "other", "gathered_at": "2030-01-01"}
    doc["probe"]["seconds"] = 9.9
    doc["cpu"]["count"] = 512
    assert fingerprint(Facts(doc, "x", a.base_dir)) == fingerprint(a)
    doc["kernel"]["release"] = "6.1.0-18-amd64"
    assert fingerprint(Facts(doc, "x", a.base_dir)) != fingerprint(a)


def test_class_grouping_equals_naive_all_pairs_on_50_hosts():
    catalog = load_catalog()
    hosts = fleet50()
    vms = guests()
    result = evaluate(vms, hosts, catalog)
    assert len(result.classes) == 5
    compared = 0
    for g, vm in enumerate(vms):
        runs = {h: can_run(vm, f, catalog) for h, f in hosts.items()}
        for src, sf in hosts.items():
            for dst, df in hosts.items():
                if src == dst:
                    continue
                got = result.migration_verdict(g, src, dst)
                if runs[src] is False or runs[dst] is False:
                    assert got is None, (vm.source, src, dst)
                    continue
                assert got is check_pair(vm, sf, df, catalog=catalog).verdict, (vm.source, src, dst)
                compared += 1
    assert compared > 3000


def test_fleet_answers_are_right_for_the_uso_guest():
    result = evaluate(guests(), fleet50(), load_catalog())
    # hv00 (Ubuntu 6.8, QEMU 10.0) -> hv01 (Debian 6.1, QEMU 10.0): USO lost.
    assert result.migration_verdict(0, "hv00", "hv01") is Verdict.UNSAFE
    assert result.migration_verdict(0, "hv01", "hv00") is Verdict.SAFE
    # QEMU 7.2 hosts have no pc-q35-8.2: the guest cannot run there at all.
    assert result.migration_verdict(0, "hv00", "hv02") is None
    assert result.verdict is Verdict.UNSAFE


def test_json_junit_markdown(tmp_path: Path):
    result = evaluate(guests(), fleet50(), load_catalog())
    doc = json.loads(render_json(result))
    assert doc["schema"] == "migcheck.fleet/1" and doc["verdict"] == "unsafe"
    assert {c["id"] for c in doc["classes"]} == {"C1", "C2", "C3", "C4", "C5"}
    assert len(doc["hosts"]) == 50 and len(doc["guests"]) == 3
    cell = doc["guests"][0]["cells"][0]
    assert {"source", "destination", "verdict", "failing", "checks"} <= cell.keys()

    root = ET.fromstring(render_junit(result))
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    failures = root.findall("./testsuite/testcase/failure")
    assert int(root.get("tests")) == len(cases) == len(result.cells)
    assert int(root.get("failures")) == len(failures) > 0
    for suite in root.findall("testsuite"):
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
    assert all(f.get("message", "").startswith("unsafe: ") and f.text for f in failures)

    md = render_markdown(result)
    assert md.startswith("## migcheck fleet: ❌ unsafe")
    assert "| from \\ to |" in md and "`kernel.device-defaults`" in md


def test_baseline_is_the_newest_model_usable_everywhere():
    require(CAPS.is_dir(), "needs the real QMP captures")
    hosts = [caps_facts("9.1.0"), caps_facts("8.2.0"), caps_facts("7.2.0")]
    best = baseline_cpu(hosts, load_catalog())
    assert best is not None and best.startswith("EPYC")
    for h in hosts:
        assert h.cpu_models[best]["unavailable_features"] == []
    # No model of a newer generation (by year, any vendor) is usable on every host.
    years = {f: year for f, _vendor, year in load_catalog().cpu_families}
    family = best.rsplit("-v", 1)[0]
    for newer in [f for f, year in years.items() if year > years[family]]:
        everywhere = [
            name
            for name in hosts[0].cpu_models
            if name.startswith(newer + "-v")
            and all(h.cpu_models.get(name, {}).get("unavailable_features") == [] for h in hosts)
        ]
        assert not everywhere, (newer, everywhere)


def test_fleet_cli_exit_codes_and_formats(tmp_path: Path):
    from typer.testing import CliRunner

    from migcheck.cli import app

    hosts = fleet50()
    paths = []
    for name in ("hv00", "hv01", "hv03"):
        p = tmp_path / f"{name}.json"
        save_facts(hosts[name], p)  # with its QEMU build beside it, as gather writes facts
        paths.append(str(p))
    gdir = tmp_path / "guests"
    gdir.mkdir()
    for name, text in GUESTS.items():
        (gdir / name).write_text(text + "\n")
    runner = CliRunner()
    res = runner.invoke(app, ["fleet", *paths, "-c", str(gdir), "-f", "json"])
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)
    assert sorted(h["name"] for h in doc["hosts"]) == ["hv00", "hv01", "hv03"]
    out = tmp_path / "report.xml"
    res = runner.invoke(app, ["fleet", *paths, "-c", str(gdir / "pinned.cmdline"), "-f", "junit",
                              "-o", str(out)])  # fmt: skip
    assert ET.parse(out).getroot().tag == "testsuites"
    res = runner.invoke(app, ["fleet", *paths[:2], "-c", str(gdir / "pinned.cmdline")])
    assert res.exit_code == 0, res.stdout
    missing = runner.invoke(app, ["fleet", paths[0], "nosuchhost.invalid", "-c", str(gdir)])
    assert missing.exit_code in (1, 3)


@pytest.mark.parametrize("fmt", ["table", "json", "junit", "markdown"])
def test_fleet_cli_renders_every_format(tmp_path: Path, fmt: str):
    from typer.testing import CliRunner

    from migcheck.cli import app

    cmd = tmp_path / "vm.cmdline"
    cmd.write_text(GUESTS["q35.cmdline"])
    hosts = [
        str(Path(__file__).resolve().parents[1] / "fixtures" / "hosts" / n)
        for n in (TRIXIE, BOOKWORM)
    ]
    res = CliRunner().invoke(app, ["fleet", *hosts, "-c", str(cmd), "-f", fmt],
                             env={"COLUMNS": "120"})  # fmt: skip
    assert res.exit_code == 1
    assert "C1" in res.stdout and "C2" in res.stdout


# --- what-if ------------------------------------------------------------------------------


def whatif(hosts: dict[str, Facts], vm_text: str, assumptions: list[str], groups=None):
    from migcheck.commands import apply_assumptions
    from migcheck.fleet import Assumption, compare

    catalog = load_catalog()
    vms = [parse_cmdline(vm_text, "guest.cmdline")]
    before = evaluate(vms, hosts, catalog)
    after_facts = apply_assumptions(
        hosts, groups or {h: () for h in hosts}, [Assumption.parse(a) for a in assumptions], catalog
    )
    after = evaluate(vms, after_facts, catalog)
    return before, after, compare(before, after)


def noble_fleet(n: int = 4) -> dict[str, Facts]:
    return {f"hv{i}": variant(TRIXIE, f"hv{i}", "6.8.0-45-generic", UBUNTU) for i in range(n)}


def test_whatif_kernel_downgrade_strands_a_uso_guest():
    before, _after, changes = whatif(noble_fleet(), GUESTS["uso.cmdline"], ["hv1:kernel=6.1.0"])
    assert before.verdict is Verdict.SAFE
    regressions = [c for c in changes if c.regression]
    assert regressions
    assert all("hv1" in c.dst for c in regressions)
    assert any("kernel.device-defaults" in c.reasons for c in regressions)
    assert sum(c.pairs for c in regressions) == 3  # hv0, hv2, hv3 -> hv1


def test_whatif_partial_qemu_upgrade_breaks_q35_guests():
    groups = {"hv0": ("canary",), "hv1": ("canary",), "hv2": (), "hv3": ()}
    before, after, changes = whatif(
        noble_fleet(), GUESTS["q35.cmdline"], ["canary:qemu=10.2.0"], groups
    )
    assert before.verdict is Verdict.SAFE
    regressions = [c for c in changes if c.regression]
    canary = {"hv0", "hv1"}
    mixed = [c for c in regressions if set(c.src) & canary != set(c.dst) & canary]
    assert mixed and all("machine.alias" in c.reasons for c in mixed)
    assert all(c.after is Verdict.UNSAFE for c in mixed)
    # Between upgraded hosts only what an assumed build cannot tell stays open.
    for c in regressions:
        if c not in mixed:
            assert c.after is Verdict.UNKNOWN
            assert set(c.reasons) <= BUILD_CHECKS | {"machine.alias"}, c.reasons
    assert after.host_class["hv0"] == after.host_class["hv1"] != after.host_class["hv2"]
    upgraded = after.class_by_id(after.host_class["hv0"]).facts
    assert upgraded.resolve_machine("q35") == "pc-q35-10.2"
    assert upgraded.doc["assumed"] == {"qemu": "10.2.0"}


def test_whatif_upgrading_everything_keeps_pinned_guests_safe():
    _before, after, changes = whatif(
        noble_fleet(), "-machine pc-q35-10.0 -accel kvm -cpu pentium3", ["all:qemu=10.2.0"]
    )
    # No cell becomes unsafe; what the assumed build can build is unknown until a host
    # running it is gathered, so the device checks say so (and nothing else does).
    assert not [c for c in changes if c.after is Verdict.UNSAFE]
    assert after.verdict is not Verdict.UNSAFE
    for cell in after.cells.values():
        open_ = {f.id for f in cell.report.findings if f.status.value in ("fail", "unknown")}
        assert open_ <= BUILD_CHECKS, open_


def test_whatif_qemu_machine_lists_follow_the_release_facts():
    from migcheck.whatif import machines_for

    m = {x["name"]: x for x in machines_for(load_catalog(), "10.2.0")}
    assert "pc-q35-10.2" in m and "pc-q35-4.2" not in m  # 10.2 dropped 4.2 (lifecycle rule)
    assert m["pc-q35-7.2"]["deprecated"] and not m["pc-q35-8.0"]["deprecated"]
    assert [n for n, x in m.items() if x["is_default"]] == ["pc-i440fx-10.2"]


def test_whatif_rejects_bad_assumptions(tmp_path: Path):
    from migcheck.errors import InputError
    from migcheck.fleet import Assumption

    with pytest.raises(InputError, match="expected HOST_OR_GROUP"):
        Assumption.parse("hv1-kernel-6.1")
    with pytest.raises(InputError, match=r"no release facts for QEMU 99\.1"):
        whatif(noble_fleet(2), GUESTS["q35.cmdline"], ["hv0:qemu=99.1.0"])
    with pytest.raises(InputError, match="no host or group"):
        whatif(noble_fleet(2), GUESTS["q35.cmdline"], ["nothere:qemu=10.2.0"])


def test_whatif_cli_exit_code_is_the_upgrade_gate(tmp_path: Path):
    from typer.testing import CliRunner

    from migcheck.cli import app

    paths = []
    for name, facts in noble_fleet(3).items():
        p = tmp_path / f"{name}.json"
        save_facts(facts, p)  # with its QEMU build beside it, as gather writes facts
        paths.append(str(p))
    cmd = tmp_path / "uso.cmdline"
    cmd.write_text(GUESTS["uso.cmdline"])
    runner = CliRunner()
    bad = runner.invoke(app, ["fleet", *paths, "-c", str(cmd), "--assume", "hv1:kernel=6.1.0",
                              "-f", "json"])  # fmt: skip
    assert bad.exit_code == 1, bad.stderr
    doc = json.loads(bad.stdout)
    assert doc["whatif"]["regressions"] == 2
    fine = runner.invoke(app, ["fleet", *paths, "-c", str(cmd), "--assume", "hv1:kernel=6.12.0"])
    assert fine.exit_code == 0, fine.stdout


def test_fleet_from_an_ansible_inventory_with_groups(tmp_path: Path):
    from typer.testing import CliRunner

    from migcheck.cli import app

    for name, facts in noble_fleet(4).items():
        save_facts(facts, tmp_path / f"{name}.json")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[canary]\nhv0 ansible_host=hv0.json\n\n[rest]\nhv1 ansible_host=hv1.json\n"
        "hv2 ansible_host=hv2.json\nhv3 ansible_host=hv3.json\n\n"
        "[hypervisors:children]\ncanary\nrest\n"
    )
    cmd = tmp_path / "q35.cmdline"
    cmd.write_text(GUESTS["q35.cmdline"])
    runner = CliRunner()
    args = ["fleet", "--inventory", str(inventory), "-c", str(cmd), "-f", "json"]
    today = runner.invoke(app, args)
    assert today.exit_code == 0, today.stderr
    assert sorted(h["name"] for h in json.loads(today.stdout)["hosts"]) == [
        "hv0",
        "hv1",
        "hv2",
        "hv3",
    ]
    gate = runner.invoke(app, [*args, "--assume", "canary:qemu=10.2.0"])
    assert gate.exit_code == 1, gate.stderr
    doc = json.loads(gate.stdout)
    assert doc["whatif"]["regressions"] == 6  # hv0 <-> each of 3 others, both directions
    only_rest = runner.invoke(app, ["fleet", "rest", "--inventory", str(inventory), "-c", str(cmd),
                                    "-f", "json"])  # fmt: skip
    assert sorted(h["name"] for h in json.loads(only_rest.stdout)["hosts"]) == ["hv1", "hv2", "hv3"]


def test_documented_ci_jobs_use_real_options():
    """The GitHub Actions and GitLab CI examples in docs/ci only use options that exist."""
    import re

    import yaml
    from typer.testing import CliRunner

    from migcheck.cli import app

    help_text = CliRunner().invoke(app, ["fleet", "--help"], env={"COLUMNS": "200"}).stdout
    docs = Path(__file__).resolve().parents[1] / "docs" / "ci"
    for name in ("github-actions.yml", "gitlab-ci.yml"):
        text = (docs / name).read_text()
        yaml.safe_load(text)  # valid YAML
        commands = re.findall(r"migcheck fleet[^\n]*(?:\n\s+--[^\n]*)*", text)
        assert commands, name
        for command in commands:
            for option in re.findall(r"(--[a-z-]+)", command):
                assert option in help_text, (name, option)
