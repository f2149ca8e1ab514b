"""Keep terminal control out of what hosts and files send us.

Strings from a hypervisor (kernel release, QEMU's version suffix, probe stderr) reach the
operator's terminal. Rich strips BEL/BS/CR but not ESC, so a hostile host could recolour
the report or move the cursor over the verdict. Control characters are never legitimate in
facts, so they are replaced once, where documents are loaded and where errors are printed.
"""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
REPLACEMENT = "\ufffd"


def scrub(text: str) -> str:
    return _CONTROL.sub(REPLACEMENT, text)


def scrub_tree(value: Any) -> Any:
    """A JSON-like tree with every string (keys included) scrubbed."""
    if isinstance(value, str):
        return scrub(value) if _CONTROL.search(value) else value
    if isinstance(value, dict):
        return {scrub_tree(k): scrub_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_tree(v) for v in value]
    return value
