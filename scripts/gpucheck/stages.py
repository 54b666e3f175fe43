"""The GPU check's building blocks: a time budget, commands run under a time limit with their
output kept, and what each stage's output says (pytest outcomes, a training run's metrics).

Nothing here raises for a stage that fails: every outcome is a `StageResult` whose `status` is
"ok", "failed: ...", "timed out after N s" or "skipped: ...".
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import signal
import subprocess
import time
from typing import Any, Sequence

# Seconds a stopped stage gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 10


class Budget:
  """Seconds left of the whole check; a stage's limit is its own cap or what is left.

  `start` is a wall-clock time (`time.time()`), so that a check restarted after its setup
  keeps counting from its first start.
  """

  def __init__(self, total_s: float, start: float | None = None):
    self.start = time.time() if start is None else start
    self.total_s = total_s

  def elapsed(self) -> float:
    return time.time() - self.start

  def left(self) -> float:
    return self.total_s - self.elapsed()

  def limit(self, cap_s: float) -> float:
    return max(0.0, min(cap_s, self.left()))


@dataclasses.dataclass
class StageResult:
  """One stage's (or one command's) outcome and the end of its output."""

  name: str
  status: str = "skipped: not run"
  wall_s: float = 0.0
  limit_s: float = 0.0
  command: list[str] = dataclasses.field(default_factory=list)
  exit_code: int | None = None
  log: str = ""
  details: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def ok(self) -> bool:
    return self.status == "ok"

  def to_json(self) -> dict[str, Any]:
    """The outcome without the log and details (the summary keeps those where they belong)."""
    data = dataclasses.asdict(self)
    del data["log"], data["details"]
    return data


def run(name: str, command: Sequence[str], limit_s: float, log_path: pathlib.Path, *,
        env: dict[str, str] | None = None, cwd: pathlib.Path | None = None) -> StageResult:
  """Runs `command` for at most `limit_s` seconds, its output (stdout and stderr) into
  `log_path`. A command past its limit is stopped with its whole process group (its children
  too: benchmark groups, pytest workers)."""
  result = StageResult(name, command=[str(c) for c in command], limit_s=round(limit_s, 1))
  if limit_s < 1:
    result.status = "skipped: no time left in the check's budget"
    return result
  start = time.monotonic()
  with open(log_path, "w") as log:
    try:
      proc = subprocess.Popen(result.command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                              env={**os.environ, **(env or {})}, start_new_session=True)
    except OSError as exc:
      result.status = f"failed: {type(exc).__name__}: {exc}"
      return result
    try:
      result.exit_code = proc.wait(timeout=limit_s)
      result.status = "ok" if result.exit_code == 0 else f"failed: exit {result.exit_code}"
    except subprocess.TimeoutExpired:
      _stop(proc)
      result.status = f"timed out after {limit_s:.0f} s"
  result.wall_s = round(time.monotonic() - start, 1)
  result.log = log_path.read_text(errors="replace")
  return result


def _stop(proc: subprocess.Popen) -> None:
  """SIGTERM to the command's process group (a chance to exit cleanly), then SIGKILL after a
  grace period."""
  for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
    try:
      os.killpg(proc.pid, sig)
    except ProcessLookupError:
      return
    try:
      proc.wait(timeout=wait_s)
      return
    except subprocess.TimeoutExpired:
      continue


def tail(text: str, lines: int) -> str:
  return "\n".join(text.splitlines()[-lines:])


_OUTCOME = re.compile(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")
_SHORT = re.compile(r"^(FAILED|ERROR) (\S+::\S+)(?: - (.*))?$")
_SUMMARY = re.compile(r"^=+ (.+) in [\d.]+s")


def pytest_outcomes(log: str) -> dict[str, Any]:
  """Counts, per-test outcomes and failure messages from a `pytest -v -rfE` log (a run cut off
  by its limit still has the outcomes printed so far)."""
  outcomes: dict[str, str] = {}
  messages: dict[str, str] = {}
  summary = None
  for line in log.splitlines():
    if match := _OUTCOME.match(line):
      outcomes[match[1]] = match[2].lower()
    elif match := _SHORT.match(line):
      outcomes.setdefault(match[2], match[1].lower())
      messages[match[2]] = (match[3] or "")[:300]
    elif match := _SUMMARY.match(line):
      summary = match[1]
  counts: dict[str, int] = {}
  for outcome in outcomes.values():
    counts[outcome] = counts.get(outcome, 0) + 1
  return {"counts": counts, "summary": summary, "outcomes": outcomes, "messages": messages}


def training_outcome(workdir: pathlib.Path, stop_at_step: int) -> dict[str, Any]:
  """What a training run's `metrics.jsonl` says: the lowest evaluation loss and its step, the
  last step logged, the evaluation interval and the training throughput."""
  from minrnn.training.metrics import read_metrics, series

  records = read_metrics(workdir / "metrics.jsonl")
  steps, losses = series(records, "eval", "loss")
  _, throughput = series(records, "train", "tokens_per_sec")
  config_file = workdir / "config.json"
  config = json.loads(config_file.read_text()) if config_file.exists() else {}
  out = {"best_loss": None, "best_step": None, "last_step": max(
      (r["step"] for r in records), default=0), "stop_at_step": stop_at_step,
      "eval_every": config.get("train", {}).get("eval_every"),
      "num_steps": config.get("train", {}).get("num_steps"),
      "tokens_per_sec": sorted(throughput)[len(throughput) // 2] if throughput else None,
      "eval_steps": steps, "eval_losses": losses}
  if losses:
    best = min(losses)
    out.update(best_loss=best, best_step=steps[losses.index(best)])
  return out


def classification_outcome(workdir: pathlib.Path, stop_at_step: int) -> dict[str, Any]:
  """What a classification run says: the validation accuracy at each evaluation, the last step
  logged, the training steps per second, and from `final_eval.json` (written when the run
  reached its stop) the best validation accuracy, its step and the test accuracy there."""
  from minrnn.training.metrics import read_metrics, series

  records = read_metrics(workdir / "metrics.jsonl")
  steps, accuracies = series(records, "eval", "accuracy")
  _, throughput = series(records, "train", "tokens_per_sec")
  config_file, final_file = workdir / "config.json", workdir / "final_eval.json"
  config = json.loads(config_file.read_text()) if config_file.exists() else {}
  positions = (config.get("data", {}).get("batch_size", 0)
               * config.get("data", {}).get("max_length", 0))
  out = {"last_step": max((r["step"] for r in records), default=0),
         "stop_at_step": stop_at_step, "eval_steps": steps, "eval_accuracies": accuracies,
         "steps_per_sec": (sorted(throughput)[len(throughput) // 2] / positions
                           if throughput and positions else None),
         "best_step": None, "best_valid_accuracy": None, "test_accuracy": None}
  if final_file.exists():
    best = json.loads(final_file.read_text()).get("best") or {}
    out.update(best_step=best.get("step"), best_valid_accuracy=best.get("value"),
               test_accuracy=best.get("splits", {}).get("test", {}).get("accuracy"))
  return out
