"""Bounded memory for facts: a 16 MiB document adds at most 64 MiB (4x) to the process
above its idle peak (after imports), whatever its structure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/hosts/debian13-qemu10.0-epyc-pvm.json"
MIB = 1024 * 1024
LOADER = """
import resource, sys
from migcheck.errors import MigcheckError
from migcheck.facts import load_facts
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_facts(sys.argv[1])
    print("loaded")
except MigcheckError as exc:
    print("refused", exc)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def _document(kind: str) -> bytes:
    base = json.loads(FIXTURE.read_text())
    target = 16 * MIB
    if kind == "empty-dicts":  # the worst shape: 5.6 M dicts, about 400 MB parsed
        pad = b"[" + b"{}," * ((target - 200_000) // 3) + b"{}]"
        return json.dumps(base).encode()[:-1] + b', "padding": ' + pad + b"}"
    if kind == "small-ints":
        pad = b"[" + b"1," * ((target - 200_000) // 2) + b"1]"
        return json.dumps(base).encode()[:-1] + b', "padding": ' + pad + b"}"
    if kind == "cpu-models":  # real-shaped: the host's CPU model list, many times
        models = base["qemu"]["cpu_models"]
        n = target // len(json.dumps(models))
        return json.dumps(dict(base, padding=[models] * n)).encode()
    assert kind == "long-strings"
    return json.dumps(dict(base, padding=["x" * 4096 + str(i) for i in range(4000)])).encode()


@pytest.mark.parametrize(
    ("kind", "loads"),
    [("empty-dicts", False), ("small-ints", False), ("cpu-models", False), ("long-strings", True)],
)
def test_a_16_mib_document_costs_at_most_4x(tmp_path: Path, kind: str, loads: bool):
    path = tmp_path / "big.json"
    path.write_bytes(_document(kind))
    size = path.stat().st_size
    assert size > 15 * MIB
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, str(path)], capture_output=True, text=True, timeout=120
    )
    status, *_, grown = proc.stdout.split("\n")[:-1] or [proc.stderr]
    assert status.startswith("loaded" if loads else "refused"), proc.stdout + proc.stderr
    if not loads:
        assert "more than 3 times its size" in status
    assert int(grown) <= 4 * size, f"{kind}: {int(grown) / MIB:.1f} MiB for {size / MIB:.1f} MiB"
