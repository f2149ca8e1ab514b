"""Fuzzing every parser of input migcheck does not write itself (SECURITY.md).

For each parser, on arbitrary, structured and mutated-real inputs:

* only its documented error escapes (InputError, FactsError, HostError, CatalogError; the
  probe's parsers ValueError), and whatever it accepts goes through the code that consumes it
  (checks, reports, redaction) without any other exception: a parser that lets bad data
  through must not turn it into a crash, let alone a ``safe``;
* no hang: a hypothesis deadline per example, and a hard wall bound (SIGALRM) that stops a
  parser that never returns;
* bounded memory: the process's peak RSS may not grow by more than RSS_CAP per example, and
  large inputs are measured with tracemalloc against a cap proportional to their size.

Examples per parser come from ``MIGCHECK_FUZZ_EXAMPLES`` (default 100, so ``make test`` stays
fast); ``make fuzz`` runs 10,000. The examples run per parser are printed at the end.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qemudata import FIXTURES

from migcheck.blockers import triggered
from migcheck.catalog import CatalogError, load_catalog, shipped_catalog
from migcheck.catalog.blockers import load_blockers
from migcheck.cmdline import load_cmdline, parse_cmdline
from migcheck.errors import HostError, InputError, MigcheckError
from migcheck.facts import (
    MAX_FACTS_BYTES,
    SCHEMA,
    Facts,
    FactsError,
    facts_from_probe_output,
    load_facts,
    validate,
)
from migcheck.hostinfo import host_summary
from migcheck.inventory import Inventory, load_inventory
from migcheck.pair import check_pair
from migcheck.probe import probe
from migcheck.redact import redact_text
from migcheck.report.json import render_pair
from migcheck.vm import VmSpec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("MIGCHECK_FUZZ_EXAMPLES", "100"))
WALL_SECONDS = 30.0  # hard bound on one example, whatever the machine
MIB = 2**20
RSS_CAP = 256 * MIB  # growth of the peak RSS allowed in one example

settings.register_profile(
    "migcheck-fuzz",
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=3),
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # fixtures here are module-wide and reset by hand
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
    print_blob=True,
)
FUZZ = settings(settings.get_profile("migcheck-fuzz"))


# --------------------------------------------------------------------------- bounds, counts


@dataclass
class Stat:
    examples: int = 0
    rejected: int = 0  # ended in the documented error
    seconds: float = 0.0
    slowest: float = 0.0
    rss_growth: int = 0
    longest_message: int = 0


STATS: dict[str, Stat] = {}
LARGE_PEAKS: dict[str, tuple[int, int, float]] = {}  # input bytes, traced peak, seconds


class _Hang(BaseException):
    """Raised by SIGALRM; a BaseException so no ``except Exception`` in a parser eats it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Hang


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


@contextmanager
def bounded(parser: str, wall: float = WALL_SECONDS, rss_cap: int = RSS_CAP) -> Iterator[Stat]:
    """Count one example of ``parser``; fail it if it runs past ``wall`` seconds or makes
    the peak RSS grow by more than ``rss_cap``."""
    stat = STATS.setdefault(parser, Stat())
    before = _peak_rss()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, wall)
    start = time.perf_counter()
    try:
        yield stat
    except _Hang:
        raise AssertionError(f"{parser} did not return within {wall:g} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        elapsed = time.perf_counter() - start
        stat.examples += 1
        stat.seconds += elapsed
        stat.slowest = max(stat.slowest, elapsed)
    grown = _peak_rss() - before
    stat.rss_growth = max(stat.rss_growth, grown)
    assert grown <= rss_cap, f"{parser}: peak RSS grew by {grown >> 20} MiB in one example"


def rejected(stat: Stat, err: MigcheckError, origin: str) -> None:
    """The documented error: a message for the operator that names the input."""
    stat.rejected += 1
    message = str(err)
    stat.longest_message = max(stat.longest_message, len(message))
    assert message.strip(), "an error without a message"
    assert origin in message, f"the message does not name {origin!r}: {message[:200]}"


@pytest.fixture(scope="module", autouse=True)
def _print_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not STATS:
        return
    with capture.global_and_fixture_disabled():
        _write_counts(reporter)


def _write_counts(reporter: Any) -> None:
    reporter.ensure_newline()
    reporter.section(f"migcheck fuzz: examples per parser (MIGCHECK_FUZZ_EXAMPLES={EXAMPLES})")
    reporter.write_line(
        f"{'parser':34} {'examples':>8} {'rejected':>8} {'total s':>8} {'slowest s':>9} "
        f"{'max RSS+ MiB':>12} {'longest msg':>11}"
    )
    for name, s in sorted(STATS.items()):
        reporter.write_line(
            f"{name:34} {s.examples:8d} {s.rejected:8d} {s.seconds:8.1f} {s.slowest:9.3f} "
            f"{s.rss_growth / 2**20:12.1f} {s.longest_message:11d}"
        )
    if LARGE_PEAKS:
        reporter.write_line("")
        reporter.write_line(
            f"{'large input':58} {'in MiB':>7} {'peak MiB':>8} {'x in':>6} {'s':>6}"
        )
    for name, (size, peak, seconds) in sorted(LARGE_PEAKS.items()):
        ratio = f"{peak / size:6.1f}" if size >= 64 * 1024 else "     -"
        reporter.write_line(
            f"{name:68} {size / 2**20:7.2f} {peak / 2**20:8.1f} {ratio} {seconds:6.2f}"
        )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------- mutation

# Byte strings that parsers treat specially, and a few that are expensive if mishandled.
NASTY = [
    b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b'"', b"'", b"\\", b"{", b"}",
    b"[", b"]", b"[[", b"]]", b"=", b",", b",,", b":", b";", b"\n", b"\r\n", b"\r", b"#", b" ",
    b"\t", b"-", b"--", b"&a", b"*a", b"!!python/object", b"%YAML 1.1\n", b"---\n",
    b"9" * 5000, b"1e999999", b"-0", b"0x", b"[" * 3000, b'{"a":' * 3000, b"\\u0000",
    b"\\ud800", b"null", b"true", b"inf", b"nan", b"1979-05-27T07:32:00Z", b'"""', b"'''",
    b"[a:z]", b"[0:99999999]", b"h[1:3]", b"${x}", b"$(id)", b"`id`", b"\x1b[2J",
    "é".encode(), "😀".encode(), "\u2028".encode(),
]  # fmt: skip
_OPS = ("truncate", "flip", "insert", "delete", "duplicate", "nasty")


def mutate(draw: st.DrawFn, data: bytes) -> bytes:
    """1-4 random edits: truncate, flip a byte, insert or delete bytes, repeat a slice,
    or splice in one of NASTY."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(_OPS))
        n = len(out)
        i = draw(st.integers(0, n))
        if op == "truncate":
            del out[i:]
        elif op == "flip" and n:
            out[min(i, n - 1)] ^= draw(st.integers(1, 255))
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del out[i : draw(st.integers(i, min(n, i + 256)))]
        elif op == "duplicate":
            chunk = bytes(out[i : draw(st.integers(i, min(n, i + 64)))])
            out[i:i] = chunk * draw(st.integers(1, 64))
        else:
            out[i:i] = draw(st.sampled_from(NASTY))
    return bytes(out)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    return mutate(draw, draw(st.sampled_from(seeds)))


def as_text(strategy: st.SearchStrategy[bytes]) -> st.SearchStrategy[str]:
    return strategy.map(lambda b: b.decode("utf-8", "replace"))


# TOML: delete a key, change a value's type, break a header, swap in another file's content.
TOML_VALUES = [
    "1", "-1", "0", "true", "false", '""', '"x"', '"6.2"', '"linux-6.2"', '"99999999999.1"',
    "[]", "[1]", '["a", 1]', '[["x"]]', "{}", "{ a = 1 }", '{ device = 5 }', "1979-05-27",
    "3.5", "inf", '"(a+)+$"', '["^("]', '"' + "x" * 5000 + '"', '{ option = "x" }',
]  # fmt: skip


@st.composite
def toml_mutated(draw: st.DrawFn, data: bytes) -> bytes:
    lines = data.decode("utf-8").split("\n")
    for _ in range(draw(st.integers(1, 3))):
        keyed = [i for i, line in enumerate(lines) if "=" in line and not line.startswith("#")]
        headers = [i for i, line in enumerate(lines) if line.startswith("[")]
        op = draw(st.sampled_from(["delete", "retype", "rename", "header", "bytes"]))
        if op == "delete" and keyed:
            del lines[draw(st.sampled_from(keyed))]
        elif op == "retype" and keyed:
            i = draw(st.sampled_from(keyed))
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {draw(st.sampled_from(TOML_VALUES))}"
        elif op == "rename" and keyed:
            i = draw(st.sampled_from(keyed))
            lines[i] = draw(st.sampled_from(["x", "id", "title", "match", "unless"])) + lines[i]
        elif op == "header" and headers:
            i = draw(st.sampled_from(headers))
            lines[i] = draw(st.sampled_from(["", "[x]", "[[x]]", "[qemu]", "[[blocker]]"]))
        else:
            return mutate(draw, "\n".join(lines).encode())
    return "\n".join(lines).encode()


# --------------------------------------------------------------------------- shared data

HOST_FILES = sorted((FIXTURES / "hosts").glob("*.json"))
HOST_BYTES = [p.read_bytes() for p in HOST_FILES]
HOST_DOCS = [json.loads(b) for b in HOST_BYTES]
HOSTS = [Facts(validate(doc, p.name), p.name) for doc, p in zip(HOST_DOCS, HOST_FILES, strict=True)]
CMDLINE_FILES = sorted((FIXTURES / "cmdlines").glob("*.cmdline"))

# Guests that reach most checks and blockers, for judging whatever a parser accepted.
PROBE_GUESTS = [parse_cmdline(p.read_text(), p.name) for p in CMDLINE_FILES] + [
    parse_cmdline(
        "qemu-system-x86_64 -machine pc-q35-7.2 -accel kvm -cpu EPYC,+invtsc,migratable=off "
        "-device vfio-pci,host=01:00.0 -device ivshmem-plain,memdev=m -device nvme,id=n "
        "-object sev-guest,id=sev0 -drive file=x.vmdk,format=vmdk -chardev qemu-vdagent,id=v "
        "-virtfs local,path=/x,mount_tag=t,security_model=none "
        "-netdev tap,id=n0,vhost=on -device virtio-net-pci,netdev=n0,host_uso=on",
        "blockers.cmdline",
    ),
    parse_cmdline("qemu-system-x86_64 -platform linux-6.1 -cpu host", "pinned.cmdline"),
]


def judge(vm: VmSpec, src: Facts, dst: Facts, catalog: Any = None) -> None:
    """Run the checks and the JSON report; only a MigcheckError may come out."""
    try:
        report = check_pair(vm, src, dst, catalog=catalog)
    except MigcheckError:
        return
    json.loads(render_pair(report))


def warm_up() -> None:
    """Fill caches before the first timed example, so the deadline measures the parser."""
    shipped_catalog()
    for vm in PROBE_GUESTS:
        judge(vm, HOSTS[0], HOSTS[-1])


warm_up()


# --------------------------------------------------------------------------- command lines

CMDLINE_SEEDS = [p.read_bytes() for p in CMDLINE_FILES] + [
    b"A=1 B='x y' qemu -machine q35,accel=kvm:tcg -cpu host,+avx2,-x2apic,level=13,hv_relaxed "
    b'-device \'{"driver":"virtio-net-pci","id":"n","netdev":"h"}\' -netdev user,id=h '
    b"-object secret,id=s,data=x -global kvm-pit.lost_tick_policy=delay -global driver=a,"
    b"property=b,value=c -accel tcg,thread=multi -enable-kvm -platform linux-6.1 -M pc "
    b'"-S" \\\n  # comment \\\n -nodefaults disk.img -',
]
TOKENS = st.sampled_from(
    [
        *("-machine", "-M", "-cpu", "-device", "-netdev", "-object", "-global", "-accel"),
        *("-enable-kvm", "-S", "--nodefaults", "-platform", "help", "?", "{", '{"id":1}'),
        *('\'{"driver":"x"}\'', "a,,b", "a=b", "+x", ",", "''", '"', "\\\n", "# c\n"),
        *("password=x", "qom-type=secret", "driver=", "type=", "id=", "=", "host,", "A=b"),
        *("-nic", "-net", "nic", "tap,model=virtio", "user,id=n", "none", "-set", "-vga"),
        *("device.n.x=1", "netdev.n.vnet_hdr=off", "-readconfig", "x.cfg", "-serial"),
        *("-drive", "if=floppy", "if=virtio,index=2", "-usbdevice", "tablet", "-cdrom"),
        *("qemu-system-x86_64", "-machine none", "microvm", "virtio-net,id=n"),
    ]
)
CMDLINE_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(TOKENS, max_size=16).map(" ".join),
    as_text(mutated(CMDLINE_SEEDS)),
)


def consume_cmdline(spec: VmSpec) -> None:
    json.dumps(spec.to_json())
    judge(spec, HOSTS[0], HOSTS[-1])


@FUZZ
@given(CMDLINE_TEXT)
def test_parse_cmdline(text: str) -> None:
    with bounded("cmdline.parse_cmdline") as stat:
        try:
            spec = parse_cmdline(text, "fuzz.cmdline")
        except InputError as err:
            rejected(stat, err, "fuzz.cmdline")
            assert "\n" not in str(err)  # documented: one paragraph
            return
        consume_cmdline(spec)


@FUZZ
@given(mutated(CMDLINE_SEEDS) | st.binary(max_size=300))
def test_load_cmdline(workdir: Path, raw: bytes) -> None:
    path = workdir / "fuzz.cmdline"
    path.write_bytes(raw)
    with bounded("cmdline.load_cmdline") as stat:
        try:
            spec = load_cmdline(str(path))
        except InputError as err:
            rejected(stat, err, str(path))
            return
        consume_cmdline(spec)


CONFIG_SEEDS = [
    b'# comment\n[device "n1"]\n  driver = "virtio-net"\n  netdev = "h"\n\n'
    b'[netdev "h"]\n  type = "tap"\n[drive]\n  if = "floppy"\n[machine]\n  type = "q35"\n'
]


@FUZZ
@given(mutated(CONFIG_SEEDS) | st.binary(max_size=300))
def test_readconfig(workdir: Path, raw: bytes) -> None:
    """A -readconfig file is read, or recorded as unreadable: never an exception."""
    (workdir / "fuzz.cfg").write_bytes(raw)
    with bounded("cmdline.readconfig"):
        spec = parse_cmdline(
            "qemu-system-x86_64 -readconfig fuzz.cfg", "fuzz.cmdline", base_dir=str(workdir)
        )
        consume_cmdline(spec)


# --------------------------------------------------------------------------- facts

JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
KEYS = st.sampled_from(
    ["error", "release", "arch", "id", "vendor", "flags", "present", "usable", "capabilities",
     "modules", "binary", "version", "machines", "cpu_models", "kvm", "host_cpu", "props",
     "model", "name", "alias", "is_default", "alias_of", "unavailable_features", "enabled",
     "schema", "host", "deprecated", "typename", "static"]
) | st.text(max_size=6)  # fmt: skip
VALUE = st.recursive(
    JSON_LEAF | st.sampled_from(["q35", "pc", "7.2.0", "10.0", "host", SCHEMA, "x86_64"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


@st.composite
def mutated_doc(draw: st.DrawFn) -> Any:
    """A real facts document with 1-3 keys or items, at random depths, deleted or replaced."""
    doc = json.loads(draw(st.sampled_from(HOST_BYTES)))
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, (dict, list)) and child and draw(st.booleans()):
                node = child
                continue
            if draw(st.booleans()):
                del node[key]
            else:
                node[key] = draw(VALUE)
            break
    return doc


def consume_facts(facts: Facts) -> None:
    """What ``pair`` and ``host`` do with accepted facts: nothing but MigcheckError."""
    for vm in PROBE_GUESTS:
        judge(vm, facts, HOSTS[0])
        judge(vm, HOSTS[-1], facts)
    with suppress(MigcheckError):
        json.dumps(host_summary(facts, shipped_catalog()))


@FUZZ
@given(mutated_doc() | VALUE)
def test_validate(doc: Any) -> None:
    with bounded("facts.validate") as stat:
        try:
            checked = validate(doc, "fuzz.json")
        except FactsError as err:
            rejected(stat, err, "fuzz.json")
            return
        assert checked is doc
        consume_facts(Facts(checked, "fuzz.json"))


@FUZZ
@given(mutated(HOST_BYTES) | mutated_doc().map(lambda d: json.dumps(d).encode()))
def test_load_facts(workdir: Path, raw: bytes) -> None:
    path = workdir / "fuzz.json"
    path.write_bytes(raw)
    with bounded("facts.load_facts") as stat:
        try:
            facts = load_facts(path)
        except InputError as err:  # FactsError, or InputError for an unreadable file
            rejected(stat, err, str(path))
            return
        consume_facts(facts)


@FUZZ
@given(
    as_text(mutated(HOST_BYTES))
    | mutated_doc().map(json.dumps)
    | st.text(max_size=200)
    | st.sampled_from(["", " ", "[" * 100_000, "9" * 100_000, '{"schema":' * 50_000])
)
def test_facts_from_probe_output(output: str) -> None:
    with bounded("facts.facts_from_probe_output") as stat:
        try:
            facts = facts_from_probe_output(output, "hv-fuzz")
        except HostError as err:
            rejected(stat, err, "hv-fuzz")
            assert err.host == "hv-fuzz" and err.exit_code == 3  # unknown, never safe
            return
        consume_facts(facts)


# --------------------------------------------------------------------------- probe parsers

CPUINFO_X86 = "\n".join(
    f"processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
    f"model name\t: AMD EPYC 9654\nstepping\t: 1\nmicrocode\t: 0xa101148\n"
    f"flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep sse sse2 avx avx2 svm\n"
    for n in range(4)
)
CPUINFO_ARM = "\n".join(
    f"processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1\n"
    f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\n"
    for n in range(2)
)
OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
    "VERSION=\"12 (bookworm)\"\nID=debian\nID_LIKE='rhel fedora'\n# comment\nVARIANT_ID=x\n"
)
PROBE_SEEDS = [CPUINFO_X86.encode(), CPUINFO_ARM.encode(), OS_RELEASE.encode()]
for _real in ("/proc/cpuinfo", "/etc/os-release"):
    if os.path.exists(_real):
        PROBE_SEEDS.append(Path(_real).read_bytes()[:65536])
PROBE_TEXT = as_text(mutated(PROBE_SEEDS)) | st.text(max_size=300)


@FUZZ
@given(PROBE_TEXT)
def test_parse_cpuinfo(text: str) -> None:
    with bounded("probe.parse_cpuinfo") as stat:
        try:
            got = probe.parse_cpuinfo(text)
        except ValueError:
            stat.rejected += 1
            return
        assert got["count"] >= 1 and got["flags"] == sorted(set(got["flags"]))
        json.dumps(got)


@FUZZ
@given(PROBE_TEXT)
def test_parse_os_release(text: str) -> None:
    with bounded("probe.parse_os_release") as stat:
        try:
            got = probe.parse_os_release(text)
        except ValueError:
            stat.rejected += 1
            return
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in got.items())


# --------------------------------------------------------------------------- catalog, blockers

PLATFORMS = ROOT / "migcheck" / "catalog" / "data"


class CatalogCopy:
    """A writable copy of platforms/ and the shipped content of each file, to restore."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.originals = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.toml")}

    def __repr__(self) -> str:  # hypothesis prints fixtures; the catalog is 200 KiB
        return f"CatalogCopy({str(self.root)!r})"


@pytest.fixture(scope="module")
def catalog_copy(workdir: Path) -> CatalogCopy:
    root = workdir / "platforms"
    shutil.copytree(PLATFORMS, root)
    return CatalogCopy(root)


def consume_catalog(catalog: Any) -> None:
    for vm in PROBE_GUESTS:
        judge(vm, HOSTS[0], HOSTS[-1], catalog)
        judge(vm, HOSTS[-1], HOSTS[0], catalog)


@FUZZ
@given(st.data())
def test_load_catalog(catalog_copy: CatalogCopy, data: st.DataObject) -> None:
    root, originals = catalog_copy.root, catalog_copy.originals
    names = sorted(originals)
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    try:
        for name in chosen:
            path = root / name
            how = data.draw(st.sampled_from(["toml", "toml", "bytes", "delete", "swap"]))
            if how == "delete":
                path.unlink()
            elif how == "swap":
                path.write_bytes(originals[data.draw(st.sampled_from(names))])
            elif how == "bytes":
                path.write_bytes(data.draw(mutated([originals[name]])))
            else:
                path.write_bytes(data.draw(toml_mutated(originals[name])))
        with bounded("catalog.load_catalog") as stat:
            try:
                catalog = load_catalog(root)
            except InputError as err:  # CatalogError, or unknown platform
                rejected(stat, err, "platform")
                return
            consume_catalog(catalog)
    finally:
        for name in chosen:
            (root / name).write_bytes(originals[name])


BLOCKERS = PLATFORMS / "qemu" / "blockers.toml"


@FUZZ
@given(toml_mutated(BLOCKERS.read_bytes()) | mutated([BLOCKERS.read_bytes()]))
def test_load_blockers(workdir: Path, raw: bytes) -> None:
    path = workdir / "blockers.toml"
    path.write_bytes(raw)
    with bounded("blockers.load_blockers") as stat:
        try:
            blockers = load_blockers(path)
        except CatalogError as err:
            rejected(stat, err, str(path))
            return
        for vm in PROBE_GUESTS:
            for qemu in (None, (7, 2, 0), (10, 0, 0)):
                with suppress(MigcheckError):
                    triggered(vm, blockers, qemu)


# --------------------------------------------------------------------------- inventories

INVENTORY_SEEDS = [
    b"# plain\nhv01\nalias root@hv02:2222\n[web]\nhv03\nlocal\nfacts.json\n",
    b"[web]\nhv[01:03] ansible_user=root\nweb9 ansible_host=10.0.0.9 ansible_port=2222\n"
    b"[db:children]\nweb\n[db:vars]\nansible_user='admin'\n[all:vars]\nx=\"1\"\n"
    b"h ansible_connection=local\n[db]\n",
    b"---\nall:\n  hosts:\n    hv01:\n      ansible_host: 10.0.0.1\n    hv[02:04]:\n"
    b"  children:\n    web:\n      hosts:\n        w1: {ansible_port: 22}\n      vars:\n"
    b"        ansible_user: root\n    db: &db\n      hosts: {d1: null}\n    db2: *db\n",
    b"all:\n  children:\n    a: {children: {b: {children: {c: {hosts: {x: ~}}}}}}\n",
]
INVENTORY_TEXT = mutated(INVENTORY_SEEDS) | st.text(max_size=300).map(str.encode)


@FUZZ
@given(INVENTORY_TEXT, st.sampled_from(["hosts", "hosts.ini", "hosts.yml", "hosts.yaml"]))
def test_load_inventory(workdir: Path, raw: bytes, name: str) -> None:
    path = workdir / name
    path.write_bytes(raw)
    with bounded("inventory.load_inventory") as stat:
        try:
            inventory = load_inventory(str(path))
        except InputError as err:
            rejected(stat, err, str(path))
            assert "\n" not in str(err)
            return
        assert isinstance(inventory, Inventory)
        names = [h.name for h in inventory.hosts]
        assert len(names) == len(set(names))
        for pattern in ["all", *list(inventory.groups)[:5], *names[:5], "nope"]:
            with suppress(InputError):
                inventory.select([pattern])


# --------------------------------------------------------------------------- large inputs


def _measure(name: str, call: Callable[[], object], size: int, per_byte: int) -> None:
    """Run ``call`` under the wall bound; its traced peak must stay under per_byte x size
    plus 64 MiB, and it may raise only a MigcheckError or ValueError (the probe's)."""
    cap = per_byte * size + 64 * MIB
    tracemalloc.start()
    start = time.perf_counter()
    try:
        # tracemalloc keeps a record per live block, so RSS may reach about twice the cap.
        with (
            bounded(name.split(":")[0] + " (large)", wall=120.0, rss_cap=2 * cap),
            suppress(MigcheckError, ValueError),
        ):
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    LARGE_PEAKS[name] = (size, peak, time.perf_counter() - start)
    assert peak <= cap, f"{name}: {peak >> 20} MiB traced for {size >> 10} KiB of input"


# About 1 MiB per input for make test; make fuzz (1,000+ examples) makes them 8x larger.
SCALE = 8 if EXAMPLES >= 1000 else 1
LARGE: dict[str, Callable[[Path], tuple[Callable[[], object], int]]] = {}


def large(name: str) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        LARGE[name] = fn
        return fn

    return register


@large("cmdline.parse_cmdline: 16,000 devices per scale")
def _(tmp: Path):
    device = "-device virtio-net-pci,id=n{0},netdev=h{0},mac=52:54:00:00:00:01 "
    text = "qemu " + "".join(device.format(i) for i in range(16_000 * SCALE))
    return (lambda: parse_cmdline(text, "big").to_json()), len(text)


@large("cmdline.parse_cmdline: one word, 1 MiB per scale")
def _(tmp: Path):
    text = "qemu -machine " + "a," * (MIB // 2 * SCALE)
    return (lambda: parse_cmdline(text, "big")), len(text)


@large("cmdline.parse_cmdline: JSON device, 60,000 props per scale")
def _(tmp: Path):
    body = ",".join(f'"p{i}":"{i}"' for i in range(60_000 * SCALE))
    text = 'qemu -device \'{"driver":"x",' + body + "}'"
    return (lambda: parse_cmdline(text, "big").to_json()), len(text)


@large("cmdline.parse_cmdline: JSON nested 100,000 deep")
def _(tmp: Path):
    text = "qemu -device '" + "[" * 100_000 + "'"
    return (lambda: parse_cmdline(text, "big")), len(text)


@large("facts.load_facts: empty objects, 1 MiB per scale")
def _(tmp: Path):
    path = tmp / "objects.json"
    path.write_text("[" + "{}," * (MIB // 3 * SCALE) + "{}]")
    return (lambda: load_facts(path)), path.stat().st_size


@large("facts.load_facts: over MAX_FACTS_BYTES, sparse")
def _(tmp: Path):
    path = tmp / "huge.json"
    with path.open("wb") as f:
        f.truncate(MAX_FACTS_BYTES + 1)  # refused by size before it is read
    return (lambda: load_facts(path)), 0


@large("facts.facts_from_probe_output: 100,000 flags per scale")
def _(tmp: Path):
    doc = json.loads(HOST_BYTES[0])
    doc["cpu"]["flags"] = [f"flag{i}" for i in range(100_000 * SCALE)]
    text = json.dumps(doc)
    return (lambda: facts_from_probe_output(text, "hv")), len(text)


@large("probe.parse_cpuinfo: 1,024 processors per scale")
def _(tmp: Path):
    text = "\n".join([CPUINFO_X86] * 256 * SCALE)
    return (lambda: probe.parse_cpuinfo(text)), len(text)


@large("probe.parse_os_release: 100,000 lines per scale")
def _(tmp: Path):
    text = "".join(f'K{i}="v"\n' for i in range(100_000 * SCALE))
    return (lambda: probe.parse_os_release(text)), len(text)


@large("inventory.load_inventory: 10,000 hosts per scale")
def _(tmp: Path):
    path = tmp / "hosts"
    path.write_text("".join(f"hv{i:06d}.example.org\n" for i in range(10_000 * SCALE)))
    return (lambda: load_inventory(str(path))), path.stat().st_size


@large("inventory.load_inventory: range bomb")
def _(tmp: Path):
    path = tmp / "bomb.ini"
    path.write_text("[all]\nh[0:99999999][0:99999999]\n")
    return (lambda: load_inventory(str(path))), 1


@large("inventory.load_inventory: YAML alias bomb")
def _(tmp: Path):
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines += ["all:", "  vars:", "    bomb: *a8", "  hosts:", "    h1:", "      v: *a8"]
    path = tmp / "bomb.yml"
    path.write_text("\n".join(lines) + "\n")
    return (lambda: load_inventory(str(path))), path.stat().st_size


@large("catalog.load_catalog: 1 MiB note, 2,000 kernel patterns per scale")
def _(tmp: Path):
    root = tmp / "platforms"
    shutil.copytree(PLATFORMS, root)
    distro = root / "distros" / "linux-debian-12.toml"
    text = distro.read_text()
    patterns = ", ".join(f'"^6\\\\.1\\\\.{i}-"' for i in range(2_000 * SCALE))
    text = text.replace("kernel = [", f"kernel = [{patterns}, ", 1)
    distro.write_text(text + f'\nnote2 = "{"x" * (MIB * SCALE)}"\n')
    return (lambda: consume_catalog(load_catalog(root))), distro.stat().st_size


@large("blockers.load_blockers: 1,000 entries per scale")
def _(tmp: Path):
    entry = (
        '[[blocker]]\nid = "b{0}"\ntitle = "t"\nmatch = {{ device = ["d{0}"] }}\n'
        'message = "m"\nfix = "f"\n[[blocker.sources]]\ntitle = "s"\n'
    )
    path = tmp / "blockers.toml"
    path.write_text("".join(entry.format(i) for i in range(1_000 * SCALE)))

    def call() -> None:
        blockers = load_blockers(path)
        for vm in PROBE_GUESTS:
            triggered(vm, blockers)

    return call, path.stat().st_size


@pytest.mark.parametrize("name", sorted(LARGE))
def test_large_inputs_have_bounded_memory_and_time(name: str, tmp_path: Path) -> None:
    call, size = LARGE[name](tmp_path)
    # Python objects cost up to ~25x the JSON or text they come from (an empty dict is 64
    # bytes for the 3 bytes of "{},"); 40x leaves room without hiding a quadratic blow-up.
    _measure(name, call, size, per_byte=40)


# --------------------------------------------------------------------------- redaction


@FUZZ
@given(CMDLINE_TEXT)
def test_redact_text(text: str) -> None:
    with bounded("redact.redact_text"):
        out = redact_text(text)
    assert isinstance(out, str)
    assert redact_text(out) == out  # redacting twice changes nothing


# --------------------------------------------------------------------------- terminal safety


@pytest.mark.parametrize("command", ["pair", "host"])
def test_host_strings_cannot_drive_the_terminal(tmp_path: Path, command: str) -> None:
    from typer.testing import CliRunner

    from migcheck.cli import app

    doc = json.loads(HOST_BYTES[0])
    doc["kernel"]["release"] = "6.1.0\x1b]0;owned\x07\x1b[2K\x1b[1A\x1b[32mSAFE\x1b[0m"
    doc["qemu"]["version"] += "\x1b[31m"  # still "a version": only the prefix is parsed
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps(doc))
    args = {
        "pair": ["pair", str(hostile), str(HOST_FILES[0]), "-c", str(CMDLINE_FILES[0])],
        "host": ["host", str(hostile)],
    }[command]
    result = CliRunner().invoke(app, args, env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code in (0, 1, 3), result.stderr
    assert "\x1b" not in result.stdout + result.stderr
