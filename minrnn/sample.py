"""Prints text sampled from a trained run; needs only the run's directory.

    python -m minrnn.sample --workdir runs/shakespeare --prompt "ROMEO:" \
        [--length 500 --temperature 0.8 --top_k 40 --seed 0 --checkpoint best]

The run's `config.json` rebuilds the model and its `vocab.json` the vocabulary (no dataset is
read); the parameters come from the best checkpoint (lowest evaluation loss), or the latest with
`--checkpoint latest`. The prompt runs through the model in parallel mode, the continuation in
step mode. A mistake (not a run, no checkpoint, a character outside the vocabulary) is told in
one message with exit status 2.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import jax
import numpy as np
from flax import nnx

from minrnn import cli
from minrnn.data import vocab as vocab_lib
from minrnn.models import LanguageModel, build_language_model, make_generator
from minrnn.training import workdir as workdir_lib
from minrnn.training.checkpointing import Checkpoints


class _Section(dict):
  """A section of a saved `config.json`, read like the ConfigDict it was written from."""

  def __getattr__(self, name: str) -> Any:
    try:
      return self[name]
    except KeyError:
      raise AttributeError(f"The run's config has no key {name!r}.") from None


def _checkpoint_config(workdir: pathlib.Path) -> dict[str, Any] | None:
  """The config held by the run's latest checkpoint (or best one), if any holds it."""
  for name in (workdir_lib.CHECKPOINT_DIR, workdir_lib.BEST_DIR):
    checkpoints = Checkpoints(workdir / name, keep=1)
    try:
      step = checkpoints.latest_step()
      meta = None if step is None else checkpoints.meta(step)
    finally:
      checkpoints.close()
    if meta and meta.get("config"):
      return meta["config"]
  return None


def load_config(workdir: str | pathlib.Path) -> Any:
  """A run's resolved config from its `config.json`, or from its checkpoints when that file is
  missing or damaged (no ml_collections needed; nothing is written)."""
  workdir = pathlib.Path(workdir)
  try:
    saved, damaged = workdir_lib.Workdir(workdir).saved_config(), None
  except ValueError as e:
    saved, damaged = None, e
  saved = saved if saved is not None else _checkpoint_config(workdir)
  if saved is None:
    if damaged is not None:
      raise damaged
    raise FileNotFoundError(
        f"{workdir / workdir_lib.CONFIG_FILE} not found: {workdir} is not a training run's "
        f"workdir. Train one with `python -m minrnn.train --config ... --workdir {workdir}`.")
  saved = workdir_lib.with_added_keys(saved)
  return json.loads(json.dumps(saved), object_hook=_Section)


def load_vocab(workdir: str | pathlib.Path) -> vocab_lib.TextVocab:
  """The vocabulary the run saved."""
  path = pathlib.Path(workdir) / workdir_lib.VOCAB_FILE
  if not path.exists():
    load_config(workdir)  # A directory that is no run at all is told as such first.
    raise FileNotFoundError(
        f"{path} not found: the run in {workdir} has no text vocabulary (a synthetic or "
        "offline-RL task, or a run saved before vocabularies were kept with it).")
  return vocab_lib.from_json(json.loads(path.read_text()))


def load_run(workdir: str | pathlib.Path, checkpoint: str = "best",
             context: int | None = None) -> tuple[LanguageModel, vocab_lib.TextVocab, int]:
  """`(model, vocabulary, step)` of the run in `workdir`, from its `best` or `latest`
  checkpoint.

  With `context`, a model whose key-value cache holds fewer positions is built with a cache of
  `context` positions (`model.cell_kwargs.cache_size`); the cache holds no parameters, so the
  checkpoint restores either way.
  """
  workdir = pathlib.Path(workdir)
  config = load_config(workdir)
  if checkpoint not in ("best", "latest"):
    raise ValueError(f"checkpoint must be 'best' or 'latest', got {checkpoint!r}.")
  directory = workdir / (workdir_lib.BEST_DIR if checkpoint == "best"
                         else workdir_lib.CHECKPOINT_DIR)
  vocab = load_vocab(workdir)
  model = build_language_model(config.model, vocab.size, config.seed)
  capacity = model.context_capacity
  if context is not None and capacity is not None and capacity < context:
    config.model.cell_kwargs["cache_size"] = context
    model = build_language_model(config.model, vocab.size, config.seed)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  other = "latest" if checkpoint == "best" else "best"
  checkpoints = Checkpoints(directory, keep=max(config.train.keep_checkpoints, 1))
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise FileNotFoundError(
          f"No checkpoint in {directory}. The run saves one at its first evaluation (best) "
          "or checkpoint (latest); try the other with --checkpoint.")
    tree, _ = checkpoints.restore(
        step, {"params": params}, params_only=True,
        how_to_go_on=f"Nothing was changed. Sample the {other} checkpoint with --checkpoint "
                     f"{other}; training the run again repairs it.")
  finally:
    checkpoints.close()
  if not all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(tree["params"]))):
    raise ValueError(
        f"The {checkpoint} checkpoint ({directory / str(step)}) holds parameters that are not "
        f"finite: the run diverged before it was saved, so its text would be noise. Sample "
        f"the {other} checkpoint with --checkpoint {other}, or train the run again from an "
        "earlier checkpoint.")
  return nnx.merge(graphdef, tree["params"], rest), vocab, step


def sample(workdir: str | pathlib.Path, prompt: str, *, length: int = 500,
           temperature: float = 0.8, top_k: int | None = None, seed: int = 0,
           checkpoint: str = "best") -> str:
  """The prompt followed by `length` sampled tokens, as text, decoded from the prompt's tokens
  (a word outside a word-level vocabulary reads `<unk>`). A model with a key-value cache gets
  one that holds the prompt and the continuation."""
  if not prompt:
    raise ValueError("The prompt is empty; give at least one character, e.g. --prompt=$'\\n'.")
  ids = load_vocab(workdir).encode(prompt)
  model, vocab, _ = load_run(workdir, checkpoint, context=len(ids) + length - 1)
  generator = make_generator(model, length=length, temperature=temperature, top_k=top_k)
  tokens = generator(ids[None], jax.random.key(seed))
  # Prompt and continuation decoded as one text: word-level vocabularies join with spaces.
  return vocab.decode(np.concatenate([ids, jax.device_get(tokens)[0]]))


def main(argv: list[str]) -> int:
  parser = cli.ArgumentParser(prog="python -m minrnn.sample",
                              description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="a training run's workdir")
  parser.add_argument("--prompt", default="\n", help="text to continue")
  parser.add_argument("--length", type=int, default=500, help="tokens to generate")
  parser.add_argument("--temperature", type=cli.finite_float, default=0.8,
                      help="sampling temperature; 0 is greedy")
  parser.add_argument("--top_k", type=int, default=None,
                      help="sample among the k most likely tokens")
  parser.add_argument("--seed", type=int, default=0,
                      help="sampling seed; the same seed gives the same text")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best")
  parser.add_argument("--verbose", action="store_true", help="tracebacks for every error")
  args = parser.parse_args(argv)
  cli.quiet_libraries()
  with cli.user_errors(args.verbose):
    text = sample(args.workdir, args.prompt, length=args.length, temperature=args.temperature,
                  top_k=args.top_k, seed=args.seed, checkpoint=args.checkpoint)
  print(text if text.endswith("\n") else text + "\n", end="")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
