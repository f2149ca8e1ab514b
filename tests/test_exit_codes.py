"""The gate's answers (DESIGN.md, README, --help): 0 only when something was judged and
all of it is safe; 1 on anything unsafe; 3 on unknown or nothing judged; 2 for bad input.
Under --assume, only what got worse counts."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from qemudata import fixture_facts
from test_fleet import GUESTS, TRIXIE, noble_fleet, whatif
from typer.testing import CliRunner

from migcheck.cli import app
from migcheck.commands import fleet_exit_code
from migcheck.facts import save_facts
from migcheck.fleet import Change
from migcheck.verdict import Verdict

runner = CliRunner()
RANK = {Verdict.SAFE: 0, Verdict.UNKNOWN: 1, Verdict.UNSAFE: 2}


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.mark.parametrize(
    ("before", "after"), list(itertools.product([*Verdict, None], [*Verdict, None]))
)
def test_every_cell_that_got_worse_is_a_regression(before, after):
    change = Change(0, ("a",), ("b",), before, after, ())
    worse = before is not None and RANK.get(after, 2) > RANK[before]
    assert change.regression is worse
    assert change.became_unsafe is (worse and after in (Verdict.UNSAFE, None))


def test_unknown_to_unsafe_and_safe_to_unknown_are_listed_in_the_report():
    from migcheck.report.fleet import render_json

    _before, after, _ = whatif(noble_fleet(2), GUESTS["q35.cmdline"], [])
    changes = [
        Change(0, ("hv0",), ("hv1",), Verdict.UNKNOWN, Verdict.UNSAFE, ("x",)),
        Change(0, ("hv1",), ("hv0",), Verdict.SAFE, Verdict.UNKNOWN, ("y",)),
        Change(0, ("hv1",), ("hv1",), Verdict.UNSAFE, Verdict.UNKNOWN, ("z",)),  # better
    ]
    doc = json.loads(render_json(after, changes))
    listed = [c for c in doc["whatif"]["changes"] if c["regression"]]
    assert len(listed) == 2 and doc["whatif"]["regressions"] == 2


def test_assume_exit_code_follows_the_regressions_only():
    # An upgrade of every host: pinned guests stay, only what the assumed build cannot tell
    # becomes unknown (safe -> unknown, nothing unsafe): 3, not 1 and not 0.
    _b, after, changes = whatif(
        noble_fleet(), "-machine pc-q35-10.0 -accel kvm -cpu pentium3", ["all:qemu=10.2.0"]
    )
    assert any(c.regression for c in changes)
    assert not any(c.became_unsafe for c in changes)
    assert fleet_exit_code(after, changes) == 3
    # A kernel downgrade strands the USO guest: became unsafe, 1.
    _b, after, changes = whatif(noble_fleet(), GUESTS["uso.cmdline"], ["hv1:kernel=6.1.0"])
    assert fleet_exit_code(after, changes) == 1
    # Nothing got worse: 0.
    _b, after, changes = whatif(noble_fleet(), GUESTS["uso.cmdline"], ["hv1:kernel=6.12.0"])
    assert not [c for c in changes if c.regression]
    assert fleet_exit_code(after, changes) == 0


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, facts in noble_fleet(2).items():
        p = tmp_path / f"{name}.json"
        save_facts(facts, p)
        out[name] = str(p)
    doc = json.loads(Path(out["hv0"]).read_text())
    doc["host"]["name"] = "nomachines"
    doc["qemu"]["machines"] = []
    (tmp_path / "nomachines.json").write_text(json.dumps(doc))
    out["nomachines"] = str(tmp_path / "nomachines.json")
    cmd = tmp_path / "q35.cmdline"
    cmd.write_text(GUESTS["q35.cmdline"])
    out["cmdline"] = str(cmd)
    return out


def test_two_good_hosts_are_0(files):  # the control for the 3s below
    r = run("fleet", files["hv0"], files["hv1"], "-c", files["cmdline"])
    assert r.exit_code == 0, r.stdout


def test_a_one_host_fleet_is_3(files):
    r = run("fleet", files["hv0"], "-c", files["cmdline"])
    assert r.exit_code == 3, r.stdout


def test_a_fleet_with_nothing_judged_is_3(files):
    r = run("fleet", "nohost-a.invalid", "nohost-b.invalid", "-c", files["cmdline"],
            "--timeout", "5")  # fmt: skip
    assert r.exit_code == 3, r.stdout


def test_hosts_with_implausible_facts_are_3(files):
    r = run("fleet", files["hv0"], files["nomachines"], "-c", files["cmdline"], "-f", "json")
    assert r.exit_code == 3, r.stdout
    assert "no machine types" in r.stdout
    r = run("fleet", files["hv0"], files["hv1"], files["nomachines"], "-c", files["cmdline"])
    assert r.exit_code == 3, r.stdout  # two good hosts do not hide the third


def test_bad_input_is_2(files):
    assert run("fleet", files["hv0"], files["hv1"], "-c", "/nonexistent.cmdline").exit_code == 2


def test_help_and_readme_state_the_table():
    help_text = run("--help").stdout
    for needle in ("0 safe", "1 unsafe", "2 bad input", "3 unknown", "nothing judged",
                   "fleet --assume: 1 if any cell became unsafe"):  # fmt: skip
        assert needle in help_text, needle
    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    for needle in ("| 0 | safe", "| 1 | unsafe", "| 2 | bad input", "| 3 | unknown",
                   "or nothing judged", "follows the regressions only"):  # fmt: skip
        assert needle in readme, needle


def test_fixture_trixie_is_plausible():  # the helper must not flag real captures
    from migcheck.commands import implausible

    assert implausible(fixture_facts(TRIXIE)) is None
