"""Machine-type names: the one parser every module uses (checks, portable, what-if, kernel
dependencies), so they cannot disagree about what a name means.

Names QEMU builds register (``-machine help``):

- upstream: ``pc-q35-8.2``, ``pc-i440fx-2.12``, and the legacy ``pc-0.10`` .. ``pc-1.3``
  (family ``pc``); the number is the QEMU release whose guest ABI the type pins
  (hw/i386/pc_q35.c, hw/i386/pc_piix.c ``DEFINE_*_MACHINE``);
- RHEL / CentOS Stream: ``pc-q35-rhel9.4.0``, ``pc-i440fx-rhel7.6.0``: the number is a RHEL
  release, not an upstream QEMU version (qemu-kvm's downstream ``pc_q35.c``);
- Ubuntu: ``pc-q35-noble``, ``pc-i440fx-jammy``, with variants ``-hpb`` (host-phys-bits) and
  ``-maxcpus`` (Ubuntu's qemu debian/patches/ubuntu/define-ubuntu-machine-types.patch);
- aliases and unversioned types (``q35``, ``pc``, ``microvm``, ``isapc``, ``none``): not
  versioned, :func:`parse_machine` returns None.

Only names of one *line* (same family, same distribution, same Ubuntu variant) are ordered
against each other: ``pc-q35-rhel9.4.0`` is not "newer" than ``pc-q35-8.2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Ubuntu release codenames in release order (Ubuntu's own list, ubuntu.com/about/release-cycle).
UBUNTU_CODENAMES = (
    "trusty",
    "utopic",
    "vivid",
    "wily",
    "xenial",
    "yakkety",
    "zesty",
    "artful",
    "bionic",
    "cosmic",
    "disco",
    "eoan",
    "focal",
    "groovy",
    "hirsute",
    "impish",
    "jammy",
    "kinetic",
    "lunar",
    "mantic",
    "noble",
    "oracular",
    "plucky",
    "questing",
    "resolute",
)

_UPSTREAM = re.compile(r"^(?P<family>pc-q35|pc-i440fx|pc)-(?P<ver>\d+\.\d+(?:\.\d+)?)$")
_RHEL = re.compile(r"^(?P<family>pc-q35|pc-i440fx)-rhel(?P<ver>\d+\.\d+(?:\.\d+)?)$")
_UBUNTU = re.compile(
    r"^(?P<family>pc-q35|pc-i440fx)-(?P<code>[a-z]+)(?P<variant>-hpb|-maxcpus|-v\d+)?$"
)


@dataclass(frozen=True)
class MachineType:
    name: str
    family: str  # pc-q35, pc-i440fx, pc (legacy)
    distro: str | None  # None (upstream), "rhel", "ubuntu"
    version: tuple[int, ...]  # upstream: QEMU release; rhel: RHEL release; ubuntu: codename rank
    variant: str = ""  # ubuntu: "-hpb" / "-maxcpus"

    @property
    def upstream(self) -> tuple[int, ...] | None:
        """The upstream QEMU release this type pins, where the name says it."""
        return self.version if self.distro is None else None

    @property
    def line(self) -> tuple[str, str | None, str]:
        """Names of one line can be ordered against each other."""
        return (self.family, self.distro, self.variant)


@lru_cache(maxsize=4096)
def parse_machine(name: str | None) -> MachineType | None:
    """The versioned machine type ``name`` denotes, or None for aliases and unversioned
    or unrecognised names (callers treat those as "cannot tell", never as a version)."""
    if not name:
        return None
    m = _UPSTREAM.match(name)
    if m:
        version = tuple(int(p) for p in m.group("ver").split("."))
        return MachineType(name, m.group("family"), None, version)
    m = _RHEL.match(name)
    if m:
        version = tuple(int(p) for p in m.group("ver").split("."))
        return MachineType(name, m.group("family"), "rhel", version)
    m = _UBUNTU.match(name)
    if m and m.group("code") in UBUNTU_CODENAMES:
        rank = UBUNTU_CODENAMES.index(m.group("code"))
        return MachineType(name, m.group("family"), "ubuntu", (rank,), m.group("variant") or "")
    return None


def upstream_version(name: str | None) -> tuple[int, int] | None:
    """``pc-q35-8.2`` -> (8, 2); distribution and unversioned names -> None."""
    mt = parse_machine(name)
    return (mt.version[0], mt.version[1]) if mt and mt.upstream else None


# --- distribution machine types: which upstream type's device defaults they have ----------
#
# Ubuntu: "Since the p->t transition these types are mostly stable copies of the upstream
# type" (Ubuntu's qemu debian/patches/ubuntu/define-ubuntu-machine-types.patch, "Carry Ubuntu
# specific machine types"): pc-q35-CODENAME calls the machine options of the upstream type
# of the QEMU release that Ubuntu release ships (launchpad.net/ubuntu/+source/qemu, per
# series: bionic 1:2.11, focal 1:4.2, jammy 1:6.2, kinetic 1:7.0, lunar 1:7.2, mantic 1:8.0,
# noble 1:8.2, oracular 1:9.0, plucky 1:9.2, questing 1:10.1).
UBUNTU_BASES: dict[str, tuple[int, int]] = {
    "bionic": (2, 11),
    "focal": (4, 2),
    "jammy": (6, 2),
    "kinetic": (7, 0),
    "lunar": (7, 2),
    "mantic": (8, 0),
    "noble": (8, 2),
    "oracular": (9, 0),
    "plucky": (9, 2),
    "questing": (10, 1),
}
# The known downstream deviations of Ubuntu's variants; none changes a device default.
# "-hpb": host-phys-bits=on ("Add a -hpb Ubuntu specific machine type suffix", LP: #1769053);
# "-maxcpus": a larger max_cpus for the same type (define-ubuntu-machine-types.patch).
# Other suffixes ("-v2" SRU revisions) are not reviewed: not in the table.
UBUNTU_VARIANTS: dict[str, str] = {
    "": "a copy of the upstream type",
    "-hpb": "host-phys-bits=on",
    "-maxcpus": "a larger max_cpus",
}
# RHEL: qemu-kvm's downstream hw/i386/pc_q35.c defines pc-q35-rhelX.Y.0 with its own
# hw_compat_rhel_* / pc_rhel_*_compat arrays, so no upstream type's defaults apply (for the
# record, the upstream base of each RHEL minor's qemu-kvm: 8.6 6.2, 9.0 6.2, 9.2 7.2,
# 9.4 8.2, 9.6 9.1, 10.0 9.1). A build that reports compat-props (QEMU >= 9.1) says them;
# the rules keyed on an upstream machine version cannot.


def sets_host_phys_bits(name: str | None) -> bool:
    """Ubuntu's ``-hpb`` types turn host-phys-bits on for every CPU (their one deviation,
    UBUNTU_VARIANTS): the guest takes the host's physical address width."""
    mt = parse_machine(name)
    return mt is not None and mt.distro == "ubuntu" and mt.variant == "-hpb"


def defaults_version(name: str | None) -> tuple[tuple[int, int] | None, str | None]:
    """The upstream machine type version whose device defaults ``name`` has, or None and
    why not. Unversioned names (aliases, ``microvm``) give (None, None): the caller resolves
    aliases; a name still unversioned then is a type migcheck has no version for."""
    mt = parse_machine(name)
    if mt is None:
        return None, None
    if mt.distro is None:
        return (mt.version[0], mt.version[1]), None
    if mt.distro == "ubuntu":
        code = UBUNTU_CODENAMES[mt.version[0]]
        base = UBUNTU_BASES.get(code)
        if base is not None and mt.variant in UBUNTU_VARIANTS:
            return base, None
        return None, (
            f"{name}: Ubuntu machine type not in migcheck's reviewed table "
            f"({', '.join(f'pc-*-{c}' for c in UBUNTU_BASES)}; variants -hpb, -maxcpus)"
        )
    return None, (
        f"{name}: RHEL machine types carry downstream compat properties (qemu-kvm's "
        "hw_compat_rhel_* arrays), not an upstream type's defaults"
    )


def newest_of_line(line_of: str, names: set[str] | frozenset[str]) -> str | None:
    """The newest name in ``names`` of the same line as ``line_of`` (family, distribution,
    variant), or None."""
    ref = parse_machine(line_of)
    if ref is None:
        return None
    best: tuple[tuple[int, ...], str] | None = None
    for name in names:
        mt = parse_machine(name)
        if mt is not None and mt.line == ref.line:
            key = (mt.version, name)
            best = key if best is None or key > best else best
    return best[1] if best else None
