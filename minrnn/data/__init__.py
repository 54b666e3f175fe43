"""Datasets and synthetic tasks, found through one data-directory rule (`minrnn.data.paths`)."""

from __future__ import annotations

from typing import Any

from minrnn.data.paths import data_dir, fetch_file
from minrnn.data.selective_copy import SelectiveCopy
from minrnn.data.shakespeare import CharVocab, ShakespeareChar
from minrnn.data.task import Batch, Task

TASKS = ("shakespeare", "selective_copy")


def make_task(data: Any, seed: int) -> Task:
  """Builds the task named `data.name` from a config's `data` section (see `configs/`)."""
  if data.name == "shakespeare":
    return ShakespeareChar(batch_size=data.batch_size, seq_len=data.seq_len, seed=seed,
                           data_dir=data.dir, download=data.download,
                           max_eval_batches=data.eval_batches)
  if data.name == "selective_copy":
    return SelectiveCopy(batch_size=data.batch_size, seq_len=data.seq_len,
                         num_tokens=data.num_tokens, vocab_size=data.vocab_size, seed=seed,
                         eval_batches=data.eval_batches)
  raise ValueError(f"Unknown data.name {data.name!r}; choose one of {TASKS}.")


__all__ = ["Batch", "CharVocab", "SelectiveCopy", "ShakespeareChar", "TASKS", "Task",
           "data_dir", "fetch_file", "make_task"]
