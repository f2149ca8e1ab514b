"""Input completeness: the device graph the other checks judge must be the whole guest.

Every device check iterates ``VmSpec.devices`` (:mod:`migcheck.devicegraph`). Where the
command line creates devices migcheck could not see (a ``-readconfig`` file it could not
read, a machine type or option whose devices it does not model), a ``safe`` from those
checks would rest on a partial list, so these findings make the verdict ``unknown``.
"""

from __future__ import annotations

from migcheck.checks.base import Context, Finding, Status, unknown
from migcheck.checks.registry import check


@check(
    "cmdline.readconfig",
    reads=(),
    summary=(
        "(unknown) a `-readconfig FILE` could not be read or parsed, so the devices it "
        "defines are not judged (a relative path is looked up beside the command line file)"
    ),
)
def check_readconfig(ctx: Context) -> list[Finding]:
    cid = "cmdline.readconfig"
    out = []
    for rc in ctx.vm.readconfigs:
        if rc.error is not None:
            out.append(
                unknown(
                    cid, f"-readconfig {rc.path}: {rc.error}; the devices it defines are unknown"
                )
            )
        else:
            groups = sorted({group for group, _ in rc.sections}) or ["no sections"]
            out.append(
                Finding(
                    cid,
                    Status.PASS,
                    f"-readconfig {rc.path}: read {rc.resolved} ({', '.join(groups)})",
                )
            )
    return out


@check(
    "cmdline.devices",
    reads=(),
    summary=(
        "(unknown) the command line creates devices migcheck does not model (machine types "
        "other than `pc`/`q35`/`none` without `-nodefaults`, `-drive if=scsi`, "
        "`-audio model=`, other targets)"
    ),
)
def check_devices(ctx: Context) -> list[Finding]:
    gaps = ctx.vm.device_gaps
    if not gaps:
        return []
    return [unknown("cmdline.devices", "the device list is incomplete: " + "; ".join(gaps))]
