"""Conformance: migcheck's reading of real QEMU answers against libvirt's reading of the same.

libvirt's test suite holds, for the same QEMU builds and the same AMD Ryzen 9 3900X host,
both the raw QMP conversation (``caps_<ver>_x86_64.replies``, which ``caps_facts`` turns
into migcheck facts) and what libvirt derived from it: its capabilities cache
(``caps_<ver>_x86_64.xml``) and the expected ``virsh domcapabilities``
(``domaincapsdata/qemu_<ver>-q35.x86_64.xml``). Where migcheck and libvirt answer the same
question (is this CPU model usable here, what blocks it, which machine is ``q35``), they
must agree. Every known difference is modelled below with the reason and the data that
shows it; anything else fails the test.

Counts are printed (``pytest -s``) so a run shows how much was compared.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from conftest import require
from qemudata import CAPS, CPUTEST, SHARED, caps_facts, cputest_facts, read_qmp_objects

from migcheck.checks.base import Status
from migcheck.checks.cpu import is_cpuid_feature
from migcheck.cmdline import parse_cmdline
from migcheck.cpufeatures import canonical
from migcheck.devicegraph import canonical_driver
from migcheck.facts import Facts
from migcheck.hostinfo import usable_cpu_models
from migcheck.pair import check_pair

DOMCAPS = SHARED / "libvirt" / "domaincapsdata"
CPU_MAP = SHARED / "libvirt" / "cpu_map"
MACHINES_TSV = SHARED / "derived" / "qemu-machine-types-by-version.tsv"
ARGS = SHARED / "libvirt" / "qemuxml2argvdata"

pytestmark = pytest.mark.shared_data

VERSIONED = re.compile(r"-v\d+$")
NON_MODELS = {"host", "max", "base"}  # QEMU CPU types that are not named models


def summary(title: str, counts: Counter[str]) -> None:
    print(f"\n[conformance] {title}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


def by_id(report, check_id: str):
    found = [f for f in report.findings if f.id == check_id]
    assert len(found) == 1, f"expected one {check_id} finding, got {found}"
    return found[0]


def vm(cpu: str):
    return parse_cmdline(f"-machine pc-q35-9.1 -accel kvm -cpu {cpu}", "conformance.cmdline")


# --------------------------------------------------------------------------- libvirt data


@dataclass(frozen=True)
class CpuMap:
    """libvirt 10.7.0's src/cpu_map: x86 model names (index.xml order), vendors, features."""

    models: tuple[str, ...]  # in index.xml order: oldest to newest within each vendor
    vendor_of: dict[str, str]  # model -> libvirt vendor name ("Intel", "AMD", "Hygon")
    vendor_name: dict[str, str]  # CPUID vendor string -> libvirt vendor name
    features: dict[str, str | None]  # libvirt feature name -> migratable attribute
    qemu_alias: dict[str, str]  # QEMU spelling -> libvirt feature name (source='qemu')


@cache
def cpu_map() -> CpuMap:
    index = ET.parse(CPU_MAP / "index.xml").getroot().find("./arch[@name='x86']")
    assert index is not None
    models: list[str] = []
    vendor_of: dict[str, str] = {}
    for inc in index.findall("include"):
        fname = inc.get("filename", "")
        if fname in ("x86_vendors.xml", "x86_features.xml"):
            continue
        model = ET.parse(CPU_MAP / fname).getroot().find("model")
        assert model is not None, fname
        models.append(model.get("name", ""))
        vendor = model.find("vendor")
        if vendor is not None:
            vendor_of[models[-1]] = vendor.get("name", "")
    vendors = ET.parse(CPU_MAP / "x86_vendors.xml").getroot()
    features: dict[str, str | None] = {}
    qemu_alias: dict[str, str] = {}
    for feat in ET.parse(CPU_MAP / "x86_features.xml").getroot().findall("feature"):
        name = feat.get("name", "")
        features[name] = feat.get("migratable")
        for alias in feat.findall("alias"):
            if alias.get("source") == "qemu":
                qemu_alias[alias.get("name", "")] = name
    return CpuMap(
        tuple(models),
        vendor_of,
        {v.get("string", ""): v.get("name", "") for v in vendors.findall("vendor")},
        features,
        qemu_alias,
    )


def to_libvirt(feature: str) -> str | None:
    """QEMU feature spelling -> libvirt's name (x86_features.xml), None when libvirt lacks it."""
    cmap = cpu_map()
    if feature in cmap.features:
        return feature
    return cmap.qemu_alias.get(feature)


@dataclass(frozen=True)
class DomCaps:
    domain: str | None
    models: dict[str, str]  # custom mode: model -> usable ("yes", "no", "unknown")
    blockers: dict[str, set[str]]  # <blockers model=...> (libvirt spelling); may be empty


def read_domcaps(path: Path) -> DomCaps:
    root = ET.parse(path).getroot()
    custom = root.find("./cpu/mode[@name='custom']")
    assert custom is not None, f"{path.name}: no custom CPU mode"
    return DomCaps(
        root.findtext("domain"),
        {m.text or "": m.get("usable", "unknown") for m in custom.findall("model")},
        {
            b.get("model", ""): {f.get("name", "") for f in b.findall("feature")}
            for b in custom.findall("blockers")
        },
    )


def caps_xml_cpus(version: str, accel: str) -> dict[str, tuple[str, list[str]]]:
    """libvirt's own parse of the same replies: name -> (usable, blockers), one phase."""
    root = ET.parse(CAPS / f"caps_{version}_x86_64.xml").getroot()
    return {
        c.get("name", ""): (c.get("usable", "unknown"), [b.get("name", "") for b in c])
        for c in root.findall(f"cpu[@type='{accel}']")
    }


def caps_xml_machines(version: str) -> dict[str, dict[str, str]]:
    root = ET.parse(CAPS / f"caps_{version}_x86_64.xml").getroot()
    return {m.get("name", ""): dict(m.attrib) for m in root.findall("machine[@type='kvm']")}


def domcaps_files() -> list[tuple[str, Path]]:
    files = sorted(DOMCAPS.glob("qemu_*-q35.x86_64.xml"))
    return [(p.name.removeprefix("qemu_").removesuffix("-q35.x86_64.xml"), p) for p in files]


def require_domcaps() -> list[tuple[str, Path]]:
    require(DOMCAPS.is_dir() and CAPS.is_dir(), f"libvirt capability data not found in {SHARED}")
    require(CPU_MAP.is_dir(), f"libvirt cpu_map not found at {CPU_MAP}")
    files = domcaps_files()
    require(bool(files), f"no qemu_*-q35.x86_64.xml under {DOMCAPS}")
    missing = [v for v, _ in files if not (CAPS / f"caps_{v}_x86_64.replies").is_file()]
    require(not missing, f"no caps_<ver>_x86_64.replies for {missing}")
    return files


# --------------------------------------------------------------------------- 1. CPU models

# Why libvirt's domcapabilities does not list a model that QEMU's query-cpu-definitions
# reports. libvirt lists a QEMU model only when its own cpu_map has a definition of that
# name: for all nine captures the listed set is exactly QEMU's models intersected with the
# x86 models of cpu_map/index.xml (asserted below), so each reason is read off that file.
UNLISTED_REASONS = {
    "not a named model": "host, max and base are CPU types, not models; migcheck's "
    "usable_cpu_models skips them too (hostinfo._NON_MODELS)",
    "versioned name": "QEMU 4.1+ model versions (Name-vN, e.g. EPYC-Rome-v1): libvirt "
    "10.7.0's cpu_map has no x86_<Name>-vN.xml, so domcaps lists only the unversioned "
    "aliases (their usability equals the version they alias, asserted below)",
    "model unknown to libvirt": "an unversioned QEMU model with no cpu_map file in libvirt "
    "10.7.0 (Denverton, KnightsMill, and SierraForest from QEMU 9.1)",
}


def why_unlisted(name: str) -> str | None:
    if name in NON_MODELS:
        return "not a named model"
    if name in cpu_map().models:
        return None  # libvirt knows it: it should have been listed
    if VERSIONED.search(name):
        return "versioned name"
    return "model unknown to libvirt"


def test_usable_cpu_models_match_libvirt_domcaps() -> None:
    files = require_domcaps()
    counts: Counter[str] = Counter(files=len(files))
    problems: list[str] = []
    for version, path in files:
        dom = read_domcaps(path)
        # domcaps here are for KVM; caps_facts reads the KVM phase (the first in the dump).
        if dom.domain != "kvm":
            problems.append(f"{path.name}: domain {dom.domain!r}, expected the KVM phase")
        facts = caps_facts(version)
        result = usable_cpu_models(facts)
        assert result is not None, version
        usable, blocked = result
        ours = {n: "yes" for n in usable} | {n: "no" for n in blocked}
        known = set(facts.cpu_models or {})
        for name, state in dom.models.items():
            counts["models compared"] += 1
            mine = ours.get(name, "unknown")
            if name not in known:
                problems.append(f"{version}: libvirt lists {name}, unknown to migcheck's facts")
            elif mine != state:
                problems.append(f"{version}: {name} usable={state} in libvirt, {mine} in migcheck")
            else:
                counts[f"agree usable={state}"] += 1
        listed_expected = known & set(cpu_map().models)
        if set(dom.models) != listed_expected:
            problems.append(
                f"{version}: libvirt lists {sorted(set(dom.models) ^ listed_expected)} "
                "against QEMU models & cpu_map"
            )
        for name in sorted(known - set(dom.models)):
            reason = why_unlisted(name)
            if reason is None:
                problems.append(f"{version}: libvirt omits {name} although cpu_map defines it")
            else:
                counts[f"explained: {reason}"] += 1
        # An alias (Westmere-IBRS -> Westmere-v2) is exactly as usable as its target, which
        # is why comparing libvirt's unversioned names also covers the versioned models.
        for name, model in (facts.cpu_models or {}).items():
            target = model.get("alias_of")
            if target and ours.get(name) != ours.get(target):
                problems.append(f"{version}: alias {name} and {target} differ in usability")
    summary("usable CPU models vs domcaps", counts)
    assert not problems, "\n".join(problems[:30])
    assert counts["files"] >= 9 and counts["models compared"] >= 450, counts


def test_cpu_model_blockers_match_libvirt() -> None:
    """Blocked models and their blockers, against libvirt's parse of the same replies.

    The domcaps of libvirt 10.7.0 carry no ``<blockers>`` element (no file here has one),
    so the reference is libvirt's capabilities cache of the same replies, which keeps
    QEMU's ``unavailable-features`` per model as ``<blocker name=...>`` in QEMU spelling.
    Should domcaps with ``<blockers>`` (libvirt spelling) appear, they are compared too.
    """
    files = require_domcaps()
    counts: Counter[str] = Counter()
    problems: list[str] = []
    cmap = cpu_map()
    for version, path in files:
        dom = read_domcaps(path)
        usable, blocked = usable_cpu_models(caps_facts(version)) or ([], {})
        kvm = caps_xml_cpus(version, "kvm")
        tcg = caps_xml_cpus(version, "tcg")
        for name in usable:
            if kvm.get(name, ("", []))[0] != "yes":
                problems.append(f"{version}: {name} usable in migcheck, {kvm.get(name)} in libvirt")
        for name, features in blocked.items():
            counts["blocked models compared"] += 1
            state, theirs = kvm.get(name, ("missing", []))
            if state != "no" or set(theirs) != set(features):
                problems.append(f"{version}: {name} blockers {features} vs libvirt {theirs}")
                continue
            counts["blocker sets agree"] += 1
            for feat in features:
                counts["blocker features compared"] += 1
                spelled = to_libvirt(feat)
                if spelled is None:
                    # libvirt could not name it in domcaps <blockers>; none occur here.
                    counts["blocker unknown to libvirt cpu_map"] += 1
                elif spelled != feat:
                    counts["blocker respelled for libvirt"] += 1
                elif cmap.features.get(spelled) == "no":
                    # e.g. xsaves: libvirt's migratable='no' marks do not remove blockers.
                    counts["blocker marked migratable='no' by libvirt"] += 1
            if name in dom.blockers:
                spelled_set = {to_libvirt(f) or f for f in features}
                counts["domcaps <blockers> compared"] += 1
                if spelled_set != dom.blockers[name]:
                    problems.append(f"{version}: {name} {spelled_set} vs domcaps {dom.blockers}")
        counts["domcaps files with <blockers>"] += bool(dom.blockers)
        # The phase matters: under TCG other models are usable (n270, coreduo...), so an
        # agreement above means migcheck really read the KVM phase.
        counts["models whose TCG usability differs"] += sum(
            1 for n, (u, _) in kvm.items() if n not in NON_MODELS and tcg.get(n, ("", []))[0] != u
        )
    summary("CPU model blockers vs libvirt caps cache", counts)
    assert not problems, "\n".join(problems[:30])
    assert counts["blocked models compared"] >= 800, counts
    assert counts["models whose TCG usability differs"] > 0, counts


# Pairs (libvirt name, alias) from x86_features.xml that migcheck's canonical() does not fold
# into one feature, and why no folding is needed: in each pair at most one spelling is a QEMU
# property in any capture (checked below), and migcheck compares QEMU property names only.
EXPLAINED_UNFOLDED_ALIASES = {
    # source='linux': /proc/cpuinfo's name for the bit. Neither "cmt" nor "cqm" occurs in any
    # QEMU capture here (caps replies 6.2..9.1, cputest dumps).
    ("cmt", "cqm"): "libvirt name with a Linux alias; not QEMU spellings",
    # MSR 0x48c EDX bit 11 (IA32_VMX_EPT_VPID_CAP bit 43) is an INVVPID capability; libvirt
    # uses the correct name and lists QEMU's misnomer as the alias. Every QEMU here
    # (caps_6.2.0..9.1.0 replies, the Cooperlake/Xeon-Platinum-9242/EPYC-7502/Ryzen-9-3900X
    # dumps) spells it only "vmx-invept-single-context-noglobals".
    (
        "vmx-invvpid-single-context-noglobals",
        "vmx-invept-single-context-noglobals",
    ): "libvirt's corrected name for QEMU's single spelling",
}


@cache
def qemu_feature_names() -> frozenset[str]:
    """Every CPU property name QEMU used in the captures: host expansions and blockers."""
    names: set[str] = set()
    facts = [caps_facts(p.name.split("_")[1]) for p in CAPS.glob("caps_*_x86_64.replies")]
    for path in CPUTEST.glob("x86_64-cpuid-*.json"):
        facts.append(cputest_facts(path.name.removeprefix("x86_64-cpuid-").removesuffix(".json")))
    for f in facts:
        names.update((f.host_cpu or {}).get("props", {}))
        for model in (f.cpu_models or {}).values():
            names.update(model.get("unavailable_features") or [])
    return frozenset(names)


def test_feature_spellings_agree_with_libvirt_aliases() -> None:
    """migcheck folds QEMU's spellings of one bit as libvirt's feature map does."""
    require(CPU_MAP.is_dir(), f"libvirt cpu_map not found at {CPU_MAP}")
    require(CAPS.is_dir() and CPUTEST.is_dir(), f"real QMP captures not found under {SHARED}")
    counts: Counter[str] = Counter()
    problems: list[str] = []
    seen = qemu_feature_names()
    for path in [CPU_MAP / "x86_features.xml", CPU_MAP / "upstream" / "x86_features.xml"]:
        if not path.is_file():
            continue
        where = path.relative_to(CPU_MAP)
        owner: dict[str, str] = {}
        for feat in ET.parse(path).getroot().findall("feature"):
            name = feat.get("name", "")
            counts["features"] += 1
            # Two different libvirt features must not become one migcheck feature.
            if canonical(name) in owner:
                problems.append(f"{where}: {owner[canonical(name)]} and {name} merged")
            owner[canonical(name)] = name
            for alias in feat.findall("alias"):
                pair = (name, alias.get("name", ""))
                counts["aliases"] += 1
                if canonical(pair[0]) == canonical(pair[1]):
                    counts["aliases folded by migcheck"] += 1
                elif pair in EXPLAINED_UNFOLDED_ALIASES and not set(pair) <= seen:
                    counts["explained: " + EXPLAINED_UNFOLDED_ALIASES[pair]] += 1
                else:
                    problems.append(f"{where}: migcheck does not fold {pair[1]} into {pair[0]}")
    summary("feature spellings vs libvirt aliases", counts)
    assert not problems, "\n".join(problems)
    assert counts["aliases"] >= 20, counts


# --------------------------------------------------------------------------- 2. machines


def test_machine_types_match_query_machines_and_libvirt() -> None:
    require(MACHINES_TSV.is_file(), f"derived machine table not found at {MACHINES_TSV}")
    require(CAPS.is_dir(), f"libvirt capability data not found at {CAPS}")
    with MACHINES_TSV.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["arch"] == "x86_64"]
    versions = sorted({r["qemu_version"] for r in rows})
    require(bool(versions), f"no x86_64 rows in {MACHINES_TSV}")
    counts: Counter[str] = Counter(versions=len(versions))
    problems: list[str] = []
    for version in versions:
        require(
            (CAPS / f"caps_{version}_x86_64.replies").is_file(), f"no replies for QEMU {version}"
        )
        facts = caps_facts(version)
        machines = facts.machines or {}
        # caps_facts reads the KVM phase; the table has a row per phase.
        kvm = {
            r["machine"]: r for r in rows if r["qemu_version"] == version and r["accel"] == "kvm"
        }
        if set(machines) != set(kvm):
            problems.append(f"{version}: machines differ: {sorted(set(machines) ^ set(kvm))}")
        for name, row in kvm.items():
            counts["machines compared"] += 1
            mine = machines.get(name)
            expected = (row["alias"] or None, row["is_default"] == "true")
            if mine is None:
                continue
            if (mine.get("alias"), mine.get("is_default")) != expected:
                problems.append(f"{version} {name}: alias/default {mine} vs {row}")
            if mine.get("deprecated") != (row["deprecated"] == "true"):
                problems.append(f"{version} {name}: deprecated {mine.get('deprecated')} vs {row}")
            if facts.resolve_machine(name) != name:
                problems.append(f"{version}: resolve_machine({name!r}) is not {name!r}")
            counts["deprecated"] += row["deprecated"] == "true"
        aliases = {r["alias"]: n for n, r in kvm.items() if r["alias"]}
        defaults = [n for n, r in kvm.items() if r["is_default"] == "true"]
        for alias in ("q35", "pc"):
            counts["aliases resolved"] += 1
            if facts.resolve_machine(alias) != aliases.get(alias) or not aliases.get(alias):
                problems.append(f"{version}: {alias} -> {facts.resolve_machine(alias)}, {aliases}")
            if not facts.is_machine_alias(alias):
                problems.append(f"{version}: {alias} not seen as an alias")
        if len(defaults) != 1 or facts.resolve_machine(None) != defaults[0]:
            problems.append(f"{version}: default {facts.resolve_machine(None)} vs {defaults}")
        # libvirt's own parse: the same list minus "none", which libvirt skips on purpose
        # (qemu_capabilities.c virQEMUCapsProbeQMPMachineTypes: STREQ(name, "none")).
        theirs = caps_xml_machines(version)
        if set(theirs) != set(machines) - {"none"}:
            problems.append(f"{version}: libvirt {sorted(set(theirs) ^ set(machines))}")
        counts["explained: libvirt skips 'none'"] += "none" in machines and "none" not in theirs
        for name, attrs in theirs.items():
            mine = machines.get(name, {})
            if (attrs.get("alias"), attrs.get("default") == "yes") != (
                mine.get("alias"),
                mine.get("is_default"),
            ) or (attrs.get("deprecated") == "yes") != mine.get("deprecated"):
                problems.append(f"{version} {name}: libvirt {attrs} vs {mine}")
            else:
                counts["agree with libvirt caps cache"] += 1
    summary("machine types", counts)
    assert not problems, "\n".join(problems[:30])
    assert counts["machines compared"] >= 500, counts


# --------------------------------------------------------------------------- 3. real CPUs


@cache
def cputest_cpus() -> tuple[str, ...]:
    """CPUs whose dump has query-cpu-definitions (model availability), not only the host."""
    out = []
    for path in sorted(CPUTEST.glob("x86_64-cpuid-*.json")):
        if any(o.get("id") == "definitions" for o in read_qmp_objects(path)):
            out.append(path.name.removeprefix("x86_64-cpuid-").removesuffix(".json"))
    return tuple(out)


def require_cputest() -> tuple[str, ...]:
    require(CPUTEST.is_dir() and CAPS.is_dir(), f"real QMP captures not found under {SHARED}")
    cpus = cputest_cpus()
    require(len(cpus) >= 2, f"fewer than two CPU dumps with definitions under {CPUTEST}")
    return cpus


def host_features(facts: Facts) -> set[str]:
    """The oracle's view: boolean-true CPUID features of the host expansion, canonical names."""
    props = (facts.host_cpu or {}).get("props", {})
    return {canonical(n) for n, v in props.items() if v is True and is_cpuid_feature(canonical(n))}


def expected_passthrough(a: Facts, b: Facts) -> tuple[Status, object]:
    pa, pb = a.host_cpu["props"], b.host_cpu["props"]  # type: ignore[index]
    if pa.get("vendor") != pb.get("vendor"):
        return Status.FAIL, pa.get("vendor")
    lost = host_features(a) - host_features(b)
    if lost:
        return Status.FAIL, sorted(lost)
    ident = any(pa.get(k) != pb.get(k) for k in ("family", "model", "stepping", "model-id"))
    # A gained feature or another identity changes the guest's CPUID under it: unsafe.
    if host_features(b) - host_features(a) or ident:
        return Status.FAIL, None
    return Status.PASS, None


def test_host_passthrough_verdicts_follow_cpu_features() -> None:
    cpus = require_cputest()
    facts = {c: cputest_facts(c) for c in cpus}
    counts: Counter[str] = Counter(cpus=len(cpus))
    problems: list[str] = []
    for a in cpus:
        for b in cpus:
            counts["ordered pairs"] += 1
            finding = by_id(check_pair(vm("host"), facts[a], facts[b]), "cpu.passthrough")
            status, detail = expected_passthrough(facts[a], facts[b])
            if finding.status is not status:
                problems.append(f"{a} -> {b}: {finding.status.name}, expected {status.name}")
            elif status is Status.FAIL and detail is not None and finding.source != detail:
                problems.append(f"{a} -> {b}: names {finding.source}, expected {detail}")
            else:
                counts[f"agree {status.name}"] += 1
                if a == b and status is not Status.PASS:
                    problems.append(f"{a} -> itself is not PASS")
    summary("-cpu host pairs", counts)
    assert not problems, "\n".join(problems[:30])
    assert counts["ordered pairs"] >= 17 * 17, counts


# Named models judged on every pair, one or more per generation and vendor.
REFERENCE_MODELS = (
    "Westmere",
    "Haswell-noTSX",
    "Skylake-Client",
    "Skylake-Server",
    "Cascadelake-Server",
    "Icelake-Server",
    "Opteron_G4",
    "EPYC",
    "EPYC-Rome",
    "Dhyana",
)


def newest_usable_model(facts: Facts) -> str | None:
    """The last model of the host's vendor, in libvirt's index.xml order, usable here."""
    cmap = cpu_map()
    vendor = cmap.vendor_name.get(str((facts.host_cpu or {})["props"].get("vendor")))
    models = facts.cpu_models or {}
    usable = [
        m
        for m in cmap.models
        if cmap.vendor_of.get(m) == vendor and models.get(m, {}).get("unavailable_features") == []
    ]
    return usable[-1] if usable else None


def libvirt_host_model(cpu: str) -> str | None:
    path = CPUTEST / f"x86_64-cpuid-{cpu}-host.xml"
    return ET.parse(path).getroot().findtext("model") if path.is_file() else None


def expected_model(a: Facts, b: Facts, name: str) -> Status:
    """cpu.model from each CPU's query-cpu-definitions alone."""
    ma, mb = a.cpu_models or {}, b.cpu_models or {}
    if name not in ma or name not in mb:
        return Status.FAIL
    ra, rb = ma[name].get("alias_of") or name, mb[name].get("alias_of") or name
    # QEMUs without model versions call "EPYC" what later ones call "EPYC-v1".
    if ra != rb and {ra, rb} != {name, f"{name}-v1"}:
        return Status.FAIL
    ua = {canonical(f) for f in ma[name].get("unavailable_features") or []}
    ub = {canonical(f) for f in mb[name].get("unavailable_features") or []}
    if ua != ub:
        return Status.FAIL
    return Status.WARN if ua else Status.PASS


def test_named_model_verdicts_follow_unavailable_features() -> None:
    cpus = require_cputest()
    facts = {c: cputest_facts(c) for c in cpus}
    counts: Counter[str] = Counter()
    problems: list[str] = []
    extra: dict[str, set[str]] = {}
    for a in cpus:
        extra[a] = set()
        newest = newest_usable_model(facts[a])
        if newest:
            extra[a].add(newest)
        host_model = libvirt_host_model(a)
        if host_model:
            extra[a].add(host_model)
            # libvirt names its host model from raw CPUID, then adjusts features; QEMU's
            # unavailable-features say what KVM can give. Two CPUs show the gap, both
            # consistent: EPYC-7601-32-Core-ibpb's EPYC-IBPB lacks rdtscp under KVM (its
            # -guest.xml disables rdtscp), and Xeon-Platinum-8268's Cascadelake-Server has
            # a blocker QEMU reports without a name ("", which libvirt cannot act on).
            unavailable = (facts[a].cpu_models or {}).get(host_model, {})
            if unavailable.get("unavailable_features"):
                counts["libvirt host model blocked under QEMU"] += 1
    for a in cpus:
        for b in cpus:
            for name in sorted(set(REFERENCE_MODELS) | extra[a]):
                counts["verdicts compared"] += 1
                finding = by_id(check_pair(vm(name), facts[a], facts[b]), "cpu.model")
                expected = expected_model(facts[a], facts[b], name)
                if finding.status is not expected:
                    problems.append(
                        f"{a} -> {b} -cpu {name}: {finding.status.name}, expected "
                        f"{expected.name}: {finding.message}"
                    )
                else:
                    counts[f"agree {expected.name}"] += 1
    summary("named CPU models on real CPU pairs", counts)
    assert not problems, "\n".join(problems[:30])
    assert counts["verdicts compared"] >= 17 * 17 * len(REFERENCE_MODELS), counts


def test_model_finding_with_unnamed_unavailable_feature() -> None:
    require_cputest()
    host = cputest_facts("Xeon-Platinum-8268")
    model = (host.cpu_models or {}).get("Cascadelake-Server", {})
    if model.get("unavailable_features") != [""]:
        pytest.fail("data no longer has QEMU's unnamed unavailable feature")
    finding = by_id(check_pair(vm("Cascadelake-Server"), host, host), "cpu.model")
    if finding.status is not Status.WARN:
        pytest.fail(f"expected WARN, got {finding.status.name}")
    assert "without  on" not in finding.message, finding.message
    assert not re.search(r",-(\s|,|$)", finding.fix or ""), finding.fix


# --------------------------------------------------------------------------- 4. .args


def read_args(path: Path) -> str:
    """libvirt keeps some .args as git symlinks, checked out as files naming the target."""
    text = path.read_text(encoding="utf-8")
    target = path.parent / text.strip()
    if "\n" not in text.strip() and text.strip().endswith(".args") and target.is_file():
        return target.read_text(encoding="utf-8")
    return text


def raw_device_drivers(text: str) -> list[str]:
    """Independent oracle: the driver of every ``-device`` line (JSON or keyval)."""
    drivers = []
    for value in re.findall(r"^-device (.*?)(?: \\)?$", text, re.MULTILINE):
        value = value.strip("'")
        found = re.search(r'"driver":"([^"]+)"', value) if value.startswith("{") else None
        drivers.append(found.group(1) if found else value.split(",")[0])
    return drivers


def test_libvirt_args_yield_known_machine_cpu_and_devices() -> None:
    """Light re-check of libvirt's real command lines against the newest real QEMU.

    tests/test_cmdline.py already compares the parsed machine/CPU with the raw text; here
    the device drivers are compared in order, and machine and CPU must exist in QEMU.
    """
    require(ARGS.is_dir(), f"libvirt test data not found at {ARGS}")
    require(MACHINES_TSV.is_file() and CAPS.is_dir(), "machine tables not found")
    paths = sorted(ARGS.glob("*.x86_64-latest.args"))
    require(len(paths) > 100, f"too few *.x86_64-latest.args under {ARGS}")
    with MACHINES_TSV.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["arch"] == "x86_64"]
    newest = max({r["qemu_version"] for r in rows}, key=lambda v: tuple(map(int, v.split("."))))
    deprecated_before = {r["machine"] for r in rows if r["deprecated"] == "true"}
    facts = caps_facts(newest)
    counts: Counter[str] = Counter(files=len(paths))
    problems: list[str] = []
    for path in paths:
        text = read_args(path)
        spec = parse_cmdline(text, path.name)
        # The -device lines only: the graph adds board and legacy-option devices too
        # (tests/test_device_graph.py checks those against real QEMU).
        drivers = [d.driver for d in spec.devices if d.origin == "-device"]
        if drivers != [canonical_driver(d) for d in raw_device_drivers(text)]:
            problems.append(f"{path.name}: devices {drivers} vs -device lines")
        counts["devices"] += len(drivers)
        machine = spec.machine.type
        if machine is None or facts.resolve_machine(machine) is not None:
            counts["machine known to QEMU " + newest] += 1
        elif machine in deprecated_before:
            # Deprecated by an older capture and gone from the newest: QEMU 9.1 removed
            # pc-i440fx-2.0..2.3 (deprecated in 8.2/9.0 per the derived table); libvirt's
            # argv test does not check the machine against the capabilities.
            counts["explained: machine removed after deprecation"] += 1
        else:
            problems.append(f"{path.name}: machine {machine} unknown to every captured QEMU")
        model = spec.cpu.model
        if model in (None, "host", "max") or facts.resolve_cpu_model(model) is not None:
            counts["cpu model known"] += 1
        else:
            problems.append(f"{path.name}: -cpu {model} unknown to QEMU {newest}")
    summary(".args files", counts)
    assert not problems, "\n".join(problems[:30])
