"""The optimizer: AdamW and RAdam against float64 loops of their update rules, decay masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn.training.optimizer import make_optimizer
from minrnn.training.config import base_config

LR, WD, B1, B2, EPS, CLIP = 1e-2, 0.1, 0.9, 0.999, 1e-8, 1.0


def _train(optimizer, weight_decay_on="all"):
  train = base_config().train
  train.update(optimizer=optimizer, weight_decay_on=weight_decay_on, num_steps=1000,
               warmup_steps=0, learning_rate=LR, end_learning_rate=LR, weight_decay=WD,
               b1=B1, b2=B2, grad_clip=CLIP)
  return train


def _params():
  rng = np.random.default_rng(0)
  return {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=(4,))}


def _grads(step):
  rng = np.random.default_rng(step + 1)
  # Large enough that clipping to norm 1 is active.
  return {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=(4,))}


def _reference(optimizer, num_steps):
  """float64 loop: clip by global norm, Adam / RAdam moments, decoupled decay on everything."""
  params = {k: v.copy() for k, v in _params().items()}
  m = {k: np.zeros_like(v) for k, v in params.items()}
  v = {k: np.zeros_like(p) for k, p in params.items()}
  rho_inf = 2 / (1 - B2) - 1
  for t in range(1, num_steps + 1):
    grads = _grads(t - 1)
    norm = np.sqrt(sum(np.sum(g**2) for g in grads.values()))
    grads = {k: g * min(1.0, CLIP / norm) for k, g in grads.items()}
    for k in params:
      m[k] = B1 * m[k] + (1 - B1) * grads[k]
      v[k] = B2 * v[k] + (1 - B2) * grads[k]**2
      m_hat, v_hat = m[k] / (1 - B1**t), v[k] / (1 - B2**t)
      step = m_hat / (np.sqrt(v_hat) + EPS)
      if optimizer == "radam":
        rho = rho_inf - 2 * t * B2**t / (1 - B2**t)
        if rho >= 5:
          step = step * np.sqrt((rho - 4) * (rho - 2) * rho_inf
                                / ((rho_inf - 4) * (rho_inf - 2) * rho))
        else:
          step = m_hat
      params[k] = params[k] - LR * (step + WD * params[k])
  return params


@pytest.mark.parametrize("optimizer", ["adamw", "radam"])
def test_updates_match_the_update_rule(optimizer):
  # Ten steps cross RAdam's switch from momentum steps to rectified adaptive steps (t = 6).
  tx, _ = make_optimizer(_train(optimizer))
  params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), _params())
  state = tx.init(params)
  for step in range(10):
    grads = jax.tree.map(lambda g: jnp.asarray(g, jnp.float32), _grads(step))
    updates, state = tx.update(grads, state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
  expected = _reference(optimizer, 10)
  # RAdam's rectification term cancels in float32 (1 - b2^t for small t): about 1e-6 per step
  # of size 1e-2; a missing decay or rectification is off by 1e-3 or more.
  for name in expected:
    np.testing.assert_allclose(params[name], expected[name], rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("optimizer", ["adamw", "radam"])
def test_weight_decay_reaches_only_matrices_unless_asked(optimizer):
  params = {"kernel": jnp.ones((2, 2)), "scale": jnp.ones((2,))}
  zeros = jax.tree.map(jnp.zeros_like, params)
  for decay_on, scale_decays in (("matrices", False), ("all", True)):
    tx, _ = make_optimizer(_train(optimizer, decay_on))
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(updates["kernel"], -LR * WD, rtol=1e-6)
    np.testing.assert_allclose(updates["scale"], -LR * WD if scale_decays else 0.0, rtol=1e-6)


def test_unknown_settings_are_clear_errors():
  for key, value in (("optimizer", "adam"), ("weight_decay_on", "biases")):
    train = _train("adamw")
    train[key] = value
    with pytest.raises(ValueError, match=f"train.{key} must be one of"):
      make_optimizer(train)


def test_weight_decay_can_skip_the_recurrence_projection(tiny_lm):
  """`all_but_recurrence` (the official minRNN main.py's groups: no decay on the minRNN's input
  projection `to_hidden_and_gate`, weight and bias; decay on everything else): with zero
  gradients, exactly those parameters shrink."""
  model = tiny_lm("minlstm", features=8, num_layers=1, expansion=2, conv_kernel_size=0,
                  mlp_expansion=0)
  # Ones: a bias initialised at zero would not move under decay either.
  params = jax.tree.map(jnp.ones_like, nnx.state(model, nnx.Param))
  zeros = jax.tree.map(jnp.zeros_like, params)
  tx, _ = make_optimizer(_train("adamw", "all_but_recurrence"))
  updates, _ = tx.update(zeros, tx.init(params), params)
  moved = {"/".join(map(str, path)): bool(jnp.any(u[...] != 0))
           for path, u in nnx.to_flat_state(updates)}
  kept = {"blocks/0/temporal/cell/proj/kernel", "blocks/0/temporal/cell/proj/bias"}
  assert {name for name, m in moved.items() if not m} == kept
  assert {name for name, m in moved.items() if m} == {
      "blocks/0/temporal/to_out/kernel", "blocks/0/temporal/to_out/bias",
      "blocks/0/temporal_norm/scale", "embed/embedding", "norm/scale"}


def test_skipping_the_recurrence_needs_a_recurrence(tiny_lm):
  params = nnx.state(tiny_lm("transformer", num_layers=1, conv_kernel_size=0,
                             cell_kwargs={"num_heads": 2}), nnx.Param)
  tx, _ = make_optimizer(_train("adamw", "all_but_recurrence"))
  with pytest.raises(ValueError, match="found no recurrent cell's input projection"):
    tx.init(params)


def test_all_but_recurrence_spares_only_the_cells_input_projection(tiny_lm):
  # The official minRNN main.py: AdamW's decay on every parameter but `to_hidden_and_gate`.
  model = tiny_lm("minlstm", expansion=2, tie_embeddings=False, head_bias=True)
  _, params, _ = nnx.split(model, nnx.Param, ...)
  zeros = jax.tree.map(jnp.zeros_like, params)
  tx, _ = make_optimizer(_train("adamw", "all_but_recurrence"))
  updates, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
  flat = {jax.tree_util.keystr(path): (u, p) for (path, u), p in zip(
      jax.tree_util.tree_flatten_with_path(updates)[0], jax.tree.leaves(params))}
  spared = [name for name in flat if "'cell']['proj']" in name]
  assert len(spared) == 4  # Kernel and bias of each of the two blocks' cells.
  for name, (update, param) in flat.items():
    want = 0.0 if name in spared else -LR * WD * np.asarray(param)
    np.testing.assert_allclose(update, want, rtol=1e-6, atol=1e-12, err_msg=name)
