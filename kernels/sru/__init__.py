"""SRU's elementwise recurrence: a pure-JAX reference and fused Pallas kernels with a custom VJP.

`minrnn.ops.sru` is the dispatcher (its table of execution paths, input checks); this package
holds what runs on the accelerator: `pallas_triton.sru_forward` / `sru_backward`, and
`recurrence`, their `jax.custom_vjp`.
"""

from minrnn.kernels.sru.pallas_triton import KernelConfig
from minrnn.kernels.sru.vjp import recurrence

__all__ = ["KernelConfig", "recurrence"]
