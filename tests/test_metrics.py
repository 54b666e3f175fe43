"""Metric logs: JSONL records and TensorBoard events stay consistent across a resume."""

import pathlib
import struct

import pytest

from minrnn.training.metrics import TENSORBOARD_DIR, MetricsWriter, read_metrics, series

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
