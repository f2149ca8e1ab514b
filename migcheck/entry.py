"""The ``migcheck`` executable: answers ``--help``, ``--version`` and a well-formed ``pair``
without importing the CLI framework, then hands everything else to :mod:`migcheck.cli`.

Importing typer, click and rich costs ~45 ms of the ~120 ms ``migcheck --help`` took; the
top-level help text is generated (``python -m migcheck.docgen --help-text``) and
``tests/test_docs.py`` fails when it no longer equals what the CLI prints. ``pair`` is read
by :mod:`migcheck.fastargs` from the same declarations, or by typer when that declines.
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args in (["--help"], ["-h"]) and _columns() >= 80:
        from migcheck._help import HELP  # the CLI's own --help at 80 columns and wider

        sys.stdout.write(HELP)
        sys.stdout.flush()
        raise SystemExit(0)
    if args == ["--version"]:
        from migcheck import __version__

        print(f"migcheck {__version__}")
        raise SystemExit(0)
    if args[:1] == ["pair"]:
        from migcheck.fastargs import parse_pair

        params = parse_pair(args[1:])
        if params is not None:
            from migcheck.clirun import guarded
            from migcheck.fastargs import run_pair

            guarded(lambda: run_pair(params))
            return
    from migcheck.cli import main as cli_main

    cli_main()


def _columns() -> int:
    import shutil  # ~3 ms with what it imports: only --help needs the terminal's width

    return shutil.get_terminal_size().columns


if __name__ == "__main__":
    main()
