"""What the datasets hand to the tasks: batches of NumPy arrays, fixed by `(seed, step)`.

A language-modelling batch is a dict of arrays, all `(batch, time)`:
  - `inputs`: int32 token ids fed to the model;
  - `targets`: int32 token ids the model should predict at each position;
  - `weights`: float32, 1 where a position counts towards the loss and metrics, else 0.
(The D4RL windows of `minrnn.data.d4rl` and the ListOps rows of `minrnn.data.listops`, with
their `(batch,)` labels and lengths, carry their own arrays.)

Training batches are a pure function of `(seed, step)`, so a run resumed from a checkpoint sees
exactly the batches it would have seen had it never stopped.
"""

from __future__ import annotations

import numpy as np

Batch = dict[str, np.ndarray]


def step_rng(seed: int, stream: int, index: int) -> np.random.Generator:
  """A generator determined by `(seed, stream, index)` alone; streams keep splits apart."""
  return np.random.default_rng([seed, stream, index])
