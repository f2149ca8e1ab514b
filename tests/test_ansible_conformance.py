"""migcheck reads inventories as Ansible does: a corpus compared with ``ansible-inventory``.

Each case is an inventory (INI, YAML, ``ansible-inventory --list`` JSON, a directory with
``group_vars``/``host_vars``, an executable script with or without ``_meta``). The test runs
the real ``ansible-inventory -i INV --list`` (ansible-core, installed by ``.ci/run`` into its
own venv, ``/var/tmp/migcheck-ansible``; or any ``ansible-inventory`` on PATH, or
``$MIGCHECK_ANSIBLE_INVENTORY``) and compares hosts, group membership and the connection
variables with :func:`migcheck.inventory.load_inventory`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from migcheck.inventory import load_inventory
from tests.conftest import require

VENV_TOOL = Path("/var/tmp/migcheck-ansible/bin/ansible-inventory")
CONNECTION_VARS = (
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_connection",
    "ansible_ssh_host",
    "ansible_ssh_port",
    "ansible_ssh_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
)


def _tool() -> str | None:
    env = os.environ.get("MIGCHECK_ANSIBLE_INVENTORY")
    if env:
        return env
    return shutil.which("ansible-inventory") or (str(VENV_TOOL) if VENV_TOOL.exists() else None)


@dataclass(frozen=True)
class Case:
    name: str
    files: dict[str, str]  # relative path -> text; a text starting "#!" is made executable
    inventory: str  # relative path of what -i gets ("." for the directory itself)


SCRIPT_META = """#!/usr/bin/env python3
import json, sys
if sys.argv[1:] == ["--list"]:
    print(json.dumps({
        "hv": {"hosts": ["hv1", "hv2"], "vars": {"ansible_user": "ops"}},
        "edge": {"hosts": ["e1"], "children": ["hv"]},
        "_meta": {"hostvars": {"hv1": {"ansible_host": "10.0.0.1", "ansible_port": 2201},
                               "e1": {"ansible_connection": "local"}}},
    }))
else:
    print("{}")
"""

SCRIPT_NO_META = """#!/usr/bin/env python3
import json, sys
if sys.argv[1:] == ["--list"]:
    db = {"hosts": ["d1"], "vars": {"ansible_port": 2022}}
    print(json.dumps({"web": ["w1", "w2"], "db": db}))
elif sys.argv[1:2] == ["--host"]:
    print(json.dumps({"w1": {"ansible_host": "192.0.2.1"}, "d1": {"ansible_user": "pg"}}
                     .get(sys.argv[2], {})))
"""

CORPUS: list[Case] = [
    Case("ini-plain", {"hosts": "hv1\nhv2 ansible_host=10.0.0.2\n"}, "hosts"),
    Case(
        "ini-groups",
        {"hosts": "[web]\nw1 ansible_port=2222\nw2\n[db]\nd1 ansible_user=pg\nw1\n"},
        "hosts",
    ),
    Case(
        "ini-children-vars",
        {
            "hosts": "[hv]\nhv1\n[edge]\ne1\n[dc:children]\nhv\nedge\n"
            "[dc:vars]\nansible_user=dc\n[hv:vars]\nansible_user=hv\n"
        },
        "hosts",
    ),
    Case("ini-ranges", {"hosts": "[hv]\nhv[01:03] ansible_user=r\nn[a:c]\n"}, "hosts"),
    Case("ini-host-port", {"hosts": "[hv]\nhv1:2200\nhv2:2201 ansible_user=x\n"}, "hosts"),
    Case(
        "ini-legacy-ssh-vars",
        {"hosts": "a ansible_ssh_host=192.0.2.9 ansible_ssh_port=23 ansible_ssh_user=old\n"},
        "hosts",
    ),
    Case(
        "ini-all-vars",
        {"hosts": "[all:vars]\nansible_user=every\n[web]\nw1\nw2 ansible_user=own\n"},
        "hosts",
    ),
    Case(
        "ini-depth-order",
        {
            "hosts": "[a]\nh1\n[b:children]\na\n[c:children]\nb\n"
            "[c:vars]\nansible_port=1\n[b:vars]\nansible_port=2\n"
        },
        "hosts",
    ),
    Case(
        "yaml-basic",
        {
            "inv.yml": "all:\n  hosts:\n    h1:\n      ansible_host: 10.1.0.1\n  children:\n"
            "    web:\n      hosts:\n        w1:\n        w2:\n          ansible_port: 2201\n"
        },
        "inv.yml",
    ),
    Case(
        "yaml-nested-vars",
        {
            "inv.yaml": "all:\n  vars:\n    ansible_user: base\n  children:\n    dc:\n"
            "      vars:\n        ansible_user: dc\n      children:\n        rack1:\n"
            "          hosts:\n            r1a:\n            r1b:\n              ansible_user: me\n"
        },
        "inv.yaml",
    ),
    Case(
        "yaml-priority",
        {
            "inv.yml": "all:\n  children:\n    zz:\n      vars:\n"
            "        ansible_group_priority: 10\n        ansible_user: zz\n"
            "      hosts:\n        h:\n    aa:\n      vars:\n"
            "        ansible_user: aa\n      hosts:\n        h:\n"
        },
        "inv.yml",
    ),
    Case(
        "yaml-ranges-port",
        {"inv.yml": "web:\n  hosts:\n    web[1:3]:\n    db.example:2345:\n"},
        "inv.yml",
    ),
    Case(
        "list-json",
        {
            "inv.json": json.dumps(
                {
                    "_meta": {"hostvars": {"h1": {"ansible_host": "1.2.3.4"}, "h2": {}}},
                    "all": {"children": ["ungrouped", "web"]},
                    "web": {"hosts": ["h1"]},
                    "ungrouped": {"hosts": ["h2"]},
                }
            )
        },
        "inv.json",
    ),
    Case(
        "list-json-export",
        {
            "inv.json": json.dumps(
                {
                    "_meta": {"hostvars": {"h1": {"ansible_port": 2200}}},
                    "all": {"children": ["dc"], "vars": {"ansible_user": "x"}},
                    "dc": {"children": ["hv"], "vars": {"ansible_user": "dc"}},
                    "hv": {"hosts": ["h1", "h2"]},
                }
            )
        },
        "inv.json",
    ),
    Case("script-meta", {"inv.py": SCRIPT_META}, "inv.py"),
    Case("script-host-calls", {"inv.sh": SCRIPT_NO_META}, "inv.sh"),
    Case(
        "file-group-vars",
        {
            "hosts": "[web]\nw1\nw2 ansible_user=inline\n",
            "group_vars/web.yml": "ansible_user: fromgv\nansible_port: 2022\n",
            "group_vars/all.yml": "ansible_port: 1\nansible_connection: ssh\n",
        },
        "hosts",
    ),
    Case(
        "file-host-vars-win",
        {
            "hosts": "[web]\nw1 ansible_user=inline\n",
            "host_vars/w1.yaml": "ansible_user: fromhv\n",
        },
        "hosts",
    ),
    Case(
        "group-vars-all-beats-file-groups",
        {
            "hosts": "[web]\nw1\n[web:vars]\nansible_user=file\n",
            "group_vars/all": "ansible_user: gv-all\n",
        },
        "hosts",
    ),
    Case(
        "group-vars-directory",
        {
            "hosts": "[db]\nd1\n",
            "group_vars/db/10-conn.yml": "ansible_user: one\nansible_port: 2200\n",
            "group_vars/db/20-more.yml": "ansible_user: two\n",
        },
        "hosts",
    ),
    Case(
        "inventory-directory",
        {
            "01-static.ini": "[web]\nw1\n[db]\nd1\n",
            "02-more.yml": "all:\n  children:\n    web:\n      hosts:\n        w2:\n",
            "group_vars/web.yml": "ansible_user: webops\n",
            "host_vars/d1.yml": "ansible_host: 10.9.9.9\n",
            "README.md": "not an inventory\n",
        },
        ".",
    ),
    Case(
        "directory-with-script",
        {
            "10-static.ini": "[edge]\ne2 ansible_port=2299\n",
            "20-dyn.py": SCRIPT_META,
            "group_vars/hv.yml": "ansible_port: 2300\n",
        },
        ".",
    ),
    Case(
        "nested-children-membership",
        {
            "hosts": "[a]\nh1\n[b]\nh2\n[ab:children]\na\nb\n[top:children]\nab\n"
            "[top:vars]\nansible_user=t\n"
        },
        "hosts",
    ),
]


def _write(case: Case, root: Path) -> Path:
    for rel, text in case.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if text.startswith("#!"):
            path.chmod(0o755)
    return root / case.inventory


def _ansible(tool: str, inv: Path, home: Path) -> dict[str, Any]:
    if inv.suffix == ".json":
        # Ansible reads this JSON only from a script: give it one that prints the file.
        script = home / "print-json"
        script.write_text(f'#!/bin/sh\n[ "$1" = --list ] && exec cat {inv}\necho "{{}}"\n')
        script.chmod(0o755)
        inv = script
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_NOCOLOR": "1",
    }
    done = subprocess.run(
        [tool, "-i", str(inv), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=home,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _view_ansible(doc: dict[str, Any]) -> dict[str, Any]:
    hostvars = doc.get("_meta", {}).get("hostvars", {})
    groups = {k: v for k, v in doc.items() if k != "_meta"}
    hosts: set[str] = set(hostvars)

    def members(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        body = groups.get(name, {})
        out = set(body.get("hosts", ()))
        for child in body.get("children", ()):
            if child not in seen:
                out |= members(child, seen | {name})
        return out

    membership = {}
    for name in groups:
        found = members(name)
        hosts |= found
        if name != "all" and found:
            membership[name] = sorted(found)
    conn = {
        h: {k: _text(v) for k, v in hostvars.get(h, {}).items() if k in CONNECTION_VARS}
        for h in hosts
    }
    return {"hosts": sorted(hosts), "groups": membership, "vars": conn}


def _view_migcheck(inv_path: Path) -> dict[str, Any]:
    inv = load_inventory(str(inv_path))
    membership = {g: sorted(names) for g, names in inv.groups.items() if names}
    conn = {h.name: {k: v for k, v in h.vars.items() if k in CONNECTION_VARS} for h in inv.hosts}
    return {"hosts": sorted(h.name for h in inv.hosts), "groups": membership, "vars": conn}


def test_corpus_size() -> None:
    assert len(CORPUS) >= 20
    assert len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_agrees_with_ansible_inventory(case: Case, tmp_path: Path) -> None:
    tool = _tool()
    require(tool is not None, "ansible-inventory (ansible-core) not installed")
    assert tool is not None
    inv = _write(case, tmp_path / "inv")
    expected = _view_ansible(_ansible(tool, inv, tmp_path))
    assert _view_migcheck(inv) == expected


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_reads_what_ansible_inventory_prints(case: Case, tmp_path: Path) -> None:
    """``ansible-inventory --list`` output saved to a file reads as the inventory it came
    from: the JSON path agrees with Ansible on every shape in the corpus."""
    tool = _tool()
    require(tool is not None, "ansible-inventory (ansible-core) not installed")
    assert tool is not None
    inv = _write(case, tmp_path / "inv")
    doc = _ansible(tool, inv, tmp_path)
    saved = tmp_path / "listed.json"
    saved.write_text(json.dumps(doc))
    assert _view_migcheck(saved) == _view_ansible(doc)


def test_script_json_reads_as_list_json(tmp_path: Path) -> None:
    """What a script prints, saved to a file, gives the same inventory as running it."""
    inv = _write(CORPUS[[c.name for c in CORPUS].index("script-meta")], tmp_path)
    saved = tmp_path / "saved.json"
    saved.write_text(subprocess.run([str(inv), "--list"], capture_output=True, text=True).stdout)
    assert _view_migcheck(saved) == _view_migcheck(inv)
    targets = {h.name: h.target for h in load_inventory(str(saved)).hosts}
    assert targets == {"hv1": "ops@10.0.0.1:2201", "hv2": "ops@hv2", "e1": "local"}
