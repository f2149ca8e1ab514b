"""``migcheck pair`` read without typer (migcheck.fastargs) means exactly what typer reads:
the same call with the same options, or the fast parser declines and typer decides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

from migcheck import clirun, docgen
from migcheck._pairargs import OPTIONS
from migcheck.cli import app
from migcheck.fastargs import parse_pair, run_pair

ROOT = Path(__file__).resolve().parents[1]
COMMAND = typer.main.get_command(app)


def test_generated_table_is_fresh() -> None:
    committed = (ROOT / "migcheck" / "_pairargs.py").read_text()
    assert committed == docgen.pair_args_module(), "run: python -m migcheck.docgen --fast-args"


class _Called(Exception):
    pass


def _record(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def pair(src: str, dst: str, options: Any, **kwargs: Any) -> None:
        calls.append(dict(kwargs, src=src, dst=dst, options=options, verbose=clirun.verbose()))
        raise _Called

    monkeypatch.setattr(clirun, "pair", pair)
    return calls


def _typer(argv: list[str], calls: list[dict[str, Any]]) -> Any:
    try:
        COMMAND.main(["pair", *argv], prog_name="migcheck", standalone_mode=False)
    except _Called:
        return calls.pop()
    except click.exceptions.Exit as done:  # --help and the like
        return ("exit", done.exit_code)
    except click.ClickException:
        return ("usage error",)
    except SystemExit as done:  # clirun.fail: e.g. a malformed --ssh-option
        return ("exit", done.code)
    return ("returned",)


def _fast(params: dict[str, Any], calls: list[dict[str, Any]]) -> Any:
    try:
        run_pair(dict(params))
    except _Called:
        return calls.pop()
    except SystemExit as done:
        return ("exit", done.code)
    return ("returned",)


NAMES = [*sorted(OPTIONS), "--help", "-h", "--", "--verbose=1", "--cmdline=g.cmdline", "-cg"]
VALUES = [
    "a.json", "b.json", "host1", "root@hv2:2222", "-", "5", "0.5", "1", "65535", "65536", "0",
    "1e3", "nan", "-5", "json", "table", "JSON", "junit", "", "=", "x=y", "Port=22",
    "BatchMode=yes", "PasswordAuthentication=yes", "r.json", "gate.xml", "64G", "~/key",
]  # fmt: skip


@settings(max_examples=int(os.environ.get("MIGCHECK_FUZZ_EXAMPLES", "300")), deadline=None)
@given(st.lists(st.sampled_from(NAMES) | st.sampled_from(VALUES), max_size=10))
def test_fast_parser_agrees_with_typer_or_declines(argv: list[str]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = _record(monkeypatch)
        params = parse_pair(list(argv))
        expected = _typer(list(argv), calls)
        if params is None:
            return  # declined: typer reads it, as today
        assert _fast(params, calls) == expected, argv


# Mostly well-formed: two HOSTs among option/value pairs, so most examples take the fast path.
_PAIRS = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=6)


@settings(max_examples=int(os.environ.get("MIGCHECK_FUZZ_EXAMPLES", "300")), deadline=None)
@given(_PAIRS, st.sampled_from(VALUES), st.sampled_from(VALUES), st.integers(0, 12))
def test_well_formed_command_lines_mean_the_same(
    pairs: list[tuple[str, str]], src: str, dst: str, at: int
) -> None:
    argv = [token for pair in pairs for token in pair]
    argv[at:at] = [src, dst]
    test_fast_parser_agrees_with_typer_or_declines.hypothesis.inner_test(argv)  # type: ignore[attr-defined]


COMMON = [
    ["a.json", "b.json", "--cmdline", "g.cmdline"],
    ["a.json", "b.json", "-c", "g.cmdline", "-f", "json", "-o", "r.json", "-o", "gate.xml"],
    ["--cmdline=g.cmdline", "hv1", "root@hv2:2222", "--both-ways", "--strict", "-v"],
    ["hv1", "hv2", "-x", "dom.xml", "-J", "bastion", "-i", "~/key", "-i", "~/key2", "-p", "22"],
    ["hv1", "hv2", "--vm", "web01", "--timeout", "60", "--ssh-option", "BatchMode=yes"],
    ["hv1", "hv2", "-c", "-", "--trial", "--max-memory", "8G", "--step-timeout", "10.5"],
    ["hv1", "hv2", "-c", "g", "-F", "ssh.conf", "-l", "ops", "--qemu", "/usr/bin/qemu-kvm"],
    ["hv1", "hv2", "-c", "g", "--accept-new-host-keys", "--sudo", "--refresh"],
    ["hv1", "hv2", "-c", "g", "--accept-unreviewed-qemu", "--format", "markdown"],
    ["-c", "g", "--", "hv1", "-hv2"],  # after --, even a name like an option is a HOST
]


@pytest.mark.parametrize("argv", COMMON, ids=lambda a: " ".join(a))
def test_common_command_lines_take_the_fast_path_and_mean_the_same(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _record(monkeypatch)
    params = parse_pair(list(argv))
    assert params is not None, argv
    assert _fast(params, calls) == _typer(list(argv), calls)


@pytest.mark.parametrize(
    "argv",
    [
        ["a.json"],  # one HOST: typer's usage error
        ["a.json", "b.json", "c.json"],
        ["a.json", "b.json", "--help"],
        ["a.json", "b.json", "--cmdlin", "g"],  # a typo: click suggests the option
        ["a.json", "b.json", "-c"],
        ["a.json", "b.json", "--timeout", "0.5"],  # below --timeout's minimum
        ["a.json", "b.json", "-f", "JSON"],
        ["a.json", "b.json", "--strict=yes"],
        ["a.json", "b.json", "-cg.cmdline"],  # click reads it; rare enough to leave to it
    ],
)
def test_what_the_fast_parser_leaves_to_typer(argv: list[str]) -> None:
    assert parse_pair(argv) is None
