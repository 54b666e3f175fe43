"""Metric logs of a training run: a JSON-lines file and, when available, TensorBoard events.

Every record is one line of `metrics.jsonl` in the workdir: `{"step": int, "split": "train" |
"eval", <name>: float, ...}`. The file is strict JSON: a value that is not a finite number (a
diverged loss) is written as `null` and named, with its value as a string, under the record's
`nonfinite` key (`{"loss": null, ..., "nonfinite": {"loss": "nan"}}`; `strict_json`). A last line
cut short by a kill is dropped when the file is read, as a journal drops a torn record; a bad line
elsewhere is an error naming the file and line.

TensorBoard events go to `tensorboard/` under the tags `<split>/<name>`, written synchronously
(tensorboardX's own writer queues events in a thread, which a kill loses): every record is in the
events file before it is in `metrics.jsonl`. They need `tensorboardX`; without it, only the JSONL
file is written and a warning says so. On a resume, both drop what the interrupted run logged
after its last checkpoint: the JSONL records are removed, and TensorBoard is told to purge the
events past the resume step (it hides them when it reads the run).
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import time
from typing import Any, Iterable

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
NONFINITE = "nonfinite"


def strict_json(value: Any) -> Any:
  """`value` (nested dicts, lists, numbers) with every non-finite float replaced by None; a
  dict that held one names it under `NONFINITE` with its value as a string ("nan", "inf",
  "-inf"). `json.dumps(..., allow_nan=False)` accepts the result."""
  if isinstance(value, dict):
    out, nonfinite = {}, dict(value.get(NONFINITE) or {})
    for key, item in value.items():
      if key == NONFINITE:
        continue
      if isinstance(item, float) and not math.isfinite(item):
        out[key], nonfinite[key] = None, str(item)
      else:
        out[key] = strict_json(item)
    if nonfinite:
      out[NONFINITE] = nonfinite
    return out
  if isinstance(value, (list, tuple)):
    return [strict_json(item) for item in value]
  return value


def read_metrics(path: str | pathlib.Path) -> list[dict[str, Any]]:
  """The records of a `metrics.jsonl` file, in order ([] if it does not exist). A last line
  without its newline that does not parse (a write cut by a kill) is left out."""
  path = pathlib.Path(path)
  if not path.exists():
    return []
  records, lines = [], path.read_text().split("\n")
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError as e:
      if number == len(lines):  # No newline after it: the write was cut short.
        break
      raise ValueError(f"{path} line {number} is not a JSON record ({e.msg}); the file is "
                       "damaged. Delete that line (or the file) to go on.") from None
  return records


class _EventFile:
  """A TensorBoard event file written synchronously (tensorboardX's record format); with
  `purge_step`, it first tells TensorBoard to drop the events from that step on."""

  def __init__(self, logdir: pathlib.Path, purge_step: int | None):
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event, SessionLog
    from tensorboardX.proto.summary_pb2 import Summary
    self._event, self._summary = Event, Summary
    logdir.mkdir(parents=True, exist_ok=True)
    # Event files are named by the second they were opened in: the suffix keeps a resumed run
    # from overwriting the file of the run it resumes.
    suffix = f".from_step_{purge_step - 1}" if purge_step else ""
    self._writer = EventsWriter(str(logdir / "events"), suffix)
    if purge_step:
      self._writer.write_event(Event(wall_time=time.time(), step=purge_step,
                                     session_log=SessionLog(status=SessionLog.START)))
    self._writer.flush()

  def write(self, step: int, scalars: dict[str, float]) -> None:
    values = [self._summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items()]
    self._writer.write_event(self._event(wall_time=time.time(), step=step,
                                         summary=self._summary(value=values)))
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


def _event_file(logdir: pathlib.Path, purge_step: int | None) -> _EventFile | None:
  try:
    return _EventFile(logdir, purge_step)
  except ImportError:
    logging.warning(
        "tensorboardX is not installed: TensorBoard events are off; metrics still go to %s. "
        "`pip install tensorboardX` turns them on.", METRICS_FILE)
    return None


class MetricsWriter:
  """Appends records to `workdir/metrics.jsonl` and to TensorBoard.

  Args:
    workdir: the run's directory.
    tensorboard: also write TensorBoard events (if a writer is installed).
    resume_step: the step training resumes from. Records after it came from the part of an
      interrupted run that was not checkpointed; they are dropped, as that part is redone.
  """

  def __init__(self, workdir: str | pathlib.Path, *, tensorboard: bool = True,
               resume_step: int = 0):
    self.path = pathlib.Path(workdir) / METRICS_FILE
    kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
    with open(self.path, "w") as f:
      f.writelines(json.dumps(r, allow_nan=False) + "\n" for r in kept)
    self._file = open(self.path, "a")
    # Events at steps > resume_step are redone, so TensorBoard purges those already written.
    purge_step = resume_step + 1 if resume_step > 0 else None
    self._tb = (_event_file(pathlib.Path(workdir) / TENSORBOARD_DIR, purge_step)
                if tensorboard else None)

  def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
    """Appends one record; it is on disk (events first) when this returns."""
    values = {k: float(v) for k, v in metrics.items()}
    if self._tb is not None:
      self._tb.write(int(step), {f"{split}/{name}": value for name, value in values.items()})
    record = strict_json({"step": int(step), "split": split, **values})
    self._file.write(json.dumps(record, allow_nan=False) + "\n")
    self._file.flush()

  def close(self) -> None:
    self._file.close()
    if self._tb is not None:
      self._tb.close()


def series(records: Iterable[dict[str, Any]], split: str, name: str) -> tuple[list, list]:
  """`(steps, values)` of metric `name` in the records of `split` (non-finite values, null in
  the file, left out)."""
  pairs = [(r["step"], r[name]) for r in records
           if r["split"] == split and r.get(name) is not None]
  return [s for s, _ in pairs], [v for _, v in pairs]
