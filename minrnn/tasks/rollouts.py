"""Rollouts of a `DecisionModel` in Gymnasium's MuJoCo environments, with D4RL-normalised scores.

The policy is conditioned on a target return: the return-to-go starts at the target and drops by
each reward received (the Decision Transformer's evaluation). It reads the episode in one of two
modes (`MODES`):

- `"window"` (the paper's, following Decision Mamba's `get_action` and the Decision
  Transformer's): at every environment step the model reads the last `context` steps again,
  from scratch, in parallel mode. The window is left-padded with zeros (return-to-go, state,
  action, timestep 0) until `context` steps have passed, its newest action is a zero
  placeholder, and the action is read at its last position. Nothing is carried from one step to
  the next but the window: the model never reads more than `context` steps, as in training;
- `"step"`: the model runs in step mode, one environment step at a time, with a constant-size
  state carried over the whole episode (an extra mode of this codebase, not the paper's).

All episodes of one target run side by side as one batch; episode i is reset with seed
`seed + i`.

The Gymnasium v5 environments have D4RL's observation and action sizes (HalfCheetah 17/6,
Hopper 11/3, Walker2d 17/6). The normalised score is D4RL's:
`100 * (return - random) / (expert - random)` with D4RL's reference returns below.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from minrnn.models.decision import DecisionModel

MODES = ("window", "step")

GYM_ENVS = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5"}
# D4RL's REF_MIN_SCORE / REF_MAX_SCORE of the MuJoCo locomotion tasks (random and expert
# policies' average returns).
REFERENCE_RETURNS = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
}


def normalized_score(env: str, episode_return: float) -> float:
  """D4RL's normalised score (0: random policy, 100: expert) of a raw episode return."""
  if env not in REFERENCE_RETURNS:
    raise ValueError(f"No D4RL reference returns for {env!r}; known: {sorted(REFERENCE_RETURNS)}.")
  low, high = REFERENCE_RETURNS[env]
  return 100.0 * (episode_return - low) / (high - low)


def make_env(env: str):
  """The Gymnasium v5 environment of a D4RL environment name."""
  try:
    import gymnasium as gym
  except ImportError as e:
    raise ImportError("Rollouts need Gymnasium with MuJoCo: pip install 'minrnn[rl]' "
                      "(gymnasium[mujoco]).") from e
  if env not in GYM_ENVS:
    raise ValueError(f"Unknown environment {env!r}; choose one of {sorted(GYM_ENVS)}.")
  return gym.make(GYM_ENVS[env])


class Window(NamedTuple):
  """The window policy's state: the last `context` steps of each episode, `(batch, K, ...)`,
  newest last, zeros before the first step."""

  returns_to_go: jax.Array
  states: jax.Array
  actions: jax.Array
  timesteps: jax.Array


def _push(window: jax.Array, value: jax.Array) -> jax.Array:
  """`window` `(batch, K, ...)` shifted one step left, `value` `(batch, ...)` last."""
  return jnp.concatenate([window[:, 1:], value[:, None].astype(window.dtype)], axis=1)


def _window_act(model: DecisionModel, window: Window, returns_to_go, states, timesteps):
  window = Window(_push(window.returns_to_go, returns_to_go), _push(window.states, states),
                  _push(window.actions, jnp.zeros_like(window.actions[:, 0])),
                  _push(window.timesteps, timesteps))
  predicted, _ = model(*window)
  return window, predicted[:, -1]


def _window_observe(model: DecisionModel, window: Window, actions, timesteps):
  del model, timesteps
  return window._replace(actions=window.actions.at[:, -1].set(actions))


def _empty_window(model: DecisionModel, batch: int, context: int) -> Window:
  return Window(jnp.zeros((batch, context), jnp.float32),
                jnp.zeros((batch, context, model.state_dim), jnp.float32),
                jnp.zeros((batch, context, model.act_dim), jnp.float32),
                jnp.zeros((batch, context), jnp.int32))


def policy(model: DecisionModel, mode: str, context: int, batch: int
           ) -> tuple[Callable, Callable, Any, Any]:
  """`(act, observe, params, state)`: jitted `act(params, state, rtg, obs, t) -> (state,
  action)` and `observe(params, state, action, t) -> state` of the `mode` policy, and the
  initial state for `batch` episodes."""
  if mode not in MODES:
    raise ValueError(f"Unknown rollout mode {mode!r} (data.rollouts.mode); choose one of "
                     f"{MODES}.")
  graphdef, params = nnx.split(model)
  if mode == "step":
    act_fn, observe_fn = DecisionModel.act, DecisionModel.observe_action
    state = model.initialize_state(batch)
  else:
    act_fn, observe_fn = _window_act, _window_observe
    state = _empty_window(model, batch, context)

  @jax.jit
  def act(params, state, rtg, obs, t):
    return act_fn(nnx.merge(graphdef, params), state, rtg, obs, t)

  @jax.jit
  def observe(params, state, action, t):
    return observe_fn(nnx.merge(graphdef, params), state, action, t)

  return act, observe, params, state


def rollout(model: DecisionModel, env: str, *, target_return: float, num_episodes: int,
            state_mean: np.ndarray, state_std: np.ndarray, return_scale: float,
            mode: str = "window", context: int = 20, max_steps: int = 1000, seed: int = 0,
            progress_bar: bool = True) -> dict[str, Any]:
  """Runs `num_episodes` episodes conditioned on `target_return`.

  Args:
    model: the trained model (its `max_timestep` bounds the timesteps fed to it).
    env: "halfcheetah", "hopper" or "walker2d".
    target_return: the return asked for, in raw reward units.
    num_episodes: episodes, reset with seeds `seed, seed + 1, ...`.
    state_mean, state_std: the training data's observation normalisation.
    return_scale: the training data's return-to-go divisor.
    mode: how the policy reads the episode (see `MODES`).
    context: steps in the `"window"` mode's window.
    max_steps: steps per episode at most (D4RL's tasks: 1000).
    seed: first environment seed.
    progress_bar: show one over environment steps.

  Returns:
    `{"returns": [...], "lengths": [...], "normalized_scores": [...], "mean_return",
    "mean_normalized_score", "std_normalized_score"}`.
  """
  envs = [make_env(env) for _ in range(num_episodes)]
  act, observe, params, state = policy(model, mode, context, num_episodes)
  obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]).astype(np.float32)
  if obs.shape[1] != model.state_dim:
    raise ValueError(f"{GYM_ENVS[env]} observations have {obs.shape[1]} entries; the model "
                     f"expects {model.state_dim}. Was it trained on another environment?")
  low, high = envs[0].action_space.low, envs[0].action_space.high
  rtg = np.full((num_episodes,), target_return / return_scale, np.float32)
  returns = np.zeros((num_episodes,), np.float64)
  lengths = np.zeros((num_episodes,), np.int64)
  running = np.ones((num_episodes,), bool)
  with tqdm(total=max_steps, disable=not progress_bar, unit="step", dynamic_ncols=True,
            desc=f"{env} target {target_return:g}") as bar:
    for t in range(max_steps):
      steps = jnp.full((num_episodes,), min(t, model.max_timestep - 1), jnp.int32)
      normalized = ((obs - state_mean) / state_std).astype(np.float32)
      state, action = act(params, state, jnp.asarray(rtg), jnp.asarray(normalized), steps)
      action = np.asarray(action)
      state = observe(params, state, jnp.asarray(action), steps)
      for i, e in enumerate(envs):
        if not running[i]:
          continue
        o, r, terminated, truncated, _ = e.step(np.clip(action[i], low, high))
        obs[i] = o
        returns[i] += r
        lengths[i] += 1
        rtg[i] -= r / return_scale
        running[i] = not (terminated or truncated)
      bar.update(1)
      bar.set_postfix(running=int(running.sum()), mean_return=f"{returns.mean():.1f}")
      if not running.any():
        break
  for e in envs:
    e.close()
  scores = [normalized_score(env, r) for r in returns]
  return {
      "target_return": float(target_return),
      "returns": returns.tolist(),
      "lengths": lengths.tolist(),
      "normalized_scores": scores,
      "mean_return": float(np.mean(returns)),
      "mean_normalized_score": float(np.mean(scores)),
      "std_normalized_score": float(np.std(scores)),
  }


def evaluate_targets(model: DecisionModel, env: str, target_returns: Sequence[float],
                     **kwargs) -> dict[str, Any]:
  """`rollout` for each target return. The headline `normalized_score` is the first target's
  (the one the config names first), never the best of several: picking the best on the
  evaluation episodes themselves would overstate the score."""
  if not target_returns:
    raise ValueError("Give at least one target return.")
  results = {f"{t:g}": rollout(model, env, target_return=t, **kwargs) for t in target_returns}
  first = results[f"{target_returns[0]:g}"]
  return {"env": env, "targets": results, "normalized_score": first["mean_normalized_score"],
          "std_normalized_score": first["std_normalized_score"],
          "mean_return": first["mean_return"]}
