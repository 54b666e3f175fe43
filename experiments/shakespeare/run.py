"""Shakespeare character LM: the best test loss and its step for minGRU, minLSTM, Mamba and a
Transformer, beside the numbers of "Were RNNs All We Needed?" (section 4.2).

    python experiments/shakespeare/run.py                      # the paper's protocol (GPU)
    python experiments/shakespeare/run.py --variant cpu        # small models, 2-core CPU
    python experiments/shakespeare/run.py --models mingru,minlstm --stop_at_step 2500

Each model trains with `minrnn.train.train` from `configs/shakespeare.py:<model>,<variant>` in
`<workdir>/<variant>_<model>` and resumes there, so a run cut by a time limit continues when the
command is repeated (`--stop_at_step` cuts on purpose). "Test loss" is the loss on nanoGPT's
validation split (the last 10% of the text), the paper's test split, evaluated every 25 steps
(the config's; `--eval_every` changes it); the table reports the lowest one and its step
(`final_eval.json`'s `best`), and its first line whether the runs follow the paper's protocol or
how they are reduced (every setting that differs from the `paper` variant). Writes
`experiments/results/shakespeare[_<variant>].{json,md,png}`.
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from experiments import reporting  # noqa: E402
from minrnn import cli  # noqa: E402
from minrnn.training.config import load_config  # noqa: E402

# Best test loss (nats per character) and its step. Source: the project's protocol notes
# (PROTOCOLS.md, "Shakespeare, character level"), marked [P]: the paper's own text.
PAPER_SOURCE = "arXiv 2410.01201 section 4.2 (PROTOCOLS.md [P])"
PAPER = {
    "mingru": {"loss": 1.548, "best_step": 575},
    "minlstm": {"loss": 1.555, "best_step": 625},
    "mamba": {"loss": 1.575, "best_step": 400},
    "transformer": {"loss": 1.547, "best_step": 2000},
}
NAMES = {"mingru": "minGRU", "minlstm": "minLSTM", "mamba": "Mamba", "transformer": "Transformer",
         "gru": "GRU", "lstm": "LSTM"}


def parse_args(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--variant", default="paper", help="config variant: paper or cpu")
  parser.add_argument("--models", default="mingru,minlstm,mamba,transformer",
                      help=f"comma list of {sorted(NAMES)}")
  parser.add_argument("--workdir", default="runs/experiments/shakespeare")
  parser.add_argument("--eval_every", type=int, default=None,
                      help="evaluation interval (default: the config's, the paper's 25)")
  reporting.add_run_arguments(parser)
  return parser.parse_args(argv)


def _write(args, name: str, runs: dict) -> dict:
  """Writes the table, figure and JSON of the runs so far; returns the JSON payload."""
  env = reporting.environment()
  first = reporting.protocol_title(runs.values())
  lines = [
      f"# Shakespeare character LM ({args.variant} configs): {first}",
      "",
      "Best test loss (nats per character; the test split is nanoGPT's validation split, the "
      f"last 10% of the text) and its step. Paper: {PAPER_SOURCE}.",
      "",
      "| model | paper test loss | paper best step | our best test loss | our best step "
      "| steps run | protocol | wall s |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for model, run in runs.items():
    paper, best = PAPER.get(model, {}), run["best"] or {}
    lines.append(
        f"| {NAMES[model]} | {reporting.fmt(paper.get('loss'))} | {paper.get('best_step', '–')} "
        f"| {reporting.fmt(best.get('value'))} | {best.get('step', '–')} "
        f"| {run['step']}/{run['num_steps']} | {run['protocol']} | {run['wall_s']} |")
  lines += ["", reporting.environment_line(env)]
  if args.override:
    lines.append("Config overrides: " + ", ".join(f"`{o}`" for o in args.override) + ".")

  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  for model, run in runs.items():
    ax.plot(run["curve"]["steps"], run["curve"]["values"], label=NAMES[model])
    if model in PAPER and args.variant == "paper":
      ax.axhline(PAPER[model]["loss"], ls=":", lw=0.8, color=ax.lines[-1].get_color())
  ax.set_xlabel("step")
  ax.set_ylabel("test loss (nats/char)")
  ax.set_title(f"Shakespeare ({args.variant}); dotted: paper")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  payload = {"experiment": "shakespeare", "variant": args.variant, "paper": PAPER,
             "paper_source": PAPER_SOURCE,
             "runs": runs, "environment": env}
  reporting.write_results(name, payload, "\n".join(lines), fig, args.out_dir)
  return payload


def _configs(args) -> dict:
  """model -> `(overrides, config)` of every run, all resolved before any trains."""
  configs = {}
  for model in reporting.names(args.models, NAMES, "--models"):
    overrides = ["train.progress_bar=False", *args.override]
    if args.eval_every is not None:
      overrides.insert(0, f"train.eval_every={args.eval_every}")
    if args.stop_at_step is not None:
      overrides.append(f"train.stop_at_step={args.stop_at_step}")
    configs[model] = overrides, load_config(f"configs/shakespeare.py:{model},{args.variant}",
                                            overrides=overrides)
  return configs


def main(argv=None) -> dict:
  args = parse_args(argv)
  name = args.name or ("shakespeare" if args.variant == "paper" else f"shakespeare_{args.variant}")
  runs, payload = {}, {}
  for model, (overrides, config) in _configs(args).items():
    workdir = pathlib.Path(args.workdir) / f"{args.variant}_{model}"
    run = reporting.train_run(config, workdir)
    differences = reporting.protocol_differences(
        config, load_config(f"configs/shakespeare.py:{model},paper"))
    run.update(curve=reporting.best_eval(workdir), differences=differences,
               protocol=reporting.protocol_label(differences, run),
               config=f"configs/shakespeare.py:{model},{args.variant}", overrides=overrides)
    runs[model] = run
    best = run["best"] or {}
    print(f"{NAMES[model]}: best test loss {best.get('value')} at step {best.get('step')} "
          f"({run['step']}/{run['num_steps']} steps, {run['wall_s']} s)")
    # Written after every model, so a run cut by a time limit keeps the finished ones.
    payload = _write(args, name, runs)
  return payload


if __name__ == "__main__":
  with cli.user_errors(verbose_flag=None):
    main()
