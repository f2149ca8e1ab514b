"""A multi-host SSH test lab: real OpenSSH ``sshd`` processes, no mocks.

Each lab host is one ``/usr/sbin/sshd -D -e -f <generated sshd_config>`` listening on
127.0.0.1 on a random free port, started as ``unshare --mount --propagation private --
/bin/sh start.sh``: the script bind-mounts (read-only) the host's own files over the real
paths, then execs sshd. Every session that sshd spawns inherits that mount namespace,
so ``ssh <host> cat /proc/sys/kernel/osrelease`` shows the host's kernel while the test
process's view is unchanged. Needs root, ``unshare`` (util-linux), ``mount``, OpenSSH.

Bound over, per host (files under ``<lab root>/hosts/<name>/``):

* ``/proc/sys/kernel/osrelease`` (``kernel``), ``/proc/version``, ``/etc/os-release``
  (a symlink on Debian: its target ``/usr/lib/os-release`` is what gets covered),
  ``/proc/cpuinfo`` (a real dump, default AMD EPYC 7302P from ../shared/data);
* QEMU: ``qemu="real"`` leaves the real ``/usr/bin/qemu-system-x86_64`` and ``/dev/kvm``;
  ``qemu="8.2.0"`` binds a recorded-QMP stand-in (``qemu_standin.py`` rendered with
  ``caps_8.2.0_x86_64.replies``, run by ``/usr/bin/python3``) over it; ``qemu=None`` binds
  an empty, non-executable file over it (and over any other QEMU the probe could find);
* ``/root``: an empty directory (``clean_home=True``), so no dotfiles of the machine
  running the tests (pyenv in .bashrc, ...) leak into sessions;
* ``extra={"/some/existing/path": text | bytes | Path}``: anything else.

``uname -r`` still shows the real kernel (mount namespaces cannot change it); the probe reads
``/proc/sys/kernel/osrelease``.

API (``from lab import Lab, LabHost``; fixture ``lab`` in :mod:`lab.fixtures`)::

    lab.add_host(name, *, kernel="6.1.0-18-amd64", os_release=DEBIAN_12,
                 cpuinfo: Path | str | None = None,      # Path: a dump; str: the text
                 qemu: "real" | "<version>" | None = "real",
                 extra: Mapping[str, str | bytes | Path] | None = None,
                 force_command: str | None = None,       # sshd ForceCommand
                 known: bool = True,                     # listed in lab.known_hosts
                 allow_tcp_forwarding=False, max_startups: str | None = None,
                 log_level="VERBOSE", proc_version: str | None = None,
                 clean_home=True, sshd_options: Iterable[str] = ()) -> LabHost
    lab.add_bastion(name, **kw) -> LabHost               # AllowTcpForwarding yes, no QEMU
    lab.add_stalling_host(name, *, seconds=600, **kw)    # ForceCommand: exec sleep 600
    lab.add_garbage_host(name, *, text=GARBAGE, drain=True, **kw)       # not JSON, exit 0
    lab.add_truncated_host(name, *, source=FIXTURE_FACTS, nbytes=None, drain=True, **kw)
                                                         # first half of a real facts JSON
    lab.add_failing_host(name, *, status=1, stderr=..., stdout="", drain=True, **kw)
    lab.remove_host(name); lab.close()

    lab.root, lab.hosts: dict[str, LabHost]
    lab.client_key (ed25519, no passphrase), lab.client_public_key, lab.authorized_keys
    lab.ssh_config       # Host <name>: HostName 127.0.0.1, Port, User root, IdentityFile,
                         # IdentitiesOnly yes, UserKnownHostsFile lab.known_hosts,
                         # GlobalKnownHostsFile /dev/null, StrictHostKeyChecking yes,
                         # BatchMode yes; rewritten by every add_host
    lab.known_hosts      # "[127.0.0.1]:<port> ssh-ed25519 AAAA..." per host with known=True
    lab.ssh_config_via(bastion, *targets, path=None) -> Path   # targets get ProxyJump
    lab.alias_config(n, target, *, prefix="hv", path=None) -> Path  # hv001..hvN -> target
    lab.known_hosts_without(*names, path=None) -> Path
    lab.write_ssh_config(path, *, known_hosts=None, jump=None, aliases=None) -> Path
    alias_names(n, prefix="hv") -> list[str]

    LabHost: name, port, host_key_path, host_public_key, log_path (sshd -e output), dir,
             known, kernel, qemu, force_command, start_seconds, mnt_ns, process,
             known_hosts_line, ssh_argv(*cmd, config=None) -> ["ssh", "-F", cfg, name, *cmd],
             log(), alive, namespace_pids(), stop()

Host names are global to the session (one lab for all test modules): use names unique to
your module, or reuse a host through ``lab.hosts.get(name)``.

Fault hosts use ``ForceCommand /bin/sh <script>``: whatever command the client asks for is
replaced; with ``drain`` the script first reads stdin to EOF (the probe), like ``python3 -``
would. ``MaxStartups`` defaults to sshd's own (10:30:100): fan-out tests with 50+ concurrent
connections to one sshd should pass e.g. ``max_startups="200"``.

Stopping a host sends SIGTERM to the sshd's process group, then SIGKILLs every process left in
the host's mount namespace (sessions call setsid(), so they are not in the group; an open fd
on the namespace keeps its identity from being reused meanwhile). Every start, stop and tool
run is bounded by a timeout; ``/run/sshd`` is created when missing.
"""

from __future__ import annotations

from .core import GARBAGE, Lab, LabError, LabHost, alias_names
from .hostdata import (
    CPUINFO,
    DEBIAN_12,
    DEFAULT_KERNEL,
    FIXTURE_FACTS,
    RHEL_94,
    UBUNTU_2204,
    caps_path,
)

__all__ = [
    "CPUINFO",
    "DEBIAN_12",
    "DEFAULT_KERNEL",
    "FIXTURE_FACTS",
    "GARBAGE",
    "RHEL_94",
    "UBUNTU_2204",
    "Lab",
    "LabError",
    "LabHost",
    "alias_names",
    "caps_path",
]
