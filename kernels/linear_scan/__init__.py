"""Linear scan `h_t = a_t * h_{t-1} + b_t`: Pallas kernels with a custom VJP, and a reference.

- `linear_scan`: the Triton-lowered Pallas kernels (`pallas_triton.py`), forward and backward.
- `mosaic_linear_scan`: the Mosaic GPU kernels (`pallas_mosaic.py`, the Hopper path: bulk copies
  of time tiles through shared memory), same contract.
- `gated_linear_scan`: the same scan with the coefficients computed inside the kernels from a
  cell's pre-activations (`fused_gates.py`), so they never go through memory.
- `reference.linear_scan`, `reference.gated_linear_scan`: pure JAX (`jax.lax.scan`), for tests.
- `config.block_config`, `config.mosaic_block_config`: the tiles the kernels use.

Which kernel a model runs is chosen by name in `minrnn.ops.linear_scan`'s table
(`"pallas_triton"`, `"pallas_mosaic"`, `"pallas_fused"`; `"pallas"` is the GPU's default one).
"""

from minrnn.kernels.linear_scan.config import BlockConfig, MosaicConfig, block_config
from minrnn.kernels.linear_scan.fused_gates import gated_linear_scan
from minrnn.kernels.linear_scan.pallas_mosaic import linear_scan as mosaic_linear_scan
from minrnn.kernels.linear_scan.pallas_triton import linear_scan

__all__ = [
    "BlockConfig", "MosaicConfig", "block_config", "gated_linear_scan", "linear_scan",
    "mosaic_linear_scan",
]
