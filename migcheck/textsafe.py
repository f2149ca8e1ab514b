"""Keep terminal control out of what hosts and files send us.

Strings from a hypervisor (kernel release, QEMU's version suffix, probe stderr) reach the
operator's terminal. Rich strips BEL/BS/CR but not ESC, so a hostile host could recolour
the report or move the cursor over the verdict. Control characters are never legitimate in
facts, so they are replaced once, where documents are loaded and where errors are printed.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
REPLACEMENT = "\ufffd"


# In documents (facts, builds) line breaks and tabs are never legitimate either: a kernel
# release with a line feed would start a new Markdown table row or a forged report line.
_CONTROL_IN_DATA = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BLANKS = {"\t": " ", "\n": " ", "\r": " "}


def scrub(text: str) -> str:
    return _CONTROL.sub(REPLACEMENT, text)


def scrub_line(text: str) -> str:
    """One line of text: tabs and line breaks become blanks, other controls U+FFFD."""
    return _CONTROL_IN_DATA.sub(lambda m: _BLANKS.get(m[0], REPLACEMENT), text)


# Raw JSON bytes that may decode to a character scrub_tree replaces: a JSON escape of a
# control character (\u00XX covers \u007f and C1 too; \b \f \n \r \t), a raw DEL, or
# a UTF-8 C1 control (0xC2 0x80-0x9F). JSON cannot hold raw bytes below 0x20 in a string.
_RAW_SUSPECT = (b"\\u00", b"\\b", b"\\f", b"\\n", b"\\r", b"\\t", b"\x7f", b"\xc2")


def may_hold_control(raw: bytes | str) -> bool:
    """False when the JSON text cannot decode to any control character, so scrub_tree would
    return the document unchanged (it costs ~10 ms on a facts file; this check ~0.1 ms)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if b"\\" not in data:  # no escape at all: only the raw bytes can be there
        return b"\x7f" in data or b"\xc2" in data
    return any(s in data for s in _RAW_SUSPECT)


def scrub_tree(value: Any) -> Any:
    """A JSON-like tree with every string (keys included) made one clean line.

    Containers are copied only from the first change on: a clean document comes back as the
    same object, so loading a large one does not hold it twice in memory.
    """
    if isinstance(value, str):
        return scrub_line(value) if _CONTROL_IN_DATA.search(value) else value
    if isinstance(value, dict):
        out: dict[Any, Any] | None = None
        for i, (key, item) in enumerate(value.items()):
            new_key, new_item = scrub_tree(key), scrub_tree(item)
            if out is None and (new_key is not key or new_item is not item):
                out = dict(itertools.islice(value.items(), i))
            if out is not None:
                out[new_key] = new_item
        return value if out is None else out
    if isinstance(value, list):
        copy: list[Any] | None = None
        for i, item in enumerate(value):
            new_item = scrub_tree(item)
            if copy is None and new_item is not item:
                copy = value[:i]
            if copy is not None:
                copy.append(new_item)
        return value if copy is None else copy
    return value


def md_text(text: Any) -> str:
    """Host- or file-supplied text for a Markdown report: one line, HTML escaped (GitLab and
    GitHub render raw HTML), table pipes escaped (a pipe would split the table cell)."""
    import html

    return html.escape(scrub_line(str(text)), quote=False).replace("|", "\\|")


def md_code(text: Any) -> str:
    """Text in a Markdown code span: one line, no backtick to close it early, pipes
    escaped (GFM splits table cells on them even inside code spans)."""
    clean = scrub_line(str(text)).replace("`", "'").replace("|", "\\|")
    return f"`{clean}`"
