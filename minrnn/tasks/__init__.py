"""Tasks: where data meets models. `make_task(config.data, seed)` builds the task a config's
`data.name` names, through the one registry of tasks below; `register_task(name, builder)` adds
one (a builder takes the `data` section and the seed and returns a `Task`)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from minrnn.data import enwik8, listops, shakespeare, wikitext
from minrnn.data.d4rl import D4RLWindows, read_dataset
from minrnn.data.formal_languages import FormalLanguage, majority_answer_rate
from minrnn.data.from_tfds import TINY_SHAKESPEARE, d4rl_tfds_name
from minrnn.data.segments import SegmentStream
from minrnn.data.selective_copy import SelectiveCopy
from minrnn.data.vocab import ByteVocab, WordTextVocab
from minrnn.tasks.base import Task
from minrnn.tasks.classification import ClassificationTask
from minrnn.tasks.decision import DecisionTask
from minrnn.tasks.language import StreamTask, TokenTask


def _shakespeare(data: Any, seed: int) -> Task:
  # The TFDS keys are optional in a data section (configs/shakespeare.py lists them all).
  source, split = data.get("source", "files"), data.get("split", "nanogpt")
  vocab, train, valid = shakespeare.read_splits(
      source=source, split_name=split, data_dir=data.dir, download=data.download,
      tfds_name=data.get("tfds_name", TINY_SHAKESPEARE), tfds_dir=data.get("tfds_dir"))
  describe = {"source": source, "split": split}
  if data.get("segments", False):
    return StreamTask(_stream(data, train, {"valid": valid}, vocab.size), vocab,
                      describe=describe)
  source = shakespeare.ShakespeareChar(
      vocab=vocab, train_ids=train, val_ids=valid, batch_size=data.batch_size,
      seq_len=data.seq_len, seed=seed, max_eval_batches=data.eval_batches)
  return TokenTask(source, vocab=vocab, headline="bits_per_token", describe=describe)


def _selective_copy(data: Any, seed: int) -> Task:
  # The headline is the official minRNN code's metric: accuracy over the copied tokens.
  return TokenTask(SelectiveCopy(
      batch_size=data.batch_size, seq_len=data.seq_len, num_tokens=data.num_tokens,
      vocab_size=data.vocab_size, seed=seed, eval_batches=data.eval_batches,
      val_seed=data.val_seed, test_seed=data.test_seed),
      sequence_accuracy=True, headline="accuracy", eval_splits=SelectiveCopy.eval_splits)


def _formal_language(data: Any, seed: int) -> Task:
  source = FormalLanguage(
      task=data.task, batch_size=data.batch_size, seed=seed, eval_batches=data.eval_batches,
      min_len=data.min_len, max_len=data.max_len, eval_min_len=data.eval_min_len,
      eval_max_len=data.eval_max_len)
  # Chance: the test strings' most frequent answer, for the scaled accuracy (xLSTM Fig. 4).
  return TokenTask(source, sequence_accuracy=True, headline="accuracy",
                   chance=majority_answer_rate(source.eval_batches()))


def _stream(data: Any, train, evals, vocab_size) -> SegmentStream:
  return SegmentStream(
      name=data.name, train_ids=train, eval_ids=evals, vocab_size=vocab_size,
      batch_size=data.batch_size, seq_len=data.seq_len,
      eval_batch_size=data.get("eval_batch_size"), eval_seq_len=data.get("eval_seq_len"),
      max_eval_batches=data.eval_batches)


def _enwik8(data: Any, seed: int) -> Task:
  del seed  # Segments are read in order.
  splits = enwik8.load_splits(data.dir, download=data.download,
                              verify_checksum=data.verify_checksum, cache_dir=data.cache_dir)
  return StreamTask(_stream(data, splits["train"], {"valid": splits["valid"],
                                                    "test": splits["test"]}, enwik8.VOCAB_SIZE),
                    ByteVocab())


def _wikitext103(data: Any, seed: int) -> Task:
  del seed
  vocab, splits = wikitext.load_splits("wikitext103", data.dir, cache_dir=data.cache_dir)
  return StreamTask(_stream(data, splits["train"], {"valid": splits["valid"],
                                                    "test": splits["test"]}, vocab.size),
                    WordTextVocab(vocab))


def _d4rl(data: Any, seed: int) -> Task:
  arrays, where = read_dataset(
      source=data.get("source", "files"), file=data.file, data_dir=data.dir,
      tfds_name=data.get("tfds_name", d4rl_tfds_name(data.env, data.dataset)),
      tfds_dir=data.get("tfds_dir"))
  windows = D4RLWindows(
      env=data.env, data=arrays, source=where, batch_size=data.batch_size,
      context=data.context, return_scale=data.return_scale, max_timestep=data.max_timestep,
      eval_fraction=data.eval_fraction, eval_batches=data.eval_batches, seed=seed,
      padding=data.padding)
  return DecisionTask(windows, rollouts=data.rollouts)


def _listops(data: Any, seed: int) -> Task:
  # The sets are fixed by their own seeds; the run's seed orders the training rows.
  spec = listops.Spec.of(data)
  splits = ("train", "valid", "test")
  sizes = {name: data[f"{name}_size"] for name in splits}
  seeds = {name: data[f"{name}_seed"] for name in splits}
  source = listops.ListOps(
      splits=listops.load_splits(sizes, seeds, spec, data.dir), batch_size=data.batch_size,
      eval_batch_size=data.eval_batch_size, seed=seed, width=spec.max_length,
      describe={"sizes": sizes, "seeds": seeds, "spec": dataclasses.asdict(spec)})
  return ClassificationTask(source)


TaskBuilder = Callable[[Any, int], Task]
_TASKS: dict[str, TaskBuilder] = {}


def register_task(name: str, builder: TaskBuilder, *, overwrite: bool = False) -> None:
  """Makes `builder(data_section, seed) -> Task` available to configs as `data.name = name`."""
  if name in _TASKS and not overwrite:
    raise ValueError(f"A task named {name!r} is already registered; pass overwrite=True to "
                     "replace it.")
  _TASKS[name] = builder


def task_names() -> tuple[str, ...]:
  return tuple(sorted(_TASKS))


def make_task(data: Any, seed: int) -> Task:
  """The task of a config's `data` section (`data.name`, a registered task)."""
  if data.name not in _TASKS:
    raise ValueError(f"Unknown task {data.name!r} (data.name); registered: "
                     f"{', '.join(task_names())}.")
  return _TASKS[data.name](data, seed)


register_task("shakespeare", _shakespeare)
register_task("selective_copy", _selective_copy)
register_task("formal_language", _formal_language)
register_task("enwik8", _enwik8)
register_task("wikitext103", _wikitext103)
register_task("d4rl", _d4rl)
register_task("listops", _listops)

__all__ = ["ClassificationTask", "DecisionTask", "StreamTask", "Task", "TokenTask", "make_task",
           "register_task", "task_names"]
