"""Assumed values are marked as assumed (issue 24 section 6): what the command line leaves to
QEMU (machine type, accelerator, CPU model, -smp, -m, the machine's default devices, a
NIC's model, a drive's interface, the BIOS and option ROM images) and what migcheck fills
from its own tables (compat properties of a build that does not report them) or from
``fleet --assume``. The JSON adds ``assumed`` fields; the table says "(assumed: why)".

Everything here runs on the project's own fixtures (captured by migcheck itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from qemudata import FIXTURES, fixture_facts

from migcheck.cmdline import parse_cmdline
from migcheck.findings import Finding, Status
from migcheck.pair import check_pair

BOOKWORM = "debian12-qemu7.2-epyc-pvm.json"  # QEMU 7.2: no compat-props in its build data
TRIXIE = "debian13-qemu10.0-epyc-pvm.json"  # QEMU 10.0
HOSTS = FIXTURES / "hosts"
MINIMAL = "qemu-system-x86_64 -enable-kvm -drive file=disk.img\n"


def vm(text: str):
    return parse_cmdline(text, "test.cmdline")


def findings(text: str, src: str = TRIXIE, dst: str = BOOKWORM) -> dict[str, list[Finding]]:
    report = check_pair(vm(text), fixture_facts(src), fixture_facts(dst))
    out: dict[str, list[Finding]] = {}
    for f in report.findings:
        out.setdefault(f.id, []).append(f)
    return out


def one(found: dict[str, list[Finding]], cid: str) -> Finding:
    (f,) = found[cid]
    return f


def migcheck(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "migcheck.entry", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


# --- the guest: what the command line leaves to QEMU ----------------------------------------


def test_a_bare_command_line_lists_what_qemu_fills_in():
    spec = vm(MINIMAL)
    assert [a.what for a in spec.assumptions()] == ["machine", "cpu", "smp", "memory"]
    values = {a.what: a.value for a in spec.assumptions()}
    assert values == {"machine": None, "cpu": None, "smp": "1", "memory": "128M"}
    assert all(a.why for a in spec.assumptions())
    doc = spec.to_json()
    assert [a["what"] for a in doc["assumed"]] == ["machine", "cpu", "smp", "memory"]


def test_a_fully_written_command_line_assumes_nothing_about_the_guest():
    spec = vm((FIXTURES / "cmdlines" / "web01-pinned.cmdline").read_text())
    assert spec.assumptions() == []
    assert spec.to_json()["assumed"] == []
    assert not any(d.assumed for d in spec.devices)  # -nodefaults, every device written


@pytest.mark.parametrize(
    ("binary", "accel"),
    [("qemu-system-x86_64", "tcg"), ("/usr/libexec/qemu-kvm", "kvm")],
)
def test_no_accelerator_is_the_binarys_default_and_marked(binary: str, accel: str):
    spec = vm(f"{binary} -machine pc-q35-7.2 -cpu qemu64 -smp 1 -m 512")
    (assumed,) = spec.assumptions()
    assert (assumed.what, assumed.value) == ("accel", accel)
    assert os.path.basename(binary) in assumed.why
    f = one(findings(spec.text, BOOKWORM, BOOKWORM), "accel.kvm")
    assert f.assumptions["guest"].startswith(f"accelerator {accel}")


def test_default_devices_say_why_they_exist():
    spec = vm(MINIMAL + " -nic user")
    by_origin = {d.origin: d for d in spec.devices}
    assert "default NIC" not in by_origin  # -nic replaces it
    nic = by_origin["-nic"]
    assert nic.driver == "e1000" and "-nic without model=" in (nic.assumed or "")
    assert "IDE" in (by_origin["-drive"].assumed or "")
    for origin in ("default VGA", "default serial", "default CD-ROM"):
        assert by_origin[origin].implicit and "no -nodefaults" in (by_origin[origin].assumed or "")
    fdc = by_origin["machine floppy controller"]
    assert fdc.assumed and "-nodefaults" not in fdc.assumed  # pc creates it regardless
    devices = {d["origin"]: d for d in spec.to_json()["devices"]}
    assert devices["default VGA"]["assumed"] == by_origin["default VGA"].assumed


def test_written_devices_carry_no_assumed_field():
    spec = vm(
        "qemu-system-x86_64 -machine q35 -nodefaults -device virtio-net-pci,netdev=n "
        "-nic user,model=e1000e"
    )
    assert [d.assumed for d in spec.devices] == [None, None]
    assert all("assumed" not in d for d in spec.to_json()["devices"])


# --- findings: values marked where they are assumed ----------------------------------------


def test_the_default_machine_type_is_marked_on_both_sides():
    found = findings(MINIMAL)
    alias = one(found, "machine.alias")
    assert alias.status is Status.FAIL
    assert (alias.source, alias.destination) == ("pc-i440fx-10.0", "pc-i440fx-7.2")
    assert alias.assumptions == {
        "source": "QEMU's default, no -machine",
        "destination": "QEMU's default, no -machine",
    }
    mtype = one(found, "machine.type")
    assert mtype.destination is None and set(mtype.assumptions) == {"source"}  # "-" is no value


def test_a_written_machine_type_is_not_marked():
    found = findings((FIXTURES / "cmdlines" / "web01-q35.cmdline").read_text())
    for cid in ("machine.type", "machine.alias", "kvm.vcpus", "cpu.model", "accel.kvm"):
        assert all(not f.assumed for f in found[cid]), cid


def test_default_cpu_model_smp_and_phys_bits_are_marked():
    found = findings(MINIMAL, TRIXIE, TRIXIE)
    cpu = one(found, "cpu.model")
    assert (
        "CPU model qemu64: the default of machine type pc-i440fx-10.0, no -cpu"
        in (cpu.assumptions["guest"])
    )
    vcpus = one(found, "kvm.vcpus")
    assert vcpus.source == 1 and vcpus.assumptions["source"] == "QEMU's default, no -smp"
    assert "destination" not in vcpus.assumptions  # cpu-max is read from the facts
    bits = one(found, "kvm.phys-bits")
    assert bits.status is Status.PASS and (bits.source, bits.destination) == (40, 40)
    assert set(bits.assumptions) == {"source", "destination"}


def test_default_firmware_images_are_marked():
    found = findings(MINIMAL, TRIXIE, TRIXIE)
    bios = one(found, "firmware.bios")
    assert bios.assumptions == {"guest": "bios-256k.bin: QEMU's default BIOS, no -bios"}
    roms = {f.message.split(" option ROM")[0]: f for f in found["firmware.rom"]}
    assert "efi-e1000.rom: e1000's default option ROM" in roms["e1000"].assumptions["guest"]
    assert "the default NIC of QEMU's default machine (pc)" in roms["e1000"].assumptions["guest"]


def test_compat_properties_from_migchecks_table_are_marked():
    """QEMU 7.2 does not report compat-props: the table's values are migcheck's, not the
    build's, and the finding says so; 10.0's own answer is not marked."""
    pinned = (FIXTURES / "cmdlines" / "web01-pinned.cmdline").read_text()
    f = one(findings(pinned, BOOKWORM, TRIXIE), "compat.defaults")
    assert f.status is Status.PASS
    guest = f.assumptions["guest"]
    assert "on the source: migcheck's table of upstream QEMU 7.2.22" in guest
    assert "destination" not in guest
    both_new = one(findings(pinned, TRIXIE, TRIXIE), "compat.defaults")
    assert not both_new.assumed


def test_unknown_findings_assume_nothing():
    f = Finding("x.y", Status.UNKNOWN, "cannot judge")
    from migcheck.checks.base import with_assumed

    assert with_assumed([f], ("guest", "why")) == [f]


# --- output: JSON fields added, the table marks them ---------------------------------------


def test_json_adds_assumed_fields_and_keeps_the_old_ones(tmp_path):
    cmd = tmp_path / "bare.cmdline"
    cmd.write_text(MINIMAL)
    res = migcheck("pair", str(HOSTS / TRIXIE), str(HOSTS / BOOKWORM), "-c", str(cmd), "-f", "json")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    checks = {c["id"]: c for c in doc["checks"]}
    for c in doc["checks"]:
        assert {"id", "status", "message", "source", "destination"} <= set(c)
    assert checks["machine.alias"]["assumed"]["source"] == "QEMU's default, no -machine"
    assert "assumed" not in checks["qemu.version"]
    assert [a["what"] for a in doc["vm"]["assumed"]] == ["machine", "cpu", "smp", "memory"]
    assert doc["source"]["assumed"] == {}  # measured facts, not --assume


@pytest.mark.parametrize("columns", [80, 200])
def test_the_table_marks_assumed_values(tmp_path, columns: int):
    cmd = tmp_path / "bare.cmdline"
    cmd.write_text(MINIMAL)
    res = migcheck("pair", str(HOSTS / TRIXIE), str(HOSTS / BOOKWORM), "-c", str(cmd),
                   columns=columns)  # fmt: skip
    text = " ".join(line.strip(" │") for line in res.stdout.splitlines())
    text = " ".join(text.split())
    # At 200 columns the source and destination columns fold the mark within 30 columns.
    marked = "(assumed: QEMU's default, no -machine)" if columns == 80 else "(assumed:"
    assert marked in text
    assert "assumed (the command line does not say): QEMU's default machine type" in text
    assert "1 vCPU, QEMU's default, no -smp" in text
    assert all(len(line) <= columns for line in res.stdout.splitlines() if "│" in line)


def test_cmdline_table_marks_what_it_assumed(tmp_path):
    cmd = tmp_path / "bare.cmdline"
    cmd.write_text(MINIMAL)
    res = migcheck("cmdline", str(cmd), columns=200)
    assert res.returncode == 0, res.stderr
    rows = {}
    for line in res.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 2 and cells[0]:
            rows.setdefault(cells[0], []).append(cells[1])
    assert rows["machine"] == ["(assumed: QEMU's default machine type on each host, no -machine)"]
    assert rows["memory"] == ["(assumed: 128 MiB of memory, QEMU's default, no -m)"]
    assert any(r.startswith("VGA  (assumed: the default VGA") for r in rows["device"])


def test_fleet_marks_what_assume_assumed(tmp_path):
    cmd = str(FIXTURES / "cmdlines" / "uso-guest.cmdline")
    hosts = [str(HOSTS / TRIXIE), str(HOSTS / "uso" / "hv-bookworm61.json")]
    res = migcheck("fleet", *hosts, "-c", cmd, "--assume", "hv-bookworm61:kernel=6.8.0",
                   "-f", "json")  # fmt: skip
    doc = json.loads(res.stdout)
    assumed = {c["hosts"][0]: c["assumed"] for c in doc["classes"]}
    assert assumed == {"hv-trixie": {}, "hv-bookworm61": {"kernel": "6.8.0"}}
    table = migcheck("fleet", *hosts, "-c", cmd, "--assume", "hv-bookworm61:kernel=6.8.0")
    assert "6.8.0 (assumed)" in table.stdout
