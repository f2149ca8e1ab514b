"""What every command does, as library calls that return results and exit codes.

``cli.py`` only declares options, calls one function here and hands the result to a
renderer from :mod:`migcheck.report.formats`. Everything a command does is callable from
Python (and tested) without the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from migcheck.catalog import Catalog, shipped_catalog
from migcheck.errors import (
    EXIT_INPUT,
    EXIT_SAFE,
    EXIT_UNKNOWN,
    EXIT_UNSAFE,
    HostError,
    InputError,
    MigcheckError,
)
from migcheck.facts import Facts, save_facts
from migcheck.fleet import Assumption, Change, FleetResult, compare, evaluate
from migcheck.gather import (
    Gatherer,
    GatherOptions,
    HostResult,
    file_name_for,
    load_probe_outputs,
    running_guest,
    safe_file_stem,
)
from migcheck.pair import PairReport, check_pair
from migcheck.verdict import Verdict, combine
from migcheck.vm import VmSpec

if TYPE_CHECKING:
    from migcheck.hosts import HostRef
    from migcheck.transport.ssh import SshSession

# Called with each host's result as it completes (a progress bar ticks on it).
Progress = Callable[[HostResult], None]
GatherMany = Callable[[list[str]], list[HostResult]]


def gather_many(
    hosts: list[str],
    options: GatherOptions,
    progress: Progress | None = None,
    session: SshSession | None = None,
) -> list[HostResult]:
    """``session``: an SSH session to gather through (the trial's, which keeps each host's
    connection for its agents); None: a session of the gathering's own."""
    with Gatherer(options, session, borrowed=session is not None) as gatherer:
        return gatherer.gather_many(hosts, progress=progress)


# --- guests ----------------------------------------------------------------------------------


def load_guest(cmdline: str | None = None, domain_xml: str | None = None) -> VmSpec:
    """One guest from a command-line file ('-' for stdin) or a libvirt domain XML file; a
    ``.xml`` given as a command line is read as domain XML."""
    from migcheck.cmdline import load_cmdline

    if domain_xml is not None or (cmdline not in (None, "-") and Path(cmdline).suffix == ".xml"):
        from migcheck.domainxml import load_domain_xml

        return load_domain_xml(domain_xml or cmdline or "")
    return load_cmdline(cmdline or "-")


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


# --- pair ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairOutcome:
    forward: PairReport
    reverse: PairReport | None
    verdict: Verdict

    @property
    def reports(self) -> list[PairReport]:
        return [self.forward] + ([self.reverse] if self.reverse else [])

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


def _pair_facts(results: list[HostResult]) -> list[Facts]:
    for result in results:  # bad input first (exit 2), then unreachable hosts (exit 3)
        if result.error is not None and not isinstance(result.error, HostError):
            raise result.error
    for result in results:
        if result.error is not None:
            raise result.error
    return [r.facts for r in results if r.facts is not None]


def pair(
    src: str,
    dst: str,
    options: GatherOptions,
    *,
    cmdline: str | None = None,
    domain_xml: str | None = None,
    vm_name: str | None = None,
    both_ways: bool = False,
    strict: bool = False,
    session: SshSession | None = None,
) -> PairOutcome:
    """Judge one guest from SRC to DST (and back with ``both_ways``). ``session``: see
    :func:`gather_many`."""
    if sum(x is not None for x in (cmdline, domain_xml, vm_name)) != 1:
        raise MigcheckError("give exactly one of --cmdline FILE, --domain-xml FILE and --vm NAME")
    if vm_name is None:
        vm = load_guest(cmdline, domain_xml)
        facts = _pair_facts(gather_many([src, dst], options, session=session))
    else:
        # Both hosts in parallel; the source's probe also reads the running guest's argv.
        gatherer_ = Gatherer(options, session, borrowed=session is not None)
        with gatherer_ as gatherer, ThreadPoolExecutor(2) as pool:
            first = pool.submit(gatherer.gather, src, vm=vm_name)
            second = pool.submit(gatherer.gather, dst)
            facts = [first.result(), second.result()]
        vm = running_guest(facts[0], vm_name)
    forward = check_pair(vm, facts[0], facts[1], strict=strict)
    reverse = check_pair(vm, facts[1], facts[0], strict=strict) if both_ways else None
    verdict = combine([forward.verdict] + ([reverse.verdict] if reverse else []))
    return PairOutcome(forward, reverse, verdict)


# --- gather ----------------------------------------------------------------------------------


@dataclass
class GatherOutcome:
    results: list[HostResult]
    written: list[Path]

    @property
    def exit_code(self) -> int:
        codes = {r.error.exit_code for r in self.results if r.error is not None}
        if not codes:
            return EXIT_SAFE
        return EXIT_INPUT if codes == {EXIT_INPUT} else EXIT_UNKNOWN


def file_name_for_text(text: str) -> str:
    return f"{safe_file_stem(text).lstrip('.') or 'host'}.json"


def save_results(results: list[HostResult], out_dir: Path) -> list[Path]:
    """One facts file per gathered host; two HOSTs naming one machine keep both files."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MigcheckError(
            f"--out-dir {out_dir}: cannot create directory: {exc.strerror}"
        ) from None
    used: set[str] = set()
    written = []
    for result in results:
        if result.facts is None:
            continue
        name = file_name_for(result.facts)
        if name in used:
            name = file_name_for_text(result.ref.text)
        used.add(name)
        save_facts(result.facts, out_dir / name)
        written.append(out_dir / name)
    return written


def gather(
    hosts: Sequence[str],
    options: GatherOptions,
    *,
    out_dir: Path | None,
    many: GatherMany | None = None,
) -> GatherOutcome:
    """Probe hosts; with ``out_dir``, save one facts file each."""
    unique = list(dict.fromkeys(hosts))  # the same HOST twice is one host
    if not unique:
        raise MigcheckError("give HOSTs to gather, or --from-ansible DIR")
    if out_dir is None and len(unique) > 1:
        raise MigcheckError("give --out-dir DIR to gather more than one host")
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MigcheckError(
                f"--out-dir {out_dir}: cannot create directory: {exc.strerror}"
            ) from None
    results = (many or (lambda t: gather_many(t, options)))(unique)
    written = save_results(results, out_dir) if out_dir is not None else []
    return GatherOutcome(results, written)


def gather_from_ansible(directory: Path, out_dir: Path | None) -> GatherOutcome:
    if out_dir is None:
        raise MigcheckError("give --out-dir DIR to save facts loaded with --from-ansible")
    results = load_probe_outputs(directory)
    outcome = GatherOutcome(results, save_results(results, out_dir))
    return outcome


# --- host ------------------------------------------------------------------------------------


def host(target: str, options: GatherOptions, *, vms: bool = False) -> dict:
    from migcheck.hostinfo import host_summary

    with Gatherer(options) as gatherer:
        facts = gatherer.gather(target, list_vms=vms)
    return host_summary(facts, shipped_catalog())


# --- fleet -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetOutcome:
    result: FleetResult  # after the assumptions, if any
    changes: list[Change] | None  # None without --assume
    exit_code: int


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
    catalog: Catalog,
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


def fleet(
    hosts: Sequence[str],
    options: GatherOptions,
    *,
    cmdlines: Sequence[str] = (),
    domain_xml: Sequence[str] = (),
    inventory: str | None = None,
    assume: Sequence[str] = (),
    both_ways: bool = False,
    strict: bool = False,
    many: GatherMany | None = None,
) -> FleetOutcome:
    """Which hosts can take which guests; with ``assume``, what an upgrade would change."""
    assumptions = [Assumption.parse(a) for a in assume]
    guests = load_guests(cmdlines, domain_xml)
    names, groups = resolve_hosts(hosts, inventory)
    catalog = shipped_catalog()
    results = (many or (lambda t: gather_many(t, options)))([target for _, target in names])
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
    if not assumptions:
        return FleetOutcome(result, None, fleet_exit_code(result))
    after_facts = apply_assumptions(facts, groups, assumptions, catalog)
    final = evaluate(
        guests, after_facts, catalog, failed_hosts=failed, both_ways=both_ways, strict=strict
    )
    changes = compare(result, final)
    return FleetOutcome(final, changes, fleet_exit_code(result, changes))


def fleet_exit_code(result: FleetResult, changes: Sequence[Change] | None = None) -> int:
    """A known reason to refuse (1) wins over missing data (3), as in ``pair``."""
    if changes is not None:
        if any(c.regression for c in changes):
            return EXIT_UNSAFE
        return EXIT_UNKNOWN if result.failed_hosts else EXIT_SAFE
    if any(c.verdict is Verdict.UNSAFE for c in result.cells.values()):
        return EXIT_UNSAFE
    if result.failed_hosts or result.verdict is Verdict.UNKNOWN:
        return EXIT_UNKNOWN
    return EXIT_SAFE


# --- portable --------------------------------------------------------------------------------


def portable(
    hosts: Sequence[str],
    options: GatherOptions,
    *,
    cmdline: str,
    use_platform: bool = True,
    many: GatherMany | None = None,
):
    """Rewrite the guest's command line so it can live on every host (a PortableResult)."""
    from migcheck.cmdline import load_cmdline
    from migcheck.portable import make_portable

    if Path(cmdline).suffix == ".xml":
        raise MigcheckError(
            f"{cmdline}: portable rewrites QEMU command lines; for a libvirt guest, judge "
            "the XML with 'pair --domain-xml' and apply the fixes in the XML (or give the "
            "command line from 'virsh domxml-to-native qemu-argv')"
        )
    vm = load_cmdline(cmdline)
    catalog = shipped_catalog()
    results = (many or (lambda t: gather_many(t, options)))(list(dict.fromkeys(hosts)))
    for result in sorted(results, key=lambda r: isinstance(r.error, HostError)):
        if result.error is not None:
            raise result.error
    facts = [r.facts for r in results if r.facts is not None]
    return make_portable(vm, facts, catalog, use_platform=use_platform)


# --- trial -----------------------------------------------------------------------------------


def _trial_guest_check(vm: VmSpec) -> None:
    if not vm.text:
        raise InputError(
            f"{vm.source}: a trial needs the guest's QEMU command line; migcheck's domain XML "
            "conversion does not carry the memory size and vCPU topology the skeleton must "
            "keep. Convert it on a libvirt host (virsh domxml-to-native qemu-argv FILE > "
            "guest.args) and give --cmdline guest.args"
        )


def trial_show(
    cmdline: str | None = None, domain_xml: str | None = None, vm: VmSpec | None = None
) -> str:
    """Both skeleton command lines (``trial --show``): what would run on each host."""
    from migcheck.trial.skeleton import build

    spec = vm if vm is not None else load_guest(cmdline, domain_xml)
    _trial_guest_check(spec)
    sk = build(spec)
    lines = [f"# source ({spec.source}); disk sizes are read on the source at trial time"]
    lines.append(sk.command_line())
    lines.append("# destination")
    lines.append(sk.command_line() + " -S -incoming defer")
    for note in sk.notes:
        lines.append(f"# note: {note}")
    for reason in sk.refused:
        lines.append(f"# REFUSED: {reason}")
    return "\n".join(lines) + "\n"


def trial(
    src: str,
    dst: str,
    options: GatherOptions,
    *,
    cmdline: str | None = None,
    domain_xml: str | None = None,
    vm_name: str | None = None,
    strict: bool = False,
    trial_options: object | None = None,
) -> PairOutcome:
    """The static judgment of ``pair`` plus a real migration of the guest's skeleton from
    SRC to DST over SSH (issue 23). The verdict is the worse of the two."""
    from dataclasses import replace

    from migcheck.hosts import parse_host
    from migcheck.transport.settings import SshSettings

    refs = [parse_host(h) for h in (src, dst)]
    for text, ref in zip((src, dst), refs, strict=True):
        if ref.kind != "ssh":
            raise InputError(
                f"trial: {text} is not an SSH host: a trial runs QEMU on both hosts "
                "([user@]name[:port] or ssh://...)"
            )
    if domain_xml is not None or (cmdline or "").endswith(".xml"):
        _trial_guest_check(load_guest(cmdline, domain_xml))
    from migcheck.transport.ssh import SshSession

    settings = options.ssh or SshSettings()
    if settings.timeout != options.timeout:
        settings = replace(settings, timeout=options.timeout)
    with SshSession(settings) as session:
        # One login per host: the probe's connection stays open for the trial's agents.
        session.keep_connections = True
        return _trial(
            src, dst, refs, options, session, cmdline, domain_xml, vm_name, strict, trial_options
        )


def _trial(
    src: str,
    dst: str,
    refs: list[HostRef],
    options: GatherOptions,
    session: SshSession,
    cmdline: str | None,
    domain_xml: str | None,
    vm_name: str | None,
    strict: bool,
    trial_options: object | None,
) -> PairOutcome:
    from dataclasses import replace

    from migcheck.findings import Finding, Status
    from migcheck.trial import remote, report
    from migcheck.trial.skeleton import build, disk_paths

    static = pair(
        src,
        dst,
        options,
        cmdline=cmdline,
        domain_xml=domain_xml,
        vm_name=vm_name,
        strict=strict,
        session=session,
    )
    vm = static.forward.vm
    _trial_guest_check(vm)
    blockers = [
        f for f in static.forward.findings if f.id.startswith("blocker") and f.status is Status.FAIL
    ]
    if blockers:
        # QEMU would refuse the migration: nothing to learn, and nothing is started.
        found = [
            Finding(
                "trial.start",
                Status.UNKNOWN,
                "the trial did not run: the guest has a migration blocker ("
                + "; ".join(f.message for f in blockers)[:400]
                + ")",
            )
        ]
    else:
        opts = trial_options if isinstance(trial_options, remote.TrialOptions) else None
        run, _ = remote.run(
            session,
            refs[0],
            refs[1],
            lambda sizes, reserve_off: build(vm, sizes, reserve_off=reserve_off),
            opts or remote.TrialOptions(),
            disk_paths(vm),
        )
        found = report.findings(run)
    findings, verdict = report.join(static.forward.findings, found, strict=strict)
    forward = replace(static.forward, findings=findings, verdict=verdict)
    return PairOutcome(forward, None, verdict)
