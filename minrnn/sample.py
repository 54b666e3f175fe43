"""Prints text sampled from a trained run.

    python -m minrnn.sample --workdir runs/shakespeare --prompt "ROMEO:" \
        [--length 500 --temperature 0.8 --top_k 40 --seed 0 --checkpoint best]

The run's `config.json` rebuilds the model and its task's vocabulary; the parameters come from
the best checkpoint (lowest evaluation loss), or the latest with `--checkpoint latest`. The
prompt runs through the model in parallel mode, the continuation in step mode.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import numpy as np

from minrnn.models import LanguageModel, make_generator
from minrnn.tasks import Task, make_task
from minrnn.training import loop
from minrnn.training.checkpointing import Checkpoints
from minrnn.training.steps import create_state


class _Section(dict):
  """A section of a saved `config.json`, read like the ConfigDict it was written from."""

  def __getattr__(self, name: str) -> Any:
    try:
      return self[name]
    except KeyError:
      raise AttributeError(f"The run's config has no key {name!r}.") from None


def load_config(workdir: str | pathlib.Path) -> Any:
  """A run's resolved config from its `config.json` (no ml_collections needed)."""
  config_path = pathlib.Path(workdir) / loop.CONFIG_FILE
  if not config_path.exists():
    raise FileNotFoundError(
        f"{config_path} not found: {workdir} is not a training run's workdir. Train one with "
        f"`python -m minrnn.train --config ... --workdir {workdir}`.")
  return json.loads(config_path.read_text(), object_hook=_Section)


def load_run(workdir: str | pathlib.Path, checkpoint: str = "best",
             context: int | None = None) -> tuple[LanguageModel, Task, int]:
  """`(model, task, step)` of the run in `workdir`, from its `best` or `latest` checkpoint.

  With `context`, a model whose key-value cache holds fewer positions is built with a cache of
  `context` positions (`model.cell_kwargs.cache_size`); the cache holds no parameters, so the
  checkpoint restores either way.
  """
  config = load_config(workdir)
  task = make_task(config.data, config.seed)
  model, step = _restore(pathlib.Path(workdir), config, task, checkpoint, context)
  return model, task, step


def _restore(workdir: pathlib.Path, config: Any, task: Task, checkpoint: str,
             context: int | None) -> tuple[LanguageModel, int]:
  if checkpoint not in ("best", "latest"):
    raise ValueError(f"checkpoint must be 'best' or 'latest', got {checkpoint!r}.")
  directory = workdir / (loop.BEST_DIR if checkpoint == "best"
                         else loop.CHECKPOINT_DIR)
  if not directory.is_dir():
    raise FileNotFoundError(
        f"No checkpoint in {directory}. The run saves one at its first evaluation "
        "(best) or checkpoint (latest); try the other with --checkpoint.")
  state = create_state(config, task)
  capacity = state.model().context_capacity
  if context is not None and capacity is not None and capacity < context:
    config.model.cell_kwargs["cache_size"] = context
    state = create_state(config, task)
  checkpoints = Checkpoints(directory, keep=max(config.train.keep_checkpoints, 1))
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {directory}; try --checkpoint with the other.")
    tree, _ = checkpoints.restore(step, state.checkpoint_tree())
  finally:
    checkpoints.close()
  state.params = tree["params"]
  return state.model(), step


def sample(workdir: str | pathlib.Path, prompt: str, *, length: int = 500,
           temperature: float = 0.8, top_k: int | None = None, seed: int = 0,
           checkpoint: str = "best") -> str:
  """The prompt followed by `length` sampled characters (tokens), decoded from the prompt's
  tokens (a word outside a word-level vocabulary reads `<unk>`). A model with a key-value cache
  gets one that holds the prompt and the continuation."""
  if not prompt:
    raise ValueError("The prompt is empty; give at least one character, e.g. --prompt=$'\\n'.")
  config = load_config(workdir)
  task = make_task(config.data, config.seed)
  ids = task.encode(prompt)
  model, _ = _restore(pathlib.Path(workdir), config, task, checkpoint,
                      context=len(ids) + length - 1)
  generator = make_generator(model, length=length, temperature=temperature, top_k=top_k)
  tokens = generator(ids[None], jax.random.key(seed))
  # Prompt and continuation decoded as one text: word-level vocabularies join with spaces.
  return task.decode(np.concatenate([ids, jax.device_get(tokens)[0]]))


def main(argv: Any) -> None:
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  print(sample(_WORKDIR.value, _PROMPT.value, length=_LENGTH.value,
               temperature=_TEMPERATURE.value, top_k=_TOP_K.value, seed=_SEED.value,
               checkpoint=_CHECKPOINT.value))


if __name__ == "__main__":
  from absl import app, flags, logging

  _WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir.", required=True)
  _PROMPT = flags.DEFINE_string("prompt", "\n", "Text to continue.")
  _LENGTH = flags.DEFINE_integer("length", 500, "Characters to generate.", lower_bound=1)
  _TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature; 0 is greedy.",
                                    lower_bound=0.0)
  _TOP_K = flags.DEFINE_integer("top_k", None, "Sample among the k most likely characters.")
  _SEED = flags.DEFINE_integer("seed", 0, "Sampling seed; the same seed gives the same text.")
  _CHECKPOINT = flags.DEFINE_enum("checkpoint", "best", ["best", "latest"],
                                  "Which checkpoint to load.")
  app.run(main)
