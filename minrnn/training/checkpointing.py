"""Orbax checkpoints of a training run: the last few for resuming, and the best for sampling.

A run's workdir holds two checkpoint directories:
  - `checkpoints/`: the most recent `keep` checkpoints; training resumes from the newest;
  - `best/`: the one checkpoint with the best evaluation metric so far (`train.best_metric`).

Each checkpoint has two items: `state` (a pytree of arrays: parameters and optimizer state)
and `meta` (JSON: step, the best evaluation so far and how long ago it was, or the metrics of
the best checkpoint). Saves are synchronous, a directory is
created by its first save (opening one writes nothing), and a save Orbax declines (that step is
already saved) is reported, never silent. A checkpoint that cannot be restored raises
`CheckpointError` naming the parameters that differ from the model's; nothing is deleted.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored."""


def _paths(tree: Any) -> dict[str, tuple]:
  """`{"params/blocks/0/...": shape}` of a pytree of arrays or array metadata."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  name = lambda k: str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
  return {"/".join(name(k) for k in path).removesuffix("/value"):
          tuple(getattr(leaf, "shape", ())) for path, leaf in leaves}


def _mismatch(saved: dict[str, tuple], wanted: dict[str, tuple]) -> str:
  """What differs between a checkpoint's arrays and a model's (parameters named first), or ""."""
  parts = []
  for label, keys in (
      ("the model has, the checkpoint lacks", set(wanted) - set(saved)),
      ("the checkpoint has, the model lacks", set(saved) - set(wanted)),
      ("shapes differ", {k for k in set(saved) & set(wanted) if saved[k] != wanted[k]})):
    if keys:
      keys = sorted(keys, key=lambda k: (not k.startswith("params"), k))
      parts.append(f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}")
  return "; ".join(parts)


def _damaged(error: Exception) -> str:
  # TensorStore appends its whole spec to the first line; the reason comes before it.
  text = str(error).strip().split("See full TensorStore details")[0].strip()
  first_line = text.splitlines()[0][:160] if text else ""
  return f"it is damaged ({type(error).__name__}: {first_line})."


class Checkpoints:
  """One checkpoint directory, keeping the `keep` most recently saved steps.

  Args:
    directory: where the step folders go (created by the first save).
    keep: how many checkpoints to keep; older ones are deleted after a successful save.
  """

  def __init__(self, directory: str | pathlib.Path, keep: int):
    if keep < 1:
      raise ValueError(f"keep must be >= 1 checkpoint, got {keep}.")
    self.directory = pathlib.Path(directory).resolve()
    self.keep = keep
    self._manager = None

  def _open(self, create: bool = False) -> ocp.CheckpointManager | None:
    if self._manager is None:
      if not self.directory.exists() and not create:
        return None
      self.directory.mkdir(parents=True, exist_ok=True)
      # Synchronous saves: a checkpoint is complete on disk when `save` returns, so a run
      # that is killed right after it can resume from it.
      options = ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=False,
                                             enable_async_checkpointing=False)
      handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
      self._manager = ocp.CheckpointManager(self.directory, options=options,
                                            item_handlers=handlers)
    return self._manager

  def latest_step(self) -> int | None:
    manager = self._open()
    return None if manager is None else manager.latest_step()

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> bool:
    """Saves `step`; returns False (and says so) when Orbax keeps an existing one instead.

    Raises:
      CheckpointError: the checkpoint could not be written (a full disk, a lost mount); the
        ones written before are intact.
    """
    manager = self._open(create=True)
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    # Orbax's writer threads log a failed write with its whole traceback; the error below
    # says it once.
    absl_logger.setLevel(logging.CRITICAL)
    try:
      saved = manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    except Exception as e:  # Orbax and TensorStore raise many types for a failed write.
      reason = " ".join(str(e).split())[:240]
      raise CheckpointError(
          f"Could not write the checkpoint of step {step} into {self.directory} "
          f"({type(e).__name__}: {reason}). The checkpoints written before it are intact: once "
          "the cause is fixed (a full disk?), run the same command again to resume.") from e
    finally:
      absl_logger.setLevel(level)
    if not saved:
      logging.warning("Checkpoint of step %d not written: %s already holds step %s, which is "
                      "kept.", step, self.directory, self.latest_step())
    return saved

  def all_steps(self) -> list[int]:
    manager = self._open()
    return [] if manager is None else sorted(manager.all_steps())

  def meta(self, step: int) -> dict[str, Any] | None:
    """The `meta` item of `step` alone (no arrays read), or None if it cannot be read."""
    manager = self._open()
    if manager is None:
      return None
    try:
      return dict(manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore())).meta)
    except Exception:  # Orbax raises many types for damaged files; None says "unreadable".
      return None

  def restore(self, step: int, target: Any, how_to_go_on: str | None = None, *,
              params_only: bool = False) -> tuple[Any, dict[str, Any]]:
    """The checkpoint of `step`, shaped like `target` (a pytree of arrays).

    With `params_only`, `target` is `{"params": ...}` and only the parameters come back: what
    reading a run needs, whatever else its checkpoints hold (the optimizer state; the model
    state a stream task carries between segments), which is read as saved.

    Args:
      how_to_go_on: the message's last line (default: how to resume from another checkpoint).

    Raises:
      CheckpointError: the checkpoint is damaged or does not match `target`. Nothing is
        deleted; the message names what differs and how to go on.
    """
    manager = self._open()
    path = self.directory / str(step)
    how_to_go_on = how_to_go_on or (
        f"Nothing was deleted. To resume from an earlier checkpoint, move {path} out of "
        f"{self.directory}; to start afresh, use a new workdir.")
    try:
      metadata = manager.item_metadata(step)["state"]
      saved = _paths(metadata)
    except Exception as e:  # No readable metadata: the files themselves are damaged.
      raise CheckpointError(f"Could not restore the checkpoint {path}: {_damaged(e)}\n"
                            f"{how_to_go_on}") from None
    if not saved:  # The arrays' index (state/_METADATA) is gone: damage, not another model.
      raise CheckpointError(
          f"Could not restore the checkpoint {path}: it is damaged (the index of its arrays, "
          f"state/_METADATA, is missing or empty).\n{how_to_go_on}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    if params_only:
      saved = {k: v for k, v in saved.items() if k.startswith("params/")}
      abstract = {**jax.tree.map(ocp.utils.to_shape_dtype_struct, dict(metadata)), **abstract}
    # Compared before reading any array: a failed read leaves Orbax's tasks behind.
    mismatch = _mismatch(saved, _paths(target))
    if mismatch:
      raise CheckpointError(
          f"Could not restore the checkpoint {path}: it was written by a different model "
          f"({mismatch}). Train with the config that wrote it (config.json), or use a new "
          f"workdir.\n{how_to_go_on}")
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax raises many types for damaged files.
      raise CheckpointError(f"Could not restore the checkpoint {path}: {_damaged(e)}\n"
                            f"{how_to_go_on}") from None
    state = {"params": restored.state["params"]} if params_only else restored.state
    return state, dict(restored.meta)

  def close(self) -> None:
    """Closes the directory; a later call opens it again."""
    if self._manager is not None:
      self._manager.close()
      self._manager = None
