"""Linear scan `h_t = a_t * h_{t-1} + b_t`: Pallas kernels with a custom VJP, and a reference.

- `linear_scan`: the Triton-lowered Pallas kernels (`pallas_triton.py`), forward and backward.
- `mosaic_linear_scan`: the Mosaic GPU kernels (`pallas_mosaic.py`, the Hopper path: bulk copies
  of time tiles through shared memory), same contract.
- `scan`: one of the two by `backend=`; `config.BACKEND` ("triton" unless changed) is the one
  that `minrnn.ops.linear_scan(..., implementation="pallas")` runs.
- `gated_linear_scan`: the same scan with the coefficients computed inside the kernels from a
  cell's pre-activations (`fused_gates.py`), so they never go through memory.
- `reference.linear_scan`, `reference.gated_linear_scan`: pure JAX (`jax.lax.scan`), for tests.
- `config.block_config`, `config.mosaic_block_config`: the tiles the kernels use.
"""

from __future__ import annotations

import jax

from minrnn.kernels.linear_scan import config
from minrnn.kernels.linear_scan.config import BlockConfig, MosaicConfig, block_config
from minrnn.kernels.linear_scan.fused_gates import gated_linear_scan
from minrnn.kernels.linear_scan.pallas_mosaic import linear_scan as mosaic_linear_scan
from minrnn.kernels.linear_scan.pallas_triton import linear_scan


def scan(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array | None = None,
    *,
    reverse: bool = False,
    backend: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """`linear_scan` or `mosaic_linear_scan` with their default tiles; same arguments and results.

  Args:
    a, b, h0, reverse: as `linear_scan`.
    backend: "triton" or "mosaic"; None reads `config.BACKEND` when traced.
  """
  backend = config.BACKEND if backend is None else backend
  if backend == "triton":
    return linear_scan(a, b, h0, reverse=reverse)
  if backend == "mosaic":
    return mosaic_linear_scan(a, b, h0, reverse=reverse)
  raise ValueError(
      f"Unknown Pallas linear-scan backend {backend!r}; choose one of {list(config.BACKENDS)}."
  )


__all__ = [
    "BlockConfig", "MosaicConfig", "block_config", "gated_linear_scan", "linear_scan",
    "mosaic_linear_scan", "scan",
]
