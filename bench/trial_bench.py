"""Benchmark: `migcheck trial`'s migration of untouched skeleton guests over loopback SSH.

  .venv/bin/python bench/trial_bench.py serve DIR     # a lab host (real sshd, real QEMU 7.2);
                                                      # writes DIR/ssh_config, runs until killed
  .venv/bin/python bench/trial_bench.py once GIB DIR  # one trial of a GIB guest, host to itself

Each trial: two SSH connections (source, destination), skeletons with memory-backend-ram
reserve=off, the stream relayed through this process. ``once`` prints the outcome, the
transfer seconds and the bytes relayed; time whole runs from outside (median of 5).
Run as root (the lab needs mount namespaces). Numbers go to BENCHMARKS.md by hand.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab import Lab  # noqa: E402

from migcheck.cmdline import parse_cmdline  # noqa: E402
from migcheck.hosts import parse_host  # noqa: E402
from migcheck.transport.settings import SshSettings  # noqa: E402
from migcheck.transport.ssh import SshSession  # noqa: E402
from migcheck.trial import remote  # noqa: E402
from migcheck.trial.skeleton import build  # noqa: E402


def serve(directory: Path) -> None:
    with Lab(directory / "lab") as lab:
        lab.add_host("bench")
        (directory / "ssh_config").write_text(lab.ssh_config.read_text())
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        print("ready", flush=True)
        while True:
            time.sleep(3600)


def once(gib: int, directory: Path) -> int:
    spec = parse_cmdline(f"qemu-system-x86_64 -machine pc-q35-7.2 -accel tcg -m {gib}G -nodefaults")
    settings = SshSettings(config_file=directory / "ssh_config", timeout=60)
    host = parse_host("bench")
    with SshSession(settings) as session:
        run, _ = remote.run(
            session,
            host,
            host,
            lambda sizes, r: build(spec, sizes, reserve_off=r),
            remote.TrialOptions(max_memory=1 << 50, transfer_timeout=1800),
            [],
        )
    print(
        f"{gib} GiB: {run.result.summary()} transfer {run.transfer_seconds:.2f} s "
        f"relayed {run.bytes_streamed} bytes total {run.result.seconds:.2f} s "
        f"QEMU peak RSS MiB { ({k: v >> 20 for k, v in run.peak_rss.items()}) } {run.refused}"
    )
    return 0 if run.result.outcome == "safe" else 1


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(Path(sys.argv[2]))
    else:
        raise SystemExit(once(int(sys.argv[2]), Path(sys.argv[3])))
