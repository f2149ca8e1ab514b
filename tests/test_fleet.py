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
from migcheck.facts import Facts
from migcheck.fleet import baseline_cpu, can_run, evaluate, fingerprint
from migcheck.pair import check_pair
from migcheck.report.fleet import render_json, render_junit, render_markdown
from migcheck.verdict import Verdict

TRIXIE = "debian13-qemu10.0-epyc-pvm.json"
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
    return Facts(doc, name)


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
    assert fingerprint(Facts(doc, "x")) == fingerprint(a)
    doc["kernel"]["release"] = "6.1.0-18-amd64"
    assert fingerprint(Facts(doc, "x")) != fingerprint(a)


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
    best = baseline_cpu(hosts)
    assert best is not None and best.startswith("EPYC")
    for h in hosts:
        assert h.cpu_models[best]["unavailable_features"] == []
    # No model of a newer generation (by year, any vendor) is usable on every host.
    from migcheck.fleet import _families

    years = {f: year for f, _vendor, year in _families(load_catalog().root)}
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
        p.write_text(json.dumps(hosts[name].doc))
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
