"""The check registry: every check declares what it is, what it reads and what it decides.

A check is a pure function ``(Context) -> list[Finding]`` registered with :func:`check`:

    @check("qemu.version", reads=("qemu.version",), summary="...")
    def check_version(ctx: Context) -> list[Finding]: ...

- ``ids``: the finding ids it emits. The first dotted component names the module it lives
  in (``kernel.*`` in ``checks/kernel.py``); an id ending in ``.*`` covers a family
  (``blocker.*``). Tests hold both rules.
- ``reads``: the facts it reads, as ``section.key`` paths (``kvm.capabilities``). The fleet
  keys host classes on exactly these, and a test runs every check on recording facts and
  fails when a check reads a path it did not declare, so the key cannot drift.
- ``gates_start``: the check decides whether the guest can start on a host at all (used
  by the fleet's "can run" column and every renderer through recorded findings).

Report order is ``REPORT_ORDER`` in ``checks/__init__.py`` (a new module is added there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from migcheck.checks.base import Context, Finding

Check = Callable[[Context], list[Finding]]


@dataclass(frozen=True)
class CheckInfo:
    name: str  # module.function, for messages and the docs table
    ids: tuple[str, ...]
    reads: frozenset[str]
    gates_start: bool
    summary: str
    func: Check

    def emits(self, finding_id: str) -> bool:
        for pattern in self.ids:
            if pattern.endswith(".*"):
                stem = pattern[:-2]
                if finding_id == stem or finding_id.startswith(stem + "."):
                    return True
            elif finding_id == pattern:
                return True
        return False


_REGISTRY: list[CheckInfo] = []
_ORDERED: tuple[CheckInfo, ...] | None = None


def check(
    *ids: str, reads: tuple[str, ...] | frozenset[str], summary: str, gates_start: bool = False
) -> Callable[[Check], Check]:
    """Register a check function; see the module docstring for the fields."""
    if not ids:
        raise ValueError("a check needs at least one finding id")

    def register(func: Check) -> Check:
        module = func.__module__.rsplit(".", 1)[-1]
        info = CheckInfo(
            f"{module}.{func.__name__}", ids, frozenset(reads), gates_start, summary, func
        )
        if any(i.name == info.name for i in _REGISTRY):
            raise ValueError(f"check {info.name} registered twice")
        _REGISTRY.append(info)
        return func

    return register


def registered() -> tuple[CheckInfo, ...]:
    """Every check, in report order: ``REPORT_ORDER`` of ``migcheck/checks/__init__.py``,
    then definition order within a module."""
    global _ORDERED
    if _ORDERED is None or len(_ORDERED) != len(_REGISTRY):
        from migcheck.checks import REPORT_ORDER  # importing the package registers them all

        def key(info: CheckInfo) -> tuple[int, int]:
            module = info.name.split(".")[0]
            rank = REPORT_ORDER.index(module) if module in REPORT_ORDER else len(REPORT_ORDER)
            return rank, info.func.__code__.co_firstlineno

        _ORDERED = tuple(sorted(_REGISTRY, key=key))
    return _ORDERED


def declared_reads() -> frozenset[str]:
    """Every facts path any registered check reads: the fleet's class key."""
    return frozenset(p for info in registered() for p in info.reads)


def info_for(finding_id: str) -> CheckInfo | None:
    return next((i for i in registered() if i.emits(finding_id)), None)
