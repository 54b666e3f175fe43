"""The interface between a dataset and the training loop.

A batch is a dict of numpy arrays, all `(batch, time)`:
  - `inputs`: int32 token ids fed to the model;
  - `targets`: int32 token ids the model should predict at each position;
  - `weights`: float32, 1 where a position counts towards the loss and metrics, else 0.

Training batches are a pure function of `(seed, step)`, so a run resumed from a checkpoint sees
exactly the batches it would have seen had it never stopped.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np

Batch = dict[str, np.ndarray]


class Task(Protocol):
  """What the training loop needs from a dataset."""

  name: str
  vocab_size: int

  def train_batch(self, step: int) -> Batch:
    """The training batch of `step`; the same arguments always give the same batch."""

  def eval_batches(self) -> Iterator[Batch]:
    """The evaluation set, in fixed-shape batches (padding rows have zero weights)."""

  def decode(self, ids: np.ndarray) -> str:
    """Token ids `(time,)` as text, for samples."""


def step_rng(seed: int, stream: int, index: int) -> np.random.Generator:
  """A generator determined by `(seed, stream, index)` alone; streams keep splits apart."""
  return np.random.default_rng([seed, stream, index])
