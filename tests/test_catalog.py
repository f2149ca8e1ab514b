"""The platform catalog: validation of broken catalogs, and the shipped catalog itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from migcheck.catalog import CatalogError, load_catalog, platform_sort_key
from migcheck.errors import InputError
from migcheck.platforms import equivalents, reduced_graph, superset_graph

SOURCE = '[[sources]]\ntitle = "test"\nurl = "https://example.invalid/source"\n'


def cap(cid: str, linux: str, *, extra: str = "", platform: bool = True) -> str:
    return (
        f'id = "{cid}"\ntitle = "{cid}"\nsummary = "test capability"\narea = "kvm"\n'
        f'linux = "{linux}"\nverified = true\nplatform = {str(platform).lower()}\n{extra}\n'
        + SOURCE
    )


def distro(pid: str, base: str, *, extends: str | None = None, backports: str = "") -> str:
    ext = f'extends = "{extends}"\n' if extends else ""
    return (
        f'id = "{pid}"\ntitle = "{pid}"\nbase = "{base}"\n{ext}'
        f'os = {{ id = "rhel", version_id = "9.4" }}\nkernel = [\'^5\\.14\\.0-427\\.\']\n'
        f"{backports}\n" + SOURCE
    )


def make_catalog(root: Path, caps: dict[str, str], distros: dict[str, str] | None = None) -> Path:
    (root / "capabilities").mkdir(parents=True)
    (root / "distros").mkdir()
    for name, text in caps.items():
        (root / "capabilities" / f"{name}.toml").write_text(text)
    for name, text in (distros or {}).items():
        (root / "distros" / f"{name}.toml").write_text(text)
    upstream = "".join(
        f'[[platform]]\nid = "linux-{v}"\nlinux = "{v}"\n'
        + SOURCE.replace("[[sources]]", "[[platform.sources]]")
        for v in ("5.10", "5.14", "6.1", "6.2", "6.3")
    )
    (root / "upstream.toml").write_text(upstream)
    return root


def small(root: Path, **distros: str) -> Path:
    return make_catalog(
        root,
        {
            "a": cap("a", "5.10", extra='[detect]\nkvm_cap = "KVM_CAP_X2APIC_API"'),
            "b": cap("b", "6.1"),
            "c": cap("c", "6.2"),
            "hw": cap("hw", "5.10", platform=False),
        },
        distros,
    )


def test_small_catalog_sets_and_graph(tmp_path: Path):
    backport = 'backports = [{ capability = "c", source = "x" }]'
    rhel = distro("linux-rhel-9.4", "5.14", backports=backport)
    catalog = load_catalog(small(tmp_path, **{"linux-rhel-9.4": rhel}))
    p = catalog.platforms
    assert p["linux-5.10"].capabilities == {"a"}  # hardware-dependent "hw" is not in platforms
    assert p["linux-6.2"].capabilities == {"a", "b", "c"}
    assert p["linux-6.3"].capabilities == p["linux-6.2"].capabilities
    assert p["linux-rhel-9.4"].capabilities == {"a", "c"}
    full = superset_graph(catalog)
    assert full.has_edge("linux-6.2", "linux-5.10") and full.has_edge("linux-6.2", "linux-6.1")
    assert not full.has_edge("linux-6.3", "linux-6.2")  # equal sets: no strict inclusion
    reduced = reduced_graph(catalog)
    assert reduced.has_edge("linux-6.1", "linux-5.10")
    assert not reduced.has_edge("linux-6.2", "linux-5.10")  # implied through linux-6.1
    # rhel-9.4 (a, c) and linux-6.1 (a, b) are incomparable; both sit above linux-5.10.
    assert reduced.has_edge("linux-rhel-9.4", "linux-5.10")
    assert reduced.has_edge("linux-6.2", "linux-rhel-9.4")
    assert equivalents(catalog, "linux-6.2") == ["linux-6.3"]


def _put(kind: str, name: str, text: str):
    return lambda root: (root / kind / f"{name}.toml").write_text(text)


RHEL = "linux-rhel-9.4"
BROKEN = [
    (_put("capabilities", "b", cap("b", "six")), "Linux version"),
    (_put("capabilities", "b", cap("x", "6.1")), "file name"),
    (_put("capabilities", "b", cap("b", "6.1").replace(SOURCE, "")), "sources"),
    (_put("capabilities", "b", "id = [broken"), "not valid TOML"),
    (_put("capabilities", "b", cap("b", "6.1", extra='[detect]\nkvm_cap = "KVM_CAP_NOPE"')),
     "KVM_CAP_NOPE"),
    (_put("distros", RHEL, distro(RHEL, "5.14",
          backports='backports = [{ capability = "nope", source = "x" }]')), "unknown capability"),
    (_put("distros", RHEL, distro(RHEL, "5.14", extends="linux-6.1")), "lacks its capabilities"),
    (_put("distros", RHEL, distro(RHEL, "5.14", extends="linux-rhel-9.9")), "unknown platform"),
    (_put("distros", RHEL, distro(RHEL, "5.14", backports='backports = [{ capability = "c" }]')),
     "source"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "message"), BROKEN)
def test_broken_catalog_names_file_and_entry(tmp_path: Path, mutate, message: str):
    root = small(tmp_path, **{"linux-rhel-9.4": distro("linux-rhel-9.4", "5.14")})
    load_catalog(root)  # valid before the mutation
    mutate(root)
    with pytest.raises(CatalogError) as err:
        load_catalog(root)
    text = str(err.value)
    assert message in text
    assert re.search(r"\.toml", text), text  # names the file
    assert isinstance(err.value, InputError)


def test_extends_cycle_is_refused(tmp_path: Path):
    root = small(
        tmp_path,
        **{
            "linux-rhel-9.4": distro("linux-rhel-9.4", "5.14", extends="linux-rhel-9.5"),
            "linux-rhel-9.5": distro("linux-rhel-9.5", "5.14", extends="linux-rhel-9.4"),
        },
    )
    with pytest.raises(CatalogError, match="cycle"):
        load_catalog(root)


def test_unknown_platform_lists_known_ones(tmp_path: Path):
    catalog = load_catalog(small(tmp_path))
    with pytest.raises(InputError, match=r"linux-5\.10, linux-5\.14"):
        catalog.platform("linux-9.9")


def test_sort_key_orders_versions_numerically():
    names = ["linux-6.10", "linux-rhel-9.4", "linux-6.2", "linux-4.19", "linux-debian-12"]
    assert sorted(names, key=platform_sort_key) == [
        "linux-4.19",
        "linux-6.2",
        "linux-6.10",
        "linux-debian-12",
        "linux-rhel-9.4",
    ]


# --- the catalog migcheck ships ----------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return load_catalog()


def test_shipped_catalog_is_valid_and_sourced(shipped):
    assert len(shipped.capabilities) >= 25
    for c in shipped.capabilities.values():
        assert c.sources, c.id
        assert all(s.get("url") or s.get("title") for s in c.sources)
    for p in shipped.platforms.values():
        assert p.sources, p.id


def test_shipped_upstream_platforms_cover_418_to_612(shipped):
    for minor in [*(f"4.{m}" for m in (18, 19, 20)), *(f"5.{m}" for m in range(0, 20)),
                  *(f"6.{m}" for m in range(0, 13))]:  # fmt: skip
        assert f"linux-{minor}" in shipped.platforms, minor
    for lts in ("4.19", "5.4", "5.10", "5.15", "6.1", "6.6", "6.12"):
        assert shipped.platforms[f"linux-{lts}"].lts, lts


def test_shipped_distro_platforms(shipped):
    distros = {p.id for p in shipped.platforms.values() if p.kind == "distro"}
    for prefix in (
        "linux-rhel-8",
        "linux-rhel-9",
        "linux-ubuntu-20.04",
        "linux-ubuntu-22.04",
        "linux-ubuntu-24.04",
        "linux-debian-11",
        "linux-debian-12",
        "linux-debian-13",
    ):
        assert any(d.startswith(prefix) for d in distros), prefix


def test_every_new_capability_version_has_an_upstream_platform(shipped):
    for c in shipped.capabilities.values():
        if c.in_platforms and c.linux_tuple >= (4, 18):
            assert f"linux-{c.linux}" in shipped.platforms, c.id


def test_shipped_graph_is_a_dag_consistent_with_extends(shipped):
    import networkx as nx

    g = superset_graph(shipped)
    assert nx.is_directed_acyclic_graph(g)
    for p in shipped.platforms.values():
        if p.extends:
            assert p.capabilities >= shipped.platforms[p.extends].capabilities
