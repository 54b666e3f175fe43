"""SRU++'s enwik8 protocol end to end, beside the published numbers: `configs/enwik8.py:srupp`
trained with the state carried from segment to segment, then the official final test pass
(`--final_test`: the best checkpoint, one row, an evaluation unroll three times the training
segment, the same-length attention mask).

    python experiments/long_context/srupp_protocol.py                # reduced, CPU (~10 min)
    python experiments/long_context/srupp_protocol.py --variant paper --stop_at_step 20000

`reduced` (the default): enwik8 is not on this project's machines, so the run puts Tiny
Shakespeare's 1,115,394 bytes in enwik8's raw format (`<workdir>/data/enwik8/enwik8`, split
90/5/5 % as enwik8's 90M/5M/5M bytes) and trains a small SRU++ (width 256, 4 layers, attention
in every layer) for `--steps` steps of 16 rows x 64 bytes; the whole enwik8 path runs (loader,
splits, segments, both evaluations) on real text. `paper`: the SRU++ base config on the real
enwik8 from the data directory (GPUs; resumes in chunks with `--stop_at_step`). Writes
`experiments/results/srupp_protocol_<variant>.{json,md,png}`.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys

import jax
from flax import nnx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from experiments import reporting  # noqa: E402
from minrnn import cli  # noqa: E402
from minrnn.data import enwik8, paths  # noqa: E402
from minrnn.models import build_language_model  # noqa: E402
from minrnn.training.config import apply_overrides, load_config  # noqa: E402
from minrnn.training.final_test import final_test  # noqa: E402
from minrnn.training.metrics import read_metrics, series  # noqa: E402

# asappresearch/sru, experiments/srupp_experiments/README.md (branch 3.0.0-dev, commit
# 0fca653): test results of the base models.
PAPER = {"enwik8": {"test_bpc": 0.974, "parameters": "108M"},
         "wikitext103": {"test_ppl": 18.3, "parameters": "148M"}}


def parse_args(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--variant", choices=("reduced", "paper"), default="reduced")
  parser.add_argument("--steps", type=int, default=4000, help="training steps (reduced)")
  parser.add_argument("--workdir", default="runs/experiments/srupp_protocol")
  reporting.add_run_arguments(parser)
  return parser.parse_args(argv)


def reduced_data(root: pathlib.Path) -> pathlib.Path:
  """A data directory whose `enwik8/enwik8` holds Tiny Shakespeare's bytes."""
  source = paths.data_dir() / "tinyshakespeare" / "input.txt"
  if not source.exists():
    raise FileNotFoundError(f"{source} not found: the reduced run reads Tiny Shakespeare from "
                            "the data directory (MINRNN_DATA_DIR).")
  target = root / "enwik8" / "enwik8"
  target.parent.mkdir(parents=True, exist_ok=True)
  if not target.exists():
    target.write_bytes(source.read_bytes())
  return root


def make_config(args):
  """The run's config: the paper config as it is, or the reduced one (sizes below)."""
  if args.variant == "paper":
    config = load_config("configs/enwik8.py:srupp")
  else:
    config = load_config("configs/enwik8.py:srupp,cpu")
    data_dir = reduced_data(pathlib.Path(args.workdir) / "data")
    config.data.update(dir=str(data_dir), download=False, verify_checksum=False,
                       batch_size=16, seq_len=64, eval_batch_size=16, eval_seq_len=64,
                       eval_batches=None)
    config.model.update(features=256, num_layers=4)
    config.model.cell_kwargs.update(proj_features=64, attention_every=1, memory_length=64)
    config.final_test.update(seq_len=192, max_batches=None)
    config.final_test.cell_kwargs.memory_length = 192
    every = max(1, args.steps // 8)
    config.train.update(num_steps=args.steps, warmup_steps=max(1, args.steps // 20),
                        learning_rate=3e-3, log_every=min(50, every), eval_every=every,
                        checkpoint_every=max(1, args.steps // 4))
  config.train.progress_bar = False
  config.train.stop_at_step = args.stop_at_step
  apply_overrides(config, args.override)
  return config


def parameter_count(config) -> int:
  """The model's parameters, from shapes alone."""
  model = nnx.eval_shape(
      lambda: build_language_model(config.model, enwik8.VOCAB_SIZE, config.seed))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _markdown(args, payload) -> str:
  run, test, ours = payload["run"], payload["final_test"], payload["training_eval"]
  bpc = lambda metrics: reporting.fmt(metrics["bits_per_token"])
  label = ("paper protocol" if args.variant == "paper" else
           "reduced: Tiny Shakespeare's bytes in enwik8's format (90/5/5 %), SRU++ width 256, "
           f"4 layers, {payload['parameters']:,} parameters, {run['step']} steps of 16 x 64 bytes")
  lines = [
      f"# SRU++ enwik8 protocol ({args.variant})",
      "",
      "Published: asappresearch/sru `experiments/srupp_experiments/README.md` (3.0.0-dev, "
      "commit 0fca653), SRU++ base models: enwik8 test 0.974 bpc (108M parameters), "
      "WikiText-103 test 18.3 ppl (148M). The final test pass is theirs: the best checkpoint, "
      "one row, an unroll of 3x the training segment (3072 bytes in the paper), the "
      "same-length attention mask with the previous segment as memory.",
      "",
      "| run | protocol | split | bits/char | training-time eval, bits/char |",
      "|---|---|---|---|---|",
      "| SRU++ base, paper | official final test pass | enwik8 test | 0.974 | – |",
  ]
  for split in test["splits"]:
    lines.append(f"| ours, {label} | final test pass, 1 row x {test['protocol']['seq_len']} "
                 f"bytes, step {test['step']} (best) | {split} | {bpc(test['splits'][split])} | "
                 f"{bpc(ours[split])} (16 rows x 64, step {run['step']}) |")
  lines += ["", f"Training: {run['step']} of {run['num_steps']} steps, {run['wall_s']} s "
            f"(training and evaluations); final test pass {test['wall_s']} s. "
            "WikiText-103 (18.3 ppl) is not run here: its files are not on this machine.",
            reporting.environment_line(payload["environment"])]
  return "\n".join(lines)


def _figure(workdir: pathlib.Path, test) -> object:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  records = read_metrics(workdir / "metrics.jsonl")
  fig, ax = plt.subplots(figsize=(6, 4))
  for kind, label in (("train", "training loss"), ("eval", "validation, training-time eval")):
    steps, values = series(records, kind, "loss")
    ax.plot(steps, [v / math.log(2) for v in values], label=label, marker="." if kind == "eval"
            else None)
  for split, metrics in test["splits"].items():
    ax.scatter([test["step"]], [metrics["bits_per_token"]], marker="*", s=120,
               label=f"{split}, final test pass")
  ax.set_xlabel("step")
  ax.set_ylabel("bits per character")
  ax.legend()
  fig.tight_layout()
  return fig


def main(argv=None) -> dict | None:
  """Trains (or resumes) the run, then runs its final test pass and writes the results;
  returns them (None while the run is unfinished)."""
  args = parse_args(argv)
  config = make_config(args)
  workdir = pathlib.Path(args.workdir) / f"enwik8_srupp_{args.variant}"
  run = reporting.train_run(config, workdir)
  if not run["completed"]:
    print(f"Stopped at step {run['step']}; run the same command again to continue.")
    return None
  test = final_test(config, workdir)
  final_eval = json.loads((workdir / "final_eval.json").read_text())
  payload = {
      "paper": PAPER, "variant": args.variant, "run": run,
      "parameters": parameter_count(config),
      "final_test": test,
      "training_eval": {"valid": final_eval["eval"], **final_eval.get("splits", {})},
      "config": config.to_dict(), "environment": reporting.environment(),
  }
  name = args.name or f"srupp_protocol_{args.variant}"
  markdown = _markdown(args, payload)
  reporting.write_results(name, payload, markdown, _figure(workdir, test), args.out_dir)
  print(markdown)
  return payload


if __name__ == "__main__":
  with cli.user_errors(verbose_flag=None):
    main()
