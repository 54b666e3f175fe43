"""Orbax checkpoints of a training run: the last few for resuming, and the best for sampling.

A run's workdir holds two checkpoint directories:
  - `checkpoints/`: the most recent `keep` checkpoints; training resumes from the newest;
  - `best/`: the one checkpoint with the lowest evaluation loss so far.

Each checkpoint has two items: `state` (a pytree of arrays: parameters and optimizer state)
and `meta` (JSON: step, metrics, best evaluation loss).
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored."""


class Checkpoints:
  """One checkpoint directory, keeping the `keep` most recently saved steps.

  Args:
    directory: where the step folders go (created if missing).
    keep: how many checkpoints to keep; older ones are deleted after a successful save.
  """

  def __init__(self, directory: str | pathlib.Path, keep: int):
    if keep < 1:
      raise ValueError(f"keep must be >= 1 checkpoint, got {keep}.")
    self.directory = pathlib.Path(directory).resolve()
    # Synchronous saves: a checkpoint is complete on disk when `save` returns, so a run that
    # is killed right after it can resume from it.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
    """The checkpoint of `step`, shaped like `target` (a pytree of arrays).

    Raises:
      CheckpointError: the checkpoint is damaged or does not match `target`. Nothing is
        deleted; the message says how to go on.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax raises many types for damaged or mismatched files.
      path = self.directory / str(step)
      raise CheckpointError(
          f"Could not restore the checkpoint {path}: {type(e).__name__}: {e}\n"
          "It is damaged, or was written by a run with a different model config. Nothing "
          f"was deleted. To resume from an earlier checkpoint, move {path} out of "
          f"{self.directory}; to start afresh, use a new workdir."
      ) from e
    return restored.state, dict(restored.meta)

  def close(self) -> None:
    self._manager.close()
