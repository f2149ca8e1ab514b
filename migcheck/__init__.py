"""migcheck: can this QEMU/KVM guest live-migrate safely from one host to another?"""

__version__ = "0.1.0"
