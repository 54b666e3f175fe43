"""Operations the layers are built from: the linear-scan and SRU dispatchers (each with its one
table of execution paths), the sequence-parallel scan, padding helpers and chunked scoring."""

from minrnn.ops.linear_scan import (
    ALIASES,
    DEFAULT_ORDER,
    IMPLEMENTATIONS,
    Implementation,
    Inputs,
    linear_scan,
    log_linear_scan,
    resolve,
    resolve_name,
)
from minrnn.ops.sequence import check_sequence, flip_sequences, padding_mask
from minrnn.ops.sequence_parallel import SequenceParallel

__all__ = [
    "ALIASES",
    "DEFAULT_ORDER",
    "IMPLEMENTATIONS",
    "Implementation",
    "Inputs",
    "SequenceParallel",
    "check_sequence",
    "flip_sequences",
    "linear_scan",
    "log_linear_scan",
    "padding_mask",
    "resolve",
    "resolve_name",
]
