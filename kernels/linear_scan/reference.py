"""Pure-JAX reference for the linear scan `h_t = a_t * h_{t-1} + b_t`.

A `jax.lax.scan` over time in float32: slow, obviously right, and differentiable by JAX's own
autodiff, so the tests compare the Pallas kernel's values and its hand-written backward pass with
it.
"""

from __future__ import annotations

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
