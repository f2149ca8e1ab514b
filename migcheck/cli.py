"""Command-line interface: options in, one library call (:mod:`migcheck.commands`), a
renderer from :mod:`migcheck.report.formats` out. Nothing here judges.

Exit codes (a contract, see README): 0 safe, 1 unsafe, 2 bad input or usage, 3 unknown.
Machine output (JSON, JUnit, Markdown, HTML) goes to stdout unformatted; diagnostics go to
stderr. The gathering options every command shares are declared once (:func:`gathers`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from migcheck import __version__, clirun, commands
from migcheck.errors import MigcheckError
from migcheck.gather import GatherOptions, HostResult

# The contract CI gates rely on (DESIGN.md); README states the same table.
EXIT_CODES_HELP = """Exit codes, the same in every command:

\b
  0 safe: something was judged and every judged migration is safe
  1 unsafe: any judged migration is unsafe
  2 bad input or usage: the message names the file, line or option
  3 unknown: none unsafe and at least one unknown, or nothing judged
    (a one-host fleet, hosts whose facts are implausible)
  fleet --assume: 1 if any cell became unsafe, else 3 if any safe cell
    became unknown, else 0"""

# typer escapes "[default: ...]" and "[required]" for rich markup whenever rich is installed,
# even with rich_markup_mode=None, so plain help showed a backslash before each. The flag is
# read only there and for rich-formatted help and errors, which migcheck does not use.
typer.core.HAS_RICH = False

app = typer.Typer(
    name="migcheck",
    help="Can this QEMU/KVM guest live-migrate safely from one host to another?",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # main() turns stray exceptions into one paragraph
    pretty_exceptions_show_locals=False,  # never put keys or passwords on screen
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class PairFormat(str, Enum):
    table = "table"
    json = "json"
    junit = "junit"
    markdown = "markdown"


PairFormatOpt = Annotated[PairFormat, typer.Option("--format", "-f", help="Output format.")]


class DocFormat(str, Enum):
    table = "table"
    json = "json"


# --- the options every gathering command shares, declared once ---------------------------

CmdlineOpt = Annotated[
    str | None,
    typer.Option("--cmdline", "-c", help="QEMU command line file of the guest ('-' for stdin)."),
]
DomainXmlOpt = Annotated[
    str | None,
    typer.Option("--domain-xml", "-x", help="libvirt domain XML of the guest (virsh dumpxml)."),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Treat warnings as unsafe.")]
VmOpt = Annotated[
    str | None,
    typer.Option("--vm", help="Judge the running guest NAME on SRC (its real argv)."),
]
AcceptUnreviewedOpt = Annotated[
    bool,
    typer.Option(
        "--accept-unreviewed-qemu",
        help="Judge a QEMU newer than the catalog has reviewed with what is known "
        "(a warning instead of unknown).",
    ),
]
MaxMemoryOpt = Annotated[
    str,
    typer.Option(
        "--max-memory",
        help="Refuse a trial of a guest with more memory than this (e.g. 64G); raise it to "
        "accept a bigger skeleton.",
    ),
]
StepTimeoutOpt = Annotated[
    float, typer.Option("--step-timeout", min=1.0, help="Trial: deadline per step, seconds.")
]

_SHARED: tuple[tuple[str, Any, Any], ...] = (
    (
        "timeout",
        Annotated[
            float,
            typer.Option("--timeout", min=1.0, help="Deadline in seconds for gathering each host."),
        ],
        30.0,
    ),
    (
        "qemu",
        Annotated[
            str | None,
            typer.Option(
                "--qemu", help="QEMU binary on the hosts (default: qemu-system-ARCH, qemu-kvm)."
            ),
        ],
        None,
    ),
    (
        "ssh_config",
        Annotated[
            Path | None,
            typer.Option("--ssh-config", "-F", help="ssh_config file (default: ~/.ssh/config)."),
        ],
        None,
    ),
    (
        "identity",
        Annotated[
            list[str] | None,
            typer.Option("--identity", "-i", help="Private key file; repeat for several."),
        ],
        None,
    ),
    (
        "user",
        Annotated[
            str | None, typer.Option("--user", "-l", help="SSH user for HOSTs without user@.")
        ],
        None,
    ),
    (
        "port",
        Annotated[
            int | None,
            typer.Option(
                "--port", "-p", min=1, max=65535, help="SSH port for HOSTs without :port."
            ),
        ],
        None,
    ),
    (
        "jump",
        Annotated[
            str | None,
            typer.Option(
                "--jump",
                "-J",
                help="Jump host(s), as ssh -J: [user@]host[:port][,...] (ProxyJump).",
            ),
        ],
        None,
    ),
    (
        "ssh_option",
        Annotated[
            list[str] | None,
            typer.Option(
                "--ssh-option",
                help="An ssh_config option, as ssh -o Key=Value; repeatable. Options migcheck "
                "cannot honour (password or GSSAPI auth, StrictHostKeyChecking=no, ...) are "
                "refused by name.",
            ),
        ],
        None,
    ),
    (
        "verbose",
        Annotated[
            bool,
            typer.Option(
                "--verbose",
                "-v",
                help="Show passed checks too, and the SSH steps per host on stderr (ssh -v).",
            ),
        ],
        False,
    ),
    (
        "accept_new_host_keys",
        Annotated[
            bool,
            typer.Option(
                "--accept-new-host-keys",
                help="Record unknown host keys in known_hosts (OpenSSH accept-new); changed "
                "keys are always refused.",
            ),
        ],
        False,
    ),
    (
        "sudo",
        Annotated[
            bool, typer.Option("--sudo", help="Run the probe through 'sudo -n' (never prompts).")
        ],
        False,
    ),
    (
        "refresh",
        Annotated[
            bool,
            typer.Option(
                "--refresh",
                help="Start QEMU on every host even if its cached answers are still valid.",
            ),
        ],
        False,
    ),
)
_JOBS = Annotated[int, typer.Option("--jobs", "-j", min=1, max=512, help="Hosts in parallel.")]


def gathers(jobs: int | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the shared gathering options (and ``--jobs`` when ``jobs`` is its
    default); the command receives them as one ``options: GatherOptions`` argument."""

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        own = [
            p
            for p in inspect.signature(func, eval_str=True).parameters.values()
            if p.name != "options"
        ]
        shared = [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=d)
            for n, a, d in _SHARED
        ]
        if jobs is not None:
            shared.insert(
                0,
                inspect.Parameter(
                    "jobs", inspect.Parameter.KEYWORD_ONLY, annotation=_JOBS, default=jobs
                ),
            )
        names = {p.name for p in shared}

        @functools.wraps(func)
        def command(**kwargs: Any) -> None:
            values = {n: kwargs.pop(n) for n in names}
            clirun.set_verbose(values.pop("verbose"))
            values.setdefault("jobs", 2)  # pair and host gather two hosts at most
            func(**kwargs, options=clirun.gather_options(**values))

        del command.__wrapped__  # typer must see the new signature, not the function's
        params = own + shared
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def _gather_all(hosts: list[str], options: GatherOptions, show_progress: bool) -> list[HostResult]:
    """Gather in parallel; a transient progress bar on a terminal, never in pipes or JSON."""
    err = clirun.stderr()
    if not (show_progress and err.is_terminal and len(hosts) > 1):
        return commands.gather_many(hosts, options)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (
        TextColumn("gathering"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("", total=len(hosts))

        def tick(result: HostResult) -> None:
            progress.update(task, advance=1, description=result.ref.text)

        return commands.gather_many(hosts, options, progress=tick)


@contextlib.contextmanager
def _load_progress(show: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A transient bar while a fleet's facts are read: on a terminal only, never in pipes
    or when JSON goes to stdout."""
    err = clirun.stderr()
    if not (show and err.is_terminal):
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("reading facts"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("", total=None)

        def tick(done: int, total: int, name: str) -> None:
            if done == 1 or done % 50 == 0 or done == total:  # redraws cost more than reads
                bar.update(task, completed=done, total=total)

        yield tick


OutputOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--output",
        "-o",
        help="Also write the report to FILE, in the format its extension names (.json, .xml "
        "JUnit, .md Markdown, .html); repeatable, so one run feeds several CI reporters.",
    ),
]


# --- commands ------------------------------------------------------------------------------


@app.command()
@gathers()
def pair(
    src: Annotated[
        str, typer.Argument(help="Source HOST: local, a facts .json, [user@]name[:port].")
    ],
    dst: Annotated[str, typer.Argument(help="Destination HOST.")],
    options: GatherOptions,
    cmdline: CmdlineOpt = None,
    domain_xml: DomainXmlOpt = None,
    vm_name: VmOpt = None,
    fmt: PairFormatOpt = PairFormat.table,
    both_ways: Annotated[
        bool, typer.Option("--both-ways", help="Also check the way back.")
    ] = False,
    strict: StrictOpt = False,
    accept_unreviewed_qemu: AcceptUnreviewedOpt = False,
    output: OutputOpt = None,
    run_trial: Annotated[
        bool,
        typer.Option(
            "--trial", help="Also migrate a skeleton of the guest for real (see `trial`)."
        ),
    ] = False,
    max_memory: MaxMemoryOpt = "64G",
    step_timeout: StepTimeoutOpt = 30.0,
) -> None:
    """Judge whether the guest can live-migrate from SRC to DST."""
    clirun.pair(
        src, dst, options, cmdline=cmdline, domain_xml=domain_xml, vm_name=vm_name,
        fmt=fmt.value, both_ways=both_ways, strict=strict,
        accept_unreviewed_qemu=accept_unreviewed_qemu, output=output, run_trial=run_trial,
        max_memory=max_memory, step_timeout=step_timeout,
    )  # fmt: skip


@app.command()
@gathers()
def trial(
    src: Annotated[str, typer.Argument(help="Source HOST: [user@]name[:port] (SSH).")],
    dst: Annotated[str, typer.Argument(help="Destination HOST (SSH).")],
    options: GatherOptions,
    cmdline: CmdlineOpt = None,
    domain_xml: DomainXmlOpt = None,
    vm_name: VmOpt = None,
    fmt: PairFormatOpt = PairFormat.table,
    strict: StrictOpt = False,
    show: Annotated[
        bool,
        typer.Option("--show", help="Print both skeleton command lines and run nothing."),
    ] = False,
    max_memory: MaxMemoryOpt = "64G",
    step_timeout: StepTimeoutOpt = 30.0,
    output: OutputOpt = None,
) -> None:
    """Prove the verdict: migrate a throwaway skeleton of the guest (same ABI, null disks,
    networks and chardevs) from SRC to DST over SSH, next to the static checks.

    Nothing of the real guest is touched; everything started is removed afterwards. A trial
    that cannot run (refused device, not enough memory) is unknown (exit 3), never safe."""
    from migcheck.report.formats import PAIR_FORMATS

    files, to_stdout = clirun.plan_outputs(output, PAIR_FORMATS, fmt.value)
    try:
        if show:
            vm = None
            if vm_name is not None:
                from migcheck.gather import running_guest

                facts = commands._pair_facts(commands.gather_many([src], options))
                vm = running_guest(facts[0], vm_name)
            sys.stdout.write(commands.trial_show(cmdline, domain_xml, vm))
            raise typer.Exit(0)
        outcome = commands.trial(
            src, dst, options, cmdline=cmdline, domain_xml=domain_xml, vm_name=vm_name,
            strict=strict, trial_options=clirun.trial_options(max_memory, step_timeout),
        )  # fmt: skip
    except MigcheckError as err:
        clirun.fail(err)
    clirun.emit_pair(outcome, files, to_stdout, fmt.value)
    raise typer.Exit(outcome.exit_code)


@app.command()
@gathers(jobs=32)
def gather(
    options: GatherOptions,
    hosts: Annotated[
        list[str] | None, typer.Argument(help="HOSTs to probe: local, [user@]name[:port].")
    ] = None,
    from_ansible: Annotated[
        Path | None,
        typer.Option(
            "--from-ansible",
            help="Load probe outputs instead of probing: an 'ansible -m script --tree' "
            "directory, or a directory of saved probe outputs.",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", help="Directory to write one HOST.json per host."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", hidden=True, help="Deprecated spelling of --out-dir."),
    ] = None,
) -> None:
    """Probe hosts and save their facts (to stdout for a single host without --out-dir)."""
    err = clirun.stderr()
    if out is not None:
        err.print("migcheck: --out is deprecated; use --out-dir", markup=False)
        out_dir = out_dir or out
    try:
        if from_ansible is not None:
            outcome = commands.gather_from_ansible(from_ansible, out_dir)
        else:
            outcome = commands.gather(
                hosts or [],
                options,
                out_dir=out_dir,
                many=lambda t: _gather_all(t, options, show_progress=out_dir is not None),
            )
    except MigcheckError as exc:
        clirun.fail(exc)
    if out_dir is None:
        for result in outcome.results:
            if result.facts is not None:
                clirun.write_text(json.dumps(result.facts.doc, indent=1, sort_keys=True) + "\n")
    for result in outcome.results:
        if result.error is not None:
            err.print(f"migcheck: {result.error}", markup=False)
    if out_dir is not None:
        from migcheck.report.gather import render_summary

        render_summary(err, outcome.results)
    raise typer.Exit(outcome.exit_code)


@app.command("probe-script")
def probe_script_cmd(
    qemu: Annotated[
        str | None,
        typer.Option(
            "--qemu", help="QEMU binary on the hosts (default: qemu-system-ARCH, qemu-kvm)."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--qemu-timeout", min=1.0, help="Deadline for the QEMU exchange.")
    ] = 20.0,
    skip_known_builds: Annotated[
        bool,
        typer.Option(
            "--skip-known-builds",
            help="Hosts running a QEMU build this machine already holds (from an earlier "
            "gather) do not send its schema (about 0.5 MB and 1 s of QEMU queries per "
            "host); load the results with 'gather --from-ansible' on this machine.",
        ),
    ] = False,
) -> None:
    """Print the probe, for orchestration you already run (Ansible's script module, Salt,
    SSH multiplexers); load the results with 'gather --from-ansible DIR'."""
    from migcheck.probe import probe_script

    config: dict = {"qemu_timeout": timeout}
    if qemu:
        config["qemu"] = qemu
    if skip_known_builds:
        from migcheck.build import known_keys

        config["known_builds"] = known_keys()
    clirun.write_text("#!/usr/bin/env python3\n" + probe_script(config))


@app.command()
def cmdline(
    file: Annotated[str, typer.Argument(help="QEMU command line file ('-' for stdin).")],
    fmt: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.table,
) -> None:
    """Show what migcheck understood of a QEMU command line."""
    try:
        vm = commands.load_guest(file)
    except MigcheckError as err:
        clirun.fail(err)
    doc = vm.to_json()  # redacted: secrets never reach the terminal
    if fmt is DocFormat.json:
        clirun.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        return
    from migcheck.report.host import render_vm

    render_vm(clirun.stdout(), vm.source, doc)


@app.command()
@gathers()
def host(
    target: Annotated[str, typer.Argument(help="HOST: local, a facts .json, [user@]name[:port].")],
    options: GatherOptions,
    fmt: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.table,
    vms: Annotated[bool, typer.Option("--vms", help="List the running QEMU guests.")] = False,
) -> None:
    """Summarise one host's facts: kernel, CPU, KVM, QEMU, machine types, usable CPU models."""
    try:
        summary = commands.host(target, options, vms=vms)
    except MigcheckError as err:
        clirun.fail(err)
    if fmt is DocFormat.json:
        clirun.write_text(json.dumps(summary, indent=2) + "\n")
        return
    from migcheck.report.host import render_host

    render_host(clirun.stdout(), summary)


class FleetFormat(str, Enum):
    table = "table"
    json = "json"
    junit = "junit"
    markdown = "markdown"
    html = "html"


@app.command()
@gathers(jobs=32)
def fleet(
    options: GatherOptions,
    hosts: Annotated[
        list[str] | None, typer.Argument(help="HOSTs (or, with --inventory, host/group names).")
    ] = None,
    cmdlines: Annotated[
        list[str] | None,
        typer.Option("--cmdline", "-c", help="Guest command line file or directory; repeatable."),
    ] = None,
    domain_xml: Annotated[
        list[str] | None,
        typer.Option("--domain-xml", "-x", help="Guest libvirt domain XML file or directory."),
    ] = None,
    inventory: Annotated[
        str | None,
        typer.Option(
            "--inventory",
            "-I",
            help="Hosts file or Ansible inventory: INI, YAML, 'ansible-inventory --list' "
            "JSON, a directory (with group_vars/, host_vars/) or an executable script.",
        ),
    ] = None,
    assume: Annotated[
        list[str] | None,
        typer.Option(
            "--assume",
            help="What-if: HOST_OR_GROUP:kernel=X.Y.Z, :qemu=X.Y.Z or :os=rhel-9.6 (repeatable).",
        ),
    ] = None,
    fmt: Annotated[FleetFormat, typer.Option("--format", "-f")] = FleetFormat.table,
    output: OutputOpt = None,
    both_ways: Annotated[
        bool, typer.Option("--both-ways", help="A cell passes only if the guest can come back.")
    ] = False,
    strict: StrictOpt = False,
    cached: Annotated[
        bool,
        typer.Option(
            "--cached",
            help="Judge each HOST from its facts in the probe cache, contacting no host; a "
            "host with no cached facts is unknown.",
        ),
    ] = False,
    digest_cache: Annotated[
        bool,
        typer.Option(
            "--digest-cache/--no-digest-cache",
            help="Reuse each unchanged facts file's class digest from the last run.",
        ),
    ] = True,
    accept_unreviewed_qemu: AcceptUnreviewedOpt = False,
) -> None:
    """Which hosts can take which guests; with --assume, what an upgrade would break.

    The table ends with one verdict line, the one the exit code states. Ctrl-C prints what
    was judged so far, marked incomplete (exit 3, or 1 if a judged
    cell is unsafe)."""
    from migcheck.report.formats import FLEET_FORMATS, FleetReports

    files, to_stdout = clirun.plan_outputs(output, FLEET_FORMATS, fmt.value)
    show = fmt is FleetFormat.table or not to_stdout
    try:
        with _load_progress(show) as progress:
            outcome = commands.fleet(
                hosts or [],
                options,
                cmdlines=cmdlines or [],
                domain_xml=domain_xml or [],
                inventory=inventory,
                assume=assume or [],
                both_ways=both_ways,
                strict=strict,
                many=lambda t: _gather_all(t, options, show_progress=True),
                from_cache=cached,
                digest_cache=digest_cache,
                progress=progress,
                accept_unreviewed_qemu=accept_unreviewed_qemu,
            )
    except MigcheckError as err:
        clirun.fail(err)
    if not outcome.result.complete:
        clirun.stderr().print(
            "migcheck: interrupted: the report shows only what was judged (complete: false)",
            markup=False,
        )
    reports = FleetReports(outcome.result, outcome.changes)  # -o and stdout: rendered once
    for path, kind in files:
        clirun.emit(reports.render(kind, clirun.stdout), path)
    if to_stdout:
        with clirun.pipe_safe():
            clirun.emit(reports.render(fmt.value, clirun.stdout))
    raise typer.Exit(outcome.exit_code)


class PortableFormat(str, Enum):
    cmdline = "cmdline"
    diff = "diff"
    json = "json"
    libvirt = "libvirt"


@app.command()
@gathers()
def portable(
    hosts: Annotated[
        list[str], typer.Argument(help="The HOSTs the guest must be able to live on.")
    ],
    options: GatherOptions,
    cmdline: CmdlineOpt = None,
    domain_xml: DomainXmlOpt = None,
    fmt: Annotated[
        PortableFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="cmdline (default for --cmdline), diff, json, or libvirt: the <cpu> element "
            "and machine type for the domain XML (default for --domain-xml).",
        ),
    ] = None,
    use_platform: Annotated[
        bool,
        typer.Option(
            "--platform",
            help="Pin kernel-dependent defaults with -platform (a QEMU with -platform only; "
            "no released QEMU has it) instead of switching device properties off.",
        ),
    ] = False,
    accept_unreviewed_qemu: AcceptUnreviewedOpt = False,
    no_platform: Annotated[
        bool, typer.Option("--no-platform", hidden=True, help="The default now; accepted.")
    ] = False,
) -> None:
    """Rewrite a guest so it can live-migrate between all HOSTs (what released QEMU
    accepts: machine type, CPU model and features, device properties)."""
    # A .xml given as --cmdline is read as domain XML, as pair does.
    is_xml = domain_xml is not None or (cmdline not in (None, "-") and cmdline.endswith(".xml"))
    if fmt is None:
        fmt = PortableFormat.libvirt if is_xml else PortableFormat.cmdline
    if is_xml and fmt in (PortableFormat.cmdline, PortableFormat.diff):
        clirun.fail(
            MigcheckError(
                f"--format {fmt.value}: a --domain-xml guest has no command line to rewrite; "
                "use --format libvirt or json"
            )
        )
    try:
        result = commands.portable(
            hosts,
            options,
            cmdline=cmdline,
            domain_xml=domain_xml,
            use_platform=use_platform and not no_platform,
            many=lambda t: _gather_all(t, options, show_progress=True),
            accept_unreviewed_qemu=accept_unreviewed_qemu,
        )
    except MigcheckError as err:
        clirun.fail(err)
    from migcheck.portable import to_libvirt

    if fmt is PortableFormat.json:
        clirun.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    elif result.ok and fmt is PortableFormat.diff:
        clirun.write_text(result.diff())
    elif result.ok and fmt is PortableFormat.libvirt:
        clirun.write_text(to_libvirt(result))
    elif result.ok:
        clirun.write_text(result.text or "")
    err = clirun.stderr()
    if result.ok:
        for change in result.changes:
            err.print(f"changed -{change.option}: {change.reason}", markup=False)
        for name, lost in result.losses.items():
            err.print(f"on {name} the guest loses: {', '.join(lost)}", markup=False)
        if not result.changes:
            err.print("already portable: nothing to change", markup=False)
        if result.unverified:
            err.print("migcheck: rewritten, but not proven safe for every pair:", markup=False)
            for why in result.unverified:
                err.print(f"  - {why}", markup=False)
        raise typer.Exit(result.verdict.exit_code)
    if fmt is not PortableFormat.json:
        err.print(
            f"migcheck: {result.original.source} cannot be made portable across these hosts:",
            markup=False,
        )
        for problem in result.problems:
            err.print(f"  - {problem}", markup=False)
    raise typer.Exit(1)


platforms_app = typer.Typer(
    help="The platform catalog: list, show one, draw the superset graph (-platform help).",
    no_args_is_help=True,
)
app.add_typer(platforms_app, name="platforms")


class GraphFormat(str, Enum):
    text = "text"
    json = "json"
    dot = "dot"
    mermaid = "mermaid"


@platforms_app.command("list")
def platforms_list(
    fmt: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.table,
) -> None:
    """List every platform, like '-platform help' would."""
    from migcheck.catalog import shipped_catalog
    from migcheck.platforms import list_view
    from migcheck.report import platforms as render

    try:
        view = list_view(shipped_catalog())
    except MigcheckError as err:
        clirun.fail(err)
    if fmt is DocFormat.json:
        clirun.write_text(render.list_json(view))
    else:
        render.render_list(clirun.stdout(), view)


@platforms_app.command("show")
def platforms_show(
    name: Annotated[str, typer.Argument(help="Platform name, e.g. linux-6.2.")],
    fmt: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.table,
) -> None:
    """One platform: its capabilities with sources, its parents and children."""
    from migcheck.catalog import shipped_catalog
    from migcheck.platforms import show_view
    from migcheck.report import platforms as render

    try:
        doc = show_view(shipped_catalog(), name)
    except MigcheckError as err:
        clirun.fail(err)
    if fmt is DocFormat.json:
        clirun.write_text(render.show_json(doc))
    else:
        render.render_show(clirun.stdout(), doc)


@platforms_app.command("graph")
def platforms_graph(
    fmt: Annotated[GraphFormat, typer.Option("--format", "-f")] = GraphFormat.text,
) -> None:
    """The superset graph (transitively reduced): text, json, dot or mermaid."""
    from migcheck.catalog import shipped_catalog
    from migcheck.platforms import graph_view
    from migcheck.report import platforms as render

    try:
        view = graph_view(shipped_catalog())
    except MigcheckError as err:
        clirun.fail(err)
    renderer = {
        GraphFormat.text: render.graph_text,
        GraphFormat.json: render.graph_json,
        GraphFormat.dot: render.graph_dot,
        GraphFormat.mermaid: render.graph_mermaid,
    }[fmt]
    clirun.write_text(renderer(view))


def version_callback(value: bool) -> None:
    if value:
        print(f"migcheck {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=version_callback, is_eager=True, help="Show version."),
    ] = False,
) -> None:
    """Can this QEMU/KVM guest live-migrate safely from one host to another?"""


def main() -> None:
    clirun.guarded(app)


if __name__ == "__main__":
    main()
