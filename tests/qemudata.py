"""Facts built at test time from real QMP captures in ../shared/data (never committed).

libvirt's test suite recorded complete QMP conversations with real QEMU builds
(``qemucapabilitiesdata/caps_<ver>_<arch>.replies``, all x86_64 ones on an AMD Ryzen 9
3900X) and the QMP view of 28 real CPUs (``cputestdata/x86_64-cpuid-<CPU>.json``). These
helpers turn them into migcheck facts documents so checks are tested on real answers.
Sections QMP cannot tell (kernel, os, /proc/cpuinfo) are recorded as errors: honest gaps.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from conftest import SHARED_DATA

from migcheck.facts import SCHEMA, Facts, validate

ROOT = Path(__file__).resolve().parents[1]
SHARED = SHARED_DATA  # ../shared/data or $MIGCHECK_TEST_DATA
CAPS = SHARED / "libvirt" / "qemucapabilitiesdata"
CPUTEST = SHARED / "libvirt" / "cputestdata"
FIXTURES = ROOT / "fixtures"


def read_qmp_objects(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a libvirt QMP dump, in order (pretty-printed, blank-separated)."""
    text = path.read_text()
    dec = json.JSONDecoder()
    objs, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return objs
        obj, i = dec.raw_decode(text, i)
        objs.append(obj)


def _first_replies(path: Path) -> dict[str, Any]:
    """command name -> first answer (the KVM phase comes first in libvirt's dumps)."""
    objs = read_qmp_objects(path)
    answers: dict[str, Any] = {}
    pending: dict[str, tuple[str, dict[str, Any]]] = {}
    for obj in objs:
        if "execute" in obj:
            pending[obj.get("id", "")] = (obj["execute"], obj.get("arguments") or {})
        elif "return" in obj and obj.get("id") in pending:
            cmd, args = pending.pop(obj["id"])
            if cmd == "query-cpu-model-expansion":
                model = args.get("model", {})
                # Plain "host" expansion: what a default -cpu host guest sees.
                if model.get("name") != "host" or model.get("props"):
                    continue
            answers.setdefault(cmd, obj["return"])
    return answers


def _qemu_section(answers: dict[str, Any], binary: str) -> dict[str, Any]:
    v = answers["query-version"]["qemu"]
    sec: dict[str, Any] = {"binary": binary, "version": f"{v['major']}.{v['minor']}.{v['micro']}"}
    sec["package"] = answers["query-version"].get("package", "")
    sec["kvm"] = answers.get("query-kvm", {"present": True, "enabled": True})
    sec["machines"] = [
        {
            "name": m["name"],
            "alias": m.get("alias"),
            "is_default": bool(m.get("is-default", False)),
            "deprecated": bool(m.get("deprecated", False)),
            "cpu_max": m.get("cpu-max"),
            "default_cpu_type": m.get("default-cpu-type"),
        }
        for m in answers["query-machines"]
    ]
    sec["cpu_models"] = cpu_models_from_definitions(answers["query-cpu-definitions"])
    exp = answers.get("query-cpu-model-expansion")
    if exp:
        sec["host_cpu"] = {"model": "host", "props": exp["model"]["props"]}
    return sec


def cpu_models_from_definitions(defs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": c["name"],
            "alias_of": c.get("alias-of"),
            "unavailable_features": c.get("unavailable-features"),
            "migration_safe": c.get("migration-safe"),
            "static": c.get("static"),
            "deprecated": bool(c.get("deprecated", False)),
        }
        for c in defs
    ]


def _unrecorded(what: str) -> dict[str, str]:
    return {"error": f"not recorded in the libvirt QMP capture ({what})"}


def _facts_doc(name: str, qemu: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "host": {"name": name, "transport": "test-data"},
        "kernel": _unrecorded("kernel"),
        "os": _unrecorded("os-release"),
        "cpu": _unrecorded("/proc/cpuinfo"),
        "kvm": {
            "present": True,
            "usable": bool(qemu["kvm"].get("enabled")),
            "capabilities": {},
            "modules": {},
            "note": "from QMP query-kvm; KVM capabilities were not recorded",
        },
        "devices": {},
        "qemu": qemu,
    }


@cache
def _caps_doc(version: str) -> dict[str, Any]:
    path = CAPS / f"caps_{version}_x86_64.replies"
    answers = _first_replies(path)
    doc = _facts_doc(f"qemu-{version}", _qemu_section(answers, "/usr/bin/qemu-system-x86_64"))
    return validate(doc, str(path))


def caps_facts(version: str, name: str | None = None) -> Facts:
    """A QEMU ``version`` host from libvirt's capture (Ryzen 9 3900X, KVM)."""
    doc = copy.deepcopy(_caps_doc(version))
    if name:
        doc["host"]["name"] = name
    return Facts(doc, f"caps_{version}_x86_64.replies")


def caps_versions() -> list[str]:
    return sorted(
        (p.name.split("_")[1] for p in CAPS.glob("caps_*_x86_64.replies")),
        key=lambda v: tuple(int(x) for x in v.split(".")),
    )


def cputest_facts(cpu: str, qemu_version: str = "9.1.0") -> Facts:
    """A host with the real CPU ``cpu`` (its QMP host expansion and model availability)
    and the machine types of QEMU ``qemu_version``. The CPU dumps carry no QEMU version,
    so pairing them with one QEMU's machine list is this helper's choice, stated here."""
    objs = {
        o.get("id"): o["return"] for o in read_qmp_objects(CPUTEST / f"x86_64-cpuid-{cpu}.json")
    }
    doc = copy.deepcopy(_caps_doc(qemu_version))
    doc["host"]["name"] = cpu
    if "definitions" in objs:
        doc["qemu"]["cpu_models"] = cpu_models_from_definitions(objs["definitions"])
    else:  # some dumps hold only the host expansion: model availability is unknown
        del doc["qemu"]["cpu_models"]
    doc["qemu"]["host_cpu"] = {"model": "host", "props": objs["model-expansion"]["model"]["props"]}
    return Facts(validate(doc, cpu), f"x86_64-cpuid-{cpu}.json")


def fixture_facts(name: str) -> Facts:
    from migcheck.facts import load_facts

    return load_facts(FIXTURES / "hosts" / name)


def with_changes(facts: Facts, **sections: Any) -> Facts:
    """A copy of ``facts`` with whole sections replaced (for missing-data cases)."""
    doc = copy.deepcopy(dict(facts.doc))
    doc.update(sections)
    return Facts(doc, facts.origin, facts.base_dir)
