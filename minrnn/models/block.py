"""The one residual block every model is built from.

    x = x + Dropout(Temporal(CausalConv(Norm(x))))     # conv, norm optional
    x = x + Dropout(MLP(Norm(x)))                       # optional

or, with `conv_residual`, the conv on a residual branch of its own before the norm, as the
official minRNN model (`BorealisAI/minRNNs`, `models/model.py`) stacks it:

    x = x + CausalConv(x)
    x = x + Dropout(Temporal(Norm(x)))
    x = x + Dropout(MLP(Norm(x)))

The temporal layer is any registered one (`minrnn.layers.registry`): a minRNN cell, SRU, GRU,
LSTM, causal attention, Mamba or SRU++. The papers' compositions are settings:

| task (paper)            | conv_kernel_size | mlp_expansion |
|-------------------------|------------------|---------------|
| selective copying       | 0                | 0             |
| formal languages        | 4                | 0             |
| language modelling      | 4                | 4             |
| offline RL (D4RL)       | 0                | 4             |

The MLP is gated (ours) or plain, `Linear -> GELU -> Linear` (`mlp_gated=False`), as the
official minRNN and Decision-Mamba blocks have it. `init` (`minrnn.layers.init`) draws the
conv, the MLP and the temporal layer's projections.

SRU++ layers carry their own highway connection: `pre_norm=False, residual=False` make the
block the layer alone, as the official SRU++ stacks them.

Two execution modes, chosen by the method called: `__call__` runs a whole sequence
`(batch, time, features)` in parallel, `step` one token `(batch, features)`. Both take and return
a `BlockState` of constant size, so a prompt can be processed in parallel and generation
continue step by step.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.layers.base import State, TemporalLayer
from minrnn.layers.conv import CausalConv
from minrnn.layers.init import FLAX, ParamInit
from minrnn.layers.mlp import MLP
from minrnn.ops import check_sequence

# rngs -> the block's temporal layer (built inside the block, after its conv, so that every
# model draws its initial parameters in the same order).
TemporalFactory = Callable[[nnx.Rngs], TemporalLayer]


class BlockState(NamedTuple):
  """temporal: the temporal layer's state; conv: `(batch, kernel_size - 1, features)` recent
  conv inputs, or None without a conv."""

  temporal: State
  conv: jax.Array | None


class ResidualBlock(nnx.Module):
  """`features` in and out; see the module docstring.

  Args:
    features: model width.
    temporal: builds the temporal layer from parameter keys.
    conv_kernel_size: taps of the causal depthwise conv before the temporal layer; 0: none.
    conv_residual: the conv on a residual branch of its own, before the norm (the official
      minRNN model); else inside the temporal branch, after the norm.
    mlp_expansion: hidden width of the MLP as a multiple of `features`; 0: no MLP.
    mlp_gated: the gated MLP; else the plain `Linear -> GELU -> Linear`.
    dropout: rate on both branches' outputs (active only when `rngs` is passed; the same keys
      reach the temporal layer, for its own dropout).
    pre_norm: RMSNorm before each branch.
    residual: add the temporal branch to x (False: its output replaces x, for layers with a
      highway connection of their own).
    dtype: compute dtype (None: from the inputs); recurrent states stay float32.
    param_dtype: parameter dtype.
    init: the parameter scheme of the conv and the MLP (`minrnn.layers.init`); the temporal
      factory receives its own.
    rngs: parameter initialisation keys.
  """

  def __init__(self, features: int, temporal: TemporalFactory, *, conv_kernel_size: int = 4,
               conv_residual: bool = False, mlp_expansion: int = 4, mlp_gated: bool = True,
               dropout: float = 0.0, pre_norm: bool = True, residual: bool = True,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               init: ParamInit = FLAX, rngs: nnx.Rngs):
    if conv_kernel_size < 0 or mlp_expansion < 0:
      raise ValueError(f"conv_kernel_size and mlp_expansion must be >= 0 (0: none), got "
                       f"{conv_kernel_size} and {mlp_expansion}.")
    self.features = features
    self.dtype = dtype
    self.residual = residual
    self.conv_residual = conv_residual
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    norm = lambda: nnx.RMSNorm(features, **common) if pre_norm else None
    self.temporal_norm = norm()
    self.conv = (CausalConv(features, conv_kernel_size, init=init, **common)
                 if conv_kernel_size else None)
    self.temporal = temporal(rngs)
    self.mlp_norm = norm() if mlp_expansion else None
    self.mlp = (MLP(features, mlp_expansion, gated=mlp_gated, init=init, **common)
                if mlp_expansion else None)
    self.dropout = nnx.Dropout(dropout)

  def initialize_state(self, batch_size: int) -> BlockState:
    """An empty conv window and the temporal layer's initial state."""
    return BlockState(
        self.temporal.initialize_state(batch_size),
        None if self.conv is None
        else self.conv.initial_window(batch_size, self.dtype or jnp.float32))

  def _drop(self, x: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
    return self.dropout(x, deterministic=rngs is None, rngs=rngs)

  @staticmethod
  def _norm(norm, x):
    return x if norm is None else norm(x)

  def __call__(self, x: jax.Array, state: BlockState | None = None, *,
               seq_lengths: jax.Array | None = None,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, BlockState]:
    """Parallel mode. x: `(batch, time, features)`; state: None to start fresh.

    Returns `(y, state)`: y like x, and the state after the last (valid) token.
    """
    check_sequence(x, self.features, seq_lengths=seq_lengths)
    # A fresh start stays None for the temporal layer: it may have a faster path for it.
    temporal, window = (None, None) if state is None else state
    if self.conv is not None and window is None:
      window = self.conv.initial_window(x.shape[0], self.dtype or jnp.float32)
    if self.conv_residual and self.conv is not None:
      c, window = self.conv(x, window, seq_lengths)
      x = x + c.astype(x.dtype)
    h = self._norm(self.temporal_norm, x)
    if not self.conv_residual and self.conv is not None:
      h, window = self.conv(h, window, seq_lengths)
    h, temporal = self.temporal(h, temporal, seq_lengths=seq_lengths, rngs=rngs)
    h = self._drop(h.astype(x.dtype), rngs)
    x = x + h if self.residual else h
    if self.mlp is not None:
      x = x + self._drop(self.mlp(self._norm(self.mlp_norm, x)).astype(x.dtype), rngs)
    return x, BlockState(temporal, window)

  def step(self, state: BlockState, x: jax.Array) -> tuple[BlockState, jax.Array]:
    """Step mode (no dropout). x: `(batch, features)`. Returns `(state, y)`."""
    window = state.conv
    if self.conv_residual and self.conv is not None:
      window, c = self.conv.step(window, x)
      x = x + c.astype(x.dtype)
    h = self._norm(self.temporal_norm, x)
    if not self.conv_residual and self.conv is not None:
      window, h = self.conv.step(window, h)
    temporal, h = self.temporal.step(state.temporal, h)
    x = x + h.astype(x.dtype) if self.residual else h.astype(x.dtype)
    if self.mlp is not None:
      x = x + self.mlp(self._norm(self.mlp_norm, x)).astype(x.dtype)
    return BlockState(temporal, window), x
