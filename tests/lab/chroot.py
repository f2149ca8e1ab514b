"""The second QEMU build: Debian 13 (trixie) in a chroot, built by .ci/trixie-chroot."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = Path("/var/tmp/migcheck-trixie")


def trixie_root() -> Path | None:
    """The chroot at ``$MIGCHECK_TRIXIE`` (default /var/tmp/migcheck-trixie) when it holds
    QEMU, else None."""
    root = Path(os.environ.get("MIGCHECK_TRIXIE") or DEFAULT_ROOT)
    return root if (root / "usr/bin/qemu-system-x86_64").is_file() else None


def chroot_has_kvm(root: Path) -> bool:
    """True when /dev/kvm exists inside the chroot (.ci/trixie-chroot creates the node)."""
    return (root / "dev/kvm").is_char_device() and os.access("/dev/kvm", os.R_OK | os.W_OK)
