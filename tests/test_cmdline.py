"""Behaviour of migcheck.cmdline: QEMU command line text -> VmSpec."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from conftest import SHARED_DATA, require
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from migcheck.cmdline import NO_ARG_OPTIONS, load_cmdline, parse_cmdline, split_keyval
from migcheck.errors import InputError
from migcheck.vm import VmSpec

LIBVIRT_ARGS = SHARED_DATA / "libvirt/qemuxml2argvdata"
FUZZ = settings(max_examples=200, deadline=None)


def parse(text: str) -> VmSpec:
    return parse_cmdline(text, "vm.cmdline")


def error_of(text: str) -> str:
    with pytest.raises(InputError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message, "errors must be one paragraph"
    assert message.startswith("vm.cmdline line "), message
    return message


# --------------------------------------------------------------------------- shell syntax


def test_env_binary_and_options() -> None:
    spec = parse("LC_ALL=C PATH=/bin /usr/bin/qemu-system-x86_64 -m 1024 -S")
    assert spec.env == {"LC_ALL": "C", "PATH": "/bin"}
    assert spec.binary == "/usr/bin/qemu-system-x86_64"
    assert [(o.name, o.value) for o in spec.options] == [("m", "1024"), ("S", None)]
    assert spec.source == "vm.cmdline"


def test_quoted_assignment_is_the_binary_not_env() -> None:
    # sh only treats an unquoted NAME= prefix as an assignment.
    spec = parse("A=1 'B=qemu' -S")
    assert spec.env == {"A": "1"}
    assert spec.binary == "B=qemu"


def test_no_binary_when_first_word_is_an_option() -> None:
    spec = parse("-machine q35")
    assert spec.binary is None
    assert spec.machine.type == "q35"


def test_env_value_may_be_quoted() -> None:
    assert parse("HOME='/var/lib/my dir' qemu").env == {"HOME": "/var/lib/my dir"}


def test_continuations_comments_and_spans() -> None:
    text = (
        "# launched by hand\n"  # line 1
        "qemu-system-x86_64 \\\n"  # line 2
        "  -S \\\n"  # line 3
        "  -machine q35 # the chipset\n"  # line 4
        "  -cpu host\n"  # line 5
    )
    spec = parse(text)
    assert spec.binary == "qemu-system-x86_64"
    assert [o.name for o in spec.options] == ["S", "machine", "cpu"]
    s_opt, machine, cpu = spec.options
    assert s_opt.span.line == 3
    assert text[s_opt.span.start : s_opt.span.end] == "-S"
    assert machine.span.line == 4
    assert text[machine.span.start : machine.span.end] == "-machine q35"
    assert cpu.span.line == 5
    assert text[cpu.span.start : cpu.span.end] == "-cpu host"
    assert spec.machine.span == machine.span
    assert spec.cpu.span == cpu.span


def test_span_covers_quoted_value_across_lines() -> None:
    text = "qemu -append 'console=ttyS0\nquiet' -S"
    spec = parse(text)
    append, s_opt = spec.options
    assert append.value == "console=ttyS0\nquiet"
    assert text[append.span.start : append.span.end] == "-append 'console=ttyS0\nquiet'"
    assert (append.span.line, s_opt.span.line) == (1, 2)


def test_backslash_newline_inside_a_word_joins_it() -> None:
    spec = parse("qemu -machine pc,\\\nusb=off")
    assert spec.machine.type == "pc"
    assert spec.machine.options == {"usb": "off"}


def test_crlf_continuations() -> None:
    spec = parse("qemu \\\r\n -S \\\r\n -machine q35\r\n")
    assert [o.name for o in spec.options] == ["S", "machine"]
    assert spec.machine.type == "q35"


def test_quoting_rules() -> None:
    spec = parse(r"""qemu -name 'a b' -name "c \"d\" \$e \x" -name f\ g -name 'h'"i"j""")
    assert [o.value for o in spec.options] == ["a b", 'c "d" $e \\x', "f g", "hij"]


def test_hash_inside_a_word_is_not_a_comment() -> None:
    spec = parse("qemu -name a#b -name '#c'")
    assert [o.value for o in spec.options] == ["a#b", "#c"]


def test_empty_input_is_refused() -> None:
    # Issue 21 section 7: text with no command line in it is not an all-defaults guest.
    for text, what in (("  \n# nothing here\n", "only comments"), (" \n\t", "empty")):
        with pytest.raises(InputError, match=what) as info:
            parse(text)
        assert str(info.value).startswith("vm.cmdline: ")


def test_unterminated_single_quote_names_the_opening_line() -> None:
    message = error_of("qemu \\\n -S \\\n -name 'oops\nmore\ntext")
    assert "line 3" in message
    assert "unterminated single quote" in message


def test_unterminated_double_quote_names_the_opening_line() -> None:
    message = error_of('qemu\n-name "oops\n\n')
    assert "line 2" in message
    assert "unterminated double quote" in message


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "flag",
    ["S", "nodefaults", "no-user-config", "enable-kvm", "no-shutdown", "nographic", "snapshot"],
)
def test_flags_take_no_argument(flag: str) -> None:
    spec = parse(f"qemu -{flag} -m 512")
    assert [(o.name, o.value) for o in spec.options] == [(flag, None), ("m", "512")]


def test_no_arg_list_has_the_usual_suspects() -> None:
    expected = {"S", "s", "h", "help", "version", "daemonize", "no-reboot", "no-hpet"}
    expected |= {"no-acpi", "full-screen", "usb", "preconfig", "only-migratable"}
    assert expected <= NO_ARG_OPTIONS
    assert not {"machine", "M", "cpu", "device", "m", "smp", "accel"} & NO_ARG_OPTIONS


def test_double_dash_is_the_same_option() -> None:
    spec = parse("qemu --machine q35 --nodefaults --cpu host")
    assert [o.name for o in spec.options] == ["machine", "nodefaults", "cpu"]
    assert spec.machine.type == "q35"
    assert spec.cpu.model == "host"


def test_unknown_options_are_kept_with_one_argument() -> None:
    spec = parse("qemu -frobnicate yes -S")
    assert [(o.name, o.value) for o in spec.options] == [("frobnicate", "yes"), ("S", None)]


def test_argument_is_taken_even_if_it_looks_like_an_option() -> None:
    spec = parse("qemu -append -v -S")
    assert [(o.name, o.value) for o in spec.options] == [("append", "-v"), ("S", None)]


def test_positionals_are_disk_images() -> None:
    spec = parse("qemu -m 1G disk.qcow2")
    assert spec.positional == ["disk.qcow2"]
    assert [o.name for o in spec.options] == ["m"]
    assert [d.origin for d in spec.devices if d.driver == "ide-hd"] == ["disk image disk.qcow2"]
    # QEMU takes every bare word as the first disk and refuses a second one.
    with pytest.raises(InputError, match="3 bare words"):
        parse("qemu disk.qcow2 -m 1G other.img -")


def test_missing_argument_at_end_is_an_error() -> None:
    message = error_of("qemu -S \\\n  -machine")
    assert "line 2" in message
    assert "-machine" in message
    assert "argument" in message


def test_every_option_is_recorded_in_order() -> None:
    spec = parse("qemu -nic user -net nic -net tap -S -machine pc -cpu host -m 1")
    assert [o.name for o in spec.options] == ["nic", "net", "net", "S", "machine", "cpu", "m"]


# --------------------------------------------------------------------------- machine


def test_machine_type_and_options() -> None:
    spec = parse("qemu -machine pc-q35-8.2,usb=off,dump-guest-core=off,smm")
    assert spec.machine.type == "pc-q35-8.2"
    assert spec.machine.options == {"usb": "off", "dump-guest-core": "off", "smm": "on"}


def test_machine_alias_and_explicit_type() -> None:
    assert parse("qemu -M pc").machine.type == "pc"
    assert parse("qemu -machine type=q35,usb=off").machine.type == "q35"


def test_machine_options_only_leaves_type_unset() -> None:
    spec = parse("qemu -machine usb=off,vmport=off")
    assert spec.machine.type is None
    assert spec.machine.options == {"usb": "off", "vmport": "off"}
    assert parse("qemu -S").machine.type is None


def test_machine_double_comma_escape() -> None:
    spec = parse("qemu -machine weird,,name,opt=a,,b")
    assert spec.machine.type == "weird,name"
    assert spec.machine.options == {"opt": "a,b"}


def test_machine_accel_property() -> None:
    spec = parse("qemu -machine q35,accel=kvm:tcg")
    assert spec.accel == ["kvm", "tcg"]
    assert spec.uses_kvm
    assert "accel" not in spec.machine.options


def test_repeated_machine_options_merge() -> None:
    spec = parse("qemu -machine pc,usb=on -machine usb=off,smm=on")
    assert spec.machine.type == "pc"
    assert spec.machine.options == {"usb": "off", "smm": "on"}


@pytest.mark.parametrize("query", ["-M help", "-machine ?", "-machine pc,help"])
def test_machine_help_is_not_a_vm(query: str) -> None:
    assert "help" in error_of(f"qemu {query}")


# --------------------------------------------------------------------------- accelerators


def test_no_accel() -> None:
    spec = parse("qemu -machine pc")
    assert spec.accel == []
    assert spec.accel_options == {}
    assert not spec.uses_kvm


def test_several_accel_in_order_with_first_options() -> None:
    spec = parse("qemu -accel kvm,dirty-ring-size=4096 -accel tcg,tb-size=100")
    assert spec.accel == ["kvm", "tcg"]
    assert spec.accel_options == {"dirty-ring-size": "4096"}


def test_enable_kvm_is_accel_kvm_in_place() -> None:
    # QEMU tries accelerators in the order given; -enable-kvm is "-accel kvm" where it stands.
    spec = parse("qemu -accel tcg,tb-size=100 -enable-kvm")
    assert spec.accel == ["tcg", "kvm"]
    assert not spec.uses_kvm
    assert spec.accel_options == {"tb-size": "100"}
    first = parse("qemu -enable-kvm -accel tcg")
    assert first.accel == ["kvm", "tcg"] and first.uses_kvm


def test_enable_kvm_does_not_duplicate() -> None:
    assert parse("qemu -enable-kvm -accel kvm -enable-kvm").accel == ["kvm"]
    assert parse("qemu -enable-kvm").accel == ["kvm"]


def test_accel_explicit_key() -> None:
    assert parse("qemu -accel accel=hvf").accel == ["hvf"]


# --------------------------------------------------------------------------- cpu


def test_cpu_model_features_and_props() -> None:
    spec = parse(
        "qemu -cpu Haswell-noTSX,+avx2,-hle,vmx=on,svm=off,x2apic=true,pcid=false,"
        "migratable,tsc-frequency=2000000000,hv-spinlocks=0x1fff"
    )
    assert spec.cpu.model == "Haswell-noTSX"
    # key=value settings first, then +feat, then -feat (QEMU's order of application).
    assert list(spec.cpu.features.items()) == [
        ("vmx", True),
        ("svm", False),
        ("x2apic", True),
        ("pcid", False),
        ("migratable", True),
        ("avx2", True),
        ("hle", False),
    ]
    assert spec.cpu.props == {"tsc-frequency": "2000000000", "hv-spinlocks": "0x1fff"}


def test_cpu_underscores_become_dashes_dots_stay() -> None:
    spec = parse("qemu -cpu qemu64,+sse4_1,+sse4.2,lahf_lm=on,tsc_frequency=1000")
    assert spec.cpu.features == {"sse4-1": True, "sse4.2": True, "lahf-lm": True}
    assert spec.cpu.props == {"tsc-frequency": "1000"}


def test_cpu_plus_minus_beat_key_value_and_minus_wins() -> None:
    # target/i386/cpu.c applies feat=on|off, then all +feat, then all -feat.
    spec = parse("qemu -cpu host,+avx,avx=off,level=7,level=on,-vmx,+vmx,x=1,x")
    assert spec.cpu.features == {"avx": True, "vmx": False, "level": True, "x": True}
    assert spec.cpu.props == {}
    assert parse("qemu -cpu host,-pdpe1gb,pdpe1gb=on").cpu.features == {"pdpe1gb": False}


def test_cpu_numbers_are_props_not_booleans() -> None:
    spec = parse("qemu -cpu host,phys-bits=0,level=1")
    assert spec.cpu.features == {}
    assert spec.cpu.props == {"phys-bits": "0", "level": "1"}


def test_last_cpu_option_wins() -> None:
    spec = parse("qemu -cpu host,+avx -cpu qemu64")
    assert spec.cpu.model == "qemu64"
    assert spec.cpu.features == {}


def test_cpu_errors() -> None:
    assert "help" in error_of("qemu -cpu help")
    assert "model" in error_of("qemu -cpu ,+avx")


def test_platform() -> None:
    assert parse("qemu -platform skylake-2024 -S").platform == "skylake-2024"
    assert parse("qemu -S").platform is None


# --------------------------------------------------------------------------- devices


def test_device_netdev_object_keyval() -> None:
    spec = parse(
        "qemu -device virtio-net-pci,netdev=n0,host_uso=off,id=net0 "
        "-netdev tap,id=n0,fd=3 -object memory-backend-ram,id=pc.ram,size=1024"
    )
    (device,) = [d for d in spec.devices if d.origin == "-device"]
    assert (device.driver, device.id) == ("virtio-net-pci", "net0")
    assert device.props == {"netdev": "n0", "host_uso": "off"}
    (netdev,) = spec.netdevs
    assert (netdev.type, netdev.id, netdev.props) == ("tap", "n0", {"fd": "3"})
    (obj,) = spec.objects
    assert (obj.qom_type, obj.id, obj.props) == ("memory-backend-ram", "pc.ram", {"size": "1024"})
    assert device.span == spec.options[0].span


def test_device_explicit_driver_key_and_no_id() -> None:
    spec = parse("qemu -device driver=e1000,mac=52:54:00:00:00:01 -netdev type=user")
    assert (spec.devices[0].driver, spec.devices[0].id) == ("e1000", None)
    assert spec.netdevs[0].type == "user"


def test_device_netdev_object_json_keeps_types() -> None:
    spec = parse(
        """qemu -device '{"driver":"virtio-net-pci","id":"net0","addr":2,"x":true}' \\
        -netdev '{"type":"tap","id":"hostnet0","fd":"3","vhost":true}' \\
        -object '{"qom-type":"secret","id":"masterKey0","format":"raw","size":[1,2]}'"""
    )
    assert spec.devices[0].driver == "virtio-net-pci"
    assert spec.devices[0].id == "net0"
    assert spec.devices[0].props == {"addr": 2, "x": True}
    assert spec.netdevs[0].props == {"fd": "3", "vhost": True}
    assert spec.objects[0].qom_type == "secret"
    assert spec.objects[0].props == {"format": "raw", "size": [1, 2]}


def test_invalid_json_names_line_and_option() -> None:
    message = error_of('qemu \\\n -S \\\n -device \'{"driver":"e1000" "id":"x"}\'')
    assert message.startswith("vm.cmdline line 3: -device: invalid JSON (Expecting ',' delimiter")
    assert "at char 18" in message


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        ('-device \'{"id":"x"}\'', "driver"),
        ("-device ,id=x", "driver"),
        ("-netdev id=n0", "type"),
        ("-object '{\"qom-type\":7}'", "qom-type"),
        ('-device \'{"driver":"e1000","id":5}\'', "id"),
        ("-device help", "help"),
        ('-device \'{"driver":"x","n":1' + "0" * 5000 + "}'", "invalid JSON"),
        ("-object '" + "{" * 100_000 + "'", "invalid JSON"),
    ],
)
def test_definition_errors(option: str, fragment: str) -> None:
    assert fragment in error_of(f"qemu {option}")


def test_globals_dotted_and_keyval() -> None:
    spec = parse(
        "qemu -global kvm-pit.lost_tick_policy=delay -global ICH9-LPC.disable_s3=1 "
        "-global driver=cfi.pflash01,property=secure,value=on -global isa-fdc.a.b=x,,y=z"
    )
    triples = [(g.driver, g.property, g.value) for g in spec.globals]
    assert triples == [
        ("kvm-pit", "lost_tick_policy", "delay"),
        ("ICH9-LPC", "disable_s3", "1"),
        ("cfi.pflash01", "secure", "on"),
        ("isa-fdc", "a.b", "x,,y=z"),  # the dotted form takes the value verbatim, like QEMU
    ]


def test_global_error() -> None:
    assert "driver.property=value" in error_of("qemu -global nonsense")


# --------------------------------------------------------------------------- split_keyval


def test_split_keyval_examples() -> None:
    assert split_keyval("pc,usb=off,smm") == ("pc", {"usb": "off", "smm": "on"})
    assert split_keyval("type=pc") == (None, {"type": "pc"})
    assert split_keyval("a,,b,c=d,,e,,") == ("a,b", {"c": "d,e,"})
    assert split_keyval("a,,,b=1") == ("a,", {"b": "1"})
    assert split_keyval("") == (None, {})
    assert split_keyval("x=1,x=2,y=a=b") == (None, {"x": "2", "y": "a=b"})


# --------------------------------------------------------------------------- files


def test_load_cmdline_file(tmp_path: Path) -> None:
    path = tmp_path / "vm.cmdline"
    path.write_text("qemu \\\n -machine q35\n", encoding="utf-8")
    spec = load_cmdline(str(path))
    assert spec.source == str(path)
    assert spec.machine.type == "q35"


def test_load_cmdline_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("qemu -cpu host"))
    spec = load_cmdline("-")
    assert spec.source == "<stdin>"
    assert spec.cpu.model == "host"


def test_load_cmdline_unreadable(tmp_path: Path) -> None:
    missing = tmp_path / "nope.cmdline"
    with pytest.raises(InputError, match=re.escape(str(missing))):
        load_cmdline(str(missing))
    with pytest.raises(InputError, match=re.escape(str(tmp_path))):
        load_cmdline(str(tmp_path))
    binary = tmp_path / "binary.cmdline"
    binary.write_bytes(b"qemu -name \xff\xfe")
    with pytest.raises(InputError, match="UTF-8"):
        load_cmdline(str(binary))


def test_errors_name_the_source(tmp_path: Path) -> None:
    path = tmp_path / "bad.cmdline"
    path.write_text("qemu -cpu", encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(f"{path} line 1: -cpu:")):
        load_cmdline(str(path))


# --------------------------------------------------------------------------- properties

# Text built from the characters that matter to the tokenizer and the option parser, so
# hypothesis reaches the interesting paths far more often than with arbitrary unicode.
SHELLISH = st.lists(
    st.sampled_from([*"-ab=,.:+{}[]\"'\\#\n\r\t $`", "-machine ", "-cpu "]), max_size=60
).map("".join)
OPTIONISH = st.lists(
    st.sampled_from(
        [
            *("-machine", "-M", "-cpu", "-device", "-netdev", "-object", "-global", "-accel"),
            *("-enable-kvm", "-S", "--nodefaults", "-platform", "help", "?", "{", '{"id":1}'),
            *('\'{"driver":"x"}\'', "a,,b", "a=b", "+x", ",", "''", '"', "\\\n", "# c\n"),
        ]
    ),
    max_size=12,
).map(" ".join)


def check_total(text: str) -> None:
    """parse_cmdline returns a VmSpec or raises InputError: nothing else, ever."""
    try:
        spec = parse(text)
    except InputError as err:
        assert "\n" not in str(err)
        assert str(err).startswith("vm.cmdline")
        return
    assert isinstance(spec, VmSpec)
    spec.to_json()  # the report path must not choke on anything we produced
    for option in spec.options:
        assert 0 <= option.span.start < option.span.end <= len(text)
        assert option.span.line == text.count("\n", 0, option.span.start) + 1


@FUZZ
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_input_error(text: str) -> None:
    check_total(text)


@FUZZ
@given(st.one_of(SHELLISH, OPTIONISH))
def test_shellish_text_parses_or_raises_input_error(text: str) -> None:
    check_total(text)


def shell_quote(word: str, style: int) -> str:
    """Render ``word`` so sh reads it back unchanged, in one of several styles."""
    if style == 0:
        return "'" + word.replace("'", "'\\''") + "'"
    if style == 1:
        return '"' + re.sub(r'([\\"$`])', r"\\\1", word) + '"'
    # Backslash-escape everything; a newline cannot be (that is a continuation), so quote it.
    return "".join("'\n'" if ch == "\n" else "\\" + ch for ch in word) or "''"


SEPARATORS = st.sampled_from([" ", "  ", " \\\n  ", "\t", " \\\r\n", " # note\n", "\n"])
# Characters that stress quoting and keyval escaping, plus a little unicode.
NASTY = st.text(
    alphabet=st.one_of(st.sampled_from(list(",=:'\"\\ \n\t#$`-+.")), st.characters()),
    min_size=1,
    max_size=12,
)
NAME = st.from_regex(r"[a-z][a-z0-9.\-]{0,10}", fullmatch=True).filter(lambda s: s != "help")


def escape_commas(value: str) -> str:
    return value.replace(",", ",,")


@st.composite
def machine_cmdlines(draw: st.DrawFn) -> tuple[str, str, dict[str, str]]:
    mtype = draw(NASTY.filter(lambda s: "=" not in s and s not in {"help", "?"}))
    keys = NASTY.filter(lambda s: "=" not in s and not s.startswith(",") and s != "help")
    keys = keys.filter(lambda s: s not in {"type", "accel"})
    options = draw(st.dictionaries(keys, st.text(max_size=10), max_size=4))
    arg = ",".join(
        [escape_commas(mtype)]
        + [f"{escape_commas(k)}={escape_commas(v)}" for k, v in options.items()]
    )
    return mtype, arg, options


@FUZZ
@given(machine_cmdlines(), st.integers(0, 2), st.integers(0, 2), SEPARATORS, SEPARATORS)
def test_machine_round_trip(
    machine: tuple[str, str, dict[str, str]], q1: int, q2: int, sep1: str, sep2: str
) -> None:
    mtype, arg, options = machine
    text = f"qemu{sep1}{shell_quote('-machine', q1)}{sep2}{shell_quote(arg, q2)} -S"
    assume("\0" not in text)  # a NUL makes the text NUL-separated argv (/proc/PID/cmdline)
    spec = parse(text)
    assert spec.machine.type == mtype
    assert spec.machine.options == options
    assert [o.name for o in spec.options] == ["machine", "S"]


CPU_BOOL_SPELLINGS = {
    True: ["+{}", "{}", "{}=on", "{}=true"],
    False: ["-{}", "{}=off", "{}=false"],
}


@st.composite
def cpu_cmdlines(draw: st.DrawFn) -> tuple[str, str, dict[str, bool], dict[str, str]]:
    model = draw(st.text(min_size=1, max_size=12).filter(lambda s: "," not in s and s != "?"))
    model = model if model != "help" else "host"
    names = draw(st.lists(NAME, unique=True, max_size=8))
    split = draw(st.integers(0, len(names)))
    features = {name: draw(st.booleans()) for name in names[:split]}
    prop_value = st.text(max_size=8).filter(
        lambda s: (
            "," not in s
            and s.lower() not in {"on", "off", "true", "false", "y", "n"}
            and s.lower() not in {"yes", "no"}
        )
    )
    props = {name: draw(prop_value) for name in names[split:]}
    items = [draw(st.sampled_from(CPU_BOOL_SPELLINGS[v])).format(k) for k, v in features.items()]
    items += [f"{k}={v}" for k, v in props.items()]
    items = draw(st.permutations(items))
    return model, ",".join([model, *items]), features, props


@FUZZ
@given(cpu_cmdlines(), st.integers(0, 2), SEPARATORS)
def test_cpu_round_trip(
    cpu: tuple[str, str, dict[str, bool], dict[str, str]], quoting: int, sep: str
) -> None:
    model, arg, features, props = cpu
    assume("\0" not in arg)  # a NUL makes the text NUL-separated argv (/proc/PID/cmdline)
    spec = parse(f"qemu -S{sep}-cpu {shell_quote(arg, quoting)}")
    assert spec.cpu.model == model
    assert spec.cpu.features == features
    assert spec.cpu.props == props


@FUZZ
@given(
    st.one_of(st.none(), st.text(min_size=1).filter(lambda s: "=" not in s)),
    st.dictionaries(
        st.text(min_size=1).filter(lambda s: "=" not in s and not s.startswith(",")),
        st.text(),
        max_size=5,
    ),
)
def test_split_keyval_round_trip(first: str | None, props: dict[str, str]) -> None:
    items = [] if first is None else [escape_commas(first)]
    items += [f"{escape_commas(k)}={escape_commas(v)}" for k, v in props.items()]
    assert split_keyval(",".join(items)) == (first, props)


# --------------------------------------------------------------------------- real data


def read_args_file(path: Path) -> str:
    """The file's text; libvirt keeps some as git symlinks, checked out here as plain files
    whose whole content is the target's name: follow those."""
    text = path.read_text(encoding="utf-8")
    target = path.parent / text.strip()
    if "\n" not in text.strip() and text.strip().endswith(".args") and target.is_file():
        return target.read_text(encoding="utf-8")
    return text


def raw_value(text: str, option: str) -> str | None:
    """Independent oracle: the first item of ``-option X,...`` on its own line."""
    match = re.search(rf"^-{option} '?((?:[^,\s\\']|,,)+)", text, re.MULTILINE)
    return match.group(1).replace(",,", ",") if match else None


@pytest.mark.shared_data
def test_libvirt_x86_64_latest_args_parse() -> None:
    require(LIBVIRT_ARGS.is_dir(), f"libvirt test data not found at {LIBVIRT_ARGS}")
    paths = sorted(LIBVIRT_ARGS.glob("*.x86_64-latest.args"))
    require(bool(paths), f"no *.x86_64-latest.args files under {LIBVIRT_ARGS}")
    problems: list[str] = []
    for path in paths:
        text = read_args_file(path)
        try:
            spec = parse_cmdline(text, path.name)
        except InputError as err:
            problems.append(str(err))
            continue
        found = (spec.machine.type, spec.cpu.model)
        expected = (raw_value(text, "machine"), raw_value(text, "cpu"))
        if found != expected:
            problems.append(f"{path.name}: parsed {found}, raw file says {expected}")
        # libvirt writes one option per line: a wrong no-argument list would shift words
        # and show up as positionals or as a different option count.
        option_lines = len(re.findall(r"^-", text, re.MULTILINE))
        if len(spec.options) != option_lines:
            problems.append(f"{path.name}: {len(spec.options)} options, {option_lines} lines")
        # A flag wrongly listed as argument-less would leave its argument as a positional;
        # the only genuine ones are bare words after an option's value (qemu:commandline).
        for word in spec.positional:
            if not re.search(rf"^-\S+ \S+ {re.escape(word)} \\$", text, re.MULTILINE):
                problems.append(f"{path.name}: unexpected positional {word!r}")
        given = [d for d in spec.devices if d.origin == "-device"]
        if len(given) != len(re.findall(r"^-device ", text, re.MULTILINE)):
            problems.append(f"{path.name}: device count differs from -device lines")
    assert not problems, "\n".join(problems[:20])
    assert len(paths) > 100
