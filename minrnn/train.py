"""Trains a model from a config file; resumes automatically from its workdir.

    python -m minrnn.train --config configs/shakespeare.py:mingru --workdir runs/shakespeare \
        [--config.train.num_steps=1000 ...] [--accept_config_changes] [--verbose]
    python -m minrnn.train --config configs/enwik8.py:srupp --workdir runs/enwik8 --final_test

The part after `:` is the config file's variant, e.g. `configs/shakespeare.py:gru,cpu`; a
relative config path is found from the working directory or the repository. `--config.a.b=v`
overrides a setting. A mistake (an unknown setting, a missing data file, a changed config on
resume, a damaged checkpoint, a workdir in use by another process) is told in one message with
exit status 2, and leaves the workdir as it was. SIGTERM or Ctrl-C saves a checkpoint and exits
with 128 + the signal's number; the same command resumes. A training step that is not finite
stops the run with one message and exit status 3, with nothing of it saved
(`minrnn.training.divergence`). `--final_test` trains nothing: it scores the finished run's best
checkpoint under the config's `final_test` protocol (SRU++'s official test pass: one row, a long
unroll, the same-length attention mask) into `final_test.json` (`minrnn.training.final_test`).
From Python: `minrnn.train.train(config, workdir)` (`minrnn.training.loop.train`), with a
config from `minrnn.training.config.load_config`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from minrnn import cli
from minrnn.training import distributed
from minrnn.training import final_test as final_test_lib
from minrnn.training.config import load_config
from minrnn.training.divergence import Diverged
from minrnn.training.loop import prepare, train
from minrnn.training.metrics import METRICS_FILE
from minrnn.training.preemption import Preempted
from minrnn.training.workdir import BEST_DIR, CHECKPOINT_DIR, FINAL_EVAL_FILE, LOSS_CURVE_FILE

__all__ = ["train"]


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  """`(arguments, config overrides "a.b=v")` of a command line."""
  parser = cli.ArgumentParser(prog="python -m minrnn.train", description=__doc__.split(
      "\n\n")[0], epilog="Any --config.a.b=value overrides that setting.")
  parser.add_argument("--config", required=True, help="configs/<family>.py[:variant]")
  parser.add_argument("--workdir", required=True, help="the run's directory (resumed if it "
                      "holds checkpoints)")
  parser.add_argument("--accept_config_changes", action="store_true",
                      help="resume although settings changed (recorded in the workdir)")
  parser.add_argument("--final_test", action="store_true",
                      help="score the run's best checkpoint under the config's final_test "
                      "protocol into final_test.json; trains nothing")
  parser.add_argument("--verbose", action="store_true", help="tracebacks for every error")
  args, rest = parser.parse_known_args(argv)
  overrides, pending = [], None
  for arg in rest:
    if pending is not None:
      overrides.append(f"{pending}={arg}")
      pending = None
    elif arg.startswith("--config.") and "=" in arg:
      overrides.append(arg[len("--config."):])
    elif arg.startswith("--config."):
      pending = arg[len("--config."):]
    else:
      parser.error(f"unrecognized argument {arg!r}; settings are given as --config.a.b=value")
  if pending is not None:
    parser.error(f"--config.{pending} needs a value")
  return args, overrides


def summary(result: dict, workdir: pathlib.Path) -> str:
  """The lines the command line prints at the end of a run."""
  state = ("stopped early: no better evaluation within the patience"
           if result.get("stopped_early") else
           "finished" if result["completed"] else "stopped before the end (resume by running "
           "again)")
  metrics = ", ".join(f"{k} {v:.4g}" for k, v in result["eval"].items())
  final = result.get("final_evaluation") or {}
  score = (f" Normalised score {final['normalized_score']:.1f}."
           if "normalized_score" in final else "")
  splits = "".join(f"; {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items())
                   for name, m in result.get("splits", {}).items())
  best = result.get("best")
  if best:
    at_best = "".join(f"; {name} there: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items())
                      for name, m in best.get("splits", {}).items())
    score += f"\nBest eval {best['metric']} {best['value']:.4g} at step {best['step']}{at_best}."
  return (f"Step {result['step']} ({state}): eval {metrics}{splits}.{score}\n"
          f"Outputs in {workdir.resolve()}: config.json, {METRICS_FILE}, tensorboard/, "
          f"{CHECKPOINT_DIR}/, {BEST_DIR}/, {FINAL_EVAL_FILE}, {LOSS_CURVE_FILE}.")


def main(argv: list[str]) -> int:
  args, overrides = parse(argv)
  cli.quiet_libraries()
  distributed.initialize()
  workdir = pathlib.Path(args.workdir)
  with cli.user_errors(args.verbose):
    config = load_config(args.config, overrides=overrides)
    if args.final_test:
      result = final_test_lib.final_test(config, workdir,
                                         accept_config_changes=args.accept_config_changes)
      print(final_test_lib.summary(result, workdir))
      return 0
    run = prepare(config, workdir, accept_config_changes=args.accept_config_changes)
    try:
      result = run.train()
    except (Preempted, Diverged) as stop:
      print(stop if isinstance(stop, Preempted) else f"error: {stop}", file=sys.stderr)
      return stop.exit_code
    except OSError as e:  # A full disk, a lost mount: the checkpoints written so far are whole.
      raise OSError(f"{e}. The run stopped; its checkpoints are intact: run the same command "
                    "again to resume once the cause is fixed.") from e
  if run.main_process:
    print(summary(result, workdir))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
