"""SSH edge cases, as OpenSSH does them, on the real-sshd lab (and one paramiko server
that accepts the session but never answers the exec request, which sshd cannot be made
to do)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
from conftest import require
from typer.testing import CliRunner

from migcheck.cli import app
from migcheck.transport import ssh as ssh_mod
from migcheck.transport.settings import SshSettings

ROOT = Path(__file__).resolve().parents[1]
MIGCHECK = ROOT / ".venv" / "bin" / "migcheck"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def edge(lab):
    """A lab host whose probe fails at once (known_hosts tests need only the handshake)."""
    if "e-fail" not in lab.hosts:
        lab.add_failing_host("e-fail", status=1, stderr="no probe here\n")
    return lab


def block(lab, alias: str, known: Path, *extra: str, host: str = "e-fail") -> str:
    h = lab.hosts[host]
    lines = [f"Host {alias}", "  HostName 127.0.0.1", f"  Port {h.port}", "  User root",
             f"  IdentityFile {lab.client_key}", "  IdentitiesOnly yes",
             f"  UserKnownHostsFile {known}", "  GlobalKnownHostsFile /dev/null",
             "  BatchMode yes", *(f"  {e}" for e in extra), ""]  # fmt: skip
    return "\n".join(lines)


# --- the deadline ----------------------------------------------------------------------


class _SilentExec(paramiko.ServerInterface):
    """Accepts any public key and the session channel, then never answers exec."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.release.wait(120)  # the reply to the exec request never comes
        return False


@pytest.fixture()
def silent_server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    host_key = paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path / "hk")))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    release = threading.Event()
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while not release.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(host_key)
            t.start_server(server=_SilentExec(release))
            transports.append(t)

    threading.Thread(target=serve, daemon=True).start()
    port = listener.getsockname()[1]
    line = f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}"
    try:
        yield port, line
    finally:
        release.set()
        listener.close()
        for t in transports:
            t.close()


def _keygen(path: Path) -> Path:
    require(shutil.which("ssh-keygen") is not None, "needs ssh-keygen")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30
    )
    return path


def test_an_exec_request_never_answered_ends_at_the_timeout(silent_server, tmp_path: Path):
    port, line = silent_server
    known = tmp_path / "known_hosts"
    known.write_text(line + "\n")
    key = _keygen(tmp_path / "client")
    cfg = tmp_path / "cfg"
    cfg.write_text(
        f"Host silent\n  HostName 127.0.0.1\n  Port {port}\n  IdentityFile {key}\n"
        f"  UserKnownHostsFile {known}\n"
    )
    started = time.monotonic()
    r = run("gather", "silent", "-F", str(cfg), "--timeout", "3")
    elapsed = time.monotonic() - started
    assert r.exit_code == 3, r.stderr
    assert "timed out after 3 s" in r.stderr
    assert elapsed < 3 + 1.5, elapsed


def test_a_hung_resolver_ends_at_the_timeout(tmp_path: Path, lab):
    """A DNS server that never answers (glibc would wait 5 s x attempts): the deadline
    covers the lookup. Runs the real CLI in a mount namespace with its own resolv.conf."""
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        dns.bind(("127.0.0.77", 53))
    except OSError as exc:
        dns.close()
        require(False, f"cannot bind a silent DNS server on 127.0.0.77:53: {exc}")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.77\noptions timeout:30 attempts:1\n")
    cfg = tmp_path / "cfg"
    cfg.write_text(
        f"Host slowdns\n  HostName hv-slow-dns.example.org\n  IdentityFile {lab.client_key}\n"
    )
    script = (
        f"mount --bind {resolv} /etc/resolv.conf && "
        f"exec {MIGCHECK} gather slowdns -F {cfg} --timeout 2"
    )
    started = time.monotonic()
    try:
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        dns.close()
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    assert "while resolving 'hv-slow-dns.example.org'" in proc.stderr
    assert elapsed < 2 + 3.0, elapsed  # 2 s plus the CLI's start-up


# --- known_hosts -----------------------------------------------------------------------


def test_twenty_concurrent_accept_new_runs_append_whole_lines(edge, tmp_path: Path):
    """20 migcheck processes at once, each recording one alias (HostKeyAlias) in a
    known_hosts whose last line has no newline: every line whole, none lost or doubled."""
    host = edge.hosts["e-fail"]
    known = tmp_path / "known_hosts"
    other = f"other.example {edge.client_public_key}"
    known.write_text(other)  # no trailing newline
    aliases = [f"kh{i:02d}" for i in range(20)]
    cfg = tmp_path / "cfg"
    cfg.write_text("".join(block(edge, a, known, f"HostKeyAlias alias-{a}") for a in aliases))

    def one(alias: str) -> subprocess.CompletedProcess:
        argv = [str(MIGCHECK), "gather", alias, "-F", str(cfg), "--accept-new-host-keys"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, aliases))
    assert all("no probe here" in r.stderr for r in results), results[0].stderr
    lines = known.read_text().splitlines()
    assert known.read_text().endswith("\n")
    assert lines[0] == other
    expected = {f"alias-{a} {host.host_public_key}" for a in aliases}
    assert sorted(lines[1:]) == sorted(expected)


def test_host_key_alias_on_a_non_default_port_is_what_ssh_writes(edge, tmp_path: Path):
    require(shutil.which("ssh") is not None, "needs ssh")
    ours, theirs = tmp_path / "kh-migcheck", tmp_path / "kh-ssh"
    cfg_ours = tmp_path / "cfg-ours"
    cfg_ours.write_text(block(edge, "aliased", ours, "HostKeyAlias my-alias"))
    cfg_theirs = tmp_path / "cfg-ssh"
    cfg_theirs.write_text(
        block(edge, "aliased", theirs, "HostKeyAlias my-alias", "StrictHostKeyChecking accept-new")
    )
    assert edge.hosts["e-fail"].port != 22
    subprocess.run(["ssh", "-F", str(cfg_theirs), "aliased", "true"], capture_output=True,
                   timeout=60, check=False)  # fmt: skip
    r = run("gather", "aliased", "-F", str(cfg_ours), "--accept-new-host-keys")
    assert "no probe here" in r.stderr
    assert theirs.read_text().startswith("my-alias ssh-ed25519 ")
    assert ours.read_text() == theirs.read_text()
    # And migcheck finds the host under that name again (a strict second run).
    again = run("gather", "aliased", "-F", str(cfg_ours))
    assert "no probe here" in again.stderr


def test_hash_known_hosts_writes_a_line_ssh_accepts(edge, tmp_path: Path):
    require(shutil.which("ssh") is not None, "needs ssh")
    known = tmp_path / "known_hosts"
    cfg = tmp_path / "cfg"
    cfg.write_text(block(edge, "hashed", known, "HashKnownHosts yes"))
    r = run("gather", "hashed", "-F", str(cfg), "--accept-new-host-keys")
    assert "no probe here" in r.stderr
    text = known.read_text()
    assert text.startswith("|1|") and "127.0.0.1" not in text
    strict = tmp_path / "cfg-strict"
    strict.write_text(block(edge, "hashed", known, "StrictHostKeyChecking yes"))
    ssh = subprocess.run(["ssh", "-F", str(strict), "hashed", "true"], capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert "no probe here" in ssh.stderr, ssh.stderr  # ssh verified the key, then ran


def test_a_revoked_key_is_refused(edge, tmp_path: Path):
    host = edge.hosts["e-fail"]
    known = tmp_path / "known_hosts"
    known.write_text(f"{host.known_hosts_line}\n@revoked * {host.host_public_key}\n")
    cfg = tmp_path / "cfg"
    cfg.write_text(block(edge, "revoked", known))
    for extra in ([], ["--accept-new-host-keys"]):
        r = run("gather", "revoked", "-F", str(cfg), *extra)
        assert r.exit_code == 3 and "@revoked" in r.stderr and "refused" in r.stderr
        assert "no probe here" not in r.stderr


def test_a_cert_authority_host_is_unknown_with_a_message(edge, tmp_path: Path):
    ca = _keygen(tmp_path / "ca")
    known = tmp_path / "known_hosts"
    ca_pub = " ".join(Path(f"{ca}.pub").read_text().split()[:2])
    known.write_text(f"@cert-authority [127.0.0.1]:* {ca_pub}\n")
    cfg = tmp_path / "cfg"
    cfg.write_text(block(edge, "certhost", known))
    r = run("gather", "certhost", "-F", str(cfg), "--accept-new-host-keys")
    assert r.exit_code == 3, r.stderr
    assert "@cert-authority" in r.stderr and "does not verify" in r.stderr
    assert "Traceback" not in r.stderr and "@cert-authority" in known.read_text()


# --- names and config ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", "a..b", "x" * 64 + ".example", "y" * 254])
def test_hostile_names_are_exit_2(name: str):
    r = run("gather", name)
    assert r.exit_code == 2, r.stderr
    assert "Traceback" not in r.stderr and "idna" not in r.stderr


def test_a_hostile_hostname_in_ssh_config_is_a_clear_error(tmp_path: Path):
    cfg = tmp_path / "cfg"
    cfg.write_text(f"Host weird\n  HostName {'z' * 64}.example\n")
    r = run("gather", "weird", "-F", str(cfg), "--timeout", "5")
    assert r.exit_code == 3 and "is not a valid DNS name" in r.stderr, r.stderr


def test_the_system_config_is_read_after_the_users_unless_f(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from migcheck.hosts import parse_host

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host hv\n  Port 2201\n")
    system = tmp_path / "ssh_config"
    system.write_text("Host *\n  Port 2202\n  User sysuser\n  HashKnownHosts yes\n")
    monkeypatch.setenv("HOME", str(home))
    from migcheck.transport.sshconfig import SshConfig

    settings = SshSettings()
    config = SshConfig.load(None, system=system)  # what load_ssh_config(None) reads
    ep = ssh_mod.resolve(parse_host("hv"), settings, config)
    assert (ep.port, ep.user, ep.hash_known_hosts) == (2201, "sysuser", True)
    only = ssh_mod.load_ssh_config(home / ".ssh" / "config")  # -F: that file alone
    ep = ssh_mod.resolve(parse_host("hv"), settings, only)
    assert ep.port == 2201 and ep.user != "sysuser" and ep.hash_known_hosts is False
