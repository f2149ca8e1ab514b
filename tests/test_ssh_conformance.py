"""migcheck resolves ssh_config as OpenSSH does: a corpus compared with the real ``ssh -G``.

Each case is a config file (written by hand from ssh_config(5)), a HOST and ssh's own
command-line flags. The test runs ``ssh -G -F FILE ... HOST`` and compares HostName, User,
Port, IdentityFile, CertificateFile, ProxyJump and the known_hosts files with
:class:`migcheck.transport.sshconfig.SshConfig` on the same input.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from migcheck.transport.sshconfig import SshConfig, SshConfigError, parse_option
from tests.conftest import require


@dataclass(frozen=True)
class Case:
    name: str
    config: str  # {d} is the case's directory
    host: str
    user: str | None = None
    port: int | None = None
    identities: tuple[str, ...] = ()  # file names created in {d}
    options: tuple[tuple[str, str], ...] = ()
    extra: dict[str, str] = field(default_factory=dict)  # more files: name -> text


CORPUS: list[Case] = [
    Case("plain", "Host web\n  HostName 10.0.0.5\n  User ops\n  Port 2201\n", "web"),
    Case("wildcard", "Host *.example.org\n  User wild\n  Port 2222\n", "a.example.org"),
    Case("no-match", "Host *.example.org\n  User wild\n", "example.com"),
    Case("negation", "Host *.lab !bad.lab\n  User good\nHost *\n  User rest\n", "bad.lab"),
    Case("negation-other", "Host *.lab !bad.lab\n  User good\n", "fine.lab"),
    Case("question-mark", "Host hv?\n  Port 2022\nHost hv??\n  Port 2033\n", "hv12"),
    Case("first-wins", "Host web\n  User first\nHost w*\n  User second\n  Port 23\n", "web"),
    Case("star-first", "Host *\n  User everyone\nHost web\n  User specific\n", "web"),
    Case("pattern-list", "Host db1 db2,db3\n  User dba\n", "db3"),
    Case("uppercase-pattern", "Host WEB\n  User up\n", "web"),
    Case("uppercase-host", "Host web\n  User low\n", "WEB"),
    Case("hostname-token", "Host *\n  HostName %h.internal.example\n", "node7"),
    Case("hostname-percent", "Host x\n  HostName 100%%.example\n", "x"),
    Case("equals-syntax", "Host=web\n  HostName=10.1.1.1\n  Port = 2200\n  User= eq\n", "web"),
    Case("quoted", 'Host web\n  IdentityFile "{d}/my key"\n  User "quoted"\n', "web"),
    Case(
        "match-host-after-hostname",
        "Host short\n  HostName long.example.net\nMatch host *.example.net\n  User matched\n",
        "short",
    ),
    Case(
        "match-originalhost",
        "Host short\n  HostName long.example.net\nMatch originalhost short\n  Port 2002\n",
        "short",
    ),
    Case("match-user", "Match user deploy\n  Port 2999\n", "web", user="deploy"),
    Case("match-user-miss", "Match user deploy\n  Port 2999\n", "web", user="other"),
    Case("match-localuser", "Match localuser root,nobody\n  User fromlocal\n", "web"),
    Case("match-exec-true", "Match exec true\n  User exec-yes\n", "web"),
    Case("match-exec-false", "Match exec false\n  User exec-no\nHost *\n  User after\n", "web"),
    Case("match-exec-token", 'Match exec "test %h = web"\n  Port 2424\n', "web"),
    Case("match-negated", "Match !host web\n  User notweb\nHost *\n  User web\n", "web"),
    Case("match-all", "Host web\n  Port 2000\nMatch all\n  User all\n", "web"),
    Case(
        "match-final",
        "Host alias\n  HostName real.example\nMatch final host real.example\n  User fin\n",
        "alias",
    ),
    Case(
        "include-absolute",
        "Include {d}/inc.conf\nHost *\n  User outer\n",
        "web",
        extra={"inc.conf": "Host web\n  User inner\n  Port 2100\n"},
    ),
    Case(
        "include-glob",
        "Include {d}/conf.d/*.conf\n",
        "web",
        extra={
            "conf.d/10-a.conf": "Host web\n  Port 2010\n",
            "conf.d/20-b.conf": "Host *\n  Port 2020\n  User b\n",
        },
    ),
    Case(
        "include-in-block",
        "Host other\n  Include {d}/inc.conf\nHost web\n  Port 2300\n",
        "web",
        extra={"inc.conf": "User should-not-apply\nHost *\n  User nor-this\n"},
    ),
    Case(
        "include-in-matching-block",
        "Host web\n  Include {d}/inc.conf\n  Port 2400\n",
        "web",
        extra={"inc.conf": "User included\n"},
    ),
    Case("proxyjump", "Host web\n  ProxyJump bastion\n", "web"),
    Case("proxyjump-chain", "Host web\n  ProxyJump u1@j1:2201,j2,u3@j3\n", "web"),
    Case("proxyjump-uri", "Host web\n  ProxyJump ssh://u@j1:2200\n", "web"),
    Case("proxyjump-none", "Host web\n  ProxyJump none\nHost *\n  ProxyJump b\n", "web"),
    Case("proxycommand-first", "Host web\n  ProxyCommand nc %h %p\n  ProxyJump b\n", "web"),
    Case(
        "known-hosts-several",
        "Host web\n  UserKnownHostsFile {d}/kh1 ~/.ssh/kh2 {d}/kh-%h-%p-%r-%u\n",
        "web",
    ),
    Case("known-hosts-env", "Host *\n  UserKnownHostsFile ${HOME}/kh %d/kh-d\n", "web"),
    Case("known-hosts-global", "Host *\n  GlobalKnownHostsFile {d}/g1 {d}/g2\n", "web"),
    Case("known-hosts2-defaults", "Host nothing-matches\n  User x\n", "web"),
    Case(
        "known-hosts-first-line",
        "Host web\n  UserKnownHostsFile {d}/a\nHost *\n  UserKnownHostsFile {d}/b {d}/c\n",
        "web",
    ),
    Case("default-identities", "Host web\n  User u\n", "web"),
    Case(
        "identities-accumulate",
        "Host web\n  IdentityFile ~/.ssh/web_ed25519\nHost *\n  IdentityFile {d}/all\n",
        "web",
    ),
    Case("identity-tokens", "Host *\n  IdentityFile ~/.ssh/%h_%r_%u\n", "web", user="ops"),
    Case(
        "certificates",
        "Host web\n  CertificateFile ~/.ssh/web-cert.pub\n  CertificateFile {d}/c-%h\n",
        "web",
    ),
    Case(
        "cmdline-wins",
        "Host web\n  User cfg\n  Port 2200\n  IdentityFile {d}/cfgkey\n",
        "web",
        user="cli",
        port=2999,
        identities=("clikey",),
    ),
    Case(
        "ssh-option",
        "Host web\n  HostName cfg.example\n  User cfg\n",
        "web",
        options=(("HostName", "opt.example"), ("User", "optuser"), ("Port", "2555")),
    ),
    Case("jump-flag", "Host web\n  ProxyJump cfgjump\n", "web", options=(("ProxyJump", "cli"),)),
    Case(
        "match-user-from-config",
        "Host web\n  User deploy\nMatch user deploy\n  Port 2777\n",
        "web",
    ),
]

KEYS = (
    "hostname",
    "user",
    "port",
    "identityfile",
    "certificatefile",
    "proxyjump",
    "userknownhostsfile",
    "globalknownhostsfile",
)


def _ssh_g(case: Case, cfg: Path, d: Path) -> dict[str, list[str]]:
    argv = ["ssh", "-G", "-F", str(cfg)]
    if case.user:
        argv += ["-l", case.user]
    if case.port:
        argv += ["-p", str(case.port)]
    for ident in case.identities:
        argv += ["-i", str(d / ident)]
    for key, value in case.options:
        argv += ["-o", f"{key}={value}"]
    argv.append(case.host)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    out: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in KEYS:
            out.setdefault(key, []).append(value)
    if "proxyjump" in out and out["proxyjump"] == ["none"]:
        del out["proxyjump"]
    return out


def _migcheck(case: Case, cfg: Path, d: Path) -> dict[str, list[str]]:
    res = SshConfig.load(cfg).resolve(
        case.host,
        user=case.user,
        port=case.port,
        identities=[str(d / i) for i in case.identities],
        options=case.options,
    )
    out = {
        "hostname": [res.hostname],
        "user": [res.user],
        "port": [str(res.port)],
        "identityfile": res.identity_files,
        "userknownhostsfile": [" ".join(res.user_known_hosts)],
        "globalknownhostsfile": [" ".join(res.global_known_hosts)],
    }
    if res.certificate_files:
        out["certificatefile"] = res.certificate_files
    if res.proxy_jump:
        out["proxyjump"] = [res.proxy_jump]
    return out


def _write(case: Case, d: Path) -> Path:
    for name, text in case.extra.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text.replace("{d}", str(d)))
    for ident in case.identities:
        (d / ident).write_text("not a key: ssh -G only checks that -i files exist\n")
    cfg = d / "config"
    cfg.write_text(case.config.replace("{d}", str(d)))
    return cfg


def test_corpus_size() -> None:
    assert len(CORPUS) >= 30
    assert len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_agrees_with_ssh_G(case: Case, tmp_path: Path) -> None:
    require(shutil.which("ssh") is not None, "OpenSSH client (ssh) not installed")
    cfg = _write(case, tmp_path)
    assert _migcheck(case, cfg, tmp_path) == _ssh_g(case, cfg, tmp_path)


def test_identity_paths_expand_tokens(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("Host web\n  HostName real.example\n  IdentityFile ~/k_%h_%r_%p_%n\n")
    res = SshConfig.load(cfg).resolve("web", user="ops", port=2200)
    home = str(Path("~").expanduser())
    assert res.identity_paths == [f"{home}/k_real.example_ops_2200_web"]


def test_verbose_steps_name_the_matching_lines(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("Host web\n  User ops\n  ControlMaster auto\n")
    res = SshConfig.load(cfg).resolve("web")
    assert any("line 1: Host web matches web" in s for s in res.steps)
    assert res.steps[-1].startswith("resolved web: ops@web:22")
    assert res.ignored == [f"ControlMaster ({cfg} line 3)"]


@pytest.mark.parametrize(
    "option",
    [
        "StrictHostKeyChecking=no",
        "PasswordAuthentication=yes",
        "CanonicalizeHostname=yes",
        "KnownHostsCommand=/bin/true",
        "RemoteCommand=id",
    ],
)
def test_options_migcheck_cannot_honour_are_refused_by_name(option: str) -> None:
    with pytest.raises(SshConfigError, match=f"--ssh-option {option.split('=')[0]}.*refused"):
        parse_option(option)


def test_options_migcheck_honours_are_accepted() -> None:
    assert parse_option("StrictHostKeyChecking=accept-new") == (
        "StrictHostKeyChecking",
        "accept-new",
    )
    assert parse_option("ProxyJump=u@b:2200") == ("ProxyJump", "u@b:2200")
    assert parse_option("UserKnownHostsFile /tmp/kh") == ("UserKnownHostsFile", "/tmp/kh")


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SshConfigError, match="no such file"):
        SshConfig.load(tmp_path / "absent")


def test_a_block_per_host_is_split_once_not_once_per_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet's ssh_config with one block per host: resolving each host splits each line
    once for the whole run, and only the lines of blocks that apply are walked, with the
    same answers as a fresh parse (gathering 500 hosts over 500 blocks took 29 ms a host)."""
    from migcheck.transport import sshconfig

    lines = []
    for i in range(200):
        lines += [f"Host hv{i:03d}", "  HostName 10.0.0.1", f"  Port {2000 + i}", "  User ops"]
    lines += ["Host *", "  IdentitiesOnly yes"]
    cfg_path = tmp_path / "config"
    cfg_path.write_text("\n".join(lines) + "\n")
    calls = 0
    real = sshconfig._split

    def counting(line: str) -> list[str]:
        nonlocal calls
        calls += 1
        return real(line)

    monkeypatch.setattr(sshconfig, "_split", counting)
    sshconfig._split_line.cache_clear()
    cfg = SshConfig.load(cfg_path, system=None)
    for i in range(200):
        r = cfg.resolve(f"hv{i:03d}")
        assert (r.hostname, r.port, r.user) == ("10.0.0.1", 2000 + i, "ops")
    assert calls <= len(lines)  # each distinct line once, not 200 times
    fresh = SshConfig.load(cfg_path, system=None).resolve("hv123")
    assert fresh == cfg.resolve("hv123")


def test_an_unsplittable_line_in_a_block_that_does_not_apply_still_fails(
    tmp_path: Path,
) -> None:
    cfg_path = tmp_path / "config"
    cfg_path.write_text('Host a\n  User x\nHost b\n  User "unbalanced\n  Port 22\n')
    cfg = SshConfig.load(cfg_path, system=None)
    for _ in range(2):  # and again, once its words are kept
        with pytest.raises(SshConfigError, match="unbalanced quotes"):
            cfg.resolve("a")
