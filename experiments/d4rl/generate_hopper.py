"""Generates a small offline dataset from Gymnasium's Hopper-v5 in D4RL's hdf5 format.

NOT a D4RL dataset: it exists so the whole offline-RL pipeline (reader, training, rollouts) can
run end to end where D4RL's files cannot be downloaded.

The behaviour policy is a hand-written PD controller that keeps the joints straight and the
torso slightly leaned forward, `a = -(q_joints + 0.5 (q_torso - lean)) - 0.3 dq_joints`, plus
Gaussian action noise. Each episode draws its own noise scale (0.2 to 0.9) and lean (0 to 0.2),
so returns spread from falls after a few dozen steps (tens) to full 1000-step episodes (about
1000): data of mixed quality, in which a return-conditioned model can tell good actions from bad.

    python experiments/d4rl/generate_hopper.py --out DATA_DIR/generated/hopper_pd_noisy.hdf5

Rows follow D4RL's conventions: `terminals` marks steps where the environment ended the episode
(the hopper fell), `timeouts` steps where the 1000-step limit cut it.
"""

from __future__ import annotations

import pathlib

import numpy as np
from tqdm.auto import tqdm

from minrnn import cli
from minrnn.data.d4rl import write_d4rl
from minrnn.data.paths import data_dir
from minrnn.tasks.rollouts import make_env

DEFAULT_FILE = "generated/hopper_pd_noisy.hdf5"


def pd_action(obs: np.ndarray, lean: float) -> np.ndarray:
  """Hopper-v5 observation: [z, torso angle, 3 joint angles, 6 velocities (joints last 3)]."""
  return -(obs[2:5] + 0.5 * (obs[1] - lean)) - 0.3 * obs[8:11]


def generate(num_transitions: int, seed: int) -> tuple[dict[str, np.ndarray], list[float]]:
  """At least `num_transitions` rows of whole episodes, and each episode's return."""
  env = make_env("hopper")
  low, high = env.action_space.low, env.action_space.high
  rng = np.random.default_rng(seed)
  rows = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
  returns = []
  with tqdm(total=num_transitions, unit="step", desc="Hopper-v5") as bar:
    while len(rows["rewards"]) < num_transitions:
      noise, lean = rng.uniform(0.2, 0.9), rng.uniform(0.0, 0.2)
      obs, _ = env.reset(seed=int(rng.integers(2**31)))
      episode_return, done = 0.0, False
      while not done:
        action = np.clip(pd_action(obs, lean) + noise * rng.normal(size=3), low, high)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows["observations"].append(obs)
        rows["actions"].append(action)
        rows["rewards"].append(reward)
        rows["terminals"].append(terminated)
        rows["timeouts"].append(truncated and not terminated)
        obs, done = next_obs, terminated or truncated
        episode_return += reward
        bar.update(1)
      returns.append(episode_return)
  env.close()
  data = {
      "observations": np.asarray(rows["observations"], np.float32),
      "actions": np.asarray(rows["actions"], np.float32),
      "rewards": np.asarray(rows["rewards"], np.float32),
      "terminals": np.asarray(rows["terminals"], bool),
      "timeouts": np.asarray(rows["timeouts"], bool),
  }
  return data, returns


def main():
  parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", type=pathlib.Path, default=None,
                      help=f"hdf5 file to write (default: <data dir>/{DEFAULT_FILE})")
  parser.add_argument("--transitions", type=int, default=100_000)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  out = args.out or data_dir() / DEFAULT_FILE
  data, returns = generate(args.transitions, args.seed)
  write_d4rl(out, data)
  print(f"Wrote {out}: {len(data['rewards'])} transitions, {len(returns)} episodes, returns "
        f"min {min(returns):.1f} / mean {np.mean(returns):.1f} / max {max(returns):.1f}.")


if __name__ == "__main__":
  with cli.user_errors(verbose_flag=None):
    main()
