"""The CLI contract: exit codes, JSON fields, messages on stderr, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from qemudata import FIXTURES
from typer.testing import CliRunner

from migcheck.cli import app

BOOKWORM = str(FIXTURES / "hosts" / "debian12-qemu7.2-epyc-pvm.json")
TRIXIE = str(FIXTURES / "hosts" / "debian13-qemu10.0-epyc-pvm.json")
DEMO_CMDLINE = str(FIXTURES / "cmdlines" / "web01-q35.cmdline")

runner = CliRunner()


def run(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input, env={"COLUMNS": "120", "NO_COLOR": "1"})


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_demo_pair_is_unsafe_with_reasons_and_fixes():
    result = run("pair", TRIXIE, BOOKWORM, "--cmdline", DEMO_CMDLINE)
    assert result.exit_code == 1
    out = result.stdout
    assert out.splitlines()[0].startswith("UNSAFE")
    for text in ("machine.type", "machine.alias", "cpu.passthrough", "fix:", "pc-q35-7.2"):
        assert text in out


def test_pair_json_contract():
    result = run("pair", TRIXIE, BOOKWORM, "--cmdline", DEMO_CMDLINE, "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "unsafe"
    assert {"source", "destination", "vm", "checks"} <= doc.keys()
    assert doc["source"]["name"] == "hv-trixie" and doc["destination"]["qemu"] == "7.2.22"
    assert doc["vm"]["machine"]["type"] == "q35"
    ids = [c["id"] for c in doc["checks"]]
    assert len(ids) == len(set(ids))
    for check in doc["checks"]:
        assert {"id", "status", "message", "source", "destination"} <= check.keys()
        assert check["status"] in {"pass", "warn", "fail", "unknown"}
    failed = {c["id"] for c in doc["checks"] if c["status"] == "fail"}
    assert {"machine.type", "machine.alias"} <= failed
    assert all("fix" in c for c in doc["checks"] if c["status"] == "fail")
    assert doc["summary"]["fail"] == len(failed)


def test_pair_same_host_is_safe_exit_0(tmp_path: Path):
    cmd = write(
        tmp_path, "vm.cmdline", "qemu-system-x86_64 -machine pc-q35-7.2 -accel kvm -cpu host\n"
    )
    result = run("pair", BOOKWORM, BOOKWORM, "--cmdline", cmd, "--format", "json")
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["verdict"] == "safe"


def test_strict_turns_warnings_into_exit_1(tmp_path: Path):
    cmd = write(tmp_path, "vm.cmdline", "-machine pc-q35-7.2 -accel kvm -cpu host\n")
    relaxed = run("pair", TRIXIE, BOOKWORM, "--cmdline", cmd, "--format", "json")
    statuses = {c["id"]: c["status"] for c in json.loads(relaxed.stdout)["checks"]}
    assert statuses["qemu.version"] == "warn"
    strict = run("pair", TRIXIE, BOOKWORM, "--cmdline", cmd, "--strict", "--format", "json")
    assert strict.exit_code == 1


def test_both_ways_reports_the_way_back(tmp_path: Path):
    cmd = write(tmp_path, "vm.cmdline", "-machine pc-q35-7.2 -accel kvm -cpu host\n")
    result = run("pair", BOOKWORM, TRIXIE, "--cmdline", cmd, "--both-ways", "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["reverse"]["source"]["name"] == "hv-trixie"
    assert doc["verdict"] in {"safe", "unsafe"}
    # The way back is older QEMU and host passthrough on different QEMU builds: unsafe.
    assert doc["reverse"]["verdict"] == "unsafe"
    assert doc["verdict"] == "unsafe" and result.exit_code == 1


def test_missing_qemu_section_is_unknown_exit_3(tmp_path: Path):
    doc = json.loads(Path(BOOKWORM).read_text())
    doc["qemu"] = {"error": "no QEMU found (tried qemu-system-x86_64)"}
    dst = write(tmp_path, "noqemu.json", json.dumps(doc))
    cmd = write(tmp_path, "vm.cmdline", "-machine pc-q35-7.2 -accel kvm -cpu host\n")
    result = run("pair", BOOKWORM, dst, "--cmdline", cmd, "--format", "json")
    assert result.exit_code == 3
    out = json.loads(result.stdout)
    assert out["verdict"] == "unknown"
    assert any("no QEMU found" in c["message"] for c in out["checks"])


def test_corrupt_facts_file_is_exit_2_naming_the_file(tmp_path: Path):
    bad = write(tmp_path, "broken.json", Path(BOOKWORM).read_text()[:5000])
    cmd = write(tmp_path, "vm.cmdline", "-machine pc-q35-7.2\n")
    result = run("pair", bad, BOOKWORM, "--cmdline", cmd)
    assert result.exit_code == 2
    assert "broken.json" in result.stderr and "not valid JSON" in result.stderr
    assert result.stdout == ""


def test_foreign_json_is_exit_2(tmp_path: Path):
    other = write(tmp_path, "ansible.json", json.dumps({"ansible_facts": {}}))
    cmd = write(tmp_path, "vm.cmdline", "-machine pc-q35-7.2\n")
    result = run("pair", other, BOOKWORM, "--cmdline", cmd)
    assert result.exit_code == 2
    assert "ansible.json" in result.stderr and "schema" in result.stderr


def test_malformed_cmdline_is_exit_2_naming_line(tmp_path: Path):
    cmd = write(
        tmp_path, "bad.cmdline", "qemu-system-x86_64 \\\n  -machine pc-q35-7.2 \\\n  -cpu 'host\n"
    )
    result = run("pair", BOOKWORM, BOOKWORM, "--cmdline", cmd)
    assert result.exit_code == 2
    assert "bad.cmdline" in result.stderr and "line 3" in result.stderr


def test_missing_cmdline_file_is_exit_2(tmp_path: Path):
    result = run("pair", BOOKWORM, BOOKWORM, "--cmdline", str(tmp_path / "nope.cmdline"))
    assert result.exit_code == 2
    assert "nope.cmdline" in result.stderr


def test_usage_error_is_exit_2():
    assert run("pair", BOOKWORM).exit_code == 2
    assert (
        run("pair", BOOKWORM, BOOKWORM, "--cmdline", DEMO_CMDLINE, "--format", "xml").exit_code == 2
    )


def test_cmdline_from_stdin_json():
    text = (
        "qemu-system-x86_64 -M pc-q35-8.2,accel=kvm -cpu Skylake-Server,+avx512f "
        "-platform linux-6.1\n"
    )
    result = run("cmdline", "-", "--format", "json", input=text)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["machine"]["type"] == "pc-q35-8.2"
    assert doc["accel"] == ["kvm"]
    assert doc["cpu"] == {"model": "Skylake-Server", "features": {"avx512f": True}, "props": {}}
    assert doc["platform"] == "linux-6.1"


def test_cmdline_table():
    result = run("cmdline", DEMO_CMDLINE)
    assert result.exit_code == 0
    assert "virtio-net-pci" in result.stdout and "q35" in result.stdout


def test_host_json_lists_usable_models():
    result = run("host", BOOKWORM, "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    facts = json.loads(Path(BOOKWORM).read_text())
    expected = sorted(
        m["name"]
        for m in facts["qemu"]["cpu_models"]
        if m["unavailable_features"] == [] and m["name"] not in {"host", "max", "base"}
    )
    assert doc["usable_cpu_models"] == expected
    assert doc["qemu"]["aliases"]["q35"] == "pc-q35-7.2"


def test_gather_refuses_many_hosts_without_out():
    result = run("gather", BOOKWORM, TRIXIE)
    assert result.exit_code == 2


def test_gather_of_unknown_ssh_host_is_exit_3(tmp_path: Path):
    result = run("gather", "hv-does-not-exist.invalid", "--out", str(tmp_path), "--timeout", "5")
    assert result.exit_code == 3
    assert "hv-does-not-exist.invalid" in result.stderr


def test_entry_point_never_prints_a_traceback(tmp_path: Path):
    bad = write(tmp_path, "x.json", "[" * 100000)
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.run(
        [sys.executable, "-m", "migcheck.cli", "host", bad],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "x.json" in proc.stderr


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_output_goes_to_stdout_diagnostics_to_stderr(fmt: str, tmp_path: Path):
    result = run("pair", TRIXIE, BOOKWORM, "--cmdline", DEMO_CMDLINE, "--format", fmt)
    assert result.stderr == ""
    assert result.stdout


def test_pair_junit_and_markdown():
    import xml.etree.ElementTree as ET

    junit = run("pair", TRIXIE, BOOKWORM, "--cmdline", DEMO_CMDLINE, "--format", "junit")
    assert junit.exit_code == 1
    root = ET.fromstring(junit.stdout)
    cases = root.findall("./testsuite/testcase")
    failures = {c.get("name") for c in cases if c.find("failure") is not None}
    assert {"machine.type", "machine.alias"} <= failures
    assert int(root.get("failures")) == len(failures)
    md = run("pair", TRIXIE, BOOKWORM, "--cmdline", DEMO_CMDLINE, "--format", "markdown")
    assert md.stdout.startswith("## migcheck pair: ❌ unsafe")
    assert "| `machine.type` | ❌ fail |" in md.stdout


def test_gather_out_is_a_deprecated_spelling_of_out_dir(tmp_path: Path):
    result = run("gather", "hv-does-not-exist.invalid", "--out", str(tmp_path), "--timeout", "5")
    assert result.exit_code == 3
    assert "--out is deprecated; use --out-dir" in result.stderr


def test_every_gathering_command_shares_one_declaration_of_the_ssh_options():
    import typer

    from migcheck.cli import app

    group = typer.main.get_command(app)
    shared = {"--timeout", "--qemu", "--ssh-config", "-F", "--identity", "-i", "--user", "-l"}
    shared |= {"--sudo", "--accept-new-host-keys", "--refresh"}
    for name in ("pair", "gather", "host", "fleet", "portable"):
        options = {o for p in group.commands[name].params for o in p.opts}
        assert shared <= options, (name, shared - options)
