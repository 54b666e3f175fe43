"""Language-modelling tasks: next-token prediction on token batches, with the defaults of
`minrnn.tasks.base.Task`.

- `TokenTask`: independent rows (Tiny Shakespeare windows, selective copying, formal languages);
- `StreamTask`: long streams cut into consecutive segments (enwik8, WikiText-103, Tiny
  Shakespeare as one stream), the model state carried from segment to segment.
"""

from __future__ import annotations

from typing import Any, Iterator

from minrnn.data.batches import Batch
from minrnn.data.formal_languages import scaled_accuracy
from minrnn.data.segments import SegmentStream
from minrnn.data.vocab import TextVocab
from minrnn.tasks.base import Task


class TokenTask(Task):
  """A data source's token batches as a language-modelling task.

  Args:
    source: a dataset with `name`, `vocab_size`, `batch_size`, `train_batch(step)`,
      `eval_batches()` and `decode(ids)`, e.g. `minrnn.data.ShakespeareChar`.
    vocab: its text vocabulary, for text (None: a synthetic task).
    sequence_accuracy: also report the share of rows with every scored token right (the
      success metric of selective copying).
    headline: the metric that summarises a run.
    describe: what the results record about the data (e.g. which split was used).
    eval_splits: the source's evaluation splits, the first evaluated during training (the
      source's `eval_batches(split)` takes one of them); None: it has one, and its
      `eval_batches()` takes no argument.
    chance: the evaluation split's chance accuracy (e.g. its most frequent answer's share):
      then the metrics also report it and `scaled_accuracy`, 0 at chance and 1 when perfect
      (`minrnn.data.formal_languages.scaled_accuracy`).
  """

  def __init__(self, source: Any, *, vocab: TextVocab | None = None,
               sequence_accuracy: bool = False, headline: str = "loss",
               describe: dict[str, Any] | None = None,
               eval_splits: tuple[str, ...] | None = None, chance: float | None = None):
    self.source = source
    self.vocab = vocab
    self.headline = headline
    self.name = source.name
    self.vocab_size = source.vocab_size
    self.batch_size = self.eval_batch_size = source.batch_size
    self.sequence_accuracy = sequence_accuracy
    self._describe = dict(describe or {})
    self._named_splits = eval_splits is not None
    if self._named_splits:
      self.eval_splits = tuple(eval_splits)
    self.chance = chance

  def train_batch(self, step: int) -> Batch:
    return self.source.train_batch(step)

  def eval_metrics(self, totals: dict[str, float]) -> dict[str, float]:
    metrics = super().eval_metrics(totals)
    if self.chance is not None:
      metrics["chance_accuracy"] = self.chance
      metrics["scaled_accuracy"] = scaled_accuracy(metrics["accuracy"], self.chance)
    return metrics

  def eval_batches(self, split: str | None = None) -> Iterator[Batch]:
    split = self.eval_splits[0] if split is None else split
    if split not in self.eval_splits:
      raise ValueError(f"The {self.name} task has the evaluation splits "
                       f"{', '.join(map(repr, self.eval_splits))}; got {split!r}.")
    return self.source.eval_batches(split) if self._named_splits else self.source.eval_batches()

  def decode(self, ids) -> str:
    return self.source.decode(ids)

  def describe(self) -> dict[str, Any]:
    return dict(self._describe)


class StreamTask(Task):
  """A `SegmentStream` as a language-modelling task trained by truncated backpropagation
  through time: each batch continues the previous one's rows, and the model state is carried.
  Evaluation scores every token of a split once, with the state carried; it reports bits per
  token (per character on enwik8) and perplexity.
  """

  carries_state = True
  headline = "bits_per_token"

  def __init__(self, stream: SegmentStream, vocab: TextVocab, *,
               describe: dict[str, Any] | None = None):
    self.stream = stream
    self.vocab = vocab
    self.name = stream.name
    self.vocab_size = stream.vocab_size
    self.batch_size = stream.batch_size
    self.eval_batch_size = stream.eval_batch_size
    self.eval_splits = stream.eval_splits
    self._describe = dict(describe or {})

  def train_batch(self, step: int) -> Batch:
    return self.stream.train_batch(step)

  def eval_batches(self, split: str | None = None) -> Iterator[Batch]:
    return self.stream.eval_batches(split)

  def starts_stream(self, step: int) -> bool:
    return self.stream.starts_stream(step)

  def describe(self) -> dict[str, Any]:
    return dict(self._describe)
