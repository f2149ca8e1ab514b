"""Benchmark: migcheck over loopback SSH against the test lab's real sshd hosts.

Measures, on this machine:
  1. `migcheck pair A B --cmdline ...` between two lab hosts (real sshd, recorded-QMP QEMU
     stand-ins), N runs: median, min, max wall seconds of the whole CLI process;
  2. `migcheck gather` of 50 host aliases served by one sshd with --jobs 16: hosts/second.

Run as root (the lab needs mount namespaces):  .venv/bin/python bench/ssh_bench.py
Numbers go to BENCHMARKS.md by hand, with the machine they came from.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab import Lab, hostdata  # noqa: E402

MIGCHECK = [sys.executable, "-m", "migcheck.cli"]
CMDLINE = "qemu-system-x86_64 -machine pc-q35-8.2 -accel kvm -cpu EPYC-Rome -m 2048\n"


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return elapsed


def summary(label: str, samples: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(samples):.3f} s, "
        f"min {min(samples):.3f} s, max {max(samples):.3f} s (n={len(samples)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--aliases", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="migcheck-bench-") as tmp:
        lab = Lab(Path(tmp) / "lab")
        try:
            lab.add_host("bench-a", qemu="8.2.0", kernel="6.1.0-18-amd64")
            lab.add_host(
                "bench-b", qemu="9.1.0", kernel="6.8.0-45-generic", os_release=hostdata.UBUNTU_2204
            )
            lab.add_host("bench-fan", qemu="9.1.0", max_startups="10:30:100")
            cmdline = Path(tmp) / "vm.cmdline"
            cmdline.write_text(CMDLINE)
            cfg = str(lab.ssh_config)
            pair = [
                *MIGCHECK,
                "pair",
                "bench-a",
                "bench-b",
                "-F",
                cfg,
                "-c",
                str(cmdline),
                "-f",
                "json",
            ]
            timed(pair)  # warm the page cache; not counted
            pairs = [timed(pair) for _ in range(args.runs)]
            print(summary("pair over SSH (2 hosts, whole CLI process)", pairs))

            alias_cfg = lab.alias_config(args.aliases, "bench-fan", prefix="fan")
            names = [f"fan{i:03d}" for i in range(1, args.aliases + 1)]
            out = Path(tmp) / "facts"
            gathers = []
            for _ in range(args.runs):
                gathers.append(
                    timed(
                        [
                            *MIGCHECK,
                            "gather",
                            *names,
                            "-F",
                            str(alias_cfg),
                            "--out-dir",
                            str(out),
                            "--jobs",
                            str(args.jobs),
                        ]
                    )
                )
            med = statistics.median(gathers)
            print(summary(f"gather of {args.aliases} aliases, --jobs {args.jobs}", gathers))
            print(f"  = {args.aliases / med:.1f} hosts/s at the median")
        finally:
            lab.close()


if __name__ == "__main__":
    main()
