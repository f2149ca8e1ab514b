"""The summary table after ``migcheck gather``: one row per host, failures included."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from migcheck.gather import HostResult


def render_summary(console: Console, results: Sequence[HostResult]) -> None:
    table = Table(header_style="bold")
    for name in ("host", "kernel", "QEMU", "CPU", "status", "seconds"):
        table.add_column(
            name, overflow="ellipsis" if name == "CPU" else "fold", no_wrap=name != "host"
        )
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
    console.print(table)
    console.print(f"{ok} of {len(results)} hosts gathered", highlight=False)
