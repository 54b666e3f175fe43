"""The training loop: loss falls, exact resumption, checkpoints, outputs, command-line config."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import pytest

from minrnn import train as train_lib
from minrnn.checkpointing import CheckpointError
from minrnn.metrics import read_metrics, series
from minrnn.optimizer import learning_rate_schedule
from minrnn.run_config import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_copy_config(num_steps=6):
  """Selective copying small enough to compile and run in seconds."""
  config = load_config("configs/selective_copy/mingru.py", "cpu")
  config.data.batch_size = 8
  config.data.seq_len = 12
  config.data.num_tokens = 2
  config.data.eval_batches = 1
  config.model.features = 16
  config.model.num_layers = 1
  config.model.mlp_expansion = 2
  config.model.dropout = 0.1  # Dropout keys must also be reproduced on resume.
  config.train.num_steps = num_steps
  config.train.warmup_steps = 1
  config.train.log_every = 1
  config.train.eval_every = 3
  config.train.checkpoint_every = 100
  config.train.progress_bar = False
  config.train.tensorboard = False
  return config


def tiny_shakespeare_config(num_steps):
  config = load_config("configs/shakespeare/mingru.py", "cpu")
  config.data.batch_size = 16
  config.data.seq_len = 32
  config.data.eval_batches = 2
  config.data.download = False
  config.model.features = 32
  config.model.num_layers = 1
  config.model.mlp_expansion = 2
  config.train.num_steps = num_steps
  config.train.warmup_steps = 5
  config.train.learning_rate = 1e-2
  config.train.log_every = 10
  config.train.eval_every = num_steps // 2
  config.train.progress_bar = False
  return config


def _train_losses(workdir):
  return series(read_metrics(pathlib.Path(workdir) / "metrics.jsonl"), "train", "loss")


def test_loss_falls_and_outputs_are_written(tmp_path):
  config = tiny_shakespeare_config(num_steps=100)
  result = train_lib.train(config, tmp_path)
  steps, losses = _train_losses(tmp_path)
  assert steps == list(range(10, 101, 10))
  # Uniform guessing over 65 characters costs 4.17 nats, unigram frequencies about 3.3.
  assert losses[-1] < losses[0] - 0.5
  assert result["eval"]["loss"] < 3.0
  assert result["completed"] and result["step"] == 100
  assert result["eval"]["loss"] == pytest.approx(result["best_eval_loss"], rel=1e-6)
  for name in ("config.json", "final_eval.json", "loss_curve.png"):
    assert (tmp_path / name).stat().st_size > 0
  assert json.loads((tmp_path / "config.json").read_text())["train"]["num_steps"] == 100
  assert json.loads((tmp_path / "final_eval.json").read_text())["step"] == 100
  assert any((tmp_path / "tensorboard").iterdir())
  assert sorted(p.name for p in (tmp_path / "best").iterdir()) == ["100"]


def test_resumed_run_reproduces_an_uninterrupted_one(tmp_path):
  config = tiny_copy_config()
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


def test_corrupt_checkpoint_is_a_clear_error_and_loses_nothing(tmp_path):
  config = tiny_copy_config(num_steps=2)
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


def cli_env():
  """The environment for a `python -m minrnn...` child: CPU, and the suite's persistent
  compilation cache (set up in conftest.py)."""
  return dict(os.environ, JAX_PLATFORMS="cpu",
              JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.2",
              JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def _run_train_cli(*args, cwd):
  return subprocess.run([sys.executable, "-m", "minrnn.train", *args], cwd=cwd, env=cli_env(),
                        capture_output=True, text=True, timeout=300)


TINY_OVERRIDES = ("--config.data.seq_len=12", "--config.data.num_tokens=2",
                  "--config.data.batch_size=4", "--config.data.eval_batches=1",
                  "--config.model.features=8", "--config.model.num_layers=1",
                  "--config.train.num_steps=2", "--config.train.warmup_steps=1",
                  "--config.train.progress_bar=False")


def test_command_line_overrides_reach_the_run(tmp_path):
  proc = _run_train_cli("--config", str(REPO / "configs/quickstart.py"),
                        "--workdir", str(tmp_path), *TINY_OVERRIDES, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  written = json.loads((tmp_path / "config.json").read_text())
  assert written["model"]["features"] == 8 and written["train"]["num_steps"] == 2
  assert "eval loss" in proc.stdout and str(tmp_path) in proc.stdout


def test_misspelled_config_key_is_a_clear_error(tmp_path):
  proc = _run_train_cli("--config", str(REPO / "configs/quickstart.py"),
                        "--workdir", str(tmp_path), "--config.train.num_stpes=5", cwd=REPO)
  assert proc.returncode != 0
  assert 'Did you mean "num_steps"' in proc.stderr
  assert not (tmp_path / "config.json").exists()


def _keys(config, prefix=""):
  keys = set()
  for name, value in config.items():
    keys.add(prefix + name)
    if hasattr(value, "items") and name != "cell_kwargs":
      keys |= _keys(value, prefix + name + ".")
  return keys


CONFIGS = [(path, variant)
           for path in ("shakespeare/mingru.py", "shakespeare/minlstm.py", "shakespeare/gru.py",
                        "shakespeare/lstm.py")
           for variant in ("paper", "cpu")] + [
               (path, variant)
               for path in ("selective_copy/mingru.py", "selective_copy/minlstm.py")
               for variant in ("paper", "short", "cpu")]


@pytest.mark.parametrize("path,variant", CONFIGS)
def test_every_config_has_the_training_loop_keys(path, variant):
  config = load_config("configs/" + path, variant)
  reference = load_config("configs/quickstart.py")
  data_keys = {"data.dir", "data.download"} if config.data.name == "shakespeare" else {
      "data.num_tokens", "data.vocab_size"}
  common = _keys(reference) - {"data.num_tokens", "data.vocab_size"}
  assert _keys(config) == common | data_keys
  assert config.model.cell == pathlib.Path(path).stem
  assert 0 <= config.train.warmup_steps < config.train.num_steps


def test_unknown_variant_is_a_clear_error():
  with pytest.raises(ValueError, match="Unknown variant 'gpu'"):
    load_config("configs/shakespeare/mingru.py", "gpu")


def test_load_config_works_from_any_directory_and_names_a_missing_file(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = load_config("configs/shakespeare/mingru.py", "cpu", ["train.num_steps=7"])
  assert config.train.num_steps == 7 and config.model.cell == "mingru"
  with pytest.raises(FileNotFoundError, match="configs/shakespeare/mingur.py"):
    load_config("configs/shakespeare/mingur.py")


def test_missing_data_file_stops_the_run_with_the_path(tmp_path):
  config = tiny_shakespeare_config(num_steps=2)
  config.data.dir = str(tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match=r"empty/tinyshakespeare/input\.txt"):
    train_lib.train(config, tmp_path / "run")


def test_warmup_longer_than_the_run_is_shortened():
  config = load_config("configs/shakespeare/mingru.py")
  config.train.num_steps = 20
  schedule = learning_rate_schedule(config.train)
  assert schedule(0) == 0.0 and schedule(2) == pytest.approx(config.train.learning_rate)
  assert schedule(20) == pytest.approx(config.train.end_learning_rate)
