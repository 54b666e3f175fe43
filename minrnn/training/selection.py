"""Which evaluation is the best so far, and when a run stops early.

A run keeps the checkpoint with the best value of `train.best_metric` (one of its task's
evaluation metrics; larger is better for those in `Task.higher_is_better`, smaller for the rest)
in `best/`, and with `train.early_stopping_patience = p` it ends after p evaluations in a row
without a strictly better value. The state here (the best value, the evaluations since it) is
saved with every checkpoint, so a resumed run stops where an uninterrupted one would, and a run
that stopped early resumes as finished.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping


@dataclasses.dataclass
class Selection:
  """The best evaluation so far by `metric`.

  Attributes:
    metric: the evaluation metric that ranks checkpoints.
    higher_is_better: whether a larger value of it is better.
    patience: stop after this many evaluations without improvement (None: never).
    value: the best value so far (None before the first evaluation).
    evals_since_best: evaluations since the best one.
  """

  metric: str
  higher_is_better: bool
  patience: int | None = None
  value: float | None = None
  evals_since_best: int = 0

  def __post_init__(self):
    if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
      raise ValueError(f"train.early_stopping_patience must be None (off) or a number of "
                       f"evaluations >= 1, got {self.patience!r}.")

  def update(self, metrics: Mapping[str, float]) -> bool:
    """Records one evaluation; True when it is strictly better than every earlier one. An
    evaluation with any non-finite metric never is (a diverged model's accuracy of 0 is no
    best, whatever `metric` is)."""
    value = float(metrics[self.metric])
    finite = all(v is not None and math.isfinite(float(v)) for v in metrics.values())
    better = finite and (
        self.value is None
        or (value > self.value if self.higher_is_better else value < self.value))
    if better:
      self.value, self.evals_since_best = value, 0
    else:
      self.evals_since_best += 1
    return better

  @property
  def stopped(self) -> bool:
    """Whether the patience has run out."""
    return self.patience is not None and self.evals_since_best >= self.patience

  def forget_best(self, value: float | None = None) -> None:
    """After the best checkpoint was lost: `value` (that of the checkpoint that replaces it, or
    None: the next evaluation becomes the best) is the one to beat."""
    self.value = value

  def meta(self) -> dict[str, Any]:
    """What a checkpoint saves of it."""
    return {"best_value": self.value, "evals_since_best": self.evals_since_best}

  def restore(self, meta: Mapping[str, Any]) -> None:
    """Reads `meta()` back from a checkpoint's metadata; checkpoints written before early
    stopping existed hold the best evaluation loss alone (infinite before any evaluation)."""
    value = meta["best_value"] if "best_value" in meta else meta.get("best_eval_loss")
    self.value = value if value is not None and math.isfinite(value) else None
    self.evals_since_best = meta.get("evals_since_best", 0)
