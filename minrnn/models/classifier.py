"""A sequence classifier: one label per padded token sequence (Long Range Arena's ListOps).

    tokens -> embedding -> ResidualBlock x num_layers -> [RMSNorm] -> readout -> Linear -> logits

Every block gets the rows' `seq_lengths`, so each recurrence stops at its row's end: padding
never enters a recurrent state, and the state returned is the one after the last real token.
The readout turns the last block's outputs `(batch, time, features)` into one vector per row:

- `"last"`: the output at the row's last real token, the only position of a causal model that
  has read the whole row (the official minRNN code reads its one-answer tasks there);
- `"mean"`: the mean over the row's real tokens (padding left out).

Either way, what a row's padding holds, and how much of it there is, cannot change its logits.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from minrnn.layers.init import FLAX, ParamInit
from minrnn.models.block import ResidualBlock
from minrnn.ops import padding_mask

# (layer index, rngs) -> the block of that layer.
BlockFactory = Callable[[int, nnx.Rngs], ResidualBlock]
READOUTS = ("last", "mean")


def readout(x: jax.Array, seq_lengths: jax.Array, kind: str) -> jax.Array:
  """One vector per row of `x` `(batch, time, features)` whose row b is valid for
  `t < seq_lengths[b]`: float32 `(batch, features)`. A row of length 0 gives the output at
  position 0 (`"last"`) or zeros (`"mean"`): such rows only pad a batch."""
  if kind == "last":
    index = jnp.maximum(seq_lengths - 1, 0)[:, None, None]
    return jnp.take_along_axis(x, index, axis=1)[:, 0].astype(jnp.float32)
  if kind == "mean":
    mask = padding_mask(seq_lengths, x.shape[1])[..., None]
    total = jnp.sum(jnp.where(mask, x.astype(jnp.float32), 0.0), axis=1)
    return total / jnp.maximum(seq_lengths, 1)[:, None].astype(jnp.float32)
  raise ValueError(f"Unknown readout {kind!r} (model.readout); choose one of {READOUTS}.")


class SequenceClassifier(nnx.Module):
  """Classifies padded token sequences; see the module docstring.

  Args:
    vocab_size: number of token ids.
    num_classes: number of labels.
    features: model width.
    num_layers: number of blocks.
    block: builds block i (see `minrnn.models.build`).
    readout: `"last"` or `"mean"` (see the module docstring).
    final_norm: RMSNorm before the readout.
    head_bias: the output layer has a bias.
    dtype: compute dtype (None: float32); logits and recurrent states are float32.
    param_dtype: parameter dtype.
    init: the parameter scheme (`minrnn.layers.init`) of the embedding and the output layer
      (the default: a N(0, 0.02) embedding, as the language model's).
    rngs: parameter initialisation keys.
  """

  def __init__(self, vocab_size: int, num_classes: int, *, features: int, num_layers: int,
               block: BlockFactory, readout: str = "last", final_norm: bool = True,
               head_bias: bool = True, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, init: ParamInit = FLAX, rngs: nnx.Rngs):
    if readout not in READOUTS:
      raise ValueError(f"Unknown readout {readout!r} (model.readout); choose one of "
                       f"{READOUTS}.")
    self.vocab_size, self.num_classes, self.readout = vocab_size, num_classes, readout
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.embed = nnx.Embed(vocab_size, features, **{
        "embedding_init": nnx.initializers.normal(stddev=0.02), **init.embedding()}, **common)
    self.blocks = nnx.List([block(i, rngs) for i in range(num_layers)])
    self.norm = nnx.RMSNorm(features, **common) if final_norm else None
    self.head = nnx.Linear(features, num_classes, use_bias=head_bias, **init.dense(features),
                           **common)

  def __call__(self, tokens: jax.Array, seq_lengths: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """tokens int `(batch, time)`, row b valid for `t < seq_lengths[b]` (int `(batch,)`) ->
    float32 logits `(batch, num_classes)`. `rngs`: dropout keys (None: no dropout)."""
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"tokens must be integer ids of shape (batch, time), got {tokens.dtype} "
                       f"{tuple(tokens.shape)}.")
    x = self.embed(tokens)
    for block in self.blocks:
      x, _ = block(x, seq_lengths=seq_lengths, rngs=rngs)
    if self.norm is not None:
      x = self.norm(x)
    return self.head(readout(x, seq_lengths, self.readout)).astype(jnp.float32)
