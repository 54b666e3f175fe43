"""Multi-head causal self-attention with rotary positions and a key-value cache: the attention
baseline of "Were RNNs All We Needed?" as a temporal layer.

    q, k, v = split(x W_qkv);   q, k = RoPE(q), RoPE(k) at absolute positions
    y = softmax(q kᵀ / sqrt(d_head) + causal mask) v W_out

Rotary embeddings (RoPE) need no maximum length, so a model trained on short strings runs on
long ones (the formal-language tests). The state is a `KVCache` of fixed capacity
(`cache_size` positions, a ring buffer of rotated keys and values): decoding a token costs
`O(cache_size)` and attends to the last `cache_size` tokens. Parallel mode attends within the
same window, so the two modes agree at any length; a sequence no longer than `cache_size` sees
plain full causal attention.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.ops import check_sequence


class KVCache(NamedTuple):
  """Attention state: the last `capacity` positions' rotated keys and values.

  Attributes:
    keys, values: `(batch, capacity, heads, head_dim)`; position p sits in slot
      `p % capacity`.
    length: int32 `(batch,)`: tokens seen so far (the next token's position).
  """

  keys: jax.Array
  values: jax.Array
  length: jax.Array


def rotary(x: jax.Array, positions: jax.Array, base: float = 10_000.0) -> jax.Array:
  """RoPE on `(batch, time, heads, head_dim)` at int `positions` `(batch, time)` (or
  `(time,)`); head_dim even."""
  half = x.shape[-1] // 2
  freqs = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions.astype(jnp.float32)[..., None] * freqs  # (..., time, half)
  cos, sin = jnp.cos(angles)[..., None, :], jnp.sin(angles)[..., None, :]
  x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
  return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).astype(x.dtype)


class CausalSelfAttention(nnx.Module):
  """Multi-head causal self-attention: `(batch, time, features)` in and out.

  Args:
    features: model width; `features / num_heads` must be even (RoPE rotates pairs).
    num_heads: attention heads.
    cache_size: positions the key-value cache holds, the longest context step mode sees.
    dtype, param_dtype: compute and parameter dtypes; attention scores are float32.
    rngs: parameter keys.
  """

  def __init__(self, features: int, num_heads: int, *, cache_size: int = 2048,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    if features % num_heads or (features // num_heads) % 2:
      raise ValueError(
          f"features={features} must split into num_heads={num_heads} heads of even width "
          "(rotary embeddings rotate pairs); change model.features or cell_kwargs.num_heads.")
    if cache_size < 1:
      raise ValueError(f"cache_size must be >= 1 position, got {cache_size}.")
    self.features = features
    self.num_heads = num_heads
    self.head_dim = features // num_heads
    self.cache_size = cache_size
    self.dtype = dtype
    common = dict(use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.qkv = nnx.Linear(features, 3 * features, **common)
    self.out = nnx.Linear(features, features, **common)

  def initialize_state(self, batch_size: int) -> KVCache:
    """An empty cache (float32 keys and values)."""
    shape = (batch_size, self.cache_size, self.num_heads, self.head_dim)
    return KVCache(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32),
                   jnp.zeros((batch_size,), jnp.int32))

  def _project(self, x, positions):
    batch, time, _ = x.shape
    q, k, v = jnp.split(self.qkv(x).reshape(batch, time, 3 * self.num_heads, -1), 3, axis=2)
    return rotary(q, positions), rotary(k, positions), v

  def __call__(self, x: jax.Array, state: KVCache | None = None, *,
               seq_lengths: jax.Array | None = None,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, KVCache]:
    """x `(batch, time, features)` -> `(y, cache)`; see `minrnn.layers.base`. No dropout."""
    del rngs
    check_sequence(x, self.features, seq_lengths=seq_lengths)
    batch, time, _ = x.shape
    fresh = state is None
    if fresh:
      state = self.initialize_state(batch)
    valid = (jnp.full((batch,), time, jnp.int32) if seq_lengths is None
             else jnp.asarray(seq_lengths, jnp.int32))
    steps = jnp.arange(time, dtype=jnp.int32)
    # Every row of a fresh start has the same positions.
    positions = steps if fresh else state.length[:, None] + steps[None, :]
    q, k, v = self._project(x, positions)
    if fresh and time <= self.cache_size:
      # Nothing cached and every key within the window: plain causal attention.
      y = jax.nn.dot_product_attention(q, k, v, is_causal=True)
    else:
      y = self._attend_with_cache(q, k, v, state, jnp.broadcast_to(positions, (batch, time)))
    y = self.out(y.reshape(batch, time, self.features))
    if seq_lengths is not None:
      y = jnp.where((jnp.arange(time)[None, :] < valid[:, None])[..., None], y, 0)
    return y, self._update_cache(state, k, v, valid)

  def step(self, state: KVCache, x: jax.Array) -> tuple[KVCache, jax.Array]:
    """x `(batch, features)` -> `(cache, y)`: writes the token's key and value into its slot,
    then attends over the cache. One read of the cache per token, no copy of it: this is the
    cost per generated token, so it stays apart from the parallel path's concatenation."""
    if x.ndim != 2 or x.shape[-1] != self.features:
      raise ValueError(f"Step input must have shape (batch, {self.features}), got "
                       f"{tuple(x.shape)}. For a whole sequence call the layer on "
                       "(batch, time, features).")
    batch = x.shape[0]
    q, k, v = self._project(x[:, None], state.length[:, None])
    rows, slot = jnp.arange(batch), jnp.mod(state.length, self.cache_size)
    keys = state.keys.at[rows, slot].set(k[:, 0].astype(jnp.float32))
    values = state.values.at[rows, slot].set(v[:, 0].astype(jnp.float32))
    length = state.length + 1
    # The cache now holds this token and the cache_size - 1 before it (those that exist): the
    # window the parallel mode lets it see.
    filled = self._slot_positions(length) >= 0
    y = jax.nn.dot_product_attention(q, keys.astype(q.dtype), values.astype(v.dtype),
                                     mask=filled[:, None, None, :])
    return KVCache(keys, values, length), self.out(y.reshape(batch, self.features))

  def _slot_positions(self, length: jax.Array) -> jax.Array:
    """int32 `(batch, capacity)`: the position each cache slot holds (negative: empty)."""
    slots = jnp.arange(self.cache_size, dtype=jnp.int32)[None, :]
    last = length[:, None] - 1
    return last - jnp.mod(last - slots, self.cache_size)

  def _attend_with_cache(self, q, k, v, state, positions):
    """Queries at `positions` `(batch, time)` over the cached and the new keys, each key
    visible when it is not in the future and at most `cache_size - 1` positions back."""
    cached = self._slot_positions(state.length)
    key_positions = jnp.concatenate([jnp.where(cached >= 0, cached, -2**30), positions], 1)
    keys = jnp.concatenate([state.keys.astype(k.dtype), k], axis=1)
    values = jnp.concatenate([state.values.astype(v.dtype), v], axis=1)
    gap = positions[:, :, None] - key_positions[:, None, :]  # (batch, time, keys)
    visible = (gap >= 0) & (gap < self.cache_size)
    return jax.nn.dot_product_attention(q, keys, values, mask=visible[:, None])

  def _update_cache(self, state, k, v, valid):
    """The cache after the first `valid` `(batch,)` of the new tokens; each slot takes the
    latest new token that lands on it, if any."""
    time = k.shape[1]
    slots = jnp.arange(self.cache_size, dtype=jnp.int32)[None, :]
    end = state.length + valid  # (batch,)
    # The newest position <= end - 1 that lands on each slot, as an index into the new tokens.
    newest = (end[:, None] - 1) - jnp.mod(end[:, None] - 1 - slots, self.cache_size)
    index = newest - state.length[:, None]
    takes_new = (index >= 0) & (index < valid[:, None])
    safe = jnp.clip(index, 0, time - 1)[..., None, None]
    pick = lambda new, old: jnp.where(
        takes_new[..., None, None],
        jnp.take_along_axis(new.astype(jnp.float32), safe, axis=1), old)
    return KVCache(pick(k, state.keys), pick(v, state.values), end)
