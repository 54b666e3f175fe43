"""Sequence operations shared by every cell: the linear-scan dispatcher and padding helpers."""

from minrnn.ops.linear_scan import (
    DEFAULT_ORDER,
    implementations,
    linear_scan,
    log_linear_scan,
    register_implementation,
    resolve_implementation,
)
from minrnn.ops.sequence import check_sequence, flip_sequences, padding_mask

__all__ = [
    "DEFAULT_ORDER",
    "check_sequence",
    "flip_sequences",
    "implementations",
    "linear_scan",
    "log_linear_scan",
    "padding_mask",
    "register_implementation",
    "resolve_implementation",
]
