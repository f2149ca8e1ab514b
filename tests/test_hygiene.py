"""Output hygiene: host-supplied text cannot forge lines, rows, HTML or terminal control in
any format; redaction covers the credentials QEMU command lines carry and nothing else;
hostile nesting never ends in RecursionError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migcheck.cli import app
from migcheck.redact import REDACTED, TOO_DEEP, redact_env, redact_json, redact_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BOOKWORM = FIXTURES / "hosts" / "debian12-qemu7.2-epyc-pvm.json"
TRIXIE = FIXTURES / "hosts" / "debian13-qemu10.0-epyc-pvm.json"
CMDLINE = FIXTURES / "cmdlines" / "web01-q35.cmdline"
runner = CliRunner()

HOSTILE_NAME = "evil<script>alert(1)</script>|x\n| forged | row |\x1b[2J"
HOSTILE_KERNEL = "6.1.0-18-amd64\n## forged heading\x1b[31m"


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture()
def hostile(tmp_path: Path) -> tuple[str, str]:
    paths = []
    for i, src in enumerate((BOOKWORM, TRIXIE)):
        doc = json.loads(src.read_text())
        doc["host"]["name"] = f"{HOSTILE_NAME}{i}"
        doc["kernel"]["release"] = HOSTILE_KERNEL
        path = tmp_path / f"h{i}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    # The builds the facts reference sit beside them, as gather writes them.
    (tmp_path / "qemu-builds").symlink_to(BOOKWORM.parent / "qemu-builds")
    return paths[0], paths[1]


def _clean(text: str) -> None:
    assert "\x1b" not in text
    assert "\n| forged" not in text and "\n## forged" not in text


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize("fmt", ["table", "json", "junit", "markdown"])
def test_pair_reports_carry_no_forged_lines_or_control(hostile, fmt: str):
    r = run("pair", *hostile, "--cmdline", str(CMDLINE), "--format", fmt)
    assert r.exit_code in (0, 1, 3), r.stderr
    _clean(r.stdout)
    if fmt == "markdown":
        assert "<script>" not in r.stdout and "&lt;script&gt;" in r.stdout
    if fmt == "json":
        doc = json.loads(r.stdout)
        hostile_strings = [x for x in _strings(doc) if "forged" in x or "evil" in x]
        assert hostile_strings and not [x for x in hostile_strings if "\n" in x or "\x1b" in x]
        assert isinstance(doc["summary"]["pass"], int)  # never redacted: a count


@pytest.mark.parametrize("fmt", ["table", "json", "junit", "markdown"])
def test_fleet_reports_carry_no_forged_lines_or_control(hostile, fmt: str):
    r = run("fleet", *hostile, "--cmdline", str(CMDLINE), "--format", fmt)
    assert r.exit_code in (0, 1, 3), r.stderr
    _clean(r.stdout)
    if fmt == "markdown":
        assert "<script>" not in r.stdout
        rows = [line for line in r.stdout.splitlines() if line.startswith("| C")]
        assert all(line.count(" | ") == 3 for line in rows), rows  # no cell split by "|"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("https://admin:pa/ss@w0rd@storage.example/img", "pa/ss@w0rd"),
        ("-drive driver=https,url=https://h/x,cookie=SESSION=abc123", "abc123"),
        ("-fw_cfg name=opt/io.systemd.credentials/token,string=hunter2", "hunter2"),
        ("-fw_cfg string=hunter2,name=opt/io.systemd.credentials/token", "hunter2"),
    ],
)
def test_redaction_covers_the_credentials_command_lines_carry(text: str, secret: str):
    out = redact_text(text)
    assert secret not in out and REDACTED in out


def test_ceph_args_and_non_secrets():
    assert redact_env({"CEPH_ARGS": "--id admin --key AQBxyz=="})["CEPH_ARGS"] == REDACTED
    assert redact_text("http://host:8080/a@b") == "http://host:8080/a@b"  # a port, a path
    assert redact_text("-fw_cfg name=opt/org.example/x,string=visible").endswith("visible")
    assert redact_json({"summary": {"pass": 23, "fail": 0}}) == {"summary": {"pass": 23, "fail": 0}}
    assert redact_json({"pass": "hunter2"}) == {"pass": REDACTED}  # a string is a password


def test_hostile_nesting_never_raises_recursion_error():
    deep: object = "leaf password=hunter2"
    for _ in range(20000):
        deep = {"a": [deep]}
    out = json.dumps(redact_json(deep))
    assert TOO_DEEP in out and "hunter2" not in out


def test_a_deeply_nested_json_device_is_a_clear_answer(tmp_path: Path):
    device = '{"driver":"virtio-net-pci","x":' + "[" * 3000 + "]" * 3000 + "}"
    path = tmp_path / "deep.cmdline"
    path.write_text(f"qemu-system-x86_64 -machine q35 -device '{device}'\n")
    for fmt in ("table", "json"):
        r = run("cmdline", str(path), "--format", fmt)
        assert r.exit_code in (0, 2), r.stderr
        assert "Traceback" not in r.stderr and "RecursionError" not in (r.stderr + r.stdout)
