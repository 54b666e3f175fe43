"""SRU++ (Lei, 2021, arXiv 2102.12459): SRU whose input projection contains attention.

SRU computes its gate inputs `U = x W` with one matmul. SRU++ replaces that matmul by

    Q = W_q x                               (in -> proj, proj ≈ in / 4)
    K, V = W_k Q, W_v Q                     (keys and values from the small Q)
    A = softmax(Q Kᵀ / sqrt(proj) + mask) V
    U = W_o LayerNorm(Q + α·A)              (α a learned scalar, initialised at 0)

and then runs SRU's elementwise recurrence on `U` (`minrnn.kernels.sru`). With α = 0 a new layer starts
as an SRU with a low-rank projection. Layers without attention use `U = W_o LayerNorm(W_q x)`.
For long-context language modelling the keys and values also cover the previous segment's
inputs (the attention memory), as in Transformer-XL; the memory is part of the layer state,
with a mask that hides memory slots holding nothing yet (the start of a stream). The mask
(`attention_mask`) lets a query see the whole memory (the official training mask) or, with
`same_length`, only the keys at most `memory_length` positions back, so that every query sees
the same number of keys (the official evaluation mask).

LayerNorm, as in the official `sru` package (`sru/modules.py`): `attn_layer_norm` (on by
default) is the post-norm of `Q + α·A` (of `W_q x` in the projection) written above. In the
published models it is the only LayerNorm: at the commit that published their numbers
(0fca653), `--layer_norm` builds `SRUppAttention` / `SRUppProjectedLinear` with it and every
`SRUppCell` with `layer_norm=False`; later commits (24363c1, acaac12) name it
`attn_layer_norm`. `layer_norm` (off by default) adds those later commits' per-layer input
LayerNorm: attention and projection read `LayerNorm(x)`, while the highway term and the memory
keep the raw `x`. Every LayerNorm has PyTorch's epsilon, 1e-5, as the official modules.
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
# PyTorch's `nn.LayerNorm` default, which the official modules use (Flax's is 1e-6).
LAYER_NORM_EPSILON = 1e-5


def _layer_norm(features: int, enabled: bool, dtype, param_dtype, rngs) -> nnx.LayerNorm | None:
  return (nnx.LayerNorm(features, epsilon=LAYER_NORM_EPSILON, dtype=dtype,
                        param_dtype=param_dtype, rngs=rngs) if enabled else None)


def attention_mask(batch: int, num_steps: int, memory_mask: jax.Array | None = None, *,
                   same_length: bool = False) -> jax.Array:
  """Which keys each query of a segment sees: bool `(batch, num_steps, mem + num_steps)`, the
  keys being the memory's `mem` slots (oldest first), then the segment's positions.

  Query t sees the segment's positions up to itself and the memory slots that hold an input
  (`memory_mask`, bool `(batch, mem)`; None: no memory). With `same_length` it sees only the
  keys at most `mem` positions back (memory slots `j >= t`, positions `s >= t - mem`): once the
  memory is full every query sees `mem + 1` keys, as the official evaluation mask
  (`set_mask(mem_length, same_length=True)` of `train_enwik8.py` / `train_wt103.py`); at the
  start of a stream (an empty memory) query t sees its t + 1 positions, as there.
  """
  mem = 0 if memory_mask is None else memory_mask.shape[1]
  t = jnp.arange(num_steps)[:, None]
  s = jnp.arange(num_steps)[None, :]
  own = (s <= t) & (s >= t - mem) if same_length else s <= t
  own = jnp.broadcast_to(own, (batch, num_steps, num_steps))
  if memory_mask is None:
    return own
  in_window = (jnp.arange(mem)[None, :] >= t) if same_length else jnp.ones((num_steps, mem), bool)
  return jnp.concatenate([memory_mask[:, None, :] & in_window[None], own], axis=2)


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
    layer_norm: LayerNorm of `Q + α·A` before `W_o` (the official post-norm).
    same_length: every query sees the same number of keys (see `attention_mask`).
    rngs: parameter keys.
  """

  def __init__(self, in_features: int, out_features: int, proj_features: int, *,
               dropout: float = 0.0, attn_dropout: float = 0.0, layer_norm: bool = True,
               same_length: bool = False, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    self.in_features = in_features
    self.proj_features = proj_features
    self.same_length = same_length
    self.dtype = dtype
    common = dict(use_bias=False, kernel_init=_xavier, dtype=dtype, param_dtype=param_dtype,
                  rngs=rngs)
    self.q = nnx.Linear(in_features, proj_features, **common)
    self.kv = nnx.Linear(proj_features, 2 * proj_features, **common)
    self.out = nnx.Linear(proj_features, out_features, **common)
    if dropout > 0:
      self.out.kernel[...] = self.out.kernel[...] * math.sqrt(1.0 - dropout)
    self.alpha = nnx.Param(jnp.zeros((), param_dtype))
    self.norm = _layer_norm(proj_features, layer_norm, dtype, param_dtype, rngs)
    self.dropout = nnx.Dropout(dropout)
    self.attn_dropout = nnx.Dropout(attn_dropout)

  def __call__(self, x: jax.Array, memory: jax.Array | None = None,
               memory_mask: jax.Array | None = None, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """x `(batch, time, in)`; memory `(batch, mem, in)` (earlier inputs, visible where
    `memory_mask` `(batch, mem)` is True, within the window of `same_length`). Position t sees
    the memory and positions <= t (`attention_mask`).

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
    if memory is not None and memory_mask is None:
      memory_mask = jnp.ones((batch, mem), bool)
    visible = attention_mask(batch, num_steps, memory_mask, same_length=self.same_length)
    probs = jax.nn.softmax(jnp.where(visible, scores, -jnp.inf), axis=-1)
    probs = self.attn_dropout(probs, deterministic=rngs is None, rngs=rngs)
    attended = jnp.einsum("bts,bsd->btd", probs.astype(v.dtype), v)
    h = q + self.alpha[...].astype(q.dtype) * attended
    if self.norm is not None:
      h = self.norm(h)
    return self.out(self.dropout(h, deterministic=rngs is None, rngs=rngs))


class SRUppProjection(nnx.Module):
  """The attention-free layers' `U = W_o LayerNorm(W_q x)` (the official
  `SRUppProjectedLinear`; without `layer_norm`, `U = W_o W_q x`)."""

  def __init__(self, in_features: int, out_features: int, proj_features: int, *,
               dropout: float = 0.0, layer_norm: bool = True, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    common = dict(use_bias=False, kernel_init=_xavier, dtype=dtype, param_dtype=param_dtype,
                  rngs=rngs)
    self.q = nnx.Linear(in_features, proj_features, **common)
    self.out = nnx.Linear(proj_features, out_features, **common)
    if dropout > 0:
      self.out.kernel[...] = self.out.kernel[...] * math.sqrt(1.0 - dropout)
    self.norm = _layer_norm(proj_features, layer_norm, dtype, param_dtype, rngs)
    self.dropout = nnx.Dropout(dropout)

  def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
    h = self.q(x)
    if self.norm is not None:
      h = self.norm(h)
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
    same_length: every query sees the `memory_length` positions before it and itself, memory
      included (the official evaluation mask, `attention_mask`); else the whole memory and
      every earlier position of the segment (the official training mask).
    dropout: dropout inside the attention/projection before `W_o`, and (with
      `highway_dropout`) a per-sequence mask on `r⊙(c − x)` as in SRU.
    highway_dropout: apply that mask (the official SRU++ does in every layer but the last).
    attn_dropout: dropout on the attention probabilities.
    attn_layer_norm: LayerNorm inside the attention / projection, of `Q + α·A` (of `W_q x`):
      the official `--layer_norm` of the published models (see the module docstring).
    layer_norm: also layer-normalise the input before the attention / projection (later
      official commits' per-layer LayerNorm; not in the published models).
    highway_bias: initial `b_r` (the official SRU++ uses -2: layers start near the identity).
    implementation: SRU recurrence path, `"pallas"`, `"sequential"` or None (platform).
    dtype, param_dtype: compute and parameter dtypes; the state is float32.
    rngs: parameter keys.
  """

  def __init__(self, features: int, *, proj_features: int, attention: bool = True,
               memory_length: int = 0, same_length: bool = False, dropout: float = 0.0,
               attn_dropout: float = 0.0, highway_bias: float = -2.0,
               highway_dropout: bool = True, attn_layer_norm: bool = True,
               layer_norm: bool = False, implementation: str | None = None,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    if memory_length < 0:
      raise ValueError(f"memory_length must be >= 0, got {memory_length}.")
    if memory_length and not attention:
      raise ValueError("memory_length > 0 needs attention=True: only attention reads memory.")
    if same_length and attention and not memory_length:
      raise ValueError("same_length needs memory_length > 0: every query sees the "
                       "memory_length positions before it; set cell_kwargs.memory_length.")
    if implementation is not None:
      sru_ops.resolve(implementation)  # A bad name fails here, not at the first call.
    self.features = features
    self.memory_length = memory_length
    self.implementation = implementation
    self.dtype = dtype
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.transform = (
        SRUppAttention(features, 3 * features, proj_features, dropout=dropout,
                       attn_dropout=attn_dropout, layer_norm=attn_layer_norm,
                       same_length=same_length, **common) if attention
        else SRUppProjection(features, 3 * features, proj_features, dropout=dropout,
                             layer_norm=attn_layer_norm, **common))
    self.input_norm = _layer_norm(features, layer_norm, dtype, param_dtype, rngs)
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
    so a token sees them and itself, as every query does under the same-length mask (the
    parallel mode's training mask also shows a segment's queries every earlier position of the
    segment). No dropout."""
    h, state = self(x[:, None], state)
    return state, h[:, 0]
