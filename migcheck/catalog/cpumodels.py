"""Named x86 CPU model families by generation (``data/qemu/cpu-models.toml``): the order
the fleet baseline and ``portable`` pick the newest model usable everywhere from."""

from __future__ import annotations

from pathlib import Path

from migcheck.catalog.toml import CatalogError, read_toml


def load_cpu_families(path: Path) -> tuple[tuple[str, str, int], ...]:
    """(name, vendor, year), newest first per vendor."""
    if not path.exists():
        return ()  # a catalog without QEMU data: what-if and baselines say so
    doc = read_toml(path)
    out = []
    for i, fam in enumerate(doc.get("family", [])):
        where = f"{path} family[{i}]"
        if not isinstance(fam, dict):
            raise CatalogError(where, "should be a table")
        name, vendor, year = fam.get("name"), fam.get("vendor"), fam.get("year")
        if not isinstance(name, str) or not isinstance(vendor, str):
            raise CatalogError(where, "needs 'name' and 'vendor' strings")
        if not isinstance(year, int) or isinstance(year, bool):
            raise CatalogError(f"{path} [{name}]", "'year' should be an integer")
        out.append((name, vendor, year))
    if not out:
        raise CatalogError(str(path), "needs [[family]] entries")
    return tuple(out)
