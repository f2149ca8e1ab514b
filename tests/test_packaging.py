"""The built wheel and sdist work away from the checkout (issue 24 section 1).

An editable install hides packaging mistakes: the catalog is read from the source tree. Here
the wheel is built, installed into a clean venv of each supported Python, and run from a
directory that is not the checkout, on the project's own captured fixtures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "migcheck" / "catalog" / "data"
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheel and sdist built the way a user builds them: pip's isolated build (PyPI for
    setuptools), from a copy of the tracked files so no local build state leaks in."""
    out = tmp_path_factory.mktemp("dist")
    src = tmp_path_factory.mktemp("src") / "migcheck"
    files = _run(["git", "-C", str(ROOT), "ls-files", "-z"])
    require(files.returncode == 0, "git ls-files failed: not a git checkout")
    for name in files.stdout.split("\0"):
        if name and (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    build = _run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(src)]
    )
    require(
        build.returncode == 0 or "network" not in build.stderr.lower(),
        "pip could not reach an index to fetch setuptools for the isolated build",
    )
    assert build.returncode == 0, build.stderr[-3000:]
    # No setuptools deprecation banner (the old license table printed one on every build).
    assert "deprecat" not in (build.stdout + build.stderr).lower(), build.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def _data_files() -> set[str]:
    return {str(p.relative_to(ROOT)) for p in DATA.rglob("*") if p.is_file()}


def test_wheel_holds_every_data_file(dists: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(dists["wheel"]).namelist())
    missing = sorted(_data_files() - names)
    assert not missing, f"wheel lacks {missing}"
    for must in (
        "migcheck/_help.py",
        "migcheck/probe/probe.py",
        "migcheck/catalog/data/qemu/compat/7.2.toml",
        "migcheck/catalog/data/qemu/BLOCKERS-AUDIT.md",
    ):
        assert must in names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(dists["wheel"]).read(meta).decode()
    assert "License-Expression: Apache-2.0" in text  # SPDX (PEP 639), not the old table


def test_sdist_holds_data_fixtures_and_tests(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = sorted(_data_files() - names)
    assert not missing, f"sdist lacks {missing}"
    for must in (
        "fixtures/hosts/debian12-qemu7.2-epyc-pvm.json",
        "tests/conftest.py",
        "Makefile",
        "migcheck/_help.py",
    ):
        assert must in names


@pytest.mark.parametrize("version", SUPPORTED)
def test_wheel_runs_pair_from_elsewhere(
    version: str, dists: dict[str, Path], tmp_path: Path
) -> None:
    """Each supported Python: a clean venv, the wheel (dependencies from the index), and
    `migcheck pair` on the bundled fixtures from an unrelated working directory."""
    found = sorted(PYENV.glob(f"{version}.*/bin/python{version}"))
    if not found and sys.version_info[:2] == tuple(int(x) for x in version.split(".")):
        found = [Path(sys.executable)]
    require(bool(found), f"no Python {version} (pyenv at {PYENV}) to test the wheel on")
    venv = tmp_path / "venv"
    made = _run([str(found[-1]), "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    pip = _run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(dists["wheel"])])
    require(
        pip.returncode == 0 or "network" not in pip.stderr.lower(),
        "pip could not reach an index for migcheck's dependencies",
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    fx = ROOT / "fixtures"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIGCHECK_", "PYTHON"))}
    res = _run(
        [
            str(venv / "bin/migcheck"),
            "pair",
            str(fx / "hosts/debian13-qemu10.0-epyc-pvm.json"),
            str(fx / "hosts/debian12-qemu7.2-epyc-pvm.json"),
            "--cmdline",
            str(fx / "cmdlines/web01-q35.cmdline"),
            "--format",
            "json",
        ],
        cwd=elsewhere,
        env=env,
    )
    # The fixtures' answer is UNSAFE (10.0 -> 7.2): exit 1 with a verdict, not 2 (no catalog).
    assert res.returncode == 1, res.stderr[-3000:]
    assert '"verdict": "unsafe"' in res.stdout
    where = _run(
        [str(venv / "bin/python"), "-c", "import migcheck.catalog as c; print(c.__file__)"],
        cwd=elsewhere,
        env=env,
    )
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout
