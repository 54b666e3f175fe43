"""Offline RL on D4RL as a task of the one training loop.

Besides batches (`minrnn.data.d4rl.D4RLWindows`), the task builds the Decision model, scores
it by the mean squared action error over real steps (training loss and held-out evaluation),
and, once trained, rolls it out in the environment and reports D4RL-normalised scores.
"""

from __future__ import annotations

from typing import Any, Iterator

import jax
import jax.numpy as jnp
from flax import nnx

from minrnn.data.batches import Batch
from minrnn.data.d4rl import D4RLWindows
from minrnn.models.build import build_decision_model
from minrnn.models.decision import DecisionModel
from minrnn.tasks.base import Task
from minrnn.tasks.rollouts import evaluate_targets


def action_error_sums(predicted: jax.Array, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Summed squared action error and the number of (step, action entry) pairs it covers."""
  weights = batch["weights"][..., None]
  squared = jnp.square(predicted - batch["actions"]) * weights
  return {"loss": jnp.sum(squared),
          "weight": jnp.sum(weights) * predicted.shape[-1]}


class DecisionTask(Task):
  """A D4RL dataset, the Decision model trained on it, and rollouts of that model.

  Args:
    windows: the dataset's context windows.
    env: "halfcheetah", "hopper" or "walker2d".
    rollouts: the config's `data.rollouts` (`target_returns`, `num_episodes`, `mode`, `seed`,
      `max_steps`, `progress_bar`); `num_episodes = 0` skips rollouts.
  """

  name = "d4rl"
  headline = "normalized_score"

  def __init__(self, windows: D4RLWindows, *, rollouts: Any):
    self.windows = windows
    self.rollouts = rollouts
    self.batch_size = self.eval_batch_size = windows.batch_size

  def train_batch(self, step: int) -> Batch:
    return self.windows.train_batch(step)

  def eval_batches(self, split: str | None = None) -> Iterator[Batch]:
    if split not in (None, self.eval_splits[0]):
      raise ValueError(f"D4RL has one evaluation split, {self.eval_splits[0]!r}; got {split!r}.")
    return self.windows.eval_batches()

  def build_model(self, model: Any, seed: int, implementation: Any = None) -> DecisionModel:
    return build_decision_model(model, state_dim=self.windows.state_dim,
                                act_dim=self.windows.act_dim,
                                max_timestep=self.windows.max_timestep, seed=seed,
                                implementation=implementation)

  @staticmethod
  def _predict(model: DecisionModel, batch, rngs=None) -> jax.Array:
    predicted, _ = model(batch["returns_to_go"], batch["states"], batch["actions"],
                         batch["timesteps"], rngs=rngs)
    return predicted

  def loss(self, model, batch, model_state, rngs: nnx.Rngs):
    return action_error_sums(self._predict(model, batch, rngs), batch), model_state

  def eval_sums(self, model, batch, model_state):
    return action_error_sums(self._predict(model, batch), batch), model_state

  def eval_metrics(self, totals: dict[str, float]) -> dict[str, float]:
    return {"loss": totals["loss"] / max(totals["weight"], 1.0)}

  def final_evaluation(self, model: DecisionModel) -> dict[str, Any]:
    r = self.rollouts
    if not r.num_episodes:
      return {"data": self.describe()}
    w = self.windows
    result = evaluate_targets(
        model, w.env, list(r.target_returns), num_episodes=r.num_episodes,
        state_mean=w.state_mean, state_std=w.state_std, return_scale=w.return_scale,
        mode=r.mode, context=w.context, max_steps=r.max_steps, seed=r.seed,
        progress_bar=r.progress_bar)
    return {**result, "data": self.describe()}

  def describe(self) -> dict[str, Any]:
    return self.windows.describe()
