"""Shared test helpers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The multi-host SSH lab (real sshd per host, own mount namespace): tests/lab/.
pytest_plugins = ["lab.fixtures"]

# Third-party test data (DESIGN.md "Real data you can use"), never copied into the project:
# ../shared/data beside the clone, or wherever MIGCHECK_TEST_DATA says.
SHARED_DATA = Path(
    os.environ.get("MIGCHECK_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)


def require(condition: bool, reason: str) -> None:
    """Skip the test when ``condition`` is false, with one line naming what is missing; fail
    it under ``MIGCHECK_STRICT=1``.

    A clone of the project alone (a fork's hosted CI sets ``CI=true`` too) must pass, so a
    missing tool or ``../shared/data`` skips. ``.ci/run`` sets ``MIGCHECK_STRICT=1``: there a
    missing input means the pipeline is misconfigured, and a skip would hide lost coverage.
    """
    if condition:
        return
    if str(SHARED_DATA) in reason and "MIGCHECK_TEST_DATA" not in os.environ:
        reason += " (third-party data: ../shared/data, or set MIGCHECK_TEST_DATA)"
    if os.environ.get("MIGCHECK_STRICT") == "1":
        pytest.fail(f"required under MIGCHECK_STRICT=1: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """The probe cache lives in XDG_CACHE_HOME: give the test session its own, so tests
    never read an operator's cache or each other's leftovers across sessions."""
    old = os.environ.get("XDG_CACHE_HOME")
    cache = tmp_path_factory.mktemp("xdg-cache")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    # The local build store holds the builds of the project's own captures, as an operator's
    # does after gathering those hosts: facts derived from a fixture (a changed kernel, an
    # assumed OS) still find their QEMU build. Tests of a missing build use their own store.
    store = cache / "migcheck" / "qemu-builds"
    store.mkdir(parents=True)
    for build in (Path(__file__).resolve().parents[1] / "fixtures/hosts/qemu-builds").glob(
        "*.json"
    ):
        shutil.copy(build, store / build.name)
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old
