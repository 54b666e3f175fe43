"""Real-text check of the long-context path: SRU++ and minGRU on Tiny Shakespeare, trained by
truncated backpropagation through time with the state carried across segments, and evaluated
over the whole validation split with the state carried (the enwik8 / WikiText-103 protocol).

    python experiments/long_context/shakespeare.py --workdir runs/long_context_shakespeare

Sizes are CPU-feasible (a few minutes per model on two cores), not the papers'. Writes
`experiments/results/srupp_shakespeare.{json,md}` with the budget, device and versions.
"""

from __future__ import annotations

import json
import pathlib
import time

import jax
from flax import nnx

from minrnn import cli
from minrnn import train as train_lib
from minrnn.tasks import make_task
from minrnn.training.config import load_config
from minrnn.training.steps import create_state

REPO = pathlib.Path(__file__).resolve().parents[2]
RESULTS = REPO / "experiments" / "results"


def configs(num_steps: int) -> dict:
  """Both models on the same data, optimizer and budget; only `model` differs."""
  srupp = load_config("configs/enwik8.py:srupp,cpu")
  srupp.model.features = 192
  srupp.model.num_layers = 3
  srupp.model.cell_kwargs.proj_features = 48
  srupp.model.cell_kwargs.attention_every = 2
  srupp.model.cell_kwargs.memory_length = 64
  mingru = load_config("configs/enwik8.py:mingru,cpu")
  mingru.model.features = 80
  for config in (srupp, mingru):
    config.data.name = "shakespeare"
    config.data.segments = True
    config.data.download = False
    config.data.batch_size = 16
    config.data.seq_len = 64
    config.data.eval_batch_size = 16
    config.data.eval_seq_len = 64
    config.data.eval_batches = None  # The whole validation split.
    config.train.num_steps = num_steps
    config.train.warmup_steps = num_steps // 20
    config.train.learning_rate = 3e-3
    config.train.end_learning_rate = 3e-4
    config.train.log_every = 50
    config.train.eval_every = num_steps // 2
    config.train.checkpoint_every = num_steps
    config.train.progress_bar = False
  return {"srupp": srupp, "mingru": mingru}


def main() -> None:
  parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="Run directories go under it.")
  parser.add_argument("--steps", type=int, default=1500)
  args = parser.parse_args()
  rows = {}
  for name, config in configs(args.steps).items():
    start = time.perf_counter()
    result = train_lib.train(config, pathlib.Path(args.workdir) / name)
    model = create_state(config, make_task(config.data, config.seed)).model()
    rows[name] = {
        "eval_valid": result["eval"],
        "parameters": sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "model": config.model.to_dict(),
        "data": config.data.to_dict(),
        "steps": result["step"],
        "environment": result["environment"],
    }
  RESULTS.mkdir(parents=True, exist_ok=True)
  (RESULTS / "srupp_shakespeare.json").write_text(json.dumps(rows, indent=2, default=str))
  env = next(iter(rows.values()))["environment"]
  lines = [
      "# SRU++ and minGRU on Tiny Shakespeare through the long-context path",
      "",
      f"Budget: {args.steps} steps of 16 rows x 64 characters (the state carried from segment "
      "to segment, gradients truncated at segment boundaries), AdamW lr 3e-3 cosine. "
      "Evaluation: the whole validation split (111,540 characters, nanoGPT's split) as 16 "
      "contiguous rows, state carried. CPU-sized models, not the papers' settings.",
      f"Device: {env['device']} ({env['backend']}), jax {env['jax']}, flax {env['flax']}, "
      f"Python {env['python']}. Produced by `experiments/long_context/shakespeare.py`. Wall "
      "times include compilation and evaluation and were taken on a small machine shared with "
      "other jobs: they are not a speed comparison.",
      "",
      "| model | parameters | valid bits/char | valid perplexity | accuracy | wall time (s) |",
      "|---|---|---|---|---|---|",
  ]
  for name, row in rows.items():
    ev = row["eval_valid"]
    lines.append(f"| {name} | {row['parameters']:,} | {ev['bits_per_token']:.4f} | "
                 f"{ev['perplexity']:.3f} | {ev['accuracy']:.4f} | {row['wall_seconds']} |")
  (RESULTS / "srupp_shakespeare.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  with cli.user_errors(verbose_flag=None):
    main()
