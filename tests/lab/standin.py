"""Render the recorded-QMP QEMU stand-in (``qemu_standin.py``) for one capture."""

from __future__ import annotations

from functools import cache
from pathlib import Path

TEMPLATE = Path(__file__).with_name("qemu_standin.py")
PLACEHOLDER = 'REPLIES = ""  # replaced by the lab with the capture\'s path\n'


@cache
def _template() -> str:
    text = TEMPLATE.read_text()
    if text.count(PLACEHOLDER) != 1 or not text.startswith("#!/usr/bin/python3\n"):
        raise RuntimeError(f"{TEMPLATE}: the REPLIES placeholder line or shebang changed")
    return text


def render(replies: Path) -> str:
    """The stand-in program with ``replies`` (absolute path) embedded."""
    path = str(Path(replies).resolve())
    return _template().replace(PLACEHOLDER, f"REPLIES = {path!r}\n")
