"""Linear scan `h_t = a_t * h_{t-1} + b_t`: Pallas kernels with a custom VJP, and a reference.

- `linear_scan`: the Pallas kernels (`pallas_triton.py`), forward and backward.
- `reference.linear_scan`: pure JAX (`jax.lax.scan`), for tests.
- `config.block_config`: the block shapes the kernels use on each platform.
"""

from kernels.linear_scan.config import BlockConfig, block_config
from kernels.linear_scan.pallas_triton import linear_scan

__all__ = ["BlockConfig", "block_config", "linear_scan"]
