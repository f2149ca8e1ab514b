"""Host inventories for fleet commands: one file naming many hosts -> :class:`Inventory`.

Three formats are read. :func:`load_inventory` picks one by these rules, first match wins:

1. **Ansible YAML** when the file name ends in ``.yml`` or ``.yaml``, or when its first line
   that is neither blank nor a comment (``#`` or ``;``) is ``---``, a ``%`` directive, starts a
   flow mapping ``{`` or a list ``- ``, or is a mapping key (``all:``: a colon followed by a
   space or the end of the line, which no HOST string has).
2. **Ansible INI** when any line uses something only INI has: a tagged section header
   (``[web:children]``, ``[web:vars]``, any ``[name:tag]``), a ``key=value`` word, or a host
   range such as ``hv[01:20]`` in a host's first word.
3. Otherwise a **plain hosts file**.

Plain hosts file: one host per line, ``name HOST`` (an alias, then the HOST string to gather)
or just ``HOST`` (then the name is the HOST as written); ``#`` starts a comment; ``[group]``
headers put the hosts after them in that group. HOST is what :func:`migcheck.hosts.parse_host`
accepts: ``local``, a facts ``.json`` path, ``[user@]name[:port]`` or ``ssh://...``.

Ansible INI and YAML follow Ansible's inventory plugins: ``[group]``, ``[group:children]``,
``[group:vars]`` sections (a group named by ``:children`` or ``:vars`` must be declared by a
``[group]`` or ``[group:children]`` header somewhere in the file), or nested ``hosts`` /
``children`` / ``vars`` mappings under top-level groups (usually just ``all``); host lines
``name key=value ...`` (shell quoting, ``#`` comments), ``name:port`` patterns and ranges
(``[01:20]`` numeric, zero padding kept; ``[a:f]`` alphabetic; optional ``:step``). Group vars
apply to the hosts of the group and of its descendants, in Ansible's order (``all`` first,
then shallower groups before deeper ones, ties broken by ``ansible_group_priority`` then
name) and host vars win. The HOST to gather is ``local`` when ``ansible_connection`` is
``local``, else ``[ansible_user@](ansible_host or name)[:ansible_port]``; the legacy
``ansible_ssh_host`` / ``ansible_ssh_port`` / ``ansible_ssh_user`` are honoured and, as in
Ansible's ssh connection plugin, win when both spellings are set. Other connection types are
refused: migcheck reaches hosts only over SSH or locally.

In every format: hosts keep file order and appear once (a host listed again joins more groups;
in INI and YAML its vars merge, later values winning); ``all`` holds every host and is not
listed among a host's groups; ``ungrouped`` holds the hosts that are in no other group; a
relative facts-file path is taken relative to the inventory's directory, as paths in a config
file are; every target is checked with ``parse_host``. Anything wrong is an
:class:`InputError` (exit 2) naming the file and, where it is known, the line.
"""

from __future__ import annotations

import ast
import ipaddress
import itertools
import json
import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, NoReturn

import yaml

from migcheck.errors import InputError
from migcheck.hosts import parse_host

# YAML aliases let a small file describe a huge tree, and a 16 MiB inventory is far beyond any
# real fleet, so larger files are refused before they are parsed.
MAX_INVENTORY_BYTES = 16 * 1024 * 1024
# Ranges multiply (``h[0:999][0:999]``); cap the expansion so a typo cannot exhaust memory.
MAX_HOSTS = 100_000
# Resolving nested groups costs up to hosts x groups; bound the second factor too.
MAX_GROUPS = 10_000

ALL = "all"
UNGROUPED = "ungrouped"
_BUILTIN_GROUPS = (ALL, UNGROUPED)

_YAML_SUFFIXES = (".yml", ".yaml")
_LOCAL_CONNECTIONS = frozenset({"local", "ansible.builtin.local", "ansible.legacy.local"})
_SSH_CONNECTIONS = frozenset(
    {
        "ssh",
        "smart",
        "paramiko",
        "paramiko_ssh",
        "ansible.builtin.ssh",
        "ansible.builtin.paramiko_ssh",
        "ansible.legacy.ssh",
        "ansible.legacy.paramiko_ssh",
    }
)

# Ansible's INI section header: ``[name]`` or ``[name:tag]``, then only a comment.
_SECTION_RE = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_TAGGED_SECTION_RE = re.compile(r"^\[[^:\]\s]+:[^\]]*\]")
_RANGE_HINT_RE = re.compile(r"\[[0-9A-Za-z]*:[0-9A-Za-z]+(?::[0-9]*)?\]")
_RANGE_RE = re.compile(r"([0-9]*|[A-Za-z]):([0-9]+|[A-Za-z])(?::([0-9]+))?")
_YAML_KEY_RE = re.compile(r"""^(?:[^\s#;\[\]{}=:'"][^\s=:]*|"[^"\n]*"|'[^'\n]*'):(?:\s|$)""")
_PORT_SUFFIX_RE = re.compile(r"^(.*[^:]):([0-9]+)$")
_VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GROUP_NAME_RE = re.compile(r"^[^\s:\[\],]+$")
# shlex's own whitespace: splitting on exactly it keeps the fast path equal to shlex.split.
_SHLEX_SPACE_RE = re.compile(r"[ \t\r\n]+")
_MAX_RANGE_DIGITS = 9  # ``[0:999999999]`` is already far past MAX_HOSTS


@dataclass(frozen=True)
class InventoryHost:
    """One host of an inventory."""

    name: str  # inventory name (alias), as the operator knows the host
    target: str  # HOST string to gather, valid for parse_host
    groups: tuple[str, ...]  # every group holding the host, parents included, "all" not
    vars: Mapping[str, str] = field(hash=False)  # merged group and host vars, as strings


@dataclass(frozen=True)
class Inventory:
    """Hosts and groups read from one inventory file."""

    source: str
    hosts: tuple[InventoryHost, ...]  # in file order, each name once
    groups: Mapping[str, tuple[str, ...]] = field(hash=False)  # group -> host names, nested

    def select(self, patterns: Sequence[str]) -> list[InventoryHost]:
        """Hosts named by ``patterns``: host names, group names or ``all``.

        Like Ansible, a name that is both a group and a host means the group. The result
        follows the patterns' order (a group's hosts in file order) with repeats dropped.
        """
        if isinstance(patterns, str):  # a bare string would otherwise select its letters
            patterns = [patterns]
        by_name = {host.name: host for host in self.hosts}
        chosen: dict[str, InventoryHost] = {}
        for pattern in patterns:
            if pattern == ALL:
                names: Sequence[str] = [host.name for host in self.hosts]
            elif pattern in self.groups:
                names = self.groups[pattern]
            elif pattern in by_name:
                names = [pattern]
            else:
                raise InputError(self._unknown(pattern))
            for name in names:
                chosen.setdefault(name, by_name[name])
        return list(chosen.values())

    def _unknown(self, pattern: str) -> str:
        known = [g for g in self.groups if g != UNGROUPED]
        listed = ", ".join(_oneline(g, 40) for g in known[:10]) + (
            ", ..." if len(known) > 10 else ""
        )
        message = (
            f"{_oneline(self.source)}: no host or group named {_oneline(pattern)!r} "
            f"({len(self.hosts)} hosts; groups: {listed or 'none'})"
        )
        if not pattern:
            message += "; an empty name selects nothing"
        elif any(ch in pattern for ch in ":,!&*?~"):
            message += (
                "; give exact host or group names: Ansible pattern operators such as "
                "':', ',', '!', '&' and wildcards are not supported"
            )
        return message


def load_inventory(path: str) -> Inventory:
    """Read the inventory at ``path``; the format is detected (module docstring).

    Like Ansible, ``path`` may also be a directory (every inventory file in it, sorted by
    name; ``group_vars``/``host_vars`` and the extensions Ansible ignores are skipped), an
    executable inventory script (run with ``--list``), or the JSON that such a script or
    ``ansible-inventory --list`` prints. ``group_vars/`` and ``host_vars/`` beside a file, or
    inside a directory, apply with Ansible's precedence."""
    path = os.fspath(path)
    builder = _Builder(path)
    if os.path.isdir(path):
        read = 0
        for name in sorted(os.listdir(path)):
            child = os.path.join(path, name)
            if name in _VARS_DIRS or name.startswith(".") or name.endswith(_IGNORED_EXTS):
                continue
            if os.path.isdir(child):
                continue  # Ansible does not descend into subdirectories of a source
            builder.source = child
            _parse_file(child, builder)
            read += 1
        builder.source = path
        if not read:
            raise InputError(f"{_oneline(path)}: no inventory file in this directory")
        base = path
    else:
        _parse_file(path, builder)
        base = os.path.dirname(path) or "."
    _adjacent_vars(base, builder)
    return builder.finish()


# What Ansible's inventory directory loader skips (INVENTORY_IGNORE_EXTS, its default).
_IGNORED_EXTS = (
    ".pyc",
    ".pyo",
    ".swp",
    ".bak",
    "~",
    ".rpm",
    ".md",
    ".txt",
    ".rst",
    ".orig",
    ".cfg",
    ".retry",
    ".ini~",
)
_VARS_DIRS = ("group_vars", "host_vars")
_VARS_EXTS = ("", ".yml", ".yaml", ".json")
SCRIPT_TIMEOUT = 60.0  # an inventory script that hangs must not hang migcheck


def _parse_file(path: str, builder: _Builder) -> None:
    if _is_script(path):
        _parse_list_json(_run_script(path), builder, path)
        return
    text = _read(path)
    if _looks_like_list_json(text):
        _parse_list_json(text, builder, path)
        return
    lines = text.split("\n")  # not splitlines(): line numbers must match an editor's
    if path.lower().endswith(_YAML_SUFFIXES) or _looks_like_yaml(lines):
        _parse_yaml(text, builder)
    else:
        ini_line = _ini_marker(lines)
        if ini_line is None:
            _parse_plain(lines, builder)
        else:
            _parse_ini(lines, builder, ini_line)


def _is_script(path: str) -> bool:
    """Ansible's script plugin: an executable file (not YAML by name) is run, not read."""
    if path.lower().endswith((*_YAML_SUFFIXES, ".json", ".ini")):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
    except OSError:
        return False
    return head == b"#!" and os.access(path, os.X_OK)


def _run_script(path: str) -> str:
    import subprocess

    where = _oneline(path)
    try:
        done = subprocess.run(
            [os.path.abspath(path), "--list"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=SCRIPT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{where}: inventory script gave no answer to --list in {SCRIPT_TIMEOUT:.0f} s"
        ) from None
    except OSError as err:
        raise InputError(f"{where}: cannot run the inventory script: {err.strerror}") from None
    if done.returncode != 0:
        tail = _oneline(done.stderr.decode(errors="replace").strip(), 300)
        raise InputError(
            f"{where}: inventory script --list exited with status {done.returncode}: {tail}"
        )
    if len(done.stdout) > MAX_INVENTORY_BYTES:
        raise InputError(_too_big(where))
    return done.stdout.decode("utf-8", errors="replace")


def _looks_like_list_json(text: str) -> bool:
    """``ansible-inventory --list`` / script JSON: an object whose values are groups with a
    ``hosts`` list or ``children`` list, or that has ``_meta`` (YAML would misread it)."""
    if not text.lstrip().startswith("{"):
        return False
    try:
        data = json.loads(text)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    if "_meta" in data:
        return True
    return any(
        isinstance(v, list)
        or (isinstance(v, dict) and any(isinstance(v.get(k), list) for k in ("hosts", "children")))
        for v in data.values()
    )


def _parse_list_json(text: str, builder: _Builder, path: str) -> None:
    """Ansible's script-inventory JSON: groups (``hosts``/``children`` lists, ``vars``; a bare
    list is a group's hosts) and ``_meta.hostvars``."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise builder.fail(None, f"not valid inventory JSON: {_oneline(str(err), 200)}") from None
    if not isinstance(data, dict):
        raise builder.fail(None, f"inventory JSON must be an object, found {_kind(data)}")
    meta = data.get("_meta") or {}
    hostvars = meta.get("hostvars") if isinstance(meta, dict) else None
    if hostvars is not None and not isinstance(hostvars, dict):
        raise builder.fail(None, "_meta.hostvars must be an object")
    for name, body in data.items():
        if name == "_meta":
            continue
        builder.group(name, None)
        if isinstance(body, list):
            body = {"hosts": body}
        if not isinstance(body, dict):
            raise builder.fail(None, f"group {_oneline(name)!r} must be an object or a list")
        for key in ("hosts", "children"):
            if not isinstance(body.get(key) or [], list):
                raise builder.fail(
                    None,
                    f"group {_oneline(name)!r}: {key} must be a list, found {_kind(body.get(key))}",
                )
        for host in body.get("hosts") or ():
            builder.add_host(_json_name(host, builder), None, name, {})
        for key, value in _json_vars(body.get("vars"), builder, f"group {name!r}").items():
            builder.set_group_var(name, key, value, None)
        for child in body.get("children") or ():
            builder.group(_json_name(child, builder), None)
            builder.add_child(name, _json_name(child, builder), None)
    for host, hvars in (hostvars or {}).items():
        builder.add_host(str(host), None, UNGROUPED, _json_vars(hvars, builder, f"host {host!r}"))
    if hostvars is None and _is_script(path):
        # No _meta: Ansible asks the script per host (``--host NAME``); migcheck too.
        for host in list(builder.hosts):
            try:
                more = json.loads(_run_script_host(path, host) or "{}")
            except ValueError as err:
                raise builder.fail(None, f"--host {_oneline(host)}: not JSON: {err}") from None
            builder.hosts[host].vars.update(_json_vars(more, builder, f"host {host!r}"))


def _json_name(value: Any, builder: _Builder) -> str:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise builder.fail(None, f"a host name must be text, found {_kind(value)}")


def _run_script_host(path: str, host: str) -> str:
    import subprocess

    done = subprocess.run(
        [os.path.abspath(path), "--host", host],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise InputError(
            f"{_oneline(path)}: inventory script --host {_oneline(host)} exited with status "
            f"{done.returncode}"
        )
    return done.stdout.decode("utf-8", errors="replace")


def _json_vars(value: Any, builder: _Builder, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise builder.fail(None, f"{what}: vars must be an object, found {_kind(value)}")
    out: dict[str, str] = {}
    for key, item in value.items():
        text = _scalar_text(item)
        if text is not None:
            out[str(key)] = text
    return out


def _adjacent_vars(base: str, builder: _Builder) -> None:
    """``group_vars/NAME[.yml|.yaml|.json]`` or ``group_vars/NAME/`` (every file, sorted),
    and the same under ``host_vars/``, as Ansible's host_group_vars plugin reads them."""
    source = builder.source
    for kind, target, names in (
        ("group_vars", builder.dir_group_vars, list(builder.groups)),
        ("host_vars", builder.dir_host_vars, list(builder.hosts)),
    ):
        root = os.path.join(base, kind)
        if not os.path.isdir(root):
            continue
        for name in names:
            merged: dict[str, str] = {}
            for found in _vars_files(root, name):
                builder.source = found
                merged.update(_yaml_vars(_load_vars_file(found), (), builder, f"{kind} file"))
            if merged:
                target[name] = merged
    builder.source = source


def _vars_files(root: str, name: str) -> list[str]:
    found: list[str] = []
    for ext in _VARS_EXTS:
        path = os.path.join(root, name + ext)
        if os.path.isfile(path):
            found.append(path)
        elif ext == "" and os.path.isdir(path):
            for top, dirs, files in os.walk(path):
                dirs.sort()
                for f in sorted(files):
                    if not f.startswith(".") and not f.endswith(_IGNORED_EXTS):
                        found.append(os.path.join(top, f))
    return found


def _load_vars_file(path: str) -> Any:
    text = _read(path)
    try:
        return yaml.safe_load(text)
    except Exception as err:
        raise InputError(f"{_oneline(path)}: not valid YAML: {_oneline(str(err), 200)}") from None


# --------------------------------------------------------------------------- reading, detection


def _read(path: str) -> str:
    where = _oneline(path)
    try:
        with open(path, "rb") as handle:
            # stat first so a huge regular file is refused unread; the bounded read also
            # covers pipes and devices, whose size stat cannot tell.
            if os.fstat(handle.fileno()).st_size > MAX_INVENTORY_BYTES:
                raise InputError(_too_big(where))
            data = handle.read(MAX_INVENTORY_BYTES + 1)
    except OSError as err:
        reason = err.strerror or str(err)
        raise InputError(f"{where}: cannot read the inventory: {reason}") from None
    except ValueError as err:  # e.g. an embedded NUL in the path
        raise InputError(f"{where}: cannot read the inventory: {err}") from None
    if len(data) > MAX_INVENTORY_BYTES:
        raise InputError(_too_big(where))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputError(
            f"{where} line {line}: not UTF-8 text (byte {err.start}): expected an inventory"
        ) from None
    return text.removeprefix("\ufeff")  # a BOM some editors write is not content


def _too_big(where: str) -> str:
    return (
        f"{where}: inventory is larger than {MAX_INVENTORY_BYTES // (1024 * 1024)} MiB; "
        "split the fleet into several inventories"
    )


def _significant(line: str) -> str:
    stripped = line.strip()
    return "" if not stripped or stripped[0] in "#;" else stripped


def _looks_like_yaml(lines: list[str]) -> bool:
    for line in lines:
        first = _significant(line)
        if not first:
            continue
        return (
            first.startswith(("---", "%", "{", "- "))
            or first == "-"
            or _YAML_KEY_RE.match(first) is not None
        )
    return False


def _ini_marker(lines: list[str]) -> int | None:
    """Line number of the first INI-only construct, or None for a plain hosts file."""
    for number, line in enumerate(lines, 1):
        text = _significant(line)
        if not text:
            continue
        words = _SHLEX_SPACE_RE.split(text.split("#", 1)[0].strip())
        if text.startswith("[") and not _is_bracketed_ipv6(words[0]):
            if _TAGGED_SECTION_RE.match(text):
                return number
            continue
        if any("=" in word for word in words) or _RANGE_HINT_RE.search(words[0]):
            return number
    return None


# --------------------------------------------------------------------------- building


# "where" below is a line number, a YAML key path (resolved to a line only for a message), or
# None when unknown.


@dataclass
class _HostDraft:
    name: str
    where: Any
    vars: dict[str, str] = field(default_factory=dict)
    target: str | None = None  # plain files give the HOST directly
    groups: list[str] = field(default_factory=list)  # direct groups, first-seen order


@dataclass
class _GroupDraft:
    name: str
    where: Any
    declared: bool = False
    children: dict[str, Any] = field(default_factory=dict)  # child -> where it was named
    vars: dict[str, str] = field(default_factory=dict)
    var_where: dict[str, Any] = field(default_factory=dict)  # var -> where it was set


class _Builder:
    """Hosts and groups as parsed, before inheritance is resolved and targets are checked."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.hosts: dict[str, _HostDraft] = {}
        self.groups: dict[str, _GroupDraft] = {
            name: _GroupDraft(name, None, True) for name in _BUILTIN_GROUPS
        }
        # group_vars/ and host_vars/ beside the inventory: they outrank the inventory's own
        # group and host vars respectively (Ansible's variable precedence).
        self.dir_group_vars: dict[str, dict[str, str]] = {}
        self.dir_host_vars: dict[str, dict[str, str]] = {}
        # YAML parsers replace this: key paths become line numbers only when an error needs one.
        self.locate: Callable[[tuple[Any, ...]], int | None] = lambda _path: None

    # ---- errors

    def line(self, where: Any) -> int | None:
        return self.locate(where) if isinstance(where, tuple) else where

    def where(self, where: Any) -> str:
        line = self.line(where)
        src = _oneline(self.source)
        return f"{src} line {line}" if line else src

    def fail(self, where: Any, message: str) -> InputError:
        return InputError(f"{self.where(where)}: {message}")

    # ---- construction

    def group(self, name: str, where: Any, declare: bool = True) -> _GroupDraft:
        if not _GROUP_NAME_RE.match(name) or not name.isprintable():
            raise self.fail(
                where,
                f"{_oneline(name)!r} is not a valid group name "
                "(it must be non-empty, without spaces, ':', ',', '[' or ']')",
            )
        draft = self.groups.get(name)
        if draft is None:
            if len(self.groups) >= MAX_GROUPS:
                raise self.fail(where, f"more than {MAX_GROUPS} groups; split the inventory")
            draft = self.groups[name] = _GroupDraft(name, where)
        draft.declared = draft.declared or declare
        return draft

    def add_host(
        self,
        name: str,
        where: Any,
        group: str,
        host_vars: Mapping[str, str],
        target: str | None = None,
    ) -> None:
        if not name or any(ch.isspace() or not ch.isprintable() for ch in name):
            raise self.fail(where, f"{_oneline(name)!r} is not a valid host name")
        draft = self.hosts.get(name)
        if draft is None:
            if len(self.hosts) >= MAX_HOSTS:
                raise self.fail(where, f"more than {MAX_HOSTS} hosts; split the inventory")
            draft = self.hosts[name] = _HostDraft(name, where, target=target)
        elif target is not None and draft.target != target:
            raise self.fail(
                where,
                f"host {_oneline(name)!r} is already listed as {_oneline(draft.target or '')!r} "
                f"on line {self.line(draft.where)}; one name cannot have two targets",
            )
        draft.vars.update(host_vars)
        if group not in _BUILTIN_GROUPS and group not in draft.groups:
            # Membership of "all" / "ungrouped" is worked out at the end, as Ansible does.
            draft.groups.append(group)

    def add_child(self, parent: str, child: str, where: Any) -> None:
        if parent == ALL and child == UNGROUPED:
            return  # Ansible's own layout ("all: children: ungrouped:"), nothing to record
        if child in _BUILTIN_GROUPS:
            raise self.fail(where, f"{child!r} is a built-in group and cannot be a child group")
        if parent == UNGROUPED:
            raise self.fail(where, "'ungrouped' is a built-in group and cannot have children")
        self.group(child, where, declare=False)
        if parent != ALL:  # every group is already below "all"
            self.groups[parent].children.setdefault(child, where)

    def set_group_var(self, group: str, key: str, value: str, where: Any) -> None:
        draft = self.groups[group]
        draft.vars[key] = value
        draft.var_where[key] = where

    # ---- resolution

    def finish(self) -> Inventory:
        order = self._topological_order()
        parents: dict[str, list[str]] = {name: [] for name in self.groups}
        for name, draft in self.groups.items():
            for child in draft.children:
                parents[child].append(name)
        # Ansible's depth: the longest path from "all"; parents come first in ``order``.
        depth: dict[str, int] = {ALL: 0}
        for name in order:
            if name != ALL:
                depth[name] = 1 + max((depth[p] for p in parents[name]), default=0)
        rank = {name: index for index, name in enumerate(self.groups)}
        priority = {name: self._priority(name) for name in self.groups}
        closures: dict[tuple[str, ...], tuple[str, ...]] = {}

        hosts: list[InventoryHost] = []
        members: dict[str, list[str]] = {name: [] for name in self.groups if name != ALL}
        for draft in self.hosts.values():
            direct = tuple(draft.groups)
            groups = closures.get(direct)
            if groups is None:
                # Many hosts share their direct groups, so walk up to the ancestors once per set.
                groups = closures[direct] = _closure(direct, parents, rank)
            for group in groups:
                members[group].append(draft.name)
            merged: dict[str, str] = {}
            ordered = sorted([ALL, *groups], key=lambda g: (depth[g], priority[g], g))
            for group in ordered:
                merged.update(self.groups[group].vars)
            for group in ordered:  # group_vars/all, then group_vars/GROUP: above the file's
                merged.update(self.dir_group_vars.get(group, ()))
            merged.update(draft.vars)
            merged.update(self.dir_host_vars.get(draft.name, ()))
            target = self._target(draft, merged)
            hosts.append(InventoryHost(draft.name, target, groups, MappingProxyType(merged)))
        ungrouped = members.pop(UNGROUPED)
        members[UNGROUPED] = ungrouped  # after the file's own groups
        return Inventory(
            source=self.source,
            hosts=tuple(hosts),
            groups=MappingProxyType({name: tuple(names) for name, names in members.items()}),
        )

    def _topological_order(self) -> list[str]:
        """Groups with every parent before its children; a cycle is an InputError."""
        indegree = {name: 0 for name in self.groups}
        for draft in self.groups.values():
            for child in draft.children:
                indegree[child] += 1
        ready = [name for name, count in indegree.items() if count == 0]
        order: list[str] = []
        while ready:
            name = ready.pop()
            order.append(name)
            for child in self.groups[name].children:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        if len(order) < len(self.groups):
            self._report_cycle({name for name, count in indegree.items() if count > 0})
        return order

    def _report_cycle(self, stuck: set[str]) -> NoReturn:
        # Every group left over has a parent that is also left over, so walking up from any
        # of them must come back to a group already on the walk: that loop is a cycle.
        parent_of = {
            child: name
            for name in self.groups
            if name in stuck
            for child in self.groups[name].children
            if child in stuck
        }
        walk = [next(name for name in self.groups if name in stuck)]
        position = {walk[0]: 0}
        while parent_of[walk[-1]] not in position:
            position[parent_of[walk[-1]]] = len(walk)
            walk.append(parent_of[walk[-1]])
        loop = walk[position[parent_of[walk[-1]]] :]
        cycle = [*reversed(loop), loop[-1]]  # parent -> child order, closed
        edges = list(itertools.pairwise(cycle))
        lines = [self.line(self.groups[p].children[c]) or 0 for p, c in edges]
        parent, child = edges[max(range(len(edges)), key=lines.__getitem__)]
        path = " -> ".join(_oneline(name, 40) for name in cycle)
        raise self.fail(
            self.groups[parent].children[child],
            f"group children form a cycle ({path}); a group cannot contain itself",
        )

    def _priority(self, name: str) -> int:
        draft = self.groups[name]
        text = draft.vars.get("ansible_group_priority", "1")
        try:
            return int(text)
        except ValueError:
            raise self.fail(
                draft.var_where.get("ansible_group_priority"),
                f"group {_oneline(name)!r}: ansible_group_priority {_oneline(text)!r} "
                "is not an integer",
            ) from None

    def _target(self, draft: _HostDraft, merged: Mapping[str, str]) -> str:
        name = _oneline(draft.name)
        try:
            target = (
                draft.target if draft.target is not None else _ansible_target(draft.name, merged)
            )
            if not target.isprintable():
                raise InputError(f"HOST {_oneline(target)!r} contains control characters")
            ref = parse_host(target)
        except InputError as err:
            raise self.fail(draft.where, f"host {name!r}: {err}") from None
        if ref.kind == "file" and not os.path.isabs(target):
            base = os.path.dirname(self.source)
            return os.path.join(base, target) if base else target
        return target


def _closure(
    direct: tuple[str, ...], parents: Mapping[str, list[str]], rank: Mapping[str, int]
) -> tuple[str, ...]:
    """Direct groups plus all their ancestors, in file order; none at all means ungrouped."""
    found = set(direct)
    todo = list(direct)
    while todo:
        for parent in parents[todo.pop()]:
            if parent not in found:
                found.add(parent)
                todo.append(parent)
    return tuple(sorted(found, key=rank.__getitem__)) if found else (UNGROUPED,)


def _ansible_target(name: str, merged: Mapping[str, str]) -> str:
    """``[user@]host[:port]`` from Ansible's connection variables (module docstring)."""
    connection = merged.get("ansible_connection", "")
    if connection in _LOCAL_CONNECTIONS:
        return "local"
    if connection and connection not in _SSH_CONNECTIONS:
        raise InputError(
            f"ansible_connection={_oneline(connection)!r} is not supported: migcheck reaches "
            "hosts over SSH or as 'local'"
        )
    # The legacy spelling is listed after the modern one in Ansible's connection plugins, and
    # a later-listed variable takes precedence there.
    host = merged.get("ansible_ssh_host") or merged.get("ansible_host") or name
    port = merged.get("ansible_ssh_port") or merged.get("ansible_port") or ""
    user = merged.get("ansible_ssh_user") or merged.get("ansible_user") or ""
    if port and not (port.isascii() and port.isdigit()):
        raise InputError(f"ansible_port {_oneline(port)!r} is not a port number")
    if ":" in host and not host.startswith("[") and _is_ipv6(host):
        host = f"[{host}]"  # so the port separator stays unambiguous
    return f"{user + '@' if user else ''}{host}{':' + port if port else ''}"


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- host patterns


def _expand_pattern(pattern: str) -> tuple[list[str], str | None]:
    """``hv[01:03].lab:2222`` -> (["hv01.lab", "hv02.lab", "hv03.lab"], "2222").

    Raises ValueError with the operator-facing reason.
    """
    if pattern.startswith("[") and pattern.count("]") == 1:
        inner, _, rest = pattern[1:].partition("]")
        if _is_ipv6(inner) and (not rest or re.fullmatch(r":[0-9]+", rest)):
            return [inner], rest[1:] or None
    if _is_ipv6(pattern):  # a bare IPv6 address has no room for a port
        return [pattern], None
    port = None
    m = _PORT_SUFFIX_RE.match(pattern)
    if m and m.group(1).count("[") == m.group(1).count("]"):
        pattern, port = m.group(1), m.group(2)
    if pattern.endswith(":"):
        raise ValueError("a host name cannot end in ':' (it introduces a port number)")
    parts: list[list[str]] = []
    budget = MAX_HOSTS
    pos = 0
    while True:
        start = pattern.find("[", pos)
        close = pattern.find("]", pos)
        if start < 0 <= close or 0 <= close < start:
            raise ValueError("']' without a matching '['")
        if start < 0:
            parts.append([pattern[pos:]])
            break
        end = pattern.find("]", start + 1)
        if end < 0:
            raise ValueError("unterminated range: '[' without a matching ']'")
        values = _range_values(pattern[start + 1 : end], budget)
        budget //= len(values)
        parts.extend(([pattern[pos:start]], values))
        pos = end + 1
    return ["".join(choice) for choice in itertools.product(*parts)], port


def _range_values(inner: str, budget: int) -> list[str]:
    shown = f"[{_oneline(inner, 40)}]"
    m = _RANGE_RE.fullmatch(inner)
    if not m:
        raise ValueError(
            f"bad range {shown}: expected [start:end] or [start:end:step] with numbers "
            "(hv[01:20]) or single letters (rack[a:f])"
        )
    begin, end, step_text = m.group(1) or "0", m.group(2), m.group(3)
    if step_text and len(step_text) > _MAX_RANGE_DIGITS:
        raise ValueError(f"bad range {shown}: numbers too large")
    step = int(step_text) if step_text else 1
    if step <= 0:
        raise ValueError(f"bad range {shown}: the step must be a positive number")
    if begin.isdigit() != end.isdigit():
        raise ValueError(f"bad range {shown}: mixes a number and a letter")
    if begin.isdigit():
        if max(len(begin), len(end)) > _MAX_RANGE_DIGITS:
            raise ValueError(f"bad range {shown}: numbers too large")
        low, high = int(begin), int(end)
        width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
        if width and len(end) != width:
            raise ValueError(
                f"bad range {shown}: a zero-padded start and the end must have the same width"
            )
    else:
        if begin.islower() != end.islower():
            raise ValueError(f"bad range {shown}: mixes lower and upper case letters")
        low, high, width = ord(begin), ord(end), -1
    if low > high:
        raise ValueError(f"bad range {shown}: the start is after the end")
    if (high - low) // step + 1 > budget:
        raise ValueError(f"range {shown} expands to more than {MAX_HOSTS} hosts")
    if width < 0:
        return [chr(value) for value in range(low, high + 1, step)]
    return [str(value).zfill(width) for value in range(low, high + 1, step)]


# --------------------------------------------------------------------------- plain hosts file


def _parse_plain(lines: list[str], builder: _Builder) -> None:
    group = UNGROUPED
    for number, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        words = text.split()
        if text.startswith("[") and not _is_bracketed_ipv6(words[0]):
            group = _section(text, builder, number, tags=False)[0]
            builder.group(group, number)
            continue
        if len(words) > 2:
            raise builder.fail(
                number,
                f"expected 'HOST' or 'name HOST', found {len(words)} words; "
                "Ansible host variables need key=value",
            )
        name, target = words[0], words[-1]
        builder.add_host(name, number, group, {}, target=target)


def _is_bracketed_ipv6(word: str) -> bool:
    """``[fe80::1]`` or ``[fe80::1]:22``: a plain-file HOST, not a ``[group]`` header."""
    inner, close, _ = word[1:].partition("]")
    return word.startswith("[") and bool(close) and _is_ipv6(inner)


def _section(text: str, builder: _Builder, number: int, tags: bool) -> tuple[str, str]:
    """``[name]`` / ``[name:tag]`` -> (name, tag); a malformed header is an InputError."""
    shown = _oneline(text)
    if "]" not in text:
        raise builder.fail(number, f"unterminated section header {shown!r}: no closing ']'")
    m = _SECTION_RE.match(text)
    if not m or (m.group(2) is not None and not tags):
        raise builder.fail(
            number,
            f"invalid section header {shown!r}: expected [group]"
            + (", [group:children] or [group:vars]" if tags else "")
            + " with a group name without spaces",
        )
    name, tag = m.group(1), (m.group(2) or "hosts")
    if tag not in ("hosts", "children", "vars"):
        raise builder.fail(
            number,
            f"section [{_oneline(name)}:{_oneline(tag)}] has unknown type {tag!r} "
            "(expected children or vars)",
        )
    return name, tag


# --------------------------------------------------------------------------- Ansible INI


def _parse_ini(lines: list[str], builder: _Builder, marker: int) -> None:
    group, state = UNGROUPED, "hosts"
    references: dict[str, int] = {}  # group named by :children/:vars -> first line doing so
    for number, raw in enumerate(lines, 1):
        text = _significant(raw)
        if not text:
            continue
        if text.startswith("["):
            group, state = _section(text, builder, number, tags=True)
            if state == "vars":
                builder.group(group, number, declare=False)
                references.setdefault(group, number)
            else:
                builder.group(group, number)
            continue
        if text == "---":
            raise builder.fail(number, "'---' starts a YAML document; name the file .yml")
        words = _ini_words(text, builder, number)
        if not words:
            continue
        if state == "hosts":
            _ini_host(words, group, builder, number, marker)
        elif state == "children":
            if len(words) != 1:
                raise builder.fail(number, f"expected one group name, found {_oneline(text)!r}")
            builder.add_child(group, words[0], number)
            references.setdefault(words[0], number)
        else:
            key, value = _ini_var(text, builder, number)
            builder.set_group_var(group, key, value, number)
    for name, number in references.items():
        if not builder.groups[name].declared:
            raise builder.fail(
                number,
                f"group {_oneline(name)!r} is never declared: add a [{_oneline(name)}] "
                f"or [{_oneline(name)}:children] section (or fix the name)",
            )


def _ini_words(text: str, builder: _Builder, number: int) -> list[str]:
    if not any(ch in text for ch in "'\"\\"):
        # Same result as shlex without its per-character cost, which matters for big files.
        return [word for word in _SHLEX_SPACE_RE.split(text.split("#", 1)[0]) if word]
    try:
        return shlex.split(text, comments=True)
    except ValueError as err:
        raise builder.fail(number, f"{err} in {_oneline(text)!r}") from None


def _ini_host(words: list[str], group: str, builder: _Builder, number: int, marker: int) -> None:
    pattern, assignments = words[0], words[1:]
    if "=" in pattern:
        raise builder.fail(
            number, f"expected a host name before the variables, found {_oneline(pattern)!r}"
        )
    try:
        names, port = _expand_pattern(pattern)
    except ValueError as err:
        raise builder.fail(number, f"host {_oneline(pattern)!r}: {err}") from None
    host_vars: dict[str, str] = {"ansible_port": port} if port else {}
    for word in assignments:
        key, sep, value = word.partition("=")
        if not sep:
            hint = (
                f" (this file is read as an Ansible INI inventory because of line {marker}; "
                "the plain 'name HOST' form cannot be mixed with it)"
            )
            raise builder.fail(number, f"{_oneline(word)!r} is not a key=value host variable{hint}")
        host_vars[_var_name(key, builder, number)] = _unquote(value)
    for name in names:
        builder.add_host(name, number, group, host_vars)


def _ini_var(text: str, builder: _Builder, number: int) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise builder.fail(
            number, f"expected key=value in a :vars section, found {_oneline(text)!r}"
        )
    words = _ini_words(value.strip(), builder, number)
    return _var_name(key.strip(), builder, number), _unquote(" ".join(words))


def _var_name(key: str, builder: _Builder, number: Any) -> str:
    if not _VAR_NAME_RE.match(key):
        raise builder.fail(number, f"{_oneline(key)!r} is not a valid variable name")
    return key


def _unquote(value: str) -> str:
    """Ansible evaluates INI values as Python literals; of those only quoted strings matter."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        try:
            result = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
        if isinstance(result, str):
            return result
    return value


# --------------------------------------------------------------------------- Ansible YAML


_GROUP_KEYS = ("hosts", "children", "vars")


def _parse_yaml(text: str, builder: _Builder) -> None:
    src = _oneline(builder.source)
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f" line {mark.line + 1}" if mark is not None else ""
        context = err.context or ""
        if context and err.context_mark and mark and err.context_mark.line != mark.line:
            # PyYAML often notices a problem lines after its cause; name both places.
            context += f" (line {err.context_mark.line + 1})"
        problem = " ".join(part for part in (context, err.problem) if part)
        raise InputError(f"{src}{line}: not valid YAML: {_oneline(problem, 200)}") from None
    except RecursionError:
        raise InputError(f"{src}: YAML nested too deeply") from None
    except Exception as err:  # the YAML library has other failure types (bad dates, bytes)
        raise InputError(f"{src}: not valid YAML: {_oneline(str(err), 200)}") from None

    lines: dict[tuple[Any, ...], int | None] = {}

    def locate(path: tuple[Any, ...]) -> int | None:
        if path not in lines:
            lines[path] = _yaml_line(text, path)
        return lines[path]

    builder.locate = locate
    if data is None:
        return
    if not isinstance(data, dict):
        raise builder.fail(
            (), f"a YAML inventory must be a mapping of groups (like 'all:'), found {_kind(data)}"
        )
    seen: set[tuple[str, int]] = set()
    try:
        for key, body in data.items():
            name = _yaml_name(key, (key,), builder, "group")
            if body is not None and not isinstance(body, dict):
                raise builder.fail(
                    (key,),
                    f"top-level key {name!r} is not a group: expected a mapping with "
                    f"{', '.join(_GROUP_KEYS)}, found {_kind(body)}",
                )
            builder.group(name, (key,))
            _yaml_group(name, body, (key,), builder, seen)
    except RecursionError:
        raise builder.fail((), "groups nested too deeply") from None


def _yaml_group(
    name: str, body: Any, path: tuple[Any, ...], builder: _Builder, seen: set[tuple[str, int]]
) -> None:
    # An alias can place one mapping under many keys; walking each (group, mapping) pair once
    # keeps alias-heavy documents linear instead of exponential, and stops recursive ones.
    if body is None or (name, id(body)) in seen:
        return
    seen.add((name, id(body)))
    for key in body:
        if key not in _GROUP_KEYS:
            raise builder.fail(
                (*path, key),
                f"unknown key {_oneline(str(key))!r} in group {name!r} "
                f"(expected {', '.join(_GROUP_KEYS)})",
            )
    hosts = _yaml_mapping(body.get("hosts"), (*path, "hosts"), builder, f"group {name!r}: hosts")
    for key, host_body in hosts.items():
        where = (*path, "hosts", key)
        pattern = _yaml_name(key, where, builder, "host")
        host_vars = _yaml_vars(host_body, where, builder, f"host {pattern!r}")
        try:
            names, port = _expand_pattern(pattern)
        except ValueError as err:
            raise builder.fail(where, f"host {_oneline(pattern)!r}: {err}") from None
        if port:  # "name:port" in the key, unless the host's own vars say otherwise
            host_vars = {"ansible_port": port, **host_vars}
        for host in names:
            builder.add_host(host, where, name, host_vars)
    group_vars = _yaml_vars(body.get("vars"), (*path, "vars"), builder, f"group {name!r}: vars")
    for key, value in group_vars.items():
        builder.set_group_var(name, key, value, (*path, "vars"))
    children = _yaml_mapping(
        body.get("children"), (*path, "children"), builder, f"group {name!r}: children"
    )
    for key, child_body in children.items():
        where = (*path, "children", key)
        child = _yaml_name(key, where, builder, "group")
        if child_body is not None and not isinstance(child_body, dict):
            raise builder.fail(
                where,
                f"child group {child!r} must be a mapping or empty, found {_kind(child_body)}",
            )
        builder.group(child, where)
        builder.add_child(name, child, where)
        _yaml_group(child, child_body, where, builder, seen)


def _yaml_mapping(
    value: Any, path: tuple[Any, ...], builder: _Builder, what: str
) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise builder.fail(path, f"{what} must be a mapping, found {_kind(value)}")
    return value


def _yaml_vars(value: Any, path: tuple[Any, ...], builder: _Builder, what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, item in _yaml_mapping(value, path, builder, what).items():
        name = _var_name(_yaml_name(key, (*path, key), builder, "variable"), builder, (*path, key))
        text = _scalar_text(item)
        if text is not None:
            result[name] = text
    return result


def _yaml_name(key: Any, path: tuple[Any, ...], builder: _Builder, what: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return str(key)
    raise builder.fail(path, f"a {what} name must be text, found {_kind(key)}")


def _scalar_text(value: Any) -> str | None:
    """A YAML scalar as the string Ansible would template; lists and mappings are dropped."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if value is None:
        return ""  # set but empty: still overrides an inherited value, as in Ansible
    return None  # never str() a container: an alias bomb would expand while printing


def _yaml_line(text: str, path: tuple[Any, ...]) -> int | None:
    """Line of the key at ``path`` (1-based), or of its deepest ancestor found."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except Exception:  # already parsed once; a line number is a courtesy, not a requirement
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and _same_key(key_node.value, key):
                line, node = key_node.start_mark.line + 1, value_node
                break
        else:
            break
    return line


def _same_key(text: str, key: Any) -> bool:
    if isinstance(key, str):
        return text == key
    try:  # ``true``, ``0x10``: compare what the text means, as the loader saw it
        value = yaml.safe_load(text)
    except Exception:
        return False
    return type(value) is type(key) and value == key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    for kind, label in (
        (bool, "a boolean"),
        (str, "a string"),
        (dict, "a mapping"),
        (list, "a list"),
    ):
        if isinstance(value, kind):
            return label
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _oneline(value: str, limit: int = 80) -> str:
    """Text from the input made safe for a one-paragraph message."""
    flat = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in value)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
