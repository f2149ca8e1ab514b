"""Read a well-formed ``migcheck pair`` command line without the CLI framework.

``pair`` is what operators and CI gates run most, often once per guest; importing typer and
click and building the command tree cost about 40 ms of the ~180 ms an offline ``pair``
took. This parser reads the same options, from a table generated out of the typer
declarations (:mod:`migcheck._pairargs`, ``python -m migcheck.docgen --fast-args``), and
answers ``None`` for anything it is not certain click would read the same way: an unknown
or abbreviated option, ``--help``, a value that looks like an option, a number outside its
range, a wrong number of HOSTs. Those command lines go to typer, which parses them or
prints its usual error, so this path can be faster but never different.
``tests/test_fastargs.py`` holds both parsers to the same answers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from migcheck._pairargs import DEFAULTS, OPTIONS, POSITIONAL, SHARED

_INT = re.compile(r"[0-9]{1,9}")
_FLOAT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


def _convert(kind: tuple[Any, ...], text: str) -> Any:
    """The value click would pass, or ``None`` when this parser should not decide."""
    if text.startswith("-") and text != "-":
        return None  # click would take it as the value; a typo more likely: let click say
    name = kind[0]
    if name == "str":
        return text
    if name == "path":
        return Path(text) if text else None
    if name == "choice":
        return text if text in kind[1] else None
    if name in ("int", "float"):
        if not (_INT if name == "int" else _FLOAT).fullmatch(text):
            return None
        number = int(text) if name == "int" else float(text)
        low, high = kind[1], kind[2]
        if (low is not None and number < low) or (high is not None and number > high):
            return None
        return number
    return None


def parse_pair(args: list[str]) -> dict[str, Any] | None:
    """``pair``'s parameters by name, as typer would pass them, or ``None``."""
    values: dict[str, Any] = {}
    positional: list[str] = []
    rest = list(args)
    only_positional = False
    while rest:
        token = rest.pop(0)
        if only_positional or token == "-" or not token.startswith("-"):
            positional.append(token)
            continue
        if token == "--":
            only_positional = True
            continue
        name, eq, inline = token.partition("=")
        if eq and not name.startswith("--"):
            return None  # "-c=FILE" means the value "=FILE" to click: not ours to guess
        spec = OPTIONS.get(name)
        if spec is None:
            return None
        param, kind, multiple = spec
        if kind[0] == "flag":
            if eq:
                return None
            values[param] = True
            continue
        if eq:
            text = inline
        elif rest:
            text = rest.pop(0)
        else:
            return None
        value = _convert(kind, text)
        if value is None:
            return None
        if multiple:
            values.setdefault(param, []).append(value)
        else:
            values[param] = value
    if len(positional) != len(POSITIONAL):
        return None
    params = dict(DEFAULTS)
    params.update(zip(POSITIONAL, positional, strict=True))
    params.update(values)
    return params


def run_pair(params: dict[str, Any]) -> None:
    """Run ``pair`` as :mod:`migcheck.cli` would with the same parameters."""
    from migcheck import clirun

    shared = {name: params.pop(name) for name in SHARED}
    clirun.set_verbose(shared.pop("verbose"))
    shared.setdefault("jobs", 2)  # as cli.gathers: pair gathers two hosts at most
    src, dst = (params.pop(name) for name in POSITIONAL)
    clirun.pair(src, dst, clirun.gather_options(**shared), **params)
