"""Command-line interface: options in, one library call, a renderer out.

Exit codes (a contract, see README): 0 safe, 1 unsafe, 2 bad input or usage, 3 unknown.
Machine output (JSON) goes to stdout unformatted; diagnostics go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from migcheck import __version__
from migcheck.errors import EXIT_INPUT, EXIT_UNKNOWN, HostError, MigcheckError

app = typer.Typer(
    name="migcheck",
    help="Can this QEMU/KVM guest live-migrate safely from one host to another?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # main() turns stray exceptions into one paragraph
    pretty_exceptions_show_locals=False,  # never put keys or passwords on screen
    add_completion=False,
    rich_markup_mode=None,
)


class PairFormat(str, Enum):
    table = "table"
    json = "json"


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


@app.command()
def pair(
    src: Annotated[
        str, typer.Argument(help="Source HOST: local, a facts .json, [user@]name[:port].")
    ],
    dst: Annotated[str, typer.Argument(help="Destination HOST.")],
    cmdline: CmdlineOpt,
    fmt: Annotated[
        PairFormat, typer.Option("--format", "-f", help="Output format.")
    ] = PairFormat.table,
    both_ways: Annotated[
        bool, typer.Option("--both-ways", help="Also check the way back.")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as unsafe.")] = False,
    timeout: TimeoutOpt = 30.0,
    qemu: QemuOpt = None,
) -> None:
    """Judge whether the guest can live-migrate from SRC to DST."""
    from migcheck.cmdline import load_cmdline
    from migcheck.gather import gather
    from migcheck.pair import check_pair
    from migcheck.verdict import combine

    try:
        vm = load_cmdline(cmdline)
        facts = []
        for host in (src, dst):
            facts.append(gather(host, timeout=timeout, qemu=qemu))
    except MigcheckError as err:
        _fail(err)
    forward = check_pair(vm, facts[0], facts[1], strict=strict)
    reverse = check_pair(vm, facts[1], facts[0], strict=strict) if both_ways else None
    verdict = combine([forward.verdict] + ([reverse.verdict] if reverse else []))
    if fmt is PairFormat.json:
        from migcheck.report.json import render_pair as render_json

        _write_json(render_json(forward, reverse, verdict))
    else:
        from migcheck.report.table import render_pair as render_table

        out = _stdout()
        render_table(out, forward)
        if reverse is not None:
            out.print()
            render_table(out, reverse)
    raise typer.Exit(verdict.exit_code)


@app.command()
def gather(
    hosts: Annotated[list[str], typer.Argument(help="HOSTs to probe: local, [user@]name[:port].")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Directory to write one HOST.json per host."),
    ] = None,
    timeout: TimeoutOpt = 30.0,
    qemu: QemuOpt = None,
) -> None:
    """Probe hosts and save their facts (to stdout for a single host without --out)."""
    from migcheck.facts import save_facts
    from migcheck.gather import file_name_for
    from migcheck.gather import gather as gather_one

    if out is None and len(hosts) > 1:
        _fail(MigcheckError("give --out DIR to gather more than one host"))
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fail(MigcheckError(f"--out {out}: cannot create directory: {exc.strerror}"))
    err = _stderr()
    failed = 0
    for host in hosts:
        started = time.monotonic()
        try:
            facts = gather_one(host, timeout=timeout, qemu=qemu)
        except MigcheckError as exc:
            failed += 1
            err.print(f"migcheck: {exc}", markup=False)
            if exc.exit_code == EXIT_INPUT and not isinstance(exc, HostError):
                raise typer.Exit(EXIT_INPUT) from None
            continue
        seconds = time.monotonic() - started
        if out is None:
            _write_json(json.dumps(facts.doc, indent=1, sort_keys=True) + "\n")
        else:
            path = out / file_name_for(facts)
            save_facts(facts, path)
            err.print(
                f"{host}: kernel {facts.kernel_release}, QEMU {facts.qemu_version or '?'}, "
                f"KVM {'yes' if facts.kvm_usable else 'no'} -> {path} ({seconds:.2f} s)",
                markup=False,
            )
    if failed:
        raise typer.Exit(EXIT_UNKNOWN)


@app.command()
def cmdline(
    file: Annotated[str, typer.Argument(help="QEMU command line file ('-' for stdin).")],
    fmt: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.table,
) -> None:
    """Show what migcheck understood of a QEMU command line."""
    from migcheck.cmdline import load_cmdline

    try:
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
    table.add_row("binary", vm.binary or "-")
    table.add_row("machine", (vm.machine.type or "(default)") + _kv(vm.machine.options))
    table.add_row("accel", ":".join(vm.accel) or "(default)")
    cpu_feats = ",".join(("+" if on else "-") + f for f, on in vm.cpu.features.items())
    table.add_row(
        "cpu", (vm.cpu.model or "(machine default)") + (f" {cpu_feats}" if cpu_feats else "")
    )
    table.add_row("platform", vm.platform or "(not pinned)")
    for d in vm.devices:
        table.add_row("device", d.driver + (f" id={d.id}" if d.id else "") + _kv(d.props))
    for n in vm.netdevs:
        table.add_row("netdev", n.type + (f" id={n.id}" if n.id else "") + _kv(n.props))
    for o in vm.objects:
        table.add_row("object", o.qom_type + (f" id={o.id}" if o.id else ""))
    for g in vm.globals:
        table.add_row("global", f"{g.driver}.{g.property}={g.value}")
    _stdout().print(table)


def _kv(props: dict) -> str:
    return (" " + ",".join(f"{k}={v}" for k, v in props.items())) if props else ""


@app.command()
def host(
    target: Annotated[str, typer.Argument(help="HOST: local, a facts .json, [user@]name[:port].")],
    fmt: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.table,
    timeout: TimeoutOpt = 30.0,
    qemu: QemuOpt = None,
) -> None:
    """Summarise one host's facts: kernel, CPU, KVM, QEMU, machine types, usable CPU models."""
    from migcheck.gather import gather as gather_one
    from migcheck.hostinfo import host_summary

    try:
        facts = gather_one(target, timeout=timeout, qemu=qemu)
    except MigcheckError as err:
        _fail(err)
    summary = host_summary(facts)
    if fmt is DocFormat.json:
        _write_json(json.dumps(summary, indent=2) + "\n")
        return
    from migcheck.report.host import render_host

    render_host(_stdout(), summary)


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
