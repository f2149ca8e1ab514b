"""The second QEMU build: Debian 13 (trixie) in a chroot, built by .ci/trixie-chroot."""

from __future__ import annotations

import os
import shlex
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


def qemu_wrapper(path: Path, root: Path) -> Path:
    """An executable ``qemu-system-x86_64`` that runs the chroot's QEMU, for a lab host:
    ``lab.add_host(name, extra={"/usr/bin/qemu-system-x86_64": qemu_wrapper(...)})``.

    It enters its own mount namespace where the host's /tmp, /proc and /dev (kvm, tun) are
    visible inside the chroot at the same paths, so sockets and files the caller names under
    /tmp are the same for QEMU; ``unshare`` and ``chroot`` exec, so the PID the caller
    started is QEMU's."""
    script = (
        "#!/bin/sh\n"
        "# QEMU from the chroot at $0, /tmp, /proc, /dev shared (tests/lab/chroot.py)\n"
        'exec unshare -m /bin/sh -c \'mount --bind /tmp "$0/tmp" && '
        'mount --rbind /proc "$0/proc" && mount --rbind /dev "$0/dev" && '
        'exec chroot "$0" /usr/bin/qemu-system-x86_64 "$@"\''
        f' {shlex.quote(str(root))} "$@"\n'
    )
    path.write_text(script)
    path.chmod(0o755)
    return path
