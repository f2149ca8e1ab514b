"""Print the ground-truth agreement table: ``python -m tests.groundtruth_table [--markdown]``.

Migrates every case of tests/groundtruth_cases.py both ways between this machine's QEMU 7.2
and the trixie chroot's QEMU 10.0, and sets each outcome beside migcheck's verdict on the
same command line (facts: fixtures/hosts/debian1[23]-*.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from groundtruth_cases import (
    CASES,
    DIRECTIONS,
    KNOWN_GAPS,
    agreement,
    migcheck_verdicts,
    run_trials,
)
from lab.chroot import chroot_has_kvm, trixie_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    root = trixie_root()
    if root is None:
        print("the trixie chroot is missing: run .ci/trixie-chroot", file=sys.stderr)
        return 3
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK) and chroot_has_kvm(root)
    cases = [c for c in CASES if kvm or not c.kvm]
    started = time.monotonic()
    trials = run_trials(cases, root, jobs=args.jobs)
    verdicts = migcheck_verdicts(cases)
    counts: Counter[str] = Counter()
    rows = []
    for case in cases:
        for d in DIRECTIONS:
            key = f"{case.id}/{d}"
            trial = trials[key]
            truth = trial.outcome  # type: ignore[attr-defined]
            failed = trial.failed  # type: ignore[attr-defined]
            stage = failed.name if failed else ""
            verdict = verdicts[key]
            cls = agreement(truth, verdict)
            counts[cls] += 1
            gap = "known gap" if key in KNOWN_GAPS else ""
            rows.append((case.id, d, f"{truth} {stage}".strip(), verdict, cls, gap))
    if args.markdown:
        print("| case | direction | ground truth | migcheck | agreement |")
        print("|---|---|---|---|---|")
        for row in rows:
            print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[4]} {row[5]} |")
    else:
        for row in rows:
            print(f"{row[0]:30} {row[1]:9} {row[2]:26} {row[3]:8} {row[4]:12} {row[5]}")
    summary = ", ".join(
        f"{k} {counts[k]}" for k in ("agree", "false safe", "false unsafe", "unknown")
    )
    print(
        f"\n{len(rows)} migrations ({len(cases)} command lines x 2 directions): {summary}; "
        f"{time.monotonic() - started:.1f} s"
    )
    if not kvm:
        print("KVM cases left out: /dev/kvm missing here or in the chroot", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
