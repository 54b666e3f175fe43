"""`best/`: the checkpoint of the best evaluation so far, and what happens when it is damaged.

An evaluation better than every earlier one (`minrnn.training.selection`) is saved to `best/`
with its metrics. A resumed run reads `best/` first; when it cannot be read, it is moved aside to
`best.damaged.<time>` (nothing is deleted) and rebuilt from the checkpoints that survive in
`checkpoints/`:

  - if the best evaluation's own checkpoint survives there, `best/` is restored from it: the same
    parameters, nothing is lost;
  - else every surviving checkpoint is evaluated again and the best of them becomes `best/`; the
    lost one (its step, metric value and where its files went) is kept in `lost`, which
    `final_eval.json` records under `lost_best` beside the evaluation it had recorded;
  - with no readable checkpoint left, `best/` stays empty until the next evaluation.

Either way the message says which it was.
"""

from __future__ import annotations

import json
import math
import pathlib
import shutil
import time
from typing import Any, Callable

from minrnn.training.checkpointing import CheckpointError, Checkpoints
from minrnn.training.selection import Selection


def _finite(metrics: dict[str, float]) -> bool:
  return all(math.isfinite(float(v)) for v in metrics.values())


class BestCheckpoint:
  """The `best/` checkpoint directory of a run, ranked by `selection`."""

  def __init__(self, directory: str | pathlib.Path, selection: Selection):
    self.directory = pathlib.Path(directory)
    self.selection = selection
    self.checkpoints = Checkpoints(self.directory, keep=1)
    self.lost: dict[str, Any] | None = None

  def update(self, step: int, tree: Any, metrics: dict[str, float]) -> None:
    """Records an evaluation; saves `tree` if it is the best so far."""
    if self.selection.update(metrics):
      self._save(step, tree, metrics)

  def _save(self, step: int, tree: Any, metrics: dict[str, float]) -> None:
    self.checkpoints.save(step, tree, {"step": step, "metric": self.selection.metric,
                                       "eval": metrics})

  def check(self, template: dict[str, Any], survivors: Checkpoints,
            survivor_template: dict[str, Any],
            evaluate: Callable[[Any], dict[str, float]]) -> None:
    """Reads `best/` (shaped like `template`, a checkpoint tree); rebuilds it when it is
    damaged (see the module docstring) from `survivors` (shaped like `survivor_template`, which
    may hold more, e.g. a carried model state), scoring a tree with `evaluate(tree)`."""
    step = self.checkpoints.latest_step()
    if step is None:
      return
    try:
      self.checkpoints.restore(step, template)
      return
    except CheckpointError as e:
      reason = str(e).splitlines()[0]
    self.checkpoints.close()
    aside = self.directory.with_name(f"{self.directory.name}.damaged.{int(time.time())}")
    shutil.move(str(self.directory), aside)
    self.checkpoints = Checkpoints(self.directory, keep=1)
    metric, value = self.selection.metric, self.selection.value
    recorded = f"{metric} {value:.4g} at step {step}" if value is not None else f"step {step}"
    head = f"The best checkpoint ({recorded}) could not be read; moved it to {aside}."
    readable = {}
    for s in survivors.all_steps():
      try:
        tree = survivors.restore(s, survivor_template)[0]
      except CheckpointError:
        continue
      readable[s] = {key: tree[key] for key in template}
    if step in readable:
      self._save(step, readable[step], evaluate(readable[step]))
      print(f"{head} Restored best/ from {survivors.directory / str(step)}: the same "
            f"parameters, nothing is lost. ({reason})")
      return
    self.lost = {"step": step, "metric": metric, "value": value, "moved_to": str(aside),
                 "reason": reason}
    scored = {s: evaluate(tree) for s, tree in readable.items()}
    scored = {s: m for s, m in scored.items() if _finite(m)}
    if not scored:
      self.selection.forget_best(None)
      print(f"{head} No readable checkpoint survives to replace it: the next evaluation saves "
            f"a new one. ({reason})")
      return
    sign = -1.0 if self.selection.higher_is_better else 1.0
    best = min(scored, key=lambda s: (sign * scored[s][metric], s))
    self._save(best, readable[best], scored[best])
    self.selection.forget_best(scored[best][metric])
    print(f"{head} Its checkpoint is lost; best/ now holds step {best} ({metric} "
          f"{scored[best][metric]:.4g}), the best of the surviving checkpoints "
          f"{', '.join(map(str, sorted(scored)))} evaluated again. final_eval.json keeps the "
          f"lost evaluation under lost_best. ({reason})")

  def entry(self, template: Any, final_step: int, final_splits: dict[str, Any] | None,
            score_splits: Callable[[Any], dict[str, Any]]) -> dict[str, Any] | None:
    """`final_eval.json`'s `best`: the best evaluation and, for tasks with more splits, those
    splits scored with the best checkpoint's parameters (`score_splits(tree)`; `final_splits`
    when the best is the final step); None before any evaluation."""
    step = self.checkpoints.latest_step()
    if step is None:
      return None
    tree, meta = self.checkpoints.restore(step, template)
    metric = self.selection.metric
    best = {"metric": metric, "value": meta["eval"][metric], "step": step, "eval": meta["eval"]}
    if final_splits is not None:
      best["splits"] = final_splits if step == final_step else score_splits(tree)
    return best

  def lost_entries(self, final_eval: pathlib.Path) -> list[dict[str, Any]]:
    """`final_eval.json`'s `lost_best`: the entries the file at `final_eval` holds, and the
    checkpoint lost now with the best evaluation the file had recorded for it."""
    try:
      previous = json.loads(final_eval.read_text())
    except (OSError, ValueError):  # Missing or damaged: nothing recorded to keep.
      previous = {}
    entries = list(previous.get("lost_best") or [])
    if self.lost is not None:
      recorded = previous.get("best")
      entry = dict(self.lost)
      if recorded and recorded.get("step") == self.lost["step"]:
        entry["recorded"] = recorded
      entries.append(entry)
    return entries

  def close(self) -> None:
    self.checkpoints.close()
