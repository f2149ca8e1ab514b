"""The work behind ``migcheck fleet``: hosts in, gathered, evaluated, rendered.

Kept out of cli.py so the command stays a thin layer and this flow is callable from Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from migcheck.catalog import load_catalog
from migcheck.errors import EXIT_INPUT, EXIT_SAFE, EXIT_UNKNOWN, EXIT_UNSAFE, InputError
from migcheck.facts import Facts
from migcheck.fleet import Assumption, FleetResult, compare, evaluate
from migcheck.gather import GatherOptions, HostResult
from migcheck.verdict import Verdict
from migcheck.vm import VmSpec


def load_guests(paths: Sequence[str], xml_paths: Sequence[str] = ()) -> list[VmSpec]:
    """Command-line files and libvirt domain XML files; a directory contributes its
    *.cmdline / *.args files (or, for --domain-xml, its *.xml files)."""
    from migcheck.cmdline import load_cmdline
    from migcheck.domainxml import load_domain_xml

    if not paths and not xml_paths:
        raise InputError("give at least one guest with --cmdline FILE or --domain-xml FILE")
    guests = []
    for items, patterns, loader, option in (
        (paths, ("*.cmdline", "*.args"), load_cmdline, "--cmdline"),
        (xml_paths, ("*.xml",), load_domain_xml, "--domain-xml"),
    ):
        for path in items:
            p = Path(path)
            if path != "-" and p.is_dir():
                files = sorted(f for pattern in patterns for f in p.glob(pattern))
                if not files:
                    wanted = " or ".join(patterns)
                    raise InputError(f"{option} {path}: no {wanted} files in directory")
                guests += [loader(str(f)) for f in files]
            else:
                guests.append(loader(path))
    return guests


def resolve_hosts(
    hosts: Sequence[str], inventory: str | None
) -> tuple[list[tuple[str, str]], dict[str, tuple[str, ...]]]:
    """(display name, HOST target) pairs, and each name's groups."""
    if inventory is None:
        if not hosts:
            raise InputError("give HOSTs or --inventory FILE")
        unique = list(dict.fromkeys(hosts))
        return [(h, h) for h in unique], {h: () for h in unique}
    from migcheck.inventory import load_inventory

    inv = load_inventory(inventory)
    chosen = inv.select(list(hosts)) if hosts else list(inv.hosts)
    return [(h.name, h.target) for h in chosen], {h.name: tuple(h.groups) for h in chosen}


def apply_assumptions(
    facts: dict[str, Facts],
    groups: dict[str, tuple[str, ...]],
    assumptions: Sequence[Assumption],
    catalog,
) -> dict[str, Facts]:
    from migcheck.whatif import assume

    out = dict(facts)
    for a in assumptions:
        targets = [
            h for h in out if h == a.target or a.target in groups.get(h, ()) or a.target == "all"
        ]
        if not targets:
            raise InputError(
                f"--assume {a.target}:{a.key}={a.value}: no host or group {a.target!r}"
            )
        for h in targets:
            out[h] = assume(out[h], a.key, a.value, catalog)
    return out


def run_fleet(
    hosts: Sequence[str],
    cmdlines: Sequence[str],
    *,
    domain_xml: Sequence[str] = (),
    inventory: str | None,
    assume: Sequence[str],
    fmt: str,
    both_ways: bool,
    strict: bool,
    options: GatherOptions,
    gather: Callable[[list[str]], list[HostResult]],
    console: Console,
) -> tuple[str | None, int]:
    assumptions = [Assumption.parse(a) for a in assume]
    guests = load_guests(cmdlines, domain_xml)
    names, groups = resolve_hosts(hosts, inventory)
    catalog = load_catalog()
    results = gather([target for _, target in names])
    facts: dict[str, Facts] = {}
    failed: dict[str, str] = {}
    for (name, target), result in zip(names, results, strict=True):
        if result.facts is not None:
            # A facts file is known by the host name inside it, unless that is ambiguous.
            if result.ref.kind == "file" and name == target and result.facts.name not in facts:
                name = result.facts.name
            facts[name] = result.facts
        else:
            err = result.error
            if err is not None and err.exit_code == EXIT_INPUT:
                raise err  # a broken facts file or HOST string is bad input
            failed[name] = getattr(err, "reason", str(err))
    result = evaluate(
        guests, facts, catalog, failed_hosts=failed, both_ways=both_ways, strict=strict
    )
    changes = None
    final: FleetResult = result
    if assumptions:
        after_facts = apply_assumptions(facts, groups, assumptions, catalog)
        final = evaluate(
            guests, after_facts, catalog, failed_hosts=failed, both_ways=both_ways, strict=strict
        )
        changes = compare(result, final)
    from migcheck.report import fleet as render

    text: str | None
    if fmt == "json":
        text = render.render_json(final, changes)
    elif fmt == "junit":
        text = render.render_junit(final, changes)
    elif fmt == "markdown":
        text = render.render_markdown(final, changes)
    elif fmt == "html":
        from migcheck.report.html import render_html

        text = render_html(final, changes)
    else:
        render.render_table(console, final, changes)
        text = None
    return text, exit_code(result, changes)


def exit_code(result: FleetResult, changes=None) -> int:
    """A known reason to refuse (1) wins over missing data (3), as in ``pair``."""
    if changes is not None:
        if any(c.regression for c in changes):
            return EXIT_UNSAFE
        return EXIT_UNKNOWN if result.failed_hosts else EXIT_SAFE
    verdict = result.verdict
    if any(c.verdict is Verdict.UNSAFE for c in result.cells.values()):
        return EXIT_UNSAFE
    if result.failed_hosts or verdict is Verdict.UNKNOWN:
        return EXIT_UNKNOWN
    return EXIT_SAFE
