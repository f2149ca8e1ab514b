"""Trial findings: recorded only by ``migcheck trial`` / ``pair --trial`` (migcheck/trial/).

The registry lists them so reports, docs and the fleet know the ids; the static run records
nothing for them (a trial needs two live hosts, which a check never touches).
"""

from __future__ import annotations

from migcheck.checks.base import Context, Finding
from migcheck.checks.registry import check


@check(
    "trial.start",
    "trial.transfer",
    "trial.abi",
    "trial.resume",
    "trial.disagreement",
    reads=(),
    summary=(
        "(`migcheck trial` only) a real migration of a skeleton guest between the two hosts: "
        "both QEMUs start, the migration completes, the guest-visible ABI (CPUID, virtio "
        "features, device properties) is equal, the destination keeps running; a trial that "
        "could not run is unknown; a disagreement with the static checks is a migcheck defect"
    ),
)
def check_trial(ctx: Context) -> list[Finding]:
    return []  # recorded by migcheck.trial.report, never by the static run
