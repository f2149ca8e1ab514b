"""Shared test helpers."""

from __future__ import annotations

import os

import pytest

# The multi-host SSH lab (real sshd per host, own mount namespace): tests/lab/.
pytest_plugins = ["lab.fixtures"]


def require(condition: bool, reason: str) -> None:
    """Skip the test when ``condition`` is false, but fail it on CI (``CI=true``).

    Locally a missing optional input (shared data, a tool) should not block a run; on CI
    it means the pipeline is misconfigured, and a skip would hide lost coverage.
    """
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required on CI: {reason}")
    pytest.skip(reason)
