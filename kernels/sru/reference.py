"""Pure-JAX reference for SRU's elementwise recurrence (arXiv 1709.02755).

For each direction, with the input projection `u` already computed:

    f_t = σ(u1_t + v_f ⊙ c_{t−1} + b_f)          forget gate
    r_t = σ(u2_t + v_r ⊙ c_{t−1} + b_r)          highway (reset) gate
    c_t = u0_t + (c_{t−1} − u0_t) ⊙ f_t          = f ⊙ c_{t−1} + (1 − f) ⊙ u0
    h_t = x'_t + (g(c_t) − x'_t) ⊙ r_t           = r ⊙ g(c_t) + (1 − r) ⊙ x'

`g` is the identity, or tanh with `use_tanh`. `x'` is `scale_x · x` (`u` holds three matrices,
k = 3) or the fourth matrix `u3` (k = 4, used when the input and output widths differ); with
`has_skip_term=False` there is no highway term and `h_t = r ⊙ g(c_t)`. Padded steps
(`t ≥ seq_lengths[b]`) keep `c` and output zero, so a reversed direction effectively starts at
each row's last valid step.

A `jax.lax.scan` in float32: slow, obviously right, and differentiable by JAX's own autodiff; the
tests check the Pallas kernel and its hand-written backward pass against it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def direction_is_reversed(direction: int, reverse: bool) -> bool:
  """Direction 0 runs forward in time and direction 1 backward; `reverse` flips both."""
  return (direction == 1) != reverse


def sru_step(c, u, x_prime, v_f, v_r, b_f, b_r, *, use_tanh=False):
  """One step of one direction, float32. c, x_prime: `(batch, hidden)` (x_prime None: no
  highway term); u: `(batch, 3+, hidden)`; v_f, v_r, b_f, b_r: `(hidden,)`. Returns `(c_t, h_t)`.
  """
  f = jax.nn.sigmoid(u[:, 1] + v_f * c + b_f)
  r = jax.nn.sigmoid(u[:, 2] + v_r * c + b_r)
  c = u[:, 0] + (c - u[:, 0]) * f
  g = jnp.tanh(c) if use_tanh else c
  if x_prime is None:
    return c, g * r
  return c, x_prime + (g - x_prime) * r


def sru_recurrence(
    u: jax.Array,
    x: jax.Array | None,
    weight_c: jax.Array,
    bias: jax.Array,
    c0: jax.Array | None = None,
    seq_lengths: jax.Array | None = None,
    *,
    scale_x: float = 1.0,
    use_tanh: bool = False,
    has_skip_term: bool = True,
    reverse: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """Reference SRU recurrence; see `minrnn.ops.sru.sru_recurrence` for the arguments.

  Args:
    u: `(batch, time, directions, k, hidden)` projected inputs, k = 3 or 4.
    x: `(batch, time, directions, hidden)` highway input when k = 3; None when k = 4 or
      without the highway term.
    weight_c: `(directions, 2, hidden)`: `v_f`, `v_r`.
    bias: `(directions, 2, hidden)`: `b_f`, `b_r`.
    c0: `(batch, directions, hidden)` initial state (zeros if None).
    seq_lengths: optional int `(batch,)` valid lengths.
    scale_x: multiplier of `x` in the highway term (k = 3).
    use_tanh: `g = tanh`, else the identity.
    has_skip_term: keep the highway term.
    reverse: run every direction the other way round in time.

  Returns:
    `(h, c_last)`: `h` `(batch, time, directions, hidden)` in the inputs' dtype, and the final
    state `(batch, directions, hidden)` in float32.
  """
  batch, num_steps, directions, k, hidden = u.shape
  out_dtype = u.dtype if x is None else jnp.result_type(u.dtype, x.dtype)
  if c0 is None:
    c0 = jnp.zeros((batch, directions, hidden), jnp.float32)
  if seq_lengths is None:
    valid = jnp.ones((num_steps, batch, 1), bool)
  else:
    valid = (jnp.arange(num_steps)[:, None] < jnp.asarray(seq_lengths)[None, :])[..., None]
  u = jnp.swapaxes(u, 0, 1).astype(jnp.float32)
  if not has_skip_term:
    x_prime = None
  elif k == 4:
    x_prime = u[:, :, :, 3]
  else:
    x_prime = scale_x * jnp.swapaxes(x, 0, 1).astype(jnp.float32)
  weight_c = weight_c.astype(jnp.float32)
  bias = bias.astype(jnp.float32)

  hs, c_lasts = [], []
  for d in range(directions):
    v_f, v_r = weight_c[d]
    b_f, b_r = bias[d]

    def step(c, inputs, v_f=v_f, v_r=v_r, b_f=b_f, b_r=b_r):
      u_t, xp_t, valid_t = inputs
      c_new, h = sru_step(c, u_t, xp_t, v_f, v_r, b_f, b_r, use_tanh=use_tanh)
      return jnp.where(valid_t, c_new, c), jnp.where(valid_t, h, 0.0)

    c_last, h = jax.lax.scan(
        step, c0[:, d].astype(jnp.float32),
        (u[:, :, d], None if x_prime is None else x_prime[:, :, d], valid),
        reverse=direction_is_reversed(d, reverse))
    hs.append(h)
    c_lasts.append(c_last)
  h = jnp.swapaxes(jnp.stack(hs, axis=2), 0, 1)
  return h.astype(out_dtype), jnp.stack(c_lasts, axis=1)
