"""Rewrite a guest's command line so it can live-migrate between every pair of given hosts.

Changing as little as possible, in this order:

1. Blockers (host devices, confidential guests, invtsc without a frequency, ...) cannot be
   rewritten away: the answer is "not portable", with the reasons.
2. Machine: an alias or the default machine becomes a versioned type; a type missing on
   some host becomes the newest type of the same family that every host has.
3. CPU: a named model that lacks features on some host keeps its name and switches those
   features off (the guest then sees the same CPU everywhere); ``-cpu host``/``max`` become
   the newest named model usable on every host plus the CPU features every host offers.
4. Kernel-dependent defaults: the affected device properties switched off explicitly
   (what every released QEMU accepts); ``-platform <greatest common platform>`` only with
   ``use_platform=True``, for a QEMU that has ``-platform``.

Every property written is checked against each host's QEMU build data: a device property
or CPU feature one host's QEMU does not know would stop the guest from starting there
(refused), and a host without build data leaves the rewrite unverified (``unknown``).

A libvirt domain XML guest (no command line to edit) gets the same decisions, verified on
the rewritten guest, and is printed as the ``<cpu>`` element and machine type to put into
the domain XML (``--format libvirt``, the ``virsh hypervisor-cpu-baseline`` habit).

Everything else of the original text stays byte for byte: only the options that change
are re-rendered, and new options are inserted with the file's own separator. The result is
verified with the same checks ``pair`` runs, for every ordered pair of hosts, before it
is returned; a rewrite that fails any pair is refused.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from migcheck.blockers import triggered
from migcheck.catalog import Catalog
from migcheck.checks.base import Status
from migcheck.checks.cpu import PASSTHROUGH_MODELS, host_features, is_cpuid_feature
from migcheck.cmdline import parse_cmdline
from migcheck.cpufeatures import canonical
from migcheck.dependencies import guest_dependencies
from migcheck.facts import Facts
from migcheck.fleet import baseline_cpu
from migcheck.keyval import split_keyval
from migcheck.machinetypes import newest_of_line, parse_machine
from migcheck.pair import PairReport, check_pair
from migcheck.platforms import Has, host_platforms, recommended_pin
from migcheck.verdict import Verdict
from migcheck.vm import Option, VmSpec


@dataclass(frozen=True)
class Change:
    option: str  # "machine", "cpu", "platform", "device"
    before: str | None
    after: str
    reason: str


@dataclass
class PortableResult:
    original: VmSpec
    text: str | None  # the rewritten command line; None when it cannot be made portable
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why it cannot be made portable
    losses: dict[str, list[str]] = field(default_factory=dict)  # host -> CPU features lost
    verification: list[PairReport] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)  # checks that could not judge
    written_props: list[tuple[str, str]] = field(default_factory=list)  # (driver, prop)
    rewritten: VmSpec | None = None  # the guest as rewritten (what was verified)

    @property
    def ok(self) -> bool:
        return self.text is not None

    @property
    def verdict(self) -> Verdict:
        """safe: rewritten and proven for every host pair; unknown: rewritten, but some
        pair could not be judged; unsafe: no rewrite makes it portable."""
        if self.text is None:
            return Verdict.UNSAFE
        return Verdict.UNKNOWN if self.unverified else Verdict.SAFE

    def diff(self) -> str:
        if self.text is None:
            return ""
        name = self.original.source
        return "".join(
            difflib.unified_diff(
                self.original.text.splitlines(keepends=True),
                self.text.splitlines(keepends=True),
                fromfile=name,
                tofile=f"{name} (portable)",
                n=1,
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "portable": self.ok,
            "verdict": self.verdict.value,
            "unverified": self.unverified,
            "source": self.original.source,
            "cmdline": self.text,
            "changes": [c.__dict__ for c in self.changes],
            "problems": self.problems,
            "cpu_features_lost": self.losses,
            "verified_pairs": [
                {
                    "source": r.src.name,
                    "destination": r.dst.name,
                    "verdict": r.verdict.value,
                    "failing": [
                        f.id for f in r.findings if f.status in (Status.FAIL, Status.UNKNOWN)
                    ],
                }
                for r in self.verification
            ],
        }


class _Editor:
    """Span-based edits on the original text, applied back to front."""

    def __init__(self, vm: VmSpec) -> None:
        self.vm = vm
        self.edits: list[tuple[int, int, str]] = []

    def replace_value(self, option: Option, value: str) -> None:
        span = option.span
        assert span.value_start is not None
        self.edits.append((span.value_start, span.end, _quote(value)))

    def insert_option(self, name: str, value: str, after: Option | None) -> None:
        text = self.vm.text
        sep = self._separator()
        if after is not None:
            pos = after.span.end
            self.edits.append((pos, pos, f"{sep}-{name} {_quote(value)}"))
        elif self.vm.options:
            pos = self.vm.options[0].span.start
            self.edits.append((pos, pos, f"-{name} {_quote(value)}{sep}"))
        else:
            pos = len(text.rstrip())
            self.edits.append((pos, pos, f" -{name} {_quote(value)}"))

    def _separator(self) -> str:
        """The whitespace the file puts between options (" \\\\\\n  " or " ")."""
        opts = self.vm.options
        if len(opts) >= 2:
            gap = self.vm.text[opts[0].span.end : opts[1].span.start]
            if gap.strip(" \t\\\n") == "":
                return gap
        return " "

    def apply(self) -> str:
        text = self.vm.text
        for start, end, new in sorted(self.edits, key=lambda e: e[0], reverse=True):
            text = text[:start] + new + text[end:]
        return text


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_.,=:/+@%-]+", value) else shlex.quote(value)


def _option(vm: VmSpec, *names: str) -> Option | None:
    found = None
    for opt in vm.options:
        if opt.name in names:
            found = opt  # QEMU: the last one counts
    return found


def _machine(vm: VmSpec, hosts: Sequence[Facts], ed: _Editor, out: PortableResult) -> str | None:
    asked = vm.machine.type
    resolved = [h.resolve_machine(asked) for h in hosts]
    known = [r for r in resolved if r]
    if not known:
        out.problems.append(f"no host knows the machine type {asked or '(default)'}")
        return None
    everywhere = [r for r in known if all(r in (h.machines or {}) for h in hosts)]
    if asked in everywhere:
        return asked  # a versioned type every host has: nothing to change
    current = known[0]
    if len(set(known)) == 1 and current in everywhere:
        target = current
        what = f"-machine {asked}" if asked else "no -machine (each host's default)"
        reason = f"{what} resolves per QEMU; pin the versioned {target} it means today"
    else:
        parsed = parse_machine(current)
        family = (
            parsed.family + (f" {parsed.distro}" if parsed and parsed.distro else "")
            if parsed
            else current
        )
        names = set.intersection(*(set(h.machines or {}) for h in hosts))
        target = newest_of_line(current, names)
        if target is None:
            out.problems.append(f"no {family} machine type exists on every host")
            return None
        reason = (
            f"{current} is missing on some hosts or the name resolves differently; {target} is "
            f"the newest {family} type every host has (device defaults change with the machine "
            "type: restart the guest with it)"
        )
    opt = _option(vm, "machine", "M")
    if opt is not None and opt.value is not None:
        first_item, rest = _split_first(opt.value)
        if first_item is not None and "=" not in first_item:
            new_value = target + rest
        elif re.search(r"(^|,)type=", opt.value):
            new_value = re.sub(r"(^|,)type=[^,]*", rf"\1type={target}", opt.value)
        else:
            new_value = f"{target},{opt.value}"
        ed.replace_value(opt, new_value)
        out.changes.append(Change("machine", opt.value, new_value, reason))
    else:
        ed.insert_option("machine", target, None)
        out.changes.append(Change("machine", None, target, reason))
    return target


def _split_first(value: str) -> tuple[str | None, str]:
    """``q35,usb=off`` -> ("q35", ",usb=off"), honouring ``,,`` escapes."""
    i = 0
    while i < len(value):
        if value[i] == ",":
            if value[i : i + 2] == ",,":
                i += 2
                continue
            return value[:i], value[i:]
        i += 1
    return value, ""


def _cpu(
    vm: VmSpec, hosts: Sequence[Facts], catalog: Catalog, ed: _Editor, out: PortableResult
) -> None:
    model = vm.cpu.model
    opt = _option(vm, "cpu")
    if model in PASSTHROUGH_MODELS:
        base = baseline_cpu(hosts, catalog)
        if base is None:
            out.problems.append(
                f"-cpu {model}: no named CPU model is usable on every host, so no stable CPU "
                "can replace host passthrough"
            )
            return
        features = [host_features(h) for h in hosts]
        if any(f is None for f in features):
            out.problems.append("a host's CPU expansion is missing from its facts")
            return
        common = set.intersection(*({k for k, v in f.items() if v} for f in features))  # type: ignore[union-attr]
        off = {canonical(k) for k, v in vm.cpu.features.items() if v is False}
        common = sorted(f for f in common - off if is_cpuid_feature(f) and f not in ("vmx", "svm"))
        for h, f in zip(hosts, features, strict=True):
            lost = sorted(k for k, v in f.items() if v and is_cpuid_feature(k) and k not in common)  # type: ignore[union-attr]
            if lost:
                out.losses[h.name] = lost
        kept = [f"{k}={'on' if v else 'off'}" for k, v in vm.cpu.features.items()
                if not is_cpuid_feature(k) and k != "migratable"]  # fmt: skip
        value = ",".join([base, *(f"+{f}" for f in common), *kept])
        reason = (
            f"-cpu {model} passes each host's own CPU through; {base} is the newest named model "
            f"usable on every host, plus the {len(common)} features every host offers"
        )
        _set_cpu(vm, opt, value, reason, ed, out)
        return
    name = model or "qemu64"
    union: set[str] = set()
    for h in hosts:
        resolved = h.resolve_cpu_model(name)
        if resolved is None:
            out.problems.append(f"{h.name} has no CPU model {name}")
            return
        union |= {f for f in (h.cpu_models or {})[name].get("unavailable_features") or [] if f}
        if "" in ((h.cpu_models or {})[name].get("unavailable_features") or []):
            out.problems.append(f"{h.name} lacks a feature of {name} that QEMU does not name")
            return
    off_already = {canonical(k) for k, v in vm.cpu.features.items() if v is False}
    missing = sorted(canonical(f) for f in union if canonical(f) not in off_already)
    if not missing:
        return
    reason = (
        f"{name} lacks {', '.join(missing)} on some hosts; switched off, the guest sees the same "
        "CPU on every host"
    )
    if opt is not None and opt.value is not None:
        value = opt.value + "".join(f",-{f}" for f in missing)
    else:
        value = name + "".join(f",-{f}" for f in missing)
    _set_cpu(vm, opt, value, reason, ed, out)
    for h in hosts:
        lost = [f for f in missing if f not in set(
            (h.cpu_models or {})[name].get("unavailable_features") or [])]  # fmt: skip
        if lost:
            out.losses[h.name] = lost


def _set_cpu(
    vm: VmSpec, opt: Option | None, value: str, reason: str, ed: _Editor, out: PortableResult
) -> None:
    if opt is not None and opt.value is not None:
        ed.replace_value(opt, value)
        out.changes.append(Change("cpu", opt.value, value, reason))
    else:
        ed.insert_option("cpu", value, _option(vm, "machine", "M"))
        out.changes.append(Change("cpu", None, value, reason))


def _kernel_defaults(
    vm: VmSpec,
    hosts: Sequence[Facts],
    catalog: Catalog,
    machine: str | None,
    use_platform: bool,
    ed: _Editor,
    out: PortableResult,
) -> None:
    hps = [host_platforms(catalog, h) for h in hosts]
    deps = guest_dependencies(vm, catalog, machine, vm.platform)
    lacking = {
        cid: dep for cid, dep in deps.items() if any(hp.has(cid) is not Has.YES for hp in hps)
    }
    if not lacking and not (vm.platform and use_platform):
        return
    unfixable = [c for c, d in lacking.items() if not d.devices]
    for cid in unfixable:
        out.problems.append(
            f"the guest uses {cid} ({'; '.join(deps[cid].reasons)}), which some host lacks, and "
            "that is not a default migcheck can switch off"
        )
    if unfixable:
        return
    if use_platform:
        pin = recommended_pin(hps)
        if pin is None:
            out.problems.append("no platform is supported by every host")
            return
        if vm.platform == pin.id:
            return
        existing = _option(vm, "platform")
        reason = (
            f"pins the kernel-dependent defaults to {pin.id}, the greatest platform every host "
            f"supports (turns off: {', '.join(sorted(lacking)) or 'nothing the guest uses'})"
        )
        if existing is not None:
            ed.replace_value(existing, pin.id)
            out.changes.append(Change("platform", existing.value, pin.id, reason))
        else:
            ed.insert_option("platform", pin.id, _option(vm, "machine", "M"))
            out.changes.append(Change("platform", None, pin.id, reason))
        return
    globals_added: set[str] = set()
    for cid, dep in lacking.items():
        cap = catalog.capabilities[cid]
        for use in dep.devices:
            opt = next(
                (o for o in vm.options if o.name == "device" and o.span == use.device.span), None
            )
            if use.device.origin != "-device":
                # -nic, -net nic, defaults: no -device to edit. A -global reaches every
                # instance of the type however it was created (qdev_prop_set_globals()).
                why = (
                    f"{', '.join(use.props_on)} of the {use.device.driver} from "
                    f"{use.device.origin} need {cap.title} (Linux {cap.linux}+), which some "
                    "host lacks; switched off for every device of that type"
                )
                for prop in use.props_on:
                    out.written_props.append((use.device.driver, prop))
                    value = f"{use.device.driver}.{prop}=off"
                    if value in globals_added:
                        continue
                    globals_added.add(value)
                    ed.insert_option("global", value, _option(vm, "machine", "M"))
                    out.changes.append(Change("global", None, value, why))
                continue
            if opt is None or opt.value is None:
                out.problems.append(f"cannot locate -device {use.device.driver} in the text")
                continue
            props = dict.fromkeys(use.props_on, "off")
            out.written_props += [(use.device.driver, p) for p in use.props_on]
            new_value = _set_device_props(opt.value, props)
            ed.replace_value(opt, new_value)
            out.changes.append(
                Change(
                    "device",
                    opt.value,
                    new_value,
                    f"{', '.join(use.props_on)} need {cap.title} (Linux {cap.linux}+), which "
                    "some host lacks; switched off explicitly",
                )
            )


def _set_device_props(value: str, props: dict[str, str]) -> str:
    if value.lstrip().startswith("{"):
        doc = json.loads(value)
        doc.update({k: False for k in props})
        return json.dumps(doc, separators=(",", ":"))
    _first, existing = split_keyval(value)
    out = value
    for key, val in props.items():
        if key in existing:
            out = re.sub(rf"(^|,){re.escape(key)}=[^,]*", rf"\1{key}={val}", out)
        else:
            out += f",{key}={val}"
    return out


def make_portable(
    vm: VmSpec,
    hosts: Sequence[Facts],
    catalog: Catalog,
    *,
    use_platform: bool = False,
    accept_unreviewed: bool = False,
) -> PortableResult:
    out = PortableResult(vm, None)
    if len(hosts) < 2:
        out.problems.append("give at least two hosts")
        return out
    for blocker, what in triggered(vm, catalog.blockers):
        out.problems.append(f"{blocker.title} ({what}): {blocker.message} {blocker.fix}")
    if out.problems:
        return out
    ed = _Editor(vm)
    machine = _machine(vm, hosts, ed, out)
    _cpu(vm, hosts, catalog, ed, out)
    if out.problems:
        return out
    _kernel_defaults(vm, hosts, catalog, machine, use_platform, ed, out)
    if out.problems:
        return out
    if vm.text:
        text = ed.apply() if ed.edits else vm.text
        rewritten = parse_cmdline(text, vm.source, base_dir=vm.base_dir)
    else:  # domain XML: no text to edit; apply the decisions to the guest itself
        text = ""
        rewritten = _apply_to_spec(vm, out)
        if out.problems:
            return out
    out.rewritten = rewritten
    _check_written(rewritten, hosts, out)
    if out.problems:
        return out
    for a in hosts:
        for b in hosts:
            if a is not b:
                out.verification.append(
                    check_pair(
                        rewritten, a, b, catalog=catalog, accept_unreviewed=accept_unreviewed
                    )
                )
    bad = [r for r in out.verification if r.verdict is Verdict.UNSAFE]
    for r in out.verification:
        if r.verdict is Verdict.UNKNOWN:
            # The rewrite stands, but the facts cannot prove it safe (for example no
            # per-build QEMU data): say which checks could not judge; exit code 3.
            out.unverified += [
                f"{r.src.name} -> {r.dst.name}: {f.id}: {f.message}"
                for f in r.findings
                if f.status is Status.UNKNOWN
            ]
    if bad:
        for r in bad:
            failing = [
                f"{f.id}: {f.message}"
                for f in r.findings
                if f.status in (Status.FAIL, Status.UNKNOWN)
            ]
            out.problems.append(
                f"{r.src.name} -> {r.dst.name} is still {r.verdict.value}: " + " | ".join(failing)
            )
        return out
    out.text = text
    return out


def _apply_to_spec(vm: VmSpec, out: PortableResult) -> VmSpec:
    """The decisions applied to a guest read from domain XML (machine type, CPU)."""
    import copy

    spec = copy.deepcopy(vm)
    for change in out.changes:
        if change.option == "machine":
            spec.machine.type = change.after.split(",")[0]
        elif change.option == "cpu":
            cpu = parse_cmdline(f"qemu-system-x86_64 -cpu {_quote(change.after)}", vm.source).cpu
            spec.cpu.model, spec.cpu.features = cpu.model, {**cpu.features}
            spec.cpu.props = {**vm.cpu.props, **cpu.props}
        else:
            out.problems.append(
                f"{vm.source}: {change.option} {change.after} ({change.reason}) must be set in "
                "the domain XML by hand (a <qemu:override> frontend property); migcheck "
                "rewrites only the machine type and <cpu> of a libvirt guest"
            )
    return spec


def _check_written(rewritten: VmSpec, hosts: Sequence[Facts], out: PortableResult) -> None:
    """Every property the rewrite writes must exist in each host's QEMU: a property QEMU does
    not know makes it refuse to start the guest. No data to tell: unverified, named."""
    cpu_written = [canonical(k) for k in rewritten.cpu.features if is_cpuid_feature(canonical(k))]
    for h in hosts:
        if cpu_written:
            known = host_features(h)
            if known is None:
                out.unverified.append(
                    f"{h.name}: no CPU expansion in the facts: cannot check that its QEMU "
                    f"knows {', '.join(cpu_written)}"
                )
            else:
                unknown = [f for f in cpu_written if f not in known]
                if unknown:
                    out.problems.append(
                        f"{h.name}: QEMU {h.qemu_version or '?'} has no CPU feature "
                        f"{', '.join(unknown)}: it would refuse -cpu {_cpu_text(rewritten)}"
                    )
        if not out.written_props:
            continue
        build = h.build
        if build is None:
            out.unverified.append(
                f"{h.name}: {h.build_missing}: cannot check that its QEMU accepts "
                + ", ".join(f"{d}.{p}" for d, p in out.written_props)
            )
            continue
        for driver, prop in out.written_props:
            props = build.device_props(driver)
            if props is None:
                out.unverified.append(
                    f"{h.name}: QEMU {build.version} did not list the properties of {driver}: "
                    f"cannot check {driver}.{prop}"
                )
            elif prop not in props:
                out.problems.append(
                    f"{h.name}: QEMU {build.version} has no property {prop} on {driver}: it "
                    f"would refuse {driver}.{prop}=off"
                )


def _cpu_text(spec: VmSpec) -> str:
    feats = [("+" if on else "-") + k for k, on in spec.cpu.features.items()]
    return ",".join([spec.cpu.model or "qemu64", *feats])


# QEMU CPU property -> libvirt feature name, where they differ beyond "-" vs "_" handling:
# libvirt's src/cpu_map/x86_features.xml, its <alias name=... source='qemu'/> entries.
_LIBVIRT_FEATURE = {
    "sse3": "pni",
    "pclmulqdq": "pclmuldq",
    "ds-cpl": "ds_cpl",
    "sse4-1": "sse4.1",
    "sse4.1": "sse4.1",
    "sse4-2": "sse4.2",
    "sse4.2": "sse4.2",
    "tsc-adjust": "tsc_adjust",
    "lahf-lm": "lahf_lm",
    "cmp-legacy": "cmp_legacy",
    "nodeid-msr": "nodeid_msr",
    "perfctr-core": "perfctr_core",
    "perfctr-nb": "perfctr_nb",
    "xd": "nx",
    "ffxsr": "fxsr_opt",
    "fxsr-opt": "fxsr_opt",
    "i64": "lm",
    "vmx-invept-single-context-noglobals": "vmx-invvpid-single-context-noglobals",
    "mbm-local": "mbm_local",
    "mbm-total": "mbm_total",
}


def libvirt_feature(name: str) -> str:
    qemu = name.replace("_", "-")
    return _LIBVIRT_FEATURE.get(qemu, qemu)


def to_libvirt(result: PortableResult) -> str:
    """The ``<cpu>`` element and the machine type for the domain XML of the rewritten guest:
    a named model with ``check='full'`` and every feature written, as libvirt's
    ``virsh hypervisor-cpu-baseline`` output is used."""
    from xml.sax.saxutils import escape

    def quoteattr(value: str) -> str:  # single quotes, as libvirt writes its XML
        return "'" + escape(value, {"'": "&apos;"}) + "'"

    spec = result.rewritten
    if spec is None:
        return ""
    lines = []
    if spec.machine.type:
        lines.append(
            f"<!-- in <os>: <type arch='x86_64' machine={quoteattr(spec.machine.type)}>"
            "hvm</type> -->"
        )
    model = spec.cpu.model or "qemu64"
    lines.append("<cpu mode='custom' match='exact' check='full'>")
    lines.append(f"  <model fallback='forbid'>{escape(model)}</model>")
    for name, on in spec.cpu.features.items():
        if not is_cpuid_feature(canonical(name)):
            continue  # enforce, migratable, hv-*: not <feature> elements
        policy = "require" if on else "disable"
        lines.append(f"  <feature policy='{policy}' name={quoteattr(libvirt_feature(name))}/>")
    lines.append("</cpu>")
    return "\n".join(lines) + "\n"
