"""Behaviour of migcheck.inventory: plain, Ansible INI and Ansible YAML files -> Inventory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import migcheck.inventory as inventory_module
from migcheck.errors import EXIT_INPUT, InputError
from migcheck.hosts import parse_host
from migcheck.inventory import (
    MAX_INVENTORY_BYTES,
    Inventory,
    InventoryHost,
    load_inventory,
)

# Hypothesis reuses one tmp_path across examples; each example overwrites the same file.
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(tmp_path: Path, name: str, text: str) -> Inventory:
    return load_inventory(write(tmp_path, name, text))


def error_of(tmp_path: Path, name: str, text: str, line: int | None = None) -> str:
    path = write(tmp_path, name, text)
    with pytest.raises(InputError) as info:
        load_inventory(path)
    message = str(info.value)
    assert info.value.exit_code == EXIT_INPUT
    assert "\n" not in message, "errors must be one paragraph"
    prefix = f"{path} line {line}: " if line is not None else f"{path}: "
    assert message.startswith(prefix), message
    return message


def host(inv: Inventory, name: str) -> InventoryHost:
    (found,) = [h for h in inv.hosts if h.name == name]
    return found


def targets(inv: Inventory) -> dict[str, str]:
    return {h.name: h.target for h in inv.hosts}


# --------------------------------------------------------------------------- plain hosts file


def test_plain_file_names_targets_and_groups(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "hosts",
        "# the lab\n"
        "hv1\n"
        "\n"
        "[east]\n"
        "alpha root@10.0.0.5:2222   # alias then HOST\n"
        "ssh://admin@hv2:22\n"
        "local\n"
        "[west]\n"
        "alpha root@10.0.0.5:2222\n",
    )
    assert inv.source.endswith("hosts")
    assert targets(inv) == {
        "hv1": "hv1",
        "alpha": "root@10.0.0.5:2222",
        "ssh://admin@hv2:22": "ssh://admin@hv2:22",
        "local": "local",
    }
    assert [h.name for h in inv.hosts] == ["hv1", "alpha", "ssh://admin@hv2:22", "local"]
    assert host(inv, "alpha").groups == ("east", "west")
    assert host(inv, "hv1").groups == ("ungrouped",)
    assert dict(inv.groups) == {
        "east": ("alpha", "ssh://admin@hv2:22", "local"),
        "west": ("alpha",),
        "ungrouped": ("hv1",),
    }
    assert all(dict(h.vars) == {} for h in inv.hosts)


def test_plain_facts_paths_are_relative_to_the_inventory(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts", "old facts/hv1.json\n/abs/hv2.json\n")
    assert targets(inv) == {
        "old": os.path.join(str(tmp_path), "facts/hv1.json"),
        "/abs/hv2.json": "/abs/hv2.json",
    }


def test_plain_bracketed_ipv6_host_is_not_a_header(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts", "[lab]\n[fe80::1]:2222\nv6 root@[2001:db8::5]\n")
    assert targets(inv) == {"[fe80::1]:2222": "[fe80::1]:2222", "v6": "root@[2001:db8::5]"}
    assert inv.groups["lab"] == ("[fe80::1]:2222", "v6")


def test_plain_same_name_two_targets_is_an_error(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts", "hv1 root@a\n[g]\nhv1 root@b\n", line=3)
    assert "'hv1'" in message and "line 1" in message


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("hv1\nhv2 root@x extra\n", 2, "found 3 words"),
        ("hv1\nbad..name@\n", 2, "HOST"),
        ("hv1\n[east\n", 2, "unterminated section header"),
        ("[east west]\n", 1, "invalid section header"),
        ("alias -oProxyCommand=x\n", 1, None),  # has '=': read as INI, then refused
    ],
)
def test_plain_file_errors(tmp_path: Path, text: str, line: int, needle: str | None) -> None:
    message = error_of(tmp_path, "hosts", text, line=line)
    if needle:
        assert needle in message


def test_plain_invalid_host_names_the_host(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts", "hv1\nweb root@:22\n", line=2)
    assert "host 'web'" in message and "root@:22" in message


def test_empty_file_is_an_empty_inventory(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts", "# nothing yet\n\n")
    assert inv.hosts == ()
    assert dict(inv.groups) == {"ungrouped": ()}
    assert inv.select(["all"]) == []


# --------------------------------------------------------------------------- Ansible INI

SITE_INI = """\
# ungrouped before any header
mail.example.com

[web]
hv[01:03].example.com
alpha ansible_host=10.0.0.5 ansible_port=2222 ansible_user=root other="x y" # comment
beta:2200 role=api

[db]
rack-[a:c] ansible_connection=local

[prod:children]
web
db

[prod:vars]
ansible_user=ops
role = 'unset'  ; kept: only whole-line ';' comments
tier=prod # comment

[web:vars]
tier=frontend

[all:vars]
site=ams
tier=none
"""


def test_ini_groups_children_and_ranges(tmp_path: Path) -> None:
    inv = load(tmp_path, "site", SITE_INI)
    assert [h.name for h in inv.hosts] == [
        "mail.example.com",
        "hv01.example.com",
        "hv02.example.com",
        "hv03.example.com",
        "alpha",
        "beta",
        "rack-a",
        "rack-b",
        "rack-c",
    ]
    assert inv.groups["web"] == (
        "hv01.example.com",
        "hv02.example.com",
        "hv03.example.com",
        "alpha",
        "beta",
    )
    assert inv.groups["db"] == ("rack-a", "rack-b", "rack-c")
    assert inv.groups["prod"] == inv.groups["web"] + inv.groups["db"]
    assert inv.groups["ungrouped"] == ("mail.example.com",)
    assert "all" not in inv.groups
    assert host(inv, "alpha").groups == ("web", "prod")
    assert host(inv, "mail.example.com").groups == ("ungrouped",)


def test_ini_vars_inherit_child_over_parent_and_host_wins(tmp_path: Path) -> None:
    inv = load(tmp_path, "site", SITE_INI)
    alpha = host(inv, "alpha")
    assert alpha.vars["site"] == "ams"  # from all
    assert alpha.vars["tier"] == "frontend"  # web (child) beats prod (parent) beats all
    assert alpha.vars["ansible_user"] == "root"  # host var beats prod's ops
    assert alpha.vars["other"] == "x y"
    assert host(inv, "beta").vars["role"] == "api"
    assert host(inv, "rack-a").vars["tier"] == "prod"
    assert host(inv, "mail.example.com").vars == {"site": "ams", "tier": "none"}


def test_ini_targets(tmp_path: Path) -> None:
    inv = load(tmp_path, "site", SITE_INI)
    assert targets(inv) == {
        "mail.example.com": "mail.example.com",
        "hv01.example.com": "ops@hv01.example.com",
        "hv02.example.com": "ops@hv02.example.com",
        "hv03.example.com": "ops@hv03.example.com",
        "alpha": "root@10.0.0.5:2222",
        "beta": "ops@beta:2200",
        "rack-a": "local",
        "rack-b": "local",
        "rack-c": "local",
    }
    for h in inv.hosts:
        parse_host(h.target)


@pytest.mark.parametrize(
    ("line", "target"),
    [
        (
            "h ansible_ssh_host=10.1.1.1 ansible_ssh_port=22 ansible_ssh_user=admin",
            "admin@10.1.1.1:22",
        ),
        # Ansible lists the legacy names after the modern ones: the legacy spelling wins.
        ("h ansible_host=new ansible_ssh_host=old", "old"),
        ("h ansible_user=new ansible_ssh_user=old", "old@h"),
        ("h ansible_host=fe80::1 ansible_port=22", "[fe80::1]:22"),
        ("h:2022", "h:2022"),
        ("h:2022 ansible_port=2200", "h:2200"),
        ("h ansible_connection=ssh ansible_user=root", "root@h"),
        ("h ansible_connection=ansible.builtin.local ansible_host=ignored", "local"),
        ("local", "local"),
        ("h ansible_host=facts/h.json", "FACTS"),
    ],
)
def test_ini_target_rule(tmp_path: Path, line: str, target: str) -> None:
    inv = load(tmp_path, "inv", line + "\n")
    expected = os.path.join(str(tmp_path), "facts/h.json") if target == "FACTS" else target
    assert [h.target for h in inv.hosts] == [expected]


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("hv[01:03]", ["hv01", "hv02", "hv03"]),
        ("hv[1:3]", ["hv1", "hv2", "hv3"]),
        ("hv[8:11]", ["hv8", "hv9", "hv10", "hv11"]),
        ("hv[001:003]", ["hv001", "hv002", "hv003"]),
        ("node-[a:c]", ["node-a", "node-b", "node-c"]),
        ("node-[X:Z]", ["node-X", "node-Y", "node-Z"]),
        ("hv[0:6:3]", ["hv0", "hv3", "hv6"]),
        ("hv[:2]", ["hv0", "hv1", "hv2"]),
        ("r[1:2]h[a:b].lab", ["r1ha.lab", "r1hb.lab", "r2ha.lab", "r2hb.lab"]),
        ("10.0.0.[1:2]", ["10.0.0.1", "10.0.0.2"]),
    ],
)
def test_ini_ranges(tmp_path: Path, pattern: str, names: list[str]) -> None:
    inv = load(tmp_path, "inv", f"[g]\n{pattern} x=1\n")
    assert [h.name for h in inv.hosts] == names
    assert inv.groups["g"] == tuple(names)


def test_ini_range_with_port(tmp_path: Path) -> None:
    inv = load(tmp_path, "inv", "hv[1:2]:2222 ansible_user=root\n")
    assert targets(inv) == {"hv1": "root@hv1:2222", "hv2": "root@hv2:2222"}


def test_ini_is_detected_by_range_alone(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts", "[g]\nhv[1:2]\n")
    assert [h.name for h in inv.hosts] == ["hv1", "hv2"]


def test_ini_host_in_two_groups_merges_vars(tmp_path: Path) -> None:
    inv = load(tmp_path, "inv", "[a]\nh x=1 y=1\n[b]\nh y=2\n[b:vars]\nx=group\n")
    h = host(inv, "h")
    assert h.groups == ("a", "b")
    assert h.vars["x"] == "1" and h.vars["y"] == "2"


def test_ini_quoting_follows_ansible(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "inv",
        "h secret=\"'03#pa33w0rd'\" note='a b'\n[all:vars]\nmotd = \"hello # world\"\n",
    )
    assert host(inv, "h").vars["secret"] == "03#pa33w0rd"
    assert host(inv, "h").vars["note"] == "a b"
    assert host(inv, "h").vars["motd"] == "hello # world"


def test_ini_group_priority_breaks_ties(tmp_path: Path) -> None:
    text = "[a]\nh\n[b]\nh\n[a:vars]\nv=a\nansible_group_priority=10\n[b:vars]\nv=b\n"
    assert host(load(tmp_path, "inv", text), "h").vars["v"] == "a"
    text = text.replace("priority=10", "priority=0")
    assert host(load(tmp_path, "inv", text), "h").vars["v"] == "b"


def test_ini_deeper_group_beats_shallower_regardless_of_order(tmp_path: Path) -> None:
    text = (
        "[leaf]\nh\n[mid:children]\nleaf\n[top:children]\nmid\n"
        "[leaf:vars]\nv=leaf\n[top:vars]\nv=top\n"
    )
    h = host(load(tmp_path, "inv", text), "h")
    assert h.vars["v"] == "leaf"
    assert h.groups == ("leaf", "mid", "top")


def test_ini_children_may_be_declared_later(tmp_path: Path) -> None:
    inv = load(tmp_path, "inv", "[prod:children]\nweb\n[web]\nh x=1\n")
    assert inv.groups["prod"] == ("h",)


def test_ini_all_and_ungrouped_sections(tmp_path: Path) -> None:
    inv = load(tmp_path, "inv", "[all]\na x=1\n[ungrouped]\nb\n[g]\nc\n[all:children]\ng\n")
    assert [h.groups for h in inv.hosts] == [("ungrouped",), ("ungrouped",), ("g",)]
    assert inv.groups["ungrouped"] == ("a", "b")


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("[web]\nhv[01:3] x=1\n", 2, "same width"),
        ("[web]\nhv[3:1] x=1\n", 2, "start is after the end"),
        ("[web]\nhv[c:a] x=1\n", 2, "start is after the end"),
        ("[web]\nhv[1:c] x=1\n", 2, "mixes a number and a letter"),
        ("[web]\nhv[a:C] x=1\n", 2, "lower and upper case"),
        ("[web]\nhv[1:4:0] x=1\n", 2, "positive"),
        ("[web]\nhv[ab:cd] x=1\n", 2, "bad range [ab:cd]"),
        ("[web]\nhv[01:03 x=1\n", 2, "unterminated range"),
        ("[web]\nhv]1 x=1\n", 2, "']' without"),
        ("[web]\nhv[0:99999999] x=1\n", 2, "more than"),
        ("[web]\nhv[0:999][0:999] x=1\n", 2, "more than"),
        ("[web]\nhv: x=1\n", 2, "end in ':'"),
    ],
)
def test_ini_bad_ranges(tmp_path: Path, text: str, line: int, needle: str) -> None:
    message = error_of(tmp_path, "inv.ini", text, line=line)
    assert needle in message
    assert "host 'hv" in message


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("[web:children]\nweb2\n[web\n", 3, "unterminated section header '[web'"),
        ("[web:children]\n[web 2]\n", 2, "invalid section header"),
        ("[web:hostz]\nh\n", 1, "unknown type 'hostz'"),
        ("[web:children]\ndb\n", 2, "group 'db' is never declared"),
        ("[web:vars]\nx=1\n", 1, "group 'web' is never declared"),
        ("[web:children]\ndb extra\n[db]\n", 2, "expected one group name"),
        ("[all:vars]\njust words\n", 2, "expected key=value"),
        ("[all:vars]\n1x=1\n", 2, "'1x' is not a valid variable name"),
        ("h x='open\n", 1, "No closing quotation"),
        ("h x=1\n---\n", 2, "YAML"),
        ("h ansible_port=ssh\n", 1, "ansible_port 'ssh' is not a port number"),
        ("h ansible_port=70000\n", 1, "out of range"),
        ("h ansible_connection=winrm\n", 1, "ansible_connection='winrm' is not supported"),
        ("h ansible_host='bad host'\n", 1, "host 'h'"),
        ("x=1 h\n", 1, "expected a host name before the variables"),
        ("[g:children]\nall\n", 2, "built-in group"),
        ("[ungrouped:children]\ng\n[g]\n", 2, "cannot have children"),
        ("[g]\nh\n[g:vars]\nansible_group_priority=high\n", 4, "not an integer"),
    ],
)
def test_ini_errors(tmp_path: Path, text: str, line: int, needle: str) -> None:
    assert needle in error_of(tmp_path, "inv.ini", text, line=line)


def test_ini_mixed_with_plain_syntax_explains_the_detection(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts", "hv1 ansible_user=root\nalpha root@10.0.0.5\n", line=2)
    assert "'root@10.0.0.5' is not a key=value host variable" in message
    assert "because of line 1" in message


def test_ini_cycle_names_the_loop_and_the_closing_line(tmp_path: Path) -> None:
    text = "[a:children]\nb\n[b:children]\nc\n[c:children]\na\n"
    message = error_of(tmp_path, "inv", text, line=6)
    assert "cycle (b -> c -> a -> b)" in message


def test_ini_self_child_is_a_cycle(tmp_path: Path) -> None:
    assert "(a -> a)" in error_of(tmp_path, "inv", "[a:children]\na\n", line=2)


def test_line_numbers_count_lines_not_other_separators(tmp_path: Path) -> None:
    # A form feed is a line break to str.splitlines() but not to an editor.
    error_of(tmp_path, "inv", "h\x0cj\n[bad\n", line=2)


# --------------------------------------------------------------------------- Ansible YAML

SITE_YAML = """\
all:
  vars:
    site: ams
    tier: none
  hosts:
    lone:
  children:
    prod:
      vars:
        ansible_user: ops
        tier: prod
        debug: false
      children:
        web:
          vars:
            tier: frontend
          hosts:
            hv[01:03]:
              ansible_port: 2222
            alpha:
              ansible_host: 10.0.0.5
              ansible_user: root
            beta:2200:
        db:
          hosts:
            dbx:
              ansible_connection: local
              labels: [a, b]
    ungrouped:
      hosts:
        spare:
staging:
  hosts:
    alpha:
    st1: {ansible_ssh_host: 10.9.9.9, ansible_ssh_port: 22, ansible_ssh_user: admin}
"""


def test_yaml_groups_nested_children(tmp_path: Path) -> None:
    inv = load(tmp_path, "site.yml", SITE_YAML)
    assert [h.name for h in inv.hosts] == [
        "lone",
        "hv01",
        "hv02",
        "hv03",
        "alpha",
        "beta",
        "dbx",
        "spare",
        "st1",
    ]
    assert inv.groups["web"] == ("hv01", "hv02", "hv03", "alpha", "beta")
    assert inv.groups["prod"] == ("hv01", "hv02", "hv03", "alpha", "beta", "dbx")
    assert inv.groups["staging"] == ("alpha", "st1")
    assert inv.groups["ungrouped"] == ("lone", "spare")
    assert host(inv, "alpha").groups == ("prod", "web", "staging")


def test_yaml_vars_inherit_and_host_wins(tmp_path: Path) -> None:
    inv = load(tmp_path, "site.yml", SITE_YAML)
    hv01 = host(inv, "hv01")
    assert hv01.vars["tier"] == "frontend"
    assert hv01.vars["site"] == "ams"
    assert hv01.vars["ansible_port"] == "2222"  # a number in YAML, a string here
    assert hv01.vars["debug"] == "false"
    assert host(inv, "dbx").vars["tier"] == "prod"
    assert "labels" not in host(inv, "dbx").vars  # lists do not become strings
    assert host(inv, "lone").vars == {"site": "ams", "tier": "none"}


def test_yaml_targets(tmp_path: Path) -> None:
    inv = load(tmp_path, "site.yml", SITE_YAML)
    assert targets(inv) == {
        "lone": "lone",
        "hv01": "ops@hv01:2222",
        "hv02": "ops@hv02:2222",
        "hv03": "ops@hv03:2222",
        "alpha": "root@10.0.0.5",
        "beta": "ops@beta:2200",
        "dbx": "local",
        "spare": "spare",
        "st1": "admin@10.9.9.9:22",
    }


def test_yaml_detected_by_content(tmp_path: Path) -> None:
    inv = load(tmp_path, "inventory", "# fleet\n---\nall:\n  hosts:\n    hv1:\n")
    assert [h.name for h in inv.hosts] == ["hv1"]
    inv = load(tmp_path, "inventory", "all:\n  hosts:\n    hv[a:b]:\n")
    assert [h.name for h in inv.hosts] == ["hva", "hvb"]
    inv = load(tmp_path, "inventory", '{"all": {"hosts": {"hv1": {"ansible_port": 22}}}}')
    assert targets(inv) == {"hv1": "hv1:22"}


def test_yaml_empty_document_is_an_empty_inventory(tmp_path: Path) -> None:
    assert load(tmp_path, "inv.yaml", "# nothing\n").hosts == ()


def test_yaml_null_value_unsets_an_inherited_var(tmp_path: Path) -> None:
    text = "all:\n  vars: {ansible_user: ops}\n  hosts:\n    h: {ansible_user: }\n"
    inv = load(tmp_path, "inv.yml", text)
    assert targets(inv) == {"h": "h"}


def test_yaml_aliases_are_walked_once(tmp_path: Path) -> None:
    # 30 levels of two aliases each is 2**30 paths if walked naively.
    lines = ["g0: &g0 {hosts: {h: }}"]
    for level in range(1, 31):
        below = f"*g{level - 1}"
        lines.append(f"g{level}: &g{level} {{children: {{a{level}: {below}, b{level}: {below}}}}}")
    lines.append("all: {children: {top: *g30}}")
    started = time.monotonic()
    inv = load(tmp_path, "bomb.yml", "\n".join(lines) + "\n")
    assert time.monotonic() - started < 10
    assert [h.name for h in inv.hosts] == ["h"]
    assert {"top", "a30", "b1", "g0"} <= set(host(inv, "h").groups)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("- hv1\n- hv2\n", 1, "must be a mapping of groups"),
        ("just a string\n", 1, "found a string"),
        ("all:\n  hosts: {a: }\nversion: 3\n", 3, "top-level key 'version' is not a group"),
        ("all:\n  hostz:\n    a:\n", 2, "unknown key 'hostz' in group 'all'"),
        ("settings:\n  colour: blue\n", 2, "unknown key 'colour' in group 'settings'"),
        ("all:\n  hosts:\n    - a\n    - b\n", 2, "hosts must be a mapping, found a list"),
        ("all:\n  hosts:\n    a: 3\n", 3, "must be a mapping, found a number"),
        ("all:\n  children:\n    g: [a]\n", 3, "child group 'g' must be a mapping"),
        ("all:\n  vars:\n    bad-name: 1\n", 3, "'bad-name' is not a valid variable name"),
        ("all:\n  hosts:\n    true:\n", 3, "host name must be text, found a boolean"),
        ("all:\n  hosts:\n    hv[3:1]:\n", 3, "start is after the end"),
        ("all:\n  hosts:\n    'two words':\n", 3, "'two words' is not a valid host name"),
        ("all:\n  hosts:\n    h: {ansible_host: 'a b'}\n", 3, "host 'h'"),
        ("all:\n  children:\n    'a b':\n", 3, "not a valid group name"),
        ("all:\n  children:\n    all:\n", 3, "built-in group"),
        ("all:\n  hosts: [\n", 3, "not valid YAML"),
        ("all:\n  hosts:\n   a:\n    b: 1\n  x\n", 6, "simple key (line 5)"),
        ("all: {}\n---\nall: {}\n", 2, "not valid YAML"),
    ],
)
def test_yaml_errors(tmp_path: Path, text: str, line: int, needle: str) -> None:
    assert needle in error_of(tmp_path, "inv.yml", text, line=line)


def test_yaml_cycle(tmp_path: Path) -> None:
    text = (
        "all:\n  children:\n    a:\n      children:\n        b:\n"
        "          children:\n            a:\n"
    )
    message = error_of(tmp_path, "inv.yml", text, line=7)
    assert "cycle (a -> b -> a)" in message or "cycle (b -> a -> b)" in message


def test_yaml_recursive_alias_is_a_cycle(tmp_path: Path) -> None:
    message = error_of(tmp_path, "inv.yml", "all: &a {children: {x: *a}}\n", line=1)
    assert "cycle" in message


def test_yaml_bad_date_is_an_input_error(tmp_path: Path) -> None:
    # PyYAML raises ValueError, not a YAML error, for a timestamp that is no real date.
    message = error_of(tmp_path, "inv.yml", "all:\n  vars: {d: 2024-02-30}\n")
    assert "not valid YAML" in message


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    text = "all: !!python/object/apply:os.system ['true']\n"
    message = error_of(tmp_path, "inv.yml", text, line=1)
    assert "not valid YAML" in message
    source = Path(inventory_module.__file__).read_text(encoding="utf-8")
    assert "yaml.load(" not in source and "safe_load" in source


# --------------------------------------------------------------------------- reading


def test_size_limit(tmp_path: Path) -> None:
    for name in ("big.yml", "big"):
        path = tmp_path / name
        path.write_bytes(b"hv1\n")
        os.truncate(path, MAX_INVENTORY_BYTES + 1)  # sparse: no 16 MiB written
        with pytest.raises(InputError, match=r"larger than 16 MiB"):
            load_inventory(str(path))
    at_limit = "hv1\n" + " " * (MAX_INVENTORY_BYTES - 4)
    assert [h.name for h in load(tmp_path, "edge", at_limit).hosts] == ["hv1"]


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing: cannot read the inventory"):
        load_inventory(str(tmp_path / "missing"))
    # A directory is an inventory source (as in Ansible); an empty one names the problem.
    with pytest.raises(InputError, match=r"no inventory file in this directory"):
        load_inventory(str(tmp_path))
    path = tmp_path / "latin1"
    path.write_bytes(b"hv1\nh\xe9\n")
    with pytest.raises(InputError, match=r"latin1 line 2: not UTF-8"):
        load_inventory(str(path))


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_bytes(b"\xef\xbb\xbfall:\n  hosts: {hv1: }\n")
    assert [h.name for h in load_inventory(str(path)).hosts] == ["hv1"]


# --------------------------------------------------------------------------- select


def test_select_by_host_group_and_all(tmp_path: Path) -> None:
    inv = load(tmp_path, "site", SITE_INI)
    assert [h.name for h in inv.select(["alpha"])] == ["alpha"]
    assert [h.name for h in inv.select(["db"])] == ["rack-a", "rack-b", "rack-c"]
    assert [h.name for h in inv.select(["prod"])] == list(inv.groups["prod"])
    assert inv.select(["all"]) == list(inv.hosts)
    assert [h.name for h in inv.select(["ungrouped"])] == ["mail.example.com"]
    # Pattern order, each host once.
    assert [h.name for h in inv.select(["db", "alpha", "web", "rack-a"])] == [
        "rack-a",
        "rack-b",
        "rack-c",
        "alpha",
        "hv01.example.com",
        "hv02.example.com",
        "hv03.example.com",
        "beta",
    ]
    assert inv.select([]) == []
    assert inv.select("alpha") == [host(inv, "alpha")]  # a lone string is one name


def test_select_group_wins_over_host_of_the_same_name(tmp_path: Path) -> None:
    inv = load(tmp_path, "inv", "web\n[web]\nhv1\n")
    assert [h.name for h in inv.select(["web"])] == ["hv1"]


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        ("nope", "no host or group named 'nope'"),
        ("web:db", "pattern operators"),
        ("hv*", "pattern operators"),
        ("", "an empty name selects nothing"),
    ],
)
def test_select_unknown_name(tmp_path: Path, pattern: str, needle: str) -> None:
    inv = load(tmp_path, "site", SITE_INI)
    with pytest.raises(InputError) as info:
        inv.select(["web", pattern])
    message = str(info.value)
    assert message.startswith(f"{inv.source}: ")
    assert needle in message
    assert "groups: web, db, prod" in message
    assert "\n" not in message


def test_results_are_immutable(tmp_path: Path) -> None:
    inv = load(tmp_path, "site", SITE_INI)
    with pytest.raises(TypeError):
        inv.groups["web"] = ()  # type: ignore[index]
    with pytest.raises(TypeError):
        inv.hosts[0].vars["x"] = "y"  # type: ignore[index]
    assert hash(inv.hosts[0]) == hash(host(inv, inv.hosts[0].name))


# --------------------------------------------------------------------------- fuzzing


def check_outcome(path: str) -> None:
    """Arbitrary input gives a consistent Inventory or a one-paragraph InputError."""
    try:
        inv = load_inventory(path)
    except InputError as err:
        message = str(err)
        assert "\n" not in message and message.startswith(path), message
        return
    names = [h.name for h in inv.hosts]
    assert len(names) == len(set(names))
    for h in inv.hosts:
        parse_host(h.target)
        assert "all" not in h.groups and h.groups
        for group in h.groups:
            assert h.name in inv.groups[group]
    for group, members in inv.groups.items():
        assert all(group in host(inv, name).groups for name in members)


INI_ALPHABET = "[]:=#;'\"\\ \t\nab01z-._@/"
INI_LINES = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "[g]",
                "[g:children]",
                "[g:vars]",
                "[h:children]",
                "[h]",
                "[all:vars]",
                "hv[01:03]",
                "hv[a:c] x=1",
                "h ansible_host=10.0.0.1 ansible_port=22",
                "h ansible_connection=local",
                "g",
                "h",
                "x=1",
                "alias root@h:22",
                "# c",
            ]
        ),
        st.text(INI_ALPHABET, max_size=30),
    ),
    max_size=12,
).map("\n".join)


@FUZZ
@given(text=st.text(max_size=300))
def test_fuzz_arbitrary_text(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "fuzz", text)
    check_outcome(path)


@FUZZ
@given(text=INI_LINES)
def test_fuzz_ini_and_plain_shapes(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "fuzz", text)
    check_outcome(path)


YAML_ATOMS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["h", "hv[1:2]", "a b", "local"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["all", "hosts", "children", "vars", "g", "h", "ansible_port", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@FUZZ
@given(data=YAML_ATOMS)
def test_fuzz_yaml_shapes(tmp_path: Path, data: object) -> None:
    import yaml

    path = write(tmp_path, "fuzz.yml", yaml.safe_dump(data))
    check_outcome(path)
