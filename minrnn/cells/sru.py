"""SRU, the Simple Recurrent Unit (Lei et al., 2017, arXiv 1709.02755), and its multi-layer stack.

    [u0, u1, u2(, u3)] = x̂ W                     one matmul for the whole sequence
    f_t = σ(u1_t + v_f ⊙ c_{t−1} + b_f)
    r_t = σ(u2_t + v_r ⊙ c_{t−1} + b_r)
    c_t = f_t ⊙ c_{t−1} + (1 − f_t) ⊙ u0_t
    h_t = r_t ⊙ g(c_t) + (1 − r_t) ⊙ x'_t

`x̂` is the input, layer-normalised (`layer_norm`) and with variational dropout (`rnn_dropout`);
`W` may be factored through a narrower width (`n_proj`). `g` is the identity or tanh
(`use_tanh`). The highway input `x'` is the layer's input times `scale_x` when input and output
widths match, else the fourth projected matrix `u3`; `has_skip_term=False` drops the highway
term (`h = r ⊙ g(c)`, three matrices). The gates see `c_{t−1}` only elementwise, so the
recurrence is sequential in time but parallel over batch × features (so across devices it
shards over batch and features only, never over time): `minrnn.kernels.sru` runs it as
one fused Pallas kernel on GPU (`implementation="pallas"`) or a `jax.lax.scan`
(`"sequential"`). Options and initialisation follow the official `sru` package (2.6): highway
bias on `b_r`, `rescale`, layer norm before the projection or after the layer
(`normalize_after`), bidirectional outputs concatenated `[forward, backward]`, and dropout as a
per-sequence mask on `r ⊙ (g(c) − x')`. Dropout is active only when `rngs` is passed to `scan`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import initializers
from flax.typing import Dtype, Initializer

from minrnn.kernels.sru import reference
from minrnn.ops import check_sequence, padding_mask
from minrnn.ops import sru as sru_ops


def _default_weight_c_init(key, shape, dtype=jnp.float32):
  # Var = 1, then the official sqrt(0.5) rescaling of the gate terms.
  bound = math.sqrt(3.0) * math.sqrt(0.5)
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def _check_rate(name: str, rate: float) -> None:
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"{name} must be in [0, 1), got {rate}.")


class SRUCell(nnx.RNNCellBase):
  """One SRU layer. Inputs `(..., in_features)`, state float32 `(..., directions * hidden)`.

  Args:
    in_features: input width.
    hidden_features: state width per direction; outputs are `directions * hidden_features` wide.
    bidirectional: run a second direction backward in time and concatenate its outputs.
    layer_norm: layer-normalise the input before the projection (the highway term uses the
      input as given, as in the official code), or the output with `normalize_after`. Epsilon
      1e-5, the official (PyTorch) value.
    normalize_after: with `layer_norm`, normalise the layer's output `h`
      (`directions * hidden` wide) instead of its input.
    highway_bias: initial value of `b_r`; negative values start the layer close to the identity.
    rescale: multiply the highway input by `sqrt(1 + 2 exp(highway_bias))` (k = 3), or scale the
      initial `u3` weights by it (k = 4), to keep the output variance near one. Only with
      `has_skip_term`.
    has_skip_term: keep the highway term `(1 − r) ⊙ x'`. Without it `h = r ⊙ g(c)` and the
      projection has three matrices whatever the widths.
    use_tanh: `g = tanh` (the official option, deprecated there); else `g` is the identity.
    n_proj: factor the projection as `W = W_proj (in, n_proj) · W_u (n_proj, ...)`. Used, as
      officially, only when `0 < n_proj < min(in_features, directions * hidden)`
      (`projection_size` is 0 otherwise).
    dropout: rate of the per-sequence dropout mask on `r ⊙ (g(c) − x')`.
    rnn_dropout: rate of the variational dropout on the input `x̂` (after a pre-projection layer
      norm), one mask per sequence; the highway term uses the input without it.
    dtype: compute dtype of the projection and of the outputs (None: from the inputs). The
      recurrence and the state are float32 whatever it is.
    param_dtype: parameter dtype.
    kernel_init: initializer of the `(in_features or n_proj, directions * k * hidden)`
      projection (and of `weight_proj` `(in_features, n_proj)`), before the official
      per-matrix rescaling of the former (gates × sqrt(0.5); `u0` × sqrt(1 − dropout); all ×
      sqrt(1 − rnn_dropout); all × 0.1 with layer norm, before or after; `u3` × scale_x with
      rescale). Default: uniform with variance 1/fan-in.
    weight_c_init: initializer of `weight_c` `(directions, 2, hidden)` = `[v_f, v_r]`.
    implementation: default path of `scan`: `"pallas"`, `"sequential"` or None (platform).
    rngs: parameter keys.

  Dropout (both kinds) is active only when `scan` gets `rngs` (stream `dropout`); the step path
  (`__call__`) never drops, like the blocks' step mode.

  Checked against the official package (`tests/test_sru_official.py`): outputs, final states and
  gradients agree to float32 precision, with two intended differences. Padded outputs
  (`seq_lengths`) are zeros here; the official stack with `normalize_after` layer-normalises
  its zeroed padded steps and outputs LayerNorm(0), the layer norm's shift. And the official
  SRU has no learned initial state, nor has this one (the state starts at the given carry or
  zeros), so the softplus parametrisation of minGRU / minLSTM's learned state does not apply.

  Official options not supported: `v1` (the deprecated first SRU form, to be removed upstream),
  `custom_m` (a user module computing `U`, and optionally per-step `v`: here SRU++ in
  `minrnn.cells.srupp` puts attention in the projection, and any other projection can call
  `minrnn.ops.sru.sru_recurrence` directly; per-step `v` is not in the kernel), and
  `amp_recurrence_fp16` (the recurrence is always float32 here; bfloat16 inputs are widened in
  the kernel).
  """

  num_feature_axes = 1

  def __init__(
      self,
      in_features: int,
      hidden_features: int,
      *,
      bidirectional: bool = False,
      layer_norm: bool = False,
      normalize_after: bool = False,
      highway_bias: float = 0.0,
      rescale: bool = True,
      has_skip_term: bool = True,
      use_tanh: bool = False,
      n_proj: int = 0,
      dropout: float = 0.0,
      rnn_dropout: float = 0.0,
      dtype: Dtype | None = None,
      param_dtype: Dtype = jnp.float32,
      kernel_init: Initializer = initializers.variance_scaling(1.0, "fan_in", "uniform"),
      weight_c_init: Initializer = _default_weight_c_init,
      implementation: str | None = None,
      rngs: nnx.Rngs,
  ):
    _check_rate("dropout", dropout)
    _check_rate("rnn_dropout", rnn_dropout)
    if n_proj < 0:
      raise ValueError(f"n_proj must be >= 0 (0: no factored projection), got {n_proj}.")
    if normalize_after and not layer_norm:
      raise ValueError("normalize_after=True places the layer norm; it needs layer_norm=True.")
    if implementation is not None:
      sru_ops.resolve(implementation)  # A bad name fails here, not at the first call.
    self.in_features = in_features
    self.hidden_features = hidden_features
    self.bidirectional = bidirectional
    self.directions = 2 if bidirectional else 1
    self.out_features = self.directions * hidden_features
    self.has_skip_term = has_skip_term
    self.use_tanh = use_tanh
    # A fourth matrix projects the highway input when there is one and the widths differ.
    self.num_matrices = 4 if has_skip_term and in_features != self.out_features else 3
    self.projection_size = n_proj if n_proj < min(in_features, self.out_features) else 0
    self.highway_bias = highway_bias
    self.rescale = rescale
    self.scale_x = (math.sqrt(1.0 + 2.0 * math.exp(highway_bias))
                    if rescale and has_skip_term else 1.0)
    self.normalize_after = normalize_after
    self.dtype = dtype
    self.implementation = implementation

    k, d = self.num_matrices, hidden_features
    self.weight_proj = (
        nnx.Param(kernel_init(rngs.params(), (in_features, self.projection_size), param_dtype))
        if self.projection_size else None)
    fan_in = self.projection_size or in_features
    w = kernel_init(rngs.params(), (fan_in, self.directions * k * d), param_dtype)
    scales = [math.sqrt(1.0 - dropout), math.sqrt(0.5), math.sqrt(0.5)]
    if k == 4:
      scales.append(self.scale_x)
    scales = (jnp.asarray(scales, param_dtype) * math.sqrt(1.0 - rnn_dropout)
              * (0.1 if layer_norm else 1.0))
    w = (w.reshape(fan_in, self.directions, k, d) * scales[:, None]).reshape(w.shape)
    self.kernel = nnx.Param(w)
    self.weight_c = nnx.Param(weight_c_init(rngs.params(), (self.directions, 2, d), param_dtype))
    bias = jnp.zeros((self.directions, 2, d), param_dtype).at[:, 1].set(highway_bias)
    self.bias = nnx.Param(bias)
    # epsilon 1e-5 is the official package's (PyTorch's `nn.LayerNorm` default), not Flax's
    # 1e-6: on a narrow post-norm layer the two differ by ~1e-2 in the outputs.
    self.layer_norm = (
        nnx.LayerNorm(self.out_features if normalize_after else in_features, epsilon=1e-5,
                      dtype=dtype, param_dtype=param_dtype, rngs=rngs) if layer_norm else None)
    # Broadcast over time: one mask per sequence, as the official variational dropout.
    self.dropout = nnx.Dropout(dropout, broadcast_dims=(1,))
    self.rnn_dropout = nnx.Dropout(rnn_dropout, broadcast_dims=(1,))

  def _compute_dtype(self, x: jax.Array) -> Dtype:
    return self.dtype or x.dtype

  def _project(self, x: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
    """`(..., in)` -> `(..., directions, k, hidden)` in the compute dtype.

    `rngs` turns on `rnn_dropout` (sequences `(batch, time, in)` only).
    """
    dtype = self._compute_dtype(x)
    x_hat = x
    if self.layer_norm is not None and not self.normalize_after:
      x_hat = self.layer_norm(x_hat)
    if rngs is not None and self.rnn_dropout.rate > 0.0:
      x_hat = self.rnn_dropout(x_hat, deterministic=False, rngs=rngs)
    x_hat = x_hat.astype(dtype)
    if self.weight_proj is not None:
      x_hat = jnp.dot(x_hat, self.weight_proj[...].astype(dtype))
    u = jnp.dot(x_hat, self.kernel[...].astype(dtype))
    return u.reshape(x.shape[:-1] + (self.directions, self.num_matrices, self.hidden_features))

  def _highway(self, x: jax.Array, u: jax.Array) -> jax.Array | None:
    """`x'` `(..., directions * hidden)` in float32; None without the highway term."""
    if not self.has_skip_term:
      return None
    if self.num_matrices == 4:
      return u[..., 3, :].reshape(u.shape[:-3] + (self.out_features,)).astype(jnp.float32)
    return self.scale_x * x.astype(jnp.float32)

  def _normalize_output(self, h: jax.Array) -> jax.Array:
    if self.layer_norm is not None and self.normalize_after:
      return self.layer_norm(h)
    return h

  def initialize_carry(self, input_shape: tuple[int, ...], rngs: Any = None) -> jax.Array:
    """Zeros, float32 `input_shape[:-1] + (directions * hidden_features,)`.

    `rngs` is accepted for Flax's cell interface and not used.
    """
    del rngs
    return jnp.zeros(tuple(input_shape[:-1]) + (self.out_features,), jnp.float32)

  def __call__(self, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One step (unidirectional cells only; no dropout). carry: float32 `(batch, hidden)`;
    x: `(batch, in)`.

    Returns the new carry (float32) and the output `h` `(batch, hidden)` in the compute dtype.
    """
    if self.bidirectional:
      raise ValueError(
          "A bidirectional SRUCell has no single-step form: its backward direction needs the "
          "whole sequence. Call .scan(x) on (batch, time, features), or build the cell with "
          "bidirectional=False.")
    if x.ndim != 2 or x.shape[-1] != self.in_features:
      raise ValueError(
          f"Step input must have shape (batch, {self.in_features}), got {tuple(x.shape)}. For a "
          "whole sequence (batch, time, features) call .scan(x) instead.")
    u = self._project(x)[:, 0].astype(jnp.float32)
    x_prime = self._highway(x, u[:, None])
    weight_c = self.weight_c[0].astype(jnp.float32)
    bias = self.bias[0].astype(jnp.float32)
    carry, h = reference.sru_step(carry.astype(jnp.float32), u, x_prime, weight_c[0],
                                  weight_c[1], bias[0], bias[1], use_tanh=self.use_tanh)
    return carry, self._normalize_output(h.astype(self._compute_dtype(x)))

  def scan(
      self,
      x: jax.Array,
      carry: jax.Array | None = None,
      *,
      seq_lengths: jax.Array | None = None,
      reverse: bool = False,
      implementation: str | None = None,
      rngs: nnx.Rngs | None = None,
  ) -> tuple[jax.Array, jax.Array]:
    """A whole sequence: one matmul, then the fused recurrence over all directions.

    Args:
      x: `(batch, time, in_features)`.
      carry: float32 `(batch, directions * hidden)` state before the first step of each
        direction (zeros if None).
      seq_lengths: optional int `(batch,)`: the state stops at each row's end, padded outputs
        are zero, and backward-running directions start at each row's last valid step.
      reverse: run every direction the other way round in time.
      implementation: `"pallas"`, `"sequential"`, or None (the cell's, then the platform's).
      rngs: dropout keys (stream `dropout`); None (evaluation) turns dropout off.

    Returns:
      `(carry, y)`: the final float32 state `(batch, directions * hidden)` (a backward
      direction's state after t = 0) and outputs `(batch, time, directions * hidden)` in the
      compute dtype, directions concatenated `[forward, backward]`.
    """
    check_sequence(x, self.in_features, seq_lengths=seq_lengths)
    batch, num_steps, _ = x.shape
    if carry is None:
      carry = self.initialize_carry((batch, self.in_features))
    if tuple(carry.shape) != (batch, self.out_features):
      raise ValueError(
          f"carry must have shape (batch, directions * hidden) = {(batch, self.out_features)}, "
          f"got {tuple(carry.shape)}.")
    dtype = self._compute_dtype(x)
    u = self._project(x, rngs)
    x_seq = None
    if self.has_skip_term and self.num_matrices == 3:
      x_seq = x.astype(dtype).reshape(batch, num_steps, self.directions, self.hidden_features)
    h, c_last = sru_ops.sru_recurrence(
        u, x_seq, self.weight_c[...], self.bias[...],
        carry.reshape(batch, self.directions, self.hidden_features), seq_lengths,
        scale_x=self.scale_x, use_tanh=self.use_tanh, has_skip_term=self.has_skip_term,
        reverse=reverse, implementation=implementation or self.implementation)
    h = h.reshape(batch, num_steps, self.out_features)
    drop = rngs is not None and self.dropout.rate > 0.0
    if drop:
      # x' + mask ⊙ (h − x') is the mask on r ⊙ (g(c) − x').
      x_prime = self._highway(x, u)
      h = h.astype(jnp.float32)
      residual = h if x_prime is None else h - x_prime
      residual = self.dropout(residual, deterministic=False, rngs=rngs)
      h = residual if x_prime is None else x_prime + residual
    h = self._normalize_output(h.astype(dtype))
    if seq_lengths is not None and (drop or self.normalize_after):
      # Both act on padded steps too; keep the padded outputs zero.
      h = jnp.where(padding_mask(seq_lengths, num_steps)[..., None], h, 0.0)
    return c_last.reshape(batch, self.out_features), h.astype(dtype)


class SRU(nnx.Module):
  """A stack of SRU layers, like the official `sru.SRU(input_size, hidden_size, num_layers)`.

  Batch-major: `__call__(x (batch, time, input_size), c0=None, seq_lengths=None, *, rngs=None)`
  returns `(h, c)`: `h` `(batch, time, directions * hidden_size)` from the last layer and `c`
  float32 `(num_layers, batch, directions * hidden_size)`, each layer's final state. `dropout`
  is applied inside every layer but the last (the official placement, between layers),
  `rnn_dropout` in every layer, both only when `rngs` is given. `projection_size` is each
  layer's `n_proj`. Other arguments are `SRUCell`'s; `rescale` defaults to False as in the
  official stack. The official stack's PyTorch-layout options (`nn_rnn_compatible_return`,
  packed sequences: here `seq_lengths`) and `proj_input_to_hidden_first` are not provided.
  """

  def __init__(
      self,
      input_size: int,
      hidden_size: int,
      num_layers: int = 2,
      *,
      dropout: float = 0.0,
      rnn_dropout: float = 0.0,
      bidirectional: bool = False,
      projection_size: int = 0,
      use_tanh: bool = False,
      layer_norm: bool = False,
      normalize_after: bool = False,
      highway_bias: float = 0.0,
      has_skip_term: bool = True,
      rescale: bool = False,
      dtype: Dtype | None = None,
      param_dtype: Dtype = jnp.float32,
      implementation: str | None = None,
      rngs: nnx.Rngs,
  ):
    if num_layers < 1:
      raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
    self.input_size = input_size
    self.hidden_size = hidden_size
    self.num_layers = num_layers
    self.out_features = (2 if bidirectional else 1) * hidden_size
    self.layers = nnx.List([
        SRUCell(input_size if i == 0 else self.out_features, hidden_size,
                bidirectional=bidirectional, layer_norm=layer_norm,
                normalize_after=normalize_after, highway_bias=highway_bias, rescale=rescale,
                has_skip_term=has_skip_term, use_tanh=use_tanh, n_proj=projection_size,
                dropout=dropout if i + 1 < num_layers else 0.0, rnn_dropout=rnn_dropout,
                dtype=dtype, param_dtype=param_dtype, implementation=implementation,
                rngs=rngs)
        for i in range(num_layers)
    ])

  def __call__(
      self,
      x: jax.Array,
      c0: jax.Array | None = None,
      seq_lengths: jax.Array | None = None,
      *,
      implementation: str | None = None,
      rngs: nnx.Rngs | None = None,
  ) -> tuple[jax.Array, jax.Array]:
    """Runs every layer over the whole sequence; see the class docstring for shapes. `rngs`
    (stream `dropout`) turns dropout on."""
    check_sequence(x, self.input_size, seq_lengths=seq_lengths)
    expected = (self.num_layers, x.shape[0], self.out_features)
    if c0 is not None and tuple(c0.shape) != expected:
      raise ValueError(
          f"c0 must have shape (num_layers, batch, directions * hidden_size) = {expected}, got "
          f"{tuple(c0.shape)}.")
    finals = []
    for i, layer in enumerate(self.layers):
      c, x = layer.scan(x, None if c0 is None else c0[i], seq_lengths=seq_lengths,
                        implementation=implementation, rngs=rngs)
      finals.append(c)
    return x, jnp.stack(finals)
