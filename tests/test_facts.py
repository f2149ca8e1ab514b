"""Behaviour of migcheck.facts: loading, validating and reading host facts documents."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qemudata import FIXTURES, fixture_facts

import migcheck.facts
from migcheck.errors import EXIT_INPUT, EXIT_UNKNOWN, HostError, InputError
from migcheck.facts import (
    SCHEMA,
    SECTIONS,
    Facts,
    FactsError,
    facts_from_probe_output,
    load_facts,
    parse_version,
    save_facts,
    validate,
)

FIXTURE_NAMES = sorted(p.name for p in (FIXTURES / "hosts").glob("*.json"))
FUZZ = settings(max_examples=200, deadline=None)


def fixture_doc(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "hosts" / name).read_text())


def write(tmp_path: Path, content: str | bytes, name: str = "host.json") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def facts_error(path: Path) -> FactsError:
    with pytest.raises(FactsError) as info:
        load_facts(path)
    err = info.value
    assert str(path) in str(err), "the message must name the file"
    assert err.exit_code == EXIT_INPUT
    assert "\n" not in str(err)
    return err


def doc_error(tmp_path: Path, doc: Any) -> str:
    """Write ``doc`` as JSON, load it, return the FactsError's problem text."""
    return facts_error(write(tmp_path, json.dumps(doc))).problem


def exercise_accessors(facts: Facts) -> None:
    """Everything checks read from a validated document; none of it may raise."""
    machines = facts.machines
    assert machines is None or isinstance(machines, dict)
    models = facts.cpu_models
    assert models is None or isinstance(models, dict)
    for name in [None, "q35", "pc", "", *(machines or {})]:
        resolved = facts.resolve_machine(name)
        assert resolved is None or resolved in (machines or {})
        facts.is_machine_alias(name)
    for name in ["host", "Haswell", *(models or {})]:
        resolved = facts.resolve_cpu_model(name)
        assert resolved is None or resolved in (models or {})
    assert facts.host_cpu is None or "error" not in facts.host_cpu
    vt = facts.qemu_version_tuple
    assert vt is None or (len(vt) == 3 and all(isinstance(x, int) for x in vt))
    assert facts.kvm_usable in (None, True, False)
    assert facts.qemu_kvm_enabled in (None, True, False)
    assert isinstance(facts.name, str)
    facts.kernel_release  # noqa: B018
    facts.cpu_summary  # noqa: B018
    facts.qemu_version  # noqa: B018
    for sec in SECTIONS:
        facts.section(sec)
        facts.missing(sec)


# --- the bundled fixtures ---------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_bundled_fixture_loads_and_accessors_follow_the_document(name):
    assert len(FIXTURE_NAMES) >= 2
    facts = fixture_facts(name)
    doc = fixture_doc(name)
    assert facts.doc == doc
    assert facts.origin.endswith(name)
    machines = doc["qemu"]["machines"]

    defaults = [m["name"] for m in machines if m["is_default"]]
    assert len(defaults) == 1
    assert facts.resolve_machine(None) == defaults[0]
    for alias in ("q35", "pc"):
        targets = [m["name"] for m in machines if m.get("alias") == alias]
        assert len(targets) == 1, f"{name}: alias {alias} should name one machine"
        assert facts.resolve_machine(alias) == targets[0]
        assert facts.is_machine_alias(alias)
        assert facts.resolve_machine(targets[0]) == targets[0]
        assert not facts.is_machine_alias(targets[0])
    assert facts.resolve_machine("no-such-machine-9.9") is None
    assert set(facts.machines) == {m["name"] for m in machines}

    version = doc["qemu"]["version"]
    assert facts.qemu_version == version
    assert facts.qemu_version_tuple == tuple(int(x) for x in version.split(".")[:3])
    assert facts.kvm_usable == (doc["kvm"]["present"] and doc["kvm"]["usable"])
    assert facts.host_cpu["model"] == doc["qemu"]["host_cpu"]["model"]
    assert set(facts.cpu_models) == {c["name"] for c in doc["qemu"]["cpu_models"]}
    for cname, model in facts.cpu_models.items():
        target = model.get("alias_of")
        if target in facts.cpu_models:
            assert facts.resolve_cpu_model(cname) == target
    assert facts.kernel_release == doc["kernel"]["release"]
    for sec in SECTIONS:
        assert facts.missing(sec) is None
    exercise_accessors(facts)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_saved_facts_load_back_identical(tmp_path, name):
    facts = fixture_facts(name)
    save_facts(facts, tmp_path / "copy.json")
    again = load_facts(tmp_path / "copy.json")
    assert again.doc == facts.doc
    assert again.origin == str(tmp_path / "copy.json")


def test_section_error_makes_the_section_missing_not_invalid(tmp_path):
    doc = fixture_doc(FIXTURE_NAMES[0])
    doc["qemu"] = {"error": "no QEMU found"}
    doc["kvm"] = {"error": "PermissionError: /dev/kvm"}
    facts = load_facts(write(tmp_path, json.dumps(doc)))
    assert facts.qemu is None and facts.machines is None and facts.resolve_machine(None) is None
    assert facts.kvm_usable is None
    assert "no QEMU found" in facts.missing("qemu")
    exercise_accessors(facts)


# --- corrupt and foreign files ----------------------------------------------------------


def test_truncated_json_names_line_and_column(tmp_path):
    text = json.dumps(fixture_doc(FIXTURE_NAMES[0]), indent=1)
    cut = text[: len(text) // 2]
    problem = facts_error(write(tmp_path, cut)).problem
    m = re.search(r"not valid JSON \(.+\bline (\d+) column (\d+)\)", problem)
    assert m, problem
    assert 1 <= int(m.group(1)) <= cut.count("\n") + 1


def test_json_syntax_error_position_is_where_the_error_is(tmp_path):
    problem = facts_error(write(tmp_path, '{\n "schema": "migcheck.facts/1",\n oops\n}')).problem
    assert "line 3 column 2" in problem


def test_not_utf8(tmp_path):
    problem = facts_error(write(tmp_path, b'{"schema": "migcheck.facts/1", "x": "\xff\xfe"}'))
    assert "not UTF-8" in problem.problem


def test_top_level_array(tmp_path):
    assert "found list" in doc_error(tmp_path, [fixture_doc(FIXTURE_NAMES[0])])


def test_empty_object_has_no_schema(tmp_path):
    assert "no migcheck schema" in doc_error(tmp_path, {})


@pytest.mark.parametrize("schema", ["other.tool/1", "", 1, None, ["migcheck.facts/1"]])
def test_foreign_schema(tmp_path, schema):
    doc = fixture_doc(FIXTURE_NAMES[0])
    doc["schema"] = schema
    problem = doc_error(tmp_path, doc)
    assert "no migcheck schema" in problem and repr(schema) in problem


def test_future_schema_is_refused_by_version(tmp_path):
    doc = fixture_doc(FIXTURE_NAMES[0])
    doc["schema"] = "migcheck.facts/2"
    problem = doc_error(tmp_path, doc)
    assert "'migcheck.facts/2' is not supported" in problem and SCHEMA in problem


@pytest.mark.parametrize("section", SECTIONS)
def test_missing_section(tmp_path, section):
    doc = fixture_doc(FIXTURE_NAMES[0])
    del doc[section]
    assert doc_error(tmp_path, doc) == f"section {section!r} is missing"


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("value", [[], "text", 3, None, True])
def test_section_of_wrong_type(tmp_path, section, value):
    doc = fixture_doc(FIXTURE_NAMES[0])
    doc[section] = value
    problem = doc_error(tmp_path, doc)
    assert problem == f"{section} should be dict, found {type(value).__name__}"


def test_section_error_must_be_text(tmp_path):
    doc = fixture_doc(FIXTURE_NAMES[0])
    doc["cpu"] = {"error": {"nested": "no"}}
    assert "cpu.error should be str" in doc_error(tmp_path, doc)


@pytest.mark.parametrize(
    ("section", "key"),
    [("kernel", "release"), ("cpu", "flags"), ("kvm", "usable"), ("qemu", "binary")],
)
def test_field_checks_read_is_required(tmp_path, section, key):
    doc = fixture_doc(FIXTURE_NAMES[0])
    del doc[section][key]
    assert doc_error(tmp_path, doc) == f"{section}.{key} is missing"


@pytest.mark.parametrize("item", ["pc-q35-7.2", None, 3, ["pc"]])
def test_machine_list_with_non_object_item(tmp_path, item):
    doc = fixture_doc(FIXTURE_NAMES[0])
    index = len(doc["qemu"]["machines"])
    doc["qemu"]["machines"].append(item)
    problem = doc_error(tmp_path, doc)
    assert problem.startswith(f"qemu.machines[{index}] should be dict")


def test_machine_without_a_name(tmp_path):
    doc = fixture_doc(FIXTURE_NAMES[0])
    del doc["qemu"]["machines"][2]["name"]
    assert doc_error(tmp_path, doc) == "qemu.machines[2].name should be str, found NoneType"


def test_cpu_model_unavailable_features_must_be_a_list(tmp_path):
    doc = fixture_doc(FIXTURE_NAMES[0])
    doc["qemu"]["cpu_models"][0]["unavailable_features"] = "avx512f"
    assert "qemu.cpu_models[0].unavailable_features should be list" in doc_error(tmp_path, doc)


@pytest.mark.parametrize("version", ["seven", "", "v7.2.0", "7", 7.2, "9" * 5000 + ".0.0"])
def test_qemu_version_not_a_version(tmp_path, version):
    doc = fixture_doc(FIXTURE_NAMES[0])
    doc["qemu"]["version"] = version
    problem = doc_error(tmp_path, doc)
    if isinstance(version, str):
        assert problem.startswith("qemu.version") and "is not a version" in problem
    else:
        assert problem == "qemu.version should be str, found float"


def test_parse_version():
    assert parse_version("7.2.22") == (7, 2, 22)
    assert parse_version("10.0") == (10, 0, 0)
    assert parse_version("8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)") == (8, 2, 2)
    for bad in ("", "x", "7", "7.x", "1" * 5000 + ".1"):
        assert parse_version(bad) is None


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None])
def test_kvm_capability_must_be_an_integer_not_a_bool(tmp_path, value):
    doc = fixture_doc(FIXTURE_NAMES[0])
    cap = sorted(doc["kvm"]["capabilities"])[0]
    doc["kvm"]["capabilities"][cap] = value
    problem = doc_error(tmp_path, doc)
    assert problem == f"kvm.capabilities.{cap} should be int, found {type(value).__name__}"


def test_kvm_present_must_be_a_bool_not_an_int(tmp_path):
    doc = fixture_doc(FIXTURE_NAMES[0])
    doc["kvm"]["present"] = 1
    assert doc_error(tmp_path, doc) == "kvm.present should be bool, found int"


def test_host_must_be_an_object(tmp_path):
    doc = fixture_doc(FIXTURE_NAMES[0])
    doc["host"] = "web01"
    assert doc_error(tmp_path, doc) == "host should be dict, found str"


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000],
)
def test_deeply_nested_json_is_a_facts_error_not_a_crash(tmp_path, text):
    problem = facts_error(write(tmp_path, text)).problem
    assert "nested too deeply" in problem or "not valid JSON" in problem


def test_integer_longer_than_python_converts_is_a_facts_error(tmp_path):
    text = '{"schema": "migcheck.facts/1", "n": ' + "1" * 5000 + "}"
    assert "not valid JSON" in facts_error(write(tmp_path, text)).problem


def test_file_larger_than_the_cap(tmp_path, monkeypatch):
    path = write(tmp_path, json.dumps(fixture_doc(FIXTURE_NAMES[0])))
    monkeypatch.setattr(migcheck.facts, "MAX_FACTS_BYTES", 1000)
    problem = facts_error(path).problem
    assert f"file is {path.stat().st_size} bytes, more than 1000" == problem


def test_file_at_the_cap_is_read(tmp_path, monkeypatch):
    path = write(tmp_path, json.dumps(fixture_doc(FIXTURE_NAMES[0])))
    monkeypatch.setattr(migcheck.facts, "MAX_FACTS_BYTES", path.stat().st_size)
    assert load_facts(path).doc["schema"] == SCHEMA


@pytest.mark.parametrize("kind", ["directory", "missing"])
def test_unreadable_path_is_an_input_error_naming_it(tmp_path, kind):
    path = tmp_path / "hosts.d" if kind == "directory" else tmp_path / "nope.json"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(InputError) as info:
        load_facts(path)
    assert str(path) in str(info.value)
    assert "cannot read facts file" in str(info.value)
    assert info.value.exit_code == EXIT_INPUT


def test_empty_file(tmp_path):
    assert "not valid JSON" in facts_error(write(tmp_path, "")).problem


# --- property tests ---------------------------------------------------------------------

JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
# Keys validate() and the accessors look at, so generated documents get past the first checks.
KNOWN_KEYS = [
    "error", "release", "arch", "id", "vendor", "flags", "present", "usable", "capabilities",
    "modules", "binary", "version", "machines", "cpu_models", "kvm", "host_cpu", "props",
    "model", "name", "alias", "is_default", "alias_of", "unavailable_features", "enabled",
]  # fmt: skip
KEY = st.sampled_from(KNOWN_KEYS) | st.text(max_size=6)
VALUE = st.recursive(
    JSON_LEAF | st.sampled_from(["q35", "pc", "7.2.0", "10.0", "host", SCHEMA]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY, inner, max_size=5),
    max_leaves=25,
)
SECTION = st.dictionaries(KEY, VALUE, max_size=6) | VALUE
DOC_LIKE = st.fixed_dictionaries(
    {"schema": st.just(SCHEMA) | JSON_LEAF},
    optional={name: SECTION for name in (*SECTIONS, "host")},
)


def validate_or_facts_error(doc: Any) -> None:
    try:
        validated = validate(doc, "fuzz.json")
    except FactsError as exc:
        assert exc.origin == "fuzz.json" and exc.problem
        return
    assert validated is doc
    exercise_accessors(Facts(validated, "fuzz.json"))


@FUZZ
@given(JSON | DOC_LIKE)
def test_validate_any_json_returns_or_raises_facts_error(doc):
    validate_or_facts_error(doc)


@FUZZ
@given(DOC_LIKE)
def test_probe_output_of_any_document_is_facts_or_host_error(doc):
    try:
        facts = facts_from_probe_output(json.dumps(doc), "web01")
    except HostError as exc:
        assert exc.exit_code == EXIT_UNKNOWN and exc.host == "web01" and exc.reason
        return
    exercise_accessors(facts)


FIXTURE_DOCS = [fixture_doc(name) for name in FIXTURE_NAMES]


@st.composite
def mutated_fixture(draw) -> dict[str, Any]:
    """A real fixture with one key or item at a random depth deleted or replaced."""
    doc = copy.deepcopy(draw(st.sampled_from(FIXTURE_DOCS)))
    node: Any = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        break
    if draw(st.booleans()):
        del node[key]
    else:
        node[key] = draw(VALUE)
    return doc


@FUZZ
@given(mutated_fixture())
def test_validate_mutated_fixture_returns_or_raises_facts_error(doc):
    validate_or_facts_error(doc)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_load_facts_of_any_bytes_is_facts_or_facts_error(tmp_path, raw):
    path = tmp_path / "fuzz.json"
    path.write_bytes(raw)
    try:
        facts = load_facts(path)
    except FactsError as exc:
        assert str(path) in str(exc)
        return
    exercise_accessors(facts)


# --- facts_from_probe_output: what a host printed ---------------------------------------


def host_error(output: str) -> HostError:
    with pytest.raises(HostError) as info:
        facts_from_probe_output(output, "web01")
    err = info.value
    assert err.exit_code == EXIT_UNKNOWN
    assert str(err).startswith("web01: ") and err.reason
    return err


@pytest.mark.parametrize("output", ["", "   \n\t\n"])
def test_probe_printed_nothing(output):
    assert host_error(output).reason == "the probe printed nothing"


@pytest.mark.parametrize(
    "output",
    [
        "garbage",
        "Traceback (most recent call last):\n  File ...",
        "bash: python3: command not found",
        "[" * 100_000,
        '{"n": ' + "7" * 5000 + "}",
    ],
)
def test_probe_printed_garbage(output):
    reason = host_error(output).reason
    assert "not a facts document" in reason and f"{len(output.strip())} bytes" in reason


def test_probe_output_truncated():
    text = json.dumps(fixture_doc(FIXTURE_NAMES[1]))
    reason = host_error(text[: len(text) - 100]).reason
    assert "not a facts document" in reason


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("[]", "top level should be a JSON object"),
        ("{}", "no migcheck schema"),
        ('"migcheck.facts/1"', "top level should be a JSON object"),
        ('{"schema": "migcheck.facts/1"}', "section 'kernel' is missing"),
        ('{"schema": "migcheck.facts/2"}', "not supported"),
    ],
)
def test_probe_output_json_but_not_facts(output, problem):
    reason = host_error(output).reason
    assert reason.startswith("the probe's output is not usable: ") and problem in reason


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_probe_output_valid(name):
    doc = fixture_doc(name)
    facts = facts_from_probe_output("\n" + json.dumps(doc) + "\n", "web01")
    assert isinstance(facts, Facts)
    assert facts.doc == doc and facts.origin == "web01"


# --- wrong shapes are refused or make the affected checks unknown (issue 21 section 7) ----


def _variant(tmp_path, mutate, raw_edit=None):
    import copy as _copy

    from migcheck.facts import load_facts as _load

    base = json.loads((FIXTURES / "hosts" / "debian12-qemu7.2-epyc-pvm.json").read_text())
    doc = _copy.deepcopy(base)
    mutate(doc)
    text = json.dumps(doc)
    if raw_edit:
        text = raw_edit(text)
    path = tmp_path / "hv.json"
    path.write_text(text)
    return lambda: _load(path)


def _model(doc, name="pentium3"):
    return next(m for m in doc["qemu"]["cpu_models"] if m["name"] == name)


@pytest.mark.parametrize(
    ("what", "mutate", "raw_edit", "message"),
    [
        ("null unavailable", lambda d: _model(d).update(unavailable_features=None), None,
         "should be list"),
        ("model twice", lambda d: d["qemu"]["cpu_models"].append(_model(d)), None,
         "listed twice"),
        ("machine twice", lambda d: d["qemu"]["machines"].append(d["qemu"]["machines"][0]),
         None, "listed twice"),
        ("duplicate key", lambda d: None,
         lambda t: t.replace('"kvm": {', '"kvm": {"usable": false, ', 1), "appears twice"),
        ("host name", lambda d: d.update(host={"name": 5}), None, "host.name"),
        ("probe metadata", lambda d: d.update(probe="x"), None, "probe should be dict"),
    ],
)  # fmt: skip
def test_wrong_shapes_are_refused(tmp_path, what, mutate, raw_edit, message):
    load = _variant(tmp_path, mutate, raw_edit)
    with pytest.raises(FactsError, match=message):
        load()


def test_missing_answers_make_checks_unknown(tmp_path):
    from migcheck.checks.base import Status
    from migcheck.cmdline import parse_cmdline
    from migcheck.pair import check_pair

    good = load_facts(FIXTURES / "hosts" / "debian12-qemu7.2-epyc-pvm.json")
    no_answer = _variant(tmp_path, lambda d: _model(d).pop("unavailable_features"))()
    vm = parse_cmdline("-machine pc-q35-7.2 -nodefaults -accel kvm -cpu pentium3", "vm")
    report = check_pair(vm, good, no_answer)
    assert next(f for f in report.findings if f.id == "cpu.model").status is Status.UNKNOWN
    assert report.verdict.value == "unknown"
    (tmp_path / "e").mkdir()
    empty = _variant(tmp_path / "e", lambda d: d["qemu"]["host_cpu"].update(props={}))()
    host = parse_cmdline("-machine pc-q35-7.2 -nodefaults -accel kvm -cpu host", "vm")
    assert check_pair(host, good, empty).verdict.value == "unknown"
