"""Reading catalog TOML files: one error type naming the file and entry for every loader."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from migcheck.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class CatalogError(InputError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"platform catalog {where}: {problem}")


def read_toml(path: Path) -> dict[str, Any]:
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
