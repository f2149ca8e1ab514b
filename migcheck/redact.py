"""Keep secrets that appear on a QEMU command line out of everything migcheck prints.

A command line can carry credentials: ``-object secret,id=sec0,data=...``, a SPICE or iSCSI
``password=``, a Ceph key inside ``file=rbd:pool/img:id=admin:key=AQB...``, a password in a
URL, an environment assignment such as ``DB_PASSWORD=...``. migcheck never needs any of them
to judge a migration, so every output path (``VmSpec.to_json()``, the JSON, table, JUnit and
Markdown reports, error messages) replaces them with :data:`REDACTED`.

The rules, and why (SECURITY.md has the threat model):

* A property whose name (after the last ``.``, case and ``_``/``-`` folded) is ``password``,
  ``passwd``, ``passphrase``, ``pass``, ``secret``, ``key``, ``psk`` or ``token``, or ends in
  ``-password``/``-passwd``/``-passphrase``/``-pass``, holds a secret itself: SPICE
  ``password=``, ``-iscsi password=``, ``file.password``, Ceph ``key=``, Ansible-style
  ``ansible_ssh_pass``. ``secret`` alone is ambiguous (an ID in some drivers), so it is
  redacted: hiding an ID costs nothing, showing a password would.
* ``data`` and ``iv`` of a ``secret`` object (``-object secret,...`` and its JSON form) are the
  secret and the material that decrypts it. On any other object or device ``data`` is
  ordinary (``-device loader,data=0x1``), so it stays.
* References stay: ``key-secret=sec0``, ``password-secret=sec0``, ``passwordid=``, ``keyid=``,
  ``tls-creds=``, ``tls-authz=`` name another object by ID; the ID is not a secret and shows
  how the guest is wired. So do paths (``file=`` of a secret object, ``dir=`` of
  ``tls-creds-psk``, ``keyring=``/``conf=`` in an rbd filename): a path names where a secret
  lives, and reading it needs the host's permissions.
* Inside any string value: the ``key=`` (or other secret name above) of a colon-separated
  Ceph ``rbd:`` filename, the password of a URL's ``user:password@`` (``iscsi://user%pass@``
  for iSCSI), and the value of a systemd credential ``io.systemd.credential:NAME=VALUE``
  (``-smbios type=11,value=...``).
* Environment assignments: a name containing ``PASSWORD``, ``PASSWD``, ``PASSPHRASE``,
  ``SECRET``, ``TOKEN`` or ``CREDENTIAL``, or with a ``_``-separated word ``KEY``, ``APIKEY``,
  ``PSK`` or one ending in ``PASS`` (``AWS_SECRET_ACCESS_KEY``, ``SSHPASS``, ``MY_PASS``; not
  ``PWD``, the working directory, nor ``XKB_KEYMAP``).

Booleans such as VNC's ``password=on`` are redacted too: the rule is about the name, and
knowing that a flag was on is not worth a rule that could miss a real password.
Redaction is display-only: checks read the parsed :class:`~migcheck.vm.VmSpec` unchanged.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "is_secret_env",
    "is_secret_prop",
    "redact_env",
    "redact_json",
    "redact_props",
    "redact_text",
    "redact_value",
]

REDACTED = "<redacted>"

# "cookie": curl's cookie= carries a session credential (block/curl.c; cookie-secret= is a
# reference and stays).
_SECRET_NAMES = frozenset(
    {"password", "passwd", "passphrase", "pass", "secret", "key", "psk", "token", "cookie"}
)
_SECRET_SUFFIXES = ("-password", "-passwd", "-passphrase", "-pass")
# Object types whose "data"/"iv" are secret material (qom/secret.c: data, file, format,
# keyid, iv). Only "secret" carries inline data; secret_keyring has a key serial number.
_SECRET_OBJECT_PROPS: Mapping[str, frozenset[str]] = {"secret": frozenset({"data", "iv"})}

_ENV_SUBSTRINGS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL")
_ENV_WORDS = frozenset({"PASS", "KEY", "APIKEY", "PSK"})
# Whole variables that carry credentials inside options: CEPH_ARGS="--id admin --key AQB..".
_ENV_NAMES = frozenset({"CEPH_ARGS"})
# fw_cfg entries under this prefix are systemd credentials: their string= is the secret.
_FW_CFG_CREDENTIAL = "opt/io.systemd.credentials/"
# Deeper than this, a value is replaced whole: redaction must not fail (RecursionError) on
# a hostile nesting, and hiding such a value never leaks one.
MAX_DEPTH = 64
TOO_DEEP = "<nested too deeply>"


def _norm(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip().lower().replace("_", "-")


def is_secret_prop(name: Any, kind: str | None = None) -> bool:
    """True when a property called ``name`` (of a ``kind`` object/device) holds a secret."""
    if not isinstance(name, str):
        return False
    norm = _norm(name)
    if norm in _SECRET_NAMES or norm.endswith(_SECRET_SUFFIXES):
        return True
    return kind is not None and norm in _SECRET_OBJECT_PROPS.get(kind, frozenset())


def is_secret_env(name: str) -> bool:
    """True when an environment variable called ``name`` holds a secret."""
    upper = name.upper()
    if upper in _ENV_NAMES or any(word in upper for word in _ENV_SUBSTRINGS):
        return True
    return any(word in _ENV_WORDS or word.endswith("PASS") for word in upper.split("_"))


# --------------------------------------------------------------------------- inside strings

# A secret-named pair in a colon-separated string: rbd:pool/img:id=admin:key=AQB...:conf=...
# ("\:" escapes a colon in rbd filenames). The value stops at a colon, comma or blank.
_COLON_PAIR = re.compile(r"(?<=:)(?P<key>[A-Za-z0-9_.-]+)=(?P<value>(?:\\.|[^:,\s\\'\"])*)")
# iSCSI URLs put the password after "%": iscsi://user%password@portal/iqn/lun.
_ISCSI_USERINFO = re.compile(r"(?P<head>\biscsi://[^%@/\s:]*%)(?P<value>[^@/\s]*)(?=@)", re.I)
# Any other URL: scheme://user:password@host.
# The password runs to the LAST "@" of the word: one written raw with "/" or "@" in it
# (which RFC 3986 says must be escaped, but operators type) is hidden whole. Only a port
# (digits up to the first "/") is told apart from a password (see _url_userinfo).
_URL_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:)(?P<value>[^\s,'\"]*)(?=@[^@\s,'\"]*)"
)
# fw_cfg's string= in a keyval group that names a systemd credential, either order.
_FW_CFG_STRING = re.compile(r"(?P<head>(?:^|(?<=[\s,'\"]))string=)(?P<value>(?:,,|[^,\s'\"])*)")
# systemd credentials passed in through SMBIOS type 11 or fw_cfg.
_SYSTEMD_CREDENTIAL = re.compile(
    r"(?P<head>io\.systemd\.credential(?:\.binary)?:[^=\s,]+=)(?P<value>(?:,,|[^,\s'\"])*)"
)


def _scrub(text: str) -> str:
    """Secrets embedded in one string value (rbd keys, URL passwords, systemd credentials)."""
    if "=" in text:
        text = _COLON_PAIR.sub(_colon_pair, text)
        text = _SYSTEMD_CREDENTIAL.sub(lambda m: m["head"] + _hide(m["value"]), text)
    if "://" in text:
        text = _ISCSI_USERINFO.sub(lambda m: m["head"] + _hide(m["value"]), text)
        text = _URL_USERINFO.sub(_url_userinfo, text)
    if _FW_CFG_CREDENTIAL in text and "string=" in text:
        text = " ".join(_fw_cfg_word(w) for w in text.split(" "))
    return text


def _url_userinfo(m: re.Match[str]) -> str:
    # http://host:8080/a@b: what follows the colon up to the first "/" is a port, and the
    # "@" is in the path; no password there.
    before_slash = m["value"].split("/", 1)[0]
    if "/" in m["value"] and before_slash.isdigit() and len(before_slash) <= 5:
        return m[0]
    return m["head"] + _hide(m["value"])


def _fw_cfg_word(word: str) -> str:
    if _FW_CFG_CREDENTIAL not in word:
        return word
    return _FW_CFG_STRING.sub(lambda m: m["head"] + _hide(m["value"]), word)


def _hide(value: str) -> str:
    return REDACTED if value else value


def _colon_pair(m: re.Match[str]) -> str:
    if is_secret_prop(m["key"]):
        return f"{m['key']}={_hide(m['value'])}"
    return m[0]


# --------------------------------------------------------------------------- structured values


def redact_value(key: Any, value: Any, kind: str | None = None, _depth: int = 0) -> Any:
    """``value`` of property ``key`` (on a ``kind`` object or device), safe to print."""
    if _is_count(key, value):
        return value  # a report's summary.pass (a number of checks) is no password
    if value is not None and is_secret_prop(key, kind):
        return REDACTED
    return redact_json(value, _depth)


def _is_count(key: Any, value: Any) -> bool:
    """``pass`` is a password in ssh-style options but a count in migcheck's own summaries;
    an integer there is the count."""
    return (
        isinstance(key, str)
        and _norm(key) == "pass"
        and isinstance(value, int)
        and not isinstance(value, bool)
    )


def redact_props(
    props: Mapping[Any, Any], kind: str | None = None, _depth: int = 0
) -> dict[Any, Any]:
    """A copy of a property dict with every secret value replaced; ``kind`` is the object
    type or device driver (``"secret"`` makes ``data`` and ``iv`` secret)."""
    if kind is None and isinstance(props.get("qom-type"), str):
        kind = props["qom-type"]
    out = {k: redact_value(k, v, kind, _depth) for k, v in props.items()}
    name = props.get("name")
    if isinstance(name, str) and name.startswith(_FW_CFG_CREDENTIAL) and "string" in out:
        out["string"] = REDACTED  # -fw_cfg name=opt/io.systemd.credentials/X,string=SECRET
    return out


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of leading ``NAME=value`` assignments with secret values replaced."""
    return {k: REDACTED if is_secret_env(k) else _scrub(v) for k, v in env.items()}


def redact_json(value: Any, _depth: int = 0) -> Any:
    """Any JSON-like value (dicts, lists, strings) with secrets replaced, recursively.

    Dict keys are judged by name (:func:`is_secret_prop`), strings by :func:`redact_text`.
    A container nested deeper than :data:`MAX_DEPTH` is replaced by :data:`TOO_DEEP`.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (Mapping, list, tuple)) and _depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, Mapping):
        return redact_props(value, None, _depth + 1)
    if isinstance(value, (list, tuple)):
        return [redact_json(v, _depth + 1) for v in value]
    return value


# --------------------------------------------------------------------------- free text

_NAME = r"(?:[A-Za-z0-9_-]+\.)*[A-Za-z0-9_-]+"
# key=value in keyval or shell text. A name starts after a blank, a comma, a quote, "{", "("
# or the start of the text, optionally with option dashes ("--password=x"). The value runs to
# the next unescaped comma or blank; quoted parts and ",," (an escaped comma) belong to it.
_KEYVAL = re.compile(
    r"(?<![A-Za-z0-9_.:-])(?P<key>-{0,2}" + _NAME + r")="
    r"(?P<value>(?:'[^']*'|\"(?:[^\"\\]|\\.)*\"|,,|\\.|[^,\s'\"\\])*)"
)
# "key": value in JSON text (a JSON -device/-object argument in a message).
_JSON_PAIR = re.compile(
    r"\"(?P<key>[^\"\\]*)\"\s*:\s*(?P<value>\"(?:[^\"\\]|\\.)*\"|[-+0-9A-Za-z_.]+)"
)
_JSON_SECRET_TYPE = re.compile(r"\"qom-type\"\s*:\s*\"secret\"")
# A shell word that defines a secret object in keyval syntax.
_KEYVAL_SECRET_WORD = re.compile(r"^['\"]?secret,|(?:^|[,'\"])qom-type=secret(?:$|[,'\"])")
_WORD = re.compile(r"\S+")


class _Marks:
    """Sorted offsets where a pattern matches, found once: each look-up is O(log n), so
    text with many pairs stays linear (no rescanning from every match)."""

    def __init__(self, text: str, pattern: re.Pattern[str]) -> None:
        self.spans = [(m.start(), m.end()) for m in pattern.finditer(text)]
        self.starts = [start for start, _ in self.spans]

    def last_start_before(self, pos: int) -> int:
        i = bisect.bisect_right(self.starts, pos) - 1
        return self.starts[i] if i >= 0 else -1

    def first_start_from(self, pos: int) -> int:
        i = bisect.bisect_left(self.starts, pos)
        return self.starts[i] if i < len(self.starts) else -1

    def span_around(self, pos: int) -> tuple[int, int] | None:
        i = bisect.bisect_right(self.starts, pos) - 1
        return self.spans[i] if i >= 0 and self.spans[i][1] > pos else None


def redact_text(text: str) -> str:
    """Free text (a message, an option's value, a whole command line) with secrets replaced.

    Works on keyval (``a=b,c=d``), shell words, JSON fragments and the string forms above.
    It is a best effort for text that has no structure migcheck knows; structured data
    goes through :func:`redact_props` instead. Linear in the length of the text.
    """
    if not isinstance(text, str) or ("=" not in text and ":" not in text):
        return text
    if '"' in text and ":" in text:
        text = _redact_json_pairs(text)
    if "=" in text:
        text = _redact_keyval(text)
    return _scrub(text)


def _redact_json_pairs(text: str) -> str:
    marks: dict[str, _Marks] = {}  # built on the first "data"/"iv" only

    def secret_object_around(start: int, end: int) -> bool:
        if not marks:
            marks["{"] = _Marks(text, re.compile(r"\{"))
            marks["}"] = _Marks(text, re.compile(r"\}"))
            marks["secret"] = _Marks(text, _JSON_SECRET_TYPE)
        lo = max(marks["{"].last_start_before(start), 0)
        hi = marks["}"].first_start_from(end)
        found = marks["secret"].first_start_from(lo)
        return found >= 0 and (hi < 0 or found < hi)

    def pair(m: re.Match[str]) -> str:
        key = m["key"]
        secret = is_secret_prop(key)
        if not secret and _norm(key) in _SECRET_OBJECT_PROPS["secret"]:
            secret = secret_object_around(m.start(), m.end())
        if secret:
            return m[0][: m.start("value") - m.start()] + f'"{REDACTED}"'
        return m[0]

    return _JSON_PAIR.sub(pair, text)


def _redact_keyval(text: str) -> str:
    words: list[_Marks] = []  # built on the first "data"/"iv" only
    secret_words: dict[int, bool] = {}

    def in_secret_word(pos: int) -> bool:
        if not words:
            words.append(_Marks(text, _WORD))
        span = words[0].span_around(pos)
        if span is None:
            return False
        if span[0] not in secret_words:
            word = text[span[0] : span[1]]  # a slice: "^" does not anchor at search(pos)
            secret_words[span[0]] = bool(_KEYVAL_SECRET_WORD.search(word))
        return secret_words[span[0]]

    def pair(m: re.Match[str]) -> str:
        key = m["key"].lstrip("-")
        secret = is_secret_prop(key)
        if not secret and _norm(key) in _SECRET_OBJECT_PROPS["secret"]:
            secret = in_secret_word(m.start())
        if secret:
            return f"{m['key']}={_hide(m['value'])}"
        return m[0]

    return _KEYVAL.sub(pair, text)
