"""Mosaic GPU kernels for the linear scan `h_t = a_t * h_{t-1} + b_t`, with a custom VJP.

The Hopper path beside the Triton-lowered kernels (`pallas_triton.py`), with the same contract.
Each thread block is one warpgroup (128 threads) that owns one batch row and `block_d` features
(`block_d / 128` per thread) and walks the time axis in `(chunk, block_d)` tiles:

- inputs arrive by bulk (TMA) copies into shared memory, `stages` tiles deep
  (`plgpu.emit_pipeline`), so the next tiles are on their way while one is scanned;
- each thread runs the multiply-add chain of its features over the tile's rows with the state in
  float32 registers, and writes every state into a shared-memory staging tile;
- each output tile goes back to memory with one bulk copy, `stages` staging tiles deep (a tile is
  rewritten only once its copy has left shared memory).

Forward: reads `a`, `b`, writes `h`. Backward: the same walk in the opposite direction on the
output gradient. With `g_t` the gradient of the loss with respect to `h_t` through all later
states,

  g_t = dh_t + a_{t+1} g_{t+1}   (seeded with the gradient of h_last),
  db_t = g_t,   da_t = g_t h_{t-1}   (h_{-1} = h0),   dh0 = a_0 g_0,

mirrored in time when `reverse`. It reads `a`, `dh`, `h` and writes `da`, `db`. The state
`h_{t-1}` of a tile's first step lies in the neighbouring tile: the pipeline brings that one row
along (a `(1, block_d)` copy), and `h0` stands in for it at the sequence's start.

Tiles must divide the arrays, so the wrapper pads: time at the end with `a = 1`, `b = 0` (steps
that keep the state, so `h` and the final state are exact), features with `a = 1`, `b = 0`,
`h0 = 0`, and slices the padding off. Shapes that the tiles divide are not copied.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from minrnn.kernels.linear_scan import common
from minrnn.kernels.linear_scan import config as config_lib

MosaicConfig = config_lib.MosaicConfig

# Tiles per pipeline stage in shared memory: inputs and output staging.
_FORWARD_TILES = 3  # a, b in; h out.
_BACKWARD_TILES = 5  # a, h, dh in; da, db out (plus one row of h).


def _interpret_params():
  """Parameters that run a Mosaic GPU kernel in JAX's Mosaic GPU interpreter (on CPU)."""
  params = getattr(plgpu, "InterpretGPUParams", None)  # Public in newer JAX releases.
  if params is None:  # JAX 0.10 keeps it private.
    from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams as params
  return params()


def _launch(kernel, out_type, scratch_types, batch, features, config, interpret):
  """`plgpu.kernel` over a `(batch, features / block_d)` grid of one-warpgroup thread blocks.

  The kernel takes its function's name: `plgpu.kernel`'s default, so no naming keyword (which
  differs across JAX releases) is needed.
  """
  return plgpu.kernel(
      kernel,
      out_type=out_type,
      scratch_types=scratch_types,
      grid=(batch, features // config.block_d),
      grid_names=("batch", "features"),
      interpret=_interpret_params() if interpret else None,
  )


def _reuse_staging(stages):
  """Waits until the staging tiles written `stages` steps ago have left shared memory.

  Each step commits one group of output copies; with `stages - 1` groups still allowed in flight,
  the slot this step writes is free again.
  """
  plgpu.wait_smem_to_gmem(stages - 1, wait_read_only=True)


def _send_state(state, state_smem, dst_gmem):
  """Writes a `(block_d,)` float32 state to `dst_gmem` through shared memory, and waits."""
  state_smem[...] = state
  plgpu.commit_smem()
  plgpu.copy_smem_to_gmem(state_smem, dst_gmem)
  plgpu.wait_smem_to_gmem(0)


def _forward(a, b, h0, reverse, interpret, config):
  """Forward kernel on tile-aligned `(B, T, D)` `a`, `b` and `(B, D)` float32 `h0`."""
  batch, time, features = a.shape
  chunk, block_d, stages = config.chunk, config.block_d, config.stages
  num_chunks = time // chunk
  rows = range(chunk - 1, -1, -1) if reverse else range(chunk)

  def tile_index(c):  # The c-th tile in the scan's order.
    return num_chunks - 1 - c if reverse else c

  def linear_scan_mosaic_forward(
      a_gmem, b_gmem, h0_gmem, h_gmem, h_last_gmem, state_smem, h_smem, barrier
  ):
    row, col = jax.lax.axis_index("batch"), jax.lax.axis_index("features")
    cols = pl.ds(col * block_d, block_d)
    plgpu.copy_gmem_to_smem(h0_gmem.at[row, cols], state_smem, barrier)
    plgpu.barrier_wait(barrier)

    def body(indices, a_smem, b_smem, h):
      (c,) = indices
      slot = jax.lax.rem(c, stages)
      _reuse_staging(stages)
      for i in rows:
        h = a_smem[i].astype(jnp.float32) * h + b_smem[i].astype(jnp.float32)
        h_smem[slot, i] = h.astype(h_smem.dtype)
      # Orders the staging writes before the bulk copy, and all reads of this input slot before
      # the pipeline refills it.
      plgpu.commit_smem()
      plgpu.copy_smem_to_gmem(
          h_smem.at[slot], h_gmem.at[row, pl.ds(tile_index(c) * chunk, chunk), cols]
      )
      plgpu.commit_smem_to_gmem_group()
      return h

    tile = plgpu.BlockSpec((chunk, block_d), lambda c: (tile_index(c), col))
    h = plgpu.emit_pipeline(
        body, grid=(num_chunks,), in_specs=[tile, tile], max_concurrent_steps=stages,
        init_carry=state_smem[...],
    )(a_gmem.at[row], b_gmem.at[row])
    _send_state(h, state_smem, h_last_gmem.at[row, cols])

  return _launch(
      linear_scan_mosaic_forward,
      [jax.ShapeDtypeStruct(a.shape, a.dtype), jax.ShapeDtypeStruct(h0.shape, jnp.float32)],
      [plgpu.SMEM((block_d,), jnp.float32), plgpu.SMEM((stages, chunk, block_d), a.dtype),
       plgpu.Barrier()],
      batch, features, config, interpret,
  )(a, b, h0)


def _backward(a, h, dh, h0, dh_last, reverse, interpret, config):
  """Backward kernel on tile-aligned `(B, T, D)` arrays and `(B, D)` float32 states."""
  batch, time, features = a.shape
  chunk, block_d, stages = config.chunk, config.block_d, config.stages
  num_chunks = time // chunk
  # Walks time against the forward scan; `carry` holds a_{t+1} g_{t+1} in forward order.
  rows = range(chunk) if reverse else range(chunk - 1, -1, -1)
  step_before = 1 if reverse else -1  # The forward scan's previous step, within a tile.
  first_tile = num_chunks - 1 if reverse else 0  # The tile of the forward scan's first step.

  def tile_index(c):
    return c if reverse else num_chunks - 1 - c

  def boundary_row(k):  # The row of h before tile k's first step (clamped; h0 replaces it).
    if reverse:
      return jnp.minimum((k + 1) * chunk, time - 1)
    return jnp.maximum(k * chunk - 1, 0)

  def linear_scan_mosaic_backward(
      a_gmem, h_gmem, dh_gmem, h0_gmem, dh_last_gmem, da_gmem, db_gmem, dh0_gmem, h0_smem,
      state_smem, da_smem, db_smem, barrier,
  ):
    row, col = jax.lax.axis_index("batch"), jax.lax.axis_index("features")
    cols = pl.ds(col * block_d, block_d)
    plgpu.copy_gmem_to_smem(h0_gmem.at[row, cols], h0_smem, barrier)
    plgpu.copy_gmem_to_smem(dh_last_gmem.at[row, cols], state_smem, barrier)
    plgpu.barrier_wait(barrier)

    def body(indices, a_smem, h_smem, dh_smem, boundary_smem, carry):
      (c,) = indices
      k = tile_index(c)
      slot = jax.lax.rem(c, stages)
      _reuse_staging(stages)
      # The predicate is broadcast explicitly: Mosaic GPU's select takes equal shapes only.
      boundary = jnp.where(
          jnp.broadcast_to(k == first_tile, h0_smem.shape), h0_smem[...],
          boundary_smem[0].astype(jnp.float32),
      )
      for i in rows:
        j = i + step_before
        h_prev = h_smem[j].astype(jnp.float32) if 0 <= j < chunk else boundary
        g = dh_smem[i].astype(jnp.float32) + carry
        db_smem[slot, i] = g.astype(db_smem.dtype)
        da_smem[slot, i] = (g * h_prev).astype(da_smem.dtype)
        carry = a_smem[i].astype(jnp.float32) * g
      plgpu.commit_smem()  # As in the forward kernel.
      rows_out = pl.ds(k * chunk, chunk)
      plgpu.copy_smem_to_gmem(da_smem.at[slot], da_gmem.at[row, rows_out, cols])
      plgpu.copy_smem_to_gmem(db_smem.at[slot], db_gmem.at[row, rows_out, cols])
      plgpu.commit_smem_to_gmem_group()
      return carry

    tile = plgpu.BlockSpec((chunk, block_d), lambda c: (tile_index(c), col))
    boundary = plgpu.BlockSpec((1, block_d), lambda c: (boundary_row(tile_index(c)), col))
    carry = plgpu.emit_pipeline(
        body, grid=(num_chunks,), in_specs=[tile, tile, tile, boundary],
        max_concurrent_steps=stages, init_carry=state_smem[...],
    )(a_gmem.at[row], h_gmem.at[row], dh_gmem.at[row], h_gmem.at[row])
    _send_state(carry, state_smem, dh0_gmem.at[row, cols])

  tile_type = jax.ShapeDtypeStruct(a.shape, a.dtype)
  return _launch(
      linear_scan_mosaic_backward,
      [tile_type, tile_type, jax.ShapeDtypeStruct(h0.shape, jnp.float32)],
      [plgpu.SMEM((block_d,), jnp.float32), plgpu.SMEM((block_d,), jnp.float32),
       plgpu.SMEM((stages, chunk, block_d), a.dtype),
       plgpu.SMEM((stages, chunk, block_d), a.dtype), plgpu.Barrier(num_arrivals=2)],
      batch, features, config, interpret,
  )(a, h, dh, h0, dh_last)


_scan = common.with_vjp(_forward, _backward)


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def linear_scan(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array | None = None,
    *,
    reverse: bool = False,
    interpret: bool | None = None,
    config: MosaicConfig | None = None,
    backward_config: MosaicConfig | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Computes `h_t = a_t * h_{t-1} + b_t` with the Mosaic GPU kernels; differentiable.

  Args:
    a: `(batch, time, features)` decay coefficients: float32 or bfloat16.
    b: `(batch, time, features)` inputs, same shape as `a`. `a` and `b` are promoted to one
      dtype; arithmetic and the carried state are float32 whatever it is.
    h0: optional `(batch, features)` initial state (zeros if None); used in float32.
    reverse: run from the last step to the first (`h_t = a_t * h_{t+1} + b_t`).
    interpret: run the kernels in the Mosaic GPU interpreter (on CPU); None means interpret
      unless JAX's default backend is a GPU.
    config, backward_config: tiles of the forward and backward kernels; None picks
      `config.mosaic_block_config` for the dtype.

  Returns:
    `(h, h_last)`: all states `(batch, time, features)` in the inputs' promoted dtype, and the
    final state `(batch, features)` in float32 (the state at `t = 0` when `reverse`).
    Gradients flow to `a`, `b` and `h0`, through both outputs.
  """
  a, b, h0 = common.prepare_inputs(a, b, h0)
  dtype = a.dtype
  batch, time, features = a.shape
  if interpret is None:
    interpret = config_lib.default_interpret()
  if config is None:
    config = config_lib.mosaic_block_config(dtype, interpret=interpret)
  if backward_config is None:
    backward_config = config_lib.mosaic_block_config(dtype, backward=True, interpret=interpret)
  config.check_smem(_FORWARD_TILES, dtype.itemsize)
  backward_config.check_smem(_BACKWARD_TILES, dtype.itemsize)
  if config.block_d != backward_config.block_d:
    raise ValueError(
        f"config.block_d ({config.block_d}) and backward_config.block_d "
        f"({backward_config.block_d}) must match: both kernels read the same padded arrays."
    )
  # Both kernels see the same padded arrays (the backward reads the forward's residuals), so
  # time pads to a multiple of both chunks.
  padded_time = _round_up(time, math.lcm(config.chunk, backward_config.chunk))
  padded_features = _round_up(features, config.block_d)
  if (padded_time, padded_features) == (time, features):
    return _scan(a, b, h0, reverse, interpret, config, backward_config)
  pad = ((0, 0), (0, padded_time - time), (0, padded_features - features))
  h, h_last = _scan(
      jnp.pad(a, pad, constant_values=1), jnp.pad(b, pad),
      jnp.pad(h0, ((0, 0), (0, padded_features - features))),
      reverse, interpret, config, backward_config,
  )
  return h[:, :time, :features], h_last[:, :features]
