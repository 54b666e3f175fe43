"""What a run does with a training step that is not finite: stop at once, or skip it.

The jitted step (`minrnn.training.steps.make_train_step`) applies no update whose loss, gradient
norm or result is not finite and says so in its `finite` metric, so the parameters in memory,
and every checkpoint written from them, stay finite. The loop reads that flag for every step
(one step late, so the device is never idle waiting for the host) and hands it to `StepGuard`:

  - by default (`train.skip_nonfinite_steps = 0`) the first non-finite step stops the run with
    `Diverged`: nothing past the last checkpoint is saved, so the last checkpoint, which is
    finite, is where a resume with a smaller learning rate starts;
  - with `train.skip_nonfinite_steps = n > 0` such a step is skipped (its batch leaves the model
    as it was, as large-model trainers skip a spike's batches) and reported, and the run stops
    only after more than n of them in a row.

The step's record in `metrics.jsonl` holds its loss and gradient norm (null where not finite, see
`minrnn.training.metrics.strict_json`) and `skipped: 1`.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import jax

from minrnn.training.steps import FINITE

# The exit status of a run stopped by a non-finite step (2 is a mistake in the command).
DIVERGED_STATUS = 3


class Diverged(RuntimeError):
  """A training step was not finite and the run stopped (see the module docstring)."""

  exit_code = DIVERGED_STATUS


def _describe(loss: float, grad_norm: float) -> str:
  if math.isfinite(loss) and math.isfinite(grad_norm):
    return (f"the loss ({loss:.4g}) and gradient norm ({grad_norm:.4g}) were finite but the "
            "update made the parameters or the optimizer state non-finite")
  return f"the loss is {loss} and the gradient norm {grad_norm}"


class StepGuard:
  """Reads each training step's `finite` flag and stops or skips (see the module docstring).

  Args:
    skip_limit: `train.skip_nonfinite_steps`, the non-finite steps in a row a run skips.
  """

  def __init__(self, skip_limit: int):
    if not isinstance(skip_limit, int) or isinstance(skip_limit, bool) or skip_limit < 0:
      raise ValueError(f"train.skip_nonfinite_steps must be a number of steps >= 0 (0: stop at "
                       f"the first non-finite step), got {skip_limit!r}.")
    self.skip_limit = skip_limit
    self.in_a_row = 0
    self.skipped_step: int | None = None  # The last step that was not applied.

  def check(self, step: int, metrics: dict[str, Any]) -> dict[str, float] | None:
    """None if step `step` (counted from 1) was applied; else its loss and gradient norm, to be
    logged, after which the caller calls `stop_or_skip`."""
    if bool(jax.device_get(metrics[FINITE])):
      self.in_a_row = 0
      return None
    self.in_a_row += 1
    self.skipped_step = step
    values = jax.device_get({k: metrics[k] for k in ("loss", "grad_norm")})
    return {k: float(v) for k, v in values.items()}

  def stop_or_skip(self, step: int, values: dict[str, float], last_checkpoint: int | None
                   ) -> None:
    """Raises `Diverged` unless the step may be skipped; then says it was."""
    what = _describe(values["loss"], values["grad_norm"])
    if self.in_a_row <= self.skip_limit:
      print(f"Step {step} skipped: {what} ({self.in_a_row} non-finite step(s) in a row, at most "
            f"{self.skip_limit}; train.skip_nonfinite_steps).", file=sys.stderr, flush=True)
      return
    saved = (f"the last checkpoint, of step {last_checkpoint}, is finite and is where the run "
             "resumes" if last_checkpoint is not None else "no checkpoint had been written yet")
    skipped = (f" after {self.in_a_row - 1} skipped step(s) in a row" if self.skip_limit else "")
    raise Diverged(
        f"Training diverged at step {step}{skipped}: {what}. The run stopped; nothing of that "
        f"step was saved and {saved}. Run it again with a smaller train.learning_rate (a "
        "changed setting: add --accept_config_changes), or let it skip up to N such steps in "
        "a row with --config.train.skip_nonfinite_steps=N.")
