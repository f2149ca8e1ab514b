"""A file's identity: what says "this is still the file that was read" without reading it.

Device, inode, size, and mtime and ctime in nanoseconds: a rewrite in place changes ctime
even when the writer restores size and mtime, so caches keyed on this never reuse a stale
answer (the catalog's parse, parsed build files, the fleet's digests, the probe cache's
index). Kept apart from heavier modules: the catalog reads it on every start.
"""

from __future__ import annotations

import os

Identity = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns


def identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
