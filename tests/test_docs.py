"""Docs that cannot drift: the CLI reference, the README's command list, the tutorial."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migcheck import docgen
from migcheck.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == docgen.render(), (
        "docs/cli.md is stale: python -m migcheck.docgen > docs/cli.md"
    )


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    names = [c.name or c.callback.__name__ for c in app.registered_commands] + ["platforms"]
    for name in names:
        assert f"`{name}" in readme or f"migcheck {name}" in readme, name


TUTORIAL = re.findall(
    r"^\$ (migcheck .*?)\s+# exit (\d)$", (ROOT / "docs" / "tutorial.md").read_text(), re.M
)


@pytest.mark.parametrize(("command", "code"), TUTORIAL, ids=[c[:60] for c, _ in TUTORIAL])
def test_tutorial_commands_exit_as_documented(command: str, code: str, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = shlex.split(command)[1:]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert result.exit_code == int(code), result.stdout[-1500:] + result.stderr[-1500:]


def test_tutorial_has_commands():
    assert len(TUTORIAL) >= 8


def test_readme_check_table_is_generated_from_the_registry():
    from migcheck.docgen import readme_with_checks

    readme = (ROOT / "README.md").read_text()
    assert readme_with_checks(readme) == readme, "run: python -m migcheck.docgen --readme"


def test_fast_help_is_what_the_cli_prints():
    """migcheck.entry answers --help from a generated copy; it must equal the real one."""
    from migcheck._help import HELP
    from migcheck.docgen import framework_help

    assert framework_help() == HELP, "run: python -m migcheck.docgen --help-text"


def test_entry_point_fast_paths(monkeypatch, capsys):
    import pytest

    from migcheck import __version__, entry
    from migcheck._help import HELP

    monkeypatch.setenv("COLUMNS", "100")
    for args, expected in ((["-h"], HELP), (["--help"], HELP), (["--version"], __version__)):
        monkeypatch.setattr("sys.argv", ["migcheck", *args])
        with pytest.raises(SystemExit) as done:
            entry.main()
        assert done.value.code == 0
        assert expected in capsys.readouterr().out
