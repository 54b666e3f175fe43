"""Formal languages: length generalisation (train on lengths 1-40, test on 40-256) of minGRU,
minLSTM and a Transformer; raw and scaled accuracy per task, mean over seeds.

    python experiments/formal_languages/run.py                  # the paper's protocol (GPU)
    python experiments/formal_languages/run.py --variant cpu    # small models, 2-core CPU
    python experiments/formal_languages/run.py --tasks parity_check,majority --models mingru \
        --seeds 0 --override train.num_steps=400                # a labelled reduction

Each (task, model, seed) trains with `minrnn.train.train` from
`configs/formal_languages.py:<model>,<variant>` with `data.task` and `seed` set, in
`<workdir>/<variant>_<task>_<model>_seed<k>` (resumed if it exists). The table reports the
test accuracy of the scored answer tokens at the end of training (per token for bucket sort, as
the official code scores it) and the scaled accuracy of the xLSTM paper's Figure 4, which the
paper's baselines come from: 0 at chance (the test strings' most frequent answer), 1 when
perfect. The paper's protocol is the `paper` configs in full, mean of 3 seeds (0, 1, 2); anything
else is labelled as a reduction. Later versions of "Were RNNs All We Needed?" report these
tasks, but their per-task numbers were not available to us: the paper column says [NR].
Writes `experiments/results/formal_languages[_<variant>].{json,md,png}`.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from experiments import reporting  # noqa: E402
from minrnn import cli  # noqa: E402
from minrnn.data.formal_languages import LANGUAGES  # noqa: E402
from minrnn.training.config import load_config  # noqa: E402

NAMES = {"mingru": "minGRU", "minlstm": "minLSTM", "transformer": "Transformer"}
PAPER_SEEDS = (0, 1, 2)  # The paper reports the mean of 3 seeds (C.3).
PAPER_SOURCE = ("per-task numbers not retrieved [NR] (later versions of arXiv 2410.01201, "
                "Tables 4-5); average over 7 LRA and formal-language tasks: minLSTM 0.73 [S] "
                "(PROTOCOLS.md)")


def parse_args(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--variant", default="paper", help="config variant: paper or cpu")
  parser.add_argument("--models", default="mingru,minlstm,transformer")
  parser.add_argument("--tasks", default=",".join(LANGUAGES))
  parser.add_argument("--seeds", default=",".join(map(str, PAPER_SEEDS)))
  parser.add_argument("--workdir", default="runs/experiments/formal_languages")
  reporting.add_run_arguments(parser)
  return parser.parse_args(argv)


def protocol_label(args, seeds) -> str:
  """"paper protocol", or "reduced: ..." naming every way the runs differ from it."""
  return reporting.reductions_label(
      variant=args.variant, overrides=args.override, seeds=seeds, paper_seeds=PAPER_SEEDS,
      stop_at_step=args.stop_at_step, variant_note=" (small models, few steps)")


def _config(args, task: str, model: str, seed: int) -> tuple[str, list[str], object]:
  overrides = [f"data.task={task!r}", f"seed={seed}", *args.override]
  if args.stop_at_step is not None:
    overrides.append(f"train.stop_at_step={args.stop_at_step}")
  spec = f"configs/formal_languages.py:{model},{args.variant}"
  return spec, overrides, load_config(spec, overrides=overrides)


def _train(args, task: str, model: str, seed: int, spec: str, overrides: list[str],
           config) -> dict:
  workdir = pathlib.Path(args.workdir) / f"{args.variant}_{task}_{model}_seed{seed}"
  run = reporting.train_run(config, workdir)
  run.update(task=task, model=model, seed=seed, config=spec, overrides=overrides,
             score=run["eval"]["accuracy"], scaled=run["eval"]["scaled_accuracy"],
             chance=run["eval"]["chance_accuracy"])
  print(f"{task} / {NAMES[model]} / seed {seed}: test accuracy {run['score']:.3f}, scaled "
        f"{run['scaled']:.3f} ({run['step']}/{run['num_steps']} steps, {run['wall_s']} s)")
  return run


def summarize(runs: list[dict]) -> dict[tuple[str, str], dict]:
  """(task, model) -> mean and std over seeds of accuracy and scaled accuracy, and chance."""
  by_cell: dict[tuple[str, str], list[dict]] = {}
  for run in runs:
    by_cell.setdefault((run["task"], run["model"]), []).append(run)
  return {key: {"accuracy": float(np.mean([r["score"] for r in group])),
                "accuracy_std": float(np.std([r["score"] for r in group])),
                "scaled": float(np.mean([r["scaled"] for r in group])),
                "scaled_std": float(np.std([r["scaled"] for r in group])),
                "chance": float(np.mean([r["chance"] for r in group])),
                "seeds": len(group)}
          for key, group in by_cell.items()}


def markdown(args, tasks, models, table, label, runs, env) -> str:
  lines = [
      f"# Formal languages ({args.variant} configs; {label})",
      "",
      "Test accuracy (%) of the answer tokens on lengths 40-256 after training on lengths 1-40, "
      "and the scaled accuracy of xLSTM's Figure 4 (0 at chance, 1 when perfect; chance = the "
      f"test strings' most frequent answer), mean over seeds. Paper: {PAPER_SOURCE}.",
      "",
      "| task | chance (%) | " + " | ".join(
          f"{NAMES[m]} paper | {NAMES[m]} acc. (%) | {NAMES[m]} scaled" for m in models) + " |",
      "|---|---|" + "---|---|---|" * len(models),
  ]
  for task in tasks:
    cells = []
    for m in models:
      entry = table[task, m]
      cells.append(f"[NR] | {reporting.fmt(100 * entry['accuracy'], 1)} | "
                   f"{reporting.fmt(entry['scaled'], 2)}")
    chance = 100 * table[task, models[0]]["chance"]
    lines.append(f"| {task} | {reporting.fmt(chance, 1)} | " + " | ".join(cells) + " |")
  steps = sorted({f"{r['step']}/{r['num_steps']}" for r in runs})
  wall = sum(r["wall_s"] for r in runs)
  lines += ["", f"Protocol: {label}.",
            f"Steps per run: {', '.join(steps)}; total wall time {wall:.0f} s.",
            reporting.environment_line(env)]
  return "\n".join(lines)


def figure(args, tasks, models, table):
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks)), 4))
  width = 0.8 / len(models)
  for i, model in enumerate(models):
    ax.bar(np.arange(len(tasks)) + i * width, [table[t, model]["scaled"] for t in tasks],
           width, label=NAMES[model])
  ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=30, ha="right")
  ax.axhline(0.0, color="gray", linewidth=0.8)
  ax.set_ylabel("scaled accuracy, lengths 40-256")
  ax.set_title(f"Formal languages ({args.variant})")
  ax.legend(fontsize=8)
  fig.tight_layout()
  return fig


def main(argv=None) -> dict:
  args = parse_args(argv)
  name = (args.name or ("formal_languages" if args.variant == "paper"
                        else f"formal_languages_{args.variant}"))
  models = reporting.names(args.models, NAMES, "--models")
  tasks = reporting.names(args.tasks, LANGUAGES, "--tasks")
  seeds = reporting.numbers(args.seeds, "--seeds")
  # Every config is resolved before any run trains: a bad variant or override stops at once.
  configs = {(task, model, seed): _config(args, task, model, seed)
             for task in tasks for model in models for seed in seeds}
  runs = [_train(args, *key, *config) for key, config in configs.items()]
  table = summarize(runs)
  label = protocol_label(args, seeds)
  env = reporting.environment()
  payload = {"experiment": "formal_languages", "variant": args.variant, "protocol": label,
             "paper": None, "paper_source": PAPER_SOURCE, "seeds": seeds,
             "table": [{"task": t, "model": m, **table[t, m]} for t in tasks for m in models],
             "runs": runs, "environment": env}
  reporting.write_results(name, payload, markdown(args, tasks, models, table, label, runs, env),
                          figure(args, tasks, models, table), args.out_dir)
  return payload


if __name__ == "__main__":
  with cli.user_errors(verbose_flag=None):
    main()
