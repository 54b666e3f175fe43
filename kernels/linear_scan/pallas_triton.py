"""Pallas (Triton-lowered) kernels for the linear scan `h_t = a_t * h_{t-1} + b_t`, with a custom VJP.

Forward kernel: a grid of `(batch, cdiv(features, block_d))` programs; each owns one batch row and
`block_d` features and walks the whole time axis with the state in float32 registers. Per loop
iteration it issues the loads of the next `chunk` time steps of `a` and `b`, then runs the
multiply-add chain over the chunk loaded the iteration before, so that loads stay in flight while
the dependent chain runs. It reads `a`, `b` once and writes `h` once: the three arrays of the
memory floor.

Backward kernel: the same walk in the opposite direction on the output gradient. With `g_t` the
gradient of the loss with respect to `h_t` through all later states,

  g_t = dh_t + a_{t+1} g_{t+1}   (seeded with the gradient of h_last),
  db_t = g_t,   da_t = g_t h_{t-1}   (h_{-1} = h0),   dh0 = a_0 g_0,

mirrored in time when `reverse`. It reads `a`, `dh`, `h` and writes `da`, `db`: five arrays.

The tiling and the pipelined time loop are shared with the fused-gate kernels (`time_loop.py`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from minrnn.kernels.linear_scan import common
from minrnn.kernels.linear_scan import config as config_lib
from minrnn.kernels.linear_scan import time_loop
from minrnn.kernels.linear_scan.time_loop import index, load, store

BlockConfig = config_lib.BlockConfig



def _forward_kernel(a_ref, b_ref, h0_ref, h_ref, h_last_ref, *, features, config, reverse):
  """One program: refs `a`, `b`, `h` are `(time, block_d)`, `h0`, `h_last` are `(block_d,)`."""
  time = a_ref.shape[0]
  mask = time_loop.feature_mask(config.block_d, features)

  def time_index(step):
    return index(time - 1 - step if reverse else step)

  def load_chunk(first, count):
    ts = [time_index(first + i) for i in range(count)]
    return [load(a_ref.at[t], mask) for t in ts], [load(b_ref.at[t], mask) for t in ts]

  def compute(first, count, loaded, h):
    for i, a_t, b_t in zip(range(count), *loaded):
      h = a_t * h + b_t
      store(h_ref.at[time_index(first + i)], h, mask)
    return h

  h = time_loop.pipelined(time, config.chunk, load_chunk, compute, load(h0_ref, mask))
  store(h_last_ref, h, mask)


def _backward_kernel(
    a_ref, h_ref, dh_ref, h0_ref, dh_last_ref, da_ref, db_ref, dh0_ref, *, features, config,
    reverse,
):
  """One program of the backward scan; `(time, block_d)` and `(block_d,)` refs as forward."""
  time = a_ref.shape[0]
  mask = time_loop.feature_mask(config.block_d, features)

  # Walks time against the forward scan; `carry` holds a_{t+1} g_{t+1} in forward order.
  def time_index(step):
    return index(step if reverse else time - 1 - step)

  def previous(t):  # The forward scan's previous step, whose state h_t was built on.
    return t + 1 if reverse else t - 1

  def load_chunk(first, count):
    ts = [time_index(first + i) for i in range(count)]
    return ([load(a_ref.at[t], mask) for t in ts], [load(dh_ref.at[t], mask) for t in ts],
            [load(h_ref.at[previous(t)], mask) for t in ts])

  def compute(first, count, loaded, carry):
    for i, a_t, dh_t, h_prev_t in zip(range(count), *loaded):
      t = time_index(first + i)
      g = dh_t + carry
      store(db_ref.at[t], g, mask)
      store(da_ref.at[t], g * h_prev_t, mask)
      carry = a_t * g
    return carry

  # Every step but the forward scan's first reads its previous state from h; that one reads h0.
  carry = time_loop.pipelined(
      time - 1, config.chunk, load_chunk, compute, load(dh_last_ref, mask)
  )
  t = time_index(time - 1)
  g = load(dh_ref.at[t], mask) + carry
  store(db_ref.at[t], g, mask)
  store(da_ref.at[t], g * load(h0_ref, mask), mask)
  store(dh0_ref, load(a_ref.at[t], mask) * g, mask)


def _forward(a, b, h0, reverse, interpret, config):
  seq, state = time_loop.specs(a.shape[1], config.block_d)
  kernel = functools.partial(
      _forward_kernel, features=a.shape[2], config=config, reverse=reverse
  )
  return time_loop.call(
      kernel, "linear_scan_forward", config, interpret, a.shape[0], a.shape[2],
      in_specs=[seq, seq, state], out_specs=[seq, state],
      out_shape=[
          jax.ShapeDtypeStruct(a.shape, a.dtype),
          jax.ShapeDtypeStruct(h0.shape, jnp.float32),
      ],
  )(a, b, h0)


def _backward(a, h, dh, h0, dh_last, reverse, interpret, config):
  seq, state = time_loop.specs(a.shape[1], config.block_d)
  kernel = functools.partial(
      _backward_kernel, features=a.shape[2], config=config, reverse=reverse
  )
  return time_loop.call(
      kernel, "linear_scan_backward", config, interpret, a.shape[0], a.shape[2],
      in_specs=[seq, seq, seq, state, state], out_specs=[seq, seq, state],
      out_shape=[
          jax.ShapeDtypeStruct(a.shape, a.dtype),
          jax.ShapeDtypeStruct(a.shape, a.dtype),
          jax.ShapeDtypeStruct(h0.shape, jnp.float32),
      ],
  )(a, h, dh, h0, dh_last)


_scan = common.with_vjp(_forward, _backward)


def linear_scan(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array | None = None,
    *,
    reverse: bool = False,
    interpret: bool | None = None,
    config: BlockConfig | None = None,
    backward_config: BlockConfig | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Computes `h_t = a_t * h_{t-1} + b_t` with the Pallas kernels; differentiable.

  Args:
    a: `(batch, time, features)` decay coefficients: float32 or bfloat16.
    b: `(batch, time, features)` inputs, same shape as `a`. `a` and `b` are promoted to one
      dtype; arithmetic and the carried state are float32 whatever it is.
    h0: optional `(batch, features)` initial state (zeros if None); used in float32.
    reverse: run from the last step to the first (`h_t = a_t * h_{t+1} + b_t`).
    interpret: run the kernels in Pallas interpret mode; None means interpret unless JAX's default
      backend is a GPU.
    config, backward_config: block shapes of the forward and backward kernels; None picks
      `config.block_config` for the shape (the tuned defaults).

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
    config = config_lib.block_config(batch, time, features, dtype, interpret=interpret)
  if backward_config is None:
    backward_config = config_lib.block_config(
        batch, time, features, dtype, backward=True, interpret=interpret
    )
  return _scan(a, b, h0, reverse, interpret, config, backward_config)
