"""KVM and host limits: what the destination's KVM and CPU must allow for the guest to start
there and keep the CPU it had.

Each rule follows QEMU's own code (7.2 and 10.0 alike unless noted), cited where it is
applied. They apply to KVM guests only: under TCG none of these host limits is consulted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from migcheck.checks.accel import accel_assumed, guest_accel
from migcheck.checks.base import (
    Context,
    Finding,
    Status,
    machine_assumed,
    unknown,
    with_assumed,
)
from migcheck.checks.registry import check
from migcheck.facts import Facts
from migcheck.findings import assumed_sides
from migcheck.machinetypes import sets_host_phys_bits
from migcheck.vm import as_bool


def _not_kvm(ctx: Context, cid: str) -> list[Finding] | None:
    accel, how = guest_accel(ctx.vm)
    if accel == "kvm":
        return None
    return with_assumed(
        [Finding(cid, Status.PASS, f"{how}: KVM host limits do not apply")],
        *assumed_sides(accel_assumed(ctx.vm), "guest"),
    )


def _cap(facts: Facts, name: str) -> int | None:
    kvm = facts.section("kvm")
    caps = kvm.get("capabilities") if kvm else None
    if not isinstance(caps, Mapping) or not caps:
        return None
    value = caps.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _why_no_kvm(facts: Facts) -> str:
    return facts.missing("kvm") or "no KVM capabilities in the facts (KVM unusable to the probe)"


# --------------------------------------------------------------------------- vCPUs


@dataclass(frozen=True)
class Smp:
    cpus: int
    maxcpus: int
    sockets: int
    dies: int
    modules: int
    cores: int
    threads: int

    def apic_id(self, index: int) -> int:
        """x86 APIC ID of vCPU ``index``: each level gets ceil(log2(count)) bits
        (include/hw/i386/topology.h x86_apicid_from_topo_ids(); modules since 9.1)."""
        t_w = _width(self.threads)
        c_w = _width(self.cores)
        m_w = _width(self.modules)
        d_w = _width(self.dies)
        thread = index % self.threads
        core = index // self.threads % self.cores
        module = index // (self.threads * self.cores) % self.modules
        die = index // (self.threads * self.cores * self.modules) % self.dies
        pkg = index // (self.threads * self.cores * self.modules * self.dies)
        return (
            (pkg << (t_w + c_w + m_w + d_w))
            | (die << (t_w + c_w + m_w))
            | (module << (t_w + c_w))
            | (core << t_w)
            | thread
        )


def _before_6_2(machine: str | None) -> bool:
    """Versioned pc/q35 types before 6.2 set smp_props.prefer_sockets (hw/i386/pc_piix.c,
    pc_q35.c *_6_1_machine_options())."""
    m = re.fullmatch(r"pc-(?:q35|i440fx)-(\d+)\.(\d+)", machine or "")
    return bool(m) and (int(m.group(1)), int(m.group(2))) < (6, 2)


def _width(count: int) -> int:
    return (count - 1).bit_length()


_SMP_KEYS = ("cpus", "maxcpus", "sockets", "dies", "clusters", "modules", "cores", "threads")


def parse_smp(vm_options: list, prefer_sockets: bool = False) -> tuple[Smp | None, str | None]:
    """``-smp`` as QEMU computes it (hw/core/machine-smp.c machine_parse_smp_config(): omitted
    counts are derived preferring cores over sockets, or sockets over cores for machine types
    before 6.2, smp_props.prefer_sockets). Returns (None, why) for a value QEMU would refuse
    or migcheck cannot read; no -smp is one vCPU."""
    values: dict[str, int] = {}
    for opt in vm_options:
        if opt.name != "smp" or opt.value is None:
            continue
        for i, part in enumerate(opt.value.split(",")):
            key, sep, val = part.partition("=")
            if not sep:
                if i != 0:
                    return None, f"cannot read -smp {opt.value!r}"
                key, val = "cpus", key
            if key not in _SMP_KEYS:
                return None, f"-smp {key}= is not understood by migcheck"
            try:
                values[key] = int(val, 0)
            except ValueError:
                return None, f"-smp {key}={val!r} is not a number"
    if values.get("clusters", 1) not in (0, 1):
        return None, "-smp clusters= on x86 is not judged by migcheck"
    cpus, maxcpus = values.get("cpus", 0), values.get("maxcpus", 0)
    sockets, cores, threads = (
        values.get("sockets", 0),
        values.get("cores", 0),
        values.get("threads", 0),
    )
    dies, modules = values.get("dies", 0) or 1, values.get("modules", 0) or 1
    if cpus == 0 and maxcpus == 0:
        sockets, cores, threads = sockets or 1, cores or 1, threads or 1
    else:
        maxcpus = maxcpus or cpus
        if prefer_sockets and sockets == 0:
            cores, threads = cores or 1, threads or 1
            sockets = maxcpus // (dies * modules * cores * threads)
        elif prefer_sockets and cores == 0:
            threads = threads or 1
            cores = maxcpus // (sockets * dies * modules * threads)
        elif cores == 0:
            sockets, threads = sockets or 1, threads or 1
            cores = maxcpus // (sockets * dies * modules * threads)
        elif sockets == 0:
            threads = threads or 1
            sockets = maxcpus // (dies * modules * cores * threads)
        if threads == 0:
            threads = maxcpus // (sockets * dies * modules * cores)
    maxcpus = maxcpus or sockets * dies * modules * cores * threads
    cpus = cpus or maxcpus
    if min(sockets, cores, threads) < 1 or sockets * dies * modules * cores * threads != maxcpus:
        return None, "the -smp topology does not multiply to maxcpus (QEMU refuses it)"
    if cpus > maxcpus:
        return None, "-smp cpus exceeds maxcpus (QEMU refuses it)"
    return Smp(cpus, maxcpus, sockets, dies, modules, cores, threads), None


@check(
    "kvm.vcpus",
    reads=("qemu.machines", "kvm.capabilities", "kvm.present", "kvm.usable"),
    summary=(
        "`-smp` `maxcpus` exceeds the machine type's `cpu-max` on the destination, its "
        "`KVM_CAP_MAX_VCPUS`, or the topology's highest APIC ID its "
        "`KVM_CAP_MAX_VCPU_ID` (above 254 without `KVM_CAP_X2APIC_API`)"
    ),
    gates_start=True,
)
def check_vcpus(ctx: Context) -> list[Finding]:
    smp_given = any(o.name == "smp" for o in ctx.vm.options)
    notes = assumed_sides(None if smp_given else "QEMU's default, no -smp", "source")
    if machine_assumed(ctx):
        machine = ctx.dst.resolve_machine(None)
        notes += assumed_sides(f"machine type {machine}: {machine_assumed(ctx)}", "guest")
    return with_assumed(_check_vcpus(ctx), *notes)


def _check_vcpus(ctx: Context) -> list[Finding]:
    cid = "kvm.vcpus"
    machine = ctx.dst.resolve_machine(ctx.vm.machine.type)
    smp, why = parse_smp(ctx.vm.options, _before_6_2(machine))
    if smp is None:
        return [unknown(cid, why)]
    what = f"{smp.cpus} vCPU{'s' * (smp.cpus != 1)} (maxcpus {smp.maxcpus})"
    # hw/core/machine-smp.c: "Invalid SMP CPUs %d. The max CPUs supported by machine '%s'
    # is %d" when max_cpus > mc->max_cpus (query-machines' cpu-max).
    info = (ctx.dst.machines or {}).get(machine or "")
    cpu_max = info.get("cpu_max") if info else None
    if not isinstance(cpu_max, int) or isinstance(cpu_max, bool):
        if smp.maxcpus > 1:  # every machine type takes one CPU (isapc's max_cpus is 1)
            return [
                unknown(cid, f"the destination's cpu-max of machine type {machine} is not known")
            ]
        cpu_max = None
    problems: list[str] = []
    if cpu_max is not None and smp.maxcpus > cpu_max:
        problems.append(f"machine type {machine} allows at most {cpu_max} CPUs")
    kvm_note = ""
    nr, most, max_id = (
        _cap(ctx.dst, "KVM_CAP_NR_VCPUS"),
        _cap(ctx.dst, "KVM_CAP_MAX_VCPUS"),
        _cap(ctx.dst, "KVM_CAP_MAX_VCPU_ID"),
    )
    # Up to 4 vCPUs fit any KVM (QEMU's own floor when KVM reports nothing, below).
    kvm_known = nr is not None or most is not None or smp.maxcpus <= 4
    if guest_accel(ctx.vm)[0] == "kvm" and not kvm_known and not problems:
        return [unknown(cid, f"destination: {_why_no_kvm(ctx.dst)}")]
    if guest_accel(ctx.vm)[0] == "kvm" and kvm_known:
        # accel/kvm/kvm-all.c kvm_recommended_vcpus()/kvm_max_vcpus()/kvm_max_vcpu_id():
        # each falls back to the previous when KVM reports 0 (NR_VCPUS to 4).
        soft = nr or 4
        hard = most or soft
        id_limit = max_id or hard
        # kvm_init(): "Number of %s cpus requested (%d) exceeds the maximum cpus supported by
        # KVM (%d)" for both the SMP and the hotpluggable (maxcpus) count, then exit(1).
        if smp.maxcpus > hard:
            problems.append(f"its KVM allows at most {hard} vCPUs (KVM_CAP_MAX_VCPUS)")
        # KVM vCPU ids are APIC IDs on x86 (hw/i386/x86.c x86_cpus_init() apic_id_limit):
        # KVM_CREATE_VCPU refuses an id >= KVM_CAP_MAX_VCPU_ID.
        top_id = smp.apic_id(smp.maxcpus - 1)
        if top_id >= id_limit:
            problems.append(
                f"the highest APIC ID of this topology is {top_id}, its KVM allows ids below "
                f"{id_limit} (KVM_CAP_MAX_VCPU_ID)"
            )
        # x86_cpus_init(): APIC IDs above 254 need the X2APIC API ("current -smp
        # configuration requires kernel irqchip and X2APIC API support").
        if top_id + 1 > 255 and not _cap(ctx.dst, "KVM_CAP_X2APIC_API"):
            problems.append(f"APIC IDs up to {top_id} need KVM_CAP_X2APIC_API, which its KVM lacks")
        kvm_note = f"; KVM allows {hard} vCPUs, ids below {id_limit}"
        if smp.cpus > soft:
            kvm_note += f" (above KVM's recommended {soft}: QEMU only warns)"
    if problems:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"{what}: the destination cannot start the guest: " + "; ".join(problems),
                source=smp.maxcpus,
                destination=cpu_max,
                fix="lower -smp maxcpus (and the topology) to what every host allows",
            )
        ]
    return [
        Finding(
            cid,
            Status.PASS,
            f"{what} fit machine type {machine} (cpu-max {cpu_max or 'not recorded'}){kvm_note}",
            source=smp.maxcpus,
            destination=cpu_max,
        )
    ]


# --------------------------------------------------------------------------- TSC


def _tsc_hz(ctx: Context) -> tuple[int | None, str | None]:
    """``tsc-frequency=`` in Hz (legacy spelling tsc-freq), or (None, None) when unset."""
    props = ctx.vm.cpu.props
    for key in ("tsc-frequency", "tsc-freq"):
        if key in props:
            text = str(props[key])
            try:
                return int(float(text)), None
            except ValueError:
                return None, f"tsc-frequency={text!r} is not a number migcheck reads"
    return None, None


def _tsc_khz(facts: Facts) -> int | None:
    vm = facts.kvm_vm
    value = vm.get("tsc_khz") if vm else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@check(
    "kvm.tsc",
    reads=("kvm.capabilities", "kvm.vm", "kvm.present", "kvm.usable"),
    summary=(
        "`tsc-frequency` differs from the destination's TSC rate and it has no TSC "
        "scaling (`KVM_CAP_TSC_CONTROL`); different host TSC rates without `tsc-"
        "frequency`: warning"
    ),
    gates_start=True,
)
def check_tsc(ctx: Context) -> list[Finding]:
    cid = "kvm.tsc"
    skip = _not_kvm(ctx, cid)
    if skip:
        return skip
    hz, bad = _tsc_hz(ctx)
    if bad:
        return [unknown(cid, bad)]
    src_khz, dst_khz = _tsc_khz(ctx.src), _tsc_khz(ctx.dst)
    scaling = _cap(ctx.dst, "KVM_CAP_TSC_CONTROL")
    if hz is None:
        # Without tsc-frequency the source's rate still travels in the stream
        # (target/i386/machine.c vmstate_tsc_khz) and kvm_arch_put_registers() asks for it,
        # ignoring failure: "TSC frequency mismatch shouldn't abort migration, unless the
        # user explicitly asked for a more strict TSC setting". The guest then runs with
        # a TSC that ticks at another rate than it calibrated.
        # Rates within KVM's own tolerance (arch/x86/kvm/x86.c tsc_tolerance_ppm, 250) are
        # the same rate to KVM (kvm_set_tsc_khz() neither scales nor compensates).
        if (
            src_khz
            and dst_khz
            and scaling == 0
            and abs(src_khz - dst_khz) * 1_000_000 > (250 * dst_khz)
        ):
            return [
                Finding(
                    cid,
                    Status.WARN,
                    f"the hosts' TSCs run at {src_khz} and {dst_khz} kHz and the destination "
                    "cannot scale: QEMU only warns, the guest's TSC changes rate",
                    source=src_khz,
                    destination=dst_khz,
                    fix="use hosts with TSC scaling (KVM_CAP_TSC_CONTROL) or equal TSC rates",
                )
            ]
        return [Finding(cid, Status.PASS, "no tsc-frequency set")]
    # target/i386/cpu.c x86_cpuid_set_tsc_freq(): user_tsc_khz = value / 1000.
    want = hz // 1000
    # target/i386/kvm/kvm.c kvm_arch_set_tsc_khz(), called from kvm_arch_init_vcpu() when
    # user_tsc_khz is set: KVM_SET_TSC_KHZ needs KVM_CAP_TSC_CONTROL unless the vCPU already
    # runs at that rate (KVM_GET_TSC_KHZ); otherwise "TSC frequency mismatch between VM (%
    # kHz) and host (% kHz), and TSC scaling unavailable" and the vCPU is not created
    # (reproduced here: QEMU 7.2 exits with "kvm_arch_init_vcpu failed").
    if scaling is None:
        return [unknown(cid, f"destination: {_why_no_kvm(ctx.dst)}")]
    if scaling > 0:
        return [
            Finding(
                cid,
                Status.PASS,
                f"tsc-frequency {want} kHz: the destination scales the TSC (KVM_CAP_TSC_CONTROL)",
                source=want,
            )
        ]
    if dst_khz is None:
        return [
            unknown(
                cid,
                f"tsc-frequency {want} kHz and the destination has no TSC scaling; its TSC "
                "rate is not in the facts (gather again with this migcheck)",
            )
        ]
    if dst_khz != want:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"tsc-frequency {want} kHz: the destination's TSC runs at {dst_khz} kHz and it "
                "cannot scale (KVM_CAP_TSC_CONTROL = 0): QEMU refuses to start the vCPUs",
                source=want,
                destination=dst_khz,
                fix="migrate between hosts with TSC scaling, or with the same TSC rate",
            )
        ]
    return [
        Finding(
            cid,
            Status.PASS,
            f"tsc-frequency {want} kHz is the destination's own TSC rate (no scaling needed)",
            source=want,
            destination=dst_khz,
        )
    ]


# --------------------------------------------------------------------------- phys bits

# target/i386/cpu.c x86_cpu_realizefn(): phys-bits 0 (unset) becomes TCG_PHYS_ADDR_BITS.
DEFAULT_PHYS_BITS = 40
DEFAULT_HOW = "QEMU's default"

# Named models without long mode (builtin_x86_defs lacking CPUID_EXT2_LM; listed by asking
# QEMU 7.2 for each model's expansion): QEMU keeps their width fixed ("phys-bits is not
# user-configurable in 32 bit"), so no host width applies.
NO_LONG_MODE = frozenset(
    {"486", "athlon", "coreduo", "kvm32", "n270", "pentium", "pentium2", "pentium3", "qemu32"}
)


def _guest_phys_bits(ctx: Context, facts: Facts) -> tuple[int | None, str]:
    """The guest's MAXPHYADDR on a host: target/i386/host-cpu.c host_cpu_adjust_phys_bits()
    (host-phys-bits takes the host's CPUID 0x80000008, capped by host-phys-bits-limit;
    host_cpu_max_instance_init() turns host-phys-bits on for -cpu host and max)."""
    cpu = ctx.vm.cpu
    host_bits = cpu.features.get("host-phys-bits")
    if host_bits is None and "host-phys-bits" in cpu.props:
        host_bits = as_bool(cpu.props["host-phys-bits"])
    hpb = host_bits is None and sets_host_phys_bits(ctx.vm.machine.type)
    if host_bits is None:
        host_bits = hpb or cpu.model in ("host", "max")
    if host_bits:
        bits = facts.phys_bits
        if bits is None:
            return None, f"{facts.name}: no host physical address width in the facts"
        limit = _int(cpu.props.get("host-phys-bits-limit"))
        if limit:
            bits = min(bits, limit)
        return bits, f"host-phys-bits (machine type {ctx.vm.machine.type})" if hpb else (
            "host-phys-bits"
        )
    explicit = _int(cpu.props.get("phys-bits"))
    if explicit:
        return explicit, "phys-bits"
    return DEFAULT_PHYS_BITS, DEFAULT_HOW


def _int(value: object) -> int | None:
    try:
        return int(str(value), 0) if value is not None else None
    except ValueError:
        return None


@check(
    "kvm.phys-bits",
    reads=("cpu.phys_bits",),
    summary=(
        "the guest's physical address width (`host-phys-bits`, default for `-cpu "
        "host`/`max`; `phys-bits`; 40 otherwise) changes between the hosts or exceeds "
        "the destination CPU's"
    ),
)
def check_phys_bits(ctx: Context) -> list[Finding]:
    cid = "kvm.phys-bits"
    skip = _not_kvm(ctx, cid)
    if skip:
        return skip
    model = (ctx.vm.cpu.model or "").removesuffix("-v1")
    if model in NO_LONG_MODE or ctx.vm.cpu.features.get("lm") is False:
        return [Finding(cid, Status.PASS, f"-cpu {ctx.vm.cpu.model}: no long mode, fixed width")]
    found = _check_phys_bits(ctx, cid)
    if _guest_phys_bits(ctx, ctx.src)[1] != DEFAULT_HOW:
        return found
    why = "QEMU's default, no host-phys-bits or phys-bits"
    # Where the finding's values are the guest's width they are the assumed ones; where
    # they are the hosts' own widths (read from the facts), the guest's is.
    out = []
    for f in found:
        if f.source == DEFAULT_PHYS_BITS and f.destination in (DEFAULT_PHYS_BITS, None):
            out += with_assumed([f], *assumed_sides(why))
        else:
            out += with_assumed([f], ("guest", f"{DEFAULT_PHYS_BITS} physical address bits: {why}"))
    return out


def _check_phys_bits(ctx: Context, cid: str) -> list[Finding]:
    src_bits, how = _guest_phys_bits(ctx, ctx.src)
    dst_bits, _ = _guest_phys_bits(ctx, ctx.dst)
    if src_bits is None or dst_bits is None:
        return [unknown(cid, how if src_bits is None else _guest_phys_bits(ctx, ctx.dst)[1])]
    if src_bits != dst_bits:
        # CPUID 0x80000008 is not in the migration stream: the guest's MAXPHYADDR changes.
        return [
            Finding(
                cid,
                Status.FAIL,
                f"with {how} the guest sees {src_bits} physical address bits on the source and "
                f"{dst_bits} on the destination: its CPUID changes under it",
                source=src_bits,
                destination=dst_bits,
                fix=f"pin the width on both hosts: -cpu ...,host-phys-bits=off,phys-bits="
                f"{min(src_bits, dst_bits)}",
            )
        ]
    host_src, host_dst = ctx.src.phys_bits, ctx.dst.phys_bits
    if host_dst is None:
        # Not host-dependent here (the guest sees the same width on both hosts), so only
        # whether the destination's CPU reaches that width is open: said, not guessed.
        return [
            Finding(
                cid,
                Status.WARN,
                f"the guest sees {src_bits} physical address bits ({how}) on both hosts; "
                f"{ctx.dst.name}'s own width is not in the facts (gather again), so whether "
                "its CPU reaches that many is not checked",
                source=src_bits,
                destination=None,
            )
        ]
    if dst_bits > host_dst and (host_src is None or host_src >= src_bits):
        # QEMU only warns ("Host physical bits (%u) does not match phys-bits property"), but
        # addresses the guest may already use on the source (its firmware places the 64-bit
        # PCI window near the top) cannot be mapped by the destination's CPU.
        return [
            Finding(
                cid,
                Status.FAIL,
                f"the guest uses {src_bits} physical address bits ({how}); the destination's "
                f"CPU has only {host_dst}",
                source=host_src,
                destination=host_dst,
                fix=f"start the guest with -cpu ...,phys-bits={host_dst} (or fewer)",
            )
        ]
    if dst_bits > host_dst:
        return [
            Finding(
                cid,
                Status.WARN,
                f"the guest uses {src_bits} physical address bits ({how}), more than either "
                f"host's CPU ({host_src} and {host_dst}): the same on both, but fragile",
                source=host_src,
                destination=host_dst,
            )
        ]
    return [
        Finding(
            cid,
            Status.PASS,
            f"the guest sees {src_bits} physical address bits ({how}) on both hosts",
            source=src_bits,
            destination=dst_bits,
        )
    ]


# --------------------------------------------------------------------------- Hyper-V

_FEATURES, _ENLIGHT, _NESTED = 0x40000003, 0x40000004, 0x4000000A
_EAX, _EDX = 2, 5  # register positions in a recorded leaf [func, index, eax, ebx, ecx, edx]

# target/i386/kvm/kvm.c kvm_hyperv_properties[] (7.2; 10.0 has the same entries): the
# Hyper-V CPUID bits KVM must offer for each hv-* flag (hyperv-proto.h values).
HV_BITS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "hv-relaxed": ((_ENLIGHT, _EAX, 1 << 5),),
    "hv-vapic": ((_FEATURES, _EAX, 1 << 4),),
    "hv-time": ((_FEATURES, _EAX, (1 << 1) | (1 << 9)),),
    "hv-crash": ((_FEATURES, _EDX, 1 << 10),),
    "hv-reset": ((_FEATURES, _EAX, 1 << 7),),
    "hv-vpindex": ((_FEATURES, _EAX, 1 << 6),),
    "hv-runtime": ((_FEATURES, _EAX, 1 << 0),),
    "hv-synic": ((_FEATURES, _EAX, 1 << 2),),
    "hv-stimer": ((_FEATURES, _EAX, 1 << 3),),
    "hv-frequencies": ((_FEATURES, _EAX, 1 << 11), (_FEATURES, _EDX, 1 << 8)),
    "hv-reenlightenment": ((_FEATURES, _EAX, 1 << 13),),
    "hv-tlbflush": ((_ENLIGHT, _EAX, (1 << 2) | (1 << 11)),),
    "hv-evmcs": ((_ENLIGHT, _EAX, 1 << 14),),
    "hv-ipi": ((_ENLIGHT, _EAX, (1 << 10) | (1 << 11)),),
    "hv-stimer-direct": ((_FEATURES, _EDX, 1 << 19),),
    "hv-avic": ((_ENLIGHT, _EAX, 1 << 9),),
    "hv-apicv": ((_ENLIGHT, _EAX, 1 << 9),),
    "hv-syndbg": ((_FEATURES, _EDX, 1 << 11),),
    "hv-emsr-bitmap": ((_NESTED, _EAX, 1 << 19),),
    "hv-xmm-input": ((_FEATURES, _EDX, 1 << 4),),
    "hv-tlbflush-ext": ((_FEATURES, _EDX, 1 << 14),),
    "hv-tlbflush-direct": ((_NESTED, _EAX, 1 << 17),),
}

# kvm.c get_supported_hv_cpuid_legacy(): without KVM_CAP_HYPERV_CPUID QEMU builds the leaves
# from capabilities (and from MSR lists the facts lack: those flags stay unknown).
_LEGACY_CAPS = {
    "hv-relaxed": "KVM_CAP_HYPERV",
    "hv-vapic": "KVM_CAP_HYPERV",
    "hv-time": "KVM_CAP_HYPERV_TIME",
    "hv-tlbflush": "KVM_CAP_HYPERV_TLBFLUSH",
    "hv-evmcs": "KVM_CAP_HYPERV_ENLIGHTENED_VMCS",
    "hv-ipi": "KVM_CAP_HYPERV_SEND_IPI",
}


def _catalog_caps(ctx: Context) -> dict[str, str]:
    """hv-* flag -> the KVM capability the catalog (capabilities/hyperv-*.toml, each with its
    kernel commit) names for it."""
    out: dict[str, str] = {}
    for cap in ctx.platforms.capabilities.values():
        if cap.kvm_cap:
            for feature in cap.cpu_features:
                if feature.startswith("hv-"):
                    out.setdefault(feature, cap.kvm_cap)
    return out


def _hv_offered(facts: Facts, flag: str, catalog: Mapping[str, str]) -> tuple[bool | None, str]:
    """Whether the host's KVM offers one hv-* flag, and the evidence."""
    if _cap(facts, "KVM_CAP_HYPERV") is None:
        return None, _why_no_kvm(facts)
    # hw/i386/x86.c x86_cpu_pre_plug(): hv-vpindex needs KVM_CAP_HYPERV_VP_INDEX whatever
    # else KVM has ("kernel doesn't allow setting HyperV VP_INDEX"; seen on this machine).
    if flag == "hv-vpindex" and not _cap(facts, "KVM_CAP_HYPERV_VP_INDEX"):
        return False, "KVM_CAP_HYPERV_VP_INDEX = 0"
    if not _cap(facts, "KVM_CAP_HYPERV"):
        return False, "KVM_CAP_HYPERV = 0"
    leaves = (facts.kvm_vm or {}).get("hv_cpuid")
    if isinstance(leaves, list) and leaves:
        regs = {leaf[0]: leaf for leaf in leaves}
        # get_supported_hv_cpuid(): the vCPU ioctl reports eVMCS only once enabled; QEMU
        # adds it when KVM_CAP_HYPERV_ENLIGHTENED_VMCS says KVM has it.
        if flag == "hv-evmcs" and _cap(facts, "KVM_CAP_HYPERV_ENLIGHTENED_VMCS"):
            return True, "KVM_CAP_HYPERV_ENLIGHTENED_VMCS"
        ok = all(
            leaf in regs and regs[leaf][reg] & bits == bits for leaf, reg, bits in HV_BITS[flag]
        )
        return ok, "KVM_GET_SUPPORTED_HV_CPUID"
    if _cap(facts, "KVM_CAP_HYPERV_CPUID") or _cap(facts, "KVM_CAP_SYS_HYPERV_CPUID"):
        # Facts from an older probe: the catalogued capability that brought the flag to KVM
        # decides where there is one; the rest cannot be told.
        cap = catalog.get(flag)
        value = _cap(facts, cap) if cap else None
        if value is not None:
            return value > 0, f"{cap} = {value} (catalog)"
        return None, "KVM's Hyper-V CPUID was not recorded (gather again with this migcheck)"
    cap = _LEGACY_CAPS.get(flag)
    if cap is None:
        return None, "older KVM: QEMU derives it from MSRs the facts do not record"
    value = _cap(facts, cap)
    return (None, f"no {cap} in the facts") if value is None else (value > 0, f"{cap} = {value}")


@check(
    "kvm.hyperv",
    reads=("kvm.capabilities", "kvm.vm", "kvm.present", "kvm.usable"),
    summary=(
        "an `hv-*` enlightenment is not offered by the destination's KVM "
        "(`KVM_GET_SUPPORTED_HV_CPUID`, else its capabilities)"
    ),
)
def check_hyperv(ctx: Context) -> list[Finding]:
    cid = "kvm.hyperv"
    skip = _not_kvm(ctx, cid)
    if skip:
        return skip
    flags = sorted(f for f, on in ctx.vm.cpu.features.items() if on and f in HV_BITS)
    if not flags:
        return [Finding(cid, Status.PASS, "no Hyper-V enlightenment judged here is switched on")]
    catalog = _catalog_caps(ctx)
    src_has = {f: _hv_offered(ctx.src, f, catalog) for f in flags}
    dst_has = {f: _hv_offered(ctx.dst, f, catalog) for f in flags}
    # kvm.c hyperv_enabled(): with KVM_CAP_HYPERV = 0 QEMU ignores every hv-* flag (the guest
    # sees no Hyper-V leaves); otherwise hv_cpuid_check_and_set() refuses to start a vCPU
    # with a flag KVM does not offer ("Hyper-V %s is not supported by kernel"). hv-vpindex
    # is refused either way (x86_cpu_pre_plug()).
    dst_hyperv = _cap(ctx.dst, "KVM_CAP_HYPERV")
    refused = [f for f in flags if dst_has[f][0] is False and (dst_hyperv or f == "hv-vpindex")]
    dropped = [f for f in flags if dst_has[f][0] is False and src_has[f][0] and f not in refused]
    if refused or dropped:
        parts = []
        if refused:
            parts.append(
                "QEMU refuses to start with " + ", ".join(f"{f} ({dst_has[f][1]})" for f in refused)
            )
        if dropped:
            parts.append(
                f"QEMU silently drops {', '.join(dropped)} (KVM_CAP_HYPERV = 0): the guest "
                "loses its Hyper-V leaves"
            )
        return [
            Finding(
                cid,
                Status.FAIL,
                "the destination's KVM does not offer the guest's Hyper-V flags: "
                + "; ".join(parts),
                source=[f for f in flags if src_has[f][0]],
                destination=[f for f in flags if dst_has[f][0]],
                fix="drop those hv-* flags on both hosts, or use a destination whose KVM has them",
            )
        ]
    unsure = [f for f in flags if dst_has[f][0] is None or src_has[f][0] is None]
    if unsure:
        return [
            unknown(
                cid,
                *(f"{f}: source {src_has[f][1]}, destination {dst_has[f][1]}" for f in unsure),
            )
        ]
    gained = [f for f in flags if not src_has[f][0] and dst_has[f][0]]
    if gained:
        return [
            Finding(
                cid,
                Status.FAIL,
                "QEMU ignores the hv-* flags on the source (KVM_CAP_HYPERV = 0) but the "
                f"destination would give the guest {', '.join(gained)}: its CPUID changes",
                source=[],
                destination=gained,
            )
        ]
    return [
        Finding(
            cid,
            Status.PASS,
            f"{', '.join(flags)} offered by both hosts' KVM"
            if all(src_has[f][0] for f in flags)
            else f"{', '.join(flags)}: ignored by QEMU on both hosts (KVM_CAP_HYPERV = 0)",
            source=flags,
            destination=flags,
        )
    ]


# --------------------------------------------------------------------------- dirty ring

# Catalogued capabilities QEMU only prefers: without them it runs on another way, so a
# destination lacking one is no failure (platform.support leaves them to the check here).
PREFERRED_ONLY = frozenset({"kvm-dirty-ring"})

# sizeof(struct kvm_dirty_gfn) (include/uapi/linux/kvm.h): flags, slot, offset.
_DIRTY_GFN_BYTES = 16


@check(
    "kvm.dirty-ring",
    reads=("kvm.capabilities", "kvm.present", "kvm.usable"),
    summary=(
        "`-accel kvm,dirty-ring-size=N` is larger than the destination's KVM allows (a "
        "KVM without a dirty ring is fine: QEMU falls back to the bitmap)"
    ),
    gates_start=True,
)
def check_dirty_ring(ctx: Context) -> list[Finding]:
    cid = "kvm.dirty-ring"
    skip = _not_kvm(ctx, cid)
    if skip:
        return skip
    size = _int(ctx.vm.accel_options.get("dirty-ring-size"))
    if not size:
        return [Finding(cid, Status.PASS, "no KVM dirty ring requested")]
    cap = _cap(ctx.dst, "KVM_CAP_DIRTY_LOG_RING")
    if cap is None:
        return [unknown(cid, f"destination: {_why_no_kvm(ctx.dst)}")]
    # accel/kvm/kvm-all.c kvm_init(): without KVM_CAP_DIRTY_LOG_RING QEMU warns "KVM dirty
    # ring not available, using bitmap method" and runs on; a ring larger than the value
    # (bytes) is refused ("KVM dirty ring size %d too big").
    if cap == 0:
        return [
            Finding(
                cid,
                Status.PASS,
                f"dirty-ring-size={size}: the destination has no dirty ring; QEMU falls back "
                "to the dirty bitmap",
                destination=0,
            )
        ]
    if size * _DIRTY_GFN_BYTES > cap:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"dirty-ring-size={size} is larger than the destination's KVM allows "
                f"({cap // _DIRTY_GFN_BYTES} entries): QEMU refuses to start",
                source=size,
                destination=cap // _DIRTY_GFN_BYTES,
                fix=f"use dirty-ring-size={cap // _DIRTY_GFN_BYTES} or less",
            )
        ]
    return [Finding(cid, Status.PASS, f"dirty-ring-size={size} fits the destination's KVM")]
