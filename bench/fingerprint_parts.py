"""Cost of each input of the probe's cache fingerprint, for BENCHMARKS.md.

    python bench/fingerprint_parts.py PART N

runs PART N times (``none`` only imports the probe: the baseline to subtract). Time the
whole process with /usr/bin/time or a paired runner; (PART - none) / N is one call."""

from __future__ import annotations

import shutil
import sys

import migcheck.probe.probe as probe

binary = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
facts = {"kvm": probe.collect_kvm()} if sys.argv[1] == "kvm_modules" else {}
PARTS = {
    "none": lambda: None,
    "binary_identity": lambda: probe.file_identity(binary),
    "script_check": lambda: probe.is_script(binary),
    "modules": lambda: probe.module_identity(binary, "x86_64"),
    "kernel_cmdline": lambda: probe.read_text("/proc/cmdline", 65536),
    "microcode": lambda: probe.microcode_by_package(probe.read_text("/proc/cpuinfo")),
    "kvm_modules": lambda: probe.collect_kvm(),  # includes the KVM ioctls the facts need anyway
    "whole": lambda: probe.fingerprint({"kvm": {}, "kernel": {}, "cpu": {}}, "x86_64"),
}

part = PARTS[sys.argv[1]]
for _ in range(int(sys.argv[2])):
    part()
