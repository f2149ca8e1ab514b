"""QEMU command line text -> :class:`migcheck.vm.VmSpec`.

The input is a command line as an operator keeps it in a file: POSIX shell quoting,
``\\``-newline continuations, ``#`` comments, leading ``VAR=value`` assignments, the binary,
then QEMU options. We tokenize it ourselves rather than with :mod:`shlex` because shlex
keeps ``\\``-newline inside words and forgets where each word came from; every option here
carries a :class:`~migcheck.vm.Span` so messages (and later rewrites) can point at it.

Nothing is expanded: ``$VAR`` and backticks stay literal, and shell operators (``|``, ``;``)
are ordinary characters, because the text describes one QEMU invocation, not a script. For
the same reason a newline without a continuation does not end the command: a forgotten
``\\`` should not silently drop the options after it.

Every problem is reported as :class:`~migcheck.errors.InputError` with a one-paragraph
message naming the source, the line and the option; no other exception escapes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migcheck.devicegraph import (
    FRONTEND_OPTIONS,
    X86_64_ALIASES,
    binary_target,
    canonical_driver,
    complete_devices,
)
from migcheck.errors import InputError
from migcheck.keyval import _split_items, split_keyval
from migcheck.redact import redact_text
from migcheck.vm import (
    CpuSpec,
    Device,
    GlobalProp,
    Netdev,
    Option,
    QemuObject,
    ReadConfig,
    Span,
    VmSpec,
)

__all__ = ["NO_ARG_OPTIONS", "load_cmdline", "parse_cmdline", "split_keyval"]

# QEMU options that take NO argument; every other option consumes exactly the next word.
# Getting this wrong shifts every later option by one word, so the list is not guessed:
#  * qemu-options.hx, every DEF(name, 0, ...) entry (flags lacking HAS_ARG), read at
#    https://github.com/qemu/qemu/blob/003f8dbc8e09962f5d82f581b644b5fbc916bbb4/qemu-options.hx
#    (QEMU 2.1 era). It still has flags removed since (-no-kvm, -nodefconfig, -sdl, -tdf...);
#    they stay here so old command lines keep parsing.
#  * flags added after that commit, from current qemu-options.hx DEF entries: -preconfig,
#    -only-migratable, -enable-sync-profile, -async-teardown, -xen-domid-restrict (all
#    cross-checked against qemu-system-x86_64 7.2: `-version -OPT` must not answer
#    "requires an argument") and -one-insn-per-tb (QEMU 8.1, replaces -singlestep).
#  * -enable-nesting: a flag of the old qemu-kvm fork (never upstream), seen in old RHEL lines.
NO_ARG_OPTIONS: frozenset[str] = frozenset(
    {
        # Standard options
        "h",
        "help",
        "version",
        "mem-prealloc",
        "audio-help",
        "snapshot",
        "virtfs_synth",
        "usb",
        # Display options
        "nographic",
        "curses",
        "no-frame",
        "alt-grab",
        "ctrl-grab",
        "no-quit",
        "sdl",
        "portrait",
        "full-screen",
        "show-cursor",
        # i386 target only
        "win2k-hack",
        "rtc-td-hack",
        "no-fd-bootchk",
        "no-acpi",
        "no-hpet",
        "no-kvm",
        "no-kvm-pit-reinjection",
        "no-kvm-pit",
        "no-kvm-irqchip",
        # Debug/expert options
        "singlestep",
        "one-insn-per-tb",
        "S",
        "s",
        "enable-kvm",
        "xen-create",
        "xen-attach",
        "xen-domid-restrict",
        "no-reboot",
        "no-shutdown",
        "daemonize",
        "localtime",
        "nodefaults",
        "semihosting",
        "old-param",
        "nodefconfig",
        "no-user-config",
        "enable-fips",
        "tdf",
        "preconfig",
        "only-migratable",
        "enable-sync-profile",
        "async-teardown",
        # qemu-kvm fork only
        "enable-nesting",
    }
)

# Spellings QEMU's string visitor accepts for a boolean CPU property (parse_type_bool).
# Deliberately not "1"/"0": those are ordinary numbers for props such as "level".
_CPU_TRUE = frozenset({"on", "yes", "true", "y"})
_CPU_FALSE = frozenset({"off", "no", "false", "n"})
_QUERY = frozenset({"help", "?"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_BLANK = " \t\n\r\f\v"


# --------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Word:
    """One shell word after quote removal, and where its raw text sits in the input."""

    text: str
    line: int  # 1-based line where the word starts
    start: int  # offset of its first raw character
    end: int  # offset just past its last raw character


class _Tokenizer:
    """A small POSIX-sh word splitter that remembers line numbers and offsets."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.pos = 0
        self.line = 1

    def words(self) -> list[_Word]:
        out: list[_Word] = []
        while self._skip_blanks_and_comments():
            out.append(self._word())
        return out

    def _continuation_len(self, at: int) -> int:
        """Length of a backslash-newline at ``at`` (CRLF files too), or 0."""
        if self.text.startswith("\\\n", at):
            return 2
        if self.text.startswith("\\\r\n", at):
            return 3
        return 0

    def _skip_blanks_and_comments(self) -> bool:
        """Move to the start of the next word; False at end of input."""
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\n":
                self.line += 1
                self.pos += 1
            elif char in _BLANK:
                self.pos += 1
            elif skip := self._continuation_len(self.pos):
                self.line += 1
                self.pos += skip
            elif char == "#":
                # Like sh: a '#' that starts a word comments out the rest of the line;
                # a trailing backslash inside a comment does not continue it.
                newline = text.find("\n", self.pos)
                self.pos = len(text) if newline < 0 else newline
            else:
                return True
        return False

    def _word(self) -> _Word:
        text = self.text
        start, start_line = self.pos, self.line
        parts: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            if char in _BLANK:
                break
            if char == "\\":
                parts.append(self._backslash())
            elif char == "'":
                parts.append(self._single_quoted())
            elif char == '"':
                parts.append(self._double_quoted())
            else:
                parts.append(char)
                self.pos += 1
        return _Word("".join(parts), start_line, start, self.pos)

    def _backslash(self) -> str:
        if skip := self._continuation_len(self.pos):
            self.line += 1
            self.pos += skip
            return ""
        if self.pos + 1 >= len(self.text):  # a lone trailing backslash stays literal
            self.pos += 1
            return "\\"
        escaped = self.text[self.pos + 1]
        self.pos += 2
        return escaped

    def _single_quoted(self) -> str:
        close = self.text.find("'", self.pos + 1)
        if close < 0:
            raise self._unterminated("single")
        body = self.text[self.pos + 1 : close]
        self.line += body.count("\n")
        self.pos = close + 1
        return body

    def _double_quoted(self) -> str:
        text = self.text
        opened = self.line
        self.pos += 1
        parts: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(parts)
            if char == "\\" and (skip := self._continuation_len(self.pos)):
                self.line += 1
                self.pos += skip
                continue
            if char == "\\" and text[self.pos + 1 : self.pos + 2] in ("$", "`", '"', "\\"):
                # Inside double quotes only these four are escapable; elsewhere the
                # backslash is kept, as sh does.
                parts.append(text[self.pos + 1])
                self.pos += 2
                continue
            if char == "\n":
                self.line += 1
            parts.append(char)
            self.pos += 1
        self.line = opened
        raise self._unterminated("double")

    def _unterminated(self, kind: str) -> InputError:
        return InputError(
            f"{_oneline(self.source)} line {self.line}: unterminated {kind} quote "
            "(it opens on this line and is never closed)"
        )


# --------------------------------------------------------------------------- helpers


def _oneline(value: str, limit: int = 80) -> str:
    """Text from the input made safe for a one-paragraph message (secrets redacted)."""
    flat = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in redact_text(value))
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --------------------------------------------------------------------------- parser


@dataclass
class _Parsed:
    """Mutable state while options are interpreted; folded into the VmSpec at the end."""

    spec: VmSpec
    accel: list[str] = field(default_factory=list)
    accel_options: dict[str, dict[str, str]] = field(default_factory=dict)
    # QemuOpts that -set can reach: keyval -device/-netdev and -readconfig sections by id
    # (JSON -device/-netdev are not QemuOpts, so qemu_set_option() cannot find them).
    settable: dict[tuple[str, str], Device | Netdev] = field(default_factory=dict)
    fragment: bool = False  # a part of a command line (libvirt's <qemu:commandline>)
    x86: bool = True  # the binary's target is x86 (whose -device aliases are modelled)
    device_ids: set[str] = field(default_factory=set)


class _Context:
    """Where an option came from, to build errors naming the source, line and option."""

    def __init__(self, source: str, word: _Word, option: Option) -> None:
        self.source = source
        self.word = word
        self.option = option

    def fail(self, what: str) -> InputError:
        return InputError(
            f"{_oneline(self.source)} line {self.word.line}: {_oneline(self.word.text)}: {what}"
        )


def _split_words(
    words: list[_Word], text: str, source: str
) -> tuple[dict[str, str], str | None, list[tuple[_Word, Option]], list[str]]:
    """Words -> (env, binary, options with their name word, positionals)."""
    env: dict[str, str] = {}
    index = 0
    # Like sh, only an unquoted NAME= prefix makes an assignment: 'A=b' (quoted) is a word.
    while index < len(words) and _ASSIGNMENT.match(text, words[index].start):
        name, _, value = words[index].text.partition("=")
        env[name] = value
        index += 1
    binary: str | None = None
    if index < len(words) and not words[index].text.startswith("-"):
        binary = words[index].text
        index += 1
    options: list[tuple[_Word, Option]] = []
    positional: list[str] = []
    while index < len(words):
        word = words[index]
        index += 1
        if not _is_option(word.text):
            # QEMU treats any non-option word as a disk image (like -hda).
            positional.append(word.text)
            continue
        name = word.text[2:] if word.text.startswith("--") else word.text[1:]
        if name in NO_ARG_OPTIONS:
            options.append((word, Option(name, None, Span(word.line, word.start, word.end))))
            continue
        if index >= len(words):
            raise InputError(
                f"{_oneline(source)} line {word.line}: {_oneline(word.text)}: "
                "needs an argument, but the command line ends here"
            )
        value = words[index]
        index += 1
        span = Span(word.line, word.start, value.end, value.start)
        options.append((word, Option(name, value.text, span)))
    return env, binary, options, positional


def _is_option(text: str) -> bool:
    # A lone "-" is not an option name; QEMU would reject it, we keep it as a positional.
    return text.startswith("-") and len(text) > 1


def _reject_query(ctx: _Context, first: str | None, props: dict[str, Any]) -> None:
    if (first is not None and first in _QUERY) or "help" in props:
        raise ctx.fail("asks QEMU for help; that is a query, not a VM definition")


def _handle_machine(state: _Parsed, ctx: _Context) -> None:
    first, props = split_keyval(ctx.option.value or "")
    _reject_query(ctx, first, props)
    machine = state.spec.machine
    # QEMU merges repeated -machine options; a later type or property wins.
    if first is not None:
        machine.type = first
    if "type" in props:
        machine.type = props.pop("type") or None
    accel = props.pop("accel", None)
    if accel is not None:
        # Kept out of machine.options: QEMU turns it into -accel, and VmSpec.accel holds it.
        state.accel.extend(name for name in accel.split(":") if name)
    machine.options.update(props)
    machine.span = ctx.option.span


def _handle_accel(state: _Parsed, ctx: _Context) -> None:
    first, props = split_keyval(ctx.option.value or "")
    name = props.pop("accel", None) or first
    _reject_query(ctx, name, props)
    if not name:
        raise ctx.fail("missing accelerator name (e.g. -accel kvm)")
    state.accel.append(name)
    state.accel_options.setdefault(name, props)


def _handle_enable_kvm(state: _Parsed, ctx: _Context) -> None:
    # vl.c treats -enable-kvm as "-accel kvm" at this position: QEMU tries accelerators in
    # the order they were given.
    state.accel.append("kvm")


def _cpu_setting(item: str) -> tuple[str, bool | str]:
    """One -cpu item -> (QEMU property name, True/False or a string value)."""
    if item[0] in "+-":
        return item[1:], item[0] == "+"
    name, equals, value = item.partition("=")
    if not equals:
        return name, True
    low = value.lower()
    if low in _CPU_TRUE:
        return name, True
    if low in _CPU_FALSE:
        return name, False
    return name, value


def _handle_cpu(state: _Parsed, ctx: _Context) -> None:
    items = _split_items(ctx.option.value or "")
    model = items[0]
    if model in _QUERY or "help" in items[1:]:
        raise ctx.fail("asks QEMU for help; that is a query, not a VM definition")
    if not model:
        raise ctx.fail("missing CPU model before the first comma (e.g. -cpu host,+avx2)")
    # QEMU keeps only the last -cpu, so each one starts from scratch.
    cpu = CpuSpec(model=model, span=ctx.option.span)
    plus: list[str] = []
    minus: list[str] = []
    for item in items[1:]:
        if not item:
            continue
        raw_name, value = _cpu_setting(item)
        # QEMU's feat2prop(): "_" and "-" are the same in CPU property names; dots stay.
        name = raw_name.replace("_", "-")
        if not name:
            raise ctx.fail(f"empty CPU feature name in {_oneline(item)!r}")
        if item[0] in "+-":
            (plus if value else minus).append(name)
        elif isinstance(value, bool):
            cpu.props.pop(name, None)
            cpu.features[name] = value
        else:
            cpu.features.pop(name, None)
            cpu.props[name] = value
    # target/i386/cpu.c x86_cpu_parse_featurestr()/x86_cpu_expand_features(): "feat=on|off"
    # are applied as properties first, then every "+feat", then every "-feat", so "-feat"
    # wins whatever the order on the command line.
    for name in plus:
        cpu.props.pop(name, None)
        cpu.features[name] = True
    for name in minus:
        cpu.props.pop(name, None)
        cpu.features[name] = False
    state.spec.cpu = cpu


def _handle_platform(state: _Parsed, ctx: _Context) -> None:
    state.spec.platform = ctx.option.value


def _load_json(ctx: _Context, text: str) -> dict[str, Any]:
    try:
        value: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as err:
        raise ctx.fail(f"invalid JSON ({err.msg} at char {err.pos})") from None
    except (ValueError, RecursionError) as err:  # e.g. over-long integers, deep nesting
        raise ctx.fail(f"invalid JSON ({_oneline(str(err))})") from None
    # Only reached for text starting with "{", so a successful load is always an object.
    return value


def _definition(ctx: _Context, kind_key: str) -> tuple[str, str | None, dict[str, Any]]:
    """A -device/-netdev/-object argument -> (driver/type, id, other properties)."""
    text = ctx.option.value or ""
    props: dict[str, Any]
    if text.startswith("{"):  # QEMU's own test: JSON only when the first byte is "{"
        props = _load_json(ctx, text)
        kind = props.pop(kind_key, None)
    else:
        first, props = split_keyval(text)
        _reject_query(ctx, first, props)
        kind = props.pop(kind_key, None) or first
    if not isinstance(kind, str) or not kind:
        raise ctx.fail(f'missing "{kind_key}" (the first item, or {kind_key}=...)')
    ident = props.pop("id", None)
    if ident is not None and not isinstance(ident, str):
        raise ctx.fail(f'"id" must be a string, not {type(ident).__name__}')
    return kind, ident, props


def _driver(state: _Parsed, written: str) -> str:
    """The canonical type of a -device driver name; on targets whose aliases migcheck does
    not model an alias stays as written and the device list is marked incomplete."""
    if state.x86:
        return canonical_driver(written)
    if written in X86_64_ALIASES:
        state.spec.device_gaps.append(
            f"-device {written}: an alias whose type on target "
            f"{binary_target(state.spec.binary)} is not modelled"
        )
    return written


def _handle_device(state: _Parsed, ctx: _Context) -> None:
    driver, ident, props = _definition(ctx, "driver")
    if ident is not None and ident in state.device_ids:
        # qdev_set_id() (hw/core/qdev.c) / qemu_opts_create(): "Duplicate ID".
        raise ctx.fail(f"duplicate device id {_oneline(ident)!r} (QEMU refuses it)")
    device = Device(_driver(state, driver), ident, props, ctx.option.span)
    state.spec.devices.append(device)
    if ident is not None:
        state.device_ids.add(ident)
    if ident is not None and not (ctx.option.value or "").startswith("{"):
        state.settable[("device", ident)] = device


def _handle_netdev(state: _Parsed, ctx: _Context) -> None:
    kind, ident, props = _definition(ctx, "type")
    netdev = Netdev(kind, ident, props, ctx.option.span)
    state.spec.netdevs.append(netdev)
    if ident is not None and not (ctx.option.value or "").startswith("{"):
        state.settable[("netdev", ident)] = netdev


# util/qemu-config.c qemu_set_option(): sscanf("%63[^.].%63[^.].%63[^=]%n") then '='.
_SET_RE = re.compile(r"([^.]+)\.([^.]+)\.([^=]+)=(.*)", re.DOTALL)


def _handle_set(state: _Parsed, ctx: _Context) -> None:
    """``-set GROUP.ID.PROP=VALUE``: QEMU applies it at once to the options already read,
    so it reaches only a -device/-netdev given before it."""
    match = _SET_RE.fullmatch(ctx.option.value or "")
    if not match:
        raise ctx.fail("expected GROUP.ID.PROP=VALUE, e.g. -set device.net0.mac=52:54:00:00:00:01")
    group, ident, prop, value = match.groups()
    if group not in ("device", "netdev"):
        return  # other groups (drive, chardev, ...) do not shape the device graph
    target = state.settable.get((group, ident))
    if target is None and state.fragment:
        state.spec.unresolved_sets.append((group, ident, prop, value))
        return
    if target is None:
        raise ctx.fail(
            f'there is no {group} "{_oneline(ident)}" with keyval syntax before this option '
            "(QEMU refuses the command line: -set applies to options already given)"
        )
    if isinstance(target, Device) and prop == "driver":
        target.driver = _driver(state, value)
    elif isinstance(target, Netdev) and prop == "type":
        target.type = value
    elif prop != "id":
        target.props[prop] = value


def _handle_object(state: _Parsed, ctx: _Context) -> None:
    kind, ident, props = _definition(ctx, "qom-type")
    state.spec.objects.append(QemuObject(kind, ident, props, ctx.option.span))


# qemu_global_option(): sscanf("%63[^.=].%63[^=]%n") then '='; the value is taken verbatim.
_GLOBAL_DOTTED = re.compile(r"([^.=]+)\.([^=]+)=(.*)", re.DOTALL)


def _handle_global(state: _Parsed, ctx: _Context) -> None:
    text = ctx.option.value or ""
    match = _GLOBAL_DOTTED.fullmatch(text)
    if match:
        driver, prop, value = match.groups()
    else:
        _, props = split_keyval(text)
        driver, prop, value = (props.get(k) for k in ("driver", "property", "value"))
        if not driver or not prop or value is None:
            raise ctx.fail(
                "expected driver.property=value or driver=D,property=P,value=V, "
                f"got {_oneline(text)!r}"
            )
    state.spec.globals.append(GlobalProp(driver, prop, value, ctx.option.span))


# --------------------------------------------------------------------------- -readconfig

MAX_CONFIG_BYTES = 1 << 20  # a QEMU config file is a few KiB; more is not one

# util/qemu-config.c qemu_config_foreach(): '[group "id"]', '[group]', and
# ' key = "value"' lines (sscanf " %63s = \"%1023[^\"]\"": %s stops only at white space,
# so the key needs white space before '='); '#' and empty lines are skipped.
_CONFIG_GROUP_ID = re.compile(r'\[(\S+)\s+"([^"]+)"')
_CONFIG_GROUP = re.compile(r"\[([^\]]+)\]")
_CONFIG_ARG = re.compile(r'\s*(\S+)\s+=\s*"([^"]*)')


def parse_config(text: str) -> list[tuple[str, dict[str, str]]]:
    """QEMU's ``-readconfig`` format -> [(group, {key: value})]; ``id`` goes in the dict.

    Raises ValueError (with the line number) where QEMU would say "parse error"."""
    sections: list[tuple[str, dict[str, str]]] = []
    current: dict[str, str] | None = None
    for lno, line in enumerate(text.split("\n"), 1):
        if line == "" or line.startswith("#"):
            continue
        if line.startswith("["):
            head = _CONFIG_GROUP_ID.match(line)
            if head:
                current = {"id": head.group(2)}
                sections.append((head.group(1), current))
                continue
            head = _CONFIG_GROUP.match(line)
            if head:
                current = {}
                sections.append((head.group(1), current))
                continue
        arg = _CONFIG_ARG.match(line)
        if arg is None:
            raise ValueError(f"line {lno}: parse error")
        if current is None:
            raise ValueError(f"line {lno}: no group defined")
        current[arg.group(1)] = arg.group(2)
    return sections


def read_config(path: str, base_dir: str | None, span: Span | None) -> ReadConfig:
    """Read and parse one ``-readconfig`` file, or say why its devices are unknown.

    QEMU resolves a relative path against its own working directory, which the command
    line does not record; migcheck takes the command line file's directory."""
    if os.path.isabs(path):
        resolved = path
    elif base_dir is not None:
        resolved = os.path.join(base_dir, path)
    else:
        why = "a relative path, and the command line was not read from a file to resolve it"
        return ReadConfig(path, None, why, [], span)
    try:
        with open(resolved, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        return ReadConfig(path, None, f"cannot read {resolved}: {err.strerror or err}", [], span)
    if len(raw) > MAX_CONFIG_BYTES:
        return ReadConfig(path, None, f"{resolved} is larger than 1 MiB", [], span)
    try:
        sections = parse_config(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        return ReadConfig(path, None, f"{resolved}: not UTF-8 text (byte {err.start})", [], span)
    except ValueError as err:
        return ReadConfig(path, None, f"{resolved}: {err} (QEMU refuses it)", [], span)
    for group, props in sections:
        key = {"device": "driver", "netdev": "type", "object": "qom-type"}.get(group)
        if key is not None and not props.get(key):
            return ReadConfig(path, None, f"{resolved}: a [{group}] without {key}", [], span)
    return ReadConfig(path, resolved, None, sections, span)


def _handle_readconfig(state: _Parsed, ctx: _Context) -> None:
    """``-readconfig FILE``: QEMU reads it at this position (vl.c QEMU_OPTION_readconfig ->
    qemu_read_config_file(..., qemu_parse_config_group))."""
    spec = state.spec
    span = ctx.option.span
    rc = read_config(ctx.option.value or "", spec.base_dir, span)
    spec.readconfigs.append(rc)
    origin = f"-readconfig {rc.path}"
    for group, raw in rc.sections:
        props: dict[str, Any] = dict(raw)
        ident = props.pop("id", None)
        if group == "device":
            device = Device(_driver(state, props.pop("driver")), ident, props, span, origin)
            spec.devices.append(device)
            if ident is not None:
                state.settable[("device", ident)] = device
                state.device_ids.add(ident)
        elif group == "netdev":
            netdev = Netdev(props.pop("type"), ident, props, span)
            spec.netdevs.append(netdev)
            if ident is not None:
                state.settable[("netdev", ident)] = netdev
        elif group == "object":
            spec.objects.append(QemuObject(props.pop("qom-type"), ident, props, span))
        elif group == "global":
            driver, prop, value = (props.get(k) for k in ("driver", "property", "value"))
            if driver and prop and value is not None:
                spec.globals.append(GlobalProp(driver, prop, value, span))
        elif group == "machine":
            # vl.c qemu_record_config_group(): merged into the -machine options.
            if props.get("type"):
                spec.machine.type = props.pop("type")
            accel = props.pop("accel", None)
            if accel:
                state.accel.extend(a for a in accel.split(":") if a)
            spec.machine.options.update(props)


def _handle_frontend(state: _Parsed, ctx: _Context) -> None:
    """-nic, -net, -vga, -serial, -parallel, -usbdevice: the devices they create are added
    by :mod:`migcheck.devicegraph`; here only a help query is refused (``-nic help``,
    ``-net nic,model=?``, ``-vga help``: QEMU prints a list and exits)."""
    first, props = split_keyval(ctx.option.value or "")
    _reject_query(ctx, first, props)
    if props.get("model") in _QUERY:
        raise ctx.fail("asks QEMU for help; that is a query, not a VM definition")


_HANDLERS: dict[str, Callable[[_Parsed, _Context], None]] = {
    "machine": _handle_machine,
    "M": _handle_machine,
    "accel": _handle_accel,
    "enable-kvm": _handle_enable_kvm,
    "cpu": _handle_cpu,
    "platform": _handle_platform,
    "device": _handle_device,
    "netdev": _handle_netdev,
    "object": _handle_object,
    "global": _handle_global,
    "set": _handle_set,
    "nic": _handle_frontend,
    "net": _handle_frontend,
    "vga": _handle_frontend,
    "serial": _handle_frontend,
    "parallel": _handle_frontend,
    "usbdevice": _handle_frontend,
    "readconfig": _handle_readconfig,
}


def _finish_accel(state: _Parsed) -> None:
    order: list[str] = []
    for name in state.accel:
        if name not in order:
            order.append(name)
    state.spec.accel = order
    state.spec.accel_options = dict(state.accel_options.get(order[0], {})) if order else {}


# A first word naming QEMU: qemu-system-*, qemu-kvm, kvm, kvm-spice, a path to one, or a
# shell variable standing for it ($QEMU). Anything else is not a QEMU command line.
_QEMU_BINARY = re.compile(r"(?:.*/)?[^/]*(?:qemu|kvm)[^/]*|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", re.I)


def _sniff(text: str, source: str) -> str:
    """Refuse text that is plainly not a QEMU command line; turn NUL-separated argv (a copy
    of /proc/PID/cmdline) into shell words."""
    if "\0" in text:
        argv = text.split("\0")
        while argv and argv[-1].strip() == "":
            argv.pop()
        if not argv:
            raise InputError(f"{_oneline(source)}: only NUL bytes: expected a QEMU command line")
        return shlex.join(argv)
    head = text.lstrip("\ufeff" + _BLANK)
    if not head:
        raise InputError(
            f"{_oneline(source)}: empty: expected a QEMU command line "
            "(the binary, e.g. qemu-system-x86_64, then its options)"
        )
    if head.startswith("<"):
        raise InputError(
            f"{_oneline(source)}: looks like XML, not a QEMU command line "
            "(for a libvirt domain use --domain-xml)"
        )
    if head[0] in "{[":
        try:
            json.loads(head)
        except (ValueError, RecursionError):
            pass
        else:
            raise InputError(
                f"{_oneline(source)}: looks like JSON, not a QEMU command line "
                "(a facts or report file? --cmdline takes the QEMU command line as text)"
            )
    return text.removeprefix("\ufeff")  # an editor's byte order mark is not the binary


def parse_cmdline(
    text: str, source: str = "<stdin>", *, base_dir: str | None = None, defaults: bool = True
) -> VmSpec:
    """Parse a QEMU command line (shell syntax, or NUL-separated argv) into a VmSpec.

    ``base_dir``: where relative ``-readconfig`` files are looked for (the command line
    file's directory). ``defaults``: complete the device graph with everything besides
    -device (:func:`migcheck.devicegraph.complete_devices`); False for fragments such as
    libvirt's ``<qemu:commandline>`` that are not a whole command line.
    Bad input -> InputError."""
    if defaults:
        text = _sniff(text, source)
    words = _Tokenizer(text, source).words()
    if defaults and not words:
        raise InputError(
            f"{_oneline(source)}: only comments and blank lines: expected a QEMU command line"
        )
    env, binary, options, positional = _split_words(words, text, source)
    if defaults and binary is not None and not _QEMU_BINARY.fullmatch(binary):
        raise InputError(
            f"{_oneline(source)} line {words[len(env)].line}: the first word "
            f"{_oneline(binary, 40)!r} is not a QEMU binary and no option precedes it: this "
            "does not look like a QEMU command line (expected e.g. "
            "qemu-system-x86_64 -machine ... or a copy of /proc/PID/cmdline)"
        )
    if defaults and len(positional) > 1:
        # softmmu/vl.c: a bare word is drive_add(IF_DEFAULT, 0, ...), the first disk; a
        # second one is refused ("drive with bus=0, unit=0 (index=0) exists").
        words_list = ", ".join(repr(_oneline(p, 20)) for p in positional[:4])
        raise InputError(
            f"{_oneline(source)}: {len(positional)} bare words ({words_list}"
            f"{', ...' if len(positional) > 4 else ''}) outside any option: QEMU takes a "
            "bare word as the first disk image and refuses a second; prose or a missing "
            "'-option' before them?"
        )
    spec = VmSpec(
        source=source, binary=binary, env=env, positional=positional, text=text, base_dir=base_dir
    )
    state = _Parsed(spec, fragment=not defaults, x86=binary_target(binary) in ("x86_64", "i386"))
    for word, option in options:
        spec.options.append(option)
        handler = _HANDLERS.get(option.name)
        if handler is not None:
            handler(state, _Context(source, word, option))
    _finish_accel(state)
    if defaults:
        complete_devices(spec)
    else:
        # A fragment (libvirt's <qemu:commandline>) lacks the rest of the command line
        # that decides what these options create: say so rather than drop them.
        spec.device_gaps += [
            f"-{o.name} {_oneline(o.value or '', 40)} in {_oneline(source)}: the devices it "
            "creates are not modelled there"
            for o in spec.options
            if o.name in FRONTEND_OPTIONS
        ]
    return spec


def load_cmdline(path: str) -> VmSpec:
    """Read a command line from ``path`` ("-" for stdin) and parse it."""
    if path == "-":
        try:
            if sys.stdin is None:  # e.g. started with stdin closed
                raise OSError("standard input is closed")
            text = sys.stdin.read()
        except (OSError, ValueError) as err:
            raise InputError(f"<stdin>: cannot read the command line: {err}") from None
        return parse_cmdline(text, "<stdin>")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as err:
        raise InputError(
            f"{_oneline(path)}: not UTF-8 text (byte {err.start}): expected a QEMU command line"
        ) from None
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError(f"{_oneline(path)}: cannot read the command line: {reason}") from None
    return parse_cmdline(text, path, base_dir=os.path.dirname(os.path.abspath(path)))
