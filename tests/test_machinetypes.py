"""One parser for machine-type names (upstream, RHEL, Ubuntu, aliases), used everywhere."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st
from qemudata import fixture_facts

from migcheck.catalog import shipped_catalog
from migcheck.checks.machine import newest_common
from migcheck.cmdline import parse_cmdline
from migcheck.dependencies import machine_version
from migcheck.facts import Facts
from migcheck.machinetypes import newest_of_line, parse_machine, upstream_version
from migcheck.pair import check_pair
from migcheck.portable import make_portable


def test_upstream_rhel_ubuntu_and_aliases():
    assert parse_machine("pc-q35-8.2").upstream == (8, 2)
    assert parse_machine("pc-i440fx-2.12").family == "pc-i440fx"
    assert parse_machine("pc-1.3").family == "pc"
    rhel = parse_machine("pc-q35-rhel9.4.0")
    assert (rhel.distro, rhel.version, rhel.upstream) == ("rhel", (9, 4, 0), None)
    noble = parse_machine("pc-q35-noble-hpb")
    assert (noble.distro, noble.variant) == ("ubuntu", "-hpb")
    assert parse_machine("pc-q35-jammy").version < parse_machine("pc-q35-noble").version
    for alias in ("q35", "pc", "microvm", "isapc", "none", "", None, "pc-q35-notacodename"):
        assert parse_machine(alias) is None
    # A RHEL release number is not an upstream QEMU version: no module may read it as one.
    assert upstream_version("pc-q35-rhel9.4.0") is None
    assert machine_version("pc-q35-rhel9.4.0") is None
    assert machine_version("pc-q35-8.2") == (8, 2)


def test_lines_do_not_mix():
    names = {"pc-q35-10.0", "pc-q35-rhel9.6.0", "pc-q35-rhel9.4.0", "pc-q35-noble", "pc-q35-8.2"}
    assert newest_of_line("pc-q35-rhel9.2.0", names) == "pc-q35-rhel9.6.0"
    assert newest_of_line("pc-q35-7.2", names) == "pc-q35-10.0"
    assert newest_of_line("pc-q35-jammy", names) == "pc-q35-noble"
    assert newest_of_line("pc-q35-jammy-hpb", names) is None
    assert newest_of_line("q35", names) is None


@given(st.text(max_size=40))
def test_parser_never_crashes_and_round_trips_the_name(name):
    mt = parse_machine(name)
    if mt is not None:
        assert mt.name == name
        assert all(isinstance(v, int) for v in mt.version)


def _rhel(facts: Facts, names: list[str], name: str) -> Facts:
    doc = copy.deepcopy(dict(facts.doc))
    template = doc["qemu"]["machines"][0]
    doc["qemu"]["machines"] = [
        dict(template, name=n, alias=None, is_default=False, deprecated=False) for n in names
    ]
    doc["host"] = {"name": name}
    return Facts(doc, name)


def test_pair_and_portable_give_the_same_advice_on_rhel_hosts():
    base = fixture_facts("debian12-qemu7.2-epyc-pvm.json")
    old = _rhel(base, ["pc-q35-rhel9.2.0", "pc-q35-rhel9.4.0", "pc-q35-8.2"], "rhel94")
    new = _rhel(base, ["pc-q35-rhel9.4.0", "pc-q35-rhel9.6.0", "pc-q35-8.2"], "rhel96")
    vm = parse_cmdline("-machine pc-q35-rhel9.6.0 -accel kvm -cpu pentium3", "vm.cmdline")
    report = check_pair(vm, new, old)
    machine = next(f for f in report.findings if f.id == "machine.type")
    assert machine.status.value == "fail"
    assert "pc-q35-rhel9.4.0" in (machine.fix or "")
    assert newest_common("pc-q35-rhel9.6.0", new, old) == "pc-q35-rhel9.4.0"
    result = make_portable(vm, [new, old], shipped_catalog())
    rewritten = " ".join(c.after for c in result.changes if c.option == "machine")
    assert "pc-q35-rhel9.4.0" in rewritten
