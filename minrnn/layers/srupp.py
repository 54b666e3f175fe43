"""SRU++ (Lei, 2021, arXiv 2102.12459): SRU whose input projection contains attention.

SRU computes its gate inputs `U = x W` with one matmul. SRU++ replaces that matmul by

    Q = W_q x                               (in -> proj, proj ≈ in / 4)
    K, V = W_k Q, W_v Q                     (keys and values from the small Q)
    A = softmax(Q Kᵀ / sqrt(proj) + causal mask) V
    U = W_o LayerNorm(Q + α·A)              (α a learned scalar, initialised at 0)

and then runs SRU's elementwise recurrence on `U` (`minrnn.kernels.sru`). With α = 0 a new layer starts
as an SRU with a low-rank projection. Layers without attention use `U = W_o LayerNorm(W_q x)`.
For long-context language modelling the keys and values also cover the previous segment's
inputs (the attention memory), as in Transformer-XL; the memory is part of the layer state,
with a mask that hides memory slots holding nothing yet (the start of a stream).
With `layer_norm` each layer first layer-normalises its input, as the official runs do
(`--layer_norm`): attention and projection read `LayerNorm(x)`, while the highway term and the
memory keep the raw `x`, as in the official code (so memory keys come from raw earlier inputs).
The layout follows the official `sru` package (3.0.0.dev6, `SRUpp`, `SRUppAttention`,
`SRUppCell`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.ops import check_sequence, padding_mask
from minrnn.ops import sru as sru_ops


class SRUppState(NamedTuple):
  """c: float32 `(batch, features)`, the SRU state; memory: float32
  `(batch, memory_length, features)`, the last inputs (None without memory); memory_mask: bool
  `(batch, memory_length)`, which slots hold an input yet (None without memory)."""

  c: jax.Array
  memory: jax.Array | None
  memory_mask: jax.Array | None

_xavier = nnx.initializers.xavier_uniform()


def _weight_c_init(key, shape, dtype=jnp.float32):
  # The official SRU++ default: v_f, v_r uniform in [-1, 1].
  return jax.random.uniform(key, shape, dtype, -1.0, 1.0)


class SRUppAttention(nnx.Module):
  """Single-head attention that produces SRU's `U`: `(batch, time, in) -> (batch, time, out)`.

  Args:
    in_features, out_features: widths of x and U.
    proj_features: the attention width (Q, K, V).
    dropout: dropout before `W_o` (`W_o` is scaled by sqrt(1 - dropout) at init, as the
      official code does).
    attn_dropout: dropout on the attention probabilities.
    rngs: parameter keys.
  """

  def __init__(self, in_features: int, out_features: int, proj_features: int, *,
               dropout: float = 0.0, attn_dropout: float = 0.0, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    self.in_features = in_features
    self.proj_features = proj_features
    self.dtype = dtype
    common = dict(use_bias=False, kernel_init=_xavier, dtype=dtype, param_dtype=param_dtype,
                  rngs=rngs)
    self.q = nnx.Linear(in_features, proj_features, **common)
    self.kv = nnx.Linear(proj_features, 2 * proj_features, **common)
    self.out = nnx.Linear(proj_features, out_features, **common)
    if dropout > 0:
      self.out.kernel[...] = self.out.kernel[...] * math.sqrt(1.0 - dropout)
    self.alpha = nnx.Param(jnp.zeros((), param_dtype))
    self.norm = nnx.LayerNorm(proj_features, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout)
    self.attn_dropout = nnx.Dropout(attn_dropout)

  def __call__(self, x: jax.Array, memory: jax.Array | None = None,
               memory_mask: jax.Array | None = None, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """x `(batch, time, in)`; memory `(batch, mem, in)` (earlier inputs, all visible where
    `memory_mask` `(batch, mem)` is True). Position t sees the memory and positions <= t.

    Returns U `(batch, time, out)`. Dropout is active only when `rngs` is given.
    """
    batch, num_steps, _ = x.shape
    mem = 0 if memory is None else memory.shape[1]
    context = x if memory is None else jnp.concatenate([memory.astype(x.dtype), x], axis=1)
    z = self.q(context)
    q = z[:, mem:]
    k, v = jnp.split(self.kv(z), 2, axis=-1)
    scores = jnp.einsum("btd,bsd->bts", q, k).astype(jnp.float32)
    scores = scores / math.sqrt(self.proj_features)
    causal = jnp.tril(jnp.ones((num_steps, num_steps), bool))
    if memory is None:
      visible = jnp.broadcast_to(causal, (batch, num_steps, num_steps))
    else:
      if memory_mask is None:
        memory_mask = jnp.ones((batch, mem), bool)
      visible = jnp.concatenate([
          jnp.broadcast_to(memory_mask[:, None, :], (batch, num_steps, mem)),
          jnp.broadcast_to(causal, (batch, num_steps, num_steps))], axis=2)
    probs = jax.nn.softmax(jnp.where(visible, scores, -jnp.inf), axis=-1)
    probs = self.attn_dropout(probs, deterministic=rngs is None, rngs=rngs)
    attended = jnp.einsum("bts,bsd->btd", probs.astype(v.dtype), v)
    h = self.norm(q + self.alpha[...].astype(q.dtype) * attended)
    return self.out(self.dropout(h, deterministic=rngs is None, rngs=rngs))


class SRUppProjection(nnx.Module):
  """The attention-free layers' `U = W_o LayerNorm(W_q x)` (the official
  `SRUppProjectedLinear`)."""

  def __init__(self, in_features: int, out_features: int, proj_features: int, *,
               dropout: float = 0.0, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    common = dict(use_bias=False, kernel_init=_xavier, dtype=dtype, param_dtype=param_dtype,
                  rngs=rngs)
    self.q = nnx.Linear(in_features, proj_features, **common)
    self.out = nnx.Linear(proj_features, out_features, **common)
    if dropout > 0:
      self.out.kernel[...] = self.out.kernel[...] * math.sqrt(1.0 - dropout)
    self.norm = nnx.LayerNorm(proj_features, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout)

  def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
    h = self.norm(self.q(x))
    return self.out(self.dropout(h, deterministic=rngs is None, rngs=rngs))


class SRUppLayer(nnx.Module):
  """One SRU++ layer, a temporal layer (`minrnn.layers.base`): `U` from attention (or the
  projection), then SRU's recurrence with the input as the highway term.

    f_t = σ(U1_t + v_f⊙c_{t−1} + b_f),  r_t = σ(U2_t + v_r⊙c_{t−1} + b_r)
    c_t = f_t⊙c_{t−1} + (1 − f_t)⊙U0_t,  h_t = r_t⊙c_t + (1 − r_t)⊙x_t

  Args:
    features: input, state and output width (the official `n_d`).
    proj_features: attention (or projection) width.
    attention: use attention (True) or the plain low-rank projection (False).
    memory_length: how many earlier inputs the attention keeps as memory (0: none).
    dropout: dropout inside the attention/projection before `W_o`, and (with
      `highway_dropout`) a per-sequence mask on `r⊙(c − x)` as in SRU.
    highway_dropout: apply that mask (the official SRU++ does in every layer but the last).
    attn_dropout: dropout on the attention probabilities.
    layer_norm: layer-normalise the input before the attention / projection (see the module
      docstring).
    highway_bias: initial `b_r` (the official SRU++ uses -2: layers start near the identity).
    implementation: SRU recurrence path, `"pallas"`, `"sequential"` or None (platform).
    dtype, param_dtype: compute and parameter dtypes; the state is float32.
    rngs: parameter keys.
  """

  def __init__(self, features: int, *, proj_features: int, attention: bool = True,
               memory_length: int = 0, dropout: float = 0.0, attn_dropout: float = 0.0,
               highway_bias: float = -2.0, highway_dropout: bool = True,
               layer_norm: bool = False, implementation: str | None = None,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    if memory_length < 0:
      raise ValueError(f"memory_length must be >= 0, got {memory_length}.")
    if memory_length and not attention:
      raise ValueError("memory_length > 0 needs attention=True: only attention reads memory.")
    if implementation is not None:
      sru_ops.resolve(implementation)  # A bad name fails here, not at the first call.
    self.features = features
    self.memory_length = memory_length
    self.implementation = implementation
    self.dtype = dtype
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.transform = (
        SRUppAttention(features, 3 * features, proj_features, dropout=dropout,
                       attn_dropout=attn_dropout, **common) if attention
        else SRUppProjection(features, 3 * features, proj_features, dropout=dropout, **common))
    self.input_norm = (nnx.LayerNorm(features, dtype=dtype, param_dtype=param_dtype,
                                     rngs=rngs) if layer_norm else None)
    self.weight_c = nnx.Param(_weight_c_init(rngs.params(), (1, 2, features), param_dtype))
    self.bias = nnx.Param(
        jnp.zeros((1, 2, features), param_dtype).at[:, 1].set(highway_bias))
    # One mask per sequence, broadcast over time, as SRU's variational dropout.
    self.highway_dropout = nnx.Dropout(dropout if highway_dropout else 0.0,
                                       broadcast_dims=(1,))

  @property
  def attention(self) -> bool:
    return isinstance(self.transform, SRUppAttention)

  def initialize_state(self, batch_size: int) -> SRUppState:
    """A zero state and an empty (fully masked) memory."""
    c = jnp.zeros((batch_size, self.features), jnp.float32)
    if not self.memory_length:
      return SRUppState(c, None, None)
    return SRUppState(
        c, jnp.zeros((batch_size, self.memory_length, self.features), jnp.float32),
        jnp.zeros((batch_size, self.memory_length), bool))

  def __call__(self, x: jax.Array, state: SRUppState | None = None, *,
               seq_lengths: jax.Array | None = None,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, SRUppState]:
    """x `(batch, time, features)` -> `(h, state)`: h in the compute dtype, and the state after
    the last (valid) step, whose memory then holds the last `memory_length` inputs seen. See
    `minrnn.layers.base`; dropout is on only with `rngs`."""
    check_sequence(x, self.features, seq_lengths=seq_lengths)
    batch, num_steps, _ = x.shape
    if state is None:
      state = self.initialize_state(batch)
    dtype = self.dtype or x.dtype
    x_in = self.input_norm(x) if self.input_norm is not None else x
    if self.attention:
      u = self.transform(x_in, state.memory, state.memory_mask, rngs=rngs)
    else:
      u = self.transform(x_in, rngs=rngs)
    u = u.reshape(batch, num_steps, 1, 3, self.features)
    h, c = sru_ops.sru_recurrence(u, x.astype(dtype)[:, :, None], self.weight_c[...],
                                  self.bias[...], state.c[:, None], seq_lengths,
                                  implementation=self.implementation)
    h = h[:, :, 0]
    if rngs is not None and self.highway_dropout.rate > 0:
      x_prime = x.astype(jnp.float32)
      h = x_prime + self.highway_dropout(h.astype(jnp.float32) - x_prime, deterministic=False,
                                         rngs=rngs)
    if seq_lengths is not None:
      h = jnp.where(padding_mask(seq_lengths, num_steps)[..., None], h, 0)
    return h.astype(dtype), SRUppState(c[:, 0], *self._memory(state, x, seq_lengths))

  def _memory(self, state: SRUppState, x: jax.Array, seq_lengths: jax.Array | None):
    """The memory and its mask after x: the last `memory_length` (valid) inputs."""
    if not self.memory_length:
      return None, None
    batch, num_steps, _ = x.shape
    m = self.memory_length
    context = jnp.concatenate([state.memory, x.astype(jnp.float32)], axis=1)
    mask = jnp.concatenate([state.memory_mask, jnp.ones((batch, num_steps), bool)], 1)
    if seq_lengths is None:
      return context[:, -m:], mask[:, -m:]
    # The m entries before row b's end sit at context[b, len_b : len_b + m].
    index = jnp.asarray(seq_lengths)[:, None] + jnp.arange(m)[None, :]
    return (jnp.take_along_axis(context, index[..., None], axis=1),
            jnp.take_along_axis(mask, index, axis=1))

  def step(self, state: SRUppState, x: jax.Array) -> tuple[SRUppState, jax.Array]:
    """x `(batch, features)` -> `(state, h)`: the memory keeps the last `memory_length` inputs,
    so a token sees the context training saw. No dropout."""
    h, state = self(x[:, None], state)
    return state, h[:, 0]
