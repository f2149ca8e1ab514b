"""What an operator and a CI job see (issue 24 sections 5 and 6): report files by extension,
a closed pipe, folded passes, one combined verdict, fixes that can be copied, clean help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from qemudata import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
BOOKWORM = str(FIXTURES / "hosts" / "debian12-qemu7.2-epyc-pvm.json")
TRIXIE = str(FIXTURES / "hosts" / "debian13-qemu10.0-epyc-pvm.json")
CMDLINE = str(FIXTURES / "cmdlines" / "web01-q35.cmdline")


def migcheck(*args: str, columns: int = 80, **kw) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "migcheck.entry", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        **kw,
    )


def test_repeated_output_files_take_their_format_from_the_extension(tmp_path: Path) -> None:
    files = [tmp_path / n for n in ("gate.xml", "summary.md", "result.json")]
    args = [a for f in files for a in ("-o", str(f))]
    res = migcheck("pair", TRIXIE, BOOKWORM, "-c", CMDLINE, *args)
    assert res.returncode == 1, res.stderr
    assert res.stdout.startswith("UNSAFE")  # the table still reaches the log
    assert ET.parse(files[0]).getroot().tag in ("testsuites", "testsuite")
    assert files[1].read_text().lstrip().startswith("#") or "|" in files[1].read_text()
    assert json.loads(files[2].read_text())["verdict"] == "unsafe"


def test_fleet_writes_html_and_junit_in_one_run(tmp_path: Path) -> None:
    html, xml = tmp_path / "report.html", tmp_path / "gate.xml"
    res = migcheck("fleet", TRIXIE, BOOKWORM, "-c", CMDLINE, "-o", str(html), "-o", str(xml))
    assert res.returncode in (0, 1, 3), res.stderr
    assert html.read_text().lstrip().lower().startswith("<!doctype html")
    ET.parse(xml)


def test_output_extension_a_command_cannot_write_is_exit_2(tmp_path: Path) -> None:
    res = migcheck("pair", TRIXIE, BOOKWORM, "-c", CMDLINE, "-o", str(tmp_path / "r.html"))
    assert res.returncode == 2
    assert "cannot write" in res.stderr and ".json (json)" in res.stderr
    assert not (tmp_path / "r.html").exists()


def test_old_format_and_output_spelling_still_writes_only_the_file(tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = migcheck("fleet", TRIXIE, BOOKWORM, "-c", CMDLINE, "-f", "json", "-o", str(out))
    assert res.stdout == ""
    assert isinstance(json.loads(out.read_text()), dict)


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_closed_pipe_keeps_the_verdicts_exit_code(fmt: str) -> None:
    """``migcheck pair ... | head -1``: the reader leaves early; the exit code is still 1."""
    argv = [sys.executable, "-m", "migcheck.entry", "pair", TRIXIE, BOOKWORM, "-c", CMDLINE]
    argv += ["-f", fmt, "-v"]
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    proc.stdout.read(1)
    proc.stdout.close()  # like head: read a little, then go away
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_passes_are_folded_unless_verbose() -> None:
    res = migcheck("pair", TRIXIE, BOOKWORM, "-c", CMDLINE)
    lines = res.stdout.splitlines()
    folded = [line for line in lines if "other checks passed" in line]
    assert len(folded) == 1
    assert " pass " not in res.stdout.split("other checks passed")[0]  # no pass rows above
    verbose = migcheck("pair", TRIXIE, BOOKWORM, "-c", CMDLINE, "-v")
    assert "other checks passed" not in verbose.stdout
    assert verbose.stdout.count(" pass ") >= int(folded[0].split()[1])


def test_failures_come_first() -> None:
    res = migcheck("pair", TRIXIE, BOOKWORM, "-c", CMDLINE, "-v", columns=200)
    rows = [line.split("│")[2].strip() for line in res.stdout.splitlines() if "│" in line]
    results = [r for r in rows if r in ("fail", "unknown", "warn", "pass")]
    order = {"fail": 0, "unknown": 1, "warn": 2, "pass": 3}
    assert results == sorted(results, key=order.__getitem__)
    assert results[0] == "fail"


def test_both_ways_ends_with_one_combined_verdict() -> None:
    res = migcheck("pair", TRIXIE, BOOKWORM, "-c", CMDLINE, "--both-ways", columns=200)
    last = res.stdout.rstrip().splitlines()[-1]
    assert last.startswith("BOTH WAYS UNSAFE")
    assert "hv-trixie -> hv-bookworm: unsafe" in last and "hv-bookworm -> hv-trixie" in last


@pytest.mark.parametrize("columns", [80, 200])
def test_fixes_are_whole_lines_at_any_width(columns: int) -> None:
    """Every fix is printed on one line (the terminal wraps it for display): a copied fix
    is the exact text, never cut mid-option, never shortened."""
    res = migcheck("pair", TRIXIE, BOOKWORM, "-c", CMDLINE, "-f", "json")
    fixes = [c["fix"] for c in json.loads(res.stdout)["checks"] if c.get("fix")]
    assert fixes
    table = migcheck("pair", TRIXIE, BOOKWORM, "-c", CMDLINE, columns=columns).stdout
    lines = table.splitlines()
    for fix in fixes:
        assert any(line.endswith(fix) for line in lines), fix
        assert "..." not in fix
    assert all(len(line) <= columns for line in lines if "│" in line or "┃" in line)


@pytest.mark.parametrize("command", ["pair", "fleet", "gather", "portable", "host"])
def test_help_has_no_stray_backslashes(command: str) -> None:
    res = migcheck(command, "--help")
    assert res.returncode == 0
    assert "\\[" not in res.stdout, res.stdout
    short = migcheck(command, "-h")
    assert short.stdout == res.stdout


@pytest.mark.parametrize("columns", [80, 200])
def test_gather_summary_fits_and_keeps_the_host(columns: int, tmp_path: Path) -> None:
    import shutil

    name = "hypervisor-rack12-bookworm.example.net.json"
    shutil.copy(BOOKWORM, tmp_path / name)
    shutil.copytree(Path(BOOKWORM).parent / "qemu-builds", tmp_path / "qemu-builds")
    res = migcheck("gather", str(tmp_path / name), "--out-dir", str(tmp_path / "out"),
                   columns=columns)  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert all(len(line) <= columns for line in lines)
    assert "seconds" in res.stderr  # no column cropped away
    cells = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert name in cells  # the host name is whole, folded at most


def _fleet_hosts(tmp_path: Path) -> dict[str, str]:
    """The two captures, and hv-trixie's capture again as a second host of its class."""
    doc = json.loads(Path(TRIXIE).read_text())
    doc["host"]["name"] = "hv-trixie2"
    twin = tmp_path / "hv-trixie2.json"
    twin.write_text(json.dumps(doc))
    import shutil

    shutil.copytree(Path(TRIXIE).parent / "qemu-builds", tmp_path / "qemu-builds")
    return {"trixie": TRIXIE, "bookworm": BOOKWORM, "trixie2": str(twin)}


FLEET_CASES = {
    # name: (hosts, extra args, exit code, the last line starts with)
    "unsafe": (
        ("trixie", "bookworm", "trixie2"),
        (),
        1,
        "UNSAFE  fleet: 4 unsafe, 0 unknown, 2 safe",
    ),
    "safe": (("trixie", "trixie2"), (), 0, "SAFE  fleet: 0 unsafe, 0 unknown, 2 safe"),
    "nothing judged": (("bookworm",), (), 3, "UNKNOWN  fleet: nothing judged"),
    # What-if follows the regressions: the fleet after the change is still unsafe, but
    # the change breaks nothing, so the exit code (and the last line) say safe.
    "what-if": (
        ("trixie", "bookworm"),
        ("--assume", "hv-trixie:kernel=6.18.44"),
        0,
        "SAFE  what-if: 0 regressions",
    ),
}


@pytest.mark.parametrize("case", FLEET_CASES, ids=list(FLEET_CASES))
@pytest.mark.parametrize("columns", [80, 200])
def test_fleet_table_ends_with_the_verdict_its_exit_code_states(
    case: str, columns: int, tmp_path: Path
) -> None:
    names, extra, code, last = FLEET_CASES[case]
    hosts = _fleet_hosts(tmp_path)
    res = migcheck("fleet", *(hosts[n] for n in names), "-c", CMDLINE, *extra, columns=columns)
    assert res.returncode == code, res.stderr
    lines = res.stdout.rstrip("\n").splitlines()
    assert lines[-1].startswith(last), lines[-1]
    assert len(lines[-1]) <= columns  # one line, not wrapped away
    verdict = json.loads(
        migcheck("fleet", *(hosts[n] for n in names), "-c", CMDLINE, *extra, "-f", "json").stdout
    )
    if not extra:  # without --assume the JSON verdict is the exit code's, too
        assert verdict["verdict"] == last.split()[0].lower()
    assert all(len(line) <= columns and line == line.rstrip() for line in lines), res.stdout
    assert not lines[0].startswith(("SAFE", "UNSAFE", "UNKNOWN"))  # one verdict line: the last
    headings = [line for line in lines if line.startswith("guest ")]
    assert headings == ["guest web01-q35.cmdline: source class (rows) -> destination (columns)"]


def test_fleet_counts_are_guest_migrations_between_host_pairs(tmp_path: Path) -> None:
    hosts = _fleet_hosts(tmp_path)
    res = migcheck("fleet", *hosts.values(), "-c", CMDLINE, "-f", "json")
    doc = json.loads(res.stdout)
    # 3 hosts: 6 ordered pairs; hv-trixie <-> hv-trixie2 safe, the 4 with hv-bookworm not.
    assert doc["counts"] == {"safe": 2, "unsafe": 4, "unknown": 0, "cannot-run": 0}


@pytest.mark.parametrize("columns", [80, 200])
def test_pair_footer_breaks_between_parts_only(columns: int) -> None:
    """The hosts' footer was cut as "(kernel \\n6.18...": a line ends where a part ends, never
    with a space, and "(kernel X, QEMU Y)" stays whole."""
    res = migcheck("pair", TRIXIE, BOOKWORM, "-c", CMDLINE, columns=columns)
    lines = res.stdout.splitlines()
    assert all(line == line.rstrip() for line in lines)
    kernel = [line for line in lines if "(kernel" in line]
    assert len(kernel) == 2 and all(line.rstrip().endswith(")") for line in kernel)
    assert all("QEMU" in line for line in kernel)


@pytest.mark.parametrize("columns", [80, 200])
def test_pair_table_repeats_its_verdict_last(columns: int) -> None:
    """A table taller than the terminal scrolls the first line away: the verdict is also
    the last line. A verdict with nothing to show (all passed) is said once."""
    res = migcheck("pair", TRIXIE, BOOKWORM, "-c", CMDLINE, columns=columns)
    lines = res.stdout.rstrip("\n").splitlines()
    assert lines[0] == lines[-1]
    assert lines[-1].startswith("UNSAFE  hv-trixie -> hv-bookworm:")
    pinned = str(FIXTURES / "cmdlines" / "web01-pinned.cmdline")
    safe = migcheck("pair", BOOKWORM, TRIXIE, "-c", pinned, columns=columns)
    assert safe.returncode == 0, safe.stdout
    assert [line for line in safe.stdout.splitlines() if line.startswith("SAFE")] == [
        "SAFE  hv-bookworm -> hv-trixie: can live-migrate (0 warnings)"
    ]
