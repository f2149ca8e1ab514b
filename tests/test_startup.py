"""What the common commands import, and what they leave out (issue 20: a faster start)."""

from __future__ import annotations

import os
import subprocess
import sys

from qemudata import FIXTURES


def test_pair_runs_without_importing_the_cli_framework() -> None:
    code = (
        "import sys, runpy; sys.argv = ['migcheck'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('migcheck.entry', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print('\\nMODULES', ' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('typer', 'click', 'rich'))))\n"
    )
    hosts = FIXTURES / "hosts"
    argv = [
        str(hosts / "debian13-qemu10.0-epyc-pvm.json"),
        str(hosts / "debian12-qemu7.2-epyc-pvm.json"),
    ]
    argv += ["-c", str(FIXTURES / "cmdlines" / "web01-q35.cmdline")]
    for fmt in ("table", "json"):
        out = subprocess.run(
            [sys.executable, "-c", code, "pair", *argv, "-f", fmt],
            capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"},
        ).stdout  # fmt: skip
        report, _, modules = out.rpartition("\nMODULES")
        assert "hv-trixie" in report
        assert modules.split() == [], f"{fmt}: {modules}"


def test_the_ssh_transport_imports_paramiko_without_invoke() -> None:
    """invoke (with asyncio and unittest.mock) would cost ~45 ms of every SSH run."""
    code = (
        "import sys; import migcheck.transport.ssh, migcheck.trial.remote\n"
        "print(sorted(m for m in ('invoke', 'asyncio', 'unittest') if m in sys.modules))\n"
        "print('invoke' in sys.modules, sys.modules['paramiko'].Transport.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["[]", "False Transport"], out.stderr
