"""Render a fleet result as one self-contained, offline HTML page.

The page has no external resources at all (no CDN, fonts or images): CSS and a small
vanilla script are inline, and a Content-Security-Policy admits exactly those two (by hash)
and nothing else, so even a value that escaped escaping could not run a script or load
anything. Every value from hosts, facts and command lines is escaped with ``html.escape``.

Each matrix cell carries ``data-verdict`` (safe, unsafe, unknown, cannot-run, same-host),
``data-guest``, ``data-src`` and ``data-dst``; its reasons are in its ``title`` (hover) and
in a hidden block the script copies into the guest's details panel on click (or Enter).
The platform superset graph is inline SVG laid out here: one layer per capability count,
supersets on top, without graphviz.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from migcheck import __version__
from migcheck.findings import Finding
from migcheck.fleet import Change, FleetResult, HostClass
from migcheck.report.fleet import fleet_json
from migcheck.verdict import Verdict

SAFE, UNSAFE, UNKNOWN = Verdict.SAFE.value, Verdict.UNSAFE.value, Verdict.UNKNOWN.value
CANNOT_RUN, SAME_HOST = "cannot-run", "same-host"
CELL_VERDICTS = (SAFE, UNSAFE, UNKNOWN, CANNOT_RUN, SAME_HOST)
_MARK = {SAFE: "✓", UNSAFE: "✗", UNKNOWN: "?", CANNOT_RUN: "—", SAME_HOST: "·"}
_LEGEND = {
    SAFE: "safe",
    UNSAFE: "unsafe",
    UNKNOWN: "unknown (facts missing)",
    CANNOT_RUN: "the guest cannot run on one of the hosts",
    SAME_HOST: "one host: no migration to itself",
}

_CSS = """
:root { --safe:#1a7f37; --safe-bg:#d8f5de; --unsafe:#c0262d; --unsafe-bg:#ffe1df;
  --unknown:#7a3fc8; --unknown-bg:#efe3ff; --muted:#59636e; --line:#d1d9e0; --bg:#f6f8fa;
  --accent:#0b61c4; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: #1f2328; background: #fff; }
main { max-width: 1320px; margin: 0 auto; padding: 20px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 6px; display: flex; align-items: center; gap: 12px; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 8px; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12.5px; }
.muted { color: var(--muted); }
.pill { display: inline-block; padding: 2px 12px; border-radius: 999px; font-weight: 700;
  letter-spacing: .04em; color: #fff; text-transform: uppercase; }
.pill.safe { background: var(--safe); } .pill.unsafe { background: var(--unsafe); }
.pill.unknown { background: var(--unknown); }
.pill.cannot-run, .pill.same-host { background: #8c959f; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr));
  gap: 12px; margin: 14px 0 4px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px;
  background: var(--bg); }
.card .k { font-size: 12px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .05em; }
.card .v { font-size: 16px; font-weight: 600; overflow-wrap: anywhere; }
table { border-collapse: collapse; }
table.classes { width: 100%; }
table.classes th, table.classes td, table.whatif th, table.whatif td {
  border: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
table.classes th, table.whatif th { background: var(--bg); }
table.classes td.hosts { max-width: 420px; overflow-wrap: anywhere; }
details summary { cursor: pointer; color: var(--accent); }
.guest-body { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
table.matrix th, table.matrix td { border: 1px solid var(--line); }
table.matrix th { background: var(--bg); padding: 5px 9px; font-weight: 600; }
table.matrix th.corner { font-weight: 400; color: var(--muted); font-size: 12px; }
table.matrix td { width: 46px; height: 38px; text-align: center; font-size: 18px;
  font-weight: 700; cursor: pointer; user-select: none; }
table.matrix td:hover, table.matrix td:focus { outline: 3px solid var(--accent);
  outline-offset: -3px; }
table.matrix td.selected { outline: 3px solid #1f2328; outline-offset: -3px; }
td.v-safe, .swatch.v-safe { background: var(--safe-bg); color: var(--safe); }
td.v-unsafe, .swatch.v-unsafe { background: var(--unsafe-bg); color: var(--unsafe); }
td.v-unknown, .swatch.v-unknown { background: var(--unknown-bg); color: var(--unknown); }
td.v-cannot-run, .swatch.v-cannot-run { color: #8c959f;
  background: repeating-linear-gradient(135deg, #eef1f4 0 6px, #e3e7eb 6px 12px); }
td.v-same-host, .swatch.v-same-host { background: #fff; color: #8c959f; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 8px 0 0; font-size: 12.5px;
  color: var(--muted); }
.swatch { display: inline-block; width: 22px; height: 18px; border: 1px solid var(--line);
  text-align: center; font-weight: 700; line-height: 16px; margin-right: 4px; }
.details { flex: 1 1 420px; min-height: 120px; border: 1px solid var(--line);
  border-radius: 8px; padding: 12px 14px; background: var(--bg); }
.details .empty { color: var(--muted); }
.reasons { list-style: none; margin: 6px 0 0; padding: 0; }
.reasons li { margin: 0 0 8px; padding-left: 10px; border-left: 3px solid var(--line); }
.reasons li.st-fail { border-color: var(--unsafe); }
.reasons li.st-unknown { border-color: var(--unknown); }
.reasons li.st-warn { border-color: #bf8700; }
.st { font-size: 11px; font-weight: 700; text-transform: uppercase; padding: 0 5px;
  border-radius: 4px; color: #fff; background: var(--muted); }
.st.fail, .st.unsafe { background: var(--unsafe); }
.st.unknown { background: var(--unknown); }
.st.warn { background: #bf8700; }
.fix { color: var(--safe); }
.dir { font-size: 12px; font-weight: 700; color: var(--muted); text-transform: uppercase;
  margin-top: 8px; }
ul.problems { margin: 10px 0 0; padding-left: 20px; font-size: 13px; }
tr.regression td { background: var(--unsafe-bg); }
.graph { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px;
  padding: 8px; background: #fff; }
svg text { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12px; fill: #1f2328; }
svg .node rect { fill: #f6f8fa; stroke: #8c959f; stroke-width: 1; }
svg .node.host rect { fill: #eaf2fd; stroke: var(--accent); }
svg .node.common rect { fill: var(--safe-bg); stroke: var(--safe); stroke-width: 3; }
svg .node text.sub { fill: var(--muted); font-size: 11px; }
svg .node text.tag { fill: var(--accent); font-size: 11px; font-weight: 700; }
svg .node.common text.tag { fill: var(--safe); }
svg path.edge { fill: none; stroke: #8c959f; stroke-width: 1.3; }
footer { margin-top: 36px; font-size: 12px; color: var(--muted); }
"""

_JS = """
(function () {
  "use strict";
  function show(td) {
    var section = td.closest(".guest");
    if (!section) return;
    var panel = section.querySelector(".details");
    var prev = section.querySelector("td.selected");
    if (prev) prev.classList.remove("selected");
    td.classList.add("selected");
    var why = td.querySelector(".why");
    while (panel.firstChild) panel.removeChild(panel.firstChild);
    if (why) {
      var copy = why.cloneNode(true);
      copy.hidden = false;
      copy.className = "shown";
      panel.appendChild(copy);
    }
  }
  document.addEventListener("click", function (e) {
    var td = e.target.closest && e.target.closest("td[data-verdict]");
    if (td) show(td);
  });
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if ((e.key === "Enter" || e.key === " ") && t.matches && t.matches("td[data-verdict]")) {
      e.preventDefault();
      show(t);
    }
  });
  var order = ["unsafe", "unknown", "cannot-run", "safe"];
  document.querySelectorAll(".guest").forEach(function (section) {
    for (var i = 0; i < order.length; i++) {
      var td = section.querySelector('td[data-verdict="' + order[i] + '"]');
      if (td) { show(td); break; }
    }
  });
  document.documentElement.setAttribute("data-js", "ready");
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_CSP = (
    f"default-src 'none'; style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_JS)}; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def _e(value: Any) -> str:
    """Escape for text and quoted attributes alike."""
    return html.escape("" if value is None else str(value), quote=True)


def _guest_name(source: str) -> str:
    return PurePath(source).name or source


def _hosts_short(hosts: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(hosts[:limit])
    return shown + (f" +{len(hosts) - limit}" if len(hosts) > limit else "")


def _host_pairs(a: HostClass, b: HostClass) -> int:
    n = len(a.hosts)
    return n * (n - 1) if a is b else n * len(b.hosts)


# --- cells ---------------------------------------------------------------------------------


def _reason_items(checks: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """(HTML list, plain-text lines) of the non-passing findings of one direction."""
    rank = {"fail": 0, "unknown": 1, "warn": 2}
    items, lines = [], []
    for c in sorted(checks, key=lambda c: (rank.get(c.get("status", ""), 3), c.get("id", ""))):
        status = str(c.get("status", ""))
        fix = c.get("fix")
        items.append(
            f'<li class="st-{_e(status)}"><code>{_e(c.get("id"))}</code> '
            f'<span class="st {_e(status)}">{_e(status)}</span> {_e(c.get("message"))}'
            + (f'<div class="fix"><b>fix:</b> {_e(fix)}</div>' if fix else "")
            + "</li>"
        )
        lines.append(f"{c.get('id')} ({status}): {c.get('message')}")
        if fix:
            lines.append(f"  fix: {fix}")
    return (f'<ul class="reasons">{"".join(items)}</ul>' if items else ""), lines


def _cell(
    g: int,
    guest: str,
    a: HostClass,
    b: HostClass,
    verdict: str,
    cell: Mapping[str, Any] | None,
    blocked: Sequence[tuple[str, Sequence[Finding]]],
) -> str:
    head = f"{a.id} → {b.id}: {verdict}"
    title_lines = [head]
    body = [
        f"<h3>{_e(guest)}: {_e(a.id)} → {_e(b.id)} "
        f'<span class="pill {_e(verdict)}">'
        f"{_e(verdict)}</span></h3>",
        f'<div class="muted">from {_e(_hosts_short(a.hosts, 6))} to '
        f"{_e(_hosts_short(b.hosts, 6))}</div>",
    ]
    if cell is not None:
        both = "reverse_checks" in cell
        for label, checks in (
            ("forward", cell.get("checks", [])),
            ("back", cell.get("reverse_checks")),
        ):
            if checks is None:
                continue
            listing, lines = _reason_items(checks)
            if both:
                arrow = f"{a.id} → {b.id}" if label == "forward" else f"{b.id} → {a.id}"
                body.append(f'<div class="dir">{label}: {_e(arrow)}</div>')
                if lines:
                    title_lines.append(f"[{label}]")
            body.append(listing or '<div class="muted">every check passed</div>')
            title_lines += lines
        if verdict == SAFE and len(title_lines) == 1:
            title_lines.append("every check passed")
    elif verdict == CANNOT_RUN:
        for cid, findings in blocked:
            body.append(
                f'<div class="dir">the guest cannot start on {_e(cid)}</div>'
                f'<div class="muted">(checked as if it ran on {_e(cid)})</div>'
            )
            checks = [f.to_json() for f in findings]
            listing, lines = _reason_items(checks)
            body.append(listing or '<div class="muted">machine type, CPU model or KVM</div>')
            title_lines.append(f"cannot start on {cid}")
            title_lines += lines or ["machine type, CPU model or KVM"]
    else:
        body.append(
            f'<div class="muted">{_e(a.id)} has one host: a guest does not migrate to the host '
            "it runs on</div>"
        )
        title_lines.append("one host: no migration to itself")
    return (
        f'<td class="v-{verdict}" data-verdict="{verdict}" data-guest="{g}" '
        f'data-src="{_e(a.id)}" data-dst="{_e(b.id)}" tabindex="0" '
        f'title="{_e(chr(10).join(title_lines))}">{_MARK[verdict]}'
        f'<div class="why" hidden>{"".join(body)}</div></td>'
    )


def cell_verdicts(result: FleetResult) -> dict[tuple[int, str, str], str]:
    """Every matrix cell's ``data-verdict``: a fleet verdict, cannot-run or same-host."""
    out = {}
    for g in range(len(result.guests)):
        for a in result.classes:
            for b in result.classes:
                cell = result.cells.get((g, a.id, b.id))
                if cell is not None:
                    out[(g, a.id, b.id)] = cell.verdict.value
                elif (
                    result.runnable.get((g, a.id)) is False
                    or result.runnable.get((g, b.id)) is False
                ):
                    out[(g, a.id, b.id)] = CANNOT_RUN
                else:
                    out[(g, a.id, b.id)] = SAME_HOST
    return out


# --- sections ------------------------------------------------------------------------------


def _headline(result: FleetResult, doc: Mapping[str, Any], verdicts: Mapping) -> str:
    v = doc["verdict"]
    pairs = dict.fromkeys(CELL_VERDICTS, 0)
    for (_g, a, b), verdict in verdicts.items():
        pairs[verdict] += _host_pairs(result.class_by_id(a), result.class_by_id(b))
    total = sum(n for k, n in pairs.items() if k != SAME_HOST)
    counts = ", ".join(
        f"{pairs[k]} {k.replace('-', ' ')}" for k in (SAFE, UNSAFE, UNKNOWN, CANNOT_RUN)
    )
    common = doc["common_platform"] or "none"
    baseline = doc["baseline_cpu"] or "none usable on every host"
    out = [
        f'<h1>migcheck fleet <span class="pill {_e(v)}" id="verdict">{_e(v)}</span></h1>',
        f'<div class="muted">{len(result.host_class)} hosts in {len(result.classes)} classes, '
        f"{len(result.guests)} guests: {total} guest migrations between host pairs "
        f"({_e(counts)}).</div>",
        '<div class="cards">',
        f'<div class="card"><div class="k">verdict</div><div class="v">{_e(v)}</div></div>',
        f'<div class="card"><div class="k">hosts / classes / guests</div><div class="v">'
        f"{len(result.host_class)} / {len(result.classes)} / {len(result.guests)}</div></div>",
        f'<div class="card"><div class="k">common platform (-platform pin)</div>'
        f'<div class="v mono" id="common-platform">{_e(common)}</div></div>',
        f'<div class="card"><div class="k">baseline CPU model</div>'
        f'<div class="v mono" id="baseline-cpu">{_e(baseline)}</div></div>',
        "</div>",
    ]
    if doc["failed_hosts"]:
        items = "".join(
            f"<li><code>{_e(h)}</code>: {_e(w)}</li>" for h, w in doc["failed_hosts"].items()
        )
        out.append(
            f'<div class="card"><div class="k">not gathered (counted as unknown)</div>'
            f"<ul>{items}</ul></div>"
        )
    return "\n".join(out)


def _hosts_cell(hosts: Sequence[str]) -> str:
    if len(hosts) <= 8:
        return ", ".join(f"<code>{_e(h)}</code>" for h in hosts)
    shown = ", ".join(f"<code>{_e(h)}</code>" for h in hosts[:6])
    rest = ", ".join(f"<code>{_e(h)}</code>" for h in hosts[6:])
    return f"{shown} <details><summary>+{len(hosts) - 6} more</summary>{rest}</details>"


def _classes_table(doc: Mapping[str, Any]) -> str:
    rows = []
    for c in doc["classes"]:
        rows.append(
            f'<tr data-class="{_e(c["id"])}"><th>{_e(c["id"])}</th>'
            f'<td class="hosts">{len(c["hosts"])}: {_hosts_cell(c["hosts"])}</td>'
            f'<td class="mono">{_e(c["qemu"] or "?")}</td>'
            f'<td class="mono">{_e(c["kernel"] or "?")}</td>'
            f"<td>{_e(c['cpu'] or '?')}</td>"
            f'<td class="mono">{_e(c["effective_platform"] or "none")}</td></tr>'
        )
    return (
        '<h2>Host classes <span class="muted">(hosts identical for migration)</span></h2>'
        '<table class="classes"><thead><tr><th>class</th><th>hosts</th><th>QEMU</th>'
        "<th>kernel</th><th>CPU</th><th>effective platform</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _legend() -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><span class="swatch v-{k}">{_MARK[k]}</span>{_e(text)}</span>'
            for k, text in _LEGEND.items()
        )
        + "<span>hover a cell for its reasons, click it for details</span></div>"
    )


def _guest_section(
    result: FleetResult,
    g: int,
    gdoc: Mapping[str, Any],
    verdicts: Mapping[tuple[int, str, str], str],
    blocked: Mapping[tuple[int, str], list[Finding]],
) -> str:
    source = gdoc["source"]
    name = _guest_name(source)
    by_pair = {(c["source"], c["destination"]): c for c in gdoc["cells"]}
    head = "".join(
        f'<th scope="col" title="{_e(_hosts_short(c.hosts, 20))}">{_e(c.id)}</th>'
        for c in result.classes
    )
    rows = []
    for a in result.classes:
        tds = []
        for b in result.classes:
            verdict = verdicts[(g, a.id, b.id)]
            why = [
                (cid, blocked.get((g, cid), []))
                for cid in dict.fromkeys((a.id, b.id))
                if result.runnable.get((g, cid)) is False
            ]
            tds.append(_cell(g, name, a, b, verdict, by_pair.get((a.id, b.id)), why))
        rows.append(
            f'<tr><th scope="row" title="{_e(_hosts_short(a.hosts, 20))}">{_e(a.id)}</th>'
            + "".join(tds)
            + "</tr>"
        )
    problems = [
        f"<li><code>{_e(c['source'])} → {_e(c['destination'])}</code> "
        f'<span class="st {_e(c["verdict"])}">{_e(c["verdict"])}</span> '
        + ", ".join(f"<code>{_e(f)}</code>" for f in c["failing"])
        + "</li>"
        for c in gdoc["cells"]
        if c["verdict"] != SAFE
    ]
    cannot = [c.id for c in result.classes if result.runnable.get((g, c.id)) is False]
    notes = []
    if cannot:
        notes.append(f'<div class="muted">cannot start on: {_e(", ".join(cannot))}</div>')
    return (
        f'<section class="guest" data-guest="{g}" id="guest-{g}">'
        f'<h2 title="{_e(source)}">Guest <code>{_e(name)}</code> '
        '<span class="muted">source (rows) → destination (columns)</span></h2>'
        '<div class="guest-body"><div>'
        f'<table class="matrix"><thead><tr><th class="corner">from \\ to</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
        + "".join(notes)
        + (f'<ul class="problems">{"".join(problems)}</ul>' if problems else "")
        + "</div>"
        '<div class="details" aria-live="polite"><div class="empty">'
        "Click a cell to see its checks.</div></div>"
        "</div></section>"
    )


def _whatif(result: FleetResult, doc: Mapping[str, Any]) -> str:
    w = doc["whatif"]
    rows = []
    for c in w["changes"]:
        before, after = c["before"] or "cannot run", c["after"] or "cannot run"
        rows.append(
            f'<tr class="{"regression" if c["regression"] else "change"}">'
            f"<td><code>{_e(_guest_name(c['guest']))}</code></td>"
            f"<td>{_e(_hosts_short(c['sources'], 5))}</td>"
            f"<td>{_e(_hosts_short(c['destinations'], 5))}</td>"
            f"<td>{c['pairs']}</td>"
            f"<td>{_e(before)} → <b>{_e(after)}</b></td>"
            f"<td>{', '.join(f'<code>{_e(r)}</code>' for r in c['reasons'])}</td></tr>"
        )
    regressions = sum(1 for c in w["changes"] if c["regression"])
    summary = (
        f"{len(w['changes'])} verdict changes, {regressions} regressions "
        f"({w['regressions']} host pairs become unsafe)"
    )
    table = (
        '<table class="whatif"><thead><tr><th>guest</th><th>from hosts</th><th>to hosts</th>'
        "<th>pairs</th><th>before → after</th><th>reasons</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else '<div class="muted">no verdict changes</div>'
    )
    return f'<section id="whatif"><h2>What-if</h2><p>{_e(summary)}</p>{table}</section>'


# --- the platform graph --------------------------------------------------------------------

_CHAR_W, _BOX_H, _TAG_H, _GAP_X, _GAP_Y, _MARGIN = 7.3, 44, 15, 26, 34, 16


def _range_label(members: Sequence[str]) -> tuple[str, int]:
    """``linux-6.2 .. linux-6.16`` and how many distro platforms share the class."""
    upstream = [m for m in members if m.startswith("linux-") and m.count("-") == 1]
    distros = len(members) - len(upstream)
    if not upstream:
        return members[0], distros - 1
    label = upstream[0] if len(upstream) == 1 else f"{upstream[0]} .. {upstream[-1]}"
    return label, distros


def platform_svg(
    view: Mapping[str, Any],
    common: str | None = None,
    effective: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The reduced superset graph as inline SVG: supersets above their subsets, one layer
    per capability count. ``common`` (a platform id) is highlighted; ``effective`` maps a
    platform id to the host classes whose effective platform it is."""
    classes = view["classes"]
    effective = effective or {}
    nodes = list(classes)  # in display order
    rank = {n: i for i, n in enumerate(nodes)}
    supersets: dict[str, list[str]] = {n: [] for n in nodes}
    for e in view["edges"]:
        supersets[e["subset"]].append(e["superset"])
    member_of = {m: n for n in nodes for m in classes[n]["members"]}
    common_node = member_of.get(common) if common else None
    host_tags: dict[str, list[str]] = {}
    for pid, host_classes in effective.items():
        if pid in member_of:
            host_tags.setdefault(member_of[pid], []).extend(host_classes)

    info: dict[str, dict[str, Any]] = {}
    for n in nodes:
        members = classes[n]["members"]
        label, distros = _range_label(members)
        sub = f"{classes[n]['capabilities']} capabilities" + (
            f" · +{distros} distro" if distros > 0 else ""
        )
        tags = []
        if n == common_node:
            tags.append("★ fleet common platform")
        if host_tags.get(n):
            tags.append("hosts: " + " ".join(host_tags[n]))
        tag = " · ".join(tags)
        width = max(len(label), len(sub), len(tag)) * _CHAR_W + 20
        info[n] = {"label": label, "sub": sub, "tag": tag, "w": max(width, 150), "h": _BOX_H}
        if tag:
            info[n]["h"] += _TAG_H

    # Layers by capability count, most capabilities on top.
    counts = sorted({classes[n]["capabilities"] for n in nodes}, reverse=True)
    layers = [[n for n in nodes if classes[n]["capabilities"] == k] for k in counts]
    pos: dict[str, float] = {}  # centre x
    for layer in layers:
        # Order by the mean position of supersets already placed (fewer crossings).
        def bary(n: str) -> float:
            ups = [pos[p] for p in supersets[n] if p in pos]
            return sum(ups) / len(ups) if ups else 0.0

        layer.sort(key=lambda n: (bary(n), rank[n]))
        x = 0.0
        for n in layer:
            pos[n] = x + info[n]["w"] / 2
            x += info[n]["w"] + _GAP_X
    widths = [sum(info[n]["w"] for n in layer) + _GAP_X * (len(layer) - 1) for layer in layers]
    width = max(widths, default=0) + 2 * _MARGIN
    rows_h = [max((info[n]["h"] for n in layer), default=_BOX_H) for layer in layers]
    y, top = float(_MARGIN), {}
    for layer, lw, rh in zip(layers, widths, rows_h, strict=True):
        shift = (width - lw) / 2
        for n in layer:
            pos[n] += shift
            top[n] = y + (rh - info[n]["h"]) / 2
        y += rh + _GAP_Y
    height = y - _GAP_Y + _MARGIN

    edges = []
    for sup, sub in ((e["superset"], e["subset"]) for e in view["edges"]):
        x1, y1 = pos[sub], top[sub]  # top of the subset
        x2, y2 = pos[sup], top[sup] + info[sup]["h"]  # bottom of the superset
        mid = (y1 + y2) / 2
        edges.append(
            f'<path class="edge" data-superset="{_e(sup)}" data-subset="{_e(sub)}" '
            f'd="M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2 + 3:.1f}" '
            'marker-end="url(#arrow)"/>'
        )
    boxes = []
    for n in nodes:
        i = info[n]
        cls = "node" + (" common" if n == common_node else "") + (" host" if n in host_tags else "")
        x0, y0 = pos[n] - i["w"] / 2, top[n]
        tag = (
            f'<text class="tag" x="{pos[n]:.1f}" y="{y0 + 52:.1f}" text-anchor="middle">'
            f"{_e(i['tag'])}</text>"
            if i["tag"]
            else ""
        )
        boxes.append(
            f'<g class="{cls}" data-platform="{_e(n)}">'
            f"<title>{_e(', '.join(classes[n]['members']))}</title>"
            f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{i["w"]:.1f}" height="{i["h"]:.1f}" rx="6"/>'
            f'<text x="{pos[n]:.1f}" y="{y0 + 18:.1f}" text-anchor="middle">{_e(i["label"])}</text>'
            f'<text class="sub" x="{pos[n]:.1f}" y="{y0 + 35:.1f}" text-anchor="middle">'
            f"{_e(i['sub'])}</text>{tag}</g>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="platform-graph" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        'aria-label="platform superset graph">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#8c959f"/></marker></defs>' + "".join(edges) + "".join(boxes) + "</svg>"
    )


def _graph_section(result: FleetResult, doc: Mapping[str, Any]) -> str:
    effective: dict[str, list[str]] = {}
    for c in doc["classes"]:
        if c["effective_platform"]:
            effective.setdefault(c["effective_platform"], []).append(c["id"])
    common = doc["common_platform"]
    svg = platform_svg(result.platform_graph, common, effective)
    return (
        '<section id="platforms"><h2>Platforms</h2>'
        "<p>Each box is a class of platforms with the same capabilities (hover for its "
        "members); an arrow points from a platform to its direct superset. The fleet's "
        f"common platform is <code>{_e(common or 'none')}</code>; blue boxes hold a host "
        "class's effective platform.</p>"
        f'<div class="graph">{svg}</div></section>'
    )


# --- the page ------------------------------------------------------------------------------


def render_html(result: FleetResult, changes: Sequence[Change] | None = None) -> str:
    """The whole fleet report as one self-contained HTML document."""
    doc = fleet_json(result, changes)
    verdicts = cell_verdicts(result)
    blocked = result.cannot_start
    parts = [_headline(result, doc, verdicts), _classes_table(doc)]
    if result.guests:
        parts.append(_legend())
    for g, gdoc in enumerate(doc["guests"]):
        parts.append(_guest_section(result, g, gdoc, verdicts, blocked))
    if changes is not None:
        parts.append(_whatif(result, doc))
    parts.append(_graph_section(result, doc))
    both = " Each cell judges both directions." if result.both_ways else ""
    parts.append(f"<footer>migcheck {_e(__version__)} · schema {_e(doc['schema'])}.{both}</footer>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>migcheck fleet: {_e(doc['verdict'])}</title>"
        f"<style>{_CSS}</style></head>\n<body><main>\n"
        + "\n".join(parts)
        + f"\n</main><script>{_JS}</script></body></html>\n"
    )
