"""Agreement with libvirt on this machine: the usable CPU models migcheck reports for
``local`` equal those ``virsh domcapabilities`` reports. Needs libvirt installed; it may
skip in CI (the issue allows it), but never silently: the reason is printed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require

from migcheck.gather import gather
from migcheck.hostinfo import usable_cpu_models

URI = "qemu:///system"


def _virsh(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def libvirt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    require(
        shutil.which("virsh") is not None and shutil.which("libvirtd") is not None,
        "libvirt is not installed (apt-get install libvirt-daemon-system)",
    )
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "needs a usable /dev/kvm")
    started = None
    if _virsh("version").returncode != 0:
        if os.geteuid() != 0:
            pytest.skip("libvirtd is not running and starting it needs root")
        pid_file = tmp_path_factory.mktemp("libvirtd") / "libvirtd.pid"
        subprocess.run(["libvirtd", "--daemon", "--pid-file", str(pid_file)], check=True)
        started = pid_file
        for _ in range(100):
            if _virsh("version").returncode == 0:
                break
            time.sleep(0.1)
    try:
        yield
    finally:
        if started is not None and Path(started).exists():
            subprocess.run(["kill", Path(started).read_text().strip()], check=False)


def test_usable_models_equal_virsh_domcapabilities(libvirt: None):
    out = _virsh("domcapabilities", "--virttype", "kvm")
    assert out.returncode == 0, out.stderr
    root = ET.fromstring(out.stdout)
    custom = root.find("./cpu/mode[@name='custom']")
    assert custom is not None
    libvirt_usable = {m.text for m in custom.findall("model") if m.get("usable") == "yes"}
    libvirt_listed = {m.text for m in custom.findall("model")}
    usable, blocked = usable_cpu_models(gather("local")) or ([], {})
    ours = set(usable)
    # libvirt lists only the models its cpu_map knows (unversioned names); compare on those.
    assert libvirt_listed <= ours | set(blocked), libvirt_listed - ours - set(blocked)
    assert ours & libvirt_listed == libvirt_usable
    print(f"virsh agreement: {len(libvirt_listed)} models, {len(libvirt_usable)} usable")
