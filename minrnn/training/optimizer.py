"""The optimizer of every training run: gradient clipping, then AdamW (default) or RAdam with
decoupled weight decay, on a warmup-then-cosine learning-rate schedule.

`train.optimizer` picks the update rule: `"adamw"`, or `"radam"` (Liu et al., 2020, arXiv
1908.03265), which the official SRU++ scripts use. `train.weight_decay_on` picks what decays:
`"matrices"` (projections, embeddings, conv taps; not norm scales or biases), `"all"`
parameters, as the official SRU++ scripts and the Decision-Mamba code do, or
`"all_but_recurrence"`: every parameter but the minRNN cells' input projections (those tagged
`minrnn.cells.base.RECURRENCE_PROJECTION`), as the official minRNN code's `main.py` leaves
`to_hidden_and_gate` out of AdamW's decay.
"""

from __future__ import annotations

import logging
import types
from typing import Any

import jax
import optax
from flax import nnx

from minrnn.cells.base import RECURRENCE_PROJECTION


def learning_rate_schedule(train: Any) -> optax.Schedule:
  """Linear warmup from 0 to `learning_rate` over `warmup_steps`, then cosine decay to
  `end_learning_rate` at `num_steps` (`warmup_steps = 0` and `end_learning_rate =
  learning_rate`: a constant rate).

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


OPTIMIZERS = ("adamw", "radam")


def _decay_matrices(params):
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def _is_variable(x) -> bool:
  return isinstance(x, nnx.Variable)


def _decay_all_but_recurrence(params):
  """True for every parameter but those tagged `RECURRENCE_PROJECTION`, one bool per Variable (a
  prefix of the parameters' tree, which optax's masks accept); a model without one is an error
  (the setting would decay everything, which is what "all" says)."""
  mask = jax.tree.map(
      lambda v: not (_is_variable(v) and v.get_metadata().get(RECURRENCE_PROJECTION, False)),
      params, is_leaf=_is_variable)
  if all(jax.tree.leaves(mask)):
    raise ValueError(
        "train.weight_decay_on='all_but_recurrence' found no recurrent cell's input projection "
        "in the model; use 'all' or 'matrices' for this model.")
  return mask


# `train.weight_decay_on` -> the mask of the parameters that decay (None: all of them).
_DECAY_MASKS = types.MappingProxyType({"matrices": _decay_matrices, "all": None,
                                       "all_but_recurrence": _decay_all_but_recurrence})
WEIGHT_DECAY_ON = tuple(_DECAY_MASKS)


def make_optimizer(train: Any) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """`(optimizer, schedule)` from a config's `train` section."""
  if train.optimizer not in OPTIMIZERS:
    raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {train.optimizer!r}.")
  if train.weight_decay_on not in WEIGHT_DECAY_ON:
    raise ValueError(f"train.weight_decay_on must be one of {WEIGHT_DECAY_ON}, got "
                     f"{train.weight_decay_on!r}.")
  schedule = learning_rate_schedule(train)
  mask = _DECAY_MASKS[train.weight_decay_on]
  if train.optimizer == "adamw":
    update = optax.adamw(schedule, b1=train.b1, b2=train.b2, weight_decay=train.weight_decay,
                         mask=mask)
  else:
    # While RAdam's variance estimate is untractable (the first steps) it takes plain momentum
    # steps; the official implementation skips them. Under a warmup both are near zero.
    update = optax.chain(
        optax.scale_by_radam(b1=train.b1, b2=train.b2),
        optax.add_decayed_weights(train.weight_decay, mask),
        optax.scale_by_learning_rate(schedule),
    )
  return optax.chain(optax.clip_by_global_norm(train.grad_clip), update), schedule
