"""Benchmark: start-up and ``pair``, side by side with older code (issue 20's targets).

Whole processes in paired, alternating runs (A B A B ...); medians of wall time and of the
per-pair ratio, so a comparison holds while the machine's speed drifts:

  1. ``migcheck --help``;
  2. offline ``pair`` on two facts files (the older code's own fixtures, which both read);
  3. ``pair`` between two lab hosts over real SSH (real sshd, the real QEMU), probe cache
     warm, against ``ssh HOST python3 -c pass`` to the same lab host in the same run.

Run as root (the lab needs mount namespaces), after ``python -m compileall migcheck`` in
both trees (this machine sets PYTHONDONTWRITEBYTECODE=1):

    .venv/bin/python bench/startup_bench.py --before DIR [--runs 11]

DIR is a checkout of the older code with its own .venv (``git worktree add DIR 5deb90c``).
Numbers go to BENCHMARKS.md by hand, with the machine and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab import Lab  # noqa: E402

CMDLINE = "qemu-system-x86_64 -machine pc-q35-7.2 -accel kvm -cpu qemu64 -m 1024\n"


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the process and its children) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr[-400:]!r}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def paired(label: str, a: list[str], b: list[str], runs: int, env: dict[str, str]) -> None:
    run(a, env), run(b, env)  # warm-up, not counted
    walls: tuple[list[float], list[float]] = ([], [])
    ratios = []
    for _ in range(runs):
        wa, _ = run(a, env)
        wb, _ = run(b, env)
        walls[0].append(wa)
        walls[1].append(wb)
        ratios.append(wa / wb)
    ma, mb = statistics.median(walls[0]), statistics.median(walls[1])
    print(
        f"{label}: A {ma:.3f} s ({min(walls[0]):.3f}-{max(walls[0]):.3f}), "
        f"B {mb:.3f} s ({min(walls[1]):.3f}-{max(walls[1]):.3f}), "
        f"A/B median of pairs {statistics.median(ratios):.2f}x (n={runs})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="checkout of the older code with .venv")
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    now = ROOT / ".venv" / "bin" / "migcheck"
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    print(f"load average {os.getloadavg()[0]:.2f}; A = this tree, B = as named")
    with tempfile.TemporaryDirectory(prefix="migcheck-startup-") as tmp:
        env.update(XDG_CACHE_HOME=str(Path(tmp) / "cache"), NO_COLOR="1", COLUMNS="100")
        if args.before is not None:
            old = args.before / ".venv" / "bin" / "migcheck"
            hosts = args.before / "fixtures" / "hosts"
            facts = [str(hosts / "debian13-qemu10.0-epyc-pvm.json")]
            facts.append(str(hosts / "debian12-qemu7.2-epyc-pvm.json"))
            guest = ["--cmdline", str(args.before / "fixtures" / "cmdlines" / "web01-q35.cmdline")]
            paired("--help, B = before", [str(now), "--help"], [str(old), "--help"], args.runs, env)
            paired(
                "offline pair, B = before",
                [str(now), "pair", *facts, *guest],
                [str(old), "pair", *facts, *guest],
                args.runs,
                env,
            )
        lab = Lab(Path(tmp) / "lab")
        try:
            lab.add_host("su-a", qemu="real")
            lab.add_host("su-b", qemu="real")
            cmdline = Path(tmp) / "vm.cmdline"
            cmdline.write_text(CMDLINE)
            cfg = str(lab.ssh_config)
            pair = ["pair", "su-a", "su-b", "-F", cfg, "-c", str(cmdline)]
            run([str(now), *pair], env)  # fills the probe cache: later runs skip QEMU
            ssh = ["ssh", "-F", cfg, "su-a", "python3", "-c", "pass"]
            paired("pair over SSH, B = ssh python3 -c pass", [str(now), *pair], ssh, args.runs, env)
            if args.before is not None:
                run([str(old), *pair], env)
                before = [str(old), *pair]
                paired("pair over SSH, B = before", [str(now), *pair], before, args.runs, env)
        finally:
            lab.close()


if __name__ == "__main__":
    main()
