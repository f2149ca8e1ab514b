"""Reading catalog TOML files: one error type naming the file and entry, and the field
validators every loader shares."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from migcheck.errors import InputError


class CatalogError(InputError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"platform catalog {where}: {problem}")


def read_toml(path: Path) -> dict[str, Any]:
    # Imported here: a run that finds the parsed catalog in its cache never parses TOML, and
    # tomllib costs ~10 ms to import.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise CatalogError(str(path), f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(str(path), f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # tomllib decodes before it parses
        raise CatalogError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise CatalogError(str(path), "not valid TOML: nested too deeply") from None


def _need(doc: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in doc:
        raise CatalogError(where, f"{key!r} is missing")
    value = doc[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise CatalogError(where, f"{key!r} should be {kind.__name__}")
    return value


def _optional(doc: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """``doc[key]`` if it is a ``kind`` (a bool is not a number here), None if absent."""
    value = doc.get(key)
    if value is not None and (
        not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))
    ):
        raise CatalogError(where, f"{key!r} should be {kind.__name__}")
    return value


def _sources(doc: Mapping[str, Any], where: str) -> tuple[Mapping[str, str], ...]:
    sources = doc.get("sources")
    if not isinstance(sources, list) or not sources:
        raise CatalogError(where, "needs at least one [[sources]] entry (every fact cites one)")
    for i, s in enumerate(sources):
        if not isinstance(s, dict) or not isinstance(s.get("url") or s.get("title"), str):
            raise CatalogError(where, f"sources[{i}] needs a title or url")
    return tuple(sources)


def check_option(option: Mapping[str, Any], where: str) -> None:
    """An option match (``{ option = "netdev", key = "vhost", value = "on" }``), as
    dependencies._option_matches() reads it."""
    _need(option, "option", str, where)
    _optional(option, "key", str, where)
    value = option.get("value")
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise CatalogError(where, "'value' should be a string, number or boolean")
