"""Run configs: the entries every run shares, and loading a config file with overrides.

Each config file under `configs/` defines `get_config(variant=None)` and starts from
`base_config()` (the device mesh and the training loop's bookkeeping), then sets its own data,
model and optimisation settings (each with its source), so the keys no experiment tunes have one
default. `load_config` is how scripts, experiments and tests read such a file; the command line
of `python -m minrnn.train` reads the same files through `ml_collections.config_flags`.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib
from typing import Sequence

from ml_collections import config_dict

from minrnn import distributed

# A relative config path is looked up from the working directory, then from the repository
# that holds this package (an editable install), so `configs/...` works from anywhere there.
_REPO = pathlib.Path(__file__).resolve().parents[1]


def base_config() -> config_dict.ConfigDict:
  """A config holding `mesh`, the loop's keys under `train` that are not hyper-parameters, and
  the optimizer's kind (AdamW on matrices unless a config says otherwise)."""
  config = config_dict.ConfigDict()
  # The device mesh; `-1` takes the devices the other axes leave.
  config.mesh = config_dict.ConfigDict(distributed.MESH_DEFAULTS)
  config.train = config_dict.ConfigDict()
  config.train.stop_at_step = config_dict.placeholder(int)  # Stop early; resume later.
  config.train.keep_checkpoints = 3
  config.train.progress_bar = True
  config.train.tensorboard = True
  # The update rule and what weight decay applies to (see `minrnn.optimizer`); configs that
  # follow another recipe set their own.
  config.train.optimizer = "adamw"
  config.train.weight_decay_on = "matrices"
  return config


def _config_path(path: str | pathlib.Path) -> pathlib.Path:
  path = pathlib.Path(path)
  for candidate in (path, _REPO / path):
    if candidate.is_file():
      return candidate
  raise FileNotFoundError(
      f"Config file {str(path)!r} not found (looked in the working directory and in {_REPO}). "
      "Pass a path to a file under configs/, e.g. configs/shakespeare/mingru.py.")


def load_config(path: str | pathlib.Path, variant: str | None = None,
                overrides: Sequence[str] = ()) -> config_dict.ConfigDict:
  """`get_config(variant)` of the config file at `path`, with `key.sub=value` overrides."""
  path = _config_path(path)
  spec = importlib.util.spec_from_file_location(f"minrnn_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{path} defines no get_config(); it is not a minrnn config file.")
  config = module.get_config() if variant is None else module.get_config(variant)
  apply_overrides(config, overrides, source=str(path))
  return config


def apply_overrides(config: config_dict.ConfigDict, overrides: Sequence[str],
                    source: str = "the config") -> None:
  """Sets `key.sub=value` strings on a ConfigDict; an unknown key is an error.

  Values are Python literals (`3`, `1e-3`, `None`, `'parity'`) or else plain strings.
  """
  for override in overrides:
    key, sep, text = override.partition("=")
    if not sep:
      raise ValueError(f"Override {override!r} must look like key.sub=value.")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    *parents, leaf = key.split(".")
    node = config
    for name in parents:
      node = getattr(node, name)
    if leaf not in node:
      raise ValueError(f"Override {override!r}: {key} is not a setting of {source}.")
    setattr(node, leaf, value)
