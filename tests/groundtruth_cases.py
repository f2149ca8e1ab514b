"""The ground-truth command lines: real migrations between Debian 12's QEMU 7.2 (this
machine) and Debian 13's QEMU 10.0 (the trixie chroot, .ci/trixie-chroot), in both directions.

Each case holds the QEMU arguments after the binary and, per direction, the outcome measured
by migrating it for real (``safe``, or ``STAGE: fragment of QEMU's own message``):
tests/test_ground_truth.py asserts them, so a change of QEMU or of the trial code that alters
one is seen. ``KNOWN_GAPS`` lists where migcheck still says ``safe`` although the migration
fails or changes the guest's hardware, naming the check that will catch it.

``python -m tests.groundtruth_table`` prints the agreement table.
"""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

FORWARD = "7.2-10.0"  # source Debian 12 QEMU 7.2, destination Debian 13 QEMU 10.0
BACKWARD = "10.0-7.2"
DIRECTIONS = (FORWARD, BACKWARD)
REPO = Path(__file__).resolve().parent.parent
FACTS = {
    "7.2": REPO / "fixtures/hosts/debian12-qemu7.2-epyc-pvm.json",
    "10.0": REPO / "fixtures/hosts/debian13-qemu10.0-epyc-pvm.json",
}

BASE = ("-display", "none", "-m", "64")
NODEF = (*BASE, "-nodefaults")


@dataclass(frozen=True)
class Case:
    id: str
    cls: str  # the class: machine, alias, device, property, defaults, cpu-kvm, ...
    args: tuple[str, ...]
    expect: tuple[str, str]  # measured outcome per direction: FORWARD, BACKWARD

    @property
    def kvm(self) -> bool:
        return "kvm" in self.args

    @property
    def cmdline(self) -> str:
        return "qemu-system-x86_64 " + shlex.join(self.args)

    def expected(self, direction: str) -> str:
        return self.expect[DIRECTIONS.index(direction)]


def _c(
    case_id: str,
    cls: str,
    text: str,
    fwd: str = "safe",
    back: str | None = None,
    *,
    defaults: bool = False,
) -> Case:
    args = (*(BASE if defaults else NODEF), *shlex.split(text))
    return Case(case_id, cls, args, (fwd, fwd if back is None else back))


NULL_DISK = "-blockdev null-co,node-name=d0"
NO_MACHINE = "destination-start: unsupported machine type"
NO_MACHINE_SRC = "source-start: unsupported machine type"
Q35_MISMATCH = (
    "migrate: Machine type received is 'pc-q35-7.2' and local is 'pc-q35-10.0'",
    "migrate: Machine type received is 'pc-q35-10.0' and local is 'pc-q35-7.2'",
)
PC_MISMATCH = (
    "migrate: Machine type received is 'pc-i440fx-7.2' and local is 'pc-i440fx-10.0'",
    "migrate: Machine type received is 'pc-i440fx-10.0' and local is 'pc-i440fx-7.2'",
)


def _only7(what: str) -> tuple[str, str]:
    """Something only 7.2 has: 7.2 -> 10.0 fails at the destination, 10.0 cannot start it."""
    return f"destination-start: {what}", f"source-start: {what}"


def _only10(what: str) -> tuple[str, str]:
    return f"source-start: {what}", f"destination-start: {what}"


CASES: tuple[Case, ...] = (
    # Versioned machine types on both sides, on one side only.
    _c("m-i440fx-7.2-kvm", "machine", "-accel kvm -M pc-i440fx-7.2"),
    _c("m-q35-7.2-kvm", "machine", "-accel kvm -M pc-q35-7.2"),
    _c("m-q35-6.2-kvm", "machine", "-accel kvm -M pc-q35-6.2"),
    _c("m-i440fx-5.2-kvm", "machine", "-accel kvm -M pc-i440fx-5.2"),
    _c("m-i440fx-7.2-tcg", "machine", "-accel tcg -M pc-i440fx-7.2"),
    _c("m-q35-10.0-kvm", "machine", "-accel kvm -M pc-q35-10.0", *_only10("unsupported machine")),
    _c(
        "m-i440fx-10.0-kvm",
        "machine",
        "-accel kvm -M pc-i440fx-10.0",
        *_only10("unsupported machine"),
    ),
    _c("m-q35-8.2-kvm", "machine", "-accel kvm -M pc-q35-8.2", *_only10("unsupported machine")),
    _c(
        "m-i440fx-2.3-kvm",
        "machine",
        "-accel kvm -M pc-i440fx-2.3",
        *_only7("unsupported machine type"),
    ),
    # Aliases: each build resolves them to its own newest type, and the destination refuses
    # another machine type when it loads the configuration section (migration/savevm.c,
    # configuration_post_load).
    _c("alias-q35-kvm", "alias", "-accel kvm -M q35", *Q35_MISMATCH),
    _c("alias-pc-kvm", "alias", "-accel kvm -M pc", *PC_MISMATCH),
    _c("alias-none-kvm", "alias", "-accel kvm", *PC_MISMATCH),
    _c("alias-q35-tcg", "alias", "-accel tcg -M q35", *Q35_MISMATCH),
    # Device types one build lacks (-device help of both builds compared).
    _c(
        "dev-sga",
        "device",
        "-accel kvm -M pc-i440fx-7.2 -device sga",
        *_only7("'sga' is not a valid device model name"),
    ),
    _c(
        "dev-qxl-vga",
        "device",
        "-accel kvm -M pc-q35-7.2 -device qxl-vga",
        *_only7("'qxl-vga' is not a valid device model name"),
    ),
    _c(
        "dev-igb",
        "device",
        "-accel kvm -M pc-q35-7.2 -device igb",
        *_only10("'igb' is not a valid device model name"),
    ),
    _c(
        "dev-vmclock",
        "device",
        "-accel kvm -M pc-q35-7.2 -device vmclock",
        *_only10("'vmclock' is not a valid device model name"),
    ),
    # Devices both builds have.
    _c(
        "dev-virtio-set",
        "device",
        f"-accel kvm -M pc-q35-7.2 -device virtio-net-pci {NULL_DISK} "
        "-device virtio-blk-pci,drive=d0 -device virtio-scsi-pci",
    ),
    _c(
        "dev-virtio-misc",
        "device",
        "-accel kvm -M pc-q35-7.2 -device virtio-balloon-pci -device virtio-rng-pci "
        "-chardev null,id=c0 -device virtio-serial-pci -device virtconsole,chardev=c0",
    ),
    _c("dev-nics-i440fx", "device", "-accel kvm -M pc-i440fx-7.2 -device e1000 -device rtl8139"),
    _c("dev-e1000e-q35", "device", "-accel kvm -M pc-q35-7.2 -device e1000e"),
    _c("dev-usb", "device", "-accel kvm -M pc-q35-7.2 -device qemu-xhci -device usb-tablet"),
    _c(
        "dev-ahci-disk",
        "device",
        f"-accel kvm -M pc-q35-7.2 {NULL_DISK} -device ide-hd,drive=d0,bus=ide.0",
    ),
    # pvpanic's "events" reads 3 on 7.2 and 7 (PVPANIC_SHUTDOWN added) on 10.0 under the
    # same pc-i440fx-7.2: the guest sees another events register, the migration completes
    # (include/hw/misc/pvpanic.h PVPANIC_EVENTS; no compat entry in hw/core/machine.c).
    _c(
        "dev-serial-panic",
        "device",
        "-accel kvm -M pc-i440fx-7.2 -chardev null,id=c0 -device isa-serial,chardev=c0 "
        "-device pvpanic",
        "abi: pvpanic[0] events",
    ),
    _c(
        "dev-virtio-gpu-input",
        "device",
        "-accel kvm -M pc-q35-7.2 -device virtio-gpu-pci -device virtio-keyboard-pci "
        "-device virtio-tablet-pci",
    ),
    _c("dev-virtio-iommu", "device", "-accel kvm -M pc-q35-7.2 -device virtio-iommu-pci"),
    # 9p blocks migration only while the guest has the export mounted (hw/9pfs/9p.c,
    # v9fs_attach adds the blocker): this guest has no OS, so it migrates.
    _c(
        "dev-virtio-9p",
        "device",
        "-accel kvm -M pc-q35-7.2 -fsdev local,id=f0,path=/tmp,security_model=none "
        "-device virtio-9p-pci,fsdev=f0,mount_tag=t0",
    ),
    _c("dev-virtio-net-q35-6.2", "device", "-accel kvm -M pc-q35-6.2 -device virtio-net-pci"),
    _c("dev-vga-std", "device", "-accel kvm -M pc-i440fx-7.2 -device VGA"),
    # Properties one build lacks (-device DRIVER,help of both builds compared).
    _c(
        "prop-host-uso",
        "property",
        "-accel kvm -M pc-q35-7.2 -device virtio-net-pci,host_uso=off",
        *_only10("Property 'virtio-net-pci.host_uso' not found"),
    ),
    _c(
        "prop-e1000-mitigation",
        "property",
        "-accel kvm -M pc-i440fx-7.2 -device e1000,mitigation=on",
        *_only7("Property 'e1000.mitigation' not found"),
    ),
    _c(
        "prop-blk-scsi",
        "property",
        f"-accel kvm -M pc-q35-7.2 {NULL_DISK} -device virtio-blk-pci,drive=d0,scsi=off",
        *_only7("Property 'virtio-blk-pci.scsi' not found"),
    ),
    _c(
        "prop-xhci-msix",
        "property",
        "-accel kvm -M pc-q35-7.2 -device qemu-xhci,msix=on",
        *_only10("Property 'qemu-xhci.msix' not found"),
    ),
    _c(
        "prop-balloon-vectors",
        "property",
        "-accel kvm -M pc-q35-7.2 -device virtio-balloon-pci,vectors=2",
        *_only10("Property 'virtio-balloon-pci.vectors' not found"),
    ),
    _c(
        "prop-rootport-native-hotplug",
        "property",
        "-accel kvm -M pc-q35-7.2 -device pcie-root-port,id=rp0,chassis=1,x-native-hotplug=off",
        *_only7("Property 'pcie-root-port.x-native-hotplug' not found"),
    ),
    # Default devices (no -nodefaults).
    _c("def-i440fx-7.2", "defaults", "-accel kvm -M pc-i440fx-7.2", defaults=True),
    _c("def-q35-7.2", "defaults", "-accel kvm -M pc-q35-7.2", defaults=True),
    _c("def-i440fx-6.2", "defaults", "-accel kvm -M pc-i440fx-6.2", defaults=True),
    _c("def-pc", "defaults", "-accel kvm -M pc", *PC_MISMATCH, defaults=True),
    # CPU models under KVM. This host's KVM is nested (PVM) and offers few features: plain
    # -cpu host aborts in both builds setting MSR 0x10a (IA32_ARCH_CAPABILITIES,
    # target/i386/kvm/kvm.c, kvm_buf_set_msrs); named models lose most features to filtering.
    _c("cpu-kvm-qemu64", "cpu-kvm", "-accel kvm -M pc-q35-7.2 -cpu qemu64"),
    _c("cpu-kvm-kvm64", "cpu-kvm", "-accel kvm -M pc-q35-7.2 -cpu kvm64"),
    _c("cpu-kvm-smp2", "cpu-kvm", "-accel kvm -M pc-q35-7.2 -cpu qemu64 -smp 2"),
    _c(
        "cpu-kvm-host",
        "cpu-kvm",
        "-accel kvm -M pc-q35-7.2 -cpu host",
        "source-start: failed to set MSR 0x10a",
    ),
    # Same host, same -cpu host: 10.0 passes through more (erms, fsrm, ...) than 7.2.
    _c(
        "cpu-kvm-host-noarch",
        "cpu-kvm",
        "-accel kvm -M pc-q35-7.2 -cpu host,-arch-capabilities",
        "abi: CPUID.7h.0:EBX",
    ),
    _c("cpu-kvm-EPYC", "cpu-kvm", "-accel kvm -M pc-q35-7.2 -cpu EPYC"),
    _c(
        "cpu-kvm-EPYC-Genoa",
        "cpu-kvm",
        "-accel kvm -M pc-q35-7.2 -cpu EPYC-Genoa",
        *_only10("unable to find CPU model 'EPYC-Genoa'"),
    ),
    # CPU models under TCG: QEMU's own feature set, not the host's. TCG learned features
    # between 7.2 and 10.0 (target/i386/cpu.c, TCG_7_0_EBX_FEATURES etc.), so a model that
    # names them gets them on 10.0 only.
    _c("cpu-tcg-max", "cpu-tcg", "-accel tcg -M pc-q35-7.2 -cpu max", "abi: CPUID.7h.0:EBX"),
    _c("cpu-tcg-qemu64", "cpu-tcg", "-accel tcg -M pc-q35-7.2 -cpu qemu64"),
    _c("cpu-tcg-smp2", "cpu-tcg", "-accel tcg -M pc-q35-7.2 -cpu qemu64 -smp 2"),
    _c("cpu-tcg-EPYC", "cpu-tcg", "-accel tcg -M pc-q35-7.2 -cpu EPYC", "abi: CPUID.7h.0:EBX"),
    _c(
        "cpu-tcg-Skylake-Client",
        "cpu-tcg",
        "-accel tcg -M pc-q35-7.2 -cpu Skylake-Client",
        "abi: CPUID.1h.0:ECX",
    ),
    _c(
        "cpu-tcg-EPYC-Milan-v2",
        "cpu-tcg",
        "-accel tcg -M pc-q35-7.2 -cpu EPYC-Milan-v2",
        *_only10("unable to find CPU model 'EPYC-Milan-v2'"),
    ),
    _c("cpu-kvm-Nehalem", "cpu-kvm", "-accel kvm -M pc-q35-7.2 -cpu Nehalem"),
    _c("cpu-kvm-Opteron_G2", "cpu-kvm", "-accel kvm -M pc-i440fx-7.2 -cpu Opteron_G2"),
    # 10.0 leaves ERMS (CPUID.7.EBX bit 9) to a KVM guest that 7.2 filters out, same host.
    _c(
        "cpu-kvm-Skylake-Server",
        "cpu-kvm",
        "-accel kvm -M pc-q35-7.2 -cpu Skylake-Server",
        "abi: CPUID.7h.0:EBX bits 0x200",
    ),
    _c("cpu-tcg-Nehalem", "cpu-tcg", "-accel tcg -M pc-q35-7.2 -cpu Nehalem"),
    _c("cpu-tcg-Opteron_G2", "cpu-tcg", "-accel tcg -M pc-i440fx-7.2 -cpu Opteron_G2"),
    _c(
        "cpu-tcg-Cascadelake",
        "cpu-tcg",
        "-accel tcg -M pc-q35-7.2 -cpu Cascadelake-Server",
        "abi: CPUID.1h.0:ECX bits 0x200000",
    ),
    _c("cpu-tcg-base", "cpu-tcg", "-accel tcg -M pc-q35-7.2 -cpu base"),
    # Blockers: QEMU refuses to migrate.
    _c(
        "blk-ivshmem-plain",
        "blocker",
        "-accel kvm -M pc-q35-7.2 -object memory-backend-memfd,id=m0,size=1M,share=on "
        "-device ivshmem-plain,memdev=m0",
        "migrate: Migration is disabled when using feature 'peer mode' in device 'ivshmem'",
    ),
    # hw/virtio/virtio-crypto.c: vmstate_virtio_crypto .unmigratable = 1 (7.2 and 10.0).
    _c(
        "blk-virtio-crypto",
        "blocker",
        "-accel kvm -M pc-i440fx-7.2 -object cryptodev-backend-builtin,id=c0 "
        "-device virtio-crypto-pci,cryptodev=c0",
        "migrate: State blocked by non-migratable device '0000:00:02.0/virtio-crypto'",
    ),
    _c(
        "blk-amd-iommu",
        "blocker",
        "-accel kvm -M pc-q35-7.2 -device amd-iommu",
        "migrate: State blocked by non-migratable device 'amd-iommu'",
    ),
    _c(
        "blk-invtsc",
        "blocker",
        "-accel kvm -M pc-q35-7.2 -cpu qemu64,+invtsc",
        "migrate: State blocked by non-migratable CPU device (invtsc flag)",
    ),
    # Firmware and ROM images (migcheck/checks/firmware.py). Debian 12's bios-microvm.bin is
    # qboot (64 KiB, /usr/share/qemu first in the search path), Debian 13's is SeaBIOS's
    # (128 KiB): pc.bios is a fixed-size RAM block (x86_bios_rom_init), so the destination
    # refuses the other size (qemu_ram_resize "Size mismatch").
    _c(
        "fw-bios-microvm",
        "firmware",
        "-accel tcg -M pc-q35-7.2 -bios bios-microvm.bin",
        "migrate: Size mismatch: pc.bios: 0x10000 != 0x20000",
        "migrate: Size mismatch: pc.bios: 0x20000 != 0x10000",
    ),
    _c("fw-bios-256k", "firmware", "-accel kvm -M pc-i440fx-7.2 -bios bios-256k.bin"),
    # sgabios.bin ships with Debian 12's QEMU only.
    _c(
        "fw-romfile-missing",
        "firmware",
        "-accel kvm -M pc-i440fx-7.2 -device e1000,romfile=sgabios.bin",
        *_only7('failed to find romfile "sgabios.bin"'),
    ),
    # The ROM BAR rounds each image up to a power of two (hw/pci/pci.c pci_add_option_rom):
    # pxe-virtio.rom is 75776 bytes on 12 and 110080 on 13, 128 KiB on both.
    _c(
        "fw-romfile-pow2",
        "firmware",
        "-accel kvm -M pc-q35-7.2 -device virtio-net-pci,romfile=pxe-virtio.rom",
    ),
    # bios-microvm.bin as an option ROM: 64 KiB on 12, 128 KiB on 13, so the ROM BAR's RAM
    # blocks differ even after the power-of-two rounding.
    _c(
        "fw-romfile-size",
        "firmware",
        "-accel kvm -M pc-i440fx-7.2 -device e1000,romfile=bios-microvm.bin",
        "migrate: Size mismatch: 0000:00:02.0/e1000.rom: 0x10000 != 0x20000",
        "migrate: Size mismatch: 0000:00:02.0/e1000.rom: 0x20000 != 0x10000",
    ),
    # rombar=0: the ROM goes to fw_cfg, not a RAM block (info ramblock lists none).
    _c("fw-rombar-off", "firmware", "-accel kvm -M pc-q35-7.2 -device virtio-net-pci,rombar=0"),
    # OVMF is installed on this Debian 12 host only (the chroot has no ovmf package).
    _c(
        "fw-pflash-ovmf",
        "firmware",
        "-accel kvm -M pc-q35-7.2 "
        "-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
        *_only7("Could not open '/usr/share/OVMF/OVMF_CODE_4M.fd'"),
    ),
    # virtio-sound is 10.0 only, and unmigratable there (hw/audio/virtio-snd.c,
    # vmstate_virtio_snd_device .unmigratable = 1).
    _c(
        "blk-virtio-sound",
        "blocker",
        "-accel kvm -M pc-q35-7.2 -audiodev none,id=a0 -device virtio-sound-pci,audiodev=a0",
        *_only10("'virtio-sound-pci' is not a valid device model name"),
    ),
)

BY_ID = {case.id: case for case in CASES}
assert len(BY_ID) == len(CASES), "case ids must be unique"

_DEVICE_TYPE = "device.type: the destination QEMU build lacks the device type (build data)"
_PROPERTY = "device.property: the destination build lacks an explicitly set property"
_SOURCE_TYPE = "device.type: the source QEMU build itself lacks the device type"
_SOURCE_PROP = "device.property: the source build itself lacks the property"
_PVPANIC = (
    "compat.* / device defaults: pvpanic 'events' is 3 on 7.2 and 7 on 10.0 under the same "
    "pc-i440fx-7.2 (include/hw/misc/pvpanic.h PVPANIC_EVENTS gained PVPANIC_SHUTDOWN in 9.0; "
    "hw/core/machine.c has no compat entry for it): device defaults per build and machine"
)
_CRYPTO = (
    "blocker.*: virtio-crypto is unmigratable (hw/virtio/virtio-crypto.c, "
    "vmstate_virtio_crypto .unmigratable = 1, 7.2 and 10.0): not in the blocker catalog"
)
KNOWN_GAPS: dict[str, str] = {}


def builds(root: Path) -> dict[str, object]:
    """The two QEMU builds: this machine's 7.2 and the chroot's 10.0."""
    from migcheck.trial.local import Build

    return {
        "7.2": Build("7.2", ("qemu-system-x86_64",)),
        "10.0": Build("10.0", ("chroot", str(root), "qemu-system-x86_64"), root),
    }


def run_trials(cases: list[Case], root: Path, jobs: int = 2) -> dict[str, object]:
    """Migrate every case both ways (``jobs`` at a time); key ``case_id/direction``."""
    from migcheck.trial.local import migrate

    both = builds(root)
    work = [(case, d) for case in cases for d in DIRECTIONS]

    def one(item: tuple[Case, str]) -> object:
        case, direction = item
        src, dst = direction.split("-")
        return migrate(both[src], both[dst], case.args)  # type: ignore[arg-type]

    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(one, work))
    return {f"{case.id}/{d}": result for (case, d), result in zip(work, results, strict=True)}


def migcheck_verdicts(cases: list[Case]) -> dict[str, str]:
    """migcheck's verdict on each case and direction, from the two builds' real facts."""
    from migcheck.cmdline import parse_cmdline
    from migcheck.facts import load_facts
    from migcheck.pair import check_pair

    facts = {name: load_facts(path) for name, path in FACTS.items()}
    out = {}
    for case in cases:
        vm = parse_cmdline(case.cmdline, case.id)
        for d in DIRECTIONS:
            src, dst = d.split("-")
            out[f"{case.id}/{d}"] = check_pair(vm, facts[src], facts[dst]).verdict.value
    return out


def agreement(truth: str, verdict: str) -> str:
    """One cell's class: agree, false safe, false unsafe, or unknown (either side)."""
    if truth == "unknown" or verdict == "unknown":
        return "unknown"
    if truth == verdict:
        return "agree"
    return "false safe" if verdict == "safe" else "false unsafe"
