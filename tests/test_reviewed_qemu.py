"""qemu.reviewed: a QEMU newer than the newest release the catalog has reviewed
(``[reviewed]`` in migcheck/catalog/data/qemu/releases.toml) makes the verdict unknown,
naming the release and what to do; ``--accept-unreviewed-qemu`` (pair, fleet, portable)
judges with what is known and makes it a warning.

The hosts are Debian 13's real capture (fixtures/hosts/), with only the QEMU version
string moved past the reviewed release: what a real QEMU 11.0 host's facts would say.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from qemudata import FIXTURES
from typer.testing import CliRunner

from migcheck import build as buildmod
from migcheck.catalog import shipped_catalog
from migcheck.checks.base import Status
from migcheck.cli import app
from migcheck.cmdline import parse_cmdline
from migcheck.facts import load_facts
from migcheck.pair import check_pair
from migcheck.verdict import Verdict

TRIXIE = FIXTURES / "hosts" / "debian13-qemu10.0-epyc-pvm.json"
GUEST = "qemu-system-x86_64 -machine pc-q35-7.2 -accel kvm -cpu host"


@pytest.fixture(autouse=True)
def no_local_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    buildmod.forget_received()


def host(tmp_path: Path, version: str) -> Path:
    """Debian 13's facts claiming QEMU ``version``, its build file beside them."""
    doc = json.loads(TRIXIE.read_text())
    doc["qemu"]["version"] = version
    out = tmp_path / f"qemu-{version}"
    (out / "qemu-builds").mkdir(parents=True)
    key = doc["qemu"]["build"]["key"]
    shutil.copy(TRIXIE.parent / "qemu-builds" / f"{key}.json", out / "qemu-builds")
    path = out / "hv.json"
    path.write_text(json.dumps(doc))
    return path


def reviewed(report):
    return next(f for f in report.findings if f.id == "qemu.reviewed")


def test_the_catalog_names_its_newest_reviewed_release():
    assert shipped_catalog().reviewed is not None
    assert shipped_catalog().reviewed.newest == (10, 2)


def test_newer_qemu_than_reviewed_is_unknown_naming_the_release(tmp_path):
    new = load_facts(host(tmp_path, "11.0.0"))
    old = load_facts(TRIXIE)
    vm = parse_cmdline(GUEST, "vm")
    for src, dst in ((old, new), (new, old)):
        report = check_pair(vm, src, dst)
        found = reviewed(report)
        assert found.status is Status.UNKNOWN
        assert "11.0.0" in found.message and "10.2" in found.message
        assert "migcheck trial" in found.message
        assert "--accept-unreviewed-qemu" in (found.fix or "")
        assert report.verdict is Verdict.UNKNOWN


def test_accepting_unreviewed_qemu_makes_it_a_warning(tmp_path):
    new = load_facts(host(tmp_path, "11.0.0"))
    vm = parse_cmdline(GUEST, "vm")
    report = check_pair(vm, new, new, accept_unreviewed=True)
    assert reviewed(report).status is Status.WARN
    assert report.verdict is Verdict.SAFE
    assert check_pair(vm, new, new, accept_unreviewed=True, strict=True).verdict is (Verdict.UNSAFE)


def test_reviewed_release_passes(tmp_path):
    same = load_facts(host(tmp_path, "10.2.1"))
    report = check_pair(parse_cmdline(GUEST, "vm"), same, same)
    assert reviewed(report).status is Status.PASS and report.verdict is Verdict.SAFE


def test_cli_pair_and_fleet_take_the_flag(tmp_path):
    facts = str(host(tmp_path, "11.0.0"))
    cmd = tmp_path / "vm.cmdline"
    cmd.write_text(GUEST + "\n")
    env = {"COLUMNS": "120", "NO_COLOR": "1"}
    runner = CliRunner()
    plain = runner.invoke(app, ["pair", facts, facts, "--cmdline", str(cmd)], env=env)
    assert plain.exit_code == 3, plain.stdout
    assert "11.0.0" in plain.stdout
    args = ["pair", facts, facts, "--cmdline", str(cmd), "--accept-unreviewed-qemu"]
    accepted = runner.invoke(app, args, env=env)
    assert accepted.exit_code == 0, accepted.stdout
    other = str(host(tmp_path / "b", "11.0.0"))
    fleet = ["fleet", facts, other, "--cmdline", str(cmd), "--format", "json"]
    assert runner.invoke(app, fleet, env=env).exit_code == 3
    fleet_ok = runner.invoke(app, [*fleet, "--accept-unreviewed-qemu"], env=env)
    assert fleet_ok.exit_code == 0, fleet_ok.stdout
