"""paramiko, imported without ``invoke``.

paramiko.config imports invoke (with asyncio and unittest.mock: ~45 ms, a third of what
``pair`` over SSH spent before its first connection) only to run ``Match exec`` in its own
ssh_config parser. migcheck never uses that parser: ssh_config is resolved the way
``ssh -G`` does it in :mod:`migcheck.transport.sshconfig`, ``Match exec`` included. A
``None`` in ``sys.modules`` makes ``import invoke`` raise ImportError, which paramiko
expects when invoke is absent; the entry is removed again right after.
"""

from __future__ import annotations

import sys

_absent = "invoke" not in sys.modules
if _absent:
    sys.modules["invoke"] = None  # type: ignore[assignment]
try:
    import paramiko
finally:
    if _absent:
        del sys.modules["invoke"]

__all__ = ["paramiko"]
