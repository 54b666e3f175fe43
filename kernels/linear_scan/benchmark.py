"""The linear scan's benchmark cases, as data for the one runner (`scripts/benchmark.py`).

What the runner times of this op is named here; how it is timed and reported is the runner's:

- `make_inputs`: the scan's inputs `(a, b)` and a cotangent of `h`, drawn fresh per seed (never
  zeros: they hide unwritten outputs and can run faster than real data).
- `FLOOR_ARRAYS`: the `(batch, time, features)` arrays a scan must move at least once, per mode.
- `LAYER_IMPLEMENTATIONS`: the `minrnn.ops.linear_scan` paths (table names, as strings) a linear
  cell's layer is timed through unless the runner is told otherwise. The scan suite times every
  path of that table that compiles on the platform; the runner reads the table itself (this
  package sits below `minrnn.ops` and may not import it).
- The tuning grids: `TUNE_SHAPES`, `triton_configs`, `mosaic_configs`, `config_name`, and the
  kernels alone (`kernel_fn`, `fused_kernel_fn`) on shapes their tiles divide.
"""

from __future__ import annotations

from typing import Callable, Iterator

import jax
import jax.numpy as jnp

from minrnn.kernels.linear_scan import fused_gates, pallas_mosaic, pallas_triton
from minrnn.kernels.linear_scan.config import BlockConfig, MosaicConfig

# Forward reads a, b and writes h; backward reads a, dh, h and writes da, db.
FLOOR_ARRAYS = {"fwd": 3, "fwd+bwd": 8}
# "pallas_fused" computes the gates inside the kernel; "pallas" is the plain kernel with XLA's
# gate math around it; "log" is the paper's log-space form (float32 only: slower anyway).
LAYER_IMPLEMENTATIONS = ("pallas_fused", "pallas", "associative", "log")
FLOAT32_ONLY = ("log", "heinsen")
# (batch, time, features, dtype) of the tuning sweeps: the target case of NOTES.md.
TUNE_SHAPES = ((64, 4096, 256, "float32"), (64, 4096, 256, "bfloat16"))
BACKENDS = {"triton": pallas_triton, "mosaic": pallas_mosaic}
# Tiles per pipeline stage of the Mosaic GPU kernels (inputs and output staging).
_MOSAIC_TILES = {"forward": 3, "backward": 5}


def make_inputs(shape: tuple[int, int, int], dtype: str, seed: int, *, positive: bool = False
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`(a, b, ct)`, each `shape` = `(batch, time, features)` of `dtype`.

  `a` is uniform in [0.5, 1) (a decay); `b` and the cotangent `ct` are standard normal, or `b`
  uniform in [0.1, 1) when `positive` (the log-space paths need `b > 0`).
  """
  ka, kb, kc = jax.random.split(jax.random.key(seed), 3)
  a = jax.random.uniform(ka, shape, jnp.float32, 0.5, 1.0)
  b = (jax.random.uniform(kb, shape, jnp.float32, 0.1, 1.0) if positive
       else jax.random.normal(kb, shape, jnp.float32))
  ct = jax.random.normal(kc, shape, jnp.float32)
  return a.astype(dtype), b.astype(dtype), ct.astype(dtype)


def triton_configs() -> Iterator[BlockConfig]:
  """The Triton-lowered kernels' grid: one feature per thread, so that two chunks of loads (the
  one computed and the one in flight) fit in registers."""
  for block_d in (32, 64, 128, 256):
    for chunk in (8, 16, 32):
      yield BlockConfig(block_d=block_d, chunk=chunk, num_warps=block_d // 32)


def mosaic_configs(kernel: str, dtype: str) -> Iterator[MosaicConfig]:
  """The Mosaic GPU kernels' tiles that fit shared memory; `kernel` "forward" or "backward"."""
  for block_d in (128, 256):
    for chunk in (8, 16, 32, 64):
      for stages in (2, 3, 4):
        config = MosaicConfig(block_d=block_d, chunk=chunk, stages=stages)
        if config.fits_smem(_MOSAIC_TILES[kernel], jnp.dtype(dtype).itemsize):
          yield config


def configs(backend: str, kernel: str, dtype: str) -> Iterator[BlockConfig | MosaicConfig]:
  """The grid of `backend` ("triton" or "mosaic"; the fused-gate kernels use Triton's)."""
  return triton_configs() if backend == "triton" else mosaic_configs(kernel, dtype)


def divides(config: BlockConfig | MosaicConfig, time: int, features: int) -> bool:
  """Whether the tiles of `config` divide a `(time, features)` problem (the kernels alone do
  not pad)."""
  return time % config.chunk == 0 and features % config.block_d == 0


def config_name(config: BlockConfig | MosaicConfig) -> str:
  """A results name: `d<block_d>_c<chunk>_w<warps>_s<stages>` or `mosaic_d.._c.._s..`."""
  if isinstance(config, MosaicConfig):
    return f"mosaic_d{config.block_d}_c{config.chunk}_s{config.stages}"
  return f"d{config.block_d}_c{config.chunk}_w{config.num_warps}_s{config.num_stages}"


def _zero_state(x: jax.Array) -> jax.Array:
  return jnp.zeros((x.shape[0], x.shape[-1]), jnp.float32)


def kernel_fn(backend: str, kernel: str, config: BlockConfig | MosaicConfig, interpret: bool
              ) -> Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, ...]]:
  """One kernel of `backend` alone, on the arrays of `make_inputs`.

  Forward: `(a, b, _) -> (h, h_last)`. Backward: `(a, h, dh) -> (da, db, dh0)`, with `b` standing
  in for the saved states (the kernel's work does not depend on their values).
  """
  module = BACKENDS[backend]
  if kernel == "forward":
    return lambda a, b, ct: module._forward(a, b, _zero_state(a), False, interpret, config)
  return lambda a, h, dh: module._backward(a, h, dh, _zero_state(a), _zero_state(a), False,
                                           interpret, config)


def fused_inputs(shape: tuple[int, int, int], num_inputs: int, dtype: str, seed: int
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`(pre, h, dh)`: a cell's `(batch, time, num_inputs, features)` pre-activations, states and
  their cotangent, standard normal in `dtype`."""
  kp, kh, kd = jax.random.split(jax.random.key(seed), 3)
  batch, time, features = shape
  pre = jax.random.normal(kp, (batch, time, num_inputs, features), jnp.float32)
  h = jax.random.normal(kh, shape, jnp.float32)
  dh = jax.random.normal(kd, shape, jnp.float32)
  return pre.astype(dtype), h.astype(dtype), dh.astype(dtype)


def fused_kernel_fn(kernel: str, config: BlockConfig, gates: Callable, interpret: bool
                    ) -> Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, ...]]:
  """One fused-gate kernel alone on the arrays of `fused_inputs`; `gates` is the cell's map
  from its pre-activations to `(a, b)` (`LinearRecurrentCell.gates()`)."""
  if kernel == "forward":
    return lambda pre, h, dh: fused_gates._forward(pre, _zero_state(h), None, gates, False,
                                                   interpret, config)
  return lambda pre, h, dh: fused_gates._backward(pre, h, dh, _zero_state(h), _zero_state(h),
                                                  None, gates, False, interpret, config)
