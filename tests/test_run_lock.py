"""One process at a time trains a run: a second one is refused in one line naming the holder,
before any preparation; a lock left by a killed process is taken over; reading a run (sampling)
takes no lock and writes nothing."""

import hashlib
import os
import signal
import socket
import time

import pytest

from minrnn import sample as sample_lib
from minrnn import train as train_lib
from minrnn.training import loop
from minrnn.training.config import load_config
from minrnn.training.lock import LOCK_FILE, WorkdirInUse, WorkdirLock
from minrnn.training.metrics import read_metrics

TINY = ["data.seq_len=12", "data.num_tokens=2", "data.batch_size=4", "data.eval_batches=1",
        "model.features=8", "model.num_layers=1", "train.warmup_steps=1",
        "train.progress_bar=False", "train.tensorboard=False",
        "train.early_stopping_patience=None", "train.log_every=1", "train.eval_every=1000",
        "train.checkpoint_every=5", "train.num_steps=3000"]
COMMAND = ["--config", "configs/selective_copy.py:mingru,cpu", *(f"--config.{o}" for o in TINY)]


def _files(workdir):
  return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(workdir.rglob("*")) if p.is_file()}


def test_a_second_process_is_refused_in_one_line_before_preparing(run_cli, tmp_path,
                                                                  monkeypatch):
  workdir = tmp_path / "run"
  with WorkdirLock(workdir):
    proc = run_cli("train", *COMMAND, "--workdir", workdir)
    inside = sorted(p.name for p in workdir.iterdir())
    # In this process too: refused before the task, data or model are prepared.
    monkeypatch.setattr(loop, "make_task", lambda *a: pytest.fail("prepared while locked"))
    with pytest.raises(WorkdirInUse, match=f"pid {os.getpid()} on host "):
      loop.prepare(load_config("configs/selective_copy.py:mingru,cpu", overrides=TINY), workdir)
  assert proc.returncode == 2, proc.stderr[-2000:]
  first, *rest = proc.stderr.strip().splitlines()
  assert first.startswith(f"error: {workdir} is in use by another run: pid {os.getpid()} on "
                          f"host {socket.gethostname()}, since "), first
  assert rest == ["(run with --verbose for the traceback)"]
  assert inside == [LOCK_FILE]  # The refused process wrote nothing.
  assert list(workdir.iterdir()) == []  # Released: no lock file is left behind.


def test_a_lock_left_by_a_killed_process_is_taken_over(start_cli, tmp_path, capsys):
  workdir = tmp_path / "run"
  proc = start_cli("train", *COMMAND, "--workdir", workdir)
  deadline = time.time() + 240
  while not any(r["step"] >= 6 for r in read_metrics(workdir / "metrics.jsonl")):
    assert time.time() < deadline and proc.poll() is None, proc.communicate()[1][-2000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert f"pid {proc.pid} on host" in (workdir / LOCK_FILE).read_text()
  config = load_config("configs/selective_copy.py:mingru,cpu",
                       overrides=[*TINY, "train.stop_at_step=12"])
  result = train_lib.train(config, workdir)
  assert result["step"] == 12
  assert (f"Took over the lock of {workdir} left by a process that is gone (pid {proc.pid} "
          in capsys.readouterr().err)
  assert not (workdir / LOCK_FILE).exists()


def test_sampling_takes_no_lock_and_writes_nothing(tiny_run, tmp_path):
  config = tiny_run("shakespeare", num_steps=2)
  train_lib.train(config, tmp_path)
  with WorkdirLock(tmp_path) as lock:  # A training process holds the run.
    before = _files(tmp_path)
    text = sample_lib.sample(tmp_path, "ROMEO:", length=5)
    assert text.startswith("ROMEO:") and lock.held
    assert _files(tmp_path) == before


@pytest.mark.parametrize("kind", ["file", "under a file", "read-only"])
def test_a_workdir_that_cannot_be_written_is_refused_before_preparing(tmp_path, monkeypatch,
                                                                      kind):
  target = {"file": tmp_path / "afile", "under a file": tmp_path / "afile" / "run",
            "read-only": tmp_path / "ro" / "run"}[kind]
  (tmp_path / "afile").write_text("not a directory")
  (tmp_path / "ro").mkdir()
  (tmp_path / "ro").chmod(0o555)
  if kind == "read-only" and os.access(tmp_path / "ro", os.W_OK):
    pytest.skip("this user writes through permissions (root)")
  monkeypatch.setattr(loop, "make_task", lambda *a: pytest.fail("prepared an unwritable run"))
  config = load_config("configs/selective_copy.py:mingru,cpu", overrides=TINY)
  with pytest.raises(OSError, match=r"is a file, not a directory|Cannot write into the workdir"):
    loop.prepare(config, target)
  assert (tmp_path / "afile").read_text() == "not a directory"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "ro"]
  assert list((tmp_path / "ro").iterdir()) == []
