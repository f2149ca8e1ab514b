"""CPU feature names: one canonical (QEMU) spelling per feature bit.

QEMU accepts several spellings of some features and lists all of them in
``query-cpu-model-expansion`` (``sse4_1``, ``sse4-1`` and ``sse4.1`` are one bit). Two QEMU
versions may list different alias sets, so comparisons must happen on canonical names.
Source: QEMU target/i386/cpu.c, ``x86_cpu_initfn()`` (``object_property_add_alias`` calls)
and ``feat2prop()``, which turns ``_`` into ``-``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Alias -> canonical, after "_" -> "-" (target/i386/cpu.c x86_cpu_initfn).
QEMU_ALIASES = {
    "sse3": "pni",
    "pclmuldq": "pclmulqdq",
    "sse4-1": "sse4.1",
    "sse4-2": "sse4.2",
    "xd": "nx",
    "ffxsr": "fxsr-opt",
    "i64": "lm",
}


def canonical(name: str) -> str:
    dashed = name.replace("_", "-")
    return QEMU_ALIASES.get(dashed, dashed)


def canonical_props(props: Mapping[str, Any]) -> dict[str, Any]:
    """Props keyed by canonical name; a True under any spelling wins (same bit)."""
    out: dict[str, Any] = {}
    for name, value in props.items():
        key = canonical(name)
        if key in out and isinstance(value, bool) and isinstance(out[key], bool):
            out[key] = out[key] or value
        else:
            out.setdefault(key, value)
    return out


def canonical_set(names: Iterable[str]) -> set[str]:
    return {canonical(n) for n in names}
