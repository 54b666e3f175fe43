"""The sequence classifier and the classification task (ListOps): padding never reaches a
row's logits, the readouts read what they say, the task's sums weigh real rows only, a tiny
ListOps run trains end to end through the one loop, and a small model learns shallow ListOps."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from minrnn.data import listops
from minrnn.models import build_classifier
from minrnn.models.classifier import readout
from minrnn.tasks import make_task
from minrnn.tasks.classification import classification_sums
from minrnn.train import train
from minrnn.training.config import classifier_defaults, load_config
from minrnn.training.steps import create_state, evaluate, make_eval_step, make_train_step

VOCAB, CLASSES = 16, 10
LENGTHS = np.array([5, 9, 1])
_forward = nnx.jit(lambda model, tokens, lengths: model(tokens, lengths))


def _model(readout_kind="last", cell="mingru", **model):
  section = classifier_defaults()
  section.update(dict(cell=cell, features=16, num_layers=2, conv_kernel_size=3,
                      mlp_expansion=2, expansion=2, readout=readout_kind))
  section.update(model)
  return build_classifier(section, vocab_size=VOCAB, num_classes=CLASSES, seed=0)


def _padded(width: int, pad):
  """The same three rows (lengths `LENGTHS`) right-padded to `width` with `pad(shape)`."""
  rows = np.random.default_rng(0).integers(0, VOCAB - 1, (3, 9))
  tokens = np.asarray(pad((3, width)), np.int32)
  for i, n in enumerate(LENGTHS):
    tokens[i, :n] = rows[i, :n]
  return jnp.asarray(tokens), jnp.asarray(LENGTHS, jnp.int32)


@pytest.mark.parametrize("readout_kind,cell,kwargs", [
    ("last", "mingru", {}), ("mean", "minlstm", {}),
    # A bidirectional SRU reads each row backward too: only `seq_lengths` keeps it off padding.
    ("last", "sru", {"bidirectional": True})])
def test_padding_never_changes_a_rows_logits(readout_kind, cell, kwargs):
  model = _model(readout_kind, cell, cell_kwargs=kwargs)
  noise = np.random.default_rng(1)
  short = _forward(model, *_padded(9, lambda s: np.full(s, listops.PAD_ID)))
  long = _forward(model, *_padded(20, lambda s: noise.integers(0, VOCAB, s)))
  assert short.shape == (3, CLASSES) and short.dtype == jnp.float32
  np.testing.assert_allclose(long, short, rtol=1e-5, atol=1e-5)
  # The longest row alone, unpadded.
  tokens, _ = _padded(9, lambda s: np.zeros(s))
  alone = _forward(model, tokens[1:2], jnp.asarray([9], jnp.int32))
  np.testing.assert_allclose(alone[0], short[1], rtol=1e-5, atol=1e-5)


def test_readouts_read_the_last_real_position_or_the_mean_of_the_real_ones():
  x = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 3)
  lengths = jnp.asarray([2, 4])
  np.testing.assert_array_equal(readout(x, lengths, "last"), np.stack([x[0, 1], x[1, 3]]))
  np.testing.assert_allclose(readout(x, lengths, "mean"),
                             np.stack([x[0, :2].mean(0), x[1].mean(0)]))
  with pytest.raises(ValueError, match="Unknown readout 'max'.*'last', 'mean'"):
    _model("max")


def test_the_sums_weigh_real_rows_and_count_the_right_ones():
  model = _model()
  tokens, lengths = _padded(9, lambda s: np.full(s, listops.PAD_ID))
  labels = jnp.asarray([3, 7, 0])
  logits = _forward(model, tokens, lengths)
  # The third row pads the batch: length 0, no weight.
  batch = {"inputs": tokens, "seq_lengths": lengths.at[2].set(0), "labels": labels}
  sums = nnx.jit(classification_sums)(model, batch)
  log_probs = jax.nn.log_softmax(np.asarray(logits, np.float64)[:2], axis=-1)
  expected = -(log_probs[0, 3] + log_probs[1, 7])
  np.testing.assert_allclose(sums["loss"], expected, rtol=1e-5)
  assert float(sums["weight"]) == 2.0
  right = (np.argmax(np.asarray(logits)[:2], -1) == np.asarray(labels[:2])).sum()
  assert float(sums["correct"]) == right


def _tiny_listops(tmp_path, steps=4):
  config = load_config("configs/listops.py:mingru,cpu")
  config.data.update(dir=str(tmp_path / "data"), batch_size=4, eval_batch_size=3,
                     train_size=12, valid_size=5, test_size=4, max_depth=3, max_args=3,
                     min_length=4, max_length=16)
  config.model.update(features=16, num_layers=1)
  config.train.update(num_steps=steps, warmup_steps=1, eval_every=2, checkpoint_every=2,
                      log_every=1)
  return config


def test_a_tiny_listops_run_reports_the_test_accuracy_at_the_best_validation(tmp_path):
  config = _tiny_listops(tmp_path)
  task = make_task(config.data, config.seed)
  assert (task.name, task.headline, task.eval_splits) == ("listops", "accuracy",
                                                          ("valid", "test"))
  assert isinstance(task.build_model(config.model, 0), nnx.Module)
  result = train(config, tmp_path / "run")
  best = result["best"]
  assert result["completed"] and best["metric"] == "accuracy" and best["step"] in (2, 4)
  test = best["splits"]["test"]
  assert set(test) == {"loss", "accuracy"} and test["accuracy"] in {0, 0.25, 0.5, 0.75, 1}
  assert result["data"]["sizes"] == {"train": 12, "valid": 5, "test": 4}
  final = json.loads((tmp_path / "run" / "final_eval.json").read_text())
  assert final["best"]["splits"]["test"] == test
  # The sets were generated once, into the data directory's listops/ folder.
  assert len(list((tmp_path / "data" / "listops").glob("*.npz"))) == 3


def test_a_small_model_learns_shallow_listops(tmp_path):
  # One operator over 2-4 digits: learnable in a few hundred steps, so a batch whose labels do
  # not belong to its rows shows as chance (10 % with them shifted by a row, against 58 %).
  config = load_config("configs/listops.py:mingru,cpu", overrides=[
      f"data.dir='{tmp_path}'", "data.train_size=2000", "data.valid_size=300",
      "data.test_size=10", "data.max_depth=2", "data.max_args=4", "data.min_length=3",
      "data.max_length=8", "data.eval_batch_size=100", "train.num_steps=200",
      "train.warmup_steps=10", "train.learning_rate=3e-3"])
  task = make_task(config.data, config.seed)
  state = create_state(config, task)
  step, evaluate_step = make_train_step(state, task), make_eval_step(state, task)
  for i in range(config.train.num_steps):
    state.params, state.opt_state, _, _ = step(state.params, state.opt_state,
                                               task.train_batch(i), jax.random.key(i), None)
  labels = task.source.splits["valid"].labels
  majority = np.bincount(labels).max() / len(labels)
  assert majority < 0.2
  assert evaluate(evaluate_step, state, task)["accuracy"] > 2.5 * majority
