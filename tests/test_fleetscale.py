"""Fleet scale (issue 25): streaming load, the digest cache, partial results on Ctrl-C.

The fleets are made by bench/make_fleet.py from the real captures in fixtures/hosts, the
same generator the benchmarks use.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migcheck.catalog import shipped_catalog
from migcheck.cmdline import parse_cmdline
from migcheck.facts import FactsError, load_facts
from migcheck.fleet import evaluate, fingerprint
from migcheck.fleetload import DigestCache, SectionReader, load_fleet
from migcheck.pair import check_pair

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import make_fleet  # noqa: E402

GUESTS = [
    (ROOT / "fixtures/cmdlines/web01-q35.cmdline").read_text(),
    "-machine q35 -accel kvm -cpu EPYC-v4 -m 1024",
]


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fleet") / "f"
    make_fleet.make_files(out, 64)  # two hosts of each of the 32 classes
    return out


def _files(d: Path) -> list[str]:
    return sorted(str(p) for p in d.glob("*.json"))


def test_streamed_facts_equal_load_facts(fleet_dir: Path) -> None:
    reader = SectionReader()
    for path in _files(fleet_dir)[:10]:
        a, b = reader.load(path), load_facts(path)
        assert a.doc == b.doc and a.base_dir == b.base_dir and a.origin == b.origin


def test_streamed_reader_refuses_what_load_facts_refuses(tmp_path: Path, fleet_dir: Path) -> None:
    reader = SectionReader()
    good = _files(fleet_dir)[0]
    reader.load(good)  # its sections are now known good
    doc = json.loads(Path(good).read_text())
    doc["kvm"]["capabilities"]["bogus"] = "not an int"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc, indent=1, sort_keys=True))
    with pytest.raises(FactsError) as streamed:
        reader.load(str(bad))
    with pytest.raises(FactsError) as whole:
        load_facts(bad)
    assert str(streamed.value) == str(whole.value)
    # A control character is scrubbed exactly as load_facts does.
    doc = json.loads(Path(good).read_text())
    doc["kernel"]["release"] = "6.1\x1b[31m"
    esc = tmp_path / "esc.json"
    esc.write_text(json.dumps(doc, indent=1, sort_keys=True))
    assert reader.load(str(esc)).doc == load_facts(esc).doc


def test_grouping_and_verdicts_equal_naive_all_pairs(fleet_dir: Path, tmp_path: Path) -> None:
    catalog = shipped_catalog()
    guests = [parse_cmdline(t, f"g{i}") for i, t in enumerate(GUESTS)]
    paths = _files(fleet_dir)
    loaded = load_fleet([(None, p) for p in paths], cache=DigestCache(tmp_path / "d"))
    streamed = evaluate(guests, loaded.hosts, catalog, fingerprints=loaded.fingerprints)
    full = {f.name: f for f in (load_facts(p) for p in paths)}
    assert set(full) == set(loaded.hosts)
    assert len(streamed.classes) == 32
    # Same classes as fingerprinting every fully loaded host (the code before streaming).
    plain = evaluate(guests, full, catalog)
    assert streamed.host_class == plain.host_class
    for name, facts in full.items():
        assert loaded.fingerprints[name] == fingerprint(facts)
    # Every ordered pair judged on its own facts agrees with its class cell.
    names = sorted(full)
    for g, vm in enumerate(guests):
        for a in names:
            for b in names:
                if a == b:
                    continue
                grouped = streamed.migration_verdict(g, a, b)
                if grouped is None:  # the guest cannot start on one of them
                    ca, cb = streamed.host_class[a], streamed.host_class[b]
                    assert False in (streamed.runnable[(g, ca)], streamed.runnable[(g, cb)])
                    continue
                assert grouped == check_pair(vm, full[a], full[b], catalog=catalog).verdict
    # The warm run (every digest from the cache) gives the same classes.
    again = load_fleet([(None, p) for p in paths], cache=DigestCache(tmp_path / "d"))
    assert again.cached == len(paths)
    assert again.read == len(streamed.classes)  # only one file per class is parsed
    assert again.fingerprints == loaded.fingerprints


def test_digest_cache_never_reuses_a_stale_digest(tmp_path: Path, fleet_dir: Path) -> None:
    src = _files(fleet_dir)[0]
    path = tmp_path / "h.json"
    text = Path(src).read_text()
    path.write_text(text)
    cache_dir = tmp_path / "digests"
    first = load_fleet([(None, str(path))], cache=DigestCache(cache_dir))
    assert first.cached == 0
    warm = load_fleet([(None, str(path))], cache=DigestCache(cache_dir))
    assert warm.cached == 1 and warm.fingerprints == first.fingerprints
    # Rewrite in place: same size, another kernel (a class change), mtime put back.
    st = path.stat()
    release = json.loads(text)["kernel"]["release"]
    other = release[:-1] + ("X" if release[-1] != "X" else "Y")
    changed = text.replace(f'"release": "{release}"', f'"release": "{other}"')
    assert changed != text and len(changed) == len(text)
    time.sleep(0.01)
    with open(path, "r+") as f:  # same inode, same size
        f.write(changed)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
    )
    again = load_fleet([(None, str(path))], cache=DigestCache(cache_dir))
    assert again.cached == 0  # re-read, not answered from the cache
    assert again.fingerprints != first.fingerprints
    assert again.fingerprints == {k: fingerprint(load_facts(path)) for k in again.fingerprints}


def test_digest_cache_written_by_another_user_is_ignored(tmp_path: Path, fleet_dir: Path) -> None:
    cache_dir = tmp_path / "digests"
    path = _files(fleet_dir)[0]
    load_fleet([(None, path)], cache=DigestCache(cache_dir))
    os.chmod(cache_dir, 0o777)  # writable by others: anyone could plant digests
    assert load_fleet([(None, path)], cache=DigestCache(cache_dir)).cached == 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_ctrl_c_reports_what_was_judged(tmp_path: Path, fleet_dir: Path) -> None:
    """A real SIGINT to the CLI while it judges: what was judged, complete: false, exit 3
    (or 1 when a judged cell is unsafe), never safe."""
    guests = tmp_path / "guests"
    guests.mkdir()
    for i in range(12):  # judging takes several CPU-seconds, start-up a fraction of one
        (guests / f"g{i}.cmdline").write_text(GUESTS[i % 2])
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "migcheck.entry", "fleet", *_files(fleet_dir)]
    cmd += ["--cmdline", str(guests), "-f", "json", "--no-digest-cache"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        # A suite started in the background (`make test &`) inherits SIGINT ignored, and so
        # would the CLI: give it the default disposition an operator's terminal gives it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Interrupt once the process has spent 1.5 CPU-seconds (start-up and reading the 64 files
    # take well under one): it is judging then, however loaded the machine is.
    deadline = time.monotonic() + 120
    while _cpu_seconds(proc.pid) < 1.5 and time.monotonic() < deadline:
        assert proc.poll() is None, "the fleet finished before it could be interrupted"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    doc = json.loads(out)
    assert doc["complete"] is False
    assert doc["verdict"] != "safe"
    verdicts = {c["verdict"] for g in doc["guests"] for c in g.get("cells", [])}
    assert proc.returncode == (1 if "unsafe" in verdicts else 3), (proc.returncode, err)
    assert b"interrupted" in err


def test_from_ansible_streams_and_keeps_only_a_summary(tmp_path: Path, fleet_dir: Path) -> None:
    from migcheck.commands import gather_from_ansible

    tree = tmp_path / "tree"
    tree.mkdir()
    for i, path in enumerate(_files(fleet_dir)[:3]):
        doc = json.loads(Path(path).read_text())
        (tree / f"hv{i}").write_text(json.dumps({"rc": 0, "stdout": json.dumps(doc)}))
    outcome = gather_from_ansible(tree, tmp_path / "facts")
    assert outcome.exit_code == 0 and len(outcome.written) == 3
    for result, written in zip(outcome.results, outcome.written, strict=True):
        saved = load_facts(written)
        assert saved.machines  # the file has everything
        assert result.facts is not None and result.facts.machines is None  # memory: a summary
        assert result.facts.qemu_version == saved.qemu_version
        assert result.facts.kernel_release == saved.kernel_release


def test_cached_judges_from_the_probe_cache_without_contacting_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from migcheck.commands import fleet
    from migcheck.gather import GatherOptions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fleet" / "cache"))
    make_fleet.make_cache(tmp_path / "fleet", 40)
    inventory = tmp_path / "fleet" / "inventory.ini"
    # One more host that was never gathered: unknown, and nothing is contacted for it.
    inventory.write_text(inventory.read_text() + "never-gathered.example.net\n")
    guest = tmp_path / "vm.cmdline"
    guest.write_text(GUESTS[0])

    def no_ssh(_targets: list[str]) -> list:
        raise AssertionError("--cached must not gather")

    outcome = fleet(
        [],
        GatherOptions(),
        cmdlines=[str(guest)],
        inventory=str(inventory),
        from_cache=True,
        many=no_ssh,
    )
    result = outcome.result
    assert len(result.host_class) == 40 and len(result.classes) == 32
    assert list(result.failed_hosts) == ["never-gathered.example.net"]
    assert outcome.exit_code in (1, 3) and result.verdict.value != "safe"


@pytest.fixture(scope="module")
def cache_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 hosts (every class twice) in a probe cache, as ``gather`` leaves it."""
    out = tmp_path_factory.mktemp("cachefleet") / "f"
    old = os.environ.get("XDG_CACHE_HOME")
    try:
        make_fleet.make_cache(out, 64)
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old
    return out


def _entries(fleet: Path) -> list[Path]:
    return sorted((fleet / "cache" / "migcheck" / "facts").glob("*.json"))


def test_probe_cache_entries_read_by_section_equal_a_whole_parse(
    cache_fleet: Path, tmp_path: Path
) -> None:
    from migcheck.gather import _entry_outline, dumps_cache_entry

    reader = SectionReader()
    entries = _entries(cache_fleet)
    docs = [reader.load(str(p)).doc for p in entries]
    for path, doc in zip(entries, docs, strict=True):
        raw = path.read_bytes()
        whole = json.loads(raw)
        assert doc == whole["facts"]
        assert raw.decode() == dumps_cache_entry(whole)  # the gatherer's own layout
        outline = _entry_outline(raw)  # what --cached indexes, without parsing the facts
        assert outline["facts"]["host"] == whole["facts"]["host"]
        assert {k: outline[k] for k in outline if k != "facts"} == {
            k: whole[k] for k in whole if k != "facts"
        }
    # Hosts on one QEMU build share one parsed qemu section.
    by_build: dict[str, int] = {}
    for doc in docs:
        by_build.setdefault(doc["qemu"]["build"]["key"], id(doc["qemu"]))
        assert id(doc["qemu"]) == by_build[doc["qemu"]["build"]["key"]]
    # Entries in another layout (one line, as migcheck before this release wrote them) and
    # entries that are not ours read exactly as a whole parse says.
    whole = json.loads(entries[0].read_bytes())
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(whole, sort_keys=True))
    assert reader.load(str(compact)).doc == whole["facts"]
    assert _entry_outline(compact.read_bytes())["facts"] == whole["facts"]
    twice = tmp_path / "twice.json"  # a second "facts" member wins in JSON: parse it whole
    text = dumps_cache_entry(whole)
    twice.write_text(text[: text.rindex("}")] + ', "facts": {"schema": 1}}\n')
    with pytest.raises(FactsError):
        reader.load(str(twice))
    with pytest.raises(FactsError):
        load_facts(twice)


def test_cached_grouping_and_verdicts_equal_naive_all_pairs(
    cache_fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache form of the benchmark fleets: classes and every host pair's verdict as
    judging each pair on its own whole-parsed facts."""
    from migcheck.commands import fleet
    from migcheck.facts import Facts, validate
    from migcheck.gather import GatherOptions

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_fleet / "cache"))
    guest = cache_fleet / "vm.cmdline"
    guest.write_text(GUESTS[0])
    outcome = fleet(
        [],
        GatherOptions(),
        cmdlines=[str(guest)],
        inventory=str(cache_fleet / "inventory.ini"),
        from_cache=True,
        digest_cache=False,
    )
    result = outcome.result
    assert len(result.host_class) == 64 and len(result.classes) == 32
    catalog = shipped_catalog()
    vm = result.guests[0]
    full = {}
    for path in _entries(cache_fleet):
        entry = json.loads(path.read_bytes())
        facts = Facts(validate(entry["facts"], str(path)), str(path))
        full[facts.name] = facts
    assert set(full) == set(result.host_class)
    plain = evaluate([vm], full, catalog)
    assert sorted(sorted(c.hosts) for c in plain.classes) == sorted(
        sorted(c.hosts) for c in result.classes
    )
    for a in full:
        for b in full:
            if a == b:
                continue
            grouped = result.migration_verdict(0, a, b)
            naive = check_pair(vm, full[a], full[b], catalog=catalog)
            if grouped is None:
                ca, cb = result.host_class[a], result.host_class[b]
                assert False in (result.runnable[(0, ca)], result.runnable[(0, cb)])
                continue
            assert grouped == naive.verdict, (a, b)


def _probe_output(i: int) -> str:
    """What the probe prints on a host whose build the controller does not hold yet: its
    facts plus the build schema (about 0.5 MB), from the real captures."""
    fixtures = ROOT / "fixtures" / "hosts"
    doc = json.loads((fixtures / "debian12-qemu7.2-epyc-pvm.json").read_text())
    doc.pop("host", None)
    key = doc["qemu"]["build"]["key"]
    doc["build_schema"] = json.loads((fixtures / "qemu-builds" / f"{key}.json").read_text())
    doc["cpu"]["microcode"] = hex(0x1000065 + i)  # hosts differ a little
    return json.dumps(doc)


def _ansible_tree(tree: Path, n: int) -> Path:
    tree.mkdir()
    for i in range(n):  # as `ansible -m script --tree` writes each host's result
        out = _probe_output(i)
        result = {"changed": True, "rc": 0, "stdout": out, "stdout_lines": [out], "stderr": ""}
        (tree / f"hv{i:03d}").write_text(json.dumps(result))
    return tree


def test_from_ansible_memory_does_not_grow_with_hosts(tmp_path: Path) -> None:
    """Each host's probe output (facts and a 0.5 MB build schema) is read, written and
    dropped: what stays per host is a summary of well under 4 KB, and the build is held
    once however often it arrives."""
    import gc
    import tracemalloc

    from migcheck import build
    from migcheck.commands import gather_from_ansible

    def retained(n: int) -> tuple[int, int]:
        tree = _ansible_tree(tmp_path / f"tree{n}", n)
        build.forget_received()
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            outcome = gather_from_ansible(tree, tmp_path / f"facts{n}")
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert outcome.exit_code == 0 and len(outcome.written) == n
        return kept, len(build._parsed)

    few, parsed_few = retained(4)
    many, parsed_many = retained(24)
    assert (many - few) / 20 < 4096, (few, many)
    assert parsed_many == parsed_few  # one parsed copy of the build, not one per host
    saved = load_facts(tmp_path / "facts24" / "hv023.json")
    assert saved.build is not None and saved.machines  # the files have everything


def test_saved_facts_text_is_json_dumps_indented(fleet_dir: Path) -> None:
    from migcheck.facts import dumps_facts

    docs = [json.loads(Path(p).read_text()) for p in _files(fleet_dir)[:6]]
    docs += [
        {"a": {"x": 1}, "b": [], "c": {}, "d": "é\u2028\n", "e": 1.5, "f": None},
        {"a": {"x": True}, "b": [[], {}], "c": {"n": {"m": [1, {"k": "v"}]}}},
    ]
    for doc in docs + docs:  # twice: the second time from the memo
        assert dumps_facts(doc) == json.dumps(doc, indent=1, sort_keys=True) + "\n"


def test_cached_index_rereads_changed_entries_and_ignores_an_untrusted_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fleet --cached finds entries through an index of their identities (an unchanged
    entry is not read again); a rewritten entry is read again, and an index others could
    write is not believed."""
    from migcheck.gather import _INDEX, _targets_in, cached_facts_paths, dumps_cache_entry
    from migcheck.hosts import parse_host

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "f" / "cache"))
    make_fleet.make_cache(tmp_path / "f", 3)
    names = (tmp_path / "f" / "inventory.ini").read_text().split()[1:]
    refs = [parse_host(n) for n in names]
    first = cached_facts_paths(refs)
    assert all(p.is_file() for p in first)
    index = first[0].parent / _INDEX
    assert index.is_file() and oct(index.stat().st_mode & 0o777) == "0o600"
    # Rewritten in place (same inode), a new HOST text inside: found under it, not the old.
    entry = json.loads(first[0].read_bytes())
    entry["facts"]["host"]["target"] = "renamed.example.net"
    with open(first[0], "r+") as f:
        f.write(dumps_cache_entry(entry))
        f.truncate()
    _targets_in.cache_clear()  # as a new process would
    renamed = parse_host("renamed.example.net")
    again = cached_facts_paths([*refs, renamed])
    assert again[3] == first[0] and not again[0].is_file() and again[1:3] == first[1:3]
    # An index anyone may write is ignored: its planted targets do not count.
    planted = json.loads(index.read_text())
    for row in planted.values():
        row[5] = "planted.example.net"
    index.write_text(json.dumps(planted))
    index.chmod(0o666)
    _targets_in.cache_clear()
    assert cached_facts_paths([renamed, parse_host("planted.example.net")])[0] == first[0]
    assert not cached_facts_paths([parse_host("planted.example.net")])[0].is_file()
