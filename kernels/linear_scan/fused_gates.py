"""Pallas kernels for a linear scan whose coefficients are gates computed inside the kernel.

    (a_t, b_t) = gates(p_t^0, ..., p_t^{n-1}),   h_t = a_t * h_{t-1} + b_t,

where `gates` is an elementwise map from a cell's `n` pre-activations to its coefficients
(minGRU: `k, h̃ -> (1 - σ(k), σ(k) g(h̃))`; minLSTM: `f̃, ĩ, h̃ -> ...`). The unfused path computes
`a`, `b` in XLA, writes them to memory, and the scan kernel reads them back; here the gates are
evaluated in registers, so `a`, `b` and their gradients never go through device memory.

Forward kernel: the walk of `pallas_triton.py` (`time_loop`), loading the `n` pre-activations of
each step instead of `a`, `b`. It reads `n` arrays and writes `h`.

Backward kernel: the same reverse walk on the output gradient, with `g_t` the gradient with
respect to `h_t` through all later states,

  g_t = dh_t + a_{t+1} g_{t+1},   d(p_t) = vjp(gates)(p_t)(g_t h_{t-1}, g_t),   dh0 = a_0 g_0,

recomputing `a_t` and the gates' derivative from the saved pre-activations and reading
`h_{t-1}` from the saved outputs: no coefficient is stored. It reads the `n` pre-activations,
`dh` and `h` and writes the `n` pre-activation gradients. The gates' derivative is JAX's own
(`jax.vjp` traced inside the kernel), so the kernel has no hand-written copy of the gate math.

Padding (`seq_lengths`): steps `t >= seq_lengths[b]` of row `b` leave the state unchanged
(`a = 1`, `b = 0`), output zeros and get zero gradients, as `LinearRecurrentCell.scan` defines
for every path; with `reverse` the scan starts at each row's last valid step.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from minrnn.kernels.linear_scan import config as config_lib
from minrnn.kernels.linear_scan import time_loop
from minrnn.kernels.linear_scan.common import SUPPORTED_DTYPES
from minrnn.kernels.linear_scan.time_loop import index, load, store

BlockConfig = config_lib.BlockConfig
# Elementwise map from `n` float32 pre-activations to the float32 coefficients `(a, b)`.
Gates = Callable[..., tuple[jax.Array, jax.Array]]



def _valid(lengths_ref, t):
  """Whether step `t` of this program's row is inside its length; None when all steps are."""
  return None if lengths_ref is None else t < lengths_ref[0]


def _forward_kernel(*refs, gates, features, config, reverse):
  """One program: `pre` is `(time, n, block_d)`, `h` `(time, block_d)`, states `(block_d,)`."""
  if len(refs) == 5:
    pre_ref, h0_ref, lengths_ref, h_ref, h_last_ref = refs
  else:
    (pre_ref, h0_ref, h_ref, h_last_ref), lengths_ref = refs, None
  time, num_inputs, _ = pre_ref.shape
  mask = time_loop.feature_mask(config.block_d, features)

  def time_index(step):
    return index(time - 1 - step if reverse else step)

  def load_chunk(first, count):
    return [[load(pre_ref.at[time_index(first + i), index(p)], mask) for p in range(num_inputs)]
            for i in range(count)]

  def compute(first, count, loaded, h):
    for i, pre_t in zip(range(count), loaded):
      t = time_index(first + i)
      a, b = gates(*pre_t)
      valid = _valid(lengths_ref, t)
      if valid is None:
        h = a * h + b
        store(h_ref.at[t], h, mask)
      else:
        h = jnp.where(valid, a * h + b, h)
        store(h_ref.at[t], jnp.where(valid, h, 0.0), mask)
    return h

  h = time_loop.pipelined(time, config.chunk, load_chunk, compute, load(h0_ref, mask))
  store(h_last_ref, h, mask)


def _backward_kernel(*refs, gates, features, config, reverse):
  """One program of the backward scan; refs shaped as in the forward kernel."""
  if len(refs) == 8:
    pre_ref, h_ref, dh_ref, h0_ref, dh_last_ref, lengths_ref, dpre_ref, dh0_ref = refs
  else:
    (pre_ref, h_ref, dh_ref, h0_ref, dh_last_ref, dpre_ref, dh0_ref), lengths_ref = refs, None
  time, num_inputs, _ = pre_ref.shape
  mask = time_loop.feature_mask(config.block_d, features)

  # Walks time against the forward scan; `carry` holds a_{t+1} g_{t+1} in forward order.
  def time_index(step):
    return index(step if reverse else time - 1 - step)

  def previous(t):  # The forward scan's previous step, whose state h_t was built on.
    return t + 1 if reverse else t - 1

  def load_pre(t):
    return [load(pre_ref.at[t, index(p)], mask) for p in range(num_inputs)]

  h0 = load(h0_ref, mask)

  def step(t, pre_t, dh_t, h_prev, carry):
    valid = _valid(lengths_ref, t)
    if valid is not None and reverse:
      # A row's last valid step comes first in a reverse scan: it was built on h0, not on the
      # zero that the padded step after it stored.
      h_prev = jnp.where(_valid(lengths_ref, previous(t)), h_prev, h0)
    (a, _), gates_vjp = jax.vjp(gates, *pre_t)
    g = dh_t + carry
    dpre = gates_vjp((g * h_prev, g))
    if valid is None:
      carry = a * g
    else:
      # A padded step passes the gradient through unchanged (a = 1) and gets none itself; its
      # output is a constant zero, so dh_t does not reach the state.
      carry = jnp.where(valid, a * g, carry)
      dpre = [jnp.where(valid, d, 0.0) for d in dpre]
    for p, d in enumerate(dpre):
      store(dpre_ref.at[t, index(p)], d, mask)
    return carry

  def load_chunk(first, count):
    ts = [time_index(first + i) for i in range(count)]
    return ([load_pre(t) for t in ts], [load(dh_ref.at[t], mask) for t in ts],
            [load(h_ref.at[previous(t)], mask) for t in ts])

  def compute(first, count, loaded, carry):
    for i, pre_t, dh_t, h_prev in zip(range(count), *loaded):
      carry = step(time_index(first + i), pre_t, dh_t, h_prev, carry)
    return carry

  # Every step but the forward scan's first reads its previous state from h; that one reads h0.
  carry = time_loop.pipelined(
      time - 1, config.chunk, load_chunk, compute, load(dh_last_ref, mask)
  )
  t = time_index(time - 1)
  carry = step(t, load_pre(t), load(dh_ref.at[t], mask), h0, carry)
  store(dh0_ref, carry, mask)


def _specs(pre_shape, block_d):
  _, time, num_inputs, _ = pre_shape
  sequence, state = time_loop.specs(time, block_d)
  pre = pl.BlockSpec((None, time, num_inputs, block_d), lambda i, j: (i, 0, 0, j))
  lengths = pl.BlockSpec((1,), lambda i, j: (i,))
  return pre, sequence, state, lengths


def _forward(pre, h0, lengths, gates, reverse, interpret, config):
  batch, time, _, features = pre.shape
  pre_spec, seq, state, lengths_spec = _specs(pre.shape, config.block_d)
  kernel = functools.partial(
      _forward_kernel, gates=gates, features=features, config=config, reverse=reverse
  )
  with_lengths = lengths is not None
  return time_loop.call(
      kernel, "gated_linear_scan_forward", config, interpret, batch, features,
      in_specs=[pre_spec, state] + [lengths_spec] * with_lengths, out_specs=[seq, state],
      out_shape=[
          jax.ShapeDtypeStruct((batch, time, features), pre.dtype),
          jax.ShapeDtypeStruct(h0.shape, jnp.float32),
      ],
  )(pre, h0, *[lengths] * with_lengths)


def _backward(pre, h, dh, h0, dh_last, lengths, gates, reverse, interpret, config):
  batch, _, _, features = pre.shape
  pre_spec, seq, state, lengths_spec = _specs(pre.shape, config.block_d)
  kernel = functools.partial(
      _backward_kernel, gates=gates, features=features, config=config, reverse=reverse
  )
  with_lengths = lengths is not None
  return time_loop.call(
      kernel, "gated_linear_scan_backward", config, interpret, batch, features,
      in_specs=[pre_spec, seq, seq, state, state] + [lengths_spec] * with_lengths,
      out_specs=[pre_spec, state],
      out_shape=[
          jax.ShapeDtypeStruct(pre.shape, pre.dtype),
          jax.ShapeDtypeStruct(h0.shape, jnp.float32),
      ],
  )(pre, h, dh, h0, dh_last, *[lengths] * with_lengths)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7))
def _scan(pre, h0, lengths, gates, reverse, interpret, config, backward_config):
  del backward_config
  return _forward(pre, h0, lengths, gates, reverse, interpret, config)


def _scan_fwd(pre, h0, lengths, gates, reverse, interpret, config, backward_config):
  del backward_config
  h, h_last = _forward(pre, h0, lengths, gates, reverse, interpret, config)
  return (h, h_last), (pre, h, h0, lengths)


def _scan_bwd(gates, reverse, interpret, config, backward_config, residuals, cotangents):
  del config
  pre, h, h0, lengths = residuals
  dh, dh_last = cotangents
  dpre, dh0 = _backward(
      pre, h, dh.astype(h.dtype), h0, dh_last.astype(jnp.float32), lengths, gates, reverse,
      interpret, backward_config,
  )
  # Lengths are integers: their cotangent is the symbolic zero of an integer input.
  dlengths = None if lengths is None else jnp.zeros(lengths.shape, jax.dtypes.float0)
  return dpre, dh0, dlengths


_scan.defvjp(_scan_fwd, _scan_bwd)


def _check(pre, h0, seq_lengths) -> None:
  if pre.ndim != 4:
    raise ValueError(
        "gated_linear_scan: pre must have shape (batch, time, num_inputs, features), got "
        f"{tuple(pre.shape)}. A cell's joint projection (batch, time, n * features) becomes "
        "this with .reshape(batch, time, n, features)."
    )
  if pre.dtype not in SUPPORTED_DTYPES:
    raise TypeError(
        f"gated_linear_scan: pre has dtype {pre.dtype}; the Pallas kernel takes float32 or "
        "bfloat16 pre-activations (it computes in float32). Cast them, e.g. "
        "pre.astype(jnp.float32)."
    )
  batch, time, _, features = pre.shape
  if time == 0:
    raise ValueError("gated_linear_scan: the time axis is empty; pass at least one step.")
  if h0 is not None and tuple(h0.shape) != (batch, features):
    raise ValueError(
        f"gated_linear_scan: h0 must have shape (batch, features) = {(batch, features)}, got "
        f"{tuple(h0.shape)}."
    )
  if seq_lengths is not None and (
      tuple(seq_lengths.shape) != (batch,) or not jnp.issubdtype(seq_lengths.dtype, jnp.integer)
  ):
    raise ValueError(
        f"gated_linear_scan: seq_lengths must be integers of shape (batch,) = ({batch},), got "
        f"{seq_lengths.dtype} {tuple(seq_lengths.shape)}."
    )


def gated_linear_scan(
    pre: jax.Array,
    h0: jax.Array | None = None,
    *,
    gates: Gates,
    seq_lengths: jax.Array | None = None,
    reverse: bool = False,
    interpret: bool | None = None,
    config: BlockConfig | None = None,
    backward_config: BlockConfig | None = None,
) -> tuple[jax.Array, jax.Array]:
  """`h_t = a_t * h_{t-1} + b_t` with `(a_t, b_t) = gates(*pre_t)` computed inside the kernels.

  Args:
    pre: `(batch, time, n, features)` pre-activations, float32 or bfloat16; `pre[:, :, p]` is
      the `p`-th argument of `gates`.
    h0: optional `(batch, features)` initial state (zeros if None); used in float32.
    gates: elementwise map from `n` float32 arrays of one shape to the float32 coefficients
      `(a, b)` of that shape, written with `jax.numpy` (it is traced inside the kernels, and
      differentiated there with `jax.vjp`). E.g. `minrnn.cells.mingru.gates`.
    seq_lengths: optional int `(batch,)`: steps at or past a row's length leave its state
      unchanged, output zeros and get zero gradients; with `reverse` each row starts at its
      last valid step.
    reverse: run from the last step to the first (`h_t = a_t * h_{t+1} + b_t`).
    interpret: run the kernels in Pallas interpret mode; None means interpret unless JAX's
      default backend is a GPU.
    config, backward_config: block shapes of the forward and backward kernels; None picks
      `config.block_config` for the shape and the kernels' loads per step.

  Returns:
    `(h, h_last)`: all states `(batch, time, features)` in `pre`'s dtype, and the final state
    `(batch, features)` in float32 (the state at `t = 0` when `reverse`; each row's state
    after its last valid step). Gradients flow to `pre` and `h0`, through both outputs.
  """
  pre = jnp.asarray(pre)
  h0 = None if h0 is None else jnp.asarray(h0)
  seq_lengths = None if seq_lengths is None else jnp.asarray(seq_lengths)
  _check(pre, h0, seq_lengths)
  batch, time, num_inputs, features = pre.shape
  h0 = jnp.zeros((batch, features), jnp.float32) if h0 is None else h0.astype(jnp.float32)
  lengths = None if seq_lengths is None else seq_lengths.astype(jnp.int32)
  if interpret is None:
    interpret = config_lib.default_interpret()
  if config is None:
    config = config_lib.block_config(
        batch, time, features, pre.dtype, interpret=interpret, loads_per_step=num_inputs
    )
  if backward_config is None:
    # The pre-activations, dh and the previous state, every step.
    backward_config = config_lib.block_config(
        batch, time, features, pre.dtype, interpret=interpret, loads_per_step=num_inputs + 2
    )
  return _scan(pre, h0, lengths, gates, reverse, interpret, config, backward_config)
