"""The one token language model: every temporal layer, every output head.

    tokens -> embedding -> Dropout -> ResidualBlock x num_layers -> Dropout -> [RMSNorm] -> head

The embedding and head are a tied `nnx.Embed` (logits from its transpose), an embedding with its
own linear head (with or without bias), or the tied adaptive input and softmax of
`minrnn.layers.adaptive` (WikiText-103's vocabulary). The same class is the minGRU/minLSTM/GRU/
LSTM/SRU/Mamba residual LM, the Transformer baseline and SRU++ (blocks without norm or residual,
no final norm, `io_dropout` on the embeddings and the last hidden state, as its official code).

The model runs a whole sequence in parallel (`__call__`) or one token at a time (`step`), with a
decoding state of constant size: one `BlockState` per block. The training loop scores it through
`target_log_probs`, which with `softmax_chunk_size` never builds the `(batch, time, vocab)`
scores.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.layers.adaptive import AdaptiveEmbedding
from minrnn.layers.init import FLAX, ParamInit
from minrnn.models.block import BlockState, ResidualBlock
from minrnn.ops.chunked_softmax import check_chunk_size, scored_targets

ModelState = tuple[BlockState, ...]
# (layer index, rngs) -> the block of that layer.
BlockFactory = Callable[[int, nnx.Rngs], ResidualBlock]


class LanguageModel(nnx.Module):
  """Predicts the next token at every position.

  Args:
    vocab_size: number of token ids.
    features: model width.
    num_layers: number of blocks.
    block: builds block i (see `minrnn.models.build`).
    final_norm: RMSNorm before the head.
    io_dropout: dropout on the embeddings and on the last block's output (active only with
      `rngs`); SRU++'s `drop`.
    tie_embeddings: the head is the transposed embedding; else a linear layer.
    head_bias: the untied head has a bias.
    adaptive_cutoffs: if given, the tied adaptive input and softmax with these cluster cutoffs
      (then `tie_embeddings` and `head_bias` do not apply).
    div_val, embed_features: the adaptive embedding's width divisor and head-cluster width.
    emb_dropout: the adaptive embedding's own dropout, inside the adaptive input and softmax
      (SRU++'s `emb_dropout`; see `minrnn.layers.adaptive`); active only with `rngs`.
    softmax_chunk_size: positions `target_log_probs` scores at once; None scores all of them
      from the full `(batch, time, vocab)` scores (the adaptive softmax needs a number).
    dtype: compute dtype (None: float32); scores and recurrent states are float32.
    param_dtype: parameter dtype.
    init: the parameter scheme (`minrnn.layers.init`) of the embedding and the untied head
      (the default: N(0, 0.02) embeddings, as GPT-2); the adaptive embedding keeps its own.
    rngs: parameter initialisation keys.
  """

  def __init__(self, vocab_size: int, *, features: int, num_layers: int, block: BlockFactory,
               final_norm: bool = True, io_dropout: float = 0.0, tie_embeddings: bool = True,
               head_bias: bool = False, adaptive_cutoffs: Sequence[int] | None = None,
               div_val: int = 4, embed_features: int | None = None, emb_dropout: float = 0.0,
               softmax_chunk_size: int | None = None, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, init: ParamInit = FLAX,
               rngs: nnx.Rngs):
    if emb_dropout and adaptive_cutoffs is None:
      raise ValueError(f"emb_dropout={emb_dropout} applies inside the adaptive embedding "
                       "(model.adaptive_cutoffs); without it use model.io_dropout.")
    if softmax_chunk_size is not None:
      check_chunk_size(softmax_chunk_size, "softmax_chunk_size")
    elif adaptive_cutoffs is not None:
      raise ValueError("The adaptive softmax scores targets in chunks: set "
                       "model.softmax_chunk_size (e.g. 1024).")
    self.vocab_size = vocab_size
    self.softmax_chunk_size = softmax_chunk_size
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.adaptive = (None if adaptive_cutoffs is None else AdaptiveEmbedding(
        vocab_size, features, cutoffs=tuple(adaptive_cutoffs), div_val=div_val,
        embed_features=embed_features, chunk_size=softmax_chunk_size, dropout=emb_dropout,
        **common))
    # GPT-2's small embedding init: with a tied head, logits start near uniform.
    embedding_init = {"embedding_init": nnx.initializers.normal(stddev=0.02),
                      **init.embedding()}
    self.embed = (nnx.Embed(vocab_size, features, **embedding_init, **common)
                  if self.adaptive is None else None)
    self.blocks = nnx.List([block(i, rngs) for i in range(num_layers)])
    self.norm = nnx.RMSNorm(features, **common) if final_norm else None
    self.head = (nnx.Linear(features, vocab_size, use_bias=head_bias, **init.dense(features),
                            **common)
                 if self.adaptive is None and not tie_embeddings else None)
    self.io_dropout = nnx.Dropout(io_dropout)

  def initialize_state(self, batch_size: int) -> ModelState:
    """The decoding state before the first token."""
    return tuple(block.initialize_state(batch_size) for block in self.blocks)

  @property
  def context_capacity(self) -> int | None:
    """The most positions the decoding state holds: the smallest `cache_size` of the blocks'
    temporal layers (attention's key-value cache); None when no layer has one (recurrent
    states hold any length). A text longer than this is seen through a sliding window."""
    sizes = [block.temporal.cache_size for block in self.blocks
             if getattr(block.temporal, "cache_size", None) is not None]
    return min(sizes) if sizes else None

  def _embed(self, tokens: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
    if self.adaptive is not None:
      return self.adaptive.embed(tokens, rngs=rngs)
    return self.embed(tokens)

  def _logits(self, x: jax.Array) -> jax.Array:
    """The last block's output `(..., features)` -> float32 logits `(..., vocab_size)` (for the
    adaptive softmax: log-probabilities)."""
    if self.norm is not None:
      x = self.norm(x)
    if self.adaptive is not None:
      return self.adaptive.log_probs(x)
    logits = self.embed.attend(x) if self.head is None else self.head(x)
    return logits.astype(jnp.float32)

  @staticmethod
  def _check_tokens(tokens: jax.Array, rank: int, shape: str) -> None:
    if tokens.ndim != rank or not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(
          f"tokens must be integer ids of shape {shape}, got {tokens.dtype} "
          f"{tuple(tokens.shape)}.")

  def __call__(self, tokens: jax.Array, state: ModelState | None = None, *,
               rngs: nnx.Rngs | None = None) -> tuple[jax.Array, ModelState]:
    """Parallel mode.

    Args:
      tokens: int `(batch, time)`.
      state: the decoding state before `tokens` (None: start of a sequence).
      rngs: dropout keys (stream `dropout`); None turns dropout off.

    Returns:
      `(scores, state)`: float32 `(batch, time, vocab_size)` logits (log-probabilities for the
      adaptive softmax) and the state after the last token.
    """
    x, new_state = self._hidden(tokens, state, rngs)
    return self._logits(x), new_state

  def prefill(self, tokens: jax.Array, state: ModelState | None = None
              ) -> tuple[ModelState, jax.Array]:
    """Parallel mode for generation (no dropout): tokens int `(batch, time)` -> `(state,
    scores)`, the state after the last token and its scores float32 `(batch, vocab_size)`.
    Only the last position is scored, so a long prompt never builds `(batch, time, vocab)`."""
    x, new_state = self._hidden(tokens, state, None)
    return new_state, self._logits(x[:, -1])

  def target_log_probs(self, tokens: jax.Array, targets: jax.Array,
                       state: ModelState | None = None, *, rngs: nnx.Rngs | None = None
                       ) -> tuple[jax.Array, jax.Array, ModelState]:
    """The training loop's scores: tokens and targets int `(batch, time)` -> `(log_probs,
    top, state)`, log_probs float32 `(batch, time)` = log p(target), top bool `(batch, time)`
    whether the target is a most likely token (accuracy). `state` and `rngs` as in `__call__`.

    With `softmax_chunk_size` the positions are scored in chunks, so the `(batch, time,
    vocab)` scores are never built, in the forward or the backward pass; otherwise they are the
    full logits' cross-entropy.
    """
    x, new_state = self._hidden(tokens, state, rngs)
    if self.adaptive is not None:
      if self.norm is not None:
        x = self.norm(x)
      log_probs, best = self.adaptive.target_log_probs(x, targets, with_max=True, rngs=rngs)
      return log_probs, log_probs >= best, new_state
    log_probs, top = scored_targets(x, targets, self._logits, self.softmax_chunk_size)
    return log_probs, top, new_state

  def _hidden(self, tokens: jax.Array, state: ModelState | None,
              rngs: nnx.Rngs | None) -> tuple[jax.Array, ModelState]:
    """tokens int `(batch, time)` -> the last block's output `(batch, time, features)` (after
    `io_dropout`) and the state after the last token."""
    self._check_tokens(tokens, 2, "(batch, time)")
    if state is None:
      state = (None,) * len(self.blocks)
    drop = lambda x: self.io_dropout(x, deterministic=rngs is None, rngs=rngs)
    x = drop(self._embed(tokens, rngs))
    new_state = []
    for block, block_state in zip(self.blocks, state):
      x, block_state = block(x, block_state, rngs=rngs)
      new_state.append(block_state)
    return drop(x), tuple(new_state)

  def step(self, state: ModelState, tokens: jax.Array) -> tuple[ModelState, jax.Array]:
    """Step mode (no dropout): tokens int `(batch,)` -> `(state, scores)`, scores float32
    `(batch, vocab_size)` as `__call__` gives them."""
    self._check_tokens(tokens, 1, "(batch,)")
    x = self._embed(tokens)
    new_state = []
    for block, block_state in zip(self.blocks, state):
      block_state, x = block.step(block_state, x)
      new_state.append(block_state)
    return tuple(new_state), self._logits(x)
