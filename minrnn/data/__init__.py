"""Datasets and synthetic tasks, found through one data-directory rule (`minrnn.data.paths`)."""

from __future__ import annotations

from typing import Any

from minrnn.data.formal_languages import FormalLanguage
from minrnn.data.paths import data_dir, fetch_file
from minrnn.data.segments import STREAM_TASKS, SegmentStream, make_stream_task
from minrnn.data.selective_copy import SelectiveCopy
from minrnn.data.shakespeare import CharVocab, ShakespeareChar
from minrnn.data.task import Batch, Task

TASKS = ("shakespeare", "selective_copy", *STREAM_TASKS, "formal_language", "d4rl")


def make_task(data: Any, seed: int) -> Task:
  """Builds the task named `data.name` from a config's `data` section (see `configs/`)."""
  if data.name in STREAM_TASKS or data.get("segments", False):
    return make_stream_task(data)
  if data.name == "shakespeare":
    return ShakespeareChar(batch_size=data.batch_size, seq_len=data.seq_len, seed=seed,
                           data_dir=data.dir, download=data.download,
                           max_eval_batches=data.eval_batches)
  if data.name == "selective_copy":
    return SelectiveCopy(batch_size=data.batch_size, seq_len=data.seq_len,
                         num_tokens=data.num_tokens, vocab_size=data.vocab_size, seed=seed,
                         eval_batches=data.eval_batches)
  if data.name == "formal_language":
    return FormalLanguage(task=data.task, batch_size=data.batch_size, seed=seed,
                          eval_batches=data.eval_batches, min_len=data.min_len,
                          max_len=data.max_len, eval_min_len=data.eval_min_len,
                          eval_max_len=data.eval_max_len)
  if data.name == "d4rl":
    # Imported here: the D4RL task brings its model and environments (the optional `rl` extra).
    from minrnn.rl.task import make_decision_task
    return make_decision_task(data, seed)
  raise ValueError(f"Unknown data.name {data.name!r}; choose one of {TASKS}.")


__all__ = ["Batch", "CharVocab", "FormalLanguage", "SegmentStream", "SelectiveCopy",
           "ShakespeareChar", "TASKS", "Task", "data_dir", "fetch_file", "make_task"]
