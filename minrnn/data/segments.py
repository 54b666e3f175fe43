"""Long token streams cut into consecutive segments, for truncated backpropagation through time.

A split of N tokens is laid out as `batch_size` contiguous rows (as Transformer-XL and SRU++ do
it): row b holds tokens `[b·R, (b+1)·R]` with R = row length. Batch s is segment s of every row,
so the model state after batch s (recurrent state, attention memory) is the right state to
start batch s + 1 from: the training loop carries it, per row, from one batch to the next.

  - Training: R = (N − 1) // batch_size; the last partial segment of each row is dropped so every
    batch has the same shape. Step s reads segment `s mod num_segments`; at segment 0 the loop
    starts from a fresh state (`starts_stream`).
  - Evaluation: every token of the split is predicted exactly once, with the state carried from
    the start of its row: R = ceil((N − 1) / batch_size), and positions past the end of the split
    have weight 0. Loss sums over the split give bits per character or perplexity.
"""

from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np

from minrnn.data.batches import Batch


def _rows(ids: np.ndarray, num_rows: int, row_len: int, num_cols: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`(inputs, targets, weights)`, each `(num_rows, num_cols)`: row b predicts targets
  `b·row_len + [0, num_cols)`. Positions past the row or the split get token 0 and weight 0."""
  cols = np.arange(num_cols)[None, :]
  positions = np.arange(num_rows)[:, None] * row_len + cols
  valid = (cols < row_len) & (positions < len(ids) - 1)
  safe = np.where(valid, positions, 0)
  inputs = np.asarray(ids[safe.ravel()]).reshape(safe.shape)
  targets = np.asarray(ids[(safe + 1).ravel()]).reshape(safe.shape)
  return inputs.astype(np.int32), targets.astype(np.int32), valid.astype(np.float32)


class SegmentStream:
  """Batches that are consecutive segments of long streams (see the module docstring).

  Args:
    name: the task's name.
    train_ids: the training split, int `(N,)` (a memory-mapped array is read lazily).
    eval_ids: evaluation splits by name, e.g. `{"valid": ..., "test": ...}`; the first is the
      one `eval_batches()` reads by default.
    vocab_size: number of token ids.
    batch_size: rows per training batch.
    seq_len: segment length (the truncation length of backpropagation through time).
    eval_batch_size: rows per evaluation batch (default: batch_size).
    eval_seq_len: evaluation segment length (default: seq_len).
    max_eval_batches: evaluate only this many segments (None: the whole split), for quick runs.
  """

  def __init__(self, *, name: str, train_ids: np.ndarray, eval_ids: Mapping[str, np.ndarray],
               vocab_size: int, batch_size: int, seq_len: int,
               eval_batch_size: int | None = None,
               eval_seq_len: int | None = None, max_eval_batches: int | None = None):
    self.name = name
    self.vocab_size = vocab_size
    self.batch_size = batch_size
    self.seq_len = seq_len
    self.eval_batch_size = eval_batch_size or batch_size
    self.eval_seq_len = eval_seq_len or seq_len
    self.max_eval_batches = max_eval_batches
    self.train_ids = train_ids
    self.eval_ids = dict(eval_ids)
    self.row_len = (len(train_ids) - 1) // batch_size
    self.num_segments = self.row_len // seq_len
    if self.num_segments < 1:
      raise ValueError(
          f"The {name} training split ({len(train_ids)} tokens) is too short for "
          f"{batch_size} rows of at least one {seq_len}-token segment; lower data.batch_size "
          "or data.seq_len.")
    for split, ids in self.eval_ids.items():
      if len(ids) < 2:
        raise ValueError(f"The {name} {split} split has {len(ids)} tokens; it needs at least 2.")

  @property
  def eval_splits(self) -> tuple[str, ...]:
    return tuple(self.eval_ids)

  def starts_stream(self, step: int) -> bool:
    """Whether training step `step` reads the first segment (the state starts afresh)."""
    return step % self.num_segments == 0

  def train_batch(self, step: int) -> Batch:
    segment = step % self.num_segments
    offsets = (np.arange(self.batch_size)[:, None] * self.row_len
               + segment * self.seq_len + np.arange(self.seq_len + 1)[None, :])
    tokens = np.asarray(self.train_ids[offsets.ravel()]).reshape(offsets.shape)
    return {"inputs": tokens[:, :-1].astype(np.int32),
            "targets": tokens[:, 1:].astype(np.int32),
            "weights": np.ones((self.batch_size, self.seq_len), np.float32)}

  def eval_batches(self, split: str | None = None) -> Iterator[Batch]:
    """Consecutive segments covering the whole split (default: the first evaluation split)."""
    split = split or self.eval_splits[0]
    if split not in self.eval_ids:
      raise ValueError(f"Unknown split {split!r} of {self.name}; choose one of "
                       f"{self.eval_splits}.")
    ids = self.eval_ids[split]
    length = self.eval_seq_len
    row_len = -(-(len(ids) - 1) // self.eval_batch_size)
    num_segments = -(-row_len // length)
    if self.max_eval_batches is not None:
      num_segments = min(num_segments, self.max_eval_batches)
    inputs, targets, weights = _rows(ids, self.eval_batch_size, row_len, num_segments * length)
    for s in range(num_segments):
      cut = slice(s * length, (s + 1) * length)
      yield {"inputs": inputs[:, cut], "targets": targets[:, cut], "weights": weights[:, cut]}
