"""Benchmark: `migcheck fleet` end to end over N facts files and over N hosts whose facts are
in the probe cache, this code against the code before (issue 25).

Each figure is the whole CLI process (start-up, reading every host, the class-pair matrix
for one guest, rendering JSON to a file), timed from outside: wall seconds from start to
exit, the child's CPU seconds (user + system) and peak RSS (``wait4``). Before and after
run in turn (paired), medians. Every run records the 1-minute load average at its start:
on a shared machine wall time follows the load, CPU seconds much less.

* ``files``: ``migcheck fleet DIR/*.json --cmdline web01-q35.cmdline -f json -o OUT``.
* ``cache``: ``migcheck fleet --inventory DIR/inventory.ini --cached ...`` with
  ``XDG_CACHE_HOME=DIR/cache`` (no host contacted). A "before" without ``--cached`` (older
  than the streaming work) gets no row.
* cold: the digest cache (and, for ``--cached``, the index of probe-cache entries) is
  removed before the run; warm: they hold the last run's.

Run: .venv/bin/python bench/fleet_scale_bench.py [--before DIR] [--hosts 1000,10000]
``--before DIR``: a checkout of the code to compare with (e.g. ``git worktree add DIR
<commit>`` and ``make -C DIR .venv/.installed``); it runs with DIR's own ``.venv``. The
fleets are made once under --work by this checkout's bench/make_fleet.py. Both trees get
their bytecode compiled first (a machine with PYTHONDONTWRITEBYTECODE=1 would otherwise
recompile every module on every run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUEST = ROOT / "fixtures" / "cmdlines" / "web01-q35.cmdline"


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, float] | None:
    """Wall seconds, peak RSS in MB (10^6 bytes), CPU seconds (user + system) and the
    1-minute load average at the start of one run; None when the command refused its
    arguments (exit 2: a before without an option)."""
    load = os.getloadavg()[0]
    start = time.monotonic()
    # cwd "/": `python -m` puts the working directory first on sys.path, and a checkout
    # there (the code before, say) would be imported instead of the code asked for.
    proc = subprocess.Popen(
        cmd, env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code == 2:
        return None
    if code not in (0, 1, 3):
        raise SystemExit(f"{' '.join(cmd[:4])} ...: exit {code}")
    return wall, usage.ru_maxrss * 1024 / 1e6, usage.ru_utime + usage.ru_stime, load


def ensure_fleet(work: Path, form: str, n: int) -> Path:
    out = work / f"{form}-{n}"
    marker = out / ".complete"
    if not marker.exists():
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "make_fleet.py"),
                form,
                str(out),
                "--hosts",
                str(n),
            ],
            check=True,
        )
        marker.touch()
    return out


def command(python: str, form: str, fleet: Path, out: Path) -> list[str]:
    base = [python, "-m", "migcheck.entry", "fleet"]
    tail = ["--cmdline", str(GUEST), "-f", "json", "-o", str(out)]
    if form == "files":
        return base + sorted(str(p) for p in fleet.glob("*.json")) + tail
    return [*base, "--inventory", str(fleet / "inventory.ini"), "--cached", *tail]


def compile_tree(python: str, tree: Path) -> None:
    subprocess.run(
        [python, "-m", "compileall", "-q", str(tree / "migcheck")],
        check=True,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE=""),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="checkout of the code before")
    parser.add_argument("--hosts", default="1000,10000")
    parser.add_argument("--forms", default="files,cache")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/migcheck-bench-fleet"))
    args = parser.parse_args()
    python = sys.executable
    env_base = dict(os.environ)
    env_base.pop("PYTHONDONTWRITEBYTECODE", None)  # use the compiled bytecode
    compile_tree(python, ROOT)
    old = str(args.before / ".venv" / "bin" / "python") if args.before else None
    if args.before and old:
        compile_tree(old, args.before)
    rows = []
    for n in (int(x) for x in args.hosts.split(",")):
        for form in args.forms.split(","):
            fleet = ensure_fleet(args.work, form, n)
            xdg = fleet / "cache" if form == "cache" else args.work / f"xdg-{n}"
            env = dict(env_base, XDG_CACHE_HOME=str(xdg))
            codes = {"after": command(python, form, fleet, args.work / "after.json")}
            if old:
                codes["before"] = command(old, form, fleet, args.work / "before.json")
            for temp in ("cold", "warm"):
                samples: dict[str, list[tuple[float, float, float, float]]] = {
                    who: [] for who in codes
                }
                if temp == "warm":
                    for cmd in codes.values():
                        run(cmd, env)  # fills the digest cache
                for _ in range(args.runs):
                    for who, cmd in codes.items():
                        if temp == "cold":
                            shutil.rmtree(xdg / "migcheck" / "digests", ignore_errors=True)
                            index = xdg / "migcheck" / "facts" / ".targets-index"
                            index.unlink(missing_ok=True)  # --cached's index of entries
                        got = run(cmd, env)
                        if got is not None:
                            samples[who].append(got)
                for who, runs in samples.items():
                    if not runs:
                        continue
                    walls = [r[0] for r in runs]
                    rss = [r[1] for r in runs]
                    cpu = [r[2] for r in runs]
                    load = [r[3] for r in runs]
                    rows.append(
                        f"| {n:,} | {form} | {who} | {temp} "
                        f"| {statistics.median(walls):.2f} s ({min(walls):.2f}-{max(walls):.2f}) "
                        f"| {statistics.median(cpu):.2f} | {statistics.median(rss):.0f} MB "
                        f"| {min(load):.2f}-{max(load):.2f} | {len(runs)} |"
                    )
                    print(rows[-1], flush=True)
    head = (
        "| hosts | form | code | digest cache | wall median (min-max) | CPU s | peak RSS "
        "| load (1 min) | runs |"
    )
    print("\n" + head)
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
