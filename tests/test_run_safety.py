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


def _damage_best(workdir):
  for path in (workdir / "best").rglob("*"):
    if path.is_file() and "state" in path.parts:
      path.write_bytes(b"damaged")


def test_a_damaged_best_checkpoint_is_restored_from_its_surviving_copy(finished, tmp_path,
                                                                      capsys):
  workdir, config = finished
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  recorded = json.loads((copy / "final_eval.json").read_text())["best"]
  _damage_best(copy)
  train_lib.train(config, copy)  # The finished run's command again: no evaluation runs.
  out = capsys.readouterr().out
  assert f"Restored best/ from {copy / 'checkpoints' / str(recorded['step'])}" in out, out
  assert json.loads((copy / "final_eval.json").read_text())["best"] == recorded
  assert sorted(p.name for p in (copy / "best").iterdir()) == [str(recorded["step"])]
  assert list(copy.glob("best.damaged.*"))  # Moved aside, not deleted.


def test_a_lost_best_checkpoint_is_replaced_and_its_result_kept(finished, tmp_path, capsys):
  workdir, config = finished
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  recorded = json.loads((copy / "final_eval.json").read_text())["best"]
  assert recorded["step"] == 2  # Tiny: the evaluation at step 4 is no better.
  shutil.rmtree(copy / "checkpoints" / "2")  # As if rotated out.
  _damage_best(copy)
  train_lib.train(config, copy)
  assert "Its checkpoint is lost; best/ now holds step 4" in capsys.readouterr().out
  final = json.loads((copy / "final_eval.json").read_text())
  assert final["best"]["step"] == 4 and sorted(p.name for p in (copy / "best").iterdir()) == ["4"]
  lost, = final["lost_best"]
  assert lost["step"] == 2 and lost["recorded"] == recorded
  assert pathlib.Path(lost["moved_to"]).is_dir()
  train_lib.train(config, copy)  # Run again: the record of the lost one stays.
  assert json.loads((copy / "final_eval.json").read_text())["lost_best"] == [lost]


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


@pytest.mark.parametrize("damage,said", [("deleted", "missing"), ("damaged", "damaged")])
def test_a_run_is_compared_with_the_config_its_checkpoint_holds(finished, tmp_path, capsys,
                                                                damage, said):
  workdir, config = finished
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  original = json.loads((copy / "config.json").read_text())
  if damage == "deleted":
    (copy / "config.json").unlink()
  else:
    (copy / "config.json").write_text('{"model": {"dropout": 0.3')
  changed = config.copy_and_resolve_references()
  changed.train.learning_rate, changed.model.dropout = 0.1, 0.3
  with pytest.raises(ConfigChangedError,
                     match=r"(?s)model\.dropout: 0\.0 -> 0\.3.*train\.learning_rate: .* -> 0\.1"):
    prepare(changed, copy)
  assert sample_lib.load_config(copy).model.features == 8  # Read-only: from the checkpoint.
  train_lib.train(config, copy)
  assert f"config.json was {said}; the run is compared with" in capsys.readouterr().out
  assert json.loads((copy / "config.json").read_text()) == original


def test_a_torn_last_metrics_line_is_dropped_and_a_bad_one_is_named(finished, tmp_path):
  workdir, config = finished
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  with open(copy / "metrics.jsonl", "a") as f:
    f.write('{"step": 5, "split": "tr')  # A write cut by a kill.
  longer = config.copy_and_resolve_references()
  longer.train.num_steps = 6
  train_lib.train(longer, copy)
  lines = (copy / "metrics.jsonl").read_text().splitlines()
  records = [json.loads(line) for line in lines]
  assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 7))
  lines[1] = "{garbage"
  (copy / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  before = _files(copy)
  longer.train.num_steps = 8
  with pytest.raises(ValueError, match=r"metrics\.jsonl line 2 is not a JSON record"):
    prepare(longer, copy)
  assert _files(copy) == before


def test_a_run_cannot_be_shortened_below_the_steps_it_did(finished):
  workdir, config = finished
  shorter = config.copy_and_resolve_references()
  shorter.train.num_steps = 2
  before = _files(workdir)
  with pytest.raises(ValueError, match="train.num_steps=2 is below the 4 steps this run has done"):
    prepare(shorter, workdir)
  assert _files(workdir) == before


@pytest.mark.parametrize("override", ["data.batch_size=0", "train.eval_every=0",
                                      "train.log_every=0", "train.checkpoint_every=0",
                                      "train.num_steps=0", "train.keep_checkpoints=0"])
def test_counts_below_one_are_refused_before_the_workdir_exists(tmp_path, override):
  with pytest.raises(ValueError, match=f"{override.split('=')[0]} = 0 must be a whole number"):
    prepare(_config(override), tmp_path / "new")
  assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "(0.9, 1e999)"])
def test_numbers_that_are_not_finite_are_refused(value):
  with pytest.raises(ValueError, match="is not a finite number"):
    _config(f"train.learning_rate={value}")


def test_a_non_finite_number_from_a_config_file_is_refused(tmp_path):
  config = _config()
  config.train.learning_rate = float("inf")
  with pytest.raises(ValueError, match=r"train\.learning_rate = inf is not a finite number"):
    prepare(config, tmp_path / "new")
  assert not (tmp_path / "new").exists()


def test_a_misspelled_setting_suggests_the_one_it_abbreviates():
  with pytest.raises(ValueError, match=r"Did you mean train\.learning_rate\?$"):
    _config("train.lr=0.1")


def test_a_lost_array_index_is_damage_not_another_model(tmp_path):
  checkpoints = Checkpoints(tmp_path, keep=1)
  tree = {"params": {"w": np.ones(3, np.float32)}}
  checkpoints.save(1, tree, {"step": 1})
  next((tmp_path / "1").rglob("_METADATA")).unlink()
  with pytest.raises(Exception, match=r"it is damaged \(the index of its arrays") as error:
    checkpoints.restore(1, tree)
  assert "different model" not in str(error.value)
  checkpoints.close()


def test_a_checkpoint_that_cannot_be_written_is_one_error(tmp_path, monkeypatch, caplog):
  import logging
  import orbax.checkpoint as ocp

  def full_disk(self, *args, **kwargs):
    # What Orbax does on a full disk: its writer thread logs the traceback, then it raises.
    logging.getLogger("absl").error("_SignalingThread.run() raised an exception", exc_info=True)
    raise ValueError("RESOURCE_EXHAUSTED: Error writing local file: Failed to write 8488 bytes")
  monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
  checkpoints = Checkpoints(tmp_path, keep=1)
  with pytest.raises(Exception, match=r"Could not write the checkpoint of step 1 .*"
                                      r"RESOURCE_EXHAUSTED.* run the same command again"):
    checkpoints.save(1, {"w": np.ones(2, np.float32)}, {"step": 1})
  checkpoints.close()
  assert not [r for r in caplog.records if r.name == "absl"]


def _main_exit(main, argv, monkeypatch) -> int:
  """The exit status of a command line's `main(argv)`, run in this process."""
  def leave(status):
    raise SystemExit(status)
  monkeypatch.setattr(os, "_exit", leave)
  try:
    return main(argv)
  except SystemExit as e:
    return e.code


def test_a_full_disk_during_training_is_one_line_and_the_run_resumes(tmp_path, monkeypatch,
                                                                      capsys):
  from minrnn.training import metrics
  write = metrics.MetricsWriter.write

  def full(self, step, split, values):
    if step == 3:
      raise OSError(28, "No space left on device", str(self.path))
    write(self, step, split, values)
  monkeypatch.setattr(metrics.MetricsWriter, "write", full)
  command = ["--config", "configs/selective_copy.py:mingru,cpu", *TINY,
             "--config.train.num_steps=4", "--config.train.checkpoint_every=2",
             "--config.train.log_every=1",
             "--workdir", str(tmp_path)]
  assert _main_exit(train_lib.main, command, monkeypatch) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[0].startswith("error: [Errno 28] No space left on device") and len(err) == 2
  assert "run the same command again to resume" in err[0]
  assert not (tmp_path / "run.lock").exists()
  monkeypatch.setattr(metrics.MetricsWriter, "write", write)
  assert _main_exit(train_lib.main, command, monkeypatch) == 0
  assert _losses(tmp_path)[0] == [1, 2, 3, 4]
