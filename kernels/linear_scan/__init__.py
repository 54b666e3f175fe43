"""Linear scan `h_t = a_t * h_{t-1} + b_t`: Pallas kernels with a custom VJP, and a reference.

- `linear_scan`: the Pallas kernels (`pallas_triton.py`), forward and backward.
- `gated_linear_scan`: the same scan with the coefficients computed inside the kernels from a
  cell's pre-activations (`fused_gates.py`), so they never go through memory.
- `reference.linear_scan`, `reference.gated_linear_scan`: pure JAX (`jax.lax.scan`), for tests.
- `config.block_config`: the block shapes the kernels use on each platform.
"""

from kernels.linear_scan.config import BlockConfig, block_config
from kernels.linear_scan.fused_gates import gated_linear_scan
from kernels.linear_scan.pallas_triton import linear_scan

__all__ = ["BlockConfig", "block_config", "gated_linear_scan", "linear_scan"]
