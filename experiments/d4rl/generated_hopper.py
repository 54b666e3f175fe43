"""End-to-end offline RL on a generated Hopper-v5 dataset: NOT D4RL.

Generates the dataset of `generate_hopper.py` (if missing) in D4RL's format, trains the
Decision-style minGRU and minLSTM and the Decision Transformer baseline on it with
`configs/d4rl.py:hopper-medium,<cell>,cpu` (the file swapped for the generated one), rolls
each out in Hopper-v5 and writes `<out>.json` / `<out>.md`. Scores use D4RL's Hopper reference returns, but the data is a
hand-written noisy controller's, so they are not comparable with D4RL results.

    python experiments/d4rl/generated_hopper.py --workdir runs/d4rl_generated \
        --out experiments/results/d4rl_generated_hopper
"""

from __future__ import annotations

import json
import pathlib
import platform

import jax
import numpy as np

import generate_hopper  # A sibling script: run this file as `python experiments/d4rl/...`.
from table import CELLS, d4rl_config, markdown_table, run_entry, summarize

from minrnn import cli
from minrnn.data.d4rl import D4RLWindows, read_dataset, write_d4rl
from minrnn.data.paths import data_dir
from minrnn.tasks.rollouts import normalized_score
from minrnn.training.config import apply_overrides

# The generated episodes' returns reach about 1000 (a full episode without falling).
TARGET_RETURNS = (1000.0, 500.0)


def main():
  parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", type=pathlib.Path, required=True)
  parser.add_argument("--out", type=pathlib.Path,
                      default=pathlib.Path("experiments/results/d4rl_generated_hopper"))
  parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=CELLS)
  parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
  parser.add_argument("--transitions", type=int, default=100_000)
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE")
  args = parser.parse_args()
  apply_overrides(d4rl_config("hopper", "medium", args.cells[0], "cpu"), args.overrides)

  path = data_dir() / generate_hopper.DEFAULT_FILE
  if not path.exists():
    data, _ = generate_hopper.generate(args.transitions, seed=0)
    write_d4rl(path, data)

  runs, scores, by_target = {}, {}, {}
  for cell in args.cells:
    for seed in args.seeds:
      config = d4rl_config("hopper", "medium", cell, "cpu")
      config.seed = seed
      config.data.file = generate_hopper.DEFAULT_FILE
      config.data.rollouts.target_returns = TARGET_RETURNS
      apply_overrides(config, args.overrides)
      result = run_entry(config, args.workdir / f"{cell}/seed{seed}")
      final = result["final_evaluation"]
      # The data directory is this machine's; the file name relative to it says enough.
      final["data"]["source"] = generate_hopper.DEFAULT_FILE
      runs[f"{cell}/seed{seed}"] = {"eval": result["eval"], "final_evaluation": final}
      scores.setdefault(cell, []).append(final["normalized_score"])
      for target, rollout in final["targets"].items():
        by_target.setdefault(cell, {}).setdefault(target, []).append(
            rollout["mean_normalized_score"])

  config = d4rl_config("hopper", "medium", args.cells[0], "cpu")
  apply_overrides(config, args.overrides)
  data, _ = read_dataset(file=generate_hopper.DEFAULT_FILE)
  task = D4RLWindows(env="hopper", data=data, source=generate_hopper.DEFAULT_FILE, batch_size=1,
                     context=1, return_scale=1.0, max_timestep=1000, eval_fraction=0.0,
                     eval_batches=0, seed=0)
  stats = {**task.describe(), "source": generate_hopper.DEFAULT_FILE}
  returns = [t.episode_return for t in task.train_trajectories]
  behaviour = {"mean_normalized_score": float(np.mean([normalized_score("hopper", r)
                                                       for r in returns])),
               "best_episode_normalized_score": normalized_score("hopper", max(returns))}
  table = markdown_table({"generated/hopper": {c: summarize(s) for c, s in scores.items()}},
                         args.cells, "NOT D4RL: generated Hopper-v5 dataset, D4RL-normalised "
                         f"scores at target return {TARGET_RETURNS[0]:g} (mean ± std over "
                         f"training seeds {', '.join(map(str, args.seeds))})")
  lines = [table, "Score by target return (mean over seeds):", ""]
  for cell, targets in by_target.items():
    lines.append(f"- {cell}: " + ", ".join(f"target {t}: {np.mean(v):.1f}"
                                           for t, v in targets.items()))
  lines += ["", f"Dataset: {stats['transitions']} transitions, {stats['trajectories']} "
            f"episodes of a noisy hand-written PD controller (experiments/d4rl/"
            f"generate_hopper.py), returns {stats['return_min']:.0f} to "
            f"{stats['return_max']:.0f} (mean {stats['return_mean']:.0f}); behaviour policy "
            f"mean normalised score {behaviour['mean_normalized_score']:.1f}, best episode "
            f"{behaviour['best_episode_normalized_score']:.1f}.",
            f"Model and training: configs/d4rl.py:hopper-medium,<cell>,cpu "
            f"({config.model.num_layers} layers, width {config.model.features}, context "
            f"{config.data.context}, batch {config.data.batch_size}, "
            f"{config.train.num_steps} steps), overrides {args.overrides or 'none'}; "
            f"{config.data.rollouts.num_episodes} rollout episodes per run and target, "
            f"rollout mode `{config.data.rollouts.mode}`, training windows padded at the "
            f"{config.data.padding}.",
            f"Environment: jax {jax.__version__}, {jax.devices()[0].platform} "
            f"({platform.processor() or platform.machine()}), Python "
            f"{platform.python_version()}."]
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
  args.out.with_suffix(".json").write_text(json.dumps(
      {"label": "NOT D4RL: generated Hopper-v5 data", "dataset": stats,
       "behaviour_policy": behaviour, "target_returns": TARGET_RETURNS,
       "overrides": args.overrides, "scores": scores, "runs": runs}, indent=2))
  print("\n".join(lines))


if __name__ == "__main__":
  with cli.user_errors(verbose_flag=None):
    main()
