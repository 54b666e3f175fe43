"""Metric logs: JSONL records and TensorBoard events stay consistent across a resume and
survive a kill; the run's figure."""

import os
import pathlib
import struct
import subprocess
import sys
import time

import pytest

from minrnn.training.metrics import TENSORBOARD_DIR, MetricsWriter, read_metrics, series
from minrnn.training.plots import plot_run

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")


def _events(logdir: pathlib.Path) -> list:
  """Every event in the run's event files, in file order (TFRecord framing)."""
  events = []
  for path in sorted(logdir.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack_from("<Q", data, offset)
      offset += 12  # Length and its checksum.
      event = event_pb2.Event()
      event.ParseFromString(data[offset:offset + length])
      events.append(event)
      offset += length + 4  # Payload and its checksum.
  return events


def _log(workdir, steps, resume_step=0):
  writer = MetricsWriter(workdir, resume_step=resume_step)
  for step in steps:
    writer.write(step, "train", {"loss": 10.0 * step + resume_step})
  writer.close()


def test_resume_drops_records_and_purges_events_past_the_resume_step(tmp_path):
  _log(tmp_path, range(1, 6))
  _log(tmp_path, range(4, 6), resume_step=3)

  steps, losses = series(read_metrics(tmp_path / "metrics.jsonl"), "train", "loss")
  assert steps == [1, 2, 3, 4, 5]
  assert losses == [10.0, 20.0, 30.0, 43.0, 53.0]

  events = _events(tmp_path / TENSORBOARD_DIR)
  purges = [e.step for e in events if e.HasField("session_log")
            and e.session_log.status == event_pb2.SessionLog.START]
  assert purges == [4]
  # What TensorBoard shows: a purge hides the earlier events at or past its step.
  shown = []
  for e in events:
    if e.HasField("session_log"):
      shown = [(s, v) for s, v in shown if s < e.step]
    elif e.HasField("summary") and e.summary.value:
      shown.append((e.step, e.summary.value[0].simple_value))
  assert shown == [(1, 10.0), (2, 20.0), (3, 30.0), (4, 43.0), (5, 53.0)]


def test_a_fresh_run_writes_no_purge(tmp_path):
  _log(tmp_path, range(1, 3))
  assert not any(e.HasField("session_log") for e in _events(tmp_path / TENSORBOARD_DIR))


def test_events_hold_every_record_of_the_metrics_after_a_kill(start_cli, tmp_path):
  proc = start_cli("train", "--config", "configs/selective_copy.py:mingru,cpu",
                   "--config.model.features=8", "--config.model.num_layers=1",
                   "--config.train.num_steps=300", "--config.train.log_every=1",
                   "--config.train.progress_bar=False", "--workdir", tmp_path)
  deadline, reached = time.time() + 240, 0
  while reached < 10:
    assert time.time() < deadline and proc.poll() is None, "the run did not reach step 10"
    time.sleep(0.05)
    steps, _ = series(read_metrics(tmp_path / "metrics.jsonl"), "train", "loss")
    reached = steps[-1] if steps else 0
  proc.kill()
  proc.wait()
  logged = {e.step for e in _events(tmp_path / TENSORBOARD_DIR)
            if e.HasField("summary") and any(v.tag == "train/loss" for v in e.summary.value)}
  # Every record metrics.jsonl holds is in the events file too (written first).
  steps, _ = series(read_metrics(tmp_path / "metrics.jsonl"), "train", "loss")
  assert steps[-1] >= reached and set(steps) <= logged, sorted(set(steps) - logged)


def test_the_run_figure_uses_a_log_scale_and_shows_the_headline(tmp_path):
  records = [{"step": s, "split": "train", "loss": 30.0 / s} for s in range(1, 31)]
  records += [{"step": s, "split": "eval", "loss": 20.0 / s, "sequence_accuracy": s / 30}
              for s in (10, 20, 30)]
  fig = plot_run(records, "sequence_accuracy", tmp_path / "curve.png")
  loss_axes, headline_axes = fig.axes
  assert loss_axes.get_yscale() == "log" and (tmp_path / "curve.png").stat().st_size > 0
  assert headline_axes.get_ylabel() == "eval sequence accuracy"
  narrow = [{"step": s, "split": "train", "loss": 2.0 + 1 / s} for s in range(1, 5)]
  fig = plot_run(narrow, "loss", tmp_path / "narrow.png")
  assert len(fig.axes) == 1 and fig.axes[0].get_yscale() == "linear"


def test_importing_minrnn_leaves_the_matplotlib_backend_alone():
  code = ("import matplotlib; matplotlib.use('svg'); import minrnn.train, minrnn.sample; "
          "print(matplotlib.get_backend())")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=120)
  assert out.stdout.strip() == "svg", out.stderr[-2000:]
