"""The HTML fleet report: cells, reasons, escaping, offline-ness, the SVG graph, and the
page as a real headless Chromium renders it (screenshot, DOM after scripts, clicks)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
import shutil
import struct
import subprocess
from collections import Counter
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import networkx as nx
from conftest import require
from qemudata import FIXTURES

from migcheck.catalog import load_catalog
from migcheck.cmdline import load_cmdline, parse_cmdline
from migcheck.facts import Facts, load_facts
from migcheck.fleet import FleetResult, compare, evaluate
from migcheck.platforms import graph_view, reduced_graph
from migcheck.report.html import CELL_VERDICTS, cell_verdicts, platform_svg, render_html
from migcheck.whatif import assume

TRIXIE = FIXTURES / "hosts" / "debian13-qemu10.0-epyc-pvm.json"
BOOKWORM = FIXTURES / "hosts" / "debian12-qemu7.2-epyc-pvm.json"
EVIL_HOST = 'hv-nokvm<script>document.title="pwned"</script>'
EVIL_GUEST = "<script>document.title='pwned'.cmdline"


def _variant(base: Facts, name: str, **sections: Any) -> Facts:
    doc = dict(base.doc)
    doc["host"] = {"name": name}
    doc.update(sections)
    return Facts(doc, name)


@cache
def _fleet() -> tuple[FleetResult, tuple]:
    """Five hosts from the bundled facts in four classes, three guests: every cell kind
    (safe, unsafe, unknown, cannot-run, same-host), a what-if, and hostile names."""
    catalog = load_catalog()
    trixie, bookworm = load_facts(TRIXIE), load_facts(BOOKWORM)
    hosts = {
        "hv-trixie": trixie,
        "hv-trixie-2": _variant(trixie, "hv-trixie-2"),
        "hv-bookworm": bookworm,
        "hv-gentoo": _variant(
            trixie,
            "hv-gentoo",
            kernel=dict(trixie.doc["kernel"], release="6.1.0-99-amd64"),
            os={"id": "gentoo", "version_id": "2"},
        ),
        EVIL_HOST: _variant(trixie, EVIL_HOST, kvm={"error": "no /dev/kvm"}),
    }
    guests = [
        load_cmdline(str(FIXTURES / "cmdlines" / "web01-q35.cmdline")),
        load_cmdline(str(FIXTURES / "cmdlines" / "libvirt-host-passthrough.cmdline")),
        parse_cmdline("-machine pc-q35-10.0 -accel kvm -cpu EPYC-v4", EVIL_GUEST),
    ]
    result = evaluate(guests, hosts, catalog)
    after = dict(
        hosts,
        **{
            "hv-bookworm": assume(bookworm, "qemu", "10.0.0", catalog),
            # A kernel with tap USO on hv-gentoo: web01's USO-using NIC can then move there.
            "hv-gentoo": assume(hosts["hv-gentoo"], "kernel", "6.8.0", catalog),
        },
    )
    changes = tuple(compare(result, evaluate(guests, after, catalog)))
    return result, changes


class _Cells(HTMLParser):
    """Matrix cells (their attributes), every tag and the page's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[dict[str, str | None]] = []
        self.tags: Counter[str] = Counter()
        self.attrs: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        a = dict(attrs)
        self.attrs.append((tag, a))
        if tag == "td" and "data-verdict" in a:
            self.cells.append(a)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(doc: str) -> _Cells:
    p = _Cells()
    p.feed(doc)
    p.close()
    return p


def _expected_counts(result: FleetResult) -> Counter[str]:
    return Counter(cell_verdicts(result).values())


# --- the document --------------------------------------------------------------------------


def test_every_cell_carries_its_verdict_and_pair():
    result, changes = _fleet()
    page = _parse(render_html(result, changes))
    n = len(result.classes)
    assert len(page.cells) == len(result.guests) * n * n
    counts = Counter(c["data-verdict"] for c in page.cells)
    assert counts == _expected_counts(result)
    assert set(counts) == set(CELL_VERDICTS)  # the fixture fleet shows every kind
    for c in page.cells:
        g, a, b = int(c["data-guest"] or -1), c["data-src"], c["data-dst"]
        cell = result.cells.get((g, a, b))
        if cell is not None:
            assert c["data-verdict"] == cell.verdict.value


def test_cell_reasons_name_failing_checks_messages_and_fixes():
    result, _ = _fleet()
    page = _parse(render_html(result))
    titles = {(int(c["data-guest"] or -1), c["data-src"], c["data-dst"]): c for c in page.cells}
    for (g, a, b), cell in result.cells.items():
        title = titles[(g, a, b)]["title"] or ""
        assert title.startswith(f"{a} → {b}: {cell.verdict.value}")
        for f in cell.report.findings:
            if f.status.value in ("fail", "unknown"):
                assert f"{f.id} ({f.status.value}): {f.message}" in title
                if f.fix:
                    assert f"fix: {f.fix}" in title
    # A cannot-run cell says which class the guest cannot start on and why.
    blocked = next(c for c in page.cells if c["data-verdict"] == "cannot-run")
    assert "cannot start on" in (blocked["title"] or "")
    assert "machine.type (fail)" in (blocked["title"] or "")
    same = next(c for c in page.cells if c["data-verdict"] == "same-host")
    assert "no migration to itself" in (same["title"] or "")


def test_summary_classes_and_whatif():
    result, changes = _fleet()
    doc = render_html(result, changes)
    page = _parse(doc)
    text = "".join(page.text)
    assert f">{result.verdict.value}</span>" in doc
    assert result.common_platform is not None
    assert f'id="common-platform">{result.common_platform.id}<' in doc
    rows = [a for tag, a in page.attrs if tag == "tr" and "data-class" in a]
    assert [r["data-class"] for r in rows] == [c.id for c in result.classes]
    for c in result.classes:
        assert str(c.facts.qemu_version) in text and str(c.facts.kernel_release) in text
    assert changes and 'id="whatif"' in doc
    assert f"{len(changes)} verdict changes" in text
    assert 'id="whatif"' not in render_html(result)  # no what-if asked, none shown


def test_hostile_host_and_guest_names_are_escaped():
    result, changes = _fleet()
    doc = render_html(result, changes)
    # Only the page's own script element; the names appear escaped, as text.
    assert doc.count("<script") == 1
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in doc
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;.cmdline" in doc
    page = _parse(doc)
    assert page.tags["script"] == 1
    text = "".join(page.text)
    assert EVIL_HOST in text and EVIL_GUEST in text  # shown to the reader as typed


def test_quotes_cannot_break_out_of_attributes():
    catalog = load_catalog()
    name = '" onmouseover="alert(1)" x="'
    hosts = {name: _variant(load_facts(TRIXIE), name), "b": load_facts(BOOKWORM)}
    guest = load_cmdline(str(FIXTURES / "cmdlines" / "web01-q35.cmdline"))
    page = _parse(render_html(evaluate([guest], hosts, catalog)))
    assert not any("onmouseover" in a for _, attrs in page.attrs for a in attrs)


def test_page_is_self_contained_and_its_csp_admits_only_its_own_code():
    result, changes = _fleet()
    doc = render_html(result, changes)
    page = _parse(doc)
    assert not page.tags["link"] and not page.tags["img"] and not page.tags["iframe"]
    assert not any("src" in a or "href" in a for _, a in page.attrs)
    remote = {v for _, a in page.attrs for v in a.values() if v and "://" in v}
    assert remote == {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched
    assert "@import" not in doc and "url(http" not in doc and "@font-face" not in doc
    csp = next(
        a["content"] for t, a in page.attrs if a.get("http-equiv") == "Content-Security-Policy"
    )
    style = re.search(r"<style>(.*?)</style>", doc, re.S)
    script = re.search(r"<script>(.*?)</script>", doc, re.S)
    assert style and script
    for body in (style.group(1), script.group(1)):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in (csp or "")
    assert "default-src 'none'" in (csp or "")


def test_both_ways_cells_show_each_direction():
    catalog = load_catalog()
    hosts = {"t": load_facts(TRIXIE), "b": load_facts(BOOKWORM)}
    guest = load_cmdline(str(FIXTURES / "cmdlines" / "libvirt-host-passthrough.cmdline"))
    result = evaluate([guest], hosts, catalog, both_ways=True)
    doc = render_html(result)
    assert "forward: C1 → C2" in doc and "back: C2 → C1" in doc
    counts = Counter(c["data-verdict"] for c in _parse(doc).cells)
    assert counts == _expected_counts(result)


def test_empty_fleet_renders():
    result = evaluate([], {}, load_catalog())
    doc = render_html(result)
    assert doc.startswith("<!DOCTYPE html>") and "<svg" in doc
    assert not _parse(doc).cells


# --- the graph -----------------------------------------------------------------------------


def _boxes(svg: str) -> dict[str, tuple[float, float, float, float]]:
    out = {}
    for m in re.finditer(
        r'data-platform="([^"]+)">.*?<rect x="([\d.]+)" y="([\d.]+)" '
        r'width="([\d.]+)" height="([\d.]+)"',
        svg,
    ):
        out[m.group(1)] = tuple(float(v) for v in m.group(2, 3, 4, 5))
    return out


def _check_layout(svg: str, g: nx.DiGraph) -> dict[str, tuple[float, float, float, float]]:
    boxes = _boxes(svg)
    assert set(boxes) == set(g.nodes)
    assert svg.count('class="edge"') == g.number_of_edges()
    width = float(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    for x, _y, w, _h in boxes.values():
        assert x >= 0 and x + w <= width
    for sup, sub in g.edges:  # a superset sits above its subsets
        assert boxes[sup][1] + boxes[sup][3] < boxes[sub][1]
    for a in boxes:  # no two boxes overlap
        for b in boxes:
            if a < b:
                ax, ay, aw, ah = boxes[a]
                bx, by, bw, bh = boxes[b]
                assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay
    return boxes


def test_platform_graph_layers_the_catalog_and_marks_the_common_platform():
    catalog = load_catalog()
    g = reduced_graph(catalog)
    svg = platform_svg(graph_view(catalog), "linux-6.1", {"linux-6.18": ["C1", "C2"]})
    _check_layout(svg, g)
    common = re.search(r'<g class="node common[^"]*" data-platform="([^"]+)"', svg)
    assert common and "linux-6.1" in g.nodes[common.group(1)]["members"]
    assert "hosts: C1 C2" in svg
    assert svg.count('class="node common') == 1


def test_platform_graph_lays_out_a_dag_with_several_nodes_per_layer():
    # Two incomparable platforms between a bottom and a top: a diamond.
    g = nx.DiGraph()
    for n, caps in (("linux-top", 4), ("linux-a", 3), ("linux-b", 3), ("linux-base", 1)):
        g.add_node(n, members=[n], kind="upstream", capabilities=caps)
    g.add_edges_from([("linux-top", "linux-a"), ("linux-top", "linux-b")])
    g.add_edges_from([("linux-a", "linux-base"), ("linux-b", "linux-base")])
    view = {
        "classes": {n: dict(g.nodes[n]) for n in g.nodes},
        "edges": [{"superset": a, "subset": b} for a, b in g.edges],
    }
    boxes = _check_layout(platform_svg(view, "linux-base"), g)
    assert boxes["linux-a"][1] == boxes["linux-b"][1]  # one layer, side by side


# --- a real browser ------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    browser = _chromium()
    assert browser
    profile = tmp_path / "profile"
    cmd = [browser, *_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=180, check=False, cwd=tmp_path
    )


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_chromium_renders_the_report(tmp_path):
    """Headless Chromium loads the file: scripts ran (auto-selected details), the cells
    and the SVG are in the live DOM, no injected script ran, and a screenshot is written."""
    require(_chromium() is not None, "needs Chromium (apt-get install chromium)")
    result, changes = _fleet()
    page = tmp_path / "fleet.html"
    page.write_text(render_html(result, changes), encoding="utf-8")

    dom = _run_chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    live = _parse(dom.stdout)
    html_attrs = next(a for t, a in live.attrs if t == "html")
    assert html_attrs.get("data-js") == "ready", "the inline script did not run (CSP?)"
    assert Counter(c["data-verdict"] for c in live.cells) == _expected_counts(result)
    assert live.tags["svg"] == 1 and "platform-graph" in dom.stdout
    assert "<title>migcheck fleet: unsafe</title>" in dom.stdout  # not "pwned"
    # The script filled every guest's details panel with its worst cell.
    assert dom.stdout.count('class="shown"') == len(result.guests)
    assert dom.stdout.count('class="v-unsafe selected"') >= 1

    shot = tmp_path / "fleet.png"
    run = _run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert _png_size(data) == (1400, 2400)
    assert len(data) > 50_000  # a blank page compresses to a few kilobytes


def _selenium_driver(tmp_path: Path):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = _chromium() or ""
    for flag in _FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'selenium-profile'}")
    options.add_argument("--window-size=1400,1200")
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=options, service=service)


def test_clicking_a_cell_shows_its_reasons(tmp_path):
    require(_chromium() is not None, "needs Chromium (apt-get install chromium)")
    require(shutil.which("chromedriver") is not None, "needs chromedriver (chromium-driver)")
    require(importlib.util.find_spec("selenium") is not None, "needs selenium (test extras)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    result, changes = _fleet()
    page = tmp_path / "fleet.html"
    page.write_text(render_html(result, changes), encoding="utf-8")
    driver = _selenium_driver(tmp_path)
    try:
        driver.get(page.as_uri())
        assert driver.title == "migcheck fleet: unsafe"
        g, a, b = next(k for k, c in result.cells.items() if c.verdict.value == "unsafe")
        cell = result.cells[(g, a, b)]
        td = driver.find_element(
            By.CSS_SELECTOR, f'td[data-guest="{g}"][data-src="{a}"][data-dst="{b}"]'
        )
        assert td.get_attribute("data-verdict") == "unsafe"
        assert cell.failing[0] in (td.get_attribute("title") or "")  # the hover text
        td.click()
        panel = driver.find_element(By.CSS_SELECTOR, f'section[data-guest="{g}"] .details')
        shown = panel.text
        assert f"{a} → {b}" in shown and "UNSAFE" in shown.upper()
        for f in cell.report.findings:
            if f.status.value == "fail":
                assert f.id in shown and f.message.split(":")[0] in shown
                if f.fix:
                    assert "fix:" in shown
        assert "selected" in (td.get_attribute("class") or "")

        # The keyboard works too: a cannot-run cell, focused, Enter.
        blocked = driver.find_element(By.CSS_SELECTOR, 'td[data-verdict="cannot-run"]')
        blocked.send_keys(Keys.ENTER)
        guest = blocked.get_attribute("data-guest")
        panel = driver.find_element(By.CSS_SELECTOR, f'section[data-guest="{guest}"] .details')
        assert "cannot start on" in panel.text.lower() and "machine.type" in panel.text
        driver.save_screenshot(str(tmp_path / "clicked.png"))
        assert _png_size((tmp_path / "clicked.png").read_bytes())[0] > 0
    finally:
        driver.quit()
