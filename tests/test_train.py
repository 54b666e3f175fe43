"""The training loop: loss falls, exact resumption, checkpoints, outputs, command-line config."""

import json
import pathlib
import shutil

import pytest

from minrnn import train as train_lib
from minrnn.training.checkpointing import CheckpointError
from minrnn.training.config import load_config
from minrnn.training.metrics import read_metrics, series
from minrnn.training.optimizer import learning_rate_schedule


def tiny_copy_config(tiny_run, num_steps=6):
  """Selective copying small enough to compile and run in seconds, with dropout on (its keys
  must also be reproduced on resume)."""
  config = tiny_run("copy", num_steps)
  config.model.dropout = 0.1
  config.train.eval_every = 3
  config.train.checkpoint_every = 100
  return config


def tiny_shakespeare_config(tiny_run, num_steps):
  config = tiny_run("shakespeare", num_steps)
  config.model.features = 32
  config.train.warmup_steps = 5
  config.train.learning_rate = 1e-2
  config.train.log_every = 10
  config.train.eval_every = num_steps // 2
  config.train.tensorboard = True
  return config


def _train_losses(workdir):
  return series(read_metrics(pathlib.Path(workdir) / "metrics.jsonl"), "train", "loss")


def test_loss_falls_and_outputs_are_written(tiny_run, tmp_path):
  config = tiny_shakespeare_config(tiny_run, num_steps=100)
  result = train_lib.train(config, tmp_path)
  steps, losses = _train_losses(tmp_path)
  assert steps == list(range(10, 101, 10))
  # Uniform guessing over 65 characters costs 4.17 nats, unigram frequencies about 3.3.
  assert losses[-1] < losses[0] - 0.5
  assert result["eval"]["loss"] < 3.0
  assert result["completed"] and result["step"] == 100
  best = result["best"]
  assert best["metric"] == "loss" and best["step"] == 100
  assert result["eval"]["loss"] == pytest.approx(best["value"], rel=1e-6)
  # A character LM reports no sequence accuracy: it means nothing for it.
  assert set(result["eval"]) == {"loss", "bits_per_token", "accuracy"}
  for name in ("config.json", "final_eval.json", "loss_curve.png"):
    assert (tmp_path / name).stat().st_size > 0
  assert json.loads((tmp_path / "config.json").read_text())["train"]["num_steps"] == 100
  assert json.loads((tmp_path / "final_eval.json").read_text())["step"] == 100
  assert any((tmp_path / "tensorboard").iterdir())
  assert sorted(p.name for p in (tmp_path / "best").iterdir()) == ["100"]


def test_resumed_run_reproduces_an_uninterrupted_one(tiny_run, tmp_path):
  config = tiny_copy_config(tiny_run)
  config.train.checkpoint_every = 2
  train_lib.train(config, tmp_path / "straight")

  config.train.stop_at_step = 3
  stopped = train_lib.train(config, tmp_path / "resumed")
  assert stopped["step"] == 3 and not stopped["completed"]
  assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == ["2", "3"]
  assert (tmp_path / "resumed" / "best" / "3").exists()
  # As if the run had been killed after its evaluation at step 3 but before its checkpoint:
  # it resumes from step 2 and recomputes the same best checkpoint, which Orbax leaves as is.
  shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "3")
  config.train.stop_at_step = None
  resumed = train_lib.train(config, tmp_path / "resumed")

  assert _train_losses(tmp_path / "resumed") == _train_losses(tmp_path / "straight")
  assert _train_losses(tmp_path / "resumed")[0] == list(range(1, 7))
  straight = json.loads((tmp_path / "straight" / "final_eval.json").read_text())
  assert resumed["eval"] == straight["eval"]


def test_corrupt_checkpoint_is_a_clear_error_and_loses_nothing(tiny_run, tmp_path):
  config = tiny_copy_config(tiny_run, num_steps=2)
  train_lib.train(config, tmp_path)
  state_dir = tmp_path / "checkpoints" / "2" / "state"
  files = [p for p in state_dir.rglob("*") if p.is_file()]
  for path in files:
    path.write_bytes(b"not a checkpoint")
  metrics = (tmp_path / "metrics.jsonl").read_text()
  config.train.num_steps = 4
  with pytest.raises(CheckpointError, match=r"(?s)checkpoints/2.*Nothing was deleted"):
    train_lib.train(config, tmp_path)
  assert all(path.read_bytes() == b"not a checkpoint" for path in files)
  assert (tmp_path / "metrics.jsonl").read_text() == metrics


TINY_OVERRIDES = ("--config.data.seq_len=12", "--config.data.num_tokens=2",
                  "--config.data.batch_size=4", "--config.data.eval_batches=1",
                  "--config.model.features=8", "--config.model.num_layers=1",
                  "--config.train.num_steps=2", "--config.train.warmup_steps=1",
                  "--config.train.progress_bar=False")


def test_command_line_overrides_reach_the_run_from_any_directory(run_cli, tmp_path):
  # The config path is relative to the repository, the command runs elsewhere.
  proc = run_cli("train", "--config", "configs/selective_copy.py:mingru,cpu",
                 "--workdir", tmp_path / "run", *TINY_OVERRIDES, cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  written = json.loads((tmp_path / "run" / "config.json").read_text())
  assert written["model"]["features"] == 8 and written["train"]["num_steps"] == 2
  assert "sequence_accuracy" in proc.stdout and str(tmp_path) in proc.stdout


def test_missing_data_file_stops_the_run_with_the_path(tiny_run, tmp_path):
  config = tiny_run("shakespeare", 2)
  config.data.dir = str(tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match=r"empty/tinyshakespeare/input\.txt"):
    train_lib.train(config, tmp_path / "run")


def test_warmup_longer_than_the_run_is_shortened():
  config = load_config("configs/shakespeare.py:mingru")
  config.train.num_steps = 20
  schedule = learning_rate_schedule(config.train)
  assert schedule(0) == 0.0 and schedule(2) == pytest.approx(config.train.learning_rate)
  assert schedule(20) == pytest.approx(config.train.end_learning_rate)
