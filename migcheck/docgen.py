"""Generate docs/cli.md from the CLI's own --help, so the reference cannot drift.

Run: python -m migcheck.docgen > docs/cli.md   (tests/test_docs.py checks it is current)
"""

from __future__ import annotations

import os

COMMANDS: list[list[str]] = [
    [],
    ["pair"],
    ["gather"],
    ["host"],
    ["cmdline"],
    ["fleet"],
    ["portable"],
    ["platforms"],
    ["platforms", "list"],
    ["platforms", "show"],
    ["platforms", "graph"],
    ["probe-script"],
]


def help_text(args: list[str]) -> str:
    from typer.testing import CliRunner

    from migcheck.cli import app

    env = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb", "_TYPER_FORCE_DISABLE_TERMINAL": "1"}
    result = CliRunner().invoke(app, [*args, "--help"], env=env, prog_name="migcheck")
    return "\n".join(line.rstrip() for line in result.stdout.splitlines()).strip() + "\n"


def render() -> str:
    out = [
        "# migcheck command reference",
        "",
        "Generated from `--help` by `python -m migcheck.docgen > docs/cli.md`; "
        "`tests/test_docs.py` fails when it is stale.",
        "",
    ]
    for args in COMMANDS:
        title = " ".join(["migcheck", *args])
        out += [f"## `{title}`", "", "```", help_text(args).rstrip(), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "100")
    print(render(), end="")
