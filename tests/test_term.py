"""The pair report's terminal writer (migcheck.report.term): wrapping, widths and styles."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcheck.report.term import Column, Terminal, render_table, wrap

WORDS = st.text(alphabet="abcdefghij-=,.:/", min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=20), st.integers(1, 40))
def test_wrapped_lines_fit_and_keep_every_character(words: list[str], width: int) -> None:
    text = " ".join(words)
    lines = wrap(text, width)
    assert all(len(line) <= width for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_wrap_breaks_between_words_when_they_fit() -> None:
    assert wrap("the destination QEMU 7.2.22 has no machine type", 20) == [
        "the destination QEMU",
        "7.2.22 has no",
        "machine type",
    ]
    assert wrap("abcdefghij", 4) == ["abcd", "efgh", "ij"]  # a longer word is folded


def _terminal(monkeypatch: pytest.MonkeyPatch, columns: int, **env: str) -> Terminal:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", str(columns))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Terminal(io.StringIO())


@pytest.mark.parametrize("columns", [40, 80, 200])
def test_table_is_never_wider_than_the_terminal(monkeypatch, columns: int) -> None:
    term = _terminal(monkeypatch, columns)
    cols = [Column(("check",), wrap=False), Column(("result",), wrap=False), Column(("why",))]
    long = "the guest sees 10 CPU features on the source that the destination lacks " * 3
    rows = [[[("cpu.passthrough", None)], [("fail", "bold red")], [(long, None), ("x", "dim")]]]
    lines = render_table(term, cols, rows, lines_between_rows=True)
    assert {len(line) for line in lines} == {len(lines[0])}
    assert len(lines[0]) <= columns
    assert lines[0].startswith("┏") and lines[-1].startswith("└")


def test_styles_only_on_a_terminal_or_when_forced(monkeypatch) -> None:
    plain = _terminal(monkeypatch, 80)  # a StringIO is not a terminal
    assert plain.style("fail", "bold red") == "fail"
    forced = _terminal(monkeypatch, 80, FORCE_COLOR="1")
    assert forced.style("fail", "bold red") == "\x1b[1;31mfail\x1b[0m"
    no_colour = _terminal(monkeypatch, 80, FORCE_COLOR="1", NO_COLOR="1")
    assert no_colour.style("fail", "bold red") == "\x1b[1mfail\x1b[0m"  # bold stays
    assert no_colour.style("pass", "green") == "pass"
    dumb = _terminal(monkeypatch, 80, FORCE_COLOR="1", TERM="dumb")
    assert dumb.style("fail", "bold red") == "fail"
