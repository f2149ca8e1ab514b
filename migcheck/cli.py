"""Command-line interface: options in, one library call, a renderer out.

Exit codes (a contract, see README): 0 safe, 1 unsafe, 2 bad input or usage, 3 unknown.
Machine output (JSON) goes to stdout unformatted; diagnostics go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from migcheck import __version__
from migcheck.errors import EXIT_INPUT, EXIT_UNKNOWN, HostError, MigcheckError
from migcheck.gather import GatherOptions, HostResult

app = typer.Typer(
    name="migcheck",
    help="Can this QEMU/KVM guest live-migrate safely from one host to another?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # main() turns stray exceptions into one paragraph
    pretty_exceptions_show_locals=False,  # never put keys or passwords on screen
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    rich_markup_mode=None,
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


TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=1.0, help="Deadline in seconds for gathering each host."),
]
QemuOpt = Annotated[
    str | None,
    typer.Option("--qemu", help="QEMU binary on the hosts (default: qemu-system-ARCH, qemu-kvm)."),
]
CmdlineOpt = Annotated[
    str,
    typer.Option("--cmdline", "-c", help="QEMU command line file of the guest ('-' for stdin)."),
]
SshConfigOpt = Annotated[
    Path | None,
    typer.Option("--ssh-config", "-F", help="ssh_config file (default: ~/.ssh/config)."),
]
IdentityOpt = Annotated[
    list[str] | None,
    typer.Option("--identity", "-i", help="Private key file; repeat for several."),
]
UserOpt = Annotated[
    str | None, typer.Option("--user", "-l", help="SSH user for HOSTs without user@.")
]
AcceptNewOpt = Annotated[
    bool,
    typer.Option(
        "--accept-new-host-keys",
        help="Record unknown host keys in known_hosts (OpenSSH accept-new); changed keys are "
        "always refused.",
    ),
]
SudoOpt = Annotated[
    bool, typer.Option("--sudo", help="Run the probe through 'sudo -n' (never prompts).")
]
JobsOpt = Annotated[int, typer.Option("--jobs", "-j", min=1, max=512, help="Hosts in parallel.")]
RefreshOpt = Annotated[
    bool,
    typer.Option(
        "--refresh",
        help="Start QEMU on every host even if its cached answers are still valid.",
    ),
]


def _options(
    timeout: float,
    qemu: str | None,
    ssh_config: Path | None,
    identity: list[str] | None,
    user: str | None,
    accept_new: bool,
    sudo: bool,
    jobs: int = 32,
    refresh: bool = False,
) -> GatherOptions:
    from migcheck.transport.settings import SshSettings

    ssh = SshSettings(
        config_file=ssh_config,
        identities=tuple(identity or ()),
        user=user,
        accept_new_host_keys=accept_new,
        sudo=sudo,
        timeout=timeout,
    )
    return GatherOptions(timeout=timeout, qemu=qemu, jobs=jobs, ssh=ssh, refresh=refresh)


def _gather_all(hosts: list[str], options: GatherOptions, show_progress: bool) -> list[HostResult]:
    """Gather in parallel; a transient progress bar on a terminal, never in pipes or JSON."""
    from migcheck.gather import Gatherer

    err = _stderr()
    with Gatherer(options) as gatherer:
        if not (show_progress and err.is_terminal and len(hosts) > 1):
            return gatherer.gather_many(hosts)
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

            return gatherer.gather_many(hosts, progress=tick)


@app.command()
def pair(
    src: Annotated[
        str, typer.Argument(help="Source HOST: local, a facts .json, [user@]name[:port].")
    ],
    dst: Annotated[str, typer.Argument(help="Destination HOST.")],
    cmdline: Annotated[
        str | None,
        typer.Option(
            "--cmdline", "-c", help="QEMU command line file of the guest ('-' for stdin)."
        ),
    ] = None,
    domain_xml: Annotated[
        str | None,
        typer.Option("--domain-xml", "-x", help="libvirt domain XML of the guest (virsh dumpxml)."),
    ] = None,
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
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as unsafe.")] = False,
    timeout: TimeoutOpt = 30.0,
    qemu: QemuOpt = None,
    ssh_config: SshConfigOpt = None,
    identity: IdentityOpt = None,
    user: UserOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
    sudo: SudoOpt = False,
    refresh: RefreshOpt = False,
) -> None:
    """Judge whether the guest can live-migrate from SRC to DST."""
    from migcheck.cmdline import load_cmdline
    from migcheck.pair import check_pair
    from migcheck.verdict import combine

    options = _options(
        timeout, qemu, ssh_config, identity, user, accept_new_host_keys, sudo, 2, refresh=refresh
    )
    if sum(x is not None for x in (cmdline, domain_xml, vm_name)) != 1:
        _fail(MigcheckError("give exactly one of --cmdline FILE, --domain-xml FILE and --vm NAME"))
    try:
        if vm_name is None:
            if domain_xml is not None:
                from migcheck.domainxml import load_domain_xml

                vm = load_domain_xml(domain_xml)
            else:
                vm = load_cmdline(cmdline or "-")
            results = _gather_all([src, dst], options, show_progress=False)
            facts = _pair_facts(results)
        else:
            facts = _gather_with_guest(src, dst, vm_name, options)
            from migcheck.gather import running_guest

            vm = running_guest(facts[0], vm_name)
    except MigcheckError as err:
        _fail(err)
    forward = check_pair(vm, facts[0], facts[1], strict=strict)
    reverse = check_pair(vm, facts[1], facts[0], strict=strict) if both_ways else None
    verdict = combine([forward.verdict] + ([reverse.verdict] if reverse else []))
    if fmt is PairFormat.json:
        from migcheck.report.json import render_pair as render_json

        _write_json(render_json(forward, reverse, verdict))
    elif fmt in (PairFormat.junit, PairFormat.markdown):
        from migcheck.report import pair_ci

        reports = [forward] + ([reverse] if reverse else [])
        if fmt is PairFormat.junit:
            _write_json(pair_ci.render_junit(reports))
        else:
            _write_json(pair_ci.render_markdown(reports, verdict.value))
    else:
        from migcheck.report.table import render_pair as render_table

        out = _stdout()
        render_table(out, forward)
        if reverse is not None:
            out.print()
            render_table(out, reverse)
    raise typer.Exit(verdict.exit_code)


def _pair_facts(results: list[HostResult]) -> list:
    for result in results:  # bad input first (exit 2), then unreachable hosts (exit 3)
        if result.error is not None and not isinstance(result.error, HostError):
            raise result.error
    for result in results:
        if result.error is not None:
            raise result.error
    return [r.facts for r in results]


def _gather_with_guest(src: str, dst: str, name: str, options: GatherOptions) -> list:
    """Both hosts in parallel; the source's probe also reads the running guest's argv."""
    from concurrent.futures import ThreadPoolExecutor

    from migcheck.gather import Gatherer

    with Gatherer(options) as gatherer, ThreadPoolExecutor(2) as pool:
        first = pool.submit(gatherer.gather, src, vm=name)
        second = pool.submit(gatherer.gather, dst)
        return [first.result(), second.result()]


@app.command()
def gather(
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
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Directory to write one HOST.json per host."),
    ] = None,
    jobs: JobsOpt = 32,
    timeout: TimeoutOpt = 30.0,
    qemu: QemuOpt = None,
    ssh_config: SshConfigOpt = None,
    identity: IdentityOpt = None,
    user: UserOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
    sudo: SudoOpt = False,
    refresh: RefreshOpt = False,
) -> None:
    """Probe hosts and save their facts (to stdout for a single host without --out)."""
    from migcheck.facts import save_facts
    from migcheck.gather import file_name_for

    if from_ansible is not None:
        from migcheck.gather import load_probe_outputs

        if out is None:
            _fail(MigcheckError("give --out DIR to save facts loaded with --from-ansible"))
        try:
            results = load_probe_outputs(from_ansible)
        except MigcheckError as err:
            _fail(err)
        _save_results(results, out)
        return
    if not hosts:
        _fail(MigcheckError("give HOSTs to gather, or --from-ansible DIR"))

    if out is None and len(hosts) > 1:
        _fail(MigcheckError("give --out DIR to gather more than one host"))
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fail(MigcheckError(f"--out {out}: cannot create directory: {exc.strerror}"))
    options = _options(
        timeout, qemu, ssh_config, identity, user, accept_new_host_keys, sudo, jobs, refresh=refresh
    )
    hosts = list(dict.fromkeys(hosts))  # the same HOST twice is one host
    try:
        results = _gather_all(hosts, options, show_progress=out is not None)
    except MigcheckError as err:
        _fail(err)
    err = _stderr()
    used: set[str] = set()
    for result in results:
        if result.facts is None:
            continue
        if out is None:
            _write_json(json.dumps(result.facts.doc, indent=1, sort_keys=True) + "\n")
            continue
        name = file_name_for(result.facts)
        if name in used:  # two HOSTs naming one machine: keep both, by HOST text
            name = file_name_for_text(result.ref.text)
        used.add(name)
        save_facts(result.facts, out / name)
    for result in results:
        if result.error is not None:
            err.print(f"migcheck: {result.error}", markup=False)
    if out is not None:
        from migcheck.report.gather import render_summary

        render_summary(err, results)
    if any(r.error is not None for r in results):
        codes = {r.error.exit_code for r in results if r.error is not None}
        raise typer.Exit(EXIT_INPUT if codes == {EXIT_INPUT} else EXIT_UNKNOWN)


def _save_results(results: list[HostResult], out: Path) -> None:
    from migcheck.facts import save_facts
    from migcheck.gather import file_name_for

    out.mkdir(parents=True, exist_ok=True)
    err = _stderr()
    for result in results:
        if result.facts is not None:
            save_facts(result.facts, out / file_name_for(result.facts))
        else:
            err.print(f"migcheck: {result.error}", markup=False)
    from migcheck.report.gather import render_summary

    render_summary(err, results)
    if any(r.error is not None for r in results):
        raise typer.Exit(EXIT_UNKNOWN)


def file_name_for_text(text: str) -> str:
    from migcheck.gather import safe_file_stem

    return f"{safe_file_stem(text).lstrip('.') or 'host'}.json"


@app.command("probe-script")
def probe_script_cmd(
    qemu: QemuOpt = None,
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
    from migcheck.cmdline import load_cmdline

    try:
        if file != "-" and Path(file).suffix == ".xml":
            from migcheck.domainxml import load_domain_xml

            vm = load_domain_xml(file)
        else:
            vm = load_cmdline(file)
    except MigcheckError as err:
        _fail(err)
    doc = vm.to_json()
    if fmt is DocFormat.json:
        _write_json(json.dumps(doc, indent=2, default=str) + "\n")
        return
    from rich.table import Table

    table = Table(title=f"{vm.source}", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    # Rows come from the JSON form, which is redacted: secrets never reach the terminal.
    from rich.text import Text

    machine, cpu = doc["machine"], doc["cpu"]
    rows = [
        ("binary", doc["binary"] or "-"),
        ("machine", (machine["type"] or "(default)") + _kv(machine["options"])),
        ("accel", ":".join(doc["accel"]) or "(default)"),
        ("cpu", (cpu["model"] or "(machine default)") + _kv(cpu["features"]) + _kv(cpu["props"])),
        ("platform", doc["platform"] or "(not pinned)"),
    ]
    rows += [
        (
            "device",
            d["driver"]
            + _ident(d)
            + _kv(d["props"])
            + ("" if d["origin"] == "-device" else f"  ({d['origin']})"),
        )
        for d in doc["devices"]
    ]
    rows += [("readconfig", r["path"] + ("" if r["read"] else f": {r['error']}"))
             for r in doc["readconfig"]]  # fmt: skip
    rows += [("incomplete", gap) for gap in doc["device_gaps"]]
    rows += [("netdev", n["type"] + _ident(n) + _kv(n["props"])) for n in doc["netdevs"]]
    rows += [("object", o["qom-type"] + _ident(o) + _kv(o["props"])) for o in doc["objects"]]
    rows += [("global", f"{g['driver']}.{g['property']}={g['value']}") for g in doc["globals"]]
    for what, value in rows:
        table.add_row(what, Text(value))
    _stdout().print(table)


def _kv(props: dict) -> str:
    return (" " + ",".join(f"{k}={v}" for k, v in props.items())) if props else ""


def _ident(item: dict) -> str:
    return f" id={item['id']}" if item.get("id") else ""


@app.command()
def host(
    target: Annotated[str, typer.Argument(help="HOST: local, a facts .json, [user@]name[:port].")],
    fmt: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.table,
    vms: Annotated[bool, typer.Option("--vms", help="List the running QEMU guests.")] = False,
    timeout: TimeoutOpt = 30.0,
    qemu: QemuOpt = None,
    ssh_config: SshConfigOpt = None,
    identity: IdentityOpt = None,
    user: UserOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
    sudo: SudoOpt = False,
    refresh: RefreshOpt = False,
) -> None:
    """Summarise one host's facts: kernel, CPU, KVM, QEMU, machine types, usable CPU models."""
    from migcheck.gather import Gatherer
    from migcheck.hostinfo import host_summary

    options = _options(
        timeout, qemu, ssh_config, identity, user, accept_new_host_keys, sudo, 1, refresh=refresh
    )
    try:
        with Gatherer(options) as gatherer:
            facts = gatherer.gather(target, list_vms=vms)
    except MigcheckError as err:
        _fail(err)
    try:
        summary = host_summary(facts, _catalog())
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
def fleet(
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
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as unsafe.")] = False,
    jobs: JobsOpt = 32,
    timeout: TimeoutOpt = 30.0,
    qemu: QemuOpt = None,
    ssh_config: SshConfigOpt = None,
    identity: IdentityOpt = None,
    user: UserOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
    sudo: SudoOpt = False,
    refresh: RefreshOpt = False,
) -> None:
    """Which hosts can take which guests; with --assume, what an upgrade would break."""
    from migcheck.fleetcli import run_fleet

    options = _options(
        timeout, qemu, ssh_config, identity, user, accept_new_host_keys, sudo, jobs, refresh=refresh
    )
    try:
        text, code = run_fleet(
            hosts or [],
            cmdlines or [],
            domain_xml=domain_xml or [],
            inventory=inventory,
            assume=assume or [],
            fmt=fmt.value,
            both_ways=both_ways,
            strict=strict,
            options=options,
            gather=lambda targets: _gather_all(targets, options, show_progress=True),
            console=_stdout(),
        )
    except MigcheckError as err:
        _fail(err)
    if text is not None:
        if output is not None:
            try:
                output.write_text(text)
            except OSError as exc:
                _fail(MigcheckError(f"--output {output}: cannot write: {exc.strerror}"))
        else:
            _write_json(text)
    raise typer.Exit(code)


class PortableFormat(str, Enum):
    cmdline = "cmdline"
    diff = "diff"
    json = "json"


@app.command()
def portable(
    hosts: Annotated[
        list[str], typer.Argument(help="The HOSTs the guest must be able to live on.")
    ],
    cmdline: CmdlineOpt,
    fmt: Annotated[PortableFormat, typer.Option("--format", "-f")] = PortableFormat.cmdline,
    no_platform: Annotated[
        bool,
        typer.Option(
            "--no-platform",
            help="For QEMU builds without -platform: switch kernel-dependent device "
            "properties off explicitly instead.",
        ),
    ] = False,
    timeout: TimeoutOpt = 30.0,
    qemu: QemuOpt = None,
    ssh_config: SshConfigOpt = None,
    identity: IdentityOpt = None,
    user: UserOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
    sudo: SudoOpt = False,
    refresh: RefreshOpt = False,
) -> None:
    """Rewrite a command line so the guest can live-migrate between all HOSTs."""
    from migcheck.catalog import load_catalog
    from migcheck.cmdline import load_cmdline
    from migcheck.portable import make_portable

    options = _options(
        timeout, qemu, ssh_config, identity, user, accept_new_host_keys, sudo, 32, refresh=refresh
    )
    if Path(cmdline).suffix == ".xml":
        _fail(
            MigcheckError(
                f"{cmdline}: portable rewrites QEMU command lines; for a libvirt guest, judge "
                "the XML with 'pair --domain-xml' and apply the fixes in the XML (or give the "
                "command line from 'virsh domxml-to-native qemu-argv')"
            )
        )
    try:
        vm = load_cmdline(cmdline)
        catalog = load_catalog()
        results = _gather_all(list(dict.fromkeys(hosts)), options, show_progress=True)
    except MigcheckError as err:
        _fail(err)
    for result in sorted(results, key=lambda r: isinstance(r.error, HostError)):
        if result.error is not None:
            _fail(result.error)
    facts = [r.facts for r in results if r.facts is not None]
    result = make_portable(vm, facts, catalog, use_platform=not no_platform)
    if fmt is PortableFormat.json:
        _write_json(json.dumps(result.to_json(), indent=2) + "\n")
    elif result.ok and fmt is PortableFormat.diff:
        _write_json(result.diff())
    elif result.ok:
        _write_json(result.text or "")
    if result.ok:
        err = _stderr()
        for change in result.changes:
            err.print(f"changed -{change.option}: {change.reason}", markup=False)
        for host, lost in result.losses.items():
            err.print(f"on {host} the guest loses: {', '.join(lost)}", markup=False)
        if not result.changes:
            err.print("already portable: nothing to change", markup=False)
        raise typer.Exit(0)
    if fmt is not PortableFormat.json:
        err = _stderr()
        err.print(
            f"migcheck: {vm.source} cannot be made portable across these hosts:", markup=False
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


def _catalog():
    from migcheck.catalog import load_catalog

    return load_catalog()


@platforms_app.command("list")
def platforms_list(
    fmt: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.table,
) -> None:
    """List every platform, like '-platform help' would."""
    from migcheck.report.platforms import platforms_json, render_list

    try:
        catalog = _catalog()
    except MigcheckError as err:
        _fail(err)
    if fmt is DocFormat.json:
        _write_json(json.dumps(platforms_json(catalog), indent=2) + "\n")
    else:
        render_list(_stdout(), catalog)


@platforms_app.command("show")
def platforms_show(
    name: Annotated[str, typer.Argument(help="Platform name, e.g. linux-6.2.")],
    fmt: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.table,
) -> None:
    """One platform: its capabilities with sources, its parents and children."""
    from migcheck.report.platforms import render_show, show_json

    try:
        catalog = _catalog()
        doc = show_json(catalog, name)
    except MigcheckError as err:
        _fail(err)
    if fmt is DocFormat.json:
        _write_json(json.dumps(doc, indent=2) + "\n")
    else:
        render_show(_stdout(), catalog, name)


@platforms_app.command("graph")
def platforms_graph(
    fmt: Annotated[GraphFormat, typer.Option("--format", "-f")] = GraphFormat.text,
) -> None:
    """The superset graph (transitively reduced): text, json, dot or mermaid."""
    from migcheck.report import platforms as render

    try:
        catalog = _catalog()
    except MigcheckError as err:
        _fail(err)
    renderer = {
        GraphFormat.text: render.graph_text,
        GraphFormat.json: render.graph_json,
        GraphFormat.dot: render.graph_dot,
        GraphFormat.mermaid: render.graph_mermaid,
    }[fmt]
    _write_json(renderer(catalog))


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
