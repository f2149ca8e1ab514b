"""Run the probe on this machine: the same script and the same stdin path as over SSH."""

from __future__ import annotations

import os
import subprocess
import sys

from migcheck.errors import HostError
from migcheck.probe import probe_script

MAX_OUTPUT = 64 * 1024 * 1024


def run_local_probe(config: dict | None = None, timeout: float = 30.0) -> str:
    """Run the probe with this Python, fed on stdin exactly as the remote command is."""
    return run_local_script(probe_script(config), timeout)


def run_local_script(script: str, timeout: float = 30.0) -> str:
    env = dict(os.environ, LC_ALL="C")
    try:
        proc = subprocess.run(
            [sys.executable, "-"],
            input=script.encode(),
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise HostError("local", f"the probe did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-400:]
        raise HostError("local", f"the probe failed (exit {proc.returncode}): {tail}")
    if len(proc.stdout) > MAX_OUTPUT:
        raise HostError("local", f"the probe printed more than {MAX_OUTPUT} bytes")
    return proc.stdout.decode("utf-8", "replace")
