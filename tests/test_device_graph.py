"""The device graph: every way a command line creates a device (issue 21 section 2), and
command-line input that is not a QEMU command line (section 7).

The machine-default rules are checked against the real thing: QEMU 7.2 (this machine) and
10.0 (the Debian 13 chroot) start each command line with ``-S`` and a QMP socket, and the
devices ``info qtree`` lists are compared with what migcheck infers, for every device type
migcheck models (board devices such as the i8042 are not part of the graph).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import require
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qemudata import FIXTURES
from typer.testing import CliRunner

from migcheck.catalog import shipped_catalog
from migcheck.checks.base import Context, Status
from migcheck.checks.registry import registered
from migcheck.cli import app
from migcheck.cmdline import load_cmdline, parse_cmdline, parse_config
from migcheck.dependencies import guest_dependencies
from migcheck.devicegraph import MODELLED_TYPES, X86_64_ALIASES, canonical_driver
from migcheck.errors import InputError
from migcheck.facts import load_facts
from migcheck.pair import check_pair
from migcheck.verdict import Verdict
from migcheck.vm import VmSpec

CHROOT = Path("/var/tmp/migcheck-trixie")
BOOKWORM = str(FIXTURES / "hosts" / "debian12-qemu7.2-epyc-pvm.json")
QEMU72 = shutil.which("qemu-system-x86_64")


def parse(text: str, **kw: object) -> VmSpec:
    return parse_cmdline(text, "vm.cmdline", **kw)  # type: ignore[arg-type]


def drivers(spec: VmSpec, **match: object) -> list[str]:
    return [
        d.driver
        for d in spec.devices
        if all(getattr(d, key) == value for key, value in match.items())
    ]


def origins(spec: VmSpec) -> list[tuple[str, str, bool]]:
    return [(d.driver, d.origin, d.implicit) for d in spec.devices]


# --------------------------------------------------------------------------- aliases


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("virtio-net", "virtio-net-pci"),
        ("virtio-9p", "virtio-9p-pci"),
        ("virtio-gpu-gl", "virtio-gpu-gl-pci"),
        ("virtio-blk", "virtio-blk-pci"),
        ("virtio-scsi", "virtio-scsi-pci"),
        ("virtio-serial", "virtio-serial-pci"),
        ("virtio-balloon", "virtio-balloon-pci"),
        ("virtio-rng", "virtio-rng-pci"),
        ("virtio-input-host", "virtio-input-host-pci"),
        ("virtio-keyboard", "virtio-keyboard-pci"),
        ("virtio-mouse", "virtio-mouse-pci"),
        ("virtio-tablet", "virtio-tablet-pci"),
        ("lsi", "lsi53c895a"),
        ("e1000-82540em", "e1000"),
        ("ahci", "ich9-ahci"),
        ("e1000", "e1000"),  # a real type name stays itself
    ],
)
def test_device_aliases_resolve_to_the_x86_64_type(alias: str, canonical: str) -> None:
    spec = parse(f"qemu -M q35 -nodefaults -device {alias},id=d0")
    (device,) = spec.devices
    assert (device.driver, device.id, device.origin, device.implicit) == (
        canonical,
        "d0",
        "-device",
        False,
    )


def _help_aliases(argv: list[str]) -> dict[str, str]:
    out = subprocess.run(
        [*argv, "-device", "help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    found = {}
    for line in out.splitlines():
        if ', alias "' in line:
            name = line.split('"')[1]
            alias = line.split(', alias "')[1].split('"')[0]
            found[alias] = name
    return found


@pytest.mark.parametrize("build", ["7.2", "10.0"])
def test_alias_table_matches_device_help(build: str) -> None:
    """Every alias `-device help` prints is in the table, resolving to the same type."""
    argv = _qemu_argv(build)
    aliases = _help_aliases(argv)
    assert len(aliases) >= 15, aliases
    for alias, name in aliases.items():
        assert canonical_driver(alias) == name, (build, alias)
    missing = set(X86_64_ALIASES) - set(aliases)
    # Listed only when that build ships the type (virtio-sound since 8.2; the GL GPU
    # needs the hw-display-virtio-gpu-gl module, which the chroot lacks).
    assert missing <= {"virtio-sound", "virtio-gpu-gl"}, missing


# --------------------------------------------------------------------------- defaults


def test_binary_alone_is_an_all_defaults_pc_guest() -> None:
    spec = parse("qemu-system-x86_64")
    assert sorted(origins(spec)) == sorted(
        [
            ("e1000", "default NIC", True),
            ("VGA", "default VGA", True),
            ("isa-serial", "default serial", True),
            ("isa-parallel", "default parallel", True),
            ("isa-fdc", "machine floppy controller", True),
            ("floppy", "default floppy", True),
            ("ide-cd", "default CD-ROM", True),
        ]
    )
    assert spec.device_gaps == []


def test_q35_defaults_and_their_switches() -> None:
    assert sorted(drivers(parse("qemu -machine pc-q35-7.2"))) == [
        "VGA",
        "e1000e",
        "ide-cd",
        "isa-parallel",
        "isa-serial",
    ]
    assert drivers(parse("qemu -machine pc-q35-2.11"), origin="default NIC") == ["e1000"]
    assert drivers(parse("qemu -machine pc-i440fx-2.1"), origin="default VGA") == ["cirrus-vga"]
    spec = parse("qemu -M q35 -vga none -serial none -parallel none -nic none")
    assert drivers(spec) == ["ide-cd"]
    assert drivers(parse("qemu -M q35 -nodefaults")) == []
    assert drivers(parse("qemu -M pc -nodefaults")) == ["isa-fdc"]  # the board's own


def test_device_and_global_naming_a_default_driver_clear_that_default() -> None:
    # softmmu/vl.c default_list[]: -device isa-serial replaces the default serial, a
    # -global on isa-fdc clears the default floppy drive (not the board's controller).
    spec = parse("qemu -chardev null,id=c -device isa-serial,chardev=c -global isa-fdc.x=1")
    assert drivers(spec, driver="isa-serial") == ["isa-serial"]
    assert drivers(spec, origin="-device") == ["isa-serial"]
    assert "floppy" not in drivers(spec)
    assert "isa-fdc" in drivers(spec)
    # An alias is not a driver name in default_list[]: virtio-gpu does not clear the VGA.
    assert "VGA" in drivers(parse("qemu -device VGA"), origin="-device")
    assert drivers(parse("qemu -device VGA"), origin="default VGA") == []


def test_distribution_machine_types_keep_their_family() -> None:
    # libvirt's RHEL guests: -nodefaults and a pflash -drive; nothing version-dependent.
    spec = parse("qemu -M pc-q35-rhel9.6.0 -nodefaults -drive if=pflash,file=x.fd -nic user")
    (gap,) = spec.device_gaps  # -nic without model= takes the version-dependent default
    assert "default NIC model of machine type pc-q35-rhel9.6.0" in gap
    spec = parse("qemu -M pc-q35-rhel9.6.0 -nodefaults -drive if=pflash,file=x.fd")
    assert (drivers(spec), spec.device_gaps) == ([], [])
    spec = parse("qemu -M pc-q35-noble -nodefaults -nic user,model=virtio")
    assert (drivers(spec), spec.device_gaps) == (["virtio-net-pci"], [])
    # Without -nodefaults the default NIC model (e1000 up to pc-q35-2.11) is a guess.
    spec = parse("qemu -M pc-q35-rhel9.6.0")
    assert any("default NIC" in gap for gap in spec.device_gaps)
    assert any("default VGA" in gap for gap in parse("qemu -M pc-i440fx-rhel7.6.0").device_gaps)


def test_machine_none_and_unmodelled_machines() -> None:
    assert drivers(parse("qemu -machine none -nic user")) == []
    spec = parse("qemu -machine microvm")
    assert spec.device_gaps and "microvm" in spec.device_gaps[0]
    assert parse("qemu -machine microvm -nodefaults").device_gaps == []
    assert parse("qemu-system-aarch64 -M virt").device_gaps  # defaults of another target
    spec = parse("qemu-system-aarch64 -M virt -nodefaults -device virtio-net-pci")
    assert (drivers(spec), spec.device_gaps) == (["virtio-net-pci"], [])
    spec = parse("qemu-system-s390x -M s390-ccw-virtio -nodefaults -device virtio-net")
    assert drivers(spec) == ["virtio-net"]  # virtio-net-ccw there: not guessed
    assert spec.device_gaps and "target s390x" in spec.device_gaps[0]


# --------------------------------------------------------------------------- networks


def test_nic_creates_a_nic_on_its_own_backend() -> None:
    spec = parse(
        "qemu -M pc-q35-8.2 -nodefaults -nic tap,model=virtio-net-pci,ifname=t0,mac=52:54:00:0:0:1"
    )
    (nic,) = spec.devices
    assert (nic.driver, nic.origin, nic.implicit) == ("virtio-net-pci", "-nic", False)
    (netdev,) = spec.netdevs
    assert nic.props == {"netdev": netdev.id, "mac": "52:54:00:0:0:1"}
    assert (netdev.type, netdev.props) == ("tap", {"ifname": "t0"})
    assert drivers(parse("qemu -M pc -nic user,model=virtio"), origin="-nic") == ["virtio-net-pci"]
    assert drivers(parse("qemu -M q35 -nic user"), origin="-nic") == ["e1000e"]
    assert drivers(parse("qemu -nic none"), origin="default NIC") == []


@pytest.mark.parametrize(
    "option", ["-nic help", "-nic user,model=help", "-net nic,model=?", "-vga help", "-serial ?"]
)
def test_frontend_help_queries_are_not_guests(option: str) -> None:
    with pytest.raises(InputError, match="help"):
        parse(f"qemu {option}")


def test_net_nic_joins_hub_zero_with_the_backends() -> None:
    spec = parse("qemu -M q35 -nodefaults -net nic,model=virtio -net tap,ifname=t0")
    (nic,) = drivers(spec, origin="-net nic")
    assert nic == "virtio-net-pci"
    kinds = {n.id: n.type for n in spec.netdevs}
    assert kinds[spec.devices[0].props["netdev"]] == "hubport"
    assert sorted(kinds.values()) == ["hubport", "hubport", "tap"]
    # With netdev= the NIC is connected directly, not through the hub.
    spec = parse("qemu -M q35 -nodefaults -netdev tap,id=n0 -net nic,model=virtio,netdev=n0")
    assert drivers(spec) == ["virtio-net-pci"] and spec.devices[0].props["netdev"] == "n0"


USO_BASE = "qemu-system-x86_64 -machine pc-q35-8.2 -accel kvm -nodefaults "


@pytest.mark.parametrize(
    ("network", "depends"),
    [
        ("-netdev tap,id=n0 -device virtio-net-pci,netdev=n0", True),
        ("-netdev bridge,id=n0,br=br0 -device virtio-net,netdev=n0", True),
        ("-nic tap,model=virtio-net-pci", True),
        ("-nic bridge,br=br0,model=virtio", True),
        ("-netdev tap,id=n0,vnet_hdr=off -device virtio-net-pci,netdev=n0", False),
        ("-nic tap,model=virtio-net-pci,vnet_hdr=off", False),
        ("-netdev tap,id=n0 -device virtio-net-pci,netdev=n0 -set netdev.n0.vnet_hdr=off", False),
        ("-net nic,model=virtio -net tap", False),  # through hub 0: no vnet header
        ("-netdev user,id=n0 -device virtio-net-pci,netdev=n0", False),
        (
            "-nic tap,model=virtio-net-pci -global virtio-net-pci.host_uso=off "
            "-global virtio-net-pci.guest_uso4=off -global virtio-net-pci.guest_uso6=off",
            False,
        ),
    ],
)
def test_tap_offload_dependencies_follow_the_real_backend(network: str, depends: bool) -> None:
    spec = parse(USO_BASE + network)
    deps = guest_dependencies(spec, shipped_catalog(), "pc-q35-8.2")
    assert ("tap-uso" in deps) is depends, deps


# --------------------------------------------------------------------------- -set, -global


def test_set_changes_a_device_given_before_it() -> None:
    spec = parse(
        "qemu -M q35 -nodefaults -device virtio-net,id=n1,mac=52:54:00:00:00:01 "
        "-set device.n1.host_uso=off -set device.n1.driver=e1000-82540em"
    )
    (device,) = spec.devices
    assert (device.driver, device.props) == (
        "e1000",
        {"mac": "52:54:00:00:00:01", "host_uso": "off"},
    )


def test_set_before_its_device_or_on_json_is_refused_as_qemu_does() -> None:
    for text in (
        "qemu -set device.n1.x=1 -device e1000,id=n1",
        """qemu -device '{"driver":"e1000","id":"n1"}' -set device.n1.x=1""",
        "qemu -set device.n1",
    ):
        with pytest.raises(InputError, match="-set"):
            parse(text)
    # Groups that do not shape the device graph are accepted as they are.
    parse("qemu -drive if=none,id=d0 -set drive.d0.cache=none")


def test_duplicate_device_ids_are_refused_as_qemu_does() -> None:
    with pytest.raises(InputError, match="duplicate device id 'n1'"):
        parse('qemu -device e1000,id=n1 -device \'{"driver":"e1000","id":"n1"}\'')


def test_global_applies_to_implied_devices_too() -> None:
    spec = parse("qemu -M q35 -global e1000e.mac=52:54:00:00:00:09")
    (nic,) = [d for d in spec.devices if d.origin == "default NIC"]
    assert spec.global_value(nic, "mac") == "52:54:00:00:00:09"
    assert nic.props == {"netdev": nic.props["netdev"]}  # globals are not explicit props
    spec = parse("qemu -M q35 -nodefaults -nic user,model=virtio -global virtio-pci.ats=on")
    (nic,) = spec.devices
    assert spec.global_value(nic, "ats") is None  # a parent type needs the type tree
    assert spec.global_value(nic, "ats", ("virtio-pci", "pci-device", "device")) == "on"


# --------------------------------------------------------------------------- -readconfig

CONFIG = """\
# written by hand
[device "n1"]
  driver = "virtio-net"
  netdev = "hn1"

[netdev "hn1"]
  type = "tap"

[drive]
  if = "virtio"
  media = "disk"

[machine]
  type = "pc-q35-8.2"
"""


def test_readconfig_relative_to_the_command_line_file(tmp_path: Path) -> None:
    (tmp_path / "guest.cfg").write_text(CONFIG)
    (tmp_path / "vm.cmdline").write_text(
        "qemu-system-x86_64 -accel kvm -nodefaults -readconfig guest.cfg -set device.n1.x=1\n"
    )
    spec = load_cmdline(str(tmp_path / "vm.cmdline"))
    assert spec.machine.type == "pc-q35-8.2"
    assert [(d.driver, d.id, d.origin) for d in spec.devices] == [
        ("virtio-net-pci", "n1", "-readconfig guest.cfg"),
        ("virtio-blk-pci", None, "-readconfig guest.cfg"),
    ]
    assert spec.devices[0].props == {"netdev": "hn1", "x": "1"}
    deps = guest_dependencies(spec, shipped_catalog(), "pc-q35-8.2")
    assert "tap-uso" in deps
    (rc,) = spec.readconfigs
    assert rc.error is None and rc.resolved == str(tmp_path / "guest.cfg")


def _cmdline_findings(spec: VmSpec) -> list[tuple[str, Status, str]]:
    facts = load_facts(BOOKWORM)
    ctx = Context(spec, facts, facts)
    out = []
    for info in registered():
        if info.name.startswith("cmdline."):
            out += [(f.id, f.status, f.message) for f in info.func(ctx)]
    return out


def test_unreadable_readconfig_makes_the_verdict_unknown(tmp_path: Path) -> None:
    (tmp_path / "vm.cmdline").write_text("qemu-system-x86_64 -nodefaults -readconfig gone.cfg\n")
    spec = load_cmdline(str(tmp_path / "vm.cmdline"))
    (rc,) = spec.readconfigs
    assert rc.error is not None and "gone.cfg" in rc.error
    ((cid, status, message),) = _cmdline_findings(spec)
    assert (cid, status) == ("cmdline.readconfig", Status.UNKNOWN)
    assert "gone.cfg" in message
    facts = load_facts(BOOKWORM)
    assert check_pair(spec, facts, facts).verdict is Verdict.UNKNOWN
    # Read from stdin/text there is no directory to resolve a relative path against.
    assert parse("qemu -readconfig x.cfg").readconfigs[0].error is not None
    # A file QEMU would refuse (no white space before '=') is unknown too.
    (tmp_path / "bad.cfg").write_text('[device]\n  driver="e1000"\n')
    spec = parse("qemu -readconfig bad.cfg", base_dir=str(tmp_path))
    assert "parse error" in (spec.readconfigs[0].error or "")


def test_read_readconfig_passes_and_gaps_are_unknown(tmp_path: Path) -> None:
    (tmp_path / "ok.cfg").write_text(CONFIG)
    spec = parse("qemu -M q35 -nodefaults -readconfig ok.cfg", base_dir=str(tmp_path))
    assert [(c, s) for c, s, _ in _cmdline_findings(spec)] == [("cmdline.readconfig", Status.PASS)]
    spec = parse("qemu -machine microvm")
    assert [(c, s) for c, s, _ in _cmdline_findings(spec)] == [("cmdline.devices", Status.UNKNOWN)]


# --------------------------------------------------------------------------- fail closed


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "empty"),
        ("\n\n   \n", "empty"),
        ("# only a comment\n# and another\n", "only comments"),
        ("<domain type='kvm'><name>x</name></domain>\n", "XML"),
        ('{"schema": "migcheck.facts/2", "host": {}}\n', "JSON"),
        ('[{"execute": "qmp_capabilities"}]', "JSON"),
        ("This guest runs our mail server with 4 GiB of memory.\n", "not a QEMU binary"),
        ("virsh start mail01\n", "not a QEMU binary"),
        ("QEMU guest for the mail server, 4 GiB\n", "bare words"),
    ],
)
def test_input_that_is_not_a_command_line_exits_2(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "guest.cmdline"
    path.write_text(content)
    with pytest.raises(InputError, match=says) as info:
        load_cmdline(str(path))
    assert str(path) in str(info.value)
    result = CliRunner().invoke(app, ["pair", BOOKWORM, BOOKWORM, "--cmdline", str(path)])
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and says in result.output


def test_byte_order_mark_is_not_part_of_the_binary(tmp_path: Path) -> None:
    path = tmp_path / "vm.cmdline"
    path.write_bytes("\ufeffqemu-system-x86_64 -M q35 -nodefaults\n".encode())
    assert load_cmdline(str(path)).binary == "qemu-system-x86_64"


def test_nul_separated_argv_is_read(tmp_path: Path) -> None:
    argv = [
        "/usr/bin/qemu-system-x86_64",
        "-name",
        "guest=mail 01",
        "-machine",
        "pc-q35-8.2,usb=off",
        "-nodefaults",
        "-device",
        "virtio-net,netdev=n0,id=net0",
        "-netdev",
        "tap,id=n0",
    ]
    path = tmp_path / "cmdline"
    path.write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    spec = load_cmdline(str(path))
    assert spec.binary == argv[0]
    assert spec.machine.type == "pc-q35-8.2"
    assert [(d.driver, d.id) for d in spec.devices] == [("virtio-net-pci", "net0")]
    assert [o.value for o in spec.options if o.name == "name"] == ["guest=mail 01"]


# --------------------------------------------------------------------------- properties

FUZZ = settings(
    max_examples=int(os.environ.get("MIGCHECK_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WORD = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\n\"'\\,="),
    max_size=10,
)
MODELS = st.sampled_from(["virtio", "virtio-net-pci", "e1000", "rtl8139", None])
BACKENDS = st.sampled_from(["user", "tap", "bridge", "socket", "none"])


@FUZZ
@given(st.lists(st.tuples(BACKENDS, MODELS, st.dictionaries(WORD, VALUE, max_size=3)), max_size=4))
def test_nic_property(nics: list[tuple[str, str | None, dict[str, str]]]) -> None:
    args = []
    for backend, model, props in nics:
        props = {k: v for k, v in props.items() if k not in ("type", "model", "id", "mac", "help")}
        items = [backend] + ([f"model={model}"] if model else [])
        items += [f"{k}={v}" for k, v in props.items()]
        args += ["-nic", ",".join(items)]
    spec = parse(shlex.join(["qemu", "-M", "q35", "-nodefaults", *args]))
    real = [n for n in nics if n[0] != "none"]
    assert len(spec.devices) == len(real)
    for device, (backend, model, _) in zip(spec.devices, real, strict=True):
        expected = {"virtio": "virtio-net-pci", None: "e1000e"}.get(model, model)
        assert (device.driver, device.origin) == (expected, "-nic")
        (netdev,) = [n for n in spec.netdevs if n.id == device.props["netdev"]]
        assert netdev.type == backend
    assert len({d.props["netdev"] for d in spec.devices}) == len(real)


@FUZZ
@given(st.lists(st.one_of(st.tuples(st.just("nic"), MODELS), st.tuples(BACKENDS, st.none()))))
def test_net_property(nets: list[tuple[str, str | None]]) -> None:
    args = []
    for kind, model in nets:
        args += ["-net", kind + (f",model={model}" if model else "")]
    spec = parse(shlex.join(["qemu", "-M", "pc", "-nodefaults", *args]))
    nics = [m for k, m in nets if k == "nic"]
    assert [d.origin for d in spec.devices if d.origin != "machine floppy controller"] == [
        "-net nic"
    ] * len(nics)
    ports = [n for n in spec.netdevs if n.type == "hubport"]
    assert len(ports) == len([k for k, _ in nets if k != "none"])
    for device in spec.devices:
        if device.origin == "-net nic":
            assert device.props["netdev"] in {p.id for p in ports}


@FUZZ
@given(WORD, st.dictionaries(WORD, VALUE, max_size=4), st.dictionaries(WORD, VALUE, max_size=4))
def test_set_property(ident: str, props: dict[str, str], sets: dict[str, str]) -> None:
    props = {k: v for k, v in props.items() if k not in ("id", "driver", "help")}
    sets = {k: v for k, v in sets.items() if k not in ("id", "driver")}
    device = ",".join(["e1000", f"id={ident}"] + [f"{k}={v}" for k, v in props.items()])
    args = ["qemu", "-nodefaults", "-M", "q35", "-device", device]
    for key, value in sets.items():
        args += ["-set", f"device.{ident}.{key}={value}"]
    spec = parse(shlex.join(args))
    (dev,) = spec.devices
    assert dev.props == {**props, **sets}


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["device", "netdev", "drive", "object", "chardev"]),
            st.one_of(st.none(), WORD),
            st.dictionaries(WORD, VALUE, max_size=4),
        ),
        max_size=5,
    ),
    st.sampled_from(["", " ", "\t", "    "]),
)
def test_readconfig_property(
    sections: list[tuple[str, str | None, dict[str, str]]], indent: str
) -> None:
    lines = []
    for group, ident, props in sections:
        lines.append(f'[{group} "{ident}"]' if ident else f"[{group}]")
        lines += [f'{indent}{k} = "{v}"' for k, v in props.items()]
        lines.append("")
    text = "\n".join(lines)
    parsed = parse_config(text)
    expected = [
        (group, ({"id": ident} if ident else {}) | props) for group, ident, props in sections
    ]
    assert parsed == expected


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(alphabet='[]"= #\nabcdevi', max_size=80)))
def test_arbitrary_readconfig_is_read_or_unknown_never_a_crash(raw: bytes | str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "x.cfg")
        path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
        spec = parse("qemu -M q35 -nodefaults -readconfig x.cfg", base_dir=tmp)
    (rc,) = spec.readconfigs
    findings = _cmdline_findings(spec)
    if rc.error is None:
        assert all(d.driver and d.origin == "-readconfig x.cfg" for d in spec.devices)
        assert [s for _, s, _ in findings] == [Status.PASS]
    else:
        assert spec.devices == []
        assert [s for _, s, _ in findings] == [Status.UNKNOWN]


# --------------------------------------------------------------------------- real QEMU


def _qemu_argv(build: str) -> list[str]:
    if build == "7.2":
        require(QEMU72 is not None, "qemu-system-x86_64 (Debian 12's 7.2) is not installed")
        return ["qemu-system-x86_64"]
    require(
        (CHROOT / "usr/bin/qemu-system-x86_64").exists() and os.geteuid() == 0,
        f"the Debian 13 chroot with QEMU 10.0 ({CHROOT}) or root to enter it is missing",
    )
    return ["chroot", str(CHROOT), "qemu-system-x86_64"]


@pytest.fixture(scope="module")
def qmpdir() -> Iterator[Path]:
    """A directory both QEMUs see: inside the chroot's /tmp when there is one."""
    base = CHROOT / "tmp" if (CHROOT / "tmp").is_dir() and os.geteuid() == 0 else None
    path = Path(tempfile.mkdtemp(prefix="dg-", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class _Qmp:
    """A minimal QMP client: one command at a time, events skipped."""

    def __init__(self, sock: Path) -> None:
        self.client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.client.settimeout(30)
        self.client.connect(str(sock))
        self.reader = self.client.makefile("r")
        json.loads(self.reader.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name: str, **arguments: object) -> object:
        message: dict[str, object] = {"execute": name}
        if arguments:
            message["arguments"] = arguments
        self.client.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = json.loads(self.reader.readline())
            if "error" in reply:
                raise AssertionError(f"QMP {name}: {reply['error']}")
            if "return" in reply:
                return reply["return"]


@contextmanager
def qemu_session(build: str, args: list[str], workdir: Path) -> Iterator[_Qmp]:
    """QEMU ``build`` started in ``workdir`` with ``args``, paused, with a QMP client."""
    sock = workdir / f"qmp-{build}-{time.monotonic_ns()}.sock"
    inside = "/" + str(sock.relative_to(CHROOT)) if build == "10.0" else str(sock)
    qmp = ["-S", "-qmp", f"unix:{inside},server=on,wait=off"]
    if build == "10.0":  # chroot(1) starts in the new root: enter the work directory first
        here = str(Path(inside).parent)
        argv = ["chroot", str(CHROOT), "sh", "-c", 'cd "$0" && exec "$@"', here]
        argv += ["qemu-system-x86_64", *args, *qmp]
    else:
        argv = [*_qemu_argv(build), *args, *qmp]
    proc = subprocess.Popen(
        argv,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None:
                raise AssertionError(f"QEMU {build} refused {args}: {proc.stderr.read()}")
            assert time.monotonic() < deadline, f"QEMU {build} did not open its QMP socket"
            time.sleep(0.05)
        while True:  # the socket file appears at bind(), a moment before QEMU listens
            try:
                client = _Qmp(sock)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, f"QEMU {build} never accepted on QMP"
                time.sleep(0.05)
        yield client
        client.client.sendall(b'{"execute": "quit"}\n')
    finally:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def qemu_qtree_types(build: str, args: list[str], workdir: Path) -> tuple[Counter[str], str]:
    """Start QEMU ``build`` in ``workdir`` with ``args`` paused, and count the device types
    of its qtree."""
    with qemu_session(build, args, workdir) as qmp:
        text = str(qmp.cmd("human-monitor-command", **{"command-line": "info qtree"}))
    types = Counter(
        line.split("dev: ", 1)[1].split(",", 1)[0] for line in text.splitlines() if "dev: " in line
    )
    return types, text


NIC_MODELS = {"e1000", "e1000e", "virtio-net-pci", "rtl8139", "ne2k_pci", "pcnet", "i82559er"}

# (name, options); "{pc}"/"{q35}" become the build's newest versioned types.
REAL_CASES: list[tuple[str, list[str]]] = [
    ("binary only", []),
    ("pc", ["-machine", "{pc}"]),
    ("q35", ["-machine", "{q35}"]),
    ("q35 alias", ["-machine", "q35"]),
    ("pc -nodefaults", ["-machine", "{pc}", "-nodefaults"]),
    ("q35 -nodefaults", ["-machine", "{q35}", "-nodefaults"]),
    ("pc -vga none", ["-machine", "{pc}", "-vga", "none"]),
    ("q35 -vga none", ["-machine", "{q35}", "-vga", "none"]),
    ("pc -serial none", ["-machine", "{pc}", "-serial", "none"]),
    ("q35 -serial none", ["-machine", "{q35}", "-serial", "none"]),
    ("pc -nic none", ["-machine", "{pc}", "-nic", "none"]),
    ("q35 -nic none", ["-machine", "{q35}", "-nic", "none"]),
    ("q35 -nographic", ["-machine", "{q35}", "-nographic"]),
    ("pc -parallel none -vga cirrus", ["-machine", "{pc}", "-parallel", "none", "-vga", "cirrus"]),
    ("q35 serials", ["-M", "{q35}", "-serial", "none", "-serial", "null", "-serial", "null"]),
    ("q35 -nic virtio x2", ["-M", "{q35}", "-nic", "user,model=virtio", "-nic", "user"]),
    ("pc -net nic,user", ["-M", "{pc}", "-net", "nic,model=rtl8139", "-net", "user"]),
    (
        "q35 -device isa-serial",
        ["-M", "{q35}", "-chardev", "null,id=c0", "-device", "isa-serial,chardev=c0"],
    ),
    ("pc -global isa-fdc", ["-M", "{pc}", "-global", "isa-fdc.fallback=144"]),
    (
        "q35 floppy + cdrom drives",
        ["-M", "{q35}", "-drive", "if=floppy,index=1", "-drive", "if=ide,index=0,media=cdrom"],
    ),
    ("pc -usb -usbdevice tablet", ["-M", "{pc}", "-usb", "-usbdevice", "tablet"]),
    ("q35 usb=on", ["-M", "{q35},usb=on", "-nodefaults"]),
    ("q35 -device virtio-net alias", ["-M", "{q35}", "-nodefaults", "-device", "virtio-net"]),
    ("q35 2.11 default NIC", ["-M", "pc-q35-2.11"]),
    ("q35 -device e1000 keeps default NIC", ["-M", "{q35}", "-device", "e1000"]),
    ("q35 -netdev clears default NIC", ["-M", "{q35}", "-netdev", "user,id=u0"]),
    ("q35 [netdev] keeps default NIC", ["-M", "{q35}", "-readconfig", "net.cfg"]),
    ("pc 5 serials, 4 ports", ["-M", "{pc}", *["-serial", "null"] * 5]),
    ("pc image + -cdrom", ["-M", "{pc}", "disk.img", "-cdrom", "cd.iso"]),
    (
        "q35 -drive virtio + ide",
        [
            "-M",
            "{q35}",
            "-drive",
            "if=virtio,file=disk.img,format=raw",
            "-drive",
            "file=cd.iso,format=raw",
            "-hdb",
            "disk2.img",
        ],
    ),
    (
        "pc -virtfs -debugcon",
        [
            "-M",
            "{pc}",
            "-nodefaults",
            "-virtfs",
            "local,path=.,mount_tag=t,security_model=none",
            "-debugcon",
            "null",
        ],
    ),
    (
        "q35 -readconfig -set",
        [
            "-M",
            "{q35}",
            "-readconfig",
            "guest.cfg",
            "-set",
            "device.n1.mac=52:54:00:00:00:07",
            "-vga",
            "virtio",
        ],
    ),
]
GUEST_CFG = """\
[device "n1"]
  driver = "virtio-net"

[device]
  driver = "isa-parallel"
  chardev = "p0"

[chardev "p0"]
  backend = "null"

[drive]
  if = "floppy"
"""
BUILDS = {"7.2": ("pc-i440fx-7.2", "pc-q35-7.2"), "10.0": ("pc-i440fx-10.0", "pc-q35-10.0")}
# Old machine types one build still has: pc-i440fx-2.1 and older default to cirrus-vga.
REAL_CASES_72 = [("pc 2.1 default VGA", ["-M", "pc-i440fx-2.1"])]
REAL_RESULTS: dict[tuple[str, str], tuple[int, int]] = {}


ALL_REAL = [(b, n, o) for b in BUILDS for n, o in REAL_CASES] + [
    ("7.2", n, o) for n, o in REAL_CASES_72
]


@pytest.mark.parametrize(
    ("build", "name", "options"), ALL_REAL, ids=[f"{b}-{n}" for b, n, _ in ALL_REAL]
)
def test_inferred_devices_match_real_qemu(
    build: str, name: str, options: list[str], qmpdir: Path
) -> None:
    pc, q35 = BUILDS[build]
    args = [o.replace("{pc}", pc).replace("{q35}", q35) for o in options]
    if "-nographic" not in args:
        args += ["-display", "none"]
    for image in ("disk.img", "disk2.img", "cd.iso"):
        with open(qmpdir / image, "wb") as handle:
            handle.truncate(1 << 20)
    (qmpdir / "guest.cfg").write_text(GUEST_CFG)
    (qmpdir / "net.cfg").write_text('[netdev "u1"]\n  type = "user"\n')
    text = shlex.join(["qemu-system-x86_64", *args])
    spec = parse_cmdline(text, name, base_dir=str(qmpdir))
    assert spec.device_gaps == []
    inferred = Counter(d.driver for d in spec.devices)
    seen, tree = qemu_qtree_types(build, args, qmpdir)
    for device in spec.devices:  # what -set and -readconfig gave reaches QEMU's device
        if "mac" in device.props:
            assert f'mac = "{device.props["mac"]}"' in tree
    compared = MODELLED_TYPES | NIC_MODELS | set(inferred)
    seen = Counter({t: n for t, n in seen.items() if t in compared})
    REAL_RESULTS[(build, name)] = (sum(inferred.values()), sum(seen.values()))
    print(f"\n{build:5} {name:32} inferred {sum(inferred.values())} seen {sum(seen.values())}")
    assert inferred == seen, (build, name, args)


# --------------------------------------------------------------------------- consumers


def test_portable_switches_a_nic_offload_off_with_global() -> None:
    from test_portable import both_ways_safe, uso_hosts

    from migcheck.catalog import load_catalog
    from migcheck.portable import make_portable

    hosts = uso_hosts()
    text = (
        "qemu-system-x86_64 -machine pc-q35-8.2 -accel kvm -cpu pentium3 -m 512 -nodefaults "
        "-nic tap,model=virtio-net-pci,ifname=t0,script=no,downscript=no -display none"
    )
    vm = parse_cmdline(text, "nic.cmdline")
    assert check_pair(vm, hosts[0], hosts[1]).verdict is Verdict.UNSAFE
    result = make_portable(vm, hosts, load_catalog(), use_platform=False)
    assert result.ok, result.problems
    both_ways_safe(result.text, hosts)
    assert {c.after for c in result.changes} >= {
        "virtio-net-pci.host_uso=off",
        "virtio-net-pci.guest_uso4=off",
        "virtio-net-pci.guest_uso6=off",
    }
    assert all(c.option == "global" for c in result.changes)


NET_BASE = (
    "qemu-system-x86_64 -machine pc-q35-8.2 -accel kvm -cpu pentium3 -m 512 -nodefaults "
    "-display none "
)


@pytest.mark.parametrize(
    ("network", "verdict"),
    [
        ("-netdev tap,id=n0 -device virtio-net,netdev=n0", Verdict.UNSAFE),
        ("-netdev bridge,id=n0,br=br0 -device virtio-net-pci,netdev=n0", Verdict.UNSAFE),
        ("-nic tap,model=virtio", Verdict.UNSAFE),
        ("-net nic,model=virtio,netdev=n0 -netdev tap,id=n0", Verdict.UNSAFE),
        ("-readconfig net.cfg", Verdict.UNSAFE),
        (
            "-netdev tap,id=n0 -device e1000,id=d0,netdev=n0 -set device.d0.driver=virtio-net",
            Verdict.UNSAFE,
        ),
        ("-netdev tap,id=n0,vnet_hdr=off -device virtio-net,netdev=n0", Verdict.SAFE),
        ("-net nic,model=virtio -net tap", Verdict.SAFE),
        ("-readconfig missing.cfg", Verdict.UNKNOWN),
    ],
)
def test_pair_verdict_follows_every_way_a_nic_is_made(
    tmp_path: Path, network: str, verdict: Verdict
) -> None:
    """A guest started where the tap takes USO (Linux 6.8) cannot move to Linux 6.1 when
    its virtio-net NIC negotiates it: whichever option created the NIC."""
    from test_portable import uso_hosts

    (tmp_path / "net.cfg").write_text(
        '[netdev "n0"]\n  type = "tap"\n[device]\n  driver = "virtio-net"\n  netdev = "n0"\n'
    )
    spec = parse(NET_BASE + network, base_dir=str(tmp_path))
    hosts = uso_hosts()
    assert check_pair(spec, hosts[0], hosts[1]).verdict is verdict


@pytest.mark.parametrize(
    "network",
    [
        "-netdev tap,id=n0,ifname={tap},script=no,downscript=no -device virtio-net,netdev=n0",
        "-nic tap,ifname={tap},script=no,downscript=no,model=virtio",
        "-netdev tap,id=n0,ifname={tap},script=no,downscript=no,vnet_hdr=off "
        "-device virtio-net-pci,netdev=n0",
        "-net nic,model=virtio -net tap,ifname={tap},script=no,downscript=no",
        "-net nic,model=virtio,netdev=n0 -netdev tap,id=n0,ifname={tap},script=no,downscript=no",
    ],
)
def test_tap_offload_rule_matches_real_virtio_features(network: str, qmpdir: Path) -> None:
    """What the dependency rule calls "tap" is exactly where QEMU 7.2 offers the tap's
    kernel offloads (VIRTIO_NET_F_HOST_TSO4) to the guest: not through hub 0, not with
    vnet_hdr=off. (The chroot's QEMU 10.0 has no /dev/net/tun to open a tap.)"""
    require(os.path.exists("/dev/net/tun") and os.geteuid() == 0, "needs root and /dev/net/tun")
    from migcheck.dependencies import _netdev_type

    args = shlex.split(network.format(tap=f"dgt{os.getpid() % 100000}"))
    args += ["-M", "q35", "-nodefaults", "-display", "none"]
    spec = parse(shlex.join(["qemu-system-x86_64", *args]))
    (nic,) = spec.devices
    rule_says_tap = _netdev_type(spec, nic) == "tap"
    with qemu_session("7.2", args, qmpdir) as qmp:
        (virtio,) = [
            v["path"]
            for v in qmp.cmd("x-query-virtio")  # type: ignore[union-attr]
            if v["name"] == "virtio-net"
        ]
        status = qmp.cmd("x-query-virtio-status", path=virtio)
    features = status["host-features"]["dev-features"]  # type: ignore[index]
    offered = any(f.startswith("VIRTIO_NET_F_HOST_TSO4") for f in features)
    assert rule_says_tap is offered, (network, features)
