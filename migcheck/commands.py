"""What every command does, as library calls that return results and exit codes.

``cli.py`` only declares options, calls one function here and hands the result to a
renderer from :mod:`migcheck.report.formats`. Everything a command does is callable from
Python (and tested) without the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from migcheck.errors import (
    EXIT_INPUT,
    EXIT_SAFE,
    EXIT_UNKNOWN,
    HostError,
    InputError,
    MigcheckError,
)
from migcheck.facts import Facts, save_facts
from migcheck.gather import (
    Gatherer,
    GatherOptions,
    HostResult,
    file_name_for,
    iter_probe_outputs,
    running_guest,
    safe_file_stem,
)
from migcheck.hosts import HostRef, parse_host
from migcheck.verdict import Verdict, combine
from migcheck.vm import VmSpec

if TYPE_CHECKING:  # the fleet's modules cost ~6 ms to import; pair and host never need them
    from migcheck.catalog import Catalog
    from migcheck.fleet import Assumption, Change, FleetResult
    from migcheck.fleetload import LoadedFleet, LoadProgress
    from migcheck.hosts import HostRef
    from migcheck.pair import PairReport
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

    def load_domain_xml(path: str) -> VmSpec:
        from migcheck.domainxml import load_domain_xml  # 12 ms: only when XML is given

        return load_domain_xml(path)

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
    accept_unreviewed_qemu: bool = False,
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
        from concurrent.futures import ThreadPoolExecutor  # ~8 ms: only when hosts are probed

        gatherer_ = Gatherer(options, session, borrowed=session is not None)
        with gatherer_ as gatherer, ThreadPoolExecutor(2) as pool:
            first = pool.submit(gatherer.gather, src, vm=vm_name)
            second = pool.submit(gatherer.gather, dst)
            facts = [first.result(), second.result()]
        vm = running_guest(facts[0], vm_name)
    from migcheck.pair import check_pair

    accept = accept_unreviewed_qemu
    forward = check_pair(vm, facts[0], facts[1], strict=strict, accept_unreviewed=accept)
    reverse = (
        check_pair(vm, facts[1], facts[0], strict=strict, accept_unreviewed=accept)
        if both_ways
        else None
    )
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


def make_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MigcheckError(
            f"--out-dir {out_dir}: cannot create directory: {exc.strerror}"
        ) from None


def file_name_for_text(text: str) -> str:
    return f"{safe_file_stem(text).lstrip('.') or 'host'}.json"


def planned_file_name(ref: HostRef) -> str | None:
    """The file a HOST's facts will be saved as, known before gathering (None for a facts
    file, whose host name is inside it): the name its facts will carry."""
    if ref.kind == "local":
        import socket

        return file_name_for_text(socket.gethostname())
    if ref.kind == "ssh":
        return file_name_for_text(ref.name)
    return None


def check_distinct_files(hosts: Sequence[str]) -> None:
    """Two HOSTs that would write the same file (``root@hv1`` and ``hv1:2222``) are an
    input error before any host is contacted: one would silently replace the other."""
    from migcheck.hosts import parse_host

    seen: dict[str, str] = {}
    for text in hosts:
        name = planned_file_name(parse_host(text))
        if name is None:
            continue
        if name in seen:
            raise InputError(
                f"HOSTs {seen[name]!r} and {text!r} would both be saved as {name}; "
                "gather them into separate --out-dir directories"
            )
        seen[name] = text


# A file name longer than NAME_MAX (255 bytes on Linux file systems) cannot exist.
MAX_FILE_NAME = 255


def save_results(
    results: list[HostResult], out_dir: Path, used: set[str] | None = None
) -> list[Path]:
    """One facts file per gathered host, each written atomically (see migcheck.safefile).
    A host whose name cannot be a file name gets that as its error; the others are still
    written. A write that fails for the directory's sake (full disk, read-only) stops with
    one error naming what was and was not written; earlier files stay intact. ``used``:
    the names taken so far, when results come in several calls."""
    from migcheck.safefile import WriteError

    make_out_dir(out_dir)
    used = set() if used is None else used
    written: list[Path] = []
    for result in results:
        if result.facts is None:
            continue
        try:
            name = file_name_for(result.facts)
            if name in used:
                name = file_name_for_text(result.ref.text)
            if len(name.encode("utf-8")) > MAX_FILE_NAME or name in used:
                raise InputError(f"host name {result.facts.name[:80]!r}... is no file name")
        except InputError as exc:
            result.error = HostError(result.ref.text, f"facts not saved: {exc}")
            result.facts = None
            continue
        used.add(name)
        try:
            save_facts(result.facts, out_dir / name)
        except WriteError as exc:
            import errno

            if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ):
                result.error = HostError(result.ref.text, f"facts not saved: {exc}")
                result.facts = None
                continue
            done = ", ".join(p.name for p in written) or "none"
            raise MigcheckError(
                f"{exc}. Facts written before the failure: {done}; any file that was "
                "already there for the others is unchanged"
            ) from None
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
        check_distinct_files(unique)
        make_out_dir(out_dir)  # before any host is contacted
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise MigcheckError(f"--out-dir {out_dir}: directory is not writable")
    results = (many or (lambda t: gather_many(t, options)))(unique)
    written = save_results(results, out_dir) if out_dir is not None else []
    return GatherOutcome(results, written)


def gather_from_ansible(directory: Path, out_dir: Path | None) -> GatherOutcome:
    if out_dir is None:
        raise MigcheckError("give --out-dir DIR to save facts loaded with --from-ansible")
    # Streamed: each host's facts are written, then only a summary of them is kept, so
    # memory does not grow with the fleet (each probe output carries ~1 MB of build data).
    results: list[HostResult] = []
    written: list[Path] = []
    used: set[str] = set()
    for result in iter_probe_outputs(directory):
        written += save_results([result], out_dir, used)
        if result.facts is not None:
            result.facts = _summary_facts(result.facts)
        results.append(result)
    return GatherOutcome(results, written)


# What the gather summary reads (report/gather.py: Facts.kernel_release, qemu_version,
# cpu_summary, kvm_usable): each section cut to these keys, its error kept.
_SUMMARY_KEYS = {
    "host": ("name",),
    "kernel": ("release",),
    "qemu": ("version",),
    "cpu": ("model_name", "vendor", "family", "model", "stepping"),
    "kvm": ("present", "usable", "error_open"),
}


def _summary_facts(facts: Facts) -> Facts:
    """What the gather summary shows (kernel, QEMU version, CPU, KVM) and nothing else:
    ``gather --from-ansible`` keeps one per host (under 1 KB), never a host's facts."""
    doc: dict = {}
    for name, keys in _SUMMARY_KEYS.items():
        section = facts.doc.get(name)
        if isinstance(section, dict):
            doc[name] = {k: section[k] for k in (*keys, "error") if k in section}
    return Facts(doc, facts.origin, facts.base_dir)


# --- host ------------------------------------------------------------------------------------


def host(target: str, options: GatherOptions, *, vms: bool = False) -> dict:
    from migcheck.hostinfo import host_summary

    with Gatherer(options) as gatherer:
        facts = gatherer.gather(target, list_vms=vms)
    from migcheck.catalog import shipped_catalog

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
        done: dict[int, tuple[Facts, Facts]] = {}  # hosts of a class share one Facts object
        for h in targets:
            hit = done.get(id(out[h]))
            if hit is None or hit[0] is not out[h]:
                hit = (out[h], assume(out[h], a.key, a.value, catalog))
                done[id(out[h])] = hit
            out[h] = hit[1]
    return out


def _fleet_from_files(
    names: list[tuple[str, str]],
    *,
    from_cache: bool,
    digest_cache: bool,
    progress: LoadProgress | None,
) -> LoadedFleet:
    """Facts files (or, ``from_cache``, each host's probe-cache entry), streamed: one parsed
    document per class is kept."""
    from migcheck.fleetload import DigestCache, load_fleet
    from migcheck.gather import cached_facts_paths

    entries: list[tuple[str | None, str]] = []
    missing: dict[str, str] = {}
    paths = cached_facts_paths([parse_host(t) for _, t in names]) if from_cache else []
    for i, (name, target) in enumerate(names):
        if from_cache:
            path = paths[i]
            if not path.is_file():
                missing[name] = "no facts in the probe cache (gather it once without --cached)"
                continue
            entries.append((name, str(path)))
        else:
            entries.append((None if name == target else name, target))
    loaded = load_fleet(entries, cache=DigestCache() if digest_cache else None, progress=progress)
    loaded.failed.update(missing)
    return loaded


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
    from_cache: bool = False,
    digest_cache: bool = True,
    progress: LoadProgress | None = None,
    accept_unreviewed_qemu: bool = False,
) -> FleetOutcome:
    """Which hosts can take which guests; with ``assume``, what an upgrade would change.

    Facts files (and, with ``from_cache``, the probe cache: no host is contacted) are
    streamed through :mod:`migcheck.fleetload`; other HOSTs are gathered. Ctrl-C while
    reading or judging ends with what was judged, marked incomplete (never safe)."""
    from migcheck.catalog import shipped_catalog
    from migcheck.fleet import Assumption, compare, evaluate

    assumptions = [Assumption.parse(a) for a in assume]
    guests = load_guests(cmdlines, domain_xml)
    names, groups = resolve_hosts(hosts, inventory)
    catalog = shipped_catalog()
    facts: dict[str, Facts] = {}
    failed: dict[str, str] = {}
    fingerprints: dict[str, str] | None = None
    interrupted = False
    if from_cache or all(parse_host(t).kind == "file" for _, t in names):
        loaded = _fleet_from_files(
            names, from_cache=from_cache, digest_cache=digest_cache, progress=progress
        )
        facts, failed, fingerprints = loaded.hosts, loaded.failed, loaded.fingerprints
        interrupted = loaded.interrupted
        for name in [n for n, f in facts.items() if implausible(f) is not None]:
            failed[name] = implausible(facts.pop(name)) or ""
    else:
        results = (many or (lambda t: gather_many(t, options)))([target for _, target in names])
        for (name, target), result in zip(names, results, strict=True):
            why = implausible(result.facts) if result.facts is not None else None
            if why is not None:
                failed[name] = why
            elif result.facts is not None:
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
        guests,
        facts,
        catalog,
        failed_hosts=failed,
        both_ways=both_ways,
        strict=strict,
        fingerprints=fingerprints,
        accept_unreviewed=accept_unreviewed_qemu,
    )
    result.complete = result.complete and not interrupted
    if not assumptions or not result.complete:
        return FleetOutcome(result, None, fleet_exit_code(result))
    after_facts = apply_assumptions(facts, groups, assumptions, catalog)
    final = evaluate(
        guests,
        after_facts,
        catalog,
        failed_hosts=failed,
        both_ways=both_ways,
        strict=strict,
        accept_unreviewed=accept_unreviewed_qemu,
    )
    changes = compare(result, final)
    return FleetOutcome(final, changes, fleet_exit_code(result, changes))


def fleet_exit_code(result: FleetResult, changes: Sequence[Change] | None = None) -> int:
    """The table in DESIGN.md: the exit code of :func:`migcheck.fleet.overall_verdict`
    (nothing judged is 3, never 0; under --assume only the regressions count)."""
    from migcheck.fleet import overall_verdict

    return overall_verdict(result, changes).exit_code


def implausible(facts: Facts) -> str | None:
    """Why facts cannot be judged although they loaded: a QEMU that answered with no
    machine types would make every guest look like it "cannot run there"."""
    qemu = facts.doc.get("qemu")
    usable = isinstance(qemu, dict) and "error" not in qemu and not qemu.get("cached")
    if usable and not qemu.get("machines"):
        return "implausible facts: QEMU reported no machine types"
    return None


# --- portable --------------------------------------------------------------------------------


def portable(
    hosts: Sequence[str],
    options: GatherOptions,
    *,
    cmdline: str | None = None,
    domain_xml: str | None = None,
    use_platform: bool = False,
    many: GatherMany | None = None,
    accept_unreviewed_qemu: bool = False,
):
    """Rewrite the guest so it can live on every host (a PortableResult): a command line,
    or for a libvirt domain XML its machine type and ``<cpu>``."""
    from migcheck.catalog import shipped_catalog
    from migcheck.portable import make_portable

    if (cmdline is None) == (domain_xml is None):
        raise InputError("give the guest with exactly one of --cmdline FILE and --domain-xml FILE")
    vm = load_guest(cmdline, domain_xml)
    catalog = shipped_catalog()
    results = (many or (lambda t: gather_many(t, options)))(list(dict.fromkeys(hosts)))
    for result in sorted(results, key=lambda r: isinstance(r.error, HostError)):
        if result.error is not None:
            raise result.error
    facts = [r.facts for r in results if r.facts is not None]
    return make_portable(
        vm, facts, catalog, use_platform=use_platform, accept_unreviewed=accept_unreviewed_qemu
    )


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
