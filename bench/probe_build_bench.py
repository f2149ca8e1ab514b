"""Probe cost of the per-build QEMU data: the probe before it (commit 59d1186), the probe
now when the controller holds the build key (the usual case), and the probe now sending the
build schema (first sight of a build). Runs each variant N times with the real QEMU of this
machine (and of the Debian 13 chroot when present, as fixtures/capture.sh runs it); prints
medians of wall time and output size.

    .venv/bin/python bench/probe_build_bench.py [RUNS]  # as root for the chroot
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migcheck.probe import probe_source  # noqa: E402

CHROOT = os.environ.get("TRIXIE_ROOT", "/var/tmp/migcheck-trixie")


def script(source: str, config: dict) -> str:
    literal = repr(json.dumps(config, sort_keys=True))
    return f"import json as _j; CONFIG = _j.loads({literal})\n" + source


def run(text: str, chroot: bool) -> tuple[float, int, dict]:
    if chroot:
        mounts = " && ".join(f"mount --rbind /{d} '{CHROOT}/{d}'" for d in ("proc", "sys", "dev"))
        argv = ["unshare", "--mount", "sh", "-c",
                f"{mounts} && chroot '{CHROOT}' env LC_ALL=C python3 -"]  # fmt: skip
    else:
        argv = [sys.executable, "-"]
    started = time.monotonic()
    out = subprocess.run(argv, input=text.encode(), capture_output=True, check=True).stdout
    return time.monotonic() - started, len(out), json.loads(out)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    before_src = subprocess.run(
        ["git", "-C", str(ROOT), "show", "59d1186:migcheck/probe/probe.py"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    now_src = probe_source()
    hosts = [("this machine", False)]
    if os.path.exists(f"{CHROOT}/usr/bin/qemu-system-x86_64") and os.geteuid() == 0:
        hosts.append(("Debian 13 chroot", True))
    print(
        "| host | probe | median wall | min | max | probe.seconds (median) | output bytes | runs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, chroot in hosts:
        _, _, doc = run(script(now_src, {"known_builds": []}), chroot)
        key = doc["qemu"]["build"]["key"]
        variants = [
            ("before (59d1186)", script(before_src, {})),
            ("now, build key held", script(now_src, {"known_builds": [key]})),
            ("now, sends the build schema", script(now_src, {"known_builds": []})),
        ]
        # Round robin: the variants share whatever else the machine is doing.
        samples: dict[str, list[tuple[float, int, dict]]] = {name: [] for name, _ in variants}
        for _ in range(runs):
            for name, text in variants:
                samples[name].append(run(text, chroot))
        for name, _ in variants:
            times = [s[0] for s in samples[name]]
            size = statistics.median(s[1] for s in samples[name])
            inner = statistics.median(s[2]["probe"]["seconds"] for s in samples[name])
            print(
                f"| {label} | {name} | {statistics.median(times):.3f} s | {min(times):.3f} s "
                f"| {max(times):.3f} s | {inner:.3f} s | {size:.0f} | {runs} |"
            )


if __name__ == "__main__":
    main()
