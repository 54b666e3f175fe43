"""A causal Transformer language model: the attention baseline of "Were RNNs All We Needed?".

    tokens -> Embed -> [x + Attn(RMSNorm(x)); x + GatedMLP(RMSNorm(x))] x num_layers
           -> RMSNorm -> output head -> logits

Pre-norm blocks like minrnn's recurrent ones (same `GatedMLP`), multi-head causal
self-attention through `jax.nn.dot_product_attention`, and rotary position embeddings (RoPE),
which need no maximum length, so a model trained on short strings runs on long ones (the
formal-language tests). Config: `model.cell = "transformer"`, `model.cell_kwargs.num_heads`.
It runs whole sequences only (no step mode, so no constant-size decoding state).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.blocks import GatedMLP
from minrnn.ops.chunked_softmax import check_chunk_size, scored_targets


def rotary(x: jax.Array, base: float = 10_000.0) -> jax.Array:
  """RoPE on `(batch, time, heads, head_dim)`; positions are 0..time-1, head_dim even."""
  half = x.shape[-1] // 2
  freqs = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = jnp.arange(x.shape[1], dtype=jnp.float32)[:, None] * freqs  # (time, half)
  cos, sin = jnp.cos(angles)[None, :, None], jnp.sin(angles)[None, :, None]
  x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
  return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).astype(x.dtype)


class CausalSelfAttention(nnx.Module):
  """Multi-head causal self-attention: `(batch, time, features)` in and out."""

  def __init__(self, features: int, num_heads: int, *, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    if features % num_heads or (features // num_heads) % 2:
      raise ValueError(
          f"features={features} must split into num_heads={num_heads} heads of even width "
          "(rotary embeddings rotate pairs); change model.features or cell_kwargs.num_heads.")
    self.num_heads = num_heads
    common = dict(use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.qkv = nnx.Linear(features, 3 * features, **common)
    self.out = nnx.Linear(features, features, **common)

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, time, features = x.shape
    q, k, v = jnp.split(self.qkv(x).reshape(batch, time, 3 * self.num_heads, -1), 3, axis=2)
    y = jax.nn.dot_product_attention(rotary(q), rotary(k), v, is_causal=True)
    return self.out(y.reshape(batch, time, features))


class TransformerBlock(nnx.Module):
  """`x + Dropout(Attn(RMSNorm(x)))`, then `x + Dropout(GatedMLP(RMSNorm(x)))`."""

  def __init__(self, features: int, *, num_heads: int, mlp_expansion: int, dropout: float,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.attn_norm = nnx.RMSNorm(features, **common)
    self.attn = CausalSelfAttention(features, num_heads, **common)
    self.mlp_norm = nnx.RMSNorm(features, **common)
    self.mlp = GatedMLP(features, mlp_expansion, **common)
    self.dropout = nnx.Dropout(dropout)

  def __call__(self, x: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
    drop = lambda y: self.dropout(y.astype(x.dtype), deterministic=rngs is None, rngs=rngs)
    x = x + drop(self.attn(self.attn_norm(x)))
    return x + drop(self.mlp(self.mlp_norm(x)))


class TransformerLM(nnx.Module):
  """Predicts the next token at every position; `LanguageModel`'s parallel interface.

  Args:
    vocab_size: number of token ids.
    features: model width.
    num_layers: number of blocks.
    num_heads: attention heads per block.
    mlp_expansion: gated MLP width as a multiple of `features`.
    dropout: dropout rate on both residual branches (active only when `rngs` is passed).
    tie_embeddings: use the transposed embedding as the output head.
    softmax_chunk_size: positions `target_log_probs` scores at once (None: all, from the full
      logits); as in `minrnn.models.LanguageModel`.
    dtype: compute dtype (None: float32); logits are float32.
    param_dtype: parameter dtype.
    rngs: parameter initialisation keys.
  """

  def __init__(self, vocab_size: int, *, features: int, num_layers: int, num_heads: int = 6,
               mlp_expansion: int = 4, dropout: float = 0.0, tie_embeddings: bool = True,
               softmax_chunk_size: int | None = None, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    if softmax_chunk_size is not None:
      check_chunk_size(softmax_chunk_size, "softmax_chunk_size")
    self.vocab_size = vocab_size
    self.softmax_chunk_size = softmax_chunk_size
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.embed = nnx.Embed(vocab_size, features,
                           embedding_init=nnx.initializers.normal(stddev=0.02), **common)
    self.blocks = nnx.List([
        TransformerBlock(features, num_heads=num_heads, mlp_expansion=mlp_expansion,
                         dropout=dropout, **common)
        for _ in range(num_layers)
    ])
    self.norm = nnx.RMSNorm(features, **common)
    self.head = (None if tie_embeddings
                 else nnx.Linear(features, vocab_size, use_bias=False, **common))

  def __call__(self, tokens: jax.Array, state: None = None, *,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, None]:
    """tokens int `(batch, time)` -> `(logits, None)`, logits float32 `(batch, time, vocab)`.

    `state` must be None: attention attends within `tokens` only.
    """
    return self._logits(self._hidden(tokens, state, rngs)), None

  def target_log_probs(self, tokens: jax.Array, targets: jax.Array, state: None = None, *,
                       rngs: nnx.Rngs | None = None) -> tuple[jax.Array, jax.Array, None]:
    """`(log_probs, top, None)` as `minrnn.models.LanguageModel.target_log_probs` computes
    them, in chunks of `softmax_chunk_size` positions when it is set."""
    log_probs, top = scored_targets(self._hidden(tokens, state, rngs), targets, self._logits,
                                    self.softmax_chunk_size)
    return log_probs, top, None

  def _hidden(self, tokens: jax.Array, state: None, rngs: nnx.Rngs | None) -> jax.Array:
    """tokens int `(batch, time)` -> the last block's output `(batch, time, features)`."""
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"tokens must be integer ids of shape (batch, time), got "
                       f"{tokens.dtype} {tuple(tokens.shape)}.")
    if state is not None:
      raise ValueError("TransformerLM keeps no state between calls; pass state=None and the "
                       "whole context in tokens.")
    x = self.embed(tokens)
    for block in self.blocks:
      x = block(x, rngs)
    return x

  def _logits(self, x: jax.Array) -> jax.Array:
    """The last block's output `(..., features)` -> float32 logits `(..., vocab)`."""
    x = self.norm(x)
    logits = self.embed.attend(x) if self.head is None else self.head(x)
    return logits.astype(jnp.float32)
