"""Host facts: the versioned JSON document one probe run produces, loaded and validated.

A facts document has a ``schema`` field and one object per section (``kernel``, ``os``,
``cpu``, ``kvm``, ``devices``, ``qemu``). A section that the probe could not gather is
``{"error": "..."}``; checks that need it report ``unknown``. The loader refuses foreign or
corrupt documents with an :class:`InputError` naming the file and what is wrong, because a
misread facts file must never turn into a ``safe`` verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migcheck.errors import InputError
from migcheck.textsafe import may_hold_control

if TYPE_CHECKING:
    from migcheck.build import BuildData

SCHEMA = "migcheck.facts/1"
SCHEMA_PREFIX = "migcheck.facts/"
SECTIONS = ("kernel", "os", "cpu", "kvm", "devices", "qemu")
MAX_FACTS_BYTES = 64 * 1024 * 1024
# Parsed JSON costs what its structure costs, not its size: 16 MiB of "[{},{},...]" is
# 5.6 M dicts, about 400 MB. Above STRUCTURE_CHECK_BYTES a document whose structure would
# cost more than STRUCTURE_COST_RATIO times its size (estimated from token counts, see
# structure_cost) is refused before parsing, so with the text itself a document costs at
# most about 4 times its size. Real facts are 100-200 KiB (and a probe output with its
# build data about 700 KiB), far below the threshold; 16 MiB of real-shaped CPU model
# lists would cost 5.3 times their size and is refused.
STRUCTURE_CHECK_BYTES = 1024 * 1024
STRUCTURE_COST_RATIO = 3.0

_VERSION_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})(?:\.(\d{1,6}))?(?!\d)")

# Plausibility limits. Real hosts report ~60-600 machine types, ~150-300 CPU models, ~100
# CPU flags, ~90 KVM capabilities and ~500 host CPU properties; a document far beyond that
# is not a hypervisor's answer, and absurd additions must not ride along into a verdict.
LIMITS = {
    "qemu.machines": 5000,
    "qemu.cpu_models": 5000,
    "unavailable_features": 2048,
    "qemu.host_cpu.props": 8192,
    "cpu.flags": 4096,
    "kvm.capabilities": 1024,
    "kvm.modules": 256,
    "text": 4096,  # any single string we read (kernel release, names, version)
}
MAX_CAP_VALUE = 2**31 - 1  # KVM_CHECK_EXTENSION returns an int


class DuplicateKey(ValueError):
    """A JSON object with one key twice: JSON keeps the last silently, so a tampered or
    corrupt document could hide a value behind another; such a document is refused."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return out


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``"7.2.22"`` -> ``(7, 2, 22)``; anything unparsable -> None."""
    m = _VERSION_RE.match(text or "")
    if not m:
        return None
    try:
        return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    except ValueError:  # more digits than int() accepts (sys.get_int_max_str_digits)
        return None


class FactsError(InputError):
    """A facts document that is not one migcheck can trust."""

    def __init__(self, origin: str, problem: str) -> None:
        super().__init__(f"{origin}: not usable migcheck host facts: {problem}")
        self.origin = origin
        self.problem = problem


# Each rule: dotted path inside a section -> expected JSON type(s). Only what checks read is
# validated strictly; other fields are carried along untouched.
_RULES: dict[str, list[tuple[str, type | tuple[type, ...]]]] = {
    "kernel": [("release", str), ("arch", str)],
    "os": [("id", str)],
    "cpu": [("vendor", str), ("flags", list)],
    "kvm": [("present", bool), ("usable", bool), ("capabilities", dict), ("modules", dict)],
    "devices": [],
    "qemu": [("binary", str)],
}


def _check_type(origin: str, where: str, value: Any, kind: type | tuple[type, ...]) -> None:
    # bool is an int in Python; facts must not let one stand for the other.
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, (int, float)))
    if not ok:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise FactsError(origin, f"{where} should be {names}, found {type(value).__name__}")


def _limit(origin: str, where: str, value: Any, limit_key: str) -> None:
    limit = LIMITS[limit_key]
    if isinstance(value, (list, dict, str)) and len(value) > limit:
        unit = "characters" if isinstance(value, str) else "entries"
        raise FactsError(
            origin, f"{where} has {len(value)} {unit}, more than any real host ({limit})"
        )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _plausible(doc: dict[str, Any], origin: str) -> None:
    # Runs before the type checks of the qemu/kvm sections: guard every type here.
    cpu = _dict(doc.get("cpu"))
    if isinstance(cpu.get("flags"), list):
        _limit(origin, "cpu.flags", cpu["flags"], "cpu.flags")
    kvm = _dict(doc.get("kvm"))
    for key in ("capabilities", "modules"):
        if isinstance(kvm.get(key), dict):
            _limit(origin, f"kvm.{key}", kvm[key], f"kvm.{key}")
    for name, value in _dict(kvm.get("capabilities")).items():
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_CAP_VALUE:
            raise FactsError(origin, f"kvm.capabilities.{name} = {value} is not a KVM answer")
    kernel = _dict(doc.get("kernel"))
    for key in ("release", "version"):
        if isinstance(kernel.get(key), str):
            _limit(origin, f"kernel.{key}", kernel[key], "text")
    qemu = _dict(doc.get("qemu"))
    for key in ("machines", "cpu_models"):
        if isinstance(qemu.get(key), list):
            _limit(origin, f"qemu.{key}", qemu[key], f"qemu.{key}")
    models = qemu.get("cpu_models")
    for i, model in enumerate(models if isinstance(models, list) else []):
        if isinstance(model, dict) and isinstance(model.get("unavailable_features"), list):
            where = f"qemu.cpu_models[{i}].unavailable_features"
            _limit(origin, where, model["unavailable_features"], "unavailable_features")
    host_cpu = qemu.get("host_cpu")
    if isinstance(host_cpu, dict) and isinstance(host_cpu.get("props"), dict):
        _limit(origin, "qemu.host_cpu.props", host_cpu["props"], "qemu.host_cpu.props")


def validate(doc: Any, origin: str) -> dict[str, Any]:
    """Check a parsed document; return it unchanged or raise :class:`FactsError`."""
    if not isinstance(doc, dict):
        raise FactsError(origin, f"top level should be a JSON object, found {type(doc).__name__}")
    schema = doc.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise FactsError(
            origin,
            f"no migcheck schema field (found {schema!r}); "
            "expected a file written by 'migcheck gather'",
        )
    if schema != SCHEMA:
        raise FactsError(
            origin, f"schema {schema!r} is not supported (this migcheck reads {SCHEMA})"
        )
    for name in SECTIONS:
        if name not in doc:
            raise FactsError(origin, f"section {name!r} is missing")
        sec = doc[name]
        _check_type(origin, name, sec, dict)
        if "error" in sec:
            _check_type(origin, f"{name}.error", sec["error"], str)
            continue
        for key, kind in _RULES[name]:
            if key not in sec:
                raise FactsError(origin, f"{name}.{key} is missing")
            _check_type(origin, f"{name}.{key}", sec[key], kind)
    _plausible(doc, origin)
    _validate_qemu(doc["qemu"], origin)
    _validate_kvm(doc["kvm"], origin)
    _validate_cpu_extra(doc["cpu"], origin)
    host = doc.get("host", {})
    _check_type(origin, "host", host, dict)
    if "name" in host:
        _check_type(origin, "host.name", host["name"], str)
    for meta in ("probe", "assumed"):
        if meta in doc:
            _check_type(origin, meta, doc[meta], dict)
    return doc


def _unique_names(origin: str, where: str, items: list[dict[str, Any]]) -> None:
    """A name listed twice cannot say which of its answers holds: refuse, never pick one."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item["name"] in seen:
            raise FactsError(origin, f"{where}[{i}].name {item['name']!r} is listed twice")
        seen.add(item["name"])


def _validate_list_of_named(origin: str, where: str, items: Any) -> None:
    _check_type(origin, where, items, list)
    for i, item in enumerate(items):
        _check_type(origin, f"{where}[{i}]", item, dict)
        _check_type(origin, f"{where}[{i}].name", item.get("name"), str)


def _validate_qemu(sec: dict[str, Any], origin: str) -> None:
    if "error" in sec:
        return
    # A QEMU section may be partial (QMP failed half way): what is there must be well formed.
    if "version" in sec:
        _check_type(origin, "qemu.version", sec["version"], str)
        if parse_version(sec["version"]) is None:
            shown = sec["version"][:40] + ("..." if len(sec["version"]) > 40 else "")
            raise FactsError(origin, f"qemu.version {shown!r} is not a version")
    if "machines" in sec:
        _validate_list_of_named(origin, "qemu.machines", sec["machines"])
        _unique_names(origin, "qemu.machines", sec["machines"])
        for i, machine in enumerate(sec["machines"]):
            if machine.get("alias") is not None:  # aliases key a mapping (hostinfo)
                _check_type(origin, f"qemu.machines[{i}].alias", machine["alias"], str)
    if "cpu_models" in sec:
        _validate_list_of_named(origin, "qemu.cpu_models", sec["cpu_models"])
        _unique_names(origin, "qemu.cpu_models", sec["cpu_models"])
        for i, model in enumerate(sec["cpu_models"]):
            unavailable = model.get("unavailable_features")
            if "unavailable_features" in model:  # absent: QEMU could not say (unknown)
                where = f"qemu.cpu_models[{i}].unavailable_features"
                _check_type(origin, where, unavailable, list)
                for j, feature in enumerate(unavailable):  # checks sort and canonicalise them
                    _check_type(origin, f"{where}[{j}]", feature, str)
    if "kvm" in sec:
        _check_type(origin, "qemu.kvm", sec["kvm"], dict)
    if "build" in sec:
        _validate_build_ref(sec["build"], origin)
    host_cpu = sec.get("host_cpu")
    if isinstance(host_cpu, dict) and "error" not in host_cpu:
        _check_type(origin, "qemu.host_cpu.props", host_cpu.get("props"), dict)
        _check_type(origin, "qemu.host_cpu.model", host_cpu.get("model"), str)
    if "tcg" in sec:
        _validate_tcg(sec["tcg"], origin)


def _validate_tcg(tcg: Any, origin: str) -> None:
    """``qemu.tcg``: QEMU's CPU answers under TCG (a second probe run), or an error."""
    _check_type(origin, "qemu.tcg", tcg, dict)
    if "error" in tcg:
        _check_type(origin, "qemu.tcg.error", tcg["error"], str)
        return
    models = tcg.get("cpu_models")
    if models is not None:
        _limit(origin, "qemu.tcg.cpu_models", models, "qemu.cpu_models")
        _validate_list_of_named(origin, "qemu.tcg.cpu_models", models)
        seen: set[str] = set()
        for i, model in enumerate(models):
            where = f"qemu.tcg.cpu_models[{i}]"
            if model["name"] in seen:  # a model listed twice cannot say which answer holds
                raise FactsError(origin, f"{where}.name {model['name']!r} is listed twice")
            seen.add(model["name"])
            unavailable = model.get("unavailable_features")
            if unavailable is not None:
                _check_type(origin, f"{where}.unavailable_features", unavailable, list)
                _limit(origin, f"{where}.unavailable_features", unavailable, "unavailable_features")
                for j, feature in enumerate(unavailable):
                    _check_type(origin, f"{where}.unavailable_features[{j}]", feature, str)
            if model.get("alias_of") is not None:
                _check_type(origin, f"{where}.alias_of", model["alias_of"], str)
    max_cpu = tcg.get("max_cpu")
    if isinstance(max_cpu, dict) and "error" not in max_cpu:
        _check_type(origin, "qemu.tcg.max_cpu.props", max_cpu.get("props"), dict)
        _limit(origin, "qemu.tcg.max_cpu.props", max_cpu["props"], "qemu.host_cpu.props")
        _check_type(origin, "qemu.tcg.max_cpu.model", max_cpu.get("model"), str)
    elif max_cpu is not None:
        _check_type(origin, "qemu.tcg.max_cpu", max_cpu, dict)


def _validate_build_ref(build: Any, origin: str) -> None:
    """``qemu.build``: the identity of the QEMU build, whose data lives in qemu-builds/."""
    from migcheck.build import KEY_RE

    _check_type(origin, "qemu.build", build, dict)
    if "error" in build:
        _check_type(origin, "qemu.build.error", build["error"], str)
        return
    _check_type(origin, "qemu.build.key", build.get("key"), str)
    if not KEY_RE.match(build["key"]):
        raise FactsError(origin, f"qemu.build.key {build['key'][:40]!r} is not a build key")
    _check_type(origin, "qemu.build.version", build.get("version"), str)
    binary = build.get("binary")
    _check_type(origin, "qemu.build.binary", binary, dict)
    _check_type(origin, "qemu.build.binary.sha256", binary.get("sha256"), str)
    _check_type(origin, "qemu.build.binary.size", binary.get("size"), int)
    _check_type(origin, "qemu.build.modules", build.get("modules"), dict)


def _validate_kvm(sec: dict[str, Any], origin: str) -> None:
    if "error" in sec:
        return
    for name, value in sec["capabilities"].items():
        _check_type(origin, f"kvm.capabilities.{name}", value, int)
    if "vm" in sec:
        _validate_kvm_vm(sec["vm"], origin)


def _validate_kvm_vm(vm: Any, origin: str) -> None:
    """``kvm.vm``: what a scratch VM answered (the TSC rate, KVM's Hyper-V CPUID leaves)."""
    _check_type(origin, "kvm.vm", vm, dict)
    if "error" in vm:
        _check_type(origin, "kvm.vm.error", vm["error"], str)
        return
    if "tsc_khz" in vm:
        _check_type(origin, "kvm.vm.tsc_khz", vm["tsc_khz"], int)
        if not 0 < vm["tsc_khz"] <= MAX_CAP_VALUE:
            raise FactsError(origin, f"kvm.vm.tsc_khz = {vm['tsc_khz']} is not a TSC rate")
    if "hv_cpuid" in vm:
        leaves = vm["hv_cpuid"]
        _check_type(origin, "kvm.vm.hv_cpuid", leaves, list)
        if len(leaves) > 64:
            raise FactsError(origin, f"kvm.vm.hv_cpuid has {len(leaves)} leaves, more than 64")
        for i, leaf in enumerate(leaves):
            _check_type(origin, f"kvm.vm.hv_cpuid[{i}]", leaf, list)
            if len(leaf) != 6:
                raise FactsError(origin, f"kvm.vm.hv_cpuid[{i}] should be 6 registers")
            for value in leaf:
                _check_type(origin, f"kvm.vm.hv_cpuid[{i}]", value, int)
                if not 0 <= value < 2**32:
                    raise FactsError(origin, f"kvm.vm.hv_cpuid[{i}] holds {value}, not a u32")


def _validate_cpu_extra(sec: dict[str, Any], origin: str) -> None:
    if "error" in sec or sec.get("phys_bits") is None:
        return
    _check_type(origin, "cpu.phys_bits", sec["phys_bits"], int)
    if not 1 <= sec["phys_bits"] <= 64:
        raise FactsError(origin, f"cpu.phys_bits = {sec['phys_bits']} is not an address width")


def load_facts(path: str | Path) -> Facts:
    """Load and validate a saved facts file."""
    origin = str(path)
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FACTS_BYTES:
            raise FactsError(origin, f"file is {size} bytes, more than {MAX_FACTS_BYTES}")
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{origin}: cannot read facts file: {exc.strerror or exc}") from None
    check_structure(raw, origin)
    scrub = may_hold_control(raw)
    try:
        text = raw.decode("utf-8")
        del raw  # the text alone while parsing: one copy of the document, not two
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        del text
    except DuplicateKey as exc:
        raise FactsError(origin, f"key {exc.args[0]!r} appears twice in one object") from None
    except UnicodeDecodeError as exc:
        raise FactsError(origin, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise FactsError(
            origin, f"not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise FactsError(origin, "JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than int() accepts
        raise FactsError(origin, f"not valid JSON ({str(exc).split(':')[0]})") from None
    doc = _split_build(doc, origin)
    if scrub:
        doc = _scrubbed(doc, origin)
    return Facts(validate(doc, origin), origin, str(p.parent))


def _split_build(doc: Any, origin: str) -> Any:
    """A raw probe output carries the build schema: move it to the build store."""
    if isinstance(doc, dict) and "build_schema" in doc:
        from migcheck.build import split_probe_output

        return split_probe_output(doc, origin)
    return doc


def structure_cost(text: str | bytes) -> int:
    """An estimate of what parsing ``text`` costs in CPython objects: a dict per ``{``, a
    list per ``[``, a pointer and some per ``,``, a string object per pair of quotes (an
    overestimate for strings that contain quotes or braces, which only refuses earlier)."""
    if isinstance(text, str):
        counts = [text.count(c) for c in ("{", "[", ",", '"')]
    else:
        counts = [text.count(c) for c in (b"{", b"[", b",", b'"')]
    return 64 * counts[0] + 56 * counts[1] + 16 * counts[2] + 36 * counts[3]


def check_structure(text: str | bytes, origin: str) -> None:
    """Refuse, before parsing, a large document whose structure would cost more memory than
    STRUCTURE_COST_RATIO times its size (a hostile host's or file's memory bomb)."""
    size = len(text)
    if size <= STRUCTURE_CHECK_BYTES:
        return
    cost = structure_cost(text)
    if cost > STRUCTURE_COST_RATIO * size:
        raise FactsError(
            origin,
            f"{size} bytes whose structure would take about {cost // (1024 * 1024)} MiB "
            f"to parse (more than {STRUCTURE_COST_RATIO:g} times its size); not a facts "
            "document",
        )


def _scrubbed(doc: Any, origin: str) -> Any:
    from migcheck.textsafe import scrub_tree

    try:
        return scrub_tree(doc)
    except RecursionError:
        raise FactsError(origin, "JSON nested too deeply") from None


def facts_from_probe_output(output: str, origin: str) -> Facts:
    """Parse what the probe printed; garbage or truncation is the host's fault (exit 3)."""
    from migcheck.errors import HostError

    text = output  # not .strip(): that would copy a 16 MiB output; json skips blanks
    if not text or text.isspace():
        raise HostError(origin, "the probe printed nothing")
    try:
        check_structure(text, origin)
    except FactsError as exc:
        raise HostError(origin, f"the probe's output is not usable: {exc.problem}") from None
    scrub = may_hold_control(text)  # else the scrub walk (~10 ms) would change nothing
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except DuplicateKey as exc:
        raise HostError(origin, f"the probe's output repeats the key {exc.args[0]!r}") from None
    except (ValueError, RecursionError) as exc:  # ValueError: e.g. an overlong integer
        if isinstance(exc, json.JSONDecodeError):
            detail = exc.msg
        elif isinstance(exc, RecursionError):
            detail = "nested too deeply"
        else:
            detail = str(exc).split(":")[0]
        raise HostError(
            origin, f"the probe's output is not a facts document ({detail}; {len(text)} bytes)"
        ) from None
    try:
        doc = _split_build(doc, origin)
        return Facts(validate(_scrubbed(doc, origin) if scrub else doc, origin), origin)
    except FactsError as exc:
        raise HostError(origin, f"the probe's output is not usable: {exc.problem}") from None


# Indented text of large sections by their compact text (see dumps_facts), a few at a time.
_INDENTED: dict[str, str] = {}
_INDENT_MEMO_MIN = 4096


def dumps_facts(doc: Mapping[str, Any]) -> str:
    """``json.dumps(doc, indent=1, sort_keys=True) + "\\n"``, the saved facts file, made
    faster for many hosts: with ``indent`` json encodes in Python (~15 ms for a 100 KB
    ``qemu`` section), without it in C (~1 ms). A section's compact text decides its
    indented text, so sections seen before (hosts of one build) are not encoded again."""
    if not doc or not all(isinstance(k, str) for k in doc):
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"
    parts = []
    for key in sorted(doc):
        value = doc[key]
        if isinstance(value, (dict, list)) and value:
            compact = json.dumps(value, sort_keys=True)
            text = _INDENTED.get(compact) if len(compact) >= _INDENT_MEMO_MIN else None
            if text is None:
                # One level deeper than on its own: each line after the first gets a blank
                # (JSON text holds no raw line feed inside a string).
                text = json.dumps(value, indent=1, sort_keys=True).replace("\n", "\n ")
                if len(compact) >= _INDENT_MEMO_MIN:
                    if len(_INDENTED) >= 32:
                        _INDENTED.clear()
                    _INDENTED[compact] = text
        else:
            text = json.dumps(value, sort_keys=True)
        parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def save_facts(facts: Facts, path: str | Path) -> None:
    """Write the facts, and the QEMU build they reference once beside them
    (``qemu-builds/KEY.json``), so the directory reads the same on any machine."""
    from migcheck.safefile import atomic_write

    atomic_write(path, dumps_facts(facts.doc))
    build = facts.build
    if build is not None:
        from migcheck.build import BUILDS_DIR, write_build

        write_build(build, Path(path).parent / BUILDS_DIR)


@dataclass(frozen=True, eq=False)
class Facts:
    """A validated facts document with the accessors checks need.

    Accessors return None when the data is missing, so checks can say ``unknown``.
    """

    doc: Mapping[str, Any]
    origin: str  # file path or host name, for messages
    base_dir: str | None = None  # the facts file's directory: its qemu-builds/ comes first

    @property
    def name(self) -> str:
        host = self.doc.get("host") or {}
        return str(host.get("name") or self.origin)

    def section(self, name: str) -> Mapping[str, Any] | None:
        sec = self.doc.get(name)
        if not isinstance(sec, Mapping) or "error" in sec:
            return None
        return sec

    def missing(self, name: str) -> str | None:
        """Why a section is unusable, or None when it is fine."""
        sec = self.doc.get(name)
        if not isinstance(sec, Mapping):
            return f"no {name} facts"
        if "error" in sec:
            return f"{name} facts could not be gathered: {sec['error']}"
        return None

    # --- kernel / cpu -------------------------------------------------------------
    @property
    def kernel_release(self) -> str | None:
        sec = self.section("kernel")
        return sec.get("release") if sec else None

    @property
    def cache_note(self) -> str | None:
        """Which facts came from the probe cache and how old they are, for reports."""
        note = (self.doc.get("probe") or {}).get("cache")
        if not isinstance(note, Mapping) or not note.get("used"):
            return None
        facts = ", ".join(str(f) for f in note.get("facts") or ["qemu"])
        age = note.get("age_seconds")
        when = f"{age} s old" if isinstance(age, int) else "of unknown age"
        return f"{facts} from the probe cache, {when} (stored {note.get('stored_at', '?')})"

    @property
    def assumed(self) -> dict[str, str]:
        """What ``fleet --assume`` replaced in these facts (``kernel``, ``qemu``, ``os``,
        ``platform`` -> the assumed value): derived from the catalog, never measured."""
        record = self.doc.get("assumed")
        if not isinstance(record, Mapping):
            return {}
        return {str(k): str(v) for k, v in record.items()}

    @property
    def cpu_summary(self) -> str | None:
        sec = self.section("cpu")
        if not sec:
            return None
        name = sec.get("model_name") or sec.get("vendor")
        fms = "/".join(str(sec.get(k)) for k in ("family", "model", "stepping"))
        return f"{name} ({fms})"

    # --- kvm ----------------------------------------------------------------------
    @property
    def kvm_usable(self) -> bool | None:
        sec = self.section("kvm")
        if sec is None:
            return None
        if sec.get("present") and not sec.get("usable") and self.kvm_denied:
            return None  # /dev/kvm exists but the probe could not open it: unknown, not absent
        return bool(sec.get("present")) and bool(sec.get("usable"))

    @property
    def kvm_denied(self) -> bool:
        """The probe saw /dev/kvm but was not allowed to open it (a non-root probe)."""
        sec = self.section("kvm") or {}
        err = str(sec.get("error_open") or "")
        return "ermission denied" in err or "ot permitted" in err

    # --- qemu ---------------------------------------------------------------------
    @property
    def qemu(self) -> Mapping[str, Any] | None:
        return self.section("qemu")

    @property
    def qemu_version(self) -> str | None:
        q = self.qemu
        return q.get("version") if q else None

    @property
    def qemu_version_tuple(self) -> tuple[int, int, int] | None:
        return parse_version(self.qemu_version or "")

    @cached_property
    def machines(self) -> dict[str, Mapping[str, Any]] | None:
        q = self.qemu
        if not q or not isinstance(q.get("machines"), list):
            return None
        return {m["name"]: m for m in q["machines"]}

    def resolve_machine(self, name: str | None) -> str | None:
        """Versioned machine type for a name, an alias or None (the default machine)."""
        machines = self.machines
        if machines is None:
            return None
        if name in machines:
            return name
        default, aliases = self._machine_index
        return default if name is None else aliases.get(name)

    @cached_property
    def _machine_index(self) -> tuple[str | None, dict[str, str]]:
        """The default machine and alias -> the first machine naming it (what a scan in
        order finds): checks resolve the guest's machine thousands of times in a fleet."""
        default: str | None = None
        aliases: dict[str, str] = {}
        for n, m in (self.machines or {}).items():
            if default is None and m.get("is_default"):
                default = n
            alias = m.get("alias")
            if isinstance(alias, str):
                aliases.setdefault(alias, n)
        return default, aliases

    def is_machine_alias(self, name: str | None) -> bool:
        machines = self.machines or {}
        if name is None:
            return True
        return name not in machines and any(m.get("alias") == name for m in machines.values())

    @cached_property
    def cpu_models(self) -> dict[str, Mapping[str, Any]] | None:
        q = self.qemu
        if not q or not isinstance(q.get("cpu_models"), list):
            return None
        return {c["name"]: c for c in q["cpu_models"]}

    def resolve_cpu_model(self, name: str) -> str | None:
        """Follow ``alias-of`` (e.g. ``Haswell`` -> ``Haswell-v1``); None when unknown."""
        models = self.cpu_models
        if models is None or name not in models:
            return None
        target = models[name].get("alias_of")
        return target if isinstance(target, str) and target in models else name

    @property
    def host_cpu(self) -> Mapping[str, Any] | None:
        """QEMU's expansion of ``-cpu host`` (KVM) or ``max`` (TCG): model and props."""
        q = self.qemu
        hc = q.get("host_cpu") if q else None
        if not isinstance(hc, Mapping) or "error" in hc or not hc.get("props"):
            return None  # an empty expansion says nothing about the host's CPU
        return hc

    # --- the QEMU build (migcheck.build) ---------------------------------------------
    @property
    def build_key(self) -> str | None:
        q = self.qemu
        build = q.get("build") if q else None
        if not isinstance(build, Mapping) or not isinstance(build.get("key"), str):
            return None
        return build["key"]

    @cached_property
    def build(self) -> BuildData | None:
        """What this host's QEMU build can build; None when the facts do not reference a
        build or its file is nowhere (see :attr:`build_missing`). A corrupt build file
        raises InputError naming it."""
        key = self.build_key
        if key is None:
            return None
        from migcheck.build import find_build

        return find_build(key, Path(self.base_dir) if self.base_dir else None)

    @property
    def build_missing(self) -> str | None:
        """Why there is no build data, naming the key; None when :attr:`build` is there."""
        if self.build is not None:
            return None
        why = self.missing("qemu")
        if why:
            return why
        q = self.qemu or {}
        build = q.get("build")
        assumed = (self.doc.get("assumed") or {}).get("qemu")
        if build is None and assumed:
            return (
                f"QEMU {assumed} is assumed (--assume): what that build can build is not "
                "known until a host running it is gathered"
            )
        if build is None:
            return "the facts record no QEMU build (gathered before migcheck stored build data)"
        if isinstance(build, Mapping) and "error" in build:
            return f"the QEMU build could not be identified: {build['error']}"
        where = f"{self.base_dir}/qemu-builds or " if self.base_dir else ""
        from migcheck.build import store_dir

        return f"QEMU build {self.build_key} is not in {where}{store_dir()}"

    @cached_property
    def tcg(self) -> Mapping[str, Any] | None:
        """QEMU's CPU answers under TCG (``qemu.tcg``): ``cpu_models`` and ``max_cpu``.

        Facts without ``qemu.tcg`` still have TCG answers when the probe's one QEMU run
        itself fell back to TCG (``query-kvm`` says disabled): those are the same answers."""
        q = self.qemu
        if not q:
            return None
        tcg = q.get("tcg")
        if isinstance(tcg, Mapping):
            return None if "error" in tcg else tcg
        if self.qemu_kvm_enabled is False and isinstance(q.get("cpu_models"), list):
            return {"cpu_models": q["cpu_models"], "max_cpu": q.get("host_cpu")}
        return None

    def tcg_missing(self) -> str | None:
        """Why there are no TCG CPU answers, or None when there are."""
        if self.tcg is not None:
            return None
        why = self.missing("qemu")
        if why:
            return why
        tcg = (self.qemu or {}).get("tcg")
        if isinstance(tcg, Mapping) and "error" in tcg:
            return f"QEMU's TCG answers could not be gathered: {tcg['error']}"
        return "no QEMU TCG answers in the facts (gathered by an older probe: gather again)"

    @cached_property
    def tcg_cpu_models(self) -> dict[str, Mapping[str, Any]] | None:
        models = (self.tcg or {}).get("cpu_models")
        if not isinstance(models, list):
            return None
        return {c["name"]: c for c in models}

    @property
    def tcg_max_cpu(self) -> Mapping[str, Any] | None:
        """QEMU's expansion of ``-cpu max`` under TCG: model and props."""
        mc = (self.tcg or {}).get("max_cpu")
        if not isinstance(mc, Mapping) or "error" in mc or not isinstance(mc.get("props"), Mapping):
            return None
        return mc

    @property
    def kvm_vm(self) -> Mapping[str, Any] | None:
        """``kvm.vm``: the scratch VM's answers (``tsc_khz``, ``hv_cpuid``), if recorded."""
        sec = self.section("kvm")
        vm = sec.get("vm") if sec else None
        return vm if isinstance(vm, Mapping) and "error" not in vm else None

    @property
    def phys_bits(self) -> int | None:
        """The host CPU's physical address width (/proc/cpuinfo ``address sizes``)."""
        sec = self.section("cpu")
        value = sec.get("phys_bits") if sec else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def qemu_kvm_enabled(self) -> bool | None:
        q = self.qemu
        kvm = q.get("kvm") if q else None
        if not isinstance(kvm, Mapping):
            return None
        return bool(kvm.get("enabled"))
