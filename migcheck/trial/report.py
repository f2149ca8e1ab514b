"""A trial as findings, and how it joins the static judgment (issue 23, section 5).

Stages become ``trial.start`` (both QEMUs started, the destination with ``-incoming``),
``trial.transfer`` (the migration completed on both sides), ``trial.abi`` (the
guest-visible ABI is equal) and ``trial.resume`` (``cont`` and the guest keeps running),
each carrying QEMU's own text. A trial that could not run is one ``trial.start`` finding
with status unknown: never pass. When the trial and the static checks disagree, both are
shown, the verdict is the worse one, and ``trial.disagreement`` says it is a migcheck defect.
"""

from __future__ import annotations

import re

from migcheck.findings import Finding, Status
from migcheck.trial.local import Stage
from migcheck.trial.remote import RemoteTrial
from migcheck.verdict import Verdict, combine, decide

STAGE_IDS = {
    "source-start": "trial.start",
    "destination-start": "trial.start",
    "migrate": "trial.transfer",
    "abi": "trial.abi",
    "cont": "trial.resume",
}
ORDER = ("trial.start", "trial.transfer", "trial.abi", "trial.resume")

# QEMU's words -> what they mean for the operator.
MEANINGS = (
    (
        re.compile(r"unsupported machine type|Machine type received is"),
        "the destination's QEMU does not have the guest's machine type",
    ),
    (
        re.compile(r"Property '[^']+' not found|can't apply global"),
        "the destination's QEMU lacks a device property the guest uses",
    ),
    (re.compile(r"not a valid device model name|'driver' .* not found|Device '[^']+' not found"),
     "the destination's QEMU lacks a device the guest uses"),
    (
        re.compile(r"CPU model '[^']+' not found|unable to find CPU model|Unable to find CPU"),
        "the destination's QEMU does not know the guest's CPU model",
    ),
    (
        re.compile(r"Missing section footer|load of migration failed|error while loading state"),
        "the destination could not load the guest's state: the two QEMUs build different "
        "hardware from the same command line",
    ),
    (re.compile(r"[Bb]locker|migration is disabled"), "QEMU refuses to migrate this guest"),
)  # fmt: skip


def meaning(text: str) -> str:
    for pattern, what in MEANINGS:
        if pattern.search(text):
            return f" ({what})"
    return ""


def findings(trial: RemoteTrial) -> list[Finding]:
    if trial.refused:
        return [
            Finding(
                "trial.start",
                Status.UNKNOWN,
                "the trial did not run: " + "; ".join(trial.refused),
                fix="see the reason; a trial that cannot run proves nothing either way",
            )
        ]
    out: dict[str, Finding] = {}
    reached: list[Stage] = trial.result.stages
    for stage in reached:
        fid = STAGE_IDS[stage.name]
        if fid in out and out[fid].status is Status.PASS and stage.ok:
            continue  # two starts, one finding
        if stage.ok is True:
            text = {
                "trial.start": "both skeletons started, the destination with -incoming",
                "trial.transfer": f"the migration completed ({trial.bytes_streamed} bytes "
                f"relayed in {trial.transfer_seconds:.2f} s)",
                "trial.abi": "the guest-visible ABI (CPUID words, virtio features, device "
                "properties) is equal on both sides",
                "trial.resume": "the destination continued and keeps running",
            }[fid]
            out[fid] = Finding(fid, Status.PASS, text)
        else:
            status = Status.UNKNOWN if stage.ok is None else Status.FAIL
            detail = stage.detail.strip()
            where = f"{stage.name}: " if fid == "trial.start" else ""
            out[fid] = Finding(
                fid,
                status,
                f"{where}{detail}{meaning(detail)}",
                source=None,
                destination=None,
            )
    if trial.result.differences and "trial.abi" in out:
        diffs = [str(d) for d in trial.result.differences]
        f = out["trial.abi"]
        out["trial.abi"] = Finding(
            f.id,
            f.status,
            f"the migration completed but the guest-visible ABI differs ({len(diffs)} "
            f"differences; QEMU does not check these): {f.message}",
            source=[d.source for d in trial.result.differences][:20],
            destination=[d.destination for d in trial.result.differences][:20],
        )
    for fid in ORDER:  # stages after a failure were not reached: say so, never pass
        if fid not in out and not any(f.status is Status.FAIL for f in out.values()):
            out[fid] = Finding(fid, Status.UNKNOWN, "not reached")
    return [out[fid] for fid in ORDER if fid in out]


def join(
    static: tuple[Finding, ...], trial: list[Finding], *, strict: bool = False
) -> tuple[tuple[Finding, ...], Verdict]:
    """Static findings + the trial's; the worse verdict; a disagreement is a defect."""
    static_verdict = decide(static, strict=strict)
    trial_verdict = decide(trial, strict=strict)
    extra: list[Finding] = []
    if {static_verdict, trial_verdict} == {Verdict.SAFE, Verdict.UNSAFE}:
        wrong = "static checks" if static_verdict is Verdict.SAFE else "trial"
        extra.append(
            Finding(
                "trial.disagreement",
                Status.WARN,
                f"the static checks say {static_verdict.value}, the trial says "
                f"{trial_verdict.value}: migcheck's {wrong} missed something. This is a "
                "migcheck defect: please file it with this report (JSON) attached",
                source=static_verdict.value,
                destination=trial_verdict.value,
            )
        )
    verdict = combine([static_verdict, trial_verdict])
    return (*static, *trial, *extra), verdict
