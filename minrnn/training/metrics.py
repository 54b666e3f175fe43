"""Metric logs of a training run: a JSON-lines file and, when available, TensorBoard events.

Every record is one line of `metrics.jsonl` in the workdir: `{"step": int, "split": "train" |
"eval", <name>: float, ...}`. TensorBoard events go to `tensorboard/` under the tags
`<split>/<name>`, flushed at every write; they need `tensorboardX` (or PyTorch's
`torch.utils.tensorboard`). Without either, only the JSONL file is written and a warning says so. On a resume, both drop what the
interrupted run logged after its last checkpoint: the JSONL records are removed, and TensorBoard
is told to purge the events past the resume step (it hides them when it reads the run).
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any, Iterable

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def read_metrics(path: str | pathlib.Path) -> list[dict[str, Any]]:
  """The records of a `metrics.jsonl` file, in order ([] if it does not exist)."""
  path = pathlib.Path(path)
  if not path.exists():
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _summary_writer(logdir: pathlib.Path, purge_step: int | None):
  try:
    from tensorboardX import SummaryWriter
  except ImportError:
    try:
      from torch.utils.tensorboard import SummaryWriter
    except ImportError:
      logging.warning(
          "Neither tensorboardX nor torch.utils.tensorboard is installed: TensorBoard events "
          "are off; metrics still go to %s. `pip install tensorboardX` turns them on.",
          METRICS_FILE)
      return None
  # Event files are named by the second they were opened in: the suffix keeps a resumed run
  # from overwriting the file of the run it resumes.
  suffix = f".from_step_{purge_step - 1}" if purge_step else ""
  return SummaryWriter(str(logdir), purge_step=purge_step, filename_suffix=suffix)


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
      f.writelines(json.dumps(r) + "\n" for r in kept)
    self._file = open(self.path, "a")
    # Events at steps > resume_step are redone, so TensorBoard purges those already written.
    purge_step = resume_step + 1 if resume_step > 0 else None
    self._tb = (_summary_writer(pathlib.Path(workdir) / TENSORBOARD_DIR, purge_step)
                if tensorboard else None)

  def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
    record = {"step": int(step), "split": split, **{k: float(v) for k, v in metrics.items()}}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()
    if self._tb is not None:
      for name, value in metrics.items():
        self._tb.add_scalar(f"{split}/{name}", float(value), int(step))
      # On disk at every log: a killed run loses at most the interval in flight.
      self._tb.flush()

  def close(self) -> None:
    self._file.close()
    if self._tb is not None:
      self._tb.close()


def series(records: Iterable[dict[str, Any]], split: str, name: str) -> tuple[list, list]:
  """`(steps, values)` of metric `name` in the records of `split`."""
  pairs = [(r["step"], r[name]) for r in records if r["split"] == split and name in r]
  return [s for s, _ in pairs], [v for _, v in pairs]
