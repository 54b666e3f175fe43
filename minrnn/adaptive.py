"""Adaptive input embeddings and adaptive softmax, tied (Baevski & Auli, 2019, arXiv 1809.10853;
Grave et al., 2017, arXiv 1609.04309), as SRU++ and Transformer-XL use them on WikiText-103.

The vocabulary, sorted by frequency, is cut into clusters at `cutoffs`, e.g. 19997 / 39997 /
199997 for WikiText-103's 267,735 words: ids `[0, 19997)` form the head, the rest three tail
clusters. Cluster i has embeddings of width `embed_features // div_val**i` and a projection to
the model width; frequent words get wide vectors, rare ones narrow. The softmax reuses the same
embeddings and projections (tied): the head scores the head words and one logit per tail
cluster; a word in tail cluster i has `log p = log p_head(cluster i) + log p_i(word)`.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype


def cluster_bounds(vocab_size: int, cutoffs: Sequence[int]) -> tuple[int, ...]:
  """`(0, *cutoffs, vocab_size)`; a ValueError explains cutoffs that do not split the vocab."""
  cutoffs = tuple(int(c) for c in cutoffs)
  bounds = (0, *cutoffs, vocab_size)
  if not cutoffs or any(b >= e for b, e in zip(bounds[:-1], bounds[1:])):
    raise ValueError(
        f"cutoffs must be increasing ids strictly between 0 and vocab_size={vocab_size}, got "
        f"{list(cutoffs)}. WikiText-103 uses [19997, 39997, 199997]; lower them for a smaller "
        "vocabulary.")
  return bounds


class AdaptiveEmbedding(nnx.Module):
  """Adaptive input and tied adaptive softmax in one module (they share every weight).

  Args:
    vocab_size: number of token ids, sorted by falling frequency.
    features: model width.
    embed_features: width of the head cluster's embeddings (default: features); cluster i has
      `embed_features // div_val**i`, projected to `features`.
    cutoffs: cluster boundaries (see the module docstring).
    div_val: the width divisor from one cluster to the next.
    dtype, param_dtype: compute and parameter dtypes; log-probabilities are float32.
    rngs: parameter keys.
  """

  def __init__(self, vocab_size: int, features: int, *, cutoffs: Sequence[int],
               div_val: int = 4, embed_features: int | None = None,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    self.bounds = cluster_bounds(vocab_size, cutoffs)
    self.vocab_size = vocab_size
    self.features = features
    self.dtype = dtype
    widths = [max(1, (embed_features or features) // div_val**i)
              for i in range(len(self.bounds) - 1)]
    normal = nnx.initializers.normal(stddev=0.02)
    self.embeddings = nnx.List([
        nnx.Param(normal(rngs.params(), (end - start, width), param_dtype))
        for start, end, width in zip(self.bounds[:-1], self.bounds[1:], widths)])
    # (width_i, features): the input maps e -> e P_i, the softmax maps h -> h P_iᵀ.
    self.projections = nnx.List([
        nnx.Param(nnx.initializers.xavier_uniform()(rngs.params(), (width, features),
                                                      param_dtype))
        for width in widths])
    num_tails = len(self.bounds) - 2
    self.cluster_logits = nnx.Param(jnp.zeros((num_tails, widths[0]), param_dtype))
    self.biases = nnx.List([nnx.Param(jnp.zeros((end - start,), param_dtype))
                            for start, end in zip(self.bounds[:-1], self.bounds[1:])])
    self.cluster_bias = nnx.Param(jnp.zeros((num_tails,), param_dtype))

  def embed(self, tokens: jax.Array) -> jax.Array:
    """int `(...)` ids -> `(..., features)` in the compute dtype (float32 if None)."""
    dtype = self.dtype or jnp.float32
    out = jnp.zeros(tokens.shape + (self.features,), dtype)
    for i, (start, end) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
      inside = (tokens >= start) & (tokens < end)
      local = jnp.clip(tokens - start, 0, end - start - 1)
      vectors = jnp.take(self.embeddings[i][...], local, axis=0).astype(dtype)
      projected = vectors @ self.projections[i][...].astype(dtype)
      out = out + jnp.where(inside[..., None], projected, 0)
    return out

  def log_probs(self, h: jax.Array) -> jax.Array:
    """`(..., features)` -> float32 log-probabilities `(..., vocab_size)` (they sum to one)."""
    dtype = self.dtype or h.dtype

    def scores(i, weight, bias):
      reduced = h.astype(dtype) @ self.projections[i][...].astype(dtype).T
      return (reduced @ weight.astype(dtype).T).astype(jnp.float32) + bias.astype(jnp.float32)

    head_weight = jnp.concatenate([self.embeddings[0][...], self.cluster_logits[...]], 0)
    head_bias = jnp.concatenate([self.biases[0][...], self.cluster_bias[...]], 0)
    head = jax.nn.log_softmax(scores(0, head_weight, head_bias), axis=-1)
    shortlist = self.bounds[1]
    parts = [head[..., :shortlist]]
    for i in range(1, len(self.bounds) - 1):
      tail = jax.nn.log_softmax(scores(i, self.embeddings[i][...], self.biases[i][...]), -1)
      parts.append(head[..., shortlist + i - 1, None] + tail)
    return jnp.concatenate(parts, axis=-1)
