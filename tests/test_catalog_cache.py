"""The parsed catalog is cached per installed version and directory, and never reused stale:
a data file rewritten in place, even with its size and mtime restored, is parsed again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import migcheck.catalog as catalog_module
from migcheck.catalog import cached_catalog, default_catalog_dir


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(default_catalog_dir(), copy)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return copy


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    parses: list[Path] = []
    real = catalog_module.load_catalog

    def counting(root=None):  # type: ignore[no-untyped-def]
        parses.append(Path(root))
        return real(root)

    monkeypatch.setattr(catalog_module, "load_catalog", counting)
    return parses


def test_second_run_reads_the_cache_not_the_files(data: Path, monkeypatch) -> None:
    parses = _count_parses(monkeypatch)
    first = cached_catalog(data)
    second = cached_catalog(data)
    assert len(parses) == 1
    assert second.platforms.keys() == first.platforms.keys()
    assert second.root == str(data)


def test_file_rewritten_in_place_with_size_and_mtime_restored_is_parsed_again(
    data: Path, monkeypatch
) -> None:
    upstream = data / "upstream.toml"
    assert cached_catalog(data).platforms["linux-4.14"].released == "2017-11-12"
    before = upstream.stat()
    text = upstream.read_text()
    upstream.write_text(text.replace('released = "2017-11-12"', 'released = "2017-11-13"', 1))
    os.utime(upstream, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = upstream.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    parses = _count_parses(monkeypatch)
    assert cached_catalog(data).platforms["linux-4.14"].released == "2017-11-13"
    assert len(parses) == 1


def test_added_and_removed_files_are_parsed_again(data: Path, monkeypatch) -> None:
    cached_catalog(data)
    parses = _count_parses(monkeypatch)
    extra = data / "distros" / "zz-extra.toml"
    debian11 = (data / "distros" / "linux-debian-11.toml").read_text()
    extra.write_text(debian11.replace('id = "linux-debian-11"', 'id = "zz-extra"', 1))
    assert "zz-extra" in cached_catalog(data).platforms
    extra.unlink()
    assert "zz-extra" not in cached_catalog(data).platforms
    assert len(parses) == 2


def test_corrupt_cache_file_is_parsed_again(data: Path, monkeypatch, tmp_path: Path) -> None:
    cached_catalog(data)
    (cache,) = (tmp_path / "cache" / "migcheck" / "catalog").glob("*.pickle")
    cache.write_bytes(b"not a pickle")
    parses = _count_parses(monkeypatch)
    assert "linux-4.14" in cached_catalog(data).platforms
    assert len(parses) == 1


def test_cache_directory_others_can_write_is_never_read(
    data: Path, monkeypatch, tmp_path: Path
) -> None:
    cached_catalog(data)
    root = tmp_path / "cache" / "migcheck" / "catalog"
    root.chmod(0o777)  # a pickle is code: never load one someone else could have planted
    parses = _count_parses(monkeypatch)
    cached_catalog(data)
    assert len(parses) == 1
