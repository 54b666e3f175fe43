"""D4RL: the hdf5 reader, trajectories and windows, scores, configs, the rollout's return-to-go,
and a tiny train + rollout."""

import json
import types

import numpy as np
import pytest

from minrnn import train as train_lib
from minrnn.data import d4rl
from minrnn.tasks import rollouts
from minrnn.tasks.rollouts import normalized_score
from minrnn.training.config import load_config

STATE_DIM, ACT_DIM = 11, 3  # Hopper's sizes, so the fixture can drive Hopper-v5 rollouts.
# Trajectories: 0-3 (terminal), 4-9 (timeout), 10-10 (terminal), 11-14 (no flag: unfinished).
TERMINALS, TIMEOUTS, N = (3, 10), (9,), 15


def _fixture(path, n=N, terminals=TERMINALS, timeouts=TIMEOUTS, seed=0):
  rng = np.random.default_rng(seed)
  data = {
      "observations": rng.normal(2.0, 3.0, size=(n, STATE_DIM)).astype(np.float32),
      "actions": rng.uniform(-1, 1, size=(n, ACT_DIM)).astype(np.float32),
      "rewards": np.arange(n, dtype=np.float32),
      "terminals": np.zeros(n, bool),
      "timeouts": np.zeros(n, bool),
  }
  data["terminals"][list(terminals)] = True
  data["timeouts"][list(timeouts)] = True
  d4rl.write_d4rl(path, data)
  return data


def _task(tmp_path, **kwargs):
  _fixture(tmp_path / "d4rl" / "hopper_medium-v2.hdf5")
  data, source = d4rl.read_dataset(file="d4rl/hopper_medium-v2.hdf5", data_dir=str(tmp_path))
  args = dict(env="hopper", data=data, source=source, batch_size=4, context=3,
              return_scale=10.0, max_timestep=5, eval_fraction=0.0, eval_batches=1, seed=0)
  return d4rl.D4RLWindows(**{**args, **kwargs})


def test_trajectories_end_at_terminals_and_timeouts(tmp_path):
  written = _fixture(tmp_path / "f.hdf5")
  data = d4rl.read_d4rl(tmp_path / "f.hdf5")
  assert set(data) == set(d4rl.D4RL_KEYS) and data["terminals"].dtype == bool
  trajectories = d4rl.split_trajectories(data)
  assert [len(t) for t in trajectories] == [4, 6, 1, 4]
  assert [t.terminal for t in trajectories] == [True, False, True, False]
  np.testing.assert_array_equal(trajectories[1].observations, written["observations"][4:10])
  # Rewards are 0..14, so the second trajectory's returns-to-go are 4+...+9, 5+...+9, ...
  np.testing.assert_allclose(trajectories[1].returns_to_go, [39, 35, 30, 24, 17, 9])
  np.testing.assert_allclose(trajectories[2].returns_to_go, [10])
  assert trajectories[0].episode_return == 0 + 1 + 2 + 3


def test_a_flag_on_the_last_row_leaves_no_empty_trajectory(tmp_path):
  _fixture(tmp_path / "f.hdf5", n=6, terminals=(5,), timeouts=(2,))
  trajectories = d4rl.split_trajectories(d4rl.read_d4rl(tmp_path / "f.hdf5"))
  assert [len(t) for t in trajectories] == [3, 3]


def test_windows_are_normalised_padded_and_fixed_by_seed_and_step(tmp_path):
  task = _task(tmp_path)
  data = d4rl.read_d4rl(task.source)
  np.testing.assert_allclose(task.state_mean, data["observations"].mean(0), rtol=1e-6)
  batch = task.train_batch(7)
  assert {k: v.shape for k, v in batch.items()} == {
      "returns_to_go": (4, 3), "states": (4, 3, STATE_DIM), "actions": (4, 3, ACT_DIM),
      "timesteps": (4, 3), "weights": (4, 3)}
  for k, v in task.train_batch(7).items():
    np.testing.assert_array_equal(v, batch[k])
  assert any(not np.array_equal(v, batch[k]) for k, v in task.train_batch(8).items())
  by_obs = {tuple(np.round(task.normalize_states(o), 5)): (i, t)
            for i, traj in enumerate(task.train_trajectories)
            for t, o in enumerate(traj.observations)}
  for row in range(4):
    valid = batch["weights"][row] > 0
    # Real steps come first, padding (all zeros) after them.
    assert valid[0] and np.all(np.diff(valid.astype(int)) <= 0)
    assert not batch["states"][row][~valid].any() and not batch["actions"][row][~valid].any()
    i, t0 = by_obs[tuple(np.round(batch["states"][row, 0], 5))]
    traj = task.train_trajectories[i]
    n = int(valid.sum())
    assert n == min(3, len(traj) - t0)
    np.testing.assert_allclose(batch["returns_to_go"][row, :n],
                               traj.returns_to_go[t0:t0 + n] / 10.0, rtol=1e-6)
    np.testing.assert_array_equal(batch["actions"][row, :n], traj.actions[t0:t0 + n])
    # Timesteps count from the episode's start and are clipped below max_timestep.
    np.testing.assert_array_equal(batch["timesteps"][row, :n],
                                  np.minimum(np.arange(t0, t0 + n), 4))


def test_start_padding_is_decision_mambas_get_batch(tmp_path):
  end, start = _task(tmp_path), _task(tmp_path, padding="start")
  padded_rows = 0
  for step in range(6):
    a, b = end.train_batch(step), start.train_batch(step)
    for row in range(4):
      n = int(a["weights"][row].sum())
      pad = 3 - n
      padded_rows += pad > 0
      # The same real steps, moved to the end of the row.
      for key in a:
        np.testing.assert_array_equal(b[key][row, pad:], a[key][row, :n])
      # Before them (get_batch of the Decision Transformer / Decision Mamba): zero raw states,
      # normalised; actions -10; returns-to-go, timesteps and weights 0.
      np.testing.assert_allclose(b["states"][row, :pad],
                                 np.broadcast_to(-start.state_mean / start.state_std,
                                                 (pad, STATE_DIM)), rtol=1e-6)
      np.testing.assert_array_equal(b["actions"][row, :pad], -10.0)
      for key in ("returns_to_go", "timesteps", "weights"):
        np.testing.assert_array_equal(b[key][row, :pad], 0)
  assert padded_rows > 0
  with pytest.raises(ValueError, match="Unknown padding 'left'.*'end', 'start'"):
    _task(tmp_path, padding="left")


def test_missing_file_names_it_and_says_how_to_get_it(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"walker2d_medium_expert-v2\.hdf5") as info:
    d4rl.find_d4rl_file("d4rl/walker2d_medium_expert-v2.hdf5", tmp_path)
  assert str(tmp_path) in str(info.value) and "MINRNN_DATA_DIR" in str(info.value)


def test_file_without_d4rl_keys_is_a_clear_error(tmp_path):
  import h5py
  with h5py.File(tmp_path / "bad.hdf5", "w") as f:
    f["observations"] = np.zeros((3, 2))
  with pytest.raises(ValueError, match=r"lacks the D4RL keys \['actions'"):
    d4rl.read_d4rl(tmp_path / "bad.hdf5")


def test_normalized_score_uses_d4rl_reference_returns():
  # D4RL's REF_MIN_SCORE / REF_MAX_SCORE (d4rl/infos.py), written out here, not read back.
  for env, low, high in (("hopper", -20.272305, 3234.3),
                         ("halfcheetah", -280.178953, 12135.0),
                         ("walker2d", 1.629008, 4592.3)):
    assert normalized_score(env, low) == pytest.approx(0.0, abs=1e-9)
    assert normalized_score(env, high) == pytest.approx(100.0)
    assert normalized_score(env, (low + high) / 2) == pytest.approx(50.0)


class _ConstantRewardEnv:
  """Hopper-sized observations of zeros and a reward of 2 at every step, never ending."""

  action_space = types.SimpleNamespace(low=-np.ones(ACT_DIM), high=np.ones(ACT_DIM))

  def reset(self, seed=None):
    return np.zeros(STATE_DIM), {}

  def step(self, action):
    return np.zeros(STATE_DIM), 2.0, False, False, {}

  def close(self):
    pass


def test_rollout_feeds_the_scaled_return_to_go_that_is_left(monkeypatch):
  fed = []

  def recording_policy(model, mode, context, batch):
    def act(params, state, rtg, obs, t):
      fed.append(np.asarray(rtg))
      return state, np.zeros((batch, ACT_DIM), np.float32)
    return act, lambda params, state, action, t: state, None, None

  monkeypatch.setattr(rollouts, "make_env", lambda env: _ConstantRewardEnv())
  monkeypatch.setattr(rollouts, "policy", recording_policy)
  model = types.SimpleNamespace(state_dim=STATE_DIM, max_timestep=1000)
  result = rollouts.rollout(model, "hopper", target_return=100.0, num_episodes=2,
                            state_mean=np.zeros(STATE_DIM), state_std=np.ones(STATE_DIM),
                            return_scale=10.0, max_steps=5, progress_bar=False)
  # At step t the target minus the t rewards received so far, divided by the return scale.
  for t, rtg in enumerate(fed):
    np.testing.assert_allclose(rtg, [(100.0 - 2.0 * t) / 10.0] * 2, rtol=1e-6)
  assert len(fed) == 5 and result["returns"] == [10.0, 10.0]


class _RecordingEnv(_ConstantRewardEnv):
  """Observations that change with the episode's seed and the step; records the actions."""

  def reset(self, seed=None):
    self.seed, self.t, self.actions = seed, 0, []
    return self._obs(), {}

  def _obs(self):
    return 0.1 * self.t + 0.01 * self.seed + 0.05 * np.arange(STATE_DIM)

  def step(self, action):
    self.actions.append(np.asarray(action))
    self.t += 1
    return self._obs(), 2.0, False, False, {}


def test_window_rollout_acts_on_the_left_padded_window_of_the_episode(monkeypatch):
  from minrnn.models import build_decision_model
  from minrnn.training.config import block_defaults

  section = block_defaults()
  section.update(cell="mingru", features=16, num_layers=1, conv_kernel_size=0,
                 mlp_expansion=2, expansion=2)
  model = build_decision_model(section, state_dim=STATE_DIM, act_dim=ACT_DIM, max_timestep=50,
                               seed=0)
  envs = []
  monkeypatch.setattr(rollouts, "make_env", lambda env: envs.append(_RecordingEnv()) or envs[-1])
  mean, std = np.full(STATE_DIM, 0.2), np.full(STATE_DIM, 2.0)
  context, steps, target, scale = 3, 5, 100.0, 10.0
  rollouts.rollout(model, "hopper", target_return=target, num_episodes=2, state_mean=mean,
                   state_std=std, return_scale=scale, mode="window", context=context,
                   max_steps=steps, seed=7, progress_bar=False)
  for episode, env in enumerate(envs):
    taken = np.stack(env.actions)
    for t in range(steps):
      # Decision Mamba's get_action at step t: steps t-2..t, zeros to their left; the
      # return-to-go is the target less the rewards so far (2 a step), over the scale; the
      # state normalised; step t's action a zero placeholder; the action read last.
      first = max(0, t - context + 1)
      pad = context - (t + 1 - first)
      rtg = [0.0] * pad + [(target - 2.0 * j) / scale for j in range(first, t + 1)]
      obs = [np.zeros(STATE_DIM)] * pad + [
          (0.1 * j + 0.01 * (7 + episode) + 0.05 * np.arange(STATE_DIM) - mean) / std
          for j in range(first, t + 1)]
      acts = [np.zeros(ACT_DIM)] * pad + [taken[j] for j in range(first, t)] + [
          np.zeros(ACT_DIM)]
      times = [0] * pad + list(range(first, t + 1))
      want, _ = model(np.asarray([rtg], np.float32), np.asarray([obs], np.float32),
                      np.asarray([acts], np.float32), np.asarray([times], np.int32))
      np.testing.assert_allclose(taken[t], want[0, -1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("task", ["hopper-medium", "walker2d-medium-replay",
                                  "halfcheetah-medium-expert"])
@pytest.mark.parametrize("model", ["mingru", "minlstm", "transformer"])
def test_config_variants_name_their_file_and_model(task, model):
  env, dataset = task.split("-", 1)
  for size in ("paper", "cpu"):
    config = load_config(f"configs/d4rl.py:{task},{model},{size}")
    assert (config.data.env, config.data.dataset, config.model.cell) == (env, dataset, model)
    assert config.data.file == f"d4rl/{env}_{dataset.replace('-', '_')}-v2.hdf5"
    assert config.data.rollouts.mode == "window"  # Every model, as the paper evaluates.
    assert 0 <= config.train.warmup_steps < config.train.num_steps
  with pytest.raises(ValueError, match="needs a task in its variant"):
    load_config("configs/d4rl.py:mingru")


def test_tiny_train_and_rollout_end_to_end(tiny_run, tmp_path):
  pytest.importorskip("mujoco", reason="rollouts need gymnasium[mujoco] (the `rl` extra)")
  pytest.importorskip("gymnasium", reason="rollouts need gymnasium[mujoco] (the `rl` extra)")
  config = tiny_run("d4rl")
  config.data.rollouts.num_episodes = 2
  result = train_lib.train(config, tmp_path / "run")
  saved = json.loads((tmp_path / "run" / "final_eval.json").read_text())
  assert saved["step"] == 4 and saved["completed"]
  assert np.isfinite(saved["eval"]["loss"]) and saved["eval"]["loss"] > 0
  final = result["final_evaluation"]
  assert set(final["targets"]) == {"3600", "1800"}
  rollout = final["targets"]["3600"]
  assert len(rollout["returns"]) == 2 and all(1 <= n <= 8 for n in rollout["lengths"])
  assert rollout["normalized_scores"] == pytest.approx(
      [normalized_score("hopper", r) for r in rollout["returns"]])
  assert final["normalized_score"] == pytest.approx(rollout["mean_normalized_score"])
  assert final["data"]["trajectories"] == 4
