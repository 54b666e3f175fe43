"""A run's directory: what it holds, and the rule for running again in it.

    config.json            the resolved config of the latest command that trained here
    config_history.jsonl   every accepted change of the config, one JSON line each
    vocab.json             the task's vocabulary (text tasks), so sampling needs only the run
    metrics.jsonl, tensorboard/, checkpoints/, best/, final_eval.json, loss_curve.png
    final_test.json        the final test pass of the best checkpoint (`minrnn.training.final_test`)
    run.lock               held while a process trains here (`minrnn.training.lock`)

Running again in a workdir with checkpoints resumes it. Every checkpoint holds the config it was
trained with (`config` in its metadata), and a resume compares against that one, whatever
`config.json` says; a missing or damaged `config.json` is rewritten from it. The config may then
change only in settings that are safe to extend a run with (`SAFE_CHANGES`: the step budget and
the early stopping patience, logging, evaluation and checkpoint frequency, where the data lives,
the device mesh, what to do with a non-finite step; and the sections of `SAFE_SECTIONS`, which
no training step reads); any other change is refused with the list of changed keys, unless
the caller accepts it explicitly. Gradient
accumulation is not safe to change: the micro-batches draw other dropout masks and round
differently, so the resumed run would not be the run it extends. An accepted change is appended to
`config_history.jsonl`, so no earlier setting is lost. A key added to the configs after a run was
saved (`ADDED_KEYS`) is no change when it holds what the code did before; sampling reads such a
run's config with those values.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import types
from typing import Any, Mapping

CONFIG_FILE = "config.json"
CONFIG_HISTORY_FILE = "config_history.jsonl"
VOCAB_FILE = "vocab.json"
FINAL_EVAL_FILE = "final_eval.json"
FINAL_TEST_FILE = "final_test.json"
LOSS_CURVE_FILE = "loss_curve.png"
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"

# Keys whose change leaves the run it extends the same run, each with the reason. Every other
# key of every config is refused on change (tests/test_resume_rules.py walks them all).
_BOOKKEEPING = "bookkeeping: no training step reads it"
_WHERE_DATA_LIVES = "where the data lives, not what it holds"
_MESH = ("the device mesh: losses equal one device's, and checkpoints restore on any device "
         "count")
SAFE_CHANGES = types.MappingProxyType({
    "train.num_steps": "the step budget: a longer run is the run that went on",
    "train.stop_at_step": "where this command stops; the run goes on from there",
    "train.early_stopping_patience": ("a step budget like num_steps: a run that goes on with a "
                                      "larger one is the run that never stopped"),
    "train.log_every": _BOOKKEEPING,
    "train.eval_every": ("evaluations change no parameter (early stopping's patience counts "
                         "them, so it is reached at another step)"),
    "train.checkpoint_every": _BOOKKEEPING,
    "train.keep_checkpoints": _BOOKKEEPING,
    "train.progress_bar": _BOOKKEEPING,
    "train.tensorboard": _BOOKKEEPING,
    "data.dir": _WHERE_DATA_LIVES,
    "data.cache_dir": _WHERE_DATA_LIVES,
    "data.download": "whether a missing file may be fetched; the data is the same",
    "data.tfds_dir": _WHERE_DATA_LIVES,
    "mesh.data": _MESH,
    "mesh.sequence": _MESH,
    "mesh.model": _MESH,
    "train.skip_nonfinite_steps": ("what to do with a non-finite step: a run of finite steps "
                                   "computes the same either way"),
})
# Config sections that only say how to score a finished run, with the reason.
SAFE_SECTIONS = types.MappingProxyType({
    "final_test": "how the finished run is scored; no training step reads it",
})


def is_safe_change(key: str) -> bool:
  """Whether changing the flattened config key `key` ("a.b") leaves the run the same run."""
  return key in SAFE_CHANGES or key.split(".", 1)[0] in SAFE_SECTIONS


# Keys added to the configs after runs were trained without them, with the value that does what
# the code did before: a saved config that lacks one is not changed by that value, and reads it
# back with it (`with_added_keys`).
ADDED_KEYS = types.MappingProxyType({
    "train.grad_accum_steps": 1, "train.best_metric": "loss", "model.init": "flax",
    "model.conv_residual": False, "model.mlp_gated": True, "model.emb_dropout": 0.0,
    "data.source": "files", "data.padding": "end",
})


def with_added_keys(saved: dict[str, Any]) -> dict[str, Any]:
  """`saved` (a run's config.json, nested dicts) with every `ADDED_KEYS` key it lacks set to the
  value that does what the code did when it was saved; sections it lacks stay absent."""
  for key, value in ADDED_KEYS.items():
    section, name = key.split(".")
    if isinstance(saved.get(section), dict):
      saved[section].setdefault(name, value)
  return saved


class ConfigChangedError(ValueError):
  """A resumed run's config differs from the one it was trained with in unsafe keys."""


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """`{"a.b": value}` of a nested mapping (lists and tuples compared as lists)."""
  flat = {}
  for key, value in config.items():
    if isinstance(value, Mapping):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = list(value) if isinstance(value, (tuple, list)) else value
  return flat


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple]:
  """`{key: (old value, new value)}` of every key that differs (missing: None)."""
  old, new = flatten(old), flatten(new)
  return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
          if old.get(k) != new.get(k)}


def describe_changes(changes: Mapping[str, tuple], limit: int = 8) -> str:
  lines = [f"  {key}: {old!r} -> {new!r}" for key, (old, new) in list(changes.items())[:limit]]
  if len(changes) > limit:
    lines.append(f"  ... and {len(changes) - limit} more")
  return "\n".join(lines)


class Workdir:
  """The files of one run (see the module docstring)."""

  def __init__(self, path: str | pathlib.Path):
    self.path = pathlib.Path(path)

  def __truediv__(self, name: str) -> pathlib.Path:
    return self.path / name

  def saved_config(self) -> dict[str, Any] | None:
    """The config the run was last trained with, from `config.json`, or None if there is none.

    Raises:
      ValueError: `config.json` is not JSON (the message names it).
    """
    path = self / CONFIG_FILE
    if not path.exists():
      return None
    try:
      return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise ValueError(f"{path} is damaged: it is not JSON ({e}). It holds the config the run "
                       "was trained with; restore it from a copy, or resume the run (its "
                       "checkpoint holds the config too and rewrites it).") from None

  def check_config(self, config: Mapping[str, Any], resuming: bool,
                   accept_changes: bool = False,
                   saved: Mapping[str, Any] | None = None) -> dict[str, tuple]:
    """The changes from `saved` (default: `config.json`), the config the run was trained with;
    raises `ConfigChangedError` when resuming with an unsafe change that was not accepted.
    Writes nothing."""
    saved = self.saved_config() if saved is None else saved
    if saved is None:
      return {}
    changes = config_changes(saved, config)
    saved_keys = flatten(saved)
    unsafe = {k: (old, new) for k, (old, new) in changes.items() if not is_safe_change(k)
              and not (k not in saved_keys and k in ADDED_KEYS and new == ADDED_KEYS[k])}
    if resuming and unsafe and not accept_changes:
      raise ConfigChangedError(
          f"{self.path} holds a run trained with a different config; resuming it would mix "
          f"two runs. Changed settings:\n{describe_changes(unsafe)}\n"
          "Use a new --workdir, run with the old settings, or pass --accept_config_changes "
          "to continue this run with the new ones (the change is recorded in "
          f"{CONFIG_HISTORY_FILE}).")
    return changes

  def check_resume(self, config: Mapping[str, Any], step: int | None,
                   trained: Mapping[str, Any] | None, accept_changes: bool = False
                   ) -> tuple[dict[str, tuple], str]:
    """`check_config` against the config the run was trained with: `trained`, the one its
    latest checkpoint (of `step`; None: no checkpoint) holds, whatever `config.json` says; else
    (checkpoints from before they held it) `config.json`'s. Returns the changes and a note when
    `config.json` is missing, damaged or differs from `trained` (`record_config` rewrites it).
    With no checkpoint, a damaged `config.json` is no error: nothing was trained with it."""
    note = ""
    if trained is not None:
      try:
        on_disk = self.saved_config()
      except ValueError:
        on_disk = "damaged"
      if on_disk != trained:
        what = ("missing" if on_disk is None else "damaged" if on_disk == "damaged" else
                "not the config the checkpoint was trained with")
        note = (f"{self / CONFIG_FILE} was {what}; the run is compared with the config its "
                f"checkpoint of step {step} holds, and the file is written again.")
    elif step is None:
      try:
        self.saved_config()
      except ValueError:
        return {}, f"{self / CONFIG_FILE} was damaged; it is replaced."
    return self.check_config(config, step is not None, accept_changes, saved=trained), note

  def record_config(self, config: Mapping[str, Any], changes: Mapping[str, tuple],
                    step: int) -> None:
    """Writes `config.json`; appends the changes, if any, to the history."""
    self.path.mkdir(parents=True, exist_ok=True)
    if changes:
      entry = {"time": datetime.datetime.now().isoformat(timespec="seconds"), "step": step,
               "changes": {k: list(v) for k, v in changes.items()}}
      with open(self / CONFIG_HISTORY_FILE, "a") as f:
        f.write(json.dumps(entry, default=str) + "\n")
    (self / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
