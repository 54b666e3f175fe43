"""Trains a model from a config file; resumes automatically from its workdir.

    python -m minrnn.train --config configs/shakespeare.py:mingru --workdir runs/shakespeare \
        [--config.train.num_steps=1000 ...]

The part after `:` is the config file's variant, e.g. `configs/shakespeare.py:gru,cpu`; a
relative config path is found from the working directory or the repository. From Python:
`minrnn.train.train(config, workdir)` (`minrnn.training.loop.train`), with a config from
`minrnn.training.config.load_config`. What a run writes is described in `minrnn.training.loop`.
"""

from __future__ import annotations

import pathlib
import sys

import jax

from minrnn.training import distributed
from minrnn.training.config import find_config
from minrnn.training.loop import summary, train

__all__ = ["train"]


def resolve_config_argument(argv: list[str]) -> list[str]:
  """argv with the `--config` file found from any directory (the repository's `configs/` when
  it is not under the working directory), keeping its `:variant`."""
  argv = list(argv)
  for i, arg in enumerate(argv):
    if arg == "--config" and i + 1 < len(argv):
      index, value, prefix = i + 1, argv[i + 1], ""
    elif arg.startswith("--config="):
      index, value, prefix = i, arg[len("--config="):], "--config="
    else:
      continue
    path, sep, variant = value.partition(":")
    argv[index] = prefix + str(find_config(path)) + sep + variant
    break
  return argv


def main(argv):
  del argv
  # Orbax logs every save at INFO; keep the console to the progress bar unless asked.
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  distributed.initialize()
  workdir = pathlib.Path(_WORKDIR.value)
  result = train(_CONFIG.value, workdir)
  if jax.process_index() == 0:
    print(summary(result, workdir))


if __name__ == "__main__":
  from absl import app, flags, logging
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file(
      "config", None, "Config file, configs/<task>.py[:variant].", lock_config=True)
  _WORKDIR = flags.DEFINE_string(
      "workdir", None, "Run directory for checkpoints, metrics and plots; resumed if it exists.")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, argv=resolve_config_argument(sys.argv))
