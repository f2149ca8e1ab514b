"""What a lab host can look like: os-release texts, real /proc/cpuinfo dumps, QEMU captures.

The cpuinfo dumps and QMP captures are real data in ``../shared/data`` (read in place, never
copied into the project). The os-release texts are the distributions' own files as shipped
(Debian 12.5, Ubuntu 22.04.4, RHEL 9.4).
"""

from __future__ import annotations

from pathlib import Path

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
SHARED = SHARED_DATA  # ../shared/data or $MIGCHECK_TEST_DATA
CAPS = SHARED / "libvirt" / "qemucapabilitiesdata"
FIXTURE_FACTS = ROOT / "fixtures" / "hosts" / "debian12-qemu7.2-epyc-pvm.json"

DEFAULT_KERNEL = "6.1.0-18-amd64"

DEBIAN_12 = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

UBUNTU_2204 = """\
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
"""

RHEL_94 = """\
NAME="Red Hat Enterprise Linux"
VERSION="9.4 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"
ANSI_COLOR="0;31"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"
HOME_URL="https://www.redhat.com/"
DOCUMENTATION_URL="https://access.redhat.com/documentation/en-us/red_hat_enterprise_linux/9"
BUG_REPORT_URL="https://bugzilla.redhat.com/"

REDHAT_BUGZILLA_PRODUCT="Red Hat Enterprise Linux 9"
REDHAT_BUGZILLA_PRODUCT_VERSION=9.4
REDHAT_SUPPORT_PRODUCT="Red Hat Enterprise Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
"""

_WASP = SHARED / "cpuinfo" / "virtines-wasp" / "data_example"
_ARCHSPEC = SHARED / "cpuinfo" / "archspec-json" / "tests" / "targets"

# Full multi-processor /proc/cpuinfo dumps of real x86_64 servers.
CPUINFO: dict[str, Path] = {
    "epyc-7302p": _WASP / "AMD-EPYC-7302P-cloudlab" / "data" / "cpuinfo",  # Zen 2, 32 CPUs
    "epyc-7281": _WASP / "AMD-EPYC-7281-tinker-2" / "data" / "cpuinfo",  # Zen 1, 16 CPUs
    "xeon-gold-6126": _WASP / "Intel-XEON-Gold-6126-chameleon" / "data" / "cpuinfo",
    "xeon-gold-6142": _WASP / "Intel-XEON-Gold-6142-cloudlab" / "data" / "cpuinfo",
    "opteron-4122": _WASP / "AMD-Opteron-4122-r415" / "data" / "cpuinfo",
    # Single-processor records (archspec detection targets).
    "haswell": _ARCHSPEC / "linux-rhel7-haswell",
    "cascadelake": _ARCHSPEC / "linux-centos7-cascadelake",
    "sapphirerapids": _ARCHSPEC / "linux-unknown-sapphirerapids",
    "zen3": _ARCHSPEC / "linux-ubuntu20.04-zen3",
    "zen4": _ARCHSPEC / "linux-rocky8.5-zen4",
}
DEFAULT_CPUINFO = "epyc-7302p"


def caps_path(version: str) -> Path:
    """libvirt's recorded QMP conversation with QEMU ``version`` (x86_64, KVM then TCG)."""
    return CAPS / f"caps_{version}_x86_64.replies"


def proc_version(kernel: str) -> str:
    """A /proc/version line for ``kernel`` (the compiler part is illustrative)."""
    return (
        f"Linux version {kernel} (builder@migcheck-lab) (gcc (GCC) 12.2.0, GNU ld (GNU "
        f"Binutils) 2.40) #1 SMP PREEMPT_DYNAMIC\n"
    )
