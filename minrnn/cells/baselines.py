"""Traditional GRU and LSTM baselines: Flax's own cells with minrnn's `scan` interface.

These run one step at a time (`jax.lax.scan`), which is what the paper's runtime comparison
measures them against. The cell equations are Flax's (`flax.nnx.GRUCell`, `flax.nnx.LSTMCell`).
"""

from flax import nnx

from minrnn.cells.base import SequentialScan


class GRU(SequentialScan, nnx.GRUCell):
  """`flax.nnx.GRUCell` plus `scan(x, carry=None, *, seq_lengths=None, reverse=False)`.

  Constructed as `GRU(in_features, hidden_features, *, rngs, ...)`; carry float32
  `(batch, hidden_features)`.
  """


class LSTM(SequentialScan, nnx.LSTMCell):
  """`flax.nnx.LSTMCell` plus `scan(x, carry=None, *, seq_lengths=None, reverse=False)`.

  Constructed as `LSTM(in_features, hidden_features, *, rngs, ...)`; carry is Flax's `(c, h)`
  tuple of float32 `(batch, hidden_features)` arrays.
  """
