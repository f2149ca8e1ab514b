#!/usr/bin/python3
"""A recorded-QMP stand-in for ``qemu-system-x86_64`` (the lab binds it over the real one).

This file is the template of the per-host program: ``lab.standin.render()`` replaces the
``REPLIES = ""`` line below with the absolute path of a libvirt capture
(``caps_<ver>_x86_64.replies``). Standard library only; run by the system ``/usr/bin/python3``.

It answers what migcheck's probe asks, from the recording (the KVM phase, which libvirt
records first):

* ``--version`` / ``-version``: ``QEMU emulator version X.Y.Z (<package>)`` from the
  recorded ``query-version`` (the 9.1.0 capture really says 9.0.90; that is kept).
* ``-qmp stdio``: a QMP greeting line, then one line per JSON command read from stdin:
  ``{"return": <recorded answer>, "id": <the caller's id>}`` (or the recorded error);
  ``query-cpu-model-expansion`` prefers the recorded call with the same arguments, else the
  recorded plain ``host`` expansion; unknown commands get ``CommandNotFound``; ``quit``
  answers, emits SHUTDOWN and exits.
"""

import json
import sys
import time

REPLIES = ""  # replaced by the lab with the capture's path

PROG = "qemu-system-x86_64"


def read_objects(path):
    """The JSON objects of a libvirt QMP dump, in order (pretty-printed, blank-separated)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    dec = json.JSONDecoder()
    objs, i, n = [], 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return objs
        obj, i = dec.raw_decode(text, i)
        objs.append(obj)


def kvm_phase(objs):
    """(command, arguments, answer) of the first phase (up to the 2nd qmp_capabilities).

    Each command is immediately followed by its answer; ids restart in the TCG phase, so
    pairing is by position, checked against the id."""
    calls, pending, seen_caps = [], None, 0
    for obj in objs:
        if "execute" in obj:
            if obj["execute"] == "qmp_capabilities":
                seen_caps += 1
                if seen_caps > 1:
                    break
            pending = obj
        elif pending is not None and obj.get("id") == pending.get("id"):
            answer = {k: obj[k] for k in ("return", "error") if k in obj}
            calls.append((pending["execute"], pending.get("arguments") or {}, answer))
            pending = None
    return calls


class Recording:
    def __init__(self, path):
        self.calls = kvm_phase(read_objects(path))
        self.first = {}
        for cmd, _args, answer in self.calls:
            self.first.setdefault(cmd, answer)
        version = self.first.get("query-version", {}).get("return", {})
        self.version = version.get("qemu", {"major": 0, "minor": 0, "micro": 0})
        self.package = version.get("package", "")

    def version_text(self):
        v = self.version
        text = f"{v.get('major', 0)}.{v.get('minor', 0)}.{v.get('micro', 0)}"
        return f"{text} ({self.package})" if self.package else text

    def answer(self, cmd, args):
        if cmd == "query-cpu-model-expansion":
            for rcmd, rargs, answer in self.calls:
                if rcmd == cmd and rargs == args:
                    return answer
            for rcmd, rargs, answer in self.calls:
                model = rargs.get("model", {})
                if rcmd == cmd and model.get("name") == "host" and not model.get("props"):
                    return answer
        return self.first.get(cmd)


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def error(cls, desc):
    return {"error": {"class": cls, "desc": desc}}


def serve_qmp(rec):
    send(
        {"QMP": {"version": {"qemu": rec.version, "package": rec.package}, "capabilities": ["oob"]}}
    )
    negotiated = False
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError as exc:
            send(error("GenericError", f"JSON parse error, {exc}"))
            continue
        if not isinstance(msg, dict) or "execute" not in msg:
            send(error("GenericError", "QMP input must be a JSON object with 'execute'"))
            continue
        cmd = msg["execute"]
        reply = None
        if cmd == "qmp_capabilities":
            if negotiated:
                reply = error(
                    "CommandNotFound",
                    "Capabilities negotiation is already complete, command ignored",
                )
            else:
                negotiated = True
                reply = {"return": {}}
        elif not negotiated:
            reply = error(
                "CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'"
            )
        elif cmd == "quit":
            reply = {"return": {}}
        else:
            reply = rec.answer(cmd, msg.get("arguments") or {})
            if reply is None:
                reply = error("CommandNotFound", f"The command {cmd} has not been found")
        reply = dict(reply)
        if "id" in msg:
            reply["id"] = msg["id"]
        send(reply)
        if cmd == "quit" and negotiated:
            now = time.time()
            send(
                {
                    "timestamp": {"seconds": int(now), "microseconds": int(now % 1 * 1e6)},
                    "event": "SHUTDOWN",
                    "data": {"guest": False, "reason": "host-qmp-quit"},
                }
            )
            return 0
    return 0


def main(argv):
    rec = Recording(REPLIES)
    if "--version" in argv or "-version" in argv:
        sys.stdout.write(f"QEMU emulator version {rec.version_text()}\n")
        sys.stdout.write(
            "Copyright (c) 2003-2024 Fabrice Bellard and the QEMU Project developers\n"
        )
        return 0
    for i, arg in enumerate(argv[:-1]):
        if arg in ("-qmp", "--qmp") and argv[i + 1] == "stdio":
            return serve_qmp(rec)
    sys.stderr.write(
        f"{PROG}: lab stand-in (recorded QMP from {REPLIES}) supports only --version and "
        "-qmp stdio\n"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
