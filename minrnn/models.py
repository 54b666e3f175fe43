"""A token language model built from `minrnn.blocks.ResidualBlock`.

    tokens -> Embed -> ResidualBlock x num_layers -> RMSNorm -> output head -> logits

The output head is the transposed embedding (tied) or its own linear layer. Like the blocks,
the model runs a whole sequence in parallel (`__call__`) or one token at a time (`step`), with
a decoding state of constant size: one `BlockState` per layer. The training loop scores it
through `target_log_probs`, which with `softmax_chunk_size` never builds the
`(batch, time, vocab)` logits (WikiText-103's 267,735 words).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.blocks import BlockState, ResidualBlock
from minrnn.ops.chunked_softmax import check_chunk_size, scored_targets
from minrnn.srupp import build_srupp_model
from minrnn.transformer import TransformerLM

ModelState = list[BlockState]


class LanguageModel(nnx.Module):
  """Predicts the next token at every position.

  Args:
    vocab_size: number of token ids.
    features: model width (`d_model`).
    num_layers: number of residual blocks.
    cell: the recurrent cell's name in `minrnn.registry`.
    cell_kwargs: extra constructor arguments of the cell.
    conv_kernel_size: causal conv taps in each block (0: no conv).
    mlp_expansion: gated MLP width as a multiple of `features`.
    dropout: dropout rate inside the blocks (active only when `rngs` is passed to `__call__`).
    tie_embeddings: use the transposed embedding as the output head.
    implementation: `minrnn.ops.linear_scan` path for parallel mode (None: platform default).
    softmax_chunk_size: positions `target_log_probs` scores at once; None scores all of them
      from the full `(batch, time, vocab)` logits. With a number it holds a few float32
      `(softmax_chunk_size, vocab_size)` arrays instead (see `minrnn.chunked_softmax`).
    dtype: compute dtype, e.g. `jnp.bfloat16` for mixed precision (None: float32).
      Logits and recurrent carries are float32 whatever it is.
    param_dtype: parameter dtype.
    rngs: parameter initialisation keys.
  """

  def __init__(self, vocab_size: int, *, features: int, num_layers: int, cell: str,
               cell_kwargs: Mapping[str, Any] | None = None, conv_kernel_size: int = 4,
               mlp_expansion: int = 4, dropout: float = 0.0, tie_embeddings: bool = True,
               implementation: str | None = None, softmax_chunk_size: int | None = None,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
    if softmax_chunk_size is not None:
      check_chunk_size(softmax_chunk_size, "softmax_chunk_size")
    self.vocab_size = vocab_size
    self.softmax_chunk_size = softmax_chunk_size
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    # GPT-2's small embedding init: with a tied head, logits start near uniform.
    self.embed = nnx.Embed(vocab_size, features,
                           embedding_init=nnx.initializers.normal(stddev=0.02), **common)
    self.blocks = nnx.List([
        ResidualBlock(features, cell=cell, cell_kwargs=cell_kwargs,
                      conv_kernel_size=conv_kernel_size, mlp_expansion=mlp_expansion,
                      dropout=dropout, implementation=implementation, **common)
        for _ in range(num_layers)
    ])
    self.norm = nnx.RMSNorm(features, **common)
    self.head = (None if tie_embeddings
                 else nnx.Linear(features, vocab_size, use_bias=False, **common))

  def initialize_state(self, batch_size: int) -> ModelState:
    """The decoding state before the first token."""
    return [block.initialize_state(batch_size) for block in self.blocks]

  def _logits(self, x: jax.Array) -> jax.Array:
    """The last block's output `(..., features)` -> float32 logits `(..., vocab_size)`."""
    x = self.norm(x)
    logits = self.embed.attend(x) if self.head is None else self.head(x)
    return logits.astype(jnp.float32)

  def _check_tokens(self, tokens: jax.Array, rank: int, shape: str) -> None:
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
      `(logits, state)`: float32 `(batch, time, vocab_size)` and the state after the last token.
    """
    x, new_state = self._hidden(tokens, state, rngs)
    return self._logits(x), new_state

  def target_log_probs(self, tokens: jax.Array, targets: jax.Array,
                       state: ModelState | None = None, *, rngs: nnx.Rngs | None = None
                       ) -> tuple[jax.Array, jax.Array, ModelState]:
    """The training loop's scores: tokens and targets int `(batch, time)` -> `(log_probs,
    top, state)`, log_probs float32 `(batch, time)` = log p(target), top bool `(batch, time)`
    whether the target is a most likely token (accuracy). `state` and `rngs` as in `__call__`.

    With `softmax_chunk_size` the positions are scored in chunks, so the `(batch, time,
    vocab)` logits are never built, in the forward or the backward pass; otherwise they are
    the full logits' cross-entropy.
    """
    x, new_state = self._hidden(tokens, state, rngs)
    log_probs, top = scored_targets(x, targets, self._logits, self.softmax_chunk_size)
    return log_probs, top, new_state

  def _hidden(self, tokens: jax.Array, state: ModelState | None,
              rngs: nnx.Rngs | None) -> tuple[jax.Array, ModelState]:
    """tokens int `(batch, time)` -> the last block's output `(batch, time, features)` and the
    state after the last token."""
    self._check_tokens(tokens, 2, "(batch, time)")
    if state is None:
      state = self.initialize_state(tokens.shape[0])
    x = self.embed(tokens)
    new_state = []
    for block, block_state in zip(self.blocks, state):
      x, block_state = block(x, block_state, rngs=rngs)
      new_state.append(block_state)
    return x, new_state

  def step(self, state: ModelState, tokens: jax.Array) -> tuple[ModelState, jax.Array]:
    """Step mode: tokens int `(batch,)`.

    Returns `(state, logits)`: the state after the tokens, logits float32 `(batch, vocab_size)`.
    """
    self._check_tokens(tokens, 1, "(batch,)")
    x = self.embed(tokens)
    new_state = []
    for block, block_state in zip(self.blocks, state):
      block_state, x = block.step(block_state, x)
      new_state.append(block_state)
    return new_state, self._logits(x)


_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def dtype_from_name(name: str) -> Dtype:
  """`"float32"` or `"bfloat16"` as a JAX dtype."""
  if name not in _DTYPES:
    raise ValueError(f"Unknown dtype {name!r}; choose one of {sorted(_DTYPES)}.")
  return _DTYPES[name]


def build_model(model: Any, vocab_size: int, seed: int, implementation: Any = None
                ) -> LanguageModel | TransformerLM:
  """A `LanguageModel` from a config's `model` section (see `configs/`); with
  `model.cell = "transformer"` the attention baseline `minrnn.transformer.TransformerLM`.
  `implementation` (a scan path or spec) replaces `model.implementation` when given."""
  if model.cell == "transformer":
    # Attention is not a recurrent cell: it has its own model, built from the same section.
    return TransformerLM(
        vocab_size, features=model.features, num_layers=model.num_layers,
        mlp_expansion=model.mlp_expansion, dropout=model.dropout,
        tie_embeddings=model.tie_embeddings, softmax_chunk_size=model.softmax_chunk_size,
        dtype=dtype_from_name(model.dtype), rngs=nnx.Rngs(seed), **dict(model.cell_kwargs))
  if model.cell == "srupp":
    # SRU++ puts attention inside the recurrence's input projection: its own model.
    return build_srupp_model(model, vocab_size, seed, dtype_from_name(model.dtype))
  implementation = model.implementation if implementation is None else implementation
  return LanguageModel(
      vocab_size,
      features=model.features,
      num_layers=model.num_layers,
      cell=model.cell,
      cell_kwargs=dict(model.cell_kwargs),
      conv_kernel_size=model.conv_kernel_size,
      mlp_expansion=model.mlp_expansion,
      dropout=model.dropout,
      tie_embeddings=model.tie_embeddings,
      implementation=implementation,
      softmax_chunk_size=model.softmax_chunk_size,
      dtype=dtype_from_name(model.dtype),
      rngs=nnx.Rngs(seed),
  )
