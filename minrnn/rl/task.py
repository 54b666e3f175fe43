"""Offline RL on D4RL as a task of the one training loop (`minrnn.train`).

Besides batches, the task supplies the loop's optional hooks: the model it trains
(`build_model`), its loss (`loss`: mean squared action error over real steps), its evaluation
sums and metrics (held-out action error), and a `final_evaluation` that rolls the trained model
out in the environment and reports D4RL-normalised scores.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from minrnn.data.d4rl import D4RLTask
from minrnn.models import dtype_from_name
from minrnn.rl.decision import DecisionModel
from minrnn.rl.evaluate import evaluate_targets


def action_error_sums(predicted: jax.Array, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Summed squared action error and the number of (step, action entry) pairs it covers."""
  weights = batch["weights"][..., None]
  squared = jnp.square(predicted - batch["actions"]) * weights
  return {"loss": jnp.sum(squared),
          "weight": jnp.sum(weights) * predicted.shape[-1]}


class DecisionTask(D4RLTask):
  """A D4RL dataset, the Decision model trained on it, and rollouts of that model.

  Args:
    rollouts: the config's `data.rollouts` (`target_returns`, `num_episodes`, `seed`,
      `max_steps`, `progress_bar`); `num_episodes = 0` skips rollouts.
    **kwargs: `D4RLTask`'s arguments.
  """

  def __init__(self, *, rollouts: Any, **kwargs):
    super().__init__(**kwargs)
    self.rollouts = rollouts

  def build_model(self, model: Any, seed: int, implementation: Any = None) -> DecisionModel:
    return DecisionModel(
        self.state_dim, self.act_dim, features=model.features, num_layers=model.num_layers,
        cell=model.cell, cell_kwargs=dict(model.cell_kwargs), context=self.context,
        max_timestep=self.max_timestep,
        conv_kernel_size=model.conv_kernel_size, mlp_expansion=model.mlp_expansion,
        dropout=model.dropout,
        implementation=model.implementation if implementation is None else implementation,
        dtype=dtype_from_name(model.dtype), rngs=nnx.Rngs(seed))

  def _predict(self, model: DecisionModel, batch, rngs=None) -> jax.Array:
    predicted, _ = model(batch["returns_to_go"], batch["states"], batch["actions"],
                         batch["timesteps"], rngs=rngs)
    return predicted

  def loss(self, model: DecisionModel, batch, rngs: nnx.Rngs) -> jax.Array:
    sums = action_error_sums(self._predict(model, batch, rngs), batch)
    return sums["loss"] / jnp.maximum(sums["weight"], 1.0)

  def eval_sums(self, model: DecisionModel, batch) -> dict[str, jax.Array]:
    return action_error_sums(self._predict(model, batch), batch)

  def eval_metrics(self, totals: dict[str, float]) -> dict[str, float]:
    return {"loss": totals["loss"] / max(totals["weight"], 1.0)}

  def final_evaluation(self, model: DecisionModel) -> dict[str, Any]:
    r = self.rollouts
    if not r.num_episodes:
      return {"data": self.describe()}
    result = evaluate_targets(
        model, self.env, list(r.target_returns), num_episodes=r.num_episodes,
        state_mean=self.state_mean, state_std=self.state_std, return_scale=self.return_scale,
        max_steps=r.max_steps, seed=r.seed, progress_bar=r.progress_bar)
    return {**result, "data": self.describe()}


def make_decision_task(data: Any, seed: int) -> DecisionTask:
  """The task of a config's `data` section with `data.name = "d4rl"` (see `configs/d4rl/`)."""
  return DecisionTask(env=data.env, file=data.file, batch_size=data.batch_size,
                      context=data.context, return_scale=data.return_scale,
                      max_timestep=data.max_timestep, eval_fraction=data.eval_fraction,
                      eval_batches=data.eval_batches, seed=seed, data_dir=data.dir,
                      rollouts=data.rollouts)
