"""The probe cache: one round trip still, QEMU skipped only when nothing it depends on
changed, and a fresh probe whenever any fingerprint input changes."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from conftest import require

import migcheck.probe.probe as probe
from migcheck.gather import Gatherer, GatherOptions, cache_dir


@pytest.fixture()
def qemu_wrapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A QEMU binary of our own (a wrapper around the real one), so the test can change
    its size and mtime like a package upgrade would."""
    real = shutil.which("qemu-system-x86_64")
    require(real is not None, "needs qemu-system-x86_64")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    wrapper = tmp_path / "qemu-system-x86_64"
    wrapper.write_text(f'#!/bin/sh\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper


def gather(wrapper: Path, **kw):
    return Gatherer(GatherOptions(qemu=str(wrapper), **kw)).gather("local")


def test_second_gather_reuses_qemu_answers(qemu_wrapper: Path):
    first = gather(qemu_wrapper)
    assert not first.doc["probe"].get("qemu_from_cache")
    assert list(cache_dir().glob("*.json"))
    second = gather(qemu_wrapper)
    assert second.doc["probe"].get("qemu_from_cache") is True
    assert second.doc["qemu"] == first.doc["qemu"]
    assert second.qemu_version == first.qemu_version


def test_refresh_forces_a_full_probe(qemu_wrapper: Path):
    gather(qemu_wrapper)
    fresh = gather(qemu_wrapper, refresh=True)
    assert not fresh.doc["probe"].get("qemu_from_cache")


def test_changed_qemu_binary_means_a_fresh_probe(qemu_wrapper: Path):
    gather(qemu_wrapper)
    st = qemu_wrapper.stat()
    os.utime(qemu_wrapper, (st.st_atime, st.st_mtime + 60))  # "upgraded"
    assert not gather(qemu_wrapper).doc["probe"].get("qemu_from_cache")
    with qemu_wrapper.open("a") as f:
        f.write("# grown\n")
    assert not gather(qemu_wrapper).doc["probe"].get("qemu_from_cache")
    assert gather(qemu_wrapper).doc["probe"].get("qemu_from_cache") is True


def test_damaged_cache_costs_only_a_full_probe(qemu_wrapper: Path):
    gather(qemu_wrapper)
    for path in cache_dir().glob("*.json"):
        path.write_text("{ not json")
    facts = gather(qemu_wrapper)
    assert not facts.doc["probe"].get("qemu_from_cache") and facts.qemu_version


FINGERPRINT_KEYS = ["kernel_release", "microcode", "kvm_usable", "kvm_modules", "qemu_binary",
                    "qemu_size", "qemu_mtime", "qemu_override"]  # fmt: skip


def test_fingerprint_covers_every_input(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(probe, "find_qemu", lambda arch: None)
    fp = probe.fingerprint({"kernel": {}, "cpu": {}, "kvm": {}}, "x86_64")
    assert sorted(fp) == sorted(FINGERPRINT_KEYS)


@pytest.mark.parametrize("key", FINGERPRINT_KEYS)
def test_any_changed_input_means_a_fresh_probe(qemu_wrapper: Path, key: str):
    """The real probe, told a known fingerprint that differs from the host's in one input
    (as if that input changed on the host since), starts QEMU again."""
    import json

    from migcheck.transport.local import run_local_probe

    config = {"qemu": str(qemu_wrapper), "qemu_timeout": 20}
    first = json.loads(run_local_probe(config))
    known = dict(first["probe"]["fingerprint"])
    same = json.loads(run_local_probe({**config, "known_fingerprint": known}))
    assert same["qemu"].get("cached") is True  # control: unchanged inputs skip QEMU
    known[key] = "changed since the last probe"
    again = json.loads(run_local_probe({**config, "known_fingerprint": known}))
    assert "cached" not in again["qemu"] and again["qemu"]["version"] == first["qemu"]["version"]
