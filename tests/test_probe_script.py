"""probe-script and gather --from-ansible: migcheck's probe run by other orchestration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from migcheck.cli import app

runner = CliRunner()


def probe_output(tmp_path: Path) -> str:
    script = runner.invoke(app, ["probe-script"]).stdout
    assert script.startswith("#!/usr/bin/env python3\n")
    path = tmp_path / "migcheck-probe.py"
    path.write_text(script)
    # As Ansible's script module would: run the file with the host's python3.
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return proc.stdout


def test_probe_script_outputs_load_from_an_ansible_tree(tmp_path: Path):
    out = probe_output(tmp_path)
    tree = tmp_path / "tree"
    tree.mkdir()
    # What `ansible hv -m script -a migcheck-probe.py --tree tree/` writes per host.
    (tree / "hv1").write_text(json.dumps({"changed": True, "rc": 0, "stdout": out, "stderr": ""}))
    (tree / "hv2").write_text(out)  # a plain saved probe output works too
    (tree / "hv3").write_text(json.dumps({"unreachable": True, "msg": "ssh: connect timed out"}))
    facts_dir = tmp_path / "facts"
    res = runner.invoke(app, ["gather", "--from-ansible", str(tree), "--out-dir", str(facts_dir)])
    assert res.exit_code == 3  # hv3 failed; the others are kept
    assert "hv3" in res.stderr and "connect timed out" in res.stderr
    saved = sorted(p.name for p in facts_dir.glob("*.json"))
    assert saved == ["hv1.json", "hv2.json"]
    doc = json.loads((facts_dir / "hv1.json").read_text())
    assert doc["host"]["name"] == "hv1" and doc["host"]["transport"] == "ansible"
    host = runner.invoke(app, ["host", str(facts_dir / "hv1.json"), "-f", "json"])
    assert host.exit_code == 0


def test_from_ansible_garbage_is_reported_per_host(tmp_path: Path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "bad").write_text(json.dumps({"rc": 0, "stdout": "Traceback ... not json"}))
    res = runner.invoke(
        app, ["gather", "--from-ansible", str(tree), "--out-dir", str(tmp_path / "o")]
    )
    assert res.exit_code == 3 and "bad" in res.stderr and "not a facts document" in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(
        app, ["gather", "--from-ansible", str(empty), "--out-dir", str(tmp_path / "o")]
    )
    assert res.exit_code == 2


def test_skip_known_builds_sends_no_schema_and_from_ansible_finds_the_build(tmp_path: Path):
    """probe-script --skip-known-builds: a host on a build this machine holds sends its facts
    without the ~0.5 MB schema; gather --from-ansible on this machine writes the build beside
    the facts from its store, as a full output would have."""
    import shutil

    from conftest import require

    require(shutil.which("qemu-system-x86_64") is not None, "needs qemu-system-x86_64")
    first = json.loads(probe_output(tmp_path))  # a full output: the store gets the build
    key = ((first.get("qemu") or {}).get("build") or {}).get("key")
    require(key is not None, "the local QEMU build could not be identified")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hv1").write_text(json.dumps({"rc": 0, "stdout": json.dumps(first)}))
    res = runner.invoke(
        app, ["gather", "--from-ansible", str(tree), "--out-dir", str(tmp_path / "a")]
    )
    assert res.exit_code == 0, res.stderr

    script = runner.invoke(app, ["probe-script", "--skip-known-builds"]).stdout
    assert key in script.splitlines()[1]  # the held keys travel in the probe's CONFIG line
    path = tmp_path / "probe-known.py"
    path.write_text(script)
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    doc = json.loads(out)
    assert "build_schema" not in doc and doc["qemu"]["build"]["key"] == key
    assert len(out) < len(json.dumps(first)) / 2
    (tree / "hv1").write_text(json.dumps({"rc": 0, "stdout": out}))
    facts_dir = tmp_path / "b"
    res = runner.invoke(app, ["gather", "--from-ansible", str(tree), "--out-dir", str(facts_dir)])
    assert res.exit_code == 0, res.stderr
    assert (facts_dir / "qemu-builds" / f"{key}.json").is_file()
    host = runner.invoke(app, ["host", str(facts_dir / "hv1.json"), "-f", "json"])
    assert host.exit_code == 0
