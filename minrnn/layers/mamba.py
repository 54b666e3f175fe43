"""Mamba's selective state-space mixer (Gu & Dao, 2023, arXiv 2312.00752) in pure JAX.

    x, z = in_proj(u)                                 # each (batch, time, inner)
    x = silu(CausalConv(x))
    dt = softplus(dt_proj(x_proj_dt(x)));  B, C = x_proj_B(x), x_proj_C(x)   # B, C (.., state)
    h_t = exp(dt_t A) ⊙ h_{t-1} + (dt_t x_t) ⊗ B_t    # h (batch, inner, state), A = -exp(A_log)
    y_t = h_t C_t + D ⊙ x_t;   out = out_proj(y ⊙ silu(z))

The recurrence is the same linear scan as minGRU's over `inner * state` features, so it runs
through `minrnn.ops.linear_scan` (and its Pallas kernel on GPU). The mixer is a temporal layer
(`minrnn.layers.base`) whose state is its conv window and SSM state; a config picks it with
`model.cell = "mamba"`. The block's own conv is then redundant (set
`model.conv_kernel_size = 0`): the mixer convolves after its expansion.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.layers.conv import CausalConv
from minrnn.ops import check_sequence, padding_mask
from minrnn.ops.linear_scan import ImplementationName, Inputs, linear_scan, resolve


class MambaState(NamedTuple):
  """conv: `(batch, conv_kernel_size - 1, inner)` recent conv inputs; ssm: float32
  `(batch, inner, state_size)`."""

  conv: jax.Array
  ssm: jax.Array


class Mamba(nnx.Module):
  """The Mamba mixer, `features` in and out.

  Args:
    features: input and output width.
    state_size: N, the SSM state per channel (16 in Mamba).
    expand: inner width as a multiple of `features` (Mamba's `expand`, 2).
    conv_kernel_size: taps of the causal depthwise conv (4 in Mamba).
    dt_rank: rank of the step-size projection (None: `ceil(features / 16)` as in Mamba).
    dt_min, dt_max: range of the initial step sizes (log-uniform).
    implementation: the `minrnn.ops.linear_scan` path (None: the platform's default).
    dtype: compute dtype (None: the inputs'); the SSM state is float32.
    param_dtype: parameter dtype.
    rngs: parameter initialisation keys.
  """

  def __init__(self, features: int, *, state_size: int = 16, expand: int = 2,
               conv_kernel_size: int = 4, dt_rank: int | None = None, dt_min: float = 1e-3,
               dt_max: float = 0.1, implementation: ImplementationName = None,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    if conv_kernel_size < 1:
      raise ValueError(f"Mamba needs conv_kernel_size >= 1, got {conv_kernel_size}.")
    if resolve(implementation).inputs is not Inputs.COEFFICIENTS:
      raise ValueError(
          f"implementation={implementation!r} does not scan given coefficients (a, b) in linear "
          "space (log-space paths need positive inputs, Mamba's can be negative; fused gates "
          "are for minGRU/minLSTM). Use 'associative', 'sequential', 'pallas' or None.")
    self.features = features
    self.inner = expand * features
    self.state_size = state_size
    self.dt_rank = dt_rank or math.ceil(features / 16)
    self.implementation = implementation
    self.dtype = dtype
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.in_proj = nnx.Linear(features, 2 * self.inner, use_bias=False, **common)
    self.conv = CausalConv(self.inner, conv_kernel_size, **common)
    self.x_proj = nnx.Linear(self.inner, self.dt_rank + 2 * state_size, use_bias=False,
                             **common)
    # Mamba's step-size init: softplus(bias) log-uniform in [dt_min, dt_max].
    dt = jnp.exp(jax.random.uniform(rngs.params(), (self.inner,)) *
                 (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    self.dt_proj = nnx.Linear(self.dt_rank, self.inner, **common)
    self.dt_proj.bias = nnx.Param((dt + jnp.log(-jnp.expm1(-dt))).astype(param_dtype))
    # S4D-real init: A = -(1, 2, ..., N) for every channel.
    self.A_log = nnx.Param(jnp.log(jnp.broadcast_to(
        jnp.arange(1, state_size + 1, dtype=jnp.float32), (self.inner, state_size)
    )).astype(param_dtype))
    self.D = nnx.Param(jnp.ones((self.inner,), param_dtype))
    self.out_proj = nnx.Linear(self.inner, features, use_bias=False, **common)

  def initialize_state(self, batch_size: int) -> MambaState:
    """An empty conv window and a zero SSM state."""
    return MambaState(self.conv.initial_window(batch_size, self.dtype or jnp.float32),
                      jnp.zeros((batch_size, self.inner, self.state_size), jnp.float32))

  def _ssm_inputs(self, u: jax.Array, window: jax.Array, seq_lengths: jax.Array | None = None):
    x, z = jnp.split(self.in_proj(u), 2, axis=-1)
    x, window = self.conv(x, window, seq_lengths)
    x = jax.nn.silu(x)
    dt, B, C = jnp.split(self.x_proj(x), [self.dt_rank, self.dt_rank + self.state_size], -1)
    dt = jax.nn.softplus(self.dt_proj(dt).astype(jnp.float32))
    A = -jnp.exp(self.A_log[...].astype(jnp.float32))
    a = jnp.exp(dt[..., None] * A)  # (batch, time, inner, state)
    b = (dt * x.astype(jnp.float32))[..., None] * B.astype(jnp.float32)[..., None, :]
    return x, z, C, a, b, window

  def _output(self, h, x, z, C, dtype):
    y = jnp.einsum("btin,btn->bti", h, C.astype(jnp.float32))
    y = y + self.D[...].astype(jnp.float32) * x.astype(jnp.float32)
    y = y.astype(dtype) * jax.nn.silu(z)
    return self.out_proj(y)

  def __call__(self, x: jax.Array, state: MambaState | None = None, *,
               seq_lengths: jax.Array | None = None,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, MambaState]:
    """x `(batch, time, features)` -> `(y, state)`, y in the compute dtype; see
    `minrnn.layers.base`. No dropout."""
    del rngs
    check_sequence(x, self.features, seq_lengths=seq_lengths)
    if state is None:
      state = self.initialize_state(x.shape[0])
    xs, z, C, a, b, window = self._ssm_inputs(x, state.conv, seq_lengths)
    batch, time = x.shape[:2]
    mask = None if seq_lengths is None else padding_mask(seq_lengths, time)[..., None, None]
    if mask is not None:
      # Padded steps leave the state as it is: a = 1, b = 0.
      a, b = jnp.where(mask, a, 1.0), jnp.where(mask, b, 0.0)
    features = self.inner * self.state_size
    h, h_last = linear_scan(a.reshape(batch, time, features), b.reshape(batch, time, features),
                            state.ssm.reshape(batch, features),
                            implementation=self.implementation)
    h = h.reshape(batch, time, self.inner, self.state_size)
    y = self._output(h, xs, z, C, self.dtype or x.dtype)
    if mask is not None:
      y = jnp.where(mask[..., 0], y, 0)
    return y, MambaState(window, h_last.reshape(state.ssm.shape))

  def step(self, state: MambaState, x: jax.Array) -> tuple[MambaState, jax.Array]:
    """x `(batch, features)` -> `(state, y)`, y `(batch, features)`."""
    if x.ndim != 2 or x.shape[-1] != self.features:
      raise ValueError(f"Step input must have shape (batch, {self.features}), got "
                       f"{tuple(x.shape)}. For a whole sequence call the layer on "
                       "(batch, time, features).")
    xs, z, C, a, b, window = self._ssm_inputs(x[:, None], state.conv)
    h = a[:, 0] * state.ssm + b[:, 0]
    y = self._output(h[:, None], xs, z, C, self.dtype or x.dtype)
    return MambaState(window, h), y[:, 0]
