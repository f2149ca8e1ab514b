"""A small QMP client over a unix socket (standard library only).

Every call is bounded by a deadline: a QEMU that hangs, exits or aborts in the middle of a
query (Debian 12's 7.2 aborts on some ``x-query-virtio-status`` calls) raises ``QmpError``
with what happened, never blocks the caller.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from typing import Any


class QmpError(Exception):
    """A QMP call failed: QEMU answered with an error, closed the socket, or ran out of time.

    ``error_class`` is QEMU's error class when QEMU itself answered (``GenericError``,
    ``CommandNotFound``, ...), else ``None`` (connection lost, timeout)."""

    def __init__(self, message: str, error_class: str | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class


class QmpClient:
    """One QMP connection. Use :meth:`connect`; close with :meth:`close` or ``with``."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self._sock = sock
        self._path = path
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.greeting: dict[str, Any] = {}

    @classmethod
    def connect(cls, path: str, timeout: float = 10.0, alive: Any = None) -> QmpClient:
        """Connect to the QMP socket at ``path``, retrying until ``timeout`` seconds pass (QEMU
        creates the socket a moment after it starts), then negotiate capabilities.

        ``alive``, when given, is a callable returning False once the QEMU process has
        exited: then retrying stops at once with QEMU's failure instead of the timeout."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            if alive is not None and not alive():
                raise QmpError(f"QEMU exited before its QMP socket answered ({path})")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                sock.connect(path)
                client = cls(sock, path)
                client.greeting = client._read(deadline)
                client.execute("qmp_capabilities", timeout=max(0.5, deadline - time.monotonic()))
                return client
            except (OSError, QmpError) as err:
                sock.close()
                last = err
                if time.monotonic() >= deadline:
                    raise QmpError(f"cannot connect to QMP at {path}: {last}") from None
                time.sleep(0.05)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> QmpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, deadline: float) -> dict[str, Any]:
        """Read one JSON message (QMP sends one per line)."""
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QmpError(f"QMP at {self._path}: no answer in time")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise QmpError(f"QMP at {self._path}: no answer in time") from None
            except OSError as err:
                raise QmpError(f"QMP at {self._path}: connection lost ({err})") from None
            if not chunk:
                raise QmpError(f"QMP at {self._path}: QEMU closed the connection (exited?)")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            raise QmpError(f"QMP at {self._path}: not JSON: {line[:200]!r}") from None
        if not isinstance(msg, dict):
            raise QmpError(f"QMP at {self._path}: not a JSON object: {line[:200]!r}")
        return msg

    def execute(
        self, command: str, args: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> Any:
        """Run one command; return its ``return`` value. Events that arrive meanwhile are
        kept in :attr:`events`. A QEMU error raises ``QmpError`` carrying QEMU's own text."""
        deadline = time.monotonic() + timeout
        self._next_id += 1
        ident = f"mc{self._next_id}"
        request: dict[str, Any] = {"execute": command, "id": ident}
        if args:
            request["arguments"] = args
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as err:
            raise QmpError(f"QMP at {self._path}: cannot send {command}: {err}") from None
        while True:
            msg = self._read(deadline)
            if "event" in msg:
                self.events.append(msg)
                continue
            if msg.get("id") != ident:
                continue  # an answer to an earlier, timed-out request
            if "error" in msg:
                err = msg["error"] if isinstance(msg["error"], dict) else {}
                raise QmpError(
                    f"{command}: {err.get('desc', msg['error'])}", str(err.get("class", ""))
                )
            return msg.get("return")

    def wait_event(self, name: str, timeout: float) -> dict[str, Any] | None:
        """Wait for event ``name`` (or return one already received); None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("event") == name:
                    return self.events.pop(i)
            try:
                msg = self._read(deadline)
            except QmpError:
                if time.monotonic() >= deadline:
                    return None
                raise
            if "event" in msg:
                self.events.append(msg)
