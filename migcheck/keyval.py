"""QEMU keyval text (``virtio-net-pci,netdev=n0,host_uso=off``): the one splitter the
command-line parser, the device graph and the blocker matcher share."""

from __future__ import annotations


def _split_items(text: str) -> list[str]:
    """Split on single commas; ``,,`` is a literal comma (QEMU's QemuOpts/keyval rule).

    Pairs are taken greedily from the left, so ``a,,,b`` is ``["a,", "b"]`` exactly as
    QEMU reads it.
    """
    items: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == ",":
            if text.startswith(",,", index):
                current.append(",")
                index += 2
                continue
            items.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    items.append("".join(current))
    return items


def split_keyval(text: str) -> tuple[str | None, dict[str, str]]:
    """Split QEMU keyval text into (implied first value, {key: value}).

    ``"pc,usb=off,dump-guest-core"`` -> ``("pc", {"usb": "off", "dump-guest-core": "on"})``.
    The first item is the implied value only when it has no ``=``; a later bare ``key``
    means ``key=on`` (QemuOpts' rule). ``,,`` is an escaped comma anywhere. Later keys
    override earlier ones. Never raises.
    """
    first: str | None = None
    props: dict[str, str] = {}
    for index, item in enumerate(_split_items(text)):
        key, equals, value = item.partition("=")
        if index == 0 and not equals:
            first = item or None
        elif item:
            props[key] = value if equals else "on"
    return first, props
