"""The final test pass (`--final_test`): the best checkpoint scored under the config's protocol
(SRU++: one row, long segments, the same-length mask), written beside the training outputs
without changing them; one row scores a text as the rows it is cut into do."""

import hashlib
import json
import math
import pathlib
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

from minrnn import train as train_lib
from minrnn.data.segments import SegmentStream
from minrnn.data.vocab import ByteVocab
from minrnn.tasks.language import StreamTask
from minrnn.training.checkpointing import Checkpoints
from minrnn.training.config import load_config
from minrnn.training.final_test import final_test, protocol_config
from minrnn.training.steps import create_state, evaluate, make_eval_step
from minrnn.training.workdir import ConfigChangedError

VARIANT = "configs/enwik8.py:srupp,cpu"


def _config(data_dir):
  config = load_config(VARIANT)
  config.data.update(dir=str(data_dir), verify_checksum=False)
  # Only settings a resumed run may change (workdir.SAFE_CHANGES) differ from the file's, so
  # the command line below names the run by the file and the data alone.
  config.train.update(num_steps=4, eval_every=2, checkpoint_every=2, log_every=2,
                      progress_bar=False, tensorboard=False)
  return config


@pytest.fixture(scope="module")
def trained(fixture_data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("final_test") / "run"
  train_lib.train(_config(fixture_data_dir), workdir)
  return workdir


def _files(workdir: pathlib.Path) -> dict[str, str]:
  return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(workdir.rglob("*")) if p.is_file()}


def test_the_command_scores_the_best_checkpoint_and_changes_nothing_else(
    trained, fixture_data_dir, run_cli, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  before = _files(workdir)
  done = run_cli("train", "--config", VARIANT, "--workdir", workdir, "--final_test",
                 f"--config.data.dir={fixture_data_dir}", "--config.data.verify_checksum=False")
  assert done.returncode == 0, done.stderr
  assert "Final test pass of the best checkpoint" in done.stdout
  after = _files(workdir)
  assert after.pop("final_test.json") and after == before
  result = json.loads((workdir / "final_test.json").read_text())
  best = Checkpoints(workdir / "best", keep=1)
  assert result["step"] == best.latest_step()
  best.close()
  assert result["protocol"] == {"batch_size": 1, "seq_len": 96, "max_batches": 4,
                                "cell_kwargs": {"memory_length": 96, "same_length": True}}
  assert sorted(result["splits"]) == ["test", "valid"]
  for metrics in result["splits"].values():
    assert math.isfinite(metrics["bits_per_token"])
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]))
  # The training-time evaluation of the same checkpoint, kept for comparison.
  best = json.loads((workdir / "final_eval.json").read_text())["best"]
  assert result["step"] == best["step"]
  assert result["best_eval"]["loss"] == pytest.approx(best["eval"]["loss"])


def test_mistakes_are_explained(trained, fixture_data_dir, tmp_path):
  config = _config(fixture_data_dir)
  with pytest.raises(FileNotFoundError, match="holds no training run"):
    final_test(config, tmp_path / "nothing")
  with pytest.raises(ValueError, match="no final_test section"):
    protocol_config(load_config("configs/shakespeare.py:mingru,cpu"))
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  wrong_split = _config(fixture_data_dir)
  wrong_split.final_test.splits = ("dev",)
  with pytest.raises(ValueError, match=r"evaluation splits \['valid', 'test'\]"):
    final_test(wrong_split, workdir)
  other_model = _config(fixture_data_dir)
  other_model.model.num_layers = 3
  with pytest.raises(ConfigChangedError, match="model.num_layers"):
    final_test(other_model, workdir)
  shutil.rmtree(workdir / "best")
  with pytest.raises(FileNotFoundError, match="No best checkpoint"):
    final_test(config, workdir)
  assert not (workdir / "final_test.json").exists()


def test_protocol_settings_leave_the_training_config_alone(fixture_data_dir):
  config = _config(fixture_data_dir)
  test = protocol_config(config)
  assert (test.data.eval_batch_size, test.data.eval_seq_len, test.data.eval_batches) == (1, 96, 4)
  assert (test.model.cell_kwargs.memory_length, test.model.cell_kwargs.same_length) == (96, True)
  assert (config.data.eval_batch_size, config.model.cell_kwargs.memory_length) == (4, 32)
  assert "same_length" not in config.model.cell_kwargs


def test_one_row_scores_a_text_like_the_rows_it_is_cut_into():
  # Three rows of 20 predictions, 8-token segments (the last one padded): each row starts with
  # an empty state and memory and carries them to its end. Scoring each row's text alone with
  # one row must give the same losses, with the same-length mask and a memory that matters
  # (alpha = 1, so the attention reads it).
  config = load_config(VARIANT)
  config.model.cell_kwargs.update(memory_length=8, same_length=True)
  ids = np.asarray(jax.random.randint(jax.random.key(0), (61,), 0, 256), np.int32)
  rows = {f"row{b}": ids[20 * b:20 * b + 21] for b in range(3)}

  def task(eval_ids, batch_size):
    return StreamTask(SegmentStream(name="enwik8", train_ids=ids, eval_ids=eval_ids,
                                    vocab_size=256, batch_size=3, seq_len=8,
                                    eval_batch_size=batch_size, eval_seq_len=8), ByteVocab())

  batched, single = task({"text": ids}, 3), task(rows, 1)
  state = create_state(config, batched)
  model = state.model()
  for block in model.blocks:
    if block.temporal.attention:
      block.temporal.transform.alpha[...] = 1.0
  state.params = nnx.state(model, nnx.Param)
  whole = evaluate(make_eval_step(state, batched), state, batched)
  step = make_eval_step(state, single)
  per_row = [evaluate(step, state, single, name)["loss"] for name in rows]
  assert whole["loss"] == pytest.approx(np.mean(per_row), rel=1e-5)
  # The rows differ, so the equality is not that of a constant.
  assert np.ptp(per_row) > 1e-3
