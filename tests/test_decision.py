"""The Decision-style model: step mode equals the parallel forward, causality, input checks,
and the rollout policies that read an episode step by step or through a sliding window."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn.models import build_decision_model
from minrnn.tasks import rollouts
from minrnn.training.config import block_defaults

STATE_DIM, ACT_DIM, K, B = 5, 2, 6, 3


def _model(cell, dropout=0.0, num_layers=2):
  section = block_defaults()
  section.update(cell=cell, features=16, num_layers=num_layers, conv_kernel_size=3,
                 mlp_expansion=2, dropout=dropout)
  if cell == "transformer":
    section.update(conv_kernel_size=0, cell_kwargs={"num_heads": 2})
  return build_decision_model(section, state_dim=STATE_DIM, act_dim=ACT_DIM, max_timestep=50,
                              seed=0)


def _context(seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=(B, K)), jnp.float32),
          jnp.asarray(rng.normal(size=(B, K, STATE_DIM)), jnp.float32),
          jnp.asarray(rng.uniform(-1, 1, size=(B, K, ACT_DIM)), jnp.float32),
          jnp.asarray(rng.integers(0, 50, size=(B, K)), jnp.int32))


def _jitted(model):
  """The model's parallel forward, compiled: far faster than op-by-op on a CPU."""
  graphdef, params = nnx.split(model)
  forward = jax.jit(lambda p, *args: nnx.merge(graphdef, p)(*args))
  return lambda *args: forward(params, *args)


def _step_mode(model, rtg, states, actions, timesteps):
  """Predicted actions `(B, K, A)` and the final state, one environment step at a time."""
  state = model.initialize_state(rtg.shape[0])
  predicted = []
  for t in range(rtg.shape[1]):
    state, action = model.act(state, rtg[:, t], states[:, t], timesteps[:, t])
    predicted.append(action)
    # The dataset's action, not the predicted one, as in the parallel forward.
    state = model.observe_action(state, actions[:, t], timesteps[:, t])
  return jnp.stack(predicted, 1), state


@pytest.mark.parametrize("cell,num_layers", [("mingru", 2), ("minlstm", 1), ("transformer", 1)])
def test_step_mode_predicts_the_parallel_forward_actions(cell, num_layers):
  model = _model(cell, num_layers=num_layers)
  graphdef, params = nnx.split(model)
  context = _context()
  parallel, final = jax.jit(lambda p, c: nnx.merge(graphdef, p)(*c))(params, context)
  assert parallel.shape == (B, K, ACT_DIM) and parallel.dtype == jnp.float32
  stepped, state = jax.jit(lambda p, c: _step_mode(nnx.merge(graphdef, p), *c))(params, context)
  np.testing.assert_allclose(stepped, parallel, rtol=1e-5, atol=1e-5)
  # The constant-size state after the window is the parallel mode's final state.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
               state, final)


def test_action_t_sees_neither_itself_nor_the_future():
  model = _jitted(_model("mingru", num_layers=1))
  rtg, states, actions, timesteps = _context()
  before, _ = model(rtg, states, actions, timesteps)
  t = 3
  changed, _ = model(rtg.at[:, t + 1:].add(5.0), states.at[:, t + 1:].add(1.0),
                     actions.at[:, t:].multiply(-1.0), timesteps)
  np.testing.assert_array_equal(changed[:, :t + 1], before[:, :t + 1])
  assert not np.allclose(changed[:, t + 1:], before[:, t + 1:])


def test_parallel_continues_from_a_state():
  model = _jitted(_model("minlstm", num_layers=1))
  rtg, states, actions, timesteps = _context(1)
  whole, _ = model(rtg, states, actions, timesteps)
  _, state = model(rtg[:, :2], states[:, :2], actions[:, :2], timesteps[:, :2])
  rest, _ = model(rtg[:, 2:], states[:, 2:], actions[:, 2:], timesteps[:, 2:], state)
  np.testing.assert_allclose(rest, whole[:, 2:], rtol=1e-5, atol=1e-5)


def test_dropout_only_with_keys():
  graphdef, params = nnx.split(_model("mingru", dropout=0.5, num_layers=1))
  context = _context()
  forward = jax.jit(lambda p, c: nnx.merge(graphdef, p)(*c)[0])
  with_keys = jax.jit(lambda p, c, key: nnx.merge(graphdef, p)(*c, rngs=nnx.Rngs(dropout=key))[0])
  a, b = forward(params, context), forward(params, context)
  c = with_keys(params, context, jax.random.key(1))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)


def test_wrong_shapes_are_clear_errors():
  model = _model("mingru", num_layers=1)
  rtg, states, actions, timesteps = _context()
  with pytest.raises(ValueError, match=r"states must have shape \(3, 6, 5\)"):
    model(rtg, states[..., :4], actions, timesteps)
  with pytest.raises(ValueError, match="returns_to_go must have shape"):
    model(rtg[..., None], states, actions, timesteps)
  with pytest.raises(ValueError, match="timesteps must be integers"):
    model(rtg, states, actions, timesteps.astype(jnp.float32))


def _left_padded(values, t, window):
  """Steps `max(0, t - window + 1) .. t` of `values` `(B, K, ...)`, zeros before them: the
  Decision-Mamba / Decision-Transformer `get_action` window at step t."""
  recent = values[:, max(0, t - window + 1):t + 1]
  pad = jnp.zeros((values.shape[0], window - recent.shape[1]) + values.shape[2:], values.dtype)
  return jnp.concatenate([pad, recent], axis=1)


@pytest.mark.parametrize("cell", ["transformer", "mingru"])
def test_window_policy_reads_the_left_padded_window_from_scratch(cell):
  model = _model(cell, num_layers=1)
  forward = _jitted(model)
  rtg, states, actions, timesteps = _context()
  window_size = K - 2
  act, observe, params, window = rollouts.policy(model, "window", window_size, B)
  for t in range(K):
    window, action = act(params, window, rtg[:, t], states[:, t], timesteps[:, t])
    # Step t's own action is unknown yet: a zero placeholder in the last slot.
    taken = actions.at[:, t].set(0.0)
    expected = forward(*(_left_padded(v, t, window_size)
                         for v in (rtg, states, taken, timesteps)))[0][:, -1]
    np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-5)
    window = observe(params, window, actions[:, t], timesteps[:, t])
  np.testing.assert_array_equal(window.timesteps, timesteps[:, 2:])
  np.testing.assert_array_equal(window.actions, actions[:, 2:])
  with pytest.raises(ValueError, match="Unknown rollout mode 'windowed'"):
    rollouts.policy(model, "windowed", K, B)
