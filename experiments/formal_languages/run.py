"""Formal languages: length generalisation (train on lengths 1-40, test on 40-256) of minGRU,
minLSTM and a Transformer, one accuracy per task.

    python experiments/formal_languages/run.py                  # configs' full budget (GPU)
    python experiments/formal_languages/run.py --variant cpu    # small models, 2-core CPU
    python experiments/formal_languages/run.py --tasks parity_check,majority --models mingru

Each (task, model) trains with `minrnn.train.train` from `configs/formal_languages.py:<model>`
with `data.task` set, in `<workdir>/<variant>_<task>_<model>` (resumed if it exists). The table
reports the test accuracy of the scored answer tokens at the end of training (per token for
bucket sort, as the official code scores it). Later versions of "Were RNNs All We Needed?" report these tasks; their
numbers were not available to us, so the paper column is left empty rather than guessed.
Writes `experiments/results/formal_languages[_<variant>].{json,md,png}`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from experiments import reporting  # noqa: E402
from minrnn.data import formal_languages  # noqa: E402
from minrnn.data.formal_languages import LANGUAGES  # noqa: E402
from minrnn.training.config import load_config  # noqa: E402

NAMES = {"mingru": "minGRU", "minlstm": "minLSTM", "transformer": "Transformer"}


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--variant", default="paper", help="config variant: paper or cpu")
  parser.add_argument("--models", default="mingru,minlstm,transformer")
  parser.add_argument("--tasks", default=",".join(LANGUAGES))
  parser.add_argument("--workdir", default="runs/experiments/formal_languages")
  reporting.add_run_arguments(parser)
  return parser.parse_args(argv)


def _chance(task: str, max_len: int) -> float:
  """Accuracy (%) of a uniform guess over the task's answer symbols."""
  return 100 * formal_languages.chance_accuracy(task, max_len)


def main(argv=None) -> dict:
  args = parse_args(argv)
  name = (args.name or ("formal_languages" if args.variant == "paper"
                        else f"formal_languages_{args.variant}"))
  models, tasks = args.models.split(","), args.tasks.split(",")
  for model in models:
    if model not in NAMES:
      raise ValueError(f"Unknown model {model!r}; choose from {sorted(NAMES)}.")
  runs = []
  for task in tasks:
    for model in models:
      overrides = [f"data.task={task!r}", *args.override]
      if args.stop_at_step is not None:
        overrides.append(f"train.stop_at_step={args.stop_at_step}")
      config = load_config(f"configs/formal_languages.py:{model},{args.variant}",
                           overrides=overrides)
      workdir = pathlib.Path(args.workdir) / f"{args.variant}_{task}_{model}"
      run = reporting.train_run(config, workdir)
      run.update(task=task, model=model, score=run["eval"]["accuracy"],
                 max_len=config.data.eval_max_len,
                 config=f"configs/formal_languages.py:{model},{args.variant}",
                 overrides=overrides)
      runs.append(run)
      print(f"{task} / {NAMES[model]}: test accuracy {run['score']:.3f} "
            f"({run['step']}/{run['num_steps']} steps, {run['wall_s']} s)")

  env = reporting.environment()
  scores = {(r["task"], r["model"]): r for r in runs}
  lines = [
      f"# Formal languages ({args.variant} configs)",
      "",
      "Test accuracy (%) of the answer tokens on lengths 40-256 after training on lengths 1-40. "
      "The paper's numbers for these tasks were not available to us: "
      "\"paper\" is left empty.",
      "",
      "| task | chance | " + " | ".join(f"{NAMES[m]} (paper) | {NAMES[m]} (ours)"
                                       for m in models) + " |",
      "|---|---|" + "---|---|" * len(models),
  ]
  for task in tasks:
    cells = [f"– | {reporting.fmt(100 * scores[task, m]['score'], 1)}" for m in models]
    chance = _chance(task, scores[task, models[0]]["max_len"])
    lines.append(f"| {task} | {reporting.fmt(chance, 1)} | " + " | ".join(cells) + " |")
  steps = sorted({f"{r['step']}/{r['num_steps']}" for r in runs})
  wall = sum(r["wall_s"] for r in runs)
  lines += ["", f"Steps per run: {', '.join(steps)}; total wall time {wall:.0f} s.",
            reporting.environment_line(env)]
  if args.override:
    lines.append("Config overrides: " + ", ".join(f"`{o}`" for o in args.override) + ".")
  if args.variant != "paper":
    lines.append(f"\nNot the full budget: `{args.variant}` configs (small models, few steps).")

  import matplotlib.pyplot as plt
  import numpy as np
  fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks)), 4))
  width = 0.8 / len(models)
  for i, model in enumerate(models):
    ax.bar(np.arange(len(tasks)) + i * width,
           [100 * scores[t, model]["score"] for t in tasks], width, label=NAMES[model])
  ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=30, ha="right")
  ax.set_ylabel("test accuracy (%), lengths 40-256")
  ax.set_title(f"Formal languages ({args.variant})")
  ax.legend(fontsize=8)
  fig.tight_layout()
  payload = {"experiment": "formal_languages", "variant": args.variant, "paper": None,
             "paper_source": "not available to us", "runs": runs, "environment": env}
  reporting.write_results(name, payload, "\n".join(lines), fig, args.out_dir)
  return payload


if __name__ == "__main__":
  main()
