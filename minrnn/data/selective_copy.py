"""The selective copying task (Gu & Dao, Mamba, 2023; used again in "Were RNNs All We Needed?").

A row is a context of `seq_len` tokens, mostly the blank token, with `num_tokens` data tokens
at random positions, followed by `num_tokens` marker tokens. At each marker position the model
must output the data tokens in the order they appeared; only those positions are scored.

Token ids: 0 is the blank, `vocab_size - 1` the marker, `1 .. vocab_size - 2` the data tokens
(14 of them with the usual vocabulary of 16).

Training batches come from the run's seed; the validation and test sets are fixed sets of
`eval_batches` batches drawn from their own seeds (the official minRNN code's `val_seed` 0 and
`test_seed` 1), the same for every run whatever its seed, and never from the training stream.
"""

from __future__ import annotations

import types
from typing import Iterator

import numpy as np

from minrnn.data.batches import Batch, step_rng

BLANK = 0
# Streams of `step_rng`: a split's batches come from (its seed, its stream, index).
_TRAIN_STREAM = 0
_EVAL_STREAMS = types.MappingProxyType({"valid": 1, "test": 2})


def generate(rng: np.random.Generator, *, batch_size: int, seq_len: int, num_tokens: int,
             vocab_size: int) -> Batch:
  """One batch; all arrays `(batch_size, seq_len + num_tokens)` (see `minrnn.data.task`)."""
  if vocab_size < 3:
    raise ValueError(f"vocab_size must be at least 3 (blank, marker, data), got {vocab_size}.")
  if not 0 < num_tokens <= seq_len:
    raise ValueError(
        f"num_tokens must be in [1, seq_len={seq_len}], got {num_tokens}.")
  marker = vocab_size - 1
  data = rng.integers(1, marker, (batch_size, num_tokens), dtype=np.int32)
  # A random subset of positions per row, kept in order so the copy order is the reading order.
  positions = np.sort(np.argsort(rng.random((batch_size, seq_len)), axis=1)[:, :num_tokens],
                      axis=1)
  context = np.full((batch_size, seq_len), BLANK, np.int32)
  np.put_along_axis(context, positions, data, axis=1)
  inputs = np.concatenate([context, np.full((batch_size, num_tokens), marker, np.int32)], 1)
  targets = np.concatenate([np.zeros((batch_size, seq_len), np.int32), data], 1)
  weights = np.concatenate([np.zeros((batch_size, seq_len), np.float32),
                            np.ones((batch_size, num_tokens), np.float32)], 1)
  return {"inputs": inputs, "targets": targets, "weights": weights}


class SelectiveCopy:
  """Selective copying batches, determined by `(seed, step)`.

  Args:
    batch_size: rows per batch.
    seq_len: length of the context region (the rows are `seq_len + num_tokens` long).
    num_tokens: data tokens to copy per row.
    vocab_size: number of token ids, including the blank and the marker.
    seed: with the step number, determines every training batch.
    eval_batches: number of batches in each of the validation and test sets.
    val_seed: determines the validation set.
    test_seed: determines the test set.
  """

  name = "selective_copy"
  eval_splits = tuple(_EVAL_STREAMS)

  def __init__(self, *, batch_size: int, seq_len: int, num_tokens: int, vocab_size: int,
               seed: int, eval_batches: int, val_seed: int = 0, test_seed: int = 1):
    self.batch_size = batch_size
    self.seq_len = seq_len
    self.num_tokens = num_tokens
    self.vocab_size = vocab_size
    self.seed = seed
    self.num_eval_batches = eval_batches
    self.split_seeds = {"valid": val_seed, "test": test_seed}
    generate(step_rng(seed, _TRAIN_STREAM, 0), batch_size=1, seq_len=seq_len,
             num_tokens=num_tokens, vocab_size=vocab_size)  # Fails early on bad settings.

  def _batch(self, seed: int, stream: int, index: int) -> Batch:
    return generate(step_rng(seed, stream, index), batch_size=self.batch_size,
                    seq_len=self.seq_len, num_tokens=self.num_tokens,
                    vocab_size=self.vocab_size)

  def train_batch(self, step: int) -> Batch:
    return self._batch(self.seed, _TRAIN_STREAM, step)

  def eval_batches(self, split: str = "valid") -> Iterator[Batch]:
    """The fixed batches of `split`, "valid" or "test"."""
    if split not in _EVAL_STREAMS:
      raise ValueError(f"Selective copying has the evaluation splits {self.eval_splits}; got "
                       f"{split!r}.")
    for i in range(self.num_eval_batches):
      yield self._batch(self.split_seeds[split], _EVAL_STREAMS[split], i)

  def decode(self, ids) -> str:
    symbols = {BLANK: ".", self.vocab_size - 1: "|"}
    return "".join(symbols.get(int(i), format(int(i), "x")) for i in ids)
