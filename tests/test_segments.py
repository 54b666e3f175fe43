"""Segment streams and the training loop's state-carrying path (truncated BPTT)."""

import json
import pathlib

import numpy as np
import pytest

from minrnn import train as train_lib
from minrnn.data.segments import SegmentStream
from minrnn.data.vocab import ByteVocab
from minrnn.tasks import StreamTask, make_task
from minrnn.training.config import load_config
from minrnn.training.metrics import read_metrics, series
from minrnn.training.steps import create_state, evaluate, make_eval_step

L = 8


def stream(ids, **kwargs):
  args = dict(name="toy", train_ids=ids, eval_ids={"valid": ids[:4 * L + 1]}, vocab_size=40,
              batch_size=2, seq_len=L)
  return SegmentStream(**{**args, **kwargs})


def test_training_batches_are_consecutive_segments_of_each_row():
  ids = np.arange(1000) % 40
  task = stream(ids)
  assert task.row_len == 499 and task.num_segments == 62
  first, second = task.train_batch(0), task.train_batch(1)
  np.testing.assert_array_equal(first["inputs"][1], ids[499:499 + L])
  np.testing.assert_array_equal(second["inputs"][0], ids[L:2 * L])
  np.testing.assert_array_equal(first["targets"][:, :-1], first["inputs"][:, 1:])
  np.testing.assert_array_equal(task.train_batch(62)["inputs"], first["inputs"])
  assert [task.starts_stream(s) for s in (0, 1, 61, 62)] == [True, False, False, True]


@pytest.mark.parametrize("n", [4 * L + 1, 37])
def test_evaluation_predicts_every_token_exactly_once(n):
  ids = np.random.default_rng(0).integers(0, 40, n)
  task = stream(ids, eval_ids={"valid": ids}, eval_batch_size=3)
  batches = list(task.eval_batches())
  rows = [np.concatenate([b[k] for b in batches], 1) for k in ("targets", "weights", "inputs")]
  targets, weights, inputs = rows
  np.testing.assert_array_equal(targets[weights > 0], ids[1:])
  np.testing.assert_array_equal(inputs[weights > 0], ids[:-1])


def test_too_short_splits_are_explained():
  with pytest.raises(ValueError, match="too short.*lower data.batch_size"):
    stream(np.arange(10))


@pytest.fixture(scope="module")
def tiny_configs():
  configs = {cell: load_config(f"configs/enwik8.py:{cell},cpu")
             for cell in ("mingru", "minlstm", "srupp")}
  for config in configs.values():
    config.model.features = 16
  return configs


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_two_segments_with_carry_score_like_one_long_segment(tiny_configs, cell):
  config = tiny_configs[cell]
  ids = np.random.default_rng(1).integers(0, 40, 4 * L + 1)
  two = StreamTask(stream(ids, eval_ids={"valid": ids}, eval_seq_len=L), ByteVocab())
  one = StreamTask(stream(ids, eval_ids={"valid": ids}, eval_seq_len=2 * L), ByteVocab())
  assert len(list(two.eval_batches())) == 2 and len(list(one.eval_batches())) == 1
  state = create_state(config, two)
  step = make_eval_step(state, two)
  split = evaluate(step, state, two)
  whole = evaluate(step, state, one)
  assert split["loss"] == pytest.approx(whole["loss"], rel=1e-5)
  assert split["perplexity"] == pytest.approx(np.exp(whole["loss"]), rel=1e-5)
  assert split["accuracy"] == whole["accuracy"]


def test_segment_training_resumes_exactly_with_the_carried_state(tiny_configs, tmp_path):
  config = tiny_configs["srupp"]
  config.data.name = "shakespeare"
  config.data.segments = True
  config.data.download = False
  config.data.batch_size = 8  # Rows of 125k characters: no wrap-around in these steps.
  config.data.eval_batch_size = 8
  config.data.eval_batches = 1
  config.train.num_steps = 6
  config.train.log_every = 1
  config.train.eval_every = 3
  config.train.checkpoint_every = 3
  config.train.progress_bar = False
  config.train.tensorboard = False
  config.model.io_dropout = 0.1  # Dropout keys must also be reproduced on resume.
  config.model.cell_kwargs.dropout = 0.1
  config.model.num_layers = 1  # One attention layer: its memory and mask are checkpointed too.
  config.model.cell_kwargs.attention_every = 1
  straight = train_lib.train(config, tmp_path / "straight")
  config.train.stop_at_step = 3
  train_lib.train(config, tmp_path / "resumed")
  config.train.stop_at_step = None
  resumed = train_lib.train(config, tmp_path / "resumed")

  def losses(run):
    return series(read_metrics(tmp_path / run / "metrics.jsonl"), "train", "loss")

  assert losses("resumed") == losses("straight")
  assert resumed["eval"] == straight["eval"]
  assert set(straight["eval"]) == {"loss", "bits_per_token", "perplexity", "accuracy"}
  saved = json.loads((tmp_path / "straight" / "final_eval.json").read_text())
  assert "splits" not in saved  # Shakespeare as a stream has a validation split only.


def test_the_state_starts_afresh_at_every_pass_over_the_stream(tiny_run, tmp_path):
  # With the learning rate 0 nothing changes between passes, so if the state is reset where
  # each pass begins, step k of every pass scores exactly as step k of the first.
  config = tiny_run("enwik8")
  config.data.update(batch_size=2, seq_len=512)  # 3 segments per row of the fixture's text.
  config.model.dropout = 0.0
  config.train.update(learning_rate=0.0, end_learning_rate=0.0, weight_decay=0.0)
  passes = make_task(config.data, config.seed).stream.num_segments
  assert passes == 3
  config.train.num_steps = config.train.eval_every = 2 * passes + 1
  train_lib.train(config, tmp_path)
  _, losses = series(read_metrics(tmp_path / "metrics.jsonl"), "train", "loss")
  assert len(losses) == 2 * passes + 1
  for k in range(passes + 1):
    assert losses[k + passes] == losses[k], f"step {k + passes} of the second pass"
  assert len(set(losses[:passes])) == passes  # The segments of one pass differ.
  assert losses[passes + 1] != losses[passes]
