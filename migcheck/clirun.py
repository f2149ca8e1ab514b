"""What a command does once its options are parsed, without the CLI framework.

:mod:`migcheck.cli` declares the options (typer) and calls these; :mod:`migcheck.entry`
calls them directly for a well-formed ``pair``, parsed by :mod:`migcheck.fastargs` from the
same declarations, so the most common command does not import typer and click (about
40 ms of the ~180 ms an offline ``pair`` took). Everything here raises ``SystemExit`` with
the documented exit code; nothing here parses a command line.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from migcheck import commands
from migcheck.errors import EXIT_UNKNOWN, InputError, MigcheckError

if TYPE_CHECKING:  # rich costs ~20 ms to import; JSON and error paths never need it
    from rich.console import Console

    from migcheck.gather import GatherOptions


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def fail(err: MigcheckError) -> NoReturn:
    say(f"migcheck: {err}")
    raise SystemExit(err.exit_code)


def say(line: str) -> None:
    """One diagnostic paragraph on stderr: no markup, never wrapped (paths and grep survive),
    terminal control replaced (messages quote hosts' stderr and exceptions' text)."""
    from migcheck.textsafe import scrub

    with contextlib.suppress(OSError, ValueError):  # stderr closed: the exit code still tells
        sys.stderr.write(scrub(line) + "\n")
        sys.stderr.flush()


def write_text(text: str) -> None:
    with pipe_safe():
        sys.stdout.write(text)
        sys.stdout.flush()


@contextlib.contextmanager
def pipe_safe() -> Iterator[None]:
    """A reader that went away (``| head``) must not turn the verdict into a crash or exit
    code 120: the rest of stdout goes to /dev/null and the command's own exit code stands."""
    try:
        yield
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


_VERBOSE = False  # --verbose: passes unfolded in tables, SSH steps on stderr


def verbose() -> bool:
    return _VERBOSE


def set_verbose(on: bool) -> None:
    global _VERBOSE
    _VERBOSE = on
    if not on and "logging" not in sys.modules:
        return  # nothing was set up; logging costs ~4 ms to import
    import logging

    class _StderrHandler(logging.Handler):
        """Writes to the current ``sys.stderr`` (not the one at setup), one line a step."""

        def emit(self, record: Any) -> None:
            with contextlib.suppress(OSError, ValueError):  # stderr closed: steps optional
                sys.stderr.write(f"migcheck ssh: {record.getMessage()}\n")

    logger = logging.getLogger("migcheck.ssh")
    if on and not any(type(h).__name__ == "_StderrHandler" for h in logger.handlers):
        logger.addHandler(_StderrHandler())
    logger.setLevel(logging.INFO if on else logging.WARNING)


def gather_options(
    *,
    timeout: float,
    qemu: str | None,
    ssh_config: Path | None,
    identity: list[str] | None,
    user: str | None,
    port: int | None,
    jump: str | None,
    ssh_option: list[str] | None,
    accept_new_host_keys: bool,
    sudo: bool,
    refresh: bool,
    jobs: int,
) -> GatherOptions:
    from migcheck.gather import GatherOptions
    from migcheck.transport.settings import SshSettings

    parsed: tuple[Any, ...] = ()
    if ssh_option:  # the ssh_config resolver is only needed when something reaches SSH
        from migcheck.transport.sshconfig import SshConfigError, parse_option

        try:
            parsed = tuple(parse_option(o) for o in ssh_option)
        except SshConfigError as exc:
            fail(MigcheckError(str(exc)))  # exit 2: a usage error, before any connection
    ssh = SshSettings(
        config_file=ssh_config,
        identities=tuple(identity or ()),
        user=user,
        port=port,
        jump=jump,
        options=parsed,
        accept_new_host_keys=accept_new_host_keys,
        sudo=sudo,
        timeout=timeout,
    )
    return GatherOptions(timeout=timeout, qemu=qemu, jobs=jobs, ssh=ssh, refresh=refresh)


def plan_outputs(
    paths: list[Path] | None, known: Iterable[str], fmt: str
) -> tuple[list[tuple[Path, str]], bool]:
    """Each ``-o FILE`` with its format (checked before any host is contacted), and whether
    stdout still gets ``--format``: not when a file without a known extension took it (the
    old ``--format json -o FILE`` spelling keeps writing only the file)."""
    from migcheck.report.formats import EXTENSIONS

    known = set(known)
    plan: list[tuple[Path, str]] = []
    to_stdout = True
    for path in paths or ():
        chosen = EXTENSIONS.get(path.suffix.lower())
        if chosen is None and fmt != "table":
            chosen, to_stdout = fmt, False
        if chosen is None or chosen not in known:
            usable = ", ".join(
                f"{ext} ({name})" for ext, name in EXTENSIONS.items() if name in known
            )
            what = "that format" if chosen else repr(path.suffix or "a file without extension")
            fail(
                MigcheckError(
                    f"--output {path}: this command cannot write {what}; name the file by "
                    f"the format it should hold: {usable}"
                )
            )
        check_output(path)  # exit 2 before any host is contacted
        plan.append((path, chosen))
    return plan, to_stdout


def emit(text: str | None, output: Path | None = None) -> None:
    if text is None:
        return
    if output is None:
        write_text(text)
        return
    from migcheck.safefile import atomic_write

    try:  # atomic: a full disk or a planted symlink leaves the previous report intact
        atomic_write(output, text)
    except OSError as exc:
        fail(MigcheckError(f"--output {output}: {exc}"))


def check_output(output: Path | None) -> None:
    """An output file that cannot be written is exit 2 before any host is contacted."""
    from migcheck.safefile import check_writable

    why = check_writable(output) if output is not None else None
    if why is not None:
        fail(InputError(f"--output {output}: cannot be written: {why}"))


def trial_options(max_memory: str, step_timeout: float) -> Any:
    from migcheck.trial.remote import TrialOptions
    from migcheck.trial.skeleton import parse_memory

    size = parse_memory(max_memory, default_unit="g")
    if size is None:
        raise MigcheckError(f"--max-memory {max_memory!r}: expected a size such as 64G")
    return TrialOptions(step_timeout=step_timeout, max_memory=size)


def pair(
    src: str,
    dst: str,
    options: GatherOptions,
    *,
    cmdline: str | None,
    domain_xml: str | None,
    vm_name: str | None,
    fmt: str,
    both_ways: bool,
    strict: bool,
    accept_unreviewed_qemu: bool,
    output: list[Path] | None,
    run_trial: bool,
    max_memory: str,
    step_timeout: float,
) -> NoReturn:
    """The ``pair`` command, whichever parser read its options."""
    from migcheck.report.formats import PAIR_FORMATS

    files, to_stdout = plan_outputs(output, PAIR_FORMATS, fmt)
    try:
        if run_trial:
            if both_ways:
                raise MigcheckError("--trial judges one direction: drop --both-ways")
            outcome = commands.trial(
                src, dst, options, cmdline=cmdline, domain_xml=domain_xml, vm_name=vm_name,
                strict=strict, trial_options=trial_options(max_memory, step_timeout),
            )  # fmt: skip
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
                accept_unreviewed_qemu=accept_unreviewed_qemu,
            )
    except MigcheckError as err:
        fail(err)
    emit_pair(outcome, files, to_stdout, fmt)
    raise SystemExit(outcome.exit_code)


def emit_pair(
    outcome: commands.PairOutcome, files: list[tuple[Path, str]], to_stdout: bool, fmt: str
) -> None:
    from migcheck.report.formats import render_pair

    for path, kind in files:
        emit(render_pair(kind, outcome.forward, outcome.reverse, outcome.verdict, stdout), path)
    if to_stdout:
        with pipe_safe():
            emit(
                render_pair(
                    fmt,
                    outcome.forward,
                    outcome.reverse,
                    outcome.verdict,
                    stdout,
                    verbose=_VERBOSE,
                )
            )


def interrupted() -> NoReturn:
    say("migcheck: interrupted: nothing was judged to the end")
    sys.exit(EXIT_UNKNOWN)


def guarded(run: Callable[[], Any]) -> None:
    """Run a command the way every migcheck command ends: Ctrl-C is unknown (3), a
    :class:`MigcheckError` is its one paragraph and exit code, and a bug is one paragraph
    and exit 3, never a traceback and never safe."""
    if os.environ.get("TERM") == "dumb":
        os.environ.setdefault("NO_COLOR", "1")
    try:
        run()
    except SystemExit as done:
        # typer turns Ctrl-C inside a command into exit 130; DESIGN.md says an interrupted
        # run is unknown (3), never safe (fleet has already printed what it judged).
        if done.code != 130:
            raise
        interrupted()
    except KeyboardInterrupt:
        interrupted()
    except MigcheckError as err:
        say(f"migcheck: {err}")
        sys.exit(err.exit_code)
    except Exception as exc:  # a bug: say so in one paragraph, never a traceback, never safe
        if os.environ.get("MIGCHECK_DEBUG"):
            raise
        say(
            f"migcheck: internal error: {type(exc).__name__}: {exc}. This is a bug in migcheck; "
            "rerun with MIGCHECK_DEBUG=1 to see where, and please report it."
        )
        sys.exit(EXIT_UNKNOWN)
