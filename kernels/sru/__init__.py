"""SRU's elementwise recurrence: a pure-JAX reference and fused Pallas kernels with a custom VJP."""

from kernels.sru.ops import IMPLEMENTATIONS, resolve_implementation, sru_recurrence
from kernels.sru.pallas_triton import KernelConfig

__all__ = ["IMPLEMENTATIONS", "KernelConfig", "resolve_implementation", "sru_recurrence"]
