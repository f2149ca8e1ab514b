"""The summary table after ``migcheck gather``: one row per host, failures included."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from migcheck.gather import HostResult


def render_summary(console: Console, results: Sequence[HostResult]) -> None:
    table = Table(header_style="bold")
    # The host name is what the operator looks for: it keeps the most room (longer names
    # fold). Below 100 columns six columns only fit when kernel and CPU give way: they fold
    # within a narrower column (a row is as tall as its host name anyway), never cut.
    narrow = console.width < 100
    longest = max((len(r.ref.text) for r in results), default=4)
    table.add_column("host", overflow="fold", min_width=min(16 if narrow else 32, longest))
    table.add_column("kernel", overflow="fold", max_width=10 if narrow else None)
    table.add_column("QEMU", no_wrap=True)
    table.add_column("CPU", overflow="fold", max_width=12 if narrow else None)
    table.add_column("status", no_wrap=True)
    table.add_column("seconds", no_wrap=True)
    for r in results:
        f = r.facts
        if f is None:
            status = Text("failed", style="bold red")
            row = [r.ref.text, "-", "-", "-"]
        else:
            kvm = f.kvm_usable
            status = Text("ok" if kvm else "ok, no KVM", style="green" if kvm else "yellow")
            row = [r.ref.text, f.kernel_release or "?", f.qemu_version or "?", f.cpu_summary or "?"]
        table.add_row(*row, status, f"{r.seconds:.2f}")
    ok = sum(1 for r in results if r.ok)
    console.print(table, soft_wrap=False)  # the table fits the terminal (stderr soft-wraps)
    console.print(f"{ok} of {len(results)} hosts gathered", highlight=False)
