"""A run never loses or corrupts what it has, and every mistake gets one clear message.

Failed commands leave an existing workdir byte-identical (and create no new one), a resumed run
refuses a changed config unless the change is safe or accepted (then it is recorded), SIGTERM
stops with a checkpoint from which the run resumes exactly, TensorBoard events survive a kill -9,
a damaged best checkpoint is replaced, and sampling needs only the workdir.
"""

import hashlib
import json
import os
import pathlib
import shutil
import signal
import time

import numpy as np
import pytest

from minrnn import sample as sample_lib
from minrnn import train as train_lib
from minrnn.ops import check_sequence
from minrnn.training.checkpointing import Checkpoints
from minrnn.training.config import load_config
from minrnn.training.loop import prepare
from minrnn.training.metrics import read_metrics, series
from minrnn.training.preemption import Preemption
from minrnn.training.workdir import ConfigChangedError

# A tiny selective-copying run, as command-line settings.
TINY = ("--config.data.seq_len=12", "--config.data.num_tokens=2", "--config.data.batch_size=4",
        "--config.data.eval_batches=1", "--config.model.features=8",
        "--config.model.num_layers=1", "--config.train.warmup_steps=1",
        "--config.train.progress_bar=False", "--config.train.tensorboard=False",
        "--config.model.dropout=0.0", "--config.train.early_stopping_patience=None")


def _files(workdir: pathlib.Path) -> dict[str, str]:
  return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(workdir.rglob("*")) if p.is_file()}


def _losses(workdir):
  return series(read_metrics(pathlib.Path(workdir) / "metrics.jsonl"), "train", "loss")


def _config(*overrides):
  settings = [arg[len("--config."):] for arg in TINY] + list(overrides)
  return load_config("configs/selective_copy.py:mingru,cpu", overrides=settings)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished tiny run (4 steps, checkpoints at 2 and 4) and its config."""
  workdir = tmp_path_factory.mktemp("finished")
  config = _config("train.num_steps=4", "train.checkpoint_every=2", "train.eval_every=2",
                   "train.log_every=1")
  train_lib.train(config, workdir)
  return workdir, config


@pytest.mark.parametrize("name,args,message", [
    ("unknown cell", ["--config.model.cell=mingur"], "Unknown temporal layer 'mingur'"),
    ("bad scan path", ["--config.model.implementation=pallas_fast"],
     "Unknown linear-scan implementation 'pallas_fast'"),
    ("bad width", ["--config.model.cell=transformer", "--config.model.expansion=None",
                   "--config.model.cell_kwargs.num_heads=3"],
     "must split into num_heads=3 heads"),
    ("misspelled key", ["--config.train.num_stpes=5"], "Did you mean train.num_steps"),
    ("wrong type", ["--config.train.num_steps=many"], "Bad value for train.num_steps"),
    ("changed config", ["--config.model.features=16"], "model.features: 8 -> 16"),
    ("missing config", ["--config=configs/selective_copi.py"], "configs/selective_copi.py"),
])
def test_failed_commands_leave_the_workdir_as_it_was(finished, run_cli, tmp_path, name, args,
                                                     message):
  workdir, _ = finished
  before = _files(workdir)
  command = ["--config", "configs/selective_copy.py:mingru,cpu", *TINY,
             "--config.train.num_steps=4", *args]
  proc = run_cli("train", *command, "--workdir", workdir)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert message in proc.stderr and len(proc.stderr.strip().splitlines()) < 15, proc.stderr
  assert "Traceback" not in proc.stderr and "sys.meta_path is None" not in proc.stderr
  assert _files(workdir) == before, name


@pytest.mark.parametrize("override", ["model.cell='mingur'", "model.implementation='fast'"])
def test_a_failed_new_run_creates_no_workdir(tmp_path, override):
  with pytest.raises(ValueError):
    prepare(_config(override), tmp_path / "new")
  assert not (tmp_path / "new").exists()


def test_missing_data_file_is_one_message_and_creates_nothing(run_cli, tmp_path):
  proc = run_cli("train", "--config", "configs/shakespeare.py:cpu",
                 f"--config.data.dir={tmp_path / 'empty'}", "--config.data.download=False",
                 "--workdir", tmp_path / "run")
  assert proc.returncode == 2
  assert "tinyshakespeare/input.txt" in proc.stderr and "Traceback" not in proc.stderr
  assert not (tmp_path / "run").exists()


def test_safe_changes_extend_a_run_and_others_need_accepting(finished, tmp_path):
  workdir, config = finished
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  longer = config.copy_and_resolve_references()
  longer.train.num_steps = 6  # Safe: extends the run.
  result = train_lib.train(longer, copy)
  assert result["step"] == 6 and _losses(copy)[0] == list(range(1, 7))
  history = [json.loads(line) for line in (copy / "config_history.jsonl").read_text().splitlines()]
  assert history[-1]["step"] == 4 and history[-1]["changes"]["train.num_steps"] == [4, 6]

  changed = longer.copy_and_resolve_references()
  changed.model.dropout = 0.3
  with pytest.raises(ConfigChangedError, match=r"model\.dropout: 0\.0 -> 0\.3"):
    prepare(changed, copy)
  changed.train.num_steps = 7
  train_lib.train(changed, copy, accept_config_changes=True)
  history = [json.loads(line) for line in (copy / "config_history.jsonl").read_text().splitlines()]
  assert history[-1]["changes"]["model.dropout"] == [0.0, 0.3]
  assert json.loads((copy / "config.json").read_text())["model"]["dropout"] == 0.3


def test_an_accepted_change_that_breaks_the_checkpoint_names_what_differs(finished, tmp_path):
  workdir, config = finished
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  wider = config.copy_and_resolve_references()
  wider.model.features = 12
  with pytest.raises(Exception, match=r"(?s)shapes differ.*model\.features: 8 -> 12"):
    prepare(wider, copy, accept_config_changes=True)
  assert _files(copy) == _files(workdir)


def _start(start_cli, workdir, steps, *extra):
  """The tiny run from the command line, in the background, logging every step."""
  return start_cli("train", "--config", "configs/selective_copy.py:mingru,cpu", *TINY,
                   f"--config.train.num_steps={steps}", "--config.train.log_every=1",
                   "--config.train.eval_every=1000", "--config.train.checkpoint_every=1000",
                   *extra, "--workdir", workdir)


def _wait_for_step(proc, workdir, step, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    steps, _ = _losses(workdir)
    if steps and steps[-1] >= step:
      return steps[-1]
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    time.sleep(0.05)
  raise AssertionError(f"the run did not reach step {step}")


def test_sigterm_saves_a_checkpoint_and_the_resumed_run_is_exact(start_cli, tmp_path):
  steps = 120
  proc = _start(start_cli, tmp_path / "stopped", steps)
  _wait_for_step(proc, tmp_path / "stopped", 5)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
  assert "Stopped by SIGTERM at step" in stderr and "Run the same command again" in stderr
  stopped_at = int(stderr.split("Stopped by SIGTERM at step ")[1].split(";")[0])
  assert stopped_at < steps
  assert (tmp_path / "stopped" / "checkpoints" / str(stopped_at)).is_dir()
  resumed = _start(start_cli, tmp_path / "stopped", steps)
  assert resumed.wait(timeout=240) == 0, resumed.communicate()[1][-2000:]
  train_lib.train(_config(f"train.num_steps={steps}", "train.log_every=1",
                          "train.eval_every=1000", "train.checkpoint_every=1000"),
                  tmp_path / "straight")
  assert _losses(tmp_path / "stopped") == _losses(tmp_path / "straight")


def test_a_second_signal_exits_at_once(monkeypatch):
  exits = []
  monkeypatch.setattr(os, "_exit", exits.append)
  with Preemption() as preemption:
    os.kill(os.getpid(), signal.SIGINT)
    assert preemption.requested and not exits
    os.kill(os.getpid(), signal.SIGINT)
  assert exits == [128 + signal.SIGINT]


def test_a_declined_save_is_reported(tmp_path, caplog):
  checkpoints = Checkpoints(tmp_path / "c", keep=2)
  assert not (tmp_path / "c").exists()  # Opening writes nothing.
  tree = {"a": np.ones(2, np.float32)}
  assert checkpoints.save(3, tree, {"step": 3})
  assert not checkpoints.save(3, tree, {"step": 3})
  checkpoints.close()
  assert "Checkpoint of step 3 not written" in caplog.text


def test_a_damaged_best_checkpoint_is_replaced(finished, tmp_path, capsys):
  workdir, config = finished
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  for path in (copy / "best").rglob("*"):
    if path.is_file() and "state" in path.parts:
      path.write_bytes(b"damaged")
  longer = config.copy_and_resolve_references()
  longer.train.num_steps = 6
  longer.train.eval_every = 6
  train_lib.train(longer, copy)
  assert "The best checkpoint could not be read" in capsys.readouterr().out
  assert sorted(p.name for p in (copy / "best").iterdir()) == ["6"]
  assert list(copy.glob("best.damaged.*"))


def test_sampling_needs_only_the_workdir(tiny_run, tmp_path, run_cli):
  data = tmp_path / "data"
  shutil.copytree(pathlib.Path(os.environ["MINRNN_DATA_DIR"]) / "tinyshakespeare",
                  data / "tinyshakespeare")
  config = tiny_run("shakespeare", num_steps=2)
  config.data.dir = str(data)
  train_lib.train(config, tmp_path / "run")
  shutil.rmtree(data)
  text = sample_lib.sample(tmp_path / "run", "ROMEO:", length=20, seed=1)
  assert text.startswith("ROMEO:") and len(text) == 26
  proc = run_cli("sample", "--workdir", tmp_path / "run", "--prompt", "ROMEO:", "--length", "5")
  assert proc.returncode == 0 and proc.stdout.endswith("\n") and proc.stdout.startswith("ROMEO:")
  bad = run_cli("sample", "--workdir", tmp_path / "run", "--prompt", "ROMEO€")
  assert bad.returncode == 2 and "not in the vocabulary" in bad.stderr
  assert len(bad.stderr.strip().splitlines()) < 15


def test_sequence_lengths_of_the_wrong_batch_are_our_error():
  x = np.zeros((2, 5, 3), np.float32)
  with pytest.raises(ValueError, match=r"seq_lengths must be integers of shape \(batch,\) = \(2,\)"):
    check_sequence(x, 3, seq_lengths=np.array([5, 4, 3]))
  with pytest.raises(ValueError, match="seq_lengths must be integers"):
    check_sequence(x, 3, seq_lengths=np.array([5.0, 4.0]))
