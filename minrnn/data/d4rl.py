"""D4RL's MuJoCo datasets (Fu et al., 2020, arXiv 2004.07219) as context windows for a
Decision-style model (Chen et al., 2021, arXiv 2106.01345).

A D4RL file is hdf5 with flat arrays over all transitions, in trajectory order:
`observations (N, state_dim)`, `actions (N, act_dim)`, `rewards (N,)`, `terminals (N,)` (the
environment ended the episode) and `timeouts (N,)` (the time limit cut it). A trajectory ends at
every transition whose terminal or timeout flag is set; transitions after the last flag form a
final, unfinished trajectory.

Files are found through the data-directory rule (`minrnn.data.paths`) at
`<data dir>/d4rl/<env>_<dataset>-v2.hdf5`, D4RL's own file names, e.g.
`d4rl/hopper_medium_replay-v2.hdf5`; or the same arrays come from TensorFlow Datasets' prepared
`d4rl_mujoco_<env>/v2-<dataset>` (`read_dataset(source="tfds")`, `minrnn.data.from_tfds`).

A training batch (numpy, `K` = context length; a window that runs past its trajectory's end is
padded, at the end of the row or, with `padding="start"`, at its start):
  - `returns_to_go` float32 `(B, K)`: undiscounted return from each step on, divided by
    `return_scale`;
  - `states` float32 `(B, K, state_dim)`: observations normalised by the dataset's mean and std;
  - `actions` float32 `(B, K, act_dim)`: the actions taken (the targets, and the inputs of the
    action tokens);
  - `timesteps` int32 `(B, K)`: each step's index in its episode;
  - `weights` float32 `(B, K)`: 1 for real steps, 0 for padding.
Windows are sampled as the Decision Transformer does: a trajectory with probability proportional
to its length, then a uniform start. Batches are a pure function of `(seed, step)`.

Padding (`PADDINGS`): `"end"` puts zeros after the real steps, where a causal model never reads
them. `"start"` is the Decision-Transformer / Decision-Mamba `get_batch`: the real steps last,
and before them states that are zeros before normalisation, actions of -10, returns-to-go and
timesteps of 0. A model without an attention mask (Decision Mamba, the minRNN paper's models)
reads that padding, as it reads the left-padded windows of their evaluation
(`minrnn.tasks.rollouts`, whose padding is zeros throughout, as theirs is).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Iterator, Sequence

import numpy as np

from minrnn.data import from_tfds
from minrnn.data.paths import ENV_VAR, check_source, data_dir, user_cache_dir
from minrnn.data.batches import Batch, step_rng

D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
D4RL_URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/{name}"
ENVS = ("halfcheetah", "hopper", "walker2d")
DATASETS = ("medium", "medium_replay", "medium_expert")

PADDINGS = ("end", "start")
# Decision Transformer / Decision Mamba `get_batch`: the padded steps' action value.
START_PAD_ACTION = -10.0

_TRAIN_STREAM, _EVAL_STREAM = 0, 1


def d4rl_file_name(env: str, dataset: str) -> str:
  """D4RL's file name, e.g. `hopper_medium_replay-v2.hdf5`."""
  return f"{env}_{dataset}-v2.hdf5"


def find_d4rl_file(relative_path: str, configured_dir: str | os.PathLike | None = None
                   ) -> pathlib.Path:
  """`<data dir>/relative_path`, or a FileNotFoundError that says how to get the file."""
  path = data_dir(configured_dir) / relative_path
  if path.exists():
    return path
  name = pathlib.PurePath(relative_path).name
  raise FileNotFoundError(
      f"D4RL file not found: {path}.\n"
      f"D4RL's MuJoCo v2 files are at {D4RL_URL.format(name=name)} (e.g. `curl -L -o {path} "
      f"{D4RL_URL.format(name=name)}`). Point minrnn at a directory that holds {relative_path}: "
      f"set --config.data.dir=DIR or the environment variable {ENV_VAR}=DIR. Without either, "
      f"the data directory is {user_cache_dir()}.")


def read_d4rl(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """The five D4RL arrays of an hdf5 file (observations/actions float32, flags bool)."""
  import h5py  # Optional dependency (extra `rl`); only D4RL needs it.

  with h5py.File(path, "r") as f:
    missing = [k for k in D4RL_KEYS if k not in f]
    if missing:
      raise ValueError(f"{path} lacks the D4RL keys {missing}; it has {sorted(f.keys())}.")
    data = {k: f[k][()] for k in D4RL_KEYS}
  n = len(data["observations"])
  for k in D4RL_KEYS:
    if len(data[k]) != n:
      raise ValueError(f"{path}: {k} has {len(data[k])} rows, observations has {n}.")
  return {
      "observations": data["observations"].astype(np.float32),
      "actions": data["actions"].astype(np.float32),
      "rewards": data["rewards"].astype(np.float32).reshape(n),
      "terminals": data["terminals"].astype(bool).reshape(n),
      "timeouts": data["timeouts"].astype(bool).reshape(n),
  }


def read_dataset(*, source: str = "files", file: str | None = None,
                 data_dir: str | os.PathLike | None = None, tfds_name: str | None = None,
                 tfds_dir: str | os.PathLike | None = None
                 ) -> tuple[dict[str, np.ndarray], str]:
  """`(arrays, where)`: the five D4RL arrays (`read_d4rl`) and where they were read from.

  Args:
    source: "files" (the hdf5 `file`, relative to the data directory `data_dir`) or "tfds"
      (TFDS's prepared `tfds_name`, e.g. `d4rl_mujoco_hopper/v2-medium`, under `tfds_dir`).
  """
  check_source(source)
  if source == "tfds":
    return from_tfds.read_d4rl_tfds(tfds_name, tfds_dir), f"tfds:{tfds_name}"
  path = find_d4rl_file(file, data_dir)
  return read_d4rl(path), str(path)


def write_d4rl(path: str | os.PathLike, data: dict[str, np.ndarray]) -> None:
  """Writes the five arrays in D4RL's layout (what the generator and the tests use)."""
  import h5py

  pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
  with h5py.File(path, "w") as f:
    for k in D4RL_KEYS:
      f.create_dataset(k, data=np.asarray(data[k]))


@dataclasses.dataclass(frozen=True)
class Trajectory:
  """One episode: `observations (T, S)`, `actions (T, A)`, `rewards (T,)`,
  `returns_to_go (T,)` (undiscounted, float64) and whether it ended on a terminal."""

  observations: np.ndarray
  actions: np.ndarray
  rewards: np.ndarray
  returns_to_go: np.ndarray
  terminal: bool

  def __len__(self) -> int:
    return len(self.rewards)

  @property
  def episode_return(self) -> float:
    return float(self.returns_to_go[0])


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
  """`R_t = sum_{t' >= t} r_t'` (undiscounted, float64) of a `(T,)` reward array."""
  return np.cumsum(np.asarray(rewards, np.float64)[::-1])[::-1].copy()


def split_trajectories(data: dict[str, np.ndarray]) -> list[Trajectory]:
  """Cuts the flat arrays after every step whose terminal or timeout flag is set."""
  ends = np.flatnonzero(data["terminals"] | data["timeouts"]) + 1
  n = len(data["rewards"])
  bounds = list(ends) + ([n] if not ends.size or ends[-1] != n else [])
  trajectories, start = [], 0
  for end in bounds:
    trajectories.append(Trajectory(
        observations=data["observations"][start:end],
        actions=data["actions"][start:end],
        rewards=data["rewards"][start:end],
        returns_to_go=returns_to_go(data["rewards"][start:end]),
        terminal=bool(data["terminals"][end - 1]),
    ))
    start = end
  return trajectories


class D4RLWindows:
  """Context windows of a D4RL dataset (the data of `minrnn.tasks.decision.DecisionTask`).

  Args:
    env: "halfcheetah", "hopper" or "walker2d" (picks the Gymnasium environment for rollouts).
    data: the five D4RL arrays (`read_dataset`).
    source: where `data` was read from, for the run's records.
    batch_size, context: rows per batch and steps per row (`K`).
    return_scale: returns-to-go are divided by it (the Decision Transformer's 1000).
    max_timestep: timesteps are clipped below it (the size of the timestep embedding).
    eval_fraction: share of trajectories held out for the evaluation loss.
    eval_batches: number of held-out batches (windows drawn once, fixed by the seed).
    seed: fixes the split, the windows of every step and the evaluation windows.
    padding: where a short window's padding goes, `"end"` or `"start"` (see the module
      docstring).
  """

  def __init__(self, *, env: str, data: dict[str, np.ndarray], source: str, batch_size: int,
               context: int, return_scale: float, max_timestep: int, eval_fraction: float,
               eval_batches: int, seed: int, padding: str = "end"):
    if env not in ENVS:
      raise ValueError(f"Unknown D4RL environment {env!r}; choose one of {ENVS}.")
    if padding not in PADDINGS:
      raise ValueError(f"Unknown padding {padding!r} (data.padding); choose one of {PADDINGS}.")
    self.padding = padding
    if context < 1 or batch_size < 1:
      raise ValueError(f"context and batch_size must be >= 1, got {context}, {batch_size}.")
    self.env = env
    self.batch_size, self.context = batch_size, context
    self.return_scale, self.max_timestep = float(return_scale), max_timestep
    self.seed = seed
    self.source = source
    trajectories = split_trajectories(data)
    self.state_mean = data["observations"].mean(0)
    # The Decision Transformer's epsilon keeps constant observation entries finite.
    self.state_std = data["observations"].std(0) + 1e-6
    self.state_dim = data["observations"].shape[1]
    self.act_dim = data["actions"].shape[1]
    order = np.random.default_rng([seed, 7]).permutation(len(trajectories))
    num_eval = int(round(eval_fraction * len(trajectories)))
    if num_eval >= len(trajectories):
      raise ValueError(f"{source} has {len(trajectories)} trajectories; eval_fraction="
                       f"{eval_fraction} leaves none to train on.")
    self.eval_trajectories = [trajectories[i] for i in sorted(order[:num_eval])]
    self.train_trajectories = [trajectories[i] for i in sorted(order[num_eval:])]
    self.num_eval_batches = eval_batches if self.eval_trajectories else 0

  def normalize_states(self, observations: np.ndarray) -> np.ndarray:
    return ((observations - self.state_mean) / self.state_std).astype(np.float32)

  def _window(self, traj: Trajectory, start: int) -> dict[str, np.ndarray]:
    k, end = self.context, min(start + self.context, len(traj))
    n = end - start
    out = {
        "returns_to_go": np.zeros((k,), np.float32),
        "states": np.zeros((k, self.state_dim), np.float32),
        "actions": np.zeros((k, self.act_dim), np.float32),
        "timesteps": np.zeros((k,), np.int32),
        "weights": np.zeros((k,), np.float32),
    }
    real = slice(0, n)
    if self.padding == "start":
      real = slice(k - n, k)
      out["states"][:k - n] = self.normalize_states(np.zeros((1, self.state_dim)))
      out["actions"][:k - n] = START_PAD_ACTION
    out["returns_to_go"][real] = traj.returns_to_go[start:end] / self.return_scale
    out["states"][real] = self.normalize_states(traj.observations[start:end])
    out["actions"][real] = traj.actions[start:end]
    out["timesteps"][real] = np.minimum(np.arange(start, end), self.max_timestep - 1)
    out["weights"][real] = 1.0
    return out

  def _sample(self, trajectories: Sequence[Trajectory], rng: np.random.Generator) -> Batch:
    lengths = np.array([len(t) for t in trajectories], np.float64)
    picks = rng.choice(len(trajectories), size=self.batch_size, p=lengths / lengths.sum())
    rows = [self._window(trajectories[i], int(rng.integers(len(trajectories[i]))))
            for i in picks]
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

  def train_batch(self, step: int) -> Batch:
    return self._sample(self.train_trajectories, step_rng(self.seed, _TRAIN_STREAM, step))

  def eval_batches(self) -> Iterator[Batch]:
    for i in range(self.num_eval_batches):
      yield self._sample(self.eval_trajectories, step_rng(self.seed, _EVAL_STREAM, i))

  def describe(self) -> dict[str, Any]:
    returns = [t.episode_return for t in self.train_trajectories + self.eval_trajectories]
    return {"source": self.source, "trajectories": len(returns),
            "transitions": int(sum(len(t) for t in self.train_trajectories
                                   + self.eval_trajectories)),
            "return_min": float(np.min(returns)), "return_mean": float(np.mean(returns)),
            "return_max": float(np.max(returns))}
