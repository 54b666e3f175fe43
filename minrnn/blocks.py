"""The residual block of "Were RNNs All We Needed?" and its parts.

    x = x + Dropout(Cell(CausalConv(RMSNorm(x))))      # the conv is optional
    x = x + Dropout(GatedMLP(RMSNorm(x)))

Two execution modes, chosen by the method called: `__call__` runs a whole sequence
`(batch, time, features)` in parallel, `step` runs one token `(batch, features)`. Both take and
return a constant-size decoding state: the conv's window of recent inputs and the cell's carry,
so a prompt can be processed in parallel and generation continue step by step.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn import registry
from minrnn.ops import check_sequence

# {"conv": (batch, kernel_size - 1, features) recent conv inputs, "cell": the cell's carry}.
BlockState = dict[str, Any]


class CausalConv(nnx.Module):
  """Depthwise causal 1-D convolution: `y_t = bias + sum_j kernel[j] * x_{t - k + 1 + j}`.

  Each feature has its own `kernel_size` taps and sees only the present and past. The window
  of the last `kernel_size - 1` inputs is the state that step mode carries.
  """

  def __init__(self, features: int, kernel_size: int, *, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    if kernel_size < 1:
      raise ValueError(f"kernel_size must be >= 1, got {kernel_size}.")
    self.features = features
    self.kernel_size = kernel_size
    self.dtype = dtype
    # Fan-in of a depthwise filter is its number of taps.
    init = nnx.initializers.lecun_normal(in_axis=0, out_axis=1)
    self.kernel = nnx.Param(init(rngs.params(), (kernel_size, features), param_dtype))
    self.bias = nnx.Param(jnp.zeros((features,), param_dtype))

  def initial_window(self, batch_size: int, dtype: Dtype) -> jax.Array:
    """Zeros `(batch_size, kernel_size - 1, features)`: nothing before the first token."""
    return jnp.zeros((batch_size, self.kernel_size - 1, self.features), dtype)

  def _taps(self, padded: jax.Array, num_steps: int) -> jax.Array:
    # The same sum, in the same order, serves both modes so they agree to the last bit.
    dtype = self.dtype or padded.dtype
    kernel = self.kernel[...].astype(dtype)
    y = self.bias[...].astype(dtype)
    for j in range(self.kernel_size):
      y = y + kernel[j] * padded[:, j:j + num_steps].astype(dtype)
    return y

  def __call__(self, x: jax.Array, window: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x: `(batch, time, features)`; window: the previous `kernel_size - 1` inputs.

    Returns `(y, window)`: outputs like x, and the window after the last step.
    """
    padded = jnp.concatenate([window.astype(x.dtype), x], axis=1)
    new_window = padded[:, padded.shape[1] - (self.kernel_size - 1):]
    return self._taps(padded, x.shape[1]), new_window

  def step(self, window: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x: `(batch, features)`. Returns `(window, y)`."""
    y, window = self(x[:, None], window)
    return window, y[:, 0]


class GatedMLP(nnx.Module):
  """`Linear(gelu(x W_gate) * (x W_up))`, hidden width `expansion * features`."""

  def __init__(self, features: int, expansion: int, *, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    hidden = expansion * features
    self.up = nnx.Linear(features, 2 * hidden, dtype=dtype, param_dtype=param_dtype,
                         rngs=rngs)
    self.down = nnx.Linear(hidden, features, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    gate, up = jnp.split(self.up(x), 2, axis=-1)
    return self.down(jax.nn.gelu(gate) * up)


class ResidualBlock(nnx.Module):
  """Pre-norm recurrent block: `features` in and out.

  Args:
    features: model width; the cell's input and hidden width.
    cell: a name in `minrnn.registry` ("mingru", "minlstm", "gru", "lstm", or one registered).
    cell_kwargs: extra constructor arguments of the cell (e.g. `normalize` for minLSTM).
    conv_kernel_size: taps of the causal depthwise conv before the cell; 0 for no conv.
    mlp_expansion: hidden width of the gated MLP, as a multiple of `features`.
    dropout: dropout rate on both residual branches (active only when `rngs` is passed; the
      same keys reach cells whose `scan` takes `rngs`, such as the SRU with its own dropout).
    implementation: the `minrnn.ops.linear_scan` path for parallel mode (None: the cell's).
    dtype: compute dtype (None: from the inputs); carries stay float32.
    param_dtype: parameter dtype.
    rngs: parameter initialisation keys.
  """

  def __init__(self, features: int, *, cell: str, cell_kwargs: Mapping[str, Any] | None = None,
               conv_kernel_size: int = 4, mlp_expansion: int = 4, dropout: float = 0.0,
               implementation: str | None = None, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    self.features = features
    self.dtype = dtype
    self.implementation = implementation
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.cell_norm = nnx.RMSNorm(features, **common)
    self.conv = CausalConv(features, conv_kernel_size, **common) if conv_kernel_size else None
    self.cell = registry.get_cell(cell)(features, features, **dict(cell_kwargs or {}), **common)
    self.mlp_norm = nnx.RMSNorm(features, **common)
    self.mlp = GatedMLP(features, mlp_expansion, **common)
    self.dropout = nnx.Dropout(dropout)

  def initialize_state(self, batch_size: int) -> BlockState:
    """The state before the first token: an empty conv window and the cell's initial carry."""
    return {
        "conv": (None if self.conv is None
                 else self.conv.initial_window(batch_size, self.dtype or jnp.float32)),
        "cell": self.cell.initialize_carry((batch_size, self.features)),
    }

  def _drop(self, x: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
    return self.dropout(x, deterministic=rngs is None, rngs=rngs)

  def _cell_rngs(self, rngs: nnx.Rngs | None) -> dict[str, Any]:
    """`scan`'s dropout keys for cells that take them (the SRU); other cells have no dropout."""
    if "rngs" in inspect.signature(self.cell.scan).parameters:
      return {"rngs": rngs}
    return {}

  def __call__(self, x: jax.Array, state: BlockState | None = None, *,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, BlockState]:
    """Parallel mode. x: `(batch, time, features)`; state: None to start fresh.

    Returns `(y, state)`: y like x, and the state after the last token.
    """
    check_sequence(x, self.features)
    if state is None:
      state = self.initialize_state(x.shape[0])
    h = self.cell_norm(x)
    window = state["conv"]
    if self.conv is not None:
      h, window = self.conv(h, window)
    carry, h = self.cell.scan(h, state["cell"], implementation=self.implementation,
                              **self._cell_rngs(rngs))
    x = x + self._drop(h.astype(x.dtype), rngs)
    x = x + self._drop(self.mlp(self.mlp_norm(x)).astype(x.dtype), rngs)
    return x, {"conv": window, "cell": carry}

  def step(self, state: BlockState, x: jax.Array) -> tuple[BlockState, jax.Array]:
    """Step mode (no dropout). x: `(batch, features)`. Returns `(state, y)`."""
    h = self.cell_norm(x)
    window = state["conv"]
    if self.conv is not None:
      window, h = self.conv.step(window, h)
    carry, h = self.cell(state["cell"], h)
    x = x + h.astype(x.dtype)
    x = x + self.mlp(self.mlp_norm(x)).astype(x.dtype)
    return {"conv": window, "cell": carry}, x
