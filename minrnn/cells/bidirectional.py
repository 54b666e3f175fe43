"""Bidirectional use of any cell with a `scan` method.

Flax's own wrapper works too, through the step path:
`nnx.Bidirectional(nnx.RNN(MinGRU(...)), nnx.RNN(MinGRU(...)))`. This one runs each direction
through the cells' parallel `scan`, with the same padding semantics (the backward direction
reads each row's valid part from its end).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx


def _concatenate(forward: jax.Array, backward: jax.Array) -> jax.Array:
  return jnp.concatenate([forward, backward], axis=-1)


class Bidirectional(nnx.Module):
  """Runs `forward_cell` left to right and `backward_cell` right to left and merges the outputs.

  Args:
    forward_cell, backward_cell: cells with `scan(x, carry, *, seq_lengths, reverse,
      implementation)`, e.g. two `MinGRU`s.
    merge_fn: combines the two `(batch, time, hidden)` outputs; concatenation by default.
  """

  def __init__(self, forward_cell: nnx.Module, backward_cell: nnx.Module, *,
               merge_fn: Callable[[jax.Array, jax.Array], jax.Array] = _concatenate):
    self.forward_cell = forward_cell
    self.backward_cell = backward_cell
    self.merge_fn = merge_fn

  def scan(
      self,
      x: jax.Array,
      carry: tuple[Any, Any] | None = None,
      *,
      seq_lengths: jax.Array | None = None,
      implementation: str | None = None,
  ) -> tuple[tuple[Any, Any], jax.Array]:
    """x `(batch, time, in)` -> `((forward_carry, backward_carry), merged outputs)`."""
    carry_f, carry_b = (None, None) if carry is None else carry
    carry_f, y_f = self.forward_cell.scan(
        x, carry_f, seq_lengths=seq_lengths, implementation=implementation)
    carry_b, y_b = self.backward_cell.scan(
        x, carry_b, seq_lengths=seq_lengths, reverse=True, implementation=implementation)
    return (carry_f, carry_b), self.merge_fn(y_f, y_b)
