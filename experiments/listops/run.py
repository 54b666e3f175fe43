"""ListOps (Long Range Arena) and its ablation (later versions of "Were RNNs All We Needed?",
Appendix D.3): test accuracy of minGRU and minLSTM with the paper's blocks (Conv4 -> minRNN ->
MLP), without the conv, without the MLP and without both, beside the LRA baselines of xLSTM's
Table 6.

    python experiments/listops/run.py --models mingru --blocks full --seeds 0 \
        --stop_at_step 20000                            # the paper's protocol, in chunks (GPU)
    python experiments/listops/run.py                   # gather all 24 runs into the table
    python experiments/listops/run.py --variant cpu --models mingru --seeds 0   # 2-core CPU

Each (model, blocks, seed) trains `configs/listops.py:<model>,<blocks>,<variant>` with `seed`
set, in `<workdir>/<variant>_<model>_<blocks>_seed<k>`, and resumes there, so the paper's 250k
steps go in chunks of `--stop_at_step`. The table reports, as the paper does, the test accuracy
of the checkpoint with the best validation accuracy (`final_eval.json`'s `best`), mean ± std
over seeds, with the best validation accuracy, its step and the steps run; its first line says
whether the runs follow the paper's protocol or lists every setting that differs from it. The
share of the test set's most frequent answer is given beside the uniform chance of 10 %: a model
that always answers it scores that much. The paper's own ListOps numbers for minGRU and minLSTM
were not available to us ([NR]). Writes `experiments/results/listops[_<variant>].{json,md,png}`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from experiments import reporting  # noqa: E402
from minrnn.data import listops  # noqa: E402
from minrnn.training.config import load_config  # noqa: E402

NAMES = {"mingru": "minGRU", "minlstm": "minLSTM"}
BLOCKS = {"full": "Conv4 → minRNN → MLP", "no_conv": "minRNN → MLP (no conv)",
          "no_mlp": "Conv4 → minRNN (no MLP)", "no_conv_no_mlp": "minRNN (no conv, no MLP)"}
PAPER_SEEDS = (0, 1, 2)  # The paper reports 3 seeds (Appendix D.3).
# ListOps test accuracy of the LRA baselines the paper compares with.
BASELINES = {"Llama": 0.379, "Mamba": 0.325, "RWKV-4": 0.389, "LSTM": 0.275,
             "LSTM (Block)": 0.495, "xLSTM": 0.411, "random": 0.100}
PAPER_SOURCE = ("baselines: xLSTM (Beck et al., 2024, arXiv 2405.04517) Table 6, ListOps column, "
                "as the project's research notes quote it; minGRU / minLSTM and their ablation "
                "(arXiv 2410.01201, later versions, Appendix D.3): not retrieved [NR]")


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--variant", default="paper", help="config size: paper or cpu")
  parser.add_argument("--models", default="mingru,minlstm")
  parser.add_argument("--blocks", default=",".join(BLOCKS))
  parser.add_argument("--seeds", default=",".join(map(str, PAPER_SEEDS)))
  parser.add_argument("--workdir", default="runs/experiments/listops")
  reporting.add_run_arguments(parser)
  return parser.parse_args(argv)


def _train(args, model: str, blocks: str, seed: int) -> dict:
  overrides = [f"seed={seed}", "train.progress_bar=False", *args.override]
  if args.stop_at_step is not None:
    overrides.append(f"train.stop_at_step={args.stop_at_step}")
  spec = f"configs/listops.py:{model},{blocks},{args.variant}"
  config = load_config(spec, overrides=overrides)
  workdir = pathlib.Path(args.workdir) / f"{args.variant}_{model}_{blocks}_seed{seed}"
  run = reporting.train_run(config, workdir)
  paper = load_config(f"configs/listops.py:{model},{blocks},paper", overrides=[f"seed={seed}"])
  differences = reporting.protocol_differences(config, paper)
  best = run["best"] or {}
  run.update(model=model, blocks=blocks, seed=seed, config=spec, overrides=overrides,
             differences=differences, protocol=reporting.protocol_label(differences, run),
             test_accuracy=best.get("splits", {}).get("test", {}).get("accuracy"),
             curve=reporting.best_eval(workdir, "accuracy"))
  print(f"{NAMES[model]} {blocks} seed {seed}: test accuracy {run['test_accuracy']} at the best "
        f"validation step {best.get('step')} ({run['step']}/{run['num_steps']} steps, "
        f"{run['wall_s']} s)")
  return run


def summarize(runs: list[dict]) -> dict[tuple[str, str], dict]:
  """(model, blocks) -> test accuracy mean and std over seeds, and the best validation
  accuracy's mean."""
  groups: dict[tuple[str, str], list[dict]] = {}
  for run in runs:
    groups.setdefault((run["model"], run["blocks"]), []).append(run)
  table = {}
  for key, group in groups.items():
    tests = [r["test_accuracy"] for r in group if r["test_accuracy"] is not None]
    valid = [r["best"]["value"] for r in group if r["best"]]
    table[key] = {"test": float(np.mean(tests)) if tests else None,
                  "test_std": float(np.std(tests)) if tests else None,
                  "valid": float(np.mean(valid)) if valid else None,
                  "best_steps": [(r["best"] or {}).get("step") for r in group],
                  "steps": [f"{r['step']}/{r['num_steps']}" for r in group],
                  "seeds": len(group)}
  return table


def majority_share(config) -> float:
  """The share of the test set's most frequent answer (the set the runs were scored on)."""
  data = config.data
  labels = listops.load_split(data.test_size, data.test_seed, listops.Spec.of(data),
                              data.dir).labels
  return float(np.bincount(labels, minlength=listops.NUM_CLASSES).max() / len(labels))


def markdown(args, table, runs, seeds, majority, env) -> str:
  title = reporting.protocol_title(runs)
  if tuple(seeds) != PAPER_SEEDS:
    title += f"; seeds {', '.join(map(str, seeds))} (paper: {len(PAPER_SEEDS)} seeds)"
  pct = lambda v: reporting.fmt(None if v is None else 100 * v, 1)
  lines = [
      f"# ListOps and its ablation ({args.variant} configs): {title}",
      "",
      "Test accuracy (%) of the checkpoint with the best validation accuracy, mean ± std over "
      f"seeds. Paper: {PAPER_SOURCE}.",
      "",
      "| model | blocks | paper test acc. | our test acc. | best val acc. | best steps | "
      "steps run |",
      "|---|---|---|---|---|---|---|",
  ]
  for (model, blocks), row in table.items():
    lines.append(
        f"| {NAMES[model]} | {BLOCKS[blocks]} | [NR] | {pct(row['test'])} ± "
        f"{pct(row['test_std'])} | {pct(row['valid'])} | "
        f"{', '.join(str(s) for s in row['best_steps'])} | {', '.join(row['steps'])} |")
  wall = sum(r["wall_s"] for r in runs)
  lines += [
      "", "Baselines (xLSTM Table 6, ListOps): " + ", ".join(
          f"{name} {100 * value:.1f}" for name, value in BASELINES.items()) + ".",
      f"The test set's most frequent answer is {pct(majority)} % of it (LRA's generator favours "
      "0 and 9); uniform chance is 10 %.",
      "", f"Protocol: {title}.", f"Total wall time {wall:.0f} s.",
      reporting.environment_line(env)]
  return "\n".join(lines)


def figure(args, table, majority):
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4))
  models = sorted({model for model, _ in table}, key=list(NAMES).index)
  blocks = [b for b in BLOCKS if any((m, b) in table for m in models)]
  width = 0.8 / len(models)
  for i, model in enumerate(models):
    values = [100 * (table.get((model, b), {}).get("test") or 0.0) for b in blocks]
    errors = [100 * (table.get((model, b), {}).get("test_std") or 0.0) for b in blocks]
    ax.bar(np.arange(len(blocks)) + i * width, values, width, yerr=errors,
           label=NAMES[model])
  ax.axhline(100 * BASELINES["xLSTM"], color="gray", linestyle="--", label="xLSTM (xLSTM Table 6)")
  ax.axhline(100 * majority, color="black", linestyle=":", label="most frequent answer")
  ax.set_xticks(np.arange(len(blocks)) + 0.4 - width / 2, [BLOCKS[b] for b in blocks],
                rotation=15, ha="right", fontsize=8)
  ax.set_ylabel("test accuracy (%)")
  ax.set_title(f"ListOps ablation ({args.variant})")
  ax.legend(fontsize=8)
  fig.tight_layout()
  return fig


def main(argv=None) -> dict:
  args = parse_args(argv)
  name = args.name or ("listops" if args.variant == "paper" else f"listops_{args.variant}")
  models, blocks = args.models.split(","), args.blocks.split(",")
  seeds = [int(s) for s in args.seeds.split(",")]
  for value, known in [(m, NAMES) for m in models] + [(b, BLOCKS) for b in blocks]:
    if value not in known:
      raise ValueError(f"Unknown choice {value!r}; choose from {sorted(known)}.")
  runs = [_train(args, model, block, seed)
          for model in models for block in blocks for seed in seeds]
  table = summarize(runs)
  majority = majority_share(load_config(f"configs/listops.py:{args.variant}",
                                        overrides=args.override))
  env = reporting.environment()
  payload = {"experiment": "listops", "variant": args.variant,
             "protocol": reporting.protocol_title(runs), "baselines": BASELINES,
             "paper_source": PAPER_SOURCE, "seeds": seeds, "majority_share": majority,
             "table": [{"model": m, "blocks": b, **row} for (m, b), row in table.items()],
             "runs": runs, "environment": env}
  reporting.write_results(name, payload, markdown(args, table, runs, seeds, majority, env),
                          figure(args, table, majority), args.out_dir)
  return payload


if __name__ == "__main__":
  main()
