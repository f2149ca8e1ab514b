"""The probe script and how a controller hands it its configuration.

The probe travels as text on stdin. Configuration rides along as one prepended line that
assigns a Python literal built with ``repr()`` of JSON text, so no value (a QEMU path, say)
is ever spliced into code or into a remote shell command.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def probe_source() -> str:
    return resources.files(__package__).joinpath("probe.py").read_text(encoding="utf-8")


def probe_script(config: dict[str, Any] | None = None) -> str:
    """The full program to feed to the remote Python on stdin."""
    header = ""
    if config:
        literal = repr(json.dumps(config, sort_keys=True))
        header = f"import json as _j; CONFIG = _j.loads({literal})\n"
    return header + probe_source()
