"""The offline-RL table of "Were RNNs All We Needed?" (arXiv 2410.01201, section 4.2): D4RL
normalised scores of Decision-style minGRU and minLSTM on HalfCheetah, Hopper and Walker2d ×
Medium, Medium-Replay, Medium-Expert, mean ± standard deviation over training seeds.

    python experiments/d4rl/table.py --workdir runs/d4rl --out experiments/results/d4rl

needs D4RL's nine MuJoCo v2 hdf5 files in `<data dir>/d4rl/` (see `minrnn/data/d4rl.py`). Each
(task, cell, seed) trains with `configs/d4rl.py:<env>-<dataset>,<cell>` in its own run directory
`<workdir>/<env>_<dataset>_<cell>/seed<k>`, resuming an unfinished run and reusing a finished
one, so the command can be stopped and repeated. `--set key=value` overrides config entries
(e.g. `--set train.num_steps=20000`); `--envs`, `--datasets`, `--cells`, `--seeds` pick a part.
Writes `<out>.json` (every run's scores) and `<out>.md` (the table).

The paper's protocol is the `paper` configs in full with 5 seeds (0-4); the table's title says
"paper protocol" or "reduced: ..." naming what differs. The paper reports only 9-task averages
that we could find ([S], PROTOCOLS.md): minLSTM 78.1, minGRU 78.2, the Decision Transformer 76.4
(the Transformer column here is this codebase's Decision-Transformer baseline, not DT's code);
its per-cell numbers are [NR].
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from experiments import reporting  # noqa: E402
from minrnn import cli  # noqa: E402
from minrnn import train as train_lib  # noqa: E402
from minrnn.data.d4rl import DATASETS, ENVS  # noqa: E402
from minrnn.training import loop  # noqa: E402
from minrnn.training.config import apply_overrides, load_config  # noqa: E402

CELLS = ("mingru", "minlstm", "transformer")

ENV_NAMES = {"halfcheetah": "HalfCheetah", "hopper": "Hopper", "walker2d": "Walker2d"}
DATASET_NAMES = {"medium": "Medium", "medium_replay": "Medium-Replay",
                 "medium_expert": "Medium-Expert"}
CELL_NAMES = {"mingru": "minGRU", "minlstm": "minLSTM", "transformer": "Transformer"}
PAPER_SEEDS = (0, 1, 2, 3, 4)
# The paper's 9-task averages [S] (PROTOCOLS.md, "D4RL"); per-cell values were not retrieved.
PAPER_AVERAGES = {"mingru": 78.2, "minlstm": 78.1, "transformer": 76.4}
PAPER_SOURCE = ("arXiv 2410.01201 Table 3, 9-task averages [S] (PROTOCOLS.md); Transformer: "
                "the Decision Transformer's 76.4; per-cell values [NR]")


def d4rl_config(env: str, dataset: str, cell: str, variant: str):
  """`configs/d4rl.py` for one table entry (dataset as D4RL's file names spell it)."""
  return load_config(f"configs/d4rl.py:{env}-{dataset.replace('_', '-')},{cell},{variant}")


def run_entry(config, workdir: pathlib.Path) -> dict[str, Any]:
  """Trains (or resumes, or reuses) one run; returns its `final_eval.json`."""
  done = workdir / loop.FINAL_EVAL_FILE
  if done.exists():
    result = json.loads(done.read_text())
    if result.get("completed") and "final_evaluation" in result:
      return result
  return train_lib.train(config, workdir)


def summarize(scores: Sequence[float]) -> dict[str, float]:
  return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "n": len(scores)}


def markdown_table(entries: dict[str, dict[str, dict[str, float]]], cells: Sequence[str],
                   title: str, paper: dict[str, float] | None = None) -> str:
  """Rows "Medium / Hopper" etc. (the paper's order), a column per cell, and an average row;
  with `paper` (cell -> the paper's 9-task average) a paper column beside each cell ([NR] per
  entry, the average on the average row)."""
  def header(c):
    name = CELL_NAMES.get(c, c)
    return f"{name} paper | {name} ours" if paper is not None else name

  lines = [f"# {title}", "", "| Dataset | Environment | " +
           " | ".join(header(c) for c in cells) + " |",
           "|---|---|" + "---|" * len(cells) * (2 if paper is not None else 1)]
  for row, by_cell in entries.items():
    dataset, env = row.split("/")
    values = [f"{by_cell[c]['mean']:.1f} ± {by_cell[c]['std']:.1f}" if c in by_cell else "–"
              for c in cells]
    if paper is not None:
      values = [f"[NR] | {v}" for v in values]
    lines.append(f"| {DATASET_NAMES.get(dataset, dataset)} | {ENV_NAMES.get(env, env)} | "
                 + " | ".join(values) + " |")
  averages = []
  for c in cells:
    means = [by_cell[c]["mean"] for by_cell in entries.values() if c in by_cell]
    ours = f"{np.mean(means):.1f}" if len(means) == len(entries) else "–"
    averages.append(ours if paper is None else f"{paper.get(c, '–')} [S] | {ours}")
  lines.append("| **Average** | | " + " | ".join(averages) + " |")
  return "\n".join(lines) + "\n"


def protocol_label(args) -> str:
  """"paper protocol", or "reduced: ..." naming how the runs differ from it."""
  return reporting.reductions_label(variant=args.variant, overrides=args.overrides,
                                    seeds=args.seeds, paper_seeds=PAPER_SEEDS)


def parse_args(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", type=pathlib.Path, required=True)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("experiments/results/d4rl"))
  parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
  parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
  parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=CELLS)
  parser.add_argument("--seeds", nargs="+", type=int, default=list(PAPER_SEEDS))
  parser.add_argument("--variant", default="paper", choices=("paper", "cpu"))
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  # The overrides are checked once before any run trains (every entry's config has the same keys).
  apply_overrides(d4rl_config(args.envs[0], args.datasets[0], args.cells[0], args.variant),
                  args.overrides)
  runs, entries = {}, {}
  for dataset in args.datasets:
    for env in args.envs:
      row = f"{dataset}/{env}"
      for cell in args.cells:
        scores = []
        for seed in args.seeds:
          config = d4rl_config(env, dataset, cell, args.variant)
          config.seed = seed
          apply_overrides(config, args.overrides, source=f"{env}_{dataset}_{cell}")
          name = f"{env}_{dataset}_{cell}/seed{seed}"
          result = run_entry(config, args.workdir / name)
          runs[name] = result["final_evaluation"]
          scores.append(result["final_evaluation"]["normalized_score"])
        entries.setdefault(row, {})[cell] = summarize(scores)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  label = protocol_label(args)
  args.out.with_suffix(".json").write_text(json.dumps(
      {"variant": args.variant, "protocol": label, "overrides": args.overrides,
       "seeds": args.seeds, "paper": PAPER_AVERAGES, "paper_source": PAPER_SOURCE,
       "table": entries, "runs": runs}, indent=2))
  table = markdown_table(entries, args.cells, "D4RL normalised scores (mean ± std over seeds "
                         f"{', '.join(map(str, args.seeds))}; {label})", paper=PAPER_AVERAGES)
  table += f"\nPaper: {PAPER_SOURCE}.\n"
  args.out.with_suffix(".md").write_text(table)
  print(table)


if __name__ == "__main__":
  with cli.user_errors(verbose_flag=None):
    main()
