"""Gradient accumulation (`train.grad_accum_steps`): one update from k micro-batches is the
update of the whole batch, also when the micro-batches hold different numbers of scored
positions and when the model state is carried; a batch that does not split is a clear error; a
run with accumulation resumes exactly. (On a device mesh: `tests/test_distributed.py`, whose
selective-copying runs accumulate 2 micro-batches, as the config does.)"""

import jax
import numpy as np
import pytest

from minrnn import train as train_lib
from minrnn.tasks import make_task
from minrnn.training.loop import prepare
from minrnn.training.metrics import read_metrics, series
from minrnn.training.steps import create_state, initial_model_state, make_train_step


def _step(config, batch, grad_accum_steps, model_state=None):
  """One training step of `config`'s task from its initial parameters."""
  task = make_task(config.data, config.seed)
  state = create_state(config, task)
  step = make_train_step(state, task, grad_accum_steps)
  if task.carries_state and model_state is None:
    model_state = initial_model_state(state, task.batch_size)
  params, _, metrics, new_state = step(state.params, state.opt_state, batch,
                                       jax.random.key(0), model_state)
  return jax.device_get((params, metrics, new_state))


def _uneven_copy_batch(config):
  """A selective-copying batch of 8 rows whose scored positions are mostly in the rows of the
  first micro-batch (rows 0, 2, 4, 6 with 2 micro-batches): 8 + 1 of 9 scored targets."""
  batch = make_task(config.data, config.seed).train_batch(0)
  weights = batch["weights"].copy()
  weights[1::2] = 0.0
  weights[1, -1] = 1.0
  batch["weights"] = weights
  return batch


def _close(got, want, rtol=2e-5, atol=1e-7):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("grad_accum_steps", [2, 4])
def test_accumulated_step_equals_the_whole_batch_with_uneven_weights(tiny_run,
                                                                     grad_accum_steps):
  config = tiny_run("copy")
  config.model.dropout = 0.0  # Micro-batches draw other dropout masks than the whole batch.
  config.train.learning_rate = config.train.end_learning_rate = 1e-2
  config.train.warmup_steps = 0
  # RAdam's first update is a momentum step, proportional to the gradient (Adam's divides it
  # by its own size, which turns rounding in gradients near zero into whole steps).
  config.train.optimizer = "radam"
  batch = _uneven_copy_batch(config)
  params_1, metrics_1, _ = _step(config, batch, 1)
  params_k, metrics_k, _ = _step(config, batch, grad_accum_steps)
  # The loss is the whole batch's mean over its 9 scored targets, not a mean of the
  # micro-batches' means (which would weigh the one target of a micro-batch like 8).
  np.testing.assert_allclose(metrics_k["loss"], metrics_1["loss"], rtol=1e-6)
  np.testing.assert_allclose(metrics_k["grad_norm"], metrics_1["grad_norm"], rtol=1e-5)
  _close(params_k, params_1)


def test_micro_batches_draw_their_own_dropout_masks(tiny_run):
  """Two micro-batches holding the same rows, each scored alone (the other's rows weigh 0):
  their gradients differ only by their dropout masks, so they differ with dropout and are
  equal without it. One dropout key for every micro-batch would make them equal."""
  config = tiny_run("copy")
  batch = make_task(config.data, config.seed).train_batch(0)
  # Rows 2j and 2j + 1 alike: micro-batch 0 holds rows 0, 2, 4, 6 and micro-batch 1 rows
  # 1, 3, 5, 7, the same four rows.
  same = {k: np.repeat(np.asarray(v)[:4], 2, axis=0) for k, v in batch.items()}
  only = lambda i: {**same, "weights": same["weights"] * (np.arange(8) % 2 == i)[:, None]}
  for dropout in (0.5, 0.0):
    config.model.dropout = dropout
    (_, first, _), (_, second, _) = (_step(config, only(i), 2) for i in (0, 1))
    assert (first["grad_norm"] != second["grad_norm"]) == (dropout > 0), dropout


def test_accumulation_carries_the_state_of_each_row(tiny_run):
  config = tiny_run("enwik8")
  config.data.batch_size = 4  # 2 rows a micro-batch, so that their order matters.
  task = make_task(config.data, config.seed)
  # A non-zero state to start from: the one after a first segment.
  _, _, state = _step(config, task.train_batch(0), 1)
  _, metrics_1, state_1 = _step(config, task.train_batch(1), 1, state)
  _, metrics_2, state_2 = _step(config, task.train_batch(1), 2, state)
  np.testing.assert_allclose(metrics_2["loss"], metrics_1["loss"], rtol=1e-6)
  _close(state_2, state_1, rtol=1e-5, atol=1e-6)


def test_a_batch_that_does_not_split_is_a_clear_error(tiny_run, tmp_path):
  config = tiny_run("copy")
  config.data.batch_size = 6
  config.train.grad_accum_steps = 4
  with pytest.raises(ValueError, match=r"grad_accum_steps=4 must be a positive divisor of the "
                                       r"batch size 6"):
    prepare(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_a_run_with_accumulation_and_dropout_resumes_exactly(tiny_run, tmp_path):
  config = tiny_run("copy", num_steps=4)
  config.model.dropout = 0.1
  config.train.grad_accum_steps = 2
  config.train.checkpoint_every = 2
  train_lib.train(config, tmp_path / "straight")
  stopped = config.copy_and_resolve_references()
  stopped.train.stop_at_step = 2
  train_lib.train(stopped, tmp_path / "resumed")
  train_lib.train(config, tmp_path / "resumed")
  losses = [series(read_metrics(tmp_path / name / "metrics.jsonl"), "train", "loss")[1]
            for name in ("straight", "resumed")]
  assert len(losses[0]) == 4 and losses[0] == losses[1]
