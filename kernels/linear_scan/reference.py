"""Pure-JAX references for the linear scan `h_t = a_t * h_{t-1} + b_t` and its gated form.

A `jax.lax.scan` over time in float32: slow, obviously right, and differentiable by JAX's own
autodiff, so the tests compare the Pallas kernels' values and their hand-written backward passes
with it. `gated_linear_scan` computes the gates in XLA first, as the unfused path does.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def linear_scan(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array | None = None,
    *,
    reverse: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """Reference linear scan.

  Args:
    a: `(batch, time, features)` decay coefficients, float32 or bfloat16.
    b: `(batch, time, features)` inputs, same shape and dtype as `a`.
    h0: optional `(batch, features)` initial state (zeros if None).
    reverse: run from the last step to the first (`h_t = a_t * h_{t+1} + b_t`).

  Returns:
    `(h, h_last)`: `h` `(batch, time, features)` in the inputs' dtype and the final state
    `(batch, features)` in float32 (the state at `t = 0` when `reverse`).
  """
  out_dtype = jnp.result_type(a.dtype, b.dtype)
  if h0 is None:
    h0 = jnp.zeros((a.shape[0], a.shape[2]), jnp.float32)

  def step(h, ab):
    a_t, b_t = ab
    h = a_t * h + b_t
    return h, h

  time_major = lambda x: jnp.swapaxes(x.astype(jnp.float32), 0, 1)
  h_last, h = jax.lax.scan(
      step, h0.astype(jnp.float32), (time_major(a), time_major(b)), reverse=reverse
  )
  return jnp.swapaxes(h, 0, 1).astype(out_dtype), h_last


def gated_linear_scan(
    pre: jax.Array,
    h0: jax.Array | None = None,
    *,
    gates: Callable[..., tuple[jax.Array, jax.Array]],
    seq_lengths: jax.Array | None = None,
    reverse: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """Reference for `fused_gates.gated_linear_scan`: the gates in XLA, then `linear_scan`.

  Args:
    pre: `(batch, time, n, features)` pre-activations, float32 or bfloat16.
    h0: optional `(batch, features)` initial state (zeros if None).
    gates: elementwise map from the `n` float32 pre-activations to `(a, b)`.
    seq_lengths: optional int `(batch,)`: steps at or past a row's length leave its state
      unchanged (`a = 1`, `b = 0`) and output zeros.
    reverse: run from the last step to the first.

  Returns:
    `(h, h_last)`: `h` `(batch, time, features)` in `pre`'s dtype and the final state
    `(batch, features)` in float32.
  """
  a, b = gates(*(pre[:, :, p].astype(jnp.float32) for p in range(pre.shape[2])))
  valid = None
  if seq_lengths is not None:
    valid = (jnp.arange(pre.shape[1])[None, :] < seq_lengths[:, None])[..., None]
    a, b = jnp.where(valid, a, 1.0), jnp.where(valid, b, 0.0)
  h, h_last = linear_scan(a, b, h0, reverse=reverse)
  if valid is not None:
    h = jnp.where(valid, h, 0.0)
  return h.astype(pre.dtype), h_last
