"""pytest plugin with the session-scoped ``lab`` fixture.

Register it once in ``tests/conftest.py``::

    pytest_plugins = ["lab.fixtures"]

(``tests/`` is on ``sys.path`` because the rootdir conftest lives there.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from conftest import require

from .core import SSHD, TOOL_TIMEOUT, Lab


def _can_unshare_mounts() -> tuple[bool, str]:
    try:
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "true"],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return proc.returncode == 0, proc.stderr.strip()


def check_prerequisites() -> None:
    """require() what the lab needs: skips locally, fails on CI (CI=true)."""
    require(os.geteuid() == 0, "the SSH lab needs root (mount namespaces, bind mounts, sshd)")
    require(os.access(SSHD, os.X_OK), f"the SSH lab needs OpenSSH's {SSHD}")
    for tool in ("ssh", "ssh-keygen", "unshare", "mount"):
        require(shutil.which(tool) is not None, f"the SSH lab needs {tool} on PATH")
    ok, why = _can_unshare_mounts()
    require(ok, f"the SSH lab cannot create mount namespaces: {why}")


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A :class:`lab.Lab` for the whole session; every sshd is stopped at the end. Files
    (configs, keys, sshd logs) live under pytest's basetemp and are kept for debugging."""
    check_prerequisites()
    the_lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        yield the_lab
    finally:
        the_lab.close()
