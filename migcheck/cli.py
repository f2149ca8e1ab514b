"""Command-line interface: options in, one library call (:mod:`migcheck.commands`), a
renderer from :mod:`migcheck.report.formats` out. Nothing here judges.

Exit codes (a contract, see README): 0 safe, 1 unsafe, 2 bad input or usage, 3 unknown.
Machine output (JSON, JUnit, Markdown, HTML) goes to stdout unformatted; diagnostics go to
stderr. The gathering options every command shares are declared once (:func:`gathers`).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from migcheck import __version__, commands
from migcheck.errors import EXIT_UNKNOWN, MigcheckError
from migcheck.gather import GatherOptions, HostResult

app = typer.Typer(
    name="migcheck",
    help="Can this QEMU/KVM guest live-migrate safely from one host to another?",
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


class DocFormat(str, Enum):
    table = "table"
    json = "json"


def _stderr() -> Console:
    # soft_wrap: a one-paragraph error stays one line, so paths and grep survive.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _stdout() -> Console:
    return Console(highlight=False)


def _fail(err: MigcheckError) -> NoReturn:
    _stderr().print(f"migcheck: {err}", markup=False)
    raise typer.Exit(err.exit_code)


def _write_json(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


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
            values.setdefault("jobs", 2)  # pair and host gather two hosts at most
            func(**kwargs, options=_options(**values))

        del command.__wrapped__  # typer must see the new signature, not the function's
        params = own + shared
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def _options(
    *,
    timeout: float,
    qemu: str | None,
    ssh_config: Path | None,
    identity: list[str] | None,
    user: str | None,
    accept_new_host_keys: bool,
    sudo: bool,
    refresh: bool,
    jobs: int,
) -> GatherOptions:
    from migcheck.transport.settings import SshSettings

    ssh = SshSettings(
        config_file=ssh_config,
        identities=tuple(identity or ()),
        user=user,
        accept_new_host_keys=accept_new_host_keys,
        sudo=sudo,
        timeout=timeout,
    )
    return GatherOptions(timeout=timeout, qemu=qemu, jobs=jobs, ssh=ssh, refresh=refresh)


def _gather_all(hosts: list[str], options: GatherOptions, show_progress: bool) -> list[HostResult]:
    """Gather in parallel; a transient progress bar on a terminal, never in pipes or JSON."""
    err = _stderr()
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


def _emit(text: str | None, output: Path | None = None) -> None:
    if text is None:
        return
    if output is None:
        _write_json(text)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        _fail(MigcheckError(f"--output {output}: cannot write: {exc.strerror}"))


# --- commands ------------------------------------------------------------------------------


def _trial_options(max_memory: str, step_timeout: float) -> Any:
    from migcheck.trial.remote import TrialOptions
    from migcheck.trial.skeleton import parse_memory

    size = parse_memory(max_memory, default_unit="g")
    if size is None:
        raise MigcheckError(f"--max-memory {max_memory!r}: expected a size such as 64G")
    return TrialOptions(step_timeout=step_timeout, max_memory=size)


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
    vm_name: Annotated[
        str | None,
        typer.Option("--vm", help="Judge the running guest NAME on SRC (its real argv)."),
    ] = None,
    fmt: Annotated[
        PairFormat, typer.Option("--format", "-f", help="Output format.")
    ] = PairFormat.table,
    both_ways: Annotated[
        bool, typer.Option("--both-ways", help="Also check the way back.")
    ] = False,
    strict: StrictOpt = False,
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
    from migcheck.report.formats import render_pair

    try:
        if run_trial:
            if both_ways:
                raise MigcheckError("--trial judges one direction: drop --both-ways")
            outcome = commands.trial(
                src,
                dst,
                options,
                cmdline=cmdline,
                domain_xml=domain_xml,
                vm_name=vm_name,
                strict=strict,
                trial_options=_trial_options(max_memory, step_timeout),
            )
        else:
            outcome = commands.pair(
                src,
                dst,
                options,
                cmdline=cmdline,
                domain_xml=domain_xml,
                vm_name=vm_name,
                both_ways=both_ways,
                strict=strict,
            )
    except MigcheckError as err:
        _fail(err)
    _emit(render_pair(fmt.value, outcome.forward, outcome.reverse, outcome.verdict, _stdout()))
    raise typer.Exit(outcome.exit_code)


@app.command()
@gathers()
def trial(
    src: Annotated[str, typer.Argument(help="Source HOST: [user@]name[:port] (SSH).")],
    dst: Annotated[str, typer.Argument(help="Destination HOST (SSH).")],
    options: GatherOptions,
    cmdline: CmdlineOpt = None,
    domain_xml: DomainXmlOpt = None,
    vm_name: Annotated[
        str | None,
        typer.Option("--vm", help="Try the running guest NAME on SRC (its real argv)."),
    ] = None,
    fmt: Annotated[
        PairFormat, typer.Option("--format", "-f", help="Output format.")
    ] = PairFormat.table,
    strict: StrictOpt = False,
    show: Annotated[
        bool,
        typer.Option("--show", help="Print both skeleton command lines and run nothing."),
    ] = False,
    max_memory: MaxMemoryOpt = "64G",
    step_timeout: StepTimeoutOpt = 30.0,
) -> None:
    """Prove the verdict: migrate a throwaway skeleton of the guest (same ABI, null disks,
    networks and chardevs) from SRC to DST over SSH, next to the static checks.

    Nothing of the real guest is touched; everything started is removed afterwards. A trial
    that cannot run (refused device, not enough memory) is unknown (exit 3), never safe."""
    from migcheck.report.formats import render_pair

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
            src,
            dst,
            options,
            cmdline=cmdline,
            domain_xml=domain_xml,
            vm_name=vm_name,
            strict=strict,
            trial_options=_trial_options(max_memory, step_timeout),
        )
    except MigcheckError as err:
        _fail(err)
    _emit(render_pair(fmt.value, outcome.forward, None, outcome.verdict, _stdout()))
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
    err = _stderr()
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
        _fail(exc)
    if out_dir is None:
        for result in outcome.results:
            if result.facts is not None:
                _write_json(json.dumps(result.facts.doc, indent=1, sort_keys=True) + "\n")
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
) -> None:
    """Print the probe, for orchestration you already run (Ansible's script module, Salt,
    SSH multiplexers); load the results with 'gather --from-ansible DIR'."""
    from migcheck.probe import probe_script

    config: dict = {"qemu_timeout": timeout}
    if qemu:
        config["qemu"] = qemu
    _write_json("#!/usr/bin/env python3\n" + probe_script(config))


@app.command()
def cmdline(
    file: Annotated[str, typer.Argument(help="QEMU command line file ('-' for stdin).")],
    fmt: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.table,
) -> None:
    """Show what migcheck understood of a QEMU command line."""
    try:
        vm = commands.load_guest(file)
    except MigcheckError as err:
        _fail(err)
    doc = vm.to_json()  # redacted: secrets never reach the terminal
    if fmt is DocFormat.json:
        _write_json(json.dumps(doc, indent=2, default=str) + "\n")
        return
    from migcheck.report.host import render_vm

    render_vm(_stdout(), vm.source, doc)


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
        _fail(err)
    if fmt is DocFormat.json:
        _write_json(json.dumps(summary, indent=2) + "\n")
        return
    from migcheck.report.host import render_host

    render_host(_stdout(), summary)


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
        typer.Option("--inventory", "-I", help="Hosts file or Ansible inventory (INI or YAML)."),
    ] = None,
    assume: Annotated[
        list[str] | None,
        typer.Option(
            "--assume",
            help="What-if: HOST_OR_GROUP:kernel=X.Y.Z, :qemu=X.Y.Z or :os=rhel-9.6 (repeatable).",
        ),
    ] = None,
    fmt: Annotated[FleetFormat, typer.Option("--format", "-f")] = FleetFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to a file.")
    ] = None,
    both_ways: Annotated[
        bool, typer.Option("--both-ways", help="A cell passes only if the guest can come back.")
    ] = False,
    strict: StrictOpt = False,
) -> None:
    """Which hosts can take which guests; with --assume, what an upgrade would break."""
    from migcheck.report.formats import render_fleet

    try:
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
        )
    except MigcheckError as err:
        _fail(err)
    _emit(render_fleet(fmt.value, outcome.result, outcome.changes, _stdout()), output)
    raise typer.Exit(outcome.exit_code)


class PortableFormat(str, Enum):
    cmdline = "cmdline"
    diff = "diff"
    json = "json"


@app.command()
@gathers()
def portable(
    hosts: Annotated[
        list[str], typer.Argument(help="The HOSTs the guest must be able to live on.")
    ],
    options: GatherOptions,
    cmdline: CmdlineOpt = None,
    fmt: Annotated[PortableFormat, typer.Option("--format", "-f")] = PortableFormat.cmdline,
    no_platform: Annotated[
        bool,
        typer.Option(
            "--no-platform",
            help="For QEMU builds without -platform: switch kernel-dependent device "
            "properties off explicitly instead.",
        ),
    ] = False,
) -> None:
    """Rewrite a command line so the guest can live-migrate between all HOSTs."""
    if cmdline is None:
        _fail(MigcheckError("give the guest's command line with --cmdline FILE"))
    try:
        result = commands.portable(
            hosts,
            options,
            cmdline=cmdline,
            use_platform=not no_platform,
            many=lambda t: _gather_all(t, options, show_progress=True),
        )
    except MigcheckError as err:
        _fail(err)
    if fmt is PortableFormat.json:
        _write_json(json.dumps(result.to_json(), indent=2) + "\n")
    elif result.ok and fmt is PortableFormat.diff:
        _write_json(result.diff())
    elif result.ok:
        _write_json(result.text or "")
    err = _stderr()
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
        _fail(err)
    if fmt is DocFormat.json:
        _write_json(render.list_json(view))
    else:
        render.render_list(_stdout(), view)


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
        _fail(err)
    if fmt is DocFormat.json:
        _write_json(render.show_json(doc))
    else:
        render.render_show(_stdout(), doc)


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
        _fail(err)
    renderer = {
        GraphFormat.text: render.graph_text,
        GraphFormat.json: render.graph_json,
        GraphFormat.dot: render.graph_dot,
        GraphFormat.mermaid: render.graph_mermaid,
    }[fmt]
    _write_json(renderer(view))


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
    if os.environ.get("TERM") == "dumb":
        os.environ.setdefault("NO_COLOR", "1")
    try:
        app()
    except KeyboardInterrupt:
        _stderr().print("migcheck: interrupted", markup=False)
        sys.exit(130)
    except MigcheckError as err:
        _stderr().print(f"migcheck: {err}", markup=False)
        sys.exit(err.exit_code)
    except Exception as exc:  # a bug: say so in one paragraph, never a traceback, never safe
        if os.environ.get("MIGCHECK_DEBUG"):
            raise
        _stderr().print(
            f"migcheck: internal error: {type(exc).__name__}: {exc}. This is a bug in migcheck; "
            "rerun with MIGCHECK_DEBUG=1 to see where, and please report it.",
            markup=False,
        )
        sys.exit(EXIT_UNKNOWN)


if __name__ == "__main__":
    main()
