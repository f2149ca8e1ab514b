"""CPU checks: the guest must see the same CPU after the move.

Sources of truth are QEMU's own answers on each host, gathered under the accelerator the
guest uses: ``query-cpu-definitions`` (with each model's ``unavailable-features``) and
``query-cpu-model-expansion`` of ``host`` under KVM, of ``max`` under TCG (``qemu.tcg``).
Under TCG the CPU is QEMU's emulation, not the host's: host KVM answers say nothing about
it, and a different QEMU build emulates a different ``max``. A named model without
``enforce`` silently drops the features a host cannot provide, so the guest's CPUID depends
on the host; with ``enforce`` QEMU refuses to start instead.

Each accelerator also changes every named model (not ``host``/``max``) before the user's
switches apply, and ``unavailable-features`` already reflects it because QEMU answers under
that accelerator (:data:`ACCEL_DEFAULT_PROPS`).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from migcheck.checks.accel import accel_assumed, guest_accel
from migcheck.checks.base import (
    Context,
    Finding,
    Status,
    machine_assumed,
    missing_qemu,
    unknown,
    with_assumed,
)
from migcheck.checks.registry import check
from migcheck.cpufeatures import canonical, canonical_props, canonical_set
from migcheck.facts import Facts
from migcheck.findings import assumed_sides

PASSTHROUGH_MODELS = ("host", "max")
_HOST_FEATURES: weakref.WeakKeyDictionary[Facts, dict[str, bool]] = weakref.WeakKeyDictionary()
_TCG_FEATURES: weakref.WeakKeyDictionary[Facts, dict[str, bool]] = weakref.WeakKeyDictionary()

# What each accelerator sets on every named model (QEMU's builtin_x86_defs) before the
# command line's own switches: target/i386/kvm/kvm-cpu.c kvm_default_props[] (7.2 and 10.0
# alike; x2apic becomes off without an in-kernel irqchip, kvm-msi-ext-dest-id on with a
# split one, kvm_cpu_instance_init()) and target/i386/tcg/tcg-cpu.c tcg_default_props[]
# (x86_tcg_default_props[] in 10.0). So under KVM no named model shows svm, monitor or acpi
# unless the command line asks, and under TCG vme is off.
ACCEL_DEFAULT_PROPS: dict[str, dict[str, bool]] = {
    "kvm": {
        "kvmclock": True,
        "kvm-nopiodelay": True,
        "kvm-asyncpf": True,
        "kvm-steal-time": True,
        "kvm-pv-eoi": True,
        "kvmclock-stable-bit": True,
        "x2apic": True,
        "kvm-msi-ext-dest-id": False,
        "acpi": False,
        "monitor": False,
        "svm": False,
    },
    "tcg": {"vme": False},
}

# CPUID.1:EDX.HTT and CPUID.80000001h:ECX.CmpLegacy follow the -smp topology, not the QEMU
# build: 10.0 folds them into the feature words (target/i386/cpu.c x86_cpu_expand_features(),
# "x86_threads_per_pkg(...) > 1"), 7.2 ORs them in when the guest reads CPUID
# (cpu_x86_cpuid(): "cs->nr_cores * cs->nr_threads > 1"). The same command line gives the
# guest the same bits on both, so expansions are compared without them.
_TOPOLOGY_BITS = frozenset({"ht", "cmp-legacy"})


def accel_defaults(ctx: Context) -> dict[str, bool]:
    """ACCEL_DEFAULT_PROPS for this guest: kvm_cpu_instance_init() turns x2apic off without
    an in-kernel irqchip and kvm-msi-ext-dest-id on with a split one."""
    accel = cpu_accel(ctx)
    out = dict(ACCEL_DEFAULT_PROPS.get(accel, {}))
    if accel == "kvm":
        irqchip = ctx.vm.accel_options.get("kernel-irqchip") or ctx.vm.machine.options.get(
            "kernel-irqchip"
        )
        mode = str(irqchip).lower() if irqchip is not None else "on"
        if mode in ("off", "false", "no", "n"):
            out["x2apic"] = False
        elif mode == "split":
            out["kvm-msi-ext-dest-id"] = True
    return out


def cpu_accel(ctx: Context) -> str:
    """The guest's accelerator (``kvm``, ``tcg``, or another QEMU accelerator name)."""
    return guest_accel(ctx.vm)[0]


def cpu_missing(ctx: Context, key: str) -> list[str]:
    """Why QEMU's CPU answers ``key`` (``cpu_models`` or ``host_cpu``) for the guest's
    accelerator are unusable on either side (empty when usable)."""
    accel = cpu_accel(ctx)
    if accel == "kvm":
        return missing_qemu(ctx, key)
    if accel != "tcg":
        return [f"-accel {accel}: migcheck has no QEMU CPU answers for this accelerator"]
    reasons = []
    for role, facts in (("source", ctx.src), ("destination", ctx.dst)):
        why = facts.tcg_missing()
        if why is None and key == "cpu_models" and facts.tcg_cpu_models is None:
            why = "no TCG CPU model list in the facts"
        if why is None and key == "host_cpu" and facts.tcg_max_cpu is None:
            why = "no TCG expansion of -cpu max in the facts"
        if why:
            reasons.append(f"{role} {facts.name}: {why}")
    return reasons


def cpu_models(facts: Facts, accel: str) -> dict[str, Mapping[str, Any]] | None:
    return facts.tcg_cpu_models if accel == "tcg" else facts.cpu_models


def resolve_model(facts: Facts, accel: str, name: str) -> str | None:
    """Follow ``alias-of`` in the model list QEMU gave under ``accel``."""
    if accel != "tcg":
        return facts.resolve_cpu_model(name)
    models = facts.tcg_cpu_models
    if models is None or name not in models:
        return None
    target = models[name].get("alias_of")
    return target if isinstance(target, str) and target in models else name


def expansion(facts: Facts, accel: str) -> Mapping[str, Any] | None:
    """What ``-cpu host`` (KVM) or ``-cpu max`` (TCG) expands to: model and props."""
    return facts.tcg_max_cpu if accel == "tcg" else facts.host_cpu


def expansion_features(facts: Facts, accel: str) -> dict[str, bool] | None:
    """The CPUID features of :func:`expansion`, by canonical name, computed once."""
    if accel != "tcg":
        return host_features(facts)
    cached = _TCG_FEATURES.get(facts)
    if cached is None and facts.tcg_max_cpu is not None:
        cached = _feature_props(facts.tcg_max_cpu["props"])
        _TCG_FEATURES[facts] = cached
    return cached


# Boolean -cpu properties that are switches of QEMU or of KVM rather than CPUID feature bits.
# Hyper-V enlightenments (hv-*) depend on KVM capabilities, not on the host CPU, and are
# judged by their own check; "x-" properties are QEMU internals.
_NOT_FEATURES = {
    "check",
    "enforce",
    "migratable",
    "l3-cache",
    "legacy-cache",
    "host-phys-bits",
    "host-cache-info",
    "fill-mtrr-mask",
    "full-cpuid-auto-level",
    "tcg-cpuid",
    "cpuid-0xb",
    "kvm",
    "pmu",
    "lmce",
    "vmware-cpuid-freq",
    "kvm-no-smi-migration",
    "kvm-pv-enforce-cpuid",
    "x2apic-id-only",
}


def _host_invtsc(facts: Facts) -> bool | None:
    """Whether KVM can give a guest invtsc: KVM masks CPUID 0x80000007 EDX with the host's
    (arch/x86/kvm/cpuid.c, "entry->edx &= boot_cpu_data.x86_power"), and Linux sets
    constant_tsc and nonstop_tsc together from that bit (arch/x86/kernel/cpu/intel.c,
    amd.c: "c->x86_power & (1 << 8)")."""
    sec = facts.section("cpu")
    flags = sec.get("flags") if sec else None
    if not isinstance(flags, list) or not flags:
        return None
    return "nonstop_tsc" in flags and "constant_tsc" in flags


def is_cpuid_feature(name: str) -> bool:
    return not (name in _NOT_FEATURES or name.startswith(("hv-", "x-", "hv_")))


def host_features(facts: Facts) -> dict[str, bool] | None:
    """The host CPU expansion's CPUID features by canonical name, computed once per facts."""
    cached = _HOST_FEATURES.get(facts)
    if cached is None and facts.host_cpu is not None:
        cached = _feature_props(facts.host_cpu["props"])
        _HOST_FEATURES[facts] = cached
    return cached


def _feature_props(props: Mapping[str, Any]) -> dict[str, bool]:
    """Boolean CPUID features of an expansion, by canonical name (aliases folded)."""
    return {
        name: value
        for name, value in canonical_props(props).items()
        if isinstance(value, bool) and is_cpuid_feature(name)
    }


def _wanted(ctx: Context) -> dict[str, bool]:
    """The guest's explicit feature switches, by canonical name."""
    return {canonical(f): on for f, on in ctx.vm.cpu.features.items()}


UNNAMED = "an unnamed feature (QEMU reports no name)"


def _fmt(features: set[str] | list[str], limit: int = 12) -> str:
    # Some QEMU builds list an unavailable feature with an empty name (seen in libvirt's
    # Xeon-Platinum-8268 capture); say so instead of printing nothing.
    items = [f or UNNAMED for f in sorted(features)]
    text = ", ".join(items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _count(items: set[str] | list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'s' if len(items) != 1 else ''}"


def _switch_off(name: str, features: set[str]) -> str:
    """``-cpu NAME,-a,-b`` for the named features; an unnamed one cannot be switched off."""
    named = sorted(f for f in features if f)
    if not named:
        return (
            "a CPU model the host fully supports (a feature QEMU does not name cannot be "
            "switched off)"
        )
    text = f"-cpu {name}," + ",".join(f"-{f}" for f in named)
    if len(named) < len(features):
        text += " (and a model without the unnamed feature)"
    return text


def _model_name(ctx: Context) -> str | None:
    """The CPU model the guest uses: -cpu, or the machine type's default CPU."""
    if ctx.vm.cpu.model:
        return ctx.vm.cpu.model
    machine = ctx.src.resolve_machine(ctx.vm.machine.type)
    info = (ctx.src.machines or {}).get(machine or "", {})
    default = info.get("default_cpu_type")
    if isinstance(default, str) and default.endswith("-x86_64-cpu"):
        return default.removesuffix("-x86_64-cpu")
    return None


def _same_model(name: str, a: str, b: str) -> bool:
    """QEMU before 4.1 had no model versions: its ``EPYC`` is what later QEMUs call
    ``EPYC-v1`` (target/i386/cpu.c: version 1 is the original definition)."""
    return a == b or {a, b} == {name, f"{name}-v1"}


def _enforced(ctx: Context) -> bool:
    return bool(_wanted(ctx).get("enforce"))


@check(
    "cpu.model",
    reads=(
        "qemu.machines",
        "qemu.cpu_models",
        "qemu.tcg",
        "qemu.kvm",
        "kvm.present",
        "kvm.usable",
        "kvm.error_open",
    ),
    summary=(
        "the named CPU model is missing on the destination, resolves to another version, "
        "or loses (or gains) features there; the same features missing on both hosts is a"
        " warning"
    ),
    gates_start=True,
)
def check_model(ctx: Context) -> list[Finding]:
    guessed = [accel_assumed(ctx.vm)]
    if ctx.vm.cpu.model is None:
        name = _model_name(ctx) or "?"
        machine = ctx.src.resolve_machine(ctx.vm.machine.type) or "?"
        guessed.append(f"CPU model {name}: the default of machine type {machine}, no -cpu")
        if machine_assumed(ctx):
            guessed.append(f"machine type {machine}: {machine_assumed(ctx)}")
    notes = assumed_sides("; ".join(g for g in guessed if g) or None, "guest")
    return with_assumed(_check_model(ctx), *notes)


def _check_model(ctx: Context) -> list[Finding]:
    cid = "cpu.model"
    accel = cpu_accel(ctx)
    reasons = cpu_missing(ctx, "cpu_models")
    if reasons:
        return [unknown(cid, *reasons)]
    name = _model_name(ctx)
    if name is None:
        return [unknown(cid, "the machine type's default CPU model is not in the facts")]
    if name in PASSTHROUGH_MODELS:
        return [Finding(cid, Status.PASS, f"-cpu {name}: judged by cpu.passthrough", name, name)]
    src_model = resolve_model(ctx.src, accel, name)
    dst_model = resolve_model(ctx.dst, accel, name)
    under = " under TCG" if accel == "tcg" else ""
    if src_model is None:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"the source QEMU has no CPU model {name!r}{under}",
                source=None,
                destination=dst_model,
                fix="check the model against 'qemu-system-x86_64 -cpu help' on the source",
            )
        ]
    if dst_model is None:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"the destination QEMU {ctx.dst.qemu_version} has no CPU model {name!r}{under}",
                source=src_model,
                destination=None,
                fix="upgrade QEMU on the destination, or use a CPU model both hosts have",
            )
        ]
    if not _same_model(name, src_model, dst_model):
        return [
            Finding(
                cid,
                Status.FAIL,
                f"-cpu {name} means {src_model} on the source but {dst_model} on the destination",
                source=src_model,
                destination=dst_model,
                fix=f"pin the versioned model: -cpu {src_model}",
            )
        ]
    # What the guest switches off, and what its accelerator switches off in every named model
    # for this configuration (x2apic without an in-kernel irqchip): features it never asks
    # for cannot be lost. The probe's answers assume the default irqchip.
    off = {f for f, on in _wanted(ctx).items() if not on}
    off |= {canonical(f) for f, on in accel_defaults(ctx).items() if not on}
    answers = {}
    for role, facts, model in (("source", ctx.src, name), ("destination", ctx.dst, name)):
        listed = cpu_models(facts, accel)[model].get("unavailable_features")  # type: ignore[index]
        if not isinstance(listed, list):
            # QEMU omits the field when it cannot check runnability: no evidence either way.
            return [unknown(cid, f"{role} {facts.name}: QEMU did not say which features of "
                            f"{model} are unavailable")]  # fmt: skip
        answers[role] = canonical_set(listed) - off
    src_un, dst_un = answers["source"], answers["destination"]
    lost = dst_un - src_un  # the guest has them on the source; the destination cannot give them
    gained = src_un - dst_un  # the destination would add them under the running guest
    if _enforced(ctx) and src_un:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"-cpu {name},enforce cannot start on the source: it lacks {_fmt(src_un)}",
                source=sorted(src_un),
                destination=sorted(dst_un),
            )
        ]
    if lost:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"{src_model}{under} on the destination lacks features the guest uses on the "
                "source: "
                f"{_fmt(lost)}",
                source=sorted(src_un),
                destination=sorted(dst_un),
                fix="use a CPU model the destination can run, or start the guest with "
                + _switch_off(name, lost),
            )
        ]
    if gained:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"{src_model}{under} would gain {_fmt(gained)} on the destination: the guest's "
                "CPUID "
                "would change under it",
                source=sorted(src_un),
                destination=sorted(dst_un),
                fix="start the guest with those features off on both hosts: "
                + _switch_off(name, gained),
            )
        ]
    if src_un:
        return [
            Finding(
                cid,
                Status.WARN,
                f"{src_model} runs without {_fmt(src_un)} on both hosts: identical, but the "
                "guest has less than the model promises",
                source=sorted(src_un),
                destination=sorted(dst_un),
                fix="add enforce, or turn them off explicitly: " + _switch_off(name, src_un),
            )
        ]
    return [
        Finding(
            cid,
            Status.PASS,
            f"{src_model} is fully available{under} on both hosts",
            src_model,
            dst_model,
        )
    ]


@check(
    "cpu.features",
    reads=(
        "qemu.host_cpu",
        "qemu.tcg",
        "qemu.kvm",
        "kvm.present",
        "kvm.usable",
        "kvm.error_open",
        "cpu.flags",
    ),
    summary=("a feature enabled with `+feat`/`feat=on` is unavailable on the destination"),
)
def check_features(ctx: Context) -> list[Finding]:
    cid = "cpu.features"
    wanted = sorted(f for f, on in _wanted(ctx).items() if on and is_cpuid_feature(f))
    if not wanted:
        return [Finding(cid, Status.PASS, "no CPU features are explicitly enabled")]
    notes = assumed_sides(accel_assumed(ctx.vm), "guest")  # the accelerator answers
    return with_assumed(_check_features(ctx, cid, wanted), *notes)


def _check_features(ctx: Context, cid: str, wanted: list[str]) -> list[Finding]:
    accel = cpu_accel(ctx)
    reasons = cpu_missing(ctx, "host_cpu")
    if reasons or expansion(ctx.src, accel) is None or expansion(ctx.dst, accel) is None:
        return [unknown(cid, *(reasons or ["no host CPU expansion in the facts"]))]
    # What the host (KVM) or QEMU's emulation (TCG, the max model) can provide. invtsc is
    # the exception: QEMU marks it unmigratable (feature_word_info[FEAT_8000_0007_EDX]
    # .unmigratable_flags), so the migratable host/max expansion never shows it although
    # KVM provides it to a named model that asks; a host whose CPUID lacks it is judged
    # from the kernel's own flag (/proc/cpuinfo "constant_tsc nonstop_tsc", what
    # arch/x86/kvm/cpuid.c reports as invtsc).
    src_props = dict(expansion_features(ctx.src, accel) or {})
    dst_props = dict(expansion_features(ctx.dst, accel) or {})
    if accel == "kvm" and "invtsc" in wanted:
        for facts, props in ((ctx.src, src_props), (ctx.dst, dst_props)):
            if not props.get("invtsc"):
                props["invtsc"] = _host_invtsc(facts)
    src_missing = {f for f in wanted if src_props.get(f) is not True}
    dst_missing = {f for f in wanted if dst_props.get(f) is not True}
    unsure = sorted(f for f in wanted if src_props.get(f) is None or dst_props.get(f) is None)
    if "invtsc" in unsure:
        return [unknown(cid, "whether the hosts have an invariant TSC (no CPU flags in the facts)")]
    lost = dst_missing - src_missing
    if lost:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"the destination cannot provide explicitly enabled {_fmt(lost)}",
                source=sorted(set(wanted) - src_missing),
                destination=sorted(set(wanted) - dst_missing),
                fix="remove " + ",".join(f"+{f}" for f in sorted(lost)) + " from -cpu, "
                "or choose a destination whose CPU has them",
            )
        ]
    if src_missing:
        return [
            Finding(
                cid,
                Status.WARN,
                f"{_fmt(src_missing)} enabled but unavailable on the source: dropped silently "
                "(or fatal with enforce)",
                source=sorted(set(wanted) - src_missing),
                destination=sorted(set(wanted) - dst_missing),
            )
        ]
    return [Finding(cid, Status.PASS, f"{_fmt(wanted)} available on both hosts", wanted, wanted)]


@check(
    "cpu.passthrough",
    reads=(
        "qemu.host_cpu",
        "qemu.tcg",
        "qemu.kvm",
        "kvm.present",
        "kvm.usable",
        "kvm.error_open",
        "cpu.vendor",
    ),
    summary=(
        "`-cpu host`/`max`: the guest's CPU differs on the destination (a feature lost "
        "or gained, another vendor or identity); under TCG `max` is QEMU's emulation, "
        "which differs between QEMU builds, and `host` cannot start"
    ),
)
def check_passthrough(ctx: Context) -> list[Finding]:
    cid = "cpu.passthrough"
    model = ctx.vm.cpu.model
    if model not in PASSTHROUGH_MODELS:
        return [Finding(cid, Status.PASS, "not a host-passthrough CPU")]
    notes = assumed_sides(accel_assumed(ctx.vm), "guest")  # host and max depend on it
    return with_assumed(_check_passthrough(ctx, cid, model), *notes)


def _check_passthrough(ctx: Context, cid: str, model: str) -> list[Finding]:
    accel = cpu_accel(ctx)
    if model == "host" and accel == "tcg":
        # target/i386/host-cpu.c / kvm-cpu.c: the "host" model is only registered for
        # accelerators that can pass a host CPU through; under TCG QEMU refuses to start
        # ("CPU model 'host' requires KVM or HVF").
        return [
            Finding(
                cid,
                Status.FAIL,
                "-cpu host needs KVM: under TCG QEMU refuses to start the guest",
                fix="use -accel kvm, or -cpu max (QEMU's own emulated CPU) under TCG",
            )
        ]
    reasons = cpu_missing(ctx, "host_cpu")
    src_exp, dst_exp = expansion(ctx.src, accel), expansion(ctx.dst, accel)
    if reasons or src_exp is None or dst_exp is None:
        return [unknown(cid, *(reasons or ["no host CPU expansion in the facts"]))]
    what = "QEMU's TCG emulation" if accel == "tcg" else "the host CPU"
    src_props = src_exp["props"]
    dst_props = dst_exp["props"]
    src_vendor, dst_vendor = src_props.get("vendor"), dst_props.get("vendor")
    if src_vendor and dst_vendor and src_vendor != dst_vendor:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"-cpu {model} passes {what} through: {src_vendor} cannot become "
                f"{dst_vendor} under a running guest",
                source=src_vendor,
                destination=dst_vendor,
                fix="use a named CPU model both hosts can run instead of -cpu " + model,
            )
        ]
    off = {f for f, on in _wanted(ctx).items() if not on} | _TOPOLOGY_BITS
    src_f = {f for f, on in (expansion_features(ctx.src, accel) or {}).items() if on} - off
    dst_f = {f for f, on in (expansion_features(ctx.dst, accel) or {}).items() if on} - off
    lost = src_f - dst_f
    if lost:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"-cpu {model}: the guest sees {_count(lost, 'CPU feature')} on the source "
                f"that the destination lacks: {_fmt(lost)}",
                source=sorted(lost),
                destination=[],
                # Every feature: a fix is copied as is, so it is never shortened.
                fix="use a named CPU model both hosts can run (see 'migcheck host'), or add "
                + ",".join(f"-{f}" for f in sorted(lost))
                + " on both hosts",
            )
        ]
    ident = [
        k
        for k in ("family", "model", "stepping", "model-id")
        if src_props.get(k) != dst_props.get(k)
    ]
    gained = dst_f - src_f
    if gained or ident:
        # CPUID is not in the migration stream: the destination's QEMU builds the vCPU from
        # its own expansion and the guest, which read CPUID at boot, runs on a different
        # CPU (the ground-truth suite compares the feature words on both sides).
        changes = []
        if gained:
            changes.append(f"it would gain {_fmt(gained)}")
        if ident:
            changes.append("the CPU identity differs (" + ", ".join(ident) + ")")
        return [
            Finding(
                cid,
                Status.FAIL,
                f"-cpu {model}: no feature is lost, but " + " and ".join(changes) + "; the "
                f"guest's CPUID would change under it ({what} differs between the hosts)",
                source={k: src_props.get(k) for k in ident} or None,
                destination=sorted(gained) or None,
                fix="use a named CPU model both hosts can run",
            )
        ]
    return [
        Finding(
            cid,
            Status.PASS,
            f"-cpu {model}: both hosts expose the same {len(src_f)} CPU features"
            + (" under TCG" if accel == "tcg" else "; keep the hosts identical"),
            source=len(src_f),
            destination=len(dst_f),
        )
    ]


_NESTED_MODULE = {"vmx": "kvm_intel", "svm": "kvm_amd"}


def _nested_enabled(facts: Facts, feature: str) -> tuple[bool | None, str]:
    kvm = facts.section("kvm")
    module = _NESTED_MODULE[feature]
    if kvm is None:
        return None, facts.missing("kvm") or "no KVM facts"
    params = (kvm.get("modules") or {}).get(module)
    if not isinstance(params, Mapping) or not isinstance(params.get("nested"), str):
        return None, f"no {module} nested parameter in the facts"
    value = params["nested"]
    return value in ("Y", "y", "1"), f"{module}.nested = {value}"


def _nested_state(facts: Facts) -> tuple[int | None, str]:
    """KVM_CAP_NESTED_STATE: the largest nested state KVM can save and restore (0: none)."""
    kvm = facts.section("kvm")
    caps = kvm.get("capabilities") if kvm else None
    if not isinstance(caps, Mapping) or not isinstance(caps.get("KVM_CAP_NESTED_STATE"), int):
        return None, (facts.missing("kvm") or "no KVM_CAP_NESTED_STATE in the facts")
    value = caps["KVM_CAP_NESTED_STATE"]
    return value, f"KVM_CAP_NESTED_STATE = {value}"


@check(
    "cpu.nested",
    reads=(
        "qemu.machines",
        "qemu.cpu_models",
        "qemu.host_cpu",
        "qemu.kvm",
        "kvm.present",
        "kvm.usable",
        "kvm.error_open",
        "kvm.modules",
        "kvm.capabilities",
    ),
    summary=(
        "a KVM guest sees `vmx`/`svm` and the destination's `kvm_intel`/`kvm_amd` has "
        "`nested` off, or either host's KVM cannot save nested state "
        "(`KVM_CAP_NESTED_STATE` = 0)"
    ),
)
def check_nested(ctx: Context) -> list[Finding]:
    """A guest that sees vmx/svm runs its own VMs; the destination must allow nesting.

    Only explicit +vmx/+svm and host passthrough count: KVM switches svm off in every named
    model (kvm_default_props[], see ACCEL_DEFAULT_PROPS) and no named model has vmx. Under
    TCG, QEMU itself emulates SVM (and filters VMX, judged by cpu.features): KVM's nested
    module and nested state play no part."""
    cid = "cpu.nested"
    accel = cpu_accel(ctx)
    if accel != "kvm":
        return [
            Finding(cid, Status.PASS, f"-accel {accel}: KVM nested virtualization does not apply")
        ]
    wanted = _wanted(ctx)
    uses = [f for f in ("vmx", "svm") if wanted.get(f)]
    if ctx.vm.cpu.model in PASSTHROUGH_MODELS and ctx.src.host_cpu is not None:
        props = host_features(ctx.src) or {}
        uses += [f for f in ("vmx", "svm") if props.get(f) and wanted.get(f) is not False]
    uses = sorted(set(uses))
    if not uses:
        return [
            Finding(cid, Status.PASS, "the guest sees no vmx/svm: nested virtualization unused")
        ]
    feature = uses[0]
    enabled, why = _nested_enabled(ctx.dst, feature)
    if enabled is None:
        return [unknown(cid, f"the guest sees {feature}; destination: {why}")]
    if not enabled:
        module = _NESTED_MODULE[feature]
        return [
            Finding(
                cid,
                Status.FAIL,
                f"the guest sees {feature} (nested virtualization) but the destination has {why}",
                source=_nested_enabled(ctx.src, feature)[1],
                destination=why,
                fix=f"load {module} with nested=1 on the destination, or start the guest with "
                f"-{feature}",
            )
        ]
    # The L2 state travels only through KVM_GET/SET_NESTED_STATE. Without it on the source,
    # target/i386/machine.c cpu_pre_save() fails the save once the guest turned VMX on
    # ("kernel does not support required capabilities to save vCPU nested state"); without it
    # on the destination, nested_state_post_load() refuses the stream ("Received nested
    # state when kernel cannot restore it"). kvm_max_nested_state_length() is this value.
    states = {role: _nested_state(f) for role, f in (("source", ctx.src), ("destination", ctx.dst))}
    unsure = [f"{role}: {why}" for role, (value, why) in states.items() if value is None]
    if unsure:
        return [unknown(cid, f"the guest sees {feature}", *unsure)]
    lacking = [role for role, (value, _) in states.items() if not value]
    if lacking:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"the guest sees {feature} but the {' and '.join(lacking)} KVM cannot save or "
                "restore nested state (KVM_CAP_NESTED_STATE = 0): the migration fails once the "
                "guest has used it",
                source=states["source"][1],
                destination=states["destination"][1],
                fix=f"run the guest with -{feature}, or use hosts whose KVM has nested state",
            )
        ]
    return [
        Finding(
            cid,
            Status.PASS,
            f"the guest sees {feature}; destination {why}, {states['destination'][1]}",
            states["source"][1],
            states["destination"][1],
        )
    ]


@check(
    "cpu.migratable",
    reads=(),
    summary=("`-cpu host,migratable=off` (exposes features QEMU cannot migrate)"),
)
def check_migratable(ctx: Context) -> list[Finding]:
    """``-cpu host,migratable=off`` passes through features QEMU marks unmigratable."""
    cid = "cpu.migratable"
    if ctx.vm.cpu.model in PASSTHROUGH_MODELS and _wanted(ctx).get("migratable") is False:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"-cpu {ctx.vm.cpu.model},migratable=off exposes CPU features QEMU cannot "
                "migrate (such as invtsc)",
                source="migratable=off",
                fix=f"start the guest with -cpu {ctx.vm.cpu.model},migratable=on",
            )
        ]
    return [Finding(cid, Status.PASS, "the CPU is migratable")]
