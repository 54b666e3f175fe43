"""SRU's elementwise recurrence: a pure-JAX reference and fused Pallas kernels with a custom VJP."""

from minrnn.kernels.sru.ops import IMPLEMENTATIONS, resolve_implementation, sru_recurrence
from minrnn.kernels.sru.pallas_triton import KernelConfig

__all__ = ["IMPLEMENTATIONS", "KernelConfig", "resolve_implementation", "sru_recurrence"]
