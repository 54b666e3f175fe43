"""Any recurrent cell as a temporal layer: the cell's parallel scan and step, then an optional
down-projection (the minRNN layer of "Were RNNs All We Needed?")."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.cells.base import ScanCell
from minrnn.layers.init import FLAX, ParamInit
from minrnn.ops import check_sequence, padding_mask
from minrnn.ops.linear_scan import ImplementationName

# A cell class or factory: `cell(in_features, hidden_features, *, dtype, param_dtype, rngs,
# **options)` -> a `ScanCell`.
CellFactory = Callable[..., ScanCell]


class Recurrent(nnx.Module):
  """`y = to_out(cell(x))`: a `ScanCell` behind the temporal-layer interface
  (`minrnn.layers.base`). The state is the cell's carry (float32).

  Args:
    features: input and output width.
    cell: the cell's class or factory (`MinGRU`, `MinLSTM`, `GRU`, `LSTM`, `SRUCell`, or one
      of the user's).
    expansion: None gives the cell `features` hidden units and no down-projection. A number
      gives it `features * expansion` hidden units and `to_out`, a biased
      `Linear(features * expansion -> features)`, as the paper's minRNN layer has.
    implementation: the scan path handed to the cell's `scan` (None: the cell's default).
    dtype, param_dtype: compute and parameter dtypes.
    init: the parameter scheme (`minrnn.layers.init`) of the cell's input projection (fan-in
      `features`, handed to the cell as `kernel_init`/`bias_init`; the default hands nothing,
      leaving the cell's own) and of `to_out` (fan-in: the cell's output width).
    rngs: parameter keys.
    **options: the cell's own constructor options (a config's `model.cell_kwargs`).
  """

  def __init__(self, features: int, cell: CellFactory, *, expansion: int | None = None,
               implementation: ImplementationName = None, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, init: ParamInit = FLAX, rngs: nnx.Rngs,
               **options: Any):
    if expansion is not None and expansion < 1:
      raise ValueError(f"expansion must be None or >= 1, got {expansion}.")
    self.features = features
    self.implementation = implementation
    hidden = features if expansion is None else features * expansion
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.cell = cell(features, hidden, **init.dense(features), **options, **common)
    self.to_out = (None if expansion is None else nnx.Linear(
        self.cell.out_features, features, **init.dense(self.cell.out_features), **common))
    if self.to_out is None and self.cell.out_features != features:
      raise ValueError(
          f"The cell's outputs are {self.cell.out_features} wide but the layer's are "
          f"{features} (a bidirectional SRU doubles them): give the layer an expansion, which "
          "adds a down-projection, or a cell whose outputs keep the width.")

  def initialize_state(self, batch_size: int) -> Any:
    return self.cell.initialize_carry((batch_size, self.features))

  def _out(self, y: jax.Array) -> jax.Array:
    return y if self.to_out is None else self.to_out(y)

  def __call__(self, x: jax.Array, state: Any = None, *, seq_lengths: jax.Array | None = None,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, Any]:
    """x `(batch, time, features)` -> `(y, carry)`; see `minrnn.layers.base`."""
    check_sequence(x, self.features, seq_lengths=seq_lengths)
    carry, y = self.cell.scan(x, state, seq_lengths=seq_lengths,
                              implementation=self.implementation, rngs=rngs)
    y = self._out(y)
    if seq_lengths is not None and self.to_out is not None:
      # The projection's bias would make padded outputs non-zero.
      y = jnp.where(padding_mask(seq_lengths, x.shape[1])[..., None], y, 0)
    return y, carry

  def step(self, state: Any, x: jax.Array) -> tuple[Any, jax.Array]:
    """x `(batch, features)` -> `(carry, y)`."""
    carry, y = self.cell(state, x)
    return carry, self._out(y)
