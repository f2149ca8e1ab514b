"""QEMU release facts (``data/qemu/releases.toml``): the x86 versioned machine types each
release registers, its aliases, default and deprecations. Validated like the rest of the
catalog; read by what-if (``--assume HOST:qemu=X.Y.Z``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migcheck.catalog.toml import CatalogError, read_toml

FAMILIES = ("pc-i440fx", "pc-q35")


@dataclass(frozen=True)
class Release:
    version: tuple[int, int]
    machines_added: tuple[str, ...]
    aliases: Mapping[str, str]
    default: str | None
    first_machine: Mapping[str, str]
    deprecated_before: Mapping[str, str]


def _per_family(value: Any, where: str, key: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        return dict.fromkeys(FAMILIES, value)
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return dict(value)
    raise CatalogError(where, f"'{key}' should be a version string or a table of them")


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(where, f"'{key}' should be a list of strings")
    return tuple(value)


def load_releases(path: Path) -> dict[tuple[int, int], Release]:
    if not path.exists():
        return {}  # a catalog without QEMU data: what-if and baselines say so
    doc = read_toml(path)
    entries = doc.get("release")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(str(path), "needs [[release]] entries")
    out: dict[tuple[int, int], Release] = {}
    for i, entry in enumerate(entries):
        where = f"{path} release[{i}]"
        if not isinstance(entry, dict):
            raise CatalogError(where, "should be a table")
        raw = entry.get("version")
        parts = str(raw).split(".") if isinstance(raw, str | float) else []
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise CatalogError(where, f"'version' should be 'X.Y', not {raw!r}")
        ver = (int(parts[0]), int(parts[1]))
        where = f"{path} [{raw}]"
        if ver in out:
            raise CatalogError(where, "release listed twice")
        aliases = entry.get("aliases", {})
        if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
        ):
            raise CatalogError(where, "'aliases' should be a table of names")
        default = entry.get("default")
        if default is not None and not isinstance(default, str):
            raise CatalogError(where, "'default' should be a machine type name")
        out[ver] = Release(
            version=ver,
            machines_added=_strings(entry.get("machines_added"), where, "machines_added"),
            aliases=dict(aliases),
            default=default,
            first_machine=_per_family(entry.get("first_machine"), where, "first_machine"),
            deprecated_before=_per_family(
                entry.get("deprecated_before"), where, "deprecated_before"
            ),
        )
    return out


@dataclass(frozen=True)
class Reviewed:
    """The newest QEMU release the catalog has reviewed (``[reviewed]`` in releases.toml)."""

    newest: tuple[int, int]
    covers: tuple[str, ...]
    note: str


def load_reviewed(path: Path) -> Reviewed | None:
    if not path.exists():
        return None
    doc = read_toml(path)
    table = doc.get("reviewed")
    if table is None:
        return None
    where = f"{path} [reviewed]"
    if not isinstance(table, dict) or not set(table) <= {"newest", "covers", "note", "sources"}:
        raise CatalogError(where, "takes newest, covers, note and sources")
    raw = table.get("newest")
    parts = raw.split(".") if isinstance(raw, str) else []
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise CatalogError(where, f"'newest' should be 'X.Y', not {raw!r}")
    note = table.get("note", "")
    if not isinstance(note, str):
        raise CatalogError(where, "'note' should be a string")
    return Reviewed(
        (int(parts[0]), int(parts[1])), _strings(table.get("covers"), where, "covers"), note
    )
