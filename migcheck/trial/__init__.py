"""Trials: real migrations of a guest between two QEMU builds, judged stage by stage and by
the guest-visible ABI (qmp.py: QMP client; abi.py: snapshot and comparison; local.py: one
migration between two local builds). Ground truth for tests/test_ground_truth.py and the
base of `migcheck trial` (issue 23)."""
