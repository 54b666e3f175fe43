"""Adaptive input embeddings and adaptive softmax, tied (Baevski & Auli, 2019, arXiv 1809.10853;
Grave et al., 2017, arXiv 1609.04309), as SRU++ and Transformer-XL use them on WikiText-103.

The vocabulary, sorted by frequency, is cut into clusters at `cutoffs`, e.g. 19997 / 39997 /
199997 for WikiText-103's 267,735 words: ids `[0, 19997)` form the head, the rest three tail
clusters. Cluster i has embeddings of width `embed_features // div_val**i` and a projection to
the model width; frequent words get wide vectors, rare ones narrow. The softmax reuses the same
embeddings and projections (tied): the head scores the head words and one logit per tail
cluster; a word in tail cluster i has `log p = log p_head(cluster i) + log p_i(word)`.

Embedding dropout (`dropout`, SRU++'s `emb_dropout`), where the official SRU++ code applies it
(asappresearch/sru, `experiments/srupp_experiments/embedding.py`, from Transformer-XL): on each
word's cluster-width vector before its projection to the model width, and on each cluster's
projected hidden state `h P_iᵀ` before that cluster's softmax weights. Only with `rngs`.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.ops.chunked_softmax import check_chunk_size, map_chunks


# Positions scored at once by `AdaptiveEmbedding.target_log_probs`.
DEFAULT_CHUNK_SIZE = 1024


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
    chunk_size: positions `target_log_probs` scores at once; it holds about two float32
      `(chunk_size, vocab_size)` arrays' worth (over all clusters) at a time: 2.3 GB at 1024
      positions of WikiText-103's 267,735 words.
    dropout: the embedding dropout (see the module docstring).
    dtype, param_dtype: compute and parameter dtypes; log-probabilities are float32.
    rngs: parameter keys.
  """

  def __init__(self, vocab_size: int, features: int, *, cutoffs: Sequence[int],
               div_val: int = 4, embed_features: int | None = None,
               chunk_size: int = DEFAULT_CHUNK_SIZE, dropout: float = 0.0,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    check_chunk_size(chunk_size)
    self.bounds = cluster_bounds(vocab_size, cutoffs)
    self.chunk_size = chunk_size
    self.vocab_size = vocab_size
    self.features = features
    self.dtype = dtype
    widths = [max(1, (embed_features or features) // div_val**i)
              for i in range(len(self.bounds) - 1)]
    self.widths = tuple(widths)
    self.dropout = nnx.Dropout(dropout)
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

  def _drop(self, x: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
    return self.dropout(x, deterministic=rngs is None, rngs=rngs)

  def embed(self, tokens: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
    """int `(...)` ids -> `(..., features)` in the compute dtype (float32 if None); with
    `rngs`, the embedding dropout on the cluster-width vectors."""
    dtype = self.dtype or jnp.float32
    out = jnp.zeros(tokens.shape + (self.features,), dtype)
    for i, (start, end) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
      inside = (tokens >= start) & (tokens < end)
      local = jnp.clip(tokens - start, 0, end - start - 1)
      vectors = jnp.take(self.embeddings[i][...], local, axis=0).astype(dtype)
      vectors = self._drop(vectors, rngs)
      projected = vectors @ self.projections[i][...].astype(dtype)
      out = out + jnp.where(inside[..., None], projected, 0)
    return out

  def _reduce(self, h: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
    """`(..., features)` -> `(..., sum of widths)`: every cluster's `h P_iᵀ`, side by side in
    the compute dtype, with the embedding dropout when `rngs` is given."""
    dtype = self.dtype or h.dtype
    reduced = jnp.concatenate([h.astype(dtype) @ p[...].astype(dtype).T
                               for p in self.projections], axis=-1)
    return self._drop(reduced, rngs)

  def _split(self, reduced: jax.Array) -> list[jax.Array]:
    """`_reduce`'s output as one `(..., width_i)` array per cluster."""
    return jnp.split(reduced, list(itertools.accumulate(self.widths[:-1])), axis=-1)

  def _scores(self, reduced: jax.Array, weight: jax.Array, bias: jax.Array) -> jax.Array:
    """float32 logits `(..., rows of weight)` from a cluster's `h P_iᵀ` `(..., width_i)`."""
    dtype = self.dtype or reduced.dtype
    return ((reduced.astype(dtype) @ weight.astype(dtype).T).astype(jnp.float32)
            + bias.astype(jnp.float32))

  def _head_log_probs(self, reduced: jax.Array) -> jax.Array:
    """float32 `(..., shortlist + num_tails)` from the head cluster's `h P_0ᵀ`: the head words,
    then one entry per tail cluster."""
    weight = jnp.concatenate([self.embeddings[0][...], self.cluster_logits[...]], 0)
    bias = jnp.concatenate([self.biases[0][...], self.cluster_bias[...]], 0)
    return jax.nn.log_softmax(self._scores(reduced, weight, bias), axis=-1)

  def _tail_log_probs(self, reduced: jax.Array, i: int) -> jax.Array:
    """float32 `(..., words in cluster i)`: log p(word | cluster i) from `h P_iᵀ`, for tail
    cluster i >= 1."""
    scores = self._scores(reduced, self.embeddings[i][...], self.biases[i][...])
    return jax.nn.log_softmax(scores, axis=-1)

  def log_probs(self, h: jax.Array) -> jax.Array:
    """`(..., features)` -> float32 log-probabilities `(..., vocab_size)` (they sum to one).

    This builds the whole `(..., vocab_size)` tensor: use it for a few positions (generation);
    losses over many positions use `target_log_probs`.
    """
    reduced = self._split(self._reduce(h))
    head = self._head_log_probs(reduced[0])
    shortlist = self.bounds[1]
    parts = [head[..., :shortlist]]
    for i in range(1, len(self.bounds) - 1):
      parts.append(head[..., shortlist + i - 1, None] + self._tail_log_probs(reduced[i], i))
    return jnp.concatenate(parts, axis=-1)

  def target_log_probs(self, h: jax.Array, targets: jax.Array, *, with_max: bool = False,
                       rngs: nnx.Rngs | None = None
                       ) -> jax.Array | tuple[jax.Array, jax.Array]:
    """log p(target) without the `(..., vocab_size)` tensor: equal to
    `log_probs(h)[..., targets]`, gradients included.

    The positions are scored `chunk_size` at a time (`minrnn.ops.chunked_softmax.map_chunks`), so
    the forward and the backward pass hold O(chunk_size x vocab_size) floats at once, not
    O(positions x vocab_size): each tail cluster's log-softmax is needed only for its
    normaliser and the target's entry.

    Args:
      h: `(..., features)` hidden states.
      targets: int `(...)` ids in `[0, vocab_size)`, the same leading shape as `h`. Ids
        outside that range (e.g. at positions a loss weighs by 0) give a finite, meaningless
        value.
      with_max: also return the largest log-probability over the vocabulary at each position
        (the target is a most likely word where it equals the target's).
      rngs: dropout keys; None turns the embedding dropout off.

    Returns:
      float32 `(...)` log p(target), and with `with_max` the float32 `(...)` maxima.
    """
    if h.shape[-1] != self.features:
      raise ValueError(f"h must be (..., {self.features}), got h {tuple(h.shape)}.")
    # The projections to the clusters' widths (sum of widths <= 2 x embed_features) run on
    # every position at once; only the vocabulary-wide scores go in chunks.
    log_p, best = map_chunks(self._reduce(h, rngs), targets, self._score_chunk, self.chunk_size)
    return (log_p, best) if with_max else log_p

  def _score_chunk(self, reduced: jax.Array, targets: jax.Array
                   ) -> tuple[jax.Array, jax.Array]:
    """`_reduce`'s output `(chunk, sum of widths)`, targets int `(chunk,)` -> float32
    `(chunk,)` log p(target) and the largest log-probability, computed like `log_probs` (the
    same sums, so equal values)."""
    take = lambda values, ids: jnp.take_along_axis(values, ids[:, None], axis=-1)[:, 0]
    reduced = self._split(reduced)
    head = self._head_log_probs(reduced[0])
    shortlist = self.bounds[1]
    log_p = take(head, jnp.clip(targets, 0, shortlist - 1))
    best = jnp.max(head[:, :shortlist], axis=-1)
    for i in range(1, len(self.bounds) - 1):
      start, end = self.bounds[i], self.bounds[i + 1]
      tail = self._tail_log_probs(reduced[i], i)
      cluster = head[:, shortlist + i - 1]
      inside = (targets >= start) & (targets < end)
      local = jnp.clip(targets - start, 0, end - start - 1)
      log_p = jnp.where(inside, cluster + take(tail, local), log_p)
      best = jnp.maximum(best, cluster + jnp.max(tail, axis=-1))
    return log_p, best
