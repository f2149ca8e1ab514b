"""Gathering over real SSH: the lab's sshd hosts, the real migcheck CLI, no mocks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import require
from lab import hostdata
from typer.testing import CliRunner

from migcheck.cli import app
from migcheck.hosts import parse_host
from migcheck.transport.ssh import REMOTE_COMMAND, REMOTE_COMMAND_SUDO

runner = CliRunner()
CMDLINE = "qemu-system-x86_64 -machine q35 -accel kvm -cpu EPYC-Rome -m 2048\n"


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "120", "NO_COLOR": "1"})


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keys come from the lab's config only; an operator's agent must not make tests pass.
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def hosts(lab):
    """Two QEMU versions on different kernels and distros, and one real QEMU + KVM."""
    lab.add_host("s-old", qemu="8.2.0", kernel="6.1.0-18-amd64", os_release=hostdata.DEBIAN_12)
    lab.add_host(
        "s-new",
        qemu="9.1.0",
        kernel="5.15.0-101-generic",
        os_release=hostdata.UBUNTU_2204,
        cpuinfo=hostdata.CPUINFO["xeon-gold-6142"],
    )
    lab.add_host("s-real", qemu="real", kernel="6.8.0-45-generic", os_release=hostdata.RHEL_94)
    return lab


@pytest.fixture()
def cmdline(tmp_path: Path) -> str:
    path = tmp_path / "vm.cmdline"
    path.write_text(CMDLINE)
    return str(path)


def _checks(doc: dict) -> list[tuple[str, str, object, object]]:
    return [(c["id"], c["status"], c["source"], c["destination"]) for c in doc["checks"]]


def test_pair_over_ssh_equals_pair_on_saved_facts(hosts, cmdline: str, tmp_path: Path):
    cfg = str(hosts.ssh_config)
    live = run("pair", "s-old", "s-new", "-F", cfg, "--cmdline", cmdline, "--format", "json")
    assert live.exit_code == 1, live.stderr
    saved = run("gather", "s-old", "s-new", "-F", cfg, "--out-dir", str(tmp_path / "facts"))
    assert saved.exit_code == 0, saved.stderr
    offline = run(
        "pair",
        str(tmp_path / "facts" / "s-old.json"),
        str(tmp_path / "facts" / "s-new.json"),
        "--cmdline",
        cmdline,
        "--format",
        "json",
    )
    a, b = json.loads(live.stdout), json.loads(offline.stdout)
    assert a["verdict"] == b["verdict"] == "unsafe"
    assert _checks(a) == _checks(b)
    assert a["source"]["qemu"] == "8.2.0" and a["destination"]["qemu"] == "9.0.90"
    alias = next(c for c in a["checks"] if c["id"] == "machine.alias")
    assert (alias["source"], alias["destination"]) == ("pc-q35-8.2", "pc-q35-9.1")


def test_gather_three_hosts_each_its_own(hosts, tmp_path: Path):
    out = tmp_path / "facts"
    result = run(
        "gather", "s-old", "s-new", "s-real", "-F", str(hosts.ssh_config), "--out-dir", str(out)
    )
    assert result.exit_code == 0, result.stderr
    docs = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert sorted(docs) == ["s-new", "s-old", "s-real"]
    assert docs["s-old"]["kernel"]["release"] == "6.1.0-18-amd64"
    assert docs["s-new"]["os"]["id"] == "ubuntu"
    assert docs["s-new"]["cpu"]["vendor"] == "GenuineIntel"
    assert docs["s-real"]["os"]["id"] == "rhel"
    assert docs["s-real"]["qemu"]["kvm"]["enabled"] is True
    assert docs["s-old"]["host"]["transport"] == "ssh"
    assert "3 of 3 hosts gathered" in result.stderr


def test_proxyjump_through_a_shared_bastion(hosts, tmp_path: Path):
    bastion = hosts.add_bastion("s-bastion")
    cfg = hosts.ssh_config_via("s-bastion", "s-old", "s-new")
    result = run("gather", "s-old", "s-new", "-F", str(cfg), "--out-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "s-old.json").is_file() and (tmp_path / "s-new.json").is_file()
    # Both targets went through one bastion connection (one login in the bastion's log).
    logins = bastion.log().count("Accepted publickey")
    assert logins == 1, bastion.log()


def _config_with_known_hosts(lab, path: Path, known_hosts: Path) -> Path:
    return lab.write_ssh_config(path, known_hosts=known_hosts)


def test_unknown_host_key_is_refused_with_the_fix(hosts, tmp_path: Path):
    known = hosts.known_hosts_without("s-old")
    cfg = _config_with_known_hosts(hosts, tmp_path / "cfg", known)
    result = run("gather", "s-old", "-F", str(cfg), "--out-dir", str(tmp_path / "out"))
    assert result.exit_code == 3
    assert "not known" in result.stderr and "ssh-keyscan" in result.stderr
    assert not list((tmp_path / "out").glob("*.json"))


def test_changed_host_key_is_refused_even_with_accept_new(hosts, tmp_path: Path):
    old, new = hosts.hosts["s-old"], hosts.hosts["s-new"]
    # known_hosts says s-old's port has s-new's key: exactly what a MITM looks like.
    forged = old.known_hosts_line.split()[0] + " " + " ".join(new.host_public_key.split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(forged + "\n")
    cfg = _config_with_known_hosts(hosts, tmp_path / "cfg", known)
    for extra in ([], ["--accept-new-host-keys"]):
        result = run("gather", "s-old", "-F", str(cfg), "--out-dir", str(tmp_path / "o"), *extra)
        assert result.exit_code == 3
        assert "HOST KEY CHANGED" in result.stderr
        assert f"ssh-keygen -R '[127.0.0.1]:{old.port}'" in result.stderr
    assert known.read_text() == forged + "\n"


def test_accept_new_host_keys_records_the_key(hosts, tmp_path: Path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    cfg = _config_with_known_hosts(hosts, tmp_path / "cfg", known)
    first = run(
        "gather", "s-old", "-F", str(cfg), "--out-dir", str(tmp_path), "--accept-new-host-keys"
    )
    assert first.exit_code == 0, first.stderr
    line = hosts.hosts["s-old"].known_hosts_line
    assert known.read_text().split() == line.split()
    again = run("gather", "s-old", "-F", str(cfg), "--out-dir", str(tmp_path))
    assert again.exit_code == 0, again.stderr


def test_auth_failure_is_exit_3_with_a_message(hosts, tmp_path: Path):
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    cfg = tmp_path / "cfg"
    cfg.write_text(hosts.ssh_config.read_text().replace(str(hosts.client_key), str(key)))
    result = run("gather", "s-old", "-F", str(cfg), "--out-dir", str(tmp_path / "o"))
    assert result.exit_code == 3
    assert "authentication failed" in result.stderr and str(key) in result.stderr
    assert "BEGIN OPENSSH PRIVATE KEY" not in result.stderr


def test_stalling_host_is_cut_off_while_others_succeed(hosts, tmp_path: Path):
    hosts.add_stalling_host("s-stall")
    started = time.monotonic()
    result = run(
        "gather", "s-stall", "s-old", "s-new", "-F", str(hosts.ssh_config),
        "--out-dir", str(tmp_path), "--timeout", "3",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.exit_code == 3
    assert "s-stall" in result.stderr and "did not finish within 3 s" in result.stderr
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["s-new", "s-old"]
    assert elapsed < 3 + 5, f"the deadline was not enforced: {elapsed:.1f} s"


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_bad_probe_output_is_unknown_never_safe(hosts, kind: str, cmdline: str, tmp_path: Path):
    name = f"s-{kind}"
    getattr(hosts, f"add_{kind}_host")(name)
    cfg = str(hosts.ssh_config)
    result = run("pair", "s-old", name, "-F", cfg, "--cmdline", cmdline, "--format", "json")
    assert result.exit_code == 3
    assert name in result.stderr and "not a facts document" in result.stderr
    assert "safe" not in result.stdout


def test_remote_failure_reports_exit_status_and_stderr(hosts, tmp_path: Path):
    hosts.add_failing_host("s-fail", status=7, stderr="probe exploded: disk on fire")
    result = run("gather", "s-fail", "-F", str(hosts.ssh_config), "--out-dir", str(tmp_path))
    assert result.exit_code == 3
    assert "exit 7" in result.stderr and "disk on fire" in result.stderr


def test_host_without_python(hosts, tmp_path: Path):
    empty = tmp_path / "not-python"
    empty.write_bytes(b"")
    hosts.add_host("s-nopy", qemu=None, extra={"/usr/bin/python3": empty})
    result = run("gather", "s-nopy", "-F", str(hosts.ssh_config), "--out-dir", str(tmp_path))
    assert result.exit_code == 3
    assert "no Python 3 on the host" in result.stderr


def test_user_input_never_reaches_the_remote_shell(hosts, tmp_path: Path):
    record = tmp_path / "original-command"
    hosts.add_host(
        "s-rec",
        force_command=f'printf %s "$SSH_ORIGINAL_COMMAND" > {record}; cat >/dev/null; exit 1',
    )
    hostile_qemu = "/usr/bin/qemu; touch /tmp/migcheck-pwned; $(id) `id`"
    for sudo in ([], ["--sudo"]):
        result = run(
            "gather", "root@s-rec", "-F", str(hosts.ssh_config), "--out-dir", str(tmp_path),
            "--qemu", hostile_qemu, *sudo,
        )  # fmt: skip
        assert result.exit_code == 3
        assert record.read_text() == (REMOTE_COMMAND_SUDO if sudo else REMOTE_COMMAND)
    assert not os.path.exists("/tmp/migcheck-pwned")
    # Option-looking or shell-looking HOSTs are refused before any connection.
    for hostile in ("-oProxyCommand=id", "host;id", "a b", "$(id)"):
        with pytest.raises(Exception, match="not a valid"):
            parse_host(hostile)


def test_sudo_without_password_prompt(hosts, tmp_path: Path):
    fake = tmp_path / "sudo"
    fake.write_text("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    require(
        Path("/usr/bin/sudo").exists(), "no /usr/bin/sudo to stand in for (apt-get install sudo)"
    )
    hosts.add_host("s-sudo", qemu=None, extra={"/usr/bin/sudo": fake})
    result = run(
        "gather", "s-sudo", "-F", str(hosts.ssh_config), "--out-dir", str(tmp_path), "--sudo"
    )
    assert result.exit_code == 3
    assert "sudo needs a password" in result.stderr


def test_fan_out_over_fifty_aliases_of_one_sshd(lab, tmp_path: Path):
    target = lab.add_host("s-fan", qemu="9.1.0", max_startups="10:30:100")
    cfg = lab.alias_config(50, "s-fan", prefix="fan")
    names = [f"fan{i:03d}" for i in range(1, 51)]
    result = run("gather", *names, "-F", str(cfg), "--out-dir", str(tmp_path), "--jobs", "16")
    assert result.exit_code == 0, result.stderr[-2000:]
    assert len(list(tmp_path.glob("*.json"))) == 50
    assert target.alive


def test_proxycommand_from_ssh_config(hosts, tmp_path: Path):
    hosts.add_bastion("s-bastion2")
    target = hosts.hosts["s-old"]
    cfg = tmp_path / "cfg"
    cfg.write_text(
        hosts.ssh_config.read_text()
        + f"\nHost via-proxycommand\n  HostName 127.0.0.1\n  Port {target.port}\n  User root\n"
        f"  IdentityFile {hosts.client_key}\n  UserKnownHostsFile {hosts.known_hosts}\n"
        f"  ProxyCommand ssh -F {hosts.ssh_config} -W %h:%p s-bastion2\n"
    )
    result = run("gather", "via-proxycommand", "-F", str(cfg), "--out-dir", str(tmp_path / "o"))
    assert result.exit_code == 0, result.stderr
    doc = json.loads((tmp_path / "o" / "via-proxycommand.json").read_text())
    assert doc["kernel"]["release"] == "6.1.0-18-amd64"


def _bare_config(lab, tmp_path: Path) -> Path:
    """Only known_hosts: user, port and key must come from HOST and the options."""
    cfg = tmp_path / "bare"
    cfg.write_text(f"Host *\n  UserKnownHostsFile {lab.known_hosts}\n")
    return cfg


@pytest.mark.parametrize("form", ["root@127.0.0.1:{port}", "ssh://root@127.0.0.1:{port}"])
def test_host_string_forms_with_identity_option(hosts, tmp_path: Path, form: str):
    port = hosts.hosts["s-new"].port
    cfg = _bare_config(hosts, tmp_path)
    target = form.format(port=port)
    out = tmp_path / "o"
    result = run(
        "gather", target, "-F", str(cfg), "-i", str(hosts.client_key), "--out-dir", str(out)
    )
    assert result.exit_code == 0, result.stderr
    (doc,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert doc["os"]["id"] == "ubuntu"


def test_user_option_applies_when_host_has_none(hosts, tmp_path: Path):
    port = hosts.hosts["s-new"].port
    cfg = _bare_config(hosts, tmp_path)
    args = ["-F", str(cfg), "-i", str(hosts.client_key), "--out-dir", str(tmp_path / "o")]
    ok = run("gather", f"127.0.0.1:{port}", "--user", "root", *args)
    assert ok.exit_code == 0, ok.stderr
    wrong = run("gather", f"127.0.0.1:{port}", "--user", "nobody-here", *args)
    assert wrong.exit_code == 3
    assert "nobody-here@127.0.0.1" in wrong.stderr


def test_keys_from_ssh_agent(hosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.02)
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        subprocess.run(["ssh-add", "-q", str(hosts.client_key)], env=env, check=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        port = hosts.hosts["s-new"].port
        cfg = _bare_config(hosts, tmp_path)
        result = run("gather", f"root@127.0.0.1:{port}", "-F", str(cfg), "--out-dir", str(tmp_path))
        assert result.exit_code == 0, result.stderr
    finally:
        agent.terminate()
        agent.wait(timeout=5)


def test_output_cap_cuts_off_a_flooding_host(hosts, tmp_path: Path):
    from migcheck.errors import HostError
    from migcheck.gather import Gatherer, GatherOptions
    from migcheck.transport.ssh import SshSettings

    hosts.add_host("s-flood", force_command="cat >/dev/null; exec head -c 50000000 /dev/zero")
    settings = SshSettings(config_file=hosts.ssh_config, max_output=1_000_000, timeout=20)
    with (
        Gatherer(GatherOptions(timeout=20, ssh=settings)) as gatherer,
        pytest.raises(HostError, match="more than 1000000 bytes"),
    ):
        gatherer.gather("s-flood")


def test_ssh_flags_port_user_identity_and_ssh_option(hosts, tmp_path: Path):
    """ssh's own flags: -p, -l, -i and --ssh-option (ssh's -o) instead of a config file."""
    port = hosts.hosts["s-new"].port
    empty = tmp_path / "empty"
    empty.write_text("")
    args = ["-F", str(empty), "-i", str(hosts.client_key), "--out-dir", str(tmp_path / "o")]
    kh = f"UserKnownHostsFile={hosts.known_hosts}"
    ok = run("gather", "127.0.0.1", "-p", str(port), "-l", "root", "--ssh-option", kh, *args)
    assert ok.exit_code == 0, ok.stderr
    # Without the option the key is unknown: the option really set the known_hosts file.
    unknown = run("gather", "127.0.0.1", "-p", str(port), "-l", "root", *args)
    assert unknown.exit_code == 3 and "known_hosts" in unknown.stderr


def test_jump_flag_and_verbose_steps(hosts, tmp_path: Path):
    """-J as ssh's: the destination goes through the bastion; --verbose names each step."""
    bastion = hosts.add_bastion("s-bastion-j")
    before = bastion.log().count("Accepted publickey")
    result = run(
        "gather",
        "s-old",
        "-F",
        str(hosts.ssh_config),
        "-J",
        "s-bastion-j",
        "-v",
        "--out-dir",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.stderr
    assert bastion.log().count("Accepted publickey") == before + 1
    assert "migcheck ssh: s-old: resolved s-old: root@127.0.0.1" in result.stderr
    assert "via s-bastion-j" in result.stderr
    assert "migcheck ssh: s-old: connecting to root@127.0.0.1" in result.stderr


def test_refused_ssh_option_is_a_usage_error(tmp_path: Path):
    result = run("gather", "somehost", "--ssh-option", "StrictHostKeyChecking=no")
    assert result.exit_code == 2
    assert "StrictHostKeyChecking=no: refused" in result.stderr
