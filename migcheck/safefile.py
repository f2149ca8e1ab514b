"""Writing files so that a crash, a full disk or a planted symlink loses nothing.

Every file migcheck writes (saved facts, reports, the probe cache) goes through
:func:`atomic_write`: the bytes go to a fresh temporary file in the same directory, created
with ``O_EXCL | O_NOFOLLOW`` (so a symlink planted under any name is never followed),
flushed to disk, then renamed over the target. ``rename`` replaces a symlink at the target
itself, never the file it points to. On any error the temporary file is removed and the
previous file is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


class WriteError(OSError):
    """A write failed; ``str()`` is one sentence naming the file and the reason."""


def atomic_write(path: str | Path, data: bytes | str, mode: int = 0o644) -> None:
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = target.parent
    tmp = directory / f".{target.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, mode)
    except OSError as exc:
        raise WriteError(exc.errno, f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)  # ENOSPC can surface only here on some file systems
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise WriteError(exc.errno, f"cannot write {target}: {exc.strerror or exc}") from None


def check_writable(path: str | Path) -> str | None:
    """Why ``path`` could not be written (missing directory, no permission, a directory in
    its place), or None. Checked before any host is contacted; creates nothing."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        return f"{target} is a directory"
    if not directory.is_dir():
        return f"directory {directory} does not exist"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} is not writable"
    if target.exists() and not target.is_symlink() and not os.access(target, os.W_OK):
        return f"{target} is not writable"
    return None
