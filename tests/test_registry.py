"""The check registry: ids lead to files, declared reads are complete, the fleet key follows.

The read test runs every registered check on facts wrapped in a recording proxy and fails
when a check reads a facts path it did not declare: the fleet keys host classes on the
declared reads, so an undeclared read would let two hosts with different verdicts share a
class.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from qemudata import fixture_facts

from migcheck import build as buildmod
from migcheck.catalog import shipped_catalog
from migcheck.checks.base import Context, Status
from migcheck.checks.registry import declared_reads, info_for, registered
from migcheck.cmdline import parse_cmdline
from migcheck.facts import Facts
from migcheck.fleet import evaluate, fingerprint
from migcheck.pair import check_pair
from migcheck.verdict import Verdict

ROOT = Path(__file__).resolve().parents[1]
HOSTS = ["debian12-qemu7.2-epyc-pvm.json", "debian13-qemu10.0-epyc-pvm.json"]

# Command lines that make every check take its interesting branches.
GUESTS = [
    "-machine q35 -accel kvm -cpu host",
    "-machine pc-q35-7.2 -accel kvm -cpu pentium3,+ssse3 -smp 4",
    "-machine pc-q35-8.2 -accel kvm -cpu host,vmx=on -netdev tap,id=n0 "
    "-device virtio-net-pci,netdev=n0 -object memory-backend-file,id=m,mem-path=/dev/hugepages",
    "-accel tcg -cpu max -machine pc",
    "-machine pc-q35-7.2 -platform linux-6.1 -accel kvm -cpu qemu64 "
    "-device vfio-pci,host=01:00.0 -cpu host,migratable=off",
    "-machine pc-i440fx-7.2 -accel kvm -cpu EPYC -device ivshmem-plain,memdev=x",
    "qemu-system-x86_64",
]


class Recorder:
    def __init__(self) -> None:
        self.paths: set[str] = set()


class RecordingSection(Mapping[str, Any]):
    """A facts section that notes every key read (``name.*`` when iterated whole)."""

    def __init__(self, name: str, data: Mapping[str, Any], rec: Recorder) -> None:
        self._name, self._data, self._rec = name, data, rec

    def __getitem__(self, key: str) -> Any:
        self._rec.paths.add(f"{self._name}.{key}")
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        self._rec.paths.add(f"{self._name}.{key}")
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        self._rec.paths.add(f"{self._name}.{key}")
        return self._data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        self._rec.paths.add(f"{self._name}.*")
        return iter(self._data)

    def __len__(self) -> int:
        self._rec.paths.add(f"{self._name}.*")
        return len(self._data)

    def __bool__(self) -> bool:  # `if section:` asks whether it exists, not what is in it
        return bool(self._data)


class RecordingDoc(Mapping[str, Any]):
    def __init__(self, doc: Mapping[str, Any], rec: Recorder) -> None:
        self._doc, self._rec = doc, rec

    def _wrap(self, key: str, value: Any) -> Any:
        if isinstance(value, Mapping) and key != "host":  # host.name: display only
            return RecordingSection(key, value, self._rec)
        if key not in ("host", "schema"):
            self._rec.paths.add(f"{key}.*")
        return value

    def __getitem__(self, key: str) -> Any:
        return self._wrap(key, self._doc[key])

    def get(self, key: str, default: Any = None) -> Any:
        return self._wrap(key, self._doc[key]) if key in self._doc else default

    def __iter__(self) -> Iterator[str]:
        self._rec.paths.add("*")
        return iter(self._doc)

    def __len__(self) -> int:
        return len(self._doc)


def _allowed(path: str, declared: frozenset[str]) -> bool:
    section, _, key = path.partition(".")
    return path in declared or f"{section}.*" in declared or key == "error"


def _facts_variants() -> list[Facts]:
    out = [fixture_facts(h) for h in HOSTS]
    broken = copy.deepcopy(dict(out[0].doc))
    broken["qemu"] = {"error": "QEMU not found"}
    broken["kvm"] = {"error": "no /dev/kvm"}
    out.append(Facts(broken, "broken"))
    return out


@pytest.mark.parametrize("info", registered(), ids=lambda i: i.name)
def test_every_check_reads_only_what_it_declares(info):
    catalog = shipped_catalog()
    undeclared: set[str] = set()
    for text in GUESTS:
        vm = parse_cmdline(text, "guest.cmdline")
        for src in _facts_variants():
            for dst in _facts_variants():
                rec = Recorder()
                ctx = Context(
                    vm,
                    Facts(RecordingDoc(src.doc, rec), src.origin),
                    Facts(RecordingDoc(dst.doc, rec), dst.origin),
                    catalog,
                )
                for finding in info.func(ctx):
                    assert info.emits(finding.id), f"{info.name} emitted undeclared {finding.id}"
                undeclared |= {p for p in rec.paths if not _allowed(p, info.reads)}
    assert not undeclared, f"{info.name} reads undeclared facts paths: {sorted(undeclared)}"


def test_ids_lead_to_files():
    for info in registered():
        module = importlib.import_module(info.func.__module__)
        stem = Path(module.__file__ or "").stem
        for pattern in info.ids:
            assert pattern.split(".")[0] == stem, f"{pattern} lives in checks/{stem}.py"
            assert info_for(pattern.removesuffix(".*")) is info


def test_gating_checks_are_registered():
    gates = {i.ids[0] for i in registered() if i.gates_start}
    assert {"machine.type", "cpu.model", "accel.kvm"} <= gates


def test_fleet_key_ignores_fields_no_check_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty local build store
    # ...and nothing an earlier test probed in this process (a local probe of this machine
    # sends the fixture's own build): otherwise the result depends on test order.
    buildmod.forget_received()
    base = fixture_facts(HOSTS[0])
    doc = copy.deepcopy(dict(base.doc))
    doc["host"] = {"name": "elsewhere"}
    doc["kernel"]["version"] = "#1 SMP PREEMPT_DYNAMIC something else"
    doc["cpu"]["microcode"] = "0xdeadbeef"
    assert fingerprint(Facts(doc, "x", base.base_dir)) == fingerprint(base)
    assert "kernel.release" in declared_reads()


def _mutate(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + ".1" if value[:1].isdigit() else value + "x"
    if isinstance(value, list):
        return value[1:] if value else ["x"]
    if isinstance(value, dict):
        return {k: _mutate(v) for k, v in value.items()} if value else {"x": 1}
    return "x"


def _single_field_variants() -> dict[str, Facts]:
    """One host per facts field: the base capture with exactly that field changed."""
    base = fixture_facts(HOSTS[1])
    hosts = {"base": base, "twin": Facts(base.doc, "twin")}
    for section, body in base.doc.items():
        if not isinstance(body, dict):
            continue
        for key, value in body.items():
            doc = dict(base.doc)
            doc[section] = dict(body, **{key: _mutate(value)})
            hosts[f"{section}.{key}"] = Facts(doc, f"{section}.{key}")
        doc = dict(base.doc)
        doc[section] = {"error": "could not gather"}
        hosts[f"{section}.error"] = Facts(doc, f"{section}.error")
    return hosts


def test_class_grouping_equals_naive_all_pairs_when_every_field_differs():
    catalog = shipped_catalog()
    hosts = _single_field_variants()
    guests = [parse_cmdline(t, f"g{i}") for i, t in enumerate(GUESTS[:4])]
    result = evaluate(guests, hosts, catalog)
    assert len(result.classes) < len(hosts), "fields no check reads must not split classes"
    for g, vm in enumerate(guests):
        for a, fa in hosts.items():
            for b, fb in hosts.items():
                if a == b:
                    continue
                grouped = result.migration_verdict(g, a, b)
                naive = check_pair(vm, fa, fb, catalog=catalog).verdict
                if grouped is None:  # the guest cannot start on one of them
                    ctx_a = Context(vm, fa, fa, catalog)
                    ctx_b = Context(vm, fb, fb, catalog)
                    gates = [i for i in registered() if i.gates_start]
                    statuses = {f.status for i in gates for c in (ctx_a, ctx_b) for f in i.func(c)}
                    assert Status.FAIL in statuses, (g, a, b)
                    continue
                assert grouped == naive, (g, a, b, grouped, naive)
    assert any(v is not Verdict.SAFE for v in (c.verdict for c in result.cells.values()))
