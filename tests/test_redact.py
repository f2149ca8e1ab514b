"""Secrets on a QEMU command line never reach any output; references to secrets do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qemudata import FIXTURES
from typer.testing import CliRunner

from migcheck.cli import app
from migcheck.cmdline import parse_cmdline
from migcheck.errors import InputError
from migcheck.redact import (
    REDACTED,
    is_secret_env,
    is_secret_prop,
    redact_env,
    redact_json,
    redact_props,
    redact_text,
    redact_value,
)

HOSTS = sorted(str(p) for p in (FIXTURES / "hosts").glob("*.json"))

# Every secret below is a distinct word, so a leak names the rule that failed.
SECRETS = {
    "envsecret01": "DB_PASSWORD=envsecret01",
    "envsecret02": "AWS_SECRET_ACCESS_KEY=envsecret02",
    "objsecret03": "-object secret,id=sec0,data=objsecret03",
    "jsonsecret04": '-object {"qom-type":"secret",...,"data":"jsonsecret04"}',
    "ivsecret05": '-object {"qom-type":"secret",...,"iv":"ivsecret05"}',
    "devsecret06": '-device {...,"password":"devsecret06"}',
    "cephsecret07": "-drive file=rbd:...:key=cephsecret07",
    "iscsisecret08": "-drive file=iscsi://me%iscsisecret08@...",
    "iscsisecret09": "-iscsi ...,password=iscsisecret09",
    "spicesecret10": "-spice ...,password=spicesecret10",
    "globalsecret11": "-global ...,property=password,value=globalsecret11",
    "machsecret12": "-machine ...,x-password=machsecret12",
    "credsecret13": "-smbios type=11,value=io.systemd.credential:rootpw=credsecret13",
    "netsecret14": "-netdev ...,password=netsecret14",
    "urlsecret15": "-drive file=https://alice:urlsecret15@...",
    "cpusecret16": "-cpu ...,passwd=cpusecret16",
    "kvmsecret17": "-accel kvm,...,secret=kvmsecret17",
    "globalsecret18": "-global rbd-thing.password=globalsecret18",
    "keyvalsecret19": "-object secret,qom-type=...,data=keyvalsecret19 (qom-type= form)",
}
SECRET_OBJECT = {
    "qom-type": "secret",
    "id": "sec1",
    "data": "jsonsecret04",
    "iv": "ivsecret05",
    "keyid": "master0",
    "format": "base64",
}
SECRET_LINES = [
    "# a guest whose command line carries every kind of secret migcheck knows",
    "DB_PASSWORD=envsecret01 AWS_SECRET_ACCESS_KEY=envsecret02 LC_ALL=C",
    "qemu-system-x86_64",
    "-machine pc-q35-7.2,usb=off,x-password=machsecret12",
    "-accel kvm,secret=kvmsecret17",
    "-cpu EPYC,passwd=cpusecret16",
    "-m 2048 -nodefaults",
    "-object secret,id=master0,file=/etc/qemu/master.key,format=base64",
    "-object secret,id=sec0,data=objsecret03,format=raw",
    f"-object '{json.dumps(SECRET_OBJECT)}'",
    "-object qom-type=secret,id=sec2,data=keyvalsecret19",
    "-object tls-creds-psk,id=tls0,dir=/etc/pki/qemu-psk,endpoint=client,username=qemu",
    "-object tls-creds-x509,id=tls1,dir=/etc/pki/qemu,endpoint=server,passwordid=sec0",
    "-drive file=rbd:pool/img:id=admin:key=cephsecret07:conf=/etc/ceph/ceph.conf,"
    "format=raw,if=none,id=d1",
    "-drive file=iscsi://me%iscsisecret08@10.0.0.1/iqn.2008-11.org.example:disk/1,if=none,id=d2",
    "-drive file=https://alice:urlsecret15@images.example.com/base.img,if=none,id=d3,readonly=on",
    """-blockdev '{"driver":"luks","node-name":"luks0","key-secret":"sec0","file":"d1"}'""",
    "-iscsi initiator-name=iqn.2020-01.org.example:host,user=me,password=iscsisecret09",
    """-device '{"driver":"virtio-blk-pci","id":"vd0","drive":"luks0","password":"devsecret06"}'""",
    "-netdev tap,id=n1,ifname=tap0,script=no,downscript=no,password=netsecret14",
    "-device virtio-net-pci,netdev=n1,id=net0",
    "-global driver=virtio-blk-pci,property=password,value=globalsecret11",
    "-global rbd-thing.password=globalsecret18",
    "-spice port=5900,password=spicesecret10",
    "-vnc :0,password=on,password-secret=sec0",
    "-smbios type=11,value=io.systemd.credential:rootpw=credsecret13",
]
SECRET_CMDLINE = SECRET_LINES[0] + "\n" + " \\\n  ".join(SECRET_LINES[1:]) + "\n"
# What must survive: references to secret objects by ID, and paths.
REFERENCES = ("master0", "passwordid", "sec0", "/etc/pki/qemu-psk", "/etc/qemu/master.key")

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def assert_no_secret(text: str, where: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} leaks {[SECRETS[s] for s in leaked]}"


@pytest.fixture
def secret_cmdline(tmp_path: Path) -> str:
    path = tmp_path / "secrets.cmdline"
    path.write_text(SECRET_CMDLINE)
    return str(path)


# --------------------------------------------------------------------------- every output


def test_to_json_redacts_and_keeps_references():
    spec = parse_cmdline(SECRET_CMDLINE, "secrets.cmdline")
    doc = spec.to_json()
    text = json.dumps(doc)
    assert_no_secret(text, "VmSpec.to_json()")
    objects = {o["id"]: o["props"] for o in doc["objects"]}
    assert objects["sec0"] == {"data": REDACTED, "format": "raw"}
    assert objects["sec1"] == {
        "data": REDACTED,
        "iv": REDACTED,
        "keyid": "master0",
        "format": "base64",
    }
    assert objects["master0"]["file"] == "/etc/qemu/master.key"
    assert objects["tls0"]["dir"] == "/etc/pki/qemu-psk"
    assert objects["tls1"]["passwordid"] == "sec0"
    assert doc["env"] == {"DB_PASSWORD": REDACTED, "AWS_SECRET_ACCESS_KEY": REDACTED, "LC_ALL": "C"}
    assert doc["machine"]["options"]["x-password"] == REDACTED
    assert doc["machine"]["options"]["usb"] == "off"
    assert doc["cpu"]["props"] == {"passwd": REDACTED}
    assert doc["accel_options"] == {"secret": REDACTED}
    assert [g["value"] for g in doc["globals"]] == [REDACTED, REDACTED]
    # Redaction is display-only: checks still see the parsed values.
    assert spec.objects[1].props["data"] == "objsecret03"


def test_cmdline_json_has_no_secret(secret_cmdline: str):
    result = run("cmdline", secret_cmdline, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert_no_secret(result.stdout, "cmdline --format json")
    for ref in REFERENCES:
        assert ref in result.stdout
    assert REDACTED in result.stdout


def test_cmdline_table_has_no_secret(secret_cmdline: str):
    result = run("cmdline", secret_cmdline)
    assert result.exit_code == 0, result.stderr
    assert_no_secret(result.stdout, "cmdline --format table")


@pytest.mark.parametrize("fmt", ["table", "json", "junit", "markdown"])
@pytest.mark.parametrize("both_ways", [False, True])
def test_pair_reports_have_no_secret(secret_cmdline: str, fmt: str, both_ways: bool):
    args = ["pair", HOSTS[0], HOSTS[1], "--cmdline", secret_cmdline, "--format", fmt]
    result = run(*args, *(["--both-ways"] if both_ways else []))
    assert result.exit_code in (0, 1, 3), result.stderr
    assert result.stdout.strip()
    assert_no_secret(result.stdout + result.stderr, f"pair --format {fmt}")
    if fmt == "json":
        doc = json.loads(result.stdout)
        assert doc["vm"]["objects"][2]["props"]["keyid"] == "master0"


@pytest.mark.parametrize("fmt", ["table", "json", "junit", "markdown", "html"])
def test_fleet_reports_have_no_secret(secret_cmdline: str, fmt: str, tmp_path: Path):
    out = tmp_path / f"fleet.{fmt}"
    result = run("fleet", *HOSTS, "-c", secret_cmdline, "--format", fmt, "--both-ways")
    assert result.exit_code in (0, 1, 3), result.stderr
    assert result.stdout.strip()
    assert_no_secret(result.stdout + result.stderr, f"fleet --format {fmt}")
    written = run("fleet", *HOSTS, "-c", secret_cmdline, "--format", fmt, "-o", str(out))
    if fmt == "table":  # a table is drawn, not written: -o names a file format (exit 2)
        assert written.exit_code == 2 and "cannot write" in written.stderr
        return
    assert written.exit_code == result.exit_code
    if fmt != "table":
        assert_no_secret(out.read_text(), f"fleet --format {fmt} --output")
    if fmt == "json":
        vm = json.loads(result.stdout)["guests"][0]["vm"]
        assert {"keyid": "master0"}.items() <= vm["objects"][2]["props"].items()


# --------------------------------------------------------------------------- error messages


@pytest.mark.parametrize(
    "text",
    [
        # Broken JSON: the message gives the position, never the text.
        """qemu -device '{"driver":"virtio-blk-pci","password":"leaksecret1",}'""",
        """qemu -object '{"qom-type":"secret","id":"s","data":"leaksecret1"'""",
        """qemu -object '{"qom-type":"secret","id":7,"data":"leaksecret1"}'""",
        # -global without a property: the message quotes the value it could not read.
        "qemu -global driver=virtio-blk-pci,password=leaksecret1",
        "qemu -global rbd,key=leaksecret1",
        # A query, an unterminated quote, a missing argument.
        "qemu -object secret,id=s,data=leaksecret1,help",
        "qemu -spice 'port=5900,password=leaksecret1",
        "qemu -S --password=leaksecret1",
        """qemu -object "secret,id=s,data=leaksecret1""",
    ],
)
def test_input_errors_do_not_echo_secrets(text: str, tmp_path: Path):
    with pytest.raises(InputError) as info:
        parse_cmdline(text, "vm.cmdline")
    assert "leaksecret1" not in str(info.value)
    path = tmp_path / "bad.cmdline"
    path.write_text(text)
    result = run("cmdline", str(path), "--format", "json")
    assert result.exit_code == 2
    assert "leaksecret1" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    "name",
    ["password", "passwd", "passphrase", "secret", "key", "psk", "token", "file.password",
     "file.key", "PASSWORD", "x-password", "ansible_ssh_pass", "ansible_become_password"],
)  # fmt: skip
def test_secret_property_names(name: str):
    assert is_secret_prop(name)
    assert redact_value(name, "hunter2") == REDACTED


@pytest.mark.parametrize(
    "name",
    ["key-secret", "password-secret", "passwordid", "keyid", "tls-creds", "tls-authz", "dir",
     "file", "keyring", "data", "iv", "id", "username", "user", "format", "encrypt.key-secret",
     "file.password-secret", "keymap", "hotkey-secret"],
)  # fmt: skip
def test_reference_and_ordinary_property_names_stay(name: str):
    assert not is_secret_prop(name)
    assert redact_value(name, "sec0") == "sec0"


def test_data_and_iv_are_secret_only_on_secret_objects():
    assert redact_props({"data": "x", "iv": "y", "keyid": "k"}, "secret") == {
        "data": REDACTED,
        "iv": REDACTED,
        "keyid": "k",
    }
    assert redact_props({"data": "0x1", "data-len": "4"}, "loader") == {
        "data": "0x1",
        "data-len": "4",
    }
    assert redact_props({"qom-type": "secret", "data": "x"})["data"] == REDACTED
    assert redact_props({"serial": "1234"}, "secret_keyring") == {"serial": "1234"}


def test_nested_json_values_are_redacted():
    props = {
        "file": {"driver": "rbd", "key": "cephkey", "key-secret": "sec0"},
        "servers": [{"host": "mon1", "password": "pw"}],
        "filename": "rbd:pool/img:id=admin:key=AQBxyz==:conf=/etc/ceph/ceph.conf",
        "url": "https://alice:pw@example.com/disk",
        "number": 3,
        "flag": True,
        "none": None,
    }
    assert redact_props(props) == {
        "file": {"driver": "rbd", "key": REDACTED, "key-secret": "sec0"},
        "servers": [{"host": "mon1", "password": REDACTED}],
        "filename": f"rbd:pool/img:id=admin:key={REDACTED}:conf=/etc/ceph/ceph.conf",
        "url": f"https://alice:{REDACTED}@example.com/disk",
        "number": 3,
        "flag": True,
        "none": None,
    }
    assert redact_json([{"password": 1234}, "x"]) == [{"password": REDACTED}, "x"]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("DB_PASSWORD", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("GITHUB_TOKEN", True),
        ("API_KEY", True),
        ("SSHPASS", True),  # sshpass -e reads the password from $SSHPASS
        ("MY_PASS", True),
        ("PWD", False),
        ("OLDPWD", False),
        ("XKB_KEYMAP", False),
        ("LC_ALL", False),
        ("SSH_AUTH_SOCK", False),
    ],
)
def test_environment_names(name: str, secret: bool):
    assert is_secret_env(name) is secret
    assert redact_env({name: "v"})[name] == (REDACTED if secret else "v")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "-object secret,id=sec0,data=c2VjcmV0,format=base64",
            f"-object secret,id=sec0,data={REDACTED},format=base64",
        ),
        (
            "-object qom-type=secret,id=sec0,data=x",
            f"-object qom-type=secret,id=sec0,data={REDACTED}",
        ),
        ("-device loader,addr=0x1000,data=0x1,data-len=4", None),
        (
            "file=rbd:pool/img:id=admin:key=AQB==:conf=/c.conf,key-secret=sec0",
            f"file=rbd:pool/img:id=admin:key={REDACTED}:conf=/c.conf,key-secret=sec0",
        ),
        ("-spice port=1,password=a,,b,addr=::1", f"-spice port=1,password={REDACTED},addr=::1"),
        ("-vnc :0,password-secret=sec0", None),
        ("iscsi://me%pw@10.0.0.1/iqn:x/1", f"iscsi://me%{REDACTED}@10.0.0.1/iqn:x/1"),
        ("ssh://user@host:22/path http://host:8080/a@b", None),
        ("nbd://h:10809/export", None),
        (
            """'{"qom-type":"secret","id":"s","data":"x","iv":"y","keyid":"m"}'""",
            f"""'{{"qom-type":"secret","id":"s","data":"{REDACTED}","iv":"{REDACTED}","keyid":"m"}}'""",
        ),
        ("""{"driver":"loader","data":"0x1"}""", None),
        ('{"password": 1, "key-secret": "s"}', f'{{"password": "{REDACTED}", "key-secret": "s"}}'),
        ("--password=x -S", f"--password={REDACTED} -S"),
        ("password='a b' x=1", f"password={REDACTED} x=1"),
        ("value=io.systemd.credential:pw=hunter2", f"value=io.systemd.credential:pw={REDACTED}"),
        ("machine.type: q35; cpu host", None),
        ("", None),
    ],
)  # fmt: skip
def test_redact_text(text: str, expected: str | None):
    assert redact_text(text) == (text if expected is None else expected)
