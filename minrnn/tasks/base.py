"""The interface between a task and the one training loop, with the token language model's
defaults.

A task supplies its batches (`train_batch`, `eval_batches`), builds its model (`build_model`),
and says how to score it: `loss` for training (a sum and the weight it is averaged over, so that
a batch split into micro-batches averages exactly as the whole batch does), `eval_sums` summed
over an evaluation split and turned into metrics by `eval_metrics`, and `final_evaluation` once
at the end (rollouts, for offline RL). Every method is always present; the defaults below are
next-token cross-entropy through the model's `target_log_probs`, so a language-modelling task
only provides data. Every task's metrics include `loss`; `higher_is_better` names the metrics
for which a larger value is the better one (the rest: smaller), for choosing the best
checkpoint by any of them.

Tasks with `carries_state` (long streams cut into segments) train by truncated
backpropagation through time: the loop hands `loss` and `eval_sums` the model state after the
previous batch and keeps the one they return; `starts_stream(step)` says where a fresh state
begins.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Iterator

import jax
import jax.numpy as jnp
from flax import nnx

from minrnn.data.batches import Batch
from minrnn.data.vocab import TextVocab
from minrnn.models.build import build_language_model


def target_sums(model: nnx.Module, batch: dict[str, jax.Array], model_state: Any,
                rngs: nnx.Rngs | None = None) -> tuple[dict[str, jax.Array], Any, jax.Array]:
  """`(sums, state, log_probs)` of a language model on one batch: summed cross-entropy,
  weights, correct predictions and whole rows right; the state after it; float32
  `(batch, time)` log p(target)."""
  log_probs, correct, new_state = model.target_log_probs(
      batch["inputs"], batch["targets"], model_state, rngs=rngs)
  weights = batch["weights"]
  scored_rows = jnp.any(weights > 0, axis=1)
  sums = {
      "loss": -jnp.sum(log_probs * weights),
      "weight": jnp.sum(weights),
      "correct": jnp.sum(correct * weights),
      # A row is right when every scored position is (the selective-copy success metric).
      "rows_correct": jnp.sum(jnp.all(correct | (weights == 0), axis=1) & scored_rows),
      "rows": jnp.sum(scored_rows),
  }
  return sums, new_state, log_probs


class Task(abc.ABC):
  """A task of the training loop; see the module docstring.

  Attributes:
    name: the task's name (results and plots).
    vocab_size: token ids (language-modelling tasks).
    batch_size: rows per training batch.
    eval_batch_size: rows per evaluation batch.
    eval_splits: evaluation splits; the first is the one evaluated during training, the others
      are scored once at the end.
    carries_state: the model state is carried from batch to batch.
    headline: the metric that summarises a run (plots and the final summary).
    sequence_accuracy: report the share of rows with every scored token right.
    vocab: the text vocabulary of text tasks (saved with a run, for sampling), else None.
    higher_is_better: the metrics of `eval_metrics` where larger is better.
  """

  name: str
  vocab_size: int
  batch_size: int
  eval_batch_size: int
  eval_splits: tuple[str, ...] = ("eval",)
  carries_state: bool = False
  headline: str = "loss"
  sequence_accuracy: bool = False
  vocab: TextVocab | None = None
  higher_is_better: frozenset[str] = frozenset({"accuracy", "sequence_accuracy"})

  @abc.abstractmethod
  def train_batch(self, step: int) -> Batch:
    """The training batch of `step`; the same step always gives the same batch."""

  @abc.abstractmethod
  def eval_batches(self, split: str | None = None) -> Iterator[Batch]:
    """Fixed-shape batches covering evaluation split `split` (None: the first)."""

  def starts_stream(self, step: int) -> bool:
    """Whether training step `step` starts from a fresh model state (`carries_state` tasks)."""
    del step
    return False

  def build_model(self, model: Any, seed: int, implementation: Any = None) -> nnx.Module:
    """The model of a config's `model` section (default: a `LanguageModel`)."""
    return build_language_model(model, self.vocab_size, seed, implementation)

  def loss(self, model: nnx.Module, batch: dict[str, jax.Array], model_state: Any,
           rngs: nnx.Rngs) -> tuple[dict[str, jax.Array], Any]:
    """`(sums, state)`: float32 scalars `sums["loss"]`, the cross-entropy (nats) summed over
    the scored positions, and `sums["weight"]`, what it is averaged over (the training loss is
    `loss / max(weight, 1)`); the model state after the batch."""
    sums, new_state, _ = target_sums(model, batch, model_state, rngs)
    return {"loss": sums["loss"], "weight": sums["weight"]}, new_state

  def eval_sums(self, model: nnx.Module, batch: dict[str, jax.Array],
                model_state: Any) -> tuple[dict[str, jax.Array], Any]:
    """`(sums, state)`: statistics summed over the batch (dropout off)."""
    sums, new_state, _ = target_sums(model, batch, model_state)
    return sums, new_state

  def eval_metrics(self, totals: dict[str, float]) -> dict[str, float]:
    """Metrics of a whole split from its summed statistics: loss (nats per scored token),
    bits_per_token, accuracy; perplexity for streams; sequence_accuracy where it means
    something."""
    loss = totals["loss"] / totals["weight"]
    metrics = {"loss": loss, "bits_per_token": loss / math.log(2),
               "accuracy": totals["correct"] / totals["weight"]}
    if self.carries_state:
      metrics["perplexity"] = math.exp(loss)
    if self.sequence_accuracy:
      metrics["sequence_accuracy"] = totals["rows_correct"] / max(totals["rows"], 1.0)
    return metrics

  def final_evaluation(self, model: nnx.Module) -> dict[str, Any] | None:
    """Anything to measure once after training (None: nothing)."""
    del model
    return None

  def decode(self, ids) -> str:
    """Token ids `(n,)` as text."""
    if self.vocab is None:
      raise ValueError(f"The {self.name} task has no text vocabulary.")
    return self.vocab.decode(ids)

  def encode(self, text: str):
    """Text as int32 ids `(n,)`."""
    if self.vocab is None:
      raise ValueError(f"The {self.name} task has no text vocabulary to encode a prompt with.")
    return self.vocab.encode(text)

  def describe(self) -> dict[str, Any]:
    """What a run's results should record about the data (default: nothing)."""
    return {}
