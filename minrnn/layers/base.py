"""The one interface of every layer that mixes information over time.

A temporal layer maps `(batch, time, features)` to `(batch, time, features)` causally and has
two execution modes with one typed state:

    state = layer.initialize_state(batch_size)         # before the first token
    y, state = layer(x, state, seq_lengths=..., rngs=...)   # a whole sequence, in parallel
    state, y_t = layer.step(state, x_t)                # one token (batch, features), no dropout

The state is a pytree of arrays of constant size (a recurrent carry, a conv window, a
key-value cache of fixed capacity, an attention memory), typed as a NamedTuple or an array,
never a dict. A layer whose state holds a bounded number of positions (attention's key-value
cache) says how many as an int attribute `cache_size`; generation checks that the text fits.
`__call__` with `state=None` starts from `initialize_state`. With `seq_lengths`
(int `(batch,)`) row b is valid for `t < seq_lengths[b]`: the state returned for a padded row is
the state after its last valid token, and padded outputs are zero. `rngs` (stream `dropout`)
turns on the layer's own dropout, if it has any; without it the layer is deterministic. A layer
that cannot honour an argument raises a ValueError that says so.

The minRNN cells, SRU and Flax's GRU/LSTM become temporal layers through `Recurrent`; causal
attention, Mamba and the SRU++ layer implement the interface themselves. `minrnn.layers.registry`
names them for configs, and every registered layer runs through the contract tests.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
from flax import nnx

State = Any  # A layer's own typed state: an array or a NamedTuple of arrays.


class TemporalLayer(Protocol):
  """See the module docstring. `features` is the input and output width."""

  features: int

  def initialize_state(self, batch_size: int) -> State:
    """The state before the first token."""

  def __call__(self, x: jax.Array, state: State | None = None, *,
               seq_lengths: jax.Array | None = None,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, State]:
    """Parallel mode: x `(batch, time, features)` -> `(y, state)`, y like x."""

  def step(self, state: State, x: jax.Array) -> tuple[State, jax.Array]:
    """Step mode: x `(batch, features)` -> `(state, y)`, y `(batch, features)`."""
