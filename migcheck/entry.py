"""The ``migcheck`` executable: answers ``--help`` and ``--version`` without importing the
CLI framework, then hands everything else to :mod:`migcheck.cli`.

Importing typer, click and rich costs ~45 ms of the ~120 ms ``migcheck --help`` took; the
top-level help text is generated (``python -m migcheck.docgen --help-text``) and
``tests/test_docs.py`` fails when it no longer equals what the CLI prints.
"""

from __future__ import annotations

import shutil
import sys


def main() -> None:
    args = sys.argv[1:]
    if args in (["--help"], ["-h"]) and shutil.get_terminal_size().columns >= 80:
        from migcheck._help import HELP  # the CLI's own --help at 80 columns and wider

        sys.stdout.write(HELP)
        sys.stdout.flush()
        raise SystemExit(0)
    if args == ["--version"]:
        from migcheck import __version__

        print(f"migcheck {__version__}")
        raise SystemExit(0)
    from migcheck.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
