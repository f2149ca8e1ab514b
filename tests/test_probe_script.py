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
