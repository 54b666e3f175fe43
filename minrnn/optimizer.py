"""The optimizer of every training run: AdamW, warmup then cosine decay, gradient clipping."""

from __future__ import annotations

import logging
from typing import Any

import jax
import optax


def learning_rate_schedule(train: Any) -> optax.Schedule:
  """Linear warmup from 0 to `learning_rate` over `warmup_steps`, then cosine decay to
  `end_learning_rate` at `num_steps`.

  A warmup as long as the whole run (a paper config shortened with `--config.train.num_steps`)
  is cut to a tenth of the run, with a warning.
  """
  if train.num_steps < 1 or train.warmup_steps < 0:
    raise ValueError(
        f"train.num_steps must be >= 1 and train.warmup_steps >= 0, got {train.num_steps} "
        f"and {train.warmup_steps}.")
  warmup = train.warmup_steps
  if warmup >= train.num_steps:
    warmup = train.num_steps // 10
    logging.warning("train.warmup_steps=%d is not shorter than train.num_steps=%d; warming "
                    "up for %d steps instead.", train.warmup_steps, train.num_steps, warmup)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=train.learning_rate, warmup_steps=warmup,
      decay_steps=train.num_steps, end_value=train.end_learning_rate)


def _decay_mask(params):
  # Weight decay on matrices (projections, embeddings, conv taps), not on norm scales or biases.
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(train: Any) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """`(optimizer, schedule)` from a config's `train` section."""
  schedule = learning_rate_schedule(train)
  tx = optax.chain(
      optax.clip_by_global_norm(train.grad_clip),
      optax.adamw(schedule, b1=train.b1, b2=train.b2, weight_decay=train.weight_decay,
                  mask=_decay_mask),
  )
  return tx, schedule
