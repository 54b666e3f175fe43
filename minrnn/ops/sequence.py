"""Helpers for padded, batch-major sequences `(batch, time, ...)`.

A padded batch carries `seq_lengths` of shape `(batch,)` (int): row `i` is valid for
`t < seq_lengths[i]`. Every recurrence in minrnn handles padding the same way: the carry stops at
each sequence's end, padded outputs are zero, and `reverse=True` runs over the valid part only
(as Flax's `RNN(reverse=True)` does).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def padding_mask(seq_lengths: jax.Array, num_steps: int) -> jax.Array:
  """Boolean `(batch, num_steps)` mask, True where `t < seq_lengths[b]`."""
  seq_lengths = jnp.asarray(seq_lengths)
  if seq_lengths.ndim != 1:
    raise ValueError(
        f"seq_lengths must have shape (batch,), got {seq_lengths.shape}."
    )
  return jnp.arange(num_steps)[None, :] < seq_lengths[:, None]


def flip_sequences(x: jax.Array, seq_lengths: jax.Array | None) -> jax.Array:
  """Reverses each row of `x` `(batch, time, ...)` along time within its valid length.

  Padding stays where it is (at the end), so flipping twice is the identity. Without
  `seq_lengths` the whole time axis is reversed.
  """
  if seq_lengths is None:
    return jnp.flip(x, axis=1)
  num_steps = x.shape[1]
  t = jnp.arange(num_steps)[None, :]
  lengths = jnp.asarray(seq_lengths)[:, None]
  index = jnp.where(t < lengths, lengths - 1 - t, t)
  index = index.reshape(index.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, index, axis=1)


def check_sequence(x: jax.Array, features: int | None, name: str = "x",
                   seq_lengths: jax.Array | None = None) -> None:
  """Raises a ValueError naming the problem unless `x` is `(batch, time, features)` and
  `seq_lengths`, if given, is int `(batch,)`."""
  if x.ndim != 3:
    raise ValueError(
        f"{name} must have shape (batch, time, features), got rank {x.ndim} "
        f"shape {tuple(x.shape)}. Add a batch axis with x[None] for a single sequence."
    )
  if features is not None and x.shape[-1] != features:
    raise ValueError(
        f"{name} has {x.shape[-1]} features but the layer expects {features} "
        f"(shape {tuple(x.shape)})."
    )
  if seq_lengths is not None:
    lengths = jnp.asarray(seq_lengths)
    if lengths.shape != (x.shape[0],) or not jnp.issubdtype(lengths.dtype, jnp.integer):
      raise ValueError(
          f"seq_lengths must be integers of shape (batch,) = ({x.shape[0]},) to match {name} "
          f"{tuple(x.shape)}, got {lengths.dtype} {tuple(lengths.shape)}.")
