"""Sequence classification as a task of the one training loop: one label per padded row, read
by a `minrnn.models.SequenceClassifier` (Long Range Arena's ListOps).

A batch holds int32 `inputs` `(batch, time)` right-padded, int32 `seq_lengths` `(batch,)`,
int32 `labels` `(batch,)` and float32 `weights` `(batch, time)` (1 on each row's tokens; see
`minrnn.data.listops.make_batch`). Rows of length 0 only pad the last evaluation batch: they
weigh nothing. The loss is the cross-entropy per row (nats), averaged over the rows; the
metrics are the loss and the accuracy.
"""

from __future__ import annotations

from typing import Any, Iterator

import jax
import jax.numpy as jnp
from flax import nnx

from minrnn.data.batches import Batch
from minrnn.models.build import build_classifier
from minrnn.models.classifier import SequenceClassifier
from minrnn.tasks.base import Task


def classification_sums(model: SequenceClassifier, batch: dict[str, jax.Array],
                        rngs: nnx.Rngs | None = None) -> dict[str, jax.Array]:
  """Summed cross-entropy over the batch's real rows, their number and the rows right (float32
  scalars)."""
  logits = model(batch["inputs"], batch["seq_lengths"], rngs=rngs)
  rows = (batch["seq_lengths"] > 0).astype(jnp.float32)
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  target = jnp.take_along_axis(log_probs, batch["labels"][:, None], axis=-1)[:, 0]
  right = (jnp.argmax(logits, axis=-1) == batch["labels"]).astype(jnp.float32)
  return {"loss": -jnp.sum(target * rows), "weight": jnp.sum(rows),
          "correct": jnp.sum(right * rows)}


class ClassificationTask(Task):
  """A labelled-sequence source as a classification task.

  Args:
    source: batches and their facts: `name`, `vocab_size`, `num_classes`, `batch_size`,
      `eval_batch_size`, `eval_splits`, `train_batch(step)`, `eval_batches(split)`,
      `decode(ids)` and `describe()`, e.g. `minrnn.data.listops.ListOps`.
  """

  headline = "accuracy"

  def __init__(self, source: Any):
    self.source = source
    self.name = source.name
    self.vocab_size = source.vocab_size
    self.num_classes = source.num_classes
    self.batch_size = source.batch_size
    self.eval_batch_size = source.eval_batch_size
    self.eval_splits = tuple(source.eval_splits)

  def train_batch(self, step: int) -> Batch:
    return self.source.train_batch(step)

  def eval_batches(self, split: str | None = None) -> Iterator[Batch]:
    return self.source.eval_batches(self.eval_splits[0] if split is None else split)

  def build_model(self, model: Any, seed: int, implementation: Any = None
                  ) -> SequenceClassifier:
    return build_classifier(model, vocab_size=self.vocab_size, num_classes=self.num_classes,
                            seed=seed, implementation=implementation)

  def loss(self, model, batch, model_state, rngs: nnx.Rngs):
    sums = classification_sums(model, batch, rngs)
    return {"loss": sums["loss"], "weight": sums["weight"]}, model_state

  def eval_sums(self, model, batch, model_state):
    return classification_sums(model, batch), model_state

  def eval_metrics(self, totals: dict[str, float]) -> dict[str, float]:
    rows = max(totals["weight"], 1.0)
    return {"loss": totals["loss"] / rows, "accuracy": totals["correct"] / rows}

  def decode(self, ids) -> str:
    return self.source.decode(ids)

  def describe(self) -> dict[str, Any]:
    return self.source.describe()
