"""The SRU++ language model (Lei, 2021, arXiv 2102.12459), as its official enwik8 and
WikiText-103 scripts build it:

    tokens -> embedding -> dropout -> SRUppLayer x num_layers -> dropout -> output

The output is a linear layer (enwik8), the transposed embedding (tied), or, with
`adaptive_cutoffs`, the tied adaptive input and softmax of `minrnn.adaptive` (WikiText-103).
Attention sits in every `attention_every`-th layer (counting from 1); the others use the
low-rank projection. The model state, carried from one segment to the next, is each layer's SRU
state and attention memory. Like `minrnn.models.LanguageModel`, `__call__(tokens, state, *,
rngs)` returns `(scores, state)`; with the adaptive softmax the scores are log-probabilities
(normalised, so a softmax cross-entropy on them is the model's loss). The training loop
prefers `target_log_probs(tokens, targets, state, *, rngs)`, which scores only the targets:
with the adaptive softmax the `(batch, time, vocab)` log-probabilities never exist at once.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from flax.typing import Dtype

from minrnn.adaptive import DEFAULT_CHUNK_SIZE, AdaptiveEmbedding
from minrnn.cells.srupp import LayerState, SRUppLayer


class SRUppLanguageModel(nnx.Module):
  """Args:
    vocab_size: number of token ids.
    features: model width (the official `n_d`).
    num_layers: SRU++ layers.
    proj_features: attention width (`n_proj`).
    attention_every: attention in layers k, 2k, ... (1: every layer).
    memory_length: attention memory (previous inputs) per attention layer; 0 for none.
    dropout: embedding and output dropout, and each layer's (see `SRUppLayer`).
    attn_dropout: dropout on attention probabilities.
    highway_bias: initial highway bias of every layer.
    layer_norm: each layer layer-normalises its input (the official `--layer_norm`).
    output: "linear" (own head with bias) or "tied" (transposed embedding).
    adaptive_cutoffs: if given, adaptive input + tied adaptive softmax with these cutoffs.
    div_val: adaptive embedding width divisor.
    embed_features: adaptive head-cluster embedding width (None: features).
    softmax_chunk_size: positions the adaptive softmax scores at once in `target_log_probs`
      (see `AdaptiveEmbedding`).
    implementation: SRU recurrence path (None: the platform's).
    dtype, param_dtype: compute and parameter dtypes; scores and states are float32.
    rngs: parameter keys.
  """

  def __init__(self, vocab_size: int, *, features: int, num_layers: int, proj_features: int,
               attention_every: int = 1, memory_length: int = 0, dropout: float = 0.0,
               attn_dropout: float = 0.0, highway_bias: float = -2.0, layer_norm: bool = False,
               output: str = "linear",
               adaptive_cutoffs: Sequence[int] | None = None, div_val: int = 4,
               embed_features: int | None = None,
               softmax_chunk_size: int = DEFAULT_CHUNK_SIZE,
               implementation: str | None = None, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    if attention_every < 1:
      raise ValueError(f"attention_every must be >= 1, got {attention_every}.")
    if output not in ("linear", "tied"):
      raise ValueError(f"output must be 'linear' or 'tied', got {output!r}.")
    self.vocab_size = vocab_size
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.adaptive = (None if adaptive_cutoffs is None else AdaptiveEmbedding(
        vocab_size, features, cutoffs=adaptive_cutoffs, div_val=div_val,
        embed_features=embed_features, chunk_size=softmax_chunk_size, **common))
    self.embed = (nnx.Embed(vocab_size, features,
                            embedding_init=nnx.initializers.normal(stddev=0.02), **common)
                  if self.adaptive is None else None)
    self.layers = nnx.List([
        SRUppLayer(features, features, proj_features=proj_features,
                   attention=(i + 1) % attention_every == 0,
                   memory_length=memory_length if (i + 1) % attention_every == 0 else 0,
                   dropout=dropout, attn_dropout=attn_dropout, highway_bias=highway_bias,
                   highway_dropout=i + 1 < num_layers, layer_norm=layer_norm,
                   implementation=implementation, **common)
        for i in range(num_layers)])
    self.head = (nnx.Linear(features, vocab_size, **common)
                 if self.adaptive is None and output == "linear" else None)
    self.dropout = nnx.Dropout(dropout)

  def initialize_state(self, batch_size: int) -> list[LayerState]:
    return [layer.initialize_state(batch_size) for layer in self.layers]

  def __call__(self, tokens: jax.Array, state: list[LayerState] | None = None, *,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, list[LayerState]]:
    """tokens int `(batch, time)` -> `(scores float32 (batch, time, vocab), state)`.

    Dropout is active only when `rngs` (stream `dropout`) is given.
    """
    x, new_state = self._hidden(tokens, state, rngs)
    if self.adaptive is not None:
      return self.adaptive.log_probs(x), new_state
    scores = self.head(x) if self.head is not None else self.embed.attend(x)
    return scores.astype(jnp.float32), new_state

  def target_log_probs(self, tokens: jax.Array, targets: jax.Array,
                       state: list[LayerState] | None = None, *, rngs: nnx.Rngs | None = None
                       ) -> tuple[jax.Array, jax.Array, list[LayerState]]:
    """The training loop's scores: tokens and targets int `(batch, time)` -> `(log_probs,
    top, state)`, log_probs float32 `(batch, time)` = log p(target), top bool `(batch, time)`
    whether the target is a most likely token (accuracy). `state` and `rngs` as in `__call__`.

    With the adaptive softmax the positions are scored in chunks (`softmax_chunk_size`), so the
    `(batch, time, vocab)` log-probabilities are never built, in the forward or the backward
    pass; otherwise they come from the full scores.
    """
    if self.adaptive is None:
      scores, new_state = self(tokens, state, rngs=rngs)
      log_probs = -optax.softmax_cross_entropy_with_integer_labels(scores, targets)
      return log_probs, jnp.argmax(scores, -1) == targets, new_state
    x, new_state = self._hidden(tokens, state, rngs)
    log_probs, best = self.adaptive.target_log_probs(x, targets, with_max=True)
    return log_probs, log_probs >= best, new_state

  def _hidden(self, tokens: jax.Array, state: list[LayerState] | None,
              rngs: nnx.Rngs | None) -> tuple[jax.Array, list[LayerState]]:
    """tokens int `(batch, time)` -> the last layer's output `(batch, time, features)` after
    dropout, and the new state."""
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"tokens must be integer ids of shape (batch, time), got {tokens.dtype} "
                       f"{tuple(tokens.shape)}.")
    if state is None:
      state = self.initialize_state(tokens.shape[0])
    deterministic = rngs is None
    x = self.adaptive.embed(tokens) if self.adaptive is not None else self.embed(tokens)
    x = self.dropout(x, deterministic=deterministic, rngs=rngs)
    new_state = []
    for layer, layer_state in zip(self.layers, state):
      x, layer_state = layer(x, layer_state, rngs=rngs)
      new_state.append(layer_state)
    return self.dropout(x, deterministic=deterministic, rngs=rngs), new_state

  def step(self, state: list[LayerState], tokens: jax.Array
           ) -> tuple[list[LayerState], jax.Array]:
    """Step mode for generation (no dropout): tokens int `(batch,)` -> `(state, scores)`,
    scores float32 `(batch, vocab)`. The attention memory keeps the last `memory_length`
    inputs, so generation sees the context training saw."""
    if tokens.ndim != 1:
      raise ValueError(f"tokens must have shape (batch,), got {tuple(tokens.shape)}.")
    scores, state = self(tokens[:, None], state)
    return state, scores[:, 0]


def build_srupp_model(model: Any, vocab_size: int, seed: int,
                      dtype: Dtype | None = None) -> SRUppLanguageModel:
  """An `SRUppLanguageModel` from a config's `model` section (see `configs/enwik8/`)."""
  cutoffs = model.adaptive_cutoffs
  return SRUppLanguageModel(
      vocab_size, features=model.features, num_layers=model.num_layers,
      proj_features=model.proj_features, attention_every=model.attention_every,
      memory_length=model.memory_length, dropout=model.dropout,
      attn_dropout=model.attn_dropout, highway_bias=model.highway_bias,
      layer_norm=model.layer_norm, output=model.output,
      adaptive_cutoffs=None if cutoffs is None else tuple(cutoffs), div_val=model.div_val,
      embed_features=model.embed_features,
      softmax_chunk_size=model.softmax_chunk_size,
      implementation=model.implementation, dtype=dtype,
      rngs=nnx.Rngs(seed))
