"""Errors users see, each carrying the documented exit code.

Exit codes are a contract (DESIGN.md): 0 safe, 1 unsafe, 2 bad input or usage,
3 unknown (a host could not be reached or its facts are incomplete).
"""

from __future__ import annotations

EXIT_SAFE = 0
EXIT_UNSAFE = 1
EXIT_INPUT = 2
EXIT_UNKNOWN = 3


class MigcheckError(Exception):
    """Base error; ``str(err)`` is a one-paragraph message for the operator."""

    exit_code = EXIT_INPUT

    def __str__(self) -> str:
        # Messages quote hosts' stderr and files' content: never pass terminal control on.
        from migcheck.textsafe import scrub

        return scrub(super().__str__())


class InputError(MigcheckError):
    """Bad input: malformed command line, corrupt or foreign facts, unknown option value."""

    exit_code = EXIT_INPUT


class HostError(MigcheckError):
    """A host could not be gathered (unreachable, probe failed, timed out)."""

    exit_code = EXIT_UNKNOWN

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.reason = message
