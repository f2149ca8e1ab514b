"""Behaviour of the probe script (migcheck/probe/probe.py), the program run on hypervisors.

It must parse and run on Python 3.6, parse real /proc/cpuinfo dumps, gather real facts with
the real QEMU and KVM, survive broken QEMU binaries (real processes written here), and change
nothing on the host.
"""

from __future__ import annotations

import ast
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHARED_DATA, require
from hypothesis import given, settings
from hypothesis import strategies as st

import migcheck.probe.probe as probe
from migcheck.facts import SCHEMA, SECTIONS, facts_from_probe_output
from migcheck.gather import gather
from migcheck.probe import probe_script
from migcheck.transport.local import run_local_probe

PROBE_PATH = Path(probe.__file__)
SHARED = SHARED_DATA
CPUINFO_DIRS = [SHARED / "cpuinfo", SHARED / "libvirt" / "virhostcpudata"]
FUZZ = settings(max_examples=200, deadline=None)


# --- Python 3.6 syntax contract ---------------------------------------------------------

_SUBPROCESS_FUNCS = {"run", "Popen", "call", "check_call", "check_output"}


def py36_violations(src: str) -> list[str]:
    """Constructs a Python 3.6 interpreter cannot run, found by walking the AST."""
    found = []
    match_types = tuple(t for t in (getattr(ast, "Match", None),) if t)
    for node in ast.walk(ast.parse(src)):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.NamedExpr):
            found.append(f"line {line}: assignment expression (walrus)")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if node.args.posonlyargs:
                found.append(f"line {line}: positional-only parameters")
        elif match_types and isinstance(node, match_types):
            found.append(f"line {line}: match statement")
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__" and any(a.name == "annotations" for a in node.names):
                found.append(f"line {line}: from __future__ import annotations")
            if (node.module or "").split(".")[0] == "dataclasses":
                found.append(f"line {line}: dataclasses (Python 3.7+)")
        elif isinstance(node, ast.Import):
            if any(a.name.split(".")[0] == "dataclasses" for a in node.names):
                found.append(f"line {line}: dataclasses (Python 3.7+)")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            bad = sorted({k.arg for k in node.keywords} & {"capture_output", "text"})
            if name in _SUBPROCESS_FUNCS and bad:
                found.append(f"line {line}: subprocess.{name}({', '.join(bad)}=...) (3.7+)")
    return found


PY36_BAD = {
    "walrus": "if (n := 3):\n    pass\n",
    "walrus in comprehension": "ys = [y for x in xs if (y := x)]\n",
    "positional-only": "def f(a, /, b):\n    return a\n",
    "positional-only lambda": "f = lambda a, /: a\n",
    "future annotations": "from __future__ import annotations\n",
    "dataclasses import": "import dataclasses\n",
    "dataclasses from-import": "from dataclasses import dataclass\n",
    "capture_output": "import subprocess\nsubprocess.run(['ls'], capture_output=True)\n",
    "text=": "from subprocess import check_output\ncheck_output(['ls'], text=True)\n",
    "match": "match x:\n    case 1:\n        pass\n",
}
PY36_GOOD = {
    "f-string": 'key = 1\nmsg = f"key={key} {key!r:>4}"\n',
    "Popen universal_newlines": (
        "import subprocess\nsubprocess.Popen(['ls'], universal_newlines=True)\n"
    ),
    "text= elsewhere": "def show(text=None):\n    pass\nshow(text='x')\n",
    "from __future__ print_function": "from __future__ import print_function\n",
}


@pytest.mark.parametrize("name", sorted(PY36_BAD))
def test_py36_checker_flags_each_forbidden_construct(name):
    assert py36_violations(PY36_BAD[name]), f"checker missed: {name}"


@pytest.mark.parametrize("name", sorted(PY36_GOOD))
def test_py36_checker_accepts_python36_code(name):
    assert py36_violations(PY36_GOOD[name]) == []
    ast.parse(PY36_GOOD[name], feature_version=(3, 6))


@pytest.mark.parametrize(
    "snippet",
    [
        'x = 1\nprint(f"{x=}")\n',
        "if (n := 3):\n    pass\n",
        "def f(a, /):\n    pass\n",
        "match x:\n    case 1:\n        pass\n",
    ],
)
def test_feature_version_36_rejects_newer_syntax(snippet):
    """The feature_version parse below is only a guard if this interpreter enforces it."""
    with pytest.raises(SyntaxError):
        ast.parse(snippet, feature_version=(3, 6))


def test_probe_source_parses_as_python36():
    ast.parse(PROBE_PATH.read_text(encoding="utf-8"), feature_version=(3, 6))


def test_probe_source_has_no_python37_constructs():
    assert py36_violations(PROBE_PATH.read_text(encoding="utf-8")) == []


def test_probe_script_with_config_parses_as_python36():
    src = probe_script({"skip_qemu": True, "qemu": "/opt/q'\"\\\n$(reboot)", "qemu_timeout": 3})
    ast.parse(src, feature_version=(3, 6))
    assert py36_violations(src) == []


def python36() -> str | None:
    """A working Python 3.6 interpreter, if this machine has one (pyenv is optional)."""
    for cand in ("/root/.pyenv/versions/3.6.15/bin/python3.6", shutil.which("python3.6")):
        if not cand or not os.access(cand, os.X_OK):
            continue
        try:
            out = subprocess.run(
                [cand, "-c", "import sys; print(sys.version_info[:2] == (3, 6))"],
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == b"True":
            return cand
    return None


@pytest.fixture(scope="module")
def py36() -> str:
    found = python36()
    if not found:  # optional even on CI: pyenv is not guaranteed
        pytest.skip("no Python 3.6 interpreter (pyenv 3.6.15 or python3.6 on PATH)")
    return found


def run_probe_with(python: str, config: dict, cwd: Path | None = None, env=None):
    return subprocess.run(
        [python, "-"],
        input=probe_script(config).encode(),
        capture_output=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=env or dict(os.environ, LC_ALL="C"),
    )


def test_probe_compiles_with_python36(py36):
    code = "import sys; compile(open(sys.argv[1], 'rb').read(), sys.argv[1], 'exec')"
    out = subprocess.run(
        [py36, "-c", code, str(PROBE_PATH)], capture_output=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr.decode()


def test_probe_runs_with_python36(py36):
    out = run_probe_with(py36, {"skip_qemu": True})
    assert out.returncode == 0, out.stderr.decode()
    assert out.stderr == b""
    doc = facts_from_probe_output(out.stdout.decode(), "py36").doc
    assert doc["schema"] == SCHEMA
    assert doc["probe"]["python"].startswith("3.6.")
    assert doc["qemu"] == {"error": "not probed (skip_qemu)"}
    assert_host_sections_sound(doc)


def test_probe_drives_real_qemu_with_python36(py36):
    require_qemu_kvm()
    out = run_probe_with(py36, {"qemu_timeout": 20})
    assert out.returncode == 0, out.stderr.decode()
    doc = facts_from_probe_output(out.stdout.decode(), "py36").doc
    assert doc["probe"]["python"].startswith("3.6.")
    assert "error" not in doc["qemu"], doc["qemu"].get("error")
    assert doc["qemu"]["version"] == qemu_version_from_cli(doc["qemu"]["binary"])
    assert doc["qemu"]["kvm"]["enabled"] is True


# --- pure parsers on real /proc/cpuinfo dumps -------------------------------------------


def cpuinfo_files() -> list[Path]:
    """Every text dump under the shared folders (lscpu reports included: they must not
    crash the parser either); JSON tables and tarballs are not dumps."""
    files: list[Path] = []
    for base in CPUINFO_DIRS:
        if base.is_dir():
            files += [
                p for p in base.rglob("*") if p.is_file() and p.suffix not in (".json", ".gz")
            ]
    return sorted(files)


def _id(path: Path) -> str:
    return str(path.relative_to(SHARED))


CPUINFO_FILES = cpuinfo_files()
X86 = [p for p in CPUINFO_FILES if re.search(r"(?m)^vendor_id\s*:\s*(GenuineIntel|AuthenticAMD)",
                                               p.read_text(errors="replace"))]  # fmt: skip
OTHER = [p for p in CPUINFO_FILES if p not in X86]


def shared_cpuinfo() -> None:
    require(
        all(d.is_dir() for d in CPUINFO_DIRS) and len(X86) >= 10 and len(OTHER) >= 10,
        f"real /proc/cpuinfo dumps not found under {SHARED}",
    )


def reference_processors(text: str) -> list[dict[str, str]]:
    """Processors by a different method than the probe's: a new one at each 'processor' key."""
    procs: list[dict[str, str]] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key.strip() == "processor":
            procs.append({})
        elif procs:
            procs[-1].setdefault(key.strip(), value.strip())
    return procs


@pytest.mark.shared_data
@pytest.mark.parametrize("path", X86 or [None], ids=_id if X86 else None)
def test_parse_cpuinfo_real_x86_dump(path):
    shared_cpuinfo()
    text = path.read_text(errors="replace")
    got = probe.parse_cpuinfo(text)
    procs = reference_processors(text)
    assert got["count"] == len(procs) == len(re.findall(r"(?m)^processor\s*:", text))
    first = procs[0]
    assert got["vendor"] == first["vendor_id"] in ("GenuineIntel", "AuthenticAMD")
    assert got["family"] == int(first["cpu family"])
    assert got["model"] == int(first["model"])
    assert got["stepping"] == int(first["stepping"])
    assert got["model_name"] == first["model name"]
    common = set.intersection(*(set(p["flags"].split()) for p in procs))
    assert got["flags"] == sorted(common)
    assert "fpu" in got["flags"]


@pytest.mark.shared_data
def test_parse_cpuinfo_flags_are_what_every_processor_has():
    """One processor without a flag (a hybrid or mis-reported CPU) removes it from the host."""
    shared_cpuinfo()
    path = max(X86, key=lambda p: len(reference_processors(p.read_text())))
    blocks = [b for b in path.read_text().split("\n\n") if reference_processors(b)]
    assert len(blocks) > 8
    first_flags = reference_processors(blocks[0])[0]["flags"].split()
    dropped = first_flags[len(first_flags) // 2]
    pattern = rf"(?m)^(flags\s*:.*) {re.escape(dropped)}(?=\s|$)"
    blocks[-1] = re.sub(pattern, r"\1", blocks[-1])
    assert dropped not in reference_processors(blocks[-1])[0]["flags"].split()
    got = probe.parse_cpuinfo("\n\n".join(blocks))
    assert dropped not in got["flags"]
    assert set(got["flags"]) == set(first_flags) - {dropped}


@pytest.mark.shared_data
@pytest.mark.parametrize("path", OTHER or [None], ids=_id if OTHER else None)
def test_parse_cpuinfo_other_architectures_do_not_crash(path):
    shared_cpuinfo()
    text = path.read_text(errors="replace")
    try:
        got = probe.parse_cpuinfo(text)
    except ValueError:
        sec = probe.section(lambda: probe.parse_cpuinfo(text))
        assert list(sec) == ["error"] and sec["error"].startswith("ValueError: ")
        return
    assert got["count"] >= 1 and isinstance(got["flags"], list)
    assert got["flags"] == sorted(set(got["flags"]))


CPUINFO_KEYS = ["processor", "vendor_id", "cpu family", "model", "stepping", "flags",
                "Features", "CPU implementer", "model name", "microcode"]  # fmt: skip
CPUINFO_LINE = st.one_of(
    st.tuples(st.sampled_from(CPUINFO_KEYS), st.text(max_size=20)).map(
        lambda kv: f"{kv[0]}\t: {kv[1]}"
    ),
    st.text(max_size=30),
    st.just(""),
)
CPUINFO_TEXT = st.lists(CPUINFO_LINE, max_size=30).map("\n".join) | st.text()


@FUZZ
@given(CPUINFO_TEXT)
def test_parse_cpuinfo_any_text_is_dict_or_value_error(text):
    try:
        got = probe.parse_cpuinfo(text)
    except ValueError:
        return
    assert isinstance(got, dict) and got["count"] >= 1
    assert all(isinstance(got[k], (int, type(None))) for k in ("family", "model", "stepping"))
    json.dumps(got)


@FUZZ
@given(st.text())
def test_parse_os_release_any_text_is_a_dict(text):
    got = probe.parse_os_release(text)
    assert isinstance(got, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in got.items())


OS_KEY = st.from_regex(r"[A-Z][A-Z0-9_]{0,15}", fullmatch=True)
OS_VALUE = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\"'#"),
    max_size=20,
).map(str.strip)


@FUZZ
@given(st.dictionaries(OS_KEY, OS_VALUE, max_size=8), st.sampled_from(["", '"', "'"]))
def test_parse_os_release_reads_back_what_was_written(fields, quote):
    text = "# comment\n\n" + "".join(f"{k}={quote}{v}{quote}\n" for k, v in fields.items())
    assert probe.parse_os_release(text) == fields


def test_parse_os_release_of_this_machine():
    os_sec = probe.section(probe.collect_os)
    try:
        info = platform.freedesktop_os_release()
    except OSError:  # no os-release file at all
        assert list(os_sec) == ["error"]
        return
    assert os_sec["id"] == info["ID"]
    assert os_sec["version_id"] == info.get("VERSION_ID", "")


def test_read_text_caps_size_and_replaces_bad_bytes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"ok \xff\xfe end")
    assert probe.read_text(str(path)) == "ok \ufffd\ufffd end"
    with pytest.raises(ValueError, match="larger than 4 bytes"):
        probe.read_text(str(path), limit=4)


# --- the real QEMU and KVM of this machine ----------------------------------------------


def require_qemu_kvm() -> None:
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 not on PATH")
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "/dev/kvm is not readable and writable")


def qemu_version_from_cli(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, timeout=30, check=True)
    m = re.search(r"QEMU emulator version (\d+\.\d+\.\d+)", out.stdout.decode())
    assert m, out.stdout
    return m.group(1)


def assert_host_sections_sound(doc: dict) -> None:
    """kernel, os, cpu, kvm and devices as this machine really is."""
    for name in SECTIONS:
        assert isinstance(doc[name], dict)
    kernel = doc["kernel"]
    assert "error" not in kernel, kernel
    assert kernel["release"] == os.uname().release
    assert kernel["arch"] == os.uname().machine
    cpu = doc["cpu"]
    if os.uname().machine == "x86_64":
        assert "error" not in cpu, cpu
        cpuinfo = Path("/proc/cpuinfo").read_text()
        assert cpu["count"] == len(re.findall(r"(?m)^processor\s*:", cpuinfo))
        assert cpu["vendor"] in cpuinfo and len(cpu["flags"]) > 10
    kvm = doc["kvm"]
    assert "error" not in kvm, kvm
    assert kvm["present"] == os.path.exists("/dev/kvm")
    assert kvm["usable"] == os.access("/dev/kvm", os.R_OK | os.W_OK)
    assert all(type(v) is int for v in kvm["capabilities"].values())
    assert doc["devices"] == {p: os.path.exists(p) for p in probe.DEVICE_NODES}


@pytest.fixture(scope="module")
def local_facts():
    require_qemu_kvm()
    started = time.monotonic()
    facts = gather("local")
    return facts, time.monotonic() - started


@pytest.mark.qemu
@pytest.mark.kvm
def test_gather_local_with_real_qemu_and_kvm(local_facts):
    facts, elapsed = local_facts
    doc = facts.doc
    print(f"probe.seconds={doc['probe']['seconds']} gather wall={elapsed:.3f}s")
    assert doc["schema"] == SCHEMA
    assert facts.kvm_usable is True
    assert doc["kvm"]["api_version"] == 12  # KVM_API_VERSION, fixed since Linux 2.6.22
    assert doc["kvm"]["capabilities"]["KVM_CAP_USER_MEMORY"] == 1
    assert doc["kvm"]["capabilities"]["KVM_CAP_NR_VCPUS"] >= 1
    qemu = doc["qemu"]
    assert "error" not in qemu, qemu.get("error")
    assert qemu["binary"] == shutil.which("qemu-system-x86_64")
    assert qemu["kvm"] == {"enabled": True, "present": True}
    assert facts.qemu_kvm_enabled is True
    assert qemu["version"] == qemu_version_from_cli(qemu["binary"])
    machines = qemu["machines"]
    assert machines
    defaults = [m["name"] for m in machines if m["is_default"]]
    assert len(defaults) == 1
    assert facts.resolve_machine(None) == defaults[0]
    assert "q35" in facts.resolve_machine("q35")
    assert qemu["cpu_models"] and facts.resolve_cpu_model("qemu64") is not None
    assert qemu["host_cpu"]["model"] == "host"
    assert facts.host_cpu["props"], "host CPU expansion should list properties"
    assert doc["host"]["transport"] == "local"
    assert_host_sections_sound(doc)
    assert 0 < doc["probe"]["seconds"] < 30


# --- broken QEMU binaries (real processes) ----------------------------------------------

QEMU_TIMEOUT = 2.0
QUIT_GRACE = 2.0  # Qmp.close() waits this long for QEMU to exit before killing it


def fake_qemu(tmp_path: Path, name: str, body: str, interpreter: str = "/bin/sh") -> Path:
    path = tmp_path / name
    path.write_text(f"#!{interpreter}\n{body}")
    path.chmod(0o755)
    return path


def probe_with_qemu(qemu: Path | str) -> tuple[dict, float]:
    """Run the probe with ``qemu`` the way gather() does: transport timeout = QEMU's + 5 s."""
    started = time.monotonic()
    out = run_local_probe({"qemu": str(qemu), "qemu_timeout": QEMU_TIMEOUT}, QEMU_TIMEOUT + 5)
    elapsed = time.monotonic() - started
    facts = facts_from_probe_output(out, "local")  # the document is still acceptable
    assert_host_sections_sound(dict(facts.doc))
    assert facts.qemu is None, "a broken QEMU must leave the qemu section unusable"
    return dict(facts.doc), elapsed


def assert_process_gone(pid: int) -> None:
    status = Path(f"/proc/{pid}/status")
    if status.exists():  # a zombie waiting for a reaper is dead too
        assert re.search(r"(?m)^State:\s*Z", status.read_text()), f"fake QEMU {pid} still runs"


def test_qemu_that_hangs_is_cut_off_at_the_deadline(tmp_path):
    pidfile = tmp_path / "pid"
    qemu = fake_qemu(tmp_path, "qemu-hang", f"echo $$ > {pidfile}\nexec sleep 3600\n")
    doc, elapsed = probe_with_qemu(qemu)
    print(f"hanging QEMU: probe.seconds={doc['probe']['seconds']} wall={elapsed:.2f}s")
    assert "deadline" in doc["qemu"]["error"]
    assert doc["qemu"]["binary"] == str(qemu)
    assert QEMU_TIMEOUT <= doc["probe"]["seconds"] <= QEMU_TIMEOUT + QUIT_GRACE + 1.5
    assert_process_gone(int(pidfile.read_text()))


def test_qemu_that_prints_garbage_instead_of_the_greeting(tmp_path):
    qemu = fake_qemu(tmp_path, "qemu-garbage", "echo 'Welcome to BusyBox'\nexec sleep 3600\n")
    doc, _ = probe_with_qemu(qemu)
    assert "not JSON" in doc["qemu"]["error"] and "Welcome to BusyBox" in doc["qemu"]["error"]


def test_qemu_that_greets_with_other_json(tmp_path):
    qemu = fake_qemu(tmp_path, "qemu-json", 'echo \'{"hello": "world"}\'\n')
    doc, _ = probe_with_qemu(qemu)
    assert "did not greet with QMP" in doc["qemu"]["error"]


def test_qemu_that_exits_at_once_reports_its_stderr(tmp_path):
    message = "qemu-system-x86_64: -accel kvm: failed to initialize kvm: No space left (7Q4)"
    qemu = fake_qemu(tmp_path, "qemu-dies", f"echo 'starting' >&2\necho '{message}' >&2\nexit 1\n")
    doc, elapsed = probe_with_qemu(qemu)
    assert "QEMU exited" in doc["qemu"]["error"]
    assert message in doc["qemu"]["error"]
    assert elapsed < QEMU_TIMEOUT + 3, "an exited QEMU must not wait for the deadline"


def test_qemu_that_floods_output_is_bounded(tmp_path):
    qemu = fake_qemu(tmp_path, "qemu-flood", "exec cat /dev/zero\n")
    doc, _ = probe_with_qemu(qemu)
    error = doc["qemu"]["error"]
    assert "deadline" in error or "more than" in error
    assert doc["probe"]["seconds"] <= QEMU_TIMEOUT + QUIT_GRACE + 1.5


FAKE_QMP = r"""
import json, sys
argv = sys.argv[1:]
with open(sys.argv[0] + ".argv", "w") as f:
    json.dump(argv, f)
def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
send({"QMP": {"version": {"qemu": {"major": 8, "minor": 2, "micro": 1}}, "capabilities": []}})
answers = {
    "qmp_capabilities": {},
    "query-version": {"qemu": {"major": 8, "minor": 2, "micro": 1}, "package": "fake"},
}
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["execute"] not in answers:
        sys.stderr.write("fake-qemu: lost the monitor during %s\n" % cmd["execute"])
        sys.exit(1)
    send({"event": "NOISE", "data": {}})
    send({"return": answers[cmd["execute"]], "id": cmd["id"]})
"""


def test_qemu_that_dies_mid_conversation_leaves_a_partial_section(tmp_path):
    qemu = fake_qemu(tmp_path, "qemu-partial", FAKE_QMP, interpreter=sys.executable)
    doc, _ = probe_with_qemu(qemu)
    qemu_sec = doc["qemu"]
    assert qemu_sec["version"] == "8.2.1" and qemu_sec["package"] == "fake"
    assert "lost the monitor during query-kvm" in qemu_sec["error"]
    assert "machines" not in qemu_sec
    argv = json.loads(Path(str(qemu) + ".argv").read_text())
    # A paused QEMU without a machine, config files or default devices: it can start nothing.
    for flag in ("-S", "-no-user-config", "-nodefaults"):
        assert flag in argv
    assert argv[argv.index("-machine") + 1] == "none"
    assert argv[argv.index("-qmp") + 1] == "stdio"


@pytest.mark.parametrize("kind", ["not executable", "directory", "missing", "hostile name"])
def test_configured_qemu_that_cannot_run(tmp_path, kind):
    path = tmp_path / "qemu-system-x86_64"
    if kind == "hostile name":  # the path rides in CONFIG as data, never as code or shell
        path = tmp_path / f"q'\"\\\n$(touch {tmp_path}/pwned)`touch {tmp_path}/pwned2`"
    if kind == "not executable":
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o644)
    elif kind == "directory":
        path.mkdir()
    doc, elapsed = probe_with_qemu(path)
    assert doc["qemu"] == {
        "error": f"ValueError: configured QEMU {str(path)!r} is not an executable file"
    }
    assert elapsed < 5
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_gather_passes_the_qemu_override(tmp_path):
    qemu = fake_qemu(tmp_path, "qemu-dies", "echo 'no such machine' >&2\nexit 1\n")
    facts = gather("local", qemu=str(qemu), timeout=10)
    assert facts.qemu is None and "no such machine" in facts.missing("qemu")
    assert facts.doc["qemu"]["binary"] == str(qemu)


# --- the probe changes nothing ----------------------------------------------------------


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_probe_creates_no_files(tmp_path):
    """Run as gather does (with the real QEMU when there is one), cwd/TMPDIR/HOME in tmp."""
    cwd, tmp, home = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "home"
    for d in (cwd, tmp, home):
        d.mkdir()
    before = tree(tmp_path)
    env = dict(os.environ, LC_ALL="C", TMPDIR=str(tmp), HOME=str(home))
    out = run_probe_with(sys.executable, {"qemu_timeout": 20}, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr.decode()
    doc = facts_from_probe_output(out.stdout.decode(), "local").doc
    assert tree(tmp_path) == before
    if shutil.which("qemu-system-x86_64"):
        assert "error" not in doc["qemu"], doc["qemu"].get("error")
