"""The optimizer of every training run: AdamW, warmup then cosine decay, gradient clipping."""

from __future__ import annotations

from typing import Any

import jax
import optax


def learning_rate_schedule(train: Any) -> optax.Schedule:
  """Linear warmup from 0 to `learning_rate` over `warmup_steps`, then cosine decay to
  `end_learning_rate` at `num_steps`."""
  if not 0 <= train.warmup_steps < train.num_steps:
    raise ValueError(
        f"train.warmup_steps must be in [0, num_steps={train.num_steps}), got "
        f"{train.warmup_steps}.")
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=train.learning_rate, warmup_steps=train.warmup_steps,
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
