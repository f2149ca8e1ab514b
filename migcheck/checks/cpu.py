"""CPU checks: the guest must see the same CPU after the move.

Sources of truth are QEMU's own answers on each host: ``query-cpu-definitions`` (with each
model's ``unavailable-features`` under KVM) and ``query-cpu-model-expansion`` of ``host``.
A named model without ``enforce`` silently drops the features a host cannot provide, so
the guest's CPUID depends on the host; with ``enforce`` QEMU refuses to start instead.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from migcheck.checks.base import Context, Finding, Status, missing_qemu, unknown
from migcheck.checks.registry import check
from migcheck.cpufeatures import canonical, canonical_props, canonical_set
from migcheck.facts import Facts

PASSTHROUGH_MODELS = ("host", "max")
_HOST_FEATURES: weakref.WeakKeyDictionary[Facts, dict[str, bool]] = weakref.WeakKeyDictionary()

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
    cid = "cpu.model"
    reasons = missing_qemu(ctx, "cpu_models")
    if reasons:
        return [unknown(cid, *reasons)]
    name = _model_name(ctx)
    if name is None:
        return [unknown(cid, "the machine type's default CPU model is not in the facts")]
    if name in PASSTHROUGH_MODELS:
        return [Finding(cid, Status.PASS, f"-cpu {name}: judged by cpu.passthrough", name, name)]
    src_model = ctx.src.resolve_cpu_model(name)
    dst_model = ctx.dst.resolve_cpu_model(name)
    if src_model is None:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"the source QEMU has no CPU model {name!r}",
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
                f"the destination QEMU {ctx.dst.qemu_version} has no CPU model {name!r}",
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
    off = {f for f, on in _wanted(ctx).items() if not on}
    src_un = canonical_set(ctx.src.cpu_models[name].get("unavailable_features") or []) - off  # type: ignore[index]
    dst_un = canonical_set(ctx.dst.cpu_models[name].get("unavailable_features") or []) - off  # type: ignore[index]
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
                f"{src_model} on the destination lacks features the guest uses on the source: "
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
                f"{src_model} would gain {_fmt(gained)} on the destination: the guest's CPUID "
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
            cid, Status.PASS, f"{src_model} is fully available on both hosts", src_model, dst_model
        )
    ]


@check(
    "cpu.features",
    reads=("qemu.host_cpu", "qemu.kvm", "kvm.present", "kvm.usable", "kvm.error_open"),
    summary=("a feature enabled with `+feat`/`feat=on` is unavailable on the destination"),
)
def check_features(ctx: Context) -> list[Finding]:
    cid = "cpu.features"
    wanted = sorted(f for f, on in _wanted(ctx).items() if on and is_cpuid_feature(f))
    if not wanted:
        return [Finding(cid, Status.PASS, "no CPU features are explicitly enabled")]
    reasons = missing_qemu(ctx, "host_cpu")
    if reasons or ctx.src.host_cpu is None or ctx.dst.host_cpu is None:
        return [unknown(cid, *(reasons or ["no host CPU expansion in the facts"]))]
    src_props = host_features(ctx.src) or {}
    dst_props = host_features(ctx.dst) or {}
    src_missing = {f for f in wanted if src_props.get(f) is not True}
    dst_missing = {f for f in wanted if dst_props.get(f) is not True}
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
        "qemu.kvm",
        "kvm.present",
        "kvm.usable",
        "kvm.error_open",
        "cpu.vendor",
    ),
    summary=(
        "`-cpu host`/`max`: a CPU feature the guest sees on the source is missing on the "
        "destination, or the vendor differs"
    ),
)
def check_passthrough(ctx: Context) -> list[Finding]:
    cid = "cpu.passthrough"
    model = ctx.vm.cpu.model
    if model not in PASSTHROUGH_MODELS:
        return [Finding(cid, Status.PASS, "not a host-passthrough CPU")]
    reasons = missing_qemu(ctx, "host_cpu")
    if reasons or ctx.src.host_cpu is None or ctx.dst.host_cpu is None:
        return [unknown(cid, *(reasons or ["no host CPU expansion in the facts"]))]
    src_props = ctx.src.host_cpu["props"]
    dst_props = ctx.dst.host_cpu["props"]
    src_vendor, dst_vendor = src_props.get("vendor"), dst_props.get("vendor")
    if src_vendor and dst_vendor and src_vendor != dst_vendor:
        return [
            Finding(
                cid,
                Status.FAIL,
                f"-cpu {model} passes the host CPU through: {src_vendor} cannot become "
                f"{dst_vendor} under a running guest",
                source=src_vendor,
                destination=dst_vendor,
                fix="use a named CPU model both hosts can run instead of -cpu " + model,
            )
        ]
    off = {f for f, on in _wanted(ctx).items() if not on}
    src_f = {f for f, on in (host_features(ctx.src) or {}).items() if on} - off
    dst_f = {f for f, on in (host_features(ctx.dst) or {}).items() if on} - off
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
                fix="use a named CPU model both hosts can run (see 'migcheck host'), or add "
                + ",".join(f"-{f}" for f in sorted(lost)[:8])
                + ("..." if len(lost) > 8 else "")
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
        what = []
        if gained:
            what.append(f"it would gain {_fmt(gained)}")
        if ident:
            what.append("the CPU identity differs (" + ", ".join(ident) + ")")
        return [
            Finding(
                cid,
                Status.WARN,
                f"-cpu {model}: no feature is lost, but " + " and ".join(what) + "; host "
                "passthrough is only reliable between identical hosts",
                source={k: src_props.get(k) for k in ident} or None,
                destination=sorted(gained) or None,
                fix="use a named CPU model both hosts can run",
            )
        ]
    return [
        Finding(
            cid,
            Status.PASS,
            f"-cpu {model}: both hosts expose the same {len(src_f)} CPU features; keep the hosts "
            "identical",
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


@check(
    "cpu.nested",
    reads=("qemu.machines", "qemu.cpu_models", "qemu.host_cpu", "kvm.modules"),
    summary=(
        "the guest sees `vmx`/`svm` and the destination's `kvm_intel`/`kvm_amd` has "
        "`nested` off (unknown when the facts lack the parameter)"
    ),
)
def check_nested(ctx: Context) -> list[Finding]:
    """A guest that sees vmx/svm runs its own VMs; the destination must allow nesting."""
    cid = "cpu.nested"
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
    return [Finding(cid, Status.PASS, f"the guest sees {feature}; destination {why}", None, why)]


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
